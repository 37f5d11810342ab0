"""LTX-Video against diffusers on identical tiny random weights.

Oracle path: random weights in Lightricks' single-file layout (`model.diffusion_model.*`,
`vae.*`) go through diffusers' own single-file converters
(`convert_ltx_transformer_checkpoint_to_diffusers`, ...) into diffusers' models, loaded strictly;
our models load the same tensors as they are. A different layout or architecture fails the
strict load or the comparison.
"""

import pytest
import torch
from diffusers import LTXVideoTransformer3DModel
from diffusers.loaders.single_file_utils import convert_ltx_transformer_checkpoint_to_diffusers

from graphflow.models.ltxv import LTXV, LTXVConfig, ltxv_config_from_state_dict

TOL = 1e-4


def random_state(module: torch.nn.Module, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * 0.3 for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def transformer_pair():
    cfg = LTXVConfig(in_channels=8, hidden_size=32, num_heads=4, depth=2, cross_attention_dim=32,
                     caption_channels=24, mlp_hidden=128)
    ours = LTXV(cfg).eval()
    state = random_state(ours, 0)
    ours.load_state_dict(state)
    theirs = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
        num_layers=2, caption_channels=24).eval()
    converted = convert_ltx_transformer_checkpoint_to_diffusers(
        {f"model.diffusion_model.{k}": v.clone() for k, v in state.items()})
    theirs.load_state_dict(converted, strict=True)
    return cfg, ours, theirs, state


@pytest.mark.parametrize("frame_rate", [25.0, 12.5])
def test_transformer_matches_diffusers(transformer_pair, frame_rate):
    cfg, ours, theirs, _ = transformer_pair
    gen = torch.Generator().manual_seed(1)
    b, f, h, w = 2, 3, 2, 4
    x = torch.randn(b, 8, f, h, w, generator=gen)
    context = torch.randn(b, 5, 24, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    sigma = torch.tensor([0.9, 0.3])
    with torch.no_grad():
        got = ours(x, sigma, context, attention_mask=mask, frame_rate=frame_rate)
        tokens = x.flatten(2).transpose(1, 2)
        want = theirs(tokens, context, sigma * 1000, mask, num_frames=f, height=h, width=w,
                      rope_interpolation_scale=(8 / frame_rate, 32, 32), return_dict=False)[0]
    want = want.transpose(1, 2).reshape(x.shape)
    assert (got - want).abs().max() < TOL
    assert got.abs().max() > 0.1  # not trivially zero


def test_frame_rate_moves_only_time_positions(transformer_pair):
    _, ours, _, _ = transformer_pair
    gen = torch.Generator().manual_seed(2)
    x, context = torch.randn(1, 8, 3, 2, 2, generator=gen), torch.randn(1, 4, 24, generator=gen)
    one_frame = x[:, :, :1]
    with torch.no_grad():
        a, b = (ours(x, torch.tensor([0.5]), context, frame_rate=r) for r in (25.0, 10.0))
        c, d = (ours(one_frame, torch.tensor([0.5]), context, frame_rate=r) for r in (25.0, 10.0))
    assert (a - b).abs().max() > 1e-3  # later frames sit elsewhere in time
    assert (c - d).abs().max() < 1e-6  # a single frame sits at time 0 whatever the rate


def test_per_token_sigma_equals_batched_sigma(transformer_pair):
    _, ours, _, _ = transformer_pair
    gen = torch.Generator().manual_seed(3)
    x, context = torch.randn(1, 8, 2, 2, 2, generator=gen), torch.randn(1, 4, 24, generator=gen)
    with torch.no_grad():
        whole = ours(x, torch.tensor([0.7]), context)
        per_token = ours(x, torch.full((1, 8), 0.7), context)
    assert (whole - per_token).abs().max() < 1e-5


def test_config_from_shapes(transformer_pair):
    cfg, _, _, state = transformer_pair
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert ltxv_config_from_state_dict(shapes, num_heads=4) == cfg


# -- the video VAE ------------------------------------------------------------------------------

from diffusers import AutoencoderKLLTXVideo  # noqa: E402
from diffusers.loaders.single_file_utils import convert_ltx_vae_checkpoint_to_diffusers  # noqa: E402

from graphflow.models.ltxv_vae import LTXVideoVAE, LTXVVAEConfig, ltxv_vae_config_from_state_dict  # noqa: E402

TINY_VAE = LTXVVAEConfig(
    encoder_blocks=(("res_x", 1), ("compress_all", 0), ("res_x_y", 16), ("res_x", 1), ("compress_all", 0),
                    ("res_x_y", 24), ("res_x", 1), ("compress_all", 0), ("res_x", 1), ("res_x", 1)),
    decoder_blocks=(("res_x", 1), ("res_x", 1), ("compress_all", 0), ("res_x", 1), ("res_x_y", 16),
                    ("compress_all", 0), ("res_x", 1), ("res_x_y", 8), ("compress_all", 0), ("res_x", 1)),
    encoder_channels=8, decoder_channels=24, latent_channels=6)


def vae_state(cfg: LTXVVAEConfig, seed: int) -> dict:
    """Random weights in Lightricks' layout, with the statistics the file carries."""
    state = random_state(LTXVideoVAE(cfg), seed)
    gen = torch.Generator().manual_seed(seed + 1)
    c = cfg.latent_channels
    state["per_channel_statistics.mean-of-means"] = torch.randn(c, generator=gen) * 0.2
    state["per_channel_statistics.std-of-means"] = torch.rand(c, generator=gen) + 0.5
    state["per_channel_statistics.channel"] = torch.arange(c).float()
    state["per_channel_statistics.mean-of-stds"] = torch.rand(c, generator=gen)
    return state


@pytest.fixture(scope="module")
def vae_pair():
    state = vae_state(TINY_VAE, 10)
    ours = LTXVideoVAE(TINY_VAE).eval()
    ours.load_state_dict(state)
    theirs = AutoencoderKLLTXVideo(
        latent_channels=6, block_out_channels=(8, 16, 24, 24), decoder_block_out_channels=(8, 16, 24, 24),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1)).eval()
    converted = convert_ltx_vae_checkpoint_to_diffusers({f"vae.{k}": v.clone() for k, v in state.items()})
    theirs.load_state_dict(converted, strict=True)
    return ours, theirs, state


