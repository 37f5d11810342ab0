"""kohya-style LoRA: exact low-rank deltas on the right weights, no mutation, clear mismatches."""

import pytest
import torch
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from safetensors.torch import load_file, save_file

from graphflow import memory
from graphflow.models.checkpoint import UNET_PREFIX, load_checkpoint
from graphflow.models.lora import LoraError, apply_lora, unet_diffusers_blocks, unet_diffusers_name
from graphflow.models.unet import UNet
from graphflow.testing import unet_config, write_checkpoint, write_lora


@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    ckpt = load_checkpoint(write_checkpoint(root / "sd1.safetensors", "sd1"), device="cpu")
    lora = write_lora(root / "sd1_lora.safetensors", "sd1", rank=4, alpha=2.0)
    return ckpt, lora


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_xl")
    ckpt = load_checkpoint(write_checkpoint(root / "sdxl.safetensors", "sdxl"), device="cpu")
    return ckpt, root


def unet_weight(model, path):
    """The weight the model runs with: its network's with its patches (LoRAs) applied."""
    return memory.manager().weights(model.unet, model.patches)[path + ".weight"]


def tower_weights(tower):
    return memory.manager().weights(tower.model, tower.patches)


def expected_weight(weight, lora_file, name, strength):
    down = lora_file[name + ".lora_down.weight"].float()
    up = lora_file[name + ".lora_up.weight"].float()
    alpha = float(lora_file[name + ".alpha"])
    rank = down.shape[0]
    return weight.float() + strength * (alpha / rank) * (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)


@pytest.mark.parametrize("name, path", [
    ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
     "input_blocks.1.1.transformer_blocks.0.attn1.to_q"),  # Linear
    ("lora_unet_up_blocks_1_attentions_1_transformer_blocks_0_ff_net_0_proj",
     "output_blocks.3.1.transformer_blocks.0.ff.net.0.proj"),
    ("lora_unet_down_blocks_1_attentions_0_proj_in", "input_blocks.3.1.proj_in"),  # SD1's 1x1 conv
    ("lora_unet_mid_block_resnets_1_conv2", "middle_block.2.out_layers.3"),  # 3x3 conv (LoCon)
    ("lora_unet_up_blocks_0_upsamplers_0_conv", "output_blocks.1.2.conv"),
    ("lora_unet_down_blocks_0_downsamplers_0_conv", "input_blocks.2.0.op"),
])
def test_unet_weight_changes_by_the_low_rank_delta(sd1, name, path):
    ckpt, lora_path = sd1
    lora_file = load_file(str(lora_path))
    before = ckpt.model.unet.get_submodule(path).weight.detach().clone()
    model, _ = apply_lora(ckpt.model, ckpt.clip, lora_path, strength_model=0.7, strength_clip=0.3)
    after = unet_weight(model, path)
    torch.testing.assert_close(after, expected_weight(before, lora_file, name, 0.7), rtol=1e-6, atol=1e-7)
    assert not torch.equal(after, before)
    assert torch.equal(unet_weight(ckpt.model, path), before)  # the input is untouched


def test_text_encoder_weight_changes(sd1):
    ckpt, lora_path = sd1
    lora_file = load_file(str(lora_path))
    name = "lora_te_text_model_encoder_layers_1_self_attn_k_proj"
    tower = ckpt.clip.towers[0]
    path = ("text_model." if tower.transformer is not tower.model else "") + "encoder.layers.1.self_attn.k_proj"
    before = tower.model.get_submodule(path).weight.detach().clone()
    _, clip = apply_lora(ckpt.model, ckpt.clip, lora_path, 0.7, 0.3)
    after = tower_weights(clip.towers[0])[path + ".weight"]
    torch.testing.assert_close(after, expected_weight(before, lora_file, name, 0.3), rtol=1e-6, atol=1e-7)
    assert torch.equal(tower_weights(tower)[path + ".weight"], before)
    cond, _ = clip.encode("a cat")
    base, _ = ckpt.clip.encode("a cat")
    assert (cond - base).abs().max() > 1e-4
    assert torch.equal(tower.model.get_submodule(path).weight, before)  # the base's encode restored it


def changed(new, old):
    return [n for n, w in new.items() if not torch.equal(w, old[n])]


