"""Stable Cascade's Stage A: Paella's small VQGAN (Rampas et al. 2022), the VAE of Stage B's
4-channel latent at 1/4 of the image size. A different architecture from the LDM VAE: pixel
unshuffle, mixing residual blocks (depthwise + channelwise with six learned modulation scalars)
and a batch-normalised 1x1 bottleneck; ComfyUI decodes the latent as it is, without snapping it
to the codebook, and neither do we.

Keys are Stability's stage_a.safetensors layout (ComfyUI's StageA): in_block, down_blocks,
vquantizer.codebook.weight, up_blocks, out_block. Images are 0..1 in and out (no -1..1 mapping).
The sampler's model space is latent * (1 / 0.43) (latent_formats.SC_B)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .file_kind import cascade_stage
from .latent_formats import SC_B
from .vae import VAESocket, centre_crop


@dataclass(frozen=True)
class StageAConfig:
    width: int = 384  # of the lower level; levels have width // 2 ** (levels - 1 - i)
    levels: int = 2
    bottleneck_blocks: int = 12
    latent_channels: int = 4
    codebook_size: int = 8192
    scale: int = 2  # pixel (un)shuffle factor; the latent is at 1 / (scale * 2 ** (levels - 1))

    @property
    def level_widths(self) -> list[int]:
        return [self.width // 2 ** i for i in reversed(range(self.levels))]

    @property
    def downscale(self) -> int:
        return self.scale * 2 ** (self.levels - 1)


def is_stage_a(shapes) -> bool:
    return cascade_stage(shapes) == "a"


def stage_a_config_from_shapes(shapes) -> StageAConfig:
    codebook = shapes["vquantizer.codebook.weight"]
    in_conv = shapes["in_block.1.weight"]
    scale = int(round((in_conv[1] / 3) ** 0.5))
    levels = 1 + sum(1 for k, s in shapes.items()
                     if k.startswith("down_blocks.") and k.endswith(".weight") and len(s) == 4 and s[2] == 4)
    first_up_blocks = sum(1 for k in shapes if k.startswith("up_blocks.") and k.endswith(".gammas"))
    return StageAConfig(width=in_conv[0] * 2 ** (levels - 1), levels=levels,
                        bottleneck_blocks=first_up_blocks - (levels - 1), latent_channels=codebook[1],
                        codebook_size=codebook[0], scale=scale)


class MixingBlock(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.depthwise = nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(width, width, kernel_size=3, groups=width))
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.channelwise = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.gammas = nn.Parameter(torch.zeros(6))

    def forward(self, x):
        g = self.gammas
        h = self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) * (1 + g[0]) + g[1]
        x = x + self.depthwise(h) * g[2]
        h = self.norm2(x.permute(0, 2, 3, 1)) * (1 + g[3]) + g[4]
        return x + self.channelwise(h).permute(0, 3, 1, 2) * g[5]


class Codebook(nn.Module):
    def __init__(self, size: int, channels: int):
        super().__init__()
        self.codebook = nn.Embedding(size, channels)


class StageA(nn.Module):
    def __init__(self, config: StageAConfig = StageAConfig()):
        super().__init__()
        self.config = c = config
        w = c.level_widths
        self.in_block = nn.Sequential(nn.PixelUnshuffle(c.scale), nn.Conv2d(3 * c.scale ** 2, w[0], kernel_size=1))
        down = []
        for i in range(c.levels):
            if i > 0:
                down.append(nn.Conv2d(w[i - 1], w[i], kernel_size=4, stride=2, padding=1))
            down.append(MixingBlock(w[i], w[i] * 4))
        down.append(nn.Sequential(nn.Conv2d(w[-1], c.latent_channels, kernel_size=1, bias=False),
                                  nn.BatchNorm2d(c.latent_channels)))
        self.down_blocks = nn.Sequential(*down)
        self.vquantizer = Codebook(c.codebook_size, c.latent_channels)  # kept for the file's keys; decode skips it
        up = [nn.Sequential(nn.Conv2d(c.latent_channels, w[-1], kernel_size=1))]
        for i in range(c.levels):
            width = w[c.levels - 1 - i]
            up += [MixingBlock(width, width * 4) for _ in range(c.bottleneck_blocks if i == 0 else 1)]
            if i < c.levels - 1:
                up.append(nn.ConvTranspose2d(width, w[c.levels - 2 - i], kernel_size=4, stride=2, padding=1))
        self.up_blocks = nn.Sequential(*up)
        self.out_block = nn.Sequential(nn.Conv2d(w[0], 3 * c.scale ** 2, kernel_size=1), nn.PixelShuffle(c.scale))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_blocks(self.in_block(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.out_block(self.up_blocks(z))


def build_stage_a(source, device=None, dtype=None) -> StageA:
    config = stage_a_config_from_shapes(source.shapes)
    with torch.device("meta"):
        net = StageA(config)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(source.shapes))
    if missing:
        raise KeyError(f"Stable Cascade Stage A: {len(missing)} tensors missing, e.g. {', '.join(missing[:3])}")
    net.load_state_dict({k: source.get(k) for k in expected}, assign=True)
    return net.to(device=device, dtype=dtype).eval().requires_grad_(False)


class StageAVAE(VAESocket):
    """Stage A as a VAE socket: raw latents [B, 4, H/4, W/4] in and out, images in ComfyUI's
    convention (BHWC, CPU float32). Pixels are 0..1 both ways with no mapping, and the decode is
    not clamped: ComfyUI passes Stage A's output through as it is (its process_output is the
    identity), so an IMAGE may stray a little outside 0..1 until it is saved (savers clip)."""

    latent_format = SC_B

    def __init__(self, module: StageA):
        self.module = module

    def _check_latent(self, latent: torch.Tensor):
        if latent.dim() != 4 or latent.shape[1] != self.latent_channels:
            raise ValueError(f"Stable Cascade Stage A decodes Stage B latents [B, {self.latent_channels}, h, w], "
                             f"got shape {tuple(latent.shape)} (a Stage C latent goes through Stage B first)")

    def _check_image(self, image: torch.Tensor):
        f = self.downscale
        if image.dim() != 4 or image.shape[1] < f or image.shape[2] < f:
            raise ValueError(f"Stage A encodes an IMAGE [B, H, W, 3] of at least {f}x{f}, got {tuple(image.shape)}")

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        from graphflow import memory

        self._check_latent(latent)
        with memory.use(self.module, "vae", "stage_a"):
            x = self.module.decode(latent.to(self.device, self.dtype))
            return x.float().permute(0, 2, 3, 1).contiguous().cpu()

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        from graphflow import memory

        self._check_image(image)
        with memory.use(self.module, "vae", "stage_a"):
            return self.module.encode(self._pixels_in(image)).float().cpu()

    def _pixels_in(self, image: torch.Tensor) -> torch.Tensor:
        """IMAGE -> NCHW 0..1 on the device, cut to multiples of the downscale around the centre as
        ComfyUI's VAE encode cuts every VAE's input (the odd pixel off the bottom / right)."""
        return centre_crop(image, self.downscale).to(self.device, self.dtype)

    # ComfyUI runs Stage A through its generic VAE, so the tiled nodes tile it as any image VAE
    # (graphflow.models.tiling.three_tilings), in pixels 0..1 both ways (no -1..1 mapping there)
    @torch.no_grad()
    def decode_tiled(self, latent, tile_size=512, overlap=64):
        """As VAEDecodeTiled: overlap cut to tile_size // 4, latent tiles of tile_size // 4, three
        tilings averaged, not clamped (as the plain decode)."""
        from graphflow import memory

        from .tiling import decode_image_tiled

        self._check_latent(latent)
        with memory.use(self.module, "vae", "stage_a"):
            x = decode_image_tiled(self.module.decode, latent.to(self.device, self.dtype), tile_size, overlap,
                                   self.downscale, 3)
        return x.permute(0, 2, 3, 1).contiguous().cpu()

    @torch.no_grad()
    def encode_tiled(self, image, tile_size=512, overlap=64):
        """As VAEEncodeTiled: pixel tiles of tile_size overlapping by overlap, three tilings averaged."""
        from graphflow import memory

        from .tiling import encode_image_tiled

        self._check_image(image)
        with memory.use(self.module, "vae", "stage_a"):
            return encode_image_tiled(self.module.encode, self._pixels_in(image), tile_size, overlap, self.downscale,
                                      self.latent_channels).cpu()


def load_stage_a(path, device=None, dtype=None) -> StageAVAE:
    from .weight_files import WeightFile

    with WeightFile(Path(path)) as f:
        return StageAVAE(build_stage_a(f, device, dtype))
