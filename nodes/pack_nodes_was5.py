"""A fifth round of WAS Node Suite's (WASasquatch/was-node-suite-comfyui) model-free nodes, under the
pack's class names, inputs, defaults and outputs: Image Canny Filter, Image Film Grain, Image
Pixelate, Image Monitor Effects Filter, Image Perlin Noise, Image Perlin Power Fractal, Image Power
Noise, Image Voronoi Noise Filter, Image fDOF Filter, Image Lucy Sharpen, Image Displacement Warp,
Image Seamless Texture, Image to Noise, Image to Seed, Samples Passthrough (Stat System), Dictionary
to Console and Image Bounds to Console.

Read from: the suite's WAS_Node_Suite.py as the code store holds it in a 2024-2025 version (546,293
characters; the store names no commit for that copy): WAS_Tools_Class's digital_distortion,
signal_distortion, tv_vhs_distortion, perlin_noise, perlin_power_fractal, worley_noise,
make_seamless, displace_image, the helper image2seed, and the class Image Pixelate; and the class
sources quoted by a documentation mirror of the suite's nodes (same era) for Image Canny Filter,
Image Film Grain, Image Monitor Effects Filter, Image Perlin Noise, Image Perlin Power Fractal,
Image Power Noise, Image Voronoi Noise Filter, Image fDOF Filter, Image Lucy Sharpen, Image
Displacement Warp, Image Seamless Texture, Image to Noise, Image to Seed, Samples Passthrough (Stat
System), Dictionary to Console and Image Bounds to Console. (The earlier rounds are
nodes/pack_nodes_was.py, pack_nodes_was_image.py, pack_nodes_was_more.py and pack_nodes_was4.py.)

Randomness: where the pack draws from an unseeded generator (Image Film Grain's Python random,
Image Monitor Effects Filter's NumPy global, the Perlin nodes with seed 0, which the pack leaves
unseeded), the draws here come from a generator seeded with 0 (or the node's seed), so a run gives
the same picture each time; each node's help says so. Where the pack seeds (the Perlin nodes'
other seeds, Image Power Noise, Image Voronoi Noise Filter, Image to Noise), the same generator
with the same seed gives the pack's draws. The pack's per-pixel Python loops (Perlin noise, the
Voronoi distances, the displacement) are worked here by NumPy, where the result does not depend on
the order; Canny's suppression, whose order matters, stays a loop (one that can be stopped).

Image Seamless Texture: the pack calls WASasquatch's fork of the img2texture package (installed from
git); its algorithm is followed from rtmigo/img2texture at 081702ae76d2ac34c098cbdff206396cf4119947,
the fork's origin (the fork itself was not in the code store).

Left out: Image Analyze (it draws matplotlib charts; matplotlib is not a dependency), Text Random
Prompt (it queries the lexica.art web service), and Hex to HSL and HSL to Hex (the suite lists
them, but no copy of their source was found in the code store this round).
"""

from __future__ import annotations

import hashlib
import logging
import math
import pprint
import random
import re

from graphflow.api import IMAGE, INT, LATENT, Choice, ComfyAlias, Estimate, Float, Int, ListOf, Node, \
    NodeInputError, Size, Text, check_interrupted
from nodes.pack_nodes_was import DICT, LIST, SEED_MAX
from nodes.pack_nodes_was4 import PALETTE_WORK_BUDGET
from nodes.pack_nodes_was_image import IMAGE_BOUNDS, _batch, _bounds, _pictures

COMFY_PACK = "WAS Node Suite"  # the custom node pack this module's ComfyUI classes come from

log = logging.getLogger(__name__)


def _generated(picture) -> "torch.Tensor":
    """A generated picture as an IMAGE batch of 1 (the pack's pil2tensor)."""
    return _batch([picture.convert("RGB")])


# -- filters --------------------------------------------------------------------------------------


def canny_magnitudes(levels, weak=None):
    """The pack's Canny_detector on one picture's 0..255 float levels [H, W, 3]: OpenCV's grey of
    the levels read as BGR, a 5x5 Gaussian blur (sigma 1.4), Sobel gradients, then its own
    non-maximum suppression (column by column, in place, as the pack's loop does) and the weak
    threshold. A weak threshold of 0 or None becomes a tenth of the largest magnitude."""
    import cv2
    import numpy as np

    grey = cv2.cvtColor(levels.astype(np.float32), cv2.COLOR_BGR2GRAY)
    grey = cv2.GaussianBlur(grey, (5, 5), 1.4)
    gx = cv2.Sobel(np.float32(grey), cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(np.float32(grey), cv2.CV_64F, 0, 1, ksize=3)
    magnitude, angle = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    largest = float(np.max(magnitude))
    # the pack also sorts edges against strong (or half the largest) into a map it never gives:
    # only weak changes the result
    weak = weak or largest * 0.1
    height, width = grey.shape
    angle = np.where(np.abs(angle) > 180, np.abs(angle - 180), np.abs(angle))
    # the two neighbours each direction compares with: along x, the / diagonal, along y, the \ one
    steps = np.select([angle <= 22.5, angle <= 67.5, angle <= 112.5, angle <= 157.5, angle <= 202.5],
                      [0, 1, 2, 3, 0], default=4)
    offsets = ((-1, 0, 1, 0), (-1, -1, 1, 1), (0, -1, 0, 1), (-1, 1, 1, -1), None)
    mag = magnitude.tolist()
    step_rows = steps.tolist()
    # the suppression zeroes in place, so a later pixel compares with already-zeroed ones: kept in order
    for x in range(width):
        check_interrupted()
        for y in range(height):
            offset = offsets[step_rows[y][x]]
            if offset is None:
                continue
            x1, y1, x2, y2 = x + offset[0], y + offset[1], x + offset[2], y + offset[3]
            here = mag[y][x]
            if 0 <= x1 < width and 0 <= y1 < height and here < mag[y1][x1]:
                mag[y][x] = 0.0
                continue
            if 0 <= x2 < width and 0 <= y2 < height and here < mag[y2][x2]:
                mag[y][x] = 0.0
    mag = np.array(mag, dtype=np.float64)
    mag[mag < weak] = 0
    return mag


class WasImageCannyFilter(Node):
    """Edges by WAS's Image Canny Filter: the gradient magnitudes left after its non-maximum
    suppression, those under the weak threshold zeroed, as an RGB picture (Pillow's float-to-8-bit
    conversion). With enable_threshold "true", threshold_low is the weak threshold as it is (in the
    0..1 range the widget allows, against magnitudes of up to about 1,400, so little is cut); 0 or
    "false" takes a tenth of the largest magnitude. threshold_high, the strong threshold, changes
    nothing: the pack sorts edges by it into a map it does not give. The pack works each image of a
    batch and then gives the last alone; here the whole batch is given. Saves of the 2023 layout,
    whose input is named image, are read too."""
    category = "WAS Suite/Image/Filter"
    images: IMAGE
    enable_threshold: str = Choice(("false", "true"), "false")
    threshold_low: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    threshold_high: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"images": IMAGE}
    # the suite's 2023 source named the input image (and worked one image)
    comfy = ComfyAlias(("Image Canny Filter",), inputs={"images": "images", "image": "images"})

    def run(self):
        from PIL import Image

        weak = self.threshold_low if self.enable_threshold == "true" else None
        if getattr(self.images, "dim", lambda: 0)() != 4:
            raise NodeInputError("images", "expected an image batch [B, H, W, C]")
        edges = []
        for image in self.images:
            levels = 255.0 * image[..., :3].cpu().numpy()
            edges.append(Image.fromarray(canny_magnitudes(levels, weak)).convert("RGB"))
        return _batch(edges)


