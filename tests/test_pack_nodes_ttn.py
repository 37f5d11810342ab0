"""tinyterraNodes (nodes/pack_nodes_ttn.py): the pipe loaders and samplers against the core node
chains they stand for (same seed, same picture), in UI-format saves (seeds with their control
widget) and API prompts with the pack's class names; the pipe plumbing, the text and number nodes
against Python's str / int / float, the upscale nodes against the core upscale chain, the clear
errors, and export round trips."""

import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_pysssss import models  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def _same_conditioning(a, b):
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) for x, y in zip(a, b))


LOADER_WIDGETS = ["tiny.safetensors", "Default", "Baked VAE", -2, "<lora:first.safetensors:0.7:0.5>", "a red cube",
                  "none", "comfy", "blurry", "none", "comfy", "width x height [custom]", 64, 64, 1, 123, "fixed"]
SAMPLER_WIDGETS = ["None", 1.0, "None", "None", 2.0, "by percentage", 50, 1024, 1024, 1024, "disabled",
                   2, 6.5, "euler", "normal", 1.0, "Save", "ttn_test", "png", True, 77, "randomize"]
PIPE_OUTPUTS = [(n, t, []) for n, t in (("pipe", "PIPE_LINE"), ("model", "MODEL"), ("positive", "CONDITIONING"),
                                        ("negative", "CONDITIONING"), ("latent", "LATENT"), ("vae", "VAE"),
                                        ("clip", "CLIP"), ("images", "IMAGE"), ("seed", "INT"),
                                        ("plot_image", "IMAGE"))]


def _core_graph(seed, width=64, height=64, steps=2, cfg=6.5, denoise=1.0):
    """The core nodes the pipe loader and sampler stand for, in the pack's order: clip_skip on the
    checkpoint's text encoder, then the LoRA tag."""
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["1", 1], "stop_at_clip_layer": -2}},
            "3": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["2", 0], "strength_model": 0.7,
                                                         "lora_name": "first.safetensors", "strength_clip": 0.5}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 1], "text": "a red cube"}},
            "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 1], "text": "blurry"}},
            "6": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
            "7": {"class_type": "KSampler", "inputs": {"model": ["3", 0], "seed": seed, "steps": steps, "cfg": cfg,
                                                       "sampler_name": "euler", "scheduler": "normal",
                                                       "positive": ["4", 0], "negative": ["5", 0],
                                                       "latent_image": ["6", 0], "denoise": denoise}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}}}


def test_pipe_loader_and_sampler_ui_save_equal_the_core_nodes(registry, models):
    """pipeLoader_v2 -> pipeKSampler_v2 as the editor saves them (each seed followed by its
    control_after_generate): the same latent and images as the core chain with the sampler's
    seed; Save writes ttn_test_00001.png with the workflow; the save round-trips."""
    nodes = [ui_node(1, "ttN pipeLoader_v2", LOADER_WIDGETS,
                     outputs=[("pipe", "PIPE_LINE", [1]), ("model", "MODEL", []), ("positive", "CONDITIONING", []),
                              ("negative", "CONDITIONING", []), ("latent", "LATENT", []), ("vae", "VAE", []),
                              ("clip", "CLIP", []), ("seed", "INT", []), ("width", "INT", []), ("height", "INT", []),
                              ("pos_string", "STRING", []), ("neg_string", "STRING", [])]),
             ui_node(2, "ttN pipeKSampler_v2", SAMPLER_WIDGETS, [("pipe", "PIPE_LINE", 1, False)], PIPE_OUTPUTS)]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "PIPE_LINE"]])
    result = run_graph(registry, graph, ["1", "2"])
    loader, sampled = result.values["1"], result.values["2"]
    want = run_graph(registry, _core_graph(77), ["4", "5", "7", "8"]).values
    assert _same_conditioning(loader[2], want["4"][0]) and _same_conditioning(loader[3], want["5"][0])
    assert loader[4]["samples"].shape == (1, 4, 8, 8)
    assert loader[7:] == (123, 64, 64, "a red cube ", "blurry ")
    pipe, latent, images = sampled[0], sampled[4], sampled[7]
    assert torch.allclose(latent["samples"], want["7"][0]["samples"], atol=1e-5)
    assert torch.allclose(images, want["8"][0], atol=1e-5)
    assert sampled[8] == 77 and pipe["seed"] == 77 and pipe["images"] is images and sampled[9] is None
    saved = result.outputs["2"]["images"]
    assert [s["filename"] for s in saved] == ["ttn_test_00001.png"]
    from PIL import Image
    with Image.open(models.outputs / "ttn_test_00001.png") as picture:
        assert "prompt" in picture.info or "workflow" in picture.info
    exported = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert exported[1]["type"] == "ttN pipeLoader_v2" and exported[1]["widgets_values"] == LOADER_WIDGETS
    assert exported[2]["type"] == "ttN pipeKSampler_v2" and exported[2]["widgets_values"] == SAMPLER_WIDGETS


def _loader_api(**changes):
    inputs = dict(zip(["ckpt_name", "config_name", "vae_name", "clip_skip", "loras", "positive",
                       "positive_token_normalization", "positive_weight_interpretation", "negative",
                       "negative_token_normalization", "negative_weight_interpretation", "empty_latent_aspect",
                       "empty_latent_width", "empty_latent_height", "batch_size", "seed"], LOADER_WIDGETS))
    return {"class_type": "ttN pipeLoader_v2", "inputs": {**inputs, **changes}}


def _advanced_api(pipe, **changes):
    inputs = {"pipe": pipe, "lora_name": "None", "lora_strength": 1.0, "upscale_method": "None",
              "upscale_model_name": "None", "factor": 2.0, "rescale": "by percentage", "percent": 50, "width": 1024,
              "height": 1024, "longer_side": 1024, "crop": "disabled", "add_noise": "enable", "noise": 1.0,
              "steps": 3, "start_at_step": 1, "end_at_step": 2, "cfg": 6.5, "sampler_name": "euler",
              "scheduler": "normal", "return_with_leftover_noise": "enable", "image_output": "Hide",
              "save_prefix": "ComfyUI", "file_type": "png", "embed_workflow": True, "noise_seed": 5}
    return {"class_type": "ttN pipeKSamplerAdvanced_v2", "inputs": {**inputs, **changes}}


def test_advanced_sampler_api_prompt_equals_ksampler_advanced_and_noise_is_the_denoise(registry, models):
    graph = {"1": _loader_api(), "2": _advanced_api(["1", 0]),
             "3": _advanced_api(["1", 0], noise=0.6, start_at_step=0, end_at_step=10000, image_output="Disabled"),
             "4": {"class_type": "ttN pipeOUT", "inputs": {"pipe": ["3", 0]}},
             "5": _advanced_api(["1", 0], add_noise="disable", image_output="Disabled")}
    core = _core_graph(5, steps=3)
    core["9"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": ["3", 0], "add_noise": "enable", "noise_seed": 5, "steps": 3, "cfg": 6.5, "sampler_name": "euler",
        "scheduler": "normal", "positive": ["4", 0], "negative": ["5", 0], "latent_image": ["6", 0],
        "start_at_step": 1, "end_at_step": 2, "return_with_leftover_noise": "enable"}}
    core["10"] = {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}}
    core["7"]["inputs"]["denoise"] = 0.6
    core["7"]["inputs"]["seed"] = 5
    core["11"] = {"class_type": "KSamplerAdvanced", "inputs": {**core["9"]["inputs"], "add_noise": "disable"}}
    got = run_graph(registry, graph, ["2", "4", "5"]).values
    want = run_graph(registry, core, ["7", "9", "10", "11"]).values
    assert torch.allclose(got["5"][4]["samples"], want["11"][0]["samples"], atol=1e-5)
    assert not torch.allclose(got["5"][4]["samples"], got["2"][4]["samples"], atol=1e-3)
    assert torch.allclose(got["2"][4]["samples"], want["9"][0]["samples"], atol=1e-5)
    assert torch.allclose(got["2"][7], want["10"][0], atol=1e-5)  # Hide decodes without showing
    assert torch.allclose(got["4"][3]["samples"], want["7"][0]["samples"], atol=1e-5)
    assert got["4"][6] is None and got["4"][7] == 5  # Disabled: no images decoded
    back = export_api(parse_workflow(graph, registry), registry)
    assert back["2"]["class_type"] == "ttN pipeKSamplerAdvanced_v2" and back["2"]["inputs"]["noise"] == 1.0
    assert back["1"]["inputs"]["loras"] == "<lora:first.safetensors:0.7:0.5>"


