"""ltdrdata's ComfyUI Inspire Pack: its samplers and model-free nodes, under the pack's class names,
inputs and outputs.

Read from ltdrdata/ComfyUI-Inspire-Pack: inspire/a1111_compat.py at
0a009c149999c335c323e2f7fc03b42865bf454a (KSampler / KSamplerAdvanced //Inspire, their [pipe]
forms, RandomNoise //Inspire), the noise in inspire/libs/utils.py at
ca5d942cefa0f75e3c4e778f75f71811f4abb65f (prepare_noise, mix_noise, slerp), the scheduler list of
inspire/libs/common.py at 04223778ea4fad60a4ceb6798f063ec6cdc0e1e0, and Impact Pack's
separated_sample / calculate_sigmas (store files 25505843378, 1450752583), which the pack's samplers
run through.

Nodes: KSampler //Inspire, KSamplerAdvanced //Inspire, KSamplerPipe //Inspire,
KSamplerAdvancedPipe //Inspire, RandomNoise //Inspire.

Left out: the regional samplers (Impact's regional sampler), the model-based nodes and the cache
backends; scheduler_func_opt (a SCHEDULER_FUNC socket no node here gives) and noise_opt (a
NOISE_IMAGE of the pack's noise-image nodes, not built in) are not inputs here.
"""

from __future__ import annotations

import functools
import math

from graphflow.api import CONDITIONING, LATENT, MODEL, NOISE, VAE, Bool, Choice, ComfyAlias, Float, Int, Node, \
    NodeInputError, warn
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.pack_nodes_impact import BASIC_PIPE, _pipe
from nodes.sampling import SEED_MAX, _estimate, _reporter

COMFY_PACK = "comfyui-inspire-pack"  # the custom node pack this module's ComfyUI classes come from

# -- the samplers' noise ---------------------------------------------------------------------------

NOISE_MODES = ("GPU(=A1111)", "CPU")
BATCH_SEED_MODES = ("incremental", "comfy", "variation str inc:0.01", "variation str inc:0.05")
VARIATION_STEP = "variation str inc:"  # the mode's prefix; the strength step follows it
VARIATION_METHODS = ("linear", "slerp")
# the pack's schedulers: ComfyUI's, then Impact's table-based ones
INSPIRE_SCHEDULERS = SCHEDULER_NAMES + ("AYS SDXL", "AYS SD1", "AYS SVD", "GITS[coeff=1.2]", "OSS FLUX", "OSS Wan",
                                        "OSS Chroma")

NOISE_HELP = """
The starting noise is the pack's: noise_mode CPU draws it with a CPU generator (comfy mode then
gives core KSampler's noise), GPU(=A1111) with the CUDA generator as A1111 does. GPU noise is other
noise than CPU noise for the same seed, and it is reproduced only where a CUDA device is present;
elsewhere (a CPU-only or Apple machine) the noise is drawn on the CPU, with a warning that the
images differ from the pack's. batch_seed_mode: comfy draws the whole batch from one generator;
incremental gives image i the seed seed + i (one image each); "variation str inc:S" gives every
image the seed's noise, mixed with the variation noise at variation_strength + S * i.
variation_strength > 0 mixes the variation_seed's noise (one image's, the same for each) into the
seed's: variation_method linear as (1 - s) * noise + s * variation divided by
sqrt((1 - s)^2 + s^2) (so the variance stays 1), slerp along the great circle between them (where
the two are parallel, where the pack's slerp gives NaN, it gives the linear mix). A LATENT with a
batch_index takes the comfy draw of those images, without variation, as in the pack.
internal_seed drives the noise ancestral and SDE samplers add (the pack's widget default is 0; a
UI save from before the widget existed takes the seed, as those versions did)."""


