"""Classifier-free guidance over CONDITIONING lists, with ComfyUI's area / strength / mask rules.

CFG (Ho & Salimans 2022): D = D_uncond + cfg * (D_cond - D_uncond), on denoised predictions,
computed as uncond + (cond - uncond) * cfg (the operand order fixes the float rounding). With
cfg == 1 the negative prompt is not evaluated at all.

A CONDITIONING is a list of (embedding [B, T, D], options) entries. Each side's prediction is the
weighted average of its entries' predictions, as ComfyUI's ConditioningCombine +
ConditioningSetArea / SetMask do:
  - an entry with "area" (h, w, y, x in latent units) runs the model on that crop only; its weight
    is "strength" (default 1), faded over 8 latent pixels at area edges that are inside the image;
  - an entry with "mask" ([H, W] or [B, H, W], resized bilinearly to the latent) weighs its
    prediction by mask * "mask_strength" * strength (no fading);
  - pixels no entry covers get 0.
  Before sampling, every area entry of one side gets a counterpart on the other side with the same
  area, strength and mask, built from the smallest other-side entry that contains the area (or one
  without area), so the negative is also evaluated on each crop.
Entries whose inputs agree in shape are batched into one UNet call: the positive and negative
prompt of a plain txt2img run make ONE forward of batch 2B. Prompts of different token lengths
(75 vs 150 tokens, say) are batched by repeating each embedding to the least common multiple of
the lengths (repeating keys and values leaves softmax attention's output unchanged) while that
multiple is at most 4x the shorter; otherwise they run separately.
"""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass
class Cond:
    """One conditioning entry, ready for the model (tensors on the sampling device)."""

    context: torch.Tensor  # [B, T, D] cross-attention embedding, batch already matched to x
    y: torch.Tensor | None = None  # [B, adm] SDXL vector conditioning
    concat: torch.Tensor | None = None  # [B, c, h, w] extra input channels (inpainting models)
    area: tuple[int, int, int, int] | None = None  # (h, w, y, x), latent units
    strength: float = 1.0
    mask: torch.Tensor | None = None  # [b, h, w] at latent resolution
    mask_strength: float = 1.0
    guidance: torch.Tensor | None = None  # [B] FLUX dev's distilled guidance scale
    control: object = None  # ControlNets / T2I-Adapters (graphflow.models.controlnet.ControlApplied)


def repeat_to_batch(t: torch.Tensor, batch: int) -> torch.Tensor:
    if t.shape[0] > batch:
        return t[:batch]
    if t.shape[0] < batch:
        return t.repeat([math.ceil(batch / t.shape[0])] + [1] * (t.ndim - 1))[:batch]
    return t


