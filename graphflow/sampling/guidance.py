"""Classifier-free guidance over CONDITIONING lists, with ComfyUI's area / strength / mask rules.

CFG (Ho & Salimans 2022): D = D_uncond + cfg * (D_cond - D_uncond), on denoised predictions,
computed as uncond + (cond - uncond) * cfg (the operand order fixes the float rounding). With
cfg == 1 the negative prompt is not evaluated at all.

A CONDITIONING is a list of (embedding [B, T, D], options) entries. Each side's prediction is the
weighted average of its entries' predictions, as ComfyUI's ConditioningCombine +
ConditioningSetArea / SetMask do:
  - an entry with "area" (h, w, y, x in latent units) runs the model on that crop only; its weight
    is "strength" (default 1), faded in over min(8, size // 4) latent pixels at each area edge
    that is inside the image, size being the area's (cut short by the image's border);
  - on a video latent [B, C, T, h, w] an area is (t, h, w, z, y, x), z the first frame (ComfyUI's
    N-d areas; ConditioningSetAreaPercentageVideo's ("percentage", t, h, w, z, y, x)), faded the
    same way along every dim, time included. An image area (h, w, y, x) there covers every frame, as ComfyUI's does (its
    percentage form, which ComfyUI's resolver mis-indexes on video, is taken the same way); a video
    area on an image latent is an error;
  - an entry with "mask" ([H, W] or [B, H, W], resized bilinearly to the latent) weighs its
    prediction by mask * "mask_strength" * strength (no fading); on a video latent a MASK
    [F, H, W] is per frame, as in ComfyUI (F = 1: every frame; else F must be the latent's frames);
  - pixels no entry covers get 0.
  - an entry with "set_area_to_bounds" (ConditioningSetMask's "mask bounds") and a mask gets the
    area of the mask's non-zero bounding box (at least 8x8 latent pixels), so only that crop runs
    (on video: the box over all frames, for every frame; ComfyUI's code fails there);
  - an entry with "start_percent" / "end_percent" (ConditioningSetTimestepRange) takes part only
    while end_sigma <= sigma <= start_sigma, the percents turned into sigmas by the model's
    schedule (0% = the noisiest, above any sigma; 100% = sigma 0), judged by the batch's first
    sigma against the bounds rounded to float32 (ComfyUI's tensor comparison); at a step where no entry of a side is active that side's prediction is 0, as in ComfyUI.
  - an entry with "step_range" (start, end) (CLIP Text Encode++'s prompt editing, fractions of the
    sampler's steps) takes part at the steps i of n with start <= i / n < end, a sigma counting as
    the step whose sigma is nearest (the smZ pack's rule; falling or rising sigmas): its bounds are
    the midpoints to the sigmas of the nearest steps outside it (unbounded above the first step and,
    for the stretch ending at 1, below the last). Within a percent range (ConditioningSetTimestepRange,
    a hook's clip_start_percent) it is active only where both are. The steps counted are those of the
    sigmas given (KSampler / KSamplerAdvanced pass their whole schedule, so a partial run counts
    absolute steps; custom samplers pass the sigmas they run, the whole schedule being unknown there,
    so a SplitSigmas half counts its own steps). Without the run's sigmas (prepare_conds(sigmas=None))
    it is taken as a start_percent / end_percent range.
  - an entry with "reference_latents" (ReferenceLatent: raw latents, each its own size) passes them,
    in model space and repeated to the batch, to a FLUX model with its "reference_latents_method"
    (FluxKontextMultiReferenceLatentMethod; "offset" by default) or to a Qwen-Image model (the
    Edit models' pictures; "index" by default); other models refuse them.
  - an entry with "hooks" (graphflow.sampling.hooks) is evaluated with its LoRAs patched into the
    model, never batched with entries of another hook set; an entry with "default"
    (ConditioningSetDefaultCombine) weighs 1 minus the weights of its side's other active entries
    (clipped at 0), and is skipped where that leaves nothing.
  Before sampling, every area entry of one side gets a counterpart on the other side with the same
  area, strength and mask, built from the smallest other-side entry that contains the area (or one
  without area), so the negative is also evaluated on each crop.
Entries whose inputs agree in shape are batched into one UNet call: the positive and negative
prompt of a plain txt2img run make ONE forward of batch 2B. Prompts of different token lengths
(75 vs 150 tokens, say) are batched by repeating each embedding to the least common multiple of
the lengths (repeating keys and values leaves softmax attention's output unchanged) while that
multiple is at most 4x the shorter; otherwise they run separately (and always for Mochi, whose
text tokens are keys next to the image's in one attention).
While a batch runs, `unet_rows` tells model patches that need it (IP-Adapter) the sigma and which
rows are the negative prompt's.
"""

import contextvars
import logging
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..models.architectures import ARCHITECTURES
from .hooks import hook_switch, hooks_key
from .model_sampling import in_sigma_window


@dataclass
class Cond:
    """One conditioning entry, ready for the model (tensors on the sampling device)."""

    context: torch.Tensor  # [B, T, D] cross-attention embedding, batch already matched to x
    y: torch.Tensor | None = None  # [B, adm] SDXL vector conditioning
    concat: torch.Tensor | None = None  # [B, c, h, w] extra input channels (inpainting models)
    area: tuple[int, ...] | None = None  # (sizes..., offsets...) per latent dim: (h, w, y, x), video (t, h, w, z, y, x)
    strength: float = 1.0
    mask: torch.Tensor | None = None  # [b, h, w] at latent resolution; video [b, T, h, w]
    mask_strength: float = 1.0
    guidance: torch.Tensor | None = None  # [B] FLUX dev's distilled guidance scale
    control: object = None  # ControlNets / T2I-Adapters (graphflow.models.controlnet.ControlApplied)
    control_to_uncond: bool = False  # the deprecated ControlNetApply's: the other sides borrow this control
    control_context: torch.Tensor | None = None  # [B, T, D] ControlNets' own text (CLIPTextEncodeControlnet)
    gligen: object = None  # GLIGEN boxes (graphflow.models.gligen.GligenBoxes)
    sigma_start: float | None = None  # active only while sigma_end <= sigma <= sigma_start
    sigma_end: float | None = None
    attention_mask: torch.Tensor | None = None  # [B, T + N, T + N] additive bias over FLUX's text + image tokens
    text_mask: torch.Tensor | None = None  # [B, T] 1 keep, 0 padding: HunyuanVideo's text encoder's mask
    negative: bool = False  # the negative prompt's entry (prepare_conds(negative=True))
    references: tuple[torch.Tensor, ...] = ()  # FLUX Kontext's reference latents [B, 16, h, w], model space
    reference_method: str = "offset"
    hooks: object = None  # graphflow.sampling.hooks.Hooks: weight patches while this entry is evaluated
    default: bool = False  # ConditioningSetDefaultCombine's: weighs only what the other entries leave
    prior: torch.Tensor | None = None  # [B, 16, h, w] Stable Cascade Stage C latent, Stage B's conditioning
    video_frames: int | None = None  # SVD, AnimateDiff: frames per video (the latent batch), however many sides are batched
    frame_rate: float | None = None  # LTX-Video's (LTXVConditioning): where frames sit in time
    keyframe_positions: torch.Tensor | None = None  # LTX-Video's appended guide frames (LTXVAddGuide): [N, 3]
    # prompts of other lengths never share a model call (Architecture.repeats_text False); else the shorter
    # is repeated to a common length, as ComfyUI's CONDCrossAttn does for UNets
    exact_tokens: bool = False
    clip_fea: torch.Tensor | None = None  # [B, 257, 1280] Wan I2V: CLIP vision's penultimate states
    vace_context: torch.Tensor | None = None  # [B, N, 96, T, h, w] Wan VACE: control latents + masks, model space
    vace_strength: tuple = ()  # one per VACE input
    time_dim_concat: torch.Tensor | None = None  # [B, C, T', h, w] Phantom-Wan subject frames, model space
    camera_conditions: torch.Tensor | None = None  # [B, 24, T, 8h, 8w] Wan Fun Control-Camera's Plücker rays
    pose_latents: torch.Tensor | None = None  # [B, 16, T - 1, h, w] Wan Animate's pose video latent, model space
    face_pixels: torch.Tensor | None = None  # [B, 3, frames, 512, 512] Wan Animate's face video in [-1, 1]
    llama_states: torch.Tensor | None = None  # [B, layers, L, 4096] HiDream: Llama 3.1's per-layer states
    guiding_frame_index: torch.Tensor | None = None  # [B] HunyuanVideo's token replace (HunyuanImageToVideo v2)
    byt5_states: torch.Tensor | None = None  # [B, L, 1472] HunyuanImage: byT5's states of the prompt's quoted text

    def active(self, sigma: torch.Tensor) -> bool:
        if self.sigma_start is None and self.sigma_end is None:
            return True  # without a timestep range, no need to read sigma back from the device
        return in_sigma_window(sigma, self.sigma_start, self.sigma_end, rounded=True)


