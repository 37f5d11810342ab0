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
it on loading, q, k, v (and the single blocks' MLP input) fused. Union ControlNets (a mode
embedding) are refused.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .cast_layers import Linear
from .flux import Flux, FluxConfig, flux_config_from_state_dict, image_ids, pack
from .mmdit_controlnet import assign, fused_names, fused_shapes
from .weight_files import CheckpointError


@dataclass(frozen=True)
class FluxControlNetConfig:
    model: FluxConfig  # depth / depth_single_blocks: the ControlNet's own blocks
    hint_channels: int = 64  # packed hint latent channels


class FluxControlNet(Flux):
    needs_vae = True  # the hint is a latent

    def __init__(self, config: FluxControlNetConfig):
        super().__init__(config.model)
        cfg = config.model
        del self.final_layer
        self.control_config = config
        self.pos_embed_input = Linear(config.hint_channels, cfg.hidden_size)
        self.controlnet_blocks = nn.ModuleList(Linear(cfg.hidden_size, cfg.hidden_size) for _ in range(cfg.depth))
        self.controlnet_single_blocks = nn.ModuleList(
            Linear(cfg.hidden_size, cfg.hidden_size) for _ in range(cfg.depth_single_blocks))

    @property
    def dtype(self) -> torch.dtype:
        return self.pos_embed_input.weight.dtype

    def forward(self, x, hint, sigma, context, y, guidance=None, **unused) -> dict[str, list[torch.Tensor]]:
        """x and the hint latent [B, 16, H, W] -> {"input": a residual per double block, "output":
        per single block}, each [B, H/2 * W/2, hidden]."""
        H, W = x.shape[-2:]
        if H % 2 or W % 2:
            x = F.pad(x, (0, W % 2, 0, H % 2), mode="circular")
            hint = F.pad(hint, (0, W % 2, 0, H % 2), mode="circular")
        b, _, h, w = x.shape
        txt_ids = torch.zeros(b, context.shape[1], 3, device=x.device)
        img, txt, vec, pe = self.embed(pack(x), image_ids(h // 2, w // 2, b, x.device), context, txt_ids, sigma, y,
                                       guidance)
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
        if context is not None and context.shape[-1] != self.config.context_in_dim:
            raise ValueError(f"this FLUX ControlNet was made for {self.config.context_in_dim}-wide text embeddings, "
                             f"the model being sampled gives {context.shape[-1]}")
        if self.dtype != x.dtype or self.pos_embed_input.weight.device != x.device:
            self.to(x.device, x.dtype)
        hint = applied.latent_hint(x.shape[2], x.shape[3], x.shape[0], x.device, x.dtype)
        if hint.shape[1] * 4 != self.control_config.hint_channels:
            raise ValueError(f"this ControlNet reads a {self.control_config.hint_channels // 4}-channel latent hint, "
                             f"the VAE gives {hint.shape[1]} channels")
        outs = self(x, hint, sigma, context, y, guidance)
        depths = {"input": getattr(model_config, "depth", len(outs["input"])),
                  "output": getattr(model_config, "depth_single_blocks", len(outs["output"]))}
        control = {}
        for key, res in outs.items():
            if res:
                every = math.ceil(depths[key] / len(res))
                control[key] = [res[i // every] for i in range(depths[key])]
        return control


_DOUBLE = {
    "norm1.linear": ("img_mod.lin", 0), "norm1_context.linear": ("txt_mod.lin", 0),
    "attn.to_q": ("img_attn.qkv", 0), "attn.to_k": ("img_attn.qkv", 1), "attn.to_v": ("img_attn.qkv", 2),
    "attn.add_q_proj": ("txt_attn.qkv", 0), "attn.add_k_proj": ("txt_attn.qkv", 1),
    "attn.add_v_proj": ("txt_attn.qkv", 2),
    "attn.norm_q": ("img_attn.norm.query_norm", 0), "attn.norm_k": ("img_attn.norm.key_norm", 0),
    "attn.norm_added_q": ("txt_attn.norm.query_norm", 0), "attn.norm_added_k": ("txt_attn.norm.key_norm", 0),
    "attn.to_out.0": ("img_attn.proj", 0), "attn.to_add_out": ("txt_attn.proj", 0),
    "ff.net.0.proj": ("img_mlp.0", 0), "ff.net.2": ("img_mlp.2", 0),
    "ff_context.net.0.proj": ("txt_mlp.0", 0), "ff_context.net.2": ("txt_mlp.2", 0),
}
_SINGLE = {
    "norm.linear": ("modulation.lin", 0), "attn.to_q": ("linear1", 0), "attn.to_k": ("linear1", 1),
    "attn.to_v": ("linear1", 2), "proj_mlp": ("linear1", 3), "proj_out": ("linear2", 0),
    "attn.norm_q": ("norm.query_norm", 0), "attn.norm_k": ("norm.key_norm", 0),
}
_TOP = {
    "x_embedder": "img_in", "context_embedder": "txt_in", "controlnet_x_embedder": "pos_embed_input",
    "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
    "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
    "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
}


def from_diffusers_layout(keys) -> dict[str, list[str]]:
    return fused_names(keys, _TOP, {"transformer_blocks": ("double_blocks", _DOUBLE),
                                    "single_transformer_blocks": ("single_blocks", _SINGLE)})


def flux_controlnet_config(shapes: dict[str, tuple]) -> FluxControlNetConfig:
    hidden, in_channels = shapes["img_in.weight"]
    model = flux_config_from_state_dict({**shapes, "final_layer.linear.weight": (in_channels, hidden)})
    return FluxControlNetConfig(model=model, hint_channels=shapes["pos_embed_input.weight"][1])


def load_flux_controlnet(wf, device="cpu", dtype=None) -> FluxControlNet:
    """From a WeightFile in diffusers' layout or ours."""
    if any(k.startswith(("controlnet_mode_embedder.", "input_hint_block.")) for k in wf.shapes):
        raise CheckpointError("Union FLUX ControlNets (controlnet_mode_embedder) and ones with their own hint "
                              "encoder (input_hint_block) are not supported")
    names = from_diffusers_layout(wf.shapes) if "x_embedder.weight" in wf.shapes else {k: [k] for k in wf.shapes}
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
