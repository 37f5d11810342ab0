"""kijai's ComfyUI-IC-Light (nodes/pack_nodes_iclight.py, graphflow/models/iclight.py): the relit UNet
against diffusers' UNet2DConditionModel holding base + offset weights with a wider conv_in, for both
key layouts and both widths; the pack's light maps, normals, blends and HDR exposures against its
formulas transcribed here (torchvision's GaussianBlur for the blur); inputs against the pack's
INPUT_TYPES; a UI-format save (checkpoint -> LoadAndApplyICLightUnet -> ICLightConditioning ->
KSampler -> VAEDecode) read and run; bad files and inputs refused by name."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from graphflow.comfy_format import LEFT_OUT, custom_pack, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint, write_iclight
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

cv2 = pytest.importorskip("cv2")

POSITIONS = ("Left Light", "Right Light", "Top Light", "Bottom Light", "Top Left Light", "Top Right Light",
             "Bottom Left Light", "Bottom Right Light")
MODES = ("add", "multiply", "screen", "overlay", "soft_light", "hard_light", "color_dodge", "color_burn",
         "difference", "exclusion", "divide")

# The pack's INPUT_TYPES (nodes.py 22811d903af8): name, type or choices, default, min, max, step
PACK_INPUTS = {
    "LoadAndApplyICLightUnet": [("model", "MODEL"), ("model_path", "choice")],
    "ICLightConditioning": [("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("vae", "VAE"),
                            ("foreground", "LATENT"), ("multiplier", "FLOAT", 0.18215, 0.0, 1.0, 0.001),
                            ("opt_background", "LATENT")],
    "LightSource": [("light_position", POSITIONS), ("multiplier", "FLOAT", 1.0, 0.0, 100.0, 0.001),
                    ("start_color", "STRING", "#FFFFFF"), ("end_color", "STRING", "#000000"),
                    ("width", "INT", 512, 0, 16384, 8), ("height", "INT", 512, 0, 16384, 8),
                    ("batch_size", "INT", 1, 1, 4096, 1), ("prev_image", "IMAGE")],
    "CalculateNormalsFromImages": [("images", "IMAGE"), ("sigma", "FLOAT", 10.0, 0.01, 100.0, 0.01),
                                   ("center_input_range", "BOOLEAN", False), ("mask", "MASK")],
    "LoadHDRImage": [("image", "choice"), ("exposures", "STRING", "-2,-1,0,1,2")],
    "BackgroundScaler": [("image", "IMAGE"), ("mask", "MASK"), ("scale", "FLOAT", 0.5, -10.0, 10.0, 0.001),
                         ("invert", "BOOLEAN", False)],
    "DetailTransfer": [("target", "IMAGE"), ("source", "IMAGE"), ("mode", MODES),
                       ("blur_sigma", "FLOAT", 1.0, 0.1, 100.0, 0.01),
                       ("blend_factor", "FLOAT", 1.0, -10.0, 10.0, 0.001), ("mask", "MASK")],
}
PACK_OUTPUTS = {"LoadAndApplyICLightUnet": ["MODEL"], "ICLightConditioning": ["CONDITIONING"] * 2 + ["LATENT"],
                "LightSource": ["IMAGE"], "CalculateNormalsFromImages": ["IMAGE", "IMAGE"],
                "LoadHDRImage": ["IMAGE", "MASK"], "BackgroundScaler": ["IMAGE"], "DetailTransfer": ["IMAGE"]}


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def test_inputs_outputs_and_category_follow_the_pack(registry):
    for comfy_class, inputs in PACK_INPUTS.items():
        cls = registry.comfy_node(comfy_class)
        assert cls.category == "IC-Light"
        assert custom_pack(comfy_class) == "ComfyUI-IC-Light"
        assert list(cls.input_specs) == [row[0] for row in inputs], comfy_class
        for name, kind, *limits in inputs:
            spec = cls.input_specs[name]
            if isinstance(kind, tuple):
                assert tuple(spec.widget.choices()) == kind and spec.widget.default == kind[0], name
            elif kind in ("FLOAT", "INT", "STRING", "BOOLEAN"):
                widget = spec.widget
                assert widget.default == limits[0], name
                if len(limits) > 1:
                    assert (widget.min, widget.max, widget.step) == tuple(limits[1:]), name
            elif kind != "choice":
                assert spec.type == kind, name
        assert [o.type for o in cls.output_specs] == PACK_OUTPUTS[comfy_class], comfy_class
    assert custom_pack("ICLightAppply") == "ComfyUI-IC-Light-Native" and LEFT_OUT["ICLightAppply"]
    # huchenlei's helpers (ic_light_nodes.py 22d923a811ff)
    grey, argmax = registry.comfy_node("ICLightApplyMaskGrey"), registry.comfy_node("VAEEncodeArgMax")
    assert list(grey.input_specs) == ["image", "alpha"] and grey.category == "mask/compositing"
    assert list(argmax.input_specs) == ["pixels", "vae"]
    assert [o.type for o in grey.output_specs] == ["IMAGE"] and [o.type for o in argmax.output_specs] == ["LATENT"]
    assert custom_pack("ICLightApplyMaskGrey") == custom_pack("VAEEncodeArgMax") == "ComfyUI-IC-Light-Native"


def test_native_mask_grey_and_argmax_encode(registry, tmp_path):
    from graphflow.models.checkpoint import load_vae
    from graphflow.testing import write_vae
    image, alpha = torch.rand(2, 16, 16, 3), torch.rand(1, 16, 16)
    out = call(registry, "ICLightNativeApplyMaskGrey", image=image, alpha=alpha)
    torch.testing.assert_close(out, image * alpha[..., None] + (1 - alpha[..., None]) * 0.5)
    with pytest.raises(NodeInputError) as info:
        call(registry, "ICLightNativeApplyMaskGrey", image=image, alpha=torch.rand(3, 16, 16))
    assert info.value.input == "alpha"
    vae = load_vae(write_vae(tmp_path / "v.safetensors"), device="cpu")
    mean, logvar = vae.encode_posterior(image)
    latent = call(registry, "ICLightNativeVAEEncodeArgMax", pixels=image, vae=vae)["samples"]
    assert torch.equal(latent, mean) and logvar.exp().mean() > 1e-3  # the mode, not a draw


# -- the relit UNet against diffusers -------------------------------------------------------------


@pytest.fixture(scope="module")
def base():
    """An SD1.5-shaped UNet at small widths (8 heads, context 768, as SD1.5), every weight random."""
    from graphflow.models import DiffusionModel
    from tests.test_unet import TINY, random_unet
    return DiffusionModel(random_unet(TINY["sd1"]), "sd1")


def _offset_file(path, channels, layout="diffusers", seed=0):
    from tests.test_unet import TINY
    return write_iclight(path, channels, layout, seed=seed, dtype=torch.float32, unet=TINY["sd1"])


def _diffusers_reference(base_model, offset_file, channels):
    """diffusers' UNet2DConditionModel(in_channels=channels) with the base's weights (converted by
    diffusers' own LDM converter), conv_in padded with zeros, plus the file's offsets by their
    diffusers names (a diffusers-layout file) - the IC-Light UNet as lllyasviel's gradio code makes it."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file
    from tests.test_unet import to_diffusers_unet

    from graphflow.memory import manager
    from graphflow.models import UNet

    clean = UNet(base_model.unet.config)  # the base's own weights (the shared ones may hold a patch set now)
    clean.load_state_dict(manager().weights(base_model.unet, base_model.patches))
    config, converted = to_diffusers_unet(clean, config_only=True)
    conv = converted["conv_in.weight"]
    converted["conv_in.weight"] = torch.cat([conv, conv.new_zeros(conv.shape[0], channels - 4, *conv.shape[2:])], 1)
    offsets = load_file(str(offset_file))
    assert set(offsets) == set(converted)
    merged = {k: v + offsets[k].float() for k, v in converted.items()}
    model = UNet2DConditionModel(**{**config, "in_channels": channels})
    model.load_state_dict(merged, strict=True)
    return model.eval()


@pytest.mark.parametrize("channels", [8, 12])
def test_relit_unet_matches_diffusers_on_base_plus_offset(base, tmp_path, channels):
    from graphflow.models.iclight import apply_offset, read_offset

    file = _offset_file(tmp_path / "iclight_sd15.safetensors", channels)
    ldm_file = _offset_file(tmp_path / "iclight_ldm.safetensors", channels, "ldm")
    relit = apply_offset(base, read_offset(file), file.name)
    assert relit.in_channels == channels and base.in_channels == 4
    theirs = _diffusers_reference(base, file, channels)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, channels, 16, 16, generator=g)
    t = torch.tensor([999.0, 321.0])
    context = torch.randn(2, 7, base.unet.config.context_dim, generator=g)
    with torch.no_grad():
        before = base(x[:, :4], t, context)
        out = relit(x, t, context)
        ref = theirs(x, t, encoder_hidden_states=context).sample
        after = base(x[:, :4], t, context)  # the base model's weights are given back
        again = relit(x, t, context)
        from_ldm = apply_offset(base, read_offset(ldm_file), ldm_file.name)(x, t, context)
    assert ref.abs().mean() > 0.05
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(from_ldm, out, atol=0, rtol=0)  # the same numbers in the LDM layout
    assert torch.equal(before, after) and torch.equal(out, again)
    assert (out - before).abs().max() > 1e-2


