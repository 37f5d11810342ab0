"""Style models (FLUX Redux): load one from models/style_models/ and add an image's tokens to a
FLUX conditioning."""

from graphflow.api import (CLIP_VISION_OUTPUT, CONDITIONING, STYLE_MODEL, Choice, ComfyAlias, Float, Node,
                           NodeInputError, folders)


class LoadStyleModel(Node):
    """Load a FLUX Redux style model (flux1-redux-dev.safetensors) from models/style_models/. It
    reads SigLIP image tokens (sigclip_vision_patch14_384 through Load CLIP Vision)."""
    category = "loaders"
    style_model_name: str = Choice(lambda: folders.list_models("style_models"), model_folder="style_models")
    outputs = {"style_model": STYLE_MODEL}
    comfy = ComfyAlias(("StyleModelLoader",))

    @classmethod
    def fingerprint(cls, style_model_name):
        stat = folders.find_model("style_models", style_model_name).stat()
        return f"{style_model_name}:{stat.st_size}:{stat.st_mtime_ns}"

    def run(self):
        from graphflow.models.redux import load_style_model
        from graphflow.models.weight_files import CheckpointError

        try:
            return load_style_model(folders.find_model("style_models", self.style_model_name))
        except (FileNotFoundError, ValueError, CheckpointError) as e:
            raise NodeInputError("style_model_name", str(e)) from None


class ApplyStyleModel(Node):
    """Append an image's style tokens (every image of the batch, one after the other) to the text
    tokens of each conditioning entry. strength_type "multiply" scales the tokens by strength;
    "attn_bias" would bias attention to them by log(strength) instead, which needs attention
    masks graphflow's FLUX does not take yet: only strength 1 (no bias) is accepted there."""
    category = "conditioning/style_model"
    conditioning: CONDITIONING
    style_model: STYLE_MODEL
    clip_vision_output: CLIP_VISION_OUTPUT
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    strength_type: str = Choice(("multiply", "attn_bias"), "multiply")
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("StyleModelApply",))

    def run(self):
        import torch

        if self.strength_type == "attn_bias" and self.strength != 1.0:
            raise NodeInputError("strength_type", f"attn_bias with strength {self.strength} needs attention masks, "
                                                  f"which graphflow's FLUX does not support yet; use multiply")
        try:
            tokens = self.style_model.tokens(self.clip_vision_output)
        except ValueError as e:
            raise NodeInputError("clip_vision_output", str(e)) from None
        tokens = tokens.reshape(1, -1, tokens.shape[-1])  # all images' tokens in one sequence (as ComfyUI)
        if self.strength_type == "multiply":
            tokens = tokens * self.strength
        out = []
        for cond, options in self.conditioning:
            if cond.shape[-1] != tokens.shape[-1]:
                raise NodeInputError("conditioning", f"the style model gives {tokens.shape[-1]}-wide tokens; this "
                                                     f"conditioning's are {cond.shape[-1]} wide (FLUX's T5 tokens expected)")
            style = tokens.to(cond.device, cond.dtype).expand(cond.shape[0], -1, -1)
            out.append((torch.cat([cond, style], dim=1), dict(options)))
        return out
