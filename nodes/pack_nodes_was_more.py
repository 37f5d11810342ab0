"""More of WAS Node Suite's (WASasquatch/was-node-suite-comfyui, WAS_Node_Suite.py at commit
c6cadcca870488fdb1f82d2f1082e0d4de64eb53) model-free nodes, under the pack's class names, inputs,
defaults and outputs: the region masks Mask Dominant Region, Mask Minority Region, Mask Arbitrary
Region, Mask Smooth Region, Mask Crop Region and Mask Paste Region; Image Gradient Map, Image
Generate Gradient and Image Paste Crop by Location. The mask nodes' classes (inputs, defaults,
outputs and the calls they make) were compared with the later (2024-2025) source quoted by a
documentation mirror of the suite's nodes: unchanged. Image Generate Gradient's inputs are the
same in both; its drawing follows c6cadcc (the later source's drawing and blur read the same).
Image Paste Crop by Location is read from that later source (c6cadcc's copy was not compared).
Image Gradient Map's inputs are the same in both, its colouring is not: c6cadcc greys a pixel by
the mean of its channels and takes its colour from the gradient picture's first 256 pixels in
reading order (no resize); the later source greys it with Pillow's "L" and takes the colour from
the gradient resized to 256 colours with OpenCV. It follows the later source here, which is
what the pack's users run now.

The pack works each mask as an 8-bit picture (255 x value, clipped, truncated) and gives it back
through its pil2mask, which returns 1 - level / 255: so the region nodes' results are, as in the
pack, 0 over the region they pick and 1 elsewhere (the quirks are in each node's help). The pack
fails on a batch of more than one [B, H, W] mask or image (it squeezes the batch into one
picture); here each of a batch is worked on its own (Mask Crop Region, which gives one crop,
refuses a batch), and masks come out [B, H, W], never [B, 1, H, W].

Left out here (the other modules' docstrings, nodes/pack_nodes_was.py and
nodes/pack_nodes_was_image.py, name what they hold and leave out): not built yet, Mask Rect Area
and Mask Rect Area (Advanced) (later nodes whose source was not read), Image Color Palette (it
needs scikit-learn's KMeans and a font, not dependencies), and the pilgram-based filters (Image
Dragan / Nova / Sparkle need the pilgram package, not a dependency).
"""

from __future__ import annotations

from graphflow.api import (IMAGE, INT, MASK, Choice, ComfyAlias, Float, Int, Node, NodeInputError, Text,
                           check_interrupted)
from nodes.pack_nodes_was_image import (CROP_DATA, _batch, _mask_levels, _masks, _pictures, _stack, crop_data_of,
                                      paste_crop)

COMFY_PACK = "WAS Node Suite"  # the custom node pack this module's ComfyUI classes come from

EIGHT_NEIGHBOURS = ((1, 1, 1), (1, 1, 1), (1, 1, 1))  # skimage's label default for 2-D pictures


def _picked(levels, pick):
    """0 where pick(level) marks the region (a boolean picture), 1 elsewhere: the pack's
    pil2mask of its 255-on-the-region picture."""
    return _masks(_stack([~pick(level) for level in levels]))


def dominant_region(level, threshold: int):
    """The pack's dominant region: the largest 4-connected region of the inverted levels above
    threshold; with no such region, the background label (the whole picture)."""
    import numpy as np
    import scipy.ndimage

    labels, count = scipy.ndimage.label(255 - level.astype(np.int32) > threshold)
    if count == 0:
        return labels == 0
    sizes = np.bincount(labels.ravel())
    return labels == int(np.argmax(sizes[1:])) + 1


def minority_region(level, threshold: int):
    """The pack's minority region: the smallest 4-connected region of the levels above
    threshold (the first of equal ones); with no such region, the whole picture."""
    import numpy as np
    import scipy.ndimage

    labels, count = scipy.ndimage.label(level > threshold)
    if count == 0:
        return labels == 0
    sizes = np.bincount(labels.ravel())
    return labels == int(np.argmin(sizes[1:])) + 1


