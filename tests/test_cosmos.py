"""Cosmos-Predict2 against diffusers on identical tiny random weights.

Oracle path: random weights in NVIDIA's layout (`net.` + x_embedder / t_embedder / blocks.N.
self_attn ...) go through diffusers' single-file converter
(`convert_cosmos_transformer_checkpoint_to_diffusers`, its Cosmos 2.0 branch) into
CosmosTransformer3DModel, loaded strictly; ours loads the same tensors as they are.
"""

import pytest
import torch
from diffusers import CosmosTransformer3DModel
from diffusers.loaders.single_file_utils import convert_cosmos_transformer_checkpoint_to_diffusers

from graphflow.models.cosmos import CosmosConfig, CosmosPredict2, cosmos_config_from_state_dict, find_cosmos

TOL = 1e-4


def random_state(module, seed):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * 0.2 + (1.0 if "norm" in k else 0.0)
            for k, v in module.state_dict().items()}


def pair(in_channels=16, ratios=(4.0, 4.0, 1.0)):
    cfg = CosmosConfig(in_channels=in_channels, model_channels=48, num_blocks=2, num_heads=2, crossattn_emb_channels=20,
                       adaln_lora_dim=8, rope_extrapolation=ratios)
    ours = CosmosPredict2(cfg).eval()
    state = random_state(ours, 0)
    ours.load_state_dict(state, strict=True)
    theirs = CosmosTransformer3DModel(
        in_channels=in_channels, out_channels=16, num_attention_heads=2, attention_head_dim=24, num_layers=2,
        text_embed_dim=20, adaln_lora_dim=8, rope_scale=(ratios[2], ratios[0], ratios[1]), concat_padding_mask=True,
        extra_pos_embed_type=None).eval()
    converted = convert_cosmos_transformer_checkpoint_to_diffusers({f"net.{k}": v.clone() for k, v in state.items()})
    theirs.load_state_dict(converted, strict=True)
    return cfg, ours, theirs, state


@pytest.mark.parametrize("frames", [1, 3])
def test_matches_diffusers(frames):
    _, ours, theirs, _ = pair()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, frames, 4, 6, generator=gen)
    context = torch.randn(2, 7, 20, generator=gen)
    t = torch.tensor([0.9, 0.3])
    with torch.no_grad():
        got = ours(x, t, context)
        want = theirs(x, t, context, padding_mask=torch.zeros(1, 1, 4, 6), return_dict=False)[0]
    assert got.shape == x.shape
    assert (got - want).abs().max() < TOL
    assert got.abs().max() > 0.1


def test_per_frame_timesteps_and_mask_channel_match_diffusers():
    """video2world: 17 input channels (the known-frame mask, diffusers' condition_mask) and a
    timestep per frame ([B, 1, T, 1, 1] in diffusers)."""
    _, ours, theirs, _ = pair(17, (3.0, 3.0, 1.0))
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 16, 3, 4, 4, generator=gen)
    mask = torch.zeros(1, 1, 3, 4, 4)
    mask[:, :, 0] = 1.0
    context = torch.randn(1, 5, 20, generator=gen)
    t = torch.tensor([[0.0, 0.7, 0.7]])
    with torch.no_grad():
        got = ours(torch.cat([x, mask], dim=1), t, context)
        want = theirs(x, t.reshape(1, 1, 3, 1, 1), context, condition_mask=mask,
                      padding_mask=torch.zeros(1, 1, 4, 4), return_dict=False)[0]
    assert (got - want).abs().max() < TOL


def test_image_latent_is_one_frame():
    _, ours, _, _ = pair()
    x = torch.randn(1, 16, 4, 4)
    context = torch.randn(1, 3, 20)
    with torch.no_grad():
        assert torch.allclose(ours(x, torch.tensor([0.5]), context), ours(x[:, :, None], torch.tensor([0.5]), context)[:, :, 0])


@pytest.mark.parametrize("prefix", ["", "net.", "model.diffusion_model."])
def test_config_and_prefix_from_state_dict(prefix):
    cfg, _, _, state = pair()
    shapes = {prefix + k: tuple(v.shape) for k, v in state.items()}
    shapes[prefix + "pos_embedder.dim_spatial_range"] = (4,)  # NVIDIA's files carry buffers: not weights
    assert find_cosmos(shapes) == prefix
    bare = {k[len(prefix):]: s for k, s in shapes.items()}
    got = cosmos_config_from_state_dict(bare)
    assert got == CosmosConfig(in_channels=16, model_channels=48, num_blocks=2, num_heads=2,
                               crossattn_emb_channels=20, adaln_lora_dim=8, rope_extrapolation=(4.0, 4.0, 1.0))
    assert find_cosmos({"x_embedder.proj.1.weight": (48, 68)}) is None


def test_rope_ratios_as_comfyui():
    from graphflow.models.cosmos import rope_extrapolation

    assert rope_extrapolation(16, 2048) == rope_extrapolation(16, 5120) == (4.0, 4.0, 1.0)
    assert rope_extrapolation(17, 2048) == (3.0, 3.0, 1.0)
    assert rope_extrapolation(17, 5120) == (2.0, 2.0, 5 / 6)


def test_nvidia_extras_are_skipped_on_load():
    _, ours, _, state = pair()
    extra = dict(state, **{"pos_embedder.seq": torch.arange(4.0), "accum_video_sample_counter": torch.tensor(3),
                           "blocks.0.self_attn.q_proj._extra_state": torch.zeros(1)})
    ours.load_state_dict(extra, strict=True)
