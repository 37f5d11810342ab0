"""JPS Nodes (nodes/pack_nodes_jps.py): the settings, math, switch, text and image nodes against
the pack's formulas written out here (and torch's interpolate / the core LoraLoader), their clear
errors, and UI-format saves and API prompts with the pack's class names that run and round-trip."""

import math
from datetime import datetime

import pytest
import torch
import torch.nn.functional as F

from graphflow.comfy_format import comfy_catalogue, custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.resource_limits import Size
from graphflow.workflow import parse_workflow
from nodes import pack_nodes_jps as jps
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import lora_folders, run_graph, ui_graph, ui_node  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def node(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


ALL_CLASSES = ("SDXL Resolutions (JPS)", "SDXL Basic Settings (JPS)", "SDXL Basic Settings Pipe (JPS)",
               "Generation TXT IMG Settings (JPS)", "Generation Settings (JPS)", "Generation Settings Pipe (JPS)",
               "IP Adapter Settings (JPS)", "IP Adapter Settings Pipe (JPS)", "Revision Settings (JPS)",
               "Revision Settings Pipe (JPS)", "Sampler Scheduler Settings (JPS)", "Integer Switch (JPS)",
               "Image Switch (JPS)", "Latent Switch (JPS)", "Conditioning Switch (JPS)", "Model Switch (JPS)",
               "VAE Switch (JPS)", "ControlNet Switch (JPS)", "Disable Enable Switch (JPS)",
               "Enable Disable Switch (JPS)", "SDXL Fundamentals MultiPipe (JPS)", "Images Masks MultiPipe (JPS)",
               "SDXL Recommended Resolution Calc (JPS)", "Resolution Multiply (JPS)", "Largest Int (JPS)",
               "Multiply Int Int (JPS)", "Multiply Int Float (JPS)", "Multiply Float Float (JPS)",
               "Substract Int Int (JPS)", "Text Concatenate (JPS)", "Get Date Time String (JPS)",
               "Get Image Size (JPS)", "Crop Image Square (JPS)", "Crop Image TargetSize (JPS)",
               "SDXL Prompt Handling (JPS)", "SDXL Prompt Handling Plus (JPS)", "Lora Loader (JPS)")


def test_the_packs_names_are_ours_and_clash_with_no_core_class(registry):
    for name in ALL_CLASSES:
        assert name not in comfy_catalogue()
        assert registry.comfy_node(name).__module__ == "nodes.pack_nodes_jps", name
        assert custom_pack(name) == "ComfyUI_JPS-Nodes"
    assert custom_pack("SDXL Prompt Styler (JPS)") == "ComfyUI_JPS-Nodes"  # left out, still named as the pack's


def test_the_left_out_styler_is_refused_saying_why(registry):
    prompt = {"1": {"class_type": "SDXL Prompt Styler (JPS)", "inputs": {"text_positive_g": "a"}}}
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["1"])
    assert not result.ok and "ComfyUI_JPS-Nodes" in result.problems[0].message
    assert "style files" in result.problems[0].message


def test_resolutions_and_basic_settings(registry):
    for choice in jps.RESOLUTIONS:
        w, h = (int(v) for v in choice.split(" - ")[1].split(" ")[0].split("x"))  # "landscape - 1216x832 (3:2)"
        assert node(registry, "SDXL Resolutions (JPS)", resolution=choice) == (w, h)
    pipe = node(registry, "SDXL Basic Settings (JPS)", resolution="portrait - 832x1216 (2:3)", steps_total=45,
                base_percentage=35, cfg_base=7.5, cfg_refiner=0, ascore_refiner=2.5, clip_skip=-3, filename="x")
    assert pipe == (832, 1216, jps.SAMPLER_NAMES[0], jps.SCHEDULER_NAMES[0], 45, 45 * 35 / 100, 7.5, 7.5, 2.5, -3,
                    "x")  # cfg_refiner 0: the base's
    out = node(registry, "SDXL Basic Settings Pipe (JPS)", sdxl_basic_settings=pipe)
    assert out == (832, 1216, jps.SAMPLER_NAMES[0], jps.SCHEDULER_NAMES[0], 45, int(45 * 35 / 100), 7.5, 7.5, 2.5,
                   -3, "x")
    with pytest.raises(NodeInputError) as caught:
        node(registry, "SDXL Basic Settings Pipe (JPS)", sdxl_basic_settings=(1, 2))
    assert caught.value.input == "sdxl_basic_settings"


