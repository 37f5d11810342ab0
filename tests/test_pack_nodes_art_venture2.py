"""comfyui-art-venture round 2 (nodes/pack_nodes_art_venture2.py): the inpaint helpers against the
pack's steps written out here with Pillow / OpenCV (A1111's crop box and resize modes spelled out),
the merges against hand arithmetic on the files' weights, the float16 save against the file it
writes, Fooocus' sharpness filter against its formula written out pixel by pixel and the sampler
against plain sampling (sharpness 0: equal; else the filtered prediction worked out by hand);
bad inputs refused by name; an API-format workflow under the pack's class names."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from safetensors.torch import load_file

from graphflow.context import NodeInputError
from graphflow.models.checkpoint import load_checkpoint
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph

cv2 = pytest.importorskip("cv2")

UNET = "model.diffusion_model."
CONV_IN = "input_blocks.0.0.weight"


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def _refused(registry, node_type, input_name, match=None, **inputs):
    with pytest.raises(NodeInputError, match=match) as caught:
        call(registry, node_type, **inputs)
    assert caught.value.input == input_name
    return caught.value


def _pil(image):
    return Image.fromarray(np.clip(255.0 * image.numpy(), 0, 255).astype(np.uint8).squeeze())


def _back(picture):
    levels = np.array(picture).astype(np.float32) / 255.0
    return torch.from_numpy(levels)


# the pack's INPUT_TYPES (name, default) and RETURN_NAMES, as read
SCHEMAS = {
    "PrepareImageAndMaskForInpaint": ([("image", None), ("mask", None), ("mask_blur", 4), ("inpaint_masked", False),
                                       ("mask_padding", 32), ("width", 0), ("height", 0), ("controlnet_image", None)],
                                      ["inpaint_image", "inpaint_mask", "overlay_image", "crop_region",
                                       "controlnet_image"]),
    "OverlayInpaintedImage": ([("inpainted", None), ("overlay_image", None), ("crop_region", None)], ["IMAGE"]),
    "CreateExpandedCanvasForOutpaint": ([("original_image", None), ("focused_image", None), ("left", 0), ("top", 0),
                                         ("right", 0), ("bottom", 0), ("focus_mode", "mask_outside_focus"),
                                         ("feather_edges", 10)],
                                        ["expanded_image", "outpaint_mask", "new_crop_region"]),
    "AV_CheckpointMerge": ([("model1", None), ("model2", None), ("model1_weight", 1.0), ("model2_weight", 1.0)],
                           ["MODEL"]),
    "MergeModels": ([("model1", None), ("model2", None), ("ratio", 1.0)], ["MODEL"]),
    "AV_ControlNetLoader": ([("control_net_name", None), ("control_net_override", "None"),
                             ("timestep_keyframe", None)], ["CONTROL_NET"]),
    "AV_ControlNetEfficientStackerSimple": ([("control_net_name", "None"), ("image", None), ("strength", 1.0),
                                             ("preprocessor", "None"), ("cnet_stack", None),
                                             ("control_net_override", "None"), ("timestep_keyframe", None),
                                             ("resolution", 512), ("enabled", True)], ["CNET_STACK"]),
    "AV_CheckpointSave": ([("model", None), ("clip", None), ("vae", None), ("filename_prefix", None),
                           ("dtype", "float16")], []),
    "Fooocus_KSampler": ([("model", None), ("seed", 0), ("steps", 20), ("cfg", 8.0), ("sampler_name", "euler"),
                          ("scheduler", "simple"), ("positive", None), ("negative", None), ("latent_image", None),
                          ("denoise", 1.0), ("sharpness", 2.0)], ["LATENT"]),
    "Fooocus_KSamplerAdvanced": ([("model", None), ("add_noise", "enable"), ("noise_seed", 0), ("steps", 20),
                                  ("cfg", 8.0), ("sampler_name", "euler"), ("scheduler", "simple"),
                                  ("positive", None), ("negative", None), ("latent_image", None),
                                  ("start_at_step", 0), ("end_at_step", 10000),
                                  ("return_with_leftover_noise", "disable"), ("sharpness", 2.0)], ["LATENT"]),
    "AV_ControlNetEfficientLoader": ([("control_net_name", "None"), ("conditioning", None), ("image", None),
                                      ("strength", 1.0), ("preprocessor", "None"), ("control_net_override", "None"),
                                      ("timestep_keyframe", None), ("resolution", 512), ("enabled", True)],
                                     ["CONDITIONING"]),
    "AV_ControlNetEfficientLoaderAdvanced": ([("control_net_name", "None"), ("positive", None), ("negative", None),
                                              ("image", None), ("strength", 1.0), ("start_percent", 0.0),
                                              ("end_percent", 1.0), ("preprocessor", "None"),
                                              ("control_net_override", "None"), ("timestep_keyframe", None),
                                              ("resolution", 512), ("enabled", True)], ["positive", "negative"]),
    "AV_ControlNetEfficientStacker": ([("control_net_name", "None"), ("image", None), ("strength", 1.0),
                                       ("start_percent", 0.0), ("end_percent", 1.0), ("preprocessor", "None"),
                                       ("cnet_stack", None), ("control_net_override", "None"),
                                       ("timestep_keyframe", None), ("resolution", 512), ("enabled", True)],
                                      ["CNET_STACK"]),
}
# the pack's CATEGORY per class (the inpaint helpers: "Art Venture/Inpainting" as its other versions write it)
CATEGORIES = {
    "PrepareImageAndMaskForInpaint": "Art Venture/Inpainting", "OverlayInpaintedImage": "Art Venture/Inpainting",
    "CreateExpandedCanvasForOutpaint": "Art Venture/Inpainting", "AV_CheckpointMerge": "Art Venture/Model Merging",
    "AV_CheckpointSave": "Art Venture/Model Merging", "MergeModels": "Art Venture/Utils",
    "Fooocus_KSampler": "ArtVenture/Sampling", "Fooocus_KSamplerAdvanced": "ArtVenture/Sampling",
    "Fooocus_KSamplerEfficient": "ArtVenture/Sampling", "AV_ControlNetLoader": "Art Venture/Loaders",
    "AV_ControlNetEfficientLoader": "Art Venture/Loaders", "AV_ControlNetEfficientLoaderAdvanced": "Art Venture/Loaders",
    "AV_ControlNetEfficientStacker": "Art Venture/Loaders", "AV_ControlNetEfficientStackerSimple": "Art Venture/Loaders",
}


def test_inputs_and_outputs_in_the_packs_order(registry):
    from graphflow.comfy_format import custom_pack, unknown_type_hint

    found = {name: cls for cls in registry if cls.__module__ == "nodes.pack_nodes_art_venture2"
             for alias in (cls.comfy if isinstance(cls.comfy, tuple) else (cls.comfy,)) for name in alias.class_types}
    for class_type, (inputs, outputs) in SCHEMAS.items():
        specs = list(found[class_type].input_specs.values())
        assert [s.name for s in specs] == [name for name, _ in inputs], class_type
        for spec, (name, default) in zip(specs, inputs):
            if default is not None:
                assert spec.default == default, (class_type, name)
        assert [o.name for o in found[class_type].output_specs] == outputs, class_type
        assert custom_pack(class_type) == "comfyui-art-venture"
    # Fooocus_KSamplerEfficient: KSampler (Efficient)'s inputs with sharpness (2.0) appended, its outputs
    efficient, plain = found["Fooocus_KSamplerEfficient"], registry.get("KSamplerEfficient")
    assert list(efficient.input_specs) == [*plain.input_specs, "sharpness"]
    assert efficient.input_specs["sharpness"].default == 2.0
    assert [o.name for o in efficient.output_specs] == [o.name for o in plain.output_specs]
    assert {name: found[name].category for name in CATEGORIES} == CATEGORIES
    assert set(found) == set(CATEGORIES)
    assert "cannot run" in unknown_type_hint("Fooocus_KSamplerEfficientAdvanced")


# -- inpaint helpers ---------------------------------------------------------------------------------


def _fit(picture, width, height):
    """A1111's resize-to-fit for a picture wider than the box (the case used below): scaled to the
    box's width, the bands above and below stretched from the first / last row."""
    h = picture.height * width // picture.width
    scaled = picture.resize((width, h), Image.LANCZOS)
    canvas = Image.new("RGB", (width, height))
    top = height // 2 - h // 2
    canvas.paste(scaled, (0, top))
    if top > 0:
        canvas.paste(scaled.resize((width, top), box=(0, 0, width, 0)), (0, 0))
        canvas.paste(scaled.resize((width, top), box=(0, h, width, h)), (0, top + h))
    return canvas


