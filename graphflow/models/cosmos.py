"""NVIDIA Cosmos' diffusion transformers in NVIDIA's key layouts as ComfyUI loads them (diffusers:
CosmosTransformer3DModel): Cosmos-Predict2 (MiniTrainDIT; 2B / 14B text-to-image and video2world)
and, at the end of this file, Cosmos 1.0 (GeneralDIT; 7B / 14B Text2World and Video2World).

Predict2: x [B, 16 (+1 for video2world: the known-frame mask), T, H, W] gets one more channel,
the padding mask (zeros: ComfyUI passes none), and is cut into 1x2x2 patches (`x_embedder.proj.1`,
no bias).
Each block: self-attention with 3-D RoPE (per head: temporal, height and width frequencies, each
theta scaled NTK-wise by its extrapolation ratio; no fps modulation, as ComfyUI runs Predict2),
cross-attention on the T5 tokens [B, N, 1024], GELU MLP; q and k RMS-normalised per head; every
sub-layer modulated by shift / scale / gate from the timestep (AdaLN with a LoRA: the block's
SiLU -> Linear(D, 256) -> Linear(256, 3D) plus the shared `t_embedder` output). The timestep
embedding is the sinusoid of t itself (t = sigma / (1 + sigma) in [0, 1), one per frame or one per
sample), RMS-normalised (`t_embedding_norm`). Output patches are unfolded channel-innermost.

Keys: x_embedder.proj.1, t_embedder.1.linear_{1,2}, t_embedding_norm, blocks.N.{self_attn,
cross_attn}.{q,k,v,output}_proj / {q,k}_norm, blocks.N.mlp.layer{1,2},
blocks.N.adaln_modulation_{self_attn,cross_attn,mlp}.{1,2}, final_layer.{linear,
adaln_modulation.1, adaln_modulation.2}. NVIDIA's own files add pos_embedder buffers and
training counters (accum_*), which are not weights, and may carry extra_pos_embedder tables,
which ComfyUI's Predict2 does not use: all are skipped.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .cast_layers import Linear  # weights may stay fp8 (UNETLoader's weight_dtype)
from .file_kind import find_cosmos, find_cosmos1  # noqa: F401 (torch-free detection)

# NVIDIA's non-weight entries (and *._extra_state), and learned absolute positions, which ComfyUI
# builds no Predict2 model with (it leaves them unread)
UNUSED = ("pos_embedder.", "accum_", "extra_pos_embedder.")


@dataclass(frozen=True)
class CosmosConfig:
    in_channels: int = 16  # latent channels (17: video2world's known-frame mask channel too)
    out_channels: int = 16
    model_channels: int = 2048
    num_blocks: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    crossattn_emb_channels: int = 1024
    adaln_lora_dim: int = 256
    patch_spatial: int = 2
    patch_temporal: int = 1
    rope_extrapolation: tuple = (4.0, 4.0, 1.0)  # height, width, time

    @property
    def head_dim(self) -> int:
        return self.model_channels // self.num_heads

    @property
    def latent_channels(self) -> int:
        return self.out_channels


def rope_extrapolation(in_channels: int, model_channels: int) -> tuple:
    """ComfyUI's RoPE ratios (height, width, time) for a Predict2 file: text-to-image 4, 4, 1;
    video2world 2B 3, 3, 1 and 14B 2, 2, 5/6; other sizes 1, 1, 1 (ComfyUI's defaults)."""
    if in_channels == 16:
        return 4.0, 4.0, 1.0
    if in_channels == 17 and model_channels in (2048, 5120):
        return (3.0, 3.0, 1.0) if model_channels == 2048 else (2.0, 2.0, 0.8333333333333334)
    return 1.0, 1.0, 1.0


def cosmos_config_from_state_dict(shapes) -> CosmosConfig:
    """The config of a Predict2 network's keys (prefix stripped), from its shapes."""
    d, patch_in = shapes["x_embedder.proj.1.weight"]
    in_channels = patch_in // 4 - 1  # 1x2x2 patches of the latent + the padding mask
    head_dim = shapes["blocks.0.self_attn.q_norm.weight"][0]
    blocks = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("blocks."))
    return CosmosConfig(
        in_channels=in_channels, out_channels=shapes["final_layer.linear.weight"][0] // 4, model_channels=d,
        num_blocks=blocks, num_heads=d // head_dim, mlp_ratio=shapes["blocks.0.mlp.layer1.weight"][0] / d,
        crossattn_emb_channels=shapes["blocks.0.cross_attn.k_proj.weight"][1],
        adaln_lora_dim=shapes["blocks.0.adaln_modulation_self_attn.1.weight"][0],
        rope_extrapolation=rope_extrapolation(in_channels, d))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[B, T] -> [B, T, dim]: cos then sin of t * 10000^(-i / (dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[..., None] * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def rope_angles(cfg, frames: int, height: int, width: int, device, fps: float | None = None) -> torch.Tensor:
    """Per token (frame-major) and half head dimension: [T*H*W, head_dim / 2] angles, the
    temporal frequencies first, then the height's, then the width's. fps (Cosmos 1.0, when the
    conditioning has a frame rate): frame i sits at i / fps * base_fps, so time is in seconds at
    the training rate."""
    dim = cfg.head_dim
    dim_h = dim // 6 * 2
    dim_t = dim - 2 * dim_h
    ratio_h, ratio_w, ratio_t = cfg.rope_extrapolation

    def freqs(n, ratio):
        theta = 10000.0 * ratio ** (n / (n - 2))
        return 1.0 / theta ** (torch.arange(0, n, 2, device=device)[:n // 2].float() / n)

    def axis(length, f):
        return torch.outer(torch.arange(length, device=device, dtype=torch.float32), f)

    t = torch.arange(frames, device=device, dtype=torch.float32)
    if fps is not None:
        t = t / fps * cfg.base_fps
    t = torch.outer(t, freqs(dim_t, ratio_t))[:, None, None].expand(frames, height, width, -1)
    h = axis(height, freqs(dim_h, ratio_h))[None, :, None].expand(frames, height, width, -1)
    w = axis(width, freqs(dim_h, ratio_w))[None, None, :].expand(frames, height, width, -1)
    return torch.cat([t, h, w], dim=-1).reshape(frames * height * width, -1)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x_i, x_{i + D/2}) of x [B, heads, L, D] by angles [L, D/2]."""
    a, b = x.float().chunk(2, dim=-1)
    cos, sin = angles.cos(), angles.sin()
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1).type_as(x)


def _attend(heads: int, q, k, v, q_norm, k_norm, rope=None) -> torch.Tensor:
    """Multi-head attention of projected q [B, L, D] on k, v [B, N, D]; q and k normalised per head,
    then rotated by rope (self-attention) -> [B, L, D] before the output projection."""
    b, n = q.shape[:2]
    q, k, v = (t.reshape(b, t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
    q, k = q_norm(q), k_norm(k)
    if rope is not None:
        q, k = apply_rope(q, rope), apply_rope(k, rope)
    return attention(q, k, v).transpose(1, 2).reshape(b, n, -1)


class Attention(nn.Module):
    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        head_dim = dim // heads
        self.q_proj = Linear(dim, dim, bias=False)
        self.q_norm = nn.RMSNorm(head_dim, eps=1e-6)
        self.k_proj = Linear(context_dim, dim, bias=False)
        self.k_norm = nn.RMSNorm(head_dim, eps=1e-6)
        self.v_proj = Linear(context_dim, dim, bias=False)
        self.output_proj = Linear(dim, dim, bias=False)

    def forward(self, x, context=None, rope=None):
        context = x if context is None else context
        return self.output_proj(_attend(self.heads, self.q_proj(x), self.k_proj(context), self.v_proj(context),
                                        self.q_norm, self.k_norm, rope))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layer1 = Linear(dim, hidden, bias=False)
        self.layer2 = Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.layer2(F.gelu(self.layer1(x)))


def _modulation(dim: int, lora: int, chunks: int) -> nn.Sequential:
    return nn.Sequential(nn.SiLU(), Linear(dim, lora, bias=False), Linear(lora, chunks * dim, bias=False))


def _norm(x):
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


class Block(nn.Module):
    def __init__(self, cfg: CosmosConfig):
        super().__init__()
        d = cfg.model_channels
        self.self_attn = Attention(d, d, cfg.num_heads)
        self.cross_attn = Attention(d, cfg.crossattn_emb_channels, cfg.num_heads)
        self.mlp = MLP(d, int(d * cfg.mlp_ratio))
        self.adaln_modulation_self_attn = _modulation(d, cfg.adaln_lora_dim, 3)
        self.adaln_modulation_cross_attn = _modulation(d, cfg.adaln_lora_dim, 3)
        self.adaln_modulation_mlp = _modulation(d, cfg.adaln_lora_dim, 3)

    def forward(self, x, emb, lora, context, rope):
        """x [B, T, HW, D]; emb, lora [B, T | 1, 1, D | 3D] (one modulation per frame or for all)."""
        b, t, hw, d = x.shape
        for name, run in (("self_attn", lambda h: self.self_attn(h, rope=rope)),
                          ("cross_attn", lambda h: self.cross_attn(h, context)),
                          ("mlp", self.mlp)):
            shift, scale, gate = (getattr(self, f"adaln_modulation_{name}")(emb) + lora).chunk(3, dim=-1)
            h = (_norm(x) * (1 + scale) + shift).reshape(b, t * hw, d)
            x = x + gate * run(h).reshape(b, t, hw, d)
        return x


class FinalLayer(nn.Module):
    def __init__(self, cfg: CosmosConfig):
        super().__init__()
        d = cfg.model_channels
        self.linear = Linear(d, cfg.patch_spatial ** 2 * cfg.patch_temporal * cfg.out_channels, bias=False)
        self.adaln_modulation = _modulation(d, cfg.adaln_lora_dim, 2)

    def forward(self, x, emb, lora):
        shift, scale = (self.adaln_modulation(emb) + lora[..., :2 * x.shape[-1]]).chunk(2, dim=-1)
        return self.linear(_norm(x) * (1 + scale) + shift)


class TimestepEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear_1 = Linear(dim, dim, bias=False)
        self.linear_2 = Linear(dim, 3 * dim, bias=False)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class CosmosPredict2(nn.Module):
    def __init__(self, config: CosmosConfig):
        super().__init__()
        self.config = cfg = config
        d = cfg.model_channels
        patch = cfg.patch_spatial ** 2 * cfg.patch_temporal
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Sequential(nn.Identity(), Linear((cfg.in_channels + 1) * patch, d, bias=False))
        self.t_embedder = nn.Sequential(nn.Identity(), TimestepEmbedding(d))
        self.t_embedding_norm = nn.RMSNorm(d, eps=1e-6)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.num_blocks)])
        self.final_layer = FinalLayer(cfg)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in [k for k in state_dict if k.startswith(prefix) and (k[len(prefix):].startswith(UNUSED)
                                                                        or k.endswith("_extra_state"))]:
            state_dict.pop(name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, y=None, **_) -> torch.Tensor:
        """x [B, C, T, H, W] (or an image [B, C, H, W]); timesteps t in [0, 1): [B] or per frame
        [B, T]; context [B, N, 1024] -> velocity-like output of x's shape."""
        image = x.ndim == 4
        if image:
            x = x[:, :, None]
        cfg = self.config
        b, _, frames, height, width = x.shape
        ps, pt = cfg.patch_spatial, cfg.patch_temporal
        x = torch.cat([x, x.new_zeros(b, 1, frames, height, width)], dim=1)  # the padding mask: nothing padded
        t, h, w = frames // pt, height // ps, width // ps
        x = x.reshape(b, -1, t, pt, h, ps, w, ps).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, t, h * w, -1)
        x = self.x_embedder.proj(x)

        timesteps = timesteps.reshape(b, -1)  # [B, 1] or [B, T]
        sinusoid = timestep_embedding(timesteps, cfg.model_channels).to(x.dtype)
        lora = self.t_embedder(sinusoid)[:, :, None]  # [B, 1 | T, 1, 3D]
        emb = self.t_embedding_norm(sinusoid)[:, :, None]
        rope = rope_angles(cfg, t, h, w, x.device)
        context = context.to(x.dtype)
        for block in self.blocks:
            x = block(x, emb, lora, context, rope)
        x = self.final_layer(x, emb, lora)  # [B, T, HW, (p1 p2 pt C)]
        x = x.reshape(b, t, h, w, ps, ps, pt, -1).permute(0, 7, 1, 6, 2, 4, 3, 5)
        x = x.reshape(b, -1, t * pt, h * ps, w * ps)
        return x[:, :, 0] if image else x


# -- Cosmos 1.0 (GeneralDIT) ------------------------------------------------------------------------
#
# The same transformer as Predict2 in NVIDIA's first layout: each block is three parts
# (`blocks.blockN.blocks.{0,1,2}`: self-attention, cross-attention, MLP), each with its own
# `adaLN_modulation`; attention projections are `to_q.0` / `to_k.0` / `to_v.0` / `to_out.0`, their
# per-head RMSNorms `to_q.1` / `to_k.1`; the timestep norm is `affline_norm`. Unlike Predict2 it
# is sampled as EDM (c_noise = ln(sigma) / 4, one timestep per sample), its RoPE follows the
# conditioning's frame rate when there is one, and a learned absolute position (`extra_pos_embedder`:
# one table per axis, summed, RMS-normalised) is added to the tokens before every block. NVIDIA's
# files also carry non-weights (pos_embedder.*, the training loss' logvar.*), skipped on load.

UNUSED1 = ("pos_embedder.", "logvar.", "accum_")

# ComfyUI's two sizes, told apart by the width: 7B 28 blocks of 32 heads, RoPE ratios (h, w, t)
# 1, 1, 2; 14B 36 blocks of 40 heads, 2, 2, 2 (ComfyUI runs any other width with the 14B's ratios).
COSMOS1_SIZES = {4096: "7B", 5120: "14B"}
COSMOS1_TASKS = {16: "Text2World", 17: "Video2World"}


@dataclass(frozen=True)
class Cosmos1Config:
    in_channels: int = 16  # latent channels (17: Video2World's known-frame mask channel too)
    out_channels: int = 16
    model_channels: int = 4096
    num_blocks: int = 28
    num_heads: int = 32
    mlp_ratio: float = 4.0
    crossattn_emb_channels: int = 1024
    adaln_lora_dim: int = 256
    patch_spatial: int = 2
    patch_temporal: int = 1
    rope_extrapolation: tuple = (1.0, 1.0, 2.0)  # height, width, time
    positions: tuple = (128, 120, 120)  # learned positions: latent frames, height and width patches
    base_fps: int = 24  # the frame rate RoPE's time is measured at

    @property
    def head_dim(self) -> int:
        return self.model_channels // self.num_heads

    @property
    def latent_channels(self) -> int:
        return self.out_channels

    @property
    def variant(self) -> str:
        """"Text2World 7B", "Video2World 14B", ... ("(neither 7B nor 14B)" for another width)."""
        return (f"{COSMOS1_TASKS.get(self.in_channels, f'{self.in_channels}-channel')} "
                f"{COSMOS1_SIZES.get(self.model_channels, '(neither 7B nor 14B)')}")


def cosmos1_config_from_state_dict(shapes) -> Cosmos1Config:
    """The config of a Cosmos 1.0 network's keys (prefix stripped), from its shapes; ValueError
    for a file ComfyUI could not run (input channels other than Text2World's 16 or Video2World's
    17, no learned positions)."""
    d, patch_in = shapes["x_embedder.proj.1.weight"]
    in_channels = patch_in // 4 - 1  # 1x2x2 patches of the latent + the padding mask
    if in_channels not in COSMOS1_TASKS:
        raise ValueError(f"{in_channels} latent input channels: Cosmos 1.0 is Text2World (16) or Video2World (17)")
    if "extra_pos_embedder.pos_emb_t" not in shapes:
        raise ValueError("no learned positions (extra_pos_embedder.pos_emb_t / _h / _w), which ComfyUI's Cosmos 1.0 "
                         "7B and 14B have")
    head_dim = shapes["blocks.block0.blocks.0.block.attn.to_q.1.weight"][0]
    blocks = 1 + max(int(k.split(".")[1].removeprefix("block")) for k in shapes if k.startswith("blocks.block"))
    return Cosmos1Config(
        in_channels=in_channels, out_channels=shapes["final_layer.linear.weight"][0] // 4, model_channels=d,
        num_blocks=blocks, num_heads=d // head_dim,
        mlp_ratio=shapes["blocks.block0.blocks.2.block.layer1.weight"][0] / d,
        crossattn_emb_channels=shapes["blocks.block0.blocks.1.block.attn.to_k.0.weight"][1],
        adaln_lora_dim=shapes["blocks.block0.blocks.0.adaLN_modulation.1.weight"][0],
        rope_extrapolation=(1.0, 1.0, 2.0) if d == 4096 else (2.0, 2.0, 2.0),
        positions=tuple(shapes[f"extra_pos_embedder.pos_emb_{a}"][0] for a in "thw"))


class Attention1(nn.Module):
    """Attention in Cosmos 1.0's names: to_q / to_k = (Linear, per-head RMSNorm), to_v, to_out."""

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Sequential(Linear(dim, dim, bias=False), nn.RMSNorm(dim // heads, eps=1e-6))
        self.to_k = nn.Sequential(Linear(context_dim, dim, bias=False), nn.RMSNorm(dim // heads, eps=1e-6))
        self.to_v = nn.Sequential(Linear(context_dim, dim, bias=False))
        self.to_out = nn.Sequential(Linear(dim, dim, bias=False))

    def forward(self, x, context=None, rope=None):
        context = x if context is None else context
        return self.to_out[0](_attend(self.heads, self.to_q[0](x), self.to_k[0](context), self.to_v[0](context),
                                      self.to_q[1], self.to_k[1], rope))


class Part(nn.Module):
    """One of a Cosmos 1.0 block's three parts: `block` modulated by shift / scale / gate."""

    def __init__(self, block: nn.Module, dim: int, lora: int):
        super().__init__()
        self.block = block
        self.adaLN_modulation = _modulation(dim, lora, 3)


def _holding_attn(attn: nn.Module) -> nn.Module:
    holder = nn.Module()  # NVIDIA's VideoAttn: the attention under `.attn`
    holder.attn = attn
    return holder


class Block1(nn.Module):
    def __init__(self, cfg: Cosmos1Config):
        super().__init__()
        d, lora = cfg.model_channels, cfg.adaln_lora_dim
        self.blocks = nn.ModuleList([
            Part(_holding_attn(Attention1(d, d, cfg.num_heads)), d, lora),
            Part(_holding_attn(Attention1(d, cfg.crossattn_emb_channels, cfg.num_heads)), d, lora),
            Part(MLP(d, int(d * cfg.mlp_ratio)), d, lora)])

    def forward(self, x, emb, lora, context, rope):
        """x [B, L, D]; emb, lora [B, 1, D | 3D]."""
        self_attn, cross_attn, mlp = self.blocks
        for part, run in ((self_attn, lambda h: self_attn.block.attn(h, rope=rope)),
                          (cross_attn, lambda h: cross_attn.block.attn(h, context)),
                          (mlp, mlp.block)):
            shift, scale, gate = (part.adaLN_modulation(emb) + lora).chunk(3, dim=-1)
            x = x + gate * run(_norm(x) * (1 + scale) + shift)
        return x


class FinalLayer1(nn.Module):
    def __init__(self, cfg: Cosmos1Config):
        super().__init__()
        d = cfg.model_channels
        self.linear = Linear(d, cfg.patch_spatial ** 2 * cfg.patch_temporal * cfg.out_channels, bias=False)
        self.adaLN_modulation = _modulation(d, cfg.adaln_lora_dim, 2)

    def forward(self, x, emb, lora):
        shift, scale = (self.adaLN_modulation(emb) + lora[..., :2 * x.shape[-1]]).chunk(2, dim=-1)
        return self.linear(_norm(x) * (1 + scale) + shift)


class Cosmos1(nn.Module):
    takes_fps = True  # the sampler passes the conditioning's frame rate (ComfyUI's fps)

    def __init__(self, config: Cosmos1Config):
        super().__init__()
        self.config = cfg = config
        d = cfg.model_channels
        patch = cfg.patch_spatial ** 2 * cfg.patch_temporal
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Sequential(nn.Identity(), Linear((cfg.in_channels + 1) * patch, d, bias=False))
        self.extra_pos_embedder = nn.Module()
        for axis, length in zip("thw", cfg.positions):
            setattr(self.extra_pos_embedder, f"pos_emb_{axis}", nn.Parameter(torch.empty(length, d)))
        self.t_embedder = nn.Sequential(nn.Identity(), TimestepEmbedding(d))
        self.affline_norm = nn.RMSNorm(d, eps=1e-6)
        self.blocks = nn.ModuleDict({f"block{i}": Block1(cfg) for i in range(cfg.num_blocks)})
        self.final_layer = FinalLayer1(cfg)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in [k for k in state_dict if k.startswith(prefix) and (k[len(prefix):].startswith(UNUSED1)
                                                                        or k.endswith("_extra_state"))]:
            state_dict.pop(name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def learned_positions(self, frames: int, height: int, width: int, dtype) -> torch.Tensor:
        """[frames * height * width, D]: the axes' rows summed, each token's vector divided by its
        RMS (+ 1e-6). The tables are cropped, never stretched, so they bound the size."""
        e = self.extra_pos_embedder
        tables = [e.pos_emb_t, e.pos_emb_h, e.pos_emb_w]
        if any(n > len(table) for n, table in zip((frames, height, width), tables)):
            ps = self.config.patch_spatial
            most = f"{len(tables[0])} latent frames of {len(tables[1]) * ps * 8}x{len(tables[2]) * ps * 8} pixels"
            raise ValueError(f"Cosmos 1.0 has learned positions for at most {most} (height x width); this latent "
                             f"is {frames} frames of {height * ps * 8}x{width * ps * 8}")
        t, h, w = (table[:n].to(dtype) for n, table in zip((frames, height, width), tables))
        pos = (t[:, None, None] + h[None, :, None] + w[None, None, :]).reshape(frames * height * width, -1)
        rms = torch.linalg.vector_norm(pos, dim=-1, keepdim=True, dtype=torch.float32) / math.sqrt(pos.shape[-1])
        return pos / (rms + 1e-6).to(dtype)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, y=None, fps=None,
                **_) -> torch.Tensor:
        """x [B, C, T, H, W] (or one frame [B, C, H, W]); timesteps c_noise [B]; context [B, N, 1024];
        fps the frame rate (None: RoPE's time in frames) -> EDM's F-prediction, x's shape."""
        image = x.ndim == 4
        if image:
            x = x[:, :, None]
        cfg = self.config
        b, _, frames, height, width = x.shape
        ps, pt = cfg.patch_spatial, cfg.patch_temporal
        x = torch.cat([x, x.new_zeros(b, 1, frames, height, width)], dim=1)  # the padding mask: nothing padded
        t, h, w = frames // pt, height // ps, width // ps
        x = x.reshape(b, -1, t, pt, h, ps, w, ps).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, t * h * w, -1)
        x = self.x_embedder.proj(x)
        pos = self.learned_positions(t, h, w, x.dtype)

        sinusoid = timestep_embedding(timesteps.reshape(-1).expand(b), cfg.model_channels).to(x.dtype)
        lora = self.t_embedder(sinusoid)[:, None]  # [B, 1, 3D]
        emb = self.affline_norm(sinusoid)[:, None]
        rope = rope_angles(cfg, t, h, w, x.device, fps=None if fps is None else float(fps))
        context = context.to(x.dtype)
        for block in self.blocks.values():
            x = block(x + pos, emb, lora, context, rope)
        x = self.final_layer(x, emb, lora)  # [B, THW, (p1 p2 pt C)]
        x = x.reshape(b, t, h, w, ps, ps, pt, -1).permute(0, 7, 1, 6, 2, 4, 3, 5)
        x = x.reshape(b, -1, t * pt, h * ps, w * ps)
        return x[:, :, 0] if image else x
