"""Wan 2.2 Animate's own parts (ComfyUI's WAN22_Animate, Wan2_2-Animate-14B): a Wan 2.1 image-to-video
transformer (graphflow.models.wan.Wan, which builds these when its config has face_adapter_layers)
driven by a pose video and a face video, in the original key layout.

- pose_patch_embedding (in wan.py): the pose video's latent, patched like the video, is added to
  the video's tokens from the second latent frame on (the first is the reference image's).
- motion_encoder: each face frame (512x512 pixels in [-1, 1]) -> a motion vector. A StyleGAN2-like
  encoder (`enc.net_app.convs`: a 1x1 conv, residual blocks each halving the size through a
  [1, 3, 3, 1] blur and a strided conv, a 4x4 conv down to one pixel; equalised-learning-rate
  weights, scaled by 1/sqrt(fan-in) when used, leaky ReLU x sqrt(2) after a per-channel bias), five
  linear layers (`enc.fc`, no activations between) down to `motion_dim` (20) coefficients, which
  weigh the orthonormalised columns of `dec.direction` (its QR's Q: the motion basis).
- face_encoder: the motion vectors over time -> per latent frame, `face_heads` (4) tokens of the
  model's width plus a learned padding token: causal (replicate-padded) 1D convs, the second and third
  of stride 2 (4x fewer frames, as the VAE's), each followed by a LayerNorm without affine and SiLU.
- face_adapter.fuser_blocks: after every 5th main block (0, 5, 10, ...; wan.FACE_EVERY) the video's tokens of
  each latent frame attend to that frame's face tokens (LayerNorms without affine on both sides,
  per-head RMS norms on queries and keys, no positions) and add the result.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .cast_layers import Linear
from .wan import RMSNorm  # wan.py builds these parts lazily, so no import cycle

FACE_SIZE_AT_END = 4  # the motion encoder's last conv is 4x4, down to one pixel
MOTION_BATCH = 8  # face frames through the motion encoder at a time (memory, as ComfyUI's encode_bs)
BLUR_TAPS = 4  # the downsampling blur's kernel ([1, 3, 3, 1] outer itself, normalised; stored in the file)
EPS = 1e-6
LEAK = 0.2


class EqualConv2d(nn.Module):
    """A conv whose weight is scaled by 1/sqrt(fan-in) when used (StyleGAN2's equalised learning rate)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(cout)) if bias else None
        self.scale, self.stride, self.padding = 1 / math.sqrt(cin * kernel * kernel), stride, padding

    def forward(self, x):
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.conv2d(x, self.weight.to(x.dtype) * self.scale, bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin))
        self.bias = nn.Parameter(torch.empty(cout))
        self.scale = 1 / math.sqrt(cin)

    def forward(self, x):
        return F.linear(x, self.weight.to(x.dtype) * self.scale, self.bias.to(x.dtype))


