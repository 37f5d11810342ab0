"""ltdrdata's ComfyUI Inspire Pack: its samplers and model-free nodes, under the pack's class names,
inputs and outputs.

Read from ltdrdata/ComfyUI-Inspire-Pack: inspire/a1111_compat.py at
0a009c149999c335c323e2f7fc03b42865bf454a (KSampler / KSamplerAdvanced //Inspire, their [pipe]
forms, RandomNoise //Inspire), the noise in inspire/libs/utils.py at
ca5d942cefa0f75e3c4e778f75f71811f4abb65f (prepare_noise, mix_noise, slerp), the scheduler list of
inspire/libs/common.py at 04223778ea4fad60a4ceb6798f063ec6cdc0e1e0, and Impact Pack's
separated_sample / calculate_sigmas (store files 25505843378, 1450752583), which the pack's samplers
run through; inspire/prompt_support.py as the store holds it newest (store file 11146785535: the
inspire_prompts folder, load_cap / start_index, WildcardEncode's three modes; the store names
commit 090331c77110327b14b20d5929eabace0b42b1ec for that path, an older text) and the editor
hooks of inspire/inspire_server.py at 1a5abae99e43b95f822a3d0c73c7d79361f2146b (GlobalSeed,
GlobalSampler, the wildcard populate).

Nodes: KSampler //Inspire, KSamplerAdvanced //Inspire, KSamplerPipe //Inspire,
KSamplerAdvancedPipe //Inspire, RandomNoise //Inspire, KSamplerProgress //Inspire,
KSamplerAdvancedProgress //Inspire, SeedExplorer //Inspire; GlobalSeed, SeedLogger,
GlobalSampler, PromptBuilder, PromptExtractor, LoadPromptsFromFile, LoadSinglePromptFromFile,
LoadPromptsFromDir, UnzipPrompt, ZipPrompt, BindImageListPromptList, WildcardEncode,
MakeBasicPipe, ListCounter, RandomGeneratorForList, RemoveControlNet (each "... //Inspire").
The pack's list, batch, mask, folder, noise and guidance utilities are in
nodes/pack_nodes_inspire_utils.py, the LoRA Block Weight nodes in nodes/pack_nodes_inspire_lbw.py.

Left out: the regional samplers (Impact's regional sampler), the model-based nodes, the cache
backends and their ShowCachedInfo / cache nodes (the pack's shared model cache; the loaders' own
cache serves here), HyperTile (a test node of the pack's), scheduler_func_opt (a SCHEDULER_FUNC no
node here gives) and ToIPAdapterPipe (its pipe feeds Impact's IPAdapter SEGS nodes, which are left
out).
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re

from graphflow.api import ANY, CLIP, CONDITIONING, IMAGE, INT, LATENT, MODEL, NOISE, STRING, VAE, Bool, Choice, \
    ComfyAlias, Float, Int, ListOf, Node, NodeInputError, Text, folders, show, socket_type, warn
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from graphflow.folders import UnsafePathError
from nodes.conditioning import CLIPSetLastLayer
from nodes.pack_nodes_impact import BASIC_PIPE, LORA_PROMPT, MODES, OLD_MODES, WILDCARD_PROMPT, ImpactWildcardEncode, \
    _pipe, encode_with_loras, populated, process_wildcards
from nodes.loaders import LoadCheckpoint
from nodes.pack_nodes import _core
from nodes.pack_nodes_adv_clip import TOKEN_NORMALIZATIONS, WEIGHT_INTERPRETATIONS, advanced_encode
from nodes.sampling import SEED_MAX, _estimate, _reporter
from nodes.strings import MAX_TEXT

COMFY_PACK = "comfyui-inspire-pack"  # the custom node pack this module's ComfyUI classes come from

# -- the samplers' noise ---------------------------------------------------------------------------

NOISE_MODES = ("GPU(=A1111)", "CPU")
NOISE_IMAGE = socket_type("NOISE_IMAGE", "#78909c", "Inspire Pack's starting noise: a [B, C, h, w] tensor")
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
internal_seed drives the noise ancestral and SDE samplers add (the pack's widget default is 0; an
API prompt without it takes the seed, as the pack's Python does).
A UI save of an older version is read as that version sampled: internal_seed the seed, and before
batch_seed_mode existed, comfy mode without variation (today's editor would fill in its defaults,
incremental and 0, which give other images than the save's)."""


