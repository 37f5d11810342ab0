"""Comfyroll Studio's nodes (nodes/pack_nodes_comfyroll.py): the sizes against the pack's preset
tables and torch.zeros, CR Upscale Image against ImageUpscaleWithModel then Pillow's resize, the
text and value nodes against Python's str and math, the switches, the LoRA stack against
LoraLoader in turn, the ControlNet nodes against ControlNetApply(Advanced)'s controls, the pipes,
and the pack's graphs in the UI format (seed control word, forceInput sockets) and the API format,
written back by export_ui / export_api."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from graphflow import memory
from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.images import image_to_pil
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint, write_controlnet, write_esrgan, write_lora
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_comfyroll import cr_resize_size
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def models(tmp_folders):
    for sub in ("checkpoints", "loras", "controlnet", "upscale_models"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_lora(tmp_folders.models / "loras" / "first.safetensors", "sd1", seed=1)
    write_lora(tmp_folders.models / "loras" / "second.safetensors", "sd1", seed=2)
    return tmp_folders


def rest(values):
    """A node's outputs without the pack's trailing show_help link (checked to be its wiki's)."""
    assert values[-1].startswith("https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes/wiki/")
    return values[:-1]


# -- sizes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("node, widgets, size", [
    ("CR SD1.5 Aspect Ratio", {"aspect_ratio": "16:9 cinema 910x512"}, (910, 512)),
    ("CR SD1.5 Aspect Ratio", {"aspect_ratio": "3:4 portrait 512x682", "swap_dimensions": "On"}, (682, 512)),
    ("CR SD1.5 Aspect Ratio", {"aspect_ratio": "custom", "width": 640, "height": 200}, (640, 200)),
    ("CR SDXL Aspect Ratio", {"aspect_ratio": "5:8 portrait 832x1216"}, (832, 1216)),
    ("CR SDXL Aspect Ratio", {"aspect_ratio": "21:9 landscape 1536x640", "swap_dimensions": "On"}, (640, 1536)),
    ("CR Aspect Ratio", {"aspect_ratio": "SD1.5 - 2:3 portrait 512x768", "prescale_factor": 1.5}, (768, 1152)),
    ("CR Aspect Ratio", {"aspect_ratio": "SDXL - 16:9 landscape 1344x768", "prescale_factor": 0.3}, (403, 230)),
    ("CR Aspect Ratio", {"aspect_ratio": "custom", "width": 100, "height": 75, "swap_dimensions": "On"}, (75, 100)),
])
def test_aspect_ratios_give_the_packs_sizes_and_an_empty_latent(registry, node, widgets, size):
    cls = registry.comfy_node(node)
    values = rest(call(registry, cls.node_type, batch_size=3, upscale_factor=2.5, **widgets))
    width, height = values[:2]
    assert (width, height) == size  # the preset named in the choice (prescaled: int(side * factor))
    latent = values[-1]
    assert torch.equal(latent["samples"], torch.zeros(3, 4, height // 8, width // 8))
    assert values[2] == 2.5 and values[-2] == 3
    assert cls.estimate({**{n: s.default for n, s in cls.input_specs.items()}, "batch_size": 3, "upscale_factor": 2.5,
                         **widgets}, {}).size.pixels == width * height


def test_aspect_ratio_choices_are_the_packs():
    from nodes.pack_nodes_comfyroll import CRAspectRatio, CRAspectRatioSD15, CRSDXLAspectRatio
    choices = CRAspectRatio.input_specs["aspect_ratio"].widget.choices()
    assert len(choices) == 18 and choices[0] == "custom" and choices[8] == "SD1.5 - 2:1 cinema 1024x512"
    assert CRAspectRatioSD15.input_specs["aspect_ratio"].widget.choices()[-1] == "2.39:1 anamorphic 1224x512"
    assert len(CRSDXLAspectRatio.input_specs["aspect_ratio"].widget.choices()) == 10


def test_a_huge_prescale_is_refused_before_running(registry):
    from graphflow.resource_limits import RunLimits
    from graphflow.validation import validate
    graph = {"1": {"class_type": "CR Aspect Ratio", "inputs": {"width": 8192, "height": 8192, "aspect_ratio": "custom",
                                                               "swap_dimensions": "Off", "upscale_factor": 1.0,
                                                               "prescale_factor": 100.0, "batch_size": 64}}}
    limits = RunLimits(max_pixels=4096 * 4096)
    problems = validate(parse_workflow(graph, registry), registry, outputs=["1"], limits=limits)
    assert problems and {p.node_id for p in problems} == {"1"}
    graph["1"]["inputs"]["prescale_factor"] = 0.5  # 4096 x 4096 fits
    assert validate(parse_workflow(graph, registry), registry, outputs=["1"], limits=limits) == []


def test_a_linked_prescale_is_checked_when_it_runs(registry):
    from graphflow.resource_limits import SERVER_LIMITS
    from graphflow.validation import validate
    from nodes.pack_nodes_comfyroll import CRAspectRatio
    graph = {"v": {"class_type": "CR Value", "inputs": {"value": 100.0}},
             "1": {"class_type": "CR Aspect Ratio", "inputs": {"width": 8192, "height": 8192, "aspect_ratio": "custom",
                                                               "swap_dimensions": "Off", "upscale_factor": 1.0,
                                                               "prescale_factor": ["v", 0], "batch_size": 64}},
             "2": {"class_type": "CR Latent Batch Size", "inputs": {"latent": ["1", 5], "batch_size": 2}}}
    # before the run the factor is unknown: its least (0.1) gives a lower bound, which keeps the batch check
    widgets = {"width": 8192, "height": 8192, "aspect_ratio": "custom", "swap_dimensions": "Off", "batch_size": 64}
    assert CRAspectRatio.estimate(widgets, {}).size.pixels == int(8192 * 0.1) ** 2
    problems = validate(parse_workflow(graph, registry), registry, outputs=["2"], limits=SERVER_LIMITS)
    assert [(p.node_id, p.input) for p in problems] == [("2", "latent")]  # 128 latents: more than 64
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["1"])
    assert not result.ok and result.error["input"] == "prescale_factor"  # not torch's failed allocation
    assert "64 × 819200×819200" in result.error["message"]  # refused as the linked value arrives
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRAspectRatio", width=8192, height=8192, prescale_factor=2.01, batch_size=1)
    assert caught.value.input == "prescale_factor"
    assert call(registry, "CRAspectRatio", width=8192, height=64, prescale_factor=2.0)[:2] == (16384, 128)


def test_latent_batch_size_refuses_a_batch_beyond_the_largest_latent(registry):
    samples = torch.empty(64, 4, 1024, 1024, device="meta")  # 64 latents of 8192 x 8192: no memory taken
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRLatentBatchSize", latent={"samples": samples}, batch_size=5)
    assert caught.value.input == "batch_size"
    out = call(registry, "CRLatentBatchSize", latent={"samples": samples}, batch_size=4)  # 64 of 16384 x 16384
    assert out["samples"].shape == (256, 4, 1024, 1024)


def test_latent_batch_size_and_image_size(registry):
    samples = torch.randn(2, 4, 3, 5)
    out = call(registry, "CRLatentBatchSize", latent={"samples": samples, "batch_index": [0, 1]}, batch_size=3)
    assert torch.equal(out["samples"], torch.cat([samples, samples, samples])) and list(out) == ["samples"]
    assert rest(call(registry, "CRImageSize", width=640, height=320, upscale_factor=1.5)) == (640, 320, 1.5)


@pytest.mark.parametrize("size, mode, factor, width, modulus, want", [
    ((100, 60), "rescale", 1.5, 0, 8, (150, 90)),
    ((101, 61), "rescale", 0.5, 0, 8, (50, 30)),  # truncated, not rounded to the modulus
    ((100, 60), "resize", 0, 100, 8, (104, 64)),  # 60 -> 64, 100 -> 104: rounded up
    ((100, 75), "resize", 0, 64, 16, (64, 48)),
    ((640, 323), "resize", 0, 1920, 8, (1920, 968)),  # int(1920 * 0.5046875...) is 968, the exact 969 -> 976
])
def test_cr_resize_size(size, mode, factor, width, modulus, want):
    assert cr_resize_size(*size, mode, factor, width, modulus) == want
    if mode == "resize":  # the pack's apply_resize_image: height int(width * (original_height / original_width))
        height = int(width * (size[1] / size[0]))
        assert want[1] == height + (-height % modulus)


@pytest.mark.parametrize("mode, supersample, method", [("rescale", "true", "lanczos"), ("resize", "false", "bicubic"),
                                                       ("rescale", "false", "nearest")])
def test_upscale_image_is_the_model_then_pillows_bicubic_resize(registry, models, mode, supersample, method):
    write_esrgan(models.models / "upscale_models" / "x2.safetensors", scale=2)
    image = torch.rand(2, 12, 10, 3, generator=torch.Generator().manual_seed(0))
    graph = {"m": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "x2.safetensors"}},
             "i": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
             "u": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["m", 0], "image": ["i", 0]}}}
    Image.fromarray((image[0].numpy() * 255).astype(np.uint8)).save(models.inputs / "x.png")
    loaded = run_graph(registry, graph, ["i", "u"])
    source, upscaled = loaded.values["i"][0], loaded.values["u"][0]
    got = rest(call(registry, "CRUpscaleImage", image=source, upscale_model="x2.safetensors", mode=mode,
                    rescale_factor=1.7, resize_width=27, resampling_method=method, supersample=supersample,
                    rounding_modulus=8))[0]
    # the pack's steps written out with Pillow: the original size times the factor (or 27 wide,
    # rounded up to 8), from the 8-bit picture of the model's output, 8x first when supersampling;
    # always bicubic whatever resampling_method says (the pack passes it where a height goes)
    w, h = (17, 20) if mode == "rescale" else (32, 32)  # int(27 * 12 / 10) = 32
    picture = image_to_pil(upscaled[0])
    if supersample == "true":
        picture = picture.resize((w * 8, h * 8), resample=Image.BICUBIC)
    want = np.asarray(picture.resize((w, h), resample=Image.BICUBIC), dtype=np.float32) / 255.0
    assert got.shape == (1, h, w, 3)
    assert torch.equal(got[0], torch.from_numpy(want))


