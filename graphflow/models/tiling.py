"""Run a map (VAE encode or decode) over overlapping tiles and blend them without seams.

Each tile's output is weighted by a ramp across the overlap on every side that faces another
tile (flat 1 elsewhere); the blend is sum(w * tile) / sum(w). A tile's output is worst near its
edge (zero padding, missing context), so the ramp gives the outer quarter of the overlap weight 0
and rises by a smoothstep over the middle half; two facing ramps sum to exactly 1. A map whose
receptive field is within a quarter of the overlap is therefore reproduced exactly, and a real
VAE's far weaker long-range effects fade in smoothly instead of cutting a seam.
"""

from collections.abc import Callable

import torch


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length), stepping tile - overlap;
    the last tile is flush with the end. Offsets are multiples of `align`."""
    if length <= tile:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, stride))
    starts.append((length - tile) // align * align)
    return sorted(set(starts))


def ramp(n: int, ramp_len: int, rise: bool, fall: bool, device=None) -> torch.Tensor:
    """Weights [n]: 0 over the first quarter of `ramp_len`, a smoothstep to 1 over the middle half
    (at the start if rise, mirrored at the end if fall), 1 elsewhere."""
    w = torch.ones(n, device=device)
    ramp_len = min(ramp_len, n)
    if ramp_len > 0:
        margin = ramp_len // 4
        t = ((torch.arange(ramp_len, device=device, dtype=torch.float32) - margin + 0.5)
             / (ramp_len - 2 * margin)).clamp(0, 1)
        up = t * t * (3 - 2 * t)
        if rise:
            w[:ramp_len] = torch.minimum(w[:ramp_len], up)
        if fall:
            w[n - ramp_len:] = torch.minimum(w[n - ramp_len:], up.flip(0))
    return w


def tiled_map(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int,
              out_channels: int, scale: float, align: int = 1) -> torch.Tensor:
    """Apply `fn` ([B, C, h, w] -> [B, out_channels, h*scale, w*scale]) tile by tile over x [B, C, H, W].
    `tile`, `overlap` and `align` are in x's units; tiles start on multiples of `align`
    (the encoder needs pixel tiles on multiples of its downscale factor)."""
    b, _, height, width = x.shape
    tile = max(align, tile // align * align)
    overlap = max(0, min(overlap, tile // 2))
    out_h, out_w = round(height * scale), round(width * scale)
    ramp_len = int(overlap * scale)  # never more than the true overlap, which is >= overlap
    out = torch.zeros(b, out_channels, out_h, out_w, device=x.device, dtype=torch.float32)
    weight = torch.zeros(1, 1, out_h, out_w, device=x.device, dtype=torch.float32)
    ys, xs = tile_starts(height, tile, overlap, align), tile_starts(width, tile, overlap, align)
    for y in ys:
        for x0 in xs:
            th, tw = min(tile, height - y), min(tile, width - x0)
            result = fn(x[:, :, y:y + th, x0:x0 + tw]).float()
            oy, ox, oh, ow = round(y * scale), round(x0 * scale), result.shape[2], result.shape[3]
            wy = ramp(oh, ramp_len, rise=y > 0, fall=y + th < height, device=x.device)
            wx = ramp(ow, ramp_len, rise=x0 > 0, fall=x0 + tw < width, device=x.device)
            w = wy[:, None] * wx[None, :]
            out[:, :, oy:oy + oh, ox:ox + ow] += result * w
            weight[:, :, oy:oy + oh, ox:ox + ow] += w
    return (out / weight).to(x.dtype)
