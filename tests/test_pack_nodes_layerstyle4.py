"""ComfyUI_LayerStyle's round-4 nodes (nodes/pack_nodes_layerstyle4.py): LUT Apply against a LUT of an affine
map (trilinear interpolation of it is exact) written out with the pack's 8-bit steps, and against colour's
lookup written out (tests/test_pack_nodes_essentials.py) for 1D and 3D LUTs of other domains; ICMask's layout
and fill against the pack's fit_image written out (OpenCV's cubic resize, the pack's call, for the picture;
the nearest-exact rule for masks); GetMainColors (+V2) against pictures of five flat colours whose areas are
known, and its blur against scikit-learn's KMeans of Pillow's blur; ColorName against known nearest names;
ColorImage V3 against the xkcd survey's published values; ImageReel (+Composit) against the pack's drawing
written out with Pillow; ImageTaggerSave (+V2) by the files written; LoadImagesFromPath against the pictures
written; ImageCompositeHandleMask against the pack's composite_layer and rounded_rect_gradient_mask_numpy
written out; DistortDisplace against displacement_image written out and the blend_modes package;
DrawRoundedRectangle against draw_rounded_rectangle written out; API prompts run through the executor."""

import datetime

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.workflow import parse_workflow
from nodes.pack_nodes import _core
from tests.test_pack_nodes_essentials import AFFINE, colour_reference, write_cube, write_table
from tests.test_pack_nodes_layerstyle import node, pil, rand, tensor


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


# -- LUT Apply -----------------------------------------------------------------------------------------------


@pytest.fixture
def luts(tmp_folders):
    folder = tmp_folders.models / "luts"
    folder.mkdir(parents=True)
    write_cube(folder / "affine.cube", 5, function=lambda c: AFFINE[0] @ c + AFFINE[1])
    return folder


