"""comfyui_controlnet_aux's (Fannovel16) model-free preprocessors, under the pack's class names,
inputs (in the pack's order, so UI-format saves read by position) and categories, computed as the
pack computes them with OpenCV's own calls (opencv-python-headless, imported inside run()).

Read from the pack's source in the reference index: the node wrappers and utils.py of the
`define_preprocessor_inputs` era (utils.py at commit cb5790ad75c621729068b6164392728e6cdaf8d5,
__init__.py's AIO_Preprocessor at 3b3532feb29e1ad551c3e44153482388414ecb96,
hint_image_enchance.py at 46f5d5ac72c5ee0b7661fab81e2dfb992a82c24a with ImageGenResolutionFromImage's
later (W, H) fix, lvminthin.py at 4f0255af688e58a43b265162f2c179563d665182) and the algorithms
under src/custom_controlnet_aux/ (util.py at 0f0f5631ca370fd35e2a45f477f8ec294ee1d4a9, canny at
c47ccabe150aa9d4033a7154138ab82be306bd79, binary and the shuffle/recolor/scribble detectors of the
same tree).

The pack's common rules, kept here:
- each image of the batch becomes uint8 as `image * 255` cast (truncated, not rounded);
- `resolution` below 64 (or not an int) counts as 512; ComfyUI does not check the bounds of a
  linked value, so a linked resolution under 64 (a Pixel Perfect Resolution of a small generation
  size) reaches that rule here too;
- a linked resolution is not known before the run, so the size checks made before it can only
  assume the least (64); when the node runs, a resolution that would make a side of the resized
  picture larger than 16384 pixels is refused (naming `resolution`);
- "resize with pad": the image is scaled so that its short side is `resolution` (each side
  round(side * k)), with INTER_AREA when shrinking and the detector's upscale method (INTER_CUBIC,
  INTER_AREA for Scribble) when growing, edge-padded to multiples of 64, processed, then cropped
  back to the scaled size. The result is NOT resized back to the input's size: a 768x512 picture at
  resolution 512 gives 768x512, a 1024x1024 one gives 512x512 (the pack's current behaviour).

Nodes: CannyEdgePreprocessor, PyraCannyPreprocessor (its wrapper at commit
f5868ffb3a7adf983eb06068bce2dc3b2d444e49), LineartStandardPreprocessor (model-free; wrapper of the
define_preprocessor_inputs era, detector at 2e4e7f68df6378a3e13685d0144dfc24497ac221),
BinaryPreprocessor, ColorPreprocessor, ShufflePreprocessor, TilePreprocessor,
TTPlanet_TileSimple_Preprocessor, InpaintPreprocessor, ScribblePreprocessor, Scribble_XDoG_Preprocessor,
ImageLuminanceDetector, ImageIntensityDetector, PixelPerfectResolution, ImageGenResolutionFromImage,
ImageGenResolutionFromLatent, HintImageEnchance, AIO_Preprocessor (these preprocessors and Depth
Anything) and ControlNetPreprocessorSelector. Depth Anything V1 / V2 run on weight files the user
brings: nodes/pack_nodes_controlnet_aux_depth.py.

Left out: the other preprocessors that download model weights (HED, PiDiNet, lineart, MiDaS, Zoe,
DWPose, OpenPose, ...: they stay unknown classes, and AIO_Preprocessor refuses them by name);
TTPlanet_TileGF_Preprocessor (its FastGuidedFilter lives in a file of the pack that the
reference index does not hold, so its numbers could not be matched); ExecuteAllControlNetPreprocessors
and ControlNetAuxSimpleAddText (a graph expansion over every preprocessor, and a font file).
"""

from __future__ import annotations

from graphflow.api import IMAGE, INT, LATENT, MASK, STRING, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node, \
    NodeInputError, Size, progress
from nodes.image import MAX_SIZE, _image
from nodes.pack_nodes import _core

COMFY_PACK = "comfyui_controlnet_aux"  # the custom node pack this module's ComfyUI classes come from

MAX_RESOLUTION = 16384  # the pack's INPUT.RESOLUTION max (ComfyUI's MAX_RESOLUTION)
MAX_IMAGEGEN_RESOLUTION = 8192  # hint_image_enchance.py's limit for the generation size
SEED_MAX = 0xFFFFFFFFFFFFFFFF
RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")  # the pack's ResizeMode values
LINES = "ControlNet Preprocessors/Line Extractors"
T2I = "ControlNet Preprocessors/T2IAdapter-only"
TILE = "ControlNet Preprocessors/tile"
RECOLOR = "ControlNet Preprocessors/Recolor"
TOP = "ControlNet Preprocessors"


def Resolution():
    """The pack's INPUT.RESOLUTION(): the size of the picture's short side the detector works at.
    A linked value may be under 64 (ComfyUI passes it unchecked; the pack then uses 512)."""
    return Int(512, min=64, max=MAX_RESOLUTION, step=64, linked_min=None)


LEAST_RESOLUTION = 64  # the least resolution a detector works at: what a linked one is assumed to be


# -- the pack's common pipeline ------------------------------------------------------------------


def detect_resolution(resolution) -> int:
    """common_annotator_call's rule: an int of at least 64, else 512."""
    return resolution if type(resolution) is int and resolution >= 64 else 512


def scaled_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """(height, width) after resize_image_with_pad's scaling (short side -> resolution)."""
    import numpy as np
    k = float(resolution) / float(min(height, width))
    return int(np.round(float(height) * k)), int(np.round(float(width) * k))


def check_scaled(height: int, width: int, resolution: int, old_h: int, old_w: int) -> None:
    """Refuse a resized picture with a side over MAX_SIZE: the check the estimate makes before the
    run cannot see a linked resolution, so it is made here, when the node runs."""
    if max(height, width) > MAX_SIZE:
        raise NodeInputError("resolution", f"{resolution} would resize the {old_w}x{old_h} picture to "
                                           f"{width}x{height}: expected a resolution that keeps each side at "
                                           f"most {MAX_SIZE} pixels")


