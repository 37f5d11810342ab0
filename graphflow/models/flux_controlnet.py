"""ControlNet for FLUX.1 (InstantX's and diffusers' FluxControlNetModel).

A few double- and single-stream blocks like FLUX's read the packed noisy latent plus the packed
hint latent (the hint image through the VAE, shifted and scaled like the sampled latent) put
through a zero-initialised linear `pos_embed_input`. A zero-initialised linear after each block
(`controlnet_blocks`, `controlnet_single_blocks`) gives one residual of the image tokens; FLUX
adds residual i // ceil(depth / n) after its double block i (and likewise for the single
blocks), as diffusers' FluxTransformer2DModel does.

Our layout is FLUX's (BFL names, graphflow.models.flux) plus `pos_embed_input`,
`controlnet_blocks.{i}` and `controlnet_single_blocks.{i}`; diffusers' layout
(`transformer_blocks.*`, `single_transformer_blocks.*`, `controlnet_x_embedder`, ...) is renamed to
it on loading, q, k, v (and the single blocks' MLP input) fused.

Union ControlNets (InstantX's FLUX.1-dev-Controlnet-Union, Shakker-Labs' Union-Pro) carry
`controlnet_mode_embedder` (an embedding per mode): the chosen mode's row goes before the text
tokens (text position id 0), as diffusers does with controlnet_mode. The mode is the number
ComfyUI's SetUnionControlNetType gives the type (0 openpose ... 7 repaint), as ComfyUI passes it,
although these files number their modes otherwise (canny 0, tile 1, depth 2, blur 3, pose 4,
gray 5, low quality 6; ComfyUI issue #4823); "auto" adds no mode token.

Inpainting (alimama's FLUX.1-dev-Controlnet-Inpainting-Alpha / -Beta, diffusers' layout with a
68-wide `controlnet_x_embedder`): the hint is the masked image's latent (masked pixels black,
shifted and scaled) plus the mask of the part to keep as a 17th channel, packed together (alimama's
pipeline_flux_controlnet_inpaint; ComfyUI's concat_mask), with the real pooled vector.

XLabs' ControlNets (BFL names: `double_blocks.*`, `controlnet_blocks.*`, `pos_embed_input`) read
the hint as pixels in [-1, 1] through their own `input_hint_block` (3 stride-2 convs to latent
size, as the SD ControlNet's) instead of the VAE, and FLUX adds their residuals repeated
(residual i % n after double block i), as diffusers does for a FluxControlNetModel with an
input_hint_block (controlnet_blocks_repeat) and ComfyUI for XLabs files.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from graphflow.choices import UNION_CONTROLNET_TYPES

from .cast_layers import Linear
from .controlnet import hint_encoder, hint_encoder_widths
from .diffusers_names import FLUX_DOUBLE_BLOCK, FLUX_SINGLE_BLOCK, FLUX_TOP, fused_names, fused_shapes
from .flux import Flux, FluxConfig, flux_config_from_state_dict, image_ids, pack
from .mmdit import pad_to_patches
from .mmdit_controlnet import assign
from .weight_files import CheckpointError


@dataclass(frozen=True)
class FluxControlNetConfig:
    model: FluxConfig  # depth / depth_single_blocks: the ControlNet's own blocks
    hint_channels: int = 64  # packed hint latent channels
    hint_block: tuple[int, ...] | None = None  # XLabs: input_hint_block's widths (the hint is pixels)
    modes: int = 0  # union ControlNets: controlnet_mode_embedder's rows


class FluxControlNet(Flux):

    def __init__(self, config: FluxControlNetConfig):
        super().__init__(config.model)
        cfg = config.model
        del self.final_layer
        self.control_config = config
        self.pos_embed_input = Linear(config.hint_channels, cfg.hidden_size)
        self.controlnet_blocks = nn.ModuleList(Linear(cfg.hidden_size, cfg.hidden_size) for _ in range(cfg.depth))
        self.controlnet_single_blocks = nn.ModuleList(
            Linear(cfg.hidden_size, cfg.hidden_size) for _ in range(cfg.depth_single_blocks))
        if config.hint_block:
            self.input_hint_block = hint_encoder(3, config.hint_block, config.hint_channels // 4)
        if config.modes:
            self.controlnet_mode_embedder = nn.Embedding(config.modes, cfg.hidden_size)

    @property
    def needs_vae(self) -> bool:  # the hint is a latent unless the net encodes it itself
        return not self.control_config.hint_block

    @property
    def dtype(self) -> torch.dtype:
        return self.pos_embed_input.weight.dtype

    @property
    def concat_mask(self) -> bool:
        """An inpainting ControlNet: the kept-part mask follows the latent as one more channel (4 packed)."""
        return not self.control_config.hint_block and self.control_config.hint_channels == self.config.in_channels + 4

    @property
    def union_types(self) -> tuple[str, ...]:
        """The SetUnionControlNetType types this net takes: "auto" and those numbered below its modes."""
        if not self.control_config.modes:
            raise AttributeError("union_types: not a union ControlNet")
        return UNION_CONTROLNET_TYPES[:1 + self.control_config.modes]

    def forward(self, x, hint, sigma, context, y, guidance=None, mode: int | None = None,
                **unused) -> dict[str, list[torch.Tensor]]:
        """x and the hint latent [B, 16, H, W] (XLabs: pixels [B, 3, 8H, 8W] in -1..1) -> {"input": a
        residual per double block, "output": per single block}, each [B, H/2 * W/2, hidden].
        mode: a union ControlNet's mode (None: no mode token)."""
        if self.control_config.hint_block:
            hint = self.input_hint_block(hint.to(self.dtype))
        H, W = x.shape[-2:]
        if H % 2 or W % 2:
            x, hint = pad_to_patches(x, 2), pad_to_patches(hint, 2)
        b, _, h, w = x.shape
        if mode is not None and not 0 <= mode < self.control_config.modes:
            raise ValueError(f"this FLUX ControlNet has {self.control_config.modes} union modes; got mode {mode}")
        tokens = context.shape[1] + (mode is not None)
        txt_ids = torch.zeros(b, tokens, 3, device=x.device)
        img, txt, vec, pe = self.embed(pack(x), image_ids(h // 2, w // 2, b, x.device), context, txt_ids, sigma, y,
                                       guidance)
        if mode is not None:
            row = self.controlnet_mode_embedder.weight[mode].to(txt.dtype)
            txt = torch.cat([row.expand(b, 1, -1), txt], dim=1)
        img = img + self.pos_embed_input(pack(hint.to(img.dtype)))
        double = []
        for block, out in zip(self.double_blocks, self.controlnet_blocks):
            img, txt = block(img, txt, vec, pe)
            double.append(out(img))
        n = txt.shape[1]
        tokens, single = torch.cat([txt, img], dim=1), []
        for block, out in zip(self.single_blocks, self.controlnet_single_blocks):
            tokens = block(tokens, vec, pe)
            single.append(out(tokens[:, n:]))
        return {"input": double, "output": single}

    def control(self, applied, x, sigma, context, y, model_config=None, guidance=None, **unused) -> dict:
        """Residuals for a FLUX of model_config's depths, one per block."""
        if model_config is not None and not isinstance(model_config, FluxConfig):
            raise ValueError(f"this is a FLUX ControlNet; the model being sampled is not FLUX "
                             f"({type(model_config).__name__})")
        if context is not None and context.shape[-1] != self.config.context_in_dim:
            raise ValueError(f"this FLUX ControlNet was made for {self.config.context_in_dim}-wide text embeddings, "
                             f"the model being sampled gives {context.shape[-1]}")
        if self.dtype != x.dtype or self.pos_embed_input.weight.device != x.device:
            self.to(x.device, x.dtype)
        if self.control_config.hint_block:
            hint = applied.hint(x.shape[2] * 8, x.shape[3] * 8, x.shape[0], x.device, x.dtype) * 2 - 1
        else:
            hint = applied.latent_hint(x.shape[2], x.shape[3], x.shape[0], x.device, x.dtype)
        inpainting = self.concat_mask
        if inpainting:
            hint = torch.cat([hint, applied.mask_hint(x.shape[2], x.shape[3], x.shape[0], x.device, x.dtype)], dim=1)
        if not self.control_config.hint_block and hint.shape[1] * 4 != self.control_config.hint_channels:
            raise ValueError(f"this ControlNet reads a {self.control_config.hint_channels // 4 - inpainting}-channel "
                             f"latent hint, the VAE gives {hint.shape[1] - inpainting} channels")
        outs = self(x, hint, sigma, context, y, guidance, getattr(applied, "control_type", None))
        depths = {"input": getattr(model_config, "depth", len(outs["input"])),
                  "output": getattr(model_config, "depth_single_blocks", len(outs["output"]))}
        control = {}
        for key, res in outs.items():
            if res and self.control_config.hint_block:  # XLabs: the residuals over and over
                control[key] = [res[i % len(res)] for i in range(depths[key])]
            elif res:
                every = math.ceil(depths[key] / len(res))
                control[key] = [res[i // every] for i in range(depths[key])]
        return control


def from_diffusers_layout(keys) -> dict[str, list[str]]:
    return fused_names(keys, FLUX_TOP, {"transformer_blocks": ("double_blocks", FLUX_DOUBLE_BLOCK),
                                        "single_transformer_blocks": ("single_blocks", FLUX_SINGLE_BLOCK)})


def _hint_block_names(keys) -> dict[str, list[str]]:
    """diffusers' ControlNetConditioningEmbedding (conv_in, blocks.{j}, conv_out) -> nn.Sequential indices."""
    blocks = len({k.split(".")[2] for k in keys if k.startswith("input_hint_block.blocks.")})
    names = {}
    for k in keys:
        part = k.split(".")
        index = 0 if part[1] == "conv_in" else 2 + 2 * blocks if part[1] == "conv_out" else 2 + 2 * int(part[2])
        names[f"input_hint_block.{index}.{part[-1]}"] = [k]
    return names


def flux_controlnet_config(shapes: dict[str, tuple]) -> FluxControlNetConfig:
    hidden, in_channels = shapes["img_in.weight"]
    model = flux_config_from_state_dict({**shapes, "final_layer.linear.weight": (in_channels, hidden)})
    return FluxControlNetConfig(model=model, hint_channels=shapes["pos_embed_input.weight"][1],
                                hint_block=hint_encoder_widths(shapes) or None,
                                modes=shapes.get("controlnet_mode_embedder.weight", (0,))[0])


def load_flux_controlnet(wf, device="cpu", dtype=None) -> FluxControlNet:
    """From a WeightFile in diffusers' layout or ours."""
    if "x_embedder.weight" in wf.shapes:
        names = from_diffusers_layout([k for k in wf.shapes if not k.startswith("input_hint_block.")])
        names.update(_hint_block_names([k for k in wf.shapes if k.startswith("input_hint_block.")]))
    else:
        names = {k: [k] for k in wf.shapes}
    shapes = fused_shapes(wf.shapes, names)
    try:
        config = flux_controlnet_config(shapes)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"the FLUX ControlNet's layout could not be read from its weights ({e})") from None
    with torch.device("meta"):
        net = FluxControlNet(config)
    state = {k: torch.cat([wf.get(t, device, dtype) for t in ts]) if len(ts) > 1 else wf.get(ts[0], device, dtype)
             for k, ts in names.items()}
    return assign(net, state)
