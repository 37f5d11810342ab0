"""Run a map (VAE encode or decode) over overlapping tiles in any number of dimensions and blend them.

`tiled_map_nd` is the one engine: each tiled dimension (an `Axis`) says where its tiles start and
how long they are, where a tile's output lands, how long the output is and how a tile's outputs
are weighted; the blend is sum(w * tile) / sum(w), w the outer product of the axes' weights.

Two rules fill it in, both ComfyUI's:

- Image VAEs (`three_tilings`, ComfyUI's VAE.decode_tiled_ / encode_tiled_): the video rule below
  in 2-D, run three times with tiles of t x t, t/2 x 2t and 2t x t/2 (rows x columns) and averaged,
  so no seam falls in the same place in all three.
- Video (`video_axes`, ComfyUI's tiled_scale_multidim as its VAEDecodeTiled / VAEEncodeTiled run
  it for video VAEs): over frames, rows and columns, tiles start every tile - overlap positions
  (range(0, length - overlap, tile - overlap)), the last one cut short; a dimension no longer than
  its tile is one tile, and when every dimension is, the map runs once on the whole input. Each
  tile's output is feathered linearly at both ends by round(scale(overlap)) positions, weights
  (t + 1) / width for the t-th position from an end. Frames scale by the VAE's causal rule
  (F latent frames <-> t(F - 1) + 1 pixel frames, the first latent frame being one picture) while
  a tile's position scales by the plain factor t, so a tile starting at latent frame p decodes to
  frames from t * p: its first, lone frame lands on the last frame of latent p's group.
"""

import itertools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch


class Axis(NamedTuple):
    """One tiled dimension: the tiles' (start, length) in the input, the output's length, where a
    tile starting at input position p lands in the output, and its output's weights
    weights(start, length, n_out) -> [n_out]."""
    spans: list[tuple[int, int]]
    out_len: int
    out_pos: Callable[[int], int]
    weights: Callable[[int, int, int], torch.Tensor]


def tiled_map_nd(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, axes: Sequence[Axis],
                 out_channels: int) -> torch.Tensor:
    """Apply `fn` tile by tile over the last len(axes) dimensions of x [B, C, ...] and blend the
    outputs [B, out_channels, ...] (float32). One tile covering everything: fn(x) itself."""
    sizes = x.shape[2:]
    if all(a.spans == [(0, n)] for a, n in zip(axes, sizes)):
        return fn(x).float()
    out_sizes = [a.out_len for a in axes]
    out = torch.zeros(x.shape[0], out_channels, *out_sizes, device=x.device, dtype=torch.float32)
    weight = torch.zeros(1, 1, *out_sizes, device=x.device, dtype=torch.float32)
    for spans in itertools.product(*(a.spans for a in axes)):
        result = fn(x[(..., *(slice(s, s + n) for s, n in spans))]).float()
        w, region = None, []
        for d, (axis, (start, length)) in enumerate(zip(axes, spans)):
            n = result.shape[2 + d]
            wd = axis.weights(start, length, n).to(x.device)
            w = wd if w is None else w[..., None] * wd
            p = axis.out_pos(start)
            region.append(slice(p, p + n))
        out[(..., *region)] += result * w
        weight[(..., *region)] += w
    return out / weight


# -- video: ComfyUI's rule ---------------------------------------------------------------------------

def comfy_tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """ComfyUI's tile starts along one dimension: one tile when it fits, else every tile - overlap
    positions below length - overlap (the last tile is cut short, not moved back)."""
    if length <= tile:
        return [0]
    return [max(0, min(length - overlap, p)) for p in range(0, length - overlap, tile - overlap)]


def feather(n: int, width: int) -> torch.Tensor:
    """ComfyUI's tile weights [n]: (t + 1) / width at the t-th position from either end, for t <
    width (both ends, whether or not a neighbour is there; the blend divides that out); all 1 when
    the tile is no longer than `width`."""
    w = torch.ones(n)
    if 0 < width < n:
        up = (torch.arange(width, dtype=torch.float32) + 1) / width
        w[:width] *= up
        w[n - width:] *= up.flip(0)
    return w


