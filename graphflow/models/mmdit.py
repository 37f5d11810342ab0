"""MM-DiT: the SD3 / SD3.5 diffusion transformer, in Stability's key layout.

Esser et al. 2024, "Scaling Rectified Flow Transformers for High-Resolution Image Synthesis".
Image patches and text tokens keep separate weights (x_block / context_block of each joint
block) but attend jointly; every block is modulated (adaLN) by the timestep plus the pooled
text vector. SD3.5 adds RMS QK-norm; SD3.5 medium (MMDiT-X) gives its first blocks a second,
image-only self-attention (`attn2`) and a 128x128-patch position table. Parameter names are
those of the original files without `model.diffusion_model.`.

Input: model-space latent x [B, C, H, W], sigma [B] in [0, 1] (scaled by 1000 here, as SD3's
model sampling does), context [B, T, 4096], pooled y [B, 2048]. Output: velocity [B, C, H, W].
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .block_runner import run_blocks
from .configs import MMDiTConfig, mmdit_config_from_state_dict  # noqa: F401 (the config lives in configs.py, torch-free)
from .cast_layers import Conv2d, Linear


def timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0,
                       freq_scale: float = 1.0) -> torch.Tensor:
    """Sinusoidal embedding, cos half first (as SD3 and FLUX were trained), float32. `freq_scale` multiplies
    the frequencies, not t (AuraFlow's 1000: the same numbers on paper, rounded as ComfyUI's)."""
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = freq_scale * torch.exp(-math.log(max_period) * steps / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def norm_modulate(x, shift, scale):
    """LN(x) (no weights, eps 1e-6) * (1 + scale) + shift, shift and scale broadcast against x
    ([B, 1, D], or per token)."""
    return F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + scale) + shift


def pad_to_patches(x: torch.Tensor, p) -> torch.Tensor:
    """x padded circularly at the end of its last dims to whole patches (ComfyUI's pad_to_patch_size):
    p a size for the last two dims, or one size per trailing dim."""
    sizes = (p, p) if isinstance(p, int) else tuple(p)
    pads = []
    for n, q in zip(reversed(x.shape[-len(sizes):]), reversed(sizes)):
        pads += [0, -n % q]
    return F.pad(x, pads, mode="circular") if any(pads) else x


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):  # reduced in fp32 so bf16 runs match
        return F.rms_norm(x.float(), x.shape[-1:], self.weight.float(), 1e-6).to(x.dtype)


class Embedder(nn.Module):
    """Linear -> SiLU -> Linear (`mlp.0`, `mlp.2`): the timestep and pooled-text embedders."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(Linear(in_dim, dim), nn.SiLU(), Linear(dim, dim))

    def forward(self, x):
        return self.mlp(x)


class TimestepEmbedder(Embedder):
    """An Embedder of t's 256-channel sinusoid, in dtype (Lumina 2's, HunyuanVideo's, Mochi's)."""

    def __init__(self, dim: int):
        super().__init__(256, dim)

    def forward(self, t, dtype):
        return self.mlp(timestep_embedding(t, 256).to(dtype))


class LinearEmbedder(nn.Module):
    """Linear -> SiLU -> Linear in diffusers' TimestepEmbedding names (`linear_1`, `linear_2`)."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1, self.linear_2 = Linear(in_dim, dim), Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class LinearTimestepEmbedder(LinearEmbedder):
    """A LinearEmbedder of t's 256-channel sinusoid, in dtype (Qwen-Image's, LTX-Video's)."""

    def __init__(self, dim: int):
        super().__init__(256, dim)

    def forward(self, t, dtype):
        return super().forward(timestep_embedding(t, 256).to(dtype))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool, pre_only: bool = False):
        super().__init__()
        self.heads = heads
        self.qkv = Linear(dim, 3 * dim)
        self.proj = None if pre_only else Linear(dim, dim)
        self.ln_q = RMSNorm(dim // heads) if qk_norm else None
        self.ln_k = RMSNorm(dim // heads) if qk_norm else None

    def qkv_heads(self, x):
        """q, k, v as [B, heads, L, head_dim]."""
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if self.ln_q is not None:
            q, k = self.ln_q(q), self.ln_k(k)
        return q, k, v


def joint_attention(q, k, v):
    out = attention(q, k, v)
    return out.transpose(1, 2).flatten(2)  # [B, L, heads * head_dim]


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = Linear(dim, hidden), Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """One stream's half of a joint block. pre_only (the last text block) only feeds keys and
    values; x_self_attn (MMDiT-X) adds attn2 with its own 3 modulation terms."""

    def __init__(self, cfg: MMDiTConfig, pre_only: bool = False, x_self_attn: bool = False):
        super().__init__()
        dim = cfg.hidden_size
        self.pre_only, self.x_self_attn = pre_only, x_self_attn
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, cfg.num_heads, cfg.qk_norm, pre_only)
        if x_self_attn:
            self.attn2 = Attention(dim, cfg.num_heads, cfg.qk_norm)
        if not pre_only:
            self.norm2 = layer_norm(dim)
            self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))
        mods = 2 if pre_only else 9 if x_self_attn else 6
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(dim, mods * dim))

    def pre_attention(self, x, c):
        mods = self.adaLN_modulation(c).chunk(2 if self.pre_only else 9 if self.x_self_attn else 6, dim=1)
        h = self.norm1(x)
        qkv = self.attn.qkv_heads(modulate(h, mods[0], mods[1]))
        qkv2 = self.attn2.qkv_heads(modulate(h, mods[6], mods[7])) if self.x_self_attn else None
        return qkv, qkv2, mods

    def post_attention(self, x, attn, attn2, mods):
        if self.pre_only:
            return None
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods[:6]
        x = x + gate_msa[:, None] * self.attn.proj(attn)
        if self.x_self_attn:
            x = x + mods[8][:, None] * self.attn2.proj(attn2)
        return x + gate_mlp[:, None] * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class JointBlock(nn.Module):
    def __init__(self, cfg: MMDiTConfig, index: int, pre_only: bool | None = None):
        super().__init__()
        self.context_block = Block(cfg, pre_only=index == cfg.depth - 1 if pre_only is None else pre_only)
        self.x_block = Block(cfg, x_self_attn=index in cfg.x_self_attn_layers)

    def forward(self, context, x, c):
        (cq, ck, cv), _, cmods = self.context_block.pre_attention(context, c)
        (xq, xk, xv), x_qkv2, xmods = self.x_block.pre_attention(x, c)
        joint = joint_attention(torch.cat([cq, xq], 2), torch.cat([ck, xk], 2), torch.cat([cv, xv], 2))
        n = context.shape[1]
        attn2 = joint_attention(*x_qkv2) if x_qkv2 is not None else None
        context = self.context_block.post_attention(context, joint[:, :n], None, cmods)
        return context, self.x_block.post_attention(x, joint[:, n:], attn2, xmods)


