"""Latent-space diagnostics: see how a VAE uses its latent space (the math is in graphflow.diagnostics)."""

from __future__ import annotations

import json


from graphflow.api import (FLOAT, IMAGE, LATENT, STRING, VAE, Bool, Choice, Float, Int, Node, NodeInputError,
                           progress, show)
from graphflow.choices import IMAGE_METRICS, INTERPOLATIONS, PATCH_MODES, PERTURBATIONS


def _samples(latent, input: str) -> torch.Tensor:
    import torch
    if not isinstance(latent, dict) or not isinstance(latent.get("samples"), torch.Tensor) \
            or latent["samples"].dim() != 4:
        raise NodeInputError(input, "expected a LATENT (a dict with 'samples' [B, C, h, w])")
    return latent["samples"]


def _image(image, input: str) -> torch.Tensor:
    import torch
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[-1] not in (3, 4):
        raise NodeInputError(input, "expected an IMAGE [B, H, W, 3]")
    return image[..., :3].float()


class LatentStats(Node):
    """Health check of a latent: mean and std of every channel before and after the scaling factor,
    NaN/Inf counts, and a warning when the scaled std is far from 1 (the sign of a scaling factor
    that belongs to another VAE). The chart shows each channel's scaled mean +- std against the
    healthy band of +-1. The scaling factor is the connected VAE's unless set here."""
    display_name = "Latent Stats (health check)"
    category = "diagnostics"
    output_node = True  # it shows a report: runs with nothing downstream
    latent: LATENT
    vae: VAE = None
    scale_factor: float = Float(0.0, min=0.0, max=1000.0, step=0.00001,
                                description="0: the connected VAE's scaling factor")
    std_tolerance: float = Float(2.0, min=1.01, max=100.0,
                                 description="warn when the scaled std is outside 1/x .. x")
    outputs = {"report": STRING, "chart": IMAGE}

    def run(self):
        from graphflow.diagnostics import heatmaps
        from graphflow.diagnostics.latent_stats import latent_stats, stats_chart
        from graphflow.models.latent_formats import LatentFormat
        samples = _samples(self.latent, "latent")
        if self.vae is not None:
            fmt = self.vae.latent_format
            if self.scale_factor > 0:
                fmt = fmt.with_scale(self.scale_factor)
        elif self.scale_factor > 0:
            fmt = LatentFormat("custom", samples.shape[1], self.scale_factor)
        else:
            raise NodeInputError("vae", "connect a VAE, or set scale_factor, to know the latent's scaling factor")
        stats = latent_stats(samples, fmt, self.std_tolerance)
        report = stats.table()
        show(text=[report])
        return report, heatmaps.from_pil(stats_chart(stats))[None]


class VAELogVarMap(Node):
    """Encode an image and show the encoder's posterior log-variance and mean for every latent
    location and channel as heatmaps, each with its value range. The last log-variance tile is the
    anomaly map: per location the largest robust z-score over channels, with the most anomalous
    location outlined. A VAE that hides global information in one spot (the SD 1.x/2.x "black
    hole") shows an outlier there; a healthy VAE's map has none."""
    display_name = "VAE Log-Variance Map"
    category = "diagnostics"
    output_node = True  # it shows a report: runs with nothing downstream
    vae: VAE
    image: IMAGE
    top_k: int = Int(5, min=1, max=100, description="anomalous locations to list")
    outputs = {"logvar_map": IMAGE, "mean_map": IMAGE, "report": STRING}

    def run(self):
        from graphflow.diagnostics import heatmaps, logvar
        images = _image(self.image, "image")
        f = self.vae.downscale
        if images.shape[1] < f or images.shape[2] < f:
            raise NodeInputError("image", f"needs at least {f}x{f} pixels, got {images.shape[2]}x{images.shape[1]}")
        logvar_sheets, mean_sheets, reports = [], [], []
        for i in range(images.shape[0]):
            mean, lv = (t[0] for t in self.vae.encode_posterior(images[i:i + 1]))
            progress(i + 1, images.shape[0])
            magnitude, _ = logvar.anomaly_map(lv)
            top = logvar.anomalies(lv, 1)[0]
            tiles = [heatmaps.labelled_tile(lv[c], f"logvar c{c}") for c in range(lv.shape[0])]
            tiles.append(heatmaps.labelled_tile(magnitude, "anomaly |z|", marks=((top.row, top.col),)))
            logvar_sheets.append(heatmaps.grid(tiles, min(len(tiles), 5)))
            mean_tiles = [heatmaps.labelled_tile(mean[c], f"mean c{c}", cmap="diverging") for c in range(mean.shape[0])]
            mean_sheets.append(heatmaps.grid(mean_tiles, min(len(mean_tiles), 5)))
            prefix = f"image {i}: " if images.shape[0] > 1 else ""
            reports.append(prefix + logvar.report(mean, lv, self.top_k, f))
        report = "\n\n".join(reports)
        show(text=[report])
        return heatmaps.as_image_batch(logvar_sheets), heatmaps.as_image_batch(mean_sheets), report


