"""filliptm's ComfyUI_Fill-Nodes, round 2 (nodes/pack_nodes_fill2.py): each node against an independent
reference (the pack's loops written out here pixel by pixel and column by column; Pillow's own
operations in the pack's order; scipy's labelling; Python's Mersenne Twister's published first draw);
inputs and defaults against the pack's INPUT_TYPES; errors by input name; a UI-format save and an API
prompt under the pack's class names."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.server.comfyui_object_info import object_info
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_fill import _images, _refused


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def _levels(image):
    return np.clip(image.numpy() * 255.0, 0, 255).astype(np.uint8)


# -- inputs as the pack declares them --------------------------------------------------------------

SAMPLERS = ["euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
            "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_sde_gpu",
            "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
            "ipndm", "ipndm_v", "deis", "ddim", "uni_pc", "uni_pc_bh2"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"]
SLICED_SAMPLER = [("model", "MODEL", None, None, None, None), ("positive", "CONDITIONING", None, None, None, None),
    ("negative", "CONDITIONING", None, None, None, None), ("seed", "INT", 0, 0, 0xffffffffffffffff, None),
    ("steps", "INT", 20, 1, 10000, None), ("cfg", "FLOAT", 7.0, 0.0, 100.0, None),
    ("sampler_name", "COMBO", None, None, None, None), ("scheduler", "COMBO", None, None, None, None),
    ("denoise", "FLOAT", 1.0, 0.0, 1.0, 0.01), ("input_type", "COMBO", None, None, None, None),
    ("x_slices", "INT", 2, 1, 8, None), ("y_slices", "INT", 2, 1, 8, None), ("overlap", "FLOAT", 0.25, 0.0, 0.9, 0.01),
    ("batch_size", "INT", 1, 1, 64, None), ("use_sliced_conditioning", "BOOLEAN", True, None, None, None)]
SLICED_PLUS = (("latent_image", "LATENT"), ("vae", "VAE"), ("image", "IMAGE"))
SLICED_BASIC = (("latent_image", "LATENT"), ("image", "IMAGE"), ("vae", "VAE"))
# class: [(input, type, default, min, max, step)] in INPUT_TYPES order (None where the pack gives none)
PACK_INPUTS = {
    "FL_SamplerStrings": [(name, "BOOLEAN", False, None, None, None) for name in SAMPLERS],
    "FL_SchedulerStrings": [(name, "BOOLEAN", False, None, None, None) for name in SCHEDULERS],
    "FL_KsamplerSettings": [("Aspect_Ratio", "COMBO", "1:1___XL 1024x1024", None, None, None),
                            ("rotation", "COMBO", None, None, None, None), ("batch", "INT", 1, 1, 10000, None),
                            ("Pass_1_steps", "INT", 25, 1, 10000, None), ("Pass_2_steps", "INT", 25, 1, 10000, None),
                            ("Pass_1_CFG", "FLOAT", 6.0, -10.0, 100.0, 0.1),
                            ("Pass_2_CFG", "FLOAT", 6.0, -10.0, 100.0, 0.1),
                            ("Pass_2_denoise", "FLOAT", 0.5, -10.0, 100.0, 0.001),
                            ("scale_factor", "FLOAT", 1.5, 1.0, 10.0, 0.1),
                            ("sampler", "COMBO", None, None, None, None),
                            ("scheduler", "COMBO", None, None, None, None)],
    "FL_PromptBasic": [(name, "STRING", "", None, None, None) for name in ("prepend", "prompt", "append")],
    "FL_PromptMulti": [("positive_text", "STRING", "", None, None, None),
                       ("negative_text", "STRING", "", None, None, None),
                       ("name_prefix", "STRING", "prompt_", None, None, None)],
    "FL_RandomNumber": [("min_value", "FLOAT", 0.0, -1000000.0, 1000000.0, 0.1),
                        ("max_value", "FLOAT", 1.0, -1000000.0, 1000000.0, 0.1), ("seed", "INT", 0, 0, 1000000, None)],
    "FL_ImageListToImageBatch": [("images", "IMAGE", None, None, None, None)],
    "FL_ImageBatchToImageList": [("image", "IMAGE", None, None, None, None)],
    "FL_GradGenerator": [("width", "INT", 512, 64, 4096, None), ("height", "INT", 512, 64, 4096, None),
                         ("color_mode", "COMBO", None, None, None, None),
                         ("interpolation", "COMBO", None, None, None, None),
                         ("gradient_colors", "STRING", "[]", None, None, None)],
    "FL_ImageAdjuster": [("image", "IMAGE", None, None, None, None), ("hue", "FLOAT", 0, -180, 180, 1),
                         ("saturation", "FLOAT", 0, -100, 100, 1), ("brightness", "FLOAT", 0, -100, 100, 1),
                         ("contrast", "FLOAT", 0, -100, 100, 1), ("sharpness", "FLOAT", 0, 0, 100, 1)],
    "FL_Ripple": [("images", "IMAGE", None, None, None, None), ("amplitude", "FLOAT", 10.0, 0.1, 50.0, 0.1),
                  ("frequency", "FLOAT", 20.0, 1.0, 100.0, 0.1), ("phase", "FLOAT", 0.0, 0.0, 360.0, 1.0),
                  ("center_x", "FLOAT", 50.0, 0.0, 100.0, 0.1), ("center_y", "FLOAT", 50.0, 0.0, 100.0, 0.1),
                  ("modulation", "FLOAT", 0.0, 0.0, 1.0, 0.01)],
    "FL_SeparateMaskComponents": [("mask", "IMAGE", None, None, None, None)],
    "FL_PasteOnCanvas": [("image", "IMAGE", None, None, None, None), ("canvas_width", "INT", 512, 64, 4096, 32),
                         ("canvas_height", "INT", 512, 64, 4096, 32)]
    + [(f"background_{c}", "INT", 255, 0, 255, 1) for c in ("red", "green", "blue")]
    + [("padding", "INT", 0, 0, 512, 1), ("resize_algorithm", "COMBO", None, None, None, None),
       ("include_alpha", "BOOLEAN", False, None, None, None), ("use_full_mask", "BOOLEAN", False, None, None, None),
       ("mask", "IMAGE", None, None, None, None), ("bg_image_optional", "IMAGE", None, None, None, None)],
    "FL_MadLibGenerator": [("template", "STRING", "", None, None, None)]
    + [(f"delimiter_{i}", "STRING", f"({i})", None, None, None) for i in range(1, 6)]
    + [(f"word_list_{i}", "STRING", "", None, None, None) for i in range(1, 6)]
    + [("seed", "INT", -1, -1, 0xffffffffffffffff, None)],
    "FL_SaveWebPImage(SaveImage)": [("images", "IMAGE", None, None, None, None),
                                    ("filename_prefix", "STRING", "ComfyUI", None, None, None),
                                    ("quality", "INT", 80, 1, 100, 1)],
    "FL_CaptionToCSV": [("image_directory", "STRING", "", None, None, None)],
    "FL_SaveCSV": [("csv_data", "CSV", None, None, None, None), ("output_directory", "STRING", "", None, None, None),
                   ("filename", "STRING", "captions.csv", None, None, None)],
    "FL_CaptionSaver_V2": [("input_type", "COMBO", None, None, None, None),
                           ("caption_input_type", "COMBO", None, None, None, None),
                           ("folder_name", "STRING", "output_folder", None, None, None),
                           ("overwrite", "BOOLEAN", True, None, None, None),
                           ("downsize_factor", "COMBO", None, None, None, None),
                           ("images", "IMAGE", None, None, None, None),
                           ("input_directory", "STRING", "", None, None, None),
                           ("single_caption", "STRING", "Your caption here", None, None, None),
                           ("multiple_captions", "STRING", "", None, None, None)],
    "FL_SaveAndDisplayImage": [("images", "IMAGE", None, None, None, None),
                               ("filename_prefix", "STRING", "ComfyUI", None, None, None)],
    "FL_ZipSave": [("input_directory", "STRING", "", None, None, None),
                   ("output_directory", "STRING", "", None, None, None),
                   ("zip_filename", "STRING", "archive.zip", None, None, None)],
    "FL_InpaintCrop": [("mode", "COMBO", "free", None, None, None), ("image", "IMAGE", None, None, None, None),
                       ("mask", "MASK", None, None, None, None), ("invert_mask", "BOOLEAN", False, None, None, None),
                       ("fill_mask_holes", "BOOLEAN", True, None, None, None),
                       ("use_gpu", "BOOLEAN", False, None, None, None), ("context_pixels", "INT", 10, 0, None, 1),
                       ("context_factor", "FLOAT", 1.01, 1.0, 100.0, 0.01),
                       ("force_square", "BOOLEAN", False, None, None, None),
                       ("forced_size", "INT", 1024, 32, 2048, 32), ("minimum_size", "INT", 512, 32, 2048, 32),
                       ("maximum_size", "INT", 1024, 32, 2048, 32), ("target_size", "INT", 1024, 32, 2048, 32),
                       ("free_rescale", "FLOAT", 1.0, 0.01, 100.0, 0.01), ("free_padding", "INT", 32, 8, 512, 8),
                       ("optional_context_mask", "MASK", None, None, None, None)],
    "FL_Inpaint_Stitch": [("stitch", "STITCH", None, None, None, None),
                          ("inpainted_image", "IMAGE", None, None, None, None)],
    "FL_PixelArtShader": [("images", "IMAGE", None, None, None, None), ("pixel_size", "FLOAT", 15.0, 1.0, 100.0, 1.0),
                          ("color_depth", "FLOAT", 50.0, 1.0, 255.0, 1.0),
                          ("use_aspect_ratio", "BOOLEAN", True, None, None, None),
                          ("palette_image", "IMAGE", None, None, None, None), ("palette_colors", "INT", 16, 2, 16, 1),
                          ("mask", "IMAGE", None, None, None, None)],
    "FL_SaveImages": [("images", "IMAGE", None, None, None, None), ("base_directory", "STRING", "./output", None, None,
                                                                   None),
                      ("folder_structure", "STRING", "[]", None, None, None),
                      ("file_name_template", "STRING", "image_{index}.png", None, None, None),
                      ("start_index", "INT", 1, 0, 1000000, None), ("metadata", "STRING", "", None, None, None)],
    "FL_LoadImage": [("root_directory", "STRING", "./", None, None, None),
                     ("selected_file", "STRING", "", None, None, None)],
    "FL_KsamplerPlus": SLICED_SAMPLER + [(name, kind, None, None, None, None) for name, kind in SLICED_PLUS],
    "FL_KsamplerBasic": SLICED_SAMPLER + [(name, kind, None, None, None, None) for name, kind in SLICED_BASIC],
    "FL_PathTypeChecker": [("input_path", "STRING", "", None, None, None)],
    "FL_DirectoryCrawl": [("directory_path", "STRING", "", None, None, None),
                          ("file_type", "COMBO", None, None, None, None), ("max_files", "INT", 100, 1, 10000, None)],
    "FL_MirrorAndAppendCaptions": [("image_directory", "STRING", "X://path/to/images", None, None, None),
                                   ("caption_extension", "COMBO", ".txt", None, None, None),
                                   ("additional_text", "STRING", "Frame", None, None, None),
                                   ("text_position", "COMBO", "append", None, None, None)],
}
PACK_OUTPUTS = {"FL_SamplerStrings": ["STRING"], "FL_SchedulerStrings": ["STRING"],
                # the pack's last two are ComfyUI's sampler / scheduler lists (the editor's COMBO): text here
                "FL_KsamplerSettings": ["INT"] * 5 + ["FLOAT"] * 4 + ["STRING"] * 2,
                "FL_PromptBasic": ["STRING"], "FL_PromptMulti": ["STRING"] * 3, "FL_RandomNumber": ["INT", "FLOAT"],
                "FL_SeparateMaskComponents": ["IMAGE", "MASK_MAPPING"], "FL_MadLibGenerator": ["STRING"],
                "FL_SaveWebPImage(SaveImage)": ["IMAGE", "STRING"], "FL_CaptionToCSV": ["CSV"], "FL_SaveCSV": [],
                "FL_CaptionSaver_V2": ["STRING"], "FL_ZipSave": ["STRING"],
                "FL_InpaintCrop": ["STITCH", "IMAGE", "MASK"], "FL_SaveImages": ["STRING"],
                "FL_LoadImage": ["IMAGE", "STRING"],
                **dict.fromkeys(("FL_KsamplerPlus", "FL_KsamplerBasic"),
                                ["MODEL", "CONDITIONING", "CONDITIONING", "LATENT", "VAE", "IMAGE"]),
                "FL_PathTypeChecker": ["PATH"], "FL_DirectoryCrawl": ["IMAGE", "STRING"],
                "FL_MirrorAndAppendCaptions": ["STRING"]}
PACK_OPTIONAL = {"FL_KsamplerSettings": 2, "FL_PromptMulti": 2, "FL_RandomNumber": 0, "FL_Ripple": 1,
                 "FL_PasteOnCanvas": 10, "FL_MadLibGenerator": 11, "FL_CaptionSaver_V2": 5,
                 "FL_InpaintCrop": 15, "FL_PixelArtShader": 1, "FL_SaveImages": 5, "FL_LoadImage": 1,
                 "FL_KsamplerPlus": 15, "FL_KsamplerBasic": 15}


def test_inputs_and_outputs_are_the_packs(registry):
    info = object_info(registry)
    for name, inputs in PACK_INPUTS.items():
        entry = info[name]
        order = entry["input_order"].get("required", []) + entry["input_order"].get("optional", [])
        assert order == [i[0] for i in inputs], name
        declared = {**entry["input"].get("required", {}), **entry["input"].get("optional", {})}
        for input_name, kind, default, low, high, step in inputs:
            spec = declared[input_name]
            assert (spec[0] if isinstance(spec[0], str) else "COMBO") == kind, (name, input_name)
            options = spec[1] if len(spec) > 1 else {}
            for key, want in (("default", default), ("min", low), ("max", high), ("step", step)):
                if want is not None:
                    assert options.get(key) == want, (name, input_name, key)
        assert entry["output"] == PACK_OUTPUTS.get(name, ["IMAGE"]), name
        assert entry["category"].startswith("🏵️Fill Nodes/") or name == "FL_KsamplerBasic", name
        if name in PACK_OPTIONAL:
            assert entry["input_order"].get("required", []) == [i[0] for i in inputs[:PACK_OPTIONAL[name]]], name
    assert info["FL_ImageAdjuster"]["output_node"]  # the pack's OUTPUT_NODE: a workflow may end at it
    assert info["FL_PasteOnCanvas"]["category"] == "🏵️Fill Nodes/utility"  # the pack's lower case
    assert info["FL_PromptMulti"]["output_is_list"] == [True, True, True]
    assert info["FL_ImageBatchToImageList"]["output_is_list"] == [True]
    assert info["FL_ImageListToImageBatch"]["is_input_list"] is True


def test_the_packs_classes_are_ours_and_its_others_are_named(registry):
    import nodes.pack_nodes_fill2 as fill2
    from graphflow.comfy_format import FILL_LATER, FILL_LEFT_OUT
    ours = [cls for cls in registry if cls.__module__ == fill2.__name__]
    assert len(ours) == len(PACK_INPUTS)
    for cls in ours:
        name = cls.comfy.class_types[0]
        assert name in PACK_INPUTS and registry.comfy_node(name) is cls, name
        assert custom_pack(name) == "ComfyUI_Fill-Nodes", name
    assert not set(PACK_INPUTS) & (set(FILL_LATER) | set(FILL_LEFT_OUT))


# -- sampler settings, prompts, numbers ------------------------------------------------------------


def test_sampler_and_scheduler_strings_join_the_chosen_in_the_packs_order(registry):
    chosen = {"uni_pc_bh2": True, "euler": True, "dpmpp_2m": True}
    assert call(registry, "FillSamplerStrings", **chosen) == "euler,dpmpp_2m,uni_pc_bh2"
    assert call(registry, "FillSamplerStrings") == ""
    assert call(registry, "FillSchedulerStrings", beta=True, normal=True, simple=True) == "normal,simple,beta"


def test_ksampler_settings_give_the_ratio_turned_for_portrait(registry):
    out = call(registry, "FillKsamplerSettings", Aspect_Ratio="16:9_SVD 576x1024", rotation="portrait", batch=3,
               Pass_2_denoise=0.4, sampler="dpmpp_2m", scheduler="karras")
    assert out == (576, 1024, 3, 25, 25, 6.0, 6.0, 0.4, 1.5, "dpmpp_2m", "karras")
    assert call(registry, "FillKsamplerSettings", Aspect_Ratio="21:9__XL 1536x640")[:2] == (1536, 640)


def test_prompts_join_as_they_are_and_pair_line_by_line(registry):
    assert call(registry, "FillPromptBasic", prepend="a ", prompt="cat", append=", sharp") == "a cat, sharp"
    positive, negative, names = call(registry, "FillPromptMulti", positive_text=" red \n\n blue\ngreen ",
                                     negative_text="blurry\n", name_prefix="p")
    assert positive == ["red", "blue", "green"] and negative == ["blurry"] * 3 and names == ["p1", "p2", "p3"]
    positive, negative, names = call(registry, "FillPromptMulti", positive_text="", negative_text="a\nb")
    assert positive == ["", ""] and negative == ["a", "b"] and names == ["prompt_1", "prompt_2"]
    _refused(registry, "FillPromptMulti", "positive_text", "no prompt lines", positive_text=" \n", negative_text="")


def test_random_number_follows_pythons_mersenne_twister(registry):
    # random.seed(1); random.random() is 0.13436424411240122 (CPython's documented generator)
    whole, fraction = call(registry, "FillRandomNumber", min_value=0.0, max_value=1.0, seed=1)
    assert fraction == 0.13436424411240122 and whole == 0
    whole, fraction = call(registry, "FillRandomNumber", min_value=-50.0, max_value=50.0, seed=1)
    assert fraction == pytest.approx(-50 + 100 * 0.13436424411240122)
    assert whole == math.trunc(-50 + 100 * 0.8474337369372327)  # the second draw, cut towards 0
    assert call(registry, "FillRandomNumber", seed=0) == call(registry, "FillRandomNumber", seed=0)
    state = random.getstate()
    call(registry, "FillRandomNumber", seed=7)
    assert random.getstate() == state  # the global generator is left alone
    _refused(registry, "FillRandomNumber", "max_value", "min_value", min_value=2.0, max_value=1.0)


# -- lists and batches -----------------------------------------------------------------------------


def test_batch_to_list_and_back(registry):
    images = _images(batch=3)
    parts = call(registry, "FillImageBatchToImageList", image=images)
    assert len(parts) == 3 and all(torch.equal(p, images[i:i + 1]) for i, p in enumerate(parts))
    assert torch.equal(call(registry, "FillImageListToImageBatch", images=parts), images)
    other = _images(seed=1, batch=1, height=24, width=16)
    joined = call(registry, "FillImageListToImageBatch", images=[images[:1], other])
    # lanczos to the first's 12 × 16, centre-cropped to its aspect: the middle 12 rows' worth of 24 × 16
    assert joined.shape == (2, 12, 16, 3) and torch.equal(joined[0], images[0])
    _refused(registry, "FillImageListToImageBatch", "images", "channels",
             images=[images[:1], _images(batch=1, channels=4)])


# -- gradients -------------------------------------------------------------------------------------


def _pack_gradient(width, height, interpolation, stops):
    """The pack's loop written out column by column, with the easing applied to each column's
    position (what its code means; it indexes its colours by the eased positions and fails)."""
    positions, colors = [s["pos"] for s in stops], [s["color"] for s in stops]
    image = np.zeros((height, width, 3), dtype=np.float32)
    for i in range(width):
        pos = i / (width - 1)
        if interpolation == "Ease In":
            pos = pos ** 2
        elif interpolation == "Ease Out":
            pos = 1 - (1 - pos) ** 2
        elif interpolation == "Ease In-Out":
            pos = 2 * pos ** 2 if pos < 0.5 else 1 - (-2 * pos + 2) ** 2 / 2
        if pos <= positions[0]:
            color = colors[0]
        elif pos >= positions[-1]:
            color = colors[-1]
        else:
            for j in range(len(positions) - 1):
                if positions[j] <= pos < positions[j + 1]:
                    t = (pos - positions[j]) / (positions[j + 1] - positions[j])
                    color = [(1 - t) * colors[j][k] + t * colors[j + 1][k] for k in range(3)]
                    break
        image[:, i] = [c / 255.0 for c in color]
    return image


STOPS = [{"pos": 0.1, "color": [255, 0, 0]}, {"pos": 0.5, "color": [0, 255, 0, 255]},
         {"pos": 0.5, "color": [0, 0, 255]}, {"pos": 0.8, "color": [255, 255, 255]}]


@pytest.mark.parametrize("interpolation", ["Linear", "Ease In", "Ease Out", "Ease In-Out"])
def test_gradient_follows_the_packs_stops(registry, interpolation):
    out = call(registry, "FillGradGenerator", width=101, height=64, color_mode="RGB", interpolation=interpolation,
               gradient_colors=json.dumps(STOPS))
    assert out.shape == (1, 64, 101, 3)
    np.testing.assert_allclose(out[0].numpy(), _pack_gradient(101, 64, interpolation, STOPS), atol=1e-6)


def test_gradient_in_hsv_is_pillows_hsv_of_the_8_bit_gradient(registry):
    from PIL import Image
    out = call(registry, "FillGradGenerator", width=64, height=64, color_mode="HSV", gradient_colors=json.dumps(STOPS))
    rgb = (_pack_gradient(64, 64, "Linear", STOPS) * 255).astype(np.uint8)
    want = np.asarray(Image.fromarray(rgb).convert("HSV")).astype(np.float32) / 255.0
    np.testing.assert_array_equal(out[0].numpy(), want)


@pytest.mark.parametrize("text, match", [("[]", "non-empty"), ("{", "not JSON"), ('[{"pos": 0.2}]', "stop 0"),
                                         ('[{"pos": 0.5, "color": [1, 2, 3]}, {"pos": 0.1, "color": [1, 2, 3]}]',
                                          "ascending")])
def test_gradient_refuses_bad_stops_naming_them(registry, text, match):
    _refused(registry, "FillGradGenerator", "gradient_colors", match, gradient_colors=text)


# -- adjusting -------------------------------------------------------------------------------------


def test_image_adjuster_is_pillows_operations_in_the_packs_order(registry):
    from PIL import Image, ImageEnhance, ImageFilter
    images = _images(batch=2, height=20, width=24)
    out = call(registry, "FillImageAdjuster", image=images, hue=30, saturation=-20, brightness=15, contrast=-10,
               sharpness=40)
    for image, got in zip(images, out):
        h, s, v = Image.fromarray(_levels(image)).convert("HSV").split()
        h = Image.fromarray(((np.asarray(h).astype(np.int64) + 30) % 256).astype(np.uint8))
        s = Image.fromarray(np.clip(np.asarray(s) - 20 * 255 / 100, 0, 255).astype(np.uint8))
        picture = Image.merge("HSV", (h, s, v)).convert("RGB")
        picture = ImageEnhance.Contrast(ImageEnhance.Brightness(picture).enhance(1.15)).enhance(0.9)
        picture = picture.filter(ImageFilter.UnsharpMask(radius=2, percent=140, threshold=3))
        np.testing.assert_array_equal(got.numpy(), np.asarray(picture).astype(np.float32) / 255.0)


def test_image_adjuster_brightness_scales_the_levels(registry):
    gray = torch.full((1, 4, 4, 3), 100 / 255.0)
    out = call(registry, "FillImageAdjuster", image=gray, brightness=50)
    assert torch.equal(out, torch.full((1, 4, 4, 3), 150 / 255.0))  # Pillow's blend with black at 1.5


# -- ripple ----------------------------------------------------------------------------------------


def _pack_ripple(levels, index, batch, amplitude, frequency, phase, center_x, center_y, modulation):
    height, width = levels.shape[:2]
    cx, cy = int(center_x / 100 * width), int(center_y / 100 * height)
    factor = 1 + modulation * math.sin(2 * math.pi * index / batch)
    out = np.empty_like(levels)
    for y in range(height):
        for x in range(width):
            angle = math.hypot(x - cx, y - cy) / (frequency * factor) * 2 * math.pi + math.radians(phase)
            sx = min(max(x + int(amplitude * factor * math.sin(angle)), 0), width - 1)
            sy = min(max(y + int(amplitude * factor * math.cos(angle)), 0), height - 1)
            out[y, x] = levels[sy, sx]
    return out


def test_ripple_moves_each_pixel_by_the_packs_offsets(registry):
    images = _images(batch=3, height=14, width=18)
    settings = dict(amplitude=3.5, frequency=6.0, phase=40.0, center_x=30.0, center_y=70.0, modulation=0.5)
    out = call(registry, "FillRipple", images=images, **settings)
    for index, (image, got) in enumerate(zip(images, out)):
        want = _pack_ripple(_levels(image), index, 3, **settings)
        np.testing.assert_array_equal(got.numpy(), want.astype(np.float32) / 255.0)


# -- mask components -------------------------------------------------------------------------------


def test_separate_mask_components_are_scipys_8_connected_regions(registry):
    from scipy import ndimage
    generator = torch.Generator().manual_seed(3)
    masks = (torch.rand(2, 16, 20, 3, generator=generator) > 0.8).float() * torch.rand(2, 16, 20, 3,
                                                                                        generator=generator)
    parts, mapping = call(registry, "FillSeparateMaskComponents", mask=masks)
    want, owners = [], []
    for index, mask in enumerate(masks):
        labels, count = ndimage.label(mask.mean(dim=-1).numpy() > 0, structure=np.ones((3, 3)))
        # OpenCV's 8-connected labelling scans 2 × 2 blocks, two rows at a time: a region's number
        # follows the first block (in that scan) it touches; a block's pixels are all one region
        first_block = [min((y // 2, x // 2) for y, x in np.argwhere(labels == label)) for label in range(1, count + 1)]
        for label in sorted(range(1, count + 1), key=lambda label: first_block[label - 1]):
            want.append(torch.from_numpy(labels == label)[..., None] * mask)
            owners.append(index)
    assert parts.shape == (len(want), 16, 20, 3) and len(want) > 4
    assert torch.equal(parts, torch.stack(want)) and mapping.tolist() == owners
    _refused(registry, "FillSeparateMaskComponents", "mask", "no pixel", mask=torch.zeros(1, 4, 4, 3))


def test_separate_mask_components_checks_the_memory_before_building_them(registry):
    from tests.test_pack_nodes_essentials_params import run_context
    from graphflow.resource_limits import RunLimits
    mask = torch.zeros(1, 8, 8, 3)
    mask[0, ::3, ::3] = 1.0  # 9 single pixels, none touching: 9 regions
    needed = 9 * 8 * 8 * 3 * 4  # float32 bytes of 9 pictures of 8 × 8 × 3
    with run_context(RunLimits(ram_bytes=needed)):
        assert call(registry, "FillSeparateMaskComponents", mask=mask)[0].shape == (9, 8, 8, 3)
    with run_context(RunLimits(ram_bytes=needed - 1)), pytest.raises(NodeInputError, match="9 regions") as caught:
        call(registry, "FillSeparateMaskComponents", mask=mask)
    assert caught.value.input == "mask"


# -- pasting on a canvas --------------------------------------------------------------------------


def _pack_paste(image, mask, canvas, padding, algorithm):
    """The pack's cut_and_paste for one RGBA image on one RGBA canvas, with torchvision's
    masks_to_boxes and resize and Pillow's lanczos."""
    from PIL import Image
    from torchvision.ops import masks_to_boxes
    from torchvision.transforms.functional import InterpolationMode
    from torchvision.transforms.functional import resize as tv_resize
    canvas = canvas.clone()
    if not mask.any():
        return canvas
    x1, y1, x2, y2 = masks_to_boxes(mask[None])[0].long().tolist()
    masked = image.clone()
    masked[..., 3] = masked[..., 3] * mask
    cropped = masked[y1:y2 + 1, x1:x2 + 1]
    height, width = canvas.shape[:2]
    room_w, room_h = width - 2 * padding, height - 2 * padding
    scale = min(room_w / cropped.shape[1], room_h / cropped.shape[0])
    new_h, new_w = int(cropped.shape[0] * scale), int(cropped.shape[1] * scale)
    if algorithm == "lanczos":
        picture = Image.fromarray((cropped.numpy() * 255).astype("uint8")).resize((new_w, new_h), Image.LANCZOS)
        resized = torch.from_numpy(np.array(picture)).float() / 255.0
    else:
        mode = {"bilinear": InterpolationMode.BILINEAR, "nearest": InterpolationMode.NEAREST,
                "bicubic": InterpolationMode.BICUBIC}[algorithm]
        resized = tv_resize(cropped.permute(2, 0, 1), [new_h, new_w], interpolation=mode).permute(1, 2, 0)
    top, left = padding + (room_h - new_h) // 2, padding + (room_w - new_w) // 2
    region = canvas[top:top + new_h, left:left + new_w].clone()
    alpha = resized[..., 3:4]
    canvas[top:top + new_h, left:left + new_w] = torch.cat(
        [resized[..., :3] * alpha + region[..., :3] * (1 - alpha), torch.maximum(region[..., 3:], alpha)], dim=-1)
    return canvas


