"""HunyuanVideo 1.0's causal 3-D VAE (hunyuan_video_vae_bf16.safetensors): 16 latent channels, 8x
spatial and 4x temporal compression (1 + 4k frames -> 1 + k latent frames), in the LDM layout ComfyUI's
file holds and ComfyUI builds (its AutoencoderKL with conv3d and time_compress 4):

    encoder.conv_in.conv, encoder.down.N.block.M.{norm1, conv1.conv, norm2, conv2.conv, nin_shortcut.conv},
    encoder.down.N.downsample.conv.conv, encoder.mid.{block_1, attn_1.{norm, q, k, v, proj_out}, block_2},
    encoder.norm_out, encoder.conv_out.conv, quant_conv, post_quant_conv, and the decoder likewise
    (decoder.up.N in LDM's order: up.0 is the last stage run, at full resolution)

It is the SD VAE's network (graphflow.models.vae) in three dimensions: every 3x3x3 convolution is
causal in time (padded by replicating the first frame twice before, and the edge rows and columns
once around); the first down / last up stage resamples space only, the other two space and time (the
first frame on its own: a latent's first frame is one picture). The mid-block attention runs over all
of a video's frames at once, as ComfyUI's does (diffusers' AutoencoderKLHunyuanVideo masks it causally
frame by frame; both agree on a one-frame latent). The latent's mean is the encoding (ComfyUI's).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .configs import (HUNYUAN_VIDEO_VAE_MARKER, HunyuanVideoVAEConfig,  # noqa: F401 (configs.py: torch-free)
                      hunyuan_video_vae_config_from_state_dict, is_hunyuan_video_vae)
from .latent_formats import HUNYUAN_VIDEO
from .vae import VideoVAESocket, _norm

class CausalConv(nn.Module):
    """ComfyUI's VideoConv3d: a Conv3d (`.conv`) after replicate padding, two frames before and none
    after (kernel 3), or none at all (kernel 1)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride=1):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride)
        self.pad = (1, 1, 1, 1, 2, 0) if kernel == 3 else None

    def forward(self, x):
        return self.conv(x if self.pad is None else F.pad(x, self.pad, mode="replicate"))


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int | None = None, norm=None):
        super().__init__()
        # norm(channels) makes the norms (HunyuanImage's refiner VAE: its RMS norm), else GroupNorm(groups)
        norm = norm or (lambda channels: _norm(channels, groups))
        self.norm1, self.conv1 = norm(cin), CausalConv(cin, cout)
        self.norm2, self.conv2 = norm(cout), CausalConv(cout, cout)
        self.nin_shortcut = CausalConv(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """One-head self-attention over every position of the video (1x1x1 convolutions as projections)."""

    def __init__(self, channels: int, groups: int | None = None, norm=None):
        super().__init__()
        # norm(channels) makes the norm (HunyuanImage's refiner VAE: its RMS norm), else GroupNorm(groups)
        self.norm = _norm(channels, groups) if norm is None else norm(channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv3d(channels, channels, 1) for _ in range(4))

    def forward(self, x):
        h = self.norm(x)
        b, c, t, hh, w = x.shape
        q, k, v = (p(h).flatten(2).transpose(1, 2)[:, None] for p in (self.q, self.k, self.v))
        out = attention(q, k, v)[:, 0].transpose(1, 2).reshape(b, c, t, hh, w)
        return x + self.proj_out(out)


class MidBlock(nn.Module):
    """mid.{block_1, attn_1, block_2} (graphflow.models.vae.MidBlock's in 3-D); norm(channels) makes the
    norms (HunyuanImage's refiner VAE: its RMS norm), else GroupNorm(groups)."""

    def __init__(self, channels: int, groups: int | None = None, norm=None):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, groups, norm)
        self.attn_1 = AttnBlock(channels, groups, norm)
        self.block_2 = ResnetBlock(channels, channels, groups, norm)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class Downsample(nn.Module):
    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.conv = CausalConv(channels, channels, 3, stride=(2 if temporal else 1, 2, 2))

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest 2x in space (and in time for all frames but the first), then a causal conv."""

    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.temporal = temporal
        self.conv = CausalConv(channels, channels)

    def forward(self, x):
        if not self.temporal:
            return self.conv(F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest"))
        frames = [F.interpolate(x[:, :, :1], scale_factor=(1, 2, 2), mode="nearest")]
        if x.shape[2] > 1:
            frames.append(F.interpolate(x[:, :, 1:], scale_factor=(2, 2, 2), mode="nearest"))
        return self.conv(torch.cat(frames, dim=2))


class Encoder(nn.Module):
    def __init__(self, cfg: HunyuanVideoVAEConfig):
        super().__init__()
        g, widths = cfg.groups, [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = CausalConv(3, cfg.ch)
        self.down = nn.ModuleList()
        cin = cfg.ch
        for i, cout in enumerate(widths):
            stage = nn.Module()
            stage.block = nn.ModuleList(ResnetBlock(cin if j == 0 else cout, cout, g)
                                        for j in range(cfg.num_res_blocks))
            if i < len(widths) - 1:
                stage.downsample = Downsample(cout, cfg.temporal_down(i))
            self.down.append(stage)
            cin = cout
        self.mid = MidBlock(cin, g)
        self.norm_out = _norm(cin, g)
        self.conv_out = CausalConv(cin, 2 * cfg.z_channels)

    def forward(self, x):
        h = self.conv_in(x)
        for stage in self.down:
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, cfg: HunyuanVideoVAEConfig):
        super().__init__()
        g, widths = cfg.groups, [cfg.ch * m for m in cfg.ch_mult]
        cin = widths[-1]
        self.conv_in = CausalConv(cfg.z_channels, cin)
        self.mid = MidBlock(cin, g)
        up = []
        for i in reversed(range(len(widths))):
            stage = nn.Module()
            stage.block = nn.ModuleList(ResnetBlock(cin if j == 0 else widths[i], widths[i], g)
                                        for j in range(cfg.num_res_blocks + 1))
            if i > 0:
                stage.upsample = Upsample(widths[i], cfg.temporal_up(i))
            up.insert(0, stage)
            cin = widths[i]
        self.up = nn.ModuleList(up)
        self.norm_out = _norm(cin, g)
        self.conv_out = CausalConv(cin, 3)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class HunyuanVideoVAEModel(nn.Module):
    def __init__(self, config: HunyuanVideoVAEConfig):
        super().__init__()
        self.config = config
        self.encoder, self.decoder = Encoder(config), Decoder(config)
        z = config.z_channels
        self.quant_conv = nn.Conv3d(2 * z, 2 * z, 1)
        self.post_quant_conv = nn.Conv3d(z, z, 1)

    def encode(self, x):
        """Pixels [B, 3, frames, H, W] in -1..1 -> the latent's mean [B, 16, 1 + (frames - 1) // 4, H/8, W/8]."""
        return self.quant_conv(self.encoder(x))[:, :self.config.z_channels]

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


class HunyuanVideoVAE(VideoVAESocket):
    """HunyuanVideo's VAE as a VAE socket: an IMAGE batch (BHWC, 0..1) is the frames of one video;
    raw latents [1, 16, frames, H/8, W/8] out; decodes video latents [B, 16, F, h, w] (each video's
    4(F - 1) + 1 frames in turn). Tiled as VideoVAESocket says (ComfyUI's VAEDecodeTiled defaults:
    512 px tiles overlapping by 64, 64 frames overlapping by 8)."""

    latent_format = HUNYUAN_VIDEO
    title = "the HunyuanVideo VAE"
    memory_name = "hunyuan_video_vae"

    def __init__(self, module: HunyuanVideoVAEModel):
        self.module = module.eval()

    def _decode(self, z):
        return self.module.decode(z)

    def _encode(self, x):
        return self.module.encode(x)
