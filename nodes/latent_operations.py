"""Latent operations as ComfyUI has them: a LATENT_OPERATION is a function latent -> latent
([B, C, h, w]) that LatentApplyOperation applies to a LATENT and LatentApplyOperationCFG to the
guidance inside sampling (graphflow.sampling.cfg_patches.latent_operation_cfg)."""

from __future__ import annotations

from functools import partial

from graphflow.api import LATENT, MODEL, ComfyAlias, Float, Int, Node, NodeInputError, socket_type
from nodes.image_ops import unsharp_mask

LATENT_OPERATION = socket_type("LATENT_OPERATION", "#b0bec5", "A function latent -> latent (sharpen, tonemap)")


def _per_pixel_norm(latent):
    """The length of each latent pixel's channel vector, [B, 1, h, w]."""
    import torch

    return torch.linalg.vector_norm(latent, dim=1, keepdim=True)


def sharpen(latent, radius: int, sigma: float, alpha: float):
    """Unsharp mask (ImageSharpen's, unclamped) of the channel directions, each pixel's length
    kept: n = latent / |latent|, result = |latent| (n + 10 alpha (n - blur(n)))."""
    if latent.ndim != 4:  # ComfyUI's 2-D convolution fails on a video latent too
        raise ValueError(f"sharpening works on image latents [B, C, h, w], got {tuple(latent.shape)}")
    if radius >= min(latent.shape[-2:]):  # the mirrored border can't be wider than the latent
        raise ValueError(f"sharpen_radius {radius} must be smaller than the latent's width and height "
                         f"({latent.shape[-1]}x{latent.shape[-2]})")
    length = _per_pixel_norm(latent) + 1e-6
    direction = latent / length
    return length * unsharp_mask(direction, radius, sigma, alpha)


def tonemap_reinhard(latent, multiplier: float, spread: float = 5.0):
    """Reinhard tonemapping of each pixel's length L (direction kept): with the image's mean m and
    standard deviation s of L, top = (m + spread s) multiplier and L' = top (L / top) / (L / top + 1).
    spread: ComfyUI's LatentOperationTonemapReinhard takes 5, ComfyUI_experiments' tonemap 3."""
    import torch

    length = _per_pixel_norm(latent) + 1e-10
    mean = length.mean(dim=(1, 2, 3), keepdim=True)
    std = torch.std(length, dim=(1, 2, 3), keepdim=True)
    top = (std * spread + mean) * multiplier
    scaled = length * (1.0 / top)  # ComfyUI's order of operations, so the result is its to the bit
    return (latent / length) * (scaled / (scaled + 1.0) * top)


class LatentOperationSharpen(Node):
    """A sharpening LATENT_OPERATION: each latent pixel's channel direction is sharpened with an
    unsharp mask (a Gaussian over a (2 * sharpen_radius + 1) square, sigma in units of the radius as
    in ImageSharpen; strength 10 * alpha) and its length kept. The radius must be smaller than the
    latent (1/8 of the image); image latents only, as in ComfyUI."""
    category = "latent/advanced/operations"
    sharpen_radius: int = Int(9, min=1, max=31)
    sigma: float = Float(1.0, min=0.1, max=10.0, step=0.1)
    alpha: float = Float(0.1, min=0.0, max=5.0, step=0.01)
    outputs = {"operation": LATENT_OPERATION}
    comfy = ComfyAlias(("LatentOperationSharpen",))

    def run(self):
        return partial(sharpen, radius=self.sharpen_radius, sigma=self.sigma, alpha=self.alpha)


class LatentOperationTonemapReinhard(Node):
    """A tonemapping LATENT_OPERATION: each latent pixel's length is compressed with Reinhard's
    curve, L' = top (L / top) / (L / top + 1), top = (mean + 5 std of the lengths) * multiplier;
    directions are kept. Used on the guidance (LatentApplyOperationCFG) it tames high CFG."""
    category = "latent/advanced/operations"
    multiplier: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"operation": LATENT_OPERATION}
    comfy = ComfyAlias(("LatentOperationTonemapReinhard",))

    def run(self):
        return partial(tonemap_reinhard, multiplier=self.multiplier)


class LatentApplyOperation(Node):
    """Apply a LATENT_OPERATION to the latents (noise mask and batch kept)."""
    category = "latent/advanced/operations"
    samples: LATENT
    operation: LATENT_OPERATION
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentApplyOperation",))

    def run(self):
        out = dict(self.samples)
        try:
            out["samples"] = self.operation(self.samples["samples"])
        except ValueError as e:
            raise NodeInputError("operation", str(e)) from None
        return out


class LatentApplyOperationCFG(Node):
    """Apply a LATENT_OPERATION to the guidance at every sampling step: the difference between
    the positive and negative predictions goes through the operation before CFG scales it (at
    cfg 1, the positive prediction itself)."""
    category = "latent/advanced/operations"
    model: MODEL
    operation: LATENT_OPERATION
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("LatentApplyOperationCFG",))

    def run(self):
        from graphflow.sampling.cfg_patches import latent_operation_cfg

        return latent_operation_cfg(self.model, self.operation)
