"""EllangoK's ComfyUI-post-processing-nodes, under the pack's class names, inputs (order, defaults,
ranges), outputs and categories. Read from post_processing_nodes.py at commit
03df7b7e1eaab5f39a869a3170caedb0984896c7 (the combined file its combine_files.py writes from
post_processing/*.py; it registers the 23 nodes below), and for two classes that later left the
registration: Sepia (post_processing/sepia.py at 33a525b0591d5cf0c7386714dc125f5cb1251763) and
KMeansQuantize (kmeans_quantize.py at ece18e5f0d50592af03a5efc1ff422d6194bea43).

Nodes: ArithmeticBlend, AsciiArt, Blend, CannyEdgeMask, ChromaticAberration, ColorCorrect,
ColorTint, Dissolve, DodgeAndBurn, FilmGrain, Glow, HSVThresholdMask, KuwaharaBlur, Parabolize,
PencilSketch, PixelSort, Pixelize, Quantize, Sharpen, SineWave, Solarize, Vignette, Sepia,
KMeansQuantize, and the pack's Blur as PostProcBlur.

The ComfyUI class name "Blur" is Masquerade's Blur's too (nodes/pack_nodes_masquerade.py), its
default: a "Blur" is read as this pack's (PostProcBlur) where a UI save's node properties name this
pack (cnr_id / aux_id, as newer ComfyUI editors save them) or a save gives its input names
(blur_radius, sigma: an API prompt's inputs, a UI node's inputs[] where converted or linked); an older UI
save without either can't be told apart (two numbers each) and runs Masquerade's Blur.

Where the pack draws unseeded random numbers (Dissolve's torch.rand_like, FilmGrain's numpy
global generator) these nodes seed a generator of their own at 0 each run, so a result equals the
pack's after torch.manual_seed(0) / np.random.seed(0) (Dissolve's: for float32 images on the
CPU, see its help). Where the pack's code fails, these nodes
give the evident result instead: KuwaharaBlur on a batch (image by image), Vignette on a picture
that is not square, PixelSort with a mask given as an IMAGE [B, H, W, C] (its first channel);
KMeansQuantize quantizes the whole batch (the old pack only its first image). RGBA pictures lose
their alpha where the pack's code only takes RGB (each node's help says which). As in the pack,
CannyEdgeMask and HSVThresholdMask give mask-shaped [B, H, W] tensors on IMAGE outputs (made for
PixelSort's mask), and DodgeAndBurn's dodge / burn are not clamped.
"""

from __future__ import annotations

from graphflow.api import IMAGE, Choice, ComfyAlias, Float, Int, Node, NodeInputError, check_interrupted
from nodes.image import _image
from nodes.image_ops import _blend, _gaussian, quantize, separable_blur
from nodes.pack_nodes_essentials_misc import text_font

COMFY_PACK = "ComfyUI-post-processing-nodes"  # the custom node pack this module's ComfyUI classes come from

DIRECTIONS = ("horizontal", "vertical")
TINTS = {  # ColorTint's modes, in the pack's order: the grey picture is multiplied by this RGB
    "sepia": (1.0, 0.8, 0.6), "red": (1.0, 0.6, 0.6), "green": (0.6, 1.0, 0.6), "blue": (0.6, 0.8, 1.0),
    "cyan": (0.6, 1.0, 1.0), "magenta": (1.0, 0.6, 1.0), "yellow": (1.0, 1.0, 0.6), "purple": (0.8, 0.6, 1.0),
    "orange": (1.0, 0.7, 0.3), "warm": (1.0, 0.9, 0.7), "cool": (0.7, 0.9, 1.0), "lime": (0.7, 1.0, 0.3),
    "navy": (0.3, 0.4, 0.7), "vintage": (0.9, 0.85, 0.7), "rose": (1.0, 0.8, 0.9), "teal": (0.3, 0.8, 0.8),
    "maroon": (0.7, 0.3, 0.5), "peach": (1.0, 0.8, 0.6), "lavender": (0.8, 0.6, 1.0), "olive": (0.6, 0.7, 0.4),
}
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # the pack's luma weights for ColorTint and Sepia
# KMeansQuantize's most pixels × colors × iterations an image: OpenCV's k-means does some 4·10^9 a
# second on a fast CPU, so an image takes 5 s at most (1024² at 256 colors, precision 10, fits)
KMEANS_MOST_WORK = 2 * 10 ** 10
# the later pack's raw string: a backslash before the quote and before the slash
ASCII_CHARS = r" .'`^\",:;I1!i><-+_-?][}{1)(|\/tfjrxnuvczXYUCLQ0OZmwqpbdkhao*#MW&8%B@$"


def _rgb(image, name: str):
    """An IMAGE's first three channels (the pack's RGB-only steps)."""
    image = _image(image, name)
    if image.shape[-1] < 3:
        raise NodeInputError(name, f"{image.shape[-1]} channels: expected an RGB image")
    return image[..., :3]


def _combined(a, b, name: str, combine):
    """combine(a, b) by torch's broadcasting as the pack does, a mismatch named by input."""
    try:
        return combine(a, b)
    except RuntimeError:
        raise NodeInputError(name, f"shape {tuple(b.shape)} does not fit the image's {tuple(a.shape)}") from None


def _pixels(image):
    """A [H, W, C] float picture as the pack's 8-bit numpy array (x * 255, cut to whole levels);
    float32 first, as numpy has no bfloat16."""
    import numpy as np
    return (image.cpu().float().numpy() * 255).astype(np.uint8)


