"""Mask nodes: load, compose, convert, invert, threshold, grow, feather, solid, crop, join as alpha.
A MASK is [B, H, W] in 0..1."""

from __future__ import annotations

import hashlib
import math


from graphflow.api import (IMAGE, MASK, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node,
                           NodeInputError, Size, check_interrupted, folders)

MAX_SIZE = 16384

COMPOSE_OPERATIONS = {
    "multiply": lambda d, s: d * s,
    "add": lambda d, s: d + s,
    "subtract": lambda d, s: d - s,
    "and": lambda d, s: (d.round().bool() & s.round().bool()).float(),
    "or": lambda d, s: (d.round().bool() | s.round().bool()).float(),
    "xor": lambda d, s: (d.round().bool() ^ s.round().bool()).float(),
    "min": lambda d, s: d.minimum(s),
    "max": lambda d, s: d.maximum(s),
}


def window_max(values, side: int, dim: int):
    """The maximum over a window `side` long centred on each place along dim, nothing counted
    outside (as a max-pool's padding): the window's maxima built by doubling (the maxima of 1,
    2, 4 ... places), the last two overlapping, so each place costs about log2(side) comparisons,
    and a stop asked for is checked between doublings. Maxima are exact: the same values as a
    max-pool of that window, bit for bit."""
    import torch
    half, length = side // 2, values.shape[dim]
    edge = list(values.shape)
    edge[dim] = half
    outside = torch.full(edge, -math.inf, dtype=values.dtype, device=values.device)
    spans, span = torch.cat([outside, values, outside], dim), 1
    while span * 2 <= side:
        check_interrupted()
        count = spans.shape[dim] - span
        spans, span = torch.maximum(spans.narrow(dim, 0, count), spans.narrow(dim, span, count)), span * 2
    return torch.maximum(spans.narrow(dim, 0, length), spans.narrow(dim, side - span, length))


class MaskCompose(Node):
    """Combine `source` into `destination` with its top-left corner at (x, y), by the chosen
    operation, where the two overlap; the result is clamped to 0..1. and/or/xor treat
    values above 0.5 as set."""
    category = "mask"
    destination: MASK
    source: MASK
    x: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    y: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    operation: str = Choice(list(COMPOSE_OPERATIONS), "multiply")
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("MaskComposite",))

    def run(self):
        dest, src = self.destination, self.source
        if dest.shape[0] != src.shape[0] and 1 not in (dest.shape[0], src.shape[0]):
            raise NodeInputError("source", f"batch of {src.shape[0]} masks can't combine with {dest.shape[0]}")
        batch = max(dest.shape[0], src.shape[0])
        out = dest.expand(batch, -1, -1).clone()
        src = src.expand(batch, -1, -1)
        H, W = out.shape[1:]
        h, w = src.shape[1:]
        top, left = max(self.y, 0), max(self.x, 0)
        bottom, right = min(self.y + h, H), min(self.x + w, W)
        if bottom > top and right > left:
            region = out[:, top:bottom, left:right]
            part = src[:, top - self.y:bottom - self.y, left - self.x:right - self.x]
            out[:, top:bottom, left:right] = COMPOSE_OPERATIONS[self.operation](region, part)
        return out.clamp(0, 1)


class ImageToMask(Node):
    """Take one channel of an image as a mask."""
    category = "mask"
    image: IMAGE
    channel: str = Choice(["red", "green", "blue", "alpha"], "red")
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("ImageToMask",))

    def run(self):
        index = ["red", "green", "blue", "alpha"].index(self.channel)
        if index >= self.image.shape[-1]:
            raise NodeInputError("channel", f"the image has {self.image.shape[-1]} channels, no {self.channel}")
        return self.image[..., index].clone()


class MaskToImage(Node):
    """Show a mask as a grey image."""
    category = "mask"
    mask: MASK
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("MaskToImage",))

    def run(self):
        return self.mask[..., None].expand(-1, -1, -1, 3).clone()


class InvertMask(Node):
    """1 - mask."""
    category = "mask"
    mask: MASK
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("InvertMask",))

    def run(self):
        return 1.0 - self.mask


def _dilate(mask: torch.Tensor, tapered: bool) -> torch.Tensor:
    """One 3x3 grey dilation of [B, 1, H, W]; tapered uses the cross so corners round off."""
    import torch
    import torch.nn.functional as F
    if not tapered:
        return F.max_pool2d(mask, 3, stride=1, padding=1)
    padded = F.pad(mask, (1, 1, 1, 1), value=float("-inf"))
    return torch.stack([mask, padded[..., :-2, 1:-1], padded[..., 2:, 1:-1],
                        padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]]).amax(0)


