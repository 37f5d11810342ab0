"""comfy_mtb round 2 (nodes/pack_nodes_mtb2.py): the FLOATS converters against plain Python's
int(), Match Dimensions against torchvision's resize (the pack's call), errors by input name, and
a UI-format save and an API prompt with the pack's class names that run and round-trip."""

import json
import math
import os

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as VF

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def node(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


def test_floats_to_ints_cuts_toward_zero_as_int_does(registry):
    floats = [0.0, 1.9, -1.9, 2.5, -0.4, 1e10]
    ints, same = node(registry, "Floats To Ints (mtb)", floats=floats)
    assert ints == same == [int(v) for v in floats] == [0, 1, -1, 2, 0, 10_000_000_000]


def test_float_converters_hand_lists_on(registry):
    assert node(registry, "Floats To Float (mtb)", floats=[0.25, 1.0]) == [0.25, 1.0]
    assert node(registry, "Float To Floats (mtb)", float=[0.25, 1.0]) == [0.25, 1.0]
    assert node(registry, "Float To Floats (mtb)", float=0.75) == [0.75]


def test_converters_refuse_what_is_not_a_list_of_numbers_naming_the_input(registry):
    for name, inputs, field in (("Floats To Ints (mtb)", {"floats": [1.0, "a"]}, "floats"),
                                ("Floats To Ints (mtb)", {"floats": [math.inf]}, "floats"),
                                ("Floats To Float (mtb)", {"floats": 3.0}, "floats"),
                                ("Float To Floats (mtb)", {"float": "x"}, "float")):
        with pytest.raises(NodeInputError) as caught:
            node(registry, name, **inputs)
        assert caught.value.input == field


@pytest.mark.parametrize("match", ["height", "width"])
def test_match_dimensions_is_torchvisions_bicubic_resize_keeping_the_aspect_ratio(registry, match):
    source = torch.rand(2, 30, 50, 3)
    reference = torch.rand(1, 64, 21, 3)
    image, width, height = node(registry, "Match Dimensions (mtb)", source=source, reference=reference, match=match)
    if match == "height":
        expected_size = (64, int(64 * 50 / 30))
    else:
        expected_size = (int(21 / (50 / 30)), 21)
    assert (height, width) == expected_size
    expected = torch.stack([VF.resize(frame, list(expected_size), antialias=True,
                                      interpolation=VF.InterpolationMode.BICUBIC)
                            for frame in source.permute(0, 3, 1, 2)]).permute(0, 2, 3, 1)
    assert image.shape == (2, *expected_size, 3)
    assert torch.allclose(image, expected, atol=1e-5)


def test_match_dimensions_refuses_sides_it_cannot_make(registry):
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Match Dimensions (mtb)", source=torch.rand(1, 200, 2, 3), reference=torch.rand(1, 8, 8, 3),
             match="height")
    assert caught.value.input == "match"
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Match Dimensions (mtb)", source=torch.rand(1, 2, 3), reference=torch.rand(1, 8, 8, 3),
             match="height")
    assert caught.value.input == "source"