class WasMaskDominantRegion(Node):
    """Keep the largest region, as WAS's Mask Dominant Region does: the pack inverts the mask,
    takes the 4-connected regions of levels above threshold (so the parts of the mask darker
    than 255 - threshold), and gives 0 over the largest of them and 1 elsewhere. A white shape
    on black comes out as the shape (and any other shapes) at 1, the largest black background
    at 0. A mask with no such region gives all 0."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    threshold: int = Int(128, min=0, max=255)
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Dominant Region",))

    def run(self):
        return _picked(_mask_levels(self.masks), lambda level: dominant_region(level, self.threshold))


class WasMaskMinorityRegion(Node):
    """Pick the smallest region, as WAS's Mask Minority Region does: the 4-connected regions of
    the mask's 8-bit levels above threshold, 0 over the smallest of them (the first found of
    equal sizes) and 1 elsewhere, as the pack gives it. A mask with no level above threshold
    gives all 0."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    threshold: int = Int(128, min=0, max=255)
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Minority Region",))

    def run(self):
        return _picked(_mask_levels(self.masks), lambda level: minority_region(level, self.threshold))


class WasMaskArbitraryRegion(Node):
    """Pick a region by size, as WAS's Mask Arbitrary Region does: of the 8-connected regions
    of levels above threshold (skimage's labelling), those of at least size / 10000 of the
    picture's area, the smallest gets 0 and the rest 1. Where no region is that big the pack
    gives the mask back through its pil2mask, so inverted (1 - mask, on 8-bit levels)."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    size: int = Int(256, min=1, max=4096)
    threshold: int = Int(128, min=0, max=255)
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Arbitrary Region",))

    def run(self):
        import numpy as np
        import scipy.ndimage

        out = []
        for level in _mask_levels(self.masks):
            labels, count = scipy.ndimage.label(level > self.threshold, structure=EIGHT_NEIGHBOURS)
            areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
            big_enough = np.flatnonzero(areas >= self.size * level.size / 10000)
            if big_enough.size:
                # the smallest area; stable on ties, so the first label of equal ones, as the pack's sort
                chosen = big_enough[np.argsort(areas[big_enough], kind="stable")[0]] + 1
                out.append(np.where(labels == chosen, 0, 255).astype(np.uint8))
            else:
                out.append(255 - level)
        return _masks(_stack(out))


BLUR_STRIP = 256  # lines of a mask blurred between interrupt checks (sigma 128 is 1025 taps a pixel each way)


def gaussian_in_strips(level, sigma: float, strip: int = BLUR_STRIP):
    """scipy's gaussian_filter of an 8-bit picture, a strip of lines at a time so that a long
    blur checks for an interrupt between strips. The same result: gaussian_filter runs a 1-D
    pass down axis 0 then one along axis 1, each kept in the input's 8 bits, and a 1-D pass
    works each line on its own; it skips a sigma of 1e-15 or less, as here."""
    import numpy as np
    import scipy.ndimage

    if sigma <= 1e-15:
        return level.copy()
    for axis in (0, 1):
        passed = np.empty_like(level)
        for start in range(0, level.shape[1 - axis], strip):
            check_interrupted()
            lines = (slice(None), slice(start, start + strip)) if axis == 0 else slice(start, start + strip)
            passed[lines] = scipy.ndimage.gaussian_filter1d(level[lines], sigma, axis=axis)
        level = passed
    return level


class WasMaskSmoothRegion(Node):
    """Smooth each mask's shape, as WAS's Mask Smooth Region does: scipy's gaussian_filter of
    the 8-bit levels at sigma (its result kept in 8 bits), then 1 where it is at least half its
    highest value and 0 elsewhere. As in the pack, an all-black mask comes out all 1 (half of
    0 is 0, and every level is at least 0). A large sigma is slow (the filter reaches 4 sigma
    each way: seconds a mask at 2048 x 2048 and sigma 128); an interrupt stops it between strips
    of lines."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    sigma: float = Float(5.0, min=0.0, max=128.0, step=0.1)
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Smooth Region",))

    def run(self):
        if self.sigma < 0:
            raise NodeInputError("sigma", f"{self.sigma} is below 0: expected a blur of 0 or more")
        out = []
        for level in _mask_levels(self.masks):
            smoothed = gaussian_in_strips(level, self.sigma, BLUR_STRIP)
            out.append(smoothed >= smoothed.max() / 2)
        return _masks(_stack(out))


