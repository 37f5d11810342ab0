"""ComfyUI_essentials' (cubiq's) model-free nodes beyond ImageResize+, SimpleMath+ and GetImageSize+
(nodes/pack_nodes.py), under the pack's class names, inputs and outputs. Read from the pack's
source as stored at commits 07702eb68bec54ec84db91ce78e05eea2832d024 (image.py; and a later stored
version adding ImageBatchToList+, ImageSmartSharpen+ and the models/luts folder) and
1f8f5ced9c29bcfcdb8742e69bde971badbe6b08 (mask.py).

Image: ImageEnhanceDifference+, ImageBatchMultiple+, ImageExpandBatch+, ImageFromBatch+,
ImageListToBatch+, ImageBatchToList+, ImageCompositeFromMaskBatch+, ImageComposite+, ImageCrop+,
ImageFlip+, ImageTile+, ImageUntile+, ImageRemoveAlpha+, ImageDesaturate+, ImagePosterize+,
ImageCASharpening+, ImageColorMatch+, ImageColorMatchAdobe+, ImageApplyLUT+ (.cube files in
models/luts), ImagePreviewFromLatent+.
Mask: MaskBlur+, MaskFlip+, MaskPreview+, MaskBatch+, MaskExpandBatch+, MaskBoundingBox+,
MaskFromColor+, MaskFromRGBCMYBW+, MaskFromBatch+, MaskFromList+, MaskSmooth+, MaskFix+,
TransitionMask+.
(Utilities, conditioning, sampling and DrawText+ are in nodes/pack_nodes_essentials_misc.py; the
parameter-sweep sampler FluxSamplerParams+ and its companions, ImageHistogramMatch+ and
FluxBlocksBuster+ in nodes/pack_nodes_essentials_params.py.)

Left out: the nodes needing model weights or other packages' models (RemBGSession+,
TransparentBGSession+, ImageRemoveBackground+, ApplyCLIPSeg+, LoadCLIPSegModels+,
PixelOEPixelize+); ImageRandomTransform+ and NoiseFromImage+ (their results are torchvision's
random draws, which can't be reproduced without it); ImageSeamCarving+,
ImageToDevice+ and the attention seekers (FluxAttentionSeeker+, SD3AttentionSeekerLG+ / T5+)
(not yet: large). ImageSmartSharpen+,
MaskFromSegmentation+, SamplerSelectHelper+, SchedulerSelectHelper+, GuidanceTimestepping+ and
ModelSamplingSD3Advanced+ are in nodes/pack_nodes_essentials_misc.py.
The pack's `device` choices are kept for old saves and do nothing: graphflow places tensors itself.
"""

from __future__ import annotations

import math

from graphflow.api import ANY, IMAGE, INT, LATENT, MASK, VAE, Bool, Choice, ComfyAlias, Estimate, Float, Int, ListOf, \
    Node, NodeInputError, Size, Text, folders
from nodes.image import MAX_SIZE, _image, _resize_image, joined_batches, preview
from nodes.image_ops import gaussian_blur
from nodes.mask import MaskPreview
from nodes.pack_nodes import INT_LIMIT, _core  # INT_LIMIT: the pack's bounds of its number widgets
from nodes.vae import VAEDecode

COMFY_PACK = "ComfyUI_essentials"  # the custom node pack this module's ComfyUI classes come from

DEVICES = ("auto", "cpu", "gpu")
BATCH_LIMIT = 1_000_000  # the pack sets no maximum on batch sizes; the estimate refuses what can't fit


def _mask(mask, name: str):
    """A MASK input as a [B, H, W] batch (a single [H, W] mask becomes a batch of one)."""
    import torch
    if not torch.is_tensor(mask) or mask.ndim not in (2, 3):
        raise NodeInputError(name, "expected a MASK: a [B, H, W] (or [H, W]) tensor")
    return mask.unsqueeze(0) if mask.ndim == 2 else mask


def torchvision_blur(x, kernel: int, name: str):
    """torchvision's gaussian_blur(x, kernel) on [B, H, W] masks, as the pack blurs them: an odd
    kernel (an even one is made odd, one bigger), sigma 0.3 ((kernel - 1) / 2 - 1) + 0.8 pixels,
    borders mirrored."""
    if kernel % 2 == 0:
        kernel += 1
    radius = (kernel - 1) // 2
    if radius == 0:
        return x
    if radius >= min(x.shape[-2:]):
        raise NodeInputError(name, f"a blur of {kernel} pixels needs masks bigger than {radius} pixels on each side, "
                                   f"got {x.shape[-1]}x{x.shape[-2]}")
    sigma = 0.3 * (radius - 1) + 0.8
    return gaussian_blur(x.unsqueeze(1).float(), radius, sigma / radius).squeeze(1)  # its sigma: radius units


def binary_smooth(mask, kernel: int, name: str):
    """The pack's smoothing: the mask cut at 0.5, blurred as a true/false tensor, which torchvision
    rounds back to true/false (so it is 1 where over half the blurred neighbourhood is set)."""
    return torchvision_blur((mask > 0.5).float(), kernel, name).round()


def expand_indexes(count: int, size: int, method: str) -> list[int]:
    """ImageExpandBatch+'s frames for a batch of `count` made `size` long: "expand" spreads the
    frames over the new length (picking evenly when shorter), "repeat all" repeats the batch,
    "repeat first" / "repeat last" add copies of that frame in front / at the end; a shorter size
    keeps the first frames."""
    if size == count:
        return list(range(count))
    if size <= 1:
        return list(range(min(size, count)))
    if method == "expand":
        if size < count:
            scale = (count - 1) / (size - 1)
            return [min(round(i * scale), count - 1) for i in range(size)]
        scale = count / size
        return [min(math.floor((i + 0.5) * scale), count - 1) for i in range(size)]
    if method == "repeat all":
        return [i % count for i in range(size)]
    if size < count:
        return list(range(size))
    if method == "repeat first":
        return [0] * (size - count) + list(range(count))
    return list(range(count)) + [count - 1] * (size - count)


def expanded(size: Size | None, count) -> Estimate:
    """The Expand Batch nodes' estimate: the input's pictures, `count` of them."""
    if size is None or not isinstance(count, int):
        return Estimate(size)
    return Estimate(Size(count, size.height, size.width))


def fit_batch(x, count: int):
    """x cut to `count` items or made that long with copies of its last one, as the pack matches
    batches."""
    import torch
    if x.shape[0] >= count:
        return x[:count]
    return torch.cat([x, x[-1:].expand(count - x.shape[0], *x.shape[1:])])


# -- image ------------------------------------------------------------------------------------


class ImageEnhanceDifference(Node):
    """The difference image1 - image2 raised to `exponent`, clamped to 0..1, as ComfyUI_essentials'
    Image Enhance Difference does; image2 is first resized (bicubic, centre-cropped) to image1's
    size when they differ. Deliberately unlike the pack, where a negative difference raised to a
    fractional power becomes NaN, negative differences give 0 (what its clamp means)."""
    category = "essentials/image analysis"
    image1: IMAGE
    image2: IMAGE
    exponent: float = Float(0.75, min=0.0, max=1.0, step=0.05)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageEnhanceDifference+",))

    def run(self):
        import torch
        a, b = _image(self.image1, "image1"), _image(self.image2, "image2")
        if a.shape[-1] != b.shape[-1]:
            raise NodeInputError("image2", f"{b.shape[-1]} channels; image1 has {a.shape[-1]}")
        if b.shape[0] not in (1, a.shape[0]) and a.shape[0] != 1:
            raise NodeInputError("image2", f"a batch of {b.shape[0]}; image1 has {a.shape[0]} (or give one image)")
        if a.shape[1:3] != b.shape[1:3]:
            b = _resize_image(b, a.shape[2], a.shape[1], "bicubic", crop=True)
        return torch.pow((a - b).clamp(min=0), self.exponent).clamp(0, 1)


class ImageBatchMultiple(Node):
    """Join image_1 ... image_5 into one batch, as ComfyUI_essentials' Images Batch Multiple does:
    each one of another size is first resized (`method`, centre-cropped) to image_1's size."""
    category = "essentials/image batch"
    image_1: IMAGE
    method: str = Choice(("nearest-exact", "bilinear", "area", "bicubic", "lanczos"), "lanczos")
    image_2: IMAGE = None
    image_3: IMAGE = None
    image_4: IMAGE = None
    image_5: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageBatchMultiple+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return joined_batches([inputs[f"image_{i}"] for i in range(1, 6) if f"image_{i}" in inputs])

    def run(self):
        import torch
        first = _image(self.image_1, "image_1")
        parts = [first]
        for i in range(2, 6):
            image = getattr(self, f"image_{i}")
            if image is None:
                continue
            image = _image(image, f"image_{i}")
            if image.shape[-1] != first.shape[-1]:
                raise NodeInputError(f"image_{i}", f"{image.shape[-1]} channels; image_1 has {first.shape[-1]}")
            if image.shape[1:3] != first.shape[1:3]:
                image = _resize_image(image, first.shape[2], first.shape[1], self.method, crop=True)
            parts.append(image.to(first.dtype))
        return torch.cat(parts)


