"""Qwen-Image's prompt nodes, as ComfyUI's comfy_extras/nodes_qwen.py: Qwen2.5-VL 7B (CLIPLoader
type qwen_image) encodes the prompt in a chat template. Pictures (the Edit models' image inputs)
go through Qwen2.5-VL's vision tower, which graphflow does not run yet: they are refused."""

from __future__ import annotations

from graphflow.api import CLIP, CONDITIONING, IMAGE, VAE, ComfyAlias, Node, NodeInputError, Text
from nodes.conditioning import encoded


def _refuse_pictures(node: Node, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(node, name) is not None:
            raise NodeInputError(name, "pictures for Qwen-Image Edit go through Qwen2.5-VL's vision tower, which "
                                       "graphflow does not support yet: leave the image inputs unconnected to encode "
                                       "the prompt alone")


def _encode(clip, prompt: str, template: str | None) -> list:
    """The CONDITIONING of `prompt` in `template` (None: the encoder's own, Qwen-Image's text-to-image
    one). Another text encoder than Qwen's reads the prompt alone, as ComfyUI's tokenizers ignore
    the template they are handed."""
    if clip is None:
        raise NodeInputError("clip", "no text encoder connected: load Qwen2.5-VL 7B with CLIPLoader type qwen_image")
    qwen = getattr(clip, "arch", None) == "qwen_image"

    def encode(clip):
        cond, pooled = clip.encode(prompt, template=template) if qwen and template else clip.encode(prompt)
        return cond, {} if pooled is None else {"pooled_output": pooled}

    return encoded(clip, encode)


class TextEncodeQwenImageEdit(Node):
    """Encode a prompt for Qwen-Image Edit. Without an image (all graphflow takes for now) it is
    CLIPTextEncode: the prompt in Qwen-Image's text-to-image template. An image (Qwen2.5-VL's
    vision tower, and with a VAE its reference latent) is not supported yet and is refused."""
    category = "advanced/conditioning"
    clip: CLIP
    prompt: str = Text("", multiline=True)
    vae: VAE = None
    image: IMAGE = None
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("TextEncodeQwenImageEdit",), optional=("vae", "image"))

    def run(self):
        _refuse_pictures(self, ("image",))
        return _encode(self.clip, self.prompt, None)


class TextEncodeQwenImageEditPlus(Node):
    """Encode a prompt for Qwen-Image Edit 2509: the prompt in its template, whose system prompt
    reads "Describe the key features of the input image (color, shape, size, texture, objects,
    background), then explain how the user's text instruction should alter or modify the image.
    Generate a new image that meets the user's requirements while maintaining consistency with
    the original input where appropriate." Images (image1..3: "Picture n: " and Qwen2.5-VL's
    vision tower, reference latents with a VAE) are not supported yet and are refused."""
    category = "advanced/conditioning"
    clip: CLIP
    prompt: str = Text("", multiline=True)
    vae: VAE = None
    image1: IMAGE = None
    image2: IMAGE = None
    image3: IMAGE = None
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("TextEncodeQwenImageEditPlus",), optional=("vae", "image1", "image2", "image3"))

    def run(self):
        from graphflow.models.qwen25vl import EDIT_TEMPLATE

        _refuse_pictures(self, ("image1", "image2", "image3"))
        return _encode(self.clip, self.prompt, EDIT_TEMPLATE)