@pytest.mark.parametrize("algorithm", ["bilinear", "nearest", "bicubic", "lanczos"])
def test_paste_on_canvas_is_the_packs_crop_fit_and_blend(registry, algorithm):
    images = _images(batch=2, height=30, width=40, channels=4)
    masks = torch.zeros(2, 30, 40)
    masks[0, 4:20, 6:31] = torch.rand(16, 25, generator=torch.Generator().manual_seed(5))
    masks[1, 10:12, 3:39] = 1.0
    out = call(registry, "FillPasteOnCanvas", image=images, mask=masks, canvas_width=96, canvas_height=64,
               background_red=10, background_green=200, background_blue=30, padding=5, resize_algorithm=algorithm,
               include_alpha=True)
    plain = torch.tensor([10, 200, 30, 255]) / 255.0
    for image, mask, got in zip(images, masks, out):
        want = _pack_paste(image, mask, plain.expand(64, 96, 4), 5, algorithm)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_paste_on_canvas_over_a_background_picture_with_a_shared_mask(registry):
    import torch.nn.functional as F
    images = _images(batch=2, height=20, width=20)
    background = _images(seed=4, batch=1, height=10, width=10)
    mask = torch.zeros(1, 20, 20, 3)
    mask[0, 5:15, 2:9] = 1.0
    out = call(registry, "FillPasteOnCanvas", image=images, mask=mask, bg_image_optional=background, canvas_width=64,
               canvas_height=64)
    canvas = F.interpolate(torch.cat([background, torch.ones(1, 10, 10, 1)], -1).permute(0, 3, 1, 2), size=(64, 64),
                           mode="bilinear", align_corners=False).permute(0, 2, 3, 1)[0]
    for image, got in zip(images, out):
        rgba = torch.cat([image, torch.ones(20, 20, 1)], -1)
        torch.testing.assert_close(got, _pack_paste(rgba, mask[0, ..., 0], canvas, 0, "bilinear")[..., :3], atol=1e-5,
                                   rtol=0)
    _refused(registry, "FillPasteOnCanvas", "mask", "use_full_mask", image=images)
    full = call(registry, "FillPasteOnCanvas", image=images, use_full_mask=True, canvas_width=64, canvas_height=64)
    assert full.shape == (2, 64, 64, 3)
    _refused(registry, "FillPasteOnCanvas", "padding", "no room", image=images, use_full_mask=True, padding=256)


