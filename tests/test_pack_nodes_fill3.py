"""filliptm's ComfyUI_Fill-Nodes, round 3 (nodes/pack_nodes_fill3.py): each node against an independent
reference (the pack's blend formulas written out pixel by pixel; its placement arithmetic worked by hand;
scipy's correlation for the feathering); inputs and defaults against the pack's INPUT_TYPES; errors by
input name; an API prompt under the pack's class names run through the executor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphflow.comfy_format import custom_pack, export_api
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.server.comfyui_object_info import object_info
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph
from tests.test_pack_nodes_fill import _images, _refused
from tests.test_pack_nodes_fill2 import demo  # noqa: F401 (a fixture: the demo checkpoint's model, prompts, VAE)


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


# -- inputs as the pack declares them --------------------------------------------------------------

BLEND_MODES = ["normal", "multiply", "screen", "overlay", "soft_light", "hard_light", "darken", "lighten",
               "difference"]
# class: [(input, type, default, min, max, step)] in INPUT_TYPES order (None where the pack gives none)
PACK_INPUTS = {
    "FL_PasteByMask": [("image_base", "IMAGE", None, None, None, None),
                       ("image_to_paste", "IMAGE", None, None, None, None), ("mask", "IMAGE", None, None, None, None),
                       ("resize_behavior", "COMBO", "resize", None, None, None),
                       ("blend_mode", "COMBO", "normal", None, None, None), ("feather_amount", "INT", 0, 0, 100, 1),
                       ("mask_mapping_optional", "MASK_MAPPING", None, None, None, None)],
    "FL_BlackFrameReject": [("images", "IMAGE", None, None, None, None), ("threshold", "FLOAT", 95.0, 0.0, 100.0, 0.1),
                            ("black_level", "FLOAT", 0.05, 0.0, 0.5, 0.01),
                            ("channels", "COMBO", "luminance", None, None, None),
                            ("invert", "BOOLEAN", False, None, None, None),
                            ("show_progress", "BOOLEAN", True, None, None, None)],
    "FL_SDUltimate_Slices": [("image", "IMAGE", None, None, None, None), ("slicing", "COMBO", None, None, None, None),
                             ("multiplier", "FLOAT", 1.0, 1.0, 4.0, 0.25)],
    "FL_AnimeLineExtractor": [("image", "IMAGE", None, None, None, None),
                              ("line_threshold", "FLOAT", 0.4, 0.0, 1.0, 0.01), ("line_width", "INT", 1, 1, 5, 1),
                              ("detail_level", "FLOAT", 0.5, 0.1, 1.0, 0.01),
                              ("noise_reduction", "FLOAT", 0.3, 0.0, 1.0, 0.01),
                              ("invert_output", "BOOLEAN", False, None, None, None)],
    "FL_VideoCropMask": [("video", "IMAGE", None, None, None, None), ("mask", "IMAGE", None, None, None, None),
                         ("output_width", "INT", 512, 64, 2048, 64), ("output_height", "INT", 512, 64, 2048, 64),
                         ("padding", "INT", 0, 0, 100, 1), ("smoothing_factor", "FLOAT", 0.5, 0.0, 1.0, 0.1)],
    "FL_VideoRecompose": [("original_video", "IMAGE", None, None, None, None),
                          ("cropped_video", "IMAGE", None, None, None, None),
                          ("crop_data", "CROP_DATA", None, None, None, None)],
    "FL_API_Base64_ImageLoader": [("base64_string", "STRING", "", None, None, None),
                                  ("job_id", "STRING", "", None, None, None),
                                  ("user_id", "STRING", "", None, None, None),
                                  ("category", "STRING", "", None, None, None),
                                  ("resize_width", "INT", 0, 0, 8192, 8), ("resize_height", "INT", 0, 0, 8192, 8),
                                  ("maintain_aspect_ratio", "BOOLEAN", True, None, None, None),
                                  ("auto_clean_base64", "BOOLEAN", True, None, None, None)],
    "FL_API_ImageSaver": [("image", "IMAGE", None, None, None, None), ("job_id", "STRING", None, None, None, None),
                          ("user_id", "STRING", None, None, None, None), ("category", "STRING", None, None, None, None),
                          ("base_output_dir", "STRING", "/absolute/path/to/output", None, None, None),
                          ("image_format", "STRING", "png", None, None, None),
                          ("image_quality", "INT", 100, 1, 100, 1)],
    "FL_ImageCaptionLayout": [("image_directory", "STRING", "", None, None, None),
                              ("images_per_row", "INT", 3, 1, 10, None), ("image_size", "INT", 256, 64, 1024, None),
                              ("caption_height", "INT", 64, 32, 256, None), ("font_size", "INT", 12, 8, 32, None),
                              ("padding", "INT", 10, 0, 100, None)],
    "FL_ZipDirectory": [("directory_path", "STRING", "", None, None, None),
                        ("zip_filename", "STRING", "archive.zip", None, None, None)],
    "FL_ClipScanner": [("model_type", "COMBO", None, None, None, None), ("text", "STRING", "", None, None, None)],
    "FL_NFTGenerator": [("folder_path", "STRING", "", None, None, None), ("dummy_seed", "INT", 0, 0, 1000000, None)],
    "FL_UpscaleModel": [("upscale_model", "UPSCALE_MODEL", None, None, None, None),
                        ("image", "IMAGE", None, None, None, None), ("downscale_by", "FLOAT", 1.0, 0.25, 1.0, 0.05),
                        ("rescale_method", "COMBO", None, None, None, None),
                        ("precision", "COMBO", None, None, None, None), ("batch_size", "INT", 1, 1, 100, 1)],
    "FL_KSamplerXYZPlot": [
        ("model", "MODEL", None, None, None, None), ("positive", "CONDITIONING", None, None, None, None),
        ("negative", "CONDITIONING", None, None, None, None), ("seed", "INT", 0, 0, 0xffffffffffffffff, None),
        ("input_type", "COMBO", None, None, None, None), ("steps", "INT", 20, 1, 10000, None),
        ("cfg", "FLOAT", 7.0, 0.0, 100.0, None), ("sampler_name", "COMBO", None, None, None, None),
        ("scheduler", "COMBO", None, None, None, None), ("denoise", "FLOAT", 1.0, 0.0, 1.0, 0.01),
        ("x_axis", "COMBO", None, None, None, None), ("x_values", "STRING", "20,30,40", None, None, None),
        ("y_axis", "COMBO", None, None, None, None), ("y_values", "STRING", "7,8,9", None, None, None),
        ("z_axis", "COMBO", None, None, None, None), ("z_values", "STRING", "", None, None, None),
        ("z_stack_mode", "COMBO", None, None, None, None), ("latent_image", "LATENT", None, None, None, None),
        ("vae", "VAE", None, None, None, None), ("image", "IMAGE", None, None, None, None)],
    "FL_FractalKSampler": [
        ("model", "MODEL", None, None, None, None), ("vae", "VAE", None, None, None, None),
        ("positive", "CONDITIONING", None, None, None, None), ("negative", "CONDITIONING", None, None, None, None),
        ("seed", "INT", 0, 0, 0xffffffffffffffff, None), ("steps", "INT", 20, 1, 10000, None),
        ("cfg", "FLOAT", 7.0, 0.0, 100.0, None), ("sampler_name", "COMBO", None, None, None, None),
        ("scheduler", "COMBO", None, None, None, None), ("denoise", "FLOAT", 1.0, 0.0, 1.0, 0.01),
        ("scale_factor", "FLOAT", 1.25, 1.1, 2.0, 0.05), ("blend_factor", "FLOAT", 0.5, 0.0, 1.0, 0.05),
        ("fractal_levels", "INT", 2, 1, 5, None), ("latent_image", "LATENT", None, None, None, None)],
    "FL_BulletHellGame": [], "FL_TetrisGame": [], "FL_SystemCheck": [],
    "FL_ProResVideo": [("images", "IMAGE", None, None, None, None), ("fps", "FLOAT", 30.0, 1.0, 120.0, 1.0),
                       ("filename", "STRING", "prores_output", None, None, None),
                       ("save_directory", "STRING", "", None, None, None)],
    "FL_VideoCut": [("images", "IMAGE", None, None, None, None),
                    ("output_folder", "STRING", "./output/scene_cuts", None, None, None),
                    ("fps", "INT", 24, 1, 120, 1), ("threshold", "FLOAT", 30.0, 1.0, 100.0, 0.1),
                    ("min_scene_length", "INT", 12, 2, 1000, 1), ("output_quality", "INT", 85, 1, 100, 1),
                    ("detection_method", "COMBO", "hybrid", None, None, None), ("max_workers", "INT", 4, 1, 16, 1),
                    ("downsample_detection", "BOOLEAN", True, None, None, None),
                    ("use_gpu_acceleration", "BOOLEAN", True, None, None, None)],
    "FL_VideoCaptionSaver": [("images", "IMAGE", None, None, None, None),
                             ("folder_name", "STRING", "output_videos", None, None, None),
                             ("caption_text", "STRING", "Your caption here", None, None, None),
                             ("video_name", "STRING", "video", None, None, None),
                             ("fps", "FLOAT", 24.0, 1.0, 60.0, 1.0),
                             ("format", "COMBO", "mp4", None, None, None), ("quality", "INT", 8, 1, 10, 1),
                             ("overwrite", "BOOLEAN", True, None, None, None)],
}
PACK_OUTPUTS = {"FL_BlackFrameReject": ["IMAGE", "INT", "INT"], "FL_FractalKSampler": ["LATENT", "VAE"],
                "FL_BulletHellGame": [], "FL_TetrisGame": [], "FL_SystemCheck": [], "FL_ProResVideo": ["STRING"],
                "FL_VideoCut": ["STRING", "STRING"],
                "FL_SDUltimate_Slices": ["IMAGE", "INT", "INT", "FLOAT"],
                "FL_VideoCropMask": ["IMAGE", "IMAGE", "IMAGE", "CROP_DATA"],
                "FL_API_Base64_ImageLoader": ["IMAGE", "INT", "INT", "STRING", "STRING", "STRING"],
                "FL_API_ImageSaver": ["STRING", "STRING", "STRING", "STRING"], "FL_ZipDirectory": ["ZIP"],
                "FL_ClipScanner": ["STRING"],
                "FL_VideoCaptionSaver": ["STRING"], "FL_NFTGenerator": ["IMAGE", "IMAGE"]}
# RETURN_NAMES, or the types where the pack gives none
PACK_OUTPUT_NAMES = {"FL_SDUltimate_Slices": ["image", "slice_width", "slice_height", "multiplier"],
                     "FL_VideoCropMask": ["cropped_video", "mask", "original_video", "crop_data"],
                     "FL_API_Base64_ImageLoader": ["image", "width", "height", "job_id", "user_id", "category"],
                     "FL_API_ImageSaver": ["saved_path", "job_id", "user_id", "category"],
                     "FL_NFTGenerator": ["IMAGE", "IMAGE"], "FL_ClipScanner": ["STRING"],
                     "FL_AnimeLineExtractor": ["IMAGE"]}
# NODE_DISPLAY_NAME_MAPPINGS (the pack's __init__.py at 003fd21a)
PACK_DISPLAY_NAMES = {
    "FL_PasteByMask": "FL Paste By Mask", "FL_BlackFrameReject": "FL Black Frame Reject",
    "FL_SDUltimate_Slices": "FL SDUltimate Slices", "FL_AnimeLineExtractor": "FL Anime Line Extractor",
    "FL_VideoCropMask": "FL Video CropMask", "FL_VideoRecompose": "FL Video Recompose",
    "FL_API_Base64_ImageLoader": "FL API Base64 Image Loader", "FL_API_ImageSaver": "FL API Image Saver",
    "FL_ImageCaptionLayout": "FL Image Caption Layout", "FL_ZipDirectory": "FL Zip Directory",
    "FL_ClipScanner": "FL Clip Scanner (Kytra)", "FL_NFTGenerator": "FL NFT Generator",
    "FL_UpscaleModel": "FL Upscale Model", "FL_KSamplerXYZPlot": "FL KSampler XYZ Plot",
    "FL_VideoCaptionSaver": "FL Video Caption Saver", "FL_FractalKSampler": "FL Fractal KSampler",
    "FL_BulletHellGame": "FL BulletHell Game", "FL_TetrisGame": "FL Tetris Game", "FL_SystemCheck": "FL System Check",
    "FL_ProResVideo": "FL ProRes Video", "FL_VideoCut": "FL Video Cut Detector"}
PACK_OPTIONAL = {"FL_PasteByMask": 6, "FL_BlackFrameReject": 3, "FL_API_Base64_ImageLoader": 4,
                 "FL_KSamplerXYZPlot": 17, "FL_FractalKSampler": 13}
PACK_CHOICES = {("FL_PasteByMask", "resize_behavior"): ["resize", "keep_ratio_fill", "keep_ratio_fit", "source_size",
                                                        "source_size_unmasked"],
                ("FL_PasteByMask", "blend_mode"): BLEND_MODES,
                ("FL_BlackFrameReject", "channels"): ["all", "average", "luminance", "rgb"],
                ("FL_VideoCaptionSaver", "format"): ["mp4", "avi"],
                ("FL_UpscaleModel", "rescale_method"): ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"],
                ("FL_UpscaleModel", "precision"): ["auto", "32", "16", "bfloat16"],
                ("FL_KSamplerXYZPlot", "x_axis"): ["steps", "cfg", "denoise", "sampler_name", "scheduler"],
                ("FL_KSamplerXYZPlot", "z_axis"): ["none", "steps", "cfg", "denoise", "sampler_name", "scheduler"],
                ("FL_KSamplerXYZPlot", "z_stack_mode"): ["vertical", "horizontal"],
                ("FL_KSamplerXYZPlot", "input_type"): ["latent", "image"],
                ("FL_VideoCut", "detection_method"): ["intensity", "histogram", "hybrid"],
                ("FL_ClipScanner", "model_type"): ["SDXL (ViT-G/14)", "SD 1.5 (ViT-L/14)", "FLUX (ViT-L/14)"],
                ("FL_SDUltimate_Slices", "slicing"): ["1x1", "1x2", "1x3", "1x4", "2x1", "2x2", "2x3", "2x4", "3x1",
                                                      "3x2", "3x3", "3x4", "4x1", "4x2", "4x3", "4x4"]}


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
            if kind == "COMBO" and (name, input_name) in PACK_CHOICES:
                assert spec[0] == PACK_CHOICES[name, input_name], (name, input_name)
            options = spec[1] if len(spec) > 1 else {}
            for key, want in (("default", default), ("min", low), ("max", high), ("step", step)):
                if want is not None:
                    assert options.get(key) == want, (name, input_name, key)
        assert entry["output"] == PACK_OUTPUTS.get(name, ["IMAGE"]), name
        assert entry["category"].startswith("🏵️Fill Nodes/"), name
        if name in PACK_OPTIONAL:
            assert entry["input_order"].get("required", []) == [i[0] for i in inputs[:PACK_OPTIONAL[name]]], name
    assert info["FL_PasteByMask"]["category"] == "🏵️Fill Nodes/utility"
    for name, names in PACK_OUTPUT_NAMES.items():
        assert info[name]["output_name"] == names, name
    for name, shown in PACK_DISPLAY_NAMES.items():
        assert info[name]["display_name"] == shown, name
    assert info["FL_API_ImageSaver"]["output_node"] and info["FL_ImageCaptionLayout"]["output_node"]


def test_the_packs_classes_are_ours_and_its_others_are_named(registry):
    import nodes.pack_nodes_fill3 as fill3
    from graphflow.comfy_format import FILL_LATER, FILL_LEFT_OUT
    ours = [cls for cls in registry if cls.__module__ == fill3.__name__]
    assert len(ours) == len(PACK_INPUTS)
    for cls in ours:
        name = cls.comfy.class_types[0]
        assert name in PACK_INPUTS and registry.comfy_node(name) is cls, name
        assert custom_pack(name) == "ComfyUI_Fill-Nodes", name
    assert not set(PACK_INPUTS) & (set(FILL_LATER) | set(FILL_LEFT_OUT))
    assert not set(FILL_LATER) & set(FILL_LEFT_OUT)


# -- FL_PasteByMask ----------------------------------------------------------------------------------

def _soft_light(top, base):
    if top <= 0.5:
        return base - (1 - 2 * top) * base * (1 - base)
    return base + (2 * top - 1) * (math.sqrt(base) - base)


# the usual blend formulas, top over base, one value at a time
FORMULAS = {
    "normal": lambda top, base: top,
    "multiply": lambda top, base: top * base,
    "screen": lambda top, base: 1 - (1 - top) * (1 - base),
    "overlay": lambda top, base: 2 * base * top if base <= 0.5 else 1 - 2 * (1 - top) * (1 - base),
    "soft_light": _soft_light,
    "hard_light": lambda top, base: 2 * top * base if top <= 0.5 else 1 - 2 * (1 - top) * (1 - base),
    "darken": min,
    "lighten": max,
    "difference": lambda top, base: abs(top - base),
}


@pytest.mark.parametrize("mode", BLEND_MODES)
def test_paste_by_mask_blends_by_the_modes_formula_over_the_mask(registry, mode):
    base, paste = _images(1, 1, 10, 12), _images(2, 1, 4, 5)
    mask = torch.zeros(1, 10, 12, 1)
    mask[0, 3:7, 2:7, 0] = torch.linspace(0.2, 1.0, 20).reshape(4, 5)  # a box the paste's size: no resizing
    out = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask, blend_mode=mode)
    assert out.shape == (1, 10, 12, 4)
    want = np.concatenate([base.numpy(), np.ones((1, 10, 12, 1), np.float32)], axis=-1).astype(np.float64)
    for y in range(3, 7):
        for x in range(2, 7):
            amount = float(mask[0, y, x, 0])
            top = list(paste[0, y - 3, x - 2].double().numpy()) + [1.0]  # an RGB paste is opaque
            for c in range(4):
                under = want[0, y, x, c]
                want[0, y, x, c] = FORMULAS[mode](top[c], under) * amount + under * (1 - amount)
    np.testing.assert_allclose(out.numpy(), want, atol=1e-5)


def test_paste_by_mask_fits_the_box_keeping_the_ratio(registry):
    base, paste = _images(3, 1, 12, 16), _images(4, 1, 3, 9)
    mask = torch.zeros(1, 12, 16)
    mask[0, 2:8, 5:11] = 1  # a 6 × 6 box centred on (7.5, 4.5)
    out = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask,
               resize_behavior="keep_ratio_fit")
    # ratio 3 in a square box: 6 wide, int(6 / 3) = 2 tall, rows from floor(4.5 - 1) + 1 = 4
    piece = F.interpolate(paste.permute(0, 3, 1, 2), size=(2, 6), mode="bicubic").permute(0, 2, 3, 1)
    want = base.clone()
    want[0, 4:6, 5:11] = piece[0]
    torch.testing.assert_close(out[..., :3], want, atol=1e-6, rtol=0)
    assert torch.equal(out[..., 3], torch.ones(1, 12, 16))


def test_paste_by_mask_keeps_the_source_size_cut_at_the_edges(registry):
    base, paste = _images(5, 1, 12, 16), _images(6, 1, 8, 8)
    mask = torch.zeros(1, 12, 16)
    mask[0, 0, 1] = 1  # one pixel: the 8 × 8 paste centred there from floor(0 - 4) + 1 = -3, floor(1 - 4) + 1 = -2
    unmasked = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask,
                    resize_behavior="source_size_unmasked")
    want = base.clone()
    want[0, 0:5, 0:6] = paste[0, 3:8, 2:8]
    torch.testing.assert_close(unmasked[..., :3], want, atol=0, rtol=0)
    masked = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask,
                  resize_behavior="source_size")
    want = base.clone()
    want[0, 0, 1] = paste[0, 3, 3]  # only the mask's pixel takes it
    torch.testing.assert_close(masked[..., :3], want, atol=0, rtol=0)


def test_paste_by_mask_feathers_by_the_packs_gaussian(registry):
    from scipy.ndimage import correlate
    base, paste = _images(7, 1, 16, 18), _images(8, 1, 6, 8)
    mask = torch.zeros(1, 16, 18, 3)
    mask[0, 5:11, 4:12] = 1
    feather = 12  # sigma 1.2 over int(12 / 5) * 2 + 1 = 5 taps
    out = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask, feather_amount=feather,
               blend_mode="darken")
    taps = np.arange(5) - 2.0
    kernel = np.exp(-(taps[:, None] ** 2 + taps[None, :] ** 2) / (2 * 1.2 ** 2))
    inside = np.zeros((16, 18))
    inside[5:11, 4:12] = 0.2989 + 0.587 + 0.114  # a white RGB mask's luma (torchvision's weights)
    amount = correlate(inside, kernel / kernel.sum(), mode="constant")[..., None]
    top = np.ones((16, 18, 4))  # white around the paste, as the pack builds it
    top[5:11, 4:12, :3] = paste[0].numpy()
    under = np.concatenate([base[0].numpy(), np.ones((16, 18, 1))], axis=-1)
    want = np.minimum(top, under) * amount + under * (1 - amount)
    np.testing.assert_allclose(out[0].numpy(), want, atol=1e-5)
    assert 0 < amount[4, 8, 0] < 1  # the feathering reaches outside the box


def test_paste_by_mask_cycles_batches_or_follows_the_mapping(registry):
    base, paste = _images(9, 2, 8, 8), _images(10, 3, 2, 2)
    mask = torch.zeros(1, 8, 8)
    mask[0, 1:3, 1:3] = 1
    out = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask)
    assert out.shape == (3, 8, 8, 4)
    for i, b in enumerate((0, 1, 0)):  # the base batch repeated in turn to the paste's three
        want = base[b].clone()
        want[1:3, 1:3] = paste[i]
        assert torch.equal(out[i, ..., :3], want), i
    masks = torch.zeros(3, 8, 8)
    masks[0, 0:2, 0:2] = masks[1, 4:6, 4:6] = masks[2, 6:8, 0:2] = 1
    mapped = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste[:2], mask=masks,
                  mask_mapping_optional=torch.tensor([1, 0, 3]))
    assert mapped.shape == (2, 8, 8, 4)
    want = base.clone()
    want[1, 0:2, 0:2] = paste[0]
    want[0, 4:6, 4:6] = paste[1]
    want[1, 6:8, 0:2] = paste[0]  # mask 2 takes paste 2 % 2 onto image 3 % 2
    assert torch.equal(mapped[..., :3], want)


def test_paste_by_mask_leaves_an_empty_mask_alone_and_refuses_bad_input(registry):
    base, paste = _images(11, 1, 8, 8), _images(12, 1, 1, 8)
    out = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=torch.zeros(1, 8, 8))
    assert torch.equal(out[..., :3], base)
    box = torch.zeros(1, 8, 8)
    box[0, 0:2, 0:2] = 1
    # ratio 8 fitted into a 2 × 2 box is int(2 / 8) = 0 pixels tall
    _refused(registry, "FillPasteByMask", "image_to_paste", image_base=base, image_to_paste=paste, mask=box,
             resize_behavior="keep_ratio_fit")
    _refused(registry, "FillPasteByMask", "mask", image_base=base, image_to_paste=paste, mask=torch.zeros(1, 8, 8, 2))
    _refused(registry, "FillPasteByMask", "mask_mapping_optional", image_base=base, image_to_paste=paste, mask=box,
             mask_mapping_optional=torch.tensor([0.5]))
    _refused(registry, "FillPasteByMask", "mask_mapping_optional", image_base=base, image_to_paste=paste,
             mask=box.repeat(2, 1, 1), mask_mapping_optional=torch.tensor([0]))


# -- a ComfyUI prompt ------------------------------------------------------------------------------

API_PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 12, "batch_size": 1, "color": 0x336699}},
    "2": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 2, "batch_size": 1, "color": 0xFF8000}},
    "3": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 16, "height": 12}},
    "4": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 4, "height": 2}},
    "5": {"class_type": "MaskComposite", "inputs": {"destination": ["3", 0], "source": ["4", 0], "x": 5, "y": 3,
                                                    "operation": "add"}},
    "6": {"class_type": "MaskToImage", "inputs": {"mask": ["5", 0]}},
    "7": {"class_type": "FL_PasteByMask", "inputs": {"image_base": ["1", 0], "image_to_paste": ["2", 0],
                                                     "mask": ["6", 0], "resize_behavior": "resize",
                                                     "blend_mode": "multiply", "feather_amount": 0}},
    "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
    "9": {"class_type": "FL_SDUltimate_Slices", "inputs": {"image": ["7", 0], "slicing": "2x2", "multiplier": 1.5}},
    "10": {"class_type": "FL_BlackFrameReject", "inputs": {"images": ["9", 0], "threshold": 95.0, "black_level": 0.05,
                                                           "channels": "all", "invert": False,
                                                           "show_progress": True}},
    "11": {"class_type": "FL_VideoCropMask", "inputs": {"video": ["1", 0], "mask": ["6", 0], "output_width": 64,
                                                        "output_height": 64, "padding": 0, "smoothing_factor": 0.5}},
    "12": {"class_type": "FL_VideoRecompose", "inputs": {"original_video": ["11", 2], "cropped_video": ["11", 0],
                                                         "crop_data": ["11", 3]}},
    "13": {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}},
    "14": {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}},
}


def test_an_api_prompt_with_the_packs_classes_runs_and_round_trips(registry):
    values = run_graph(registry, API_PROMPT, ["8", "13", "14"]).values
    base, pasted = values["1"][0], values["7"][0]
    want = base.clone()
    amount = 0.2989 + 0.587 + 0.114  # MaskToImage's white read back as luma
    under = base[0, 3:5, 5:9]
    want[0, 3:5, 5:9] = under * values["2"][0][0] * amount + under * (1 - amount)
    torch.testing.assert_close(pasted[..., :3], want, atol=1e-6, rtol=0)
    assert values["9"][1:] == (int(16 // 2 * 1.5), int(12 // 2 * 1.5), 1.5)
    assert torch.equal(values["10"][0], pasted) and values["10"][1:] == (1, 0)
    # the mask's rows 3..4, columns 5..8: centre (13 // 2, 7 // 2), 3 × 1 made square 3 × 3 around it
    assert values["11"][3][0] == {"top": 2, "bottom": 5, "left": 5, "right": 8, "original_height": 12,
                                  "original_width": 16, "output_height": 64, "output_width": 64}
    torch.testing.assert_close(values["12"][0], base)  # one colour, resized there and back
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["class_type"] == entry["class_type"]
        assert api[node_id]["inputs"] == entry["inputs"], node_id


# -- frames, slices, lines -------------------------------------------------------------------------


def _black_share(picture, channels, level):
    """The pack's share of black pixels in percent, pixel by pixel."""
    height, width, _ = picture.shape
    black = 0
    for y in range(height):
        for x in range(width):
            values = [float(v) for v in picture[y, x]]
            if channels == "all":
                black += all(v <= level for v in values)
            elif channels == "average":
                black += sum(values) / len(values) <= level
            elif channels == "luminance":
                black += 0.2126 * values[0] + 0.7152 * values[1] + 0.0722 * values[2] <= level
            else:
                black += any(v <= level for v in values)
    return 100.0 * black / (height * width)