def _noise_device(noise_mode: str):
    """Where the pack's noise_mode draws the noise: the CUDA device for GPU(=A1111), where there is one."""
    import torch

    if noise_mode == "CPU":
        return torch.device("cpu")
    from graphflow.device import compute_device

    device = compute_device()
    if device.type == "cuda":
        return device
    warn("noise_mode GPU(=A1111) draws the starting noise with the CUDA generator, and there is no CUDA device "
         "here: the noise is drawn on the CPU instead, so the images differ from the pack's for this seed")
    return torch.device("cpu")


def slerp(strength: float, low, high):
    """Spherical interpolation between two noises, each image's flattened noise on its own (the
    pack's slerp, after BlenderNeko's): sin((1-t)w)/sin(w) * low + sin(tw)/sin(w) * high, w the
    angle between them; where they are parallel (sin w = 0) the linear mix."""
    import torch

    shape = low.shape
    low, high = low.reshape(shape[0], -1), high.reshape(shape[0], -1)
    low_unit = torch.nan_to_num(low / low.norm(dim=1, keepdim=True))
    high_unit = torch.nan_to_num(high / high.norm(dim=1, keepdim=True))
    omega = torch.acos((low_unit * high_unit).sum(1))
    sin_omega = torch.sin(omega)
    mixed = ((torch.sin((1.0 - strength) * omega) / sin_omega).unsqueeze(1) * low
             + (torch.sin(strength * omega) / sin_omega).unsqueeze(1) * high)
    parallel = ~torch.isfinite(mixed).all(dim=1)
    if parallel.any():
        mixed[parallel] = ((1 - strength) * low + strength * high)[parallel]
    return mixed.reshape(shape)


def mix_noise(noise, variation, strength: float, method: str):
    """The pack's mix_noise: slerp, or the linear mix rescaled to unit variance."""
    if method == "slerp":
        return slerp(strength, noise, variation)
    return ((1 - strength) * noise + strength * variation) / math.sqrt((1 - strength) ** 2 + strength ** 2)


def inspire_noise(samples, seed: int, batch_index, device, batch_seed_mode: str = "comfy", variation_seed: int = 0,
                  variation_strength: float = 0.0, variation_method: str = "linear"):
    """The pack's prepare_noise: the starting noise for `samples` [B, C, ...] on `device`, returned
    on the CPU in float32."""
    import torch

    if batch_seed_mode not in BATCH_SEED_MODES and not batch_seed_mode.startswith(VARIATION_STEP):
        raise NodeInputError("batch_seed_mode", f"expected one of {', '.join(BATCH_SEED_MODES)}, got {batch_seed_mode!r}")
    if variation_method not in VARIATION_METHODS:
        raise NodeInputError("variation_method", f"expected linear or slerp, got {variation_method!r}")
    shape = list(samples.shape)
    one = [1] + shape[1:]

    def randn(size, noise_seed):
        generator = torch.Generator(device).manual_seed(noise_seed)
        return torch.randn(size, dtype=torch.float32, generator=generator, device=device)

    variation = None
    if variation_strength > 0 or batch_seed_mode.startswith(VARIATION_STEP):
        variation = randn(one, variation_seed)

    def varied(noise, extra: float = 0.0):
        if variation is None:
            return noise
        return mix_noise(noise, variation.expand(noise.shape[0], *one[1:]), variation_strength + extra,
                         variation_method)

    if batch_index is None and batch_seed_mode == "incremental":
        if seed + shape[0] - 1 > SEED_MAX:
            raise NodeInputError("seed", f"incremental gives image i the seed seed + i; seed {seed} with "
                                         f"{shape[0]} images passes the largest seed {SEED_MAX}")
        noise = torch.cat([varied(randn(one, seed + i)) for i in range(shape[0])])
    elif batch_index is None and batch_seed_mode.startswith(VARIATION_STEP):
        try:
            step = float(batch_seed_mode[len(VARIATION_STEP):])
        except ValueError:
            raise NodeInputError("batch_seed_mode", f"expected a number after {VARIATION_STEP!r}, got "
                                                    f"{batch_seed_mode!r}") from None
        base = randn(one, seed)
        noise = torch.cat([varied(base, step * i) for i in range(shape[0])])
    elif batch_index is None:
        noise = varied(randn(shape, seed))
    else:  # the images of a larger batch: each the comfy draw at its index (no variation, as the pack)
        indices = [int(i) for i in batch_index]
        generator = torch.Generator(device).manual_seed(seed)
        drawn = {}
        for i in range(max(indices) + 1):
            image = torch.randn(one, dtype=torch.float32, generator=generator, device=device)
            if i in indices:
                drawn[i] = image
        noise = torch.cat([drawn[i] for i in indices])
    return noise.float().cpu()


