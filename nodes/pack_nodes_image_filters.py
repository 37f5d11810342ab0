"""spacepxl's ComfyUI-Image-Filters, under the pack's class names, inputs and outputs, as its
nodes.py at commit 7ba4e444f0416f5cf7ee55d56b1504dea2404ac7 registers them (NODE_CLASS_MAPPINGS;
the stored __init__.py, 94279ac5, reads a COMBINED_MAPPINGS of a version not seen here).

This module: the image and mask filters (AlphaClean, BetterFilmGrain, BlurImageFast,
BlurMaskFast, BilateralFilterImage, MedianFilterImage, GuidedFilterImage, GuidedFilterAlpha,
EnhanceDetail, ColorMatchImage, RestoreDetail, FrequencySeparate, FrequencyCombine, RemapRange,
ClampImage, ShuffleChannels, AdainImage, BatchNormalizeImage, BatchAverageImage,
DifferenceChecker, DilateErodeMask, ImageConstant, ImageConstantHSV, RelightSimple, Tonemap,
UnTonemap, ExposureAdjust, ConvertNormals, NormalMapSimple, DepthToNormals, Keyer, JitterImage,
UnJitterImage, BatchAverageUnJittered). Part two, nodes/pack_nodes_image_filters_more.py: the
latent filters, conditioning, noise and sigma nodes, and the generated frames.

The pack's guided filter is OpenCV-contrib's cv2.ximgproc.guidedFilter, which graphflow does not
depend on: `guided_filter` below is He et al.'s box-filter form written here in torch (OpenCV's
float path: a window of 2r+1 mirrored at the border, eps added to the guide's (co)variance; a
colour guide solves the per-pixel channel covariance). It follows OpenCV's one departure from the
formula: with a 3-channel guide and eps under 0.01, a window whose regularised covariance has a
determinant under 1e-6 in size is solved with the determinant taken as 1 (a flat or grey guide
there). It is computed in float64 where OpenCV works in float32, so results differ by float32's
rounding. The other filters are the OpenCV calls the pack makes (opencv-python-headless is
declared).

Left out: AlphaMatte (pymatting's closed-form matting, a library graphflow does not depend on),
BatchAlign and UnJitterImage's oflow_align (RAFT optical-flow weights the pack downloads),
ModelTest (runs the user's Python text). They are named in comfy_format.CUSTOM_PACKS, so a
workflow using them is refused naming this pack. The pack's LatentStats is
ImageFiltersLatentStats (part two), read only where a UI save names this pack: graphflow's own
LatentStats (nodes/diagnostics.py, another node) keeps that class name's other saves.
"""

from __future__ import annotations

from graphflow.api import (IMAGE, MASK, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size,
                           check_interrupted, show)
from nodes.image import _image
from nodes.pack_nodes_essentials import _mask

COMFY_PACK = "ComfyUI-Image-Filters"  # the custom node pack this module's ComfyUI classes come from

MAX_RESOLUTION = 8192  # the pack's own limit on its generated sizes
SEED_MAX = 0xffffffffffffffff

# -- shared filters ---------------------------------------------------------------------------


def _numpy(images):
    """A float32 numpy copy of a tensor batch, to run OpenCV on image by image."""
    return images.detach().cpu().float().numpy().copy()


def _each(batch, filter_one):
    """Apply an OpenCV call to each image (or mask) of a numpy batch, in place; the batch back as a
    tensor. An interrupt stops it between images."""
    import torch
    for index, item in enumerate(batch):
        check_interrupted()
        batch[index] = filter_one(item)
    return torch.from_numpy(batch)


def _downscaled(images, name: str):
    """The pack's shortcut for windows over 100 pixels: filter at a tenth of the size (bilinear);
    under 10 pixels a side that would be nothing (the pack fails there too)."""
    import torch.nn.functional as F
    if min(images.shape[1], images.shape[2]) < 10:
        raise NodeInputError(name, f"a window over 100 pixels works at a tenth of the size: expected at least "
                                   f"10x10 pixels, got {images.shape[2]}x{images.shape[1]} (use a smaller window)")
    return F.interpolate(images.movedim(-1, 1), scale_factor=0.1, mode="bilinear").movedim(1, -1)


def _upscaled(small, like):
    import torch.nn.functional as F
    return F.interpolate(small.movedim(-1, 1), size=(like.shape[1], like.shape[2]), mode="bilinear").movedim(1, -1)