GRAIN_DRAWS = 1 << 20  # noise specks drawn at a time, so a dense grain on a big picture stays small
GRAIN_BYTES = 10  # bytes held at once for each pixel of the enlarged picture (see estimate)


def film_grain(picture, density: float, intensity: float, highlights: float, factor: int, rng):
    """The pack's apply_film_grain: grey specks of random level at random places on the grey
    picture enlarged factor times (bilinear), blurred, shrunk back (Lanczos), edge-enhanced,
    blended over the picture by intensity, brightened by highlights."""
    import numpy as np
    from PIL import Image, ImageEnhance, ImageFilter

    grey = picture.convert("L").resize((picture.width * factor, picture.height * factor), Image.Resampling.BILINEAR)
    levels = np.array(grey)
    height, width = levels.shape
    remaining = int(density * width * height)
    while remaining > 0:
        check_interrupted()
        count = min(remaining, GRAIN_DRAWS)
        xs, ys = rng.integers(0, width, count), rng.integers(0, height, count)
        levels[ys, xs] = rng.integers(0, 256, count, dtype=np.uint8)
        remaining -= count
    noise = Image.fromarray(levels, "L").convert("RGB").filter(ImageFilter.GaussianBlur(radius=0.125))
    noise = noise.resize(picture.size, Image.Resampling.LANCZOS).filter(ImageFilter.EDGE_ENHANCE_MORE)
    return ImageEnhance.Brightness(Image.blend(picture, noise, intensity)).enhance(highlights)


class WasImageFilmGrain(Node):
    """Film grain as WAS's Image Film Grain adds it: density x the enlarged picture's pixels get a
    grey speck of a random level (on the grey picture enlarged supersample_factor times), the
    specks blurred, shrunk back and edge-enhanced, blended over the image by intensity and
    brightened by highlights. The pack draws the specks from Python's unseeded random; here they
    come from NumPy's generator seeded with 0 (drawn on through a batch), so a run gives the same
    grain each time. The pack takes one image; here each image of a batch is grained."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    density: float = Float(1.0, min=0.01, max=1.0, step=0.01)
    intensity: float = Float(1.0, min=0.01, max=1.0, step=0.01)
    highlights: float = Float(1.0, min=0.01, max=255.0, step=0.01)
    supersample_factor: int = Int(4, min=1, max=8)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Film Grain",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        factor = widgets.get("supersample_factor")
        if size is None or not isinstance(factor, int):
            return Estimate(size)
        # a lower bound (measured: some 14 B an enlarged pixel): the enlarged grey picture and its
        # NumPy levels (a byte a pixel each), Pillow's RGB of them and its blur (4 B each), and a batch
        # of draws (two int64 positions and a level each)
        return Estimate(size, memory=GRAIN_BYTES * size.pixels * factor * factor + GRAIN_DRAWS * 17)

    def run(self):
        import numpy as np

        rng = np.random.default_rng(0)
        return _batch([film_grain(p, self.density, self.intensity, self.highlights, self.supersample_factor, rng)
                       for p in _pictures(self.image, "image")])


def digital_distortion(picture, amplitude: int, line_width: int, rng):
    """The pack's digital_distortion: columns rolled up and down by a sine wave, the brighter of
    the two kept; every line_width-th row from a row-shuffled picture; the whole rolled sideways."""
    import numpy as np
    from PIL import Image

    levels = np.array(picture)
    rows, columns, _ = levels.shape
    wave = (amplitude * np.sin(np.linspace(-np.pi, np.pi, columns))).astype(int)
    up, down = np.empty_like(levels), np.empty_like(levels)
    for column in range(columns):
        up[:, column] = np.roll(levels[:, column], -wave[column], axis=0)
        down[:, column] = np.roll(levels[:, column], wave[column], axis=0)
    distorted = np.maximum(up, down)
    scan_lines = np.zeros((rows, columns, 1), dtype=np.float32)
    scan_lines[::line_width] = 1
    distorted = np.where(scan_lines > 0, rng.permutation(levels), distorted)
    return Image.fromarray(np.roll(distorted, rng.randint(0, columns), axis=1))


def rolled_rows(levels, spread: int, rng):
    """Each row of levels rolled sideways by a random shift in -spread .. spread plus a sawtooth
    (row % 2 spread - spread), as the pack's signal and TV distortions roll them."""
    import numpy as np

    shifts = rng.randint(-spread, spread + 1, size=levels.shape[0])
    rolled = np.empty_like(levels)
    for row in range(levels.shape[0]):
        rolled[row] = np.roll(levels[row], shifts[row] + row % (spread * 2) - spread, axis=0)
    return rolled


def signal_distortion(picture, amplitude: int, rng):
    """The pack's signal_distortion: each row rolled sideways by a random shift plus a sawtooth."""
    import numpy as np
    from PIL import Image

    return Image.fromarray(rolled_rows(np.array(picture), amplitude, rng))


def tv_distortion(picture, amplitude: int, rng):
    """The pack's tv_vhs_distortion: rows rolled as signal_distortion does by height / amplitude,
    a sine ripple and a little noise added, overlaid twice on the half-saturated picture and
    blended in at a quarter."""
    import numpy as np
    from PIL import Image, ImageChops, ImageEnhance

    levels = np.array(picture)
    variance = int(picture.height / amplitude)
    if variance == 0:  # the pack divides by it (y % 0): a picture fewer rows high than amplitude
        raise NodeInputError("amplitude", f"TV Distortion needs amplitude at most the image height "
                                          f"({picture.height}); got {amplitude}")
    rolled = rolled_rows(levels, variance, rng)
    height, width, channels = rolled.shape
    x = np.broadcast_to(np.linspace(0, 1, width), (height, width))
    y = np.broadcast_to(np.linspace(0, 1, height).reshape(height, 1), (height, width))
    noise = rng.rand(height, width, channels) * 0.1
    ripple = np.sin(x * 50) * 0.5 + np.sin(y * 50) * 0.5
    distorted = Image.fromarray(np.uint8(rolled + ripple[:, :, None] + noise)).resize(picture.size)
    faded = ImageEnhance.Color(picture).enhance(0.5)
    effect = ImageChops.overlay(faded, distorted)
    return ImageChops.blend(faded, ImageChops.overlay(faded, effect), 0.25)