def test_a_lora_on_conv_in_before_iclight_is_widened_with_it(base, tmp_path):
    """A LoRA applied before IC-Light that changes conv_in: the relit conv_in is the base's plus the
    LoRA's change, padded with zeros, plus the offset (no conv_in patch left to misfit the wider
    weight); the base model's conv_in is left as it was."""
    from safetensors.torch import load_file, save_file

    from graphflow.models.iclight import CONV_IN, apply_offset, read_offset
    from graphflow.models.lora import apply_lora

    weight = base.unet.get_parameter(CONV_IN).detach().clone()
    g = torch.Generator().manual_seed(8)
    down, up = torch.randn(2, 4, 3, 3, generator=g) * 0.1, torch.randn(weight.shape[0], 2, 1, 1, generator=g) * 0.1
    save_file({"lora_unet_conv_in.lora_down.weight": down, "lora_unet_conv_in.lora_up.weight": up,
               "lora_unet_conv_in.alpha": torch.tensor(4.0)}, str(tmp_path / "conv_in_lora.safetensors"))
    with_lora, _ = apply_lora(base, None, tmp_path / "conv_in_lora.safetensors", strength_model=0.7)
    assert any(p.param == CONV_IN for p in with_lora.patches)
    file = _offset_file(tmp_path / "fbc.safetensors", 12)
    relit = apply_offset(with_lora, read_offset(file), file.name)
    change = 0.7 * 2.0 * (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)  # alpha / rank = 2
    want = torch.cat([weight + change, weight.new_zeros(weight.shape[0], 8, 3, 3)], 1)
    want = want + load_file(str(file))["conv_in.weight"]
    torch.testing.assert_close(relit.unet.get_parameter(CONV_IN), want, atol=1e-6, rtol=0)
    assert change.abs().max() > 1e-3 and not any(p.param == CONV_IN for p in relit.patches)
    assert torch.equal(base.unet.get_parameter(CONV_IN), weight)


