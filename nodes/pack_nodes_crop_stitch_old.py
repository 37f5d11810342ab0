"""lquesada's ComfyUI-Inpaint-CropAndStitch: its older nodes, which saves from before April 2025
use, under the pack's class names, inputs and outputs, as read in inpaint_cropandstitch_old.py at
lquesada/ComfyUI-Inpaint-CropAndStitch commit 6f0f62915af4f9e54ad03b8c11640345ffb999b7 (the one
version of that file stored; the pack's current nodes are in nodes/pack_nodes_crop_stitch.py),
each in its own input order and defaults:

- (OLD 💀) Inpaint Crop (InpaintCrop) and Inpaint Stitch (InpaintStitch), with their STITCH value
  (OldStitch below): ranged / forced / free size, the mirrored canvas, the rescale of the whole
  canvas, padding, the grown and blurred blend mask, and the stitch's composite.
- (OLD 💀) Extend Image for Outpainting (InpaintExtendOutpaint): its last layout (pixels, factors,
  size_multiple, padding_mode, noise_blend); a save of its first layout (9 values: mode, then
  each side's pixels and factor, as lquesada's 2024 inpaint_cropandstitch.py had it, read from a
  stored copy whose commit the index does not name) is read into it.
- (OLD 💀) Resize Image Before Inpainting (InpaintResize).

Resizes are the pack's (PIL, in 1/255 steps; see pil_resize). Left out: earlier widget layouts of
the old crop and stitch (before their 2024-06 blend and ranged-size options).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from graphflow.api import IMAGE, MASK, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, \
    socket_type
from nodes.image import MAX_SIZE
from nodes.pack_nodes_crop_stitch import CATEGORY, _dilation_side, _number, mask_box, pil_resize
from nodes.pack_nodes_masquerade import _check_size

COMFY_PACK = "ComfyUI-Inpaint-CropAndStitch"  # the custom node pack this module's ComfyUI classes come from

OLD_ALGORITHMS = ("nearest", "bilinear", "bicubic", "bislerp", "lanczos", "box", "hamming")  # bislerp: bicubic
OLD_MODES = ("ranged size", "forced size", "free size")
OLD_PADDINGS = (8, 16, 32, 64, 128, 256, 512)
RESCALE_OFF = (0.999, 1.001)  # a rescale factor inside this is no rescale
BLUR_OFF_BELOW = 0.001  # blur / blend pixels under this are off


def _old_resize(pixels, width: int, height: int, algorithm: str):
    """The old nodes' rescale: PIL as pil_resize, 'bislerp' (from older saves) read as bicubic."""
    return pil_resize(pixels, width, height, "bicubic" if algorithm == "bislerp" else algorithm)


def grow_and_blur(mask, pixels: float):
    """The old nodes' grow and blur: a grey dilation (scipy) by a ceil(pixels / 4 · 1.5 + 1) square,
    times 255 and clamped to 0..1 (so any value from 1/255 up becomes 1), then scipy's
    gaussian_filter of sigma pixels / 4, clamped."""
    import numpy as np
    import torch
    from scipy.ndimage import gaussian_filter, grey_dilation

    if pixels <= BLUR_OFF_BELOW:
        return mask
    side = _dilation_side(pixels)
    dilated = grey_dilation(mask[0].cpu().numpy(), footprint=np.ones((side, side), dtype=np.uint8))
    grown = np.clip(dilated.astype(np.float32) * 255, 0.0, 1.0)
    return torch.from_numpy(np.clip(gaussian_filter(grown, sigma=pixels / 4), 0.0, 1.0)).unsqueeze(0)


def _old_fill_holes(mask):
    """The old nodes' hole filling: the mask above 0 closed by a 5×5 square (outside counted as set),
    its enclosed holes filled (scipy); gives 0 or 1."""
    import numpy as np
    import torch
    from scipy.ndimage import binary_closing, binary_fill_holes

    closed = binary_closing(mask[0].cpu().numpy() > 0, structure=np.ones((5, 5)), border_value=1)
    return torch.from_numpy(binary_fill_holes(closed).astype(np.float32)).unsqueeze(0)


def _old_mask(mask, image, name: str):
    """A mask as the old nodes take one: of another size than the picture only when empty (then
    no mask)."""
    import torch
    if mask.shape[1:] != image.shape[1:3]:
        if torch.count_nonzero(mask) != 0:
            raise NodeInputError(name, f"is {mask.shape[2]}×{mask.shape[1]}, but the image is "
                                       f"{image.shape[2]}×{image.shape[1]}: they must be the same size")
        return torch.zeros_like(image[..., 0])
    return mask.float()


