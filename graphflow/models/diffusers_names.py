"""diffusers' key names -> the LDM (single-file) names graphflow's modules use.

One place for the renaming that diffusers-format weights need: UNet2DConditionModel (and the
UNet half of a ControlNetModel, graphflow.models.controlnet), AutoencoderKL, and the flow
transformers SD3Transformer2DModel (-> Stability's MM-DiT names) and FluxTransformer2DModel (->
BFL's), whose block tables the diffusers-layout ControlNets share (graphflow.models.mmdit_controlnet,
flux_controlnet). CLIP and T5 text models are stored by diffusers in transformers' own layout,
which graphflow.models.text_encoders and t5 read as it is.
"""

import re

import torch

from .weight_files import CheckpointError, RenamedView

# diffusers' ResnetBlock2D names -> the LDM ResBlock's
RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
          "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


class UNetLevels:
    """What the renaming needs to know of a diffusers UNet's structure, read off its key names:
    ResBlocks per down level and per up level, and which up levels have attention."""

    def __init__(self, keys):
        self.down, self.up, self.up_attention = {}, {}, set()
        for k in keys:
            parts = k.split(".")
            if parts[0] in ("down_blocks", "up_blocks") and len(parts) > 3 and parts[2] == "resnets":
                counts = self.down if parts[0] == "down_blocks" else self.up
                counts[int(parts[1])] = max(counts.get(int(parts[1]), 0), int(parts[3]) + 1)
            if parts[0] == "up_blocks" and len(parts) > 2 and parts[2] == "attentions":
                self.up_attention.add(int(parts[1]))


def _resnet(names: list[str]) -> str:
    return ".".join([RESNET.get(names[0], names[0])] + names[1:])


def unet_key(key: str, levels: UNetLevels) -> str:
    """One diffusers UNet2DConditionModel key -> its LDM name; KeyError for keys the UNet has no place for."""
    parts = key.split(".")
    head, rest = parts[0], parts[1:]
    if head == "conv_in":
        return "input_blocks.0.0." + ".".join(rest)
    if head in ("conv_norm_out", "conv_out"):
        return ("out.0." if head == "conv_norm_out" else "out.2.") + ".".join(rest)
    if key == "class_embedding.weight":  # a class-label table (the x4 upscaler's noise level), not a projection
        return "label_emb.weight"
    if head in ("time_embedding", "add_embedding"):
        layer = {"linear_1": "0", "linear_2": "2"}[rest[0]]
        return ("time_embed." if head == "time_embedding" else "label_emb.0.") + layer + "." + ".".join(rest[1:])
    if head == "down_blocks":
        level, kind, i = int(rest[0]), rest[1], int(rest[2])
        block = 1 + sum(levels.down[lv] + 1 for lv in range(level))
        if kind == "downsamplers":
            return f"input_blocks.{block + levels.down[level]}.0.op." + ".".join(rest[4:])
        if kind == "resnets":
            return f"input_blocks.{block + i}.0." + _resnet(rest[3:])
        if kind == "attentions":
            return f"input_blocks.{block + i}.1." + ".".join(rest[3:])
    if head == "mid_block":
        kind, i = rest[0], int(rest[1])
        if kind == "resnets":
            return f"middle_block.{2 * i}." + _resnet(rest[2:])
        if kind == "attentions":
            return "middle_block.1." + ".".join(rest[2:])
    if head == "up_blocks":
        level, kind, i = int(rest[0]), rest[1], int(rest[2])
        block = sum(levels.up[lv] for lv in range(level))
        if kind == "upsamplers":
            last = block + levels.up[level] - 1
            return f"output_blocks.{last}.{2 if level in levels.up_attention else 1}." + ".".join(rest[3:])
        if kind == "resnets":
            return f"output_blocks.{block + i}.0." + _resnet(rest[3:])
        if kind == "attentions":
            return f"output_blocks.{block + i}.1." + ".".join(rest[3:])
    raise KeyError(key)


def unet_names(keys) -> dict[str, str]:
    """{LDM name: diffusers key} for a diffusers UNet2DConditionModel state dict; KeyError names
    the first key with no place in the LDM UNet."""
    keys = list(keys)
    levels = UNetLevels(keys)
    return {unet_key(k, levels): k for k in keys}


_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out",
             "query": "q", "key": "k", "value": "v", "proj_attn": "proj_out"}


