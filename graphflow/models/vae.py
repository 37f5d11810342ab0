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
from .latent_formats import CHROMA_RADIANCE, SD1, LatentFormat
from .tiling import decode_image_tiled, encode_image_tiled, tiled_map_nd, video_axes

OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)


def centre_crop(image: torch.Tensor, f: int) -> torch.Tensor:
    """IMAGE [B, H, W, C] -> NCHW RGB with H and W cut to multiples of f around the centre (the odd
    pixel off the bottom / right), as ComfyUI's VAE encode cuts every VAE's input."""
    h, w = image.shape[1] // f * f, image.shape[2] // f * f
    top, left = (image.shape[1] - h) // 2, (image.shape[2] - w) // 2
    return image[:, top:top + h, left:left + w, :3].permute(0, 3, 1, 2)


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
        return x + self.attend(self.norm(x))

    def attend(self, t: torch.Tensor) -> torch.Tensor:
        """The block's update of normalised pixels t (Tiled VAE runs the norm and the residual itself)."""
        b, c, h, w = t.shape
        # [b, 1 head, h*w tokens, c]; views in both NCHW and channels-last layouts
        q, k, v = (conv(t).flatten(2).transpose(1, 2)[:, None] for conv in (self.q, self.k, self.v))
        out = attention(q, k, v)[:, 0]
        return self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


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
    # pixel frames per latent frame of a video VAE (VideoVAESocket); None: images, and SVD's
    # decoder, whose frames are a batch (ComfyUI's VAEDecodeTiled ignores temporal_size there too)
    temporal_compression: int | None = None

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
        h, w = image.shape[1:3]
        f = self.downscale
        if h < f or w < f:
            raise ValueError(f"VAE encode needs an image of at least {f}x{f} pixels, got {w}x{h}")
        return (centre_crop(image, f) * 2.0 - 1.0).to(self.device, self.dtype)

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
        # ComfyUI's fallback first (512 px tiles overlapping 64), then smaller ones
        return _tiles_until_it_fits(lambda tile: self.encode_posterior_tiled(image, tile, tile // 8))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """IMAGE [B, H, W, 3] 0..1 -> raw latent (the posterior mean) [B, C, H/8, W/8]."""
        return self.encode_posterior(image)[0]

    @torch.no_grad()
    @_on_device
    def encode_posterior_tiled(self, image: torch.Tensor, tile_size: int = 512, overlap: int = 64):
        """As ComfyUI's VAEEncodeTiled: pixel tiles of tile_size overlapping by overlap, the encode
        averaged over three tilings (t x t, t/2 x 2t, 2t x t/2)."""
        c = self.latent_channels
        moments = encode_image_tiled(lambda t: torch.cat(self.module.encode(t), dim=1), self._pixels_in(image),
                                     tile_size, overlap, self.downscale, 2 * c)
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
        # ComfyUI's fallback first (64-latent tiles overlapping 16: 512 / 128 px), then smaller ones
        return _tiles_until_it_fits(lambda tile: self.decode_tiled(latent, tile, tile // 4))

    @torch.no_grad()
    @_on_device
    def decode_tiled(self, latent: torch.Tensor, tile_size: int = 512, overlap: int = 64) -> torch.Tensor:
        """As ComfyUI's VAEDecodeTiled: overlap cut to tile_size // 4 when larger; latent tiles of
        t = tile_size // s overlapping by overlap // s (s the downscale), the decode averaged over
        three tilings (2t x t/2, t/2 x 2t, t x t), so even a latent within one tile is tiled twice."""
        x = decode_image_tiled(self.module.decode, self._latent_in(latent), tile_size, overlap, self.downscale,
                               self.module.config.out_channels)
        return self._pixels_out(x)


Autoencoder = VAE  # the name CONTRACTS.md uses for the socket


class PixelSpaceVAE:
    """VAELoader's "pixel_space" (ComfyUI's PixelspaceConversionVAE), for models that work on the
    image itself (Chroma Radiance): encode IMAGE [B, H, W, C] 0..1 -> "latent" [B, 3, H, W] = 2x - 1
    (the first three channels, nothing cropped: downscale 1); decode the reverse, clamped to 0..1,
    as every ComfyUI VAE maps pixels in and out. No weights; float32 on the CPU, so a decode of an
    encode gives the image back (ComfyUI on a bf16 GPU rounds to bf16 on the way)."""

    downscale = 1
    latent_channels = 3
    latent_format = CHROMA_RADIANCE
    temporal_compression = None
    device = torch.device("cpu")
    dtype = torch.float32

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[-1] not in (3, 4):
            raise ValueError(f"VAE encode expects an IMAGE [B, H, W, 3] in 0..1, got shape {tuple(image.shape)}")
        return image[..., :3].permute(0, 3, 1, 2).float().cpu() * 2.0 - 1.0

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.dim() != 4 or latent.shape[1] != 3:
            raise ValueError(f"the pixel_space VAE decodes latents [B, 3, H, W], got shape {tuple(latent.shape)}")
        return VAE._pixels_out(latent.float().cpu())

    # nothing to run: tiles would give the same numbers
    def encode_tiled(self, image, tile_size=512, overlap=64):
        return self.encode(image)

    def decode_tiled(self, latent, tile_size=512, overlap=64):
        return self.decode(latent)


def _tiles_until_it_fits(run, attempts=((512,), (256,), (128,), (64,))):
    """run(*attempt) for each attempt in turn (image tiles of 512, 256, 128, 64 pixels) until one
    fits in memory; the last one's out-of-memory error is raised."""
    for i, attempt in enumerate(attempts):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        try:
            return run(*attempt)
        except OutOfMemoryError:
            if i == len(attempts) - 1:
                raise


# ComfyUI's own fallback first (256-pixel tiles, a quarter overlap, every frame at once), then
# shorter and smaller tiles: (tile_size, temporal_size), in pixels and frames
VIDEO_FALLBACK = ((256, None), (256, 64), (128, 32), (64, 16))


class VideoVAESocket(VAESocket):
    """What the causal video VAE sockets share (LTX-Video's, Mochi's): an IMAGE batch (BHWC, 0..1)
    is the frames of one video, cropped around the centre to multiples of the downscale; latents
    are [B, C, F, h, w]. With t = `temporal_compression`, F latent frames are t(F - 1) + 1 pixel
    frames: the first latent frame is one picture (causal), each later one t frames.

    Tiled decoding and encoding follow ComfyUI's VAEDecodeTiled / VAEEncodeTiled for video VAEs
    (graphflow.models.tiling.video_axes): 3-D tiles over frames, rows and columns, sizes in pixels
    and frames as the nodes take them. Plain decoding and encoding fall back to tiles when memory
    runs out (VIDEO_FALLBACK). Subclasses give `_decode`, `_encode` and their names."""

    title = "the video VAE"  # in error messages
    memory_name = "video_vae"

    @property
    def temporal_compression(self) -> int:
        return self.module.config.frames_per_latent

    def latent_frames(self, frames: int) -> int:
        """Latent frames of `frames` pixel frames: ceil(frames / t) (ComfyUI's downscale rule)."""
        t = self.temporal_compression
        return max(0, (frames + t - 1) // t)

    def pixel_frames(self, latents: int) -> int:
        """Pixel frames of `latents` latent frames: t(latents - 1) + 1."""
        t = self.temporal_compression
        return max(0, latents * t - (t - 1))

    def to(self, device=None, dtype=None):
        self.module.to(device=device, dtype=dtype)
        return self

    def _decode(self, z: torch.Tensor) -> torch.Tensor:  # latent on the device -> pixels [B, 3, frames, H, W]
        raise NotImplementedError

    def _encode(self, x: torch.Tensor) -> torch.Tensor:  # pixels on the device in -1..1 -> latent
        raise NotImplementedError

    def _encode_frames(self, frames: int) -> int:
        """How many of the frames plain encoding takes (all; LTX-Video cuts to t k + 1)."""
        return frames

    # -- conversions ---------------------------------------------------------------------------
    def _latent_in(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.dim() != 5 or latent.shape[1] != self.latent_channels:
            raise ValueError(f"{self.title} decodes video latents [B, {self.latent_channels}, frames, h, w], "
                             f"got shape {tuple(latent.shape)}")
        return latent

    def _pixels_in(self, image: torch.Tensor) -> torch.Tensor:
        """IMAGE [N, H, W, 3] -> pixels [1, 3, N, H', W'] in -1..1 (CPU, float32), H', W' cut to
        multiples of the downscale around the centre, as ComfyUI crops."""
        f = self.downscale
        if image.dim() != 4 or image.shape[1] < f or image.shape[2] < f:
            raise ValueError(f"{self.title} encodes an IMAGE [frames, H, W, 3] of at least {f}x{f}, "
                             f"got shape {tuple(image.shape)}")
        return centre_crop(image, f).transpose(0, 1)[None].float() * 2 - 1  # frames as the depth

    @staticmethod
    def _frames_out(x: torch.Tensor) -> torch.Tensor:
        x = ((x.float() + 1) / 2).clamp(0, 1)
        return x.permute(0, 2, 3, 4, 1).reshape(-1, *x.shape[3:], x.shape[1]).contiguous().cpu()

    def _on_device(self, fn):
        return lambda part: fn(part.to(self.device, self.dtype)).float().cpu()

    # -- decode ----------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent [B, C, F, h, w] -> IMAGE [B * (t(F-1)+1), H, W, 3], the frames of each video in turn;
        tiles by itself when memory runs out."""
        from graphflow import memory

        z = self._latent_in(latent)
        with memory.use(self.module, "vae", self.memory_name):
            try:
                return self._frames_out(self._on_device(self._decode)(z))
            except OutOfMemoryError:
                pass  # leave the except block first so the failed attempt's tensors can be freed
        return _tiles_until_it_fits(lambda px, frames: self.decode_tiled(latent, px, px // 4, frames, 8),
                                    VIDEO_FALLBACK)

    @torch.no_grad()
    def decode_tiled(self, latent: torch.Tensor, tile_size: int = 512, overlap: int = 64,
                     temporal_size: int | None = 64, temporal_overlap: int = 8) -> torch.Tensor:
        """Decode in 3-D tiles; sizes in pixels and frames turned into latent ones as ComfyUI's
        VAEDecodeTiled does: overlap at most tile_size // 4 (else tile_size // 4), temporal_overlap
        halved when more than half of temporal_size; then tiles of max(2, temporal_size // t) latent
        frames overlapping by max(1, min(that // 2, temporal_overlap // t)), and of tile_size // s
        latent rows and columns overlapping by overlap // s (s the downscale). A video no longer
        than a tile is not tiled in time; temporal_size None decodes every frame at once."""
        from graphflow import memory

        z = self._latent_in(latent)
        t, s = self.temporal_compression, self.downscale
        if tile_size < overlap * 4:
            overlap = tile_size // 4
        if temporal_size is None:
            tile_t, overlap_t = max(2, z.shape[2]), 1
        else:
            if temporal_size < temporal_overlap * 2:
                temporal_overlap //= 2
            tile_t = max(2, temporal_size // t)
            overlap_t = max(1, min(tile_t // 2, temporal_overlap // t))
        tile, lap = max(1, tile_size // s), overlap // s
        axes = video_axes(z.shape[2:], (tile_t, tile, tile), (overlap_t, lap, lap),
                          (self.pixel_frames, lambda n: n * s, lambda n: n * s),
                          (lambda p: p * t, lambda p: p * s, lambda p: p * s))
        with memory.use(self.module, "vae", self.memory_name):
            x = tiled_map_nd(self._on_device(self._decode), z, axes, out_channels=self.module.config.out_channels)
        return self._frames_out(x)

    # -- encode ----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """IMAGE [N, H, W, 3], the frames of one video -> latent [1, C, F, H/s, W/s]; tiles by
        itself when memory runs out."""
        from graphflow import memory

        x = self._pixels_in(image)
        x = x[:, :, :self._encode_frames(x.shape[2])]
        with memory.use(self.module, "vae", self.memory_name):
            try:
                return self._on_device(self._encode)(x)
            except OutOfMemoryError:
                pass
        del x
        return _tiles_until_it_fits(lambda px, frames: self.encode_tiled(image, px, px // 4, frames, 8),
                                    VIDEO_FALLBACK)

    @torch.no_grad()
    def encode_tiled(self, image: torch.Tensor, tile_size: int = 512, overlap: int = 64,
                     temporal_size: int | None = 64, temporal_overlap: int = 8) -> torch.Tensor:
        """Encode in 3-D tiles as ComfyUI's VAEEncodeTiled does: pixel tiles of tile_size
        overlapping by overlap; in time L = max(2, ceil(temporal_size / t)) latent frames per tile,
        so t(L - 1) + 1 pixel frames, overlapping by the pixel frames of max(1, min(L // 2,
        ceil(temporal_overlap / t))) latent frames; the video first cut to t(F - 1) + 1 frames for
        its F = ceil(N / t) latent frames. temporal_size None encodes every frame at once (plain
        encoding's frames)."""
        from graphflow import memory

        x = self._pixels_in(image)
        t, s = self.temporal_compression, self.downscale
        if temporal_size is None:
            x = x[:, :, :self._encode_frames(x.shape[2])]
            tile_t, overlap_t = x.shape[2], 1
        else:
            x = x[:, :, :self.pixel_frames(self.latent_frames(x.shape[2]))]
            latents = max(2, self.latent_frames(temporal_size))
            tile_t = self.pixel_frames(latents)
            overlap_t = self.pixel_frames(max(1, min(latents // 2, self.latent_frames(temporal_overlap))))
        # pixel tiles on whole latents; an overlap of a whole tile or more (where ComfyUI's step
        # would be zero or negative) falls back to the quarter VAEDecodeTiled allows
        tile_size = max(s, tile_size // s * s)
        overlap = overlap // s * s if overlap < tile_size else tile_size // 4 // s * s
        axes = video_axes(x.shape[2:], (tile_t, tile_size, tile_size), (overlap_t, overlap, overlap),
                          (self.latent_frames, lambda n: n / s, lambda n: n / s),
                          (lambda p: p / t, lambda p: p / s, lambda p: p / s))
        with memory.use(self.module, "vae", self.memory_name):
            return tiled_map_nd(self._on_device(self._encode), x, axes, out_channels=self.latent_channels)
