"""Latent diagnostics math: planted ground truths for the sensitivity and log-variance maps,
closed-form cases, SSIM against scikit-image, latent statistics and edits."""

import math
import re

import pytest
import torch
from skimage.metrics import structural_similarity
from torch import nn

from graphflow.diagnostics import heatmaps, image_metrics, latent_edits, logvar, sensitivity
from graphflow.diagnostics.latent_stats import latent_stats, stats_chart
from graphflow.models import SD1, SDXL, VAE, AutoencoderKL, VAEConfig

# Downscale 2, so that a 16x16 latent (big enough for a 3x3 patch's effect to be local) decodes
# to 32x32 pixels and a full map of 256 decodes takes about a second.
TINY = VAEConfig(ch=8, ch_mult=(1, 2), num_res_blocks=1, norm_groups=4)
SPOT = (9, 5)  # the planted location, (row, col) in latent cells
LATENT_HW = 16


class GlobalSpotVAE(AutoencoderKL):
    """A VAE whose decoder also shifts every output pixel by a colour that is a linear function
    (orthogonal rows, gain 0.5) of the latent vector at one location: that location carries
    global information (a planted "black hole")."""

    def __init__(self, config: VAEConfig, spot: tuple[int, int] = SPOT):
        super().__init__(config)
        self.spot = spot
        self.global_path = nn.Linear(config.embed_dim, config.out_channels, bias=False)
        nn.init.orthogonal_(self.global_path.weight, gain=0.5)

    def decode(self, z):
        i, j = self.spot
        return super().decode(z) + self.global_path(z[:, :, i, j])[:, :, None, None]


class LogvarSpotVAE(AutoencoderKL):
    """A VAE whose encoder's log-variance is shifted at one location in one channel."""

    def __init__(self, config: VAEConfig, spot: tuple[int, int] = SPOT, shift: float = 3.0, channel: int = 2):
        super().__init__(config)
        self.spot, self.shift, self.channel = spot, shift, channel

    def encode(self, x):
        mean, lv = super().encode(x)
        lv = lv.clone()
        lv[:, self.channel, self.spot[0], self.spot[1]] += self.shift
        return mean, lv


def build(cls=AutoencoderKL, seed: int = 0, **kwargs) -> VAE:
    """A random-weight VAE socket; every class built with the same seed shares the base weights."""
    torch.manual_seed(seed)
    module = cls(TINY, **kwargs)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() == 1:  # norms and biases away from the trivial 1/0
                p.add_(0.1 * torch.randn_like(p))
    return VAE(module.eval(), SD1)


def random_latent(h=LATENT_HW, w=LATENT_HW, seed=3):
    return torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(seed))


def smooth_image(h=32, w=32):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([0.5 + 0.4 * torch.sin(6 * xx + 1), 0.5 + 0.4 * torch.cos(5 * yy), 0.3 + 0.5 * xx * yy], -1)[None]


# -- planted ground truth ------------------------------------------------------------------
@pytest.fixture(scope="module")
def maps():
    z = random_latent()
    out = {}
    for name, cls in (("plain", AutoencoderKL), ("planted", GlobalSpotVAE)):
        vae = build(cls)
        for k in (1, 3):
            out[name, k] = sensitivity.sensitivity_map(vae.decode, z, image_metrics.mse, patch=k, batch_size=129)
    return out


@pytest.mark.parametrize("patch", [1, 3])
def test_sensitivity_finds_the_planted_global_location(maps, patch):
    planted, plain = maps["planted", patch], maps["plain", patch]
    assert planted.location() == SPOT
    if patch == 1:
        assert (planted.top(1)[0].row, planted.top(1)[0].col) == SPOT
    else:  # every 3x3 patch covering the spot carries its global effect: they are the top 9
        top9 = {(loc.row, loc.col) for loc in planted.top(9)}
        assert top9 == {(SPOT[0] + dr, SPOT[1] + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)}
    assert plain.location() != SPOT
    assert planted.black_hole_score > 5 * plain.black_hole_score
    assert planted.black_hole_score > 10


