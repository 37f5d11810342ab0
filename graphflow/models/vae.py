"""The KL autoencoder (VAE) of latent diffusion, and the VAE socket the nodes use.

`AutoencoderKL` parameter names mirror the original LDM checkpoints (`first_stage_model.*`
without the prefix): encoder.down.N, encoder.mid.attn_1, quant_conv, post_quant_conv, and
decoder.up.N in LDM's order, where up.0 is the LAST stage run (full resolution). SD1/SD2/SDXL
use 4 latent channels; SD3/Flux VAEs are the same network with z_channels=16 and no quant convs.
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .configs import VAEConfig, vae_config_from_state_dict  # noqa: F401 (the config lives in configs.py, torch-free)
from .latent_formats import SD1, LatentFormat
from .tiling import tiled_map

OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.norm1 = _norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels; q/k/v/proj_out are 1x1 convs as in SD checkpoints."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = _norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # some converted files store these as Linear weights [C, C]; ours are [C, C, 1, 1]
        for name in ("q", "k", "v", "proj_out"):
            key = f"{prefix}{name}.weight"
            if key in state_dict and state_dict[key].dim() == 2:
                state_dict[key] = state_dict[key][:, :, None, None]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.norm(x)
        # [b, 1 head, h*w tokens, c]; views in both NCHW and channels-last layouts
        q, k, v = (conv(t).flatten(2).transpose(1, 2)[:, None] for conv in (self.q, self.k, self.v))
        out = attention(q, k, v)[:, 0]
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # LDM pads right/bottom only


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    def __init__(self, channels: int, groups: int, attention: bool):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, groups)
        self.attn_1 = AttnBlock(channels, groups) if attention else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        g = cfg.norm_groups
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        ch = cfg.ch
        for level, mult in enumerate(cfg.ch_mult):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                stage.block.append(ResnetBlock(ch, cfg.ch * mult, g))
                ch = cfg.ch * mult
            if level != len(cfg.ch_mult) - 1:
                stage.downsample = Downsample(ch)
            self.down.append(stage)
        self.mid = MidBlock(ch, g, cfg.mid_attention)
        self.norm_out = _norm(ch, g)
        self.conv_out = nn.Conv2d(ch, 2 * cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        g = cfg.norm_groups
        ch = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, ch, 3, padding=1)
        self.mid = MidBlock(ch, g, cfg.mid_attention)
        stages = []
        for level in reversed(range(len(cfg.ch_mult))):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                stage.block.append(ResnetBlock(ch, cfg.ch * cfg.ch_mult[level], g))
                ch = cfg.ch * cfg.ch_mult[level]
            if level != 0:
                stage.upsample = Upsample(ch)
            stages.insert(0, stage)  # LDM numbers up-stages by resolution: up.0 runs last
        self.up = nn.ModuleList(stages)
        self.norm_out = _norm(ch, g)
        self.conv_out = nn.Conv2d(ch, cfg.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        if config.use_quant_conv:
            self.quant_conv = nn.Conv2d(2 * config.z_channels, 2 * config.embed_dim, 1)
            self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels [B, 3, H, W] in -1..1 -> posterior (mean, logvar), each [B, C, H/8, W/8]."""
        moments = self.encoder(_fast_layout(x))
        if self.config.use_quant_conv:
            moments = self.quant_conv(moments)
        mean, logvar = moments.contiguous().chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent [B, C, h, w] -> pixels [B, 3, 8h, 8w], roughly -1..1 (not clamped)."""
        z = _fast_layout(z)
        if self.config.use_quant_conv:
            z = self.post_quant_conv(z)
        return self.decoder(z).contiguous()


def _fast_layout(x: torch.Tensor) -> torch.Tensor:
    # oneDNN convolutions run faster on NHWC activations (measured on CPU), cuDNN's tensor-core
    # ones too (GRAPHFLOW_CHANNELS_LAST, on by default for CUDA)
    from .speed import channels_last

    fast = x.device.type == "cpu" or channels_last(x.device)
    return x.contiguous(memory_format=torch.channels_last) if fast else x


def _on_device(method):
    """Run a VAE method with its module put on the device by the memory manager."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        from graphflow import memory

        with memory.use(self.module, "vae", "vae"):
            return method(self, *args, **kwargs)
    return wrapper


class VAESocket:
    """What every VAE socket value shares: one module, placed by the memory manager, whose config
    gives the downscale and latent channels (Stable Cascade's Stage A and Stage C encoder too)."""
    module: nn.Module

    @property
    def downscale(self) -> int:
        return self.module.config.downscale

    @property
    def latent_channels(self) -> int:
        return self.module.config.latent_channels

    @property
    def device(self) -> torch.device:
        from graphflow.memory import manager

        return manager().device_for(self.module)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.module.parameters()).dtype


