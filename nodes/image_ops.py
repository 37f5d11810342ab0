"""Image postprocessing, batch and layout nodes as ComfyUI has them: blend, blur, sharpen, quantize,
morphology, picking and repeating images of a batch, stitching, resizing with padding, scaling to
a longest side, adding noise, splitting into YUV and back."""

from __future__ import annotations

from graphflow.api import (IMAGE, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size,
                           check_interrupted, repeated)
from nodes.image import MAX_SIZE, _image, _resize_image
from nodes.latent import batch_range, batch_range_estimate
from nodes.sampling import SEED_MAX

BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")
DITHERS = ("none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16")
MORPHOLOGY_OPERATIONS = ("erode", "dilate", "open", "close", "gradient", "bottom_hat", "top_hat")
STITCH_DIRECTIONS = ("right", "down", "left", "up")
STITCH_COLORS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "red": (1.0, 0.0, 0.0),
                 "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}
# ComfyUI's lists, in its order (ImageScaleToMaxDimension's names "bilinear" twice; once here).
PAD_RESIZE_METHODS = ("area", "bicubic", "nearest-exact", "bilinear", "lanczos")
MAX_DIMENSION_METHODS = ("area", "lanczos", "bilinear", "nearest-exact", "bicubic")


def _blend(a: torch.Tensor, b: torch.Tensor, mode: str) -> torch.Tensor:
    import torch
    if mode == "normal":
        return b
    if mode == "multiply":
        return a * b
    if mode == "screen":
        return 1 - (1 - a) * (1 - b)
    if mode == "overlay":
        return torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    if mode == "soft_light":  # the W3C formula, with its D(a) for the lightening half
        d = torch.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, a.sqrt())
        return torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (d - a))
    if mode == "difference":  # signed, as ComfyUI's: the final clamp keeps only a > b
        return a - b
    raise ValueError(f"unknown blend mode {mode!r}")


class ImageBlend(Node):
    """Blend image2 over image1: image1 * (1 - blend_factor) + mode(image1, image2) * blend_factor,
    clamped to 0..1. Modes: normal (image2), multiply, screen, overlay (by image1), soft_light
    (W3C) and difference (image1 - image2, so only where image1 is the brighter). image2 is
    resized (bicubic, centre-cropped) to image1's size; a batch of one blends with every image of
    the other. As in ComfyUI, the result has image1's channels: image2's alpha is dropped beside
    an RGB image1, and alpha is blended by the mode like the colours. An RGB image2 gets an opaque
    alpha beside an RGBA image1 (where ComfyUI of the catalogue's date stops with an error)."""
    category = "image/postprocessing"
    image1: IMAGE
    image2: IMAGE
    blend_factor: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    blend_mode: str = Choice(BLEND_MODES, "normal")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageBlend",))

    def run(self):
        import torch
        a, b = _image(self.image1, "image1"), _image(self.image2, "image2").to(self.image1)
        if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
            raise NodeInputError("image2", f"a batch of {b.shape[0]}; image1 has {a.shape[0]} (or give one image)")
        if b.shape[-1] > a.shape[-1]:
            b = b[..., :a.shape[-1]]
        elif b.shape[-1] == a.shape[-1] - 1:
            b = torch.cat([b, torch.ones_like(b[..., :1])], -1)
        elif b.shape[-1] != a.shape[-1]:
            raise NodeInputError("image2", f"{b.shape[-1]} channels; image1 has {a.shape[-1]}")
        if a.shape[1:3] != b.shape[1:3]:
            b = _resize_image(b, a.shape[2], a.shape[1], "bicubic", crop=True)
        return (a * (1 - self.blend_factor) + _blend(a, b, self.blend_mode) * self.blend_factor).clamp(0, 1)


def _gaussian(radius: int, sigma: float) -> torch.Tensor:
    """ComfyUI's blur weights along one axis: positions spread over -1..1 whatever the radius (so
    sigma is in units of the radius), normalised. Its 2-D kernel is the outer product of two."""
    import torch
    x = torch.linspace(-1, 1, 2 * radius + 1)
    g = torch.exp(-x * x / (2.0 * sigma * sigma))
    return g / g.sum()


def gaussian_blur(x: torch.Tensor, radius: int, sigma: float) -> torch.Tensor:
    """Blur NCHW with ComfyUI's Gaussian, the borders mirrored (reflect padding), one axis at a time."""
    return separable_blur(x, _gaussian(radius, sigma))