@pytest.mark.parametrize("channels", ["all", "average", "luminance", "rgb"])
def test_black_frame_reject_drops_the_frames_black_enough(registry, channels):
    images = _images(13, 6, 5, 6) * torch.tensor([0.9, 0.05, 0.2, 0.5, 0.9, 0.1])[:, None, None, None]
    images[4, :3] = 0
    shares = [_black_share(picture, channels, 0.05) for picture in images]
    threshold = sorted(shares)[3]  # the three blackest frames reach it
    kept, kept_count, dropped = call(registry, "FillBlackFrameReject", images=images, threshold=threshold,
                                     black_level=0.05, channels=channels)
    want = [i for i, share in enumerate(shares) if share < threshold]
    assert (kept_count, dropped) == (len(want), 6 - len(want))
    assert torch.equal(kept, images[want])
    inverted, count, _ = call(registry, "FillBlackFrameReject", images=images, threshold=threshold, black_level=0.05,
                              channels=channels, invert=True)
    assert torch.equal(inverted, images[[i for i in range(6) if i not in want]]) and count == 6 - len(want)
    _refused(registry, "FillBlackFrameReject", "images", images=torch.zeros(2, 4, 4, 3), threshold=50.0)


def test_sd_ultimate_slices_divide_the_size_then_multiply(registry):
    image = torch.zeros(1, 100, 203, 3)
    out, width, height, multiplier = call(registry, "FillSDUltimateSlices", image=image, slicing="3x2", multiplier=1.25)
    assert out is image and multiplier == 1.25
    assert (width, height) == (int(67 * 1.25), int(50 * 1.25)) == (83, 62)


