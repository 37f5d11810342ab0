"""lquesada's ComfyUI-Inpaint-CropAndStitch, under the pack's class names, inputs and outputs, as
read at lquesada/ComfyUI-Inpaint-CropAndStitch commit 3253768f7933ad65fe41cb68b5450dce72fcaa40
(version 3.0.7: inpaint_cropandstitch.py; __init__.py at cd639976226aaac5a86db1970dd8fc62a6af015e):

- ✂️ Inpaint Crop (Improved) (InpaintCropImproved): crops each picture around its mask (grown by a
  context factor, joined with an optional context mask), at the target size's aspect ratio, the
  picture grown by its edge pixels where the area leaves it; the crop resized to the target size
  (or kept at its own, grown to a multiple of the padding). The mask can have its holes filled, be
  expanded, inverted, blended (expanded and blurred) and high-pass filtered; the picture can be
  pre-resized and extended for outpainting first.
- ✂️ Inpaint Stitch (Improved) (InpaintStitchImproved): resizes the sampled crop back and pastes it
  into the picture blended by the crop's blurred mask: mask · inpainted + (1 - mask) · picture.

The STITCHER between them is a plain Python value (Stitcher below), as the pack's dict is.

The pack's device_mode picks between two sets of mask operations, and so does ours: "cpu
(compatible)" runs scipy's (grey_dilation, gaussian_filter with reflected edges, a level-by-level
hole filling with binary_closing and binary_fill_holes), "gpu (much faster)" (the default) the
pack's torch ones (a max-pool dilation with an odd square, a Gaussian convolution with zero
padding, a flood fill of the mask's outside at 0.5). Here both run on the device the tensors are
on; the results are the same formulas, within float rounding between devices. The GPU mode's
square max-pool and square convolution are worked as two 1-D passes (the max-pool bit for bit,
the blur summed in float64 and rounded once: within float32 rounding of the exact blur, and a
few millionths from the pack's float32 sum, whose own rounding differs by device; after the
8-bit resize that can be one level, as inside a fully masked area: 1.0 here, 254/255 from the
pack's float32 convolution on a CPU), and its flood a layer at a time, each step checking for a
stop: a large expand or blur costs seconds here where the pack's single call takes minutes on a
CPU.

Resizing is the pack's in both modes: each picture (or mask) made 8-bit as torchvision's
to_pil_image does (x · 255 truncated), resized by PIL with the named filter (nearest, bilinear,
bicubic, lanczos, box, hamming), read back as value / 255; so a resized crop and a stitched area
come back in 1/255 steps, as the pack's do. One difference: values outside 0..1 are clamped before
the 8-bit step (the pack's torch byte conversion wraps them around).

The pack's older nodes, which saves from before April 2025 use, are in
nodes/pack_nodes_crop_stitch_old.py.

Left out: the pack's DEBUG outputs (off in the pack too). A save from before device_mode (23
widget values) reads with device_mode at its default, as ComfyUI's editor loads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from graphflow.api import IMAGE, MASK, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, \
    check_interrupted, socket_type
from nodes.image import MAX_SIZE
from nodes.mask import window_max
from nodes.pack_nodes_masquerade import _check_size

COMFY_PACK = "ComfyUI-Inpaint-CropAndStitch"  # the custom node pack this module's ComfyUI classes come from

CATEGORY = "inpaint"
ALGORITHMS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")  # PIL's filters, by the pack's names
PRERESIZE_MODES = ("ensure minimum resolution", "ensure maximum resolution", "ensure minimum and maximum resolution")
PADDINGS = ("0", "8", "16", "32", "64", "128", "256", "512")
# the pack's iterative hole filling: each level's enclosed holes are raised to that level
FILL_HOLES_THRESHOLDS = (1, 0.99, 0.97, 0.95, 0.93, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
HIPASS_OFF_BELOW = 0.01  # a hipass filter under this is off
CONTEXT_GROWTH_FROM = 1.01  # a context factor under this grows nothing
RGB_BYTES = 3 * 4  # a canvas pixel the stitcher keeps: RGB, float32
MASKS_BYTES = 2 * 4  # a pixel of one crop's mask and context mask, float32
BLUR_BAND_PIXELS = 2 ** 22  # the GPU mode's blur works a band of rows of about this many pixels at a time


@dataclass
class CropPiece:
    """One picture's crop, to stitch back: the canvas (the picture, grown where the crop left it),
    where the picture lies in it and where the crop lies in it (x, y, w, h), and the crop's
    blurred mask at the crop's output size."""

    canvas: object  # [1, H, W, C]
    canvas_to_original: tuple[int, int, int, int]
    crop_in_canvas: tuple[int, int, int, int]
    blend_mask: object  # [1, h, w]


@dataclass
class Stitcher:
    """What Inpaint Crop (Improved) hands to Inpaint Stitch (Improved): the resize filters and one
    CropPiece per picture of the batch."""

    downscale_algorithm: str
    upscale_algorithm: str
    blend_pixels: int
    pieces: list[CropPiece] = field(default_factory=list)


STITCHER = socket_type("STITCHER", "#8d6e63", "Inpaint Crop and Stitch's stitcher: where each crop came from, "
                                              "the picture it came from and its blend mask")