def test_match_dimensions_estimate_refuses_a_huge_result_before_running(registry):
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 4096, "height": 1, "batch_size": 1, "color": 0}},
              "2": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 16384, "batch_size": 1, "color": 0}},
              "3": {"class_type": "Match Dimensions (mtb)", "inputs": {"source": ["1", 0], "reference": ["2", 0],
                                                                       "match": "height"}},
              "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    from graphflow.executor import Executor
    result = Executor(registry).run(parse_workflow(prompt, registry))
    assert not result.ok
    assert any(problem.node_id == "3" and "memory" in problem.message for problem in result.problems)


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry):
    prompt = {
        "1": {"class_type": "Batch Float (mtb)", "inputs": {"mode": "Steps", "count": 4, "min": 0.0, "max": 3.0,
                                                            "easing": "Linear"}},
        "2": {"class_type": "Floats To Ints (mtb)", "inputs": {"floats": ["1", 0]}},
        "3": {"class_type": "Floats To Float (mtb)", "inputs": {"floats": ["1", 0]}},
        "4": {"class_type": "Float To Floats (mtb)", "inputs": {"float": ["3", 0]}},
        "5": {"class_type": "EmptyImage", "inputs": {"width": 20, "height": 10, "batch_size": 1, "color": 255}},
        "6": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 30, "batch_size": 1, "color": 0}},
        "7": {"class_type": "Match Dimensions (mtb)", "inputs": {"source": ["5", 0], "reference": ["6", 0],
                                                                 "match": "height"}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
        "9": {"class_type": "DebugPrint", "inputs": {"ANY": ["2", 0]}},
        "10": {"class_type": "DebugPrint", "inputs": {"ANY": ["4", 0]}},
    }
    result = run_graph(registry, prompt)
    assert result.values["2"][0] == [0, 1, 2, 3]
    assert result.values["4"][0] == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert result.values["7"][0].shape == (1, 30, 60, 3)
    assert result.values["7"][1:] == (60, 30)
    api = export_api(parse_workflow(prompt, registry), registry)
    for key in ("2", "3", "4", "7"):
        assert (api[key]["class_type"], api[key]["inputs"]) == (prompt[key]["class_type"], prompt[key]["inputs"])


