"""Model patches that change how a MODEL's predictions are guided."""

from __future__ import annotations

from graphflow.api import MODEL, Float, Node, NodeInputError


def _check_unet(model, what: str):
    from graphflow.sampling.perturbed_attention import middle_self_attentions
    if not middle_self_attentions(getattr(model, "unet", None)):
        raise NodeInputError("model", f"{what} needs a UNet model with self-attention in its middle block "
                                      "(SD1.x, SD2.x, SDXL)")


class PerturbedAttentionGuidance(Node):
    """Perturbed-Attention Guidance: each step also predicts with the UNet's middle-block
    self-attention blinded (every token attends only to itself) and pushes the result away from
    that prediction by `scale`: sharper structure and composition, also at low CFG. Costs one
    more model evaluation per step. Typical scale 2-5 (0 turns it off). On a model without a
    UNet middle block (FLUX, SD3, ...) it changes nothing, as in ComfyUI (a warning says so).
    With Self-Attention Guidance on the same model the middle block's first self-attention is
    left alone, as in ComfyUI (SAG's patch of it wins): on SD1.x / SD2.x PAG then adds nothing."""
    category = "model_patches/unet"
    model: MODEL
    scale: float = Float(3.0, min=0.0, max=100.0, step=0.01)
    outputs = {"model": MODEL}

    def run(self):
        from graphflow.context import warn
        from graphflow.sampling.perturbed_attention import middle_self_attentions, perturbed_attention_guidance
        if not middle_self_attentions(getattr(self.model, "unet", None)):
            # ComfyUI's patch replaces the UNet middle block's self-attention; a model without one
            # predicts the same with and without it, so the guidance adds 0
            warn("Perturbed-Attention Guidance needs a UNet model with self-attention in its middle block "
                 "(SD1.x, SD2.x, SDXL); this model is passed on unchanged")
            return self.model
        return perturbed_attention_guidance(self.model, self.scale)


class SelfAttentionGuidance(Node):
    """Self-Attention Guidance: blurs the unconditional prediction where the UNet's middle-block
    self-attention concentrates, asks the model to denoise that degraded version again, and
    pushes the result away from it by `scale`, restoring fine detail. Needs the negative prompt's
    prediction even at cfg 1; costs two more model evaluations per step. blur_sigma 0 does not
    blur (ComfyUI's blur is NaN there and the picture is lost). Refused with Tiled Diffusion, whose
    tiles each have their own attention map."""
    category = "model_patches/unet"
    model: MODEL
    scale: float = Float(0.5, min=-2.0, max=5.0, step=0.01)
    blur_sigma: float = Float(2.0, min=0.0, max=10.0, step=0.1)
    outputs = {"model": MODEL}

    def run(self):
        from graphflow.sampling.self_attention_guidance import self_attention_guidance
        _check_unet(self.model, "Self-Attention Guidance")
        if any(getattr(w, "tiles_network", False) for w in getattr(self.model, "network_wrappers", ())):
            raise NodeInputError("model", "Self-Attention Guidance reads the whole latent's attention map, which Tiled "
                                          "Diffusion computes per tile: use one or the other")
        return self_attention_guidance(self.model, self.scale, self.blur_sigma)
