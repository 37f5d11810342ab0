"""Mochi 1's video VAE decoder (Genmo), in Genmo's key layout.

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

ComfyUI's mochi_vae.safetensors holds this decoder under `decoder.` (and Genmo's encoder under
`encoder.`, which graphflow does not read: VAEEncode refuses this VAE); Genmo's own decoder file
has the same keys bare.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .configs import MochiVAEConfig, mochi_vae_config_from_state_dict  # noqa: F401 (torch-free config)
from .latent_formats import MOCHI
from .vae import VAESocket


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


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.stack = nn.Sequential(FrameGroupNorm(32, channels), nn.SiLU(), CausalConv3d(channels, channels, 3),
                                   FrameGroupNorm(32, channels), nn.SiLU(), CausalConv3d(channels, channels, 3))

    def forward(self, x):
        return x + self.stack(x)


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


class MochiVAE(VAESocket):
    """The decoder as a VAE socket: latents [B, 12, F, h, w] (raw, as ComfyUI's VAE takes them;
    the Mochi latent format standardises them for the model) to frames, one IMAGE batch."""

    latent_format = MOCHI

    def __init__(self, module: MochiVAEDecoder):
        self.module = module.eval()

    def to(self, device=None, dtype=None) -> "MochiVAE":
        self.module.to(device=device, dtype=dtype)
        return self

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        raise ValueError("graphflow reads the Mochi VAE's decoder only: encoding pictures into Mochi latents "
                         "(VAEEncode) is not supported")

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent [B, 12, F, h, w] -> IMAGE [B * (6(F-1)+1), 8h, 8w, 3], the frames of each video in turn."""
        from graphflow import memory

        if latent.dim() != 5 or latent.shape[1] != self.latent_channels:
            raise ValueError(f"the Mochi VAE decodes video latents [B, {self.latent_channels}, frames, h, w], "
                             f"got shape {tuple(latent.shape)}")
        with memory.use(self.module, "vae", "mochi_vae"):
            x = self.module(latent.to(self.device, self.dtype)).float()
        x = ((x + 1) / 2).clamp(0, 1)
        return x.permute(0, 2, 3, 4, 1).reshape(-1, *x.shape[3:], x.shape[1]).contiguous().cpu()

    # fully convolutional; no tiling yet
    def decode_tiled(self, latent, tile_size=512, overlap=64):
        return self.decode(latent)

    def encode_tiled(self, image, tile_size=512, overlap=64):
        return self.encode(image)