def test_offset_files_of_another_layout_or_model_refused(registry, base, tmp_folders):
    from safetensors.torch import save_file
    folder = tmp_folders.models / "unet"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"lora_unet_foo.lora_down.weight": torch.zeros(2, 2)}, str(folder / "a_lora.safetensors"))
    _offset_file(folder / "wide.safetensors", 16)
    sdxl_like = _offset_file(folder / "other.safetensors", 8, "ldm")
    from safetensors.torch import load_file
    tensors = load_file(str(sdxl_like))
    tensors["out.2.weight"] = torch.zeros(4, 7, 3, 3)
    save_file(tensors, str(sdxl_like))
    for name, words in (("a_lora.safetensors", "neither conv_in.weight"), ("wide.safetensors", "input_blocks.0.0"),
                        ("other.safetensors", "out.2.weight is (4, 7, 3, 3)")):
        with pytest.raises(NodeInputError, match=re.escape(words)) as info:
            call(registry, "ICLightLoadAndApply", model=base, model_path=name)
        assert info.value.input == "model_path" and name in str(info.value)
    relit = call(registry, "ICLightLoadAndApply", model=base,
                 model_path=_offset_file(folder / "fc.safetensors", 8).name)
    with pytest.raises(NodeInputError, match="plain SD1.5") as info:  # not twice
        call(registry, "ICLightLoadAndApply", model=relit, model_path="fc.safetensors")
    assert info.value.input == "model"
    from graphflow.models import DiffusionModel
    from tests.test_unet import TINY, random_unet
    with pytest.raises(NodeInputError, match="SD1.5 models; this is 'sdxl'") as info:  # the pack's SD15 check
        call(registry, "ICLightLoadAndApply", model=DiffusionModel(random_unet(TINY["sdxl"]), "sdxl"),
             model_path="fc.safetensors")
    assert info.value.input == "model"
    fp8 = DiffusionModel(random_unet(TINY["sd1"]), "sd1")
    name, linear = next((n, w) for n, w in fp8.unet.named_parameters() if w.ndim == 2)
    linear.data = linear.data.to(torch.float8_e4m3fn)  # UNETLoader's weight_dtype fp8_e4m3fn
    with pytest.raises(NodeInputError, match=re.escape(f"stores {name} as torch.float8_e4m3fn")) as info:
        call(registry, "ICLightLoadAndApply", model=fp8, model_path="fc.safetensors")
    assert info.value.input == "model"