def hwc3(x):
    """The pack's HWC3: grey to three channels; RGBA composited over white."""
    import numpy as np
    if x.ndim == 2:
        x = x[:, :, None]
    channels = x.shape[2]
    if channels == 3:
        return x
    if channels == 1:
        return np.concatenate([x, x, x], axis=2)
    if channels == 4:
        color = x[:, :, 0:3].astype(np.float32)
        alpha = x[:, :, 3:4].astype(np.float32) / 255.0
        return (color * alpha + 255.0 * (1.0 - alpha)).clip(0, 255).astype(np.uint8)
    raise NodeInputError("image", f"expected 1, 3 or 4 channels, got {channels}")


def resize_with_pad(image, resolution: int, upscale: int):
    """resize_image_with_pad: (padded uint8 image, (height, width) to crop back to)."""
    import cv2
    import numpy as np
    img = hwc3(image)
    height, width = scaled_size(img.shape[0], img.shape[1], resolution)
    check_scaled(height, width, resolution, img.shape[0], img.shape[1])
    growing = float(resolution) / float(min(img.shape[:2])) > 1
    img = cv2.resize(img, (width, height), interpolation=upscale if growing else cv2.INTER_AREA)
    pad_h, pad_w = -height % 64, -width % 64  # up to the next multiple of 64
    return np.ascontiguousarray(np.pad(img, [[0, pad_h], [0, pad_w], [0, 0]], mode="edge")), (height, width)


def crop(x, size):
    import numpy as np
    return np.ascontiguousarray(x[:size[0], :size[1], ...])


def non_empty(images, name: str):
    """The IMAGE batch, refused (naming the input) when it has no image or a side of 0 pixels."""
    images = _image(images, name)
    if min(images.shape[:3]) < 1:
        batch, height, width, _ = images.shape
        raise NodeInputError(name, f"{batch} image(s) of {width}x{height}: expected at least one image "
                                   "with both sides at least 1 pixel")
    return images


def each_image(images, name: str, detect):
    """common_annotator_call: each image as uint8 through `detect`, back to a float IMAGE batch."""
    import numpy as np
    import torch
    images = non_empty(images, name)
    out = []
    for i, image in enumerate(images):
        # The pack casts image * 255 straight to uint8 (truncating); clamped first so that values
        # outside 0..1 saturate instead of wrapping.
        pixels = (image.detach().cpu().float() * 255.0).clamp(0, 255).numpy().astype(np.uint8)
        out.append(torch.from_numpy(detect(pixels).astype(np.float32) / 255.0))
        progress(i + 1, len(images))
    return torch.stack(out, dim=0)


def detected_estimate(widgets: dict, inputs: dict, name: str = "image") -> Estimate:
    """The size resize-with-pad gives, and its working memory (padded uint8 and float copies); for
    a linked resolution (None here), the least it can be: at resolution 64."""
    size = inputs.get(name)
    resolution = widgets.get("resolution")
    if size is None or min(size.height, size.width) < 1:
        return Estimate(None)
    least = LEAST_RESOLUTION if resolution is None else detect_resolution(resolution)
    height, width = scaled_size(size.height, size.width, least)
    padded = (height + 64) * (width + 64)
    return Estimate(Size(size.batch, height, width), memory=padded * 3 * 4 * 4)


# -- the algorithms (each takes and gives HxWx3 uint8 at the detected size) ----------------------


def canny_map(image, resolution: int, low: int, high: int):
    import cv2
    padded, size = resize_with_pad(image, resolution, cv2.INTER_CUBIC)
    return hwc3(crop(cv2.Canny(padded, low, high), size))


