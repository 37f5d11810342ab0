"""Acly's comfyui-inpaint-nodes (the inpainting pack Krita AI Diffusion drives), its nodes under the
pack's class names, inputs (order, defaults, ranges) and outputs, as read from its nodes.py at
commit 1e2543e5619b3f6e88b7727243c8b9c5791a7b4a, util.py at 48a8913b584b25db8a9c529be84929be66b1194e
and 1b7c98e2337edef80376f3c2d49f75cfd1922db6 (mask_blur's kernels), __init__.py at
422eccd86685e084b551fb7e14bc025d77a64cc2, and a later nodes.py in ComfyUI's V3 node schema (the
index's file id 29220882709; it names no commit for it) for INPAINT_ShrinkMask,
INPAINT_StabilizeMask and Expand Mask's blur_type:

  INPAINT_ExpandMask, INPAINT_ShrinkMask, INPAINT_StabilizeMask,
  INPAINT_DenoiseToCompositingMask                          masks
  INPAINT_MaskedFill, INPAINT_MaskedBlur                   pre-fill of the area to inpaint
  INPAINT_VAEEncodeInpaintConditioning                     InpaintModelConditioning + the inpaint latent
  INPAINT_LoadFooocusInpaint, INPAINT_ApplyFooocusInpaint  Fooocus' inpaint head and weight patch
  INPAINT_LoadInpaintModel, INPAINT_InpaintWithModel       LaMa through spandrel

Left out: INPAINT_ColorMatch (the pack's newest node, which Krita AI Diffusion asks for: its source
is not in the index we read from, so it stays unknown and is named as the pack's). The V3 file's
Fill Masked Area also erodes the mask by 10 pixels before its falloff, a line no other version
has; Fill Masked Area here is 1e2543e's. MAT models (the pack carries their architecture itself; spandrel has it only in
spandrel_extra_arches, which graphflow does not depend on): a MAT file is recognised by its keys
and refused by name. TorchScript (.pt) LaMa files (the pack's big-lama.pt) are refused too:
reading one runs its archive's own code, and graphflow reads model files as plain tensors only
(reading just its weights through a restricted unpickler of the archive's data.pkl is not done
here); a LaMa state dict (.pth read with torch.load(weights_only=True), or .safetensors) is
taken, and the refusal says how to make one from the .pt file.

Blurs are the pack's kornia gaussian_blur2d (a kernel of `size` taps, sigma 0.3 (size - 1) + 0.8,
reflected borders as torch's "reflect", separable), computed here without kornia; where the kernel
is wider than the picture (which the pack's torch padding refuses) the border keeps reflecting,
as OpenCV's BORDER_REFLECT_101 does. They run as nodes.image_ops.separable_blur: a band of rows
or columns at a time, a stop checked between bands, wide kernels (128 taps and up) as FFT products
in float64 (a few millionths from the pack's float32 convolution). Grow and shrink (the pack's
binary dilation / erosion by a square) run as nodes.mask.window_max, bit for bit the max-pool's
result in log2(side) stop-checked passes. Models live in models/inpaint/, as the pack registers it.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

from graphflow.api import CONDITIONING, IMAGE, LATENT, MASK, MODEL, VAE, Choice, ComfyAlias, Estimate, Float, Int, \
    Node, NodeInputError, Size, check_interrupted, folders, progress, socket_type, warn
from nodes.conditioning import InpaintModelConditioning
from nodes.image_ops import BLUR_BAND_VALUES, separable_blur
from nodes.mask import window_max
from nodes.pack_nodes import _core
from nodes.upscale import UPSCALE_MODEL

COMFY_PACK = "comfyui-inpaint-nodes"  # the custom node pack this module's ComfyUI classes come from

INPAINT_PATCH = socket_type("INPAINT_PATCH", "#7e57c2", "Fooocus' inpaint head and its weight patch")
INPAINT_MODEL = socket_type("INPAINT_MODEL", "#7e57c2", "An image inpainting model (LaMa)")

INPAINT_KIND = "inpaint"  # models/inpaint, the folder the pack registers
MAT_KEY = "synthesis.first_stage.conv_first.conv.resample_filter"  # how the pack tells a MAT file
LAMA_SIZE = 256  # the square LaMa works at in the pack
MASK_THRESHOLD = 0.99  # the pack's mask_floor: a pixel is masked from 0.99 up
SEED_MAX = 0xFFFFFFFFFFFFFFFF


def _inpaint_files():
    return folders.list_models(INPAINT_KIND)  # the kind's extensions (graphflow.folders.KIND_EXTENSIONS)


def _find(name: str, input_name: str):
    try:
        return folders.find_model(INPAINT_KIND, name)
    except (FileNotFoundError, ValueError) as e:
        raise NodeInputError(input_name, str(e)) from None


# -- the pack's image helpers (util.py), in torch ------------------------------------------------


def _masked(mask):
    """The pack's mask_floor: 1 where the mask is 0.99 or more, else 0."""
    return (mask >= MASK_THRESHOLD).to(mask.dtype)


