"""A fourth round of WAS Node Suite's (WASasquatch/was-node-suite-comfyui) model-free nodes, under the
pack's class names, inputs, defaults and outputs: Image Blending Mode, Image Style Filter, Image
Dragan Photography Filter, Image Nova Filter and Image Shadows and Highlights (the pilgram,
Instagram-filter, ones), Mask Rect Area and Mask Rect Area (Advanced), Masks Combine Batch, Image
Color Palette; Image Rotate Hue, Image Select Color, Image Median Filter, Image Chromatic
Aberration, Images to Linear, Image Tiled; Logic Boolean Primitive, Number Counter; Mask Crop
Dominant Region, Mask Crop Minority Region; Image Batch, Mask Batch, Latent Batch; Blend Latents and
Latent Noise Injection; and the text nodes Text Sort, Text Find, Text Multiline (Code Compatible),
Text List to Text, Text Dictionary Get, Text Dictionary New, Text Dictionary Keys, Text Dictionary
To Text and Text Dictionary Convert. (The Lora, CLIP Vision and Control Net Model input switches are
in nodes/pack_nodes_was4_switches.py.)

Read from: the suite's WAS_Node_Suite.py as the code store holds it in a 2024-2025 version (546,293
characters; the store names no commit for that copy): its node registration, the classes Mask Rect
Area (and Advanced), Masks Combine Batch, Image Shadows and Highlights, Blend Latents, Latent Noise
Injection, the text nodes here, the helper medianFilter, and WAS_Tools_Class's
shadows_and_highlights, crop_dominant_region, crop_minority_region, dragan_filter, sparkle and
generate_palette; and the class sources quoted by a documentation mirror of the suite's nodes (same
era) for Image Blending Mode, Image Style Filter, Image Dragan Photography Filter, Image Nova
Filter, Image Color Palette, Image Rotate Hue, Image Select Color, Image Median Filter, Image
Chromatic Aberration, Images to Linear, Image Tiled, Logic Boolean Primitive, Number Counter, Mask
Crop Dominant Region, Image Batch, Mask Batch and Latent Batch. (The first rounds,
nodes/pack_nodes_was.py, pack_nodes_was_image.py and pack_nodes_was_more.py, followed commit
c6cadcc.) The two Mask Rect Area nodes' editor scripts, js/was_mask_rect_area.js at
d73c0d1d1261d2f9d98b6498374426649909e69e and js/was_mask_rect_area_advanced.js at
b028e2f05a2997275fe3d80e9c12085e9c0b1662, add a second set of number widgets and a preview canvas,
so their UI saves hold 11 and 15 values: read as the pack runs them (the nodes' help says which),
and written back so. The suite's later rewrite (nodes/mask/mask_rect_area.py, read in a fork's copy,
Mu-L/was-node-suite-comfyui at d244959893a728f8416b81114ee9615fed2f5ea1) adds a drawn_mask (a mask
painted on the node) and drawn_combine to those two nodes: such a save (or API prompt) is read when
it paints nothing or its drawn_combine is "off" (a UI save's noted), and refused naming drawn_mask
when a painted mask joins the rectangle, since graphflow paints none.

pilgram (pinned >=1.2 in pyproject; tested with 2.0.0) does the filters and blend modes, Pillow the
rest, as in the pack; scikit-learn's KMeans finds the palette (seeded with random_state=0 as the
pack seeds it) and OpenCV blurs the rectangles. The pack's single-image nodes (Image Blending Mode,
Image Nova Filter, Image Shadows and Highlights) fail on a batch of more than one; here each image
is worked on its own. Quirks kept and said in each node's help: Image Blending Mode's "add" is
pilgram's normal blend; Image Dragan Photography Filter's colorize is a text the pack tests for
truth, so "false" colorizes too; Image Nova Filter wraps negative levels round 256 as the NumPy 1
the pack ran on did. Image Style Filter's "fairy tale" (the suite's sparkle) scatters 10,000 random
specks from Python's unseeded random, as the pack does: no two runs give the same picture.

Left out here, and why (the first rounds' docstrings name the rest): KSampler Cycle (the suite's own
upscale-and-resample loop, not built on our samplers in this round); the nodes that need model
weights, a download or a web service (BLIP, CLIPSeg, MiDaS, SAM, Rembg, Diffusers loaders, Image
Crop Face / Paste Face, True Random.org, Image Send HTTP; SAM Parameters and SAM Parameters Combine
too, whose points go only to SAM Image Mask; and the Diffusers Model Loader calls a ComfyUI function
that is gone, so it fails in ComfyUI too: ComfyUI's DiffusersLoader loads such folders here); those
tied to the suite's own history, cache, style and video files (Image / Text File History Loader,
Load / Cache Node, Export API, Prompt (Multiple) Styles Selector, Create Morph Image / Video, Write
to GIF / Video, Video Dump Frames); and model-free ones not reached in this round: Image Canny
Filter, Image Film Grain, Image Monitor Effects Filter, Image Pixelate, Image Power Noise, Image
Perlin Noise / Power Fractal, Image Voronoi Noise Filter, Image Seamless Texture, Image fDOF Filter,
Image Lucy Sharpen, Image Displacement Warp, Image SSAO / SSDO, Image Analyze, Image to Noise, Image
to Seed, Text Random Prompt (its source not read), Hex to HSL, HSL to Hex, Dictionary to Console,
Image Bounds to Console and Samples Passthrough (Stat System).
"""

from __future__ import annotations

import math

from graphflow.api import BOOLEAN, FLOAT, IMAGE, INT, LATENT, MASK, STRING, Bool, Choice, ComfyAlias, Estimate, Float, \
    Int, Node, NodeInputError, Size, Text, check_interrupted, current_node_id
from nodes.pack_nodes_was import DICT, LIST, NUMBER, NUMBER_LIMIT, parse_tokens, remember
from nodes.pack_nodes_was_image import _batch, _mask_levels, _masks, _pictures, picture_pairs

COMFY_PACK = "WAS Node Suite"  # the custom node pack this module's ComfyUI classes come from

# -- pilgram blend modes and filters -----------------------------------------------------------------

# the pack's mode names and the pilgram.css.blending function each calls ("add" calls normal)
BLEND_MODES = {"add": "normal", "color": "color", "color_burn": "color_burn", "color_dodge": "color_dodge",
               "darken": "darken", "difference": "difference", "exclusion": "exclusion",
               "hard_light": "hard_light", "hue": "hue", "lighten": "lighten", "multiply": "multiply",
               "overlay": "overlay", "screen": "screen", "soft_light": "soft_light"}


def blend_with_mode(first, second, mode: str, percentage: float):
    """One picture of Image Blending Mode: pilgram's blend of second over first, mixed back with
    first through a uniform 8-bit mask of 255 - round(percentage * 255) (the pack's composite)."""
    import pilgram.css.blending
    from PIL import Image, ImageOps

    blended = getattr(pilgram.css.blending, BLEND_MODES[mode])(first, second).convert("RGB")
    keep_first = ImageOps.invert(Image.new("L", first.size, round(percentage * 255)))
    return Image.composite(first, blended, keep_first)


class WasImageBlendingMode(Node):
    """image_b blended over image_a with a CSS blend mode (pilgram's, as WAS's Image Blending Mode
    calls them), then mixed with image_a by blend_percentage (1: the blend alone, 0: image_a),
    through an 8-bit mask as the pack does. As in the pack, "add" is pilgram's normal blend
    (image_b itself), not an addition. Batches are blended image by image (one image_b for all of
    image_a, or one each); the two must be one size."""
    category = "WAS Suite/Image"
    image_a: IMAGE
    image_b: IMAGE
    mode: str = Choice(tuple(BLEND_MODES), "add")
    blend_percentage: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Image Blending Mode",))

    def run(self):
        first, second = picture_pairs(self.image_a, self.image_b)
        return _batch([blend_with_mode(a, second[i % len(second)], self.mode, self.blend_percentage)
                       for i, a in enumerate(first)])