BLUR_BAND_VALUES = 1 << 22  # values in one band of a blur pass: a stop asked for is checked between bands
FFT_TAPS = 128  # from this many taps a blur pass multiplies FFTs (log n work a value) instead of convolving


def reflected_index(n: int, before: int, after: int):
    """Indices 0..n-1 of a row padded by `before` and `after`, mirrored about the end pixels
    (torch's "reflect", OpenCV's BORDER_REFLECT_101), mirrored on past the far end where the
    padding is wider than the row."""
    import torch
    index = torch.arange(-before, n + after)
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    index = index % period
    return torch.where(index >= n, period - index, index)


def separable_blur(x: torch.Tensor, weights: torch.Tensor, border: str = "reflect") -> torch.Tensor:
    """Blur NCHW by the 1-D `weights` along each axis in turn (a kernel that is their outer
    product, in two passes of its width instead of one of its area), borders mirrored ("reflect",
    mirrored again where the kernel is wider than the picture) or black ("zeros", as conv2d's own
    padding). An even kernel reaches one pixel
    further right / down than left / up, as kornia anchors it. Each pass runs a band of rows or
    columns at a time and checks for a stop between bands; a kernel of FFT_TAPS taps or more is
    applied as a product of FFTs in float64 (a few hundred operations a value whatever its width,
    where a convolution costs two a tap)."""
    b, c, h, w = x.shape
    flat = x.reshape(b * c, 1, h, w)
    return _blur_pass(_blur_pass(flat, weights, 3, border), weights, 2, border).reshape(b, c, h, w)