class GrowMask(Node):
    """Grow the mask by `expand` pixels (negative shrinks it). Tapered corners grow with a
    cross-shaped step, giving rounded rather than square corners."""
    category = "mask"
    mask: MASK
    expand: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    tapered_corners: bool = Bool(True)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("GrowMask",))

    def run(self):
        return grow_mask(self.mask, self.expand, self.tapered_corners)


def grow_mask(mask: torch.Tensor, pixels: int, tapered: bool = True) -> torch.Tensor:
    x = mask[:, None].float()
    # after H + W steps every pixel holds the max (or min) of the whole mask, which no further
    # step changes: the 3x3 square and the cross both reach H + W - 2 pixels away by then
    for _ in range(min(abs(pixels), sum(x.shape[-2:]))):
        # Erosion is dilation of the negation (exact, unlike 1 - dilate(1 - x), so values other
        # than 0 and 1 come out as scipy's grey_erosion in ComfyUI gives them).
        x = _dilate(x, tapered) if pixels > 0 else -_dilate(-x, tapered)
    return x[:, 0]


class FeatherMask(Node):
    """Fade the mask to 0 linearly over the given number of pixels at each border (at most the
    mask's width or height): the border pixel keeps 1/n of its value, the n-th pixel in all of it.
    Right and bottom fade as ComfyUI's fixed node does (2026); its v0.3.x versions were off by
    one there (the first column / row got the outermost factor and the far edge stayed at 2/n)."""
    category = "mask"
    mask: MASK
    left: int = Int(0, min=0, max=MAX_SIZE)
    top: int = Int(0, min=0, max=MAX_SIZE)
    right: int = Int(0, min=0, max=MAX_SIZE)
    bottom: int = Int(0, min=0, max=MAX_SIZE)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("FeatherMask",))

    def run(self):
        import torch
        _, H, W = self.mask.shape

        def ramp(n, size):
            # Pixel i (0 = at the border) keeps (i + 1) / k of its value, for i < k; a feather
            # wider than the mask is cut to its size first (ComfyUI's), so the ramp still ends at 1.
            r = torch.ones(size)
            k = min(n, size)
            r[:k] = (torch.arange(k, dtype=torch.float32) + 1) / k
            return r

        across = ramp(self.left, W) * ramp(self.right, W).flip(0)
        down = ramp(self.top, H) * ramp(self.bottom, H).flip(0)
        return self.mask * down[:, None] * across[None, :]


class SolidMask(Node):
    """A mask of one value everywhere."""
    category = "mask"
    value: float = Float(1.0, min=0.0, max=1.0)
    width: int = Int(512, min=1, max=MAX_SIZE, resource="width")
    height: int = Int(512, min=1, max=MAX_SIZE, resource="height")
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("SolidMask",))

    def run(self):
        import torch
        return torch.full((1, self.height, self.width), self.value)


class CropMask(Node):
    """Cut a rectangle out of the mask."""
    category = "mask"
    mask: MASK
    x: int = Int(0, min=0, max=MAX_SIZE)
    y: int = Int(0, min=0, max=MAX_SIZE)
    width: int = Int(512, min=1, max=MAX_SIZE)
    height: int = Int(512, min=1, max=MAX_SIZE)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("CropMask",))

    @classmethod
    def estimate(cls, widgets, inputs):
        mask = inputs.get("mask")
        if mask is None or not isinstance(widgets.get("width"), int) or not isinstance(widgets.get("height"), int):
            return Estimate(mask)
        return Estimate(Size(mask.batch, max(1, min(widgets["height"], mask.height - widgets.get("y", 0))),
                             max(1, min(widgets["width"], mask.width - widgets.get("x", 0)))))

    def run(self):
        _, H, W = self.mask.shape
        if self.x >= W or self.y >= H:
            raise NodeInputError("x", f"the crop starts at ({self.x}, {self.y}), outside the {W}x{H} mask")
        return self.mask[:, self.y:self.y + self.height, self.x:self.x + self.width].clone()


class ThresholdMask(Node):
    """1 where the mask is above `value`, else 0."""
    category = "mask"
    mask: MASK
    value: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("ThresholdMask",))

    def run(self):
        return (self.mask > self.value).float()