def vae_key(key: str, num_up_blocks: int) -> str | None:
    """A diffusers AutoencoderKL key -> the LDM key (None for keys LDM has no place for)."""
    rules = [
        (r"^(encoder|decoder)\.conv_norm_out\.", lambda m: f"{m[1]}.norm_out."),
        (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"encoder.down.{m[1]}.block.{m[2]}."),
        (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.", lambda m: f"encoder.down.{m[1]}.downsample.conv."),
        (r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
         lambda m: f"decoder.up.{num_up_blocks - 1 - int(m[1])}.block.{m[2]}."),
        (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.",
         lambda m: f"decoder.up.{num_up_blocks - 1 - int(m[1])}.upsample.conv."),
        (r"^(encoder|decoder)\.mid_block\.resnets\.(\d)\.", lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}."),
        (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0|query|key|value|proj_attn)\.",
         lambda m: f"{m[1]}.mid.attn_1.{_VAE_ATTN[m[2]]}."),
        (r"^(encoder|decoder)\.(conv_in|conv_out)\.", lambda m: m[0]),
        (r"^(quant_conv|post_quant_conv)\.", lambda m: m[0]),
    ]
    for pattern, target in rules:
        m = re.match(pattern, key)
        if m:
            return (target(m) + key[m.end():]).replace(".conv_shortcut.", ".nin_shortcut.")
    return None


def vae_view(source) -> RenamedView:
    """A diffusers-layout VAE with LDM names (1x1 attention weights as conv kernels)."""
    ups = {int(k.split(".")[2]) for k in source.shapes if k.startswith("decoder.up_blocks.")}
    names, shapes = {}, {}
    for key, shape in source.shapes.items():
        ldm = vae_key(key, len(ups))
        if ldm is None:
            continue
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and len(shape) == 2:
            shape = (*shape, 1, 1)
        names[ldm], shapes[ldm] = key, tuple(shape)
    return RenamedView(source, names, shapes)


# -- the flow transformers (SD3's MM-DiT, FLUX) and their diffusers-layout ControlNets --------------

# diffusers' JointTransformerBlock names -> ours (and the part of a fused q, k, v)
SD3_JOINT_BLOCK = {
    "norm1.linear": ("x_block.adaLN_modulation.1", 0), "norm1_context.linear": ("context_block.adaLN_modulation.1", 0),
    "attn.to_q": ("x_block.attn.qkv", 0), "attn.to_k": ("x_block.attn.qkv", 1), "attn.to_v": ("x_block.attn.qkv", 2),
    "attn.add_q_proj": ("context_block.attn.qkv", 0), "attn.add_k_proj": ("context_block.attn.qkv", 1),
    "attn.add_v_proj": ("context_block.attn.qkv", 2),
    "attn.to_out.0": ("x_block.attn.proj", 0), "attn.to_add_out": ("context_block.attn.proj", 0),
    "attn.norm_q": ("x_block.attn.ln_q", 0), "attn.norm_k": ("x_block.attn.ln_k", 0),
    "attn.norm_added_q": ("context_block.attn.ln_q", 0), "attn.norm_added_k": ("context_block.attn.ln_k", 0),
    "attn2.to_q": ("x_block.attn2.qkv", 0), "attn2.to_k": ("x_block.attn2.qkv", 1),
    "attn2.to_v": ("x_block.attn2.qkv", 2), "attn2.to_out.0": ("x_block.attn2.proj", 0),
    "attn2.norm_q": ("x_block.attn2.ln_q", 0), "attn2.norm_k": ("x_block.attn2.ln_k", 0),
    "ff.net.0.proj": ("x_block.mlp.fc1", 0), "ff.net.2": ("x_block.mlp.fc2", 0),
    "ff_context.net.0.proj": ("context_block.mlp.fc1", 0), "ff_context.net.2": ("context_block.mlp.fc2", 0),
}
# diffusers' SD3SingleTransformerBlock (SD3.5 large ControlNets) names -> our Block's
SD3_SINGLE_BLOCK = {
    "norm1.linear": ("adaLN_modulation.1", 0), "attn.to_q": ("attn.qkv", 0), "attn.to_k": ("attn.qkv", 1),
    "attn.to_v": ("attn.qkv", 2), "attn.to_out.0": ("attn.proj", 0), "attn.norm_q": ("attn.ln_q", 0),
    "attn.norm_k": ("attn.ln_k", 0), "ff.net.0.proj": ("mlp.fc1", 0), "ff.net.2": ("mlp.fc2", 0),
}
# diffusers' SD3 embedders (and its ControlNets' hint input) -> Stability's
SD3_TOP = {
    "pos_embed.proj": "x_embedder.proj", "pos_embed_input.proj": "pos_embed_input.proj",
    "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
    "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
    "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
    "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2", "context_embedder": "context_embedder",
}


