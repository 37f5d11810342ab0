"""Custom sampling, ComfyUI's way of taking KSampler apart: a GUIDER (model + conditioning + how
the predictions combine), a NOISE, a SAMPLER and SIGMAS, wired into SamplerCustomAdvanced. They run
through the same sampling engine as KSampler, so the same choices give the same latent."""

from __future__ import annotations

from graphflow.api import (CONDITIONING, FLOAT, GUIDER, LATENT, MODEL, NOISE, SAMPLER, SIGMAS, Bool, Choice,
                           ComfyAlias, Float, Int, Node, NodeInputError)
from graphflow.choices import (AYS_MODEL_TYPES, DPMPP_2M_SDE_SOLVERS, ER_SDE_SOLVER_TYPES, LCM_UPSCALE_METHODS,
                               NOISE_DEVICES, OPTIMAL_STEPS_MODEL_TYPES, SAMPLER_NAMES, SCHEDULER_NAMES,
                               SIGMA_SPACINGS)
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


class PerpNegGuider(Node):
    """Perp-Neg guidance (Armandpour et al. 2023): the negative prompt pushes away only with its
    part perpendicular to the positive's guidance, both measured from the empty prompt's
    prediction: D = e + cfg (p - neg_scale * perp(n)), p = positive - e, n = negative - e. Lets a
    negative prompt remove things without fighting the positive one. The three prompts run in one
    batched model call."""
    category = "sampling/custom_sampling/guiders"
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    empty_conditioning: CONDITIONING
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01)
    neg_scale: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"guider": GUIDER}
    comfy = ComfyAlias(("PerpNegGuider",))

    def run(self):
        from graphflow.sampling.guidance import PerpNegGuider as PerpNegGuidance
        return PerpNegGuidance(self.model, self.positive, self.negative, self.empty_conditioning, self.cfg,
                               self.neg_scale)


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
    levels for `steps` steps; denoise < 1 keeps the last steps of a steps / denoise-step schedule
    (img2img), which may be at most 20000 steps long."""
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


# ---- samplers with their parameters (ComfyUI's Sampler* nodes) ----------------------------------

def _sampler(name: str, **options):
    from graphflow.sampling.samplers import SamplerChoice
    return SamplerChoice(name, options)


def _sde_name(name: str, noise_device: str) -> str:
    """ComfyUI's noise_device: "gpu" is the sampler's _gpu variant (Brownian tree on the device)."""
    return name if noise_device == "cpu" else name + "_gpu"


class SamplerEulerAncestral(Node):
    """Euler ancestral: an Euler step down to sigma_down, then fresh noise back up to the next sigma.
    eta scales the noise re-added each step (0: plain Euler, the ODE); s_noise scales the noise drawn."""
    category = "sampling/custom_sampling/samplers"
    eta: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    s_noise: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerEulerAncestral",))

    def run(self):
        return _sampler("euler_ancestral", eta=self.eta, s_noise=self.s_noise)


class SamplerEulerAncestralCFGPP(Node):
    """Euler ancestral with CFG++: steps along the guided estimate, re-noises along the unguided one
    (use a low cfg, about 1 to 3). eta scales the re-added noise, s_noise the noise drawn."""
    category = "sampling/custom_sampling/samplers"
    eta: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    s_noise: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerEulerAncestralCFGPP",))

    def run(self):
        return _sampler("euler_ancestral_cfg_pp", eta=self.eta, s_noise=self.s_noise)


class SamplerEulerCFGpp(Node):
    """Euler with CFG++ (Chung et al. 2024): regular steps along the guided estimate and re-noises
    along the unguided one (the euler_cfg_pp sampler); alternative (ComfyUI's first version) takes
    an Euler step whose slope adds the guidance once more. Use a low cfg, about 1 to 3."""
    category = "sampling/custom_sampling/samplers"
    variant: str = Choice(["regular", "alternative"], "regular")
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerEulerCFGpp",), inputs={"version": "variant"})  # "version" is reserved here

    def run(self):
        return _sampler("euler_cfg_pp" if self.variant == "regular" else "euler_cfg_pp_alternative")


class SamplerDPMPP_2M_SDE(Node):
    """DPM++ 2M SDE with its options: solver_type (midpoint, or heun's second-order term), eta (noise
    strength; 0 is DPM++ 2M), s_noise, and noise_device (gpu: the Brownian noise is drawn on the
    device, cpu: on the CPU; the two give different images from one seed)."""
    category = "sampling/custom_sampling/samplers"
    solver_type: str = Choice(DPMPP_2M_SDE_SOLVERS, "midpoint")
    eta: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    s_noise: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    noise_device: str = Choice(NOISE_DEVICES, "gpu")
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerDPMPP_2M_SDE",))

    def run(self):
        return _sampler(_sde_name("dpmpp_2m_sde", self.noise_device), eta=self.eta, s_noise=self.s_noise,
                        solver_type=self.solver_type)


class SamplerDPMPP_3M_SDE(Node):
    """DPM++ 3M SDE with its noise strength eta (0: the third-order ODE solver), s_noise and
    noise_device (where the Brownian noise is drawn: gpu or cpu)."""
    category = "sampling/custom_sampling/samplers"
    eta: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    s_noise: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    noise_device: str = Choice(NOISE_DEVICES, "gpu")
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerDPMPP_3M_SDE",))

    def run(self):
        return _sampler(_sde_name("dpmpp_3m_sde", self.noise_device), eta=self.eta, s_noise=self.s_noise)


class SamplerDPMPP_SDE(Node):
    """DPM++ SDE (two model calls a step) with eta (noise strength), s_noise, r (where in the step,
    in log sigma, the intermediate evaluation sits; 0.5 the middle) and noise_device (gpu or cpu)."""
    category = "sampling/custom_sampling/samplers"
    eta: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    s_noise: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    r: float = Float(0.5, min=0.0, max=100.0, step=0.01)
    noise_device: str = Choice(NOISE_DEVICES, "gpu")
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerDPMPP_SDE",))

    def run(self):
        if self.r <= 0:
            raise NodeInputError("r", f"r must be above 0 (the intermediate point's share of the step), got {self.r}")
        return _sampler(_sde_name("dpmpp_sde", self.noise_device), eta=self.eta, s_noise=self.s_noise, r=self.r)


class SamplerDPMPP_2S_Ancestral(Node):
    """DPM++ 2S ancestral: a second-order single-step down to sigma_down, then fresh noise (eta its
    strength, 0 the ODE; s_noise scales the noise drawn)."""
    category = "sampling/custom_sampling/samplers"
    eta: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    s_noise: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerDPMPP_2S_Ancestral",))

    def run(self):
        return _sampler("dpmpp_2s_ancestral", eta=self.eta, s_noise=self.s_noise)


class SamplerLMS(Node):
    """Linear multistep (Adams-Bashforth on the last `order` slopes; 1 is Euler)."""
    category = "sampling/custom_sampling/samplers"
    order: int = Int(4, min=1, max=100)
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerLMS",))

    def run(self):
        return _sampler("lms", order=self.order)


class SamplerDPMAdaptative(Node):
    """DPM-Solver with adaptive step size: order 2 or 3, steps chosen so the local error stays within
    rtol / atol, by a PID controller (pcoeff, icoeff, dcoeff) that rejects steps scoring below
    accept_safety, starting from step h_init (in log sigma). Only the schedule's first and last
    nonzero sigma count. eta > 0 adds fresh noise after each step (ancestral), s_noise scales it."""
    category = "sampling/custom_sampling/samplers"
    order: int = Int(3, min=2, max=3)
    rtol: float = Float(0.05, min=0.0, max=100.0, step=0.01)
    atol: float = Float(0.0078, min=0.0, max=100.0, step=0.01)
    h_init: float = Float(0.05, min=0.0, max=100.0, step=0.01)
    pcoeff: float = Float(0.0, min=0.0, max=100.0, step=0.01)
    icoeff: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    dcoeff: float = Float(0.0, min=0.0, max=100.0, step=0.01)
    accept_safety: float = Float(0.81, min=0.0, max=100.0, step=0.01)
    eta: float = Float(0.0, min=0.0, max=100.0, step=0.01)
    s_noise: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerDPMAdaptative",))

    def run(self):
        if self.h_init <= 0:
            raise NodeInputError("h_init", f"h_init must be above 0 (the first step size), got {self.h_init}")
        return _sampler("dpm_adaptive", order=self.order, rtol=self.rtol, atol=self.atol, h_init=self.h_init,
                        pcoeff=self.pcoeff, icoeff=self.icoeff, dcoeff=self.dcoeff,
                        accept_safety=self.accept_safety, eta=self.eta, s_noise=self.s_noise)


class SamplerER_SDE(Node):
    """ER-SDE-Solver (Cui et al. 2023) with its noise-scale function: ER-SDE (the paper's), Reverse-time
    SDE, or ODE (no noise). eta is the stochastic strength of Reverse-time SDE (0 reduces it to the
    ODE; as in ComfyUI it does not apply to ER-SDE); max_stage the solver's order (1 to 3); s_noise
    scales the noise drawn."""
    category = "sampling/custom_sampling/samplers"
    solver_type: str = Choice(ER_SDE_SOLVER_TYPES, "ER-SDE")
    max_stage: int = Int(3, min=1, max=3)
    eta: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    s_noise: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerER_SDE",))

    def run(self):
        from graphflow.sampling.samplers import er_sde_options
        return _sampler("er_sde", max_stage=self.max_stage, **er_sde_options(self.solver_type, self.eta, self.s_noise))


class SamplerSASolver(Node):
    """SA-Solver (stochastic Adams) with its options: noise strength eta, applied between
    sde_start_percent and sde_end_percent of the model's schedule (the ODE outside), s_noise, the
    predictor's and corrector's orders (corrector 0: none), use_pece (one more model call a step at
    the corrected point) and simple_order_2 (the paper's simplified order-2 weights)."""
    category = "sampling/custom_sampling/samplers"
    model: MODEL
    eta: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    sde_start_percent: float = Float(0.2, min=0.0, max=1.0, step=0.001)
    sde_end_percent: float = Float(0.8, min=0.0, max=1.0, step=0.001)
    s_noise: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    predictor_order: int = Int(3, min=1, max=6)
    corrector_order: int = Int(4, min=0, max=6)
    use_pece: bool = Bool(False)
    simple_order_2: bool = Bool(False)
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerSASolver",))

    def run(self):
        from graphflow.sampling import model_sampling_for
        from graphflow.sampling.samplers import sa_solver_tau
        schedule = model_sampling_for(self.model)
        tau_func = sa_solver_tau(schedule.percent_to_sigma(self.sde_start_percent),
                                 schedule.percent_to_sigma(self.sde_end_percent), self.eta)
        return _sampler("sa_solver", tau_func=tau_func, s_noise=self.s_noise, predictor_order=self.predictor_order,
                        corrector_order=self.corrector_order, use_pece=self.use_pece,
                        simple_order_2=self.simple_order_2)


class SamplerLCMUpscale(Node):
    """LCM sampling that upscales the latent between steps: by scale_ratio in all, over the first
    scale_steps steps (-1: half of them), with upscale_method. For LCM models (flow models get the
    same x0 + sigma * noise re-noise, as in ComfyUI).
    The noise re-added each step continues the sampler seed's stream as ComfyUI's does (on the CPU
    after the starting noise), at each step's size."""
    category = "sampling/custom_sampling/samplers"
    scale_ratio: float = Float(1.0, min=0.1, max=20.0, step=0.01)
    scale_steps: int = Int(-1, min=-1, max=1000)
    upscale_method: str = Choice(LCM_UPSCALE_METHODS, "bislerp")
    outputs = {"sampler": SAMPLER}
    comfy = ComfyAlias(("SamplerLCMUpscale",))

    def run(self):
        return _sampler("lcm_upscale", total_upscale=self.scale_ratio, upscale_method=self.upscale_method,
                        upscale_steps=None if self.scale_steps < 0 else self.scale_steps)


# ---- more schedules ------------------------------------------------------------------------------

class AlignYourStepsScheduler(Node):
    """NVIDIA's Align Your Steps schedules (Sabour et al. 2024), optimised for SD1, SDXL and SVD:
    the published 10-step tables, log-linearly interpolated for other step counts; denoise < 1 keeps
    the last round(steps * denoise) steps."""
    category = "sampling/custom_sampling/schedulers"
    model_type: str = Choice(AYS_MODEL_TYPES, "SD1")
    steps: int = Int(10, min=1, max=10000, resource="steps")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"sigmas": SIGMAS}
    comfy = ComfyAlias(("AlignYourStepsScheduler",))

    def run(self):
        from graphflow.sampling.schedules import align_your_steps
        return align_your_steps(self.model_type, self.steps, self.denoise)


class OptimalStepsScheduler(Node):
    """OptimalSteps' schedules (Pei et al. 2025) for the flow models FLUX, Wan and Chroma: the
    published tables, log-linearly interpolated for other step counts; denoise < 1 keeps the last
    round(steps * denoise) steps."""
    category = "sampling/custom_sampling/schedulers"
    model_type: str = Choice(OPTIMAL_STEPS_MODEL_TYPES, "FLUX")
    steps: int = Int(20, min=3, max=1000, resource="steps")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"sigmas": SIGMAS}
    comfy = ComfyAlias(("OptimalStepsScheduler",))

    def run(self):
        from graphflow.sampling.schedules import optimal_steps
        return optimal_steps(self.model_type, self.steps, self.denoise)


class GITSScheduler(Node):
    """GITS' schedules (Chen et al. 2024, "On the Trajectory Regularity of ODE-based Diffusion
    Sampling"), searched for SD1.5 at a coefficient coeff (0.80 to 1.50 in steps of 0.05; higher puts
    more steps at low noise): the published 2- to 20-step tables, the 20-step one log-linearly
    interpolated above that; denoise < 1 keeps the last round(steps * denoise) steps."""
    category = "sampling/custom_sampling/schedulers"
    coeff: float = Float(1.2, min=0.8, max=1.5, step=0.05)
    steps: int = Int(10, min=2, max=1000, resource="steps")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"sigmas": SIGMAS}
    comfy = ComfyAlias(("GITSScheduler",))

    def run(self):
        from graphflow.sampling.schedules import gits
        try:
            return gits(self.coeff, self.steps, self.denoise)
        except KeyError:
            raise NodeInputError("coeff", f"GITS has schedules for coeff 0.80, 0.85, ..., 1.50 only, got {self.coeff}")


