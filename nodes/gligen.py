"""GLIGEN text boxes: load a GLIGEN model from models/gligen/ and place phrases in boxes of a
SD1.x conditioning. The boxes travel in the conditioning's options under "gligen"; the sampler
runs the GLIGEN fusers in the UNet for the entries that carry them, at every step, as ComfyUI."""

from graphflow.api import (CLIP, CONDITIONING, Choice, ComfyAlias, Int, Node, NodeInputError, Text, folders,
                           socket_type)

GLIGEN = socket_type("GLIGEN", "#a88f57", "A GLIGEN grounding model (SD1.x text boxes)")
MAX_SIZE = 16384


class LoadGLIGEN(Node):
    """Load a GLIGEN text-box model (gligen_sd14_textbox_pruned.safetensors and the like): the
    position net that turns a box and a phrase into a grounding token, and a gated self-attention
    for each UNet transformer block."""
    category = "loaders"
    gligen_name: str = Choice(lambda: folders.list_models("gligen"), model_folder="gligen")
    outputs = {"gligen": GLIGEN}
    comfy = ComfyAlias(("GLIGENLoader",))

    @classmethod
    def fingerprint(cls, gligen_name):
        return folders.model_state("gligen", gligen_name)

    def run(self):
        from graphflow.models.gligen import load_gligen
        from graphflow.models.weight_files import CheckpointError

        try:
            path = folders.find_model("gligen", self.gligen_name)
        except (FileNotFoundError, ValueError) as e:
            raise NodeInputError("gligen_name", str(e)) from None
        try:
            return load_gligen(path)
        except CheckpointError as e:
            raise NodeInputError("gligen_name", str(e)) from None


class GLIGENTextBox(Node):
    """Put the phrase `text` in the box (x, y, width, height; pixels, rounded down to the 8-pixel
    latent grid) of every entry of the conditioning; boxes added to the same conditioning add
    up (at most 30). The phrase is encoded with the text encoder's pooled output, taken before
    its text projection as ComfyUI takes it."""
    category = "conditioning/gligen"
    conditioning_to: CONDITIONING
    clip: CLIP
    gligen_textbox_model: GLIGEN
    text: str = Text("", multiline=True)
    width: int = Int(64, min=8, max=MAX_SIZE, step=8)
    height: int = Int(64, min=8, max=MAX_SIZE, step=8)
    x: int = Int(0, min=0, max=MAX_SIZE, step=8)
    y: int = Int(0, min=0, max=MAX_SIZE, step=8)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("GLIGENTextBoxApply",))

    def run(self):
        from graphflow.models.gligen import MAX_OBJECTS, GligenBoxes

        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        from graphflow.models.text_encoders import TextEncoder

        # ComfyUI encodes the phrase with return_pooled="unprojected": the pooled output before the
        # text projection (which a CLIP-L file may carry)
        unprojected = {"projected": False} if isinstance(self.clip, TextEncoder) else {}
        _, pooled = self.clip.encode(self.text, **unprojected)
        text_dim = self.gligen_textbox_model.text_dim
        if pooled is None or pooled.shape[-1] != text_dim:
            got = "none" if pooled is None else f"{pooled.shape[-1]} wide"
            raise NodeInputError("clip", f"this GLIGEN model takes a {text_dim}-wide pooled text embedding (SD1.x's "
                                         f"CLIP-L); the text encoder's is {got}")
        box = (pooled, self.height // 8, self.width // 8, self.y // 8, self.x // 8)
        out = []
        for cond, options in self.conditioning_to:
            previous = options.get("gligen")
            boxes = (previous.boxes if previous is not None else []) + [box]
            if len(boxes) > MAX_OBJECTS:
                raise NodeInputError("conditioning_to", f"GLIGEN takes at most {MAX_OBJECTS} boxes per conditioning")
            out.append((cond, {**options, "gligen": GligenBoxes(self.gligen_textbox_model, boxes)}))
        return out
