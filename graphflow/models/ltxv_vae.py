"""LTX-Video's causal video VAE (0.9.0), in Lightricks' key layout (`vae.*` without the prefix).

Pixels [B, 3, 1 + 8k, H, W] in -1..1 -> latents [B, 128, 1 + k, H/32, W/32]: a 4x4 pixel
patch folded into channels, then 3D residual blocks (pixel-norm, SiLU, 3x3x3 convolutions) and
three stride-2 convolutions over frames, rows and columns. Encoder convolutions are causal in
time (padded with copies of the first frame), so the first frame is encoded alone and a still
picture is a one-frame video; decoder convolutions pad both ends with the edge frames. Each
decoder upscale is a convolution to 8x the channels unfolded into 2x2x2 (its first frame
dropped). The latent is the posterior mean, normalised per channel by the file's
`per_channel_statistics` (mean-of-means, std-of-means), as ComfyUI's VAE does.

The socket (`LTXVVAE`) takes and gives IMAGE batches: the batch is the frames of one video;
it decodes and encodes in 3-D tiles as ComfyUI's VAEDecodeTiled / VAEEncodeTiled do (vae.VideoVAESocket).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .configs import LTXVVAEConfig, ltxv_vae_config_from_state_dict  # noqa: F401 (torch-free config)
from .latent_formats import LTXV
from .vae import VideoVAESocket


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + eps)


class CausalConv3d(nn.Module):
    """3x3x3 convolution padded in time with copies of the edge frames: all before (causal), or
    half before and half after."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=(0, 1, 1))

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        first, last = x[:, :, :1], x[:, :, -1:]
        x = torch.cat([first, first, x], dim=2) if causal else torch.cat([first, x, last], dim=2)
        return self.conv(x)


class LayerNormWrapper(nn.Module):  # Lightricks' `norm3.norm`: a LayerNorm over channels
    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x):
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = CausalConv3d(in_channels, out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels)
        if in_channels != out_channels:
            self.norm3 = LayerNormWrapper(in_channels)
            self.conv_shortcut = nn.Conv3d(in_channels, out_channels, 1)

    def forward(self, x, causal: bool):
        h = self.conv1(F.silu(pixel_norm(x)), causal)
        h = self.conv2(F.silu(pixel_norm(h)), causal)
        if hasattr(self, "conv_shortcut"):
            x = self.conv_shortcut(self.norm3(x))
        return x + h


class ResGroup(nn.Module):
    def __init__(self, channels: int, layers: int):
        super().__init__()
        self.res_blocks = nn.ModuleList([ResnetBlock(channels, channels) for _ in range(layers)])

    def forward(self, x, causal: bool):
        for block in self.res_blocks:
            x = block(x, causal)
        return x


class Downscale(CausalConv3d):
    def __init__(self, channels: int):
        super().__init__(channels, channels, stride=2)


class Upscale(nn.Module):
    """Depth to space: a convolution to 8x the channels unfolded into 2x2x2 frames, rows and
    columns; the first frame dropped, so F latent frames become 2F - 1."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = CausalConv3d(channels, channels * 8)

    def forward(self, x, causal: bool):
        b, _, f, h, w = x.shape
        x = self.conv(x, causal).reshape(b, -1, 2, 2, 2, f, h, w)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, -1, 2 * f, 2 * h, 2 * w)
        return x[:, :, 1:]


def make_blocks(spec: tuple, channels: int, upscale: bool) -> tuple[nn.ModuleList, int]:
    blocks = nn.ModuleList()
    for kind, value in spec:
        if kind == "res_x":
            blocks.append(ResGroup(channels, value))
        elif kind == "res_x_y":
            blocks.append(ResnetBlock(channels, value))
            channels = value
        else:
            blocks.append(Upscale(channels) if upscale else Downscale(channels))
    return blocks, channels


class Encoder(nn.Module):
    def __init__(self, cfg: LTXVVAEConfig):
        super().__init__()
        self.patch = cfg.patch_size
        self.conv_in = CausalConv3d(3 * cfg.patch_size ** 2, cfg.encoder_channels)
        self.down_blocks, channels = make_blocks(cfg.encoder_blocks, cfg.encoder_channels, upscale=False)
        self.conv_out = CausalConv3d(channels, cfg.latent_channels + 1)  # + one log-variance for all channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        p = self.patch
        # channels ordered (colour, patch column, patch row), as Lightricks fold them
        x = x.reshape(b, c, f, h // p, p, w // p, p).permute(0, 1, 6, 4, 2, 3, 5).reshape(b, -1, f, h // p, w // p)
        x = self.conv_in(x, True)
        for block in self.down_blocks:
            x = block(x, True)
        return self.conv_out(F.silu(pixel_norm(x)), True)[:, :-1]


class Decoder(nn.Module):
    def __init__(self, cfg: LTXVVAEConfig):
        super().__init__()
        self.patch = cfg.patch_size
        self.conv_in = CausalConv3d(cfg.latent_channels, cfg.decoder_channels)
        self.up_blocks, channels = make_blocks(cfg.decoder_blocks, cfg.decoder_channels, upscale=True)
        self.conv_out = CausalConv3d(channels, cfg.out_channels * cfg.patch_size ** 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(z, False)
        for block in self.up_blocks:
            x = block(x, False)
        x = self.conv_out(F.silu(pixel_norm(x)), False)
        b, _, f, h, w = x.shape
        p = self.patch
        x = x.reshape(b, -1, p, p, f, h, w).permute(0, 1, 4, 5, 3, 6, 2)
        return x.reshape(b, -1, f, h * p, w * p)


class PerChannelStatistics(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean-of-means", torch.zeros(channels))
        self.register_buffer("std-of-means", torch.ones(channels))

    def _stats(self):
        return (self.get_buffer(name)[:, None, None, None] for name in ("mean-of-means", "std-of-means"))

    def normalize(self, z):
        mean, std = self._stats()
        return (z - mean) / std

    def unnormalize(self, z):
        mean, std = self._stats()
        return z * std + mean


class LTXVideoVAE(nn.Module):
    def __init__(self, config: LTXVVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.per_channel_statistics = PerChannelStatistics(config.latent_channels)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the file's other statistics (channel, mean-of-stds, ...) are not used
        for name in [k for k in state_dict if k.startswith(prefix + "per_channel_statistics.")]:
            if name.split(".")[-1] not in ("mean-of-means", "std-of-means"):
                state_dict.pop(name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels [B, 3, 1 + 8k, H, W] in -1..1 -> normalised latent mean [B, C, 1 + k, H/32, W/32]."""
        return self.per_channel_statistics.normalize(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.per_channel_statistics.unnormalize(z))


class LTXVVAE(VideoVAESocket):
    """The video VAE as a VAE socket: an IMAGE batch (BHWC, 0..1) is the frames of one video;
    latents [1, 128, F, H/32, W/32] in and out, frames back as one IMAGE batch (8 frames per latent
    frame after the first; encoding takes the first 8k + 1 frames). Tiled as VideoVAESocket says."""

    latent_format = LTXV
    title = "the LTX-Video VAE"
    memory_name = "ltxv_vae"

    def __init__(self, module: LTXVideoVAE):
        self.module = module.eval()

    def _decode(self, z):
        return self.module.decode(z)

    def _encode(self, x):
        return self.module.encode(x)

    def _encode_frames(self, frames: int) -> int:
        return self.pixel_frames(self.latent_frames(frames))  # 1 + 8k: the encoder's causal groups
