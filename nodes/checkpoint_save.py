"""CheckpointSave: write a MODEL, CLIP and VAE (merged, LoRA-patched, ...) as one single-file
checkpoint that our loader, ComfyUI and diffusers read; ModelSave / CLIPSave / VAESave: each
part alone, in the files ComfyUI's nodes of those names write (graphflow.models.checkpoint_save);
LoraSave: a LoRA extracted from a model difference (graphflow.models.lora_extract)."""

from graphflow.api import (CLIP, MODEL, VAE, Bool, Choice, ComfyAlias, Int, Node, NodeInputError, Text, folders, show,
                           subfolder_name, workflow_texts)
from graphflow.choices import LORA_EXTRACT_TYPES
from nodes.image import _next_counter


class CheckpointSave(Node):
    """Save the model, text encoder and VAE as one .safetensors checkpoint in the original
    (LDM) layout, or for SD3 / FLUX / Chroma in ComfyUI's (text_encoders.*, vae.*), in the
    outputs folder (the prefix may name a subfolder). Move it to models/checkpoints to load it
    like any checkpoint; it keeps latent scale and the prediction type the model was read with
    (as in ComfyUI, a ModelSamplingDiscrete choice is not written)."""
    category = "advanced/model_merging"
    output_node = True
    model: MODEL
    clip: CLIP
    vae: VAE
    filename_prefix: str = Text("checkpoints/graphflow", file_name=True)
    comfy = ComfyAlias(("CheckpointSave",))

    def run(self):
        from graphflow.models.architectures import ARCHITECTURES
        from graphflow.models.checkpoint_save import checkpoint_families, save_checkpoint

        arch = ARCHITECTURES.get(getattr(self.model, "arch", None))
        if arch is None or arch.saved_as is None:
            raise NodeInputError("model", f"CheckpointSave writes {checkpoint_families()} checkpoints; this model "
                                          f"is {getattr(self.model, 'arch', '?')}")
        for name in ("clip", "vae"):
            if getattr(self, name) is None:
                raise NodeInputError(name, f"no {name.upper()} to save (the checkpoint had none)")
        path = _output_path(self.filename_prefix)
        # a part that doesn't fit raises NodeInputError naming save_checkpoint's parameter (model,
        # clip, vae): our inputs have the same names, so it is the node's error as it stands
        save_checkpoint(path, self.model, self.clip, self.vae, _workflow_metadata(), self.model_dtype())
        _show_saved([path])

    def model_dtype(self):
        """The dtype the diffusion model's weights are written in (None: as they are)."""
        return None


def _output_path(filename_prefix: str):
    """The next `<prefix>_NNNNN_.safetensors` inside the outputs folder (never outside it)."""
    try:
        folder, stem = folders.output_location(filename_prefix)
    except ValueError as e:
        raise NodeInputError("filename_prefix", str(e)) from None
    return folder / f"{stem}_{_next_counter(folder, stem):05d}_.safetensors"


def _workflow_metadata() -> dict | None:
    return workflow_texts() or None


def _show_saved(paths) -> None:
    files = []
    for path in paths:
        subfolder = subfolder_name(folders.outputs, path.parent)
        files.append({"filename": path.name, "subfolder": subfolder, "type": "output"})
    show(checkpoints=files)


class ModelSave(Node):
    """Save the diffusion model alone (any family; merges and LoRAs baked in) as a .safetensors
    file under `model.diffusion_model.`, in the outputs folder (the prefix may name a subfolder).
    Move it to models/diffusion_models to load it with LoadDiffusionModel (UNETLoader)."""
    category = "advanced/model_merging"
    output_node = True
    model: MODEL
    filename_prefix: str = Text("diffusion_models/graphflow", file_name=True)
    comfy = ComfyAlias(("ModelSave",))

    def run(self):
        from graphflow.models.checkpoint_save import save_model

        path = _output_path(self.filename_prefix)
        save_model(path, self.model, _workflow_metadata())
        _show_saved([path])