def _mask_b1hw(mask, input_name: str = "mask"):
    if mask.ndim == 2:
        return mask[None, None]
    if mask.ndim == 3:
        return mask[:, None]
    raise NodeInputError(input_name, f"expected a MASK [B, H, W], got shape {tuple(mask.shape)}")


def _image_mask(image, mask, batch_must_match: bool = False, first_mask: bool = False):
    """IMAGE [B, H, W, C] and MASK -> ([B, C, H, W], [B or 1, 1, H, W]), sizes checked by name.
    first_mask: another count of masks than of images means the first mask for all (as the pack's
    Inpaint (using Model) takes them)."""
    if image.ndim != 4:
        raise NodeInputError("image", f"expected an IMAGE [B, H, W, C], got shape {tuple(image.shape)}")
    mask = _mask_b1hw(mask)
    if tuple(mask.shape[-2:]) != tuple(image.shape[1:3]):
        raise NodeInputError("mask", f"the mask is {mask.shape[-1]}x{mask.shape[-2]}, the image "
                                     f"{image.shape[2]}x{image.shape[1]}: they must be the same size")
    if first_mask and mask.shape[0] != image.shape[0]:
        mask = mask[:1]
    if mask.shape[0] != image.shape[0] and (batch_must_match or mask.shape[0] != 1):
        raise NodeInputError("mask", f"{mask.shape[0]} masks for {image.shape[0]} images: give one mask"
                                     f"{'' if batch_must_match else ', or one'} per image")
    return image.permute(0, 3, 1, 2).float(), mask.float()


def gaussian_kernel(size: int, sigma: float):
    """kornia's gaussian kernel: exp(-x² / 2σ²) at x = -(size // 2) .. (+0.5 when size is even), summed to 1."""
    import torch
    x = torch.arange(size, dtype=torch.float64) - size // 2
    if size % 2 == 0:
        x = x + 0.5
    g = torch.exp(-x.pow(2) / (2 * sigma * sigma))
    return (g / g.sum()).float()


def gaussian_blur(x, size: int):
    """The pack's gaussian_blur of [B, C, H, W]: `size` taps, sigma 0.3 (size - 1) + 0.8, reflected borders."""
    if size <= 0:
        return x
    return separable_blur(x, gaussian_kernel(size, 0.3 * (size - 1) + 0.8))


BLUR_TYPES = ["box", "linear", "gaussian"]  # the pack's BlurKernel, in its order


def mask_blur(mask, size: int, blur_type: str):
    """The pack's mask_blur: nothing below 3 taps; 'gaussian' as gaussian_blur; 'box' the mean of
    `size` pixels; 'linear' a tent: h = size // 2 weights linspace(1/h, (h-1)/h, h), 1, the same
    reversed, summed to 1 (3 taps: the box)."""
    import torch
    if size <= 2:
        return mask
    if blur_type == "gaussian":
        return gaussian_blur(mask, size)
    if blur_type == "box" or size == 3:
        return separable_blur(mask, torch.full((size,), 1.0 / size))
    h = size // 2
    side = torch.linspace(1 / h, (h - 1) / h, h)
    kernel = torch.cat([side, torch.ones(1), side.flip(0)])
    return separable_blur(mask, kernel / kernel.sum())


def _any_within(mask, radius: int):
    """1 where a pixel within `radius` (a square, 2 radius + 1 wide; outside the picture counts as
    0) is above 0, else 0: the pack's binary_dilation. A radius past the picture's size reaches
    no further pixel, so it is cut to it (the same result, less work)."""
    h, w = mask.shape[-2:]
    rx, ry = min(radius, w - 1), min(radius, h - 1)
    x = mask.float()
    if rx > 0:
        x = window_max(x, 2 * rx + 1, x.ndim - 1)
    if ry > 0:
        x = window_max(x, 2 * ry + 1, x.ndim - 2)
    return (x > 0).to(mask.dtype)


