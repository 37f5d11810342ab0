"""Depth Anything (V1 and V2): relative depth from a DINOv2 ViT backbone and a DPT head, in one file,
reading the original checkpoints (depth_anything_v2_vitl.pth, depth_anything_vitl14.pth, ... or
safetensors conversions keeping their key names) and transformers' -hf files.

Read from the public sources in the reference index (facts, not code, taken):
- Fannovel16/comfyui_controlnet_aux src/custom_controlnet_aux/depth_anything_v2/dpt.py and dinov2.py
  at 2e4e7f68df6378a3e13685d0144dfc24497ac221 (DepthAnythingV2, DPTHead, DinoVisionTransformer with
  interpolate_offset 0.1, the per-size configs and intermediate layers);
- DepthAnything/Depth-Anything-V2 depth_anything_v2/util/blocks.py at
  2cbc36a8ce2cec41d38ee51153f112e87c8e42d8 (_make_scratch, ResidualConvUnit, FeatureFusionBlock);
- the pack's V1 copies: src/custom_controlnet_aux/depth_anything/depth_anything/dpt.py at
  c47ccabe150aa9d4033a7154138ab82be306bd79 (DPT_DINOv2: the last four blocks, the same head) and
  torchhub/facebookresearch_dinov2_main (hubconf.py and dinov2/models/vision_transformer.py at
  2e4e7f68: init_values 1.0 (layer scale), MLP blocks, SwiGLU for ViT-g, the 0.1 offset);
- huggingface/transformers convert_depth_anything_to_hf.py at 13d23e06f715468fd504c579b018ef9b19685834
  (the original key names; tests/test_depth_anything.py maps them onto transformers' model).

The network: 14x14 patches (a Conv2d), a class token, learned position embeddings for a 37x37 grid
interpolated to the input's grid as DINOv2 does (bicubic by the scale factor (grid + 0.1) / 37 on
each axis, not by the target size; resampling "size" takes transformers' rule, to the target size,
for the pack's V1, which runs transformers' model), pre-norm blocks (LayerNorm eps 1e-6, 64-wide
attention heads, layer scale, a GELU MLP or ViT-g's SwiGLU), the final LayerNorm applied to four
blocks' outputs.
The DPT head projects each (1x1 conv), resizes them to 4x, 2x, 1x and 1/2x the patch grid, takes
them to `features` channels (3x3, no bias), fuses them coarse to fine (residual conv units,
bilinear x2 with aligned corners), then conv 3x3 to features/2, bilinear to 14x the patch grid,
conv 3x3 to 32, ReLU, conv 1x1 to 1, ReLU: relative inverse depth (larger is nearer).

V2 reads blocks (2, 5, 8, 11) of ViT-S/B, (4, 11, 17, 23) of ViT-L, (9, 19, 29, 39) of ViT-g;
V1 reads the last four. The weights look alike, so the caller says which version a file is.

Files in transformers' layout (the depth-anything/Depth-Anything-V2-*-hf and LiheYoung/depth-anything-*-hf
repositories' model.safetensors: backbone.*, neck.*, head.*, in transformers 4's names as save_pretrained
writes them or transformers 5's) are read under the original names (hf_names): q, k and v concatenated
into qkv, SwiGLU's gate and up into w12 (transformers 4 keeps it fused as weights_in), the fusion
layers in reverse order; the position embeddings are the same tensor (resampled as DINOv2 does here).

Sizes are told from the weights' shapes, never the file name: the width (cls_token), the number
of blocks, the MLP's kind, the head's channels. Heads are 64 wide in every DINOv2 size, so their
number is the width / 64. A file whose shapes make a consistent network of 12, 24 or 40 blocks
is built as its shapes say (the four released sizes are SIZES); anything else is a CheckpointError
saying what was found.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .weight_files import CheckpointError, RenamedView, WeightFile

PATCH = 14
HEAD_WIDTH = 64  # every DINOv2 size's attention head width
POS_OFFSET = 0.1  # DINOv2's interpolate_offset


@dataclass(frozen=True)
class DepthAnythingConfig:
    dim: int
    depth: int
    heads: int
    features: int  # the head's fusion width
    out_channels: tuple[int, int, int, int]  # each read block's projection
    layers: tuple[int, int, int, int]  # the blocks the head reads
    swiglu: bool = False  # ViT-g's feed-forward
    grid: int = 37  # the position embeddings' side, in patches (518 / 14)
    resampling: str = "dinov2"  # how the position embeddings meet another grid: "dinov2" or "size" (transformers')
    max_depth: float | None = None  # a metric model's: its head ends in a sigmoid times this (else a ReLU)


SIZES = {
    "vits": DepthAnythingConfig(384, 12, 6, 64, (48, 96, 192, 384), (2, 5, 8, 11)),
    "vitb": DepthAnythingConfig(768, 12, 12, 128, (96, 192, 384, 768), (2, 5, 8, 11)),
    "vitl": DepthAnythingConfig(1024, 24, 16, 256, (256, 512, 1024, 1024), (4, 11, 17, 23)),
    "vitg": DepthAnythingConfig(1536, 40, 24, 384, (1536, 1536, 1536, 1536), (9, 19, 29, 39), swiglu=True),
}
V2_LAYERS = {12: (2, 5, 8, 11), 24: (4, 11, 17, 23), 40: (9, 19, 29, 39)}  # by number of blocks


# -- the DINOv2 backbone -------------------------------------------------------------------------


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8  # DINOv2's SwiGLUFFNFused width
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x):
        gate, value = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * value)


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, config: DepthAnythingConfig):
        super().__init__()
        dim = config.dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, config.heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = (SwiGLU if config.swiglu else Mlp)(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class DINOv2(nn.Module):
    def __init__(self, config: DepthAnythingConfig):
        super().__init__()
        self.patch_embed = PatchEmbed(config.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.grid ** 2 + 1, config.dim))
        self.mask_token = nn.Parameter(torch.zeros(1, config.dim))  # training only; kept so files load strictly
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.resampling = config.resampling

    def position_embeddings(self, height: int, width: int) -> torch.Tensor:
        """The embeddings for a height x width input: the stored ones for the stored square grid,
        else the grid's bicubically interpolated by DINOv2's scale factors (patches + 0.1) / grid
        (or, resampling "size", to the patch grid's size as transformers does)."""
        stored = self.pos_embed.shape[1] - 1
        rows, cols = height // PATCH, width // PATCH
        if rows * cols == stored and height == width:
            return self.pos_embed
        pos = self.pos_embed.float()
        side = math.sqrt(stored)
        grid = pos[:, 1:].reshape(1, int(side), int(side), -1).permute(0, 3, 1, 2)
        if self.resampling == "size":  # transformers' Dinov2Embeddings: to the patch grid's size
            grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
        else:
            # The scale factor, not the target size, sets the sampling positions (the 0.1 keeps the
            # floor of grid * factor at the patch count); the trained model expects exactly these.
            grid = F.interpolate(grid, scale_factor=((rows + POS_OFFSET) / side, (cols + POS_OFFSET) / side),
                                 mode="bicubic", antialias=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat([pos[:, :1], grid], dim=1).to(self.pos_embed.dtype)

    def forward(self, x: torch.Tensor, layers) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The final norm of the chosen blocks' outputs: (patch tokens, class token) for each."""
        height, width = x.shape[-2:]
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.position_embeddings(height, width)
        out = []
        for i, block in enumerate(self.blocks[:max(layers) + 1]):
            tokens = block(tokens)
            if i in layers:
                normed = self.norm(tokens)
                out.append((normed[:, 1:], normed[:, 0]))
        return out


# -- the DPT head --------------------------------------------------------------------------------


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x, skip=None, size=None):
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        resize = {"scale_factor": 2} if size is None else {"size": size}
        return self.out_conv(F.interpolate(x, **resize, mode="bilinear", align_corners=True))


class Scratch(nn.Module):
    def __init__(self, config: DepthAnythingConfig):
        super().__init__()
        features = config.features
        for i, channels in enumerate(config.out_channels, 1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False))
            setattr(self, f"refinenet{i}", FeatureFusionBlock(features))
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        # indices 1 and 3 are ReLUs (and 4 an Identity) in the original: the file's keys are 0 and 2
        self.output_conv2 = nn.Sequential(nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(32, 1, 1), nn.ReLU() if config.max_depth is None else nn.Sigmoid())