@pytest.fixture(scope="module")
def picture_and_mask():
    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, 40, 48, 3, generator=g)
    mask = torch.zeros(1, 40, 48)
    mask[0, 10:16, 8:30] = 1.0  # a wide box: 22 x 6
    return image, mask


def test_prepare_cuts_the_grown_box_and_resizes_to_fit(registry, picture_and_mask):
    image, mask = picture_and_mask
    out = call(registry, "AVPrepareImageAndMaskForInpaint", image=image, mask=mask, mask_blur=0, inpaint_masked=True,
               mask_padding=2, width=32, height=16)
    inpaint, inpaint_mask, overlay, region, hint = out
    # get_crop_region: x 8..29 -> 6..32, y 10..15 -> 8..18 (26 x 10); expand to 2:1 -> height 13:
    # grow int(26 / 2 - 10) = 3 rows, 1 above and 2 below
    assert region.tolist() == [[6, 7, 32, 20]]
    box = (6, 7, 32, 20)
    expected = _fit(_pil(image[0]).crop(box), 32, 16)
    assert torch.equal(inpaint[0], _back(expected))
    expected_mask = _fit(_pil(mask[0]).crop(box), 32, 16).convert("L")
    assert torch.equal(inpaint_mask[0], _back(expected_mask))
    # overlay: the whole picture, masked pixels transparent
    assert overlay.shape == (1, 40, 48, 4)
    assert torch.all(overlay[0, 10:16, 8:30, 3] == 0) and torch.all(overlay[0, :10, :, 3] == 1)
    assert torch.equal(overlay[0, :10, :, :3], _back(_pil(image[0]))[:10])
    assert hint.shape == (1, 64, 64, 3) and not hint.any()


def test_prepare_blurs_the_mask_as_a1111_and_passes_whole_without_inpaint_masked(registry, picture_and_mask):
    image, mask = picture_and_mask
    inpaint, inpaint_mask, overlay, region, _ = call(registry, "AVPrepareImageAndMaskForInpaint", image=image,
                                                     mask=mask, mask_blur=3, inpaint_masked=False)
    size = 2 * int(2.5 * 3 + 0.5) + 1
    blurred = cv2.GaussianBlur(mask[0].numpy(), (size, size), 3)
    levels = np.clip(255.0 * blurred, 0, 255).astype(np.uint8)
    assert torch.equal(inpaint_mask[0], torch.from_numpy(levels.astype(np.float32) / 255))
    assert torch.equal(inpaint[0], _back(_pil(image[0])))
    assert region.tolist() == [[0, 0, 48, 40]]
    masked = Image.new("RGBa", (48, 40))
    masked.paste(_pil(image[0]).convert("RGBA").convert("RGBa"), mask=ImageOps.invert(Image.fromarray(levels)))
    assert torch.equal(overlay[0], _back(masked.convert("RGBA")))


def test_prepare_cuts_the_controlnet_image_at_its_scale(registry, picture_and_mask):
    image, mask = picture_and_mask
    hint = torch.rand(1, 80, 96, 3, generator=torch.Generator().manual_seed(4))
    *_, region, cut = call(registry, "AVPrepareImageAndMaskForInpaint", image=image, mask=mask, mask_blur=0,
                           inpaint_masked=True, mask_padding=2, width=32, height=16, controlnet_image=hint)
    assert torch.equal(cut[0], _back(_fit(_pil(hint[0]).crop((12, 14, 64, 40)), 64, 32)))


def test_prepare_refuses_bad_input(registry, picture_and_mask):
    image, mask = picture_and_mask
    _refused(registry, "AVPrepareImageAndMaskForInpaint", "mask", "empty", image=image, mask=torch.zeros(1, 40, 48),
             inpaint_masked=True)
    _refused(registry, "AVPrepareImageAndMaskForInpaint", "height", "both", image=image, mask=mask,
             inpaint_masked=True, width=64, height=0)
    _refused(registry, "AVPrepareImageAndMaskForInpaint", "mask", "same size", image=image, mask=mask[:, :20])
    _refused(registry, "AVPrepareImageAndMaskForInpaint", "mask", "batch", image=image, mask=mask.repeat(2, 1, 1))


