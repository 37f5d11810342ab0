"""ComfyUI-Easy-Use's nodes (nodes/pack_nodes_easyuse.py, nodes/pack_nodes_easyuse_pipe.py):
values, switches, comparisons and math against Python's own operators, Show Any's texts against
json.dumps, the image-size nodes against the tensor's shape, the prompt nodes against str
methods, the pipe loaders, pipe nodes, ControlNet loaders and samplers against the core node
chains they stand for, the clear errors, UI-format saves (seed with its control widget) and API
prompts with the pack's class names, and export round trips."""

import json
import operator
import re
import sys

import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_easyuse import easy_math, shown_values, string_test
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_pysssss import models  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.mark.parametrize("a, b", [(7, 3), (-7, 3), (7, -3), (2, 10), (0, 5)])
def test_math_int_is_pythons_whole_number_arithmetic(registry, a, b):
    want = {"add": a + b, "subtract": a - b, "multiply": a * b, "divide": a // b, "modulo": a % b, "power": a ** b}
    for operation, value in want.items():
        assert call(registry, "EasyMathInt", a=a, b=b, operation=operation) == value


def test_math_float_is_pythons_arithmetic(registry):
    a, b = 7.5, -2.25
    for operation, op in (("add", operator.add), ("subtract", operator.sub), ("multiply", operator.mul),
                          ("divide", operator.truediv), ("modulo", operator.mod)):
        assert call(registry, "EasyMathFloat", a=a, b=b, operation=operation) == op(a, b)
    assert call(registry, "EasyMathFloat", a=2.0, b=0.5, operation="power") == 2.0 ** 0.5


def test_math_errors_name_b():
    for operation in ("divide", "modulo"):
        with pytest.raises(NodeInputError) as e:
            easy_math(3, 0, operation)
        assert e.value.input == "b"
    with pytest.raises(NodeInputError, match="too big"):
        easy_math(3, 10 ** 9, "power")
    with pytest.raises(NodeInputError, match="not a real number"):
        easy_math(-8.0, 0.5, "power")
    with pytest.raises(NodeInputError):
        easy_math(1e300, 1e300, "power")


def test_math_int_refuses_a_result_too_long_to_write_as_text(registry):
    digits = sys.get_int_max_str_digits()
    assert easy_math(10, digits - 1, "power") == 10 ** (digits - 1)  # `digits` digits: Python writes it
    with pytest.raises(NodeInputError) as e:
        easy_math(10, digits, "power")
    assert e.value.input == "b"
    graph = {"1": {"class_type": "easy mathInt", "inputs": {"a": 2 ** 64 - 1, "b": 10000, "operation": "power"}},
             "2": {"class_type": "easy showAnything", "inputs": {"anything": ["1", 0]}}}
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["2"])
    assert not result.ok and result.error["exception_type"] == "NodeInputError" and result.error["input"] == "b"


def test_math_string_operations_against_str_and_re():
    a, b = "Red Cube", "red"
    assert string_test(a, b, "a == b", True) is False
    assert string_test("Red", b, "a == b", False) is True
    assert string_test(a, b, "a != b", True) is (a != b)
    assert string_test("cube", "a red cube", "a IN b", True) is True
    assert string_test(a, b, "a BEGINSWITH b", False) is a.lower().startswith(b)
    assert string_test(a, "CUBE", "a ENDSWITH b", True) is False
    assert string_test(a, r"r\w+ c", "a MATCH REGEX(b)", False) is (re.match(r"r\w+ c", a.lower()) is not None)
    assert string_test(a, "Cube", "a MATCH REGEX(b)", True) is False  # re.match: from the start only
    assert string_test(a, "(unclosed", "a MATCH REGEX(b)", True) is False  # as the pack: invalid is false


def test_compare_is_pythons_comparison_and_errors_on_unorderable(registry):
    for comparison, op in (("a == b", operator.eq), ("a != b", operator.ne), ("a < b", operator.lt),
                           ("a > b", operator.gt), ("a <= b", operator.le), ("a >= b", operator.ge)):
        for a, b in ((2, 3), (3, 3), ("b", "a")):
            assert call(registry, "EasyCompare", a=a, b=b, comparison=comparison) is op(a, b)
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyCompare", a="x", b=1, comparison="a < b")
    assert e.value.input == "b"


