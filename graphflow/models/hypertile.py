"""HyperTile (tfernd/HyperTile), as ComfyUI's HyperTile node: the self-attention of the UNet's
high-resolution transformer blocks runs on tiles of the token grid instead of the whole image,
so its cost grows with the image's area instead of its square (big images get much faster; the
cross-attention, convolutions and deeper levels are untouched).

ComfyUI's rules, followed exactly so that its pictures come out:
  - which blocks: those whose token count is (H / 2^i) (W / 2^i) for some i <= max_depth, H x W
    being the latent the UNet is called on (so a level whose grid was rounded up from odd sizes
    is left alone, and SD1's middle block counts as level 3);
  - the grid: the tokens are read as round(sqrt(N W / H)) rows of round(sqrt(N H / W)) (W_i rows
    of H_i: the true grid transposed when the latent is not square, as ComfyUI's aspect ratio
    reads it), tiled into nh x nw tiles, nh from the first length and nw from the second;
  - the tile count along a length: length // d for one of the swap_size smallest divisors d
    >= tile_size / 8 (x 2^i with scale_depth) of the length (the length itself when the tile is
    larger); when there are several candidates one is drawn, uniformly among all but the last,
    so swap_size 2 (the default) always takes the smallest tile;
  - only the queries are tiled: tile k attends to the k-th contiguous run of N / (nh nw) tokens
    of the untiled sequence as keys and values (ComfyUI's attention splits the untiled keys by
    the queries' batch), and its output goes back to the tile's place.
ComfyUI draws a candidate from torch's global random state; here the draw is seeded by the block
and its grid size (a run is reproducible and needs no host-device sync), which gives ComfyUI's
choice whenever there is one (swap_size 1 or 2, or a single candidate).

The patches go on shallow copies of the transformer blocks (`self_attention_patches`), so the
input MODEL and its weights are shared and unchanged.
"""

import math
import random

import torch

from .diffusion_model import DiffusionModel
from .lora import copied_modules
from .unet import latent_size, transformer_block_levels


def tile_counts(length: int, min_tile: int, swap_size: int, rng: random.Random) -> int:
    """How many tiles to cut `length` tokens into: length // d for one of the swap_size smallest
    divisors d >= min_tile of length (length itself when min_tile exceeds it)."""
    min_tile = min(min_tile, length)
    divisors = [d for d in range(min_tile, length + 1) if length % d == 0][:swap_size]
    return length // divisors[rng.randrange(max(1, len(divisors) - 1))]


def to_tiles(tokens: torch.Tensor, size: tuple[int, int], nh: int, nw: int) -> torch.Tensor:
    """[B, h*w, C] in row-major order -> [B*nh*nw, (h/nh)*(w/nw), C], tile-major (row of tiles,
    then column), each tile's tokens row-major."""
    b, _, c = tokens.shape
    h, w = size
    t = tokens.reshape(b, nh, h // nh, nw, w // nw, c).permute(0, 1, 3, 2, 4, 5)
    return t.reshape(b * nh * nw, (h // nh) * (w // nw), c)


def from_tiles(tiles: torch.Tensor, size: tuple[int, int], nh: int, nw: int) -> torch.Tensor:
    """The inverse of to_tiles."""
    h, w = size
    c = tiles.shape[-1]
    t = tiles.reshape(-1, nh, nw, h // nh, w // nw, c).permute(0, 1, 3, 2, 4, 5)
    return t.reshape(-1, h * w, c)


def tiled_grid(tokens: int, latent_hw: tuple[int, int], max_depth: int) -> tuple[int, int, int] | None:
    """(rows, cols, i) as ComfyUI reads a block of `tokens` when the latent is latent_hw: the
    block is tiled when tokens == (H / 2^i)(W / 2^i) for an i <= max_depth (the first such i); its
    tokens then form rows x cols = round(sqrt(N W / H)) x round(sqrt(N H / W)). None: untiled."""
    h, w = latent_hw
    sizes = [(h / 2 ** i) * (w / 2 ** i) for i in range(max_depth + 1)]
    if tokens not in sizes:
        return None
    rows, cols = round(math.sqrt(tokens * w / h)), round(math.sqrt(tokens * h / w))
    if rows * cols != tokens:  # ComfyUI's regrouping would fail here
        return None
    return rows, cols, sizes.index(tokens)


def hypertile_patch(tile_size: int, swap_size: int, max_depth: int, scale_depth: bool, salt: int):
    """A BasicTransformerBlock.self_attention_patches entry."""
    latent_tile = max(32, tile_size) // 8

    def patch(queries: torch.Tensor, keys: torch.Tensor, size: tuple[int, int] | None):
        latent_hw = latent_size.get()
        grid = None if latent_hw is None else tiled_grid(queries.shape[1], latent_hw, max_depth)
        if grid is None:
            return queries, keys, size, _same
        rows, cols, depth = grid
        min_tile = latent_tile * (2 ** depth if scale_depth else 1)
        rng = random.Random(hash((salt, rows, cols)))
        nh, nw = tile_counts(rows, min_tile, swap_size, rng), tile_counts(cols, min_tile, swap_size, rng)
        if nh * nw == 1:
            return queries, keys, size, _same
        tiled = to_tiles(queries, (rows, cols), nh, nw)
        restore = lambda out: from_tiles(out, (rows, cols), nh, nw)  # noqa: E731
        return tiled, keys, None, restore  # the keys stay whole: the attention splits them by the tiles' batch

    return patch


def _same(out: torch.Tensor) -> torch.Tensor:
    return out


def apply_hypertile(model: DiffusionModel, tile_size: int = 256, swap_size: int = 2, max_depth: int = 0,
                    scale_depth: bool = False) -> DiffusionModel:
    paths = list(transformer_block_levels(model.unet))  # every block: the token count picks the tiled ones
    unet, blocks = copied_modules(model.unet, paths)
    for salt, block in enumerate(blocks.values()):
        block.self_attention_patches = (*block.self_attention_patches,
                                        hypertile_patch(tile_size, swap_size, max_depth, scale_depth, salt))
    return model.with_unet(unet)
