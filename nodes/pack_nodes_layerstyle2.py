"""chflame163/ComfyUI_LayerStyle's model-free nodes, round 2, under the pack's class names, inputs and
outputs: the V2 blend modes and the classes that take them (LayerUtility: ImageBlend V2, ImageBlendAdvance
V2 / V3; LayerStyle: DropShadow V2 / V3, OuterGlow V2, InnerShadow V2, InnerGlow V2, Stroke V2,
ColorOverlay V2, GradientOverlay V2), LayerUtility: SimpleTextImage, XY to Percent, TextJoinV2,
LayerFilter: AddGrain, Film, FilmV2, WaterColor and LayerColor: Negative, ColorAdapter. Each V2 blend class
is its round-1 class (nodes/pack_nodes_layerstyle.py) with the V2 blend modes in place of chop_image's.
Read from the pack's py/blendmodes.py at 0426cb92e30db39eda829fec091e6a64b34d0980, py/imagefunc.py at
cf8c238f8a534b1297a5135a2bdff91a6562b388 (chop_image_v2, image_add_grain, RGB2YCbCr, cv_blur_tensor,
gamma_trans, vignette_image, radialblur_image, depthblur_image, filmgrain_image, color_adapter,
image_watercolor), py/filmgrainer/*.py at
06ab54d70197891fba9ee0ddec82378f850dc6ab, image_blend_v2.py, inner_glow_v2.py, stroke_v2.py and
"color_overlay _v2.py" at 25965f5c0e710750aec73ca92f99ae373dfbb910, inner_shadow_v2.py and
image_blend_advance_v3.py at a267afb24b80ebd0ff9c3ac4833d3c8285b862da, drop_shadow_v2.py at
080522693c4d9a56373132e130cd533fc054f093, drop_shadow_v3.py at ac9e179489b275ad94e727f8b307dde23c7e9b04,
outer_glow_v2.py and gradient_overlay_v2.py at 17ac6c0b4602a2ab74f4fa12fc378541843a7653,
image_blend_advance_v2.py at 4505116302ed358c674acec3d7d71f59223c20ae, simple_text_image.py at
9585ecaaec726d411b346dd6d2bb8af93bf5501b, add_grain.py at 127be44f9d6b384e874a73ba794a7eeb8f2b6a0f,
film_post.py at fe5b659f10be69ac887f9ad224db4d02d4bd1a93, film_post_v2.py at
277ed9805b87b36e5c07e7a10daba8f80443d786, color_negative.py at 42ccdd8f75ab312285eaa77073a5cc20bdba484c,
xy2percent.py at 73dfb6d2d60200bc778cf85e4f77bb9ea5dd6984, text_join.py at
b01c5ef6fbc0236463ef9e5e5483002ee965ef4c, water_color.py at a267afb24b80ebd0ff9c3ac4833d3c8285b862da,
color_adapter.py at 33d9f817de53f80bcd2631f0dcee13066975f829.

The V2 blend modes are the pack's BLEND_MODES: fourteen of them call the blend_modes package (PyPI
blend_modes 2.2.0, as the pack does: RGBA floats 0..255), the others are the pack's own numpy formulas
(dissolve, the burns / dodges / lights, exclusion, subtract, darker / lighter color, hue, saturation,
color, luminosity), transcribed here. Where the pack seeds by the clock (AddGrain, Film's grain, dissolve
unseeded), ours is seeded so a run repeats (each node's help says how).

TextImage (V2) and more are round 3's (nodes/pack_nodes_layerstyle3.py) and round 4's
(nodes/pack_nodes_layerstyle4.py, whose docstring lists what is not yet built); left out for good: LightLeak
(the pack's pictures) and PixelSpread (pymatting, which needs numba)."""

from __future__ import annotations

from functools import lru_cache
from inspect import cleandoc

from graphflow.api import ANY, FLOAT, IMAGE, MASK, STRING, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError, \
    Size, Text, check_interrupted, check_run_memory, warn
from nodes.pack_nodes_layerstyle import LayerStyleColorOverlay, LayerStyleDropShadow, LayerStyleGradientOverlay, \
    LayerStyleInnerGlow, LayerStyleInnerShadow, LayerStyleOuterGlow, LayerStyleStroke, LayerUtilityImageBlend, \
    LayerUtilityImageBlendAdvance, RESAMPLE_METHODS, batch, check_made_size, chop_image, fitting_mask, \
    layer_masks, nth, pil_color, picture_size, shadow_mask, to_pil, to_tensor
from nodes.pack_nodes_essentials_misc import drawn_within_pillows_limit, font_choices, font_file
from nodes.pack_nodes_mtb2 import TEXTWRAP_SPACES

COMFY_PACK = "ComfyUI_LayerStyle"  # the custom node pack this module's ComfyUI classes come from

# blendmodes.BLEND_MODES's names, in its order (chop_mode_v2)
BLEND_MODES_V2 = ("normal", "dissolve", "darken", "multiply", "color burn", "linear burn", "darker color", "lighten",
                  "screen", "color dodge", "linear dodge(add)", "lighter color", "dodge", "overlay", "soft light",
                  "hard light", "vivid light", "linear light", "pin light", "hard mix", "difference", "exclusion",
                  "subtract", "divide", "hue", "saturation", "color", "luminosity", "grain extract", "grain merge")
# the glows list their lightening modes first, the rest in BLEND_MODES's order
_GLOW_FIRST = ("screen", "linear dodge(add)", "color dodge", "lighten", "dodge", "hard light", "linear light")
GLOW_MODES_V2 = (*_GLOW_FIRST, *(mode for mode in BLEND_MODES_V2 if mode not in _GLOW_FIRST))

# the modes the pack takes from the blend_modes package, by that package's function names
LIBRARY_MODES = {"normal": "normal", "darken": "darken_only", "multiply": "multiply", "lighten": "lighten_only",
                 "screen": "screen", "linear dodge(add)": "addition", "dodge": "dodge", "overlay": "overlay",
                 "soft light": "soft_light", "hard light": "hard_light", "difference": "difference",
                 "divide": "divide", "grain extract": "grain_extract", "grain merge": "grain_merge"}

# blend_modes and the formulas below hold up to ~310 bytes a pixel at once (float64 RGBA arrays and their
# temporaries: the HSV modes most), counted here as 12-byte IMAGE pixels
BLEND_COPIES = 26
DISSOLVE_SEED = 0  # the pack's dissolve draws from numpy's unseeded global generator; ours, one seed for every call


def _with_alpha(backdrop, source, rgb, opacity: float):
    """The pack's ending of its own modes: `rgb` (0..1) laid over the backdrop by the source's alpha
    times opacity, clipped, back to 0..255, the alpha the larger of the two."""
    import numpy as np
    amount = source[..., 3:] / 255 * opacity
    mixed = np.clip((1 - amount) * (backdrop[..., :3] / 255) + amount * rgb, 0, 1)
    return np.dstack((mixed * 255, np.maximum(backdrop[..., 3], source[..., 3])))


