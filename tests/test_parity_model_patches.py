"""Behaviour parity with ComfyUI of the model patches (nodes/unet_patches.py, nodes/model_patches.py,
nodes/model_sampling.py, nodes/attention_patches.py) where an audit found a difference. Oracles
are small hand computations and torch operations written here."""

import copy

import torch
from torch import nn

from graphflow.models.svd import SVDConfig, SVDUNet, VideoTransformerBlock
from graphflow.sampling.perturbed_attention import identity_self_attention

TINY_SVD = SVDConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(True, True),
                     context_dim=24, num_head_channels=16)


class ValueOnly(nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.attention = attention

    def forward(self, x, context=None):
        return self.attention.to_out(self.attention.to_v(x))


def test_pag_on_a_video_unet_blinds_only_the_spatial_middle_attention():
    """ComfyUI's ("middle", 0) attn1 patch reaches the spatial transformer blocks; SVD's temporal
    blocks (time_stack) are called without the patches and keep their attention."""
    torch.manual_seed(0)
    unet = SVDUNet(TINY_SVD).eval()
    frames = 2
    x = torch.randn(frames, TINY_SVD.in_channels, 8, 8)
    t = torch.full((frames,), 0.3)
    context = torch.randn(frames, 3, TINY_SVD.context_dim)
    y = torch.randn(frames, TINY_SVD.adm_in_channels)

    want_unet = copy.deepcopy(unet)
    spatial = [m for name, m in want_unet.middle_block.named_modules()
               if hasattr(m, "attn1") and ".time_stack." not in f".{name}."]
    assert spatial and all(not isinstance(m, VideoTransformerBlock) for m in spatial)
    for block in spatial:
        block.attn1 = ValueOnly(block.attn1)
    with torch.no_grad():
        want = want_unet(x, t, context, y, frames)
        plain = unet(x, t, context, y, frames)
        with identity_self_attention(unet):
            got = unet(x, t, context, y, frames)
    assert (want - plain).abs().max() > 1e-4
    torch.testing.assert_close(got, want)