@functools.cache
def _noise_class():
    """The NOISE the pack's RandomNoise gives (a NoiseSource, so that SamplerCustomAdvanced takes
    it), made on first use: graphflow.sampling imports torch, which listing nodes doesn't need."""
    from dataclasses import dataclass

    from graphflow.sampling.noise import NoiseSource

    @dataclass(frozen=True)
    class InspireNoise(NoiseSource):
        """The pack's starting noise; `seed` (NoiseSource's) is the internal seed the sampler's
        added noise is drawn with, noise_seed the starting noise's."""
        noise_seed: int = 0
        noise_mode: str = "CPU"
        batch_seed_mode: str = "comfy"
        variation_seed: int = 0
        variation_strength: float = 0.0
        variation_method: str = "linear"

        def generate(self, samples, batch_index=None):
            if not self.enabled:
                return super().generate(samples, batch_index)
            return inspire_noise(samples, self.noise_seed, batch_index, _noise_device(self.noise_mode),
                                 self.batch_seed_mode, self.variation_seed, self.variation_strength,
                                 self.variation_method)

    return InspireNoise


def inspire_noise_source(noise_seed, noise_mode, batch_seed_mode, variation_seed, variation_strength,
                         variation_method="linear", internal_seed=None):
    return _noise_class()(seed=noise_seed if internal_seed is None else internal_seed, noise_seed=noise_seed,
                          noise_mode=noise_mode, batch_seed_mode=batch_seed_mode, variation_seed=variation_seed,
                          variation_strength=variation_strength, variation_method=variation_method)


# -- the samplers ------------------------------------------------------------------------------------


def _scheduler(name: str):
    """A scheduler of ComfyUI's by name, or Impact's calculate_sigmas for the pack's added ones: Align
    Your Steps' table for AYS SD1 / SDXL / SVD, GITS at the coeff in brackets, OptimalSteps' for
    OSS FLUX / Wan / Chroma, each computed for the whole step count (denoise and the dropped
    penultimate sigma of dpm_2 / uni_pc then apply as to any schedule)."""
    if name in SCHEDULER_NAMES:
        return name
    from graphflow.sampling.schedules import align_your_steps, gits, optimal_steps

    if name.startswith("AYS "):
        return lambda schedule, steps: align_your_steps(name[4:], steps)
    if name.startswith("GITS[coeff="):
        return lambda schedule, steps: gits(float(name[11:-1]), steps)
    return lambda schedule, steps: optimal_steps(name[4:], steps)


