"""Stable Video Diffusion's spatio-temporal UNet (SVD / SVD-XT image-to-video), as Stability's
sgm `VideoUNet` and ComfyUI run it.

It is the SD UNet (graphflow.models.unet) with every ResBlock followed by a temporal ResBlock
(3x1x1 convolutions over the frames) and every transformer block by a temporal transformer block
(attention across the frames at each pixel), each temporal branch blended with the spatial one by
a learned sigmoid(mix_factor). Frames sit on the batch dimension: x is [videos * frames, 8, h, w]
and `num_frames` says how the batch splits into videos (all of it is one video when not given).

Conditioning (ComfyUI's SVD_img2vid model):
    context  the init image's CLIP ViT-H image embedding [B, 1, 1024], repeated to every frame;
             the temporal blocks attend to each video's first frame's context
    y        [B, 768]: 256-d sinusoidal embeddings of (fps - 1, motion_bucket_id,
             augmentation_level), `svd_adm`
    concat   the init image's raw VAE latent on the channels (4 + 4 = 8 input channels)
SV3D (Stability's Stable Video 3D, sv3d_u / sv3d_p: orbit videos of an object) is this UNet with
another y, told apart by its width (label_emb.0.0's input, `video_variant`):
    sv3d_u  [1, 256]: the embedding of augmentation_level alone
    sv3d_p  [frames, 1280]: per frame, augmentation_level (256), the camera's polar angle
             90 - elevation (512) and its azimuth (512), both in radians mod 2 pi, `sv3d_p_adm`
Sampling: v-prediction in continuous EDM time, sigmas 0.002 .. 700, sigma_data 1, the UNet's
timestep 0.25 ln sigma (DiffusionModel.with_continuous_sampling("v", 0.002, 700)).

Parameter names are the checkpoint's (`model.diffusion_model.*` without the prefix):
`input_blocks.k.0.time_stack.*`, `...time_mixer.mix_factor`, `input_blocks.k.1.time_stack.N.*`,
`...time_pos_embed.{0,2}`.
"""

from dataclasses import dataclass

import torch
from torch import nn

from .unet import (Attention, Downsample, FeedForward, ResBlock, SpatialTransformer, Upsample, latent_size,
                   timestep_embedding)

SIGMA_MIN, SIGMA_MAX = 0.002, 700.0  # ComfyUI's SVD sampling_settings (sigma_data 1)
ADM_DIM = 256  # each of the three added time ids
CAMERA_DIM = 512  # SV3D_p's embedding of each camera angle
VARIANTS = {3 * ADM_DIM: "svd", ADM_DIM: "sv3d_u", ADM_DIM + 2 * CAMERA_DIM: "sv3d_p"}  # by y's width


@dataclass(frozen=True)
class SVDConfig:  # defaults: svd.safetensors / svd_xt.safetensors
    in_channels: int = 8
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[bool, ...] = (True, True, True, False)  # one transformer per ResBlock there
    context_dim: int = 1024
    adm_in_channels: int = 3 * ADM_DIM
    num_head_channels: int = 64
    norm_groups: int = 32

    @property
    def variant(self) -> str:
        """svd, sv3d_u or sv3d_p, from the vector conditioning's width."""
        return video_variant(self.adm_in_channels)

    def heads(self, channels: int) -> tuple[int, int]:
        if channels < self.num_head_channels:
            return 1, channels
        return channels // self.num_head_channels, self.num_head_channels


def video_variant(adm_in_channels: int) -> str:
    if adm_in_channels not in VARIANTS:
        raise ValueError(f"a video UNet whose vector conditioning is {adm_in_channels} wide (label_emb.0.0) is none "
                         f"of the known ones: " + ", ".join(f"{w} ({name})" for w, name in VARIANTS.items()))
    return VARIANTS[adm_in_channels]