def test_tiny_loader_conditioning_and_ksampler_with_latent_upscale_equal_the_core_nodes(registry, models):
    """tinyLoader (aspect choice) + conditioning (zero_out_empty, prepend) + KSampler_v2 with a
    [latent] upscale: LatentUpscale to each latent side times factor at a multiple of 8, then
    KSampler at the denoise."""
    graph = {
        "1": {"class_type": "ttN tinyLoader", "inputs": {
            "ckpt_name": "tiny.safetensors", "config_name": "Default", "sampling": "Default", "zsnr": False,
            "cfg_rescale_mult": 0.0, "vae_name": "Baked VAE", "clip_skip": 0,
            "empty_latent_aspect": "512 x 682 [P] 3:4",
            "empty_latent_width": 64, "empty_latent_height": 64, "batch_size": 1}},
        "9": {"class_type": "ttN text", "inputs": {"text": "photo of"}},
        "2": {"class_type": "ttN conditioning", "inputs": {
            "model": ["1", 0], "clip": ["1", 3], "loras": "", "positive": "a cube",
            "positive_token_normalization": "none",
            "positive_weight_interpretation": "comfy", "negative": " ", "negative_token_normalization": "none",
            "negative_weight_interpretation": "comfy", "zero_out_empty": True, "prepend_positive": ["9", 0]}},
        "3": {"class_type": "ttN KSampler_v2", "inputs": {
            "model": ["2", 0], "positive": ["2", 1], "negative": ["2", 2], "latent": ["1", 1], "vae": ["1", 2],
            "lora_name": "None", "lora_strength": 1.0, "upscale_method": "[latent] bilinear",
            "upscale_model_name": "None", "factor": 0.1, "rescale": "by percentage", "percent": 50, "width": 1024,
            "height": 1024, "longer_side": 1024, "crop": "disabled", "steps": 2, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 0.5, "image_output": "Preview", "save_prefix": "ComfyUI",
            "file_type": "png", "embed_workflow": True, "seed": 9}}}
    result = run_graph(registry, graph, ["1", "2", "3"])
    tiny, cond, sampled = (result.values[k] for k in ("1", "2", "3"))
    assert tiny[1]["samples"].shape == (1, 4, 682 // 8, 512 // 8) and tiny[4:] == (64, 64)
    assert cond[4:] == ("photo of a cube", " ")
    # latent 64 x 85 times 0.1: round 6 -> 8 and round 8.5 -> 8 (to a multiple of 8, 8 at least)
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "photo of a cube"}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": " "}},
            "4": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["3", 0]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 682, "batch_size": 1}},
            "6": {"class_type": "LatentUpscale", "inputs": {"samples": ["5", 0], "upscale_method": "bilinear",
                                                            "width": 64, "height": 64, "crop": "disabled"}},
            "7": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 9, "steps": 2, "cfg": 7.0,
                                                       "sampler_name": "euler", "scheduler": "normal",
                                                       "positive": ["2", 0], "negative": ["4", 0],
                                                       "latent_image": ["6", 0], "denoise": 0.5}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}}}
    want = run_graph(registry, core, ["2", "4", "7", "8"]).values
    assert _same_conditioning(cond[1], want["2"][0]) and _same_conditioning(cond[2], want["4"][0])
    assert torch.allclose(sampled[3]["samples"], want["7"][0]["samples"], atol=1e-5)
    assert torch.allclose(sampled[6], want["8"][0], atol=1e-5)
    assert result.outputs["3"]["images"][0]["type"] == "temp"  # Preview shows from the temp folder


def test_tiny_loader_sampling_and_rescale_patch_the_model_as_the_core_nodes(registry, models):
    graph = {"1": {"class_type": "ttN tinyLoader", "inputs": {
        "ckpt_name": "tiny.safetensors", "config_name": "Default", "sampling": "v_prediction", "zsnr": True,
        "cfg_rescale_mult": 0.7, "vae_name": "Baked VAE", "clip_skip": -1, "empty_latent_aspect": CUSTOM,
        "empty_latent_width": 64, "empty_latent_height": 64, "batch_size": 1}},
        "2": {"class_type": "ttN pipeIN", "inputs": {"model": ["1", 0], "pos": ["4", 0], "neg": ["4", 0],
                                                      "latent": ["1", 1], "vae": ["1", 2], "clip": ["1", 3],
                                                      "seed": 3}},
        "3": {"class_type": "ttN pipeKSampler_v2", "inputs": {
            "pipe": ["2", 0], "lora_name": "None", "lora_strength": 1.0, "upscale_method": "None",
            "upscale_model_name": "None", "factor": 2.0, "rescale": "by percentage", "percent": 50, "width": 1024,
            "height": 1024, "longer_side": 1024, "crop": "disabled", "steps": 2, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "image_output": "Disabled", "save_prefix": "ComfyUI",
            "file_type": "png", "embed_workflow": True, "seed": 3}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 3], "text": "x"}}}
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "ModelSamplingDiscrete", "inputs": {"model": ["1", 0], "sampling": "v_prediction",
                                                                    "zsnr": True}},
            "3": {"class_type": "RescaleCFG", "inputs": {"model": ["2", 0], "multiplier": 0.7}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "x"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "6": {"class_type": "KSampler", "inputs": {"model": ["3", 0], "seed": 3, "steps": 2, "cfg": 5.0,
                                                       "sampler_name": "euler", "scheduler": "normal",
                                                       "positive": ["4", 0], "negative": ["4", 0],
                                                       "latent_image": ["5", 0], "denoise": 1.0}}}
    got = run_graph(registry, graph, ["3"]).values["3"]
    want = run_graph(registry, core, ["6"]).values["6"][0]
    assert torch.allclose(got[4]["samples"], want["samples"], atol=1e-5)


CUSTOM = "width x height [custom]"