# -- mad libs --------------------------------------------------------------------------------------


def _pack_madlib(template, seed, lists):
    result = template
    for index, (delimiter, text) in enumerate(lists):
        words = [w.strip() for w in text.split("\n") if w.strip()]
        import hashlib
        rng = random.Random(int(hashlib.md5(f"{seed}_{index}_{''.join(words)}".encode()).hexdigest(), 16))
        while delimiter in result:
            result = result.replace(delimiter, rng.choice(words), 1)
    return result


def test_madlib_draws_each_list_from_the_packs_md5_seeded_generator(registry):
    lists = [("(1)", "cat\n dog \n\nfox"), ("(2)", "red\nblue"), ("(3)", ""), ("(4)", "x"), ("(5)", "")]
    template = "a (1) and a (2) (1), (4)(1)"
    inputs = {f"delimiter_{i + 1}": d for i, (d, _) in enumerate(lists)}
    inputs.update({f"word_list_{i + 1}": w for i, (_, w) in enumerate(lists)})
    for seed in (-1, 0, 12345):
        got = call(registry, "FillMadLibGenerator", template=template, seed=seed, **inputs)
        assert got == _pack_madlib(template, seed, lists) and "(" not in got
    _refused(registry, "FillMadLibGenerator", "word_list_3", "no words", template="(3)", **inputs)
    _refused(registry, "FillMadLibGenerator", "delimiter_2", "empty", template="t", **{**inputs, "delimiter_2": ""})
    _refused(registry, "FillMadLibGenerator", "word_list_4", "a word holds it", template="(4)",
             **{**inputs, "word_list_4": "(4)"})


