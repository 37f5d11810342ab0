"""Stable Zero123: novel views of an object from one image, on an SD1.x UNet.

A stable_zero123 checkpoint is an SD1 UNet with 8 input channels (the noisy latent, then the
input image's raw VAE latent: the concat the sampler builds as for InstructPix2Pix models), a
`cc_projection` Linear (768 + 4 -> 768) and the CLIP ViT-L/14 image encoder under
`cond_stage_model.model.visual.` (OpenAI CLIP layout; Zero123's FrozenCLIPImageEmbedder deletes
only the text transformer, so leftovers such as `cond_stage_model.model.token_embedding.weight`
may be there too; no text encoder is read).

The cross-attention context is one token per image: [CLIP image_embeds, camera embedding]
(StableZero123_Conditioning) projected by cc_projection. As ComfyUI's Stable_Zero123 model, only
contexts whose width is not the UNet's context width are projected: the negative side is zeros
of the image-embedding width (768 = the context width), which pass as they are.
(Torch is imported where used: architecture detection, which reads the constants here, stays
torch-free.)
"""

from __future__ import annotations

import math

CC_PROJECTION = "cc_projection."
VISION_PREFIX = "cond_stage_model.model.visual."
CAMERA_WIDTH = 4


def is_zero123(shapes) -> bool:
    return CC_PROJECTION + "weight" in shapes


def camera_embedding(elevation: float, azimuth: float) -> torch.Tensor:
    """[1, 1, 4]: Zero123's relative camera pose (degrees in), as ComfyUI builds it:
    [-elevation (rad; Zero123's polar angle is 90 - elevation, taken relative to 90),
    sin(azimuth), cos(azimuth), pi/2 (the camera distance term, fixed)]."""
    import torch

    el, az = math.radians(float(elevation)), math.radians(float(azimuth))
    return torch.tensor([[[-el, math.sin(az), math.cos(az), math.pi / 2]]], dtype=torch.float32)


def cc_projection_from(f) -> nn.Linear:
    """The checkpoint's cc_projection (float32, CPU: a few hundred thousand weights, applied once per
    conditioning entry before sampling)."""
    import torch
    from torch import nn

    weight = f.get(CC_PROJECTION + "weight", dtype=torch.float32)
    bias = f.get(CC_PROJECTION + "bias", dtype=torch.float32)
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer.requires_grad_(False).eval()


def project_context(projection: nn.Linear, context: torch.Tensor, context_dim: int) -> torch.Tensor:
    """A conditioning embedding [B, T, D] -> the UNet's context: projected when D is the projection's
    input width, passed through when it already is the context width."""
    width = context.shape[-1]
    if width == context_dim:
        return context
    if width != projection.in_features:
        raise ValueError(f"this Stable Zero123 model takes conditioning {projection.in_features} wide (a CLIP "
                         f"image embedding of {projection.in_features - CAMERA_WIDTH} + the {CAMERA_WIDTH}-wide "
                         f"camera embedding, StableZero123_Conditioning) or {context_dim} wide; got {width}")
    import torch

    with torch.no_grad():
        return projection(context.float().to(projection.weight.device))