def test_pipe_plumbing(registry, models):
    """pipeIN / pipeOUT keep the parts; pipeEDIT replaces the connected ones (its latent output is
    the latent input); pipe2BASIC gives Impact's tuple; pipeLoraStack applies its rows as
    LoraLoader; pipeEncodeConcat joins a new prompt as ConditioningConcat."""
    graph = {"1": _loader_api(loras="", clip_skip=0), "2": {"class_type": "ttN pipeOUT", "inputs": {"pipe": ["1", 0]}},
             "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 2}},
             "4": {"class_type": "ttN seed", "inputs": {"seed": 42}},
             "5": {"class_type": "ttN pipeEDIT", "inputs": {"pipe": ["1", 0], "latent": ["3", 0], "seed": ["4", 0]}},
             "6": {"class_type": "ttN pipe2BASIC", "inputs": {"pipe": ["5", 0]}},
             "7": {"class_type": "ttN pipeLoraStack", "inputs": {
                 "toggle": True, "mode": "advanced", "num_loras": 2, "optional_pipe": ["1", 0],
                 "lora_1_name": "first.safetensors", "lora_1_strength": 1.0, "lora_1_model_strength": 0.8,
                 "lora_1_clip_strength": 0.3, "lora_2_name": "None", "lora_2_strength": 1.0,
                 "lora_2_model_strength": 1.0, "lora_2_clip_strength": 1.0}},
             "8": {"class_type": "ttN pipeEncodeConcat", "inputs": {
                 "pipe": ["1", 0], "toggle": True, "positive": "more", "positive_token_normalization": "none",
                 "positive_weight_interpretation": "comfy", "negative": "", "negative_token_normalization": "none",
                 "negative_weight_interpretation": "comfy"}},
             "9": {"class_type": "ttN pipeLoader_v2", "inputs": {**_loader_api(loras="", clip_skip=0)["inputs"],
                                                                 "optional_lora_stack": ["7", 1]}},
             "10": {"class_type": "ttN pipeOUT", "inputs": {"pipe": ["7", 0]}},
             "11": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 5], "text": "a red cube"}}}
    values = run_graph(registry, graph, ["1", "2", "5", "6", "7", "8", "9", "11"]).values
    loader, out, edit, basic, stack, concat = (values[k] for k in ("1", "2", "5", "6", "7", "8"))
    assert out[0] is loader[1] and out[1] is loader[2] and out[3] is loader[4] and out[7] == 123 and out[8] is loader[0]
    assert out[2] is loader[3] and out[4] is loader[5] and out[5] is loader[6] and out[6] is None
    assert edit[0]["samples"] is edit[4] and edit[4]["samples"].shape[0] == 2 and edit[8] == 42
    assert edit[1] is loader[1] and edit[0]["loader_settings"] is None
    assert basic[0] == (loader[1], loader[6], loader[5], loader[2], loader[3]) and basic[1] is edit[0]
    assert stack[1] == [("first.safetensors", 0.8, 0.3)]
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "strength_model": 0.8,
                                                         "lora_name": "first.safetensors", "strength_clip": 0.3}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": "a red cube"}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "more"}},
            "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a red cube"}},
            "6": {"class_type": "ConditioningConcat", "inputs": {"conditioning_to": ["4", 0],
                                                                 "conditioning_from": ["5", 0]}}}
    want = run_graph(registry, core, ["3", "6"]).values
    assert _same_conditioning(values["9"][2], want["3"][0])  # the stack into the loader, as LoraLoader
    assert _same_conditioning(values["11"][0], want["3"][0])  # the stack on the pipe's clip, as LoraLoader
    lora_pipe = stack[0]
    assert lora_pipe["model"] is not loader[1] and lora_pipe["positive"] is loader[2]
    assert _same_conditioning(concat[1], want["6"][0]) and concat[2] is loader[3]
    off = call(registry, "TtnPipeLoraStack", toggle=False, optional_pipe=loader[0])
    assert off == (loader[0], None)
    assert call(registry, "TtnPipeEncodeConcat", pipe=loader[0], toggle=False)[1] is loader[2]


def test_text_and_number_nodes_against_python(registry):
    assert call(registry, "TtnText", text="a\nb") == "a\nb"
    assert call(registry, "TtnConcat", text1="a", text2="", text3="c", delimiter="\\n") == "\n".join(["a", "", "c"])
    assert call(registry, "TtnConcat", text1="undefined", text2="b", text3="c", delimiter=", ") == ", b, c"
    got = call(registry, "TtnText3Box3WayConcat", text1="x", text2="y", text3="z", delimiter="-")
    assert got == ("x", "y", "z", "x-y", "x-z", "y-z", "x-y-z")
    texts = ["a", "", "c", "undefined", "e", "", "g"]
    got = call(registry, "TtnText7BoxConcat", **{f"text{i + 1}": t for i, t in enumerate(texts)}, delimiter="|")
    assert got[:7] == tuple("" if t == "undefined" else t for t in texts) and got[7] == "|".join(["a", "c", "e", "g"])
    assert call(registry, "TtnTextCycleLine", text="l0\nl1\nl2", index=1) == "l1"
    assert call(registry, "TtnTextCycleLine", text="l0\nl1", index=7) == "l1"
    assert call(registry, "TtnInt", value=12) == (12, 12.0, "12")
    assert call(registry, "TtnFloat", value=2.75) == (2.75, int(2.75), str(2.75))
    assert call(registry, "TtnSeed", seed=2**63) == 2**63
    assert call(registry, "TtnTextDebug", text="shown", print_to_console=False) == "shown"
    result = run_graph(registry, {"1": {"class_type": "ttN int", "inputs": {"int": 5}},
                                  "2": {"class_type": "ttN debugInput", "inputs": {
                                      "print_to_console": False, "console_title": "t", "console_color": "Red",
                                      "debug": ["1", 1]}}}, ["2"])
    assert result.outputs["2"]["text"] == [str(5.0)]