def _noise_device(noise_mode: str, setting: str = "noise_mode GPU(=A1111)"):
    """Where the pack's noise_mode draws the noise: the CUDA device for GPU(=A1111), where there is one
    (elsewhere the CPU, with a warning naming `setting`: also Efficiency Nodes' rng_source gpu)."""
    import torch

    if noise_mode == "CPU":
        return torch.device("cpu")
    from graphflow.device import compute_device

    device = compute_device()
    if device.type == "cuda":
        return device
    warn(f"{setting} draws the starting noise with the CUDA generator, and there is no CUDA device "
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
        raise NodeInputError("batch_seed_mode", f"expected one of {', '.join(BATCH_SEED_MODES)}, "
                                                f"got {batch_seed_mode!r}")
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
        from graphflow.sampling.noise import initial_noise

        try:
            noise = initial_noise(samples, seed, batch_index, device)
        except ValueError as e:  # an index that is negative or no number, or one too few / many
            raise NodeInputError("latent_image", f"the latent's {e}") from None
    return noise.float().cpu()


@functools.cache
def _noise_class():
    """The NOISE the pack's RandomNoise gives (a NoiseSource, so that SamplerCustomAdvanced takes
    it), made on first use: graphflow.sampling imports torch, which listing nodes doesn't need."""
    from dataclasses import dataclass, field

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
        given: object = field(default=None, compare=False)  # a NOISE_IMAGE to start from instead

        def generate(self, samples, batch_index=None):
            if self.given is not None:
                if tuple(self.given.shape) != tuple(samples.shape):
                    raise NodeInputError("noise_opt", f"the noise {tuple(self.given.shape)} does not fit the latent "
                                                      f"{tuple(samples.shape)} (make it from this latent, for this "
                                                      "model's latent type)")
                return self.given.float().cpu()
            return inspire_noise(samples, self.noise_seed, batch_index, _noise_device(self.noise_mode),
                                 self.batch_seed_mode, self.variation_seed, self.variation_strength,
                                 self.variation_method)

    return InspireNoise


def inspire_noise_source(noise_seed, noise_mode, batch_seed_mode, variation_seed, variation_strength,
                         variation_method="linear", internal_seed=None, given=None):
    return _noise_class()(seed=noise_seed if internal_seed is None else internal_seed, noise_seed=noise_seed,
                          noise_mode=noise_mode, batch_seed_mode=batch_seed_mode, variation_seed=variation_seed,
                          variation_strength=variation_strength, variation_method=variation_method, given=given)


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
                   batch_seed_mode, variation_seed, variation_strength, variation_method, internal_seed,
                   on_step=None, given_noise=None, **options):
    """The pack's inspire_ksampler: the core sampler's run with the pack's starting noise (or
    given_noise, a NOISE_IMAGE, used even with add_noise off, as the pack uses it);
    on_step(info) is also called at each step (the sampler's callback payload). Run through
    Impact's separated_sample, which gives, when the leftover noise is not kept
    (KSamplerAdvanced's return_with_leftover_noise off), the last step's estimate of the clean
    latent rather than the sampler's result: the same for most samplers (their last step to
    noise 0 lands on it), not for multistep ones such as uni_pc."""
    from graphflow.sampling.pipeline import sample

    if scheduler not in INSPIRE_SCHEDULERS:
        raise NodeInputError("scheduler", f"expected one of {', '.join(INSPIRE_SCHEDULERS)}, got {scheduler!r}")
    if noise_mode not in NOISE_MODES:
        raise NodeInputError("noise_mode", f"expected GPU(=A1111) or CPU, got {noise_mode!r}")
    noise = inspire_noise_source(seed, noise_mode, batch_seed_mode, variation_seed, variation_strength,
                                 variation_method, internal_seed, given_noise)
    if given_noise is not None:
        options["add_noise"] = True
    report, last = _reporter(), {}

    def callback(info):
        report(info)
        last["denoised"] = info["denoised"]
        if on_step is not None:
            on_step(info)

    out = sample(model, noise.seed, steps, cfg, sampler_name, _scheduler(scheduler), positive, negative, latent,
                 callback=callback, preview_every=max(1, steps // 20), starting_noise=noise, **options)
    if "start_step" in options and not options.get("return_with_leftover_noise") and "denoised" in last:
        return {**out, "samples": model.latent_format.process_out(last["denoised"].float()).cpu()}
    return out


SEED = object()  # in OLD_TAIL: the save's own seed


def _old_saves(seed_at: int, tail_at: int, tail: tuple):
    """A UI save of an older version read as today's: its missing last widgets (from tail_at on)
    filled in with what that version did: batch_seed_mode comfy (one draw for the batch, before
    the mode existed), no variation, and internal_seed the seed (the versions before it sampled
    with the seed)."""
    def upgraded(values: list) -> list:
        if tail_at <= len(values) < tail_at + len(tail):
            values = values + [values[seed_at] if v is SEED else v for v in tail[len(values) - tail_at:]]
        return values

    return upgraded


def _seed_as_internal_seed(seed_name: str):
    """An API prompt without internal_seed read as the pack's Python runs it: internal_seed the
    seed (the widget's default, 0, is what its editor writes)."""
    def filled(inputs: dict) -> dict:
        if "internal_seed" not in inputs and seed_name in inputs:
            inputs["internal_seed"] = inputs[seed_name]
        return inputs

    return filled


SAMPLER_TAIL = ("comfy", 0, 0.0, "linear", SEED)  # batch_seed_mode .. internal_seed
PIPE_TAIL = ("comfy", 0, 0.0, SEED)  # the pipes have no variation_method


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
                       widgets=_old_saves(0, 8, SAMPLER_TAIL), api_inputs=_seed_as_internal_seed("seed"))
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
                          add_noise=node.add_noise, return_with_leftover_noise=node.return_with_leftover_noise,
                          given_noise=node.noise_opt)