class JoinImageWithAlpha(Node):
    """Give images an alpha channel from a mask: alpha = 1 - mask (mask 1 = transparent, as
    LoadImage makes it). The mask is resized to the images; RGBA images come out."""
    category = "mask/compositing"
    image: IMAGE
    alpha: MASK
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("JoinImageWithAlpha",))

    def run(self):
        import torch
        import torch.nn.functional as F
        image, mask = self.image, self.alpha
        if image.ndim != 4 or mask.ndim not in (2, 3):
            raise NodeInputError("alpha", "expected an IMAGE [B, H, W, C] and a MASK [B, H, W]")
        mask = mask.reshape(-1, 1, *mask.shape[-2:]).float()
        mask = F.interpolate(mask, size=image.shape[1:3], mode="bilinear")[:, 0]
        batch = min(image.shape[0], mask.shape[0])
        return torch.cat([image[:batch, ..., :3], (1.0 - mask[:batch, ..., None]).to(image.dtype)], dim=-1)


class LoadImageMask(Node):
    """Load one channel of an image from the inputs folder as a mask. For alpha the mask is
    1 - alpha (transparent = 1, the area to repaint); an image without alpha gives zeros."""
    category = "mask"
    image: str = Choice(folders.list_inputs, upload="image", description="a file in the inputs folder")
    channel: str = Choice(["alpha", "red", "green", "blue"], "alpha")
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LoadImageMask",), folders={"image": "input"})

    @classmethod
    def fingerprint(cls, image, **widgets):
        return hashlib.sha256(folders.input_path(image).read_bytes()).hexdigest()

    def run(self):
        import torch
        import numpy as np
        from PIL import Image, ImageOps, UnidentifiedImageError
        try:
            picture = ImageOps.exif_transpose(Image.open(folders.input_path(self.image)))
        except (FileNotFoundError, UnidentifiedImageError) as e:
            raise NodeInputError("image", f"can't read {self.image!r} as an image: {e}") from None
        if picture.mode == "I":  # 16-bit greys: to 8 bits before the RGBA conversion
            picture = picture.point(lambda v: v * (1 / 255))
        band = {"alpha": 3, "red": 0, "green": 1, "blue": 2}[self.channel]
        values = np.asarray(picture.convert("RGBA"), dtype=np.float32)[..., band] / 255.0
        mask = torch.from_numpy(values.copy())
        return (1.0 - mask if self.channel == "alpha" else mask)[None]


class ImageColorToMask(Node):
    """1 where a pixel is exactly `color` (a 0xRRGGBB number, compared in 8 bits per channel), 0
    elsewhere."""
    category = "mask"
    image: IMAGE
    color: int = Int(0, min=0, max=0xFFFFFF, display="color")
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("ImageColorToMask",))

    def run(self):
        image = self.image
        if image.ndim != 4 or image.shape[-1] < 3:
            raise NodeInputError("image", "expected an RGB IMAGE [B, H, W, 3]")
        rgb = (image[..., :3].clamp(0, 1) * 255).round().long()
        packed = (rgb[..., 0] << 16) + (rgb[..., 1] << 8) + rgb[..., 2]
        return (packed == self.color).float()


class MaskPreview(Node):
    """Show masks in the editor as grey images (white = 1), without keeping them."""
    category = "mask"
    output_node = True
    mask: MASK
    comfy = ComfyAlias(("MaskPreview",))

    def run(self):
        from nodes.image import preview
        mask = self.mask
        preview(mask.reshape(-1, *mask.shape[-2:])[..., None].expand(-1, -1, -1, 3))