def test_small_nodes_ui_save_runs_and_round_trips(registry):
    """ttN int / float save their value under the pack's input names; ttN seed's control widget
    follows the seed; textDebug shows its text."""
    nodes = [ui_node(1, "ttN int", [7], outputs=[("int", "INT", []), ("float", "FLOAT", []), ("text", "STRING", [1])]),
             ui_node(2, "ttN seed", [99, "increment"], outputs=[("seed", "INT", [])]),
             ui_node(3, "ttN float", [1.5], outputs=[("float", "FLOAT", []), ("int", "INT", []),
                                                     ("text", "STRING", [2])]),
             ui_node(4, "ttN concat", ["", "", "", " + "], [("text1", "STRING", 1, True), ("text2", "STRING", 2, True)],
                     [("concat", "STRING", [3])]),
             ui_node(5, "ttN textDebug", [False, "", "Always"], [("text", "STRING", 3, False)],
                     [("text", "STRING", [])])]
    links = [[1, 1, 2, 4, 0, "STRING"], [2, 3, 2, 4, 1, "STRING"], [3, 4, 0, 5, 0, "STRING"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["2", "5"])
    assert result.values["5"][0] == "7 + 1.5 + " and result.outputs["5"]["text"] == ["7 + 1.5 + "]
    assert result.values["2"][0] == 99
    exported = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert exported[1]["widgets_values"] == [7] and exported[2]["widgets_values"] == [99, "increment"]
    assert exported[5]["widgets_values"] == [False, "", "Always"]
    api = export_api(parse_workflow(graph, registry), registry)
    assert api["1"] == {"class_type": "ttN int", "inputs": {"int": 7}}
    assert api["3"]["inputs"] == {"float": 1.5}


def test_unknown_ttn_classes_are_named_as_the_packs():
    from graphflow.comfy_format import custom_pack
    assert custom_pack("ttN advanced xyPlot") == "ComfyUI_tinyterraNodes"


def test_clear_errors(registry, models):
    pipe = {"model": object(), "positive": [], "negative": [], "samples": {"samples": torch.zeros(1, 4, 8, 8)},
            "vae": None, "clip": None, "images": None, "seed": 0}
    with pytest.raises(NodeInputError) as e:
        call(registry, "TtnPipeKSampler", pipe=pipe, adv_xyPlot={"x_plot": {}})
    assert e.value.input == "adv_xyPlot"
    with pytest.raises(NodeInputError) as e:
        call(registry, "TtnPipeKSampler", pipe=("a", "tuple"))
    assert e.value.input == "pipe" and "dict" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        call(registry, "TtnPipeKSampler", pipe={"model": None})
    assert e.value.input == "pipe" and "model" in str(e.value)
    for given, missing in (({}, "optional_refiner_positive"), ({"optional_refiner_positive": []},
                                                                  "optional_refiner_negative")):
        with pytest.raises(NodeInputError) as e:  # a refiner model, no refiner prompts: not a TypeError mid-run
            call(registry, "TtnPipeKSamplerSDXL", sdxl_pipe=pipe, optional_refiner_model=object(), **given)
        assert e.value.input == missing
    graph = {"1": _loader_api(loras="")}
    graph["2"] = _advanced_api(["1", 0], image_output="Save", save_prefix="img_%date:yyyy%")
    with pytest.raises(AssertionError, match="save_prefix"):
        run_graph(registry, graph, ["2"])
    graph["2"] = _advanced_api(["1", 0], upscale_method="[hiresFix] bilinear")
    with pytest.raises(AssertionError, match="upscale_model_name"):
        run_graph(registry, graph, ["2"])
    graph = {"1": _loader_api(loras="<lora:first.safetensors:0.5.5>")}
    with pytest.raises(AssertionError, match="loras"):
        run_graph(registry, graph, ["1"])


def test_unknown_lora_tag_is_skipped_with_a_warning(registry, models, caplog):
    graph = {"1": _loader_api(loras="<lora:missing.safetensors:1.0> <lora:bad>", clip_skip=0),
             "2": _loader_api(loras="", clip_skip=0)}
    result = run_graph(registry, graph, ["1", "2"])
    assert _same_conditioning(result.values["1"][2], result.values["2"][2])
    assert "missing.safetensors" in caplog.text and "<lora:bad>" in caplog.text


def test_lora_tags_of_a_hostile_megabyte_text_parse_in_one_pass():
    """Unclosed tags and a tag of a million ':1' are found and judged in one pass (the pack's
    patterns backtrack: minutes on such a text). Run in a child process so that a slow parser fails
    the test at its timeout instead of holding the run."""
    import subprocess
    import sys
    script = """
from nodes.pack_nodes_ttn import lora_tags
print(lora_tags("<lora:" * 170000))
print(lora_tags("<lora:" + ":1" * 500000 + "x> <lora:a.safetensors:0.5>"))
print(lora_tags("<lora:" * 100000 + "> <lora:b.safetensors:1:0.25>"))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["[]", "[('a.safetensors', 0.5, 0.5)]",
                                           "[('b.safetensors', 1.0, 0.25)]"]


def test_a_lora_or_checkpoint_written_after_a_run_is_used_by_the_next_run(registry, models):
    """The node cache's fingerprints hold the files each node reads: a LoRA tag's file written
    after a run (pipeLoader, conditioning), a sampler's lora_name, pipeLoraStack's rows and
    multiModelMerge's checkpoints rewritten after it: the next run on the same executor loads them
    and gives new results."""
    from graphflow.executor import Executor
    from graphflow.testing import write_checkpoint, write_lora
    loras = models.models / "loras"
    write_checkpoint(models.models / "checkpoints" / "c.safetensors", "sd1", seed=2)
    write_lora(loras / "stacked.safetensors", "sd1", seed=3)
    conditioning = {"class_type": "ttN conditioning", "inputs": {
        "model": ["1", 1], "clip": ["1", 6], "loras": "<lora:late.safetensors:1.0>", "positive": "x",
        "positive_token_normalization": "none", "positive_weight_interpretation": "comfy", "negative": "y",
        "negative_token_normalization": "none", "negative_weight_interpretation": "comfy", "zero_out_empty": False}}
    stack = {"class_type": "ttN pipeLoraStack", "inputs": {"toggle": True, "mode": "simple", "num_loras": 1,
                                                            "optional_pipe": ["1", 0],
                                                            "lora_1_name": "stacked.safetensors"}}
    merge = {"class_type": "ttN multiModelMerge", "inputs": {
        "ckpt_A_name": "tiny.safetensors", "config_A_name": "Default", "ckpt_B_name": "tiny.safetensors",
        "config_B_name": "Default", "ckpt_C_name": "c.safetensors", "config_C_name": "Default",
        "model_interpolation": "Add difference = (  A + (B-C)*M  )", "model_multiplier": 0.5,
        "clip_interpolation": "A Only", "clip_multiplier": 1.0}}
    graph = {"1": _loader_api(loras="<lora:late.safetensors:1.0>"), "2": conditioning,
             "3": _advanced_api(["6", 0], lora_name="first.safetensors", image_output="Disabled"),
             "4": {**stack, "inputs": {**stack["inputs"], "optional_pipe": ["6", 0]}}, "5": merge,
             "6": _loader_api(loras="")}
    conditioning["inputs"].update(model=["6", 1], clip=["6", 6])
    executor = Executor(registry)

    def run():
        result = executor.run(parse_workflow(graph, registry), outputs=["1", "2", "3", "4", "5", "6"])
        assert result.ok, (result.problems, result.error)
        return result.values

    first = run()
    assert run()["1"][1] is first["1"][1]  # unchanged files: the cached result
    write_lora(loras / "late.safetensors", "sd1", seed=4)  # the missing tag's file
    second = run()
    assert not _same_conditioning(second["1"][2], first["1"][2])  # the tag's LoRA now applied
    assert not _same_conditioning(second["2"][1], first["2"][1])
    assert second["3"][4] is first["3"][4] and second["5"][0] is first["5"][0]  # their files unchanged
    for name, seed in (("first.safetensors", 5), ("stacked.safetensors", 6)):
        write_lora(loras / name, "sd1", seed=seed)
    write_checkpoint(models.models / "checkpoints" / "c.safetensors", "sd1", seed=7)
    third = run()
    assert third["6"][1] is second["6"][1]  # the pipe they take is the cached one: their own files count
    assert not torch.allclose(third["3"][4]["samples"], second["3"][4]["samples"])  # lora_name rewritten
    assert third["4"][0]["model"] is not second["4"][0]["model"]  # the stack's row rewritten
    assert third["5"][0] is not second["5"][0]  # checkpoint C rewritten


def test_sdxl_loader_and_sampler_equal_the_core_sdxl_nodes(registry, models):
    """pipeLoaderSDXL_v2 encodes as CLIP Text Encode SDXL (an empty _l: the _g text; sizes from
    the aspect choices) and the refiner's _l text as CLIP Text Encode SDXL Refiner;
    pipeKSamplerSDXL_v2 runs base then refiner as two KSamplerAdvanced."""
    from graphflow.testing import write_checkpoint
    write_checkpoint(models.models / "checkpoints" / "xl.safetensors", "sdxl")
    write_checkpoint(models.models / "checkpoints" / "xlr.safetensors", "sdxl_refiner")
    loader = {"ckpt_name": "xl.safetensors", "config_name": "Default", "vae_name": "Baked VAE", "clip_skip": 0,
              "loras": "", "refiner_ckpt_name": "xlr.safetensors", "refiner_config_name": "Default",
              "positive_g": "a cube", "positive_l": "", "negative_g": "blurry", "negative_l": "low quality",
              "conditioning_aspect": "2x Empty Latent Aspect", "conditioning_width": 2048,
              "conditioning_height": 2048, "crop_width": 0, "crop_height": 0, "target_aspect": CUSTOM,
              "target_width": 800, "target_height": 600, "positive_ascore": 6.0, "negative_ascore": 2.5,
              "empty_latent_aspect": CUSTOM, "empty_latent_width": 64, "empty_latent_height": 64,
              "batch_size": 1, "seed": 4}
    sampler = {"sdxl_pipe": ["1", 0], "lora_name": "None", "lora_strength": 1.0, "upscale_method": "None",
               "upscale_model_name": "None", "factor": 2.0, "rescale": "by percentage", "percent": 50,
               "width": 1024, "height": 1024, "longer_side": 1024, "crop": "disabled", "base_steps": 2, "cfg": 5.0,
               "denoise": 1.0, "refiner_steps": 1, "refiner_cfg": 4.0, "refiner_denoise": 1.0,
               "sampler_name": "euler", "scheduler": "normal", "image_output": "Hide", "save_prefix": "ComfyUI",
               "file_type": "png", "embed_workflow": True, "seed": 4}
    graph = {"1": {"class_type": "ttN pipeLoaderSDXL_v2", "inputs": loader},
             "2": {"class_type": "ttN pipeKSamplerSDXL_v2", "inputs": sampler},
             "3": {"class_type": "ttN pipeKSamplerSDXL_v2", "inputs": {**sampler, "refiner_steps": 2,
                                                                        "refiner_denoise": 0.6}}}
    got = run_graph(registry, graph, ["1", "2", "3"]).values
    size = {"width": 128, "height": 128, "crop_w": 0, "crop_h": 0, "target_width": 800, "target_height": 600}
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "xl.safetensors"}},
            "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "xlr.safetensors"}},
            "3": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"clip": ["1", 1], "text_g": "a cube",
                                                                 "text_l": "a cube", **size}},
            "4": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"clip": ["1", 1], "text_g": "blurry",
                                                                 "text_l": "low quality", **size}},
            "5": {"class_type": "CLIPTextEncodeSDXLRefiner", "inputs": {"clip": ["2", 1], "ascore": 6.0, "width": 128,
                                                                        "height": 128, "text": ""}},
            "6": {"class_type": "CLIPTextEncodeSDXLRefiner", "inputs": {"clip": ["2", 1], "ascore": 2.5, "width": 128,
                                                                        "height": 128, "text": "low quality"}},
            "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "8": {"class_type": "KSamplerAdvanced", "inputs": {
                "model": ["1", 0], "add_noise": "enable", "noise_seed": 4, "steps": 3, "cfg": 5.0,
                "sampler_name": "euler", "scheduler": "normal", "positive": ["3", 0], "negative": ["4", 0],
                "latent_image": ["7", 0], "start_at_step": 0, "end_at_step": 2,
                "return_with_leftover_noise": "enable"}},
            "9": {"class_type": "KSamplerAdvanced", "inputs": {
                "model": ["2", 0], "add_noise": "disable", "noise_seed": 4, "steps": 3, "cfg": 4.0,
                "sampler_name": "euler", "scheduler": "normal", "positive": ["5", 0], "negative": ["6", 0],
                "latent_image": ["8", 0], "start_at_step": 2, "end_at_step": 10000,
                "return_with_leftover_noise": "disable"}},
            # 2 refiner steps at refiner_denoise 0.6: ComfyUI's sampler cuts the denoise's schedule at
            # the start step, as BasicScheduler at that denoise split at base_steps gives it
            "14": {"class_type": "KSamplerAdvanced", "inputs": {
                "model": ["1", 0], "add_noise": "enable", "noise_seed": 4, "steps": 4, "cfg": 5.0,
                "sampler_name": "euler", "scheduler": "normal", "positive": ["3", 0], "negative": ["4", 0],
                "latent_image": ["7", 0], "start_at_step": 0, "end_at_step": 2,
                "return_with_leftover_noise": "enable"}},
            "10": {"class_type": "BasicScheduler", "inputs": {"model": ["2", 0], "scheduler": "normal", "steps": 4,
                                                              "denoise": 0.6}},
            "11": {"class_type": "SplitSigmas", "inputs": {"sigmas": ["10", 0], "step": 2}},
            "12": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
            "13": {"class_type": "SamplerCustom", "inputs": {
                "model": ["2", 0], "add_noise": False, "noise_seed": 4, "cfg": 4.0, "positive": ["5", 0],
                "negative": ["6", 0], "sampler": ["12", 0], "sigmas": ["11", 1], "latent_image": ["14", 0]}}}
    want = run_graph(registry, core, ["3", "4", "5", "6", "9", "13"]).values
    sdxl = got["1"]
    assert _same_conditioning(sdxl[2], want["3"][0]) and _same_conditioning(sdxl[3], want["4"][0])
    assert sdxl[2][0][1]["width"] == 128 and sdxl[2][0][1]["target_height"] == 600
    assert _same_conditioning(sdxl[7], want["5"][0]) and _same_conditioning(sdxl[8], want["6"][0])
    assert sdxl[12:14] == (64, 64)
    assert torch.allclose(got["2"][8]["samples"], want["9"][0]["samples"], atol=1e-5)
    assert torch.allclose(got["3"][8]["samples"], want["13"][0]["samples"], atol=1e-5)
    assert not torch.allclose(got["3"][8]["samples"], run_graph(registry, {  # the denoise counts
        **graph, "3": {**graph["3"], "inputs": {**graph["3"]["inputs"], "refiner_denoise": 1.0}}}, ["3"]).values[
        "3"][8]["samples"], atol=1e-3)
    assert got["2"][1]["seed"] == 4 and "refiner_model" not in got["2"][1]


def test_hiresfix_scale_equals_the_core_upscale_chain(registry, models):
    from graphflow.testing import write_esrgan
    (models.models / "upscale_models").mkdir(exist_ok=True)
    write_esrgan(models.models / "upscale_models" / "x2.safetensors", scale=2)
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "2": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 24, "batch_size": 1,
                                                          "color": 0x3366cc}},
             "3": {"class_type": "ttN hiresfixScale", "inputs": {
                 "model_name": "x2.safetensors", "vae": ["1", 2], "image": ["2", 0], "rescale_after_model": True,
                 "rescale_method": "bilinear", "rescale": "to longer side - maintain aspect", "percent": 50,
                 "width": 1024, "height": 1024, "longer_side": 100, "crop": "disabled", "image_output": "Hide",
                 "save_prefix": "ComfyUI", "output_latent": True}},
             "4": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "x2.safetensors"}},
             "5": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["4", 0], "image": ["2", 0]}},
             # longer side 100 -> 104 (a multiple of 8), the other 104 * 48 / 80 = 62.4 -> 64
             "6": {"class_type": "ImageScale", "inputs": {"image": ["5", 0], "upscale_method": "bilinear",
                                                          "width": 104, "height": 64, "crop": "disabled"}},
             "7": {"class_type": "VAEEncode", "inputs": {"pixels": ["6", 0], "vae": ["1", 2]}}}
    values = run_graph(registry, graph, ["3", "6", "7"]).values
    latent, image = values["3"]
    assert image.shape == (1, 64, 104, 3) and torch.allclose(image, values["6"][0], atol=1e-5)
    assert torch.allclose(latent["samples"], values["7"][0]["samples"], atol=1e-5)


def test_image_output_saves_with_padding_type_and_folder(registry, models):
    image = torch.rand(2, 16, 24, 3)
    call(registry, "TtnImageOutput", image=image, image_output="Hide/Save", output_path="sub", save_prefix="pic",
         number_padding=3, file_type="jpg")
    assert sorted(p.name for p in (models.outputs / "sub").iterdir()) == ["pic_001.jpg", "pic_002.jpg"]
    call(registry, "TtnImageOutput", image=image[:1], image_output="Hide/Save", output_path="/elsewhere/output",
         save_prefix="one", number_padding="None", file_type="png")
    assert (models.outputs / "one.png").exists()
    from PIL import Image
    with Image.open(models.outputs / "sub" / "pic_001.jpg") as picture:
        assert picture.size == (24, 16) and picture.format == "JPEG"
    with pytest.raises(NodeInputError) as e:
        call(registry, "TtnImageOutput", image=image, image_output="Save", output_path="../out", save_prefix="x")
    assert e.value.input == "output_path"


def test_output_path_is_held_to_file_name_checks_and_keeps_the_subfolder_of_an_absolute_one(registry, models):
    """output_path: an absolute path through an output folder keeps the part after /output/ (the
    pack's default is ComfyUI's output folder); a %date% pattern and a name part over 200
    characters are refused naming output_path, and nothing is created."""
    image = torch.rand(1, 8, 8, 3)
    call(registry, "TtnImageOutput", image=image, image_output="Hide/Save", output_path="/home/u/ComfyUI/output/sub",
         save_prefix="q", number_padding="None")
    call(registry, "TtnTextOutput", text_output="Save", text="t", output_path="C:\\ComfyUI\\output\\notes\\",
         save_prefix="n", number_padding="None")
    assert (models.outputs / "sub" / "q.png").exists() and (models.outputs / "notes" / "n.txt").read_text() == "t"
    before = sorted(p.name for p in models.outputs.iterdir())
    for path in ("%date:yyyy-MM-dd%", "/".join(["a" * 300] * 2), "sub/../../x"):
        with pytest.raises(NodeInputError) as e:
            call(registry, "TtnImageOutput", image=image, image_output="Hide/Save", output_path=path, save_prefix="x")
        assert e.value.input == "output_path"
        with pytest.raises(NodeInputError) as e:
            call(registry, "TtnTextOutput", text_output="Save", text="t", output_path=path, save_prefix="x")
        assert e.value.input == "output_path"
    assert sorted(p.name for p in models.outputs.iterdir()) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_saves_never_write_through_a_link_at_the_file_name(registry, models, tmp_path, overwrite):
    """A dangling link at the name imageOutput / textOutput would write, leading
    outside the outputs folder: nothing is written there; without overwrite_existing the name counts
    as taken (skipped), with it the link itself is replaced by the file."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (models.outputs / "victim.png").symlink_to(outside / "planted.png")
    (models.outputs / "victim.txt").symlink_to(outside / "planted.txt")
    call(registry, "TtnImageOutput", image=torch.rand(1, 8, 8, 3), image_output="Hide/Save", save_prefix="victim",
         number_padding="None", overwrite_existing=overwrite)
    call(registry, "TtnTextOutput", text_output="Save", text="hello", save_prefix="victim", number_padding="None",
         file_type="txt", overwrite_existing=overwrite)
    assert list(outside.iterdir()) == []
    for name in ("victim.png", "victim.txt"):
        assert (models.outputs / name).is_symlink() != overwrite
    if overwrite:
        assert (models.outputs / "victim.txt").read_text() == "hello"


def test_loaders_latent_batch_is_checked_before_the_run(registry, models):
    """A 64-batch of 4096x4096 (aspect choice of the custom size) is refused under 2 GiB before
    anything loads, as EmptyLatentImage is; an aspect choice sets the size checked."""
    from graphflow.resource_limits import RunLimits
    from graphflow.validation import plan_workflow
    limits = RunLimits(ram_bytes=2 * 2**30, device_bytes=2 * 2**30)

    def problems(graph):
        return plan_workflow(parse_workflow(graph, registry), registry, ["1"], limits)[1]

    big = _loader_api(empty_latent_width=4096, empty_latent_height=4096, batch_size=64, empty_latent_aspect=CUSTOM)
    found = problems({"1": big})
    assert found and "64 × 4096×4096" in found[0].message
    assert problems({"1": _loader_api(empty_latent_width=4096, empty_latent_height=4096, batch_size=64,
                                      empty_latent_aspect="512 x 512 [S] 1:1")}) == []
    tiny = {"class_type": "ttN tinyLoader", "inputs": {
        "ckpt_name": "tiny.safetensors", "config_name": "Default", "sampling": "Default", "zsnr": False,
        "cfg_rescale_mult": 0.0, "vae_name": "Baked VAE", "clip_skip": 0, "empty_latent_aspect": CUSTOM,
        "empty_latent_width": 4096, "empty_latent_height": 4096, "batch_size": 64}}
    assert problems({"1": tiny})


def _pipe_sampler_api(pipe, **changes):
    inputs = {"pipe": pipe, "lora_name": "None", "lora_strength": 1.0, "upscale_method": "None",
              "upscale_model_name": "None", "factor": 2.0, "rescale": "by percentage", "percent": 50, "width": 1024,
              "height": 1024, "longer_side": 1024, "crop": "disabled", "steps": 2, "cfg": 6.5,
              "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0, "image_output": "Hide",
              "save_prefix": "ComfyUI", "file_type": "png", "embed_workflow": True, "seed": 1}
    return {"class_type": "ttN pipeKSampler_v2", "inputs": {**inputs, **changes}}


def test_latent_upscale_factor_is_held_to_the_memory_limits(registry, models):
    """A [latent] upscale by 8 of a 64-batch at 512x512 (sampling 64 x 4096x4096): KSampler_v2's
    estimate scales its latent by the factor, so the plan is refused under 8 GiB as the core
    EmptyLatentImage -> LatentUpscaleBy -> KSampler chain is; a pipe's latent (not sized before the
    run) is refused by the sampler before it upscales."""
    from graphflow.executor import Executor
    from graphflow.resource_limits import RunLimits
    from graphflow.validation import plan_workflow
    limits = RunLimits(ram_bytes=8 * 2**30, device_bytes=8 * 2**30)
    latent = {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 64}}
    ksampler = {"class_type": "ttN KSampler_v2", "inputs": {
        "model": ["c", 0], "positive": ["t", 0], "negative": ["t", 0], "latent": ["l", 0], "vae": ["c", 2],
        **{k: v for k, v in _pipe_sampler_api(None)["inputs"].items() if k != "pipe"},
        "upscale_method": "[latent] bilinear", "factor": 8.0}}
    graph = {"c": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "t": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["c", 1], "text": "a"}}, "l": latent,
             "k": ksampler}

    def problems(graph):
        return plan_workflow(parse_workflow(graph, registry), registry, ["k"], limits)[1]

    found = problems(graph)
    assert found and found[0].node_id == "k" and "64 × 4096×4096" in found[0].message
    assert problems({**graph, "k": {**ksampler, "inputs": {**ksampler["inputs"], "factor": 1.0}}}) == []
    core = {**graph, "u": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["l", 0],
                                                                    "upscale_method": "bilinear", "scale_by": 8.0}},
            "k": {"class_type": "KSampler", "inputs": {
                "model": ["c", 0], "seed": 1, "steps": 2, "cfg": 6.5, "sampler_name": "euler", "scheduler": "normal",
                "positive": ["t", 0], "negative": ["t", 0], "latent_image": ["u", 0], "denoise": 1.0}}}
    assert "64 × 4096×4096" in problems(core)[0].message
    piped = {"1": _loader_api(loras="", empty_latent_width=512, empty_latent_height=512, batch_size=64),
             "2": _pipe_sampler_api(["1", 0], upscale_method="[latent] bilinear", factor=8.0)}
    result = Executor(registry, limits=limits).run(parse_workflow(piped, registry), outputs=["2"])
    assert not result.ok and result.error["input"] == "factor" and "4096x4096" in result.error["message"]