class DPTHead(nn.Module):
    def __init__(self, config: DepthAnythingConfig):
        super().__init__()
        c = config.out_channels
        self.projects = nn.ModuleList(nn.Conv2d(config.dim, channels, 1) for channels in c)
        self.resize_layers = nn.ModuleList([nn.ConvTranspose2d(c[0], c[0], 4, stride=4),
                                            nn.ConvTranspose2d(c[1], c[1], 2, stride=2),
                                            nn.Identity(),
                                            nn.Conv2d(c[3], c[3], 3, stride=2, padding=1)])
        self.scratch = Scratch(config)

    def forward(self, features, rows: int, cols: int) -> torch.Tensor:
        maps = []
        for (tokens, _), project, resize in zip(features, self.projects, self.resize_layers):
            grid = tokens.permute(0, 2, 1).reshape(tokens.shape[0], tokens.shape[-1], rows, cols)
            maps.append(resize(project(grid)))
        s = self.scratch
        l1, l2, l3, l4 = (s.layer1_rn(maps[0]), s.layer2_rn(maps[1]), s.layer3_rn(maps[2]), s.layer4_rn(maps[3]))
        path = s.refinenet4(l4, size=l3.shape[2:])
        path = s.refinenet3(path, l3, size=l2.shape[2:])
        path = s.refinenet2(path, l2, size=l1.shape[2:])
        path = s.refinenet1(path, l1)
        out = F.interpolate(s.output_conv1(path), (rows * PATCH, cols * PATCH), mode="bilinear", align_corners=True)
        return s.output_conv2(out)