class WasImageMonitorEffectsFilter(Node):
    """A monitor's faults as WAS's Image Monitor Effects Filter draws them: "Digital Distortion"
    (columns rolled by a sine of amplitude, every offset-th row from a row-shuffled picture, all
    rolled sideways by a random amount), "Signal Distortion" (rows rolled by random shifts within
    amplitude) or "TV Distortion" (rows rolled by height / amplitude, a ripple, overlaid; offset
    unused). The pack draws from NumPy's unseeded generator; here from one seeded with 0 (drawn
    on through a batch), so a run gives the same picture each time. The pack takes one image;
    here each image of a batch is worked."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    mode: str = Choice(("Digital Distortion", "Signal Distortion", "TV Distortion"), "Digital Distortion")
    amplitude: int = Int(5, min=1, max=255)
    offset: int = Int(10, min=1, max=255)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Image Monitor Effects Filter",))

    def run(self):
        import numpy as np

        rng = np.random.RandomState(0)
        worked = []
        for picture in _pictures(self.image, "image"):
            check_interrupted()
            if self.mode == "Digital Distortion":
                worked.append(digital_distortion(picture, self.amplitude, self.offset, rng))
            elif self.mode == "Signal Distortion":
                worked.append(signal_distortion(picture, self.amplitude, rng))
            else:
                worked.append(tv_distortion(picture, self.amplitude, rng))
        return _batch(worked)


# OpenCV's bilateral filter works some radius² neighbours a pixel and can't be stopped: 512 x 512 at
# radius 64 ran 2 s here; radius² x pixels over this (1024 x 1024 at radius 64) is refused
BILATERAL_BUDGET = 2 ** 32


def fake_depth_of_field(picture, depth, mode: str, radius: int, samples: int):
    """The pack's portraitBlur: the picture kept where the depth picture (resized to it, as grey)
    is white, a blurred copy where it is black; with samples over 1, laid over the blur again."""
    import cv2
    import numpy as np
    from PIL import Image, ImageFilter

    mask = depth.resize(picture.size).convert("L")
    if mode == "mock":  # the pack's medianFilter: OpenCV's bilateral filter
        if radius * radius * picture.width * picture.height > BILATERAL_BUDGET:
            fits = math.isqrt(BILATERAL_BUDGET // (picture.width * picture.height))
            raise NodeInputError("radius", f"mode mock (a bilateral filter) at radius {radius} on a {picture.width} x "
                                           f"{picture.height} image is over its work budget (radius² x pixels "
                                           f"{BILATERAL_BUDGET:,}): at most {fits} for this size")
        blurred = Image.fromarray(cv2.bilateralFilter(np.array(picture), radius, radius * 1500, 75))
    elif mode == "gaussian":
        blurred = picture.filter(ImageFilter.GaussianBlur(radius=radius))
    else:
        blurred = picture.filter(ImageFilter.BoxBlur(radius))
    result = Image.composite(picture, blurred, mask)
    for _ in range(samples - 1 if samples > 1 else 0):
        result = Image.composite(result, blurred, mask)
    return result.convert("RGB")


class WasImageFdofFilter(Node):
    """Fake depth of field as WAS's Image fDOF Filter makes it: each image blurred ("mock":
    OpenCV's bilateral filter of diameter radius, sigmas radius x 1500 and 75; "gaussian" or
    "box": Pillow's blur of radius) and the sharp image kept where its depth picture (resized to
    it, as grey) is light. With samples 2 or 3 the sharp result is laid over the blur again. "mock"
    with radius² x pixels over 4,294,967,296 (1024 x 1024 at radius 64), which OpenCV would work
    for long without a stop, is refused naming radius. The
    n-th image takes the n-th depth picture, or the last where depth has fewer (the pack fails
    there)."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    depth: IMAGE
    mode: str = Choice(("mock", "gaussian", "box"), "mock")
    radius: int = Int(8, min=1, max=128)
    samples: int = Int(1, min=1, max=3)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image fDOF Filter",))

    def run(self):
        depths = _pictures(self.depth, "depth")
        worked = []
        for index, picture in enumerate(_pictures(self.image, "image")):
            check_interrupted()
            depth = depths[min(index, len(depths) - 1)]
            worked.append(fake_depth_of_field(picture, depth, self.mode, self.radius, self.samples))
        return _batch(worked)


def lucy_sharpen(picture, iterations: int, kernel_size: int):
    """The pack's lucy_sharpen: Richardson-Lucy steps with a box kernel on each channel of the
    edge-padded picture (SciPy's convolve2d, mode "same"), cropped back and cut to 8 bits. The
    box is worked as a column pass and a row pass (2 k sums a pixel, not k²: the same box, its
    float32 sums rounded in another order)."""
    import numpy as np
    from PIL import Image
    from scipy.signal import convolve2d

    levels = np.array(picture, dtype=np.float32) / 255.0
    column = np.ones((kernel_size, 1), dtype=np.float32) / kernel_size
    row = column.reshape(1, kernel_size)

    def boxed(plane):
        check_interrupted()
        return convolve2d(convolve2d(plane, column, mode="same"), row, mode="same")

    padded = np.pad(levels, ((kernel_size, kernel_size), (kernel_size, kernel_size), (0, 0)), mode="edge")
    channels = []
    for channel in range(3):
        estimate = padded[:, :, channel]
        for _ in range(iterations):
            ratio = estimate / (boxed(estimate) + 1e-6)
            estimate *= boxed(ratio)
        channels.append(estimate)
    sharpened = np.stack(channels, axis=-1)[kernel_size:-kernel_size, kernel_size:-kernel_size, :]
    return Image.fromarray(np.clip(sharpened * 255.0, 0, 255).astype(np.uint8))


class WasImageLucySharpen(Node):
    """Each image sharpened as WAS's Image Lucy Sharpen does: iterations of Richardson-Lucy
    deconvolution with a kernel_size box kernel, channel by channel, on the edge-padded image.
    The box is applied as a column pass then a row pass, several times quicker than the pack's
    k x k convolution at larger kernels; float rounding in that order moves a rare pixel by one
    level from the pack's."""
    category = "WAS Suite/Image/Filter"
    images: IMAGE
    iterations: int = Int(2, min=1, max=12)
    kernel_size: int = Int(3, min=1, max=16)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Lucy Sharpen",))

    def run(self):
        return _batch([lucy_sharpen(p, self.iterations, self.kernel_size) for p in _pictures(self.images, "images")])


# -- transforms -----------------------------------------------------------------------------------


def cover_crop(picture, size: tuple[int, int]):
    """The pack's resize_and_crop: scaled (Pillow's default resampling) to cover size, centred crop."""
    width, height = picture.size
    target_width, target_height = size
    ratio = width / height
    if ratio > target_width / target_height:
        new_width, new_height = int(target_height * ratio), target_height
    else:
        new_width, new_height = target_width, int(target_width / ratio)
    left, top = (new_width - target_width) // 2, (new_height - target_height) // 2
    return picture.resize((new_width, new_height)).crop((left, top, left + target_width, top + target_height))


def mirrored(positions, length: int):
    """The pack's edge rules for a displaced position, in its order: a negative one made positive,
    else one past the far edge mirrored back; then both again, each on its own."""
    import numpy as np

    positions = np.where(positions < 0, np.abs(positions),
                         np.where(positions >= length, 2 * length - positions - 1, positions))
    positions = np.where(positions < 0, np.abs(positions), positions)
    return np.where(positions >= length, 2 * length - positions - 1, positions)


def displaced(picture, displacement, amplitude: float):
    """The pack's displace_image: each pixel taken from amplitude x (map level / 255), cut toward
    zero, pixels right and down, mirrored at the edges."""
    import numpy as np
    from PIL import Image

    levels = np.array(picture.convert("RGB"))
    height, width, _ = levels.shape
    shift = np.trunc(amplitude * (np.array(displacement.convert("L"), dtype=np.float64) / 255)).astype(np.int64)
    rows, columns = np.indices((height, width))
    source_x, source_y = mirrored(columns + shift, width), mirrored(rows + shift, height)
    # mirrored positions stay under the size, but one far past the edge mirrors below 0: Pillow's
    # getpixel reads -size .. -1 from the far edge (as a Python index), and fails below -size
    if (source_x < -width).any() or (source_y < -height).any():
        raise NodeInputError("amplitude", f"a displacement of {amplitude} reaches too far past a {width}x{height} "
                                          "image's edges: mirrored, it falls before -size, where the pack's "
                                          "getpixel fails")
    source_x = np.where(source_x < 0, source_x + width, source_x)
    source_y = np.where(source_y < 0, source_y + height, source_y)
    return Image.fromarray(levels[source_y, source_x])