def graded_levels(levels, log: bool, strength: int):
    """The pack's apply_lut on 8-bit levels: affine (the cube's map), log's powers, strength's blend, truncated."""
    x = levels / 255.0
    y = (x ** (1 / 2.2) if log else x) @ AFFINE[0].T + AFFINE[1]
    y = y ** 2.2 if log else y
    y = strength / 100 * y + (1 - strength / 100) * x
    return np.clip(255.0 * y, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("log,strength", [(False, 100), (True, 100), (False, 40)])
def test_lut_apply_grades_the_8_bit_picture(registry, luts, log, strength):
    image = rand(2, 5, 6, 3, seed=3)
    got = node(registry, "LayerColor: LUT Apply", image=image, LUT="affine.cube",
               color_space="log" if log else "linear", strength=strength)
    levels = np.clip(255.0 * image.numpy(), 0, 255).astype(np.uint8).astype(np.float64)
    want = graded_levels(levels, log, strength)
    assert got.shape == image.shape
    # exact but for a level whose value lands within float error of a whole number
    assert np.abs(got.numpy() * 255 - want).max() <= 1.0001
    assert np.mean(np.round(got.numpy() * 255) == want) > 0.97


def test_lut_apply_keeps_alpha_and_names_a_missing_file(registry, luts):
    image = rand(1, 4, 4, 4, seed=4)
    got = node(registry, "LayerColor: LUT Apply", image=image, LUT="affine.cube", color_space="linear", strength=100)
    levels = np.clip(255.0 * image.numpy(), 0, 255).astype(np.uint8)
    assert np.array_equal(np.round(got.numpy()[..., 3] * 255), levels[..., 3])
    assert np.abs(got.numpy()[..., :3] * 255 - graded_levels(levels[..., :3].astype(float), False, 100)).max() <= 1.0001
    for name in ("../luts/affine.cube", "/etc/passwd", "gone.cube"):  # past the choices' check: run() refuses too
        with pytest.raises(NodeInputError) as e:
            _core(registry.get("LayerColorLUTApply"), image=image, LUT=name, color_space="linear", strength=100)
        assert e.value.input == "LUT", name


@pytest.mark.parametrize("log", [False, True])
def test_lut_apply_scales_into_the_domain_of_a_1d_and_a_3d_lut(registry, luts, log):
    """The pack's steps on the 8-bit levels: colour's lookup (tests/test_pack_nodes_essentials.py's
    reference, the table clamped to the domain as the pack's clip_values) in the LUT's domain."""
    low, high = [0.2, 0.1, 0.25], [0.8, 0.9, 0.7]
    grid = np.linspace(0, 1, 7)
    # no channel is the identity: its levels would be whole numbers, where float noise picks the truncation
    curve = np.stack([0.05 + 0.9 * grid ** 2, 0.15 + 0.7 * grid, 0.95 - 0.6 * grid ** 0.5], axis=1)
    r, g, b = np.meshgrid(*[np.linspace(0, 1, 5)] * 3, indexing="ij")
    cube = np.stack([0.05 + 0.9 * r * g, 0.1 + 0.7 * b, 0.9 - 0.8 * r ** 2], axis=-1)
    write_table(luts / "curve.cube", curve, low, high)
    write_table(luts / "cube.cube", cube, low, high)
    image = rand(1, 6, 7, 3, seed=21)
    levels = np.clip(255.0 * image.numpy(), 0, 255).astype(np.uint8).astype(np.float64) / 255
    for name, table in (("curve.cube", curve), ("cube.cube", cube)):
        got = node(registry, "LayerColor: LUT Apply", image=image, LUT=name, color_space="log" if log else "linear",
                   strength=70)
        graded = 70 / 100 * colour_reference(levels, table, low, high, log, True) + (1 - 70 / 100) * levels
        want = np.clip(255.0 * graded, 0, 255).astype(np.uint8)
        assert np.abs(got.numpy() * 255 - want).max() <= 1.0001, name
        assert np.mean(np.round(got.numpy() * 255) == want) > 0.95, name


def test_lut_apply_log_of_a_domain_below_zero_gives_black_where_the_power_is_undefined(registry, luts):
    """DOMAIN_MIN -1: levels under 128 scale below 0, and their 1/2.2 power is NaN, which the pack's
    8-bit cast makes 0: the channel through a 1D LUT, the colour through a 3D one; the rest is the
    identity LUT's identity."""
    write_table(luts / "id1.cube", np.array([[-1.0] * 3, [1.0] * 3]), [-1] * 3, [1] * 3)
    corners = np.stack(np.meshgrid(*[np.array([-1.0, 1.0])] * 3, indexing="ij"), axis=-1)
    write_table(luts / "id3.cube", corners, [-1] * 3, [1] * 3)
    image = rand(1, 8, 8, 3, seed=22)
    levels = np.clip(255.0 * image.numpy(), 0, 255).astype(np.uint8)
    below = levels < 128
    for name, undefined in (("id1.cube", below), ("id3.cube", below.any(-1, keepdims=True) & np.ones_like(below))):
        got = np.round(node(registry, "LayerColor: LUT Apply", image=image, LUT=name, color_space="log",
                            strength=100).numpy() * 255)
        assert undefined.any() and (~undefined).any()
        assert (got[undefined] == 0).all(), name
        assert np.abs(got[~undefined] - levels[~undefined]).max() <= 1, name


# -- ICMask / ICMaskCropBack ----------------------------------------------------------------------------------


def nearest_exact(mask, width, height):
    """OpenCV's INTER_NEAREST_EXACT written out: destination pixel i reads source floor((i + 0.5) * src / dst)."""
    rows = np.floor((np.arange(height) + 0.5) * mask.shape[0] / height).astype(int)
    cols = np.floor((np.arange(width) + 0.5) * mask.shape[1] / width).astype(int)
    return mask[rows][:, cols]


def test_ic_mask_lays_a_wide_picture_over_its_patch(registry):
    # 40 × 20, output_length 200 -> 192: halves of 128 × 96 (wide: patch below); scaled by 3.2 to 128 × 64
    picture = torch.zeros(1, 20, 40, 3)
    picture[..., 0], picture[..., 1], picture[..., 2] = 0.25, 0.5, 0.75
    mask = torch.zeros(1, 20, 40)
    mask[0, 3:9, 5:22] = 1
    image, out_mask, layout = node(registry, "LayerUtility: ICMask", first_image=picture, patch_mode="auto",
                                   output_length=200, patch_color="#FF0000", first_mask=mask)
    assert image.shape == (1, 192, 128, 3) and out_mask.shape == (1, 192, 128)
    first, second = image[0, :96].numpy(), image[0, 96:].numpy()
    assert np.allclose(first[:16], 1) and np.allclose(first[80:], 1)  # centred on white
    assert np.allclose(first[16:80], [0.25, 0.5, 0.75], atol=1e-6)  # cubic of a flat picture: flat
    assert np.array_equal(second, np.broadcast_to(np.array([1.0, 0, 0], np.float32), second.shape))
    want_mask = np.zeros((96, 128), np.float32)
    want_mask[16:80] = nearest_exact(mask[0].numpy(), 128, 64)
    assert np.array_equal(out_mask[0, :96].numpy(), want_mask)
    assert np.array_equal(out_mask[0, 96:].numpy(), np.ones((96, 128)))  # no second mask: all white
    assert (layout.x_offset, layout.y_offset, layout.target_width, layout.target_height) == (0, 96, 128, 96)
    assert (layout.total_width, layout.total_height) == (128, 192)
    back = node(registry, "LayerUtility: ICMaskCropBack", image=image, icmask_data=layout)
    assert torch.equal(back, image[:, 96:192, :128])


def test_ic_mask_puts_a_second_picture_beside_a_tall_one(registry):
    first, second = rand(1, 30, 20, 3, seed=5), rand(2, 10, 16, 3, seed=6)
    second_mask = torch.zeros(1, 10, 16)
    second_mask[0, 2:5, 3:12] = 1
    image, mask, layout = node(registry, "LayerUtility: ICMask", first_image=first, patch_mode="auto",
                               output_length=130, patch_color="#FFFFFF", second_image=second,
                               second_mask=second_mask)
    # 130 -> 128: halves of 64 × 85 side by side; the first scaled by min(64/20, 85/30) to 56 × 85
    assert image.shape == (1, 85, 128, 3)
    want = np.ones((85, 64, 3), np.float32)
    want[:, 4:60] = cv2.resize(first[0].numpy(), (56, 85), interpolation=cv2.INTER_CUBIC)
    assert np.allclose(image[0, :, :64].numpy(), np.clip(want, 0, 1), atol=1e-6)
    # the second (its batch's first) by min(64/16, 85/10) = 4 to 64 × 40, 22 rows down
    want = np.ones((85, 64, 3), np.float32)
    want[22:62] = cv2.resize(second[0].numpy(), (64, 40), interpolation=cv2.INTER_CUBIC)
    assert np.allclose(image[0, :, 64:].numpy(), np.clip(want, 0, 1), atol=1e-6)
    want_mask = np.zeros((85, 64), np.float32)
    want_mask[22:62] = nearest_exact(second_mask[0].numpy(), 64, 40)
    assert np.array_equal(mask[0, :, 64:].numpy(), want_mask) and not mask[0, :, :64].any()
    assert (layout.x_offset, layout.y_offset, layout.target_width, layout.target_height) == (64, 0, 64, 85)
    back = node(registry, "LayerUtility: ICMaskCropBack", image=image, icmask_data=layout)
    assert torch.equal(back, image[:, :, 64:128])


def test_ic_mask_refuses_a_non_picture(registry):
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ICMask", first_image=torch.zeros(1, 4, 4), patch_mode="auto",
             output_length=128, patch_color="#FFFFFF")
    assert e.value.input == "first_image"
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ICMaskCropBack", image=torch.zeros(1, 4, 4, 3), icmask_data="layout")
    assert e.value.input == "icmask_data"


# -- GetMainColors (V2) ---------------------------------------------------------------------------------------

# five well-apart colours in columns of 10, 8, 6, 4 and 2 pixels of a 30 × 20 picture (no blur: (30 + 20) // 400)
FIVE = [(204, 51, 0), (0, 153, 255), (255, 255, 102), (51, 0, 153), (102, 204, 51)]
WIDTHS = [10, 8, 6, 4, 2]


def five_colours():
    columns = np.concatenate([np.tile(np.array(c, np.uint8), (20, w, 1)) for c, w in zip(FIVE, WIDTHS)], axis=1)
    return tensor(Image.fromarray(columns))


