"""Model patches (models/model_patches/): USO's style reference for FLUX, a SigLIP image's hidden
layers projected into style tokens the FLUX model reads before its text tokens
(graphflow.models.uso); DiffSynth's block-wise ControlNets for Qwen-Image
(graphflow.models.qwen_image_diffsynth)."""

from graphflow.api import (CLIP_VISION_OUTPUT, IMAGE, MASK, MODEL, MODEL_PATCH, VAE, Choice, ComfyAlias, Float, Node,
                           NodeInputError, folders)


class LoadModelPatch(Node):
    """Load a model patch from models/model_patches/: USO's style projector
    (uso-flux1-projector-v1.safetensors) for USO Style Reference, or a Qwen-Image DiffSynth
    block-wise ControlNet (qwen_image_canny / depth / inpaint_diffsynth_controlnet.safetensors)
    for QwenImageDiffsynthControlnet. Other kinds ComfyUI loads here (Z-Image Fun ControlNets,
    Wan MultiTalk) are refused by name."""
    category = "advanced/loaders"
    name: str = Choice(lambda: folders.list_models("model_patches"), model_folder="model_patches")
    outputs = {"model_patch": MODEL_PATCH}
    comfy = ComfyAlias(("ModelPatchLoader",))

    @classmethod
    def fingerprint(cls, name):
        return folders.model_state("model_patches", name)

    def run(self):
        from graphflow.models.uso import load_model_patch
        from graphflow.models.weight_files import CheckpointError

        try:
            return load_model_patch(folders.find_model("model_patches", self.name))
        except (FileNotFoundError, ValueError, CheckpointError) as e:
            raise NodeInputError("name", str(e)) from None


class USOStyleReference(Node):
    """USO style reference for FLUX.1 dev (with the USO LoRA): the reference image's SigLIP
    hidden layers (CLIP Vision Encode with sigclip_vision_patch14_384) go through USO's projector
    into 192 style tokens, which the model reads before the prompt's tokens at every step. One
    image serves every latent of the batch; several go one per latent."""
    category = "advanced/model_patches/flux"
    model: MODEL
    model_patch: MODEL_PATCH
    clip_vision_output: CLIP_VISION_OUTPUT
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("USOStyleReference",))

    def run(self):
        from graphflow.models.uso import ModelPatch, apply_uso

        if getattr(self.model, "arch", None) != "flux":
            raise NodeInputError("model", f"USO style reference needs a FLUX model, got "
                                          f"{getattr(self.model, 'arch', type(self.model).__name__)}")
        if not isinstance(self.model_patch, ModelPatch):
            raise NodeInputError("model_patch", "expected USO's style projector (Load Model Patch)")
        hidden = self.model.unet.config.hidden_size
        if self.model_patch.config.hidden_size != hidden:
            raise NodeInputError("model_patch", f"this USO projector makes {self.model_patch.config.hidden_size}-wide "
                                                f"tokens; the FLUX model's are {hidden} wide")
        try:
            tokens = self.model_patch.tokens(self.clip_vision_output)
        except ValueError as e:
            raise NodeInputError("clip_vision_output", str(e)) from None
        return apply_uso(self.model, tokens)


class QwenImageDiffsynthControlnet(Node):
    """Guide a Qwen-Image model with a DiffSynth block-wise ControlNet (canny, depth or inpaint;
    Load Model Patch): the image is resized to the latent's pixel size (area, centre-cropped) and
    encoded with the VAE (qwen_image_vae), and after each of the model's blocks a small network
    adds strength x its output (from the image tokens and the encoded hint) to the image tokens,
    on every step and both CFG sides. The inpaint ControlNet also reads the part to keep (the mask
    inverted: white in the mask is redrawn; everything is kept without one)."""
    category = "advanced/loaders/qwen"
    model: MODEL
    model_patch: MODEL_PATCH
    vae: VAE
    image: IMAGE
    strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    mask: MASK = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("QwenImageDiffsynthControlnet",), optional=("mask",))

    def run(self):
        from graphflow.models.qwen_image_diffsynth import ModelPatch, apply_diffsynth

        if getattr(self.model, "arch", None) != "qwen_image":
            raise NodeInputError("model", f"a DiffSynth ControlNet needs a Qwen-Image model, got "
                                          f"{getattr(self.model, 'arch', type(self.model).__name__)}")
        if not isinstance(self.model_patch, ModelPatch):
            raise NodeInputError("model_patch", "expected a Qwen-Image DiffSynth ControlNet (Load Model Patch with "
                                                "qwen_image_*_diffsynth_controlnet)")
        if self.mask is not None and getattr(self.mask, "ndim", 0) not in (2, 3):
            raise NodeInputError("mask", f"expected a MASK [B, H, W], got shape {tuple(self.mask.shape)}")
        mask = None if self.mask is None else self.mask.reshape(-1, *self.mask.shape[-2:])
        try:
            return apply_diffsynth(self.model, self.model_patch, self.vae, self.image, self.strength, mask)
        except NodeInputError as e:  # names apply_diffsynth's parameter at fault; its `patch` is our model_patch
            raise NodeInputError("model_patch" if e.input == "patch" else e.input, str(e)) from None
