"""Latent formats: how a VAE's raw latents map into the space the diffusion model works in,
and a cheap linear latent -> RGB map for live previews.

process_in(z) = (z - shift) * scale      raw VAE latent -> model space
process_out(x) = x / scale + shift       model space -> raw VAE latent
(Mochi's format first standardises each channel by its own mean and std: (z - mean_c) / std_c.)

Preview factors act on MODEL-space latents (what the sampler holds) and give RGB in about
-1..1. The SD1 and SDXL matrices are least-squares fits of the real VAEs' decoded images,
downscaled to latent resolution, against the latents (SD1: the fit published by Keturn in 2022;
SDXL: the public fit with a bias term used across SD front-ends). They could not be refit here
because no real VAE weights are available offline; `fit_rgb_factors` computes such a fit for any
VAE (the demo model uses it) and is tested on synthetic data. The SD3 and FLUX matrices (with
bias) and Stable Cascade's are the fits ComfyUI publishes in its latent_formats.py, for the same
model-space latents.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class LatentFormat:
    name: str
    channels: int
    scale_factor: float
    shift_factor: float = 0.0
    rgb_factors: tuple[tuple[float, float, float], ...] | None = field(default=None, repr=False)
    rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    channel_mean: tuple[float, ...] | None = field(default=None, repr=False)  # per channel, before the scale
    channel_std: tuple[float, ...] | None = field(default=None, repr=False)

    def _channels(self, values, z: torch.Tensor) -> torch.Tensor:
        import torch
        return torch.tensor(values, dtype=z.dtype, device=z.device).view(1, -1, *[1] * (z.ndim - 2))

    def process_in(self, z: torch.Tensor) -> torch.Tensor:
        if self.channel_mean is not None:
            z = (z - self._channels(self.channel_mean, z)) / self._channels(self.channel_std, z)
        return (z - self.shift_factor) * self.scale_factor

    def process_out(self, x: torch.Tensor) -> torch.Tensor:
        x = x / self.scale_factor + self.shift_factor
        if self.channel_mean is not None:
            x = x * self._channels(self.channel_std, x) + self._channels(self.channel_mean, x)
        return x

    def with_scale(self, scale_factor: float, shift_factor: float | None = None) -> "LatentFormat":
        """The same format with another scale (a custom or demo VAE)."""
        shift = self.shift_factor if shift_factor is None else shift_factor
        return replace(self, scale_factor=scale_factor, shift_factor=shift)

    def preview(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space latent [B, C, h, w] -> cheap preview IMAGE [B, h, w, 3] in 0..1 (CPU float32)."""
        import torch
        x = x.detach().float().cpu()
        if self.rgb_factors is not None:
            factors = torch.tensor(self.rgb_factors, dtype=torch.float32)
            rgb = torch.einsum("bchw,cr->bhwr", x, factors) + torch.tensor(self.rgb_bias)
        else:  # no fit known: show the first three channels, each normalised to its own range
            rgb = x[:, :3].permute(0, 2, 3, 1)
            lo = rgb.amin(dim=(1, 2), keepdim=True)
            hi = rgb.amax(dim=(1, 2), keepdim=True)
            rgb = (rgb - lo) / (hi - lo).clamp_min(1e-6) * 2 - 1
        return ((rgb + 1) / 2).clamp(0, 1)