class InspireKSamplerAdvanced(Node):
    __doc__ = """KSamplerAdvanced with the Inspire Pack's starting noise: the core KSamplerAdvanced's
steps start_at_step..end_at_step, add_noise and return_with_leftover_noise (here switches), the
noise drawn as noise_mode and batch_seed_mode say, with variation noise mixed in. The scheduler
list adds Impact's AYS, GITS[coeff=1.2] and OSS schedules. With return_with_leftover_noise off it
gives the last step's estimate of the clean latent, as the pack (through Impact's sampling) does:
the result itself for most samplers, not for multistep ones such as uni_pc. noise_opt (Seed
Explorer's NOISE_IMAGE) is the starting noise instead, even with add_noise off. SDE samplers draw
their Brownian noise over the sampled part's noise range (the pack: the whole schedule's, which
differs when start_at_step > 0).""" + NOISE_HELP
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
    noise_opt: NOISE_IMAGE = None
    internal_seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("KSamplerAdvanced //Inspire",), optional=("variation_method", "internal_seed"),
                       widgets=_old_saves(1, 11, SAMPLER_TAIL), api_inputs=_seed_as_internal_seed("noise_seed"))
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
    comfy = ComfyAlias(("KSamplerPipe //Inspire",), optional=("internal_seed",), widgets=_old_saves(0, 8, PIPE_TAIL),
                       api_inputs=_seed_as_internal_seed("seed"))
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
gives the latent and the pipe's vae. Without leftover noise it gives the last step's estimate of the
clean latent, as KSamplerAdvanced //Inspire.""" + NOISE_HELP
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
    noise_opt: NOISE_IMAGE = None
    internal_seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"latent": LATENT, "vae": VAE}
    comfy = ComfyAlias(("KSamplerAdvancedPipe //Inspire",), optional=("internal_seed",),
                       widgets=_old_saves(1, 11, PIPE_TAIL), api_inputs=_seed_as_internal_seed("noise_seed"))
    estimate = classmethod(_estimate)

    def run(self):
        model, _, vae, positive, negative = _pipe(self.basic_pipe)
        return _advanced(self, model, positive, negative), vae


def _progress(node, model, positive, negative, latent, seed, steps, **options) -> tuple:
    """The pack's progress samplers: the latent, and the latents along the way as one batch: the
    input's (unless omit_start_latent), the sampler's latent at every interval-th step and at the
    last (before that step, mapped out of model space), the result's (unless omit_final_latent)."""
    import torch

    taken = [] if node.omit_start_latent else [latent["samples"]]

    def on_step(info):
        if info["i"] == info["total"] - 1 or info["i"] % node.interval == 0:
            taken.append(model.latent_format.process_out(info["x"].float()).cpu())

    out = inspire_sample(model, positive, negative, latent, seed, steps, node.cfg, node.sampler_name, node.scheduler,
                         node.noise_mode, "comfy", 0, 0.0, "linear", None, on_step=on_step, **options)
    taken += [] if node.omit_final_latent else [out["samples"]]
    return out, {"samples": torch.cat(taken)} if taken else out


class InspireKSamplerProgress(Node):
    """KSampler //Inspire (comfy batch noise, no variation, the seed for added noise) that also
    gives the latents along the way (progress_latent): the input's unless omit_start_latent, the
    sampler's latent at every interval-th step and the last one, and the result unless
    omit_final_latent, as one batch, to decode as an animation of the denoising. Run as the pack
    runs it: steps / denoise steps from the matching step, giving the last step's estimate of the
    clean latent (as KSamplerAdvanced //Inspire without leftover noise). denoise 0 is refused (the
    pack fails)."""
    category = "InspirePack/analysis"
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
    interval: int = Int(1, min=1, max=10000)
    omit_start_latent: bool = Bool(True)
    omit_final_latent: bool = Bool(False)
    outputs = {"latent": LATENT, "progress_latent": LATENT}
    comfy = ComfyAlias(("KSamplerProgress //Inspire",))
    estimate = classmethod(_estimate)

    def run(self):
        if self.denoise == 0:
            raise NodeInputError("denoise", "denoise 0 leaves no step to run (the pack divides by it)")
        from graphflow.sampling.schedules import schedule_length

        total = schedule_length(self.steps, self.denoise)  # int(steps / denoise), refused past 20,000 steps
        return _progress(self, self.model, self.positive, self.negative, self.latent_image, self.seed, total,
                         start_step=total - self.steps, end_step=total, return_with_leftover_noise=False,
                         counted_from=total - self.steps)  # prompt editing counts the user's steps, as KSampler's


class InspireKSamplerAdvancedProgress(Node):
    """KSamplerAdvanced //Inspire (comfy batch noise, no variation) that also gives the latents
    along the way, as KSampler Progress does, after prev_progress_latent_opt's when given."""
    category = "InspirePack/analysis"
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
    interval: int = Int(1, min=1, max=10000)
    omit_start_latent: bool = Bool(False)
    omit_final_latent: bool = Bool(False)
    prev_progress_latent_opt: LATENT = None
    outputs = {"latent": LATENT, "progress_latent": LATENT}
    comfy = ComfyAlias(("KSamplerAdvancedProgress //Inspire",))
    estimate = classmethod(_estimate)

    def run(self):
        import torch

        out, progress = _progress(self, self.model, self.positive, self.negative, self.latent_image, self.noise_seed,
                                  self.steps, start_step=self.start_at_step, end_step=self.end_at_step,
                                  add_noise=self.add_noise, return_with_leftover_noise=self.return_with_leftover_noise)
        if self.prev_progress_latent_opt is not None:
            earlier = self.prev_progress_latent_opt["samples"]
            progress = {**progress, "samples": torch.cat([earlier, progress["samples"]])}
        return out, progress


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
                       widgets=_old_saves(0, 6, SAMPLER_TAIL[3:]), api_inputs=_seed_as_internal_seed("noise_seed"))

    def run(self):
        return inspire_noise_source(self.noise_seed, self.noise_mode, self.batch_seed_mode, self.variation_seed,
                                    self.variation_strength, self.variation_method, self.internal_seed)


MAX_SEED_ENTRIES = 256  # SeedExplorer's seed_prompt entries (the pack has no limit; each draws a noise)


def _check_seed(seed: int, entry) -> None:
    if not 0 <= seed <= SEED_MAX:
        raise NodeInputError("seed_prompt", f"{entry!r}: a seed is 0 .. {SEED_MAX}")


