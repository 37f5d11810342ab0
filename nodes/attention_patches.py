"""Attention multipliers on the MODEL's and the CLIP's attention weights
(graphflow.models.attention_multiply)."""

from __future__ import annotations

from graphflow.api import CLIP, MODEL, ComfyAlias, Float, Node, NodeInputError


def _multiplier() -> float:
    return Float(1.0, min=0.0, max=10.0, step=0.01)


def _check_unet(model, what: str):
    if getattr(getattr(model, "unet", None), "input_blocks", None) is None:
        raise NodeInputError("model", f"{what} needs a UNet model (SD1.x, SD2.x, SDXL)")


class UNetSelfAttentionMultiply(Node):
    """Multiplies the weights of the UNet's self-attention (attn1) query, key, value and output
    projections by q, k, v and out. Raising q and k together sharpens the attention (each pixel
    follows fewer others), lowering them flattens it; v and out scale its contribution. All 1:
    no change. An experiment on the image's structure."""
    category = "model_patches/attention"
    model: MODEL
    q: float = _multiplier()
    k: float = _multiplier()
    v: float = _multiplier()
    out: float = _multiplier()
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("UNetSelfAttentionMultiply",))

    def run(self):
        from graphflow.models.attention_multiply import multiply_unet_attention
        _check_unet(self.model, "UNetSelfAttentionMultiply")
        return multiply_unet_attention(self.model, "attn1", self.q, self.k, self.v, self.out)


class UNetCrossAttentionMultiply(Node):
    """Multiplies the weights of the UNet's cross-attention (attn2, where the prompt comes in)
    query, key, value and output projections by q, k, v and out: q and k sharpen or flatten
    which prompt tokens each pixel follows, v and out scale how strongly the prompt acts. All 1:
    no change."""
    category = "model_patches/attention"
    model: MODEL
    q: float = _multiplier()
    k: float = _multiplier()
    v: float = _multiplier()
    out: float = _multiplier()
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("UNetCrossAttentionMultiply",))

    def run(self):
        from graphflow.models.attention_multiply import multiply_unet_attention
        _check_unet(self.model, "UNetCrossAttentionMultiply")
        return multiply_unet_attention(self.model, "attn2", self.q, self.k, self.v, self.out)


class CLIPAttentionMultiply(Node):
    """Multiplies the weights of the CLIP text encoder's self-attention query, key, value and
    output projections by q, k, v and out (every CLIP tower; T5 is left as it is), which changes
    how the prompt's words influence each other. All 1: no change."""
    category = "model_patches/attention"
    clip: CLIP
    q: float = _multiplier()
    k: float = _multiplier()
    v: float = _multiplier()
    out: float = _multiplier()
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("CLIPAttentionMultiply",))

    def run(self):
        from graphflow.models.attention_multiply import multiply_clip_attention
        if not getattr(self.clip, "towers", None):
            raise NodeInputError("clip", "CLIPAttentionMultiply needs a CLIP text encoder with CLIP towers "
                                         "(T5 alone has none)")
        return multiply_clip_attention(self.clip, self.q, self.k, self.v, self.out)