def test_prepare_refuses_a_controlnet_image_too_small_to_cut(registry, picture_and_mask):
    image, mask = picture_and_mask
    # 1 x 1 for 48 x 40: the 32 x 16 cut-out is int(32 / 48) x int(16 / 40) = 0 x 0 px at its scale
    _refused(registry, "AVPrepareImageAndMaskForInpaint", "controlnet_image", "at least 1 px", image=image, mask=mask,
             mask_blur=0, inpaint_masked=True, width=32, height=16, controlnet_image=torch.rand(1, 1, 1, 3))
    # 4 x 4: the 480 x 400 target is 40 x 40 there, but the 4 x 4 box (30, 10, 34, 14) cuts 0 px wide
    small = torch.zeros(1, 40, 48)
    small[0, 10:14, 30:34] = 1.0
    _refused(registry, "AVPrepareImageAndMaskForInpaint", "controlnet_image", "at least 1 px", image=image, mask=small,
             mask_blur=0, inpaint_masked=True, mask_padding=0, width=480, height=400,
             controlnet_image=torch.rand(1, 4, 4, 3))


def test_prepare_memory_bound_scales_each_axis(registry, monkeypatch):
    """A 4000 x 10 hint for a 100 x 100 picture: the 2048 x 2048 cut-out is 81920 x 204 px at the
    hint's scale, so 2048² + 81920 · 204 pixels per image (not 2048² + (40 · 2048)², 478 GB)."""
    import nodes.pack_nodes_art_venture2 as module

    asked = []

    def recorded(name, what, images=None, sampled=None):
        asked.append(images)
        raise NodeInputError(name, "stop here")

    monkeypatch.setattr(module, "check_run_memory", recorded)
    mask = torch.zeros(1, 100, 100)
    mask[0, 40:60, 40:60] = 1.0
    _refused(registry, "AVPrepareImageAndMaskForInpaint", "width", "stop here", image=torch.rand(1, 100, 100, 3),
             mask=mask, inpaint_masked=True, width=2048, height=2048, controlnet_image=torch.rand(1, 10, 4000, 3))
    assert asked[0].volume == 2048 * 2048 + 81920 * 204


def test_overlay_puts_the_inpainted_crop_back_under_the_overlay(registry, picture_and_mask):
    image, mask = picture_and_mask
    inpaint, _, overlay, region, _ = call(registry, "AVPrepareImageAndMaskForInpaint", image=image, mask=mask,
                                          mask_blur=0, inpaint_masked=True, mask_padding=2, width=32, height=16)
    inpainted = torch.rand(1, 16, 32, 3, generator=torch.Generator().manual_seed(5))
    [result] = call(registry, "AVOverlayInpaintedImage", inpainted=inpainted, overlay_image=overlay,
                    crop_region=region)
    # resize-to-fill of 32 x 16 into 26 x 13: exactly 2:1, so a plain Lanczos resize
    canvas = Image.new("RGBA", (48, 40))
    canvas.paste(_pil(inpainted[0]).resize((26, 13), Image.LANCZOS), (6, 7))
    canvas.alpha_composite(_pil(overlay[0]))
    assert torch.equal(result[0], _back(canvas.convert("RGB")))
    # outside the crop the original shows; in the masked box the inpainted picture
    assert torch.equal(result[0, :5], _back(_pil(image[0]))[:5])
    _refused(registry, "AVOverlayInpaintedImage", "overlay_image", "RGBA", inpainted=inpainted,
             overlay_image=overlay[..., :3], crop_region=region)
    _refused(registry, "AVOverlayInpaintedImage", "crop_region", "CROP_REGION", inpainted=inpainted,
             overlay_image=overlay, crop_region=[6, 7, 32, 20])
    _refused(registry, "AVOverlayInpaintedImage", "inpainted", "size", inpainted=inpainted, overlay_image=overlay,
             crop_region=torch.zeros(1, 4, dtype=torch.int64))
    _refused(registry, "AVOverlayInpaintedImage", "crop_region", "left < right", inpainted=inpainted,
             overlay_image=overlay, crop_region=torch.tensor([[32, 7, 6, 20]]))
    # A1111's expanded box may poke out of the picture: taken, the part outside cut off
    [poking] = call(registry, "AVOverlayInpaintedImage", inpainted=inpainted, overlay_image=overlay,
                    crop_region=torch.tensor([[-4, 7, 22, 20]]))
    canvas = Image.new("RGBA", (48, 40))
    canvas.paste(_pil(inpainted[0]).resize((26, 13), Image.LANCZOS), (-4, 7))
    canvas.alpha_composite(Image.fromarray(np.clip(255.0 * overlay[0].numpy(), 0, 255).astype(np.uint8), "RGBA"))
    assert torch.equal(poking[0], _back(canvas.convert("RGB")))


@pytest.mark.parametrize("mode", ["only_focused", "mask_outside_focus", "mask_both"])
def test_expanded_canvas_as_the_pack_draws_it(registry, mode):
    g = torch.Generator().manual_seed(6)
    original, focused = torch.rand(1, 30, 40, 3, generator=g), torch.rand(1, 20, 20, 3, generator=g)
    image, mask, region = call(registry, "AVCreateExpandedCanvasForOutpaint", original_image=original,
                               focused_image=focused, left=5, top=4, right=25, bottom=60, focus_mode=mode,
                               feather_edges=3)
    box = (5, 4, 25, 30)  # bottom clamped to the picture
    assert region.tolist() == [list(box)]
    focus = _pil(focused[0]).resize((26, 26), Image.LANCZOS)  # fill 20 x 26 from a square: 26 x 26, middle
    cut = Image.new("RGB", (20, 26))
    cut.paste(focus, (10 - 13, 0))
    canvas = Image.new("RGBA", (40, 30), (0, 0, 0, 0)) if mode == "only_focused" else _pil(original[0]).convert("RGBA")
    canvas.paste(cut.convert("RGBA"), box[:2])
    drawn = Image.new("L", (40, 30), 255)
    ImageDraw.Draw(drawn).rectangle(box, fill=128 if mode == "mask_both" else 0)
    if mode == "only_focused":
        alpha = Image.new("L", (40, 30), 0)
        ImageDraw.Draw(alpha).rectangle(box, fill=255)
        canvas.putalpha(alpha.filter(ImageFilter.GaussianBlur(3)))
    elif mode == "mask_outside_focus":
        drawn = drawn.filter(ImageFilter.GaussianBlur(3))
    white = Image.new("RGB", (40, 30), (255, 255, 255))
    white.paste(canvas, mask=canvas.split()[3])
    assert torch.equal(image[0], _back(white))
    assert torch.equal(mask[0], _back(drawn))


