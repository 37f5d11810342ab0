"""TAESD: the tiny autoencoder (madebyollin/taesd) for fast previews and fast full decodes.

One architecture for all four releases; only the latent channels differ: TAESD (SD1/SD2) and
TAESDXL have 4, TAESD3 and TAEF1 have 16. The modules are `nn.Sequential`s in the original order,
so the files people download load as they are: `taesd_encoder.safetensors` holds keys
"0.weight", "1.conv.0.weight", ... and `taesd_decoder.safetensors` "1.weight", "3.conv.0.weight",
... (index 0 of the decoder is the parameter-free latent clamp). diffusers' AutoencoderTiny is the
same network with "encoder.layers."/"decoder.layers." prefixes and the decoder's indices one lower.

Latent convention: the encoder maps an image in 0..1 to the diffusion model's latent space
(scaled: the raw VAE latent after the latent format's process_in); the decoder maps such a
latent back to 0..1. `TinyVAE` wraps the pair as a VAE socket (raw latents, ComfyUI images).
"""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .latent_formats import FLUX, SD1, SD3, SDXL, LatentFormat
from .weight_files import CheckpointError, WeightFile

# name -> (latent format whose model space it works in, latent channels); the files are
# models/vae_approx/{name}_encoder.safetensors and {name}_decoder.safetensors (ComfyUI's names)
VARIANTS = {"taesd": SD1, "taesdxl": SDXL, "taesd3": SD3, "taef1": FLUX}


@dataclass
class TAESDConfig:
    latent_channels: int = 4
    channels: int = 64
    encoder_blocks: tuple[int, ...] = (1, 3, 3, 3)  # blocks per level; levels after the first downsample 2x
    decoder_blocks: tuple[int, ...] = (3, 3, 3, 1)  # blocks per level; levels before the last upsample 2x