# -- files ---------------------------------------------------------------------------------------


def test_save_webp_writes_comfyuis_names_at_the_quality(registry, tmp_folders):
    import io

    from PIL import Image
    images = _images(batch=2, height=10, width=14)
    (tmp_folders.outputs / "sub").mkdir()
    (tmp_folders.outputs / "sub" / "shot_00007_.png").write_bytes(b"")  # numbering follows any file of the prefix
    out, note = call(registry, "FillSaveWebPImage", images=images, filename_prefix="sub/shot", quality=55)
    assert out is images and note == "Saved 2 WebP image(s)"
    for index, image in enumerate(images):
        path = tmp_folders.outputs / "sub" / f"shot_{8 + index:05d}_.webp"
        reference = io.BytesIO()
        Image.fromarray(_levels(image)).save(reference, format="WEBP", quality=55)
        np.testing.assert_array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(reference)))
    with pytest.raises(ValueError, match="stay inside"):  # the prefix is checked as the workflow is read
        call(registry, "FillSaveWebPImage", images=images, filename_prefix="../out")


def test_caption_csv_lists_the_folders_pictures_and_saves_inside_the_outputs(registry, tmp_folders):
    import csv
    import io

    from PIL import Image
    folder = tmp_folders.inputs / "set"
    folder.mkdir()
    for name in ("b.PNG", "a.jpg", "c.bmp", "d.jpeg"):
        Image.new("RGB", (4, 4)).save(folder / name, format="PNG" if name != "a.jpg" else "JPEG")
    (folder / "a.txt").write_text("  a red, \"quoted\" cat \n", encoding="utf-8")
    (folder / "b.txt").write_text("ünïcode", encoding="utf-8")
    data = call(registry, "FillCaptionToCSV", image_directory="set")
    want = io.StringIO()
    csv.writer(want).writerows([["image_file", "caption"], ["a.jpg", 'a red, "quoted" cat'], ["b.PNG", "ünïcode"],
                                ["d.jpeg", "No caption found"]])
    assert data == want.getvalue().encode("utf-8") and b"\r\n" in data
    call(registry, "FillSaveCSV", csv_data=data, output_directory="tables/x", filename="caps")
    assert (tmp_folders.outputs / "tables" / "x" / "caps.csv").read_bytes() == data
    call(registry, "FillSaveCSV", csv_data=data)
    assert (tmp_folders.outputs / "captions.csv").read_bytes() == data
    _refused(registry, "FillSaveCSV", "output_directory", csv_data=data, output_directory="../../etc")
    _refused(registry, "FillSaveCSV", "filename", csv_data=data, filename="../x.csv")
    _refused(registry, "FillCaptionToCSV", "image_directory", "only inside", image_directory="/etc")


def _outside_links(tmp_folders, tmp_path, folder):
    """folder with a.png of its own, a.txt and b.png linking to a secret caption and picture outside
    the inputs and outputs folders."""
    from PIL import Image
    secret = tmp_path / "secret"
    secret.mkdir(parents=True)
    (secret / "s.txt").write_text("TOP SECRET", encoding="utf-8")
    Image.new("RGB", (3, 3), (9, 9, 9)).save(secret / "s.png")
    folder.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(folder / "a.png")
    (folder / "a.txt").symlink_to(secret / "s.txt")
    (folder / "b.png").symlink_to(secret / "s.png")