# -- the pack's resize, mask operations and crop geometry ----------------------------------------


def pil_resize(pixels, width: int, height: int, algorithm: str):
    """An image [1, H, W, C] or mask [1, H, W] resized as the pack's rescale_i / rescale_m: made
    8-bit as torchvision's to_pil_image makes a float tensor (x · 255 truncated; here clamped to
    0..1 first), resized by PIL's filter of that name, read back / 255 as to_tensor does. PIL
    gives back a copy at the same size, so the 8-bit step happens then too."""
    import numpy as np
    import torch
    from PIL import Image

    eight_bit = (pixels[0].detach().cpu().float().clamp(0.0, 1.0) * 255).to(torch.uint8).numpy()
    if eight_bit.ndim == 3 and eight_bit.shape[2] == 1:
        eight_bit = eight_bit[..., 0]
    if eight_bit.ndim == 3 and eight_bit.shape[2] not in (3, 4):
        raise NodeInputError("image", f"has {eight_bit.shape[2]} channels; expected 1, 3 or 4 (PIL resizes these)")
    resized = Image.fromarray(eight_bit).resize((width, height), getattr(Image, algorithm.upper()))
    values = torch.from_numpy(np.array(resized)).float().div(255)
    if pixels.ndim == 4 and values.ndim == 2:
        values = values.unsqueeze(-1)
    return values.unsqueeze(0).to(pixels.device)


def fill_holes_cpu(mask):
    """The pack's CPU hole filling, level by level from 1 down to 0.1: the mask at or above the
    level, closed by a 3×3 square (outside counted as set) and its enclosed holes filled (scipy),
    raises every pixel it covers to at least that level."""
    import numpy as np
    import torch
    from scipy.ndimage import binary_closing, binary_fill_holes

    values = mask[0].cpu().numpy()
    for level in FILL_HOLES_THRESHOLDS:
        closed = binary_closing(values >= level, structure=np.ones((3, 3)), border_value=1)
        values = np.maximum(values, np.where(binary_fill_holes(closed), level, 0))
    return torch.from_numpy(values.astype(np.float32)).unsqueeze(0).to(mask.device)


def fill_holes_gpu(mask):
    """The pack's GPU hole filling: the outside is flooded from a one-pixel frame around the
    picture through the pixels not above 0.5, to the 8 neighbours a step (its 3×3 max-pool),
    until nothing changes or after as many steps as the longer side; every pixel the flood did
    not reach becomes 1. Worked out here as a breadth-first search, layer by layer, which reaches
    the same pixels in the same number of steps without a max-pool over the whole picture each;
    each step's work is its new layer's (no sort), and a stop asked for ends it between steps."""
    import numpy as np
    import torch

    height, width = mask.shape[1:]
    # two rings around the picture: the frame the flood starts from, and a wall outside it
    passable = np.zeros((height + 4, width + 4), dtype=bool)
    passable[2:-2, 2:-2] = ~(mask[0] > 0.5).cpu().numpy()
    reached = np.zeros_like(passable)
    reached[1:-1, 1:-1] = True
    reached[2:-2, 2:-2] = False
    stride = width + 4
    neighbours = np.array([-stride - 1, -stride, -stride + 1, -1, 1, stride - 1, stride, stride + 1])
    flat_passable, flat_reached = passable.ravel(), reached.ravel()
    # a pixel found by several of the layer's pixels is kept once: each candidate writes its own
    # index here, and whichever write stands marks the one copy kept
    claimed = np.zeros(flat_passable.size, dtype=np.int32 if flat_passable.size < 2 ** 31 else np.int64)
    frontier = np.flatnonzero(flat_reached)
    for _ in range(max(height, width)):
        check_interrupted()
        found = (frontier[:, None] + neighbours).ravel()
        found = found[flat_passable[found] & ~flat_reached[found]]
        if not len(found):
            break
        order = np.arange(len(found), dtype=claimed.dtype)
        claimed[found] = order
        found = found[claimed[found] == order]
        flat_reached[found] = True
        frontier = found
    enclosed = torch.from_numpy(~reached[2:-2, 2:-2]).float().to(mask.device)
    return torch.maximum(mask, enclosed.unsqueeze(0))


def _dilation_side(pixels: float) -> int:
    return math.ceil(pixels / 4 * 1.5 + 1)


def expand_mask_cpu(mask, pixels: float):
    """The pack's CPU expand: a grey dilation (scipy) by a ceil(pixels / 4 · 1.5 + 1) square, clamped to 0..1."""
    import numpy as np
    import torch
    from scipy.ndimage import grey_dilation

    side = _dilation_side(pixels)
    dilated = grey_dilation(mask[0].cpu().numpy(), footprint=np.ones((side, side), dtype=np.uint8))
    return torch.from_numpy(dilated.astype(np.float32)).clamp(0.0, 1.0).unsqueeze(0).to(mask.device)


def expand_mask_gpu(mask, pixels: float):
    """The pack's GPU expand: a max-pool over the same square made odd (one more where even),
    centred. Run as the maximum down the columns, then along the rows (the square's maximum,
    bit for bit), each by nodes.mask's window_max: a mask expanded by thousands of pixels costs a few dozen
    passes over the picture, not side² comparisons a pixel."""
    side = _dilation_side(pixels)
    side += 1 - side % 2
    return window_max(window_max(mask, side, mask.ndim - 2), side, mask.ndim - 1)