def test_generation_settings(registry):
    assert node(registry, "Generation TXT IMG Settings (JPS)", mode="Txt2Img", img_percentage=40) == (1, 0.001)
    assert node(registry, "Generation TXT IMG Settings (JPS)", mode="Img2Img", img_percentage=40) == (2, 40 / 100)
    common = {"img_to_img_strength": 30, "inpainting_strength": 80, "ctrl_strength": 60, "ctrl_start_percent": 10,
              "ctrl_stop_percent": 90, "ctrl_low_threshold": 50, "ctrl_high_threshold": 150,
              "crop_position": "top", "crop_offset": -4, "crop_intpol": "area"}
    crop = ("top", -4, "area")
    assert node(registry, "Generation Settings (JPS)", mode="Image to Image", resfrom="Use Image Resolution",
                **common) == (2, 2, 30 / 100, 0, 0, 0, 0, 0, *crop)
    assert node(registry, "Generation Settings (JPS)", mode="Inpainting", resfrom="Use Settings Resolution",
                **common) == (5, 1, (100 - 80 + 0.001) / 100, 0, 0, 0, 0, 0, *crop)
    canny = node(registry, "Generation Settings (JPS)", mode="CtrlNet Canny", resfrom="Use Settings Resolution",
                 **common)
    assert canny == (3, 1, 0, 60 / 100, 10 / 100, 90 / 100, 50, 150, *crop)
    assert node(registry, "Generation Settings Pipe (JPS)", generation_settings=canny) == \
        (3, 1, 0.0, 0.6, 0.1, 0.9, 50, 150, "top", -4, "area")


def test_ip_adapter_and_revision_settings(registry):
    given = {f"ipa{i}_{k}": v for i in range(1, 5) for k, v in
             (("weight", i / 10), ("wtype", "linear" if i % 2 else "original"), ("noise", i / 20),
              ("start", i / 100), ("stop", 1 - i / 100), ("crop", "left"), ("offset", i))}
    separate = node(registry, "IP Adapter Settings (JPS)", ipa_weight="Use separate IP Adapter weights",
                    ipa_wtype="Use separate IP Adapter wtypes", ipa_noise="Use separate IP Adapter noises",
                    crop_intpol="bicubic", crop_res=448, **given)
    expected = (448, "bicubic", *(v for i in range(1, 5) for v in ("left", i)),
                *(v for i in range(1, 5) for v in (i / 10, "linear" if i % 2 else "original")),
                *(i / 20 for i in range(1, 5)), *(v for i in range(1, 5) for v in (i / 100, 1 - i / 100)))
    assert separate == expected
    shared = node(registry, "IP Adapter Settings (JPS)", crop_res=224, **given)  # the "for all" defaults
    assert shared[10:18] == (0.1, "linear") * 4 and shared[18:22] == (0.05,) * 4
    out = node(registry, "IP Adapter Settings Pipe (JPS)", ip_adapter_settings=separate)
    assert out == expected and len(out) == len(jps.IP_ADAPTER_PIPE_OUTPUTS) == 30
    revision = node(registry, "Revision Settings (JPS)", rev1_strength=2, rev2_strength=3, rev1_noiseaug=0.1,
                    rev2_noiseaug=0.2, rev1_crop="top", rev1_offset=5, rev2_crop="right", rev2_offset=-5,
                    crop_intpol="nearest", crop_res=672)
    assert revision == (672, "nearest", "top", 5, "right", -5, 2, 3, 0.1, 0.2)
    assert node(registry, "Revision Settings Pipe (JPS)", revision_settings=revision) == revision
    assert node(registry, "Sampler Scheduler Settings (JPS)", sampler_name="euler", scheduler="karras") == \
        ("euler", "karras")


