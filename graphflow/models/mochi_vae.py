"""Mochi 1's video VAE (Genmo), in Genmo's key layout.

Latents [B, 12, F, h, w] -> frames [B, 3, 6(F - 1) + 1, 8h, 8w] in -1..1. Genmo's decoder file
holds `blocks.0.0` (a 1x1x1 convolution to 768 channels) and `blocks.0.{1,2,3}` (residual
blocks), three up blocks `blocks.{1,2,3}` (residual blocks `.blocks.N`, then `.proj`, a linear
map to out x t x 2 x 2 channels rearranged into t frames and 2x2 pixels), `blocks.4` (residual
blocks at 128) and `output_proj` (linear, to RGB). A residual block's `stack` is GroupNorm (32
groups, each frame on its own), SiLU, causal 3x3x3 convolution (2 frames of replicated padding
before, 1 replicated row / column around), GroupNorm, SiLU, convolution, plus its input.
An up block expanding frames t times drops the first t - 1 of them (Genmo's and ComfyUI's
DepthToSpaceTime: the first latent frame is one picture), so F latent frames give 6F - 5.
diffusers' AutoencoderKLMochi keeps them and drops the first 5 at the end instead, which
differs in the first frames only (`drop_per_block=False` computes diffusers' way).

The encoder (pixels [B, 3, 6k + 1, 8h, 8w] in -1..1 -> latent means [B, 12, k + 1, h, w]):
Fourier features of the pixels (each channel, and its sine and cosine at 2^6 and 2^7 turns: 15
channels), `layers.0` (linear, to 128), residual blocks, three down blocks `layers.N` (a causal
convolution `.layers.0` of kernel = stride (t, 2, 2), its first frame replicated t - 1 times
before, then residual blocks `.layers.M`), residual blocks, `output_norm` (GroupNorm), SiLU and
`output_proj` (linear, no bias, to 12 means and 12 log-variances; the means are the latent). A
residual block of the down blocks and after them also carries `attn_block`: GroupNorm, then
attention over the frames of each pixel (heads of 32 channels, queries and keys L2-normalised;
`attn.qkv` without bias, `attn.out`), added to its input. That attention is causal in Genmo's code
and diffusers' but not in ComfyUI's, which graphflow follows (`causal_attention=True`: theirs).

ComfyUI's mochi_vae.safetensors holds the decoder under `decoder.` and the encoder under
`encoder.`; Genmo's own decoder and encoder files have the same keys bare (the decoder file
alone decodes; VAEEncode then refuses the VAE).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .configs import (MochiVAEConfig, MochiVAEEncoderConfig, mochi_vae_config_from_state_dict,  # noqa: F401
                      mochi_vae_encoder_config_from_state_dict)
from .latent_formats import MOCHI
from .vae import VideoVAESocket


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over each frame's channels and pixels (frames on the batch)."""

    def forward(self, x):
        b = x.shape[0]
        y = super().forward(x.transpose(1, 2).flatten(0, 1))
        return y.unflatten(0, (b, -1)).transpose(1, 2)


class CausalConv3d(nn.Conv3d):
    """3x3x3, replicate-padded: two copies of the first frame before it, none after."""

    def forward(self, x):
        return super().forward(F.pad(x, (1, 1, 1, 1, 2, 0), mode="replicate"))


class TemporalAttention(nn.Module):
    """Attention over the frames of each pixel, heads of 32 channels, L2-normed queries and keys."""

    def __init__(self, channels: int, causal: bool = False):
        super().__init__()
        self.heads, self.causal = channels // 32, causal
        self.qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.out = nn.Linear(channels, channels)

    def forward(self, x):
        b, c, f, h, w = x.shape
        tokens = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, f, c)
        q, k, v = self.qkv(tokens).unflatten(-1, (3, self.heads, -1)).transpose(1, 3).unbind(2)  # [N, heads, f, 32]
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal).transpose(1, 2).flatten(2)
        return self.out(out).reshape(b, h, w, f, c).permute(0, 4, 3, 1, 2)


class AttentionBlock(nn.Module):
    def __init__(self, channels: int, causal: bool):
        super().__init__()
        self.norm = FrameGroupNorm(32, channels)
        self.attn = TemporalAttention(channels, causal)

    def forward(self, x):
        return x + self.attn(self.norm(x))


class ResBlock(nn.Module):
    def __init__(self, channels: int, attention: bool = False, causal: bool = False):
        super().__init__()
        self.stack = nn.Sequential(FrameGroupNorm(32, channels), nn.SiLU(), CausalConv3d(channels, channels, 3),
                                   FrameGroupNorm(32, channels), nn.SiLU(), CausalConv3d(channels, channels, 3))
        self.attn_block = AttentionBlock(channels, causal) if attention else None

    def forward(self, x):
        x = x + self.stack(x)
        return x if self.attn_block is None else self.attn_block(x)


class DownConv(nn.Conv3d):
    """Kernel = stride (t, s, s): t frames into one, the first frame replicated t - 1 times before."""

    def forward(self, x):
        t = self.kernel_size[0]
        return super().forward(F.pad(x, (0, 0, 0, 0, t - 1, 0), mode="replicate") if t > 1 else x)


