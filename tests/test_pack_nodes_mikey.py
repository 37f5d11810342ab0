"""bash-j's Mikey Nodes (nodes/pack_nodes_mikey.py) checked against the pack's rules: its SDXL size
solver (find_latent_size, written here as the pack states it, with Fractions), numpy's arange,
Python's random seeded as the pack seeds it, the core ImageScale, and ComfyUI files with the
pack's class names read, run and written back."""

import json
import random
import re
from fractions import Fraction
from math import ceil

import numpy as np
import pytest
import torch

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_mikey import COMBINATIONS, RATIOS, sdxl_size
from tests.test_nodes_image_mask import call as call_ours
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def call(registry, class_type, **inputs):
    """Run the node answering a ComfyUI class name (ours: ImageScale's own name) on these inputs."""
    node = registry.comfy_node(class_type) or registry.get(class_type)
    return call_ours(registry, node.node_type, **inputs)


def reference_latent_size(width, height, res=1024):
    """find_latent_size as the pack's mikey_nodes.py states it (Fractions, four roundings; its lower
    bound target_ratio * 0.98 is a float, as Python makes a Fraction times a float)."""
    best_w = best_h = 0
    ratio = Fraction(width, height)
    for i in range(1, 256):
        for j in range(1, 256):
            candidate = Fraction(8 * i, 8 * j)
            if candidate > ratio * 0.98 and candidate < ratio and 8 * i * 8 * j <= res * res:
                for w, h in ((ceil(8 * i / 64) * 64, ceil(8 * j / 64) * 64), (8 * i // 64 * 64, ceil(8 * j / 64) * 64),
                             (ceil(8 * i / 64) * 64, 8 * j // 64 * 64), (8 * i // 64 * 64, 8 * j // 64 * 64)):
                    if w * h <= res * res and w * h > best_w * best_h:
                        best_w, best_h = w, h
    return best_w, best_h


@pytest.mark.parametrize("width,height,res", [(1024, 1024, 1024), (16, 9, 1024), (3, 2, 1024), (9, 16, 1024),
                                              (1920, 1080, 1024), (1000, 1333, 768), (21, 9, 2048),
                                              (1, 1, 64), (1, 2, 128), (1, 7, 1024), (50, 49, 512)])
def test_size_solver_is_the_packs(width, height, res):
    assert sdxl_size(width, height, res) == reference_latent_size(width, height, res)


def test_empty_latents_select_and_custom(registry):
    for name, (w, h) in RATIOS.items():
        latent = call(registry, "Empty Latent Ratio Select SDXL", ratio_selected=name, batch_size=2)
        assert latent["samples"].shape == (2, 4, h // 8, w // 8) and not latent["samples"].any()
    w, h = reference_latent_size(16, 9)
    latent = call(registry, "Empty Latent Ratio Custom SDXL", width=16, height=9, batch_size=3)
    assert latent["samples"].shape == (3, 4, h // 8, w // 8)
    assert call(registry, "Empty Latent Ratio Custom SDXL", width=5, height=5)["samples"].shape == (1, 4, 128, 128)
    with pytest.raises(NodeInputError, match="no SDXL size") as caught:
        call(registry, "Empty Latent Ratio Custom SDXL", width=8192, height=1)
    assert caught.value.input == "width"


def test_ratio_advanced_steps(registry):
    base = dict(preset="none", swap_axis="false", select_latent_ratio="16:9 [1344x768 landscape]",
                custom_latent_w=0, custom_latent_h=0, select_cte_ratio="custom", cte_w=1000, cte_h=600,
                cte_mult=2.5, cte_res=0, cte_fit_size=0, select_target_ratio="3:2 [1216x832 landscape]",
                target_w=0, target_h=0, target_mult=0.0, target_res=1536, target_fit_size=0, crop_w=7, crop_h=9,
                use_preset_seed="false", seed=0)
    out = call(registry, "Ratio Advanced", **base)
    assert out == (1344, 768, 2500, 1500, *reference_latent_size(1216, 832, 1536), 7, 9)
    out = call(registry, "Ratio Advanced", **{**base, "select_latent_ratio": "custom", "custom_latent_w": 640,
                                              "custom_latent_h": 480, "cte_mult": 0.0, "cte_fit_size": 300,
                                              "target_res": 0, "target_fit_size": 2000})
    # fitted: the longer side made the fit size, the other int(side * fit / longer)
    assert out == (640, 480, 300, int(600 * 300 / 1000), 2000, int(832 * 2000 / 1216), 7, 9)
    with pytest.raises(NodeInputError, match="no aspect ratio") as caught:
        call(registry, "Ratio Advanced", **{**base, "cte_w": 0, "cte_mult": 0.0, "cte_res": 1024})
    assert caught.value.input == "cte_res"


def test_resize_for_sdxl_is_image_scale_at_the_solved_size(registry):
    image = torch.rand(2, 90, 160, 3)
    w, h = reference_latent_size(160, 90)
    for method, crop in (("bilinear", "disabled"), ("area", "center")):
        out = call(registry, "Resize Image for SDXL", image=image, upscale_method=method, crop=crop)
        expected = call(registry, "ImageScale", image=image, upscale_method=method, width=w, height=h, crop=crop)
        assert out.shape == (2, h, w, 3) and torch.equal(out, expected)


@pytest.mark.parametrize("width,height,res", [(1000, 700, 512), (100, 60, 512), (2048, 1537, 500)])
def test_upscale_tile_calculator(registry, width, height, res):
    image = torch.zeros(1, height, width, 3)
    out = call(registry, "Upscale Tile Calculator", image=image, tile_resolution=res)
    new_w, new_h = width // 8 * 8, height // 8 * 8
    assert out[0] is image
    assert out[1:] == (new_w // max(1, new_w // res), new_h // max(1, new_h // res))


def test_number_text_nodes(registry):
    assert call(registry, "Seed String", seed=2 ** 64 - 1) == (2 ** 64 - 1, str(2 ** 64 - 1))
    assert call(registry, "Int to String", int_=1234567, use_commas="true") == "1,234,567"
    assert call(registry, "Int to String", int_=1234567, use_commas="false") == "1234567"
    assert call(registry, "Float to String", float_=12345.5, use_commas="true") == f"{12345.5:,}"
    assert call(registry, "Float to String", float_=0.00001, use_commas="false") == str(0.00001)


@pytest.mark.parametrize("start,end,step,seed", [(0.0, 1.0, 0.1, 7), (0.5, 3.3, 0.3, 123456789), (1.0, 2.0, 0.7, 1),
                                                 (0.1, 100.0, 0.01, 2 ** 64 - 1), (2.0, 2.1, 0.5, 0)])
def test_range_float_is_numpy_arange(registry, start, end, step, seed):
    numbers = list(np.arange(start, end, step))
    expected = numbers[seed % len(numbers)]
    value, text = call(registry, "Range Float", start=start, end=end, step=step, seed=seed)
    assert value == expected and text == f"{expected}"


def test_range_integer_and_empty_ranges(registry):
    for start, end, step, seed in ((0, 10, 3, 5), (5, 100, 7, 2 ** 63), (1, 2, 1, 9)):
        numbers = list(np.arange(start, end, step))
        expected = numbers[seed % len(numbers)]
        assert call(registry, "Range Integer", start=start, end=end, step=step, seed=seed) == (expected, f"{expected}")
    # past 2^63 (len(range) overflows there) and 2^53 (a float count is off): range()'s own indexing
    for start, end, step, seed in ((0, 2 ** 64 - 1, 1, 12345), (3, 2 ** 64 - 1, 2 ** 53 + 1, 2 ** 64 - 1),
                                   (1, 2 ** 53 + 3, 1, 2 ** 53 + 1)):
        numbers = range(start, end, step)
        count = (end - start + step - 1) // step
        assert numbers[-1] == start + step * (count - 1)  # the count is range()'s
        expected = numbers[seed % count]
        assert call(registry, "Range Integer", start=start, end=end, step=step, seed=seed) == (expected, f"{expected}")
    with pytest.raises(NodeInputError, match="step above 0") as caught:
        call(registry, "Range Integer", start=0, end=10, step=0, seed=0)
    assert caught.value.input == "step"
    with pytest.raises(NodeInputError, match="empty") as caught:
        call(registry, "Range Float", start=1.0, end=1.0, step=0.1, seed=0)
    assert caught.value.input == "end"
    with pytest.raises(NodeInputError, match="too many numbers") as caught:
        call(registry, "Range Float", start=0.0, end=1e19, step=1e-300, seed=0)
    assert caught.value.input == "step"
    # a huge range is indexed, never built
    value = call(registry, "Range Float", start=0.0, end=1e15, step=0.5, seed=2 ** 60)[0]
    assert value == (2 ** 60 % (2 * 10 ** 15)) * 0.5


def test_text_concat_and_combinations(registry):
    texts = dict(text1="a", text2="", text3="b", text4="", text5="c")
    assert call(registry, "TextConcat", delimiter=", ", **texts) == "a, b, c"
    assert len(COMBINATIONS) == 9 and COMBINATIONS[0] == "text1 to output1, text1 to output2"
    out = call(registry, "TextCombinations", text1="cat", text2="dog", delimiter="-", use_seed="false", seed=0,
               operation="text1 + text2 to output1, text2 to output2")
    assert out == ("cat-dog", "dog")
    # use_seed: the seed mod 9th operation, the list being every (a, b) pair of text1, text2, text1 + text2
    pairs = [(a, b) for a in ("cat", "dog", "cat dog") for b in ("cat", "dog", "cat dog")]
    for seed in (0, 4, 8, 13):
        out = call(registry, "TextCombinations", text1="cat", text2="dog", operation=COMBINATIONS[0], delimiter=" ",
                   use_seed="true", seed=seed)
        assert out == pairs[seed % 9]


@pytest.fixture
def wildcards(tmp_folders):
    base = tmp_folders.models / "wildcards"
    (base / "sub").mkdir(parents=True)
    (base / "colour.txt").write_text("red\ngreen\nblue\nyellow\nblack\n", encoding="utf-8")
    (base / "sub" / "animal.txt").write_text("big cat\nsmall dog\nred fox\nbrown bear\n", encoding="utf-8")
    (base / "empty.txt").write_text("", encoding="utf-8")
    return base


def test_wildcards_picked_as_the_pack_picks(registry, wildcards):
    colours = ["red", "green", "blue", "yellow", "black"]
    animals = ["big cat", "small dog", "red fox", "brown bear"]
    seed = 7
    out = call(registry, "Wildcard Processor", prompt="a __colour__ __sub/animal__, [2$$__sub/animal__] end", seed=seed)
    # the offset starts at the seed and moves on by the lines each took; a repeated name reads at
    # random.randint(0, 1000000) after random.seed(seed)
    first, second = colours[seed % 5], animals[(seed + 1) % 4]
    drawn = random.Random(seed).randint(0, 1000000)
    repeat = ",".join(animals[(drawn % 4 + i) % 4] for i in range(2))
    assert out == f"a {first} {second}, {repeat} end"
    # |words: the next line from the offset holding a word, whole words, any case
    out = call(registry, "Wildcard Processor", prompt="__sub/animal|RED|bear__", seed=0)
    assert out == "red fox"
    assert call(registry, "Wildcard Processor", prompt="no wildcards", seed=3) == "no wildcards"
    for prompt, message in (("__missing__", "missing.txt not found"), ("__empty__", "empty.txt in .* is empty")):
        with pytest.raises(NodeInputError, match=message) as caught:
            call(registry, "Wildcard Processor", prompt=prompt, seed=0)
        assert caught.value.input == "prompt"


def packs_choices(text, seed):
    """process_wildcard_syntax as the pack states it: random.seed(seed), then each {..} match of the
    text as given replaced (str.replace) by random.choice of its |-parts."""
    random.seed(seed)
    for m in re.finditer(r"{([^}]+)}", text):
        text = text.replace(m.group(0), random.choice(m.group(1).split("|")))
    return text


def packs_random_numbers(text, seed):
    """process_random_syntax as the pack states it."""
    random.seed(seed)
    out, last = [], 0
    for m in re.finditer(r"<random:(-?\d*\.?\d+):(-?\d*\.?\d+)>", text):
        out += [text[last:m.start()], str(round(random.uniform(float(m.group(1)), float(m.group(2))), 4))]
        last = m.end()
    return "".join(out) + text[last:]


def test_wildcard_processor_choices_numbers_and_nested_wildcards(registry, wildcards):
    colours = ["red", "green", "blue", "yellow", "black"]
    (wildcards / "scene.txt").write_text("a {tall|short} __colour__ tree\n", encoding="utf-8")
    for seed in (0, 1, 5, 123456789):
        prompt = "{cat|dog|bird} and {cat|dog|bird}, {x|y} at <random:1.5:3> and <random:-2:.5>"
        expected = packs_random_numbers(packs_choices(prompt, seed), seed)
        assert call(registry, "Wildcard Processor", prompt=prompt, seed=seed) == expected
        # a wildcard file's line holding {..} and a wildcard: replaced on the next pass, seeded again
        out = call(registry, "Wildcard Processor", prompt="__scene__!", seed=seed)
        second = packs_choices("a {tall|short} __colour__ tree!", seed)
        assert out == second.replace("__colour__", colours[seed % 5])
    # a line that names its own file stops after the pack's 10 more passes
    (wildcards / "loop.txt").write_text("x __loop__\n", encoding="utf-8")
    assert call(registry, "Wildcard Processor", prompt="__loop__", seed=0) == "x " * 11 + "__loop__"
    # a run of digits after <random: doesn't backtrack (the pack's pattern is quadratic there)
    assert call(registry, "Wildcard Processor", prompt="<random:" + "1" * 200_000 + "x", seed=0).endswith("1x")
    # <random:..> is still refused by name where it isn't made
    with pytest.raises(NodeInputError, match="random") as caught:
        call(registry, "Prompt With Style", positive_prompt="<random:1:2>", negative_prompt="", style="none",
             ratio_selected=next(iter(RATIOS)), batch_size=1, seed=0)
    assert caught.value.input == "positive_prompt"


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry, wildcards):
    prompt = {
        "1": {"class_type": "Empty Latent Ratio Select SDXL", "inputs": {"ratio_selected": "9:16 [768x1344 portrait]",
                                                                         "batch_size": 1}},
        "2": {"class_type": "Range Integer", "inputs": {"start": 0, "end": 100, "step": 10, "seed": 3}},
        "3": {"class_type": "Int to String", "inputs": {"int_": ["2", 0], "use_commas": "false"}},
        "4": {"class_type": "Wildcard Processor", "inputs": {"prompt": "__colour__ sky", "seed": 1}},
        "5": {"class_type": "TextConcat", "inputs": {"delimiter": " | ", "text1": ["3", 0], "text2": ["4", 0]}},
        "6": {"class_type": "DebugPrint", "inputs": {"ANY": ["5", 0]}},
        "7": {"class_type": "Ratio Advanced", "inputs": {
            "preset": "none", "swap_axis": "false", "select_latent_ratio": "custom", "custom_latent_w": 800,
            "custom_latent_h": 600, "select_cte_ratio": "1:1 [1024x1024 square]", "cte_w": 0, "cte_h": 0,
            "cte_mult": 2.0, "cte_res": 0, "cte_fit_size": 0, "select_target_ratio": "custom", "target_w": 100,
            "target_h": 50, "target_mult": 0.0, "target_res": 0, "target_fit_size": 0, "crop_w": 0, "crop_h": 0,
            "use_preset_seed": "false", "seed": 0}},
    }
    result = run_graph(registry, prompt, ["1", "6", "7"])
    assert result.outputs["6"] == {"text": ["30 | green sky"]}
    assert result.values["1"][0]["samples"].shape == (1, 4, 168, 96)
    assert result.values["7"] == (800, 600, 2048, 2048, 100, 50, 0, 0)
    api = export_api(parse_workflow(prompt, registry), registry)
    prompt["5"]["inputs"].update(text3="", text4="", text5="")  # the optional texts' widgets, as the editor writes them
    for key, node in prompt.items():
        assert (api[key]["class_type"], api[key]["inputs"]) == (node["class_type"], node["inputs"]), key


def test_ui_save_with_the_packs_nodes_runs_and_round_trips(registry):
    """As the editor saves them: a seed's control_after_generate after it."""
    nodes = [
        ui_node(1, "Seed String", [42, "fixed"], outputs=[("seed", "INT", [1]), ("seed_string", "STRING", [2])]),
        ui_node(2, "Range Float", [0.0, 1.0, 0.25, 5, "randomize"], [("seed", "INT", 1, True)],
                [("FLOAT", "FLOAT", []), ("STRING", "STRING", [3])]),
        ui_node(3, "TextCombinations", ["Text 1", "Text 2", COMBINATIONS[5], "+", "false", 0, "fixed"],
                [("text1", "STRING", 2, True), ("text2", "STRING", 3, True)],
                [("output1", "STRING", [4]), ("output2", "STRING", [])]),
        ui_node(4, "DebugPrint", [], [("ANY", "*", 4, False)]),
        ui_node(5, "Empty Latent Ratio Custom SDXL", [1920, 1080, 2], outputs=[("LATENT", "LATENT", [])]),
        ui_node(6, "Float to String", [2.5, "false"], outputs=[("STRING", "STRING", [])]),
    ]
    links = [[1, 1, 0, 2, 3, "INT"], [2, 1, 1, 3, 0, "STRING"], [3, 2, 1, 3, 1, "STRING"], [4, 3, 0, 4, 0, "STRING"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["4", "5", "6"])
    value = list(np.arange(0.0, 1.0, 0.25))[42 % 4]
    # COMBINATIONS[5]: "text2 to output1, text1 + text2 to output2"
    assert COMBINATIONS[5] == "text2 to output1, text1 + text2 to output2"
    assert result.outputs["4"] == {"text": [f"{value}"]}
    w, h = reference_latent_size(1920, 1080)
    assert result.values["5"][0]["samples"].shape == (2, 4, h // 8, w // 8)
    assert result.values["6"] == ("2.5",)
    saved = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in saved["nodes"]}
    for n in nodes:
        assert by_id[n["id"]]["type"] == n["type"]
        assert by_id[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


def test_pack_named_for_its_classes(registry):
    from graphflow.validation import validate

    assert custom_pack("Prompt With Style V3") == "mikey_nodes"
    assert custom_pack("Mikey Sampler Tiled") == "mikey_nodes"
    prompt = {"1": {"class_type": "AddMetaData", "inputs": {"label": "a", "text_value": "b"}},
              "2": {"class_type": "LMStudioPrompt", "inputs": {}},
              "3": {"class_type": "Prompt With Style V2", "inputs": {}},
              "4": {"class_type": "Mikey Sampler Tiled", "inputs": {}},
              "5": {"class_type": "Mikey Sampler Base Only Advanced", "inputs": {}}}
    problems = {p.node_id: p.message for p in validate(parse_workflow(prompt, registry), registry)}
    assert "custom node from mikey_nodes" in problems["1"] and "extra_pnginfo" in problems["1"]
    assert "LLM web service" in problems["2"]
    # the classes not built this round say so, and what they need
    assert "not built yet" in problems["3"] and "lora" in problems["3"]
    assert "not built yet" in problems["4"] and "tile" in problems["4"]
    assert "not built yet" in problems["5"] and "ImageScaleBy" in problems["5"]


def test_image_overlay_is_the_overlay_blend(registry):
    from PIL import Image

    background = torch.rand(1, 20, 30, 3)
    foreground = torch.rand(1, 10, 40, 3)  # narrower than tall: cropped at the sides, black above and below
    out = call(registry, "ImageOverlay", background_image=background, foreground_image=foreground, opacity=0.7)
    a8 = np.clip(background[0].numpy() * 255, 0, 255).astype(np.uint8)
    f8 = np.clip(foreground[0].numpy() * 255, 0, 255).astype(np.uint8)
    canvas = Image.new("RGB", (30, 20))
    canvas.paste(Image.fromarray(f8), (int((30 - 40) / 2), int((20 - 10) / 2)))
    a, b = a8.astype(np.float32) / 255, np.asarray(canvas, dtype=np.float32) / 255
    assert not b[:5].any() and np.array_equal(b[5:15], f8[:, 5:35].astype(np.float32) / 255)
    blend = np.where(a < 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    expected = ((0.3 * a + 0.7 * blend) * 255).astype(np.uint8)
    assert out.shape == (1, 20, 30, 3)
    assert np.array_equal((out[0].numpy() * 255).round().astype(np.uint8), expected)


def png_texts(path):
    from PIL import Image

    with Image.open(path) as picture:
        return dict(picture.text), np.asarray(picture)


def test_save_image_with_prompt_data_names_and_chunks(registry, tmp_folders):
    images = torch.rand(2, 8, 12, 3)
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 12, "height": 8, "batch_size": 2, "color": 0}},
              "2": {"class_type": "Save Image With Prompt Data", "inputs": {
                  "images": ["1", 0], "positive_prompt": "a red fox, at dawn!", "negative_prompt": "blurry",
                  "filename_prefix": "foxes/run %width%x%height%", "parameters": "Steps: 20"}}}
    (tmp_folders.outputs / "foxes").mkdir()
    (tmp_folders.outputs / "foxes" / "old_00007_.png").write_bytes(b"")
    result = run_graph(registry, prompt)
    names = sorted(p.name for p in (tmp_folders.outputs / "foxes").iterdir())
    # the prefix's letters, digits, spaces, _ and -: "foxesrun 12x8"; numbered on from 7
    assert names == ["foxesrun 12x8_00008_.png", "foxesrun 12x8_00009_.png", "old_00007_.png"]
    texts, pixels = png_texts(tmp_folders.outputs / "foxes" / names[0])
    assert texts["positive_prompt"] == "a red fox, at dawn!" and texts["negative_prompt"] == "blurry"
    assert texts["filename_prefix"] == '"foxesrun 12x8"' and texts["parameters"] == "Steps: 20"
    assert json.loads(texts["prompt"])["2"]["class_type"] == "Save Image With Prompt Data"
    assert pixels.shape == (8, 12, 3) and not pixels.any()  # EmptyImage's black
    shown = result.outputs["2"]["images"]
    assert [s["filename"] for s in shown] == names[:2] and shown[0]["subfolder"] == "foxes"
    # no prefix: time stamp, the positive prompt's letters, digits and spaces as _
    call(registry, "Save Image With Prompt Data", images=images[:1], positive_prompt="big cat", negative_prompt="",
         filename_prefix="", parameters="")
    (made,) = [p.name for p in tmp_folders.outputs.iterdir() if p.suffix == ".png"]
    assert re.fullmatch(r"\d{12}_big_cat__00001_\.png", made)
    texts, pixels = png_texts(tmp_folders.outputs / made)
    assert "negative_prompt" not in texts and "parameters" not in texts
    assert np.array_equal(pixels, np.clip(images[0].numpy() * 255, 0, 255).astype(np.uint8))
    with pytest.raises(NodeInputError, match="outside the output folder") as caught:
        call(registry, "Save Image With Prompt Data", images=images, positive_prompt="", negative_prompt="",
             filename_prefix="../up/x", parameters="")
    assert caught.value.input == "filename_prefix"
    with pytest.raises(NodeInputError, match="255") as caught:  # ENAMETOOLONG before
        call(registry, "Save Image With Prompt Data", images=images, positive_prompt="", negative_prompt="",
             filename_prefix="d" * 300 + "/x", parameters="")
    assert caught.value.input == "filename_prefix"


SAVE_MIKEY = dict(sub_directory="set", filename_text_1="fox", filename_text_2="Filename Text 2", filename_text_3="",
                  filename_separator="_", timestamp="false", counter_type="folder", filename_text_1_pos=0,
                  filename_text_2_pos=2, filename_text_3_pos=4, timestamp_pos=1, timestamp_type="save_time",
                  counter_pos=3, extra_metadata="shot 1")


def test_save_images_mikey_names_counters_and_chunks(registry, tmp_folders):
    images = torch.rand(2, 6, 5, 3)
    call(registry, "Save Images Mikey", images=images, **SAVE_MIKEY)
    folder = tmp_folders.outputs / "set"
    # parts by position: fox (0), no timestamp (1), the default text 2 kept as the pack keeps it (2), counter (3)
    made = sorted(p.name for p in folder.iterdir())
    assert made == ["fox_Filename Text 2_00001.png", "fox_Filename Text 2_00002.png"]
    texts, pixels = png_texts(folder / "fox_Filename Text 2_00002.png")
    assert texts["extra_metadata"] == "shot 1"
    assert np.array_equal(pixels, np.clip(images[1].numpy() * 255, 0, 255).astype(np.uint8))
    # "folder": on from the highest number at the counter's place (the place's index into the
    # name split by the separator); from 1 again where a name there holds no number, as the pack's
    counted = tmp_folders.outputs / "count"
    counted.mkdir()
    (counted / "a_b_00041_c.png").write_bytes(b"")
    later = {**SAVE_MIKEY, "sub_directory": "count", "counter_pos": 2, "filename_text_2_pos": 3}
    call(registry, "Save Images No Display", images=images[:1], **later)
    assert (counted / "fox_00042_Filename Text 2.png").is_file()
    call(registry, "Save Images No Display", images=images[:1], **later)
    assert (counted / "fox_00001_Filename Text 2.png").is_file()
    # "none" with a timestamp: _01 after the batch's later stamps
    call(registry, "Save Images Mikey", images=images, **{**SAVE_MIKEY, "sub_directory": "none", "counter_type": "none",
                                                          "timestamp": "true", "filename_text_2": ""})
    made = sorted(p.name for p in (tmp_folders.outputs / "none").iterdir())
    assert re.fullmatch(r"fox_\d{12}\.png", made[0]) and re.fullmatch(r"fox_\d{12}_01\.png", made[1])
    with pytest.raises(NodeInputError, match="must differ") as caught:
        call(registry, "Save Images Mikey", images=images, **{**SAVE_MIKEY, "counter_pos": 0})
    assert caught.value.input == "counter_pos"
    with pytest.raises(NodeInputError, match="outside the output folder") as caught:
        call(registry, "Save Images Mikey", images=images, **{**SAVE_MIKEY, "sub_directory": "../x"})
    assert caught.value.input == "sub_directory"
    with pytest.raises(NodeInputError, match="make folders") as caught:
        call(registry, "Save Images Mikey", images=images, **{**SAVE_MIKEY, "filename_separator": "/"})
    assert caught.value.input == "filename_separator"
    # over-long names and NULs: refused naming the input the text came from (ENAMETOOLONG before)
    for changed, input_name, message in (({"filename_separator": "x" * 300}, "filename_separator", "255"),
                                         ({"sub_directory": "y" * 300}, "sub_directory", "255"),
                                         ({"sub_directory": "ok/" + "z" * 256}, "sub_directory", "256 bytes"),
                                         ({"filename_text_1": "a\x00b"}, "filename_text_1", "NUL"),
                                         ({"filename_separator": "\x00"}, "filename_separator", "NUL")):
        with pytest.raises(NodeInputError, match=message) as caught:
            call(registry, "Save Images Mikey", images=images, **{**SAVE_MIKEY, **changed})
        assert caught.value.input == input_name, changed


@pytest.mark.parametrize("counter_type", ["folder", "none"])
def test_save_images_mikey_leaves_no_half_written_file(registry, tmp_folders, monkeypatch, counter_type):
    from PIL import Image

    def fails_midway(picture, path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"\x89PNG half")
        raise OSError("disk full")

    folder = tmp_folders.outputs / "set"
    folder.mkdir()
    (folder / "fox_Filename Text 2.png").write_bytes(b"kept")  # "none" would overwrite this name
    monkeypatch.setattr(Image.Image, "save", fails_midway)
    with pytest.raises(OSError, match="disk full"):
        call(registry, "Save Images Mikey", images=torch.rand(1, 4, 4, 3),
             **{**SAVE_MIKEY, "counter_type": counter_type})
    assert sorted(p.name for p in folder.iterdir()) == ["fox_Filename Text 2.png"]
    assert (folder / "fox_Filename Text 2.png").read_bytes() == b"kept"
    monkeypatch.undo()
    # "none" overwrites that name as the pack does: the file is replaced whole
    call(registry, "Save Images Mikey", images=torch.rand(1, 4, 4, 3), **{**SAVE_MIKEY, "counter_type": "none"})
    assert sorted(p.name for p in folder.iterdir()) == ["fox_Filename Text 2.png"]
    assert (folder / "fox_Filename Text 2.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def picture_folder(tmp_folders):
    from PIL import Image

    folder = tmp_folders.inputs / "shots"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pictures = {"b.png": rng.integers(0, 256, (40, 64, 3), dtype=np.uint8),
                "a.jpg": rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)}
    for name, pixels in pictures.items():
        Image.fromarray(pixels).save(folder / name)
    (folder / "notes.txt").write_text("not a picture")
    return folder, pictures


def test_folder_pictures_load_resize_and_crop(registry, picture_folder):
    from PIL import Image

    folder, pictures = picture_folder
    loaded = call(registry, "Batch Load Images", image_directory="shots", subdirectories="false")
    assert len(loaded) == 2 and loaded[0].shape == (1, 48, 48, 3)  # sorted by name: a.jpg, then b.png
    with Image.open(folder / "a.jpg") as jpeg:
        assert torch.equal(loaded[0][0], torch.from_numpy(np.asarray(jpeg.convert("RGB"), dtype=np.float32) / 255))
    assert torch.equal(loaded[1][0], torch.from_numpy(pictures["b.png"].astype(np.float32) / 255))
    resized = call(registry, "Batch Resize Image for SDXL", image_directory="shots", upscale_method="bicubic",
                   crop="disabled")
    for image, original in zip(resized, loaded):
        w, h = reference_latent_size(original.shape[2], original.shape[1])
        assert torch.equal(image, call(registry, "ImageScale", image=original, upscale_method="bicubic", width=w,
                                       height=h, crop="disabled"))
    cropped = call(registry, "Batch Crop Image", image_directory="shots", crop_amount=0.2)
    cut = int(64 * 0.2) // 8 * 8  # b.png: 12 -> 8 from each side
    assert torch.equal(cropped[1], loaded[1][:, cut:40 - cut, cut:64 - cut])
    (folder.parent / "no_pictures").mkdir()
    for directory, message in (("../", "inside the inputs folder"), ("nowhere", "does not exist"),
                               ("", "is empty"), ("  ", "is empty"), ("no_pictures", "holds no pictures")):
        with pytest.raises(NodeInputError, match=message) as caught:
            call(registry, "Batch Load Images", image_directory=directory, subdirectories="false")
        assert caught.value.input == "image_directory"


def test_image_caption_bar_below_the_image(registry, tmp_folders):
    from PIL import ImageFont

    image = torch.rand(2, 30, 200, 3)
    caption = "a long caption that wraps over more than one line here"
    out = call(registry, "Image Caption", image=image, font="none.ttf", caption=caption)
    font = ImageFont.load_default(size=32)  # no such font file: Pillow's own
    lines, line = [], ""
    for word in caption.split(" "):  # the pack's wrap, measured with Pillow
        if line and int(font.getlength(line + " " + word)) <= 200:
            line += " " + word
        else:
            if line:
                lines.append(line)
            line = word
    lines.append(line)
    box = font.getbbox("Hg")
    bar = len(lines) * (box[3] - box[1]) + 30
    assert len(lines) > 1 and out.shape == (2, 30 + bar + 5, 200, 3)
    truncated = torch.from_numpy(np.clip(image.numpy() * 255, 0, 255).astype(np.uint8).astype(np.float32) / 255)
    assert torch.equal(out[:, :30], truncated)  # the picture above, in 8-bit levels
    assert out[:, 30:30 + 15].max() == 0 and out[:, -5:].max() == 0  # padding black
    assert out[:, 45:30 + bar].max() == 1.0  # white text


def packs_caption_wrap(text, font, width):
    """The pack's wrap as it states it: per line of the text, the growing line measured per word."""
    lines = []
    for line in text.split("\n"):
        words = line.split(" ")
        current = words[0]
        for word in words[1:]:
            if int(font.getlength(current + " " + word)) <= width:
                current += " " + word
            else:
                lines.append(current)
                current = word
        lines.append(current)
    return lines


class CountingFont:
    def __init__(self, font):
        self.font, self.calls, self.chars = font, 0, 0

    def getlength(self, text):
        self.calls += 1
        self.chars += len(text)
        return self.font.getlength(text)


def test_caption_wrap_is_the_packs_with_few_measures():
    from PIL import ImageFont

    from nodes.pack_nodes_mikey import caption_lines

    font = ImageFont.load_default(size=32)
    rng = random.Random(3)
    words = ["".join(rng.choice("abcdefghij WM") for _ in range(rng.randint(0, 12))) for _ in range(400)]
    text = " ".join(words) + "\n\nshort\n" + "x" * 90 + " tail  two  spaces"
    for width in (8, 100, 333, 1024, 4096):
        assert caption_lines(text, font, width) == packs_caption_wrap(text, font, width), width
    # a long caption at 4096 px: measures grow with the lines, not with the words (the pack's: one a word)
    # (the pack's wrap of it, one measure a word, takes ~25 s: its full line is taken from a shorter one)
    caption = "a " * 49999
    counted = CountingFont(font)
    lines = caption_lines(caption, counted, 4096)
    full_line = packs_caption_wrap("a " * 3000, font, 4096)[0]
    assert all(line == full_line for line in lines[:-1]) and " ".join(lines) == caption
    assert counted.calls < len(lines) * 2 * 10 and counted.calls * 10 < caption.count(" ")
    assert counted.chars < 2 * 10 * len(caption)


def test_checkpoint_loader_simple_mikey_adds_name_and_hash(registry, tmp_folders):
    import hashlib

    from graphflow.testing import write_checkpoint

    (tmp_folders.models / "checkpoints" / "sub").mkdir(parents=True)
    path = tmp_folders.models / "checkpoints" / "sub" / "tiny.safetensors"
    write_checkpoint(path, "sd1")
    prompt = {"1": {"class_type": "Checkpoint Loader Simple Mikey", "inputs": {"ckpt_name": "sub/tiny.safetensors"}},
              "2": {"class_type": "DebugPrint", "inputs": {"ANY": ["1", 4]}},
              "3": {"class_type": "DebugPrint", "inputs": {"ANY": ["1", 3]}}}
    result = run_graph(registry, prompt)
    assert result.outputs["2"] == {"text": [hashlib.sha256(path.read_bytes()).hexdigest()[:10]]}
    assert result.outputs["3"] == {"text": ["tiny.safetensors"]}
    model, clip, vae = result.values["1"][:3]
    core = call(registry, "CheckpointLoaderSimple", checkpoint="sub/tiny.safetensors")
    assert type(model) is type(core[0]) and type(vae) is type(core[2])
    api = export_api(parse_workflow(prompt, registry), registry)
    assert api["1"] == {"class_type": "Checkpoint Loader Simple Mikey", "inputs": {"ckpt_name": "sub/tiny.safetensors"}}


@pytest.fixture
def styles(tmp_folders):
    folder = tmp_folders.models / "styles" / "mikey"
    folder.mkdir(parents=True)
    (folder / "styles.json").write_text(json.dumps({"styles": {
        "none": {"positive": "", "negative": ""},
        "neon": {"positive": "neon lights, {prompt}, glowing", "negative": "dull"},
        "film": {"positive": "analog film", "negative": "digital, {prompt}"}}}), encoding="utf-8")
    (folder / "user_styles.json").write_text(json.dumps({"styles": {"mine": {"positive": "my look",
                                                                             "negative": ""}}}), encoding="utf-8")
    return folder


def test_prompt_with_style_merges_the_style(registry, styles, wildcards):
    from nodes.pack_nodes_mikey import picked_style, style_choices

    assert style_choices() == ["none", "neon", "film", "mine"]
    out = call(registry, "Prompt With Style", positive_prompt="a __colour__ car", negative_prompt="blurry",
               style="neon", ratio_selected="16:9 [1344x768 landscape]", batch_size=2, seed=2)
    latent, *texts = out
    ratio = 768 / 1344
    assert latent["samples"].shape == (2, 4, 96, 168)
    assert texts == ["neon lights, a blue car, glowing", "blurry, dull", "neon lights, {prompt}, glowing", "dull",
                     1344, 768, 4096, int(4096 * ratio // 8 * 8)]
    out = call(registry, "Prompt With Style", positive_prompt="Positive Prompt", negative_prompt="noisy",
               style="film", ratio_selected="2:3 [832x1216 portrait]", batch_size=1, seed=0)
    assert out[1:3] == ("analog film", "digital, noisy") and out[7:] == (int(4096 * 832 / 1216 // 8 * 8), 4096)
    # a style the files lack is not offered (validation names the choices); one gone by run time is refused
    with pytest.raises(ValueError, match="'gone' is not one of the choices: 'none', 'neon'"):
        call(registry, "Prompt With Style", positive_prompt="x", negative_prompt="", style="gone",
             ratio_selected=next(iter(RATIOS)), batch_size=1, seed=0)
    with pytest.raises(NodeInputError, match="not in styles.json / user_styles.json") as caught:
        picked_style("gone")
    assert caught.value.input == "style"
    with pytest.raises(NodeInputError, match="random") as caught:
        call(registry, "Prompt With SDXL", positive_prompt="<random:1:2>", negative_prompt="", positive_style="",
             negative_style="", ratio_selected=next(iter(RATIOS)), batch_size=1, seed=0)
    assert caught.value.input == "positive_prompt"
    out = call(registry, "Prompt With SDXL", positive_prompt="__colour__", negative_prompt="n", positive_style="ps",
               negative_style="ns", ratio_selected="1:1 [1024x1024 square]", batch_size=1, seed=4)
    assert out[1:] == ("black", "n", "ps", "ns", 1024, 1024, 4096, 4096)


def test_style_conditioner_is_encode_and_average(registry, styles, tmp_folders):
    from graphflow.testing import write_checkpoint

    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "base.safetensors", "sdxl")
    write_checkpoint(tmp_folders.models / "checkpoints" / "refiner.safetensors", "sdxl_refiner")
    _, base_clip, _ = call(registry, "CheckpointLoaderSimple", checkpoint="base.safetensors")
    _, refiner_clip, _ = call(registry, "CheckpointLoaderSimple", checkpoint="refiner.safetensors")
    sizes = dict(width=1024, height=1024, crop_w=0, crop_h=0, target_width=1024, target_height=1024)
    given = [call(registry, "CLIPTextEncodeSDXL", clip=base_clip, text_g=t, text_l=t, **sizes) for t in ("cat", "ugly")]
    given += [call(registry, "CLIPTextEncodeSDXLRefiner", clip=refiner_clip, ascore=6.0, width=1024, height=1024,
                   text=t) for t in ("cat", "ugly")]
    inputs = dict(strength=0.3, positive_cond_base=given[0], negative_cond_base=given[1],
                  positive_cond_refiner=given[2], negative_cond_refiner=given[3], base_clip=base_clip,
                  refiner_clip=refiner_clip, use_seed="false", seed=0)
    out = call(registry, "Style Conditioner", style="neon", **inputs)
    made = [call(registry, "CLIPTextEncodeSDXL", clip=base_clip, text_g=t, text_l=t, **sizes)
            for t in ("neon lights, , glowing", "dull")]
    made += [call(registry, "CLIPTextEncodeSDXLRefiner", clip=refiner_clip, ascore=a, width=4096, height=4096, text=t)
             for a, t in ((6.0, "neon lights, , glowing"), (2.5, "dull"))]
    for got, new, old in zip(out[:4], made, given):
        expected = call(registry, "ConditioningAverage", conditioning_to=new, conditioning_from=old,
                        conditioning_to_strength=0.3)
        assert torch.equal(got[0][0], expected[0][0])
        assert torch.equal(got[0][1]["pooled_output"], expected[0][1]["pooled_output"])
    assert out[4] == "neon"
    passed = call(registry, "Style Conditioner", style="none", **inputs)
    assert passed[:4] == tuple(given) and passed[4] == "none"
    # use_seed: the seed mod 4th style of the files' list (none, neon, film, mine)
    assert call(registry, "Style Conditioner", style="none", **{**inputs, "use_seed": "true", "seed": 7})[4] == "mine"


def test_mikey_style_files_live_apart_and_a_bad_one_is_left_out_alone(registry, styles, caplog):
    import logging

    import nodes.pack_nodes_mikey as mikey
    from nodes.pack_nodes_sdxl_styler import style_names

    # models/styles/mikey is not read by twri's styler (its top level is): no warning from it
    with caplog.at_level(logging.WARNING):
        names = style_names()
    assert "neon" not in names and "styles.json" not in caplog.text
    # a twri-shaped user_styles.json: left out on its own, with a warning naming it; styles.json's stay
    (styles / "user_styles.json").write_text(json.dumps([{"name": "u", "prompt": "{prompt}"}]), encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert mikey.style_choices() == ["none", "neon", "film"]
    assert "user_styles.json" in caplog.text and "not the pack's shape" in caplog.text
    # the file-state cache: read once while unchanged (no second warning)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert mikey.style_choices() == ["none", "neon", "film"]
    assert "user_styles.json" not in caplog.text
    # over the styler's size cap: left out with a warning
    (styles / "user_styles.json").write_text(json.dumps({"styles": {"big": {"positive": "x" * 64, "negative": ""}}}),
                                             encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert mikey.style_choices() == ["none", "neon", "film", "big"]
        original = mikey.MAX_STYLE_FILE
        try:
            mikey.MAX_STYLE_FILE = 10
            mikey._read_style_file.cache_clear()
            assert mikey.style_choices() == ["none"]
        finally:
            mikey.MAX_STYLE_FILE = original
            mikey._read_style_file.cache_clear()
    assert "larger than 10 bytes" in caplog.text
    # the top level is not Mikey's
    (styles / "styles.json").rename(styles.parent / "styles.json")
    (styles / "user_styles.json").unlink()
    assert mikey.style_choices() == ["none"]


def test_without_style_files_only_none(registry, tmp_folders):
    from nodes.pack_nodes_mikey import style_choices

    assert style_choices() == ["none"]
    out = call(registry, "Prompt With Style", positive_prompt="a cat", negative_prompt="Negative Prompt", style="none",
               ratio_selected="1:1 [1024x1024 square]", batch_size=1, seed=0)
    assert out[1:5] == ("a cat", "", "", "")


def test_image_complexity_and_hires_start():
    from nodes.pack_nodes_mikey import hires_start, image_complexity

    flat = torch.full((16, 16, 3), 0.5)
    assert image_complexity(flat) == pytest.approx(0.0, abs=1e-9) and hires_start(0.0, 1.0, 16) == 16
    halves = torch.zeros(16, 16, 3)
    halves[:, 8:] = 1.0
    # the one edge step is 255, whose square wraps to 1 in the pack's uint8 arithmetic: no edges;
    # each channel's spread 0.5, two equal grey bins: 1 bit
    assert image_complexity(halves) == pytest.approx(0.5 * 3 + 1.0)
    assert hires_start(2.5, 1.0, 16) == 16 - round(2.5 / 24 * 16)
    assert hires_start(100.0, 2.0, 31) == 31 - round(0.55 * 2 * 31)


def test_mikey_sampler_is_its_core_nodes(registry, tmp_folders):
    from graphflow.testing import write_checkpoint, write_esrgan
    from nodes.pack_nodes_mikey import hires_start, image_complexity

    for sub in ("checkpoints", "upscale_models"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "base.safetensors", "sdxl")
    write_checkpoint(tmp_folders.models / "checkpoints" / "refiner.safetensors", "sdxl_refiner")
    write_esrgan(tmp_folders.models / "upscale_models" / "x2.safetensors", scale=2)
    base, base_clip, vae = call(registry, "CheckpointLoaderSimple", checkpoint="base.safetensors")
    refiner, refiner_clip, _ = call(registry, "CheckpointLoaderSimple", checkpoint="refiner.safetensors")
    sizes = dict(width=64, height=64, crop_w=0, crop_h=0, target_width=64, target_height=64)
    pos, neg = (call(registry, "CLIPTextEncodeSDXL", clip=base_clip, text_g=t, text_l=t, **sizes) for t in ("a", "b"))
    rpos, rneg = (call(registry, "CLIPTextEncodeSDXLRefiner", clip=refiner_clip, ascore=a, width=64, height=64, text=t)
                  for a, t in ((6.0, "a"), (2.5, "b")))
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    out = call(registry, "Mikey Sampler", base_model=base, refiner_model=refiner, samples=latent, vae=vae,
               positive_cond_base=pos, negative_cond_base=neg, positive_cond_refiner=rpos, negative_cond_refiner=rneg,
               model_name="x2.safetensors", seed=5, upscale_by=1.5, hires_strength=1.0)

    def advanced(model, noise, steps, cfg, sampler, scheduler, p, n, lat, start, end, leftover):
        return call(registry, "KSamplerAdvanced", model=model, add_noise=noise, noise_seed=5, steps=steps, cfg=cfg,
                    sampler_name=sampler, scheduler=scheduler, positive=p, negative=n, latent_image=lat,
                    start_at_step=start, end_at_step=end, return_with_leftover_noise=leftover)

    first = advanced(base, "enable", 25, 6.5, "dpmpp_2s_ancestral", "simple", pos, neg, latent, 0, 18, "enable")
    refined = advanced(refiner, "disable", 30, 3.5, "dpmpp_2m", "simple", rpos, rneg, first, 21, 10000, "disable")
    pixels = call(registry, "VAEDecode", samples=refined, vae=vae)
    model = call(registry, "UpscaleModelLoader", model_name="x2.safetensors")
    image = call(registry, "ImageUpscaleWithModel", upscale_model=model, image=pixels)
    w, h = int(pixels.shape[2] * 1.5 // 8 * 8), int(pixels.shape[1] * 1.5 // 8 * 8)
    image = call(registry, "ImageScale", image=image, upscale_method="nearest-exact", width=w, height=h, crop="center")
    encoded = call(registry, "VAEEncode", pixels=image, vae=vae)
    start = hires_start(image_complexity(image[0]), 1.0, 16)
    expected = advanced(base, "enable", 16, 9.5, "dpmpp_2m_sde", "karras", pos, neg, encoded, start, 10000, "disable")
    assert out["samples"].shape == (1, 4, h // 8, w // 8)
    assert torch.equal(out["samples"], expected["samples"])
    # upscale_by 0: the refiner's latent
    kept = call(registry, "Mikey Sampler", base_model=base, refiner_model=refiner, samples=latent, vae=vae,
                positive_cond_base=pos, negative_cond_base=neg, positive_cond_refiner=rpos,
                negative_cond_refiner=rneg, model_name="x2.safetensors", seed=5, upscale_by=0.0, hires_strength=1.0)
    assert torch.equal(kept["samples"], refined["samples"])


def test_ui_save_with_the_packs_widget_heavy_nodes(registry, tmp_folders, wildcards):
    """Widgets read by position, as the pack's nodes save them: Ratio Advanced's 21 (a seed's
    control after it), Save Images Mikey's 14, Image Caption, Prompt With Style, TextConcat."""
    first_ratio = next(iter(RATIOS))
    ratio_widgets = ["none", "false", "custom", 640, 512, first_ratio, 0, 0, 0.0, 0, 512, "custom", 300, 200, 2.0,
                     0, 0, 16, 8, "false", 3, "fixed"]
    save_widgets = ["ui", "cap", "", "", "-", "false", "folder", 0, 2, 4, 1, "job", 3, ""]
    nodes = [
        ui_node(1, "Ratio Advanced", ratio_widgets, outputs=[(n, "INT", [1] if n == "target_w" else []) for n in (
            "latent_w", "latent_h", "cte_w", "cte_h", "target_w", "target_h", "crop_w", "crop_h")]),
        ui_node(2, "DebugPrint", [], [("ANY", "*", 1, False)]),
        ui_node(3, "EmptyImage", [64, 32, 1, 0], outputs=[("IMAGE", "IMAGE", [2])]),
        ui_node(4, "Image Caption", ["none.ttf", "hi"], [("image", "IMAGE", 2, False)], [("image", "IMAGE", [3])]),
        ui_node(5, "Save Images Mikey", save_widgets, [("images", "IMAGE", 3, False)]),
        ui_node(6, "Wildcard Processor", ["__colour__", 1, "fixed"], outputs=[("STRING", "STRING", [4])]),
        ui_node(7, "TextConcat", [" & ", "", "end", "", "", ""], [("text1", "STRING", 4, True)],
                [("STRING", "STRING", [5])]),
        ui_node(8, "DebugPrint", [], [("ANY", "*", 5, False)]),
        ui_node(9, "Prompt With Style", ["cat", "Negative Prompt", "none", first_ratio, 1, 0, "fixed"],
                outputs=[("samples", "LATENT", [])]),
    ]
    links = [[1, 1, 4, 2, 0, "INT"], [2, 3, 0, 4, 0, "IMAGE"], [3, 4, 0, 5, 0, "IMAGE"], [4, 6, 0, 7, 1, "STRING"],
             [5, 7, 0, 8, 0, "STRING"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["2", "5", "8", "9"])
    assert result.values["1"] == (640, 512, 512, 512, 600, 400, 16, 8)  # the cte ratio fitted to 512
    assert result.outputs["8"] == {"text": ["green & end"]}
    assert result.values["9"][1] == "cat"
    saved = sorted(p.name for p in (tmp_folders.outputs / "ui").iterdir())
    assert saved == ["cap-00001.png"]
    exported = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for n in nodes:
        assert exported[n["id"]]["type"] == n["type"]
        assert exported[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


def test_hald_clut_looks_colours_up(registry, tmp_folders):
    from PIL import Image

    (tmp_folders.models / "luts").mkdir(parents=True, exist_ok=True)
    flat = np.arange(16 ** 3)  # a level-4 Hald CLUT: 64 x 64 pixels, 16 steps a channel, entry r + 16 g + 256 b
    identity = np.stack([flat % 16, flat // 16 % 16, flat // 256], axis=-1) * 17
    Image.fromarray((255 - identity).reshape(64, 64, 3).astype(np.uint8)).save(tmp_folders.models / "luts" / "neg.png")
    image = torch.rand(2, 5, 7, 3)
    levels = np.clip(image.numpy() * 255, 0, 255).astype(np.uint8)
    out = call(registry, "HaldCLUT ", image=image, hald_clut="neg.png", gamma_correction="False")
    expected = 255 - np.rint(levels * (15 / 255)).astype(int) * 17
    assert np.array_equal((out.numpy() * 255).round().astype(int), expected)
    out = call(registry, "HaldCLUT ", image=image, hald_clut="neg.png", gamma_correction="True")
    corrected = np.uint8(np.power(levels / 255.0, 1 / 2.2) * 255)
    expected = 255 - np.rint(corrected * (15 / 255)).astype(int) * 17
    assert np.array_equal((out.numpy() * 255).round().astype(int), expected)
    Image.new("RGB", (10, 10)).save(tmp_folders.models / "luts" / "small.png")
    with pytest.raises(NodeInputError, match="not a Hald CLUT") as caught:
        call(registry, "HaldCLUT ", image=image, hald_clut="small.png", gamma_correction="False")
    assert caught.value.input == "hald_clut"


def test_long_prompts_are_searched_under_a_time_limit(registry, wildcards):
    long_prompt = "x " * 2000 + "__colour__"  # past the unguarded length: searched in a child process first
    assert call(registry, "Wildcard Processor", prompt=long_prompt, seed=0) == "x " * 2000 + "red"
    with pytest.raises(NodeInputError, match="was stopped") as caught:  # the pattern backtracks on runs of "__a|"
        call(registry, "Wildcard Processor", prompt="__a|" * 50000, seed=0)
    assert caught.value.input == "prompt"


def test_choices_found_in_one_pass_as_the_packs_pattern_finds_them(registry, wildcards):
    import time

    from nodes.pack_nodes_mikey import choice_spans

    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(rng.choice("{}{}a|b\n") for _ in range(rng.randrange(0, 14)))
        assert list(choice_spans(text)) == [m.span() for m in re.finditer(r"{([^}]+)}", text)], text
    # many "{" and no "}": the pattern backtracks (quadratic: minutes for a few 100,000 characters)
    started = time.perf_counter()
    assert call(registry, "Wildcard Processor", prompt="{a" * 200_000, seed=0) == "{a" * 200_000
    assert time.perf_counter() - started < 5


def test_nested_wildcards_share_one_budget_and_read_each_file_once(registry, wildcards, monkeypatch):
    import nodes.pack_nodes_mikey as mikey
    from graphflow.context import Interrupted

    reads = []
    real_lines = mikey.wildcard_lines
    monkeypatch.setattr(mikey, "wildcard_lines", lambda name, input_name="prompt": reads.append(name) or
                        real_lines(name, input_name))
    words = mikey.process_prompt("__colour__ " * 20_000, 0).split()
    assert len(words) == 20_000 and set(words) <= {"red", "green", "blue", "yellow", "black"}
    assert reads == ["colour"]  # one read for 20,000 wildcards
    # a file naming itself three times: the text grows threefold each pass, 11 passes
    (wildcards / "grow.txt").write_text("__grow__ __grow__ __grow__\n", encoding="utf-8")
    reads.clear()
    out = mikey.process_prompt("__grow__", 0)
    assert out.count("__grow__") == 3 ** 11 and reads == ["grow"]
    # all passes count against one budget, refused naming the prompt
    produced = sum(len("__grow__ " * 3 ** k) for k in range(1, 8))
    monkeypatch.setattr(mikey, "MAX_WILDCARD_WORK", produced)
    with pytest.raises(NodeInputError, match="over all passes") as caught:
        call(registry, "Wildcard Processor", prompt="__grow__", seed=0)
    assert caught.value.input == "prompt"
    # a long text that stays long: each pass within the text limit, all of them over the budget
    (wildcards / "loop.txt").write_text("x __loop__\n", encoding="utf-8")
    monkeypatch.setattr(mikey, "MAX_WILDCARD_WORK", 5 * 100_000)
    with pytest.raises(NodeInputError, match="over all passes"):
        mikey.process_prompt("y" * 100_000 + "__loop__", 0)
    # the passes can be interrupted
    calls = []

    def interrupt():
        calls.append(1)
        raise Interrupted("stop")
    monkeypatch.setattr(mikey, "check_interrupted", interrupt)
    monkeypatch.setattr(mikey, "MAX_WILDCARD_WORK", 10 ** 9)
    with pytest.raises(Interrupted):
        mikey.process_prompt("__loop__", 0)
    assert calls == [1]
