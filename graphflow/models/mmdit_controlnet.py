"""ControlNets for the SD3 / SD3.5 MM-DiT (diffusers' SD3ControlNetModel layout).

Joint (InstantX's SD3 ControlNets): a copy of the transformer's first joint blocks (none of them
text-pre-only) reads the noisy latent's patch tokens plus the hint's: the hint is a VAE latent,
patch-embedded by a zero-initialised `pos_embed_input`. Single (Stability's SD3.5 large
ControlNets in diffusers' layout): image-only blocks (`blocks.{i}`, one stream's half of a joint
block attending to itself), no text, and the sampled model's own patch embedding and position
table. A zero-initialised linear layer after each block (`controlnet_blocks`) gives one residual;
the MM-DiT adds residual int(i / (depth / n)) to the image tokens after its block i, except after
the last (text-pre-only) block, as diffusers' SD3Transformer2DModel does.

Our layout is the MM-DiT's (graphflow.models.mmdit) plus `controlnet_blocks.{i}` and
`pos_embed_input.proj`; diffusers' layout (`transformer_blocks.*`, `pos_embed.*`,
`time_text_embed.*`) is renamed to it on loading (`from_diffusers_layout`), q, k and v fused.

The joint ones were trained with a zero pooled-text vector and a hint latent scaled but not
shifted (diffusers' pipeline for force_zeros_for_pooled_projection, the default of
SD3ControlNetModel; ComfyUI's "SD3 controlnet weirdness"); the single ones with both as the
sampled model has them. `control` gives each what it expects.

Inpainting (alimama's SD3-Controlnet-Inpainting, diffusers' extra_conditioning_channels=1): a
joint ControlNet whose hint is the masked image's latent (masked pixels black) plus the mask of
the part to keep as a 17th channel. Its pipeline (diffusers'
StableDiffusion3ControlNetInpaintingPipeline, alimama's own) gives it a zero pooled vector and
the latent shifted and scaled; ComfyUI does not shift it, we follow the pipeline it was trained
with.
"""

from dataclasses import dataclass, replace

import torch
from torch import nn

from .cast_layers import Linear
from .diffusers_names import SD3_JOINT_BLOCK, SD3_SINGLE_BLOCK, SD3_TOP, fused_names, fused_shapes
from .mmdit import (Block, JointBlock, MMDiT, MMDiTConfig, PatchEmbed, joint_attention,
                    mmdit_config_from_state_dict, pad_to_patches, timestep_embedding)
from .weight_files import CheckpointError


@dataclass(frozen=True)
class MMDiTControlNetConfig:
    model: MMDiTConfig  # depth: the ControlNet's own blocks
    hint_channels: int = 16  # the hint latent's channels (more for inpainting ControlNets)
    joint: bool = True  # False: SD3.5 large's image-only blocks on the model's own patch embedding