class CLIPSave(Node):
    """Save the text encoders, one .safetensors file per encoder (`<prefix>_clip_l_...`,
    `_clip_g_`, `_t5xxl_`; LoRAs baked in) in the outputs folder. Move them to models/text_encoders
    to load them with LoadTextEncoder / LoadDualTextEncoders (CLIPLoader / DualCLIPLoader)."""
    category = "advanced/model_merging"
    output_node = True
    clip: CLIP
    filename_prefix: str = Text("clip/graphflow", file_name=True)
    comfy = ComfyAlias(("CLIPSave",))

    def run(self):
        from graphflow.models.checkpoint_save import save_text_encoder, text_encoder_states

        if self.clip is None:
            raise NodeInputError("clip", "no CLIP to save (the checkpoint had none)")
        paths = []
        for name, state in text_encoder_states(self.clip).items():
            paths.append(save_text_encoder(_output_path(f"{self.filename_prefix}_{name}"), state, _workflow_metadata()))
        _show_saved(paths)


class VAESave(Node):
    """Save the VAE as a .safetensors file (LDM key names, as standalone VAE files have them) in
    the outputs folder. Move it to models/vae to load it with LoadVAE."""
    category = "advanced/model_merging"
    output_node = True
    vae: VAE
    filename_prefix: str = Text("vae/graphflow_vae", file_name=True)
    comfy = ComfyAlias(("VAESave",))

    def run(self):
        from graphflow.models.checkpoint_save import save_vae

        if self.vae is None:
            raise NodeInputError("vae", "no VAE to save (the checkpoint had none)")
        if not hasattr(self.vae, "module"):
            raise NodeInputError("vae", "a tiny preview VAE (TAESD) is not saved; give a full VAE")
        path = _output_path(self.filename_prefix)
        save_vae(path, self.vae, _workflow_metadata())
        _show_saved([path])


class LoraSave(Node):
    """Extract a LoRA from a model difference and save it in the outputs folder (the prefix may
    name a subfolder; move the file to models/loras to load it with LoadLoRA). Connect
    ModelMergeSubtract (fine-tune minus base) to model_diff and/or CLIPMergeSubtract to
    text_encoder_diff (CLIP towers and T5). standard: each linear / conv / embedding weight becomes
    a LoRA of rank min(rank, its output and input channels), as in ComfyUI (truncated SVD, factors
    clamped at their 99th percentile); Conv3d weights are left out of it, as ComfyUI leaves them;
    full_diff: every weight is stored whole (exact, large). bias_diff also stores biases and norm
    weights. Written in ComfyUI's key layout (diffusion_model. / text_encoders.), float16."""
    category = "_for_testing"
    output_node = True
    filename_prefix: str = Text("loras/graphflow_extracted_lora", file_name=True)
    rank: int = Int(8, min=1, max=4096)
    lora_type: str = Choice(LORA_EXTRACT_TYPES, "standard")
    bias_diff: bool = Bool(True)
    model_diff: MODEL = None
    text_encoder_diff: CLIP = None
    comfy = ComfyAlias(("LoraSave",), optional=("model_diff", "text_encoder_diff"))

    def run(self):
        from graphflow.models.lora_extract import save_lora

        if self.model_diff is None and self.text_encoder_diff is None:
            raise NodeInputError("model_diff", "nothing to extract: connect model_diff (a ModelMergeSubtract "
                                               "output) and/or text_encoder_diff (a CLIPMergeSubtract output)")
        path = _output_path(self.filename_prefix)
        try:
            save_lora(path, self.model_diff, self.text_encoder_diff, self.rank, self.lora_type, self.bias_diff,
                      _workflow_metadata())
        except ValueError as e:
            raise NodeInputError("text_encoder_diff", str(e)) from None
        _show_saved([path])