def test_anime_line_extractor_runs_the_packs_opencv_steps_with_its_settings(registry):
    import cv2
    image = _images(14, 1, 40, 48)
    image[0, 10:30, 20:22] = 0.0  # a dark stroke
    out = call(registry, "FillAnimeLineExtractor", image=image, line_threshold=0.4, line_width=2, detail_level=0.3,
               noise_reduction=0.45)
    levels = (np.clip(image[0].numpy() * 255, 0, 255)).astype(np.uint8)
    grey = cv2.GaussianBlur(cv2.cvtColor(levels, cv2.COLOR_RGB2GRAY), (5, 5), 0)  # int(4.5) = 4, made odd
    # block int(0.7 × 50) + 11 = 46, made odd; constant int(0.4 × 20) = 8
    lines = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, 47, 8)
    lines = cv2.morphologyEx(lines, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))  # int(0.7 × 3) = 2
    lines = cv2.dilate(lines, np.ones((2, 2), np.uint8))
    assert out.shape == (1, 40, 48, 3)
    assert np.array_equal(out[0, ..., 0].numpy(), lines / 255.0) and torch.equal(out[..., 0], out[..., 2])
    assert out[0, 12:28, 20:22].mean() > 0.5  # the stroke is drawn
    white = call(registry, "FillAnimeLineExtractor", image=image, line_threshold=0.4, line_width=2, detail_level=0.3,
                 noise_reduction=0.45, invert_output=True)
    assert np.array_equal(white[0, ..., 1].numpy(), cv2.bitwise_not(lines) / 255.0)  # black lines on white
    _refused(registry, "FillAnimeLineExtractor", "image", image=_images(1, 1, 8, 8, 4))


