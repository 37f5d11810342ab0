"""LTX-Video (Lightricks): the video transformer, in Lightricks' key layout.

A latent video [B, 128, F, H, W] (the video VAE's: 8x fewer frames after the first, 32x
smaller) is one token per latent pixel, F*H*W tokens, each block: self-attention with rotary
positions over (time, row, column), cross-attention to the T5-XXL prompt tokens, a GELU MLP,
all modulated by the timestep (adaLN-single: one timestep MLP shared by every block plus a
learned per-block table). Parameter names are Lightricks' (`patchify_proj`, `adaln_single`,
`transformer_blocks.0.attn1.q_norm`, ...) without `model.diffusion_model.`.

Rotary positions are pixel coordinates as ComfyUI computes them: a token at latent (f, h, w)
sits at frame 8f (with causal temporal positioning 8f - 7, not below 0), row 32h, column
32w; the frame is divided by the frame rate (seconds), then each axis by (20, 2048, 2048).
sigma [B] in [0, 1] is scaled by 1000 inside, as ComfyUI does; a per-token sigma [B, F*H*W]
(image-to-video: the given first frame kept at 0) modulates each token by its own timestep.
Guide frames appended after the video's own (LTXVAddGuide) bring their own pixel coordinates
(`keyframe_positions`, ComfyUI's keyframe_idxs): the frames they guide, not where they sit.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .block_runner import run_blocks
from .cast_layers import Linear
from .configs import LTXVConfig, ltxv_config_from_state_dict  # noqa: F401 (the config lives in configs.py, torch-free)
from .mmdit import LinearTimestepEmbedder

SCALE_FACTORS = (8, 32, 32)  # the video VAE's frames, rows, columns per latent pixel
MAX_POSITIONS = (20, 2048, 2048)
THETA = 10000.0


def pixel_positions(frames: int, height: int, width: int, causal: bool, device) -> torch.Tensor:
    """[F*H*W, 3] (pixel frame, row, column) of each token, in the (f, h, w) order tokens have."""
    grid = torch.stack(torch.meshgrid(torch.arange(frames, device=device), torch.arange(height, device=device),
                                      torch.arange(width, device=device), indexing="ij"), dim=-1).reshape(-1, 3)
    pos = (grid * torch.tensor(SCALE_FACTORS, device=device)).float()
    if causal:  # the first latent frame is one picture, the rest 8 each: centre them on their last
        pos[:, 0] = (pos[:, 0] + 1 - SCALE_FACTORS[0]).clamp(min=0)
    return pos


def rope(pos: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., N, 3] positions -> (cos, sin) [..., N, dim]: dim//6 frequencies per axis, interleaved
    axis by axis and duplicated per channel pair; the dim % 6 leftover channels unrotated (first)."""
    frac = pos / torch.tensor(MAX_POSITIONS, device=pos.device)
    freqs = THETA ** torch.linspace(0, 1, dim // 6, device=pos.device) * math.pi / 2
    angles = (freqs * (frac[..., None] * 2 - 1)).transpose(-1, -2).flatten(-2)
    cos, sin = angles.cos().repeat_interleave(2, -1), angles.sin().repeat_interleave(2, -1)
    pad = dim % 6
    if pad:
        cos = torch.cat([torch.ones_like(cos[..., :pad]), cos], dim=-1)
        sin = torch.cat([torch.zeros_like(sin[..., :pad]), sin], dim=-1)
    return cos, sin


def apply_rope(x: torch.Tensor, pe: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    cos, sin = pe
    pairs = x.float().unflatten(-1, (-1, 2))
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    return (x.float() * cos + rotated * sin).type_as(x)


def rms_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).type_as(x)


class Attention(nn.Module):
    """Queries and keys RMS-normed across all heads (then rotated, self-attention only)."""

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q, self.to_k, self.to_v = Linear(dim, dim), Linear(context_dim, dim), Linear(context_dim, dim)
        self.q_norm, self.k_norm = nn.RMSNorm(dim, eps=1e-5), nn.RMSNorm(dim, eps=1e-5)
        self.to_out = nn.ModuleList([Linear(dim, dim)])

    def forward(self, x, context=None, pe=None, mask=None):
        context = x if context is None else context
        q, k, v = self.q_norm(self.to_q(x)), self.k_norm(self.to_k(context)), self.to_v(context)
        if pe is not None:
            q, k = apply_rope(q, pe), apply_rope(k, pe)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        return self.to_out[0](attention(q, k, v, mask).transpose(1, 2).flatten(2))


class GELUProjection(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = Linear(dim, hidden)

    def forward(self, x):
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """diffusers' FeedForward layout: net.0 the GELU projection, net.1 dropout (no weights), net.2 out."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(GELUProjection(dim, hidden), nn.Identity(), Linear(hidden, dim))

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    def __init__(self, cfg: LTXVConfig):
        super().__init__()
        dim = cfg.hidden_size
        self.attn1 = Attention(dim, dim, cfg.num_heads)
        self.attn2 = Attention(dim, cfg.cross_attention_dim, cfg.num_heads)
        self.ff = FeedForward(dim, cfg.mlp_hidden)
        self.scale_shift_table = nn.Parameter(torch.zeros(6, dim))

    def forward(self, x, context, temb, pe, mask):
        mods = self.scale_shift_table.to(temb) + temb.unflatten(-1, (6, -1))  # [B, 1 or N, 6, dim]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods.unbind(2)
        x = x + self.attn1(rms_norm(x) * (1 + scale_msa) + shift_msa, pe=pe) * gate_msa
        x = x + self.attn2(x, context, mask=mask)
        return x + self.ff(rms_norm(x) * (1 + scale_mlp) + shift_mlp) * gate_mlp


class AdaLNSingle(nn.Module):
    """The timestep MLP every block shares: (6 x dim block modulation, the embedding itself)."""

    def __init__(self, dim: int):
        super().__init__()
        self.emb = nn.Module()
        self.emb.timestep_embedder = LinearTimestepEmbedder(dim)
        self.linear = Linear(dim, 6 * dim)

    def forward(self, t: torch.Tensor, dtype):
        embedded = self.emb.timestep_embedder(t, dtype)
        return self.linear(F.silu(embedded)), embedded


class CaptionProjection(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1, self.linear_2 = Linear(in_dim, dim), Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.gelu(self.linear_1(x), approximate="tanh"))


class LTXV(nn.Module):
    def __init__(self, config: LTXVConfig):
        super().__init__()
        self.config = cfg = config
        dim = cfg.hidden_size
        self.patchify_proj = Linear(cfg.in_channels, dim)
        self.adaln_single = AdaLNSingle(dim)
        self.caption_projection = CaptionProjection(cfg.caption_channels, dim)
        self.transformer_blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.scale_shift_table = nn.Parameter(torch.zeros(2, dim))
        self.proj_out = Linear(dim, cfg.in_channels)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, y=None, attention_mask=None,
                frame_rate: float = 25.0, keyframe_positions: torch.Tensor | None = None, **unused) -> torch.Tensor:
        """x [B, C, F, H, W]; sigma [B] or per token [B, F*H*W]; context [B, L, 4096]; y unused
        (no pooled vector; the flow models' call passes one); attention_mask [B, L] (1 keep, 0
        padding) or None; keyframe_positions [N, 3] (pixel frame, row, column) of the last N
        tokens (appended guide frames), in place of their place in the grid."""
        b, c, f, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        pos = pixel_positions(f, h, w, self.config.causal_temporal_positioning, x.device)
        if keyframe_positions is not None:
            n = keyframe_positions.shape[0]
            if keyframe_positions.shape != (n, 3) or not 0 < n <= pos.shape[0]:
                raise ValueError(f"keyframe positions must be [N, 3] for at most the {pos.shape[0]} tokens of the "
                                 f"latent, got {tuple(keyframe_positions.shape)}")
            pos[-n:] = keyframe_positions.to(pos)
        pos[:, 0] = pos[:, 0] / frame_rate  # frames -> seconds
        pe = rope(pos, self.config.hidden_size)
        hidden = self.patchify_proj(tokens)
        sigma = sigma.reshape(b, -1)  # [B, 1] or [B, N]
        temb, embedded = self.adaln_single((sigma * 1000.0).flatten(), hidden.dtype)
        temb, embedded = temb.view(b, sigma.shape[1], -1), embedded.view(b, sigma.shape[1], -1)
        context = self.caption_projection(context)
        mask = None
        if attention_mask is not None:
            mask = ((1 - attention_mask.to(hidden.dtype)) * -10000.0)[:, None, None, :]
        out = self.proj_out(run_blocks(LTXVBlocks(self, hidden, context, temb, embedded, pe, mask)))
        return out.transpose(1, 2).reshape(b, c, f, h, w)


class LTXVBlocks:
    """LTX-Video's transformer blocks and the output norm with its modulation after them (the pack's
    TeaCache caches the residual up to there), for graphflow.models.block_runner. TeaCache's probe
    (modulated) is the first block's attention input, rms_norm(x) * (1 + scale_msa) + shift_msa;
    first() is the first block, its probe the block's residual (its output minus its input, as
    WaveSpeed's generic CachedTransformerBlocks compares); rest() includes the output norm, which
    First Block Cache's residual stops before (tail())."""

    def __init__(self, model, hidden, context, temb, embedded, pe, mask):
        self.model, self.hidden, self.context, self.temb, self.embedded = model, hidden, context, temb, embedded
        self.pe, self.mask = pe, mask

    def modulated(self, ret_mode: bool = False):
        block = self.model.transformer_blocks[0]
        mods = block.scale_shift_table.to(self.temb) + self.temb.unflatten(-1, (6, -1))
        shift_msa, scale_msa = mods[:, :, 0], mods[:, :, 1]
        return rms_norm(self.hidden) * (1 + scale_msa) + shift_msa

    def _run(self, hidden, start, stop):
        for block in self.model.transformer_blocks[start:stop]:
            hidden = block(hidden, self.context, self.temb, self.pe, self.mask)
        return hidden

    def first(self):
        self._after_first = self._run(self.hidden, 0, 1)
        return self._after_first, self._after_first - self.hidden

    def rest(self, tail: bool = True):
        hidden = self._run(self._after_first, 1, len(self.model.transformer_blocks))
        return self.tail(hidden) if tail else hidden

    def tail(self, hidden):
        """The output norm and its modulation, after the blocks."""
        table = self.model.scale_shift_table.to(self.embedded)
        shift, scale = (table[None, None] + self.embedded[:, :, None]).unbind(2)
        return F.layer_norm(hidden, (hidden.shape[-1],), eps=1e-6) * (1 + scale) + shift

    def all(self):
        return self.tail(self._run(self.hidden, 0, len(self.model.transformer_blocks)))
