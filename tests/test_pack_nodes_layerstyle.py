"""ComfyUI_LayerStyle's nodes (nodes/pack_nodes_layerstyle.py): each against the pack's steps
written out here with PIL / numpy / scipy / skimage / OpenCV (pixel loops where the pack loops), the
clear errors, a size estimate, and the pack's classes read from a UI save and an API prompt."""

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageChops, ImageFilter
from scipy import ndimage
from skimage import img_as_float, img_as_ubyte

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.resource_limits import RunLimits
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

CHOP_MODES = ["normal", "multply", "screen", "add", "subtract", "difference", "darker", "lighter",
              "color_burn", "color_dodge", "linear_burn", "linear_dodge", "overlay",
              "soft_light", "hard_light", "vivid_light", "pin_light", "linear_light", "hard_mix"]


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


def node(registry, comfy_class, **inputs):
    """Run the node ComfyUI's `comfy_class` maps onto, with the pack's input names."""
    return call(registry, registry.comfy_node(comfy_class).node_type, **inputs)


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def pil(t):
    """The pack's tensor2pil."""
    return Image.fromarray(np.clip(255.0 * t.cpu().numpy().squeeze(), 0, 255).astype(np.uint8))


def tensor(picture):
    """The pack's pil2tensor."""
    return torch.from_numpy(np.array(picture).astype(np.float32) / 255.0).unsqueeze(0)


def box_mask(height=20, width=24):
    mask = torch.zeros(1, height, width)
    mask[0, 5:13, 6:16] = 1
    mask[0, 8, 16:19] = 0.5
    return mask


# -- the pack's blend modes, written out as its imagefunc writes them (skimage floats, masks as 0/1) --


def ski_blend(mode, background, layer):
    img_1 = img_as_float(np.asarray(background))
    img_2 = img_as_float(np.asarray(layer))
    if mode == "color_burn":
        img = 1 - (1 - img_2) / (img_1 + 0.001)
        img = img * (1 - (img < 0))
        low = img > 1
        img = img * (1 - low) + low
    elif mode == "color_dodge":
        img = img_2 / (1.0 - img_1 + 0.001)
        high = img > 1
        img = img * (1 - high) + high
    elif mode == "linear_burn":
        img = img_1 + img_2 - 1
        img = img * (1 - (img < 0))
    elif mode == "linear_dodge":
        img = img_1 + img_2
        high = img > 1
        img = img * (1 - high) + high
    elif mode == "overlay":
        m = img_2 < 0.5
        img = 2 * img_1 * img_2 * m + (1 - m) * (1 - 2 * (1 - img_1) * (1 - img_2))
    elif mode == "soft_light":
        m = img_1 < 0.5
        img = ((2 * img_1 - 1) * (img_2 - img_2 * img_2) + img_2) * m + \
              ((2 * img_1 - 1) * (np.sqrt(img_2) - img_2) + img_2) * (1 - m)
    elif mode == "hard_light":
        m = img_1 < 0.5
        img = 2 * img_1 * img_2 * m + (1 - 2 * (1 - img_1) * (1 - img_2)) * (1 - m)
    elif mode == "vivid_light":
        m = img_1 < 0.5
        t1 = 1 - (1 - img_2) / (2 * img_1 + 0.001)
        t2 = img_2 / (2 * (1 - img_1) + 0.001)
        t1 = t1 * (1 - (t1 < 0))
        over = t2 > 1
        t2 = t2 * (1 - over) + over
        img = t1 * m + t2 * (1 - m)
    elif mode == "pin_light":
        m1 = img_2 < (img_1 * 2 - 1)
        m2 = img_2 > 2 * img_1
        img = (2 * img_1 - 1) * m1 + img_2 * (1 - m1) * (1 - m2) + 2 * img_1 * m2
    elif mode == "linear_light":
        img = img_2 + img_1 * 2 - 1
        img = img * (1 - (img < 0))
        high = img > 1
        img = img * (1 - high) + high
    else:  # hard_mix
        img = img_1 + img_2
        m = img_1 + img_2 > 1
        img = (img * (1 - m) + m) * m
    return Image.fromarray(img_as_ubyte(img))


def chop(background, layer, mode, opacity):
    basic = {"normal": lambda b, l: l, "multply": ImageChops.multiply, "screen": ImageChops.screen,
             "add": lambda b, l: ImageChops.add(b, l, 1, 0), "subtract": lambda b, l: ImageChops.subtract(b, l, 1, 0),
             "difference": ImageChops.difference, "darker": ImageChops.darker, "lighter": ImageChops.lighter}
    out = basic[mode](background, layer) if mode in basic else ski_blend(mode, background, layer)
    if opacity == 0:
        return background
    return Image.blend(out, background, 1 - opacity / 100) if opacity < 100 else out


def expand(mask_picture, grow, blur):
    """The pack's expand_mask: a cross dilation / erosion |grow| times, then PIL's blur."""
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    values = np.asarray(mask_picture, np.float32) / 255.0
    for _ in range(abs(grow)):
        values = (ndimage.grey_erosion if grow < 0 else ndimage.grey_dilation)(values, footprint=cross)
    return pil(torch.from_numpy(values)).filter(ImageFilter.GaussianBlur(blur))


@pytest.mark.parametrize("grow", [-13, -7, -5, 5, 9, 30])
@pytest.mark.parametrize("levels", [(0, 255), (0, 80, 255), (0, 7, 128, 200)])
def test_expand_mask_by_distance_is_the_packs_cross_loop(grow, levels):
    from nodes.pack_nodes_layerstyle import expand_mask
    rng = np.random.default_rng(abs(grow) + len(levels))
    for shape in ((9, 14), (23, 17)):
        # blobs of random levels, some at the border, and a few lone pixels
        mask = np.zeros(shape, np.uint8)
        for _ in range(4):
            y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            mask[y:y + rng.integers(1, 6), x:x + rng.integers(1, 6)] = rng.choice(levels[1:])
        mask[0, -1] = levels[-1]
        picture = Image.fromarray(mask)
        assert len(np.unique(mask)) < abs(grow)  # the distance transform's case
        expected = np.asarray(expand(picture, grow, 0))
        assert np.array_equal(np.asarray(expand_mask(picture, grow, 0)), expected), (shape, grow, levels)


@pytest.mark.parametrize("mode", CHOP_MODES)
def test_image_blend_is_the_packs_chop_image_pasted_through_the_mask(registry, mode):
    background, layer, mask = rand(2, 20, 24, 3), rand(1, 20, 24, 3, seed=1), box_mask()
    out = node(registry, "LayerUtility: ImageBlend", background_image=background, layer_image=layer,
               invert_mask=False, blend_mode=mode, opacity=70, layer_mask=mask)
    assert out.shape == (2, 20, 24, 3)
    for i in range(2):
        canvas = pil(background[i])
        canvas.paste(chop(canvas, pil(layer[0]), mode, 70), mask=pil(mask[0]))
        torch.testing.assert_close(out[i:i + 1], tensor(canvas), atol=0, rtol=0)


def test_image_blend_inverts_the_mask_and_uses_the_layers_alpha_or_everywhere(registry):
    background, layer = rand(1, 16, 16, 3), rand(1, 16, 16, 3, seed=1)
    mask = box_mask(16, 16)
    inverted = node(registry, "LayerUtility: ImageBlend", background_image=background, layer_image=layer,
                    invert_mask=True, blend_mode="screen", opacity=100, layer_mask=mask)
    canvas = pil(background[0])
    canvas.paste(ImageChops.screen(canvas, pil(layer[0])), mask=pil(1 - mask[0]))
    assert torch.equal(inverted, tensor(canvas))
    # no mask and an RGB layer: blended everywhere; an RGBA layer: through its alpha
    plain = node(registry, "LayerUtility: ImageBlend", background_image=background, layer_image=layer,
                 invert_mask=True, blend_mode="normal", opacity=100)
    assert torch.equal(plain, tensor(pil(layer[0])))
    rgba = torch.cat([layer, mask[..., None]], dim=-1)
    through_alpha = node(registry, "LayerUtility: ImageBlend", background_image=background, layer_image=rgba,
                         invert_mask=True, blend_mode="normal", opacity=100)
    canvas = pil(background[0])
    canvas.paste(pil(layer[0]), mask=pil(mask[0]))
    assert torch.equal(through_alpha, tensor(canvas))


def test_blends_refuse_another_size_and_a_bad_colour(registry):
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ImageBlend", background_image=rand(1, 8, 8, 3), layer_image=rand(1, 8, 9, 3),
             invert_mask=True, blend_mode="normal", opacity=100)
    assert e.value.input == "layer_image" and "9×8" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerStyle: ColorOverlay", background_image=rand(1, 8, 8, 3), layer_image=rand(1, 8, 8, 3),
             invert_mask=False, blend_mode="normal", opacity=100, color="#12345", layer_mask=torch.ones(1, 8, 8))
    assert e.value.input == "color" and "not a colour" in str(e.value)


def shift_loop(mask_picture, distance_x, distance_y):
    """The pack's shift_image, pixel by pixel, as DropShadow calls it (distances negated)."""
    dx, dy = -distance_x, -distance_y
    width, height = mask_picture.size
    out = Image.new("RGB", (width, height), "#000000")
    for x in range(width):
        for y in range(height):
            if x > -dx and y > -dy and x + dx < width and y + dy < height:
                out.putpixel((x, y), mask_picture.getpixel((x + dx, y + dy)))
    return out.split()[0]


@pytest.mark.parametrize("distance", [(3, 2), (-4, 5), (0, -3)])
def test_drop_shadow_shifts_grows_and_blurs_the_mask_as_the_pack(registry, distance):
    background, layer, mask = rand(1, 20, 24, 3), rand(1, 20, 24, 3, seed=1), box_mask()
    out = node(registry, "LayerStyle: DropShadow", background_image=background, layer_image=layer,
               invert_mask=False, blend_mode="multply", opacity=60, distance_x=distance[0], distance_y=distance[1],
               grow=2, blur=2, shadow_color="#204060", layer_mask=mask)
    canvas, mask_picture = pil(background[0]), pil(mask[0])
    shadow_mask = expand(shift_loop(mask_picture, *distance), 2, 2)
    canvas.paste(chop(canvas, Image.new("RGB", canvas.size, "#204060"), "multply", 60), mask=shadow_mask)
    canvas.paste(pil(layer[0]), mask=mask_picture)
    assert torch.equal(out, tensor(canvas))


def test_drop_shadow_without_a_mask_gives_the_background(registry):
    background = rand(1, 8, 8, 3)
    out = node(registry, "LayerStyle: DropShadow", background_image=background, layer_image=rand(1, 8, 8, 3),
               invert_mask=True, blend_mode="normal", opacity=50, distance_x=1, distance_y=1, grow=0, blur=0,
               shadow_color="#000000")
    assert out is background


