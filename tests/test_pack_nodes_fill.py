"""filliptm's ComfyUI_Fill-Nodes, round 1 (nodes/pack_nodes_fill.py): each node against an independent
reference (the pack's formulas written out here loop by loop, as its code runs them on the [B, C, H, W]
reading it makes of an image; colorsys, kornia, numpy's convolve, Python's own arithmetic); inputs and
defaults against the pack's INPUT_TYPES; errors by input name; a UI-format save and an API prompt under
the pack's class names."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch

from graphflow.comfy_format import LEFT_OUT, custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.server.comfyui_object_info import object_info
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def _images(seed=0, batch=2, height=12, width=16, channels=3):
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(seed))


def _refused(registry, node_type, input_name, match=None, **inputs):
    with pytest.raises(NodeInputError, match=match) as caught:
        call(registry, node_type, **inputs)
    assert caught.value.input == input_name


# -- inputs as the pack declares them --------------------------------------------------------------

# class: [(input, type, default, min, max, step)] in INPUT_TYPES order (None where the pack gives none)
PACK_INPUTS = {
    "FL_Padding": [("image", "IMAGE", None, None, None, None)]
    + [(f"padding_{side}", "INT", 0, 0, 4096, 1) for side in ("left", "right", "top", "bottom")]
    + [(c, "INT", 255, 0, 255, 1) for c in ("red", "green", "blue")]
    + [("include_alpha", "BOOLEAN", False, None, None, None)],
    "FL_ApplyMask": [("image", "IMAGE", None, None, None, None), ("mask", "MASK", None, None, None, None)],
    "FL_ImageBatchToGrid": [("images", "IMAGE", None, None, None, None), ("images_per_row", "INT", 5, 1, 20, 1)],
    "FL_ImageDimensionDisplay": [("image", "IMAGE", None, None, None, None)],
    "FL_ImageAddToBatch": [("images1", "IMAGE", None, None, None, None), ("images2", "IMAGE", None, None, None, None)],
    "FL_ImageSlicer": [("image", "IMAGE", None, None, None, None), ("x_subdivisions", "INT", 2, 1, 100, 1),
                       ("y_subdivisions", "INT", 2, 1, 100, 1)],
    "FL_ImageCaptionSaver": [("images", "IMAGE", None, None, None, None),
                             ("folder_name", "STRING", "output_folder", None, None, None),
                             ("caption_text", "STRING", "Your caption here", None, None, None),
                             ("overwrite", "BOOLEAN", True, None, None, None)],
    "FL_HexagonalPattern": [("images", "IMAGE", None, None, None, None), ("hexagon_size", "INT", 100, 50, 500, 10),
                            ("shadow_offset", "INT", 5, 0, 20, 1),
                            ("shadow_color", "STRING", "purple", None, None, None),
                            ("background_color", "STRING", "black", None, None, None),
                            ("rotation", "FLOAT", 0.0, 0.0, 360.0, 1.0), ("spacing", "FLOAT", 1.0, 0.5, 2.0, 0.1)],
    "FL_ImageNotes": [("images", "IMAGE", None, None, None, None), ("text", "STRING", "Text Here", None, None, None),
                      ("bar_height", "INT", 50, 10, 200, 2), ("text_size", "INT", 24, 10, 100, 1)],
    "FL_Ascii": [("image", "IMAGE", None, None, None, None), ("spacing", "INT", 20, 1, None, 1),
                 ("font_size", "INT", 20, 1, None, 1),
                 ("characters", "STRING", "\\._♥♦♣MachineDelusions♣♦♥_./", None, None, None),
                 ("font", [], None, None, None, None), ("sequence_toggle", ["off", "on"], None, None, None, None)],
    "FL_ImageCollage": [("base_image", "IMAGE", None, None, None, None),
                        ("tile_image", "IMAGE", None, None, None, None),
                        ("tile_size", "INT", 32, 8, 256, 8), ("spacing", "INT", 0, 0, 64, 1)],
    "FL_PromptSelector": [("prepend_text", "STRING", "", None, None, None),
                          ("prompts", "STRING", None, None, None, None),
                          ("append_text", "STRING", "", None, None, None), ("index", "INT", 0, 0, 6969, 1)],
    "FL_ImageRandomizer": [("directory_path", "STRING", "", None, None, None),
                           ("seed", "INT", 0, 0, 0xffffffffffffffff, None),
                           ("search_subdirectories", "BOOLEAN", False, None, None, None)],
    "FL_ColorPicker": [("selected_color", "STRING", "#FF0000", None, None, None)],
    "FL_Switch": [("switch", "BOOLEAN", False, None, None, None), ("on_false", "*", None, None, None, None),
                  ("on_true", "*", None, None, None, None)],
    "FL_Switch_Big": [("switch_condition", "STRING", "", None, None, None)]
    + [(f"case_{n}", "STRING", "", None, None, None) for n in range(1, 6)]
    + [(f"input_{n}", "*", None, None, None, None) for n in ("default", 1, 2, 3, 4, 5)],
    "FL_PaddingRemover": [("image", "IMAGE", None, None, None, None), ("tolerance", "INT", 30, 0, 255, 1),
                          ("min_content_size", "INT", 20, 1, 1000, 1), ("sides_trim", "INT", 1, 0, 256, 1),
                          ("top_bottom_trim", "INT", 1, 0, 256, 1), ("debug_view", "BOOLEAN", False, None, None, None),
                          ("use_gpu", "BOOLEAN", False, None, None, None)],
    "FL_Math": [(n, "FLOAT", 0, -1000000, 1000000, 0.01) for n in "ABC"]
    + [("equation", "STRING", "A + B * C", None, None, None)],
    "FL_HalftonePattern": [("images", "IMAGE", None, None, None, None), ("dot_size", "INT", 5, 1, 20, 1),
                           ("dot_spacing", "INT", 10, 5, 50, 1)],
    "FL_PixelSort": [("images", "IMAGE", None, None, None, None),
                     ("direction", ["Horizontal", "Vertical"], None, None, None, None),
                     ("threshold", "FLOAT", 0.5, 0.0, 1.0, 0.01), ("smoothing", "FLOAT", 0.1, 0.0, 1.0, 0.01),
                     ("rotation", "INT", 0, 0, 3, 1)],
    # kernel_size: the pack gives no min (ours is 1: kornia fails on 0)
    "FL_ImagePixelator": [("image", "IMAGE", None, None, None, None), ("scale_factor", "FLOAT", 0.05, 0.01, 0.2, 0.01),
                          ("kernel_size", "INT", 3, 1, 10, 1), ("modulation", "FLOAT", 0.0, 0.0, 1.0, 0.01)],
    "FL_Dither": [("images", "IMAGE", None, None, None, None),
                  ("dither_method", ["Floyd-Steinberg", "Random", "Ordered", "Bayer"], None, None, None, None),
                  ("num_colors", "INT", 2, 2, 256, 1)],
    "FL_RetroEffect": [("images", "IMAGE", None, None, None, None)]
    + [(n, "FLOAT", d, 0.0, 1.0, 0.01) for n, d in (("color_offset", 0.2), ("scanline_strength", 0.5),
                                                     ("vignette_strength", 0.7), ("noise_strength", 0.3))],
}
PACK_OUTPUTS = {"FL_ImageDimensionDisplay": ["STRING"], "FL_ImageCaptionSaver": ["STRING"], "FL_Switch_Big": ["*"],
                "FL_PromptSelector": ["STRING"],
                "FL_ImageRandomizer": ["IMAGE", "PATH"], "FL_ColorPicker": ["STRING"], "FL_Switch": ["*"],
                "FL_Math": ["INT", "FLOAT"]}


def test_inputs_and_outputs_are_the_packs(registry):
    info = object_info(registry)
    for name, inputs in PACK_INPUTS.items():
        entry = info[name]
        order = entry["input_order"].get("required", []) + entry["input_order"].get("optional", [])
        assert order == [i[0] for i in inputs], name
        declared = {**entry["input"].get("required", {}), **entry["input"].get("optional", {})}
        for input_name, kind, default, low, high, step in inputs:
            spec = declared[input_name]
            assert spec[0] == kind, (name, input_name)
            options = spec[1] if len(spec) > 1 else {}
            for key, want in (("default", default), ("min", low), ("max", high), ("step", step)):
                if want is not None:
                    assert options.get(key) == want, (name, input_name, key)
        assert entry["output"] == PACK_OUTPUTS.get(name, ["IMAGE"]), name
        assert entry["category"].startswith("🏵️Fill Nodes/"), name
    for name in ("FL_HexagonalPattern", "FL_RetroEffect"):  # the pack declares every widget of these optional
        assert info[name]["input_order"]["required"] == ["images"], name
        assert info[name]["input_order"]["optional"] == [i[0] for i in PACK_INPUTS[name][1:]], name


# -- utilities -------------------------------------------------------------------------------------


def test_padding_puts_the_picture_on_an_opaque_border(registry):
    images = _images()
    out = call(registry, "FillPadding", image=images, padding_left=3, padding_right=1, padding_top=2,
               padding_bottom=4, red=10, green=20, blue=30, include_alpha=True)
    assert out.shape == (2, 18, 20, 4)
    border = torch.tensor([10, 20, 30, 255]) / 255.0
    assert torch.equal(out[:, :2].reshape(-1, 4), border.expand(2 * 2 * 20, 4))
    assert torch.equal(out[:, :, :3].reshape(-1, 4), border.expand(2 * 18 * 3, 4))
    assert torch.equal(out[:, 2:14, 3:19, :3], images) and bool((out[:, 2:14, 3:19, 3] == 1).all())
    rgb = call(registry, "FillPadding", image=images, padding_right=2)
    assert rgb.shape == (2, 12, 18, 3) and bool((rgb[:, :, 16:] == 1).all())
    one = call(registry, "FillPadding", image=images[..., :1], padding_top=1, include_alpha=True)
    assert torch.equal(one[:, 1:], images[..., :1].expand(-1, -1, -1, 4))  # repeated into all four, as the pack
    estimate = registry.get("FillPadding").estimate({"padding_left": 3, "padding_right": 1, "padding_top": 2,
                                                     "padding_bottom": 4}, {"image": _size(2, 12, 16)})
    assert (estimate.size.batch, estimate.size.height, estimate.size.width) == (2, 18, 20)
    _refused(registry, "FillPadding", "image", image=images[..., :2])


def _size(batch, height, width):
    from graphflow.api import Size
    return Size(batch, height, width)


def test_apply_mask_sets_alpha(registry):
    images = _images()
    mask = torch.rand(1, 12, 16)
    out = call(registry, "FillApplyMask", image=images, mask=mask)
    assert torch.equal(out[..., :3], images) and torch.equal(out[..., 3], mask.expand(2, -1, -1))
    # a 0..255 mask of another size: nearest to the images' size, / 255
    small = torch.tensor([[[0.0, 255.0], [51.0, 102.0]]])
    resized = call(registry, "FillApplyMask", image=images[..., :3], mask=small)[0, ..., 3]
    rows, cols = np.floor(np.arange(12) * 2 / 12).astype(int), np.floor(np.arange(16) * 2 / 16).astype(int)
    assert torch.equal(resized, small[0][rows][:, cols] / 255.0)
    over = call(registry, "FillApplyMask", image=images, mask=mask * 1.5)[..., 3]  # any value over 1: / 255
    assert torch.allclose(over, (mask * 1.5 / 255).expand(2, -1, -1))
    rgba = torch.cat([images, torch.zeros(2, 12, 16, 1)], -1)
    replaced = call(registry, "FillApplyMask", image=rgba, mask=mask)
    assert torch.equal(replaced[..., 3], mask.expand(2, -1, -1)) and bool((rgba[..., 3] == 0).all())
    _refused(registry, "FillApplyMask", "mask", image=images, mask=torch.rand(3, 12, 16))


def test_batch_to_grid(registry):
    images = _images(batch=5, height=4, width=6)
    grid = call(registry, "FillImageBatchToGrid", images=images, images_per_row=3)
    assert grid.shape == (1, 8, 18, 3)
    for index in range(5):
        row, column = divmod(index, 3)
        assert torch.equal(grid[0, row * 4:row * 4 + 4, column * 6:column * 6 + 6], images[index])
    assert bool((grid[0, 4:, 12:] == 0).all())
    wide = call(registry, "FillImageBatchToGrid", images=images[:2], images_per_row=4)
    assert wide.shape == (1, 4, 24, 3) and bool((wide[0, :, 12:] == 0).all())


def test_size_text_color_and_switch(registry):
    assert call(registry, "FillImageDimensionDisplay", image=_images(height=7, width=9)) == "Width: 9, Height: 7"
    assert call(registry, "FillColorPicker", selected_color="#12ab34") == "#12ab34"
    assert call(registry, "FillSwitch", switch=True, on_true="yes", on_false="no") == "yes"
    assert call(registry, "FillSwitch", switch=False, on_true="yes", on_false="no") == "no"
    assert call(registry, "FillSwitch", switch=False, on_false=3) == 3
    _refused(registry, "FillSwitch", "on_true", switch=True, on_false=3)


def test_add_to_batch_resizes_the_second_as_the_pack(registry):
    first, second = _images(1, batch=2, height=8, width=12), _images(2, batch=3, height=24, width=36)
    out = call(registry, "FillImageAddToBatch", images1=first, images2=second)
    # shrinking by 3: area averaging is the mean of each 3 × 3 block
    blocks = second.reshape(3, 8, 3, 12, 3, 3).mean(dim=(2, 4))
    assert out.shape == (5, 8, 12, 3) and torch.equal(out[:2], first) and torch.allclose(out[2:], blocks, atol=1e-6)
    grown = call(registry, "FillImageAddToBatch", images1=second, images2=first)
    want = torch.nn.functional.interpolate(first.movedim(-1, 1), size=(24, 36), mode="bicubic",
                                           align_corners=False).movedim(1, -1)
    assert torch.equal(grown[3:], want)
    same = call(registry, "FillImageAddToBatch", images1=first, images2=first)
    assert torch.equal(same, torch.cat([first, first]))
    _refused(registry, "FillImageAddToBatch", "images2", images1=first, images2=first[..., :1])


def test_image_slicer_cuts_the_first_image_as_pils_crops(registry):
    from PIL import Image
    images = _images(9, batch=2, height=11, width=14, channels=4)
    out = call(registry, "FillImageSlicer", image=images, x_subdivisions=3, y_subdivisions=2)
    picture = Image.fromarray(np.clip(images[0].numpy() * 255.0, 0, 255).astype(np.uint8), "RGBA")
    want = [picture.crop((x * 4, y * 5, x * 4 + 4, y * 5 + 5)) for y in range(2) for x in range(3)]
    assert out.shape == (6, 5, 4, 4)
    assert torch.equal(out, torch.stack([torch.from_numpy(np.asarray(p, dtype=np.float32) / 255.0) for p in want]))
    estimate = registry.get("FillImageSlicer").estimate({"x_subdivisions": 3, "y_subdivisions": 2},
                                                        {"image": _size(2, 11, 14)})
    assert (estimate.size.batch, estimate.size.height, estimate.size.width) == (6, 5, 4)
    _refused(registry, "FillImageSlicer", "x_subdivisions", image=images, x_subdivisions=15)
    _refused(registry, "FillImageSlicer", "y_subdivisions", image=images, y_subdivisions=12)


def test_caption_saver_writes_pictures_and_cleaned_captions(registry, tmp_folders):
    from PIL import Image
    images = _images(10, batch=2, height=5, width=7)
    caption = "A cat, sitting! (on) a mat? #1 — naïve\tdone."
    said = call(registry, "FillImageCaptionSaver", images=images, folder_name="set/one", caption_text=caption)
    folder = tmp_folders.outputs / "set" / "one"
    assert said == "Saved 2 images and sanitized captions in 'set/one'"
    assert sorted(p.name for p in folder.iterdir()) == ["image_0.png", "image_0.txt", "image_1.png", "image_1.txt"]
    cleaned = "".join(c for c in caption if c.isascii() and (c.isalnum() or c in " \t.,!?-"))
    assert (folder / "image_1.txt").read_text(encoding="utf-8") == cleaned == "A cat, sitting! on a mat? 1  nave\tdone."
    levels = np.clip(images[1].numpy() * 255.0, 0, 255).astype(np.uint8)
    with Image.open(folder / "image_1.png") as saved:
        assert saved.mode == "RGB" and np.array_equal(np.asarray(saved), levels)
    call(registry, "FillImageCaptionSaver", images=images[:1], folder_name="set/one", caption_text="x", overwrite=False)
    call(registry, "FillImageCaptionSaver", images=images[:1], folder_name="set/one", caption_text="y", overwrite=False)
    assert (folder / "image_0_1.txt").read_text() == "x" and (folder / "image_0_2.txt").read_text() == "y"
    call(registry, "FillImageCaptionSaver", images=images[:1, ..., :1], folder_name="set/one", caption_text="z")
    assert (folder / "image_0.txt").read_text() == "z"
    with Image.open(folder / "image_0.png") as saved:
        assert saved.mode == "RGB" and saved.getpixel((0, 0))[0] == saved.getpixel((0, 0))[2]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    for bad in ("../out", "/tmp/x", ""):
        _refused(registry, "FillImageCaptionSaver", "folder_name", images=images, folder_name=bad)


def test_image_notes_puts_a_bar_with_centred_text_above(registry, tmp_folders):
    from PIL import Image, ImageDraw, ImageFont
    images = _images(12, batch=2, height=20, width=120, channels=4)
    out = call(registry, "FillImageNotes", images=images, text="Hello notes", bar_height=40, text_size=18)
    assert out.shape == (2, 60, 120, 3)
    levels = np.clip(images[..., :3].numpy() * 255.0, 0, 255).astype(np.uint8)
    levels = torch.from_numpy(levels.astype(np.float32) / 255)
    assert torch.equal(out[:, 40:], levels)
    font = ImageFont.load_default(size=18)  # no arial.ttf in models/fonts here
    ink = font.getmask("Hello notes").getbbox()
    bar = Image.new("RGB", (120, 40), "black")
    ImageDraw.Draw(bar).text(((120 - ink[2]) // 2, (40 - ink[3] - font.getmetrics()[1]) // 2), "Hello notes",
                             font=font, fill="white")
    assert torch.equal(out[0, :40], torch.from_numpy(np.asarray(bar, dtype=np.float32) / 255))
    assert bool(out[0, :40].any()) and torch.equal(out[0, :40], out[1, :40])
    blank = call(registry, "FillImageNotes", images=images, text="  ", bar_height=10, text_size=10)
    assert not bool(blank[:, :10].any())


def test_prompt_selector(registry):
    prompts = "  a cat \nthe dog\n\n  a bird"
    assert call(registry, "FillPromptSelector", prompts=prompts, index=0) == "a cat"
    assert call(registry, "FillPromptSelector", prepend_text=" photo of ", prompts=prompts, append_text="hd\n",
                index=3) == "photo of a bird hd"
    assert call(registry, "FillPromptSelector", prepend_text="x", prompts=prompts, index=2) == "x "
    _refused(registry, "FillPromptSelector", "index", prompts=prompts, index=4)


def test_image_randomizer_picks_seed_modulo_the_sorted_pictures(registry, tmp_folders, tmp_path):
    from PIL import Image
    folder = tmp_folders.inputs / "pool"
    (folder / "deep").mkdir(parents=True)
    colours = {"b.png": 10, "a.JPG": 60, "c.bmp": 90, "deep/d.gif": 130}
    for name, level in colours.items():
        Image.new("RGB", (6, 5), (level, level, 0)).save(folder / name)
    (folder / "notes.txt").write_text("not a picture")
    secret = tmp_path / "secret.png"
    Image.new("RGB", (6, 5), (250, 0, 0)).save(secret)
    (folder / "e.png").symlink_to(secret)  # leads out of the inputs folder: left out
    flat = ["a.JPG", "b.png", "c.bmp"]
    tree = ["a.JPG", "b.png", "c.bmp", "deep/d.gif"]
    for seed in range(7):
        image, path = call(registry, "FillImageRandomizer", directory_path="pool", seed=seed)
        assert path == "pool/" + flat[seed % 3]
        assert image.shape == (1, 5, 6, 3)
        assert abs(float(image[0, 0, 0, 0]) * 255 - colours[flat[seed % 3]]) < 3  # a JPEG is near its level
        _, path = call(registry, "FillImageRandomizer", directory_path="pool/", seed=seed, search_subdirectories=True)
        assert path == "pool/" + tree[seed % 4]
    cls = registry.get("FillImageRandomizer")
    before = cls.fingerprint(directory_path="pool", seed=0, search_subdirectories=False)
    Image.new("RGB", (6, 5)).save(folder / "f.png")
    assert cls.fingerprint(directory_path="pool", seed=0, search_subdirectories=False) != before
    # the pack sorts path strings: "img.png" before "img/x.png" (a Path sorts them the other way)
    (tmp_folders.inputs / "order" / "img").mkdir(parents=True)
    Image.new("RGB", (6, 5), (200, 0, 0)).save(tmp_folders.inputs / "order" / "img.png")
    Image.new("RGB", (6, 5), (0, 200, 0)).save(tmp_folders.inputs / "order" / "img" / "x.png")
    for seed, want in ((0, "order/img.png"), (1, "order/img/x.png")):
        _, path = call(registry, "FillImageRandomizer", directory_path="order", seed=seed, search_subdirectories=True)
        assert path == want
    for bad in ("", "../", "/etc", "missing"):
        _refused(registry, "FillImageRandomizer", "directory_path", directory_path=bad)
    (folder / "empty").mkdir()
    _refused(registry, "FillImageRandomizer", "directory_path", match="no .jpg", directory_path="pool/empty")


def test_switch_big_takes_the_first_connected_matching_case(registry):
    cases = {"case_1": "a", "case_2": "b", "case_3": "b", "case_4": "", "case_5": "e"}
    assert call(registry, "FillSwitchBig", switch_condition="b", **cases, input_2=2, input_3=3, input_default=0) == 2
    assert call(registry, "FillSwitchBig", switch_condition="b", **cases, input_3=3, input_default=0) == 3
    assert call(registry, "FillSwitchBig", switch_condition="z", **cases, input_1=1, input_default=0) == 0
    assert call(registry, "FillSwitchBig", switch_condition="a", **cases, input_1=1) == 1
    assert call(registry, "FillSwitchBig", switch_condition="", **cases, input_4="four") == "four"
    _refused(registry, "FillSwitchBig", "input_default", switch_condition="a", **cases, input_2=2)


def _framed(content, left, top, right, bottom, colour=(200, 10, 10)):
    """content [H, W, 3] levels in a flat frame of the given widths, as 0..1 floats."""
    height, width = content.shape[:2]
    picture = np.empty((height + top + bottom, width + left + right, 3), dtype=np.uint8)
    picture[:] = colour
    picture[top:top + height, left:left + width] = content
    return torch.from_numpy(picture.astype(np.float32) / 255)


def test_padding_remover_finds_the_frame(registry):
    content = np.random.default_rng(3).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    picture = _framed(content, 3, 5, 2, 4)  # 29 wide, 29 high
    picture[0, 10] = 0  # one speck in a padding row: 1 of 29 pixels (under 5%) differs, still padding
    picture[1, 10:12] = 0  # two specks: 2 of 29 (over 5%): not padding, so the top stops here
    out = call(registry, "FillPaddingRemover", image=picture[None], min_content_size=5)
    levels = (picture * 255).to(torch.uint8).float() / 255
    assert torch.equal(out[0], levels[1 + 1:5 + 20 - 1, 3 + 1:3 + 24 - 1])
    untrimmed = call(registry, "FillPaddingRemover", image=picture[None, 2:], min_content_size=5, sides_trim=0,
                     top_bottom_trim=0)
    assert torch.equal(untrimmed[0], levels[5:25, 3:27])
    # too little content left: the whole picture (trimmed)
    whole = call(registry, "FillPaddingRemover", image=picture[None], min_content_size=25)
    assert torch.equal(whole[0], levels[1:-1, 1:-1])
    # a trim that leaves nothing is undone
    kept = call(registry, "FillPaddingRemover", image=picture[None, 2:], min_content_size=5, sides_trim=200)
    assert torch.equal(kept, untrimmed)  # both trims undone, as the pack falls back to the box found
    shown = call(registry, "FillPaddingRemover", image=picture[None, 2:], min_content_size=5, debug_view=True)[0]
    assert shown.shape == picture[2:].shape
    red = torch.tensor([1.0, 0.0, 0.0])
    box = (4, 4, 26, 22)  # (left, top, right, bottom) after the trims, rows counted in the cut picture
    for y, x in ((box[1], box[0]), (box[1] + 1, box[0] + 1), (box[3], box[2]), (box[3] - 1, box[2] - 1)):
        assert torch.equal(shown[y, x], red), (y, x)
    assert torch.equal(shown[box[1] + 2, box[0] + 2], levels[2 + box[1] + 2, box[0] + 2])
    other = _framed(content, 6, 5, 2, 4)
    _refused(registry, "FillPaddingRemover", "image", match="differ in size",
             image=torch.stack([picture[:, 3:], other[:, :26]]), min_content_size=5)


@pytest.mark.parametrize("equation, a, b, c", [
    ("A + B * C", 1.5, 2.0, -3.25), ("(A - B) / C", 7.0, 2.0, 4.0), ("-A ** 2 + 2 ** 10", 3.0, 0.0, 0.0),
    ("A / B", 1.0, 3.0, 0.0), ("-(A*B) - C*C*C", -12.5, 0.5, 100.0), ("2 ** 100 / 2 ** 98", 0.0, 0.0, 0.0)])
def test_math_gives_pythons_value(registry, equation, a, b, c):
    want = eval(equation, {"__builtins__": {}}, {"A": a, "B": b, "C": c})  # the test's own reference: Python's
    assert call(registry, "FillMath", equation=equation, A=a, B=b, C=c) == (int(want), float(want))


@pytest.mark.parametrize("equation", ["A / 0", "D + 1", "A % 2", "abs(A)", "(-8.0) ** 0.5", "9 ** 9 ** 9",
                                      "2.0 ** 5000", "A +", "1j", "True + 1"])
def test_math_gives_zero_where_the_pack_does(registry, equation):
    assert call(registry, "FillMath", equation=equation, A=2.0) == (0, 0.0)


def test_math_bounds_every_integer_not_only_powers(registry, caplog):
    from nodes.pack_nodes_fill import MOST_POWER_BITS, equation_value
    chain = "*".join(["9**16384"] * 3)  # each factor under the bit limit, the product over it
    with pytest.raises(ArithmeticError, match="bits"):
        equation_value(chain, {})
    assert equation_value("9**16384*9", {}) == 9 ** 16385  # a product under the limit is worked out
    with pytest.raises(ArithmeticError):
        equation_value(f"2**{MOST_POWER_BITS - 1} + 2**{MOST_POWER_BITS - 1}", {})  # a sum over it too
    with caplog.at_level("WARNING"):
        assert call(registry, "FillMath", equation="*".join(["9**16384"] * 200)) == (0, 0.0)
        assert call(registry, "FillMath", equation="(2**32768)**2") == (0, 0.0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("too large" in m for m in messages) and not any("4300" in m for m in messages)
    assert all(len(m) < 400 for m in messages)  # the 1,799-character equation is cut short


def test_math_refuses_an_overlong_equation(registry):
    _refused(registry, "FillMath", "equation", equation="1+" * 5000 + "1")


# -- VFX -------------------------------------------------------------------------------------------


def _pack_halftone(image, dot_size, dot_spacing):
    """FL_HalftonePattern written out: a disc per cell, cropped from its first rows / columns."""
    img = image.numpy().astype(np.float64)  # the pack's np.dot with a list of Python floats works in float64
    gray = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    height, width = gray.shape
    out = np.ones((height, width), dtype=np.float32)
    for y in range(0, height, dot_spacing):
        for x in range(0, width, dot_spacing):
            r = int((1 - gray[y:y + dot_spacing, x:x + dot_spacing].mean()) * dot_size / 2)
            cy, cx = y + dot_spacing // 2, x + dot_spacing // 2
            disc = [[(i - r) ** 2 + (j - r) ** 2 <= r * r for j in range(2 * r + 1)] for i in range(2 * r + 1)]
            y0, y1, x0, x1 = max(0, cy - r), min(height, cy + r + 1), max(0, cx - r), min(width, cx + r + 1)
            for i in range(y1 - y0):
                for j in range(x1 - x0):
                    if disc[i][j]:
                        out[y0 + i, x0 + j] = 0
    return torch.from_numpy(np.stack([out] * 3, -1))


@pytest.mark.parametrize("dot_size, dot_spacing", [(5, 10), (20, 5), (9, 7)])
def test_halftone(registry, dot_size, dot_spacing):
    images = _images(3, height=23, width=31)
    out = call(registry, "FillHalftonePattern", images=images, dot_size=dot_size, dot_spacing=dot_spacing)
    want = torch.stack([_pack_halftone(image, dot_size, dot_spacing) for image in images])
    assert torch.equal(out, want)
    assert bool((out == 0).any()) and bool((out == 1).any())


def _pack_pixel_sort(image, threshold, smoothing, rotation):
    """FL_PixelSort written out: colorsys saturation, numpy's convolutions, a split and argsort a row."""
    pixels = np.rot90(np.clip(image.numpy() * 255.0, 0, 255).astype(np.uint8), rotation).copy()
    height, width = pixels.shape[:2]
    values = np.array([[colorsys.rgb_to_hsv(*(pixels[y, x] / 255.0))[1] for x in range(width)]
                       for y in range(height)])
    bright = values > threshold
    edges = np.stack([np.convolve(bright[:, x], [-1, 1], "same") for x in range(width)], axis=1)
    edges = np.clip(edges, 0, 1)
    box = int(smoothing * width)
    if box:
        edges = np.convolve(edges.flatten(), np.ones(box), "same").reshape(edges.shape)
    out = pixels.copy()
    for row in range(height):
        cuts = np.flatnonzero(edges[row])
        pieces = np.split(values[row], cuts)
        order = [np.arange(pieces[0].size)] + [np.argsort(p) + cuts[i] for i, p in enumerate(pieces[1:])]
        out[row] = pixels[row, np.concatenate(order).astype(int)]
    return torch.from_numpy(np.rot90(out, -rotation).astype(np.float32) / 255.0)


