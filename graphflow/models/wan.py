"""Wan 2.1 / 2.2 (Alibaba): the video diffusion transformer, text-to-video and image-to-video, in
the original Wan key layout (as ComfyUI loads wan2.1_t2v_1.3B_fp16.safetensors and friends). Wan
2.2's 14B experts (high- and low-noise) are Wan 2.1 networks; the 2.2 TI2V 5B is one over the 2.2
VAE's 48-channel latents (16x smaller), which takes a timestep per frame when a noise mask keeps its
start frame (ComfyUI's WAN22: each frame's mean mask x sigma; Wan22ImageToVideoLatent).

A latent video [B, 16, F, H, W] (the Wan VAE's: 4x fewer frames after the first, 8x smaller) is
cut into 1x2x2 patches (`patch_embedding`, a Conv3d), F*H/2*W/2 tokens of width `dim`. Each
block: self-attention (queries and keys RMS-normed across all heads, then rotated by their
(frame, row, column): the head's channels split d - 4(d//6), 2(d//6), 2(d//6) among the three
axes, theta 10000, adjacent channel pairs), cross-attention to the UMT5 prompt tokens (after an
affine LayerNorm, `norm3`), and a tanh-GELU MLP; self-attention and MLP are modulated by the
timestep: a learned per-block table (`modulation` [1, 6, dim]) plus the shared projection of
the timestep embedding (`time_projection`), shift / scale / gate each. The head is modulated by
the timestep embedding itself plus its own table. Prompt tokens pass a tanh-GELU MLP first
(`text_embedding`).

Image-to-video (36 input channels: the noisy latent, then a 4-channel mask and the start
image's 16-channel latent, ComfyUI's concat): CLIP vision's penultimate states [B, 257, 1280]
become image tokens (`img_emb`: LayerNorm, Linear, GELU, Linear, LayerNorm) that each block's
cross-attention attends to with their own keys and values (`k_img`, `v_img`, `norm_k_img`), the
two attentions' outputs summed before `o`. Without CLIP vision states an I2V model's image
attention runs over the prompt's tokens instead, as ComfyUI's does (its context_img_len None).

VACE (vace_blocks, vace_patch_embedding): a second stream of blocks over the patch-embedded
control latents (32 channels of inactive / reactive video latents and 64 of mask, per VACE input)
starting from the video's own tokens (`before_proj`); after every depth // vace_layers main blocks
its next block's output (`after_proj`) is added to the video tokens, times the input's strength.

Fun Control-Camera (control_adapter; Wan2.1-Fun-V1.1-*-Control-Camera, an I2V model of 32 input
channels: the noisy latent and the start image's): the camera's Plücker rays per pixel
[B, 24, F, H, W] (WanCameraEmbedding's: 6 channels for each of a latent frame's 4 pixel frames)
are unshuffled 8x8 into channels, patched by a conv of the patch size and passed through one
residual block (3x3 conv, ReLU, 3x3 conv), then added to the patch embedding, token for token.

Called as ComfyUI's model: sigma [B] in [0, 1] (rectified flow, 1 = noise), the network's
timestep 1000 sigma, its output the velocity noise - x0. The prompt's tokens are all attended
to, no mask (ComfyUI gives 512, the padding zeros).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .block_runner import run_blocks
from .cast_layers import Linear
from .configs import WanConfig, wan_config_from_state_dict  # noqa: F401 (configs.py: torch-free)
from .mmdit import timestep_embedding
from .mochi import apply_rope, rms_norm

THETA = 10000.0
EPS = 1e-6
CAMERA_UNSHUFFLE = 8  # the camera adapter folds 8x8 pixels into channels: the VAE's downscale
FACE_EVERY = 5  # Wan Animate: a face adapter block after main blocks 0, 5, 10, ... (ComfyUI's and the original's)


def rope(head_dim: int, frames: int, rows: int, columns: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) [F*H*W, 1, head_dim / 2] of each patch's (frame, row, column) = their indices."""
    axes = (head_dim - 4 * (head_dim // 6), 2 * (head_dim // 6), 2 * (head_dim // 6))
    grid = torch.meshgrid(*(torch.arange(n, device=device, dtype=torch.float64) for n in (frames, rows, columns)),
                          indexing="ij")
    angles = []
    for pos, dim in zip(grid, axes):
        freqs = 1.0 / THETA ** (torch.arange(0, dim, 2, device=device, dtype=torch.float64) / dim)
        angles.append(pos.reshape(-1, 1) * freqs)
    angles = torch.cat(angles, dim=-1).float()[:, None]
    return angles.cos(), angles.sin()


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, EPS) * self.weight.to(x.dtype)


class Attention(nn.Module):
    """Self- or cross-attention with QK RMS norms across the heads; I2V's cross-attention also
    attends to the image tokens with their own keys and values."""

    def __init__(self, dim: int, heads: int, image: bool = False):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim), RMSNorm(dim)
        if image:
            self.k_img, self.v_img = Linear(dim, dim), Linear(dim, dim)
            self.norm_k_img = RMSNorm(dim)

    def _heads(self, t):
        return t.unflatten(-1, (self.heads, -1))  # [B, N, heads, d]

    def _attend(self, q, k, v):
        return attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2).flatten(2)

    def forward(self, x, context=None, pe=None, image_tokens: int | None = 0):
        """image_tokens: how many of the context's tokens come first as image tokens; None: the image
        attention (I2V) runs over all the context (no CLIP vision states given)."""
        if context is None:  # self-attention, rotated
            q = apply_rope(self._heads(self.norm_q(self.q(x))), pe)
            k = apply_rope(self._heads(self.norm_k(self.k(x))), pe)
            return self.o(self._attend(q, k, self._heads(self.v(x))))
        image, text = (context, context) if image_tokens is None else (context[:, :image_tokens],
                                                                        context[:, image_tokens:])
        q = self._heads(self.norm_q(self.q(x)))
        out = self._attend(q, self._heads(self.norm_k(self.k(text))), self._heads(self.v(text)))
        if image_tokens is None or image_tokens:
            out = out + self._attend(q, self._heads(self.norm_k_img(self.k_img(image))),
                                     self._heads(self.v_img(image)))
        return self.o(out)


