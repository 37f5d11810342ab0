"""BlenderNeko's ComfyUI_Noise built in under the pack's class names, inputs, defaults and outputs:
Noisy Latent Image (BNK_NoisyLatentImage), Duplicate Batch Index (BNK_DuplicateBatchIndex), Slerp
Latents (BNK_SlerpLatent), Get Sigma (BNK_GetSigma), Inject Noise (BNK_InjectNoise) and Unsampler
(BNK_Unsampler). Community workflows use them for variations of a seed (noise slerped into noise,
injected at a schedule's sigma, sampled without added noise) and for unsampling an image back to the
noise that gives it.

Read from the pack's nodes.py at 000fde9195a6f350ac6086cbcc6979ede9377bd5 (the optional latents2 /
noise / mask inputs, Unsampler's end_at_step and normalize, Get Sigma divided by the latent scale
factor) and its README.md at 369a03c8c473a173d818a90681b9e20b313eb7be; the pack's later move to
ComfyUI's comfy.sampler_helpers (the store's newest nodes.py text, store file 9673361064) changes no
input and no behaviour. The Unsampler's first layout (no end_at_step or normalize), which UI saves of
that time carry, from nodes.py at ecc7c7a3c03a00c8915a85952837de89caf505ab. Duplicate Batch Index
is commented out of the later versions' class table; saves from before still carry it, and it is
here.

Left out: the class names of the pack's first version without the BNK_ prefix (NoisyLatentImage,
DuplicateBatchIndex, LatentSlerp, GetSigma, InjectNoise, Unsampler), which the pack's own
example_workflows still carry: other packs name other nodes so (ComfyUI-ELLA's GetSigma takes SIGMAS),
so a save with them is not claimed for this pack. Where this differs from the pack (each node's help
says so too):
- Slerp Latents: where the two latents point the same way (the angle between them 0, where the
  pack's slerp divides 0 by 0 and gives NaN) the linear mix, which is the slerp's limit there.
- Slerp Latents / Inject Noise: a mask with more images than the latent batch is refused by name
  (the pack fails on the tensor shapes); masks apply to image latents [B, C, h, w] only.
- Noisy Latent Image "GPU": drawn with the CUDA generator where there is a CUDA device, as the pack
  on an NVIDIA card; elsewhere on the CPU, with a warning (the pack draws on whatever ComfyUI's
  device is: MPS, XPU ...).
- Duplicate Batch Index: a latent carrying a batch_index (LatentFromBatch's) gives each copy the
  picked image's index, so every copy gets that image's noise (the pack keeps the list as it was,
  which works in ComfyUI only for a single picked image, with that same result).
- Get Sigma at 0 steps gives 0 (no schedule; the pack gives 0 or fails, by scheduler). Where the
  schedule has fewer than steps + 1 sigmas (beta drops repeated timesteps, e.g. at 200 steps;
  ddim_uniform stops at the model's 1000, so at the node's default 10000), end_at_step is held to
  its last sigma, then start_at_step to end_at_step, as ComfyUI-ELLA's copy of the node does (the
  pack fails with an IndexError).
- Unsampler: the samplers that can't run on rising sigmas are refused by name (the SDE ones,
  ddpm and seeds_2 / seeds_3 give NaN there in the pack too; sa_solver fails). The noise that the
  stochastic samplers left still add going up (euler_ancestral_cfg_pp, dpmpp_2s_ancestral*,
  dpmpp_sde*, lcm, res_multistep_ancestral*) is drawn from seed 0 (the pack draws it from
  ComfyUI's unseeded global generator); euler_ancestral and dpm_2_ancestral add none on rising
  sigmas. normalize "enable" on an output without spread (a constant, where the pack divides by a
  standard deviation of 0 and gives NaN) leaves it as it is, with a warning. A UI save of its
  first layout runs as today's pack (that version skipped the step up from 0).
"""

from __future__ import annotations

import math

from graphflow.api import CONDITIONING, FLOAT, LATENT, MASK, MODEL, Choice, ComfyAlias, Float, Int, Node, \
    NodeInputError, warn
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.custom_sampling import _run
from nodes.latent import _samples
from nodes.pack_nodes_inspire import _noise_device, slerp
from nodes.sampling import SEED_MAX, _estimate

COMFY_PACK = "ComfyUI_Noise"  # the custom node pack this module's ComfyUI classes come from

MAX_RESOLUTION = 8192  # the pack's
NOISE_SOURCES = ("CPU", "GPU")
NOISE_CHANNELS = 4  # the pack's noise is SD1 / SDXL-shaped (4 channels at 1/8 of the size) for every model
# the Unsampler adds this to every flipped sigma, so that its first step (sigma 0 flipped) has a level
# to divide by (ComfyUI's FlipSigmas sets only a leading 0 to it)
SIGMA_OFFSET = 0.0001
# samplers that can't run on rising sigmas: the SDE steps (and ddpm's, seeds') give NaN there, as
# in the pack, and sa_solver's step fails on a math domain error; found by running every sampler
# on the flipped schedule (tests/test_pack_nodes_bnk_noise.py checks this list against that run)
UNSAMPLER_REFUSED = ("dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
                     "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "seeds_2", "seeds_3", "sa_solver",
                     "sa_solver_pece")