def inspire_sample(model, positive, negative, latent, seed, steps, cfg, sampler_name, scheduler, noise_mode,
                   batch_seed_mode, variation_seed, variation_strength, variation_method, internal_seed, **options):
    """The pack's inspire_ksampler: the core sampler's run with the pack's starting noise."""
    from graphflow.sampling.pipeline import sample

    if scheduler not in INSPIRE_SCHEDULERS:
        raise NodeInputError("scheduler", f"expected one of {', '.join(INSPIRE_SCHEDULERS)}, got {scheduler!r}")
    if noise_mode not in NOISE_MODES:
        raise NodeInputError("noise_mode", f"expected GPU(=A1111) or CPU, got {noise_mode!r}")
    noise = inspire_noise_source(seed, noise_mode, batch_seed_mode, variation_seed, variation_strength,
                                 variation_method, internal_seed)
    return sample(model, noise.seed, steps, cfg, sampler_name, _scheduler(scheduler), positive, negative, latent,
                  callback=_reporter(), preview_every=max(1, steps // 20), starting_noise=noise, **options)


def _old_saves(seed_at: int, full: int, has_method: bool):
    """A UI save of a version from before internal_seed (and variation_method) read as today's: the
    missing last widgets filled in, internal_seed with the seed, as those versions sampled with it."""
    def upgraded(values: list) -> list:
        if has_method and len(values) == full - 2:
            values = values + ["linear"]
        if len(values) == full - 1:
            values = values + [values[seed_at]]
        return values

    return upgraded


class InspireKSampler(Node):
    __doc__ = """KSampler with the Inspire Pack's starting noise: the core KSampler's sampling (the same
schedule, denoise and guidance), the noise drawn as noise_mode and batch_seed_mode say, with
variation noise mixed in. The scheduler list adds Impact's AYS SD1 / SDXL / SVD, GITS[coeff=1.2]
and OSS FLUX / Wan / Chroma. SDE samplers draw their Brownian noise over the sampled part's noise
range (the pack: the whole schedule's, which differs for denoise < 1). denoise 0 gives the latent
back (the pack fails on it).""" + NOISE_HELP
    category = "InspirePack/a1111_compat"
    model: MODEL
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(INSPIRE_SCHEDULERS, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    noise_mode: str = Choice(NOISE_MODES, "GPU(=A1111)")
    batch_seed_mode: str = Choice(BATCH_SEED_MODES, "incremental")
    variation_seed: int = Int(0, min=0, max=SEED_MAX)
    variation_strength: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    variation_method: str = Choice(VARIATION_METHODS, "linear")
    internal_seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("KSampler //Inspire",), optional=("variation_method", "internal_seed"),
                       widgets=_old_saves(0, 13, True))
    estimate = classmethod(_estimate)

    def run(self):
        return inspire_sample(self.model, self.positive, self.negative, self.latent_image, self.seed, self.steps,
                              self.cfg, self.sampler_name, self.scheduler, self.noise_mode, self.batch_seed_mode,
                              self.variation_seed, self.variation_strength, self.variation_method,
                              self.internal_seed, denoise=self.denoise)


def _advanced(node, model, positive, negative):
    return inspire_sample(model, positive, negative, node.latent_image, node.noise_seed, node.steps, node.cfg,
                          node.sampler_name, node.scheduler, node.noise_mode, node.batch_seed_mode,
                          node.variation_seed, node.variation_strength, getattr(node, "variation_method", "linear"),
                          node.internal_seed, start_step=node.start_at_step, end_step=node.end_at_step,
                          add_noise=node.add_noise, return_with_leftover_noise=node.return_with_leftover_noise)


class InspireKSamplerAdvanced(Node):
    __doc__ = """KSamplerAdvanced with the Inspire Pack's starting noise: the core KSamplerAdvanced's
steps start_at_step..end_at_step, add_noise and return_with_leftover_noise (here switches), the
noise drawn as noise_mode and batch_seed_mode say, with variation noise mixed in. The scheduler
list adds Impact's AYS, GITS[coeff=1.2] and OSS schedules. SDE samplers draw their Brownian noise
over the sampled part's noise range (the pack: the whole schedule's, which differs when
start_at_step > 0).""" + NOISE_HELP
    category = "InspirePack/a1111_compat"
    model: MODEL
    add_noise: bool = Bool(True)
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.5)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(INSPIRE_SCHEDULERS, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    start_at_step: int = Int(0, min=0, max=10000)
    end_at_step: int = Int(10000, min=0, max=10000)
    noise_mode: str = Choice(NOISE_MODES, "GPU(=A1111)")
    return_with_leftover_noise: bool = Bool(False)
    batch_seed_mode: str = Choice(BATCH_SEED_MODES, "incremental")
    variation_seed: int = Int(0, min=0, max=SEED_MAX)
    variation_strength: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    variation_method: str = Choice(VARIATION_METHODS, "linear")
    internal_seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("KSamplerAdvanced //Inspire",), optional=("variation_method", "internal_seed"),
                       widgets=_old_saves(1, 16, True))
    estimate = classmethod(_estimate)

    def run(self):
        return _advanced(self, self.model, self.positive, self.negative)


class InspireKSamplerPipe(Node):
    __doc__ = """KSampler //Inspire on the basic_pipe's model and prompts (linear variation); gives
the latent and the pipe's vae.""" + NOISE_HELP
    category = "InspirePack/a1111_compat"
    basic_pipe: BASIC_PIPE
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(INSPIRE_SCHEDULERS, "simple")
    latent_image: LATENT
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    noise_mode: str = Choice(NOISE_MODES, "GPU(=A1111)")
    batch_seed_mode: str = Choice(BATCH_SEED_MODES, "incremental")
    variation_seed: int = Int(0, min=0, max=SEED_MAX)
    variation_strength: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    internal_seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"latent": LATENT, "vae": VAE}
    comfy = ComfyAlias(("KSamplerPipe //Inspire",), optional=("internal_seed",), widgets=_old_saves(0, 12, False))
    estimate = classmethod(_estimate)

    def run(self):
        model, _, vae, positive, negative = _pipe(self.basic_pipe)
        latent = inspire_sample(model, positive, negative, self.latent_image, self.seed, self.steps, self.cfg,
                                self.sampler_name, self.scheduler, self.noise_mode, self.batch_seed_mode,
                                self.variation_seed, self.variation_strength, "linear", self.internal_seed,
                                denoise=self.denoise)
        return latent, vae