def reference_sdxl_size(width, height):
    """The pack's search written out: nearest listed ratio, landscape then portrait then square."""
    listed = [(1536, 640), (1344, 768), (1216, 832), (1152, 896), (896, 1152), (832, 1216), (768, 1344), (640, 1536)]
    best = min(listed, key=lambda size: abs(size[0] / size[1] - width / height))
    return (1024, 1024) if abs(1 - width / height) < abs(best[0] / best[1] - width / height) else best


@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920), (1000, 1000), (3000, 1000), (500, 700), (2, 8192)])
def test_recommended_resolution_is_the_nearest_ratio(registry, size):
    assert node(registry, "SDXL Recommended Resolution Calc (JPS)", target_width=size[0], target_height=size[1]) == \
        reference_sdxl_size(*size)


def test_math_nodes(registry):
    assert node(registry, "Resolution Multiply (JPS)", width=832, height=1216, factor=3) == (832 * 3, 1216 * 3)
    assert node(registry, "Largest Int (JPS)", int_a=7, int_b=-2) == (7, -2, 1)
    assert node(registry, "Largest Int (JPS)", int_a=4, int_b=4) == (4, 4, 0)
    assert node(registry, "Multiply Int Int (JPS)", int_a=-6, int_b=7) == (-42, -42.0)
    assert node(registry, "Multiply Int Float (JPS)", int_a=7, float_b=-1.5) == (math.trunc(7 * -1.5), 7 * -1.5)
    assert node(registry, "Multiply Float Float (JPS)", float_a=2.5, float_b=1.3) == (int(2.5 * 1.3), 2.5 * 1.3)
    assert node(registry, "Substract Int Int (JPS)", int_a=3, int_b=10) == (-7, -7.0)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Multiply Int Int (JPS)", int_a=2 ** 62, int_b=4)
    assert caught.value.input == "int_b"
    # an infinite product (finite factors) is refused naming float_b, not int()'s OverflowError
    for name, inputs in (("Multiply Float Float (JPS)", {"float_a": 1e308, "float_b": 10.0}),
                         ("Multiply Int Float (JPS)", {"int_a": -10, "float_b": 1e308})):
        with pytest.raises(NodeInputError) as caught:
            node(registry, name, **inputs)
        assert caught.value.input == "float_b" and "inf" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:  # an int product past a float's range: named too
        node(registry, "Multiply Int Int (JPS)", int_a=10 ** 200, int_b=10 ** 200)
    assert caught.value.input == "int_b" and "401 digits" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "SDXL Recommended Resolution Calc (JPS)", target_width=100, target_height=0)
    assert caught.value.input == "target_height"


def test_switches(registry):
    assert node(registry, "Integer Switch (JPS)", select=3, int_1=10, int_2=20, int_3=30) == 30
    assert node(registry, "Integer Switch (JPS)", select=9, int_1=10) == 10  # not 2 to 5: the first
    images = [torch.full((1, 2, 2, 3), i / 10) for i in range(5)]
    picked = node(registry, "Image Switch (JPS)", select=4, **{f"img_{i + 1}": im for i, im in enumerate(images)})
    assert picked is images[3]
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Latent Switch (JPS)", select=2, latent_1={"samples": torch.zeros(1, 4, 1, 1)})
    assert caught.value.input == "latent_2"
    for select, compare, match, expected in ((1, 1, "Set to Enable", "enable"), (1, 2, "Set to Enable", "disable"),
                                             (3, 3, "Set to Disable", "disable"), (3, 4, "Set to Disable", "enable")):
        for name in ("Disable Enable Switch (JPS)", "Enable Disable Switch (JPS)"):
            assert node(registry, name, select=select, compare=compare, match=match) == expected


def test_multipipes_pass_their_inputs_on(registry):
    image, mask = torch.zeros(1, 2, 2, 3), torch.ones(1, 2, 2)
    out = node(registry, "Images Masks MultiPipe (JPS)", generation_img=image, ipa2_mask=mask)
    assert out[0] is image and out[5] is mask and out[1] is None
    out = node(registry, "SDXL Fundamentals MultiPipe (JPS)", seed=12)
    assert out[-1] == 12 and out[:-1] == (None,) * 9
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 6, "batch_size": 1, "color": 0}},
              "2": {"class_type": "Images Masks MultiPipe (JPS)", "inputs": {"generation_img": ["1", 0]}},
              "3": {"class_type": "Get Image Size (JPS)", "inputs": {"image": ["2", 0]}}}
    assert run_graph(registry, prompt, ["3"]).values["3"] == (8, 6)  # the unconnected outputs unused: fine