def test_applied_to_a_base_dropped_from_ram_before_or_after(registry, fresh_manager, iclight_folders):
    """The checkpoint's UNet dropped from RAM (RAM short) after IC-Light was applied, before the relit
    model first ran, or before IC-Light was applied: the relit model reads the base back and gives
    the numbers of one made from the live base."""
    import gc

    from graphflow import memory
    from graphflow.models.checkpoint import load_checkpoint

    model = load_checkpoint(iclight_folders.models / "checkpoints" / "sd15.safetensors", device="cpu",
                            dtype=torch.float32).model
    comp = fresh_manager.components[id(model.unet)]
    assert comp.reload is not None

    def relit_output(relit):
        g = torch.Generator().manual_seed(3)
        x, t = torch.randn(1, 8, 8, 8, generator=g), torch.tensor([400.0])
        context = torch.randn(1, 7, model.unet.config.context_dim, generator=g)
        with memory.use(relit.unet, "diffusion_model", "relit", relit.patches), torch.no_grad():
            return relit(x, t, context)

    def apply():
        return call(registry, "ICLightLoadAndApply", model=model, model_path="iclight_sd15_fc.safetensors")

    want, later = relit_output(apply()), apply()
    gc.collect()
    fresh_manager._forget_dead()
    fresh_manager._drop(comp)  # after IC-Light was applied, before its model ran
    assert comp.state == "dropped"
    torch.testing.assert_close(relit_output(later), want, atol=0, rtol=0)
    del later
    gc.collect()
    fresh_manager._forget_dead()
    fresh_manager._drop(comp)  # before IC-Light is applied
    assert comp.state == "dropped"
    relit = apply()
    assert not relit.unet.input_blocks[0][0].weight.is_meta
    torch.testing.assert_close(relit_output(relit), want, atol=0, rtol=0)

# -- conditioning ------------------------------------------------------------------------------


def test_conditioning_carries_scaled_latents(registry):
    g = torch.Generator().manual_seed(2)
    fg, bg = torch.randn(2, 4, 8, 12, generator=g), torch.randn(1, 4, 4, 6, generator=g)
    cond = [(torch.zeros(1, 3, 8), {"pooled_output": None})]
    positive, negative, empty = call(registry, "ICLightConditioning", positive=cond, negative=cond, vae=None,
                                     foreground={"samples": fg}, multiplier=0.5, opt_background={"samples": bg})
    resized = torch.nn.functional.interpolate(bg, size=(8, 12), mode="bilinear", align_corners=False)
    want = torch.cat([fg, resized.repeat(2, 1, 1, 1)], 1) * 0.5
    for side in (positive, negative):
        assert "concat_latent_image" not in cond[0][1]
        torch.testing.assert_close(side[0][1]["concat_latent_image"], want)
    assert torch.equal(empty["samples"], torch.zeros(2, 4, 8, 12))
    with pytest.raises(NodeInputError) as info:
        call(registry, "ICLightConditioning", positive=cond, negative=cond, vae=None, foreground={"samples": fg},
             opt_background={"samples": torch.zeros(3, 4, 8, 12)})
    assert info.value.input == "opt_background"
    with pytest.raises(NodeInputError, match="video latent") as info:
        call(registry, "ICLightConditioning", positive=cond, negative=cond, vae=None,
             foreground={"samples": torch.zeros(1, 16, 3, 8, 12)})
    assert info.value.input == "foreground"


# -- the pack's image nodes against its formulas --------------------------------------------------


