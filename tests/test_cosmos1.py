"""Cosmos 1.0 (Text2World / Video2World) against diffusers on identical tiny random weights.

Oracle path: random weights in NVIDIA's first layout (`net.` + blocks.blockN.blocks.M.block.attn.
to_q.0 ...) go through diffusers' single-file converter (`convert_cosmos_transformer_checkpoint_
to_diffusers`, its Cosmos 1.0 branch) into CosmosTransformer3DModel with learned positions,
loaded strictly; ours loads the same tensors as they are. Sampling is checked against EDM's closed
forms and ComfyUI's CosmosVideo rules (scale_latent_inpaint, fps, the mask_inverted channel).
"""

import pytest
import torch
from diffusers import CosmosTransformer3DModel
from diffusers.loaders.single_file_utils import convert_cosmos_transformer_checkpoint_to_diffusers

from graphflow.models.cosmos import Cosmos1, Cosmos1Config, cosmos1_config_from_state_dict, find_cosmos1

TOL = 1e-4


def random_state(module, seed):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * 0.2 + (1.0 if "to_q.1" in k or "to_k.1" in k
                                                              or "affline_norm" in k else 0.0)
            for k, v in module.state_dict().items()}


class _KeepsMarker(dict):
    """diffusers 0.42's converter empties the checkpoint before it looks for its Cosmos 1.0 marker
    key (net.blocks.block1....to_q.0.weight), so it always takes the 2.0 branch; a dict whose pop
    leaves that key in lets it choose its own 1.0 renames."""
    MARKER = "net.blocks.block1.blocks.0.block.attn.to_q.0.weight"

    def pop(self, key, *default):
        return self[key] if key == self.MARKER else super().pop(key, *default)


def to_diffusers(state: dict) -> dict:
    """NVIDIA's 1.0 keys (bare) -> diffusers' through diffusers' own converter."""
    extras = {"net.logvar.0.freqs": torch.zeros(3), "net.pos_embedder.seq": torch.arange(4.0)}  # NVIDIA's non-weights
    return convert_cosmos_transformer_checkpoint_to_diffusers(
        _KeepsMarker({**{f"net.{k}": v.clone() for k, v in state.items()}, **extras}))


def diffusers_twin(cfg: Cosmos1Config, state: dict) -> CosmosTransformer3DModel:
    ratio_h, ratio_w, ratio_t = cfg.rope_extrapolation
    frames, h, w = cfg.positions
    theirs = CosmosTransformer3DModel(
        in_channels=cfg.in_channels, out_channels=16, num_attention_heads=cfg.num_heads,
        attention_head_dim=cfg.head_dim, num_layers=cfg.num_blocks, text_embed_dim=cfg.crossattn_emb_channels,
        adaln_lora_dim=cfg.adaln_lora_dim, max_size=(frames, 2 * h, 2 * w), rope_scale=(ratio_t, ratio_h, ratio_w),
        concat_padding_mask=True, extra_pos_embed_type="learnable").eval()
    theirs.load_state_dict(to_diffusers(state), strict=True)
    return theirs


def pair(in_channels=16, ratios=(1.0, 3.0, 2.0)):
    cfg = Cosmos1Config(in_channels=in_channels, model_channels=48, num_blocks=2, num_heads=2,
                        crossattn_emb_channels=20, adaln_lora_dim=8, rope_extrapolation=ratios, positions=(6, 8, 10))
    ours = Cosmos1(cfg).eval()
    state = random_state(ours, 0)
    ours.load_state_dict(state, strict=True)
    return cfg, ours, diffusers_twin(cfg, state), state


@pytest.mark.parametrize("fps", [None, 12.0])
def test_text2world_matches_diffusers(fps):
    """The learned positions crop their tables (3 of 6 frames, 2 x 3 of 8 x 10 patches); with a
    frame rate RoPE's time is i / fps * 24 (diffusers' fps), without it the frame index."""
    _, ours, theirs, _ = pair()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, 3, 4, 6, generator=gen)
    context = torch.randn(2, 7, 20, generator=gen)
    t = torch.tensor([0.9, -1.3])
    with torch.no_grad():
        got = ours(x, t, context, fps=fps)
        want = theirs(x, t, context, fps=fps, padding_mask=torch.zeros(1, 1, 4, 6), return_dict=False)[0]
        other = ours(x, t, context, fps=24.0 if fps is None else None)
    assert got.shape == x.shape
    assert (got - want).abs().max() < TOL
    assert got.abs().max() > 0.1
    if fps is None:  # fps 24 is the base rate: the same positions as counting frames
        assert (got - other).abs().max() < 1e-5
    else:
        assert (got - other).abs().max() > 1e-3


def test_video2world_mask_channel_matches_diffusers():
    """Video2World: 17 input channels, the known-frame mask (ComfyUI's mask_inverted, diffusers'
    condition_mask) after the latent, then the padding mask; one timestep per sample."""
    _, ours, theirs, _ = pair(17)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 16, 3, 4, 4, generator=gen)
    mask = torch.zeros(1, 1, 3, 4, 4)
    mask[:, :, 0] = 1.0
    context = torch.randn(1, 5, 20, generator=gen)
    t = torch.tensor([0.4])
    with torch.no_grad():
        got = ours(torch.cat([x, mask], dim=1), t, context, fps=25.0)
        want = theirs(x, t, context, fps=25.0, condition_mask=mask, padding_mask=torch.zeros(1, 1, 4, 4),
                      return_dict=False)[0]
        unmasked = ours(torch.cat([x, torch.zeros_like(mask)], dim=1), t, context, fps=25.0)
    assert (got - want).abs().max() < TOL
    assert (got - unmasked).abs().max() > 1e-3


def test_learned_positions_bound_the_size():
    _, ours, _, _ = pair()
    with pytest.raises(ValueError, match="at most 6 latent frames of 128x160 pixels"):
        ours(torch.randn(1, 16, 7, 4, 4), torch.tensor([0.0]), torch.randn(1, 2, 20))
