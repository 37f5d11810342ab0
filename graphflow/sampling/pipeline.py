"""The KSampler: `sample(...)` turns a LATENT into a denoised LATENT the way ComfyUI's KSampler /
KSamplerAdvanced do, so imported graphs give the same images.

Order of events (ComfyUI's):
 1. sigmas = the scheduler's for `steps` (dpm_2 / uni_pc: steps + 1 with the penultimate dropped;
    denoise < 1: int(steps / denoise) steps, keep the last steps + 1); then end_step cuts the
    tail (the last sigma set to 0 unless return_with_leftover_noise) and start_step the head.
 2. noise = seeded CPU noise for the whole batch (noise.initial_noise), zeros if add_noise is off,
    shaped like the latent as the model takes it: an all-zero latent of other channels resized to
    the model's, an image latent given to a video model made one frame (fix_empty_latent_channels).
 3. latent_image = the input latent, mapped into model space (latent_format.process_in) unless it
    is all zeros (an empty latent stays 0 whatever the format's shift).
 4. x = latent_image + noise * sqrt(1 + sigma_0^2) when sigma_0 is the model's sigma_max (pure
    noise), else latent_image + noise * sigma_0 (img2img, KSamplerAdvanced's later start).
 5. Each model call is CFG over the conditioning lists (guidance.py); with a "noise_mask" the
    known region (mask 0) of x is first replaced by latent_image + noise * sigma and the known
    region of the prediction by latent_image, so the sampler only ever changes the masked part
    (the mask resized to the latent, bilinear or trilinear, not rounded: prepare_noise_mask).
    ComfyUI's "ddim" (= euler) re-noises with fresh noise from seed + 1 instead.
    9-channel inpainting models get [x, mask, masked-image latent] as input (the LDM/diffusers
    layout); the mask is the noise mask rounded, the masked-image latent the input latent
    (VAEEncodeForInpaint greys out the masked pixels before encoding), or per conditioning
    "concat_mask" / "concat_latent_image" (InpaintModelConditioning's options). 8-channel
    InstructPix2Pix, Stable Zero123 and SVD (the init image's latent) get [x, the conditioning's
    "concat_latent_image"] (ip2p_concat), FLUX Fill [x, masked-image latent, mask folded 8x8] (fill_concat).
 6. The result is mapped back (process_out) and returned on the CPU as float32.
The UNet runs in the model's dtype on its device; x stays float32 between steps.

Flow models (SD3, FLUX: prediction "flow", see flow_sampling.py) take the same path with their
own sampling (the model's ModelSamplingSD3/Flux setting or its family's default): sigmas from the
flow table, x = sigma_0 * noise + (1 - sigma_0) * latent_image in steps 4 and 5, the flow
variants of the noise-adding samplers, and leftover noise divided by (1 - sigma) on the way out.
"""

import contextlib
import inspect
import math

import torch
import torch.nn.functional as F

from ..choices import NOISE_MODES
from ..context import NodeInputError
from ..models.architectures import ARCHITECTURES
from .flow_samplers import sampler_for
from .flow_sampling import FlowDenoiser, is_flow, model_sampling_for
from .guidance import CFGGuider, prepare_conds, repeat_to_batch, resize_to_batch
from .hooks import entry_hooks
from .model_sampling import DiscreteSchedule, ModelDenoiser
from .noise import NoiseSource, inpaint_noise
from .preview import make_preview
from .samplers import (ALL_SAMPLERS, DISCARD_PENULTIMATE_SIGMA, FLOW_SWITCH_SAMPLERS, RANDOM_INPAINT_NOISE, SAMPLERS,
                       SCHEDULE_SAMPLERS, SEEDED_SAMPLERS, UNI_PC_END_SIGMA, UNI_PC_SAMPLERS, SamplerChoice)
from .schedules import SCHEDULERS, compute_sigmas
from .sigma_adjust import adjusted_denoiser, guider_cfg
from .step_cache import WrappedDenoiser

# Samplers ComfyUI calls through a wrapper of its own that names no eta / s_noise (dpm_fast's takes
# none; dpm_adaptive's passes only **extra_options): the smZ pack passes its Settings by name to
# that wrapper, so they never reach these, whose own defaults stay (dpm_adaptive's eta 0)
NO_SAMPLER_OVERRIDES = frozenset({"dpm_fast", "dpm_adaptive"})


# What an SD VAE encodes a mid-grey image to, in model space (scaled): the masked-image latent an
# inpainting model sees when no mask is given (nothing known), as ComfyUI uses.
BLANK_INPAINT_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)


