"""sipherxyz's comfyui-art-venture (nodes/pack_nodes_art_venture.py): each node against the library
call the pack makes (Pillow's resize / alpha_composite / GaussianBlur, OpenCV's Lab conversions,
torch.randint and torch.rand drawn anew each run, random.Random.shuffle) or its formula written out
here, with the pack's 8-bit round trip (x · 255 clipped and cut to a level, levels / 255 back);
inputs in the pack's order with its defaults and ranges; bad inputs refused by name; a UI-format
save under the pack's class names."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from graphflow.comfy_format import custom_pack, export_ui, unknown_type_hint
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

cv2 = pytest.importorskip("cv2")

BIG = float(0xFFFFFFFFFFFFFFFF)
SEED_MAX = 0xFFFFFFFFFFFFFFFF


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def _images(seed=0, batch=2, height=20, width=28, channels=3):
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(seed))


def _pil(image):
    """The pack's tensor2pil: 255 · x clipped, cut to uint8, squeezed."""
    return Image.fromarray(np.clip(255.0 * image.numpy(), 0, 255).astype(np.uint8).squeeze())


def _back(picture):
    """The pack's pil2tensor (without its batch axis), a channel axis kept for grey pictures."""
    levels = np.array(picture).astype(np.float32) / 255.0
    return torch.from_numpy(levels if levels.ndim == 3 else levels[..., None])


def _refused(registry, node_type, input_name, match=None, **inputs):
    with pytest.raises(NodeInputError, match=match) as caught:
        call(registry, node_type, **inputs)
    assert caught.value.input == input_name
    return caught.value


# -- the pack's INPUT_TYPES, as read ---------------------------------------------------------------

# class: [(input, kind, default, min, max)], kind a socket type or the widget's; then outputs, category
PACK = {
    "ImageMuxer": ([("image_1", "IMAGE"), ("image_2", "IMAGE"), ("input_selector", "INT", 0),
                    ("image_3", "IMAGE"), ("image_4", "IMAGE")], ["IMAGE"]),
    "ImageScaleDown": ([("images", "IMAGE"), ("width", "INT", 512, 1, 8192), ("height", "INT", 512, 1, 8192),
                        ("crop", "CHOICE", "disabled")], ["IMAGE"]),
    "ImageScaleDownBy": ([("images", "IMAGE"), ("scale_by", "FLOAT", 0.5, 0.01, 1.0)], ["IMAGE"]),
    "ImageScaleDownToSize": ([("images", "IMAGE"), ("size", "INT", 512, 1, 8192), ("mode", "BOOLEAN", True)],
                             ["IMAGE"]),
    "ImageScaleToMegapixels": ([("images", "IMAGE"), ("megapixels", "FLOAT", 1, 0.1, 100),
                                ("upscale_model_opt", "UPSCALE_MODEL")], ["IMAGE"]),
    "ImageAlphaComposite": ([("image_1", "IMAGE"), ("image_2", "IMAGE")], ["IMAGE"]),
    "ImageGaussianBlur": ([("images", "IMAGE"), ("radius", "INT", 1, 1, 100)], ["IMAGE"]),
    "ImageRepeat": ([("images", "IMAGE"), ("amount", "INT", 1, 1, 1024)], ["IMAGE"]),
    "ImageExtractChannel": ([("images", "IMAGE"), ("channel", "CHOICE", "R")], ["channel_data"]),
    "ImageApplyChannel": ([("images", "IMAGE"), ("channel_data", "MASK"), ("channel", "CHOICE", "R")], ["IMAGE"]),
    "ColorBlend": ([("bw_layer", "IMAGE"), ("color_layer", "IMAGE")], ["IMAGE"]),
    "OverlayInpaintedLatent": ([("original", "LATENT"), ("inpainted", "LATENT"), ("mask", "MASK")], ["LATENT"]),
    "StringToInt": ([("string", "STRING", "0")], ["INT"]),
    "StringToNumber": ([("string", "STRING", "0"), ("rounding", "CHOICE", "round")], ["INT", "FLOAT"]),
    "BooleanPrimitive": ([("value", "BOOLEAN", False), ("reverse", "BOOLEAN", False)], ["BOOLEAN", "STRING"]),
    "NumberScaler": ([("min", "FLOAT", 1.0, 0.0, BIG), ("max", "FLOAT", 10.0, 0.0, BIG),
                      ("scale_to_min", "FLOAT", 0.0, 0.0, BIG), ("scale_to_max", "FLOAT", 1.0, 0.0, BIG),
                      ("value", "FLOAT", 0.0, 0.0, BIG)], ["FLOAT"]),
    "RandomInt": ([("min", "INT", 0, 0, SEED_MAX), ("max", "INT", 100, 0, SEED_MAX)], ["INT", "STRING"]),
    "RandomFloat": ([("min", "FLOAT", 0.0, 0.0, BIG), ("max", "FLOAT", 1.0, 0.0, BIG)], ["FLOAT", "STRING"]),
    "SeedSelector": ([("mode", "BOOLEAN", True), ("seed", "INT", 0, 0, SEED_MAX),
                      ("fixed_seed", "INT", 0, 0, SEED_MAX)], ["seed"]),
    "AspectRatioSelector": ([("aspect_ratio", "CHOICE", "1:1")], ["ratio", "width", "height"]),
    "SDXLAspectRatioSelector": ([("aspect_ratio", "CHOICE", "1:1")], ["ratio", "width", "height"]),
    "CheckpointNameSelector": ([("ckpt_name", "CHOICE")], ["ckpt_name", "ckpt_name_str"]),
    "TextRandomMultiline": ([("text", "STRING", ""), ("amount", "INT", 1, 1, 1024),
                             ("seed", "INT", 0, 0, SEED_MAX)], ["lines"]),
    "TextSwitchCase": ([("switch_cases", "STRING", ""), ("condition", "STRING", ""),
                        ("default_value", "STRING", ""), ("delimiter", "STRING", ":")], ["STRING"]),
    "LoadJsonFromText": ([("data", "STRING", "")], ["JSON"]),
    **{f"Get{kind}FromJson": ([("json", "JSON"), ("key", "STRING", "")], [out])
       for kind, out in (("Object", "JSON"), ("Text", "STRING"), ("Float", "FLOAT"), ("Int", "INT"),
                         ("Bool", "BOOLEAN"))},
}
CHOICES = {("ImageScaleDown", "crop"): ["disabled", "center"],
           ("StringToNumber", "rounding"): ["round", "floor", "ceil"],
           ("ImageExtractChannel", "channel"): ["R", "G", "B", "A"],
           ("ImageApplyChannel", "channel"): ["R", "G", "B", "A"],
           ("AspectRatioSelector", "aspect_ratio"): ["1:1", "2:3", "3:4", "9:16", "3:2", "4:3", "16:9"],
           ("SDXLAspectRatioSelector", "aspect_ratio"): ["1:1", "2:3", "3:4", "5:8", "9:16", "9:19", "9:21", "3:2",
                                                         "4:3", "8:5", "16:9", "19:9", "21:9"]}