def test_text_output_writes_the_text_file(registry, models):
    assert call(registry, "TtnTextOutput", text_output="Save", text="hello\nworld", output_path="notes",
                save_prefix="log", number_padding=2, file_type="md") == "hello\nworld"
    call(registry, "TtnTextOutput", text_output="Save", text="again", output_path="notes", save_prefix="log",
         number_padding=2, file_type="md")
    assert (models.outputs / "notes" / "log_01.md").read_text() == "hello\nworld"
    assert (models.outputs / "notes" / "log_02.md").read_text() == "again"
    call(registry, "TtnTextOutput", text_output="Preview", text="not written", output_path="notes", save_prefix="p")
    assert not list((models.outputs / "notes").glob("p*"))


@pytest.mark.parametrize("model_interpolation, clip_interpolation", [
    ("Weighted sum = (  A*(1-M) + B*M  )", "Follow model interp"),
    ("Add difference = (  A + (B-C)*M  )", "B Only"),
    ("A Only", "Add difference = (  A + (B-C)*M  )"),
])
def test_multi_model_merge_equals_the_core_merge_nodes(registry, models, model_interpolation, clip_interpolation):
    """The merged model samples and the merged text encoder encodes as the core ModelMerge* /
    CLIPMerge* chain of the same formula does."""
    from graphflow.testing import write_checkpoint
    for name, seed in (("b.safetensors", 1), ("c.safetensors", 2)):
        write_checkpoint(models.models / "checkpoints" / name, "sd1", seed=seed)
    merge = {"class_type": "ttN multiModelMerge", "inputs": {
        "ckpt_A_name": "tiny.safetensors", "config_A_name": "Default", "ckpt_B_name": "b.safetensors",
        "config_B_name": "Default", "ckpt_C_name": "c.safetensors", "config_C_name": "Default",
        "model_interpolation": model_interpolation, "model_multiplier": 0.3,
        "clip_interpolation": clip_interpolation, "clip_multiplier": 0.6}}
    core = {"a": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "b": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "b.safetensors"}},
            "c": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "c.safetensors"}},
            "ws": {"class_type": "ModelMergeSimple", "inputs": {"model1": ["a", 0], "model2": ["b", 0], "ratio": 0.7}},
            "sub": {"class_type": "ModelMergeSubtract", "inputs": {"model1": ["b", 0], "model2": ["c", 0],
                                                                   "multiplier": 0.3}},
            "ad": {"class_type": "ModelMergeAdd", "inputs": {"model1": ["a", 0], "model2": ["sub", 0]}},
            "cws": {"class_type": "CLIPMergeSimple", "inputs": {"clip1": ["a", 1], "clip2": ["b", 1], "ratio": 0.4}},
            "csub": {"class_type": "CLIPMergeSubtract", "inputs": {"clip1": ["b", 1], "clip2": ["c", 1],
                                                                   "multiplier": 0.6}},
            "cad": {"class_type": "CLIPMergeAdd", "inputs": {"clip1": ["a", 1], "clip2": ["csub", 0]}}}
    want_model = {"Weighted sum": ["ws", 0], "Add difference": ["ad", 0], "A Only": ["a", 0]}[
        model_interpolation.split(" =")[0]]
    want_clip = {"Follow model interp": ["cws", 0], "B Only": ["b", 1], "Add difference": ["cad", 0]}[
        clip_interpolation.split(" =")[0]]

    def probe(model, clip, key):
        return {f"{key}t": {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": "a cube"}},
                f"{key}l": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
                f"{key}k": {"class_type": "KSampler", "inputs": {
                    "model": model, "seed": 1, "steps": 1, "cfg": 3.0, "sampler_name": "euler", "scheduler": "normal",
                    "positive": [f"{key}t", 0], "negative": [f"{key}t", 0], "latent_image": [f"{key}l", 0],
                    "denoise": 1.0}}}

    got = run_graph(registry, {"m": merge, **probe(["m", 0], ["m", 1], "x")}, ["m", "xt", "xk"]).values
    want = run_graph(registry, {**core, **probe(want_model, want_clip, "y")}, ["a", "b", "c", "yt", "yk"]).values
    # one weight of each against the formula, computed here from the three checkpoints' weights
    from tests.test_pack_nodes_pysssss import weights
    merged_unet, merged_text = weights(*got["m"])
    (a_unet, a_text), (b_unet, b_text), (c_unet, c_text) = (weights(*want[k][:2]) for k in "abc")
    formulas = {"Weighted sum": lambda a, b, c, m: a * (1 - m) + b * m,
                "Add difference": lambda a, b, c, m: a + (b - c) * m,
                "A Only": lambda a, b, c, m: a, "B Only": lambda a, b, c, m: b}
    clip_formula = model_interpolation if clip_interpolation == "Follow model interp" else clip_interpolation
    for merged, a, b, c, formula, m in ((merged_unet, a_unet, b_unet, c_unet, model_interpolation, 0.3),
                                        (merged_text, a_text, b_text, c_text, clip_formula, 0.6)):
        key = next(k for k, v in a.items() if v.is_floating_point() and v.numel() > 1 and not torch.equal(v, b[k]))
        expected = formulas[formula.split(" =")[0]](a[key].double(), b[key].double(), c[key].double(), m)
        assert torch.allclose(merged[key].double(), expected, atol=1e-3, rtol=1e-3), key
    assert _same_conditioning(got["xt"][0], want["yt"][0])
    assert torch.allclose(got["xk"][0]["samples"], want["yk"][0]["samples"], atol=1e-5)
    other = run_graph(registry, {**core, **probe(["a", 0], ["a", 1], "z")}, ["zt"]).values
    if clip_interpolation != "A Only":
        assert not _same_conditioning(got["xt"][0], other["zt"][0])  # the merge changed something


def test_multi_model_merge_names_a_missing_checkpoint(registry, models):
    with pytest.raises(NodeInputError) as e:
        call(registry, "TtnMultiModelMerge", ckpt_A_name="tiny.safetensors", ckpt_B_name="None")
    assert e.value.input == "ckpt_B_name"


def test_ksampler_hiresfix_upscale_equals_the_core_upscale_chain_then_ksampler(registry, models):
    """KSampler_v2's "[hiresFix] m": input_image_override through the upscale model, rescaled to
    width x height with m, encoded, then sampled at the denoise."""
    from graphflow.testing import write_esrgan
    (models.models / "upscale_models").mkdir(exist_ok=True)
    write_esrgan(models.models / "upscale_models" / "x2.safetensors", scale=2)
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a cube"}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 32, "batch_size": 1, "color": 0x8844aa}},
        "5": {"class_type": "ttN KSampler_v2", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0], "latent": ["3", 0], "vae": ["1", 2],
            "lora_name": "None", "lora_strength": 1.0, "upscale_method": "[hiresFix] bilinear",
            "upscale_model_name": "x2.safetensors", "factor": 2.0, "rescale": "to Width/Height", "percent": 50,
            "width": 96, "height": 72, "longer_side": 1024, "crop": "disabled", "steps": 2, "cfg": 4.0,
            "sampler_name": "euler", "scheduler": "normal", "denoise": 0.6, "image_output": "Hide",
            "save_prefix": "ComfyUI", "file_type": "png", "embed_workflow": True, "seed": 11,
            "input_image_override": ["4", 0]}},
        "6": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "x2.safetensors"}},
        "7": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["6", 0], "image": ["4", 0]}},
        "8": {"class_type": "ImageScale", "inputs": {"image": ["7", 0], "upscale_method": "bilinear", "width": 96,
                                                     "height": 72, "crop": "disabled"}},
        "9": {"class_type": "VAEEncode", "inputs": {"pixels": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 11, "steps": 2, "cfg": 4.0,
                                                    "sampler_name": "euler", "scheduler": "normal",
                                                    "positive": ["2", 0], "negative": ["2", 0],
                                                    "latent_image": ["9", 0], "denoise": 0.6}}}
    values = run_graph(registry, graph, ["5", "10"]).values
    assert values["5"][3]["samples"].shape == (1, 4, 9, 12)
    assert torch.allclose(values["5"][3]["samples"], values["10"][0]["samples"], atol=1e-5)


