"""Model patches that change how a MODEL's predictions are guided."""

from graphflow.api import MODEL, Float, Node, NodeInputError
from graphflow.sampling.perturbed_attention import middle_self_attentions, perturbed_attention_guidance


class PerturbedAttentionGuidance(Node):
    """Perturbed-Attention Guidance: each step also predicts with the UNet's middle-block
    self-attention blinded (every token attends only to itself) and pushes the result away from
    that prediction by `scale`: sharper structure and composition, also at low CFG. Costs one
    more model evaluation per step. Typical scale 2-5 (0 turns it off)."""
    category = "model_patches/unet"
    model: MODEL
    scale: float = Float(3.0, min=0.0, max=100.0, step=0.01)
    outputs = {"model": MODEL}

    def run(self):
        if not middle_self_attentions(getattr(self.model, "unet", None)):
            raise NodeInputError("model", "Perturbed-Attention Guidance needs a UNet model with self-attention in its "
                                          "middle block (SD1.x, SD2.x, SDXL)")
        return perturbed_attention_guidance(self.model, self.scale)
