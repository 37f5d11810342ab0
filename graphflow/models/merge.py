"""Weight merging of two MODELs (their UNets) or two CLIPs, as ComfyUI's ModelMerge* / CLIPMerge*:
every parameter becomes

    w = w1 * a + w2 * b        Simple: (ratio, 1 - ratio)   Add: (1, 1)   Subtract: (m, -m)

with (a, b) per parameter for block-wise merges. The result is a new object whose merged
parameters are new tensors (computed in float32, stored in model1's dtype and device) and whose
other parameters are model1's, shared: the inputs are never modified, so cached results that
hold them stay valid. Both must be of one family (an SD1 UNet is not merged with an SDXL one);
within it, weights merge by name as ComfyUI's key patches do: a layer only model1 has keeps its
weight as it is (FLUX dev's guidance_in merged with schnell, which has none), one only model2
has is unused, and a layer whose sizes differ (an inpainting model's 9-channel conv_in against
a 4-channel one) becomes w1 * a; each with a warning. Weights of ComfyUI's
scaled fp8 files (graphflow.models.cast_layers) are merged as weight x scale_weight, and a merged
one stored in fp8 goes back over model1's scale.
"""

from collections.abc import Callable

import torch
from torch import nn

from graphflow.memory import manager

from .diffusion_model import DiffusionModel
from .lora import copied_modules, patched_copy
from .text_encoders import TextEncoder


class MergeError(ValueError):
    """The two models can't be merged (different architectures or sizes)."""


Factors = Callable[[str], tuple[float, float]]  # parameter name -> (a, b)
# (name, first's weight, second's weight or None where it has none) -> the second's weight to merge
# (None: none), for merges that fit one to the other (art-venture's padded inpainting conv_in)
Fit = Callable[[str, torch.Tensor, torch.Tensor | None], torch.Tensor | None]


def _parameters(module: nn.Module, patches: tuple) -> dict:
    """The parameters, and the float buffers the files hold (SD3's position table), as patched."""
    state = manager().weights(module, patches)
    names = [name for name, _ in module.named_parameters()]
    names += [name for name, b in module.named_buffers() if b.is_floating_point() and name in state
              and not name.endswith((".scale_weight", ".scale_input"))]  # they go with their weights
    return {name: state[name] for name in names}


def _scales(module: nn.Module) -> dict[str, torch.Tensor]:
    """weight name -> scale_weight, for the layers of a scaled fp8 file."""
    return {f"{name}.weight": m.scale_weight for name, m in module.named_modules()
            if getattr(m, "scale_weight", None) is not None}


