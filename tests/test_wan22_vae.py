"""The Wan 2.2 VAE (wan2.2_vae: residual stages, 2x2 patches, 48 channels) against diffusers'
AutoencoderKLWan(is_residual=True, patch_size=2) on identical tiny random weights.

Oracle path: random weights in Wan 2.2's original layout (`encoder.downsamples.N.downsamples.M`,
`decoder.upsamples.N.upsamples.M`) renamed to diffusers' (`down_blocks.N.resnets.M` /
`.downsampler`, `up_blocks.N.resnets.M` / `.upsampler`, as diffusers' convert_vae_22 does) and
loaded strictly; ours loads the original tensors as they are.
"""

import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

from graphflow.models.latent_formats import WAN21, WAN22
from graphflow.models.wan_vae import WanVAE, WanVAEConfig, WanVideoVAE, is_wan_vae, wan_vae_config_from_state_dict

TOL = 1e-4
CFG = WanVAEConfig(dim=8, z_dim=48, is_residual=True, patch_size=2, decoder_dim=12)
RES = {"residual.0.gamma": "norm1.gamma", "residual.2.weight": "conv1.weight", "residual.2.bias": "conv1.bias",
       "residual.3.gamma": "norm2.gamma", "residual.6.weight": "conv2.weight", "residual.6.bias": "conv2.bias",
       "shortcut.weight": "conv_shortcut.weight", "shortcut.bias": "conv_shortcut.bias"}


def to_diffusers(state):
    """Stage keys renamed to diffusers' residual-block layout; the rest by the 2.1 converter
    (middle, heads, quant convolutions share the 2.1 names)."""
    out, rest = {}, {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] in ("encoder", "decoder") and parts[1] in ("downsamples", "upsamples"):
            side, stage, index, tail = parts[0], parts[2], parts[4], ".".join(parts[5:])
            blocks = "down_blocks" if side == "encoder" else "up_blocks"
            if tail in RES:
                out[f"{side}.{blocks}.{stage}.resnets.{index}.{RES[tail]}"] = value
            else:  # resample.1.* / time_conv.*
                sampler = "downsampler" if side == "encoder" else "upsampler"
                out[f"{side}.{blocks}.{stage}.{sampler}.{tail}"] = value
        else:
            rest[key] = value
    return {**convert_wan_vae_to_diffusers(rest), **out}


@pytest.fixture(scope="module")
def pair():
    ours = WanVideoVAE(CFG).eval()
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=gen) * 0.2 + (1.0 if k.endswith("gamma") else 0.0)
             for k, v in ours.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    theirs = AutoencoderKLWan(base_dim=8, decoder_base_dim=12, z_dim=48, is_residual=True, in_channels=12,
                              out_channels=12, patch_size=2, scale_factor_spatial=16).eval()
    theirs.load_state_dict(to_diffusers(state), strict=True)
    return ours, theirs, state


def test_config_from_state_dict(pair):
    _, _, state = pair
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert "encoder.downsamples.1.downsamples.2.time_conv.weight" in shapes  # the original 2.2 layout
    assert is_wan_vae(shapes)
    assert wan_vae_config_from_state_dict(shapes) == CFG
    assert (CFG.downscale, CFG.frames_per_latent, CFG.latent_channels) == (16, 4, 48)


@pytest.mark.parametrize("frames", [1, 9])
def test_encode_matches_diffusers(pair, frames):
    ours, theirs, _ = pair
    x = torch.rand(1, 3, frames, 32, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        got = ours.encode(x)
        want = theirs.encode(x).latent_dist.mean
    assert got.shape == (1, 48, 1 + (frames - 1) // 4, 2, 3)
    assert (got - want).abs().max() < TOL
    assert got.abs().max() > 0.05


@pytest.mark.parametrize("frames", [1, 3])
def test_decode_matches_diffusers(pair, frames):
    ours, theirs, _ = pair
    z = torch.randn(1, 48, frames, 2, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = ours.decode(z)
        want = theirs.decode(z).sample
    assert got.shape == (1, 3, 1 + 4 * (frames - 1), 32, 48)
    assert (got - want).abs().max() < TOL
    assert got.std() > 0.01


def test_socket_and_latent_format(pair):
    ours, _, _ = pair
    vae = WanVAE(ours)
    assert vae.latent_format is WAN22 and WanVAE.latent_format is WAN21  # the 2.1 class default stays
    assert (vae.temporal_compression, vae.downscale, vae.latent_channels) == (4, 16, 48)
    video = torch.rand(5, 36, 34, 3, generator=torch.Generator().manual_seed(3))  # cropped to 32 x 32
    latent = vae.encode(video)
    assert latent.shape == (1, 48, 2, 2, 2)
    assert vae.decode(latent).shape == (5, 32, 32, 3)
    z = torch.randn(1, 48, 2, 2, 2)
    mean = torch.tensor(WAN22.channel_mean).view(1, 48, 1, 1, 1)
    std = torch.tensor(WAN22.channel_std).view(1, 48, 1, 1, 1)
    assert torch.allclose(WAN22.process_in(z), (z - mean) / std)


def test_socket_tiles(pair):
    """Tiled decoding / encoding (VideoVAESocket's) works at the 2.2 VAE's 16x: one tile covering the
    video is the plain result exactly; real tiles cover every frame and pixel."""
    ours, _, _ = pair
    vae = WanVAE(ours)
    z = torch.randn(1, 48, 5, 4, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(vae.decode_tiled(z), vae.decode(z))
    tiled = vae.decode_tiled(z, 32, 16, 8, 4)  # 2 latent rows / frames per tile
    assert tiled.shape == vae.decode(z).shape == (17, 64, 64, 3)
    assert torch.isfinite(tiled).all() and tiled.std() > 0.01
    video = torch.rand(9, 32, 32, 3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(vae.encode_tiled(video), vae.encode(video))
    assert vae.encode_tiled(video, 32, 16, 8, 4).shape == vae.encode(video).shape == (1, 48, 3, 2, 2)