def sample(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
           positive: list, negative: list, latent: dict, denoise: float = 1.0,
           start_step: int | None = None, end_step: int | None = None, add_noise: bool = True,
           return_with_leftover_noise: bool = False, callback=None, preview_every: int = 1,
           noise_mode: str = "comfy", starting_noise: NoiseSource | None = None, counted_from: int = 0) -> dict:
    """Sample a LATENT with a MODEL; returns a new LATENT dict (input keys kept, "samples" replaced).

    KSampler = sample(..., denoise=d); KSamplerAdvanced = sample(..., start_step, end_step,
    add_noise, return_with_leftover_noise) with denoise 1.
    callback(payload) is called once per step with payload {"i": step index from 0,
    "step": i + 1, "total": number of steps run, "sigma": float, "x": current model-space latent,
    "denoised": the x0 estimate (model space), "preview": IMAGE [1, h, w, 3] or None}; raise in it
    to interrupt. A preview is made every `preview_every` steps and at the last (0 / None: never).
    noise_mode "comfy": noise added during sampling (ancestral / SDE samplers) as ComfyUI draws it
    (one stream seeded with `seed`, on the model's device); "per_image": image i of the batch has
    its own CPU stream seeded with seed + batch_index[i], independent of batch size and device.
    starting_noise: where the starting noise comes from when add_noise is on (a NoiseSource, or
    a subclass drawing it otherwise: Inspire Pack's samplers); None: NoiseSource(seed). `seed`
    still drives the noise ancestral / SDE samplers add. counted_from: the step of the schedule that
    "step_range" conditioning (prompt editing) counts as its first: 0, the whole schedule (KSampler's
    own denoise cuts it first); a caller that stretches the schedule itself for a denoise (Inspire's
    KSampler Progress: steps / denoise steps from step total - steps) passes where the user's steps begin.
    """
    if sampler_name not in SAMPLERS:
        raise NodeInputError("sampler_name", f"unknown sampler {sampler_name!r}; expected one of {', '.join(SAMPLERS)}")
    if not callable(scheduler) and scheduler not in SCHEDULERS:  # a function: compute_sigmas's custom schedule
        raise NodeInputError("scheduler", f"unknown scheduler {scheduler!r}; expected one of {', '.join(SCHEDULERS)}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise NodeInputError("steps", f"steps must be a whole number >= 1, got {steps!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise NodeInputError("seed", f"seed must be a whole number >= 0, got {seed!r}")
    if not isinstance(cfg, (int, float)) or not math.isfinite(cfg):
        raise NodeInputError("cfg", f"cfg must be a finite number, got {cfg!r}")
    if not isinstance(denoise, (int, float)) or not 0.0 <= denoise <= 1.0:
        raise NodeInputError("denoise", f"denoise must be between 0 and 1, got {denoise!r}")
    for name, value in (("start_step", start_step), ("end_step", end_step)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise NodeInputError(name, f"{name} must be a whole number >= 0, got {value!r}")
    if noise_mode not in NOISE_MODES:
        raise NodeInputError("noise_mode", f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    samples = _latent_samples(model, latent)

    schedule = model_sampling_for(model)
    sigmas = compute_sigmas(schedule, scheduler, steps, denoise,
                            discard_penultimate=sampler_name in DISCARD_PENULTIMATE_SIGMA)
    all_sigmas = sigmas[counted_from:]  # where "step_range" conditioning counts its steps (guidance.prepare_conds)
    if end_step is not None and end_step < len(sigmas) - 1:
        sigmas = sigmas[:end_step + 1].clone()
        if not return_with_leftover_noise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step < len(sigmas) - 1:
            sigmas = sigmas[start_step:]
        else:  # nothing left to do: ComfyUI returns the input latent (its channels / frame fixed)
            return {**latent, "samples": samples}
    if len(sigmas) < 2:
        return {**latent, "samples": samples}

    batch_index = latent.get("batch_index")
    if add_noise:
        noise = (NoiseSource(seed) if starting_noise is None else starting_noise).generate(samples, batch_index)
    else:
        noise = torch.zeros(samples.shape, dtype=torch.float32)
    out = dict(latent)
    out["samples"] = sample_with_sigmas(
        model, sigmas, noise, samples, positive, negative, cfg, sampler_name, seed,
        noise_mask=latent.get("noise_mask"), batch_index=batch_index, callback=callback,
        preview_every=preview_every, noise_mode=noise_mode, schedule=schedule, step_sigmas=all_sigmas)
    return out


def sample_custom(guider, noise: NoiseSource, sampler: SamplerChoice, sigmas: torch.Tensor, latent: dict,
                  callback=None, preview_every: int = 1) -> tuple[dict, dict]:
    """SamplerCustom / SamplerCustomAdvanced: run `sampler` over the given `sigmas` (no scheduler,
    no dropped penultimate sigma) with `guider`'s model and guidance, starting from `noise`, through
    the same sample_with_sigmas as KSampler. Returns (output, denoised_output): the sampled LATENT
    and the x0 estimate of the last step (the output itself when no step ran)."""
    if not hasattr(guider, "denoiser") or not hasattr(guider, "model"):
        raise NodeInputError("guider", f"expected a GUIDER (from CFGGuider, BasicGuider, ...), got {type(guider).__name__}")
    if not isinstance(noise, NoiseSource):
        raise NodeInputError("noise", f"expected a NOISE (from RandomNoise or DisableNoise), got {type(noise).__name__}")
    if not isinstance(sampler, SamplerChoice) or sampler.name not in ALL_SAMPLERS:
        raise NodeInputError("sampler", f"expected a SAMPLER (from KSamplerSelect or a Sampler* node), got {sampler!r}")
    if not torch.is_tensor(sigmas) or sigmas.ndim != 1:
        raise NodeInputError("sigmas", "expected SIGMAS: a 1-D tensor of decreasing noise levels, got "
                                       f"{tuple(sigmas.shape) if torch.is_tensor(sigmas) else type(sigmas).__name__}")
    model = guider.model
    samples = _latent_samples(model, latent)
    out = dict(latent)
    out["samples"] = samples
    if len(sigmas) == 0:
        return out, out
    batch_index = latent.get("batch_index")
    last = {}

    def on_step(info):
        last["denoised"] = info["denoised"]
        if callback is not None:
            callback(info)

    out["samples"] = sample_with_sigmas(
        model, sigmas.float(), noise.generate(samples, batch_index), samples, None, None, 1.0, sampler.name, noise.seed,
        noise_mask=latent.get("noise_mask"), batch_index=batch_index, callback=on_step, preview_every=preview_every,
        guider=guider, sampler_options=sampler.options, sigma_adjusters=sampler.sigma_adjusters)
    if "denoised" not in last:
        return out, out
    denoised = dict(latent)
    denoised["samples"] = model.latent_format.process_out(last["denoised"].float()).cpu()
    return out, denoised


def _latent_samples(model, latent) -> torch.Tensor:
    if not isinstance(latent, dict) or "samples" not in latent:
        raise NodeInputError("latent_image", "expected a LATENT: a dict with 'samples' [B, C, h, w]")
    samples = latent["samples"]
    video = getattr(model, "is_video", False)
    if video and torch.is_tensor(samples) and samples.ndim == 4:
        # an image latent is one frame, as ComfyUI's fix_empty_latent_channels makes it for every
        # 3-D latent format (Wan, LTX-Video, Mochi, Cosmos): text-to-image with a video model
        samples = samples[:, :, None]
    if video and (not torch.is_tensor(samples) or samples.ndim != 5):
        got = tuple(samples.shape) if torch.is_tensor(samples) else type(samples).__name__
        arch = ARCHITECTURES.get(getattr(model, "arch", None))
        empty = arch.empty_latent if arch is not None else "EmptyHunyuanLatentVideo"
        if getattr(getattr(model, "latent_format", None), "name", None) == "wan22":  # the Wan 2.2 TI2V 5B
            empty = "Wan22ImageToVideoLatent"
        raise NodeInputError("latent_image", f"{getattr(model, 'arch', 'this model')} samples video latents [B, C, "
                                             f"frames, h, w] ({empty}), got {got}")
    if torch.is_tensor(samples) and samples.ndim == 5 and not video:
        raise NodeInputError("latent_image", f"the latent is a video [B, C, frames, h, w] {tuple(samples.shape)}; "
                                             f"this model samples images [B, C, h, w]")
    if not torch.is_tensor(samples) or samples.ndim not in (4, 5):
        raise NodeInputError("latent_image", f"LATENT 'samples' must be a [B, C, h, w] tensor, got "
                                             f"{tuple(samples.shape) if torch.is_tensor(samples) else type(samples).__name__}")
    channels = model.latent_format.channels
    if samples.shape[1] != channels and getattr(model, "is_cascade", False):  # Stage C and B latents differ in size too
        stage, other = ("C", "stage_c") if model.arch == "stable_cascade_c" else ("B", "stage_b")
        raise NodeInputError("latent_image", f"the latent has {samples.shape[1]} channels; Stable Cascade Stage {stage} "
                                             f"samples {channels}-channel latents (StableCascade_EmptyLatentImage's "
                                             f"{other} output)")
    if samples.shape[1] != channels:
        if torch.count_nonzero(samples) == 0:  # an empty latent made for another format: resize it
            return torch.zeros(samples.shape[0], channels, *samples.shape[2:])
        raise NodeInputError("latent_image", f"the latent has {samples.shape[1]} channels, the model expects {channels}")
    return samples.float()


def sample_with_sigmas(model, *args, **kwargs) -> torch.Tensor:
    """_sample_with_sigmas with the model on the device for the whole run (graphflow.memory)."""
    _tell_controls(args, kwargs, "start_run")
    try:
        return _placed_and_sampled(model, args, kwargs)
    finally:
        _tell_controls(args, kwargs, "end_run")


def _placed_and_sampled(model, args, kwargs) -> torch.Tensor:
    from graphflow import memory
    from graphflow.models import speed
    from graphflow.models.animatediff import motion_memory_name

    unet = getattr(model, "unet", None)
    if not isinstance(unet, torch.nn.Module):  # a stand-in model (tests, plugins): nothing to place
        return _sample_with_sigmas(model, *args, **kwargs)
    # the model first, then AnimateDiff's motion models (with the UNet they patch), then the controls:
    # what doesn't fit beside the model is streamed
    parts = [(unet, "diffusion_model", f"diffusion_model:{getattr(model, 'arch', 'model')}",
              getattr(model, "patches", ()))]
    parts += [(copy, "motion_model", motion_memory_name(motion), ()) for motion, copy in _motion_models(unet)]
    parts += [(net, "control", f"control:{type(net).__name__}@{id(net):x}", ())
              for net in _control_nets(model, args, kwargs)]
    with contextlib.ExitStack() as stack:
        # Every part's run locks first, in one order for all runs (by the lock's id: components sharing
        # weights share a holder, graphflow.memory.RunLock): two runs (server workers) whose MODELs hold
        # the same motion models or controls in other orders would otherwise each hold one and wait for
        # the other's. use() takes the same holders' locks again, inside this run.
        comps = [memory.manager().register(module, kind, name) for module, kind, name, _ in parts]
        stack.enter_context(memory.run_locks([comp.run_lock for comp in comps]))  # after all are registered
        for module, kind, name, patches in parts:
            stack.enter_context(memory.use(module, kind, name, patches))
        stack.enter_context(speed.sampling(unet, model.device, convolutional=not getattr(model, "is_flow", False),
                                           compile_backend=getattr(model, "options", {}).get("compile_backend")))
        if any(entry_hooks(e) is not None for e in _conditioning(args, kwargs)):
            stack.enter_context(_hooked(model, args, kwargs))
        return _sample_with_sigmas(model, *args, **kwargs)


@contextlib.contextmanager
def _hooked(model, args, kwargs):
    """Hooked conditioning (graphflow.sampling.hooks) switches the network's weights per model call;
    the model's own weights are back when the run ends, however it ends."""
    from graphflow.models.weight_files import CheckpointError

    from .hooks import HookSwitch, check_hooks, hook_switch

    bound = inspect.signature(_sample_with_sigmas).bind(None, *args, **kwargs).arguments
    guider = bound.get("guider")
    sides = {"guider": _conditioning(args, kwargs)} if guider is not None else \
        {name: bound.get(name) or () for name in ("positive", "negative")}
    for name, conditioning in sides.items():
        try:
            check_hooks(model, conditioning)
        except (ValueError, CheckpointError) as e:
            raise NodeInputError(name, f"its hooks don't fit the model: {e}") from None
    schedule = bound.get("schedule") or model_sampling_for(model)
    switch = HookSwitch(model, schedule, bound["sigmas"])
    token = hook_switch.set(switch)
    try:
        yield switch
    finally:
        hook_switch.reset(token)
        switch.restore()


def _conditioning(args, kwargs) -> list:
    """Every conditioning entry of the run (KSampler's sides or the guider's)."""
    bound = inspect.signature(_sample_with_sigmas).bind(None, *args, **kwargs).arguments
    guider = bound.get("guider")
    conds = [*(bound.get("positive") or ()), *(bound.get("negative") or ())]
    for name in ("positive", "negative", "cond1", "cond2", "empty"):
        conds += list(getattr(guider, name, None) or ())
    return conds


def _tell_controls(args, kwargs, event: str) -> None:
    """Controls that keep a schedule over a sampling run (ComfyUI-Advanced-ControlNet's timestep
    keyframes: graphflow.models.advanced_control) start it again ("start_run"), as the pack's pre_run
    does, and let go of what the run made when it ends ("end_run")."""
    for entry in _conditioning(args, kwargs):
        applied = entry[1].get("control") if isinstance(entry, (list, tuple)) and len(entry) > 1 \
            and isinstance(entry[1], dict) else None
        while applied is not None:
            if hasattr(applied, event):
                getattr(applied, event)()
            applied = getattr(applied, "previous", None)


def _motion_models(unet) -> list:
    """(motion model, the copy the UNet runs) for each AnimateDiff motion model attached to the UNet
    (graphflow.models.animatediff.placed_motion: one copy per motion model and compute dtype)."""
    from graphflow.models.animatediff import placed_motion, unet_motion_models
    from graphflow.models.cast_layers import compute_dtype

    motions = unet_motion_models(unet)
    if not motions:
        return []
    dtype = compute_dtype(unet)
    return [(motion, placed_motion(motion, dtype)[0]) for motion in motions]


def _control_nets(model, args, kwargs) -> list:
    """The ControlNets / T2I-Adapters in the run's conditioning (options["control"] chains) and the
    modules of the model's per-block patches (DiffSynth's ControlNets for Qwen-Image); a
    Control-LoRA (graphflow.models.controlnet.ControlLoraFile, whichever loader read it) is built on
    `model` here, as ComfyUI builds it when sampling starts."""
    nets = {}
    for entry in _conditioning(args, kwargs):
        applied = entry[1].get("control") if isinstance(entry, (list, tuple)) and len(entry) > 1 \
            and isinstance(entry[1], dict) else None
        while applied is not None:
            net = applied.net.bind(model) if hasattr(applied.net, "bind") else applied.net
            if isinstance(net, torch.nn.Module):
                nets[id(net)] = net
            applied = applied.previous
    for patch in getattr(getattr(model, "unet", None), "double_block_patches", ()):  # Qwen-Image DiffSynth's
        net = getattr(patch, "module", None)
        if isinstance(net, torch.nn.Module):
            nets[id(net)] = net
    return list(nets.values())


def _sample_with_sigmas(model, sigmas: torch.Tensor, noise: torch.Tensor, latent_samples: torch.Tensor,
                       positive: list, negative: list, cfg: float, sampler_name: str, seed: int, *,
                       noise_mask: torch.Tensor | None = None, batch_index: list[int] | None = None,
                       callback=None, preview_every: int = 1, noise_mode: str = "comfy",
                       schedule: DiscreteSchedule | None = None, guider=None,
                       sampler_options: dict | None = None, sigma_adjusters: tuple = (),
                       step_sigmas: torch.Tensor | None = None) -> torch.Tensor:
    """Run one sampler over given sigmas (steps 3-6 above). latent_samples: raw VAE latent;
    noise: unit noise of the same shape (zeros for none). Returns the raw latent, CPU float32.
    guider (a GUIDER: guidance.CFGGuider, DualCFGGuider) replaces positive / negative / cfg, which
    KSampler's CFGGuider is made of; sampler_options are passed on to the sampler function;
    sigma_adjusters (a SAMPLER's, sigma_adjust.py) change the sigma the model is called with.
    step_sigmas: the whole schedule these sigmas are a part of (KSamplerAdvanced's steps), in which
    "step_range" conditioning counts its steps; None: these sigmas."""
    schedule = schedule or model_sampling_for(model)
    flow = is_flow(schedule)
    fmt = model.latent_format
    device = model.device
    with torch.no_grad():
        # The samplers get the sigmas on the host: their per-step tests (sigma == 0, ...) and the
        # scalars they pass to device kernels (0-dim CPU tensors are kernel arguments) then never
        # wait for the device. Nothing in the loop below syncs (tests/test_sampling_syncs.py), but
        # for a SAMPLER's sigma adjusters (Detail Daemon, Lying Sigma): they read the sigma of each
        # model call on the host (float(sigma.max()), one sync per call, as the pack's wrappers do),
        # their range tests and schedule lookup being the pack's float64 / float32 host arithmetic.
        sigmas = sigmas.detach().to("cpu", torch.float32)
        empty = torch.count_nonzero(latent_samples) == 0  # on the input, before it reaches the device
        latent_image = latent_samples.to(device=device, dtype=torch.float32)
        if not empty:
            latent_image = fmt.process_in(latent_image)
        noise = noise.to(device=device, dtype=torch.float32)
        shape = tuple(noise.shape)
        video = getattr(model, "is_video", False)
        denoise_mask = None if noise_mask is None else prepare_noise_mask(noise_mask, shape, device)

        concat_fn = None
        upscaler = getattr(model, "upscaler", False)
        if not upscaler:
            _refuse_x4_conditioning(model, {"positive": positive, "negative": negative,
                                            "guider": [e for side in ("positive", "negative", "cond1", "cond2", "empty")
                                                       for e in getattr(guider, side, None) or ()]})
        if flow:
            if getattr(model, "fill", False):
                def concat_fn(options):
                    return fill_concat(options, denoise_mask, fmt, shape, device)
            elif getattr(model, "arch", None) == "wan" and model.in_channels != fmt.channels:
                def concat_fn(options):
                    return wan_concat(options, denoise_mask, fmt, shape, model.in_channels - fmt.channels, device)
            elif getattr(model, "arch", None) == "hidream":
                def concat_fn(options):
                    return hidream_image_cond(options, fmt, shape[0], device)
            elif getattr(model, "arch", None) == "hunyuan_video" and model.in_channels != fmt.channels:
                def concat_fn(options):
                    return hunyuan_video_concat(options, denoise_mask, latent_image, fmt, shape,
                                                model.in_channels - fmt.channels, device)
            elif getattr(model, "arch", None) == "hunyuan_image" and model.in_channels != fmt.channels:
                def concat_fn(options):
                    return hunyuan_refiner_concat(options, fmt, shape, seed, device)
        elif upscaler:
            def concat_fn(options):
                return x4_concat(options, shape, device, seed)
        elif model.in_channels == 2 * fmt.channels + 1:
            def concat_fn(options):
                return inpaint_concat(options, latent_image, denoise_mask, fmt, shape, device)
        elif model.in_channels == 2 * fmt.channels or (model.in_channels == 3 * fmt.channels
                                                       and getattr(model, "arch", None) == "sd1"):
            # 12: IC-Light "fbc" (graphflow.models.iclight), the foreground's and background's latents
            extra_shape = (shape[0], model.in_channels - fmt.channels, *shape[2:])

            def concat_fn(options):
                return ip2p_concat(options, getattr(model, "arch", "sd1"), fmt, extra_shape, device,
                                   getattr(model, "edm_v_file", False))
        elif getattr(model, "arch", None) in ("cosmos", "cosmos1") and model.in_channels == fmt.channels + 1:
            def concat_fn(options):  # video2world: 1 on the given frames (ComfyUI's "mask_inverted")
                if denoise_mask is None:
                    return torch.zeros(shape[0], 1, *shape[2:], device=device)
                return 1.0 - denoise_mask[:, :1].round()
        elif model.in_channels != fmt.channels:
            raise NodeInputError("model", f"the model takes {model.in_channels} input channels; only {fmt.channels} "
                                          f"(plain), {2 * fmt.channels} (InstructPix2Pix, IC-Light fc), "
                                          f"{2 * fmt.channels + 1} (inpainting) or, for SD1.5, {3 * fmt.channels} "
                                          f"(IC-Light fbc) are supported")

        model_options = getattr(model, "options", {})

        def prepare(conditioning, negative=False):
            side_concat = concat_fn if concat_fn is None or not negative else _named_negative(concat_fn)
            return prepare_conds(conditioning, model, shape, device, negative=negative, concat_fn=side_concat,
                                 schedule=schedule, seed=seed, sigmas=sigmas if step_sigmas is None else step_sigmas)

        guider = guider or CFGGuider(model, positive, negative, cfg)
        if flow:  # LTX-Video: each token denoised at its own level, sigma x the noise mask (ComfyUI's; Wan 2.2
            # TI2V: each frame's mean; Wan 2.1 is told the step's sigma)
            timestep_mask = denoise_mask if getattr(model, "masked_timesteps", video) else None
            model_denoiser = FlowDenoiser(model, schedule, timestep_mask=timestep_mask)
            model_denoiser.sample_sigmas = sigmas  # MeanFlow models (distilled HunyuanImage) embed the next sigma
        else:
            model_denoiser = ModelDenoiser(model, schedule)
            if getattr(model, "arch", None) == "cosmos" and denoise_mask is not None:
                model_denoiser.timestep_mask = denoise_mask
        # SpotDiffusion shifts its tiles by the step's place in the whole schedule (the pack reads KSampler's
        # sigmas before start_at_step / end_at_step cut them)
        for wrapper in model_denoiser.network_wrappers:
            if hasattr(wrapper, "start_run"):
                wrapper.start_run(sigmas if step_sigmas is None else step_sigmas)
        if getattr(model, "context_windows", None) is not None:  # ContextWindowsManual (context_windows.py)
            model_denoiser.context_windows = model.context_windows.for_run(sigmas)
        denoiser = guider.denoiser(model_denoiser, prepare)
        prediction_wrappers = [make() for make in getattr(model, "prediction_wrappers", ())]  # LazyCache: fresh
        for wrapper in prediction_wrappers:  # state per run
            denoiser = WrappedDenoiser(denoiser, wrapper)
        if denoise_mask is not None:
            blend_noise = inpaint_noise(shape, seed).to(device) if sampler_name in RANDOM_INPAINT_NOISE else noise
            mask_fn = None
            if model_options.get("differential_diffusion") is not None:
                mask_fn = differential_mask(schedule, sigmas, model_options["differential_diffusion"])
            scale_known = model.scale_latent_inpaint(schedule) if hasattr(model, "scale_latent_inpaint") else None
            denoiser = MaskedDenoiser(denoiser, schedule, latent_image, blend_noise, denoise_mask, mask_fn,
                                      noised_known=not video, scale_known=scale_known)
        # outermost, as ComfyUI's sampler wrappers wrap the model their KSAMPLER is given (the
        # inpainting-masked one): the mask's known region is noised to the adjusted sigma too
        denoiser = adjusted_denoiser(denoiser, sigma_adjusters, sigmas, guider_cfg(guider), schedule)

        # Settings (smZ)'s sgm_noise_multiplier off: the starting noise is scaled by the first sigma
        # alone, never as a full denoise (ComfyUI's max_denoise forced off)
        max_denoise = schedule.is_max_denoise(sigmas[0]) and model_options.get("max_denoise", True)
        x = schedule.noise_scaling(sigmas[0], noise, latent_image, max_denoise)
        options = dict(sampler_options or {})
        if sampler_name in SCHEDULE_SAMPLERS:
            options["schedule"] = schedule
        if sampler_name in FLOW_SWITCH_SAMPLERS and getattr(schedule, "prediction", None) == "flow":
            options["flow"] = True  # flow-matching models (SD3, FLUX) sample with their lambda and alpha
        if sampler_name in SEEDED_SAMPLERS:
            if noise_mode == "per_image":
                indices = list(range(shape[0])) if batch_index is None else list(batch_index)
                options["seed"] = [(seed + int(i)) % 2 ** 64 for i in indices]
            else:
                options["seed"] = seed
        total = len(sigmas) - 1

        def on_step(info):
            if callback is None:
                return
            i = info["i"]
            preview = None
            if preview_every and (i % preview_every == 0 or i == total - 1):
                preview = make_preview(info["denoised"], fmt)
            callback({"i": i, "step": i + 1, "total": total, "sigma": float(info["sigma"]),
                      "x": info["x"], "denoised": info["denoised"], "preview": preview})

        sample = sampler_for(sampler_name, schedule)
        overrides = model_options.get("sampler_overrides")
        if overrides and sampler_name not in NO_SAMPLER_OVERRIDES:  # Settings (smZ)'s eta / s_noise: given to
            # the samplers that take them, over their own
            accepted = inspect.signature(sample).parameters
            options.update({name: value for name, value in overrides.items() if name in accepted})
        try:
            x = sample(denoiser, x, sigmas, callback=on_step, **options)
        finally:  # a step or block cache lets go of the run's tensors (its state stays on the MODEL as `last`)
            for wrapper in (*model_denoiser.network_wrappers, *prediction_wrappers):
                if hasattr(wrapper, "end_run"):
                    wrapper.end_run()
        if hasattr(schedule, "inverse_noise_scaling"):  # flow: leftover noise back to the noise_scaling convention
            end = sigmas[-1]
            if sampler_name in UNI_PC_SAMPLERS and end == 0:
                end = sigmas.new_tensor(UNI_PC_END_SIGMA)  # ComfyUI's uni_pc leaves it in the sigmas
            x = schedule.inverse_noise_scaling(end, x)
        return fmt.process_out(x.float()).cpu()


def prepare_noise_mask(noise_mask: torch.Tensor, shape: tuple, device) -> torch.Tensor:
    """LATENT noise_mask -> [B, C, *latent dims] at the latent's size, as ComfyUI's reshape_mask.
    Image latents: any of [h, w], [B, h, w], [B, 1, h, w] at any resolution, one mask per batch
    entry, resized bilinearly (not rounded). Video latents: a [B, c, frames, h, w] mask (LTXVImgToVideo's
    [B, 1, frames, 1, 1]) resized trilinearly; a mask of fewer dims is ONE video whose frames are
    its entries (SetLatentNoiseMask's [N, 1, h, w]: N mask frames stretched over the latent's).
    Fewer channels than the latent's are repeated over them; then the batch is repeated / cut."""
    mask = noise_mask.float()
    if len(shape) == 5:
        if mask.ndim < 5:
            mask = mask.reshape(1, 1, -1, *mask.shape[-2:])
        mask = F.interpolate(mask, size=shape[2:], mode="trilinear")
    else:
        mask = F.interpolate(mask.reshape(-1, 1, *mask.shape[-2:]), size=shape[2:], mode="bilinear")
    if mask.shape[1] < shape[1]:
        mask = mask.repeat(1, shape[1], *[1] * (len(shape) - 2))[:, :shape[1]]
    return repeat_to_batch(mask, shape[0]).to(device)


def _resize_center(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop to the target's aspect ratio around the centre, then resize bilinearly."""
    old_h, old_w = t.shape[-2:]
    old_aspect, new_aspect = old_w / old_h, width / height
    x0 = y0 = 0
    if old_aspect > new_aspect:
        x0 = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y0 = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    t = t[..., y0:old_h - y0, x0:old_w - x0]
    if t.ndim == 5:  # video latents: each frame as a picture (ComfyUI's common_upscale)
        lead = t.shape[:-2]
        return F.interpolate(t.reshape(-1, 1, *t.shape[-2:]), size=(height, width), mode="bilinear").reshape(
            *lead, height, width)
    return F.interpolate(t, size=(height, width), mode="bilinear")


def inpaint_concat(options: dict, latent_image: torch.Tensor, denoise_mask: torch.Tensor | None,
                   latent_format, shape: tuple, device) -> torch.Tensor:
    """The 1 + C extra input channels of an inpainting UNet: [mask, masked-image latent]."""
    batch, _, h, w = shape
    masked_latent = latent_image
    if options.get("concat_latent_image") is not None:
        masked_latent = latent_format.process_in(options["concat_latent_image"].float().to(device))
    if tuple(masked_latent.shape[-2:]) != (h, w):
        masked_latent = _resize_center(masked_latent, h, w)
    masked_latent = resize_to_batch(masked_latent, batch)
    mask = options.get("concat_mask", denoise_mask)
    if mask is None:  # nothing known: all to inpaint over a grey image
        blank = torch.tensor(BLANK_INPAINT_LATENT[:latent_image.shape[1]], device=device).reshape(1, -1, 1, 1)
        return torch.cat([torch.ones(batch, 1, h, w, device=device), blank.expand(batch, -1, h, w)], dim=1)
    mask = mask.float().to(device)
    if mask.ndim == 4:
        mask = mask[:, :1]
    mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    if tuple(mask.shape[-2:]) != (h, w):
        mask = _resize_center(mask, h, w)
    mask = resize_to_batch(mask.round(), batch)
    return torch.cat([mask, masked_latent], dim=1)


def fill_concat(options: dict, denoise_mask: torch.Tensor | None, latent_format, shape: tuple,
                device) -> torch.Tensor:
    """FLUX Fill's 80 extra input channels, as ComfyUI's Flux.concat_cond builds them: the masked
    image's latent ("concat_latent_image", zeros without one) mapped into model space, then the
    mask ("concat_mask", else the noise mask, else all 1: everything to fill) at pixel size folded
    8x8 into 64 channels (channel 8 * row + column of each latent pixel's 8x8 block)."""
    batch, _, h, w = shape
    image = options.get("concat_latent_image")
    image = torch.zeros(shape, device=device) if image is None else image.float().to(device)
    if tuple(image.shape[-2:]) != (h, w):
        image = _resize_center(image, h, w)
    image = latent_format.process_in(resize_to_batch(image, batch))
    mask = options.get("concat_mask", denoise_mask)
    mask = torch.ones(batch, 1, h, w, device=device) if mask is None else mask.float().to(device)
    mask = mask.mean(1, keepdim=True) if mask.ndim == 4 else mask.reshape(-1, 1, *mask.shape[-2:])
    if tuple(mask.shape[-2:]) != (8 * h, 8 * w):
        mask = _resize_center(mask, 8 * h, 8 * w)
    mask = mask.reshape(-1, 1, h, 8, w, 8).permute(0, 1, 3, 5, 2, 4).reshape(-1, 64, h, w)
    return torch.cat([image, resize_to_batch(mask, batch)], dim=1)


def wan_concat(options: dict, denoise_mask: torch.Tensor | None, latent_format, shape: tuple, extra: int,
               device) -> torch.Tensor:
    """A Wan image-to-video model's `extra` input channels (20), as ComfyUI's WAN21.concat_cond builds
    them: 4 mask channels (1 - "concat_mask" (WanImageToVideo's: 0 on the given frames), else 1 -
    the noise mask, else 0; resized to the latent, frames padded with 0), then the start image's
    latent ("concat_latent_image", zeros without one) in model space, resized to the latent
    ("concat_mask_index": the mask goes after that many latent channels instead, Wan22FunControlToVideo's).
    A concat latent of exactly `extra` channels (WanFunControlToVideo's 32: control and start-image
    latents) is all the extra input, each 16 channels in model space, no mask."""
    batch, _, frames, h, w = shape
    image = options.get("concat_latent_image")
    if image is None:
        return torch.zeros(batch, extra, frames, h, w, device=device)
    image = image.float().to(device)
    if tuple(image.shape[-2:]) != (h, w):
        image = _resize_center(image, h, w)
    c = latent_format.channels
    image = torch.cat([latent_format.process_in(chunk) for chunk in image.split(c, dim=1)], dim=1)
    image = resize_to_batch(image, batch)
    if image.shape[1] == extra:
        return image
    image = image[:, :extra - 4]
    mask = options.get("concat_mask", denoise_mask)
    if mask is None:
        mask = torch.zeros(batch, 4, frames, h, w, device=device)
    else:
        mask = mask.float().to(device)
        mask = 1.0 - (mask if mask.shape[1] == 4 else mask.mean(1, keepdim=True))
        if tuple(mask.shape[-2:]) != (h, w):
            mask = _resize_center(mask, h, w)
        if mask.shape[2] < frames:
            mask = torch.nn.functional.pad(mask, (0, 0, 0, 0, 0, frames - mask.shape[2]))
        mask = resize_to_batch(mask.expand(-1, 4, -1, -1, -1), batch)
    index = int(options.get("concat_mask_index") or 0)  # Wan 2.2 Fun Control: the mask after the control latent
    return torch.cat([image[:, :index], mask, image[:, index:]], dim=1)


def hidream_image_cond(options: dict, latent_format, batch: int, device) -> torch.Tensor | None:
    """HiDream-E1's input image (InstructPixToPixConditioning's "concat_latent_image"), in model space
    and repeated to the batch, as ComfyUI's HiDream passes it (image_cond; its size as encoded: the
    network sets it beside the noisy latent along the width); None without one (HiDream-I1)."""
    image = options.get("concat_latent_image")
    if image is None:
        return None
    return repeat_to_batch(latent_format.process_in(image.float().to(device)), batch)  # CONDNoiseShape cycles


def hunyuan_video_concat(options: dict, denoise_mask: torch.Tensor | None, latent_image: torch.Tensor, latent_format,
                         shape: tuple, extra: int, device) -> torch.Tensor:
    """A HunyuanVideo image-to-video model's `extra` input channels, as ComfyUI's HunyuanVideoI2V (17: the
    image latent, then 1 - the mask) and HunyuanVideoSkyreelsI2V (16: the image latent) build them: the
    conditioning's "concat_latent_image" (HunyuanImageToVideo "v1 (concat)": the start image's latent) in
    model space, resized to the latent and its frames padded with zeros (without one: the latent being
    sampled); the mask "concat_mask" (0 on the start image's latent frames), else the noise mask, rounded;
    without either, 0 (no frame given)."""
    batch, _, frames, h, w = shape
    image = options.get("concat_latent_image")
    if image is None:
        image = latent_image
    else:
        image = latent_format.process_in(image.float().to(device))
        if tuple(image.shape[-2:]) != (h, w):
            image = _resize_center(image, h, w)
        image = F.pad(image, (0, 0, 0, 0, 0, max(0, frames - image.shape[2])))[:, :, :frames]
    parts = [resize_to_batch(image.to(device), batch)]
    if extra > latent_format.channels:
        mask = options.get("concat_mask", denoise_mask)
        if mask is None:
            parts.append(torch.zeros(batch, 1, frames, h, w, device=device))
        else:
            mask = mask.float().to(device)
            mask = mask[:, :1] if mask.ndim == 5 else mask.reshape(-1, 1, *mask.shape[-3:])
            if tuple(mask.shape[-2:]) != (h, w):
                mask = _resize_center(mask, h, w)
            parts.append(1.0 - resize_to_batch(mask.round(), batch))
    return torch.cat(parts, dim=1)


def hunyuan_refiner_concat(options: dict, latent_format, shape: tuple, seed: int, device) -> torch.Tensor:
    """The HunyuanImage refiner's extra input channels, as ComfyUI's HunyuanImage21Refiner.concat_cond builds
    them: the conditioning's "concat_latent_image" (HunyuanRefinerLatent's: the image's latent from the
    refiner's VAE) resized to the latent, in model space (frames paired), stretched to the batch, then
    noise_augmentation x noise (the sampler's seed - 10, drawn on the CPU) + min(1 - noise_augmentation,
    0.75) x it; without augmentation 0.75 x it; zeros without an image."""
    image = options.get("concat_latent_image")
    if image is None:
        return torch.zeros(shape, device=device)
    image = image.float().to(device)
    if tuple(image.shape[-2:]) != tuple(shape[-2:]):
        image = _resize_center(image, *shape[-2:])
    image = resize_to_batch(latent_format.process_in(image), shape[0])
    strength = float(options.get("noise_augmentation", 0.0))
    if strength <= 0:
        return 0.75 * image
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed - 10), dtype=image.dtype)
    return strength * noise.to(device) + min(1.0 - strength, 0.75) * image


def _named_negative(concat_fn):
    """`concat_fn` for the negative side: its refusals of a conditioning's concat input (which name
    "positive") name "negative", the side whose conditioning it read."""
    def side_concat(options):
        try:
            return concat_fn(options)
        except NodeInputError as e:
            if e.input != "positive":
                raise
            raise NodeInputError("negative", str(e)) from None
    return side_concat


def ip2p_concat(options: dict, arch: str, latent_format, shape: tuple, device,
                edm_v_file: bool = False) -> torch.Tensor:
    """The C extra input channels (shape's) of an InstructPix2Pix, Stable Zero123 or IC-Light UNet: the
    encoded input image ("concat_latent_image", InstructPixToPixConditioning's option; ICLightConditioning's
    foreground (+ background) latent) resized to the latent, zeros
    without one. The raw VAE latent (as diffusers' pipelines feed it), but for an SDXL model read
    from a file marked EDM v-prediction (CosXL edit; edm_v_file), trained on the scaled one: as
    ComfyUI feeds them (its SDXL_instructpix2pix scales for model type V_PREDICTION_EDM only)."""
    batch, channels, h, w = shape
    image = options.get("concat_latent_image")
    if image is None:
        return torch.zeros(batch, channels, h, w, device=device)
    if image.shape[1] != channels:
        raise NodeInputError("positive", f"the conditioning's concat latent has {image.shape[1]} channels; this "
                                         f"model takes {channels} beside the latent (IC-Light: a background latent "
                                         f"goes with the 12-channel 'fbc' model, and only with it)")
    image = image.float().to(device)
    if tuple(image.shape[-2:]) != (h, w):
        image = _resize_center(image, h, w)
    image = resize_to_batch(image, batch)
    return latent_format.process_in(image) if arch.startswith("sdxl") and edm_v_file else image


def x4_concat(options: dict, shape: tuple, device, seed: int) -> torch.Tensor:
    """The x4 upscaler's 3 extra input channels: SD_4XUpscale_Conditioning's low-res image
    ("concat_image", -1..1; zeros without one) resized to the latent (bilinear, centre crop),
    noise-augmented at its "noise_augmentation" with noise from seed - 10 (ComfyUI's SD_X4Upscaler)."""
    from graphflow.models.x4_upscaler import IMAGE_CHANNELS, augment

    batch, _, h, w = shape
    image = options.get("concat_image")
    if image is None:
        image = torch.zeros(batch, IMAGE_CHANNELS, h, w, device=device)
    image = _resize_center(image.float().to(device), h, w)
    image = augment(image, float(options.get("noise_augmentation", 0.0)), seed)
    return resize_to_batch(image, batch)


def _refuse_x4_conditioning(model, sides: dict) -> None:
    """SD_4XUpscale_Conditioning's output only means something to the x4 upscaler; elsewhere the
    low-res image would be silently dropped."""
    for name, conditioning in sides.items():
        for entry in conditioning or ():
            if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[1], dict) \
                    and entry[1].get("concat_image") is not None:
                arch = getattr(model, "arch", type(model).__name__)
                family = ARCHITECTURES[arch].name if arch in ARCHITECTURES else arch.upper()
                raise NodeInputError(name, f"this conditioning comes from SD_4XUpscale_Conditioning, which is for "
                                           f"Stability's x4 upscaler (x4-upscaler-ema.safetensors), but the model is "
                                           f"{family}; load the x4 upscaler checkpoint for this graph")


def differential_mask(schedule: DiscreteSchedule, sigmas: torch.Tensor, strength: float = 1.0):
    """Differential diffusion (Levin & Fried 2023): a soft mask says how much each pixel may change
    by WHEN it is released: at each step the mask becomes binary, 1 where it is at least the
    fraction of the run still ahead (in timesteps, from the first sigma to the last non-zero one
    or sigma_min), so 1s change from the start and 0.3s only over the last 30%. 0 < strength < 1
    mixes the binary mask with the soft one (strength 0 is the binary mask, as in ComfyUI's
    DifferentialDiffusion, whose test of strength is falsy at 0)."""
    sigma_to = max(float(sigmas[-1]), float(schedule.sigma_min))
    ts_from = float(schedule.timestep(sigmas[:1].cpu().float())[0])
    ts_to = float(schedule.timestep(torch.tensor([sigma_to]))[0])

    def mask_fn(sigma: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        current = schedule.timestep(sigma.reshape(-1)[:1].float())  # on the device: no sync per step
        # a run that starts at sigma_to's timestep divides by 0: the threshold is nan / inf and no
        # pixel is released, as in ComfyUI (a tensor divided by 0 does not raise)
        threshold = (current - ts_to) / (ts_from - ts_to)
        binary = (mask >= threshold).to(mask.dtype)
        return strength * binary + (1 - strength) * mask if 0 < strength < 1 else binary

    return mask_fn


class MaskedDenoiser:
    """Keeps a noise mask's known region (mask 0) on the input latent: before each model call the
    known region of x is set to latent + noise * sigma (the latent noised to the current level;
    noised_known False: the clean latent, as ComfyUI's LTX-Video, whose model is told the known
    tokens' lower level; scale_known(sigma, latent), the model's own rule (DiffusionModel.
    scale_latent_inpaint: Cosmos 1.0's, Cosmos-Predict2's), sets it), after it the known region of
    the prediction is set to the latent.
    mask_fn(sigma, mask), if given, makes the mask used at each step (differential diffusion)."""

    def __init__(self, denoiser, schedule: DiscreteSchedule, latent_image: torch.Tensor, noise: torch.Tensor,
                 mask: torch.Tensor, mask_fn=None, noised_known: bool = True, scale_known=None):
        self.denoiser = denoiser
        self.schedule = schedule
        self.latent_image = latent_image
        self.noise = noise
        self.mask = mask
        self.mask_fn = mask_fn
        self.noised_known = noised_known
        self.scale_known = scale_known or getattr(schedule, "scale_latent_inpaint", None)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args) -> torch.Tensor:
        mask = self.mask if self.mask_fn is None else self.mask_fn(sigma, self.mask)
        keep = 1.0 - mask
        known = self.schedule.noise_scaling(sigma, self.noise, self.latent_image) if self.noised_known \
            else self.latent_image
        if self.scale_known is not None:  # the model's own rule (Cosmos: seen clean by the network)
            known = self.scale_known(sigma, self.latent_image)
        x = x * mask + known * keep
        denoised = self.denoiser(x, sigma, **extra_args)
        return denoised * mask + self.latent_image * keep