class DepthAnything(nn.Module):
    """pixels [B, 3, H, W] (ImageNet-normalised RGB, sides multiples of 14) -> relative depth [B, H, W]."""

    def __init__(self, config: DepthAnythingConfig):
        super().__init__()
        self.config = config
        self.pretrained = DINOv2(config)
        self.depth_head = DPTHead(config)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        rows, cols = pixels.shape[-2] // PATCH, pixels.shape[-1] // PATCH
        features = self.pretrained(pixels, self.config.layers)
        depth = self.depth_head(features, rows, cols).squeeze(1)
        return depth if self.config.max_depth is None else depth * self.config.max_depth


# -- loading ---------------------------------------------------------------------------------------


def config_from_shapes(shapes: dict[str, tuple], version: int = 2, resampling: str = "dinov2",
                       max_depth: float | None = None) -> DepthAnythingConfig:
    """The network the weights describe; CheckpointError when they are not a Depth Anything model."""
    needed = ("pretrained.cls_token", "pretrained.pos_embed", "pretrained.patch_embed.proj.weight",
              "depth_head.scratch.layer1_rn.weight", "depth_head.projects.3.weight")
    absent = [k for k in needed if k not in shapes]
    if absent:
        from .file_kind import identify

        kind = identify(shapes)
        found = ", ".join(sorted({k.split(".")[0] for k in shapes})[:6]) or "no tensors"
        raise CheckpointError(f"not a Depth Anything model: it lacks {absent[0]!r} (its keys start with {found})."
                              + (f" {kind.advice()}" if kind else ""))
    dim = shapes["pretrained.cls_token"][-1]
    depth = 1 + max((int(m.group(1)) for k in shapes if (m := re.match(r"pretrained\.blocks\.(\d+)\.", k))), default=0)
    if depth not in V2_LAYERS or dim % HEAD_WIDTH:
        raise CheckpointError(f"a DINOv2 backbone {dim} wide with {depth} blocks, which no Depth Anything size has "
                              f"(12, 24 or 40 blocks of a multiple of {HEAD_WIDTH} channels)")
    if shapes["pretrained.patch_embed.proj.weight"][-2:] != (PATCH, PATCH):
        raise CheckpointError(f"patches of {shapes['pretrained.patch_embed.proj.weight'][-2:]}: Depth Anything's "
                              f"DINOv2 takes {PATCH}x{PATCH}")
    grid = math.isqrt(shapes["pretrained.pos_embed"][1] - 1)
    config = DepthAnythingConfig(
        dim, depth, dim // HEAD_WIDTH, shapes["depth_head.scratch.layer1_rn.weight"][0],
        tuple(shapes.get(f"depth_head.projects.{i}.weight", (0,))[0] for i in range(4)),
        V2_LAYERS[depth] if version == 2 else tuple(range(depth - 4, depth)),
        swiglu="pretrained.blocks.0.mlp.w12.weight" in shapes, grid=grid, resampling=resampling,
        max_depth=max_depth)
    return config