def _pack_gradient(position, width, height, m, start, end):
    """utils/image.py generate_gradient_image (e113fb7dfb57), written out."""
    x01, x10 = np.linspace(0, 1, width) ** m, np.linspace(1, 0, width) ** m
    y01, y10 = np.linspace(0, 1, height) ** m, np.linspace(1, 0, height) ** m
    if position == "Left Light":
        g = np.tile(x01, (height, 1))
    elif position == "Right Light":
        g = np.tile(x10, (height, 1))
    elif position == "Top Light":
        g = np.tile(y01, (width, 1)).T
    elif position == "Bottom Light":
        g = np.tile(y10, (width, 1)).T
    else:
        xs = {"Left": x01, "Right": x10}[position.split()[1]]
        ys = {"Top": y01, "Bottom": y10}[position.split()[0]]
        xm, ym = np.meshgrid(xs, ys)
        g = np.sqrt(xm ** 2 + ym ** 2) / np.sqrt(2.0)
    img = np.zeros((height, width, 3), dtype=np.float32)
    for i in range(3):
        img[..., i] = start[i] + (end[i] - start[i]) * g
    return torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8).astype(np.float32) / 255.0)


@pytest.mark.parametrize("position", POSITIONS)
def test_light_source_is_the_packs_gradient(registry, position):
    prev = torch.rand(1, 24, 40, 3)
    out = call(registry, "ICLightLightSource", light_position=position, multiplier=1.7, start_color="#FFC080",
               end_color="10,20,250", width=40, height=24, batch_size=2, prev_image=prev)
    want = _pack_gradient(position, 40, 24, 1.7, (255, 192, 128), (10, 20, 250))
    assert out.shape == (3, 24, 40, 3) and torch.equal(out[0], prev[0])
    assert torch.equal(out[1], want) and torch.equal(out[2], want)
    assert out[1].std() > 0.1


def test_light_source_works_in_bands_of_rows(registry):
    """The pack's float64 colours [H, W, 3] are 2 float32 pictures (and a corner light's ramps
    more): here made a band of rows at a time, so numpy holds well under one picture at once."""
    import tracemalloc
    size = 2048
    tracemalloc.start()
    try:
        out = call(registry, "ICLightLightSource", light_position="Top Left Light", multiplier=1.3, width=size,
                   height=size)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * size * size * 3 * 4
    rows = slice(size - 70, size)  # the last band, and the one before it
    want = _pack_gradient("Top Left Light", size, size, 1.3, (255, 255, 255), (0, 0, 0))
    assert torch.equal(out[0, rows], want[rows]) and torch.equal(out[0, :3], want[:3])


def test_light_source_refuses_bad_colours_and_sizes(registry):
    for name, args in (("start_color", {"start_color": "red"}), ("end_color", {"end_color": "1,2"}),
                       ("width", {"width": 0}), ("prev_image", {"prev_image": torch.zeros(1, 8, 8, 3)})):
        with pytest.raises(NodeInputError) as info:
            call(registry, "ICLightLightSource", **{"width": 16, "height": 16, **args})
        assert info.value.input == name


def _pack_normals(images, sigma, mask=None):
    """CalculateNormalsFromImages.execute (nodes.py 22811d903af8) in numpy, one group of four."""
    left, right, bottom, top = images.numpy().astype(np.float32)
    ambient = (left + right + bottom + top) / 4.0
    q = [((a + 1e-5) / (ambient + 1e-5)) - 1.0 for a in (left, right, bottom, top)]
    u, v = np.mean((q[1] - q[0]) * 0.5, axis=2), np.mean((q[3] - q[2]) * 0.5, axis=2)
    h = (1.0 - u ** 2.0 - v ** 2.0).clip(0, 1e5) ** (0.5 * sigma)
    z = np.zeros_like(h)
    normal = np.stack([u, v, h], axis=2)
    normal /= np.sum(normal ** 2.0, axis=2, keepdims=True) ** 0.5
    if mask is not None:
        normal = normal * mask.numpy()[None, ..., None] + np.stack([z, z, 1 - z], axis=2)
    else:
        normal = (normal + np.stack([z, z, 1 - z], axis=2))[None]
    normal = (normal - normal.min()) / (normal.max() - normal.min())
    divided = np.stack(q)
    divided = (divided - divided.min()) / (divided.max() - divided.min())
    return torch.from_numpy(normal), torch.from_numpy(divided).max(dim=3, keepdim=True)[0].repeat(1, 1, 1, 3)


