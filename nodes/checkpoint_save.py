"""CheckpointSave: write a MODEL, CLIP and VAE (merged, LoRA-patched, ...) as one single-file
checkpoint that our loader, ComfyUI and diffusers read (graphflow.models.checkpoint_save)."""

import re

from graphflow.api import CLIP, MODEL, VAE, ComfyAlias, Node, NodeInputError, Text, current_workflow, folders, show


def _next_counter(folder, stem: str) -> int:
    pattern = re.compile(re.escape(stem) + r"_(\d{5})_\.safetensors$")
    numbers = [int(m.group(1)) for p in folder.glob(f"{stem}_*.safetensors") if (m := pattern.match(p.name))]
    return max(numbers, default=0) + 1


class CheckpointSave(Node):
    """Save the model, text encoder and VAE as one .safetensors checkpoint in the original
    (LDM) layout, in the outputs folder (the prefix may name a subfolder). Move it to
    models/checkpoints to load it like any checkpoint; it keeps prediction type and latent scale."""
    category = "advanced/model_merging"
    output_node = True
    model: MODEL
    clip: CLIP
    vae: VAE
    filename_prefix: str = Text("checkpoints/graphflow", file_name=True)
    comfy = ComfyAlias(("CheckpointSave",))

    def run(self):
        from graphflow.models.checkpoint_save import save_checkpoint

        if not hasattr(self.model, "unet") or getattr(self.model, "prediction", None) == "flow":
            raise NodeInputError("model", "CheckpointSave writes SD1.x / SD2.x / SDXL checkpoints; this model is "
                                          f"a {getattr(self.model, 'arch', '?')} flow model")
        for name in ("clip", "vae"):
            if getattr(self, name) is None:
                raise NodeInputError(name, f"no {name.upper()} to save (the checkpoint had none)")
        try:
            folder, stem = folders.output_location(self.filename_prefix)
        except ValueError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        name = f"{stem}_{_next_counter(folder, stem):05d}_.safetensors"
        workflow = current_workflow()
        try:
            save_checkpoint(folder / name, self.model, self.clip, self.vae,
                            {"graphflow": workflow} if workflow else None)
        except ValueError as e:
            raise NodeInputError("clip" if "text encoder" in str(e) else "vae", str(e)) from None
        subfolder = folder.relative_to(folders.outputs).as_posix()
        show(checkpoints=[{"filename": name, "subfolder": "" if subfolder == "." else subfolder, "type": "output"}])