def test_upscale_image_names_a_broken_model(registry, models):
    (models.models / "upscale_models" / "broken.safetensors").write_bytes(b"not a model")
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRUpscaleImage", image=torch.rand(1, 8, 8, 3), upscale_model="broken.safetensors")
    assert caught.value.input == "upscale_model"


# -- text and values -------------------------------------------------------------------------


def test_text_nodes(registry):
    assert rest(call(registry, "CRPromptText", prompt="a cat")) == ("a cat",)
    assert rest(call(registry, "CRText")) == ("",)
    assert rest(call(registry, "CRCombinePrompt", part1="a", part4="b")) == ("a,,,b",)
    assert rest(call(registry, "CRCombinePrompt", part1="x", part2="y", part3="z", part4="w", separator=" | ")) == \
        (" | ".join("xyzw"),)
    assert rest(call(registry, "CRTextConcatenate", text1="left", text2="right", separator="-")) == ("left-right",)
    assert rest(call(registry, "CRTextConcatenate", text2="only")) == ("only",)
    text = "a cat and a cat. (cat)"
    got = rest(call(registry, "CRTextReplace", text=text, find1="cat", replace1="dog", find2="(", replace2="[",
                    find3="", replace3=""))
    assert got == (text.replace("cat", "dog").replace("(", "["),)
    assert rest(call(registry, "CRTextReplace", text="abc", find1="", replace1="-")) == ("abc".replace("", "-"),)
    assert rest(call(registry, "CRSplitString", text=" a, b ,c,d,e", delimiter=",")) == ("a", "b", "c", "d")
    assert rest(call(registry, "CRSplitString", text="one;two", delimiter=";")) == ("one", "two", "", "")
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRSplitString", text="x", delimiter="")
    assert caught.value.input == "delimiter"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRTextReplace", text="x" * 1000, find1="", replace1="y" * 100_000)
    assert caught.value.input == "replace1"


@pytest.mark.parametrize("node, inputs, name", [
    ("CRTextConcatenate", {"text1": "a", "text2": 5}, "text2"), ("CRTextReplace", {"text": 5}, "text"),
    ("CRTextLength", {"text": 5}, "text"), ("CRTextBlacklist", {"text": 5, "blacklist_words": "a"}, "text"),
    ("CRTextOperation", {"text": 5}, "text"), ("CRSetValueOnString", {"text": 5}, "text"),
    ("CRStringToNumber", {"text": 5}, "text"), ("CRStringToCombo", {"text": [1]}, "text"),
    ("CRTextListToString", {"text_list": ["a", 2]}, "text_list"),
    ("CRMultiUpscaleStack", {"upscale_stack": [1]}, "upscale_stack"),
    ("CRMultiUpscaleStack", {"upscale_stack": "ab"}, "upscale_stack"),
    ("CRApplyMultiUpscale", {"image": torch.rand(1, 4, 4, 3), "upscale_stack": [("x.pth",)]}, "upscale_stack"),
    ("CRBatchImagesFromList", {"image_list": []}, "image_list"),
])
def test_sockets_fed_from_any_outputs_are_checked(registry, node, inputs, name):
    # an ANY output (CR Value, a list's items) links into a STRING or stack socket unchecked before the run
    with pytest.raises(NodeInputError) as caught:
        call(registry, node, **inputs)
    assert caught.value.input == name


def test_conversions_and_values(registry):
    assert rest(call(registry, "CRSeed", seed=2**64 - 1)) == (2**64 - 1,)
    assert rest(call(registry, "CRIntegerToString", int_=-42)) == ("-42",)
    assert rest(call(registry, "CRFloatToString", float_=1.0)) == ("1.0",)
    assert rest(call(registry, "CRFloatToInteger", float_value=-2.7)) == (int(-2.7),)
    assert rest(call(registry, "CRIntegerMultiple", integer=7, multiple=8.5)) == (int(7 * 8.5),)
    assert rest(call(registry, "CRValue", value=3.9)) == (3.9, 3)
    assert rest(call(registry, "CRSetValueOnBoolean", boolean=True, value_if_true=2.5)) == (2, 2.5)
    assert rest(call(registry, "CRSetValueOnBoolean", boolean=False, value_if_false=-1.5)) == (-1, -1.5)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRFloatToInteger", float_value=math.inf)
    assert caught.value.input == "float_value"


@pytest.mark.parametrize("operation, a, want", [
    ("sin", 0.5, math.sin(0.5)), ("cos", 0.5, math.cos(0.5)), ("tan", 0.5, math.cos(0.5)),  # the pack's tan
    ("sqrt", 2.0, math.sqrt(2.0)), ("exp", 1.0, math.e), ("log", 10.0, math.log(10.0)), ("neg", 1.25, -1.25),
    ("abs", -3.5, 3.5),
])
def test_math_operation(registry, operation, a, want):
    assert rest(call(registry, "CRMathOperation", a=a, operation=operation, decimal_places=3)) == (round(want, 3),)


def test_math_operation_outside_its_domain_names_a(registry):
    for operation, a in (("sqrt", -1.0), ("log", 0.0), ("exp", 1000.0)):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "CRMathOperation", a=a, operation=operation)
        assert caught.value.input == "a"


# -- switches and pipes ----------------------------------------------------------------------


def test_switches_pick_the_numbered_input(registry):
    a, b, c, d = (torch.full((1, 2, 2, 3), v) for v in (0.1, 0.2, 0.3, 0.4))
    assert rest(call(registry, "CRImageInputSwitch", Input=2, image1=a, image2=b))[0] is b
    assert rest(call(registry, "CRImageInputSwitch4", Input=3, image1=a, image2=b, image3=c, image4=d))[0] is c
    assert rest(call(registry, "CRTextInputSwitch4", Input=4, text4="four")) == ("four",)
    assert rest(call(registry, "CRLatentInputSwitch", Input=1, latent1={"samples": a}))[0]["samples"] is a
    assert rest(call(registry, "CRSwitchModelAndCLIP", Input=2, model1="m1", clip1="c1", model2="m2", clip2="c2")) \
        == ("m2", "c2")
    assert rest(call(registry, "CRImg2ImgProcessSwitch", Input="img2img", txt2img="t", img2img="i")) == ("i",)
    assert rest(call(registry, "CRHiresFixProcessSwitch", Input="latent_upscale", latent_upscale="l")) == ("l",)
    assert rest(call(registry, "CRBatchProcessSwitch", Input="image batch", image=a, image_batch=b))[0] is b
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRVAEInputSwitch", Input=2, VAE1="v")
    assert caught.value.input == "VAE2"


