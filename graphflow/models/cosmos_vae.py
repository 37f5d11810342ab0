"""NVIDIA's Cosmos 1.0 continuous video tokenizer CV8x8x8 (ComfyUI's cosmos_cv8x8x8_1.0.safetensors,
its CausalContinuousVideoTokenizer; diffusers' AutoencoderKLCosmos), in NVIDIA's key layout as
ComfyUI loads it.

Pixels [B, 3, T, H, W] in -1..1 <-> latents [B, 16, (T - 1) // 8 + 1, H/8, W/8] (any T: ceil(T / 8)
latent frames; F latent frames decode to 8(F - 1) + 1). The first frame is taken 4 times (the
decoder's inverse drops the 3 extra copies) and the video cut into 4x4x4 Haar wavelet bands (two rounds of a 2x2x2 Haar step: 3 -> 192 channels; each
step pairs frames / rows / columns into their mean and half-difference, the odd one out reflected);
then causal factorised 3-D convolutions: every 3x3x3 is a 1x3x3 over space (`.0`, zero-padded) and
a 3x1x1 over time (`.1`, the first frame replicated in front), each wrapped as `.conv3d`. Residual
blocks norm each frame on its own (GroupNorm of one group). The encoder halves space and time once
(level 0's `downsample`: a strided convolution plus 2x average pooling, each way, then 1x1x1), the
decoder doubles them once (level 1's `upsample`: repeat, plus a convolution), so 4 x 2 = 8 each way;
a single latent frame stays one frame. The middle blocks (and any level in `attention_levels`)
carry attention twice: over each frame's pixels (`attn.0`), then causally over each pixel's frames
(`attn.1`); single head, 1x1x1 `q` / `k` / `v` / `proj_out`.

The formulation is a plain autoencoder (quant_conv's output is the latent). Latents leave the
socket as ComfyUI's VAE gives them: normalised by the file's `latent_mean` / `latent_std` (16
values per channel, one per latent frame, repeated past 16 frames) times sigma_data 0.5, which is
what the diffusion model samples (the Cosmos1CV8x8x8 latent format is the identity); decoding
undoes it. ComfyUI's file also holds the patchers' wavelet buffers (`decoder.unpatcher3d.wavelets`
is its marker), which are constants, not weights: they are skipped.

Keys: encoder.{conv_in.{0,1}, down.N.{block.M, attn.M.{0,1}, downsample.conv{1,2,3}}, mid.{block_1,
attn_1.{0,1}, block_2}, norm_out.norm, conv_out.{0,1}}, quant_conv, post_quant_conv,
decoder.{conv_in, mid, up.N.{block.M, attn.M, upsample.conv{1,2,3}}, norm_out, conv_out}, latent_mean,
latent_std; a residual block is norm1.norm, conv1.{0,1}, norm2.norm, conv2.{0,1}, nin_shortcut.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .file_kind import is_cosmos1_vae  # noqa: F401 (torch-free detection)
from .latent_formats import COSMOS1
from .mochi_vae import FrameGroupNorm
from .vae import VideoVAESocket

SIGMA_DATA = 0.5  # the latents' scale after normalising
# the wavelet filters ComfyUI's file carries as buffers (non-persistent in the module: constants)
BUFFERS = ("encoder.patcher3d.", "decoder.unpatcher3d.")


@dataclass(frozen=True)
class CosmosVAEConfig:
    channels: int = 128
    channels_mult: tuple = (2, 4, 4)
    num_res_blocks: int = 2
    attention_levels: tuple = ()  # levels whose blocks carry attention (the release: the middle alone)
    patch_size: int = 4  # Haar wavelet bands per side
    z_channels: int = 16
    latent_channels: int = 16
    in_channels: int = 3
    out_channels: int = 3
    spatial_compression: int = 8
    temporal_compression: int = 8
    latent_temporal_chunk: int = 16  # latent_mean / latent_std values per channel

    @property
    def downscale(self) -> int:
        return self.spatial_compression

    @property
    def frames_per_latent(self) -> int:
        return self.temporal_compression

    @property
    def spatial_downs(self) -> int:
        return int(math.log2(self.spatial_compression)) - int(math.log2(self.patch_size))

    @property
    def temporal_downs(self) -> int:
        return int(math.log2(self.temporal_compression)) - int(math.log2(self.patch_size))


def cosmos_vae_config_from_state_dict(shapes) -> CosmosVAEConfig:
    """The config of a Cosmos 1.0 tokenizer state dict (NVIDIA's / ComfyUI's layout), from its shapes."""
    channels, patched = shapes["encoder.conv_in.0.conv3d.weight"][:2]
    patch = round((patched / 3) ** (1 / 3))
    levels = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("encoder.down."))
    blocks = 1 + max(int(k.split(".")[4]) for k in shapes if k.startswith("encoder.down.0.block."))
    has = lambda i, part: f"encoder.down.{i}.{part}" in shapes  # noqa: E731
    spatial = sum(has(i, "downsample.conv1.conv3d.weight") for i in range(levels))
    temporal = sum(has(i, "downsample.conv2.conv3d.weight") for i in range(levels))
    latent = shapes["quant_conv.conv3d.weight"][0]
    return CosmosVAEConfig(
        channels=channels,
        channels_mult=tuple(shapes[f"encoder.down.{i}.block.0.conv1.0.conv3d.weight"][0] // channels
                            for i in range(levels)),
        num_res_blocks=blocks,
        attention_levels=tuple(i for i in range(levels) if has(i, "attn.0.0.q.conv3d.weight")),
        patch_size=patch, z_channels=shapes["encoder.conv_out.1.conv3d.weight"][0], latent_channels=latent,
        in_channels=patched // patch ** 3, out_channels=shapes["decoder.conv_out.1.conv3d.weight"][0] // patch ** 3,
        spatial_compression=patch * 2 ** spatial, temporal_compression=patch * 2 ** temporal,
        latent_temporal_chunk=shapes["latent_mean"][0] // latent)


# -- Haar wavelet bands -------------------------------------------------------------------------

def _halves(x: torch.Tensor, dim: int):
    """Pairs along `dim` -> (their means, their half-differences); an odd length pairs its last
    element with its reflection (the one before it)."""
    n = x.shape[dim]
    if n % 2:
        x = torch.cat([x, x.narrow(dim, n - 2, 1)], dim)
    a, b = x.unflatten(dim, (-1, 2)).unbind(dim + 1)
    return (a + b) / 2, (a - b) / 2


def haar_bands(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, C * patch^3, (T + patch - 1) / patch, H / patch, W / patch]: the first frame
    repeated patch times, then log2(patch) Haar steps, each splitting frames, rows, then columns into
    low and high halves (bands in that order, time the slowest; channels within a band)."""
    x = torch.cat([x[:, :, :1].expand(-1, -1, patch - 1, -1, -1), x], dim=2)
    for _ in range(int(math.log2(patch))):
        bands = [x]
        for dim in (2, 3, 4):
            bands = [half for band in bands for half in _halves(band, dim)]
        x = torch.cat(bands, dim=1)
    return x