def _resolve_area(area, latent_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    if area[0] == "percentage":  # ConditioningSetAreaPercentage: fractions of the image
        h, w, y, x = area[1:]
        H, W = latent_hw
        return (max(1, round(h * H)), max(1, round(w * W)), round(y * H), round(x * W))
    return tuple(int(v) for v in area)


def _resize_mask(mask: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    mask = mask.float()
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim == 4:  # [B, 1, H, W]
        mask = mask[:, 0]
    if tuple(mask.shape[1:]) != tuple(latent_hw):
        mask = F.interpolate(mask[:, None], size=latent_hw, mode="bilinear", align_corners=False)[:, 0]
    return mask


def prepare_conds(conditioning, model, x_shape, device, *, negative: bool = False,
                  concat_fn=None) -> list[Cond]:
    """CONDITIONING list -> [Cond]. SDXL's y comes from model.encode_adm(options, width_px,
    height_px, negative=...) with the full image size (latent size * 8) as default sizes.
    concat_fn(options) -> [B, c, h, w] | None supplies inpainting models' extra channels."""
    if not isinstance(conditioning, (list, tuple)):
        raise TypeError(f"conditioning must be a list of (tensor, options) pairs, got {type(conditioning).__name__}")
    batch, latent_hw = x_shape[0], tuple(x_shape[2:])
    out = []
    for k, entry in enumerate(conditioning):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and torch.is_tensor(entry[0])
                and isinstance(entry[1], dict)):
            raise TypeError(f"conditioning entry {k} must be a (tensor [B, T, D], options dict) pair")
        embedding, options = entry
        if embedding.ndim != 3:
            raise ValueError(f"conditioning entry {k}: embedding must be [B, T, D], got shape {tuple(embedding.shape)}")
        y = guidance = None
        if getattr(model, "prediction", None) == "flow":  # SD3 / FLUX: pooled text vector (+ guidance)
            from .flow_sampling import flow_vectors
            y, guidance = flow_vectors(model, options, batch)
            y = y.to(device)
            guidance = None if guidance is None else guidance.to(device)
        elif getattr(model, "adm_channels", 0):
            y = model.encode_adm(options, latent_hw[1] * 8, latent_hw[0] * 8, negative=negative)
            if y is None:
                raise ValueError(f"the model needs SDXL vector conditioning ({model.adm_channels} channels) "
                                 f"but encode_adm gave none for conditioning entry {k}")
            y = repeat_to_batch(y, batch).to(device)
        mask = options.get("mask")
        out.append(Cond(
            context=repeat_to_batch(embedding, batch).to(device),
            y=y,
            concat=None if concat_fn is None else concat_fn(options),
            area=None if options.get("area") is None else _resolve_area(options["area"], latent_hw),
            strength=float(options.get("strength", 1.0)),
            mask=None if mask is None else _resize_mask(mask, latent_hw).to(device),
            mask_strength=float(options.get("mask_strength", 1.0)),
            guidance=guidance,
            control=options.get("control"),
        ))
    return out


def _area_inside(inner, outer) -> bool:
    h, w, y, x = inner
    oh, ow, oy, ox = outer
    return y >= oy and x >= ox and y + h <= oy + oh and x + w <= ox + ow


def _add_area_counterparts(targets: list[Cond], source: Cond) -> None:
    if source.area is None:
        return
    smallest = None
    for c in targets:
        if c.area is not None:
            if _area_inside(source.area, c.area):
                if smallest is None or smallest.area is None or \
                        math.prod(smallest.area[:2]) > math.prod(c.area[:2]):
                    smallest = c
        elif smallest is None:
            smallest = c
    if smallest is None or (smallest.area is not None and smallest.area == source.area):
        return
    targets.append(replace(source, context=smallest.context, y=smallest.y, concat=smallest.concat,
                           guidance=smallest.guidance))


def match_areas(positive: list[Cond], negative: list[Cond]) -> None:
    """Give every area entry a same-area counterpart on the other side (in place, ComfyUI's order:
    positive's areas first, then negative's, including counterparts just added)."""
    sides = [positive, negative]
    for k, side in enumerate(sides):
        for c in side:  # the list may grow while iterating; that is intended
            _add_area_counterparts(sides[1 - k], c)


def _crop_and_weight(cond: Cond, x: torch.Tensor):
    """(model input crop, weight [b, C, h, w], area) for one entry at the current x."""
    H, W = x.shape[2:]
    area = None
    input_x = x
    if cond.area is not None:
        h, w, y0, x0 = cond.area
        h, w = min(H - y0, h), min(W - x0, w)
        if h <= 0 or w <= 0:
            raise ValueError(f"conditioning area {cond.area} (h, w, y, x) lies outside the {H}x{W} latent")
        area = (h, w, y0, x0)
        input_x = x[:, :, y0:y0 + h, x0:x0 + w]
    if cond.mask is not None:
        mask = cond.mask[:input_x.shape[0]]
        if area is not None:
            mask = mask[:, y0:y0 + h, x0:x0 + w]
        mask = mask * cond.mask_strength
        mask = mask.unsqueeze(1).repeat(input_x.shape[0] // mask.shape[0], input_x.shape[1], 1, 1)
    else:
        mask = torch.ones_like(input_x)
    weight = mask * cond.strength
    if cond.mask is None and area is not None:
        # Fade the weight in over 8 latent pixels at edges that are inside the image (over fewer
        # where the image's border, at a size that is no multiple of 64 px, cut the area shorter).
        h, w, y0, x0 = area
        ramp = 8
        for dim, (size, offset, full) in ((2, (h, y0, H)), (3, (w, x0, W))):
            for t in range(min(ramp, size)):
                factor = (t + 1) / ramp
                if offset != 0:
                    weight.narrow(dim, t, 1).mul_(factor)
                if size + offset < full:
                    weight.narrow(dim, size - 1 - t, 1).mul_(factor)
    return input_x, weight, area


def _can_batch(a, b) -> bool:
    (xa, _, _, ca), (xb, _, _, cb) = a, b
    if xa.shape != xb.shape or ca.control is not cb.control:
        return False
    for ta, tb in ((ca.y, cb.y), (ca.concat, cb.concat), (ca.guidance, cb.guidance)):
        if (ta is None) != (tb is None) or (ta is not None and ta.shape != tb.shape):
            return False
    sa, sb = ca.context.shape, cb.context.shape
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
    h, w, y0, x0 = area
    return concat[:, :, y0:y0 + h, x0:x0 + w]


def predict_sides(model_denoiser, sides: list[list[Cond] | None], x: torch.Tensor, sigma: torch.Tensor) -> list[torch.Tensor]:
    """The area-weighted average denoised prediction of each side (None: skipped, gives 0)."""
    out = [torch.zeros_like(x) for _ in sides]
    counts = [torch.full_like(x, 1e-37) for _ in sides]
    to_run = []
    for index, side in enumerate(sides):
        for cond in side or []:
            input_x, weight, area = _crop_and_weight(cond, x)
            to_run.append((input_x, weight, area, cond, index))

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
        extra = {}
        if batch[0][3].guidance is not None:
            extra["guidance"] = torch.cat([b[3].guidance for b in batch])
        if batch[0][3].control is not None:
            extra["control"] = batch[0][3].control
        predictions = model_denoiser(input_x, sigma_in, context=context, y=y, concat=concat, **extra).chunk(chunks)
        for (_, weight, area, _, index), prediction in zip(batch, predictions):
            if area is None:
                out[index] += prediction * weight
                counts[index] += weight
            else:
                h, w, y0, x0 = area
                out[index][:, :, y0:y0 + h, x0:x0 + w] += prediction * weight
                counts[index][:, :, y0:y0 + h, x0:x0 + w] += weight
    return [o / c for o, c in zip(out, counts)]


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, cfg: float) -> torch.Tensor:
    return uncond + (cond - uncond) * cfg


class CFGDenoiser:
    """D(x; sigma) with classifier-free guidance, for the samplers:
    denoiser(x, sigma) -> uncond + (cond - uncond) * cfg."""

    def __init__(self, model_denoiser, positive: list[Cond], negative: list[Cond], cfg: float):
        self.model_denoiser = model_denoiser
        self.positive, self.negative = list(positive), list(negative)
        match_areas(self.positive, self.negative)
        self.cfg = float(cfg)
        self.skip_uncond = math.isclose(self.cfg, 1.0)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        cond, uncond = predict_sides(self.model_denoiser, [self.positive, None if self.skip_uncond else self.negative],
                                     x, sigma)
        if self.skip_uncond:
            return cond
        return cfg_combine(cond, uncond, self.cfg)