def test_module_and_image_pipes(registry):
    image = torch.zeros(1, 2, 2, 3)
    pipe = rest(call(registry, "CRModulePipeLoader", pos="p", neg="n", image=image, seed=9))[0]
    assert pipe == (None, "p", "n", None, None, None, None, image, 9)
    changed = rest(call(registry, "CRModuleOutput", pipe=pipe, model="m", neg="n2", seed=4))[0]
    opened = rest(call(registry, "CRModuleInput", pipe=changed))
    assert opened == (changed, "m", "p", "n2", None, None, None, None, image, 4)
    image_pipe = rest(call(registry, "CRImagePipeIn", image=image, width=640, height=480, upscale_factor=2.0))[0]
    edited = rest(call(registry, "CRImagePipeEdit", pipe=image_pipe, width=320))[0]
    # the widgets always replace (ComfyUI sends them), an unconnected image keeps the pipe's
    assert rest(call(registry, "CRImagePipeOut", pipe=edited)) == (edited, image, 320, 512, 1.0)
    assert rest(call(registry, "CRPipeSwitch", Input=2, pipe1=pipe, pipe2=edited)) == (edited,)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRModuleInput", pipe=edited)
    assert caught.value.input == "pipe"


# -- LoRA and ControlNet ---------------------------------------------------------------------


def weights(model, clip):
    unet = memory.manager().weights(model.unet, model.patches)
    tower = clip.towers[0]
    return unet, memory.manager().weights(tower.model, tower.patches)


CKPT = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}}


def lora(source, name, model, clip):
    return {"class_type": "LoraLoader", "inputs": {"model": [source, 0], "clip": [source, 1], "lora_name": name,
                                                   "strength_model": model, "strength_clip": clip}}


def lora_stack(rows, incoming=None):
    inputs = {}
    for i, (switch, name, model, clip) in enumerate(rows, 1):
        inputs.update({f"switch_{i}": switch, f"lora_name_{i}": name, f"model_weight_{i}": model,
                       f"clip_weight_{i}": clip})
    if incoming:
        inputs["lora_stack"] = [incoming, 0]
    return {"class_type": "CR LoRA Stack", "inputs": inputs}


def test_lora_stack_applied_equals_lora_loaders_in_turn(registry, models):
    """The incoming stack's rows come first; an "Off" row or a "None" one is left out; the
    Efficiency loaders' LoRA Stacker links in too."""
    graph = {"1": CKPT,
             "e": {"class_type": "LoRA Stacker", "inputs": {"input_mode": "advanced", "lora_count": 1,
                                                             "lora_name_1": "second.safetensors", "model_str_1": 0.4,
                                                             "clip_str_1": -0.2}},
             "s": lora_stack([("On", "first.safetensors", 0.7, 0.3), ("Off", "second.safetensors", 1.0, 1.0),
                              ("On", "None", 1.0, 1.0)], incoming="e"),
             "a": {"class_type": "CR Apply LoRA Stack", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                                   "lora_stack": ["s", 0]}},
             "l": {"class_type": "CR Load LoRA", "inputs": {"model": ["1", 0], "clip": ["1", 1], "switch": "On",
                                                            "lora_name": "second.safetensors", "strength_model": 0.4,
                                                            "strength_clip": -0.2}},
             "c2": lora("1", "second.safetensors", 0.4, -0.2), "c3": lora("c2", "first.safetensors", 0.7, 0.3)}
    result = run_graph(registry, graph, ["a", "l", "c2", "c3", "s"])
    assert result.values["s"][0] == [("second.safetensors", 0.4, -0.2), ("first.safetensors", 0.7, 0.3)]
    for got, want in (("a", "c3"), ("l", "c2")):
        for x, y in zip(weights(*result.values[got][:2]), weights(*result.values[want][:2])):
            assert all(torch.equal(x[k], y[k]) for k in y)
    off = {"1": CKPT, "l": {**graph["l"], "inputs": {**graph["l"]["inputs"], "switch": "Off"}}}
    result = run_graph(registry, off, ["1", "l"])
    assert result.values["l"][0] is result.values["1"][0] and result.values["l"][1] is result.values["1"][1]


def test_load_lora_names_a_broken_file(registry, models):
    (models.models / "loras" / "broken.safetensors").write_bytes(b"not a lora")
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRLoadLoRA", model=object(), clip=object(), lora_name="broken.safetensors")
    assert caught.value.input == "lora_name"


def chain(conditioning):
    """(strength, start, end, hint) of each control of a conditioning's entries, newest first."""
    out = []
    for _, options in conditioning:
        control, links = options.get("control"), []
        while control is not None:
            links.append((control.strength, control.start_percent, control.end_percent, control.image))
            control = control.previous
        out.append(links)
    return out


def same_chains(a, b):
    return len(a) == len(b) and all(len(x) == len(y) and all(p[:3] == q[:3] and torch.equal(p[3], q[3])
                                                            for p, q in zip(x, y)) for x, y in zip(a, b))


def test_controlnet_nodes_equal_the_core_controls(registry, models):
    write_controlnet(models.models / "controlnet" / "cn.safetensors", "sd1")
    enc = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a cat"}}
    graph = {"1": CKPT, "p": enc, "n": {**enc, "inputs": {**enc["inputs"], "text": "blurry"}},
             "i": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1,
                                                          "color": 0x808080}},
             "net": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}},
             "s": {"class_type": "CR Multi-ControlNet Stack", "inputs": {
                 "switch_1": "On", "controlnet_1": "cn.safetensors", "controlnet_strength_1": 0.8,
                 "start_percent_1": 0.0, "end_percent_1": 0.5, "switch_2": "Off", "controlnet_2": "cn.safetensors",
                 "switch_3": "On", "controlnet_3": "cn.safetensors", "controlnet_strength_3": 0.3,
                 "start_percent_3": 0.2, "end_percent_3": 1.0, "image_1": ["i", 0], "image_2": ["i", 0],
                 "image_3": ["i", 0]}},
             "a": {"class_type": "CR Apply Multi-ControlNet", "inputs": {"base_positive": ["p", 0],
                                                                         "base_negative": ["n", 0], "switch": "On",
                                                                         "controlnet_stack": ["s", 0]}},
             "x1": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                 "positive": ["p", 0], "negative": ["n", 0], "control_net": ["net", 0], "image": ["i", 0],
                 "strength": 0.8, "start_percent": 0.0, "end_percent": 0.5}},
             "x2": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                 "positive": ["x1", 0], "negative": ["x1", 1], "control_net": ["net", 0], "image": ["i", 0],
                 "strength": 0.3, "start_percent": 0.2, "end_percent": 1.0}},
             "one": {"class_type": "CR Apply ControlNet", "inputs": {
                 "conditioning": ["p", 0], "control_net": ["net", 0], "image": ["i", 0], "switch": "On",
                 "strength": 0.6}},
             "core": {"class_type": "ControlNetApply", "inputs": {"conditioning": ["p", 0], "control_net": ["net", 0],
                                                                  "image": ["i", 0], "strength": 0.6}},
             # Efficiency Nodes' stacker links into the pack's applier: the same stack tuples
             "e": {"class_type": "Control Net Stacker", "inputs": {"control_net": ["net", 0], "image": ["i", 0],
                                                                   "strength": 0.8, "start_percent": 0.0,
                                                                   "end_percent": 0.5}},
             "ea": {"class_type": "CR Apply Multi-ControlNet", "inputs": {"base_positive": ["p", 0],
                                                                          "base_negative": ["n", 0], "switch": "On",
                                                                          "controlnet_stack": ["e", 0]}}}
    result = run_graph(registry, graph, ["a", "x2", "x1", "ea", "one", "core", "s", "p"])
    assert same_chains(chain(result.values["ea"][0]), chain(result.values["x1"][0]))
    assert len(result.values["s"][0]) == 2
    for side in (0, 1):
        assert same_chains(chain(result.values["a"][side]), chain(result.values["x2"][side]))
    assert same_chains(chain(result.values["one"][0]), chain(result.values["core"][0]))
    # unlike ControlNetApply, the pack's node leaves the negative prompt without control
    assert not result.values["one"][0][0][1].get("control_apply_to_uncond")
    assert result.values["core"][0][0][1].get("control_apply_to_uncond")
    off = {**graph, "a": {**graph["a"], "inputs": {**graph["a"]["inputs"], "switch": "Off"}}}
    result = run_graph(registry, off, ["a", "p"])
    assert result.values["a"][0] is result.values["p"][0]