def test_text_nodes(registry):
    texts = {"text1": "a", "text2": "", "text4": "c", "text5": "d"}
    for delimiter, joiner in (("none", ""), ("space", " "), ("comma", ", ")):
        assert node(registry, "Text Concatenate (JPS)", delimiter=delimiter, **texts) == joiner.join(["a", "c", "d"])
    before = datetime.now().strftime("%Y-%m-%d")
    dated = node(registry, "Get Date Time String (JPS)", style="%Y-%m-%d")
    assert dated in (before, datetime.now().strftime("%Y-%m-%d"))  # a run across midnight: either day
    handling = {"Copy Positive_G to Both": ("g", "g"), "Copy Positive_L to Both": ("l", "l"),
                "Ignore Positive_G Input": ("", "l"), "Ignore Positive_L Input": ("g", ""),
                "Combine Positive_G + Positive_L": ("g . l", "g . l"),
                "Combine Positive_L + Positive_G": ("l . g", "l . g"),
                "Use Positive_G + Positive_L": ("g", "l"), "Copy to Both if Empty": ("g", "l")}
    for choice, expected in handling.items():
        assert node(registry, "SDXL Prompt Handling (JPS)", handling=choice, pos_g="g", pos_l="l") == expected
    assert node(registry, "SDXL Prompt Handling (JPS)", handling="Copy to Both if Empty", pos_g="g", pos_l="") == \
        ("g", "g")
    assert node(registry, "SDXL Prompt Handling (JPS)", handling="Copy to Both if Empty", pos_g="", pos_l="l") == \
        ("l", "l")
    plus = node(registry, "SDXL Prompt Handling Plus (JPS)", handling="Use Positive_G + Positive_L", pos_g="g",
                pos_l="l", neg="bad hands", universal_neg="ON")
    assert plus == ("g", "l", "bad hands, " + jps.UNIVERSAL_NEGATIVE)
    assert plus[2].split(", ")[1:4] == ["text", "watermark", "low-quality"]
    assert node(registry, "SDXL Prompt Handling Plus (JPS)", neg="", universal_neg="ON")[2] == jps.UNIVERSAL_NEGATIVE


def test_image_size_and_square_crop(registry):
    image = torch.rand(2, 6, 10, 3)
    assert node(registry, "Get Image Size (JPS)", image=image) == (10, 6)
    # landscape: the 6x6 square, centred at x = 2, moved by the offset where it stays inside
    for position, offset, x in (("center", 0, 2), ("center", 1, 3), ("left", 0, 0), ("right", 0, 4),
                                ("center", 5, 4), ("center", -5, 0), ("top", 0, 2)):
        out = node(registry, "Crop Image Square (JPS)", image=image, crop_position=position, offset=offset,
                   interpolation="bilinear", target_rez=0)
        assert torch.equal(out, image[:, :, x:x + 6, :]), (position, offset)
    portrait = torch.rand(1, 9, 4, 3)
    out = node(registry, "Crop Image Square (JPS)", image=portrait, crop_position="bottom", offset=-2,
               interpolation="bilinear", target_rez=0)
    assert torch.equal(out, portrait[:, 3:7, :, :])
    resized = node(registry, "Crop Image Square (JPS)", image=image, crop_position="center", offset=0,
                   interpolation="bilinear", target_rez=16)
    reference = F.interpolate(image[:, :, 2:8, :].permute(0, 3, 1, 2), size=(16, 16), mode="bilinear")
    assert torch.allclose(resized, reference.permute(0, 2, 3, 1))
    nearest = node(registry, "Crop Image Square (JPS)", image=image, crop_position="left", offset=0,
                   interpolation="nearest", target_rez=8)
    assert torch.equal(nearest, F.interpolate(image[:, :, 0:6, :].permute(0, 3, 1, 2), size=(8, 8),
                                              mode="nearest").permute(0, 2, 3, 1))