def test_switches_pick_and_name_an_unconnected_choice(registry):
    assert call(registry, "EasyIfElse", boolean=True, on_true="yes", on_false="no") == "yes"
    assert call(registry, "EasyIfElse", boolean=False, on_true="yes", on_false="no") == "no"
    assert call(registry, "EasyIfElse", boolean=True, on_true=5) == 5
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyIfElse", boolean=False, on_true=5)
    assert e.value.input == "on_false"
    assert call(registry, "EasyTextSwitch", input=2, text1="a", text2="b") == "b"
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyTextSwitch", input=1, text2="b")
    assert e.value.input == "text1"
    image_a, image_b = torch.zeros(1, 2, 2, 3), torch.ones(1, 2, 2, 3)
    assert call(registry, "EasyImageSwitch", image_a=image_a, image_b=image_b, boolean=True) is image_a
    assert call(registry, "EasyImageSwitch", image_a=image_a, image_b=image_b, boolean=False) is image_b
    assert call(registry, "EasyAnythingIndexSwitch", index=7, value7=[1, 2], value0=0) == [1, 2]
    assert call(registry, "EasyTextIndexSwitch", index=0, text0="zero") == "zero"
    assert call(registry, "EasyImageIndexSwitch", index=9, image9=image_b) is image_b
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyAnythingIndexSwitch", index=3, value0=0)
    assert e.value.input == "value3"
    assert call(registry, "EasyIsNone", any=None) is True and call(registry, "EasyIsNone", any=0) is False


def test_image_sizes_are_the_tensors_shape(registry):
    image = torch.rand(2, 48, 80, 3)
    assert call(registry, "EasyImageSize", image=image) == (image.shape[2], image.shape[1])
    assert call(registry, "EasyImageSizeBySide", image=image, side="Longest") == max(image.shape[1:3])
    assert call(registry, "EasyImageSizeBySide", image=image, side="Shortest") == min(image.shape[1:3])
    assert call(registry, "EasyImageSizeByLongerSide", image=image.transpose(1, 2)) == max(image.shape[1:3])


def test_show_anything_texts():
    assert shown_values(["text", 3, 2.5, True, None, {"a": [1]}]) == \
        ["text", json.dumps(3), json.dumps(2.5), json.dumps(True), json.dumps(None), json.dumps({"a": [1]})]
    assert shown_values([object])[0] == str(object)  # not JSON: as Python prints it
    assert shown_values(["before", ["x", "y"]]) == ["x", "y"]  # a list replaces what came before, as in the pack
    huge = 10 ** (sys.get_int_max_str_digits() + 1)  # past Python's int-to-text limit: str() raises ValueError
    assert "too long to show" in shown_values([huge])[0]


def test_prompt_nodes_against_str_methods(registry):
    assert call(registry, "EasyPromptConcat", prompt1="a cat", prompt2="a hat", separator=", ") == "a cat, a hat"
    assert call(registry, "EasyPromptConcat", prompt2="hat", separator="|") == "|hat"
    half = "x" * 5_000_001  # two halves join past strings.py's MAX_TEXT (10,000,000 characters)
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyPromptConcat", prompt1=half, prompt2=half)
    assert e.value.input == "prompt2"
    assert len(call(registry, "EasyPromptConcat", prompt1=half, prompt2=half[2:])) == 10_000_000
    text = "a red cube on a red floor"
    assert call(registry, "EasyPromptReplace", prompt=text, find1="red", replace1="blue", find2="cube",
                replace2="ball") == text.replace("red", "blue").replace("cube", "ball")
    assert call(registry, "EasyPromptReplace", prompt="ab", find1="", replace1="-") == "ab".replace("", "-")
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyPromptReplace", prompt="x" * 5000, find1="", replace1="y" * 5000)
    assert e.value.input == "prompt"
    lines = "one\n\ntwo\nthree\n  \nfour"
    kept = [line for line in lines.split("\n") if line.strip()]
    assert call(registry, "EasyPromptLine", prompt=lines, start_index=1, max_rows=2) == (kept[1:3], kept[1:3])
    assert call(registry, "EasyPromptLine", prompt=lines, start_index=99)[0] == kept[-1:]
    assert call(registry, "EasyPromptLine", prompt=lines, remove_empty_lines=False)[0] == lines.split("\n")


