"""filliptm's ComfyUI_Fill-Nodes, round 3 (rounds 1 and 2 are nodes/pack_nodes_fill.py and
nodes/pack_nodes_fill2.py): more of its model-free classes, under the pack's class names, display
names, inputs (order, defaults, ranges), outputs and categories. Read from the pack's nodes/*.py at
these commits:
  e781475a858d62b42312ed05bbbf82845b7bd564 FL_PasteByMask.py (the whole file: tensor2mask,
  tensor2rgba, its gaussian_blur and the nine blend modes).

Nodes here: FL_PasteByMask (Masquerade's Paste By Mask as the pack forked it, with blend modes and
feathering; built on nodes/pack_nodes_masquerade.py's conversions, boxes and sizes). The pack's other
classes are named in graphflow/comfy_format.py (FILL_LEFT_OUT with why, FILL_LATER not built yet).
"""

from __future__ import annotations

import math

from graphflow.api import IMAGE, Choice, ComfyAlias, Estimate, Int, Node, NodeInputError, Size, check_interrupted
from nodes.pack_nodes_fill2 import MASK_MAPPING, UTILITY_LOWER
from nodes.pack_nodes_masquerade import (
    PASTE_BEHAVIORS, _bicubic, _check_size, _fit_mask, _tensor, as_mask, as_rgba, mask_boxes, paste_size,
)

COMFY_PACK = "ComfyUI_Fill-Nodes"  # the custom node pack this module's ComfyUI classes come from

BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "hard_light", "darken", "lighten",
               "difference")


def blended(mode: str, top, base):
    """The pack's blend of the pasted picture `top` over `base`, channel by channel (alpha too)."""
    import torch
    if mode == "multiply":
        return top * base
    if mode == "screen":
        return 1.0 - (1.0 - top) * (1.0 - base)
    if mode == "overlay":
        doubled = 2.0 * base
        return torch.where(doubled <= 1.0, top * doubled, 1.0 - (1.0 - top) * (2.0 - doubled))
    if mode == "soft_light":
        return torch.where(top <= 0.5, base - (1.0 - 2.0 * top) * base * (1.0 - base),
                           base + (2.0 * top - 1.0) * (torch.sqrt(base) - base))
    if mode == "hard_light":
        return torch.where(top <= 0.5, 2.0 * top * base, 1.0 - 2.0 * (1.0 - top) * (1.0 - base))
    if mode == "darken":
        return torch.minimum(top, base)
    if mode == "lighten":
        return torch.maximum(top, base)
    if mode == "difference":
        return (top - base).abs()
    return top