def test_normals_are_the_packs(registry):
    g = torch.Generator().manual_seed(4)
    images = torch.rand(8, 10, 14, 3, generator=g) * 0.8 + 0.1  # two groups: l1 l2 r1 r2 b1 b2 t1 t2
    mask = (torch.rand(2, 10, 14, generator=g) > 0.3).float()
    normal, divided = call(registry, "ICLightCalculateNormalsFromImages", images=images, sigma=3.0, mask=mask)
    assert normal.shape == (2, 10, 14, 3) and divided.shape == (8, 10, 14, 3)
    for group in range(2):
        want_n, want_d = _pack_normals(images[group::2], 3.0, mask[group])
        torch.testing.assert_close(normal[group:group + 1], want_n, atol=1e-5, rtol=0)
        torch.testing.assert_close(divided[4 * group:4 * group + 4], want_d, atol=1e-5, rtol=0)
    plain, _ = call(registry, "ICLightCalculateNormalsFromImages", images=images[::2] * 2 - 1, sigma=10.0,
                    center_input_range=True)
    torch.testing.assert_close(plain, _pack_normals(images[::2], 10.0)[0], atol=1e-4, rtol=0)
    from graphflow.resource_limits import Size
    estimate = registry.get("ICLightCalculateNormalsFromImages").estimate({}, {"images": Size(8, 10, 14)})
    assert estimate.size == Size(8, 10, 14)  # the larger output, "divided"
    with pytest.raises(NodeInputError) as info:
        call(registry, "ICLightCalculateNormalsFromImages", images=images[:6])
    assert info.value.input == "images"


def test_background_scaler_closed_form(registry):
    image, mask = torch.rand(2, 6, 7, 3), torch.rand(2, 6, 7)
    out = call(registry, "ICLightBackgroundScaler", image=image, mask=mask, scale=1.5, invert=True)
    m = 1 - mask[..., None]
    torch.testing.assert_close(out, (image * m + (1 - m) * 1.5).clamp(0, 1))
    with pytest.raises(NodeInputError) as info:
        call(registry, "ICLightBackgroundScaler", image=image, mask=torch.rand(1, 5, 7))
    assert info.value.input == "mask"


def _pack_blend(mode, s, bs, t):
    return {"add": lambda: (s - bs) + t, "multiply": lambda: s * t, "screen": lambda: 1 - (1 - s) * (1 - t),
            "overlay": lambda: torch.where(t < 0.5, 2 * s * t, 1 - 2 * (1 - s) * (1 - t)),
            "soft_light": lambda: (1 - 2 * t) * s ** 2 + 2 * t * s,
            "hard_light": lambda: torch.where(s < 0.5, 2 * s * t, 1 - 2 * (1 - s) * (1 - t)),
            "difference": lambda: torch.abs(t - s), "exclusion": lambda: 0.5 - 2 * (t - 0.5) * (s - 0.5),
            "color_dodge": lambda: t / (1 - s), "color_burn": lambda: 1 - (1 - t) / s,
            "divide": lambda: (s / bs) * t}[mode]()


@pytest.mark.parametrize("mode", MODES)
def test_detail_transfer_is_torchvisions_blur_and_the_packs_blend(registry, mode):
    transforms = pytest.importorskip("torchvision.transforms")
    g = torch.Generator().manual_seed(7)
    target, source = torch.rand(2, 20, 24, 3, generator=g), torch.rand(1, 20, 24, 3, generator=g) * 0.9 + 0.05
    mask = torch.rand(2, 20, 24, generator=g)
    out = call(registry, "ICLightDetailTransfer", target=target, source=source, mode=mode, blur_sigma=2.5,
               blend_factor=0.7, mask=mask)
    blur = transforms.GaussianBlur(kernel_size=13, sigma=2.5)  # 6 * int(2.5) + 1
    t, s = target.permute(0, 3, 1, 2), source.permute(0, 3, 1, 2)
    mixed = torch.lerp(t, _pack_blend(mode, s, blur(s), blur(t)), 0.7)
    want = torch.lerp(t, mixed, mask[:, None].expand(-1, 3, -1, -1)).clamp(0, 1).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, want, atol=2e-5, rtol=0)


def test_detail_transfer_resizes_the_source_and_refuses_odd_batches(registry):
    target, source = torch.rand(1, 16, 16, 3), torch.rand(1, 8, 8, 3)
    out = call(registry, "ICLightDetailTransfer", target=target, source=source, mode="multiply", blur_sigma=0.5)
    resized = torch.nn.functional.interpolate(source.permute(0, 3, 1, 2), size=(16, 16), mode="bilinear")
    # sigma under 1: a one-tap kernel, no blur (the pack's int(sigma))
    torch.testing.assert_close(out, (resized * target.permute(0, 3, 1, 2)).clamp(0, 1).permute(0, 2, 3, 1))
    with pytest.raises(NodeInputError) as info:
        call(registry, "ICLightDetailTransfer", target=torch.rand(3, 8, 8, 3), source=torch.rand(2, 8, 8, 3))
    assert info.value.input == "source"