def _zero_border_blur(image, line):
    """Each channel of [B, H, W, C] convolved with the 2-D kernel line ⊗ line (line: odd length),
    the borders zero, as the pack's conv2d with padding of half the kernel: done as two 1-D passes,
    image by image, so a wide kernel on a big picture takes seconds at most and can be stopped."""
    import torch
    out = []
    for picture in image:
        check_interrupted()
        out.append(separable_blur(picture.movedim(-1, 0)[None], line, border="zeros")[0].movedim(0, -1))
    return torch.stack(out)


def _pack_gaussian_blur(image, radius: int, sigma: float):
    """The pack's Gaussian over a (2·radius + 1)² square, borders zero. Its kernel spreads the
    positions over -1..1 whatever the size (sigma in units of the radius), exp(-d² / 2σ²)
    normalised: the outer product of ComfyUI's 1-D one (_gaussian)."""
    return _zero_border_blur(image, _gaussian(radius, sigma))


def _pack_sharpen(image, radius: int, alpha: float):
    """The pack's sharpen kernel, borders zero: -alpha on a (2·radius + 1)² square with size² · alpha
    in the centre (it sums to alpha), i.e. alpha · ((size² + 1) · image - the square's sum), the
    sum taken in two 1-D passes."""
    import torch
    size = 2 * radius + 1
    square_sum = _zero_border_blur(image, torch.ones(size, dtype=torch.float64))
    return alpha * ((size * size + 1) * image - square_sum)


# -- blends -----------------------------------------------------------------------------------


class PostProcArithmeticBlend(Node):
    """image1 + image2, image1 - image2 or |image1 - image2|, clamped to 0..1, as the pack's
    ArithmeticBlend does (the two broadcast together: same size, or a batch of one). Its "divide"
    divides image1 by itself (image2 is not read), as the pack's code does: 1 where image1 is
    above 0, else 0."""
    category = "postprocessing/Blends"
    image1: IMAGE
    image2: IMAGE
    blend_mode: str = Choice(("add", "subtract", "difference", "divide"), "add")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ArithmeticBlend",))

    def run(self):
        import torch
        a, b = _image(self.image1, "image1"), _image(self.image2, "image2")
        if self.blend_mode == "divide":
            out = a / torch.where(a == 0, 1e-10, a)
        else:
            combine = {"add": torch.add, "subtract": torch.sub, "difference": lambda x, y: (x - y).abs()}
            out = _combined(a, b, "image2", combine[self.blend_mode])
        return out.clamp(0, 1)


def _pack_crop_and_resize(image, height: int, width: int):
    """The pack's Blend fit of image2 to image1: the centre cut to image1's aspect (int() of the
    other side), then bilinear resize (torch, align_corners off)."""
    import torch.nn.functional as F
    h, w = image.shape[1:3]
    if w / h > width / height:
        new_width = int(h * (width / height))
        left = (w - new_width) // 2
        image = image[:, :, left:left + new_width]
    else:
        new_height = int(w / (width / height))
        top = (h - new_height) // 2
        image = image[:, top:top + new_height]
    return F.interpolate(image.movedim(-1, 1), size=(height, width), mode="bilinear",
                         align_corners=False).movedim(1, -1)


class PostProcBlend(Node):
    """image1 · (1 - blend_factor) + mode(image1, image2) · blend_factor, clamped to 0..1, as the
    pack's Blend does: normal (image2), multiply, screen, overlay (by image1) and soft_light (the
    W3C formula). When the two differ in shape, image2's centre is cut to image1's aspect and
    resized bilinearly to its size; a batch of one then blends with each image."""
    category = "postprocessing/Blends"
    image1: IMAGE
    image2: IMAGE
    blend_factor: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    blend_mode: str = Choice(("normal", "multiply", "screen", "overlay", "soft_light"), "normal")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Blend",))

    def run(self):
        a, b = _image(self.image1, "image1"), _image(self.image2, "image2")
        if a.shape != b.shape:
            b = _pack_crop_and_resize(b, a.shape[1], a.shape[2])
        blended = _combined(a, b, "image2", lambda x, y: _blend(x, y, self.blend_mode))
        return (a * (1 - self.blend_factor) + blended * self.blend_factor).clamp(0, 1)


class PostProcDissolve(Node):
    """Each value (pixel and channel) of image1 where a uniform random draw is below
    dissolve_factor, else image2's, as the pack's Dissolve does. The pack draws unseeded
    (torch.rand_like); here the draw is float32 on the CPU, seeded at 0 each run, so a run repeats
    itself (on any device). It equals the pack's after torch.manual_seed(0) for float32 images on
    the CPU only: the pack's draw for a float64 image, or on a GPU (from CUDA's generator), gives
    other numbers."""
    category = "postprocessing/Blends"
    image1: IMAGE
    image2: IMAGE
    dissolve_factor: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Dissolve",))

    def run(self):
        import torch
        a, b = _image(self.image1, "image1"), _image(self.image2, "image2")
        draw = torch.rand(a.shape, generator=torch.Generator().manual_seed(0)).to(a)
        keep = (draw < self.dissolve_factor).float()
        return _combined(a * keep, b, "image2", lambda x, y: x + y * (1 - keep)).clamp(0, 1)


