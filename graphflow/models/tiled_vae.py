"""Tiled VAE (pkuliyi2015's multidiffusion-upscaler, as shiimizu's ComfyUI-TiledDiffusion carries it:
tiled_vae.py at 1169db008422): the KL autoencoder's encoder or decoder run tile by tile, its layers
as a list of steps; at each GroupNorm every tile stops until all tiles' statistics are gathered,
so the tiles are normalised as one picture.

The grid (the pack's split_tiles): tiles of at most `tile` input pixels (latent pixels for the
decoder, picture pixels for the encoder) padded by `pad` (11 / 32) on the sides that are not the
picture's edge; n = max(1, ceil((side - 2 pad) / tile)) tiles a side of ceil((side - 2 pad) / n),
rounded up to a multiple of 32, 16, 8, 4 or 2 (the first that stays within tile), the k-th core
starting at pad + k * size; a core within pad of the picture's edge reaches out to it. Each tile
keeps its core's output.

Statistics: each GroupNorm's mean and variance per picture and group over the tiles' cores (each
pixel once; the variance pooled with the spread of the tiles' means). Fast mode takes them from
one run on the picture scaled to a tile (nearest-exact, then given the picture's per-channel mean
and standard deviation back and clamped to its range); with color_fix (encoder) only the
GroupNorms before the first downsampling take them from there, the rest are gathered."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .vae import AutoencoderKL

PAD_DECODER, PAD_ENCODER = 11, 32  # input pixels of context around each tile (the pack's)


# -- the grid ------------------------------------------------------------------------------------

def best_tile_size(lower: int, upper: int) -> int:
    """lower rounded up to a multiple of 32, 16, 8, 4 or 2: the first that stays within upper."""
    for divider in (32, 16, 8, 4, 2):
        if lower % divider == 0:
            return lower
        if lower - lower % divider + divider <= upper:
            return lower - lower % divider + divider
    return lower


def _side(size: int, tile: int, pad: int) -> list[tuple[int, int, int, int]]:
    """(padded start, core start, core end, padded end) of each tile along one side."""
    count = max(math.ceil((size - 2 * pad) / tile), 1)
    step = best_tile_size(math.ceil((size - 2 * pad) / count), tile)
    out = []
    for k in range(count):
        start, end = pad + k * step, min(pad + (k + 1) * step, size)
        core = (start if start > pad else 0, end if end < size - pad else size)
        out.append((max(0, start - pad), *core, min(size, end + pad)))
    return out


def split_tiles(height: int, width: int, tile: int, pad: int) -> list[tuple[tuple, tuple]]:
    """The tiles over a height x width input, rows first: ((top, bottom, left, right) padded,
    (top, bottom, left, right) core), in input pixels."""
    return [((t0, t1, l0, l1), (c0, c1, d0, d1))
            for t0, c0, c1, t1 in _side(height, tile, pad) for l0, d0, d1, l1 in _side(width, tile, pad)]


# -- the steps -----------------------------------------------------------------------------------

@dataclass
class Step:
    """One step of a tile's run: "apply" fn; "norm" (a GroupNorm: a meeting point of the tiles);
    "keep" fn(x) for a later "add"; "add" the last kept; "down" a downsampling (color_fix's stop)."""
    kind: str
    fn: object = None


def _resnet(block) -> list[Step]:
    return [Step("keep", block.nin_shortcut), Step("norm", block.norm1), Step("apply", F.silu),
            Step("apply", block.conv1), Step("norm", block.norm2), Step("apply", F.silu),
            Step("apply", block.conv2), Step("add")]


def _mid(mid) -> list[Step]:
    attn = [] if isinstance(mid.attn_1, torch.nn.Identity) else \
        [Step("keep", torch.nn.Identity()), Step("norm", mid.attn_1.norm), Step("apply", mid.attn_1.attend),
         Step("add")]
    return [*_resnet(mid.block_1), *attn, *_resnet(mid.block_2)]


def encoder_steps(vae: AutoencoderKL) -> list[Step]:
    net, steps = vae.encoder, [Step("apply", vae.encoder.conv_in)]
    for stage in net.down:
        for block in stage.block:
            steps += _resnet(block)
        if hasattr(stage, "downsample"):
            steps.append(Step("down", stage.downsample))
    steps += [*_mid(net.mid), Step("norm", net.norm_out), Step("apply", F.silu), Step("apply", net.conv_out)]
    if vae.config.use_quant_conv:
        steps.append(Step("apply", vae.quant_conv))
    return steps


def decoder_steps(vae: AutoencoderKL) -> list[Step]:
    net, steps = vae.decoder, []
    if vae.config.use_quant_conv:
        steps.append(Step("apply", vae.post_quant_conv))
    steps += [Step("apply", net.conv_in), *_mid(net.mid)]
    for stage in reversed(net.up):
        for block in stage.block:
            steps += _resnet(block)
        if hasattr(stage, "upsample"):
            steps.append(Step("apply", stage.upsample))
    return steps + [Step("norm", net.norm_out), Step("apply", F.silu), Step("apply", net.conv_out)]


# -- GroupNorm with given statistics -------------------------------------------------------------

def group_stats(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(variance, mean) per picture and group [B, G], float32, biased as GroupNorm's."""
    var, mean = torch.var_mean(x.float().reshape(x.shape[0], groups, -1), dim=2, unbiased=False)
    return var, mean


def pooled(parts: list[tuple[int, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The (variance, mean) of the union of parts (count, variance, mean)."""
    total = sum(n for n, _, _ in parts)
    mean = sum(n * m for n, _, m in parts) / total
    var = sum(n * (v + (m - mean) ** 2) for n, v, m in parts) / total
    return var, mean


def group_norm(x: torch.Tensor, norm, var: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    b, c = x.shape[:2]
    g = norm.num_groups
    scale = torch.rsqrt(var.to(x.device) + norm.eps)
    shape = (b, g, 1, 1, 1)
    h = (x.float().reshape(b, g, c // g, *x.shape[2:]) - mean.to(x.device).reshape(shape)) * scale.reshape(shape)
    h = h.reshape(x.shape).to(x.dtype)
    if norm.affine:
        h = h * norm.weight.reshape(1, -1, 1, 1) + norm.bias.reshape(1, -1, 1, 1)
    return h


# -- running the tiles ---------------------------------------------------------------------------

@dataclass
class TileState:
    x: torch.Tensor
    padded: tuple  # (top, bottom, left, right) input pixels
    core: tuple
    kept: list = field(default_factory=list)

    def core_of(self, h: torch.Tensor) -> torch.Tensor:
        """h's part over the tile's core (h at any scale of the tile's input)."""
        t0, t1, l0, l1 = self.padded
        c0, c1, d0, d1 = self.core
        rows, cols = h.shape[2] / (t1 - t0), h.shape[3] / (l1 - l0)
        return h[:, :, round((c0 - t0) * rows):round((c1 - t0) * rows), round((d0 - l0) * cols):round((d1 - l0) * cols)]

    def park(self, device, dtype=None):
        self.x = self.x.to(device, dtype)
        self.kept = [k.to(device) for k in self.kept]


def run_steps(steps: list[Step], state: TileState, start: int, fixed: dict) -> int:
    """Run state through steps from `start` up to the first GroupNorm without statistics in
    `fixed` (step index -> (variance, mean)); its index, or len(steps) at the end."""
    x = state.x
    for i in range(start, len(steps)):
        step = steps[i]
        if step.kind == "norm":
            if i not in fixed:
                state.x = x
                return i
            x = group_norm(x, step.fn, *fixed[i])
        elif step.kind == "keep":
            state.kept.append(step.fn(x))
        elif step.kind == "add":
            x = x + state.kept.pop()
        else:
            x = step.fn(x)
    state.x = x
    return len(steps)


def estimate_stats(steps: list[Step], x: torch.Tensor, color_fix: bool) -> dict:
    """Fast mode's statistics: every GroupNorm's, run on x (the picture scaled to a tile) as a
    whole; with color_fix only those before the first downsampling."""
    stop = next((i for i, s in enumerate(steps) if s.kind == "down"), len(steps)) if color_fix else len(steps)
    last = max((i for i, s in enumerate(steps[:stop]) if s.kind == "norm"), default=-1)
    fixed, state, at = {}, TileState(x, (0, 1, 0, 1), (0, 1, 0, 1)), 0
    while at < last:  # as the pack, up to the last GroupNorm to estimate
        at = run_steps(steps[:stop], state, at, fixed)
        fixed[at] = group_stats(state.x, steps[at].fn.num_groups)
    return fixed


def fast_sample(z: torch.Tensor, tile: int) -> torch.Tensor:
    """z scaled so its longer side is `tile` (nearest-exact), then given z's per-channel mean and
    standard deviation back and clamped to its range, as the pack; a channel flat on the scaled
    picture (a plain canvas, an empty latent) is only moved to z's mean (the pack divides 0 by 0,
    and the NaN spreads to every statistic)."""
    scale = tile / max(z.shape[2], z.shape[3])
    if min(z.shape[2], z.shape[3]) * scale < 1:  # a thin strip: the pack's interpolate fails there
        small = F.interpolate(z, size=[max(1, int(s * scale)) for s in z.shape[2:]], mode="nearest-exact")
    else:
        small = F.interpolate(z, scale_factor=scale, mode="nearest-exact")
    std_old, mean_old = torch.std_mean(z, dim=[0, 2, 3], keepdim=True)
    std_new, mean_new = torch.std_mean(small, dim=[0, 2, 3], keepdim=True)
    flat = ~(std_new > 0)  # 0, or NaN for a single value
    small = (small - mean_new) / std_new.masked_fill(flat, 1.0) * std_old.masked_fill(flat, 1.0) + mean_old
    return small.clamp(min=z.min(), max=z.max())


def tiled_run(steps: list[Step], z: torch.Tensor, tile: int, pad: int, scale: float, out_channels: int,
              device, dtype, fast: bool = False, color_fix: bool = False, on_tile=None) -> torch.Tensor:
    """Run z [B, C, H, W] (CPU float32) through steps in tiles; the output [B, out_channels, H *
    scale, W * scale] on the CPU, float32. on_tile(done, total) after each tile's stretch of steps
    (progress, interrupts)."""
    b, _, height, width = z.shape
    fixed = {}
    if fast:
        fixed = estimate_stats(steps, fast_sample(z, tile).to(device, dtype), color_fix)
    states = [TileState(z[:, :, t0:t1, l0:l1], padded, core)
              for padded, core in split_tiles(height, width, tile, pad) for t0, t1, l0, l1 in (padded,)]
    stretches = 1 + sum(1 for i, s in enumerate(steps) if s.kind == "norm" and i not in fixed)
    out = torch.zeros(b, out_channels, int(height * scale), int(width * scale))
    at, done = 0, 0
    while True:
        parts, next_at = [], len(steps)
        for state in states:
            state.park(device, dtype)
            next_at = run_steps(steps, state, at, fixed)
            done += 1
            if next_at < len(steps):  # stopped at a GroupNorm: its statistics over the core, the tile parked
                groups = steps[next_at].fn.num_groups
                core = state.core_of(state.x)
                parts.append((core[0].numel() // groups, *group_stats(core, groups)))
                state.park("cpu")
            else:
                c0, c1, d0, d1 = state.core
                out[:, :, int(c0 * scale):int(c1 * scale), int(d0 * scale):int(d1 * scale)] = \
                    state.core_of(state.x).float().cpu()
                state.x, state.kept = None, []
            if on_tile is not None:
                on_tile(done, stretches * len(states))
        if next_at >= len(steps):
            return out
        fixed[next_at] = pooled(parts)
        at = next_at
