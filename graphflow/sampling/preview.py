"""Live previews while sampling, and the one place that decides how they are made.

The method is a process-wide setting (`graphflow run/serve --previews`, set_preview_method):
  none        no previews (saves the work)
  latent2rgb  a cheap linear latent -> RGB map, no VAE decode (the default)
  taesd       the tiny autoencoder's decoder (graphflow.models.taesd) for the model's latent family,
              when its file is in models/vae_approx/ (taesd_decoder, taesdxl_decoder,
              taesd3_decoder, taef1_decoder .safetensors/.pth); else latent2rgb

The map is the latent format's own (`LatentFormat.preview`, least-squares RGB factors fitted to
the real VAE for SD1/SDXL). A format without one (an object lacking `preview`) is shown as its
first three channels, each stretched to its own range: enough to see composition appear.
A diffusers SDXL folder's latents_mean / latents_std keep SDXL's name and fit but not SDXL's space,
so latent2rgb maps its latents first (preview_space), as taesd does.
"""

import io
import logging
import threading

import torch
from PIL import Image

from graphflow.choices import PREVIEW_METHODS

log = logging.getLogger(__name__)

# the latent format's family -> the TAESD release for it (ComfyUI's file names); Playground v2.5
# shares SDXL's VAE, so TAESDXL decodes its latents once they are put in SDXL's model space (as any
# SDXL-VAE format's: make_preview)
TAESD_FOR_FAMILY = {"sd1": "taesd", "sd2": "taesd", "sdxl": "taesdxl", "sdxl_playground_2_5": "taesdxl",
                    "sd3": "taesd3", "flux": "taef1"}

_method = "latent2rgb"
_decoders: dict = {}  # (path, size, mtime, device) -> decoder module
_lock = threading.Lock()


def set_preview_method(method: str) -> None:
    global _method
    if method not in PREVIEW_METHODS:
        raise ValueError(f"unknown preview method {method!r}; expected one of {', '.join(PREVIEW_METHODS)}")
    _method = method


def preview_method() -> str:
    return _method


def make_preview(x: torch.Tensor, latent_format) -> torch.Tensor | None:
    """The sampler's preview of a model-space latent [B, C, h, w] by the configured method:
    IMAGE [1, H, W, 3] in 0..1 (CPU float32), or None when previews are off. A video latent
    [B, C, frames, h, w] is previewed by its first frame."""
    if _method == "none":
        return None
    if x.ndim == 5:
        x = x[:, :, 0]
    if _method == "taesd":
        decoder = taesd_decoder(latent_format, x.device)
        if decoder is not None and TAESD_FOR_FAMILY[latent_format.name] == "taesdxl":
            from graphflow.models.latent_formats import SDXL

            # TAESDXL decodes SDXL's model space; Playground's normalisation (ComfyUI hands it over as
            # it is) or a diffusers folder's latents_mean / latents_std is mapped back to it first
            x = SDXL.process_in(latent_format.process_out(x[:1].float()))
        if decoder is not None:
            with torch.no_grad():
                weight = next(decoder.parameters())
                image = decoder(x[:1].detach().to(weight.device, weight.dtype))
            return image.float().clamp(0, 1).permute(0, 2, 3, 1).cpu()
    return latent_preview(x, latent_format)


def taesd_decoder(latent_format, device=None):
    """The TAESD decoder for this latent format's family from models/vae_approx/, or None (no file,
    another family, or a file that can't be read: logged once, previews fall back to latent2rgb)."""
    from graphflow.folders import folders

    name = TAESD_FOR_FAMILY.get(getattr(latent_format, "name", ""))
    if name is None:
        return None
    path = None
    for suffix in (".safetensors", ".pth"):
        try:
            path = folders.find_model("vae_approx", f"{name}_decoder{suffix}")
            break
        except (FileNotFoundError, ValueError):
            continue
    if path is None:
        return None
    from graphflow.models.weight_files import file_state

    key = (str(path), file_state(path), str(device))
    with _lock:
        if key not in _decoders:
            from graphflow.models.taesd import load_half
            from graphflow.models.weight_files import CheckpointError

            try:
                decoder = load_half(path, "decoder", device)
                if decoder[1].in_channels != latent_format.channels:
                    raise CheckpointError(f"{path.name} decodes {decoder[1].in_channels}-channel latents, "
                                          f"the model makes {latent_format.channels}")
            except CheckpointError as e:
                log.warning("TAESD previews off, using latent2rgb: %s", e)
                decoder = None
            _decoders.clear()  # one decoder at a time: a new file or device replaces the old
            _decoders[key] = decoder
        return _decoders[key]


def latent_preview(x: torch.Tensor, latent_format) -> torch.Tensor:
    """Model-space latent [B, C, h, w] -> preview IMAGE [1, h, w, 3] in 0..1 (float32, CPU) of
    the first image of the batch."""
    x = x[:1].detach().float().cpu()
    if hasattr(latent_format, "preview"):
        latent_format, x = preview_space(latent_format, x)
        return latent_format.preview(x)
    rgb = x[:, :3].permute(0, 2, 3, 1)
    if rgb.shape[-1] < 3:
        rgb = rgb[..., :1].expand(-1, -1, -1, 3)
    lo = rgb.amin(dim=(1, 2), keepdim=True)
    hi = rgb.amax(dim=(1, 2), keepdim=True)
    return (rgb - lo) / (hi - lo).clamp_min(1e-6)


def _same_space(a, b) -> bool:
    import math

    def close(u, v):
        return u is not None and v is not None and len(u) == len(v) and all(math.isclose(p, q, rel_tol=1e-4)
                                                                          for p, q in zip(u, v))
    return close(a.channel_mean, b.channel_mean) and close(a.channel_std, b.channel_std) \
        and close((a.scale_factor, a.shift_factor), (b.scale_factor, b.shift_factor))


def preview_space(latent_format, x: torch.Tensor):
    """The format whose preview fit applies to the model-space latent x, and x in that format's space.
    SDXL's fit is for raw latent x 0.13025; a diffusers SDXL folder's latents_mean / latents_std
    (StableDiffusionXLPipeline's) standardise each channel first, which that fit was not made for.
    Playground v2.5's folder holds its single file's space exactly, where ComfyUI's
    SDXL_Playground_2_5 fit applies as it is; any other such folder goes back to SDXL's space."""
    from graphflow.models.latent_formats import PLAYGROUND_2_5, SDXL

    if getattr(latent_format, "name", "") != "sdxl" or latent_format.channel_mean is None:
        return latent_format, x
    if _same_space(latent_format, PLAYGROUND_2_5):
        return PLAYGROUND_2_5, x
    return SDXL, SDXL.process_in(latent_format.process_out(x))


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