def square_about(bbox, padding: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Mask Crop Region's box: a square of the bbox's longer side plus padding on each side,
    centred on the bbox (centres cut to whole pixels), its start moved to 0 and its end cut at
    the picture's edge (so it may come out narrower there)."""
    left, top, right, bottom = bbox
    side = max(right - left, bottom - top) + 2 * padding
    x = max((left + right) // 2 - side // 2, 0)
    y = max((top + bottom) // 2 - side // 2, 0)
    return x, y, min(x + side, width), min(y + side, height)


class WasMaskCropRegion(Node):
    """Cut a mask to a square about its lit part, as WAS's Mask Crop Region does: the box of
    the levels above 0, squared to its longer side plus padding each side and centred on it
    (moved in at the top-left edges, cut at the bottom-right ones). Gives the cut mask, the crop
    data for Image Paste Crop / Mask Paste Region ((width, height), (left, top, right, bottom))
    and the box's numbers. An all-black mask is given whole with the box (0, 0, 0, 0), as in the
    pack. region_type is read but, as in the pack (c6cadcc and later), changes nothing. One mask
    only: the pack squeezes its input to one picture, so a batch of several is refused."""
    category = "WAS Suite/Image/Masking"
    mask: MASK
    padding: int = Int(24, min=0, max=4096)
    region_type: str = Choice(("dominant", "minority"), "dominant")
    outputs = {"cropped_mask": MASK, "crop_data": CROP_DATA, "top_int": INT, "left_int": INT, "right_int": INT,
               "bottom_int": INT, "width_int": INT, "height_int": INT}
    comfy = ComfyAlias(("Mask Crop Region",))

    def run(self):
        import numpy as np

        levels = _mask_levels(self.mask, "mask")
        if levels.shape[0] != 1:
            raise NodeInputError("mask", f"a batch of {levels.shape[0]} masks: expected one mask, as the pack "
                                         "crops one")
        level = levels[0]
        height, width = level.shape
        rows, columns = np.nonzero(level)
        if rows.size == 0:
            left = top = right = bottom = 0
            cut = level
        else:
            bbox = (int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1)
            left, top, right, bottom = square_about(bbox, self.padding, width, height)
            cut = level[top:bottom, left:right]
        crop_width, crop_height = cut.shape[1], cut.shape[0]
        crop_data = ((crop_width, crop_height), (left, top, right, bottom))
        return _masks(cut[None]), crop_data, top, left, right, bottom, crop_width, crop_height


class WasMaskPasteRegion(Node):
    """Paste a cut mask (from Mask Crop Region, edited) back where it was cut, as WAS's Mask
    Paste Region does with Image Paste Crop's recipe: resized to the crop's size, sharpened
    crop_sharpening times, its edges faded in over crop_blending of its size where they lie
    inside the mask. Gives the mask and the blend mask used. Each mask of a batch is pasted on
    its own (one crop_mask for all, or one each). Where the pack, given no crop data, prints an
    error and gives two 512 x 512 masks, here the crop_data input is named in an error."""
    category = "WAS Suite/Image/Masking"
    mask: MASK
    crop_mask: MASK
    crop_data: CROP_DATA
    crop_blending: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    crop_sharpening: int = Int(0, min=0, max=3)
    outputs = {"MASK": MASK, "MASK_2": MASK}
    comfy = ComfyAlias(("Mask Paste Region",))

    def run(self):
        import numpy as np
        from PIL import Image

        crop_data_of(self.crop_data, "Mask Crop Region")
        levels, crops = _mask_levels(self.mask, "mask"), _mask_levels(self.crop_mask, "crop_mask")
        if len(crops) not in (1, len(levels)):
            raise NodeInputError("crop_mask", f"{len(crops)} masks for {len(levels)}: expected 1 or as many")
        pasted, blends = [], []
        for i, level in enumerate(levels):
            # the pack pastes grey pictures into RGBA ones: the same as pasting their RGB
            picture = Image.fromarray(level, "L").convert("RGB")
            crop = Image.fromarray(crops[i % len(crops)], "L").convert("RGB")
            result, blend = paste_crop(picture, crop, self.crop_data, self.crop_blending, self.crop_sharpening)
            pasted.append(np.asarray(result.convert("L")))
            blends.append(np.asarray(blend.convert("L")))
        return _masks(_stack(pasted)), _masks(_stack(blends))


def gradient_lut(gradient, flip: bool):
    """The pack's 256-colour table from a gradient picture: (mirrored,) resized to 256 x 256 with
    OpenCV's default (bilinear), its top row as a (256, 1, 3) lookup table."""
    import cv2
    import numpy as np
    from PIL import Image

    if flip:
        gradient = gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return cv2.resize(np.asarray(gradient.convert("RGB")), (256, 256))[0].reshape(256, 1, 3).astype(np.uint8)


class WasImageGradientMap(Node):
    """Colour an image by a gradient, as WAS's Image Gradient Map does in its current source:
    each pixel's grey level (Pillow's "L") picks its colour from the gradient image resized to
    256 x 256 with OpenCV (its top row), applied with cv2.applyColorMap; flip_left_right "true"
    mirrors the gradient first. (Older releases, such as c6cadcc, greyed by the mean of the
    channels and read the gradient's first 256 pixels unresized: their colours differ.) Each
    image of a batch is mapped on its own, with one gradient image for all or one each (the
    pack takes a single image)."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    gradient_image: IMAGE
    flip_left_right: str = Choice(("false", "true"), "false")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Gradient Map",))

    def run(self):
        import cv2
        import numpy as np
        from PIL import Image

        pictures, gradients = _pictures(self.image, "image"), _pictures(self.gradient_image, "gradient_image")
        if len(gradients) not in (1, len(pictures)):
            raise NodeInputError("gradient_image", f"{len(gradients)} gradients for {len(pictures)} images: "
                                                   "expected 1 or as many")
        tables = [gradient_lut(g, self.flip_left_right == "true") for g in gradients]
        return _batch([Image.fromarray(cv2.applyColorMap(np.asarray(p.convert("L")), tables[i % len(tables)]))
                       for i, p in enumerate(pictures)])


GRADIENT_STOPS = "0:255,0,0\n25:255,255,255\n50:0,255,0\n75:0,0,255"


def gradient_stops(text: str) -> dict[int, tuple[int, int, int]]:
    """Image Generate Gradient's stops, one "position:red,green,blue" a line (spaces dropped), as
    the pack reads them; the lowest stop's colour is put at 0 and the highest's at 255."""
    stops = {}
    for line in text.strip().replace(" ", "").split("\n"):
        position, _, colour = line.partition(":")
        try:
            channels = [int(c) for c in colour.split(",")]
            stops[int(position)] = (channels[0], channels[1], channels[2])
        except (ValueError, IndexError):
            raise NodeInputError("gradient_stops", f"{line!r}: expected a line like 25:255,128,0 (position:red,"
                                                   "green,blue)") from None
    stops[0], stops[255] = stops[min(stops)], stops[max(stops)]
    return stops


def gradient_spectrum(stops: dict[int, tuple[int, int, int]]) -> list[tuple[int, ...]]:
    """The pack's 256 colours: each index between the stops about it, linearly, rounded."""
    positions = sorted(stops)
    spectrum = []
    for i in range(256):
        start = max(p for p in positions if p <= i)
        end = min(p for p in positions if p >= i)
        factor = 0 if start == end else (i - start) / (end - start)
        spectrum.append(tuple(round(a + (b - a) * factor) for a, b in zip(stops[start], stops[end])))
    return spectrum


class WasImageGenerateGradient(Node):
    """A gradient picture, as WAS's Image Generate Gradient draws it: gradient_stops gives a
    colour at each position (one "position:red,green,blue" a line); the pack reads positions as
    0..255 but draws only 0..100 of them across the image (column x takes colour int(x * 100 /
    (width - 1))), so stops past 100 only shade the colours before them, and the last stop's
    colour reaches position 255. tolerance above 0 rounds each channel to a multiple of it
    (clipped to 255 here, as Pillow does on drawing). Last a Gaussian blur of 1.5 pixels (times
    the longer side / 512, at least 1.5 times, above 512)."""
    category = "WAS Suite/Image/Generate"
    width: int = Int(512, min=64, max=4096, resource="width")
    height: int = Int(512, min=64, max=4096, resource="height")
    direction: str = Choice(("horizontal", "vertical"), "horizontal")
    tolerance: int = Int(0, min=0, max=255)
    gradient_stops: str = Text(GRADIENT_STOPS, multiline=True)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Generate Gradient",))

    def run(self):
        import numpy as np
        from PIL import Image, ImageFilter

        spectrum = np.array(gradient_spectrum(gradient_stops(self.gradient_stops)))
        if self.tolerance > 0:
            # Python's round (halves to even), as the pack rounds
            spectrum = np.array([[round(c / self.tolerance) * self.tolerance for c in colour] for colour in spectrum])
        horizontal = self.direction == "horizontal"
        length = self.width if horizontal else self.height
        colours = np.clip(spectrum[np.arange(length) * 100 // (length - 1)], 0, 255).astype(np.uint8)
        levels = np.broadcast_to(colours[None] if horizontal else colours[:, None], (self.height, self.width, 3))
        blur = 1.5
        if self.width > 512 or self.height > 512:
            blur *= max(max(self.width, self.height) / 512, 1.5)
        return _batch([Image.fromarray(np.ascontiguousarray(levels), "RGB").filter(ImageFilter.GaussianBlur(blur))])


def paste_at(picture, crop, box: tuple[int, int, int, int], blending: float, sharpening: int):
    """Image Paste Crop by Location on one picture: the crop resized into box (and sharpened),
    laid over through a mask that is white in the box less a black border of a quarter of
    blend_ratio (half the box's longer side times blending), then box- and Gaussian-blurred by
    blend_ratio / 4; (result, mask) as RGB pictures."""
    from PIL import Image, ImageDraw, ImageFilter

    left, top, right, bottom = box
    size = (right - left, bottom - top)
    picture = picture.convert("RGBA")
    crop = crop.convert("RGBA").resize(size)
    for _ in range(int(sharpening)):
        crop = crop.filter(ImageFilter.SHARPEN)
    ratio = max(size) / 2 * min(max(blending, 0.0), 1.0)
    block = Image.new("L", size, 255)
    ImageDraw.Draw(block).rectangle((0, 0, size[0] - 1, size[1] - 1), outline=0, width=int(ratio / 2))
    mask = Image.new("L", picture.size, 0)
    mask.paste(block, (left, top))
    laid = picture.copy()
    laid.paste(crop, (left, top), crop)
    mask = mask.filter(ImageFilter.BoxBlur(radius=ratio / 4)).filter(ImageFilter.GaussianBlur(radius=ratio / 4))
    laid.putalpha(mask)
    return Image.alpha_composite(picture, laid).convert("RGB"), mask.convert("RGB")


class WasImagePasteCropByLocation(Node):
    """Paste crop_image into the box left..right x top..bottom (clamped to the image), as WAS's
    Image Paste Crop by Location does: resized to the box, sharpened crop_sharpening times, its
    edges faded over a border of crop_blending x half the box's longer side (a box- and
    Gaussian-blurred mask). Gives the image and the mask (as an image). The pack gives the image
    with an alpha channel that is always opaque; here it is RGB. Each image of a batch is pasted
    on its own (one crop_image for all, or one each)."""
    category = "WAS Suite/Image/Process"
    image: IMAGE
    crop_image: IMAGE
    top: int = Int(0, min=0, max=10000000)
    left: int = Int(0, min=0, max=10000000)
    right: int = Int(256, min=0, max=10000000)
    bottom: int = Int(256, min=0, max=10000000)
    crop_blending: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    crop_sharpening: int = Int(0, min=0, max=3)
    outputs = {"IMAGE": IMAGE, "IMAGE_2": IMAGE}
    comfy = ComfyAlias(("Image Paste Crop by Location",))

    def run(self):
        pictures, crops = _pictures(self.image, "image"), _pictures(self.crop_image, "crop_image")
        if len(crops) not in (1, len(pictures)):
            raise NodeInputError("crop_image", f"{len(crops)} crops for {len(pictures)} images: expected 1 or as many")
        width, height = pictures[0].size
        box = (min(self.left, width), min(self.top, height), min(self.right, width), min(self.bottom, height))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise NodeInputError("right" if box[2] <= box[0] else "bottom",
                                 f"the box {box} in a {width}x{height} image is empty: expected left < right and "
                                 "top < bottom inside the image")
        pasted = [paste_at(p, crops[i % len(crops)], box, self.crop_blending, self.crop_sharpening)
                  for i, p in enumerate(pictures)]
        return _batch([p for p, _ in pasted]), _batch([m for _, m in pasted])