def test_vae_config_from_shapes(vae_pair):
    _, _, state = vae_pair
    assert ltxv_vae_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == TINY_VAE


def test_vae_encode_matches_diffusers(vae_pair):
    ours, theirs, _ = vae_pair
    x = torch.rand(1, 3, 9, 64, 96, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        got = ours.encode(x)
        mean = theirs.encode(x).latent_dist.mode()
        want = (mean - theirs.latents_mean[:, None, None, None]) / theirs.latents_std[:, None, None, None]
    assert got.shape == (1, 6, 2, 2, 3)
    assert (got - want).abs().max() < TOL


def test_vae_decode_matches_diffusers(vae_pair):
    ours, theirs, _ = vae_pair
    z = torch.randn(2, 6, 2, 2, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = ours.decode(z)
        raw = z * theirs.latents_std[:, None, None, None] + theirs.latents_mean[:, None, None, None]
        want = theirs.decode(raw).sample
    assert got.shape == (2, 3, 9, 64, 96)
    assert (got - want).abs().max() < TOL


def test_vae_socket_frames_are_an_image_batch(vae_pair):
    from graphflow.models.ltxv_vae import LTXVVAE

    ours, _, _ = vae_pair
    vae = LTXVVAE(ours)
    frames = torch.rand(11, 70, 96, 3, generator=torch.Generator().manual_seed(6))
    latent = vae.encode(frames)  # 11 frames -> the first 9; 70 rows -> 64, centred
    assert latent.shape == (1, 6, 2, 2, 3)
    with torch.no_grad():
        want = ours.encode(frames[:9, 3:67].permute(3, 0, 1, 2)[None] * 2 - 1)
    assert (latent - want).abs().max() < 1e-5
    images = vae.decode(torch.cat([latent, latent]))
    assert images.shape == (18, 64, 96, 3) and 0 <= images.min() and images.max() <= 1
    assert (images[:9] - images[9:]).abs().max() < 1e-6
    with pytest.raises(ValueError, match=r"video latents \[B, 6, frames, h, w\]"):
        vae.decode(torch.zeros(1, 6, 4, 4))