class ImageExpandBatch(Node):
    """Make the batch `size` images long, as ComfyUI_essentials' Image Expand Batch does:
    "expand" spreads the frames over the new length (picking frames evenly when it is shorter),
    "repeat all" repeats the whole batch, "repeat first" / "repeat last" add copies of the first /
    last image in front / at the end; a shorter size keeps the first images (except "expand")."""
    category = "essentials/image batch"
    image: IMAGE
    size: int = Int(16, min=1, max=BATCH_LIMIT)
    method: str = Choice(("expand", "repeat all", "repeat first", "repeat last"), "expand")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageExpandBatch+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return expanded(inputs.get("image"), widgets.get("size"))

    def run(self):
        image = _image(self.image, "image")
        if image.shape[0] == 0:
            raise NodeInputError("image", "an empty batch: expected at least one image to expand")
        return image[expand_indexes(image.shape[0], self.size, self.method)]


def batch_slice(count: int, start: int, length: int) -> slice:
    """The pack's From Batch range: start moved to the last item when past it, at most `length`
    items (a negative length: to the end)."""
    if length < 0:
        length = count
    start = min(start, count - 1)
    return slice(start, start + min(count - start, length))


class ImageFromBatchPlus(Node):
    """Take `length` images from `start` on, as ComfyUI_essentials' Image From Batch does (-1: to
    the end); a start past the batch takes its last image."""
    category = "essentials/image batch"
    image: IMAGE
    start: int = Int(0, min=0, max=INT_LIMIT)
    length: int = Int(-1, min=-1, max=INT_LIMIT)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageFromBatch+",))

    def run(self):
        image = _image(self.image, "image")
        return image[batch_slice(image.shape[0], self.start, self.length)]


class ImageListToBatch(Node):
    """Join a list of images (a list output, such as a node run once per item gives) into one
    batch, as ComfyUI_essentials' Image List To Batch does: each one of another size is resized
    (bicubic, centre-cropped) to the first one's size."""
    category = "essentials/image batch"
    input_is_list = True
    image: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageListToBatch+",))

    def run(self):
        import torch
        images = [_image(image, "image") for image in self.image]
        if not images:
            raise NodeInputError("image", "an empty list: expected at least one image")
        first = images[0]
        out = []
        for image in images:
            if image.shape[-1] != first.shape[-1]:
                raise NodeInputError("image", f"an image of {image.shape[-1]} channels; the first has "
                                              f"{first.shape[-1]}")
            if image.shape[1:3] != first.shape[1:3]:
                image = _resize_image(image, first.shape[2], first.shape[1], "bicubic", crop=True)
            out.append(image)
        return torch.cat(out)


class ImageBatchToList(Node):
    """Split an image batch into a list of single images (the nodes it feeds then run once per
    image), as ComfyUI_essentials' Image Batch To List does."""
    category = "essentials/image batch"
    image: IMAGE
    outputs = {"IMAGE": ListOf(IMAGE)}
    comfy = ComfyAlias(("ImageBatchToList+",))

    def run(self):
        image = _image(self.image, "image")
        return [image[i:i + 1] for i in range(image.shape[0])]


class ImageCompositeFromMaskBatch(Node):
    """Blend image_to over image_from where the mask is, one mask per frame, as
    ComfyUI_essentials' Image Composite From Mask Batch does: mask * image_to + (1 - mask) *
    image_from. image_to and the masks are resized (bicubic, centre-cropped) to image_from's size;
    image_from is cut to the masks' count or made that long with copies of its last image."""
    category = "essentials/image manipulation"
    image_from: IMAGE
    image_to: IMAGE
    mask: MASK
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageCompositeFromMaskBatch+",))

    def run(self):
        source, target = _image(self.image_from, "image_from"), _image(self.image_to, "image_to")
        mask = _mask(self.mask, "mask")
        frames = mask.shape[0]
        if target.shape[0] not in (1, frames):
            raise NodeInputError("image_to", f"a batch of {target.shape[0]}; expected 1 or one per mask ({frames})")
        if target.shape[-1] != source.shape[-1]:
            raise NodeInputError("image_to", f"{target.shape[-1]} channels; image_from has {source.shape[-1]}")
        height, width = source.shape[1:3]
        if target.shape[1:3] != (height, width):
            target = _resize_image(target, width, height, "bicubic", crop=True)
        source = fit_batch(source, frames)
        mask = mask[..., None]
        if mask.shape[1:3] != (height, width):
            mask = _resize_image(mask, width, height, "bicubic", crop=True)
        return mask * target + (1 - mask) * source


class ImageComposite(Node):
    """Paste `source` onto `destination` at (x + offset_x, y + offset_y), through the mask where one
    is connected, as ComfyUI_essentials' Image Composite does: the mask is resized (bicubic) to the
    source's size, and the mask and destination batches are cut to the source's count or made
    that long with copies of their last one. Deliberately unlike the pack, which fails when the
    source reaches past the destination's right or bottom edge (or starts left of or above it),
    the part outside the destination is cut off."""
    category = "essentials/image manipulation"
    destination: IMAGE
    source: IMAGE
    x: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    y: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    offset_x: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    offset_y: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    mask: MASK = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageComposite+",))

    def run(self):
        import torch
        import torch.nn.functional as F
        destination, source = _image(self.destination, "destination"), _image(self.source, "source")
        if source.shape[-1] != destination.shape[-1]:
            raise NodeInputError("source", f"{source.shape[-1]} channels; destination has {destination.shape[-1]}")
        count, sh, sw = source.shape[:3]
        mask = torch.ones(source.shape[:3]) if self.mask is None else _mask(self.mask, "mask").float()
        if mask.shape[1:] != (sh, sw):
            mask = F.interpolate(mask[:, None], size=(sh, sw), mode="bicubic")[:, 0]
        mask = fit_batch(mask, count)[..., None].to(source)
        out = fit_batch(destination, count).clone()
        dh, dw = out.shape[1:3]
        x, y = self.x + self.offset_x, self.y + self.offset_y
        x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + sw, dw), min(y + sh, dh)
        if x1 < x2 and y1 < y2:
            s = source[:, y1 - y:y2 - y, x1 - x:x2 - x]
            m = mask[:, y1 - y:y2 - y, x1 - x:x2 - x]
            out[:, y1:y2, x1:x2] = s * m + out[:, y1:y2, x1:x2] * (1 - m)
        return out


CROP_POSITIONS = ("top-left", "top-center", "top-right", "right-center", "bottom-right", "bottom-center",
                  "bottom-left", "left-center", "center")


def crop_box(ow: int, oh: int, width: int, height: int, position: str, x_offset: int, y_offset: int):
    """ImageCrop+'s (x, y, x2, y2): a width x height box (at most the image) placed at `position`
    ("center" in its name centres both, then top/bottom/left/right move it to that edge), moved
    by the offsets, then cut to the image."""
    width, height = min(ow, width), min(oh, height)
    x = y = 0
    if "center" in position:
        x, y = round((ow - width) / 2), round((oh - height) / 2)
    if "top" in position:
        y = 0
    if "bottom" in position:
        y = oh - height
    if "left" in position:
        x = 0
    if "right" in position:
        x = ow - width
    x, y = x + x_offset, y + y_offset
    return max(x, 0), max(y, 0), min(x + width, ow), min(y + height, oh)