def test_ui_save_with_seed_control_widget_runs_and_round_trips(registry):
    """As the editor saves them: easy seed with control_after_generate after its value, easy int
    into easy mathInt's a (a widget turned into an input), a prompt concatenated and shown."""
    nodes = [
        ui_node(1, "easy seed", [12345, "randomize"], outputs=[("seed", "INT", [1])]),
        ui_node(2, "easy int", [10], outputs=[("int", "INT", [2])]),
        ui_node(3, "easy mathInt", [0, 0, "add"], [("a", "INT", 1, True), ("b", "INT", 2, True)],
                [("INT", "INT", [])]),
        ui_node(4, "easy positive", ["a cat"], outputs=[("positive", "STRING", [3])]),
        ui_node(5, "easy promptConcat", [" | "], [("prompt1", "STRING", 3, False), ("prompt2", "STRING", None, False)],
                [("prompt", "STRING", [4])]),
        ui_node(6, "easy showAnything", [], [("anything", "*", 4, False)], [("output", "*", [])]),
    ]
    links = [[1, 1, 0, 3, 0, "INT"], [2, 2, 0, 3, 1, "INT"], [3, 4, 0, 5, 0, "STRING"], [4, 5, 0, 6, 0, "STRING"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["3", "6"])
    assert result.values["3"][0] == 12345 + 10
    assert result.values["6"][0] == "a cat | "
    assert result.outputs["6"]["text"] == ["a cat | "]
    workflow = parse_workflow(graph, registry)
    saved = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    assert saved[1]["type"] == "easy seed" and saved[1]["widgets_values"][0] == 12345
    assert saved[1]["widgets_values"][1] == "randomize"
    assert saved[5]["widgets_values"] == [" | "]
    api = export_api(workflow, registry)
    assert api["3"]["class_type"] == "easy mathInt" and api["3"]["inputs"]["a"] == ["1", 0]


def test_api_prompt_with_the_packs_class_names(registry):
    graph = {
        "1": {"class_type": "easy float", "inputs": {"value": 2.5}},
        "2": {"class_type": "easy mathFloat", "inputs": {"a": ["1", 0], "b": 4.0, "operation": "multiply"}},
        "3": {"class_type": "easy compare", "inputs": {"a": ["2", 0], "b": ["9", 0], "comparison": "a >= b"}},
        "4": {"class_type": "easy string", "inputs": {"value": "big"}},
        "5": {"class_type": "easy ifElse", "inputs": {"boolean": ["3", 0], "on_true": ["4", 0], "on_false": ["4", 0]}},
        "6": {"class_type": "easy mathString", "inputs": {"a": ["5", 0], "b": "BIG", "operation": "a == b",
                                                          "case_sensitive": False}},
        "7": {"class_type": "easy promptLine", "inputs": {"prompt": "x\ny", "start_index": 0, "max_rows": 5,
                                                          "remove_empty_lines": True}},
        "8": {"class_type": "easy cleanGpuUsed", "inputs": {"anything": ["6", 0]}},
        "9": {"class_type": "easy int", "inputs": {"value": 10}},
    }
    result = run_graph(registry, graph, ["2", "3", "6", "7", "8"])
    assert result.values["2"][0] == 2.5 * 4.0 and result.values["3"][0] is True
    assert result.values["6"][0] is True and result.values["8"][0] is True
    assert result.values["7"][0] == ["x", "y"]
    back = export_api(parse_workflow(graph, registry), registry)
    assert {k: v["class_type"] for k, v in back.items()} == {k: v["class_type"] for k, v in graph.items()}
    assert back["6"]["inputs"]["b"] == "BIG" and back["2"]["inputs"]["operation"] == "multiply"


def _same_conditioning(a, b):
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) for x, y in zip(a, b))