@pytest.mark.parametrize("name", ["../outside.safetensors", "missing.safetensors"])
def test_apply_multi_controlnet_names_its_stack_for_a_file_it_cannot_load(registry, models, name):
    # the pack's older stacks carry file names, loaded here: a bad one is this node's stack's fault
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRApplyMultiControlNet", base_positive=[], base_negative=[], switch="On",
             controlnet_stack=[(name, torch.rand(1, 8, 8, 3), 1.0, 0.0, 1.0)])
    assert caught.value.input == "controlnet_stack"


# -- the pack's graphs ----------------------------------------------------------------------


def test_ui_graph_as_the_editor_saves_it(registry, models):
    """CR Seed saved with its control_after_generate word; forceInput texts as sockets, not widgets;
    the LoRA stack and its applier by position; then written back by export_ui unchanged."""
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2]), ("VAE", "VAE", [])]),
        ui_node(2, "CR LoRA Stack", ["On", "first.safetensors", 0.7, 0.3, "Off", "None", 1.0, 1.0,
                                     "On", "second.safetensors", -0.5, 0.5],
                [("lora_stack", "LORA_STACK", None, False)], [("LORA_STACK", "LORA_STACK", [3]),
                                                              ("show_help", "STRING", [])]),
        ui_node(3, "CR Apply LoRA Stack", [], [("model", "MODEL", 1, False), ("clip", "CLIP", 2, False),
                                               ("lora_stack", "LORA_STACK", 3, False)],
                [("MODEL", "MODEL", []), ("CLIP", "CLIP", []), ("show_help", "STRING", [])]),
        ui_node(4, "CR Seed", [123, "fixed"], outputs=[("seed", "INT", [4]), ("show_help", "STRING", [])]),
        ui_node(5, "CR Integer To String", [], [("int_", "INT", 4, False)],
                [("STRING", "STRING", [5]), ("show_help", "STRING", [])]),
        ui_node(6, "CR Prompt Text", ["a cat"], outputs=[("prompt", "STRING", [6]), ("show_help", "STRING", [])]),
        ui_node(7, "CR Text Concatenate", [" #"], [("text1", "STRING", 6, False), ("text2", "STRING", 5, False)],
                [("STRING", "STRING", []), ("show_help", "STRING", [])]),
        ui_node(8, "CR SDXL Aspect Ratio", [1024, 1024, "3:4 portrait 896x1152", "On", 1.5, 2],
                outputs=[("width", "INT", []), ("height", "INT", []), ("upscale_factor", "FLOAT", []),
                         ("batch_size", "INT", []), ("empty_latent", "LATENT", []), ("show_help", "STRING", [])]),
    ]
    links = [[1, 1, 0, 3, 0, "MODEL"], [2, 1, 1, 3, 1, "CLIP"], [3, 2, 0, 3, 2, "LORA_STACK"],
             [4, 4, 0, 5, 0, "INT"], [5, 5, 0, 7, 1, "STRING"], [6, 6, 0, 7, 0, "STRING"]]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, registry)
    saved = workflow.to_json()["nodes"]
    assert saved["4"]["inputs"]["seed"] == 123 and saved["7"]["inputs"]["separator"] == " #"
    assert saved["2"]["inputs"]["lora_name_3"] == "second.safetensors" and saved["2"]["inputs"]["switch_2"] == "Off"
    result = Executor(registry).run(workflow, outputs=["3", "7", "8"])
    assert result.ok, (result.problems, result.error)
    assert result.values["7"][0] == "a cat #123"
    assert result.values["8"][:4] == (1152, 896, 1.5, 2)
    assert result.values["8"][4]["samples"].shape == (2, 4, 896 // 8, 1152 // 8)
    want = run_graph(registry, {"1": CKPT, "2": lora("1", "first.safetensors", 0.7, 0.3),
                                "3": lora("2", "second.safetensors", -0.5, 0.5)}, ["3"])
    for x, y in zip(weights(*result.values["3"][:2]), weights(*want.values["3"][:2])):
        assert all(torch.equal(x[k], y[k]) for k in y)
    written = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    for node in nodes:
        assert written[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]
    assert [i["name"] for i in written[7]["inputs"]][:2] == ["text1", "text2"]


def test_api_graph_with_the_packs_class_names_round_trips(registry):
    graph = {"1": {"class_type": "CR Combine Prompt", "inputs": {"part1": "one", "part2": "two", "part3": "",
                                                                 "part4": "four", "separator": ", "}},
             "2": {"class_type": "CR Text Replace", "inputs": {"text": ["1", 0], "find1": "two", "replace1": "2",
                                                               "find2": "", "replace2": "", "find3": "",
                                                               "replace3": ""}},
             "3": {"class_type": "CR Value", "inputs": {"value": 2.75}},
             "4": {"class_type": "CR Float To Integer", "inputs": {"_float": ["3", 0]}},
             "b": {"class_type": "BOOLConstant", "inputs": {"value": True}},
             "5": {"class_type": "CR Set Value On Boolean", "inputs": {"boolean": ["b", 0], "value_if_true": 7.5,
                                                                       "value_if_false": 0}},
             "6": {"class_type": "CR Text Input Switch", "inputs": {"Input": 2, "text1": ["1", 0], "text2": ["2", 0]}},
             "7": {"class_type": "CR Math Operation", "inputs": {"a": ["5", 1], "operation": "sqrt",
                                                                 "decimal_places": 4}}}
    workflow = parse_workflow(graph, registry)
    result = run_graph(registry, graph, ["4", "6", "7"])
    assert result.values["6"][0] == "one, 2, , four"
    assert result.values["4"][0] == 2 and result.values["7"][0] == round(math.sqrt(7.5), 4)
    api = export_api(workflow, registry)
    assert api["4"]["class_type"] == "CR Float To Integer" and api["4"]["inputs"] == {"_float": ["3", 0]}
    assert {k: api[k]["inputs"] for k in api} == {k: graph[k]["inputs"] for k in graph}
    assert parse_workflow(api, registry).to_json()["nodes"] == workflow.to_json()["nodes"]


# -- more text, lists and graphics -------------------------------------------------------------


@pytest.mark.parametrize("text, options, want", [
    ("a, b,\n# a comment\nc'd,,", {}, "a, b,\nc'd"),  # the text's trailing commas go, a line's stay
    ("x 'q'\n'y'", {"remove_chars": True, "chars_to_remove": "'"}, "x q\ny"),
    ("'red', 'green', 'blue'", {"split_string": True}, "red\ngreen\nblue"),
    ('"red", "green"', {"split_string": True}, "red\ngreen"),
    ("one, two , three", {"split_string": True}, "one\ntwo\nthree"),
    ("a,'b, c',d", {"convert_from_csv": True}, "a\nb, c\nd"),  # csv with ' as the quote
])
def test_multiline_text(registry, text, options, want):
    assert rest(call(registry, "CRMultilineText", text=text, **options)) == (want,)


def test_multiline_text_against_the_csv_module(registry):
    import csv
    import io
    text = 'name,"quoted, with comma",3\nsecond,row'
    want = [value for row in csv.reader(io.StringIO(text), quotechar='"') for value in row]
    assert rest(call(registry, "CRMultilineText", text=text, convert_from_csv=True, csv_quote_char='"')) == \
        ("\n".join(want),)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRMultilineText", text=text, convert_from_csv=True, csv_quote_char="<>")
    assert caught.value.input == "csv_quote_char"


def test_blacklist_operation_and_length(registry):
    text = "A bad, ugly picture of a bad cat"
    assert rest(call(registry, "CRTextBlacklist", text=text, blacklist_words="bad\n\n  ugly \n",
                     replacement_text="nice")) == (text.replace("bad", "nice").replace("ugly", "nice"),)
    for operation, want in (("uppercase", text.upper()), ("invert_case", text.swapcase()), ("reverse", text[::-1]),
                            ("capitalize", text.capitalize()), ("remove_spaces", text.replace(" ", "")),
                            ("trim", text.strip())):
        assert rest(call(registry, "CRTextOperation", text=text, operation=operation)) == (want,)
    assert rest(call(registry, "CRTextLength", text="héllo")) == (5,)


def test_prompt_list_runs_the_next_node_once_per_line(registry):
    graph = {"1": {"class_type": "CR Prompt List", "inputs": {"prepend_text": "a ", "multiline_text": "cat\ndog\nbird",
                                                              "append_text": ", photo", "start_index": 1,
                                                              "max_rows": 5}},
             "2": {"class_type": "CR Text Length", "inputs": {"text": ["1", 0]}},
             "3": {"class_type": "CR Text List", "inputs": {"multiline_text": "x\ny", "start_index": 7,
                                                            "max_rows": 3}}}
    result = run_graph(registry, graph, ["1", "2", "3"])
    prompts, body, _ = result.values["1"]
    assert prompts == ["a dog, photo", "a bird, photo"] and body == ["dog", "bird"]
    assert list(result.values["2"][0]) == [len("a dog, photo"), len("a bird, photo")]
    assert result.values["3"][0] == ["y"]  # a start past the end is moved onto the last line, as the pack does


def test_color_panel(registry):
    image = rest(call(registry, "CRColorPanel", panel_width=20, panel_height=10, fill_color="orange"))[0]
    assert torch.equal(image, torch.tensor([255, 165, 0], dtype=torch.float32).div(255).expand(1, 10, 20, 3))
    image = rest(call(registry, "CRColorPanel", panel_width=8, panel_height=8, fill_color="custom",
                      fill_color_hex="#1a2B3c"))[0]
    assert torch.equal(image[0, 0, 0], torch.tensor([0x1a, 0x2b, 0x3c], dtype=torch.float32) / 255)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRColorPanel", fill_color="custom", fill_color_hex="#12")
    assert caught.value.input == "fill_color_hex"


def test_image_border_is_the_outline_then_the_borders(registry):
    from PIL import ImageColor
    image = torch.rand(2, 5, 7, 3, generator=torch.Generator().manual_seed(1))
    out = rest(call(registry, "CRImageBorder", image=image, top_thickness=1, bottom_thickness=2, left_thickness=3,
                    right_thickness=0, border_color="lime", outline_thickness=2, outline_color="lime"))[0]
    # numpy's constant padding of the 8-bit pictures: the outline in Pillow's "lime" (the name goes
    # to Pillow), then the borders in the pack's table's "lime" (0, 128, 0)
    pixels = np.clip(image.numpy() * 255, 0, 255).astype(np.uint8)
    want = []
    for frame in pixels:
        frame = np.stack([np.pad(frame[..., c], 2, constant_values=ImageColor.getrgb("lime")[c]) for c in range(3)], -1)
        frame = np.stack([np.pad(frame[..., c], ((1, 2), (3, 0)), constant_values=(0, 128, 0)[c]) for c in range(3)],
                         -1)
        want.append(frame.astype(np.float32) / 255)
    assert out.shape == (2, 5 + 4 + 3, 7 + 4 + 3, 3)
    assert torch.equal(out, torch.from_numpy(np.stack(want)))


def test_overlay_transparent_image_blends_at_the_centre_plus_offset(registry):
    back = torch.zeros(1, 10, 12, 3)
    overlay = torch.ones(1, 4, 2, 3)
    out = call(registry, "CROverlayTransparentImage", back_image=back, overlay_image=overlay, transparency=0.5,
               offset_x=1, offset_y=-2, rotation_angle=0.0, overlay_scale_factor=1.0)
    alpha = int(255 * 0.5) / 255  # the pack's alpha, 127
    left, top = 12 // 2 - 2 // 2 + 1, 10 // 2 - 4 // 2 - 2
    want = torch.zeros(1, 10, 12, 3)
    want[:, top:top + 4, left:left + 2] = alpha
    assert (out - want).abs().max() <= 1 / 255
    # rotated a quarter turn: the 2 x 4 overlay lies 4 wide, 2 high
    out = call(registry, "CROverlayTransparentImage", back_image=back, overlay_image=overlay, transparency=0.0,
               offset_x=0, offset_y=0, rotation_angle=90.0, overlay_scale_factor=1.0)
    assert out[0, ..., 0].nonzero().tolist() == [[y, x] for y in range(4, 6) for x in range(4, 8)]
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CROverlayTransparentImage", back_image=back, overlay_image=overlay, overlay_scale_factor=0.1)
    assert caught.value.input == "overlay_scale_factor"


def test_graphics_and_multiline_text_in_a_ui_graph(registry):
    """Optional widgets (the *_hex colours) come after the required ones, as the editor saves them."""
    nodes = [
        ui_node(1, "CR Color Panel", [16, 8, "custom", "#ff0000"], outputs=[("image", "IMAGE", [1]),
                                                                            ("show_help", "STRING", [])]),
        ui_node(2, "CR Image Border", [1, 0, 2, 0, "custom", 0, "white", "#0000ff"], [("image", "IMAGE", 1, False)],
                [("image", "IMAGE", []), ("show_help", "STRING", [])]),
        ui_node(3, "CR Multiline Text", ["a\n#b\nc", False, "'", False, "", False],
                outputs=[("multiline_text", "*", []), ("show_help", "STRING", [])]),
    ]
    workflow = parse_workflow(ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"]]), registry)
    result = Executor(registry).run(workflow, outputs=["2", "3"])
    assert result.ok, (result.problems, result.error)
    image = result.values["2"][0]
    assert image.shape == (1, 9, 18, 3)
    assert image[0, 0, 0].tolist() == [0.0, 0.0, 1.0] and image[0, 4, 9].tolist() == [1.0, 0.0, 0.0]
    assert result.values["3"][0] == "a\nc"
    written = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    for node in nodes:
        assert written[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]


# -- more values, core nodes ------------------------------------------------------------------


@pytest.mark.parametrize("text, rounding, want", [
    ("2.5", "round", (round(2.5), 2.5)), ("3.5", "round", (4, 3.5)), ("-1.25", "round", (-1, -1.25)),
    ("2.7", "round down", (2, 2.7)), ("-2.7", "round down", (-3, -2.7)),
    ("2.2", "round up", (3, 2.2)), ("2", "round up", (3, 2.0)),  # the pack adds one even to a whole number
    ("-2.2", "round up", (-2, -2.2)),
])
def test_string_to_number(registry, text, rounding, want):
    assert rest(call(registry, "CRStringToNumber", text=text, round_integer=rounding)) == want


def test_string_to_number_refuses_what_is_not_a_number(registry):
    for text in ("1e5", "abc", "1.2.3", "", "²"):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "CRStringToNumber", text=text)
        assert caught.value.input == "text"


def test_small_value_nodes(registry):
    assert rest(call(registry, "CRClampValue", a=7.5, range_min=0.0, range_max=5.0)) == (5.0,)
    assert rest(call(registry, "CRClampValue", a=-2.0, range_min=0.0, range_max=5.0)) == (0.0,)
    assert rest(call(registry, "CRClampValue", a=3.0, range_min=4.0, range_max=1.0)) == (4.0,)  # range_min wins
    assert rest(call(registry, "CRSetValueOnBinary", binary=1, value_if_1=3.9)) == (3, 3.9)
    assert rest(call(registry, "CRSetValueOnBinary", binary=0, value_if_0=-0.5)) == (0, -0.5)
    assert rest(call(registry, "CRSetValueOnString", text="a red car", test_string="red", value_if_true="yes",
                     value_if_false="no")) == ("yes", True)
    assert rest(call(registry, "CRSetValueOnString", text="a car", test_string="red", value_if_false="no")) == \
        ("no", False)
    assert rest(call(registry, "CRStringToCombo", text="euler, dpmpp_2m")) == ("euler",)


def test_conditioning_mixer(registry):
    generator = torch.Generator().manual_seed(3)
    c1 = [[torch.randn(1, 3, 8, generator=generator), {"pooled_output": torch.randn(1, 8, generator=generator)}]]
    c2 = [[torch.randn(1, 5, 8, generator=generator), {"pooled_output": torch.randn(1, 8, generator=generator)}]]
    combined = rest(call(registry, "CRConditioningMixer", conditioning_1=c1, conditioning_2=c2,
                         mix_method="Combine"))[0]
    assert len(combined) == 2 and combined[0][0] is c1[0][0] and combined[1][0] is c2[0][0]
    averaged = rest(call(registry, "CRConditioningMixer", conditioning_1=c1, conditioning_2=c2, mix_method="Average",
                         average_strength=0.3))[0]
    # conditioning_2 * s + conditioning_1 (zero-padded to 5 tokens) * (1 - s), the pooled outputs alike
    padded = torch.cat([c1[0][0], torch.zeros(1, 2, 8)], dim=1)
    assert torch.allclose(averaged[0][0], c2[0][0] * 0.3 + padded * 0.7)
    assert torch.allclose(averaged[0][1]["pooled_output"], c2[0][1]["pooled_output"] * 0.3
                          + c1[0][1]["pooled_output"] * 0.7)
    joined = rest(call(registry, "CRConditioningMixer", conditioning_1=c1, conditioning_2=c2,
                       mix_method="Concatenate"))[0]
    assert torch.equal(joined[0][0], torch.cat([c2[0][0], c1[0][0]], dim=1))


def test_select_model_loads_the_selected_checkpoint(registry, models):
    graph = {"s": {"class_type": "CR Select Model", "inputs": {"ckpt_name1": "None", "ckpt_name2": "tiny.safetensors",
                                                               "ckpt_name3": "None", "ckpt_name4": "None",
                                                               "ckpt_name5": "None", "select_model": 2}},
             "c": CKPT}
    result = run_graph(registry, graph, ["s", "c"])
    assert result.values["s"][3] == "tiny.safetensors"
    for x, y in zip(weights(*result.values["s"][:2]), weights(*result.values["c"][:2])):
        assert all(torch.equal(x[k], y[k]) for k in y)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRSelectModel", select_model=4)
    assert caught.value.input == "ckpt_name4"


def test_image_output_saves_previews_and_passes_the_trigger(registry, tmp_folders):
    import datetime
    image = torch.rand(2, 6, 5, 3, generator=torch.Generator().manual_seed(4))
    graph = {"1": {"class_type": "CR Image Output", "inputs": {
        "images": ["i", 0], "output_type": "Save", "filename_prefix": "cr/pic", "prefix_presets": "yyyyMMdd",
        "file_format": "jpg", "trigger": True}}, "i": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}
    Image.fromarray((image[0].numpy() * 255).astype(np.uint8)).save(tmp_folders.inputs / "x.png")
    result = run_graph(registry, graph, ["1", "i"])
    assert result.values["1"][0] is True
    stem = f"pic_{datetime.date.today():%Y%m%d}"
    saved = result.outputs["1"]["images"]
    assert saved == [{"filename": f"{stem}_00001_.jpg", "subfolder": "cr", "type": "output"}]
    # the file is Pillow's JPEG of the 8-bit picture, at Pillow's default quality
    import io
    buffer = io.BytesIO()
    image_to_pil(result.values["i"][0][0]).save(buffer, format="JPEG")
    assert (tmp_folders.outputs / "cr" / saved[0]["filename"]).read_bytes() == buffer.getvalue()
    preview = {**graph, "1": {**graph["1"], "inputs": {**graph["1"]["inputs"], "output_type": "Preview"}}}
    result = run_graph(registry, preview, ["1"])
    assert result.values["1"][0] is True
    # the pack writes a preview as it saves, with the prefix and format, to the temp folder
    shown = result.outputs["1"]["images"]
    assert shown == [{"filename": f"{stem}_00001_.jpg", "subfolder": "cr", "type": "temp"}]
    assert (tmp_folders.temp / "cr" / shown[0]["filename"]).read_bytes() == buffer.getvalue()
    bad = {**graph, "1": {**graph["1"], "inputs": {**graph["1"]["inputs"], "filename_prefix": "../out"}}}
    assert not Executor(registry).run(parse_workflow(bad, registry), outputs=["1"]).ok


def test_seed_and_pipe_switch_are_output_nodes_as_in_the_pack(registry):
    from graphflow.validation import output_nodes
    graph = {"1": {"class_type": "CR Seed", "inputs": {"seed": 7}},
             "2": {"class_type": "CR Image Pipe In", "inputs": {"width": 64, "height": 64, "upscale_factor": 1.0}},
             "3": {"class_type": "CR Pipe Switch", "inputs": {"Input": 2, "pipe1": ["2", 0], "pipe2": ["2", 0]}}}
    workflow = parse_workflow(graph, registry)
    assert sorted(output_nodes(workflow, registry)) == ["1", "3"]
    result = Executor(registry).run(workflow)  # no outputs named: a workflow of them runs, as ComfyUI runs it
    assert result.ok and result.values["1"][0] == 7 and result.values["3"][0] == result.values["2"][0]


def test_comfyui_clients_see_the_packs_required_and_optional_inputs(registry):
    """A ComfyUI editor served by graphflow lays widgets out (and requires links) as the pack does."""
    from graphflow.server.comfyui_object_info import class_info
    from graphflow.workflow import comfy_aliases

    def inputs(class_type):
        cls = registry.comfy_node(class_type)
        alias = next(a for a in comfy_aliases(cls) if class_type in a.class_types)
        info = class_info(cls, class_type, alias)["input_order"]
        return info["required"], info.get("optional", [])

    assert inputs("CR Image Input Switch") == (["Input"], ["image1", "image2"])
    assert inputs("CR Switch Model and CLIP") == (["Input", "model1", "clip1", "model2", "clip2"], [])
    required, optional = inputs("CR Multi-ControlNet Stack")
    assert required == [] and optional[:5] == ["switch_1", "controlnet_1", "controlnet_strength_1",
                                              "start_percent_1", "end_percent_1"]
    assert optional[-4:] == ["image_1", "image_2", "image_3", "controlnet_stack"]
    assert inputs("CR Module Output") == (["pipe"], ["model", "pos", "neg", "latent", "vae", "clip", "controlnet",
                                                     "image", "seed"])
    assert inputs("CR Float To Integer") == (["_float"], [])
    assert inputs("CR Text Replace")[0] == ["text"]


def eight_bit(image):
    """An IMAGE as the 8-bit array the pack's pictures hold (255 x value, clipped, truncated)."""
    return np.clip(image.numpy() * 255, 0, 255).astype(np.uint8)


def padded(frame, sides, color):
    """numpy's constant padding of an [H, W, 3] array: sides (top, bottom, left, right)."""
    top, bottom, left, right = sides
    return np.stack([np.pad(frame[..., c], ((top, bottom), (left, right)), constant_values=color[c])
                     for c in range(3)], -1)


@pytest.mark.parametrize("step", [5e-324, -5e-324])  # the count overflows: math.ceil(inf)
def test_float_range_names_a_step_with_no_countable_range(registry, step):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRFloatRangeList", start=0.0, end=1.0, step=step)
    assert caught.value.input == "step"


def test_image_panel_and_grid_panel(registry):
    generator = torch.Generator().manual_seed(5)
    a, b = torch.rand(1, 4, 6, 3, generator=generator), torch.rand(1, 7, 3, 3, generator=generator)
    out = rest(call(registry, "CRImagePanel", image_1=a, image_2=b, border_thickness=1, border_color="red",
                    outline_thickness=0, layout_direction="horizontal"))[0]
    framed = [padded(eight_bit(x[0]), (1, 1, 1, 1), (255, 0, 0)) for x in (a, b)]
    want = np.zeros((9, 8 + 5, 3), np.uint8)  # black where the shorter one leaves room
    want[:6, :8], want[:, 8:] = framed[0], framed[1]
    assert torch.equal(out[0], torch.from_numpy(want.astype(np.float32) / 255))
    out = rest(call(registry, "CRImagePanel", image_1=a, image_2=b, layout_direction="vertical"))[0]
    assert out.shape == (1, 4 + 7, 6, 3) and not out[0, 4:, 3:].any()
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRImagePanel", image_1=torch.rand(2, 4, 4, 3))
    assert caught.value.input == "image_1"

    batch = torch.rand(5, 2, 3, 3, generator=generator)
    out = rest(call(registry, "CRImageGridPanel", images=batch, max_columns=2))[0]
    pixels = eight_bit(batch)
    want = np.zeros((3 * 2, 2 * 3, 3), np.uint8)
    for i in range(5):
        want[(i // 2) * 2:(i // 2) * 2 + 2, (i % 2) * 3:(i % 2) * 3 + 3] = pixels[i]
    assert torch.equal(out[0], torch.from_numpy(want.astype(np.float32) / 255))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRImageGridPanel", images=batch, max_columns=0)
    assert caught.value.input == "max_columns"


@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
def test_image_panel_estimate_is_the_canvas_it_makes(registry, direction):
    from graphflow.resource_limits import Size, SERVER_LIMITS
    from graphflow.validation import validate
    from nodes.pack_nodes_comfyroll_utils import CRImagePanel
    a, b, c = torch.rand(1, 4, 6, 3), torch.rand(1, 7, 3, 3), torch.rand(1, 5, 5, 3)
    widgets = {"border_thickness": 2, "outline_thickness": 3, "layout_direction": direction}
    out = rest(call(registry, "CRImagePanel", image_1=a, image_2=b, image_4=c, **widgets))[0]
    sizes = {name: Size(1, x.shape[1], x.shape[2]) for name, x in (("image_1", a), ("image_2", b), ("image_4", c))}
    got = CRImagePanel.estimate(widgets, sizes).size
    assert (got.batch, got.height, got.width) == tuple(out.shape[:3])
    # four framed 8192 x 8192 images side by side: refused before the run
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8192, "height": 8192, "batch_size": 1,
                                                           "color": 0}},
             "2": {"class_type": "CR Image Panel", "inputs": {**{f"image_{i}": ["1", 0] for i in (1, 2, 3, 4)},
                                                              "border_thickness": 1024, "outline_thickness": 1024,
                                                              "layout_direction": direction}}}
    problems = validate(parse_workflow(graph, registry), registry, outputs=["2"], limits=SERVER_LIMITS)
    assert problems and {p.node_id for p in problems} == {"2"}