def test_stroke_is_the_band_between_two_grown_masks(registry):
    background, layer, mask = rand(1, 20, 24, 3), rand(1, 20, 24, 3, seed=1), box_mask()
    out = node(registry, "LayerStyle: Stroke", background_image=background, layer_image=layer, invert_mask=True,
               blend_mode="normal", opacity=80, stroke_grow=1, stroke_width=5, blur=1, stroke_color="#FF0000",
               layer_mask=1 - mask)
    inner, outer = 1 - 5 // 2, 1 - 5 // 2 + 5
    mask_picture = pil(mask[0])
    band = np.clip(np.asarray(expand(mask_picture, outer, 1), np.int32) - np.asarray(expand(mask_picture, inner, 1),
                                                                                     np.int32), 0, 255)
    canvas, layer_picture = pil(background[0]), pil(layer[0])
    canvas.paste(layer_picture, mask=mask_picture)
    canvas.paste(chop(layer_picture, Image.new("RGB", canvas.size, "#FF0000"), "normal", 80),
                 mask=Image.fromarray(band.astype(np.uint8)))
    assert torch.equal(out, tensor(canvas))


def test_color_overlay_blends_the_colour_onto_the_layer(registry):
    background, layer, mask = rand(1, 12, 10, 3), rand(1, 12, 10, 3, seed=1), box_mask(12, 10)
    out = node(registry, "LayerStyle: ColorOverlay", background_image=background, layer_image=layer,
               invert_mask=False, blend_mode="overlay", opacity=100, color="#FFBF30", layer_mask=mask)
    canvas = pil(background[0])
    canvas.paste(ski_blend("overlay", pil(layer[0]), Image.new("RGB", (10, 12), "#FFBF30")), mask=pil(mask[0]))
    assert torch.equal(out, tensor(canvas))


def test_mask_grow_and_invert_as_the_pack(registry):
    mask = box_mask()
    for grow, blur in ((3, 0), (-2, 2), (40, 1)):  # 40 steps: more than the mask needs to fill
        out = node(registry, "LayerMask: MaskGrow", mask=mask, invert_mask=False, grow=grow, blur=blur)
        assert torch.equal(out, tensor(expand(pil(mask[0]), grow, blur))), grow
    inverted = node(registry, "LayerMask: MaskGrow", mask=mask, invert_mask=True, grow=1, blur=0)
    assert torch.equal(inverted, tensor(expand(pil(1 - mask[0]), 1, 0)))
    assert torch.equal(node(registry, "LayerMask: MaskInvert", mask=mask[0]),
                       1 - tensor(pil(mask[0])))


def test_gaussian_blur_and_gamma_are_pil_and_a_lookup_table(registry):
    image = rand(2, 16, 12, 3)
    out = node(registry, "LayerFilter: GaussianBlur", image=image, blur=3)
    for i in range(2):
        assert torch.equal(out[i:i + 1], tensor(pil(image[i]).filter(ImageFilter.GaussianBlur(3))))
    gamma = node(registry, "LayerColor: Gamma", image=image, gamma=2.2)
    table = np.round(np.array([np.power(x / 255.0, 2.2) * 255.0 for x in range(256)])).astype(np.uint8)
    expected = cv2.LUT(np.asarray(pil(image[1])), table)
    assert torch.equal(gamma[1:2], tensor(Image.fromarray(expected)))
    rgba = torch.cat([image, rand(2, 16, 12, 1, seed=3)], dim=-1)
    kept = node(registry, "LayerColor: Gamma", image=rgba, gamma=0.5)
    assert kept.shape == (2, 16, 12, 4)
    assert torch.equal(kept[0, ..., 3], tensor(pil(rgba[0]).split()[-1])[0])


def test_alpha_nodes_and_opacity(registry):
    image, mask = rand(1, 10, 8, 3), box_mask(10, 8)
    rgba = node(registry, "LayerUtility: ImageCombineAlpha", RGB_image=image, mask=mask)
    assert torch.equal(rgba, tensor(Image.merge("RGBA", (*pil(image[0]).split(), pil(mask[0])))))
    filled = node(registry, "LayerUtility: ImageRemoveAlpha", RGBA_image=rgba, fill_background=True,
                  background_color="#00FF00")
    canvas = Image.new("RGB", (8, 10), "#00FF00")
    canvas.paste(pil(rgba[0]), mask=pil(mask[0]))
    assert torch.equal(filled, tensor(canvas))
    dropped = node(registry, "LayerUtility: ImageRemoveAlpha", RGBA_image=rgba, fill_background=False,
                   background_color="#00FF00")
    assert torch.equal(dropped, tensor(pil(image[0])))
    for invert in (True, False):
        picture, alpha = node(registry, "LayerUtility: ImageOpacity", image=image, opacity=40, invert_mask=invert,
                              mask=mask)
        m = pil(1 - mask[0] if invert else mask[0])
        if invert:  # the pack's steps: fade the re-inverted mask towards white, invert back
            expected = ImageChops.invert(Image.blend(ImageChops.invert(m), Image.new("L", m.size, "white"), 0.6))
        else:
            expected = Image.blend(m, Image.new("L", m.size, "black"), 0.6)
        assert torch.equal(alpha, tensor(expected)) and torch.equal(picture[..., 3], tensor(expected))
        # either way about 40% of the chosen mask
        assert (alpha - 0.4 * tensor(m)).abs().max() <= 1 / 255 + 1e-6
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ImageCombineAlpha", RGB_image=image, mask=torch.ones(1, 4, 4))
    assert e.value.input == "mask"


def test_color_image_size_text_join(registry):
    out = node(registry, "LayerUtility: ColorImage", width=6, height=4, color="#FF8000")
    assert out.shape == (1, 4, 6, 3)
    assert torch.equal(out[0, 0, 0], torch.tensor([255, 128, 0], dtype=torch.float32) / 255)
    assert node(registry, "LayerUtility: GetImageSize", image=rand(2, 5, 7, 3)) == (7, 5, [7, 5])
    assert node(registry, "LayerUtility: TextJoin", text_1="a", text_2="b", text_3="", text_4="c") == "a, b, , c"
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ColorImage", width=6, height=4, color="nope")
    assert e.value.input == "color"


def test_a_huge_color_image_is_refused_before_it_runs(registry):
    graph = {"1": {"class_type": "LayerUtility: ColorImage", "inputs": {"width": 99999, "height": 99999,
                                                                        "color": "#000000"}}}
    result = Executor(registry, limits=RunLimits(max_pixels=4096 * 4096)).run(parse_workflow(graph, registry),
                                                                              outputs=["1"])
    assert result.status == "invalid"
    assert any(p.input == "width" and "99999×99999" in p.message for p in result.problems)


def test_the_pack_is_named_for_its_classes():
    assert custom_pack("LayerStyle: DropShadow") == "ComfyUI_LayerStyle"
    assert custom_pack("LayerUtility: ImageScaleRestore V2") == "ComfyUI_LayerStyle"


API = {
    "1": {"class_type": "LayerUtility: ColorImage", "inputs": {"width": 32, "height": 24, "color": "#336699"}},
    "2": {"class_type": "LayerUtility: ColorImage", "inputs": {"width": 32, "height": 24, "color": "#FFCC00"}},
    "5": {"class_type": "LayerUtility: ImageBlend", "inputs": {"background_image": ["1", 0], "layer_image": ["2", 0],
                                                               "invert_mask": True, "blend_mode": "screen",
                                                               "opacity": 100}},
    "6": {"class_type": "LayerStyle: DropShadow", "inputs": {
        "background_image": ["1", 0], "layer_image": ["2", 0], "invert_mask": False, "blend_mode": "normal",
        "opacity": 50, "distance_x": 4, "distance_y": 3, "grow": 1, "blur": 2, "shadow_color": "#000000",
        "layer_mask": ["7", 0]}},
    "7": {"class_type": "LayerMask: MaskInvert", "inputs": {"mask": ["8", 0]}},
    "8": {"class_type": "ImageToMask", "inputs": {"image": ["9", 0], "channel": "red"}},
    "9": {"class_type": "LayerUtility: ColorImage", "inputs": {"width": 32, "height": 24, "color": "#000000"}},
    "10": {"class_type": "LayerUtility: GetImageSize", "inputs": {"image": ["6", 0]}},
}


def test_an_api_prompt_with_the_packs_classes_runs_and_exports(registry):
    result = run_graph(registry, API, outputs=["5", "6", "10"])
    screen = ImageChops.screen(Image.new("RGB", (32, 24), "#336699"), Image.new("RGB", (32, 24), "#FFCC00"))
    assert torch.equal(result.values["5"][0], tensor(screen))
    # the mask is white everywhere (black inverted): the layer covers the shadow
    assert torch.equal(result.values["6"][0], tensor(Image.new("RGB", (32, 24), "#FFCC00")))
    assert tuple(result.values["10"][:2]) == (32, 24)
    api = export_api(parse_workflow(API, registry), registry)
    for node_id, entry in API.items():
        assert api[node_id]["class_type"] == entry["class_type"]
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_a_ui_save_with_the_packs_classes_runs_and_round_trips(registry):
    nodes = [
        ui_node(1, "LayerUtility: ColorImage", [20, 16, "#336699"], outputs=[("image", "IMAGE", [1])]),
        ui_node(2, "LayerUtility: ColorImage", [20, 16, "#FFCC00"], outputs=[("image", "IMAGE", [2, 4])]),
        ui_node(3, "LayerUtility: ImageBlend", [True, "multply", 60],
                [("background_image", "IMAGE", 1, False), ("layer_image", "IMAGE", 2, False),
                 ("layer_mask", "MASK", None, False)], [("image", "IMAGE", [3])]),
        ui_node(4, "LayerStyle: Stroke", [True, "normal", 100, 0, 8, 0, "#FF0000"],
                [("background_image", "IMAGE", 3, False), ("layer_image", "IMAGE", 4, False),
                 ("layer_mask", "MASK", None, False)], [("image", "IMAGE", [])]),
        ui_node(5, "LayerUtility: TextJoin", ["a", "b", "c", "d"], outputs=[("text", "STRING", [])]),
    ]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"], [4, 2, 0, 4, 1, "IMAGE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, outputs=["3", "4", "5"])
    back, layer = Image.new("RGB", (20, 16), "#336699"), Image.new("RGB", (20, 16), "#FFCC00")
    assert torch.equal(result.values["3"][0], tensor(Image.blend(ImageChops.multiply(back, layer), back, 0.4)))
    # no mask and an RGB layer: Stroke gives its background unchanged, as the pack does
    assert torch.equal(result.values["4"][0], result.values["3"][0])
    assert result.values["5"][0] == "a, b, c, d"
    saved = {n["id"]: n for n in json.loads(json.dumps(export_ui(parse_workflow(graph, registry), registry)))["nodes"]}
    for original in nodes:
        assert saved[original["id"]]["type"] == original["type"]
        assert saved[original["id"]]["widgets_values"] == original["widgets_values"], original["type"]