class VAESensitivityMap(Node):
    """For every latent location (every `stride`-th cell), perturb the patch x patch square around it
    in all channels (zero it, or add noise of noise_scale x each channel's std), decode, and measure
    how much the WHOLE image changed against the unperturbed decode. Outputs the map at latent
    resolution, an overlay on the decoded image (the most global location outlined), the top
    locations (JSON), and the black-hole score: the top location's effect over the median. A healthy
    VAE scores a few units; the SD 1.x/2.x VAE's "black hole" stands far out. One decode per
    location, batched (batch_size 0 picks a size by free memory); LPIPS needs the AlexNet weights on
    disk (see its error). Uses the sample at batch_index of the latent batch."""
    display_name = "VAE Sensitivity Map"
    category = "diagnostics"
    output_node = True  # it shows a report: runs with nothing downstream
    vae: VAE
    latent: LATENT
    patch: int = Int(3, min=1, max=15, description="side of the perturbed square, in latent cells (clipped at borders)")
    stride: int = Int(1, min=1, max=64, description="measure every stride-th cell (1: all of them)")
    perturbation: str = Choice(list(PATCH_MODES), "zero")
    noise_scale: float = Float(1.0, min=0.0, max=100.0, description="noise std, in units of each channel's std")
    seed: int = Int(0, min=0, max=2**63 - 1)
    metric: str = Choice(list(IMAGE_METRICS), "mse", description="image change: mse, l1 or lpips")
    batch_size: int = Int(0, min=0, max=256, description="decodes per batch; 0 picks one by free memory")
    top_k: int = Int(5, min=1, max=100)
    batch_index: int = Int(0, min=0, max=4095)
    outputs = {"heatmap": IMAGE, "overlay": IMAGE, "top_locations": STRING, "black_hole_score": FLOAT,
               "report": STRING}

    def run(self):
        from graphflow.diagnostics import heatmaps, image_metrics, sensitivity
        samples = _samples(self.latent, "latent")
        if self.batch_index >= samples.shape[0]:
            raise NodeInputError("batch_index", f"the latent batch has {samples.shape[0]} samples")
        if samples.shape[1] != self.vae.latent_channels:
            raise NodeInputError("latent", f"has {samples.shape[1]} channels but the VAE expects "
                                           f"{self.vae.latent_channels}")
        z = samples[self.batch_index:self.batch_index + 1].float()
        try:
            distance = image_metrics.image_distance(self.metric, self.vae.device)
        except image_metrics.LPIPSWeightsMissing as e:
            raise NodeInputError("metric", str(e)) from None
        batch = self.batch_size or sensitivity.decode_batch_size(self.vae, z.shape[2], z.shape[3])
        result = sensitivity.sensitivity_map(
            self.vae.decode, z, distance, patch=self.patch, stride=self.stride, mode=self.perturbation,
            noise_scale=self.noise_scale, seed=self.seed, batch_size=batch, on_batch=progress)
        latent_map = result.latent_map().float()
        lo, hi = heatmaps.value_range(latent_map)
        heatmap = heatmaps.colorize(latent_map, lo, hi)[None]
        overlay = heatmaps.overlay(result.baseline[0], latent_map, f"image change ({self.metric})",
                                   marks=(result.location(),))
        median = result.median
        top = [{"row": loc.row, "col": loc.col, "effect": loc.effect,
                "x_median": loc.effect / median if median > 0 else None} for loc in result.top(self.top_k)]
        report = result.report(self.top_k, self.vae.downscale)
        show(text=[report])
        return heatmap, heatmaps.from_pil(overlay)[None], json.dumps(top), float(result.black_hole_score), report