def test_comfy_loader_ui_save_equals_the_core_nodes_and_pipe_round_trips(registry, models):
    """easy comfyLoader as the editor saves it, into easy pipeOut; its conditionings and latent
    equal CheckpointLoaderSimple + LoraLoader + CLIPSetLastLayer + CLIPTextEncode + EmptyLatentImage."""
    nodes = [
        ui_node(1, "easy comfyLoader", ["tiny.safetensors", "Baked VAE", -2, "first.safetensors", 0.7, 0.5,
                                        "768 x 512", 512, 512, "a red cube", "blurry", 2],
                [("optional_lora_stack", "LORA_STACK", None, False),
                 ("optional_controlnet_stack", "CONTROL_NET_STACK", None, False)],
                [("pipe", "PIPE_LINE", [1]), ("model", "MODEL", []), ("vae", "VAE", [])]),
        ui_node(2, "easy pipeOut", [], [("pipe", "PIPE_LINE", 1, False)],
                [(n, t, []) for n, t in (("pipe", "PIPE_LINE"), ("model", "MODEL"), ("pos", "CONDITIONING"),
                                         ("neg", "CONDITIONING"), ("latent", "LATENT"), ("vae", "VAE"),
                                         ("clip", "CLIP"), ("image", "IMAGE"), ("seed", "INT"))]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "PIPE_LINE"]])
    got = run_graph(registry, graph, ["2"]).values["2"]
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "strength_model": 0.7,
                                                         "lora_name": "first.safetensors", "strength_clip": 0.5}},
            "3": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["2", 1], "stop_at_clip_layer": -2}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": "a red cube"}},
            "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": "blurry"}},
            "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 768, "height": 512, "batch_size": 2}}}
    want = run_graph(registry, core, ["4", "5", "6"]).values
    pipe, model, pos, neg, latent, vae, clip, image, seed = got
    assert _same_conditioning(pos, want["4"][0]) and _same_conditioning(neg, want["5"][0])
    assert latent["samples"].shape == want["6"][0]["samples"].shape == (2, 4, 512 // 8, 768 // 8)
    assert image is None and seed is None and pipe["loader_settings"]["batch_size"] == 2
    assert set(pipe) >= {"model", "positive", "negative", "vae", "clip", "samples", "images", "loader_settings"}
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[1]["type"] == "easy comfyLoader" and saved[1]["widgets_values"] == nodes[0]["widgets_values"]


def test_pipe_in_replaces_and_encodes_an_image(registry, models):
    graph = {
        "1": {"class_type": "easy a1111Loader", "inputs": {
            "ckpt_name": "tiny.safetensors", "vae_name": "Baked VAE", "clip_skip": 0, "lora_name": "None",
            "lora_model_strength": 1.0, "lora_clip_strength": 1.0, "resolution": "width x height (custom)",
            "empty_latent_width": 64, "empty_latent_height": 128, "positive": "(cube:1.2)", "negative": "",
            "batch_size": 3, "a1111_prompt_style": False}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "3": {"class_type": "easy pipeIn", "inputs": {"pipe": ["1", 0], "image": ["2", 0]}},
        "4": {"class_type": "easy pipeOut", "inputs": {"pipe": ["3", 0]}},
        "5": {"class_type": "easy pipeOut", "inputs": {"pipe": ["1", 0]}},
        "6": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
    }
    values = run_graph(registry, graph, ["4", "5", "6"]).values
    first, encoded = values["5"], values["6"][0]
    assert first[4]["samples"].shape == (3, 4, 16, 8)  # the custom size
    piped = values["4"]
    assert piped[1] is first[1] and piped[2] is first[2]  # kept from the pipe
    assert piped[4]["samples"].shape[0] == 3  # the image encoded, repeated batch_size times
    assert all(torch.equal(s, encoded["samples"][0]) for s in piped[4]["samples"])
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyPipeOut", pipe=("a", "tuple"))
    assert e.value.input == "pipe"
    graph["1"]["inputs"]["a1111_prompt_style"] = True
    with pytest.raises(AssertionError, match="a1111_prompt_style"):
        run_graph(registry, graph, ["5"])


def test_presampling_and_ksampler_equal_the_core_ksampler_and_decode(registry, models):
    """easy comfyLoader -> easy preSampling -> easy kSampler (UI save, the seed's control widget
    after it) gives the latent and images of CLIPSetLastLayer + CLIPTextEncode + EmptyLatentImage
    + KSampler + VAEDecode; Save writes the images to the outputs folder."""
    nodes = [
        ui_node(1, "easy comfyLoader", ["tiny.safetensors", "Baked VAE", -1, "None", 1.0, 1.0,
                                        "width x height (custom)", 64, 64, "a red cube", "blurry", 1],
                [("optional_lora_stack", "LORA_STACK", None, False),
                 ("optional_controlnet_stack", "CONTROL_NET_STACK", None, False)],
                [("pipe", "PIPE_LINE", [1]), ("model", "MODEL", []), ("vae", "VAE", [])]),
        ui_node(2, "easy preSampling", [2, 6.5, "euler", "normal", 1.0, 77, "fixed"],
                [("pipe", "PIPE_LINE", 1, False), ("image_to_latent", "IMAGE", None, False),
                 ("latent", "LATENT", None, False)], [("pipe", "PIPE_LINE", [2])]),
        ui_node(3, "easy kSampler", ["Save", 0, "easy"],
                [("pipe", "PIPE_LINE", 2, False), ("model", "MODEL", None, False)],
                [("pipe", "PIPE_LINE", []), ("image", "IMAGE", [])]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "PIPE_LINE"], [2, 2, 0, 3, 0, "PIPE_LINE"]])
    result = run_graph(registry, graph, ["3"])
    pipe, images = result.values["3"]
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["1", 1], "stop_at_clip_layer": -1}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a red cube"}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "blurry"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "6": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 77, "steps": 2, "cfg": 6.5,
                                                       "sampler_name": "euler", "scheduler": "normal",
                                                       "positive": ["3", 0], "negative": ["4", 0],
                                                       "latent_image": ["5", 0], "denoise": 1.0}},
            "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}}}
    want = run_graph(registry, core, ["6", "7"]).values
    assert torch.allclose(pipe["samples"]["samples"], want["6"][0]["samples"], atol=1e-5)
    assert torch.allclose(images, want["7"][0], atol=1e-5)
    assert pipe["seed"] == 77 and pipe["images"] is images and pipe["loader_settings"]["steps"] == 2
    saved = result.outputs["3"]["images"]
    assert len(saved) == 1 and saved[0]["type"] == "output" and saved[0]["filename"].startswith("easy")
    assert (models.outputs / saved[0]["subfolder"] / saved[0]["filename"]).exists()
    exported = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert exported[2]["widgets_values"] == [2, 6.5, "euler", "normal", 1.0, 77, "fixed"]
    assert exported[3]["widgets_values"] == ["Save", 0, "easy"]


