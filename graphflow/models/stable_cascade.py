"""Stable Cascade's (Würstchen v3) diffusion networks: Stage C, the text-conditioned prior on a
16-channel latent at about 1/42 of the image size, and Stage B, the decoder that turns Stage C's
latent into Stage A's 4-channel latent at 1/4 (Pernias et al. 2023, "Würstchen: An Efficient
Architecture for Large-Scale Text-to-Image Diffusion Models"). Both are the same UNet of
ConvNeXt-like residual blocks, timestep-modulation blocks and cross-attention blocks, with
different configurations.

Keys are Stability's original layout (stable_cascade_stage_c.safetensors, stage_b*.safetensors):
attention as torch's MultiheadAttention (`attention.attn.in_proj_weight` / `out_proj`), Stage B's
pooled-text projection named `clip_mapper`; files saved by ComfyUI split in_proj into
`attn.to_q` / `to_k` / `to_v`, which are read too. Configurations are read from the shapes; the head
count is width // 64 in every released model (the files do not store it).

Called as net(x, r, clip_text, clip_text_pooled, effnet=None):
    x                 [B, C, h, w] noisy latent (variance-preserving scale)
    r                 [B] the noise level in continuous time, 0..1 (StableCascadeSampling.timestep)
    clip_text         [B, T, 1280] CLIP-G last hidden states (Stage C only; Stage B ignores them)
    clip_text_pooled  [B, 1280] or [B, 1, 1280] CLIP-G's projected pooled output; for Stage C
                      [B, 1280 + N * 768] carries N CLIP image embeddings after it (clip_img:
                      unCLIPConditioning's, for image variations; DiffusionModel.encode_adm)
    effnet            [B, 16, h', w'] Stage C's latent, Stage B's conditioning (zeros if None)
and predicts eps. Without image embeddings Stage C's clip_img is one zero embedding, as ComfyUI
passes without unCLIP conditioning; sca / crp time conditionings are zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import attention
from .file_kind import cascade_stage

HEAD_WIDTH = 64


@dataclass(frozen=True)
class CascadeConfig:
    stage: str  # "c" or "b"
    in_channels: int
    out_channels: int
    patch_size: int
    widths: tuple[int, ...]  # per level
    down_layers: tuple[int, ...]  # layers per level, going down
    up_layers: tuple[int, ...]  # layers per level, coming up (deepest first)
    down_repeats: tuple[int, ...]
    up_repeats: tuple[int, ...]  # deepest first
    attention_levels: tuple[bool, ...]  # levels whose layers have cross-attention
    cond_width: int = 2048
    clip_text_width: int | None = 1280  # Stage C only
    clip_pooled_width: int = 1280
    clip_image_width: int | None = 768  # Stage C only
    clip_seq: int = 4
    effnet_channels: int | None = None  # Stage B only
    pixel_channels: int | None = None  # Stage B only
    timestep_width: int = 64
    time_conds: tuple[str, ...] = ("sca", "crp")
    resample: bool = True  # False: levels keep the resolution (Stage C)

    @property
    def heads(self) -> tuple[int, ...]:
        return tuple(max(1, w // HEAD_WIDTH) for w in self.widths)


STAGE_C = CascadeConfig("c", 16, 16, 1, (2048, 2048), (8, 24), (24, 8), (1, 1), (1, 1), (True, True),
                        resample=False)
STAGE_B = CascadeConfig("b", 4, 4, 2, (320, 640, 1280, 1280), (2, 6, 28, 6), (6, 28, 6, 2), (1, 1, 1, 1),
                        (2, 2, 3, 3), (False, False, True, True), cond_width=1280, clip_text_width=None,
                        clip_image_width=None, effnet_channels=16, pixel_channels=3, time_conds=("sca",))


def is_stable_cascade(shapes) -> str | None:
    """"c" or "b" for a Stage C / Stage B file (bare keys), else None."""
    stage = cascade_stage(shapes)
    return stage if stage in ("c", "b") else None


def _count(shapes, prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in shapes if k.startswith(prefix)})


def cascade_config_from_shapes(shapes) -> CascadeConfig:
    """The configuration of a Stage C or Stage B network from its (bare) key names and shapes."""
    stage = is_stable_cascade(shapes)
    if stage is None:
        raise KeyError("no Stable Cascade Stage C / Stage B keys (clip_txt_mapper / effnet_mapper, clf)")
    patch = 1 if stage == "c" else 2
    levels = _count(shapes, "down_blocks.")
    widths = tuple(shapes[f"down_blocks.{i}.0.depthwise.weight"][0] for i in range(levels))
    attention_levels = tuple(any(f"down_blocks.{i}.2.attention.attn.{w}" in shapes for w in ("in_proj_weight", "to_q.weight"))
                             for i in range(levels))
    per_layer = [3 if a else 2 for a in attention_levels]
    down_layers = tuple(_count(shapes, f"down_blocks.{i}.") // per_layer[i] for i in range(levels))
    up_layers = tuple(_count(shapes, f"up_blocks.{k}.") // per_layer[levels - 1 - k] for k in range(levels))
    down_repeats = tuple(_count(shapes, f"down_repeat_mappers.{i}.") + 1 for i in range(levels))
    up_repeats = tuple(_count(shapes, f"up_repeat_mappers.{k}.") + 1 for k in range(levels))
    level = attention_levels.index(True)
    cond_width = shapes[f"down_blocks.{level}.2.kv_mapper.1.weight"][1]
    pooled = shapes["clip_txt_pooled_mapper.weight" if stage == "c" else "clip_mapper.weight"]
    first = shapes["down_blocks.0.1.mapper.weight"]
    time_conds = tuple(c for c in ("sca", "crp") if f"down_blocks.0.1.mapper_{c}.weight" in shapes)
    return CascadeConfig(
        stage=stage, in_channels=shapes["embedding.1.weight"][1] // patch ** 2,
        out_channels=shapes["clf.1.weight"][0] // patch ** 2, patch_size=patch, widths=widths,
        down_layers=down_layers, up_layers=up_layers, down_repeats=down_repeats, up_repeats=up_repeats,
        attention_levels=attention_levels, cond_width=cond_width,
        clip_text_width=shapes["clip_txt_mapper.weight"][1] if stage == "c" else None,
        clip_pooled_width=pooled[1], clip_image_width=shapes["clip_img_mapper.weight"][1] if stage == "c" else None,
        clip_seq=pooled[0] // cond_width,
        effnet_channels=shapes["effnet_mapper.0.weight"][1] if stage == "b" else None,
        pixel_channels=shapes["pixels_mapper.0.weight"][1] if "pixels_mapper.0.weight" in shapes else None,
        timestep_width=first[1], time_conds=time_conds,
        resample=levels < 2 or len(shapes.get("down_downscalers.1.1.weight", ())) == 4)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a [B, C, H, W] map."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt V2's GRN (Woo et al. 2023) on channels-last activations."""

    def __init__(self, width: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, width))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, width))

    def forward(self, x):
        norm = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        return self.gamma * (x * (norm / (norm.mean(dim=-1, keepdim=True) + 1e-6))) + self.beta + x


