"""ComfyUI_LayerStyle's round-2 nodes (nodes/pack_nodes_layerstyle2.py): the V2 blend modes against the
blend_modes package called directly as the pack calls it, and the pack's own modes against its formulas
written out here (pixel by pixel; HSV as the pack's torch float32 conversions); the V2 classes' inputs as
the pack's INPUT_TYPES; a UI save of V2 classes read and run."""

import colorsys
import json

import blend_modes
import numpy as np
import pytest
import torch
from PIL import Image

from graphflow.comfy_format import custom_pack, export_ui
from graphflow.executor import Executor
from graphflow.resource_limits import RunLimits
from graphflow.workflow import parse_workflow
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_layerstyle import box_mask, expand, node, pil, rand, shift_loop, tensor

# the pack's BLEND_MODES keys, as blendmodes.py lists them
PACK_MODES = ["normal", "dissolve", "darken", "multiply", "color burn", "linear burn", "darker color", "lighten",
              "screen", "color dodge", "linear dodge(add)", "lighter color", "dodge", "overlay", "soft light",
              "hard light", "vivid light", "linear light", "pin light", "hard mix", "difference", "exclusion",
              "subtract", "divide", "hue", "saturation", "color", "luminosity", "grain extract", "grain merge"]
GLOW_MODES = ["screen", "linear dodge(add)", "color dodge", "lighten", "dodge", "hard light", "linear light",
              "normal", "dissolve", "darken", "multiply", "color burn", "linear burn", "darker color",
              "lighter color", "overlay", "soft light", "vivid light", "pin light", "hard mix", "difference",
              "exclusion", "subtract", "divide", "hue", "saturation", "color", "luminosity", "grain extract",
              "grain merge"]
LIBRARY = {"normal": blend_modes.normal, "darken": blend_modes.darken_only, "multiply": blend_modes.multiply,
           "lighten": blend_modes.lighten_only, "screen": blend_modes.screen,
           "linear dodge(add)": blend_modes.addition, "dodge": blend_modes.dodge, "overlay": blend_modes.overlay,
           "soft light": blend_modes.soft_light, "hard light": blend_modes.hard_light,
           "difference": blend_modes.difference, "divide": blend_modes.divide,
           "grain extract": blend_modes.grain_extract, "grain merge": blend_modes.grain_merge}


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


# -- the pack's own modes, written out pixel by pixel from blendmodes.py -----------------------------------


def pack_own(mode, backdrop, source, opacity):
    """blendmodes.py's formula for one pixel at a time (backdrop, source: RGBA floats 0..255)."""
    out = np.zeros_like(backdrop)
    for y in range(backdrop.shape[0]):
        for x in range(backdrop.shape[1]):
            out[y, x] = pack_pixel(mode, backdrop[y, x], source[y, x], opacity)
    return out


def pack_rgb_to_hsv(rgb):
    """blendmodes.rgb_to_hsv_via_torch: float32, the hue set where red, then green, then blue is the
    largest (a later tie wins), over 6, mod 1; saturation where the value is not 0."""
    r, g, b = torch.from_numpy(rgb).float().unbind(-1)
    value, low = torch.maximum(torch.maximum(r, g), b), torch.minimum(torch.minimum(r, g), b)
    delta = value - low
    hue, saturation = torch.zeros_like(value), torch.zeros_like(value)
    for top, first, second, offset in ((r, g, b, None), (g, b, r, 2.0), (b, r, g, 4.0)):
        where = (top == value) & (delta != 0)
        sextant = (first[where] - second[where]) / delta[where]
        hue[where] = sextant % 6 if offset is None else sextant + offset
    hue = (hue / 6.0) % 1.0
    lit = value != 0
    saturation[lit] = delta[lit] / value[lit]
    return torch.stack([hue, saturation, value], -1).numpy()


def pack_hsv_to_rgb(hsv):
    """blendmodes.hsv_to_rgb_via_torch: float32, the channels picked by comparing the hue with k / 6."""
    h, s, v = torch.from_numpy(hsv).float().unbind(-1)
    c = v * s
    x = c * (1 - torch.abs((h * 6) % 2 - 1))
    z = torch.zeros_like(h)
    rgb = torch.zeros(*h.shape, 3)
    picks = [(h < 1 / 6, (c, x, z)), ((1 / 6 <= h) & (h < 2 / 6), (x, c, z)), ((2 / 6 <= h) & (h < 3 / 6), (z, c, x)),
             ((3 / 6 <= h) & (h < 4 / 6), (z, x, c)), ((4 / 6 <= h) & (h < 5 / 6), (x, z, c)), (h >= 5 / 6, (c, z, x))]
    for where, channels in picks:
        rgb[where] = torch.stack(channels, -1)[where]
    return (rgb + (v - c)[..., None]).numpy()


def pack_hsv_mode(mode, backdrop, source, opacity):
    """blendmodes.hsv on whole arrays (the pack's torch conversions above)."""
    back, over, a = backdrop[..., :3] / 255.0, source[..., :3] / 255.0, source[..., 3:] / 255.0
    back_hsv, over_hsv = pack_rgb_to_hsv(back), pack_rgb_to_hsv(over)
    mixed = back_hsv.copy()
    channels = {"hue": [0], "saturation": [1], "color": [0, 1], "luminosity": [2]}[mode]
    mixed[..., channels] = (1 - opacity * a) * back_hsv[..., channels] + opacity * a * over_hsv[..., channels]
    rgb = np.clip((1 - a) * back + a * pack_hsv_to_rgb(mixed), 0, 1)
    return np.dstack((rgb * 255, backdrop[..., 3])).astype(np.uint8)


def pack_pixel(mode, back_px, over_px, opacity):
    b, s, a = back_px[:3] / 255, over_px[:3] / 255, over_px[3] / 255
    alpha = max(back_px[3], over_px[3])
    if mode in ("darker color", "lighter color"):
        darker = max(s) < max(b)
        lighter = max(s) > max(b)
        blend = s if (darker if mode == "darker color" else lighter) else b
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            blend = {
                "linear burn": lambda: b + s - 1,
                "linear light": lambda: b + 2 * s - 1,
                "color dodge": lambda: np.clip(b / (1 - s), 0, 1),
                "color burn": lambda: np.clip(1 - (1 - b) / s, 0, 1),
                "exclusion": lambda: b + s - 2 * b * s,
                "subtract": lambda: b - s,
                "vivid light": lambda: np.clip(np.where(s <= 0.5, b / (1 - 2 * s), 1 - (1 - b) / (2 * s - 0.5)), 0, 1),
                "pin light": lambda: np.where(s <= 0.5, np.minimum(b, 2 * s), np.maximum(b, 2 * (s - 0.5))),
                "hard mix": lambda: np.round(pack_pixel("linear light", back_px, over_px, opacity)[:3] / 255),
            }[mode]()
    rgb = np.clip((1 - a * opacity) * b + a * opacity * blend, 0, 1)
    return np.append(rgb * 255, alpha)


def pictures(height=6, width=7):
    """A backdrop and a layer with every 8-bit edge case the formulas divide by (0, 128, 255), plus noise."""
    gen = np.random.default_rng(3)
    back = gen.integers(0, 256, (height, width, 3))
    over = gen.integers(0, 256, (height, width, 3))
    back[0, :3], over[0, :3] = [[0, 0, 0], [255, 255, 255], [128, 0, 255]], [[0, 128, 255], [0, 0, 0], [128, 128, 64]]
    over[1, 0] = [128, 128, 128]
    back[2, 0], over[2, 0] = [200, 200, 200], [200, 200, 200]  # greys: hue 0
    return Image.fromarray(back.astype(np.uint8)), Image.fromarray(over.astype(np.uint8))