def test_ksampler_names_a_pipe_without_settings(registry, models):
    with pytest.raises(NodeInputError, match="preSampling") as e:
        call(registry, "EasyKSampler", pipe={"model": object(), "loader_settings": {}})
    assert e.value.input == "pipe"


def test_full_loader_encodes_each_prompt_its_way_and_takes_overrides(registry, models):
    from nodes.pack_nodes_adv_clip import advanced_encode
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "easy fullLoader", "inputs": {
            "ckpt_name": "None", "config_name": "Default", "vae_name": "Baked VAE", "clip_skip": 0,
            "lora_name": "None", "lora_model_strength": 1.0, "lora_clip_strength": 1.0, "resolution": "512 x 768",
            "empty_latent_width": 64, "empty_latent_height": 64, "positive": "a (red:1.3) cube",
            "positive_token_normalization": "mean", "positive_weight_interpretation": "A1111",
            "negative": "blurry", "negative_token_normalization": "none", "negative_weight_interpretation": "comfy",
            "batch_size": 1, "model_override": ["1", 0], "clip_override": ["1", 1], "vae_override": ["1", 2]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
    }
    values = run_graph(registry, graph, ["1", "2", "3"]).values
    model, clip, vae = values["1"]
    pipe, got_model, got_vae, got_clip, positive, negative, latent = values["2"]
    assert got_model is model and got_vae is vae and got_clip is clip
    assert _same_conditioning(negative, values["3"][0])
    assert _same_conditioning(positive, advanced_encode(clip, "a (red:1.3) cube", "mean", "A1111"))
    assert not _same_conditioning(positive, advanced_encode(clip, "a (red:1.3) cube", "none", "comfy"))
    assert latent["samples"].shape == (1, 4, 768 // 8, 512 // 8)
    graph["2"]["inputs"]["negative_weight_interpretation"] = "fixed attention"
    with pytest.raises(AssertionError, match="negative_weight_interpretation"):
        run_graph(registry, graph, ["2"])
    graph["2"]["inputs"]["negative_weight_interpretation"] = "comfy"
    del graph["2"]["inputs"]["model_override"]
    with pytest.raises(AssertionError, match="ckpt_name"):
        run_graph(registry, graph, ["2"])


def test_presampling_advanced_then_ksampler_equals_ksampler_advanced(registry, models):
    loader = {"ckpt_name": "tiny.safetensors", "vae_name": "Baked VAE", "clip_skip": -1, "lora_name": "None",
              "lora_model_strength": 1.0, "lora_clip_strength": 1.0, "resolution": "width x height (custom)",
              "empty_latent_width": 64, "empty_latent_height": 64, "positive": "a cube", "negative": "",
              "batch_size": 1}
    graph = {
        "1": {"class_type": "easy comfyLoader", "inputs": loader},
        "2": {"class_type": "easy preSamplingAdvanced", "inputs": {
            "pipe": ["1", 0], "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "start_at_step": 0, "end_at_step": 2, "add_noise": "enable (CPU)", "seed": 5,
            "return_with_leftover_noise": "enable"}},
        "3": {"class_type": "easy kSampler", "inputs": {"pipe": ["2", 0], "image_output": "Hide", "link_id": 0,
                                                        "save_prefix": "x"}},
        "4": {"class_type": "easy pipeOut", "inputs": {"pipe": ["1", 0]}},
        "5": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["4", 1], "add_noise": "enable", "noise_seed": 5, "steps": 4, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["4", 2], "negative": ["4", 3], "latent_image": ["4", 4],
            "start_at_step": 0, "end_at_step": 2, "return_with_leftover_noise": "enable"}},
    }
    result = run_graph(registry, graph, ["3", "5"])
    assert torch.allclose(result.values["3"][0]["samples"]["samples"], result.values["5"][0]["samples"], atol=1e-5)
    assert "3" not in result.outputs or not result.outputs["3"].get("images")  # Hide shows nothing
    graph["2"]["inputs"]["add_noise"] = "enable (GPU=A1111)"
    with pytest.raises(AssertionError, match="'input': 'pipe'"):
        run_graph(registry, graph, ["3"])