class InspireSeedExplorer(Node):
    """Starting noise to explore variations of a seed, for KSamplerAdvanced //Inspire's noise_opt:
    seed_prompt lists "seed, seed:strength, seed:strength ..." (line breaks ignored): the first
    seed's noise (initial_batch_seed_mode incremental or comfy, drawn as noise_mode says), then
    each seed:strength's noise (one image's, the same for each) mixed in turn as
    (1 - strength) * noise + strength * variation (the pack's plain mix here: not rescaled,
    variation_method unused); enable_additional adds additional_seed:additional_strength last. An
    entry that is not seed:strength is skipped with a warning, as the pack skips it; a first seed
    that is not a number is an error (the pack gives zero noise), as is a seed outside 0 ..
    2^64 - 1. At most 256 entries (the pack has no limit; each draws a noise). model fits an
    empty latent's channels to the model's."""
    category = "InspirePack/Prompt"
    latent: LATENT
    seed_prompt: str = Text("", multiline=True)
    enable_additional: bool = Bool(True)
    additional_seed: int = Int(0, min=0, max=SEED_MAX)
    additional_strength: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    noise_mode: str = Choice(NOISE_MODES, "GPU(=A1111)")
    initial_batch_seed_mode: str = Choice(("incremental", "comfy"), "incremental")
    variation_method: str = Choice(VARIATION_METHODS, "linear")
    model: MODEL = None
    outputs = {"NOISE_IMAGE": NOISE_IMAGE}
    comfy = ComfyAlias(("SeedExplorer //Inspire",), optional=("variation_method",))

    def run(self):
        import torch

        samples = _samples(self.latent)
        if self.model is not None:
            from graphflow.sampling.pipeline import _latent_samples
            samples = _latent_samples(self.model, self.latent)
        items = [] if not self.seed_prompt.replace("\n", "").strip() else \
            self.seed_prompt.replace("\n", "").strip().split(",")
        if len(items) > MAX_SEED_ENTRIES:  # each entry draws a full noise: refused before drawing any
            raise NodeInputError("seed_prompt", f"{len(items)} entries; at most {MAX_SEED_ENTRIES} "
                                                f"(a seed, then seed:strength ones)")
        if self.enable_additional:
            items.append((self.additional_seed, self.additional_strength))
        if not items:
            raise NodeInputError("seed_prompt", "no seed given: write one (1234, 5678:0.3 ...) or enable_additional")
        head = items[0]
        try:
            seed = int(head[0] if isinstance(head, tuple) else head)
        except ValueError:
            raise NodeInputError("seed_prompt", f"the first entry must be a seed (a whole number), "
                                                f"got {head!r}") from None
        _check_seed(seed, head)
        device = _noise_device(self.noise_mode)
        try:
            noise = inspire_noise(samples, seed, None, device, self.initial_batch_seed_mode)
        except NodeInputError as e:  # the seed here is seed_prompt's
            raise NodeInputError("seed_prompt", str(e)) from None
        for item in items[1:]:
            parts = item.split(":") if isinstance(item, str) else item
            try:
                variation_seed, strength = int(parts[0]), float(parts[1])
                if len(parts) != 2:
                    raise ValueError
            except (ValueError, IndexError):
                warn(f"seed_prompt: {item!r} is not seed:strength; skipped, as the pack skips it")
                continue
            _check_seed(variation_seed, item)
            if not math.isfinite(strength):  # inf / nan would make the noise NaN
                raise NodeInputError("seed_prompt", f"{item!r}: the strength must be a finite number")
            if strength == 0:
                continue
            generator = torch.Generator(device).manual_seed(variation_seed)
            variation = torch.randn([1, *samples.shape[1:]], generator=generator, device=device).cpu()
            noise = (1 - strength) * noise + strength * variation
        return noise


# -- seeds and prompts -------------------------------------------------------------------------------

ZIPPED_PROMPT = socket_type("ZIPPED_PROMPT", "#a1887f", "Inspire Pack's (positive, negative, name) texts of one prompt")
RANDOM_VALUE_MAX = 1125899906842624  # 2**50: RandomGeneratorForList draws 0 .. this, as the pack
GLOBAL_SEED_ACTIONS = ("fixed", "increment", "decrement", "randomize", "increment for each node",
                       "decrement for each node", "randomize for each node")
PROMPT_KEYWORDS = ("positive:", "negative:", "name:")
_KEYWORD = re.compile("|".join(PROMPT_KEYWORDS))
_KEYWORD_ANY_CASE = re.compile("|".join(PROMPT_KEYWORDS), re.IGNORECASE)
_DASHES = re.compile("-+")


class InspireGlobalSeed(Node):
    """The pack's Global Seed. In the pack's editor it sets, as a prompt is queued, the seed and
    noise_seed widgets of every node to its value (action: fixed, increment / decrement /
    randomize once per queue, or "... for each node" counting on from node to node; mode:
    before or after queueing) and writes them back into the workflow, so a saved workflow holds
    the seeds its last run used: here they are read as saved and this node does nothing (as in an
    API prompt, which the pack's hook leaves alone without its editor's widget map). Neither the
    seeds nor $GlobalSeed.value$ in texts are rewritten here."""
    category = "InspirePack/Prompt"
    output_node = True
    value: int = Int(0, min=0, max=SEED_MAX)
    mode: bool = Bool(True)
    action: str = Choice(GLOBAL_SEED_ACTIONS, "fixed")
    last_seed: str = Text("")
    comfy = ComfyAlias(("GlobalSeed //Inspire",))

    def run(self):
        return None