class ImageCropPlus(Node):
    """Crop a width x height box placed at `position` and moved by the offsets, as
    ComfyUI_essentials' Image Crop does (the box is cut to the image). Gives the crop and its
    top-left corner. Where the pack gives an empty image (a width or height of 0, or a box outside
    the image), this is an error naming width / height or the offset: an image of no pixels breaks
    the nodes after it."""
    category = "essentials/image manipulation"
    image: IMAGE
    width: int = Int(256, min=0, max=MAX_SIZE, step=8)
    height: int = Int(256, min=0, max=MAX_SIZE, step=8)
    position: str = Choice(CROP_POSITIONS, "top-left")
    x_offset: int = Int(0, min=-99999, max=INT_LIMIT)
    y_offset: int = Int(0, min=-99999, max=INT_LIMIT)
    outputs = {"IMAGE": IMAGE, "x": INT, "y": INT}
    comfy = ComfyAlias(("ImageCrop+",))

    def run(self):
        image = _image(self.image, "image")
        oh, ow = image.shape[1:3]
        for name in ("width", "height"):
            if getattr(self, name) == 0:
                raise NodeInputError(name, "0: the crop would have no pixels; expected 1 or more")
        x, y, x2, y2 = crop_box(ow, oh, self.width, self.height, self.position, self.x_offset, self.y_offset)
        if x >= x2 or y >= y2:
            raise NodeInputError("x_offset" if x >= x2 else "y_offset",
                                 f"the {self.width}x{self.height} box at {self.position} moved by "
                                 f"({self.x_offset}, {self.y_offset}) lies outside the {ow}x{oh} image")
        return image[:, y:y2, x:x2], x, y


def _flip(x, axis: str):
    """Flip an IMAGE or MASK batch: "x" mirrors left-right, "y" upside down, "xy" both."""
    dims = (1,) * ("y" in axis) + (2,) * ("x" in axis)
    return x.flip(dims)


class ImageFlipPlus(Node):
    """Mirror images as ComfyUI_essentials' Image Flip does: "x" left-right, "y" upside down,
    "xy" both."""
    category = "essentials/image manipulation"
    image: IMAGE
    axis: str = Choice(("x", "y", "xy"), "x")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageFlip+",))

    def run(self):
        return _flip(_image(self.image, "image"), self.axis)


def tile_spans(count: int, tile: int, overlap: int, total: int) -> list[tuple[int, int]]:
    """The pack's tiles along one side: tile i starts at i * tile, moved back by the overlap after
    the first, and is tile + overlap long; one running past `total` is moved back inside."""
    spans = []
    for i in range(count):
        start = i * tile - (overlap if i > 0 else 0)
        end = start + tile + overlap
        if end > total:
            end, start = total, total - tile - overlap
        spans.append((start, end))
    return spans