def test_feathered_border(registry):
    image = torch.rand(2, 20, 24, 3, generator=torch.Generator().manual_seed(6))
    # no feather: the plain borders, as CR Image Border draws them
    plain = rest(call(registry, "CRFeatheredBorder", image=image, top_thickness=2, right_thickness=3,
                      border_color="navy"))[0]
    bordered = rest(call(registry, "CRImageBorder", image=image, top_thickness=2, right_thickness=3,
                         border_color="navy"))[0]
    assert torch.equal(plain, bordered)
    out = rest(call(registry, "CRFeatheredBorder", image=image, feather_amount=2, left_thickness=1,
                    border_color="custom", border_color_hex="#204060"))[0]
    assert out.shape == (2, 20 + 4, 24 + 4 + 1, 3)
    # the corners are the border colour; the image more than 2 * feather in from its edge is untouched
    assert out[:, 0, 0].mul(255).round().tolist() == [[0x20, 0x40, 0x60]] * 2
    inner = torch.from_numpy(eight_bit(image).astype(np.float32) / 255)[:, 4:-4, 4:-4]
    assert torch.equal(out[:, 2 + 4:2 + 20 - 4, 1 + 2 + 4:1 + 2 + 24 - 4], inner)
    tiny = rest(call(registry, "CRFeatheredBorder", image=image[:, :3, :3], feather_amount=10))[0]
    assert tiny.shape == (2, 23, 23, 3)  # rings that meet in the middle stop there