def test_ui_save_with_the_packs_converters_runs_and_round_trips(registry):
    """As the pack's editor saves them: the forced inputs (floats, float) linked, no widgets;
    Match Dimensions' one widget, match."""
    nodes = [
        ui_node(1, "Batch Float (mtb)", ["Steps", 3, 0.5, 2.5, "Linear"], outputs=[("FLOATS", "FLOATS", [1])]),
        ui_node(2, "Floats To Ints (mtb)", [], [("floats", "FLOATS", 1, False)],
                [("INTS", "INTS", [2]), ("INT", "INT", [])]),
        ui_node(3, "DebugPrint", [], [("ANY", "*", 2, False)]),
        ui_node(4, "EmptyImage", [12, 6, 1, 0x804020], outputs=[("IMAGE", "IMAGE", [3, 4, 5])]),
        ui_node(5, "Match Dimensions (mtb)", ["width"],
                [("source", "IMAGE", 3, False), ("reference", "IMAGE", 4, False)],
                [("image", "IMAGE", []), ("new_width", "INT", []), ("new_height", "INT", [])]),
        ui_node(6, "Color Correct GPU (mtb)", [True, True, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0],
                [("image", "IMAGE", 5, False), ("mask", "MASK", None, False)], [("IMAGE", "IMAGE", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "FLOATS"], [2, 2, 0, 3, 0, "*"], [3, 4, 0, 5, 0, "IMAGE"], [4, 4, 0, 5, 1, "IMAGE"],
             [5, 4, 0, 6, 0, "IMAGE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["3", "5", "6"])
    colour = torch.tensor([0x80, 0x40, 0x20]) / 255
    assert torch.allclose(result.values["6"][0][0, 0, 0], torch.clamp(colour * 2, 0, 1), atol=1e-5)
    assert result.values["2"][0] == [int(v) for v in (0.5, 1.5, 2.5)]
    assert result.values["5"][1:] == (12, 6)
    saved = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in saved["nodes"]}
    for n in nodes:
        assert by_id[n["id"]]["type"] == n["type"]
        assert by_id[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


CURVE = {"0": {"x": 0.0, "y": 0.0}, "2": {"x": 1.0, "y": 0.25}, "1": {"x": 0.3, "y": 0.9}}


@pytest.mark.parametrize("steps", [2, 5, 11, 64])
def test_curve_to_float_is_linear_interpolation_as_numpy_interp(registry, steps):
    import numpy as np
    curve = node(registry, "Curve (mtb)", curve=json.dumps(CURVE))
    assert curve == CURVE
    floats, same = node(registry, "Curve To Float (mtb)", curve=curve, steps=steps)
    xs = [0.0 + (1.0 - 0.0) / (steps - 1) * step for step in range(steps)]
    assert floats == same
    assert floats == pytest.approx(np.interp(xs, [0.0, 0.3, 1.0], [0.0, 0.9, 0.25]).tolist())


def test_curve_to_float_reads_the_older_list_of_points_and_one_point(registry):
    floats, _ = node(registry, "Curve To Float (mtb)", curve=[{"x": 0.5, "y": 0.1}, {"x": 0, "y": 1}], steps=3)
    assert floats == pytest.approx([1.0, 0.55, 0.1])
    floats, _ = node(registry, "Curve To Float (mtb)", curve={"0": {"x": 0.5, "y": 0.7}}, steps=3)
    assert floats == [0.7, 0.7, 0.7]


def test_curves_refuse_bad_points_naming_the_input(registry):
    for name, inputs, field in (("Curve (mtb)", {"curve": "{not json"}, "curve"),
                                ("Curve (mtb)", {"curve": '{"0": {"x": 0}}'}, "curve"),
                                ("Curve To Float (mtb)", {"curve": {}, "steps": 3}, "curve"),
                                ("Curve To Float (mtb)", {"curve": CURVE, "steps": 10 ** 6}, "steps")):
        with pytest.raises(NodeInputError) as caught:
            node(registry, name, **inputs)
        assert caught.value.input == field


def test_ui_save_with_the_packs_curve_widget_runs_and_round_trips(registry):
    """The curve widget's value saved as the pack's editor saves it: a JSON object."""
    nodes = [
        ui_node(1, "Curve (mtb)", [CURVE], outputs=[("FLOAT_CURVE", "FLOAT_CURVE", [1])]),
        ui_node(2, "Curve To Float (mtb)", [4], [("curve", "FLOAT_CURVE", 1, False)],
                [("FLOATS", "FLOATS", [2]), ("FLOAT", "FLOAT", [])]),
        ui_node(3, "DebugPrint", [], [("ANY", "*", 2, False)]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "FLOAT_CURVE"], [2, 2, 0, 3, 0, "*"]])
    result = run_graph(registry, graph, ["3"])
    import numpy as np
    assert result.values["2"][0] == pytest.approx(np.interp([0, 1 / 3, 2 / 3, 1], [0, 0.3, 1], [0, 0.9, 0.25]))
    saved = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in saved["nodes"]}
    assert by_id[1]["widgets_values"] == [CURVE]
    assert by_id[2]["widgets_values"] == [4]


def test_api_prompt_with_the_curve_object_runs(registry):
    prompt = {"1": {"class_type": "Curve (mtb)", "inputs": {"curve": CURVE}},
              "2": {"class_type": "Curve To Float (mtb)", "inputs": {"curve": ["1", 0], "steps": 3}},
              "3": {"class_type": "DebugPrint", "inputs": {"ANY": ["2", 0]}}}
    result = run_graph(registry, prompt)
    assert result.values["2"][0] == pytest.approx([0.0, 0.9 + (0.25 - 0.9) * 0.2 / 0.7, 0.25])
    api = export_api(parse_workflow(prompt, registry), registry)
    assert api["2"] == prompt["2"]
    assert json.loads(api["1"]["inputs"]["curve"]) == CURVE  # written as its text (the class's docstring says so)


def colorsys_correct(image, gamma, contrast, exposure, offset, hue, saturation, value, clamp):
    """The pack's Color Correct GPU per pixel, with Python's colorsys for HSV."""
    import colorsys
    out = torch.empty_like(image)
    flat, result = image.reshape(-1, 3).double(), out.view(-1, 3)
    for i, (r, g, b) in enumerate(flat.tolist()):
        r, g, b = (c ** (1 / gamma) * 2 ** exposure * contrast + offset for c in (r, g, b))
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        rgb = colorsys.hsv_to_rgb((h + hue) % 1.0, s * saturation, v * value)
        result[i] = torch.tensor([min(max(c, 0.0), 1.0) if clamp else c for c in rgb])
    return out


@pytest.mark.parametrize("clamp", [True, False])
def test_color_correct_gpu_is_its_formula_through_colorsys_hsv(registry, clamp):
    torch.manual_seed(3)
    image = torch.rand(2, 6, 5, 3) * 0.9 + 0.05
    settings = {"gamma": 1.3, "contrast": 1.1, "exposure": 0.3, "offset": 0.02, "hue": 0.12, "saturation": 1.2,
                "value": 0.9}
    got = node(registry, "Color Correct GPU (mtb)", image=image, force_gpu=True, clamp=clamp, **settings)
    assert torch.allclose(got, colorsys_correct(image, clamp=clamp, **settings), atol=1e-4)


def test_color_correct_gpu_changes_only_where_the_mask_is_and_refuses_bad_input(registry):
    image = torch.rand(1, 4, 4, 3)
    mask = torch.zeros(1, 4, 4)
    mask[:, :2] = 1
    got = node(registry, "Color Correct GPU (mtb)", image=image, force_gpu=False, clamp=True, gamma=1.0,
               contrast=1.0, exposure=1.0, offset=0.0, hue=0.0, saturation=1.0, value=1.0, mask=mask)
    assert torch.equal(got[:, 2:], image[:, 2:])
    assert torch.allclose(got[:, :2], torch.clamp(image[:, :2] * 2, 0, 1), atol=1e-5)
    for inputs, field in (({"gamma": 0.0}, "gamma"), ({"mask": torch.ones(1, 3, 3)}, "mask"),
                          ({"image": torch.rand(1, 4, 4, 4)}, "image")):
        with pytest.raises(NodeInputError) as caught:
            node(registry, "Color Correct GPU (mtb)", **{"image": image, "force_gpu": True, "clamp": True, **inputs})
        assert caught.value.input == field


def pil_gif(frames, **options):
    """The GIF Pillow writes for these frames, read back frame by frame (RGB)."""
    import io
    from PIL import Image, ImageSequence
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], **options)
    return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(Image.open(buffer))]


