"""ComfyUI_LayerStyle's round-3 nodes (nodes/pack_nodes_layerstyle3.py): TextImage and its V2 against the
pack's text_image.py / text_image_v2.py layouts written out here step by step (with the pack's global random
state, seeded as its random_numbers seeds it); the other classes against the pack's code written out here
(pixel loops where the pack loops), PIL, OpenCV, scipy, colorsys or the blend_modes package; the classes'
inputs and outputs as the pack's INPUT_TYPES / RETURN_NAMES; an API prompt and a UI save of the new classes
run through the executor (the save round-trips)."""

import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from graphflow.comfy_format import export_ui
from graphflow.executor import Executor
from graphflow.workflow import parse_workflow
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_layerstyle import node, pil, rand, tensor


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


# -- TextImage (V2): the pack's code, step by step -----------------------------------------------------------


def pack_random_numbers(total, random_range, seed):
    """imagefunc.random_numbers: seeds Python's global random state."""
    random.seed(seed)
    numbers = [random.randint(-random_range // 2, random_range // 2) for _ in range(total - 1)]
    avg = sum(numbers) // total
    ret = [i - avg for i in numbers]
    ret.append((0 - sum(ret)) // 2)
    return ret


def pack_text_image(v2, font_path, text, spacing, leading, horizontal_border, vertical_border, scale,
                    variation_range, variation_seed, layout, width, height, text_color, background_color):
    lines, max_char, table = [], 0, []
    for line in text.split("\n"):
        lines.append(line if line else " ")
        max_char = max(max_char, len(line))
    if layout == "vertical":
        char_size = min(width // len(lines), height // max_char)
    else:
        char_size = min(width // max_char, height // len(lines))
    if v2:
        char_size = int(char_size * scale / 100)
        char_size_h = int(char_size / width * height)
        spacing, leading = int(spacing * scale / 100), int(leading * scale / 100)
        text_width = char_size * max_char + spacing * (max_char - 1)
        text_height = char_size * len(lines) + leading * (len(lines) - 1)
        start_x = int((width - text_width) * horizontal_border / 100)
        start_y = int((height - text_height) * vertical_border / 100 - (char_size_h - char_size))
    else:
        spacing, leading = int(spacing * scale / 100), int(leading * scale / 100)
        char_size = max(char_size, 1)
        start_x = width - int(width * horizontal_border / 100) - char_size if layout == "vertical" \
            else int(width * horizontal_border / 100)
        start_y = int(height * vertical_border / 100)
    for i, line in enumerate(lines):
        _x, _y = start_x, start_y
        line_random = pack_random_numbers(len(line), int(char_size * variation_range / 25), variation_seed)
        for j, char in enumerate(line):
            offset = int((char_size + line_random[j]) * variation_range / 250)
            if v2:
                font_size = char_size + line_random[j]
            else:
                offset = int(offset * scale / 100)
                font_size = int((char_size + line_random[j]) * scale / 100)
            font_size = max(font_size, 4)
            axis_x = _x + offset // 3 if random.random() > 0.5 else _x - offset // 3
            axis_y = _y + offset // 3 if random.random() > 0.5 else _y - offset // 3
            table.append((char, (axis_x, axis_y), font_size))
            if layout == "vertical":
                _y += char_size + line_random[j] + spacing
            else:
                _x += char_size + line_random[j] + spacing
        if layout == "vertical":
            start_x -= leading * (i + 1) + char_size
        else:
            start_y += leading * (i + 1) + char_size
    mask = Image.new("RGB", (width, height), "black")
    draw = ImageDraw.Draw(mask)
    for char, axis, size in table:
        draw.text(axis, char, font=ImageFont.truetype(str(font_path), size), fill="white")
    canvas = Image.new("RGB", (width, height), background_color)
    canvas.paste(Image.new("RGB", (width, height), text_color), mask=mask.convert("L"))
    return Image.merge("RGBA", (*canvas.split(), mask.convert("L"))), mask.split()[0]


TEXT_ARGS = dict(text="Hello\n\nWorld of text", spacing=3, leading=4, horizontal_border=8.0, vertical_border=6.0,
                 scale=80.0, variation_range=0, variation_seed=7, layout="horizontal", width=120, height=90,
                 text_color="#FFA000", background_color="#102030")


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("changes", [{}, {"layout": "vertical", "leading": -2},
                                     {"variation_range": 60, "variation_seed": 12345, "scale": 120.0},
                                     {"variation_range": 100, "layout": "vertical", "horizontal_border": 50.0,
                                      "vertical_border": 50.0}])
def test_text_image_lays_out_and_draws_as_the_pack(registry, fonts, v2, changes):
    args = {**TEXT_ARGS, **changes}
    comfy_class = "LayerUtility: TextImage V2" if v2 else "LayerUtility: TextImage"
    image, mask = node(registry, comfy_class, font_file="aileron.ttf", **args)
    expected_image, expected_mask = pack_text_image(v2, fonts / "aileron.ttf", **args)
    assert image.shape == (1, 90, 120, 4) and mask.shape == (1, 90, 120)
    assert torch.equal(image, tensor(expected_image))
    assert torch.equal(mask, tensor(expected_mask))
    assert mask.max() > 0.5 and mask.min() == 0  # something drawn, something not


def test_text_image_repeats_and_its_seed_matters(registry, fonts):
    args = {**TEXT_ARGS, "variation_range": 80}
    first = node(registry, "LayerUtility: TextImage", font_file="aileron.ttf", **args)[1]
    again = node(registry, "LayerUtility: TextImage", font_file="aileron.ttf", **args)[1]
    other = node(registry, "LayerUtility: TextImage", font_file="aileron.ttf", **{**args, "variation_seed": 8})[1]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_text_image_takes_size_as_and_refuses_bad_input(registry, fonts):
    image, mask = node(registry, "LayerUtility: TextImage V2", font_file="aileron.ttf",
                       **{**TEXT_ARGS, "size_as": torch.zeros(2, 40, 70, 3)})
    assert image.shape == (1, 40, 70, 4) and mask.shape == (1, 40, 70)
    for bad, name in (({"text": "\n"}, "text"), ({"text_color": "#12"}, "text_color"),
                      ({"background_color": "nope"}, "background_color")):
        with pytest.raises(Exception) as e:
            node(registry, "LayerUtility: TextImage", font_file="aileron.ttf", **{**TEXT_ARGS, **bad})
        assert getattr(e.value, "input", None) == name
    (fonts / "broken.ttf").write_bytes(b"not a font")
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: TextImage", font_file="broken.ttf", **TEXT_ARGS)
    assert getattr(e.value, "input", None) == "font_file"


# -- boxes ---------------------------------------------------------------------------------------------------


def square_mask(height=60, width=80, box=(20, 10, 50, 40)):
    mask = torch.zeros(1, height, width)
    mask[0, box[1]:box[3], box[0]:box[2]] = 1.0
    return mask


@pytest.mark.parametrize("detect", ["mask_area", "min_bounding_rect"])
def test_mask_box_detect_finds_the_box_and_adjusts_it(registry, detect):
    preview, x_percent, y_percent, width, height, x, y, crop_box = node(
        registry, "LayerMask: MaskBoxDetect", mask=square_mask(), detect=detect, x_adjust=3, y_adjust=-2,
        scale_adjust=1.5)
    # the pack's blur (radius 5) keeps a sharp square's edges at half: the box is the square's (mask_area
    # counts width and height one short, OpenCV's bounding rect whole)
    found = 29 if detect == "mask_area" else 30
    assert (width, height) == (int(found * 1.5), int(found * 1.5))
    assert (x, y) == (20 - int((width - found) / 2) + 3, 10 - int((height - found) / 2) - 2)
    assert x_percent == round((x + width / 2) / 80 * 100, 2) and y_percent == round((y + height / 2) / 60 * 100, 2)
    assert crop_box == [x, y, x + found, y + found]
    assert preview.shape == (1, 60, 80, 3)
    assert tuple(pil(preview[0]).getpixel((x, y + 5))) == (0, 240, 0)  # the moved box's green line


def test_mask_box_detect_refuses_max_inscribed_rect(registry):
    with pytest.raises(Exception) as e:
        node(registry, "LayerMask: MaskBoxDetect", mask=square_mask(), detect="max_inscribed_rect", x_adjust=0,
             y_adjust=0, scale_adjust=1.0)
    assert getattr(e.value, "input", None) == "detect"


def test_mask_box_extend_and_crop_box_resolve(registry):
    mask, x_percent, y_percent, width, height, x, y, box = node(
        registry, "LayerMask: MaskBoxExtend", mask=square_mask(), crop_box=[20, 10, 50, 40], top_extend=10.0,
        bottem_extend=50.0, left_extend=100.0, right_extend=-20.0)
    # 30 × 30 box: top 3, bottom 15, left 30, right -6
    assert box == [-10, 7, 44, 55] and (x, y, width, height) == (-10, 7, 54, 48)
    expected = torch.zeros(1, 60, 80)
    expected[0, 7:55, 0:44] = 1.0
    assert torch.equal(mask, expected)
    assert x_percent == round(17 / 80 * 100, 2) and y_percent == round(31 / 60 * 100, 2)
    assert node(registry, "LayerUtility: CropBoxResolve", crop_box=[5, 6, 25, 46]) == (5, 6, 20, 40)
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: CropBoxResolve", crop_box="a box")
    assert getattr(e.value, "input", None) == "crop_box"


# -- batches, checks, shift, colour values -------------------------------------------------------------------


def test_batch_selector_picks_by_the_digits_in_select(registry):
    images, masks = rand(4, 6, 5, 3), rand(3, 6, 5, seed=1)
    image, mask = node(registry, "LayerUtility: BatchSelector", select="2, 0;9", images=images, masks=masks)
    assert torch.equal(image, images[[2, 0, 3]]) and torch.equal(mask, masks[[2, 0, 2]])
    image, mask = node(registry, "LayerUtility: BatchSelector", select="none")
    assert torch.equal(image, torch.zeros(1, 64, 64, 4)) and torch.equal(mask, torch.zeros(1, 64, 64))


def test_batch_selector_checks_the_picked_batch_against_memory(registry, monkeypatch):
    import nodes.pack_nodes_layerstyle as module
    asked = []
    monkeypatch.setattr(module, "check_run_memory", lambda name, what, images: asked.append((name, str(images))))
    node(registry, "LayerUtility: BatchSelector", select="0 " * 500, images=rand(2, 6, 5, 3), masks=rand(1, 6, 5))
    assert asked == [("select", "500 × 5×6"), ("select", "500 × 5×6")]


def test_check_mask_v2(registry):
    mask = torch.zeros(2, 40, 50)
    assert node(registry, "LayerUtility: CheckMaskV2", mask=mask, method="simple", white_point=1,
                area_percent=0.01) is False
    mask[0, :4, :5] = 0.5  # 20 of 2,000 pixels: 1 %, at 127
    check = dict(mask=mask, method="detect_percent")
    assert node(registry, "LayerUtility: CheckMaskV2", white_point=100, area_percent=0.9, **check) is True
    assert node(registry, "LayerUtility: CheckMaskV2", white_point=100, area_percent=1.0, **check) is False
    assert node(registry, "LayerUtility: CheckMaskV2", white_point=127, area_percent=0.0, **check) is False
    assert node(registry, "LayerUtility: CheckMaskV2", mask=mask[1:], method="simple", white_point=1,
                area_percent=0.01) is False  # only the first mask counts
    assert node(registry, "LayerUtility: CheckMaskV2", mask=mask, method="simple", white_point=1,
                area_percent=0.01) is True


def pack_shift(picture, distance_x, distance_y, background_color, cyclic):
    """imagefunc.shift_image, pixel by pixel."""
    width, height = picture.size
    out = Image.new("RGB", (width, height), background_color)
    for x in range(width):
        for y in range(height):
            if cyclic:
                orig_x, orig_y = x + distance_x, y + distance_y
                if orig_x > width - 1 or orig_x < 0:
                    orig_x = abs(orig_x % width)
                if orig_y > height - 1 or orig_y < 0:
                    orig_y = abs(orig_y % height)
                out.putpixel((x, y), picture.getpixel((orig_x, orig_y)))
            elif x > -distance_x and y > -distance_y and x + distance_x < width and y + distance_y < height:
                out.putpixel((x, y), picture.getpixel((x + distance_x, y + distance_y)))
    return out


@pytest.mark.parametrize("cyclic,shift", [(True, (7, -3)), (False, (5, 4)), (False, (-6, -2))])
def test_image_shift_as_the_pack(registry, cyclic, shift):
    images, mask = rand(2, 12, 16, 3), rand(2, 12, 16, seed=3)
    image, shifted_mask, border = node(registry, "LayerUtility: ImageShift", image=images, shift_x=shift[0],
                                       shift_y=shift[1], cyclic=cyclic, background_color="#336699",
                                       border_mask_width=2, border_mask_blur=1, mask=mask)
    distance = (-shift[0], -shift[1])
    for i in range(2):
        assert torch.equal(image[i:i + 1], tensor(pack_shift(pil(images[i]), *distance, "#336699", cyclic)))
    expected_mask = pack_shift(pil(mask[1]).convert("RGB"), *distance, "#000000", cyclic).split()[0]
    assert torch.equal(shifted_mask, tensor(expected_mask).expand(2, -1, -1))
    frame = ImageOps.expand(Image.new("L", (16, 12), "black"), border=2, fill="#FFFFFF").resize((16, 12))
    frame = pack_shift(frame, *distance, "#000000", cyclic).filter(ImageFilter.GaussianBlur(radius=1))
    assert torch.equal(border[1], tensor(frame.split()[0])[0])


@pytest.mark.parametrize("channels", [4, 3])
def test_image_shift_without_a_mask_shifts_the_last_alpha_or_white(registry, channels):
    images = rand(2, 12, 16, channels, seed=4)
    _, shifted_mask, _ = node(registry, "LayerUtility: ImageShift", image=images, shift_x=3, shift_y=2, cyclic=False,
                              background_color="#000000", border_mask_width=2, border_mask_blur=1)
    alpha = pil(images[1]).split()[-1] if channels == 4 else Image.new("L", (16, 12), "white")
    expected = pack_shift(alpha.convert("RGB"), -3, -2, "#000000", False).split()[0]
    assert torch.equal(shifted_mask, tensor(expected).expand(2, -1, -1))


def pack_hex_to_rgb(inhex):
    """imagefunc.Hex_to_RGB."""
    if len(inhex) == 4:
        inhex = "#" + "".join(c * 2 for c in inhex[1:])
    return int(inhex[1:3], 16), int(inhex[3:5], 16), int(inhex[5:], 16)


def pack_rgb2gray(color):
    """imagefunc.rgb2gray."""
    r, g, b = pack_hex_to_rgb(color)
    return int((r * 299 + g * 587 + b * 114) / 1000)


@pytest.mark.parametrize("color", ["#FF8000", "#F80", "#0a7Bc3", "#FFFFFF"])
def test_gray_and_rgb_values_as_the_pack(registry, color):
    gray = pack_rgb2gray(color)
    assert node(registry, "LayerUtility: GrayValue", color_value=color) == (gray, int(gray / 2.55))
    assert node(registry, "LayerUtility: RGB Value", color_value=color) == pack_hex_to_rgb(color)


def test_color_values_take_tuples_and_refuse_what_is_no_colour(registry):
    assert node(registry, "LayerUtility: RGB Value", color_value=(1, 2, 3)) == (1, 2, 3)
    assert node(registry, "LayerUtility: GrayValue", color_value=[0, 0, 255]) == (29, 11)
    # the pack reads "#ff00ff80" as blue 0xff80 and "#1234567" as blue 0x567: ours refuses both
    for comfy_class in ("LayerUtility: GrayValue", "LayerUtility: RGB Value", "LayerUtility: HSV Value"):
        for value in ("red", "#ff00ff80", "#1234567", "#12345", (0, 300, 0), (-1, 0, 0)):
            with pytest.raises(Exception) as e:
                node(registry, comfy_class, color_value=value)
            assert getattr(e.value, "input", None) == "color_value", (comfy_class, value)
    with pytest.raises(Exception) as e:
        node(registry, "LayerStyle: Gradient Map", image=rand(1, 4, 4, 3), start_color="#0000001",
             mid_color="#02AF9F", end_color="#7FFFEC", mid_point=0.5, opacity=100)
    assert getattr(e.value, "input", None) == "start_color"


def test_check_mask_counts_pixels_above_the_white_point(registry):
    mask = torch.zeros(1, 40, 50)
    mask[0, :5, :10] = 0.8  # 50 of 2,000 pixels: 2.5 %, at 204
    check = dict(mask=mask)
    assert node(registry, "LayerUtility: CheckMask", white_point=200, area_percent=2, **check) is True
    assert node(registry, "LayerUtility: CheckMask", white_point=200, area_percent=3, **check) is False
    assert node(registry, "LayerUtility: CheckMask", white_point=204, area_percent=1, **check) is False
    big = torch.zeros(1, 600, 600)
    big[0, :, :300] = 1.0  # scaled to 512 × 512 first: still half
    assert node(registry, "LayerUtility: CheckMask", mask=big, white_point=128, area_percent=49) is True
    assert node(registry, "LayerUtility: CheckMask", mask=big, white_point=128, area_percent=51) is False


@pytest.mark.parametrize("comfy_class", ["LayerUtility: CheckMask", "LayerUtility: CheckMaskV2"])
def test_check_mask_of_a_very_thin_mask(registry, comfy_class, monkeypatch):
    """300,000 × 1 scales to 512 × 1 (the pack's 512 × 0 fails); 1 × 300,000 to 512 × 153,600,000, checked
    first."""
    wide = torch.zeros(1, 1, 300000)
    wide[0, 0, :150000] = 1.0
    row = Image.fromarray(np.uint8(wide[0].numpy() * 255))
    half = np.mean(np.asarray(row.resize((512, 1), Image.LANCZOS)) > 128) * 100
    assert 45 < half < 55
    more = {"method": "detect_percent"} if comfy_class.endswith("V2") else {}
    assert node(registry, comfy_class, mask=wide, white_point=128, area_percent=int(half) - 1, **more) is True
    assert node(registry, comfy_class, mask=wide, white_point=128, area_percent=int(half) + 1, **more) is False
    import nodes.pack_nodes_layerstyle as module
    asked = []

    def refuse(name, what, images):
        asked.append((name, images.width, images.height))
        raise module.NodeInputError(name, "too big")
    monkeypatch.setattr(module, "check_run_memory", refuse)
    with pytest.raises(Exception):
        node(registry, comfy_class, mask=torch.zeros(1, 300000, 1), white_point=128, area_percent=1, **more)
    assert asked == [("mask", 512, 512 * 300000)]


def test_any_rerouter_passes_anything_on(registry):
    value = {"a": [1, 2]}
    assert node(registry, "LayerUtility: AnyRerouter", any=value) is value


def ramp_image(height=16, width=16):
    """An RGB picture whose red runs through all 256 levels once (so normalize_gray leaves it be)."""
    red = np.arange(256, dtype=np.uint8).reshape(height, width)
    green = np.full((height, width), 40, np.uint8)
    return Image.fromarray(np.dstack((red, green, 255 - red)))


@pytest.mark.parametrize("levels,expected", [
    ((0, 255, 1.0, False), lambda v: v),
    ((64, 192, 1.0, False), lambda v: np.clip(255 * (v - 64) / 128, 0, 255)),
    ((0, 255, 2.0, True), lambda v: 255 - np.floor(np.clip(255 * (v / 255) ** 0.5, 0, 255)))])
def test_image_to_mask_levels_a_channel(registry, levels, expected):
    picture = ramp_image()
    black, white, gray, invert = levels
    mask = node(registry, "LayerMask: ImageToMask", image=tensor(picture), channel="R(RGB)", black_point=black,
                white_point=white, gray_point=gray, invert_output_mask=invert)
    red = np.asarray(picture)[..., 0].astype(np.float64)
    assert torch.equal(mask, tensor(Image.fromarray(expected(red).astype(np.uint8))))


def test_image_to_mask_keeps_only_the_mask_and_reads_other_spaces(registry):
    picture = ramp_image()
    keep = rand(1, 16, 16, seed=4)
    mask = node(registry, "LayerMask: ImageToMask", image=tensor(picture), channel="R(RGB)", black_point=0,
                white_point=255, gray_point=1.0, invert_output_mask=False, mask=keep)
    expected = Image.new("L", (16, 16), "black")
    expected.paste(picture.split()[0], mask=pil(keep[0]))
    assert torch.equal(mask, tensor(expected))
    # V of HSV is the largest of R, G, B: here max(red, 255 - red), stretched by normalize_gray to 0..255
    value = node(registry, "LayerMask: ImageToMask", image=tensor(picture), channel="V(HSV)", black_point=0,
                 white_point=255, gray_point=1.0, invert_output_mask=False)
    red = np.asarray(picture)[..., 0].astype(np.float64)
    largest = np.maximum(red, 255 - red)
    stretched = (largest - largest.min()) / (largest.max() - largest.min()) * 255
    assert torch.equal(value, tensor(Image.fromarray(stretched).convert("L")))


def placed(picture, size, xy):
    canvas = Image.new(picture.mode, size, "black")
    canvas.paste(picture, xy)
    return canvas


def test_layer_image_transform_mirrors_scales_and_places(registry):
    picture = pil(rand(1, 20, 30, 3)[0])
    out = node(registry, "LayerUtility: LayerImageTransform", image=tensor(picture), x=3, y=-2, mirror="horizontal",
               scale=0.5, aspect_ratio=1.2, rotate=0.0, transform_method="lanczos", anti_aliasing=2)
    small = picture.transpose(Image.FLIP_LEFT_RIGHT).resize((15, 12))
    assert torch.equal(out, tensor(placed(small, (30, 20), ((30 - 15) // 2 + 3, (20 - 12) // 2 - 2))))


def test_layer_transforms_turn_as_pil_and_keep_the_alpha(registry):
    picture = pil(rand(1, 20, 30, 4, seed=2)[0])
    out = node(registry, "LayerUtility: LayerImageTransform", image=tensor(picture), x=0, y=0, mirror="None",
               scale=1.0, aspect_ratio=1.0, rotate=30.0, transform_method="bilinear", anti_aliasing=0)
    assert out.shape == (1, 20, 30, 4)
    turned = picture.convert("RGB").resize((30, 20)).rotate(30.0, Image.BILINEAR, True)
    xy = ((30 - turned.width) // 2, (20 - turned.height) // 2)
    alpha = picture.split()[3].convert("RGB").resize((30, 20)).rotate(30.0, Image.BILINEAR, True).convert("L")
    expected = placed(turned, (30, 20), xy)
    expected.putalpha(placed(alpha, (30, 20), xy))
    assert torch.equal(out, tensor(expected))
    mask = rand(2, 20, 30, seed=5)
    out = node(registry, "LayerUtility: LayerMaskTransform", mask=mask, x=4, y=1, mirror="vertical", scale=1.5,
               aspect_ratio=1.0, rotate=0.0, transform_method="lanczos", anti_aliasing=0)
    big = pil(mask[1]).transpose(Image.FLIP_TOP_BOTTOM).convert("RGB").resize((45, 30)).convert("L")
    assert torch.equal(out[1], tensor(placed(big, (30, 20), ((30 - 45) // 2 + 4, (20 - 30) // 2 + 1)))[0])


@pytest.mark.parametrize("method,turn_sampler", [("lanczos", Image.BICUBIC), ("hamming", Image.BILINEAR)])
def test_layer_transforms_turn_supersampled(registry, method, turn_sampler):
    """anti_aliasing 2 (the default): imagefunc's image_rotate_extend_with_alpha turns at twice the size
    (scaled up and back by the method's sampler) and lanczos / hamming turn bicubic / bilinear."""
    sampler = {"lanczos": Image.LANCZOS, "hamming": Image.HAMMING}[method]
    mask = rand(1, 20, 30, seed=6)
    out = node(registry, "LayerUtility: LayerMaskTransform", mask=mask, x=-2, y=3, mirror="None", scale=0.8,
               aspect_ratio=1.0, rotate=-35.0, transform_method=method, anti_aliasing=2)
    small = pil(mask[0]).convert("RGB").resize((24, 16))
    large = small.resize((48, 32), sampler).rotate(-35.0, turn_sampler, True)
    turned = large.resize((large.width // 2, large.height // 2), sampler).convert("L")
    expected = placed(turned, (30, 20), ((30 - turned.width) // 2 - 2, (20 - turned.height) // 2 + 3))
    assert torch.equal(out[0], tensor(expected)[0])


def test_layer_transform_refuses_a_picture_scaled_to_nothing(registry):
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: LayerMaskTransform", mask=torch.ones(1, 20, 30), x=0, y=0, mirror="None",
             scale=0.01, aspect_ratio=1.0, rotate=0.0, transform_method="lanczos", anti_aliasing=0)
    assert getattr(e.value, "input", None) == "scale"
    with pytest.raises(Exception) as e:  # turned at 16 × 6,400 × 640,000 pixels: refused before it is made
        node(registry, "LayerUtility: LayerMaskTransform", mask=torch.ones(1, 64, 64), x=0, y=0, mirror="None",
             scale=100.0, aspect_ratio=100.0, rotate=30.0, transform_method="lanczos", anti_aliasing=16)
    assert getattr(e.value, "input", None) == "scale" and "memory" in str(e.value)


def test_hsv_value_is_colorsys_on_255_levels(registry):
    import colorsys
    h, s, v = colorsys.rgb_to_hsv(255 / 255, 128 / 255, 0 / 255)
    assert node(registry, "LayerUtility: HSV Value", color_value="#FF8000") == (int(h * 255), int(s * 255),
                                                                            int(v * 255))
    assert node(registry, "LayerUtility: HSV Value", color_value=(0, 0, 255)) == (170, 255, 255)
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: HSV Value", color_value=(0, 0, 300))
    assert getattr(e.value, "input", None) == "color_value"


def test_gaussian_blur_v2_is_pils_blur_and_0_passes_the_images_on(registry):
    images = rand(2, 12, 14, 4)
    out = node(registry, "LayerFilter: GaussianBlurV2", image=images, blur=1.35)
    assert out.shape == (2, 12, 14, 3)
    assert torch.equal(out[1:], tensor(pil(images[1]).convert("RGB").filter(ImageFilter.GaussianBlur(radius=1.35))))
    assert node(registry, "LayerFilter: GaussianBlurV2", image=images, blur=0.0) is images


def test_purge_vram_v2_purges_and_passes_anything_on(registry, monkeypatch):
    import graphflow.api
    calls = []
    monkeypatch.setattr(graphflow.api, "offload_idle_models", lambda: calls.append("offload"))
    monkeypatch.setattr(graphflow.api, "free_memory", lambda: calls.append("free"))
    value = torch.zeros(2)
    assert node(registry, "LayerUtility: PurgeVRAM V2", anything=value, purge_cache=True, purge_models=True) is value
    assert node(registry, "LayerUtility: PurgeVRAM V2", anything=3, purge_cache=True, purge_models=False) == 3
    assert calls == ["offload", "free", "free"]


def pack_create_gradient(width, height, direction):
    """imagefunc.create_gradient('#FFFFFF', '#000000', ...), line by line."""
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    s, e = 255, 0
    if direction in ("bottom", "top"):
        for i in range(height):
            v = int(s * (height - i) / height + e * i / height) if direction == "bottom" \
                else int(e * (height - i) / height + s * i / height)
            draw.line((0, i, width, i), fill=(v, v, v))
    else:
        for i in range(width):
            v = int(s * (width - i) / width + e * i / width) if direction == "right" \
                else int(e * (width - i) / width + s * i / width)
            draw.line((i, 0, i, height), fill=(v, v, v))
    return picture


def pack_box_gradient(width, height, scale):
    scale = min(max(scale, 1), 100)
    picture = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(picture)
    step = int(min(width, height) * scale / 100 / 2)
    for i in range(step):
        v = int(0 * (step - i) / step + 255 * i / step)
        draw.rectangle((i, i, width - i, height - i), fill=(v, v, v))
    draw.rectangle((step, step, width - step, height - step), fill=(255, 255, 255))
    return picture


def pack_gradient_mask(width, height, side, scale, offset, opacity):
    """create_gradient_mask.py's branches, written out."""
    black, white = Image.new("L", (width, height), "black"), Image.new("L", (width, height), "white")
    canvas = black.copy()
    if side == "bottom":
        ramp = pack_create_gradient(width, height, "bottom")
        if scale != 100:
            ramp = ramp.resize((width, int(height * scale / 100)))
        canvas.paste(ramp.convert("L"), box=(0, offset))
        if offset > height:
            canvas = white
        elif offset > 0:
            canvas.paste(white, box=(0, offset - height))
    elif side == "top":
        ramp = pack_create_gradient(width, height, "top")
        if scale != 100:
            ramp = ramp.resize((width, int(height * scale / 100)))
        canvas.paste(ramp.convert("L"), box=(0, height - int(height * scale / 100) + offset))
        if offset < -height:
            canvas = white
        elif offset < 0:
            canvas.paste(white, box=(0, height + offset))
    elif side == "left":
        ramp = pack_create_gradient(width, height, "left")
        if scale != 100:
            ramp = ramp.resize((int(width * scale / 100), height))
        canvas.paste(ramp.convert("L"), box=(width - int(width * scale / 100) + offset, 0))
        if offset < -width:
            canvas = white
        elif offset < 0:
            canvas.paste(white, box=(width + offset, 0))
    elif side == "right":
        ramp = pack_create_gradient(width, height, "right")
        if scale != 100:
            ramp = ramp.resize((int(width * scale / 100), height))
        canvas.paste(ramp.convert("L"), box=(offset, 0))
        if offset > width:
            canvas = white
        elif offset > 0:
            canvas.paste(white, box=(offset - width, 0))
    else:
        box = pack_box_gradient(width, height, scale).convert("L")
        large = Image.new("L", (width * 2, height * 2), "black")
        large.paste(box, box=(int(width / 2), int(height / 2)))
        large = large.filter(ImageFilter.GaussianBlur(radius=int((width + height) * scale / 100 / 16)))
        table = [round(255 * (v / 255) ** 0.15) for v in range(256)]  # gamma_trans(0.15)
        ys, xs = np.nonzero(np.asarray(large.point(table)) > 127)
        x, y, w, h = (xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()) if len(xs) else (-1, -1, 1, 1)
        large = large.crop((x, y, x + w, y + h)).resize((width, height), Image.BILINEAR)
        corner = (0, 0)
        if offset != 0:
            rw, rh = max(int(width - offset), 1), max(int(height - offset), 1)
            large = large.resize((rw, rh), Image.BILINEAR)
            corner = (int((width - rw) / 2), int((height - rh) / 2))
        canvas.paste(large, box=corner)
    if opacity == 0:
        canvas = black
    elif opacity < 100:
        canvas = Image.blend(canvas, black, 1.0 - opacity / 100)
    return canvas


@pytest.mark.parametrize("side", ["bottom", "top", "left", "right", "center"])
@pytest.mark.parametrize("scale,offset,opacity", [(100, 0, 100), (50, 12, 80), (160, -9, 100), (30, 70, 40)])
def test_create_gradient_mask_as_the_pack(registry, side, scale, offset, opacity):
    mask = node(registry, "LayerMask: CreateGradientMask", width=64, height=48, gradient_side=side,
                gradient_scale=scale, gradient_offset=offset, opacity=opacity)
    assert torch.equal(mask, tensor(pack_gradient_mask(64, 48, side, scale, offset, opacity)))


@pytest.mark.parametrize("side,size", [("bottom", (256, 12800)), ("left", (12800, 256))])
def test_create_gradient_mask_checks_only_the_stretched_side(registry, side, size, monkeypatch):
    """At scale 5000 an edge ramp is 50 times one side long, not both: the memory check asks for that."""
    import nodes.pack_nodes_layerstyle as module
    asked = []
    monkeypatch.setattr(module, "check_run_memory", lambda name, what, images: asked.append(images.volume))
    mask = node(registry, "LayerMask: CreateGradientMask", width=256, height=256, gradient_side=side,
                gradient_scale=5000, gradient_offset=0, opacity=100)
    assert max(asked) == 2 * size[0] * size[1]
    assert torch.equal(mask, tensor(pack_gradient_mask(256, 256, side, 5000, 0, 100)))


@pytest.mark.parametrize("side", ["top", "right"])
def test_create_gradient_mask_refuses_a_scale_of_no_pixels(registry, side):
    """The pack's resize to 16 × 1 % = 0 pixels fails; ours names the smallest scale that gives a pixel."""
    with pytest.raises(Exception) as e:
        node(registry, "LayerMask: CreateGradientMask", width=16, height=16, gradient_side=side, gradient_scale=6,
             gradient_offset=0, opacity=100)
    assert getattr(e.value, "input", None) == "gradient_scale" and "at least 7" in str(e.value)
    mask = node(registry, "LayerMask: CreateGradientMask", width=16, height=16, gradient_side=side, gradient_scale=7,
                gradient_offset=0, opacity=100)
    assert torch.equal(mask, tensor(pack_gradient_mask(16, 16, side, 7, 0, 100)))


def test_create_gradient_mask_takes_size_as(registry):
    mask = node(registry, "LayerMask: CreateGradientMask", width=512, height=512, gradient_side="center",
                gradient_scale=100, gradient_offset=0, opacity=100, size_as=torch.zeros(2, 30, 40, 3))
    assert torch.equal(mask, tensor(pack_gradient_mask(40, 30, "center", 100, 0, 100)))


def pack_shadow_highlight(picture, mask, shadow_offset, shadow_range, highlight_offset, highlight_range,
                          black_outside=True):
    """shadow_and_highlight_mask.py with imagefunc's get_gray_average, calculate_shadow_highlight_level and
    luminance_keyer, written out (the keys alone, as Color of Shadow & Highlight takes them, without
    black_outside)."""
    def norm(v):
        return min(max(v, 0.01), 0.99)

    def keyer(low, high):
        t = torch.from_numpy(np.asarray(picture).astype(np.float32) / 255.0)[None]
        alpha = 0.2126 * t[:, :, :, 0] + 0.7152 * t[:, :, :, 1] + 0.0722 * t[:, :, :, 2]
        alpha = (alpha > high).to(t.dtype) if low == high else (alpha - low) / (high - low)
        alpha = torch.clamp(alpha, min=0, max=1).unsqueeze(3).repeat(1, 1, 1, 3)
        return Image.fromarray(np.clip(255.0 * alpha.numpy().squeeze(), 0, 255).astype(np.uint8)).convert("L")

    _, _, v = picture.convert("HSV").split()
    gray = np.array(v)[np.array(mask) > 16].mean()
    shadow_ratio, highlight_ratio = gray ** 3 / 255 ** 3, gray ** 2 / 255 ** 2
    shadow_level = shadow_ratio * 100 + (1 - shadow_ratio) * 32
    highlight_level = highlight_ratio * 100 + (1 - highlight_ratio) * 32
    shadow = keyer(norm((shadow_level + shadow_offset) / 100 + shadow_range / 2),
                   norm((shadow_level + shadow_offset) / 100 - shadow_range / 2))
    highlight = keyer(norm((highlight_level + highlight_offset) / 100 - highlight_range / 2),
                      norm((highlight_level + highlight_offset) / 100 + highlight_range / 2))
    black, outside = Image.new("L", picture.size, "black"), ImageOps.invert(mask)
    if black_outside:
        shadow.paste(black, mask=outside)
        highlight.paste(black, mask=outside)
    return shadow, highlight


@pytest.mark.parametrize("comfy_class", ["LayerMask: Shadow & Highlight Mask", "LayerMask: ShadowHighlightMaskV2"])
@pytest.mark.parametrize("settings", [(0, 0.25, 0, 0.25), (-20, 0.6, 15, 0.1), (99, 0.99, -99, 0.01)])
def test_shadow_and_highlight_masks_as_the_pack(registry, comfy_class, settings):
    images = rand(2, 16, 20, 3, seed=6) ** 1.5
    mask = rand(1, 16, 20, seed=7)
    shadow, highlight = node(registry, comfy_class, image=images, shadow_level_offset=settings[0],
                             shadow_range=settings[1], highlight_level_offset=settings[2],
                             highlight_range=settings[3], mask=mask)
    assert shadow.shape == highlight.shape == (2, 16, 20)
    for i in range(2):
        expected = pack_shadow_highlight(pil(images[i]), pil(mask[0]), *settings)
        assert torch.equal(shadow[i], tensor(expected[0])[0]) and torch.equal(highlight[i], tensor(expected[1])[0])
    assert shadow.max() > 0 or highlight.max() > 0


def test_shadow_and_highlight_masks_of_an_empty_mask_are_black(registry):
    shadow, highlight = node(registry, "LayerMask: Shadow & Highlight Mask", image=rand(1, 8, 8, 3),
                             shadow_level_offset=0, shadow_range=0.25, highlight_level_offset=0, highlight_range=0.25,
                             mask=torch.zeros(1, 8, 8))
    assert not shadow.any() and not highlight.any()


def pack_soft_light(canvas, soft, threshold, opacity):
    """soft_light.py with imagefunc's gray_threshold (by way of BGR, as pil2cv2), remove_background,
    get_image_bright_average and chop_image's screen, written out."""
    import cv2
    from PIL import ImageChops

    def threshold_of(picture, thresh=127, otsu=False):
        gray = cv2.cvtColor(cv2.cvtColor(np.array(picture), cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2GRAY)
        if otsu:
            _, out = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        else:
            _, out = cv2.threshold(gray, thresh, 255, cv2.THRESH_TOZERO)
        return Image.fromarray(out).convert("L")

    def screen(back, layer):
        out = ImageChops.screen(back, layer)
        if opacity == 0:
            return back
        return Image.blend(out, back, 1.0 - opacity / 100) if opacity < 100 else out

    blur = int((canvas.width + canvas.height) / 200 * soft)
    removed = Image.new("RGB", canvas.size, "#000000")
    removed.paste(canvas, mask=threshold_of(canvas, otsu=True))
    removed = removed.convert("L")
    total = pixels = 0
    for y in range(removed.height):
        for x in range(removed.width):
            b = removed.getpixel((x, y))
            if b > 1:
                pixels += 1
                total += b
    auto = int(total / pixels)
    light_mask = threshold_of(canvas, auto + threshold)
    highlight_mask = threshold_of(canvas, auto + (255 - auto) // 2 + threshold // 2)
    blurred = canvas.filter(ImageFilter.GaussianBlur(radius=soft)).convert("RGB")
    light = screen(canvas, blurred)
    highlight = screen(light, blurred)
    canvas = canvas.copy()
    canvas.paste(highlight, mask=light_mask.filter(ImageFilter.GaussianBlur(radius=blur * 2)).convert("L"))
    canvas.paste(highlight, mask=highlight_mask.filter(ImageFilter.GaussianBlur(radius=blur)).convert("L"))
    return canvas


@pytest.mark.parametrize("soft,threshold,opacity", [(1.0, -10, 100), (3.5, 40, 60), (0.2, -255, 0)])
def test_soft_light_as_the_pack(registry, soft, threshold, opacity):
    images = rand(2, 24, 30, 3, seed=8)
    out = node(registry, "LayerFilter: SoftLight", image=images, soft=soft, threshold=threshold, opacity=opacity)
    for i in range(2):
        assert torch.equal(out[i:i + 1], tensor(pack_soft_light(pil(images[i]), soft, threshold, opacity)))
    assert torch.equal(out, torch.cat([tensor(pil(i)) for i in images])) == (opacity == 0)  # lit where it shows


def test_soft_light_refuses_a_black_picture(registry):
    with pytest.raises(Exception) as e:
        node(registry, "LayerFilter: SoftLight", image=torch.zeros(1, 8, 8, 3), soft=1.0, threshold=-10, opacity=100)
    assert getattr(e.value, "input", None) == "image"


def test_image_batch_to_list_and_back(registry):
    images = rand(7, 6, 8, 3)
    parts = node(registry, "LayerUtility: ImageBatchToList", image=images, batch_size=3)
    assert [len(p) for p in parts] == [3, 3, 1] and torch.equal(torch.cat(parts), images)
    assert torch.equal(node(registry, "LayerUtility: ImageListToBatch", image=parts), images)
    other = rand(2, 12, 8, 3, seed=1)  # twice as tall: centre-cropped to 6 × 8's aspect, then scaled
    joined = node(registry, "LayerUtility: ImageListToBatch", image=[images[:1], other])
    cropped = other[:, 3:9].movedim(-1, 1)
    assert torch.equal(joined[1:], cropped.movedim(1, -1))  # the crop is the size already: no scaling
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: ImageListToBatch", image=[images[:1], rand(1, 6, 8, 4)])
    assert getattr(e.value, "input", None) == "image"


def pack_histogram_range(image, black_point, black_range, white_point, white_range):
    """imagefunc.histogram_range, pixel by pixel (its black_part starts as the very picture its white part
    marked, as the pack's aliasing has it)."""
    from PIL import ImageChops

    def remap(p, lo, hi):
        return int((p - lo) / (hi - lo) * 255)

    if black_point == 255:
        black_point = 254
    if white_point == 0:
        white_point = 1
    if black_point + black_range > 255:
        black_range = 255 - black_point
    if white_range > white_point:
        white_range = white_point
    white_image, black_image = Image.new("L", image.size, "white"), Image.new("L", image.size, "black")
    if black_point == white_point:
        return white_image
    white_part = black_image
    if white_point < 255 or white_range > 0:
        for y in range(image.height):
            for x in range(image.width):
                p = image.getpixel((x, y))
                if p > white_point:
                    white_part.putpixel((x, y), 255)
                elif p > white_point - white_range:
                    white_part.putpixel((x, y), remap(p, white_point - white_range, white_point))
    white_part = ImageChops.invert(white_part)
    black_part = black_image
    if black_point > 0 or black_range > 0:
        for y in range(image.height):
            for x in range(image.width):
                p = image.getpixel((x, y))
                if p < black_point:
                    black_part.putpixel((x, y), 255)
                elif p < black_point + black_range:
                    black_part.putpixel((x, y), 255 - remap(p, black_point, black_point + black_range))
    black_part = ImageChops.invert(black_part)
    return ImageChops.darker(white_part, black_part)  # blend_modes' darken_only of two opaque pictures


@pytest.mark.parametrize("blend_if,points", [("gray", (0, 0, 255, 0)), ("red", (40, 30, 200, 50)),
                                             ("green", (100, 0, 150, 0)), ("blue", (240, 200, 20, 100)),
                                             ("gray", (90, 0, 90, 0))])
def test_blend_if_mask_as_the_pack(registry, blend_if, points):
    picture = ramp_image()
    mask = rand(1, 16, 16, seed=9)
    out = node(registry, "LayerMask: BlendIf Mask", image=tensor(picture), invert_mask=True, blend_if=blend_if,
               black_point=points[0], black_range=points[1], white_point=points[2], white_range=points[3], mask=mask)
    channel = picture.convert("L") if blend_if == "gray" else picture.split()[["red", "green", "blue"].index(blend_if)]
    expected = pack_histogram_range(channel, *points)
    expected.paste(Image.new("L", (16, 16), "black"), mask=ImageOps.invert(pil(1 - mask[0]).convert("L")))
    assert torch.equal(out, tensor(expected))


def grown(mask_picture, grow, blur):
    """imagefunc.expand_mask: grey dilation (erosion below 0) by a 3 × 3 cross |grow| times, then PIL's blur."""
    from scipy import ndimage
    values = np.asarray(mask_picture, np.float32) / 255.0
    step = ndimage.grey_erosion if grow < 0 else ndimage.grey_dilation
    for _ in range(abs(grow)):
        values = step(values, footprint=np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]]))
    return Image.fromarray(np.clip(255.0 * values, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur))


@pytest.mark.parametrize("grain,invert", [(3, False), (5, True), (0, True)])
def test_mask_grain_dissolves_the_grown_edge(registry, grain, invert):
    mask = torch.zeros(2, 30, 36)
    mask[:, 8:22, 10:28] = 1.0
    mask[1, 12:15, 14:16] = 0.4
    out = node(registry, "LayerMask: MaskGrain", mask=mask, grain=grain, invert_mask=invert)
    for i in range(2):
        picture = pil(1 - mask[i] if invert else mask[i]).convert("L")
        if grain:
            outer = np.asarray(grown(picture, grain, grain * 2))
            # blendmodes.dissolve of an opaque layer at 50 %: the layer where the draw (our fixed seed) is
            # below one half, else the black backdrop
            draw = np.random.default_rng(0).random(outer.shape)
            picture_out = Image.fromarray(np.where(draw < 0.5, outer, 0).astype(np.uint8))
            picture_out.paste(Image.new("L", picture.size, "white"), mask=grown(picture, -grain, grain))
            picture = picture_out
        assert torch.equal(out[i], tensor(picture)[0])


@pytest.mark.parametrize("comfy_class,inputs", [
    ("LayerMask: MaskGrain", dict(mask=torch.ones(1, 12, 12), grain=2, invert_mask=False)),
    ("LayerUtility: HLFrequencyDetailRestore", dict(image=torch.ones(1, 12, 12, 3), keep_high_freq=2, erase_low_freq=2,
                                                    detail_image=torch.ones(1, 12, 12, 3), mask_blur=2))])
def test_blends_of_a_fixed_mode_check_memory_naming_an_input_the_node_has(registry, comfy_class, inputs, monkeypatch):
    import nodes.pack_nodes_layerstyle as round1
    import nodes.pack_nodes_layerstyle2 as round2
    asked = []
    for module in (round1, round2):
        monkeypatch.setattr(module, "check_run_memory", lambda name, what, images: asked.append(name))
    node(registry, comfy_class, **inputs)
    assert asked and set(asked) <= set(registry.comfy_node(comfy_class).input_specs)


@pytest.mark.parametrize("comfy_class,inputs", [
    ("LayerMask: Shadow & Highlight Mask", {}), ("LayerMask: BlendIf Mask", {"invert_mask": False}),
    ("LayerColor: AutoBrightness", {}), ("LayerColor: Color of Shadow & Highlight", {"shadow_brightness": 1.5}),
    ("LayerColor: AutoAdjustV2", {})])
def test_a_mask_of_another_size_is_refused_naming_mask(registry, comfy_class, inputs):
    with pytest.raises(Exception) as e:
        node(registry, comfy_class, image=rand(2, 10, 12, 3), mask=torch.ones(1, 10, 11), **inputs)
    assert getattr(e.value, "input", None) == "mask" and "11×10" in str(e.value)


def pack_rounded(size, radius, box, factor):
    """imagefunc.draw_rounded_rectangle, as the pack calls it."""
    factor = max(factor, 1)
    img = Image.new("L", size, "black").resize((size[0] * factor, size[1] * factor), Image.LANCZOS)
    x1, y1, x2, y2 = box
    r = radius * min(x2 - x1, y2 - y1) * 0.005
    ImageDraw.Draw(img).rounded_rectangle([x1 * factor, y1 * factor, x2 * factor, y2 * factor], radius=r * factor,
                                          fill="white")
    return img.filter(ImageFilter.SMOOTH_MORE).resize(size, Image.LANCZOS)


def test_rounded_rectangle_by_margins_crop_box_and_object_mask(registry):
    images = rand(2, 40, 50, 3)
    args = dict(rounded_rect_radius=60, anti_aliasing=3, top=10.0, bottom=5.0, left=20.0, right=-4.0,
                detect="mask_area", obj_ext_top=10.0, obj_ext_bottom=0.0, obj_ext_left=-20.0, obj_ext_right=50.0)
    image, mask = node(registry, "LayerUtility: RoundedRectangle", image=images, **args)
    expected = pack_rounded((50, 40), 60, (10, 4, 50 - int(-4 * 50 * 0.01), 40 - 2), 3)
    assert torch.equal(mask[1], tensor(expected)[0])
    rgba = pil(images[1]).convert("RGB")
    rgba.putalpha(expected)
    assert torch.equal(image[1:], tensor(rgba))
    # crop_box [10, 5, 30, 25] (20 × 20) widened: left -4, top 2, right 10, bottom 0
    _, mask = node(registry, "LayerUtility: RoundedRectangle", image=images, crop_box=[10, 5, 30, 25], **args)
    assert torch.equal(mask[0], tensor(pack_rounded((50, 40), 60, (14, 3, 40, 25), 3))[0])
    # mask_area of a 20 × 10 block at (12, 6): width 19, height 9 (one short, as the pack counts)
    objects = torch.zeros(1, 40, 50)
    objects[0, 6:16, 12:32] = 1.0
    _, mask = node(registry, "LayerUtility: RoundedRectangle", image=images, object_mask=objects, **args)
    box = (12 - int(-20 * 19 * 0.01), 6 - int(10 * 9 * 0.01), 12 + 19 + int(50 * 19 * 0.01), 6 + 9)
    assert torch.equal(mask[1], tensor(pack_rounded((50, 40), 60, box, 3))[0])
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: RoundedRectangle", image=images, crop_box=[30, 5, 10, 25], **args)
    assert getattr(e.value, "input", None) == "crop_box"



@pytest.mark.parametrize("changes,given,name", [
    ({"left": 60.0, "right": 60.0}, {}, "left"), ({"top": 70.0, "bottom": 40.0}, {}, "top"),
    ({"obj_ext_left": -80.0, "obj_ext_right": -80.0}, {"crop_box": [10, 5, 30, 25]}, "obj_ext_left"),
    ({"obj_ext_top": -90.0, "obj_ext_bottom": -90.0}, {"object_mask": "block"}, "obj_ext_top")])
def test_rounded_rectangle_names_the_margin_that_turns_it_inside_out(registry, changes, given, name):
    args = dict(rounded_rect_radius=50, anti_aliasing=0, top=8.0, bottom=8.0, left=8.0, right=8.0, detect="mask_area",
                obj_ext_top=8.0, obj_ext_bottom=8.0, obj_ext_left=8.0, obj_ext_right=8.0) | changes
    if given.get("object_mask") == "block":
        given = {"object_mask": torch.zeros(1, 20, 24)}
        given["object_mask"][0, 4:16, 4:20] = 1.0
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: RoundedRectangle", image=rand(1, 20, 24, 3), **args, **given)
    assert getattr(e.value, "input", None) == name


@pytest.mark.parametrize("size,target", [((40, 40), (1024, 1024)), ((30, 60), (720, 1456)), ((50, 20), (1568, 672))])
def test_flux_kontext_image_scale_picks_the_nearest_kontext_size(registry, size, target):
    images = rand(1, size[1], size[0], 3)
    out = node(registry, "LayerUtility: FluxKontextImageScale", image=images, method="bilinear")
    assert torch.equal(out, tensor(pil(images[0]).resize(target, Image.BILINEAR)))


def test_print_info_describes_tensors_and_values(registry):
    text = node(registry, "LayerUtility: PrintInfo", anything=torch.zeros(2, 6, 8, 3))
    assert text.startswith("PrintInfo:\nInput type = <class 'torch.Tensor'>\n Input dim = 4, shape[0] = 2 \n")
    assert "index 1: Image.size = (8, 6), Image.mode = RGB, dim = 3, shape[0] = 6, shape[1] = 8, shape[2] = 3, " in text
    assert "Image.mode = L" in node(registry, "LayerUtility: PrintInfo", anything=torch.zeros(1, 6, 8))
    assert node(registry, "LayerUtility: PrintInfo", anything={"a": [1, 2]}) == \
        "PrintInfo:\nInput type = <class 'dict'>" + '{"a": [1, 2]}' + "\n"
    assert node(registry, "LayerUtility: PrintInfo", anything={1, 2}).endswith("{1, 2}\n")  # no JSON: str()
    assert node(registry, "LayerUtility: PrintInfo", anything=torch.tensor(2.5)) == \
        "PrintInfo:\nInput type = <class 'torch.Tensor'>\n Input dim = 0, shape = (), value = 2.5 \n"
    assert "index 2: Image.size = ?, Image.mode = ? (not a picture), dim = 0, " in \
        node(registry, "LayerUtility: PrintInfo", anything=torch.arange(3))


@pytest.mark.parametrize("size,target", [((40, 40), (1024, 1024)), ((30, 40), (864, 1184)), ((60, 20), (1344, 768))])
def test_nano_banana_image_scale_picks_the_nearest_size(registry, size, target):
    images = rand(1, size[1], size[0], 3)
    out = node(registry, "LayerUtility: NanoBananaImageScale", image=images, method="nearest")
    assert torch.equal(out, tensor(pil(images[0]).resize(target, Image.NEAREST)))


def pack_detail_restore(background, detail, mask, keep, erase, blur):
    """hl_frequency_detail_restore.py: chop_image_v2's normal from the blend_modes package, its own linear
    light (back + 2 × over - 1, clipped) written out."""
    import blend_modes
    from PIL import ImageChops

    def rgba(picture):
        return np.asarray(picture.convert("RGBA"), dtype=float)

    inverse, blurred = ImageChops.invert(detail), detail.filter(ImageFilter.GaussianBlur(keep))
    high = Image.fromarray(np.uint8(blend_modes.normal(rgba(inverse), rgba(blurred), 0.5))).convert("RGB")
    high = ImageChops.invert(high)
    low = background.filter(ImageFilter.GaussianBlur(erase)) if erase else background.copy()
    back, over = np.asarray(low, float) / 255, np.asarray(high, float) / 255
    restored = Image.fromarray(np.uint8(np.clip(back + 2 * over - 1, 0, 1) * 255))
    outside = ImageChops.invert(mask)
    if blur > 0:
        outside = outside.filter(ImageFilter.GaussianBlur(blur))
    restored.paste(background, outside)
    return restored


@pytest.mark.parametrize("keep,erase,blur", [(4, 2, 3), (10, 0, 0)])
def test_hl_frequency_detail_restore_as_the_pack(registry, keep, erase, blur):
    images, details, mask = rand(1, 20, 24, 3, seed=10), rand(2, 20, 24, 3, seed=11), rand(1, 20, 24, seed=12)
    out = node(registry, "LayerUtility: HLFrequencyDetailRestore", image=images, detail_image=details,
               keep_high_freq=keep, erase_low_freq=erase, mask_blur=blur, mask=mask)
    assert out.shape == (2, 20, 24, 3)
    for i in range(2):
        expected = pack_detail_restore(pil(images[0]), pil(details[i]), pil(mask[0]).convert("L"), keep, erase, blur)
        assert torch.equal(out[i:i + 1], tensor(expected))


def pack_gradient_map(picture, start, mid, end, mid_point, opacity, mask=None):
    """gradient_map.py, written out."""
    mid_index = int(255 * mid_point)
    g1 = np.array([np.linspace(start[i], mid[i], mid_index + 1) for i in range(3)]).T
    g2 = np.array([np.linspace(mid[i], end[i], 256 - mid_index) for i in range(3)]).T
    table = np.vstack((g1[:-1], g2))
    original = np.array(picture)
    luminance = np.sum(original * [0.299, 0.587, 0.114], axis=2, keepdims=True) / 255.0
    mapped = Image.fromarray(np.uint8(table[np.array(picture.convert("L"))] * luminance + original * (1 - luminance)))
    if opacity < 100:
        mapped = Image.blend(picture, mapped, opacity / 100)
    if mask is not None:
        picture = picture.copy()
        picture.paste(mapped, (0, 0), mask)
        mapped = picture
    return mapped, Image.fromarray(np.uint8(table.reshape(1, -1, 3).repeat(50, axis=0)))


@pytest.mark.parametrize("mid_point,opacity,with_mask", [(0.6, 100, False), (0.0, 70, True), (1.0, 30, False)])
def test_gradient_map_as_the_pack(registry, mid_point, opacity, with_mask):
    images, mask = rand(2, 12, 16, 3, seed=13), rand(1, 12, 16, seed=14)
    extra = {"layer_mask": mask} if with_mask else {}
    image, strip = node(registry, "LayerStyle: Gradient Map", image=images, start_color="#015A52",
                        mid_color="#F0A", end_color="#7FFFEC", mid_point=mid_point, opacity=opacity, **extra)
    for i in range(2):
        expected, expected_strip = pack_gradient_map(pil(images[i]), (1, 90, 82), (255, 0, 170), (127, 255, 236),
                                                     mid_point, opacity, pil(mask[0]) if with_mask else None)
        assert torch.equal(image[i:i + 1], tensor(expected))
    assert torch.equal(strip, tensor(expected_strip)) and strip.shape == (1, 50, 256, 3)


def pack_dot_mask(size, shape):
    import math
    mask = np.zeros((size, size))
    center = size / 2
    for x in range(size):
        for y in range(size):
            if shape == "circle":
                distance = math.sqrt((x - center + 0.5) ** 2 + (y - center + 0.5) ** 2)
                radius = center if size > 4 else center * 1.1
                mask[y, x] = 1 if distance <= radius else 0
            elif shape == "diamond":
                distance = abs(x - center + 0.5) + abs(y - center + 0.5)
                radius = center if size > 4 else center * 1.1
                mask[y, x] = 1 if distance <= radius else 0
            else:
                mask[y, x] = 1
    return mask


def pack_halftone(image, dot_size, shape, angle):
    """halftone.py's halftone(), pixel by pixel, drawing its jitter from Python's global random state."""
    import math
    image = image.convert("L")
    width, height = image.size
    output = Image.new("L", (width, height), 0)
    cos_angle, sin_angle = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    img_array = np.array(image)
    random_offset = dot_size * 0.05
    margin = int(math.sqrt(width ** 2 + height ** 2))
    y = -margin // 2
    while y < height + margin // 2:
        x = -margin // 2
        while x < width + margin // 2:
            offset_x = random.uniform(-random_offset, random_offset)
            offset_y = random.uniform(-random_offset, random_offset)
            grid_x = (x + offset_x) * cos_angle + (y + offset_y) * sin_angle
            grid_y = -(x + offset_x) * sin_angle + (y + offset_y) * cos_angle
            if 0 <= grid_x < width and 0 <= grid_y < height:
                region_x = min(int(grid_x), width - dot_size)
                region_y = min(int(grid_y), height - dot_size)
                region = img_array[region_y:region_y + dot_size, region_x:region_x + dot_size]
                if region.size > 0:
                    kernel = np.exp(-np.linspace(-2, 2, dot_size) ** 2 / 2)
                    kernel = kernel[:, np.newaxis] * kernel[np.newaxis, :]
                    kernel = kernel / kernel.sum()
                    mean_value = np.sum(region * kernel) if region.shape == kernel.shape else np.mean(region)
                    dot_radius = math.sqrt(1 - mean_value / 255) * dot_size / 2
                    if dot_radius > 0:
                        mask_size = int(dot_radius * 2)
                        if mask_size > 0:
                            dot = pack_dot_mask(mask_size, shape)
                            for dy in range(mask_size):
                                for dx in range(mask_size):
                                    if dot[dy, dx] > 0:
                                        px = int(grid_x - mask_size // 2 + dx)
                                        py = int(grid_y - mask_size // 2 + dy)
                                        if 0 <= px < width and 0 <= py < height:
                                            output.putpixel((px, py), 255)
            x += dot_size
        y += dot_size
    return output


@pytest.mark.parametrize("shape,angle,anti_aliasing", [("circle", 45.0, 1), ("diamond", -20.0, 0), ("square", 90.0, 2)])
def test_halftone_as_the_pack(registry, shape, angle, anti_aliasing):
    images, mask = rand(2, 20, 24, 3, seed=15) * 0.9, rand(1, 20, 24, seed=16)
    out = node(registry, "LayerFilter: HalfTone", image=images, dot_size=4, angle=angle, shape=shape,
               dot_color="#102030", background_color="#F0E0D0", anti_aliasing=anti_aliasing, mask=mask)
    upscale = anti_aliasing + 1
    for i in range(2):
        picture = pil(images[i]).convert("RGB")
        random.seed(0)  # our fixed seed, for the pack's unseeded draws
        large = picture.resize((24 * upscale, 20 * upscale), Image.LANCZOS)
        dots = pack_halftone(large, 4 * upscale, shape, angle).resize((24, 20), Image.LANCZOS)
        printed = Image.new("RGB", (24, 20), "#F0E0D0")
        printed.paste(Image.new("RGB", (24, 20), "#102030"), mask=dots)
        expected = Image.new("RGB", (24, 20), "#F0E0D0")
        expected.paste(printed, mask=pil(mask[0]).convert("L"))
        assert torch.equal(out[i:i + 1], tensor(expected))
    assert len(torch.unique(out)) > 2  # dots and background mixed


def pack_auto_brightness(picture, mask, strength, saturation):
    """auto_brightness.py with imagefunc's histogram_equalization (pixel by pixel), gamma_trans (its rounded
    table), chop_image's normal and image_gray_offset, written out."""
    l_channel, a_channel, b_channel = picture.convert("LAB").split()
    image = l_channel.copy()
    low, high, total, count = 255, 0, 0, 0
    for y in range(image.height):
        for x in range(image.width):
            if mask.getpixel((x, y)) == 0:
                continue
            p = image.getpixel((x, y))
            low, high, total, count = min(low, p), max(high, p), total + p, count + 1
    average = int(total / count)
    for y in range(image.height):
        for x in range(image.width):
            image.putpixel((x, y), int((image.getpixel((x, y)) - low) / (high - low) * 255))
    gamma = (average - 127) / 127 * (strength / 100) * 0.66 + 1
    image = image.point([round(255 * (v / 255) ** gamma) for v in range(256)])
    if strength == 0:
        image = l_channel
    elif strength < 100:
        image = Image.blend(image, l_channel, 1.0 - strength / 100)
    result = Image.merge("LAB", (image, a_channel, b_channel)).convert("RGB")
    if saturation:
        h, s_channel, v = result.convert("HSV").split()
        s_channel = s_channel.point([min(max(v_ + saturation, 0), 255) for v_ in range(256)])
        result = Image.merge("HSV", (h, s_channel, v)).convert("RGB")
    return result


@pytest.mark.parametrize("strength,saturation,with_mask", [(75, 8, False), (40, -30, True), (100, 0, True)])
def test_auto_brightness_as_the_pack(registry, strength, saturation, with_mask):
    images, mask = rand(2, 14, 18, 3, seed=17) * 0.6 + 0.1, (rand(1, 14, 18, seed=18) > 0.4).float()
    extra = {"mask": mask} if with_mask else {}
    out = node(registry, "LayerColor: AutoBrightness", image=images, strength=strength, saturation=saturation, **extra)
    for i in range(2):
        keep = pil(mask[0]) if with_mask else Image.new("L", (18, 14), "white")
        expected = pack_auto_brightness(pil(images[i]), keep, strength, saturation)
        assert torch.equal(out[i:i + 1], tensor(expected))
    flat = torch.full((1, 8, 8, 3), 0.5)
    with pytest.raises(Exception) as e:
        node(registry, "LayerColor: AutoBrightness", image=flat, strength=75, saturation=8)
    assert getattr(e.value, "input", None) == "image"


def pack_color_shadow_highlight(picture, mask, shadow, highlight):
    """color_correct_shadow_and_highlight.py, written out: each part (brightness, saturation, hue, level
    offset, range) toned and pasted through its key (this file's pack_shadow_highlight keys)."""
    from PIL import ImageChops, ImageEnhance
    keys = pack_shadow_highlight(picture, mask, shadow[3], shadow[4], highlight[3], highlight[4], black_outside=False)
    canvas = picture.copy()
    for (brightness, saturation, hue, _, _), key in zip((shadow, highlight), keys):
        if brightness == 1 and saturation == 1 and not hue:
            continue
        part = picture.copy()
        if brightness != 1:
            part = ImageEnhance.Brightness(part).enhance(factor=brightness)
        if saturation != 1:
            part = ImageEnhance.Color(part).enhance(factor=saturation)
        if hue:
            h, s_channel, v = part.convert("HSV").split()
            h = h.point([(x + hue) - 256 if x + hue > 255 else (x + hue) + 256 if x + hue < 0 else x + hue
                         for x in range(256)])
            part = Image.merge("HSV", (h, s_channel, v)).convert("RGB")
        canvas.paste(part, mask=key.filter(ImageFilter.GaussianBlur((key.width + key.height) // 800)))
        canvas.paste(picture, mask=ImageChops.invert(mask))
    return canvas


@pytest.mark.parametrize("shadow,highlight", [((1.4, 0.6, 20, 0, 0.25), (1, 1, 0, 0, 0.25)),
                                              ((1, 1, 0, 10, 0.5), (0.7, 1.8, -100, -15, 0.3)),
                                              ((2.0, 1.0, 0, -20, 0.9), (1.2, 1, 200, 30, 0.05))])
def test_color_of_shadow_and_highlight_as_the_pack(registry, shadow, highlight):
    images, mask = rand(2, 16, 20, 3, seed=19), rand(1, 16, 20, seed=20)
    names = ("brightness", "saturation", "hue", "level_offset", "range")
    args = {**{f"shadow_{n}": v for n, v in zip(names, shadow)},
            **{f"highlight_{n}": v for n, v in zip(names, highlight)}}
    out = node(registry, "LayerColor: Color of Shadow & Highlight", image=images, mask=mask, **args)
    for i in range(2):
        expected = pack_color_shadow_highlight(pil(images[i]), pil(mask[0]).convert("L"), shadow, highlight)
        assert torch.equal(out[i:i + 1], tensor(expected))
    assert not torch.equal(out, torch.cat([tensor(pil(i)) for i in images]))  # something was toned


def test_text_presets_are_set_and_chosen(registry):
    first = node(registry, "LayerUtility: TextPreseter", title="a", content="apple")
    both = node(registry, "LayerUtility: TextPreseter", title="b", content="banana", text_preset=first)
    assert first == {"a": "apple"} and both == {"a": "apple", "b": "banana"}  # the given set left as it was
    assert node(registry, "LayerUtility: TextPreseter", title="", content="x", text_preset=both) == both
    choose = dict(text_preset={**both, "c": "cherry"}, random_choice=False, seed=0)
    assert node(registry, "LayerUtility: ChoiceTextPreset", choice_title="b", default=0, **choose) == ("b", "banana")
    assert node(registry, "LayerUtility: ChoiceTextPreset", choice_title="zz", default=2, **choose) == ("c", "cherry")
    for seed in (0, 5, 123):
        random.seed(seed)  # the pack's draw: random.choice after random.seed(seed)
        expected = random.choice(["a", "b", "c"])
        got = node(registry, "LayerUtility: ChoiceTextPreset", **{**choose, "random_choice": True, "seed": seed},
                   choice_title="a", default=0)
        assert got[0] == expected
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: ChoiceTextPreset", choice_title="a", default=3, **choose)
    assert getattr(e.value, "input", None) == "default"


def test_image_hub_passes_one_pair_on(registry):
    image, mask = rand(1, 4, 5, 3), rand(1, 4, 5)
    other = rand(1, 4, 5, 3, seed=1)
    got = node(registry, "LayerUtility: ImageHub", output=3, random_output=False, input3_image=image,
               input3_mask=mask, input5_image=other)
    assert got[0] is image and got[1] is mask
    assert node(registry, "LayerUtility: ImageHub", output=5, random_output=False, input3_image=image,
                input5_image=other) == (other, None)
    with pytest.raises(Exception) as e:  # the pack passes (None, None) on
        node(registry, "LayerUtility: ImageHub", output=2, random_output=False, input3_image=image,
             input5_mask=mask)
    assert getattr(e.value, "input", None) == "output" and "pair 2" in str(e.value) and "3, 5" in str(e.value)
    pick = [3, 5][random.Random(0).randint(1, 2) - 1]  # the pack's randint over the linked pairs, our fixed seed
    got = node(registry, "LayerUtility: ImageHub", output=1, random_output=True, input3_image=image, input5_image=other)
    assert got[0] is (image if pick == 3 else other)
    with pytest.raises(Exception) as e:
        node(registry, "LayerUtility: ImageHub", output=1, random_output=False)
    assert getattr(e.value, "input", None) == "input1_image"


def test_crop_by_mask_v3_crops_rgba_as_v2_boxes(registry):
    image, mask = rand(2, 60, 80, 4), torch.zeros(1, 60, 80)
    mask[0, 20:31, 30:47] = 1
    args = dict(image=image, mask=mask, invert_mask=False, detect="mask_area", top_reserve=5, bottom_reserve=5,
                left_reserve=40, right_reserve=3, round_to_multiple="16")
    crops, mask_crop, box, preview = node(registry, "LayerUtility: CropByMask V3", **args)
    # mask_area (30, 20, 16, 10) reserved to [0, 15, 49, 35], grown to 64 × 32 about its centre
    assert box == [-7, 9, 57, 41]
    assert torch.equal(mask_crop, tensor(pil(mask[0]).crop((-7, 9, 57, 41))).expand(2, -1, -1))
    assert crops.shape[-1] == 4 and torch.equal(crops[1:2], tensor(pil(image[1]).crop(tuple(box))))
    # the pack's preview: the mask as RGBA, the found area in red, the box in green
    x, y, w, h = 30, 20, 16, 10
    expected = pil(mask[0]).convert("RGBA")
    ImageDraw.Draw(expected).rectangle((x, y, x + w, y + h), outline="#F00000", width=(w + h) // 100)
    ImageDraw.Draw(expected).rectangle(tuple(box), outline="#00F000", width=(box[2] - box[0] + box[3] - box[1]) // 200)
    assert torch.equal(preview, tensor(expected))
    # an RGB image's crop is opaque inside the picture (the box may reach past its edge: transparent there)
    from_rgb = node(registry, "LayerUtility: CropByMask V3", **{**args, "image": image[..., :3]})[0]
    assert torch.equal(from_rgb[:1], tensor(pil(image[0, ..., :3]).convert("RGBA").crop(tuple(box))))
    assert from_rgb[..., 3].max() == 1


@pytest.mark.parametrize("comfy_class", ["LayerUtility: CropByMask V2", "LayerUtility: CropByMask V3"])
def test_crop_by_mask_warns_of_several_masks_under_its_own_name(registry, comfy_class, caplog):
    node(registry, comfy_class, image=rand(1, 20, 20, 3), mask=torch.ones(2, 20, 20), invert_mask=False,
         detect="mask_area", top_reserve=0, bottom_reserve=0, left_reserve=0, right_reserve=0, round_to_multiple="None")
    assert f"{comfy_class.split(': ')[1]}: several masks given" in caplog.text


def pack_normalize_gray(image):
    """imagefunc.normalize_gray."""
    img = np.asarray(image.convert("L"))
    hist, _ = np.histogram(img.reshape(-1), 256, (0, 256))
    bmin = np.min(np.where(hist > (hist.sum() * 0.0005)))
    bmax = np.max(np.where(hist > (hist.sum() * 0.0005)))
    return Image.fromarray((np.clip(img, bmin, bmax) - bmin) / (bmax - bmin) * 255).convert("L")


def pack_auto_adjust_v2(orig, mask, strength, brightness, contrast, saturation, red, green, blue, mode):
    """color_correct_auto_adjust_v2.py, written out (chop_image_v2's normal from the blend_modes package)."""
    import blend_modes
    from PIL import ImageChops, ImageEnhance

    def auto_level_gray(image):
        gray = Image.new("L", image.size, color="gray")
        gray.paste(image.convert("L"), mask=mask)
        return pack_normalize_gray(gray)

    def offset(v):
        return v / 100 + 1 if v < 0 else v / 50 + 1

    rgba = orig.convert("RGBA")
    if mode == "RGB":
        r, g, b = rgba.convert("RGB").split()
        ret = Image.merge("RGB", [auto_level_gray(r), auto_level_gray(g), auto_level_gray(b)])
    elif mode == "lum + sat":
        h, s_, v = rgba.convert("HSV").split()
        ret = Image.merge("HSV", [h, auto_level_gray(s_), v]).convert("RGB")
        lum, a, b = ret.convert("RGBA").convert("LAB").split()
        ret = Image.merge("LAB", [auto_level_gray(lum), a, b]).convert("RGB")
    elif mode == "luminance":
        lum, a, b = rgba.convert("LAB").split()
        ret = Image.merge("LAB", [auto_level_gray(lum), a, b]).convert("RGB")
    elif mode == "saturation":
        h, s_, v = rgba.convert("HSV").split()
        ret = Image.merge("HSV", [h, auto_level_gray(s_), v]).convert("RGB")
    else:
        ret = auto_level_gray(orig.convert("L")).convert("RGB")
    if (red or green or blue) and mode != "mono":
        channels = list(ret.convert("RGBA").convert("RGB").split())
        for index, balance in enumerate((red, green, blue)):
            if balance:
                gamma = 0.00005 * balance * balance - 0.01 * balance + 1
                channels[index] = channels[index].point([round(255 * (x / 255) ** gamma) for x in range(256)])
        ret = Image.merge("RGB", channels)
    if brightness:
        ret = ImageEnhance.Brightness(ret).enhance(factor=offset(brightness))
    if contrast:
        ret = ImageEnhance.Contrast(ret).enhance(factor=offset(contrast))
    if saturation:
        ret = ImageEnhance.Color(ret).enhance(factor=offset(saturation))
    blended = blend_modes.normal(np.asarray(orig.convert("RGBA"), dtype=float), np.asarray(ret.convert("RGBA"),
                                                                                          dtype=float), strength / 100)
    ret = Image.fromarray(np.uint8(blended)).convert("RGB")
    ret.paste(orig, mask=ImageChops.invert(mask))
    return ret


@pytest.mark.parametrize("mode", ["RGB", "lum + sat", "mono", "luminance", "saturation"])
def test_auto_adjust_v2_as_the_pack(registry, mode):
    images, mask = rand(2, 14, 18, 3, seed=21) * 0.5 + 0.2, rand(1, 14, 18, seed=22)
    args = dict(strength=80, brightness=10, contrast=-15, saturation=30, red=40, green=0, blue=-60, mode=mode)
    out = node(registry, "LayerColor: AutoAdjustV2", image=images, mask=mask, **args)
    for i in range(2):
        assert torch.equal(out[i:i + 1], tensor(pack_auto_adjust_v2(pil(images[i]), pil(mask[0]).convert("L"),
                                                                    *args.values())))


# -- a ComfyUI prompt ----------------------------------------------------------------------------------------


def test_an_api_prompt_with_the_new_classes_runs(registry, fonts):
    prompt = {
        "1": {"class_type": "LayerUtility: TextImage V2", "inputs": {"font_file": "aileron.ttf", **TEXT_ARGS}},
        "2": {"class_type": "LayerMask: MaskInvert", "inputs": {"mask": ["1", 1]}},
        "3": {"class_type": "LayerMask: MaskBoxDetect", "inputs": {
            "mask": ["2", 0], "detect": "mask_area", "x_adjust": 0, "y_adjust": 0, "scale_adjust": 1.0}},
        "4": {"class_type": "LayerMask: MaskBoxExtend", "inputs": {
            "mask": ["1", 1], "crop_box": ["3", 7], "top_extend": 50.0, "bottem_extend": 0.0, "left_extend": 25.0,
            "right_extend": 0.0}},
        "5": {"class_type": "LayerUtility: CropBoxResolve", "inputs": {"crop_box": ["4", 7]}},
        "6": {"class_type": "LayerUtility: BatchSelector", "inputs": {"select": "0", "images": ["1", 0]}},
    }
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["4", "5", "6"])
    assert result.status == "success", result.problems
    # the inverted text mask is white nearly everywhere: its area is the picture (119 × 89, one short),
    # widened by 44 (half of 89) at the top and 29 (a quarter of 119) at the left
    assert result.values["5"] == (-29, -44, 148, 133)
    expected_mask = torch.zeros(1, 90, 120)
    expected_mask[:, :89, :119] = 1.0  # the box ends one short of the picture's edges
    assert torch.equal(result.values["4"][0], expected_mask)
    expected, _ = pack_text_image(True, fonts / "aileron.ttf", **TEXT_ARGS)
    assert torch.equal(result.values["6"][0], tensor(expected))


# -- the pack's interface ------------------------------------------------------------------------------------

TEXT_INPUTS = (["text", "font_file", "spacing", "leading", "horizontal_border", "vertical_border", "scale",
                "variation_range", "variation_seed", "layout", "width", "height", "text_color", "background_color",
                "size_as"], ["Text", None, 0, 0, 5.0, 5.0, 80.0, 0, None, "horizontal", 512, 512, "#FFA000", "#FFFFFF"],
               ["image", "mask"])
TRANSFORM_INPUTS = ["x", "y", "mirror", "scale", "aspect_ratio", "rotate", "transform_method", "anti_aliasing"]
TRANSFORM_DEFAULTS = [0, 0, "None", 1.0, 1.0, 0.0, "lanczos", 2]
SHADOW_INPUTS = ["image", "shadow_level_offset", "shadow_range", "highlight_level_offset", "highlight_range", "mask"]
SHADOW_DEFAULTS = [0, 0.25, 0, 0.25]
BOX_OUTPUTS = ["x_percent", "y_percent", "width", "height", "x", "y", "crop_box"]
# the pack's INPUT_TYPES (names in order, widget defaults; None: a file list, or the pack's clock seed) and
# RETURN_NAMES
PACK_INTERFACE = {
    "LayerUtility: TextImage": TEXT_INPUTS,
    "LayerUtility: TextImage V2": TEXT_INPUTS,
    "LayerMask: MaskBoxDetect": (["mask", "detect", "x_adjust", "y_adjust", "scale_adjust"],
                                 ["min_bounding_rect", 0, 0, 1.0], ["box_preview", *BOX_OUTPUTS]),
    "LayerMask: MaskBoxExtend": (["mask", "crop_box", "top_extend", "bottem_extend", "left_extend", "right_extend"],
                                 [10.0, 10.0, 10.0, 10.0], ["mask", *BOX_OUTPUTS]),
    "LayerUtility: CropBoxResolve": (["crop_box"], [], ["x", "y", "width", "height"]),
    "LayerUtility: BatchSelector": (["select", "images", "masks"], ["0,"], ["image", "mask"]),
    "LayerUtility: CheckMaskV2": (["mask", "method", "white_point", "area_percent"], ["simple", 1, 0.01], ["bool"]),
    "LayerUtility: ImageShift": (["image", "shift_x", "shift_y", "cyclic", "background_color", "border_mask_width",
                                  "border_mask_blur", "mask"], [256, 256, True, "#000000", 20, 12],
                                 ["image", "mask", "border_mask"]),
    "LayerUtility: GrayValue": (["color_value"], [], ["gray(256_level)", "gray(100_level)"]),
    "LayerUtility: RGB Value": (["color_value"], [], ["R", "G", "B"]),
    "LayerMask: CreateGradientMask": (["width", "height", "gradient_side", "gradient_scale", "gradient_offset",
                                       "opacity", "size_as"], [512, 512, "bottom", 100, 0, 100], ["mask"]),
    "LayerMask: Shadow & Highlight Mask": (SHADOW_INPUTS, SHADOW_DEFAULTS, ["shadow_mask", "highlight_mask"]),
    "LayerMask: ShadowHighlightMaskV2": (SHADOW_INPUTS, SHADOW_DEFAULTS, ["shadow_mask", "highlight_mask"]),
    "LayerFilter: SoftLight": (["image", "soft", "threshold", "opacity"], [1.0, -10, 100], ["image"]),
    "LayerUtility: ImageBatchToList": (["image", "batch_size"], [6], ["image"]),
    "LayerUtility: ImageListToBatch": (["image"], [], ["image"]),
    "LayerMask: BlendIf Mask": (["image", "invert_mask", "blend_if", "black_point", "black_range", "white_point",
                                 "white_range", "mask"], [True, "gray", 0, 0, 255, 0], ["mask"]),
    "LayerMask: MaskGrain": (["mask", "grain", "invert_mask"], [6, False], ["mask"]),
    "LayerUtility: RoundedRectangle": (
        ["image", "rounded_rect_radius", "anti_aliasing", "top", "bottom", "left", "right", "detect", "obj_ext_top",
         "obj_ext_bottom", "obj_ext_left", "obj_ext_right", "object_mask", "crop_box"],
        [50, 2, 8.0, 8.0, 8.0, 8.0, "mask_area", 8.0, 8.0, 8.0, 8.0], ["image", "mask"]),
    "LayerUtility: FluxKontextImageScale": (["image", "method"], ["lanczos"], ["image"]),
    "LayerUtility: PrintInfo": (["anything"], [], ["text"]),
    "LayerUtility: NanoBananaImageScale": (["image", "method"], ["lanczos"], ["image"]),
    "LayerUtility: HLFrequencyDetailRestore": (["image", "detail_image", "keep_high_freq", "erase_low_freq",
                                                "mask_blur", "mask"], [64, 32, 16], ["image"]),
    "LayerStyle: Gradient Map": (["image", "start_color", "mid_color", "end_color", "mid_point", "opacity",
                                  "layer_mask"], ["#015A52", "#02AF9F", "#7FFFEC", 0.6, 100], ["image", "gradient"]),
    "LayerFilter: HalfTone": (["image", "dot_size", "angle", "shape", "dot_color", "background_color", "anti_aliasing",
                               "mask"], [10, 45.0, "circle", "#000000", "#FFFFFF", 1], ["image"]),
    "LayerColor: AutoBrightness": (["image", "strength", "saturation", "mask"], [75, 8], ["image"]),
    "LayerColor: Color of Shadow & Highlight": (
        ["image", "shadow_brightness", "shadow_saturation", "shadow_hue", "shadow_level_offset", "shadow_range",
         "highlight_brightness", "highlight_saturation", "highlight_hue", "highlight_level_offset", "highlight_range",
         "mask"], [1.0, 1.0, 0, 0, 0.25, 1.0, 1.0, 0, 0, 0.25], ["image"]),
    "LayerUtility: TextPreseter": (["title", "content", "text_preset"], ["", ""], ["text_preset"]),
    "LayerUtility: ChoiceTextPreset": (["text_preset", "choice_title", "random_choice", "default", "seed"],
                                       ["", False, 0, 0], ["title", "content"]),
    "LayerUtility: ImageHub": (["output", "random_output", *(f"input{n}_{kind}" for n in range(1, 10)
                                                              for kind in ("image", "mask"))], [1, False],
                               ["image", "mask"]),
    "LayerUtility: CropByMask V3": (
        ["image", "mask", "invert_mask", "detect", "top_reserve", "bottom_reserve", "left_reserve", "right_reserve",
         "round_to_multiple", "crop_box"], [False, "mask_area", 20, 20, 20, 20, "8"],
        ["croped_image", "croped_mask", "crop_box", "box_preview"]),
    "LayerColor: AutoAdjustV2": (["image", "strength", "brightness", "contrast", "saturation", "red", "green", "blue",
                                  "mode", "mask"], [100, 0, 0, 0, 0, 0, 0, "RGB"], ["image"]),
    "LayerUtility: HSV Value": (["color_value"], [], ["H", "S", "V"]),
    "LayerFilter: GaussianBlurV2": (["image", "blur"], [20.0], ["image"]),
    "LayerUtility: PurgeVRAM V2": (["anything", "purge_cache", "purge_models"], [True, True], ["any"]),
    "LayerUtility: CheckMask": (["mask", "white_point", "area_percent"], [1, 1], ["bool"]),
    "LayerUtility: AnyRerouter": (["any"], [], ["any"]),
    "LayerMask: ImageToMask": (["image", "channel", "black_point", "white_point", "gray_point", "invert_output_mask",
                                "mask"], ["L(LAB)", 0, 255, 1.0, False], ["mask"]),
    "LayerUtility: LayerImageTransform": (["image", *TRANSFORM_INPUTS], TRANSFORM_DEFAULTS, ["image"]),
    "LayerUtility: LayerMaskTransform": (["mask", *TRANSFORM_INPUTS], TRANSFORM_DEFAULTS, ["mask"]),
}


@pytest.mark.parametrize("comfy_class", sorted(PACK_INTERFACE))
def test_inputs_and_outputs_are_the_packs(registry, comfy_class):
    from graphflow.comfy_format import custom_pack
    names, defaults, outputs = PACK_INTERFACE[comfy_class]
    cls = registry.comfy_node(comfy_class)
    assert list(cls.input_specs) == names
    got = [spec.widget.default for spec in cls.input_specs.values() if spec.widget]
    assert [None if d is None else g for g, d in zip(got, defaults)] == defaults and len(got) == len(defaults)
    assert list(cls.outputs) == outputs
    assert custom_pack(comfy_class) == "ComfyUI_LayerStyle"


@pytest.mark.parametrize("comfy_class,why", [("LayerMask: RmBgUltra V2", "RMBG"),
                                             ("LayerMask: SegformerUltraV3", "Segformer"),
                                             ("LayerUtility: VQAPrompt", "BLIP")])
def test_a_model_class_is_named_with_why(registry, comfy_class, why):
    from graphflow.comfy_format import unknown_type_hint
    hint = unknown_type_hint(comfy_class)
    assert "ComfyUI_LayerStyle" in hint and why in hint and registry.comfy_node(comfy_class) is None


def test_a_ui_save_with_the_new_classes_runs_and_round_trips(registry, fonts):
    import json
    text_values = ["Hi\nyou", "aileron.ttf", 2, 0, 5.0, 5.0, 80.0, 20, 42, "vertical", 64, 48, "#FFA000", "#000000"]
    nodes = [
        ui_node(1, "LayerUtility: TextImage", text_values, [("size_as", "*", None, False)],
                [("image", "IMAGE", [1]), ("mask", "MASK", [])]),
        ui_node(2, "LayerMask: CreateGradientMask", [512, 512, "center", 100, 0, 100],
                [("size_as", "*", 1, False)], [("mask", "MASK", [2])]),
        ui_node(3, "LayerUtility: LayerMaskTransform", [4, 0, "horizontal", 0.5, 1.0, 0.0, "lanczos", 2],
                [("mask", "MASK", 2, False)], [("mask", "MASK", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 3, 0, "MASK"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, outputs=["1", "3"])
    args = dict(zip(["text", "spacing", "leading", "horizontal_border", "vertical_border", "scale", "variation_range",
                     "variation_seed", "layout", "width", "height", "text_color", "background_color"],
                    [text_values[0], *text_values[2:]]))
    expected, _ = pack_text_image(False, fonts / "aileron.ttf", **args)
    assert torch.equal(result.values["1"][0], tensor(expected))
    gradient = pack_gradient_mask(64, 48, "center", 100, 0, 100)
    small = gradient.transpose(Image.FLIP_LEFT_RIGHT).convert("RGB").resize((32, 24)).convert("L")
    assert torch.equal(result.values["3"][0], tensor(placed(small, (64, 48), (16 + 4, 12))))
    saved = {n["id"]: n for n in json.loads(json.dumps(export_ui(parse_workflow(graph, registry), registry)))["nodes"]}
    for original in nodes:
        assert saved[original["id"]]["type"] == original["type"]
        assert saved[original["id"]]["widgets_values"] == original["widgets_values"], original["type"]