def close_to(hex_color, rgb):
    """The pack's centre * 255, truncated: within one level of the colour's."""
    got = [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]
    return hex_color == hex_color.upper() and all(abs(a - b) <= 1 for a, b in zip(got, rgb))


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
def test_get_main_colors_finds_the_five(registry, algorithm):
    preview, *colors = node(registry, "LayerUtility: GetMainColors", image=five_colours(),
                            k_means_algorithm=algorithm)
    assert sorted(sum(close_to(c, rgb) for c in colors) for rgb in FIVE) == [1] * 5
    assert preview.shape == (1, 640, 512, 3)
    for i, color in enumerate(colors):
        band = np.round(preview[0, 128 * i:128 * (i + 1)].numpy() * 255)
        assert (band == [int(color[j:j + 2], 16) for j in (1, 3, 5)]).all()


def test_get_main_colors_v2_orders_by_share_and_labels(registry):
    preview, *colors = node(registry, "LayerUtility: GetMainColorsV2", image=five_colours(),
                            k_means_algorithm="lloyd")
    assert all(close_to(c, rgb) for c, rgb in zip(colors, FIVE))  # most pixels first
    assert preview.shape == (1, 320, 512, 3)
    for i, color in enumerate(colors):
        band = np.round(preview[0, 64 * i:64 * (i + 1)].numpy() * 255)
        rgb = [int(color[j:j + 2], 16) for j in (1, 3, 5)]
        assert (band[:, :5] == rgb).all()  # left of the label
        light = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255 > 0.5
        label = [0, 0, 0] if light else [255, 255, 255]
        assert (band == label).all(axis=-1).sum() > 50  # the label in the contrasting colour


def test_get_main_colors_v2_blurs_a_picture_of_400_pixels_round(registry):
    """(300 + 120) // 400: a blur of radius 1 (Pillow's Gaussian) before the pack's KMeans, written
    out here; its blended edges move the centres off the five flat colours."""
    from sklearn.cluster import KMeans
    columns = np.concatenate([np.tile(np.array(c, np.uint8), (120, 10 * w, 1)) for c, w in zip(FIVE, WIDTHS)], axis=1)
    picture = Image.fromarray(columns)

    def centres(source):
        pixels = (np.asarray(source).astype(np.float32) / 255.0).reshape(-1, 3)
        kmeans = KMeans(n_clusters=5, algorithm="lloyd", max_iter=307, random_state=0).fit(pixels)
        counts = np.bincount(kmeans.labels_, minlength=5)
        order = sorted(range(5), key=lambda i: counts[i], reverse=True)
        return ["#" + "".join(f"{int(v):02X}" for v in kmeans.cluster_centers_[i] * 255) for i in order]

    _, *colors = node(registry, "LayerUtility: GetMainColorsV2", image=tensor(picture), k_means_algorithm="lloyd")
    assert colors == centres(picture.filter(ImageFilter.GaussianBlur(radius=1)))
    assert colors != centres(picture)


def test_get_main_colors_refuses_a_picture_of_under_five_pixels(registry):
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: GetMainColors", image=torch.rand(1, 2, 2, 3), k_means_algorithm="lloyd")
    assert e.value.input == "image"


# -- ColorName ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("color,palette,name", [
    ("#00FFFF", "css3", "cyan"),  # aqua's twin: the later name in the table
    ("#808080", "css3", "grey"), ("#7F7F7F", "css3", "grey"), ("#FE0101", "css3", "red"),
    ("#010101", "css3", "black"), ("#FF7F51", "css3", "coral"), ("#A9A9A9", "css3", "darkgrey"),
    ("#00FFFF", "html4", "aqua"), ("#7F7F7F", "html4", "gray"), ("#C0C0C1", "html4", "silver"),
    ("#F00", "html4", "red"),
    # the xkcd survey's published values (its rgb.txt): each names itself, and a step off still does
    ("#E50000", "xkcd", "red"), ("#15B01A", "xkcd", "green"), ("#0343DF", "xkcd", "blue"),
    ("#7E1E9C", "xkcd", "purple"), ("#FF81C0", "xkcd", "pink"), ("#653700", "xkcd", "brown"),
    ("#ACC2D9", "xkcd", "cloudy blue"), ("#E40101", "xkcd", "red"), ("#000000", "xkcd", "black"),
    ("#FFFFFF", "xkcd", "white"),
])
def test_color_name_is_the_nearest(registry, color, palette, name):
    assert node(registry, "LayerUtility: ColorName", color=color, palette=palette) == name


def test_color_name_table_and_refusals(registry):
    from nodes.pack_nodes_layerstyle4 import css3_names
    names = css3_names()
    assert len(names) == 147 and "rebeccapurple" not in names
    assert names[names.index("darkgray"):names.index("darkgray") + 3] == ["darkgray", "darkgrey", "darkgreen"]
    from nodes.pack_nodes_layerstyle4 import xkcd_colors
    table = xkcd_colors()
    assert len(table) == 949 and list(table)[:2] == ["cloudy blue", "dark pastel green"]
    assert list(table)[-1] == "purple" and table["macaroni and cheese"] == (0xEF, 0xB4, 0x35)
    for color, palette, input_name in [("#12345", "css3", "color"), ("red", "css3", "color")]:
        with pytest.raises(NodeInputError) as e:
            node(registry, "LayerUtility: ColorName", color=color, palette=palette)
        assert e.value.input == input_name


# -- ColorImage V3 ---------------------------------------------------------------------------------------------

COLOR_IMAGE = dict(size="custom", custom_width=6, custom_height=4, color="#123456")


@pytest.mark.parametrize("color_name,rgb,color", [
    ("cloudy blue", (0xAC, 0xC2, 0xD9), "#acc2d9"),  # the survey's published values
    ("macaroni and cheese", (0xEF, 0xB4, 0x35), "#efb435"),
    ("", (0x12, 0x34, 0x56), "#123456"), ("Cloudy Blue", (0x12, 0x34, 0x56), "#123456"),  # no such name: color
])
def test_color_image_v3_takes_an_xkcd_name_or_the_colour(registry, color_name, rgb, color):
    image, used = node(registry, "LayerUtility: ColorImage V3", color_name=color_name, **COLOR_IMAGE)
    assert image.shape == (1, 4, 6, 3) and used == color
    assert (np.round(image.numpy() * 255) == rgb).all()