def latent_mask(mask, samples, name: str = "mask"):
    """The pack's prepare_mask: a MASK ([H, W], [B, H, W] or [B, 1, H, W]) resized bilinearly to the
    latent's size, the same on every channel, its batch repeated to the latent's."""
    import torch
    import torch.nn.functional as F

    if not torch.is_tensor(mask) or mask.ndim not in (2, 3, 4):
        raise NodeInputError(name, f"expected a MASK [B, H, W], got "
                                   f"{tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__}")
    if samples.ndim != 4:
        raise NodeInputError(name, f"a mask applies to image latents [B, C, h, w]; this latent is "
                                   f"{tuple(samples.shape)}")
    batch, channels, height, width = samples.shape
    frames = math.prod(mask.shape[:-2])
    if frames == 0 or 0 in mask.shape[-2:]:
        raise NodeInputError(name, f"an empty mask {tuple(mask.shape)}; expected at least one mask of at least 1 x 1")
    if frames > batch:  # counted before the resize, which would make every frame latent-sized first
        raise NodeInputError(name, f"{frames} masks for a batch of {batch} latents; expected at most one per latent")
    mask = F.interpolate(mask.float().reshape(-1, 1, *mask.shape[-2:]), size=(height, width), mode="bilinear")
    mask = mask.expand(-1, channels, -1, -1)
    if mask.shape[0] < batch:  # repeated whole, then cut to the batch (the pack's order)
        mask = mask.repeat((batch - 1) // mask.shape[0] + 1, 1, 1, 1)[:batch]
    return mask


def schedule_sigmas(model, sampler_name: str, scheduler: str, steps: int):
    """The sigmas KSampler runs for these choices at denoise 1 (dpm_2 / uni_pc: the schedule of
    steps + 1 with the penultimate dropped), from the model's own noise levels."""
    from graphflow.sampling import DISCARD_PENULTIMATE_SIGMA, compute_sigmas, model_sampling_for
    try:
        sigmas = compute_sigmas(model_sampling_for(model), scheduler, steps,
                                discard_penultimate=sampler_name in DISCARD_PENULTIMATE_SIGMA)
    except ValueError as e:
        raise NodeInputError("scheduler", str(e)) from None
    return sigmas.float()


def unsampling_sigmas(model, sampler_name: str, scheduler: str, steps: int, end_at_step: int):
    """The Unsampler's sigmas: KSampler's flipped (low to high), each plus SIGMA_OFFSET, cut
    end_at_step steps before the top (at most steps - 1: one step is always run)."""
    sigmas = schedule_sigmas(model, sampler_name, scheduler, steps).flip(0) + SIGMA_OFFSET
    last_step = steps - min(end_at_step, steps - 1)
    return sigmas[:last_step + 1]


class NoisyLatentImage(Node):
    """Standard normal noise as a latent batch [batch_size, 4, height / 8, width / 8], seeded as the
    pack draws it: source CPU with a CPU generator seeded with `seed`, one draw of the whole batch
    in float32, which is exactly the starting noise KSampler adds for that seed to a latent of that
    shape. GPU draws with the CUDA generator (other noise for the same seed), where there is a CUDA
    device; elsewhere on the CPU, with a warning that it differs from the pack's. The noise is
    SD1 / SDXL-shaped (4 channels) whatever the model, as the pack makes it. Feed it to Inject
    Noise (scaled by Get Sigma) or Slerp Latents."""
    category = "latent/noise"
    source: str = Choice(NOISE_SOURCES, "CPU")
    seed: int = Int(0, min=0, max=SEED_MAX)
    width: int = Int(512, min=64, max=MAX_RESOLUTION, step=8, resource="width")
    height: int = Int(512, min=64, max=MAX_RESOLUTION, step=8, resource="height")
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("BNK_NoisyLatentImage",))

    def run(self):
        import torch
        from graphflow.sampling.noise import initial_noise

        device = _noise_device(self.source, "source GPU")
        shape = torch.empty(self.batch_size, NOISE_CHANNELS, self.height // 8, self.width // 8, device="meta")
        return {"samples": initial_noise(shape, self.seed, device=device)}


class DuplicateBatchIndex(Node):
    """A batch of batch_size copies of one latent of the batch (batch_index counts from 0; past the
    end, the last), e.g. one seed's noise made a batch to slerp other noise into, or one encoded
    image to vary. The latent's other entries (its noise mask) are kept as they are; a batch_index
    list (LatentFromBatch's) becomes the picked image's index for every copy, so each copy gets
    that image's noise in a sampler (the pack keeps the list, which ComfyUI samples only when it
    holds one index, with that result)."""
    category = "latent"
    latents: LATENT
    batch_index: int = Int(0, min=0, max=63)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("BNK_DuplicateBatchIndex",))

    def run(self):
        samples = _samples(self.latents, "latents", video=True)
        if samples.shape[0] == 0:
            raise NodeInputError("latents", "the latent batch is empty: there is no image to duplicate")
        index = min(samples.shape[0] - 1, self.batch_index)
        out = dict(self.latents)
        out["samples"] = samples[index:index + 1].clone().repeat(self.batch_size, *[1] * (samples.ndim - 1))
        picked = self.latents.get("batch_index")
        if picked is not None and len(picked) == samples.shape[0]:
            out["batch_index"] = [picked[index]] * self.batch_size
        return out