class InspireSeedLogger(Node):
    """The pack's Seed Logger: shows the seed with the seeds logged before it (the seeds text, at
    most limit lines in all; 0: no limit). The pack writes that back into its seeds widget; here
    it is shown (the widget keeps what the save holds)."""
    category = "InspirePack/Prompt"
    output_node = True
    seed: int = Int(0, min=0, max=SEED_MAX)
    seeds: str = Text("", multiline=True)
    limit: int = Int(5, min=0, max=SEED_MAX)
    comfy = ComfyAlias(("SeedLogger //Inspire",))

    def run(self):
        earlier = self.seeds.split("\n")[:self.limit - 1] if self.limit > 0 else [self.seeds]
        show(text=["\n".join([str(self.seed), *earlier])])
        return None


class InspireGlobalSampler(Node):
    """The pack's Global Sampler: in its editor it sets every node's sampler_name and scheduler
    widgets to these as a prompt is queued, writing them back into the workflow; a saved
    workflow holds them, read as saved. This node itself does nothing."""
    category = "InspirePack/Prompt"
    output_node = True
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(INSPIRE_SCHEDULERS, "simple")
    comfy = ComfyAlias(("GlobalSampler //Inspire",))

    def run(self):
        return None


class InspirePromptBuilder(Node):
    """The pack's Prompt Builder: gives text. category and preset are its editor's pickers, which
    add a preset of the pack's prompt-builder.yaml to the text (that file is not shipped here);
    the node itself passes the text on."""
    category = "InspirePack/Prompt"
    preset_category: str = Text("#PLACEHOLDER")
    preset: str = Text("#PRESET")
    text: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("PromptBuilder //Inspire",), inputs={"category": "preset_category"})

    def run(self):
        return self.text


def prompt_blocks(text: str) -> list[str]:
    """text split where the pack's re.split(r'\\n\\s*-+\\s*\\n') splits it: at a run of dashes with
    whitespace around it holding a line break on each side (from the first break before to the
    last after). Found run by run, so that long whitespace is scanned once."""
    blocks, start = [], 0
    for dashes in _DASHES.finditer(text):
        before = dashes.start()
        while before > start and text[before - 1].isspace():
            before -= 1
        after = dashes.end()
        while after < len(text) and text[after].isspace():
            after += 1
        first = text.find("\n", before, dashes.start())
        last = text.rfind("\n", dashes.end(), after)
        if first != -1 and last != -1:
            blocks.append(text[start:first])
            start = last + 1
    return blocks + [text[start:]]


def parse_prompt(block: str, keyword=_KEYWORD) -> dict[str, str] | None:
    """{positive, negative, name} of a block as the pack's pattern reads it: the block starts with
    one of positive: / negative: / name:, each part runs to the next of them (anywhere, a line
    break or not), a later one of a name replacing an earlier; None when the block doesn't start
    so."""
    marks = list(keyword.finditer(block))
    if not marks or marks[0].start() != 0:
        return None
    parts = {}
    for mark, following in zip(marks, marks[1:] + [None]):
        parts[mark.group(0).lower()[:-1]] = block[mark.end():following.start() if following else len(block)].strip()
    return parts


def zipped_prompts(text: str, default_name: str, what: str, keyword=_KEYWORD) -> list[tuple[str, str, str]]:
    """(positive, negative, name) of each prompt in a prompt file's text, blocks split by dash
    lines. A block that isn't a prompt is skipped with a warning; one lacking positive: or
    negative: ends the reading there (the pack's error), with a warning naming it."""
    prompts = []
    for number, block in enumerate(prompt_blocks(text), 1):
        parts = parse_prompt(block, keyword)
        if parts is None:
            warn(f"{what}: prompt {number} is not in the prompt format (positive: ... negative: ...): skipped")
            continue
        if "positive" not in parts or "negative" not in parts:
            warn(f"{what}: prompt {number} lacks positive: or negative:; the pack stops reading there, "
                 f"so the {len(prompts)} prompts before it are given")
            break
        prompts.append((parts["positive"], parts["negative"], parts.get("name") or default_name))
    return prompts


PROMPT_BLACKLIST = ("filename_prefix",)  # the pack leaves these STRING inputs out


class InspirePromptExtractor(Node):
    """Read the prompt texts a picture of the inputs folder was made with (ComfyUI's saved API
    prompt in it): info lists every text input as "node.input [class] ==> text", and positive_id /
    negative_id ("6.text", say) pick the two given. Only the inputs of ComfyUI's core classes are
    known here (the pack lists those of every class installed with it); filename_prefix is left
    out, as the pack leaves it. A picture without a ComfyUI workflow gives empty texts. The pack
    gives (class, text) pairs there by mistake; here the texts themselves."""
    category = "InspirePack/Prompt"
    output_node = True
    image: str = Choice(folders.list_inputs, upload="image", description="a picture in the inputs folder")
    positive_id: str = Text("")
    negative_id: str = Text("")
    info: str = Text("", multiline=True)
    outputs = {"positive": STRING, "negative": STRING}
    comfy = ComfyAlias(("PromptExtractor //Inspire",), folders={"image": "input"})

    @classmethod
    def fingerprint(cls, image="", **widgets):
        try:
            return hashlib.sha256(folders.input_path(image).read_bytes()).hexdigest()
        except (OSError, UnsafePathError, ValueError):
            return "missing"

    def run(self):
        import json

        from graphflow.comfy_format import comfy_catalogue
        from graphflow.picture_metadata import picture_text
        from graphflow.workflow import WorkflowFormatError

        try:
            chunks = picture_text(folders.input_path(self.image).read_bytes())
            prompt = json.loads(chunks["prompt"]) if "workflow" in chunks and "prompt" in chunks else None
        except (OSError, UnsafePathError, WorkflowFormatError, ValueError) as e:
            raise NodeInputError("image", f"can't read {self.image!r}: {e}") from None
        if not isinstance(prompt, dict):
            show(text=["There is no prompt information within the image."])
            return "", ""
        catalogue, texts = comfy_catalogue(), {}
        for node_id, node in prompt.items():
            known = catalogue.get(node.get("class_type")) if isinstance(node, dict) else None
            inputs = node.get("inputs") if known else None
            for entry in known["inputs"] if known and isinstance(inputs, dict) else []:
                if entry.get("type") == "STRING" and entry["name"] in inputs and entry["name"] not in PROMPT_BLACKLIST:
                    texts[f"{node_id}.{entry['name']}"] = (node["class_type"], inputs[entry["name"]])
        show(text=["".join(f"{key} [{kind}] ==> {value}\n" for key, (kind, value) in texts.items())])

        def picked(key: str, input_name: str) -> str:
            value = texts.get(key.strip(), (None, ""))[1]
            if not isinstance(value, str):
                warn(f"{input_name} {key!r} is linked to another node's output in the saved prompt: no text")
                return ""
            return value

        return picked(self.positive_id, "positive_id"), picked(self.negative_id, "negative_id")