def _by_class(registry):
    found = {}
    for cls in registry:
        if cls.__module__ == "nodes.pack_nodes_art_venture":
            for alias in (cls.comfy if isinstance(cls.comfy, tuple) else (cls.comfy,)):
                for name in alias.class_types:
                    found[name] = cls
    return found


def test_inputs_outputs_and_categories_follow_the_pack(registry):
    found = _by_class(registry)
    assert set(found) == set(PACK)
    for class_type, (inputs, outputs) in PACK.items():
        cls = found[class_type]
        specs = list(cls.input_specs.values())
        assert [s.name for s in specs] == [i[0] for i in inputs], class_type
        for spec, (name, kind, *numbers) in zip(specs, inputs):
            assert spec.type == kind, (class_type, name)
            if numbers:
                assert spec.default == numbers[0], (class_type, name)
            if len(numbers) == 3:
                assert (spec.widget.min, spec.widget.max) == tuple(numbers[1:]), (class_type, name)
            if (class_type, name) in CHOICES:
                assert list(spec.widget.options) == CHOICES[class_type, name]
        assert [o.name for o in cls.output_specs] == outputs, class_type
        want = {"ColorBlend": "ArtVenture/Post Processing", "OverlayInpaintedLatent": "Art Venture/Inpainting"}
        assert cls.category == want.get(class_type, "Art Venture/Utils")
        assert custom_pack(class_type) == "comfyui-art-venture"


def test_left_out_classes_are_named_with_why():
    hint = unknown_type_hint("LoadImageFromUrl")
    assert "web addresses" in hint and "comfyui-art-venture" in hint
    assert "segment-anything" in unknown_type_hint("AV_SAMLoader")
    assert "pictures its JSON names" in unknown_type_hint("AV_StyleApply")
    assert "comfyui-art-venture" in unknown_type_hint("AV_SomeLaterClass")
    assert custom_pack("ImageRepeatSomething") is None  # whole names only


# -- images ------------------------------------------------------------------------------------------


def _pack_scale_down(images, width, height, crop):
    if crop == "center":
        old_h, old_w = images.shape[1:3]
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        images = images[:, y:old_h - y, x:old_w - x, :]
    return torch.stack([_back(_pil(i).convert("RGB").resize((width, height), Image.Resampling.LANCZOS))
                        for i in images])


@pytest.mark.parametrize("width, height, crop, channels", [(12, 9, "center", 3), (9, 12, "center", 4),
                                                           (14, 10, "disabled", 1), (30, 25, "disabled", 3)])
def test_scale_down_equals_pillows_lanczos_after_the_packs_crop(registry, width, height, crop, channels):
    images = _images(1, channels=channels)
    out = call(registry, "AVImageScaleDown", images=images, width=width, height=height, crop=crop)
    assert out.shape == (2, height, width, 3)
    assert torch.equal(out, _pack_scale_down(images, width, height, crop))


def test_scale_down_by_and_to_size(registry):
    images = _images(2, height=21, width=33)
    out = call(registry, "AVImageScaleDownBy", images=images, scale_by=0.37)
    assert torch.equal(out, _pack_scale_down(images, int(33 * 0.37), int(21 * 0.37), "center"))
    longer = call(registry, "AVImageScaleDownToSize", images=images, size=16, mode=True)
    assert torch.equal(longer, _pack_scale_down(images, int(33 * 16 / 33), int(21 * 16 / 33), "center"))
    shorter = call(registry, "AVImageScaleDownToSize", images=images, size=10, mode=False)
    assert torch.equal(shorter, _pack_scale_down(images, int(33 * 10 / 21), int(21 * 10 / 21), "center"))
    kept = call(registry, "AVImageScaleDownToSize", images=images, size=500, mode=True)
    assert torch.equal(kept, _pack_scale_down(images, 33, 21, "center"))  # scale 1: the 8-bit round trip only
    _refused(registry, "AVImageScaleDownBy", "scale_by", "under one pixel", images=images[:, :40, :3], scale_by=0.01)


def _comfy_bicubic(images, width, height, crop=False):
    """ComfyUI's common_upscale(..., "bicubic", crop) written out: its centre crop to the new aspect
    ratio (round of the cut), then torch's bicubic interpolate, unclamped."""
    x = images.movedim(-1, 1)
    if crop:
        old_width, old_height = x.shape[3], x.shape[2]
        old_aspect, new_aspect = old_width / old_height, width / height
        if old_aspect > new_aspect:
            cut = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
            x = x[:, :, :, cut:old_width - cut]
        elif old_aspect < new_aspect:
            cut = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
            x = x[:, :, cut:old_height - cut]
    return torch.nn.functional.interpolate(x, size=(height, width), mode="bicubic").movedim(1, -1)