def video_axes(sizes: Sequence[int], tiles: Sequence[int], overlaps: Sequence[int],
               out_len: Sequence[Callable[[int], float]], out_pos: Sequence[Callable[[int], float]]) -> list[Axis]:
    """ComfyUI's axes over (frames, rows, columns): per dimension the input length, tile and overlap
    (input units), the output length of an input length (e.g. 8F - 7 frames, 32h rows) and the
    output position of an input position (8p, 32p); the feather is out_len(overlap) wide."""
    axes = []
    for length, tile, overlap, size, pos in zip(sizes, tiles, overlaps, out_len, out_pos):
        spans = [(s, min(tile, length - s)) for s in comfy_tile_starts(length, tile, overlap)]
        width = round(size(overlap))
        axes.append(Axis(spans, round(size(length)), lambda p, pos=pos: round(pos(p)),
                         lambda s, n, n_out, width=width: feather(n_out, width)))
    return axes


# -- image VAEs: ComfyUI's three tilings --------------------------------------------------------------

# (rows, columns) of each tiling for a tile of t, in the order ComfyUI sums them (float sums are
# order-sensitive): decode_tiled_ adds 2t x t/2, t/2 x 2t, then t x t; encode_tiled_ the reverse
DECODE_TILINGS = ((2, 0.5), (0.5, 2), (1, 1))
ENCODE_TILINGS = ((1, 1), (0.5, 2), (2, 0.5))


class OverlapError(ValueError):
    """A tile overlap that leaves no step between tiles."""


def three_tilings(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int,
                  out_channels: int, scale: float, tilings=DECODE_TILINGS) -> torch.Tensor:
    """ComfyUI's tiled image VAE: the mean of `fn` over x [B, C, H, W] tiled three ways (tilings:
    row and column factors of `tile`, t // 2 for a half), each tiling by the video rule in 2-D
    (tiles every tile - overlap positions, feathered over round(overlap * scale) output positions).
    A tiling whose tiles all cover x runs fn once on the whole of x. Float32 out."""
    def size(n):  # the output length (or position) of an input length (or position)
        return n * scale

    total = None
    for rows, cols in tilings:
        tiles = [tile // 2 if f == 0.5 else int(tile * f) for f in (rows, cols)]
        for length, t in zip(x.shape[2:], tiles):
            if length > t and t <= overlap:  # ComfyUI's range() would fail or give no tiles
                raise OverlapError(f"the overlap ({overlap}) must be smaller than half the tile ({t}): the "
                                   f"tile is also run halved")
        out = tiled_map_nd(fn, x, video_axes(x.shape[2:], tiles, (overlap, overlap), (size, size), (size, size)),
                           out_channels)
        total = out if total is None else total + out
    return total / 3.0


def decode_image_tiled(fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, tile_size: int, overlap: int,
                       downscale: int, out_channels: int) -> torch.Tensor:
    """VAEDecodeTiled on an image VAE decoding with `fn`: the overlap cut to tile_size // 4 when larger
    (the node's rule), latent tiles of tile_size // downscale overlapping by overlap // downscale,
    three tilings averaged (three_tilings). Float32 out."""
    if tile_size < overlap * 4:
        overlap = tile_size // 4
    return three_tilings(fn, z, max(1, tile_size // downscale), overlap // downscale, out_channels, scale=downscale)


def encode_image_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile_size: int, overlap: int,
                       downscale: int, out_channels: int) -> torch.Tensor:
    """VAEEncodeTiled on an image VAE encoding with `fn`: pixel tiles of tile_size overlapping by overlap,
    three tilings in the encode's order averaged. Float32 out."""
    return three_tilings(fn, x, tile_size, overlap, out_channels, scale=1 / downscale, tilings=ENCODE_TILINGS)