def mirrored_canvas(image, mask, blend_mask, context):
    """The old crop's canvas: the picture in the middle of one grown by half its width above and
    below and half its height left and right (as the pack swaps them), the picture mirrored into
    the new area (edge pixels repeated, numpy's 'symmetric') as far as the picture reaches, black
    beyond; the mask 1 outside the picture, the blend mask mirrored likewise (0 beyond), the
    context mask 0. Gives (canvas, mask, blend mask, context, left, top)."""
    import numpy as np
    import torch
    _, height, width, channels = image.shape
    top, left = (width + 1) // 2, (height + 1) // 2
    new_h, new_w = height + 2 * top, width + 2 * left
    _check_size(new_w, new_h, "image")
    reach_y, reach_x = min(top, height), min(left, width)
    rows = slice(top - reach_y, top + height + reach_y)
    cols = slice(left - reach_x, left + width + reach_x)
    pad = ((reach_y, reach_y), (reach_x, reach_x))
    canvas = torch.zeros((1, new_h, new_w, channels))
    canvas[0, rows, cols] = torch.from_numpy(np.pad(image[0].cpu().numpy(), (*pad, (0, 0)), mode="symmetric"))
    canvas_blend = torch.zeros((1, new_h, new_w))
    canvas_blend[0, rows, cols] = torch.from_numpy(np.pad(blend_mask[0].cpu().numpy(), pad, mode="symmetric"))
    canvas_mask = torch.ones((1, new_h, new_w))
    canvas_mask[:, top:top + height, left:left + width] = mask
    canvas_context = torch.zeros((1, new_h, new_w))
    canvas_context[:, top:top + height, left:left + width] = context
    return canvas, canvas_mask, canvas_blend, canvas_context, left, top


