"""HunyuanImage 2.1 (Tencent, text-to-image): the 17B flow transformer, in Tencent's key layout as
ComfyUI's hunyuanimage2.1_bf16.safetensors holds it (bare, or under `model.diffusion_model.`):

    img_in.proj (a Conv2d over 1x1 patches), time_in.mlp.{0,2}, txt_in.* (HunyuanVideo's token
    refiner), byt5_in.{layernorm, fc1, fc2, fc3}, double_blocks.N.*, single_blocks.N.*,
    final_layer.{linear, adaLN_modulation.1}; the distilled file adds guidance_in.mlp.{0,2} and
    time_r_in.mlp.{0,2}

It is HunyuanVideo's network (graphflow.models.hunyuan_video: the token refiner, double- and
single-stream blocks, FLUX's final layer, all reused as they are) on images, as ComfyUI runs both
with one class. Where they differ: 2-D 1x1 patches and rotary positions (row, column) over (64, 64)
of a 128-wide head, text at 0; no pooled vector (vector_in); the glyph branch byt5_in (LayerNorm,
two GELU MLP layers, a projection to the width) maps byT5's states of the prompt's quoted text,
whose tokens follow the refined Qwen2.5-VL text tokens (ComfyUI's order; diffusers puts them first,
which joint attention does not see); without them the branch is skipped, as ComfyUI does. The
distilled model embeds the distilled guidance (x 1000) and, MeanFlow, the next step's timestep
(time_r_in), averaged with the step's.

The refiner (hunyuanimage2.1_refiner) is the same network with HunyuanVideo's 1x1x1 patches and
(frame, row, column) rotary axes on its VAE's video-shaped latents (one frame per image, the
HunyuanImage21Refiner format pairing frames into 64 channels), the image's latent concatenated by the
sampler (128 input channels); guidance-distilled, its time_r_in unused (ComfyUI's disable_time_r).

The timestep is sigma x 1000 (ComfyUI's ModelSamplingDiscreteFlow multiplier), embedded as it is
(the refiner's too). The output is the velocity of x_t = (1 - sigma) x0 + sigma noise.
"""

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from .cast_layers import Linear
from .configs import HunyuanImageConfig, hunyuan_image_config_from_state_dict  # noqa: F401 (configs.py: torch-free)
from .flux import LastLayer, text_lengths
from .hunyuan_video import (DoubleBlock, SingleBlock, TokenRefiner, batch_inputs, patch_rope_table, patch_tokens,
                            unpatchify)
from .mmdit import TimestepEmbedder


class ByT5Mapper(nn.Module):
    """byt5_in: byT5's glyph states -> the width (LN, fc1, GELU, fc2, GELU, fc3; Tencent's ByT5Mapper)."""

    def __init__(self, cfg: HunyuanImageConfig):
        super().__init__()
        self.layernorm = nn.LayerNorm(cfg.byt5_dim)
        self.fc1, self.fc2 = Linear(cfg.byt5_dim, cfg.byt5_hidden), Linear(cfg.byt5_hidden, cfg.byt5_hidden)
        self.fc3 = Linear(cfg.byt5_hidden, cfg.hidden_size)

    def forward(self, x):
        return self.fc3(F.gelu(self.fc2(F.gelu(self.fc1(self.layernorm(x))))))


