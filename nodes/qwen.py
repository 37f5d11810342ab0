"""Qwen-Image's prompt nodes, as ComfyUI's comfy_extras/nodes_qwen.py: Qwen2.5-VL 7B (CLIPLoader
type qwen_image) encodes the prompt in a chat template, pictures (the Edit models' inputs) through
its vision tower into the same sequence, and a VAE makes each picture a reference latent."""

from __future__ import annotations

import math

from graphflow.api import CLIP, CONDITIONING, IMAGE, VAE, ComfyAlias, Node, NodeInputError, Text
from nodes.conditioning import append_options, encoded

REFERENCE_PIXELS = 1024 * 1024  # the size pictures are scaled to for the VAE (and Edit's vision tower)
PLUS_VISION_PIXELS = 384 * 384  # EditPlus's pictures for the vision tower


def _area_scaled(image, pixels: int, multiple: int = 1):
    """IMAGE [B, H, W, C] resized ("area") to about `pixels` pixels, its aspect kept, each side
    rounded (to a multiple of `multiple`), RGB: as ComfyUI's Qwen edit nodes size pictures."""
    from graphflow.images import resize_nchw

    height, width = image.shape[1:3]
    scale = math.sqrt(pixels / (width * height))
    w, h = round(width * scale / multiple) * multiple, round(height * scale / multiple) * multiple
    return resize_nchw(image.movedim(-1, 1), w, h, "area").movedim(1, -1)[..., :3]


def _encode(clip, prompt: str, template: str | None, pictures: list, references: list) -> list:
    """The CONDITIONING of `prompt` in `template` (None: the encoder's own) with `pictures` in it,
    `references` (latents) appended to its reference latents. Another text encoder than Qwen's
    reads the prompt alone, as ComfyUI's other tokenizers ignore templates and pictures."""
    if clip is None:
        raise NodeInputError("clip", "no text encoder connected: load Qwen2.5-VL 7B with CLIPLoader type qwen_image")
    qwen = getattr(clip, "arch", None) in ("qwen_image", "hunyuan_image")  # HunyuanImage's is Qwen-Image's path

    def encode(clip):
        try:
            cond, pooled, *extra = (clip.encode(prompt, template=template, pictures=pictures) if qwen
                                    else clip.encode(prompt))
        except ValueError as e:  # a file without its vision tower
            raise NodeInputError("clip", str(e)) from None
        # a third item: more options (HunyuanImage's conditioning_byt5small, HiDream's conditioning_llama3)
        return cond, {**({} if pooled is None else {"pooled_output": pooled}), **(extra[0] if extra else {})}

    conditioning = encoded(clip, encode)
    if references:
        conditioning = append_options(conditioning, reference_latents=references)
    return conditioning


class TextEncodeQwenImageEdit(Node):
    """Encode a prompt for Qwen-Image Edit. Without an image it is CLIPTextEncode (Qwen-Image's
    text-to-image template). With one, the image scaled to about 1024 x 1024 pixels goes through
    Qwen2.5-VL's vision tower into the edit template (its system prompt: "Describe the key
    features of the input image ..."), and with a VAE it also becomes the reference latent the
    model edits."""
    category = "advanced/conditioning"
    clip: CLIP
    prompt: str = Text("", multiline=True)
    vae: VAE = None
    image: IMAGE = None
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("TextEncodeQwenImageEdit",), optional=("vae", "image"))

    def run(self):
        pictures, references = [], []
        if self.image is not None:
            picture = _area_scaled(self.image, REFERENCE_PIXELS)
            pictures.append(picture)
            if self.vae is not None:
                references.append(self.vae.encode(picture))
        return _encode(self.clip, self.prompt, None, pictures, references)


class TextEncodeQwenImageEditPlus(Node):
    """Encode a prompt for Qwen-Image Edit 2509 with up to three images: each connected one n
    becomes "Picture n: " and its tokens (scaled to about 384 x 384 pixels for the vision tower)
    before the prompt, all in the template whose system prompt reads "Describe the key features
    of the input image (color, shape, size, texture, objects, background), then explain how the
    user's text instruction should alter or modify the image. Generate a new image that meets the
    user's requirements while maintaining consistency with the original input where
    appropriate." With a VAE each image (about 1024 x 1024, sides multiples of 8) also becomes a
    reference latent. Without images: the prompt alone in that template."""
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
        from graphflow.models.qwen25vl import EDIT_TEMPLATE, PICTURE

        pictures, references, named = [], [], ""
        for n, image in enumerate((self.image1, self.image2, self.image3), start=1):
            if image is None:
                continue
            pictures.append(_area_scaled(image, PLUS_VISION_PIXELS))
            if self.vae is not None:
                references.append(self.vae.encode(_area_scaled(image, REFERENCE_PIXELS, multiple=8)))
            named += f"Picture {n}: {PICTURE}"
        return _encode(self.clip, named + self.prompt, EDIT_TEMPLATE, pictures, references)