class WasImageDisplacementWarp(Node):
    """Each image warped as WAS's Image Displacement Warp does: every pixel takes the colour of the
    one amplitude x (displacement level / 255) pixels right and down (cut toward zero; a negative
    amplitude looks left and up), mirrored at the edges; a position mirrored past the near edge
    is read from the far one, as the pack's Pillow getpixel reads a negative index, and one
    beyond that, where the pack fails, is refused naming amplitude. The n-th image takes the n-th map (or the
    last), as grey, scaled to cover the image and centre-cropped to it."""
    category = "WAS Suite/Image/Transform"
    images: IMAGE
    displacement_maps: IMAGE
    amplitude: float = Float(25.0, min=-4096.0, max=4096.0, step=0.1)
    outputs = {"images": IMAGE}
    comfy = ComfyAlias(("Image Displacement Warp",))

    def run(self):
        maps = _pictures(self.displacement_maps, "displacement_maps")
        warped = []
        for index, picture in enumerate(_pictures(self.images, "images")):
            check_interrupted()
            displacement = cover_crop(maps[min(index, len(maps) - 1)], picture.size)
            warped.append(displaced(picture, displacement, self.amplitude))
        return _batch(warped)


# -- seamless texture -------------------------------------------------------------------------------


def seamless_half(picture, overlap: float, horizontal: bool):
    """img2texture's Mixer.make_seamless_h / _v: the far stripe (overlap of the side, floored) laid
    over the near edge through a 255..0 ramp (256 levels resized to the stripe), then cut off."""
    import math

    from PIL import Image

    width, height = picture.size
    stripe = math.floor((width if horizontal else height) * overlap)
    if stripe == 0:  # nothing to overlap: the picture as it is
        return picture.convert("RGBA")
    box = (width - stripe, 0, width, height) if horizontal else (0, height - stripe, width, height)
    strip = picture.crop(box).convert("RGBA")
    ramp = Image.new("L", (256, 1) if horizontal else (1, 256))
    ramp.putdata([255 - level for level in range(256)])
    strip.putalpha(ramp.resize(strip.size))
    overlay = Image.new("RGBA", picture.size, color=0)
    overlay.paste(strip, box=(0, 0))
    joined = Image.alpha_composite(picture.convert("RGBA"), overlay)
    return joined.crop((0, 0, width - stripe, height) if horizontal else (0, 0, width, height - stripe))


def seamless(picture, overlap: float, tiles: int | None):
    """img2texture's image_to_seamless (across, then down), as RGB; with tiles, tiles x tiles copies
    side by side (its tile)."""
    from PIL import Image

    texture = seamless_half(seamless_half(picture, overlap, True), overlap, False).convert("RGB")
    if not tiles:
        return texture
    width, height = texture.size
    tiled = Image.new("RGB", (width * tiles, height * tiles))
    for x in range(tiles):
        for y in range(tiles):
            tiled.paste(texture, (width * x, height * y))
    return tiled


class WasImageSeamlessTexture(Node):
    """Each image made to tile, as WAS's Image Seamless Texture does through the img2texture
    package (followed here from rtmigo/img2texture at 081702ae76d2ac34c098cbdff206396cf4119947,
    which WASasquatch's fork installed by the pack extends): a stripe of blending x the width from
    the right edge faded over the left edge and cut off, then the same from the bottom over the
    top; the texture is that much smaller. With tiled "true", tiles x tiles copies side by side.
    img2texture takes an overlap of at most 0.5; a larger blending is refused, as there."""
    category = "WAS Suite/Image/Process"
    images: IMAGE
    blending: float = Float(0.4, min=0.0, max=1.0, step=0.01)
    tiled: str = Choice(("true", "false"), "true")
    tiles: int = Int(2, min=2, max=6, step=2)
    outputs = {"images": IMAGE}
    comfy = ComfyAlias(("Image Seamless Texture",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, tiles = inputs.get("images"), widgets.get("tiles")
        if size is None or not isinstance(tiles, int) or widgets.get("tiled") != "true":
            return Estimate(size)
        return Estimate(Size(size.batch, size.height * tiles, size.width * tiles))

    def run(self):
        if not 0 <= self.blending <= 0.5:
            raise NodeInputError("blending", f"img2texture overlaps at most half the image (0 .. 0.5); got "
                                             f"{self.blending}")
        tiles = self.tiles if self.tiled == "true" else None
        return _batch([seamless(p, self.blending, tiles) for p in _pictures(self.images, "images")])


# -- pixel art ------------------------------------------------------------------------------------


def floyd_steinberg(picture, colors: int):
    """The pack's fs_dither: each channel's level rounded to colors steps, the error spread right
    and down (7, 3, 5, 1 sixteenths), in row order."""
    import numpy as np
    from PIL import Image

    levels = (np.array(picture, dtype=float) / 255).tolist()
    height, width = len(levels), len(levels[0])
    steps = colors - 1
    for row in range(height):
        check_interrupted()
        this, below = levels[row], levels[row + 1] if row < height - 1 else None
        for column in range(width):
            old = this[column]
            new = [round(v * steps) / steps for v in old]  # NumPy's round: halves to even, as Python's
            this[column] = new
            error = [o - n for o, n in zip(old, new)]
            if column < width - 1:
                this[column + 1] = [v + e * 7 / 16 for v, e in zip(this[column + 1], error)]
            if below is not None:
                if column > 0:
                    below[column - 1] = [v + e * 3 / 16 for v, e in zip(below[column - 1], error)]
                below[column] = [v + e * 5 / 16 for v, e in zip(below[column], error)]
                if column < width - 1:
                    below[column + 1] = [v + e / 16 for v, e in zip(below[column + 1], error)]
    return Image.fromarray(np.array(np.array(levels) * 255, dtype=np.uint8))


def ordered_dither(picture, colors: int):
    """The pack's ordered_dither as it runs: each pixel's channels cut to a grid of
    min(2 ** floor(log2 colors), 16) levels, and its right, lower-right, lower and lower-left
    neighbours (already cut) moved by their own error, in the source, before they are read."""
    import math

    from PIL import Image

    source = picture.copy()
    width, height = source.size
    levels = min(2 ** int(math.log2(colors)), 16)
    step = 256 // levels
    cut = lambda pixel: tuple(int(c * levels / 256) * step for c in pixel)  # noqa: E731
    clamp = lambda value: max(min(value, 255), 0)  # noqa: E731
    dithered = Image.new("RGB", (width, height))
    for y in range(height):
        check_interrupted()
        for x in range(width):
            new = cut(source.getpixel((x, y)))
            dithered.putpixel((x, y), new)
            for dx, dy, weight, near in ((1, 0, 7, x < width - 1), (1, 1, 1, x < width - 1 and y < height - 1),
                                         (0, 1, 5, y < height - 1), (-1, 1, 3, x > 0 and y < height - 1)):
                if near:
                    neighbour = cut(source.getpixel((x + dx, y + dy)))
                    error = [n - c for n, c in zip(neighbour, new)]
                    source.putpixel((x + dx, y + dy),
                                    tuple(int(clamp(p + e * weight / 16)) for p, e in zip(neighbour, error)))
    return dithered


HEX_COLOUR = re.compile(r"#?[0-9A-Fa-f]{6}")
PALETTE_LINES_MAX = 1024  # palette colours a line list may hold: each is a pass over the picture


def hex_colour(line, input_name: str) -> tuple[int, int, int]:
    """A palette line "#rrggbb" (the "#" optional) as its 8-bit (red, green, blue); anything else,
    a non-text line too, is refused naming input_name."""
    if not isinstance(line, str) or not HEX_COLOUR.fullmatch(line):
        raise NodeInputError(input_name, f"expected a hex colour a line (#rrggbb), got {line!r}")
    text = line.lstrip("#")
    return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))


