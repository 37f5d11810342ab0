"""Run a map (VAE encode or decode) over overlapping tiles and blend them without seams.

Each tile's output is weighted by a smooth ramp that rises across the overlap on every side
facing another tile (flat 1 elsewhere); the blended result is sum(w * tile) / sum(w). A tile's
edge is where its output is worst (zero padding, missing context) and there its weight goes to ~0,
so no hard edge survives.
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
    """Weights [n]: a smoothstep from ~0 to 1 over `ramp_len` at the start (if rise) and back at the end (if fall)."""
    w = torch.ones(n, device=device)
    ramp_len = min(ramp_len, n)
    if ramp_len > 0:
        t = (torch.arange(ramp_len, device=device, dtype=torch.float32) + 0.5) / ramp_len
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
    ramp_len = max(1, round(overlap * scale)) if overlap else 0
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
