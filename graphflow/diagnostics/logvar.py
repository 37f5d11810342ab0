"""The encoder's posterior log-variance map and the locations where it is anomalous.

A VAE that stores global information in one spot (the SD 1.x/2.x "black hole") shows it in the
encoder too: the posterior log-variance there is far off its value everywhere else. Each
channel's map is turned into robust z-scores (distance from the channel's median in units of
1.4826 x its median absolute deviation, the Gaussian-consistent MAD), so one extreme cell can't
inflate the scale it is measured against; a location's anomaly is its largest |z| over channels.
"""

from dataclasses import dataclass

import torch

MAD_TO_STD = 1.4826


@dataclass
class Anomaly:
    row: int
    col: int
    z: float  # robust z-score, signed, of the channel where |z| is largest
    channel: int


def robust_z(maps: torch.Tensor) -> torch.Tensor:
    """Per-channel robust z-scores of maps [C, h, w]."""
    flat = maps.double().flatten(1)
    median = flat.median(dim=1).values[:, None]
    mad = (flat - median).abs().median(dim=1).values[:, None]
    # a (near-)constant channel has MAD 0: fall back to its mean absolute deviation, then to a floor
    scale = torch.where(mad > 0, MAD_TO_STD * mad, (flat - median).abs().mean(dim=1, keepdim=True))
    scale = scale.clamp_min(1e-12)
    return ((flat - median) / scale).reshape(maps.shape)


def anomaly_map(logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For logvar [C, h, w]: the largest |robust z| over channels [h, w], and that channel [h, w]."""
    z = robust_z(logvar)
    magnitude, channel = z.abs().max(dim=0)
    return magnitude, channel


def anomalies(logvar: torch.Tensor, k: int = 5) -> list[Anomaly]:
    """The k locations of logvar [C, h, w] with the largest robust |z|, most anomalous first."""
    z = robust_z(logvar)
    magnitude, channel = z.abs().max(dim=0)
    w = magnitude.shape[1]
    _, index = magnitude.flatten().topk(min(k, magnitude.numel()))
    out = []
    for i in index.tolist():
        row, col = divmod(i, w)
        ch = int(channel[row, col])
        out.append(Anomaly(row, col, float(z[ch, row, col]), ch))
    return out


def report(mean: torch.Tensor, logvar: torch.Tensor, k: int = 5, downscale: int = 8) -> str:
    """Value ranges per channel and the top anomalies, for one posterior (mean, logvar) [C, h, w]."""
    c, h, w = logvar.shape
    lines = [f"posterior of a {h}x{w} latent, {c} channels"]
    for ch in range(c):
        lv, m = logvar[ch], mean[ch]
        lines.append(f"  c{ch}: logvar {lv.min():.3g}..{lv.max():.3g} (median {lv.median():.3g}), "
                     f"mean {m.min():.3g}..{m.max():.3g}")
    lines.append("most anomalous log-variance (row, col: robust z in channel):")
    for n, a in enumerate(anomalies(logvar, k), 1):
        lines.append(f"  {n}. ({a.row}, {a.col}) [pixels y {a.row * downscale}, x {a.col * downscale}]: "
                     f"z {a.z:+.1f} in c{a.channel}")
    return "\n".join(lines)
