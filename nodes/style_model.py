"""Style models (FLUX Redux, SD1.x's T2I-Adapter style model): load one from models/style_models/
and add an image's tokens to a conditioning."""

from graphflow.api import (CLIP_VISION_OUTPUT, CONDITIONING, STYLE_MODEL, Choice, ComfyAlias, Float, Node,
                           NodeInputError, folders)


class LoadStyleModel(Node):
    """Load a style model from models/style_models/: FLUX Redux (flux1-redux-dev.safetensors), which
    reads SigLIP image tokens (sigclip_vision_patch14_384 through Load CLIP Vision), or SD1.x's
    T2I-Adapter style model (t2iadapter_style_sd14v1), which reads CLIP ViT-L's and gives 8 tokens
    per image."""
    category = "loaders"
    style_model_name: str = Choice(lambda: folders.list_models("style_models"), model_folder="style_models")
    outputs = {"style_model": STYLE_MODEL}
    comfy = ComfyAlias(("StyleModelLoader",))

    @classmethod
    def fingerprint(cls, style_model_name):
        return folders.model_state("style_models", style_model_name)

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
    "attn_bias" keeps them and biases the other tokens' attention to them by log(strength)
    (FLUX only; strength 1 adds no bias), as ComfyUI does."""
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
                                                     f"conditioning's are {cond.shape[-1]} wide (Redux: FLUX's T5 tokens; the T2I "
                                                     f"style model: SD1.x's)")
            options = dict(options)
            if "attention_mask" in options or (self.strength_type == "attn_bias" and self.strength != 1.0):
                options["attention_mask"] = _extended_mask(options, cond, tokens.shape[1], self.strength
                                                           if self.strength_type == "attn_bias" else 1.0)
                options["attention_mask_img_shape"] = options.get("attention_mask_img_shape", (1, 1))
            style = tokens.to(cond.device, cond.dtype).expand(cond.shape[0], -1, -1)
            out.append((torch.cat([cond, style], dim=1), options))
        return out


def _extended_mask(options: dict, cond, n: int, strength: float):
    """ComfyUI's attention bias [B, T + n + r, T + n + r] over text, the n new style tokens and an
    r = h x w reference image grid: the existing bias kept in its quadrants, log(strength) from
    every text and image token to the style tokens (-inf at strength 0)."""
    import torch

    h, w = options.get("attention_mask_img_shape", (1, 1))
    n_ref, n_txt = h * w, cond.shape[1]
    mask = options.get("attention_mask")
    if mask is None:
        mask = torch.zeros(cond.shape[0], n_txt + n_ref, n_txt + n_ref, dtype=torch.float16)
    if mask.dtype == torch.bool:  # True: attend (bias 0), False: don't (-inf)
        mask = torch.log(mask.to(torch.float16))
    bias = torch.log(torch.tensor(strength, dtype=torch.float32))
    size = n_txt + n + n_ref
    new = torch.zeros(cond.shape[0], size, size, dtype=torch.float16)
    new[:, :n_txt, :n_txt] = mask[:, :n_txt, :n_txt]
    new[:, :n_txt, n_txt + n:] = mask[:, :n_txt, n_txt:]
    new[:, n_txt + n:, :n_txt] = mask[:, n_txt:, :n_txt]
    new[:, n_txt + n:, n_txt + n:] = mask[:, n_txt:, n_txt:]
    new[:, :n_txt, n_txt:n_txt + n] = bias
    new[:, n_txt + n:, n_txt:n_txt + n] = bias
    return new