def test_scale_to_megapixels_down_and_bicubic_up(registry):
    images = _images(3, height=400, width=300)
    scale = math.sqrt(0.1 * 1024 * 1024 / (300 * 400))
    down = call(registry, "AVImageScaleToMegapixels", images=images, megapixels=0.1)
    assert torch.equal(down, _pack_scale_down(images, int(300 * scale), int(400 * scale), "center"))
    small = _images(4, height=280, width=300)
    scale = math.sqrt(0.1 * 1024 * 1024 / (300 * 280))
    assert scale > 1.0
    up = call(registry, "AVImageScaleToMegapixels", images=small, megapixels=0.1)  # no model: bicubic
    core = _comfy_bicubic(small, round(300 * scale), round(280 * scale))
    assert up.shape == (2, round(280 * scale), round(300 * scale), 3) and torch.equal(up, core)


def test_scale_to_megapixels_holds_an_enlargement_the_planner_cannot_size_to_the_limits(registry, tmp_folders):
    """A loaded picture's size is known only while running: the enlarged size is checked then."""
    from graphflow.resource_limits import RunLimits
    strip = _images(7, batch=1, height=1, width=4096)  # 1 MP of it is 65536×16
    _refused(registry, "AVImageScaleToMegapixels", "megapixels", "65536×16, over 16384 pixels a side",
             images=strip, megapixels=1.0)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_folders.inputs / "small.png")
    graph = parse_workflow({"nodes": {
        "1": {"type": "LoadImage", "inputs": {"image": "small.png"}},
        "2": {"type": "AVImageScaleToMegapixels", "inputs": {"images": ["1", 0], "megapixels": 1.0}}}}, registry)
    for limits, message in ((RunLimits(max_pixels=10 ** 6), "1024×1024, larger than this server allows"),
                            (RunLimits(ram_bytes=2 ** 22), "1024×1024: the images")):
        result = Executor(registry, limits=limits).run(graph, outputs=["2"])
        assert result.status == "error" and (result.error["node_id"], result.error["input"]) == ("2", "megapixels")
        assert message in result.error["message"]
    result = Executor(registry, limits=RunLimits(max_pixels=1024 * 1024)).run(graph, outputs=["2"])
    assert result.ok and result.values["2"][0].shape == (1, 1024, 1024, 3)


def test_scale_to_megapixels_with_a_model_upscales_then_scales_down(registry, tmp_folders, monkeypatch):
    from graphflow.testing import write_esrgan
    (tmp_folders.models / "upscale_models").mkdir(exist_ok=True)
    write_esrgan(tmp_folders.models / "upscale_models" / "x2.safetensors", scale=2)
    model = call(registry, "LoadUpscaleModel", model_name="x2.safetensors")
    images = _images(5, batch=1, height=24, width=32)
    scale = math.sqrt(0.1 * 1024 * 1024 / (32 * 24))
    out = call(registry, "AVImageScaleToMegapixels", images=images, megapixels=0.1, upscale_model_opt=model)
    upscaled = call(registry, "ImageUpscaleWithModel", upscale_model=model, image=images)
    assert upscaled.shape == (1, 48, 64, 3)
    assert out.shape == (1, round(24 * scale), round(32 * scale), 3)
    assert torch.equal(out, _pack_scale_down(upscaled, round(32 * scale), round(24 * scale), "center"))
    # the model's full-size result is held to the pixel limit before it runs
    import nodes.pack_nodes_easyuse_samplers as samplers
    monkeypatch.setattr(samplers, "HIRES_MAX_PIXELS", 48 * 64 - 1)
    _refused(registry, "AVImageScaleToMegapixels", "upscale_model_opt", "64x48", images=images, megapixels=0.1,
             upscale_model_opt=model)
    monkeypatch.undo()
    # under 1.2 times the model is not used
    near = _images(6, batch=1, height=300, width=320)
    plain = call(registry, "AVImageScaleToMegapixels", images=near, megapixels=0.1)
    assert torch.equal(call(registry, "AVImageScaleToMegapixels", images=near, megapixels=0.1,
                            upscale_model_opt=model), plain)


def test_alpha_composite_blur_and_repeat_against_pillow(registry):
    below, above = _images(7, channels=3), _images(8, channels=4)
    out = call(registry, "AVImageAlphaComposite", image_1=below, image_2=above)
    want = torch.stack([_back(Image.alpha_composite(_pil(a).convert("RGBA"), _pil(b).convert("RGBA")))
                        for a, b in zip(below, above)])
    assert out.shape == (2, 20, 28, 4) and torch.equal(out, want)
    _refused(registry, "AVImageAlphaComposite", "image_2", "2 channels", image_1=below, image_2=above[..., :2])
    _refused(registry, "AVImageAlphaComposite", "image_2", "the same size", image_1=below, image_2=above[:, :10])
    for channels in (1, 3, 4):
        images = _images(9, channels=channels)
        blurred = call(registry, "AVImageGaussianBlur", images=images, radius=3)
        assert torch.equal(blurred, torch.stack([_back(_pil(i).filter(ImageFilter.GaussianBlur(radius=3)))
                                                 for i in images]))
    images = _images(10)
    repeated = call(registry, "AVImageRepeat", images=images, amount=3)
    assert repeated.shape[0] == 6 and torch.equal(repeated[4], images[0]) and torch.equal(repeated[5], images[1])


