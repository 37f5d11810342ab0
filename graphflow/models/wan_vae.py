"""The Wan 2.1 and Wan 2.2 VAEs (ComfyUI's wan_2.1_vae / wan2.2_vae.safetensors; diffusers'
AutoencoderKLWan, is_residual for 2.2), in Wan's original single-file key layout: `encoder.conv1`,
`encoder.downsamples.N`, `encoder.middle.N`, `encoder.head.N`, `conv1` / `conv2` (quant /
post-quant), `decoder.*` alike with `upsamples.N`.

Pixels [B, 3, 1 + 4k, H, W] in -1..1 <-> raw latents [B, 16, 1 + k, H/8, W/8]. Causal 3-D residual
blocks (RMS-normalised over channels, SiLU, 3x3x3 convolutions padded in time with zeros before
the first frame), per-frame single-head attention in the middle, and resampling blocks: 2x2
spatial (a strided 2-D convolution down, nearest-exact + 2-D convolution up, halving the channels)
and 2x temporal (a stride-2 3x1x1 convolution down, a 3x1x1 convolution to 2x the channels
unfolded into frames up). The first frame is kept apart by the temporal resampling: encoding it
passes it through, and decoding never feeds it into the temporal convolution's history, so a
still picture is a one-frame video.

Video is streamed as Wan and diffusers do: the encoder sees the first frame alone, then chunks of
4 frames; the decoder one latent frame at a time. Every causal convolution keeps the last frames
it saw in a per-call `cache` dict (keyed by the module), so the result is that of one pass over
the whole video with a small memory peak.

Latents leave the socket raw (the posterior mean, as ComfyUI's VAE gives them); the model space
is per channel (z - mean) / std (WAN21: ComfyUI's Wan21 latent format, AutoencoderKLWan's
latents_mean / latents_std; WAN22 for the 48-channel 2.2 VAE).

The Wan 2.2 VAE (is_residual, patch_size 2: the TI2V 5B's, 48 channels, 16x pixels): pixels are
first cut into 2x2 patches (12 channels; their order: channel, column offset, row offset), and
decoded back alike. Each encoder stage is its residual blocks and resampling
(`encoder.downsamples.N.downsamples.M`) plus a parameter-free shortcut that averages groups of
channels of the space-to-depth (and time-to-depth, zero-padding a chunk's odd frame count in
front) input; each decoder stage (`decoder.upsamples.N.upsamples.M`; its upsampling keeps the
channels) adds the depth-to-space repeat of its input (dropping the first chunk's extra frame).
The decoder has its own width (160 encoder, 256 decoder in the release).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .latent_formats import WAN21, WAN22
from .vae import VideoVAESocket


@dataclass(frozen=True)
class WanVAEConfig:
    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple = (False, True, True)
    is_residual: bool = False  # Wan 2.2: stages with averaging / repeating shortcuts
    patch_size: int = 1  # Wan 2.2: 2x2 pixel patches in and out
    decoder_dim: int = 0  # the decoder's base width; 0: dim

    @property
    def latent_channels(self) -> int:
        return self.z_dim

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.dim_mult) - 1) * self.patch_size

    @property
    def frames_per_latent(self) -> int:
        return 2 ** sum(self.temporal_downsample)

    @property
    def out_channels(self) -> int:
        return 3


def is_wan_vae(shapes) -> bool:
    return "encoder.conv1.weight" in shapes and "conv2.weight" in shapes and any(
        f"decoder.upsamples.0.{block}residual.0.gamma" in shapes for block in ("", "upsamples.0."))


def wan_vae_config_from_state_dict(shapes) -> WanVAEConfig:
    """The config of a Wan 2.1 / 2.2 VAE state dict (original layout), from its shapes."""
    dim = shapes["encoder.conv1.weight"][0]
    z_dim = shapes["conv2.weight"][0]
    if "decoder.upsamples.0.upsamples.0.residual.0.gamma" in shapes:
        return _wan22_vae_config(shapes, dim, z_dim)
    blocks = sorted({int(k.split(".")[2]) for k in shapes if k.startswith("encoder.downsamples.")})
    mult, temporal, res, per_stage = [], [], 0, None
    for i in blocks:
        prefix = f"encoder.downsamples.{i}."
        if prefix + "residual.2.weight" in shapes:
            res += 1
            out = shapes[prefix + "residual.2.weight"][0]
            if not mult or res == 1:
                mult.append(out // dim)
        else:  # a downsampling block ends a stage
            temporal.append(prefix + "time_conv.weight" in shapes)
            per_stage, res = res, 0
    if per_stage is None or res != per_stage:
        raise ValueError("a Wan VAE's encoder with uneven stages")
    return WanVAEConfig(dim=dim, z_dim=z_dim, dim_mult=tuple(mult), num_res_blocks=per_stage,
                        temporal_downsample=tuple(temporal))


def _wan22_vae_config(shapes, dim, z_dim) -> WanVAEConfig:
    stages = sorted({int(k.split(".")[2]) for k in shapes if k.startswith("encoder.downsamples.")})
    mult, temporal, res = [], [], None
    for i in stages:  # encoder.downsamples.i.downsamples.j: residual blocks, then the resampling
        prefix = f"encoder.downsamples.{i}.downsamples."
        n = len({k.split(".")[4] for k in shapes if k.startswith(prefix) and ".residual." in k})
        if res is not None and n != res:
            raise ValueError("a Wan 2.2 VAE's encoder with uneven stages")
        res = n
        mult.append(shapes[prefix + f"{n - 1}.residual.2.weight"][0] // dim)
        if i < len(stages) - 1:
            temporal.append(prefix + f"{n}.time_conv.weight" in shapes)
    patch = round((shapes["encoder.conv1.weight"][1] // 3) ** 0.5)
    decoder_dim = shapes["decoder.head.0.gamma"][0] // mult[0]
    return WanVAEConfig(dim=dim, z_dim=z_dim, dim_mult=tuple(mult), num_res_blocks=res,
                        temporal_downsample=tuple(temporal), is_residual=True, patch_size=patch,
                        decoder_dim=0 if decoder_dim == dim else decoder_dim)


class CausalConv3d(nn.Conv3d):
    """A 3-D convolution padded in time only before the frames: the frames the last call saw
    (cache[self]) or zeros; spatial padding as given."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)
        p = (padding,) * 3 if isinstance(padding, int) else padding
        self.time_pad = 2 * p[0]
        self.space_pad = (p[2], p[2], p[1], p[1])

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        if self.time_pad:
            prev = cache.get(self) if cache is not None else None
            if prev is None:
                prev = x.new_zeros(*x.shape[:2], self.time_pad, *x.shape[3:])
            x = torch.cat([prev, x], dim=2)
            if cache is not None:
                cache[self] = x[:, :, -self.time_pad:].clone()
        return super().forward(F.pad(x, self.space_pad))