def pack_chop_v2(background, layer, mode, opacity):
    """imagefunc.chop_image_v2 with the blend_modes package or the pack's formulas above."""
    backdrop = np.asarray(background.convert("RGBA"), dtype=float)
    source = np.asarray(layer.convert("RGBA"), dtype=float)
    if mode in LIBRARY:
        blended = LIBRARY[mode](backdrop, source, opacity / 100)
    elif mode in ("hue", "saturation", "color", "luminosity"):
        blended = pack_hsv_mode(mode, backdrop, source, opacity / 100)
    else:
        blended = pack_own(mode, backdrop, source, opacity / 100)
    # the pack's np.uint8(blended) makes a NaN (a 0 / 0, carried through the mix) 0, as x86's cast does
    return Image.fromarray(np.uint8(np.nan_to_num(blended, nan=0.0))).convert("RGB")


def blend_v2(registry, background, layer, mode, opacity, mask=None, comfy_class="LayerUtility: ImageBlend V2"):
    return node(registry, comfy_class, background_image=tensor(background), layer_image=tensor(layer),
                invert_mask=False, blend_mode=mode, opacity=opacity, layer_mask=mask)


@pytest.mark.parametrize("mode", [m for m in PACK_MODES if m != "dissolve"])
@pytest.mark.parametrize("opacity", [100, 45, 0])
def test_image_blend_v2_is_the_packs_blend_on_the_same_pixels(registry, mode, opacity):
    background, layer = pictures()
    out = blend_v2(registry, background, layer, mode, opacity)
    expected = np.asarray(pack_chop_v2(background, layer, mode, opacity))
    assert np.array_equal(np.rint(out[0].numpy() * 255).astype(np.uint8), expected), mode


@pytest.mark.parametrize("opacity", [100, 45, 0])
def test_color_burn_of_white_under_black_is_the_packs_black_at_any_opacity(registry, opacity):
    """(1 - 1) / 0 is NaN in the pack, carried through its mix: its uint8 cast gives 0, whatever the opacity."""
    out = blend_v2(registry, Image.new("RGB", (2, 1), "#FFFFFF"), Image.new("RGB", (2, 1), "#000000"), "color burn",
                   opacity)
    assert torch.equal(out, torch.zeros(1, 1, 2, 3))


def test_hsv_conversions_are_colorsys_in_float32():
    from nodes.pack_nodes_layerstyle2 import hsv_to_rgb, rgb_to_hsv
    rgb = np.random.default_rng(5).random((40, 3))
    rgb[:4] = [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 1]]
    hsv = rgb_to_hsv(rgb)
    expected = np.array([colorsys.rgb_to_hsv(*px) for px in rgb])
    np.testing.assert_allclose(hsv, expected, atol=2e-6)
    assert hsv.dtype == np.float32
    np.testing.assert_allclose(hsv_to_rgb(expected), rgb, atol=1e-12)
    assert np.array_equal(hsv, pack_rgb_to_hsv(rgb))  # the pack's torch conversion: the same floats
    levels = np.random.default_rng(6).integers(0, 256, (64, 64, 3)) / 255.0
    assert np.array_equal(hsv_to_rgb(rgb_to_hsv(levels)), pack_hsv_to_rgb(pack_rgb_to_hsv(levels)))


def test_the_v2_modes_differ_from_each_other(registry):
    background, layer = pictures()
    same = {}
    for mode in PACK_MODES:
        out = blend_v2(registry, background, layer, mode, 100)
        same.setdefault(out.numpy().tobytes(), []).append(mode)
    # an opaque layer dissolves wholly at 100 %; blend_modes' dodge is the pack's color dodge's formula
    assert sorted(group for group in same.values() if len(group) > 1) == [["color dodge", "dodge"],
                                                                          ["normal", "dissolve"]]


def test_dissolve_picks_layer_pixels_by_opacity_and_repeats(registry):
    background = Image.new("RGB", (64, 64), "#000000")
    layer = Image.new("RGB", (64, 64), "#FFFFFF")
    out = blend_v2(registry, background, layer, "dissolve", 30)
    values = out[0, ..., 0].numpy()
    assert set(np.unique(values)) == {0.0, 1.0}
    assert 0.25 < values.mean() < 0.35  # about 30 % of the pixels from the layer
    assert torch.equal(out, blend_v2(registry, background, layer, "dissolve", 30))
    assert torch.equal(blend_v2(registry, background, layer, "dissolve", 100), tensor(layer))


def test_image_blend_v2_pastes_through_the_mask(registry):
    background, layer = pictures(20, 24)
    mask = box_mask()
    out = blend_v2(registry, background, layer, "soft light", 80, mask=mask)
    canvas = background.copy()
    canvas.paste(pack_chop_v2(background, layer, "soft light", 80), mask=pil(mask[0]))
    assert torch.equal(out, tensor(canvas))


def test_effects_v2_blend_by_the_v2_modes(registry):
    background, layer = pictures(20, 24)
    mask = box_mask()
    out = node(registry, "LayerStyle: DropShadow V2", background_image=tensor(background),
               layer_image=tensor(layer), invert_mask=False, blend_mode="linear burn", opacity=70, distance_x=3,
               distance_y=2, grow=2, blur=2, shadow_color="#204060", layer_mask=mask)
    canvas, mask_picture = background.copy(), pil(mask[0])
    shadow = pack_chop_v2(canvas, Image.new("RGB", canvas.size, "#204060"), "linear burn", 70)
    canvas.paste(shadow, mask=expand(shift_loop(mask_picture, 3, 2), 2, 2))
    canvas.paste(layer, mask=mask_picture)
    assert torch.equal(out, tensor(canvas))

    out = node(registry, "LayerStyle: ColorOverlay V2", background_image=tensor(background),
               layer_image=tensor(layer), invert_mask=False, blend_mode="hue", opacity=100, color="#30C0FF",
               layer_mask=mask)
    canvas = background.copy()
    canvas.paste(pack_chop_v2(layer, Image.new("RGB", layer.size, "#30C0FF"), "hue", 100), mask=mask_picture)
    assert np.abs(np.rint(out[0].numpy() * 255) - np.asarray(canvas)).max() <= 1


def test_outer_glow_v2_steps_its_colour_through_the_v2_mode(registry):
    background, layer = pictures(20, 24)
    mask = box_mask()
    out = node(registry, "LayerStyle: OuterGlow V2", background_image=tensor(background), layer_image=tensor(layer),
               invert_mask=False, blend_mode="linear dodge(add)", opacity=90, brightness=3, glow_range=6, blur=10,
               light_color="#FFBF30", glow_color="#FE0000", layer_mask=mask)
    canvas, mask_picture = background.copy(), pil(mask[0])
    grow = 6
    for step in range(3):
        color = tuple(int((b - a) * (step / 3) + a) for a, b in zip((254, 0, 0), (255, 191, 48)))
        opacity = int((90 - 1) * (step / 3) + 1)
        glow = pack_chop_v2(canvas, Image.new("RGB", canvas.size, color), "linear dodge(add)", opacity)
        canvas.paste(glow, mask=expand(mask_picture, grow, int(grow * 10 / 20)))
        grow -= int(6 / 3)
    canvas.paste(layer, mask=mask_picture)
    assert torch.equal(out, tensor(canvas))