def test_extract_and_apply_channel(registry):
    rgba = _images(11, channels=4)
    assert torch.equal(call(registry, "AVImageExtractChannel", images=rgba, channel="A"), rgba[..., 3])
    mask = torch.rand(2, 20, 28)
    assert torch.equal(call(registry, "AVImageExtractChannel", images=mask, channel="B"), mask)
    rgb = _images(12)
    one = torch.rand(1, 20, 28)
    out = call(registry, "AVImageApplyChannel", images=rgb, channel_data=one, channel="G")
    assert torch.equal(out[..., 1], one.expand(2, -1, -1)) and torch.equal(out[..., [0, 2]], rgb[..., [0, 2]])
    out = call(registry, "AVImageApplyChannel", images=rgb, channel_data=mask, channel="A")
    assert out.shape[-1] == 4 and torch.equal(out[..., 3], mask) and torch.equal(out[..., :3], rgb)
    assert torch.equal(rgb, _images(12))  # the input is not changed in place
    _refused(registry, "AVImageExtractChannel", "channel", "no alpha", images=rgb, channel="A")
    _refused(registry, "AVImageApplyChannel", "channel_data", "3 masks", images=rgb,
             channel_data=torch.rand(3, 20, 28), channel="R")
    _refused(registry, "AVImageApplyChannel", "channel_data", "20×20", images=rgb,
             channel_data=torch.rand(1, 20, 20), channel="R")
    grey = _images(13, channels=1)  # GaussianBlur keeps one-channel images
    out = call(registry, "AVImageApplyChannel", images=grey, channel_data=mask, channel="A")
    assert torch.equal(out[..., :3], grey.expand(-1, -1, -1, 3)) and torch.equal(out[..., 3], mask)
    _refused(registry, "AVImageApplyChannel", "images", "2 channels", images=_images(14, channels=2),
             channel_data=mask, channel="A")


def _pack_color_blend(bw, color):
    _, a, b = cv2.split(cv2.cvtColor(color, cv2.COLOR_BGR2Lab))
    return cv2.cvtColor(cv2.merge((cv2.cvtColor(bw, cv2.COLOR_BGR2GRAY), a, b)), cv2.COLOR_Lab2BGR)


def test_color_blend_against_opencv(registry):
    bw, color = _images(13, batch=1), _images(14, batch=3)
    out = call(registry, "AVColorBlend", bw_layer=bw, color_layer=color)
    assert out.shape == (3, 20, 28, 3)
    for i in range(3):
        want = _pack_color_blend((bw[0] * 255).to(torch.uint8).numpy(), (color[i] * 255).to(torch.uint8).numpy())
        assert torch.equal(out[i], torch.from_numpy(want.astype(np.float32) / 255))
    # another size: the colour layer resized by ComfyUI's bicubic with a centre crop first
    other = _images(15, batch=1, height=30, width=30)
    resized = _comfy_bicubic(other, 28, 20, crop=True)
    out = call(registry, "AVColorBlend", bw_layer=bw, color_layer=other)
    want = _pack_color_blend((bw[0] * 255).to(torch.uint8).numpy(), (resized[0] * 255).to(torch.uint8).numpy())
    assert torch.equal(out[0], torch.from_numpy(want.astype(np.float32) / 255))
    _refused(registry, "AVColorBlend", "color_layer", "4 channels", bw_layer=bw, color_layer=_images(1, channels=4))


def test_overlay_inpainted_latent_against_the_packs_mask_resize(registry):
    for channels in (4, 16):
        original = torch.randn(2, channels, 6, 5, generator=torch.Generator().manual_seed(channels))
        inpainted = torch.randn(2, channels, 6, 5, generator=torch.Generator().manual_seed(channels + 1))
        mask = torch.rand(2, 48, 40, generator=torch.Generator().manual_seed(3))
        out = call(registry, "AVOverlayInpaintedLatent", original={"samples": original, "noise_mask": mask},
                   inpainted={"samples": inpainted}, mask=mask)
        assert list(out) == ["samples"]
        for i in range(2):
            small = _pil(mask[i]).convert("RGB").resize((5, 6))  # Pillow's default filter: bicubic
            keep = torch.from_numpy(np.around(np.array(small, dtype=np.float32)[..., 0] / 255))
            assert 0 < float(keep.mean()) < 1
            assert torch.equal(out["samples"][i], inpainted[i] * keep + original[i] * (1 - keep))
    _refused(registry, "AVOverlayInpaintedLatent", "mask", "batch of 2", original={"samples": original},
             inpainted={"samples": inpainted}, mask=mask[:1])
    video = torch.zeros(1, 4, 2, 6, 5)
    _refused(registry, "AVOverlayInpaintedLatent", "original", "image latent", original={"samples": video},
             inpainted={"samples": video}, mask=mask[:1])
    _refused(registry, "AVOverlayInpaintedLatent", "inpainted", "original's", original={"samples": original},
             inpainted={"samples": inpainted[:1]}, mask=mask)


def test_muxer(registry):
    a, b, c = _images(1), _images(2), _images(3)
    assert call(registry, "AVImageMuxer", image_1=a, image_2=b, image_3=c, input_selector=2) is c
    assert call(registry, "AVImageMuxer", image_1=a, image_2=b, input_selector=1) is b
    assert call(registry, "AVImageMuxer", image_1=a, image_2=b, image_3=c, input_selector=-2) is c
    _refused(registry, "AVImageMuxer", "input_selector", "image_4", image_1=a, image_2=b, input_selector=3)


# -- numbers, text and choices -----------------------------------------------------------------------


def test_numbers_and_booleans(registry):
    assert call(registry, "AVStringToInt", string=" -42 ") == -42
    _refused(registry, "AVStringToInt", "string", "whole number", string="4.5")
    _refused(registry, "AVStringToInt", "string", "5000 digits: Python reads at most 4300", string="9" * 5000)
    for text, rounding, whole in (("2.5", "round", 2), ("3.5", "round", 4), ("-2.2", "floor", -3),
                                  ("2.2", "ceil", 3), ("1e3", "round", 1000)):
        assert call(registry, "AVStringToNumber", string=text, rounding=rounding) == (whole, float(text))
    _refused(registry, "AVStringToNumber", "string", "finite", string="inf", rounding="round")
    assert call(registry, "AVBooleanPrimitive", value=True, reverse=True) == (False, "False")
    assert call(registry, "AVBooleanPrimitive", value=False, reverse=True) == (True, "True")
    assert call(registry, "AVNumberScaler", min=2.0, max=6.0, scale_to_min=10.0, scale_to_max=20.0,
                value=3.0) == pytest.approx(12.5)
    assert call(registry, "AVNumberScaler", min=2.0, max=6.0, scale_to_min=10.0, scale_to_max=20.0,
                value=8.0) == pytest.approx(25.0)  # not clamped
    _refused(registry, "AVNumberScaler", "max", "empty", min=3.0, max=3.0, scale_to_min=0.0, scale_to_max=1.0,
             value=1.0)
    assert call(registry, "AVSeedSelector", mode=True, seed=5, fixed_seed=9) == 5
    assert call(registry, "AVSeedSelector", mode=False, seed=5, fixed_seed=9) == 9