class VAE(VAESocket):
    """The VAE socket: images in ComfyUI's convention (BHWC, 0..1, CPU float32) in and out;
    latents raw (not scaled). Work runs on the module's device and dtype.
    Tile sizes and overlaps are in pixels for both encode and decode, as in ComfyUI's nodes."""

    def __init__(self, module: AutoencoderKL, latent_format: LatentFormat = SD1):
        if module.config.latent_channels != latent_format.channels:
            raise ValueError(f"VAE has {module.config.latent_channels} latent channels but latent format "
                             f"{latent_format.name} has {latent_format.channels}")
        self.module = module.eval()
        self.latent_format = latent_format

    def to(self, device=None, dtype=None) -> "VAE":
        self.module.to(device=device, dtype=dtype)
        return self

    # -- conversions ---------------------------------------------------------------
    def _pixels_in(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[-1] not in (3, 4):
            raise ValueError(f"VAE encode expects an IMAGE [B, H, W, 3] in 0..1, got shape {tuple(image.shape)}")
        image = image[..., :3]
        h, w = image.shape[1:3]
        f = self.downscale
        if h < f or w < f:
            raise ValueError(f"VAE encode needs an image of at least {f}x{f} pixels, got {w}x{h}")
        # sizes must be multiples of the downscale factor: crop the remainder, centred (as ComfyUI does)
        top, left = (h % f) // 2, (w % f) // 2
        image = image[:, top:top + h - h % f, left:left + w - w % f]
        return (image.permute(0, 3, 1, 2) * 2.0 - 1.0).to(self.device, self.dtype)

    def _latent_in(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.dim() != 4 or latent.shape[1] != self.latent_channels:
            raise ValueError(f"VAE decode expects a latent [B, {self.latent_channels}, h, w], "
                             f"got shape {tuple(latent.shape)}")
        return latent.to(self.device, self.dtype)

    @staticmethod
    def _pixels_out(x: torch.Tensor) -> torch.Tensor:
        return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).contiguous().cpu()

    # -- encode --------------------------------------------------------------------
    @torch.no_grad()
    @_on_device
    def encode_posterior(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """IMAGE [B, H, W, 3] 0..1 -> (mean, logvar) raw latents, CPU float32."""
        x = self._pixels_in(image)
        try:
            mean, logvar = self.module.encode(x)
            return mean.float().cpu(), logvar.float().cpu()
        except OutOfMemoryError:
            pass  # leave the except block first so the failed attempt's tensors can be freed
        del x
        return _smaller_tiles_until_it_fits(lambda tile: self.encode_posterior_tiled(image, tile, tile // 8))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """IMAGE [B, H, W, 3] 0..1 -> raw latent (the posterior mean) [B, C, H/8, W/8]."""
        return self.encode_posterior(image)[0]

    @torch.no_grad()
    @_on_device
    def encode_posterior_tiled(self, image: torch.Tensor, tile_size: int = 512, overlap: int = 64):
        x = self._pixels_in(image)
        f, c = self.downscale, self.latent_channels
        moments = tiled_map(lambda t: torch.cat(self.module.encode(t), dim=1), x, tile_size, overlap,
                            out_channels=2 * c, scale=1 / f, align=f)
        return moments[:, :c].float().cpu(), moments[:, c:].float().cpu()

    def encode_tiled(self, image: torch.Tensor, tile_size: int = 512, overlap: int = 64) -> torch.Tensor:
        return self.encode_posterior_tiled(image, tile_size, overlap)[0]

    # -- decode --------------------------------------------------------------------
    @torch.no_grad()
    @_on_device
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw latent [B, C, h, w] -> IMAGE [B, 8h, 8w, 3] 0..1; tiles by itself when memory runs out."""
        z = self._latent_in(latent)
        try:
            return self._pixels_out(self.module.decode(z))
        except OutOfMemoryError:
            pass  # leave the except block first so the failed attempt's tensors can be freed
        del z
        return _smaller_tiles_until_it_fits(lambda tile: self.decode_tiled(latent, tile, tile // 8))

    @torch.no_grad()
    @_on_device
    def decode_tiled(self, latent: torch.Tensor, tile_size: int = 512, overlap: int = 64) -> torch.Tensor:
        f = self.downscale
        z = self._latent_in(latent)
        x = tiled_map(self.module.decode, z, max(1, tile_size // f), overlap // f,
                      out_channels=self.module.config.out_channels, scale=f)
        return self._pixels_out(x)


Autoencoder = VAE  # the name CONTRACTS.md uses for the socket


def _smaller_tiles_until_it_fits(run, tile_px: int = 512, smallest_px: int = 64):
    """run(tile_size) with tiles of 512, 256, 128, 64 pixels until one fits in memory."""
    while True:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        try:
            return run(tile_px)
        except OutOfMemoryError:
            if tile_px <= smallest_px:
                raise
        tile_px //= 2