@pytest.mark.parametrize("scheduler, sigmas", [
    ("AYS SD1", {"class_type": "AlignYourStepsScheduler", "inputs": {"model_type": "SD1", "steps": 3, "denoise": 0.7}}),
    ("GITS SD1", {"class_type": "GITSScheduler", "inputs": {"coeff": 1.2, "steps": 3, "denoise": 0.7}}),
])
def test_custom_schedulers_sample_as_sampler_custom(registry, models, scheduler, sigmas):
    """The pack samples AYS / GITS with sample_custom over the scheduler node's sigmas."""
    graph = {"1": _loader_api(loras="", clip_skip=0),
             "2": {"class_type": "ttN pipeKSampler_v2", "inputs": {
                 "pipe": ["1", 0], "lora_name": "None", "lora_strength": 1.0, "upscale_method": "None",
                 "upscale_model_name": "None", "factor": 2.0, "rescale": "by percentage", "percent": 50,
                 "width": 1024, "height": 1024, "longer_side": 1024, "crop": "disabled", "steps": 3, "cfg": 5.0,
                 "sampler_name": "euler", "scheduler": scheduler, "denoise": 0.7, "image_output": "Disabled",
                 "save_prefix": "ComfyUI", "file_type": "png", "embed_workflow": True, "seed": 8}}}
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a red cube"}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
            "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "5": sigmas, "6": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
            "7": {"class_type": "SamplerCustom", "inputs": {
                "model": ["1", 0], "add_noise": True, "noise_seed": 8, "cfg": 5.0, "positive": ["2", 0],
                "negative": ["3", 0], "sampler": ["6", 0], "sigmas": ["5", 0], "latent_image": ["4", 0]}}}
    got = run_graph(registry, graph, ["2"]).values["2"]
    want = run_graph(registry, core, ["7"]).values["7"]
    assert torch.allclose(got[4]["samples"], want[0]["samples"], atol=1e-5)