def test_ksampler_tiled_decodes_as_vae_decode_tiled_and_none_skips_decoding(registry, models):
    loader = {"ckpt_name": "tiny.safetensors", "vae_name": "Baked VAE", "clip_skip": -1, "lora_name": "None",
              "lora_model_strength": 1.0, "lora_clip_strength": 1.0, "resolution": "width x height (custom)",
              "empty_latent_width": 64, "empty_latent_height": 64, "positive": "a cube", "negative": "",
              "batch_size": 1}
    graph = {
        "1": {"class_type": "easy comfyLoader", "inputs": loader},
        "2": {"class_type": "easy preSampling", "inputs": {"pipe": ["1", 0], "steps": 1, "cfg": 3.0,
                                                           "sampler_name": "euler", "scheduler": "normal",
                                                           "denoise": 1.0, "seed": 3}},
        "3": {"class_type": "easy kSamplerTiled", "inputs": {"pipe": ["2", 0], "tile_size": 320,
                                                             "image_output": "Preview", "link_id": 0,
                                                             "save_prefix": "x"}},
        "4": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["5", 0], "vae": ["1", 2], "tile_size": 320,
                                                         "overlap": 80, "temporal_size": 64, "temporal_overlap": 8}},
        "5": {"class_type": "easy pipeOut", "inputs": {"pipe": ["3", 0]}},
        "6": {"class_type": "easy kSampler", "inputs": {"pipe": ["2", 0], "image_output": "None", "link_id": 0,
                                                        "save_prefix": "x"}},
    }
    graph["4"]["inputs"]["samples"] = ["5", 4]
    result = run_graph(registry, graph, ["3", "4", "6"])
    pipe, images = result.values["3"]
    assert torch.allclose(images, result.values["4"][0], atol=1e-5)
    assert len(result.outputs["3"]["images"]) == 1 and result.outputs["3"]["images"][0]["type"] == "temp"
    none_pipe, none_images = result.values["6"]
    assert none_images is None and torch.equal(none_pipe["samples"]["samples"], pipe["samples"]["samples"])


@pytest.mark.parametrize("mode", ["replace", "concat", "combine", "average", "timestep"])
def test_pipe_edit_merges_a_new_prompt_as_the_core_conditioning_nodes(registry, models, mode):
    loader = {"ckpt_name": "tiny.safetensors", "vae_name": "Baked VAE", "clip_skip": -1, "lora_name": "None",
              "lora_model_strength": 1.0, "lora_clip_strength": 1.0, "resolution": "width x height (custom)",
              "empty_latent_width": 64, "empty_latent_height": 64, "positive": "a cube", "negative": "blurry",
              "batch_size": 1}
    edit = {"pipe": ["1", 0], "clip_skip": -1, "optional_positive": "a red ball",
            "positive_token_normalization": "none", "positive_weight_interpretation": "comfy",
            "optional_negative": "", "negative_token_normalization": "none", "negative_weight_interpretation": "comfy",
            "a1111_prompt_style": False, "conditioning_mode": mode, "average_strength": 0.3,
            "old_cond_start": 0.0, "old_cond_end": 0.4, "new_cond_start": 0.4, "new_cond_end": 1.0}
    graph = {
        "1": {"class_type": "easy comfyLoader", "inputs": loader},
        "2": {"class_type": "easy pipeEdit", "inputs": edit},
        "3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "4": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["3", 1], "stop_at_clip_layer": -1}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 0], "text": "a red ball"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 0], "text": "a cube"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 0], "text": "blurry"}},
        "8": {"class_type": "ConditioningConcat", "inputs": {"conditioning_to": ["5", 0],
                                                             "conditioning_from": ["6", 0]}},
        "9": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["5", 0]}},
        "10": {"class_type": "ConditioningAverage", "inputs": {"conditioning_to": ["5", 0],
                                                               "conditioning_from": ["6", 0],
                                                               "conditioning_to_strength": 0.3}},
        "11": {"class_type": "ConditioningSetTimestepRange", "inputs": {"conditioning": ["6", 0], "start": 0.0,
                                                                        "end": 0.4}},
        "12": {"class_type": "ConditioningSetTimestepRange", "inputs": {"conditioning": ["5", 0], "start": 0.4,
                                                                        "end": 1.0}},
        "13": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["11", 0],
                                                               "conditioning_2": ["12", 0]}},
    }
    reference = {"replace": "5", "concat": "8", "combine": "9", "average": "10", "timestep": "13"}[mode]
    values = run_graph(registry, graph, ["2", reference, "7"]).values
    pipe, model, pos, neg, latent, vae, clip, image = values["2"]
    want = values[reference][0]
    assert _same_conditioning(pos, want) and pipe["positive"] is pos
    assert [c[1].get("start_percent") for c in pos] == [c[1].get("start_percent") for c in want]
    assert _same_conditioning(neg, values["7"][0])  # no negative text: the pipe's goes on
    assert pipe["loader_settings"]["positive"] == "a red ball" and pipe["loader_settings"]["negative"] == "blurry"
    assert latent is None and pipe["samples"]["samples"].shape == (1, 4, 8, 8)
    if mode == "replace":  # pos connected: the text is not encoded and the pipe's positive goes on, as in the pack
        graph["2"]["inputs"]["pos"] = ["7", 0]
        values = run_graph(registry, graph, ["2", "6"]).values
        pipe, model, pos, *_ = values["2"]
        assert _same_conditioning(pos, values["6"][0]) and pipe["positive"] is pos
        assert pipe["loader_settings"]["positive"] == "a cube"