class BetaSamplingScheduler(Node):
    """The beta schedule (Lee et al. 2024) over the model's noise levels with its shape parameters:
    timesteps at the quantiles of Beta(alpha, beta); below 1 they crowd both ends of sampling."""
    category = "sampling/custom_sampling/schedulers"
    model: MODEL
    steps: int = Int(20, min=1, max=10000, resource="steps")
    alpha: float = Float(0.6, min=0.0, max=50.0, step=0.01)
    beta: float = Float(0.6, min=0.0, max=50.0, step=0.01)
    outputs = {"sigmas": SIGMAS}
    comfy = ComfyAlias(("BetaSamplingScheduler",))

    def run(self):
        from graphflow.sampling import model_sampling_for
        from graphflow.sampling.schedules import beta
        for name in ("alpha", "beta"):
            if getattr(self, name) <= 0:
                raise NodeInputError(name, f"{name} must be above 0 (a Beta distribution's shape), got {getattr(self, name)}")
        return beta(model_sampling_for(self.model), self.steps, alpha=self.alpha, beta=self.beta)


def _positive(node, *names):
    for name in names:
        if getattr(node, name) <= 0:
            raise NodeInputError(name, f"{name} must be above 0 (log spacing), got {getattr(node, name)}")


class PolyexponentialScheduler(Node):
    """Sigmas from sigma_max down to sigma_min with log sigma following a power rho of a linear ramp
    (rho 1: uniform in log sigma, the exponential schedule; above 1 more steps at low noise), then 0."""
    category = "sampling/custom_sampling/schedulers"
    steps: int = Int(20, min=1, max=10000, resource="steps")
    sigma_max: float = Float(14.614642, min=0.0, max=5000.0, step=0.01)
    sigma_min: float = Float(0.0291675, min=0.0, max=5000.0, step=0.01)
    rho: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"sigmas": SIGMAS}
    comfy = ComfyAlias(("PolyexponentialScheduler",))

    def run(self):
        from graphflow.sampling.schedules import polyexponential_sigmas
        _positive(self, "sigma_max", "sigma_min")
        return polyexponential_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho)