class MMDiTControlNet(MMDiT):
    needs_vae = True  # the hint is a latent

    def __init__(self, config: MMDiTControlNetConfig):
        super().__init__(config.model)
        cfg = config.model
        del self.final_layer
        self.control_config = config
        if config.joint:
            self.joint_blocks = nn.ModuleList(JointBlock(cfg, i, pre_only=False) for i in range(cfg.depth))
        else:
            del self.joint_blocks, self.x_embedder, self.pos_embed, self.context_embedder
            self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.controlnet_blocks = nn.ModuleList(Linear(cfg.hidden_size, cfg.hidden_size) for _ in range(cfg.depth))
        self.pos_embed_input = PatchEmbed(replace(cfg, in_channels=config.hint_channels))

    @property
    def dtype(self) -> torch.dtype:
        return self.pos_embed_input.proj.weight.dtype

    @property
    def concat_mask(self) -> bool:
        """An inpainting ControlNet: the kept-part mask follows the latent as one more hint channel."""
        return self.control_config.hint_channels == self.config.in_channels + 1

    def forward(self, x, hint, sigma, context, y, base: MMDiT | None = None, **unused) -> list[torch.Tensor]:
        """x [B, C, H, W] and the hint latent [B, hint_channels, H, W] -> one residual per block
        [B, H/p * W/p, hidden]. base: the sampled MM-DiT (single ControlNets use its patch embedding)."""
        p, (H, W) = self.config.patch_size, x.shape[-2:]
        if H % p or W % p:
            x, hint = pad_to_patches(x, p), pad_to_patches(hint, p)
        outs = []
        if self.control_config.joint:
            tokens, c, context = self.embed(x, sigma, context, y)
            tokens = tokens + self.pos_embed_input(hint.to(tokens.dtype))
            for block, out in zip(self.joint_blocks, self.controlnet_blocks):
                context, tokens = block(context, tokens, c)
                outs.append(out(tokens))
            return outs
        if base is None or base.config.hidden_size != self.config.hidden_size:
            raise ValueError(f"this SD3.5 ControlNet ({self.config.hidden_size} wide) runs on its MM-DiT's patch "
                             f"embedding: it needs an SD3.5 model of the same width (SD3.5 large)")
        tokens = base.x_embedder(x) + base.cropped_pos_embed(x.shape[-2] // p, x.shape[-1] // p).to(x.dtype)
        tokens = tokens + self.pos_embed_input(hint.to(tokens.dtype))
        c = self.t_embedder(timestep_embedding(sigma * 1000).to(x.dtype)) + self.y_embedder(y.to(x.dtype))
        for block, out in zip(self.blocks, self.controlnet_blocks):
            qkv, _, mods = block.pre_attention(tokens, c)
            tokens = block.post_attention(tokens, joint_attention(*qkv), None, mods)
            outs.append(out(tokens))
        return outs

    def control(self, applied, x, sigma, context, y, model_config=None, base=None, **unused) -> dict:
        """Residuals for an MM-DiT of model_config's depth: {"output": one per block, None after the last}."""
        joint = self.control_config.joint
        if model_config is not None and not isinstance(model_config, MMDiTConfig):
            raise ValueError(f"this is an SD3 ControlNet; the model being sampled is not SD3 "
                             f"({type(model_config).__name__})")
        if joint and context is not None and context.shape[-1] != self.config.context_dim:
            raise ValueError(f"this SD3 ControlNet was made for {self.config.context_dim}-wide text embeddings, "
                             f"the model being sampled gives {context.shape[-1]}")
        if self.dtype != x.dtype or self.pos_embed_input.proj.weight.device != x.device:
            self.to(x.device, x.dtype)
        inpainting = self.concat_mask
        hint = applied.latent_hint(x.shape[2], x.shape[3], x.shape[0], x.device, x.dtype,
                                   shift=not joint or inpainting)
        if inpainting:
            hint = torch.cat([hint, applied.mask_hint(x.shape[2], x.shape[3], x.shape[0], x.device, x.dtype)], dim=1)
        if hint.shape[1] != self.control_config.hint_channels:
            raise ValueError(f"this ControlNet reads a {self.control_config.hint_channels - inpainting}-channel "
                             f"latent hint, the VAE gives {hint.shape[1] - inpainting} channels")
        outs = self(x, hint, sigma, context, torch.zeros_like(y) if joint else y, base)
        depth = model_config.depth if model_config is not None else len(outs)
        every = depth / len(outs)
        return {"output": [outs[int(i / every)] if i < depth - 1 else None for i in range(depth)]}


def from_diffusers_layout(keys) -> dict[str, list[str]]:
    keys = list(keys)
    joint = "transformer_blocks.0.attn.add_q_proj.weight" in keys
    blocks = ("joint_blocks", SD3_JOINT_BLOCK) if joint else ("blocks", SD3_SINGLE_BLOCK)
    return fused_names(keys, {**SD3_TOP, "pos_embed.pos_embed": "pos_embed"}, {"transformer_blocks": blocks})


def mmdit_controlnet_config(shapes: dict[str, tuple]) -> MMDiTControlNetConfig:
    """The config from our-layout shapes: joint ones through the MM-DiT's reader (with the final
    layer they lack); single ones from their blocks (heads of 64, as every SD3 has)."""
    hidden, hint_channels, patch, _ = shapes["pos_embed_input.proj.weight"]
    if "joint_blocks.0.context_block.attn.qkv.weight" in shapes:
        if "pos_embed" not in shapes:
            raise CheckpointError("a joint-block SD3 ControlNet needs its position table ('pos_embed')")
        in_channels = shapes["x_embedder.proj.weight"][1]
        model = mmdit_config_from_state_dict({**shapes,
                                              "final_layer.linear.weight": (patch * patch * in_channels, hidden)})
        return MMDiTControlNetConfig(model=model, hint_channels=hint_channels)
    ln_q = shapes.get("blocks.0.attn.ln_q.weight")
    head_dim = ln_q[0] if ln_q else 64
    model = MMDiTConfig(patch_size=patch, hidden_size=hidden, num_heads=hidden // head_dim, qk_norm=ln_q is not None,
                        depth=1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("blocks.")),
                        mlp_ratio=shapes["blocks.0.mlp.fc1.weight"][0] / hidden,
                        adm_in_channels=shapes["y_embedder.mlp.0.weight"][1])
    return MMDiTControlNetConfig(model=model, hint_channels=hint_channels, joint=False)


def load_mmdit_controlnet(wf, device="cpu", dtype=None) -> MMDiTControlNet:
    """From a WeightFile in diffusers' layout or ours."""
    if "control_type" in wf.shapes or "transformer_blocks.0.adaLN_modulation.1.bias" in wf.shapes:
        # ComfyUI reads these (its ControlNetEmbedder, with a canny / depth preprocessing chosen by
        # control_type); their layout and rules are not implemented here
        raise CheckpointError("this is Stability's original SD3.5 ControlNet layout (keys 'control_type', "
                              "'transformer_blocks.*.adaLN_modulation'), which graphflow does not read yet; "
                              "the diffusers-layout file of the same ControlNet (diffusion_pytorch_model"
                              ".safetensors) loads")
    diffusers = "time_text_embed.timestep_embedder.linear_1.weight" in wf.shapes
    names = from_diffusers_layout(wf.shapes) if diffusers else {k: [k] for k in wf.shapes}
    shapes = fused_shapes(wf.shapes, names)
    try:
        config = mmdit_controlnet_config(shapes)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"the SD3 ControlNet's layout could not be read from its weights ({e})") from None
    with torch.device("meta"):
        net = MMDiTControlNet(config)
    state = {k: torch.cat([wf.get(t, device, dtype) for t in ts]) if len(ts) > 1 else wf.get(ts[0], device, dtype)
             for k, ts in names.items()}
    return assign(net, state)


def assign(net: nn.Module, state: dict) -> nn.Module:
    expected = net.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(f"ControlNet weights do not match the layout read from them: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}, wrong shape {wrong[:5]}")
    net.load_state_dict(state, assign=True)
    return net.eval().requires_grad_(False)