def test_image_blend_advance_v2_places_and_blends(registry):
    background, layer = pictures(20, 24)
    small = layer.resize((10, 8))
    out, out_mask = node(registry, "LayerUtility: ImageBlendAdvance V2", background_image=tensor(background),
                         layer_image=tensor(small), invert_mask=True, blend_mode="exclusion", opacity=100,
                         x_percent=50.0, y_percent=50.0, mirror="None", scale=1.0, aspect_ratio=1.0, rotate=0.0,
                         transform_method="lanczos", anti_aliasing=0)
    placed = background.copy()
    placed.paste(small, (7, 6))
    where = Image.new("L", background.size, 0)
    where.paste(255, (7, 6, 17, 14))
    canvas = background.copy()
    canvas.paste(pack_chop_v2(background, placed, "exclusion", 100), mask=where)
    assert torch.equal(out, tensor(canvas))
    assert torch.equal(out_mask, tensor(where))



@pytest.mark.parametrize("with_background", [False, True])
def test_image_blend_advance_v3_places_on_a_transparent_or_given_canvas(registry, with_background):
    background, layer = pictures(20, 24)
    small = layer.resize((10, 8))
    inputs = dict(layer_image=tensor(small), invert_mask=True, blend_mode="darker color", opacity=80, x_percent=25.0,
                  y_percent=60.0, mirror="horizontal", scale=1.0, aspect_ratio=1.0, rotate=0.0,
                  transform_method="lanczos", anti_aliasing=0)
    if with_background:
        inputs["background_image"] = tensor(background)
    out, out_mask = node(registry, "LayerUtility: ImageBlendAdvance V3", **inputs)
    canvas = background.convert("RGBA") if with_background else Image.new("RGBA", (10, 8), (0, 0, 0, 0))
    x, y = int(canvas.width * 0.25 - 5), int(canvas.height * 0.6 - 4)
    placed = canvas.copy()
    placed.paste(small.transpose(Image.FLIP_LEFT_RIGHT), (x, y))
    where = Image.new("L", canvas.size, 0)
    where.paste(255, (x, y, x + 10, y + 8))
    canvas.paste(pack_chop_v2(canvas, placed, "darker color", 80), mask=where)
    assert out.shape[-1] == 4
    assert torch.equal(out, tensor(canvas))
    assert torch.equal(out_mask, tensor(where))

# inputs (names in order, then the widgets' defaults) as the pack's INPUT_TYPES give them
EFFECT_HEAD = ["background_image", "layer_image", "invert_mask", "blend_mode", "opacity"]
PACK_INPUTS = {
    "LayerUtility: ImageBlend V2": (EFFECT_HEAD + ["layer_mask"], [True, "normal", 100]),
    "LayerUtility: ImageBlendAdvance V2": (
        EFFECT_HEAD + ["x_percent", "y_percent", "mirror", "scale", "aspect_ratio", "rotate", "transform_method",
                       "anti_aliasing", "layer_mask"],
        [True, "normal", 100, 50.0, 50.0, "None", 1.0, 1.0, 0.0, "lanczos", 0]),
    "LayerStyle: DropShadow V2": (EFFECT_HEAD + ["distance_x", "distance_y", "grow", "blur", "shadow_color",
                                                 "layer_mask"], [True, "normal", 50, 25, 25, 6, 18, "#000000"]),
    "LayerStyle: OuterGlow V2": (EFFECT_HEAD + ["brightness", "glow_range", "blur", "light_color", "glow_color",
                                                "layer_mask"], [True, "screen", 100, 5, 48, 25, "#FFBF30", "#FE0000"]),
    "LayerStyle: InnerGlow V2": (EFFECT_HEAD + ["brightness", "glow_range", "blur", "light_color", "glow_color",
                                                "layer_mask"], [True, "screen", 100, 5, 48, 25, "#FFBF30", "#FE0000"]),
    "LayerStyle: Stroke V2": (EFFECT_HEAD + ["stroke_grow", "stroke_width", "blur", "stroke_color", "layer_mask"],
                              [True, "normal", 100, 0, 8, 0, "#FF0000"]),
    "LayerStyle: InnerShadow V2": (EFFECT_HEAD + ["distance_x", "distance_y", "grow", "blur", "shadow_color",
                                                  "layer_mask"], [True, "normal", 50, 5, 5, 2, 15, "#000000"]),
    "LayerStyle: ColorOverlay V2": (EFFECT_HEAD + ["color", "layer_mask"], [True, "normal", 100, "#FFBF30"]),
    "LayerStyle: DropShadow V3": (
        ["layer_image", "invert_mask", "blend_mode", "opacity", "distance_x", "distance_y", "grow", "blur",
         "shadow_color", "background_image", "layer_mask"], [True, "normal", 50, 25, 25, 6, 18, "#000000"]),
    "LayerUtility: ImageBlendAdvance V3": (
        ["layer_image", "invert_mask", "blend_mode", "opacity", "x_percent", "y_percent", "mirror", "scale",
         "aspect_ratio", "rotate", "transform_method", "anti_aliasing", "background_image", "layer_mask"],
        [True, "normal", 100, 50.0, 50.0, "None", 1.0, 1.0, 0.0, "lanczos", 0]),
    "LayerStyle: GradientOverlay V2": (
        EFFECT_HEAD + ["start_color", "start_alpha", "end_color", "end_alpha", "angle", "layer_mask"],
        [True, "normal", 100, "#FFBF30", 255, "#FE0000", 255, 0]),
}


OTHER_INPUTS = {
    "LayerFilter: AddGrain": (["image", "grain_power", "grain_scale", "grain_sat"], [0.5, 1.0, 1.0]),
    "LayerColor: Negative": (["image", "negative_channel"], ["RGB"]),
    "LayerColor: ColorAdapter": (["image", "color_ref_image", "opacity"], [75]),
    "LayerFilter: WaterColor": (["image", "line_density", "opacity"], [50, 100]),
    "LayerFilter: Film": (
        ["image", "center_x", "center_y", "saturation", "vignette_intensity", "grain_power", "grain_scale",
         "grain_sat", "grain_shadows", "grain_highs", "blur_strength", "blur_focus_spread", "focal_depth",
         "depth_map"], [0.5, 0.5, 1.0, 0.5, 0.15, 1.0, 0.5, 0.6, 0.2, 90, 2.2, 0.9]),
    "LayerFilter: FilmV2": (
        ["image", "center_x", "center_y", "saturation", "vignette_intensity", "grain_method", "grain_power",
         "grain_scale", "grain_sat", "filmgrainer_shadows", "filmgrainer_highs", "blur_strength", "blur_focus_spread",
         "focal_depth", "depth_map"], [0.5, 0.5, 1.0, 0.5, "fastgrain", 0.15, 1.0, 0.5, 0.6, 0.2, 90, 2.2, 0.9]),
    "LayerUtility: TextJoinV2": (["text_1", "delimiter", "text_2", "text_3", "text_4"], [","]),
    "LayerUtility: XY to Percent": (["background_image", "layer_image", "x", "y"], [0, 0]),
    "LayerUtility: SimpleTextImage": (
        ["text", "font_file", "align", "char_per_line", "leading", "font_size", "text_color", "stroke_width",
         "stroke_color", "x_offset", "y_offset", "width", "height", "size_as"],
        ["text", None, "center", 80, 8, 72, "#FFFFFF", 0, "#FF8000", 0, 0, 512, 512]),
}


@pytest.mark.parametrize("comfy_class", sorted(OTHER_INPUTS))
def test_other_inputs_are_the_packs(registry, comfy_class):
    names, defaults = OTHER_INPUTS[comfy_class]
    cls = registry.comfy_node(comfy_class)
    assert list(cls.input_specs) == names
    got = [spec.widget.default for spec in cls.input_specs.values() if spec.widget]
    assert [None if d is None else g for g, d in zip(got, defaults)] == defaults  # None: a file list, no default
    assert list(cls.outputs) == {"LayerUtility: SimpleTextImage": ["image", "mask"],
                                 "LayerUtility: XY to Percent": ["x_percent", "y_percent"],
                                 "LayerUtility: TextJoinV2": ["text"]}.get(comfy_class, ["image"])