def test_sensitivity_map_shapes_and_baseline(maps):
    m = maps["planted", 3]
    assert m.effects.shape == (16, 16) and m.latent_map().shape == (16, 16)
    assert m.baseline.shape == (1, 32, 32, 3)
    assert (m.decodes, m.batch_size) == (258, 129)  # 1 unperturbed + 256 patches, padded to 2 batches
    # the same image as a single decode (up to batch-size-dependent rounding)
    assert torch.allclose(m.baseline, build(GlobalSpotVAE).decode(random_latent()), atol=1e-5)


def test_logvar_map_finds_the_planted_anomaly():
    image = smooth_image()
    found = {}
    for name, cls in (("plain", AutoencoderKL), ("planted", LogvarSpotVAE)):
        mean, lv = (t[0] for t in build(cls).encode_posterior(image))
        found[name] = logvar.anomalies(lv, 3)
    top = found["planted"][0]
    assert (top.row, top.col, top.channel) == (*SPOT, 2) and top.z > 0
    assert (found["plain"][0].row, found["plain"][0].col) != SPOT
    assert top.z > 3 * abs(found["plain"][0].z)


def test_robust_z_is_not_masked_by_its_own_outlier():
    maps = torch.zeros(2, 5, 5)
    maps[0] = torch.arange(25.0).reshape(5, 5) % 3  # values 0, 1, 2: median 1, MAD 1
    maps[0, 4, 4] = 1 + 10 * 1.4826
    z = logvar.robust_z(maps)
    assert z[0, 4, 4].item() == pytest.approx(10.0)
    assert torch.all(z[1] == 0)  # a constant channel is not anomalous anywhere
    assert (logvar.anomalies(maps, 1)[0].row, logvar.anomalies(maps, 1)[0].col) == (4, 4)


# -- sensitivity: closed form with a local "decoder" -------------------------------------
def pixel_decoder(f=2):
    """Nearest-upscaled first three channels as the image: a purely local decode."""
    return lambda z: z[:, :3].repeat_interleave(f, 2).repeat_interleave(f, 3).permute(0, 2, 3, 1)


@pytest.mark.parametrize("batch_size", [1, 7])
def test_sensitivity_effects_match_closed_form(batch_size):
    z = random_latent(5, 6, seed=1)
    m = sensitivity.sensitivity_map(pixel_decoder(), z, image_metrics.mse, patch=3, batch_size=batch_size)
    rgb = z[0, :3]
    for r in range(5):
        for c in range(6):
            patch = rgb[:, max(0, r - 1):r + 2, max(0, c - 1):c + 2]  # clipped at the borders
            expected = patch.pow(2).sum().item() * 4 / (10 * 12 * 3)  # f*f pixels per cell
            assert m.effects[r, c].item() == pytest.approx(expected, rel=1e-5)
    assert m.decodes == {1: 31, 7: 35}[batch_size]  # 1 + 30 locations; 5 even batches of 7


def test_sensitivity_stride_noise_and_progress():
    z = random_latent(5, 5, seed=2)
    calls = []
    m = sensitivity.sensitivity_map(pixel_decoder(1), z, image_metrics.l1, patch=1, stride=2, mode="noise",
                                    noise_scale=0.5, seed=4, batch_size=4, on_batch=lambda d, t: calls.append((d, t)))
    assert sensitivity.patch_centres(5, 2) == [1, 3, 4]
    assert (m.rows, m.cols) == ([1, 3, 4], [1, 3, 4])
    assert calls == [(1, 3), (2, 3), (3, 3)]  # 10 decodes padded to 12
    noise = torch.randn(4, 1, 1, generator=torch.Generator().manual_seed(4)) * 0.5 * latent_edits.channel_std(z)[0]
    assert m.effects[0, 1].item() == pytest.approx(noise[:3].abs().sum().item() / (25 * 3), rel=1e-5)
    lm = m.latent_map()
    assert lm.shape == (5, 5) and lm[0, 0] == m.effects[0, 0] and lm[4, 2] == m.effects[2, 1]
    again = sensitivity.sensitivity_map(pixel_decoder(1), z, image_metrics.l1, patch=1, stride=2, mode="noise",
                                        noise_scale=0.5, seed=4, batch_size=2)
    assert torch.equal(again.effects, m.effects)