def sparkle(picture, rng):
    """The suite's sparkle ("fairy tale"): contrast 1.25 and colour 1.5, a half-transparent bloom
    (Gaussian 20, brightness 1.2) laid over, then two layers of 5,000 random specks each (blurred
    1 pixel, half transparent) colour-dodged and lightened on with pilgram. rng gives the specks'
    places and colours, drawn in the pack's order."""
    import pilgram.css.blending
    from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

    picture = ImageEnhance.Color(ImageEnhance.Contrast(picture.convert("RGBA")).enhance(1.25)).enhance(1.5)
    bloom = ImageEnhance.Brightness(picture.filter(ImageFilter.GaussianBlur(radius=20))).enhance(1.2)
    bloom.putalpha(128)
    picture = Image.alpha_composite(picture, bloom)
    width, height = picture.size
    layers = []
    for _ in range(2):
        specks = Image.new("RGBA", picture.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(specks)
        for _ in range(5000):
            # randint is inclusive: a speck at x == width or y == height falls off the picture, as in the pack
            x, y = rng.randint(0, width), rng.randint(0, height)
            draw.point((x, y), fill=(rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255), 255))
        specks = specks.filter(ImageFilter.GaussianBlur(radius=1))
        specks.putalpha(128)
        layers.append(specks)
    picture = pilgram.css.blending.color_dodge(picture, layers[0])
    return pilgram.css.blending.lighten(picture, layers[1])


STYLES = ("1977", "aden", "brannan", "brooklyn", "clarendon", "earlybird", "fairy tale", "gingham", "hudson",
          "inkwell", "kelvin", "lark", "lofi", "maven", "mayfair", "moon", "nashville", "perpetua", "reyes",
          "rise", "slumber", "stinson", "toaster", "valencia", "walden", "willow", "xpro2")


def style_filter(picture, style: str):
    """One picture through pilgram's Instagram filter named style ("1977" is pilgram._1977), or
    the suite's sparkle for "fairy tale"."""
    import random

    import pilgram

    if style == "fairy tale":
        return sparkle(picture, random.Random())
    return getattr(pilgram, "_1977" if style == "1977" else style)(picture)