# -- video crop and recompose ----------------------------------------------------------------------


def test_video_crop_follows_the_mask_smoothly_and_recompose_puts_it_back(registry):
    video = _images(15, 3, 160, 200)
    mask = torch.zeros(3, 160, 200, 3)
    mask[0, 40:72, 60:124] = 1  # 63 × 31 by the pack's last minus first pixel, centre (183 // 2, 111 // 2)
    mask[1, 80:112, 100:164] = 1  # centre (131, 95); frame 2 empty keeps frame 1's crop
    crops, masks, original, boxes = call(registry, "FillVideoCropMask", video=video, mask=mask, output_width=128,
                                         output_height=64, padding=1, smoothing_factor=0.5)
    assert original is video and crops.shape == (3, 64, 128, 3) and masks.shape == (3, 64, 128, 3)
    # frame 0: padded 65 × 33 is narrower than ratio 2, so width int(33 × 2) = 66
    # frame 1: centre int((131 + 91) / 2) = 111, int((95 + 55) / 2) = 75; size the same 65 × 33 -> 66 × 33
    # frame 2: the same box smoothed with itself
    want = [(55 - 16, 91 - 33, 33, 66), (75 - 16, 111 - 33, 33, 66), (75 - 16, 111 - 33, 33, 66)]
    for i, (top, left, height, width) in enumerate(want):
        assert boxes[i] == {"top": top, "bottom": top + height, "left": left, "right": left + width,
                            "original_height": 160, "original_width": 200, "output_height": 64, "output_width": 128}
        cut = video[i, top:top + height, left:left + width].permute(2, 0, 1)[None]
        torch.testing.assert_close(crops[i], F.interpolate(cut, size=(64, 128), mode="bilinear",
                                                           align_corners=False)[0].permute(1, 2, 0))
    changed = crops * 0.5
    back = call(registry, "FillVideoRecompose", original_video=video, cropped_video=changed, crop_data=boxes)
    for i, (top, left, height, width) in enumerate(want):
        region = F.interpolate(changed[i].permute(2, 0, 1)[None], size=(height, width), mode="bilinear",
                               align_corners=False)[0].permute(1, 2, 0)
        want_frame = video[i].clone()
        want_frame[top:top + height, left:left + width] = region
        torch.testing.assert_close(back[i], want_frame)
    _refused(registry, "FillVideoRecompose", "crop_data", original_video=video, cropped_video=changed,
             crop_data=((64, 64), (0, 0, 64, 64)))  # WAS Node Suite's crop data
    _refused(registry, "FillVideoCropMask", "mask", video=video, mask=mask[:, :100])


def test_video_crop_keeps_an_oversized_crop_inside_the_frame(registry):
    video = _images(16, 1, 64, 96)
    mask = torch.zeros(1, 64, 96)
    mask[0, 10:50, 5:90] = 1  # 84 wide, padding 10 -> 104 × 59, taller than ratio 1 -> 104 × 104
    _, _, _, boxes = call(registry, "FillVideoCropMask", video=video, mask=mask, output_width=64, output_height=64,
                          padding=10)
    # scaled by min(96 / 104, 64 / 104) to int(104 × 64 / 104) = 64 square, slid inside the frame
    assert boxes[0]["bottom"] - boxes[0]["top"] == 64 and boxes[0]["right"] - boxes[0]["left"] == 64
    assert boxes[0]["top"] == 0 and boxes[0]["left"] == 47 - 32
    _, masks, _, _ = call(registry, "FillVideoCropMask", video=video, mask=mask, output_width=64, output_height=64,
                          padding=10)
    assert masks.shape == (1, 64, 64, 3)  # a MASK link gives an RGB IMAGE, as IMAGE nodes take
    assert torch.equal(masks[..., 0], masks[..., 2]) and masks.max() == 1


# -- API tools -------------------------------------------------------------------------------------


def _png_base64(picture) -> str:
    import base64
    import io
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_base64_loader_decodes_cleans_and_resizes_as_the_pack(registry):
    from PIL import Image
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8), "RGBA")
    text = _png_base64(picture)
    wrapped = "data:image/png;base64," + "\n".join(text[i:i + 60] for i in range(0, len(text), 60))
    image, width, height, job, user, category = call(registry, "FillAPIBase64ImageLoader", base64_string=wrapped,
                                                     job_id="j1", user_id="u2", job_category="cats")
    assert (width, height, job, user, category) == (40, 30, "j1", "u2", "cats")
    assert np.array_equal(image[0].numpy(), np.asarray(picture.convert("RGB"), np.float32) / 255.0)
    # keeping the ratio inside 24 × 24: scale min(24 / 40, 24 / 30) = 0.6 -> 24 × 18
    image, width, height, *_ = call(registry, "FillAPIBase64ImageLoader", base64_string=text, resize_width=24,
                                    resize_height=24)
    assert (width, height) == (24, 18) and image.shape == (1, 18, 24, 3)
    want = np.asarray(picture.convert("RGB").resize((24, 18), Image.LANCZOS), np.float32) / 255.0
    assert np.array_equal(image[0].numpy(), want)
    _, width, height, *_ = call(registry, "FillAPIBase64ImageLoader", base64_string=text, resize_height=16)
    assert (width, height) == (int(40 * 16 / 30), 16)
    _, width, height, *_ = call(registry, "FillAPIBase64ImageLoader", base64_string=text, resize_height=16,
                                maintain_aspect_ratio=False)
    assert (width, height) == (40, 16)
    _refused(registry, "FillAPIBase64ImageLoader", "base64_string", "base64", base64_string="abc")
    _refused(registry, "FillAPIBase64ImageLoader", "base64_string", "picture", base64_string="aGVsbG8=")
    _refused(registry, "FillAPIBase64ImageLoader", "base64_string", base64_string=wrapped, auto_clean_base64=False)


