"""The Wan 2.1 VAE against diffusers' AutoencoderKLWan on identical tiny random weights.

Oracle path: random weights in Wan's original single-file layout (ComfyUI's wan_2.1_vae) go
through diffusers' converter (`convert_wan_vae_to_diffusers`) into AutoencoderKLWan, loaded
strictly; ours loads the same tensors as they are.
"""

import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

from graphflow.models.latent_formats import WAN21
from graphflow.models.wan_vae import WanVAE, WanVAEConfig, WanVideoVAE, is_wan_vae, wan_vae_config_from_state_dict

TOL = 1e-4
CFG = WanVAEConfig(dim=8, z_dim=16)


@pytest.fixture(scope="module")
def pair():
    ours = WanVideoVAE(CFG).eval()
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=gen) * 0.2 + (1.0 if k.endswith("gamma") else 0.0)
             for k, v in ours.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    theirs = AutoencoderKLWan(base_dim=8, z_dim=16).eval()
    theirs.load_state_dict(convert_wan_vae_to_diffusers(dict(state)), strict=True)
    return ours, theirs, state


def test_config_from_state_dict(pair):
    _, _, state = pair
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert is_wan_vae(shapes)
    assert wan_vae_config_from_state_dict(shapes) == CFG
    assert wan_vae_config_from_state_dict(shapes).downscale == 8


@pytest.mark.parametrize("frames", [1, 9])
def test_encode_matches_diffusers(pair, frames):
    ours, theirs, _ = pair
    x = torch.rand(1, 3, frames, 32, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        got = ours.encode(x)
        want = theirs.encode(x).latent_dist.mean
    assert got.shape == (1, 16, 1 + (frames - 1) // 4, 4, 3)
    assert (got - want).abs().max() < TOL
    assert got.abs().max() > 0.05


@pytest.mark.parametrize("frames", [1, 3])
def test_decode_matches_diffusers(pair, frames):
    ours, theirs, _ = pair
    z = torch.randn(1, 16, frames, 3, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = ours.decode(z)
        want = theirs.decode(z).sample
    assert got.shape == (1, 3, 1 + 4 * (frames - 1), 24, 32)
    assert (got - want).abs().max() < TOL
    assert got.std() > 0.01


def test_streaming_equals_one_pass(pair):
    """Chunks of frames with caches give what the whole video at once gives (the encoder's
    chunks are an implementation detail, not part of the result)."""
    ours, _, _ = pair
    x = torch.rand(1, 3, 9, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        streamed = ours.encode(x)
        whole = ours.conv1(ours.encoder(x, {}))[:, :16]
    assert (streamed - whole).abs().max() < 1e-5


def test_socket_images_and_videos(pair):
    ours, _, _ = pair
    vae = WanVAE(ours)
    video = torch.rand(7, 20, 18, 3, generator=torch.Generator().manual_seed(4))  # 7 frames -> 5 used; 16x16 crop
    latent = vae.encode(video)
    assert latent.shape == (1, 16, 2, 2, 2)
    frames = vae.decode(latent)
    assert frames.shape == (5, 16, 16, 3) and 0 <= frames.min() and frames.max() <= 1
    one = vae.decode(latent[:, :, 0])  # an image latent [B, 16, h, w] is a one-frame video
    assert one.shape == (1, 16, 16, 3)
    assert torch.allclose(one[0], frames[0], atol=1e-5)
    with pytest.raises(ValueError, match="16"):
        vae.decode(torch.zeros(1, 4, 2, 2))


def test_latent_format_per_channel():
    z = torch.randn(2, 16, 3, 2, 2)
    x = WAN21.process_in(z)
    mean = torch.tensor(WAN21.channel_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(WAN21.channel_std).view(1, 16, 1, 1, 1)
    assert torch.allclose(x, (z - mean) / std)
    assert torch.allclose(WAN21.process_out(x), z, atol=1e-6)
    assert WAN21.process_in(z[:, :, 0]).shape == (2, 16, 2, 2)


def test_vae_loader_and_nodes(tmp_folders):
    """VAELoader recognises wan_2.1_vae's layout; VAEEncode / VAEDecode on an image and a video."""
    from graphflow.models.file_kind import identify
    from graphflow.models.weight_files import WeightFile
    from graphflow.registry import Registry
    from graphflow.testing import write_wan_vae
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "vae").mkdir()
    path = write_wan_vae(tmp_folders.models / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    with WeightFile(path) as f:
        kind = identify(f.shapes)
    assert kind.name == "Wan 2.1 video VAE" and kind.loader == "LoadVAE"
    reg = Registry().load_builtin()
    vae = call(reg, "LoadVAE", vae_name="wan_2.1_vae.safetensors")
    assert isinstance(vae, WanVAE) and vae.latent_format is WAN21
    image = torch.rand(1, 32, 40, 3, generator=torch.Generator().manual_seed(5))
    latent = call(reg, "VAEEncode", pixels=image, vae=vae)["samples"]
    assert latent.shape == (1, 16, 1, 4, 5)
    decoded = call(reg, "VAEDecode", samples={"samples": latent}, vae=vae)
    assert decoded.shape == (1, 32, 40, 3)
    video = torch.rand(5, 16, 16, 3, generator=torch.Generator().manual_seed(6))
    latent = call(reg, "VAEEncode", pixels=video, vae=vae)["samples"]
    assert latent.shape == (1, 16, 2, 2, 2)


def test_inspect_names_the_wan_vae(tmp_path):
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.testing import write_wan_vae

    report = inspect_report(write_wan_vae(tmp_path / "wan_2.1_vae.safetensors"))
    assert "kind: Wan 2.1 video VAE" in report
    assert "16 latent channels, 4x frames, 8x pixels, channels 8 x [1, 2, 4, 4]" in report


def test_socket_tiles_as_the_other_video_vaes(pair):
    """The Wan socket is a VideoVAESocket: 4 frames per latent; one tile covering the video is the
    plain decode / encode exactly; real tiles (in time and space) cover every frame and pixel, and an
    image latent tiles as a one-frame video."""
    ours, _, _ = pair
    vae = WanVAE(ours)
    assert (vae.temporal_compression, vae.downscale) == (4, 8)
    z = torch.randn(1, 16, 5, 4, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(vae.decode_tiled(z), vae.decode(z))
    tiled = vae.decode_tiled(z, 16, 8, 8, 4)  # 2 latent rows / frames per tile
    assert tiled.shape == vae.decode(z).shape == (17, 32, 32, 3)
    assert torch.isfinite(tiled).all() and tiled.std() > 0.01
    assert torch.equal(vae.decode_tiled(z[:, :, 0]), vae.decode(z[:, :, 0]))
    video = torch.rand(9, 16, 16, 3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(vae.encode_tiled(video), vae.encode(video))
    assert vae.encode_tiled(video, 16, 8, 8, 4).shape == vae.encode(video).shape == (1, 16, 3, 2, 2)
