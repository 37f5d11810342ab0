"""Live previews while sampling: a cheap linear latent -> RGB map, no VAE decode.

The map is the latent format's own (`LatentFormat.preview`, least-squares RGB factors fitted to
the real VAE for SD1/SDXL). A format without one (an object lacking `preview`) is shown as its
first three channels, each stretched to its own range: enough to see composition appear.
"""

import io

import torch
from PIL import Image


def latent_preview(x: torch.Tensor, latent_format) -> torch.Tensor:
    """Model-space latent [B, C, h, w] -> preview IMAGE [1, h, w, 3] in 0..1 (float32, CPU) of
    the first image of the batch."""
    x = x[:1].detach().float().cpu()
    if hasattr(latent_format, "preview"):
        return latent_format.preview(x)
    rgb = x[:, :3].permute(0, 2, 3, 1)
    if rgb.shape[-1] < 3:
        rgb = rgb[..., :1].expand(-1, -1, -1, 3)
    lo = rgb.amin(dim=(1, 2), keepdim=True)
    hi = rgb.amax(dim=(1, 2), keepdim=True)
    return (rgb - lo) / (hi - lo).clamp_min(1e-6)


def encode_preview(image: torch.Tensor, max_size: int = 512, format: str = "JPEG", quality: int = 90) -> bytes:
    """A preview IMAGE [1, h, w, 3] (or [h, w, 3]) -> JPEG/PNG bytes, upscaled with nearest
    neighbour so that its longer side is at most max_size (latents are 1/8 of the image)."""
    if image.ndim == 4:
        image = image[0]
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    picture = Image.fromarray(array, "RGB")
    scale = max(1, max_size // max(picture.size))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format=format, **({"quality": quality} if format.upper() == "JPEG" else {}))
    return buffer.getvalue()