@pytest.mark.parametrize("pingpong, resize_by, resample", [(False, 1.0, "nearest"), (True, 0.5, "lanczos"),
                                                           (False, 1.5, "bilinear")])
def test_save_gif_writes_what_pillow_writes_for_the_packs_frames(registry, tmp_folders, pingpong, resize_by,
                                                                  resample):
    from PIL import Image, ImageSequence
    from graphflow.api import folders
    torch.manual_seed(5)
    images = torch.rand(3, 10, 14, 3)
    before = set(folders.outputs.glob("*.gif")) if folders.outputs.exists() else set()
    node(registry, "Save Gif (mtb)", image=images, fps=7, resize_by=resize_by, optimize=False, pingpong=pingpong,
         resample_filter=resample, use_ffmpeg=False)
    (path,) = set(folders.outputs.glob("*.gif")) - before
    assert len(path.stem) == 10 and int(path.stem, 16) >= 0
    frames = [Image.fromarray(f) for f in np.clip(255.0 * images.numpy(), 0, 255).astype(np.uint8)]
    frames = frames + frames[::-1] if pingpong else frames
    if resize_by != 1.0:
        size = (int(14 * resize_by), int(10 * resize_by))
        frames = [f.resize(size, resample=getattr(Image.Resampling, resample.upper())) for f in frames]
    expected = pil_gif(frames, optimize=False, duration=int(1000 / 7), loop=0)
    saved = Image.open(path)
    got = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(saved)]
    # (Pillow merges equal frames one after another, as pingpong's middle two, into one shown longer)
    assert len(got) == len(expected) == len(frames) - pingpong
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    # int(1000 / fps) ms, which a GIF holds in hundredths of a second
    assert saved.info["duration"] == int(1000 / 7) // 10 * 10 and saved.info["loop"] == 0


