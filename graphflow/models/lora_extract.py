"""A LoRA file from a model difference (ModelMergeSubtract / CLIPMergeSubtract output), as
ComfyUI's LoraSave writes it, in ComfyUI's own key layout (which our LoRA reader takes):

    diffusion_model.<UNet parameter path without .weight>.<part>
    text_encoders.<tower: clip_l / clip_g / clip_h>.transformer.<transformers path>.<part>
    text_encoders.<t5xxl / umt5xxl>.transformer.<T5EncoderModel path>.<part>

lora_type "standard": every weight with 2 to 4 dimensions (linear, conv, embedding) becomes
`lora_up.weight` [out, r(, 1, 1)] / `lora_down.weight` [r, in(, kh, kw)]: the truncated SVD of the
weight flattened to [out, in*kh*kw], U·S as up and Vh as down; then both factors are clamped to
±(the 0.99 quantile of all their entries), as ComfyUI does to keep outliers from dominating.
r = min(rank, out, in) with `in` the input channels, as ComfyUI caps it, for convs too: a 3×3
conv with fewer input than output channels (SD's conv_in at rank > 4) keeps only part of its
difference even at full rank. Weights of 5 dimensions (Conv3d: Wan's patch embedding, SVD's
temporal convs) are left out with a warning, as ComfyUI's extraction fails on them and skips them.
1-D weights (norms) are written whole as `.diff`, and only when bias_diff is set.
lora_type "full_diff": every weight whole as `.diff`.
bias_diff: every bias whole as `.diff_b`.
Everything is stored as float16 (as ComfyUI does).
"""

import torch

from graphflow.memory import manager
from graphflow.quantile import quantile

from .checkpoint_save import _save, text_encoder_states

CLAMP_QUANTILE = 0.99
UNET_KEY_PREFIX = "diffusion_model."
TEXT_KEY_PREFIX = "text_encoders."


def extract_lora(diff: torch.Tensor, rank: int, clamp_quantile: float | None = CLAMP_QUANTILE):
    """(up, down) with up @ down ≈ diff (conv weights flattened over in × kernel), in float32, of
    rank min(rank, out, in) (ComfyUI's cap: a conv's input channels, not in × kernel);
    clamp_quantile None leaves the factors unclamped."""
    matrix = diff.flatten(1).float()
    rank = min(rank, diff.shape[0], diff.shape[1])
    U, S, Vh = torch.linalg.svd(matrix, full_matrices=False)
    up, down = U[:, :rank] * S[:rank], Vh[:rank]
    if clamp_quantile is not None:
        limit = float(quantile(torch.cat([up.flatten(), down.flatten()]), clamp_quantile))
        up, down = up.clamp(-limit, limit), down.clamp(-limit, limit)
    up = up.reshape(diff.shape[0], rank, *[1] * (diff.dim() - 2))
    down = down.reshape(rank, *diff.shape[1:])
    return up, down


def lora_parts(state: dict[str, torch.Tensor], prefix: str, rank: int, lora_type: str, bias_diff: bool,
               clamp_quantile: float | None = CLAMP_QUANTILE) -> dict[str, torch.Tensor]:
    """The LoRA file's tensors for one network's difference state (parameter name -> tensor)."""
    if lora_type not in ("standard", "full_diff"):
        raise ValueError(f"lora_type must be 'standard' or 'full_diff', got {lora_type!r}")
    out, device, skipped = {}, manager().device, []  # the SVDs on the GPU where there is one, as ComfyUI does
    for name, value in state.items():
        if name.endswith(".weight"):
            module = prefix + name[:-len(".weight")]
            if lora_type == "full_diff" or value.dim() < 2:
                if lora_type == "full_diff" or bias_diff:
                    out[module + ".diff"] = value
                continue
            if value.dim() > 4:  # ComfyUI's SVD of a Conv3d weight fails and it skips the layer
                skipped.append(module)
                continue
            up, down = extract_lora(value.to(device), rank, clamp_quantile)
            out[module + ".lora_up.weight"], out[module + ".lora_down.weight"] = up, down
        elif bias_diff and name.endswith(".bias"):
            out[prefix + name[:-len(".bias")] + ".diff_b"] = value
    if skipped:
        from graphflow.context import warn

        warn(f"LoraSave: {len(skipped)} weight(s) of 5 dimensions (Conv3d) left out of the standard LoRA, as "
             f"ComfyUI leaves them (full_diff keeps them): {', '.join(skipped[:3])}")
    return {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in out.items()}


def model_lora(model, rank: int, lora_type: str, bias_diff: bool, clamp_quantile: float | None = CLAMP_QUANTILE):
    """A MODEL (a difference; its patches merged in) as LoRA tensors under `diffusion_model.`."""
    state = manager().weights(model.unet, model.patches)
    params = {name for name, _ in model.unet.named_parameters()}
    return lora_parts({k: v for k, v in state.items() if k in params}, UNET_KEY_PREFIX, rank, lora_type, bias_diff,
                      clamp_quantile)


def text_encoder_lora(clip, rank: int, lora_type: str, bias_diff: bool,
                      clamp_quantile: float | None = CLAMP_QUANTILE):
    """A CLIP (a difference) as LoRA tensors under `text_encoders.<encoder>.transformer.`: its CLIP
    towers and T5, as ComfyUI writes every weight of the CLIP."""
    out = {}
    for name, (state, _) in text_encoder_states(clip).items():
        out.update(lora_parts(state, f"{TEXT_KEY_PREFIX}{name}.transformer.", rank, lora_type, bias_diff,
                              clamp_quantile))
    return out


def write_lora(path, state: dict[str, torch.Tensor], extra_metadata: dict | None = None):
    """A LoRA file of `state` (ComfyUI's keys) as given: LoraSave's and SaveLoRANode's writer."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    return _save(path, state, {}, extra_metadata)


def save_lora(path, model, clip, rank: int, lora_type: str, bias_diff: bool, extra_metadata: dict | None = None,
              clamp_quantile: float | None = CLAMP_QUANTILE):
    """LoraSave's file from a MODEL difference and/or a CLIP difference (either may be None)."""
    state = {}
    if model is not None:
        state.update(model_lora(model, rank, lora_type, bias_diff, clamp_quantile))
    if clip is not None:
        if not getattr(clip, "towers", None) and getattr(clip, "t5", None) is None:
            raise ValueError(f"a {clip.arch} text encoder: only CLIP and T5 differences are extracted")
        state.update(text_encoder_lora(clip, rank, lora_type, bias_diff, clamp_quantile))
    return write_lora(path, state, extra_metadata)
