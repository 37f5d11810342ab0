"""Latent health: per-channel statistics before and after the VAE's scaling factor.

The diffusion model was trained on latents whose scaled std is about 1 (the scaling factor was
chosen as 1 / std of the VAE's latents over a data set). A scaled std far from 1 therefore means
the scaling factor does not belong to this VAE (an SDXL latent read with SD1's factor, a custom
VAE), and NaN/Inf values mean an overflow somewhere upstream (typically a VAE run in float16).
"""

import math
from dataclasses import dataclass, field

import torch
from PIL import Image, ImageDraw

from graphflow.models.latent_formats import LatentFormat

from .heatmaps import format_value, label_font


@dataclass
class LatentStats:
    scale_factor: float
    shift_factor: float
    raw_mean: list[float]  # per channel, over batch and space, finite values only
    raw_std: list[float]
    scaled_mean: list[float]
    scaled_std: list[float]
    raw_min: list[float]
    raw_max: list[float]
    overall_scaled_mean: float
    overall_scaled_std: float
    shape: tuple[int, ...]
    nan_count: int
    inf_count: int
    std_tolerance: float
    warnings: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return len(self.raw_mean)

    def channel_ok(self, c: int) -> bool:
        std = self.scaled_std[c]
        return 1 / self.std_tolerance <= std <= self.std_tolerance

    def table(self) -> str:
        lines = [f"latent {list(self.shape)}, scale {self.scale_factor:g}, shift {self.shift_factor:g}",
                 f"{'ch':>3} {'raw mean':>10} {'raw std':>10} {'raw min':>10} {'raw max':>10}"
                 f" {'scaled mean':>12} {'scaled std':>11}"]
        for c in range(self.channels):
            lines.append(f"{c:>3} {self.raw_mean[c]:>10.4g} {self.raw_std[c]:>10.4g} {self.raw_min[c]:>10.4g}"
                         f" {self.raw_max[c]:>10.4g} {self.scaled_mean[c]:>12.4g} {self.scaled_std[c]:>11.4g}"
                         + ("" if self.channel_ok(c) else "  <-"))
        lines.append(f"all scaled: mean {self.overall_scaled_mean:.4g}, std {self.overall_scaled_std:.4g}"
                     f" (healthy: std within x{self.std_tolerance:g} of 1)")
        lines.append(f"NaN: {self.nan_count}, Inf: {self.inf_count}")
        lines += [f"WARNING: {w}" for w in self.warnings] or ["OK: no problems found"]
        return "\n".join(lines)


def latent_stats(samples: torch.Tensor, latent_format: LatentFormat, std_tolerance: float = 2.0) -> LatentStats:
    """Statistics of raw latents [B, C, h, w] under `latent_format`; a scaled std outside
    [1/std_tolerance, std_tolerance] is flagged."""
    if samples.dim() != 4:
        raise ValueError(f"expected a latent [B, C, h, w], got shape {tuple(samples.shape)}")
    raw = samples.detach().double().cpu()
    finite = torch.isfinite(raw)
    scaled = latent_format.process_in(raw)
    # per channel, over batch and space, finite values only
    raw_c = [raw[:, c][finite[:, c]] for c in range(raw.shape[1])]
    scaled_c = [scaled[:, c][finite[:, c]] for c in range(raw.shape[1])]

    def each(values: list[torch.Tensor], reduce) -> list[float]:
        return [float(reduce(v)) if v.numel() else float("nan") for v in values]

    def std(v: torch.Tensor) -> torch.Tensor:
        return v.std(unbiased=False)

    every_scaled = scaled[finite]
    stats = LatentStats(
        scale_factor=latent_format.scale_factor,
        shift_factor=latent_format.shift_factor,
        raw_mean=each(raw_c, torch.mean),
        raw_std=each(raw_c, std),
        scaled_mean=each(scaled_c, torch.mean),
        scaled_std=each(scaled_c, std),
        raw_min=each(raw_c, torch.min),
        raw_max=each(raw_c, torch.max),
        overall_scaled_mean=float(every_scaled.mean()) if every_scaled.numel() else float("nan"),
        overall_scaled_std=float(std(every_scaled)) if every_scaled.numel() else float("nan"),
        shape=tuple(samples.shape),
        nan_count=int(torch.isnan(raw).sum()),
        inf_count=int(torch.isinf(raw).sum()),
        std_tolerance=std_tolerance,
    )
    stats.warnings = _warnings(stats, raw[finite])
    return stats