class DownBlock(nn.Module):
    def __init__(self, channels: int, out: int, layers: int, t: int, attention: bool, causal: bool):
        super().__init__()
        self.layers = nn.Sequential(DownConv(channels, out, (t, 2, 2), stride=(t, 2, 2)),
                                    *[ResBlock(out, attention, causal) for _ in range(layers)])

    def forward(self, x):
        return self.layers(x)


def fourier_features(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, ...] -> [B, 15, ...]: x, then sin and cos of x * 2 pi 2^6 and 2^7, each channel's two in turn."""
    xf = x.float()
    w = 2 * math.pi * torch.tensor([2.0 ** 6, 2.0 ** 7], device=x.device)
    h = (xf.unsqueeze(2) * w.view(1, 1, 2, *[1] * (x.ndim - 2))).flatten(1, 2)
    return torch.cat([xf, h.sin(), h.cos()], dim=1).to(x.dtype)


class MochiVAEEncoder(nn.Module):
    def __init__(self, config: MochiVAEEncoderConfig, causal_attention: bool = False):
        super().__init__()
        self.config = cfg = config
        width, n, attention, causal = cfg.channels, cfg.layers, cfg.attention, causal_attention
        self.layers = nn.Sequential(
            nn.Linear(15, width[0]), *[ResBlock(width[0], attention[0], causal) for _ in range(n[0])],
            *[DownBlock(width[i], width[i + 1], n[i + 1], t, attention[i + 1], causal)
              for i, t in enumerate(cfg.temporal_reductions)],
            *[ResBlock(width[-1], attention[-1], causal) for _ in range(n[-1])])
        self.output_norm = FrameGroupNorm(32, width[-1])
        self.output_proj = nn.Linear(width[-1], 2 * cfg.latent_channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels [B, 3, 6k + 1, 8h, 8w] in -1..1 -> latent means [B, 12, k + 1, h, w] (raw)."""
        x = self.layers[0](fourier_features(x).movedim(1, -1)).movedim(-1, 1)
        x = self.layers[1:](x)
        x = self.output_proj(F.silu(self.output_norm(x)).movedim(1, -1)).movedim(-1, 1)
        return x[:, :self.config.latent_channels]


class UpBlock(nn.Module):
    def __init__(self, channels: int, out: int, layers: int, t: int, s: int, drop_per_block: bool):
        super().__init__()
        self.t, self.s, self.drop = t, s, drop_per_block
        self.blocks = nn.ModuleList([ResBlock(channels) for _ in range(layers)])
        self.proj = nn.Linear(channels, out * t * s * s)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        x = self.proj(x.movedim(1, -1)).movedim(-1, 1)
        b, _, f, h, w = x.shape
        t, s = self.t, self.s
        x = x.reshape(b, -1, t, s, s, f, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, -1, f * t, h * s, w * s)
        return x[:, :, t - 1:] if self.drop else x


class MochiVAEDecoder(nn.Module):
    def __init__(self, config: MochiVAEConfig, drop_per_block: bool = True):
        super().__init__()
        self.config = cfg = config
        self.drop_per_block = drop_per_block
        width = cfg.channels
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv3d(cfg.latent_channels, width[0], 1),
                          *[ResBlock(width[0]) for _ in range(cfg.layers[0])]),
            *[UpBlock(width[i], width[i + 1], cfg.layers[i + 1], t, cfg.spatial_expansion, drop_per_block)
              for i, t in enumerate(cfg.temporal_expansions)],
            nn.Sequential(*[ResBlock(width[-1]) for _ in range(cfg.layers[-1])])])
        self.output_proj = nn.Linear(width[-1], cfg.out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latents [B, C, F, h, w] -> pixels [B, 3, 6F - 5, 8h, 8w] in about -1..1."""
        x = z
        for block in self.blocks:
            x = block(x)
        x = self.output_proj(F.silu(x).movedim(1, -1)).movedim(-1, 1)
        if not self.drop_per_block:  # diffusers' way: all frames expanded, the first 5 dropped at the end
            x = x[:, :, self.config.frames_per_latent - 1:]
        return x


class MochiVideoVAE(nn.Module):
    """The decoder and, when the file has one, the encoder (Genmo's names under decoder. / encoder.)."""

    def __init__(self, config: MochiVAEConfig, encoder: MochiVAEEncoderConfig | None = None):
        super().__init__()
        self.config = config
        self.decoder = MochiVAEDecoder(config)
        self.encoder = None if encoder is None else MochiVAEEncoder(encoder)


class MochiVAE(VideoVAESocket):
    """The VAE as a socket: latents [B, 12, F, h, w] (raw, as ComfyUI's VAE takes them; the Mochi
    latent format standardises them for the model) to frames, one IMAGE batch, and back. Encoding
    takes every frame (ComfyUI passes every frame too: F = k + 1 for 6k + 1 frames, other counts as
    the strided convolutions give). Tiled as VideoVAESocket says."""

    latent_format = MOCHI
    title = "the Mochi VAE"
    memory_name = "mochi_vae"

    def __init__(self, module: MochiVideoVAE):
        self.module = module.eval()

    def _decode(self, z):
        return self.module.decoder(z)

    def _encode(self, x):
        return self.module.encoder(x)

    def _pixels_in(self, image):
        if self.module.encoder is None:
            raise ValueError("this Mochi VAE file holds the decoder alone (Genmo's decoder file): encoding needs "
                             "mochi_vae.safetensors, which has the encoder too")
        return super()._pixels_in(image)