def test_caption_nodes_read_no_link_leading_out_of_their_folder(registry, tmp_folders, tmp_path):
    import csv
    import io
    _outside_links(tmp_folders, tmp_path, tmp_folders.inputs / "caps")
    want = io.StringIO()
    csv.writer(want).writerows([["image_file", "caption"], ["a.png", "No caption found"]])
    assert call(registry, "FillCaptionToCSV", image_directory="caps") == want.getvalue().encode("utf-8")
    call(registry, "FillCaptionSaverV2", input_type="Directory Input", input_directory="caps", folder_name="saved")
    assert sorted(p.name for p in (tmp_folders.outputs / "saved").iterdir()) == ["a.png", "a.txt"]
    _outside_links(tmp_folders, tmp_path / "again", tmp_folders.outputs / "set")
    call(registry, "FillMirrorAndAppendCaptions", image_directory="set")
    folder = tmp_folders.outputs / "set"
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a.txt", "a_Mirror.png", "b.png"]
    assert (tmp_path / "again" / "secret" / "s.txt").read_text() == "TOP SECRET"  # the link's target untouched


def test_folder_readers_refuse_a_folder_of_too_many_entries(registry, tmp_folders, monkeypatch):
    import nodes.pack_nodes_fill as fill
    from PIL import Image
    for root in (tmp_folders.inputs, tmp_folders.outputs):
        (root / "many" / "sub").mkdir(parents=True)
        for name in ("a.png", "b.png", "sub/c.png"):
            Image.new("RGB", (2, 2)).save(root / "many" / name)
    monkeypatch.setattr(fill, "MOST_FOLDER_FILES", 2)  # a.png, b.png and sub: 3 entries
    for node_type, input_name, inputs in (
            ("FillCaptionToCSV", "image_directory", {}),
            ("FillCaptionSaverV2", "input_directory", {"input_type": "Directory Input"}),
            ("FillDirectoryCrawl", "directory_path", {}),
            ("FillZipSave", "input_directory", {}),
            ("FillMirrorAndAppendCaptions", "image_directory", {})):
        _refused(registry, node_type, input_name, "more than 2 files and folders in 'many'",
                 **{input_name: "many"}, **inputs)


def test_caption_saver_v2_saves_images_and_folders_with_cleaned_captions(registry, tmp_folders):
    from PIL import Image
    images = _images(batch=3, height=9, width=13)
    note = call(registry, "FillCaptionSaverV2", images=images, caption_input_type="Multiple Captions",
                multiple_captions="one: #1\n\n two\n", folder_name="caps", downsize_factor=2)
    assert note == "Saved 3 images (downsized by factor 2) and captions in 'caps'"
    folder = tmp_folders.outputs / "caps"
    for index, (image, caption) in enumerate(zip(images, ["one 1", "two", "two"])):
        want = Image.fromarray(_levels(image)).resize((6, 4), Image.LANCZOS)
        np.testing.assert_array_equal(np.asarray(Image.open(folder / f"image_{index}.png")), np.asarray(want))
        assert (folder / f"image_{index}.txt").read_text(encoding="utf-8") == caption
    call(registry, "FillCaptionSaverV2", images=images[:1], folder_name="caps", overwrite=False, single_caption="new")
    assert (folder / "image_0_1.txt").read_text() == "new" and (folder / "image_0.txt").read_text() == "one 1"
    source = tmp_folders.inputs / "raw"
    source.mkdir()
    Image.new("RGB", (8, 6), (200, 10, 10)).save(source / "shot.JPG", format="JPEG")
    (source / "skip.txt").write_text("not a picture")
    call(registry, "FillCaptionSaverV2", input_type="Directory Input", input_directory="raw", folder_name="caps")
    assert np.asarray(Image.open(folder / "shot.png")).shape == (6, 8, 3)
    assert (folder / "shot.txt").read_text() == "Your caption here"
    _refused(registry, "FillCaptionSaverV2", "images", "not connected")
    _refused(registry, "FillCaptionSaverV2", "multiple_captions", "no caption", images=images,
             caption_input_type="Multiple Captions")
    _refused(registry, "FillCaptionSaverV2", "folder_name", images=images, folder_name="../x")


def test_caption_saver_v2_saves_a_cmyk_jpeg_as_pillows_rgb(registry, tmp_folders):
    from PIL import Image
    source = tmp_folders.inputs / "print"
    source.mkdir()
    pixels = np.random.default_rng(8).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    Image.fromarray(pixels, mode="CMYK").save(source / "ink.jpg", format="JPEG")
    call(registry, "FillCaptionSaverV2", input_type="Directory Input", input_directory="print", folder_name="out")
    want = Image.open(source / "ink.jpg").convert("RGB")
    saved = Image.open(tmp_folders.outputs / "out" / "ink.png")
    assert saved.mode == "RGB" and np.array_equal(np.asarray(saved), np.asarray(want))


def test_save_and_display_saves_comfyuis_png_and_gives_the_images_on(registry, tmp_folders):
    from PIL import Image
    images = _images(batch=2, height=6, width=5)
    assert call(registry, "FillSaveAndDisplayImage", images=images) is images
    for index, image in enumerate(images):
        saved = np.asarray(Image.open(tmp_folders.outputs / f"ComfyUI_{index + 1:05d}_.png"))
        np.testing.assert_array_equal(saved, _levels(image))


def test_zip_save_zips_a_folder_of_the_outputs(registry, tmp_folders, tmp_path):
    import zipfile
    source = tmp_folders.outputs / "caps"
    (source / "deep").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "deep" / "b.bin").write_bytes(bytes(range(256)) * 40)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (source / "leak.txt").symlink_to(secret)  # leads out of the outputs folder: left out
    path = call(registry, "FillZipSave", input_directory="caps", output_directory="caps", zip_filename="pack")
    assert path == "caps/pack.zip"
    with zipfile.ZipFile(tmp_folders.outputs / path) as zipped:
        assert zipped.namelist() == ["a.txt", "deep/b.bin"]
        assert zipped.read("deep/b.bin") == bytes(range(256)) * 40 and zipped.read("a.txt") == b"alpha"
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in zipped.infolist())
    again = call(registry, "FillZipSave", input_directory="caps", output_directory="caps", zip_filename="pack.zip")
    with zipfile.ZipFile(tmp_folders.outputs / again) as zipped:  # the archive is not zipped into itself
        assert zipped.namelist() == ["a.txt", "deep/b.bin"]
    _refused(registry, "FillZipSave", "input_directory", "inside the outputs", input_directory="../..")
    _refused(registry, "FillZipSave", "input_directory", "no folder", input_directory="nothing")
    _refused(registry, "FillZipSave", "zip_filename", "file name", input_directory="caps", zip_filename="a/b.zip")


def test_save_images_numbers_files_in_the_folder_tree(registry, tmp_folders):
    from PIL import Image
    images = _images(batch=2, height=6, width=5, channels=4)
    tree = json.dumps([{"name": "a", "children": [{"name": "b", "children": []}, {"name": "c", "children": []}]},
                       {"name": "d", "children": []}])  # the pack nests every name in the one before: a/b/c/d
    first = call(registry, "FillSaveImages", images=images, folder_structure=tree, metadata="seed 5")
    assert first == "a/b/c/d/image_1.png, a/b/c/d/image_2.png"
    folder = tmp_folders.outputs / "a" / "b" / "c" / "d"
    for index, image in enumerate(images, start=1):
        np.testing.assert_array_equal(np.asarray(Image.open(folder / f"image_{index}.png")), _levels(image))
        assert (folder / f"image_{index}_metadata.txt").read_text(encoding="utf-8") == "seed 5"
    # taken names are skipped: the first image looks from 1 (to 3), the second from 2 (to 4)
    again = call(registry, "FillSaveImages", images=images, folder_structure=tree)
    assert again == "a/b/c/d/image_3.png, a/b/c/d/image_4.png"
    named = call(registry, "FillSaveImages", images=images[:1, ..., :3], base_directory="./output/runs",
                 file_name_template="shot_{index:04d}.jpg", start_index=7)
    assert named == "runs/shot_0007.jpg" and Image.open(tmp_folders.outputs / named).format == "JPEG"
    _refused(registry, "FillSaveImages", "file_name_template", "only field", images=images,
             file_name_template="{index.__class__}.png")
    _refused(registry, "FillSaveImages", "file_name_template", "ending in", images=images, file_name_template="x.tif")
    _refused(registry, "FillSaveImages", "folder_structure", "not JSON", images=images, folder_structure="[")
    for on_disk in ("/etc/evil", "\\srv\\x", "C:\\Users\\x", "c:/x"):
        _refused(registry, "FillSaveImages", "base_directory", "path on disk", images=images, base_directory=on_disk)
    assert not (tmp_folders.outputs / "etc").exists()
    _refused(registry, "FillSaveImages", "folder_structure", "inside the output", images=images,
             folder_structure=json.dumps([{"name": "..", "children": [{"name": "..", "children": []}]}]))


