"""CLIP vision and unCLIP: load an image encoder (models/clip_vision/), encode images with it, and
condition an SD2.1-unCLIP model on the embeddings (unCLIP checkpoints carry their own encoder).

The unCLIP conditioning travels in the conditioning's options under "unclip_conditioning" (a list,
appended to), as in ComfyUI; the sampler builds the model's vector input from it."""

from graphflow.api import (CLIP, CLIP_VISION, CLIP_VISION_OUTPUT, CONDITIONING, IMAGE, MODEL, VAE, Choice,
                           ComfyAlias, Float, Node, NodeInputError, folders, warn)


def _find(kind: str, name: str, input_name: str):
    try:
        return folders.find_model(kind, name)
    except (FileNotFoundError, ValueError) as e:
        raise NodeInputError(input_name, str(e)) from None


def load_clip_vision_file(name: str, input_name: str):
    """The CLIP vision model in models/clip_vision/ named `name`; a missing or unreadable file is
    the error of input `input_name`."""
    from graphflow.models.clip_vision import load_clip_vision
    from graphflow.models.weight_files import CheckpointError

    try:
        return load_clip_vision(_find("clip_vision", name, input_name))
    except CheckpointError as e:
        raise NodeInputError(input_name, f"{name}: {e}") from None


class LoadCLIPVision(Node):
    """Load a CLIP vision model (clip_vision_g / clip_vision_h / ViT-L files, SigLIP's for FLUX
    Redux; transformers' or OpenCLIP's key layout) from models/clip_vision/."""
    category = "loaders"
    clip_name: str = Choice(lambda: folders.list_models("clip_vision"), model_folder="clip_vision")
    outputs = {"clip_vision": CLIP_VISION}
    comfy = ComfyAlias(("CLIPVisionLoader",))

    @classmethod
    def fingerprint(cls, clip_name):
        return folders.model_state("clip_vision", clip_name)

    def run(self):
        return load_clip_vision_file(self.clip_name, "clip_name")


class CLIPVisionEncode(Node):
    """Encode images with a CLIP vision model: image embeddings and hidden states, for unCLIP and
    style models. crop "center" scales the shorter side to the model's size and cuts the centre;
    "none" squashes the whole image to a square."""
    category = "conditioning"
    clip_vision: CLIP_VISION
    image: IMAGE
    crop: str = Choice(("center", "none"), "center")
    outputs = {"clip_vision_output": CLIP_VISION_OUTPUT}
    comfy = ComfyAlias(("CLIPVisionEncode",))

    def run(self):
        if self.clip_vision is None:
            raise NodeInputError("clip_vision", "no CLIP vision model: the checkpoint loaded by unCLIPCheckpointLoader "
                                                "carries none (load one with Load CLIP Vision)")
        image = self.image
        if getattr(image, "ndim", 0) != 4 or image.shape[-1] not in (1, 3, 4):
            raise NodeInputError("image", f"expected an IMAGE [B, H, W, C], got shape {tuple(getattr(image, 'shape', ()))}")
        return self.clip_vision.encode_image(image, crop=self.crop == "center")


class LoadUnCLIPCheckpoint(Node):
    """Load an SD2.1-unCLIP checkpoint: its diffusion model (conditioned on image embeddings),
    text encoder, VAE and the CLIP vision model it was trained with. Any other checkpoint loads
    too, as in ComfyUI, with an empty clip_vision output (a warning says so)."""
    category = "loaders"
    checkpoint: str = Choice(lambda: folders.list_models("checkpoints"), model_folder="checkpoints")
    outputs = {"model": MODEL, "clip": CLIP, "vae": VAE, "clip_vision": CLIP_VISION}
    comfy = ComfyAlias(("unCLIPCheckpointLoader",), inputs={"ckpt_name": "checkpoint"})

    @classmethod
    def fingerprint(cls, checkpoint):
        return folders.model_state("checkpoints", checkpoint)

    def run(self):
        from graphflow.models.checkpoint import CheckpointError, load_checkpoint_with_vision

        try:
            loaded = load_checkpoint_with_vision(_find("checkpoints", self.checkpoint, "checkpoint"))
        except CheckpointError as e:
            raise NodeInputError("checkpoint", str(e)) from None
        if loaded.clip_vision is None:
            warn(f"{self.checkpoint} is not an unCLIP checkpoint (nor Stable Zero123): it carries no CLIP vision "
                 f"model, so clip_vision is empty")
        return loaded.model, loaded.clip, loaded.vae, loaded.clip_vision


class UnCLIPConditioning(Node):
    """Condition an unCLIP model on an image: its CLIP embedding, weighted by strength, with
    noise_augmentation (0..1) of noise added to it (more noise: looser variations). Several
    applied to one conditioning add up. Strength 0 leaves the conditioning unchanged. On an SDXL
    model (ComfyUI's "revision", with a CLIP-G vision model) the augmented embedding replaces the
    prompt's pooled vector; on Stable Cascade Stage C (image variations, CLIP ViT-L) each image's
    embedding times strength is an image token, without noise."""
    category = "conditioning"
    conditioning: CONDITIONING
    clip_vision_output: CLIP_VISION_OUTPUT
    strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    noise_augmentation: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("unCLIPConditioning",))

    def run(self):
        if self.strength == 0:
            return self.conditioning
        image_embeds = getattr(self.clip_vision_output, "image_embeds", None)
        if image_embeds is None or image_embeds.ndim != 2:
            raise NodeInputError("clip_vision_output", "expected a CLIP vision output with [B, dim] image embeddings "
                                                       "(a CLIP ViT's, not SigLIP's token states)")
        entry = {"clip_vision_output": self.clip_vision_output, "strength": self.strength,
                 "noise_augmentation": self.noise_augmentation}
        return [(cond, {**options, "unclip_conditioning": [*options.get("unclip_conditioning", ()), entry]})
                for cond, options in self.conditioning]