def blur_mask_cpu(mask, pixels: float):
    """The pack's CPU blur: scipy's gaussian_filter of sigma pixels / 4 (edges reflected), clamped to 0..1."""
    import torch
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(mask[0].cpu().numpy(), sigma=pixels / 4)
    return torch.from_numpy(blurred).float().clamp(0.0, 1.0).unsqueeze(0).to(mask.device)


def blur_mask_gpu(mask, pixels: float):
    """The pack's GPU blur: a convolution with a normalised Gaussian of sigma pixels / 4, 2 ·
    int(4 · sigma + 0.5) + 1 wide, zero outside the picture, clamped to 0..1. The pack's square
    kernel is the outer product of the 1-D one, so it is run here as two 1-D passes (down the
    columns, then along the rows), each a weighted sum of the shifted rows or columns: 2 · side
    products a pixel instead of side², a band of rows at a time (a stop asked for ends it between
    bands). They run in float64 (float32 on a device without it) and give the blur
    rounded once to float32: within float32 rounding of the exact blur and a few millionths of
    the pack's single float32 convolution, whose own rounding differs by device; an area of 1s
    stays exactly 1 (a float32 pass can leave it a hair under, which the pack's 8-bit resize then
    makes 254/255)."""
    import torch
    import torch.nn.functional as F
    sigma = pixels / 4
    side = 2 * int(4.0 * sigma + 0.5) + 1
    half, (height, width) = side // 2, mask.shape[-2:]
    wide = torch.float32 if mask.device.type == "mps" else torch.float64
    x = torch.arange(side, device=mask.device, dtype=wide) - (side - 1) / 2
    kernel = torch.exp(-0.5 * (x / sigma).pow(2))
    kernel = kernel / kernel.sum()
    weights = kernel.tolist()
    padded = F.pad(mask, (half, half, half, half))  # zero all round
    blurred = torch.empty_like(mask)
    band = max(1, BLUR_BAND_PIXELS // max(width, 1))
    for top in range(0, height, band):
        check_interrupted()
        bottom = min(top + band, height)
        rows = padded[:, top:bottom + 2 * half].to(wide)
        # each pass a weighted sum of shifted slices (conv2d would unfold its input: side copies of it)
        down_columns = torch.zeros((rows.shape[0], bottom - top, width + 2 * half), dtype=wide, device=mask.device)
        for i, weight in enumerate(weights):
            down_columns.add_(rows[:, i:i + bottom - top], alpha=weight)
        along_rows = torch.zeros((rows.shape[0], bottom - top, width), dtype=wide, device=mask.device)
        for i, weight in enumerate(weights):
            along_rows.add_(down_columns[:, :, i:i + width], alpha=weight)
        blurred[:, top:bottom] = along_rows.to(mask.dtype)
    return blurred.clamp(0.0, 1.0)


@dataclass(frozen=True)
class MaskOperations:
    """One of the pack's two sets of mask operations (its device_mode)."""

    fill_holes: object
    expand: object
    blur: object
    nonzero: object  # which mask values count toward the mask's box


DEVICE_MODES = {
    "cpu (compatible)": MaskOperations(fill_holes_cpu, expand_mask_cpu, blur_mask_cpu, lambda m: m != 0),
    "gpu (much faster)": MaskOperations(fill_holes_gpu, expand_mask_gpu, blur_mask_gpu, lambda m: m > 0),
}


def mask_box(mask, nonzero=lambda m: m != 0) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) around the mask's set pixels, None for an empty mask."""
    import torch
    ys, xs = torch.nonzero(nonzero(mask[0]), as_tuple=True)
    if not len(ys):
        return None
    x, y = int(xs.min()), int(ys.min())
    return x, y, int(xs.max()) - x + 1, int(ys.max()) - y + 1


def grow_box(box, factor: float, width: int, height: int):
    """The pack's context growth: each side by size · (factor - 1) / 2 in float32, rounded half to
    even (torch's round), cut to the picture."""
    import torch
    x, y, w, h = box
    grow_x, grow_y = (int((torch.tensor(size).float() * (factor - 1.0) / 2.0).round()) for size in (w, h))
    left, top = max(x - grow_x, 0), max(y - grow_y, 0)
    right, bottom = min(x + w + grow_x, width), min(y + h + grow_y, height)
    return left, top, right - left, bottom - top


def join_boxes(box, other):
    """The smallest box holding both (either may be None)."""
    if box is None or other is None:
        return box or other
    left, top = min(box[0], other[0]), min(box[1], other[1])
    right, bottom = max(box[0] + box[2], other[0] + other[2]), max(box[1] + box[3], other[1] + other[3])
    return left, top, right - left, bottom - top


