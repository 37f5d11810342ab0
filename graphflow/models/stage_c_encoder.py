"""Stable Cascade's Stage C encoder: the EfficientNetV2-S feature extractor (Tan & Le 2021)
followed by a 1x1 convolution to 16 channels and a non-affine BatchNorm, mapping a picture to
Stage C's latent at 1/32 of its size (StableCascade_StageC_VAEEncode resizes the picture first so
that the latent comes out at 1/42). Stability's effnet_encoder.safetensors layout: `backbone.*`
are torchvision's efficientnet_v2_s().features, `mapper.0` the convolution, `mapper.1` the
BatchNorm's running statistics. Pictures are ImageNet-normalised on the way in, as Stability's
training transform and ComfyUI's StageC_coder do. Encode only: it has no decoder."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .file_kind import cascade_stage
from .latent_formats import SC_PRIOR
from .vae import VAESocket

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def is_stage_c_encoder(shapes) -> bool:
    return cascade_stage(shapes) == "effnet"


class StageCEncoder(nn.Module):
    def __init__(self, latent_channels: int = 16):
        super().__init__()
        from torchvision.models import efficientnet_v2_s

        self.backbone = efficientnet_v2_s().features
        self.mapper = nn.Sequential(nn.Conv2d(1280, latent_channels, kernel_size=1, bias=False),
                                    nn.BatchNorm2d(latent_channels, affine=False))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in 0..1 -> [B, 16, H/32, W/32]."""
        return self.mapper(self.backbone((pixels - self.mean) / self.std))


class StageCEncoderVAE(VAESocket):
    """The Stage C encoder as a VAE socket (encode only): IMAGE [B, H, W, 3] 0..1 -> raw Stage C
    latent [B, 16, H/32, W/32]."""

    latent_format = SC_PRIOR
    downscale = 32

    def __init__(self, module: StageCEncoder):
        self.module = module

    @property
    def latent_channels(self) -> int:
        return self.module.mapper[0].out_channels

    def _pixels_in(self, image: torch.Tensor) -> torch.Tensor:
        """IMAGE -> NCHW 0..1 on the device; sizes not a multiple of 32 lose the remainder, centred,
        as ComfyUI's VAE encode crops."""
        f = self.downscale
        if image.dim() != 4 or image.shape[1] < f or image.shape[2] < f:
            raise ValueError(f"the Stage C encoder takes an IMAGE [B, H, W, 3] of at least {f}x{f}, "
                             f"got {tuple(image.shape)}")
        from .vae import centre_crop

        return centre_crop(image, f).to(self.device, self.dtype)

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        from graphflow import memory

        with memory.use(self.module, "vae", "stage_c_encoder"):
            return self.module(self._pixels_in(image)).float().cpu()

    # ComfyUI loads the encoder as a generic image VAE (downscale 32), so VAEEncodeTiled tiles it as
    # any: three tilings of pixel tiles, feathered over overlap / 32 latent positions
    @torch.no_grad()
    def encode_tiled(self, image, tile_size=512, overlap=64):
        """As VAEEncodeTiled: pixel tiles of tile_size overlapping by overlap, three tilings averaged."""
        from graphflow import memory

        from .tiling import encode_image_tiled

        with memory.use(self.module, "vae", "stage_c_encoder"):
            return encode_image_tiled(self.module, self._pixels_in(image), tile_size, overlap, self.downscale,
                                      self.latent_channels).cpu()

    def decode(self, latent):
        raise ValueError("the Stable Cascade Stage C encoder (effnet) only encodes: decode Stage C latents with "
                         "Stage B (StableCascade_StageB_Conditioning + KSampler) and then Stage A")

    decode_tiled = decode


def build_stage_c_encoder(source, device=None, dtype=None) -> StageCEncoder:
    with torch.device("meta"):
        net = StageCEncoder(source.shapes["mapper.0.weight"][0])
    expected = net.state_dict()
    missing = sorted(set(expected) - set(source.shapes))
    if missing:
        raise KeyError(f"Stable Cascade Stage C encoder: {len(missing)} tensors missing, e.g. {', '.join(missing[:3])}")
    net.load_state_dict({k: source.get(k) for k in expected}, assign=True)
    net.mean, net.std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return net.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_stage_c_encoder(path, device=None, dtype=None) -> StageCEncoderVAE:
    from .weight_files import WeightFile

    with WeightFile(Path(path)) as f:
        return StageCEncoderVAE(build_stage_c_encoder(f, device, dtype))