@pytest.mark.parametrize("comfy_class", sorted(PACK_INPUTS))
def test_v2_inputs_are_the_packs(registry, comfy_class):
    names, defaults = PACK_INPUTS[comfy_class]
    cls = registry.comfy_node(comfy_class)
    assert list(cls.input_specs) == names
    widgets = [spec for spec in cls.input_specs.values() if spec.widget]
    assert [spec.widget.default for spec in widgets] == defaults
    modes = cls.input_specs["blend_mode"].widget.choices()
    assert modes == (GLOW_MODES if "Glow" in comfy_class else PACK_MODES)
    assert list(cls.outputs) == (["image", "mask"] if "Advance" in comfy_class else ["image"])
    assert custom_pack(comfy_class) == "ComfyUI_LayerStyle"


def test_a_blend_too_big_for_the_memory_is_refused_naming_blend_mode(registry):
    graph = {"1": {"class_type": "LayerUtility: ColorImage", "inputs": {"width": 64, "height": 64, "color": "#336699"}},
             "2": {"class_type": "LayerUtility: ImageBlend V2", "inputs": {
                 "background_image": ["1", 0], "layer_image": ["1", 0], "invert_mask": True, "blend_mode": "multiply",
                 "opacity": 100}}}
    result = Executor(registry, limits=RunLimits(ram_bytes=300_000)).run(parse_workflow(graph, registry),
                                                                          outputs=["2"])
    assert result.status != "success"
    assert "blend_mode" in str(result.error) and "blending by 'multiply'" in str(result.error)
    small = Executor(registry, limits=RunLimits(ram_bytes=10**9)).run(parse_workflow(graph, registry), outputs=["2"])
    assert small.status == "success"


def declared_bytes(monkeypatch, fn):
    """The bytes fn()'s check_run_memory calls reserve (IMAGE pixels, 12 bytes each), the largest."""
    import nodes.pack_nodes_layerstyle2 as module
    asked = []
    monkeypatch.setattr(module, "check_run_memory", lambda *args, images, **kw: asked.append(images.volume * 12))
    fn()
    monkeypatch.undo()
    return max(asked)


def test_a_blends_memory_check_covers_what_each_mode_holds(monkeypatch):
    """tracemalloc sees numpy's arrays, which are all of a blend's big work."""
    import tracemalloc

    from nodes.pack_nodes_layerstyle2 import chop_image_v2
    gen = np.random.default_rng(8)
    background = Image.fromarray(gen.integers(0, 256, (128, 160, 3), dtype=np.uint8))
    layer = Image.fromarray(gen.integers(0, 256, (128, 160, 4), dtype=np.uint8))
    chop_image_v2(background, layer, "soft light", 70)  # first run: imports
    declared = declared_bytes(monkeypatch, lambda: chop_image_v2(background, layer, "normal", 70))
    peaks = {}
    for mode in PACK_MODES:
        tracemalloc.start()
        try:
            chop_image_v2(background, layer, mode, 70)
            peaks[mode] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert max(peaks.values()) <= declared, (declared, peaks)
    assert max(peaks.values()) >= 0.9 * declared, (declared, peaks)  # close: the HSV modes hold the most


@pytest.mark.parametrize("scale", [1.0, 0.5, 3.0])
def test_add_grains_memory_check_is_close_to_what_it_holds(monkeypatch, scale):
    from nodes.pack_nodes_layerstyle2 import add_grain
    from tests.test_pack_nodes_image_filters import measured_peak
    picture = Image.fromarray(np.random.default_rng(9).integers(0, 256, (120, 150, 3), dtype=np.uint8))
    add_grain(picture, scale, 0.5, 1.0, 0)  # first run: imports, OpenCV's set-up
    declared = declared_bytes(monkeypatch, lambda: add_grain(picture, scale, 0.5, 1.0, 0))
    peak = measured_peak(lambda: add_grain(picture, scale, 0.5, 1.0, 0))
    assert 0.8 * peak <= declared <= 1.05 * peak, (declared, peak)