def palette_mapped(picture, palette: list, mode: str, reverse: bool):
    """The pack's color_palette_from_hex_lines: "Linear" takes the palette colour at the red level
    modulo the palette's length; the others the nearest colour of the palette sorted by brightness,
    by brightness and distance from grey, or as it is, by the pack's distances: its colour
    distance is a sum of 8-bit differences, which wrap round 256 as NumPy's uint8 does."""
    import numpy as np
    from PIL import Image

    colours = palette[::-1] if reverse else palette
    indices = list(range(len(colours)))
    manhattan = lambda c, d: sum(abs(a - b) for a, b in zip(c, d))  # noqa: E731
    if mode == "Brightness":
        indices.sort(key=lambda i: sum(colours[i]) / 3)
    elif mode == "Tonal":
        indices.sort(key=lambda i: manhattan(colours[i], (128, 128, 128)))
    elif mode == "BrightnessAndTonal":
        indices.sort(key=lambda i: (sum(colours[i]) / 3, manhattan(colours[i], (128, 128, 128))))
    ordered = np.array([colours[i] for i in indices], dtype=np.int64)  # [N, 3]
    pixels = np.array(picture, dtype=np.int64)  # [H, W, 3]
    if mode == "Linear":
        chosen = pixels[..., 0] % len(colours)
        return Image.fromarray(ordered[chosen].astype(np.uint8), "RGB")
    pixel_light = pixels @ np.array([0.299, 0.587, 0.114])
    # one palette colour at a time, keeping each pixel's nearest so far (the first of equals, as
    # argmin over all of them), so the work holds a few pictures, not one per palette colour
    nearest = np.full(pixel_light.shape, np.inf)
    chosen = np.zeros(pixel_light.shape, dtype=np.int64)
    for index, colour in enumerate(ordered):
        if index % 64 == 0:
            check_interrupted()
        wrapped = ((pixels - colour) % 256).sum(-1) % 256
        tonal = np.abs(pixel_light - float(colour @ np.array([0.299, 0.587, 0.114])))
        distance = {"Brightness": wrapped, "Tonal": tonal, "BrightnessAndTonal": tonal + wrapped}[mode]
        closer = distance < nearest
        nearest = np.where(closer, distance, nearest)
        chosen[closer] = index
    return Image.fromarray(ordered[chosen].astype(np.uint8), "RGB")


def kmeans_fits(pixels: int, colors: int, size: str):
    """Refuse, naming num_colors, a KMeans of more colours than pixels (scikit-learn's ValueError)
    or one over Image Color Palette's work budget (pixels x colours: KMeans can't be stopped)."""
    if colors > pixels:
        raise NodeInputError("num_colors", f"{colors} colours from a {size} picture of {pixels} pixels: "
                                           "expected at most one colour per pixel")
    if pixels * colors > PALETTE_WORK_BUDGET:
        raise NodeInputError("num_colors", f"{colors} colours of a {size} picture is over the KMeans work budget "
                                           f"({PALETTE_WORK_BUDGET:,} pixels x colours): at most "
                                           f"{PALETTE_WORK_BUDGET // pixels} for this size")


class WasImagePixelate(Node):
    """Pixel art as WAS's Image Pixelate makes it: each image shrunk (nearest) so its longer side
    is pixelation_size, its colours flattened to num_colors by scikit-learn's KMeans (init_mode;
    random_state 42, tol 0.001, at most 100 iterations: the pack does not pass max_iterations on),
    dithered if dither is "True" (FloydSteinberg over num_colors levels a channel, or the pack's
    Ordered), mapped onto the n-th of color_palettes (hex lines) if linked, by color_palette_mode
    and reverse_palette, and enlarged back (nearest). init_mode "none" skips the flattening. Refused
    here, where the pack fails or runs long: more colours than the shrunk picture's pixels, pixels x
    num_colors over Image Color Palette's KMeans budget (16,777,216), a palette line that is not
    "#rrggbb" and a palette of more than 1,024 lines. An API
    prompt without color_palette_mode maps "Linear", as the pack's function does (its widget shows
    "Brightness" first)."""
    category = "WAS Suite/Image/Process"
    images: IMAGE
    pixelation_size: float = Float(164, min=16, max=480, step=1)
    num_colors: float = Float(16, min=2, max=256, step=1)
    init_mode: str = Choice(("k-means++", "random", "none"), "k-means++")
    max_iterations: float = Float(100, min=1, max=256, step=1)
    dither: str = Choice(("False", "True"), "False")
    dither_mode: str = Choice(("FloydSteinberg", "Ordered"), "FloydSteinberg")
    color_palettes: LIST = None
    color_palette_mode: str = Choice(("Brightness", "BrightnessAndTonal", "Linear", "Tonal"), "Brightness")
    reverse_palette: str = Choice(("False", "True"), "False")
    outputs = {"images": IMAGE}
    # an API prompt leaving color_palette_mode out gets the pack's function default, "Linear"; its
    # forceInput color_palettes is a LIST, which no editor makes a widget of
    comfy = ComfyAlias(("Image Pixelate",),
                       optional=("color_palettes", "color_palette_mode", "reverse_palette"),
                       api_inputs=lambda inputs: {"color_palette_mode": "Linear", **inputs})

    def run(self):
        import numpy as np
        from PIL import Image
        from sklearn.cluster import KMeans

        limit, colors = int(self.pixelation_size), int(self.num_colors)
        palettes = []
        for text in self.color_palettes or []:
            if not isinstance(text, str):
                raise NodeInputError("color_palettes", f"expected a list of texts (hex colours a line), got an "
                                                       f"element {text!r}")
            palettes.append([line.strip() for line in text.splitlines()])
            if len(palettes[-1]) > PALETTE_LINES_MAX:
                raise NodeInputError("color_palettes", f"palette {len(palettes)} has {len(palettes[-1])} lines: "
                                                       f"at most {PALETTE_LINES_MAX} colours a palette")
        pictures = _pictures(self.images, "images")
        if palettes and len(palettes) < len(pictures):
            raise NodeInputError("color_palettes", f"{len(palettes)} palettes for {len(pictures)} images: "
                                                   "the pack maps the n-th image onto the n-th palette")
        worked = []
        for index, picture in enumerate(pictures):
            check_interrupted()
            width, height = picture.size
            small = picture
            if max(width, height) > limit:
                if width > height:
                    size = (limit, int(height * (limit / width)))
                else:
                    size = (int(width * (limit / height)), limit)
                small = picture.resize(size, Image.NEAREST)
            if self.init_mode != "none":
                pixels = np.array(small).reshape(-1, 3)
                kmeans_fits(len(pixels), colors, f"{small.width} x {small.height}")
                kmeans = KMeans(n_clusters=colors, init=self.init_mode, max_iter=100, tol=1e-3, random_state=42,
                                n_init="auto")
                labels = kmeans.fit_predict(pixels)
                flat = kmeans.cluster_centers_.astype(np.uint8)[labels]
                small = Image.fromarray(flat.reshape(small.height, small.width, 3))
            if self.dither == "True":
                small = floyd_steinberg(small, colors) if self.dither_mode == "FloydSteinberg" else \
                    ordered_dither(small, colors)
            if palettes:
                palette = [hex_colour(line, "color_palettes") for line in palettes[index]]
                if not palette:
                    raise NodeInputError("color_palettes", f"palette {index + 1} holds no colours")
                small = palette_mapped(small, palette, self.color_palette_mode, self.reverse_palette == "True")
            worked.append(small.resize((width, height), Image.NEAREST))
        return _batch(worked)