class ResBlock(nn.Module):
    def __init__(self, width: int, skip: int = 0, kernel_size: int = 3):
        super().__init__()
        self.depthwise = nn.Conv2d(width, width, kernel_size, padding=kernel_size // 2, groups=width)
        self.norm = LayerNorm2d(width, elementwise_affine=False, eps=1e-6)
        self.channelwise = nn.Sequential(nn.Linear(width + skip, width * 4), nn.GELU(), GlobalResponseNorm(width * 4),
                                         nn.Dropout(0.0), nn.Linear(width * 4, width))

    def forward(self, x, skip=None):
        h = self.norm(self.depthwise(x))
        if skip is not None:
            h = torch.cat([h, skip], dim=1)
        return x + self.channelwise(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TimestepBlock(nn.Module):
    """x (1 + a) + b, with (a, b) summed over the noise level's and the extra conditions' embeddings."""

    def __init__(self, width: int, timestep_width: int, conds: tuple[str, ...]):
        super().__init__()
        self.mapper = nn.Linear(timestep_width, width * 2)
        self.conds = conds
        for name in conds:
            setattr(self, f"mapper_{name}", nn.Linear(timestep_width, width * 2))

    def forward(self, x, embedding):
        parts = embedding.chunk(len(self.conds) + 1, dim=1)
        a, b = self.mapper(parts[0])[:, :, None, None].chunk(2, dim=1)
        for name, part in zip(self.conds, parts[1:]):
            ac, bc = getattr(self, f"mapper_{name}")(part)[:, :, None, None].chunk(2, dim=1)
            a, b = a + ac, b + bc
        return x * (1 + a) + b


class MultiheadAttention(nn.Module):
    """torch's nn.MultiheadAttention weights (in_proj / out_proj), run through graphflow's attention."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x, kv):
        w_q, w_kv = self.in_proj_weight.split([x.shape[-1], 2 * x.shape[-1]])
        b_q, b_kv = self.in_proj_bias.split([x.shape[-1], 2 * x.shape[-1]])
        q = F.linear(x, w_q, b_q)
        k, v = F.linear(kv, w_kv, b_kv).chunk(2, dim=-1)
        split = lambda t: t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # noqa: E731
        out = attention(split(q), split(k), split(v)).transpose(1, 2).flatten(2)
        return self.out_proj(out)


class Attention2d(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = MultiheadAttention(width, heads)

    def forward(self, x, kv):
        b, c, h, w = x.shape
        tokens = x.reshape(b, c, h * w).transpose(1, 2)
        kv = torch.cat([tokens, kv], dim=1)  # self-attention over the pixels and cross-attention at once
        return self.attn(tokens, kv).transpose(1, 2).reshape(b, c, h, w)


class AttnBlock(nn.Module):
    def __init__(self, width: int, cond_width: int, heads: int):
        super().__init__()
        self.norm = LayerNorm2d(width, elementwise_affine=False, eps=1e-6)
        self.attention = Attention2d(width, heads)
        self.kv_mapper = nn.Sequential(nn.SiLU(), nn.Linear(cond_width, width))

    def forward(self, x, cond):
        return x + self.attention(self.norm(x), self.kv_mapper(cond))


class Resample(nn.Module):
    """Stage C's level change: a 1x1 convolution at the same resolution (its 'switch level' off;
    the identity stands where the resize would be, before the convolution going up, after it
    going down, so the convolution's key index differs)."""

    def __init__(self, width_in: int, width_out: int, up: bool):
        super().__init__()
        conv = nn.Conv2d(width_in, width_out, kernel_size=1)
        self.blocks = nn.ModuleList([nn.Identity(), conv] if up else [conv, nn.Identity()])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def _mapper(channels: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, width * 4, kernel_size=1), nn.GELU(),
                         nn.Conv2d(width * 4, width, kernel_size=1), LayerNorm2d(width, elementwise_affine=False, eps=1e-6))


class StableCascadeUNet(nn.Module):
    def __init__(self, config: CascadeConfig):
        super().__init__()
        self.config = c = config
        w0 = c.widths[0]
        if c.effnet_channels:
            self.effnet_mapper = _mapper(c.effnet_channels, w0)
        if c.pixel_channels:
            self.pixels_mapper = _mapper(c.pixel_channels, w0)
        pooled_name = "clip_txt_pooled_mapper" if c.stage == "c" else "clip_mapper"
        setattr(self, pooled_name, nn.Linear(c.clip_pooled_width, c.cond_width * c.clip_seq))
        if c.clip_text_width:
            self.clip_txt_mapper = nn.Linear(c.clip_text_width, c.cond_width)
        if c.clip_image_width:
            self.clip_img_mapper = nn.Linear(c.clip_image_width, c.cond_width * c.clip_seq)
        self.clip_norm = nn.LayerNorm(c.cond_width, elementwise_affine=False, eps=1e-6)
        self.embedding = nn.Sequential(nn.PixelUnshuffle(c.patch_size),
                                       nn.Conv2d(c.in_channels * c.patch_size ** 2, w0, kernel_size=1),
                                       LayerNorm2d(w0, elementwise_affine=False, eps=1e-6))
        levels = len(c.widths)

        def layer(i, skip=0):
            blocks = [ResBlock(c.widths[i], skip), TimestepBlock(c.widths[i], c.timestep_width, c.time_conds)]
            if c.attention_levels[i]:
                blocks.append(AttnBlock(c.widths[i], c.cond_width, c.heads[i]))
            return blocks

        def norm(i):
            return LayerNorm2d(c.widths[i], elementwise_affine=False, eps=1e-6)

        self.down_blocks, self.down_downscalers, self.down_repeat_mappers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in range(levels):
            if i == 0:
                self.down_downscalers.append(nn.Identity())
            else:
                change = (nn.Conv2d(c.widths[i - 1], c.widths[i], kernel_size=2, stride=2) if c.resample
                          else Resample(c.widths[i - 1], c.widths[i], up=False))
                self.down_downscalers.append(nn.Sequential(norm(i - 1), change))
            self.down_blocks.append(nn.ModuleList(b for _ in range(c.down_layers[i]) for b in layer(i)))
            self.down_repeat_mappers.append(nn.ModuleList(
                nn.Conv2d(c.widths[i], c.widths[i], kernel_size=1) for _ in range(c.down_repeats[i] - 1)))
        self.up_blocks, self.up_upscalers, self.up_repeat_mappers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for k, i in enumerate(reversed(range(levels))):
            if i == 0:
                self.up_upscalers.append(nn.Identity())
            else:
                change = (nn.ConvTranspose2d(c.widths[i], c.widths[i - 1], kernel_size=2, stride=2) if c.resample
                          else Resample(c.widths[i], c.widths[i - 1], up=True))
                self.up_upscalers.append(nn.Sequential(norm(i), change))
            blocks = []
            for j in range(c.up_layers[k]):
                # the first block of a level below the deepest takes the down path's output as a skip
                blocks += layer(i, skip=c.widths[i] if j == 0 and i < levels - 1 else 0)
            self.up_blocks.append(nn.ModuleList(blocks))
            self.up_repeat_mappers.append(nn.ModuleList(
                nn.Conv2d(c.widths[i], c.widths[i], kernel_size=1) for _ in range(c.up_repeats[k] - 1)))
        self.clf = nn.Sequential(norm(0), nn.Conv2d(w0, c.out_channels * c.patch_size ** 2, kernel_size=1),
                                 nn.PixelShuffle(c.patch_size))

    def timestep_embedding(self, r: torch.Tensor, max_positions: int = 10000) -> torch.Tensor:
        half = self.config.timestep_width // 2
        freqs = torch.arange(half, device=r.device).float().mul(-math.log(max_positions) / (half - 1)).exp()
        angles = (r.float() * max_positions)[:, None] * freqs[None]
        emb = torch.cat([angles.sin(), angles.cos()], dim=1)
        if self.config.timestep_width % 2:
            emb = F.pad(emb, (0, 1))
        return emb

    def text_conditioning(self, clip_text, clip_pooled) -> torch.Tensor:
        c = self.config
        batch = clip_pooled.shape[0]
        image = clip_pooled.new_zeros(batch, 1, c.clip_image_width) if c.stage == "c" else None
        if c.stage == "c" and clip_pooled.ndim == 2 and clip_pooled.shape[1] > c.clip_pooled_width:
            # image embeddings after the pooled vector: one image token each (clip_seq tokens once mapped)
            image = clip_pooled[:, c.clip_pooled_width:].reshape(batch, -1, c.clip_image_width)
            clip_pooled = clip_pooled[:, :c.clip_pooled_width]
        pooled = clip_pooled.reshape(batch, -1, c.clip_pooled_width)
        mapper = self.clip_txt_pooled_mapper if c.stage == "c" else self.clip_mapper
        parts = [mapper(pooled).reshape(batch, pooled.shape[1] * c.clip_seq, -1)]
        if c.stage == "c":
            if clip_text is None:
                raise ValueError("Stable Cascade Stage C needs the prompt's CLIP-G hidden states (clip_text)")
            parts = [self.clip_txt_mapper(clip_text)] + parts + [
                self.clip_img_mapper(image).reshape(batch, image.shape[1] * c.clip_seq, -1)]
        return self.clip_norm(torch.cat(parts, dim=1))

    def forward(self, x, r, clip_text=None, clip_text_pooled=None, effnet=None):
        c = self.config
        dtype = x.dtype
        r = r.reshape(-1).expand(x.shape[0]) if r.numel() == 1 else r.reshape(-1)
        embedding = torch.cat([self.timestep_embedding(r)] + [self.timestep_embedding(torch.zeros_like(r))
                                                               for _ in c.time_conds], dim=1).to(dtype)
        if clip_text_pooled is None:
            clip_text_pooled = x.new_zeros(x.shape[0], c.clip_pooled_width)
        cond = self.text_conditioning(None if clip_text is None else clip_text.to(dtype), clip_text_pooled.to(dtype))
        h = self.embedding(x)
        if c.effnet_channels:
            if effnet is None:  # ComfyUI's default: a zero prior (resized anyway)
                effnet = x.new_zeros(x.shape[0], c.effnet_channels, x.shape[2] * 4 // 42, x.shape[3] * 4 // 42)
            effnet = F.interpolate(effnet.to(dtype), size=h.shape[-2:], mode="bilinear", align_corners=True)
            h = h + self.effnet_mapper(effnet)
        if c.pixel_channels:
            pixels = x.new_zeros(x.shape[0], c.pixel_channels, 8, 8)
            h = h + F.interpolate(self.pixels_mapper(pixels), size=h.shape[-2:], mode="bilinear", align_corners=True)
        levels = []
        for blocks, downscaler, repeats in zip(self.down_blocks, self.down_downscalers, self.down_repeat_mappers):
            h = downscaler(h)
            for n in range(len(repeats) + 1):
                for block in blocks:
                    h = self._block(block, h, embedding, cond)
                if n < len(repeats):
                    h = repeats[n](h)
            levels.insert(0, h)
        h = levels[0]
        for i, (blocks, upscaler, repeats) in enumerate(zip(self.up_blocks, self.up_upscalers, self.up_repeat_mappers)):
            for n in range(len(repeats) + 1):
                for k, block in enumerate(blocks):
                    skip = levels[i] if k == 0 and i > 0 and isinstance(block, ResBlock) else None
                    if skip is not None and h.shape[-2:] != skip.shape[-2:]:  # odd sizes: match the down path
                        h = F.interpolate(h.float(), skip.shape[-2:], mode="bilinear", align_corners=True).to(dtype)
                    h = self._block(block, h, embedding, cond, skip)
                if n < len(repeats):
                    h = repeats[n](h)
            h = upscaler(h)
        return self.clf(h)

    @staticmethod
    def _block(block, h, embedding, cond, skip=None):
        if isinstance(block, ResBlock):
            return block(h, skip)
        if isinstance(block, TimestepBlock):
            return block(h, embedding)
        return block(h, cond)


def _split_attention(shapes, expected) -> dict[str, list[str]]:
    """in_proj tensors stored as separate to_q / to_k / to_v (ComfyUI's own module names, in the
    files it saves) -> the keys to concatenate for each."""
    split = {}
    for key in expected:
        if key.endswith(("attn.in_proj_weight", "attn.in_proj_bias")) and key not in shapes:
            base, kind = key.rsplit(".in_proj_", 1)
            parts = [f"{base}.{p}.{kind}" for p in ("to_q", "to_k", "to_v")]
            if all(p in shapes for p in parts):
                split[key] = parts
    return split


def build_stable_cascade(source, config: CascadeConfig | None = None, device=None, dtype=None) -> StableCascadeUNet:
    """A Stage C / Stage B network from a state dict or key view (bare original-layout keys)."""
    is_dict = isinstance(source, dict)
    shapes = {k: tuple(v.shape) for k, v in source.items()} if is_dict else source.shapes
    config = config or cascade_config_from_shapes(shapes)
    with torch.device("meta"):
        net = StableCascadeUNet(config)
    expected = set(net.state_dict())
    split = _split_attention(shapes, expected)
    missing = sorted(expected - set(shapes) - set(split))
    if missing:
        raise KeyError(f"Stable Cascade Stage {config.stage.upper()}: {len(missing)} tensors missing, "
                       f"e.g. {', '.join(missing[:3])}")
    read = (lambda k: source[k]) if is_dict else source.get
    state = {k: torch.cat([read(part) for part in split[k]]) if k in split else read(k) for k in expected}
    net.load_state_dict(state, assign=True)
    return net.to(device=device, dtype=dtype).eval().requires_grad_(False)
