"""Attention multipliers, as ComfyUI's UNetSelfAttentionMultiply, UNetCrossAttentionMultiply and
CLIPAttentionMultiply: the weights (and biases) of the attention's query, key, value and output
projections are multiplied by q, k, v and out.

UNet: every `attn1` (self-attention) or `attn2` (cross-attention) of the transformer blocks,
to_q / to_k / to_v / to_out.0. CLIP: every text tower's self_attn q_proj / k_proj / v_proj /
out_proj. Scaling q and k together by s sharpens (s > 1) or flattens the attention maps (the
logits scale by s^2); v and out scale the attention's output linearly.

They are weight patches (graphflow.memory.WeightPatch, like LoRAs): the memory manager applies
them to the shared weights when the patched MODEL / CLIP runs, so the input models are unchanged
and the patches survive offloading. An fp8 weight's scaled value is rounded stochastically, seeded
as ComfyUI seeds it: the CRC-32 of the weight's key in ComfyUI's state dict (diffusion_model.*,
clip_l.transformer.*, qwen25_7b.transformer.*, ...), so the picture is ComfyUI's.
"""

import functools
import zlib

import torch

from graphflow.memory import WeightPatch

from .diffusion_model import DiffusionModel

UNET_PROJECTIONS = {"q": "to_q", "k": "to_k", "v": "to_v", "out": "to_out.0"}
CLIP_PROJECTIONS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "out": "out_proj"}


def _scaled(factor: float, weight: torch.Tensor) -> torch.Tensor:
    return weight * factor


def _patch(path: str, factor: float, key_prefix: str) -> WeightPatch:
    """`path` scaled by `factor`, its fp8 rounding seeded by its ComfyUI key (key_prefix + path)."""
    return WeightPatch(path, functools.partial(_scaled, factor), zlib.crc32(f"{key_prefix}{path}".encode()))


def multiplier_patches(module: torch.nn.Module, suffixes: dict[str, str], factors: dict[str, float],
                       key_prefix: str) -> tuple:
    """WeightPatches scaling every parameter of `module` whose owner path ends with
    `.<suffixes[name]>` by factors[name] (factors of 1 are left out: nothing changes);
    `key_prefix`: what ComfyUI's state dict puts before the module's parameter paths."""
    ends = {"." + suffixes[name]: factor for name, factor in factors.items() if factor != 1.0}
    patches = []
    for path, _ in module.named_parameters():
        owner = "." + path.rpartition(".")[0]
        factor = next((f for end, f in ends.items() if owner.endswith(end)), None)
        if factor is not None:
            patches.append(_patch(path, factor, key_prefix))
    return tuple(patches)


def multiply_unet_attention(model: DiffusionModel, which: str, q: float, k: float, v: float,
                            out: float) -> DiffusionModel:
    """which: "attn1" (self-attention) or "attn2" (cross-attention)."""
    suffixes = {name: f"{which}.{proj}" for name, proj in UNET_PROJECTIONS.items()}
    patches = multiplier_patches(model.unet, suffixes, {"q": q, "k": k, "v": v, "out": out}, "diffusion_model.")
    return model.with_patches(model.patches + patches)


def multiply_clip_attention(clip, q: float, k: float, v: float, out: float):
    """The CLIP (TextEncoder / FlowTextEncoder) with every CLIP tower's self-attention scaled
    (T5 has no CLIP towers' layout and is left as it is). Lumina 2's Gemma-2 names its projections
    self_attn.q_proj / k_proj / v_proj too (its output is o_proj): ComfyUI's patch, matching names,
    scales q, k and v there and leaves `out` alone; so too in Qwen-Image's Qwen2.5-VL (biases too).
    HunyuanVideo's: LLaVA-Llama-3's q, k, v (its output is o_proj too) and CLIP-L's four; HiDream's:
    Llama 3.1's q, k, v and CLIP-L's and CLIP-G's four."""
    from .llama import DecoderTextEncoder

    suffixes = {name: f"self_attn.{proj}" for name, proj in CLIP_PROJECTIONS.items()}
    factors = {"q": q, "k": k, "v": v, "out": out}
    if isinstance(clip, DecoderTextEncoder) or (getattr(clip, "arch", None) == "hidream"
                                                and clip.model is not None):  # the language model, then any CLIPs
        prefix = f"{clip.key if isinstance(clip, DecoderTextEncoder) else 'llama'}.transformer."
        clip = clip.with_patches(clip.patches + multiplier_patches(clip.model, suffixes, factors, prefix))
    towers = [tower.with_patches(tower.patches + multiplier_patches(tower.model, suffixes, factors,
                                                                    tower.comfy_key_prefix))
              for tower in clip.towers]
    return clip.with_towers(towers)


def multiply_temporal_attention(model: DiffusionModel, self_structural: float, self_temporal: float,
                                cross_structural: float, cross_temporal: float) -> DiffusionModel:
    """ComfyUI's UNetTemporalAttentionMultiply, for video UNets (SVD): the output projection
    (attn1 / attn2 .to_out.0, weight and bias) of the spatial ("structural") and the temporal
    (`.time_stack.`) transformer blocks' self- and cross-attention scaled by its factor. Any
    other model's attn1 / attn2 output projections are structural (as ComfyUI matches names)."""
    patches = []
    for path, _ in model.unet.named_parameters():
        owner = path.rpartition(".")[0]
        temporal = ".time_stack." in f".{path}"
        if owner.endswith("attn1.to_out.0"):
            factor = self_temporal if temporal else self_structural
        elif owner.endswith("attn2.to_out.0"):
            factor = cross_temporal if temporal else cross_structural
        else:
            continue
        if factor != 1.0:
            patches.append(_patch(path, factor, "diffusion_model."))
    return model.with_patches(model.patches + tuple(patches))