def test_range_and_simple_lists(registry):
    values = rest(call(registry, "CRIntegerRangeList", start=2, end=11, step=3, loops=3, ping_pong=True))[0]
    once = list(range(2, 11, 3))
    assert values == once + once[::-1] + once
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRIntegerRangeList", start=-99999, end=99999, step=1, loops=999)
    assert caught.value.input == "loops"

    # numpy's arange(start, end + step, step), through the operation, rounded; the first value dropped
    arange = [round(float(np.sin(v)), 3) for v in np.arange(0.0, 1.0 + 0.25, 0.25)]
    values = rest(call(registry, "CRFloatRangeList", start=0.0, end=1.0, step=0.25, operation="sin",
                       decimal_places=3, ignore_first_value=True, max_values_per_loop=128, loops=2,
                       ping_pong=True))[0]
    assert values == arange[1:] + arange[:-1][::-1]
    values = rest(call(registry, "CRFloatRangeList", start=1.0, end=0.0, step=0.5, ignore_first_value=False,
                       max_values_per_loop=2, loops=1))[0]
    assert values == [round(float(v), 2) for v in np.arange(1.0, 0.0 - 0.5, -0.5)][:2]  # a step turned downward
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRFloatRangeList", step=0.0)
    assert caught.value.input == "step"
    assert rest(call(registry, "CRSimpleList", list_values=" a \n\n b\n")) == (["a", "b"],)