def test_api_image_saver_writes_the_job_in_its_category_folder(registry, tmp_folders):
    from PIL import Image
    image = _images(17, 1, 10, 12)
    path, job, user, category = call(registry, "FillAPIImageSaver", image=image, job_id="job7", user_id="u9",
                                     job_category="portraits", base_output_dir="api", image_format="png",
                                     image_quality=100)
    assert (path, job, user, category) == ("api/portraits/u9/job7.png", "job7", "u9", "portraits")
    with Image.open(tmp_folders.outputs / path) as saved:
        assert np.array_equal(np.asarray(saved), (np.clip(image[0].numpy() * 255, 0, 255)).astype(np.uint8))
    path, *_ = call(registry, "FillAPIImageSaver", image=image, job_id="job7", job_category="portraits",
                    base_output_dir="api", image_format="JPG", image_quality=30)
    assert path == "api/portraits/job7.JPG"  # no user_id: no folder for it
    with Image.open(tmp_folders.outputs / path) as saved:
        assert saved.format == "JPEG"
        levels = Image.fromarray((np.clip(image[0].numpy() * 255, 0, 255)).astype(np.uint8))
        reference = (tmp_folders.outputs / "reference.jpg")
        levels.save(reference, "JPEG", quality=30)
        assert (tmp_folders.outputs / path).read_bytes() == reference.read_bytes()
    _refused(registry, "FillAPIImageSaver", "base_output_dir", image=image, job_id="a", job_category="",
             base_output_dir="/absolute/path/to/output")
    _refused(registry, "FillAPIImageSaver", "image_format", image=image, job_id="a", job_category="",
             base_output_dir="api", image_format="gif")
    _refused(registry, "FillAPIImageSaver", "image", image=_images(1, 2, 4, 4), job_id="a", job_category="",
             base_output_dir="api")
    _refused(registry, "FillAPIImageSaver", "job_id", image=image, job_id="../x", job_category="",
             base_output_dir="api")
    _refused(registry, "FillAPIImageSaver", "job_category", image=image, job_id="a", job_category="../..",
             base_output_dir="api")
    _refused(registry, "FillAPIImageSaver", "user_id", image=image, job_id="a", user_id="x/./y", base_output_dir="api")


def test_api_image_saver_checks_everything_before_making_a_folder(registry, tmp_folders):
    rgba = _images(20, 1, 4, 4, 4)
    _refused(registry, "FillAPIImageSaver", "image_format", image=rgba, job_id="a", job_category="c", user_id="u",
             base_output_dir="fresh", image_format="jpg")
    _refused(registry, "FillAPIImageSaver", "job_id", image=rgba, job_id="..", job_category="c",
             base_output_dir="fresh")
    _refused(registry, "FillAPIImageSaver", "user_id", image=rgba, job_id="a", user_id="..", job_category="c",
             base_output_dir="fresh")
    assert not (tmp_folders.outputs / "fresh").exists()


# -- caption layout and zip ------------------------------------------------------------------------