# -- merges and save ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("av_merge")
    paths = {name: write_checkpoint(folder / f"{name}.safetensors", arch, seed=seed)
             for name, arch, seed in (("a", "sd1", 0), ("b", "sd1", 7), ("inpaint", "sd1_inpaint", 3))}
    loaded = {n: load_checkpoint(p, device="cpu", dtype=torch.float32).model for n, p in paths.items()}
    files = {n: {k[len(UNET):]: v.float() for k, v in load_file(str(p)).items() if k.startswith(UNET)}
             for n, p in paths.items()}
    return loaded, files


def test_checkpoint_merge_weights_each_model(registry, models):
    loaded, files = models
    merged = call(registry, "AVCheckpointMerge", model1=loaded["a"], model2=loaded["b"], model1_weight=0.4,
                  model2_weight=-0.5).unet.state_dict()
    for name, w in files["a"].items():
        torch.testing.assert_close(merged[name], 0.4 * w - 0.5 * files["b"][name], rtol=1e-5, atol=1e-6)


def test_checkpoint_merge_pads_an_ordinary_models_input_layer_into_an_inpainting_one(registry, models):
    loaded, files = models
    merged = call(registry, "AVCheckpointMerge", model1=loaded["inpaint"], model2=loaded["a"], model1_weight=0.5,
                  model2_weight=0.25).unet.state_dict()
    wi, wa = files["inpaint"][CONV_IN], files["a"][CONV_IN]
    assert wi.shape[1] == 9 and wa.shape[1] == 4
    expected = 0.5 * wi
    expected[:, :4] += 0.25 * wa
    torch.testing.assert_close(merged[CONV_IN], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged["out.2.weight"], 0.5 * files["inpaint"]["out.2.weight"]
                               + 0.25 * files["a"]["out.2.weight"], rtol=1e-5, atol=1e-6)
    _refused(registry, "AVCheckpointMerge", "model2", "model1 must be the inpainting model", model1=loaded["a"],
             model2=loaded["inpaint"])


def test_merge_models_cuts_an_inpainting_model2_to_four_channels(registry, models):
    loaded, files = models
    merged = call(registry, "AVMergeModels", model1=loaded["a"], model2=loaded["inpaint"], ratio=0.3).unet.state_dict()
    torch.testing.assert_close(merged[CONV_IN], 0.3 * files["a"][CONV_IN] + 0.7 * files["inpaint"][CONV_IN][:, :4],
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged["out.2.weight"], 0.3 * files["a"]["out.2.weight"]
                               + 0.7 * files["inpaint"]["out.2.weight"], rtol=1e-5, atol=1e-6)


def test_checkpoint_save_writes_the_unet_in_float16(registry, tmp_folders):
    path = write_checkpoint(tmp_folders.models / "float.safetensors", "sd1", seed=2, dtype=torch.float32)
    checkpoint = load_checkpoint(path, device="cpu", dtype=torch.float32)
    for dtype, expected in (("float16", torch.float16), ("float32", torch.float32)):
        call(registry, "AVCheckpointSave", model=checkpoint.model, clip=checkpoint.clip, vae=checkpoint.vae,
             filename_prefix=f"checkpoints/{dtype}", dtype=dtype)
        [saved] = (tmp_folders.outputs / "checkpoints").glob(f"{dtype}_*.safetensors")
        state = load_file(str(saved))
        unet = {k: v for k, v in state.items() if k.startswith(UNET)}
        assert unet and all(v.dtype == expected for v in unet.values())
        assert all(v.dtype == torch.float32 for k, v in state.items() if k.startswith("first_stage_model."))
        original = load_file(str(path))
        torch.testing.assert_close(unet[UNET + CONV_IN].float(), original[UNET + CONV_IN],
                                   rtol=1e-3, atol=1e-4)
    assert checkpoint.model.unet.state_dict()[CONV_IN].dtype == torch.float32  # the MODEL unchanged


# -- Fooocus' sharpness --------------------------------------------------------------------------------


def _written_out_blur(x: np.ndarray) -> np.ndarray:
    """Fooocus' bilateral_blur, pixel by pixel: 13 x 13 window, reflected borders, space and colour
    sigmas 3, L1 colour distance over the channels."""
    channels, height, width = x.shape
    padded = np.pad(x, ((0, 0), (6, 6), (6, 6)), mode="reflect")
    g = np.exp(-np.arange(-6, 7) ** 2 / 18.0)
    g /= g.sum()
    out = np.zeros_like(x)
    for y in range(height):
        for xx in range(width):
            centre = x[:, y, xx]
            total, weights = np.zeros(channels), 0.0
            for i in range(13):
                for j in range(13):
                    value = padded[:, y + i, xx + j]
                    weight = g[i] * g[j] * math.exp(-0.5 / 9.0 * np.abs(value - centre).sum() ** 2)
                    total += weight * value
                    weights += weight
            out[:, y, xx] = total / weights
    return out


def test_bilateral_blur_matches_its_formula():
    from nodes.pack_nodes_art_venture2 import bilateral_blur

    x = torch.randn(2, 3, 9, 11, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 0.7
    ours = bilateral_blur(x)
    for b in range(2):
        np.testing.assert_allclose(ours[b].numpy(), _written_out_blur(x[b].numpy()), rtol=1e-10, atol=1e-12)


def test_sharpness_blends_only_the_positive_rows():
    from graphflow.sampling.guidance import UNetRows, unet_rows
    from graphflow.sampling.model_sampling import DiscreteSchedule
    from nodes.pack_nodes_art_venture2 import SharpnessPatch, bilateral_blur

    schedule = DiscreteSchedule.from_betas()
    output = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(9))
    sigma = schedule.sigma(torch.tensor([400.0, 400.0]))
    token = unet_rows.set(UNetRows(sigma, (False, True)))
    try:
        result = SharpnessPatch(30.0, schedule)()(lambda xc: output, None, sigma, 4)
    finally:
        unet_rows.reset(token)
    alpha = 0.001 * 30.0 * (1 - 400 / 999)
    torch.testing.assert_close(result[0], bilateral_blur(output[:1])[0] * alpha + output[0] * (1 - alpha))
    assert torch.equal(result[1], output[1])


@pytest.fixture
def tiny(tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    return tmp_folders


def _prompt(sampler: str, cfg: float, **settings) -> dict:
    """An API-format workflow: a 64 x 64 latent of noise from a seed, one step of the sampler."""
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a red fox"}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
            "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "5": {"class_type": sampler, "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                    "latent_image": ["4", 0], "cfg": cfg, "sampler_name": "euler",
                                                    "scheduler": "simple", **settings}}}