def test_lists_gathered_back(registry):
    graph = {"1": {"class_type": "CR Simple List", "inputs": {"list_values": "x\nyy\nzzz"}},
             "2": {"class_type": "CR Text List To String", "inputs": {"text_list": ["1", 0]}},
             "3": {"class_type": "CR Integer Range List", "inputs": {"start": 1, "end": 4, "step": 1, "loops": 1,
                                                                    "ping_pong": False}},
             "4": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": ["3", 0],
                                                          "color": 0}},
             "5": {"class_type": "CR Batch Images From List", "inputs": {"image_list": ["4", 0]}}}
    result = run_graph(registry, graph, ["2", "5"])
    assert result.values["2"][0] == "x\nyy\nzzz"
    assert result.values["5"][0].shape == (1 + 2 + 3, 4, 8, 3)


def test_sdxl_prompt_mix_presets_and_style_text(registry):
    texts = {"prompt_positive": "P", "prompt_negative": "N", "style_positive": "S", "style_negative": "T"}
    for preset, want in (("default with no style text", ("P", "P", "P", "N", "N", "N")),
                         ("default with style text", ("PS", "PS", "PS", "NT", "NT", "NT")),
                         ("style boost 1", ("P", "S", "P", "N", "T", "N")),
                         ("style boost 2", ("S", "P", "S", "T", "N", "T")),
                         ("style text to refiner", ("P", "P", "S", "N", "N", "T"))):
        assert rest(call(registry, "CRSDXLPromptMixPresets", preset=preset, **texts)) == want
    assert rest(call(registry, "CRSDXLStyleText", positive_style="a", negative_style="b")) == ("a", "b")


def test_sdxl_base_prompt_encoder_equals_clip_text_encode_sdxl(registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "xl.safetensors", "sdxl")
    sizes = {"width": 1024, "height": 768, "crop_w": 64, "crop_h": 0, "target_width": 896, "target_height": 640}

    def sdxl(g, l):
        return {"class_type": "CLIPTextEncodeSDXL", "inputs": {"clip": ["c", 1], "text_g": g, "text_l": l, **sizes}}

    graph = {"c": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "xl.safetensors"}},
             "e": {"class_type": "CR SDXL Base Prompt Encoder", "inputs": {
                 "base_clip": ["c", 1], "pos_g": "a red fox", "pos_l": "oil painting", "neg_g": "blurry",
                 "neg_l": "lowres", "preset": "preset C", "base_width": 1024, "base_height": 768, "crop_w": 64,
                 "crop_h": 0, "target_width": 896, "target_height": 640}},
             "a": sdxl("a red fox", "oil painting"), "b": sdxl("blurry", "lowres"),
             "s1": sdxl("oil painting", "lowres"), "s2": sdxl("lowres", "lowres")}
    result = run_graph(registry, graph, ["e", "a", "b", "s1", "s2"])
    positive, negative = result.values["e"][:2]
    for got, want in ((positive, result.values["a"][0] + result.values["s1"][0]),
                      (negative, result.values["b"][0] + result.values["s2"][0])):
        assert len(got) == len(want) == 2
        for (cond, options), (cond_want, options_want) in zip(got, want):
            assert torch.equal(cond, cond_want) and torch.equal(options["pooled_output"], options_want["pooled_output"])
            assert {k: options[k] for k in sizes} == {k: options_want[k] for k in sizes}