def test_sensitivity_rejects_bad_arguments():
    with pytest.raises(ValueError, match="one latent"):
        sensitivity.sensitivity_map(pixel_decoder(), torch.zeros(2, 4, 3, 3), image_metrics.mse)
    with pytest.raises(ValueError, match="perturbation"):
        sensitivity.sensitivity_map(pixel_decoder(), torch.zeros(1, 4, 3, 3), image_metrics.mse, mode="blur")


def test_black_hole_score_of_a_flat_map_is_one():
    m = sensitivity.SensitivityMap(torch.ones(3, 3), [0, 1, 2], [0, 1, 2], (3, 3), 1, 1, torch.zeros(1, 3, 3, 3), 9, 9, 0.0)
    assert m.black_hole_score == 1.0
    assert "black-hole score (top / median) 1.00" in m.report()


def test_decode_batch_size_scales_with_image_size():
    vae = build()
    small, large = sensitivity.decode_batch_size(vae, 8, 8), sensitivity.decode_batch_size(vae, 512, 512)
    assert small == 16  # the CPU cap
    assert large == 2 * 2**30 // (1024 * 1024 * 16 * 4 * 6)  # 2 GiB over six fp32 1024x1024x16 activations


# -- image metrics -------------------------------------------------------------------------
def test_psnr_and_distances_closed_form():
    a = torch.full((2, 16, 16, 3), 0.5)
    b = a + 0.1
    assert image_metrics.psnr(a, b).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert image_metrics.mse(a, b).tolist() == pytest.approx([0.01, 0.01])
    assert image_metrics.l1(a[:1], b).tolist() == pytest.approx([0.1, 0.1])
    assert math.isinf(image_metrics.psnr(a, a)[0].item())


def test_ssim_matches_scikit_image():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 32, 40, 3, generator=g).double()
    smooth = smooth_image(32, 40).double()
    for b in (a * 0.7 + 0.2, (a + 0.2 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1), smooth):
        ours = image_metrics.ssim(a, b).item()
        theirs = structural_similarity(a[0].numpy(), b[0].numpy(), channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=1.0)
        assert ours == pytest.approx(theirs, abs=1e-6)
    assert image_metrics.ssim(smooth, smooth).item() == pytest.approx(1.0)


def test_ssim_of_a_constant_pair_is_closed_form():
    # constant images: no variance, so SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    a, b = torch.full((1, 12, 12, 3), 0.2), torch.full((1, 12, 12, 3), 0.6)
    c1 = 0.01**2
    assert image_metrics.ssim(a, b).item() == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.04 + 0.36 + c1), rel=1e-6)


# -- latent stats --------------------------------------------------------------------------
def test_latent_stats_healthy_and_wrong_scale():
    g = torch.Generator().manual_seed(0)
    stds = torch.tensor([1.0, 3.0, 0.7, 1.5])
    raw = torch.randn(4, 4, 32, 32, generator=g) * stds[None, :, None, None] / SD1.scale_factor + 0.3
    s = latent_stats(raw, SD1)
    assert s.scaled_std == pytest.approx(stds.tolist(), rel=0.05)
    assert s.raw_std == pytest.approx((stds / SD1.scale_factor).tolist(), rel=0.05)
    assert s.raw_mean == pytest.approx(raw.double().mean(dim=(0, 2, 3)).tolist(), rel=1e-9)
    assert s.scaled_mean == pytest.approx((raw.double().mean(dim=(0, 2, 3)) * SD1.scale_factor).tolist(), rel=1e-9)
    assert s.raw_max == pytest.approx(raw.amax(dim=(0, 2, 3)).tolist())
    assert s.nan_count == s.inf_count == 0
    assert s.warnings == ["channel(s) 1 have a scaled std outside 0.5..2"]  # nothing about the overall scale
    assert [s.channel_ok(c) for c in range(4)] == [True, False, True, True]  # 3.0 is outside 1/2..2
    assert "<-" in s.table().splitlines()[3]  # channel 1's row is marked
    unit = torch.randn(2, 4, 32, 32, generator=g)  # raw std 1: SD1's factor makes it ~0.18
    wrong = latent_stats(unit, SD1)
    assert wrong.overall_scaled_std == pytest.approx(SD1.scale_factor, rel=0.05)
    [warning] = [w for w in wrong.warnings if "far from 1" in w]
    suggested = float(re.search(r"1/std of these latents is ([0-9.]+)", warning).group(1))
    assert suggested == pytest.approx(1.0, rel=0.05)
    assert "WARNING" in wrong.table()
    assert latent_stats(unit / SDXL.scale_factor, SDXL).warnings == []