def haar_unbands(x: torch.Tensor, patch: int) -> torch.Tensor:
    """haar_bands undone: [B, C * patch^3, t, h, w] -> [B, C, patch(t - 1) + 1, patch h, patch w]."""
    for _ in range(int(math.log2(patch))):
        bands = list(x.chunk(8, dim=1))
        for dim in (4, 3, 2):
            bands = [torch.stack([lo + hi, lo - hi], dim + 1).flatten(dim, dim + 1)
                     for lo, hi in zip(bands[0::2], bands[1::2])]
        x = bands[0]
    return x[:, :, patch - 1:]


# -- layers --------------------------------------------------------------------------------------

class CausalConv3d(nn.Module):
    """A 3-D convolution (`conv3d`) fed k_t - stride_t copies of the first frame in front (so output
    frame i sees frames up to i) and `padding` zeros around each frame."""

    def __init__(self, cin: int, cout: int, kernel=3, stride: int = 1, time_stride: int = 1, padding: int = 1):
        super().__init__()
        kernel = (kernel,) * 3 if isinstance(kernel, int) else kernel
        self.time_pad, self.padding = kernel[0] - time_stride, padding
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride=(time_stride, stride, stride))

    def forward(self, x):
        if self.time_pad > 0:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1), x], dim=2)
        if self.padding:
            x = F.pad(x, (self.padding,) * 4)
        return self.conv3d(x)


def factorised(cin: int, cout: int) -> nn.Sequential:
    """A causal 3x3x3 as 1x3x3 over space, then 3x1x1 over time."""
    return nn.Sequential(CausalConv3d(cin, cout, (1, 3, 3)), CausalConv3d(cout, cout, (3, 1, 1), padding=0))


