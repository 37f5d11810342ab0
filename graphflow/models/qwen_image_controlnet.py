"""ControlNet for Qwen-Image (InstantX's Qwen-Image-ControlNet-Union and -Inpainting; diffusers'
QwenImageControlNetModel), as ComfyUI's ControlNetLoader reads it.

A few of Qwen-Image's double-stream blocks (InstantX's Union: 5) read the noisy latent's patches
through img_in plus the hint latent's through a zero-initialised linear `controlnet_x_embedder`;
a zero-initialised linear after each block (`controlnet_blocks.{i}`) gives one residual of the
image tokens. Qwen-Image adds residual i // ceil(depth / n) after its block i (depth 60: each
residual of InstantX's Union serves 12 blocks), as diffusers' QwenImageTransformer2DModel and
ComfyUI (which assumes 60 blocks) do.

The hint is the image through the VAE (Wan 2.1's, qwen_image_vae) at the latent's pixel size,
shifted and scaled as the sampled latent (ComfyUI's Wan21 process_in; diffusers' latents_mean /
latents_std). Inpainting (a controlnet_x_embedder of 68 inputs): the masked image's latent plus
the mask of the part to keep as a 17th channel, packed together (diffusers'
QwenImageControlNetInpaintPipeline, ComfyUI's concat_mask).

The file is in diffusers' names, which are Qwen-Image's in ComfyUI's layout
(graphflow.models.qwen_image), plus controlnet_blocks.{i} and controlnet_x_embedder; ComfyUI tells
it by transformer_blocks.0.img_mlp.net.0.proj.weight beside controlnet_blocks.0.weight. No union
mode token: the Union net reads any hint kind as it is (ComfyUI hands it SetUnionControlNetType's
type, which it ignores; so does graphflow's SetUnionControlNetType).
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from .cast_layers import Linear
from .mmdit_controlnet import assign
from .qwen_image import QwenImage, QwenImageConfig, one_frame, qwen_image_config_from_state_dict, tokens
from .weight_files import CheckpointError


@dataclass(frozen=True)
class QwenImageControlNetConfig:
    model: QwenImageConfig  # num_layers: the ControlNet's own blocks
    hint_channels: int = 64  # packed hint latent features (68: inpainting, the mask channel packed too)


class QwenImageControlNet(QwenImage):

    def __init__(self, config: QwenImageControlNetConfig):
        super().__init__(config.model)
        del self.norm_out, self.proj_out
        dim = config.model.dim
        self.control_config = config
        self.controlnet_blocks = nn.ModuleList(Linear(dim, dim) for _ in range(config.model.num_layers))
        self.controlnet_x_embedder = Linear(config.hint_channels, dim)

    needs_vae = True  # the hint is a latent

    @property
    def dtype(self) -> torch.dtype:
        return self.controlnet_x_embedder.weight.dtype

    @property
    def concat_mask(self) -> bool:
        """An inpainting ControlNet: the kept-part mask follows the latent as one more channel."""
        return self.control_config.hint_channels == self.config.in_channels + self.config.patch_size ** 2

    def forward(self, x, hint, sigma, context, **unused) -> list[torch.Tensor]:
        """x and the hint latent [B, 16 (17: inpainting), H, W] -> a residual per block [B, h w, dim]."""
        context = context.to(x.dtype).expand(x.shape[0], -1, -1)
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(x.shape[0])
        hint = tokens(hint.to(x.dtype), self.config.patch_size)[0]  # padded to whole patches as x (in embed)
        img, txt, temb, pe, _ = self.embed(x, sigma, context, hint=hint)
        out = []
        for block, zero in zip(self.transformer_blocks, self.controlnet_blocks):
            img, txt = block(img, txt, temb, pe)
            out.append(zero(img))
        return out

    def embed(self, x, sigma, context, hint=None):
        """Qwen-Image's embedding, the hint's patches through controlnet_x_embedder added to the image
        tokens (diffusers adds them before the timestep embedding, which reads only their dtype)."""
        img, txt, temb, pe, hw = super().embed(x, sigma, context)
        return img + self.controlnet_x_embedder(hint), txt, temb, pe, hw

    def control(self, applied, x, sigma, context, y, model_config=None, **unused) -> dict:
        """Residuals for a Qwen-Image of model_config's depth, one per block."""
        if model_config is not None and not isinstance(model_config, QwenImageConfig):
            raise ValueError(f"this is a Qwen-Image ControlNet; the model being sampled is not Qwen-Image "
                             f"({type(model_config).__name__})")
        if context is not None and context.shape[-1] != self.config.joint_attention_dim:
            raise ValueError(f"this Qwen-Image ControlNet was made for {self.config.joint_attention_dim}-wide text "
                             f"states, the model being sampled gives {context.shape[-1]}")
        if self.dtype != x.dtype or self.controlnet_x_embedder.weight.device != x.device:
            self.to(x.device, x.dtype)
        latent = x[:, :, 0] if x.ndim == 5 else x  # ComfyUI's one-frame latent [B, 16, 1, h, w]
        b, _, h, w = latent.shape
        hint = hint_frame(applied.latent_hint(h, w, b, x.device, x.dtype))
        if self.concat_mask:
            hint = torch.cat([hint, applied.mask_hint(h, w, b, x.device, x.dtype)], dim=1)
        p2 = self.config.patch_size ** 2
        if hint.shape[1] * p2 != self.control_config.hint_channels:
            raise ValueError(f"this ControlNet reads a {self.control_config.hint_channels // p2 - self.concat_mask}-"
                             f"channel latent hint, the VAE gives {hint.shape[1] - self.concat_mask} channels")
        res = self(latent, hint, sigma, context)
        depth = getattr(model_config, "num_layers", len(res))
        every = math.ceil(depth / len(res))
        return {"input": [res[i // every] for i in range(depth)]}


def hint_frame(latent: torch.Tensor) -> torch.Tensor:
    """The hint's latent [B, C, h, w] from a video VAE's [B, C, 1, h, w] (the Wan VAE takes a batch
    of images as the frames of one video, as ComfyUI's: one hint image only)."""
    if latent.ndim == 5 and latent.shape[2] != 1:
        raise ValueError(f"the hint is {latent.shape[2]} latent frames: the Wan VAE encodes a batch of images "
                         "as one video, give one hint image")
    return one_frame(latent)


def qwen_image_controlnet_config(shapes: dict[str, tuple]) -> QwenImageControlNetConfig:
    dim, in_channels = shapes["img_in.weight"]  # no final layer: proj_out's shape as Qwen-Image's
    model = qwen_image_config_from_state_dict({**shapes, "proj_out.weight": (in_channels, dim)})
    return QwenImageControlNetConfig(model=model, hint_channels=shapes["controlnet_x_embedder.weight"][1])


def load_qwen_image_controlnet(wf, device="cpu", dtype=None) -> QwenImageControlNet:
    """From a WeightFile in diffusers' (= ComfyUI's) layout."""
    try:
        config = qwen_image_controlnet_config(wf.shapes)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"the Qwen-Image ControlNet's layout could not be read from its weights ({e})") from None
    plain, p2 = config.model.in_channels, config.model.patch_size ** 2
    if config.hint_channels not in (plain, plain + p2):
        raise CheckpointError(f"the Qwen-Image ControlNet's controlnet_x_embedder takes {config.hint_channels} "
                              f"features: expected {plain} (a latent hint) or {plain + p2} (inpainting: latent "
                              "and mask)")
    with torch.device("meta"):
        net = QwenImageControlNet(config)
    return assign(net, {k: wf.get(k, device, dtype) for k in wf.shapes})