def test_latent_stats_nan_inf_and_zero():
    raw = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)) / SD1.scale_factor
    raw[0, 1, 2, 3] = float("nan")
    raw[0, 2, 0, 0] = float("inf")
    s = latent_stats(raw, SD1)
    assert (s.nan_count, s.inf_count) == (1, 1)
    assert all(math.isfinite(v) for v in s.scaled_std)
    assert any("1 NaN and 1 Inf" in w for w in s.warnings)
    zero = latent_stats(torch.zeros(1, 4, 8, 8), SD1)
    assert any("all zeros" in w for w in zero.warnings)
    chart = stats_chart(s)
    assert chart.size[0] >= 220 and chart.mode == "RGB"


# -- latent edits --------------------------------------------------------------------------
def test_perturb_region_modes():
    z = random_latent(6, 6)
    zeroed = latent_edits.perturb_region(z, 1, 3, 2, 5, "zero")
    assert torch.all(zeroed[:, :, 1:3, 2:5] == 0)
    outside = torch.ones_like(z, dtype=torch.bool)
    outside[:, :, 1:3, 2:5] = False
    assert torch.equal(zeroed[outside], z[outside])
    source = torch.full_like(z, 7.0)
    replaced = latent_edits.perturb_region(z, 0, 2, 0, 2, "replace", source=source)
    assert torch.all(replaced[:, :, :2, :2] == 7) and torch.equal(replaced[:, :, 2:], z[:, :, 2:])
    big = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0)) * 3
    noisy = latent_edits.perturb_region(big, 0, 64, 0, 32, "noise", noise_scale=0.5,
                                        generator=torch.Generator().manual_seed(1))
    added = (noisy - big)[:, :, :, :32]
    assert added.std().item() == pytest.approx(0.5 * 3, rel=0.05)
    assert torch.equal(noisy[:, :, :, 32:], big[:, :, :, 32:])
    assert latent_edits.clip_region(6, 6, 4, -1, 3, 3) == (4, 6, 0, 2)


def test_slerp_keeps_the_norm_of_orthogonal_latents():
    a = torch.zeros(1, 1, 2, 2)
    b = torch.zeros(1, 1, 2, 2)
    a[0, 0, 0, 0], b[0, 0, 1, 1] = 3.0, 3.0
    mid = latent_edits.interpolate(a, b, 0.5, "slerp")
    assert mid.norm().item() == pytest.approx(3.0)
    assert latent_edits.interpolate(a, b, 0.5, "lerp").norm().item() == pytest.approx(3.0 / math.sqrt(2))
    assert torch.allclose(latent_edits.slerp(a, b, 0.0), a) and torch.allclose(latent_edits.slerp(a, b, 1.0), b)
    assert torch.allclose(latent_edits.slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: falls back to lerp


# -- heatmaps ------------------------------------------------------------------------------
def test_colorize_and_tiles():
    values = torch.tensor([[0.0, 0.5], [1.0, 2.0]])
    rgb = heatmaps.colorize(values, 0.0, 1.0)
    assert rgb[0, 0].tolist() == pytest.approx(heatmaps.INFERNO[0])
    assert rgb[1, 0].tolist() == pytest.approx(heatmaps.INFERNO[-1]) and torch.equal(rgb[1, 1], rgb[1, 0])
    assert rgb[0, 1].tolist() == pytest.approx(heatmaps.INFERNO[5])
    tile = heatmaps.labelled_tile(torch.rand(8, 8), "x", marks=((1, 2),))
    assert tile.size == (128, 128 + heatmaps.STRIP_HEIGHT)
    assert heatmaps.value_range(torch.tensor([-1.0, 3.0]), "diverging") == (-3.0, 3.0)
    batch = heatmaps.as_image_batch([tile, heatmaps.grid([tile, tile])])
    assert batch.shape == (2, 128 + heatmaps.STRIP_HEIGHT, 260, 3) and 0 <= batch.min() and batch.max() <= 1