def _simple(backdrop, source, opacity: float, mode: str):
    """blendmodes.simple_mode: per-channel formulas on 0..1, then _with_alpha. A 0 / 0 gives NaN, which
    spreads through the mix to the whole channel's value and is then 0 (the pack's uint8 cast makes it 0:
    colour burn of a white backdrop under a black layer is black at any opacity, as in the pack); x / 0
    saturates as in the pack. Its
    vivid light divides by 2s - 0.5 above s = 0.5 (not 2s - 1): kept, so pictures match the pack's."""
    import numpy as np
    back, over = backdrop[..., :3] / 255, source[..., :3] / 255
    with np.errstate(divide="ignore", invalid="ignore"):
        if mode == "linear burn":
            rgb = back + over - 1
        elif mode == "linear light":
            rgb = back + 2 * over - 1
        elif mode == "color dodge":
            rgb = np.clip(back / (1 - over), 0, 1)
        elif mode == "color burn":
            rgb = np.clip(1 - (1 - back) / over, 0, 1)
        elif mode == "exclusion":
            rgb = back + over - 2 * back * over
        elif mode == "subtract":
            rgb = back - over
        elif mode == "vivid light":
            rgb = np.clip(np.where(over <= 0.5, back / (1 - 2 * over), 1 - (1 - back) / (2 * over - 0.5)), 0, 1)
        elif mode == "pin light":
            rgb = np.where(over <= 0.5, np.minimum(back, 2 * over), np.maximum(back, 2 * (over - 0.5)))
        else:  # hard mix: the pack rounds its whole linear light result (opacity applied) to 0 or 1
            rgb = np.round(_simple(backdrop, source, opacity, "linear light")[..., :3] / 255)
    return np.nan_to_num(_with_alpha(backdrop, source, rgb, opacity), nan=0.0)


def _dissolve(backdrop, source, opacity: float):
    """blendmodes.dissolve: each pixel the source's where a uniform draw is below its alpha × opacity.
    The pack's draw is unseeded (another pattern each call); ours is seeded with DISSOLVE_SEED so a run
    repeats, the same pattern for every picture and every glow step (the blend does not know which)."""
    import numpy as np
    draw = np.random.default_rng(DISSOLVE_SEED).random(source.shape[:2])
    picked = np.where((draw < opacity * source[..., 3] / 255)[..., None], source[..., :3], backdrop[..., :3])
    return _with_alpha(backdrop, source, picked / 255, 1.0)


def _brighter_or_darker(backdrop, source, opacity: float, darker: bool):
    """blendmodes.darker_color / lighter_color: the source's pixel where its HSV value (the largest
    channel) is below (above) the backdrop's, else the backdrop's."""
    import numpy as np
    back_value, over_value = backdrop[..., :3].max(axis=-1), source[..., :3].max(axis=-1)
    take = over_value < back_value if darker else over_value > back_value
    return _with_alpha(backdrop, source, np.where(take[..., None], source[..., :3], backdrop[..., :3]) / 255, opacity)


def rgb_to_hsv(rgb):
    """RGB (0..1, last axis) to HSV, each 0..1 (hue 0 where the pixel is grey), in float32 as the pack's
    torch conversion."""
    import numpy as np
    rgb = rgb.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value, low = rgb.max(axis=-1), rgb.min(axis=-1)
    delta = value - low
    safe = np.where(delta == 0, 1, delta)
    # in the pack's order: a tie goes to blue, then green
    hue = np.where(r == value, ((g - b) / safe) % 6, 0)
    hue = np.where(g == value, (b - r) / safe + 2, hue)
    hue = np.where(b == value, (r - g) / safe + 4, hue)
    hue = np.where(delta == 0, 0, hue / 6 % 1)
    saturation = np.where(value == 0, 0, delta / np.where(value == 0, 1, value))
    return np.stack((hue, saturation, value), axis=-1).astype(np.float32)


def hsv_to_rgb(hsv):
    """HSV (0..1) back to RGB, by the sextant of the hue."""
    import numpy as np
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    chroma = v * s
    x = chroma * (1 - np.abs((h * 6) % 2 - 1))
    zero = np.zeros_like(h)
    sextant = np.clip((h * 6).astype(int), 0, 5)
    choices = [np.stack(c, axis=-1) for c in ((chroma, x, zero), (x, chroma, zero), (zero, chroma, x),
                                              (zero, x, chroma), (x, zero, chroma), (chroma, zero, x))]
    rgb = np.choose(sextant[..., None], choices)
    return rgb + (v - chroma)[..., None]


def _hsv_mode(backdrop, source, opacity: float, channels: tuple):
    """blendmodes.hsv (hue, saturation, color, luminosity): the backdrop's HSV with `channels` moved
    towards the source's by its alpha × opacity, back to RGB, then laid over the backdrop by the
    source's alpha (again, as the pack does); the backdrop's alpha, 8-bit truncated."""
    import numpy as np
    back, over = backdrop[..., :3] / 255.0, source[..., :3] / 255.0
    alpha = source[..., 3:] / 255.0
    back_hsv, over_hsv = rgb_to_hsv(back), rgb_to_hsv(over)
    mixed = back_hsv.copy()
    for channel in channels:
        amount = opacity * alpha[..., 0]
        mixed[..., channel] = (1 - amount) * back_hsv[..., channel] + amount * over_hsv[..., channel]
    rgb = np.clip((1 - alpha) * back + alpha * hsv_to_rgb(mixed), 0, 1)
    return np.dstack((rgb * 255, backdrop[..., 3])).astype(np.uint8).astype(float)


OWN_MODES = {
    "dissolve": _dissolve,
    "darker color": lambda b, s, o: _brighter_or_darker(b, s, o, True),
    "lighter color": lambda b, s, o: _brighter_or_darker(b, s, o, False),
    "hue": lambda b, s, o: _hsv_mode(b, s, o, (0,)),
    "saturation": lambda b, s, o: _hsv_mode(b, s, o, (1,)),
    "color": lambda b, s, o: _hsv_mode(b, s, o, (0, 1)),
    "luminosity": lambda b, s, o: _hsv_mode(b, s, o, (2,)),
    **{mode: (lambda m: lambda b, s, o: _simple(b, s, o, m))(mode)
       for mode in ("color burn", "linear burn", "color dodge", "vivid light", "linear light", "pin light",
                    "hard mix", "exclusion", "subtract")},
}


def blend_v2(backdrop, source, blend_mode: str, opacity: float):
    """The pack's BLEND_MODES[blend_mode] on two RGBA float arrays (0..255): an RGBA array 0..255."""
    if blend_mode in LIBRARY_MODES:
        import blend_modes
        return getattr(blend_modes, LIBRARY_MODES[blend_mode])(backdrop, source, opacity)
    return OWN_MODES[blend_mode](backdrop, source, opacity)