def test_lora_stack_rows_and_into_the_loader_equal_lora_loader(registry, models):
    """easy loraStack as the editor saves it (toggle, mode, num_loras, then name and three
    strengths per row for ten rows) feeding easy comfyLoader's optional_lora_stack."""
    rows = []
    for i in range(1, 11):
        rows += [("first.safetensors" if i in (1, 3) else "None"), 0.5 * i, 0.25 * i, -0.1 * i]
    nodes = [
        ui_node(1, "easy loraStack", [True, "advanced", 2, *rows],
                [("optional_lora_stack", "LORA_STACK", None, False)], [("lora_stack", "LORA_STACK", [1])]),
        ui_node(2, "easy comfyLoader", ["tiny.safetensors", "Baked VAE", 0, "None", 1.0, 1.0,
                                        "width x height (custom)", 64, 64, "a cube", "", 1],
                [("optional_lora_stack", "LORA_STACK", 1, False),
                 ("optional_controlnet_stack", "CONTROL_NET_STACK", None, False)],
                [("pipe", "PIPE_LINE", []), ("model", "MODEL", []), ("vae", "VAE", [])]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "LORA_STACK"]])
    result = run_graph(registry, graph, ["1", "2"])
    assert result.values["1"][0] == [("first.safetensors", 0.25, -0.1)]  # row 3 is past num_loras
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "strength_model": 0.25,
                                                         "lora_name": "first.safetensors", "strength_clip": -0.1}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": "a cube"}}}
    want = run_graph(registry, core, ["3"]).values
    assert _same_conditioning(result.values["2"][0]["positive"], want["3"][0])
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[1]["widgets_values"] == [True, "advanced", 2, *rows]
    stack = [("x.safetensors", 1.0, 1.0), ("None", 1.0, 1.0)]
    assert call(registry, "EasyLoraStack", toggle=True, mode="simple", num_loras=3, optional_lora_stack=stack,
                lora_2_name="first.safetensors", lora_2_strength=0.7) == [stack[0], ("first.safetensors", 0.7, 0.7)]
    assert call(registry, "EasyLoraStack", toggle=False, lora_1_name="first.safetensors") is None


def test_controlnet_loaders_equal_apply_controlnet_advanced(registry, models):
    from graphflow.testing import write_controlnet
    (models.models / "controlnet").mkdir(exist_ok=True)
    write_controlnet(models.models / "controlnet" / "cn.safetensors", "sd1")
    loader = {"ckpt_name": "tiny.safetensors", "vae_name": "Baked VAE", "clip_skip": -1, "lora_name": "None",
              "lora_model_strength": 1.0, "lora_clip_strength": 1.0, "resolution": "width x height (custom)",
              "empty_latent_width": 64, "empty_latent_height": 64, "positive": "a cube", "negative": "",
              "batch_size": 1}
    sampling = {"steps": 2, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0, "seed": 9}
    graph = {
        "1": {"class_type": "easy comfyLoader", "inputs": loader},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 255}},
        "3": {"class_type": "easy controlnetLoaderADV", "inputs": {
            "pipe": ["1", 0], "image": ["2", 0], "control_net_name": "cn.safetensors", "strength": 0.8,
            "start_percent": 0.1, "end_percent": 0.9, "scale_soft_weights": 1.0}},
        "4": {"class_type": "easy preSampling", "inputs": {"pipe": ["3", 0], **sampling}},
        "5": {"class_type": "easy kSampler", "inputs": {"pipe": ["4", 0], "image_output": "Hide", "link_id": 0,
                                                        "save_prefix": "x"}},
        "6": {"class_type": "easy pipeOut", "inputs": {"pipe": ["1", 0]}},
        "7": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}},
        "8": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["6", 2], "negative": ["6", 3], "control_net": ["7", 0], "image": ["2", 0], "strength": 0.8,
            "start_percent": 0.1, "end_percent": 0.9}},
        "9": {"class_type": "KSampler", "inputs": {"model": ["6", 1], "positive": ["8", 0], "negative": ["8", 1],
                                                   "latent_image": ["6", 4], **sampling}},
        "10": {"class_type": "easy controlnetLoader", "inputs": {
            "pipe": ["1", 0], "image": ["2", 0], "control_net_name": "cn.safetensors", "strength": 0.0,
            "scale_soft_weights": 1.0}},
    }
    values = run_graph(registry, graph, ["3", "5", "8", "9", "10"]).values
    pipe = values["3"][0]
    assert pipe["seed"] == 0 and pipe["images"] is not None  # as the pack: seed 0, the hint as the pipe's images
    assert torch.allclose(values["5"][0]["samples"]["samples"], values["9"][0]["samples"], atol=1e-5)
    assert values["3"][1] is not values["1"][0]["positive"]  # a new conditioning, carrying the ControlNet
    assert set(values["3"][1][0][1]) == set(values["8"][0][0][1]) != set(values["1"][0]["positive"][0][1])
    assert values["10"][1] is values["1"][0]["positive"]  # strength 0: passed through, as ComfyUI
    graph["10"]["inputs"]["scale_soft_weights"] = 0.5
    with pytest.raises(AssertionError, match="scale_soft_weights"):
        run_graph(registry, graph, ["10"])