def test_load_hdr_image_exposures(registry, tmp_folders):
    g = np.random.default_rng(3)
    radiance = (g.random((12, 10, 3)) * 3).astype(np.float32)
    cv2.imwrite(str(tmp_folders.inputs / "room.hdr"), radiance)
    # in colour, our choice: the pack's IMREAD_ANYDEPTH alone reads one grey channel, which its BGR -> RGB
    # step refuses on OpenCV 4 and on OpenCV 5 turns into grey pictures (asserted below, as the help says)
    stored = cv2.imread(str(tmp_folders.inputs / "room.hdr"), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    images, mask = call(registry, "ICLightLoadHDRImage", image="room.hdr", exposures="-1,0,2")
    assert images.shape == (3, 12, 10, 3) and mask.shape == (1, 64, 64)
    for i, stops in enumerate((-1, 0, 2)):
        levels = np.uint8(np.clip(stored * (2 ** stops), 0, 1) * 255)
        want = torch.from_numpy(cv2.cvtColor(levels, cv2.COLOR_BGR2RGB)).float() / 255.0
        assert torch.equal(images[i], want)
    grey = cv2.imread(str(tmp_folders.inputs / "room.hdr"), cv2.IMREAD_ANYDEPTH)
    assert grey.ndim == 2
    if int(cv2.__version__.split(".")[0]) >= 5:
        packs = cv2.cvtColor(grey, cv2.COLOR_BGR2RGB)
        assert packs.shape == (12, 10, 3) and (packs == packs[..., :1]).all()
        assert (images[1].std(-1) > 0.01).any()  # ours is not the pack's grey
    for text in ("one", "1," * 70, "300"):
        with pytest.raises(NodeInputError) as info:
            call(registry, "ICLightLoadHDRImage", image="room.hdr", exposures=text)
        assert info.value.input == "exposures"


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture
def iclight_folders(tmp_folders):
    for sub in ("checkpoints", "unet"):
        (tmp_folders.models / sub).mkdir(parents=True, exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "sd15.safetensors", "sd1")
    write_iclight(tmp_folders.models / "unet" / "iclight_sd15_fc.safetensors", 8)
    write_iclight(tmp_folders.models / "unet" / "iclight_sd15_fbc.safetensors", 12, seed=3)
    return tmp_folders


def _ui_save(model_file, background: bool):
    """CheckpointLoaderSimple, LoadAndApplyICLightUnet, two prompts, LightSource -> VAEEncode as the
    foreground (and a second one as the background), ICLightConditioning, KSampler, VAEDecode."""
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["sd15.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [4, 5, 6, 12])]),
        ui_node(2, "LoadAndApplyICLightUnet", [model_file], [("model", "MODEL", 1, False)],
                [("MODEL", "MODEL", [7])]),
        ui_node(3, "CLIPTextEncode", ["a face, sunlight"], [("clip", "CLIP", 2, False)],
                [("CONDITIONING", "CONDITIONING", [8])]),
        ui_node(4, "CLIPTextEncode", [""], [("clip", "CLIP", 3, False)], [("CONDITIONING", "CONDITIONING", [9])]),
        ui_node(5, "LightSource", ["Left Light", 1.0, "#FFFFFF", "#000000", 32, 32, 1],
                outputs=[("IMAGE", "IMAGE", [10])]),
        ui_node(6, "VAEEncode", [], [("pixels", "IMAGE", 10, False), ("vae", "VAE", 4, False)],
                [("LATENT", "LATENT", [11])]),
        ui_node(7, "ICLightConditioning", [0.18215],
                [("positive", "CONDITIONING", 8, False), ("negative", "CONDITIONING", 9, False),
                 ("vae", "VAE", 5, False), ("foreground", "LATENT", 11, False),
                 ("opt_background", "LATENT", 14 if background else None, False)],
                [("positive", "CONDITIONING", [15]), ("negative", "CONDITIONING", [16]),
                 ("empty_latent", "LATENT", [17])]),
        ui_node(8, "KSampler", [5, "fixed", 2, 2.0, "euler", "normal", 1.0],
                [("model", "MODEL", 7, False), ("positive", "CONDITIONING", 15, False),
                 ("negative", "CONDITIONING", 16, False), ("latent_image", "LATENT", 17, False)],
                [("LATENT", "LATENT", [18])]),
        ui_node(9, "VAEDecode", [], [("samples", "LATENT", 18, False), ("vae", "VAE", 6, False)],
                [("IMAGE", "IMAGE", [])]),
        ui_node(10, "LightSource", ["Top Right Light", 2.0, "255,128,0", "#000010", 32, 32, 1],
                outputs=[("IMAGE", "IMAGE", [13])]),
        ui_node(11, "VAEEncode", [], [("pixels", "IMAGE", 13, False), ("vae", "VAE", 12, False)],
                [("LATENT", "LATENT", [14])]),
    ]
    links = [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 3, 0, "CLIP"], [3, 1, 1, 4, 0, "CLIP"], [4, 1, 2, 6, 1, "VAE"],
             [5, 1, 2, 7, 2, "VAE"], [6, 1, 2, 9, 1, "VAE"], [7, 2, 0, 8, 0, "MODEL"],
             [8, 3, 0, 7, 0, "CONDITIONING"], [9, 4, 0, 7, 1, "CONDITIONING"], [10, 5, 0, 6, 0, "IMAGE"],
             [11, 6, 0, 7, 3, "LATENT"], [12, 1, 2, 11, 1, "VAE"], [13, 10, 0, 11, 0, "IMAGE"],
             [14, 11, 0, 7, 4, "LATENT"], [15, 7, 0, 8, 1, "CONDITIONING"], [16, 7, 1, 8, 2, "CONDITIONING"],
             [17, 7, 2, 8, 3, "LATENT"], [18, 8, 0, 9, 0, "LATENT"]]
    if not background:
        nodes, links = nodes[:9], [link for link in links if link[0] not in (12, 13, 14)]
    return nodes, links