class InspireKSamplerAdvancedPipe(Node):
    __doc__ = """KSamplerAdvanced //Inspire on the basic_pipe's model and prompts (linear variation);
gives the latent and the pipe's vae.""" + NOISE_HELP
    category = "InspirePack/a1111_compat"
    basic_pipe: BASIC_PIPE
    add_noise: bool = Bool(True)
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.5)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(INSPIRE_SCHEDULERS, "simple")
    latent_image: LATENT
    start_at_step: int = Int(0, min=0, max=10000)
    end_at_step: int = Int(10000, min=0, max=10000)
    noise_mode: str = Choice(NOISE_MODES, "GPU(=A1111)")
    return_with_leftover_noise: bool = Bool(False)
    batch_seed_mode: str = Choice(BATCH_SEED_MODES, "incremental")
    variation_seed: int = Int(0, min=0, max=SEED_MAX)
    variation_strength: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    internal_seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"latent": LATENT, "vae": VAE}
    comfy = ComfyAlias(("KSamplerAdvancedPipe //Inspire",), optional=("internal_seed",),
                       widgets=_old_saves(1, 15, False))
    estimate = classmethod(_estimate)

    def run(self):
        model, _, vae, positive, negative = _pipe(self.basic_pipe)
        return _advanced(self, model, positive, negative), vae


class InspireRandomNoise(Node):
    __doc__ = """The Inspire Pack's starting noise as a NOISE for SamplerCustomAdvanced: noise_seed's
noise as noise_mode and batch_seed_mode draw it, with variation noise mixed in; the sampler's
added noise (ancestral, SDE) is drawn with internal_seed.""" + NOISE_HELP
    category = "InspirePack/a1111_compat"
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    noise_mode: str = Choice(NOISE_MODES, "GPU(=A1111)")
    batch_seed_mode: str = Choice(BATCH_SEED_MODES, "incremental")
    variation_seed: int = Int(0, min=0, max=SEED_MAX)
    variation_strength: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    variation_method: str = Choice(VARIATION_METHODS, "linear")
    internal_seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"noise": NOISE}
    comfy = ComfyAlias(("RandomNoise //Inspire",), optional=("variation_method", "internal_seed"),
                       widgets=_old_saves(0, 8, True))

    def run(self):
        return inspire_noise_source(self.noise_seed, self.noise_mode, self.batch_seed_mode, self.variation_seed,
                                    self.variation_strength, self.variation_method, self.internal_seed)