def test_image_caption_layout_lays_out_pictures_and_captions(registry, tmp_folders, monkeypatch):
    import textwrap

    from PIL import Image, ImageDraw, ImageFont
    folder = tmp_folders.inputs / "set"
    folder.mkdir()
    rng = np.random.default_rng(1)
    pictures = {}
    for name in ("b.PNG", "a.jpg", "c.png"):
        pictures[name] = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
        pictures[name].save(folder / name)
    (folder / "a.txt").write_text("  a long caption that wraps over more than one line  ")
    (folder / "notes.md").write_text("not a picture")
    sheet = call(registry, "FillImageCaptionLayout", image_directory="set", images_per_row=2, image_size=64,
                 caption_height=32, font_size=8, padding=4)
    assert sheet.shape == (1, 2 * (64 + 32 + 4) + 4, 2 * (64 + 4) + 4, 3)  # two rows of two, padded
    levels = np.round(sheet[0].numpy() * 255).astype(np.uint8)
    font = ImageFont.load_default()
    for index, name in enumerate(("a.jpg", "b.PNG", "c.png")):  # sorted by name
        x, y = 4 + index % 2 * 68, 4 + index // 2 * 100
        with Image.open(folder / name) as picture:
            want = np.asarray(picture.convert("RGB").resize((64, 64), Image.LANCZOS))
        assert np.array_equal(levels[y:y + 64, x:x + 64], want), name
        box = Image.new("RGB", (64, 32), (255, 255, 255))
        caption = "a long caption that wraps over more than one line" if name == "a.jpg" else "No caption found"
        ImageDraw.Draw(box).text((5, 5), textwrap.fill(caption, width=(64 - 10) // 4), font=font, fill=(0, 0, 0))
        assert np.array_equal(levels[y + 64:y + 96, x:x + 64], np.asarray(box)), name
    assert (levels[104:, 72:] == 255).all()  # the fourth place is left white
    _refused(registry, "FillImageCaptionLayout", "image_directory", image_directory="/etc")
    from graphflow.resource_limits import RunLimits
    from tests.test_pack_nodes_essentials_params import run_context
    Image.new("RGB", (200, 200)).save(folder / "d.png")  # 40,000 pixels, more than the 28,560 of the sheet
    with run_context(RunLimits(max_pixels=30_000)), \
            pytest.raises(NodeInputError, match="'d.png' is 200×200") as caught:
        call(registry, "FillImageCaptionLayout", image_directory="set", images_per_row=2, image_size=64,
             caption_height=32, font_size=8, padding=4)
    assert caught.value.input == "image_directory"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # Pillow's bomb check: more than twice that refused
    _refused(registry, "FillImageCaptionLayout", "image_directory", "decompression bomb", image_directory="set")
    (tmp_folders.inputs / "empty").mkdir()
    _refused(registry, "FillImageCaptionLayout", "image_directory", "no .png", image_directory="empty")


def test_zip_directory_zips_a_folder_of_the_outputs_in_memory(registry, tmp_folders, tmp_path):
    import io
    import zipfile
    source = tmp_folders.outputs / "run"
    (source / "sub").mkdir(parents=True)
    (source / "b.txt").write_text("beta")
    (source / "sub" / "a.bin").write_bytes(bytes(range(200)))
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (source / "link.txt").symlink_to(outside)
    data = call(registry, "FillZipDirectory", directory_path="run", zip_filename="x.zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        assert zipped.namelist() == ["b.txt", "sub/a.bin"]
        assert zipped.read("sub/a.bin") == bytes(range(200)) and zipped.read("b.txt") == b"beta"
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in zipped.infolist())
    assert not list(tmp_folders.outputs.glob("*.zip"))  # nothing written
    from graphflow.resource_limits import RunLimits
    from tests.test_pack_nodes_essentials_params import run_context
    with run_context(RunLimits(ram_bytes=4 + 200)):  # the files' bytes: the archive is held whole
        assert call(registry, "FillZipDirectory", directory_path="run") == data
    with run_context(RunLimits(ram_bytes=4 + 200 - 1)), pytest.raises(NodeInputError, match="2 files") as caught:
        call(registry, "FillZipDirectory", directory_path="run")
    assert caught.value.input == "directory_path"
    _refused(registry, "FillZipDirectory", "directory_path", "no folder", directory_path="missing")
    _refused(registry, "FillZipDirectory", "directory_path", "inside the outputs", directory_path="../..")


# -- CLIP scanner ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["A Photo of a CAT!! <b>&amp; café", " ".join(f"word{i}" for i in range(100)), ""])
def test_clip_scanner_reports_open_clips_tokens_as_the_pack(registry, text):
    import open_clip
    tokenizer = open_clip.get_tokenizer("ViT-g-14")  # the pack's: one window, padded with token 0 ("!")
    decoded = [tokenizer.decoder.get(token, f"[{token}]") for token in tokenizer(text)[0].tolist()]
    tokens = [token for token in decoded if not token.startswith("<") and token != "!"]
    want = "\n".join(["=" * 60, "Model: SDXL (ViT-G/14)", "CLIP: ViT-g-14 (laion2b_s12b_b42k)", f'Prompt: "{text}"',
                      f"Tokenized Output: {tokens}", f"Token Count: {len(tokens)}", "=" * 60])
    assert call(registry, "FillClipScanner", model_type="SDXL (ViT-G/14)", text=text) == want
    if len(text) > 100:
        assert len(tokens) == 75


# -- video caption saver ---------------------------------------------------------------------------


@pytest.mark.parametrize("video_format", ["mp4", "avi"])
def test_video_caption_saver_writes_the_frames_and_the_cleaned_caption(registry, tmp_folders, video_format):
    import cv2
    colours = [(0.9, 0.1, 0.1), (0.1, 0.8, 0.2), (0.2, 0.3, 0.9)]
    images = torch.tensor(colours)[:, None, None, :].expand(3, 32, 48, 3).contiguous()
    line = call(registry, "FillVideoCaptionSaver", images=images, folder_name="clips", caption_text="Héllo, wörld! #1",
                video_name="my clip", fps=12.0, format=video_format)
    assert line == "Saved video with 3 frames and caption in 'clips'"
    folder = tmp_folders.outputs / "clips"
    assert (folder / "my_clip.txt").read_text() == "Hllo, wrld! 1"
    capture = cv2.VideoCapture(str(folder / f"my_clip.{video_format}"))
    try:
        assert capture.get(cv2.CAP_PROP_FPS) == 12.0
        for colour in colours:
            ok, frame = capture.read()
            assert ok and frame.shape == (32, 48, 3)
            want = np.array([int(c * 255) for c in colour[::-1]])  # OpenCV's BGR
            assert np.abs(frame.reshape(-1, 3).mean(axis=0) - want).max() < 6  # lossy, but the colour's
        assert not capture.read()[0]
    finally:
        capture.release()
    call(registry, "FillVideoCaptionSaver", images=images, folder_name="clips", video_name="my clip",
         format=video_format, overwrite=False)
    assert (folder / f"my_clip_1.{video_format}").exists() and (folder / "my_clip_1.txt").exists()
    assert not [p for p in folder.iterdir() if ".tmp" in p.name]
    _refused(registry, "FillVideoCaptionSaver", "folder_name", images=images, folder_name="../out")
    _refused(registry, "FillVideoCaptionSaver", "images", images=_images(1, 1, 8, 8, 4), folder_name="clips")


# -- ProRes video ----------------------------------------------------------------------------------


def test_prores_video_writes_prores_4444_as_the_pack_asks_ffmpeg(registry, tmp_folders):
    import av
    colours = [(0.9, 0.1, 0.1), (0.1, 0.8, 0.2), (0.2, 0.3, 0.9)]
    images = torch.tensor(colours)[:, None, None, :].expand(3, 32, 48, 3).contiguous()
    rgba = torch.cat([images, torch.full((3, 32, 48, 1), 0.5)], dim=-1)  # its alpha dropped, as the pack's
    line = call(registry, "FillProResVideo", images=rgba, fps=12.0, filename="clip.mp4", save_directory="pro")
    assert line == "Video saved to pro/clip.mov"
    with av.open(str(tmp_folders.outputs / "pro" / "clip.mov")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "prores" and stream.codec_context.profile == "4444"
        assert stream.average_rate == 12 and container.format.name.startswith("mov")
        first = bytes(next(iter(container.demux(stream))))
        assert first[4:8] == b"icpf" and first[12:16] == b"apl0"  # a ProRes frame's header names its creator
        container.seek(0)
        frames = list(container.decode(stream))
        assert [frame.format.name for frame in frames] == ["yuva444p12le"] * 3  # FFmpeg decodes 4444 at 12 bits
        for frame, colour in zip(frames, colours):
            rgba = frame.to_ndarray(format="rgba").reshape(-1, 4)
            want = np.array([int(c * 255) for c in colour])
            assert np.abs(rgba[:, :3].mean(axis=0) - want).max() < 3  # near-lossless at 8,000 bits
            assert (rgba[:, 3] == 255).all()  # an opaque alpha plane
    call(registry, "FillProResVideo", images=images, fps=12.0, filename="clip", save_directory="pro")
    assert (tmp_folders.outputs / "pro" / "clip_1.mov").exists()  # the first kept
    assert not [p for p in (tmp_folders.outputs / "pro").iterdir() if ".tmp" in p.name]
    _refused(registry, "FillProResVideo", "save_directory", images=images, save_directory="../out")
    _refused(registry, "FillProResVideo", "filename", images=images, filename="a/b")


# -- scene cut -------------------------------------------------------------------------------------


def _scene_frames(levels_by_frame, height=32, width=48):
    """Frames of one flat grey level each, with a fixed texture so edges exist."""
    texture = torch.rand(height, width, 1, generator=torch.Generator().manual_seed(4)) * 0.1
    return torch.stack([(torch.full((height, width, 1), level) + texture).expand(-1, -1, 3).clamp(0, 1)
                        for level in levels_by_frame]).contiguous()


def test_video_cut_saves_each_scene_as_an_h264_clip(registry, tmp_folders):
    import av
    frames = _scene_frames([0.2] * 14 + [0.8] * 12 + [0.5] * 4)  # cuts at 14 and 26, 30 frames
    paths, folder = call(registry, "FillVideoCut", images=frames, fps=12, threshold=30.0, min_scene_length=12,
                         output_quality=85, detection_method="intensity")
    # grey differences 0.6 and 0.3 of 255 pass 0.8 × 30; the scene from 26 has 3 < 12 frames up to the
    # last index, 29, so it joins the one before: scenes 0..13 and 14..28 (the very last frame in none)
    assert folder == "scene_cuts" and paths == "scene_cuts/scene_000.mp4,scene_cuts/scene_001.mp4"
    for path, (start, end) in zip(paths.split(","), ((0, 14), (14, 29))):
        with av.open(str(tmp_folders.outputs / path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.average_rate == 12
            decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert len(decoded) == end - start, path
        for frame, want in zip(decoded, frames[start:end]):
            assert abs(float(frame.mean()) - float(want.mean()) * 255) < 4  # CRF int(15 / 4) + 1 = 4: near-lossless
    again, _ = call(registry, "FillVideoCut", images=frames, fps=12, min_scene_length=12,
                    detection_method="intensity", output_folder="scene_cuts")
    assert again == "scene_cuts/scene_000_1.mp4,scene_cuts/scene_001_1.mp4"  # the first clips kept
    _refused(registry, "FillVideoCut", "images", "even", images=frames[:, :31])
    _refused(registry, "FillVideoCut", "output_folder", "path on disk", images=frames, output_folder="/tmp/cuts")


@pytest.mark.parametrize("method", ["intensity", "histogram", "hybrid"])
def test_video_cut_finds_cuts_by_the_packs_measures(method):
    import cv2

    from nodes.pack_nodes_fill3 import scene_bounds
    rng = np.random.default_rng(6)
    base = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    other = np.roll(base[..., [2, 0, 1]], 5, axis=1)  # channels turned and moved: other colours and edges
    levels = np.stack([base] * 5 + [other] * 5 + [base] * 4)
    grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in levels]

    def histogram(frame):
        hist = cv2.calcHist([cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)], [0, 1], None, [16, 16], [0, 180, 0, 256])
        return cv2.normalize(hist, hist, 0, 1, cv2.NORM_MINMAX)

    def measure(i):  # the pack's score against threshold × its factor, written out
        diff = float(np.abs(grey[i].astype(float) - grey[i - 1].astype(float)).mean())
        if method == "intensity":
            return diff, 0.8
        if method == "histogram":
            return cv2.compareHist(histogram(levels[i]), histogram(levels[i - 1]), cv2.HISTCMP_CHISQR), 3.0
        gx = [cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3) for g in (grey[i], grey[i - 1])]
        gy = [cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3) for g in (grey[i], grey[i - 1])]
        edges = float(np.sqrt((gx[0] - gx[1]) ** 2 + (gy[0] - gy[1]) ** 2).mean())
        return diff, edges  # hybrid's two parts
    if method == "hybrid":  # a threshold where the grey difference alone decides neither way
        scores = [0.6 * measure(i)[0] + 0.4 * measure(i)[1] for i in (5, 10)]
        threshold = min(scores) / 1.2 - 0.01
        assert all(0.3 * threshold <= measure(i)[0] <= 3 * threshold for i in (5, 10))
    else:
        threshold = min(measure(i)[0] / measure(i)[1] for i in (5, 10)) - 0.01  # just under both cuts
    assert measure(1)[0] == 0 < threshold  # identical frames are no cut
    assert scene_bounds(levels, threshold, 3, method) == [0, 5, 10, 13]  # the last index ends the last scene
    # min_scene_length 6: 5 is too soon after 0, 10 is not; the 3-frame scene from 10 then joins the one before
    assert scene_bounds(levels, threshold, 6, method) == [0, 13]
    above = max(measure(i)[0] for i in (5, 10)) * 10 if method != "hybrid" else max(scores) * 10
    assert scene_bounds(levels, above, 3, method) == [0, 13]  # no cut


# -- NFT generator ---------------------------------------------------------------------------------


def test_nft_generator_draws_by_the_weights_with_pythons_seeded_random(registry, tmp_folders):
    import random

    from PIL import Image
    folder = tmp_folders.inputs / "nft"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for name in ("silver-75per.png", "gold-25per.png", "gold-25per-mask.png"):
        Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(folder / name)
    draws = {seed: random.Random(seed).random() for seed in range(20)}  # random.seed(seed); random.random()
    gold = next(seed for seed, drawn in draws.items() if drawn <= 0.25)  # gold first by name: its share 0..0.25
    silver = next(seed for seed, drawn in draws.items() if drawn > 0.25)
    image, mask = call(registry, "FillNFTGenerator", folder_path="nft", dummy_seed=gold)
    with Image.open(folder / "gold-25per.png") as want, Image.open(folder / "gold-25per-mask.png") as want_mask:
        assert np.array_equal(image[0].numpy(), np.asarray(want, np.float32) / 255.0)
        assert np.array_equal(mask[0].numpy(), np.asarray(want_mask, np.float32) / 255.0)
    image, mask = call(registry, "FillNFTGenerator", folder_path="nft", dummy_seed=silver)
    with Image.open(folder / "silver-75per.png") as want:
        assert np.array_equal(image[0].numpy(), np.asarray(want, np.float32) / 255.0)
    assert torch.equal(mask, torch.zeros(1, 6, 8, 3))  # no mask file: black
    Image.new("RGB", (2, 2)).save(folder / "plain.png")
    _refused(registry, "FillNFTGenerator", "folder_path", "plain.png", folder_path="nft")
    _refused(registry, "FillNFTGenerator", "folder_path", folder_path="/tmp")


def test_nft_generator_holds_the_picture_to_the_limits_before_decoding_it(registry, tmp_folders, monkeypatch):
    from PIL import Image

    import nodes.pack_nodes_fill3 as fill3
    from graphflow.resource_limits import RunLimits
    from tests.test_pack_nodes_essentials_params import run_context
    folder = tmp_folders.inputs / "nft"
    folder.mkdir()
    Image.new("RGB", (8, 6)).save(folder / "gold-25per.png")
    decode = fill3._opened

    def header_only(path, name, header_only=False):
        assert header_only, "decoded before the checks"
        return decode(path, name, header_only)
    monkeypatch.setattr(fill3, "_opened", header_only)
    with run_context(RunLimits(max_pixels=47)):  # the picture's 48 pixels
        _refused(registry, "FillNFTGenerator", "folder_path", "8×6", folder_path="nft")
    with run_context(RunLimits(ram_bytes=2 * 6 * 8 * 3 * 4 - 1)):  # it and its mask, float32 RGB
        _refused(registry, "FillNFTGenerator", "folder_path", "mask", folder_path="nft")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)
    _refused(registry, "FillNFTGenerator", "folder_path", "decompression bomb", folder_path="nft")