# -- noise ------------------------------------------------------------------------------------------


def _fade(t):
    return 6 * t ** 5 - 15 * t ** 4 + 10 * t ** 3


def _lerp(t, a, b):
    return a + t * (b - a)


def _gradient(hashes, x, y, z):
    """Ken Perlin's improved-noise gradient of each hash's low 4 bits."""
    import numpy as np

    h = hashes & 15
    u = np.where(h < 8, x, y)
    v = np.where(h < 4, y, np.where((h == 12) | (h == 14), x, z))
    return np.where(h & 1 == 0, u, -u) + np.where(h & 2 == 0, v, -v)


def improved_noise(x, y, p):
    """Ken Perlin's improved noise at (x, y, 0) for arrays of points, with permutation p (512 long)."""
    import numpy as np

    z = np.zeros_like(x)
    X, Y, Z = np.floor(x).astype(np.int32) & 255, np.floor(y).astype(np.int32) & 255, 0
    x, y = x - np.floor(x), y - np.floor(y)
    u, v, w = _fade(x), _fade(y), _fade(z)
    A = p[X] + Y
    AA, AB = p[A] + Z, p[A + 1] + Z
    B = p[X + 1] + Y
    BA, BB = p[B] + Z, p[B + 1] + Z
    return _lerp(w, _lerp(v, _lerp(u, _gradient(p[AA], x, y, z), _gradient(p[BA], x - 1, y, z)),
                         _lerp(u, _gradient(p[AB], x, y - 1, z), _gradient(p[BB], x - 1, y - 1, z))),
                 _lerp(v, _lerp(u, _gradient(p[AA + 1], x, y, z - 1), _gradient(p[BA + 1], x - 1, y, z - 1)),
                       _lerp(u, _gradient(p[AB + 1], x, y - 1, z - 1), _gradient(p[BB + 1], x - 1, y - 1, z - 1))))


PERLIN_ROWS = 256  # rows of noise worked at a time


def perlin_levels(width: int, height: int, scale: int, seed: int, octaves: list[tuple[float, float]]):
    """The pack's perlin_noise and perlin_power_fractal: for each octave's (frequency, weight),
    improved noise at (x / scale x frequency, y / scale x frequency) times the weight, summed and
    stretched onto 0..255. The permutation is Python's random.shuffle of 0..255 seeded with seed
    (0 too: the pack leaves 0 unseeded)."""
    import numpy as np

    p = np.arange(256, dtype=np.int32)
    random.Random(seed).shuffle(p)
    p = np.concatenate((p, p))
    total = np.zeros((height, width))
    for top in range(0, height, PERLIN_ROWS):
        rows, columns = np.indices((min(PERLIN_ROWS, height - top), width), dtype=np.float64)
        rows += top
        for frequency, weight in octaves:
            check_interrupted()
            noise = improved_noise(columns / scale * frequency, rows / scale * frequency, p)
            total[top:top + PERLIN_ROWS] = total[top:top + PERLIN_ROWS] + noise * weight
    return np.interp(total, (np.min(total), np.max(total)), (0, 255)).astype(np.uint8)


def perlin_estimate(widgets) -> Estimate:
    width, height = widgets.get("width"), widgets.get("height")
    if not isinstance(width, int) or not isinstance(height, int):
        return Estimate(None)
    # the sum, and some 40 float64 temporaries of a block of rows
    return Estimate(Size(1, height, width), memory=width * height * 8 + PERLIN_ROWS * width * 8 * 40)


class WasImagePerlinNoise(Node):
    """Perlin noise as WAS's Image Perlin Noise makes it: octaves of Ken Perlin's improved noise
    (each twice the frequency and persistence times the weight of the last) over width x height
    at 1 / scale, stretched onto black..white, as an RGB picture. The permutation is Python's
    random shuffle seeded with seed, as the pack does, so a seed gives the pack's picture; the pack
    leaves seed 0 unseeded (a new picture each run), here 0 is a seed like the others."""
    category = "WAS Suite/Image/Generate/Noise"
    width: int = Int(512, min=64, max=2048, resource="width")
    height: int = Int(512, min=64, max=2048, resource="height")
    scale: int = Int(100, min=2, max=2048)
    octaves: int = Int(4, min=0, max=8)
    persistence: float = Float(0.5, min=0.01, max=100.0, step=0.01)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Image Perlin Noise",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return perlin_estimate(widgets)

    def run(self):
        from PIL import Image

        octaves, amplitude = [], 1.0
        for octave in range(self.octaves):  # weights 1, persistence, persistence ** 2 ... as the pack steps them
            octaves.append((2 ** octave, amplitude))
            amplitude *= self.persistence
        levels = perlin_levels(self.width, self.height, self.scale, self.seed, octaves)
        return _generated(Image.fromarray(levels, "L"))


class WasImagePerlinPowerFractal(Node):
    """A Perlin power fractal as WAS's Image Perlin Power Fractal makes it: octaves of Ken Perlin's
    improved noise, the n-th (from 0) at lacunarity ** n the frequency and weighted
    (persistence ** (n + 1)) ** exponent, over width x height at 1 / scale, stretched onto
    black..white, as an RGB picture. The permutation is Python's random shuffle seeded with seed,
    as the pack does; the pack leaves seed 0 unseeded (a new picture each run), here 0 is a seed
    like the others. Weights past a float's range (where the pack raises OverflowError) are refused
    naming exponent."""
    category = "WAS Suite/Image/Generate/Noise"
    width: int = Int(512, min=64, max=8192, resource="width")
    height: int = Int(512, min=64, max=8192, resource="height")
    scale: int = Int(100, min=2, max=2048)
    octaves: int = Int(4, min=0, max=8)
    persistence: float = Float(0.5, min=0.01, max=100.0, step=0.01)
    lacunarity: float = Float(2.0, min=0.01, max=100.0, step=0.01)
    exponent: float = Float(2.0, min=0.01, max=100.0, step=0.01)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Image Perlin Power Fractal",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return perlin_estimate(widgets)

    def run(self):
        from PIL import Image

        octaves, amplitude = [], 1.0
        try:
            for octave in range(self.octaves):  # the pack steps the amplitude before it weighs an octave
                amplitude *= self.persistence
                octaves.append((self.lacunarity ** octave, amplitude ** self.exponent))
        except OverflowError:  # the pack's Python float power fails alike
            octaves = None
        # improved noise stays within -1..1, so twice the summed weights bounds the span it is stretched by
        if octaves is None or not math.isfinite(2 * sum(abs(weight) for _, weight in octaves)):
            raise NodeInputError("exponent", f"(persistence ** octave) ** exponent is past a float's range for "
                                             f"persistence {self.persistence}, exponent {self.exponent} and "
                                             f"{self.octaves} octaves: expected a smaller exponent or persistence")
        levels = perlin_levels(self.width, self.height, self.scale, self.seed, octaves)
        return _generated(Image.fromarray(levels, "L"))


def _stretched(noise):
    """255 x (noise - min) / (max - min), cut to 8 bits, as the pack stretches each noise."""
    import numpy as np

    return (255 * (noise - np.min(noise)) / (np.max(noise) - np.min(noise))).astype(np.uint8)


