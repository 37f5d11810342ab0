"""The Cosmos 1.0 CV8x8x8 tokenizer against diffusers' AutoencoderKLCosmos on identical tiny random weights.

Oracle path: random weights in NVIDIA's / ComfyUI's key layout (graphflow.testing.cosmos_vae_state,
as cosmos_cv8x8x8_1.0.safetensors) are renamed here into diffusers' names and loaded strictly;
ours loads the same tensors as they are. ComfyUI's VAE gives latents normalised by the file's
latent_mean / latent_std times sigma_data 0.5, which is what diffusers' Cosmos pipelines do around
AutoencoderKLCosmos (whose encode gives the raw latent): the comparison applies the pipelines'
formula to diffusers' side.
"""

import re

import pytest
import torch
from diffusers import AutoencoderKLCosmos

from graphflow.models.cosmos_vae import (CosmosVAE, CosmosVAEConfig, CosmosVideoVAE, cosmos_vae_config_from_state_dict,
                                         haar_bands, haar_unbands)
from graphflow.models.file_kind import is_cosmos1_vae
from graphflow.models.latent_formats import COSMOS1
from graphflow.testing import cosmos_vae_config, cosmos_vae_state

TOL = 2e-5
# attention in level 1's blocks too (the release has it in the middle only)
CFG = cosmos_vae_config(attention_levels=(1,))


def diffusers_names(state: dict, levels: int) -> dict:
    """NVIDIA's / ComfyUI's tokenizer keys -> AutoencoderKLCosmos' (the decoder's up.N is up_blocks.{levels-1-N})."""
    out = {}
    for key, value in state.items():
        if key.startswith(("latent_", "encoder.patcher3d.", "decoder.unpatcher3d.")):
            continue  # statistics the pipeline applies; constant wavelet filters
        k = key.replace(".conv3d", "").replace("nin_shortcut", "conv_shortcut").replace("proj_out", "to_out.0")
        k = re.sub(r"\b(conv_in|conv_out|conv1|conv2)\.0\.", r"\1.conv_s.", k)
        k = re.sub(r"\b(conv_in|conv_out|conv1|conv2)\.1\.", r"\1.conv_t.", k)
        k = re.sub(r"\.([qkv])\.", r".to_\1.", k)
        k = k.replace("mid.block_1.", "mid_block.resnets.0.").replace("mid.block_2.", "mid_block.resnets.1.")
        k = k.replace("mid.attn_1.0.", "mid_block.attentions.0.")
        k = k.replace("mid.attn_1.1.", "mid_block.temp_attentions.0.")
        m = re.match(r"(encoder|decoder)\.(down|up)\.(\d+)\.(.*)", k)
        if m:
            part, kind, i, tail = m.groups()
            i = int(i) if kind == "down" else levels - 1 - int(i)
            tail = re.sub(r"^block\.", "resnets.", tail)
            tail = re.sub(r"^attn\.(\d+)\.0\.", r"attentions.\1.", tail)
            tail = re.sub(r"^attn\.(\d+)\.1\.", r"temp_attentions.\1.", tail)
            tail = re.sub(r"^(down|up)sample\.", r"\1samplers.0.", tail)
            k = f"{part}.{kind}_blocks.{i}.{tail}"
        out[k] = value
    return out