def _prompt_files() -> list[str]:
    return folders.list_files_inside("inspire_prompts", (".txt",))


def _prompt_file_path(name: str, input_name: str):
    try:
        return folders.find_model("inspire_prompts", name, inside=True)
    except (FileNotFoundError, UnsafePathError) as e:
        raise NodeInputError(input_name, f"no prompt file {name!r} in the inspire_prompts folder "
                                         f"(models/inspire_prompts): {e}") from None


def _read_prompt_file(name: str, input_name: str = "prompt_file") -> str:
    path = _prompt_file_path(name, input_name)
    if path.stat().st_size > MAX_TEXT:
        raise NodeInputError(input_name, f"{name!r} is larger than {MAX_TEXT:,} bytes")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NodeInputError(input_name, f"{name!r} is not UTF-8 text (the pack reads UTF-8 only)") from None


def _with_text_slot(values: list) -> list:
    """A save without text_data_opt's slot (its editor kept the socket-only input out of
    widgets_values): an empty text put in its place."""
    return [values[0], "", *values[1:]] if len(values) == 4 and isinstance(values[1], bool) else values


def _file_fingerprint(name: str) -> str:
    """The prompt file's size and modification time (not its text: it may be larger than is read)."""
    try:
        return folders.model_state("inspire_prompts", name, inside=True)
    except (OSError, UnsafePathError):
        return "missing"


class InspireLoadPromptsFromFile(Node):
    """Read a prompt file of the inspire_prompts folder (models/inspire_prompts; the pack's own
    prompts/ folder's examples are not shipped), or text_data_opt when it is given: prompts
    separated by lines of dashes, each "positive: ...", "negative: ..." and optionally
    "name: ..." (the prompt's name; default the file's). Gives the prompts as a list, from
    start_index on (-1: the last), at most load_cap of them (0: all); count is the file's number of
    prompts, remaining_count those after the ones given. reload is the pack's cache switch: a
    changed file is read again here either way."""
    category = "InspirePack/Prompt"
    prompt_file: str = Choice(_prompt_files)
    text_data_opt: str = Text("")
    reload: bool = Bool(False)
    load_cap: int = Int(0, min=0)
    start_index: int = Int(0, min=-1, max=SEED_MAX)
    outputs = {"zipped_prompt": ListOf(ZIPPED_PROMPT), "count": INT, "remaining_count": INT}
    comfy = ComfyAlias(("LoadPromptsFromFile //Inspire",), optional=("text_data_opt", "reload", "load_cap",
                                                                      "start_index"), widgets=_with_text_slot)

    @classmethod
    def fingerprint(cls, prompt_file="", text_data_opt="", **widgets):
        return None if text_data_opt else _file_fingerprint(prompt_file)

    def run(self):
        text = self.text_data_opt or _read_prompt_file(self.prompt_file)
        prompts = zipped_prompts(text, self.prompt_file, "LoadPromptsFromFile")
        given = prompts[self.start_index:]
        remaining = max(0, len(given) - self.load_cap) if self.load_cap > 0 else 0
        if self.load_cap > 0:
            given = given[:self.load_cap]
        return given, len(prompts), remaining


class InspireLoadSinglePromptFromFile(Node):
    """One prompt of a prompt file of the inspire_prompts folder (or of text_data_opt), as Load
    Prompts From File reads them: the one at index (past the last: the last), as a one-item list."""
    category = "InspirePack/Prompt"
    prompt_file: str = Choice(_prompt_files)
    index: int = Int(0, min=0, max=SEED_MAX)
    text_data_opt: str = Text("")
    outputs = {"zipped_prompt": ListOf(ZIPPED_PROMPT)}
    comfy = ComfyAlias(("LoadSinglePromptFromFile //Inspire",), optional=("text_data_opt",))

    @classmethod
    def fingerprint(cls, prompt_file="", text_data_opt="", **widgets):
        return None if text_data_opt else _file_fingerprint(prompt_file)

    def run(self):
        text = self.text_data_opt or _read_prompt_file(self.prompt_file)
        blocks = prompt_blocks(text)
        block = blocks[self.index] if self.index < len(blocks) else blocks[-1]
        return zipped_prompts(block, self.prompt_file, "LoadSinglePromptFromFile")


def _prompt_dirs() -> list[str]:
    """The top folders of the inspire_prompts folder that hold prompt files."""
    return sorted({name.split("/")[0] for name in _prompt_files() if "/" in name})