def power_noise_levels(width: int, height: int, frequency: float, attenuation: float, noise_type: str, seed: int):
    """The pack's generate_power_noise, drawing from NumPy's legacy generator seeded as the pack
    seeds the global one (seeds above 4294967294 wrapped into 0..4294967293)."""
    import numpy as np
    from PIL import Image

    if seed > 4294967294:
        seed = seed % 4294967294
    rng = np.random.RandomState(seed)
    grey = lambda: rng.normal(0, attenuation, (height, width))  # noqa: E731
    f = np.fft.fftfreq(height)[:, np.newaxis] ** 2 + np.fft.fftfreq(width) ** 2
    power = np.sqrt(f)
    power[0, 0] = 1

    def shaped(filtered):
        noise = np.fft.ifft2(filtered(np.fft.fft2(grey())))
        noise *= (1.0 / (width * height)) / noise.std()
        return np.real(noise)

    coloured = {"white": lambda: rng.random_sample((height, width)), "grey": grey,
                "pink": lambda: shaped(lambda spectrum: spectrum * power),
                "green": lambda: shaped(lambda spectrum: spectrum / np.sqrt(power)),
                "blue": lambda: shaped(lambda spectrum: spectrum / power)}
    if noise_type != "mix":
        return _stretched(coloured[noise_type]())
    masks = []
    for index in range(3):  # three blue-noise masks, each from the generator reseeded seed + index
        rng.seed(seed + index)
        masks.append(coloured["blue"]())
    blended = Image.new("L", (width, height), color=0)
    for mask, kind in zip(masks, ("white", "grey", "pink")):  # the pack zips 3 masks with 5 kinds
        noise = Image.fromarray(_stretched(coloured[kind]()))
        blended = Image.composite(blended, noise, Image.fromarray(_stretched(mask)))
    return np.asarray(blended)


class WasImagePowerNoise(Node):
    """Coloured noise as WAS's Image Power Noise makes it, with NumPy's generator seeded with seed
    as the pack seeds it (seeds above 4294967294 wrapped, as the pack does): "white" (uniform),
    "grey" (normal, sigma attenuation), "pink", "green" and "blue" (grey noise times, over the
    square root of, or over the spatial frequency in Fourier space), or "mix" (white, grey and pink
    laid through three blue-noise masks), stretched onto black..white as an RGB picture. frequency
    is unused, as in the pack."""
    category = "WAS Suite/Image/Generate/Noise"
    width: int = Int(512, min=64, max=4096, resource="width")
    height: int = Int(512, min=64, max=4096, resource="height")
    frequency: float = Float(0.5, min=0.0, max=10.0, step=0.01)
    attenuation: float = Float(0.5, min=0.0, max=10.0, step=0.01)
    noise_type: str = Choice(("grey", "white", "pink", "blue", "green", "mix"), "grey")
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Image Power Noise",))

    @classmethod
    def estimate(cls, widgets, inputs):
        width, height = widgets.get("width"), widgets.get("height")
        if not isinstance(width, int) or not isinstance(height, int):
            return Estimate(None)
        # a few complex128 Fourier planes of the picture at once
        return Estimate(Size(1, height, width), memory=width * height * 16 * 6)

    def run(self):
        import numpy as np
        from PIL import Image

        # a flat noise (attenuation 0) stretches to NaN and casts to black, as in the pack
        with np.errstate(divide="ignore", invalid="ignore"):
            levels = power_noise_levels(self.width, self.height, self.frequency, self.attenuation, self.noise_type,
                                        self.seed)
        return _generated(Image.fromarray(levels))


VORONOI_ROWS = 64  # rows of distances worked at a time: rows x width x density floats


def worley(width: int, height: int, density: int, option: int, flat: bool, seed: int):
    """The pack's worley_noise: density points (x and y both drawn from 0..width - 1, as the pack
    draws them) and colours from NumPy's default_rng(seed); each pixel the distance to its
    option-th nearest point, stretched onto 0..255 (grey), or with flat the colour of the nearest."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    points = rng.integers(0, width, (density, 2))
    colours = rng.integers(0, 256, (density, 3))
    xs = np.arange(width)
    data = np.zeros((height, width))
    flat_colours = np.zeros((height, width, 3), dtype=np.uint8)
    for top in range(0, height, VORONOI_ROWS):
        check_interrupted()
        ys = np.arange(top, min(top + VORONOI_ROWS, height))
        squared = ((points[:, 0, None, None] - xs[None, None, :]) ** 2
                   + (points[:, 1, None, None] - ys[None, :, None]) ** 2)  # [density, rows, width]
        if flat:
            flat_colours[ys] = colours[np.argmin(squared, axis=0)]
        else:
            data[ys] = np.sort(np.sqrt(squared), axis=0)[option]
    if flat:
        return Image.fromarray(flat_colours, "RGB")
    scaled = (data - np.min(data)) / (np.max(data) - np.min(data)) * 255
    return Image.fromarray(scaled.astype(np.uint8), "L")


class WasImageVoronoiNoiseFilter(Node):
    """Voronoi (Worley) noise as WAS's Image Voronoi Noise Filter makes it: density points from
    NumPy's generator seeded with seed (as the pack seeds it; their y is drawn over the width too,
    as in the pack), each pixel the distance to its (modulator + 1)-th nearest point stretched onto
    black..white, or with flat "True" the colour of its nearest point; RGB_output "False" gives
    the grey picture (as an IMAGE, its three channels equal)."""
    category = "WAS Suite/Image/Generate/Noise"
    width: int = Int(512, min=64, max=4096, resource="width")
    height: int = Int(512, min=64, max=4096, resource="height")
    density: int = Int(50, min=10, max=256, step=2)
    modulator: int = Int(0, min=0, max=8)
    seed: int = Int(0, min=0, max=SEED_MAX)
    flat: str = Choice(("False", "True"), "False")
    RGB_output: str = Choice(("True", "False"), "True")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Image Voronoi Noise Filter",), optional=("flat", "RGB_output"))

    @classmethod
    def estimate(cls, widgets, inputs):
        width, height, density = widgets.get("width"), widgets.get("height"), widgets.get("density")
        if not all(isinstance(v, int) for v in (width, height, density)):
            return Estimate(None)
        return Estimate(Size(1, height, width), memory=VORONOI_ROWS * width * density * 8 * 3 + width * height * 8)

    def run(self):
        picture = worley(self.width, self.height, self.density, self.modulator, self.flat == "True", self.seed)
        # RGB_output "False": the pack's grey picture (for flat, the grey of its colours)
        return _generated(picture.convert("RGB" if self.RGB_output == "True" else "L"))


NOISE_BYTES = 160  # Python objects Image to Noise holds a pixel (see its estimate)


def image_noise(picture, colors: int, black_mix: int, brightness: float, gaussian_mix: float, seed: int):
    """The pack's image2noise: the picture quantized to colors (Pillow), its pixels shuffled by
    Python's random seeded with seed, black_mix passes of black specks (each pixel a coin toss, in
    column order), brightened, and with gaussian_mix a blurred copy blended in. RGBA, as the pack's."""
    import numpy as np
    from PIL import Image, ImageEnhance, ImageFilter

    rng = random.Random(int(seed))
    quantized = picture.quantize(colors=colors).convert("RGBA")
    pixels = [tuple(pixel) for pixel in np.asarray(quantized).reshape(-1, 4).tolist()]  # getdata's order
    rng.shuffle(pixels)
    shuffled = Image.new("RGBA", quantized.size)
    shuffled.putdata(pixels)
    width, height = quantized.size
    black = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    specks = black.load()
    for _ in range(black_mix):
        for x in range(width):
            check_interrupted()  # a pass is a Python coin toss a pixel: some seconds on a large image
            for y in range(height):
                if rng.randint(0, 1) == 1:
                    specks[x, y] = (0, 0, 0, 255)
    result = ImageEnhance.Brightness(Image.alpha_composite(shuffled, black)).enhance(brightness)
    if gaussian_mix > 0:
        original = result.copy()
        result = Image.blend(result, result.filter(ImageFilter.GaussianBlur(radius=gaussian_mix)), 0.65)
        result = Image.blend(result, original, 0.25)
    return result