def test_random_numbers_are_drawn_anew_each_run_and_shown(registry):
    """As the pack (IS_CHANGED random, torch's global generator): each queue draws a new number,
    never taken from the cache, and the node shows the number it drew."""
    graph = {"nodes": {
        "int": {"type": "AVRandomInt", "inputs": {"min": 10, "max": 2 ** 62}},
        "float": {"type": "AVRandomFloat", "inputs": {"min": 2.0, "max": 6.0}},
        "seen": {"type": "PreviewAny", "inputs": {"source": ["int", 1]}},
        "seen_float": {"type": "PreviewAny", "inputs": {"source": ["float", 0]}}}}
    executor = Executor(registry)
    runs = [executor.run(parse_workflow(graph, registry)) for _ in range(2)]
    assert all(result.ok and {"int", "float"} <= set(result.executed) for result in runs)
    ints = [int(result.outputs["int"]["text"][0]) for result in runs]
    floats = [float(result.outputs["float"]["text"][0]) for result in runs]
    assert ints[0] != ints[1] and all(10 <= n < 2 ** 62 for n in ints)
    assert floats[0] != floats[1] and all(2.0 <= x <= 6.0 for x in floats)
    assert [result.outputs["seen"]["text"][0] for result in runs] == [str(n) for n in ints]
    _refused(registry, "AVRandomInt", "max", "more than min", min=5, max=5)
    _refused(registry, "AVRandomInt", "max", "2\\^63", min=0, max=2 ** 63)


def test_aspect_ratios(registry):
    assert call(registry, "AVSDXLAspectRatioSelector", aspect_ratio="9:21") == ("9:21", 640, 1536)
    assert call(registry, "AVSDXLAspectRatioSelector", aspect_ratio="8:5") == ("8:5", 1216, 768)
    # 832 × 1216 scaled by 768 / 1216, each side cut to a multiple of 8
    assert call(registry, "AVAspectRatioSelector", aspect_ratio="2:3") == ("2:3", 520, 768)
    assert call(registry, "AVAspectRatioSelector", aspect_ratio="16:9") == ("16:9", 768, 432)
    assert call(registry, "AVAspectRatioSelector", aspect_ratio="1:1") == ("1:1", 768, 768)