def test_color_image_v3_sizes_and_refusals(registry):
    image, _ = node(registry, "LayerUtility: ColorImage V3", color_name="white",
                    **{**COLOR_IMAGE, "size": "768 x 512"})
    assert image.shape == (1, 512, 768, 3) and (image == 1).all()
    image, _ = node(registry, "LayerUtility: ColorImage V3", color_name="black", size_as=torch.zeros(2, 5, 3),
                    **COLOR_IMAGE)
    assert image.shape == (1, 5, 3, 3) and not image.any()
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ColorImage V3", color_name="", **{**COLOR_IMAGE, "color": "#12"})
    assert e.value.input == "color"


def test_color_image_v3_in_an_api_prompt_without_color_name_takes_the_colour(registry):
    prompt = {"1": {"class_type": "LayerUtility: ColorImage V3", "inputs": COLOR_IMAGE},
              "2": {"class_type": "LayerUtility: ColorImage V3", "inputs": {**COLOR_IMAGE, "color_name": "red"}}}
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["1", "2"])
    assert result.status == "success", (result.problems, result.error)
    assert result.values["1"][1] == "#123456" and result.values["2"][1] == "#e50000"
    assert (np.round(result.values["1"][0].numpy() * 255) == (0x12, 0x34, 0x56)).all()


def test_the_packs_later_classes_are_named_and_not_built(registry):
    from graphflow.comfy_format import LAYERSTYLE_LATER, LAYERSTYLE_LEFT_OUT, custom_pack
    assert registry.comfy_node("LayerUtility: ColorImage V3") is not None
    for name in LAYERSTYLE_LATER:
        assert custom_pack(name) == "ComfyUI_LayerStyle" and registry.comfy_node(name) is None, name
        assert name not in LAYERSTYLE_LEFT_OUT


# -- ImageReel / ImageReelComposit: the pack's drawing written out ---------------------------------------------


