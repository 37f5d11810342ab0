"""Perturbed-Attention Guidance (Ahn et al. 2024, "Self-Rectifying Diffusion Sampling with
Perturbed-Attention Guidance", arXiv:2403.17377), as ComfyUI's PerturbedAttentionGuidance node:

    D = D_cfg + scale * (D_cond - D_cond,perturbed)

where the perturbed prediction runs the positive prompt through the UNet with every
self-attention of the middle block replaced by the identity attention map, so each token keeps
its own value: attn1(x) = to_out(to_v(x)). Guiding away from that structure-blind prediction
sharpens structure, also without CFG. It is a post-CFG function on the MODEL (guidance.py), one
extra UNet evaluation per step. With Self-Attention Guidance on the same model the first middle
self-attention is not blinded (ComfyUI's SAG replacement of that block takes precedence): on
SD1.x / SD2.x, whose middle block has one, PAG then adds nothing, as in ComfyUI."""

import contextlib
import copy



def middle_self_attentions(unet) -> list:
    """The self-attentions of the middle block's spatial transformer blocks, the ones ComfyUI's
    ("middle", 0) attn1 patches reach; a video UNet's temporal blocks (SVD's time_stack) get no
    patches in ComfyUI and are left out."""
    from graphflow.models.unet import BasicTransformerBlock
    middle = getattr(unet, "middle_block", None)
    if middle is None:
        return []
    return [block.attn1 for block in middle.modules() if isinstance(block, BasicTransformerBlock)]


def _value_only(attention):
    def forward(x, context=None):
        return attention.to_out(attention.to_v(x))
    return forward


@contextlib.contextmanager
def identity_self_attention(unet, keep_first: bool = False):
    """Within the block, the middle block's self-attentions return their value projection
    (the instance's forward is swapped and restored, so no attention is computed and the shared
    UNet is left as it was). keep_first: the first one keeps its attention."""
    modules = middle_self_attentions(unet)[1 if keep_first else 0:]
    for attention in modules:
        attention.forward = _value_only(attention)
    try:
        yield modules
    finally:
        for attention in modules:
            del attention.forward


def perturbed_attention_guidance(model, scale: float):
    """A shallow copy of the MODEL with the PAG post-CFG function appended (the input model is
    not changed)."""
    def post_cfg(args):
        if scale == 0:
            return args["denoised"]
        # Self-Attention Guidance on the same model holds ComfyUI's ("middle", 0, 0) replacement,
        # which wins over PAG's ("middle", 0): there the first middle self-attention keeps attending
        keep_first = any(getattr(fn, "holds_first_middle_attention", False)
                         for fn in getattr(args["model"], "post_cfg_functions", ()))
        with identity_self_attention(args["model"].unet, keep_first):
            perturbed = args["predict"](args["cond"], args["x"], args["sigma"])
        return args["denoised"] + (args["cond_denoised"] - perturbed) * scale

    patched = copy.copy(model)
    patched.post_cfg_functions = (*getattr(model, "post_cfg_functions", ()), post_cfg)
    return patched