class FrameNorm(nn.Module):
    """GroupNorm of one group over each frame on its own (`norm`, eps 1e-6)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = FrameGroupNorm(1, channels, eps=1e-6)

    def forward(self, x):
        return self.norm(x)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = FrameNorm(cin), factorised(cin, cout)
        self.norm2, self.conv2 = FrameNorm(cout), factorised(cout, cout)
        self.nin_shortcut = CausalConv3d(cin, cout, 1, padding=0) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return self.nin_shortcut(x) + self.conv2(F.silu(self.norm2(h)))


class Attention(nn.Module):
    """Single-head attention over each frame's pixels, or (temporal) causally over each pixel's frames."""

    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.temporal = temporal
        self.norm = FrameNorm(channels)
        self.q, self.k, self.v, self.proj_out = (CausalConv3d(channels, channels, 1, padding=0) for _ in range(4))

    def forward(self, x):
        b, c, t, h, w = x.shape
        y = self.norm(x)
        # tokens [sequences, 1 head, length, c]: (b, t) x (h w) spatially, (b, h, w) x t in time
        order = (0, 3, 4, 2, 1) if self.temporal else (0, 2, 3, 4, 1)
        q, k, v = (proj(y).permute(order).reshape(-1, 1, t if self.temporal else h * w, c)
                   for proj in (self.q, self.k, self.v))
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril() if self.temporal else None
        y = attention(q, k, v, mask)
        if self.temporal:
            y = y.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2)
        else:
            y = y.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)
        return x + self.proj_out(y)


def attention_pair(channels: int) -> nn.Sequential:
    return nn.Sequential(Attention(channels, temporal=False), Attention(channels, temporal=True))


class Downsample(nn.Module):
    """Halve space (a stride-2 1x3x3 convolution plus 2x2 average pooling, zero-padded right and
    below) and / or time (a stride-2 3x1x1 convolution plus 2x average pooling, the first frame
    replicated in front), then a 1x1x1 convolution; neither: nothing."""

    def __init__(self, channels: int, spatial: bool, temporal: bool):
        super().__init__()
        self.spatial, self.temporal = spatial, temporal
        if spatial:
            self.conv1 = CausalConv3d(channels, channels, (1, 3, 3), stride=2, padding=0)
        if temporal:
            self.conv2 = CausalConv3d(channels, channels, (3, 1, 1), time_stride=2, padding=0)
        if spatial or temporal:
            self.conv3 = CausalConv3d(channels, channels, 1, padding=0)

    def forward(self, x):
        if self.spatial:
            x = F.pad(x, (0, 1, 0, 1))
            x = self.conv1(x) + F.avg_pool3d(x, (1, 2, 2), (1, 2, 2))
        if self.temporal:
            x = torch.cat([x[:, :, :1], x], dim=2)
            x = self.conv2(x) + F.avg_pool3d(x, (2, 1, 1), (2, 1, 1))
        return self.conv3(x) if self.spatial or self.temporal else x


class Upsample(nn.Module):
    """Double time (each frame repeated, the first one not: a lone frame stays one; plus a causal
    3x1x1 convolution) and / or space (nearest, plus a 1x3x3 convolution), then 1x1x1."""

    def __init__(self, channels: int, spatial: bool, temporal: bool):
        super().__init__()
        self.spatial, self.temporal = spatial, temporal
        if temporal:
            self.conv1 = CausalConv3d(channels, channels, (3, 1, 1), padding=0)
        if spatial:
            self.conv2 = CausalConv3d(channels, channels, (1, 3, 3))
        if spatial or temporal:
            self.conv3 = CausalConv3d(channels, channels, 1, padding=0)

    def forward(self, x):
        if self.temporal and x.shape[2] > 1:
            x = x.repeat_interleave(2, dim=2)[:, :, 1:]
        if self.temporal:
            x = self.conv1(x) + x
        if self.spatial:
            x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
            x = self.conv2(x) + x
        return self.conv3(x) if self.spatial or self.temporal else x


class Level(nn.Module):
    """One resolution: residual blocks (`block.M`), each followed by attention (`attn.M`) when the
    level has it, then the resampling."""

    def __init__(self, cin: int, cout: int, blocks: int, attend: bool, resample: nn.Module | None = None):
        super().__init__()
        self.block = nn.ModuleList([ResBlock(cin if i == 0 else cout, cout) for i in range(blocks)])
        self.attn = nn.ModuleList([attention_pair(cout) for _ in range(blocks)] if attend else [])
        # the encoder's is `downsample`, the decoder's `upsample`; the coarsest level has none
        self.resample = None if resample is None else "downsample" if isinstance(resample, Downsample) else "upsample"
        if resample is not None:
            setattr(self, self.resample, resample)

    def forward(self, x):
        for i, block in enumerate(self.block):
            x = block(x)
            if len(self.attn):
                x = self.attn[i](x)
        return x if self.resample is None else getattr(self, self.resample)(x)


class Middle(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = ResBlock(channels, channels), attention_pair(channels), \
            ResBlock(channels, channels)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    def __init__(self, cfg: CosmosVAEConfig):
        super().__init__()
        self.patch = cfg.patch_size
        widths = [cfg.channels] + [cfg.channels * m for m in cfg.channels_mult]
        n = len(cfg.channels_mult)
        self.conv_in = factorised(cfg.in_channels * cfg.patch_size ** 3, cfg.channels)
        self.down = nn.ModuleList([
            Level(widths[i], widths[i + 1], cfg.num_res_blocks, i in cfg.attention_levels,
                  Downsample(widths[i + 1], i < cfg.spatial_downs, i < cfg.temporal_downs) if i < n - 1 else None)
            for i in range(n)])
        self.mid = Middle(widths[-1])
        self.norm_out = FrameNorm(widths[-1])
        self.conv_out = factorised(widths[-1], cfg.z_channels)

    def forward(self, x):
        x = self.conv_in(haar_bands(x, self.patch))
        for level in self.down:
            x = level(x)
        return self.conv_out(F.silu(self.norm_out(self.mid(x))))


class Decoder(nn.Module):
    def __init__(self, cfg: CosmosVAEConfig):
        super().__init__()
        self.patch = cfg.patch_size
        n = len(cfg.channels_mult)
        width = cfg.channels * cfg.channels_mult[-1]
        self.conv_in = factorised(cfg.z_channels, width)
        self.mid = Middle(width)
        levels = []
        for i in reversed(range(n)):  # built deepest first, stored by level (up.0 the finest)
            out = cfg.channels * cfg.channels_mult[i]
            r = n - 1 - i  # the encoder level this one mirrors (ComfyUI's non-legacy rule)
            temporal = 0 < r < cfg.temporal_downs + 1
            spatial = temporal or (r < cfg.spatial_downs and cfg.spatial_downs > cfg.temporal_downs)
            levels.insert(0, Level(width, out, cfg.num_res_blocks + 1, i in cfg.attention_levels,
                                   Upsample(out, spatial, temporal) if i > 0 else None))
            width = out
        self.up = nn.ModuleList(levels)
        self.norm_out = FrameNorm(width)
        self.conv_out = factorised(width, cfg.out_channels * cfg.patch_size ** 3)

    def forward(self, z):
        x = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            x = level(x)
        return haar_unbands(self.conv_out(F.silu(self.norm_out(x))), self.patch)


class CosmosVideoVAE(nn.Module):
    def __init__(self, config: CosmosVAEConfig = CosmosVAEConfig()):
        super().__init__()
        self.config = cfg = config
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = CausalConv3d(cfg.z_channels, cfg.latent_channels, 1, padding=0)
        self.post_quant_conv = CausalConv3d(cfg.latent_channels, cfg.z_channels, 1, padding=0)
        self.latent_mean = nn.Parameter(torch.zeros(cfg.latent_channels * cfg.latent_temporal_chunk))
        self.latent_std = nn.Parameter(torch.ones(cfg.latent_channels * cfg.latent_temporal_chunk))

    def _stats(self, z: torch.Tensor):
        """latent_mean / latent_std as [1, C, frames, 1, 1]: one value per channel and latent frame,
        repeated every latent_temporal_chunk frames."""
        t, c = z.shape[2], self.config.latent_channels
        reps = -(-t // self.config.latent_temporal_chunk)
        return [s.view(c, -1).repeat(1, reps)[:, :t].reshape(1, c, t, 1, 1).to(z.dtype)
                for s in (self.latent_mean, self.latent_std)]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels [B, 3, T, H, W] in -1..1 -> normalised latents [B, 16, ceil(T / 8), H/8, W/8]."""
        z = self.quant_conv(self.encoder(x))
        mean, std = self._stats(z)
        return (z - mean) / std * SIGMA_DATA

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents [B, 16, F, h, w] -> pixels [B, 3, 8(F - 1) + 1, 8h, 8w] in about -1..1."""
        mean, std = self._stats(z)
        return self.decoder(self.post_quant_conv(z / SIGMA_DATA * std + mean))


class CosmosVAE(VideoVAESocket):
    """The Cosmos 1.0 tokenizer as a VAE socket: an IMAGE batch (BHWC, 0..1) is the frames of one
    video, every frame encoded (T frames -> ceil(T / 8) latent frames, as ComfyUI); latents
    [B, 16, F, h, w] (normalised, as ComfyUI's VAE gives them) decode to 8(F - 1) + 1 frames.
    Tiled as VideoVAESocket says."""

    latent_format = COSMOS1
    title = "the Cosmos 1.0 VAE"
    memory_name = "cosmos_vae"

    def __init__(self, module: CosmosVideoVAE):
        self.module = module.eval()

    def _decode(self, z):
        return self.module.decode(z)

    def _encode(self, x):
        return self.module.encode(x)