class SlerpLatents(Node):
    """Spherical interpolation from latents1 to latents2 by `factor` (0: latents1, 1: latents2),
    each image flattened on its own: sin((1 - t) w) / sin(w) * a + sin(t w) / sin(w) * b, w the
    angle between them, so two noises mixed keep a noise's length (a linear mix would shrink it).
    With a mask (resized to the latent, repeated over the batch) the slerp applies where it is 1
    and latents1 stays where it is 0, in between mixed linearly. Without latents2, or where the two
    differ in shape (with a warning), latents1 comes out unchanged, as in the pack; latents1's
    other entries (noise mask, batch_index) are kept. Where the two point the same way (w = 0,
    where the pack's formula gives NaN) the linear mix, the slerp's limit. A linked factor may be
    over 1 (past latents2, as the pack's formula goes on); a typed-in one is 0 to 1."""
    category = "latent"
    latents1: LATENT
    # a linked factor over 1 extrapolates, as in the pack (ComfyUI checks no bounds on links)
    factor: float = Float(0.5, min=0.0, max=1.0, step=0.01, linked_max=None)
    latents2: LATENT = None
    mask: MASK = None
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("BNK_SlerpLatent",))

    def run(self):
        out = dict(self.latents1)
        first = _samples(self.latents1, "latents1", video=True)
        if self.latents2 is None:
            return out
        second = _samples(self.latents2, "latents2", video=True)
        if first.shape != second.shape:
            warn(f"Slerp Latents: latents1 {tuple(first.shape)} and latents2 {tuple(second.shape)} differ in shape; "
                 f"latents1 passed on unchanged")
            return out
        mixed = slerp(self.factor, first, second)  # it writes neither
        if self.mask is not None:
            mask = latent_mask(self.mask, mixed)
            mixed = mask * mixed + (1 - mask) * first
        out["samples"] = mixed
        return out


class GetSigma(Node):
    """How much noise lies between two steps of a sampler's schedule, in the latent's own scale:
    (sigma at start_at_step - sigma at end_at_step) / the model's latent scale factor, from the
    same sigmas KSampler runs for this model, sampler, scheduler and steps (end_at_step at most
    the schedule's last step, start_at_step at most end_at_step; a schedule may be shorter than
    steps: beta drops repeated timesteps, ddim_uniform stops at the model's 1000). The strength
    for Inject Noise: noise injected at that strength into a latent at end_at_step brings it back
    to start_at_step (0 to steps: the full noise a sampler starts from, with add_noise disabled).
    0 steps gives 0."""
    category = "latent/noise"
    model: MODEL
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    steps: int = Int(10000, min=0, max=10000)
    start_at_step: int = Int(0, min=0, max=10000)
    end_at_step: int = Int(10000, min=1, max=10000)
    outputs = {"sigma": FLOAT}
    comfy = ComfyAlias(("BNK_GetSigma",))

    def run(self):
        if self.steps == 0:
            return 0.0
        sigmas = schedule_sigmas(self.model, self.sampler_name, self.scheduler, self.steps)
        # held to the schedule's own length: beta drops repeated timesteps and ddim_uniform stops at
        # the model's 1000, so a schedule may have fewer than steps + 1 sigmas (the pack fails there)
        end = min(self.end_at_step, len(sigmas) - 1)
        start = min(self.start_at_step, end)
        # in float32 as the pack's tensor arithmetic
        return float((sigmas[start] - sigmas[end]) / self.model.latent_format.scale_factor)