# -- XYZ plot --------------------------------------------------------------------------------------


def test_xyz_plot_lays_ksampler_runs_out_by_the_axes(registry, demo):
    from PIL import Image, ImageDraw, ImageFont
    model, positive, negative, vae = demo
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))}
    common = dict(model=model, positive=positive, negative=negative, seed=9, steps=2, cfg=5.0, sampler_name="euler",
                  scheduler="karras", denoise=1.0)
    grid = call(registry, "FillKSamplerXYZPlot", latent_image=latent, vae=vae, x_axis="steps", x_values="1, 2",
                y_axis="cfg", y_values="2,6", **common)
    cell = 64  # the demo VAE decodes 8 latent pixels to 64
    side = 2 * (cell + 70) + 70 + 150
    assert grid.shape == (1, side, side, 3)
    levels = np.round(grid[0].numpy() * 255).astype(np.uint8)
    for row, cfg in enumerate((2.0, 6.0)):
        for column, steps in enumerate((1, 2)):
            sampled = call(registry, "KSampler", latent_image=latent, **{**common, "steps": steps, "cfg": cfg})
            want = (np.clip(call(registry, "VAEDecode", samples=sampled, vae=vae)[0].numpy() * 255, 0, 255)
                    ).astype(np.uint8)
            x = column * (cell + 70) + 70 + 150
            y = (1 - row) * (cell + 70) + 70  # the first y value at the bottom
            assert np.array_equal(levels[y:y + cell, x:x + cell], want), (cfg, steps)
    assert tuple(levels[side - 150, 300]) == (255, 0, 0) and tuple(levels[40, 150]) == (255, 0, 0)  # the axes
    under_first = levels[side - 145:side - 130, 150 + 70:150 + 70 + cell]
    assert (under_first < 128).any()  # its value's label
    single = (70 + 70 + 150) + cell
    for mode in ("horizontal", "vertical"):
        stacked = call(registry, "FillKSamplerXYZPlot", latent_image=latent, vae=vae, x_axis="steps", x_values="1",
                       y_axis="steps", y_values="2", z_axis="sampler_name", z_values="euler,ddim",
                       z_stack_mode=mode, **common)
        assert stacked.shape == ((1, single, 2 * single, 3) if mode == "horizontal" else (1, 2 * single, single, 3))
        levels = np.round(stacked[0].numpy() * 255).astype(np.uint8)
        for at, sampler in enumerate(("euler", "ddim")):  # the z grids in order, each titled at its top
            top, left = (0, at * single) if mode == "horizontal" else (at * single, 0)
            sampled = call(registry, "KSampler", latent_image=latent, **{**common, "steps": 2,
                                                                         "sampler_name": sampler})
            want = (np.clip(call(registry, "VAEDecode", samples=sampled, vae=vae)[0].numpy() * 255, 0, 255)
                    ).astype(np.uint8)
            assert np.array_equal(levels[top + 70:top + 70 + cell, left + 220:left + 220 + cell], want), (mode, at)
            title = Image.new("RGB", (single - 200, 40), "white")
            ImageDraw.Draw(title).text((0, 10), f"sampler_name: {sampler}", fill="black",
                                       font=ImageFont.load_default())
            assert np.array_equal(levels[top:top + 40, left + 200:left + single], np.asarray(title)), (mode, at)
    _refused(registry, "FillKSamplerXYZPlot", "x_values", "not a sampler_name", latent_image=latent, vae=vae,
             x_axis="sampler_name", x_values="euler,bogus", y_axis="cfg", y_values="1", **common)
    _refused(registry, "FillKSamplerXYZPlot", "y_values", "outside", latent_image=latent, vae=vae, x_axis="cfg",
             x_values="1", y_axis="denoise", y_values="1.5", **common)
    _refused(registry, "FillKSamplerXYZPlot", "vae", latent_image=latent, x_values="1", y_values="1", **common)


def test_xyz_plot_refuses_an_oversized_grid_before_sampling(registry, demo, monkeypatch):
    import nodes.pack_nodes

    def sampled(*args, **kwargs):
        raise AssertionError("sampled before the grid's size was checked")
    monkeypatch.setattr(nodes.pack_nodes, "_core", sampled)
    model, positive, negative, vae = demo
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    # 121 columns of 64-pixel cells: 121 × (64 + 70) + 70 + 150 = 16,434 pixels wide, past 16,384
    _refused(registry, "FillKSamplerXYZPlot", "x_values", "16434", model=model, positive=positive,
             negative=negative, latent_image=latent, vae=vae, x_axis="steps", x_values=",".join(["1"] * 121),
             y_axis="cfg", y_values="1")
    # two z grids of 61 columns stacked across: 2 × (61 × 134 + 220) = 16,788
    _refused(registry, "FillKSamplerXYZPlot", "x_values", "16788", model=model, positive=positive,
             negative=negative, latent_image=latent, vae=vae, x_axis="steps", x_values=",".join(["1"] * 61),
             y_axis="cfg", y_values="1", z_axis="denoise", z_values="1,0.5", z_stack_mode="horizontal")


# -- fractal sampler -------------------------------------------------------------------------------


def test_fractal_ksampler_resamples_the_enlarged_latents_quadrants_and_blends_them(registry, demo):
    model, positive, negative, vae = demo
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))}
    common = dict(model=model, positive=positive, negative=negative, steps=2, cfg=5.0, sampler_name="euler",
                  scheduler="normal", denoise=0.6)
    out, passed = call(registry, "FillFractalKSampler", vae=vae, seed=11, latent_image=latent, scale_factor=1.5,
                       blend_factor=0.3, fractal_levels=1, **common)
    assert passed is vae
    first = call(registry, "KSampler", seed=11, latent_image=latent, **common)["samples"]
    enlarged = F.interpolate(first, size=(12, 12), mode="bilinear", align_corners=False)  # int(8 × 1.5)
    want = enlarged.clone()
    for i, (top, left) in enumerate(((0, 0), (0, 6), (6, 0), (6, 6))):  # reading order, seed + i
        quadrant = enlarged[:, :, top:top + 6, left:left + 6]
        sampled = call(registry, "KSampler", seed=11 + i, latent_image={"samples": quadrant}, **common)["samples"]
        want[:, :, top:top + 6, left:left + 6] = sampled * 0.3 + quadrant * 0.7
    torch.testing.assert_close(out["samples"], want)
    _refused(registry, "FillFractalKSampler", "fractal_levels", "from 2 on", vae=vae, seed=0, latent_image=latent,
             **common)  # its default, 2, as the pack fails there
    _refused(registry, "FillFractalKSampler", "seed", vae=vae, seed=0xffffffffffffffff, latent_image=latent,
             fractal_levels=1, **common)


def test_fractal_ksampler_reads_the_packs_wip_layout_and_refuses_its_first(registry):
    from graphflow.workflow import WorkflowFormatError
    read = _ui_read(registry, "FL_FractalKSampler", [5, "fixed", 12, 6.0, "ddim", "karras", 0.7, 1.5, 0.4, 1])
    assert read == {"seed": 5, "steps": 12, "cfg": 6.0, "sampler_name": "ddim", "scheduler": "karras", "denoise": 0.7,
                    "scale_factor": 1.5, "blend_factor": 0.4, "fractal_levels": 1}
    with pytest.raises(WorkflowFormatError, match="ab164ec2"):
        _ui_read(registry, "FL_FractalKSampler", [5, "fixed", 12, 6.0, "ddim", "karras", 0.7, 3])


# -- upscale model ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    from graphflow.models.upscale import load_upscale_model
    from graphflow.testing import write_esrgan
    return load_upscale_model(write_esrgan(tmp_path_factory.mktemp("upscale") / "x2.safetensors", scale=2))


@pytest.mark.parametrize("method", ["bilinear", "lanczos", "area"])
def test_upscale_model_runs_the_model_then_downscales(registry, upscaler, method, monkeypatch):
    import graphflow.models.upscale
    images = _images(18, 3, 12, 10)
    batches, upscale = [], graphflow.models.upscale.upscale_fitting

    def counted(model, image, *args, **kwargs):
        batches.append(image.shape[0])
        return upscale(model, image, *args, **kwargs)
    monkeypatch.setattr(graphflow.models.upscale, "upscale_fitting", counted)
    out = call(registry, "FillUpscaleModel", upscale_model=upscaler, image=images, downscale_by=0.35,
               rescale_method=method, precision="32", batch_size=2)
    assert batches == [2, 1]  # batch_size images at a time
    monkeypatch.undo()
    upscaled = call(registry, "ImageUpscaleWithModel", upscale_model=upscaler, image=images)
    mode = "bicubic" if method == "lanczos" else method  # the pack's lanczos runs torch's bicubic
    want = F.interpolate(upscaled.permute(0, 3, 1, 2), size=(round(24 * 0.35), round(20 * 0.35)), mode=mode,
                         align_corners=False if mode != "area" else None).permute(0, 2, 3, 1).clamp(0, 1)
    torch.testing.assert_close(out, want)
    whole = call(registry, "FillUpscaleModel", upscale_model=upscaler, image=images, precision="auto")
    assert torch.equal(whole, upscaled)  # a CPU runs float32 on auto