def fit_rgb_factors(latents: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares preview map from model-space latents [N, C, h, w] to the decoded pixels
    [N, 3, H, W] in -1..1 (area-downscaled to h x w). Returns (factors [C, 3], bias [3])."""
    import torch
    import torch.nn.functional as F
    target = F.adaptive_avg_pool2d(pixels.float(), latents.shape[-2:])
    a = latents.float().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    b = target.permute(0, 2, 3, 1).reshape(-1, 3)
    a1 = torch.cat([a, torch.ones(a.shape[0], 1)], dim=1)
    solution = torch.linalg.lstsq(a1, b).solution
    return solution[:-1], solution[-1]


SD1 = LatentFormat(
    "sd1", channels=4, scale_factor=0.18215,
    rgb_factors=((0.3512, 0.2297, 0.3227),
                 (0.3250, 0.4974, 0.2350),
                 (-0.2829, 0.1762, 0.2721),
                 (-0.2120, -0.2616, -0.7177)))

SDXL = LatentFormat(
    "sdxl", channels=4, scale_factor=0.13025,
    rgb_factors=((0.3651, 0.4232, 0.4341),
                 (-0.2533, -0.0042, 0.1068),
                 (0.1076, 0.1111, -0.0362),
                 (-0.3165, -0.2492, -0.2188)),
    rgb_bias=(0.1084, -0.0175, -0.0011))

# Playground v2.5 (an SDXL UNet): each channel standardised by its own mean and std, then x 0.5;
# ComfyUI's SDXL_Playground_2_5 (set by ModelSamplingContinuousEDM "edm_playground_v2.5"), its preview fit
PLAYGROUND_2_5 = LatentFormat(
    "sdxl_playground_2_5", channels=4, scale_factor=0.5,
    channel_mean=(-1.6574, 1.886, -1.383, 2.5155), channel_std=(8.4927, 5.9022, 6.5498, 5.2299),
    rgb_factors=((0.3920, 0.4054, 0.4549),
                 (-0.2634, -0.0196, 0.0653),
                 (0.0568, 0.1687, -0.0755),
                 (-0.3112, -0.2359, -0.2076)))

# Stability's x4 upscaler: its VAE downsamples by 4; scale and preview fit as ComfyUI's SD_X4
SD_X4 = LatentFormat(
    "sd_x4", channels=4, scale_factor=0.08333,
    rgb_factors=((-0.2340, -0.3863, -0.3257),
                 (0.0994, 0.0885, -0.0908),
                 (-0.2833, -0.2349, -0.3741),
                 (0.2523, -0.0055, -0.1651)))

SD3 = LatentFormat(
    "sd3", channels=16, scale_factor=1.5305, shift_factor=0.0609,
    rgb_factors=((-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954), (0.1994, 0.0927, 0.0458),
                 (0.0856, 0.0339, 0.0902), (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309),
                 (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358), (-0.0194, 0.0020, 0.0669),
                 (-0.0488, 0.0130, -0.0268), (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
                 (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810), (-0.0596, -0.0465, -0.0293),
                 (-0.1448, -0.1463, -0.1189)),
    rgb_bias=(0.2394, 0.2135, 0.1925))

FLUX = LatentFormat(
    "flux", channels=16, scale_factor=0.3611, shift_factor=0.1159,
    rgb_factors=((-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433),
                 (-0.0174, 0.0160, 0.0617), (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115),
                 (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259), (-0.0245, 0.0250, 0.1180),
                 (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
                 (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103), (-0.0280, -0.0881, -0.0499),
                 (-0.1262, -0.0982, -0.0778)),
    rgb_bias=(-0.0329, -0.0718, -0.0851))

# Stable Cascade (ComfyUI's SC_Prior and SC_B, scales and preview matrices as ComfyUI publishes
# them): Stage C samples its 16-channel latent unscaled; Stage B samples Stage A's 4-channel
# latent scaled by 1 / 0.43.
SC_PRIOR = LatentFormat(
    "stable_cascade_prior", channels=16, scale_factor=1.0,
    rgb_factors=((-0.0326, -0.0204, -0.0127), (-0.1592, -0.0427, 0.0216), (0.0873, 0.0638, -0.0020),
                 (-0.0602, 0.0442, 0.1304), (0.0800, -0.0313, -0.1796), (-0.0810, -0.0638, -0.1581),
                 (0.1791, 0.1180, 0.0967), (0.0740, 0.1416, 0.0432), (-0.1745, -0.1888, -0.1373),
                 (0.2412, 0.1577, 0.0928), (0.1908, 0.0998, 0.0682), (0.0209, 0.0365, -0.0092),
                 (0.0448, -0.0650, -0.1728), (-0.1658, -0.1045, -0.1308), (0.0542, 0.1545, 0.1325),
                 (-0.0352, -0.1672, -0.2541)))
SC_B = LatentFormat(
    "stable_cascade_b", channels=4, scale_factor=1.0 / 0.43,
    rgb_factors=((0.1121, 0.2006, 0.1023), (-0.2093, -0.0222, -0.0195), (-0.3087, -0.1535, 0.0366),
                 (0.0290, -0.1574, -0.4078)))

# LTX-Video: the VAE normalises its latents per channel itself (ComfyUI's LTXV format, scale 1);
# latents are video [B, 128, frames, h, w]. No preview fit is known here (first channels shown).
LTXV = LatentFormat("ltxv", channels=128, scale_factor=1.0)

# Mochi: raw VAE latents standardised per channel (the means and stds of Genmo's VAE, as in
# diffusers' AutoencoderKLMochi config and ComfyUI's Mochi format), scale 1; latents are video
# [B, 12, frames, h, w]. No preview fit is known here (first channels shown).
MOCHI = LatentFormat(
    "mochi", channels=12, scale_factor=1.0,
    channel_mean=(-0.06730895953510081, -0.038011381506090416, -0.07477820912866141, -0.05565264470995561,
                  0.012767231469026969, -0.04703542746246419, 0.043896967884726704, -0.09346305707025976,
                  -0.09918314763016893, -0.008729793427399178, -0.011931556316503654, -0.0321993391887285),
    channel_std=(0.9263795028493863, 0.9248894543193766, 0.9393059390890617, 0.959253732819592,
                 0.8244560132752793, 0.917259975397747, 0.9294154431013696, 1.3720942357788521,
                 0.881393668867029, 0.9168315692124348, 0.9185249279345552, 0.9274757570805041))

# Wan 2.1's VAE (Cosmos-Predict2, Wan): raw latents standardised per channel (the latents_mean /
# latents_std of diffusers' AutoencoderKLWan config, ComfyUI's Wan21 format), scale 1; latents
# are video [B, 16, frames, h, w]. No preview fit is known here (first channels shown).
WAN21 = LatentFormat(
    "wan21", channels=16, scale_factor=1.0,
    channel_mean=(-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                  0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921),
    channel_std=(2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                 3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160))

# the Wan 2.2 VAE's (TI2V 5B): ComfyUI's Wan22 latent format, AutoencoderKLWan's Wan 2.2 latents_mean / std
WAN22 = LatentFormat(
    "wan22", channels=48, scale_factor=1.0,
    channel_mean=(-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
                  -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
                  -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
                  -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
                  -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
                  0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667),
    channel_std=(0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
                 0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
                 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
                 0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
                 0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
                 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744))

# Chroma Radiance (ComfyUI's ChromaRadiance format): the "latent" is the image itself, RGB in -1..1
# at full size (pixel_space VAE, downscale 1), unscaled; the preview shows it as it is.
CHROMA_RADIANCE = LatentFormat("chroma_radiance", channels=3, scale_factor=1.0,
                               rgb_factors=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))

# Cosmos 1.0's CV8x8x8 tokenizer: the VAE normalises its latents itself (per channel and latent
# frame, times 0.5; graphflow.models.cosmos_vae), so ComfyUI's Cosmos1CV8x8x8 format is the
# identity; latents are video [B, 16, frames, h, w]. Preview fit as ComfyUI publishes it.
COSMOS1 = LatentFormat(
    "cosmos1cv8x8x8", channels=16, scale_factor=1.0,
    rgb_factors=((0.1817, 0.2284, 0.2423), (-0.0586, -0.0862, -0.3108), (-0.4703, -0.4255, -0.3995),
                 (0.0803, 0.1963, 0.1001), (-0.0820, -0.1050, 0.0400), (0.2511, 0.3098, 0.2787),
                 (-0.1830, -0.2117, -0.0040), (-0.0621, -0.2187, -0.0939), (0.3619, 0.1082, 0.1455),
                 (0.3164, 0.3922, 0.2575), (0.1152, 0.0231, -0.0462), (-0.1434, -0.3609, -0.3665),
                 (0.0635, 0.1471, 0.1680), (-0.3635, -0.1963, -0.3248), (-0.1865, 0.0365, 0.2346),
                 (0.0447, 0.0994, 0.0881)),
    rgb_bias=(-0.1223, -0.1889, -0.1976))

# HunyuanVideo 1.0's causal 3-D VAE (ComfyUI's HunyuanVideo format): scale 0.476986, no shift; latents
# are video [B, 16, frames, h, w]. Preview fit as ComfyUI publishes it.
HUNYUAN_VIDEO = LatentFormat(
    "hunyuan_video", channels=16, scale_factor=0.476986,
    rgb_factors=((-0.0395, -0.0331, 0.0445), (0.0696, 0.0795, 0.0518), (0.0135, -0.0945, -0.0282),
                 (0.0108, -0.0250, -0.0765), (-0.0209, 0.0032, 0.0224), (-0.0804, -0.0254, -0.0639),
                 (-0.0991, 0.0271, -0.0669), (-0.0646, -0.0422, -0.0400), (-0.0696, -0.0595, -0.0894),
                 (-0.0799, -0.0208, -0.0375), (0.1166, 0.1627, 0.0962), (0.1165, 0.0432, 0.0407),
                 (-0.2315, -0.1920, -0.1355), (-0.0270, 0.0401, -0.0821), (-0.0616, -0.0997, -0.0727),
                 (0.0249, -0.0469, -0.1703)),
    rgb_bias=(0.0259, -0.0192, -0.0761))

# HunyuanImage 2.1's 32x VAE (ComfyUI's HunyuanImage21 format): 64 channels, scale 0.75289 (Tencent's
# scaling_factor), no shift; image latents [B, 64, H/32, W/32]. No preview fit here: the preview shows
# three channels, each stretched to its range.
HUNYUAN_IMAGE21 = LatentFormat("hunyuan_image21", channels=64, scale_factor=0.75289)


@dataclass(frozen=True)
class PairedFramesFormat(LatentFormat):
    """ComfyUI's HunyuanImage21Refiner format: raw latents [B, raw_channels, T, h, w] of the refiner's VAE (one
    frame per image) scaled, the first frame repeated, then each two consecutive frames' channels side by side:
    model space [B, 2 raw_channels, (T + 1) / 2, h, w]; process_out undoes it."""
    raw_channels: int = 32

    def process_in(self, z: torch.Tensor) -> torch.Tensor:
        import torch
        z = torch.cat([z[:, :, :1], z], dim=2) * self.scale_factor
        b, c, t, h, w = z.shape
        return z.reshape(b, c, t // 2, 2, h, w).permute(0, 3, 1, 2, 4, 5).reshape(b, 2 * c, t // 2, h, w)

    def process_out(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        z = x.reshape(b, 2, c // 2, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c // 2, 2 * t, h, w)
        return z[:, :, 1:] / self.scale_factor

    def preview(self, x: torch.Tensor) -> torch.Tensor:
        return super().preview(x[:, :, 0] if x.ndim == 5 else x)


# HunyuanImage 2.1's refiner VAE (32 channels, 16x; ComfyUI's HunyuanImage21Refiner: scale 1.03682, as
# diffusers' AutoencoderKLHunyuanImageRefiner's scaling_factor), frames paired into 64 model channels
HUNYUAN_IMAGE21_REFINER = PairedFramesFormat("hunyuan_image21_refiner", channels=64, scale_factor=1.03682)


LATENT_FORMATS = {f.name: f for f in (SD1, SDXL, PLAYGROUND_2_5, SD_X4, SD3, FLUX, SC_PRIOR, SC_B, LTXV, MOCHI, WAN21, WAN22,
                                      CHROMA_RADIANCE, COSMOS1, HUNYUAN_VIDEO, HUNYUAN_IMAGE21,
                                      HUNYUAN_IMAGE21_REFINER)}