class LatentPerturb(Node):
    """Change a rectangle of a latent in all channels: set it to zero, add noise (noise_scale x each
    channel's std), or replace it with the same rectangle of the `source` latent. x, y, width and
    height are in latent cells (pixels / 8), as the sensitivity map reports them."""
    category = "diagnostics"
    latent: LATENT
    source: LATENT = None
    mode: str = Choice(list(PERTURBATIONS), "zero")
    x: int = Int(0, min=0, max=16384, description="left column, in latent cells")
    y: int = Int(0, min=0, max=16384, description="top row, in latent cells")
    width: int = Int(3, min=1, max=16384)
    height: int = Int(3, min=1, max=16384)
    noise_scale: float = Float(1.0, min=0.0, max=100.0)
    seed: int = Int(0, min=0, max=2**63 - 1)
    outputs = {"latent": LATENT}

    def run(self):
        import torch
        from graphflow.diagnostics import latent_edits
        z = _samples(self.latent, "latent")
        h, w = z.shape[2:]
        if self.x >= w or self.y >= h:
            raise NodeInputError("x" if self.x >= w else "y",
                                 f"the region starts outside the {w}x{h} (width x height) latent")
        source = None
        if self.mode == "replace":
            if self.source is None:
                raise NodeInputError("source", "mode 'replace' needs a source latent")
            source = _samples(self.source, "source")
            if source.shape[1:] != z.shape[1:] or source.shape[0] not in (1, z.shape[0]):
                raise NodeInputError("source", f"shape {list(source.shape)} doesn't match the latent's {list(z.shape)}")
        region = latent_edits.clip_region(h, w, self.y, self.x, self.height, self.width)
        generator = torch.Generator().manual_seed(self.seed)
        samples = latent_edits.perturb_region(z, *region, self.mode, noise_scale=self.noise_scale,
                                              generator=generator, source=source)
        return {**self.latent, "samples": samples}


class LatentInterpolate(Node):
    """Blend two latents: t = 0 gives latent_a, t = 1 latent_b. slerp follows the great circle
    between them (per sample), keeping the size of noise-like latents that lerp shrinks midway."""
    category = "diagnostics"
    latent_a: LATENT
    latent_b: LATENT
    t: float = Float(0.5, min=0.0, max=1.0)
    method: str = Choice(list(INTERPOLATIONS), "slerp")
    outputs = {"latent": LATENT}

    def run(self):
        from graphflow.diagnostics import latent_edits
        a, b = _samples(self.latent_a, "latent_a"), _samples(self.latent_b, "latent_b")
        if a.shape[1:] != b.shape[1:] or (a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0])):
            raise NodeInputError("latent_b", f"shape {list(b.shape)} doesn't match latent_a's {list(a.shape)}")
        return {**self.latent_a, "samples": latent_edits.interpolate(a, b, self.t, self.method)}


class ImageDifference(Node):
    """Compare two images (or batches): a heatmap of the absolute difference (mean over colour
    channels, with its range), PSNR in dB and SSIM (1 = identical), and optionally LPIPS (needs
    the AlexNet weights on disk). A batch of 1 is compared against every image of the other."""
    category = "diagnostics"
    output_node = True  # it shows a report: runs with nothing downstream
    image_a: IMAGE
    image_b: IMAGE
    lpips: bool = Bool(False, description="also measure LPIPS")
    outputs = {"heatmap": IMAGE, "psnr": FLOAT, "ssim": FLOAT, "report": STRING}

    def run(self):
        import torch
        from graphflow.diagnostics import heatmaps, image_metrics
        a, b = _image(self.image_a, "image_a"), _image(self.image_b, "image_b")
        if a.shape[1:] != b.shape[1:]:
            raise NodeInputError("image_b", f"size {b.shape[2]}x{b.shape[1]} differs from image_a's "
                                            f"{a.shape[2]}x{a.shape[1]}")
        if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
            raise NodeInputError("image_b", f"batch of {b.shape[0]} doesn't match image_a's {a.shape[0]} "
                                            "(nor is one of them 1)")
        if min(a.shape[1:3]) < 11:
            raise NodeInputError("image_a", "SSIM needs images of at least 11x11 pixels")
        psnr = image_metrics.psnr(a, b)
        ssim = image_metrics.ssim(a, b)
        lpips = None
        if self.lpips:
            try:
                lpips = image_metrics.image_distance("lpips")(a, b)
            except image_metrics.LPIPSWeightsMissing as e:
                raise NodeInputError("lpips", str(e)) from None
        a, b = torch.broadcast_tensors(a, b)
        diff = (a - b).abs().mean(dim=3)
        tiles = [heatmaps.labelled_tile(d, "|a - b|", lo=0.0, hi=max(d.max().item(), 1e-6))
                 for d in diff]
        lines = []
        for i in range(diff.shape[0]):
            line = f"image {i}: PSNR {psnr[i]:.2f} dB, SSIM {ssim[i]:.4f}, max |diff| {diff[i].max():.4g}"
            if lpips is not None:
                line += f", LPIPS {lpips[i]:.4f}"
            lines.append(line)
        report = "\n".join(lines)
        show(text=[report])
        return heatmaps.as_image_batch(tiles), float(psnr.mean()), float(ssim.mean()), report