def _conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """Soft clamp of the latent to about +-3: outliers from a sampler can't blow the decoder up."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.conv = nn.Sequential(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(), _conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.conv(x) + self.skip(x))


def Encoder(cfg: TAESDConfig) -> nn.Sequential:
    c = cfg.channels
    layers: list[nn.Module] = [_conv(3, c)]
    for level, blocks in enumerate(cfg.encoder_blocks):
        if level > 0:
            layers.append(_conv(c, c, stride=2, bias=False))
        layers += [Block(c, c) for _ in range(blocks)]
    layers.append(_conv(c, cfg.latent_channels))
    return nn.Sequential(*layers)


def Decoder(cfg: TAESDConfig) -> nn.Sequential:
    c = cfg.channels
    layers: list[nn.Module] = [Clamp(), _conv(cfg.latent_channels, c), nn.ReLU()]
    for level, blocks in enumerate(cfg.decoder_blocks):
        layers += [Block(c, c) for _ in range(blocks)]
        if level < len(cfg.decoder_blocks) - 1:
            layers += [nn.Upsample(scale_factor=2), _conv(c, c, bias=False)]
    layers.append(_conv(c, 3))
    return nn.Sequential(*layers)


def _read(path: Path, part: str) -> dict[str, torch.Tensor]:
    with WeightFile(path) as f:
        state = {k: f.get(k, dtype=torch.float32).clone() for k in f.shapes}
    # ComfyUI-style combined files carry the halves under prefixes
    prefix = f"taesd_{part}."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def load_half(path, part: str, device=None) -> nn.Sequential:
    """A TAESD encoder or decoder (part) from its original file; latent channels read from the weights."""
    path = Path(path)
    state = _read(path, part)
    key = "0.weight" if part == "encoder" else "1.weight"
    expected = f"TAESD {part} keys ('{key}' [64, ...], 'N.conv.0.weight', ...)"
    if key not in state or state[key].ndim != 4:
        raise CheckpointError(f"{path.name} is not a TAESD {part}: expected {expected}, found "
                              f"{', '.join(repr(k) for k in list(state)[:3]) or 'no tensors'}")
    channels = state[key].shape[0]
    if part == "encoder":  # the last conv (highest index) gives the latent channels
        last = max((k for k in state if k.split(".")[0].isdigit() and k.endswith(".weight") and k.count(".") == 1),
                   key=lambda k: int(k.split(".")[0]))
        latent_channels = state[last].shape[0]
    else:
        latent_channels = state[key].shape[1]
    cfg = TAESDConfig(latent_channels=latent_channels, channels=channels)
    module = Encoder(cfg) if part == "encoder" else Decoder(cfg)
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path.name} does not fit the TAESD {part}: {str(e).splitlines()[0]} "
                              f"(expected {expected})") from None
    return module.eval().to(device or "cpu")


class TinyVAE:
    """TAESD as a VAE socket: raw latents in and out (mapped through `latent_format`), images in
    ComfyUI's convention (BHWC, 0..1, CPU float32). Either half may be missing (decode-only)."""

    downscale = 8

    def __init__(self, encoder: nn.Module | None, decoder: nn.Module | None, latent_format: LatentFormat):
        self.encoder, self.decoder, self.latent_format = encoder, decoder, latent_format

    @property
    def latent_channels(self) -> int:
        return self.latent_format.channels

    @property
    def device(self) -> torch.device:
        from graphflow.memory import manager

        return manager().device_for(self.decoder or self.encoder)

    @property
    def dtype(self) -> torch.dtype:
        return next((self.decoder or self.encoder).parameters()).dtype

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        from graphflow import memory

        if self.decoder is None:
            raise ValueError("this TAESD has no decoder")
        with memory.use(self.decoder, "vae", "taesd:decoder"):
            x = self.latent_format.process_in(latent.to(memory.manager().device_for(self.decoder), self.dtype))
            return self.decoder(x).float().clamp(0, 1).permute(0, 2, 3, 1).contiguous().cpu()

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        from graphflow import memory

        if self.encoder is None:
            raise ValueError("this TAESD has no encoder")
        with memory.use(self.encoder, "vae", "taesd:encoder"):
            return self.latent_format.process_out(self.encoder(self._pixels_in(image)).float()).cpu()

    def _pixels_in(self, image: torch.Tensor) -> torch.Tensor:
        """IMAGE -> NCHW 0..1 on the encoder's device, cut to multiples of 8 around the centre as
        ComfyUI's VAE encode cuts every VAE's input (the odd pixel off the bottom / right)."""
        from graphflow.memory import manager

        from .vae import centre_crop

        return centre_crop(image, 8).to(manager().device_for(self.encoder), self.dtype)

    # ComfyUI runs TAESD through its generic VAE, so the tiled nodes tile it as any image VAE
    # (graphflow.models.tiling.three_tilings): the seams then match ComfyUI's, not the whole run's.
    @torch.no_grad()
    def decode_tiled(self, latent, tile_size=512, overlap=64):
        """As VAEDecodeTiled: overlap cut to tile_size // 4, latent tiles of tile_size // 8, three
        tilings averaged; each tile decoded to -1..1 (ComfyUI's TAESD.decode), clamped to 0..1 after."""
        from graphflow import memory

        from .tiling import decode_image_tiled

        if self.decoder is None:
            raise ValueError("this TAESD has no decoder")
        with memory.use(self.decoder, "vae", "taesd:decoder"):
            z = latent.to(memory.manager().device_for(self.decoder), self.dtype)
            x = decode_image_tiled(lambda t: (self.decoder(self.latent_format.process_in(t)).float() - 0.5) * 2, z,
                                   tile_size, overlap, 8, 3)
        return ((x + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).contiguous().cpu()

    @torch.no_grad()
    def encode_tiled(self, image, tile_size=512, overlap=64):
        """As VAEEncodeTiled: pixel tiles of tile_size overlapping by overlap, three tilings averaged."""
        from graphflow import memory

        from .tiling import encode_image_tiled

        if self.encoder is None:
            raise ValueError("this TAESD has no encoder")
        with memory.use(self.encoder, "vae", "taesd:encoder"):
            x = self._pixels_in(image)
            # ComfyUI hands tiles over in -1..1 and TAESD maps them back to 0..1
            return encode_image_tiled(lambda t: self.latent_format.process_out(self.encoder(t * 0.5 + 0.5).float()),
                                      x * 2 - 1, tile_size, overlap, 8, self.latent_channels).cpu()


def load_tiny_vae(paths: dict[str, Path | None], name: str, device=None) -> TinyVAE:
    """TinyVAE `name` (a key of VARIANTS) from {"encoder": path, "decoder": path}."""
    fmt = VARIANTS[name]
    for path in paths.values():  # a TAESD made for another scale states it (tools/train_demo_taesd.py)
        if path is not None and Path(path).suffix == ".safetensors":
            with WeightFile(path) as f:
                lf = f.config().get("latent_format")
            if lf:
                fmt = fmt.with_scale(float(lf["scale_factor"]), lf.get("shift_factor"))
    halves = {part: load_half(p, part, device) if p is not None else None for part, p in paths.items()}
    vae = TinyVAE(halves.get("encoder"), halves.get("decoder"), fmt)
    for part, module in halves.items():
        if module is None:
            continue
        channels = module[-1].out_channels if part == "encoder" else module[1].in_channels
        if channels != fmt.channels:
            raise CheckpointError(f"{paths[part].name}: a {channels}-channel TAESD {part}, but {name} "
                                  f"works on {fmt.channels}-channel latents")
    return vae
