"""Canny edge detection in plain torch, the algorithm of kornia.filters.canny (which ComfyUI's
Canny node calls), so no extra dependency is needed:

  grey = 0.299 R + 0.587 G + 0.114 B; blurred by a 5x5 Gaussian (sigma 1, reflected border);
  gx, gy = the unnormalised Sobel gradient (replicated border); magnitude = sqrt(gx^2 + gy^2 + eps);
  non-maximum suppression along the gradient direction rounded to 45 degrees (ties kept only
  against the right / lower neighbour; the image border counts as a flat pixel);
  weak > low, strong > high; hysteresis keeps weak pixels 8-connected to a strong one.
The thresholds are in units of that magnitude: a unit step edge reaches about 2.6 after the blur.
"""

import math

import torch
import torch.nn.functional as F

# (dy, dx) of the neighbour in each of the 8 directions of angle k * 45 degrees (y down).
_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))


def _gaussian_blur(x: torch.Tensor, size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    t = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
    k = torch.exp(-t * t / (2 * sigma * sigma))
    k = k / k.sum()
    x = F.pad(x, (size // 2,) * 4, mode="reflect")
    x = F.conv2d(x, k.reshape(1, 1, 1, size))
    return F.conv2d(x, k.reshape(1, 1, size, 1))


def _sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(x, kx[None, None]), F.conv2d(x, kx.T[None, None])


def canny(image: torch.Tensor, low: float, high: float, eps: float = 1e-6) -> torch.Tensor:
    """Edges (0 or 1) [B, 1, H, W] of an NCHW image (1 or 3 channels) in 0..1."""
    x = image.float()
    if x.shape[1] == 3:
        x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    elif x.shape[1] != 1:
        raise ValueError(f"canny takes 1 or 3 channels, got {x.shape[1]}")
    gx, gy = _sobel(_gaussian_blur(x))
    padded = torch.sqrt(F.pad(gx, (1, 1, 1, 1)) ** 2 + F.pad(gy, (1, 1, 1, 1)) ** 2 + eps)
    H, W = gx.shape[-2:]
    magnitude = padded[..., 1:1 + H, 1:1 + W]
    neighbours = torch.stack([padded[..., 1 + dy:1 + dy + H, 1 + dx:1 + dx + W] for dy, dx in _DIRECTIONS])
    direction = (torch.nan_to_num(torch.atan2(gy, gx)) * (4 / math.pi)).round().long()
    forward, backward = direction % 8, (direction + 4) % 8

    def beats(d):
        other = neighbours.gather(0, d[None])[0]
        tie_ok = (d == 0) | (d == 2)
        return (magnitude > other) | (tie_ok & (magnitude == other))

    is_max = beats(forward) & beats(backward) & (magnitude > padded[..., :1, :1])
    magnitude = magnitude * is_max
    weak = magnitude > low
    strong = magnitude > high
    while True:
        grown = strong | (weak & (F.max_pool2d(strong.float(), 3, stride=1, padding=1) > 0))
        if torch.equal(grown, strong):
            return strong.float()
        strong = grown