def test_every_module_is_patched_and_the_network_shared(sd1):
    ckpt, lora_path = sd1
    lora_file = load_file(str(lora_path))
    model, clip = apply_lora(ckpt.model, ckpt.clip, lora_path, 1.0, 1.0)
    n_modules = len({k.split(".")[0] for k in lora_file})
    old = memory.manager().weights(ckpt.model.unet)
    changed_unet = changed(memory.manager().weights(model.unet, model.patches), old)
    changed_text = changed(tower_weights(clip.towers[0]), tower_weights(ckpt.clip.towers[0]))
    assert len(changed_unet) + len(changed_text) == n_modules == len(model.patches) + len(clip.towers[0].patches)
    assert all(n.endswith(".weight") for n in changed_unet + changed_text)
    assert len(old) - len(changed_unet) > 0
    # one network: the LoRA is a set of patches on it, not a copy
    assert model is not ckpt.model and model.unet is ckpt.model.unet and clip is not ckpt.clip
    assert clip.towers[0].model is ckpt.clip.towers[0].model


def test_strength_zero_is_no_lora(sd1):
    ckpt, lora_path = sd1
    model, clip = apply_lora(ckpt.model, ckpt.clip, lora_path, 0.0, 0.0)
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([300.0])
    cond, _ = clip.encode("a dog")
    ref_cond, _ = ckpt.clip.encode("a dog")
    assert torch.equal(cond, ref_cond)
    with torch.no_grad():
        assert torch.equal(model(x, t, cond), ckpt.model(x, t, ref_cond))
    model_only, clip_only = apply_lora(ckpt.model, ckpt.clip, lora_path, 1.0, 0.0)
    assert clip_only is ckpt.clip and model_only is not ckpt.model


def test_sdxl_lora_patches_both_towers_and_ldm_names(sdxl):
    ckpt, root = sdxl
    for naming in ("diffusers", "ldm"):
        path = write_lora(root / f"xl_{naming}.safetensors", "sdxl", naming=naming)
        model, clip = apply_lora(ckpt.model, ckpt.clip, path, 1.0, 1.0)
        for new, old in zip(clip.towers, ckpt.clip.towers):
            assert changed(tower_weights(new), tower_weights(old))
        assert changed(memory.manager().weights(model.unet, model.patches), memory.manager().weights(ckpt.model.unet))


def test_lora_for_another_architecture_fails(sd1, sdxl):
    ckpt, _ = sd1
    _, root = sdxl
    xl_lora = write_lora(root / "xl.safetensors", "sdxl")
    with pytest.raises(LoraError, match="match no layer of this sd1 model.*another architecture"):
        apply_lora(ckpt.model, ckpt.clip, xl_lora, 1.0, 1.0)
    with pytest.raises(LoraError, match="another architecture"):
        apply_lora(ckpt.model, ckpt.clip, xl_lora, 1.0, 1.0, strict=False)  # nothing matches at all


def test_partial_match_and_bad_shapes(tmp_path, sd1):
    ckpt, lora_path = sd1
    tensors = load_file(str(lora_path))
    tensors["lora_unet_not_a_layer.lora_down.weight"] = torch.zeros(4, 8)
    tensors["lora_unet_not_a_layer.lora_up.weight"] = torch.zeros(8, 4)
    extra = tmp_path / "extra.safetensors"
    save_file(tensors, str(extra))
    with pytest.raises(LoraError, match="lora_unet_not_a_layer"):
        apply_lora(ckpt.model, ckpt.clip, extra)
    model, _ = apply_lora(ckpt.model, ckpt.clip, extra, strict=False)
    assert model is not ckpt.model
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    wrong = load_file(str(lora_path))
    wrong[name + ".lora_down.weight"] = torch.zeros(4, 7)
    bad = tmp_path / "bad.safetensors"
    save_file(wrong, str(bad))
    with pytest.raises(LoraError, match="does not fit a weight of shape"):
        apply_lora(ckpt.model, ckpt.clip, bad)
    loha = tmp_path / "loha.safetensors"
    save_file({"lora_unet_x.hada_w1_a": torch.zeros(2, 2)}, str(loha))
    with pytest.raises(LoraError, match="LoHa"):
        apply_lora(ckpt.model, ckpt.clip, loha)


def test_model_only_lora_ignores_text_modules(sd1):
    ckpt, lora_path = sd1
    model, clip = apply_lora(ckpt.model, None, lora_path, 1.0, 1.0)
    assert clip is None and model is not ckpt.model


