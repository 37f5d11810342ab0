"""Model patches (models/model_patches/) and USO's style reference for FLUX: a SigLIP image's
hidden layers projected into style tokens the FLUX model reads before its text tokens
(graphflow.models.uso)."""

from graphflow.api import CLIP_VISION_OUTPUT, MODEL, MODEL_PATCH, Choice, ComfyAlias, Node, NodeInputError, folders


class LoadModelPatch(Node):
    """Load a model patch from models/model_patches/: USO's style projector
    (uso-flux1-projector-v1.safetensors) for USO Style Reference. Other kinds ComfyUI loads here
    (Qwen-Image DiffSynth and Z-Image Fun ControlNets, Wan MultiTalk) are refused by name."""
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