class RMSNorm(nn.Module):
    """Unit length over channels, times sqrt(channels) and a per-channel gain (Wan's RMS_norm);
    `dims` trailing singleton axes on the gain (3 for videos, 2 for frames)."""

    def __init__(self, dim: int, dims: int = 3):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim, *(1,) * dims))

    def forward(self, x):
        return F.normalize(x.float(), dim=1).to(x.dtype) * x.shape[1] ** 0.5 * self.gamma


class ResidualBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        # Wan's nn.Sequential indices: 0 norm, 1 SiLU, 2 conv, 3 norm, 4 SiLU, 5 dropout, 6 conv
        self.residual = nn.ModuleList([RMSNorm(in_dim), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1),
                                       RMSNorm(out_dim), nn.SiLU(), nn.Identity(),
                                       CausalConv3d(out_dim, out_dim, 3, padding=1)])
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else None

    def forward(self, x, cache):
        h = x if self.shortcut is None else self.shortcut(x)
        for layer in self.residual:
            x = layer(x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over each frame's pixels."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim, dims=2)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x, cache=None):
        b, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * t, c, h, w)
        q, k, v = self.to_qkv(self.norm(y)).reshape(b * t, 3 * c, h * w).transpose(1, 2).chunk(3, dim=-1)
        y = attention(q[:, None], k[:, None], v[:, None])[:, 0]
        y = self.proj(y.transpose(1, 2).reshape(b * t, c, h, w))
        return x + y.reshape(b, t, c, h, w).transpose(1, 2)


class NearestExact(nn.Module):
    def forward(self, x):
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").to(x.dtype)