def test_load_image_reads_the_selected_file_inside_the_inputs(registry, tmp_folders, tmp_path):
    from PIL import Image
    (tmp_folders.inputs / "shots").mkdir()
    rgba = np.random.default_rng(3).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_folders.inputs / "shots" / "a.png")
    Image.fromarray(rgba[..., 0]).save(tmp_folders.inputs / "shots" / "grey.png")
    image, path = call(registry, "FillLoadImage", root_directory="shots", selected_file="shots/a.png")
    assert path == "shots/a.png" and torch.equal(image[0], torch.from_numpy(rgba.astype(np.float32) / 255.0))
    grey, _ = call(registry, "FillLoadImage", selected_file="./shots/grey.png")
    want = np.repeat(rgba[..., :1], 3, axis=-1).astype(np.float32) / 255.0
    assert torch.equal(grey[0], torch.from_numpy(want))  # made RGB (the pack gives a [1, H, W] tensor)
    Image.fromarray(rgba).save(tmp_folders.inputs / "top.png")
    for written in (".//top.png", ".//shots/a.png"):  # the pack's editor's "./" + "/" + the file
        image, _ = call(registry, "FillLoadImage", selected_file=written)
        assert torch.equal(image[0], torch.from_numpy(rgba.astype(np.float32) / 255.0)), written
    empty, text = call(registry, "FillLoadImage")
    assert torch.equal(empty, torch.zeros(1, 1, 1, 3)) and text == ""
    Image.fromarray(rgba).save(tmp_path / "outside.png")
    _refused(registry, "FillLoadImage", "selected_file", "inputs folder", selected_file=str(tmp_path / "outside.png"))
    _refused(registry, "FillLoadImage", "selected_file", "no file", selected_file="shots/none.png")
    _refused(registry, "FillLoadImage", "root_directory", "no folder", root_directory="nowhere")


def test_path_type_checker_tells_absolute_from_relative(registry):
    assert call(registry, "FillPathTypeChecker", input_path="  ") == "Empty path provided."
    assert call(registry, "FillPathTypeChecker", input_path=" /data/x.png ") == "Absolute path"
    for text in ("shots/a.png", "./a", "../b", "http://x/y"):  # the pack's pathlib reads these as relative here
        assert call(registry, "FillPathTypeChecker", input_path=text) == "Relative path", text


def test_directory_crawl_pads_the_folders_pictures_and_joins_its_texts(registry, tmp_folders, tmp_path):
    from PIL import Image
    folder = tmp_folders.inputs / "crawl"
    (folder / "deep").mkdir(parents=True)
    generator = np.random.default_rng(4)
    small, tall = (generator.integers(0, 256, shape, dtype=np.uint8) for shape in ((3, 5, 3), (6, 2, 3)))
    Image.fromarray(small).save(folder / "b.PNG")
    Image.fromarray(tall).save(folder / "deep" / "a.bmp")
    Image.fromarray(small[..., 0]).save(folder / "c.gif")
    (folder / "note.txt").write_text("first", encoding="utf-8")
    (folder / "deep" / "more.txt").write_text("second ü", encoding="utf-8")
    outside = tmp_path / "secret.txt"
    outside.write_text("outside")
    (folder / "leak.txt").symlink_to(outside)  # leads out of the folder: left out
    images, text = call(registry, "FillDirectoryCrawl", directory_path="crawl")
    assert images.shape == (3, 6, 5, 3) and text == ""
    # sorted by path: b.PNG, c.gif, deep/a.bmp; each padded with black at the right and bottom
    for index, picture in enumerate((small, np.repeat(small[..., :1], 3, axis=-1), tall)):
        want = np.zeros((6, 5, 3), dtype=np.float32)
        want[:picture.shape[0], :picture.shape[1]] = picture / 255.0
        np.testing.assert_allclose(images[index].numpy(), want, atol=1e-7)
    assert call(registry, "FillDirectoryCrawl", directory_path="crawl", max_files=1)[0].shape == (1, 3, 5, 3)
    blank, text = call(registry, "FillDirectoryCrawl", directory_path="crawl", file_type="text")
    assert text == "second ü\n---\nfirst" and blank.shape == (1, 1, 1, 3)
    _refused(registry, "FillDirectoryCrawl", "directory_path", "give a folder")
    _refused(registry, "FillDirectoryCrawl", "directory_path", "inputs folder", directory_path="/etc")


def test_mirror_and_append_captions_doubles_a_set_in_place(registry, tmp_folders):
    from PIL import Image
    folder = tmp_folders.outputs / "set"
    folder.mkdir()
    pixels = np.random.default_rng(5).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "a.png")
    Image.fromarray(pixels[::-1]).save(folder / "b.PNG")
    (folder / "a.txt").write_text(" a cat \n", encoding="utf-8")
    assert call(registry, "FillMirrorAndAppendCaptions", image_directory="set", text_position="prepend") == "set"
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "a_Mirror.png")), pixels[:, ::-1])
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "b_Mirror.PNG")), pixels[::-1, ::-1])
    assert (folder / "a.txt").read_text(encoding="utf-8") == "Frame_0, a cat"
    assert (folder / "a_Mirror.txt").read_text(encoding="utf-8") == "Frame_1, a cat"
    assert not (folder / "b.txt").exists() and not (folder / "b_Mirror.txt").exists()
    Image.fromarray(pixels).save(folder / "c.jpg", format="PNG")  # a PNG named .jpg: its mirror is a JPEG
    Image.new("RGBA", (2, 2)).save(folder / "d.jpeg", format="PNG")  # RGBA, which JPEG can't hold
    _refused(registry, "FillMirrorAndAppendCaptions", "image_directory", "d_Mirror.jpeg", image_directory="set")
    assert Image.open(folder / "c_Mirror.jpg").format == "JPEG"
    _refused(registry, "FillMirrorAndAppendCaptions", "image_directory", "outputs folder")
    _refused(registry, "FillMirrorAndAppendCaptions", "image_directory", "outputs folder", image_directory="../..")


# -- inpaint crop and stitch ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def picture():
    image = _images(seed=9, batch=2, height=64, width=80)
    mask = torch.zeros(1, 64, 80)
    mask[0, 20:30, 30:50] = 1.0  # grown by 10 (context_pixels) to rows 15..34, columns 25..54
    return image, mask


def test_inpaint_crop_free_pads_the_grown_area_to_a_multiple(registry, picture):
    image, mask = picture
    stitch, cropped, cropped_mask = call(registry, "FillInpaintCrop", image=image, mask=mask)
    # 30 columns padded to 32 around column 39: 23..54; 20 rows to 32 around row 24: 8..39
    assert (stitch.x, stitch.y) == (23, 8) and torch.equal(cropped, image[:, 8:40, 23:55])
    assert torch.equal(cropped_mask, mask[:, 8:40, 23:55])
    inpainted = torch.zeros_like(cropped)
    out = call(registry, "FillInpaintStitch", stitch=stitch, inpainted_image=inpainted)
    assert torch.equal(out, image * (1 - mask[..., None]))  # only the mask's area is replaced


def test_inpaint_crop_long_side_rescales_the_picture_by_bislerp(registry, picture):
    from graphflow.images import bislerp
    image, mask = picture
    stitch, cropped, cropped_mask = call(registry, "FillInpaintCrop", image=image, mask=mask, mode="long side",
                                         target_size=64)
    # the longer side, 30, to 64: the picture to floor(80 · 64 / 30) × floor(64 · 64 / 30) = 170 × 136
    big = bislerp(image.movedim(-1, 1), 170, 136).movedim(1, -1)
    assert (stitch.rescale_x, stitch.rescale_y) == (170 / 80, 136 / 64)
    # corners floor(25 · 2.125) .. floor(54 · 2.125), floor(15 · 2.125) .. floor(34 · 2.125)
    assert (stitch.x, stitch.y) == (53, 31) and torch.equal(cropped, big[:, 31:73, 53:115])
    torch.testing.assert_close(cropped_mask, bislerp(mask[:, None], 170, 136)[:, 0, 31:73, 53:115])
    inpainted = torch.rand(2, 42, 62, 3, generator=torch.Generator().manual_seed(2))
    out = call(registry, "FillInpaintStitch", stitch=stitch, inpainted_image=inpainted)
    # back to round(62 / 2.125) × round(42 / 2.125) = 29 × 20 at (round(53 / 2.125), round(31 / 2.125)) = (25, 15);
    # the mask as the pack rescales it: transposed, the batch as channels, then stretched over the crop
    small = bislerp(inpainted.movedim(-1, 1), 29, 20)
    skewed = bislerp(cropped_mask.transpose(1, 2)[None], 29, 20)[0].transpose(1, 2)  # [1, 29, 20]
    blend = torch.nn.functional.interpolate(skewed[:, None], size=(20, 29), mode="bilinear")
    want = image.movedim(-1, 1).clone()
    want[:, :, 15:35, 25:54] = blend * small + (1 - blend) * want[:, :, 15:35, 25:54]
    torch.testing.assert_close(out, want.movedim(1, -1))