def _latent(registry, prompt) -> torch.Tensor:
    return run_graph(registry, prompt, outputs=["5"]).values["5"][0]["samples"]


def test_sharpness_zero_samples_as_ksampler(registry, tiny):
    settings = {"seed": 4, "steps": 2, "denoise": 1.0}
    plain = _latent(registry, _prompt("KSampler", 5.0, **settings))
    fooocus = _latent(registry, _prompt("Fooocus_KSampler", 5.0, sharpness=0.0, **settings))
    assert torch.equal(plain, fooocus)
    sharp = _latent(registry, _prompt("Fooocus_KSampler", 5.0, sharpness=50.0, **settings))
    assert not torch.equal(plain, sharp)


def test_sharpened_step_is_the_filtered_prediction(registry, tiny):
    """One euler step from the schedule's last sigma to 0 gives the denoised latent x - sigma · eps
    (in the sampler's scaled latent space);
    with sharpness (cfg 1: every row is the positive prompt's) eps becomes
    eps (1 - alpha) + blur(eps) alpha, alpha = 0.001 · sharpness · (1 - t / 999)."""
    from nodes.pack_nodes_art_venture2 import bilateral_blur

    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    positive = call(registry, "CLIPEncode", clip=clip, text="a red fox")
    negative = call(registry, "CLIPEncode", clip=clip, text="blurry")
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(10))
    settings = dict(model=model, positive=positive, negative=negative, latent_image={"samples": x},
                    add_noise="disable", noise_seed=0, steps=4, cfg=1.0, sampler_name="euler", scheduler="simple",
                    start_at_step=3, end_at_step=4, return_with_leftover_noise="disable")
    plain = call(registry, "KSamplerAdvanced", **settings)["samples"]
    sharp = call(registry, "FooocusKSamplerAdvanced", sharpness=40.0, **settings)["samples"]
    sigmas = call(registry, "BasicScheduler", model=model, scheduler="simple", steps=4, denoise=1.0)
    sigma = sigmas[3]
    # SD1's table by hand: scaled-linear betas, sigma_i = sqrt((1 - acp_i) / acp_i); "simple" with 4
    # steps takes entries 999, 749, 499, 249, so the last step's UNet timestep is 249
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    acp = np.cumprod(1 - betas)
    assert abs(float(sigma) - math.sqrt((1 - acp[249]) / acp[249])) < 1e-5
    t = 249.0
    latent = model.latent_format  # the sampler works on the latent scaled by its factor (SD1's 0.18215)
    eps = (latent.process_in(x) - latent.process_in(plain)) / sigma
    alpha = 0.001 * 40.0 * (1 - t / 999)
    expected = latent.process_out(latent.process_in(x) - sigma * (eps * (1 - alpha) + bilateral_blur(eps) * alpha))
    torch.testing.assert_close(sharp, expected, rtol=1e-4, atol=1e-4)
    assert (sharp - plain).abs().max() > 1e-3


def test_sharpness_at_cfg_above_one_leaves_the_negative_prediction(registry, tiny):
    """cfg 4: eps = eps_neg + 4 (eps_pos' - eps_neg), only the positive's eps filtered; each eps
    read from a cfg 1 step with that prompt alone."""
    from nodes.pack_nodes_art_venture2 import bilateral_blur

    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    positive = call(registry, "CLIPEncode", clip=clip, text="a red fox")
    negative = call(registry, "CLIPEncode", clip=clip, text="blurry")
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(10))
    settings = dict(model=model, latent_image={"samples": x}, add_noise="disable", noise_seed=0, steps=4,
                    sampler_name="euler", scheduler="simple", start_at_step=3, end_at_step=4,
                    return_with_leftover_noise="disable")
    latent = model.latent_format
    sigma = call(registry, "BasicScheduler", model=model, scheduler="simple", steps=4, denoise=1.0)[3]

    def eps(prompt):
        out = call(registry, "KSamplerAdvanced", positive=prompt, negative=prompt, cfg=1.0, **settings)["samples"]
        return (latent.process_in(x) - latent.process_in(out)) / sigma

    eps_pos, eps_neg = eps(positive), eps(negative)
    alpha = 0.001 * 40.0 * (1 - 249 / 999)  # the last of 4 "simple" steps: timestep 249 (see above)
    filtered = eps_pos * (1 - alpha) + bilateral_blur(eps_pos) * alpha
    expected = latent.process_out(latent.process_in(x) - sigma * (eps_neg + 4.0 * (filtered - eps_neg)))
    sharp = call(registry, "FooocusKSamplerAdvanced", positive=positive, negative=negative, cfg=4.0, sharpness=40.0,
                 **settings)["samples"]
    torch.testing.assert_close(sharp, expected, rtol=1e-4, atol=1e-4)
    both = eps_neg * (1 - alpha) + bilateral_blur(eps_neg) * alpha  # had the negative been filtered too
    wrong = latent.process_out(latent.process_in(x) - sigma * (both + 4.0 * (filtered - both)))
    assert (wrong - expected).abs().max() > 1e-2


def test_sharpness_refuses_models_and_latents_it_cannot_filter(registry, tiny):
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    positive = call(registry, "CLIPEncode", clip=clip, text="a red fox")
    settings = dict(model=model, positive=positive, negative=positive, seed=0, steps=1, cfg=1.0,
                    sampler_name="euler", scheduler="simple", denoise=1.0)
    _refused(registry, "FooocusKSampler", "latent_image", "at least 7x7",
             latent_image={"samples": torch.zeros(1, 4, 6, 8)}, **settings)
    flux = type("Flux", (), {"arch": "flux"})()
    _refused(registry, "FooocusKSampler", "model", "SD1 / SD2 / SDXL",
             **{**settings, "model": flux, "latent_image": {"samples": torch.zeros(1, 16, 8, 8)}})


def test_efficient_sampler_takes_the_sharpness_and_gives_back_the_model(registry, tiny):
    model, clip, vae = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    positive = call(registry, "CLIPEncode", clip=clip, text="a red fox")
    negative = call(registry, "CLIPEncode", clip=clip, text="blurry")
    settings = dict(model=model, positive=positive, negative=negative, seed=3, steps=2, cfg=4.0,
                    sampler_name="euler", scheduler="simple", latent_image={"samples": torch.zeros(1, 4, 8, 8)},
                    denoise=1.0, vae_decode="false", preview_method="none")
    plain = call(registry, "KSamplerEfficient", **settings)
    same = call(registry, "FooocusKSamplerEfficient", sharpness=0.0, **settings)
    sharp = call(registry, "FooocusKSamplerEfficient", sharpness=60.0, **settings)
    assert torch.equal(plain[3]["samples"], same[3]["samples"])
    assert not torch.equal(plain[3]["samples"], sharp[3]["samples"])
    assert sharp[0] is model


