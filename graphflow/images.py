"""IMAGE/MASK tensors to and from Pillow, and resizing, shared by nodes, server and diagnostics.

IMAGE is float [B, H, W, C] in 0..1; MASK is float [B, H, W] in 0..1.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from graphflow.choices import RESIZE_METHODS  # noqa: F401 (re-exported)



def pil_to_image(picture: Image.Image) -> torch.Tensor:
    """One picture as an IMAGE batch of 1, RGB, EXIF orientation applied."""
    picture = ImageOps.exif_transpose(picture)
    rgb = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb.copy())[None]


def pil_alpha_mask(picture: Image.Image) -> torch.Tensor:
    """The MASK of a picture: 1 - alpha (transparent = to be painted). Without alpha it is
    ComfyUI's [1, 64, 64] of zeros, not the picture's size: masks are resized where they are used."""
    picture = ImageOps.exif_transpose(picture)
    if "A" in picture.getbands() or (picture.mode == "P" and "transparency" in picture.info):
        alpha = np.asarray(picture.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
        return torch.from_numpy(1.0 - alpha)[None]
    return torch.zeros(1, 64, 64)


def image_to_pil(image: torch.Tensor) -> Image.Image:
    """One image [H, W, C] (or a batch of one) as an 8-bit picture: grey for one channel, RGBA for
    four (JoinImageWithAlpha's), else RGB. A mask [H, W] (one of a mask batch that a pack's node
    put on an IMAGE socket) is grey too, as ComfyUI's Image.fromarray makes a 2-D array. Values are
    truncated to 8 bits as ComfyUI's savers do (255 x value, clipped, cast), so the same tensor
    gives ComfyUI's file to the bit."""
    if image.dim() == 4:
        image = image[0]
    array = np.clip(image.detach().float().cpu().numpy() * 255.0, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return Image.fromarray(array, "L")
    if array.shape[-1] == 1:
        return Image.fromarray(array[..., 0], "L")
    if array.shape[-1] == 4:
        return Image.fromarray(array, "RGBA")
    return Image.fromarray(array[..., :3], "RGB")


def picture_file(image: torch.Tensor, format: str = "PNG") -> bytes:
    """One image (image_to_pil's) as a PNG file (fast compression, as ComfyUI's websocket savers
    write it) or a JPEG (quality 95, no alpha: the ETN pack's)."""
    import io

    picture = image_to_pil(image)
    buffer = io.BytesIO()
    if format == "JPEG":
        picture.convert("RGB").save(buffer, format="JPEG", quality=95)
    else:
        picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def resize_nchw(x: torch.Tensor, width: int, height: int, method: str) -> torch.Tensor:
    """Resize an NCHW tensor (images or latents) with one of RESIZE_METHODS, as ComfyUI's
    common_upscale does, so imported graphs give its pixels: plain (not antialiased) torch
    interpolation, unclamped (bicubic overshoots 0..1 at sharp edges), and Lanczos through Pillow
    on 8-bit pictures (values clipped to 0..1 and truncated to 1/255 steps first, as ComfyUI's
    `lanczos` does). Two, three or four channels are resized as one LA, RGB or RGBA picture, as
    ComfyUI hands them to Pillow (which premultiplies LA and RGBA by their alpha); other counts
    channel by channel (one channel, where ComfyUI's Pillow call fails)."""
    if method == "lanczos":
        return pil_resize(x, width, height, "LANCZOS")
    if method in ("bilinear", "bicubic", "nearest-exact", "area"):
        return F.interpolate(x, size=(height, width), mode=method)
    raise ValueError(f"unknown resize method {method!r}; expected one of {', '.join(RESIZE_METHODS)}")


def pil_resize(x: torch.Tensor, width: int, height: int, resample: str = "LANCZOS") -> torch.Tensor:
    """Resize an NCHW tensor through Pillow with one of its filters (LANCZOS, BICUBIC, HAMMING,
    BILINEAR, BOX, NEAREST) on 8-bit pictures: values clipped to 0..1 and truncated to 1/255
    steps first, as torchvision's ToPILImage (and ComfyUI's `lanczos`) make them. Two, three or
    four channels are resized as one LA, RGB or RGBA picture; other counts channel by channel."""
    filter_ = Image.Resampling[resample]
    out = torch.empty(x.shape[0], x.shape[1], height, width, dtype=x.dtype)
    levels = (x.float().cpu().numpy() * 255.0).clip(0, 255).astype(np.uint8)
    for b in range(x.shape[0]):
        if x.shape[1] in (2, 3, 4):  # Pillow's LA, RGB, RGBA from the array's shape, as ComfyUI's
            picture = Image.fromarray(np.ascontiguousarray(levels[b].transpose(1, 2, 0)))
            resized = np.asarray(picture.resize((width, height), filter_), dtype=np.float32)
            out[b] = torch.from_numpy(resized / 255.0).movedim(-1, 0)
            continue
        for c in range(x.shape[1]):
            channel = Image.fromarray(levels[b, c], mode="L").resize((width, height), filter_)
            out[b, c] = torch.from_numpy(np.asarray(channel, dtype=np.float32) / 255.0)
    return out.to(x.device)


def center_crop_to_aspect(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crop an NCHW tensor around its centre to the aspect ratio width:height, cutting the same
    whole number of pixels from both sides (ComfyUI's crop="center": round(excess / 2) each)."""
    h, w = x.shape[-2:]
    old, new = w / h, width / height
    if old > new:
        left = round((w - w * (new / old)) / 2)
        return x[..., :, left:w - left]
    if old < new:
        top = round((h - h * (old / new)) / 2)
        return x[..., top:h - top, :]
    return x


def _slerp(a: torch.Tensor, b: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of vectors along dim 1 ([N, C, ...]), with the norms interpolated
    linearly; nearly parallel vectors take a, opposite ones the plain lerp."""
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    ua = torch.where(na == 0, torch.zeros_like(a), a / na.clamp(min=1e-30))
    ub = torch.where(nb == 0, torch.zeros_like(b), b / nb.clamp(min=1e-30))
    dot = (ua * ub).sum(1, keepdim=True).clamp(-1, 1)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    safe_so = torch.where(so.abs() < 1e-7, torch.ones_like(so), so)
    out = (torch.sin((1 - r) * omega) / safe_so) * ua + (torch.sin(r * omega) / safe_so) * ub
    out = out * (na * (1 - r) + nb * r)
    out = torch.where(dot > 1 - 1e-5, a, out)
    return torch.where(dot < 1e-5 - 1, a * (1 - r) + b * r, out)


def _bislerp_axis(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    old = x.shape[dim]

    def resized(ramp):  # a ramp of source indices bilinearly resized to `size` (float32, as ComfyUI)
        return F.interpolate(ramp.reshape(1, 1, 1, -1), size=(1, size), mode="bilinear").reshape(-1)

    # Source positions as bilinear resizing (half-pixel centres, clamped at the edges) picks them,
    # found as ComfyUI finds them: by resizing the index ramp itself, whose float32 rounding picks
    # the neighbours and weights ComfyUI's bislerp uses (exact positions differ by ~1e-5). Made on
    # x's device: a sampler upscales mid-loop, where a host copy would wait for the GPU.
    ramp = torch.arange(old, dtype=torch.float32, device=x.device)
    pos = resized(ramp)
    i0 = pos.long()
    i1 = resized(torch.cat([ramp[1:], ramp[-1:]])).long()  # the next index, the last repeated
    shape = [1] * x.ndim
    shape[dim] = size
    r = (pos - pos.floor()).to(x.dtype).reshape(shape)
    return _slerp(x.index_select(dim, i0), x.index_select(dim, i1), r)


def bislerp(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize NCHW latents like bilinear, but interpolating each position's channel vector
    spherically (direction slerped, length lerped), which keeps latents from washing out."""
    x = x.float()
    return _bislerp_axis(_bislerp_axis(x, width, 3), height, 2)


def composite_masked(destination: torch.Tensor, source: torch.Tensor, x: int, y: int,
                     mask: torch.Tensor | None = None, multiplier: int = 1,
                     resize_source: bool = False) -> torch.Tensor:
    """Paste `source` ([B, C, H, W], or video latents [B, C, T, H, W]) into a copy of
    `destination` with its top-left corner at pixel (x, y) (divided by `multiplier`: 8 for
    latents), blended by `mask` (resized to the source; mask i goes with batch item i and, for
    video, with all its frames) where given; the part outside the destination is cut off. A
    source of one frame goes into every frame. ComfyUI's ImageCompositeMasked /
    LatentCompositeMasked."""
    out = destination.clone()
    if resize_source:  # frame by frame for video (ComfyUI's 2-D resize fails on it)
        resized = F.interpolate(source.reshape(source.shape[0], -1, *source.shape[-2:]),
                                size=out.shape[-2:], mode="bilinear")
        source = resized.reshape(*source.shape[:-2], *out.shape[-2:])
    source = source.to(out.dtype)
    if source.shape[0] != out.shape[0]:
        source = source.repeat(-(-out.shape[0] // source.shape[0]), *[1] * (source.ndim - 1))[:out.shape[0]]
    left, top = x // multiplier, y // multiplier
    h = min(source.shape[-2], out.shape[-2] - top)
    w = min(source.shape[-1], out.shape[-1] - left)
    if h <= 0 or w <= 0:
        return out
    if mask is None:
        mask = torch.ones_like(source)
    else:
        mask = F.interpolate(mask.float().reshape(-1, 1, *mask.shape[-2:]), size=source.shape[-2:],
                             mode="bilinear").to(out.dtype)
        if mask.shape[0] != source.shape[0]:
            mask = mask.repeat(-(-source.shape[0] // mask.shape[0]), 1, 1, 1)[:source.shape[0]]
        mask = mask.reshape(mask.shape[0], *[1] * (source.ndim - 3), *mask.shape[-2:])
    mask = mask[..., :h, :w]
    region = out[..., top:top + h, left:left + w]
    out[..., top:top + h, left:left + w] = mask * source[..., :h, :w] + (1 - mask) * region
    return out