def test_inpaint_crop_squares_and_forces_as_the_pack(registry, picture):
    from graphflow.images import bislerp
    image, mask = picture
    # forced with force_square: the 30 × 30 square around (39, 24), not rescaled (the pack drops its factor)
    stitch, cropped, _ = call(registry, "FillInpaintCrop", image=image, mask=mask, mode="forced", force_square=True,
                              forced_size=64)
    assert (stitch.x, stitch.y, stitch.rescale_x) == (24, 9, 1.0) and torch.equal(cropped, image[:, 9:39, 24:54])
    # forced: the longer side 30 to 64, then a 64 × 64 square around the scaled area's middle
    stitch, cropped, _ = call(registry, "FillInpaintCrop", image=image, mask=mask, mode="forced", forced_size=64)
    big = bislerp(image.movedim(-1, 1), 170, 136).movedim(1, -1)
    # scaled area 53..114 × 31..72: middle (83, 51), so 51..114 × 19..82
    assert (stitch.x, stitch.y) == (51, 19) and torch.equal(cropped, big[:, 19:83, 51:115])
    # range with force_square: the square's side 30 below 64 is brought to 64, squared to 64
    stitch, cropped, _ = call(registry, "FillInpaintCrop", image=image, mask=mask, mode="range", force_square=True,
                              minimum_size=64, maximum_size=128)
    assert cropped.shape[1:3] == (64, 64)
    # a range the area is inside leaves it as it is
    stitch, cropped, _ = call(registry, "FillInpaintCrop", image=image, mask=mask, mode="range", minimum_size=32,
                              maximum_size=64, context_pixels=20)  # grown to columns 20..59, rows 10..39
    assert stitch.rescale_x == 1.0 and torch.equal(cropped, image[:, 10:40, 20:60])


def test_inpaint_crop_fills_holes_inverts_and_passes_an_empty_mask(registry, picture):
    image, _ = picture
    ring = torch.zeros(1, 64, 80)
    ring[0, 10:40, 10:40] = 1.0
    ring[0, 15:35, 15:35] = 0.0
    _, _, filled = call(registry, "FillInpaintCrop", image=image, mask=ring, context_pixels=0, free_padding=8)
    assert bool((filled[0, 5:35, 5:35] == 1).all())  # 10..39 padded to 32 from 9: the hole is filled
    _, _, kept = call(registry, "FillInpaintCrop", image=image, mask=ring, context_pixels=0, free_padding=8,
                      fill_mask_holes=False)
    assert not bool((kept == 1).all())
    empty = torch.zeros(1, 64, 80)
    stitch, cropped, same = call(registry, "FillInpaintCrop", image=image, mask=empty)
    assert cropped is image and same is empty and (stitch.x, stitch.y) == (0, 0)
    stitch, cropped, _ = call(registry, "FillInpaintCrop", image=image, mask=empty, invert_mask=True,
                              fill_mask_holes=False)
    assert torch.equal(cropped, image)  # the whole picture is masked
    _refused(registry, "FillInpaintCrop", "mask", "image's size", image=image, mask=torch.ones(1, 8, 8))
    _refused(registry, "FillInpaintStitch", "stitch", "FL Inpaint Crop", stitch={"x": 0}, inpainted_image=image)


# -- pixel art -------------------------------------------------------------------------------------


def _pack_pixel_art(image, pixel_size, depth, aspect, palette, mask):
    """The pack's pixel_art_effect on one picture (on the CPU; the pack's is CUDA only)."""
    from PIL import Image
    pixels = torch.tensor(np.array(Image.fromarray(_levels(image)))).float() / 255.0
    height, width = pixels.shape[:2]
    size_x, size_y = (pixel_size, pixel_size / (width / height)) if aspect else (pixel_size, pixel_size)
    small = torch.nn.functional.interpolate(pixels.permute(2, 0, 1)[None], size=(int(height / size_y),
                                                                                int(width / size_x)), mode="nearest")
    out = torch.nn.functional.interpolate(small, size=(height, width), mode="nearest")[0].permute(1, 2, 0)
    out = torch.floor(out * depth) / depth
    if palette is not None:
        out = palette[torch.argmin(torch.cdist(out.reshape(-1, 3), palette), dim=1)].reshape(out.shape)
    if mask is not None:
        weight = Image.fromarray(_levels(mask)).resize((width, height), Image.LANCZOS).convert("L")
        weight = (torch.tensor(np.array(weight)).float() / 255.0)[..., None].expand(-1, -1, 3)
        out = out * weight + pixels * (1 - weight)
    return torch.from_numpy((out.numpy() * 255).astype(np.uint8).astype(np.float32) / 255.0)


def test_pixel_art_is_the_packs_cells_levels_palette_and_mask(registry):
    from sklearn.cluster import KMeans
    images = _images(seed=6, batch=2, height=30, width=40)
    palette_picture = _images(seed=7, batch=1, height=8, width=8)
    masks = _images(seed=8, batch=1, height=15, width=20)
    out = call(registry, "FillPixelArtShader", images=images, pixel_size=5.0, color_depth=6.0,
               palette_image=palette_picture, palette_colors=5, mask=masks)
    centres = KMeans(n_clusters=5, random_state=42).fit(_levels(palette_picture[0]).reshape(-1, 3)).cluster_centers_
    palette = torch.from_numpy(centres.astype(np.float32) / 255.0)
    for image, got in zip(images, out):
        torch.testing.assert_close(got, _pack_pixel_art(image, 5.0, 6.0, True, palette, masks[0]), atol=0, rtol=0)
    plain = call(registry, "FillPixelArtShader", images=images, pixel_size=5.0, color_depth=50.0)
    # with the aspect ratio, 40 / 5 = 8 cells across and 30 / (5 · 30 / 40) = 8 down
    assert len(torch.unique(plain[0, 0, :, 0])) <= 8 and len(torch.unique(plain[0, :, 0, 0])) <= 8
    for image, got in zip(images, plain):
        torch.testing.assert_close(got, _pack_pixel_art(image, 5.0, 50.0, True, None, None), atol=0, rtol=0)
    square = call(registry, "FillPixelArtShader", images=images, pixel_size=5.0, use_aspect_ratio=False)
    torch.testing.assert_close(square[1], _pack_pixel_art(images[1], 5.0, 50.0, False, None, None), atol=0, rtol=0)
    _refused(registry, "FillPixelArtShader", "pixel_size", "no whole cell", images=images, pixel_size=50.0)
    _refused(registry, "FillPixelArtShader", "images", "channels", images=_images(channels=4), mask=masks)


# -- sliced samplers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(registry):
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blue", "clip": ["1", 1]}},
    }
    values = run_graph(registry, graph, ["1", "2", "3"]).values
    return values["1"][0], values["2"][0], values["3"][0], values["1"][2]


def test_one_slice_is_ksampler(registry, demo):
    model, positive, negative, _ = demo
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))}
    settings = dict(model=model, positive=positive, negative=negative, seed=3, steps=2, cfg=5.0,
                    sampler_name="euler", scheduler="karras", denoise=0.8)
    out = call(registry, "FillKsamplerPlus", latent_image=latent, x_slices=1, y_slices=1, overlap=0.0,
               use_sliced_conditioning=False, **settings)
    assert out[0] is model and out[1] is positive and out[5] is None
    assert torch.equal(out[3]["samples"], call(registry, "KSampler", latent_image=latent, **settings)["samples"])


@pytest.mark.parametrize("node_type", ["FillKsamplerPlus", "FillKsamplerBasic"])
def test_image_input_is_encoded_sampled_and_decoded(registry, demo, node_type):
    model, positive, negative, vae = demo
    image = torch.rand(1, 32, 24, 3, generator=torch.Generator().manual_seed(4))
    settings = dict(model=model, positive=positive, negative=negative, seed=3, steps=2, cfg=5.0,
                    sampler_name="euler", scheduler="karras", denoise=0.6)
    out = call(registry, node_type, input_type="image", image=image, vae=vae, x_slices=1, y_slices=1, overlap=0.0,
               use_sliced_conditioning=False, **settings)
    encoded = call(registry, "VAEEncode", pixels=image, vae=vae)
    want = call(registry, "KSampler", latent_image=encoded, **settings)
    assert torch.equal(out[3]["samples"], want["samples"]) and out[4] is vae
    assert torch.equal(out[5], call(registry, "VAEDecode", samples=want, vae=vae))
    _refused(registry, node_type, "vae", "both image and vae", input_type="image", image=image, **settings)
    _refused(registry, node_type, "image", "both image and vae", input_type="image", vae=vae, **settings)


# ramps over 3 and 4 latent pixels: 0.5 (1 - cos(π k / (n - 1))) for Plus, (k / (n - 1))^0.3 for Basic
RAMPS = {True: {3: [0.0, 0.5, 1.0], 4: [0.0, 0.25, 0.75, 1.0]},
         False: {3: [0.0, 0.5 ** 0.3, 1.0], 4: [0.0, (1 / 3) ** 0.3, (2 / 3) ** 0.3, 1.0]}}