def test_save_gif_refuses_what_it_cannot_make(registry, tmp_folders):
    for inputs, field in (({"resize_by": 5000.0}, "resize_by"), ({"image": torch.rand(2, 4, 4, 1)}, "image")):
        with pytest.raises(NodeInputError) as caught:
            node(registry, "Save Gif (mtb)", **{"image": torch.rand(2, 4, 4, 3), "fps": 12, "resize_by": 1.0,
                                                "optimize": False, "pingpong": False, "resample_filter": "nearest",
                                                "use_ffmpeg": False, **inputs})
        assert caught.value.input == field


def test_save_gif_leaves_no_partial_file_when_pillow_fails(registry, tmp_folders, monkeypatch):
    from PIL import Image
    from graphflow.api import folders

    def failing_save(picture, file, **options):  # writes a GIF header, then fails as a full disk would
        file.write(b"GIF89a")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        node(registry, "Save Gif (mtb)", image=torch.rand(2, 4, 4, 3), fps=12, resize_by=1.0, optimize=False,
             pingpong=False, resample_filter="nearest", use_ffmpeg=False)
    assert not list(folders.outputs.glob("*.gif"))


def write_styles(folders, name, rows):
    import csv
    path = folders.models / "styles" / "mtb" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf8", newline="") as file:
        csv.writer(file).writerows(rows)


def test_styles_loader_reads_the_csv_rows_as_csv_reader_does(registry, tmp_folders):
    write_styles(tmp_folders, "a.csv", [["name", "prompt", "negative_prompt"],
                                        ["cinema", "film still, {prompt}", "cartoon"],
                                        ["bare"], [], ["comma, inside", "a \"quoted\" text", ""]])
    write_styles(tmp_folders, "b.csv", [["cinema", "replaced", "by b"]])
    (tmp_folders.models / "styles" / "top.csv").write_text("top,left,out\n")  # not in styles/mtb: not read
    cls = registry.comfy_node("Styles Loader (mtb)")
    assert cls.input_specs["style_name"].widget.choices() == ["name", "cinema", "bare", "comma, inside"]
    assert node(registry, "Styles Loader (mtb)", style_name="cinema") == ("replaced", "by b")
    assert node(registry, "Styles Loader (mtb)", style_name="bare") == ("", "")
    assert node(registry, "Styles Loader (mtb)", style_name="comma, inside") == ('a "quoted" text', "")
    with pytest.raises(ValueError) as caught:  # refused by the choice's check, naming the input
        node(registry, "Styles Loader (mtb)", style_name="top")
    assert "style_name" in str(caught.value) and "cinema" in str(caught.value)


def test_styles_loader_leaves_out_a_bad_or_large_file_with_a_warning_and_caps_the_list(registry, tmp_folders,
                                                                                         monkeypatch, caplog):
    import logging

    import nodes.pack_nodes_mtb2 as mtb2
    choices = registry.comfy_node("Styles Loader (mtb)").input_specs["style_name"].widget.choices
    write_styles(tmp_folders, "a.csv", [["one", "p1", "n1"], ["two", "p2", "n2"], ["three", "p3", "n3"]])
    (tmp_folders.models / "styles" / "mtb" / "b.csv").write_bytes(b"latin,caf\xe9,x\n")  # not UTF-8
    with caplog.at_level(logging.WARNING):
        assert choices() == ["one", "two", "three"]
    assert "b.csv" in caplog.text and "not UTF-8 CSV" in caplog.text
    # over the styler's file size cap: left out, with a warning
    monkeypatch.setattr(mtb2, "MAX_STYLE_FILE", 10)
    write_styles(tmp_folders, "b.csv", [["four", "p4", "n4"]])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert choices() == []
    assert "a.csv is larger than 10 bytes" in caplog.text
    # at most MAX_CSV_STYLES rows read from a file and styles listed
    monkeypatch.setattr(mtb2, "MAX_STYLE_FILE", 2 ** 20)
    monkeypatch.setattr(mtb2, "MAX_CSV_STYLES", 2)
    mtb2._csv_styles.cache_clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert choices() == ["one", "two"]
    assert "a.csv has more than 2 rows" in caplog.text and "holds 3 styles" in caplog.text
    mtb2._csv_styles.cache_clear()