def test_checkpoint_name_selector(registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    (tmp_folders.models / "checkpoints" / "a.safetensors").write_bytes(b"x")
    assert call(registry, "AVCheckpointNameSelector", ckpt_name="a.safetensors") == ("a.safetensors",) * 2


def test_text_random_multiline_shuffles_as_pythons_random(registry):
    text = "\n one \n\ntwo\nthree  \nfour\n five\n"
    lines = ["one", "two", "three", "four", "five"]
    random.Random(1234).shuffle(lines)
    assert call(registry, "AVTextRandomMultiline", text=text, amount=3, seed=1234) == lines[:3]
    assert sorted(call(registry, "AVTextRandomMultiline", text=text, amount=99, seed=7)) == sorted(lines)


def test_text_switch_case(registry):
    cases = "a:first\nb:second line\ncontinued\nc:x:y"
    switch = dict(switch_cases=cases, default_value="none", delimiter=":")
    assert call(registry, "AVTextSwitchCase", condition="b", **switch) == "second line\ncontinued"
    assert call(registry, "AVTextSwitchCase", condition="c", **switch) == "x:y"
    assert call(registry, "AVTextSwitchCase", condition="a", **switch) == "first"
    assert call(registry, "AVTextSwitchCase", condition="z", **switch) == "none"
    assert call(registry, "AVTextSwitchCase", condition="b", **{**switch, "switch_cases": "b=>1\nb=>2",
                                                               "delimiter": "=>"}) == "1"
    _refused(registry, "AVTextSwitchCase", "delimiter", "empty", condition="a", **{**switch, "delimiter": ""})


# -- JSON --------------------------------------------------------------------------------------------

DOC = {"a": {"b": [{"c": 3}, {"c": "7"}], "flag": True, "n": 0, "name": "x", "none": None}, "f": "2.5"}


def test_json_readers_follow_the_packs_dotted_paths(registry):
    data = call(registry, "AVLoadJsonFromText", data=json.dumps(DOC))
    assert data == DOC
    get = lambda kind, key, source=data: call(registry, f"AVGet{kind}FromJson", json=source, key=key)  # noqa: E731
    assert get("Object", "a.b.[1]") == {"c": "7"}
    assert get("Object", "a.missing") == {} and get("Object", "a.b.[5]") == {} and get("Object", "a.none") == {}
    assert get("Object", "a.b.c") == {}  # a list is indexed only by [n]
    assert get("Text", "a.b.[0].c") == "3" and get("Text", "nothing") == ""
    assert get("Float", "f") == 2.5 and get("Float", "gone") == 0.0
    assert get("Int", "a.b.[1].c") == 7 and get("Int", "a.b.[0].c") == 3
    assert get("Bool", "a.flag") is True and get("Bool", "a.n") is False and get("Bool", "gone") is False
    assert get("Int", "a.b.[0].c", json.dumps(DOC)) == 3  # JSON text, as Crystools' JSON may carry
    _refused(registry, "AVGetBoolFromJson", "key", "not true", json=data, key="a.name")
    _refused(registry, "AVGetIntFromJson", "key", "not a number", json=data, key="a.name")
    _refused(registry, "AVLoadJsonFromText", "data", "not JSON", data="{oops")
    _refused(registry, "AVLoadJsonFromText", "data", "not JSON", data="[" * 100_000)


def _nested(depth, leaf=None):
    value = [] if leaf is None else leaf
    for _ in range(depth):
        value = [value]
    return value


def test_deep_json_is_refused_by_name_and_never_reaches_the_run(registry):
    """Python's parser takes ~990 levels; 600 used to crash Executor.run while caching the value."""
    deep = "[" * 600 + "]" * 600
    _refused(registry, "AVLoadJsonFromText", "data", "deeper than 64", data=deep)
    assert call(registry, "AVLoadJsonFromText", data="[" * 64 + "]" * 64) == _nested(63)
    _refused(registry, "AVLoadJsonFromText", "data", "deeper than 64", data="[" * 65 + "]" * 65)
    _refused(registry, "AVGetObjectFromJson", "json", "deeper than 64", json=deep, key="[0]")
    _refused(registry, "AVGetObjectFromJson", "json", "not JSON", json="[oops", key="[0]")
    result = Executor(registry).run(parse_workflow({"nodes": {
        "1": {"type": "AVLoadJsonFromText", "inputs": {"data": deep}},
        "2": {"type": "PreviewAny", "inputs": {"source": ["1", 0]}}}}, registry))
    assert result.status == "error" and (result.error["node_id"], result.error["input"]) == ("1", "data")


def test_json_getters_on_values_python_cannot_write(registry):
    """A value linked in (not parsed here) nested past the recursion limit, or an int over 4300
    digits, is refused naming an input rather than raising RecursionError / ValueError."""
    deep = {"a": _nested(5000)}
    _refused(registry, "AVGetTextFromJson", "json", "too deeply", json=deep, key="a")
    _refused(registry, "AVGetTextFromJson", "key", "won't write", json={"a": 10 ** 5000}, key="a")
    _refused(registry, "AVGetIntFromJson", "key", "a list, not a number", json=deep, key="a")
    _refused(registry, "AVGetBoolFromJson", "key", "a list, not true", json=deep, key="a")


def test_json_bool_refuses_non_finite_numbers_as_the_float_getter_does(registry):
    for number in (math.nan, math.inf):
        for kind in ("Bool", "Float"):
            _refused(registry, f"AVGet{kind}FromJson", "key", "not", json={"a": number}, key="a")
    assert call(registry, "AVGetBoolFromJson", json={"a": 0.5}, key="a") is True


def test_json_indexes_past_the_start_and_json_strings(registry):
    items = {"a": [1, 2]}
    get = lambda kind, key, source=items: call(registry, f"AVGet{kind}FromJson", json=source, key=key)  # noqa: E731
    assert get("Int", "a.[-1]") == 2 and get("Int", "a.[-2]") == 1  # as Python indexes, as the pack
    assert get("Int", "a.[-3]") == 0 and get("Object", "a.[-5]") == {}  # past the start: the default
    # a JSON document that is a string has no keys: the default, as the pack's get_dict_attribute
    hello = call(registry, "AVLoadJsonFromText", data='"hello"')
    assert hello == "hello" and get("Object", "a", hello) == {} and get("Text", "a", "oops") == ""


# -- a UI-format save --------------------------------------------------------------------------------


def test_a_ui_save_with_the_packs_classes_runs_and_round_trips(registry):
    nodes = [
        ui_node(1, "EmptyImage", [40, 30, 1, 0x336699], outputs=[("IMAGE", "IMAGE", [1, 2])]),
        ui_node(2, "ImageScaleDown", [20, 20, "center"], [("images", "IMAGE", 1, False)],
                [("IMAGE", "IMAGE", [3])]),
        ui_node(3, "ImageRepeat", [3], [("images", "IMAGE", 3, False)], [("IMAGE", "IMAGE", [])]),
        ui_node(4, "SeedSelector", [False, 5, "randomize", 9], outputs=[("seed", "INT", [])]),
        ui_node(5, "StringToNumber", ["2.7", "floor"], outputs=[("INT", "INT", []), ("FLOAT", "FLOAT", [])]),
        ui_node(6, "TextSwitchCase", ["x:1\ny:2", "y", "d", ":"], outputs=[("STRING", "STRING", [])]),
        ui_node(7, "ImageMuxer", [1], [("image_1", "IMAGE", 2, False), ("image_2", "IMAGE", 4, False)],
                [("IMAGE", "IMAGE", [])]),
        ui_node(8, "ImageGaussianBlur", [2], [("images", "IMAGE", 5, False)], [("IMAGE", "IMAGE", [4])]),
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 7, 0, "IMAGE"], [3, 2, 0, 3, 0, "IMAGE"],
             [4, 8, 0, 7, 1, "IMAGE"], [5, 1, 0, 8, 0, "IMAGE"]]
    graph = ui_graph(nodes, links)
    values = run_graph(registry, graph, ["3", "4", "5", "6", "7"]).values
    source = values["1"][0]
    assert torch.equal(values["2"][0], _pack_scale_down(source, 20, 20, "center"))
    assert values["3"][0].shape == (3, 20, 20, 3)
    assert values["4"][0] == 9 and tuple(values["5"]) == (2, 2.7) and values["6"][0] == "2"
    assert torch.equal(values["7"][0], _back(_pil(source[0]).filter(ImageFilter.GaussianBlur(radius=2)))[None])
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for node in nodes:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]