# Porter and Duff's operators on premultiplied colours: (source colour, source alpha, destination
# colour, destination alpha) -> (colour, alpha). DARKEN, LIGHTEN and OVERLAY are ComfyUI's forms.
PORTER_DUFF = {
    "ADD": lambda s, sa, d, da: ((s + d).clamp(0, 1), (sa + da).clamp(0, 1)),
    "CLEAR": lambda s, sa, d, da: (d * 0, da * 0),
    "DARKEN": lambda s, sa, d, da: ((1 - da) * s + (1 - sa) * d + s.minimum(d), sa + da - sa * da),
    "DST": lambda s, sa, d, da: (d, da),
    "DST_ATOP": lambda s, sa, d, da: (sa * d + (1 - da) * s, sa),
    "DST_IN": lambda s, sa, d, da: (d * sa, sa * da),
    "DST_OUT": lambda s, sa, d, da: ((1 - sa) * d, (1 - sa) * da),
    "DST_OVER": lambda s, sa, d, da: (d + (1 - da) * s, da + (1 - da) * sa),
    "LIGHTEN": lambda s, sa, d, da: ((1 - da) * s + (1 - sa) * d + s.maximum(d), sa + da - sa * da),
    "MULTIPLY": lambda s, sa, d, da: (s * d, sa * da),
    "OVERLAY": lambda s, sa, d, da: ((2 * d < da) * (2 * s * d) + (2 * d >= da) * (sa * da - 2 * (da - s) * (sa - d)),
                                     sa + da - sa * da),
    "SCREEN": lambda s, sa, d, da: (s + d - s * d, sa + da - sa * da),
    "SRC": lambda s, sa, d, da: (s, sa),
    "SRC_ATOP": lambda s, sa, d, da: (da * s + (1 - sa) * d, da),
    "SRC_IN": lambda s, sa, d, da: (s * da, sa * da),
    "SRC_OUT": lambda s, sa, d, da: ((1 - da) * s, (1 - da) * sa),
    "SRC_OVER": lambda s, sa, d, da: (s + (1 - sa) * d, sa + (1 - sa) * da),
    "XOR": lambda s, sa, d, da: ((1 - da) * s + (1 - sa) * d, (1 - da) * sa + (1 - sa) * da),
}


class PorterDuffImageComposite(Node):
    """Composite source over destination with a Porter-Duff operator (SRC_OVER is the usual
    "source on top"), each image with its alpha given as a MASK (mask 1 = transparent, as LoadImage
    gives it); outputs the image and its mask. Colours are premultiplied for the operator and
    divided back after (0 where the result is transparent). The destination's mask and the source
    are resized (bicubic, centre-cropped) to the destination. The i-th items of the four inputs go
    together, up to the shortest batch (as ComfyUI: a batch of one gives one image)."""
    category = "mask/compositing"
    source: IMAGE
    source_alpha: MASK
    destination: IMAGE
    destination_alpha: MASK
    mode: str = Choice(list(PORTER_DUFF), "DST")
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("PorterDuffImageComposite",))

    def run(self):
        import torch
        from graphflow.images import center_crop_to_aspect, resize_nchw
        inputs = {"source": self.source, "source_alpha": self.source_alpha,
                  "destination": self.destination, "destination_alpha": self.destination_alpha}
        for name, t in inputs.items():
            image = name in ("source", "destination")
            if t.ndim != (4 if image else 3):
                raise NodeInputError(name, "expected an IMAGE [B, H, W, C]" if image else "expected a MASK [B, H, W]")
        if self.source.shape[-1] != self.destination.shape[-1]:
            raise NodeInputError("source", f"{self.source.shape[-1]} channels; destination has "
                                           f"{self.destination.shape[-1]}")
        # ComfyUI composites pairs up to the shortest of the four batches (no broadcasting).
        batch = min(t.shape[0] for t in inputs.values())
        src_image, src_mask, dest_image, dest_mask = (t[:batch] for t in inputs.values())
        dest = dest_image.movedim(-1, 1).float()
        h, w = dest.shape[2:]

        def fit(x):  # NCHW to the destination's size
            if x.shape[2:] == (h, w):
                return x
            return resize_nchw(center_crop_to_aspect(x, w, h), w, h, "bicubic")

        src = fit(src_image.movedim(-1, 1).float())
        src_alpha = 1 - fit(src_mask[:, None].float())
        dest_alpha = 1 - fit(dest_mask[:, None].float())
        image, alpha = PORTER_DUFF[self.mode](src * src_alpha, src_alpha, dest * dest_alpha, dest_alpha)
        image = torch.where(alpha > 1e-5, image / alpha, torch.zeros_like(image)).clamp(0, 1)
        return image.movedim(1, -1).to(self.destination.dtype), (1 - alpha[:, 0]).clone()


class SplitImageWithAlpha(Node):
    """Split RGBA images into RGB and a mask of 1 - alpha (1 = transparent, as LoadImage gives
    it); an image without alpha gives an empty mask."""
    category = "mask/compositing"
    image: IMAGE
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("SplitImageWithAlpha",))

    def run(self):
        import torch
        image = self.image
        if image.ndim != 4:
            raise NodeInputError("image", "expected an IMAGE [B, H, W, C]")
        alpha = image[..., 3] if image.shape[-1] > 3 else torch.ones_like(image[..., 0])
        return image[..., :3].clone(), 1.0 - alpha