def chop_image_v2(background, layer, blend_mode: str, opacity: int, input_name: str = "blend_mode"):
    """imagefunc.chop_image_v2: the layer blended onto the background (same-size PIL pictures, made
    RGBA floats 0..255) by the V2 blend_mode at opacity percent; an RGB picture, 8 bits truncated
    (values clipped to 0..255 first, where the pack's uint8 cast would wrap). Its memory check names
    input_name (a caller's own mode has no blend_mode input)."""
    import numpy as np
    from PIL import Image
    check_run_memory(input_name, f"blending by {blend_mode!r}",
                     images=Size(BLEND_COPIES, background.height, background.width))
    backdrop = np.asarray(background.convert("RGBA"), dtype=float)
    source = np.asarray(layer.convert("RGBA"), dtype=float)
    blended = blend_v2(backdrop, source, blend_mode, opacity / 100)
    return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8)).convert("RGB")


def v2_help(base, name: str) -> str:
    """A V2 class's help: its round-1 class's, named as the V2 class, with what V2 changes."""
    return cleandoc(base.__doc__).replace(name, f"{name} V2") + \
        "\n\nV2: the blend modes are the pack's V2 list (the blend_modes package's and the pack's own formulas). " \
        "\"dissolve\" is seeded (the pack's is not): the same pattern for every picture and step."


class LayerUtilityImageBlendV2(LayerUtilityImageBlend):
    blend_mode: str = Choice(BLEND_MODES_V2, "normal")
    chop = staticmethod(chop_image_v2)
    comfy = ComfyAlias(("LayerUtility: ImageBlend V2",))
    __doc__ = """Blend a layer onto a background, as LayerUtility's ImageBlend V2: the layer blended by one
    of the pack's 30 V2 blend modes at opacity percent, pasted through layer_mask (inverted where
    invert_mask; else the layer's alpha, else everywhere). "dissolve" is seeded (the pack's is not): the
    same pattern for every picture."""


class LayerUtilityImageBlendAdvanceV2(LayerUtilityImageBlendAdvance):
    blend_mode: str = Choice(BLEND_MODES_V2, "normal")
    chop = staticmethod(chop_image_v2)
    comfy = ComfyAlias(("LayerUtility: ImageBlendAdvance V2",))
    __doc__ = v2_help(LayerUtilityImageBlendAdvance, "ImageBlendAdvance")


class LayerStyleDropShadowV2(LayerStyleDropShadow):
    blend_mode: str = Choice(BLEND_MODES_V2, "normal")
    chop = staticmethod(chop_image_v2)
    comfy = ComfyAlias(("LayerStyle: DropShadow V2",))
    __doc__ = v2_help(LayerStyleDropShadow, "DropShadow")


class LayerStyleInnerShadowV2(LayerStyleInnerShadow):
    blend_mode: str = Choice(BLEND_MODES_V2, "normal")
    chop = staticmethod(chop_image_v2)
    comfy = ComfyAlias(("LayerStyle: InnerShadow V2",))
    __doc__ = v2_help(LayerStyleInnerShadow, "InnerShadow")


class LayerStyleOuterGlowV2(LayerStyleOuterGlow):
    blend_mode: str = Choice(GLOW_MODES_V2, "screen")
    chop = staticmethod(chop_image_v2)
    comfy = ComfyAlias(("LayerStyle: OuterGlow V2",))
    __doc__ = v2_help(LayerStyleOuterGlow, "OuterGlow")


class LayerStyleInnerGlowV2(LayerStyleInnerGlow):
    blend_mode: str = Choice(GLOW_MODES_V2, "screen")
    chop = staticmethod(chop_image_v2)
    comfy = ComfyAlias(("LayerStyle: InnerGlow V2",))
    __doc__ = v2_help(LayerStyleInnerGlow, "InnerGlow")


class LayerStyleStrokeV2(LayerStyleStroke):
    blend_mode: str = Choice(BLEND_MODES_V2, "normal")
    chop = staticmethod(chop_image_v2)
    comfy = ComfyAlias(("LayerStyle: Stroke V2",))
    __doc__ = v2_help(LayerStyleStroke, "Stroke")


class LayerStyleColorOverlayV2(LayerStyleColorOverlay):
    blend_mode: str = Choice(BLEND_MODES_V2, "normal")
    chop = staticmethod(chop_image_v2)
    comfy = ComfyAlias(("LayerStyle: ColorOverlay V2",))
    __doc__ = v2_help(LayerStyleColorOverlay, "ColorOverlay")


class LayerStyleGradientOverlayV2(LayerStyleGradientOverlay):
    blend_mode: str = Choice(BLEND_MODES_V2, "normal")
    chop = staticmethod(chop_image_v2)
    comfy = ComfyAlias(("LayerStyle: GradientOverlay V2",))
    __doc__ = v2_help(LayerStyleGradientOverlay, "GradientOverlay")