def pack_reel(pictures, texts, reel_height, border):
    scaled = []
    for picture in pictures:
        w = int(reel_height / picture.height * picture.width)
        scaled.append(picture.resize((w, reel_height), Image.LANCZOS))
    reel = Image.new("RGBA", (sum(p.width + border for p in scaled), reel_height + border), (0, 0, 0, 0))
    x = border // 2
    for p in scaled:
        reel.paste(p, (x, border // 2))
        x += p.width + border
    return reel, [[t, p.width] for t, p in zip(texts, scaled)]


def pack_levels(values, out_white):
    """imagefunc.adjust_levels(x, 0, 255, 0.5, 0, out_white): midtones 0.5 squares, then scaled to 0..out_white."""
    x = np.clip(255 * np.power(values.astype(np.float64) / 255, 1 / 0.5), 0, 255)
    return np.clip(x / 255 * out_white, 0, 255).astype(np.uint8)


def pack_composit(reels, font_path, font_size, border, theme):
    bg, fg = ("#E5E5E5", "#121212") if theme == "light" else ("#121212", "#E5E5E5")
    space = int(font_size * 1.5)
    width = max(r[0].width for r in reels)
    height = sum(r[0].height + space + border for r in reels)
    out = Image.new("RGB", (width, height), bg)
    font = ImageFont.truetype(str(font_path), font_size)
    y = 0
    for image, texts, reel_border in reels:
        band = Image.new("RGBA", (image.width, reel_border + int(font_size * 1.5)), (0, 0, 0, 0))
        draw = ImageDraw.Draw(band)
        x = reel_border
        for text, w in texts:
            draw.text((x + w // 2 - font.getbbox(text)[2] // 2, reel_border // 4), text, fill=fg, font=font)
            x += w + reel_border
        shadow = image.height // 80
        alpha = image.split()[3]
        blurred = Image.fromarray(pack_levels(np.asarray(alpha.filter(ImageFilter.GaussianBlur(shadow // 1.3))), 54))
        box = ((width - image.width) // 2, y)
        out.paste(Image.new("RGBA", image.size, "black"), (box[0] + shadow, box[1] + shadow), mask=blurred)
        out.paste(image, box, mask=alpha)
        out.paste(Image.new("RGB", band.size, fg), (box[0], box[1] + image.height), mask=band.split()[3])
        y += image.height + space + border
    return out


def test_image_reel_and_composit_draw_as_the_pack(registry, fonts):
    one, two, three = rand(2, 30, 40, 3, seed=7), rand(1, 50, 20, 3, seed=8), rand(1, 20, 20, 4, seed=9)
    # reels 88 and 176 high: shadows of 1 and 2 pixels (height // 80)
    reel_a = node(registry, "LayerUtility: ImageReel", image1=one, image1_text="cat", image2_text="dog",
                  image3_text="", image4_text="", reel_height=80, border=8, image2=two)
    want, texts = pack_reel([pil(one[0]), pil(one[1]), pil(two[0])], ["cat", "cat", "dog"], 80, 8)
    assert np.array_equal(np.asarray(reel_a.image), np.asarray(want)) and reel_a.texts == texts
    reel_b = node(registry, "LayerUtility: ImageReel", image1=three, image1_text="bird", image2_text="",
                  image3_text="", image4_text="", reel_height=160, border=16)
    want_b, texts_b = pack_reel([pil(three[0])], ["bird"], 160, 16)
    assert np.array_equal(np.asarray(reel_b.image), np.asarray(want_b))
    for theme in ("light", "dark"):
        got = node(registry, "LayerUtility: ImageReelComposit", reel_1=reel_a, font_file="aileron.ttf",
                   font_size=12, border=10, color_theme=theme, reel_2=reel_b)
        drawn = pack_composit([(want, texts, 8), (want_b, texts_b, 16)], fonts / "aileron.ttf", 12, 10, theme)
        assert got.shape == (1, drawn.height, drawn.width, 3)
        assert np.array_equal(np.round(got[0].numpy() * 255), np.asarray(drawn))


def test_image_reel_composit_refuses_what_is_not_a_reel(registry, fonts):
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ImageReelComposit", reel_1=torch.zeros(1, 4, 4, 3), font_file="aileron.ttf",
             font_size=12, border=10, color_theme="light")
    assert e.value.input == "reel_1"


# -- ImageTaggerSave (V2) -------------------------------------------------------------------------------------

TAGGER = dict(custom_path="", filename_prefix="comfyui", timestamp="None", format="png", quality=80, preview=False)


def test_image_tagger_save_numbers_its_files_in_the_outputs_folder(registry, tmp_folders):
    image = rand(2, 6, 5, 3, seed=10)
    node(registry, "LayerUtility: ImageTaggerSave", image=image, tag_text="a cat\n\n  \nsitting\n", **TAGGER)
    node(registry, "LayerUtility: ImageTaggerSave", image=image, tag_text="again", **TAGGER)
    out = tmp_folders.outputs
    assert sorted(p.name for p in out.iterdir()) == ["comfyui_00000001.png", "comfyui_00000001.txt",
                                                      "comfyui_00000002.png", "comfyui_00000002.txt"]
    assert (out / "comfyui_00000001.txt").read_text(encoding="utf-8") == "a cat\nsitting"
    assert np.array_equal(np.asarray(Image.open(out / "comfyui_00000001.png")), np.asarray(pil(image[0])))
    today = datetime.date.today().strftime("%Y-%m-%d")
    node(registry, "LayerUtility: ImageTaggerSave", image=image, tag_text="x",
         **{**TAGGER, "custom_path": "tags/%date", "format": "jpg"})
    assert sorted(p.name for p in (out / "tags" / today).iterdir()) == ["comfyui_00000001.jpg",
                                                                        "comfyui_00000001.txt"]
    for path in ("../elsewhere", "/tmp/elsewhere"):
        with pytest.raises(NodeInputError) as e:
            node(registry, "LayerUtility: ImageTaggerSave", image=image, tag_text="x",
                 **{**TAGGER, "custom_path": path})
        assert e.value.input == "custom_path"


def test_image_tagger_save_refuses_a_prefix_too_long_for_a_file_name(registry, tmp_folders):
    image = rand(1, 4, 4, 3, seed=10)
    for timestamp in ("None", "millisecond"):
        with pytest.raises(NodeInputError, match="too long") as e:
            node(registry, "LayerUtility: ImageTaggerSave", image=image, tag_text="x",
                 **{**TAGGER, "filename_prefix": "x" * 300, "timestamp": timestamp})
        assert e.value.input == "filename_prefix"
    assert not list(tmp_folders.outputs.iterdir())


class FixedClock(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2024, 5, 6, 7, 8, 9, 123456)


def test_image_tagger_save_numbers_a_taken_timestamp(registry, tmp_folders, monkeypatch):
    monkeypatch.setattr(datetime, "datetime", FixedClock)
    image = rand(1, 4, 4, 3, seed=10)
    for timestamp, stamp in (("second", "2024-05-06_07-08-09"), ("millisecond", "2024-05-06_07-08-09-123")):
        for _ in range(3):
            node(registry, "LayerUtility: ImageTaggerSave", image=image, tag_text="x",
                 **{**TAGGER, "timestamp": timestamp, "custom_path": timestamp})
        # the pack: ComfyUI's next number (1 here), raised by one before each try of a taken name
        assert sorted(p.name for p in (tmp_folders.outputs / timestamp).iterdir()) == [
            f"comfyui_{stamp}{suffix}.{kind}" for suffix in ("", "_00000002", "_00000003") for kind in ("png", "txt")]


def test_image_tagger_save_counts_from_comfyuis_number_in_the_outputs_folder(registry, tmp_folders):
    """The pack's counter is get_save_image_path's: ComfyUI-style names (`prefix_NNNNN_...`) in the
    outputs folder or the prefix's subfolder of it, whatever custom_path is; its own names
    (`prefix_NNNNNNNN.png`, no "_" after the number) are not counted, only skipped when taken."""
    out = tmp_folders.outputs
    (out / "comfyui_00005_.png").write_bytes(b"")
    (out / "comfyui_00000009.png").write_bytes(b"")
    (out / "sub").mkdir()
    (out / "sub" / "comfyui_00011_.png").write_bytes(b"")
    image = rand(1, 4, 4, 3, seed=10)
    node(registry, "LayerUtility: ImageTaggerSave", image=image, tag_text="x", **{**TAGGER, "custom_path": "tags"})
    node(registry, "LayerUtility: ImageTaggerSave", image=image, tag_text="x",
         **{**TAGGER, "custom_path": "tags", "filename_prefix": "sub/comfyui"})
    assert sorted(p.name for p in (out / "tags").iterdir()) == [
        "comfyui_00000006.png", "comfyui_00000006.txt", "comfyui_00000012.png", "comfyui_00000012.txt"]
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ImageTaggerSave", image=image, tag_text="x",
             **{**TAGGER, "filename_prefix": "../comfyui"})
    assert e.value.input == "filename_prefix"


def test_image_tagger_save_v2_takes_a_file_name(registry, tmp_folders):
    image = rand(1, 6, 5, 3, seed=11)
    args = dict(custom_path="", custom_filename="photo.jpeg", remove_custom_filename_ext=True,
                **{k: v for k, v in TAGGER.items() if k != "custom_path"})
    for tags in ("first", "second"):  # the same name again replaces the files, as the pack
        node(registry, "LayerUtility: ImageTaggerSaveV2", image=image, tag_text=tags, **args)
    out = tmp_folders.outputs
    assert sorted(p.name for p in out.iterdir()) == ["photo.png", "photo.txt"]
    assert (out / "photo.txt").read_text(encoding="utf-8") == "second"
    node(registry, "LayerUtility: ImageTaggerSaveV2", image=image, tag_text="x",
         **{**args, "remove_custom_filename_ext": False, "timestamp": "second"})
    assert any(p.name.startswith("photo.jpeg_") and p.name.endswith(".png") for p in out.iterdir())
    with pytest.raises(NodeInputError) as e:
        node(registry, "LayerUtility: ImageTaggerSaveV2", image=image, tag_text="x",
             **{**args, "custom_filename": "../up.png"})
    assert e.value.input == "custom_filename"
    before = sorted(out.iterdir())
    for name, message in ((".", "no name"), ("..", "no name"), (" ", "no name"), (" .  ", "no name"),
                          ("a:b", "drive name"), ("y" * 300, "too long")):
        for keep_ext in (False, True):
            with pytest.raises(NodeInputError, match=message) as e:
                node(registry, "LayerUtility: ImageTaggerSaveV2", image=image, tag_text="x",
                     **{**args, "custom_filename": name, "remove_custom_filename_ext": not keep_ext})
            assert e.value.input == "custom_filename", name
    assert sorted(out.iterdir()) == before


# -- a workflow -----------------------------------------------------------------------------------------------


def test_an_api_prompt_with_the_new_classes_runs(registry, tmp_folders):
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": 0x3366CC}},
        "2": {"class_type": "LayerUtility: ICMask", "inputs": {
            "first_image": ["1", 0], "patch_mode": "auto", "output_length": 192, "patch_color": "#00FF00"}},
        "3": {"class_type": "LayerUtility: ICMaskCropBack", "inputs": {"image": ["2", 0], "icmask_data": ["2", 2]}},
        "4": {"class_type": "LayerUtility: GetMainColorsV2", "inputs": {"image": ["3", 0],
                                                                        "k_means_algorithm": "lloyd"}},
        "5": {"class_type": "LayerUtility: ColorName", "inputs": {"color": ["4", 1], "palette": "html4"}},
        "6": {"class_type": "LayerUtility: ImageTaggerSave", "inputs": {"image": ["3", 0], "tag_text": ["5", 0],
                                                                        **TAGGER}},
    }
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["3", "5", "6"])
    assert result.status == "success", (result.problems, result.error)
    crop = result.values["3"][0]
    assert crop.shape == (1, 96, 128, 3) and torch.all(crop == torch.tensor([0.0, 1.0, 0.0]))  # the patch
    assert result.values["5"] == ("lime",)
    assert (tmp_folders.outputs / "comfyui_00000001.txt").read_text(encoding="utf-8") == "lime"


# -- LoadImagesFromPath ---------------------------------------------------------------------------------------


@pytest.fixture
def shots(tmp_folders):
    folder = tmp_folders.inputs / "shots"
    folder.mkdir()
    levels = np.arange(4 * 5 * 4, dtype=np.uint8).reshape(4, 5, 4) * 3
    Image.fromarray(levels, "RGBA").save(folder / "a.png")
    Image.fromarray(levels[..., :3]).save(folder / "b.png")
    frames = [Image.new("RGB", (6, 3), color) for color in ("red", "blue")]
    frames[0].save(folder / "c.gif", save_all=True, append_images=frames[1:])
    Image.new("RGB", (2, 2), "white").save(folder / "d.png")
    return folder, levels


def test_load_images_from_path_reads_every_nth_picture(registry, shots):
    folder, levels = shots
    images, masks, names, count = node(registry, "LayerUtility: LoadImagesFromPath", path="shots",
                                       image_load_cap=0, select_every_nth=2)
    assert names == ["a.png", "c.gif"] and count == 2
    assert np.array_equal(np.round(images[0][0].numpy() * 255), levels[..., :3])
    assert np.allclose(masks[0][0].numpy(), 1 - levels[..., 3] / 255, atol=1e-6)
    assert images[1].shape == (2, 3, 6, 3)  # the GIF's two frames
    assert np.allclose(images[1][1].numpy(), [0, 0, 1], atol=0.01)
    assert masks[1].shape == (2, 64, 64) and not masks[1].any()  # no alpha: ComfyUI's black 64 × 64
    images, masks, names, count = node(registry, "LayerUtility: LoadImagesFromPath", path="shots/",
                                       image_load_cap=3, select_every_nth=1)
    assert names == ["a.png", "b.png", "c.gif"] and count == 3


def test_load_images_from_path_stays_in_the_inputs_folder(registry, shots):
    folder, _ = shots
    (folder / "notes.txt").write_text("not a picture")
    for path in ("shots", "../outside", "/etc", "missing"):
        with pytest.raises(NodeInputError) as e:
            node(registry, "LayerUtility: LoadImagesFromPath", path=path, image_load_cap=0, select_every_nth=1)
        assert e.value.input == "path", path


# -- ImageCompositeHandleMask: the pack's composite_layer, box and rounded_rect_gradient_mask_numpy written out --


def pack_composite_layer(bg, layer, xc, yc, scale, rotate, aa, opacity):
    if aa > 1:
        layer = layer.resize((layer.width * aa, layer.height * aa), Image.LANCZOS)
    if scale != 1.0:
        layer = layer.resize((int(layer.width * scale), int(layer.height * scale)), Image.LANCZOS)
    if rotate != 0:
        layer = layer.rotate(rotate, expand=True, resample=Image.BICUBIC)
    if aa > 1:
        layer = layer.resize((layer.width // aa, layer.height // aa), Image.LANCZOS)
    r, g, b, a = layer.split()
    alpha = a.copy()
    if 0 <= opacity < 100:
        alpha = alpha.point(lambda i: int(i * opacity * 0.01))
        layer = Image.merge("RGBA", (r, g, b, alpha))
    left, top = int(xc - layer.width / 2), int(yc - layer.height / 2)
    out = bg.copy()
    out.alpha_composite(layer, (left, top))
    white = Image.new("L", alpha.size, "white")
    mask = Image.new("RGBA", out.size, "black")
    mask.alpha_composite(Image.merge("RGBA", (white, white, white, a)), (left, top))
    box = Image.new("RGBA", out.size, "black")
    box.alpha_composite(white.convert("RGBA"), (left, top))
    return out.convert("RGB"), mask.convert("L"), box.convert("L")


def pack_sdf(px, py, x1, y1, x2, y2, r):
    cx, cy, hw, hh = (x1 + x2) * 0.5, (y1 + y2) * 0.5, (x2 - x1) * 0.5, (y2 - y1) * 0.5
    dx, dy = px - cx, py - cy
    rc = np.where((dx < 0) & (dy < 0), r[0], np.where((dx > 0) & (dy < 0), r[1],
                                                      np.where((dx > 0) & (dy > 0), r[2], r[3])))
    dx2, dy2 = np.abs(dx) - (hw - rc), np.abs(dy) - (hh - rc)
    return np.hypot(np.maximum(dx2, 0), np.maximum(dy2, 0)) + np.minimum(np.maximum(dx2, dy2), 0) - rc


def pack_handle_mask(w, h, outer, inner, radius):
    outer = list(outer)
    if outer[0] <= 0:
        outer[0] = -radius
    if outer[1] <= 0:
        outer[1] = -radius
    if outer[2] >= w:
        outer[2] = w + radius
    if outer[3] >= h:
        outer[3] = h + radius
    px, py = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    ro = np.array([radius] * 4, np.float32)
    ri = np.array([radius // 2] * 4, np.float32)
    if outer[0] == inner[0]:
        ro[0] = ro[3] = ri[0] = ri[3] = 0
    if outer[2] == inner[2]:
        ro[1] = ro[2] = ri[1] = ri[2] = 0
    if outer[1] == inner[1]:
        ro[0] = ro[1] = ri[0] = ri[1] = 0
    if outer[3] == inner[3]:
        ro[3] = ro[2] = ri[3] = ri[2] = 0
    so, si = pack_sdf(px, py, *outer, ro), pack_sdf(px, py, *inner, ri)
    mask = np.zeros((h, w), np.float32)
    mask[si < 0] = 1.0
    between = ~((si < 0) | (so > 0))
    t = np.clip(1.0 - si[between] / (si[between] - so[between] + 1e-9), 0, 1)
    mask[between] = t * t * (3 - 2 * t)
    return (mask * 255).astype(np.uint8)


def round_up(n, m):
    return n if n % m == 0 else (n + m - 1) // m * m


HANDLE_ARGS = dict(invert_mask=True, opacity=100, x_percent=40.0, y_percent=55.0, scale=1.5, rotate=20.0,
                   mirror="horizontal", anti_aliasing=2, handle_detect="mask_area", top_handle=0.3, bottom_handle=0.2,
                   left_handle=0.5, right_handle=0.1, handle_mask_outradius=12, top_reserve=2, bottom_reserve=1,
                   left_reserve=3, right_reserve=0, round_to_multiple="8")


def test_image_composite_handle_mask_as_the_pack(registry):
    background, layer = rand(1, 60, 80, 3, seed=12), rand(1, 16, 20, 4, seed=13)
    layer[0, :3, :, 3] = 0  # a transparent strip: the mask's box is less than the layer's
    got = node(registry, "LayerUtility: ImageCompositeHandleMask", background_image=background, layer_image=layer,
               **HANDLE_ARGS)
    picture = pil(layer[0]).transpose(Image.FLIP_LEFT_RIGHT)
    image, mask, box = pack_composite_layer(pil(background[0]).convert("RGBA"), picture, 32, 33, 1.5, 20.0, 2, 100)
    assert np.array_equal(np.round(got[0][0].numpy() * 255), np.asarray(image))
    assert np.array_equal(np.round(got[1][0].numpy() * 255), np.asarray(mask))
    assert np.array_equal(np.round(got[2][0].numpy() * 255), np.asarray(box))
    ys, xs = np.nonzero(np.asarray(mask) > 127)
    # the reserves widen their own sides (the pack's left / top reserves move the far edges too)
    x1, y1 = max(xs.min() - 3, 0), max(ys.min() - 2, 0)
    x2, y2 = min(xs.max() + 0, 80), min(ys.max() + 1, 60)
    side = ((x2 - x1) + (y2 - y1)) // 2
    hx1, hx2, hy1, hy2 = int(x1 - 0.5 * side - 1), int(x2 + 0.1 * side + 1), int(y1 - 0.3 * side - 1), int(
        y2 + 0.2 * side + 1)
    hw, hh = round_up(hx2 - hx1, 8), round_up(hy2 - hy1, 8)
    hx1, hy1 = hx1 - (hw - (hx2 - hx1)) // 2, hy1 - (hh - (hy2 - hy1)) // 2
    hx2, hy2 = hx1 + hw, hy1 + hh
    if hx1 < 0:
        hx1, hx2 = 0, round_up(hx2, 8)
    if hx2 > 80:
        hx1, hx2 = hx2 - round_up(hx2 - hx1, 8), 80
    if hy1 < 0:
        hy1, hy2 = 0, round_up(hy2, 8)
    if hy2 > 60:
        hy1, hy2 = hy2 - round_up(hy2 - hy1, 8), 60
    assert got[4] == [hx1, hy1, hx2, hy2]
    want = pack_handle_mask(80, 60, (hx1, hy1, hx2, hy2), (x1, y1, x2, y2), 12)
    assert np.array_equal(np.round(got[3][0].numpy() * 255), want)
    sides = ("top," * (hy1 <= 0)) + ("bottom," * (hy2 >= 60)) + ("left," * (hx1 <= 0)) + ("right" * (hx2 >= 80))
    assert got[5] == (sides or "None")


def test_image_composite_handle_mask_with_a_layer_mask_past_the_edge(registry):
    background, layer = rand(1, 40, 40, 3, seed=14), rand(1, 12, 12, 3, seed=15)
    layer_mask = torch.zeros(1, 12, 12)
    layer_mask[0, 2:10, 3:9] = 1
    args = {**HANDLE_ARGS, "x_percent": 5.0, "y_percent": 95.0, "scale": 1.0, "rotate": 0.0, "mirror": "None",
            "anti_aliasing": 0, "invert_mask": False, "round_to_multiple": "None", "handle_detect": "layer_bbox"}
    got = node(registry, "LayerUtility: ImageCompositeHandleMask", background_image=background, layer_image=layer,
               layer_mask=layer_mask, **args)
    # the layer's box, 12 × 12 centred at (2, 38): columns -4..7, rows 32..43, cut at the picture
    want_box = np.zeros((40, 40))
    want_box[32:, :8] = 255
    assert np.array_equal(np.round(got[2][0].numpy() * 255), want_box)
    assert got[5] == "bottom,left,"  # the pack fails here without round_to_multiple
    assert got[4][0] == 0 and got[4][3] == 40


@pytest.mark.parametrize("outer,inner", [((100, 60, 300, 200), (140, 90, 260, 170)),  # inside the picture
                                         ((0, 0, 1024, 130), (10, 5, 1000, 120)),  # at its edges: pushed out
                                         ((40, 30, 90, 80), (95, 85, 60, 50))])  # the reserves crossed the box
def test_handle_gradient_is_the_packs_in_little_memory(outer, inner):
    import tracemalloc
    from nodes.pack_nodes_layerstyle4 import handle_gradient
    tracemalloc.start()
    try:
        got = handle_gradient((1024, 768), list(outer), inner, 12)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(np.asarray(got), pack_handle_mask(1024, 768, outer, inner, 12))
    assert peak < 12 * 1024 * 768  # the pack's float64 grids and distances: some 84 bytes a pixel


# -- DistortDisplace: the pack's displacement_image written out, its blends by the blend_modes package ---------


def pack_displacement(material, grey, strength, smoothness, aa):
    w, h = material.size
    grey = grey.convert("L")
    if smoothness:
        grey = grey.filter(ImageFilter.GaussianBlur(smoothness))
    if aa > 1:
        material, grey = material.resize((w * aa, h * aa), Image.LANCZOS), grey.resize((w * aa, h * aa), Image.LANCZOS)
    img, disp = np.asarray(material), np.asarray(grey).astype(np.float32)
    ys, xs = np.meshgrid(np.arange(disp.shape[0]), np.arange(disp.shape[1]), indexing="ij")
    offset = (disp / 255.0 * strength * aa).astype(np.int32)

    def mirror(c, size):
        c = np.where(c < 0, -c, c)
        return np.where(c >= size, 2 * size - c - 1, c)

    out = Image.fromarray(img[mirror(ys + offset, disp.shape[0]), mirror(xs + offset, disp.shape[1])], "RGB")
    if aa > 1:
        out = out.filter(ImageFilter.GaussianBlur(int(aa / 3))).resize((w, h), Image.LANCZOS)
    return out


def library_blend(function, back, layer, percent):
    backdrop = np.asarray(back.convert("RGBA"), dtype=float)
    source = np.asarray(layer.convert("RGBA"), dtype=float)
    return Image.fromarray(np.uint8(function(backdrop, source, percent / 100))).convert("RGB")


@pytest.mark.parametrize("strength,aa", [(30.0, 1), (-45.5, 3)])
def test_distort_displace_as_the_pack(registry, strength, aa):
    import blend_modes
    image, material = rand(1, 24, 20, 3, seed=16), rand(1, 24, 20, 3, seed=17)
    mask = torch.zeros(1, 12, 10)
    mask[0, 2:9, 1:6] = 1
    got, moved = node(registry, "LayerFilter: DistortDisplace", image=image, material_image=material,
                      distort_strength=strength, smoothness=2, anti_aliasing=aa, shadow_blend_mode="multiply",
                      shadow_strength=60, highlight_blend_mode="screen", highlight_strength=25, mask=mask)
    want_moved = pack_displacement(pil(material[0]), pil(image[0]), strength, 2, aa)
    assert np.array_equal(np.round(moved[0].numpy() * 255), np.asarray(want_moved))
    blended = library_blend(blend_modes.multiply, pil(image[0]), want_moved, 60)
    blended = library_blend(blend_modes.screen, blended, want_moved, 25)
    want = pil(image[0])
    want.paste(blended, mask=pil(mask[0]).resize((20, 24), Image.LANCZOS))
    assert np.array_equal(np.round(got[0].numpy() * 255), np.asarray(want))


def test_distort_displace_refuses_what_the_pack_fails_on(registry):
    image = torch.ones(1, 8, 8, 3)
    args = dict(smoothness=0, anti_aliasing=1, shadow_blend_mode="multiply", shadow_strength=50,
                highlight_blend_mode="screen", highlight_strength=0)
    for material, strength, input_name in [(torch.rand(1, 8, 9, 3), 10.0, "material_image"),
                                           (torch.rand(1, 8, 8, 3), 999.0, "distort_strength")]:
        with pytest.raises(NodeInputError) as e:
            node(registry, "LayerFilter: DistortDisplace", image=image, material_image=material,
                 distort_strength=strength, **args)
        assert e.value.input == input_name


# -- DrawRoundedRectangle: imagefunc.draw_rounded_rectangle written out -------------------------------------


def pack_rounded(width, height, radius, scale_factor):
    scale_factor = max(scale_factor, 1)
    img = Image.new("L", (width, height), "black").resize((width * scale_factor, height * scale_factor), Image.LANCZOS)
    r = radius * min(width, height) * 0.005
    ImageDraw.Draw(img).rounded_rectangle([0, 0, width * scale_factor, height * scale_factor], radius=r * scale_factor,
                                          fill="white")
    return img.filter(ImageFilter.SMOOTH_MORE).resize((width, height), Image.LANCZOS)


@pytest.mark.parametrize("radius,aa", [(50, 2), (100, 0), (0, 3)])
def test_draw_rounded_rectangle_as_the_pack(registry, radius, aa):
    got = node(registry, "LayerMask: DrawRoundedRectangle", rounded_rect_radius=radius, anti_aliasing=aa, width=40,
               height=24)
    assert got.shape == (1, 24, 40)
    assert np.array_equal(np.round(got[0].numpy() * 255), np.asarray(pack_rounded(40, 24, radius, aa)))
    if radius == 100:  # an ellipse: the corners black, the middle white
        assert got[0, 0, 0] == 0 and got[0, 12, 20] == 1
    sized = node(registry, "LayerMask: DrawRoundedRectangle", rounded_rect_radius=radius, anti_aliasing=aa, width=8,
                 height=8, size_as=torch.zeros(2, 24, 40, 3))
    assert torch.equal(sized, got)


def test_draw_rounded_rectangle_names_what_makes_it_too_big(registry):
    from graphflow.resource_limits import RunLimits

    def refused(**widgets):
        prompt = {"1": {"class_type": "LayerMask: DrawRoundedRectangle",
                        "inputs": {"rounded_rect_radius": 50, **widgets}}}
        result = Executor(registry, limits=RunLimits(ram_bytes=2 ** 24)).run(parse_workflow(prompt, registry),
                                                                             outputs=["1"])
        assert result.status == "error", widgets
        return result.error["input"], result.error["message"]

    # 512 × 512 fits in 16 MiB (3 MiB of IMAGE); drawn at 4 times the size (48 MiB) it does not
    got_input, message = refused(anti_aliasing=4, width=512, height=512)
    assert got_input == "anti_aliasing" and "4 times its size" in message and ",:" not in message
    got_input, message = refused(anti_aliasing=0, width=2048, height=2048)
    assert got_input == "width" and ",:" not in message