class BiasedLeakyReLU(nn.Module):
    """leaky_relu(x + bias, 0.2) x sqrt(2): the conv's bias, kept [1, C, 1, 1] as stored."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.empty(1, channels, 1, 1))

    def forward(self, x):
        return F.leaky_relu(x + self.bias.to(x.dtype), LEAK) * math.sqrt(2)


class Blur(nn.Module):
    """The FIR low-pass before a strided conv (its 4x4 kernel is in the file), padded to keep the size + 1."""

    def __init__(self, pad: int):
        super().__init__()
        self.register_buffer("kernel", torch.empty(BLUR_TAPS, BLUR_TAPS))
        self.pad = pad

    def forward(self, x):
        c = x.shape[1]
        k = self.kernel.to(x.dtype).flip(0, 1).expand(c, 1, -1, -1)  # flipped: a true convolution
        return F.conv2d(F.pad(x, (self.pad,) * 4), k, groups=c)


def conv_layer(cin: int, cout: int, kernel: int, down: bool = False, activate: bool = True) -> nn.Sequential:
    """The original's ConvLayer, its indices kept for the keys: [blur,] conv[, biased leaky ReLU]."""
    layers = []
    if down:  # blur pad (taps - 2 + kernel - 1) / 2 each side, then a stride-2 conv without padding
        layers.append(Blur((BLUR_TAPS - 2 + kernel - 1) // 2))
    layers.append(EqualConv2d(cin, cout, kernel, stride=2 if down else 1, padding=0 if down else kernel // 2))
    if activate:
        layers.append(BiasedLeakyReLU(cout))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = conv_layer(cin, cin, 3)
        self.conv2 = conv_layer(cin, cout, 3, down=True)
        self.skip = conv_layer(cin, cout, 1, down=True, activate=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class MotionEncoder(nn.Module):
    """motion_encoder: face frames [N, 3, S, S] in [-1, 1] -> motion vectors [N, style_dim]."""

    def __init__(self, channels: tuple, style_dim: int, motion_dim: int, fc_layers: int):
        super().__init__()
        convs = [conv_layer(3, channels[0], 1)]
        convs += [ResBlock(a, b) for a, b in zip(channels, channels[1:])]
        convs.append(EqualConv2d(channels[-1], style_dim, FACE_SIZE_AT_END))
        self.enc = nn.Module()
        self.enc.net_app = nn.Module()
        self.enc.net_app.convs = nn.ModuleList(convs)
        self.enc.fc = nn.Sequential(*[EqualLinear(style_dim, style_dim) for _ in range(fc_layers - 1)],
                                    EqualLinear(style_dim, motion_dim))
        self.dec = nn.Module()
        self.dec.direction = nn.Module()
        self.dec.direction.weight = nn.Parameter(torch.empty(style_dim, motion_dim))
        self.size = FACE_SIZE_AT_END * 2 ** (len(channels) - 1)

    def forward(self, faces):
        if tuple(faces.shape[-2:]) != (self.size, self.size):
            raise ValueError(f"the face video must be {self.size}x{self.size} pixels (WanAnimateToVideo's face_video "
                             f"resized), got {tuple(faces.shape[-2:])}")
        h = faces
        for conv in self.enc.net_app.convs:
            h = conv(h)
        coefficients = self.enc.fc(h.flatten(1))
        weight = self.dec.direction.weight.float()
        # a tiny diagonal keeps the QR well defined (the original's stabiliser)
        basis = torch.linalg.qr(weight + 1e-8 * torch.eye(*weight.shape, device=weight.device))[0]
        return coefficients @ basis.T.to(coefficients.dtype)


class CausalConv1d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, 3, stride=stride)

    def forward(self, x):  # [B, C, T]: the first frame repeated twice in front
        return self.conv(F.pad(x, (2, 0), mode="replicate"))


def norm_silu(h):
    """[B, C, T]: LayerNorm over the channels (no affine), then SiLU."""
    return F.silu(F.layer_norm(h.transpose(1, 2), (h.shape[1],), eps=EPS)).transpose(1, 2)


class FaceEncoder(nn.Module):
    """face_encoder: motion vectors [B, T, in_dim] -> face tokens [B, ceil(T / 4), heads + 1, dim]."""

    def __init__(self, in_dim: int, hidden: int, heads: int, dim: int):
        super().__init__()
        self.heads = heads
        self.conv1_local = CausalConv1d(in_dim, hidden * heads, 1)
        self.conv2 = CausalConv1d(hidden, hidden, 2)
        self.conv3 = CausalConv1d(hidden, hidden, 2)
        self.out_proj = Linear(hidden, dim)
        self.padding_tokens = nn.Parameter(torch.empty(1, 1, 1, dim))

    def forward(self, motion):
        b = motion.shape[0]
        h = self.conv1_local(motion.transpose(1, 2).to(self.conv1_local.conv.weight.dtype))
        h = h.unflatten(1, (self.heads, -1)).flatten(0, 1)  # each head's channels its own sequence
        h = norm_silu(h)
        h = norm_silu(self.conv2(h))
        h = norm_silu(self.conv3(h))
        h = self.out_proj(h.transpose(1, 2)).unflatten(0, (b, self.heads)).transpose(1, 2)  # [B, T', heads, dim]
        pad = self.padding_tokens.to(h.dtype).expand(b, h.shape[1], 1, -1)
        return torch.cat([h, pad], dim=2)


class FaceBlock(nn.Module):
    """One face adapter block: each latent frame's video tokens attend to that frame's face tokens."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.linear1_kv = Linear(dim, 2 * dim)
        self.linear1_q = Linear(dim, dim)
        self.linear2 = Linear(dim, dim)
        self.q_norm = RMSNorm(dim // heads)
        self.k_norm = RMSNorm(dim // heads)

    def forward(self, x, face):
        """x [B, T S, dim] (T latent frames of S tokens), face [B, T, N, dim] -> [B, T S, dim]."""
        b, frames = face.shape[:2]
        kv = self.linear1_kv(F.layer_norm(face, (face.shape[-1],), eps=EPS))
        k, v = kv.unflatten(-1, (2, self.heads, -1)).unbind(3)  # [B, T, N, heads, d] each
        q = self.linear1_q(F.layer_norm(x, (x.shape[-1],), eps=EPS)).unflatten(-1, (self.heads, -1))
        q, k = self.q_norm(q).to(v.dtype), self.k_norm(k).to(v.dtype)
        q = q.unflatten(1, (frames, -1)).flatten(0, 1)  # [B T, S, heads, d]
        out = attention(q.transpose(1, 2), k.flatten(0, 1).transpose(1, 2), v.flatten(0, 1).transpose(1, 2))
        return self.linear2(out.transpose(1, 2).flatten(2).unflatten(0, (b, frames)).flatten(1, 2))


class FaceAdapter(nn.Module):
    def __init__(self, dim: int, heads: int, layers: int):
        super().__init__()
        self.fuser_blocks = nn.ModuleList([FaceBlock(dim, heads) for _ in range(layers)])


def face_tokens(motion_encoder: MotionEncoder, face_encoder: FaceEncoder, faces: torch.Tensor,
                frames: int) -> torch.Tensor:
    """faces [B, 3, T, S, S] -> face tokens [B, frames, heads + 1, dim]: none for the first latent frame
    (the reference image's: zeros), then the face encoder's, zeros past its end or cut to `frames`."""
    b, _, t = faces.shape[:3]
    pixels = faces.movedim(2, 1).flatten(0, 1)
    motion = torch.cat([motion_encoder(chunk) for chunk in pixels.split(MOTION_BATCH)]).unflatten(0, (b, t))
    tokens = face_encoder(motion)
    tokens = torch.cat([torch.zeros_like(tokens[:, :1]), tokens], dim=1)[:, :frames]
    return F.pad(tokens, (0, 0, 0, 0, 0, frames - tokens.shape[1]))
