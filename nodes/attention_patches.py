"""Attention multipliers on the MODEL's and the CLIP's attention weights
(graphflow.models.attention_multiply)."""

from __future__ import annotations

from graphflow.api import CLIP, MODEL, ComfyAlias, Float, Node, NodeInputError


def _multiplier() -> float:
    return Float(1.0, min=0.0, max=10.0, step=0.01)


def _multiply(model, what: str, which: str, q: float, k: float, v: float, out: float):
    """ComfyUI's patch scales every weight named *.<which>.to_q / to_k / to_v / to_out.0, whatever
    the model (UNets, LTX-Video's transformer); a model without such projections passes unchanged,
    as in ComfyUI (with a warning)."""
    from graphflow.context import warn
    from graphflow.models.attention_multiply import multiply_unet_attention
    unet = getattr(model, "unet", None)
    if unet is None or not hasattr(model, "with_patches"):
        raise NodeInputError("model", f"{what} needs a diffusion MODEL")
    if not any(path.endswith(f".{which}.to_q.weight") for path, _ in unet.named_parameters()):
        warn(f"{what}: this model has no {which}.to_q / to_k / to_v / to_out projections (UNet models and "
             f"LTX-Video have them) and is passed on unchanged (as in ComfyUI)")
        return model
    return multiply_unet_attention(model, which, q, k, v, out)


class UNetSelfAttentionMultiply(Node):
    """Multiplies the weights of the UNet's self-attention (attn1) query, key, value and output
    projections by q, k, v and out. Raising q and k together sharpens the attention (each pixel
    follows fewer others), lowering them flattens it; v and out scale its contribution. All 1:
    no change. An experiment on the image's structure. LTX-Video's attn1 is scaled too; a model
    without such projections passes unchanged (as in ComfyUI)."""
    category = "model_patches/attention"
    model: MODEL
    q: float = _multiplier()
    k: float = _multiplier()
    v: float = _multiplier()
    out: float = _multiplier()
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("UNetSelfAttentionMultiply",))

    def run(self):
        return _multiply(self.model, "UNetSelfAttentionMultiply", "attn1", self.q, self.k, self.v, self.out)


class UNetCrossAttentionMultiply(Node):
    """Multiplies the weights of the UNet's cross-attention (attn2, where the prompt comes in)
    query, key, value and output projections by q, k, v and out: q and k sharpen or flatten
    which prompt tokens each pixel follows, v and out scale how strongly the prompt acts. All 1:
    no change. LTX-Video's attn2 is scaled too; a model without such projections passes
    unchanged (as in ComfyUI)."""
    category = "model_patches/attention"
    model: MODEL
    q: float = _multiplier()
    k: float = _multiplier()
    v: float = _multiplier()
    out: float = _multiplier()
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("UNetCrossAttentionMultiply",))

    def run(self):
        return _multiply(self.model, "UNetCrossAttentionMultiply", "attn2", self.q, self.k, self.v, self.out)


class CLIPAttentionMultiply(Node):
    """Multiplies the weights of the CLIP text encoder's self-attention query, key, value and
    output projections by q, k, v and out (every CLIP tower; T5 is left as it is), which changes
    how the prompt's words influence each other. All 1: no change. T5 alone passes unchanged (as
    in ComfyUI); Lumina 2's Gemma-2 gets q, k and v scaled (its output projection, o_proj, is not
    one ComfyUI's patch names: out leaves it alone)."""
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
        from graphflow.models.gemma2 import GemmaTextEncoder
        from graphflow.models.qwen25vl import QwenTextEncoder
        if isinstance(self.clip, (GemmaTextEncoder, QwenTextEncoder)):
            return multiply_clip_attention(self.clip, self.q, self.k, self.v, self.out)
        if not hasattr(self.clip, "towers") or not hasattr(self.clip, "with_towers"):
            raise NodeInputError("clip", "CLIPAttentionMultiply needs a text encoder (CLIP)")
        if not self.clip.towers:  # ComfyUI's patch matches no T5 weight: the encoder stays as it is
            from graphflow.context import warn
            warn("CLIPAttentionMultiply: this text encoder has no CLIP towers (T5 alone) and is passed on "
                 "unchanged (as in ComfyUI)")
            return self.clip
        return multiply_clip_attention(self.clip, self.q, self.k, self.v, self.out)