class VPScheduler(Node):
    """The continuous variance-preserving SDE's noise levels (Song et al. 2021):
    sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) at t uniform from 1 down to eps_s, then 0.
    The defaults are the VP SDE paper's (sigma 0.03 to 152, not SD's range)."""
    category = "sampling/custom_sampling/schedulers"
    steps: int = Int(20, min=1, max=10000, resource="steps")
    beta_d: float = Float(19.9, min=0.0, max=5000.0, step=0.01)
    beta_min: float = Float(0.1, min=0.0, max=5000.0, step=0.01)
    eps_s: float = Float(0.001, min=0.0, max=1.0, step=0.0001)
    outputs = {"sigmas": SIGMAS}
    comfy = ComfyAlias(("VPScheduler",))

    def run(self):
        from graphflow.sampling.schedules import vp_sigmas
        return vp_sigmas(self.steps, self.beta_d, self.beta_min, self.eps_s)


class LaplaceScheduler(Node):
    """Hang et al. 2024's schedule: log sigma at the quantiles of a Laplace(mu, beta) distribution,
    so steps crowd around sigma = e^mu; clamped to [sigma_min, sigma_max]. As in ComfyUI it does not
    end at 0: `steps` sigmas, sampling stops at sigma_min."""
    category = "sampling/custom_sampling/schedulers"
    steps: int = Int(20, min=1, max=10000, resource="steps")
    sigma_max: float = Float(14.614642, min=0.0, max=5000.0, step=0.01)
    sigma_min: float = Float(0.0291675, min=0.0, max=5000.0, step=0.01)
    mu: float = Float(0.0, min=-10.0, max=10.0, step=0.1)
    beta: float = Float(0.5, min=0.0, max=10.0, step=0.1)
    outputs = {"sigmas": SIGMAS}
    comfy = ComfyAlias(("LaplaceScheduler",))

    def run(self):
        from graphflow.sampling.schedules import laplace_sigmas
        return laplace_sigmas(self.steps, self.sigma_min, self.sigma_max, self.mu, self.beta)


