"""The Wan 2.1 VAE (wan_2.1_vae) and the Wan 2.2 VAE (wan2.2_vae: residual stages, 2x2 patches, 48
channels) against diffusers' AutoencoderKLWan (2.2: is_residual=True, patch_size=2) on identical tiny
random weights.

Oracle path: random weights in Wan's original single-file layout (ComfyUI's files) go through
diffusers' converter (`convert_wan_vae_to_diffusers`) into AutoencoderKLWan, loaded strictly; ours
loads the same tensors as they are. The 2.2 stages (`encoder.downsamples.N.downsamples.M`,
`decoder.upsamples.N.upsamples.M`) are renamed here to diffusers' (`down_blocks.N.resnets.M` /
`.downsampler`, `up_blocks.N.resnets.M` / `.upsampler`, as diffusers' convert_vae_22 does).
"""

import functools

import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

from graphflow.models.latent_formats import WAN21, WAN22
from graphflow.models.wan_vae import WanVAE, WanVAEConfig, WanVideoVAE, is_wan_vae, wan_vae_config_from_state_dict

TOL = 1e-4
RES = {"residual.0.gamma": "norm1.gamma", "residual.2.weight": "conv1.weight", "residual.2.bias": "conv1.bias",
       "residual.3.gamma": "norm2.gamma", "residual.6.weight": "conv2.weight", "residual.6.bias": "conv2.bias",
       "shortcut.weight": "conv_shortcut.weight", "shortcut.bias": "conv_shortcut.bias"}


def wan22_to_diffusers(state):
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


# version: (our config, diffusers' AutoencoderKLWan arguments, original layout -> diffusers' names)
VAES = {
    "2.1": (WanVAEConfig(dim=8, z_dim=16), dict(base_dim=8, z_dim=16), convert_wan_vae_to_diffusers),
    "2.2": (WanVAEConfig(dim=8, z_dim=48, is_residual=True, patch_size=2, decoder_dim=12),
            dict(base_dim=8, decoder_base_dim=12, z_dim=48, is_residual=True, in_channels=12, out_channels=12,
                 patch_size=2, scale_factor_spatial=16), wan22_to_diffusers),
}


@functools.lru_cache(maxsize=2)
def make_pair(version):
    cfg, theirs_args, convert = VAES[version]
    ours = WanVideoVAE(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=gen) * 0.2 + (1.0 if k.endswith("gamma") else 0.0)
             for k, v in ours.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    theirs = AutoencoderKLWan(**theirs_args).eval()
    theirs.load_state_dict(convert(dict(state)), strict=True)
    return ours, theirs, state


@pytest.fixture(scope="module")
def pair():
    return make_pair("2.1")


@pytest.fixture(scope="module")
def pair22():
    return make_pair("2.2")


@pytest.fixture(scope="module", params=list(VAES))
def either(request):
    return VAES[request.param][0], make_pair(request.param)


def test_config_from_state_dict(either):
    cfg, (_, _, state) = either
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert is_wan_vae(shapes)
    assert wan_vae_config_from_state_dict(shapes) == cfg
    assert (cfg.downscale, cfg.frames_per_latent, cfg.latent_channels) == \
        ((16, 4, 48) if cfg.is_residual else (8, 4, 16))
    # the original 2.2 layout
    assert ("encoder.downsamples.1.downsamples.2.time_conv.weight" in shapes) == cfg.is_residual


@pytest.mark.parametrize("frames", [1, 9])
def test_encode_matches_diffusers(either, frames):
    cfg, (ours, theirs, _) = either
    x = torch.rand(1, 3, frames, 32, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        got = ours.encode(x)
        want = theirs.encode(x).latent_dist.mean
    d = cfg.downscale
    assert got.shape == (1, cfg.latent_channels, 1 + (frames - 1) // 4, 32 // d, 48 // d)
    assert (got - want).abs().max() < TOL
    assert got.abs().max() > 0.05


@pytest.mark.parametrize("frames", [1, 3])
def test_decode_matches_diffusers(either, frames):
    cfg, (ours, theirs, _) = either
    z = torch.randn(1, cfg.latent_channels, frames, 2, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = ours.decode(z)
        want = theirs.decode(z).sample
    d = cfg.downscale
    assert got.shape == (1, 3, 1 + 4 * (frames - 1), 2 * d, 3 * d)
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


# -- the Wan 2.2 VAE ----------------------------------------------------------------------------------

def test_wan22_socket_and_latent_format(pair22):
    ours, _, _ = pair22
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


def test_wan22_socket_tiles(pair22):
    """Tiled decoding / encoding (VideoVAESocket's) works at the 2.2 VAE's 16x: one tile covering the
    video is the plain result exactly; real tiles cover every frame and pixel."""
    ours, _, _ = pair22
    vae = WanVAE(ours)
    z = torch.randn(1, 48, 5, 4, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(vae.decode_tiled(z), vae.decode(z))
    tiled = vae.decode_tiled(z, 32, 16, 8, 4)  # 2 latent rows / frames per tile
    assert tiled.shape == vae.decode(z).shape == (17, 64, 64, 3)
    assert torch.isfinite(tiled).all() and tiled.std() > 0.01
    video = torch.rand(9, 32, 32, 3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(vae.encode_tiled(video), vae.encode(video))
    assert vae.encode_tiled(video, 32, 16, 8, 4).shape == vae.encode(video).shape == (1, 48, 3, 2, 2)