def test_loader_overrides_vae_file_and_controlnet_stack_equal_the_core_nodes(registry, models):
    """pipeLoader_v2 with model_override / clip_override (the clip at clip_skip), a VAE file and a
    ControlNet stack: the parts and conditionings of the core chain."""
    from graphflow.testing import write_controlnet, write_vae
    (models.models / "controlnet").mkdir(exist_ok=True)
    (models.models / "vae").mkdir(exist_ok=True)
    write_controlnet(models.models / "controlnet" / "cn.safetensors", "sd1")
    write_vae(models.models / "vae" / "v.safetensors")
    graph = {"b": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "i": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                          "color": 0x808080}},
             "n": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}},
             "s": {"class_type": "Control Net Stacker", "inputs": {"control_net": ["n", 0], "image": ["i", 0],
                                                                   "strength": 0.8, "start_percent": 0.0,
                                                                   "end_percent": 0.5}},
             "1": _loader_api(loras="", vae_name="v.safetensors", clip_skip=-2, model_override=["b", 0],
                              clip_override=["b", 1], optional_controlnet_stack=["s", 0])}
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["1", 1], "stop_at_clip_layer": -2}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a red cube"}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "blurry"}},
            "i": graph["i"], "n": graph["n"],
            "5": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                "positive": ["3", 0], "negative": ["4", 0], "control_net": ["n", 0], "image": ["i", 0],
                "strength": 0.8, "start_percent": 0.0, "end_percent": 0.5}},
            "6": {"class_type": "VAELoader", "inputs": {"vae_name": "v.safetensors"}},
            "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}
    def sampled(model, positive, negative, latent, vae):
        return {"k": {"class_type": "KSampler", "inputs": {
                    "model": model, "seed": 2, "steps": 1, "cfg": 4.0, "sampler_name": "euler",
                    "scheduler": "normal", "positive": positive, "negative": negative, "latent_image": latent,
                    "denoise": 1.0}},
                "d": {"class_type": "VAEDecode", "inputs": {"samples": ["k", 0], "vae": vae}}}

    graph.update(sampled(["1", 1], ["1", 2], ["1", 3], ["1", 4], ["1", 5]))
    core.update(sampled(["1", 0], ["5", 0], ["5", 1], ["7", 0], ["6", 0]))
    got = run_graph(registry, graph, ["1", "b", "d"]).values
    want = run_graph(registry, core, ["d", "3"]).values
    assert got["1"][1] is got["b"][0]  # the overriding model itself
    assert _same_conditioning(got["1"][2], want["3"][0]) and "control" in got["1"][2][0][1]
    assert torch.allclose(got["d"][0], want["d"][0], atol=1e-5)