def test_styles_loader_reads_a_file_again_only_when_it_changes(registry, tmp_folders):
    choices = registry.comfy_node("Styles Loader (mtb)").input_specs["style_name"].widget.choices
    write_styles(tmp_folders, "a.csv", [["neon", "p", "n"]])
    path = tmp_folders.models / "styles" / "mtb" / "a.csv"
    assert choices() == ["neon"]
    # the same size and mtime: the cached styles (the file is not read again)
    stat = path.stat()
    write_styles(tmp_folders, "a.csv", [["noir", "p", "n"]])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert choices() == ["neon"]
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    assert choices() == ["noir"]
    assert node(registry, "Styles Loader (mtb)", style_name="noir") == ("p", "n")


def test_api_prompt_with_a_style_runs_and_round_trips(registry, tmp_folders):
    write_styles(tmp_folders, "s.csv", [["neon", "neon lights", "daylight"]])
    prompt = {"1": {"class_type": "Styles Loader (mtb)", "inputs": {"style_name": "neon"}},
              "2": {"class_type": "DebugPrint", "inputs": {"ANY": ["1", 1]}}}
    result = run_graph(registry, prompt)
    assert result.values["1"] == ("neon lights", "daylight")
    assert export_api(parse_workflow(prompt, registry), registry)["1"] == prompt["1"]


def pil_text_picture(lines, font, width, height, color, background, positions):
    """Pillow's drawing of the lines at the given (x, y), composited over the background."""
    from PIL import Image, ImageDraw
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for line, position in zip(lines, positions):
        draw.text(position, line, fill=color, font=font)
    picture = Image.alpha_composite(Image.new("RGBA", (width, height), background), layer)
    return torch.from_numpy(np.asarray(picture).astype(np.float32) / 255)[None]


TEXT_INPUTS = {"wrap": True, "trim": True, "line_height": 1.2, "font_size": 12, "width": 120, "height": 60,
               "color": "#ff0000", "background": "navy", "h_offset": 3, "v_offset": 2, "h_coverage": 50}