@pytest.mark.parametrize("threshold, smoothing, rotation", [(0.5, 0.1, 0), (0.3, 0.25, 1), (0.6, 0.5, 2),
                                                             (0.4, 0.0, 3)])
def test_pixel_sort(registry, threshold, smoothing, rotation):
    # blocks of colour, so that runs of equal saturation make ties for argsort too
    images = torch.rand(2, 6, 8, 3, generator=torch.Generator().manual_seed(5)).repeat_interleave(3, 1)
    images = images.repeat_interleave(2, 2)[:, :17, :15]
    out = call(registry, "FillPixelSort", images=images, threshold=threshold, smoothing=smoothing, rotation=rotation)
    want = torch.stack([_pack_pixel_sort(image, threshold, smoothing, rotation) for image in images])
    assert out.shape == images.shape and torch.equal(out, want)
    levels = (images * 255).to(torch.uint8).float() / 255
    assert not torch.equal(out, levels)  # something moved
    # each row (of the turned picture) keeps its pixels, reordered
    def colours(x):
        codes = torch.round(torch.rot90(x, rotation, (1, 2)) * 255).long() @ torch.tensor([65536, 256, 1])
        return codes.sort(dim=-1).values
    assert torch.equal(colours(out), colours(levels))


def test_pixel_sort_drops_alpha(registry):
    images = _images(4, channels=4)
    out = call(registry, "FillPixelSort", images=images)
    assert torch.equal(out, call(registry, "FillPixelSort", images=images[..., :3]))
    _refused(registry, "FillPixelSort", "images", images=images[..., :1])