def hex_steps(start, end, total, step):
    """The pack's step_color: each channel int((end - start) × step / total + start)."""
    return tuple(int((b - a) * (step / total) + a) for a, b in zip(start, end))


def test_outer_glow_steps_colour_opacity_and_growth_as_the_pack(registry):
    background, layer, mask = rand(1, 24, 28, 3), rand(1, 24, 28, 3, seed=1), box_mask(24, 28)
    out = node(registry, "LayerStyle: OuterGlow", background_image=background, layer_image=layer, invert_mask=False,
               blend_mode="screen", opacity=90, brightness=3, glow_range=7, blur=10, light_color="#FFBF30",
               glow_color="#FE0000", layer_mask=mask)
    canvas, mask_picture = pil(background[0]), pil(mask[0])
    grow = 7
    for step in range(3):
        glow_mask = expand(mask_picture, grow, int(grow * 10 / 20.0))
        color = Image.new("RGB", canvas.size, hex_steps((0xFE, 0, 0), (0xFF, 0xBF, 0x30), 3, step))
        canvas.paste(chop(canvas, color, "screen", int((90 - 1) * step / 3 + 1)), mask=glow_mask)
        grow -= int(7 / 3)
    canvas.paste(pil(layer[0]), mask=mask_picture)
    assert torch.equal(out, tensor(canvas))
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerStyle: OuterGlow", background_image=background, layer_image=layer, invert_mask=False,
             blend_mode="screen", opacity=90, brightness=3, glow_range=7, blur=10, light_color="orange",
             glow_color="#FE0000", layer_mask=mask)
    assert e.value.input == "light_color" and "hex" in str(e.value)


def test_inner_glow_and_inner_shadow_as_the_pack(registry):
    background, layer, mask = rand(1, 24, 28, 3), rand(1, 24, 28, 3, seed=1), box_mask(24, 28)
    out = node(registry, "LayerStyle: InnerGlow", background_image=background, layer_image=layer, invert_mask=False,
               blend_mode="add", opacity=80, brightness=2, glow_range=4, blur=10, light_color="#FFBF30",
               glow_color="#FE0000", layer_mask=mask)
    canvas, picture, mask_picture = pil(background[0]), pil(layer[0]), pil(mask[0])
    grow, blur = 4, 10
    blur_factor = blur / 20.0
    for step in range(2):
        blur = int(grow * blur_factor)
        glow_mask = tensor(expand(mask_picture, -grow, blur))  # the pack's mask_invert on the tensor
        color = Image.new("RGB", picture.size, hex_steps((0xFE, 0, 0), (0xFF, 0xBF, 0x30), 2, step))
        picture.paste(chop(picture, color, "add", int((80 - 1) * step / 2 + 1)), mask=pil(1 - glow_mask).convert("L"))
        grow -= int(4 / 2)
    picture.paste(canvas, mask=ImageChops.invert(mask_picture))
    assert torch.equal(out, tensor(picture))
    shadow = node(registry, "LayerStyle: InnerShadow", background_image=background, layer_image=layer,
                  invert_mask=False, blend_mode="normal", opacity=50, distance_x=3, distance_y=-2, grow=1, blur=2,
                  shadow_color="#000000", layer_mask=mask)
    canvas, picture = pil(background[0]), pil(layer[0])
    shadow_mask = expand(shift_loop(mask_picture, 3, -2), 1, 2)
    picture.paste(chop(picture, Image.new("RGB", picture.size, "#000000"), "normal", 50),
                  mask=ImageChops.invert(shadow_mask))
    canvas.paste(picture, mask=mask_picture)
    assert torch.equal(shadow, tensor(canvas))


SAMPLERS = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def pack_round(number, multiple):
    """The pack's num_round_to_multiple."""
    if number % multiple == 0:
        return number
    factor = int(number / multiple)
    if number - factor * multiple > multiple / 2:
        factor += 1
    return factor * multiple


@pytest.mark.parametrize("size,ratio,side,length,fit", [
    ((40, 30), "16:9", "None", 1024, "letterbox"), ((30, 40), "1:1", "longest", 24, "crop"),
    ((40, 30), "custom", "shortest", 20, "fill"), ((30, 40), "original", "shortest", 17, "letterbox")])
