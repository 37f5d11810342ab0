"""HyperTile (tfernd/HyperTile), as ComfyUI's HyperTile node: the self-attention of the UNet's
high-resolution transformer blocks runs on tiles of the token grid instead of the whole image,
so its cost grows with the image's area instead of its square (big images get much faster; the
cross-attention, convolutions and deeper levels are untouched).

A block at resolution level `level` (0: the latent's size, k: 1/2^k of it) is tiled when level
<= max_depth. Along each axis of its h x w grid the tile length is one of the `swap_size`
smallest divisors of the length that are at least tile_size / 8 latent pixels (times 2^level with
scale_depth); the grid is cut into the tiles, each attends within itself (queries, keys and
values from the tile: the original HyperTile; ComfyUI's patch tiles only the queries and reads
keys and values from rows of the untiled grid), and the tiles are put back in place.

Which candidate is used is drawn at random, as ComfyUI (and the original) draw it: uniformly
among all candidates but the last when there are several, so swap_size 2 (the default) always
takes the smallest tile length. The draw is seeded by the block and its grid size, so a run is
reproducible and needs no host-device sync.

The patches go on shallow copies of the transformer blocks (`self_attention_patches`), so the
input MODEL and its weights are shared and unchanged.
"""

import random

import torch

from .diffusion_model import DiffusionModel
from .lora import copied_modules
from .unet import transformer_block_levels


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


def hypertile_patch(level: int, tile_size: int, swap_size: int, scale_depth: bool, salt: int):
    """A BasicTransformerBlock.self_attention_patches entry for a block at `level`."""
    latent_tile = max(32, tile_size) // 8
    min_tile = latent_tile * (2 ** level if scale_depth else 1)

    def patch(tokens: torch.Tensor, size: tuple[int, int] | None):
        if size is None:
            return tokens, size, _same
        h, w = size
        rng = random.Random(hash((salt, h, w)))
        nh, nw = tile_counts(h, min_tile, swap_size, rng), tile_counts(w, min_tile, swap_size, rng)
        if nh * nw == 1:
            return tokens, size, _same
        return to_tiles(tokens, size, nh, nw), (h // nh, w // nw), lambda out: from_tiles(out, size, nh, nw)

    return patch


def _same(out: torch.Tensor) -> torch.Tensor:
    return out


def apply_hypertile(model: DiffusionModel, tile_size: int = 256, swap_size: int = 2, max_depth: int = 0,
                    scale_depth: bool = False) -> DiffusionModel:
    levels = {path: level for path, level in transformer_block_levels(model.unet).items() if level <= max_depth}
    unet, blocks = copied_modules(model.unet, levels)
    for salt, (path, block) in enumerate(blocks.items()):
        block.self_attention_patches = (*block.self_attention_patches,
                                        hypertile_patch(levels[path], tile_size, swap_size, scale_depth, salt))
    return model.with_unet(unet)