# ---- sigma utilities -----------------------------------------------------------------------------

class SetFirstSigma(Node):
    """Replace a schedule's first sigma (e.g. start above the model's sigma_max for more noise)."""
    category = "sampling/custom_sampling/sigmas"
    sigmas: SIGMAS
    sigma: float = Float(136.0, min=0.0, max=20000.0, step=0.001)
    outputs = {"sigmas": SIGMAS}
    comfy = ComfyAlias(("SetFirstSigma",))

    def run(self):
        sigmas = _check_sigmas(self.sigmas).clone()
        if len(sigmas) == 0:
            raise NodeInputError("sigmas", "the schedule is empty: there is no first sigma to set")
        sigmas[0] = self.sigma
        return sigmas


class ExtendIntermediateSigmas(Node):
    """Split each step whose starting sigma lies in [end_at_sigma, start_at_sigma] (start_at_sigma -1:
    no upper bound) into `steps` smaller ones, spaced linearly, or by cosine (denser toward the step's
    end) or sine (toward its start)."""
    category = "sampling/custom_sampling/sigmas"
    sigmas: SIGMAS
    steps: int = Int(2, min=1, max=100)
    start_at_sigma: float = Float(-1.0, min=-1.0, max=20000.0, step=0.01)
    end_at_sigma: float = Float(12.0, min=0.0, max=20000.0, step=0.01)
    spacing: str = Choice(SIGMA_SPACINGS, "linear")
    outputs = {"sigmas": SIGMAS}
    comfy = ComfyAlias(("ExtendIntermediateSigmas",))

    def run(self):
        from graphflow.sampling.schedules import extend_intermediate_sigmas
        return extend_intermediate_sigmas(_check_sigmas(self.sigmas), self.steps, self.start_at_sigma,
                                          self.end_at_sigma, self.spacing)