def _to_aspect_ratio(x_min, x_max, y_min, y_max, width, height, target_w, target_h):
    """The old crop's adjust_to_aspect_ratio: one side grown (half each way, floor) to the target's
    ratio (int of the product), cut to the canvas."""
    aspect = target_w / target_h
    current_w, current_h = x_max - x_min + 1, y_max - y_min + 1
    if current_w / current_h < aspect:
        grow = int(current_h * aspect) - current_w
        return max(x_min - grow // 2, 0), min(x_max + grow // 2, width - 1), y_min, y_max
    grow = int(current_w / aspect) - current_h
    return x_min, x_max, max(y_min - grow // 2, 0), min(y_max + grow // 2, height - 1)


def _into_picture(low, high, start, end):
    """The old crop's adjust_to_preferred along one side: an area no longer than start..end
    (counted with both ends, as the pack counts them) moved to lie within it."""
    if high - low + 1 <= end - start + 1:
        if low < start:
            return low + (start - low), high + (start - low)
        if high > end:
            return low - (high - end), high - (high - end)
    return low, high


def old_padding(low: int, high: int, limit: int, padding: int):
    """The old crop's apply_padding: the span grown to a multiple of padding around its middle
    ((low + high) // 2), moved back inside 0..limit - 1, its start cut at 0."""
    size = high - low + 1
    new_size = size if size % padding == 0 else (size // padding + 1) * padding
    new_low = max((low + high) // 2 - new_size // 2, 0)
    new_high = new_low + new_size - 1
    if new_high >= limit:
        new_high = limit - 1
        new_low = max(new_high - new_size + 1, 0)
    if new_high - new_low + 1 != new_size:
        new_low = max(new_high - new_size + 1, 0)
    return new_low, new_high


def _check_batches(image, mask, context) -> None:
    """The old Inpaint Crop / Extend nodes' rule: one mask (and context mask) per picture."""
    if mask.shape[0] != image.shape[0]:
        raise NodeInputError("mask", f"a batch of {mask.shape[0]} doesn't match the image batch of {image.shape[0]}")
    if context is not None and context.shape[0] != image.shape[0]:
        raise NodeInputError("optional_context_mask", f"a batch of {context.shape[0]} doesn't match the image "
                                                      f"batch of {image.shape[0]}")


@dataclass
class OldCropPiece:
    """One picture's crop by the old Inpaint Crop: where it lies in the (not rescaled) canvas, the
    canvas, the blend mask, the rescale, and where the picture lies in the canvas."""

    x: int
    y: int
    canvas: object  # [1, H, W, C]
    blend_mask: object  # [1, h, w]
    rescale_x: float
    rescale_y: float
    picture: tuple[int, int, int, int]  # left, top, width, height in the canvas


@dataclass
class OldStitch:
    """What the old Inpaint Crop hands to the old Inpaint Stitch: one OldCropPiece per picture."""

    pieces: list[OldCropPiece]


STITCH = socket_type("STITCH", "#8d6e63", "The old Inpaint Crop's stitch: each crop's place, canvas and blend mask")


class InpaintCrop(Node):
    """The pack's old crop node, (OLD 💀, use the new ✂️ Inpaint Crop node), for saves that use it:
    crops around the mask for sampling, for the old Inpaint Stitch.

    For each picture: fill_mask_holes (the mask above 0 closed by a 5×5 square and its holes
    filled: 0 or 1); blur_mask_pixels (a dilation by a ceil(pixels/4 · 1.5 + 1) square that makes
    every value from 1/255 up 1, then a Gaussian blur of sigma pixels/4); invert_mask; the context
    is the mask plus optional_context_mask (the whole picture when empty). The picture is set in a
    canvas grown by half its width above and below and half its height left and right, mirrored
    there. The context's box grows by the most of its size · (context_expand_factor - 1),
    context_expand_pixels and blend_pixels^1.5 (half each way). Then by mode: forced size
    (force_width × force_height) and ranged size (min_* to max_*) widen the box to an aspect
    ratio in range, move it inside the picture where it fits, and rescale the whole canvas (PIL,
    rescale_algorithm; 'bislerp' is bicubic) so the box fits the maximum sizes (min_width may be
    0, as in the pack; the heights and max_width, which the pack divides by, may not); free size
    rescales by rescale_factor. Ranged and free sizes pad the box to a multiple of padding. The
    blend mask is the mirrored mask, grown and blurred by blend_pixels. Sizes past 16384 a side
    (the rescaled canvas too) are refused. A batch of pictures needs forced size and one mask per
    picture. Only the pack's last layout of this node's widgets is read."""
    category = CATEGORY
    display_name = "(OLD 💀, use the new ✂️ Inpaint Crop node)"
    image: IMAGE
    mask: MASK
    context_expand_pixels: int = Int(20, min=0, max=MAX_SIZE)
    context_expand_factor: float = Float(1.0, min=1.0, max=100.0, step=0.01)
    fill_mask_holes: bool = Bool(True)
    blur_mask_pixels: float = Float(16.0, min=0.0, max=256.0, step=0.1)
    invert_mask: bool = Bool(False)
    blend_pixels: float = Float(16.0, min=0.0, max=32.0, step=0.1)
    rescale_algorithm: str = Choice(OLD_ALGORITHMS, "bicubic")
    mode: str = Choice(OLD_MODES, "ranged size")
    force_width: int = Int(1024, min=0, max=MAX_SIZE)
    force_height: int = Int(1024, min=0, max=MAX_SIZE)
    rescale_factor: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    min_width: int = Int(512, min=0, max=MAX_SIZE)
    min_height: int = Int(512, min=0, max=MAX_SIZE)
    max_width: int = Int(768, min=0, max=MAX_SIZE)
    max_height: int = Int(768, min=0, max=MAX_SIZE)
    padding: int = Choice(OLD_PADDINGS, 32)
    optional_context_mask: MASK = None
    outputs = {"stitch": STITCH, "cropped_image": IMAGE, "cropped_mask": MASK}
    comfy = ComfyAlias(("InpaintCrop",), optional=("optional_context_mask",))

    @classmethod
    def estimate(cls, widgets, inputs):
        """The crop's size follows the mask: unknown. The canvas is known from the picture: as
        working memory, at least the canvas, times rescale_factor² in free size."""
        image = inputs.get("image")
        if image is None:
            return Estimate(None)
        pixels = (image.height + 2 * ((image.width + 1) // 2)) * (image.width + 2 * ((image.height + 1) // 2))
        factor = _number(widgets.get("rescale_factor"))
        if widgets.get("mode") == "free size" and factor is not None:
            pixels = max(pixels, int(pixels * factor * factor))
        return Estimate(None, pixels * (3 * 4 + 3 * 4))

    def run(self):
        import torch
        image, mask, context = self.image, self.mask, self.optional_context_mask
        if not torch.is_tensor(image) or image.ndim != 4:
            raise NodeInputError("image", "expected an image batch [B, H, W, C]")
        if image.shape[0] > 1 and self.mode != "forced size":
            raise NodeInputError("mode", "must be 'forced size' for a batch of images")
        _check_batches(image, mask, context)
        if self.mode != "free size":
            low_w, low_h = (self.force_width, self.force_height) if self.mode == "forced size" else \
                (self.min_width, self.min_height)
            high_w, high_h = (self.force_width, self.force_height) if self.mode == "forced size" else \
                (self.max_width, self.max_height)
            if high_w < low_w or high_h < low_h:
                raise NodeInputError("max_width" if high_w < low_w else "max_height",
                                     "the maximum sizes must be at least the minimum sizes")
            # the pack divides by both heights (the aspect ratio range) and, through the aspect
            # target, by the maximum width; a minimum width of 0 it takes
            forced = self.mode == "forced size"
            for name, value in (("min_height", low_h), ("max_height", high_h), ("max_width", high_w)):
                if value == 0:
                    raise NodeInputError(("force_" + name.split("_")[1]) if forced else name,
                                         "must be above 0 (the pack divides by it)")
        pieces, crops, crop_masks = [], [], []
        for b in range(image.shape[0]):
            one_context = None if context is None else context[b:b + 1]
            piece, cropped, cropped_mask = self.crop_one(image[b:b + 1].float(), mask[b:b + 1], one_context)
            pieces.append(piece)
            crops.append(cropped[0])
            crop_masks.append(cropped_mask[0])
        if len({tuple(c.shape) for c in crops}) > 1:
            raise NodeInputError("mask", "the masks give crops of different sizes, which can't make one batch")
        return OldStitch(pieces), torch.stack(crops), torch.stack(crop_masks)

    def crop_one(self, image, mask, context):
        import torch
        mask = _old_mask(mask, image, "mask")
        if self.fill_mask_holes:
            mask = _old_fill_holes(mask)
        mask = grow_and_blur(mask, self.blur_mask_pixels)
        if self.invert_mask:
            mask = 1.0 - mask
        if context is None or context.shape[1:] != image.shape[1:3] and torch.count_nonzero(context) == 0:
            context = mask
        else:
            context = (_old_mask(context, image, "optional_context_mask") + mask).clamp(0.0, 1.0)
        height, width = image.shape[1:3]
        canvas, canvas_mask, blend, canvas_context, left, top = mirrored_canvas(image, mask, mask, context)
        canvas_h, canvas_w = canvas.shape[1:3]
        box = mask_box(canvas_context) or (left, top, width, height)  # no context: the picture
        x_min, y_min, x_max, y_max = box[0], box[1], box[0] + box[2] - 1, box[1] + box[3] - 1
        x_grow = round(max(box[2] * (self.context_expand_factor - 1), self.context_expand_pixels,
                           self.blend_pixels ** 1.5))
        y_grow = round(max(box[3] * (self.context_expand_factor - 1), self.context_expand_pixels,
                           self.blend_pixels ** 1.5))
        x_min, x_max = max(x_min - x_grow // 2, 0), min(x_max + x_grow // 2, canvas_w - 1)
        y_min, y_max = max(y_min - y_grow // 2, 0), min(y_max + y_grow // 2, canvas_h - 1)
        rescale = self.rescale_factor
        if self.mode != "free size":
            low_w, low_h, high_w, high_h = (self.force_width, self.force_height, self.force_width,
                                            self.force_height) if self.mode == "forced size" else \
                (self.min_width, self.min_height, self.max_width, self.max_height)
            aspect = (x_max - x_min + 1) / (y_max - y_min + 1)
            least, most = low_w / high_h, high_w / low_h
            target, setting = None, None
            if aspect < least:
                target_w = min(x_max - x_min + 1, low_w)
                target, setting = (target_w, int(target_w / least)), "min_width"
            elif aspect > most:
                target_h = min(y_max - y_min + 1, high_h)
                target, setting = (int(target_h * most), target_h), "max_width"
            if target is not None:
                if 0 in target:
                    raise NodeInputError("force_width" if self.mode == "forced size" else setting,
                                         f"the sizes give a {target[0]}×{target[1]} aspect target (the pack "
                                         "divides by it)")
                x_min, x_max, y_min, y_max = _to_aspect_ratio(x_min, x_max, y_min, y_max, canvas_w, canvas_h, *target)
                x_min, x_max = _into_picture(x_min, x_max, left, left + width)
                y_min, y_max = _into_picture(y_min, y_max, top, top + height)
            x_size, y_size = x_max - x_min + 1, y_max - y_min + 1
            rescale = max(min(low_w / x_size, low_h / y_size), min(high_w / x_size, high_h / y_size))
        scale_x = scale_y = 1.0
        work, work_mask, work_blend = canvas, canvas_mask, blend
        if not RESCALE_OFF[0] <= rescale <= RESCALE_OFF[1]:
            new_w, new_h = round(canvas_w * rescale), round(canvas_h * rescale)
            _check_size(new_w, new_h, "rescale_factor" if self.mode == "free size" else "max_width")
            work = _old_resize(canvas, new_w, new_h, self.rescale_algorithm)
            work_mask = _old_resize(canvas_mask, new_w, new_h, "nearest")
            work_blend = _old_resize(blend, new_w, new_h, "nearest")
            scale_x, scale_y = new_w / canvas_w, new_h / canvas_h
            size_x, size_y = int((x_max - x_min + 1) * scale_x), int((y_max - y_min + 1) * scale_y)
            x_min, y_min = round(x_min * scale_x), round(y_min * scale_y)
            x_max, y_max = x_min + size_x, y_min + size_y  # the pack's: one more than the size
            canvas_w, canvas_h = new_w, new_h
        if self.mode != "free size":
            x_size, y_size = x_max - x_min + 1, y_max - y_min + 1
            if x_size < low_w:
                x_max = min(x_max + (low_w - x_size), canvas_w - 1)
            elif x_size > high_w:
                x_max = x_min + high_w - 1
            if y_size < low_h:
                y_max = min(y_max + (low_h - y_size), canvas_h - 1)
            elif y_size > high_h:
                y_max = y_min + high_h - 1
        if self.mode != "forced size" and self.padding > 1:
            x_min, x_max = old_padding(x_min, x_max, canvas_w, self.padding)
            y_min, y_max = old_padding(y_min, y_max, canvas_h, self.padding)
        x_min, x_max, y_min, y_max = max(x_min, 0), min(x_max, canvas_w - 1), max(y_min, 0), min(y_max, canvas_h - 1)
        rows, cols = slice(y_min, y_max + 1), slice(x_min, x_max + 1)
        blend_crop = grow_and_blur(work_blend[:, rows, cols].clone(), self.blend_pixels)
        piece = OldCropPiece(x_min, y_min, canvas, blend_crop, scale_x, scale_y, (left, top, width, height))
        return piece, work[:, rows, cols].clone(), work_mask[:, rows, cols].clone()


class InpaintStitch(Node):
    """The pack's old stitch node, (OLD 💀, use the new ✂️ Inpaint Stitch node), for saves that use
    it: pastes the sampled crops of the old Inpaint Crop back. Where the crop was rescaled, the
    sampled image is resized (PIL, rescale_algorithm; 'bislerp' is bicubic) to ceil(size /
    rescale) + 1 each way and placed at floor(x / rescale), floor(y / rescale); its blend mask is
    resized as the pack's stitch does it, read with its sides swapped (the pack moves the mask's
    width axis before resizing it), then fitted to the image bilinearly (torch). The area becomes
    mask · inpainted + (1 - mask) · picture, and the picture is cut out of the canvas. One
    sampled image per crop."""
    category = CATEGORY
    display_name = "(OLD 💀, use the new ✂️ Inpaint Stitch node)"
    stitch: STITCH
    inpainted_image: IMAGE
    rescale_algorithm: str = Choice(OLD_ALGORITHMS, "bislerp")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("InpaintStitch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return Estimate(None)  # the picture's size, which only the stitch knows

    def run(self):
        import torch
        if not isinstance(self.stitch, OldStitch):
            raise NodeInputError("stitch", "expected the stitch of an old Inpaint Crop")
        pieces, images = self.stitch.pieces, self.inpainted_image
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] != len(pieces):
            raise NodeInputError("inpainted_image", f"expected a batch of {len(pieces)} images, one per crop")
        results = [self.stitch_one(piece, images[b:b + 1].float()) for b, piece in enumerate(pieces)]
        if len({tuple(r.shape) for r in results}) > 1:
            raise NodeInputError("stitch", "its pictures differ in size and can't make one batch")
        return torch.cat(results)

    def stitch_one(self, piece: OldCropPiece, inpainted):
        import torch.nn.functional as F
        canvas = piece.canvas.clone().movedim(-1, 1)
        if inpainted.shape[3] != canvas.shape[1]:
            raise NodeInputError("inpainted_image", f"has {inpainted.shape[3]} channels, the picture "
                                                    f"{canvas.shape[1]}")
        x, y, blend = piece.x, piece.y, piece.blend_mask
        low, high = RESCALE_OFF
        if not (low <= piece.rescale_x <= high and low <= piece.rescale_y <= high):
            width = math.ceil(inpainted.shape[2] / piece.rescale_x) + 1
            height = math.ceil(inpainted.shape[1] / piece.rescale_y) + 1
            x, y = math.floor(x / piece.rescale_x), math.floor(y / piece.rescale_y)
            _check_size(width, height, "inpainted_image")
            inpainted = _old_resize(inpainted, width, height, self.rescale_algorithm)
            # the pack's movedim(-1, 1) on a [1, h, w] mask: PIL reads it w rows by h columns
            blend = _old_resize(blend.transpose(1, 2), width, height, self.rescale_algorithm)
            blend = blend.transpose(1, 2).clamp(0.0, 1.0)
        source = inpainted.movedim(-1, 1)
        canvas_h, canvas_w = canvas.shape[2:]
        x, y = max(-source.shape[3], min(x, canvas_w)), max(-source.shape[2], min(y, canvas_h))
        weight = F.interpolate(blend.reshape(1, 1, *blend.shape[-2:]), size=source.shape[2:], mode="bilinear")
        visible_h, visible_w = canvas_h - y + min(0, y), canvas_w - x + min(0, x)
        weight = weight[:, :, :visible_h, :visible_w]
        bottom, right = y + source.shape[2], x + source.shape[3]
        canvas[:, :, y:bottom, x:right] = weight * source[:, :, :visible_h, :visible_w] + \
            (1.0 - weight) * canvas[:, :, y:bottom, x:right]
        left, top, width, height = piece.picture
        return canvas.movedim(1, -1)[:, top:top + height, left:left + width]


def _extend_widgets(values):
    """A UI save of the pack's first Extend Image for Outpainting (mode, then pixels and factor for
    up, down, left, right in turn: 9 values) read into today's layout (the pixels, then the
    factors, size_multiple, padding_mode, noise_blend), with no rounding to a multiple (1), mirrored
    edges and no noise, as that version did. That version truncated the factors' products where
    today's rounds them (a pixel's difference where a factor's product is not whole), and
    mirrored only as far as the picture reaches, black beyond: today's mirror refuses a side
    grown past the picture, so such a save gives an error naming padding_mode (said in the help)."""
    if isinstance(values, list) and len(values) == 9:
        mode, up, up_f, down, down_f, left, left_f, right, right_f = values
        return [mode, up, down, left, right, up_f, down_f, left_f, right_f, 1, "mirror", 0.0]
    return values


class InpaintExtendOutpaint(Node):
    """The pack's old (OLD 💀 use Crop instead) Extend Image for Outpainting, for saves that use it:
    grows (or, with negative pixels or factors under 1, cuts) each side of the picture by pixels,
    or by round(side · (factor - 1)) in factors mode; the new area is filled by padding_mode
    (mirror: the picture reflected, edge pixel repeated, as far as it reaches; replicate: the edge
    pixels; black), then mixed with uniform noise by noise_blend ((1 - blend) · fill + blend ·
    noise, clamped; the noise is drawn from seed 0, the pictures of a batch in turn, so a run
    repeats: the pack's is unseeded, another each run); the mask is 1
    there, the context mask 0. Then the sides are cut down to a multiple of size_multiple, the
    cut split around the middle (the odd pixel at the end). A picture cut to nothing gives an
    error here (the pack gives an empty picture). Saves of the first layout (9 values: each
    side's pixels and factor in turn) are read too, into mirror; that layout mirrored as far as
    the picture reaches and left black beyond, which today's mirror can't: where a side of such a
    save grows by more than the picture's own height or width, it is refused (an error naming
    padding_mode: pick replicate or black)."""
    category = CATEGORY
    display_name = "(OLD 💀 use Crop instead) Extend Image for Outpainting"
    image: IMAGE
    mask: MASK
    mode: str = Choice(("factors", "pixels"), "factors")
    expand_up_pixels: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE, step=8)
    expand_down_pixels: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE, step=8)
    expand_left_pixels: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE, step=8)
    expand_right_pixels: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE, step=8)
    expand_up_factor: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    expand_down_factor: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    expand_left_factor: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    expand_right_factor: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    size_multiple: int = Int(8, min=1, max=64)
    padding_mode: str = Choice(("mirror", "replicate", "black"), "mirror")
    noise_blend: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    optional_context_mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK, "context_mask": MASK}
    comfy = ComfyAlias(("InpaintExtendOutpaint",), optional=("optional_context_mask",), widgets=_extend_widgets)

    @classmethod
    def estimate(cls, widgets, inputs):
        image = inputs.get("image")
        if image is None:
            return Estimate(None)
        deltas = cls.deltas(widgets, image.height, image.width)
        if deltas is None:
            return Estimate(None)
        up, down, left, right = deltas
        return Estimate(Size(image.batch, max(image.height + up + down, 1), max(image.width + left + right, 1)))

    @staticmethod
    def deltas(widgets, height: int, width: int):
        """Rows or columns added to each side (negative: cut), as the pack works them out."""
        sides = ("up", "down", "left", "right")
        if widgets.get("mode") == "pixels":
            values = [widgets.get(f"expand_{side}_pixels") for side in sides]
            return values if all(isinstance(v, int) and not isinstance(v, bool) for v in values) else None
        factors = [widgets.get(f"expand_{side}_factor") for side in sides]
        if not all(isinstance(f, (int, float)) and not math.isinf(f) for f in factors):
            return None
        factors = [1.0 if math.isnan(f) else max(0.0, f) for f in factors]
        return [int(round(length * (f - 1.0))) for length, f in zip((height, height, width, width), factors)]

    def run(self):
        import torch
        image, mask, context = self.image, self.mask, self.optional_context_mask
        if not torch.is_tensor(image) or image.ndim != 4:
            raise NodeInputError("image", "expected an image batch [B, H, W, C]")
        images, masks, contexts = [], [], []
        # seed 0 (the pack: unseeded), on the CPU where the grown picture is made, so the noise is
        # the same whatever device the picture comes on
        noise = torch.Generator().manual_seed(0)
        for b in range(image.shape[0]):
            one = image[b:b + 1].float()
            one_mask = mask[b:b + 1] if mask is not None and b < mask.shape[0] and mask.shape[1:] == one.shape[1:3] \
                else torch.zeros_like(one[..., 0])
            one_context = context[b:b + 1] if context is not None and b < context.shape[0] and \
                context.shape[1:] == one.shape[1:3] else None
            grown = self.extend_one(one, one_mask.float(), one_context, noise)
            for results, value in zip((images, masks, contexts), grown):
                results.append(value[0])
        if len({tuple(i.shape) for i in images}) > 1:
            raise NodeInputError("image", "the pictures come out in different sizes and can't make one batch")
        return torch.stack(images), torch.stack(masks), torch.stack(contexts)

    def extend_one(self, image, mask, context, generator):
        import torch
        height, width, channels = image.shape[1:]
        sides = [f"expand_{side}_{kind}" for kind in ("pixels", "factor") for side in ("up", "down", "left", "right")]
        up, down, left, right = self.deltas({"mode": self.mode, **{n: getattr(self, n) for n in sides}}, height, width)
        new_h, new_w = max(0, height + up + down), max(0, width + left + right)
        from_rows = slice(max(0, -up), height - max(0, -down))
        from_cols = slice(max(0, -left), width - max(0, -right))
        to_rows = slice(max(0, up), new_h - max(0, down))
        to_cols = slice(max(0, left), new_w - max(0, right))
        final_h, final_w = (new_h // self.size_multiple) * self.size_multiple, (new_w // self.size_multiple) * \
            self.size_multiple
        if min(final_h, final_w) <= 0 or to_rows.start >= to_rows.stop or to_cols.start >= to_cols.stop or \
                from_rows.start >= from_rows.stop or from_cols.start >= from_cols.stop:
            raise NodeInputError("expand_up_pixels" if self.mode == "pixels" else "expand_up_factor",
                                 f"the sides given leave nothing of the {width}×{height} picture")
        _check_size(new_w, new_h, "expand_left_pixels" if self.mode == "pixels" else "expand_left_factor")
        grown = torch.zeros((1, new_h, new_w, channels))
        grown[:, to_rows, to_cols] = image[:, from_rows, from_cols]
        if self.padding_mode != "black":
            grown = self.filled(grown, to_rows, to_cols)
        if self.noise_blend > 0.0:
            outside = torch.ones((1, new_h, new_w, 1), dtype=torch.bool)
            outside[:, to_rows, to_cols] = False
            noise = torch.rand(grown.shape, generator=generator, device=grown.device, dtype=grown.dtype)
            mixed = noise if self.noise_blend >= 1.0 else \
                torch.clamp(grown * (1.0 - self.noise_blend) + noise * self.noise_blend, 0.0, 1.0)
            grown = torch.where(outside, mixed, grown)
        grown_mask = torch.ones((1, new_h, new_w))
        grown_mask[:, to_rows, to_cols] = mask[:, from_rows, from_cols]
        grown_context = torch.zeros((1, new_h, new_w))
        if context is not None:
            grown_context[:, to_rows, to_cols] = context[:, from_rows, from_cols].float()
        cut_top, cut_left = (new_h - final_h) // 2, (new_w - final_w) // 2
        rows, cols = slice(cut_top, cut_top + final_h), slice(cut_left, cut_left + final_w)
        return grown[:, rows, cols], grown_mask[:, rows, cols], grown_context[:, rows, cols]

    def filled(self, grown, to_rows, to_cols):
        """The new rows above and below filled first (under the picture's columns), then whole new
        columns: mirrored (numpy's 'symmetric') or the edge pixels repeated (its 'edge')."""
        import numpy as np
        import torch
        new_h, new_w = grown.shape[1:3]
        top, bottom = to_rows.start, new_h - to_rows.stop
        lead, trail = to_cols.start, new_w - to_cols.stop
        mode = "symmetric" if self.padding_mode == "mirror" else "edge"
        content = grown[0, to_rows, to_cols].numpy()
        if mode == "symmetric" and (max(top, bottom) > content.shape[0] > 1 or max(lead, trail) > content.shape[1] > 1):
            # the pack's mirror copies at most the picture's own rows or columns and fails past them
            raise NodeInputError("padding_mode", "mirror can't fill more than the picture's own size on a side "
                                                 "(the pack fails there too): use replicate or black. A save of "
                                                 "this node's first layout (9 values), read into mirror, meets "
                                                 "this too: that layout left black beyond the mirrored part")
        grown[0, :, to_cols] = torch.from_numpy(np.pad(content, ((top, bottom), (0, 0), (0, 0)), mode=mode))
        band = grown[0, :, to_cols].numpy()
        grown[0] = torch.from_numpy(np.pad(band, ((0, 0), (lead, trail), (0, 0)), mode=mode))
        return grown


def minimum_size(width: int, height: int, least_w: int, least_h: int) -> tuple[int, int]:
    """The old Resize's "ensure minimum size": a picture short of either minimum scaled, keeping
    its aspect ratio, to the minimum width (if the height then reaches its minimum) or else the
    minimum height, the other side int of the product; then each side at least its minimum."""
    new_w, new_h = width, height
    if width < least_w or height < least_h:
        aspect = width / height
        if least_w / aspect >= least_h:
            new_w, new_h = least_w, int(least_w / aspect)
        else:
            new_w, new_h = int(least_h * aspect), least_h
    return max(new_w, least_w), max(new_h, least_h)


class InpaintResize(Node):
    """The pack's old (OLD 💀 use Crop instead) Resize Image Before Inpainting, for saves that use
    it: ensure minimum size scales each picture up, keeping its aspect ratio, until both sides
    reach min_width × min_height (the other side int of the product, then at least the minimum);
    factor scales by rescale_factor (sides rounded). The picture by PIL's rescale_algorithm
    ('bislerp' is bicubic), the masks by nearest, in 1/255 steps, as the pack. A mask of another
    size than the picture is an error unless it is empty. context_mask is given only when
    optional_context_mask is."""
    category = CATEGORY
    display_name = "(OLD 💀 use Crop instead) Resize Image Before Inpainting"
    image: IMAGE
    mask: MASK
    rescale_algorithm: str = Choice(OLD_ALGORITHMS, "bicubic")
    mode: str = Choice(("ensure minimum size", "factor"), "ensure minimum size")
    min_width: int = Int(1024, min=0, max=MAX_SIZE)
    min_height: int = Int(1024, min=0, max=MAX_SIZE)
    rescale_factor: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    optional_context_mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK, "context_mask": MASK}
    comfy = ComfyAlias(("InpaintResize",), optional=("optional_context_mask",))

    @classmethod
    def estimate(cls, widgets, inputs):
        image = inputs.get("image")
        if image is None:
            return Estimate(None)
        if widgets.get("mode") == "factor":
            factor = _number(widgets.get("rescale_factor"))
            if factor is None:
                return Estimate(None)
            return Estimate(Size(image.batch, max(round(image.height * factor), 1),
                                 max(round(image.width * factor), 1)))
        least_w, least_h = widgets.get("min_width"), widgets.get("min_height")
        if not isinstance(least_w, int) or not isinstance(least_h, int):
            return Estimate(None)
        new_w, new_h = minimum_size(image.width, image.height, least_w, least_h)
        return Estimate(Size(image.batch, new_h, new_w))

    def new_size(self, width: int, height: int) -> tuple[int, int]:
        if self.mode == "factor":
            return round(width * self.rescale_factor), round(height * self.rescale_factor)
        return minimum_size(width, height, self.min_width, self.min_height)

    def run(self):
        import torch
        image, mask, context = self.image, self.mask, self.optional_context_mask
        if not torch.is_tensor(image) or image.ndim != 4:
            raise NodeInputError("image", "expected an image batch [B, H, W, C]")
        _check_batches(image, mask, context)
        images, masks, contexts = [], [], []
        for b in range(image.shape[0]):
            one = image[b:b + 1].float()
            one_mask = _old_mask(mask[b:b + 1], one, "mask")
            one_context = None if context is None else _old_mask(context[b:b + 1], one, "optional_context_mask")
            height, width = one.shape[1:3]
            new_w, new_h = self.new_size(width, height)
            if (new_w, new_h) != (width, height):
                _check_size(new_w, new_h, "rescale_factor" if self.mode == "factor" else "min_width")
                one = _old_resize(one, new_w, new_h, self.rescale_algorithm)
                one_mask = _old_resize(one_mask, new_w, new_h, "nearest")
                one_context = None if one_context is None else _old_resize(one_context, new_w, new_h, "nearest")
            images.append(one[0])
            masks.append(one_mask[0])
            contexts.append(None if one_context is None else one_context[0])
        if len({tuple(i.shape) for i in images}) > 1:
            raise NodeInputError("image", "the pictures come out in different sizes and can't make one batch")
        return torch.stack(images), torch.stack(masks), None if context is None else torch.stack(contexts)