class PostProcDodgeAndBurn(Node):
    """Lighten (dodge) or darken (burn) the image by m = mask · intensity, as the pack's
    DodgeAndBurn does: dodge image / (1 - m + 1e-7), burn 1 - (1 - image) / (m + 1e-7),
    color_dodge and color_burn the same without the 1e-7, where the mask itself (not m) is below 1,
    resp. above 0 (elsewhere the image is kept: a mask of exactly 1 leaves color_dodge's image as it
    is, whatever the intensity), linear_dodge / linear_burn image ± m clamped; dodge_and_burn is
    dodge then burn, burn_and_dodge the other way. mask is an IMAGE (same shape, or
    broadcastable). As in the pack, dodge and burn are not clamped: values may leave 0..1, and
    color_burn at intensity 0 divides by zero where the mask is above 0 (-inf, or NaN where the
    image is 1)."""
    category = "postprocessing/Blends"
    image: IMAGE
    mask: IMAGE
    intensity: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    mode: str = Choice(("dodge", "burn", "dodge_and_burn", "burn_and_dodge", "color_dodge", "color_burn",
                        "linear_dodge", "linear_burn"), "dodge")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("DodgeAndBurn",))

    def run(self):
        image, mask = _image(self.image, "image"), _image(self.mask, "mask")
        steps = {"dodge_and_burn": ("dodge", "burn"), "burn_and_dodge": ("burn", "dodge")}.get(self.mode, (self.mode,))
        for step in steps:
            image = _combined(image, mask, "mask", lambda x, m: _dodge_or_burn(x, m, self.intensity, step))
        return image


def _dodge_or_burn(image, mask, intensity: float, mode: str):
    """One step of the pack's DodgeAndBurn; color_dodge / color_burn pick by the raw mask, as the pack."""
    import torch
    m = mask * intensity
    if mode == "dodge":
        return image / (1 - m + 1e-7)
    if mode == "burn":
        return 1 - (1 - image) / (m + 1e-7)
    if mode == "color_dodge":
        return torch.where(mask < 1, image / (1 - m), image)
    if mode == "color_burn":
        return torch.where(mask > 0, 1 - (1 - image) / m, image)
    if mode == "linear_dodge":
        return (image + m).clamp(0, 1)
    return (image - m).clamp(0, 1)


# -- filters ----------------------------------------------------------------------------------


class PostProcBlur(Node):
    """The pack's Blur. A Gaussian over a (2·blur_radius + 1)² square with sigma in units of
    the radius (the kernel spans -1..1, as ComfyUI's ImageBlur), the borders taken as black (zero
    padding, as the pack's conv2d), so the edges darken.

    Masquerade's Blur registers the ComfyUI class name "Blur" too and stays its default. A UI save
    is read as this node where the node's properties name this pack (cnr_id
    comfyui-post-processing-nodes or aux_id EllangoK/ComfyUI-post-processing-nodes, as newer
    ComfyUI editors save them), an API prompt where it gives blur_radius or sigma (only `image`
    linked: Masquerade's). Written back as "Blur", in a UI save with those ids."""
    category = "postprocessing/Filters"
    image: IMAGE
    blur_radius: int = Int(1, min=1, max=15)
    sigma: float = Float(1.0, min=0.1, max=10.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Blur",), pack=("comfyui-post-processing-nodes", "EllangoK/ComfyUI-post-processing-nodes"))

    def run(self):
        return _pack_gaussian_blur(_image(self.image, "image"), self.blur_radius, self.sigma)


class PostProcSharpen(Node):
    """Sharpen with the pack's kernel: -alpha on a (2·sharpen_radius + 1)² square, size² · alpha in
    the centre (so alpha also scales the brightness), borders zero, clamped to 0..1, as the pack's
    Sharpen does."""
    category = "postprocessing/Filters"
    image: IMAGE
    sharpen_radius: int = Int(1, min=1, max=15)
    alpha: float = Float(1.0, min=0.1, max=5.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Sharpen",))

    def run(self):
        image = _image(self.image, "image")
        return _pack_sharpen(image, self.sharpen_radius, self.alpha).clamp(0, 1)


def kuwahara(picture, method: str, radius: int):
    """The pack's Kuwahara filter of an 8-bit RGB picture (OpenCV): each pixel takes the mean colour
    of whichever of its four (radius + 1)² quadrants (mean) or Gaussian-weighted half-kernels
    (gaussian) has the least variance of the grey values; OpenCV's mirrored borders
    (BORDER_REFLECT_101). Grey is cvtColor's BGR2GRAY of the RGB picture, as in the pack."""
    import cv2
    import numpy as np
    image = picture.astype(np.float32)
    grey = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if method == "mean":
        kernel = np.ones(radius + 1, dtype=np.float32) / (radius + 1)
        halves = [(kernel, kernel)] * 4
    else:
        full = cv2.getGaussianKernel(2 * radius + 1, -1, ktype=cv2.CV_32F)
        full /= full[radius:].sum()
        low, high = full[:radius + 1], full[radius:]
        halves = [(high, high), (high, low), (low, high), (low, low)]
    means, variances = [], []
    for (kx, ky), anchor in zip(halves, [(0, 0), (0, radius), (radius, 0), (radius, radius)]):
        means.append(cv2.sepFilter2D(image, -1, kx, ky, anchor=anchor))
        grey_mean = cv2.sepFilter2D(grey, -1, kx, ky, anchor=anchor)
        variances.append(cv2.sepFilter2D(grey * grey, -1, kx, ky, anchor=anchor) - grey_mean ** 2)
    best = np.argmin(np.stack(variances), axis=0)
    return np.take_along_axis(np.stack(means), best[None, ..., None], 0)[0].astype(np.uint8)


class PostProcKuwaharaBlur(Node):
    """An edge-keeping blur, as the pack's KuwaharaBlur does (with OpenCV on the 8-bit picture):
    each pixel takes the mean of its least varied quadrant, method "mean" (square quadrants of
    blur_radius + 1) or "gaussian" (Gaussian-weighted). blur_radius 0 gives the image back. The
    pack's code fails on a batch of more than one; here each image is filtered. RGB only: an
    alpha channel is dropped."""
    category = "postprocessing/Filters"
    image: IMAGE
    blur_radius: int = Int(3, min=0, max=31)
    method: str = Choice(("mean", "gaussian"), "mean")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("KuwaharaBlur",))

    def run(self):
        import torch
        image = _rgb(self.image, "image")
        if self.blur_radius == 0:
            return self.image
        return torch.stack([torch.from_numpy(kuwahara(_pixels(p), self.method, self.blur_radius)) / 255.0
                             for p in image]).to(image)


# -- masks ------------------------------------------------------------------------------------


class PostProcCannyEdgeMask(Node):
    """Canny edges (OpenCV) of each image's grey picture (cvtColor RGB2GRAY, cut to 8 bits), as the
    pack's CannyEdgeMask does. Like the pack it gives a mask-shaped [B, H, W] tensor typed IMAGE,
    0 or 255 (not 0..1): made for PixelSort's mask input."""
    category = "postprocessing/Masks"
    image: IMAGE
    lower_threshold: int = Int(100, min=0, max=500, step=10)
    upper_threshold: int = Int(200, min=0, max=500, step=10)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("CannyEdgeMask",))

    def run(self):
        import cv2
        import numpy as np
        import torch
        image = _rgb(self.image, "image")
        edges = []
        for picture in image:
            grey = (cv2.cvtColor(picture.cpu().float().numpy(), cv2.COLOR_RGB2GRAY) * 255).astype(np.uint8)
            edges.append(torch.from_numpy(cv2.Canny(grey, self.lower_threshold, self.upper_threshold)))
        return torch.stack(edges).float()


