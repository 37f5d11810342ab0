"""IMAGE/MASK tensors to and from Pillow, and resizing, shared by nodes, server and diagnostics.

IMAGE is float [B, H, W, C] in 0..1; MASK is float [B, H, W] in 0..1.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

RESIZE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")


def pil_to_image(picture: Image.Image) -> torch.Tensor:
    """One picture as an IMAGE batch of 1, RGB, EXIF orientation applied."""
    picture = ImageOps.exif_transpose(picture)
    rgb = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb.copy())[None]


def pil_alpha_mask(picture: Image.Image) -> torch.Tensor:
    """The MASK of a picture: 1 - alpha (transparent = to be painted), zeros if it has no alpha."""
    picture = ImageOps.exif_transpose(picture)
    if "A" in picture.getbands() or (picture.mode == "P" and "transparency" in picture.info):
        alpha = np.asarray(picture.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
        return torch.from_numpy(1.0 - alpha)[None]
    return torch.zeros(1, picture.height, picture.width)


def image_to_pil(image: torch.Tensor) -> Image.Image:
    """One image [H, W, C] (or a batch of one) as an 8-bit RGB picture."""
    if image.dim() == 4:
        image = image[0]
    array = (image.detach().float().clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    if array.shape[-1] == 1:
        return Image.fromarray(array[..., 0], "L")
    return Image.fromarray(array[..., :3], "RGB")


def resize_nchw(x: torch.Tensor, width: int, height: int, method: str) -> torch.Tensor:
    """Resize an NCHW tensor (images or latents) with one of RESIZE_METHODS."""
    if method == "lanczos":
        # Pillow's Lanczos per channel, in float mode so nothing is quantised.
        out = torch.empty(x.shape[0], x.shape[1], height, width, dtype=x.dtype)
        for b in range(x.shape[0]):
            for c in range(x.shape[1]):
                channel = Image.fromarray(x[b, c].float().cpu().numpy(), mode="F")
                out[b, c] = torch.from_numpy(np.array(channel.resize((width, height), Image.LANCZOS)))
        return out
    if method == "bicubic":
        return F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    if method == "bilinear":
        return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    if method in ("nearest-exact", "area"):
        return F.interpolate(x, size=(height, width), mode=method)
    raise ValueError(f"unknown resize method {method!r}; expected one of {', '.join(RESIZE_METHODS)}")


def center_crop_to_aspect(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crop an NCHW tensor around its centre to the aspect ratio width:height."""
    h, w = x.shape[-2:]
    target = width / height
    if w / h > target:
        new_w = round(h * target)
        left = (w - new_w) // 2
        return x[..., :, left:left + new_w]
    new_h = round(w / target)
    top = (h - new_h) // 2
    return x[..., top:top + new_h, :]