class SamplingPercentToSigma(Node):
    """The sigma a share of the way through the model's sampling (0 start, 1 end), as the percent
    inputs of ControlNet, guidance and SA-Solver read it: 0 gives a value above every sigma and 1
    gives 0 unless return_actual_sigma, which gives the model's sigma_max and sigma_min there."""
    category = "sampling/custom_sampling/sigmas"
    model: MODEL
    sampling_percent: float = Float(0.0, min=0.0, max=1.0, step=0.0001)
    return_actual_sigma: bool = Bool(False)
    outputs = {"sigma_value": FLOAT}
    comfy = ComfyAlias(("SamplingPercentToSigma",))

    def run(self):
        from graphflow.sampling import model_sampling_for
        schedule = model_sampling_for(self.model)
        if self.return_actual_sigma and self.sampling_percent == 0.0:
            return float(schedule.sigma_max)
        if self.return_actual_sigma and self.sampling_percent == 1.0:
            return float(schedule.sigma_min)
        return float(schedule.percent_to_sigma(self.sampling_percent))


# ---- noise ---------------------------------------------------------------------------------------

class AddNoise(Node):
    """Add a NOISE to a latent at the schedule's noise level: |first - last sigma| (the first sigma
    alone for a one-entry schedule), scaled the model's way (x + sigma * noise for eps/v models,
    (1 - sigma) x + sigma * noise for flow models). An empty schedule returns the latent unchanged."""
    category = "_for_testing/custom_sampling/noise"
    model: MODEL
    noise: NOISE
    sigmas: SIGMAS
    latent_image: LATENT
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("AddNoise",))

    def run(self):
        import torch
        from graphflow.sampling import model_sampling_for
        from graphflow.sampling.noise import NoiseSource
        from graphflow.sampling.pipeline import _latent_samples

        sigmas = _check_sigmas(self.sigmas)
        if not isinstance(self.noise, NoiseSource):
            raise NodeInputError("noise", f"expected a NOISE (from RandomNoise or DisableNoise), got {type(self.noise).__name__}")
        if len(sigmas) == 0:
            return self.latent_image
        samples = _latent_samples(self.model, self.latent_image)
        fmt = self.model.latent_format
        noise = self.noise.generate(samples, self.latent_image.get("batch_index"))
        scale = (sigmas[0] - sigmas[-1]).abs() if len(sigmas) > 1 else sigmas[0]
        if torch.count_nonzero(samples) > 0:  # an empty latent stays 0, as ComfyUI: no shift of zeros
            samples = fmt.process_in(samples)
        noisy = model_sampling_for(self.model).noise_scaling(scale.float(), noise, samples)
        out = dict(self.latent_image)
        out["samples"] = torch.nan_to_num(fmt.process_out(noisy), nan=0.0, posinf=0.0, neginf=0.0)
        return out