def modulation(table, e, tokens: int) -> list[torch.Tensor]:
    """table [1, n, dim] + the timestep's e [B, n, dim] -> n tensors [B, 1, dim]; per-frame e
    [B, frames, n, dim] -> n tensors [B, tokens, dim], each frame's repeated over its tokens (frames
    whole, as ComfyUI's repeat_e)."""
    if e.dim() == 3:
        return [m[:, None] for m in (table.float() + e).unbind(1)]
    return [m.repeat_interleave(tokens // e.shape[1], dim=1) for m in (table.float()[:, None] + e).unbind(2)]


class Block(nn.Module):
    def __init__(self, cfg: WanConfig):
        super().__init__()
        dim = cfg.dim
        self.self_attn = Attention(dim, cfg.num_heads)
        self.norm3 = nn.LayerNorm(dim, eps=EPS) if cfg.cross_attn_norm else nn.Identity()
        self.cross_attn = Attention(dim, cfg.num_heads, image=cfg.i2v)
        self.ffn = nn.Sequential(Linear(dim, cfg.ffn_dim), nn.GELU(approximate="tanh"), Linear(cfg.ffn_dim, dim))
        self.modulation = nn.Parameter(torch.zeros(1, 6, dim))

    def forward(self, x, e, context, pe, image_tokens):
        """e [B, 6, dim] float32: the projected timestep embedding (Wan 2.2 TI2V with a noise mask:
        [B, frames, 6, dim], one per frame)."""
        shift, scale, gate, shift_mlp, scale_mlp, gate_mlp = modulation(self.modulation, e, x.shape[1])

        def modulated(h, shift, scale):
            normed = F.layer_norm(h.float(), (h.shape[-1],), eps=EPS)
            return (normed * (1 + scale) + shift).to(h.dtype)

        x = x + (self.self_attn(modulated(x, shift, scale), pe=pe).float() * gate).to(x.dtype)
        x = x + self.cross_attn(self.norm3(x), context, image_tokens=image_tokens)
        return x + (self.ffn(modulated(x, shift_mlp, scale_mlp)).float() * gate_mlp).to(x.dtype)


class VaceBlock(Block):
    """A VACE block: a main block over the control tokens (the first adds the video's tokens to them
    first, before_proj), its output also projected out as the hint for the video (after_proj)."""

    def __init__(self, cfg: WanConfig, first: bool):
        super().__init__(cfg)
        if first:
            self.before_proj = Linear(cfg.dim, cfg.dim)
        self.after_proj = Linear(cfg.dim, cfg.dim)

    def forward(self, c, x, e, context, pe, image_tokens):
        if hasattr(self, "before_proj"):
            c = self.before_proj(c) + x
        c = super().forward(c, e, context, pe, image_tokens)
        return self.after_proj(c), c


class Head(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.head = Linear(dim, out)
        self.modulation = nn.Parameter(torch.zeros(1, 2, dim))

    def forward(self, x, e):
        """e [B, dim] (or [B, frames, dim]: per-frame timesteps)."""
        shift, scale = modulation(self.modulation, e[:, None] if e.dim() == 2 else e[:, :, None], x.shape[1])
        normed = F.layer_norm(x.float(), (x.shape[-1],), eps=EPS)
        return self.head((normed * (1 + scale) + shift).to(x.dtype))


class ImageEmbedding(nn.Module):
    """CLIP vision states -> image tokens (img_emb.proj.{0,1,3,4}; FLF2V adds learned positions)."""

    def __init__(self, in_dim: int, dim: int, tokens: int):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), Linear(in_dim, in_dim), nn.GELU(), Linear(in_dim, dim),
                                  nn.LayerNorm(dim))
        if tokens:
            self.emb_pos = nn.Parameter(torch.zeros(1, tokens, in_dim))

    def forward(self, states):
        if hasattr(self, "emb_pos"):
            states = states[:, :self.emb_pos.shape[1]] + self.emb_pos[:, :states.shape[1]].to(states.dtype)
        return self.proj(states)


class CameraAdapter(nn.Module):
    """control_adapter: Plücker rays [B, C, F, H, W] at pixel size -> [B, dim, F, H/16, W/16], one
    vector per patch: an 8x8 pixel unshuffle (the VAE's downscale), a conv of the patch size, one
    residual block (conv1, ReLU, conv2 plus its input), each frame on its own."""

    def __init__(self, in_channels: int, dim: int, patch: tuple):
        super().__init__()
        self.conv = nn.Conv2d(in_channels * CAMERA_UNSHUFFLE ** 2, dim, patch, stride=patch)
        self.residual_blocks = nn.ModuleList([CameraResidualBlock(dim)])

    def forward(self, rays):
        b, _, f = rays.shape[:3]
        x = self.conv(F.pixel_unshuffle(rays.movedim(2, 1).flatten(0, 1), CAMERA_UNSHUFFLE))
        for block in self.residual_blocks:
            x = block(x)
        return x.unflatten(0, (b, f)).movedim(1, 2)


class CameraResidualBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class Wan(nn.Module):
    def __init__(self, config: WanConfig):
        super().__init__()
        self.config = cfg = config
        dim = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_channels, dim, cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(Linear(cfg.text_dim, dim), nn.GELU(approximate="tanh"), Linear(dim, dim))
        self.time_embedding = nn.Sequential(Linear(cfg.freq_dim, dim), nn.SiLU(), Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), Linear(dim, 6 * dim))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.head = Head(dim, cfg.out_channels * cfg.patch_size[0] * cfg.patch_size[1] * cfg.patch_size[2])
        if cfg.i2v:
            self.img_emb = ImageEmbedding(cfg.image_dim, dim, cfg.img_emb_tokens)
        if cfg.vace_layers:
            self.vace_patch_embedding = nn.Conv3d(cfg.vace_in_channels, dim, cfg.patch_size, stride=cfg.patch_size)
            self.vace_blocks = nn.ModuleList([VaceBlock(cfg, i == 0) for i in range(cfg.vace_layers)])
        if cfg.ref_in_channels:  # Wan 2.2 Fun Control: a reference image's latent, patched as one frame
            self.ref_conv = nn.Conv2d(cfg.ref_in_channels, dim, cfg.patch_size[1:], stride=cfg.patch_size[1:])
        if cfg.camera_in_channels:  # Fun Control-Camera
            self.control_adapter = CameraAdapter(cfg.camera_in_channels, dim, cfg.patch_size[1:])
        if cfg.face_adapter_layers:  # Wan 2.2 Animate: pose and face inputs (graphflow.models.wan_animate)
            from .wan_animate import FaceAdapter, FaceEncoder, MotionEncoder

            self.pose_patch_embedding = nn.Conv3d(cfg.latent_channels, dim, cfg.patch_size, stride=cfg.patch_size)
            self.motion_encoder = MotionEncoder(cfg.motion_channels, cfg.motion_style_dim, cfg.motion_dim,
                                                cfg.motion_fc_layers)
            self.face_encoder = FaceEncoder(cfg.motion_style_dim, cfg.face_hidden_dim, cfg.face_heads, dim)
            self.face_adapter = FaceAdapter(dim, cfg.num_heads, cfg.face_adapter_layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, y=None,
                clip_fea: torch.Tensor | None = None, vace_context: torch.Tensor | None = None,
                vace_strength=(1.0,), time_dim_concat: torch.Tensor | None = None, reference_latents=None,
                camera_conditions: torch.Tensor | None = None, pose_latents: torch.Tensor | None = None,
                face_pixel_values: torch.Tensor | None = None, **unused) -> torch.Tensor:
        """x [B, in_channels, F, H, W] (I2V: the latent and its 20 concat channels); sigma [B] (or
        [B, F*H*W]: sigma x the noise mask per latent pixel, the TI2V 5B's kept start frame);
        context [B, L, text_dim]; y unused (no pooled vector); clip_fea [B, 257, 1280] CLIP
        vision penultimate states (I2V; None: text alone); vace_context [B, N, vace_in_channels,
        F, H, W] (VACE models: N control inputs, model space) with a strength each; time_dim_concat
        [B, in_channels, F', H, W] frames appended after the video's (Phantom-Wan's subject images,
        model space: seen by attention, their positions after the video's, cut from the output);
        reference_latents [[B, ref_in_channels, H, W]] (models with ref_conv, Wan 2.2 Fun Control: the
        last one's tokens go before the video's, at the first frame's positions, the video's one frame
        later, and are cut from the output); camera_conditions [B, camera_in_channels, F, 8H, 8W]
        (Fun Control-Camera models: WanCameraEmbedding's Plücker rays, added to the patch embedding
        through control_adapter; other models ignore them, as ComfyUI's do); pose_latents [B, 16, F', H, W]
        (Wan Animate: the pose video's latent, model space, added patch for patch to the video's frames
        1..F'; the first is the reference image's) and face_pixel_values [B, 3, T, 512, 512] (Wan Animate:
        the face video in [-1, 1], attended to per latent frame by the face adapter blocks; other models
        ignore both, as ComfyUI's do) -> velocity [B, out_channels, F, H, W]."""
        cfg = self.config
        b, _, f, h, w = x.shape
        pt, ph, pw = cfg.patch_size
        pad = (0, -w % pw, 0, -h % ph, 0, -f % pt)  # ComfyUI pads to whole patches and crops after
        xp = F.pad(x, pad)
        if time_dim_concat is not None:  # ComfyUI pads each to whole patches, then joins them along time
            if time_dim_concat.shape[1] != x.shape[1] or tuple(time_dim_concat.shape[-2:]) != (h, w):
                raise ValueError(f"time_dim_concat {tuple(time_dim_concat.shape)} must match the input's channels and "
                                 f"size {tuple(x.shape)}")
            if sigma.dim() == 2:
                raise ValueError("appended frames (time_dim_concat) can't be used with per-frame timesteps")
            extra = time_dim_concat.shape[2]
            xp = torch.cat([xp, F.pad(time_dim_concat.to(x.dtype), (0, -w % pw, 0, -h % ph, 0, -extra % pt))], dim=2)
        hidden = self.patch_embedding(xp.to(self.patch_embedding.weight.dtype)).to(x.dtype)
        grid = hidden.shape[2:]
        if camera_conditions is not None and cfg.camera_in_channels:
            pixels = CAMERA_UNSHUFFLE * h, CAMERA_UNSHUFFLE * w
            if (tuple(camera_conditions.shape[1:3]) != (cfg.camera_in_channels, f) or camera_conditions.shape[0] != b
                    or tuple(camera_conditions.shape[3:]) != pixels or grid[0] != f or h % ph or w % pw):
                raise ValueError(f"camera_conditions {tuple(camera_conditions.shape)} must be [{b}, "
                                 f"{cfg.camera_in_channels}, {f}, {pixels[0]}, {pixels[1]}]: WanCameraEmbedding's "
                                 f"for the latent {tuple(x.shape)} (whole patches, no appended frames)")
            cams = self.control_adapter(camera_conditions.to(x.device, self.control_adapter.conv.weight.dtype))
            hidden = hidden + cams.to(x.dtype)
        faces = None
        if cfg.face_adapter_layers:
            hidden, faces = self._animate_inputs(hidden, pose_latents, face_pixel_values, pad, time_dim_concat)
        hidden = hidden.flatten(2).transpose(1, 2)
        if sigma.dim() == 2:  # per latent pixel (a noise mask): each frame's mean (ComfyUI's WAN22 process_timestep)
            if pt != 1:
                raise ValueError("per-frame timesteps need a Wan with 1-frame patches")
            sigma = sigma.reshape(b, f, -1).float().mean(dim=2)
        t = timestep_embedding(sigma.flatten().float() * 1000.0, cfg.freq_dim)
        e = self.time_embedding(t.to(x.dtype)).float()
        e6 = self.time_projection(e.to(x.dtype)).float().unflatten(-1, (6, cfg.dim))
        if sigma.dim() == 2:  # [B, frames, ...]; a frame is grid[1] x grid[2] tokens
            e, e6 = e.unflatten(0, (b, f)), e6.unflatten(0, (b, f))
        context = self.text_embedding(context.to(x.dtype))
        image_tokens = None if cfg.i2v else 0  # I2V without CLIP vision states: see Attention.forward
        if clip_fea is not None and cfg.i2v:
            image = self.img_emb(clip_fea.to(x.device, x.dtype))
            context, image_tokens = torch.cat([image, context], dim=1), image.shape[1]
        ref = None
        if reference_latents and cfg.ref_in_channels:  # ComfyUI ignores them on a Wan without ref_conv
            if sigma.dim() == 2:
                raise ValueError("a reference latent can't be used with per-frame timesteps")
            ref = self.ref_conv(F.pad(reference_latents[-1], pad[:4]).to(self.ref_conv.weight.dtype))
            ref = ref.flatten(2).transpose(1, 2).to(x.dtype)
            hidden = torch.cat([ref, hidden], dim=1)
        pe = rope(cfg.head_dim, grid[0] + (ref is not None), *grid[1:], x.device)
        hints, after = [], {}
        if cfg.vace_layers:
            if vace_context is None:
                raise ValueError("a Wan VACE model needs its control input (WanVaceToVideo's vace_frames)")
            n = vace_context.shape[1]
            c = self.vace_patch_embedding(F.pad(vace_context.movedim(1, 0).flatten(0, 1), pad).to(
                self.vace_patch_embedding.weight.dtype)).flatten(2).transpose(1, 2).to(x.dtype)
            hints = list(c.split(b))  # one [B, tokens, dim] per control input
            after = {layer: k for k, layer in enumerate(range(0, cfg.depth, cfg.depth // cfg.vace_layers))}
            if len(vace_strength) != n:
                raise ValueError(f"{n} VACE inputs but {len(vace_strength)} strengths")
        stack = WanBlocks(self, hidden, e, e6, context, pe, image_tokens, faces, hints, after, vace_strength)
        out = self.head(run_blocks(stack), e)  # [B, F h w, pt ph pw C]
        if ref is not None:
            out = out[:, ref.shape[1]:]
        out = out.reshape(b, *grid, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        out = out.reshape(b, -1, grid[0] * pt, grid[1] * ph, grid[2] * pw)
        return out[:, :, :f, :h, :w]

    def _animate_inputs(self, hidden, pose_latents, faces, pad, time_dim_concat):
        """Wan Animate: the pose latent's patches added to the video's from its second frame on, and the
        face video's tokens per latent frame ([B, frames, heads + 1, dim]; None without a face video)."""
        from .wan_animate import face_tokens

        frames = hidden.shape[2]
        if (pose_latents is not None or faces is not None) and time_dim_concat is not None:
            raise ValueError("Wan Animate's pose and face inputs can't be used with appended frames (time_dim_concat)")
        if pose_latents is not None:
            pose = self.pose_patch_embedding(F.pad(pose_latents, pad[:4]).to(self.pose_patch_embedding.weight.dtype))
            if pose.shape[0] != hidden.shape[0] or pose.shape[3:] != hidden.shape[3:]:
                raise ValueError(f"pose_latents {tuple(pose_latents.shape)} must have the latent's batch and size")
            n = min(pose.shape[2], frames - 1)  # ComfyUI's: a shorter or longer pose video fits what it can
            hidden = torch.cat([hidden[:, :, :1], hidden[:, :, 1:n + 1] + pose[:, :, :n].to(hidden.dtype),
                                hidden[:, :, n + 1:]], dim=2)
        if faces is None:
            return hidden, None
        if faces.ndim != 5 or faces.shape[1] != 3:
            raise ValueError(f"face_pixel_values must be [B, 3, frames, H, W], got {tuple(faces.shape)}")
        tokens = face_tokens(self.motion_encoder, self.face_encoder, faces.to(hidden.dtype), frames)
        return hidden, tokens


class WanBlocks:
    """Wan's blocks, with the face adapter (Animate) and VACE hints between them, for
    graphflow.models.block_runner. TeaCache's probe (modulated) is the time embedding e, or e0, its
    six-way projection, in the pack's "ret mode"; first() is block 0 (its probe the tokens after it)."""

    def __init__(self, model, hidden, e, e6, context, pe, image_tokens, faces, hints, after, strength):
        self.model, self.hidden, self.e, self.e6, self.context, self.pe = model, hidden, e, e6, context, pe
        self.image_tokens, self.faces = image_tokens, faces
        self.hints, self.after, self.strength = hints, after, strength

    def modulated(self, ret_mode: bool = False):
        return self.e6 if ret_mode else self.e

    def _run(self, hidden, start, stop):
        model, e6, context, pe, tokens = self.model, self.e6, self.context, self.pe, self.image_tokens
        for i in range(start, stop):
            hidden = model.blocks[i](hidden, e6, context, pe, tokens)
            if self.faces is not None and i % FACE_EVERY == 0:
                hidden = hidden + model.face_adapter.fuser_blocks[i // FACE_EVERY](hidden, self.faces)
            if i in self.after:  # VACE: each control input's hint, run beside the video's tokens
                for k in range(len(self.hints)):
                    skip, self.hints[k] = model.vace_blocks[self.after[i]](self.hints[k], self.hidden, e6, context,
                                                                          pe, tokens)
                    hidden = hidden + skip * self.strength[k]
        return hidden

    def first(self):
        self._after_first = self._run(self.hidden, 0, 1)
        return self._after_first, self._after_first

    def rest(self):
        return self._run(self._after_first, 1, len(self.model.blocks))

    def all(self):
        return self._run(self.hidden, 0, len(self.model.blocks))
