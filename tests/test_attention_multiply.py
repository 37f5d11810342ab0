"""UNetSelfAttentionMultiply, UNetCrossAttentionMultiply, CLIPAttentionMultiply: the projections'
weights scaled in closed form, multipliers of 1 exactly the input model, v / out scaling the
attention's output linearly, and the input MODEL / CLIP unchanged (also after offloading)."""

import pytest
import torch

from graphflow import memory
from graphflow.context import NodeInputError
from graphflow.models.checkpoint import load_checkpoint
from graphflow.testing import write_checkpoint
from test_nodes_image_mask import call


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return load_checkpoint(write_checkpoint(tmp_path_factory.mktemp("attn") / "m.safetensors", "sd1"),
                           device="cpu", dtype=torch.float32)


def inputs(model):
    g = torch.Generator().manual_seed(3)
    return (torch.randn(1, 4, 8, 8, generator=g), torch.tensor([500.0]),
            torch.randn(1, 77, model.unet.config.context_dim, generator=g))


def weights(model):
    return memory.manager().weights(model.unet, model.patches)


@pytest.mark.parametrize("node, attn", [("UNetSelfAttentionMultiply", "attn1"),
                                        ("UNetCrossAttentionMultiply", "attn2")])
def test_unet_multipliers_scale_the_projections(builtin_registry, checkpoint, node, attn):
    model = checkpoint.model
    x, t, context = inputs(model)
    with torch.no_grad():
        before = model(x, t, context)
        same = call(builtin_registry, node, model=model)
        assert same.patches == model.patches and torch.equal(same(x, t, context), before)
        patched = call(builtin_registry, node, model=model, q=1.5, k=0.5, v=2.0, out=3.0)
        original, scaled = weights(model), weights(patched)
        factors = {"to_q": 1.5, "to_k": 0.5, "to_v": 2.0, "to_out.0": 3.0}
        changed = 0
        for name, tensor in original.items():
            owner = name.rpartition(".")[0]
            factor = next((f for proj, f in factors.items() if owner.endswith(f"{attn}.{proj}")), 1.0)
            torch.testing.assert_close(scaled[name], tensor * factor, rtol=0, atol=0)
            changed += factor != 1.0
        blocks = sum(1 for n in original if n.endswith(f"{attn}.to_q.weight"))
        assert changed == blocks * 5  # q, k, v weights and the output's weight and bias
        out = patched(x, t, context)
        assert (out - before).abs().max() > 1e-4
        # the input model runs as before: the manager restores the shared weights
        torch.testing.assert_close(model(x, t, context), before, rtol=0, atol=0)


def test_v_and_out_scale_one_attention_linearly(builtin_registry, checkpoint):
    model = checkpoint.model
    path = "input_blocks.1.1.transformer_blocks.0.attn1"
    tokens = torch.randn(2, 16, model.unet.get_submodule(path).to_q.in_features)

    def attention_output(patched):
        memory.manager().patch(patched.unet, patched.patches)
        try:
            with torch.no_grad():
                return patched.unet.get_submodule(path)(tokens)
        finally:
            memory.manager().unpatch(model.unet)

    plain = attention_output(model)
    bias = model.unet.get_submodule(path).to_out[0].bias
    v3 = attention_output(call(builtin_registry, "UNetSelfAttentionMultiply", model=model, v=3.0))
    torch.testing.assert_close(v3 - bias, 3.0 * (plain - bias), rtol=1e-5, atol=1e-5)
    out2 = attention_output(call(builtin_registry, "UNetSelfAttentionMultiply", model=model, out=2.0))
    torch.testing.assert_close(out2, 2.0 * plain, rtol=1e-5, atol=1e-5)
    # q and k by 2 and 0.5: the logits q k^T are unchanged
    qk = attention_output(call(builtin_registry, "UNetSelfAttentionMultiply", model=model, q=2.0, k=0.5))
    torch.testing.assert_close(qk, plain, rtol=1e-5, atol=1e-5)


def test_multiplied_model_survives_offload(builtin_registry, checkpoint, monkeypatch):
    model = checkpoint.model
    x, t, context = inputs(model)
    patched = call(builtin_registry, "UNetCrossAttentionMultiply", model=model, v=0.0, out=2.0)
    with torch.no_grad():
        first = patched(x, t, context)
        manager = memory.manager()
        manager.offload_all()
        with memory.use(patched.unet, "diffusion_model", patches=patched.patches):
            again = patched(x, t, context)
    torch.testing.assert_close(again, first, rtol=0, atol=0)


def test_clip_multipliers_scale_each_towers_self_attention(builtin_registry, checkpoint):
    clip = checkpoint.clip
    before = clip.encode("a red cube")[0]
    same = call(builtin_registry, "CLIPAttentionMultiply", clip=clip)
    assert torch.equal(same.encode("a red cube")[0], before)
    patched = call(builtin_registry, "CLIPAttentionMultiply", clip=clip, q=1.0, k=2.0, v=0.5, out=1.0)
    for tower, new in zip(clip.towers, patched.towers):
        assert tower.patches == ()
        original = memory.manager().weights(tower.model, tower.patches)
        scaled = memory.manager().weights(new.model, new.patches)
        layers = tower.model.config.num_hidden_layers
        assert len(new.patches) == layers * 4  # k and v: weight and bias in each layer
        for name, tensor in original.items():
            factor = 2.0 if ".self_attn.k_proj." in name else 0.5 if ".self_attn.v_proj." in name else 1.0
            torch.testing.assert_close(scaled[name], tensor * factor, rtol=0, atol=0)
    assert (patched.encode("a red cube")[0] - before).abs().max() > 1e-4
    torch.testing.assert_close(clip.encode("a red cube")[0], before, rtol=0, atol=0)