def _true(weight: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    from .cast_layers import scaled

    return weight.float() if scale is None else scaled(weight.float(), scale.to(weight.device, torch.float32))


def merge_modules(first: nn.Module, second: nn.Module, factors: Factors, what: str = "model",
                  patches: tuple[tuple, tuple] = ((), ()), fit: Fit | None = None) -> nn.Module:
    """`first` with its parameters merged with `second`'s, each taken with its weight patches
    (LoRAs): the result has them merged in and takes no patches. `fit` gives the second's weight
    to merge for each of the first's (see Fit)."""
    params1, params2 = _parameters(first, patches[0]), _parameters(second, patches[1])
    only1, only2 = [], sorted(set(params2) - set(params1))
    scales1, scales2 = _scales(first), _scales(second)
    weights, unmerged = {}, []
    for name, w1 in params1.items():
        w2 = params2.get(name) if fit is None else fit(name, w1, params2.get(name))
        if w2 is None:
            only1.append(name)
        a, b = factors(name) if w2 is not None else (1.0, 0.0)  # no patch from the second: w1 as it is
        if w2 is not None and w1.shape != w2.shape:  # an inpainting model's 9-channel conv_in against a 4-channel one:
            unmerged.append(f"{name} {tuple(w1.shape)} != {tuple(w2.shape)}")
            b = 0.0  # ComfyUI scales the first's weight by its factor and adds nothing
        if a == 1.0 and b == 0.0:
            if any(p.param == name for p in patches[0]):
                weights[name] = w1  # the first's patched weight: its network holds the original
            continue  # unchanged: keep sharing the first's tensor
        merged = _true(w1, scales1.get(name)) * a
        if b != 0.0:
            merged = merged + _true(w2.to(w1.device), scales2.get(name)) * b
        if name in scales1:  # back over the first's scale, within the fp8 type's range
            limit = torch.finfo(w1.dtype).max
            merged = (_true(merged, 1 / scales1[name].float())).clamp(-limit, limit)
        weights[name] = merged.to(w1.dtype)
    if unmerged or only1 or only2:
        from graphflow.context import warn

        if unmerged:
            warn(f"{what}: {len(unmerged)} layer(s) of different sizes not merged (the first's weight times its "
                 f"factor kept, as ComfyUI does): {', '.join(unmerged[:3])}")
        if only1 or only2:
            warn(f"{what}: merged by name, as ComfyUI does: {len(only1)} weight(s) only the first has kept as they "
                 f"are {sorted(only1)[:3]}, {len(only2)} only the second has unused {only2[:3]}")
    return patched_copy(first, weights)


def merge_models(model1: DiffusionModel, model2: DiffusionModel, factors: Factors,
                 fit: Fit | None = None) -> DiffusionModel:
    if model1.arch != model2.arch:
        raise MergeError(f"can't merge a {model1.arch} model with a {model2.arch} model")
    merged = merge_modules(model1.unet, model2.unet, factors, "UNet", (model1.patches, model2.patches), fit)
    return model1.with_unet(merged).with_patches(())


def merge_clips(clip1: TextEncoder, clip2: TextEncoder, factors: Factors) -> TextEncoder:
    from .llama import DecoderTextEncoder

    if isinstance(clip1, DecoderTextEncoder) or isinstance(clip2, DecoderTextEncoder):
        # Lumina 2's Gemma-2, Qwen-Image's Qwen2.5-VL, HunyuanVideo's LLaVA-Llama-3 (its CLIP-L below)
        if type(clip1) is not type(clip2):
            raise MergeError(f"can't merge a {clip1.arch} text encoder with a {clip2.arch} one")
        model = _pinned_like(clip1.model, merge_modules(clip1.model, clip2.model, factors, f"text encoder {clip1.key}",
                                                        (clip1.patches, clip2.patches)))
        clip1 = clip1._clone(model=model, patches=())
        byt5_1, byt5_2 = getattr(clip1, "byt5", None), getattr(clip2, "byt5", None)
        if byt5_1 is not None and byt5_2 is not None:  # HunyuanImage's byT5 merges by name too
            clip1 = clip1._clone(byt5=_merged_t5(byt5_1, byt5_2, factors, "byt5_small"))
    # ComfyUI patches clip1's weights by name with clip2's (clip_l.*, clip_g.*, t5xxl.*): encoders of
    # the same name merge whatever the families (SDXL's CLIP-L into SD1's), the others stay as they are
    others = {t.name: t for t in clip2.towers}
    towers = [t1 if t1.name not in others else
              t1.with_model(_pinned_like(t1.model, merge_modules(t1.model, others[t1.name].model, factors,
                                                                 f"text encoder {t1.name}",
                                                                 (t1.patches, others[t1.name].patches))))
              for t1 in clip1.towers]
    merged = clip1.with_towers(towers)
    t5_1, t5_2 = getattr(clip1, "t5", None), getattr(clip2, "t5", None)
    if t5_1 is not None and t5_2 is not None:  # SD3 / FLUX: ComfyUI merges every weight of the CLIP, T5's too
        merged = merged.with_t5(_merged_t5(t5_1, t5_2, factors, "t5xxl"))
    llama_1, llama_2 = _hidream_llama(clip1), _hidream_llama(clip2)
    if llama_1 is not None and llama_2 is not None:  # HiDream's Llama 3.1 merges by name too
        llama = _pinned_like(llama_1, merge_modules(llama_1, llama_2, factors, "text encoder llama",
                                                    (clip1.patches, clip2.patches)))
        merged = merged.with_patches(())  # a new encoder object: its Llama is set below
        merged.model = llama
    return merged


def _merged_t5(t5_1, t5_2, factors: Factors, name: str):
    """The merge of two T5 encoders (`name`: t5xxl, HunyuanImage's byt5_small), each with its LoRAs
    (merged in: the result takes none)."""
    t5 = t5_1.with_patches(())
    t5.model = _pinned_like(t5_1.model, _retied(t5_1.model, merge_modules(t5_1.model, t5_2.model, factors,
                                                                         f"text encoder {name}",
                                                                         (t5_1.patches, t5_2.patches))))
    return t5


def _hidream_llama(clip):
    from .hidream_text import HiDreamTextEncoder

    return clip.model if isinstance(clip, HiDreamTextEncoder) else None


def _pinned_like(first: nn.Module, merged: nn.Module) -> nn.Module:
    """The merge of an encoder kept on the CPU (CLIPLoader's device "cpu") stays there too, as
    ComfyUI's clone keeps clip1's devices: it shares the first's unmerged Parameters, which a
    load of the merge onto the GPU would take along."""
    if manager().is_pinned(first):
        manager().pin_to_cpu(merged, "text_encoder")
    return merged


def shared_encoders(clip1, clip2) -> list[str]:
    """The text encoders (by name) that a CLIP merge of clip2 into clip1 changes."""
    def names(clip) -> list[str]:
        return [t.name for t in clip.towers] + (["t5xxl"] if getattr(clip, "t5", None) is not None else []) + (
            ["llama"] if _hidream_llama(clip) is not None else []) + [n for n, _ in getattr(clip, "extra_encoders", [])]

    theirs = set(names(clip2))
    return [n for n in names(clip1) if n in theirs]


def _retied(original: nn.Module, t5: nn.Module) -> nn.Module:
    """T5's encoder reads the token embedding through encoder.embed_tokens, the same module as
    `shared`: a merged copy has a new `shared`, so its encoder must point at that one."""
    if original.encoder.embed_tokens is not original.shared or t5.encoder.embed_tokens is t5.shared:
        return t5
    clone, owners = copied_modules(t5, {"encoder"})
    owners["encoder"]._modules["embed_tokens"] = clone.shared
    return clone


def block_factors(ratios: dict[str, float], default: float) -> Factors:
    """ModelMergeBlocks' rule: the ratio of the longest prefix that the parameter name starts with
    (`default` if none); the result is ratio * model1 + (1 - ratio) * model2."""
    def factors(name: str) -> tuple[float, float]:
        ratio, best = default, 0
        for prefix, value in ratios.items():
            if name.startswith(prefix) and len(prefix) > best:
                ratio, best = value, len(prefix)
        return ratio, 1.0 - ratio

    return factors