def _warnings(s: LatentStats, finite_raw: torch.Tensor) -> list[str]:
    out = []
    total = math.prod(s.shape)
    if s.nan_count or s.inf_count:
        out.append(f"{s.nan_count} NaN and {s.inf_count} Inf values of {total}: the latent is broken upstream "
                   "(often a VAE or model overflowing in float16; try float32 or bfloat16)")
    if finite_raw.numel() == 0:
        out.append("no finite values to measure")
        return out
    if finite_raw.abs().max() == 0:
        out.append("the latent is all zeros (an empty latent): nothing to measure")
        return out
    std = s.overall_scaled_std
    if not 1 / s.std_tolerance <= std <= s.std_tolerance:
        suggested = 1 / float(finite_raw.std(unbiased=False))
        out.append(f"scaled std {std:.3g} is far from 1: the scaling factor {s.scale_factor:g} does not seem to "
                   f"belong to this VAE; 1/std of these latents is {suggested:.4g} (measure over many images "
                   "before choosing a factor)")
    if abs(s.overall_scaled_mean) > 1:
        out.append(f"scaled mean {s.overall_scaled_mean:.3g} is far from 0: wrong shift factor "
                   f"({s.shift_factor:g}) or latents from another VAE")
    off = [c for c in range(s.channels) if not s.channel_ok(c)]
    if off:
        out.append(f"channel(s) {', '.join(map(str, off))} have a scaled std outside "
                   f"{1 / s.std_tolerance:.3g}..{s.std_tolerance:g}")
    dead = [c for c in range(s.channels) if s.raw_std[c] < 1e-6 * max(1.0, abs(s.raw_mean[c]))]
    if dead:
        out.append(f"channel(s) {', '.join(map(str, dead))} are constant")
    return out


def stats_chart(s: LatentStats, height: int = 200) -> Image.Image:
    """Per channel: the scaled mean (dot) with a bar of +-1 scaled std, against the healthy
    band of a unit-std latent (dashed lines at +-1). Channels out of tolerance are red."""
    font = label_font()
    lane = 44
    margin_l, margin_b, margin_t = 34, 30, 16
    width = max(220, margin_l + lane * s.channels + 8)
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    plot_h = height - margin_b - margin_t
    finite = [abs(m) + sd for m, sd in zip(s.scaled_mean, s.scaled_std) if m == m and sd == sd]
    limit = max(2.0, *(finite or [0.0])) * 1.1
    y_of = lambda v: margin_t + plot_h / 2 - v / limit * plot_h / 2  # noqa: E731
    draw.line([margin_l, y_of(0), width - 4, y_of(0)], fill=(150, 150, 150))
    for v in (-1, 1):
        for x in range(margin_l, width - 4, 6):
            draw.line([x, y_of(v), x + 3, y_of(v)], fill=(80, 160, 80))
        draw.text((2, y_of(v) - 6), f"{v:+d}", fill=(80, 160, 80), font=font)
    draw.text((2, y_of(limit) - 2), format_value(limit), fill=(0, 0, 0), font=font)
    draw.text((margin_l, 1), "scaled mean +- std per channel", fill=(0, 0, 0), font=font)
    for c in range(s.channels):
        x = margin_l + lane * c + lane // 2
        mean, sd = s.scaled_mean[c], s.scaled_std[c]
        color = (30, 90, 200) if s.channel_ok(c) else (210, 30, 30)
        if mean == mean and sd == sd:
            draw.rectangle([x - 6, y_of(mean + sd), x + 6, y_of(mean - sd)], outline=color, width=2)
            draw.ellipse([x - 3, y_of(mean) - 3, x + 3, y_of(mean) + 3], fill=color)
        label = f"c{c}"
        draw.text((x - draw.textlength(label, font=font) / 2, height - margin_b + 3), label, fill=(0, 0, 0), font=font)
        std_text = format_value(sd)
        draw.text((x - draw.textlength(std_text, font=font) / 2, height - margin_b + 15), std_text,
                  fill=color, font=font)
    return image
