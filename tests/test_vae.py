"""Our KL-VAE against diffusers on identical weights, the VAE socket, and tiling.

Oracle path as in test_unet.py: our weights are written in the LDM layout ('first_stage_model.'
+ key), diffusers' `create_vae_diffusers_config_from_ldm` turns an LDM-style ddconfig (built
here) into its config and `convert_ldm_vae_checkpoint` converts the weights.
"""

import pytest
import torch
from diffusers import AutoencoderKL as DiffusersAutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint, create_vae_diffusers_config_from_ldm

from graphflow.models import FLUX, SD1, VAE, AutoencoderKL, VAEConfig, fit_rgb_factors, vae_config_from_state_dict

PREFIX = "first_stage_model."

TINY = {
    "sd": VAEConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1),
    "sd_8_groups": VAEConfig(ch=16, ch_mult=(1, 2, 4), num_res_blocks=2, norm_groups=8),
    "flux_16ch": VAEConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=16, embed_dim=16,
                           use_quant_conv=False),
}

FULL = {
    "sd": VAEConfig(),
    "flux_16ch": VAEConfig(z_channels=16, embed_dim=16, use_quant_conv=False),
}


def ldm_original_config(cfg: VAEConfig) -> dict:
    ddconfig = {"double_z": True, "z_channels": cfg.z_channels, "in_channels": cfg.in_channels,
                "out_ch": cfg.out_channels, "ch": cfg.ch, "ch_mult": list(cfg.ch_mult),
                "num_res_blocks": cfg.num_res_blocks, "attn_resolutions": []}
    return {"model": {"params": {"first_stage_config": {"params": {"ddconfig": ddconfig, "embed_dim": cfg.embed_dim}}}}}


def to_diffusers_vae(vae: AutoencoderKL, config_only: bool = False):
    checkpoint = {PREFIX + k: v for k, v in vae.state_dict().items()}
    config = create_vae_diffusers_config_from_ldm(ldm_original_config(vae.config), checkpoint)
    # what an LDM ddconfig cannot say, diffusers takes as constructor arguments
    config.update(norm_num_groups=vae.config.norm_groups, use_quant_conv=vae.config.use_quant_conv,
                  use_post_quant_conv=vae.config.use_quant_conv)
    converted = convert_ldm_vae_checkpoint(checkpoint, config)
    if config_only:
        return config, converted
    model = DiffusersAutoencoderKL(**config)
    model.load_state_dict(converted, strict=True)
    return model.eval(), converted


