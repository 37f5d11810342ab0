"""PixArt-α and PixArt-Σ, as ComfyUI runs them: the transformer with LoadDiffusionModel
(UNETLoader; the original PixArt files or diffusers' PixArtTransformer2DModel as one file),
T5-XXL with LoadTextEncoder (CLIPLoader) type pixart, the SD1.x VAE for α and the SDXL VAE for Σ
with LoadVAE; prompts with CLIP Text Encode, or for α with the size conditioning below."""

from __future__ import annotations

from graphflow.api import CLIP, CONDITIONING, ComfyAlias, Int, Node, NodeInputError, Text
from nodes.conditioning import MAX_SIZE, encoded


class CLIPTextEncodePixArtAlpha(Node):
    """Encode a prompt and set PixArt-α's resolution conditioning: width and height are the
    size (and so the aspect ratio) the picture should look made at, which α was trained to take
    in; without this node α is told the size being generated. PixArt-Σ has no such input and
    ignores it. Height 0 gives aspect ratio 0, as in ComfyUI; width 0 is refused (ComfyUI divides
    by it)."""
    category = "advanced/conditioning"
    width: int = Int(1024, min=0, max=MAX_SIZE)
    height: int = Int(1024, min=0, max=MAX_SIZE)
    text: str = Text("", multiline=True)
    clip: CLIP
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncodePixArtAlpha",))

    def run(self):
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder connected: load T5-XXL with CLIPLoader type pixart")
        if self.width <= 0:
            raise NodeInputError("width", f"must be a positive size in pixels (the aspect ratio is height / width), "
                                          f"got {self.width}")

        def encode(clip):
            cond, pooled = clip.encode(self.text)
            options = {"width": self.width, "height": self.height}
            return cond, options if pooled is None else {**options, "pooled_output": pooled}

        return encoded(self.clip, encode)