# -- ControlNet loaders --------------------------------------------------------------------------------


@pytest.fixture
def nets(tmp_folders):
    from graphflow.testing import write_controlnet

    folder = tmp_folders.models / "controlnet"
    folder.mkdir(exist_ok=True)
    for seed, name in enumerate(("cn_sd15_canny.safetensors", "cn_sd15_scribble.safetensors",
                                 "cn_sd15_scribble_b.safetensors", "cn_sdxl_canny.safetensors")):
        write_controlnet(folder / name, "sd1", seed=seed)
    return tmp_folders


def _hint(seed=11):
    return torch.rand(1, 64, 96, 3, generator=torch.Generator().manual_seed(seed))


def test_stacker_preprocesses_the_hint_as_the_aux_node(registry, nets):
    image = _hint()
    stack = call(registry, "AVControlNetEfficientStacker", control_net_name="cn_sd15_canny.safetensors", image=image,
                 strength=0.6, start_percent=0.1, end_percent=0.8, preprocessor="canny", resolution=128,
                 cnet_stack=[("earlier",)])
    assert stack[0] == ("earlier",) and len(stack) == 2
    net, hint, strength, start, end = stack[1]
    expected = call(registry, "CannyEdgePreprocessor", image=image, low_threshold=100, high_threshold=200,
                    resolution=128)
    expected = expected[0] if isinstance(expected, tuple) else expected
    assert torch.equal(hint, expected) and (strength, start, end) == (0.6, 0.1, 0.8)
    assert net is not None
    simple = call(registry, "AVControlNetEfficientStackerSimple", control_net_name="cn_sd15_canny.safetensors",
                  image=image, strength=0.6, preprocessor="None")
    assert torch.equal(simple[0][1], image) and simple[0][3:] == (0.0, 1.0)
    assert call(registry, "AVControlNetEfficientStacker", control_net_name="None", image=image) == []
    assert call(registry, "AVControlNetEfficientStacker", control_net_name="cn_sd15_canny.safetensors",
                image=image, enabled=False) == []


def test_auto_picks_the_file_as_the_packs_shared_pass_does(registry, nets):
    from nodes.pack_nodes_art_venture2 import _detected

    assert _detected("canny", "sd15") == "cn_sd15_canny.safetensors"
    assert _detected("canny", "sdxl") == "cn_sdxl_canny.safetensors"
    # scribble: the first rule takes the first scribble file, the second the next one
    assert _detected("scribble", "sd15") == "cn_sd15_scribble_b.safetensors"
    stack = call(registry, "AVControlNetEfficientStacker", control_net_name="Auto: sd15", image=_hint(),
                 preprocessor="scribble", resolution=64)
    assert len(stack) == 1
    _refused(registry, "AVControlNetEfficientStacker", "preprocessor", "choose one", control_net_name="Auto: sd15",
             image=_hint(), preprocessor="None")


def test_auto_without_a_file_passes_the_stack_for_any_preprocessor(registry, nets):
    """The pack loads nothing and runs no preprocessor when detection finds no file; where it finds
    one for a preprocessor not built here, that preprocessor is refused."""
    from graphflow.testing import write_controlnet

    assert call(registry, "AVControlNetEfficientStacker", control_net_name="Auto: sd15", image=_hint(),
                preprocessor="depth", cnet_stack=[("earlier",)]) == [("earlier",)]
    write_controlnet(nets.models / "controlnet" / "cn_sd15_depth.safetensors", "sd1", seed=5)
    _refused(registry, "AVControlNetEfficientStacker", "preprocessor", "downloaded models",
             control_net_name="Auto: sd15", image=_hint(), preprocessor="depth")


def test_loaders_apply_the_controlnet_and_refuse_preprocessors_not_built(registry, nets):
    conditioning = [(torch.zeros(1, 77, 32), {})]
    [(_, options)] = call(registry, "AVControlNetEfficientLoader", control_net_name="cn_sd15_canny.safetensors",
                          conditioning=conditioning, image=_hint(), strength=0.7, preprocessor="scribble",
                          resolution=64)
    control = options["control"]
    expected = call(registry, "ScribblePreprocessor", image=_hint(), resolution=64)
    expected = expected[0] if isinstance(expected, tuple) else expected
    assert torch.equal(control.image, expected) and control.strength == 0.7
    positive, negative = call(registry, "AVControlNetEfficientLoaderAdvanced",
                              control_net_name="cn_sd15_canny.safetensors", positive=conditioning,
                              negative=conditioning, image=_hint(), strength=0.5, start_percent=0.2,
                              end_percent=0.9)
    assert positive[0][1]["control"].start_percent == 0.2 and negative[0][1]["control"].end_percent == 0.9
    assert call(registry, "AVControlNetEfficientLoader", control_net_name="None", conditioning=conditioning,
                image=_hint()) is conditioning
    for name in ("depth", "tile"):
        error = _refused(registry, "AVControlNetEfficientLoader", "preprocessor", "None, canny, scribble",
                         control_net_name="cn_sd15_canny.safetensors", conditioning=conditioning, image=_hint(),
                         preprocessor=name)
        assert name in str(error)
    net = call(registry, "AVControlNetLoader", control_net_name="cn_sd15_canny.safetensors",
               control_net_override="cn_sdxl_canny.safetensors")
    direct = call(registry, "LoadControlNet", control_net_name="cn_sdxl_canny.safetensors")
    named = call(registry, "LoadControlNet", control_net_name="cn_sd15_canny.safetensors")
    (key, weight), = list(net.state_dict().items())[:1]  # the files' weights differ by seed
    assert torch.equal(weight, direct.state_dict()[key]) and not torch.equal(weight, named.state_dict()[key])


