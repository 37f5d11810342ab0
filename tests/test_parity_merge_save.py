"""Parity of the merge and save nodes with ComfyUI's: ModelMerge* merge by weight name (a weight
only model1 has stays as it is, one only model2 has is unused: FLUX dev with schnell), CLIPMerge*
take T5's LoRAs, and LoraSave caps a conv's rank at its input channels, leaves Conv3d weights out
and writes T5's difference. Expected values are computed here from the weights themselves."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from graphflow.memory import manager
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.lora import apply_lora
from graphflow.testing import write_flow_checkpoint
from test_nodes_image_mask import call


def weights(module, patches=()):
    return {k: v.float() for k, v in manager().weights(module, patches).items() if v.is_floating_point()}


@pytest.fixture(scope="module")
def dev_schnell(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dev_schnell")
    return [load_checkpoint(write_flow_checkpoint(folder / f"{family}.safetensors", family, seed=seed,
                                                  components=("model",)), device="cpu", dtype=torch.float32).model
            for family, seed in (("flux_dev", 0), ("flux_schnell", 3))]


@pytest.mark.parametrize("node, widgets, a, b", [
    ("ModelMergeSimple", {"ratio": 0.3}, 0.3, 0.7),
    ("ModelMergeSubtract", {"multiplier": 2.0}, 2.0, -2.0),
    ("ModelMergeAdd", {}, 1.0, 1.0),
])
def test_flux_dev_merges_with_schnell_by_weight_name(builtin_registry, dev_schnell, node, widgets, a, b):
    """ComfyUI patches model1's weights with model2's of the same name: dev's guidance embedding,
    which schnell lacks, is kept as it is (not scaled by model1's factor); the rest merge."""
    dev, schnell = dev_schnell
    w_dev, w_schnell = weights(dev.unet), weights(schnell.unet)
    only_dev = sorted(set(w_dev) - set(w_schnell))
    assert only_dev and all(k.startswith("guidance_in.") for k in only_dev)
    merged = weights(call(builtin_registry, node, model1=dev, model2=schnell, **widgets).unet)
    assert set(merged) == set(w_dev)
    for name, w in w_dev.items():
        expected = w if name in only_dev else a * w + b * w_schnell[name]
        torch.testing.assert_close(merged[name], expected, rtol=1e-5, atol=1e-6, msg=name)

    # the other way round: schnell's layers, dev's guidance embedding unused
    back = weights(call(builtin_registry, node, model1=schnell, model2=dev, **widgets).unet)
    assert set(back) == set(w_schnell)
    for name, w in w_schnell.items():
        torch.testing.assert_close(back[name], a * w + b * w_dev[name], rtol=1e-5, atol=1e-6, msg=name)


def test_block_merge_keeps_weights_model2_lacks(builtin_registry, dev_schnell):
    dev, schnell = dev_schnell
    merged = weights(call(builtin_registry, "ModelMergeFlux1", model1=dev, model2=schnell, guidance_in=0.0,
                          img_in=0.25).unet)
    w_dev, w_schnell = weights(dev.unet), weights(schnell.unet)
    torch.testing.assert_close(merged["guidance_in.in_layer.weight"], w_dev["guidance_in.in_layer.weight"])
    torch.testing.assert_close(merged["img_in.weight"], 0.25 * w_dev["img_in.weight"] + 0.75 * w_schnell["img_in.weight"])


def _t5_lora(path, t5, scale=0.5):
    """A ComfyUI-layout LoRA on T5's first query projection: (file, its full-rank difference)."""
    g = torch.Generator().manual_seed(11)
    q = t5.model.encoder.block[0].layer[0].SelfAttention.q.weight
    up, down = torch.randn(q.shape[0], 2, generator=g) * scale, torch.randn(2, q.shape[1], generator=g) * scale
    key = "text_encoders.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q"
    save_file({f"{key}.lora_up.weight": up, f"{key}.lora_down.weight": down}, str(path))
    return path, up @ down


def test_clip_merge_takes_the_loras_of_t5(builtin_registry, tmp_path):
    """ComfyUI merges clip1's patched weights with clip2's: (w1 + lora) * ratio + w2 * (1 - ratio),
    T5's as the CLIP towers'; the merged encoder takes no patch after that."""
    c1, c2 = (load_checkpoint(write_flow_checkpoint(tmp_path / f"f{s}.safetensors", "flux_dev", seed=s),
                              device="cpu", dtype=torch.float32).clip for s in (0, 5))
    path, delta = _t5_lora(tmp_path / "t5_lora.safetensors", c1.t5)
    _, patched = apply_lora(None, c1, path)
    assert patched.t5.patches
    merged = call(builtin_registry, "CLIPMergeSimple", clip1=patched, clip2=c2, ratio=0.25)
    got = weights(merged.t5.model, merged.t5.patches)
    q = "encoder.block.0.layer.0.SelfAttention.q.weight"
    w1, w2 = weights(c1.t5.model), weights(c2.t5.model)
    torch.testing.assert_close(got[q], 0.25 * (w1[q] + delta) + 0.75 * w2[q], rtol=1e-5, atol=1e-5)
    k = "encoder.block.0.layer.0.SelfAttention.k.weight"
    torch.testing.assert_close(got[k], 0.25 * w1[k] + 0.75 * w2[k], rtol=1e-5, atol=1e-6)
    assert not merged.t5.patches and patched.t5.patches  # clip1's own stays patched


# --- LoraSave ------------------------------------------------------------------------------------

def _diff(registry, tuned, base):
    return call(registry, "ModelMergeSubtract", model1=tuned, model2=base, multiplier=1.0)


def _clamped_svd(matrix, rank):
    U, S, Vh = torch.linalg.svd(matrix)
    up, down = U[:, :rank] @ torch.diag(S[:rank]), Vh[:rank]
    high = torch.quantile(torch.cat([up.flatten(), down.flatten()]), 0.99)
    return up.clamp(-high, high), down.clamp(-high, high)


def test_lora_save_caps_a_convs_rank_at_its_input_channels(builtin_registry, tmp_folders, tmp_path):
    """ComfyUI's rank is min(rank, out, in) with `in` a conv's input channels (not in x 3 x 3): SD's
    conv_in (4 -> 32 channels) gets rank 4 at rank 8, the clamped truncated SVD of the flattened weight."""
    from graphflow.testing import write_checkpoint

    files = [write_checkpoint(tmp_path / f"sd1_{s}.safetensors", "sd1", seed=s) for s in (0, 5)]
    base, tuned = (load_checkpoint(p, device="cpu", dtype=torch.float32).model for p in files)
    call(builtin_registry, "LoraSave", model_diff=_diff(builtin_registry, tuned, base), rank=8, filename_prefix="cap")
    [path] = tmp_folders.outputs.glob("cap_*_.safetensors")
    lora = load_file(str(path))
    key = "input_blocks.0.0.weight"
    diff = load_file(str(files[1]))["model.diffusion_model." + key].float() - \
        load_file(str(files[0]))["model.diffusion_model." + key].float()
    assert diff.shape == (32, 4, 3, 3)
    up, down = (lora[f"diffusion_model.input_blocks.0.0.lora_{part}.weight"].float() for part in ("up", "down"))
    assert up.shape == (32, 4, 1, 1) and down.shape == (4, 4, 3, 3)
    want_up, want_down = _clamped_svd(diff.flatten(1), 4)
    torch.testing.assert_close(up.flatten(1), want_up, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(down.flatten(1), want_down, rtol=2e-3, atol=2e-3)
    # a linear layer at rank 8: 8
    assert lora["diffusion_model.input_blocks.1.1.proj_in.lora_down.weight"].shape[0] == 8


def test_lora_save_leaves_conv3d_weights_out_of_standard_loras(builtin_registry, tmp_folders, tmp_path):
    """ComfyUI's SVD of a 5-dimensional weight (Wan's patch embedding) fails and it skips the layer;
    its bias difference and a full_diff LoRA still carry it."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_wan

    base, tuned = (load_diffusion_model(write_wan(tmp_path / f"wan{s}.safetensors", seed=s), device="cpu",
                                        dtype=torch.float32) for s in (0, 4))
    assert tuned.unet.patch_embedding.weight.dim() == 5
    diff = _diff(builtin_registry, tuned, base)
    for lora_type in ("standard", "full_diff"):
        call(builtin_registry, "LoraSave", model_diff=diff, rank=4, lora_type=lora_type, filename_prefix=lora_type)
    [standard] = tmp_folders.outputs.glob("standard_*_.safetensors")
    [full] = tmp_folders.outputs.glob("full_diff_*_.safetensors")
    lora = load_file(str(standard))
    assert not any(k.startswith("diffusion_model.patch_embedding.lora_") for k in lora)
    assert "diffusion_model.patch_embedding.diff_b" in lora
    assert "diffusion_model.blocks.0.self_attn.q.lora_up.weight" in lora
    whole = load_file(str(full))
    torch.testing.assert_close(whole["diffusion_model.patch_embedding.diff"].float(),
                               (tuned.unet.patch_embedding.weight - base.unet.patch_embedding.weight).half().float())


def _assert_holds(got, want, keys):
    for key in keys:
        scale = want[key].abs().max().clamp(min=1e-3)
        torch.testing.assert_close(got[key] / scale, want[key] / scale, rtol=0, atol=3e-3, msg=key)


@pytest.mark.parametrize("kind", ["flux", "wan"])
def test_lora_save_writes_t5s_difference(builtin_registry, tmp_path, kind):
    """ComfyUI writes every weight of the CLIP difference: T5 (FLUX) under text_encoders.t5xxl.transformer.,
    Wan's UMT5 under text_encoders.umt5xxl.transformer.; at full rank the LoRA moves the base's T5 to the
    fine-tune's (our LoRA loader reads both names)."""
    from graphflow.models.lora_extract import save_lora
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_umt5

    if kind == "flux":
        base, tuned = (load_checkpoint(write_flow_checkpoint(tmp_path / f"f{s}.safetensors", "flux_dev", seed=s),
                                       device="cpu", dtype=torch.float32).clip for s in (0, 5))
        name = "t5xxl"
    else:
        base, tuned = (load_text_encoders(write_umt5(tmp_path / f"u{s}.safetensors", seed=s), "wan", device="cpu",
                                          dtype=torch.float32) for s in (1, 2))
        name = "umt5xxl"
    diff = call(builtin_registry, "CLIPMergeSubtract", clip1=tuned, clip2=base, multiplier=1.0)
    path = save_lora(tmp_path / "te.safetensors", None, diff, 4096, "standard", True, clamp_quantile=None)
    lora = load_file(str(path))
    prefix = f"text_encoders.{name}.transformer."
    assert f"{prefix}encoder.block.0.layer.0.SelfAttention.q.lora_up.weight" in lora
    assert f"{prefix}shared.lora_down.weight" in lora
    assert f"{prefix}encoder.final_layer_norm.diff" in lora
    _, patched = apply_lora(None, base, path)
    want = weights(tuned.t5.model)
    held = [k for k in want if k != "encoder.embed_tokens.weight"]  # `shared` itself, under a second name
    _assert_holds(weights(patched.t5.model, patched.t5.patches), want, held)


# --- CheckpointSave / ModelSave metadata ---------------------------------------------------------

def test_model_save_names_an_sdxl_instructpix2pix_model_as_comfyui_does(builtin_registry, tmp_folders):
    """ComfyUI's save_checkpoint: an SDXL UNet with 8 input channels (its SDXL_instructpix2pix, CosXL
    edit) is modelspec.architecture stable-diffusion-xl-v1-edit, a plain SDXL one -base."""
    import dataclasses

    from safetensors import safe_open

    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.models.unet import UNet
    from graphflow.testing import unet_config

    for name, channels in (("edit", 8), ("base", 4)):
        model = DiffusionModel(UNet(dataclasses.replace(unet_config("sdxl", True), in_channels=channels)), "sdxl")
        call(builtin_registry, "ModelSave", model=model, filename_prefix=name)
        [saved] = tmp_folders.outputs.glob(f"{name}_*_.safetensors")
        with safe_open(str(saved), "pt") as f:
            assert f.metadata()["modelspec.architecture"] == f"stable-diffusion-xl-v1-{name}"
            assert f.metadata()["modelspec.title"] == f"{name} 1"


@pytest.mark.parametrize("family, vae_prefix, modelspec", [
    ("flux_dev", "vae.", None), ("sd3_medium", "first_stage_model.", "stable-diffusion-v3-medium")])
def test_checkpoint_save_writes_flow_checkpoints_in_comfyuis_layout(builtin_registry, tmp_folders, tmp_path, family,
                                                                     vae_prefix, modelspec):
    """ComfyUI's CheckpointSave writes SD3 / FLUX too, with their model configs' prefixes:
    model.diffusion_model., text_encoders.<name>.transformer., and the VAE under first_stage_model.
    (SD3) or vae. (FLUX); the file reads back as the same model, text encoders and VAE."""
    from safetensors import safe_open

    ckpt = load_checkpoint(write_flow_checkpoint(tmp_path / f"{family}.safetensors", family), device="cpu",
                           dtype=torch.float32)
    call(builtin_registry, "CheckpointSave", model=ckpt.model, clip=ckpt.clip, vae=ckpt.vae, filename_prefix="flow")
    [path] = tmp_folders.outputs.glob("flow_*_.safetensors")
    with safe_open(str(path), "pt") as f:
        keys, metadata = set(f.keys()), f.metadata() or {}
    prefixes = {"model.diffusion_model.", vae_prefix, "text_encoders.clip_l.transformer.text_model.",
                "text_encoders.t5xxl.transformer.encoder."}
    assert all(any(k.startswith(p) for k in keys) for p in prefixes)
    assert all(k.startswith(tuple(prefixes | {"text_encoders."})) for k in keys)
    assert metadata.get("modelspec.architecture") == modelspec and "modelspec.predict_key" not in metadata

    back = load_checkpoint(path, device="cpu", dtype=torch.float32)
    assert back.model.arch == ckpt.model.arch
    encoders = [(getattr(back.clip, n).model, getattr(ckpt.clip, n).model) for n in ("clip_l", "clip_g", "t5")
                if getattr(ckpt.clip, n) is not None]
    assert len(encoders) == (3 if family.startswith("sd3") else 2)
    for got, want in [(back.model.unet, ckpt.model.unet), (back.vae.module, ckpt.vae.module)] + encoders:
        a, b = weights(got), weights(want)
        assert set(a) == set(b)
        assert all(torch.equal(a[k], b[k]) for k in b)


def test_model_save_writes_no_prediction_for_stable_cascade(builtin_registry, tmp_folders, tmp_path):
    """ComfyUI's model type for Stable Cascade is STABLE_CASCADE, neither EPS nor V_PREDICTION: its
    saved file has no modelspec.predict_key (a PixArt model, EPS, has "epsilon")."""
    from safetensors import safe_open

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_pixart, write_stable_cascade

    for name, path in (("cascade", write_stable_cascade(tmp_path / "c.safetensors", "c")),
                       ("pixart", write_pixart(tmp_path / "p.safetensors"))):
        model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
        call(builtin_registry, "ModelSave", model=model, filename_prefix=name)
        [saved] = tmp_folders.outputs.glob(f"{name}_*_.safetensors")
        with safe_open(str(saved), "pt") as f:
            assert (f.metadata() or {}).get("modelspec.predict_key") == (None if name == "cascade" else "epsilon")