def test_pipe_lora_stack_ui_save_reads_its_rows_in_the_packs_order(registry, models):
    rows = [["first.safetensors", 0.6, 0.9, 0.2]] + [["None", 1.0, 1.0, 1.0]] * 19
    widgets = [True, "simple", 1] + [v for row in rows for v in row]
    nodes = [ui_node(1, "ttN pipeLoraStack", widgets,
                     [("optional_pipe", "PIPE_LINE", None, False), ("model_override", "MODEL", None, False)],
                     [("optional_pipe", "PIPE_LINE", []), ("lora_stack", "LORA_STACK", [])])]
    graph = ui_graph(nodes)
    assert run_graph(registry, graph, ["1"]).values["1"] == (None, [("first.safetensors", 0.6, 0.6)])
    saved = export_ui(parse_workflow(graph, registry), registry)["nodes"][0]
    assert saved["type"] == "ttN pipeLoraStack" and saved["widgets_values"] == widgets


def _hiresfix_graph(models, **changes) -> dict:
    """KSampler_v2 upscaling a 40x32 image with an x2 model ("[hiresFix] bilinear") to width x height."""
    from graphflow.testing import write_esrgan
    (models.models / "upscale_models").mkdir(exist_ok=True)
    write_esrgan(models.models / "upscale_models" / "x2.safetensors", scale=2)
    inputs = {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0], "latent": ["3", 0], "vae": ["1", 2],
              **{k: v for k, v in _pipe_sampler_api(None)["inputs"].items() if k != "pipe"},
              "upscale_method": "[hiresFix] bilinear", "upscale_model_name": "x2.safetensors",
              "rescale": "to Width/Height", "width": 96, "height": 72, "input_image_override": ["4", 0]}
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a cube"}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 32, "batch_size": 1, "color": 0}},
        "5": {"class_type": "ttN KSampler_v2", "inputs": {**inputs, **changes}}}


def test_hiresfix_over_the_pixel_limit_names_the_upscale_model_input(registry, models):
    """The model's 80x64 output is over a 4500-pixel limit: refused naming ttN's own input."""
    from graphflow.executor import Executor
    from graphflow.resource_limits import RunLimits
    result = Executor(registry, limits=RunLimits(max_pixels=4500)).run(
        parse_workflow(_hiresfix_graph(models), registry), outputs=["5"])
    assert not result.ok and result.error["input"] == "upscale_model_name", result.error
    assert "80x64" in result.error["message"]


def test_hiresfix_rescale_is_held_to_the_sampling_memory(registry, models):
    """Rescaled to 2048x2048 after the model, the latent to sample needs more working memory than
    the run's 0.1 GiB (sampling_memory of that size, the planner's rule): refused before sampling;
    at 96x72 it runs."""
    from graphflow.executor import Executor
    from graphflow.resource_limits import RunLimits, Size, sampling_memory
    budget = 2**30 // 10
    assert sampling_memory(Size(1, 96, 72)) < budget < sampling_memory(Size(1, 2048, 2048))
    limits = RunLimits(ram_bytes=budget, device_bytes=budget)
    big = Executor(registry, limits=limits).run(
        parse_workflow(_hiresfix_graph(models, width=2048, height=2048), registry), outputs=["5"])
    assert not big.ok and big.error["input"] == "upscale_method", (big.error, big.problems)
    assert "2048x2048" in big.error["message"]
    small = Executor(registry, limits=limits).run(parse_workflow(_hiresfix_graph(models), registry), outputs=["5"])
    assert small.ok, (small.error, small.problems)