def _eroded(alpha, radius: int):
    """The pack's binary_erosion of a 0/1 mask: 1 where every pixel within `radius` (a square;
    outside the picture counts as 1) is 1."""
    return 1.0 - _any_within(1.0 - alpha, radius)


def _make_odd(x: int) -> int:
    return x + 1 if x > 0 and x % 2 == 0 else x


def _falloff_alpha(alpha, falloff: int):
    """The masked area faded in over `falloff` pixels from its edge (the pack's fill falloff)."""
    if falloff > 0:
        alpha = alpha * gaussian_blur(_eroded(alpha, falloff), falloff)
    return alpha


def _blur_memory(size: Size | None, channels: int) -> int:
    """float32 working copies of a separable blur (its input, each pass's output) and one band's
    buffers, which nodes.image_ops bounds whatever the kernel (float64 and complex on its FFT path),
    at most the picture's values (a band holds no more than the padded picture)."""
    if size is None:
        return 0
    values = size.batch * channels * size.height * size.width
    return values * 4 * 3 + 48 * min(BLUR_BAND_VALUES, values)


# -- masks -----------------------------------------------------------------------------------------


def _mask_blur_estimate(widgets, inputs):
    size = inputs.get("mask")
    return Estimate(size, memory=_blur_memory(size, 1))


class InpaintExpandMask(Node):
    """Grow a mask by `grow` pixels (every pixel with a masked one, above 0, within that many pixels
    across or along becomes 1: a square reach; the result is 0/1), then blur it over `blur` pixels
    (made odd; below 3 no blur) with blur_type: 'gaussian' (sigma 0.3 (taps - 1) + 0.8), 'box' or
    'linear' (a tent), reflected borders, as the pack's Expand Mask. 0 skips either step. Masks
    are taken as 0..1. UI saves and API prompts from before blur_type existed read as gaussian, as
    they blurred."""
    category = "inpaint"
    mask: MASK
    grow: int = Int(16, min=0, max=8096, step=1)
    blur: int = Int(7, min=0, max=8096, step=1)
    blur_type: str = Choice(BLUR_TYPES, "gaussian")
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("INPAINT_ExpandMask",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _mask_blur_estimate(widgets, inputs)

    def run(self):
        mask = _mask_b1hw(self.mask).float()
        if self.grow > 0:
            mask = _any_within(mask, self.grow)
        if self.blur > 0:
            mask = mask_blur(mask, _make_odd(self.blur), self.blur_type)
        return mask[:, 0]


class InpaintShrinkMask(Node):
    """Shrink a mask by `shrink` pixels (a pixel stays 1 only where every pixel within that many
    pixels across or along is 1; outside the picture counts as 1; the result is 0/1), then blur it
    as Expand Mask does, as the pack's Shrink Mask. 0 skips either step."""
    category = "inpaint"
    mask: MASK
    shrink: int = Int(16, min=0, max=8096, step=1)
    blur: int = Int(7, min=0, max=8096, step=1)
    blur_type: str = Choice(BLUR_TYPES, "gaussian")
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("INPAINT_ShrinkMask",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _mask_blur_estimate(widgets, inputs)

    def run(self):
        mask = _mask_b1hw(self.mask).float()
        if self.shrink > 0:
            mask = _eroded(mask, self.shrink)
        if self.blur > 0:
            mask = mask_blur(mask, _make_odd(self.blur), self.blur_type)
        return mask[:, 0]


class InpaintStabilizeMask(Node):
    """Values above 1 - epsilon become exactly 1, as the pack's Stabilize Mask (a blurred or
    resized mask's near-1 inside counts as fully masked again); the rest is kept."""
    category = "inpaint"
    mask: MASK
    epsilon: float = Float(0.01, min=0.0, max=1.0, step=0.0001)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("INPAINT_StabilizeMask",))

    def run(self):
        import torch
        mask = _mask_b1hw(self.mask).float()
        return torch.where(mask > 1.0 - self.epsilon, torch.ones_like(mask), mask)[:, 0]


class InpaintDenoiseToCompositingMask(Node):
    """A denoise mask made a compositing mask, as the pack's Denoise to Compositing Mask: values
    up to `offset` become 0, from `threshold` up 1, linear in between ((mask - offset) /
    (threshold - offset), clamped). threshold must be above offset."""
    category = "inpaint"
    mask: MASK
    offset: float = Float(0.1, min=0.0, max=1.0, step=0.01)
    threshold: float = Float(0.2, min=0.01, max=1.0, step=0.01)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("INPAINT_DenoiseToCompositingMask",))

    def run(self):
        if not 0.0 <= self.offset < self.threshold <= 1.0:
            raise NodeInputError("threshold", f"must be higher than offset ({self.offset}), got {self.threshold}")
        mask = self.mask.float()
        return ((mask - self.offset) * (1 / (self.threshold - self.offset))).clamp(0, 1)