class InspireLoadPromptsFromDir(Node):
    """Every prompt of the .txt files under a folder of the inspire_prompts folder, files in
    path order, read as Load Prompts From File reads one (the keywords in any case here, as the
    pack's folder reader); a prompt's default name is its file's path. start_index and load_cap
    as in Load Prompts From File. The files read add up to at most 10,000,000 bytes (the pack
    sets no limit)."""
    category = "InspirePack/Prompt"
    prompt_dir: str = Choice(_prompt_dirs)
    reload: bool = Bool(False)
    load_cap: int = Int(0, min=0)
    start_index: int = Int(0, min=-1, max=SEED_MAX)
    outputs = {"zipped_prompt": ListOf(ZIPPED_PROMPT), "count": INT, "remaining_count": INT}
    comfy = ComfyAlias(("LoadPromptsFromDir //Inspire",), optional=("reload", "load_cap", "start_index"))

    @classmethod
    def fingerprint(cls, prompt_dir="", **widgets):
        names = [n for n in _prompt_files() if n.startswith(prompt_dir + "/")]
        return ",".join(f"{n}:{_file_fingerprint(n)}" for n in names)

    def run(self):
        names = [n for n in _prompt_files() if n.startswith(self.prompt_dir + "/")]
        if not names:
            raise NodeInputError("prompt_dir", f"no .txt prompt files under {self.prompt_dir!r} in the "
                                               "inspire_prompts folder")
        total = sum(_prompt_file_path(name, "prompt_dir").stat().st_size for name in names)
        if total > MAX_TEXT:  # checked before any is read
            raise NodeInputError("prompt_dir", f"the .txt files under {self.prompt_dir!r} add up to {total:,} "
                                               f"bytes; at most {MAX_TEXT:,} are read")
        prompts = []
        for name in names:
            prompts += zipped_prompts(_read_prompt_file(name, "prompt_dir"), name, "LoadPromptsFromDir",
                                      _KEYWORD_ANY_CASE)
        given = prompts[self.start_index:]
        remaining = max(0, len(given) - self.load_cap) if self.load_cap > 0 else 0
        if self.load_cap > 0:
            given = given[:self.load_cap]
        return given, len(prompts), remaining


def _zipped(value, input_name: str = "zipped_prompt") -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise NodeInputError(input_name, "expected a ZIPPED_PROMPT: (positive, negative, name)")
    return tuple(value)


class InspireUnzipPrompt(Node):
    """A zipped prompt's positive, negative and name texts."""
    category = "InspirePack/Prompt"
    zipped_prompt: ZIPPED_PROMPT
    outputs = {"positive": STRING, "negative": STRING, "name": STRING}
    comfy = ComfyAlias(("UnzipPrompt //Inspire",))

    def run(self):
        return _zipped(self.zipped_prompt)


class InspireZipPrompt(Node):
    """positive, negative and name_opt (default empty) as one zipped prompt."""
    category = "InspirePack/Prompt"
    positive: STRING
    negative: STRING
    name_opt: STRING = None
    outputs = {"zipped_prompt": ZIPPED_PROMPT}
    comfy = ComfyAlias(("ZipPrompt //Inspire",))

    def run(self):
        return self.positive, self.negative, "" if self.name_opt is None else self.name_opt


class InspireBindImageListPromptList(Node):
    """Pair a list of images with a list of zipped prompts: the prompts cut to the images'
    number, or filled up with (default_positive, default_negative, "default"). Gives the images
    and the prompts' positive, negative and name texts as lists. (The pack declares prompt_label
    as one value holding the whole list; it is a list here, as the other three.)"""
    category = "InspirePack/Prompt"
    input_is_list = True
    images: IMAGE
    zipped_prompts: ZIPPED_PROMPT
    default_positive: str = Text("", multiline=True)
    default_negative: str = Text("", multiline=True)
    outputs = {"image": ListOf(IMAGE), "positive": ListOf(STRING), "negative": ListOf(STRING),
               "prompt_label": ListOf(STRING)}
    comfy = ComfyAlias(("BindImageListPromptList //Inspire",))

    def run(self):
        prompts = [_zipped(p, "zipped_prompts") for p in self.zipped_prompts][:len(self.images)]
        prompts += [(self.default_positive[0], self.default_negative[0], "default")] * (len(self.images) - len(prompts))
        return list(self.images), [p[0] for p in prompts], [p[1] for p in prompts], [p[2] for p in prompts]


class InspireWildcardEncode(Node):
    """Impact Pack's wildcard encode with the Advanced CLIP Text Encode weighting: the wildcard text
    (mode populate: wildcard_text processed with the seed; fixed and reproduce: populated_text as it
    is, its wildcards then processed with the seed) with its <lora:...> tags applied and removed,
    each BREAK part encoded with token_normalization and weight_interpretation as Efficiency Nodes'
    encoder does (ComfyUI_ADV_CLIP_emb's), the parts concatenated. Gives the model and CLIP with the
    LoRAs, the conditioning and the processed text. The Select widgets are the editor's lists. A
    LoRA tag's LBW=vector;A=a;B=b part applies it with block weights (LoraLoaderBlockWeight
    //Inspire)."""
    category = "InspirePack/Prompt"
    model: MODEL
    clip: CLIP
    token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy++")
    wildcard_text: str = Text("", multiline=True)
    populated_text: str = Text("", multiline=True)
    mode: str = Choice(MODES, "populate")
    select_to_add_lora: str = Text(LORA_PROMPT)
    select_to_add_wildcard: str = Text(WILDCARD_PROMPT)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"model": MODEL, "clip": CLIP, "conditioning": CONDITIONING, "populated_text": STRING}
    comfy = ComfyAlias(("WildcardEncode //Inspire",), inputs={"Select to add LoRA": "select_to_add_lora",
                                                              "Select to add Wildcard": "select_to_add_wildcard"},
                       values={"mode": OLD_MODES})

    @classmethod
    def fingerprint(cls, **widgets):
        return ImpactWildcardEncode.fingerprint(**widgets)

    def run(self):
        text = process_wildcards(populated(self), self.seed)

        def encode(clip, part):
            return advanced_encode(clip, part, self.token_normalization, self.weight_interpretation,
                                   "populated_text")

        return (*encode_with_loras(text, self.model, self.clip, encode), text)