def test_ui_save_relights_end_to_end(registry, iclight_folders):
    nodes, links = _ui_save("iclight_sd15_fc.safetensors", background=False)
    graph = ui_graph(nodes, links)
    picture = run_graph(registry, graph, ["9"]).values["9"][0]
    assert picture.shape == (1, 32, 32, 3) and torch.isfinite(picture).all()
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for node in nodes:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]
    # the foreground reaches the UNet: another light map, another picture
    nodes[4]["widgets_values"][0] = "Right Light"
    other = run_graph(registry, ui_graph(nodes, links), ["9"]).values["9"][0]
    assert (other - picture).abs().max() > 1e-3


def test_ui_save_with_a_background_runs_the_fbc_model(registry, iclight_folders):
    nodes, links = _ui_save("iclight_sd15_fbc.safetensors", background=True)
    with_background = run_graph(registry, ui_graph(nodes, links), ["9"]).values["9"][0]
    assert with_background.shape == (1, 32, 32, 3) and torch.isfinite(with_background).all()
    # the background reaches the UNet: another background light, another picture
    nodes[9]["widgets_values"][0] = "Bottom Left Light"
    other = run_graph(registry, ui_graph(nodes, links), ["9"]).values["9"][0]
    assert (other - with_background).abs().max() > 1e-3


def test_a_background_with_the_fc_model_is_refused(registry, iclight_folders):
    from graphflow.executor import Executor
    nodes, links = _ui_save("iclight_sd15_fc.safetensors", background=True)
    result = Executor(registry).run(parse_workflow(ui_graph(nodes, links), registry), outputs=["9"])
    assert not result.ok
    assert result.error["node_type"] == "KSampler" and result.error["input"] == "positive"
    assert "12-channel 'fbc'" in str(result.error)


def test_a_mismatched_concat_on_the_negative_side_names_negative(base, tmp_path):
    from graphflow.models.iclight import apply_offset, read_offset
    from graphflow.sampling.pipeline import sample

    file = _offset_file(tmp_path / "fc.safetensors", 8)
    relit = apply_offset(base, read_offset(file), file.name)
    context = torch.zeros(1, 7, base.unet.config.context_dim)
    fine = [(context, {"concat_latent_image": torch.zeros(1, 4, 8, 8)})]
    wide = [(context, {"concat_latent_image": torch.zeros(1, 8, 8, 8)})]
    for positive, negative, side in ((wide, fine, "positive"), (fine, wide, "negative")):
        with pytest.raises(NodeInputError, match="12-channel 'fbc'") as info:
            sample(relit, 1, 1, 2.0, "euler", "normal", positive, negative, {"samples": torch.zeros(1, 4, 8, 8)})
        assert info.value.input == side