def transparent_canvas(layer_image):
    """V3's canvas where background_image is not linked: transparent RGBA pictures of the layer's size,
    their memory checked first (16 bytes a pixel, as 4/3 of an IMAGE's)."""
    import torch
    count, height, width = layer_image.shape[:3]
    check_run_memory("layer_image", "a transparent canvas of its size",
                     images=Size(count, height, -(-width * 4 // 3)))
    return torch.zeros(count, height, width, 4)


class LayerStyleDropShadowV3(Node):
    """A drop shadow under the layer, as LayerStyle's DropShadow V3: DropShadow V2 (the layer's mask moved
    by distance_x / distance_y, grown by grow and blurred by blur, showing shadow_color blended by one
    of the V2 blend modes at opacity; the layer pasted on top through its mask) on an RGBA canvas:
    background_image is optional, a transparent canvas of the layer's size where it is not linked, so
    the shadow and the layer come out with their alpha. The image always has four channels (RGBA), as
    the pack's does. With both distances 0 the mask is used where it is (the pack fails there). No
    mask (layer_mask, else the layer's alpha): the background (or nothing, transparent) unchanged.
    "dissolve" is seeded (the pack's is not): the same pattern for every picture."""
    category = "😺dzNodes/LayerStyle"
    layer_image: IMAGE
    invert_mask: bool = Bool(True)
    blend_mode: str = Choice(BLEND_MODES_V2, "normal")
    opacity: int = Int(50, min=0, max=100)
    distance_x: int = Int(25, min=-9999, max=9999)
    distance_y: int = Int(25, min=-9999, max=9999)
    grow: int = Int(6, min=-9999, max=9999)
    blur: int = Int(18, min=0, max=1000)
    shadow_color: str = Text("#000000")
    background_image: IMAGE = None
    layer_mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerStyle: DropShadow V3",))

    def run(self):
        from PIL import Image
        color = pil_color(self.shadow_color, "shadow_color")
        backgrounds = self.background_image if self.background_image is not None else \
            transparent_canvas(self.layer_image)
        masks = layer_masks(self.layer_image, self.layer_mask, self.invert_mask, False)
        if not masks:
            warn("DropShadow V3: no mask (layer_mask not linked and layer_image has no alpha): the background is "
                 "given unchanged, as the pack does")
            return backgrounds
        out = []
        for i in range(max(len(backgrounds), len(self.layer_image), len(masks))):
            check_interrupted()
            canvas = to_pil(nth(backgrounds, i)).convert("RGBA")
            layer = to_pil(nth(self.layer_image, i))
            if canvas.size != layer.size:
                raise NodeInputError("layer_image", f"is {layer.width}×{layer.height}, background_image "
                                                    f"{canvas.width}×{canvas.height}: the pack blends same-size "
                                                    "pictures")
            mask = fitting_mask(nth(masks, i), layer.size, "DropShadow V3")
            shadow = chop_image_v2(canvas, Image.new("RGBA", layer.size, color), self.blend_mode, self.opacity)
            canvas.paste(shadow, mask=shadow_mask(mask, self.distance_x, self.distance_y, self.grow, self.blur))
            canvas.paste(layer, mask=mask)
            out.append(to_tensor(canvas))
        return batch(out)


class LayerUtilityImageBlendAdvanceV3(Node):
    """Place a layer and blend it, as LayerUtility's ImageBlendAdvance V3: ImageBlendAdvance V2 (the layer
    and its mask mirrored, scaled, turned and centred at x_percent / y_percent, blended by one of the V2
    blend modes at opacity through the placed mask, which is also given) on an RGBA canvas:
    background_image is optional, a transparent canvas of the layer's size where it is not linked. The
    image always has four channels (RGBA), as the pack's does. "dissolve" is seeded (the pack's is not):
    the same pattern for every picture."""
    category = "😺dzNodes/LayerUtility"
    layer_image: IMAGE
    invert_mask: bool = Bool(True)
    blend_mode: str = Choice(BLEND_MODES_V2, "normal")
    opacity: int = Int(100, min=0, max=100)
    x_percent: float = Float(50.0, min=-999.0, max=999.0, step=0.01)
    y_percent: float = Float(50.0, min=-999.0, max=999.0, step=0.01)
    mirror: str = Choice(("None", "horizontal", "vertical"), "None")
    scale: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    aspect_ratio: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    rotate: float = Float(0.0, min=-999999.0, max=999999.0, step=0.01)
    transform_method: str = Choice(RESAMPLE_METHODS, "lanczos")
    anti_aliasing: int = Int(0, min=0, max=16)
    background_image: IMAGE = None
    layer_mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LayerUtility: ImageBlendAdvance V3",))
    chop = staticmethod(chop_image_v2)
    # ImageBlendAdvance's placing and blending, which reads the inputs by name: V3 declares the same ones
    # (in the pack's own order, background_image optional and last, so they are not inherited)
    blend_all = LayerUtilityImageBlendAdvance.blend_all

    def run(self):
        backgrounds = self.background_image if self.background_image is not None else \
            transparent_canvas(self.layer_image)
        return self.blend_all(backgrounds, "RGBA", "ImageBlendAdvance V3")


# -- SimpleTextImage ---------------------------------------------------------------------------------------

# textwrap cuts a word longer than a line one line's worth at a time, copying the rest each time: refused
# past this many characters copied (a 10,000-character word at one character a line)
MAX_CUT_COPIES = 10**8


class LayerUtilitySimpleTextImage(Node):
    """Text drawn on a transparent width × height picture, as LayerUtility's SimpleTextImage: each
    paragraph (line of text) wrapped by Python's textwrap at char_per_line characters (spaces kept),
    each line placed left (x_offset in), centred, or right (x_offset in from the right edge) by its ink
    width, lines their ink height plus leading apart and paragraphs two more leadings apart, starting at
    y_offset + stroke_width; drawn by Pillow in text_color with a stroke_width outline of stroke_color.
    The image is RGBA (four channels) with the text's alpha as the mask, as the pack gives them; with
    size_as (an image or a mask) the picture takes its size and is given once per item of its batch.
    Fonts are the .ttf / .otf files of models/fonts (the pack lists its own font folder, which graphflow
    does not carry). A 2-D mask as size_as fails in the pack; here it gives its size. A word so long
    that wrapping would copy it over 10^8 characters is refused naming text; a line larger than Pillow
    draws is refused naming font_size (stroke_width where the stroke is the larger). Text below the
    picture is not measured."""
    category = "😺dzNodes/LayerUtility"
    text: str = Text("text", multiline=True)
    font_file: str = Choice(font_choices, if_empty="put .ttf / .otf font files in models/fonts")
    align: str = Choice(("center", "left", "right"), "center")
    char_per_line: int = Int(80, min=1, max=8096)
    leading: int = Int(8, min=0, max=8096)
    font_size: int = Int(72, min=1, max=2500)
    text_color: str = Text("#FFFFFF")
    stroke_width: int = Int(0, min=0, max=8096)
    stroke_color: str = Text("#FF8000")
    x_offset: int = Int(0, min=0, max=8096)
    y_offset: int = Int(0, min=0, max=8096)
    width: int = Int(512, min=1, max=8096, resource="width")
    height: int = Int(512, min=1, max=8096, resource="height")
    size_as: ANY = None
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LayerUtility: SimpleTextImage",))

    def font(self):
        try:
            return font_file(self.font_file, self.font_size, basic_layout=False)  # Pillow's own layout, as the pack
        except NodeInputError as e:
            raise NodeInputError("font_file", str(e)) from None

    def lines(self):
        """The text's lines as the pack wraps them, with None closing each paragraph."""
        import textwrap
        for paragraph in self.text.split("\n"):
            longest = max(map(len, TEXTWRAP_SPACES.split(paragraph)))
            if longest > self.char_per_line and longest * longest / self.char_per_line > MAX_CUT_COPIES:
                raise NodeInputError("text", f"holds a word of {longest:,} characters, which wrapping at "
                                             f"{self.char_per_line} characters a line cuts too many times: expected "
                                             "shorter words or a larger char_per_line")
            yield from textwrap.wrap(paragraph, width=self.char_per_line, expand_tabs=False,
                                     replace_whitespace=False, drop_whitespace=False)
            yield None

    def too_large(self, line: str, ink_side: int):
        """The input and message for a line larger than Pillow draws: stroke_width where the stroke
        (on both sides) outgrows the line's ink, else font_size."""
        characters = f"{len(line):,} character{'' if len(line) == 1 else 's'}"
        if 2 * self.stroke_width > ink_side:
            return "stroke_width", (f"a line of the text ({characters}) with stroke_width {self.stroke_width} is "
                                    "larger than Pillow draws: expected a smaller stroke_width")
        return "font_size", (f"a line of the text ({characters}) at font_size {self.font_size} is larger than "
                             "Pillow draws: expected a smaller font_size or shorter lines")

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageDraw
        text_color = pil_color(self.text_color, "text_color")
        stroke_color = pil_color(self.stroke_color, "stroke_color")
        width, height, count = self.width, self.height, 1
        if self.size_as is not None:
            width, height = picture_size(self.size_as, "size_as")
            count = len(self.size_as) if self.size_as.dim() in (3, 4) else 1
        check_made_size("size_as" if self.size_as is not None else "width", count, width, height, "the text picture")
        font = self.font()
        picture = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(picture)
        y = self.y_offset + self.stroke_width
        for line in self.lines():
            check_interrupted()
            if y - self.stroke_width - self.font_size > height:
                break  # y only grows: no later line's ink (at most a font size above y) reaches the picture
            if line is None:
                y += self.leading * 2
                continue
            left, top, right, bottom = font.getbbox(line)
            ink_width = right - left
            if self.align == "left":
                x = self.x_offset
            elif self.align == "center":
                x = (width - ink_width) // 2
            else:
                x = width - ink_width - self.x_offset
            # a line whose ink misses the picture draws nothing there: measured, not drawn
            box = draw.textbbox((x, y), line, font=font, stroke_width=self.stroke_width)
            if box[2] >= 0 and box[3] >= 0 and box[0] <= width and box[1] <= height:
                with drawn_within_pillows_limit(*self.too_large(line, max(ink_width, bottom - top))):
                    draw.text((x, y), line, fill=text_color, font=font, stroke_width=self.stroke_width,
                              stroke_fill=stroke_color)
            y += bottom - top + self.leading
        image = to_tensor(picture)
        mask = torch.from_numpy(np.asarray(picture)[..., 3].astype(np.float32) / 255.0)[None]
        return image.expand(count, -1, -1, -1).clone(), mask.expand(count, -1, -1).clone()


# -- AddGrain (imagefunc.image_add_grain) ------------------------------------------------------------------

# add_grain's peak, in 12-byte IMAGE pixels: at first the picture and about five float32 RGB copies at the
# grain's size (the noise, its YCbCr, the blurs and the colour mix); at the end about six at the picture's
# size (the scaled grain, the products) and the grain itself
GRAIN_COPIES, GRAINED_COPIES = 5, 6


def ycbcr(rgb):
    """imagefunc.RGB2YCbCr: BT.709 luma and colour differences of a [..., 3] tensor."""
    import torch
    r, g, b = rgb.unbind(-1)
    return torch.stack((0.2123 * r + 0.7152 * g + 0.0722 * b, -0.1146 * r - 0.3854 * g + 0.5 * b,
                        0.5 * r - 0.4542 * g - 0.0458 * b), dim=-1)


def rgb_from_ycbcr(values):
    """imagefunc.YCbCr2RGB."""
    import torch
    y, cb, cr = values.unbind(-1)
    return torch.stack((y + 1.5748 * cr, y - 0.1873 * cb - 0.4681 * cr, y + 1.8556 * cb), dim=-1)


def add_grain(picture, scale: float, strength: float, saturation: float, seed: int):
    """imagefunc.image_add_grain (toe 0) on one RGB PIL picture: uniform noise at 1 / scale of the size
    (seeded as torch.manual_seed(seed) would), made YCbCr, its channels blurred by OpenCV's 3, 15 and 11
    pixel Gaussians, back to RGB, centred and scaled by strength (red ×2, blue ×3) around 1, mixed
    towards its green by 1 - saturation, scaled bilinearly to the picture and multiplied into its
    complement; an RGB PIL picture."""
    import cv2
    import torch
    image = to_tensor(picture.convert("RGB"))
    height, width = image.shape[1:3]
    grain_height, grain_width = max(int(height // scale), 1), max(int(width // scale), 1)
    grain_pixels, pixels = grain_height * grain_width, height * width
    held = max(pixels + GRAIN_COPIES * grain_pixels, GRAINED_COPIES * pixels + grain_pixels)
    check_run_memory("grain_scale", f"grain at 1/{scale:g} of the picture's size", images=Size(1, 1, held))
    grain = torch.rand(1, grain_height, grain_width, 3, generator=torch.Generator().manual_seed(seed))
    values = ycbcr(grain)
    for channel, side in enumerate((3, 15, 11)):
        values[0, ..., channel] = torch.from_numpy(cv2.GaussianBlur(values[0, ..., channel].numpy(), (side, side), 0))
    grain = (rgb_from_ycbcr(values) - 0.5) * strength
    grain[..., 0] *= 2
    grain[..., 2] *= 3
    grain += 1
    grain = grain * saturation + grain[..., 1:2] * (1 - saturation)
    grain = torch.nn.functional.interpolate(grain.movedim(-1, 1), size=(height, width), mode="bilinear")
    return to_pil(torch.clip(1 - (1 - image[0]) * grain.movedim(1, -1)[0], 0, 1))


class LayerFilterAddGrain(Node):
    """Film grain, as LayerFilter's AddGrain: coloured noise grain_scale times coarser than the picture,
    blurred in YCbCr and scaled to it, darkening each picture by grain_power, with grain_sat of its colour
    (0: grey grain). The pack seeds the noise with the clock (another grain each run); here picture i of
    the batch is seeded with i, so a run repeats. Grain of a picture smaller than grain_scale is one
    pixel (the pack's is empty and fails)."""
    category = "😺dzNodes/LayerFilter"
    image: IMAGE
    grain_power: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    grain_scale: float = Float(1.0, min=0.1, max=10.0, step=0.1)
    grain_sat: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: AddGrain",))

    def run(self):
        out = []
        for i, picture in enumerate(self.image):
            check_interrupted()
            grained = add_grain(to_pil(picture), self.grain_scale, self.grain_power, self.grain_sat, seed=i)
            out.append(to_tensor(grained))
        return batch(out)


# -- small nodes ------------------------------------------------------------------------------------------------

MONO_WEIGHTS = (0.2989, 0.5870, 0.1140)  # color_negative.rgb_to_grayscale's


class LayerColorNegative(Node):
    """A negative, as LayerColor's Negative: 1 - value of the RGB channels ("RGB"), of one channel (R, G
    or B, the others kept), or of the grey 0.2989 R + 0.5870 G + 0.1140 B in all three ("Mono"). An alpha
    channel is dropped, as the pack does; no 8-bit rounding (the pack works on the floats)."""
    category = "😺dzNodes/LayerColor"
    image: IMAGE
    negative_channel: str = Choice(("RGB", "Mono", "R", "G", "B"), "RGB")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: Negative",))

    def run(self):
        import torch
        rgb = self.image[..., :3]
        if self.negative_channel == "Mono":
            grey = (rgb * torch.tensor(MONO_WEIGHTS, dtype=rgb.dtype)).sum(dim=-1, keepdim=True)
            return (1.0 - grey).expand(*rgb.shape).clone()
        out = rgb.clone()
        for channel in ((0, 1, 2) if self.negative_channel == "RGB" else ("RGB".index(self.negative_channel),)):
            out[..., channel] = 1.0 - out[..., channel]
        return out


class LayerUtilityXYtoPercent(Node):
    """A layer's top-left corner (x, y, pixels) as the x_percent / y_percent of its centre on the background
    that ImageBlendAdvance takes, as LayerUtility's XY to Percent: (x + layer width / 2) / background width
    × 100, and so for y; sizes from the first picture of each batch (the pack's fails on a batch)."""
    category = "😺dzNodes/LayerUtility/Data"
    background_image: IMAGE
    layer_image: IMAGE
    x: int = Int(0, min=-99999, max=99999)
    y: int = Int(0, min=-99999, max=99999)
    outputs = {"x_percent": FLOAT, "y_percent": FLOAT}
    comfy = ComfyAlias(("LayerUtility: XY to Percent",))

    def run(self):
        canvas_width, canvas_height = picture_size(self.background_image, "background_image")
        layer_width, layer_height = picture_size(self.layer_image, "layer_image")
        return (self.x + layer_width / 2) / canvas_width * 100.0, (self.y + layer_height / 2) / canvas_height * 100.0


class LayerUtilityTextJoinV2(Node):
    """The linked texts joined by delimiter, as LayerUtility's TextJoinV2: text_1 to text_4 in order,
    empty or unlinked ones left out ("" where none is left)."""
    category = "😺dzNodes/LayerUtility/Data"
    text_1: STRING
    delimiter: str = Text(",")
    text_2: STRING = None
    text_3: STRING = None
    text_4: STRING = None
    outputs = {"text": STRING}
    comfy = ComfyAlias(("LayerUtility: TextJoinV2",))

    def run(self):
        texts = (self.text_1, self.text_2, self.text_3, self.text_4)
        return self.delimiter.join(str(text) for text in texts if text is not None and text != "")


# -- Film / Film V2 (imagefunc's radial / depth blur, vignette, and Lars Ole Pontoppidan's filmgrainer) --------

BLUR_STEPS = 5  # radialblur_image / depthblur_image's steps
FILM_BLUR_COPIES = BLUR_STEPS + 3  # the blurred copies, the result and the mask, as float32 pictures
GRAIN_SHADOW_END, GRAIN_HIGHLIGHT_START = 160, 200  # graingamma's development curve
FILM_GRAIN_SIZE, FILM_GRAIN_GAUSS = 1.5, 50  # filmgrainer's grain type 3 ("coarse"), which the pack always asks
# filmgrainer draws its noise a pixel at a time in Python (4 Gaussians each, as here to give its grain):
# 4096 × 4096 pictures' worth at most (about 10 µs a pixel in all: nearly three minutes a picture at the
# cap; interruptible by rows)
MAX_FILM_GRAIN_PIXELS = 4096 * 4096


def blurred_by_mask(picture, mask, strength: float, spread: float):
    """filmgrainer.processing: the picture (float32 RGB 0..1) blurred by BLUR_STEPS Gaussians of growing
    size ((step / steps) ** spread × strength, made odd), each weighted where the mask (0..1) is in its
    step's band, the picture itself where the mask is 0."""
    import cv2
    import numpy as np
    out = np.zeros_like(picture)
    for step in range(BLUR_STEPS):
        check_interrupted()
        size = max(1, int(((step + 1) / BLUR_STEPS) ** spread * strength))
        size += 1 - size % 2
        band_width = 1.0 / BLUR_STEPS  # the pack's step * (1 / steps), not step / steps: the same floats
        band = np.clip((mask - step * band_width) * BLUR_STEPS, 0, 1) - \
            np.clip((mask - (step + 1) * band_width) * BLUR_STEPS, 0, 1)
        out += band[:, :, None] * cv2.GaussianBlur(picture, (size, size), 0)
    out += (1 - np.clip(mask * BLUR_STEPS, 0, 1))[:, :, None] * picture  # in place: float32, as the pack's
    return out


def radial_blur(picture, strength: float, center_x: float, center_y: float, spread: float):
    """imagefunc.radialblur_image: blurred by the distance from the centre (in pixels, over the farthest
    corner's)."""
    import numpy as np
    width, height = picture.size
    cx, cy = int(width * center_x), int(height * center_y)
    farthest = max(np.sqrt((cx - x) ** 2 + (cy - y) ** 2) for x in (0, width) for y in (0, height))
    xs, ys = np.meshgrid(np.arange(width) - cx, np.arange(height) - cy)
    mask = np.sqrt(xs ** 2 + ys ** 2) / farthest
    return array_pil(blurred_by_mask(np.asarray(to_tensor(picture)[0]), mask, strength, spread))


def depth_blur(picture, depth, strength: float, focal_depth: float, spread: float):
    """imagefunc.depthblur_image: blurred by the depth map's distance from focal_depth (over its largest;
    no blur where the map is all at focal_depth, where the pack divides by 0). The map is scaled to the
    picture (OpenCV, bilinear) and made grey by OpenCV's BGR weights, as the pack does."""
    import cv2
    import numpy as np
    image = np.asarray(to_tensor(picture)[0])
    depth_map = cv2.resize(np.asarray(to_tensor(depth)[0]), (image.shape[1], image.shape[0]),
                           interpolation=cv2.INTER_LINEAR)
    distance = np.abs(cv2.cvtColor(depth_map, cv2.COLOR_BGR2GRAY) - focal_depth)
    farthest = distance.max()
    mask = np.clip(distance / farthest, 0, 1) if farthest > 0 else np.zeros_like(distance)
    return array_pil(blurred_by_mask(image, mask, strength, spread))


def array_pil(values):
    """The pack's tensor2pil of a float [H, W, C] array, in the array's own precision (to_pil's float32 may
    truncate a float64 value to the level below)."""
    import numpy as np
    from PIL import Image
    return Image.fromarray(np.clip(255.0 * values, 0, 255).astype(np.uint8))


def vignette(picture, intensity: float, center_x: float, center_y: float):
    """imagefunc.vignette_image: darkened by 1 - intensity × the distance from the centre (on a -1..1 grid,
    over the farthest corner's × √2)."""
    import numpy as np
    width, height = picture.size
    xs, ys = np.meshgrid(np.linspace(-1, 1, width) - (2 * center_x - 1),
                         np.linspace(-1, 1, height) - (2 * center_y - 1))
    farthest = max(np.sqrt((x - center_x) ** 2 + (y - center_y) ** 2) for x in (0, 1) for y in (0, 1))
    shade = 1 - np.sqrt(xs ** 2 + ys ** 2) / (farthest * np.sqrt(2)) * min(max(intensity, 0), 1)
    return array_pil(np.clip(np.asarray(to_tensor(picture)[0]) * shade[..., None], 0, 1))


def gamma_table(gamma: float):
    """imagefunc.gamma_trans's lookup table: round(255 × (v / 255) ** gamma)."""
    import numpy as np
    return np.round(np.power(np.arange(256) / 255.0, gamma) * 255.0).astype(np.uint8)


@lru_cache(maxsize=16)
def grain_map(noise_power: float, shadows: float, highs: float):
    """graingamma.Map.calculate (source gamma 1): the 256 × 256 table of a picture value and a noise
    value to the grained value, computed as the pack does, value by value (Python floats)."""
    import numpy as np
    table = np.zeros((256, 256), np.uint8)
    crop_top, crop_low = noise_power * highs / 12, noise_power * shadows / 20
    scale, offset = 1 - (crop_top + crop_low), 255 * crop_low
    for source in range(256):
        value = pow(source / 255.0, 1.0) * 255.0
        gamma = value * (1.5 / 256) + 0.5
        middle = pow(128 / 255.0, 1.0 / gamma)
        if value < GRAIN_SHADOW_END:
            power = 0.5 - (GRAIN_SHADOW_END - value) * (0.5 - shadows) / GRAIN_SHADOW_END
        elif value < GRAIN_HIGHLIGHT_START:
            power = 0.5
        else:
            power = 0.5 - (value - GRAIN_HIGHLIGHT_START) * (0.5 - highs) / (255 - GRAIN_HIGHLIGHT_START)
        for noise in range(256):
            out = value * scale + offset + 255.0 * power * noise_power * (pow(noise / 255.0, 1.0 / gamma) - middle)
            table[source, noise] = 0 if out < 0 else (int(out) if out < 255.0 else 255)
    return table


@lru_cache(maxsize=2)
def grain_noise(width: int, height: int, saturation: float, seed: int):
    """graingen.grainGen (RGB): per pixel one Gaussian intensity around 128 and three colour deviations,
    drawn in the pack's order from Python's random seeded with seed, at 1 / 1.5 of the size and scaled
    up (Lanczos); a read-only uint8 array. Kept for the next call, as the pack's grain-mask cache: Film V2
    asks the same noise for every picture of a batch."""
    import random
    import numpy as np
    from PIL import Image
    draw = random.Random(seed).gauss
    noise_width, noise_height = max(int(width / FILM_GRAIN_SIZE), 1), max(int(height / FILM_GRAIN_SIZE), 1)
    noise = np.zeros((noise_height, noise_width, 3), int)
    spread = FILM_GRAIN_GAUSS * (1.0 - saturation)
    for y in range(noise_height):
        check_interrupted()
        row = noise[y]
        for x in range(noise_width):
            intensity = draw(128, spread)
            row[x] = (int(draw(0, FILM_GRAIN_GAUSS) * saturation + intensity),
                      int(draw(0, FILM_GRAIN_GAUSS) * saturation + intensity),
                      int(draw(0, FILM_GRAIN_GAUSS) * saturation + intensity))
    scaled = np.array(Image.fromarray(noise.clip(0, 255).astype(np.uint8)).resize((width, height), Image.LANCZOS))
    scaled.flags.writeable = False
    return scaled


def film_grain(picture, scale: float, power: float, shadows: float, highs: float, saturation: float, seed: int):
    """imagefunc.filmgrain_image (filmgrainer.process, grain type 3, one sharpen pass): the picture at
    1 / scale of its size (Lanczos), each channel value looked up with the grain's in grain_map, scaled
    back and sharpened."""
    import numpy as np
    from PIL import Image, ImageFilter
    width, height = picture.size
    grain_width, grain_height = max(int(width / scale), 1), max(int(height / scale), 1)
    if grain_width * grain_height > MAX_FILM_GRAIN_PIXELS:
        raise NodeInputError("grain_scale", f"film grain at 1/{scale:g} of {width}×{height} is {grain_width}×"
                                            f"{grain_height}, drawn a pixel at a time: expected at most "
                                            f"{MAX_FILM_GRAIN_PIXELS:,} pixels (a larger grain_scale)")
    check_run_memory("grain_scale", f"film grain at 1/{scale:g} of the picture's size",
                     images=Size(3, grain_height, grain_width))
    if scale != 1.0:
        picture = picture.resize((grain_width, grain_height), Image.LANCZOS)
    noise = grain_noise(picture.width, picture.height, saturation, seed)
    grained = Image.fromarray(grain_map(power, shadows, highs)[np.asarray(picture), noise])
    if scale != 1.0:
        grained = grained.resize((width, height), Image.LANCZOS)
    grained = grained.filter(ImageFilter.SHARPEN)
    return array_pil(np.asarray(grained).astype(np.float32) / 255.0)


class _FilmLook(Node):
    """Film and Film V2's steps; each declares its inputs (in its own order) and its grain."""
    category = "😺dzNodes/LayerFilter"
    depth_mode = "L"  # Film greys its depth map first; Film V2 takes it as it is

    def look(self, picture):
        """Saturation, blur and vignette, as the pack's steps before the grain."""
        import numpy as np
        from PIL import Image, ImageEnhance
        if self.saturation != 1:
            picture = ImageEnhance.Color(picture).enhance(self.saturation)
        if self.blur_strength:
            check_run_memory("blur_strength", "the film blur",
                             images=Size(FILM_BLUR_COPIES, picture.height, picture.width))
            if self.depth_map is not None:
                depth = to_pil(self.depth_map[0]).convert(self.depth_mode).convert("RGB")
                picture = depth_blur(picture, depth, self.blur_strength, self.focal_depth, self.blur_focus_spread)
            else:
                picture = radial_blur(picture, self.blur_strength, self.center_x, self.center_y,
                                      self.blur_focus_spread * 2)
        if self.vignette_intensity:
            picture = Image.fromarray(gamma_table(1 - self.vignette_intensity / 3)[np.asarray(picture)])
            picture = ImageEnhance.Color(picture).enhance(1 + self.vignette_intensity / 3)
            picture = vignette(picture, self.vignette_intensity, self.center_x, self.center_y)
        return picture

    def run(self):
        out = []
        for i, picture in enumerate(self.image):
            check_interrupted()
            picture = self.look(to_pil(picture).convert("RGB"))
            if self.grain_power:
                picture = self.grain(picture, i)
            out.append(to_tensor(picture))
        return batch(out)


class LayerFilterFilm(_FilmLook):
    """A film look, as LayerFilter's Film, on each picture in turn: saturation (PIL's Color enhancer,
    where not 1); a blur of blur_strength growing with the distance from (center_x, center_y) (with
    blur_focus_spread × 2 as its curve), or with depth_map linked, with the map's distance from
    focal_depth (its curve blur_focus_spread); with vignette_intensity, a gamma of 1 - intensity / 3,
    colour × (1 + intensity / 3) and a vignette darkening by intensity towards the corners; then, with
    grain_power, filmgrainer's coarse grain (grain_scale, grain_sat, grain_shadows, grain_highs). The
    pack seeds the grain with the clock (another grain each run); here picture i is seeded with i, so a
    run repeats; the pack's grain cache in the temp folder is kept in memory instead (the last two). A
    depth map is read from its first picture (the pack fails on a second picture with one); one at
    focal_depth everywhere gives no blur (the pack divides by 0)."""
    category = "😺dzNodes/LayerFilter"
    image: IMAGE
    center_x: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    center_y: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    saturation: float = Float(1.0, min=0.01, max=3.0, step=0.01)
    vignette_intensity: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    grain_power: float = Float(0.15, min=0.0, max=1.0, step=0.01)
    grain_scale: float = Float(1.0, min=0.1, max=10.0, step=0.1)
    grain_sat: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    grain_shadows: float = Float(0.6, min=0.0, max=1.0, step=0.01)
    grain_highs: float = Float(0.2, min=0.0, max=1.0, step=0.01)
    blur_strength: int = Int(90, min=0, max=256)
    blur_focus_spread: float = Float(2.2, min=0.1, max=8.0, step=0.1)
    focal_depth: float = Float(0.9, min=0.0, max=1.0, step=0.01)
    depth_map: IMAGE = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: Film",))

    def grain(self, picture, seed: int):
        return film_grain(picture, self.grain_scale, self.grain_power, self.grain_shadows, self.grain_highs,
                          self.grain_sat, seed)


class LayerFilterFilmV2(_FilmLook):
    """A film look, as LayerFilter's Film V2: Film (saturation, radial or depth blur, vignette, grain) with
    grain_method choosing the grain: "fastgrain" is AddGrain's (grain_scale, grain_power, grain_sat),
    "filmgrainer" Film's (with filmgrainer_shadows / filmgrainer_highs). The depth map is taken in colour
    (OpenCV greys it by BGR weights, as in the pack). Every picture of the batch gets the same grain, as
    in the pack: filmgrainer's is seeded with 0 (the pack's too) and drawn once; fastgrain's is seeded
    with 0 where the pack takes the clock (one seed a run), so a run repeats."""
    image: IMAGE
    center_x: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    center_y: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    saturation: float = Float(1.0, min=0.01, max=3.0, step=0.01)
    vignette_intensity: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    grain_method: str = Choice(("fastgrain", "filmgrainer"), "fastgrain")
    grain_power: float = Float(0.15, min=0.0, max=1.0, step=0.01)
    grain_scale: float = Float(1.0, min=0.1, max=10.0, step=0.1)
    grain_sat: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    filmgrainer_shadows: float = Float(0.6, min=0.0, max=1.0, step=0.01)
    filmgrainer_highs: float = Float(0.2, min=0.0, max=1.0, step=0.01)
    blur_strength: int = Int(90, min=0, max=256)
    blur_focus_spread: float = Float(2.2, min=0.1, max=8.0, step=0.1)
    focal_depth: float = Float(0.9, min=0.0, max=1.0, step=0.01)
    depth_map: IMAGE = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: FilmV2",))
    depth_mode = "RGB"

    def grain(self, picture, index: int):
        if self.grain_method == "fastgrain":
            return add_grain(picture, self.grain_scale, self.grain_power, self.grain_sat, seed=0)
        return film_grain(picture, self.grain_scale, self.grain_power, self.filmgrainer_shadows,
                          self.filmgrainer_highs, self.grain_sat, seed=0)


# -- WaterColor, ColorAdapter (imagefunc.image_watercolor, color_adapter) ---------------------------------------


class LayerFilterWaterColor(Node):
    """A watercolour look, as LayerFilter's WaterColor: OpenCV's stylization with sigma_s =
    int((width + height) / 5 × f) + 1 and sigma_r = sigma_s / 32 × f + 0.002, f = ((101 - line_density)
    / 128)², mixed over the picture at opacity percent."""
    category = "😺dzNodes/LayerFilter"
    image: IMAGE
    line_density: int = Int(50, min=1, max=100)
    opacity: int = Int(100, min=0, max=100)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: WaterColor",))

    def run(self):
        import cv2
        import numpy as np
        from PIL import Image
        factor = ((101 - self.line_density) / 128.0) ** 2
        out = []
        for picture in self.image:
            check_interrupted()
            canvas = to_pil(picture).convert("RGB")
            sigma_s = int((canvas.width + canvas.height) / 5.0 * factor) + 1
            painted = cv2.stylization(np.asarray(canvas), sigma_s=sigma_s, sigma_r=sigma_s / 32.0 * factor + 0.002)
            out.append(to_tensor(chop_image(canvas, Image.fromarray(painted), "normal", self.opacity)))
        return batch(out)


def color_adapted(picture, reference):
    """imagefunc.color_adapter: the picture's CIELAB channels (OpenCV's 8-bit Lab) moved to the reference's
    means and standard deviations (each rounded to 2 decimals, as the pack does), clipped, rounded back to
    8 bits. A channel with no spread takes the reference's mean (the pack divides by 0 there)."""
    import cv2
    import numpy as np
    from PIL import Image
    lab = cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2LAB)
    ref = cv2.cvtColor(np.asarray(reference), cv2.COLOR_RGB2LAB)
    (mean, std), (ref_mean, ref_std) = ([np.around(v, 2).reshape(-1) for v in cv2.meanStdDev(x)] for x in (lab, ref))
    ratio = np.divide(ref_std, std, out=np.zeros_like(std), where=std != 0)
    moved = np.clip((lab - mean) * ratio + ref_mean, 0, 255)
    return Image.fromarray(cv2.cvtColor(cv2.convertScaleAbs(moved), cv2.COLOR_LAB2RGB))


class LayerColorColorAdapter(Node):
    """The image's colours matched to color_ref_image's, as LayerColor's ColorAdapter: each CIELAB channel
    moved to the reference's mean and spread, mixed over the image at opacity percent; an RGBA image keeps
    its alpha. Every picture takes the last picture of color_ref_image, as the pack does (its pairing by
    index never takes effect), so a saved workflow gives the pack's pictures."""
    category = "😺dzNodes/LayerColor"
    image: IMAGE
    color_ref_image: IMAGE
    opacity: int = Int(75, min=0, max=100)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: ColorAdapter",))

    def run(self):
        from PIL import Image
        reference = to_pil(self.color_ref_image[-1]).convert("RGB")
        out = []
        for picture in self.image:
            check_interrupted()
            original = to_pil(picture)
            canvas = original.convert("RGB")
            adapted = color_adapted(canvas, reference)
            result = chop_image(canvas, adapted, "normal", self.opacity)
            if original.mode == "RGBA":
                result = Image.merge("RGBA", (*result.split(), original.split()[-1]))
            out.append(to_tensor(result))
        return batch(out)
