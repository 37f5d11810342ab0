"""Custom sampling, ComfyUI's way of taking KSampler apart: a GUIDER (model + conditioning + how
the predictions combine), a NOISE, a SAMPLER and SIGMAS, wired into SamplerCustomAdvanced. They run
through the same sampling engine as KSampler, so the same choices give the same latent."""

from __future__ import annotations

from graphflow.api import (CONDITIONING, GUIDER, LATENT, MODEL, NOISE, SAMPLER, SIGMAS, Bool, Choice, Float, Int,
                           Node, NodeInputError)
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
# KSampler's seed range, progress reporter and estimate (a UNet's working memory for the latent)
from nodes.sampling import SEED_MAX, _estimate, _reporter


def _run(guider, noise, sampler, sigmas, latent):
    import torch
    from graphflow.sampling.pipeline import sample_custom
    steps = max(1, len(sigmas) - 1) if torch.is_tensor(sigmas) else 1
    return sample_custom(guider, noise, sampler, sigmas, latent, callback=_reporter(),
                         preview_every=max(1, steps // 20))


def _check_sigmas(sigmas, name: str = "sigmas") -> torch.Tensor:
    import torch
    if not torch.is_tensor(sigmas) or sigmas.ndim != 1:
        raise NodeInputError(name, "expected SIGMAS: a 1-D tensor of noise levels")
    return sigmas


class SamplerCustomAdvanced(Node):
    """Sample a latent from its parts: the noise to start from, the guider (model, prompts and
    guidance), the sampler algorithm and the sigma schedule. Outputs the sampled latent and the
    model's last estimate of the clean latent (denoised_output)."""
    category = "sampling/custom_sampling"
    noise: NOISE
    guider: GUIDER
    sampler: SAMPLER
    sigmas: SIGMAS
    latent_image: LATENT
    outputs = {"output": LATENT, "denoised_output": LATENT}
    estimate = classmethod(_estimate)

    def run(self):
        return _run(self.guider, self.noise, self.sampler, self.sigmas, self.latent_image)


class SamplerCustom(Node):
    """Sample a latent with a chosen sampler and sigma schedule, CFG between positive and negative
    prompts (uncond + cfg * (cond - uncond)). add_noise off starts from the latent as it is (to
    continue a partly denoised one); the seed also drives the noise ancestral / SDE samplers add."""
    category = "sampling/custom_sampling"
    model: MODEL
    add_noise: bool = Bool(True)
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    positive: CONDITIONING
    negative: CONDITIONING
    sampler: SAMPLER
    sigmas: SIGMAS
    latent_image: LATENT
    outputs = {"output": LATENT, "denoised_output": LATENT}
    estimate = classmethod(_estimate)

    def run(self):
        from graphflow.sampling.guidance import CFGGuider as CFGGuidance
        from graphflow.sampling.noise import NoiseSource
        guider = CFGGuidance(self.model, self.positive, self.negative, self.cfg)
        return _run(guider, NoiseSource(self.noise_seed, self.add_noise), self.sampler, self.sigmas, self.latent_image)


class BasicGuider(Node):
    """Guide sampling by one conditioning, without CFG (cfg 1: one model call per step). For
    guidance-distilled models such as FLUX dev, whose guidance strength is part of the conditioning."""
    category = "sampling/custom_sampling/guiders"
    model: MODEL
    conditioning: CONDITIONING
    outputs = {"guider": GUIDER}

    def run(self):
        from graphflow.sampling.guidance import CFGGuider as CFGGuidance
        return CFGGuidance(self.model, self.conditioning, [], 1.0)


class CFGGuider(Node):
    """Classifier-free guidance: uncond + cfg * (cond - uncond) of the positive and negative
    prompts' predictions (at cfg 1 the negative prompt is not evaluated)."""
    category = "sampling/custom_sampling/guiders"
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    outputs = {"guider": GUIDER}

    def run(self):
        from graphflow.sampling.guidance import CFGGuider as CFGGuidance
        return CFGGuidance(self.model, self.positive, self.negative, self.cfg)


class DualCFGGuider(Node):
    """Guidance by two prompts and a negative. regular: neg + cfg_cond2_negative * (cond2 - neg)
    + cfg_conds * (cond1 - cond2); nested: neg + cfg_cond2_negative * (g - neg) with
    g = cond2 + cfg_conds * (cond1 - cond2). E.g. cond1 a detailed prompt, cond2 its subject."""
    category = "sampling/custom_sampling/guiders"
    model: MODEL
    cond1: CONDITIONING
    cond2: CONDITIONING
    negative: CONDITIONING
    cfg_conds: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    cfg_cond2_negative: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    style: str = Choice(["regular", "nested"], "regular")
    outputs = {"guider": GUIDER}

    def run(self):
        from graphflow.sampling.guidance import DualCFGGuider as DualCFGGuidance
        return DualCFGGuidance(self.model, self.cond1, self.cond2, self.negative, self.cfg_conds,
                               self.cfg_cond2_negative, nested=self.style == "nested")


class RandomNoise(Node):
    """Seeded starting noise, drawn on the CPU as ComfyUI does (the same on every device)."""
    category = "sampling/custom_sampling/noise"
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"noise": NOISE}

    def run(self):
        from graphflow.sampling.noise import NoiseSource
        return NoiseSource(self.noise_seed)


class DisableNoise(Node):
    """No starting noise: sample the latent as it is (e.g. the second half of a split schedule)."""
    category = "sampling/custom_sampling/noise"
    outputs = {"noise": NOISE}

    def run(self):
        from graphflow.sampling.noise import NoiseSource
        return NoiseSource(0, enabled=False)


class KSamplerSelect(Node):
    """Choose a sampler algorithm by its ComfyUI name (the same list as KSampler's)."""
    category = "sampling/custom_sampling/samplers"
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    outputs = {"sampler": SAMPLER}

    def run(self):
        from graphflow.sampling.samplers import SamplerChoice
        return SamplerChoice(self.sampler_name)


class BasicScheduler(Node):
    """The sigma schedule KSampler would use: the named scheduler over the model's own noise
    levels for `steps` steps; denoise < 1 keeps the last steps of a longer schedule (img2img)."""
    category = "sampling/custom_sampling/schedulers"
    model: MODEL
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    steps: int = Int(20, min=1, max=10000, resource="steps")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"sigmas": SIGMAS}

    def run(self):
        from graphflow.sampling import compute_sigmas, model_sampling_for
        return compute_sigmas(model_sampling_for(self.model), self.scheduler, self.steps, self.denoise)


