"""Hands-on latent edits: perturb a region (zero, noise, replace) and interpolate two latents.

Noise is scaled by the latent's own per-channel std, so `noise_scale` 1 means "as large as the
latent's typical values", whatever the VAE's raw range is.
"""

import torch

from graphflow.choices import INTERPOLATIONS, PERTURBATIONS



def clip_region(h: int, w: int, y: int, x: int, height: int, width: int) -> tuple[int, int, int, int]:
    """The rows y0:y1 and columns x0:x1 of a region clipped to an h x w latent."""
    y0, x0 = max(0, y), max(0, x)
    y1, x1 = min(h, y + height), min(w, x + width)
    return y0, y1, x0, x1


def channel_std(z: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel std [B, C, 1, 1] of a latent [B, C, h, w]."""
    return z.float().flatten(2).std(dim=2, unbiased=False)[..., None, None].to(z.dtype)


def perturb_region(z: torch.Tensor, y0: int, y1: int, x0: int, x1: int, mode: str, *, noise_scale: float = 1.0,
                   generator: torch.Generator | None = None, source: torch.Tensor | None = None) -> torch.Tensor:
    """A copy of the latent [B, C, h, w] with rows y0:y1, columns x0:x1 changed in every channel:
    set to 0 ("zero"), plus noise of noise_scale x the channel's std ("noise"), or taken from
    `source` ("replace"; batch 1 or B, same channels and size)."""
    out = z.clone()
    if mode == "zero":
        out[:, :, y0:y1, x0:x1] = 0
    elif mode == "noise":
        patch = out[:, :, y0:y1, x0:x1]
        noise = torch.randn(patch.shape, generator=generator, dtype=torch.float32).to(z.dtype)
        out[:, :, y0:y1, x0:x1] = patch + noise_scale * channel_std(z) * noise
    elif mode == "replace":
        if source is None:
            raise ValueError("mode 'replace' needs a source latent")
        if source.shape[1:] != z.shape[1:] or source.shape[0] not in (1, z.shape[0]):
            raise ValueError(f"source latent {tuple(source.shape)} doesn't match {tuple(z.shape)}")
        out[:, :, y0:y1, x0:x1] = source[:, :, y0:y1, x0:x1].to(z.dtype)
    else:
        raise ValueError(f"unknown perturbation {mode!r}; expected one of {', '.join(PERTURBATIONS)}")
    return out


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return a + t * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation per batch item, on the flattened latents: keeps the norm of
    Gaussian-like latents from collapsing midway as lerp does. Near-parallel pairs fall back to lerp."""
    a, b = torch.broadcast_tensors(a, b)
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(eps)
    omega = cos.clamp(-1, 1).acos()
    sin = omega.sin()
    parallel = sin.abs() < 1e-4
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    wa = torch.where(parallel, 1 - t, torch.sin((1 - t) * omega) / safe)
    wb = torch.where(parallel, torch.full_like(sin, t), torch.sin(t * omega) / safe)
    out = wa[:, None] * fa + wb[:, None] * fb
    return out.reshape(a.shape).to(a.dtype)


def interpolate(a: torch.Tensor, b: torch.Tensor, t: float, method: str = "lerp") -> torch.Tensor:
    if method == "lerp":
        return lerp(a, b, t)
    if method == "slerp":
        return slerp(a, b, t)
    raise ValueError(f"unknown interpolation {method!r}; expected one of {', '.join(INTERPOLATIONS)}")