def repeat_to_batch(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Cycled or cut to `batch` (0, 1, 0, 1): how conditioning follows the sampled batch."""
    if t.shape[0] > batch:
        return t[:batch]
    if t.shape[0] < batch:
        return t.repeat([math.ceil(batch / t.shape[0])] + [1] * (t.ndim - 1))[:batch]
    return t


def batch_picks(n: int, batch: int) -> list[int]:
    """Which of n items each of `batch` items takes, spread evenly as ComfyUI's resize_to_batch_size
    spreads them: fewer items than the batch each cover a run of it (2 for 4: 0, 0, 1, 1), more are
    thinned to the batch (first and last kept)."""
    if batch <= 1 or n == batch:
        return list(range(min(n, batch)))
    if batch < n:
        return [min(round(i * (n - 1) / (batch - 1)), n - 1) for i in range(batch)]
    return [min(math.floor((i + 0.5) * n / batch), n - 1) for i in range(batch)]


def resize_to_batch(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Stretched or thinned to `batch` (0, 0, 1, 1): how a model's extra input channels (inpaint /
    image-to-video concat latents and masks) follow the latent's batch in ComfyUI."""
    if t.shape[0] == batch:
        return t
    return t[batch_picks(t.shape[0], batch)]


def _resolve_area(area, dims: tuple[int, ...], k: int) -> tuple[int, ...]:
    """An "area" option -> (sizes..., offsets...) in latent units, one of each per latent dim (ComfyUI's
    N-d areas). Fewer dims than the latent's (an image area on a video) cover the leading dims whole,
    as ComfyUI's add_area_dims does for absolute areas; "percentage" areas (fractions) likewise."""
    percentage = area[0] == "percentage"
    values = tuple(area[1:] if percentage else area)
    n = len(values) // 2
    if len(values) % 2 or not n:
        raise ValueError(f"conditioning entry {k}: an area is (sizes..., offsets...) per latent dim, got {tuple(area)}")
    if n > len(dims):
        node = "ConditioningSetAreaPercentageVideo" if percentage else "a video area (t, h, w, z, y, x)"
        raise ValueError(f"conditioning entry {k}: {node} needs a video latent [B, C, T, h, w]; this latent has "
                         f"{len(dims)} dims {tuple(dims)} (use ConditioningSetArea / ConditioningSetAreaPercentage)")
    lead = len(dims) - n
    if percentage:  # fractions of each dim: size at least 1, rounded
        sizes, offsets = (1.0,) * lead + values[:n], (0.0,) * lead + values[n:]
        return (tuple(max(1, round(f * d)) for f, d in zip(sizes, dims))
                + tuple(round(f * d) for f, d in zip(offsets, dims)))
    return tuple(dims[:lead]) + tuple(int(v) for v in values[:n]) + (0,) * lead + tuple(int(v) for v in values[n:])


def _resize_mask(mask: torch.Tensor, dims: tuple[int, ...], k: int) -> torch.Tensor:
    """A mask at the latent's resolution: [b, h, w] for an image latent, [b, T, h, w] for a video's."""
    mask = mask.float()
    if len(dims) == 2:
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim == 4:  # [B, 1, H, W]
            mask = mask[:, 0]
        if tuple(mask.shape[1:]) != tuple(dims):
            mask = F.interpolate(mask[:, None], size=dims, mode="bilinear", align_corners=False)[:, 0]
        return mask
    # video: ComfyUI reads a MASK [F, H, W] as [1, F, H, W], its batch being the frames; [B, F, H, W] as is
    frames = dims[0]
    if mask.ndim in (2, 3):
        mask = mask.reshape(1, -1, *mask.shape[-2:])
    if mask.ndim != 4 or mask.shape[1] not in (1, frames):
        raise ValueError(f"conditioning entry {k}: a mask on this video latent ({frames} latent frames) must be "
                         f"one frame [1, H, W] (for every frame) or one per latent frame [{frames}, H, W], "
                         f"got shape {tuple(mask.shape)}")
    if tuple(mask.shape[2:]) != tuple(dims[1:]):  # frames as channels: each resized alone
        mask = F.interpolate(mask, size=dims[1:], mode="bilinear", align_corners=False)
    return mask.expand(-1, frames, -1, -1)


def percent_to_sigma(schedule, percent: float) -> float:
    """ComfyUI's percent of the sampling process -> sigma (the schedule's own rule)."""
    return schedule.percent_to_sigma(percent)


def _mask_bounds(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(h, w, y, x) of the non-zero part of a [b, h, w] (or [b, T, h, w]: over all frames) mask, at
    least 8x8; (8, 8, 0, 0) if empty."""
    nonzero = torch.nonzero(mask.abs().flatten(0, -3).amax(0))
    if nonzero.numel() == 0:
        return (8, 8, 0, 0)
    (y0, x0), (y1, x1) = nonzero.amin(0).tolist(), nonzero.amax(0).tolist()
    return (max(8, y1 - y0 + 1), max(8, x1 - x0 + 1), y0, x0)


def step_range_sigmas(sigmas, start: float, end: float) -> tuple[float | None, float | None]:
    """The (sigma_start, sigma_end) window of the steps i of the run's n (len(sigmas) - 1) with
    start <= i / n < end (the last sigma, step n, goes with the stretch ending at 1), such that any
    sigma counts as its nearest step: the window reaches halfway to the nearest sigma of a step
    outside it, above and below (None: unbounded). Falling or rising sigmas (the Unsampler's) give
    the same nearest steps; a schedule that goes both ways gets the span of the steps' sigmas.
    No such step: a window no sigma is in."""
    values = [float(v) for v in sigmas]
    n = len(values) - 1
    inside = [start <= i / max(n, 1) < end or (i == n and end >= 1) for i in range(n + 1)]
    if not any(inside):
        return -1.0, None
    top = max(v for v, keep in zip(values, inside) if keep)
    bottom = min(v for v, keep in zip(values, inside) if keep)
    above = [v for v, keep in zip(values, inside) if not keep and v > top]
    below = [v for v, keep in zip(values, inside) if not keep and v < bottom]
    upper = (top + min(above)) / 2 if above else None
    lower = (bottom + max(below)) / 2 if below else None
    return upper, lower


def prepare_conds(conditioning, model, x_shape, device, *, negative: bool = False,
                  concat_fn=None, schedule=None, seed: int = 0, sigmas=None) -> list[Cond]:
    """CONDITIONING list -> [Cond]. SDXL's y comes from model.encode_adm(options, width_px,
    height_px, negative=...) with the full image size (latent size * 8) as default sizes.
    concat_fn(options) -> [B, c, h, w] | None supplies inpainting models' extra channels.
    schedule (a DiscreteSchedule; the model's own if None) turns timestep ranges into sigmas.
    seed (the sampler's) seeds unCLIP models' noise augmentation of image embeddings. sigmas (the
    run's) place "step_range" entries."""
    if not isinstance(conditioning, (list, tuple)):
        raise TypeError(f"conditioning must be a list of (tensor, options) pairs, got {type(conditioning).__name__}")
    batch, latent_hw = x_shape[0], tuple(x_shape[2:])  # latent_hw: every latent dim (video: T, h, w)
    out = []
    spec = ARCHITECTURES.get(getattr(model, "arch", None))
    for k, entry in enumerate(conditioning):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and torch.is_tensor(entry[0])
                and isinstance(entry[1], dict)):
            raise TypeError(f"conditioning entry {k} must be a (tensor [B, T, D], options dict) pair")
        embedding, options = entry
        if embedding.ndim != 3:
            raise ValueError(f"conditioning entry {k}: embedding must be [B, T, D], got shape {tuple(embedding.shape)}")
        y = guidance = attention_mask = mask_of_text = None
        if "azimuth" in options and getattr(model, "arch", None) != "svd":  # else a shape error deep in the model
            raise ValueError(f"conditioning entry {k} is SV3D_Conditioning's (a camera azimuth per frame); it needs an "
                             f"SV3D model (sv3d_u / sv3d_p, from ImageOnlyCheckpointLoader), this one is "
                             f"{getattr(model, 'arch', type(model).__name__)}")
        if getattr(model, "context_projection", None) is not None:  # Stable Zero123: image + camera -> context
            embedding = model.encode_context(embedding)
        if getattr(model, "prediction", None) == "flow":  # SD3 / FLUX: pooled text vector (+ guidance)
            from .flow_sampling import attention_bias, flow_vectors
            y, guidance = flow_vectors(model, options, batch)
            if options.get("attention_mask") is not None and spec is not None and spec.text_mask:
                # the text encoder's mask [B, T] (1 keep; ComfyUI's hunyuan_video CLIP gives one only with padding)
                mask_of_text = repeat_to_batch(text_mask(options["attention_mask"], embedding, k), batch).to(device)
            elif options.get("attention_mask") is not None:
                attention_mask = repeat_to_batch(attention_bias(model, options, latent_hw), batch).to(device)
            y = None if y is None else y.to(device)
            guidance = None if guidance is None else guidance.to(device)
        elif getattr(model, "adm_channels", 0) or getattr(model, "upscaler", False):
            # unCLIP models, and SDXL ones taking unCLIP conditioning as their pooled vector ("revision")
            unclip = {"seed": seed, "device": device} if (getattr(model, "noise_augmentor", None) is not None or str(
                getattr(model, "arch", "")).startswith("sdxl")) else {}
            y = model.encode_adm(options, latent_hw[1] * 8, latent_hw[0] * 8, negative=negative, **unclip)
            if y is None:
                raise ValueError(f"the model needs SDXL vector conditioning ({model.adm_channels} channels) "
                                 f"but encode_adm gave none for conditioning entry {k}")
            if getattr(model, "arch", None) == "svd":  # SV3D_p's per-frame cameras stretch (ComfyUI's resize_to_batch_size)
                y = resize_to_batch(y, batch)
            y = repeat_to_batch(y, batch).to(device)
        if len(x_shape) not in (4, 5) and (options.get("mask") is not None or options.get("area") is not None):
            raise ValueError(f"conditioning entry {k}: areas and masks need image latents [B, C, h, w] or video "
                             f"latents [B, C, T, h, w]; this latent is {tuple(x_shape)}")
        frame_rate = options.get("frame_rate", getattr(model, "default_frame_rate", 25.0)) \
            if getattr(model, "is_video", False) else None
        keyframes = _keyframe_positions(options, x_shape, k) if getattr(model, "is_video", False) else None
        references = _reference_latents(model, options, batch, device)
        prior = _cascade_prior(model, options, x_shape, device)
        mask = options.get("mask")
        if mask is not None:
            mask = _resize_mask(mask, latent_hw, k).to(device)
        area = None if options.get("area") is None else _resolve_area(options["area"], latent_hw, k)
        if mask is not None and options.get("set_area_to_bounds"):
            area = _resolve_area(_mask_bounds(mask), latent_hw, k)
        if area is not None and keyframes is not None and any(
                o != 0 or size < d for size, o, d in zip(area[:len(latent_hw)], area[len(latent_hw):], latent_hw)):
            raise ValueError(f"conditioning entry {k}: a conditioning area can't crop a latent with LTXVAddGuide's "
                             f"appended guide frames (their positions are the whole latent's); area {area}")
        sigma_start = sigma_end = None
        start, end = options.get("start_percent"), options.get("end_percent")
        step_range = options.get("step_range")
        if step_range is not None and sigmas is None:  # no run to count steps in: a percent range, within
            # any percent range the entry has (the tighter bounds)
            start = max(float(step_range[0]), float(0.0 if start is None else start))
            end = min(float(step_range[1]), float(1.0 if end is None else end))
        if options.get("clip_start_percent") is not None:  # a scheduled CLIP hook's stretch (SetClipHooks)
            start = max(float(options["clip_start_percent"]), float(start or 0.0))
            end = min(float(options.get("clip_end_percent", 1.0)), 1.0 if end is None else float(end))
        if start is not None or end is not None:
            if schedule is None:
                from .flow_sampling import model_sampling_for

                schedule = model_sampling_for(model)
            sigma_start = percent_to_sigma(schedule, float(0.0 if start is None else start))
            sigma_end = percent_to_sigma(schedule, float(1.0 if end is None else end))
        if step_range is not None and sigmas is not None:  # within any percent range too: the tighter bounds
            steps_start, steps_end = step_range_sigmas(sigmas, float(step_range[0]), float(step_range[1]))
            if steps_start is not None:
                sigma_start = steps_start if sigma_start is None else min(sigma_start, steps_start)
            if steps_end is not None:
                sigma_end = steps_end if sigma_end is None else max(sigma_end, steps_end)
        out.append(Cond(
            context=repeat_to_batch(embedding, batch).to(device),
            y=y,
            concat=None if concat_fn is None else concat_fn(options),
            area=area,
            strength=float(options.get("strength", 1.0)),
            mask=mask,
            mask_strength=float(options.get("mask_strength", 1.0)),
            guidance=guidance,
            control=options.get("control"),
            control_to_uncond=bool(options.get("control_apply_to_uncond", False)),
            control_context=_control_context(options, embedding, batch, device, k),
            gligen=options.get("gligen"),
            sigma_start=sigma_start,
            sigma_end=sigma_end,
            attention_mask=attention_mask,
            text_mask=mask_of_text,
            negative=negative,
            references=references,
            # ComfyUI's default placement: Qwen-Image's model "index", FLUX Kontext's "offset"
            reference_method=options.get("reference_latents_method") or (
                "index" if getattr(model, "arch", None) == "qwen_image" else "offset"),
            hooks=options.get("hooks"),
            default=bool(options.get("default")),
            prior=prior,
            # SVD and AnimateDiff (a UNet with temporal layers): the latent batch is one video's frames
            video_frames=batch if getattr(model, "arch", None) == "svd" or getattr(
                getattr(model, "unet", None), "temporal_layers", None) else None,
            frame_rate=None if frame_rate is None else float(frame_rate),
            keyframe_positions=keyframes,
            # their text tokens are keys, not repeated (ComfyUI passes them as CONDRegular: same shapes only)
            exact_tokens=spec is not None and not spec.repeats_text,
            clip_fea=_clip_fea(model, options, batch, device),
            **_vace(model, options, x_shape, device),
            time_dim_concat=_time_dim_concat(model, options, batch, device),
            camera_conditions=_camera_conditions(model, options, batch, device),
            **_animate(model, options, batch, device),
            llama_states=_llama_states(model, options, batch, device),
            guiding_frame_index=_guiding_frame_index(model, options, batch, device),
            byt5_states=_byt5_states(model, options, batch, device),
        ))
    return out


def _llama_states(model, options: dict, batch: int, device) -> torch.Tensor | None:
    """HiDream's Llama 3.1 per-layer states: the conditioning's "conditioning_llama3" [B, layers, L, 4096]
    (ComfyUI's option, which its HiDream passes as encoder_hidden_states_llama3); other models ignore it.
    Entries batch only where these agree in shape (ComfyUI's CONDRegular)."""
    if getattr(model, "arch", None) != "hidream":
        return None
    from .flow_sampling import hidream_text

    return repeat_to_batch(hidream_text(options).float(), batch).to(device, model.dtype)


def _byt5_states(model, options: dict, batch: int, device) -> torch.Tensor | None:
    """HunyuanImage's glyph text: the conditioning's "conditioning_byt5small" [B, L, 1472] (byT5's states of
    the prompt's quoted text, DualCLIPLoader hunyuan_image's), as ComfyUI's HunyuanImage21 passes it
    (txt_byt5); absent when the prompt quotes nothing. Other models ignore it."""
    states = options.get("conditioning_byt5small")
    if states is None or getattr(model, "arch", None) != "hunyuan_image":
        return None
    if not torch.is_tensor(states) or states.ndim != 3:
        raise ValueError("a HunyuanImage conditioning's conditioning_byt5small must be byT5's states [B, L, width], "
                         f"got {getattr(states, 'shape', type(states).__name__)}")
    return repeat_to_batch(states.float(), batch).to(device, model.dtype)


def _clip_fea(model, options: dict, batch: int, device) -> torch.Tensor | None:
    """Wan image-to-video's image tokens: the conditioning's "clip_vision_output" (WanImageToVideo's)
    penultimate hidden states, as ComfyUI's WAN21 passes them (clip_fea); other models ignore it."""
    output = options.get("clip_vision_output")
    if output is None or getattr(model, "arch", None) != "wan":
        return None
    states = output["penultimate_hidden_states"] if isinstance(output, dict) else output.penultimate_hidden_states
    return repeat_to_batch(states.float(), batch).to(device, model.dtype)


def text_mask(mask, embedding: torch.Tensor, k: int) -> torch.Tensor:
    """A conditioning's text mask [B, T] (1 keep) for its embedding [B, T, D]."""
    mask = torch.as_tensor(mask).float()
    mask = mask[None] if mask.ndim == 1 else mask
    if mask.ndim != 2 or mask.shape[1] != embedding.shape[1]:
        raise ValueError(f"conditioning entry {k}: its attention_mask must be a text mask [B, {embedding.shape[1]}] "
                         f"for a HunyuanVideo / HunyuanImage model, got shape {tuple(mask.shape)}")
    return mask


def _guiding_frame_index(model, options: dict, batch: int, device) -> torch.Tensor | None:
    """HunyuanVideo's "guiding_frame_index" (HunyuanImageToVideo "v2 (replace)": 0), as ComfyUI's
    HunyuanVideo passes it: the latent frame whose image tokens take that timestep's modulation."""
    index = options.get("guiding_frame_index")
    if index is None or getattr(model, "arch", None) != "hunyuan_video":
        return None
    return torch.full((batch,), float(index), device=device)


def _time_dim_concat(model, options: dict, batch: int, device) -> torch.Tensor | None:
    """Phantom-Wan's subject frames: the conditioning's "time_dim_concat" (WanPhantomSubjectToVideo's
    raw latent) in model space, which the Wan model appends to the video along time for its call
    and cuts from its output (ComfyUI's WAN21 passes it likewise); other models ignore it."""
    frames = options.get("time_dim_concat")
    if frames is None or getattr(model, "arch", None) != "wan":
        return None
    return repeat_to_batch(model.latent_format.process_in(frames.float()), batch).to(device, model.dtype)


def _camera_conditions(model, options: dict, batch: int, device) -> torch.Tensor | None:
    """A Wan Fun Control-Camera model's camera: the conditioning's "camera_conditions"
    (WanCameraEmbedding's [1, 24, T, H, W] Plücker rays, as they are), as ComfyUI's WAN21_Camera
    passes them; models without a camera adapter ignore them, as ComfyUI's do."""
    rays = options.get("camera_conditions")
    cfg = getattr(getattr(model, "unet", None), "config", None)
    if rays is None or getattr(model, "arch", None) != "wan" or not getattr(cfg, "camera_in_channels", 0):
        return None
    if not torch.is_tensor(rays) or rays.ndim != 5 or rays.shape[1] != cfg.camera_in_channels:
        raise ValueError(f"WanCameraImageToVideo: camera_conditions must be WanCameraEmbedding's [1, "
                         f"{cfg.camera_in_channels}, frames, height, width], got {tuple(getattr(rays, 'shape', ()))}")
    return repeat_to_batch(rays.float(), batch).to(device, model.dtype)


def _animate(model, options: dict, batch: int, device) -> dict:
    """A Wan Animate model's driving inputs, as ComfyUI's WAN22_Animate passes them: the conditioning's
    "pose_video_latent" (WanAnimateToVideo's raw latent) in model space and "face_video_pixels" as
    they are; other models ignore them, as ComfyUI's do."""
    cfg = getattr(getattr(model, "unet", None), "config", None)
    if getattr(model, "arch", None) != "wan" or not getattr(cfg, "face_adapter_layers", 0):
        return {}
    out = {}
    pose, faces = options.get("pose_video_latent"), options.get("face_video_pixels")
    if pose is not None:
        out["pose_latents"] = repeat_to_batch(model.latent_format.process_in(pose.float()), batch).to(device, model.dtype)
    if faces is not None:
        if not torch.is_tensor(faces) or faces.ndim != 5 or faces.shape[1] != 3:
            raise ValueError(f"WanAnimateToVideo: face_video_pixels must be [1, 3, frames, 512, 512], got "
                             f"{tuple(getattr(faces, 'shape', ()))}")
        out["face_pixels"] = repeat_to_batch(faces.float(), batch).to(device, model.dtype)
    return out


def _vace(model, options: dict, x_shape: tuple, device) -> dict:
    """A Wan VACE model's control input, as ComfyUI's WAN21_Vace builds it: each of the
    conditioning's "vace_frames" (WanVaceToVideo's [1, 32, T, h, w] raw latents; without any, one of
    zeros) mapped 16 channels at a time into model space, its "vace_mask" (64 channels; all ones
    without) after it, the inputs stacked on dim 1; "vace_strength" one per input (1.0 each)."""
    cfg = getattr(getattr(model, "unet", None), "config", None)
    if getattr(model, "arch", None) != "wan" or not getattr(cfg, "vace_layers", 0):
        return {}
    batch, _, *grid = x_shape
    fmt = model.latent_format
    frames = options.get("vace_frames") or [torch.zeros(1, 32, *grid)]
    masks = options.get("vace_mask") or [torch.ones(1, 64, *grid)] * len(frames)
    inputs = []
    for f, m in zip(frames, masks):
        f = torch.cat([fmt.process_in(chunk) for chunk in f.float().split(fmt.channels, dim=1)], dim=1)
        inputs.append(torch.cat([f, m.float()], dim=1))
    strength = tuple(float(s) for s in options.get("vace_strength") or [1.0] * len(inputs))
    return {"vace_context": repeat_to_batch(torch.stack(inputs, dim=1), batch).to(device, model.dtype),
            "vace_strength": strength}


def _keyframe_positions(options: dict, x_shape: tuple, k: int) -> torch.Tensor | None:
    """LTXVAddGuide's "keyframe_idxs": the pixel (frame, row, column) of each token of the guide
    frames appended to the latent, [N, 3], N whole latent frames' tokens. Kept on the CPU (the
    model moves them) so that batching entries can compare them without a device sync."""
    positions = options.get("keyframe_idxs")
    if positions is None:
        return None
    tokens = math.prod(x_shape[2:])
    per_frame = math.prod(x_shape[3:]) if len(x_shape) == 5 else 0
    if (not torch.is_tensor(positions) or positions.ndim != 2 or positions.shape[1] != 3 or not per_frame
            or positions.shape[0] % per_frame or not 0 < positions.shape[0] < tokens):
        shape = tuple(positions.shape) if torch.is_tensor(positions) else type(positions).__name__
        raise ValueError(f"conditioning entry {k}: the guide frames' positions (LTXVAddGuide's keyframe_idxs) must be "
                         f"[N, 3] for whole latent frames of this video latent {tuple(x_shape)}, got {shape}; was the "
                         "latent cropped (LTXVCropGuides) without its conditioning?")
    return positions.detach().float().cpu()


def _cascade_prior(model, options: dict, x_shape: tuple, device) -> torch.Tensor | None:
    """Stable Cascade Stage B's conditioning on Stage C's latent (StableCascade_StageB_Conditioning's
    "stable_cascade_prior"); zeros without one, as ComfyUI. None for other models."""
    if getattr(model, "arch", None) != "stable_cascade_b":
        return None
    prior = options.get("stable_cascade_prior")
    batch, _, h, w = x_shape
    if prior is None:
        return torch.zeros(batch, 16, h * 4 // 42, w * 4 // 42, device=device)
    channels = model.unet.config.effnet_channels
    if prior.ndim != 4 or prior.shape[1] != channels:
        raise ValueError(f"the Stable Cascade prior (StableCascade_StageB_Conditioning's stage_c) must be a Stage C "
                         f"latent [B, {channels}, h, w], got shape {tuple(prior.shape)}")
    return repeat_to_batch(prior.float(), batch).to(device)


def _control_context(options: dict, embedding: torch.Tensor, batch: int, device, k: int) -> torch.Tensor | None:
    """CLIPTextEncodeControlnet's text ("cross_attn_controlnet"), which ControlNets attend to in
    place of the prompt's, as ComfyUI's ControlNet.get_control does."""
    context = options.get("cross_attn_controlnet")
    if context is None or options.get("control") is None:  # no ControlNet to read it: batch as usual
        return None
    if context.ndim != 3 or context.shape[-1] != embedding.shape[-1]:
        raise ValueError(f"conditioning entry {k}: the ControlNet text (CLIPTextEncodeControlnet) must be "
                         f"[B, T, {embedding.shape[-1]}] like the prompt's, got shape {tuple(context.shape)}")
    return repeat_to_batch(context, batch).to(device)


def _reference_latents(model, options: dict, batch: int, device) -> tuple[torch.Tensor, ...]:
    """FLUX Kontext's and Qwen-Image-Edit's (TextEncodeQwenImageEdit) reference latents, as ComfyUI
    passes them: each through the model's latent format (model space), [B, C, h, w] (Qwen-Image's
    one-frame [B, C, 1, h, w] loses its frame axis), repeated to the batch."""
    latents = options.get("reference_latents") or ()
    if not latents:
        return ()
    arch = getattr(model, "arch", None)
    if arch == "wan":  # Wan 2.2 Fun Control (Wan22FunControlToVideo's ref_image)
        return _wan_reference(model, latents, batch, device)
    if getattr(model, "fill", False):  # (ComfyUI's Fill would feed them to its 384-channel input and fail)
        raise ValueError("ReferenceLatent: reference latents need a FLUX Kontext or Qwen-Image-Edit model; this "
                         "FLUX Fill model does not take them (remove the ReferenceLatent node)")
    if arch not in ("flux", "qwen_image"):  # ignored, as ComfyUI's models without the input ignore them
        logging.getLogger(__name__).warning("ReferenceLatent: a %s model takes no reference latents; they are ignored",
                                            arch)
        return ()
    fmt = model.latent_format
    out = []
    for k, latent in enumerate(latents):
        if arch == "qwen_image":
            from ..models.qwen_image import one_frame

            latent = one_frame(latent)
        if latent.ndim != 4 or latent.shape[1] != fmt.channels:
            expected = f"[B, {fmt.channels}, h, w] (a FLUX VAE's latent)" if arch == "flux" else \
                f"an image's [B, {fmt.channels}, h, w] or one frame [B, {fmt.channels}, 1, h, w] (the Qwen-Image / " \
                "Wan 2.1 VAE's)"
            raise ValueError(f"ReferenceLatent: reference latent {k} must be {expected}, got shape "
                             f"{tuple(latent.shape)}")
        out.append(repeat_to_batch(fmt.process_in(latent.float()), batch).to(device))
    return tuple(out)


def _wan_reference(model, latents, batch: int, device) -> tuple[torch.Tensor, ...]:
    """A Wan model's reference image, as ComfyUI's WAN21 passes it: the last reference latent's first
    frame in model space, [B, C, h, w], for a model with ref_conv (Wan 2.2 Fun Control); other Wan
    models ignore it, as ComfyUI's do."""
    cfg = getattr(getattr(model, "unet", None), "config", None)
    if not getattr(cfg, "ref_in_channels", 0):
        return ()
    latent = latents[-1]
    if latent.ndim != 5 or latent.shape[1] != cfg.ref_in_channels:
        raise ValueError(f"Wan22FunControlToVideo: the reference latent must be [B, {cfg.ref_in_channels}, frames, h, "
                         f"w] (this model's VAE's), got shape {tuple(latent.shape)}")
    return (repeat_to_batch(model.latent_format.process_in(latent.float())[:, :, 0], batch).to(device),)


def _area_inside(inner, outer) -> bool:
    n = len(inner) // 2
    return all(o >= oo and o + size <= oo + osize
               for size, o, osize, oo in zip(inner[:n], inner[n:], outer[:n], outer[n:]))


def _add_area_counterparts(targets: list[Cond], source: Cond) -> None:
    if source.area is None:
        return
    smallest = None
    for c in targets:
        if c.area is not None:
            if _area_inside(source.area, c.area):
                if smallest is None or smallest.area is None or \
                        math.prod(smallest.area[:len(smallest.area) // 2]) > math.prod(c.area[:len(c.area) // 2]):
                    smallest = c
        elif smallest is None:
            smallest = c
    if smallest is None or (smallest.area is not None and smallest.area == source.area):
        return
    targets.append(replace(source, context=smallest.context, y=smallest.y, concat=smallest.concat,
                           guidance=smallest.guidance, references=smallest.references,
                           reference_method=smallest.reference_method, negative=smallest.negative,
                           control_context=smallest.control_context, clip_fea=smallest.clip_fea))


def match_areas(*sides: list[Cond]) -> None:
    """Give every area entry a same-area counterpart on each other side (in place, ComfyUI's order:
    the first side's areas first, then the next's, including counterparts just added)."""
    for k, side in enumerate(sides):
        for c in side:  # the list may grow while iterating; that is intended
            for j, other in enumerate(sides):
                if j != k:
                    _add_area_counterparts(other, c)


def share_controls(positive: list[Cond], *others: list[Cond]) -> None:
    """ComfyUI's apply_empty_x_to_equal_area, in place, the first list being the positive side: a
    side none of whose area-less entries has a ControlNet takes the positive's marked ones (the
    deprecated ControlNetApply's control_apply_to_uncond), and likewise GLIGEN boxes (all of
    them). The k-th such value goes to the side's k-th area-less entry, cycling; where two land
    on one entry the last wins."""
    for field, marked in (("control", True), ("gligen", False)):
        values = [getattr(c, field) for c in positive
                  if c.area is None and getattr(c, field) is not None and (c.control_to_uncond or not marked)]
        if not values:
            continue
        for side in others:
            plain = [(k, c) for k, c in enumerate(side) if c.area is None]
            if not plain or any(getattr(c, field) is not None for _, c in plain):
                continue
            for j, value in enumerate(values):
                k, entry = plain[j % len(plain)]
                side[k] = replace(entry, **{field: value})


def prepare_sides(first: list[Cond], *others: list[Cond]) -> None:
    """ComfyUI's pass over the prompt sides before sampling, in place: area counterparts
    (match_areas), then the first (positive) side's ControlNets and GLIGEN boxes shared
    (share_controls)."""
    match_areas(first, *others)
    share_controls(first, *others)


def _region(area, lead: int = 2) -> tuple:
    """The index of an area's crop (sizes..., offsets...) in a tensor with `lead` dims before the latent's."""
    n = len(area) // 2
    return (slice(None),) * lead + tuple(slice(o, o + size) for size, o in zip(area[:n], area[n:]))


def _crop_and_weight(cond: Cond, x: torch.Tensor):
    """(model input crop, weight [b, C, *crop], area) for one entry at the current x."""
    dims = tuple(x.shape[2:])
    n = len(dims)
    area = None
    input_x = x
    if cond.area is not None:
        sizes = tuple(min(d - o, size) for d, size, o in zip(dims, cond.area[:n], cond.area[n:]))
        if min(sizes) <= 0:
            names = "(h, w, y, x)" if n == 2 else "(t, h, w, z, y, x)" if n == 3 else "(sizes..., offsets...)"
            raise ValueError(f"conditioning area {cond.area} {names} lies outside the {'x'.join(map(str, dims))} latent")
        area = sizes + tuple(cond.area[n:])
        input_x = x[_region(area)]
    if cond.mask is not None:
        mask = cond.mask[:input_x.shape[0]]
        if area is not None:
            mask = mask[_region(area, lead=1)]
        mask = mask * cond.mask_strength
        mask = mask.unsqueeze(1).repeat(input_x.shape[0] // mask.shape[0], input_x.shape[1], *[1] * n)
    else:
        mask = torch.ones_like(input_x)
    weight = mask * cond.strength
    if cond.mask is None and area is not None:
        for dim, (size, offset, full) in enumerate(zip(area[:n], area[n:], dims), start=2):
            # ComfyUI's N-d fade (images and video alike): a quarter of the area's size, at most 8
            steps = min(8, size // 4)
            for t, factor in [(t, (1.0 / steps) * (t + 1)) for t in range(steps)]:
                if offset != 0:
                    weight.narrow(dim, t, 1).mul_(factor)
                if size + offset < full:
                    weight.narrow(dim, size - 1 - t, 1).mul_(factor)
    return input_x, weight, area


# Cond's per-row tensors that entries batched into one model call stack along the batch (passed by
# these names); entries batch only where each is absent from both or of one shape
STACKED = ("guidance", "control_context", "prior", "clip_fea", "vace_context", "time_dim_concat",
           "camera_conditions", "pose_latents", "face_pixels", "llama_states",
           "guiding_frame_index", "text_mask", "byt5_states")


def _can_batch(a, b) -> bool:
    (xa, _, _, ca), (xb, _, _, cb) = a, b
    if xa.shape != xb.shape or ca.control is not cb.control or ca.gligen is not cb.gligen:
        return False
    if ca.frame_rate != cb.frame_rate or ca.vace_strength != cb.vace_strength:
        return False
    ka, kb = ca.keyframe_positions, cb.keyframe_positions
    if (ka is None) != (kb is None) or (ka is not None and (ka.shape != kb.shape or not torch.equal(ka, kb))):
        return False
    if hooks_key(ca.hooks) != hooks_key(cb.hooks):
        return False
    if ca.reference_method != cb.reference_method or \
            [r.shape for r in ca.references] != [r.shape for r in cb.references]:
        return False
    for name in ("y", "concat", *STACKED):
        ta, tb = getattr(ca, name), getattr(cb, name)
        if (ta is None) != (tb is None) or (ta is not None and ta.shape != tb.shape):
            return False
    sa, sb = ca.context.shape, cb.context.shape
    if (ca.exact_tokens or cb.exact_tokens) and sa != sb:
        return False
    if ca.attention_mask is not None or cb.attention_mask is not None:  # the bias fits its own token count only
        return ca.attention_mask is not None and cb.attention_mask is not None and sa == sb
    if sa != sb:
        if sa[0] != sb[0] or sa[2] != sb[2]:
            return False
        if math.lcm(sa[1], sb[1]) // min(sa[1], sb[1]) > 4:
            return False
    return True


def _cat_contexts(contexts: list[torch.Tensor]) -> torch.Tensor:
    length = 1
    for c in contexts:
        length = math.lcm(length, c.shape[1])
    return torch.cat([c.repeat(1, length // c.shape[1], 1) if c.shape[1] < length else c for c in contexts])


def _crop_concat(concat: torch.Tensor | None, area) -> torch.Tensor | None:
    if concat is None or area is None:
        return concat
    return concat[_region(area)]


@dataclass(frozen=True)
class UNetRows:
    """The UNet call now running: its sigma (a tensor, left on the device; the same object for every
    call of one predict_sides), per batch row whether the row is the negative prompt's (IP-Adapter
    gives those the uncond image tokens), and the conditioning entry of each chunk of rows."""

    sigma: torch.Tensor
    negative: tuple[bool, ...]
    conds: tuple = ()  # the Cond of each equal-sized chunk of rows, in order (EasyCache caches per entry)


# set by predict_sides around each model call; None outside sampling (a direct UNet call)
unet_rows: contextvars.ContextVar[UNetRows | None] = contextvars.ContextVar("unet_rows", default=None)


def _default_entries(defaults: list, to_run: list, x: torch.Tensor) -> list:
    """ConditioningSetDefaultCombine's entries, as ComfyUI's finalize_default_conds: per side, each
    weighs what 1 minus the other active entries' weights leaves (clipped at 0), and is not
    evaluated where that is 0 everywhere."""
    left = {}
    for index in {i for _, i in defaults}:
        mult = torch.ones_like(x)
        for _, weight, area, _, i in to_run:
            if i != index:
                continue
            if area is None:
                mult -= weight
            else:
                mult[_region(area)] -= weight
        left[index] = mult.clamp_(min=0)
    out = []
    for cond, index in defaults:
        mult = left[index]
        if float(mult.max()) == 0.0:
            continue
        input_x, _, area = _crop_and_weight(cond, x)
        if area is not None:
            mult = mult[_region(area)]
        out.append((input_x, mult, area, cond, index))
    return out


def predict_sides(model_denoiser, sides: list[list[Cond] | None], x: torch.Tensor, sigma: torch.Tensor) -> list[torch.Tensor]:
    """The area-weighted average denoised prediction of each side (None: skipped, gives 0); with
    context windows (graphflow.sampling.context_windows) fused from the windows' predictions."""
    windows = getattr(model_denoiser, "context_windows", None)
    if windows is not None and windows.applies(x):
        return windows.predict(_predict_sides, model_denoiser, sides, x, sigma)
    return _predict_sides(model_denoiser, sides, x, sigma)


def _predict_sides(model_denoiser, sides: list[list[Cond] | None], x: torch.Tensor, sigma: torch.Tensor) -> list[torch.Tensor]:
    out = [torch.zeros_like(x) for _ in sides]
    counts = [torch.full_like(x, 1e-37) for _ in sides]
    to_run, defaults = [], []
    for index, side in enumerate(sides):
        for cond in side or []:
            if not cond.active(sigma):
                continue
            if cond.default:
                defaults.append((cond, index))
                continue
            input_x, weight, area = _crop_and_weight(cond, x)
            to_run.append((input_x, weight, area, cond, index))
    if defaults:
        to_run += _default_entries(defaults, to_run, x)
    switch = hook_switch.get()

    while to_run:
        first = to_run[0]
        batch_ids = [k for k in range(len(to_run)) if _can_batch(to_run[k][:4], first[:4])]
        batch = [to_run.pop(k) for k in reversed(batch_ids)]
        chunks = len(batch)
        input_x = torch.cat([b[0] for b in batch])
        context = _cat_contexts([b[3].context for b in batch])
        y = None if batch[0][3].y is None else torch.cat([b[3].y for b in batch])
        concat = None if batch[0][3].concat is None else torch.cat([_crop_concat(b[3].concat, b[2]) for b in batch])
        sigma_in = torch.cat([sigma] * chunks)
        extra = {name: torch.cat([getattr(b[3], name) for b in batch]) if chunks > 1 else getattr(batch[0][3], name)
                 for name in (*STACKED, "attention_mask") if getattr(batch[0][3], name) is not None}
        if batch[0][3].control is not None:
            extra["control"] = batch[0][3].control
        if batch[0][3].gligen is not None:
            extra["gligen"] = batch[0][3].gligen
        if "vace_context" in extra:
            extra["vace_strength"] = batch[0][3].vace_strength
        if batch[0][3].video_frames is not None:
            extra["num_frames"] = batch[0][3].video_frames
        if batch[0][3].frame_rate is not None:
            extra["frame_rate"] = batch[0][3].frame_rate
        if batch[0][3].keyframe_positions is not None:
            extra["keyframe_positions"] = batch[0][3].keyframe_positions
        if batch[0][3].references:
            extra["reference_latents"] = [torch.cat(refs) for refs in zip(*(b[3].references for b in batch))]
            extra["reference_method"] = batch[0][3].reference_method
        rows = tuple(b[3].negative for b in batch for _ in range(b[0].shape[0]))
        if switch is not None:
            switch.activate(batch[0][3].hooks, sigma)
        token = unet_rows.set(UNetRows(sigma, rows, tuple(b[3] for b in batch)))
        try:
            predictions = model_denoiser(input_x, sigma_in, context=context, y=y, concat=concat, **extra).chunk(chunks)
        finally:
            unet_rows.reset(token)
        for (_, weight, area, _, index), prediction in zip(batch, predictions):
            if area is None:
                out[index] += prediction * weight
                counts[index] += weight
            else:
                out[index][_region(area)] += prediction * weight
                counts[index][_region(area)] += weight
    return [o / c for o, c in zip(out, counts)]


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, cfg: float) -> torch.Tensor:
    return uncond + (cond - uncond) * cfg


def perp_neg_combine(cond: torch.Tensor, uncond: torch.Tensor, nocond: torch.Tensor, neg_scale: float,
                     cfg: float) -> torch.Tensor:
    """Perp-Neg (Armandpour et al. 2023, "Re-imagine the Negative Prompt Algorithm", arXiv:2304.04968),
    as ComfyUI's: with an empty prompt's prediction e, p = cond - e and n = uncond - e, only the part
    of n perpendicular to p is pushed away from, D = e + cfg (p - neg_scale (n - <n, p> / |p|^2 p)).
    The inner product and norm are over the whole batch, as ComfyUI's."""
    pos, neg = cond - nocond, uncond - nocond
    perpendicular = neg - (neg * pos).sum() / pos.norm() ** 2 * pos
    return nocond + cfg * (pos - perpendicular * neg_scale)


def rescaled_cfg(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, cfg: float,
                 multiplier: float) -> torch.Tensor:
    """CFG with the rescale of Lin et al. 2023 ("Common Diffusion Noise Schedules ...", sec. 3.4), as
    ComfyUI's RescaleCFG does it: in v-space, the guided v is scaled to the per-image standard
    deviation of the positive v, then mixed with the plain guided v by `multiplier`; cond and
    uncond are denoised predictions (x0), and so is the result. The standard deviations are taken
    over dims 1-3 as ComfyUI's are (a video latent [B, C, T, h, w]: per column of width)."""
    s = sigma.reshape(-1, *[1] * (x.ndim - 1))
    root = (s * s + 1).sqrt()
    x_vp = x / (s * s + 1)
    v_cond = (x_vp - cond) * root / s
    v_uncond = (x_vp - uncond) * root / s
    v_cfg = v_uncond + cfg * (v_cond - v_uncond)
    ratio = v_cond.std(dim=(1, 2, 3), keepdim=True) / v_cfg.std(dim=(1, 2, 3), keepdim=True)
    v_final = multiplier * v_cfg * ratio + (1.0 - multiplier) * v_cfg
    return x_vp - v_final * s / root


class CFGDenoiser:
    """D(x; sigma) with classifier-free guidance, for the samplers:
    denoiser(x, sigma) -> uncond + (cond - uncond) * cfg.

    A MODEL's `uncond_patch(model_denoiser, sigma)` (SkipLayerGuidanceDiTSimple; ComfyUI's
    calc_cond_batch_function) may return a context manager to predict the negative within: the two
    sides then run as separate calls (None: batched as usual).
    Before the combination, the model's pre-CFG functions (`pre_cfg_functions` on the MODEL: TCFG,
    FreSca) each get the hook arguments below and return new
    (cond_denoised, uncond_denoised); "uncond" is None for them when the negative was skipped (its
    prediction is then 0, as in ComfyUI). A MODEL's `cfg_function` (RenormCFG, PerpNeg; ComfyUI's
    sampler_cfg_function) replaces the combination: it gets the same arguments and returns the
    guided prediction (it takes precedence over RescaleCFG's option).
    After the combination come, in order, the model's own post-CFG functions (model patches such
    as PerturbedAttentionGuidance: `post_cfg_functions` on the MODEL) and the post_cfg hook a
    sampler passes (the CFG++ samplers record the unconditional prediction with it). Each gets
    {"denoised", "cond_denoised", "uncond_denoised", "x", "sigma", "cond", "cond_scale" (the cfg),
    "model", "model_sampling", "predict"} and returns the new denoised ("model_sampling": the run's
    schedule, ComfyUI's model.model_sampling, whose timestep(sigma) places the step in the run);
    predict(conds, x, sigma) runs the model on a list of Cond ("cond" / "uncond": the two sides'
    lists). With a sampler hook, or a model function marked `needs_uncond`, the negative side is
    evaluated even at cfg 1 (ComfyUI's disable_cfg1_optimization); otherwise at cfg 1 the negative
    is skipped and its prediction is 0, as in ComfyUI."""

    def __init__(self, model_denoiser, positive: list[Cond], negative: list[Cond], cfg: float,
                 post_cfg_functions=(), rescale: float = 0.0, pre_cfg_functions=(), cfg_function=None,
                 uncond_patch=None):
        self.model_denoiser = model_denoiser
        self.positive, self.negative = list(positive), list(negative)
        prepare_sides(self.positive, self.negative)
        self.cfg = float(cfg)
        self.rescale = float(rescale)  # RescaleCFG's multiplier; 0 = plain CFG
        self.post_cfg_functions = tuple(post_cfg_functions)
        self.pre_cfg_functions = tuple(pre_cfg_functions)
        self.cfg_function = cfg_function
        self.uncond_patch = uncond_patch
        hooks = (*self.post_cfg_functions, *self.pre_cfg_functions, cfg_function)
        needs_uncond = any(getattr(fn, "needs_uncond", False) for fn in hooks)
        self.skip_uncond = math.isclose(self.cfg, 1.0) and not needs_uncond

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, post_cfg=None) -> torch.Tensor:
        skip = self.skip_uncond and post_cfg is None
        patch = None if skip or self.uncond_patch is None else self.uncond_patch(self.model_denoiser, sigma)
        if patch is None:
            cond, uncond = predict_sides(self.model_denoiser, [self.positive, None if skip else self.negative], x, sigma)
        else:
            [cond] = predict_sides(self.model_denoiser, [self.positive], x, sigma)
            with patch:
                [uncond] = predict_sides(self.model_denoiser, [self.negative], x, sigma)
        if skip and not (self.post_cfg_functions or self.pre_cfg_functions or self.cfg_function):
            return cond
        cond, uncond = _pre_cfg(self, cond, uncond, self.positive, None if skip else self.negative, x, sigma, self.cfg)
        if self.cfg_function is not None:
            denoised = self.cfg_function(_hook_args(self, cond, uncond, self.positive, self.negative, x, sigma,
                                                    self.cfg))
        elif skip:
            denoised = cond
        elif self.rescale:
            denoised = rescaled_cfg(x, sigma, cond, uncond, self.cfg, self.rescale)
        else:
            denoised = cfg_combine(cond, uncond, self.cfg)
        return _post_cfg(self, post_cfg, denoised, cond, uncond, self.positive, self.negative, x, sigma, self.cfg)


def _hook_args(denoiser, cond, uncond, cond_list, uncond_list, x, sigma, cfg) -> dict:
    model_denoiser = denoiser.model_denoiser
    return {"cond_denoised": cond, "uncond_denoised": uncond, "x": x, "sigma": sigma, "cond": cond_list,
            "uncond": uncond_list, "cond_scale": cfg,
            "model": getattr(model_denoiser, "model", None),
            "model_sampling": getattr(model_denoiser, "schedule", None),
            "predict": lambda conds, x_, sigma_: predict_sides(model_denoiser, [conds], x_, sigma_)[0]}


def _pre_cfg(denoiser, cond, uncond, cond_list, uncond_list, x, sigma, cfg):
    if not denoiser.pre_cfg_functions:
        return cond, uncond
    args = _hook_args(denoiser, cond, uncond, cond_list, uncond_list, x, sigma, cfg)
    for fn in denoiser.pre_cfg_functions:
        cond, uncond = fn({**args, "cond_denoised": cond, "uncond_denoised": uncond})
    return cond, uncond


def _post_cfg(denoiser, post_cfg, denoised, cond, uncond, cond_list, uncond_list, x, sigma, cfg, **extra):
    functions = denoiser.post_cfg_functions + ((post_cfg,) if post_cfg is not None else ())
    if not functions:
        return denoised
    args = {**_hook_args(denoiser, cond, uncond, cond_list, uncond_list, x, sigma, cfg), **extra}
    for fn in functions:
        denoised = fn({**args, "denoised": denoised})
    return denoised


class DualCFGDenoiser:
    """Guidance by two prompts and a negative (ComfyUI's DualCFGGuider), with c1 = cond1,
    c2 = cond2 (treated as a negative prompt for SDXL's size conditioning, as ComfyUI does):
      regular: D = [neg + (c2 - neg) * cfg_cond2_negative] + (c1 - c2) * cfg_conds
      nested:  D = neg + cfg_cond2_negative * ([c2 + (c1 - c2) * cfg_conds] - neg)
    The bracketed CFG is the one post-CFG functions see, and the one a MODEL's cfg_function or
    RescaleCFG (`rescale`, its multiplier) replaces, as ComfyUI's sampler_cfg_function does there
    (pre-CFG functions do not act here, as in ComfyUI). In the regular style a scale of 1 skips
    the side it would cancel (negative; then also cond2 if cfg_conds is 1), unless a hook needs it."""

    def __init__(self, model_denoiser, cond1: list[Cond], cond2: list[Cond], negative: list[Cond],
                 cfg_conds: float, cfg_cond2_negative: float, nested: bool = False, post_cfg_functions=(),
                 cfg_function=None, rescale: float = 0.0):
        self.model_denoiser = model_denoiser
        self.rescale = float(rescale)  # RescaleCFG's multiplier; 0 = plain CFG
        self.cond1, self.cond2, self.negative = list(cond1), list(cond2), list(negative)
        prepare_sides(self.cond1, self.cond2, self.negative)
        self.cfg_conds, self.cfg_cond2_negative = float(cfg_conds), float(cfg_cond2_negative)
        self.nested = nested
        self.post_cfg_functions = tuple(post_cfg_functions)
        self.cfg_function = cfg_function

    def _combine(self, cond, uncond, cond_list, uncond_list, x, sigma, cfg):
        if self.cfg_function is not None:
            return self.cfg_function(_hook_args(self, cond, uncond, cond_list, uncond_list, x, sigma, cfg))
        if self.rescale:
            return rescaled_cfg(x, sigma, cond, uncond, cfg, self.rescale)
        return cfg_combine(cond, uncond, cfg)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, post_cfg=None) -> torch.Tensor:
        negative, cond2 = self.negative, self.cond2
        needs_uncond = post_cfg is not None or any(getattr(fn, "needs_uncond", False) for fn in self.post_cfg_functions)
        if not self.nested and not needs_uncond and math.isclose(self.cfg_cond2_negative, 1.0):
            negative = None
            if math.isclose(self.cfg_conds, 1.0):
                cond2 = None
        neg, c2, c1 = predict_sides(self.model_denoiser, [negative, cond2, self.cond1], x, sigma)
        if self.nested:
            text = self._combine(c1, c2, self.cond1, self.cond2, x, sigma, self.cfg_conds)
            text = _post_cfg(self, post_cfg, text, c1, c2, self.cond1, self.cond2, x, sigma, self.cfg_conds)
            return neg + self.cfg_cond2_negative * (text - neg)
        guided = self._combine(c2, neg, self.cond2, self.negative, x, sigma, self.cfg_cond2_negative)
        return _post_cfg(self, post_cfg, guided, c2, neg, self.cond2, self.negative, x, sigma, self.cfg_cond2_negative) \
            + (c1 - c2) * self.cfg_conds


@dataclass
class CFGGuider:
    """A GUIDER: a MODEL, its positive and negative CONDITIONING and the CFG scale (BasicGuider is
    this with no negative and cfg 1). denoiser() builds the samplers' D(x; sigma) from the model's
    denoiser and prepare(conditioning, negative=False) -> [Cond]."""

    model: object
    positive: list
    negative: list
    cfg: float = 1.0

    def denoiser(self, model_denoiser, prepare):
        return CFGDenoiser(model_denoiser, prepare(self.positive), prepare(self.negative, negative=True), self.cfg,
                           getattr(self.model, "post_cfg_functions", ()),
                           getattr(self.model, "options", {}).get("cfg_rescale", 0.0),
                           getattr(self.model, "pre_cfg_functions", ()), getattr(self.model, "cfg_function", None),
                           getattr(self.model, "uncond_patch", None))


@dataclass
class DualCFGGuider:
    """A GUIDER with two prompts and a negative (see DualCFGDenoiser)."""

    model: object
    cond1: list
    cond2: list
    negative: list
    cfg_conds: float
    cfg_cond2_negative: float
    nested: bool = False

    def denoiser(self, model_denoiser, prepare):
        return DualCFGDenoiser(model_denoiser, prepare(self.cond1), prepare(self.cond2, negative=True),
                               prepare(self.negative, negative=True), self.cfg_conds, self.cfg_cond2_negative,
                               self.nested, getattr(self.model, "post_cfg_functions", ()),
                               getattr(self.model, "cfg_function", None),
                               getattr(self.model, "options", {}).get("cfg_rescale", 0.0))


class PerpNegDenoiser:
    """Perp-Neg guidance (perp_neg_combine) of a positive, a negative and an empty prompt, the three
    batched into one model call, as ComfyUI's PerpNegGuider. The model's pre-CFG functions see the
    positive and negative predictions; post-CFG functions get cond = positive, uncond = negative plus
    "empty_cond" / "empty_cond_denoised". With neg_scale 0 the negative is not evaluated (its
    prediction is 0), and with cfg 1 as well neither is the empty prompt, unless a hook needs them."""

    def __init__(self, model_denoiser, positive: list[Cond], negative: list[Cond], empty: list[Cond], cfg: float,
                 neg_scale: float, post_cfg_functions=(), pre_cfg_functions=()):
        self.model_denoiser = model_denoiser
        self.positive, self.negative, self.empty = list(positive), list(negative), list(empty)
        prepare_sides(self.positive, self.negative, self.empty)
        self.cfg, self.neg_scale = float(cfg), float(neg_scale)
        self.post_cfg_functions = tuple(post_cfg_functions)
        self.pre_cfg_functions = tuple(pre_cfg_functions)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, post_cfg=None) -> torch.Tensor:
        negative, empty = self.negative, self.empty
        hooks = (*self.post_cfg_functions, *self.pre_cfg_functions)
        if post_cfg is None and not any(getattr(fn, "needs_uncond", False) for fn in hooks) \
                and math.isclose(self.neg_scale, 0.0):
            negative = None
            if math.isclose(self.cfg, 1.0):
                empty = None
        cond, uncond, nocond = predict_sides(self.model_denoiser, [self.positive, negative, empty], x, sigma)
        cond, uncond = _pre_cfg(self, cond, uncond, self.positive, negative, x, sigma, self.cfg)
        denoised = perp_neg_combine(cond, uncond, nocond, self.neg_scale, self.cfg)
        return _post_cfg(self, post_cfg, denoised, cond, uncond, self.positive, self.negative, x, sigma, self.cfg,
                         empty_cond=self.empty, empty_cond_denoised=nocond)


@dataclass
class PerpNegGuider:
    """A GUIDER with Perp-Neg guidance (see PerpNegDenoiser)."""

    model: object
    positive: list
    negative: list
    empty: list
    cfg: float
    neg_scale: float

    def denoiser(self, model_denoiser, prepare):
        return PerpNegDenoiser(model_denoiser, prepare(self.positive), prepare(self.negative, negative=True),
                               prepare(self.empty, negative=True), self.cfg, self.neg_scale,
                               getattr(self.model, "post_cfg_functions", ()),
                               getattr(self.model, "pre_cfg_functions", ()))