def svd_config_from_shapes(shapes: dict[str, tuple]) -> SVDConfig:
    """The config of an SVD UNet from its parameter shapes (keys without `model.diffusion_model.`)."""
    mc = shapes["input_blocks.0.0.weight"][0]
    in_channels = shapes["input_blocks.0.0.weight"][1]
    blocks = sorted({int(k.split(".")[1]) for k in shapes if k.startswith("input_blocks.")})
    mults, attention, res_per_level = [], [], []
    level_res = 0
    for k in blocks[1:]:
        if f"input_blocks.{k}.0.op.weight" in shapes:
            res_per_level.append(level_res)
            level_res = 0
            continue
        level_res += 1
        ch = shapes[f"input_blocks.{k}.0.out_layers.3.weight"][0]
        if level_res == 1:
            mults.append(ch // mc)
            attention.append(f"input_blocks.{k}.1.proj_in.weight" in shapes)
    res_per_level.append(level_res)
    context_dim = next(v[1] for k, v in shapes.items() if k.endswith("attn2.to_k.weight"))
    return SVDConfig(in_channels=in_channels, out_channels=shapes["out.2.weight"][0], model_channels=mc,
                     channel_mult=tuple(mults), num_res_blocks=res_per_level[0], attention_levels=tuple(attention),
                     context_dim=context_dim, adm_in_channels=shapes["label_emb.0.0.weight"][1])


def svd_adm(fps: float = 6, motion_bucket_id: float = 127, augmentation_level: float = 0.0) -> torch.Tensor:
    """The vector conditioning y [1, 768]: embeddings of (fps - 1, motion_bucket_id,
    augmentation_level), as ComfyUI's SVD_img2vid.encode_adm (diffusers' added_time_ids)."""
    ids = torch.tensor([fps - 1, motion_bucket_id, augmentation_level], dtype=torch.float32)
    return timestep_embedding(ids, ADM_DIM).reshape(1, -1)


def sv3d_u_adm(augmentation_level: float = 0.0) -> torch.Tensor:
    """SV3D_u's y [1, 256], as ComfyUI's SV3D_u.encode_adm."""
    return timestep_embedding(torch.tensor([float(augmentation_level)]), ADM_DIM)


def sv3d_p_adm(augmentation_level: float = 0.0, elevation=0.0, azimuth=0.0) -> torch.Tensor:
    """SV3D_p's y [frames, 1280], as ComfyUI's SV3D_p.encode_adm: elevation and azimuth in degrees,
    one number or one per frame (a single one is repeated to the other's length)."""
    polar = torch.deg2rad(torch.fmod(90 - torch.tensor(elevation, dtype=torch.float32).flatten(), 360.0))
    azimuth = torch.deg2rad(torch.fmod(torch.tensor(azimuth, dtype=torch.float32).flatten(), 360.0))
    frames = max(len(polar), len(azimuth))
    if {len(polar), len(azimuth)} - {1, frames}:
        raise ValueError(f"SV3D_p needs as many elevations as azimuths (or one of either), got {len(polar)} and "
                         f"{len(azimuth)}")
    augmentation = sv3d_u_adm(augmentation_level).expand(frames, -1)
    return torch.cat([augmentation, timestep_embedding(polar, CAMERA_DIM).expand(frames, -1),
                      timestep_embedding(azimuth, CAMERA_DIM).expand(frames, -1)], dim=1)


class Mixer(nn.Module):
    """sigmoid(mix_factor) spatial + (1 - sigmoid(mix_factor)) temporal (sgm's AlphaBlender, learned)."""

    def __init__(self):
        super().__init__()
        self.mix_factor = nn.Parameter(torch.zeros(1))

    def forward(self, spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.mix_factor).to(spatial.dtype)
        return alpha * spatial + (1.0 - alpha) * temporal


class TemporalResBlock(nn.Module):
    """A ResBlock over [B, C, frames, h, w] with 3x1x1 convolutions: each pixel sees its neighbours
    in time. emb_channels 0: no timestep embedding (the temporal VAE decoder's)."""

    def __init__(self, channels: int, emb_channels: int, groups: int, eps: float = 1e-5):
        super().__init__()
        conv = dict(kernel_size=(3, 1, 1), padding=(1, 0, 0))
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, channels, eps=eps), nn.SiLU(),
                                       nn.Conv3d(channels, channels, **conv))
        if emb_channels:
            self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, channels))
        self.out_layers = nn.Sequential(nn.GroupNorm(groups, channels, eps=eps), nn.SiLU(), nn.Identity(),
                                        nn.Conv3d(channels, channels, **conv))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, T, h, w], emb [B, T, emb_channels] or None."""
        h = self.in_layers(x)
        if emb is not None:
            h = h + self.emb_layers(emb).permute(0, 2, 1)[..., None, None]
        return x + self.out_layers(h)


def to_video(x: torch.Tensor, frames: int) -> torch.Tensor:
    """[B*T, C, h, w] -> [B, C, T, h, w]."""
    bt, c, h, w = x.shape
    return x.reshape(bt // frames, frames, c, h, w).transpose(1, 2)


def from_video(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, h, w] -> [B*T, C, h, w]."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


class VideoResBlock(ResBlock):
    def __init__(self, channels: int, emb_channels: int, out_channels: int, groups: int):
        super().__init__(channels, emb_channels, out_channels, groups)
        self.time_stack = TemporalResBlock(out_channels, emb_channels, groups)
        self.time_mixer = Mixer()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        x = to_video(super().forward(x, emb), frames)
        temporal = self.time_stack(x, emb.reshape(x.shape[0], frames, -1))
        return from_video(self.time_mixer(x, temporal))


class VideoTransformerBlock(nn.Module):
    """Attention across the frames of each pixel: a feed-forward in, self-attention, cross-attention
    to the video's context, feed-forward (sgm's VideoTransformerBlock with ff_in)."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int):
        super().__init__()
        self.norm_in = nn.LayerNorm(dim)
        self.ff_in = FeedForward(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim_head, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x [B * pixels, frames, C], context [B * pixels, T, D]."""
        x = x + self.ff_in(self.norm_in(x))
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialVideoTransformer(SpatialTransformer):
    def __init__(self, channels: int, heads: int, dim_head: int, context_dim: int, groups: int):
        super().__init__(channels, heads, dim_head, 1, context_dim, True, groups)
        inner = heads * dim_head
        self.time_stack = nn.ModuleList([VideoTransformerBlock(inner, heads, dim_head, context_dim)])
        self.time_pos_embed = nn.Sequential(nn.Linear(channels, channels * 4), nn.SiLU(),
                                            nn.Linear(channels * 4, channels))
        self.time_mixer = Mixer()

    def forward(self, x: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:
        bt, c, h, w = x.shape
        b, pixels = bt // frames, h * w
        # each pixel's temporal attention reads its video's first-frame context
        time_context = context[::frames].repeat_interleave(pixels, dim=0)
        frame_ids = torch.arange(frames, device=x.device).repeat(b)
        frame_emb = self.time_pos_embed(timestep_embedding(frame_ids, c).to(x.dtype))[:, None]
        t = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(bt, pixels, c))
        for block, time_block in zip(self.transformer_blocks, self.time_stack):
            t = block(t, context, (h, w))
            mix = (t + frame_emb).reshape(b, frames, pixels, -1).transpose(1, 2).reshape(b * pixels, frames, -1)
            mix = time_block(mix, time_context)
            mix = mix.reshape(b, pixels, frames, -1).transpose(1, 2).reshape(bt, pixels, -1)
            t = self.time_mixer(t, mix)
        t = self.proj_out(t).reshape(bt, h, w, c).permute(0, 3, 1, 2)
        return x + t


def _run(layers, x, emb, context, frames, up_size=None):
    for layer in layers:
        if isinstance(layer, VideoResBlock):
            x = layer(x, emb, frames)
        elif isinstance(layer, SpatialVideoTransformer):
            x = layer(x, context, frames)
        elif isinstance(layer, Upsample):
            x = layer(x, up_size)
        else:
            x = layer(x)
    return x


class SVDUNet(nn.Module):
    def __init__(self, config: SVDConfig):
        super().__init__()
        self.config = cfg = config
        mc, groups = cfg.model_channels, cfg.norm_groups
        emb_dim = mc * 4

        def transformer(ch: int) -> SpatialVideoTransformer:
            return SpatialVideoTransformer(ch, *cfg.heads(ch), cfg.context_dim, groups)

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Sequential(nn.Sequential(
            nn.Linear(cfg.adm_in_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)))
        self.input_blocks = nn.ModuleList([nn.ModuleList([nn.Conv2d(cfg.in_channels, mc, 3, padding=1)])])
        skip_channels, ch = [mc], mc
        last = len(cfg.channel_mult) - 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [VideoResBlock(ch, emb_dim, mult * mc, groups)]
                ch = mult * mc
                if cfg.attention_levels[level]:
                    layers.append(transformer(ch))
                self.input_blocks.append(nn.ModuleList(layers))
                skip_channels.append(ch)
            if level != last:
                self.input_blocks.append(nn.ModuleList([Downsample(ch)]))
                skip_channels.append(ch)
        self.middle_block = nn.ModuleList([VideoResBlock(ch, emb_dim, ch, groups), transformer(ch),
                                           VideoResBlock(ch, emb_dim, ch, groups)])
        self.output_blocks = nn.ModuleList()
        for level in reversed(range(len(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                out_ch = cfg.channel_mult[level] * mc
                layers = [VideoResBlock(ch + skip_channels.pop(), emb_dim, out_ch, groups)]
                ch = out_ch
                if cfg.attention_levels[level]:
                    layers.append(transformer(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(nn.ModuleList(layers))
        self.out = nn.Sequential(nn.GroupNorm(groups, ch), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, y: torch.Tensor,
                num_frames: int | None = None) -> torch.Tensor:
        """x [videos * frames, in_channels, h, w] (the init image's latent already on the channels),
        timesteps float [B] (0.25 ln sigma), context [B, T, context_dim], y [B, adm_in_channels] ->
        v [B, out_channels, h, w]. num_frames: frames per video (default: the whole batch)."""
        frames = num_frames or x.shape[0]
        if x.shape[0] % frames:
            raise ValueError(f"a batch of {x.shape[0]} latents does not split into videos of {frames} frames")
        if y is None or context is None:
            raise ValueError("the SVD UNet needs the image embedding (context) and the added time ids (y)")
        dtype, device = self.out[2].weight.dtype, self.out[2].weight.device
        timesteps = torch.as_tensor(timesteps, device=device)
        if timesteps.dim() == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(dtype))
        emb = emb + self.label_emb(y.to(device, dtype))
        context = context.to(device, dtype)
        h = x.to(device, dtype)
        skips = []
        # Deep Shrink's and FreeU's block patches, set on a shallow copy, as the image UNet runs them
        # (ComfyUI's video UNet is its image UNet's code: the patches act there too)
        input_patches = getattr(self, "input_block_patches", ())
        after_skip_patches = getattr(self, "input_block_patches_after_skip", ())
        output_patches = getattr(self, "output_block_patches", ())
        token = latent_size.set(tuple(x.shape[-2:]))  # for HyperTile's patches, as the image UNet does
        try:
            for k, block in enumerate(self.input_blocks):
                h = _run(block, h, emb, context, frames)
                for patch in input_patches:
                    h = patch(h, k, timesteps)
                skips.append(h)
                for patch in after_skip_patches:
                    h = patch(h, k, timesteps)
            h = _run(self.middle_block, h, emb, context, frames)
            for block in self.output_blocks:
                skip = skips.pop()
                for patch in output_patches:
                    h, skip = patch(h, skip)
                h = torch.cat([h, skip], dim=1)
                h = _run(block, h, emb, context, frames, skips[-1].shape[2:] if skips else None)
        finally:
            latent_size.reset(token)
        return self.out(h)