def _number(value):
    """A widget value an estimate can count with: a finite int or float, else None (unknown)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def padded(value: int, multiple: int) -> int:
    """Up to a multiple (0: as it is)."""
    return int(math.ceil(value / multiple) * multiple) if multiple else value


def _place(start: int, size: int, grown: int, limit: int) -> int:
    """Where the pack puts an area grown from `size` to `grown` along one side of a picture
    `limit` long: centred on the old one (the odd pixel after), moved back inside the picture
    where it fits, else centred on the picture (its start negative)."""
    new_start = start - (grown - size) // 2
    if new_start < 0:
        return 0 if grown <= limit else -((grown - limit) // 2)
    if new_start + grown > limit:
        overflow = new_start + grown - limit
        return new_start - overflow if new_start - overflow >= 0 else -((grown - limit) // 2)
    return new_start


def crop_area(box, target_w: int, target_h: int, image_w: int, image_h: int, at_target_size: bool = False):
    """The pack's crop area (crop_magic_im's steps 2-3b): the box grown along one side to the
    target's aspect ratio (int of the product, i.e. truncated) and placed by _place; where the
    crop keeps its own size (at_target_size), each side then grown to the target's and placed
    again. Gives (x, y, w, h); x or y negative, or the area past the picture, where the picture
    must grow (by its edge pixels)."""
    x, y, w, h = box
    aspect = target_w / target_h
    if w / h < aspect:
        new_w = int(h * aspect)
        x, w = _place(x, w, new_w, image_w), new_w
    else:
        new_h = int(w / aspect)
        y, h = _place(y, h, new_h, image_h), new_h
    if at_target_size and w < target_w:
        x, w = _place(x, w, target_w, image_w), target_w
    if at_target_size and h < target_h:
        y, h = _place(y, h, target_h, image_h), target_h
    return x, y, w, h


def repeat_edges(canvas, rows: slice, cols: slice):
    """Fill the canvas [1, H, W, C] around the picture placed at rows × cols as the pack does: the
    rows above and below it (under its columns) repeat its top and bottom rows, the columns left
    and right of it (beside its rows) its first and last columns; the corners stay as they are
    (black in a new canvas)."""
    height, width = canvas.shape[1:3]
    if rows.start > 0:
        canvas[:, :rows.start, cols] = canvas[:, rows.start:rows.start + 1, cols]
    if rows.stop < height:
        canvas[:, rows.stop:, cols] = canvas[:, rows.stop - 1:rows.stop, cols]
    if cols.start > 0:
        canvas[:, rows, :cols.start] = canvas[:, rows, cols.start:cols.start + 1]
    if cols.stop < width:
        canvas[:, rows, cols.stop:] = canvas[:, rows, cols.stop - 1:cols.stop]
    return canvas


def grow_canvas(image, mask, area, width_name: str, height_name: str):
    """The picture and mask grown to hold the crop area: the new rows and columns repeat the
    picture's edge pixels (repeat_edges; corners black), the mask is 1 there. Gives (canvas,
    canvas mask, left, top). A canvas too wide or too high is refused naming width_name or
    height_name (the inputs that grew it)."""
    import torch
    x, y, w, h = area
    _, image_h, image_w, channels = image.shape
    left, top = max(-x, 0), max(-y, 0)
    right, bottom = max(x + w - image_w, 0), max(y + h - image_h, 0)
    _check_size(image_w + left + right, image_h + top + bottom, width_name, width_name, height_name)
    rows, cols = slice(top, top + image_h), slice(left, left + image_w)
    canvas = torch.zeros((1, image_h + top + bottom, image_w + left + right, channels), device=image.device)
    canvas[:, rows, cols] = image
    canvas_mask = torch.ones((1, image_h + top + bottom, image_w + left + right), device=image.device)
    canvas_mask[:, rows, cols] = mask
    return repeat_edges(canvas, rows, cols), canvas_mask, left, top


def extend_for_outpainting(image, mask, context_mask, up: float, down: float, left: float, right: float):
    """The pack's extend_imm: the picture grown (or, with a factor under 1, cut) by the factors of
    its height and width (int of the products), the new rows and columns repeating its edge
    pixels (repeat_edges: the corners black); the mask is 1 there, the context mask 0."""
    import torch
    _, height, width, channels = image.shape
    new_h, new_w = extended_size(height, width, up, down, left, right)
    if new_h < 1 or new_w < 1:
        raise NodeInputError("extend_up_factor" if new_h < 1 else "extend_left_factor",
                             f"the extend factors leave a {new_w}×{new_h} picture; each side must keep at least "
                             "1 pixel")
    _check_size(new_w, new_h, "extend_up_factor", "extend_left_factor", "extend_up_factor")
    top, left_pad = int(height * (up - 1.0)), int(width * (left - 1.0))
    to_rows = slice(max(0, top), min(new_h, top + height))
    to_cols = slice(max(0, left_pad), min(new_w, left_pad + width))
    from_rows = slice(max(0, -top), min(height, new_h - top))
    from_cols = slice(max(0, -left_pad), min(width, new_w - left_pad))
    grown = torch.zeros((1, new_h, new_w, channels), dtype=image.dtype, device=image.device)
    grown[:, to_rows, to_cols] = image[:, from_rows, from_cols]
    grown = repeat_edges(grown, to_rows, to_cols)
    grown_mask = torch.ones((1, new_h, new_w), dtype=mask.dtype, device=image.device)
    grown_mask[:, to_rows, to_cols] = mask[:, from_rows, from_cols]
    grown_context = torch.zeros((1, new_h, new_w), dtype=context_mask.dtype, device=image.device)
    grown_context[:, to_rows, to_cols] = context_mask[:, from_rows, from_cols]
    return grown, grown_mask, grown_context


def preresize_size(width: int, height: int, mode: str, least_w: int, least_h: int, most_w: int, most_h: int):
    """The size the pack's preresize_imm gives a width × height picture: (new width, new height,
    enlarging), or None where it keeps its size. The scale meets the minimum (or maximum) sizes
    keeping the aspect ratio, the new sides rounded up when enlarging, down (truncated) when
    shrinking. Refuses what the pack asserts against (NodeInputError)."""
    if mode == "ensure minimum resolution":
        if width >= least_w and height >= least_h:
            return None
        scale = max(least_w / width, least_h / height)
    elif mode == "ensure maximum resolution":
        if width <= most_w and height <= most_h:
            return None
        scale = min(most_w / width, most_h / height)
    else:
        if least_w <= width <= most_w and least_h <= height <= most_h:
            return None
        up, down = max(least_w / width, least_h / height), min(most_w / width, most_h / height)
        if up > 1 and down < 1:
            raise NodeInputError("preresize_mode", f"a {width}×{height} picture can't meet both the minimum and "
                                                   "the maximum sizes keeping its aspect ratio")
        scale = up if up > 1 else down
    enlarging = mode == "ensure minimum resolution" or mode != "ensure maximum resolution" and scale >= 1.0
    side = math.ceil if enlarging else int
    new_w, new_h = side(width * scale), side(height * scale)
    if enlarging:  # the input whose ratio set the scale
        scaled_by = "preresize_min_width" if least_w / width >= least_h / height else "preresize_min_height"
    else:
        scaled_by = "preresize_max_width" if most_w / width <= most_h / height else "preresize_max_height"
    _check_size(new_w, new_h, scaled_by)
    if mode != "ensure maximum resolution" and (new_w < least_w or new_h < least_h) or \
            mode != "ensure minimum resolution" and (new_w > most_w or new_h > most_h):
        # the pack asserts this too: the aspect ratio kept, one side may overshoot the other's range
        raise NodeInputError("preresize_mode", f"scaling {width}×{height} gives {new_w}×{new_h}, outside the "
                                               "sizes asked for (the pack refuses this too)")
    return new_w, new_h, enlarging


def extended_size(height: int, width: int, up: float, down: float, left: float, right: float) -> tuple[int, int]:
    """The pack's extend_imm size: (height, width) times the sum of the factors' growths, written
    as the pack writes it (1.0 + up - 1.0 + down - 1.0, in that order) and truncated."""
    return int(height * (1.0 + up - 1.0 + down - 1.0)), int(width * (1.0 + left - 1.0 + right - 1.0))


# -- the nodes -----------------------------------------------------------------------------------


def _same_size_or_empty(mask, image, name: str):
    """A mask of another size than the picture is taken as no mask when it is empty (a LoadImage
    without a painted mask gives a 64×64 one), as the pack does; otherwise refused."""
    import torch
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise NodeInputError(name, f"expected a mask batch [B, H, W], got shape {tuple(mask.shape)}")
    if mask.shape[1:] != image.shape[1:3]:
        if torch.count_nonzero(mask) != 0:
            raise NodeInputError(name, f"is {mask.shape[2]}×{mask.shape[1]}, but the image is "
                                       f"{image.shape[2]}×{image.shape[1]}: they must be the same size")
        mask = torch.zeros((mask.shape[0], *image.shape[1:3]), dtype=image.dtype)
    return mask.float().to(image.device)  # everything on the picture's device


def _batched(tensor, batch: int, name: str):
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(batch, *tensor.shape[1:]).clone()
    raise NodeInputError(name, f"a batch of {tensor.shape[0]} doesn't match the image batch of {batch}: "
                               "give one, or one per image")


class InpaintCropImproved(Node):
    """Crop a picture around its mask for inpainting, as Inpaint-CropAndStitch's ✂️ Inpaint Crop
    (Improved) does; sample the crop, then ✂️ Inpaint Stitch (Improved) pastes it back.

    In turn, for each picture of the batch: preresize (scale the picture, keeping its aspect
    ratio, to at least / at most the sizes given: sides rounded up when enlarging, down when
    shrinking; the mask by bilinear when enlarging to a minimum, else nearest); mask_fill_holes
    (enclosed holes filled); mask_expand_pixels (a dilation by a ceil(pixels/4 · 1.5 + 1) square);
    mask_invert; mask_blend_pixels (the same dilation, then a Gaussian blur of sigma pixels/8);
    mask_hipass_filter (values under it set to 0, in the context mask too); extend_for_outpainting
    (the picture grown by the factors of its sides, edge pixels repeated, the new area masked).
    device_mode picks the pack's scipy ("cpu (compatible)") or torch ("gpu (much faster)")
    versions of those mask operations, which differ at the edges and in how holes are found. The
    torch blur is summed in float64 here, the pack's in float32: inside a fully masked area our
    blend mask is exactly 1.0 where the pack's float32 convolution on a CPU gives a hair under,
    254/255 after its 8-bit resize (one 8-bit level; elsewhere too a pixel may differ by one).

    The context is the mask's box (the whole picture for an empty mask), grown by
    context_from_mask_extend_factor in every direction and joined with optional_context_mask's
    box; it is widened along one side to the target's aspect ratio, the picture growing by its
    edge pixels where the area passes it. With output_resize_to_target_size the target is
    output_target_width × output_target_height (padded up to a multiple of output_padding) and the
    crop is resized to it with upscale_algorithm (when either side grows) or downscale_algorithm
    (PIL's filters, in 1/255 steps as the pack); without it the target is the context's own size
    padded up to the multiple, the area grown to it, and the crop is not resized.

    A batch of pictures needs output_resize_to_target_size; one picture with several masks is
    cropped once per mask. A mask of another size than the picture is an error unless it is
    empty. Sizes past 16384 a side are refused."""
    category = CATEGORY
    display_name = "✂️ Inpaint Crop (Improved)"
    image: IMAGE
    downscale_algorithm: str = Choice(ALGORITHMS, "bilinear")
    upscale_algorithm: str = Choice(ALGORITHMS, "bicubic")
    preresize: bool = Bool(False)
    preresize_mode: str = Choice(PRERESIZE_MODES, "ensure minimum resolution")
    preresize_min_width: int = Int(1024, min=0, max=MAX_SIZE)
    preresize_min_height: int = Int(1024, min=0, max=MAX_SIZE)
    preresize_max_width: int = Int(MAX_SIZE, min=0, max=MAX_SIZE)
    preresize_max_height: int = Int(MAX_SIZE, min=0, max=MAX_SIZE)
    mask_fill_holes: bool = Bool(True)
    mask_expand_pixels: int = Int(0, min=0, max=MAX_SIZE)
    mask_invert: bool = Bool(False)
    mask_blend_pixels: int = Int(32, min=0, max=64)
    mask_hipass_filter: float = Float(0.1, min=0.0, max=1.0, step=0.01)
    extend_for_outpainting: bool = Bool(False)
    extend_up_factor: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    extend_down_factor: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    extend_left_factor: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    extend_right_factor: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    context_from_mask_extend_factor: float = Float(1.2, min=1.0, max=100.0, step=0.01)
    output_resize_to_target_size: bool = Bool(True)
    output_target_width: int = Int(512, min=64, max=MAX_SIZE)
    output_target_height: int = Int(512, min=64, max=MAX_SIZE)
    output_padding: str = Choice(PADDINGS, "32")
    device_mode: str = Choice(tuple(DEVICE_MODES), "gpu (much faster)")
    mask: MASK = None
    optional_context_mask: MASK = None
    outputs = {"stitcher": STITCHER, "cropped_image": IMAGE, "cropped_mask": MASK}
    comfy = ComfyAlias(("InpaintCropImproved",), optional=("mask", "optional_context_mask"))

    @classmethod
    def estimate(cls, widgets, inputs):
        """The crops' size where the target is fixed (the padded target size; a crop at its own size
        is unknown before the run, which checks it), and as working memory, at least, what the run
        keeps and makes: one canvas per crop (in the stitcher), an RGB float32 picture (12 bytes a
        pixel), and one crop's mask and context mask (8 bytes a pixel); the picture pre-resized as
        the run does it from the image's size (without the image's size, at least the minimum
        sizes), then extended. A canvas grows past the picture only where a crop area passes it,
        which is certain only with no mask and no context mask linked and, when extending, every
        side grown (the area is then the whole picture, widened to the target's ratio or padded);
        otherwise it is counted at the picture's size, the least it can be (the estimate is a
        lower bound)."""
        image = inputs.get("image")
        batch = max([s.batch for s in (image, inputs.get("mask")) if s is not None] or [1])
        mode = widgets.get("preresize_mode")
        # the sizes the mode reads (the others stand in at values it doesn't look at)
        least_w, least_h = (widgets.get("preresize_min_width"), widgets.get("preresize_min_height")) \
            if mode != "ensure maximum resolution" else (0, 0)
        most_w, most_h = (widgets.get("preresize_max_width"), widgets.get("preresize_max_height")) \
            if mode != "ensure minimum resolution" else (MAX_SIZE, MAX_SIZE)
        sizes_known = all(isinstance(v, int) and not isinstance(v, bool) for v in (least_w, least_h, most_w, most_h))
        height, width = (image.height, image.width) if image is not None else (None, None)
        if widgets.get("preresize") is True and mode in PRERESIZE_MODES and sizes_known:
            if image is None:
                if mode != "ensure maximum resolution":
                    height, width = least_h, least_w
            else:
                try:
                    size = preresize_size(image.width, image.height, mode, least_w, least_h, most_w, most_h)
                except NodeInputError:
                    size = None  # the run refuses it
                if size is not None:
                    width, height = size[:2]
        # with no mask and no context mask linked the crop's box is the whole picture (an inverted
        # empty mask too), unless extending leaves a side as it was (the box is then the new bands)
        whole_picture = "mask" not in inputs and "optional_context_mask" not in inputs
        if widgets.get("extend_for_outpainting") is True and height is not None:
            factors = [_number(widgets.get(f"extend_{side}_factor")) for side in ("up", "down", "left", "right")]
            if None in factors:
                whole_picture = False
            else:
                new_h, new_w = (max(side, 0) for side in extended_size(height, width, *factors))
                top, left = int(height * (factors[0] - 1.0)), int(width * (factors[2] - 1.0))
                whole_picture = whole_picture and min(top, left, new_h - top - height, new_w - left - width) >= 1
                height, width = new_h, new_w
        target_w, target_h = widgets.get("output_target_width"), widgets.get("output_target_height")
        padding = widgets.get("output_padding")
        target = None
        if widgets.get("output_resize_to_target_size") is True and isinstance(target_w, int) and \
                isinstance(target_h, int) and padding in PADDINGS:
            target = padded(target_w, int(padding)), padded(target_h, int(padding))
        if height is None:
            memory = 0
        else:
            canvas_w, canvas_h = width, height
            if whole_picture and target is not None and min(target) > 0 and min(height, width) > 0:
                # the crop area, widened to the target's ratio, passes the picture, which grows to hold it
                aspect = target[0] / target[1]
                canvas_w, canvas_h = max(width, int(height * aspect)), max(height, int(width / aspect))
            elif whole_picture and widgets.get("output_resize_to_target_size") is False and padding in PADDINGS:
                # at its own size the area is the picture, padded
                canvas_w, canvas_h = padded(width, int(padding)), padded(height, int(padding))
            memory = batch * canvas_w * canvas_h * RGB_BYTES + width * height * MASKS_BYTES
        if target is None:
            return Estimate(None, memory)
        return Estimate(Size(batch, target[1], target[0]), memory)

    def run(self):
        import torch
        image = self.image
        if not torch.is_tensor(image) or image.ndim != 4:
            raise NodeInputError("image", "expected an image batch [B, H, W, C]")
        image = image.float()
        if self.preresize and self.preresize_mode == "ensure minimum and maximum resolution":
            if self.preresize_max_width < self.preresize_min_width:
                raise NodeInputError("preresize_max_width", "must be at least preresize_min_width")
            if self.preresize_max_height < self.preresize_min_height:
                raise NodeInputError("preresize_max_height", "must be at least preresize_min_height")
        if image.shape[0] > 1 and not self.output_resize_to_target_size:
            raise NodeInputError("output_resize_to_target_size", "must be on for a batch of images: the crops of a "
                                                                 "batch must all be one size")
        mask = self.mask
        mask = torch.zeros_like(image[..., 0]) if mask is None else _same_size_or_empty(mask, image, "mask")
        if mask.shape[0] > 1 and image.shape[0] == 1:
            image = image.expand(mask.shape[0], -1, -1, -1).clone()
        mask = _batched(mask, image.shape[0], "mask")
        context = self.optional_context_mask
        context = torch.zeros_like(image[..., 0]) if context is None else \
            _same_size_or_empty(context, image, "optional_context_mask")
        context = _batched(context, image.shape[0], "optional_context_mask")

        stitcher = Stitcher(self.downscale_algorithm, self.upscale_algorithm, self.mask_blend_pixels)
        crops, crop_masks = [], []
        for one_image, one_mask, one_context in zip(image, mask, context):
            piece, cropped, cropped_mask = self.crop_one(one_image[None], one_mask[None], one_context[None])
            stitcher.pieces.append(piece)
            crops.append(cropped[0])
            crop_masks.append(cropped_mask[0])
        if len({tuple(c.shape) for c in crops}) > 1:
            raise NodeInputError("mask", "the masks give crops of different sizes, which can't make one batch: "
                                         "turn output_resize_to_target_size on")
        return stitcher, torch.stack(crops), torch.stack(crop_masks)

    def crop_one(self, image, mask, context):
        """One picture [1, H, W, C], its mask and context mask [1, H, W]: (CropPiece, crop, crop mask)."""
        ops = DEVICE_MODES[self.device_mode]
        if self.preresize:
            image, mask, context = self.preresized(image, mask, context)
        if self.mask_fill_holes:
            mask = ops.fill_holes(mask)
        if self.mask_expand_pixels > 0:
            mask = ops.expand(mask, self.mask_expand_pixels)
        if self.mask_invert:
            mask = 1.0 - mask
        if self.mask_blend_pixels > 0:
            mask = ops.blur(ops.expand(mask, self.mask_blend_pixels), self.mask_blend_pixels * 0.5)
        if self.mask_hipass_filter >= HIPASS_OFF_BELOW:
            mask = mask.masked_fill(mask < self.mask_hipass_filter, 0.0)
            context = context.masked_fill(context < self.mask_hipass_filter, 0.0)
        if self.extend_for_outpainting:
            image, mask, context = extend_for_outpainting(image, mask, context, self.extend_up_factor,
                                                          self.extend_down_factor, self.extend_left_factor,
                                                          self.extend_right_factor)
        height, width = image.shape[1:3]
        box = mask_box(mask, ops.nonzero) or (0, 0, width, height)  # no mask: the whole picture is the context
        if self.context_from_mask_extend_factor >= CONTEXT_GROWTH_FROM:
            box = grow_box(box, self.context_from_mask_extend_factor, width, height)
        box = join_boxes(box, mask_box(context, ops.nonzero))
        resize = self.output_resize_to_target_size
        target_w, target_h = (self.output_target_width, self.output_target_height) if resize else box[2:]
        target_w, target_h = padded(target_w, int(self.output_padding)), padded(target_h, int(self.output_padding))
        # at its own size the crop passes the picture only by the padding
        width_name, height_name = ("output_target_width", "output_target_height") if resize else \
            ("output_padding", "output_padding")
        _check_size(target_w, target_h, width_name, width_name, height_name)
        area = crop_area(box, target_w, target_h, width, height, at_target_size=not resize)
        canvas, canvas_mask, left, top = grow_canvas(image, mask, area, width_name, height_name)
        x, y, w, h = area[0] + left, area[1] + top, area[2], area[3]
        cropped, cropped_mask = canvas[:, y:y + h, x:x + w], canvas_mask[:, y:y + h, x:x + w]
        if resize:
            algorithm = self.upscale_algorithm if target_w > w or target_h > h else self.downscale_algorithm
            cropped = pil_resize(cropped, target_w, target_h, algorithm)
            cropped_mask = pil_resize(cropped_mask, target_w, target_h, algorithm)
        blend = ops.blur(cropped_mask, self.mask_blend_pixels * 0.5) if self.mask_blend_pixels > 0 \
            else cropped_mask.clone()
        piece = CropPiece(canvas, (left, top, width, height), (x, y, w, h), blend)
        return piece, cropped.clone(), cropped_mask.clone()

    def preresized(self, image, mask, context):
        """The pack's preresize_imm (preresize_size): upscale_algorithm when enlarging, else
        downscale_algorithm; the mask by bilinear when enlarging to a minimum, else nearest."""
        height, width = image.shape[1:3]
        size = preresize_size(width, height, self.preresize_mode, self.preresize_min_width,
                              self.preresize_min_height, self.preresize_max_width, self.preresize_max_height)
        if size is None:
            return image, mask, context
        new_w, new_h, enlarging = size
        algorithm = self.upscale_algorithm if enlarging else self.downscale_algorithm
        mask_algorithm = "bilinear" if self.preresize_mode == "ensure minimum resolution" else "nearest"
        return (pil_resize(image, new_w, new_h, algorithm), pil_resize(mask, new_w, new_h, mask_algorithm),
                pil_resize(context, new_w, new_h, mask_algorithm))


class InpaintStitchImproved(Node):
    """Paste a sampled crop back into the picture it came from, as Inpaint-CropAndStitch's
    ✂️ Inpaint Stitch (Improved) does: the crop is resized to the area it was cut from (PIL,
    upscale_algorithm when either side grows, else downscale_algorithm, in 1/255 steps; at the
    same size too), its blurred mask likewise, and the area becomes mask · inpainted + (1 - mask)
    · picture; pixels outside the mask keep the picture's exact values. Then the canvas is cut
    back to the picture (the pre-resized / extended picture, as the pack gives it). One stitcher
    serves a whole batch of sampled images; otherwise their counts must match."""
    category = CATEGORY
    display_name = "✂️ Inpaint Stitch (Improved)"
    stitcher: STITCHER
    inpainted_image: IMAGE
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("InpaintStitchImproved",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return Estimate(None)  # the picture's size, which only the stitcher knows

    def run(self):
        import torch
        stitcher, images = self.stitcher, self.inpainted_image
        if not isinstance(stitcher, Stitcher):
            raise NodeInputError("stitcher", "expected the stitcher of an Inpaint Crop (Improved)")
        if not torch.is_tensor(images) or images.ndim != 4:
            raise NodeInputError("inpainted_image", "expected an image batch [B, H, W, C]")
        pieces = stitcher.pieces
        if len(pieces) not in (1, images.shape[0]):
            raise NodeInputError("inpainted_image", f"a batch of {images.shape[0]} doesn't match the stitcher's "
                                                    f"{len(pieces)} crops")
        results = [self.stitch_one(pieces[0] if len(pieces) == 1 else pieces[i], images[i:i + 1].float())
                   for i in range(images.shape[0])]
        if len({tuple(r.shape) for r in results}) > 1:
            raise NodeInputError("stitcher", "its pictures differ in size and can't make one batch")
        return torch.stack([r[0] for r in results])

    def stitch_one(self, piece: CropPiece, inpainted):
        canvas = piece.canvas.clone()
        inpainted = inpainted.to(canvas.device)  # the sampled crop may come back on another device
        if inpainted.shape[3] != canvas.shape[3]:
            raise NodeInputError("inpainted_image", f"has {inpainted.shape[3]} channels, the picture "
                                                    f"{canvas.shape[3]}")
        x, y, w, h = piece.crop_in_canvas
        grows = w > inpainted.shape[2] or h > inpainted.shape[1]
        algorithm = self.stitcher.upscale_algorithm if grows else self.stitcher.downscale_algorithm
        resized = pil_resize(inpainted, w, h, algorithm)
        weight = pil_resize(piece.blend_mask, w, h, algorithm).clamp(0, 1).unsqueeze(-1)
        canvas[:, y:y + h, x:x + w] = weight * resized + (1.0 - weight) * canvas[:, y:y + h, x:x + w]
        left, top, width, height = piece.canvas_to_original
        return canvas[:, top:top + height, left:left + width]