class PostProcHSVThresholdMask(Node):
    """Where one HSV channel of each image lies within low_threshold..high_threshold, as the pack's
    HSVThresholdMask does (OpenCV's inRange on the 8-bit HSV picture: the thresholds times 180 for
    hue, 255 for saturation and value, cut to whole numbers). Like the pack it gives a mask-shaped
    [B, H, W] tensor of 0 and 1 typed IMAGE."""
    category = "postprocessing/Masks"
    image: IMAGE
    low_threshold: float = Float(0.2, min=0, max=1, step=0.1)
    high_threshold: float = Float(0.7, min=0, max=1, step=0.1)
    hsv_channel: str = Choice(("hue", "saturation", "value"), "hue")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("HSVThresholdMask",))

    def run(self):
        import cv2
        import torch
        image = _rgb(self.image, "image")
        channel = ("hue", "saturation", "value").index(self.hsv_channel)
        scale = 180 if channel == 0 else 255
        low, high = int(self.low_threshold * scale), int(self.high_threshold * scale)
        masks = [torch.from_numpy(cv2.inRange(cv2.cvtColor(_pixels(p), cv2.COLOR_RGB2HSV)[:, :, channel], low, high))
                 for p in image]
        return torch.stack(masks).float() / 255.0


# -- colour adjustments -----------------------------------------------------------------------


def _warmer(picture, temperature: float):
    """The pack's temperature (numpy, in place): above 0 red times 1 + t and green 1 + 0.4 t,
    below 0 blue times 1 - t (t = temperature / 100)."""
    t = temperature / 100
    if t > 0:
        picture[:, :, 0] *= 1 + t
        picture[:, :, 1] *= 1 + t * 0.4
    elif t < 0:
        picture[:, :, 2] *= 1 - t
    return picture


class PostProcColorCorrect(Node):
    """Brightness, contrast (Pillow's ImageEnhance, factor 1 + value / 100), temperature, gamma
    (x^gamma), saturation (OpenCV's HLS, S times 1 + value / 100) and hue (OpenCV's HSV, degrees
    added) in that order, on the 8-bit picture, as the pack's ColorCorrect does; the result is cut
    to 8-bit levels. RGB only: an alpha channel is dropped."""
    category = "postprocessing/Color Adjustments"
    image: IMAGE
    temperature: float = Float(0, min=-100, max=100, step=5)
    hue: float = Float(0, min=-90, max=90, step=5)
    brightness: float = Float(0, min=-100, max=100, step=5)
    contrast: float = Float(0, min=-100, max=100, step=5)
    saturation: float = Float(0, min=-100, max=100, step=5)
    gamma: float = Float(1, min=0.2, max=2.2, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ColorCorrect",))

    def run(self):
        import torch
        image = _rgb(self.image, "image")
        return torch.stack([torch.from_numpy(self._corrected(_pixels(p))) for p in image]).to(image)

    def _corrected(self, pixels):
        import cv2
        import numpy as np
        from PIL import Image, ImageEnhance
        picture = ImageEnhance.Brightness(Image.fromarray(pixels)).enhance(1 + self.brightness / 100)
        picture = np.array(ImageEnhance.Contrast(picture).enhance(1 + self.contrast / 100)).astype(np.float32)
        picture = np.clip(_warmer(picture, self.temperature), 0, 255) / 255
        picture = np.clip(np.power(picture, self.gamma), 0, 1)
        hls = cv2.cvtColor(picture, cv2.COLOR_RGB2HLS)
        hls[:, :, 2] = np.clip((1 + self.saturation / 100) * hls[:, :, 2], 0, 1)
        hsv = cv2.cvtColor(cv2.cvtColor(hls, cv2.COLOR_HLS2RGB) * 255, cv2.COLOR_RGB2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0] + self.hue) % 360
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.uint8) / 255