class Resample(nn.Module):
    """2x down or up in space (each frame), and in time too for the "3d" modes."""

    def __init__(self, dim: int, mode: str, up_dim: int | None = None):
        super().__init__()
        self.mode = mode
        if mode.startswith("up"):  # Wan 2.1 halves the channels, 2.2 keeps them (up_dim)
            self.resample = nn.Sequential(NearestExact(), nn.Conv2d(dim, up_dim or dim // 2, 3, padding=1))
            if mode == "upsample3d":
                self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
            if mode == "downsample3d":
                self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def _spatial(self, x):
        b, _, t = x.shape[:3]
        y = self.resample(x.transpose(1, 2).flatten(0, 1))
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)

    def forward(self, x, cache):
        if self.mode == "upsample3d":
            first = x[:, :, :0]
            if self not in cache:  # the first frame passes, and stays out of the convolution's history
                cache[self] = True
                first, x = x[:, :, :1], x[:, :, 1:]
            if x.shape[2]:
                b, c, t, h, w = x.shape
                x = self.time_conv(x, cache).reshape(b, 2, c, t, h, w)  # 2x channels -> frames, interleaved
                x = x.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)
            x = torch.cat([first, x], dim=2)
        x = self._spatial(x)
        if self.mode == "downsample3d":
            prev, first = cache.get(self), x[:, :, :0]
            if prev is None:  # the first frame passes, and begins the history
                first, prev, x = x[:, :, :1], x[:, :, :1], x[:, :, 1:]
            cache[self] = torch.cat([prev, x], dim=2)[:, :, -1:].clone()
            if x.shape[2]:
                x = self.time_conv(torch.cat([prev, x], dim=2))
            x = torch.cat([first, x], dim=2)
        return x


def avg_down(x, channels: int, ft: int, fs: int):
    """Wan 2.2's encoder shortcut: space-to-depth (ft frames x fs x fs pixels, frames zero-padded in
    front to a multiple of ft), then the mean of each group of consecutive channels."""
    x = F.pad(x, (0, 0, 0, 0, -x.shape[2] % ft, 0))
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // ft, ft, h // fs, fs, w // fs, fs).permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, channels, -1, t // ft, h // fs, w // fs).mean(dim=2)


def dup_up(x, channels: int, ft: int, fs: int, first: bool):
    """Wan 2.2's decoder shortcut: each channel repeated, then depth-to-space (ft frames x fs x fs);
    the video's first chunk keeps its last frame only (the first frame is not upsampled in time)."""
    b, c, t, h, w = x.shape
    x = x.repeat_interleave(channels * ft * fs * fs // c, dim=1)
    x = x.reshape(b, channels, ft, fs, fs, t, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
    x = x.reshape(b, channels, t * ft, h * fs, w * fs)
    return x[:, :, ft - 1:] if first else x


class DownStage(nn.Module):
    """A Wan 2.2 encoder stage: residual blocks and resampling, plus the averaging shortcut."""

    def __init__(self, in_dim: int, out_dim: int, blocks: int, temporal: bool, down: bool):
        super().__init__()
        self.out_dim, self.ft, self.fs = out_dim, 2 if temporal else 1, 2 if down else 1
        layers = []
        for _ in range(blocks):
            layers.append(ResidualBlock(in_dim, out_dim))
            in_dim = out_dim
        if down:
            layers.append(Resample(out_dim, "downsample3d" if temporal else "downsample2d"))
        self.downsamples = nn.ModuleList(layers)

    def forward(self, x, cache):
        return _run(self.downsamples, x, cache) + avg_down(x, self.out_dim, self.ft, self.fs)


class UpStage(nn.Module):
    """A Wan 2.2 decoder stage: residual blocks and resampling (keeping the channels), plus the
    repeating shortcut."""

    def __init__(self, in_dim: int, out_dim: int, blocks: int, temporal: bool, up: bool):
        super().__init__()
        self.out_dim, self.ft, self.up = out_dim, 2 if temporal else 1, up
        layers = []
        for _ in range(blocks):
            layers.append(ResidualBlock(in_dim, out_dim))
            in_dim = out_dim
        if up:
            layers.append(Resample(out_dim, "upsample3d" if temporal else "upsample2d", up_dim=out_dim))
        self.upsamples = nn.ModuleList(layers)

    def forward(self, x, cache):
        first = self not in cache
        cache[self] = True
        y = _run(self.upsamples, x, cache)
        return y + dup_up(x, self.out_dim, self.ft, 2, first) if self.up else y


def _run(layers, x, cache):
    for layer in layers:
        x = layer(x, cache)
    return x


class Encoder(nn.Module):
    def __init__(self, cfg: WanVAEConfig):
        super().__init__()
        dims = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(3 * cfg.patch_size ** 2, dims[0], 3, padding=1)
        blocks = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(cfg.dim_mult) - 1
            if cfg.is_residual:
                blocks.append(DownStage(in_dim, out_dim, cfg.num_res_blocks, not last and cfg.temporal_downsample[i],
                                        not last))
                continue
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i < len(cfg.dim_mult) - 1:
                blocks.append(Resample(out_dim, "downsample3d" if cfg.temporal_downsample[i] else "downsample2d"))
        self.downsamples = nn.ModuleList(blocks)
        self.middle = nn.ModuleList([ResidualBlock(dims[-1], dims[-1]), AttentionBlock(dims[-1]),
                                     ResidualBlock(dims[-1], dims[-1])])
        self.head = nn.ModuleList([RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], cfg.z_dim * 2, 3, padding=1)])

    def forward(self, x, cache):
        x = _run([*self.downsamples, *self.middle], self.conv1(x, cache), cache)
        return self.head[2](F.silu(self.head[0](x)), cache)