@pytest.mark.parametrize("arch, embed", [("sd1", {}), ("sdxl", {"addition_embed_type": "text_time"})])
def test_diffusers_names_match_diffusers_converter(tmp_path, arch, embed):
    """Our LDM -> diffusers UNet names agree with diffusers' own checkpoint converter."""
    path = write_checkpoint(tmp_path / f"{arch}.safetensors", arch, components=("unet",), dtype=torch.float32)
    state = load_file(str(path))
    converted = convert_ldm_unet_checkpoint(state, {"layers_per_block": 1, **embed})
    diffusers_name = {id(v): k for k, v in converted.items()}  # the converter passes tensors through
    with torch.device("meta"):
        blocks = unet_diffusers_blocks(UNet(unet_config(arch)))
    for key, tensor in state.items():
        assert unet_diffusers_name(key[len(UNET_PREFIX):], blocks) == diffusers_name[id(tensor)], key
    assert len(converted) == len(state)


def test_comfyui_text_encoder_aliases(tmp_path, sd1, sdxl):
    """ComfyUI also reads SD1's CLIP-L as lora_te1_ (OneTrainer) and SDXL's bigG projection as
    lora_te2_text_projection: the same change as the usual names."""
    ckpt, _ = sd1
    tower = ckpt.clip.towers[0]
    inner = "text_model." if tower.transformer is not tower.model else ""
    q = tower.model.get_submodule(inner + "encoder.layers.0.self_attn.q_proj")
    g = torch.Generator().manual_seed(9)
    down, up = torch.randn(2, q.in_features, generator=g), torch.randn(q.out_features, 2, generator=g)
    save_file({"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": down,
               "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": up}, str(tmp_path / "te1.safetensors"))
    _, clip = apply_lora(ckpt.model, ckpt.clip, tmp_path / "te1.safetensors", 1.0, 0.5)
    new = tower_weights(clip.towers[0])[inner + "encoder.layers.0.self_attn.q_proj.weight"]
    torch.testing.assert_close(new, q.weight + 0.5 * up @ down)
    xl, _ = sdxl
    g_tower = xl.clip.towers[1]
    proj = g_tower.projection.weight
    down, up = torch.randn(2, proj.shape[1], generator=g), torch.randn(proj.shape[0], 2, generator=g)
    save_file({"lora_te2_text_projection.lora_down.weight": down, "lora_te2_text_projection.lora_up.weight": up},
              str(tmp_path / "proj.safetensors"))
    _, clip = apply_lora(xl.model, xl.clip, tmp_path / "proj.safetensors", 1.0, 1.0)
    torch.testing.assert_close(tower_weights(clip.towers[1])["text_projection.weight"], proj + up @ down)


def test_text_encoder_lora_patches_are_seeded_by_comfyuis_keys(tmp_path, sd1, sdxl):
    """An fp8 weight's stochastic rounding after a LoRA is seeded by the CRC-32 of the weight's key in
    ComfyUI's state dict, which keeps CLIP's text_model level (clip_l.transformer.text_model.encoder...):
    transformers >= 5.6 builds CLIP-L without it, so the seed was of a key ComfyUI doesn't have."""
    import zlib

    ckpt, _ = sd1
    tower = ckpt.clip.towers[0]
    inner = "text_model." if tower.transformer is not tower.model else ""
    q = tower.model.get_submodule(inner + "encoder.layers.0.self_attn.q_proj")
    save_file({"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.ones(2, q.in_features),
               "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": torch.ones(q.out_features, 2)},
              str(tmp_path / "te.safetensors"))
    _, clip = apply_lora(ckpt.model, ckpt.clip, tmp_path / "te.safetensors", 1.0, 1.0)
    [patch] = clip.towers[0].patches
    assert patch.seed == zlib.crc32(b"clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight")
    xl, _ = sdxl
    proj = xl.clip.towers[1].projection.weight
    save_file({"lora_te2_text_projection.lora_down.weight": torch.ones(2, proj.shape[1]),
               "lora_te2_text_projection.lora_up.weight": torch.ones(proj.shape[0], 2)},
              str(tmp_path / "p.safetensors"))
    _, clip = apply_lora(xl.model, xl.clip, tmp_path / "p.safetensors", 1.0, 1.0)
    [patch] = clip.towers[1].patches
    assert patch.seed == zlib.crc32(b"clip_g.transformer.text_projection.weight")