class KarrasScheduler(Node):
    """Karras et al.'s schedule: sigmas spaced uniformly in sigma^(1/rho) from sigma_max down to
    sigma_min, then 0. The defaults are SD1/SD2/SDXL's noise range."""
    category = "sampling/custom_sampling/schedulers"
    steps: int = Int(20, min=1, max=10000, resource="steps")
    sigma_max: float = Float(14.614642, min=0.0, max=5000.0, step=0.01)
    sigma_min: float = Float(0.0291675, min=0.0, max=5000.0, step=0.01)
    rho: float = Float(7.0, min=0.0, max=100.0, step=0.01)
    outputs = {"sigmas": SIGMAS}

    def run(self):
        from graphflow.sampling.schedules import karras_sigmas
        if self.rho <= 0:
            raise NodeInputError("rho", f"rho must be above 0, got {self.rho}")
        return karras_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho)


class ExponentialScheduler(Node):
    """Sigmas spaced uniformly in log sigma from sigma_max down to sigma_min, then 0."""
    category = "sampling/custom_sampling/schedulers"
    steps: int = Int(20, min=1, max=10000, resource="steps")
    sigma_max: float = Float(14.614642, min=0.0, max=5000.0, step=0.01)
    sigma_min: float = Float(0.0291675, min=0.0, max=5000.0, step=0.01)
    outputs = {"sigmas": SIGMAS}

    def run(self):
        from graphflow.sampling.schedules import exponential_sigmas
        for name in ("sigma_max", "sigma_min"):
            if getattr(self, name) <= 0:
                raise NodeInputError(name, f"{name} must be above 0 (log spacing), got {getattr(self, name)}")
        return exponential_sigmas(self.steps, self.sigma_min, self.sigma_max)


class SDTurboScheduler(Node):
    """The schedule SD-Turbo and SDXL-Turbo were distilled on: timesteps 999, 899, ... (1 to 10
    steps); denoise < 1 starts further down (img2img)."""
    category = "sampling/custom_sampling/schedulers"
    model: MODEL
    steps: int = Int(1, min=1, max=10, resource="steps")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"sigmas": SIGMAS}

    def run(self):
        from graphflow.sampling import model_sampling_for
        from graphflow.sampling.schedules import sd_turbo
        return sd_turbo(model_sampling_for(self.model), self.steps, self.denoise)


class SplitSigmas(Node):
    """Split a schedule at a step: high_sigmas are steps 0..step, low_sigmas step..end (they share
    the sigma at `step`), to run the two parts with different samplers, models or guiders."""
    category = "sampling/custom_sampling/sigmas"
    sigmas: SIGMAS
    step: int = Int(0, min=0, max=10000)
    outputs = {"high_sigmas": SIGMAS, "low_sigmas": SIGMAS}

    def run(self):
        sigmas = _check_sigmas(self.sigmas)
        return sigmas[:self.step + 1], sigmas[self.step:]


class SplitSigmasDenoise(Node):
    """Split a schedule so that low_sigmas holds the last round(steps * denoise) steps and
    high_sigmas the rest (they share the sigma where they meet)."""
    category = "sampling/custom_sampling/sigmas"
    sigmas: SIGMAS
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"high_sigmas": SIGMAS, "low_sigmas": SIGMAS}

    def run(self):
        sigmas = _check_sigmas(self.sigmas)
        total_steps = round(max(len(sigmas) - 1, 0) * self.denoise)
        # ComfyUI's slicing, kept as it is: with 0 steps kept high_sigmas comes out empty
        return sigmas[:-total_steps], sigmas[-(total_steps + 1):]


class FlipSigmas(Node):
    """Reverse a schedule (low to high noise, e.g. to invert an image back to noise); a leading 0
    becomes 0.0001 so the first step has a noise level to divide by."""
    category = "sampling/custom_sampling/sigmas"
    sigmas: SIGMAS
    outputs = {"sigmas": SIGMAS}

    def run(self):
        sigmas = _check_sigmas(self.sigmas)
        if len(sigmas) == 0:
            return sigmas
        sigmas = sigmas.flip(0)
        if sigmas[0] == 0:
            sigmas[0] = 0.0001
        return sigmas
