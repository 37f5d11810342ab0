"""FLUX.1 (dev, schnell, Fill): the Black Forest Labs rectified-flow transformer, in BFL's key layout.

Double-stream blocks (separate image / text weights, joint attention) then single-stream
blocks (one sequence, attention and MLP in parallel), rotary position embeddings over three
axes (unused, row, column; text tokens all at 0), and a timestep + pooled CLIP-L vector (+ for
dev the distilled guidance strength) modulating every block. Parameter names are BFL's
(`double_blocks.0.img_attn.qkv.weight`, ...) without ComfyUI's `model.diffusion_model.`.

`forward` takes and returns image-shaped latents: the 2x2 packing into 64-channel tokens and
back happens here, so a sampler sees [B, 16, H/8, W/8] like any other model. sigma [B] in
[0, 1] and dev's guidance [B] are scaled by 1000 inside, as BFL's code does. Fill takes 384
input channels: the packed noisy latent (64) then `concat` [B, 80, h, w] packed (the masked
image's 16-channel latent and the mask folded 8x8 into 64 channels).

Kontext (image editing, same weights layout as dev): `reference_latents` (model-space latents
[B, 16, h, w], each its own size) are packed like the noisy latent and appended after its tokens
in the joint sequence; their rotary positions (`reference_positions`) set the first axis to 1 (or
to 1, 2, ... with the "index" method) so the model tells them from the image being denoised. The
output keeps the noisy image's tokens only. `guidance` None skips the guidance embedding
(ComfyUI's FluxDisableGuidance); the sampler passes 3.5 when the conditioning sets none.

`post_input_patches` (set on a shallow copy of the model by a MODEL patch node, as ComfyUI's
"post_input" patches): each patch(img, txt, img_ids, txt_ids) -> the same four, run on the tokens
after img_in / txt_in and before the rotary tables are built from the ids (USOStyleReference
puts its style tokens before the text tokens there: graphflow.models.uso).
"""


import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .block_runner import run_blocks
from .configs import FluxConfig, flux_config_from_state_dict  # noqa: F401 (the config lives in configs.py, torch-free)
from .cast_layers import Linear
from .mmdit import layer_norm, pad_to_patches, timestep_embedding

REFERENCE_METHODS = ("offset", "index", "uxo")  # FluxKontextMultiReferenceLatentMethod's ("uxo/uno" -> "uxo")


def rope(pos: torch.Tensor, dim: int, theta: int) -> torch.Tensor:
    """[B, L] positions -> [B, L, dim/2, 2, 2] rotation matrices (float64 angles, as BFL)."""
    scale = torch.arange(0, dim, 2, dtype=torch.float64, device=pos.device) / dim
    angles = pos.to(torch.float64)[..., None] / theta ** scale
    cos, sin = torch.cos(angles), torch.sin(angles)
    return torch.stack([cos, -sin, sin, cos], dim=-1).reshape(*angles.shape, 2, 2).float()


def rope_table(pos: torch.Tensor, axes: tuple[int, ...], theta: int) -> torch.Tensor:
    """[..., L, len(axes)] positions -> [..., L, sum(axes)/2, 2, 2]: each axis's rotations over its
    slice of the head (apply_rope's table; the caller adds the head axis where its layout has it)."""
    return torch.cat([rope(pos[..., i], d, theta) for i, d in enumerate(axes)], dim=-3)


def text_lengths(mask: torch.Tensor, batch: int) -> list[int]:
    """Each sample's kept text tokens (at least one) from a text mask [B or 1, T] (1 keep, kept tokens
    leading): Lumina 2, Qwen-Image and HunyuanVideo run each sample on its own text cut to these."""
    return [max(1, int(n)) for n in mask.to(torch.bool).sum(dim=1).reshape(-1).expand(batch).tolist()]