def gaussian_blur(images, dx: int, dy: int, name: str = "images"):
    """OpenCV's GaussianBlur with a dx by dy window (sigma from the size) on each image of a
    [B, H, W(, C)] batch, as the pack's cv_blur_tensor: windows both over 100 run at a tenth of
    the size with a window of d // 20 * 2 + 1, then are scaled back (`name`: the input, for an
    image too small for that)."""
    import cv2
    if min(dx, dy) > 100:
        window = (dx // 20 * 2 + 1, dy // 20 * 2 + 1)
        return _upscaled(_each(_numpy(_downscaled(images, name)), lambda im: cv2.GaussianBlur(im, window, 0)), images)
    return _each(_numpy(images), lambda im: cv2.GaussianBlur(im, (dx, dy), 0))


def _mirrored_box_mean(x, radius: int, dim: int):
    """The mean over a window of 2*radius+1 along `dim`, the edge mirrored with its edge pixel
    repeated (OpenCV's BORDER_REFLECT: ...cba|abc...), also for windows wider than the image."""
    import torch
    n = x.shape[dim]
    positions = torch.arange(-radius, n + radius) % (2 * n)
    source = torch.where(positions < n, positions, 2 * n - 1 - positions)
    padded = x.index_select(dim, source.to(x.device))
    sums = padded.cumsum(dim)
    zero = torch.zeros_like(sums.narrow(dim, 0, 1))
    sums = torch.cat([zero, sums], dim)
    width = 2 * radius + 1
    return (sums.narrow(dim, width, n) - sums.narrow(dim, 0, n)) / width


def _box(x, radius: int):
    """Box mean of a [B, H, W, ...] tensor over H and W."""
    return _mirrored_box_mean(_mirrored_box_mean(x, radius, 1), radius, 2)


def guided_filter(guide, source, radius: int, eps: float):
    """He et al.'s guided filter of `source` [B, H, W(, C)] by `guide` [B, H, W(, G)], window
    2*radius+1, regularisation eps, each channel of the source filtered by all of the guide's:
    per window, the source is fitted as a linear function a . I + b of the guide
    (a = (cov(I) + eps U)^-1 cov(I, p), b = mean(p) - a . mean(I)); the output is the mean of
    the fitted a and b over the windows covering a pixel, applied to the guide there (a colour
    guide with eps under 0.01: OpenCV's rule for a near-singular covariance, see the module).
    Computed in float64 one image at a time (GUIDED_BYTES_PER_PIXEL), given as float32."""
    import torch
    guide = guide if guide.ndim == 4 else guide.unsqueeze(-1)
    flat = source.ndim == 3
    source = source.unsqueeze(-1) if flat else source
    filtered = []
    for i in range(len(source)):
        check_interrupted()
        filtered.append(_guided_filter_one(guide[i:i + 1].double(), source[i:i + 1].double(), radius, eps).float())
    q = torch.cat(filtered)
    return q.squeeze(-1) if flat else q


# The working memory of one image's guided filter (RGB guide and source), measured at its peak
# with torch's profiler (tests/test_pack_nodes_image_filters.py): about 920 bytes per pixel, some
# 115 float64 values (the float64 copies, the guide's 3x3 covariances and their box sums'
# padded copies, the 3x3 fits, the float32 result); declared a little under it (less the result,
# which the planner counts as the output), so it stays a lower bound.
GUIDED_BYTES_PER_PIXEL = 8 * 105


def _guided_filter_one(guide, p, radius: int, eps: float):
    import torch
    mean_i = _box(guide, radius)  # [1, H, W, G]
    mean_p = _box(p, radius)  # [1, H, W, C]
    corr_ii = _box(guide.unsqueeze(-1) * guide.unsqueeze(-2), radius)  # [1, H, W, G, G]
    corr_ip = _box(guide.unsqueeze(-1) * p.unsqueeze(-2), radius)  # [1, H, W, G, C]
    cov_ii = corr_ii - mean_i.unsqueeze(-1) * mean_i.unsqueeze(-2)
    cov_ip = corr_ip - mean_i.unsqueeze(-1) * mean_p.unsqueeze(-2)
    eye = torch.eye(guide.shape[-1], dtype=torch.float64, device=guide.device)
    regularised = cov_ii + eps * eye
    if guide.shape[-1] == 3 and eps < 1e-2:
        a = _opencv_colour_solve(regularised, cov_ip)
    else:
        a = torch.linalg.solve(regularised, cov_ip)  # [1, H, W, G, C]
    b = mean_p - (a * mean_i.unsqueeze(-1)).sum(-2)
    return (_box(a, radius) * guide.unsqueeze(-1)).sum(-2) + _box(b, radius)


def _opencv_colour_solve(m, rhs):
    """m^-1 rhs as OpenCV-contrib's guided filter computes it for a 3-channel guide: the
    adjugate over the determinant, where for eps under 0.01 a determinant under 1e-6 in size
    counts as 1 (ComputeCovGuideInv_ParBody), so a flat or grey window's fit is the adjugate's."""
    import torch
    rows = [m[..., i, :] for i in range(3)]
    adjugate = torch.stack([torch.linalg.cross(rows[1], rows[2]), torch.linalg.cross(rows[2], rows[0]),
                            torch.linalg.cross(rows[0], rows[1])], -1)  # m is symmetric
    det = (rows[0] * adjugate[..., :, 0]).sum(-1)
    det = torch.where(det.abs() < 1e-6, torch.ones_like(det), det)
    return adjugate @ rhs / det[..., None, None]


def _guided_estimate(size, d: int = 1):
    """The output is the input's size; the working memory one image's guided filter (of window
    d: over 100 it runs at a tenth of the side)."""
    if size is None:
        return Estimate(None)
    return Estimate(size, memory=GUIDED_BYTES_PER_PIXEL * size.pixels // (100 if d > 100 else 1))


def _guided_filter_scaled(guide, images, d: int, eps: float, name: str = "images"):
    """The pack's guided_filter_tensor: radius d, or for d over 100 at a tenth of the size with
    radius d // 20 * 2 + 1, scaled back."""
    if d > 100:
        small = guided_filter(_downscaled(guide, name), _downscaled(images, name), d // 20 * 2 + 1, eps)
        return _upscaled(small, images)
    return guided_filter(guide, images, d, eps)


def _matching_guide(guide, images, name: str):
    """The guide batch for `images`: one guide image per image (a longer guide batch is cut, as
    the pack indexes it), at the images' size."""
    if guide.shape[1:3] != images.shape[1:3] or len(guide) < len(images):
        raise NodeInputError(name, f"expected at least {len(images)} image(s) of {images.shape[2]}x{images.shape[1]}"
                                   f" (the images' batch and size), got {len(guide)} of "
                                   f"{guide.shape[2]}x{guide.shape[1]}")
    return guide[:len(images)]


def _bilateral_ready(images, name: str):
    """OpenCV's bilateral filter takes 1- or 3-channel float images only."""
    if images.shape[-1] not in (1, 3):
        raise NodeInputError(name, f"expected 1 or 3 channels (OpenCV's bilateral filter), got {images.shape[-1]}")
    return images


def _reference_batch(reference, count: int):
    """The pack's reference batches: the first image repeated when the reference batch is
    shorter; a longer one is cut."""
    if len(reference) < count:
        return reference[:1].repeat(count, *[1] * (reference.ndim - 1))
    return reference[:count]


def _latent(latent, name: str):
    import torch
    if not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")):
        raise NodeInputError(name, "expected a LATENT")
    return latent["samples"]


def _std_mean(x):
    """torch.std_mean over all of x (the unbiased standard deviation, as the pack takes)."""
    import torch
    return torch.std_mean(x, dim=None)


# -- images -----------------------------------------------------------------------------------


class AlphaClean(Node):
    """Clean up a rough alpha (white on black) as Image-Filters' Alpha Clean does: a light
    bilateral smoothing, divided by a blurred estimate of the white level (from pixels over
    white_threshold, times extra_clip), clipped to 0..1; fill_holes closes small dark holes
    (dilate, erode, blur of the squared alpha). OpenCV's bilateral filter takes 1 or 3 channels;
    white_threshold 1.0 would divide by zero and is refused."""
    category = "image/filters"
    images: IMAGE
    radius: int = Int(8, min=1, max=64)
    fill_holes: int = Int(1, min=0, max=16)
    white_threshold: float = Float(0.9, min=0.01, max=1.0, step=0.01)
    extra_clip: float = Float(0.98, min=0.01, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("AlphaClean",))

    def run(self):
        import cv2
        import numpy as np
        images = _bilateral_ready(_image(self.images, "images"), "images")
        if self.white_threshold >= 1.0:
            raise NodeInputError("white_threshold", "expected under 1.0: the white level is "
                                                    "(x - threshold) / (1 - threshold)")
        d, threshold = self.radius * 2 + 1, self.white_threshold

        def clean(image):
            cleaned = cv2.bilateralFilter(image, 9, 0.05, 8)
            alpha = np.clip((image - threshold) / (1 - threshold), 0, 1)
            white = image * alpha
            alpha = cv2.GaussianBlur(alpha, (d, d), 0) * 0.99 + np.average(alpha) * 0.01
            white = cv2.GaussianBlur(white, (d, d), 0) * 0.99 + np.average(white) * 0.01
            white = white / np.clip(alpha, 0.00001, 1) * self.extra_clip
            cleaned = np.clip(cleaned / white, 0, 1)
            if self.fill_holes > 0:
                size = self.fill_holes * 2 + 1
                closed = cv2.dilate(cleaned * cleaned, np.ones((size, size), np.uint8), iterations=1)
                closed = cv2.erode(closed, np.ones((size + 2, size + 2), np.uint8), iterations=1)
                cleaned = np.maximum(cleaned, cv2.GaussianBlur(closed, (size, size), 0))
            return cleaned
        return _each(_numpy(images), clean)


def rgb_to_ycbcr(t):
    """The pack's RGB -> YCbCr matrix (BT.709 luma)."""
    import torch
    r, g, b = t[..., 0], t[..., 1], t[..., 2]
    return torch.stack([0.2123 * r + 0.7152 * g + 0.0722 * b, -0.1146 * r - 0.3854 * g + 0.5 * b,
                        0.5 * r - 0.4542 * g - 0.0458 * b], -1)


def ycbcr_to_rgb(t):
    import torch
    y, cb, cr = t[..., 0], t[..., 1], t[..., 2]
    return torch.stack([y + 1.5748 * cr, y - 0.1873 * cb - 0.4681 * cr, y + 1.8556 * cb], -1)


# The film grain's working memory per grain pixel, measured (torch's allocations and numpy's at
# their peaks, tests/test_pack_nodes_image_filters.py): about 53 bytes in torch, 16 in numpy; declared
# a little under their sum, so it stays a lower bound.
GRAIN_BYTES_PER_PIXEL = 60


class BetterFilmGrain(Node):
    """Film grain as Image-Filters' Better Film Grain does: uniform noise (torch's global
    generator seeded with seed) at the image size / scale, blurred in YCbCr (3, 15 and 11 pixel
    windows), scaled by strength around 1 (red twice, blue three times), mixed toward the green
    grain by 1 - saturation, resized (bilinear) and multiplied into the inverted image; toe lifts
    the blacks. Alpha is kept. The grain of the whole batch is made at once: at scale 0.25 it has
    16 times the image's pixels (declared to the resource limits)."""
    category = "image/filters"
    image: IMAGE
    scale: float = Float(0.5, min=0.25, max=2.0, step=0.05)
    strength: float = Float(0.5, min=0.0, max=10.0, step=0.01)
    saturation: float = Float(0.7, min=0.0, max=2.0, step=0.01)
    toe: float = Float(0.0, min=-0.2, max=0.5, step=0.001)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("BetterFilmGrain",))

    @classmethod
    def estimate(cls, widgets, inputs):
        """The image's size out; the working memory the grain's (float32 noise, its YCbCr, the
        OpenCV blurs' copies, the mix) at (H / scale) x (W / scale) per image, a linked scale
        counted at its minimum."""
        size = inputs.get("image")
        if size is None:
            return Estimate(None)
        scale = widgets.get("scale")
        scale = scale if isinstance(scale, (int, float)) and scale > 0 else 0.25
        grain_pixels = int(size.height // scale) * int(size.width // scale)
        return Estimate(size, memory=GRAIN_BYTES_PER_PIXEL * size.batch * grain_pixels)

    def run(self):
        import torch
        import torch.nn.functional as F
        t = _image(self.image, "image").detach().clone()
        if t.shape[-1] < 3:
            raise NodeInputError("image", f"expected 3 or more channels (the grain is RGB), got {t.shape[-1]}")
        generator = torch.Generator().manual_seed(self.seed)  # the pack seeds torch's global one
        grain = torch.rand(t.shape[0], int(t.shape[1] // self.scale), int(t.shape[2] // self.scale), 3,
                           generator=generator)
        ycbcr = rgb_to_ycbcr(grain)
        ycbcr = torch.stack([gaussian_blur(ycbcr[..., 0], 3, 3), gaussian_blur(ycbcr[..., 1], 15, 15),
                             gaussian_blur(ycbcr[..., 2], 11, 11)], -1)
        grain = (ycbcr_to_rgb(ycbcr) - 0.5) * self.strength
        grain = grain * torch.tensor([2.0, 1.0, 3.0]) + 1
        grain = grain * self.saturation + grain[..., 1:2] * (1 - self.saturation)
        grain = F.interpolate(grain.movedim(-1, 1), size=(t.shape[1], t.shape[2]), mode="bilinear").movedim(1, -1)
        t[..., :3] = torch.clip((1 - (1 - t[..., :3]) * grain.to(t.device)) * (1 - self.toe) + self.toe, 0, 1)
        return t


class BlurImageFast(Node):
    """Gaussian blur with separate x and y radii (OpenCV's GaussianBlur, window 2r+1, sigma from
    the window), as Image-Filters' Blur Image (Fast) does; both 0 pass the images on."""
    category = "image/filters"
    images: IMAGE
    radius_x: int = Int(1, min=0, max=1023)
    radius_y: int = Int(1, min=0, max=1023)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("BlurImageFast",))

    def run(self):
        import cv2
        images = _image(self.images, "images")
        if self.radius_x + self.radius_y == 0:
            return images
        window = (self.radius_x * 2 + 1, self.radius_y * 2 + 1)
        return _each(_numpy(images), lambda im: cv2.GaussianBlur(im, window, 0))


class BlurMaskFast(Node):
    """Gaussian blur of masks with separate x and y radii (OpenCV's GaussianBlur, window 2r+1),
    as Image-Filters' Blur Mask (Fast) does; both 0 pass the masks on."""
    category = "mask/filters"
    masks: MASK
    radius_x: int = Int(1, min=0, max=1023)
    radius_y: int = Int(1, min=0, max=1023)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("BlurMaskFast",))

    def run(self):
        import cv2
        masks = _mask(self.masks, "masks")
        if self.radius_x + self.radius_y == 0:
            return masks
        window = (self.radius_x * 2 + 1, self.radius_y * 2 + 1)
        return _each(_numpy(masks), lambda m: cv2.GaussianBlur(m, window, 0))


def _local_means_estimate(widgets, size):
    """A guided filter's working memory for blur_type guidedFilter (per image: it filters both batches)."""
    blur_size = widgets.get("blur_size")
    if widgets.get("blur_type") != "guidedFilter" or not isinstance(blur_size, int) or blur_size == 0:
        return Estimate(size)
    return _guided_estimate(size, blur_size * 2 + 1)


def _local_means(t, ref, blur_type: str, blur_size: int):
    d = blur_size * 2 + 1
    if blur_type == "blur":
        return gaussian_blur(t, d, d), gaussian_blur(ref, d, d)
    return _guided_filter_scaled(t, t, d, 0.01), _guided_filter_scaled(ref, ref, d, 0.01)


class ColorMatchImage(Node):
    """Match the images' colours to the reference as Image-Filters' Color Match Image does: each
    colour channel (+0.1) is divided by its mean and multiplied by the reference's, over the
    whole image (blur_size 0) or locally (a Gaussian blur or a self-guided filter of window
    2*blur_size+1). A shorter reference batch gives its first image to all. As in the pack, the
    result is given without factor's blend or clamping (the pack computes and drops them)."""
    category = "image/filters"
    images: IMAGE
    reference: IMAGE
    blur_type: str = Choice(["blur", "guidedFilter"], "blur")
    blur_size: int = Int(0, min=0, max=1023)
    factor: float = Float(1.0, min=-10.0, max=10.0, step=0.01, round=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ColorMatchImage",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _local_means_estimate(widgets, inputs.get("images"))

    def run(self):
        images = _image(self.images, "images")
        t = images.detach().clone().float() + 0.1
        ref = _reference_batch(_image(self.reference, "reference"), len(t)) + 0.1
        if self.blur_size == 0:  # whole-image means: the reference may have another size
            means, ref_means = t.mean((1, 2), keepdim=True), ref.mean((1, 2), keepdim=True)
        else:
            means, ref_means = _local_means(t, _matching_guide(ref, t, "reference"), self.blur_type, self.blur_size)
        t[..., :3] = t[..., :3] / means[..., :3].to(t) * ref_means[..., :3].to(t)
        return t - 0.1


class RestoreDetail(Node):
    """Put the detail of `detail` back onto the images as Image-Filters' Restore Detail does:
    the images' low frequencies (a Gaussian blur or self-guided filter, window 2*blur_size+1)
    plus (add) or times (multiply) the detail image's high frequencies, all offset by 0.1;
    blended with the images by factor and clamped to 0..1."""
    category = "image/filters"
    images: IMAGE
    detail: IMAGE
    mode: str = Choice(["add", "multiply"], "add")
    blur_type: str = Choice(["blur", "guidedFilter"], "blur")
    blur_size: int = Int(1, min=1, max=1023)
    factor: float = Float(1.0, min=-10.0, max=10.0, step=0.01, round=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("RestoreDetail",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _local_means_estimate(widgets, inputs.get("images"))

    def run(self):
        import torch
        images = _image(self.images, "images").float()
        t = images.detach().clone() + 0.1
        ref = _matching_guide(_reference_batch(_image(self.detail, "detail"), len(t)), t, "detail") + 0.1
        blurred, blurred_ref = _local_means(t, ref, self.blur_type, self.blur_size)
        if self.mode == "multiply":
            t = ref / blurred_ref.to(t) * blurred.to(t)
        else:
            t = ref - blurred_ref.to(t) + blurred.to(t)
        return torch.clamp(torch.lerp(images, t - 0.1, self.factor), 0, 1)


class DilateErodeMask(Node):
    """Grow (radius > 0) or shrink (radius < 0) masks by |radius| pixels with a square ("box")
    or round ("circle", OpenCV's filled circle) kernel, as Image-Filters' Dilate/Erode Mask does
    (OpenCV's dilate / erode); 0 passes the masks on."""
    category = "mask/filters"
    masks: MASK
    radius: int = Int(0, min=-1023, max=1023)
    shape: str = Choice(["box", "circle"], "box")
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("DilateErodeMask",))

    def run(self):
        import cv2
        import numpy as np
        masks = _mask(self.masks, "masks")
        if self.radius == 0:
            return masks
        s = abs(self.radius)
        kernel = np.zeros((2 * s + 1, 2 * s + 1), np.uint8)
        kernel = cv2.circle(kernel, (s, s), s, 1, -1) if self.shape == "circle" else kernel + 1
        operation = cv2.dilate if self.radius > 0 else cv2.erode
        return _each(_numpy(masks), lambda m: operation(m, kernel, iterations=1))


class EnhanceDetail(Node):
    """Boost fine detail as Image-Filters' Enhance Detail does: the ratio of a bilateral-
    smoothed image (denoise > 0; sigma denoise / 10, window 2*filter_radius+1) to a self-guided
    filtered one (radius 2*filter_radius+1, eps sigma / 10) is the detail, multiplied by
    detail_mult and put back; clipped to 0..1. Images of 1 or 3 channels (OpenCV's bilateral
    filter)."""
    category = "image/filters"
    images: IMAGE
    filter_radius: int = Int(2, min=1, max=64)
    sigma: float = Float(0.1, min=0.01, max=100.0, step=0.01)
    denoise: float = Float(0.1, min=0.0, max=10.0, step=0.01)
    detail_mult: float = Float(2.0, min=0.0, max=100.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("EnhanceDetail",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _guided_estimate(inputs.get("images"))

    def run(self):
        return enhanced_detail(self.images, self.filter_radius, self.sigma, self.denoise, self.detail_mult)


def enhanced_detail(images, filter_radius: int, sigma: float, denoise: float, detail_mult: float,
                    name: str = "images"):
    """Enhance Detail's steps (also LayerStyle's Sharp & Soft "very soft"): the ratio of the
    bilateral-smoothed images (denoise > 0) to the self-guided filtered ones, both of window
    2*filter_radius+1, times detail_mult, put back; clipped to 0..1."""
    import cv2
    import torch
    images = _bilateral_ready(_image(images, name), name)
    d = filter_radius * 2 + 1
    original = torch.from_numpy(_numpy(images))
    smoothed = original
    if denoise > 0:
        smoothed = _each(_numpy(images), lambda im: cv2.bilateralFilter(im, d, denoise / 10, d))
    base = torch.clip(guided_filter(original, original, d, sigma / 10), 0.001, 1)
    details = (smoothed / base - 1) * detail_mult + 1
    return torch.clip(details * base - smoothed + original, 0, 1)


class GuidedFilterAlpha(Node):
    """(Deprecated in the pack: use Guided Filter Image.) Filter `alpha` guided by the images,
    radius 2*filter_radius+1 and eps sigma / 10, as Image-Filters' Guided Filter Alpha does: one
    result per image, from the alpha at its place (the alpha batch at least as long, of the
    images' size; a longer one is cut). The guided filter is written here (see the module's
    help), not OpenCV-contrib's."""
    category = "image/filters"
    images: IMAGE
    alpha: IMAGE
    filter_radius: int = Int(8, min=1, max=64)
    sigma: float = Float(0.1, min=0.01, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("GuidedFilterAlpha",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _guided_estimate(inputs.get("images"))

    def run(self):
        images = _image(self.images, "images")
        alpha = _matching_guide(_image(self.alpha, "alpha"), images, "alpha")
        return guided_filter(images, alpha, self.filter_radius * 2 + 1, self.sigma / 10)


class GuidedFilterImage(Node):
    """Edge-preserving smoothing of the images guided by `guide`, as Image-Filters' Guided Filter
    Image does: radius 2*size+1 and eps sigma / 10 (windows over 100 run at a tenth of the size
    and are scaled back, as in the pack). The guided filter is He et al.'s, written here; it
    takes a guide of any channel count, where OpenCV's (the pack's) stops at 3. The guide batch
    must be at least as long as the images' and of their size."""
    category = "image/filters"
    images: IMAGE
    guide: IMAGE
    size: int = Int(4, min=0, max=1023)
    sigma: float = Float(0.1, min=0.01, max=100.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("GuidedFilterImage",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = widgets.get("size")
        return _guided_estimate(inputs.get("images"), size * 2 + 1 if isinstance(size, int) else 1)

    def run(self):
        images = _image(self.images, "images")
        guide = _matching_guide(_image(self.guide, "guide"), images, "guide")
        return _guided_filter_scaled(guide, images, self.size * 2 + 1, self.sigma / 10)


class MedianFilterImage(Node):
    """Median filter of window 2*size+1 (OpenCV's medianBlur), as Image-Filters' Median Filter
    Image does: windows over 5 work on the images in 8 bits (OpenCV's float median stops at 5),
    so they come back in steps of 1/255. Images of 1, 3 or 4 channels."""
    category = "image/filters"
    images: IMAGE
    size: int = Int(1, min=1, max=1023)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("MedianFilterImage",))

    def run(self):
        import cv2
        import numpy as np
        images = _image(self.images, "images")
        if images.shape[-1] not in (1, 3, 4):
            raise NodeInputError("images", f"expected 1, 3 or 4 channels (OpenCV's median), got {images.shape[-1]}")
        d = self.size * 2 + 1
        if d > 5:
            return _each(_numpy(images),
                         lambda im: cv2.medianBlur((im * 255).astype(np.uint8), d).astype(np.float32) / 255)
        return _each(_numpy(images), lambda im: cv2.medianBlur(im, d))


class BilateralFilterImage(Node):
    """OpenCV's bilateral filter (window 2*size+1, sigma_color in 0..1 units, sigma_space in
    pixels) on each image, as Image-Filters' Bilateral Filter Image does. 1 or 3 channels."""
    category = "image/filters"
    images: IMAGE
    size: int = Int(8, min=1, max=64)
    sigma_color: float = Float(0.5, min=0.01, max=1000.0, step=0.01)
    sigma_space: float = Float(100.0, min=0.01, max=1000.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("BilateralFilterImage",))

    def run(self):
        import cv2
        images = _bilateral_ready(_image(self.images, "images"), "images")
        d = self.size * 2 + 1
        return _each(_numpy(images), lambda im: cv2.bilateralFilter(im, d, self.sigma_color, self.sigma_space))


def _same_size(a, b, name: str):
    """b, checked to broadcast against a as the pack's arithmetic does: one size, batches equal or one of them 1."""
    if a.shape[1:] != b.shape[1:] or 1 not in (len(a), len(b)) and len(a) != len(b):
        raise NodeInputError(name, f"expected images of {a.shape[2]}x{a.shape[1]}x{a.shape[3]} in a batch of 1 or "
                                   f"{len(a)}, got {len(b)} of {b.shape[2]}x{b.shape[1]}x{b.shape[3]}")
    return b


class FrequencyCombine(Node):
    """Join a high-frequency image with a low-frequency one as Image-Filters' Frequency Combine
    does: subtract mode adds (high - 0.5); divide mode multiplies by 2*high with eps offsets.
    Clamped to 0..1."""
    category = "image/filters"
    high_frequency: IMAGE
    low_frequency: IMAGE
    mode: str = Choice(["subtract", "divide"], "subtract")
    eps: float = Float(0.1, min=0.01, max=0.99, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FrequencyCombine",))

    def run(self):
        import torch
        low = _image(self.low_frequency, "low_frequency")
        high = _same_size(low, _image(self.high_frequency, "high_frequency"), "high_frequency")
        if self.mode == "subtract":
            t = low + high - 0.5
        else:
            t = high * 2 * (low + self.eps) - self.eps
        return torch.clamp(t, 0, 1)


class FrequencySeparate(Node):
    """The high frequencies of `original` over its `low_frequency` (a blurred copy), as
    Image-Filters' Frequency Separate does: original - low + 0.5 (subtract) or
    (original + eps) / (low + eps) / 2 (divide). Not clamped, as in the pack."""
    category = "image/filters"
    original: IMAGE
    low_frequency: IMAGE
    mode: str = Choice(["subtract", "divide"], "subtract")
    eps: float = Float(0.1, min=0.01, max=0.99, step=0.01)
    outputs = {"high_frequency": IMAGE}
    comfy = ComfyAlias(("FrequencySeparate",))

    def run(self):
        original = _image(self.original, "original")
        low = _same_size(original, _image(self.low_frequency, "low_frequency"), "low_frequency")
        if self.mode == "subtract":
            return original - low + 0.5
        return (original + self.eps) / (low + self.eps) * 0.5


class RemapRange(Node):
    """Stretch blackpoint..whitepoint to 0..1 and clip, as Image-Filters' Remap Range does (a
    blackpoint over whitepoint - 0.001 counts as whitepoint - 0.001)."""
    category = "image/filters"
    image: IMAGE
    blackpoint: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    whitepoint: float = Float(1.0, min=0.01, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("RemapRange",))

    def run(self):
        import torch
        black = min(self.blackpoint, self.whitepoint - 0.001)
        return torch.clip((_image(self.image, "image") - black) * (1 / (self.whitepoint - black)), 0.0, 1.0)


class ClampImage(Node):
    """Clamp every value to blackpoint..whitepoint (NaN to 0 first), as Image-Filters' Clamp Image does."""
    category = "image/filters"
    image: IMAGE
    blackpoint: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    whitepoint: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ClampImage",))

    def run(self):
        import torch
        return torch.clamp(torch.nan_to_num(_image(self.image, "image")), min=self.blackpoint, max=self.whitepoint)


CHANNELS = ["red", "green", "blue", "alpha", "white", "black"]


class ShuffleChannels(Node):
    """Build an image from the input's channels as Image-Filters' Shuffle Channels does: each
    output channel takes red, green, blue or alpha of the input (alpha is 1 where the input has
    none), or is white (1) or black (0); alpha "none" gives a 3-channel image."""
    category = "image/filters"
    image: IMAGE
    red: str = Choice(CHANNELS, "red")
    green: str = Choice(CHANNELS, "green")
    blue: str = Choice(CHANNELS, "blue")
    alpha: str = Choice(CHANNELS + ["none"], "none")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ShuffleChannels",))

    def run(self):
        import torch
        image = _image(self.image, "image")
        keys = [self.red, self.green, self.blue] + ([] if self.alpha == "none" else [self.alpha])
        taken = [key for key in keys if key in ("red", "green", "blue") and CHANNELS.index(key) >= image.shape[-1]]
        if taken:
            raise NodeInputError("image", f"expected an RGB image: {taken[0]} is asked for, the image has "
                                          f"{image.shape[-1]} channel(s)")
        planes = []
        for key in keys:
            if key in ("red", "green", "blue") or key == "alpha" and image.shape[-1] > 3:
                planes.append(image[..., CHANNELS.index(key)])
            else:
                planes.append(torch.full(image.shape[:3], 0.0 if key == "black" else 1.0, dtype=image.dtype,
                                         device=image.device))
        return torch.stack(planes, -1)


def _adain(t, reference, factor: float, channel_dim: int):
    """Each image's channels moved to the mean and (unbiased) standard deviation of the
    reference's same image and channel, blended with the input by factor."""
    import torch
    out = t.clone()
    for i in range(t.shape[0]):
        check_interrupted()
        for c in range(t.shape[channel_dim]):
            ref_sd, ref_mean = _std_mean(reference[i].select(channel_dim - 1, c))
            own = t[i].select(channel_dim - 1, c)
            own_sd, own_mean = _std_mean(own)
            out[i].select(channel_dim - 1, c).copy_((own - own_mean) / own_sd * ref_sd + ref_mean)
    return torch.lerp(t, out, factor)


def _batch_normalize(t, factor: float, channel_dim: int):
    """Each image's channels normalised to the whole batch's mean and std of that channel."""
    import torch
    out = t.clone()
    for c in range(t.shape[channel_dim]):
        channel = t.select(channel_dim, c)
        batch_sd, batch_mean = _std_mean(channel)
        for i in range(t.shape[0]):
            sd, mean = _std_mean(channel[i])
            out.select(channel_dim, c)[i] = (channel[i] - mean) / sd * batch_sd + batch_mean
    return torch.lerp(t, out, factor)


def _reference_for(reference, t, name: str, channel_dim: int):
    if len(reference) < len(t) or reference.shape[channel_dim] < t.shape[channel_dim]:
        raise NodeInputError(name, f"expected at least {len(t)} item(s) with {t.shape[channel_dim]} channels (one "
                                   f"per input, channel by channel), got {len(reference)} with "
                                   f"{reference.shape[channel_dim]}")
    return reference


class AdainImage(Node):
    """Adaptive instance normalisation, as Image-Filters' AdaIN (Image) does: each image's
    channels take the mean and standard deviation of the reference image at the same place in
    its batch (the reference batch must be as long); blended with the input by factor."""
    category = "image/filters"
    images: IMAGE
    reference: IMAGE
    factor: float = Float(1.0, min=-10.0, max=10.0, step=0.01, round=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("AdainImage",))

    def run(self):
        images = _image(self.images, "images")
        reference = _reference_for(_image(self.reference, "reference"), images, "reference", 3)
        return _adain(images, reference, self.factor, 3)


class BatchNormalizeImage(Node):
    """Even out a batch as Image-Filters' Batch Normalize (Image) does: each image's channels
    take the mean and standard deviation of that channel over the whole batch; blended with the
    input by factor."""
    category = "image/filters"
    images: IMAGE
    factor: float = Float(1.0, min=-10.0, max=10.0, step=0.01, round=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("BatchNormalizeImage",))

    def run(self):
        return _batch_normalize(_image(self.images, "images"), self.factor, 3)


class BatchAverageImage(Node):
    """One image: the mean or the median (the lower middle value for an even batch, torch's) of
    the batch, pixel by pixel, as Image-Filters' Batch Average Image does."""
    category = "image/filters"
    images: IMAGE
    operation: str = Choice(["mean", "median"], "mean")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("BatchAverageImage",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        return Estimate(Size(1, size.height, size.width) if size is not None else None)

    def run(self):
        import torch
        images = _image(self.images, "images")
        if self.operation == "mean":
            return images.mean(0, keepdim=True)
        return torch.median(images, dim=0, keepdim=True)[0]


class DifferenceChecker(Node):
    """|images1 - images2| times multiplier, clamped to 0..1, as Image-Filters' Difference
    Checker does (a batch of 1 against any batch); print_MAE shows the mean absolute difference."""
    category = "image/filters"
    images1: IMAGE
    images2: IMAGE
    multiplier: float = Float(1.0, min=0.01, max=1000.0, step=0.01, round=0.01)
    print_MAE: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    output_node = True
    comfy = ComfyAlias(("DifferenceChecker",))

    def run(self):
        import torch
        first = _image(self.images1, "images1")
        second = _same_size(first, _image(self.images2, "images2"), "images2")
        difference = torch.abs(first - second)
        if self.print_MAE:
            show(text=[f"MAE = {difference.mean().item()}"])
        return torch.clamp(difference * self.multiplier, min=0, max=1)


def hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    """The pack's HSV -> RGB of one colour (hue 0..1, 1 counting as 0)."""
    if not s:
        return v, v, v
    h = 0.0 if h == 1.0 else h
    i = int(h * 6.0)
    f = h * 6.0 - i
    w, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    return [(v, t, w), (q, v, w), (w, v, t), (w, q, v), (t, w, v), (v, w, q)][i]


def _constant(batch: int, height: int, width: int, rgb):
    import torch
    return torch.tensor(rgb, dtype=torch.float32).expand(batch, height, width, 3).clone()


class ImageConstant(Node):
    """A batch of images of one RGB colour, as Image-Filters' Image Constant Color (RGB) does."""
    category = "image/filters"
    width: int = Int(512, min=1, max=MAX_RESOLUTION, resource="width")
    height: int = Int(512, min=1, max=MAX_RESOLUTION, resource="height")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    red: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    green: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    blue: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageConstant",))

    def run(self):
        return _constant(self.batch_size, self.height, self.width, (self.red, self.green, self.blue))


class ImageConstantHSV(Node):
    """A batch of images of one colour given as hue, saturation and value (0..1 each), as
    Image-Filters' Image Constant Color (HSV) does."""
    category = "image/filters"
    width: int = Int(512, min=1, max=MAX_RESOLUTION, resource="width")
    height: int = Int(512, min=1, max=MAX_RESOLUTION, resource="height")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    hue: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    saturation: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    value: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageConstantHSV",))

    def run(self):
        return _constant(self.batch_size, self.height, self.width, hsv_to_rgb(self.hue, self.saturation, self.value))


class RelightSimple(Node):
    """Lambertian relighting, as Image-Filters' Relight (Simple) does: the normal map (0..1 per
    axis, resized bilinear to the image) is dotted with the normalised light direction x, y, z,
    clipped to 0..1, and multiplies the colour times brightness (clipped); alpha is kept. The
    batches must be as long."""
    category = "image/filters"
    image: IMAGE
    normals: IMAGE
    x: float = Float(0.0, min=-1.0, max=1.0, step=0.001)
    y: float = Float(0.0, min=-1.0, max=1.0, step=0.001)
    z: float = Float(1.0, min=-1.0, max=1.0, step=0.001)
    brightness: float = Float(1.0, min=0.0, max=100, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("RelightSimple",))

    def run(self):
        import torch
        import torch.nn.functional as F
        image = _image(self.image, "image")
        normals = _image(self.normals, "normals")
        if len(image) != len(normals):
            raise NodeInputError("normals", f"expected a batch as long as image's ({len(image)}), got {len(normals)}")
        norm = F.interpolate((normals * 2 - 1).movedim(-1, 1), size=image.shape[1:3], mode="bilinear").movedim(1, -1)
        light = F.normalize(torch.tensor([self.x, self.y, self.z]), dim=0)
        diffuse = torch.clip((norm[..., :3] * light.to(norm)).sum(-1, keepdim=True), 0, 1)
        relit = image.clone()
        relit[..., :3] = torch.clip(image[..., :3] * diffuse * self.brightness, 0, 1)
        return relit


# -- tonemapping (numpy, in place on the colour channels, as the pack) -------------------------


def srgb_to_linear(a):
    less = a <= 0.0404482362771082
    a[less] = a[less] / 12.92
    a[~less] = ((a[~less] + 0.055) / 1.055) ** 2.4


def linear_to_srgb(a):
    import numpy as np
    less = a <= 0.0031308
    a[less] = a[less] * 12.92
    a[~less] = np.power(a[~less], 1 / 2.4) * 1.055 - 0.055


def linear_to_linlog(a, scale: float):
    """The pack's "linlog" tonemap: above 0.06 (after / scale), Sony's S-Log3 curve pushed
    through a sigmoid-like roll-off, so highlights approach 1."""
    import numpy as np
    a /= scale
    more = a > 0.06
    with np.errstate(invalid="ignore", divide="ignore"):  # the curve is computed everywhere, kept above 0.06
        slog3 = np.clip((np.log10((a + 0.01) / 0.19) * 261.5 + 420) / 1023, 0, 1)
        a[more] = np.power(1 / (1 + (1 / np.power(slog3[more] / (1 - slog3[more]), 1.7))), 1.7)
    a *= scale


def linlog_to_linear(a, scale: float):
    import numpy as np
    a /= scale
    more = a > 0.06
    x = np.power(np.clip(a, 0.000001, 1), 1 / 1.7)
    with np.errstate(invalid="ignore", divide="ignore"):
        ut = 1 / (1 + np.power((-1 / x) * (x - 1), 1 / 1.7))
    a[more] = np.power(10, (ut[more] * 1023 - 420) / 261.5) * 0.19 - 0.01
    a *= scale


def _tonemapped(images, input_mode: str, output_mode: str, curve):
    import numpy as np
    import torch
    t = _numpy(images)
    if input_mode == "sRGB":
        srgb_to_linear(t[..., :3])
    curve(t)
    if output_mode == "sRGB":
        linear_to_srgb(t[..., :3])
        t = np.clip(t, 0, 1)
    return torch.from_numpy(t)


class Tonemap(Node):
    """Fit linear light (over 1 allowed) into 0..1 with the pack's linlog curve, as
    Image-Filters' Tonemap does: input sRGB is linearised first, output sRGB is encoded and
    clipped; tonemap_scale is the level treated as 1."""
    category = "image/filters"
    images: IMAGE
    input_mode: str = Choice(["linear", "sRGB"], "linear")
    output_mode: str = Choice(["sRGB", "linear"], "sRGB")
    tonemap_scale: float = Float(1, min=0.1, max=10, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Tonemap",))

    def run(self):
        return _tonemapped(_image(self.images, "images"), self.input_mode, self.output_mode,
                           lambda t: linear_to_linlog(t[..., :3], self.tonemap_scale))


class UnTonemap(Node):
    """The inverse of Tonemap's linlog curve, as Image-Filters' UnTonemap does (sRGB input is
    linearised first, sRGB output encoded and clipped)."""
    category = "image/filters"
    images: IMAGE
    input_mode: str = Choice(["sRGB", "linear"], "sRGB")
    output_mode: str = Choice(["linear", "sRGB"], "linear")
    tonemap_scale: float = Float(1, min=0.1, max=10, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("UnTonemap",))

    def run(self):
        return _tonemapped(_image(self.images, "images"), self.input_mode, self.output_mode,
                           lambda t: linlog_to_linear(t[..., :3], self.tonemap_scale))


class ExposureAdjust(Node):
    """Change exposure by `stops` (x 2^stops on positive linear values) as Image-Filters'
    Exposure Adjust does: the image is un-tonemapped first (Reinhard: x / (1 - x) after clipping
    every channel to 0..0.999; linlog: the pack's curve; linear: none), exposed, tonemapped back
    the same way, and sRGB-encoded (clipped) when output_mode is sRGB."""
    category = "image/filters"
    images: IMAGE
    stops: float = Float(0.0, min=-100, max=100, step=0.01)
    input_mode: str = Choice(["sRGB", "linear"], "sRGB")
    output_mode: str = Choice(["sRGB", "linear"], "sRGB")
    tonemap: str = Choice(["linear", "Reinhard", "linlog"], "Reinhard")
    tonemap_scale: float = Float(1, min=0.1, max=10, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ExposureAdjust",))

    def run(self):
        import numpy as np
        import torch
        t = _numpy(_image(self.images, "images"))
        if self.input_mode == "sRGB":
            srgb_to_linear(t[..., :3])
        if self.tonemap == "linlog":
            linlog_to_linear(t[..., :3], self.tonemap_scale)
        elif self.tonemap == "Reinhard":
            t = np.clip(t, 0, 0.999)
            t[..., :3] = -t[..., :3] / (t[..., :3] - 1)
        colour = t[..., :3]
        colour[colour > 0] *= 2.0 ** self.stops
        if self.tonemap == "linlog":
            linear_to_linlog(t[..., :3], self.tonemap_scale)
        elif self.tonemap == "Reinhard":
            t[..., :3] = t[..., :3] / (t[..., :3] + 1)
        if self.output_mode == "sRGB":
            linear_to_srgb(t[..., :3])
            t = np.clip(t, 0, 1)
        return torch.from_numpy(t)


# -- normal maps ------------------------------------------------------------------------------

NORMAL_MODES = ["BAE", "MiDaS", "Standard"]


class ConvertNormals(Node):
    """Convert a normal map between conventions as Image-Filters' Convert Normals does (Standard:
    +R right, +G up, +B toward the viewer; BAE inverts red; MiDaS is BGR with red inverted):
    fix_black fills pixels whose blue is under 0.5 (no normal) toward flat, or with
    optional_fill (resized bilinear; its first image when the batches differ); scale_XY scales
    the slopes; normalize makes unit vectors."""
    category = "image/filters"
    normals: IMAGE
    input_mode: str = Choice(NORMAL_MODES, "BAE")
    output_mode: str = Choice(NORMAL_MODES, "BAE")
    scale_XY: float = Float(1, min=0, max=100, step=0.001)
    normalize: bool = Bool(True)
    fix_black: bool = Bool(True)
    optional_fill: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ConvertNormals",))

    def run(self):
        import torch
        import torch.nn.functional as F
        t = _image(self.normals, "normals").clone()
        if t.shape[-1] < 3:
            raise NodeInputError("normals", f"expected 3 or more channels, got {t.shape[-1]}")
        if self.input_mode == "BAE":
            t[..., 0] = 1 - t[..., 0]
        elif self.input_mode == "MiDaS":
            t[..., :3] = torch.stack([1 - t[..., 2], t[..., 1], t[..., 0]], -1)
        if self.fix_black:
            key = torch.clamp(1 - t[..., 2] * 2, min=0, max=1)
            if self.optional_fill is None:
                t[..., :3] += key.unsqueeze(-1) * torch.tensor([0.5, 0.5, 1.0]).to(t)
            else:
                fill = _image(self.optional_fill, "optional_fill")
                if fill.shape[-1] < 3:
                    raise NodeInputError("optional_fill", f"expected 3 or more channels, got {fill.shape[-1]}")
                if fill.shape[1:3] != t.shape[1:3]:
                    fill = F.interpolate(fill.movedim(-1, 1), size=t.shape[1:3], mode="bilinear").movedim(1, -1)
                if len(fill) != len(t):
                    fill = fill[:1].expand(len(t), -1, -1, -1)
                t[..., :3] += fill[..., :3].to(t) * key.unsqueeze(-1)
        t[..., :2] = (t[..., :2] - 0.5) * self.scale_XY + 0.5
        if self.normalize:
            t[..., :3] = F.normalize(t[..., :3] * 2 - 1, dim=3) / 2 + 0.5
        if self.output_mode == "BAE":
            t[..., 0] = 1 - t[..., 0]
        elif self.output_mode == "MiDaS":
            t[..., :3] = torch.stack([t[..., 2], t[..., 1], 1 - t[..., 0]], -1)
        return t


class NormalMapSimple(Node):
    """A normal map from brightness, as Image-Filters' Normal Map (Simple) does: the Scharr
    x and y derivatives of the channels' mean (OpenCV's, its default mirrored border, the x one
    negated) times scale_XY, with z 1, normalised into 0..1; alpha is kept."""
    category = "image/filters"
    images: IMAGE
    scale_XY: float = Float(1, min=0, max=100, step=0.001)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("NormalMapSimple",))

    def run(self):
        import cv2
        import torch
        import torch.nn.functional as F
        images = _image(self.images, "images")
        if images.shape[-1] < 3:
            raise NodeInputError("images", f"expected 3 or more channels, got {images.shape[-1]}")
        t = _numpy(images)
        luma = t[..., :3].mean(-1)
        for i in range(len(t)):
            check_interrupted()
            # the pack passes BORDER_REFLECT where OpenCV's Python takes the output array, so
            # OpenCV's default border (BORDER_REFLECT_101) is what it gets; so do we
            t[i, :, :, 0] = -cv2.Scharr(luma[i], -1, 1, 0)
            t[i, :, :, 1] = cv2.Scharr(luma[i], -1, 0, 1)
        t[..., 2] = 1
        t = torch.from_numpy(t)
        t[..., :2] *= self.scale_XY
        t[..., :3] = F.normalize(t[..., :3], dim=3) / 2 + 0.5
        return t


class DepthToNormals(Node):
    """Normals from a depth map, as Image-Filters' Depth To Normals does: each pixel becomes a
    point (x and y spanning -1..1 along the longer side, z the depth's third channel times
    scale); the cross product of its central differences (edges repeated) is normalised and
    written in the chosen convention (Standard, BAE: x inverted, MiDaS: that in BGR order)."""
    category = "image/filters"
    depth: IMAGE
    scale: float = Float(1, min=0.001, max=1000, step=0.001)
    output_mode: str = Choice(["Standard", "BAE", "MiDaS"], "Standard")
    outputs = {"normals": IMAGE}
    comfy = ComfyAlias(("DepthToNormals",))

    def run(self):
        import torch
        import torch.nn.functional as F
        depth = _image(self.depth, "depth")
        if depth.shape[-1] != 3:
            raise NodeInputError("depth", f"expected a 3-channel image (the pack filters 3 channels), got "
                                          f"{depth.shape[-1]}")
        height, width = depth.shape[1:3]
        longest = max(width, height)
        points = depth.float() * self.scale
        xs = torch.linspace(-width / longest, width / longest, steps=width)
        ys = torch.linspace(-height / longest, height / longest, steps=height)
        grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
        points[..., 0], points[..., 1] = grid_x, grid_y
        padded = F.pad(points.movedim(-1, 1), (1, 1, 1, 1), mode="replicate")
        grad_x = padded[:, :, 1:-1, :-2] - padded[:, :, 1:-1, 2:]  # left minus right
        grad_y = padded[:, :, :-2, 1:-1] - padded[:, :, 2:, 1:-1]  # above minus below
        normals = F.normalize(torch.cross(grad_x, grad_y, dim=1))
        normals[:, 1] *= -1
        if self.output_mode != "Standard":
            normals[:, 0] *= -1
        if self.output_mode == "MiDaS":
            normals = torch.flip(normals, dims=[1])
        return normals.movedim(1, -1) * 0.5 + 0.5


KEYER_OPERATIONS = ["luminance", "saturation", "max", "min", "red", "green", "blue", "redscreen", "greenscreen",
                    "bluescreen"]


class Keyer(Node):
    """Pull a matte from a colour measure, as Image-Filters' Keyer does: luminance (BT.709),
    saturation ((max - min) / max), max, min, a channel, or a screen key (0.7 x the other two
    channels - the screen's + 1), mapped low..high to 0..1 (low == high: a threshold), raised to
    1 / gamma and clipped. Outputs the RGB times the matte (premult) or as is, the matte as an
    image and as a mask."""
    category = "image/filters"
    images: IMAGE
    operation: str = Choice(KEYER_OPERATIONS, "luminance")
    low: float = Float(0, step=0.001)
    high: float = Float(1, step=0.001)
    gamma: float = Float(1.0, min=0.001, step=0.001)
    premult: bool = Bool(True)
    outputs = {"image": IMAGE, "alpha": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("Keyer",))

    def run(self):
        import torch
        t = _image(self.images, "images")[..., :3].clone()
        if t.shape[-1] < 3:
            raise NodeInputError("images", f"expected 3 or more channels, got {t.shape[-1]}")
        r, g, b = t[..., 0], t[..., 1], t[..., 2]
        op = self.operation
        if op == "luminance":
            alpha = 0.2126 * r + 0.7152 * g + 0.0722 * b
        elif op == "saturation":
            high, low = t.max(-1)[0], t.min(-1)[0]
            alpha = torch.where(high != 0, (high - low) / torch.where(high != 0, high, 1), high)
        elif op in ("max", "min"):
            alpha = t.max(-1)[0] if op == "max" else t.min(-1)[0]
        elif op in ("red", "green", "blue"):
            alpha = t[..., ["red", "green", "blue"].index(op)]
        else:
            screen = ["redscreen", "greenscreen", "bluescreen"].index(op)
            others = [c for c in range(3) if c != screen]
            alpha = 0.7 * (t[..., others[0]] + t[..., others[1]]) - t[..., screen] + 1
        if self.low == self.high:
            alpha = (alpha > self.high).to(t.dtype)
        else:
            alpha = (alpha - self.low) / (self.high - self.low)
        if self.gamma != 1.0:
            alpha = torch.pow(alpha, 1 / self.gamma)
        alpha = torch.clamp(alpha, min=0, max=1).unsqueeze(-1).repeat(1, 1, 1, 3)
        if self.premult:
            t = t * alpha
        return t, alpha, alpha[..., 0]


# -- jitter (sub-pixel shifts for super-sampling) ---------------------------------------------

# The nine shifts (x, y, in pixels times jitter_scale): none, then round the eight neighbours.
JITTER_SHIFTS = [(0, 0), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]


def _jitter_grid(height: int, width: int, channels: int, scale: float):
    """affine_grid of the nine shifts (align_corners False), scale pixels each (negative: back)."""
    import torch
    import torch.nn.functional as F
    theta = torch.zeros(9, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    shifts = torch.tensor(JITTER_SHIFTS, dtype=torch.float32)
    theta[:, 0, 2] = shifts[:, 0] * scale * 2 / width
    theta[:, 1, 2] = shifts[:, 1] * scale * 2 / height
    return F.affine_grid(theta, [9, channels, height, width], align_corners=False)


def _nines(images, name: str) -> int:
    if len(images) < 9:
        raise NodeInputError(name, f"expected a batch of 9 per image (Jitter Image's), got {len(images)}")
    return len(images) // 9


class JitterImage(Node):
    """Nine copies of each image shifted by jitter_scale pixels (none, then the eight
    directions; bilinear, edges repeated), as Image-Filters' Jitter Image does: process them,
    then Un-Jitter and average for a super-sampled result. The batch comes out 9 times as long."""
    category = "image/filters/jitter"
    images: IMAGE
    jitter_scale: float = Float(1.0, min=0.1, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("JitterImage",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        return Estimate(Size(size.batch * 9, size.height, size.width) if size is not None else None)

    def run(self):
        import torch
        import torch.nn.functional as F
        t = _image(self.images, "images").movedim(-1, 1)
        grid = _jitter_grid(t.shape[2], t.shape[3], t.shape[1], self.jitter_scale).to(t)
        shifted = [F.grid_sample(image.expand(9, -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                                 align_corners=False) for image in t]
        return torch.cat(shifted).movedim(1, -1)


class UnJitterImage(Node):
    """Shift each group of nine (Jitter Image's order) back by jitter_scale pixels (bicubic,
    edges repeated), as Image-Filters' Un-Jitter Image does; a partial last group is dropped, as
    in the pack. oflow_align (aligning by RAFT optical flow, whose weights the pack downloads)
    is not available here and is refused."""
    category = "image/filters/jitter"
    images: IMAGE
    jitter_scale: float = Float(1.0, min=0.1, step=0.1)
    oflow_align: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("UnJitterImage",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        return Estimate(Size(size.batch // 9 * 9, size.height, size.width) if size is not None else None)

    def run(self):
        import torch
        import torch.nn.functional as F
        if self.oflow_align:
            raise NodeInputError("oflow_align", "RAFT optical-flow alignment needs the pack's downloaded RAFT "
                                                "weights, which graphflow does not have: expected false")
        t = _image(self.images, "images").movedim(-1, 1)
        groups = _nines(t, "images")
        grid = _jitter_grid(t.shape[2], t.shape[3], t.shape[1], -self.jitter_scale).to(t)
        back = [F.grid_sample(t[i * 9:i * 9 + 9], grid, mode="bicubic", padding_mode="border", align_corners=False)
                for i in range(groups)]
        return torch.cat(back).movedim(1, -1)


class BatchAverageUnJittered(Node):
    """The mean or median (torch's lower middle) of each group of nine images, as Image-Filters'
    Batch Average Un-Jittered does; a partial last group is dropped."""
    category = "image/filters/jitter"
    images: IMAGE
    operation: str = Choice(["mean", "median"], "mean")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("BatchAverageUnJittered",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        return Estimate(Size(max(1, size.batch // 9), size.height, size.width) if size is not None else None)

    def run(self):
        import torch
        images = _image(self.images, "images")
        groups = images[:_nines(images, "images") * 9].reshape(-1, 9, *images.shape[1:])
        if self.operation == "mean":
            return groups.mean(1)
        return torch.median(groups, dim=1)[0]
