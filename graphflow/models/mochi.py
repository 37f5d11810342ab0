"""Mochi 1 (Genmo): the asymmetric MM-DiT video transformer, in Genmo's original key layout.

A latent video [B, 12, F, H, W] (the Mochi VAE's: 6x fewer frames after the first, 8x smaller)
is cut into 2x2 patches per frame (`x_embedder`, a per-frame convolution), F*H/2*W/2 visual
tokens of width 3072; the T5-XXL prompt tokens are projected to a narrower text stream (1536,
`t5_yproj`). Each of the 48 blocks runs ONE attention over both streams (visual queries, keys
and values from the visual width, text ones projected from the text width into the same 24
heads), then a SwiGLU MLP per stream; everything is modulated by c = timestep embedding +
an attention pool of the prompt tokens (`t5_y_embedder`). Norms are RMS without weights
(modulated: x * (1 + scale); residuals: x + rms(out) * tanh(gate)); queries and keys are
RMS-normed per head with weights; visual queries and keys are rotated by learned frequencies
(`pos_frequencies` [3, heads, head_dim/2]) of each token's (frame, row, column), the rows and
columns centred and scaled to an area of 192x192 patches. The last block updates no text.

Parameter names are Genmo's (`blocks.N.attn.qkv_x`, `blocks.N.mod_y`, `final_layer.mod`, ...)
without `model.diffusion_model.`, as ComfyUI loads them. Called as ComfyUI's model:
sigma [B] in [0, 1] (rectified flow, 1 = noise), the network's timestep is 1000 (1 - sigma), and
its output is negated so that it is the velocity noise - x0 the flow sampler expects.
A text attention mask [B, L] (1 keep, 0 padding; ComfyUI passes T5's with its tokens padded to
256) keeps the padding out of the pool and of the joint attention; without one every given
token counts (graphflow's T5 gives the prompt's tokens unpadded: the same numbers).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .cast_layers import Conv2d, Linear
from .configs import MochiConfig, mochi_config_from_state_dict  # noqa: F401 (configs.py: torch-free)
from .mmdit import TimestepEmbedder

TARGET_AREA = 192 * 192  # the patch grid the row / column positions are scaled to
EPS = 1e-6  # the weightless RMS norms'


def rms_norm(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x)


def modulated(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return rms_norm(x) * (1 + scale[:, None])


def gated_residual(x: torch.Tensor, out: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    return x + rms_norm(out) * torch.tanh(gate)[:, None]


def positions(frames: int, rows: int, columns: int, device) -> torch.Tensor:
    """[F*H*W, 3] (frame, row, column) of each patch: frames 0, 1, ...; rows and columns the centres
    of equal cells spanning a grid scaled to TARGET_AREA, centred on 0."""
    scale = (TARGET_AREA / (rows * columns)) ** 0.5

    def centres(n):
        edges = torch.linspace(-n * scale / 2, n * scale / 2, n + 1, device=device)
        return (edges[:-1] + edges[1:]) / 2

    grid = torch.meshgrid(torch.arange(frames, device=device, dtype=torch.float32), centres(rows), centres(columns),
                          indexing="ij")
    return torch.stack(grid, dim=-1).reshape(-1, 3)


def rope(freqs: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Learned frequencies [3, heads, half] at positions [N, 3] -> (cos, sin) [N, heads, half]."""
    angles = torch.einsum("nd,dhf->nhf", pos.float(), freqs.float())
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, pe: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x [B, N, heads, head_dim], channels (2i, 2i + 1) rotated as a pair."""
    cos, sin = pe
    even, odd = x[..., 0::2].float(), x[..., 1::2].float()
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2).type_as(x)


class HeadNorm(nn.Module):
    """RMS norm over each head's channels, with a weight (eps 1e-5)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, 1e-5) * self.weight.to(x.dtype)