def _blur_pass(x: torch.Tensor, weights: torch.Tensor, dim: int, border: str) -> torch.Tensor:
    """One separable pass of [N, 1, H, W] along dim (3: rows, 2: columns), a band at a time: whole
    planes where one fits the band (contiguous copies), else rows or columns of one plane."""
    import torch
    import torch.nn.functional as F
    size = weights.numel()
    before, after = (size - 1) // 2, size // 2
    index = reflected_index(x.shape[dim], before, after).to(x.device)
    across = 5 - dim
    out = torch.empty_like(x)
    plane = index.numel() * x.shape[across]  # one padded plane's values
    if plane <= BLUR_BAND_VALUES:
        bands = [(0, start, min(BLUR_BAND_VALUES // plane, x.shape[0] - start))
                 for start in range(0, x.shape[0], BLUR_BAND_VALUES // plane)]
    else:
        step = max(1, BLUR_BAND_VALUES // index.numel())
        bands = [(across, (n, start), min(step, x.shape[across] - start))
                 for n in range(x.shape[0]) for start in range(0, x.shape[across], step)]
    for axis, start, length in bands:
        check_interrupted()
        source, target = x, out
        if axis != 0:  # one plane's band
            (n, start) = start
            source, target = x.narrow(0, n, 1), out.narrow(0, n, 1)
        part = source.narrow(axis, start, length)
        if border == "zeros":
            padded = F.pad(part, (before, after) if dim == 3 else (0, 0, before, after))
        else:
            padded = part.index_select(dim, index)
        target.narrow(axis, start, length).copy_(_correlate(padded, weights, dim, x.shape[dim]))
    return out


def _correlate(padded: torch.Tensor, weights: torch.Tensor, dim: int, length: int) -> torch.Tensor:
    """sum_j padded[i + j] weights[j] along dim for i < length: a convolution, or for wide kernels
    the circular correlation by FFT (the padded row is long enough that nothing wraps round)."""
    import torch
    import torch.nn.functional as F
    size = weights.numel()
    if size < FFT_TAPS:
        shape = (1, 1, 1, size) if dim == 3 else (1, 1, size, 1)
        return F.conv2d(padded, weights.reshape(shape).to(padded))
    wide = torch.float32 if padded.device.type == "mps" else torch.float64
    n = padded.shape[dim]
    kernel = torch.fft.rfft(weights.to(padded.device, wide), n=n).conj()
    kernel = kernel.reshape(-1, 1) if dim == 2 else kernel
    spectrum = torch.fft.rfft(padded.to(wide), n=n, dim=dim) * kernel
    return torch.fft.irfft(spectrum, n=n, dim=dim).narrow(dim, 0, length).to(padded.dtype)


def _check_radius(image: torch.Tensor, radius: int, name: str) -> None:
    if radius >= min(image.shape[1:3]):  # the mirrored border can't be wider than the image
        raise NodeInputError(name, f"{radius} must be smaller than the image's width and height "
                                   f"({image.shape[2]}x{image.shape[1]})")


class ImageBlur(Node):
    """Gaussian blur over a (2 * blur_radius + 1)-pixel square, borders mirrored. As in ComfyUI,
    sigma is in units of the radius (the kernel spans -1..1), so a larger radius with the same
    sigma blurs more; it equals a pixel-unit Gaussian of sigma * blur_radius cut at the radius."""
    category = "image/postprocessing"
    image: IMAGE
    blur_radius: int = Int(1, min=1, max=31)
    sigma: float = Float(1.0, min=0.1, max=10.0, step=0.1)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageBlur",))

    def run(self):
        image = _image(self.image, "image")
        _check_radius(image, self.blur_radius, "blur_radius")
        return gaussian_blur(image.movedim(-1, 1), self.blur_radius, self.sigma).movedim(1, -1)


def unsharp_mask(x, radius: int, sigma: float, alpha: float):
    """x + 10 alpha (x - blur(x)) with ImageBlur's Gaussian ([B, C, H, W]), ComfyUI's sharpen."""
    return x + 10 * alpha * (x - gaussian_blur(x, radius, sigma))


class ImageSharpen(Node):
    """Unsharp mask: image + 10 * alpha * (image - blurred), clamped to 0..1, with ImageBlur's
    Gaussian of sharpen_radius and sigma (ComfyUI's kernel, -10 * alpha * Gaussian with the centre
    raised so it sums to 1)."""
    category = "image/postprocessing"
    image: IMAGE
    sharpen_radius: int = Int(1, min=1, max=31)
    sigma: float = Float(1.0, min=0.1, max=10.0, step=0.01)
    alpha: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageSharpen",))

    def run(self):
        image = _image(self.image, "image")
        _check_radius(image, self.sharpen_radius, "sharpen_radius")
        sharp = unsharp_mask(image.movedim(-1, 1), self.sharpen_radius, self.sigma, self.alpha)
        return sharp.clamp(0, 1).movedim(1, -1)


def _bayer(order: int) -> torch.Tensor:
    """The order x order Bayer threshold matrix, centred on 0 (values in -0.5..0.5), float32."""
    import torch
    m = torch.zeros(1, 1)
    while m.shape[0] < order:
        q = 4 * m.shape[0] * m.shape[0]
        m = q * m
        m = torch.cat([torch.cat([m - 1.5, m + 0.5], 1), torch.cat([m + 1.5, m - 0.5], 1)], 0) / q
    return m


def quantize(picture: Image.Image, colors: int, dither: str) -> Image.Image:
    """An RGB picture reduced to `colors` colours by Pillow (median cut), the palette chosen
    without dithering and then applied with the given dither, as ComfyUI does."""
    import numpy as np
    import torch
    from PIL import Image
    palette = picture.quantize(colors=colors)  # Pillow ignores `dither` unless given a palette
    if dither == "none":
        return picture.quantize(palette=palette, dither=Image.Dither.NONE)
    if dither == "floyd-steinberg":
        return picture.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    order = int(dither.split("-")[1])
    # Ordered dithering: a threshold matrix, spread over two palette steps, added before the
    # nearest-colour lookup. All in float32 as ComfyUI: in float64 a few sums land on the other
    # side of a whole level and truncate to another colour.
    spread = 2 * 256 / (len(palette.getpalette()) // 3)
    threshold = spread * _bayer(order) + 0.5
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32).copy())
    h, w = pixels.shape[:2]
    tiles = threshold.tile(-(-h // order), -(-w // order))[:h, :w, None]
    shifted = (pixels + tiles).clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(shifted, "RGB").quantize(palette=palette, dither=Image.Dither.NONE)


class ImageQuantize(Node):
    """Reduce each image to at most `colors` colours (Pillow's median cut; the palette is made per
    image). dither spreads the rounding error: floyd-steinberg (error diffusion) or an ordered
    Bayer pattern of 2, 4, 8 or 16 pixels. Values are cut (not rounded) to 8 bits first, as in
    ComfyUI; an alpha channel is kept as it is."""
    category = "image/postprocessing"
    image: IMAGE
    colors: int = Int(256, min=1, max=256)
    dither: str = Choice(DITHERS, "none")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageQuantize",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image
        image = _image(self.image, "image")
        if image.shape[-1] not in (3, 4):
            raise NodeInputError("image", f"{image.shape[-1]} channels; expected RGB or RGBA")
        out = []
        for rgb in image[..., :3]:
            picture = Image.fromarray((rgb.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy(), "RGB")
            reduced = np.asarray(quantize(picture, self.colors, self.dither).convert("RGB"), dtype=np.float32)
            out.append(torch.from_numpy(reduced / 255.0))
        result = torch.stack(out).to(image)
        return torch.cat([result, image[..., 3:]], -1) if image.shape[-1] == 4 else result


def _extreme(x: torch.Tensor, size: int, larger: bool) -> torch.Tensor:
    """Max (dilation) or min (erosion) of NCHW over a size x size square, pixels outside the image
    left out. The window's anchor is kornia's: for an even size dilation reaches one pixel further
    right and down, erosion one further left and up."""
    import torch.nn.functional as F
    before, after = (size - 1 - size // 2, size // 2) if larger else (size // 2, size - 1 - size // 2)
    sign = 1 if larger else -1
    padded = F.pad(sign * x, (before, after, before, after), value=float("-inf"))
    # A square's max is the max of the rows' maxima: two passes of size instead of size * size.
    out = F.max_pool2d(F.max_pool2d(padded, (1, size), stride=1), (size, 1), stride=1)
    return sign * out


def morphology(x: torch.Tensor, operation: str, size: int) -> torch.Tensor:
    """Grey-scale morphology of NCHW with a flat size x size square (kornia's definitions)."""
    def dilate(t):
        return _extreme(t, size, True)

    def erode(t):
        return _extreme(t, size, False)

    if operation == "erode":
        return erode(x)
    if operation == "dilate":
        return dilate(x)
    if operation == "open":
        return dilate(erode(x))
    if operation == "close":
        return erode(dilate(x))
    if operation == "gradient":
        return dilate(x) - erode(x)
    if operation == "top_hat":
        return x - dilate(erode(x))
    if operation == "bottom_hat":
        return erode(dilate(x)) - x
    raise ValueError(f"unknown morphology operation {operation!r}")


class ImageMorphology(Node):
    """Grey-scale morphology with a kernel_size square, per channel: erode (minimum), dilate
    (maximum), open (erode then dilate: removes bright specks), close (dilate then erode: fills
    dark gaps), gradient (dilate - erode: outlines), top_hat (image - open: the bright specks)
    and bottom_hat (close - image: the dark gaps). Pixels past the border are left out."""
    category = "image/postprocessing"
    image: IMAGE
    operation: str = Choice(MORPHOLOGY_OPERATIONS, "erode")
    kernel_size: int = Int(3, min=3, max=999)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Morphology",))

    def run(self):
        image = _image(self.image, "image")
        return morphology(image.movedim(-1, 1), self.operation, self.kernel_size).movedim(1, -1)


class ImageFromBatch(Node):
    """Take `length` images starting at `batch_index`. As in ComfyUI, an index past the end takes
    the last image and the length is cut to what the batch holds."""
    category = "image/batch"
    image: IMAGE
    batch_index: int = Int(0, min=0, max=4095)
    length: int = Int(1, min=1, max=4096)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageFromBatch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return batch_range_estimate(inputs.get("image"), widgets)

    def run(self):
        image = _image(self.image, "image")
        start, length = batch_range(image.shape[0], self.batch_index, self.length)
        return image[start:start + length].clone()


class RepeatImageBatch(Node):
    """The whole batch repeated `amount` times (a, b, a, b, ...)."""
    category = "image/batch"
    image: IMAGE
    amount: int = Int(1, min=1, max=4096)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("RepeatImageBatch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return repeated(inputs.get("image"), widgets.get("amount"))

    def run(self):
        return _image(self.image, "image").repeat(self.amount, 1, 1, 1)


def _pad_to(image: torch.Tensor, size: int, dim: int, value: float) -> torch.Tensor:
    """Pad [B, H, W, C] along H (dim 1) or W (dim 2) to `size`, centred (the odd pixel after)."""
    import torch.nn.functional as F
    extra = size - image.shape[dim]
    if extra <= 0:
        return image
    before, after = extra // 2, extra - extra // 2
    pad = (0, 0, before, after) if dim == 2 else (0, 0, 0, 0, before, after)
    return F.pad(image, pad, value=value)


class ImageStitch(Node):
    """Put image2 beside image1: to its right, below, left or above. match_image_size resizes
    image2 (Lanczos) to image1's height (right/left) or width (down/up), keeping its aspect ratio;
    else the shorter one is padded, centred, with spacing_color (white or black; red, green and
    blue pad black). spacing_width puts a band of spacing_color between them (rounded up to
    even). The smaller batch repeats its last image; a missing alpha channel is made opaque.
    Without image2, image1 comes out unchanged."""
    category = "image/transform"
    image1: IMAGE
    direction: str = Choice(STITCH_DIRECTIONS, "right")
    match_image_size: bool = Bool(True)
    spacing_width: int = Int(0, min=0, max=1024, step=2)
    spacing_color: str = Choice(list(STITCH_COLORS), "white")
    image2: IMAGE = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageStitch",), optional=("image2",))

    def run(self):
        import torch
        a = _image(self.image1, "image1")
        if self.image2 is None:
            return a
        b = _image(self.image2, "image2").to(a)
        batch = max(a.shape[0], b.shape[0])
        a, b = (torch.cat([x, x[-1:].repeat(batch - x.shape[0], 1, 1, 1)]) for x in (a, b))
        sideways = self.direction in ("left", "right")
        if self.match_image_size:
            (h1, w1), (h2, w2) = a.shape[1:3], b.shape[1:3]
            # ComfyUI's size: the aspect ratio first, then truncated (7 * (61 / 7) gives 60, not 61).
            aspect = w2 / h2
            width, height = (int(h1 * aspect), h1) if sideways else (w1, int(w1 / aspect))
            b = _resize_image(b, max(1, width), max(1, height), "lanczos")
        else:
            pad = 1.0 if self.spacing_color == "white" else 0.0
            dim = 1 if sideways else 2
            size = max(a.shape[dim], b.shape[dim])
            a, b = _pad_to(a, size, dim, pad), _pad_to(b, size, dim, pad)
        channels = max(a.shape[-1], b.shape[-1])
        a, b = (torch.cat([x, torch.ones(*x.shape[:-1], channels - x.shape[-1]).to(x)], -1) for x in (a, b))
        parts = [b, a] if self.direction in ("left", "up") else [a, b]
        if self.spacing_width > 0:
            width = self.spacing_width + self.spacing_width % 2
            shape = ((batch, max(a.shape[1], b.shape[1]), width) if sideways
                     else (batch, width, max(a.shape[2], b.shape[2])))
            band = torch.zeros(*shape, channels).to(a)
            color = torch.tensor(STITCH_COLORS[self.spacing_color])[:channels]
            band[..., :color.shape[0]] = color.to(a)
            if channels == 4:
                band[..., 3] = 1.0
            parts.insert(1, band)
        try:
            return torch.cat(parts, dim=2 if sideways else 1)
        except RuntimeError:
            raise NodeInputError("image2", f"its size {b.shape[2]}x{b.shape[1]} doesn't line up with image1's "
                                           f"{a.shape[2]}x{a.shape[1]}") from None


class ResizeAndPadImage(Node):
    """Fit the images inside target_width x target_height keeping their aspect ratio (sizes cut
    to whole pixels), centred on a white or black canvas of exactly that size."""
    category = "image/transform"
    image: IMAGE
    target_width: int = Int(512, min=1, max=MAX_SIZE, resource="width")
    target_height: int = Int(512, min=1, max=MAX_SIZE, resource="height")
    padding_color: str = Choice(["white", "black"], "white")
    interpolation: str = Choice(PAD_RESIZE_METHODS, "area")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ResizeAndPadImage",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, width, height = inputs.get("image"), widgets.get("target_width"), widgets.get("target_height")
        if size is None or not isinstance(width, int) or not isinstance(height, int):
            return Estimate(size)
        return Estimate(Size(size.batch, height, width))

    def run(self):
        import torch
        image = _image(self.image, "image")
        b, h, w, c = image.shape
        scale = min(self.target_width / w, self.target_height / h)
        width, height = max(1, int(w * scale)), max(1, int(h * scale))
        resized = _resize_image(image, width, height, self.interpolation)
        out = torch.full((b, self.target_height, self.target_width, c),
                         0.0 if self.padding_color == "black" else 1.0, dtype=image.dtype)
        top, left = (self.target_height - height) // 2, (self.target_width - width) // 2
        out[:, top:top + height, left:left + width] = resized
        return out


def _longest_side_size(width: int, height: int, largest: int) -> tuple[int, int]:
    if height > width:
        return max(1, round(width / height * largest)), largest
    if width > height:
        return largest, max(1, round(height / width * largest))
    return largest, largest


class ImageScaleToMaxDimension(Node):
    """Resize the images so that their longer side is largest_size pixels, keeping the aspect
    ratio (the other side rounded); it scales up as well as down."""
    category = "image/upscaling"
    image: IMAGE
    upscale_method: str = Choice(MAX_DIMENSION_METHODS, "area")
    largest_size: int = Int(512, min=1, max=MAX_SIZE)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageScaleToMaxDimension",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, largest = inputs.get("image"), widgets.get("largest_size")
        if size is None or not isinstance(largest, int):
            return Estimate(size)
        width, height = _longest_side_size(size.width, size.height, largest)
        return Estimate(Size(size.batch, height, width))

    def run(self):
        image = _image(self.image, "image")
        width, height = _longest_side_size(image.shape[2], image.shape[1], self.largest_size)
        return _resize_image(image, width, height, self.upscale_method)


class ImageAddNoise(Node):
    """Add Gaussian noise of standard deviation `strength` to every pixel and channel, clamped to
    0..1. The noise is torch's normal numbers on the CPU from `seed`, as ComfyUI draws them, so a
    seed gives the same grain there and here."""
    category = "image"
    image: IMAGE
    seed: int = Int(0, min=0, max=SEED_MAX, description="the random seed of the noise")
    strength: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageAddNoise",))

    def run(self):
        import torch
        image = _image(self.image, "image")
        generator = torch.Generator("cpu").manual_seed(self.seed)
        noise = torch.randn(image.shape, generator=generator).to(image)
        return (image + self.strength * noise).clamp(0, 1)


# YCbCr as kornia (and so ComfyUI) defines it: BT.601 luma, chroma scaled by 0.564 and 0.713
# and centred on 0.5.
LUMA = (0.299, 0.587, 0.114)
CB_SCALE, CR_SCALE = 0.564, 0.713


class ImageRGBToYUV(Node):
    """Split images into Y (luma), U (blue difference, Cb) and V (red difference, Cr), each a
    grey image; U and V are 0.5 where there is no colour. ImageYUVToRGB joins them back."""
    category = "image/batch"
    image: IMAGE
    outputs = {"Y": IMAGE, "U": IMAGE, "V": IMAGE}
    comfy = ComfyAlias(("ImageRGBToYUV",))

    def run(self):
        image = _image(self.image, "image")
        if image.shape[-1] < 3:
            raise NodeInputError("image", f"{image.shape[-1]} channels; expected RGB")
        r, g, b = image[..., 0:1], image[..., 1:2], image[..., 2:3]
        y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
        shape = (*image.shape[:-1], 3)
        return (y.expand(shape).clone(), ((b - y) * CB_SCALE + 0.5).expand(shape).clone(),
                ((r - y) * CR_SCALE + 0.5).expand(shape).clone())


class ImageYUVToRGB(Node):
    """Join Y, U and V images (ImageRGBToYUV's; each read as the mean of its colour channels) back
    into RGB, the exact inverse of that split, clamped to 0..1."""
    category = "image/batch"
    Y: IMAGE
    U: IMAGE
    V: IMAGE
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageYUVToRGB",))

    def run(self):
        import torch
        planes = [_image(getattr(self, name), name) for name in ("Y", "U", "V")]
        for name, plane in zip("UV", planes[1:]):
            if plane.shape[:3] != planes[0].shape[:3]:
                raise NodeInputError(name, f"shape {list(plane.shape[:3])} differs from Y's "
                                           f"{list(planes[0].shape[:3])}")
        y, cb, cr = (p[..., :3].mean(-1, keepdim=True) for p in planes)
        r = y + (cr - 0.5) / CR_SCALE
        b = y + (cb - 0.5) / CB_SCALE
        g = (y - LUMA[0] * r - LUMA[2] * b) / LUMA[1]
        return torch.cat([r, g, b], -1).clamp(0, 1)
