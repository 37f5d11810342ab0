"""HunyuanImage 2.1's refiner VAE (hunyuan_image_refiner_vae_fp16.safetensors): 32 latent channels, 16x in
space, in ComfyUI's names (encoder.down.N.block.M.{norm1.gamma, conv1.conv}, .downsample.conv.conv,
mid.{block_1, attn_1, block_2}, norm_out.gamma, conv_out.conv; the decoder's up.N in the order it runs).

HunyuanImage 2.1's VAE (graphflow.models.hunyuan_image_vae: pixel-shuffle resamplings with their
parameter-free shortcuts, the same stages and end shortcuts) made causal 3-D: convolutions see two
replicated frames before (HunyuanVideo's CausalConv), norms are RMS over the channels, and the resamplings
that also act in time treat a picture as a video's first frame: going down, the shuffled convolution is
duplicated into the time slot; going up, only the first half of its channels are kept.

Only images are read (one frame in, one latent frame; ComfyUI's VAE for the refiner takes an IMAGE batch as
separate pictures): a longer video, which would need HunyuanVideo 1.5's frame chunks, is refused. The
latent's mean is the encoding.
"""

from types import SimpleNamespace

import torch
from torch import nn

from .configs import (HunyuanImageRefinerVAEConfig, hunyuan_image_refiner_vae_config_from_state_dict,  # noqa: F401
                      is_hunyuan_image_refiner_vae)
from .hunyuan_image_vae import Decoder, Encoder, channels_down, channels_up, from_blocks, to_blocks
from .hunyuan_video_vae import CausalConv, MidBlock, ResnetBlock
from .latent_formats import HUNYUAN_IMAGE21_REFINER
from .vae import VAE
from .wan_vae import RMSNorm


def _block(cin: int, cout: int) -> nn.Module:
    return ResnetBlock(cin, cout, norm=RMSNorm)


class Downsample(nn.Module):
    """Half size (a first frame's pair: the frame twice): conv to cout / 4 (/ 8 pairing frames), 2x2 blocks
    into the channels, plus the input's blocks averaged down to cout channels."""

    def __init__(self, cin: int, cout: int, temporal: bool):
        super().__init__()
        self.conv, self.temporal = CausalConv(cin, cout // (8 if temporal else 4)), temporal

    def forward(self, x):
        y = to_blocks(self.conv(x)[:, :, 0])
        if self.temporal:
            y = torch.cat([y, y], dim=1)
        r = to_blocks(x[:, :, 0])
        return (y + channels_down(r, y.shape[1]))[:, :, None]


class Upsample(nn.Module):
    """Double size (a first frame stays one: the first half of the channels): conv to 4 (8) cout channels as
    2x2 blocks, plus the input repeated to 4 cout channels laid out the same way."""

    def __init__(self, cin: int, cout: int, temporal: bool):
        super().__init__()
        self.conv, self.temporal = CausalConv(cin, cout * (8 if temporal else 4)), temporal

    def forward(self, x):
        y = from_blocks(self.conv(x)[:, :, 0])
        if self.temporal:
            y = y[:, :y.shape[1] // 2]
        r = from_blocks(channels_up(x[:, :, 0], 4 * y.shape[1]))
        return (y + r)[:, :, None]


def _parts(cfg: HunyuanImageRefinerVAEConfig) -> SimpleNamespace:
    """The image VAE's Encoder / Decoder layers made causal 3-D (hunyuan_image_vae.image_parts)."""
    return SimpleNamespace(conv=CausalConv, norm=RMSNorm, block=_block, mid=lambda c: MidBlock(c, norm=RMSNorm),
                           down=lambda i, cin, cout: Downsample(cin, cout, cfg.temporal_down(i)),
                           up=lambda i, cin, cout: Upsample(cin, cout, cfg.temporal_up(i)))


class HunyuanImageRefinerVAEModel(nn.Module):
    """On images as one-frame videos: encode [B, 3, H, W] -> (mean, logvar) [B, 32, H/16, W/16] and decode
    back, the frame axis added and dropped inside (what graphflow.models.vae.VAE, the image socket, calls)."""

    def __init__(self, config: HunyuanImageRefinerVAEConfig):
        super().__init__()
        self.config = config
        self.encoder, self.decoder = Encoder(config, _parts(config)), Decoder(config, _parts(config))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x[:, :, None]).contiguous()[:, :, 0].chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z[:, :, None])[:, :, 0].contiguous()


class HunyuanImageRefinerVAE(VAE):
    """The refiner VAE as a VAE socket: an IMAGE batch encodes picture by picture to latents [B, 32, 1, h, w]
    (ComfyUI's, one frame each, in the HunyuanImage21Refiner format), which decode back to B pictures;
    tiling as the image VAE's."""

    def __init__(self, module: HunyuanImageRefinerVAEModel):
        self.module = module.eval()
        self.latent_format = HUNYUAN_IMAGE21_REFINER

    def _latent_in(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.dim() == 5 and latent.shape[2] == 1:
            latent = latent[:, :, 0]
        elif latent.dim() == 5:
            raise ValueError(f"the HunyuanImage refiner VAE decodes one-frame latents [B, 32, 1, h, w], got "
                             f"{tuple(latent.shape)} (videos, HunyuanVideo 1.5's, are not supported)")
        return super()._latent_in(latent)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return super().encode(image)[:, :, None]

    def encode_tiled(self, image: torch.Tensor, tile_size: int = 512, overlap: int = 64) -> torch.Tensor:
        return super().encode_tiled(image, tile_size, overlap)[:, :, None]