class InjectNoise(Node):
    """latents + noise * strength: noise (e.g. Noisy Latent Image's) added at a strength, Get
    Sigma's for a schedule's step. With a mask (resized to the latent, repeated over the batch)
    only where it is 1, in between partly. Without noise, or where noise and latents differ in
    shape (with a warning), the latents come out unchanged, as in the pack; their other entries
    (noise mask, batch_index) are kept. A typed-in strength is at most 200, the pack's widget
    bound; a linked one may be more, as in the pack (Get Sigma's whole schedule of an EDM model
    such as CosXL is about 920)."""
    category = "latent/noise"
    latents: LATENT
    strength: float = Float(1.0, min=0.0, max=200.0, step=0.01, linked_max=None)  # ComfyUI checks no link
    noise: LATENT = None
    mask: MASK = None
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("BNK_InjectNoise",))

    def run(self):
        out = dict(self.latents)
        samples = _samples(self.latents, "latents", video=True)
        if self.noise is None:
            return out
        noise = _samples(self.noise, "noise", video=True)
        if samples.shape != noise.shape:
            warn(f"Inject Noise: latents {tuple(samples.shape)} and noise {tuple(noise.shape)} differ in shape; "
                 f"latents passed on unchanged")
            return out
        noised = samples + noise * self.strength
        if self.mask is not None:
            mask = latent_mask(self.mask, noised)
            noised = mask * noised + (1 - mask) * samples
        out["samples"] = noised
        return out


def _unsampler_widgets(values: list) -> list:
    """A UI save of the pack's first Unsampler (steps, cfg, sampler_name, scheduler: no end_at_step
    or normalize yet) read into today's layout with their defaults (the whole schedule, not
    normalized). That version also left out the first step (from 0), which today's runs."""
    if len(values) == 4:
        steps, cfg, sampler_name, scheduler = values
        return [steps, 0, cfg, sampler_name, scheduler, "disable"]
    return values


class Unsampler(Node):
    """A sampler run backwards: from the image's latent towards the noise that would give it.
    KSampler's sigmas for steps / sampler / scheduler (denoise 1) flipped to run low to high, each
    plus 0.0001 (the first step is then at a noise level above 0), without added noise, guided by
    positive / negative at cfg (close to 1 reconstructs best). end_at_step stops that many steps
    before the top (at most steps - 1). normalize "enable" shifts and scales the result to mean 0
    and standard deviation 1 over the whole batch (a result without spread, a constant, is left
    as it is, with a warning: the pack gives NaN). Sample the result with KSampler (Advanced),
    add_noise disabled, the same steps, sampler and scheduler and a cfg close to 1 to get the
    image back. A latent's noise mask keeps its known region (mask 0) on the image. Meant for the
    deterministic samplers (euler, heun, dpmpp_2m ...). Refused: the SDE samplers (dpmpp_2m_sde*,
    dpmpp_3m_sde*), ddpm, seeds_2, seeds_3, sa_solver and sa_solver_pece, which can't run on rising
    sigmas (NaN, in the pack too, or a failed step). The stochastic samplers left that still add
    noise going up (euler_ancestral_cfg_pp, dpmpp_2s_ancestral*, dpmpp_sde*, lcm,
    res_multistep_ancestral*) draw it from seed 0 here (the pack unseeded); euler_ancestral and
    dpm_2_ancestral add none on rising sigmas. A UI save of the pack's first version (without
    end_at_step and normalize) is read with 0 and disable, and runs as today's pack does (that
    version also skipped the first step, up from 0)."""
    category = "sampling"
    model: MODEL
    steps: int = Int(20, min=1, max=10000, resource="steps")
    end_at_step: int = Int(0, min=0, max=10000)
    cfg: float = Float(1.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    normalize: str = Choice(("disable", "enable"), "disable")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("BNK_Unsampler",), widgets=_unsampler_widgets)
    estimate = classmethod(_estimate)

    def run(self):
        from graphflow.sampling.guidance import CFGGuider
        from graphflow.sampling.noise import NoiseSource
        from graphflow.sampling.samplers import SamplerChoice

        if self.sampler_name in UNSAMPLER_REFUSED:
            raise NodeInputError("sampler_name", f"{self.sampler_name} can't run on rising sigmas (unsampling "
                                                 f"gives NaN or fails with it); use a deterministic sampler "
                                                 f"such as euler, heun or dpmpp_2m")
        sigmas = unsampling_sigmas(self.model, self.sampler_name, self.scheduler, self.steps, self.end_at_step)
        guider = CFGGuider(self.model, self.positive, self.negative, self.cfg)
        out, _ = _run(guider, NoiseSource(0, enabled=False), SamplerChoice(self.sampler_name), sigmas,
                      self.latent_image)
        if self.normalize == "enable":
            centered = out["samples"] - out["samples"].mean()
            spread = centered.std()
            if not spread > 0:  # a constant (or a single value): dividing would give NaN, as in the pack
                warn("Unsampler: normalize skipped: the unsampled latent has no spread (a standard deviation of "
                     f"{float(spread)}); passed on as it is")
                return out
            out = {**out, "samples": centered / spread}
        return out