# diffusers' FluxTransformerBlock (double) names -> BFL's
FLUX_DOUBLE_BLOCK = {
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
# diffusers' FluxSingleTransformerBlock names -> BFL's
FLUX_SINGLE_BLOCK = {
    "norm.linear": ("modulation.lin", 0), "attn.to_q": ("linear1", 0), "attn.to_k": ("linear1", 1),
    "attn.to_v": ("linear1", 2), "proj_mlp": ("linear1", 3), "proj_out": ("linear2", 0),
    "attn.norm_q": ("norm.query_norm", 0), "attn.norm_k": ("norm.key_norm", 0),
}
# diffusers' FLUX embedders (and its ControlNets' extra inputs) -> BFL's
FLUX_TOP = {
    "x_embedder": "img_in", "context_embedder": "txt_in", "controlnet_x_embedder": "pos_embed_input",
    "controlnet_mode_embedder": "controlnet_mode_embedder",
    "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
    "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
    "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
}


def fused_names(keys, top: dict, block_prefixes: dict[str, tuple[str, dict]],
                what: str = "a diffusers-layout ControlNet") -> dict[str, list[str]]:
    """{our key: [diffusers keys, concatenated in this order along dim 0]}. top: diffusers stem ->
    ours; block_prefixes: diffusers block list -> (our block list, {stem: (our stem, part)})."""
    parts: dict[str, dict[int, str]] = {}
    for key in keys:
        stem, param = key.rsplit(".", 1)
        name = None
        if stem in top:
            name = f"{top[stem]}.{param}"
        elif key in top:
            name = top[key]
        else:
            head, index, rest = (stem.split(".", 2) + ["", ""])[:3]
            if head in block_prefixes and rest in block_prefixes[head][1]:
                ours, part = block_prefixes[head][1][rest]
                param = "scale" if ours.endswith("_norm") and param == "weight" else param
                parts.setdefault(f"{block_prefixes[head][0]}.{index}.{ours}.{param}", {})[part] = key
                continue
            if head in ("controlnet_blocks", "controlnet_single_blocks"):
                name = key
        if name is None:
            raise CheckpointError(f"unexpected key {key!r} in {what}")
        parts.setdefault(name, {})[0] = key
    return {k: [v[i] for i in sorted(v)] for k, v in parts.items()}


def fused_shapes(shapes: dict, names: dict[str, list[str]]) -> dict[str, tuple]:
    out = {}
    for ours, theirs in names.items():
        first = tuple(shapes[theirs[0]])
        out[ours] = (sum(shapes[k][0] for k in theirs), *first[1:]) if first else first
    return out


# diffusers' output layer -> ours (its norm_out rows are (scale, shift): swapped back on reading)
_FINAL = {"norm_out.linear": "final_layer.adaLN_modulation.1", "proj_out": "final_layer.linear"}


def transformer_view(source, arch: str) -> RenamedView:
    """A diffusers SD3Transformer2DModel ("sd3") or FluxTransformer2DModel ("flux") under
    graphflow's names (Stability's / BFL's, as their single files have them): q, k, v (and FLUX's
    single-block MLP input) fused, and the rows diffusers' single-file converter swaps into
    (scale, shift) order -- norm_out, and SD3's last text block (context_pre_only) -- swapped back."""
    keys = list(source.shapes)
    what = "a diffusers SD3Transformer2DModel" if arch == "sd3" else "a diffusers FluxTransformer2DModel"
    if arch == "sd3":
        names = fused_names(keys, {**SD3_TOP, "pos_embed.pos_embed": "pos_embed", **_FINAL},
                            {"transformer_blocks": ("joint_blocks", SD3_JOINT_BLOCK)}, what)
        last = max((int(k.split(".")[1]) for k in keys if k.startswith("transformer_blocks.")), default=0)
        swap = ("final_layer.adaLN_modulation.1.", f"joint_blocks.{last}.context_block.adaLN_modulation.1.")
    else:
        names = fused_names(keys, {**FLUX_TOP, **_FINAL}, {"transformer_blocks": ("double_blocks", FLUX_DOUBLE_BLOCK),
                                                           "single_transformer_blocks": ("single_blocks", FLUX_SINGLE_BLOCK)},
                            what)
        swap = ("final_layer.adaLN_modulation.1.",)
    return RenamedView(source, names, fused_shapes(source.shapes, names), [n for n in names if n.startswith(swap)])


# -- AuraFlow (diffusers' AuraFlowTransformer2DModel -> fal's names) ---------------------------------

def aura_flow_view(source) -> RenamedView:
    """A diffusers AuraFlowTransformer2DModel file under fal's / ComfyUI's names (ComfyUI's UNETLoader reads
    these too): one to one, norm_out's (scale, shift) rows swapped back into modF's (shift, scale)."""
    from .configs import AuraFlowConfig, _count_blocks
    from .flow_lora_names import aura_flow_names

    double = _count_blocks(source.shapes, "joint_transformer_blocks.")
    layers = AuraFlowConfig(n_double_layers=double,
                            n_layers=double + _count_blocks(source.shapes, "single_transformer_blocks."))
    names = {"positional_encoding": "pos_embed.pos_embed", "register_tokens": "register_tokens",
             "init_x_linear.bias": "pos_embed.proj.bias", "t_embedder.mlp.0.bias": "time_step_proj.linear_1.bias",
             "t_embedder.mlp.2.bias": "time_step_proj.linear_2.bias"}
    swapped = []
    for theirs, (ours, rows) in aura_flow_names(layers).items():
        names[ours + ".weight"] = theirs + ".weight"
        if rows is not None:  # norm_out.linear
            swapped.append(ours + ".weight")
    missing = sorted(old for old in names.values() if old not in source.shapes)
    if missing:
        raise CheckpointError(f"a diffusers AuraFlowTransformer2DModel without {', '.join(missing[:4])}"
                              + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
    return RenamedView(source, names, swapped=swapped)


# -- PixArt-α / Σ (diffusers' PixArtTransformer2DModel -> the original PixArt names) ---------------

PIXART_BLOCK = {
    "attn1.to_q": ("attn.qkv", 0), "attn1.to_k": ("attn.qkv", 1), "attn1.to_v": ("attn.qkv", 2),
    "attn1.to_out.0": ("attn.proj", 0), "attn2.to_q": ("cross_attn.q_linear", 0),
    "attn2.to_k": ("cross_attn.kv_linear", 0), "attn2.to_v": ("cross_attn.kv_linear", 1),
    "attn2.to_out.0": ("cross_attn.proj", 0), "ff.net.0.proj": ("mlp.fc1", 0), "ff.net.2": ("mlp.fc2", 0),
}
PIXART_TOP = {
    "pos_embed.proj": "x_embedder.proj",
    "adaln_single.emb.timestep_embedder.linear_1": "t_embedder.mlp.0",
    "adaln_single.emb.timestep_embedder.linear_2": "t_embedder.mlp.2",
    "adaln_single.emb.resolution_embedder.linear_1": "csize_embedder.mlp.0",
    "adaln_single.emb.resolution_embedder.linear_2": "csize_embedder.mlp.2",
    "adaln_single.emb.aspect_ratio_embedder.linear_1": "ar_embedder.mlp.0",
    "adaln_single.emb.aspect_ratio_embedder.linear_2": "ar_embedder.mlp.2",
    "adaln_single.linear": "t_block.1",
    "caption_projection.linear_1": "y_embedder.y_proj.fc1", "caption_projection.linear_2": "y_embedder.y_proj.fc2",
    "proj_out": "final_layer.linear",
}


def pixart_names(keys) -> dict[str, list[str]]:
    """{original PixArt name: [diffusers keys, concatenated]} for a PixArtTransformer2DModel's keys."""
    tables = {k: "final_layer.scale_shift_table" if k == "scale_shift_table" else k.replace("transformer_blocks.", "blocks.")
              for k in keys if k.endswith("scale_shift_table")}  # bare parameters, no layer stem
    names = fused_names([k for k in keys if k not in tables], PIXART_TOP,
                        {"transformer_blocks": ("blocks", PIXART_BLOCK)}, "a diffusers PixArtTransformer2DModel")
    names.update({ours: [theirs] for theirs, ours in tables.items()})
    return names


def pixart_view(source) -> RenamedView:
    """A diffusers PixArtTransformer2DModel (its safetensors as one file) under the original
    PixArt names: self-attention q, k, v fused into qkv, cross-attention k, v into kv_linear."""
    names = pixart_names(list(source.shapes))
    return RenamedView(source, names, fused_shapes(source.shapes, names))