def test_a_ui_save_with_v2_classes_runs_and_round_trips(registry):
    nodes = [
        ui_node(1, "LayerUtility: ColorImage", [20, 16, "#336699"], outputs=[("image", "IMAGE", [1])]),
        ui_node(2, "LayerUtility: ColorImage", [20, 16, "#FFCC00"], outputs=[("image", "IMAGE", [2, 4])]),
        ui_node(3, "LayerUtility: ImageBlend V2", [True, "color burn", 60],
                [("background_image", "IMAGE", 1, False), ("layer_image", "IMAGE", 2, False),
                 ("layer_mask", "MASK", None, False)], [("image", "IMAGE", [3, 5, 6])]),
        ui_node(4, "LayerStyle: Stroke V2", [True, "normal", 100, 0, 8, 0, "#FF0000"],
                [("background_image", "IMAGE", 3, False), ("layer_image", "IMAGE", 4, False),
                 ("layer_mask", "MASK", None, False)], [("image", "IMAGE", [])]),
        ui_node(5, "LayerFilter: AddGrain", [0.3, 2.0, 0.5], [("image", "IMAGE", 5, False)],
                [("image", "IMAGE", [])]),
        ui_node(6, "LayerFilter: FilmV2", [0.5, 0.5, 1.0, 0.4, "fastgrain", 0.2, 1.0, 0.5, 0.6, 0.2, 5, 2.2, 0.9],
                [("image", "IMAGE", 6, False), ("depth_map", "IMAGE", None, False)], [("image", "IMAGE", [])]),
    ]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"], [4, 2, 0, 4, 1, "IMAGE"],
             [5, 3, 0, 5, 0, "IMAGE"], [6, 3, 0, 6, 0, "IMAGE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, outputs=["3", "4", "5", "6"])
    blended = pil(result.values["3"][0][0])
    assert torch.equal(result.values["5"][0], tensor(pack_add_grain(blended, 2.0, 0.3, 0.5, seed=0)))
    film = pack_add_grain(pack_film(blended, 1.0, 5, 0.5, 0.5, 2.2, 0.4), 1.0, 0.2, 0.5, seed=0)
    assert torch.equal(result.values["6"][0], tensor(film))
    back, layer = Image.new("RGB", (20, 16), "#336699"), Image.new("RGB", (20, 16), "#FFCC00")
    assert torch.equal(result.values["3"][0], tensor(pack_chop_v2(back, layer, "color burn", 60)))
    assert torch.equal(result.values["4"][0], result.values["3"][0])  # no mask: the background, as the pack
    saved = {n["id"]: n for n in json.loads(json.dumps(export_ui(parse_workflow(graph, registry), registry)))["nodes"]}
    for original in nodes:
        assert saved[original["id"]]["type"] == original["type"]
        assert saved[original["id"]]["widgets_values"] == original["widgets_values"], original["type"]


# -- DropShadow V3 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_background", [False, True])
def test_drop_shadow_v3_on_a_transparent_or_given_canvas(registry, with_background):
    background, layer = pictures(20, 24)
    mask = box_mask()
    inputs = dict(layer_image=tensor(layer), invert_mask=False, blend_mode="multiply", opacity=60, distance_x=-3,
                  distance_y=4, grow=1, blur=2, shadow_color="#204060", layer_mask=mask)
    if with_background:
        inputs["background_image"] = tensor(background)
    out = node(registry, "LayerStyle: DropShadow V3", **inputs)
    canvas = background.convert("RGBA") if with_background else Image.new("RGBA", layer.size, (0, 0, 0, 0))
    mask_picture = pil(mask[0])
    shadow = pack_chop_v2(canvas, Image.new("RGBA", layer.size, "#204060"), "multiply", 60)
    canvas.paste(shadow, mask=expand(shift_loop(mask_picture, -3, 4), 1, 2))
    canvas.paste(layer, mask=mask_picture)
    assert out.shape == (1, 20, 24, 4)
    assert torch.equal(out, tensor(canvas))
    if not with_background:  # the shadow and the layer carry the alpha; elsewhere transparent
        assert out[0, 0, 0, 3] == 0 and out[0, 8, 8, 3] == 1


@pytest.mark.parametrize("comfy_class", ["LayerStyle: DropShadow V3", "LayerUtility: ImageBlendAdvance V3"])
def test_v3s_transparent_canvas_is_checked_naming_layer_image(registry, comfy_class, monkeypatch):
    import nodes.pack_nodes_layerstyle2 as module
    checks = []
    monkeypatch.setattr(module, "check_run_memory", lambda name, what, images: checks.append((name, images.volume)))
    node(registry, comfy_class, layer_image=rand(2, 20, 30, 3), invert_mask=False, blend_mode="normal", opacity=50,
         layer_mask=torch.ones(2, 20, 30))
    canvas = [volume for name, volume in checks if name == "layer_image"]
    assert canvas and canvas[0] * 12 >= 2 * 20 * 30 * 16  # float32 RGBA


def test_drop_shadow_v3_refuses_another_size(registry):
    with pytest.raises(Exception) as e:
        node(registry, "LayerStyle: DropShadow V3", layer_image=rand(1, 8, 8, 3), invert_mask=True,
             blend_mode="normal", opacity=50, distance_x=1, distance_y=1, grow=0, blur=0, shadow_color="#000000",
             background_image=rand(1, 8, 9, 3), layer_mask=torch.ones(1, 8, 8))
    assert getattr(e.value, "input", None) == "layer_image" and "9×8" in str(e.value)


# -- SimpleTextImage -------------------------------------------------------------------------------------------


def pack_text_image(font_path, text, align, char_per_line, leading, font_size, text_color, stroke_width,
                    stroke_color, x_offset, y_offset, width, height):
    """simple_text_image.py's drawing, step by step."""
    import textwrap
    from PIL import ImageDraw, ImageFont
    font = ImageFont.truetype(str(font_path), font_size)
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    y_text = y_offset + stroke_width
    for paragraph in text.split("\n"):
        for line in textwrap.wrap(paragraph, width=char_per_line, expand_tabs=False, replace_whitespace=False,
                                  drop_whitespace=False):
            line_width = font.getbbox(line)[2] - font.getbbox(line)[0]
            line_height = font.getbbox(line)[3] - font.getbbox(line)[1]
            x_text = {"left": x_offset, "center": (width - line_width) // 2,
                      "right": width - line_width - x_offset}[align]
            draw.text(xy=(x_text, y_text), text=line, fill=text_color, font=font, stroke_width=stroke_width,
                      stroke_fill=stroke_color)
            y_text += line_height + leading
        y_text += leading * 2
    return img


TEXT = "The quick brown fox jumps over\n\nthe lazy dog, twice over the fence"


@pytest.mark.parametrize("align,stroke", [("center", 0), ("left", 2), ("right", 1)])
def test_simple_text_image_lays_out_and_draws_as_the_pack(registry, fonts, align, stroke):
    args = dict(text=TEXT, align=align, char_per_line=14, leading=5, font_size=18, text_color="#FFCC00",
                stroke_width=stroke, stroke_color="#FF0000", x_offset=7, y_offset=3, width=180, height=160)
    image, mask = node(registry, "LayerUtility: SimpleTextImage", font_file="aileron.ttf", **args)
    expected = pack_text_image(fonts / "aileron.ttf", **args)
    assert image.shape == (1, 160, 180, 4)
    assert torch.equal(image, tensor(expected))
    assert torch.equal(mask, tensor(expected.split()[3]))
    assert mask.max() == 1  # something is drawn


def test_simple_text_image_takes_size_as_and_gives_one_per_item(registry, fonts):
    args = dict(text="ab cd", align="left", char_per_line=80, leading=8, font_size=20, text_color="#FFFFFF",
                stroke_width=0, stroke_color="#FF8000", x_offset=0, y_offset=0)
    image, mask = node(registry, "LayerUtility: SimpleTextImage", font_file="aileron.ttf", width=512, height=512,
                       size_as=torch.zeros(3, 40, 60, 3), **args)
    assert image.shape == (3, 40, 60, 4) and mask.shape == (3, 40, 60)
    assert torch.equal(image[2:], tensor(pack_text_image(fonts / "aileron.ttf", width=60, height=40, **args)))
    image, _ = node(registry, "LayerUtility: SimpleTextImage", font_file="aileron.ttf", width=512, height=512,
                    size_as=torch.zeros(30, 50), **args)  # a 2-D mask: its size (the pack fails)
    assert image.shape == (1, 30, 50, 4)


def test_simple_text_image_refusals(registry, fonts):
    base = dict(align="left", leading=8, font_size=20, text_color="#FFFFFF", stroke_width=0, stroke_color="#FF8000",
                x_offset=0, y_offset=0, width=64, height=32)
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: SimpleTextImage", text="x" * 20_000, font_file="aileron.ttf", char_per_line=1,
             **base)
    assert getattr(e.value, "input", None) == "text" and "20,000" in str(e.value)
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: SimpleTextImage", text="a", font_file="aileron.ttf", char_per_line=8,
             **{**base, "text_color": "#12"})
    assert getattr(e.value, "input", None) == "text_color"
    (fonts / "broken.ttf").write_bytes(b"not a font")
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: SimpleTextImage", text="a", font_file="broken.ttf", char_per_line=8, **base)
    assert getattr(e.value, "input", None) == "font_file"
    graph = {"1": {"class_type": "LayerUtility: SimpleTextImage", "inputs": {
        "text": "a", "font_file": "missing.ttf", "char_per_line": 8, **base}}}
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["1"])
    assert result.status == "invalid"
    assert any(p.input == "font_file" and "aileron.ttf" in p.message for p in result.problems)


def test_simple_text_image_stops_at_the_pictures_bottom(registry, fonts, monkeypatch):
    import nodes.pack_nodes_layerstyle2 as module
    args = dict(align="left", char_per_line=80, leading=2, font_size=10, text_color="#FFFFFF", stroke_width=3,
                stroke_color="#FF8000", x_offset=0, y_offset=0, width=64, height=32)
    text = "ab\n" * 20_000
    checks = []
    monkeypatch.setattr(module, "check_interrupted", lambda: checks.append(1))
    image, _ = node(registry, "LayerUtility: SimpleTextImage", text=text, font_file="aileron.ttf", **args)
    assert len(checks) < 50  # a few lines fit in 32 pixels; the other 19,990 are not measured
    assert torch.equal(image, tensor(pack_text_image(fonts / "aileron.ttf", text="ab\n" * 10, **args)))