def pyramid_canny_map(image, resolution: int, low: int, high: int):
    """PyraCannyDetector: each channel's Canny at 20%, 30%, ... 100% of the resized picture
    (INTER_AREA), the coarser sums carried up (INTER_LINEAR) at weight 0.75 against 0.25 for each
    finer level; the channels added and stretched from their 1st to 99th percentile to 0..255."""
    import cv2
    import numpy as np
    padded, size = resize_with_pad(image, resolution, cv2.INTER_CUBIC)
    h, w = padded.shape[:2]
    edges = None
    for k in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        small = cv2.resize(padded, (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA)
        level = np.stack([cv2.Canny(small[..., c], low, high).astype(np.float32) / 255.0 for c in range(3)], axis=2)
        if edges is not None:
            level = cv2.resize(edges, (level.shape[1], level.shape[0]), interpolation=cv2.INTER_LINEAR) * 0.75 \
                + level * 0.25
        edges = level
    total = np.sum(edges, axis=2)
    low_value, high_value = np.percentile(total, 1), np.percentile(total, 99)
    # Edges covering under 1% of the picture make the pack divide by 0: its edge pixels become
    # inf (255 after clipping) and the rest NaN, which its uint8 cast turns into 0 (on x86).
    with np.errstate(divide="ignore", invalid="ignore"):
        stretched = (total - low_value) / (high_value - low_value) * 255.0
    stretched = np.nan_to_num(stretched, nan=0.0, posinf=255.0, neginf=0.0)
    return hwc3(crop(stretched.clip(0, 255).astype(np.uint8), size))


def lineart_standard_map(image, resolution: int, sigma: float, threshold: int):
    """LineartStandardDetector: how much darker each pixel is than its Gaussian-blurred
    surroundings (the least over the channels), scaled so that the median of the values over
    intensity_threshold (at least 16) lands at 127."""
    import cv2
    import numpy as np
    padded, size = resize_with_pad(image, resolution, cv2.INTER_CUBIC)
    x = padded.astype(np.float32)
    darker = np.min(cv2.GaussianBlur(x, (0, 0), sigma) - x, axis=2).clip(0, 255)
    strong = darker[darker > threshold]
    # The pack's max(16, median) also gives 16 when nothing passes (the median of nothing is NaN).
    scale = max(16.0, float(np.median(strong))) if strong.size else 16.0
    lines = (darker / scale * 127).clip(0, 255).astype(np.uint8)
    return hwc3(crop(lines, size))


def binary_map(image, resolution: int, threshold: int):
    import cv2
    padded, size = resize_with_pad(image, resolution, cv2.INTER_CUBIC)
    grey = cv2.cvtColor(padded, cv2.COLOR_RGB2GRAY)
    if threshold in (0, 255):  # Otsu's threshold, taken over the padded picture as the pack does
        _, lines = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    else:
        _, lines = cv2.threshold(grey, threshold, 255, cv2.THRESH_BINARY_INV)
    return hwc3(crop(255 - cv2.cvtColor(lines, cv2.COLOR_GRAY2RGB), size))


def color_map(image, resolution: int):
    """The T2I colour palette: short side -> resolution (always INTER_AREA, no padding), a cell per
    64x64 block (INTER_CUBIC down), blown back up with INTER_NEAREST."""
    import cv2
    img = hwc3(image)
    h, w = img.shape[:2]
    if h < w:
        size = (int(round(w / h * resolution)), resolution)
    else:
        size = (resolution, int(round(h / w * resolution)))
    check_scaled(size[1], size[0], resolution, h, w)
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    cells = cv2.resize(img, (w // 64, h // 64), interpolation=cv2.INTER_CUBIC)
    return hwc3(cv2.resize(cells, (w, h), interpolation=cv2.INTER_NEAREST))


def noise_disk(height: int, width: int, cell: int, rng):
    """make_noise_disk with one channel: uniform noise on a grid of `cell` pixels, cubic-upscaled,
    cropped and stretched to 0..1."""
    import cv2
    noise = rng.uniform(low=0, high=1, size=((height // cell) + 2, (width // cell) + 2, 1))
    noise = cv2.resize(noise, (width + 2 * cell, height + 2 * cell), interpolation=cv2.INTER_CUBIC)
    noise = noise[cell: cell + height, cell: cell + width]
    noise -= noise.min()
    noise /= noise.max()
    return noise[:, :, None]


def shuffle_map(image, resolution: int, seed: int):
    """ContentShuffleDetector: the picture remapped by two smooth random fields (cell 256)."""
    import cv2
    import numpy as np
    padded, size = resize_with_pad(image, resolution, cv2.INTER_CUBIC)
    h, w = padded.shape[:2]
    # The pack seeds numpy's Generator with the seed; seed 0 draws from numpy's global state
    # instead, which nothing here can replay: an unseeded Generator stands in for it.
    rng = np.random.default_rng(seed) if seed else np.random.default_rng()
    x = noise_disk(h, w, 256, rng) * float(w - 1)
    y = noise_disk(h, w, 256, rng) * float(h - 1)
    flow = np.concatenate([x, y], axis=2).astype(np.float32)
    return crop(cv2.remap(padded, flow, None, cv2.INTER_LINEAR), size)


def tile_map(image, pyr_up_iters: int):
    """TileDetector: sides rounded to multiples of 64, shrunk 2**iters times (INTER_AREA), then
    pyrUp iters times. The pack passes no resolution to it."""
    import cv2
    import numpy as np
    h = int(np.round(image.shape[0] / 64.0)) * 64
    w = int(np.round(image.shape[1] / 64.0)) * 64
    if min(h, w) < 1:
        raise NodeInputError("image", f"the {image.shape[1]}x{image.shape[0]} picture's sides round to {w}x{h} "
                                      "(multiples of 64): expected sides of at least 32 pixels")
    small = (w // (2 ** pyr_up_iters), h // (2 ** pyr_up_iters))
    if min(small) < 1:
        raise NodeInputError("pyrUp_iters", f"{pyr_up_iters} halvings leave nothing of the {image.shape[1]}x"
                                            f"{image.shape[0]} picture (sides rounded to {w}x{h}): expected fewer")
    detected = hwc3(cv2.resize(image, small, interpolation=cv2.INTER_AREA))
    for _ in range(pyr_up_iters):
        detected = cv2.pyrUp(detected)
    return detected


def tile_simple_map(image, scale_factor: float, blur_strength: float):
    """TTPlanet's simple tile: shrunk by scale_factor (INTER_AREA), back up with INTER_LANCZOS4, then
    a Gaussian blur of ksize int(blur_strength) (made odd) and sigma blur_strength / 2. The pack
    swaps RGB to BGR and back around it; every step works per channel, so the swap changes nothing."""
    import cv2
    h, w = image.shape[:2]
    small = (int(w / scale_factor), int(h / scale_factor))
    if min(small) < 1:
        raise NodeInputError("scale_factor", f"{scale_factor} shrinks the {w}x{h} picture to nothing")
    img = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LANCZOS4)
    ksize = int(blur_strength)
    ksize += 1 - ksize % 2
    return hwc3(cv2.GaussianBlur(img, (ksize, ksize), sigmaX=blur_strength / 2))


def scribble_map(image, resolution: int):
    """ScribbleDetector: black where the darkest channel is under 127, white elsewhere (INTER_AREA
    both ways)."""
    import cv2
    import numpy as np
    padded, size = resize_with_pad(image, resolution, cv2.INTER_AREA)
    lines = np.full_like(padded, 255)
    lines[np.min(padded, axis=2) < 127] = 0
    return crop(lines, size)


def xdog_map(image, resolution: int, threshold: int):
    """ScribbleXDog_Detector: the difference of Gaussian blurs (sigma 0.5 and 5) of each channel,
    white where 2 * (255 - dog) > threshold. That product is uint8 arithmetic in the pack, so it
    wraps past 255; kept, since it decides which pixels are lines."""
    import cv2
    import numpy as np
    padded, size = resize_with_pad(image, resolution, cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(padded.astype(np.float32), (0, 0), 0.5)
    coarse = cv2.GaussianBlur(padded.astype(np.float32), (0, 0), 5.0)
    dog = (255 - np.min(coarse - fine, axis=2)).clip(0, 255).astype(np.uint8)
    strength = (np.uint8(255) - dog) * np.uint8(2)  # uint8: wraps as the pack's does
    lines = np.zeros_like(padded)
    lines[strength > threshold] = 255
    return hwc3(crop(lines, size))


def recolor_map(image, resolution: int, gamma: float, mode: str):
    """Recolorizer: the L of Lab ("luminance", computed by OpenCV's BGR2LAB on the RGB picture, as
    the pack calls it) or the V of HSV ("intensity"), to the power gamma_correction, as grey."""
    import cv2
    import numpy as np
    padded, size = resize_with_pad(image, resolution, cv2.INTER_CUBIC)
    if mode == "luminance":
        channel = cv2.cvtColor(padded, cv2.COLOR_BGR2LAB)[:, :, 0]
    else:
        channel = cv2.cvtColor(padded, cv2.COLOR_BGR2HSV)[:, :, 2]
    grey = ((channel.astype(np.float32) / 255.0) ** gamma * 255.0).clip(0, 255).astype(np.uint8)
    return hwc3(crop(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), size))


# -- the preprocessor nodes ----------------------------------------------------------------------


class CannyEdgePreprocessor(Node):
    """Canny edges, as comfyui_controlnet_aux's Canny Edge: the picture resized to `resolution` on
    its short side (padded to multiples of 64 meanwhile), OpenCV's Canny with the two thresholds,
    white edges on black. The result has the resized size, not the input's. A linked resolution
    under 64 counts as 512, as in the pack; one that would make a side of the resized picture
    larger than 16384 pixels is refused when the node runs."""
    display_name = "Canny Edge"
    category = LINES
    image: IMAGE
    low_threshold: int = Int(100, min=0, max=255)
    high_threshold: int = Int(200, min=0, max=255)
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("CannyEdgePreprocessor",), optional=("low_threshold", "high_threshold", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    def run(self):
        res = detect_resolution(self.resolution)
        return each_image(self.image, "image", lambda x: canny_map(x, res, self.low_threshold, self.high_threshold))


class PyraCannyPreprocessor(Node):
    """Pyramid Canny, as comfyui_controlnet_aux's PyraCanny: Canny edges of each channel at nine
    scales (20% to 100%) of the resized picture, blended coarse to fine and stretched to 0..255,
    so structure of every size shows (made for SAI's Control-LoRA Canny). At the resized size."""
    display_name = "PyraCanny"
    category = LINES
    image: IMAGE
    low_threshold: int = Int(64, min=0, max=255)
    high_threshold: int = Int(128, min=0, max=255)
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("PyraCannyPreprocessor",), optional=("low_threshold", "high_threshold", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    def run(self):
        res = detect_resolution(self.resolution)
        return each_image(self.image, "image",
                          lambda x: pyramid_canny_map(x, res, self.low_threshold, self.high_threshold))


class LineartStandardPreprocessor(Node):
    """Standard lineart, as comfyui_controlnet_aux's Standard Lineart (model-free): white where
    the picture is darker than its Gaussian blur (sigma guassian_sigma, the pack's spelling), grey
    levels normalised by the median line strength over intensity_threshold. At the resized size."""
    display_name = "Standard Lineart"
    category = LINES
    image: IMAGE
    guassian_sigma: float = Float(6.0, min=0.0, max=100.0, step=0.01)
    intensity_threshold: int = Int(8, min=0, max=16)
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("LineartStandardPreprocessor",),
                       optional=("guassian_sigma", "intensity_threshold", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    def run(self):
        if self.guassian_sigma <= 0:  # OpenCV derives the blur's size from sigma: 0 gives none
            raise NodeInputError("guassian_sigma", f"{self.guassian_sigma}: expected more than 0")
        res = detect_resolution(self.resolution)
        return each_image(self.image, "image", lambda x: lineart_standard_map(x, res, self.guassian_sigma,
                                                                              self.intensity_threshold))


class BinaryPreprocessor(Node):
    """Binary lines, as comfyui_controlnet_aux's Binary Lines: grey levels above bin_threshold white,
    the rest black; a threshold of 0 or 255 uses Otsu's. At the resized size (see Canny Edge)."""
    display_name = "Binary Lines"
    category = LINES
    image: IMAGE
    bin_threshold: int = Int(100, min=0, max=255)
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("BinaryPreprocessor",), optional=("bin_threshold", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    def run(self):
        res = detect_resolution(self.resolution)
        return each_image(self.image, "image", lambda x: binary_map(x, res, self.bin_threshold))


def color_estimate(widgets, inputs):
    """The palette's size; for a linked resolution, the least it can be (at 64)."""
    size, resolution = inputs.get("image"), widgets.get("resolution")
    if size is None or min(size.height, size.width) < 1:
        return Estimate(None)
    res = LEAST_RESOLUTION if resolution is None else detect_resolution(resolution)
    h, w = size.height, size.width
    height, width = (res, int(round(w / h * res))) if h < w else (int(round(h / w * res)), res)
    return Estimate(Size(size.batch, height, width), memory=height * width * 3 * 4)


class ColorPreprocessor(Node):
    """The T2I-Adapter colour palette, as comfyui_controlnet_aux's Color Pallete: the picture with
    its short side at `resolution`, reduced to one colour per 64x64 block."""
    display_name = "Color Pallete"
    category = T2I
    image: IMAGE
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ColorPreprocessor",), optional=("resolution",))
    estimate = classmethod(lambda cls, widgets, inputs: color_estimate(widgets, inputs))

    def run(self):
        res = detect_resolution(self.resolution)
        return each_image(self.image, "image", lambda x: color_map(x, res))


class ShufflePreprocessor(Node):
    """Content shuffle, as comfyui_controlnet_aux's Content Shuffle: the resized picture warped by
    two smooth random fields drawn from numpy's Generator seeded with `seed` (the same seed gives
    the same picture as the pack). Seed 0 draws a fresh warp each time the node actually runs (the
    pack draws it from numpy's global state, which cannot be replayed); while its inputs are
    unchanged the node is not run again and its cached picture is reused. Each image of a batch
    takes a fresh Generator of the same seed, so a seeded batch gets the same warp on every image."""
    display_name = "Content Shuffle"
    category = T2I
    image: IMAGE
    resolution: int = Resolution()
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ShufflePreprocessor",), optional=("resolution", "seed"))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    def run(self):
        res = detect_resolution(self.resolution)
        return each_image(self.image, "image", lambda x: shuffle_map(x, res, self.seed))


def tile_estimate(widgets, inputs):
    """Each side rounded to a multiple of 64, halved pyrUp_iters times (rounding down) and doubled
    back; for a linked pyrUp_iters, the least that gives (at its max, 10)."""
    size, iters = inputs.get("image"), widgets.get("pyrUp_iters")
    if size is None:
        return Estimate(None)
    step = 2 ** (iters if isinstance(iters, int) else 10)
    return Estimate(Size(size.batch, round(size.height / 64) * 64 // step * step,
                         round(size.width / 64) * 64 // step * step))


class TilePreprocessor(Node):
    """The tile hint, as comfyui_controlnet_aux's Tile: the picture (its sides rounded to multiples
    of 64) shrunk 2**pyrUp_iters times with INTER_AREA, then doubled back by pyrUp pyrUp_iters
    times. As in the pack, `resolution` is taken but not used (its TileDetector has none), and the
    shift pyrUp leaves (up-left, growing with the iterations) is not corrected: a 2025 change of the
    pack (its PR #562) adds a correction, but the version of it read here could not run (it reads
    an undefined size), so the long-standing behaviour is kept."""
    display_name = "Tile"
    category = TILE
    image: IMAGE
    pyrUp_iters: int = Int(3, min=1, max=10)
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("TilePreprocessor",), optional=("pyrUp_iters", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: tile_estimate(widgets, inputs))

    def run(self):
        return each_image(self.image, "image", lambda x: tile_map(x, self.pyrUp_iters))


class TTPlanetTileSimple(Node):
    """TTPlanet's simple tile hint, as comfyui_controlnet_aux's TTPlanet Tile Simple: the picture
    shrunk by scale_factor and resized back (INTER_AREA down, INTER_LANCZOS4 up), then blurred
    (Gaussian, kernel int(blur_strength) made odd, sigma blur_strength / 2). Keeps the input's size."""
    display_name = "TTPlanet Tile Simple"
    category = TILE
    image: IMAGE
    scale_factor: float = Float(1.0, min=1.0, max=8.0, step=0.01)
    blur_strength: float = Float(2.0, min=1.0, max=10.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("TTPlanet_TileSimple_Preprocessor",), optional=("scale_factor", "blur_strength"))

    def run(self):
        return each_image(self.image, "image", lambda x: tile_simple_map(x, self.scale_factor, self.blur_strength))


class InpaintPreprocessor(Node):
    """The inpaint ControlNet's hint, as comfyui_controlnet_aux's Inpaint Preprocessor: the mask
    resized to the image (bilinear), and the pixels where it is over 0.5 set to -1 (or to 0, black,
    with black_pixel_for_xinsir_cn, for xinsir's union ControlNet). One mask for every image, or one
    per image (the pack takes only as many masks as images)."""
    display_name = "Inpaint Preprocessor"
    category = "ControlNet Preprocessors/others"
    image: IMAGE
    mask: MASK
    black_pixel_for_xinsir_cn: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("InpaintPreprocessor",), optional=("black_pixel_for_xinsir_cn",))

    def run(self):
        import torch
        import torch.nn.functional as F
        image, mask = non_empty(self.image, "image"), self.mask
        if not torch.is_tensor(mask) or mask.ndim not in (2, 3):
            raise NodeInputError("mask", "expected a MASK: a [B, H, W] or [H, W] tensor")
        mask = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).to(image.device, torch.float32)
        mask = F.interpolate(mask, size=(image.shape[1], image.shape[2]), mode="bilinear")
        mask = mask.movedim(1, -1).expand((-1, -1, -1, image.shape[3]))
        if mask.shape[0] not in (1, image.shape[0]):
            raise NodeInputError("mask", f"{mask.shape[0]} masks for {image.shape[0]} images: expected one, or one "
                                         "per image")
        out = image.clone()
        out[(mask > 0.5).expand(out.shape)] = 0.0 if self.black_pixel_for_xinsir_cn else -1.0
        return out


class ScribblePreprocessor(Node):
    """Scribble lines, as comfyui_controlnet_aux's Scribble Lines: black where the picture's darkest
    channel is under 127, white elsewhere, at the resized size (see Canny Edge; resampled with
    INTER_AREA both ways)."""
    display_name = "Scribble Lines"
    category = LINES
    image: IMAGE
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ScribblePreprocessor",), optional=("resolution",))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    def run(self):
        res = detect_resolution(self.resolution)
        return each_image(self.image, "image", lambda x: scribble_map(x, res))


class ScribbleXDoGPreprocessor(Node):
    """XDoG scribble lines, as comfyui_controlnet_aux's Scribble XDoG Lines: white lines where the
    difference of two Gaussian blurs (sigma 0.5 and 5) of the resized picture passes `threshold`."""
    display_name = "Scribble XDoG Lines"
    category = LINES
    image: IMAGE
    threshold: int = Int(32, min=1, max=64)
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Scribble_XDoG_Preprocessor",), optional=("threshold", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    def run(self):
        res = detect_resolution(self.resolution)
        return each_image(self.image, "image", lambda x: xdog_map(x, res, self.threshold))


class ImageLuminanceDetector(Node):
    """Luminance for the recolor ControlNet, as comfyui_controlnet_aux's Image Luminance: the L of
    OpenCV's Lab (the pack hands it the RGB picture as BGR, kept), to the power gamma_correction,
    as grey, at the resized size (see Canny Edge)."""
    display_name = "Image Luminance"
    category = RECOLOR
    image: IMAGE
    gamma_correction: float = Float(1.0, min=0.1, max=2.0, step=0.01)
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageLuminanceDetector",), optional=("gamma_correction", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    def run(self):
        res = detect_resolution(self.resolution)
        return each_image(self.image, "image", lambda x: recolor_map(x, res, self.gamma_correction, "luminance"))


class ImageIntensityDetector(Node):
    """Intensity for the recolor ControlNet, as comfyui_controlnet_aux's Image Intensity: the V of
    HSV (the brightest channel), to the power gamma_correction, as grey, at the resized size."""
    display_name = "Image Intensity"
    category = RECOLOR
    image: IMAGE
    gamma_correction: float = Float(1.0, min=0.1, max=2.0, step=0.01)
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageIntensityDetector",), optional=("gamma_correction", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    def run(self):
        res = detect_resolution(self.resolution)
        return each_image(self.image, "image", lambda x: recolor_map(x, res, self.gamma_correction, "intensity"))


# -- resolution helpers and the hint resizer ----------------------------------------------------


def pixel_perfect(raw_h: int, raw_w: int, width: int, height: int, resize_mode: str) -> int:
    """sd-webui-controlnet's pixel-perfect estimate, as the pack ports it."""
    import numpy as np
    k0, k1 = float(height) / float(raw_h), float(width) / float(raw_w)
    k = min(k0, k1) if resize_mode == "Resize and Fill" else max(k0, k1)
    return int(np.round(k * float(min(raw_h, raw_w))))


class PixelPerfectResolution(Node):
    """The preprocessor resolution that matches the generation size, as comfyui_controlnet_aux's
    Pixel Perfect Resolution: the picture's short side scaled by the larger of the two ratios
    (generation / picture) — by the smaller for "Resize and Fill" — rounded."""
    display_name = "Pixel Perfect Resolution"
    category = TOP
    original_image: IMAGE
    image_gen_width: int = Int(512, min=64, max=MAX_IMAGEGEN_RESOLUTION, step=8)
    image_gen_height: int = Int(512, min=64, max=MAX_IMAGEGEN_RESOLUTION, step=8)
    resize_mode: str = Choice(RESIZE_MODES, "Just Resize")
    outputs = {"RESOLUTION (INT)": INT}
    comfy = ComfyAlias(("PixelPerfectResolution",))

    def run(self):
        _, raw_h, raw_w, _ = non_empty(self.original_image, "original_image").shape
        return pixel_perfect(raw_h, raw_w, self.image_gen_width, self.image_gen_height, self.resize_mode)


class ImageGenResolutionFromImage(Node):
    """The image's width and height, as comfyui_controlnet_aux's Generation Resolution From Image."""
    display_name = "Generation Resolution From Image"
    category = TOP
    image: IMAGE
    outputs = {"IMAGE_GEN_WIDTH (INT)": INT, "IMAGE_GEN_HEIGHT (INT)": INT}
    comfy = ComfyAlias(("ImageGenResolutionFromImage",))

    def run(self):
        _, height, width, _ = self.image.shape
        return width, height


class ImageGenResolutionFromLatent(Node):
    """The pixel width and height of a latent (its sides times 8), as comfyui_controlnet_aux's
    Generation Resolution From Latent."""
    display_name = "Generation Resolution From Latent"
    category = TOP
    latent: LATENT
    outputs = {"IMAGE_GEN_WIDTH (INT)": INT, "IMAGE_GEN_HEIGHT (INT)": INT}
    comfy = ComfyAlias(("ImageGenResolutionFromLatent",))

    def run(self):
        samples = self.latent.get("samples") if isinstance(self.latent, dict) else None
        if samples is None or samples.ndim < 4:
            raise NodeInputError("latent", "expected a LATENT with samples [B, C, H, W]")
        return samples.shape[-1] * 8, samples.shape[-2] * 8


def _rotations(raw):
    """lvminthin's kernel lists: every kernel at 0, 90, 180, 270 degrees anticlockwise (numpy's
    rot90), in that order."""
    def turned(kernel, times):
        for _ in range(times):
            kernel = tuple(zip(*kernel))[::-1]
        return tuple(map(tuple, kernel))
    return tuple(turned(k, turn) for turn in range(4) for k in raw)


THIN_KERNELS = _rotations((((-1, -1, -1), (0, 1, 0), (1, 1, 1)), ((0, -1, -1), (1, 1, -1), (0, 1, 0))))
PRUNE_KERNELS = _rotations((((-1, -1, -1), (-1, 1, -1), (0, 0, -1)), ((-1, -1, -1), (-1, 1, -1), (-1, 0, 0))))


def _thin_pass(x, kernels) -> bool:
    """Remove each hit-or-miss pattern in turn from x (in place); whether any was found."""
    import cv2
    import numpy as np
    changed = False
    for kernel in kernels:
        hits = np.where(cv2.morphologyEx(x, cv2.MORPH_HITMISS, kernel) > 127)
        x[hits] = 0
        changed = changed or hits[0].shape[0] > 0
    return changed


def lvmin_thin(x, prunings: bool):
    """Lvmin Zhang's edge thinning (sd-webui-controlnet's lvminthin): up to 32 thinning passes,
    then one pruning pass when asked."""
    import numpy as np
    thin = [np.array(k, dtype=np.int32) for k in THIN_KERNELS]
    for _ in range(32):
        if not _thin_pass(x, thin):
            break
    if prunings:
        _thin_pass(x, [np.array(k, dtype=np.int32) for k in PRUNE_KERNELS])
    return x


def nake_nms(x):
    """Keep the pixels that are a maximum along some of the four line directions."""
    import cv2
    import numpy as np
    y = np.zeros_like(x)
    lines = ([[0, 0, 0], [1, 1, 1], [0, 0, 0]], [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
             [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    for line in lines:
        np.putmask(y, cv2.dilate(x, kernel=np.array(line, dtype=np.uint8)) == x, x)
    return y


def high_quality_resize(x, size: tuple[int, int]):
    """lvmin's control-map resize (size is (width, height)): INTER_NEAREST for 3..199 colours,
    INTER_AREA shrinking, INTER_CUBIC growing; a black-and-white map is re-thresholded (Otsu), and
    one of one-pixel lines re-thinned."""
    import cv2
    import numpy as np
    mask = None
    if x.ndim == 3 and x.shape[2] == 4:
        mask, x = x[:, :, 3], x[:, :, 0:3]
    if (x.shape[0], x.shape[1]) == (size[1], size[0]):
        y = x
    else:
        smaller = size[0] * size[1] < x.shape[0] * x.shape[1]
        bigger = size[0] * size[1] > x.shape[0] * x.shape[1]
        colours = len(np.unique(x.reshape(-1, x.shape[2]), axis=0))
        binary = one_pixel = False
        if colours == 2:
            binary = np.min(x) < 16 and np.max(x) > 240
            if binary:
                box = np.ones((3, 3), dtype=np.uint8)
                opened = cv2.dilate(cv2.erode(x, box, iterations=1), box, iterations=1)
                one_pixel = np.where(opened < x)[0].shape[0] * 2 > np.where(x > 127)[0].shape[0]
        if 2 < colours < 200:
            interpolation = cv2.INTER_NEAREST
        elif smaller:
            interpolation = cv2.INTER_AREA
        else:
            interpolation = cv2.INTER_CUBIC
        y = cv2.resize(x, size, interpolation=interpolation)
        if mask is not None:
            mask = cv2.resize(mask, size, interpolation=interpolation)
        if binary:
            y = np.mean(y.astype(np.float32), axis=2).clip(0, 255).astype(np.uint8)
            if one_pixel:
                y = nake_nms(y)
                _, y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
                y = lvmin_thin(y, prunings=bigger)
            else:
                _, y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            y = np.stack([y] * 3, axis=2)
    if mask is not None:
        mask = ((mask > 127).astype(np.float32) * 255.0)[:, :, None].clip(0, 255).astype(np.uint8)
        y = np.concatenate([y, mask], axis=2)
    return y


def covered_size(old_h: int, old_w: int, width: int, height: int, fill: bool) -> tuple[int, int]:
    """(width, height) the picture is resized to before the crop ("Crop and Resize": covering the
    target) or the padding ("Resize and Fill": inside it)."""
    import numpy as np
    k = (min if fill else max)(float(height) / float(old_h), float(width) / float(old_w))
    return int(np.round(float(old_w) * k)), int(np.round(float(old_h) * k))


def hint_estimate(widgets, inputs):
    """The generation size; "Crop and Resize" also holds the covering picture (uint8) it crops."""
    size, width, height = inputs.get("hint_image"), widgets.get("image_gen_width"), widgets.get("image_gen_height")
    if not isinstance(width, int) or not isinstance(height, int):
        return Estimate(size)  # a linked size: unknown before the run (as the default estimate)
    if size is None:
        return Estimate(Size(1, height, width))
    memory = 0
    if widgets.get("resize_mode") == "Crop and Resize" and min(size.height, size.width) >= 1:
        cover_w, cover_h = covered_size(size.height, size.width, width, height, fill=False)
        memory = cover_w * cover_h * 3
    return Estimate(Size(size.batch, height, width), memory=memory)


def fit_hint(x, width: int, height: int, resize_mode: str):
    """HintImageEnchance's three modes: stretch ("Just Resize"), cover and centre-crop ("Crop and
    Resize"), or fit and centre on the median border colour ("Resize and Fill")."""
    import numpy as np
    if resize_mode == "Just Resize":
        return np.ascontiguousarray(high_quality_resize(x, (width, height)))
    fill = resize_mode == "Resize and Fill"
    new_size = covered_size(x.shape[0], x.shape[1], width, height, fill)
    if not fill:
        if max(new_size) > MAX_SIZE:  # the pack resizes the whole picture before cropping it
            raise NodeInputError("resize_mode", f"Crop and Resize would first resize the {x.shape[1]}x{x.shape[0]} "
                                                f"picture to {new_size[0]}x{new_size[1]} to cut {width}x{height} out "
                                                f"of it: expected at most {MAX_SIZE} pixels a side (choose Just "
                                                "Resize or Resize and Fill, or crop the picture first)")
        y = high_quality_resize(x, new_size)
        top, left = max(0, (y.shape[0] - height) // 2), max(0, (y.shape[1] - width) // 2)
        return np.ascontiguousarray(y[top:top + height, left:left + width])
    borders = np.concatenate([x[0, :, :], x[-1, :, :], x[:, 0, :], x[:, -1, :]], axis=0)
    colour = np.median(borders, axis=0).astype(x.dtype)
    if len(colour) == 4:
        colour[3] = 255  # the inpaint hint's alpha: the background counts as masked
    canvas = np.tile(colour[None, None], [height, width, 1])
    y = high_quality_resize(x, new_size)
    top, left = max(0, (height - y.shape[0]) // 2), max(0, (width - y.shape[1]) // 2)
    canvas[top:top + y.shape[0], left:left + y.shape[1]] = y
    return np.ascontiguousarray(canvas)


class HintImageEnchance(Node):
    """Resize hint images to the generation size, as comfyui_controlnet_aux's Enchance And Resize
    Hint Images: with lvmin's control-map resampling (nearest for few-colour maps such as
    segmentations, Otsu re-thresholding and edge thinning for black-and-white line maps), by
    "Just Resize" (stretch), "Crop and Resize" (cover, centre crop) or "Resize and Fill" (fit,
    centred on the borders' median colour). As in the pack, "Crop and Resize" resizes the whole
    picture to cover the generation size before cutting it out (cropping first gives other
    pixels at the edges of the cut), so a long thin picture makes a huge intermediate: one with a
    side over 16384 pixels is refused."""
    display_name = "Enchance And Resize Hint Images"
    category = TOP
    hint_image: IMAGE
    image_gen_width: int = Int(512, min=64, max=MAX_IMAGEGEN_RESOLUTION, step=8, resource="width")
    image_gen_height: int = Int(512, min=64, max=MAX_IMAGEGEN_RESOLUTION, step=8, resource="height")
    resize_mode: str = Choice(RESIZE_MODES, "Just Resize")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("HintImageEnchance",))
    estimate = classmethod(lambda cls, widgets, inputs: hint_estimate(widgets, inputs))

    def run(self):
        return each_image(self.hint_image, "hint_image",
                          lambda x: fit_hint(x, self.image_gen_width, self.image_gen_height, self.resize_mode))


# -- the all-in-one node ------------------------------------------------------------------------

# The preprocessors AIO_Preprocessor runs here: ours, with the pack's defaults for the inputs it
# does not pass on (it passes `resolution` only to those that have one).
AIO_NODES = {
    "CannyEdgePreprocessor": CannyEdgePreprocessor, "PyraCannyPreprocessor": PyraCannyPreprocessor,
    "LineartStandardPreprocessor": LineartStandardPreprocessor, "BinaryPreprocessor": BinaryPreprocessor,
    "ColorPreprocessor": ColorPreprocessor, "ShufflePreprocessor": ShufflePreprocessor,
    "TilePreprocessor": TilePreprocessor, "TTPlanet_TileSimple_Preprocessor": TTPlanetTileSimple,
    "ScribblePreprocessor": ScribblePreprocessor, "Scribble_XDoG_Preprocessor": ScribbleXDoGPreprocessor,
    "ImageLuminanceDetector": ImageLuminanceDetector, "ImageIntensityDetector": ImageIntensityDetector,
}
# The Depth Anything nodes (nodes/pack_nodes_controlnet_aux_depth.py, which imports this module:
# aio_nodes() reads them when asked), on the weight files the user brings.
AIO_DEPTH = ("DepthAnythingPreprocessor", "DepthAnythingV2Preprocessor")
# The pack's other image-to-image preprocessors (they need model weights, or TileGF's filter):
# offered so that saved workflows naming them read, refused with their name when run.
AIO_NOT_HERE = (
    "AnimalPosePreprocessor", "AnimeFace_SemSegPreprocessor", "AnimeLineArtPreprocessor",
    "AnyLineArtPreprocessor_aux", "BAE-NormalMapPreprocessor", "DensePosePreprocessor", "DSINE-NormalMapPreprocessor",
    "DWPreprocessor", "FakeScribblePreprocessor",
    "HEDPreprocessor", "LeReS-DepthMapPreprocessor", "LineArtPreprocessor",
    "M-LSDPreprocessor", "Manga2Anime_LineArt_Preprocessor", "MediaPipe-FaceMeshPreprocessor",
    "MeshGraphormer-DepthMapPreprocessor", "Metric3D-DepthMapPreprocessor", "Metric3D-NormalMapPreprocessor",
    "MiDaS-DepthMapPreprocessor", "MiDaS-NormalMapPreprocessor", "OneFormer-ADE20K-SemSegPreprocessor",
    "OneFormer-COCO-SemSegPreprocessor", "OpenposePreprocessor", "PiDiNetPreprocessor", "SAMPreprocessor",
    "Scribble_PiDiNet_Preprocessor", "SemSegPreprocessor", "TEEDPreprocessor",
    "TTPlanet_TileGF_Preprocessor", "UniFormer-SemSegPreprocessor", "Zoe-DepthMapPreprocessor",
    "Zoe_DepthAnythingPreprocessor",
)
PREPROCESSOR_OPTIONS = ("none", *AIO_NODES, *sorted((*AIO_DEPTH, *AIO_NOT_HERE), key=str.lower))


def aio_nodes() -> dict:
    """Every preprocessor AIO_Preprocessor runs here, by the pack's class name."""
    from nodes.pack_nodes_controlnet_aux_depth import DEPTH_NODES
    return {**AIO_NODES, **DEPTH_NODES}


def aio_estimate(widgets, inputs):
    """The chosen preprocessor's estimate; for a linked choice, the least of any that runs here
    ("none" included): a lower bound, as the checks before a run need."""
    chosen = widgets.get("preprocessor")
    if chosen == "none":
        return Estimate(inputs.get("image"))
    if chosen is None:
        estimates = [Estimate(inputs.get("image"))] + [preprocessor_estimate(node, widgets, inputs)
                                                       for node in aio_nodes().values()]
        if any(e.size is None for e in estimates):
            return Estimate(None)
        least = min(estimates, key=lambda e: e.size.batch * e.size.pixels)
        return Estimate(least.size, memory=min(e.memory for e in estimates))
    node = aio_nodes().get(chosen)
    return Estimate(None) if node is None else preprocessor_estimate(node, widgets, inputs)


def preprocessor_estimate(node, widgets, inputs) -> Estimate:
    """What `node` takes run by AIO: its defaults, and AIO's resolution (None while linked)."""
    defaults = {name: spec.default for name, spec in node.input_specs.items() if spec.widget}
    return node.estimate({**defaults, "resolution": widgets.get("resolution")}, inputs) or Estimate(inputs.get("image"))


class AIOPreprocessor(Node):
    """Run the chosen preprocessor, as comfyui_controlnet_aux's AIO Aux Preprocessor: with
    `resolution` (where it takes one) and its own defaults for its other inputs; "none" gives the
    image back. The model-free preprocessors run here, and Depth Anything (V1 and V2, with their
    default ckpt_name, the file in models/annotators/); choosing one that needs other model weights
    (HED, DWPose, ...) is refused with its name."""
    display_name = "AIO Aux Preprocessor"
    category = TOP
    image: IMAGE
    preprocessor: str = Choice(PREPROCESSOR_OPTIONS, "none")
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("AIO_Preprocessor",), optional=("preprocessor", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: aio_estimate(widgets, inputs))

    @classmethod
    def fingerprint(cls, preprocessor=None, **widgets):
        # a depth preprocessor reads its default weights file: its state belongs in the cache key
        node = aio_nodes().get(preprocessor) if preprocessor in AIO_DEPTH else None
        return None if node is None else node.fingerprint(ckpt_name=node.input_specs["ckpt_name"].default)

    def run(self):
        if self.preprocessor == "none":
            return self.image
        nodes = aio_nodes()
        node = nodes.get(self.preprocessor)
        if node is None:
            raise NodeInputError("preprocessor", f"{self.preprocessor} needs model weights (or a filter) graphflow "
                                                 f"does not have; expected one of: none, {', '.join(nodes)}")
        given = {"resolution": self.resolution} if "resolution" in node.input_specs else {}
        return _core(node, {"pyrUp_iters": "preprocessor", "scale_factor": "preprocessor", "ckpt_name": "preprocessor"},
                     image=self.image, **given)


class ControlNetPreprocessorSelector(Node):
    """Pick a preprocessor's name to feed AIO Aux Preprocessor's `preprocessor`, as
    comfyui_controlnet_aux's Preprocessor Selector (the same list)."""
    display_name = "Preprocessor Selector"
    category = TOP
    preprocessor: str = Choice(PREPROCESSOR_OPTIONS, "none")
    outputs = {"preprocessor": STRING}
    comfy = ComfyAlias(("ControlNetPreprocessorSelector",))

    def run(self):
        return self.preprocessor