class WasImageStyleFilter(Node):
    """Each image through an Instagram-like filter, pilgram's, as WAS's Image Style Filter applies
    them. "fairy tale" is the suite's own sparkle (more contrast and colour, a bloom, and 10,000
    random coloured specks): as in the pack its specks come from an unseeded random, so every run
    differs. The pack gives that style's image with an alpha channel when pilgram returns one;
    here images are RGB."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    style: str = Choice(STYLES, "1977")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Style Filter",))

    def run(self):
        return _batch([style_filter(p, self.style).convert("RGB") for p in _pictures(self.image, "image")])


def dragan(picture, saturation: float, contrast: float, sharpness: float, brightness: float,
           highpass_radius: float, highpass_samples: int, highpass_strength: float, colorize: bool):
    """The suite's dragan_filter on one RGB picture: contrast, colour, sharpness and brightness on
    its grey copy; a high pass (the picture less that grey one blurred by -highpass_radius, as
    the pack passes it to Pillow, screened over mid grey) overlaid 1 + highpass_samples times
    (at least twice); blended by highpass_strength; last pilgram's color blend of the picture's
    colours back on, when colorize."""
    import pilgram.css.blending
    from PIL import Image, ImageChops, ImageEnhance, ImageFilter

    grey = ImageEnhance.Contrast(picture.convert("L")).enhance(contrast)
    grey = ImageEnhance.Color(grey).enhance(saturation)
    grey = ImageEnhance.Sharpness(grey).enhance(sharpness)
    grey = ImageEnhance.Brightness(grey).enhance(brightness)
    blurred = grey.filter(ImageFilter.GaussianBlur(radius=-highpass_radius))
    high_pass = ImageChops.subtract(picture, blurred.convert("RGB"))
    high_pass = ImageChops.screen(Image.new("RGB", picture.size, (127, 127, 127)), high_pass.resize(picture.size))
    if not colorize:
        high_pass = high_pass.convert("L").convert("RGB")
    passed = pilgram.css.blending.overlay(grey.convert("RGB"), high_pass)
    for _ in range(highpass_samples if highpass_samples > 0 else 1):
        passed = pilgram.css.blending.overlay(passed, high_pass)
    result = ImageChops.blend(grey.convert("RGB"), passed, highpass_strength)
    return pilgram.css.blending.color(result, picture) if colorize else result


class WasImageDraganPhotographyFilter(Node):
    """A "Dragan" look, as WAS's Image Dragan Photography Filter makes it: the image's grey copy
    given contrast, saturation, sharpness and brightness (Pillow's enhancers), a high pass
    overlaid 1 + highpass_samples times (twice at 0) and blended in by highpass_strength, then
    the image's colours laid back with pilgram's color blend. The pack hands the Gaussian blur of
    its high pass -highpass_radius (Pillow's blur of a negative radius), kept here. colorize is
    the text "true" or "false", which the pack tests for truth: both colorize, as in the pack."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    saturation: float = Float(1.0, min=0.0, max=16.0, step=0.01)
    contrast: float = Float(1.0, min=0.0, max=16.0, step=0.01)
    brightness: float = Float(1.0, min=0.0, max=16.0, step=0.01)
    sharpness: float = Float(1.0, min=0.0, max=6.0, step=0.01)
    highpass_radius: float = Float(6.0, min=0.0, max=255.0, step=0.01)
    highpass_samples: int = Int(1, min=0, max=6)
    highpass_strength: float = Float(1.0, min=0.0, max=3.0, step=0.01)
    colorize: str = Choice(("true", "false"), "true")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Dragan Photography Filter",))

    def run(self):
        # the pack passes the text on: any non-empty one is true
        colorize = bool(self.colorize)
        return _batch([dragan(p, self.saturation, self.contrast, self.sharpness, self.brightness,
                              self.highpass_radius, self.highpass_samples, self.highpass_strength, colorize)
                       for p in _pictures(self.image, "image")])


def nova_levels(levels, amplitude: float, frequency: float):
    """Image Nova Filter's levels: each 8-bit level v becomes int(amplitude * sin(2 pi frequency
    v / 255) * 255) (cut toward zero), stored in 8 bits, so a negative one wraps round 256 (as
    NumPy 1 stored it; NumPy 2 refuses). frequency is capped at half the picture's width."""
    import numpy as np

    frequency = min(frequency, levels.shape[1] / 2)
    waved = np.trunc(amplitude * np.sin(2 * np.pi * frequency * (levels / 255)) * 255).astype(np.int64)
    return (waved % 256).astype(np.uint8)


class WasImageNovaFilter(Node):
    """Each colour level run through a sine wave, as WAS's Image Nova Filter does: level v (0-255)
    becomes amplitude x sin(2 pi x frequency x v / 255) x 255, cut to a whole number; negative
    results wrap round to 256 + result, as the NumPy the pack was written on stored them (so the
    dark bands are bright). frequency is held to at most half the image width, as in the pack."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    amplitude: float = Float(0.1, min=0.0, max=1.0, step=0.001)
    frequency: float = Float(3.14, min=0.0, max=100.0, step=0.001)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Nova Filter",))

    def run(self):
        import numpy as np
        from PIL import Image

        return _batch([Image.fromarray(nova_levels(np.array(p), self.amplitude, self.frequency), "RGB")
                       for p in _pictures(self.image, "image")])


def shadows_and_highlights(picture, shadow_threshold: float, highlight_threshold: float, shadow_factor: float,
                           highlight_factor: float, shadow_smoothing: float, highlight_smoothing: float,
                           simplify_isolation: float):
    """The suite's shadows_and_highlights on one RGB picture: its grey copy blurred by
    simplify_isolation picks the shadows (below shadow_threshold) and highlights (above
    highlight_threshold) as 8-bit masks, each blurred twice by its smoothing; the picture's
    levels times shadow_factor are pasted through the shadow mask, times highlight_factor through
    the highlight one, and pilgram's color blend lays the picture's colours back. Gives (result,
    shadow mask, highlight mask)."""
    import pilgram.css.blending
    from PIL import Image, ImageFilter

    grey = picture.convert("L").filter(ImageFilter.GaussianBlur(radius=float(simplify_isolation)))
    shadow_mask = Image.eval(grey, lambda level: 255 if level < shadow_threshold else 0)
    highlight_mask = Image.eval(grey, lambda level: 255 if level > highlight_threshold else 0)
    # the pack blurs each mask twice with the same radius (before and after scaling the levels)
    for _ in range(2):
        shadow_mask = shadow_mask.filter(ImageFilter.GaussianBlur(radius=shadow_smoothing))
        highlight_mask = highlight_mask.filter(ImageFilter.GaussianBlur(radius=highlight_smoothing))
    result = picture.copy()
    result.paste(Image.eval(picture, lambda level: level * shadow_factor), shadow_mask)
    result.paste(Image.eval(picture, lambda level: level * highlight_factor), highlight_mask)
    return pilgram.css.blending.color(result, picture), shadow_mask, highlight_mask


class WasImageShadowsAndHighlights(Node):
    """Darken or lift the shadows and highlights, as WAS's Image Shadows and Highlights does: the
    grey copy (blurred by simplify_isolation) below shadow_threshold marks the shadows, above
    highlight_threshold the highlights; each mask is blurred (twice, as in the pack) by its
    smoothing; the image's levels are scaled by shadow_factor / highlight_factor through those
    masks, and its colours laid back with pilgram's color blend. Also gives the two masks. The
    pack gives the masks as one-channel [1, H, W] tensors on an IMAGE socket (and fails on a batch);
    here they are RGB images, and each image of a batch is worked on its own."""
    category = "WAS Suite/Image/Adjustment"
    image: IMAGE
    shadow_threshold: float = Float(75.0, min=0.0, max=255.0, step=0.1)
    shadow_factor: float = Float(1.5, min=-12.0, max=12.0, step=0.1)
    shadow_smoothing: float = Float(0.25, min=-255.0, max=255.0, step=0.1)
    highlight_threshold: float = Float(175.0, min=0.0, max=255.0, step=0.1)
    highlight_factor: float = Float(0.5, min=-12.0, max=12.0, step=0.1)
    highlight_smoothing: float = Float(0.25, min=-255.0, max=255.0, step=0.1)
    simplify_isolation: float = Float(0.0, min=-255.0, max=255.0, step=0.1)
    outputs = {"image": IMAGE, "shadow_map": IMAGE, "highlight_map": IMAGE}
    comfy = ComfyAlias(("Image Shadows and Highlights",))

    def run(self):
        done = [shadows_and_highlights(p, self.shadow_threshold, self.highlight_threshold, self.shadow_factor,
                                       self.highlight_factor, self.shadow_smoothing, self.highlight_smoothing,
                                       self.simplify_isolation)
                for p in _pictures(self.image, "image")]
        return tuple(_batch([parts[i].convert("RGB") for parts in done]) for i in range(3))


# -- rectangle masks ---------------------------------------------------------------------------------

def blurred_rectangle(height: int, width: int, top: int, bottom: int, left: int, right: int, blur_radius: int):
    """A [1, height, width] mask, 1 over rows top..bottom and columns left..right (cut at the
    edges, as slicing does), blurred when blur_radius > 0 by OpenCV's Gaussian of size
    2 x blur_radius + 1 and its own sigma for that size, in float32, as the pack does."""
    import numpy as np
    import torch

    mask = np.zeros((height, width), dtype=np.float32)
    mask[max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)] = 1.0
    if blur_radius > 0:
        import cv2

        side = blur_radius * 2 + 1
        mask = cv2.GaussianBlur(mask, (side, side), 0)
    return torch.from_numpy(mask)[None]


RECT_RESOLUTION = 512  # Mask Rect Area always draws on a 512 x 512 mask
REWRITE_DEFAULT_COMBINE = "union"  # the later rewrite's drawn_combine when a save has none


def rewrite_layout(values: list, schema: int):
    """A save from the suite's later rewrite: the schema's values, then drawn_mask (a painted mask,
    as text; "" when none) and drawn_combine (how it joins the rectangle; "off" ignores it), then
    perhaps its editor's own widget. A painted mask that joins changes the pack's output, and
    graphflow paints none: refused (ValueError, the widgets hook's refusal). Otherwise the schema's
    values, with a note of what was dropped."""
    drawn = values[schema]
    combine = values[schema + 1] if len(values) > schema + 1 else REWRITE_DEFAULT_COMBINE
    if isinstance(drawn, str) and drawn and combine != "off":
        raise ValueError(f"a mask painted on the node (the suite's later drawn_mask, {len(drawn):,} characters) joins "
                         f"its rectangle (drawn_combine {combine!r}); graphflow does not read painted masks: clear "
                         "drawn_mask or set drawn_combine to 'off' in ComfyUI")
    what = "no painted mask" if not drawn else f"drawn_combine {combine!r}"
    return values[:schema], (f"the suite's later drawn_mask / drawn_combine left out ({what}: "
                             "the rectangle is the same without them)")


DRAWN_INPUTS = ("drawn_mask", "drawn_combine")  # the later rewrite's painted mask and how it joins
DRAWN_REFUSAL = ("a mask painted on the node (the suite's later drawn_mask) joins its rectangle; graphflow does "
                 "not read painted masks: clear drawn_mask or set drawn_combine to 'off' in ComfyUI")


def rewrite_api_inputs(inputs: dict) -> dict:
    """An API prompt from the suite's later rewrite carries drawn_mask / drawn_combine: left out where
    they paint nothing (an empty drawn_mask, or drawn_combine "off"); a painted mask that joins stays,
    refused naming drawn_mask (unknown_input), as a UI save of it is."""
    drawn = inputs.get("drawn_mask", "")
    combine = inputs.get("drawn_combine", REWRITE_DEFAULT_COMBINE)
    if isinstance(drawn, str) and (not drawn or combine == "off"):
        return {name: value for name, value in inputs.items() if name not in DRAWN_INPUTS}
    return inputs


def rect_area_widgets(values: list):
    """Mask Rect Area's widgets_values as the pack's schema lays them out (x, y, width, height,
    blur_radius). The pack's editor script adds its own x, y, w, h and blur_radius number widgets
    after the schema's five, and a preview canvas (saved as null): eleven values. The editor
    sends the later widget of a name, so x, y and blur_radius come from the script's widgets;
    its w and h reach the pack under other names, unused, so width and height stay the schema's.
    A save of the later rewrite (drawn_mask, a text, after the five) goes to rewrite_layout."""
    if not isinstance(values, list) or len(values) <= 5:
        return values
    if isinstance(values[5], str):
        return rewrite_layout(values, 5)
    if len(values) >= 10:
        return [values[5], values[6], values[2], values[3], values[9]]
    return values


def rect_area_export(values: list) -> list:
    """Mask Rect Area's five values as the pack's editor saves them: the schema's, its script's x,
    y, w, h and blur_radius holding the same values, and the preview canvas's null (eleven, read
    back by rect_area_widgets as these five)."""
    return [*values, *values, None]


def rect_area_advanced_widgets(values: list):
    """Mask Rect Area (Advanced)'s widgets_values in the schema's seven: its editor script adds
    the same seven number widgets again (and a preview canvas, saved as null), and the editor
    sends the later ones, so those are read. A save of the later rewrite (drawn_mask, a text,
    after the seven) goes to rewrite_layout."""
    if not isinstance(values, list) or len(values) <= 7:
        return values
    if isinstance(values[7], str):
        return rewrite_layout(values, 7)
    if len(values) >= 14:
        return values[7:14]
    return values


class WasMaskRectArea(Node):
    """A 512 x 512 mask, 1 over a rectangle given in percent of the side, as WAS's Mask Rect Area
    draws it: from int(x / 100 x 512) to int((x / 100 + width / 100) x 512) (the same for y and
    height; past 100 % it stops at the edge), then blurred by OpenCV's Gaussian of size
    2 x blur_radius + 1 when blur_radius > 0. Always 512 x 512, whatever it is used with. The
    pack's editor adds a second x, y, w, h and blur_radius (its preview's); a save is read as
    the pack runs it: x, y and blur_radius from those, width and height from the first ones (an
    API prompt's w and h are ignored, as the pack ignores them). Written back, the node has the
    eleven values that editor saves: the five, the script's five holding the same values, and the
    preview's null, so ComfyUI runs what ran here. A save of the suite's later rewrite (x, y,
    width, height, blur_radius, drawn_mask, drawn_combine) is read without its painted mask when
    it has none or drawn_combine is "off" (with a note), and refused when a painted mask joins the
    rectangle (graphflow paints none); a save written here is in the earlier layout."""
    category = "WAS Suite/Image/Masking"
    x: int = Int(0, min=0, max=100)
    y: int = Int(0, min=0, max=100)
    width: int = Int(50, min=0, max=100)
    height: int = Int(50, min=0, max=100)
    blur_radius: int = Int(0, min=0, max=255)
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Rect Area",), ignore=("w", "h"), widgets=rect_area_widgets,
                       export_widgets=rect_area_export, api_inputs=rewrite_api_inputs)

    @classmethod
    def unknown_input(cls, name):
        return DRAWN_REFUSAL if name in DRAWN_INPUTS else None

    @classmethod
    def estimate(cls, widgets, inputs):
        return Estimate(Size(1, RECT_RESOLUTION, RECT_RESOLUTION))

    def run(self):
        # the pack's float steps, in its order, so its rounding is ours
        left, top = self.x / 100, self.y / 100
        right, bottom = left + self.width / 100, top + self.height / 100
        side = RECT_RESOLUTION
        return blurred_rectangle(side, side, int(top * side), int(bottom * side), int(left * side),
                                 int(right * side), self.blur_radius)


class WasMaskRectAreaAdvanced(Node):
    """An image_width x image_height mask, 1 over the rectangle x..x + width, y..y + height in
    pixels (cut at the edges), as WAS's Mask Rect Area (Advanced) draws it, then blurred by
    OpenCV's Gaussian of size 2 x blur_radius + 1 when blur_radius > 0. The pack's editor adds
    all seven widgets again (its preview's); a save is read from those, as the pack runs it, and
    written back as that editor saves it: fifteen values, the seven twice and the preview's null.
    A save of the suite's later rewrite (the seven, drawn_mask, drawn_combine) is read without its
    painted mask when it has none or drawn_combine is "off" (with a note), and refused when a
    painted mask joins the rectangle (graphflow paints none); a save written here is in the
    earlier layout."""
    category = "WAS Suite/Image/Masking"
    x: int = Int(0, min=0, max=4096, step=64)
    y: int = Int(0, min=0, max=4096, step=64)
    width: int = Int(256, min=0, max=4096, step=64)
    height: int = Int(256, min=0, max=4096, step=64)
    image_width: int = Int(512, min=64, max=4096, step=64, resource="width")
    image_height: int = Int(512, min=64, max=4096, step=64, resource="height")
    blur_radius: int = Int(0, min=0, max=255)
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Rect Area (Advanced)",), widgets=rect_area_advanced_widgets,
                       export_widgets=rect_area_export, api_inputs=rewrite_api_inputs)

    @classmethod
    def unknown_input(cls, name):
        return DRAWN_REFUSAL if name in DRAWN_INPUTS else None

    def run(self):
        return blurred_rectangle(self.image_height, self.image_width, self.y, self.y + self.height, self.x,
                                 self.x + self.width, self.blur_radius)


class WasMasksCombineBatch(Node):
    """One mask from a batch: the masks summed and clamped to 0..1, as WAS's Masks Combine Batch
    does (their union for 0/1 masks)."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("Masks Combine Batch",))

    def run(self):
        import torch

        masks = self.masks
        if not isinstance(masks, torch.Tensor) or masks.dim() not in (2, 3):
            raise NodeInputError("masks", "expected a mask batch [B, H, W] or one mask [H, W]")
        masks = masks if masks.dim() == 3 else masks[None]
        return torch.clamp(masks.sum(dim=0, keepdim=True), 0, 1)


# -- latents -----------------------------------------------------------------------------------------

def _latent_samples(latent, input_name: str):
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not hasattr(samples, "dim"):
        raise NodeInputError(input_name, "expected a latent (a dict with its samples tensor)")
    return samples


def blend_latents(first, second, operation: str, blend: float):
    """WAS's blend_latents: first weighted by blend, second by 1 - blend, combined by operation
    (the image-like ones on first and second as they are, weighted by blend alone), then the
    whole result stretched to 0..1 by its minimum and maximum."""
    import torch

    keep, rest = blend, 1 - blend
    if operation == "add":
        mixed = first * keep + second * rest
    elif operation == "multiply":
        mixed = (first * keep) * (second * rest)
    elif operation == "divide":
        mixed = (first * keep) / (second * rest)
    elif operation == "subtract":
        mixed = first * keep - second * rest
    elif operation == "overlay":
        mixed = (first * keep) * (2 * first * second) + (second * keep) * (1 - 2 * (1 - first) * (1 - second))
    elif operation == "screen":
        mixed = 1 - (1 - first) * (1 - second) * (1 - keep)
    elif operation == "difference":
        mixed = torch.abs(first - second) * keep
    elif operation == "exclusion":
        mixed = (first + second - 2 * first * second) * keep
    elif operation == "hard_light":
        mixed = torch.where(second < 0.5, 2 * first * second, 1 - 2 * (1 - first) * (1 - second)) * keep
    elif operation == "linear_dodge":
        mixed = torch.clamp(first + second, 0, 1) * keep
    elif operation == "soft_light":
        low = 2 * first * second + first ** 2 - 2 * first * second * first
        high = 2 * first * (1 - second) + torch.sqrt(first) * (2 * second - 1)
        mixed = (first * keep) * low + (second * keep) * high
    else:  # "random": each latent weighted by unseeded noise stretched to 0..1, as in the pack
        def stretched_noise(like):
            noise = torch.randn_like(like)
            return (noise - noise.min()) / (noise.max() - noise.min())
        mixed = torch.clamp((first * keep) * stretched_noise(first) + (second * keep) * stretched_noise(second), 0, 1)
    return (mixed - mixed.min()) / (mixed.max() - mixed.min())


LATENT_BLENDS = ("add", "multiply", "divide", "subtract", "overlay", "hard_light", "soft_light", "screen",
                 "linear_dodge", "difference", "exclusion", "random")


class WasBlendLatents(Node):
    """latent_a and latent_b blended as WAS's Blend Latents does: "add", "multiply", "divide" and
    "subtract" weigh latent_a by blend and latent_b by 1 - blend; the others ("overlay",
    "hard_light", "soft_light", "screen", "linear_dodge", "difference", "exclusion") apply the
    image formula to the latents and weigh by blend; "random" weighs each by unseeded noise.
    As in the pack the whole result is then stretched to 0..1 (its minimum to 0, maximum to 1),
    and only the samples are given on (no noise mask or batch index). Where the pack's formula
    gives no number (soft_light takes the square root of negative latents, divide at blend 1.0
    divides by zero) the pack gives NaN latents; here that is refused, naming operation."""
    category = "WAS Suite/Latent"
    latent_a: LATENT
    latent_b: LATENT
    operation: str = Choice(LATENT_BLENDS, "add")
    blend: float = Float(0.5, min=0.01, max=1.0, step=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("Blend Latents",))

    def run(self):
        import torch

        first, second = _latent_samples(self.latent_a, "latent_a"), _latent_samples(self.latent_b, "latent_b")
        if first.shape != second.shape:
            raise NodeInputError("latent_b", f"latents of shape {tuple(second.shape)}: expected latent_a's "
                                             f"{tuple(first.shape)}")
        blended = blend_latents(first, second, self.operation, self.blend)
        if not torch.isfinite(blended).all():
            raise NodeInputError("operation", f"{self.operation} at blend {self.blend} gives no number for some "
                                              "latents (a square root of a negative, a division by zero, or all "
                                              "values equal): the pack would give NaN latents")
        return {"samples": blended}


class WasLatentNoiseInjection(Node):
    """The latents plus Gaussian noise of standard deviation noise_std, as WAS's Latent Noise
    Injection adds it: the noise is unseeded (torch's global generator), as in the pack, so a
    new run of the graph after its inputs change gives other noise."""
    category = "WAS Suite/Latent/Generate"
    samples: LATENT
    noise_std: float = Float(0.1, min=0.0, max=1.0, step=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("Latent Noise Injection",))

    def run(self):
        import torch

        latents = _latent_samples(self.samples, "samples")
        return {**self.samples, "samples": latents + torch.randn_like(latents) * self.noise_std}


# -- more filters and masks --------------------------------------------------------------------------

def crop_region_of(level, pick: str, padding: int):
    """The suite's crop_dominant_region / crop_minority_region on one 8-bit mask: the largest
    (or smallest) 4-connected region above 128 picks a box; the mask's levels in that box are
    pasted, through themselves as the paste mask (so v becomes about v x v / 255), centred in a
    black square of the box's longer side plus 2 x padding. Gives the square's levels."""
    import numpy as np
    import scipy.ndimage
    from PIL import Image

    labels, count = scipy.ndimage.label(level > 128)
    if count == 0:
        raise NodeInputError("masks", "no region above 128 (of 255) in the mask: nothing to crop to, where the "
                                      "pack fails")
    sizes = np.bincount(labels.ravel())[1:]
    chosen = int(np.argmax(sizes) if pick == "dominant" else np.argmin(sizes)) + 1
    rows, columns = np.nonzero(labels == chosen)
    picture = Image.fromarray(level, "L")
    cut = picture.crop((int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1))
    side = max(cut.size) + 2 * padding
    square = Image.new("L", (side, side), color="black")
    square.paste(cut, ((side - cut.width) // 2, (side - cut.height) // 2), mask=cut)
    return np.array(square)


class WasMaskCropDominantRegion(Node):
    """The mask cut to its largest region (4-connected, levels above 128 of 255), as WAS's Mask
    Crop Dominant Region cuts it: the levels in that region's box (other regions inside it
    included), pasted through themselves (so a level v comes out near v x v / 255) in the middle
    of a black square of the box's longer side plus 2 x padding. One mask in, as in the pack; an
    empty mask is refused (the pack fails)."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    padding: int = Int(24, min=0, max=4096)
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Crop Dominant Region",))
    pick = "dominant"

    @classmethod
    def estimate(cls, widgets, inputs):
        size, padding = inputs.get("masks"), widgets.get("padding")
        if size is None or not isinstance(padding, int):
            return Estimate(size)
        side = max(size.height, size.width) + 2 * padding  # at most: the box is inside the mask
        return Estimate(Size(1, side, side))

    def run(self):
        levels = _mask_levels(self.masks)
        if levels.shape[0] != 1:
            raise NodeInputError("masks", f"a batch of {levels.shape[0]} masks: expected one mask, as the pack "
                                          "crops one")
        return _masks(crop_region_of(levels[0], self.pick, self.padding)[None])


class WasMaskCropMinorityRegion(WasMaskCropDominantRegion):
    """The mask cut to its smallest region (4-connected, levels above 128 of 255), as WAS's Mask
    Crop Minority Region cuts it: the levels in that region's box, pasted through themselves (a
    level v comes out near v x v / 255) in the middle of a black square of the box's longer side
    plus 2 x padding. One mask in, as in the pack; an empty mask is refused (the pack fails)."""
    comfy = ComfyAlias(("Mask Crop Minority Region",))
    pick = "minority"


class WasImageMedianFilter(Node):
    """Each image through OpenCV's bilateral filter, as WAS's Image Median Filter does (despite
    its name): diameter, sigma_color and sigma_space cut to whole numbers (a diameter of 0 or
    less lets OpenCV take it from sigma_space)."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    diameter: int = Int(2, min=0, max=255)
    sigma_color: float = Float(10.0, min=-255.0, max=255.0, step=0.1)
    sigma_space: float = Float(10.0, min=-255.0, max=255.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Median Filter",))

    def run(self):
        import cv2
        import numpy as np
        from PIL import Image

        filtered = []
        for picture in _pictures(self.image, "image"):
            bgr = cv2.cvtColor(np.array(picture), cv2.COLOR_RGB2BGR)
            bgr = cv2.bilateralFilter(bgr, int(self.diameter), int(self.sigma_color), int(self.sigma_space))
            filtered.append(Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "RGB"))
        return _batch(filtered)


def edge_ramp(length: int, white: int) -> list[int]:
    """The suite's lingrad along one side: 0 up to length - white, then rising to just under 255
    at the far end (int((i - start) / (length - start) x 255))."""
    start = length - white
    return [0 if i <= start else int(((i - start) / (length - start)) * 255) for i in range(length)]


def fade_mask(size: tuple[int, int], fade_radius: int):
    """Chromatic Aberration's fade mask: white, multiplied (Pillow's multiply) by each side's
    inverted ramp of 2 x fade_radius pixels (left, right, top, bottom), then by itself."""
    import numpy as np
    from PIL import Image, ImageChops, ImageOps

    width, height = size
    across = np.array(edge_ramp(width, int(fade_radius * 2)), dtype=np.uint8)
    down = np.array(edge_ramp(height, int(fade_radius * 2)), dtype=np.uint8)
    left = ImageOps.invert(Image.fromarray(np.ascontiguousarray(np.broadcast_to(across, (height, width))), "L"))
    top = ImageOps.invert(Image.fromarray(np.ascontiguousarray(np.broadcast_to(down[:, None], (height, width))), "L"))
    mask = Image.new("L", size, 255)
    for side in (left, left.transpose(Image.FLIP_LEFT_RIGHT), top, top.transpose(Image.FLIP_TOP_BOTTOM)):
        mask = ImageChops.multiply(mask, side)
    return ImageChops.multiply(mask, mask)


class WasImageChromaticAberration(Node):
    """Colour fringes, as WAS's Image Chromatic Aberration makes them: the red channel moved
    red_offset pixels across, green green_offset and blue blue_offset down (wrapping round, as
    Pillow's offset does), laid over the image through a mask that fades them out over
    2 x fade_radius pixels from each edge towards the middle. intensity is accepted but, as in
    the pack, not used. Each image of a batch is worked on its own (the pack fails on more)."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    red_offset: int = Int(2, min=-255, max=255)
    green_offset: int = Int(-1, min=-255, max=255)
    blue_offset: int = Int(1, min=-255, max=255)
    intensity: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    fade_radius: int = Int(12, min=0, max=1024)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Chromatic Aberration",))

    def run(self):
        from PIL import Image, ImageChops

        shifted = []
        for picture in _pictures(self.image, "image"):
            red, green, blue = picture.split()
            moved = Image.merge("RGB", (ImageChops.offset(red, self.red_offset, 0),
                                        ImageChops.offset(green, 0, self.green_offset),
                                        ImageChops.offset(blue, 0, self.blue_offset)))
            shifted.append(Image.composite(moved, picture, fade_mask(picture.size, self.fade_radius)))
        return _batch(shifted)


class WasLogicBooleanPrimitive(Node):
    """The boolean as it is set (WAS's Logic Boolean Primitive)."""
    category = "WAS Suite/Logic"
    boolean: bool = Bool(False)
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("Logic Boolean Primitive",))

    def run(self):
        return self.boolean


class WasImagesToLinear(Node):
    """Each image in grey (Pillow's "L": 0.299 R + 0.587 G + 0.114 B, rounded to 8 bits), as WAS's
    Images to Linear converts them (the name says linear; it is this grey). The pack gives a
    one-channel [B, H, W] tensor on its IMAGE socket, which image nodes cannot read; here the grey
    fills all three channels."""
    category = "WAS Suite/Image"
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Images to Linear",))

    def run(self):
        return _batch([p.convert("L").convert("RGB") for p in _pictures(self.images, "images")])


def tile_grid(width: int, height: int, num_tiles: int) -> tuple[int, int, int, int]:
    """Image Tiled's tiles: (tile width, tile height, columns, rows). int(sqrt(num_tiles)) rows
    and enough columns for num_tiles make the tile size; the picture is then cut from its top left
    in steps of that size to its edges, so a remainder makes another (black-padded) row or column."""
    rows = int(num_tiles ** 0.5)
    columns = (num_tiles + rows - 1) // rows
    tile_width, tile_height = width // columns, height // rows
    if tile_width == 0 or tile_height == 0:
        raise NodeInputError("num_tiles", f"{columns} x {rows} tiles of a {width}x{height} image would be "
                                          "empty: expected an image at least as large as the grid")
    return tile_width, tile_height, -(-width // tile_width), -(-height // tile_height)


class WasImageTiled(Node):
    """The image cut into tiles, as WAS's Image Tiled cuts it: int(sqrt(num_tiles)) rows and
    enough columns for num_tiles set the tile size (the image's size divided, cut to whole
    pixels); tiles are then taken from the top left, row by row, to the image's edges, so an
    image that does not divide evenly gives another row or column of tiles padded with black (as
    Pillow's crop past the edge does). Each image of a batch is tiled in turn (the pack takes
    one)."""
    category = "WAS Suite/Image/Process"
    image: IMAGE
    num_tiles: int = Int(4, min=2, max=64)
    outputs = {"IMAGES": IMAGE}
    comfy = ComfyAlias(("Image Tiled",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, count = inputs.get("image"), widgets.get("num_tiles")
        if size is None or not isinstance(count, int):
            return Estimate(size)
        try:
            tile_width, tile_height, columns, rows = tile_grid(size.width, size.height, count)
        except NodeInputError:
            return Estimate(size)
        return Estimate(Size(size.batch * columns * rows, tile_height, tile_width))

    def run(self):
        tiles = []
        for picture in _pictures(self.image, "image"):
            tile_width, tile_height, columns, rows = tile_grid(picture.width, picture.height, self.num_tiles)
            for top in range(0, rows * tile_height, tile_height):
                for left in range(0, columns * tile_width, tile_width):
                    tiles.append(picture.crop((left, top, left + tile_width, top + tile_height)))
        return _batch(tiles)


# Number Counter's counts, by node id, for as long as graphflow runs (the pack keeps them on its node
# object, which ComfyUI keeps by node id while the server runs)
NUMBER_COUNTERS: dict[str, float] = {}


class WasNumberCounter(Node):
    """A count that moves on each run, as WAS's Number Counter keeps it (per node, while graphflow
    runs; the node runs every time): "increment" adds step, "increment_to_stop" adds it while the
    count is below stop, "decrement_to_stop" takes it away while above stop. The first run
    already counts from start (start + step). reset_bool rounding to 1 or more starts again from
    start. As in the pack, "decrement" changes nothing (the pack tests for a misspelt
    "deccrement"). Gives the count as number (int or float by number_type), float and int."""
    category = "WAS Suite/Number"
    number_type: str = Choice(("integer", "float"), "integer")
    mode: str = Choice(("increment", "decrement", "increment_to_stop", "decrement_to_stop"), "increment")
    start: float = Float(0, min=-NUMBER_LIMIT, max=NUMBER_LIMIT, step=0.01)
    stop: float = Float(0, min=-NUMBER_LIMIT, max=NUMBER_LIMIT, step=0.01)
    step: float = Float(1, min=0, max=99999, step=0.01)
    reset_bool: NUMBER = None
    outputs = {"number": NUMBER, "float": FLOAT, "int": INT}
    comfy = ComfyAlias(("Number Counter",), optional=("reset_bool",))

    @classmethod
    def fingerprint(cls, **widgets):
        import random

        return random.random()  # the pack's IS_CHANGED is NaN: it runs every time

    def run(self):
        key = current_node_id() or "node"
        count = NUMBER_COUNTERS.get(key, self.start)
        if self.reset_bool is not None and not math.isfinite(self.reset_bool):
            raise NodeInputError("reset_bool", f"{self.reset_bool}: expected a finite number (1 or more resets)")
        if self.reset_bool is not None and round(self.reset_bool) >= 1:
            count = self.start
        if self.mode == "increment":
            count += self.step
        elif self.mode == "increment_to_stop" and count < self.stop:
            count += self.step
        elif self.mode == "decrement_to_stop" and count > self.stop:
            count -= self.step
        remember(NUMBER_COUNTERS, key, count, "mode")
        return (int(count) if self.number_type == "integer" else float(count)), float(count), int(count)


# -- batches ----------------------------------------------------------------------------------------

def joined_size(inputs: dict, names: tuple[str, ...]) -> Estimate:
    """The batch the linked inputs make together: their batches added, the first one's size."""
    sizes = [inputs[name] for name in names if inputs.get(name) is not None]
    if not sizes:
        return Estimate(None)
    return Estimate(Size(sum(size.batch for size in sizes), sizes[0].height, sizes[0].width))


def _linked(node, names: tuple[str, ...]) -> list[tuple[str, object]]:
    linked = [(name, getattr(node, name)) for name in names if getattr(node, name) is not None]
    if not linked:
        raise NodeInputError(names[0], f"link at least one of {', '.join(names)}")
    return linked


class WasImageBatch(Node):
    """The linked images_a ... images_d in one batch, in that order, as WAS's Image Batch joins
    them; they must be one size (and channel count)."""
    category = "WAS Suite/Image"
    images_a: IMAGE = None
    images_b: IMAGE = None
    images_c: IMAGE = None
    images_d: IMAGE = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Image Batch",), optional=("images_a", "images_b", "images_c", "images_d"))

    @classmethod
    def estimate(cls, widgets, inputs):
        return joined_size(inputs, ("images_a", "images_b", "images_c", "images_d"))

    def run(self):
        import torch

        linked = _linked(self, ("images_a", "images_b", "images_c", "images_d"))
        first_name, first = linked[0]
        for name, images in linked:
            if getattr(images, "dim", lambda: 0)() != 4:
                raise NodeInputError(name, "expected an image batch [B, H, W, C]")
            if images.shape[1:] != first.shape[1:]:
                raise NodeInputError(name, f"images of {tuple(images.shape[1:])} (height, width, channels): "
                                           f"expected {first_name}'s {tuple(first.shape[1:])}")
        return torch.cat([images for _, images in linked], dim=0)


class WasMaskBatch(Node):
    """The linked masks_a ... masks_d in one batch [B, H, W], in that order (WAS's Mask Batch);
    they must be one size. The pack stacks them into a [N, 1, B, H, W] tensor that other mask
    nodes cannot read; here they are joined along the batch, as a mask batch is."""
    category = "WAS Suite/Image/Masking"
    masks_a: MASK = None
    masks_b: MASK = None
    masks_c: MASK = None
    masks_d: MASK = None
    outputs = {"masks": MASK}
    comfy = ComfyAlias(("Mask Batch",), optional=("masks_a", "masks_b", "masks_c", "masks_d"))

    @classmethod
    def estimate(cls, widgets, inputs):
        return joined_size(inputs, ("masks_a", "masks_b", "masks_c", "masks_d"))

    def run(self):
        import torch

        linked = _linked(self, ("masks_a", "masks_b", "masks_c", "masks_d"))
        batches = []
        for name, masks in linked:
            if getattr(masks, "dim", lambda: 0)() not in (2, 3):
                raise NodeInputError(name, "expected a mask batch [B, H, W] or one mask [H, W]")
            batches.append((name, masks if masks.dim() == 3 else masks[None]))
        first_name, first = batches[0]
        for name, masks in batches:
            if masks.shape[1:] != first.shape[1:]:
                raise NodeInputError(name, f"masks of {tuple(masks.shape[1:])}: expected {first_name}'s "
                                           f"{tuple(first.shape[1:])}")
        return torch.cat([masks for _, masks in batches], dim=0)


class WasLatentBatch(Node):
    """The linked latent_a ... latent_d in one batch, in that order, as WAS's Latent Batch joins
    them, with their batch_index lists joined too (each latent's own, or 0, 1, ... when it has
    none); they must be one size."""
    category = "WAS Suite/Latent"
    latent_a: LATENT = None
    latent_b: LATENT = None
    latent_c: LATENT = None
    latent_d: LATENT = None
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("Latent Batch",), optional=("latent_a", "latent_b", "latent_c", "latent_d"))

    @classmethod
    def estimate(cls, widgets, inputs):
        return joined_size(inputs, ("latent_a", "latent_b", "latent_c", "latent_d"))

    def run(self):
        import torch

        linked = [(name, latent, _latent_samples(latent, name))
                  for name, latent in _linked(self, ("latent_a", "latent_b", "latent_c", "latent_d"))]
        first_name, _, first = linked[0]
        for name, _, samples in linked:
            if samples.shape[1:] != first.shape[1:]:
                raise NodeInputError(name, f"latents of {tuple(samples.shape[1:])}: expected {first_name}'s "
                                           f"{tuple(first.shape[1:])}")
        batch_index = []
        for _, latent, samples in linked:
            batch_index += list(latent.get("batch_index", range(samples.shape[0])))
        return {"samples": torch.cat([samples for _, _, samples in linked], dim=0), "batch_index": batch_index}


# -- colour selections ---------------------------------------------------------------------------------

def rotate_hue(picture, hue_shift: float):
    """WAS's hue_rotation of one picture: each pixel's hue (colorsys's HLS) moved by hue_shift
    (a turn is 1.0), its channels cut to 8 bits. colorsys itself is called, once per distinct
    colour."""
    import colorsys

    import numpy as np

    levels = np.array(picture)
    codes = (levels[..., 0].astype(np.int64) << 16) | (levels[..., 1].astype(np.int64) << 8) | levels[..., 2]
    distinct, where = np.unique(codes.ravel(), return_inverse=True)
    rotated = np.empty((len(distinct), 3), dtype=np.uint8)
    for i, code in enumerate(distinct.tolist()):
        if i % 65536 == 0:  # a noisy picture has millions of colours: let a stop request in
            check_interrupted()
        h, l, s = colorsys.rgb_to_hls((code >> 16) / 255, ((code >> 8) & 255) / 255, (code & 255) / 255)
        rotated[i] = [int(c * 255) for c in colorsys.hls_to_rgb((h + hue_shift) % 1.0, l, s)]
    return rotated[where].reshape(levels.shape)


class WasImageRotateHue(Node):
    """Each pixel's hue turned by hue_shift (0 to 1, a full turn), keeping its lightness and
    saturation (HLS, as WAS's Image Rotate Hue does with Python's colorsys), channels cut to 8
    bits. Each image of a batch is turned (the pack fails on a batch of more than one)."""
    category = "WAS Suite/Image/Adjustment"
    image: IMAGE
    hue_shift: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Rotate Hue",))

    def run(self):
        from PIL import Image

        return _batch([Image.fromarray(rotate_hue(p, self.hue_shift), "RGB") for p in _pictures(self.image, "image")])


class WasImageSelectColor(Node):
    """The pixels whose red, green and blue are each within variance of the colour given kept,
    all others black, as WAS's Image Select Color picks them. Each image of a batch is picked
    from (the pack fails on a batch of more than one)."""
    category = "WAS Suite/Image/Process"
    image: IMAGE
    red: int = Int(255, min=0, max=255)
    green: int = Int(255, min=0, max=255)
    blue: int = Int(255, min=0, max=255)
    variance: int = Int(10, min=0, max=255)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Select Color",))

    def run(self):
        import numpy as np
        from PIL import Image

        target = np.array([self.red, self.green, self.blue], dtype=np.int64)
        picked = []
        for picture in _pictures(self.image, "image"):
            levels = np.array(picture).astype(np.int64)
            inside = (np.abs(levels - target) <= self.variance).all(axis=-1)
            picked.append(Image.fromarray(np.where(inside[..., None], levels, 0).astype(np.uint8), "RGB"))
        return _batch(picked)


# -- colour palette ----------------------------------------------------------------------------------

PALETTE_CELL = 128  # the pack's cell side, text padding and font size for its chart
PALETTE_PADDING = 10
PALETTE_FONT_SIZE = 15
# KMeans' work grows with pixels x colours and can't be interrupted once started (a 2048 x 2048
# image at 256 colours ran 147 s); a picture whose halved pixels x colours is over this is refused
PALETTE_WORK_BUDGET = 2 ** 24  # 16,777,216: 2048 x 2048 at the default 16 colours, 1024 x 1024 at 64
PALETTE_MIN_COLORS = 8


def palette_grid(colors: int, mode: str) -> tuple[int, int]:
    """(rows, columns) of the palette picture: one row for back_to_back, else int(sqrt(colors))
    rows and as many columns as the colours need."""
    import math

    if mode == "back_to_back":
        return 1, colors
    rows = math.isqrt(colors)
    return rows, -(-colors // rows)


def palette_colours(picture, colors: int):
    """The pack's palette: KMeans (random_state=0, n_init "auto") of the picture halved with
    Pillow's bilinear, its centres cut to 8 bits, grouped by their largest channel (red, green,
    blue) and each group sorted by sqrt(0.299 R + 0.587 G + 0.114 B)."""
    import numpy as np
    from PIL import Image
    from sklearn.cluster import KMeans

    if picture.width < 2 or picture.height < 2:
        raise NodeInputError("image", f"{picture.width} x {picture.height}: halved it has no pixels; "
                                      "expected at least 2 x 2")
    halved = (picture.width // 2) * (picture.height // 2)
    if halved * colors > PALETTE_WORK_BUDGET:
        fits = PALETTE_WORK_BUDGET // halved
        if fits >= PALETTE_MIN_COLORS:
            raise NodeInputError("colors", f"{colors} colours of a {picture.width} x {picture.height} image is "
                                           f"over the palette's work budget: at most {fits} for this size")
        raise NodeInputError("image", f"{picture.width} x {picture.height} is over the palette's work budget "
                                      f"even at {PALETTE_MIN_COLORS} colours: expected at most "
                                      f"{PALETTE_WORK_BUDGET // PALETTE_MIN_COLORS * 4:,} pixels")
    half = picture.resize((picture.width // 2, picture.height // 2), resample=Image.BILINEAR)
    pixels = np.array(half).reshape((-1, 3))
    if len(pixels) < colors:
        raise NodeInputError("colors", f"{colors} colours from a picture of {len(pixels)} pixels (halved): "
                                       "expected at most one colour per pixel")
    centres = np.uint8(KMeans(n_clusters=colors, random_state=0, n_init="auto").fit(pixels).cluster_centers_)
    luminance = np.sqrt(np.dot(centres, [0.299, 0.587, 0.114]))
    order = np.argsort(luminance)
    groups = ([], [], [])
    for centre, lum in zip(centres[order], luminance[order]):
        groups[int(np.argmax(centre))].append((centre, lum))
    return [tuple(int(c) for c in centre) for group in groups
            for centre, _ in sorted(group, key=lambda item: item[1])]


def palette_picture(colours, mode: str):
    """The palette drawn as the pack draws it: 128-pixel cells, column by column (rows first),
    each chart cell labelled "R: r G: g B: b" with Pillow's default font centred 10 pixels below
    the cell (under the next cell, which covers it, or past the picture)."""
    from PIL import Image, ImageDraw, ImageFont

    rows, columns = palette_grid(len(colours), mode)
    picture = Image.new("RGB", (columns * PALETTE_CELL, rows * PALETTE_CELL), color="white")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    for i, colour in enumerate(colours):
        left, top = ((i * PALETTE_CELL, 0) if mode == "back_to_back"
                     else (i // rows * PALETTE_CELL, i % rows * PALETTE_CELL))
        picture.paste(Image.new("RGB", (PALETTE_CELL, PALETTE_CELL), color=colour), (left, top))
        if mode != "back_to_back":
            label = f"R: {colour[0]} G: {colour[1]} B: {colour[2]}"
            x, y = left + PALETTE_CELL / 2, top + PALETTE_CELL + PALETTE_PADDING
            draw.text((x + 1, y + 1), label, font=font, fill="black", anchor="ms")
            draw.text((x, y), label, font=font, fill="white", anchor="ms")
    return picture


class WasImageColorPalette(Node):
    """The image's main colours, as WAS's Image Color Palette finds them: scikit-learn's KMeans
    (seeded, random_state=0, as the pack) on the image halved, centres cut to 8 bits, grouped
    reddest / greenest / bluest and each group sorted by luminance. Gives a picture of 128-pixel
    cells ("Chart": int(sqrt(colors)) rows, filled column by column; "back_to_back": one row) and,
    per image, the colours as "#rrggbb" lines in a list. The pack labels chart cells with its
    own font.ttf when the suite has one; here with Pillow's default font (as the pack without
    it), and either way the label lands under the next cell or past the picture. Unlike the pack,
    a bound on KMeans' time, which can't be stopped once it starts: an image whose halved pixels
    times colors is over 16,777,216 (2^24: a 2048 x 2048 image at the default 16 colours,
    1024 x 1024 at 64) is refused, naming colors where fewer would do, else image; a stop is
    heard between images. An image under 2 x 2 (nothing left once halved) is refused."""
    category = "WAS Suite/Image/Analyze"
    image: IMAGE
    colors: int = Int(16, min=PALETTE_MIN_COLORS, max=256)
    mode: str = Choice(("Chart", "back_to_back"), "Chart")
    outputs = {"image": IMAGE, "color_palettes": LIST}
    comfy = ComfyAlias(("Image Color Palette",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        try:
            rows, columns = palette_grid(int(widgets["colors"]), widgets["mode"].lower())
        except (KeyError, TypeError, ValueError, AttributeError):
            return Estimate(None)
        # KMeans works on the halved picture's pixels in float64, three channels
        working = 0 if size is None else size.pixels // 4 * 3 * 8 * 4
        return Estimate(Size(1 if size is None else size.batch, rows * PALETTE_CELL, columns * PALETTE_CELL),
                        memory=working)

    def run(self):
        mode = self.mode.lower()
        pictures, palettes = [], []
        for picture in _pictures(self.image, "image"):
            check_interrupted()
            colours = palette_colours(picture, self.colors)
            pictures.append(palette_picture(colours, mode))
            palettes.append("\n".join("#%02x%02x%02x" % colour for colour in colours))
        return _batch(pictures), palettes


# -- text --------------------------------------------------------------------------------------------

def protected_split(text: str, separator: str) -> list[str]:
    """Text Sort's split: text cut at separator, except where separator (a single character)
    stands inside parentheses; each part stripped. A separator of several characters is never
    protected, as in the pack (it compares one character at a time)."""
    hidden = "\0"  # stands for a protected separator while the text is cut
    kept, depth = [], 0
    for char in text:
        depth += (char == "(") - (char == ")")
        kept.append(hidden if char == separator and depth > 0 else char)
    return [part.replace(hidden, separator).strip() for part in "".join(kept).split(separator)]


def sort_key(token: str) -> str:
    """A token as Text Sort compares it: its "(" dropped (an escaped "\\(" kept as "("), stripped."""
    return token.replace("\\(", "\0\1").replace("(", "").replace("\0\1", "(").strip()


class WasTextSort(Node):
    """The text's parts in sorted order, as WAS's Text Sort gives them: the text (stripped of the
    separator's characters and whitespace at its ends) is cut at the separator's stripped form,
    except inside parentheses ("(red, blue:1.2)" stays one part), each part stripped; they are
    sorted by their text without "(" (so weighted "(tag:1.2)" sorts as "tag:1.2)"), then joined
    by the separator."""
    category = "WAS Suite/Text/Operations"
    text: STRING
    separator: str = Text(", ")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Sort",), force_input=("text",))

    def run(self):
        cut = self.separator.strip()
        if cut == "":
            raise NodeInputError("separator", f"{self.separator!r} is only whitespace: expected a separator with "
                                              "a visible character to cut the text at")
        parts = protected_split(self.text.strip(self.separator + " \t\n\r"), cut)
        return self.separator.join(sorted(parts, key=sort_key))


class WasTextFind(Node):
    """Whether the text holds substring, or, when substring is empty, whether the regular
    expression pattern (Python syntax) matches anywhere in it, as WAS's Text Find answers (an
    empty pattern matches)."""
    category = "WAS Suite/Text/Search"
    text: STRING
    substring: str = Text("")
    pattern: str = Text("")
    outputs = {"found": BOOLEAN}
    comfy = ComfyAlias(("Text Find",), force_input=("text",))

    def run(self):
        import re

        from nodes.strings import _guarded

        if self.substring:
            return self.substring in self.text
        try:
            pattern = re.compile(self.pattern)
        except (re.error, ValueError, OverflowError, RecursionError) as e:
            raise NodeInputError("pattern", f"not a regular expression: {self.pattern!r} ({e})") from None
        return bool(_guarded(pattern, self.text, every_match=False, input_name="pattern").search(self.text))


class WasTextMultilineCodeCompatible(Node):
    """Multi-line text with the pack's tokens ([time], [hostname], [user], [time(FORMAT)] and Text
    Add Tokens' own) filled in, as WAS's Text Multiline (Code Compatible) gives it: unlike Text
    Multiline, lines starting with "#" are kept (code comments)."""
    category = "WAS Suite/Text"
    text: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Multiline (Code Compatible)",))

    def run(self):
        return parse_tokens(self.text)


def _texts(value, input_name: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise NodeInputError(input_name, f"expected a list of texts, got {type(value).__name__}")
    return list(value)


class WasTextListToText(Node):
    """The list's texts joined by delimiter, as WAS's Text List to Text joins them (a delimiter
    written \\n is a line break)."""
    category = "WAS Suite/Text"
    delimiter: str = Text(", ")
    text_list: LIST
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text List to Text",))

    def run(self):
        from nodes.strings import fits

        texts = _texts(self.text_list, "text_list")
        delimiter = "\n" if self.delimiter == "\\n" else self.delimiter
        fits(sum(map(len, texts)) + len(delimiter) * max(len(texts) - 1, 0), "text_list")
        return delimiter.join(texts)


def _dictionary(value, input_name: str = "dictionary") -> dict:
    if not isinstance(value, dict):
        raise NodeInputError(input_name, f"expected a dictionary, got {type(value).__name__}")
    return value


class WasTextDictionaryGet(Node):
    """The text of key's value in the dictionary (str() of it, as WAS's Text Dictionary Get
    gives: a list of lines shows as a Python list), or default_value when the key is missing."""
    category = "WAS Suite/Text"
    dictionary: DICT
    key: str = Text("")
    default_value: str = Text("")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Dictionary Get",), optional=("default_value",))

    def run(self):
        return str(_dictionary(self.dictionary).get(self.key, self.default_value))


class WasTextDictionaryNew(Node):
    """A dictionary of up to five key: value texts, as WAS's Text Dictionary New makes it (an
    empty key is left out; a repeated key keeps its last value)."""
    category = "WAS Suite/Text"
    key_1: str = Text("")
    value_1: str = Text("")
    key_2: str = Text("")
    value_2: str = Text("")
    key_3: str = Text("")
    value_3: str = Text("")
    key_4: str = Text("")
    value_4: str = Text("")
    key_5: str = Text("")
    value_5: str = Text("")
    outputs = {"DICT": DICT}
    comfy = ComfyAlias(("Text Dictionary New",),
                       optional=("key_2", "value_2", "key_3", "value_3", "key_4", "value_4", "key_5", "value_5"))

    def run(self):
        pairs = [(getattr(self, f"key_{n}"), getattr(self, f"value_{n}")) for n in range(1, 6)]
        return {key: value for key, value in pairs if key}


class WasTextDictionaryKeys(Node):
    """The dictionary's keys, in order, as a list (WAS's Text Dictionary Keys)."""
    category = "WAS Suite/Text"
    dictionary: DICT
    outputs = {"LIST": LIST}
    comfy = ComfyAlias(("Text Dictionary Keys",))

    def run(self):
        return list(_dictionary(self.dictionary))


class WasTextDictionaryToText(Node):
    """The dictionary written as Python writes it (str(), as WAS's Text Dictionary To Text)."""
    category = "WAS Suite/Text"
    dictionary: DICT
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Dictionary To Text",))

    def run(self):
        return str(_dictionary(self.dictionary))


DICTIONARY_TEXT_LIMIT = 1_000_000  # characters Text Dictionary Convert parses (about 0.5 GB at the worst)


class WasTextDictionaryConvert(Node):
    """A dictionary read from its text, as WAS's Text Dictionary Convert reads it with Python's
    ast.literal_eval: literals only ({"a": 1, 'b': [2, 3]}; single or double quotes), nothing
    run. A text that is not such a literal, or a literal that is not a dictionary, is refused, and
    so is a text over 1,000,000 characters (unlike the pack: Python's parser takes some hundreds of
    bytes of memory per character of it, a 5 MB text gigabytes)."""
    category = "WAS Suite/Text"
    dictionary_text: STRING
    outputs = {"DICT": DICT}
    comfy = ComfyAlias(("Text Dictionary Convert",), force_input=("dictionary_text",))

    def run(self):
        import ast

        if isinstance(self.dictionary_text, str) and len(self.dictionary_text) > DICTIONARY_TEXT_LIMIT:
            raise NodeInputError("dictionary_text", f"{len(self.dictionary_text):,} characters: expected at most "
                                                    f"{DICTIONARY_TEXT_LIMIT:,} (Python's parser needs hundreds of "
                                                    "bytes per character)")
        try:
            value = ast.literal_eval(self.dictionary_text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as e:
            raise NodeInputError("dictionary_text", f"not a Python dictionary literal: {e}") from None
        if not isinstance(value, dict):
            raise NodeInputError("dictionary_text", f"expected a dictionary literal, got a {type(value).__name__}")
        return value