class InspireListCounter(Node):
    """Count the items of a list: run on a list signal, it gives base_value + 0, 1, 2 ... one per
    item (the pack counts its runs within one queued prompt); a single value gives base_value."""
    category = "InspirePack/Util"
    input_is_list = True
    signal: ANY
    base_value: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"INT": ListOf(INT)}
    comfy = ComfyAlias(("ListCounter //Inspire",))

    def run(self):
        count = max(len(self.signal), len(self.base_value))
        return [self.base_value[min(i, len(self.base_value) - 1)] + i for i in range(count)]


class InspireRandomGeneratorForList(Node):
    """Pass each item of signal on with a random whole number 0 .. 2**50. The pack seeds a
    generator with seed + the item's count but draws from Python's unseeded global one, so its
    values are random each run whatever the seed: they are here too (never reused from the cache)."""
    category = "InspirePack/Util"
    signal: ANY
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"signal": ANY, "random_value": INT}
    comfy = ComfyAlias(("RandomGeneratorForList //Inspire",))

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()

    def run(self):
        return self.signal, random.randint(0, RANDOM_VALUE_MAX)


class InspireRemoveControlNet(Node):
    """The conditioning without its ControlNets (each entry's control and control_apply_to_uncond
    options dropped)."""
    category = "InspirePack/Util"
    conditioning: CONDITIONING
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("RemoveControlNet //Inspire",))

    def run(self):
        return [(cond, {k: v for k, v in options.items() if k not in ("control", "control_apply_to_uncond")})
                for cond, options in self.conditioning]


class InspireMakeBasicPipe(Node):
    """Load a checkpoint, stop its text encoder at stop_at_clip_layer, and encode the positive and
    negative wildcard prompts as Wildcard Encode (Inspire) does (wildcard_mode populate: the
    wildcard texts processed with the seed; fixed and reproduce: the populated texts as they are;
    LoRA tags applied in turn, positive first, Advanced CLIP Text Encode weighting), into a
    BASIC_PIPE (vae_opt replacing the checkpoint's VAE). cache_key is ckpt_key_opt, or the
    checkpoint's name: the pack's shared checkpoint cache is not built (the loader's own cache
    serves). "Add selection to" and the Select widgets are the editor's."""
    category = "InspirePack/Prompt"
    ckpt_name: str = Choice(lambda: folders.list_models("checkpoints"), model_folder="checkpoints")
    ckpt_key_opt: str = Text("")
    positive_wildcard_text: str = Text("", multiline=True)
    negative_wildcard_text: str = Text("", multiline=True)
    add_selection_to: bool = Bool(True)
    select_to_add_lora: str = Text(LORA_PROMPT)
    select_to_add_wildcard: str = Text(WILDCARD_PROMPT)
    wildcard_mode: str = Choice(MODES, "populate")
    positive_populated_text: str = Text("", multiline=True)
    negative_populated_text: str = Text("", multiline=True)
    token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy++")
    stop_at_clip_layer: int = Int(-2, min=-24, max=-1)
    seed: int = Int(0, min=0, max=SEED_MAX)
    vae_opt: VAE = None
    outputs = {"basic_pipe": BASIC_PIPE, "cache_key": STRING}
    comfy = ComfyAlias(("MakeBasicPipe //Inspire",), inputs={"Add selection to": "add_selection_to",
                                                             "Select to add LoRA": "select_to_add_lora",
                                                             "Select to add Wildcard": "select_to_add_wildcard"},
                       values={"wildcard_mode": OLD_MODES})

    @classmethod
    def fingerprint(cls, ckpt_name="", **widgets):
        return folders.model_state("checkpoints", ckpt_name) + ImpactWildcardEncode.fingerprint()

    def run(self):
        model, clip, vae = _core(LoadCheckpoint, {"checkpoint": "ckpt_name"}, checkpoint=self.ckpt_name)
        clip = _core(CLIPSetLastLayer, clip=clip, stop_at_clip_layer=self.stop_at_clip_layer)

        conditionings = []
        for side in ("positive", "negative"):
            name = f"{side}_populated_text"  # what errors in the text name (both modes encode the populated text)

            def encode(clip, part, name=name):
                return advanced_encode(clip, part, self.token_normalization, self.weight_interpretation, name)

            if self.wildcard_mode == "populate":
                text = process_wildcards(getattr(self, f"{side}_wildcard_text"), self.seed, f"{side}_wildcard_text")
            else:
                text = getattr(self, name)
            model, clip, conditioning = encode_with_loras(process_wildcards(text, self.seed), model, clip, encode,
                                                          input_name=name)
            conditionings.append(conditioning)
        vae = self.vae_opt if self.vae_opt is not None else vae
        return (model, clip, vae, *conditionings), self.ckpt_key_opt or self.ckpt_name


def _samples(latent, input_name: str = "latent"):
    import torch

    if not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")):
        raise NodeInputError(input_name, "expected a LATENT: a dict with 'samples'")
    return latent["samples"]