@pytest.mark.parametrize("node_type, cosine", [("FillKsamplerPlus", True), ("FillKsamplerBasic", False)])
def test_slices_are_ksampler_runs_with_stronger_prompts_blended_over_the_overlaps(registry, demo, node_type, cosine):
    model, positive, negative, _ = demo
    latent = {"samples": torch.randn(1, 4, 8, 10, generator=torch.Generator().manual_seed(2))}
    settings = dict(model=model, steps=2, cfg=5.0, sampler_name="euler", scheduler="karras", denoise=1.0)
    out = call(registry, node_type, positive=positive, negative=negative, seed=4, latent_image=latent, x_slices=2,
               y_slices=2, overlap=0.9, **settings)[3]["samples"]
    # slices of 4 × 5 grown by int(4 · 0.9) = 3 rows and int(5 · 0.9) = 4 columns on their inner sides
    slices = [(0, 7, 0, 9), (0, 7, 1, 10), (1, 8, 0, 9), (1, 8, 1, 10)]
    stronger = lambda cond: [(c * 1.2, dict(o)) for c, o in cond]  # noqa: E731
    want = torch.zeros(1, 4, 8, 10)
    for index, (top, bottom, left, right) in enumerate(slices):
        part = call(registry, "KSampler", positive=stronger(positive), negative=stronger(negative), seed=4 + index,
                    latent_image={"samples": latent["samples"][:, :, top:bottom, left:right]}, **settings)["samples"]
        weight = torch.ones(bottom - top, right - left)
        rows, columns = torch.tensor(RAMPS[cosine][3]), torch.tensor(RAMPS[cosine][4])
        if top > 0:
            weight[:3] *= rows[:, None]
        if bottom < 8:
            weight[-3:] *= rows.flip(0)[:, None]
        if left > 0:
            weight[:, :4] *= columns[None]
        if right < 10:
            weight[:, -4:] *= columns.flip(0)[None]
        want[:, :, top:bottom, left:right] = want[:, :, top:bottom, left:right] * (1 - weight) + part * weight
    torch.testing.assert_close(out, want, atol=1e-6, rtol=1e-5)
    # 9 columns in 2 slices of 4 without overlap: no slice reaches the last column, left 0 as the help says
    uneven = call(registry, node_type, positive=positive, negative=negative, seed=4, x_slices=2, y_slices=1,
                  overlap=0.0, latent_image={"samples": latent["samples"][..., :9]}, **settings)[3]["samples"]
    assert not uneven[..., 8].any() and uneven[..., :8].ne(0).all()
    _refused(registry, node_type, "batch_size", "different sizes", positive=positive, negative=negative,
             latent_image={"samples": torch.zeros(1, 4, 8, 9)}, use_sliced_conditioning=False, batch_size=2, **settings)
    _refused(registry, node_type, "latent_image", "not connected", positive=positive, negative=negative, **settings)


def test_sliced_controlnet_hints_are_cut_as_the_pack_cuts_them():
    import torch.nn.functional as F

    from graphflow.models.controlnet import ControlApplied
    from nodes.pack_nodes_fill2 import _sliced_conditioning
    first = ControlApplied(object(), torch.rand(1, 24, 40, 3), 0.7)
    second = ControlApplied(object(), torch.rand(1, 12, 16, 3), 0.5, previous=first)
    cond = [(torch.ones(1, 3, 8), {"control": second, "pooled_output": torch.ones(1, 8)})]
    region, canvas, tile = (16, 8, 56, 40), (80, 48), (40, 32)  # a slice 40 × 32 pixels of an 80 × 48 latent
    (emb, options), = _sliced_conditioning(cond, region, canvas, tile, "positive")
    assert torch.equal(emb, torch.full((1, 3, 8), 1.2)) and torch.equal(options["pooled_output"], torch.ones(1, 8))
    for got, applied in ((options["control"], second), (options["control"].previous, first)):
        hint = applied.image.movedim(-1, 1)
        height, width = hint.shape[2:]
        # resize_region with (height, width) read as (width, height): x by height / 80, y by width / 48
        x1, x2 = math.floor(16 * height / 80), math.ceil(56 * height / 80)
        y1, y2 = math.floor(8 * width / 48), math.ceil(40 * width / 48)
        want = F.interpolate(hint[:, :, y1:y2, x1:x2], size=(40, 32), mode="nearest-exact")  # (w, h) as (h, w)
        assert torch.equal(got.image, want.movedim(1, -1)) and got.strength == applied.strength
    assert second.image.shape == (1, 12, 16, 3)  # the original chain is left alone


# -- workflows -------------------------------------------------------------------------------------


def test_a_ui_save_with_the_packs_classes_runs_and_round_trips(registry):
    stops = json.dumps([{"pos": 0.0, "color": [0, 0, 0]}, {"pos": 1.0, "color": [255, 128, 0]}])
    nodes = [
        ui_node(1, "FL_GradGenerator", [64, 64, "RGB", "Ease In", stops], outputs=[("IMAGE", "IMAGE", [1])]),
        ui_node(2, "FL_Ripple", [2.0, 10.0, 0.0, 50.0, 50.0, 0.0], [("images", "IMAGE", 1, False)],
                [("IMAGE", "IMAGE", [2])]),
        ui_node(3, "FL_ImageAdjuster", [10, 0, 0, 20, 0], [("image", "IMAGE", 2, False)], [("IMAGE", "IMAGE", [])]),
        ui_node(4, "FL_SchedulerStrings", [True, False, False, False, True, False, False],
                outputs=[("STRING", "STRING", [])]),
        ui_node(5, "FL_RandomNumber", [0.0, 10.0, 5, "fixed"], outputs=[("INT", "INT", []), ("FLOAT", "FLOAT", [])]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]])
    values = run_graph(registry, graph, ["3", "4", "5"]).values
    draws = random.Random(5)
    fraction = 10.0 * draws.random()
    assert values["5"] == (int(10.0 * draws.random()), fraction)
    gradient = call(registry, "FillGradGenerator", width=64, height=64, interpolation="Ease In", gradient_colors=stops)
    assert torch.equal(values["1"][0], gradient)
    rippled = call(registry, "FillRipple", images=gradient, amplitude=2.0, frequency=10.0)
    assert torch.equal(values["2"][0], rippled)
    assert torch.equal(values["3"][0], call(registry, "FillImageAdjuster", image=rippled, hue=10, contrast=20))
    assert values["4"][0] == "normal,simple"
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for node in nodes:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]


def test_the_docs_say_fills_layout_checks_refuse_other_layouts():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("make_comfy_docs", Path(__file__).parent.parent / "tools" /
                                                  "make_comfy_docs.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rows = {line.split("`")[1]: line for line in tool.render().splitlines() if line.startswith("| `FL_")}
    for name in ("FL_Ascii", "FL_ImageNotes", "FL_ImageRandomizer"):
        assert "later layout refused" in rows[name] and "read too" not in rows[name], name
    for name in ("FL_Ripple", "FL_SamplerStrings", "FL_SchedulerStrings", "FL_PixelArtShader"):
        assert "other layouts refused" in rows[name] and "read too" not in rows[name], name


def test_a_ui_save_in_another_layout_is_refused_naming_it(registry):
    node = ui_node(1, "FL_SchedulerStrings", [False] * 9, outputs=[("STRING", "STRING", [])])
    with pytest.raises(Exception, match="seven-switch"):
        parse_workflow(ui_graph([node]), registry)


API_PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 12, "height": 8, "batch_size": 3, "color": 0x336699}},
    "2": {"class_type": "FL_ImageBatchToImageList", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "FL_ImageListToImageBatch", "inputs": {"images": ["2", 0]}},
    "4": {"class_type": "FL_PromptMulti", "inputs": {"positive_text": "a\nb", "negative_text": "c",
                                                     "name_prefix": "n"}},
    "5": {"class_type": "FL_PromptBasic", "inputs": {"prepend": "x ", "prompt": ["4", 0], "append": ""}},
    "6": {"class_type": "FL_RandomNumber", "inputs": {"min_value": 0.0, "max_value": 10.0, "seed": 5}},
    "7": {"class_type": "FL_KsamplerSettings", "inputs": {"Aspect_Ratio": "1:1___SD 512x512", "rotation": "landscape",
                                                          "batch": 1, "Pass_1_steps": 20, "Pass_2_steps": 10,
                                                          "Pass_1_CFG": 7.0, "Pass_2_CFG": 5.0, "Pass_2_denoise": 0.5,
                                                          "scale_factor": 2.0, "sampler": "euler",
                                                          "scheduler": "karras"}},
    "8": {"class_type": "EmptyImage", "inputs": {"width": ["7", 0], "height": ["7", 1], "batch_size": 1, "color": 0}},
    "9": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    "10": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    "11": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 12, "height": 8}},
    "12": {"class_type": "FL_InpaintCrop", "inputs": {"mode": "free", "image": ["1", 0], "mask": ["11", 0],
                                                      "invert_mask": False, "fill_mask_holes": True, "use_gpu": False,
                                                      "context_pixels": 10, "context_factor": 1.01,
                                                      "force_square": False, "forced_size": 1024, "minimum_size": 512,
                                                      "maximum_size": 1024, "target_size": 1024, "free_rescale": 1.0,
                                                      "free_padding": 32}},
    "13": {"class_type": "FL_Inpaint_Stitch", "inputs": {"stitch": ["12", 0], "inpainted_image": ["12", 1]}},
    "14": {"class_type": "PreviewImage", "inputs": {"images": ["13", 0]}},
}


def test_an_api_prompt_with_the_packs_classes_runs_and_round_trips(registry):
    values = run_graph(registry, API_PROMPT, ["5", "6", "9", "10", "14"]).values
    assert torch.equal(values["12"][1], values["1"][0]) and torch.equal(values["13"][0], values["1"][0])
    assert torch.equal(values["3"][0], values["1"][0])
    assert list(values["5"][0]) == ["x a", "x b"]
    rng = random.Random(5)
    fraction = 10.0 * rng.random()
    assert values["6"][0] == int(10.0 * rng.random()) and values["6"][1] == fraction
    assert values["8"][0].shape == (1, 512, 512, 3)
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["class_type"] == entry["class_type"]
        assert api[node_id]["inputs"] == entry["inputs"], node_id