def test_importing_the_module_stays_light():
    import subprocess
    import sys
    code = ("import sys, nodes.pack_nodes_art_venture, nodes.pack_nodes_art_venture_loaders; "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'diffusers', 'cv2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- parameter pipes and loaders (nodes/pack_nodes_art_venture_loaders.py) ---------------------------

from tests.test_pack_nodes import lora_folders, weights  # noqa: E402,F401  (a fixture and its reader)

LOADER_PACK = {
    "AV_CheckpointModelsToParametersPipe": ["ckpt_name", "pipe", "secondary_ckpt_name", "vae_name", "upscaler_name",
                                            "secondary_upscaler_name", "lora_1_name", "lora_2_name", "lora_3_name"],
    "AV_PromptsToParametersPipe": ["positive", "negative", "pipe", "image", "mask"],
    "AV_ParametersPipeToCheckpointModels": ["pipe"],
    "AV_ParametersPipeToPrompts": ["pipe"],
    "AV_VAELoader": ["vae_name", "vae_override"],
    "AV_LoraLoader": ["model", "clip", "lora_name", "strength_model", "strength_clip", "lora_override", "enabled"],
    "AV_LoraListStacker": ["data", "lora_stack"],
    "AV_LoraListLoader": ["model", "clip", "data"],
}


def test_loader_and_pipe_inputs_follow_the_pack(registry):
    found = {}
    for cls in registry:
        if cls.__module__ == "nodes.pack_nodes_art_venture_loaders":
            found.update(dict.fromkeys(cls.comfy.class_types, cls))
    assert set(found) == set(LOADER_PACK)
    for class_type, names in LOADER_PACK.items():
        assert list(found[class_type].input_specs) == names, class_type
        assert custom_pack(class_type) == "comfyui-art-venture"
    lora = found["AV_LoraLoader"].input_specs
    assert (lora["strength_model"].default, lora["lora_override"].default, lora["enabled"].default) == (1.0, "None", True)
    prompts = found["AV_PromptsToParametersPipe"].input_specs
    assert (prompts["positive"].default, prompts["negative"].default) == ("Positive", "Negative")
    assert [o.name for o in found["AV_ParametersPipeToCheckpointModels"].output_specs] == ["pipe", *LOADER_PACK[
        "AV_CheckpointModelsToParametersPipe"][:1], *LOADER_PACK["AV_CheckpointModelsToParametersPipe"][2:]]
    assert [o.name for o in found["AV_ParametersPipeToPrompts"].output_specs] == ["pipe", "positive", "negative",
                                                                                  "image", "mask"]


def test_pipes_carry_names_prompts_and_pictures(registry, lora_folders):
    given = {"positive": "kept", "extra": 1}
    names = dict(secondary_ckpt_name="None", vae_name="None", upscaler_name="None", secondary_upscaler_name="None",
                 lora_1_name="first.safetensors", lora_2_name="None", lora_3_name="second.safetensors")
    pipe = call(registry, "AVCheckpointModelsToParametersPipe", ckpt_name="tiny.safetensors", pipe=given, **names)
    assert given == {"positive": "kept", "extra": 1}  # the given pipe is not changed
    out = call(registry, "AVParametersPipeToCheckpointModels", pipe=pipe)
    assert out == (pipe, "tiny.safetensors", None, None, None, None, "first.safetensors", None, "second.safetensors")
    assert pipe["positive"] == "kept" and pipe["extra"] == 1
    image, mask = _images(1), torch.rand(1, 20, 28)
    prompts = call(registry, "AVPromptsToParametersPipe", positive="a cat", negative="blur", pipe=pipe, image=image,
                   mask=mask)
    back = call(registry, "AVParametersPipeToPrompts", pipe=prompts)
    assert back[1:3] == ("a cat", "blur") and back[3] is image and back[4] is mask
    assert back[0]["lora_1_name"] == "first.safetensors"
    assert call(registry, "AVParametersPipeToPrompts", pipe={})[1:] == (None, None, None, None)
    _refused(registry, "AVParametersPipeToPrompts", "pipe", "dict", pipe=["not", "a", "pipe"])


def _loaded(registry):
    return call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")


def _same(a, b):
    (unet, text), (unet_want, text_want) = weights(*a), weights(*b)
    return all(torch.equal(unet[n], unet_want[n]) for n in unet) and \
        all(torch.equal(text[n], text_want[n]) for n in text)


def test_lora_loader_with_override_and_switch(registry, lora_folders):
    model, clip, _ = _loaded(registry)
    base = dict(model=model, clip=clip, strength_model=0.7, strength_clip=0.3)
    want = call(registry, "LoadLoRA", lora_name="first.safetensors", **base)
    got = call(registry, "AVLoraLoader", lora_name="first.safetensors", lora_override="None", enabled=True, **base)
    assert _same(got, want) and not _same(got, (model, clip))
    second = call(registry, "LoadLoRA", lora_name="second.safetensors", **base)
    got = call(registry, "AVLoraLoader", lora_name="first.safetensors", lora_override="second.safetensors",
               enabled=True, **base)
    assert _same(got, second)
    got = call(registry, "AVLoraLoader", lora_name="first.safetensors", lora_override="gone.safetensors",
               enabled=True, **base)
    assert _same(got, want)  # an override not found: lora_name, with a warning
    off = call(registry, "AVLoraLoader", lora_name="first.safetensors", lora_override="None", enabled=False, **base)
    assert off[0] is model and off[1] is clip


def test_lora_list_loader_and_stacker(registry, lora_folders):
    model, clip, _ = _loaded(registry)
    rows = [{"name": "first.safetensors", "strength": 0.7}, {"name": "gone.safetensors", "strength": 1},
            {"name": "second.safetensors", "strength": -0.5}, {"name": "first.safetensors", "strength": 0}]
    got = call(registry, "AVLoraListLoader", model=model, clip=clip, data=json.dumps(rows))
    first = call(registry, "LoadLoRA", model=model, clip=clip, lora_name="first.safetensors", strength_model=0.7,
                 strength_clip=0.7)
    want = call(registry, "LoadLoRA", model=first[0], clip=first[1], lora_name="second.safetensors",
                strength_model=-0.5, strength_clip=-0.5)
    assert _same(got, want)
    stack = call(registry, "AVLoraListStacker", data=json.dumps(rows),
                 lora_stack=[("None", 1.0, 1.0), ("second.safetensors", 0.2, 0.4)])
    assert stack == [("first.safetensors", 0.7, 0.7), ("second.safetensors", -0.5, -0.5),
                     ("second.safetensors", 0.2, 0.4)]
    assert call(registry, "AVLoraListStacker", data=" [] ") == []
    _refused(registry, "AVLoraListStacker", "data", "not JSON", data="[{")
    _refused(registry, "AVLoraListStacker", "data", "entry 0", data='[{"name": "first.safetensors"}]')
    _refused(registry, "AVLoraListLoader", "data", "a JSON list", model=model, clip=clip, data='{"name": 1}')


def test_lora_list_strengths_stack_rows_and_interrupts(registry, lora_folders, monkeypatch):
    """Python's json takes NaN, Infinity and 1e308: each is refused by entry, as LoadLoRA refuses a
    strength that is not finite; a linked stack's rows are checked as Comfyroll's stack is; the
    loader checks for an interrupt before each file."""
    import nodes.pack_nodes_art_venture_loaders as loaders
    model, clip, _ = _loaded(registry)
    for strength in ("NaN", "Infinity", "-Infinity", "1e308", "100.5"):
        data = f'[{{"name": "first.safetensors", "strength": 0.5}}, {{"name": "x", "strength": {strength}}}]'
        _refused(registry, "AVLoraListStacker", "data", "entry 1: strength .* finite number from -100 to 100",
                 data=data)
        _refused(registry, "AVLoraListLoader", "data", "entry 1", model=model, clip=clip, data=data)
    assert call(registry, "AVLoraListStacker", data='[{"name": "first.safetensors", "strength": -100}]') == \
        [("first.safetensors", -100.0, -100.0)]
    for stack in ([("first.safetensors",)], [7], "first.safetensors"):
        _refused(registry, "AVLoraListStacker", "lora_stack", "lora_name, model_strength, clip_strength",
                 data="", lora_stack=stack)
    checks = []
    monkeypatch.setattr(loaders, "check_interrupted", lambda: checks.append(1))
    rows = [{"name": "first.safetensors", "strength": 0.1}] * 3
    call(registry, "AVLoraListLoader", model=model, clip=clip, data=json.dumps(rows))
    assert len(checks) == 3


def test_vae_loader_override(registry, tmp_folders):
    from graphflow.testing import write_vae
    (tmp_folders.models / "vae").mkdir(exist_ok=True)
    write_vae(tmp_folders.models / "vae" / "one.safetensors", seed=1)
    write_vae(tmp_folders.models / "vae" / "two.safetensors", seed=2)
    state = lambda vae: {k: v.clone() for k, v in vae.module.state_dict().items()}  # noqa: E731
    one, two = (state(call(registry, "LoadVAE", vae_name=n)) for n in ("one.safetensors", "two.safetensors"))
    assert any(not torch.equal(one[k], two[k]) for k in one)
    for override, want in (("two.safetensors", two), ("None", one), ("three.safetensors", one)):
        got = state(call(registry, "AVVAELoader", vae_name="one.safetensors", vae_override=override))
        assert all(torch.equal(got[k], want[k]) for k in want), override



def test_an_override_that_fails_to_load_is_named(registry, lora_folders):
    from graphflow.testing import write_vae
    (lora_folders.models / "vae").mkdir(exist_ok=True)
    write_vae(lora_folders.models / "vae" / "one.safetensors", seed=1)
    for folder in ("vae", "loras"):
        (lora_folders.models / folder / "broken.safetensors").write_bytes(b"not a safetensors file")
    _refused(registry, "AVVAELoader", "vae_override", vae_name="one.safetensors", vae_override="broken.safetensors")
    _refused(registry, "AVVAELoader", "vae_name", vae_name="broken.safetensors", vae_override="None")
    model, clip, _ = _loaded(registry)
    base = dict(model=model, clip=clip, strength_model=1.0, strength_clip=1.0, enabled=True)
    _refused(registry, "AVLoraLoader", "lora_override", lora_name="first.safetensors",
             lora_override="broken.safetensors", **base)
    _refused(registry, "AVLoraLoader", "lora_name", lora_name="broken.safetensors", lora_override="None", **base)


def test_a_ui_save_with_the_packs_pipes_runs_and_round_trips(registry, lora_folders):
    names = ["tiny.safetensors", "None", "None", "None", "None", "first.safetensors", "None", "None"]
    nodes = [
        ui_node(1, "AV_CheckpointModelsToParametersPipe", names, outputs=[("PIPE", "PIPE", [1])]),
        ui_node(2, "AV_PromptsToParametersPipe", ["a red circle", "blurry"], [("pipe", "PIPE", 1, False)],
                [("PIPE", "PIPE", [2])]),
        ui_node(3, "AV_ParametersPipeToPrompts", [], [("pipe", "PIPE", 2, False)],
                [("pipe", "PIPE", []), ("positive", "STRING", []), ("negative", "STRING", []),
                 ("image", "IMAGE", []), ("mask", "MASK", [])]),
        ui_node(4, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [3]), ("CLIP", "CLIP", [4]), ("VAE", "VAE", [])]),
        ui_node(5, "AV_LoraLoader", ["first.safetensors", 0.7, 0.3, "None", True],
                [("model", "MODEL", 3, False), ("clip", "CLIP", 4, False)],
                [("MODEL", "MODEL", []), ("CLIP", "CLIP", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "PIPE"], [2, 2, 0, 3, 0, "PIPE"], [3, 4, 0, 5, 0, "MODEL"], [4, 4, 1, 5, 1, "CLIP"]]
    graph = ui_graph(nodes, links)
    values = run_graph(registry, graph, ["3", "5"]).values
    assert values["3"][1:3] == ("a red circle", "blurry") and values["3"][0]["lora_1_name"] == "first.safetensors"
    model, clip, _ = values["4"]
    want = call(registry, "LoadLoRA", model=model, clip=clip, lora_name="first.safetensors", strength_model=0.7,
                strength_clip=0.3)
    assert _same(values["5"], want)
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for node in nodes:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]
