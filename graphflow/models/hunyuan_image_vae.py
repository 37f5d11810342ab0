"""HunyuanImage 2.1's VAE (hunyuan_image_2.1_vae_fp16.safetensors): 2-D, 64 latent channels, 32x
spatial compression, in ComfyUI's LDM-like names (encoder.down.N.block.M, .downsample.conv,
encoder.mid.{block_1, attn_1, block_2}, norm_out, conv_out; the decoder's up.N in the order it runs,
up.0 the deepest; no quant convs).

LDM's res blocks and one-head mid attention (graphflow.models.vae) with two differences: each
resolution change is a pixel shuffle, the convolution's output rearranged 2x2 into (out of) the
channels, plus a parameter-free shortcut, the input itself rearranged the same way and averaged over
channel groups (down) or repeated (up); and both ends add such a shortcut, the encoder's last
features averaged down to the moments' channels, the latent repeated up to the decoder's width.
The latent's mean is the encoding (ComfyUI's DiagonalGaussianRegularizer without sampling).
"""

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from .configs import (HunyuanImageVAEConfig, hunyuan_image_vae_config_from_state_dict,  # noqa: F401 (torch-free)
                      is_hunyuan_image_vae)
from .vae import MidBlock, ResnetBlock, _fast_layout, _norm


def to_blocks(x: torch.Tensor) -> torch.Tensor:
    """[B, C, 2h, 2w] -> [B, 4C, h, w]: each 2x2 block's pixels into the channels (row offset, column
    offset, channel)."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def from_blocks(x: torch.Tensor) -> torch.Tensor:
    """to_blocks' inverse: [B, 4C, h, w] -> [B, C, 2h, 2w]."""
    b, c, h, w = x.shape
    return x.reshape(b, 2, 2, c // 4, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, c // 4, 2 * h, 2 * w)


def channels_down(x: torch.Tensor, c: int) -> torch.Tensor:
    """[B, n c, ...] -> [B, c, ...]: each output channel the mean of its group of n (the shortcut in)."""
    return x.reshape(x.shape[0], c, -1, *x.shape[2:]).mean(2)


def channels_up(x: torch.Tensor, c: int) -> torch.Tensor:
    """[B, c / n, ...] -> [B, c, ...]: each channel repeated n times (the shortcut out)."""
    return x.repeat_interleave(c // x.shape[1], 1)


class Downsample(nn.Module):
    """Half size: conv to cout/4 channels, its 2x2 blocks into the channels, plus the input's blocks
    averaged over groups of 4 cin / cout channels."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout // 4, 3, padding=1)

    def forward(self, x):
        y = to_blocks(self.conv(x))
        r = to_blocks(x)
        return y + channels_down(r, y.shape[1])


class Upsample(nn.Module):
    """Double size: conv to 4 cout channels laid out as 2x2 blocks, plus the input with each channel
    repeated 4 cout / cin times, laid out the same way."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return from_blocks(y) + from_blocks(channels_up(x, y.shape[1]))


def stages(widths: tuple, levels: int, blocks: int, block, resample, name: str) -> tuple[nn.ModuleList, int]:
    """Stages of `blocks` res blocks (block(cin, cout)) at each width, the first `levels` ending in a
    resampling to the next width (`name`: resample(stage, cin, cout); ComfyUI's *_match_channel);
    -> (stages, the last width)."""
    out, ch = nn.ModuleList(), widths[0]
    for i, width in enumerate(widths):
        stage = nn.Module()
        stage.block = nn.ModuleList(block(ch if j == 0 else width, width) for j in range(blocks))
        ch = width
        if i < levels:
            following = widths[i + 1] if i + 1 < len(widths) else ch
            setattr(stage, name, resample(i, ch, following))
            ch = following
        out.append(stage)
    return out, ch


def run_stages(stages_, x):
    for stage in stages_:
        for block in stage.block:
            x = block(x)
        for name in ("downsample", "upsample"):
            if hasattr(stage, name):
                x = getattr(stage, name)(x)
    return x


def image_parts(cfg: HunyuanImageVAEConfig) -> SimpleNamespace:
    """The layers Encoder / Decoder are built of, the image VAE's (2-D, GroupNorm): conv(cin, cout) a 3x3
    convolution, norm(channels), block(cin, cout) a res block, mid(channels) the mid block, down / up(stage,
    cin, cout) the resamplings (the refiner VAE passes its causal 3-D ones)."""
    g = cfg.groups
    return SimpleNamespace(conv=lambda cin, cout: nn.Conv2d(cin, cout, 3, padding=1), norm=lambda c: _norm(c, g),
                           block=lambda cin, cout: ResnetBlock(cin, cout, g), mid=lambda c: MidBlock(c, g, True),
                           down=lambda i, cin, cout: Downsample(cin, cout), up=lambda i, cin, cout: Upsample(cin, cout))


class Encoder(nn.Module):
    def __init__(self, cfg: HunyuanImageVAEConfig, parts: SimpleNamespace | None = None):
        super().__init__()
        parts = parts or image_parts(cfg)
        self.z_channels = cfg.z_channels
        widths = tuple(cfg.block_out_channels)
        self.conv_in = parts.conv(3, widths[0])
        self.down, ch = stages(widths, cfg.levels, cfg.num_res_blocks, parts.block, parts.down, "downsample")
        self.mid = parts.mid(ch)
        self.norm_out = parts.norm(ch)
        self.conv_out = parts.conv(ch, 2 * cfg.z_channels)

    def forward(self, x):
        x = self.mid(run_stages(self.down, self.conv_in(x)))
        skip = channels_down(x, 2 * self.z_channels)
        return self.conv_out(F.silu(self.norm_out(x))) + skip


class Decoder(nn.Module):
    def __init__(self, cfg: HunyuanImageVAEConfig, parts: SimpleNamespace | None = None):
        super().__init__()
        parts = parts or image_parts(cfg)
        widths = tuple(reversed(cfg.block_out_channels))
        self.conv_in = parts.conv(cfg.z_channels, widths[0])
        self.mid = parts.mid(widths[0])
        self.up, ch = stages(widths, cfg.levels, cfg.num_res_blocks + 1, parts.block, parts.up, "upsample")
        self.norm_out = parts.norm(ch)
        self.conv_out = parts.conv(ch, cfg.out_channels)

    def forward(self, z):
        x = self.conv_in(z)
        x = x + channels_up(z, x.shape[1])
        x = run_stages(self.up, self.mid(x))
        return self.conv_out(F.silu(self.norm_out(x)))


class HunyuanImageVAEModel(nn.Module):
    """The network behind graphflow.models.vae.VAE (its image socket: tiling, encode/decode nodes)."""

    def __init__(self, config: HunyuanImageVAEConfig):
        super().__init__()
        self.config = config
        self.encoder, self.decoder = Encoder(config), Decoder(config)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels [B, 3, H, W] in -1..1 -> posterior (mean, logvar), each [B, 64, H/32, W/32]."""
        mean, logvar = self.encoder(_fast_layout(x)).contiguous().chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent [B, 64, h, w] -> pixels [B, 3, 32h, 32w], roughly -1..1 (not clamped)."""
        return self.decoder(_fast_layout(z)).contiguous()