def size_name(config: DepthAnythingConfig) -> str:
    """vits / vitb / vitl / vitg, or a description of another shape."""
    for name, size in SIZES.items():
        if replace(size, layers=config.layers, resampling=config.resampling, max_depth=config.max_depth) == config:
            return name
    return f"a {config.dim}-wide, {config.depth}-block Depth Anything"


HF_CLS = "backbone.embeddings.cls_token"  # marks transformers' layout
# transformers 4's names (what save_pretrained writes, and the hub's -hf files hold) -> transformers 5's
HF_LEGACY = {"attention.attention.query": "attention.q_proj", "attention.attention.key": "attention.k_proj",
             "attention.attention.value": "attention.v_proj", "attention.output.dense": "attention.o_proj",
             "mlp.weights_out": "mlp.down_proj"}


def hf_names(shapes: dict) -> dict[str, list[str]]:
    """For a file in transformers' DepthAnythingForDepthEstimation layout (-hf repositories'
    model.safetensors, in transformers 4's or 5's names): each original name -> the file's key(s),
    several where the original fuses them (q, k, v -> qkv; SwiGLU's gate, up -> w12)."""
    def stored(name: str) -> str:  # a transformers 5 name as this file holds it
        if name in shapes:
            return name
        for legacy, current in HF_LEGACY.items():
            if current in name and name.replace(current, legacy) in shapes:
                return name.replace(current, legacy)
        return name

    names = {"pretrained.cls_token": [HF_CLS], "pretrained.mask_token": ["backbone.embeddings.mask_token"],
             "pretrained.pos_embed": ["backbone.embeddings.position_embeddings"]}
    for p in ("weight", "bias"):
        names[f"pretrained.patch_embed.proj.{p}"] = [f"backbone.embeddings.patch_embeddings.projection.{p}"]
        names[f"pretrained.norm.{p}"] = [f"backbone.layernorm.{p}"]
    depth = 1 + max((int(m.group(1)) for k in shapes if (m := re.match(r"backbone\.encoder\.layer\.(\d+)\.", k))),
                    default=-1)
    for i in range(depth):
        old, new = f"pretrained.blocks.{i}.", f"backbone.encoder.layer.{i}."
        names[old + "ls1.gamma"] = [new + "layer_scale1.lambda1"]
        names[old + "ls2.gamma"] = [new + "layer_scale2.lambda1"]
        for p in ("weight", "bias"):
            names[f"{old}norm1.{p}"], names[f"{old}norm2.{p}"] = [f"{new}norm1.{p}"], [f"{new}norm2.{p}"]
            names[f"{old}attn.qkv.{p}"] = [stored(f"{new}attention.{x}_proj.{p}") for x in "qkv"]
            names[f"{old}attn.proj.{p}"] = [stored(f"{new}attention.o_proj.{p}")]
            if f"{new}mlp.weights_in.{p}" in shapes:  # transformers 4's SwiGLU: w12 as it is
                names[f"{old}mlp.w12.{p}"] = [f"{new}mlp.weights_in.{p}"]
            elif f"{new}mlp.gate_proj.{p}" in shapes:
                names[f"{old}mlp.w12.{p}"] = [f"{new}mlp.gate_proj.{p}", f"{new}mlp.up_proj.{p}"]
            if f"{old}mlp.w12.{p}" in names:
                names[f"{old}mlp.w3.{p}"] = [stored(f"{new}mlp.down_proj.{p}")]
            else:
                names[f"{old}mlp.fc1.{p}"], names[f"{old}mlp.fc2.{p}"] = [f"{new}mlp.fc1.{p}"], [f"{new}mlp.fc2.{p}"]
    for p in ("weight", "bias"):
        for j in range(4):
            names[f"depth_head.projects.{j}.{p}"] = [f"neck.reassemble_stage.layers.{j}.projection.{p}"]
            if j != 2:  # the third keeps the grid's size: no layer
                names[f"depth_head.resize_layers.{j}.{p}"] = [f"neck.reassemble_stage.layers.{j}.resize.{p}"]
            old, new = f"depth_head.scratch.refinenet{j + 1}.", f"neck.fusion_stage.layers.{3 - j}."  # coarse first
            names[f"{old}out_conv.{p}"] = [f"{new}projection.{p}"]
            for unit in (1, 2):
                for conv in (1, 2):
                    names[f"{old}resConfUnit{unit}.conv{conv}.{p}"] = \
                        [f"{new}residual_layer{unit}.convolution{conv}.{p}"]
        names[f"depth_head.scratch.output_conv1.{p}"] = [f"head.conv1.{p}"]
        names[f"depth_head.scratch.output_conv2.0.{p}"] = [f"head.conv2.{p}"]
        names[f"depth_head.scratch.output_conv2.2.{p}"] = [f"head.conv3.{p}"]
    for j in range(4):
        names[f"depth_head.scratch.layer{j + 1}_rn.weight"] = [f"neck.convs.{j}.weight"]
    return names