def test_target_size_crop(registry):
    image = torch.rand(1, 20, 40, 3)  # 2:1
    out = node(registry, "Crop Image TargetSize (JPS)", image=image, target_w=16, target_h=16, crop_position="left",
               offset=3, interpolation="area")
    # 16 / 2 < 16: the height fits (16), the width becomes 32 and overhangs; offset moves along it
    resized = F.interpolate(image.permute(0, 3, 1, 2), size=(16, 32), mode="area").permute(0, 2, 3, 1)
    assert torch.allclose(out, resized[:, :, 3:19, :])
    out = node(registry, "Crop Image TargetSize (JPS)", image=image, target_w=40, target_h=8, crop_position="bottom",
               offset=0, interpolation="bilinear")
    resized = F.interpolate(image.permute(0, 3, 1, 2), size=(20, 40), mode="bilinear").permute(0, 2, 3, 1)
    assert torch.allclose(out, resized[:, 12:20, :, :])
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Crop Image TargetSize (JPS)", image=image, target_w=0, target_h=8)
    assert caught.value.input == "target_w"


def test_target_size_crop_resizes_the_whole_image_and_refuses_a_resize_past_max_size(registry):
    image = torch.rand(1, 10, 7, 3)
    for mode in ("bilinear", "bicubic", "area", "nearest-exact", "nearest"):
        out = node(registry, "Crop Image TargetSize (JPS)", image=image, target_w=14, target_h=8,
                   crop_position="center", offset=1, interpolation=mode)
        # 14 / 0.7 = 20 >= 8: resized whole to 14x20, rows 7..15 (centred 6, moved 1) kept
        whole = F.interpolate(image.permute(0, 3, 1, 2), size=(20, 14), mode=mode).permute(0, 2, 3, 1)
        assert torch.equal(out, whole[:, 7:15, :, :]), mode
        # why the whole is resized: the crop's rows of the source (7 * 10 / 20 .. 15 * 10 / 20 = 3.5 .. 7.5,
        # widened to 3 .. 8) resized alone give other pixels
        alone = F.interpolate(image[:, 3:8].permute(0, 3, 1, 2), size=(8, 14), mode=mode).permute(0, 2, 3, 1)
        assert mode in ("nearest", "nearest-exact") or not torch.allclose(alone, out), mode
    # an 8 wide, 4096 high image covering 4096x8 would be resized to 4096 x 2,097,152 (about 100 GB)
    tall, wide = torch.rand(1, 4096, 8, 3), torch.rand(1, 8, 4096, 3)
    for picture, name in ((tall, "target_w"), (wide, "target_h")):
        w, h = (4096, 8) if name == "target_w" else (8, 4096)
        with pytest.raises(NodeInputError) as caught:
            node(registry, "Crop Image TargetSize (JPS)", image=picture, target_w=w, target_h=h)
        assert caught.value.input == name and "2097152" in str(caught.value) and "16384" in str(caught.value)
    # the estimate: the target's size out, the whole resized batch as working memory
    estimate = jps.JPSCropImageTargetSize.estimate({"target_w": 4096, "target_h": 8}, {"image": Size(2, 4096, 8)})
    assert estimate.size == Size(2, 8, 4096) and estimate.memory == 2 * 2_097_152 * 4096 * 3 * 4
    assert jps.JPSCropImageTargetSize.estimate({"target_w": 0, "target_h": 8}, {"image": Size(1, 8, 8)}).size is None