def diffusers_model(cfg: CosmosVAEConfig, state: dict) -> AutoencoderKLCosmos:
    widths = [cfg.channels * m for m in cfg.channels_mult]
    model = AutoencoderKLCosmos(
        encoder_block_out_channels=(cfg.channels, *widths), decode_block_out_channels=(*widths, widths[-1]),
        num_layers=cfg.num_res_blocks, patch_size=cfg.patch_size,
        attention_resolutions=tuple(1024 // cfg.patch_size // 2 ** i for i in cfg.attention_levels),
        latents_mean=state["latent_mean"].tolist(), latents_std=state["latent_std"].tolist())
    model.load_state_dict(diffusers_names(state, len(cfg.channels_mult)), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def pair():
    state = cosmos_vae_state(seed=3, attention_levels=CFG.attention_levels)
    ours = CosmosVideoVAE(CFG).eval()
    ours.load_state_dict({k: v for k, v in state.items() if "patcher3d" not in k}, strict=True)
    return ours, diffusers_model(CFG, state)


def pipeline_stats(theirs, frames: int):
    """diffusers' Cosmos pipelines' latents_mean / latents_std for `frames` latent frames."""
    c = theirs.config
    return [torch.tensor(s).view(1, c.latent_channels, -1, 1, 1)[:, :, :frames]
            for s in (c.latents_mean, c.latents_std)]


def test_config_from_state_dict():
    shapes = {k: tuple(v.shape) for k, v in cosmos_vae_state(attention_levels=(1,)).items()}
    assert is_cosmos1_vae(shapes) and cosmos_vae_config_from_state_dict(shapes) == CFG
    with torch.device("meta"):  # the release's (ComfyUI's hard-coded config) from its shapes
        release = {k: tuple(v.shape) for k, v in CosmosVideoVAE(CosmosVAEConfig()).state_dict().items()}
    assert is_cosmos1_vae(release)  # no wavelet buffers: told by its quant convolutions
    config = cosmos_vae_config_from_state_dict(release)
    assert config == CosmosVAEConfig()
    assert (config.downscale, config.frames_per_latent, config.latent_channels) == (8, 8, 16)
    assert "encoder.down.1.downsample.conv1.conv3d.weight" not in release  # space and time halve once,
    assert "decoder.up.2.upsample.conv1.conv3d.weight" not in release      # after / before level 0 / 1
    assert release["decoder.up.1.upsample.conv1.conv3d.weight"] == (512, 512, 3, 1, 1)


@pytest.mark.parametrize("frames", [1, 9])
def test_haar_bands_closed_form(frames):
    """Each 2x2x2 step is the orthogonal Haar split, halved: the first band of the two steps (its
    first 3 channels) is the mean of each 4x4x4 block of the video, its first frame repeated 4
    times; the inverse gives the video back."""
    x = torch.randn(2, 3, frames, 8, 12, generator=torch.Generator().manual_seed(frames))
    bands = haar_bands(x, 4)
    assert bands.shape == (2, 192, 1 + (frames - 1) // 4, 2, 3)
    padded = torch.cat([x[:, :, :1].expand(-1, -1, 3, -1, -1), x], dim=2)
    blocks = padded.unflatten(2, (-1, 4)).unflatten(4, (-1, 4)).unflatten(6, (-1, 4)).mean(dim=(3, 5, 7))
    assert torch.allclose(bands[:, :3], blocks, atol=1e-6)
    assert torch.allclose(haar_unbands(bands, 4), x, atol=1e-5)


@pytest.mark.parametrize("frames", [1, 9, 17, 12])
def test_encode_matches_diffusers(pair, frames):
    ours, theirs = pair
    x = torch.rand(1, 3, frames, 32, 48, generator=torch.Generator().manual_seed(frames)) * 2 - 1
    with torch.no_grad():
        got = ours.encode(x)
        raw = theirs.encode(x).latent_dist.mode()
    mean, std = pipeline_stats(theirs, raw.shape[2])
    want = (raw - mean) * 0.5 / std
    assert got.shape == (1, 16, (frames - 1) // 8 + 1, 4, 6)
    assert (got - want).abs().max() < TOL
    assert got.std() > 0.1


@pytest.mark.parametrize("latents", [1, 2, 3])
def test_decode_matches_diffusers(pair, latents):
    ours, theirs = pair
    z = torch.randn(2, 16, latents, 4, 3, generator=torch.Generator().manual_seed(latents))
    mean, std = pipeline_stats(theirs, latents)
    with torch.no_grad():
        got = ours.decode(z)
        want = theirs.decode(z * std / 0.5 + mean).sample
    assert got.shape == (2, 3, 8 * (latents - 1) + 1, 32, 24)
    assert (got - want).abs().max() < TOL * want.abs().max()
    assert got.std() > 0.1


def test_statistics_repeat_past_their_frames(pair):
    """latent_mean / latent_std hold 16 frames per channel; later latent frames reuse them in turn (ComfyUI)."""
    ours, _ = pair
    mean, std = ours._stats(torch.zeros(1, 16, 18, 1, 1))
    table = ours.latent_mean.view(16, 16)
    assert torch.equal(mean[0, :, :16, 0, 0], table) and torch.equal(mean[0, :, 16:, 0, 0], table[:, :2])
    assert torch.equal(std[0, :, 17, 0, 0], ours.latent_std.view(16, 16)[:, 1])


def test_latent_format_is_the_identity():
    """The VAE's latents are already what the model samples (ComfyUI's Cosmos1CV8x8x8: scale 1)."""
    from graphflow.models.latent_formats import LATENT_FORMATS

    z = torch.randn(1, 16, 3, 2, 2)
    assert LATENT_FORMATS["cosmos1cv8x8x8"] is COSMOS1
    assert torch.equal(COSMOS1.process_in(z), z) and torch.equal(COSMOS1.process_out(z), z)
    assert COSMOS1.preview(z[:, :, 0]).shape == (1, 2, 2, 3)


def test_vae_loader_and_nodes(tmp_folders):
    """VAELoader recognises cosmos_cv8x8x8_1.0's layout; VAEEncode takes every frame (12 -> 2 latent
    frames, the picture cropped to multiples of 8 around the centre), VAEDecode gives 8(F - 1) + 1."""
    from graphflow.models.file_kind import identify
    from graphflow.models.weight_files import WeightFile
    from graphflow.registry import Registry
    from graphflow.testing import write_cosmos_vae
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "vae").mkdir()
    path = write_cosmos_vae(tmp_folders.models / "vae" / "cosmos_cv8x8x8_1.0.safetensors", seed=4, dtype=torch.float32)
    with WeightFile(path) as f:
        kind = identify(f.shapes)
    assert kind.name == "Cosmos 1.0 video VAE (CV8x8x8 tokenizer)" and kind.loader == "LoadVAE"
    reg = Registry().load_builtin()
    vae = call(reg, "LoadVAE", vae_name="cosmos_cv8x8x8_1.0.safetensors")
    assert isinstance(vae, CosmosVAE) and vae.latent_format is COSMOS1
    assert (vae.temporal_compression, vae.downscale, vae.latent_channels) == (8, 8, 16)
    video = torch.rand(12, 36, 44, 3, generator=torch.Generator().manual_seed(5))
    latent = call(reg, "VAEEncode", pixels=video, vae=vae)["samples"]
    assert latent.shape == (1, 16, 2, 4, 5)
    module = CosmosVideoVAE(cosmos_vae_config()).eval()  # the same weights, straight from the writer
    module.load_state_dict({k: v for k, v in cosmos_vae_state(seed=4).items() if "patcher3d" not in k})
    pixels = video[:, 2:34, 2:42].permute(3, 0, 1, 2)[None] * 2 - 1
    with torch.no_grad():
        assert torch.allclose(latent, module.encode(pixels), atol=1e-5)
        want = ((module.decode(latent) + 1) / 2).clamp(0, 1)[0].permute(1, 2, 3, 0)
    frames = call(reg, "VAEDecode", samples={"samples": latent}, vae=vae)
    assert frames.shape == (9, 32, 40, 3) and torch.allclose(frames, want, atol=1e-5)
    assert call(reg, "VAEEncode", pixels=video[:1], vae=vae)["samples"].shape == (1, 16, 1, 4, 5)
    with pytest.raises(ValueError, match="Cosmos 1.0 VAE"):
        call(reg, "VAEDecode", samples={"samples": latent[:, :, 0]}, vae=vae)


def test_inspect_names_the_cosmos_vae(tmp_path):
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.testing import write_cosmos_vae

    report = inspect_report(write_cosmos_vae(tmp_path / "cosmos_cv8x8x8_1.0.safetensors"))
    assert "kind: Cosmos 1.0 video VAE (CV8x8x8 tokenizer), for models/vae/, loaded by LoadVAE" in report
    assert "16 latent channels, 8x frames, 8x pixels, channels 8 x [2, 4, 4]" in report


def test_tiled_nodes(pair):
    """A VideoVAESocket: one tile covering the video is the plain decode / encode exactly; real 3-D
    tiles (2 latent frames, 8 latent rows) through VAEDecodeTiled / VAEEncodeTiled cover every frame
    and pixel. (Tiles do not reproduce the plain result: the middle block attends over whole frames,
    and a tile's first latent frame decodes as a lone picture.)"""
    from graphflow.registry import Registry
    from tests.test_nodes_image_mask import call

    ours, _ = pair
    vae, reg = CosmosVAE(ours), Registry().load_builtin()
    z = torch.randn(1, 16, 3, 12, 8, generator=torch.Generator().manual_seed(6))
    plain = vae.decode(z)
    assert torch.equal(vae.decode_tiled(z), plain)
    tiled = call(reg, "VAEDecode", samples={"samples": z}, vae=vae, tiled=True, tile_size=64, overlap=32,
                 temporal_size=16, temporal_overlap=8)  # ComfyUI's VAEDecodeTiled
    assert torch.equal(tiled, vae.decode_tiled(z, 64, 32, 16, 8))
    assert tiled.shape == plain.shape == (17, 96, 64, 3) and torch.isfinite(tiled).all() and tiled.std() > 0.01
    assert not torch.equal(tiled, plain)  # it did tile
    video = torch.rand(17, 96, 64, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(vae.encode_tiled(video), vae.encode(video))
    latent = call(reg, "VAEEncode", pixels=video, vae=vae, tiled=True, tile_size=64, overlap=32, temporal_size=16,
                  temporal_overlap=8)["samples"]  # ComfyUI's VAEEncodeTiled
    assert torch.equal(latent, vae.encode_tiled(video, 64, 32, 16, 8)) and not torch.equal(latent, vae.encode(video))
    assert latent.shape == vae.encode(video).shape == (1, 16, 3, 12, 8) and torch.isfinite(latent).all()