def _easy_loader(class_type, resolution, width, height, batch):
    inputs = {"ckpt_name": "tiny.safetensors", "vae_name": "Baked VAE", "clip_skip": -1, "lora_name": "None",
              "lora_model_strength": 1.0, "lora_clip_strength": 1.0, "resolution": resolution,
              "empty_latent_width": width, "empty_latent_height": height, "positive": "a", "negative": "",
              "batch_size": batch}
    if class_type == "easy fullLoader":
        inputs.update({"config_name": "Default", "positive_token_normalization": "none",
                       "positive_weight_interpretation": "comfy", "negative_token_normalization": "none",
                       "negative_weight_interpretation": "comfy"})
    return {"class_type": class_type, "inputs": inputs}


@pytest.mark.parametrize("class_type", ["easy comfyLoader", "easy a1111Loader", "easy fullLoader"])
def test_loaders_latent_batch_is_checked_before_the_run_as_empty_latent_image(registry, models, class_type):
    """A 2560x1440 batch of 4096 (preset or custom size) is refused under 2 GiB as EmptyLatentImage is;
    a small one passes."""
    from graphflow.resource_limits import RunLimits
    from graphflow.validation import plan_workflow
    limits = RunLimits(ram_bytes=2 * 2**30, device_bytes=2 * 2**30)

    def problems(graph, output):
        return plan_workflow(parse_workflow(graph, registry), registry, [output], limits)[1]

    core = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 2560, "height": 1440, "batch_size": 4096}}}
    assert problems(core, "1")
    for resolution, width, height in (("2560 x 1440", 512, 512), ("width x height (custom)", 2560, 1440)):
        found = problems({"1": _easy_loader(class_type, resolution, width, height, 4096)}, "1")
        assert found and "4096 × 2560×1440" in found[0].message
    assert problems({"1": _easy_loader(class_type, "2560 x 1440", 512, 512, 1)}, "1") == []
    server = RunLimits(max_batch=64)
    graph = {"1": _easy_loader(class_type, "2560 x 1440", 512, 512, 65)}
    assert plan_workflow(parse_workflow(graph, registry), registry, ["1"], server)[1]


def test_pipe_nodes_refuse_an_image_repeated_past_the_loaders_batch_limit(registry):
    image = torch.rand(2, 8, 8, 3)
    pipe = {"vae": object(), "loader_settings": {"batch_size": 2049}}  # 2 images x 2049 > 4096: refused before encoding
    for node, inputs, input_name in (("EasyPipeIn", {"image": image}, "image"),
                                     ("EasyPipeEdit", {"image": image}, "image"),
                                     ("EasyPreSampling", {"image_to_latent": image}, "image_to_latent")):
        with pytest.raises(NodeInputError) as e:
            call(registry, node, pipe=pipe, **inputs)
        assert e.value.input == input_name and "4096" in str(e.value)


@pytest.mark.parametrize("node", ["EasyPipeIn", "EasyPipeOut", "EasyPipeEdit", "EasyPreSampling", "EasyKSampler"])
def test_pipe_nodes_name_a_pipe_whose_loader_settings_are_no_dict(registry, node):
    extra = {"image_output": "Preview", "link_id": 0, "save_prefix": "x"} if node == "EasyKSampler" else {}
    for settings in ([1], "abc"):
        with pytest.raises(NodeInputError) as e:
            call(registry, node, pipe={"loader_settings": settings}, **extra)
        assert e.value.input == "pipe" and "loader_settings" in str(e.value)


def test_ksampler_tiled_offers_the_packs_image_outputs(registry):
    """samplerSimpleTiled's list lacks samplerFull's Preview&Choose."""
    tiled, plain = registry.get("EasyKSamplerTiled"), registry.get("EasyKSampler")
    assert tiled.input_specs["image_output"].widget.options == \
        ("Hide", "Preview", "Save", "Hide&Save", "Sender", "Sender&Save", "None")
    assert "Preview&Choose" in plain.input_specs["image_output"].widget.options


def test_math_string_stops_a_backtracking_pattern_naming_b(registry):
    """(a+)+$ against a run of a's ending in b backtracks for 2**30 steps with plain re: the match
    runs through strings.py's _guarded, which stops it and names b."""
    with pytest.raises(NodeInputError, match="backtracks") as e:
        call(registry, "EasyMathString", a="a" * 30 + "b", b="(a+)+$", operation="a MATCH REGEX(b)",
             case_sensitive=True)
    assert e.value.input == "b"
    assert call(registry, "EasyMathString", a="a" * 30, b="(a+)+$", operation="a MATCH REGEX(b)",
                case_sensitive=True) is True