# -- pre-fill -------------------------------------------------------------------------------------


class InpaintMaskedFill(Node):
    """Fill the masked area (mask 0.99 and up) before inpainting, as the pack's Fill Masked Area:
    'neutral' greys it (0.5), 'telea' and 'navier-stokes' paint it from its surroundings with
    OpenCV's cv2.inpaint (radius 3) on the 8-bit picture. With falloff the fill fades in over
    that many pixels inside the area's edge (made odd). One mask per image; telea and
    navier-stokes take RGB images."""
    category = "inpaint"
    image: IMAGE
    mask: MASK
    fill: str = Choice(["neutral", "telea", "navier-stokes"], "neutral")
    falloff: int = Int(0, min=0, max=8191, step=1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("INPAINT_MaskedFill",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        return Estimate(size, memory=_blur_memory(size, 1))

    def run(self):
        import numpy as np
        import torch
        _, mask = _image_mask(self.image, self.mask, batch_must_match=True)
        alpha = _falloff_alpha(_masked(mask), _make_odd(self.falloff))
        image = self.image.float().clone()
        if self.fill == "neutral":
            keep = (1.0 - alpha)[:, 0, :, :, None]
            image[..., :3] = (image[..., :3] - 0.5) * keep + 0.5
            return image
        import cv2
        if image.shape[-1] != 3:
            raise NodeInputError("image", f"{self.fill} fills RGB images, got {image.shape[-1]} channels")
        method = cv2.INPAINT_TELEA if self.fill == "telea" else cv2.INPAINT_NS
        for i, (picture, fade) in enumerate(zip(image, alpha[:, 0])):
            check_interrupted()
            rgb = picture.numpy()
            weight = fade.numpy()[..., None]
            # 8 bits as the pack makes them: truncated, not rounded (clipped first, as the cast needs)
            filled = cv2.inpaint(np.clip(255.0 * rgb, 0, 255).astype(np.uint8),
                                 np.clip(255.0 * fade.numpy(), 0, 255).astype(np.uint8), 3, method)
            blended = rgb * (1.0 - weight) + filled.astype(np.float32) / 255.0 * weight
            picture.copy_(torch.from_numpy(blended))
            progress(i + 1, image.shape[0])
        return image


class InpaintMaskedBlur(Node):
    """Blur the masked area (mask 0.99 and up) with a Gaussian of `blur` taps (made odd; sigma
    0.3 (taps - 1) + 0.8, reflected borders), as the pack's Blur Masked Area: the area keeps
    only the colours around it, which an inpainting model then refines. With falloff (made odd,
    at most blur - 2) the blur fades in over that many pixels inside the area's edge. One mask,
    or one per image."""
    category = "inpaint"
    image: IMAGE
    mask: MASK
    blur: int = Int(255, min=3, max=8191, step=1)
    falloff: int = Int(0, min=0, max=8191, step=1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("INPAINT_MaskedBlur",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        return Estimate(size, memory=_blur_memory(size, 3))

    def run(self):
        blur = _make_odd(self.blur)
        falloff = min(_make_odd(self.falloff), blur - 2)
        pixels, mask = _image_mask(self.image, self.mask)
        alpha = _falloff_alpha(_masked(mask), falloff)
        blurred = gaussian_blur(pixels, blur)
        return (pixels + (blurred - pixels) * alpha).permute(0, 2, 3, 1)


# -- VAE encode & inpaint conditioning --------------------------------------------------------------


class InpaintVAEEncodeInpaintConditioning(Node):
    """InpaintModelConditioning with its noise mask, plus the inpaint latent Fooocus' patch
    needs, as the pack's VAE Encode & Inpaint Conditioning: positive and negative carry the
    greyed-out picture's latent and the mask; latent_inpaint is that latent with the mask rounded
    to 0/1 as its noise mask (feed it to Apply Fooocus Inpaint); latent_samples is the whole
    picture encoded with the mask as noise mask (sample it)."""
    category = "inpaint"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    pixels: IMAGE
    mask: MASK
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent_inpaint": LATENT,
               "latent_samples": LATENT}
    comfy = ComfyAlias(("INPAINT_VAEEncodeInpaintConditioning",))

    def run(self):
        if not self.positive:
            raise NodeInputError("positive", "the conditioning is empty")
        positive, negative, latent = _core(InpaintModelConditioning, positive=self.positive, negative=self.negative,
                                           vae=self.vae, pixels=self.pixels, mask=self.mask, noise_mask=True)
        latent_inpaint = {"samples": positive[0][1]["concat_latent_image"], "noise_mask": latent["noise_mask"].round()}
        return positive, negative, latent_inpaint, latent


# -- Fooocus inpaint ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FooocusInpaint:
    """Fooocus' inpaint head (a 3x3 conv of [mask, latent] with no bias, weight [C, 5, 3, 3]) and
    its patch: {state-dict key: (uint8 q, min, max)}, a weight difference of (q / 255) (max - min) + min."""
    head: object
    patch: dict
    head_name: str
    patch_name: str


def _read_head(path, name: str):
    from graphflow.models.weight_files import CheckpointError, WeightFile
    try:
        with WeightFile(path) as weights:
            keys = list(weights.shapes)
            head = weights.get("head").float() if "head" in weights.shapes else None
    except CheckpointError as e:
        raise NodeInputError("head", str(e)) from None
    if head is None or head.ndim != 4 or tuple(head.shape[1:]) != (5, 3, 3):
        found = f"its keys are {', '.join(keys[:4])}" if head is None else f"its head is {tuple(head.shape)}"
        raise NodeInputError("head", f"{name} is not a Fooocus inpaint head (one tensor 'head' [C, 5, 3, 3], "
                                     f"as fooocus_inpaint_head.pth): {found}")
    return head


def _read_patch(path, name: str) -> dict:
    import torch
    from graphflow.models.weight_files import CheckpointError, read_pickle
    if path.suffix.lower() in (".safetensors", ".sft"):
        raise NodeInputError("patch", f"{name}: a Fooocus inpaint patch is a pickled file of (q, min, max) "
                                      f"triples (as inpaint_v26.fooocus.patch); a .safetensors file cannot hold them")
    try:
        patch = read_pickle(path)
    except CheckpointError as e:
        raise NodeInputError("patch", str(e)) from None
    triples = isinstance(patch, dict) and patch and all(
        isinstance(v, (tuple, list)) and len(v) == 3 and all(isinstance(t, torch.Tensor) for t in v)
        for v in patch.values())
    if not triples:
        raise NodeInputError("patch", f"{name} is not a Fooocus inpaint patch ({{weight key: (uint8 q, min, max)}}, "
                                      f"as inpaint_v26.fooocus.patch)")
    return patch


class InpaintLoadFooocusInpaint(Node):
    """Load Fooocus' inpaint model for SDXL from models/inpaint, as the pack's Load Fooocus
    Inpaint: `head` is the inpaint head (fooocus_inpaint_head.pth), `patch` the weight patch
    (inpaint_v26.fooocus.patch). Both are read as plain tensors only (torch.load
    weights_only=True). Feed it to Apply Fooocus Inpaint."""
    category = "inpaint"
    head: str = Choice(_inpaint_files, model_folder=INPAINT_KIND)
    patch: str = Choice(_inpaint_files, model_folder=INPAINT_KIND)
    outputs = {"INPAINT_PATCH": INPAINT_PATCH}
    comfy = ComfyAlias(("INPAINT_LoadFooocusInpaint",))

    @classmethod
    def fingerprint(cls, head, patch):
        return folders.model_state(INPAINT_KIND, head), folders.model_state(INPAINT_KIND, patch)

    def run(self):
        head = _read_head(_find(self.head, "head"), self.head)
        patch = _read_patch(_find(self.patch, "patch"), self.patch)
        return FooocusInpaint(head, patch, self.head, self.patch)


def _dequantized_change(q, low, high, seed: int, weight):
    """weight + (q / 255) (high - low) + low, in float32 (the pack's merge), stored back in the
    weight's dtype (an fp8 weight rounded stochastically, as ComfyUI stores patched ones)."""
    import torch
    from graphflow.models.cast_layers import stochastic_round
    device = weight.device
    diff = (q.to(device, torch.float32) / 255.0) * (high.to(device, torch.float32) - low.to(device, torch.float32)) \
        + low.to(device, torch.float32)
    return stochastic_round(weight.float() + diff, weight.dtype, seed)


def _noise_mask_b1hw(mask, batch: int):
    if mask.ndim in (2, 3):
        mask = _mask_b1hw(mask, "latent")
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise NodeInputError("latent", f"its noise_mask has shape {tuple(mask.shape)}, expected [B, 1, H, W]")
    if mask.shape[0] == 1 and batch > 1:
        mask = mask.expand(batch, -1, -1, -1)
    if mask.shape[0] != batch:
        raise NodeInputError("latent", f"{mask.shape[0]} noise masks for {batch} latents")
    return mask.float()


def head_feature(head, samples, noise_mask, latent_format):
    """The inpaint head's output, as the pack computes it: the noise mask (rounded, max-pooled by 8,
    rounded) beside the latent scaled in (the model's latent format), replicate-padded by 1, then
    the head's 3x3 conv."""
    import torch
    import torch.nn.functional as F
    latent = latent_format.process_in(samples.float())
    mask = F.max_pool2d(noise_mask.round(), (8, 8)).round()
    feed = torch.cat([mask, latent], dim=1)
    return F.conv2d(F.pad(feed, (1, 1, 1, 1), "replicate"), head.float())


def _first_block_patch(feature):
    """Input-block patch: adds the head's feature to the UNet's features after input block 0
    (the first conv), repeated over a batch of several predictions (conditioned, unconditioned)."""
    def patch(h, k, timesteps):
        if k != 0:
            return h
        if h.shape[-2:] != feature.shape[-2:] or h.shape[0] % feature.shape[0]:
            raise ValueError(f"Apply Fooocus Inpaint: the model is sampling a batch {tuple(h.shape)} but the head "
                             f"was computed for latents {tuple(feature.shape)}: sample the latent of the same size "
                             f"and batch as the one given to Apply Fooocus Inpaint")
        return h + feature.to(h).repeat(h.shape[0] // feature.shape[0], 1, 1, 1)
    return patch


class InpaintApplyFooocusInpaint(Node):
    """Apply Fooocus' inpaint model to an SDXL MODEL, as the pack's Apply Fooocus Inpaint: the
    inpaint head's output (from `latent`'s samples and noise mask: use latent_inpaint of VAE
    Encode & Inpaint Conditioning) is added to the UNet's features after its first input block,
    and the patch's weight differences are merged into the model's weights as a LoRA's are
    (unmerged again for the unpatched model, cached like LoRAs). Patch keys the model lacks are
    skipped with a warning, as the pack skips them; a patch whose weights have other shapes than
    the model's (made for another model) is refused, where the pack prints and skips them. The
    head's output channels must be those of the UNet's first block (320 for SDXL). GGUF models'
    quantized layers are patched on their values (as LoRAs are). Scaled-fp8 models are not
    supported."""
    category = "inpaint"
    model: MODEL
    patch: INPAINT_PATCH
    latent: LATENT
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("INPAINT_ApplyFooocusInpaint",))

    def run(self):
        from graphflow.memory import WeightPatch
        from graphflow.models.lora import _shallow
        unet = getattr(self.model, "unet", None)
        if unet is None or getattr(unet, "input_blocks", None) is None:
            raise NodeInputError("model", "Fooocus inpaint patches UNet models (SDXL); this model has no UNet blocks")
        head = self.patch.head
        width = getattr(getattr(unet, "config", None), "model_channels", None)
        if head.shape[0] != width:
            raise NodeInputError("patch", f"{self.patch.head_name} gives {head.shape[0]} channels, this UNet's first "
                                          f"block has {width}: the head is for another model")
        samples = self.latent.get("samples") if isinstance(self.latent, dict) else None
        if samples is None or samples.ndim != 4 or samples.shape[1] != head.shape[1] - 1:
            shape = None if samples is None else tuple(samples.shape)
            raise NodeInputError("latent", f"expected latents [B, {head.shape[1] - 1}, h, w], got {shape}")
        if self.latent.get("noise_mask") is None:
            raise NodeInputError("latent", "it has no noise mask: use latent_inpaint of VAE Encode & Inpaint "
                                           "Conditioning (or a latent with a noise mask)")
        mask = _noise_mask_b1hw(self.latent["noise_mask"], samples.shape[0])
        if (mask.shape[-2] // 8, mask.shape[-1] // 8) != tuple(samples.shape[-2:]):
            raise NodeInputError("latent", f"its noise mask is {mask.shape[-1]}x{mask.shape[-2]} pixels, its samples "
                                           f"{samples.shape[-1]}x{samples.shape[-2]}: the mask must be 8 times larger")
        feature = head_feature(head, samples, mask, self.model.latent_format)

        patches, missing = [], []
        for key, (q, low, high) in self.patch.patch.items():
            path = key.removeprefix("diffusion_model.") if key.startswith("diffusion_model.") else None
            weight = _parameter(unet, path) if path else None
            if weight is None:
                missing.append(key)
                continue
            layer_path, _, name = path.rpartition(".")
            layer = unet.get_submodule(layer_path)
            # a GGUF layer's weight holds its packed blocks: its values' shape is weight_shape
            shape = getattr(layer, "weight_shape", weight.shape) if name == "weight" else weight.shape
            if tuple(q.shape) != tuple(shape):
                raise NodeInputError("patch", f"{self.patch.patch_name}: {key} is {tuple(q.shape)}, the model's "
                                              f"{tuple(shape)}: the patch is for another model (SDXL)")
            if getattr(layer, "scale_weight", None) is not None:
                raise NodeInputError("model", "scaled-fp8 models are not supported by Apply Fooocus Inpaint")
            seed = zlib.crc32(key.encode())
            patches.append(WeightPatch(path, functools.partial(_dequantized_change, q, low, high, seed), seed))
        if not patches:
            raise NodeInputError("patch", f"{self.patch.patch_name}: none of its {len(self.patch.patch)} keys is a "
                                          f"weight of this model (e.g. {', '.join(list(self.patch.patch)[:3])})")
        if missing:
            warn(f"Apply Fooocus Inpaint: {len(patches)} patch keys loaded, {len(missing)} not found in the model "
                 f"(skipped, as the pack does): {', '.join(missing[:8])}")
        patched_unet = _shallow(unet)
        patched_unet.input_block_patches = (*getattr(unet, "input_block_patches", ()), _first_block_patch(feature))
        model = self.model.with_patches(self.model.patches + tuple(patches))
        return model.with_unet(patched_unet)


def _parameter(module, path: str):
    try:
        return module.get_parameter(path)
    except AttributeError:
        return None


# -- LaMa ------------------------------------------------------------------------------------------


def _torchscript(path) -> bool:
    import zipfile
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())


class InpaintLoadInpaintModel(Node):
    """Load an inpainting model from models/inpaint, as the pack's Load Inpaint Model: LaMa (big-lama)
    as a state dict (.pth, read as plain tensors only, or .safetensors), recognised by spandrel.
    Not here: MAT (Places_512_FullData_G.pth; its architecture is in spandrel_extra_arches, which
    graphflow does not use) and TorchScript .pt files such as the pack's big-lama.pt (graphflow
    runs no code from model files): both are refused by name, the TorchScript refusal saying how
    to save the file's weights as a state dict (torch.jit.load(...).state_dict(), where you trust
    the file), which loads here."""
    category = "inpaint"
    model_name: str = Choice(_inpaint_files, model_folder=INPAINT_KIND)
    outputs = {"INPAINT_MODEL": INPAINT_MODEL}
    comfy = ComfyAlias(("INPAINT_LoadInpaintModel",))

    @classmethod
    def fingerprint(cls, model_name):
        return folders.model_state(INPAINT_KIND, model_name)

    def run(self):
        import spandrel
        from graphflow.models.weight_files import CheckpointError, WeightFile
        path = _find(self.model_name, "model_name")
        if _torchscript(path):
            raise NodeInputError("model_name", f"{self.model_name} is a TorchScript archive: loading it runs code "
                                               f"stored in the file (torch.jit.load), and graphflow reads model files "
                                               f"as plain tensors only. Give LaMa as a state dict (.pth or "
                                               f".safetensors) instead: the LaMa repository's generator weights "
                                               f"(keys generator.model.* or model.model.*), or this file's, saved "
                                               f"once where you trust it: torch.save(torch.jit.load("
                                               f"'{self.model_name}').state_dict(), 'big-lama.pth') (what spandrel "
                                               f"itself reads from it)")
        try:
            with WeightFile(path) as weights:
                state = {k: weights.get(k).clone() for k in weights.shapes}
        except CheckpointError as e:
            raise NodeInputError("model_name", str(e)) from None
        if MAT_KEY in state:
            raise NodeInputError("model_name", f"{self.model_name} is a MAT model, which is not supported here "
                                               f"(spandrel has MAT only in spandrel_extra_arches): use LaMa")
        try:
            model = spandrel.ModelLoader(device="cpu").load_from_state_dict(state)
        except spandrel.UnsupportedModelError:
            raise NodeInputError("model_name", f"{self.model_name} is no inpainting model spandrel recognises "
                                               f"(LaMa); keys e.g. {', '.join(list(state)[:3])}") from None
        except Exception as e:  # a known architecture with inconsistent shapes
            raise NodeInputError("model_name", f"{self.model_name} could not be built: {type(e).__name__}: {e}") \
                from None
        if model.architecture.id != "LaMa":
            raise NodeInputError("model_name", f"{self.model_name} is a {model.architecture.name} model, not an "
                                               f"inpainting model (LaMa); upscale models load with Load Upscale Model")
        return model.eval()


def _square(x, size: int):
    """The pack's resize_square of [1, C, H, W]: padded right / bottom to a square (reflected once,
    zeros past that), then nearest-exact to size x size; and (pad_w, pad_h, side)."""
    import torch.nn.functional as F
    _, _, h, w = x.shape
    if h == size and w == size:
        return x, (0, 0, w)
    side = max(h, w)
    pad_w, pad_h = side - w, side - h
    first_w, first_h = min(pad_w, w - 1), min(pad_h, h - 1)
    x = F.pad(x, (0, first_w, 0, first_h), mode="reflect") if first_w or first_h else x
    if pad_w - first_w or pad_h - first_h:
        x = F.pad(x, (0, pad_w - first_w, 0, pad_h - first_h))
    if x.shape[-1] != size:
        x = F.interpolate(x, size=size, mode="nearest-exact")
    return x, (pad_w, pad_h, side)


def _unsquare(x, placed):
    import torch.nn.functional as F
    pad_w, pad_h, side = placed
    if x.shape[-1] != side or x.shape[-2] != side:
        x = F.interpolate(x, size=side, mode="bilinear")
    return x[:, :, :side - pad_h, :side - pad_w]


class InpaintInpaintWithModel(Node):
    """Inpaint the masked area (mask 0.99 and up) with an inpainting model, as the pack's Inpaint
    (using Model): each image (and its mask, or the first mask for all) is padded to a square
    (reflected), resized to 256x256 (nearest) for LaMa, inpainted, optionally upscaled with
    optional_upscale_model (tiles of 512, overlap 32), resized back (bilinear) and put into the
    masked area only. The seed is kept for the pack's layout: LaMa draws no noise, so it changes
    nothing."""
    category = "inpaint"
    inpaint_model: INPAINT_MODEL
    image: IMAGE
    mask: MASK
    seed: int = Int(0, min=0, max=SEED_MAX)
    optional_upscale_model: UPSCALE_MODEL = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("INPAINT_InpaintWithModel",), optional=("optional_upscale_model",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        memory = 0 if size is None else 4 * 3 * 2 * max(size.height, size.width) ** 2
        return Estimate(size, memory=memory)

    def run(self):
        import torch
        from graphflow import memory
        from graphflow.models.upscale import upscale_fitting
        if getattr(getattr(self.inpaint_model, "architecture", None), "id", None) != "LaMa":
            raise NodeInputError("inpaint_model", "expected a LaMa model from Load Inpaint Model")
        pixels, masks = _image_mask(self.image, self.mask, first_mask=True)
        if pixels.shape[1] != 3:
            raise NodeInputError("image", f"LaMa inpaints RGB images, got {pixels.shape[1]} channels")
        model = self.inpaint_model
        results = []
        with memory.use(model.model, "inpaint_model", "inpaint_model:LaMa"), torch.no_grad():
            device = memory.manager().device_for(model.model)
            for i in range(pixels.shape[0]):
                check_interrupted()
                picture, mask = pixels[i:i + 1], masks[i:i + 1] if masks.shape[0] > 1 else masks[:1]
                work, placed = _square(picture, LAMA_SIZE)
                work_mask, _ = _square(mask, LAMA_SIZE)
                out = model(work.to(device), _masked(work_mask).to(device)).float().cpu()
                if self.optional_upscale_model is not None:
                    out = upscale_fitting(self.optional_upscale_model, out.permute(0, 2, 3, 1), 512, 32)
                    out = out.permute(0, 3, 1, 2)
                out = _unsquare(out, placed)
                results.append(picture + (out - picture) * _masked(mask))
                progress(i + 1, pixels.shape[0])
        return torch.cat(results).permute(0, 2, 3, 1)