def _pack_pixelate(image, scale, kernel):
    """FL_ImagePixelator written out: nearest by index (floor(i · in / out)) over the [1, H, W, C] read
    as [N, C, H, W], then kornia's morphological gradient on the true channels."""
    kornia = pytest.importorskip("kornia")
    planes = image.numpy()  # [H, W, C]
    _, width, channels = planes.shape
    small = (max(1, int(width * scale)), max(1, int(channels * scale)))

    def nearest(a, size, axis):
        index = np.floor(np.arange(size) * (a.shape[axis] / size)).astype(int)
        return np.take(a, np.minimum(index, a.shape[axis] - 1), axis=axis)

    shrunk = nearest(nearest(planes, small[0], 1), small[1], 2)
    grown = nearest(nearest(shrunk, width, 1), channels, 2)
    x = torch.from_numpy(np.ascontiguousarray(grown)).movedim(-1, 0)[None]
    return kornia.morphology.gradient(x, torch.ones(kernel, kernel))[0].movedim(0, -1)


@pytest.mark.parametrize("scale, kernel, modulation", [(0.05, 3, 0.0), (0.2, 4, 0.5), (0.13, 1, 1.0)])
def test_pixelator(registry, scale, kernel, modulation):
    images = _images(6, batch=3, height=10, width=40)
    out = call(registry, "FillImagePixelator", image=images, scale_factor=scale, kernel_size=kernel,
               modulation=modulation)
    for index, image in enumerate(images):
        factor = 1 + modulation * math.sin(2 * math.pi * index / 3)
        assert torch.allclose(out[index], _pack_pixelate(image, scale * factor, kernel), atol=1e-6), index
    if kernel > 1:
        # the pack's picture: every channel the red one, each row its own (the height is not pixelated)
        assert torch.equal(out[..., 0], out[..., 1]) and torch.equal(out[..., 0], out[..., 2])