def test_lora_loader_switch(registry, lora_folders):
    from nodes.loaders import LoadCheckpoint
    from nodes.pack_nodes import _core
    from tests.test_pack_nodes import weights

    model, clip, _ = _core(LoadCheckpoint, checkpoint="tiny.safetensors")
    off = node(registry, "Lora Loader (JPS)", model=model, clip=clip, switch="Off", lora_name="first.safetensors")
    assert off[0] is model and off[1] is clip
    assert node(registry, "Lora Loader (JPS)", model=model, clip=clip, switch="On", lora_name="None")[0] is model
    on = node(registry, "Lora Loader (JPS)", model=model, clip=clip, switch="On", lora_name="first.safetensors",
              strength_model=0.5, strength_clip=-0.5)
    core = call(registry, "LoadLoRA", model=model, clip=clip, lora_name="first.safetensors", strength_model=0.5,
                strength_clip=-0.5)
    for ours, theirs in zip(weights(*on), weights(*core)):
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_ui_save_with_the_packs_nodes_runs_and_round_trips(registry):
    nodes = [
        ui_node(1, "SDXL Resolutions (JPS)", ["landscape - 1344x768 (16:9)"],
                outputs=[("width", "INT", [1]), ("height", "INT", [2])]),
        ui_node(2, "Resolution Multiply (JPS)", [1024, 1024, 2],
                [("width", "INT", 1, True), ("height", "INT", 2, True)],
                [("width_resized", "INT", [3]), ("height_resized", "INT", [])]),
        ui_node(3, "Integer Switch (JPS)", [2, 0, 0, 0, 0, 0], [("int_2", "INT", 3, True)], [("int_out", "INT", [4])]),
        ui_node(4, "DebugPrint", [], [("ANY", "*", 4, False)]),
        ui_node(5, "SDXL Prompt Handling Plus (JPS)", ["Copy to Both if Empty", "a castle", "", "", "OFF"],
                outputs=[("pos_g", "STRING", []), ("pos_l", "STRING", []), ("neg", "STRING", [])]),
        ui_node(6, "SDXL Basic Settings (JPS)", ["square - 1024x1024 (1:1)", "euler", "normal", 30, 70, 7, 0, 6, -2,
                                                 "JPS"], outputs=[("sdxl_basic_settings", "BASIC_PIPE", [5])]),
        ui_node(7, "SDXL Basic Settings Pipe (JPS)", [], [("sdxl_basic_settings", "BASIC_PIPE", 5, False)],
                [(n, "*", []) for n in jps.JPSSDXLBasicSettingsPipe.outputs]),
    ]
    links = [[1, 1, 0, 2, 0, "INT"], [2, 1, 1, 2, 1, "INT"], [3, 2, 0, 3, 1, "INT"], [4, 3, 0, 4, 0, "INT"],
             [5, 6, 0, 7, 0, "BASIC_PIPE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["4", "5", "7"])
    assert result.outputs["4"] == {"text": [str(1344 * 2)]}
    assert result.values["5"] == ("a castle", "a castle", "")
    assert result.values["7"] == (1024, 1024, "euler", "normal", 30, int(30 * 70 / 100), 7.0, 7.0, 6.0, -2, "JPS")
    saved = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in saved["nodes"]}
    for n in nodes:
        assert by_id[n["id"]]["type"] == n["type"] and by_id[n["id"]]["widgets_values"] == n["widgets_values"], n


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry):
    prompt = {
        "1": {"class_type": "SDXL Recommended Resolution Calc (JPS)",
              "inputs": {"target_width": 1920, "target_height": 1080}},
        "2": {"class_type": "Largest Int (JPS)", "inputs": {"int_a": ["1", 0], "int_b": ["1", 1]}},
        "3": {"class_type": "Text Concatenate (JPS)",
              "inputs": {"delimiter": "comma", "text1": ["4", 0], "text2": ["4", 1]}},
        "4": {"class_type": "Sampler Scheduler Settings (JPS)", "inputs": {"sampler_name": "dpmpp_2m",
                                                                           "scheduler": "karras"}},
        "5": {"class_type": "EmptyImage", "inputs": {"width": 12, "height": 8, "batch_size": 1, "color": 0}},
        "6": {"class_type": "Crop Image Square (JPS)", "inputs": {"image": ["5", 0], "crop_position": "center",
                                                                  "offset": 0, "interpolation": "lanczos",
                                                                  "target_rez": 16}},
        "7": {"class_type": "Get Image Size (JPS)", "inputs": {"image": ["6", 0]}},
    }
    result = run_graph(registry, prompt, ["2", "3", "7"])
    width, height = reference_sdxl_size(1920, 1080)
    assert result.values["2"] == (max(width, height), min(width, height), int(width > height))
    assert result.values["3"] == ("dpmpp_2m, karras",)
    assert result.values["7"] == (16, 16)
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in api.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}