def _tinted(image, rgb, strength: float):
    """The grey picture (the pack's luma weights) times `rgb`, mixed with the image by strength."""
    import torch
    grey = (image * torch.tensor(GREY_WEIGHTS).to(image)).sum(-1, keepdim=True)
    return grey * torch.tensor(rgb).to(image) * strength + image * (1 - strength)


class PostProcColorTint(Node):
    """Tint the image: its grey (0.2989 R + 0.587 G + 0.114 B) times the mode's colour, mixed with
    the image by strength, as the pack's ColorTint does (not clamped; the colours never exceed 1).
    RGB only: an alpha channel is dropped."""
    category = "postprocessing/Color Adjustments"
    image: IMAGE
    strength: float = Float(1.0, min=0.1, max=1.0, step=0.1)
    mode: str = Choice(tuple(TINTS), "sepia")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ColorTint",))

    def run(self):
        image = _rgb(self.image, "image")
        return _tinted(image, TINTS[self.mode], self.strength)


class PostProcSepia(Node):
    """Sepia, as the pack's Sepia did before ColorTint took its place (ColorTint's "sepia" mode):
    the grey picture times (1.0, 0.8, 0.6), mixed with the image by strength. RGB only."""
    category = "postprocessing"
    image: IMAGE
    strength: float = Float(1.0, min=0.1, max=1.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Sepia",))

    def run(self):
        image = _rgb(self.image, "image")
        return _tinted(image, TINTS["sepia"], self.strength)


class PostProcParabolize(Node):
    """coeff · (image - vertex_x)² + vertex_y, clamped to 0..1, as the pack's Parabolize does."""
    category = "postprocessing/Color Adjustments"
    image: IMAGE
    coeff: float = Float(1.0, min=-10.0, max=10.0, step=0.1)
    vertex_x: float = Float(0.5, min=0.0, max=1.0, step=0.1)
    vertex_y: float = Float(0.5, min=0.0, max=1.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Parabolize",))

    def run(self):
        image = _image(self.image, "image")
        return (self.coeff * (image - self.vertex_x) ** 2 + self.vertex_y).clamp(0, 1)


class PostProcSolarize(Node):
    """Values above threshold inverted (1 - x), as the pack's Solarize does."""
    category = "postprocessing/Color Adjustments"
    image: IMAGE
    threshold: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Solarize",))

    def run(self):
        import torch
        image = _image(self.image, "image")
        return torch.where(image > self.threshold, 1 - image, image).clamp(0, 1)


class PostProcQuantize(Node):
    """Reduce each image to `colors` colours with Pillow (median cut, the palette chosen without
    dithering, then applied with or without Floyd-Steinberg), as the pack's Quantize does on the
    8-bit picture (ComfyUI's ImageQuantize is the same). RGB only: an alpha channel is dropped."""
    category = "postprocessing/Color Adjustments"
    image: IMAGE
    colors: int = Int(256, min=1, max=256)
    dither: str = Choice(("none", "floyd-steinberg"), "none")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Quantize",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image
        image = _rgb(self.image, "image")
        out = [np.array(quantize(Image.fromarray(_pixels(p), mode="RGB"), self.colors, self.dither).convert("RGB"))
               for p in image]
        return torch.from_numpy(np.stack(out)).float() / 255


class PostProcKMeansQuantize(Node):
    """Reduce each image to `colors` colours by k-means (OpenCV's cv2.kmeans on the float RGB
    values, k-means++ start, one attempt, precision · 5 iterations or a 0.01 move), as the pack's
    old KMeansQuantize did. OpenCV's generator is seeded at 0 before each image (a fresh process's
    state, which the pack, unseeded, ran with on its first call). The pack quantized only the
    batch's first image and gave a batch of one; here every image is quantized. RGB only. Not in
    the pack: pixels × colors × iterations (precision · 5) may be at most 2·10^10 an image (1024²
    at 256 colors and precision 10, some 5 s of OpenCV's k-means on a fast CPU; at precision 100
    it took 36 s), else the run is refused naming precision."""
    category = "postprocessing"
    image: IMAGE
    colors: int = Int(16, min=1, max=256)
    precision: int = Int(10, min=1, max=100)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("KMeansQuantize",))

    def run(self):
        import torch
        image = _rgb(self.image, "image")
        pixels = image.shape[1] * image.shape[2]
        if self.colors > pixels:
            raise NodeInputError("colors", f"{self.colors} clusters for {pixels} pixels: "
                                           "expected at most one per pixel")
        work = pixels * self.colors * self.precision * 5
        if work > KMEANS_MOST_WORK:
            raise NodeInputError("precision", f"{pixels} pixels × {self.colors} colors × {self.precision * 5} "
                                              f"iterations is {work:.3g} an image: expected at most "
                                              f"{KMEANS_MOST_WORK:.0e} (lower precision or colors, or a smaller image)")
        out = []
        for picture in image:
            check_interrupted()  # OpenCV's k-means can't be stopped inside: between images
            out.append(torch.from_numpy(self._quantized(picture.cpu().float().numpy())))
        return torch.stack(out).to(image)

    def _quantized(self, picture):
        import cv2
        import numpy as np
        values = np.ascontiguousarray(picture.reshape(-1, 3), dtype=np.float32)
        cv2.setRNGSeed(0)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, self.precision * 5, 0.01)
        _, labels, centers = cv2.kmeans(values, self.colors, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
        return centers[labels.flatten()].reshape(picture.shape)


# -- effects ----------------------------------------------------------------------------------


class PostProcAsciiArt(Node):
    """Draw the image as coloured characters on black, as the pack's AsciiArt does: the picture is
    shrunk (nearest) to one pixel per char_size square, and each pixel's character (by its mean
    brightness, from the pack's 70 characters, space to "$") is
    drawn in its colour at font_size. The pack draws with the system's arial.ttf; here with
    models/fonts/arial.ttf when it is there, else Pillow's default font at that size (the letters
    then look different). RGB only: an alpha channel is dropped."""
    category = "postprocessing/Effects"
    image: IMAGE
    char_size: int = Int(12, min=0, max=64, step=2)
    font_size: int = Int(12, min=0, max=64, step=2)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("AsciiArt",))

    def run(self):
        import numpy as np
        import torch
        image = _rgb(self.image, "image")
        height, width = image.shape[1:3]
        if self.char_size < 1 or width // self.char_size < 1 or height // self.char_size < 1:
            raise NodeInputError("char_size", f"{self.char_size}: expected 1 or more and at most the picture's "
                                              f"sides ({width}x{height})")
        if self.font_size < 1:
            raise NodeInputError("font_size", "0: expected 1 or more")
        font = text_font("arial.ttf", self.font_size)
        drawn = [np.array(self._drawn(_pixels(p), font)) for p in image]
        return torch.from_numpy(np.stack(drawn)).float().div(255.0).to(image)

    def _drawn(self, pixels, font):
        from PIL import Image, ImageDraw
        picture = Image.fromarray(pixels, "RGB")
        size = self.char_size
        small = picture.resize((picture.width // size, picture.height // size), Image.Resampling.NEAREST)
        out = Image.new("RGB", picture.size, (0, 0, 0))
        draw = ImageDraw.Draw(out)
        for i in range(small.height):
            check_interrupted()  # one draw call per character: a big picture with small ones takes a while
            for j in range(small.width):
                r, g, b = small.getpixel((j, i))
                draw.text((j * size, i * size), ASCII_CHARS[(r + g + b) // 3 * len(ASCII_CHARS) // 256],
                          font=font, fill=(r, g, b))
        return out


class PostProcChromaticAberration(Node):
    """Shift the red, green and blue channels each by its own number of pixels, horizontally
    (positive: right) or vertically (positive: up), wrapping around, as the pack's
    ChromaticAberration does (torch.roll). Gives RGB: an alpha channel is dropped, as in the pack."""
    category = "postprocessing/Effects"
    image: IMAGE
    red_shift: int = Int(0, min=-20, max=20)
    red_direction: str = Choice(DIRECTIONS, "horizontal")
    green_shift: int = Int(0, min=-20, max=20)
    green_direction: str = Choice(DIRECTIONS, "horizontal")
    blue_shift: int = Int(0, min=-20, max=20)
    blue_direction: str = Choice(DIRECTIONS, "horizontal")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ChromaticAberration",))

    def run(self):
        import torch
        image = _rgb(self.image, "image")
        shifts = [(self.red_shift, self.red_direction), (self.green_shift, self.green_direction),
                  (self.blue_shift, self.blue_direction)]
        # vertical shifts are negated: a positive one moves the channel up, as the pack's comment says
        return torch.stack([torch.roll(image[..., c], -shift if direction == "vertical" else shift,
                                        dims=1 if direction == "vertical" else 2)
                             for c, (shift, direction) in enumerate(shifts)], dim=-1)


def _pack_perlin(rng, height: int, width: int, scale: float):
    """The pack's FilmGrain noise: four octaves (scale · 2^octave cells over the picture) of
    gradient noise whose corner gradients ((±1, ±1)) are drawn anew for every pixel, in the pack's
    order (four randint(0, 4) arrays per octave), summed with weights 0.5^octave and divided by
    1 - 0.5^4. Float64 as the pack's numpy."""
    import numpy as np
    vectors = np.array([[1, 1], [-1, 1], [1, -1], [-1, -1]])
    noise = np.zeros((height, width))
    for octave in range(4):
        cells = scale * 2 ** octave
        x, y = np.meshgrid(np.linspace(0, 1, width, endpoint=False) * cells,
                           np.linspace(0, 1, height, endpoint=False) * cells)
        xf, yf = x - x.astype(int), y - y.astype(int)
        u, v = xf * xf * (3 - 2 * xf), yf * yf * (3 - 2 * yf)

        def corner(dx, dy):
            g = vectors[rng.randint(0, 4, (height, width)) % 4]
            return g[:, :, 0] * dx + g[:, :, 1] * dy

        n00, n01, n10, n11 = corner(xf, yf), corner(xf, yf - 1), corner(xf - 1, yf), corner(xf - 1, yf - 1)
        top, bottom = n00 + u * (n10 - n00), n01 + u * (n11 - n01)
        noise += (top + v * (bottom - top)) * 0.5 ** octave
    return noise / (1 - 0.5 ** 4)


def _radial_vignette(height: int, width: int, strength: float):
    """1 - r · min(strength, 1), r the distance from the centre over a -1..1 grid each way
    divided by the largest (the corners: 1)."""
    import numpy as np
    x, y = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
    radius = np.sqrt(x ** 2 + y ** 2)
    return 1 - radius / radius.max() * np.clip(strength, 0, 1)


class PostProcFilmGrain(Node):
    """Film grain, as the pack's FilmGrain does (numpy, float64): the pack's four-octave gradient
    noise at `scale`, stretched to 0..1, times 2 - 1 times intensity, added to every channel and
    clamped; then temperature (above 0 red · (1 + t/100), green · (1 + 0.4 t/100), below 0 blue ·
    (1 - t/100), clamped) and a radial vignette (1 - r · min(vignette, 1)). The pack draws its
    noise from numpy's global generator, unseeded; here from a generator seeded at 0 each run (the
    images of a batch drawing in turn), so the result equals the pack's after np.random.seed(0).
    Where the noise comes out flat (a 1x1 or 2x2 picture: every pixel on the noise's lattice) the
    pack's stretch divides 0 by 0 and gives NaN; here that picture gets no grain."""
    category = "postprocessing/Effects"
    image: IMAGE
    intensity: float = Float(0.2, min=0.0, max=1.0, step=0.01)
    scale: float = Float(10, min=1, max=100, step=1)
    temperature: float = Float(0.0, min=-100, max=100, step=1)
    vignette: float = Float(0.0, min=0.0, max=10.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FilmGrain",))

    def run(self):
        import numpy as np
        import torch
        image = _image(self.image, "image")
        height, width = image.shape[1:3]
        rng = np.random.RandomState(0)
        out = []
        for picture in image.cpu().float().numpy():  # numpy has no bfloat16
            noise = _pack_perlin(rng, height, width, self.scale)
            spread = noise.max() - noise.min()
            # flat noise (a tiny picture, every pixel on the noise's lattice): no grain, not the pack's NaN
            noise = (noise - noise.min()) / spread if spread > 0 else np.full_like(noise, 0.5)
            grain = np.clip(picture + ((noise * 2 - 1) * self.intensity)[:, :, None], 0, 1)
            if self.temperature != 0:
                grain = np.clip(_warmer(grain.copy(), self.temperature), 0, 1)
            if self.vignette != 0:
                grain = np.clip(grain * _radial_vignette(height, width, self.vignette)[..., None], 0, 1)
            out.append(torch.from_numpy(grain))
        return torch.stack(out).to(image)


class PostProcGlow(Node):
    """image + blur(image) · intensity, clamped to 0..1, as the pack's Glow does; the blur is the
    pack's Gaussian over a (2·blur_radius + 1)² square with sigma blur_radius / 3 in units of the
    radius, borders zero. The kernel spans -1..1, so its edge weighs exp(-4.5 / blur_radius²) of
    its centre: at blur_radius 1 a slight blur (0.01), at 2 a Gaussian (0.32), from 3 on close to a
    box blur of that width (0.61 at 3, 0.84 at 5, near 1 beyond)."""
    category = "postprocessing/Effects"
    image: IMAGE
    intensity: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    blur_radius: int = Int(5, min=1, max=50)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Glow",))

    def run(self):
        image = _image(self.image, "image")
        blurred = _pack_gaussian_blur(image, self.blur_radius, self.blur_radius / 3)
        return (image + blurred * self.intensity).clamp(0, 1)


class PostProcPencilSketch(Node):
    """A pencil sketch, as the pack's PencilSketch does: the grey picture (mean of the channels)
    inverted and blurred (the pack's Gaussian over a (2·blur_radius + 1)² square, sigma
    blur_radius / 3 in units of the radius, borders zero: as in Glow, from blur_radius 3 on close to
    a box blur of that width), the grey divided by 1 - that (colour dodge, clamped), then sharpened with the
    pack's 3x3 kernel times sharpen_alpha (0: not sharpened). Gives RGB."""
    category = "postprocessing/Effects"
    image: IMAGE
    blur_radius: int = Int(5, min=1, max=31)
    sharpen_alpha: float = Float(1.0, min=0.0, max=10.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("PencilSketch",))

    def run(self):
        image = _image(self.image, "image")
        grey = image.mean(-1, keepdim=True).expand(*image.shape[:3], 3)
        blurred = _pack_gaussian_blur(1 - grey, self.blur_radius, self.blur_radius / 3)
        sketch = (grey / (1 - blurred + 1e-7)).clamp(0, 1)
        if self.sharpen_alpha != 0.0:
            sketch = _pack_sharpen(sketch, 1, self.sharpen_alpha).clamp(0, 1)
        return sketch


def _edge_ends(line):
    """The pack's PixelSort mask step on one line (0/1): each run of 1s keeps only its two ends."""
    import numpy as np
    before = np.concatenate([[0], line[:-1]])
    after = np.concatenate([line[1:], [0]])
    return line & ((before == 0) | (after == 0))


def _sorted_line(pixels, keys, ends, span_limit: int, backward: bool):
    """One row or column with each run of 0s in `ends` (no longer than span_limit; 0: any) sorted
    by key, stably (ties keep their order, also backward, as Python's sorted(reverse=True))."""
    import numpy as np
    out = pixels.copy()
    bounds = np.flatnonzero(np.diff(np.concatenate([[1], ends, [1]])))  # where runs of 0s start and stop
    for start, stop in zip(bounds[::2], bounds[1::2]):
        if span_limit and stop - start > span_limit:
            continue
        span = keys[start:stop]
        out[start:stop] = pixels[start:stop][np.argsort(-span if backward else span, kind="stable")]
    return out


class PostProcPixelSort(Node):
    """Sort the pixels of each row (horizontal) or column (vertical) between the marks of `mask`,
    as the pack's PixelSort does: each run of marked (above 0) pixels along the line keeps only its
    two ends, and each stretch of unmarked pixels between them (no longer than span_limit; 0: any
    length) is sorted by OpenCV's HSV hue (halved), saturation or value of the float picture,
    forward (ascending) or backward. mask is mask-shaped [B, H, W] as CannyEdgeMask and
    HSVThresholdMask give (an IMAGE [B, H, W, C] is read by its first channel, where the pack's code
    fails), one per image. RGB only."""
    category = "postprocessing/Effects"
    image: IMAGE
    mask: IMAGE
    direction: str = Choice(DIRECTIONS, "horizontal")
    span_limit: int = Int(50, min=0, max=100, step=5)
    sort_by: str = Choice(("hue", "saturation", "value"), "hue")
    order: str = Choice(("forward", "backward"), "forward")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("PixelSort",))

    def run(self):
        import cv2
        import numpy as np
        import torch
        image = _rgb(self.image, "image")
        mask = self.mask
        if not torch.is_tensor(mask) or mask.ndim not in (3, 4):
            raise NodeInputError("mask", "expected a mask [B, H, W] (or an IMAGE [B, H, W, C])")
        mask = mask[..., 0] if mask.ndim == 4 else mask
        if mask.shape[1:] != image.shape[1:3] or len(mask) < len(image):
            raise NodeInputError("mask", f"shape {tuple(mask.shape)}: expected one {image.shape[1]}x{image.shape[2]} "
                                         f"mask per image ({len(image)})")
        channel = ("hue", "saturation", "value").index(self.sort_by)
        out = []
        for picture, marks in zip(image.cpu().float().numpy(), (mask.cpu().float().numpy() > 0).astype(np.uint8)):
            check_interrupted()
            hsv = cv2.cvtColor(picture, cv2.COLOR_RGB2HSV)
            hsv[..., 0] /= 2.0
            keys = hsv[..., channel]
            if self.direction == "vertical":
                picture, keys, marks = picture.transpose(1, 0, 2), keys.T, marks.T
            lines = []
            for i, (p, k, m) in enumerate(zip(picture, keys, marks)):
                if i % 64 == 0:
                    check_interrupted()  # a Python loop per line: a big picture takes seconds
                lines.append(_sorted_line(p, k, _edge_ends(m), self.span_limit, self.order == "backward"))
            lines = np.stack(lines)
            out.append(torch.from_numpy(lines.transpose(1, 0, 2) if self.direction == "vertical" else lines))
        return torch.stack(out).to(image)


class PostProcPixelize(Node):
    """Pixelate, as the pack's Pixelize does: the mean of each pixel_size square (a rest at the
    right and bottom edges that fills no whole square is left out), stretched back to the image's
    size (nearest), clamped to 0..1. pixel_size may not exceed the image's sides."""
    category = "postprocessing/Effects"
    image: IMAGE
    pixel_size: int = Int(8, min=2, max=128)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Pixelize",))

    def run(self):
        import torch.nn.functional as F
        image = _image(self.image, "image")
        height, width = image.shape[1:3]
        if self.pixel_size > min(height, width):
            raise NodeInputError("pixel_size", f"{self.pixel_size} is bigger than the image ({width}x{height})")
        pooled = F.avg_pool2d(image.movedim(-1, 1), kernel_size=self.pixel_size, stride=self.pixel_size)
        return F.interpolate(pooled, size=(height, width), mode="nearest").movedim(1, -1).clamp(0, 1)


class PostProcSineWave(Node):
    """Shift each row (horizontal) by amplitude · sin(2π · row · frequency / height) pixels, cut to
    a whole number and wrapping around (or each column, vertical, by its own wave over the width),
    as the pack's SineWave does. Like the pack only the first three channels are moved: an alpha
    channel comes back 0."""
    category = "postprocessing/Effects"
    image: IMAGE
    amplitude: float = Float(10, min=0, max=150, step=5)
    frequency: float = Float(5, min=0, max=20, step=1)
    direction: str = Choice(DIRECTIONS, "horizontal")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("SineWave",))

    def run(self):
        import math

        import numpy as np
        import torch
        _rgb(self.image, "image")  # three channels at least; a fourth is kept (as zeros)
        image = self.image
        vertical = self.direction == "vertical"
        lines = image.shape[2] if vertical else image.shape[1]
        length = image.shape[1] if vertical else image.shape[2]
        # numpy's sin, as the pack: the cut to whole pixels may turn on the last bit
        offsets = torch.tensor([int(self.amplitude * np.sin(2 * math.pi * i * self.frequency / lines))
                                for i in range(lines)])
        # out[line, k] = in[line, (k - offset) mod length]: torch.roll of each line by its offset
        source = ((torch.arange(length)[None, :] - offsets[:, None]) % length).to(image.device)
        out = torch.zeros_like(image)
        if vertical:
            out[..., :3] = torch.gather(image[..., :3], 1, source.T[None, :, :, None].expand(len(image), -1, -1, 3))
        else:
            out[..., :3] = torch.gather(image[..., :3], 2, source[None, :, :, None].expand(len(image), -1, -1, 3))
        return out


class PostProcVignette(Node):
    """Darken towards the corners: image · (1 - r · min(vignette, 1)), r the distance from the
    centre over a -1..1 grid each way divided by the corners', clamped to 0..1, as the pack's
    Vignette does. The pack's grid is laid out width by height, so its code fails on a picture that
    is not square; here the grid follows the picture (on a square one the two agree)."""
    category = "postprocessing/Effects"
    image: IMAGE
    vignette: float = Float(0.0, min=0.0, max=10.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Vignette",))

    def run(self):
        import torch
        image = _image(self.image, "image")
        if self.vignette == 0:
            return image
        x = torch.linspace(-1, 1, image.shape[2])
        y = torch.linspace(-1, 1, image.shape[1])
        radius = (y[:, None] ** 2 + x[None, :] ** 2).sqrt()
        shade = 1 - radius / radius.max() * min(self.vignette, 1.0)
        return (image * shade[None, :, :, None].to(image)).clamp(0, 1)