class JointAttention(nn.Module):
    """One attention over the visual tokens and the text tokens; each stream its own projections."""

    def __init__(self, dim_x: int, dim_y: int, heads: int, update_y: bool):
        super().__init__()
        self.heads, head_dim = heads, dim_x // heads
        self.qkv_x = Linear(dim_x, 3 * dim_x, bias=False)
        self.qkv_y = Linear(dim_y, 3 * dim_x, bias=False)
        self.q_norm_x, self.k_norm_x = HeadNorm(head_dim), HeadNorm(head_dim)
        self.q_norm_y, self.k_norm_y = HeadNorm(head_dim), HeadNorm(head_dim)
        self.proj_x = Linear(dim_x, dim_x)
        self.proj_y = Linear(dim_x, dim_y) if update_y else None

    def forward(self, x, y, pe, mask):
        qx, kx, vx = self.qkv_x(x).unflatten(-1, (3, self.heads, -1)).unbind(2)
        qy, ky, vy = self.qkv_y(y).unflatten(-1, (3, self.heads, -1)).unbind(2)
        qx, kx = apply_rope(self.q_norm_x(qx), pe), apply_rope(self.k_norm_x(kx), pe)
        qy, ky = self.q_norm_y(qy), self.k_norm_y(ky)
        q, k, v = (torch.cat(pair, dim=1).transpose(1, 2) for pair in ((qx, qy), (kx, ky), (vx, vy)))
        out = attention(q, k, v, mask).transpose(1, 2).flatten(2)
        ox, oy = out.split([x.shape[1], y.shape[1]], dim=1)
        return self.proj_x(ox), None if self.proj_y is None else self.proj_y(oy)


class SwiGLU(nn.Module):
    """w2(silu(a) * b), (a, b) the two halves of w1's output (Genmo's order)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = Linear(dim, 2 * hidden, bias=False)
        self.w2 = Linear(hidden, dim, bias=False)

    def forward(self, x):
        a, b = self.w1(x).chunk(2, dim=-1)
        return self.w2(F.silu(a) * b)


class Block(nn.Module):
    def __init__(self, cfg: MochiConfig, last: bool):
        super().__init__()
        dx, dy = cfg.hidden_size, cfg.hidden_size_y
        self.update_y = not last
        self.mod_x = Linear(dx, 4 * dx)
        self.mod_y = Linear(dx, 4 * dy if self.update_y else dy)  # the last block: the text's attention scale only
        self.attn = JointAttention(dx, dy, cfg.num_heads, self.update_y)
        self.mlp_x = SwiGLU(dx, cfg.mlp_hidden_x)
        self.mlp_y = SwiGLU(dy, cfg.mlp_hidden_y) if self.update_y else None

    def forward(self, x, y, c, pe, mask):
        c = F.silu(c)
        scale_x, gate_x, scale_mlp_x, gate_mlp_x = self.mod_x(c).chunk(4, dim=1)
        mod_y = self.mod_y(c)
        scale_y = mod_y.chunk(4, dim=1)[0] if self.update_y else mod_y
        ax, ay = self.attn(modulated(x, scale_x), modulated(y, scale_y), pe, mask)
        x = gated_residual(x, ax, gate_x)
        x = gated_residual(x, self.mlp_x(modulated(x, scale_mlp_x)), gate_mlp_x)
        if self.update_y:
            _, gate_y, scale_mlp_y, gate_mlp_y = mod_y.chunk(4, dim=1)
            y = gated_residual(y, ay, gate_y)
            y = gated_residual(y, self.mlp_y(modulated(y, scale_mlp_y)), gate_mlp_y)
        return x, y


class AttentionPool(nn.Module):
    """The prompt as one vector: the mean of its (unmasked) tokens queries them all, itself included."""

    def __init__(self, dim: int, out_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_kv = Linear(dim, 2 * dim)
        self.to_q = Linear(dim, dim)
        self.to_out = Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x [B, L, D], keep [B, L] bool -> [B, out_dim]."""
        weights = keep[..., None].to(x.dtype)
        pooled = (x * weights / weights.sum(1, keepdim=True).clamp(min=1)).sum(1, keepdim=True)
        x = torch.cat([pooled, x], dim=1)
        k, v = self.to_kv(x).unflatten(-1, (2, self.heads, -1)).transpose(1, 3).unbind(2)  # [B, heads, 1 + L, d]
        q = self.to_q(pooled).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # [B, heads, 1, d]
        mask = F.pad(keep, (1, 0), value=True)[:, None, None, :]
        return self.to_out(attention(q, k, v, mask).flatten(1))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.mod = Linear(dim, 2 * dim)
        self.linear = Linear(dim, out)

    def forward(self, x, c):
        shift, scale = self.mod(F.silu(c)).chunk(2, dim=1)
        return self.linear(F.layer_norm(x, (x.shape[-1],), eps=1e-6) * (1 + scale[:, None]) + shift[:, None])