def test_simple_text_image_too_large_names_the_input_that_makes_it(registry, fonts):
    base = dict(text="a", align="left", char_per_line=8, leading=0, text_color="#FFFFFF", stroke_color="#FF8000",
                x_offset=0, y_offset=0, width=64, height=32)
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: SimpleTextImage", font_file="aileron.ttf", font_size=10, stroke_width=8096,
             **base)
    assert getattr(e.value, "input", None) == "stroke_width" and "(1 character)" in str(e.value)
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: SimpleTextImage", font_file="aileron.ttf", font_size=2500, stroke_width=0,
             **{**base, "text": "W" * 60, "char_per_line": 80, "height": 800})  # its ink starts 700 pixels down
    assert getattr(e.value, "input", None) == "font_size" and "(60 characters)" in str(e.value)


def test_a_long_word_at_a_wide_line_is_wrapped_not_refused(registry, fonts):
    image, _ = node(registry, "LayerUtility: SimpleTextImage", text="y" * 3000, font_file="aileron.ttf",
                    align="left", char_per_line=100, leading=0, font_size=8, text_color="#FFFFFF", stroke_width=0,
                    stroke_color="#FF8000", x_offset=0, y_offset=0, width=64, height=32)
    assert image[..., 3].max() > 0.5


# -- AddGrain ------------------------------------------------------------------------------------------------