def test_multi_upscale_resizes_each_step_to_the_original_size_times_its_factor(registry, models):
    write_esrgan(models.models / "upscale_models" / "x2.safetensors", scale=2)
    image = torch.rand(1, 10, 12, 3, generator=torch.Generator().manual_seed(7))
    stack = rest(call(registry, "CRMultiUpscaleStack", upscale_model_1="x2.safetensors", rescale_factor_1=1.5,
                      switch_2="Off", upscale_model_2="x2.safetensors", upscale_model_3="x2.safetensors",
                      rescale_factor_3=0.5))[0]
    assert stack == [("x2.safetensors", 1.5), ("x2.safetensors", 0.5)]
    got = rest(call(registry, "CRApplyMultiUpscale", image=image, resampling_method="nearest", supersample="false",
                    upscale_stack=stack))[0]
    model = call(registry, "LoadUpscaleModel", model_name="x2.safetensors")

    def step(x, width, height):  # the model, then Pillow's bicubic resize of the 8-bit picture, as the pack
        # resizes whatever resampling_method says
        upscaled = call(registry, "ImageUpscaleWithModel", upscale_model=model, image=x)
        picture = image_to_pil(upscaled[0]).resize((width, height), resample=Image.BICUBIC)
        return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None]

    want = step(step(image, 18, 15), 6, 5)  # 12 x 10 times 1.5, then 12 x 10 times 0.5
    assert got.shape == (1, 5, 6, 3) and torch.equal(got, want)


def test_apply_model_merge_equals_merge_simple_in_turn(registry, models):
    write_checkpoint(models.models / "checkpoints" / "other.safetensors", "sd1", seed=1)
    stack = {"class_type": "CR Model Merge Stack", "inputs": {
        "switch_1": "On", "ckpt_name1": "tiny.safetensors", "model_ratio1": 1.0, "clip_ratio1": 1.0,
        "switch_2": "On", "ckpt_name2": "other.safetensors", "model_ratio2": 0.3, "clip_ratio2": 0.6,
        "switch_3": "Off", "ckpt_name3": "None", "model_ratio3": 1.0, "clip_ratio3": 1.0}}
    other = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "other.safetensors"}}
    graph = {"s": stack, "c1": CKPT, "c2": other,
             "a": {"class_type": "CR Apply Model Merge", "inputs": {
                 "model_stack": ["s", 0], "merge_method": "Recursive", "normalise_ratios": "No", "weight_factor": 1.0}},
             # previous * (1 - ratio) + next * ratio: ModelMergeSimple's ratio is the first model's share
             "m": {"class_type": "ModelMergeSimple", "inputs": {"model1": ["c1", 0], "model2": ["c2", 0],
                                                                "ratio": 0.7}},
             "k": {"class_type": "CLIPMergeSimple", "inputs": {"clip1": ["c1", 1], "clip2": ["c2", 1], "ratio": 0.4}}}
    result = run_graph(registry, graph, ["a", "m", "k"])
    model, clip, info = result.values["a"][:3]
    for x, y in zip(weights(model, clip), weights(result.values["m"][0], result.values["k"][0])):
        assert all(torch.allclose(x[k], y[k]) for k in y)
    assert info.endswith("Base Model Name: tiny.safetensors\nModel Name: other.safetensors\nModel Ratio: 0.3\n"
                         "CLIP Ratio: 0.6\n")
    # normalised: each ratio over its kind's sum, rounded to 2 decimals (0.3 / 1.3, 0.6 / 1.6)
    graph["a"]["inputs"]["normalise_ratios"] = "Yes"
    info = run_graph(registry, graph, ["a"]).values["a"][2]
    assert f"Model Ratio: {round(0.3 / 1.3, 2)}\nCLIP Ratio: {round(0.6 / 1.6, 2)}" in info
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CRApplyModelMerge", model_stack=[])
    assert caught.value.input == "model_stack"


def test_index_nodes(registry):
    assert rest(call(registry, "CRIndex", index=7)) == (7,)
    assert rest(call(registry, "CRIndexIncrement", index=5, interval=-3)) == (2, -3)
    assert rest(call(registry, "CRIndexMultiply", index=6, factor=4)) == (24, 4)
    assert rest(call(registry, "CRIndexReset", index=9, reset_to=2)) == (2, 2)
    assert rest(call(registry, "CRTrigger", index=3, trigger_value=3)) == (3, True)
    assert rest(call(registry, "CRTrigger", index=2, trigger_value=3)) == (2, False)


def test_seeded_random_values_are_pythons_random_seeded_as_the_pack(registry):
    import random
    import string

    def drawn(seed):
        return random.Random(seed)

    r = drawn(42)
    want = ["#{:02x}{:02x}{:02x}".format(r.randint(0, 255), r.randint(0, 255), r.randint(0, 255)) for _ in range(4)]
    assert list(rest(call(registry, "CRRandomHexColor", seed=42))) == want
    r = drawn(7)
    want = [f"{r.randint(0, 255)},{r.randint(0, 255)},{r.randint(0, 255)}" for _ in range(4)]
    assert list(rest(call(registry, "CRRandomRGB", seed=7))) == want
    r = drawn(3)
    characters = string.ascii_letters + string.digits
    want = "\n".join("id-" + "".join(r.choice(characters) for _ in range(4)) for _ in range(6))
    assert rest(call(registry, "CRRandomMultilineValues", seed=3, value_type="alphanumeric", rows=6, string_length=4,
                     prepend_text="id-")) == (want,)
    r = drawn(9)
    want = "\n".join("#" + "".join(r.choice("0123456789ABCDEF") for _ in range(6)) for _ in range(3))
    assert rest(call(registry, "CRRandomMultilineColors", seed=9, value_type="hex color", rows=3)) == (want,)
    # matplotlib's XKCD_COLORS keys less their "xkcd:", in its order: the survey's names from its data file
    from importlib import resources
    table = resources.files("graphflow").joinpath("data", "xkcd_colors", "xkcd_colors.txt").read_text("utf-8")
    names = [line.split("\t")[0] for line in table.splitlines() if line]
    assert len(names) == 949 and names[:2] == ["cloudy blue", "dark pastel green"] and names[-1] == "purple"
    r = drawn(13)
    want = "\n".join(r.choice(names) for _ in range(6))
    assert rest(call(registry, "CRRandomMultilineColors", seed=13, value_type="matplotlib xkcd", rows=6)) == (want,)
    r = drawn(5)
    letter, _ = r.choice("HV"), r.choice("123")
    want = "\n".join(letter + "".join(r.choice("123") for _ in range(5)) for _ in range(5))
    assert rest(call(registry, "CRRandomPanelCodes", seed=5)) == (want,)
    gradient = rest(call(registry, "CRRandomRGBGradient", seed=11, rows=4))[0].splitlines()
    positions = [int(line.split(":")[0]) for line in gradient]
    assert len(gradient) == 4 and positions == sorted(set(positions)) and positions[-1] <= 99
    assert rest(call(registry, "CRRandomRGBGradient", seed=11, rows=4)) == \
        rest(call(registry, "CRRandomRGBGradient", seed=11, rows=4))
    for node, inputs, name in (("CRRandomMultilineValues", {"value_type": "custom", "custom_values": ""},
                                "custom_values"),
                               ("CRRandomPanelCodes", {"values": ""}, "values")):
        with pytest.raises(NodeInputError) as caught:
            call(registry, node, **inputs)
        assert caught.value.input == name