class WasImageToNoise(Node):
    """Noise from each image's own colours, as WAS's Image to Noise makes it: the image quantized
    to num_colors, its pixels shuffled (Python's random seeded with seed for each image, as the
    pack seeds it), black_mix passes of random black specks, brightness, and with gaussian_mix a
    blur of that radius blended in. The result keeps the pack's alpha channel (RGBA: four channels;
    brightness scales the alpha too, as Pillow's does). output_mode "list" gives the same batch
    here (the pack then gives a list of single images, which graphflow's batch carries alike)."""
    category = "WAS Suite/Image/Generate/Noise"
    images: IMAGE
    num_colors: int = Int(16, min=2, max=256, step=2)
    black_mix: int = Int(0, min=0, max=20)
    gaussian_mix: float = Float(0.0, min=0.0, max=1024.0, step=0.1)
    brightness: float = Float(1.0, min=0.0, max=2.0, step=0.01)
    output_mode: str = Choice(("batch", "list"), "batch")
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Image to Noise",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        if size is None:
            return Estimate(None)
        # the shuffle's Python list of pixel tuples and the nested list it is made from, for one
        # image at a time: a lower bound (measured, by tracemalloc, some 176 B a pixel)
        return Estimate(size, memory=NOISE_BYTES * size.pixels)

    def run(self):
        import numpy as np
        import torch

        noises = [image_noise(p, self.num_colors, self.black_mix, self.brightness, self.gaussian_mix, self.seed)
                  for p in _pictures(self.images, "images")]
        return torch.from_numpy(np.stack([np.asarray(n, dtype=np.float32) / 255.0 for n in noises]))


def image_seed(picture) -> int:
    """The pack's image2seed: the first 4 bytes of the SHA-256 of the picture's bytes, big-endian."""
    return int.from_bytes(hashlib.sha256(picture.tobytes()).digest()[:4], byteorder="big")


class WasImageToSeed(Node):
    """A seed from each image, as WAS's Image to Seed makes it: the first four bytes of the
    SHA-256 of its 8-bit pixels, read big-endian (0 .. 4294967295); a list, one per image. The
    pixels' bytes are the pack's tensor2pil picture's: RGB, RGBA for a four-channel image (its
    alpha hashed too), grey for one channel."""
    category = "WAS Suite/Image/Analyze"
    images: IMAGE
    outputs = {"INT": ListOf(INT)}
    comfy = ComfyAlias(("Image to Seed",))

    def run(self):
        from graphflow.images import image_to_pil

        if getattr(self.images, "dim", lambda: 0)() != 4:
            raise NodeInputError("images", "expected an image batch [B, H, W, C]")
        # not _pictures: that drops alpha, which the pack's tensor2pil keeps
        return [image_seed(image_to_pil(image)) for image in self.images]


# -- debug ------------------------------------------------------------------------------------------


def system_stats() -> list[str]:
    """The pack's get_system_stats lines: RAM, VRAM (the CUDA device's, where there is one) and
    the disk holding /."""
    import psutil
    import torch

    gb = 1024 ** 3
    ram = psutil.virtual_memory()
    lines = [f"Used RAM: {ram.used / gb:.2f} GB / Total RAM: {ram.total / gb:.2f} GB"]
    if torch.cuda.is_available():
        device = torch.device("cuda")
        lines.append(f"Used VRAM: {torch.cuda.memory_allocated(device) / gb:.2f} GB / "
                     f"Total VRAM: {torch.cuda.get_device_properties(device).total_memory / gb:.2f} GB")
    else:  # the pack asks the CPU for CUDA properties and fails
        lines.append("Used VRAM: no CUDA device")
    disk = psutil.disk_usage("/")
    lines.append(f"Used Space: {disk.used / gb:.2f} GB / Total Space: {disk.total / gb:.2f} GB")
    return lines


class WasSamplesPassthroughStatSystem(Node):
    """The latent passed on unchanged, with the machine's RAM, VRAM and disk use written to
    graphflow's log, as WAS's Samples Passthrough (Stat System) prints them (without a CUDA device
    the VRAM line says so, where the pack fails)."""
    category = "WAS Suite/Debug"
    samples: LATENT
    outputs = {"samples": LATENT}
    comfy = ComfyAlias(("Samples Passthrough (Stat System)",))

    def run(self):
        log.info("\n%s", "\n".join(system_stats()))
        return self.samples


class WasDictionaryToConsole(Node):
    """The dictionary written to graphflow's log under its label (or "Text to Console"), laid out
    by Python's pprint with indent 4, and given on, as WAS's Dictionary to Console prints it."""
    category = "WAS Suite/Debug"
    output_node = True
    dictionary: DICT
    label: str = Text("Dictionary Output")
    outputs = {"DICT": DICT}
    comfy = ComfyAlias(("Dictionary to Console",))

    def run(self):
        log.info("%s:\n%s", self.label.strip() or "Text to Console", pprint.pformat(self.dictionary, indent=4))
        return self.dictionary


def bounds_list(image_bounds) -> list[tuple[int, int, int, int]]:
    """The bounds as a list of (rmin, rmax, cmin, cmax): graphflow's Image Bounds gives one
    [top, bottom, left, right]; the pack's later layout a list of them, one an image."""
    bounds = list(image_bounds) if isinstance(image_bounds, (list, tuple)) else None
    if bounds is not None and len(bounds) == 4 and all(isinstance(v, (int, float)) for v in bounds):
        return [_bounds(bounds, "image_bounds")]
    if not bounds:
        raise NodeInputError("image_bounds", f"expected [top, bottom, left, right] or a list of them, got "
                                             f"{image_bounds!r}")
    return [_bounds(one, "image_bounds") for one in bounds]


class WasImageBoundsToConsole(Node):
    """The image bounds written to graphflow's log under the label (or "Debug to Console"), one
    "(rmin=..., rmax=..., cmin=..., cmax=...)" a line in brackets, and given on, as WAS's Image
    Bounds to Console prints them. Both bounds layouts are read: one [top, bottom, left, right]
    (graphflow's Image Bounds) or a list of them (the pack's later one, an image each)."""
    category = "WAS Suite/Debug"
    output_node = True
    image_bounds: IMAGE_BOUNDS
    label: str = Text("Debug to Console")
    outputs = {"IMAGE_BOUNDS": IMAGE_BOUNDS}
    comfy = ComfyAlias(("Image Bounds to Console",))

    def run(self):
        lines = ", \n    ".join(f"\t(rmin={a}, rmax={b}, cmin={c}, cmax={d})"
                                for a, b, c, d in bounds_list(self.image_bounds))
        log.info("%s:\n[\n%s\n]", self.label if self.label.strip() else "Debug to Console", lines)
        return self.image_bounds
