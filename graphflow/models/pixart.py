"""PixArt-α and PixArt-Σ (PixArt-alpha/PixArt-sigma's DiT text-to-image transformers), in the
original files' key layout (PixArt-XL-2-1024-MS.pth, PixArt-Sigma-XL-2-1024-MS.pth):
`x_embedder`, `t_embedder`, `t_block`, `y_embedder.y_proj`, `blocks.N.{attn.qkv, attn.proj,
cross_attn.q_linear, cross_attn.kv_linear, cross_attn.proj, mlp.fc1, mlp.fc2, scale_shift_table}`,
`final_layer`, and α's `csize_embedder` / `ar_embedder`. diffusers' PixArtTransformer2DModel
single files are read through graphflow.models.diffusers_names.pixart_view. The config
(PixArtConfig) lives in graphflow.models.configs, torch-free for detection.

Each block: adaLN-single modulation (one shared `t_block` projection of the timestep embedding
plus the block's own `scale_shift_table`), self-attention, cross-attention to the projected T5
tokens (not modulated), MLP. Epsilon prediction with learned sigma: the network gives 8 channels,
of which the first 4 (eps) are returned, as ComfyUI's model does.

`forward(x, t, context, y=None, attention_mask=None)`:
    x        the latent [B, 4, h, w] (SD1's latent space for α, SDXL's for Σ)
    t        float timesteps [B] in [0, 999]
    context  T5-XXL tokens [B, T, 4096]
    y        α's micro-conditioning [B, 3] = (image height, image width, aspect ratio h/w) in
             pixels; None: the latent's own size, as ComfyUI falls back; ignored by Σ
    attention_mask  [B, T] 1 keep / 0 drop: padding left out as cross-attention keys, as
             diffusers' pipelines mask T5 padding; ComfyUI passes none (its PixArt T5 tokens are
             not padded)

Positional embedding: 2-D sin-cos, computed for the input's patch grid as ComfyUI does: the grid
is scaled to `base_size` = round(mean side / 64) * 64 / patch patches (64 latent pixels: the
512-px image PixArt's scales are counted in; at least one unit) and divided by
`pe_interpolation` (the file's, from its pos_embed buffer; else round(mean side / 64)). At the
training size this is the original model's and diffusers' embedding; at other sizes ComfyUI's.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .cast_layers import Conv2d, Linear
from .configs import PixArtConfig, pixart_config_from_state_dict  # noqa: F401 (torch-free, for detection)
from .unet import timestep_embedding

FREQUENCY_CHANNELS = 256  # sinusoidal width of the timestep and size embeddings
PE_UNIT = 64  # latent pixels per unit of PixArt's positional-embedding scale (512-px images)


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[N, dim]: sin half then cos half, frequencies 1 / 10000^(i / (dim/2))."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2))
    angles = positions.reshape(-1).double()[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def position_embedding(dim: int, grid_h: int, grid_w: int, base_size: float, interpolation: float,
                       device=None) -> torch.Tensor:
    """[grid_h * grid_w, dim], row-major: the width coordinate's half first, then the height's."""
    rows = torch.arange(grid_h, dtype=torch.float64, device=device) / (grid_h / base_size) / interpolation
    cols = torch.arange(grid_w, dtype=torch.float64, device=device) / (grid_w / base_size) / interpolation
    h, w = torch.meshgrid(rows, cols, indexing="ij")
    return torch.cat([sincos_1d(dim // 2, w), sincos_1d(dim // 2, h)], dim=1).float()


def pe_scales(config: PixArtConfig, h: int, w: int) -> tuple[float, float]:
    """(base_size in patches, interpolation) for a latent of h x w (ComfyUI's rule, see above)."""
    units = max(1, round(((h + w) // 2) / PE_UNIT))
    interpolation = config.pe_interpolation if config.pe_interpolation is not None else float(units)
    return units * PE_UNIT // config.patch_size, interpolation


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Embedder(nn.Module):
    """Scalar(s) -> 256-channel sinusoid -> Linear, SiLU, Linear (timestep, size, aspect ratio)."""

    def __init__(self, width: int):
        super().__init__()
        self.mlp = nn.Sequential(Linear(FREQUENCY_CHANNELS, width), nn.SiLU(), Linear(width, width))

    def forward(self, values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[B, n] -> [B, n * width]: each value embedded alone, side by side."""
        b = values.shape[0]
        emb = timestep_embedding(values.reshape(-1), FREQUENCY_CHANNELS).to(dtype)
        return self.mlp(emb).reshape(b, -1)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, out: int | None = None):
        super().__init__()
        self.fc1 = Linear(width, hidden)
        self.fc2 = Linear(hidden, out or width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class CaptionEmbedder(nn.Module):
    def __init__(self, caption_channels: int, width: int):
        super().__init__()
        self.y_proj = MLP(caption_channels, width, width)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = Linear(width, 3 * width)
        self.proj = Linear(width, width)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class CrossAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_linear = Linear(width, width)
        self.kv_linear = Linear(width, 2 * width)
        self.proj = Linear(width, width)

    def forward(self, x, context, mask=None):
        b, n, c = x.shape
        q = self.q_linear(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
        k, v = self.kv_linear(context).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(attention(q, k, v, mask).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, cfg: PixArtConfig):
        super().__init__()
        width = cfg.hidden_size
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(width, cfg.num_heads)
        self.cross_attn = CrossAttention(width, cfg.num_heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(width, int(width * cfg.mlp_ratio))
        self.scale_shift_table = nn.Parameter(torch.zeros(6, width))

    def forward(self, x, context, t0, mask=None):
        mods = self.scale_shift_table[None].to(x.dtype) + t0.reshape(x.shape[0], 6, -1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods.chunk(6, dim=1)
        x = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + self.cross_attn(x, context, mask)
        return x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    def __init__(self, cfg: PixArtConfig):
        super().__init__()
        self.norm_final = nn.LayerNorm(cfg.hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = Linear(cfg.hidden_size, cfg.patch_size ** 2 * cfg.out_channels)
        self.scale_shift_table = nn.Parameter(torch.zeros(2, cfg.hidden_size))

    def forward(self, x, t):
        shift, scale = (self.scale_shift_table[None].to(x.dtype) + t[:, None]).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: PixArtConfig):
        super().__init__()
        self.proj = Conv2d(cfg.in_channels, cfg.hidden_size, cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class PixArt(nn.Module):
    def __init__(self, config: PixArtConfig):
        super().__init__()
        self.config = cfg = config
        width = cfg.hidden_size
        if width % cfg.num_heads or (cfg.micro_condition and width % 3):
            raise ValueError(f"PixArt width {width} must divide into {cfg.num_heads} heads"
                             + (" and 3 (α's size embeddings)" if cfg.micro_condition else ""))
        self.x_embedder = PatchEmbed(cfg)
        self.t_embedder = Embedder(width)
        self.t_block = nn.Sequential(nn.SiLU(), Linear(width, 6 * width))
        self.y_embedder = CaptionEmbedder(cfg.caption_channels, width)
        if cfg.micro_condition:
            self.csize_embedder = Embedder(width // 3)
            self.ar_embedder = Embedder(width // 3)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, y: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        b, _, h, w = x.shape
        p = cfg.patch_size
        if h % p or w % p:
            raise ValueError(f"PixArt needs latent sides divisible by its patch size {p}, got {h}x{w}")
        base, interpolation = pe_scales(cfg, h, w)
        pos = position_embedding(cfg.hidden_size, h // p, w // p, base, interpolation, x.device)
        tokens = self.x_embedder(x) + pos.to(x.dtype)[None]

        temb = self.t_embedder(t.expand(b) if t.numel() == 1 else t, x.dtype)
        if cfg.micro_condition:
            if y is None:  # the latent's own size, as ComfyUI falls back
                y = torch.tensor([[h * 8.0, w * 8.0, h / w]], device=x.device)
            y = y.to(x.device, torch.float32).reshape(-1, 3)
            y = y.expand(b, -1) if y.shape[0] != b else y
            temb = temb + torch.cat([self.csize_embedder(y[:, :2], x.dtype), self.ar_embedder(y[:, 2:], x.dtype)], 1)
        t0 = self.t_block(temb)

        context = self.y_embedder.y_proj(context.to(x.dtype))
        mask = None
        if attention_mask is not None:  # [B, T] keep-mask -> [B, 1, 1, T] for every head and query
            mask = attention_mask.to(device=x.device, dtype=torch.bool)[:, None, None, :]
        for block in self.blocks:
            tokens = block(tokens, context, t0, mask)
        out = self.final_layer(tokens, temb)
        c = cfg.out_channels
        out = out.reshape(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)
        return out[:, :cfg.in_channels]  # eps; the learned-sigma half is not used for sampling
