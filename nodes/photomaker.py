"""PhotoMaker v1 (SDXL): load TencentARC's ID encoder (models/photomaker/) and put a person's
identity, from a picture, into the prompt's class word, as ComfyUI's core nodes do."""

from __future__ import annotations

from graphflow.api import CLIP, CONDITIONING, IMAGE, Choice, ComfyAlias, Node, NodeInputError, Text, folders, socket_type
from nodes.conditioning import encoded

PHOTOMAKER = socket_type("PHOTOMAKER", "#8d6e63", "A PhotoMaker v1 ID encoder: CLIP ViT-L image tower and fuse module")


class PhotoMakerLoader(Node):
    """Load a PhotoMaker v1 ID encoder (TencentARC's photomaker-v1.bin, or a .safetensors with its
    id_encoder.* tensors) from models/photomaker/. The file's LoRA (lora_weights) is not applied
    here, as in ComfyUI: load it separately with a LoRA loader."""
    category = "_for_testing/photomaker"
    photomaker_model_name: str = Choice(lambda: folders.list_models("photomaker"), model_folder="photomaker")
    outputs = {"photomaker": PHOTOMAKER}
    comfy = ComfyAlias(("PhotoMakerLoader",))

    @classmethod
    def fingerprint(cls, photomaker_model_name):
        return folders.model_state("photomaker", photomaker_model_name)

    def run(self):
        from graphflow.models.photomaker import load_photomaker
        from graphflow.models.weight_files import CheckpointError

        try:
            return load_photomaker(folders.find_model("photomaker", self.photomaker_model_name))
        except (FileNotFoundError, ValueError, CheckpointError) as e:
            raise NodeInputError("photomaker_model_name", str(e)) from None


class PhotoMakerEncode(Node):
    """Encode an SDXL prompt with a person's identity from `image`, as ComfyUI's node does. The word
    `photomaker` must stand alone between spaces (its first occurrence counts); if it is the n-th
    space-separated word, the token at row n - 1 (the word before it, when every earlier word is one
    token: "a photo of a man photomaker" -> "man") is replaced by its fusion with the image's ID
    embedding, within the first 77 tokens. ComfyUI's node then drops the tokens of word id n, and
    its tokenizer numbers weighted segments and embeddings rather than words, so in most prompts
    the trigger word stays in the encoded prompt (e.g. "(man:1.1) photomaker" drops it). The pooled
    output is the plain encoding of that prompt. A prompt starting with the trigger word (no class
    word) gives the identity to the start token (row 0), as ComfyUI's node does (with a warning).
    Only the first image of the batch is used (a warning says so when there are more), and a prompt
    without the trigger word is encoded unchanged (with a warning)."""
    category = "_for_testing/photomaker"
    photomaker: PHOTOMAKER
    image: IMAGE
    clip: CLIP
    text: str = Text("photograph of photomaker", multiline=True)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("PhotoMakerEncode",))

    def run(self):
        from graphflow.context import warn
        from graphflow.models.photomaker import TRIGGER, drop_word, trigger_word
        from graphflow.models.tokenizer import WINDOW

        image, width = self.image, self.photomaker.config.embed_dim
        if getattr(image, "ndim", 0) != 4 or image.shape[-1] not in (3, 4) or image.shape[0] == 0:
            raise NodeInputError("image", f"expected an IMAGE [B, H, W, 3], got shape {tuple(getattr(image, 'shape', ()))}")
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        arch, dim = getattr(self.clip, "arch", type(self.clip).__name__), getattr(self.clip, "output_dim", None)
        if arch != "sdxl" or dim != width:
            raise NodeInputError("clip", f"PhotoMaker v1 needs SDXL's text encoder (CLIP-L + CLIP-G, {width} wide "
                                         f"for this file); got {arch}'s" + (f" ({dim} wide)" if dim else ""))
        word = trigger_word(self.text)
        if word is None:
            warn(f"the prompt has no '{TRIGGER}' word (standing alone between spaces): encoded without the image")
        elif word > WINDOW:  # ComfyUI's class-token mask covers the first window only: it fails there
            raise NodeInputError("text", f"'{TRIGGER}' must follow the class word it gives the identity to, within "
                                         f"the first {WINDOW - 1} words, e.g. 'a photo of a man {TRIGGER}'; "
                                         f"got {self.text!r}")
        elif word == 1:
            warn(f"'{TRIGGER}' is the prompt's first word: there is no class word before it, so the identity goes "
                 f"to the start token, and the first segment of the prompt is dropped (as in ComfyUI)")
        if word is not None and image.shape[0] > 1:
            warn(f"PhotoMakerEncode uses the first of the {image.shape[0]} images, as ComfyUI's node does")

        def encode(clip):
            tokens = clip.tokenize(self.text)
            if word is not None:
                tokens = {name: drop_word(windows, word) for name, windows in tokens.items()}
            cond, pooled = clip.encode_tokens(tokens)
            if word is not None:
                row = word - 1
                cond = cond.clone()
                cond[0, row] = self.photomaker.fuse(image[:1], cond[0, row:row + 1])[0]
            return cond, {} if pooled is None else {"pooled_output": pooled}

        return encoded(self.clip, encode)