def test_upscale_model_runs_a_copy_in_another_precision(registry, upscaler, monkeypatch):
    import copy

    import nodes.pack_nodes_fill3 as fill3
    monkeypatch.setattr(fill3, "_upscale_dtype", lambda model, precision: torch.bfloat16)
    images = _images(19, 1, 8, 8)
    out = call(registry, "FillUpscaleModel", upscale_model=upscaler, image=images, precision="16")
    network = copy.deepcopy(upscaler.model).to(torch.bfloat16)
    with torch.no_grad():
        want = network(images.permute(0, 3, 1, 2).to(torch.bfloat16)).float().clamp(0, 1).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, want)
    assert next(upscaler.model.parameters()).dtype == torch.float32  # the shared model is left as it was
    again = call(registry, "FillUpscaleModel", upscale_model=upscaler, image=images, precision="16")
    assert torch.equal(again, out) and len(fill3._CAST_COPIES[upscaler.model]) == 1  # the copy is kept


def test_upscale_models_copy_is_cast_onto_the_cpu_a_tensor_at_a_time(upscaler, monkeypatch):
    import nodes.pack_nodes_fill3 as fill3

    def whole_copy(*args):
        raise AssertionError("a tensor of the network copied as it is (on its device, in its dtype)")
    monkeypatch.setattr(torch.Tensor, "__deepcopy__", whole_copy)
    monkeypatch.setattr(torch.nn.Parameter, "__deepcopy__", whole_copy)
    copy = fill3._cast_copy(upscaler.model, torch.float16)
    assert copy is not upscaler.model and fill3._cast_copy(upscaler.model, torch.float16) is copy
    for (name, theirs), (_, ours) in zip(upscaler.model.state_dict().items(), copy.state_dict().items()):
        assert ours.dtype == torch.float16 and ours.device.type == "cpu", name
        assert torch.equal(ours, theirs.to(torch.float16)), name


def test_upscale_model_picks_the_packs_precision_for_the_device(upscaler, monkeypatch):
    import graphflow.device
    from nodes.pack_nodes_fill3 import _upscale_dtype
    assert [_upscale_dtype(upscaler, p) for p in ("auto", "32", "16")] == [torch.float32] * 3  # a CPU
    with pytest.raises(NodeInputError) as caught:
        _upscale_dtype(upscaler, "bfloat16")
    assert caught.value.input == "precision"
    monkeypatch.setattr(graphflow.device, "compute_device", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert [_upscale_dtype(upscaler, p) for p in ("auto", "32", "16", "bfloat16")] == [
        torch.float16, torch.float32, torch.float16, torch.bfloat16]  # ESRGAN takes half and bfloat16


# -- nodes that do nothing here ------------------------------------------------------------------


def test_a_ui_save_holding_the_games_and_system_check_runs_as_in_comfyui(registry):
    from tests.test_pack_nodes import ui_graph, ui_node
    nodes = [ui_node(1, "FL_BulletHellGame", []), ui_node(2, "FL_TetrisGame", []), ui_node(3, "FL_SystemCheck", []),
             ui_node(4, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(5, "PreviewImage", [], [("images", "IMAGE", 1, False)])]
    result = run_graph(registry, ui_graph(nodes, [[1, 4, 0, 5, 0, "IMAGE"]]))
    assert result.values["4"][0].shape == (1, 8, 8, 3)
    assert not result.values.get("3")  # run as the output node it is, giving nothing
    assert registry.comfy_node("FL_SystemCheck").output_node and not registry.comfy_node("FL_TetrisGame").output_node


# -- UI saves --------------------------------------------------------------------------------------

# class: (widgets_values as the pack's editor saves them at 88056c54, the values read, by our input names)
UI_SAVES = {
    "FL_PasteByMask": (["keep_ratio_fit", "screen", 7],
                       {"resize_behavior": "keep_ratio_fit", "blend_mode": "screen", "feather_amount": 7}),
    "FL_BlackFrameReject": ([90.0, 0.1, "rgb", True, False], {"threshold": 90.0, "black_level": 0.1, "channels": "rgb",
                                                             "invert": True, "show_progress": False}),
    "FL_SDUltimate_Slices": (["2x3", 1.5], {"slicing": "2x3", "multiplier": 1.5}),
    "FL_AnimeLineExtractor": ([0.4, 2, 0.5, 0.3, True], {"line_threshold": 0.4, "line_width": 2, "detail_level": 0.5,
                                                         "noise_reduction": 0.3, "invert_output": True}),
    "FL_VideoCropMask": ([256, 128, 5, 0.3], {"output_width": 256, "output_height": 128, "padding": 5,
                                              "smoothing_factor": 0.3}),
    "FL_VideoRecompose": ([], {}),
    "FL_API_Base64_ImageLoader": (["iVBOR", "job1", "user9", "portraits", 64, 0, False, True],
                                  {"base64_string": "iVBOR", "job_id": "job1", "user_id": "user9",
                                   "job_category": "portraits", "resize_width": 64, "resize_height": 0,
                                   "maintain_aspect_ratio": False, "auto_clean_base64": True}),
    "FL_API_ImageSaver": (["job1", "user9", "portraits", "api", "webp", 90],
                          {"job_id": "job1", "user_id": "user9", "job_category": "portraits", "base_output_dir": "api",
                           "image_format": "webp", "image_quality": 90}),
    "FL_ImageCaptionLayout": (["set", 2, 128, 48, 10, 4], {"image_directory": "set", "images_per_row": 2,
                                                          "image_size": 128, "caption_height": 48, "font_size": 10,
                                                          "padding": 4}),
    "FL_ZipDirectory": (["run", "x.zip"], {"directory_path": "run", "zip_filename": "x.zip"}),
    "FL_ClipScanner": (["FLUX (ViT-L/14)", "a cat"], {"model_type": "FLUX (ViT-L/14)", "text": "a cat"}),
    "FL_NFTGenerator": (["nft", 5], {"folder_path": "nft", "dummy_seed": 5}),
    "FL_UpscaleModel": ([0.5, "bicubic", "16", 4], {"downscale_by": 0.5, "rescale_method": "bicubic",
                                                     "precision": "16", "batch_size": 4}),
    "FL_KSamplerXYZPlot": ([42, "fixed", "latent", 10, 6.5, "ddim", "karras", 0.8, "cfg", "4,8", "steps", "5,10",
                            "sampler_name", "euler,ddim", "horizontal"],
                           {"seed": 42, "input_type": "latent", "steps": 10, "cfg": 6.5, "sampler_name": "ddim",
                            "scheduler": "karras", "denoise": 0.8, "x_axis": "cfg", "x_values": "4,8",
                            "y_axis": "steps", "y_values": "5,10", "z_axis": "sampler_name", "z_values": "euler,ddim",
                            "z_stack_mode": "horizontal"}),
    "FL_ProResVideo": ([25.0, "take", "pro"], {"fps": 25.0, "filename": "take", "save_directory": "pro"}),
    "FL_VideoCut": (["./output/cuts", 30, 20.0, 8, 90, "histogram", 2, False, False],
                    {"output_folder": "./output/cuts", "fps": 30, "threshold": 20.0, "min_scene_length": 8,
                     "output_quality": 90, "detection_method": "histogram", "max_workers": 2,
                     "downsample_detection": False, "use_gpu_acceleration": False}),
    "FL_BulletHellGame": ([], {}), "FL_SystemCheck": ([], {}),
    "FL_VideoCaptionSaver": (["clips", "hi", "v", 12.0, "avi", 5, False],
                             {"folder_name": "clips", "caption_text": "hi", "video_name": "v", "fps": 12.0,
                              "format": "avi", "quality": 5, "overwrite": False}),
}


def _ui_read(registry, class_type, widgets):
    from tests.test_pack_nodes import ui_graph, ui_node
    workflow = parse_workflow(ui_graph([ui_node(1, class_type, widgets)]), registry)
    return {name: value for name, value in workflow.nodes["1"].inputs.items() if not isinstance(value, list)}


@pytest.mark.parametrize("class_type", sorted(UI_SAVES))
def test_a_ui_save_of_the_packs_layout_reads_each_widget_in_place(registry, class_type):
    widgets, want = UI_SAVES[class_type]
    assert _ui_read(registry, class_type, widgets) == want


def test_ui_saves_of_the_packs_earlier_layouts_load_or_are_refused_naming_the_version(registry):
    from graphflow.workflow import WorkflowFormatError
    earlier = _ui_read(registry, "FL_AnimeLineExtractor", [0.4, 2, 0.5, 0.3])  # 504358021a: no invert_output
    assert earlier == {"line_threshold": 0.4, "line_width": 2, "detail_level": 0.5, "noise_reduction": 0.3}
    for class_type, widgets, version in (
            ("FL_API_Base64_ImageLoader", ["iVBOR", "job1", "portraits", 0, 0, True, True], "655316e6"),
            ("FL_API_ImageSaver", ["job1", "portraits", "api", "png", 100], "19588f1b")):
        with pytest.raises(WorkflowFormatError, match=version):
            _ui_read(registry, class_type, widgets)