def test_scale_by_aspect_ratio_v2_sizes_and_fits_as_the_pack(registry, size, ratio, side, length, fit):
    width, height = size
    image, mask = rand(2, height, width, 3), rand(1, height, width, seed=1)
    out_image, out_mask, original, new_width, new_height = node(
        registry, "LayerUtility: ImageScaleByAspectRatio V2", aspect_ratio=ratio, proportional_width=5,
        proportional_height=3, fit=fit, method="bicubic", round_to_multiple="8", scale_to_side=side,
        scale_to_length=length, image=image, mask=mask)
    r = {"16:9": 16 / 9, "1:1": 1.0, "custom": 5 / 3, "original": width / height}[ratio]
    # the pack's target: the longer side's orientation decides which side the length sets
    if width > height:
        w, h = {"longest": (length, int(length / r)), "shortest": (int(length * r), length)}.get(
            side, (width, int(width / r)))
    else:
        w, h = {"longest": (int(length * r), length), "shortest": (length, int(length / r))}.get(
            side, (int(height * r), height))
    w, h = pack_round(w, 8), pack_round(h, 8)
    assert (new_width, new_height, original) == (w, h, [width, height])
    picture = pil(image[1])
    if fit == "letterbox":
        if width / height > w / h:
            fw, fh = w, int(w / width * height)
        else:
            fw, fh = int(h / height * width), h
        expected = Image.new("RGB", (w, h), "black")
        expected.paste(picture.resize((fw, fh), Image.BICUBIC), box=((w - fw) // 2, (h - fh) // 2))
    elif fit == "crop":
        if width / height > w / h:
            fw = int(height * w / h)
            expected = picture.crop(((width - fw) // 2, 0, (width - fw) // 2 + fw, height))
        else:
            fh = int(width * h / w)
            expected = picture.crop((0, (height - fh) // 2, width, (height - fh) // 2 + fh))
        expected = expected.resize((w, h), Image.BICUBIC)
    else:
        expected = picture.resize((w, h), Image.BICUBIC)
    assert out_image.shape == (2, h, w, 3) and torch.equal(out_image[1:2], tensor(expected))
    assert out_mask.shape == (1, h, w)


def test_scale_by_aspect_ratio_needs_a_picture_and_refuses_a_huge_size(registry):
    widgets = dict(aspect_ratio="1:1", proportional_width=1, proportional_height=1, fit="fill", method="lanczos",
                   round_to_multiple="None", scale_to_side="longest")
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ImageScaleByAspectRatio V2", scale_to_length=64, **widgets)
    assert e.value.input == "image"
    graph = {"1": {"class_type": "LayerUtility: ColorImage", "inputs": {"width": 64, "height": 48, "color": "#FFF"}},
             "2": {"class_type": "LayerUtility: ImageScaleByAspectRatio V2",
                   "inputs": {**widgets, "scale_to_length": 999999, "image": ["1", 0]}}}
    result = Executor(registry, limits=RunLimits(max_pixels=4096 * 4096)).run(parse_workflow(graph, registry),
                                                                              outputs=["2"])
    assert result.status == "invalid" and "999999×999999" in result.problems[0].message


@pytest.mark.parametrize("scale_by,length", [("by_scale", 0), ("longest", 50), ("shortest", 50), ("width", 33),
                                             ("height", 2), ("total_pixel(kilo pixel)", 3)])
def test_scale_restore_v2_targets_as_the_pack(registry, scale_by, length):
    image, mask = rand(1, 30, 40, 3), rand(1, 30, 40, seed=1)
    out, out_mask, original, w, h = node(registry, "LayerUtility: ImageScaleRestore V2", image=image, scale=0.55,
                                         method="bilinear", scale_by=scale_by, scale_by_length=max(length, 4),
                                         mask=mask)
    length = max(length, 4)
    expected = {"by_scale": (int(40 * 0.55), int(30 * 0.55)), "longest": (length, int(length * 30 / 40)),
                "shortest": (int(length * 40 / 30), length), "width": (length, int(length * 30 / 40)),
                "height": (int(length * 40 / 30), length)}
    if scale_by == "total_pixel(kilo pixel)":
        tw = (40 / 30 * length * 1000) ** 0.5
        expected[scale_by] = (int(tw), int(tw / (40 / 30)))
    ew, eh = (max(v, 4) for v in expected[scale_by])
    assert (w, h, original) == (ew, eh, [40, 30])
    assert torch.equal(out, tensor(pil(image[0]).resize((ew, eh), Image.BILINEAR)))
    assert torch.equal(out_mask, tensor(pil(mask[0]).resize((ew, eh), Image.BILINEAR)))
    back = node(registry, "LayerUtility: ImageScaleRestore V2", image=out, scale=1.0, method="lanczos",
                scale_by="by_scale", scale_by_length=1024, original_size=original)
    assert back[0].shape == (1, 30, 40, 3) and torch.equal(back[1], torch.ones(1, 30, 40))


def test_crop_by_mask_v2_and_restore_crop_box_as_the_pack(registry):
    image, mask = rand(2, 60, 80, 3), torch.zeros(1, 60, 80)
    mask[0, 20:31, 30:47] = 1
    crops, mask_crop, box, preview = node(registry, "LayerUtility: CropByMask V2", image=image, mask=mask,
                                          invert_mask=False, detect="mask_area", top_reserve=5, bottom_reserve=5,
                                          left_reserve=40, right_reserve=3, round_to_multiple="16")
    # the pack's box: pixels above 127 span x 30..46, y 20..30 (width / height counted one short)
    x, y, w, h = 30, 20, 16, 10
    x1, y1, x2, y2 = max(x - 40, 0), max(y - 5, 0), min(x + w + 3, 80), min(y + h + 5, 60)
    bw, bh = -(-(x2 - x1) // 16) * 16, -(-(y2 - y1) // 16) * 16
    x1, y1 = x1 - (bw - (x2 - x1)) // 2, y1 - (bh - (y2 - y1)) // 2
    assert box == [x1, y1, x1 + bw, y1 + bh]
    assert crops.shape == (2, bh, bw, 3) and torch.equal(crops[1:2], tensor(pil(image[1]).crop(tuple(box))))
    assert torch.equal(mask_crop[0], tensor(pil(mask[0]).crop(tuple(box)))[0])
    from PIL import ImageDraw
    expected_preview = pil(mask[0]).convert("RGB")
    ImageDraw.Draw(expected_preview).rectangle((x, y, x + w, y + h), outline="#F00000", width=(w + h) // 100)
    ImageDraw.Draw(expected_preview).rectangle(tuple(box), outline="#00F000", width=(bw + bh) // 200)
    assert torch.equal(preview, tensor(expected_preview))
    edited = 1 - crops
    restored, area = node(registry, "LayerUtility: RestoreCropBox", background_image=image, croped_image=edited,
                          invert_mask=False, crop_box=box, croped_mask=mask_crop)
    for i in range(2):
        canvas = pil(image[i])
        canvas.paste(pil(edited[i]), box=tuple(box), mask=pil(mask_crop[0]))
        assert torch.equal(restored[i:i + 1], tensor(canvas))
    expected_area = Image.new("L", (80, 60), "black")
    expected_area.paste(pil(mask_crop[0]), box=tuple(box))
    assert torch.equal(area[0], tensor(expected_area)[0])
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: CropByMask V2", image=image, mask=mask, invert_mask=False,
             detect="max_inscribed_rect", top_reserve=0, bottom_reserve=0, left_reserve=0, right_reserve=0,
             round_to_multiple="None")
    assert e.value.input == "detect"
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: RestoreCropBox", background_image=image, croped_image=edited[:, :4],
             invert_mask=False, crop_box=box)
    assert e.value.input == "croped_image"


def test_extend_canvas_v2_as_the_pack(registry):
    image, mask = rand(1, 10, 12, 3), box_mask(10, 12)
    out, out_mask = node(registry, "LayerUtility: ExtendCanvasV2", image=image, invert_mask=False, top=3, bottom=-2,
                         left=5, right=1, color="#FF0000", mask=mask)
    canvas, mask_canvas = Image.new("RGB", (18, 11), "#FF0000"), Image.new("L", (18, 11), "black")
    canvas.paste(pil(image[0]), box=(5, 3))
    mask_canvas.paste(pil(mask[0]), box=(5, 3))
    assert torch.equal(out, tensor(canvas)) and torch.equal(out_mask, tensor(mask_canvas))
    graph = {"1": {"class_type": "LayerUtility: ColorImage", "inputs": {"width": 64, "height": 48, "color": "#FFF"}},
             "2": {"class_type": "LayerUtility: ExtendCanvasV2",
                   "inputs": {"image": ["1", 0], "invert_mask": True, "top": 99999, "bottom": 0, "left": 99999,
                              "right": 0, "color": "#000000"}}}
    result = Executor(registry, limits=RunLimits(max_pixels=4096 * 4096)).run(parse_workflow(graph, registry),
                                                                              outputs=["2"])
    assert result.status == "invalid"


def test_data_nodes_as_the_pack(registry):
    assert node(registry, "LayerUtility: Integer", int_value=-7) == (-7, "-7")
    assert node(registry, "LayerUtility: Float", float_value=2.5) == (2.5, "2.5")
    assert node(registry, "LayerUtility: Boolean", bool_value=True) == (True, "True")
    assert node(registry, "LayerUtility: Seed", seed=12345) == 12345
    assert node(registry, "LayerUtility: String", string="x") == "x"
    assert node(registry, "LayerUtility: StringCondition", text="a cat", condition="include", sub_string="cat") == \
        (True, "True")
    assert node(registry, "LayerUtility: StringCondition", text="a cat", condition="equal", sub_string="cat") == \
        (False, "False")
    for op, expected in (("==", 3 == 4), ("<", 3 < 4), ("xor", not 3 == 4), ("not(a)", not 3), ("max", 4),
                         ("and", 3 and 4)):
        assert node(registry, "LayerUtility: BooleanOperator", a=3, b=4, operator=op) == expected, op
    # V2: the first number in the text, whole where whole; a linked value wins
    assert node(registry, "LayerUtility: BooleanOperatorV2", a_value="w=2.0px", b_value="", operator=">") == \
        (True, "True")
    assert node(registry, "LayerUtility: NumberCalculatorV2", a_value="size 7", b_value="-2e0", operator="//",
                b=None) == (7 // -2, float(7 // -2), str(7 // -2))
    assert node(registry, "LayerUtility: NumberCalculatorV2", a_value="1.5", b_value="9", operator="*", b=2) == \
        (int(1.5 * 2), 3.0, "3.0")
    for op, expected in (("+", 7 + 2), ("/", 7 / 2), ("**", 7 ** 2), ("%", 7 % 2), ("nth_root", 7 ** (1 / 2)),
                         ("min", 2)):
        assert node(registry, "LayerUtility: NumberCalculator", a=7, b=2, operator=op) == \
            (int(expected), float(expected)), op
    assert node(registry, "LayerUtility: NumberCalculator", a=7, b=0, operator="/") == (0, 0.0)
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: NumberCalculator", a=7, b=10**6, operator="**")
    assert e.value.input == "b" and "too big" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: NumberCalculator", a=7, b=0, operator="%")
    assert e.value.input == "b"
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: NumberCalculator", a="x", b=1, operator="+")
    assert e.value.input == "a"
    assert node(registry, "LayerUtility: If ", if_condition=0, when_TRUE="yes", when_FALSE="no") == "no"
    assert node(registry, "LayerUtility: SwitchCase", switch_condition="b", case_1="a", case_2="b", case_3="b",
                input_default=0, input_1=1, input_2=None, input_3=3) == 3
    assert node(registry, "LayerUtility: ColorPicker", color="#FF8001", mode="DEC") == (255, 128, 1)
    assert node(registry, "LayerUtility: ColorPicker", color="#FF8001", mode="HEX") == "#FF8001"


@pytest.mark.parametrize("a_value, b_value, operator, at_fault", [
    # an out-of-range result names the operand that took it there: the larger, or a divisor under 1
    ("1000000000000000000", "20", "**", "a_value"),  # 10**360: too big for a float
    ("10", "5000", "**", "b_value"),  # 10**5000: a whole number float() refuses (too big for a float)
    ("1.5", "2000", "**", "b_value"),  # a float power past the float range
    ("1e308", "10", "*", "a_value"),  # 10**309 (1e308 reads as a whole number): too big for a float
    ("1", "1e-320", "/", "b_value"),  # inf, from dividing by a tiny number
    ("1e400", "1", "+", "a_value"),  # inf, from the text itself
    ("1000000000000000000", "10000", "**", "a_value"),  # 600,000 bits: refused before it is worked out
])
def test_number_calculator_refuses_results_it_cant_give_naming_the_input(registry, a_value, b_value, operator,
                                                                           at_fault):
    graph = {"1": {"class_type": "LayerUtility: NumberCalculatorV2",
                   "inputs": {"a_value": a_value, "b_value": b_value, "operator": operator}}}
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["1"])
    assert result.status == "error" and result.error["exception_type"] == "NodeInputError", result.error
    assert result.error["input"] == at_fault, result.error


def test_number_calculator_caps_whole_powers_and_products_by_bits(registry):
    from nodes.pack_nodes_pysssss import MAX_BITS
    big = 2 ** (MAX_BITS - 10)  # as another pack's node (pysssss' Math Expression) may give
    # the input named is the larger (the first of two the same size)
    for a, b, operator, at_fault in ((big, 2, "**", "a"), (big, big, "*", "a"), (2 ** 10, 9000, "**", "b"),
                                     (2 ** 20, big, "*", "b")):
        with pytest.raises(NodeInputError) as e:
            node(registry, "LayerUtility: NumberCalculator", a=a, b=b, operator=operator)
        assert e.value.input == at_fault and "bits" in str(e.value)
    # under the cap the pack's result stands
    assert node(registry, "LayerUtility: NumberCalculator", a=2 ** 500, b=2, operator="**") == \
        (2 ** 1000, float(2 ** 1000))


def test_a_seed_in_a_ui_save_reads_past_control_after_generate(registry):
    nodes = [ui_node(1, "LayerUtility: Seed", [42, "randomize"], outputs=[("seed", "INT", [1])]),
             ui_node(2, "LayerUtility: NumberCalculatorV2", ["", "8", "+"],
                     [("a", "*", 1, False), ("b", "*", None, False)],
                     [("int", "INT", []), ("float", "FLOAT", []), ("string", "STRING", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "INT"]])
    result = run_graph(registry, graph, outputs=["2"])
    assert result.values["2"] == (50, 50.0, "50")
    saved = {n["id"]: n for n in json.loads(json.dumps(export_ui(parse_workflow(graph, registry), registry)))["nodes"]}
    assert saved[1]["widgets_values"][0] == 42 and saved[2]["widgets_values"] == ["", "8", "+"]


def pil2cv2(picture):
    return cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2BGR)


def cv22pil(array):
    return Image.fromarray(cv2.cvtColor(array, cv2.COLOR_BGR2RGB))


@pytest.mark.parametrize("comfy_class,mode,values", [("LayerColor: HSV", "HSV", (40, -30, 25)),
                                                     ("LayerColor: RGB", "RGB", (100, -50, 0)),
                                                     ("LayerColor: YUV", "YCbCr", (-20, 10, 30)),
                                                     ("LayerColor: LAB", "LAB", (15, 0, -40))])
def test_channel_offsets_as_the_pack(registry, comfy_class, mode, values):
    image = torch.cat([rand(1, 9, 11, 3), rand(1, 9, 11, 1, seed=2)], dim=-1)  # RGBA: its alpha is kept
    names = {"HSV": "HSV", "RGB": "RGB", "YCbCr": "YUV", "LAB": "LAB"}[mode]
    out = node(registry, comfy_class, image=image, **dict(zip(names, values)))
    picture = pil(image[0])
    channels = []
    for index, (channel, offset) in enumerate(zip(picture.convert(mode).split(), values)):
        array = np.asarray(channel, np.int16)
        if offset:
            array = (array + offset) % 256 if mode == "HSV" and index == 0 else np.clip(array + offset, 0, 255)
        channels.append(Image.fromarray(array.astype(np.uint8)))
    expected = Image.merge("RGBA", (*Image.merge(mode, channels).convert("RGB").split(), picture.split()[-1]))
    assert torch.equal(out, tensor(expected))


def test_brightness_contrast_levels_exposure_temperature_as_the_pack(registry):
    from PIL import ImageEnhance
    image = rand(2, 9, 11, 3)
    for comfy_class in ("LayerColor: Brightness & Contrast", "LayerColor: BrightnessContrastV2"):
        out = node(registry, comfy_class, image=image, brightness=1.2, contrast=0.7, saturation=1.5)
        expected = ImageEnhance.Color(ImageEnhance.Contrast(ImageEnhance.Brightness(pil(image[1])).enhance(1.2))
                                      .enhance(0.7)).enhance(1.5)
        assert torch.equal(out[1:2], tensor(expected))
    out = node(registry, "LayerColor: Levels", image=image, channel="RGB", black_point=20, white_point=230,
               gray_point=1.4, output_black_point=10, output_white_point=240)
    img = pil2cv2(pil(image[0])).astype(np.float64)
    img = np.clip(255 * ((img - 20) / (230 - 20)), 0, 255)
    img = np.clip(255 * np.power(img / 255, 1.0 / 1.4), 0, 255)
    img = np.clip((img / 255) * (240 - 10) + 10, 0, 255)
    assert torch.equal(out[0:1], tensor(cv22pil(img.astype(np.uint8))))
    green = node(registry, "LayerColor: Levels", image=image, channel="green", black_point=20, white_point=230,
                 gray_point=1.4, output_black_point=10, output_white_point=240)
    assert torch.equal(green[0, ..., 1], out[0, ..., 1])
    assert torch.equal(green[0, ..., 0], tensor(pil(image[0]))[0, ..., 0])
    for exposure in (30, -40):
        out = node(registry, "LayerColor: Exposure", image=image, exposure=exposure)
        t = image[0:1].clone().numpy().astype(np.float32)
        more = t[:, :, :, :3] > 0
        t[:, :, :, :3][more] *= pow(2, exposure / 32)
        if exposure < 0:
            bp = -exposure / 250
            t = np.clip((t - bp) * (1 / (1 - bp)), 0.0, 1.0)
        assert torch.equal(out[0:1], tensor(pil(torch.from_numpy(t))))
    for temperature in (35.0, -60.0):
        out = node(registry, "LayerColor: ColorTemperature", image=image, temperature=temperature)
        t = temperature / -100
        values = np.array(Image.fromarray((image[1].numpy() * 255).astype(np.uint8))).astype(np.float32)
        if t > 0:
            values[:, :, 0] *= 1 + t
            values[:, :, 1] *= 1 + t * 0.4
        else:
            values[:, :, 0] *= 1 + t * 0.2
            values[:, :, 2] *= 1 - t
        expected = torch.from_numpy(np.clip(values, 0, 255).astype(np.uint8) / 255).float()
        assert torch.equal(out[1], expected)


def test_motion_blur_and_color_map_as_opencv(registry):
    image = rand(1, 24, 20, 3)
    out = node(registry, "LayerFilter: MotionBlur", image=image, angle=30, blur=2)
    angle, blur = 30 + 45, 2 * 5
    turn = cv2.getRotationMatrix2D((blur / 2, blur / 2), angle, 1)
    kernel = cv2.warpAffine(np.diag(np.ones(blur)), turn, (blur, blur)) / blur
    blurred = cv2.filter2D(np.array(pil2cv2(pil(image[0]))), -1, kernel)
    cv2.normalize(blurred, blurred, 0, 255, cv2.NORM_MINMAX)
    assert torch.equal(out, tensor(cv22pil(np.array(blurred, dtype=np.uint8))))
    out = node(registry, "LayerFilter: ColorMap", image=image, color_map="viridis", opacity=60)
    mapped = cv22pil(cv2.applyColorMap(pil2cv2(pil(image[0])), cv2.COLORMAP_VIRIDIS))
    assert torch.equal(out, tensor(Image.blend(mapped, pil(image[0]), 1 - 60 / 100)))


def pack_min_bounding_rect(mask_picture):
    """The pack's mask2image, blur 20 and min_bounding_rect, with its own OpenCV calls."""
    white, black = Image.new("RGBA", mask_picture.size, "white"), Image.new("RGBA", mask_picture.size, "black")
    blurred = Image.composite(white, black, mask_picture).filter(ImageFilter.GaussianBlur(radius=20)).convert("L")
    gray = cv2.cvtColor(pil2cv2(blurred), cv2.COLOR_BGR2GRAY)
    _, thresh = cv2.threshold(gray, 127, 255, 0)
    contours, _ = cv2.findContours(thresh, 1, 2)
    x, y, width, height, area = 0, 0, 0, 0, 0
    for contour in contours:
        _x, _y, _w, _h = cv2.boundingRect(contour)
        if _w * _h > area:
            area, (x, y, width, height) = _w * _h, (_x, _y, _w, _h)
    return x, y, width, height


def test_crop_by_mask_v1_with_min_bounding_rect(registry):
    image, mask = rand(1, 180, 200, 3), torch.zeros(1, 180, 200)
    mask[0, 30:130, 50:163] = 1
    mask[0, 140:175, 5:60] = 1  # a smaller patch: the largest contour wins
    crops, mask_crop, box, preview = node(registry, "LayerUtility: CropByMask", image=image, mask_for_crop=mask,
                                          invert_mask=False, detect="min_bounding_rect", top_reserve=4,
                                          bottom_reserve=4, left_reserve=4, right_reserve=200)
    x, y, w, h = pack_min_bounding_rect(pil(mask[0]))
    assert w > 0 and h > 0
    w, h = pack_round(w, 8), pack_round(h, 8)
    expected_box = [max(x - 4, 0), max(y - 4, 0), min(x + w + 200, 200), min(y + h + 4, 180)]
    assert box == expected_box
    assert torch.equal(crops, tensor(pil(image[0]).crop(tuple(box))))
    assert torch.equal(mask_crop, tensor(pil(mask[0]).crop(tuple(box))))
    from PIL import ImageDraw
    expected_preview = pil(mask[0]).convert("RGB")
    ImageDraw.Draw(expected_preview).rectangle((x, y, x + w, y + h), outline="#F00000", width=(w + h) // 100)
    ImageDraw.Draw(expected_preview).rectangle(tuple(box), outline="#00F000", width=(w + h) // 200)
    assert torch.equal(preview, tensor(expected_preview))
    v2 = node(registry, "LayerUtility: CropByMask V2", image=image, mask=mask, invert_mask=False,
              detect="min_bounding_rect", top_reserve=0, bottom_reserve=0, left_reserve=0, right_reserve=0,
              round_to_multiple="None")
    bx, by, bw, bh = pack_min_bounding_rect(pil(mask[0]))
    assert v2[2] == [bx, by, bx + bw, by + bh]


@pytest.mark.parametrize("size,ratio,longest", [((40, 30), "16:9", False), ((30, 40), "2:3", True),
                                                ((40, 30), "3:4", True), ((30, 40), "custom", False)])
def test_scale_by_aspect_ratio_v1_sizes_as_the_pack(registry, size, ratio, longest):
    width, height = size
    image = rand(1, height, width, 3)
    out, _, original, w, h = node(registry, "LayerUtility: ImageScaleByAspectRatio", aspect_ratio=ratio,
                                  proportional_width=2, proportional_height=1, fit="fill", method="lanczos",
                                  round_to_multiple="16", scale_to_longest_side=longest, longest_side=50, image=image)
    r = {"16:9": 16 / 9, "2:3": 2 / 3, "3:4": 3 / 4, "custom": 2.0}[ratio]
    if width > height:
        tw = 50 if longest else width
        th = int(tw / r)
    else:
        th = 50 if longest else height
        tw = int(th * r)
    if r < 1:
        _r = 50 / th if longest else height / th
        th = 50 if longest else height
        tw = int(tw * _r)
    tw, th = -(-tw // 16) * 16, -(-th // 16) * 16
    assert (w, h, original) == (tw, th, [width, height])
    assert torch.equal(out, tensor(pil(image[0]).resize((tw, th), Image.LANCZOS)))


def test_scale_restore_v1_and_extend_canvas_v1(registry):
    image = rand(1, 30, 40, 3)
    out, mask, original, w, h = node(registry, "LayerUtility: ImageScaleRestore", image=image, scale=0.5,
                                     method="nearest", scale_by_longest_side=True, longest_side=64)
    assert (w, h, original) == (64, int(64 * 30 / 40), [40, 30])
    assert torch.equal(out, tensor(pil(image[0]).resize((64, 48), Image.NEAREST)))
    assert torch.equal(mask, torch.ones(1, 48, 64))
    out, _, _, w, h = node(registry, "LayerUtility: ImageScaleRestore", image=image, scale=0.5, method="nearest",
                           scale_by_longest_side=False, longest_side=64)
    assert (w, h) == (20, 15)
    out, out_mask = node(registry, "LayerUtility: ExtendCanvas", image=image, invert_mask=True, top=2, bottom=0,
                         left=0, right=3, color="#0000FF")
    canvas = Image.new("RGB", (43, 32), "#0000FF")
    canvas.paste(pil(image[0]), box=(0, 2))
    assert torch.equal(out, tensor(canvas))
    assert out_mask[0, 2:, :40].min() == 1 and out_mask[0, :2].max() == 0 and out_mask[0, :, 40:].max() == 0


OLD_API = {
    "1": {"class_type": "LayerUtility: ColorImage", "inputs": {"width": 48, "height": 40, "color": "#808080"}},
    "2": {"class_type": "LayerUtility: ExtendCanvas", "inputs": {"image": ["1", 0], "invert_mask": True, "top": 8,
                                                                 "bottom": 8, "left": 0, "right": 0,
                                                                 "color": "#000000"}},
    "3": {"class_type": "LayerUtility: ImageScaleByAspectRatio", "inputs": {
        "aspect_ratio": "1:1", "proportional_width": 2, "proportional_height": 1, "fit": "letterbox",
        "method": "lanczos", "round_to_multiple": "8", "scale_to_longest_side": True, "longest_side": 32,
        "image": ["2", 0]}},
    "4": {"class_type": "LayerUtility: ImageScaleRestore", "inputs": {
        "image": ["3", 0], "scale": 1.0, "method": "lanczos", "scale_by_longest_side": False, "longest_side": 1024,
        "original_size": ["3", 2]}},
    "5": {"class_type": "LayerUtility: CropByMask", "inputs": {
        "image": ["4", 0], "mask_for_crop": ["2", 1], "invert_mask": False, "detect": "mask_area", "top_reserve": 0,
        "bottom_reserve": 0, "left_reserve": 0, "right_reserve": 0}},
}


def test_an_api_prompt_of_the_first_versions_runs_and_exports(registry):
    result = run_graph(registry, OLD_API, outputs=["3", "4", "5"])
    assert result.values["3"][3:] == (32, 32) and result.values["3"][2] == [48, 56]
    assert result.values["4"][0].shape == (1, 56, 48, 3)
    # the mask of the extended canvas is white where the picture is (rows 8..47): the crop keeps
    # that band (its width and height rounded to 8, as the first version does)
    assert result.values["5"][2] == [0, 8, 48, 48]
    api = export_api(parse_workflow(OLD_API, registry), registry)
    for node_id, entry in OLD_API.items():
        assert api[node_id]["class_type"] == entry["class_type"]
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_channel_split_and_merge_as_pil(registry):
    image = torch.cat([rand(2, 8, 10, 3), rand(2, 8, 10, 1, seed=4)], dim=-1)
    for mode in ("RGBA", "YCbCr", "LAB", "HSV"):
        channels = node(registry, "LayerUtility: ImageChannelSplit", image=image, mode=mode)
        picture = pil(image[1]).convert("RGBA")
        parts = picture.split() if mode == "RGBA" else (*picture.convert(mode).split(), Image.new("L", (10, 8)))
        for channel, part in zip(channels, parts):
            assert channel.shape == (2, 8, 10) and torch.equal(channel[1], tensor(part)[0])
        merged = node(registry, "LayerUtility: ImageChannelMerge", channel_1=channels[0], channel_2=channels[1],
                      channel_3=channels[2], mode=mode, channel_4=channels[3] if mode == "RGBA" else None)
        expected = Image.merge("RGBA", parts) if mode == "RGBA" else Image.merge(mode, parts[:3]).convert("RGB")
        assert torch.equal(merged[1:2], tensor(expected)), mode
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ImageChannelMerge", channel_1=channels[0], channel_2=channels[1][:, :4],
             channel_3=channels[2], mode="HSV")
    assert e.value.input == "channel_2"


def test_image_mask_scale_as_and_color_image_v2(registry):
    image, mask, target = rand(1, 30, 40, 3), rand(1, 30, 40, seed=1), torch.zeros(2, 24, 24, 3)
    out, out_mask, original, w, h = node(registry, "LayerUtility: ImageMaskScaleAsV2", scale_as=target,
                                         fit="letterbox", method="bilinear", background_color="#FF0000",
                                         image=image, mask=mask)
    assert (original, w, h) == ([40, 30], 24, 24)
    expected = Image.new("RGB", (24, 24), "#FF0000")
    expected.paste(pil(image[0]).resize((24, int(24 / 40 * 30)), Image.BILINEAR), box=(0, (24 - 18) // 2))
    assert torch.equal(out, tensor(expected))
    expected_mask = Image.new("RGB", (24, 24), "#FF0000")
    expected_mask.paste(pil(mask[0]).convert("RGB").resize((24, 18), Image.BILINEAR), box=(0, 3))
    assert torch.equal(out_mask, tensor(expected_mask.convert("L")))
    plain = node(registry, "LayerUtility: ImageMaskScaleAs", scale_as=mask[0], fit="crop", method="lanczos",
                 image=rand(1, 10, 10, 3))
    assert plain[0].shape == (1, 30, 40, 3) and plain[1] is None and plain[3:] == (40, 30)
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ImageMaskScaleAs", scale_as="x", fit="crop", method="lanczos", image=image)
    assert e.value.input == "scale_as"
    assert node(registry, "LayerUtility: ColorImage V2", size="768 x 512", custom_width=4, custom_height=4,
                color="#102030").shape == (1, 512, 768, 3)
    sized = node(registry, "LayerUtility: ColorImage V2", size="custom", custom_width=4, custom_height=4,
                 color="#102030", size_as=image)
    assert torch.equal(sized, tensor(Image.new("RGB", (40, 30), "#102030")))


def test_mask_stroke_and_mask_motion_blur_as_the_pack(registry):
    mask = box_mask()
    out = node(registry, "LayerMask: MaskStroke", mask=1 - mask, invert_mask=True, stroke_grow=2, stroke_width=6,
               blur=1)
    inner, outer = 2 - 3, 2 - 3 + 6
    expected = torch.clamp(tensor(expand(pil(mask[0]), outer, 1)) - tensor(expand(pil(mask[0]), inner, 1)), 0, 255)
    assert torch.equal(out, expected)
    blurred = node(registry, "LayerMask: MaskMotionBlur", mask=mask, invert_mask=False, blur=2, angle=12.5)
    length = 2 * 5
    turn = cv2.getRotationMatrix2D((length / 2, length / 2), 12.5 + 45, 1)
    kernel = cv2.warpAffine(np.diag(np.ones(length)), turn, (length, length)) / length
    result = cv2.filter2D(np.array(pil2cv2(pil(mask[0]))), -1, kernel)
    cv2.normalize(result, result, 0, 255, cv2.NORM_MINMAX)
    assert torch.equal(blurred, tensor(cv22pil(np.array(result, dtype=np.uint8)).convert("RGB").split()[0]))
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerMask: MaskMotionBlur", mask=mask, invert_mask=False, blur=9999, angle=0.0)
    assert e.value.input == "blur" and "too big" in str(e.value)
    # the cap counts three float64 kernels (two working copies, room for filter2D's buffers): 1400 × 5 squared
    # is 0.37 GiB once, 1.1 GiB for three
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerMask: MaskMotionBlur", mask=mask, invert_mask=False, blur=1400, angle=0.0)
    assert e.value.input == "blur" and "too big" in str(e.value)


def pack_shift(channel, distance_x, distance_y):
    """The pack's shift_image (non-cyclic), pixel by pixel, of an RGB picture, then made L."""
    width, height = channel.size
    out = Image.new("RGB", (width, height), "#000000")
    for x in range(width):
        for y in range(height):
            if x > -distance_x and y > -distance_y and x + distance_x < width and y + distance_y < height:
                out.putpixel((x, y), channel.getpixel((x + distance_x, y + distance_y)))
    return out.convert("L")


@pytest.mark.parametrize("mode,angle", [("RGB", 40.0), ("GBR", -2.5), ("BRG", 3.0)])
def test_channel_shake_as_the_pack(registry, mode, angle):
    import math
    image = rand(1, 14, 16, 3)
    out = node(registry, "LayerFilter: ChannelShake", image=image, distance=5, angle=angle, mode=mode)
    x, y = int(math.cos(angle) * 5), int(math.sin(angle) * 5)
    channels = dict(zip("RGB", pil(image[0]).split()))
    for c in "RGB":
        if mode.startswith(c):
            channels[c] = pack_shift(channels[c].convert("RGB"), -x, -y)
        if mode.endswith(c):
            channels[c] = pack_shift(channels[c].convert("RGB"), x, y)
    assert torch.equal(out, tensor(Image.merge("RGB", [channels[c] for c in "RGB"])))


def test_mask_edge_shrink_as_the_pack(registry):
    mask = torch.zeros(1, 40, 44)
    mask[0, 6:34, 8:38] = 1
    out = node(registry, "LayerMask: MaskEdgeShrink", mask=mask, invert_mask=False, shrink_level=3, soft=2,
               edge_shrink=1, edge_reserve=25)
    mask_picture = pil(mask[0])
    layer = Image.new("RGB", mask_picture.size, "white")
    glow_range = grow = 3 * 2
    for x in range(3):
        color = hex_steps((255, 255, 255), (0, 0, 0), 3, x)
        glow_mask = tensor(expand(mask_picture, -grow, 12 / (x + 0.1)))
        shade = chop(layer, Image.new("RGB", layer.size, color), "subtract", int((100 - 1) * x / 3 + 1))
        layer.paste(shade, mask=pil(1 - glow_mask).convert("L"))
        grow -= int(glow_range / 3)
    edge = pil(tensor(expand(mask_picture, -1, 0))).convert("RGB")
    layer = chop(layer, edge, "normal", 25)
    layer.paste(Image.new("RGB", layer.size, "black"), mask=ImageChops.invert(mask_picture))
    assert torch.equal(out, tensor(layer.split()[0]))


def test_mask_preview_and_purge_vram_run_in_a_graph(registry, tmp_folders):
    graph = {"1": {"class_type": "SolidMask", "inputs": {"value": 0.5, "width": 8, "height": 6}},
             "2": {"class_type": "LayerMask: MaskPreview", "inputs": {"mask": ["1", 0]}},
             "3": {"class_type": "LayerUtility: PurgeVRAM", "inputs": {"anything": ["1", 0], "purge_cache": True,
                                                                      "purge_models": True}}}
    result = run_graph(registry, graph, outputs=["2", "3"])
    shown = result.outputs["2"]["images"]
    assert len(shown) == 1
    with Image.open(tmp_folders.temp / shown[0]["subfolder"] / shown[0]["filename"]) as saved:
        assert saved.size == (8, 6) and np.asarray(saved.convert("L")).max() in (127, 128)


def test_purge_vram_offloads_idle_models_and_keeps_one_in_use(registry, fresh_manager):
    idle, running = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    fresh_manager.load(idle, "other", "idle")
    fresh_manager.load(running, "other", "running")
    with fresh_manager.use(running, "other", "running"):
        node(registry, "LayerUtility: PurgeVRAM", anything=1, purge_cache=True, purge_models=True)
        assert {c.name: c.state for c in fresh_manager.components.values()} == \
            {"idle": "offloaded", "running": "loaded"}


def test_color_balance_as_the_pack(registry):
    from scipy.interpolate import CubicSpline
    image = rand(1, 6, 7, 3)
    out = node(registry, "LayerColor: ColorBalance", image=image, cyan_red=0.4, magenta_green=-0.3, yellow_blue=0.1)
    img = tensor(pil(image[0]))
    original = 0.2126 * img[..., 0] + 0.7152 * img[..., 1] + 0.0722 * img[..., 2]
    for i, v in enumerate((0.4, -0.3, 0.1)):
        for center, most in ((0.15, 0.1), (0.5, 1), (0.8, 0.2)):
            cs = CubicSpline(*torch.tensor([[0, 0], [center, center + v * most], [1, 1]]).T)
            img[..., i] = torch.clamp(torch.from_numpy(cs(img[..., i])), 0, 1)
    img *= (original / (0.2126 * img[..., 0] + 0.7152 * img[..., 1] + 0.0722 * img[..., 2])).unsqueeze(-1)
    assert torch.equal(out, tensor(pil(img)))


def test_random_generators_as_pythons_random(registry):
    import random
    out = node(registry, "LayerUtility: RandomGeneratorV2", min_value=-5.0, max_value=20.0, least=3.0,
               float_decimal_places=2, seed=1234)
    random.seed(1234)
    while True:
        number = random.uniform(-5.0, 20.0)
        if abs(number) - 3.0 >= 0:
            break
    factor = random.uniform(3, 9)
    value = round(number / factor * factor, 2)
    assert out == (int(value), value, int(value) % 2 == 0)
    listed = node(registry, "LayerUtility: RandomGeneratorV2", min_value=-5.0, max_value=20.0, least=3.0,
                  float_decimal_places=2, seed=1234, image=rand(3, 2, 2, 3))
    assert listed == ([out[0]] * 3, [out[1]] * 3, [out[2]] * 3)
    first = node(registry, "LayerUtility: RandomGenerator", min_value=2.0, max_value=2.9, float_decimal_places=3,
                 fix_seed=True, image=rand(2, 2, 2, 3))
    assert first[0] == [2, 2] and first[1][0] == first[1][1] and 2.0 <= first[1][0] <= 2.9


def pack_gradient(start, end, width, height, angle):
    """The pack's imagefunc.gradient with its create_gradient line loop and rotate steps."""
    from PIL import ImageDraw
    def rgb(h):
        return tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))
    radius = int((width + height) / 4)
    g = Image.new("RGB", (radius, radius), rgb(start))
    draw = ImageDraw.Draw(g)
    s, e = rgb(start), rgb(end)
    for i in range(radius):
        row = tuple(int(s[c] * (radius - i) / radius + e[c] * i / radius) for c in range(3))
        draw.line((0, i, radius, i), fill=row)
    canvas = Image.new("RGB", (radius, radius * 3), start)
    canvas.paste(Image.new("RGB", (radius, radius), start), box=(0, 0, radius, radius))
    canvas.paste(g, box=(0, radius, radius, radius * 2))
    canvas.paste(Image.new("RGB", (radius, radius), end), box=(0, radius * 2, radius, radius * 3))
    canvas = canvas.resize((radius * 3, radius * 3))
    if angle not in (0, 360):
        turned = tensor(pil(tensor(canvas)[0]).rotate(angle, Image.BICUBIC, True, fillcolor=(0, 0, 0, 0)))
        canvas = pil(torch.stack([turned])).convert("RGB")
    center = int(canvas.width / 2)
    x, y = int(width / 3), int(height / 3)
    return canvas.crop((center - x, center - y, center + x, center + y)).resize((width, height))


@pytest.mark.parametrize("angle", [0, 30, -120])
def test_gradient_images_as_the_pack(registry, angle):
    out = node(registry, "LayerUtility: GradientImage", width=40, height=24, angle=angle, start_color="#FF8000",
               end_color="#0020C0")
    assert torch.equal(out, tensor(pack_gradient("#FF8000", "#0020C0", 40, 24, angle)))
    sized = node(registry, "LayerUtility: GradientImage V2", size="custom", custom_width=4, custom_height=4,
                 angle=angle, start_color="#FF8000", end_color="#0020C0", size_as=rand(1, 24, 40, 3))
    assert torch.equal(sized, out)
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: GradientImage", width=40, height=24, angle=angle, start_color="red",
             end_color="#0020C0")
    assert e.value.input == "start_color"


@pytest.mark.parametrize("rotate,method,aa,mirror", [(0.0, "lanczos", 0, "None"), (33.5, "bilinear", 0, "horizontal"),
                                                     (-70.0, "lanczos", 2, "vertical")])
def test_image_blend_advance_as_the_pack(registry, rotate, method, aa, mirror):
    background, layer, mask = rand(1, 40, 48, 3), rand(1, 20, 16, 3, seed=1), box_mask(20, 16)
    out, out_mask = node(registry, "LayerUtility: ImageBlendAdvance", background_image=background, layer_image=layer,
                         invert_mask=False, blend_mode="screen", opacity=80, x_percent=30.0, y_percent=60.0,
                         mirror=mirror, scale=1.5, aspect_ratio=0.8, rotate=rotate, transform_method=method,
                         anti_aliasing=aa, layer_mask=mask)
    samplers = {"lanczos": (Image.LANCZOS, Image.BICUBIC), "bilinear": (Image.BILINEAR, Image.BILINEAR)}

    def turn(picture):  # the pack's __rotate_expand, through its tensors
        if rotate in (0.0, 360.0):
            return picture
        resize, rot = samplers[method]
        img = pil(tensor(picture)[0])
        if aa > 1:
            big = img.resize((img.width * aa, img.height * aa), resize).rotate(rotate, rot, True,
                                                                                fillcolor=(0, 0, 0, 0))
            return big.resize((big.width // aa, big.height // aa), resize)
        return img.rotate(rotate, rot, True, fillcolor=(0, 0, 0, 0))

    canvas, picture, mask_picture = pil(background[0]), pil(layer[0]), pil(mask[0]).convert("RGB")
    w, h = int(16 * 1.5), int(20 * 1.5 * 0.8)
    if mirror != "None":
        flip = Image.FLIP_LEFT_RIGHT if mirror == "horizontal" else Image.FLIP_TOP_BOTTOM
        picture, mask_picture = picture.transpose(flip), mask_picture.transpose(flip)
    picture = turn(picture.resize((w, h)).convert("RGB"))
    mask_picture = turn(mask_picture.resize((w, h)).convert("RGB")).convert("L")
    x, y = int(48 * 30.0 / 100 - picture.width / 2), int(40 * 60.0 / 100 - picture.height / 2)
    comp, comp_mask = canvas.copy(), Image.new("RGB", canvas.size, "black")
    comp.paste(picture, (x, y))
    comp_mask.paste(mask_picture, (x, y))
    comp_mask = comp_mask.convert("L")
    canvas.paste(chop(canvas, comp, "screen", 80), mask=comp_mask)
    assert torch.equal(out, tensor(canvas)) and torch.equal(out_mask, tensor(comp_mask))


def test_sharp_and_soft_gives_the_images_back_as_the_packs_code_does(registry):
    images = rand(2, 5, 6, 3)
    for enhance in ("very sharp", "sharp", "soft", "None"):
        assert node(registry, "LayerFilter: Sharp & Soft", images=images, enhance=enhance) is images


def test_sharp_and_soft_very_soft_is_the_packs_steps(registry):
    # the paper's guided filter (eps 0.02 is past OpenCV's near-singular rule, so it is OpenCV's too)
    from tests.test_pack_nodes_image_filters import paper_guided_filter
    images = rand(1, 40, 36, 3, seed=3)
    out = node(registry, "LayerFilter: Sharp & Soft", images=images, enhance="very soft")
    image = images[0].numpy()
    blurred = cv2.bilateralFilter(image, 31, 0.06 / 10, 31)  # filter_radius 15: d = 31
    guided = np.stack([paper_guided_filter(image, image[..., c], 31, 0.02) for c in range(3)], -1)
    guided = np.clip(guided, 0.001, 1)
    want = np.clip(((blurred / guided - 1) * 0.01 + 1) * guided - blurred + image, 0, 1)
    assert out.shape == images.shape and np.allclose(out[0].numpy(), want, atol=1e-4)
    with pytest.raises(NodeInputError) as e:  # OpenCV's bilateral filter takes 1 or 3 channels
        node(registry, "LayerFilter: Sharp & Soft", images=rand(1, 4, 4, 4), enhance="very soft")
    assert e.value.input == "images"


def test_mask_by_color_as_the_pack(registry):
    image = rand(1, 24, 20, 3)
    image[0, 4:12, 3:9] = torch.tensor([0.9, 0.2, 0.1])
    for fix_gap, invert in ((0, False), (2, True)):
        out = node(registry, "LayerMask: MaskByColor", image=image, color="#000000", color_in_HEX="#E6331A",
                   threshold=10, fix_gap=fix_gap, fix_threshold=0.75, invert_mask=invert)
        # the pack's create_mask_from_color_tensor, then its paste, invert and mask_fix
        temp = (torch.clamp(tensor(pil(image[0])).squeeze(), 0, 1.0) * 255.0).round().to(torch.int)
        color, spread = torch.tensor([0xE6, 0x33, 0x1A]), int(10 * 1.28)
        near = ((temp >= (color - spread).clamp(min=0).view(1, 1, 1, 3))
                & (temp <= (color + spread).clamp(max=255).view(1, 1, 1, 3))).all(dim=-1).float()
        inside = Image.new("L", (20, 24), "black")
        inside.paste(pil(near).convert("L"), mask=Image.new("L", (20, 24), "white"))
        mask = tensor(inside)
        if invert:
            mask = 1 - mask
        if fix_gap:
            m = mask[0].numpy().copy()
            cleaned = cv2.bilateralFilter(m, 9, 0.05, 8)
            alpha = np.clip((m - 0.75) / (1 - 0.75), 0, 1)
            rgb = m * alpha
            alpha = cv2.GaussianBlur(alpha, (3, 3), 0) * 0.99 + np.average(alpha) * 0.01
            rgb = cv2.GaussianBlur(rgb, (3, 3), 0) * 0.99 + np.average(rgb) * 0.01
            rgb = rgb / np.clip(alpha, 0.00001, 1) * 0.75
            cleaned = np.clip(cleaned / rgb, 0, 1)
            gamma = cv2.dilate(cleaned * cleaned, np.ones((5, 5), np.uint8), iterations=1)
            gamma = cv2.erode(gamma, np.ones((7, 7), np.uint8), iterations=1)
            mask = torch.from_numpy(np.maximum(cleaned, cv2.GaussianBlur(gamma, (5, 5), 0)))[None]
        assert out.shape == (1, 24, 20)
        torch.testing.assert_close(out, mask, atol=0, rtol=0, equal_nan=True)
    assert out[0, 6, 5] < 0.5  # the patch is the colour: inverted, it is dark


def test_hdr_effects_as_the_pack(registry):
    from PIL import ImageCms, ImageEnhance
    image = rand(1, 10, 12, 3)
    out = node(registry, "LayerFilter: HDREffects", image=image, hdr_intensity=0.8, shadow_intensity=0.4,
               highlight_intensity=0.6, gamma_intensity=0.9, contrast=0.2, enhance_color=0.5)
    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    lum, a, b = ImageCms.profileToProfile(pil(image[0]), srgb, lab, outputMode="LAB").split()
    base = np.array(lum, dtype=np.float32)
    s, h, hdr = 0.4 ** 2 * 0.8, 0.6 ** 2 * 0.8, 0.8
    shadow_mask, highlight_mask = np.clip((1 - (base / 255)) ** 2, 0, 1), np.clip((base / 255) ** 2, 0, 1)
    shadows = np.clip(base * (1 - shadow_mask * s), 0, 255)
    highlights = np.clip(base + (255 - base) * highlight_mask * h, 0, 255)
    adjusted = np.clip(shadows + highlights - base, 0, 255)
    final = np.clip(base * (1 - hdr) + adjusted * hdr, 0, 255).astype(np.uint8)
    rgb = ImageCms.profileToProfile(Image.merge("LAB", (Image.fromarray(final), a, b)), lab, srgb, outputMode="RGB")
    expected = ImageEnhance.Color(ImageEnhance.Contrast(rgb).enhance(1.2)).enhance(1 + 0.5 * 0.2)
    assert torch.equal(out, tensor(expected))
    # gamma_intensity is worked out by the pack and never used
    same = node(registry, "LayerFilter: HDREffects", image=image, hdr_intensity=0.8, shadow_intensity=0.4,
                highlight_intensity=0.6, gamma_intensity=0.0, contrast=0.2, enhance_color=0.5)
    assert torch.equal(same, out)


def test_skin_beauty_as_the_pack(registry):
    image = rand(1, 40, 44, 3)
    image[0, 10:30, 10:30] = image[0, 10:30, 10:30] * 0.3 + 0.7
    out, mask = node(registry, "LayerFilter: SkinBeauty", image=image, smooth=30, threshold=-10, opacity=80)
    canvas = pil(image[0])
    r = canvas.split()[0]
    # the pack's gray_threshold (Otsu), remove_background and get_image_bright_average
    _, otsu = cv2.threshold(cv2.cvtColor(pil2cv2(r), cv2.COLOR_BGR2GRAY), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    removed = Image.new("RGB", canvas.size, "#000000")
    removed.paste(r, mask=cv22pil(otsu).convert("L"))
    values = [int(v) for v in np.asarray(removed.convert("L")).ravel() if v > 1]
    auto = int(sum(values) / len(values)) - 16
    _, light = cv2.threshold(cv2.cvtColor(pil2cv2(canvas), cv2.COLOR_BGR2GRAY), auto - 10, 255, cv2.THRESH_TOZERO)
    light_mask = cv22pil(light).convert("L")
    blur = int((44 + 40) / 2000 * 30)
    factor = (30 / 50.0) ** 2
    img = cv2.cvtColor(pil2cv2(canvas), cv2.COLOR_BGR2RGB)
    img = cv2.bilateralFilter(src=img, d=int((44 + 40) / 256 * factor),
                              sigmaColor=max(1, float((44 + 40) / 256 * factor)),
                              sigmaSpace=max(1, float((44 + 40) / 160 * factor)))
    smoothed = cv22pil(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).filter(ImageFilter.GaussianBlur(radius=blur))
    smoothed = chop(canvas, smoothed, "normal", 80)
    light_mask = light_mask.filter(ImageFilter.GaussianBlur(radius=blur)).convert("L")
    canvas.paste(smoothed, mask=light_mask)
    assert torch.equal(out, tensor(canvas)) and torch.equal(mask, tensor(light_mask))


def test_a_left_out_class_says_why(registry):
    from graphflow.comfy_format import unknown_type_hint
    note = unknown_type_hint("LayerFilter: LightLeak")
    assert "from ComfyUI_LayerStyle," in note and "light-leak pictures" in note
    # the SAM / BiRefNet classes now live in ComfyUI_LayerStyle_Advance, under the same prefix
    for name in ("LayerMask: SegmentAnythingUltra V2", "LayerMask: BiRefNetUltraV2", "LayerMask: LoadBiRefNetModelV2"):
        note = unknown_type_hint(name)
        assert custom_pack(name) == "ComfyUI_LayerStyle_Advance", name
        assert "from ComfyUI_LayerStyle_Advance," in note and "segmentation model" in note, note
    # so do its other model classes, by whole name (the prefix alone would name ComfyUI_LayerStyle)
    for name, model in (("LayerMask: PersonMaskUltra V2", "MediaPipe"), ("LayerMask: BenUltra", "BEN"),
                        ("LayerUtility: Florence2Image2Prompt", "Florence-2"), ("LayerMask: SAM2VideoUltra", "SAM2"),
                        ("LayerUtility: JoyCaption2", "language")):
        note = unknown_type_hint(name)
        assert custom_pack(name) == "ComfyUI_LayerStyle_Advance", name
        assert "from ComfyUI_LayerStyle_Advance," in note and model in note, note
    assert custom_pack("LayerMask: SomeLaterClass") == "ComfyUI_LayerStyle"


@pytest.mark.parametrize("side,scale,offset,opacity", [("top", 100, 0, 100), ("bottom", 60, 3, 70),
                                                       ("left", 100, -4, 100), ("right", 150, -30, 50),
                                                       # ramps many times the box, worked on one line here
                                                       ("top", 9999, 5, 100), ("bottom", 3000, -2, 100),
                                                       ("left", 9999, 3, 80), ("right", 777, 0, 100),
                                                       ("top", 6, 0, 100)])
def test_mask_gradient_as_the_pack(registry, side, scale, offset, opacity):
    mask = torch.zeros(1, 30, 36)
    mask[0, 6:24, 8:30] = 1
    out = node(registry, "LayerMask: MaskGradient", mask=1 - mask, invert_mask=True, gradient_side=side,
               gradient_scale=scale, gradient_offset=offset, opacity=opacity)
    m = pil(mask[0])
    canvas, (width, height) = m.copy(), m.size
    g = pack_gradient("#000000", "#FFFFFF", width, height, 0)
    _, thresh = cv2.threshold(cv2.cvtColor(pil2cv2(m), cv2.COLOR_BGR2GRAY), 127, 255, 0)
    x, y, w, h = max((cv2.boundingRect(c) for c in cv2.findContours(thresh, 1, 2)[0]), key=lambda r: r[2] * r[3])
    black = "black"
    if side == "top":
        size = (width, h)
        g = g.transpose(Image.FLIP_TOP_BOTTOM).resize(size)
        if scale != 100:
            box = Image.new("RGB", size, black)
            box.paste(g.resize((width, int(h * scale / 100))), box=(0, 0))
            g = box
        if offset:
            box = Image.new("RGB", size, black)
            box.paste(g, box=(0, offset))
            box.paste(Image.new("RGB", size, "white"), box=(0, offset - h))
            g = box if offset <= h else Image.new("RGB", size, "white")
        canvas.paste(Image.new("RGB", size, black), box=(0, y), mask=g.convert("L"))
    elif side == "bottom":
        size = (width, h)
        g = g.resize(size)
        if scale != 100:
            box = Image.new("RGB", size, black)
            g2 = g.resize((width, int(h * scale / 100)))
            box.paste(g2, box=(0, h - g2.height))
            g = box
        if offset:
            box = Image.new("RGB", size, black)
            box.paste(g, box=(0, offset))
            box.paste(Image.new("RGB", size, "white"), box=(0, offset + h))
            g = box if offset >= -h else Image.new("RGB", size, "white")
        canvas.paste(Image.new("RGB", size, black), box=(0, y), mask=g.convert("L"))
    else:
        size = (w, height)
        g = g.transpose(Image.ROTATE_270 if side == "left" else Image.ROTATE_90).resize(size)
        if scale != 100:
            box = Image.new("RGB", size, black)
            g2 = g.resize((int(w * scale / 100), height))
            box.paste(g2, box=(0, 0) if side == "left" else (w - g2.width, 0))
            g = box
        if offset:
            box = Image.new("RGB", size, black)
            box.paste(g, box=(offset, 0))
            box.paste(Image.new("RGB", size, "white"), box=(offset - w if side == "left" else offset + w, 0))
            g = box
            if (side == "left" and offset > w) or (side == "right" and offset < -w):
                g = Image.new("RGB", size, "white")
        canvas.paste(Image.new("RGB", size, black), box=(x, 0), mask=g.convert("L"))
    if opacity < 100:
        canvas = Image.blend(canvas, m, 1 - opacity / 100)
    assert torch.equal(out, tensor(canvas))
    if side == "top" and scale == 6:  # 5 % of the 18-row box is no row: PIL's resize fails in the pack
        with pytest.raises(NodeInputError) as e:
            node(registry, "LayerMask: MaskGradient", mask=1 - mask, invert_mask=True, gradient_side=side,
                 gradient_scale=5, gradient_offset=offset, opacity=opacity)
        assert e.value.input == "gradient_scale"


def test_gradient_overlay_as_the_pack(registry):
    background, layer, mask = rand(1, 24, 30, 3), rand(1, 24, 30, 3, seed=1), box_mask(24, 30)
    out = node(registry, "LayerStyle: GradientOverlay", background_image=background, layer_image=layer,
               invert_mask=False, blend_mode="multply", opacity=90, start_color="#FFBF30", start_alpha=200,
               end_color="#FE0000", end_alpha=40, angle=25, layer_mask=mask)
    ramp = pack_gradient("#FFBF30", "#FE0000", 30, 24, 25.0)
    alpha = ImageChops.invert(pack_gradient("#C8C8C8", "#282828", 30, 24, 25.0)).convert("L")
    canvas, picture = pil(background[0]), pil(layer[0])
    comp = chop(picture, ramp, "multply", 90)
    comp.paste(picture, alpha)
    canvas.paste(comp, mask=pil(mask[0]))
    assert torch.equal(out, tensor(canvas))


def test_auto_adjust_as_the_pack(registry):
    from PIL import ImageEnhance
    image = rand(1, 12, 14, 3) * 0.6 + 0.2
    out = node(registry, "LayerColor: AutoAdjust", image=image, strength=70, brightness=-20, contrast=30,
               saturation=10, red=40, green=0, blue=-25)
    picture = pil(image[0])
    channels = []
    for c, balance in zip(picture.split(), (40, 0, -25)):
        img = np.asarray(c)
        hist, _ = np.histogram(img.reshape(-1), 256, (0, 256))
        bmin, bmax = np.min(np.where(hist > hist.sum() * 0.0005)), np.max(np.where(hist > hist.sum() * 0.0005))
        c = Image.fromarray((np.clip(img, bmin, bmax) - bmin) / (bmax - bmin) * 255).convert("L")
        if balance:
            gamma = 0.00005 * balance * balance - 0.01 * balance + 1
            table = np.round(np.array([np.power(x / 255.0, gamma) * 255.0 for x in range(256)])).astype(np.uint8)
            c = cv22pil(cv2.LUT(pil2cv2(c), table)).convert("L")
        channels.append(c)
    result = Image.merge("RGB", channels)
    result = ImageEnhance.Brightness(result).enhance(-20 / 100 + 1)
    result = ImageEnhance.Contrast(result).enhance(30 / 50 + 1)
    result = ImageEnhance.Color(result).enhance(10 / 50 + 1)
    # blend_modes' normal at 70 %, both opaque
    back, over = np.asarray(picture.convert("RGBA"), float) / 255, np.asarray(result.convert("RGBA"), float) / 255
    a_in, a_l = back[:, :, 3:], over[:, :, 3:] * 0.7
    rgb = (over[:, :, :3] * a_l + back[:, :, :3] * a_in * (1 - a_l)) / (a_l + a_in * (1 - a_l))
    expected = Image.fromarray(np.uint8(np.dstack((rgb, a_l + a_in * (1 - a_l))) * 255.0)).convert("RGB")
    assert torch.equal(out, tensor(expected))


def test_queue_stop_ends_the_run_or_passes_on(registry):
    graph = {"1": {"class_type": "LayerUtility: Integer", "inputs": {"int_value": 5}},
             "2": {"class_type": "LayerUtility: QueueStop", "inputs": {"any": ["1", 0], "mode": "continue",
                                                                       "stop": True}}}
    assert run_graph(registry, graph, outputs=["2"]).values["2"] == (5,)
    graph["2"]["inputs"]["mode"] = "stop"
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["2"])
    assert result.status == "interrupted", (result.status, result.error)
    # the run says QueueStop stopped it, not a user's interrupt
    assert "QueueStop stopped the run" in result.error["message"], result.error