def test_ui_saves_read_the_sharpness_after_the_samplers_widgets(registry):
    from graphflow.workflow import parse_workflow
    from tests.test_pack_nodes import ui_graph, ui_node

    sockets = [("model", "MODEL", None, False), ("positive", "CONDITIONING", None, False),
               ("negative", "CONDITIONING", None, False), ("latent_image", "LATENT", None, False)]
    graph = ui_graph([ui_node(1, "Fooocus_KSampler", [7, "fixed", 12, 6.5, "euler", "karras", 0.8, 3.5], sockets,
                              [("LATENT", "LATENT", [])]),
                      ui_node(2, "PrepareImageAndMaskForInpaint", [6, True, 40, 512, 768],
                              [("image", "IMAGE", None, False), ("mask", "MASK", None, False)])])
    nodes = parse_workflow(graph, registry).to_json()["nodes"]
    sampler, prepare = nodes["1"]["inputs"], nodes["2"]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["scheduler"], sampler["denoise"], sampler["sharpness"]) == \
        (7, 12, "karras", 0.8, 3.5)
    assert (prepare["mask_blur"], prepare["inpaint_masked"], prepare["mask_padding"], prepare["width"],
            prepare["height"]) == (6, True, 40, 512, 768)


def test_dependencies_edit_is_named_with_why(registry, tiny):
    """The refusal's reason holds: the Efficient Loader's DEPENDENCIES has 16 entries, not the 8
    DependenciesEdit unpacks."""
    from graphflow.comfy_format import unknown_type_hint

    assert "16 entries" in unknown_type_hint("DependenciesEdit")
    *_, dependencies = call(registry, "EfficientLoader", ckpt_name="tiny.safetensors", vae_name="Baked VAE",
                            clip_skip=-1, lora_name="None", positive="a fox", negative="blurry",
                            empty_latent_width=64, empty_latent_height=64, batch_size=1)
    assert len(dependencies) == 16


def _size_embedding(values) -> torch.Tensor:
    """SDXL's 256-wide sinusoidal embedding of each size, written out: cos then sin of
    v · 10000^(-i / 128), i = 0..127."""
    freqs = torch.tensor([math.exp(-math.log(10000) * i / 128) for i in range(128)], dtype=torch.float64)
    return torch.cat([torch.cat([torch.cos(v * freqs), torch.sin(v * freqs)]) for v in values]).float()


def test_fooocus_samplers_scale_sdxl_sizes_as_the_pack(registry, tmp_folders):
    """The pack's SDXL encode_adm patch, on at every sharpness: original width / height x1.5 in the
    positive prompt's y and x0.8 in the negative's; crops and target sizes as they are."""
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny_xl.safetensors", "sdxl")
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny_xl.safetensors")
    positive = call(registry, "CLIPEncode", clip=clip, text="a red fox")
    negative = call(registry, "CLIPEncode", clip=clip, text="blurry")
    ys = []
    hook = model.unet.register_forward_pre_hook(lambda module, args: ys.append(args[3].detach().float().cpu()))
    try:
        call(registry, "FooocusKSampler", model=model, positive=positive, negative=negative, seed=0, steps=1, cfg=3.0,
             sampler_name="euler", scheduler="simple", latent_image={"samples": torch.zeros(1, 4, 6, 10)},
             denoise=1.0, sharpness=0.0)
    finally:
        hook.remove()
    rows = torch.cat(ys)
    pooled = {side: c[0][1]["pooled_output"].float().reshape(-1) for side, c in
              (("positive", positive), ("negative", negative))}
    width, height = 80, 48
    expected = {"positive": _size_embedding([height * 1.5, width * 1.5, 0, 0, height, width]),
                "negative": _size_embedding([height * 0.8, width * 0.8, 0, 0, height, width])}
    seen = set()
    for row in rows:
        side = next(s for s, p in pooled.items() if torch.allclose(row[:p.numel()], p, atol=1e-5))
        torch.testing.assert_close(row[pooled[side].numel():], expected[side], rtol=1e-4, atol=1e-4)
        seen.add(side)
    assert seen == {"positive", "negative"}


def _with_lora(model):
    """model with a stand-in LoRA: +1 on its input layer and on out.2.weight."""
    from graphflow.memory import WeightPatch

    return model.with_patches(tuple(WeightPatch(name, lambda w: w + 1) for name in (CONV_IN, "out.2.weight")))


def test_merges_take_model2s_weights_without_its_loras_where_the_pack_does(registry, models):
    """AV_CheckpointMerge merges model2's bare weights (the pack's k2[k][0]) everywhere; MergeModels
    only on the input layer (kp[k][0]), its other layers with model2's patches (kp[k])."""
    loaded, files = models
    patched = _with_lora(loaded["b"])
    merged = call(registry, "AVCheckpointMerge", model1=loaded["a"], model2=patched, model1_weight=0.4,
                  model2_weight=-0.5).unet.state_dict()
    for name in (CONV_IN, "out.2.weight"):
        torch.testing.assert_close(merged[name], 0.4 * files["a"][name] - 0.5 * files["b"][name], rtol=1e-5,
                                   atol=1e-6)
    merged = call(registry, "AVMergeModels", model1=loaded["a"], model2=patched, ratio=0.3).unet.state_dict()
    torch.testing.assert_close(merged[CONV_IN], 0.3 * files["a"][CONV_IN] + 0.7 * files["b"][CONV_IN],
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged["out.2.weight"], 0.3 * files["a"]["out.2.weight"]
                               + 0.7 * (files["b"]["out.2.weight"] + 1), rtol=1e-5, atol=1e-6)


def test_merge_models_of_two_inpainting_models_leaves_the_input_layer_and_says_why(registry, models, caplog):
    loaded, files = models
    with caplog.at_level("WARNING"):
        merged = call(registry, "AVMergeModels", model1=loaded["inpaint"], model2=loaded["inpaint"],
                      ratio=0.3).unet.state_dict()
    torch.testing.assert_close(merged[CONV_IN], 0.3 * files["inpaint"][CONV_IN], rtol=1e-5, atol=1e-6)
    assert "both models are inpainting ones" in caplog.text


def test_ui_saves_of_the_other_expanded_canvas_version_are_refused_by_name(registry):
    from graphflow.workflow import WorkflowFormatError, parse_workflow
    from tests.test_pack_nodes import ui_graph, ui_node

    built = ui_graph([ui_node(1, "CreateExpandedCanvasForOutpaint", [1, 2, 30, 40, "mask_both", 5],
                              [("original_image", "IMAGE", None, False), ("focused_image", "IMAGE", None, False)])])
    inputs = parse_workflow(built, registry).to_json()["nodes"]["1"]["inputs"]
    assert (inputs["right"], inputs["focus_mode"], inputs["feather_edges"]) == (30, "mask_both", 5)
    other = ui_graph([ui_node(1, "CreateExpandedCanvasForOutpaint", [0, 0, 64, 64, "all", 0, 0, 1.5],
                              [("image", "IMAGE", None, False)])])
    with pytest.raises(WorkflowFormatError, match="expansion_direction"):
        parse_workflow(other, registry)