def _bayer(y, x):
    return ((0, 8, 2, 10), (12, 4, 14, 6), (3, 11, 1, 9), (15, 7, 13, 5))[y % 4][x % 4] / 16.0


def _pack_dither(image, method, n, noise=None):
    """FL_Dither written out element by element on the pack's reading of [1, H, W, C] as [B, C, H, W]:
    its "rows" are the image's columns, its "columns" the colour channels."""
    img = image.clone()[None]
    h, w = img.shape[2], img.shape[3]
    if method == "Floyd-Steinberg":
        for y in range(h):
            for x in range(w):
                old = img[:, :, y, x].clone()
                new = torch.round(old * (n - 1)) / (n - 1)
                img[:, :, y, x] = new
                err = old - new
                for dy, dx, weight in ((0, 1, 7), (1, -1, 3), (1, 0, 5), (1, 1, 1)):
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        img[:, :, y + dy, x + dx] += err * weight / 16
        return img[0]
    if method == "Random":
        return (torch.floor((img + noise / (n * 2)) * (n - 1)) / (n - 1))[0]
    t = torch.tensor([[_bayer(y, x) for x in range(w)] for y in range(h)])
    if method == "Ordered":
        return (torch.floor((img + t / n) * (n - 1)) / (n - 1))[0]
    q = torch.round(img * (n - 1)) / (n - 1)
    return torch.where(img > t, q + 1 / (n - 1), q).clamp(0, 1)[0]