def hf_view(f) -> RenamedView:
    """A transformers-layout file seen under the original names; CheckpointError naming what it lacks."""
    names = hf_names(f.shapes)
    absent = sorted({k for keys in names.values() for k in keys if k not in f.shapes})
    if absent:
        raise CheckpointError(f"in transformers' Depth Anything layout (backbone.*, neck.*, head.*) but it lacks "
                              f"{absent[0]!r}" + (f" and {len(absent) - 1} more" if len(absent) > 1 else ""))
    shapes = {new: (sum(f.shapes[k][0] for k in keys), *f.shapes[keys[0]][1:]) for new, keys in names.items()}
    return RenamedView(f, names, shapes)


def load_depth_anything(path, version: int = 2, device=None, resampling: str = "dinov2",
                        max_depth: float | None = None) -> DepthAnything:
    """The model in an original-layout file (.pth through PyTorch's restricted unpickler, or
    safetensors) or a transformers-layout one (a -hf repository's model.safetensors), float32 on
    `device` (the CPU by default: the memory manager moves it to run). V1 and V2 files look alike:
    `version` says which blocks the head reads; `resampling` how the position embeddings meet
    another grid (DINOv2's rule, or "size": transformers'); `max_depth` makes it a metric model
    (Depth-Anything-V2's metric files: a sigmoid head times max_depth; the weights do not tell)."""
    from .checkpoint import _assign

    path = Path(path)
    with WeightFile(path) as f:
        source = f
        try:
            if HF_CLS in f.shapes:
                source = hf_view(f)
            shapes = dict(source.shapes)
            config = config_from_shapes(shapes, version, resampling, max_depth)
        except CheckpointError as e:
            raise CheckpointError(f"{path.name}: {e}") from None
        with torch.device("meta"):
            model = DepthAnything(config)
        keys = [k for k in shapes if not k.startswith("depth_head.scratch.stem_transpose")]
        return _assign(model, source, device or "cpu", torch.float32, f"{path.name} ({size_name(config)})",
                       keys=keys)