class Mochi(nn.Module):
    def __init__(self, config: MochiConfig):
        super().__init__()
        self.config = cfg = config
        dx, p = cfg.hidden_size, cfg.patch_size
        self.x_embedder = nn.Module()
        self.x_embedder.proj = Conv2d(cfg.in_channels, dx, p, stride=p)
        self.t_embedder = TimestepEmbedder(dx)
        self.t5_y_embedder = AttentionPool(cfg.text_dim, dx, cfg.pool_heads)
        self.t5_yproj = Linear(cfg.text_dim, cfg.hidden_size_y)
        self.pos_frequencies = nn.Parameter(torch.zeros(3, cfg.num_heads, cfg.head_dim // 2))
        self.blocks = nn.ModuleList([Block(cfg, i == cfg.depth - 1) for i in range(cfg.depth)])
        self.final_layer = FinalLayer(dx, p * p * cfg.out_channels)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, y=None,
                attention_mask: torch.Tensor | None = None, **unused) -> torch.Tensor:
        """x [B, 12, F, H, W] (H, W even); sigma [B]; context [B, L, 4096]; y unused (no pooled
        vector; the flow models' call passes one); attention_mask [B, L] (1 keep, 0 padding) or
        None -> velocity [B, 12, F, H, W]."""
        b, _, f, h, w = x.shape
        p = self.config.patch_size
        if h % p or w % p:
            raise ValueError(f"Mochi takes latents of a height and width divisible by {p} (video sizes by {8 * p} "
                             f"pixels), got {h} x {w}")
        hidden = self.x_embedder.proj(x.transpose(1, 2).flatten(0, 1))  # frames on the batch: [B F, D, h, w]
        hidden = hidden.flatten(2).transpose(1, 2).reshape(b, -1, hidden.shape[1])
        keep = torch.ones(context.shape[:2], dtype=torch.bool, device=x.device) if attention_mask is None \
            else attention_mask.to(x.device).bool()
        count = max(1, int(keep.sum(1).max()))  # the padding after the longest prompt is dropped (ComfyUI's crop)
        c = self.t_embedder((1 - sigma.reshape(b).float()) * 1000.0, hidden.dtype) + self.t5_y_embedder(context, keep)
        text = self.t5_yproj(context[:, :count])
        mask = None
        if not bool(keep[:, :count].all()):  # prompts of unequal lengths: mask the shorter ones' padding
            mask = F.pad(keep[:, :count], (hidden.shape[1], 0), value=True)[:, None, None, :]
        pe = rope(self.pos_frequencies, positions(f, h // p, w // p, x.device))
        for block in self.blocks:
            hidden, text = block(hidden, text, c, pe, mask)
        out = self.final_layer(hidden, c)  # [B, F h w, p p C]
        out = out.reshape(b, f, h // p, w // p, p, p, -1).permute(0, 6, 1, 2, 4, 3, 5).reshape(b, -1, f, h, w)
        return -out