def tile_overlap(count: int, tile: int, overlap: float, extra: int) -> int:
    """Image Tile's overlap in pixels along one side: `overlap` of the tile plus `extra` pixels, at
    most half a tile; none across a single row or column."""
    return 0 if count == 1 else min(tile // 2, int(tile * overlap) + extra)


class ImageTile(Node):
    """Cut images into rows x cols tiles, as ComfyUI_essentials' Image Tile does: each tile is
    (width // cols) x (height // rows) plus the overlap (overlap times the tile's side plus
    overlap_x / overlap_y pixels, at most half a tile; none across a single row or column), the
    tiles after the first of each row and column reaching back into the one before. The tiles
    come row by row (each tile of every image of the batch together). Gives them with their size
    and the overlaps in pixels, for Image Untile."""
    category = "essentials/image manipulation"
    image: IMAGE
    rows: int = Int(2, min=1, max=256)
    cols: int = Int(2, min=1, max=256)
    overlap: float = Float(0.0, min=0.0, max=0.5, step=0.01)
    overlap_x: int = Int(0, min=0, max=MAX_SIZE // 2)
    overlap_y: int = Int(0, min=0, max=MAX_SIZE // 2)
    outputs = {"IMAGE": IMAGE, "tile_width": INT, "tile_height": INT, "overlap_x": INT, "overlap_y": INT}
    comfy = ComfyAlias(("ImageTile+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        """rows x cols tiles of each image, each a tile plus its overlap."""
        size = inputs.get("image")
        rows, cols, overlap_x, overlap_y = (widgets.get(k) for k in ("rows", "cols", "overlap_x", "overlap_y"))
        overlap = widgets.get("overlap")
        if size is None or not all(isinstance(v, int) for v in (rows, cols, overlap_x, overlap_y)) \
                or not isinstance(overlap, (int, float)) or rows > size.height or cols > size.width:
            return Estimate(None)
        tile_h, tile_w = size.height // rows, size.width // cols
        return Estimate(Size(size.batch * rows * cols, tile_h + tile_overlap(rows, tile_h, overlap, overlap_y),
                             tile_w + tile_overlap(cols, tile_w, overlap, overlap_x)))

    def run(self):
        import torch
        image = _image(self.image, "image")
        h, w = image.shape[1:3]
        if self.rows > h or self.cols > w:
            raise NodeInputError("rows" if self.rows > h else "cols",
                                 f"{self.rows} rows x {self.cols} columns of a {w}x{h} image leave empty tiles")
        tile_h, tile_w = h // self.rows, w // self.cols
        overlap_h = tile_overlap(self.rows, tile_h, self.overlap, self.overlap_y)
        overlap_w = tile_overlap(self.cols, tile_w, self.overlap, self.overlap_x)
        rows = tile_spans(self.rows, tile_h, overlap_h, tile_h * self.rows)
        cols = tile_spans(self.cols, tile_w, overlap_w, tile_w * self.cols)
        tiles = torch.cat([image[:, y1:y2, x1:x2] for y1, y2 in rows for x1, x2 in cols])
        return tiles, tile_w + overlap_w, tile_h + overlap_h, overlap_w, overlap_h


class ImageUntile(Node):
    """Put Image Tile's tiles back together into one image, as ComfyUI_essentials' Image Untile
    does: rows x cols tiles (the first rows x cols of the batch, row by row), each overlapping the
    one above and to the left by overlap_y / overlap_x pixels and faded into them linearly over
    the overlap."""
    category = "essentials/image manipulation"
    tiles: IMAGE
    overlap_x: int = Int(0, min=0, max=MAX_SIZE // 2)
    overlap_y: int = Int(0, min=0, max=MAX_SIZE // 2)
    rows: int = Int(2, min=1, max=256)
    cols: int = Int(2, min=1, max=256)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageUntile+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, values = inputs.get("tiles"), [widgets.get(k) for k in ("overlap_x", "overlap_y", "rows", "cols")]
        if size is None or not all(isinstance(v, int) for v in values):
            return Estimate(None)
        ox, oy, rows, cols = values
        return Estimate(Size(1, max(rows * (size.height - oy), 1), max(cols * (size.width - ox), 1)))

    def run(self):
        import torch
        tiles = _image(self.tiles, "tiles")
        if tiles.shape[0] < self.rows * self.cols:
            raise NodeInputError("tiles", f"{tiles.shape[0]} tiles; {self.rows} rows x {self.cols} columns need "
                                          f"{self.rows * self.cols}")
        th, tw = tiles.shape[1] - self.overlap_y, tiles.shape[2] - self.overlap_x
        if th < 1 or tw < 1:
            raise NodeInputError("overlap_x" if tw < 1 else "overlap_y",
                                 f"an overlap as big as the {tiles.shape[2]}x{tiles.shape[1]} tiles")
        out_h, out_w = self.rows * th, self.cols * tw
        out = torch.zeros((1, out_h, out_w, tiles.shape[3]), dtype=tiles.dtype)
        rows = tile_spans(self.rows, th, self.overlap_y, out_h)
        cols = tile_spans(self.cols, tw, self.overlap_x, out_w)
        for i, (y1, y2) in enumerate(rows):
            for j, (x1, x2) in enumerate(cols):
                weight = torch.ones((th + self.overlap_y, tw + self.overlap_x, 1), dtype=tiles.dtype)
                if i > 0:  # fade in over the overlap with the tile above (and below: left as the pack leaves it)
                    weight[:self.overlap_y] *= torch.linspace(0, 1, self.overlap_y, dtype=tiles.dtype)[:, None, None]
                if j > 0:
                    weight[:, :self.overlap_x] *= torch.linspace(0, 1, self.overlap_x, dtype=tiles.dtype)[None, :, None]
                tile = tiles[i * self.cols + j]
                out[0, y1:y2, x1:x2] = out[0, y1:y2, x1:x2] * (1 - weight) + tile * weight
        return out


class ImageRemoveAlpha(Node):
    """Drop the alpha channel of RGBA images, as ComfyUI_essentials' Image Remove Alpha does
    (other images pass unchanged)."""
    category = "essentials/image utils"
    image: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageRemoveAlpha+",))

    def run(self):
        image = _image(self.image, "image")
        return image[..., :3] if image.shape[-1] == 4 else image


DESATURATE_METHODS = ("luminance (Rec.709)", "luminance (Rec.601)", "average", "lightness")


class ImageDesaturate(Node):
    """Blend images towards grey by `factor`, as ComfyUI_essentials' Image Desaturate does: grey
    is Rec.709 luminance (0.2126 R + 0.7152 G + 0.0722 B), Rec.601 (0.299, 0.587, 0.114), the
    channels' average, or lightness ((max + min) / 2); clamped to 0..1."""
    category = "essentials/image processing"
    image: IMAGE
    factor: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    method: str = Choice(DESATURATE_METHODS, "luminance (Rec.709)")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDesaturate+",))

    def run(self):
        image = _image(self.image, "image")
        if image.shape[-1] != 3:
            raise NodeInputError("image", f"{image.shape[-1]} channels: expected RGB images")
        r, g, b = image.unbind(-1)
        grey = {"luminance (Rec.709)": lambda: 0.2126 * r + 0.7152 * g + 0.0722 * b,
                "luminance (Rec.601)": lambda: 0.299 * r + 0.587 * g + 0.114 * b,
                "average": lambda: image.mean(-1),
                "lightness": lambda: (image.amax(-1) + image.amin(-1)) / 2}[self.method]()
        return ((1.0 - self.factor) * image + self.factor * grey[..., None]).clamp(0, 1)


class ImagePosterize(Node):
    """Black and white images, as ComfyUI_essentials' Image Posterize does: white where the
    channels' average is above `threshold`, else black."""
    category = "essentials/image processing"
    image: IMAGE
    threshold: float = Float(0.5, min=0.0, max=1.0, step=0.05)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImagePosterize+",))

    def run(self):
        image = _image(self.image, "image")
        return (image.mean(-1, keepdim=True) > self.threshold).float().expand(-1, -1, -1, 3).contiguous()


class ImageCASharpening(Node):
    """AMD's Contrast Adaptive Sharpening, as ComfyUI_essentials' Image Contrast Adaptive Sharpening
    does it: each pixel is pushed away from its four neighbours by a weight -sqrt(min(mn, 2 - mx) /
    mx) (amount (1/5 - 1/8) + 1/8), where mn and mx add the least and greatest values of the pixel's
    cross and of its diagonals (zero outside the image; each least value taken as at least 0 and
    each greatest as at most 1, as the pack's min_ / max_ do), then normalised and clamped to 0..1."""
    category = "essentials/image processing"
    image: IMAGE
    amount: float = Float(0.8, min=0.0, max=1.0, step=0.05)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageCASharpening+",))

    def run(self):
        import torch
        import torch.nn.functional as F
        x = F.pad(_image(self.image, "image").movedim(-1, 1), (1, 1, 1, 1))
        h, w = x.shape[2] - 2, x.shape[3] - 2

        def at(dy, dx):  # the neighbour dy rows down and dx columns right of each pixel
            return x[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

        cross = torch.stack([at(-1, 0), at(0, -1), at(0, 0), at(0, 1), at(1, 0)])
        diagonal = torch.stack([at(-1, -1), at(-1, 1), at(1, -1), at(1, 1)])
        # the pack's min_ / max_: each group's least value at least 0, greatest at most 1
        mn = cross.amin(0).clamp(min=0) + diagonal.amin(0).clamp(min=0)
        mx = cross.amax(0).clamp(max=1) + diagonal.amax(0).clamp(max=1)
        amp = torch.sqrt(torch.minimum(mn, 2 - mx) / (mx + 1e-5))
        weight = -amp * (self.amount * (1 / 5 - 1 / 8) + 1 / 8)
        out = ((at(-1, 0) + at(0, -1) + at(0, 1) + at(1, 0)) * weight + at(0, 0)) / (1 + 4 * weight)
        return out.clamp(0, 1).movedim(1, -1)


LUT_3D_MAX = 129  # points per side of a 3D LUT read (real ones have 17, 33 or 65; 129 the largest in use)
LUT_1D_MAX = 65536
LUT_FILE_MAX = 128 * 2 ** 20  # bytes: a 129-point 3D LUT written with 9 digits a value is about 80 MB
CACHED_LUTS = 4  # parsed tables kept, keyed by file state: a graph re-run doesn't parse again


def lut_choices() -> list[str]:
    """The .cube files in the models/luts folders (the pack lists its own luts folder)."""
    return folders.list_files_inside("luts", (".cube",))


def _cube_header(line: str, number: int, lut: dict) -> None:
    """One keyword line of a .cube file read into lut (kind, size, low, high)."""
    words = line.split()
    key = words[0].upper()
    try:
        if key in ("LUT_1D_SIZE", "LUT_3D_SIZE"):
            lut["kind"], lut["size"] = key[4:6], int(words[1])
        elif key in ("DOMAIN_MIN", "DOMAIN_MAX"):
            values = [float(v) for v in words[1:4]]
            if len(values) != 3:
                raise ValueError
            lut["low" if key == "DOMAIN_MIN" else "high"] = values
        elif key in ("LUT_1D_INPUT_RANGE", "LUT_3D_INPUT_RANGE"):
            lut["low"], lut["high"] = [float(words[1])] * 3, [float(words[2])] * 3
        else:
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError(f"line {number} is not a .cube line") from None


def _bad_row(body: str, first: int) -> str:
    """Where the table rows of a .cube file (body, its line `first` on) stop being three numbers."""
    for number, line in enumerate(body.splitlines(), first):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            values = [float(w) for w in words]
        except ValueError:
            values = []
        if len(values) != 3:
            return f"line {number} is not a table row of three numbers"
    return "the table rows are not three numbers each"


def read_cube(text: str):
    """An IRIDAS / Resolve .cube LUT: (table, domain). table is [N, 3] for a 1D LUT (one curve per
    channel) or [N, N, N, 3] indexed [red, green, blue] for a 3D one (its rows list red fastest);
    domain is [[min r, g, b], [max r, g, b]] (DOMAIN_MIN / DOMAIN_MAX or *_INPUT_RANGE; 0..1 by
    default). The keywords come before the table, as the format has them. ValueError says what is
    wrong (a line number, not the file's text)."""
    import io
    import warnings

    import numpy as np
    import torch
    lut = {"kind": None, "size": None, "low": [0.0] * 3, "high": [1.0] * 3}
    position, number = 0, 0
    while position < len(text):  # the keyword lines, up to the table's first row
        end = text.find("\n", position)
        end = len(text) if end < 0 else end + 1
        line, number = text[position:end], number + 1
        words = line.split()
        if words and (words[0][0].isdigit() or words[0][0] in "+-."):
            break
        if words and not words[0].startswith("#") and words[0] != "TITLE":
            _cube_header(line, number, lut)
        position = end
    kind, size = lut["kind"], lut["size"]
    if kind is None:
        raise ValueError("no LUT_1D_SIZE or LUT_3D_SIZE line")
    limit = LUT_3D_MAX if kind == "3D" else LUT_1D_MAX
    if not 2 <= size <= limit:
        raise ValueError(f"a {kind} LUT of {size} points: expected 2 to {limit}")
    want = size ** 3 if kind == "3D" else size
    body = text[position:]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's note that blank lines don't count as rows
            # one row past the declared count at most: a longer table is refused without reading it all
            rows = np.loadtxt(io.StringIO(body), dtype=np.float64, comments="#", ndmin=2, max_rows=want + 1)
    except ValueError:
        raise ValueError(_bad_row(body, number)) from None
    if rows.shape[0] and rows.shape[1] != 3:
        raise ValueError(_bad_row(body, number))
    if rows.shape[0] != want:
        raise ValueError(f"{'over ' if rows.shape[0] > want else ''}{min(rows.shape[0], want)} table rows; "
                         f"a {kind} LUT of size {size} has {want}")
    table = torch.from_numpy(rows)
    if kind == "3D":
        table = table.reshape(size, size, size, 3).permute(2, 1, 0, 3)  # rows run [blue][green][red]
    domain = torch.tensor([lut["low"], lut["high"]], dtype=torch.float64)
    if (domain[1] <= domain[0]).any():
        raise ValueError(f"the domain's maximum {lut['high']} is not above its minimum {lut['low']}")
    return table, domain


_parsed_luts: dict[tuple, tuple] = {}  # (path, mtime, size) -> read_cube's (table, domain), never changed


def load_cube(path):
    """read_cube of a .cube file, at most LUT_FILE_MAX bytes; the last few parsed are kept while
    their file is unchanged (same path, modification time and size)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _parsed_luts:
        if stat.st_size > LUT_FILE_MAX:
            raise ValueError(f"{stat.st_size:,} bytes: expected a .cube file of at most {LUT_FILE_MAX:,}")
        with open(path, encoding="utf-8", errors="replace") as file:
            text = file.read(LUT_FILE_MAX + 1)  # the file may have grown since stat()
        if len(text) > LUT_FILE_MAX:
            raise ValueError(f"over {LUT_FILE_MAX:,} characters: expected a smaller .cube file")
        while len(_parsed_luts) >= CACHED_LUTS:
            del _parsed_luts[next(iter(_parsed_luts))]  # the oldest
        _parsed_luts[key] = read_cube(text)
    return _parsed_luts[key]


def apply_lut(table, domain, x):
    """[..., 3] values through a LUT, as colour applies them: each channel through its curve (1D,
    linear interpolation; outside the domain the first or last segment is extended, as colour's
    default Extrapolator "Linear" does) or the colour through the cube (3D, trilinear
    interpolation; values outside the domain take its edge's). A NaN value (a negative one raised
    to 1/2.2) gives NaN, as colour's does: its channel through a curve, the whole colour through a
    cube."""
    import torch
    size = table.shape[0]
    undefined = x.isnan()
    if table.ndim == 4:
        undefined = undefined.any(-1, keepdim=True).expand_as(x)
    x = x.nan_to_num(0.0)  # a NaN index would be -2**63; the lookup's result is replaced below
    position = (x - domain[0]) / (domain[1] - domain[0])
    if table.ndim == 4:
        position = position.clamp(0, 1)
    position = position * (size - 1)
    below = position.floor().clamp(0, size - 2).long()
    t = position - below  # below 0 or above 1 outside a 1D LUT's domain: the edge segment extended
    if table.ndim == 2:
        channels = torch.arange(3)
        out = table[below, channels] * (1 - t) + table[below + 1, channels] * t
        return out.masked_fill(undefined, float("nan"))
    out = torch.zeros_like(x)
    for corner in range(8):  # the cell's eight corners, each weighted by its share
        step = [(corner >> axis) & 1 for axis in range(3)]
        weight = torch.ones_like(x[..., :1])
        for axis, up in enumerate(step):
            weight = weight * (t[..., axis:axis + 1] if up else 1 - t[..., axis:axis + 1])
        out += weight * table[below[..., 0] + step[0], below[..., 1] + step[1], below[..., 2] + step[2]]
    return out.masked_fill(undefined, float("nan"))


class ImageApplyLUT(Node):
    """Grade images with a .cube LUT, as ComfyUI_essentials' Image Apply LUT does (through the
    colour library there): lut_file is a .cube file in models/luts, as in the pack's later versions
    (its earlier ones list their own luts folder: put those files there). A missing or unreadable
    file is an error naming lut_file (the pack passes the image on unchanged). With clip_values the
    table is first clamped to the LUT's domain; pixels are scaled into the domain, raised to 1/2.2
    with gamma_correction, looked up (3D LUTs trilinearly, values outside the domain taking its
    edge's; 1D ones linearly per channel, extended past the domain along the first or last
    segment, as colour does), raised to 2.2 again, scaled back, and blended with the image by
    `strength`. The result is not clamped, as in the pack; where the pack's is NaN (gamma_correction
    of a LUT whose domain goes below 0 raises negative values to 1/2.2) ours is 0. Only files inside
    models/luts are read
    (not links out of it); 3D LUTs of up to 129 points a side."""
    category = "essentials/image processing"
    image: IMAGE
    lut_file: str = Choice(lut_choices)
    gamma_correction: bool = Bool(True)
    clip_values: bool = Bool(True)
    strength: float = Float(1.0, min=0.0, max=1.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageApplyLUT+",))

    @classmethod
    def fingerprint(cls, lut_file=None, **widgets):
        try:
            return folders.model_state("luts", lut_file, inside=True)
        except (FileNotFoundError, ValueError, TypeError):
            return None  # run() names the problem

    def run(self):
        import torch
        image = _image(self.image, "image")
        if image.shape[-1] != 3:
            raise NodeInputError("image", f"{image.shape[-1]} channels: expected RGB images")
        try:
            table, domain = load_cube(folders.find_model("luts", self.lut_file, inside=True))
        except (FileNotFoundError, ValueError) as e:  # UnsafePathError is a ValueError
            raise NodeInputError("lut_file", str(e)) from None
        if self.clip_values:
            table = torch.minimum(torch.maximum(table, domain[0]), domain[1])
        x = image.double()
        default_domain = bool((domain == torch.tensor([[0.0] * 3, [1.0] * 3], dtype=torch.float64)).all())
        if not default_domain:
            x = x * (domain[1] - domain[0]) + domain[0]
        if self.gamma_correction:
            x = x ** (1 / 2.2)
        x = apply_lut(table, domain, x)
        if self.gamma_correction:
            x = x ** 2.2
        if not default_domain:
            x = (x - domain[0]) / (domain[1] - domain[0])
        x = x.nan_to_num(0.0).to(image.dtype)
        return self.strength * x + (1 - self.strength) * image if self.strength < 1.0 else x


# the sRGB <-> colour space conversions ImageColorMatch+ goes through (kornia.color's formulas)
RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
RGB_TO_YUV = ((0.299, 0.587, 0.114), (-0.147, -0.289, 0.436), (0.615, -0.515, -0.100))
D65_WHITE = (0.95047, 1.0, 1.08883)


def _matrix(x, rows, inverse: bool = False):
    """A 3x3 colour matrix applied to NCHW pixels (its inverse with `inverse`)."""
    import torch
    m = torch.tensor(rows, dtype=torch.float64)
    m = torch.linalg.inv(m) if inverse else m
    return torch.einsum("ij,njhw->nihw", m.to(x.dtype), x)


def _linear(x):
    """sRGB values made linear."""
    import torch
    return torch.where(x > 0.04045, ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, x / 12.92)


def _srgb(x):
    """Linear values made sRGB."""
    import torch
    return torch.where(x > 0.0031308, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, 12.92 * x)


def _white(x):
    import torch
    return torch.tensor(D65_WHITE, dtype=x.dtype).view(1, 3, 1, 1)


def _uv_white():
    xw, yw, zw = D65_WHITE
    return 4 * xw / (xw + 15 * yw + 3 * zw), 9 * yw / (xw + 15 * yw + 3 * zw)


def to_color_space(x, space: str):
    """NCHW sRGB pixels in one of ImageColorMatch+'s colour spaces: CIE LAB and LUV (D65, from
    linear light), YCbCr (JPEG's, offsets 0.5), YUV, XYZ (of the sRGB values as they are, as
    kornia's rgb_to_xyz takes them) or RGB itself."""
    import torch
    if space == "RGB":
        return x
    if space == "XYZ":
        return _matrix(x, RGB_TO_XYZ)
    if space == "YUV":
        return _matrix(x, RGB_TO_YUV)
    if space == "YCbCr":
        r, g, b = x.unbind(1)
        y = 0.299 * r + 0.587 * g + 0.114 * b
        return torch.stack([y, (b - y) * 0.564 + 0.5, (r - y) * 0.713 + 0.5], 1)
    xyz = _matrix(_linear(x), RGB_TO_XYZ)
    if space == "LAB":
        t = xyz / _white(x)
        f = torch.where(t > 0.008856, t.clamp(min=0.008856) ** (1 / 3), 7.787 * t + 4 / 29)
        fx, fy, fz = f.unbind(1)
        return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)
    cx, cy, cz = xyz.unbind(1)  # LUV
    lightness = torch.where(cy > 0.008856, 116 * cy.clamp(min=0.008856) ** (1 / 3) - 16, 903.3 * cy)
    u_w, v_w = _uv_white()
    denominator = cx + 15 * cy + 3 * cz + 1e-12
    return torch.stack([lightness, 13 * lightness * (4 * cx / denominator - u_w),
                        13 * lightness * (9 * cy / denominator - v_w)], 1)


def from_color_space(x, space: str):
    """to_color_space undone (back to NCHW sRGB, not clamped)."""
    import torch
    if space == "RGB":
        return x
    if space == "XYZ":
        return _matrix(x, RGB_TO_XYZ, inverse=True)
    if space == "YUV":
        return _matrix(x, RGB_TO_YUV, inverse=True)
    if space == "YCbCr":
        y, cb, cr = x[:, 0], x[:, 1] - 0.5, x[:, 2] - 0.5
        return torch.stack([y + 1.4025245442 * cr, y - 0.7144034731 * cr - 0.3443401356 * cb, y + 1.7730496454 * cb], 1)
    if space == "LAB":
        lightness, a, b = x.unbind(1)
        fy = (lightness + 16) / 116
        f = torch.stack([a / 500 + fy, fy, (fy - b / 200).clamp(min=0)], 1)
        xyz = torch.where(f > 0.2068966, f ** 3, (f - 4 / 29) / 7.787) * _white(x)
    else:  # LUV
        lightness, u, v = x.unbind(1)
        y = torch.where(lightness > 7.999625, ((lightness + 16) / 116) ** 3, lightness / 903.3)
        u_w, v_w = _uv_white()
        a = u_w + u / (13 * lightness + 1e-12)
        d = v_w + v / (13 * lightness + 1e-12)
        c = 3 * y * (5 * d - 3)
        z = ((a - 4) * c - 15 * a * d * y) / (12 * d + 1e-12)
        xyz = torch.stack([-(c / (d + 1e-12) + 3 * z), y, z], 1)
    return _srgb(_matrix(xyz, RGB_TO_XYZ, inverse=True))


def mean_std(x, mask=None):
    """Each picture's and channel's mean and standard deviation (NCHW): over all pixels (the sample
    deviation, n - 1), or over those where the mask is 1 (the population deviation)."""
    if mask is None:
        return x.mean((2, 3), keepdim=True), x.std((2, 3), keepdim=True)
    count = mask.sum((2, 3), keepdim=True).clamp(min=1e-6)
    masked = x * mask
    mean = (masked.sum((2, 3), keepdim=True) / count).nan_to_num()
    return mean, (((masked - mean) ** 2 * mask).sum((2, 3), keepdim=True) / count).nan_to_num().sqrt()


class ImageColorMatch(Node):
    """Match the images' colours to the reference's, as ComfyUI_essentials' Image Color Match does:
    in the colour space chosen, each channel is shifted and scaled to the reference's mean and
    standard deviation ((x - mean) / std * reference std + reference mean), blended with the
    original by `factor`, converted back and clamped to 0..1. With reference_mask, the
    reference's statistics come from where the mask is over 0.5 only (resized bicubic,
    centre-cropped, to the reference). The reference is one image, or one per image. The colour
    spaces follow kornia.color's formulas (LAB and LUV from linear light, D65). `device` and
    `batch_size` only place and split the work in the pack: they do nothing here."""
    category = "essentials/image processing"
    image: IMAGE
    reference: IMAGE
    color_space: str = Choice(("LAB", "YCbCr", "RGB", "LUV", "YUV", "XYZ"), "LAB")
    factor: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    device: str = Choice(DEVICES, "auto")
    batch_size: int = Int(0, min=0, max=1024)
    reference_mask: MASK = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageColorMatch+",))

    def run(self):
        image, reference = _image(self.image, "image"), _image(self.reference, "reference")
        for name, x in (("image", image), ("reference", reference)):
            if x.shape[-1] != 3:
                raise NodeInputError(name, f"{x.shape[-1]} channels: expected RGB images")
        if reference.shape[0] not in (1, image.shape[0]):
            raise NodeInputError("reference", f"a batch of {reference.shape[0]}: expected one image or one per "
                                              f"image ({image.shape[0]})")
        reference = reference.movedim(-1, 1).float()
        mask = None
        if self.reference_mask is not None:
            mask = _mask(self.reference_mask, "reference_mask")
            if mask.shape[0] != reference.shape[0]:
                raise NodeInputError("reference_mask", f"{mask.shape[0]} masks; the reference has "
                                                       f"{reference.shape[0]} images")
            mask = (mask > 0.5).float()
            if mask.shape[1:] != reference.shape[2:]:
                mask = _resized_mask(mask, reference.shape[3], reference.shape[2])
            mask = mask[:, None]
        reference_mean, reference_std = mean_std(to_color_space(reference, self.color_space), mask)
        x = to_color_space(image.movedim(-1, 1).float(), self.color_space)
        mean, std = mean_std(x)
        matched = ((x - mean) / std).nan_to_num() * reference_std.nan_to_num() + reference_mean
        matched = self.factor * matched + (1 - self.factor) * x
        return from_color_space(matched, self.color_space).movedim(1, -1).clamp(0, 1).to(image.dtype)


def lab_statistics(lab, mask=None):
    """Image Color Match Adobe's statistics of a LAB batch, over all its pictures together:
    (mean L, std L, mean a, mean b, std of a and b together); with a mask (1 or 0 per pixel), over
    the pixels it covers (population deviations), else sample deviations of all pixels."""
    lightness, a, b = lab[:, :1], lab[:, 1:2], lab[:, 2:]
    if mask is None:
        return lightness.mean(), lightness.std(), a.mean(), b.mean(), (a.var() + b.var()).sqrt()
    count = mask.sum()  # the pack counts the mask's pixels once, whatever the batches
    mean_l, mean_a, mean_b = ((v * mask).sum() / count for v in (lightness, a, b))
    std_l = (((lightness - mean_l) ** 2 * mask).sum() / count).sqrt()
    std_ab = ((((a - mean_a) ** 2 + (b - mean_b) ** 2) * mask).sum() / count).sqrt()
    return mean_l, std_l, mean_a, mean_b, std_ab


class ImageColorMatchAdobe(Node):
    """Match the images' colours to the reference's as ComfyUI_essentials' Image Color Match Adobe
    does (after Adobe's "Match Color"), in LAB over the whole batch: lightness is shifted and
    scaled to the reference's mean and deviation, times luminance_factor; the images' mean a and b
    are taken away times neutralization_factor (removing a colour cast), and a and b scaled by the
    deviations' ratio times color_intensity_factor; the result (clamped to 0..1) is blended with
    the images by fade_factor. With reference_mask, the reference's statistics come from where the
    mask (resized, nearest) is over 0.5. The pack always works in LAB: color_space does nothing
    there, nor here (nor `device`)."""
    category = "essentials/image processing"
    image: IMAGE
    reference: IMAGE
    color_space: str = Choice(("RGB", "LAB"), "RGB")
    luminance_factor: float = Float(1.0, min=0.0, max=2.0, step=0.05)
    color_intensity_factor: float = Float(1.0, min=0.0, max=2.0, step=0.05)
    fade_factor: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    neutralization_factor: float = Float(0.0, min=0.0, max=1.0, step=0.05)
    device: str = Choice(DEVICES, "auto")
    reference_mask: MASK = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageColorMatchAdobe+",))

    def run(self):
        import torch
        import torch.nn.functional as F
        image, reference = _image(self.image, "image"), _image(self.reference, "reference")
        for name, x in (("image", image), ("reference", reference)):
            if x.shape[-1] != 3:
                raise NodeInputError(name, f"{x.shape[-1]} channels: expected RGB images")
        reference = reference.movedim(-1, 1).float()
        mask = None
        if self.reference_mask is not None:
            mask = _mask(self.reference_mask, "reference_mask").float()
            if mask.shape[0] not in (1, reference.shape[0]) and reference.shape[0] != 1:
                raise NodeInputError("reference_mask", f"{mask.shape[0]} masks; the reference has "
                                                       f"{reference.shape[0]} images")
            mask = (F.interpolate(mask[:, None], size=reference.shape[2:], mode="nearest") > 0.5).float()
        source = lab_statistics(to_color_space(reference, "LAB"), mask)
        x = image.movedim(-1, 1).float()
        lab = to_color_space(x, "LAB")
        target = lab_statistics(lab)
        lightness = (lab[:, :1] - target[0]) * (source[1] / target[1]) * self.luminance_factor + source[0]
        ab_scale = source[4] / target[4] * self.color_intensity_factor
        a = (lab[:, 1:2] - self.neutralization_factor * target[2]) * ab_scale
        b = (lab[:, 2:] - self.neutralization_factor * target[3]) * ab_scale
        matched = from_color_space(torch.cat([lightness, a, b], 1), "LAB").clamp(0, 1)
        out = self.fade_factor * matched + (1 - self.fade_factor) * x
        return out.movedim(1, -1).clamp(0, 1).to(image.dtype)


class ImagePreviewFromLatent(Node):
    """Decode a latent with the VAE, show the images and give them on, as ComfyUI_essentials'
    Image Preview From Latent does, with their width and height and an empty 64x64 mask. A
    tile_size above 0 decodes in tiles of that many pixels (at least 320, as in the pack) with
    graphflow's tiled decoding (VAE Decode's), overlapping by 128 pixels as the pack's call of
    ComfyUI's decode_tiled does (16 latent pixels); below 512 the overlap is cut to a quarter of
    the tile, as VAE Decode (Tiled) cuts it, where the pack keeps 128. The pack's `image` widget
    can hold an image pasted in its editor (clipspace) to give instead: that is not supported
    here, only "none"."""
    category = "essentials/image utils"
    output_node = True
    latent: LATENT
    vae: VAE
    tile_size: int = Int(0, min=0, max=4096, step=64)
    image: str = Choice(("none",), "none")
    outputs = {"IMAGE": IMAGE, "MASK": MASK, "width": INT, "height": INT}
    comfy = ComfyAlias(("ImagePreviewFromLatent+",))

    def run(self):
        import torch
        tiled = self.tile_size > 0
        image = _core(VAEDecode, {"samples": "latent"}, samples=self.latent, vae=self.vae, tiled=tiled,
                      tile_size=max(self.tile_size, 320), overlap=128)  # decode_tiled's 16 latent pixels
        preview(image)
        return image, torch.zeros((1, 64, 64)), image.shape[2], image.shape[1]


# -- mask -------------------------------------------------------------------------------------


class MaskBlur(Node):
    """Blur masks with a Gaussian `amount` pixels wide, as ComfyUI_essentials' Mask Blur does
    (torchvision's gaussian_blur: an even amount is made odd, sigma 0.3 ((amount - 1) / 2 - 1) +
    0.8, borders mirrored). `device` is kept for the pack's saves and does nothing here."""
    category = "essentials/mask"
    mask: MASK
    amount: int = Int(6, min=0, max=256)
    device: str = Choice(DEVICES, "auto")
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskBlur+",))

    def run(self):
        mask = _mask(self.mask, "mask")
        return mask if self.amount == 0 else torchvision_blur(mask, self.amount, "amount")


class MaskFlip(Node):
    """Mirror masks as ComfyUI_essentials' Mask Flip does: "x" left-right, "y" upside down, "xy"
    both."""
    category = "essentials/mask"
    mask: MASK
    axis: str = Choice(("x", "y", "xy"), "x")
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskFlip+",))

    def run(self):
        return _flip(_mask(self.mask, "mask"), self.axis)


class EssentialsMaskPreview(MaskPreview):
    """Show masks in the editor as grey images (white = 1), as ComfyUI_essentials' Mask Preview
    does (the core Mask Preview's)."""
    category = "essentials/mask"
    comfy = ComfyAlias(("MaskPreview+",))


def _resized_mask(mask, width: int, height: int):
    """A mask batch resized (bicubic, centre-cropped) to width x height, as the pack resizes them
    through an image's channels."""
    return _resize_image(mask[..., None], width, height, "bicubic", crop=True)[..., 0]


class MaskBatch(Node):
    """Join two mask batches, as ComfyUI_essentials' Mask Batch does: mask2 is resized (bicubic,
    centre-cropped) to mask1's size when they differ."""
    category = "essentials/mask batch"
    mask1: MASK
    mask2: MASK
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskBatch+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return joined_batches([inputs.get("mask1"), inputs.get("mask2")])

    def run(self):
        import torch
        first, second = _mask(self.mask1, "mask1"), _mask(self.mask2, "mask2")
        if second.shape[1:] != first.shape[1:]:
            second = _resized_mask(second, first.shape[2], first.shape[1])
        return torch.cat([first, second.to(first.dtype)])


class MaskExpandBatch(Node):
    """Make the mask batch `size` long, as ComfyUI_essentials' Mask Expand Batch does (Image
    Expand Batch's methods)."""
    category = "essentials/mask batch"
    mask: MASK
    size: int = Int(16, min=1, max=BATCH_LIMIT)
    method: str = Choice(("expand", "repeat all", "repeat first", "repeat last"), "expand")
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskExpandBatch+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return expanded(inputs.get("mask"), widgets.get("size"))

    def run(self):
        mask = _mask(self.mask, "mask")
        if mask.shape[0] == 0:
            raise NodeInputError("mask", "an empty batch: expected at least one mask to expand")
        return mask[expand_indexes(mask.shape[0], self.size, self.method)]


class MaskBoundingBox(Node):
    """Crop masks (and an image) to the box around every set pixel of the whole mask batch, grown
    by `padding` pixels (inside the mask), as ComfyUI_essentials' Mask Bounding Box does. The
    mask is first blurred by `blur` (Mask Blur's); without an image the mask itself is cropped as
    the image; an image of another size is resized (bicubic, centre-cropped) to the mask's and
    its batch cut or lengthened (its last image repeated) to the masks'. Gives the crops and the
    box's x, y, width and height."""
    category = "essentials/mask"
    mask: MASK
    padding: int = Int(0, min=0, max=4096)
    blur: int = Int(0, min=0, max=256)
    image_optional: IMAGE = None
    outputs = {"MASK": MASK, "IMAGE": IMAGE, "x": INT, "y": INT, "width": INT, "height": INT}
    comfy = ComfyAlias(("MaskBoundingBox+",))

    def run(self):
        import torch
        mask = _mask(self.mask, "mask")
        _, mh, mw = mask.shape
        if self.image_optional is None:
            image = mask[..., None].expand(-1, -1, -1, 3)
        else:
            image = _image(self.image_optional, "image_optional")
            if image.shape[1:3] != (mh, mw):
                image = _resize_image(image, mw, mh, "bicubic", crop=True)
            image = fit_batch(image, mask.shape[0])
        if self.blur > 0:
            mask = torchvision_blur(mask, self.blur, "blur")
        _, ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(xs) == 0:
            raise NodeInputError("mask", "an empty mask: there is no box around nothing")
        x1, x2 = max(0, xs.min().item() - self.padding), min(mw, xs.max().item() + 1 + self.padding)
        y1, y2 = max(0, ys.min().item() - self.padding), min(mh, ys.max().item() + 1 + self.padding)
        return mask[:, y1:y2, x1:x2], image[:, y1:y2, x1:x2], x1, y1, x2 - x1, y2 - y1


class MaskFromColor(Node):
    """A mask of the pixels of one colour, as ComfyUI_essentials' Mask From Color does: 1 where
    each of the pixel's 8-bit channels (rounded) is within `threshold` of red, green and blue."""
    category = "essentials/mask"
    image: IMAGE
    red: int = Int(255, min=0, max=255)
    green: int = Int(255, min=0, max=255)
    blue: int = Int(255, min=0, max=255)
    threshold: int = Int(0, min=0, max=127)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskFromColor+",))

    def run(self):
        import torch
        image = _image(self.image, "image")
        if image.shape[-1] < 3:
            raise NodeInputError("image", f"{image.shape[-1]} channels: expected RGB images")
        pixels = (image[..., :3].clamp(0, 1) * 255).round()
        color = torch.tensor([self.red, self.green, self.blue], dtype=pixels.dtype)
        low, high = (color - self.threshold).clamp(min=0), (color + self.threshold).clamp(max=255)
        return ((pixels >= low) & (pixels <= high)).all(-1).float()


class MaskFromRGBCMYBW(Node):
    """Masks of the red, green, blue, cyan, magenta, yellow, black and white pixels, as
    ComfyUI_essentials' Mask From RGB/CMY/BW does: a channel counts as on at 1 - threshold or
    more, as off below threshold (black: at most the thresholds; magenta's blue: above 1 -
    threshold_b, as in the pack)."""
    category = "essentials/mask"
    image: IMAGE
    threshold_r: float = Float(0.15, min=0.0, max=1.0, step=0.01)
    threshold_g: float = Float(0.15, min=0.0, max=1.0, step=0.01)
    threshold_b: float = Float(0.15, min=0.0, max=1.0, step=0.01)
    outputs = {"red": MASK, "green": MASK, "blue": MASK, "cyan": MASK, "magenta": MASK, "yellow": MASK,
               "black": MASK, "white": MASK}
    comfy = ComfyAlias(("MaskFromRGBCMYBW+",))

    def run(self):
        image = _image(self.image, "image")
        if image.shape[-1] < 3:
            raise NodeInputError("image", f"{image.shape[-1]} channels: expected RGB images")
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        tr, tg, tb = self.threshold_r, self.threshold_g, self.threshold_b
        on_r, on_g, on_b = r >= 1 - tr, g >= 1 - tg, b >= 1 - tb
        off_r, off_g, off_b = r < tr, g < tg, b < tb
        masks = (on_r & off_g & off_b, off_r & on_g & off_b, off_r & off_g & on_b,
                 off_r & on_g & on_b, on_r & off_g & (b > 1 - tb), on_r & on_g & off_b,
                 (r <= tr) & (g <= tg) & (b <= tb), on_r & on_g & on_b)
        return tuple(m.float() for m in masks)


class MaskFromBatch(Node):
    """Take `length` masks from `start` on, as ComfyUI_essentials' Mask From Batch does; a start
    past the batch takes its last mask."""
    category = "essentials/mask batch"
    mask: MASK
    start: int = Int(0, min=0, max=INT_LIMIT)
    length: int = Int(1, min=1, max=INT_LIMIT)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskFromBatch+",))

    def run(self):
        mask = _mask(self.mask, "mask")
        return mask[batch_slice(mask.shape[0], self.start, self.length)]


MASK_LIST_LIMIT = 4096  # masks Mask From List makes at most (the pack sets none); the server's max_batch is lower


def written_values(text) -> int:
    """How many comma-separated values a str_values text holds."""
    return len(text.split(",")) if isinstance(text, str) and text.strip() else 0


class MaskFromList(Node):
    """Solid width x height masks, one per value, as ComfyUI_essentials' Mask From List does: the
    values linked in (a number or a list of numbers) then those written in str_values (separated
    by commas), each clamped to 0..1. At most 4096 masks (the pack sets no limit)."""
    category = "essentials/mask"
    width: int = Int(32, min=0, max=MAX_SIZE, step=8, resource="width")
    height: int = Int(32, min=0, max=MAX_SIZE, step=8, resource="height")
    values: ANY = None
    str_values: str = Text("", multiline=True)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskFromList+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        width, height = widgets.get("width"), widgets.get("height")
        if not isinstance(width, int) or not isinstance(height, int):
            return Estimate(None)
        # linked values can't be counted before the run: the written ones are a lower bound
        return Estimate(Size(max(written_values(widgets.get("str_values")), 1), height, width))

    def run(self):
        import torch
        given = [] if self.values is None else list(self.values) if isinstance(self.values, (list, tuple)) \
            else [self.values]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given):
            raise NodeInputError("values", f"expected numbers, got {given!r}")
        if self.str_values.strip() != "":
            try:
                given += [float(v) for v in self.str_values.split(",")]
            except ValueError:
                raise NodeInputError("str_values", f"{self.str_values!r}: expected numbers separated by commas, "
                                                   f"like \"0.0, 0.5, 1.0\"") from None
        if not given:
            raise NodeInputError("str_values", "no values: link some into values or write them here")
        if len(given) > MASK_LIST_LIMIT:
            raise NodeInputError("values" if self.values is not None else "str_values",
                                 f"{len(given)} values: expected at most {MASK_LIST_LIMIT} (one mask each)")
        levels = torch.tensor(given, dtype=torch.float32).clamp(0.0, 1.0)
        return levels.view(-1, 1, 1).expand(-1, self.height, self.width)  # a view, as the pack's: no copy per mask


class MaskSmooth(Node):
    """Smooth a mask's edges, as ComfyUI_essentials' Mask Smooth does: the mask cut at 0.5 is
    blurred `amount` pixels wide (Mask Blur's Gaussian) and cut at 0.5 again (exactly 0.5 gives
    0), so the result is 0 or 1."""
    category = "essentials/mask"
    mask: MASK
    amount: int = Int(0, min=0, max=127)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskSmooth+",))

    def run(self):
        mask = _mask(self.mask, "mask")
        return mask if self.amount == 0 else binary_smooth(mask, self.amount, "amount")


class MaskFix(Node):
    """Clean up masks, as ComfyUI_essentials' Mask Fix does, in this order: grey erosion
    (erode_dilate < 0) or dilation (> 0) over a square of that many pixels, grey closing over
    fill_holes pixels, grey opening over remove_isolated_pixels pixels (scipy.ndimage's), Mask
    Smooth's smoothing by `smooth`, then Mask Blur's blur by `blur`."""
    category = "essentials/mask"
    mask: MASK
    erode_dilate: int = Int(0, min=-256, max=256)
    fill_holes: int = Int(0, min=0, max=128)
    remove_isolated_pixels: int = Int(0, min=0, max=32)
    smooth: int = Int(0, min=0, max=256)
    blur: int = Int(0, min=0, max=256)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskFix+",))

    def run(self):
        import scipy.ndimage
        import torch
        mask = _mask(self.mask, "mask").float()
        fixed = []
        for m in mask.cpu().numpy():
            if self.erode_dilate < 0:
                m = scipy.ndimage.grey_erosion(m, size=(-self.erode_dilate,) * 2)
            elif self.erode_dilate > 0:
                m = scipy.ndimage.grey_dilation(m, size=(self.erode_dilate,) * 2)
            if self.fill_holes > 0:
                m = scipy.ndimage.grey_closing(m, size=(self.fill_holes,) * 2)
            if self.remove_isolated_pixels > 0:
                m = scipy.ndimage.grey_opening(m, size=(self.remove_isolated_pixels,) * 2)
            fixed.append(torch.from_numpy(m.copy()))
        out = torch.stack(fixed)
        if self.smooth > 0:
            out = binary_smooth(out, self.smooth, "smooth")
        if self.blur > 0:
            out = torchvision_blur(out, self.blur, "blur")
        return out.float()


TRANSITIONS = ("horizontal slide", "vertical slide", "horizontal bar", "vertical bar", "center box",
               "horizontal door", "vertical door", "circle", "fade")
TIMINGS = {"linear": lambda p: p, "in": lambda p: p * p, "out": lambda p: 1 - (1 - p) ** 2,
           "in-out": lambda p: 2 * p * p if p < 0.5 else 1 - 2 * (1 - p) ** 2}


def transition_frame(kind: str, width: int, height: int, progress: float):
    """One frame of TransitionMask+ at `progress` (0..1)."""
    import torch
    frame = torch.zeros((height, width))
    if kind == "horizontal slide":
        frame[:, :round(width * progress)] = 1.0
    elif kind == "vertical slide":
        frame[:round(height * progress)] = 1.0
    elif kind == "center box":
        box_w, box_h = round(width * progress), round(height * progress)
        x, y = (width - box_w) // 2, (height - box_h) // 2
        frame[y:y + box_h, x:x + box_w] = 1.0
    elif kind == "circle":
        radius = math.ceil(math.sqrt(width ** 2 + height ** 2) * progress / 2)
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                indexing="ij")
        frame[(xs - width // 2) ** 2 + (ys - height // 2) ** 2 <= radius ** 2] = 1.0
    elif kind == "horizontal bar":
        bar = round(height * progress)
        y = (height - bar) // 2
        frame[y:y + bar] = 1.0
    elif kind == "vertical bar":
        bar = round(width * progress)
        x = (width - bar) // 2
        frame[:, x:x + bar] = 1.0
    elif kind == "horizontal door":
        bar = math.ceil(height * progress / 2)
        if bar > 0:
            frame[:bar] = frame[-bar:] = 1.0
    elif kind == "vertical door":
        bar = math.ceil(width * progress / 2)
        if bar > 0:
            frame[:, :bar] = frame[:, -bar:] = 1.0
    else:  # fade
        frame[:] = progress
    return frame


class TransitionMask(Node):
    """A batch of `frames` masks animating a transition, as ComfyUI_essentials' Transition Mask
    does: empty before start_frame, the transition from start_frame up to end_frame (at most
    `frames`), its progress i / (its length - 1) shaped by timing_function ("in" p², "out" 1 - (1 -
    p)², "in-out" both halves), then full masks to the end. A transition of one frame fails in the
    pack (it divides by zero) and is refused here."""
    category = "essentials/mask"
    width: int = Int(512, min=1, max=MAX_SIZE, resource="width")
    height: int = Int(512, min=1, max=MAX_SIZE, resource="height")
    frames: int = Int(16, min=1, max=9999)
    start_frame: int = Int(0, min=0, max=BATCH_LIMIT)
    end_frame: int = Int(9999, min=0, max=INT_LIMIT)
    transition_type: str = Choice(TRANSITIONS, "horizontal slide")
    timing_function: str = Choice(tuple(TIMINGS), "linear")
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("TransitionMask+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        values = [widgets.get(k) for k in ("width", "height", "frames", "start_frame", "end_frame")]
        if not all(isinstance(v, int) for v in values):  # a linked widget: known only when it runs
            return Estimate(None)
        width, height, frames, start, end = values
        end = min(frames, end)
        return Estimate(Size(start + max(end - start, 0) + frames - end, height, width))

    def run(self):
        import torch
        end = min(self.frames, self.end_frame)
        length = end - self.start_frame
        if length == 1:
            raise NodeInputError("end_frame", f"a transition of one frame ({self.start_frame} to {end}): expected "
                                              f"two or more, or none")
        timing = TIMINGS[self.timing_function]
        out = [torch.zeros((self.height, self.width))] * self.start_frame
        out += [transition_frame(self.transition_type, self.width, self.height, timing(i / (length - 1)))
                for i in range(length)]
        out += [torch.ones((self.height, self.width))] * (self.frames - end)
        if not out:
            raise NodeInputError("start_frame", f"{self.start_frame} is past the {self.frames} frames: no masks")
        return torch.stack(out)