class Decoder(nn.Module):
    def __init__(self, cfg: WanVAEConfig):
        super().__init__()
        dims = [(cfg.decoder_dim or cfg.dim) * m for m in (cfg.dim_mult[-1], *cfg.dim_mult[::-1])]
        temporal_upsample = cfg.temporal_downsample[::-1]
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        self.middle = nn.ModuleList([ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]),
                                     ResidualBlock(dims[0], dims[0])])
        blocks = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(cfg.dim_mult) - 1
            if cfg.is_residual:
                blocks.append(UpStage(in_dim, out_dim, cfg.num_res_blocks + 1, not last and temporal_upsample[i],
                                      not last))
                continue
            if i > 0:  # the upsampling before halved the channels
                in_dim //= 2
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i < len(cfg.dim_mult) - 1:
                blocks.append(Resample(out_dim, "upsample3d" if temporal_upsample[i] else "upsample2d"))
        self.upsamples = nn.ModuleList(blocks)
        self.head = nn.ModuleList([RMSNorm(dims[-1]), nn.SiLU(),
                                   CausalConv3d(dims[-1], 3 * cfg.patch_size ** 2, 3, padding=1)])

    def forward(self, x, cache):
        x = _run([*self.middle, *self.upsamples], self.conv1(x, cache), cache)
        return self.head[2](F.silu(self.head[0](x)), cache)


class WanVideoVAE(nn.Module):
    def __init__(self, config: WanVAEConfig = WanVAEConfig()):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.conv1 = CausalConv3d(config.z_dim * 2, config.z_dim * 2, 1)
        self.conv2 = CausalConv3d(config.z_dim, config.z_dim, 1)
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels [B, 3, 1 + 4k, H, W] in -1..1 -> raw latent mean [B, z, 1 + k, H/s, W/s]: the
        first frame alone, then 4 frames at a time."""
        cache, step, p = {}, self.config.frames_per_latent, self.config.patch_size
        if p > 1:  # 2x2 patches: channel c x 4 + column offset x 2 + row offset (diffusers' patchify)
            b, c, t, h, w = x.shape
            x = x.reshape(b, c, t, h // p, p, w // p, p).permute(0, 1, 6, 4, 2, 3, 5)
            x = x.reshape(b, c * p * p, t, h // p, w // p)
        out = [self.encoder(x[:, :, i:i + step] if i else x[:, :, :1], cache)
               for i in [0, *range(1, x.shape[2], step)]]
        return self.conv1(torch.cat(out, dim=2))[:, :self.config.z_dim]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent [B, z, F, h, w] -> pixels [B, 3, 1 + 4(F - 1), sh, sw], one latent frame at a time."""
        cache, z = {}, self.conv2(z)
        x = torch.cat([self.decoder(z[:, :, i:i + 1], cache) for i in range(z.shape[2])], dim=2)
        p = self.config.patch_size
        if p > 1:
            b, c, t, h, w = x.shape
            x = x.reshape(b, c // (p * p), p, p, t, h, w).permute(0, 1, 4, 5, 3, 6, 2)
            x = x.reshape(b, c // (p * p), t, h * p, w * p)
        return x.clamp(-1, 1)


class WanVAE(VideoVAESocket):
    """The Wan 2.1 / 2.2 VAE as a VAE socket: an IMAGE batch (BHWC, 0..1) is the frames of one video
    (a single image is a one-frame video); raw latents [1, 16, frames, H/8, W/8] out (Wan 2.2's:
    [1, 48, frames, H/16, W/16]; encoding takes the first 4k + 1 frames). Decodes video latents
    [B, C, F, h, w] (each video's frames in turn) and image latents [B, C, h, w]
    (EmptySD3LatentImage's: each a one-frame video). Tiled as VideoVAESocket says."""

    latent_format = WAN21
    title = "the Wan VAE"
    memory_name = "wan_vae"

    def __init__(self, module: WanVideoVAE):
        self.module = module.eval()
        if module.config.is_residual:
            self.latent_format = WAN22

    def _decode(self, z):
        return self.module.decode(z)

    def _encode(self, x):
        return self.module.encode(x)

    def _encode_frames(self, frames: int) -> int:
        return self.pixel_frames(self.latent_frames(frames))  # 1 + 4k: the encoder's causal groups

    def _latent_in(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.dim() == 4 and latent.shape[1] == self.latent_channels:
            return latent[:, :, None]  # an image latent: a one-frame video
        return super()._latent_in(latent)