@pytest.mark.parametrize("h_align, v_align", [("left", "top"), ("center", "center"), ("right", "bottom")])
def test_text_to_image_lays_out_textwrap_lines_as_the_pack_and_draws_with_pillow(registry, tmp_folders, h_align,
                                                                               v_align):
    import textwrap
    from PIL import ImageFont
    text = "  a cat sat on the mat by me  "
    got = node(registry, "Text To Image (mtb)", text=text, font="font", h_align=h_align, v_align=v_align,
               **TEXT_INPUTS)
    font = ImageFont.load_default(size=12)
    lines = textwrap.wrap(text.strip(), width=120 / 100 * 50 / 12 * 2)  # 10 characters a line
    assert len(lines) > 1
    step = 1.2 * 12
    top = {"top": 2, "center": (60 - step * len(lines)) // 2 + 2, "bottom": 60 - step * len(lines) - 2}[v_align]
    positions = []
    for i, line in enumerate(lines):
        length = font.getlength(line)
        x = {"left": 3, "center": (120 - length) // 2 + 3, "right": 120 - length - 3}[h_align]
        positions.append((x, top + step * i))
    expected = pil_text_picture(lines, font, 120, 60, (255, 0, 0, 255), (0, 0, 128, 255), positions)
    assert got.shape == (1, 60, 120, 4)
    assert torch.equal(got, expected)


def test_text_to_image_reads_fonts_from_models_fonts_by_stem(registry, tmp_folders):
    import shutil
    from PIL import ImageFont
    dejavu = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if not os.path.exists(dejavu):
        pytest.skip("no DejaVuSans.ttf on this machine to copy into models/fonts")
    (tmp_folders.models / "fonts" / "sub").mkdir(parents=True)
    shutil.copy(dejavu, tmp_folders.models / "fonts" / "sub" / "Deja.ttf")
    # sorted by name as the pack lists them, its own "font" kept (the default)
    spec = registry.comfy_node("Text To Image (mtb)").input_specs["font"]
    assert spec.widget.choices() == ["Deja", "font"] and spec.default == "font"
    got = node(registry, "Text To Image (mtb)", text="Hi", font="Deja", h_align="left", v_align="top",
               **{**TEXT_INPUTS, "wrap": False})
    font = ImageFont.truetype(dejavu, 12)
    assert torch.equal(got, pil_text_picture(["Hi"], font, 120, 60, (255, 0, 0, 255), (0, 0, 128, 255), [(3, 2)]))


def test_text_to_image_refusals_and_the_packs_colour_fallback(registry, tmp_folders):
    got = node(registry, "Text To Image (mtb)", text="", font="font", color="not a colour", **{
        k: v for k, v in TEXT_INPUTS.items() if k != "color"})
    assert torch.equal(got[0, 0, 0], torch.tensor([0.0, 0.0, 0.0, 1.0]))  # black: the pack's fallback background
    for inputs, field in (({"text": "abcdefghijklmnopqrstuvwxyz"}, "text"),
                          ({"whisper_chunks": {"chunks": []}}, "whisper_chunks")):
        with pytest.raises(NodeInputError) as caught:
            node(registry, "Text To Image (mtb)", **{"font": "font", "text": "x", **TEXT_INPUTS,
                                                    "h_coverage": 55, **inputs})
        assert caught.value.input == field


def test_text_to_image_under_one_character_a_line_draws_textwraps_lines_and_refuses_a_long_word(
        registry, tmp_folders, monkeypatch):
    import textwrap
    from PIL import ImageFont
    import nodes.pack_nodes_mtb2 as mtb2
    inputs = {**TEXT_INPUTS, "width": 40, "height": 30, "h_coverage": 10, "line_height": 1.0, "h_offset": 0,
              "v_offset": 0}  # a wrap width of 40 / 100 * 10 / 12 * 2 = 0.67 characters
    lines = textwrap.wrap("ab cd", width=40 / 100 * 10 / 12 * 2)
    assert lines == ["a", "b", "c", "d"]  # textwrap's: a character a line
    got = node(registry, "Text To Image (mtb)", text="ab cd", font="font", h_align="left", v_align="top", **inputs)
    font = ImageFont.load_default(size=12)
    # the fourth line, at y 36, lies below the 30-pixel picture: the same picture whether drawn or not
    expected = pil_text_picture(lines, font, 40, 30, (255, 0, 0, 255), (0, 0, 128, 255),
                                [(0, 12 * i) for i in range(4)])
    assert torch.equal(got, expected)
    # a word over MAX_CUT_WORD there is refused before textwrap cuts it
    wraps = []
    monkeypatch.setattr(textwrap, "wrap", lambda *args, **kwargs: wraps.append(args) or [])
    for text in ("a" * (mtb2.MAX_CUT_WORD + 1), "ab\t" + "b" * (mtb2.MAX_CUT_WORD + 1) + " c"):
        with pytest.raises(NodeInputError) as caught:
            node(registry, "Text To Image (mtb)", text=text, font="font", h_align="left", v_align="top", **inputs)
        assert caught.value.input == "text" and f"{mtb2.MAX_CUT_WORD + 1:,} characters" in str(caught.value)
    assert wraps == []
    node(registry, "Text To Image (mtb)", text="a" * mtb2.MAX_CUT_WORD + " b", font="font", h_align="left",
         v_align="top", **inputs)
    assert [len(args[0]) for args in wraps] == [mtb2.MAX_CUT_WORD + 2]


def test_text_to_image_refuses_a_line_larger_than_pillow_draws_naming_font_size(registry, tmp_folders):
    from PIL import Image, ImageDraw, ImageFont
    inputs = {**TEXT_INPUTS, "wrap": False, "font_size": 2500, "width": 64, "h_offset": 0, "v_offset": 0}
    text = "W" * 5000
    with pytest.raises(Image.DecompressionBombError):  # Pillow's refusal, which the node names
        ImageDraw.Draw(Image.new("RGBA", (64, 1024))).text((0, 0), text, font=ImageFont.load_default(size=2500))
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Text To Image (mtb)", text=text, font="font", h_align="left", v_align="top",
             **{**inputs, "height": 1024})
    assert caught.value.input == "font_size" and "line 1" in str(caught.value)
    # in a 64-pixel picture the line's ink (its box from Pillow) starts below it: nothing to draw there
    top = ImageDraw.Draw(Image.new("RGBA", (64, 64))).textbbox((0, 0), text, font=ImageFont.load_default(size=2500))[1]
    assert top > 64
    got = node(registry, "Text To Image (mtb)", text=text, font="font", h_align="left", v_align="top",
               **{**inputs, "height": 64})
    assert torch.equal(got, pil_text_picture([], None, 64, 64, None, (0, 0, 128, 255), []))


def test_text_to_image_draws_marks_rising_into_the_picture_from_a_line_below_it(registry, tmp_folders):
    import shutil
    import textwrap
    from PIL import Image, ImageDraw, ImageFont, features
    dejavu = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if not os.path.exists(dejavu) or not features.check("raqm"):
        pytest.skip("needs DejaVuSans.ttf and Pillow's raqm layout (which stacks marks) on this machine")
    (tmp_folders.models / "fonts").mkdir(parents=True)
    shutil.copy(dejavu, tmp_folders.models / "fonts" / "Deja.ttf")
    font = ImageFont.truetype(dejavu, 12)
    lines = ["x", "A" + "\u030a" * 8]  # the second line at y 60, the picture's height, its marks stacked high
    assert ImageDraw.Draw(Image.new("RGBA", (1, 1))).textbbox((0, 60), lines[1], font=font)[1] < 60
    got = node(registry, "Text To Image (mtb)", text=" ".join(lines), font="Deja", h_align="left", v_align="top",
               **{**TEXT_INPUTS, "line_height": 5.0, "h_offset": 0, "v_offset": 0})
    assert textwrap.wrap(" ".join(lines), width=120 / 100 * 50 / 12 * 2) == lines
    expected = pil_text_picture(lines, font, 120, 60, (255, 0, 0, 255), (0, 0, 128, 255), [(0, 0), (0, 60)])
    assert torch.equal(got, expected)
    assert not torch.equal(got, pil_text_picture(lines[:1], font, 120, 60, (255, 0, 0, 255), (0, 0, 128, 255),
                                                 [(0, 0)]))


def test_ui_save_with_text_to_image_runs_and_round_trips(registry, tmp_folders):
    widgets = ["Hello world!", "font", True, True, 1.0, 16, 96, 48, "#ffffff", "#000000", "center", "center", 0, 0,
               100, 24, 0.5]
    nodes = [ui_node(1, "Text To Image (mtb)", widgets, [("whisper_chunks", "WHISPER_CHUNKS", None, False)],
                     [("IMAGE", "IMAGE", [1])]),
             ui_node(2, "PreviewImage", [], [("images", "IMAGE", 1, False)])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"]])
    result = run_graph(registry, graph)
    assert result.values["1"][0].shape == (1, 48, 96, 4)
    saved = export_ui(parse_workflow(graph, registry), registry)
    assert {n["id"]: n for n in saved["nodes"]}[1]["widgets_values"] == widgets
    prompt = {"1": {"class_type": "Text To Image (mtb)", "inputs": dict(zip(
        ["text", "font", "wrap", "trim", "line_height", "font_size", "width", "height", "color", "background",
         "h_align", "v_align", "h_offset", "v_offset", "h_coverage", "fps", "fade_duration"], widgets))},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    assert torch.equal(run_graph(registry, prompt).values["1"][0], result.values["1"][0])
    assert export_api(parse_workflow(prompt, registry), registry)["1"] == prompt["1"]
