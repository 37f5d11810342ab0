"""Qwen-Image (Alibaba Qwen; also Qwen-Image 2512): the MM-DiT, in the diffusers-like key layout
ComfyUI's files use (`img_in`, `txt_norm`, `txt_in`, `time_text_embed.timestep_embedder.linear_{1,2}`,
`transformer_blocks.N.{img_mod.1,txt_mod.1,attn.{to_q,to_k,to_v,add_q_proj,add_k_proj,add_v_proj,
norm_q,norm_k,norm_added_q,norm_added_k,to_out.0,to_add_out},img_mlp.net.{0.proj,2},txt_mlp...}`,
`norm_out.linear`, `proj_out`), bare as qwen_image_fp8_e4m3fn.safetensors / qwen_image_bf16 or
under ComfyUI's `model.diffusion_model.`.

Every block is double-stream: image and text tokens keep their own weights (modulation, q/k/v,
output, GELU-tanh MLP) and meet in one attention over [text, image], q and k RMS-normed per head.
Each stream: x += gate * attn(LN(x) * (1 + scale) + shift), likewise for its MLP; both streams are
modulated by the timestep alone (no pooled text vector). The text is Qwen2.5-VL 7B's hidden states,
RMS-normed (txt_norm) and projected (txt_in). Rotary positions over three axes (frame, row,
column; (16, 56, 56) of a 128-wide head, theta 10000): image patches centred on the image, row r of
h at r - h // 2 (ComfyUI's rounding; diffusers' scale_rope puts odd counts one lower), frame 0;
text token i at (s + i, s + i, s + i), s = max(h // 2, w // 2). The timestep is sigma, embedded
x1000; the output is the velocity of x_t = (1 - sigma) x0 + sigma noise (ComfyUI's ModelType.FLUX).
Sampled as ComfyUI's QwenImage: ModelSamplingFlux with shift 1.15 (ModelSamplingAuraFlow in its
template), the Wan 2.1 VAE's 16-channel latent. ComfyUI gives the network a one-frame video
latent [B, 16, 1, h, w] (an image latent [B, 16, h, w] is taken too).

Qwen-Image-Edit / Edit-2509 (the same file layout; TextEncodeQwenImageEdit(Plus) or ReferenceLatent
put the pictures' latents in the conditioning): `reference_latents` (model-space latents, each its
own size, one frame) are patchified like the noisy latent and appended after its tokens; each is
centred on its own size like the image, its frame axis set apart: "index" (ComfyUI's default for
Qwen-Image) puts reference k at frame k (1, 2, ...), as diffusers' img_shapes list does; "offset"
puts them all at frame 1, shifted on the row / column axes where FLUX Kontext's "offset" places
them (any other method, "uxo", is placed as "offset", as ComfyUI does). The text positions stay
those of the noisy latent alone, and the output keeps its tokens only.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .cast_layers import Linear
from .configs import QwenImageConfig, qwen_image_config_from_state_dict  # noqa: F401 (configs.py: torch-free)
from .flux import apply_rope, image_ids, patchify, reference_positions, rope_table, text_lengths, unpatchify
from .mmdit import LinearTimestepEmbedder, norm_modulate, pad_to_patches


class Attention(nn.Module):
    def __init__(self, cfg: QwenImageConfig):
        super().__init__()
        self.heads, dim = cfg.num_heads, cfg.dim
        for name in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"):
            setattr(self, name, Linear(dim, dim))
        self.to_out = nn.ModuleList([Linear(dim, dim)])
        for name in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            setattr(self, name, nn.RMSNorm(cfg.head_dim, eps=1e-6))

    def forward(self, img, txt, pe):
        def heads(x):
            return x.unflatten(-1, (self.heads, -1))

        n = txt.shape[1]  # one sequence [text, image]
        q = torch.cat([self.norm_added_q(heads(self.add_q_proj(txt))), self.norm_q(heads(self.to_q(img)))], dim=1)
        k = torch.cat([self.norm_added_k(heads(self.add_k_proj(txt))), self.norm_k(heads(self.to_k(img)))], dim=1)
        v = torch.cat([heads(self.add_v_proj(txt)), heads(self.to_v(img))], dim=1)
        q, k = apply_rope(q, pe), apply_rope(k, pe)
        out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2).flatten(2)
        return self.to_out[0](out[:, n:]), self.to_add_out(out[:, :n])


class GELUProj(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = Linear(dim, hidden)

    def forward(self, x):
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.ModuleList([GELUProj(dim, 4 * dim), nn.Identity(), Linear(4 * dim, dim)])  # net.1: dropout

    def forward(self, x):
        for layer in self.net:
            x = layer(x)
        return x


def modulated(x, mod):
    """LN(x) * (1 + scale) + shift, and the gate; mod [B, 1, 3 * dim] = (shift, scale, gate)."""
    shift, scale, gate = mod.chunk(3, dim=-1)
    return norm_modulate(x, shift, scale), gate


class Block(nn.Module):
    def __init__(self, cfg: QwenImageConfig):
        super().__init__()
        self.img_mod = nn.Sequential(nn.SiLU(), Linear(cfg.dim, 6 * cfg.dim))
        self.txt_mod = nn.Sequential(nn.SiLU(), Linear(cfg.dim, 6 * cfg.dim))
        self.attn = Attention(cfg)
        self.img_mlp = FeedForward(cfg.dim)
        self.txt_mlp = FeedForward(cfg.dim)

    def forward(self, img, txt, temb, pe):
        img_mod1, img_mod2 = self.img_mod(temb)[:, None].chunk(2, dim=-1)
        txt_mod1, txt_mod2 = self.txt_mod(temb)[:, None].chunk(2, dim=-1)
        img_in, img_gate = modulated(img, img_mod1)
        txt_in, txt_gate = modulated(txt, txt_mod1)
        img_attn, txt_attn = self.attn(img_in, txt_in, pe)
        img = img + img_gate * img_attn
        txt = txt + txt_gate * txt_attn
        img_in, img_gate = modulated(img, img_mod2)
        txt_in, txt_gate = modulated(txt, txt_mod2)
        return img + img_gate * self.img_mlp(img_in), txt + txt_gate * self.txt_mlp(txt_in)


class LastLayer(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear = Linear(dim, 2 * dim)

    def forward(self, x, temb):
        # scale first, then shift (diffusers' AdaLayerNormContinuous, ComfyUI's LastLayer)
        scale, shift = self.linear(F.silu(temb))[:, None].chunk(2, dim=-1)
        return norm_modulate(x, shift, scale)


class QwenImage(nn.Module):
    double_block_patches: tuple = ()  # callables (img, block index, latent) -> img, set on a shallow copy

    def __init__(self, config: QwenImageConfig):
        super().__init__()
        self.config = cfg = config
        if sum(cfg.axes_dims) != cfg.head_dim:
            raise ValueError(f"rotary axes {cfg.axes_dims} must add up to the head size {cfg.head_dim}")
        self.time_text_embed = nn.Module()
        self.time_text_embed.timestep_embedder = LinearTimestepEmbedder(cfg.dim)
        self.txt_norm = nn.RMSNorm(cfg.joint_attention_dim, eps=1e-6)
        self.img_in = Linear(cfg.in_channels, cfg.dim)
        self.txt_in = Linear(cfg.joint_attention_dim, cfg.dim)
        self.transformer_blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm_out = LastLayer(cfg.dim)
        self.proj_out = Linear(cfg.dim, cfg.patch_size ** 2 * cfg.out_channels)

    def positions(self, txt_len: int, rows: int, cols: int, device, references=()) -> torch.Tensor:
        """[txt_len + rows * cols + reference patches, 3] rotary coordinates: text (s + i) on every
        axis, s = max(rows // 2, cols // 2); patches (0, row - rows // 2, col - cols // 2), as
        ComfyUI's; then each reference's (frame, row, column) = (index, row + r - h // 2, column +
        c - w // 2) for references = ((index, row, column, h, w), ...) in patches."""
        start = max(rows // 2, cols // 2)
        txt = torch.arange(start, start + txt_len, device=device, dtype=torch.float32)[:, None].expand(-1, 3)
        patches = [image_ids(h, w, 1, device, index, row - h // 2, column - w // 2)[0]
                   for index, row, column, h, w in ((0, 0, 0, rows, cols), *references)]
        return torch.cat([txt, *patches])

    def tokens(self, x):
        return tokens(x, self.config.patch_size)

    def embed(self, x, sigma, context, refs=(), reference_method: str = "index"):
        """x [B, 16, H, W] and the reference latents refs -> (image tokens [B, h w + the references',
        dim], text tokens, the timestep embedding, rotary table, (h, w)): what the blocks take (the
        ControlNet's too)."""
        cfg = self.config
        img, h, w = self.tokens(x)
        places = []
        if refs:  # ComfyUI's offsets, in 2x2 patches, from the latents' own sizes (as FLUX Kontext's)
            offsets = reference_positions([tuple(ref.shape[-2:]) for ref in refs], tuple(x.shape[-2:]),
                                          "index" if reference_method == "index" else "offset")
            for ref, (index, row, column) in zip(refs, offsets):
                tokens, rh, rw = self.tokens(ref)
                img = torch.cat([img, tokens], dim=1)
                places.append((index, row, column, rh, rw))
        temb = self.time_text_embed.timestep_embedder(1000 * sigma.float(), x.dtype)
        txt = self.txt_in(self.txt_norm(context))
        img = self.img_in(img)
        pos = self.positions(txt.shape[1], h, w, x.device, places)
        pe = rope_table(pos, cfg.axes_dims, cfg.theta)[None, :, None]  # [1, L, 1, head_dim / 2, 2, 2]
        return img, txt, temb, pe, (h, w)

    def forward(self, x, sigma, context, y=None, text_mask=None, control=None, reference_latents=None,
                reference_method: str = "index", **unused):
        """x [B, 16, 1, h, w] (ComfyUI's one-frame latent) or [B, 16, h, w], padded to whole
        patches and cropped back; sigma [B]; context Qwen2.5-VL's states [B or 1, T, joint dim] ->
        velocity of x's shape. text_mask [B, T] (1 keep): each sample's text cut to its kept
        tokens (they must lead), as diffusers' mask gives. y is ignored (no pooled vector).
        control (ControlNets, graphflow.models.qwen_image_controlnet): {"input": a residual (or
        None) per block} added to the image tokens after that block, after the block's
        `double_block_patches` (a MODEL patch's per-block additions: DiffSynth's ControlNets,
        graphflow.models.qwen_image_diffsynth), as ComfyUI's order.
        reference_latents: the Edit models' pictures, [B or 1, 16, h, w] or one frame [B or 1, 16,
        1, h, w] each, placed by reference_method ("index" or "offset"; see the module's doc)."""
        cfg = self.config
        refs = list(reference_latents or ())
        for k, ref in enumerate(refs):
            refs[k] = ref = one_frame(ref)
            if ref.ndim != 4 or ref.shape[1] != cfg.out_channels:
                raise ValueError(f"Qwen-Image's reference latent {k} must be [B, {cfg.out_channels}, h, w] or one "
                                 f"frame [B, {cfg.out_channels}, 1, h, w] (a Wan 2.1 VAE's), got {tuple(ref.shape)}")
        if x.ndim == 5:
            if x.shape[2] != 1:
                raise ValueError(f"Qwen-Image takes image latents (one frame), got {x.shape[2]} frames")
            return self(x[:, :, 0], sigma, context, y, text_mask, control, refs, reference_method)[:, :, None]
        if x.shape[1] != cfg.out_channels:
            raise ValueError(f"Qwen-Image takes {cfg.out_channels}-channel latents (the Wan 2.1 VAE's), "
                             f"got {x.shape[1]}")
        if context.shape[-1] != cfg.joint_attention_dim:
            raise ValueError(f"Qwen-Image takes Qwen2.5-VL 7B's {cfg.joint_attention_dim}-wide text states, the "
                             f"conditioning has {context.shape[-1]}: encode the prompts with a CLIP loaded as type "
                             "qwen_image (qwen_2.5_vl_7b)")
        b, c, H, W = x.shape
        p = cfg.patch_size
        context = context.to(x.dtype).expand(b, -1, -1)
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(b)
        refs = [ref.to(x.device, x.dtype).expand(b, -1, -1, -1) for ref in refs]
        if text_mask is not None:
            lengths = text_lengths(text_mask, b)
            rows = [{k: [None if r is None else r[i:i + 1] for r in v] for k, v in control.items()}
                    if control is not None else None for i in range(b)]
            return torch.cat([self(x[i:i + 1], sigma[i:i + 1], context[i:i + 1, :n], control=rows[i],
                                   reference_latents=[ref[i:i + 1] for ref in refs], reference_method=reference_method)
                              for i, n in enumerate(lengths)])
        img, txt, temb, pe, (h, w) = self.embed(x, sigma, context, refs, reference_method)
        n = h * w
        residuals = (control or {}).get("input") or ()
        for i, block in enumerate(self.transformer_blocks):
            img, txt = block(img, txt, temb, pe)
            for patch in self.double_block_patches:
                img = patch(img, i, x)
            if i < len(residuals) and residuals[i] is not None:  # the noisy image's tokens
                img = torch.cat([img[:, :n] + residuals[i].to(img.dtype), img[:, n:]], dim=1)
        out = self.proj_out(self.norm_out(img[:, :n], temb))  # the noisy latent's tokens only
        return unpatchify(out, h, w, p)[..., :H, :W]



def tokens(x: torch.Tensor, p: int):
    """[B, C, H, W] -> ([B, h * w, C * p * p] patches as tokens, h, w), padded to whole patches
    (circular, as ComfyUI's pad_to_patch_size)."""
    x = pad_to_patches(x, p)
    return patchify(x, p), x.shape[-2] // p, x.shape[-1] // p


def one_frame(latent: torch.Tensor) -> torch.Tensor:
    """A video VAE's latent of one image [B, C, 1, h, w] (ComfyUI's for Qwen-Image) as [B, C, h, w];
    any other shape as it is, for the caller to check."""
    return latent[:, :, 0] if latent.ndim == 5 and latent.shape[2] == 1 else latent