def feathered(amount, feather: int):
    """The pack's feathering: a Gaussian of sigma feather / 10 over max(3, 2 (feather // 5) + 1) taps
    each way, zeros beyond the picture's edges."""
    import torch
    import torch.nn.functional as F
    taps = max(3, int(feather / 5) * 2 + 1)
    x = torch.arange(taps, dtype=torch.float64) - taps // 2
    weights = torch.exp(-x * x / (2 * (feather / 10.0) ** 2))
    kernel = torch.outer(weights, weights)
    kernel = (kernel / kernel.sum()).to(amount)
    return F.conv2d(amount[None, None], kernel[None, None], padding=taps // 2)[0, 0]


def _cycled(t, size: int):
    """A batch repeated one after another and cut to `size` (the pack's ceiling repeat)."""
    if t.shape[0] == size:
        return t
    return t.repeat(-(-size // t.shape[0]), *([1] * (t.ndim - 1)))[:size]


class FillPasteByMask(Node):
    """Paste image_to_paste onto image_base over each mask's bounding box (its pixels not 0), as the
    pack's fork of Masquerade's Paste By Mask does: resize fits the box exactly, keep_ratio_fill
    covers it keeping the paste's ratio, keep_ratio_fit fits inside it, source_size /
    source_size_unmasked keep the paste's size (bicubic resizing, centred on the box). The paste's
    alpha, limited by the mask (not for keep_ratio_fill and source_size_unmasked, which may spill
    outside it), mixes blend_mode's result in: normal (the paste), multiply, screen, overlay,
    soft_light, hard_light, darken, lighten, difference, each the usual formula on every channel,
    alpha too. feather_amount above 0 blurs that mixing amount (a Gaussian of sigma feather / 10,
    the picture's outside counting as 0), so the paste's white surroundings fade in at its edges,
    as in the pack. mask is an IMAGE: its alpha where not all 1, else its luma (a MASK link is taken
    too). Gives RGBA. Without mask_mapping_optional the three batches are repeated in turn to the
    largest; with it, mask i and paste i modulo their count go onto base image mapping[i] modulo
    the base's count. A resized paste of no pixel, beyond 16384 a side or the server's max_pixels
    is refused (the pack fails on the first and tries the others)."""
    category = UTILITY_LOWER  # the pack's, lower case
    display_name = "FL Paste By Mask"
    image_base: IMAGE
    image_to_paste: IMAGE
    mask: IMAGE
    resize_behavior: str = Choice(PASTE_BEHAVIORS, "resize")
    blend_mode: str = Choice(BLEND_MODES, "normal")
    feather_amount: int = Int(0, min=0, max=100, step=1)
    mask_mapping_optional: MASK_MAPPING = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_PasteByMask",))

    @classmethod
    def estimate(cls, widgets, inputs):
        base = inputs.get("image_base")
        if base is None:
            return Estimate(None)
        if "mask_mapping_optional" in inputs:
            return Estimate(Size(base.batch, base.height, base.width))
        batches = [size.batch for size in (inputs.get("image_to_paste"), inputs.get("mask")) if size is not None]
        return Estimate(Size(max([base.batch, *batches]), base.height, base.width))

    def run(self):
        import torch
        base = as_rgba(_tensor(self.image_base, "image_base"))
        paste = as_rgba(_tensor(self.image_to_paste, "image_to_paste")).to(base)
        mask = as_mask(_tensor(self.mask, "mask")).to(base)
        mapping = self.mask_mapping_optional
        if mapping is not None:
            if not torch.is_tensor(mapping) or mapping.ndim != 1 or mapping.is_floating_point():
                raise NodeInputError("mask_mapping_optional", "expected a MASK_MAPPING (from FL Separate Mask "
                                                              "Components)")
            if mapping.numel() < mask.shape[0]:
                raise NodeInputError("mask_mapping_optional", f"{mapping.numel()} entries for {mask.shape[0]} "
                                                              "masks: expected one a mask")
        else:
            size = max(base.shape[0], paste.shape[0], mask.shape[0])
            base, paste, mask = _cycled(base, size), _cycled(paste, size), _cycled(mask, size)
        height, width = base.shape[1:3]
        mask = _fit_mask(mask, height, width)
        empty, boxes = mask_boxes(mask)
        mid_x, mid_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        box_w, box_h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        paste_h, paste_w = paste.shape[1:3]
        result = base.clone()
        for i in range(mask.shape[0]):
            check_interrupted()
            if empty[i]:
                continue
            target = i % base.shape[0] if mapping is None else int(mapping[i]) % base.shape[0]
            w, h = paste_size(self.resize_behavior, int(box_w[i].item()), int(box_h[i].item()), paste_w, paste_h)
            piece = paste[i % paste.shape[0]][None]
            if (h, w) != (paste_h, paste_w):
                _check_size(w, h, "image_to_paste")
                piece = _bicubic(piece, h, w)
            piece = piece[0]
            # the piece's place, centred on the box as the pack rounds it, cut to the picture
            top, left = math.floor(mid_y[i].item() - h / 2) + 1, math.floor(mid_x[i].item() - w / 2) + 1
            bottom, right = top + h, left + w
            src_top, src_left = max(0, -top), max(0, -left)
            src_bottom, src_right = h - max(0, bottom - height), w - max(0, right - width)
            top, left, bottom, right = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
            if top >= bottom or left >= right:
                continue
            pasting = torch.ones_like(result[target])
            pasting[top:bottom, left:right] = piece[src_top:src_bottom, src_left:src_right]
            pasting[..., 3] = 1.0
            amount = torch.zeros((height, width), dtype=base.dtype, device=base.device)
            amount[top:bottom, left:right] = piece[src_top:src_bottom, src_left:src_right, 3]
            if self.resize_behavior not in ("keep_ratio_fill", "source_size_unmasked"):
                amount = torch.minimum(amount, mask[i])
            if self.feather_amount > 0:
                amount = feathered(amount, self.feather_amount)
            amount = amount[..., None]
            under = result[target]
            result[target] = blended(self.blend_mode, pasting, under) * amount + under * (1.0 - amount)
        return result
