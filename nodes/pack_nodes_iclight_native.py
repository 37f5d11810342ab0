"""huchenlei's ComfyUI-IC-Light-Native: its two helper classes, under the pack's class names, inputs
and categories, read at ic_light_nodes.py 22d923a811fff7f1bddc58f0fe667b6467b59b08.

Left out: its ICLightAppply (graphflow/comfy_format.py ICLIGHT_NATIVE_LEFT_OUT): IC-Light runs through
kijai's LoadAndApplyICLightUnet and ICLightConditioning (nodes/pack_nodes_iclight.py).
"""

from __future__ import annotations

from graphflow.api import IMAGE, LATENT, MASK, VAE, ComfyAlias, Node, NodeInputError
from nodes.image import _image

COMFY_PACK = "ComfyUI-IC-Light-Native"  # the custom node pack this module's ComfyUI classes come from


class ICLightNativeApplyMaskGrey(Node):
    """IC Light Apply Mask Grey: the picture where alpha is 1, mid grey (0.5) where it is 0, blended
    in between (image × alpha + (1 - alpha) × 0.5; not clamped, as in the pack). The mask must have
    the picture's size; a mask batch of one serves each picture."""
    category = "mask/compositing"
    image: IMAGE
    alpha: MASK
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ICLightApplyMaskGrey",))

    def run(self):
        image = _image(self.image, "image")
        alpha = self.alpha.float().reshape(-1, *self.alpha.shape[-2:])
        if tuple(alpha.shape[-2:]) != tuple(image.shape[1:3]) or alpha.shape[0] not in (1, image.shape[0]):
            raise NodeInputError("alpha", f"{alpha.shape[0]} × {alpha.shape[2]}×{alpha.shape[1]}: expected one mask "
                                          f"or one a picture, at {image.shape[2]}×{image.shape[1]}")
        alpha = alpha[..., None].to(image)
        return image * alpha + (1 - alpha) * 0.5


class ICLightNativeVAEEncodeArgMax(Node):
    """VAE Encode ArgMax: the pictures' latents as the mode of the VAE's latent distribution (its mean)
    instead of a draw from it. graphflow's VAEEncode gives the mean already: this is the same encoding,
    under the pack's name."""
    category = "latent"
    pixels: IMAGE
    vae: VAE
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("VAEEncodeArgMax",))

    def run(self):
        from nodes.vae import _require_vae
        return {"samples": _require_vae(self.vae).encode(_image(self.pixels, "pixels"))}