class PatchEmbed(nn.Module):
    def __init__(self, cfg: MMDiTConfig):
        super().__init__()
        self.proj = Conv2d(cfg.in_channels, cfg.hidden_size, cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class FinalLayer(nn.Module):
    def __init__(self, cfg: MMDiTConfig):
        super().__init__()
        self.norm_final = layer_norm(cfg.hidden_size)
        self.linear = Linear(cfg.hidden_size, cfg.patch_size ** 2 * cfg.out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(cfg.hidden_size, 2 * cfg.hidden_size))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class MMDiT(nn.Module):
    def __init__(self, config: MMDiTConfig):
        super().__init__()
        self.config = cfg = config
        self.x_embedder = PatchEmbed(cfg)
        self.register_buffer("pos_embed", torch.zeros(1, cfg.pos_embed_max_size ** 2, cfg.hidden_size))
        self.t_embedder = Embedder(256, cfg.hidden_size)
        self.y_embedder = Embedder(cfg.adm_in_channels, cfg.hidden_size)
        self.context_embedder = Linear(cfg.context_dim, cfg.hidden_size)
        self.joint_blocks = nn.ModuleList(JointBlock(cfg, i) for i in range(cfg.depth))
        self.final_layer = FinalLayer(cfg)

    def cropped_pos_embed(self, h: int, w: int) -> torch.Tensor:
        """The centre h x w window of the position table (SD3 trains on centre crops of it)."""
        m = self.config.pos_embed_max_size
        if h > m or w > m:
            raise ValueError(f"a {h}x{w}-patch latent exceeds the model's {m}x{m} position table")
        top, left = (m - h) // 2, (m - w) // 2
        table = self.pos_embed.reshape(1, m, m, -1)[:, top:top + h, left:left + w]
        return table.reshape(1, h * w, -1)

    def embed(self, x, sigma, context, y):
        """(image tokens with positions, the adaLN vector, text tokens) for x padded to the patch size."""
        p, dtype = self.config.patch_size, x.dtype
        tokens = self.x_embedder(x) + self.cropped_pos_embed(x.shape[-2] // p, x.shape[-1] // p).to(dtype)
        c = self.t_embedder(timestep_embedding(sigma * 1000).to(dtype)) + self.y_embedder(y.to(dtype))
        return tokens, c, self.context_embedder(context.to(dtype))

    def forward(self, x, sigma, context, y, control=None, **unused):
        """control: {"output": one residual (or None) per joint block, added to its image tokens}
        from ControlNets (graphflow.models.mmdit_controlnet)."""
        p, (H, W) = self.config.patch_size, x.shape[-2:]
        if H % p or W % p:  # odd latent sizes: pad as ComfyUI does, crop the output back
            x = pad_to_patches(x, p)
        h, w = x.shape[-2] // p, x.shape[-1] // p
        tokens, c, context = self.embed(x, sigma, context, y)
        residuals = (control or {}).get("output") or ()
        out = self.final_layer(run_blocks(MMDiTBlocks(self, tokens, context, c, residuals)), c)  # [B, h*w, p*p*C]
        out = out.reshape(-1, h, w, p, p, self.config.out_channels).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(-1, self.config.out_channels, h * p, w * p)[..., :H, :W]


class MMDiTBlocks:
    """MM-DiT's joint blocks, each ControlNet residual added after its block, for
    graphflow.models.block_runner. first() is joint block 0, its probe the image tokens' residual
    over that block alone, ControlNet's residual 0 added after (WaveSpeed's CachedTransformerBlocks
    on joint_blocks); the text tokens are not carried past the stack (the last block is pre-only),
    so no cache needs theirs."""

    def __init__(self, model, hidden, context, c, residuals):
        self.model, self.hidden, self.context, self.c, self.residuals = model, hidden, context, c, residuals

    def _block(self, i, tokens):
        self.context, tokens = self.model.joint_blocks[i](self.context, tokens, self.c)
        return tokens

    def _controlled(self, i, tokens):
        if i < len(self.residuals) and self.residuals[i] is not None:
            tokens = tokens + self.residuals[i]
        return tokens

    def _run(self, tokens, start, stop):
        for i in range(start, stop):
            tokens = self._controlled(i, self._block(i, tokens))
        return tokens

    def first(self):
        # the probe is joint block 0's own residual: ControlNet's residual 0 comes after it, as
        # ComfyUI adds control_o[0] after the pack's swapped one-entry block list
        tokens = self._block(0, self.hidden)
        probe = tokens - self.hidden
        self._after_first = self._controlled(0, tokens)
        return self._after_first, probe

    def rest(self):
        return self._run(self._after_first, 1, len(self.model.joint_blocks))

    def all(self):
        return self._run(self.hidden, 0, len(self.model.joint_blocks))