@pytest.mark.parametrize("method", ["Floyd-Steinberg", "Random", "Ordered", "Bayer"])
@pytest.mark.parametrize("colors", [2, 5])
def test_dither(registry, method, colors):
    images = _images(7, height=6, width=9)
    out = call(registry, "FillDither", images=images, dither_method=method, num_colors=colors)
    generator = torch.Generator().manual_seed(0)
    noises = [torch.rand(image.shape, generator=generator)[None] for image in images]
    want = torch.stack([_pack_dither(image, method, colors, noise) for image, noise in zip(images, noises)])
    assert torch.allclose(out, want, atol=1e-6)
    levels = torch.round(out * (colors - 1))
    assert torch.allclose(out * (colors - 1), levels, atol=1e-5)  # on the levels


def _pack_hexagons(image, size, offset, shadow, background, turns, spacing):
    """FL_HexagonalPattern written out in numpy for quarter turns: the tiles in the pack's order, each a
    shadow (the colour where the hexagon shifted by offset lies, else black) then the turned square,
    both through the hexagon (Pillow's regular_polygon, all or nothing)."""
    from PIL import Image, ImageDraw
    hexagon = Image.new("L", (size, size), 0)
    ImageDraw.Draw(hexagon).regular_polygon((size // 2, size // 2, size // 2), 6, fill=255)
    inside = np.asarray(hexagon) > 0
    picture = np.clip(image.numpy() * 255.0, 0, 255).astype(np.uint8)
    height, width = picture.shape[:2]
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = background
    step_x, step_y = int(size * spacing), int(size * spacing * math.sqrt(3) / 2)
    for y in range(0, height, step_y):
        for x0 in range(0, width, step_x):
            x = x0 + (step_x // 2 if y % (2 * step_y) == step_y else 0)
            square = np.zeros((size, size, 3), dtype=np.uint8)
            part = picture[y:y + size, x:x + size]
            square[:part.shape[0], :part.shape[1]] = part
            square = np.rot90(square, turns)
            for (dy, dx), layer in (((offset, offset), "shadow"), ((0, 0), "tile")):
                for i, j in zip(*np.nonzero(inside)):
                    qy, qx = y + dy + i, x + dx + j
                    if qy >= height or qx >= width:
                        continue
                    if layer == "tile":
                        canvas[qy, qx] = square[i, j]
                    else:
                        shifted = i >= offset and j >= offset and inside[i - offset, j - offset]
                        canvas[qy, qx] = shadow if shifted else (0, 0, 0)
    return torch.from_numpy(canvas.astype(np.float32) / 255)


@pytest.mark.parametrize("size, offset, rotation, spacing", [(50, 0, 0.0, 1.0), (60, 7, 90.0, 0.8),
                                                             (50, 3, 180.0, 1.3)])
def test_hexagonal_pattern(registry, size, offset, rotation, spacing):
    images = _images(11, batch=1, height=70, width=90)
    out = call(registry, "FillHexagonalPattern", images=images, hexagon_size=size, shadow_offset=offset,
               shadow_color="#20c040", background_color="navy", rotation=rotation, spacing=spacing)
    want = _pack_hexagons(images[0], size, offset, (32, 192, 64), (0, 0, 128), int(rotation) // 90, spacing)
    assert torch.equal(out[0], want)
    _refused(registry, "FillHexagonalPattern", "shadow_color", images=images, shadow_color="not a colour")
    _refused(registry, "FillHexagonalPattern", "background_color", images=images, background_color="#12")


DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _pack_ascii(image, spacing, size, characters, font_file, sequence):
    """FL_Ascii written out: Pillow's nearest sampling, then one text call a sample."""
    from PIL import Image, ImageDraw, ImageFont
    picture = Image.fromarray((image[..., :3].numpy() * 255.0).astype(np.uint8), "RGB")
    small = picture.resize((picture.width // spacing, picture.height // spacing), Image.Resampling.NEAREST)
    out = Image.new("RGB", picture.size, (0, 0, 0))
    font, draw, index = ImageFont.truetype(font_file, size), ImageDraw.Draw(out), 0
    for i in range(small.height):
        for j in range(small.width):
            r, g, b = small.getpixel((j, i))
            char = characters[index % len(characters)] if sequence == "on" else \
                characters[(r + g + b) // 3 * len(characters) // 256]
            index += 1
            draw.text((j * spacing, i * spacing), char, font=font, fill=(r, g, b))
    return torch.from_numpy(np.asarray(out, dtype=np.float32) / 255)


@pytest.fixture
def dejavu_font(tmp_folders):
    import os
    import shutil
    if not os.path.exists(DEJAVU):
        pytest.skip("no DejaVu Sans on this machine")
    (tmp_folders.models / "fonts").mkdir(parents=True, exist_ok=True)
    shutil.copy(DEJAVU, tmp_folders.models / "fonts" / "DejaVuSans.ttf")


@pytest.mark.parametrize("spacing, size, sequence", [(6, 8, "off"), (5, 12, "on")])
def test_ascii(registry, dejavu_font, spacing, size, sequence):
    images = _images(13, batch=2, height=30, width=40, channels=4)
    characters = " .:-=+*#%@"
    out = call(registry, "FillAscii", image=images, spacing=spacing, font_size=size, characters=characters,
               font="DejaVuSans", sequence_toggle=sequence)
    want = torch.stack([_pack_ascii(image, spacing, size, characters, DEJAVU, sequence) for image in images])
    assert out.shape == (2, 30, 40, 3) and torch.equal(out, want) and bool(out.any())
    black = call(registry, "FillAscii", image=images, spacing=41, characters=characters, font="DejaVuSans")
    assert not bool(black.any())
    _refused(registry, "FillAscii", "characters", image=images, characters="", font="DejaVuSans")
    with pytest.raises(ValueError, match="not one of the choices: 'DejaVuSans'"):  # refused at validation
        call(registry, "FillAscii", image=images, font="NoSuchFont")


def test_ascii_refuses_more_characters_than_it_draws(registry, dejavu_font, monkeypatch):
    import nodes.pack_nodes_fill as fill
    monkeypatch.setattr(fill, "MOST_ASCII_CELLS", 11)
    images = _images(batch=1, height=12, width=16)
    assert call(registry, "FillAscii", image=images, spacing=5, font="DejaVuSans").shape == (1, 12, 16, 3)  # 6 drawn
    _refused(registry, "FillAscii", "spacing", image=images, spacing=4, font="DejaVuSans")  # 12 would be


def test_ascii_bounds_the_glyphs_it_renders(registry, dejavu_font, monkeypatch):
    import nodes.pack_nodes_fill as fill
    monkeypatch.setattr(fill, "MOST_ASCII_AREA", 6 * 30 ** 2)
    images = _images(batch=1, height=12, width=16)
    assert call(registry, "FillAscii", image=images, spacing=5, font_size=30, font="DejaVuSans").shape == (1, 12, 16, 3)
    _refused(registry, "FillAscii", "font_size", image=images, spacing=5, font_size=31, font="DejaVuSans")
    with pytest.raises(ValueError, match="font_size"):  # past the widget's range, refused at validation
        call(registry, "FillAscii", image=images, spacing=16, font_size=fill.MOST_ASCII_FONT_SIZE + 1,
             font="DejaVuSans")


def _pack_collage(base, tile, tile_size, spacing):
    """FL_ImageCollage written out: Pillow's Lanczos resize of the tile, its grey (ITU-R 601 in
    Pillow's fixed point) squared as the mask, each cell's mean colour (the crop's black margin
    counted) pasted through it onto black with Pillow's rounded 8-bit blend."""
    from PIL import Image
    tile_levels = np.clip(tile[..., :3].numpy() * 255.0, 0, 255).astype(np.uint8)
    picture = Image.fromarray(tile_levels, "RGB")
    w, h = picture.size
    size = (tile_size, int(tile_size / (w / h))) if w > h else (int(tile_size * (w / h)), tile_size)
    rgb = np.asarray(picture.resize(size, Image.Resampling.LANCZOS)).astype(np.int64)
    grey = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    mask = np.uint8((grey / 255.0) ** 2 * 255).astype(np.int64)
    levels = np.clip(base[..., :3].numpy() * 255.0, 0, 255).astype(np.uint8)
    height, width = levels.shape[:2]
    out = np.zeros((height, width, 3), dtype=np.int64)
    for y in range(0, height, size[1] + spacing):
        for x in range(0, width, size[0] + spacing):
            cell = np.zeros((size[1], size[0], 3))
            part = levels[y:y + size[1], x:x + size[0]]
            cell[:part.shape[0], :part.shape[1]] = part
            colour = cell.mean(axis=(0, 1)).astype(int)
            blend = colour * mask[..., None] + 128  # Pillow's DIV255 of colour · mask (the canvas is black)
            blend = ((blend >> 8) + blend) >> 8
            ph, pw = out[y:y + size[1], x:x + size[0]].shape[:2]
            out[y:y + ph, x:x + pw] = blend[:ph, :pw]
    return torch.from_numpy(out.astype(np.float32) / 255)


@pytest.mark.parametrize("tile_shape, tile_size, spacing", [((12, 20), 8, 0), ((30, 18), 16, 3)])
def test_image_collage(registry, tile_shape, tile_size, spacing):
    bases = _images(14, batch=2, height=37, width=45, channels=4)
    tile = _images(15, batch=1, height=tile_shape[0], width=tile_shape[1])
    out = call(registry, "FillImageCollage", base_image=bases, tile_image=tile, tile_size=tile_size, spacing=spacing)
    want = torch.stack([_pack_collage(base, tile[0], tile_size, spacing) for base in bases])
    assert out.shape == (2, 37, 45, 3) and torch.equal(out, want) and bool(out.any())
    _refused(registry, "FillImageCollage", "tile_image", base_image=bases, tile_image=_images(batch=3))


def _trunc_blend(a, b, alpha):
    """Pillow's 8-bit blend: a + alpha · (b - a) in single precision, cut toward zero, clipped."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    return np.clip(np.trunc(a + np.float32(alpha) * (b - a)), 0, 255)


@pytest.mark.parametrize("offset, strength", [(0.2, 0.3), (0.0, 0.0), (0.75, 1.0), (0.35, 0.05)])
def test_retro_effect(registry, offset, strength):
    images = _images(8, height=10, width=14, channels=4)
    out = call(registry, "FillRetroEffect", images=images, color_offset=offset, noise_strength=strength,
               scanline_strength=0.9, vignette_strength=0.1)
    same = call(registry, "FillRetroEffect", images=images, color_offset=offset, noise_strength=strength)
    assert torch.equal(out, same)  # scanlines and vignette change nothing, as in the pack
    draw = np.random.default_rng(0)
    for image, got in zip(images, out):
        levels = np.clip(image[..., :3].numpy() * 255.0, 0, 255).astype(np.uint8)
        toned = levels.astype(np.float32).copy()
        toned[..., 0] = _trunc_blend(np.zeros(levels.shape[:2]), levels[..., 0], 1 + offset)
        toned[..., 2] = _trunc_blend(np.zeros(levels.shape[:2]), levels[..., 2], 1 - offset)
        grey = np.clip(128 + strength * 255 * draw.standard_normal(levels.shape[:2]), 0, 255).astype(np.uint8)
        want = _trunc_blend(toned, np.repeat(grey[..., None], 3, -1), strength) / 255
        assert np.array_equal(got.numpy(), want.astype(np.float32))


# -- workflows -------------------------------------------------------------------------------------


def test_a_ui_save_with_the_packs_classes_runs_and_round_trips(registry):
    nodes = [
        ui_node(1, "EmptyImage", [20, 16, 3, 0x4080c0], outputs=[("IMAGE", "IMAGE", [1, 5])]),
        ui_node(2, "FL_Padding", [2, 2, 1, 1, 0, 0, 0, True], [("image", "IMAGE", 1, False)],
                [("IMAGE", "IMAGE", [2])]),
        ui_node(3, "FL_Dither", ["Bayer", 4], [("images", "IMAGE", 2, False)], [("IMAGE", "IMAGE", [3])]),
        ui_node(4, "FL_ImageBatchToGrid", [2], [("images", "IMAGE", 3, False)], [("IMAGE", "IMAGE", [4])]),
        ui_node(5, "FL_ImageDimensionDisplay", [], [("image", "IMAGE", 4, False)], [("STRING", "STRING", [])]),
        ui_node(6, "FL_HalftonePattern", [4, 6], [("images", "IMAGE", 5, False)], [("IMAGE", "IMAGE", [])]),
        ui_node(7, "FL_Math", [2.5, 4.0, 1.0, "A * B - C"], outputs=[("INT", "INT", []), ("FLOAT", "FLOAT", [])]),
        ui_node(8, "FL_PixelSort", ["Vertical", 0.4, 0.2, 1], [("images", "IMAGE", 6, False)],
                [("IMAGE", "IMAGE", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"], [4, 4, 0, 5, 0, "IMAGE"],
             [5, 1, 0, 6, 0, "IMAGE"], [6, 2, 0, 8, 0, "IMAGE"]]
    graph = ui_graph(nodes, links)
    values = run_graph(registry, graph, ["5", "6", "7", "8"]).values
    empty = values["1"][0]
    padded = call(registry, "FillPadding", image=empty, padding_left=2, padding_right=2, padding_top=1,
                  padding_bottom=1, red=0, green=0, blue=0, include_alpha=True)
    assert torch.equal(values["2"][0], padded)
    assert torch.equal(values["3"][0], call(registry, "FillDither", images=padded, dither_method="Bayer", num_colors=4))
    assert values["4"][0].shape == (1, 36, 48, 4)
    assert values["5"][0] == "Width: 48, Height: 36"
    assert torch.equal(values["6"][0], torch.stack([_pack_halftone(image, 4, 6) for image in empty]))
    assert tuple(values["7"]) == (9, 9.0)
    assert torch.equal(values["8"][0], torch.stack([_pack_pixel_sort(i[..., :3], 0.4, 0.2, 1) for i in padded]))
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for node in nodes:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]


API_PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 12, "height": 8, "batch_size": 2, "color": 0x336699}},
    "2": {"class_type": "SolidMask", "inputs": {"value": 0.25, "width": 6, "height": 4}},
    "3": {"class_type": "FL_ApplyMask", "inputs": {"image": ["1", 0], "mask": ["2", 0]}},
    "4": {"class_type": "FL_Switch", "inputs": {"switch": True, "on_false": ["1", 0], "on_true": ["3", 0]}},
    "5": {"class_type": "FL_ImagePixelator", "inputs": {"image": ["4", 0], "scale_factor": 0.1, "kernel_size": 2,
                                                        "modulation": 0.0}},
    "6": {"class_type": "FL_ColorPicker", "inputs": {"selected_color": "#00FF00"}},
    "7": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
}


def test_an_api_prompt_with_the_packs_classes_runs_and_round_trips(registry):
    values = {k: v[0] for k, v in run_graph(registry, API_PROMPT, ["6", "7"]).values.items() if v}
    assert values["3"].shape == (2, 8, 12, 4) and bool((values["3"][..., 3] == 0.25).all())
    assert values["4"] is values["3"]
    assert values["5"].shape == (2, 8, 12, 4) and values["6"] == "#00FF00"
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["class_type"] == entry["class_type"]
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_the_packs_classes_are_ours_and_its_others_are_named(registry):
    import nodes.pack_nodes_fill as fill
    from graphflow.comfy_format import FILL_LATER, FILL_LEFT_OUT
    ours = [cls for cls in registry if cls.__module__ == fill.__name__]
    assert len(ours) == len(PACK_INPUTS) == 23
    for cls in ours:
        name = cls.comfy.class_types[0]
        assert registry.comfy_node(name) is cls and custom_pack(name) == "ComfyUI_Fill-Nodes", name
    for name in (*FILL_LEFT_OUT, *FILL_LATER):
        assert custom_pack(name) == "ComfyUI_Fill-Nodes" and registry.comfy_node(name) is None, name
    assert LEFT_OUT["FL_Glitch"] == FILL_LEFT_OUT["FL_Glitch"] and "glitch_this" in LEFT_OUT["FL_Glitch"]
    assert not set(FILL_LEFT_OUT) & set(FILL_LATER) and not set(PACK_INPUTS) & (set(FILL_LATER) | set(FILL_LEFT_OUT))


def test_a_left_out_class_is_named_with_why():
    from graphflow.comfy_format import unknown_type_hint
    assert "ComfyUI_Fill-Nodes" in unknown_type_hint("FL_Glitch") and "glitch_this" in unknown_type_hint("FL_Glitch")
    assert "OpenAI" in unknown_type_hint("FL_Dalle3")
    later = unknown_type_hint("FL_Ascii")
    assert "ComfyUI_Fill-Nodes" in later and ":" not in later.split("graphflow's nodes")[-1]
    for name in ("FL_Fal_Sora", "FL_Hedra_API", "FL_Veo3VideoGen", "FL_GPT_Image1_ADV"):  # the pack's later web APIs
        assert "web service" in unknown_type_hint(name), name
    for name in ("FL_CodeNode", "FL_JS", "FL_NodeLoader", "FL_NodePackLoader"):  # left out, not "not built yet"
        assert "code" in unknown_type_hint(name), name


@pytest.mark.parametrize("node_type, ours, theirs, version", [
    ("FL_ImageRandomizer", ["pool", 5, "randomize", True], ["Image", "pool", 5, "randomize", False], "67977cbd"),
    ("FL_ImageNotes", ["Note", 40, 20], ["Text Here", 50, 24, 0, "disable", "top"], "1c99b736"),
    ("FL_Ascii", [20, 20, "@#", "arial", "off"], [20, 20, "@#", "arial", True, "", 1.0, False], "9bef9f6c")])
def test_a_save_in_the_packs_later_layout_is_refused_not_misread(registry, node_type, ours, theirs, version):
    from graphflow.workflow import WorkflowFormatError
    read = parse_workflow(ui_graph([ui_node(1, node_type, ours)]), registry).nodes["1"].inputs
    names = {"FL_ImageRandomizer": ("directory_path", "seed", "search_subdirectories"),
             "FL_ImageNotes": ("text", "bar_height", "text_size"),
             "FL_Ascii": ("spacing", "font_size", "characters", "font", "sequence_toggle")}[node_type]
    assert [read[name] for name in names] == [v for v in ours if v != "randomize"]  # the layout built here, read
    with pytest.raises(WorkflowFormatError, match=f"{node_type}.*later version of the pack \\({version}"):
        parse_workflow(ui_graph([ui_node(1, node_type, theirs)]), registry)


def test_ascii_without_fonts_says_where_they_go(registry, tmp_folders):
    with pytest.raises(ValueError, match="models/fonts"):  # the pack's saves name its fonts ("combo+", "arial")
        call(registry, "FillAscii", image=_images(batch=1), font="combo+")


def test_image_randomizer_bounds_and_links_are_even(registry, tmp_folders, monkeypatch):
    import nodes.pack_nodes_fill as fill
    from PIL import Image
    folder = tmp_folders.inputs / "pool"
    (folder / "sub").mkdir(parents=True)
    (tmp_folders.inputs / "other").mkdir()
    Image.new("RGB", (6, 5)).save(folder / "a.png")
    Image.new("RGB", (6, 5)).save(tmp_folders.inputs / "other" / "b.png")
    (folder / "sub" / "c.png").symlink_to(tmp_folders.inputs / "other" / "b.png")  # out of pool, in inputs
    (folder / "d.png").symlink_to(tmp_folders.inputs / "other" / "b.png")
    for tree in (False, True):  # a link out of the folder given is left out in both modes
        assert [p.name for p in fill.randomizer_files("pool", tree)] == ["a.png"], tree
    _refused(registry, "FillImageRandomizer", "directory_path", match="only inside the inputs folder",
             directory_path=str(folder))
    monkeypatch.setattr(fill, "MOST_FOLDER_FILES", 2)  # pool holds a.png, d.png and sub: 3 entries
    for tree in (False, True):
        _refused(registry, "FillImageRandomizer", "directory_path", match="files and folders", directory_path="pool",
                 search_subdirectories=tree)


def test_image_collage_bounds_its_tiles(registry, monkeypatch):
    import nodes.pack_nodes_fill as fill
    monkeypatch.setattr(fill, "MOST_COLLAGE_TILES", 8)
    base = _images(batch=1, height=16, width=16)
    square = call(registry, "FillImageCollage", base_image=base, tile_image=_images(batch=1, height=8, width=8),
                  tile_size=8)
    assert square.shape == (1, 16, 16, 3)  # 2 × 2 tiles
    _refused(registry, "FillImageCollage", "tile_image", match="tiles", base_image=base,
             tile_image=_images(batch=1, height=8, width=1), tile_size=8)  # 1 × 8 tiles: 16 × 2