class HunyuanImage(nn.Module):
    def __init__(self, config: HunyuanImageConfig):
        super().__init__()
        self.config = cfg = config
        if sum(cfg.axes_dim) != cfg.head_dim:
            raise ValueError(f"rotary axes {cfg.axes_dim} must add up to the head size {cfg.head_dim}")
        dim = cfg.hidden_size
        self.img_in = nn.Module()
        conv = nn.Conv3d if cfg.refiner else nn.Conv2d
        self.img_in.proj = conv(cfg.in_channels, dim, cfg.patch_size, stride=cfg.patch_size)
        self.time_in = TimestepEmbedder(dim)
        self.guidance_in = TimestepEmbedder(dim) if cfg.guidance_embed else None
        self.time_r_in = TimestepEmbedder(dim) if cfg.meanflow else None
        self.txt_in = TokenRefiner(cfg)
        self.byt5_in = ByT5Mapper(cfg) if cfg.byt5_dim else None
        self.double_blocks = nn.ModuleList(DoubleBlock(cfg) for _ in range(cfg.depth))
        self.single_blocks = nn.ModuleList(SingleBlock(cfg) for _ in range(cfg.depth_single_blocks))
        volume = math.prod(cfg.patch_size)
        self.final_layer = LastLayer(SimpleNamespace(hidden_size=dim, out_channels=volume * cfg.out_channels))

    def forward(self, x, sigma, context, y=None, guidance=None, text_mask=None, txt_byt5=None, sigma_next=None,
                control=None, **unused):
        """x [B, 64, h, w] (the refiner: [B, 128, frames, h, w]); sigma [B]; context Qwen2.5-VL's states
        [B or 1, T, context_in_dim]; y unused (no pooled vector); guidance [B] or None (embedded by the
        distilled model and the refiner only); text_mask [B, T] (1 keep, kept tokens leading): each
        sample's text cut to its kept tokens (diffusers' encoder_attention_mask); txt_byt5 [B or 1, L,
        byt5_dim] the quoted text's byT5 states (None: the glyph branch is skipped); sigma_next [B] the
        next step's sigma, which the MeanFlow (distilled) model embeds (None: not embedded, as ComfyUI
        when it cannot find it) -> velocity."""
        if control is not None:
            raise ValueError("ControlNets are not supported with HunyuanImage models")
        cfg = self.config
        if x.ndim != 2 + len(cfg.patch_size) or x.shape[1] != cfg.in_channels:
            want = (f"latents [B, {cfg.in_channels}, frames, h, w] (its VAE's and the image's)" if cfg.refiner
                    else f"image latents [B, {cfg.in_channels}, h, w] (its 32x VAE's)")
            raise ValueError(f"HunyuanImage{' refiner' if cfg.refiner else ''} takes {want}, got {tuple(x.shape)}")
        if context.shape[-1] != cfg.context_in_dim:
            raise ValueError(f"HunyuanImage takes {cfg.context_in_dim}-wide text states (Qwen2.5-VL 7B's), the "
                             f"conditioning has {context.shape[-1]}: encode the prompts with CLIPLoader / "
                             "DualCLIPLoader, type hunyuan_image")
        if txt_byt5 is not None and self.byt5_in is not None and txt_byt5.shape[-1] != cfg.byt5_dim:
            raise ValueError(f"HunyuanImage takes {cfg.byt5_dim}-wide byT5 glyph states (conditioning_byt5small), "
                             f"got {txt_byt5.shape[-1]}: encode with DualCLIPLoader, type hunyuan_image")
        b = x.shape[0]
        sigma, context, guidance = batch_inputs(x, sigma, context, guidance)
        one = (lambda t, i: None if t is None else t[i:i + 1])
        if txt_byt5 is not None:
            txt_byt5 = txt_byt5.to(x.dtype).expand(b, -1, -1)
        if sigma_next is not None:
            sigma_next = torch.as_tensor(sigma_next, device=x.device).reshape(-1).expand(b)
        if text_mask is not None:
            lengths = text_lengths(text_mask, b)
            return torch.cat([self(x[i:i + 1], sigma[i:i + 1], context[i:i + 1, :n], guidance=one(guidance, i),
                                   txt_byt5=one(txt_byt5, i), sigma_next=one(sigma_next, i))
                              for i, n in enumerate(lengths)])
        size = x.shape[2:]
        img, grid = patch_tokens(self.img_in.proj, x, cfg.patch_size)
        timestep = 1000 * sigma.float()
        vec = self.time_in(timestep, x.dtype)
        if self.time_r_in is not None and sigma_next is not None:  # MeanFlow: the mean of both embeddings
            vec = (vec + self.time_r_in(1000 * sigma_next.float(), x.dtype)) / 2
        if self.guidance_in is not None and guidance is not None:
            vec = vec + self.guidance_in(1000 * guidance, x.dtype)
        txt = self.txt_in(context, timestep)
        if self.byt5_in is not None and txt_byt5 is not None:
            txt = torch.cat([txt, self.byt5_in(txt_byt5)], dim=1)
        n = txt.shape[1]
        pe = patch_rope_table(n, grid, cfg.axes_dim, cfg.theta, x.device)
        for block in self.double_blocks:
            img, txt = block(img, txt, vec, pe)
        seq = torch.cat([txt, img], dim=1)
        for block in self.single_blocks:
            seq = block(seq, vec, pe)
        out = self.final_layer(seq[:, n:], vec)  # [B, prod(grid), (C, *patch)]
        return unpatchify(out, grid, cfg.patch_size, cfg.out_channels, size)