def test_checkpoint_merge_zeroes_weights_model2_lacks(registry, models, caplog):
    """The pack patches such a weight with minus itself: 0, whatever the weights."""
    import copy

    loaded, files = models
    lacking = copy.deepcopy(loaded["b"].unet)
    lacking.out[2].bias = None  # no out.2.bias in model2
    with caplog.at_level("WARNING"):
        merged = call(registry, "AVCheckpointMerge", model1=loaded["a"], model2=loaded["b"].with_unet(lacking),
                      model1_weight=0.4, model2_weight=0.5).unet.state_dict()
    assert torch.count_nonzero(merged["out.2.bias"]) == 0 and torch.count_nonzero(files["a"]["out.2.bias"]) > 0
    torch.testing.assert_close(merged["out.2.weight"], 0.4 * files["a"]["out.2.weight"]
                               + 0.5 * files["b"]["out.2.weight"], rtol=1e-5, atol=1e-6)
    assert "model2 lacks" in caplog.text


def test_prepare_takes_each_image_of_a_batch_with_its_own_mask(registry, picture_and_mask):
    image, mask = picture_and_mask
    other = torch.zeros(1, 40, 48)
    other[0, 20:30, 30:40] = 1.0
    images, masks = torch.cat([image, image.flip(1)]), torch.cat([mask, other])
    settings = dict(mask_blur=0, inpaint_masked=True, mask_padding=2, width=32, height=16)
    batch = call(registry, "AVPrepareImageAndMaskForInpaint", image=images, mask=masks, **settings)
    for index in range(2):
        alone = call(registry, "AVPrepareImageAndMaskForInpaint", image=images[index:index + 1],
                     mask=masks[index:index + 1], **settings)
        for together, single in zip(batch, alone):
            assert torch.equal(together[index], single[0])
    assert batch[3][0].tolist() != batch[3][1].tolist()


def test_prepare_passes_the_controlnet_image_whole_without_inpaint_masked(registry, picture_and_mask):
    image, mask = picture_and_mask
    hint = torch.rand(1, 80, 96, 3, generator=torch.Generator().manual_seed(4))
    *_, passed = call(registry, "AVPrepareImageAndMaskForInpaint", image=image, mask=mask, controlnet_image=hint)
    assert torch.equal(passed[0], _back(_pil(hint[0])))  # whole, through 8 bits


def test_loaders_take_the_timestep_keyframe(registry, nets):
    from graphflow.models.advanced_control import KeyframedNet

    keyframe = call(registry, "TimestepKeyframe", start_percent=0.25, strength=0.5)
    net = call(registry, "AVControlNetLoader", control_net_name="cn_sd15_canny.safetensors",
               timestep_keyframe=keyframe)
    assert isinstance(net, KeyframedNet) and net.keyframes is keyframe
    [(net, *_)] = call(registry, "AVControlNetEfficientStacker", control_net_name="cn_sd15_canny.safetensors",
                        image=_hint(), timestep_keyframe=keyframe)
    assert isinstance(net, KeyframedNet) and net.keyframes is keyframe


def test_efficient_sampler_sharpens_the_model_its_hires_script_loads(registry, tiny, monkeypatch):
    """HighRes-Fix's hires_ckpt_name model is sampled with the sharpness too (the pack's patch is
    global): the hires pass gets it with the filter, as the sampler's own model."""
    import nodes.efficiency_nodes as efficiency
    from graphflow.testing import write_controlnet, write_esrgan
    from nodes.pack_nodes_art_venture2 import SharpnessPatch

    for sub in ("upscale_models", "controlnet"):
        (tiny.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tiny.models / "checkpoints" / "other.safetensors", "sd1", seed=3)
    write_esrgan(tiny.models / "upscale_models" / "x4.safetensors", scale=4)
    write_controlnet(tiny.models / "controlnet" / "control.safetensors", "sd1")
    hires_models = []

    def hires_fix(hires, loaded, noise, latent, *rest):
        hires_models.append(loaded[0])
        return latent, None

    monkeypatch.setattr(efficiency, "_hires_fix", hires_fix)
    graph = _prompt("Fooocus_KSamplerEfficient", 4.0, seed=1, steps=1, denoise=1.0, preview_method="none",
                    vae_decode="false", sharpness=30.0, script=["6", 0])
    graph["6"] = {"class_type": "HighRes-Fix Script", "inputs": {
        "upscale_type": "latent", "hires_ckpt_name": "other.safetensors", "latent_upscaler": "bilinear",
        "pixel_upscaler": "x4.safetensors", "upscale_by": 1.5, "use_same_seed": True, "seed": 1, "hires_steps": 1,
        "denoise": 0.5, "iterations": 1, "use_controlnet": False, "control_net_name": "control.safetensors",
        "strength": 1.0, "preprocessor": "none", "preprocessor_imgs": False}}
    run_graph(registry, graph, outputs=["5"])
    [model] = hires_models
    assert [type(w) for w in model.network_wrappers] == [SharpnessPatch]


def test_auto_sdxl_passes_over_t2i_and_lllite_files(registry, nets):
    """The pack's detect_controlnet at 713f6de7, shared by its stackers and AV_ControlNetPreprocessor:
    for sdxl, files naming t2i or lllite are passed over (10ff95d0 passed over sdxl_t2i files only)."""
    from graphflow.testing import write_controlnet
    from nodes.pack_nodes_art_venture2 import _detected

    folder = nets.models / "controlnet"
    # listed before cn_sdxl_canny, each naming sdxl and canny
    write_controlnet(folder / "bdsqlsz_controllllite_sdxl_canny.safetensors", "sd1", seed=7)
    write_controlnet(folder / "a_t2i-adapter_sdxl_canny.safetensors", "sd1", seed=8)
    assert _detected("canny", "sdxl") == "cn_sdxl_canny.safetensors"
    [(net, *_)] = call(registry, "AVControlNetEfficientStacker", control_net_name="Auto: sdxl", image=_hint(),
                       preprocessor="canny", resolution=64)
    wanted = call(registry, "LoadControlNet", control_net_name="cn_sdxl_canny.safetensors")
    (key, weight), = list(net.state_dict().items())[:1]
    assert torch.equal(weight, wanted.state_dict()[key])