def test_multiplier_patches_carry_comfyuis_key_seeds(builtin_registry, checkpoint):
    """Each patch is seeded by the CRC-32 of its weight's key in ComfyUI's state dict (what an fp8
    weight's stochastic rounding uses: tests/test_scaled_fp8.py): diffusion_model.* for the UNet,
    clip_l.transformer.text_model.* for CLIP-L (transformers >= 5.6 builds it without the
    text_model level: our path lacks it, ComfyUI's key has it)."""
    import zlib

    unet = call(builtin_registry, "UNetSelfAttentionMultiply", model=checkpoint.model, q=1.5)
    assert unet.patches and all(p.seed == zlib.crc32(f"diffusion_model.{p.param}".encode()) for p in unet.patches)
    temporal = call(builtin_registry, "UNetTemporalAttentionMultiply", model=checkpoint.model, self_structural=2.0)
    assert temporal.patches and all(p.seed == zlib.crc32(f"diffusion_model.{p.param}".encode())
                                    for p in temporal.patches)
    clip = call(builtin_registry, "CLIPAttentionMultiply", clip=checkpoint.clip, k=2.0)
    [tower] = clip.towers
    assert tower.name == "clip_l" and tower.patches
    inner = "" if hasattr(tower.model, "text_model") else "text_model."
    assert all(p.seed == zlib.crc32(f"clip_l.transformer.{inner}{p.param}".encode()) for p in tower.patches)
    keys = {f"clip_l.transformer.{inner}{p.param}" for p in tower.patches}
    assert "clip_l.transformer.text_model.encoder.layers.0.self_attn.k_proj.weight" in keys


def test_bad_inputs_are_named(builtin_registry):
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "UNetSelfAttentionMultiply", model=object())
    assert e.value.input == "model"


def test_a_model_without_the_projections_passes_unchanged(builtin_registry, caplog):
    # ComfyUI's patch matches weight names: a DiT without *.attn1.to_q ... keeps all its weights
    class DiT:
        unet = torch.nn.Linear(4, 4)
        patches = ()

        def with_patches(self, patches):
            raise AssertionError("nothing to patch")
    model = DiT()
    with caplog.at_level("WARNING"):
        out = call(builtin_registry, "UNetSelfAttentionMultiply", model=model, q=2.0, k=1.0, v=1.0, out=1.0)
    assert out is model and "passed on unchanged" in caplog.text


def test_ltxv_attention_is_scaled_as_comfyuis(builtin_registry):
    # LTX-Video's transformer blocks have attn1 / attn2 .to_q ... .to_out.0 (weights and biases):
    # ComfyUI's patch scales them as a UNet's
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.models.ltxv import LTXV
    from graphflow.testing import ltxv_configs
    torch.manual_seed(0)
    model = DiffusionModel(LTXV(ltxv_configs()[0]), "ltxv", "flow")
    out = call(builtin_registry, "UNetSelfAttentionMultiply", model=model, q=2.0, k=1.0, v=1.0, out=0.5)
    assert sorted(p.param for p in out.patches) == sorted(
        f"transformer_blocks.0.attn1.{proj}.{kind}" for proj in ("to_q", "to_out.0") for kind in ("weight", "bias"))
    weight = model.unet.transformer_blocks[0].attn1.to_q.weight
    scaled = next(p for p in out.patches if p.param == "transformer_blocks.0.attn1.to_q.weight").change(weight)
    torch.testing.assert_close(scaled, weight * 2.0)


def test_temporal_multiply_on_an_image_unet_scales_its_outputs_as_structural(builtin_registry, checkpoint):
    # ComfyUI matches *.attn1/attn2.to_out.0 names: without .time_stack. they are structural
    model = checkpoint.model
    out = call(builtin_registry, "UNetTemporalAttentionMultiply", model=model, self_structural=2.0,
               self_temporal=3.0, cross_structural=0.5, cross_temporal=5.0)
    factors = {p.param: float(p.change(torch.ones(1))[0]) for p in out.patches}
    expected = {name: 2.0 if ".attn1.to_out.0." in name else 0.5 for name, _ in model.unet.named_parameters()
                if ".attn1.to_out.0." in name or ".attn2.to_out.0." in name}
    assert factors == expected and expected and model.patches == ()


def test_clip_multiply_passes_a_t5_only_encoder_unchanged(builtin_registry, caplog):
    # ComfyUI's patch matches self_attn.q_proj ... names, which T5 has none of
    class T5Only:
        towers = []

        def with_towers(self, towers):
            raise AssertionError("nothing to patch")
    clip = T5Only()
    with caplog.at_level("WARNING"):
        assert call(builtin_registry, "CLIPAttentionMultiply", clip=clip, q=2.0, k=1.0, v=1.0, out=1.0) is clip
    assert "passed on unchanged" in caplog.text
