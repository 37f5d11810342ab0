"""SVD's VAE: the SD encoder with a temporal decoder (Stability's sgm `VideoDecoder`, time_mode
"conv-only"; diffusers' AutoencoderKLTemporalDecoder), as ComfyUI runs it.

The decoder is graphflow.models.vae's with every ResnetBlock followed by a temporal ResBlock
(3x1x1 convolutions over the frames; sigmoid(mix_factor) weighs the temporal result) and a 3x1x1
convolution over the frames after conv_out (`conv_out.time_mix_conv`). Encoding is per image.
The decoder takes the frames on the batch dimension and sees each call's batch as one video: the
socket decodes a video in chunks of frames (ComfyUI decodes as many frames at once as fit in
memory, each batch one video), smaller chunks when memory runs out. No quant convs (sgm's
AutoencodingEngine has none).

Checkpoint names: `first_stage_model.decoder.mid.block_1.time_stack.*`, `...block_1.mix_factor`,
`first_stage_model.decoder.conv_out.time_mix_conv.*`.
"""

import torch
from torch import nn

from .configs import VAEConfig
from .latent_formats import SD1
from .svd import TemporalResBlock, from_video, to_video
from .vae import VAE, AutoencoderKL, Decoder, OutOfMemoryError, ResnetBlock, _fast_layout, _on_device

SVD_VAE = VAEConfig(use_quant_conv=False)  # svd.safetensors' first_stage_model


class VideoResnetBlock(ResnetBlock):
    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__(in_channels, out_channels, groups)
        self.time_stack = TemporalResBlock(out_channels, 0, groups)
        self.mix_factor = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_video(super().forward(x), x.shape[0])
        alpha = torch.sigmoid(self.mix_factor).to(x.dtype)
        return from_video(alpha * self.time_stack(x) + (1.0 - alpha) * x)


class VideoConvOut(nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=1)
        self.time_mix_conv = nn.Conv3d(out_channels, out_channels, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return from_video(self.time_mix_conv(to_video(x, x.shape[0])))


def _video_blocks(module: nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is ResnetBlock:
            video = VideoResnetBlock(child.conv1.in_channels, child.conv1.out_channels, child.norm1.num_groups)
            setattr(module, name, video)
        else:
            _video_blocks(child)


class TemporalDecoder(Decoder):
    """The SD decoder, all of its input batch one video."""

    def __init__(self, cfg: VAEConfig):
        super().__init__(cfg)
        _video_blocks(self)
        self.conv_out = VideoConvOut(self.conv_out.in_channels, self.conv_out.out_channels)


class AutoencoderKLTemporal(AutoencoderKL):
    def __init__(self, config: VAEConfig = SVD_VAE):
        super().__init__(config)
        self.decoder = TemporalDecoder(config)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent [frames, C, h, w] of one video -> pixels [frames, 3, 8h, 8w]."""
        if self.config.use_quant_conv:
            z = self.post_quant_conv(z)
        return self.decoder(_fast_layout(z)).contiguous()


class VideoVAE(VAE):
    """The VAE socket of a temporal-decoder VAE: decodes a latent batch of video frames in chunks
    of `chunk_frames` (all at once when None; halved while memory runs out), each chunk one video.
    Tiled decoding decodes frame by frame, each frame a one-frame video, as ComfyUI's does (its
    tiler takes the batch one sample at a time), so the temporal layers see no neighbours there."""

    chunk_frames: int | None = None

    def __init__(self, module: AutoencoderKLTemporal):
        super().__init__(module, SD1)

    @torch.no_grad()
    @_on_device
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        z = self._latent_in(latent)
        chunk = self.chunk_frames or z.shape[0]
        while True:
            try:
                return torch.cat([self._pixels_out(self.module.decode(z[i:i + chunk]))
                                  for i in range(0, z.shape[0], chunk)])
            except OutOfMemoryError:
                if chunk == 1:
                    raise
            chunk = max(1, chunk // 2)  # outside the except block, so the failed attempt's tensors are freed
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def decode_tiled(self, latent: torch.Tensor, tile_size: int = 512, overlap: int = 64) -> torch.Tensor:
        """As ComfyUI's VAEDecodeTiled: each frame alone through VAE.decode_tiled's three tilings."""
        self._latent_in(latent[:0])  # the shape check, before any work
        return torch.cat([super(VideoVAE, self).decode_tiled(latent[i:i + 1], tile_size, overlap)
                          for i in range(latent.shape[0])])