def pack_add_grain(picture, scale, strength, saturation, seed):
    """imagefunc.image_add_grain (toe 0), step by step, on the global torch generator as the pack."""
    import cv2
    t = tensor(picture.convert("RGB"))
    torch.manual_seed(seed)
    grain = torch.rand(t.shape[0], int(t.shape[1] // scale), int(t.shape[2] // scale), 3)
    ycc = grain.clone()
    ycc[..., 0] = 0.2123 * grain[..., 0] + 0.7152 * grain[..., 1] + 0.0722 * grain[..., 2]
    ycc[..., 1] = 0 - 0.1146 * grain[..., 0] - 0.3854 * grain[..., 1] + 0.5 * grain[..., 2]
    ycc[..., 2] = 0.5 * grain[..., 0] - 0.4542 * grain[..., 1] - 0.0458 * grain[..., 2]
    for channel, side in ((0, 3), (1, 15), (2, 11)):
        blurred = ycc[..., channel].numpy().copy()
        for index, one in enumerate(blurred):
            blurred[index] = cv2.GaussianBlur(one, (side, side), 0)
        ycc[..., channel] = torch.from_numpy(blurred)
    rgb = ycc.clone()
    rgb[..., 0] = ycc[..., 0] + 1.5748 * ycc[..., 2]
    rgb[..., 1] = ycc[..., 0] - 0.1873 * ycc[..., 1] - 0.4681 * ycc[..., 2]
    rgb[..., 2] = ycc[..., 0] + 1.8556 * ycc[..., 1]
    grain = (rgb - 0.5) * strength
    grain[..., 0] *= 2
    grain[..., 2] *= 3
    grain += 1
    grain = grain * saturation + grain[..., 1].unsqueeze(3).repeat(1, 1, 1, 3) * (1 - saturation)
    grain = torch.nn.functional.interpolate(grain.movedim(-1, 1), size=(t.shape[1], t.shape[2]),
                                            mode="bilinear").movedim(1, -1)
    t[..., :3] = torch.clip(1 - (1 - t[..., :3]) * grain, 0, 1)
    return pil(t)


@pytest.mark.parametrize("scale,power,sat", [(1.0, 0.5, 1.0), (2.5, 0.8, 0.3), (0.5, 0.2, 0.0)])
def test_add_grain_is_the_packs_grain_seeded_by_index(registry, scale, power, sat):
    background, layer = pictures(24, 30)
    images = torch.cat([tensor(background), tensor(layer)])
    out = node(registry, "LayerFilter: AddGrain", image=images, grain_power=power, grain_scale=scale, grain_sat=sat)
    for i, picture in enumerate((background, layer)):
        assert torch.equal(out[i:i + 1], tensor(pack_add_grain(picture, scale, power, sat, seed=i))), i
    assert not torch.equal(out[:1], images[:1])


def test_add_grain_checks_the_grains_memory_naming_grain_scale(registry):
    graph = {"1": {"class_type": "LayerUtility: ColorImage", "inputs": {"width": 64, "height": 64, "color": "#808080"}},
             "2": {"class_type": "LayerFilter: AddGrain", "inputs": {"image": ["1", 0], "grain_power": 0.5,
                                                                    "grain_scale": 0.1, "grain_sat": 1.0}}}
    result = Executor(registry, limits=RunLimits(ram_bytes=2_000_000)).run(parse_workflow(graph, registry),
                                                                            outputs=["2"])
    assert result.status != "success" and "grain_scale" in str(result.error) and "1/0.1" in str(result.error)


# -- Negative, XY to Percent ---------------------------------------------------------------------------------


def test_negative_inverts_the_chosen_channels(registry):
    image = rand(2, 5, 6, 4)
    rgb = image[..., :3]
    out = node(registry, "LayerColor: Negative", image=image, negative_channel="RGB")
    torch.testing.assert_close(out, 1 - rgb, rtol=0, atol=0)
    out = node(registry, "LayerColor: Negative", image=image, negative_channel="G")
    torch.testing.assert_close(out, torch.stack([rgb[..., 0], 1 - rgb[..., 1], rgb[..., 2]], -1), rtol=0, atol=0)
    out = node(registry, "LayerColor: Negative", image=image, negative_channel="Mono")
    grey = 0.2989 * rgb[..., 0] + 0.5870 * rgb[..., 1] + 0.1140 * rgb[..., 2]
    torch.testing.assert_close(out, (1 - grey)[..., None].repeat(1, 1, 1, 3), rtol=1e-6, atol=1e-6)


def test_xy_to_percent_is_the_layers_centre_on_the_canvas(registry):
    x_percent, y_percent = node(registry, "LayerUtility: XY to Percent", background_image=rand(2, 40, 80, 3),
                                layer_image=rand(1, 10, 20, 3), x=-6, y=15)
    assert (x_percent, y_percent) == pytest.approx(((-6 + 10) / 80 * 100, (15 + 5) / 40 * 100))


def test_text_join_v2_joins_the_non_empty_texts(registry):
    assert node(registry, "LayerUtility: TextJoinV2", text_1="a", delimiter=" | ", text_2="", text_4="d") == "a | d"
    assert node(registry, "LayerUtility: TextJoinV2", text_1="", delimiter=",") == ""
    assert node(registry, "LayerUtility: TextJoinV2", text_1="x\\y", delimiter="-", text_3="\u00e9") == "x\\y-\u00e9"


# -- Film / Film V2: the pack's imagefunc and filmgrainer steps written out ----------------------------------


def pack_blurred(image, blur_strength, mask, focus_spread, steps=5):
    """filmgrainer.processing.generate_blurred_images + apply_blurred_images."""
    import cv2
    blurred_images = []
    for step in range(1, steps + 1):
        blur_size = max(1, int((step / steps) ** focus_spread * blur_strength))
        blur_size = blur_size if blur_size % 2 == 1 else blur_size + 1
        blurred_images.append(cv2.GaussianBlur(image, (blur_size, blur_size), 0))
    final_image = np.zeros_like(image)
    step_size = 1.0 / steps
    for i, blurred_image in enumerate(blurred_images):
        current_mask = np.clip((mask - i * step_size) * steps, 0, 1)
        next_mask = np.clip((mask - (i + 1) * step_size) * steps, 0, 1)
        final_image += (current_mask - next_mask)[:, :, np.newaxis] * blurred_image
    final_image += (1 - np.clip(mask * steps, 0, 1))[:, :, np.newaxis] * image
    return final_image


def pack_radialblur(picture, blur_strength, center_x, center_y, focus_spread):
    width, height = picture.size
    image = tensor(picture)[0]
    c_x, c_y = int(width * center_x), int(height * center_y)
    max_distance = max(np.sqrt((c_x - 0) ** 2 + (c_y - 0) ** 2), np.sqrt((c_x - width) ** 2 + (c_y - 0) ** 2),
                       np.sqrt((c_x - 0) ** 2 + (c_y - height) ** 2),
                       np.sqrt((c_x - width) ** 2 + (c_y - height) ** 2))
    X, Y = np.meshgrid(np.arange(width) - c_x, np.arange(height) - c_y)
    return pil(torch.from_numpy(pack_blurred(image.numpy(), blur_strength, np.sqrt(X ** 2 + Y ** 2) / max_distance,
                                             focus_spread)).unsqueeze(0))


def pack_depthblur(picture, depth, blur_strength, focal_depth, focus_spread):
    import cv2
    image = tensor(picture)[0].numpy()
    depth_map = cv2.resize(tensor(depth)[0].numpy(), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    depth_mask = np.abs(cv2.cvtColor(depth_map, cv2.COLOR_BGR2GRAY) - focal_depth)
    depth_mask = np.clip(depth_mask / np.max(depth_mask), 0, 1)
    return pil(torch.from_numpy(pack_blurred(image, blur_strength, depth_mask, focus_spread)).unsqueeze(0))


def pack_vignette(picture, intensity, center_x, center_y):
    image = tensor(picture)
    _, height, width, _ = image.shape
    X, Y = np.meshgrid(np.linspace(-1, 1, width) - (2 * center_x - 1), np.linspace(-1, 1, height) - (2 * center_y - 1))
    corners = [np.sqrt((a - center_x) ** 2 + (b - center_y) ** 2) for a, b in ((0, 0), (1, 0), (0, 1), (1, 1))]
    radius = np.sqrt(X ** 2 + Y ** 2) / (np.max(corners) * np.sqrt(2))
    shaded = np.clip(image.numpy() * (1 - radius * np.clip(intensity, 0, 1))[..., np.newaxis], 0, 1)
    return pil(torch.from_numpy(shaded))


def pack_gamma(picture, gamma):
    import cv2
    table = np.round(np.array([np.power(x / 255.0, gamma) * 255.0 for x in range(256)])).astype(np.uint8)
    return Image.fromarray(cv2.LUT(np.asarray(picture), table))


def pack_grain_map(noise_power, shadow_level, high_level):
    """graingamma.Map.calculate (src_gamma 1)."""
    table = np.zeros([256, 256], dtype=np.uint8)
    crop_top, crop_low = noise_power * high_level / 12, noise_power * shadow_level / 20
    pic_scale, pic_offs = 1 - (crop_top + crop_low), 255 * crop_low
    for src_value in range(256):
        pic_value = pow(src_value / 255.0, 1.0 / 1.0) * 255.0
        gamma = pic_value * (1.5 / 256) + 0.5
        gamma_offset = pow(128 / 255.0, 1.0 / gamma)
        if pic_value < 160:
            power = 0.5 - (160 - pic_value) * (0.5 - shadow_level) / 160
        elif pic_value < 200:
            power = 0.5
        else:
            power = 0.5 - (pic_value - 200) * (0.5 - high_level) / (255 - 200)
        for noise_value in range(256):
            value = pic_value * pic_scale + pic_offs + 255.0 * power * noise_power * (
                pow(noise_value / 255.0, 1.0 / gamma) - gamma_offset)
            table[src_value, noise_value] = 0 if value < 0 else (int(value) if value < 255.0 else 255)
    return table


def pack_filmgrain(picture, scale, grain_power, shadows, highs, grain_sat, seed):
    """filmgrainer.process with grain type 3 (1.5, 50), one sharpen pass, pixel loops and global random."""
    import random
    from PIL import ImageFilter
    img = picture.copy()
    org_width, org_height = img.size
    if scale != 1.0:
        img = img.resize((int(org_width / scale), int(org_height / scale)), resample=Image.LANCZOS)
    width, height = img.size
    random.seed(seed)
    noise_width, noise_height = int(width / 1.5), int(height / 1.5)
    buffer = np.zeros([noise_height, noise_width, 3], dtype=int)
    for y in range(noise_height):
        for x in range(noise_width):
            intens = random.gauss(128, 50 * (1.0 - grain_sat))
            for c in range(3):
                buffer[y, x, c] = random.gauss(0, 50) * grain_sat + intens
    mask = Image.fromarray(buffer.clip(0, 255).astype(np.uint8)).resize((width, height), resample=Image.LANCZOS)
    lookup = pack_grain_map(grain_power, shadows, highs)
    mask_pixels, img_pixels = mask.load(), img.load()
    for y in range(height):
        for x in range(width):
            (mr, mg, mb), (r, g, b) = mask_pixels[x, y], img_pixels[x, y]
            img_pixels[x, y] = (lookup[r, mr], lookup[g, mg], lookup[b, mb])
    if scale != 1.0:
        img = img.resize((org_width, org_height), resample=Image.LANCZOS)
    img = img.filter(ImageFilter.SHARPEN)
    return pil(torch.from_numpy(np.array(img).astype("float32") / 255.0).unsqueeze(0))


def pack_film(picture, saturation, blur_strength, center_x, center_y, spread, vignette_intensity, depth=None,
              focal_depth=0.9):
    from PIL import ImageEnhance
    if saturation != 1:
        picture = ImageEnhance.Color(picture).enhance(saturation)
    if blur_strength:
        if depth is not None:
            picture = pack_depthblur(picture, depth, blur_strength, focal_depth, spread)
        else:
            picture = pack_radialblur(picture, blur_strength, center_x, center_y, spread * 2)
    if vignette_intensity:
        picture = pack_gamma(picture, 1 - vignette_intensity / 3)
        picture = ImageEnhance.Color(picture).enhance(1 + vignette_intensity / 3)
        picture = pack_vignette(picture, vignette_intensity, center_x, center_y)
    return picture


FILM = dict(center_x=0.3, center_y=0.6, saturation=1.4, vignette_intensity=0.7, grain_power=0.4, grain_scale=1.5,
            grain_sat=0.5, blur_strength=9, blur_focus_spread=1.2, focal_depth=0.9)


def test_film_is_the_packs_blur_vignette_and_filmgrainer_seeded_by_index(registry):
    background, layer = pictures(24, 30)
    images = torch.cat([tensor(background), tensor(layer)])
    out = node(registry, "LayerFilter: Film", image=images, grain_shadows=0.6, grain_highs=0.2, **FILM)
    for i, picture in enumerate((background, layer)):
        looked = pack_film(picture, 1.4, 9, 0.3, 0.6, 1.2, 0.7)
        expected = pack_filmgrain(looked, 1.5, 0.4, 0.6, 0.2, 0.5, seed=i)
        assert torch.equal(out[i:i + 1], tensor(expected)), i
    # no grain, no vignette, no blur: saturation only
    plain = node(registry, "LayerFilter: Film", image=images[:1], grain_shadows=0.6, grain_highs=0.2,
                 **{**FILM, "grain_power": 0.0, "vignette_intensity": 0.0, "blur_strength": 0})
    from PIL import ImageEnhance
    assert torch.equal(plain, tensor(ImageEnhance.Color(background).enhance(1.4)))


def test_film_v2_depth_blur_and_both_grains(registry):
    background, layer = pictures(24, 30)
    depth = Image.fromarray((np.linspace(0, 255, 30)[None, :, None] * np.ones((24, 1, 3))).astype(np.uint8))
    common = {k: v for k, v in FILM.items()}
    out = node(registry, "LayerFilter: FilmV2", image=tensor(background), grain_method="fastgrain",
               filmgrainer_shadows=0.6, filmgrainer_highs=0.2, depth_map=tensor(depth), **common)
    looked = pack_film(background, 1.4, 9, 0.3, 0.6, 1.2, 0.7, depth=depth, focal_depth=0.9)
    assert torch.equal(out, tensor(pack_add_grain(looked, 1.5, 0.4, 0.5, seed=0)))
    out = node(registry, "LayerFilter: FilmV2", image=tensor(background), grain_method="filmgrainer",
               filmgrainer_shadows=0.3, filmgrainer_highs=0.7, depth_map=tensor(depth), **common)
    assert torch.equal(out, tensor(pack_filmgrain(looked, 1.5, 0.4, 0.3, 0.7, 0.5, seed=0)))


@pytest.mark.parametrize("method", ["fastgrain", "filmgrainer"])
def test_film_v2_gives_every_picture_the_packs_one_grain(registry, method):
    """The pack's filmgrainer grain is seeded 0 for every picture, its fastgrain once a run (the clock; ours 0)."""
    background, layer = pictures(24, 30)
    images = torch.cat([tensor(background), tensor(layer)])
    look = {**FILM, "vignette_intensity": 0.0, "blur_strength": 0, "saturation": 1.0}
    out = node(registry, "LayerFilter: FilmV2", image=images, grain_method=method, filmgrainer_shadows=0.3,
               filmgrainer_highs=0.7, **look)
    for i, picture in enumerate((background, layer)):
        if method == "fastgrain":
            expected = pack_add_grain(picture, 1.5, 0.4, 0.5, seed=0)
        else:
            expected = pack_filmgrain(picture, 1.5, 0.4, 0.3, 0.7, 0.5, seed=0)
        assert torch.equal(out[i:i + 1], tensor(expected)), i


def test_film_grain_noise_is_drawn_once_for_a_batch(registry, monkeypatch):
    import random

    from nodes.pack_nodes_layerstyle2 import grain_noise
    grain_noise.cache_clear()
    seeds, draws = [], random.Random
    monkeypatch.setattr(random, "Random", lambda seed: seeds.append(seed) or draws(seed))
    node(registry, "LayerFilter: FilmV2", image=rand(3, 12, 14, 3), grain_method="filmgrainer", filmgrainer_shadows=0.6,
         filmgrainer_highs=0.2, **FILM)
    assert seeds == [0]
    assert not grain_noise(12, 14, 0.5, 0).flags.writeable  # shared: nobody may change it


def test_film_depth_map_at_the_focal_depth_everywhere_is_not_blurred(registry):
    background, _ = pictures(12, 14)
    flat = torch.full((1, 12, 14, 3), 127 / 255)  # 8 bits on the way: 127 exactly
    out = node(registry, "LayerFilter: Film", image=tensor(background), grain_shadows=0.6, grain_highs=0.2,
               depth_map=flat, **{**FILM, "focal_depth": 127 / 255, "grain_power": 0.0, "vignette_intensity": 0.0,
                                  "saturation": 1.0})
    assert torch.equal(out, tensor(background))


def test_film_grain_too_fine_is_refused_naming_grain_scale(registry, monkeypatch):
    import nodes.pack_nodes_layerstyle2 as module
    monkeypatch.setattr(module, "MAX_FILM_GRAIN_PIXELS", 1000)
    with pytest.raises(Exception) as e:
        node(registry, "LayerFilter: Film", image=rand(1, 30, 40, 3), grain_shadows=0.6, grain_highs=0.2,
             **{**FILM, "grain_scale": 0.5})
    assert getattr(e.value, "input", None) == "grain_scale" and "80×60" in str(e.value)


# -- WaterColor, ColorAdapter ---------------------------------------------------------------------------------


def pil2cv2(picture):
    import cv2
    return cv2.cvtColor(np.array(picture), cv2.COLOR_RGB2BGR)


def cv22pil(array):
    import cv2
    return Image.fromarray(cv2.cvtColor(array, cv2.COLOR_BGR2RGB))


def pack_normal(background, layer, opacity):
    """imagefunc.chop_image's "normal" at opacity."""
    if opacity == 0:
        return background
    return Image.blend(layer, background, 1.0 - opacity / 100) if opacity < 100 else layer


@pytest.mark.parametrize("density,opacity", [(50, 100), (90, 60)])
def test_water_color_is_the_packs_stylization(registry, density, opacity):
    import cv2
    background, _ = pictures(40, 50)
    out = node(registry, "LayerFilter: WaterColor", image=tensor(background), line_density=density, opacity=opacity)
    img = cv2.cvtColor(pil2cv2(background), cv2.COLOR_BGR2RGB)
    factor = ((101 - density) / 128.0) ** 2
    sigma_s = int((background.width + background.height) / 5.0 * factor) + 1
    painted = cv2.cvtColor(cv2.stylization(img, sigma_s=sigma_s, sigma_r=sigma_s / 32.0 * factor + 0.002),
                           cv2.COLOR_BGR2RGB)
    assert torch.equal(out, tensor(pack_normal(background, cv22pil(painted), opacity)))


def pack_color_adapter(picture, reference):
    import cv2
    image = cv2.cvtColor(pil2cv2(picture), cv2.COLOR_BGR2LAB)
    ref = cv2.cvtColor(pil2cv2(reference), cv2.COLOR_BGR2LAB)
    mean, std = (np.hstack(np.around(v, decimals=2)) for v in cv2.meanStdDev(image))
    ref_mean, ref_std = (np.hstack(np.around(v, decimals=2)) for v in cv2.meanStdDev(ref))
    moved = ((image - mean) * (ref_std / std)) + ref_mean
    np.putmask(moved, moved > 255, values=255)
    np.putmask(moved, moved < 0, values=0)
    return cv22pil(cv2.cvtColor(cv2.convertScaleAbs(moved), cv2.COLOR_LAB2BGR))


def test_color_adapter_is_the_packs_lab_transfer_to_the_last_reference(registry):
    background, layer = pictures(20, 24)
    warm = Image.fromarray((np.asarray(layer) * [1.0, 0.6, 0.3]).astype(np.uint8))
    images = torch.cat([tensor(background), tensor(layer)])
    images = torch.cat([images, torch.rand(2, 20, 24, 1, generator=torch.Generator().manual_seed(4))], dim=-1)
    refs = torch.cat([tensor(warm), tensor(background)])
    out = node(registry, "LayerColor: ColorAdapter", image=images, color_ref_image=refs, opacity=70)
    for i, picture in enumerate((background, layer)):
        # color_adapter.py: `r_images[i] if len(ret_images) > i else r_images[-1]`, with i pictures made so far
        expected = pack_normal(picture, pack_color_adapter(picture, background), 70)
        assert torch.equal(out[i, ..., :3], tensor(expected)[0]), i
    assert torch.equal(out[0, ..., 3], tensor(pil(images[0, ..., 3]))[0])
    # a flat channel takes the reference's mean (the pack divides by 0)
    flat = node(registry, "LayerColor: ColorAdapter", image=torch.full((1, 6, 6, 3), 0.5), color_ref_image=refs[:1],
                opacity=100)
    import cv2
    ref_mean = np.hstack(np.around(cv2.meanStdDev(cv2.cvtColor(np.asarray(warm), cv2.COLOR_RGB2LAB))[0], 2))
    mean_rgb = cv2.cvtColor(cv2.convertScaleAbs(ref_mean.reshape(1, 1, 3)), cv2.COLOR_LAB2RGB)[0, 0]
    assert torch.equal(flat, torch.from_numpy(mean_rgb / 255.0).float().expand(1, 6, 6, 3))