def random_vae(cfg: VAEConfig, seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    vae = AutoencoderKL(cfg)
    with torch.no_grad():
        for p in vae.parameters():
            if p.dim() == 1:  # norms and biases: away from the trivial 1/0
                p.add_(0.1 * torch.randn_like(p))
    return vae.eval()


def smooth_image(b: int, h: int, w: int) -> torch.Tensor:
    """A smooth colourful IMAGE [B, H, W, 3] in 0..1."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([0.5 + 0.4 * torch.sin(3 * xx + 1), 0.5 + 0.4 * torch.cos(2 * yy), 0.3 + 0.5 * xx * yy], -1)
    return img[None].repeat(b, 1, 1, 1)


@pytest.mark.parametrize("name", list(TINY))
def test_vae_matches_diffusers(name):
    cfg = TINY[name]
    ours = random_vae(cfg)
    theirs, _ = to_diffusers_vae(ours)
    x = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        mean, logvar = ours.encode(x)
        posterior = theirs.encode(x).latent_dist
        assert mean.shape == (2, cfg.latent_channels, 12, 10)
        assert (mean - posterior.mean).abs().max() <= 1e-4
        assert (logvar - posterior.logvar).abs().max() <= 1e-4
        z = torch.randn_like(mean)
        decoded, ref = ours.decode(z), theirs.decode(z).sample
    assert decoded.shape == (2, 3, 48, 40) and ref.abs().mean() > 0.05
    assert (decoded - ref).abs().max() <= 1e-4


@pytest.mark.parametrize("name", list(FULL))
def test_full_size_layout_matches_diffusers(name):
    with torch.device("meta"):
        ours = AutoencoderKL(FULL[name])
    config, converted = to_diffusers_vae(ours, config_only=True)
    with torch.device("meta"):
        theirs = DiffusersAutoencoderKL(**config)
    expected = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    # diffusers stores the attention projections as Linear; ours are 1x1 convs like SD checkpoints
    assert {k: tuple(v.shape)[:2] if "attentions" in k else tuple(v.shape) for k, v in converted.items()} == expected
    assert tuple(ours.state_dict()["encoder.mid.attn_1.q.weight"].shape) == (512, 512, 1, 1)


@pytest.mark.parametrize("configs", [TINY, FULL], ids=["tiny", "full"])
def test_config_round_trips_through_shapes(configs):
    for name, cfg in configs.items():
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in AutoencoderKL(cfg).state_dict().items()}
        assert vae_config_from_state_dict(shapes, norm_groups=cfg.norm_groups) == cfg, name


def test_linear_shaped_attention_weights_load():
    vae = random_vae(TINY["sd"])
    sd = {k: (v[:, :, 0, 0] if ".attn_1." in k and v.dim() == 4 else v) for k, v in vae.state_dict().items()}
    assert sd["decoder.mid.attn_1.proj_out.weight"].dim() == 2
    fresh = AutoencoderKL(vae_config_from_state_dict({k: v.shape for k, v in sd.items()}))
    fresh.load_state_dict(sd)
    for k, v in vae.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_socket_conventions():
    vae = VAE(random_vae(TINY["sd"]), SD1)
    assert vae.downscale == 4 and vae.latent_channels == 4 and vae.latent_format is SD1
    image = smooth_image(2, 35, 42)  # not multiples of 4: cropped, centred
    latent = vae.encode(image)
    assert latent.shape == (2, 4, 8, 10) and latent.dtype == torch.float32
    mean, logvar = vae.encode_posterior(image)
    assert torch.equal(mean, latent) and logvar.shape == mean.shape
    cropped = image[:, 1:33, 1:41].permute(0, 3, 1, 2) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(latent, vae.module.encode(cropped)[0], atol=1e-6)
    out = vae.decode(latent)
    assert out.shape == (2, 32, 40, 3) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="latent"):
        vae.decode(torch.zeros(1, 16, 4, 4))
    with pytest.raises(ValueError, match="IMAGE"):
        vae.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="latent channels"):
        VAE(random_vae(TINY["sd"]), FLUX)


def test_socket_runs_in_the_module_dtype_and_returns_float32():
    vae = VAE(random_vae(TINY["sd"]), SD1)
    latent32 = vae.encode(smooth_image(1, 32, 32))
    vae.to(dtype=torch.float64)
    assert vae.dtype == torch.float64
    latent64 = vae.encode(smooth_image(1, 32, 32))
    assert latent64.dtype == torch.float32 and torch.allclose(latent64, latent32, atol=1e-4)
    assert vae.decode(latent64).dtype == torch.float32


def seam_score(image: torch.Tensor, window: int = 8) -> float:
    """Spikiness of the column-to-column (and row-to-row) steps of IMAGE [B, H, W, 3]: the largest
    ratio of a step to the median step of its neighbourhood (+-window). A seam is a lone spike
    (large ratio); a smooth transition, however steep, spreads over its neighbours (ratio ~1-2)."""
    worst = 0.0
    for img in (image, image.transpose(1, 2)):
        steps = (img[:, :, 1:] - img[:, :, :-1]).abs().mean(dim=(0, 1, 3))  # [W-1]
        for i in range(window, len(steps) - window):
            around = torch.cat([steps[i - window:i], steps[i + 1:i + window + 1]])
            worst = max(worst, (steps[i] / around.median().clamp_min(1e-6)).item())
    return worst


def test_tiled_decode_is_close_to_untiled():
    # Random-weight VAEs are far less local than trained ones (random attention and GroupNorm
    # statistics mix the whole tile), so the bound is loose.
    vae = VAE(random_vae(TINY["sd_8_groups"], seed=5), SD1)  # downscale 4
    latent = vae.encode(smooth_image(1, 96, 192))  # latent 24 x 48
    full = vae.decode(latent)
    tiled = vae.decode_tiled(latent, tile_size=128, overlap=32)  # 32-latent tiles (16 x 64, 64 x 16), 8 overlap
    assert tiled.shape == full.shape
    spread = (full - full.mean()).abs().mean()
    assert (tiled - full).abs().mean() < 0.5 * spread
    bigger = vae.decode_tiled(latent, tile_size=256, overlap=64)  # one of the three covers all
    assert (bigger - full).abs().mean() < (tiled - full).abs().mean()  # converges as tiles grow


def recorded_tiles(vae, method, x, *args):
    """(first row, first column, rows, columns) of each tile that vae.<method>(x, *args) runs its
    network on; the network stood in for by a pointwise map (the input's channel 0, scaled to the
    output's resolution), which every blend of normalised weights gives back exactly."""
    seen, f = [], vae.downscale

    def position_of(t):
        return float(t[0, 0, 0, 0]), float(t[0, 1, 0, 0])

    if method == "decode_tiled":
        def fake(z):
            seen.append((*position_of(z), *z.shape[2:]))
            return z[:, :3].repeat_interleave(f, 2).repeat_interleave(f, 3)
        vae.module.decode = fake
    else:
        def fake(img):
            seen.append((*position_of(img), *img.shape[2:]))
            mean = torch.nn.functional.avg_pool2d(img[:, :1], f).repeat(1, vae.latent_channels, 1, 1)
            return mean, torch.zeros_like(mean)
        vae.module.encode = fake
    out = getattr(vae, method)(x, *args)
    return seen, out


def test_tiled_decode_averages_comfyuis_three_tilings():
    """ComfyUI's VAE.decode_tiled_: latent tiles t = tile_size // 4 (downscale 4) overlapping by
    overlap // 4, run as 2t x t/2, t/2 x 2t and t x t (rows x columns) in that order, tiles every
    t - overlap positions below length - overlap, the last one cut short; the three averaged."""
    vae = VAE(random_vae(TINY["sd"]), SD1)  # downscale 4
    rows, cols = torch.meshgrid(torch.arange(24.0), torch.arange(20.0), indexing="ij")
    z = torch.stack([rows, cols, rows * 0.01, cols * 0.01])[None]  # channels 0, 1 say where a tile starts
    seen, out = recorded_tiles(vae, "decode_tiled", z, 64, 16)  # t = 16, overlap 4
    assert seen == ([(0, c, 24, 8) for c in (0, 4, 8, 12)]  # 32 x 8: every row at once
                    + [(r, 0, 8, 20) for r in (0, 4, 8, 12, 16)]  # 8 x 32
                    + [(0, 0, 16, 16), (0, 12, 16, 8), (12, 0, 12, 16), (12, 12, 12, 8)])  # 16 x 16
    expected = ((z[:, :3] + 1) / 2).clamp(0, 1).repeat_interleave(4, 2).repeat_interleave(4, 3).permute(0, 2, 3, 1)
    assert torch.allclose(out, expected, atol=1e-6)  # each tile's output lands where its latent is
    # VAEDecodeTiled cuts an overlap over a quarter of the tile to the quarter: 32 px -> 16 px
    assert recorded_tiles(vae, "decode_tiled", z, 64, 32)[0] == seen
    # a latent inside one tile is still cut in two of the three tilings
    seen, _ = recorded_tiles(vae, "decode_tiled", z[..., :12, :12], 64, 16)
    assert seen == [(0, 0, 12, 8), (0, 4, 12, 8), (0, 0, 8, 12), (4, 0, 8, 12), (0, 0, 12, 12)]


def test_tiled_decode_weighs_the_three_tilings_equally():
    vae = VAE(random_vae(TINY["sd"]), SD1)
    values = [-0.6] * 4 + [0.0] * 5 + [0.3] * 4  # per tile: the first tiling's 4, the second's 5, the third's 4

    def constant_per_tiling(z):
        return torch.full((z.shape[0], 3, z.shape[2] * 4, z.shape[3] * 4), values.pop(0))

    vae.module.decode = constant_per_tiling
    out = vae.decode_tiled(torch.zeros(1, 4, 24, 20), 64, 16)
    assert torch.allclose(out, torch.full_like(out, (1 + (-0.6 + 0.0 + 0.3) / 3) / 2), atol=1e-6) and not values


def test_tiled_encode_averages_comfyuis_three_tilings():
    """ComfyUI's VAE.encode_tiled_: pixel tiles t x t, t/2 x 2t, 2t x t/2 in that order."""
    vae = VAE(random_vae(TINY["sd"]), SD1)
    rows, cols = torch.meshgrid(torch.arange(96.0), torch.arange(80.0), indexing="ij")
    image = torch.stack([rows / 200, cols / 200, rows * 0], -1)[None]  # pixels 2x - 1 carry the position
    x = image.permute(0, 3, 1, 2) * 2 - 1
    seen, out = recorded_tiles(vae, "encode_tiled", image, 32, 8)
    tiles = [(round((a + 1) * 100), round((b + 1) * 100), h, w) for a, b, h, w in seen]
    assert tiles == ([(r, c, min(32, 96 - r), 32) for r in (0, 24, 48, 72) for c in (0, 24, 48)]  # 32 x 32
                     + [(r, c, 16, min(64, 80 - c)) for r in range(0, 88, 8) for c in (0, 56)]  # 16 x 64
                     + [(r, c, min(64, 96 - r), 16) for r in (0, 56) for c in range(0, 72, 8)])  # 64 x 16
    expected = torch.nn.functional.avg_pool2d(x[:, :1], 4).repeat(1, 4, 1, 1)
    assert torch.allclose(out, expected, atol=1e-6)
    with pytest.raises(ValueError, match="smaller than half the tile"):  # ComfyUI's range() step would be 0
        vae.encode_tiled(image, 32, 16)


def test_vae_encode_tiled_node_names_a_too_large_overlap(builtin_registry):
    from graphflow.context import NodeInputError
    from test_nodes_image_mask import call

    vae = VAE(random_vae(TINY["sd"]), SD1)
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "VAEEncode", pixels=torch.rand(1, 96, 96, 3), vae=vae, tiled=True, tile_size=64,
             overlap=32)
    assert e.value.input == "overlap"


def test_tiled_nodes_take_comfyuis_overlap_range(builtin_registry):
    """ComfyUI's VAEDecodeTiled / VAEEncodeTiled take an overlap up to 4096: decoding cuts one over
    a quarter of the tile to the quarter, encoding uses it as given (here: tiles that all cover
    the image, so the plain encode three times, averaged)."""
    from test_nodes_image_mask import call

    vae = VAE(random_vae(TINY["sd"]), SD1)
    z = torch.randn(1, 4, 24, 20, generator=torch.Generator().manual_seed(0))
    out = call(builtin_registry, "VAEDecode", samples={"samples": z}, vae=vae, tiled=True, tile_size=64,
               overlap=2048)
    assert torch.equal(out, vae.decode_tiled(z, 64, 16))  # cut to 64 // 4
    image = torch.rand(1, 32, 40, 3, generator=torch.Generator().manual_seed(1))
    latent = call(builtin_registry, "VAEEncode", pixels=image, vae=vae, tiled=True, tile_size=4096,
                  overlap=1536)["samples"]
    plain = vae.encode(image)
    assert torch.equal(latent, (plain + plain + plain) / 3.0)  # three tilings of one tile each, averaged


def test_tiled_encode_is_close_to_untiled():
    vae = VAE(random_vae(TINY["sd_8_groups"], seed=2), SD1)
    image = smooth_image(2, 64, 160)
    mean = vae.encode(image)
    tiled = vae.encode_tiled(image, tile_size=64, overlap=16)
    assert tiled.shape == mean.shape
    spread = (mean - mean.mean()).abs().mean()
    assert (tiled - mean).abs().mean() < 0.5 * spread
    assert (vae.encode_tiled(image, 256, 64) - mean).abs().mean() < (tiled - mean).abs().mean()


def test_decode_falls_back_to_tiles_when_memory_runs_out(monkeypatch):
    vae = VAE(random_vae(TINY["sd"]), SD1)
    latent = torch.randn(1, 4, 24, 24)
    inner = vae.module.decode
    sizes = []

    def limited(z):  # a device that cannot hold a full 24x24-latent decode
        sizes.append(z.shape[-1])
        if z.shape[-1] * z.shape[-2] > 16 * 16:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return inner(z)

    monkeypatch.setattr(vae.module, "decode", limited)
    out = vae.decode(latent)
    assert out.shape == (1, 96, 96, 3)
    assert sizes[0] == 24 and len(sizes) > 1
    # 512 px tiles first, overlapping 128 (ComfyUI's 64 / 16 latents), then 256, 128 and 64 px; of
    # 64 px tiles (16 latents) every tiling's tiles (8 x 32, 32 x 8, 16 x 16) fit the limit
    assert max(sizes[-9:]) == 24 and sizes[-1] == 12
    monkeypatch.setattr(vae.module, "decode", inner)
    assert torch.allclose(out, vae.decode_tiled(latent, tile_size=64, overlap=16), atol=1e-6)


def test_preview_factors_and_fit():
    # a fit recovers a known linear map from latents to (downscaled) pixels
    g = torch.Generator().manual_seed(0)
    factors, bias = torch.randn(4, 3, generator=g), torch.tensor([0.1, -0.2, 0.05])
    latents = torch.randn(3, 4, 6, 5, generator=g)
    pixels = (torch.einsum("bchw,cr->brhw", latents, factors) + bias[None, :, None, None])
    pixels = pixels.repeat_interleave(8, 2).repeat_interleave(8, 3)
    fit_f, fit_b = fit_rgb_factors(latents, pixels)
    assert torch.allclose(fit_f, factors, atol=1e-4) and torch.allclose(fit_b, bias, atol=1e-4)

    preview = SD1.preview(torch.zeros(1, 4, 6, 5))
    assert preview.shape == (1, 6, 5, 3) and torch.allclose(preview, torch.full_like(preview, 0.5))
    flux = FLUX.preview(torch.randn(2, 16, 4, 4))
    assert flux.shape == (2, 4, 4, 3) and flux.min() >= 0 and flux.max() <= 1
    z = torch.randn(1, 4, 2, 2)
    assert torch.allclose(SD1.process_out(SD1.process_in(z)), z, atol=1e-6)
    assert torch.allclose(FLUX.process_in(torch.full((1,), 0.1159)), torch.zeros(1), atol=1e-7)