def apply_rope(x: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
    x_ = x.float().reshape(*x.shape[:-1], -1, 1, 2)
    return (pe[..., 0] * x_[..., 0] + pe[..., 1] * x_[..., 1]).reshape(x.shape).type_as(x)


def rope_attention(q, k, v, pe, mask=None):
    """mask: None or an additive bias [B, L, L] over the [text, image] tokens (StyleModelApply's attn_bias)."""
    mask = None if mask is None else mask[:, None].to(q.dtype)
    out = attention(apply_rope(q, pe), apply_rope(k, pe), v, mask)
    return out.transpose(1, 2).flatten(2)


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.rms_norm(x.float(), x.shape[-1:], eps=1e-6).to(x.dtype) * self.scale.to(x.dtype)


class QKNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.query_norm, self.key_norm = RMSNorm(dim), RMSNorm(dim)


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.in_layer, self.out_layer = Linear(in_dim, dim), Linear(dim, dim)

    def forward(self, x):
        return self.out_layer(F.silu(self.in_layer(x)))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool):
        super().__init__()
        self.heads = heads
        self.qkv = Linear(dim, 3 * dim, bias=qkv_bias)
        self.norm = QKNorm(dim // heads)
        self.proj = Linear(dim, dim)

    def qkv_heads(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return self.norm.query_norm(q), self.norm.key_norm(k), v


class Modulation(nn.Module):
    """SiLU -> Linear of the conditioning vector into (shift, scale, gate) x 1 or 2."""

    def __init__(self, dim: int, double: bool):
        super().__init__()
        self.lin = Linear(dim, (6 if double else 3) * dim)

    def forward(self, vec):
        return self.lin(F.silu(vec))[:, None].chunk(self.lin.out_features // self.lin.in_features, dim=-1)


def mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(Linear(dim, hidden), nn.GELU(approximate="tanh"), Linear(hidden, dim))


class DoubleStreamBlock(nn.Module):
    """modulation False: no img_mod / txt_mod of its own; the caller passes the modulation
    vectors themselves as `vec` (Chroma's blocks)."""

    def __init__(self, cfg: FluxConfig, modulation: bool = True):
        super().__init__()
        dim, hidden = cfg.hidden_size, int(cfg.hidden_size * cfg.mlp_ratio)
        for s in ("img", "txt"):
            if modulation:
                setattr(self, f"{s}_mod", Modulation(dim, double=True))
            setattr(self, f"{s}_norm1", layer_norm(dim))
            setattr(self, f"{s}_attn", SelfAttention(dim, cfg.num_heads, cfg.qkv_bias))
            setattr(self, f"{s}_norm2", layer_norm(dim))
            setattr(self, f"{s}_mlp", mlp(dim, hidden))

    def forward(self, img, txt, vec, pe, mask=None):
        """vec: the conditioning vector [B, D], or (img_mods, txt_mods), each (shift1, scale1,
        gate1, shift2, scale2, gate2) of [B, 1, D]."""
        img_mods, txt_mods = vec if isinstance(vec, tuple) else (self.img_mod(vec), self.txt_mod(vec))
        iq, ik, iv = self.img_attn.qkv_heads((1 + img_mods[1]) * self.img_norm1(img) + img_mods[0])
        tq, tk, tv = self.txt_attn.qkv_heads((1 + txt_mods[1]) * self.txt_norm1(txt) + txt_mods[0])
        out = rope_attention(torch.cat([tq, iq], 2), torch.cat([tk, ik], 2), torch.cat([tv, iv], 2), pe, mask)
        n = txt.shape[1]
        img = self._post(img, out[:, n:], img_mods, self.img_attn, self.img_norm2, self.img_mlp)
        txt = self._post(txt, out[:, :n], txt_mods, self.txt_attn, self.txt_norm2, self.txt_mlp)
        return img, txt

    @staticmethod
    def _post(x, attn, mods, attn_module, norm2, mlp_module):
        shift1, scale1, gate1, shift2, scale2, gate2 = mods
        x = x + gate1 * attn_module.proj(attn)
        return x + gate2 * mlp_module((1 + scale2) * norm2(x) + shift2)


class SingleStreamBlock(nn.Module):
    def __init__(self, cfg: FluxConfig, modulation: bool = True):
        super().__init__()
        dim = cfg.hidden_size
        self.heads, self.mlp_hidden = cfg.num_heads, int(dim * cfg.mlp_ratio)
        self.linear1 = Linear(dim, 3 * dim + self.mlp_hidden)
        self.linear2 = Linear(dim + self.mlp_hidden, dim)
        self.norm = QKNorm(dim // cfg.num_heads)
        self.pre_norm = layer_norm(dim)
        if modulation:
            self.modulation = Modulation(dim, double=False)

    def forward(self, x, vec, pe, mask=None):
        """vec: the conditioning vector [B, D], or (shift, scale, gate) of [B, 1, D]."""
        shift, scale, gate = vec if isinstance(vec, tuple) else self.modulation(vec)
        qkv, hidden = self.linear1((1 + scale) * self.pre_norm(x) + shift).split(
            [3 * x.shape[-1], self.mlp_hidden], dim=-1)
        b, n, _ = x.shape
        q, k, v = qkv.view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = rope_attention(self.norm.query_norm(q), self.norm.key_norm(k), v, pe, mask)
        return x + gate * self.linear2(torch.cat([out, F.gelu(hidden, approximate="tanh")], dim=2))


class LastLayer(nn.Module):
    def __init__(self, cfg: FluxConfig, modulation: bool = True):
        super().__init__()
        self.norm_final = layer_norm(cfg.hidden_size)
        self.linear = Linear(cfg.hidden_size, cfg.out_channels)
        if modulation:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(cfg.hidden_size, 2 * cfg.hidden_size))

    def forward(self, x, vec):
        shift, scale = self.adaLN_modulation(vec).chunk(2, dim=1)
        return self.modulated(x, shift[:, None], scale[:, None])

    def modulated(self, x, shift, scale):
        """shift, scale: [B, 1, D]."""
        return self.linear((1 + scale) * self.norm_final(x) + shift)


def patchify(x: torch.Tensor, p: int, channels_last: bool = False) -> torch.Tensor:
    """[B, C, h p, w p] -> patches as tokens [B, h w, C p p], features (channel, row, column) as BFL's
    packing (Qwen-Image's too), or (row, column, channel) with channels_last (Lumina 2's, HiDream's)."""
    b, c, H, W = x.shape
    x = x.reshape(b, c, H // p, p, W // p, p)
    x = x.permute(0, 2, 4, 3, 5, 1) if channels_last else x.permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, H // p * (W // p), c * p * p)


def unpatchify(x: torch.Tensor, h: int, w: int, p: int, channels_last: bool = False) -> torch.Tensor:
    """patchify's inverse: [B, h w, C p p] (h, w in patches) -> [B, C, h p, w p]."""
    b = x.shape[0]
    if channels_last:
        x = x.reshape(b, h, w, p, p, -1).permute(0, 5, 1, 3, 2, 4)
    else:
        x = x.reshape(b, h, w, -1, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, -1, h * p, w * p)


def pack(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] (H, W even) -> [B, H/2 * W/2, C * 4], channels (c, row, column) as BFL."""
    return patchify(x, 2)


def unpack(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """pack's inverse, h, w the latent's (even) size."""
    return unpatchify(x, h // 2, w // 2, 2)


def image_ids(h: int, w: int, batch: int, device, index: int = 0, row: int = 0, column: int = 0) -> torch.Tensor:
    """[B, h*w, 3] positions of the packed tokens: (index, row + y, column + x)."""
    ids = torch.zeros(h, w, 3, device=device)
    ids[..., 0] = index
    ids[..., 1] = torch.arange(h, device=device)[:, None] + row
    ids[..., 2] = torch.arange(w, device=device)[None, :] + column
    return ids.reshape(1, h * w, 3).expand(batch, -1, -1)


def reference_positions(sizes: list[tuple[int, int]], image_hw: tuple[int, int], method: str = "offset"):
    """(index, row, column) offsets, in 2x2 patches, of reference latents of latent sizes (h, w),
    next to a noisy latent of size image_hw, as ComfyUI places them:
      offset  index 1; the first at (0, 0); each next one to the right of the ones before if
              stacking it below them would make the layout taller than wide, else below them;
      index   index 1, 2, 3, ..., all at (0, 0);
      uxo     index 0 (the image's own), shifted diagonally past the image and the references
              before it (UNO's layout)."""
    if method not in REFERENCE_METHODS:
        raise ValueError(f"reference latents method must be one of {REFERENCE_METHODS}, got {method!r}")
    out, h, w = [], 0, 0
    for k, (rh, rw) in enumerate(sizes):
        if method == "index":
            index, row, column = k + 1, 0, 0
        elif method == "uxo":
            index = 0
            row, column = image_hw[0] + (image_hw[0] % 2) + h, image_hw[1] + (image_hw[1] % 2) + w
            h, w = h + rh, w + rw
        else:
            index, row, column = 1, 0, 0
            if rh + h > rw + w:
                column = w
            else:
                row = h
            h, w = max(h, rh + row), max(w, rw + column)
        out.append((index, (row + 1) // 2, (column + 1) // 2))
    return out


class FluxBlocks:
    """Flux's double then single blocks on the image tokens, for graphflow.models.block_runner.
    first() is the first double block; its probe is the image tokens after it (First Block Cache
    compares those, not a residual). ControlNet residuals join after each block, as without a cache."""

    def __init__(self, model, img, txt, vec, pe, mask, control):
        self.model, self.hidden, self.txt, self.vec, self.pe, self.mask = model, img, txt, vec, pe, mask
        self.double, self.single = (control or {}).get("input") or (), (control or {}).get("output") or ()

    def modulated(self, ret_mode: bool = False):
        """The first double block's image input after its norm and modulation (TeaCache's probe)."""
        block = self.model.double_blocks[0]
        shift, scale = block.img_mod(self.vec)[:2]
        return (1 + scale) * block.img_norm1(self.hidden) + shift

    def _double(self, i, img):
        img, self.txt = self.model.double_blocks[i](img, self.txt, self.vec, self.pe, self.mask)
        add = self.double[i] if i < len(self.double) else None
        if add is not None:  # the noisy image's tokens (reference ones follow)
            img = torch.cat([img[:, :add.shape[1]] + add, img[:, add.shape[1]:]], dim=1)
        return img

    def first(self):
        self._after_first = self._double(0, self.hidden)
        return self._after_first, self._after_first

    def rest(self):
        img = self._after_first
        for i in range(1, len(self.model.double_blocks)):
            img = self._double(i, img)
        n = self.txt.shape[1]
        x = torch.cat([self.txt, img], dim=1)
        for i, block in enumerate(self.model.single_blocks):
            x = block(x, self.vec, self.pe, self.mask)
            if i < len(self.single) and self.single[i] is not None:
                m = n + self.single[i].shape[1]
                x = torch.cat([x[:, :n], x[:, n:m] + self.single[i], x[:, m:]], dim=1)
        return x[:, n:]

    def all(self):
        self.first()
        return self.rest()


class Flux(nn.Module):
    post_input_patches: tuple = ()

    def __init__(self, config: FluxConfig):
        super().__init__()
        self.config = cfg = config
        if sum(cfg.axes_dim) != cfg.hidden_size // cfg.num_heads:
            raise ValueError(f"rotary axes {cfg.axes_dim} must add up to the head size {cfg.hidden_size // cfg.num_heads}")
        self.img_in = Linear(cfg.in_channels, cfg.hidden_size)
        self.time_in = MLPEmbedder(256, cfg.hidden_size)
        self.vector_in = MLPEmbedder(cfg.vec_in_dim, cfg.hidden_size)
        self.guidance_in = MLPEmbedder(256, cfg.hidden_size) if cfg.guidance_embed else None
        self.txt_in = Linear(cfg.context_in_dim, cfg.hidden_size)
        self.double_blocks = nn.ModuleList(DoubleStreamBlock(cfg) for _ in range(cfg.depth))
        self.single_blocks = nn.ModuleList(SingleStreamBlock(cfg) for _ in range(cfg.depth_single_blocks))
        self.final_layer = LastLayer(cfg)

    def embed(self, img, img_ids, txt, txt_ids, sigma, y, guidance=None):
        """(image tokens, text tokens, the modulation vector, rotary tables) for packed inputs."""
        dtype = img.dtype
        img = self.img_in(img)
        vec = self.time_in(timestep_embedding(sigma * 1000).to(dtype))
        if self.guidance_in is not None and guidance is not None:
            guidance = torch.as_tensor(guidance, dtype=torch.float32, device=img.device).reshape(-1)
            vec = vec + self.guidance_in(timestep_embedding(guidance.expand(img.shape[0]) * 1000).to(dtype))
        vec = vec + self.vector_in(y.to(dtype))
        txt = self.txt_in(txt.to(dtype))
        for patch in self.post_input_patches:
            img, txt, img_ids, txt_ids = patch(img, txt, img_ids, txt_ids)
        ids = torch.cat([txt_ids, img_ids], dim=1)
        pe = rope_table(ids, self.config.axes_dim, self.config.theta)[:, None]  # [B, 1, L, head_dim/2, 2, 2]
        return img, txt, vec, pe

    def forward_packed(self, img, img_ids, txt, txt_ids, sigma, y, guidance=None, control=None, attention_mask=None):
        """BFL's forward on packed tokens: img [B, N, in_channels], ids [B, L, 3]. control (from
        ControlNets, graphflow.models.flux_controlnet): {"input": a residual (or None) per double
        block, "output": per single block}, added to the image tokens after the block.
        attention_mask: an additive bias [B, T + N, T + N] over [text, image] tokens, or None."""
        n_txt = txt.shape[1]
        img, txt, vec, pe = self.embed(img, img_ids, txt, txt_ids, sigma, y, guidance)
        if attention_mask is not None and txt.shape[1] != n_txt:
            raise ValueError("an attention mask (StyleModelApply's attn_bias) cannot be combined with a patch that "
                             "adds text tokens (USOStyleReference)")
        stack = FluxBlocks(self, img, txt, vec, pe, attention_mask, control)
        return self.final_layer(run_blocks(stack), vec)

    def forward(self, x, sigma, context, y, guidance=None, concat=None, control=None, attention_mask=None,
                reference_latents=None, reference_method: str = "offset", **unused):
        H, W = x.shape[-2:]
        if H % 2 or W % 2:  # odd latent sizes: pad as ComfyUI does, crop the output back
            x = pad_to_patches(x, 2)
            concat = None if concat is None else pad_to_patches(concat, 2)
        if concat is not None:
            x = torch.cat([x, concat.to(x.dtype)], dim=1)
        if x.shape[1] * 4 != self.config.in_channels:
            raise ValueError(f"FLUX with {self.config.in_channels} packed input channels takes "
                             f"{self.config.in_channels // 4} latent channels (with concat), got {x.shape[1]}")
        b, _, h, w = x.shape
        txt_ids = torch.zeros(b, context.shape[1], 3, device=x.device)
        img, img_ids = pack(x), image_ids(h // 2, w // 2, b, x.device)
        n = img.shape[1]
        if reference_latents:
            if concat is not None or self.config.in_channels != 64:
                raise ValueError("reference latents (ReferenceLatent) need a FLUX model with 16 latent channels "
                                 "(dev / Kontext), not Fill")
            if attention_mask is not None:
                raise ValueError("an attention mask (StyleModelApply's attn_bias) cannot be combined with "
                                 "reference latents (ReferenceLatent)")
            places = reference_positions([tuple(r.shape[-2:]) for r in reference_latents], (H, W), reference_method)
            for ref, (index, row, column) in zip(reference_latents, places):
                ref = pad_to_patches(ref.to(x.device, x.dtype), 2)
                img = torch.cat([img, pack(ref)], dim=1)
                img_ids = torch.cat([img_ids, image_ids(ref.shape[-2] // 2, ref.shape[-1] // 2, b, x.device,
                                                        index, row, column)], dim=1)
        out = self.forward_packed(img, img_ids, context, txt_ids, sigma, y, guidance, control, attention_mask)
        return unpack(out[:, :n], h, w)[..., :H, :W]
