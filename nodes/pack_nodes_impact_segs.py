"""ComfyUI Impact Pack's SEGS and detailer nodes (the model-free part: masks in, the user's own SD
model samples), under the pack's class names, inputs and outputs.

Read from ltdrdata/ComfyUI-Impact-Pack: modules/impact/core.py at
001ddb549356cbc52062abe0948bb157f825810f (SEG, mask_to_segs, enhance_detail, segs_to_combined_mask,
segs_to_masklist, crop_condition_mask), modules/impact/utils.py at
d47c85be075b38e02b32a061dddbdae76a3065df (make_crop_region / normalize_region, crop_ndarray4,
tensor_resize, tensor_gaussian_blur_mask, tensor_paste, dilate_mask), modules/impact/impact_pack.py
at 544a0b9df22142d78ec9176ec74cd7f8a720cf78 (DetailerForEach, DetailerForEachDebug), defs.py at
db2446367584a310bf1866e04a3470e545665b74 (the label presets), impact_sampling.py at
042a6fd793ae226a45329cb3f5a967d0770516a8 (ksampler_wrapper: KSampler itself where no refiner is
given) and the wildcard chooser of wildcards.py (store file 1951372682, the text
nodes/pack_nodes_impact.py follows); the editor's
js/impact-pack.js at 05bbb58546ba14d17c1889c29e9756524a61204c (the detailers' wildcard text adds no
widget) and js/comboBoolMigration.js at 05bebe3185ae36596731e583f05540d013cb8a9a. The store holds
the pack's newer segs_nodes.py and impact_pack.py only as files it does not name by commit: store
file 66515373893 (segs_nodes.py with tooltips: SEGSDetailer, SEGSPaste, SEGSPreview, MakeTileSEGS, the
SEGS filters, SEGSToImageList, SEGSToMaskList, SEGSConcat, MaskToSEGS, the mask dilation and blur) and
store file 21557146755 (a newer impact_pack.py, copied into a repository that adds a
DetailerForEachAutoRetry: its DetailerForEach and DetailerForEachPipe add scheduler_func_opt,
tiled_encode and tiled_decode after noise_mask_feather, and [SKIP] / [STOP] wildcard items); we
follow those for what 544a0b9 lacks. The detailers' defaults are 544a0b9's (guide_size 384, where
the newer text has 512); the segs_nodes.py nodes' are store file 66515373893's.

Nodes: MaskToSEGS, SegsToCombinedMask, SEGSToImageList, ImpactSEGSToMaskList, SEGSPreview,
SEGSPaste, SEGSDetailer, DetailerForEach, DetailerForEachDebug, DetailerForEachPipe,
ImpactSEGSOrderedFilter, ImpactSEGSRangeFilter, ImpactSEGSLabelFilter, ImpactSEGSLabelAssign,
ImpactSEGSConcat, ImpactCount_Elts_in_SEGS, ImpactDilateMaskInSEGS, ImpactDilateMask,
ImpactGaussianBlurMask, EmptySegs, ImpactIsNotEmptySEGS, ImpactSEGSToMaskBatch, ImpactSegsAndMask,
ImpactMakeTileSEGS (rectangular tiles: mask_irregularity, drawn unseeded in the pack, is refused
above 0).

Left out: the detectors (BBOX / SEGM / ONNX / CLIPSeg / MediaPipe: pickled ultralytics and SAM
weights or packages we don't have), SAM, FaceDetailer and the detailer pipes built on them
(DetailerPipe ...), DetailerForEachDebugPipe, the ControlNet / IPAdapter wrappers a SEG may carry
(ControlNetApplySEGS ...: a SEG holding one is refused by name), detailer hooks and Impact's
scheduler functions (the detailer_hook and scheduler_func_opt inputs are refused by name when
connected), the refiner pipes of SEGSDetailer and DetailerForEachPipe (refused when connected),
MaskToSEGS_for_AnimateDiff and the AnimateDiff detailers, SEGS whose size differs from the
picture's (the pack rescales them with segs_scale_match, which scales x1 / y1 by the width and
x2 / y2 by the height: refused here instead), and the SEG_ELT nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from graphflow.api import BOOLEAN, CLIP, CONDITIONING, IMAGE, INT, MASK, MODEL, VAE, Bool, Choice, ComfyAlias, \
    Estimate, Float, Int, ListOf, Node, NodeInputError, Size, Text, check_run_memory, progress, sampling_memory, \
    show, socket_type
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.conditioning import InpaintModelConditioning, concat_conditioning
from nodes.image import MAX_SIZE, temp_pngs
from nodes.latent import SetLatentNoiseMask
from nodes.model_sampling import DifferentialDiffusion
from nodes.pack_nodes import _core
from nodes.pack_nodes_impact import BASIC_PIPE, LIST_INPUTS, _numbered, _pipe, encode_with_loras, process_wildcards
from nodes.sampling import SEED_MAX, KSampler
from nodes.vae import VAEDecode, VAEEncode

COMFY_PACK = "ComfyUI Impact Pack"  # the custom node pack this module's ComfyUI classes come from

SEGS = socket_type("SEGS", "#c2185b", "Impact Pack's segments of a picture: its (height, width) and a list of SEG "
                                     "(crop region, bounding box, mask in the crop, label, confidence)")
DETAILER_HOOK = socket_type("DETAILER_HOOK", "#8d6e63", "Impact Pack's detailer hook (not built here)")
SCHEDULER_FUNC = socket_type("SCHEDULER_FUNC", "#8d6e63", "Impact Pack's scheduler function (not built here)")

# One segment is one sampling run of up to max_size squared and keeps a crop of the mask (up to the
# whole picture): a mask of specks gives thousands of contours, hours of sampling and gigabytes of
# crops. 512 segments is more than any detailing workflow asks for (faces, hands, a few objects).
MAX_SEGMENTS = 512
DETECTION_LABELS = (
    "hand", "face", "mouth", "eyes", "eyebrows", "pupils", "left_eyebrow", "left_eye", "left_pupil", "right_eyebrow",
    "right_eye", "right_pupil", "short_sleeved_shirt", "long_sleeved_shirt", "short_sleeved_outwear",
    "long_sleeved_outwear", "vest", "sling", "shorts", "trousers", "skirt", "short_sleeved_dress",
    "long_sleeved_dress", "vest_dress", "sling_dress", "person", "bicycle", "car", "motorcycle", "airplane", "bus",
    "train", "truck", "boat", "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush")
ORDER_TARGETS = ("area(=w*h)", "width", "height", "x1", "y1", "x2", "y2", "confidence", "none")
RANGE_TARGETS = ("area(=w*h)", "width", "height", "x1", "y1", "x2", "y2", "length_percent", "confidence(0-100)")
INT_MAX = 2**63 - 1  # the pack's sys.maxsize

# saves from the pack's 2023 versions hold these toggles as choices, which its editor
# (js/comboBoolMigration.js) reads as on where the value is the toggle's label_on; each maps onto
# itself too, so that a workflow is written back with today's values
OLD_TOGGLES = {
    "guide_size_for": {"bbox": True, "crop_region": False, True: True, False: False},
    "noise_mask": {"enabled": True, "disabled": False, True: True, False: False},
    "force_inpaint": {"enabled": True, "disabled": False, True: True, False: False},
    "combined": {"True": True, "False": False, True: True, False: False},
    "bbox_fill": {"enabled": True, "disabled": False, True: True, False: False},
}
DETAILER_OPTIONAL = ("detailer_hook", "inpaint_model", "noise_mask_feather", "scheduler_func_opt", "tiled_encode",
                     "tiled_decode")

_SEPARATOR = re.compile(r"\[SEP(?::\w+)?\]")
_ORDER_MODE = re.compile(r"\[(ASC-SIZE|DSC-SIZE|ASC|DSC|RND)\]")
_LABEL_ITEM = re.compile(r"\[([A-Za-z0-9_. ]+)\]([^\[]+)(?=\[|$)")


# -- the SEGS value --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SEG:
    """One segment, as the pack's SEG namedtuple: cropped_image [1, h, w, C] (None until a detailer
    fills it), cropped_mask [h, w] in 0..1 over the crop region, crop_region and bbox (x1, y1,
    x2, y2) in picture pixels."""

    cropped_image: object = field(repr=False)
    cropped_mask: object = field(repr=False)
    confidence: float
    crop_region: tuple
    bbox: tuple
    label: str
    control_net_wrapper: object = None


@dataclass(frozen=True, eq=False)
class Segs:
    """The pack's SEGS (shape, [SEG ...]): the (height, width) of the picture the segments are in."""

    shape: tuple
    segs: tuple


def _segs(value, name: str = "segs") -> Segs:
    if not isinstance(value, Segs):
        raise NodeInputError(name, "expected SEGS (from MaskToSEGS or another SEGS node)")
    return value


def _fitting(segs: Segs, image, name: str) -> Segs:
    """The segments of `segs`, which must have been made for the picture's size."""
    height, width = image.shape[1:3]
    if tuple(segs.shape) != (height, width) and tuple(segs.shape) != (0, 0):
        raise NodeInputError(name, f"the SEGS were made for a {segs.shape[1]}×{segs.shape[0]} picture; this one is "
                                   f"{width}×{height} (rescaling SEGS is not supported: make them from this "
                                   f"picture's mask)")
    return segs


def _image_batch(image, name: str):
    import torch
    if not torch.is_tensor(image) or image.ndim != 4:
        raise NodeInputError(name, "expected an IMAGE: a [B, H, W, C] tensor")
    return image


def _no_wrapper(seg: SEG) -> None:
    if seg.control_net_wrapper is not None:
        raise NodeInputError("segs", "a segment carries a ControlNet / IPAdapter wrapper (ControlNetApplySEGS ...), "
                                     "which graphflow does not build")


# -- regions and masks -----------------------------------------------------------------------------


def _fit(limit: int, start: int, size: float) -> tuple[int, int]:
    """The pack's normalize_region: the span [start, start + size) moved inside [0, limit)."""
    if start < 0:
        return 0, int(min(limit, size))
    if start + size > limit:
        return int(max(0, limit - size)), int(limit)
    return int(start), int(min(limit, start + size))


def make_crop_region(width: int, height: int, bbox, crop_factor: float, crop_min_size=None) -> list[int]:
    """The pack's make_crop_region: the bbox grown crop_factor times about its centre (at least
    crop_min_size a side), its corner truncated to whole pixels and the box moved inside the
    picture (clamped where it is larger than the picture). [x1, y1, x2, y2]."""
    x1, y1, x2, y2 = bbox
    bbox_w, bbox_h = x2 - x1, y2 - y1
    crop_w, crop_h = bbox_w * crop_factor, bbox_h * crop_factor
    if crop_min_size is not None:
        crop_w, crop_h = max(crop_min_size, crop_w), max(crop_min_size, crop_h)
    left, right = _fit(width, int(x1 + bbox_w / 2 - crop_w / 2), crop_w)
    top, bottom = _fit(height, int(y1 + bbox_h / 2 - crop_h / 2), crop_h)
    return [left, top, right, bottom]


def mask_to_segs(mask, combined: bool, crop_factor: float, bbox_fill: bool, drop_size: int, label: str = "A",
                 crop_min_size=None, contour_fill: bool = True) -> Segs:
    """The pack's mask_to_segs on a mask [H, W] or batch [B, H, W] (each picture of a batch gives
    its segments). combined: one segment around all nonzero pixels (its bbox ends at the last
    pixel, not after it, and drop_size is not applied, as there). Else one segment per outer
    contour (OpenCV's findContours on the mask truncated to 8 bits, holes and what lies in them
    belong to the outer one) wider and taller than drop_size pixels; its mask is the filled
    contour (contour_fill) or the mask's own values inside it. bbox_fill sets the mask's bbox to 1."""
    import cv2
    import numpy as np
    import torch

    drop_size = max(drop_size, 1)
    planes = mask.detach().cpu().float().numpy()
    planes = planes[None] if planes.ndim == 2 else planes
    height, width = planes.shape[1:]
    parts = []  # (plane, outer contour or None for combined, bbox, crop region): the crops are made once all are known
    for plane in planes:
        if combined:
            ys, xs = np.nonzero(plane)
            if len(ys) == 0:
                continue
            bbox = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
            x1, y1, x2, y2 = region = make_crop_region(width, height, bbox, crop_factor)
            if x2 > x1 and y2 > y1:
                parts.append((plane, None, bbox, region))
            if len(parts) > MAX_SEGMENTS:
                raise NodeInputError("mask", f"more than {MAX_SEGMENTS} masks in the batch, each giving a segment "
                                             "(combined)")
            continue
        contours, tree = cv2.findContours((plane * 255.0).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        outer = [c for c, links in zip(contours, tree[0] if tree is not None else ()) if links[3] == -1]
        kept = [(c, cv2.boundingRect(c)) for c in outer]
        kept = [(c, (x, y, x + w, y + h)) for c, (x, y, w, h) in kept if w > drop_size and h > drop_size]
        if len(parts) + len(kept) > MAX_SEGMENTS:
            raise NodeInputError("mask", f"the mask has more than {MAX_SEGMENTS} parts wider and taller than "
                                         f"drop_size ({drop_size}): raise drop_size or clean the mask")
        parts += [(plane, c, bbox, make_crop_region(width, height, bbox, crop_factor, crop_min_size))
                  for c, bbox in kept]
    check_crops("crop_factor", f"the {len(parts)} segments' crop regions (crop_factor {crop_factor})",
                [region for *_, region in parts], 1)
    found = []
    for plane, contour, bbox, region in parts:
        x1, y1, x2, y2 = region
        if contour is None:
            cropped = plane[y1:y2, x1:x2].copy()
            if bbox_fill:  # as the pack: the bbox's picture coordinates used inside the crop
                cropped[bbox[1]:bbox[3], bbox[0]:bbox[2]] = 1.0
            found.append(SEG(None, torch.from_numpy(cropped), 1.0, tuple(region), bbox, label))
            continue
        # the contour filled within the crop only (the pack fills it over the whole picture, then crops)
        filled = np.zeros((y2 - y1, x2 - x1), np.uint8)
        cv2.drawContours(filled, [contour], 0, 255, -1, offset=(-x1, -y1))
        inside = (filled / 255.0).astype(np.float32)
        cropped = inside if contour_fill else plane[y1:y2, x1:x2] * inside
        if bbox_fill:
            cropped[bbox[1] - y1:bbox[3] - y1, bbox[0] - x1:bbox[2] - x1] = 1.0
        found.append(SEG(None, torch.from_numpy(np.clip(cropped, 0.0, 1.0)), 1.0, tuple(region), bbox, label))
    return Segs((height, width), tuple(found))


def check_crops(input_name: str, what: str, regions, channels: int) -> None:
    """Refuse, before they are made, crops of these regions (x1, y1, x2, y2) of `channels` float32
    values a pixel that the memory can't hold: check_run_memory's rule for an IMAGE batch of as
    many bytes (3 values a pixel). A crop region may be the whole picture (crop_factor up to 100),
    so their count alone (MAX_SEGMENTS) does not bound them."""
    pixels = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in regions)
    check_run_memory(input_name, f"{what} hold {pixels} pixels of {channels} value(s)",
                     images=Size(1, 1, -(-pixels * channels // 3)))


def combined_mask(segs: Segs):
    """The pack's segs_to_combined_mask: each segment's mask, as 8 bits, OR-ed into the picture [H, W]."""
    import torch
    height, width = segs.shape
    mask = torch.zeros((height, width), dtype=torch.uint8)
    for seg in segs.segs:
        x1, y1, x2, y2 = seg.crop_region
        mask[y1:y2, x1:x2] |= (torch.as_tensor(seg.cropped_mask) * 255).to(torch.uint8)
    return mask.float() / 255.0


def blurred_mask(mask, feather: int, sigma: float = 10.0):
    """The pack's tensor_gaussian_blur_mask: a mask ([h, w], [N, h, w] or [N, h, w, 1]) as
    [N, h, w, 1], blurred by torchvision's GaussianBlur (kernel 2 * feather + 1, sigma 10, edges
    reflected); a kernel not shorter than the mask's shorter side becomes about half that side
    (odd), and under 3 leaves the mask as it is."""
    import torch
    import torch.nn.functional as F

    mask = torch.as_tensor(mask).float()
    mask = mask[None, ..., None] if mask.ndim == 2 else mask[..., None] if mask.ndim == 3 else mask
    if feather <= 0:
        return mask
    size = feather * 2 + 1
    shortest = min(mask.shape[1], mask.shape[2])
    if shortest <= size:
        size = shortest // 2
        size += 1 if size % 2 == 0 else 0
        if size < 3:
            return mask
    half = (size - 1) / 2
    kernel = torch.exp(-0.5 * (torch.linspace(-half, half, size) / sigma) ** 2)
    kernel = kernel / kernel.sum()
    planes = F.pad(mask[..., 0][:, None], (size // 2,) * 4, mode="reflect")
    planes = F.conv2d(F.conv2d(planes, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    return planes[:, 0, :, :, None]


def paste(image, patch, left: int, top: int, mask) -> None:
    """The pack's tensor_paste, in place: image[top:, left:] blended towards patch by mask
    [1, h, w, 1] (resized bilinearly to the patch where their sizes differ), cut at the picture's edge."""
    import torch.nn.functional as F
    if tuple(mask.shape[1:3]) != tuple(patch.shape[1:3]):
        mask = F.interpolate(mask[..., 0][None], size=tuple(patch.shape[1:3]), mode="bilinear",
                             align_corners=False)[0][..., None]
    height, width = min(image.shape[1], top + patch.shape[1]) - top, min(image.shape[2], left + patch.shape[2]) - left
    if height <= 0 or width <= 0:
        return
    mask = mask[:, :height, :width].to(image)
    region = image[:, top:top + height, left:left + width]
    image[:, top:top + height, left:left + width] = (1 - mask) * region + mask * patch[:, :height, :width].to(image)


def lanczos(image, width: int, height: int):
    """The pack's tensor_resize: each picture through 8 bits (clipped, truncated) and PIL's LANCZOS."""
    import numpy as np
    import torch
    from PIL import Image

    from graphflow.images import image_to_pil
    return torch.stack([torch.from_numpy(np.asarray(image_to_pil(picture).resize((width, height),
                                                                                  Image.Resampling.LANCZOS),
                                                    dtype=np.float32) / 255.0) for picture in image])


def crop(image, region):
    x1, y1, x2, y2 = region
    return image[:, y1:y2, x1:x2, :]


def dilated(mask, factor: int):
    """The pack's dilate_mask: OpenCV's dilation (erosion for a negative factor) by a |factor|
    square, on a 2-D mask."""
    import cv2
    import numpy as np
    import torch
    mask = torch.as_tensor(mask).float()
    while mask.ndim > 2 and mask.shape[0] == 1:
        mask = mask[0]
    if factor == 0:
        return mask
    kernel = np.ones((abs(factor), abs(factor)), np.uint8)
    array = mask.cpu().numpy()
    return torch.from_numpy(cv2.dilate(array, kernel, 1) if factor > 0 else cv2.erode(array, kernel, 1))


# -- the detailer ----------------------------------------------------------------------------------


def upscaled_size(crop_w: int, crop_h: int, bbox, guide_size: float, guide_size_for_bbox: bool, max_size: float,
                  force_inpaint: bool) -> tuple[int, int] | None:
    """The pack's enhance_detail sizing: the crop scaled so that the bbox's (or the crop's)
    shorter side becomes guide_size, then down to max_size on its longer side; None where the
    pack skips the segment (not force_inpaint: bbox already guide_size each way, or no upscale),
    the crop's own size where force_inpaint finds no upscale."""
    bbox_w, bbox_h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    if not force_inpaint and bbox_h >= guide_size and bbox_w >= guide_size:
        return None
    upscale = guide_size / min(bbox_w, bbox_h) if guide_size_for_bbox else guide_size / min(crop_w, crop_h)
    new_w, new_h = int(crop_w * upscale), int(crop_h * upscale)
    if new_w > max_size or new_h > max_size:
        upscale *= max_size / max(new_w, new_h)
        new_w, new_h = int(crop_w * upscale), int(crop_h * upscale)
    if upscale <= 1.0 or new_w == 0 or new_h == 0:
        return (crop_w, crop_h) if force_inpaint else None
    return new_w, new_h


def cropped_conditioning(conditioning, image, region):
    """The pack's crop of a conditioning's "mask" to the crop region (scaled to the mask's size,
    the x values by the height ratio as the pack does)."""
    if isinstance(conditioning, str):  # Impact's NegativePlaceholder
        return conditioning
    out = []
    for embedding, options in conditioning:
        if "mask" in options:
            mask = options["mask"]
            scale = (mask.shape[1] / image.shape[1], mask.shape[2] / image.shape[2])
            x1, y1, x2, y2 = (round(v * scale[i % 2]) for i, v in enumerate(region))
            options = {**options, "mask": mask[:, y1:y2, x1:x2]}
        out.append((embedding, options))
    return out


@dataclass
class Sampling:
    """What enhance_detail samples a segment with."""

    model: object
    clip: object
    vae: object
    positive: object
    negative: object
    guide_size: float
    guide_size_for: bool
    max_size: float
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    denoise: float
    force_inpaint: bool
    cycle: int = 1
    inpaint_model: bool = False
    noise_mask_feather: int = 0
    tiled_encode: bool = False
    tiled_decode: bool = False

    @classmethod
    def of(cls, node, model, clip, vae, positive, negative) -> Sampling:
        """A detailer node's settings (its widgets of these names; tiled_encode / tiled_decode off
        where it has none) with its model, given DifferentialDiffusion by differential()."""
        return cls(model=differential(model, node.noise_mask_feather), clip=clip, vae=vae, positive=positive,
                   negative=negative, guide_size=node.guide_size, guide_size_for=node.guide_size_for,
                   max_size=node.max_size, steps=node.steps, cfg=node.cfg, sampler_name=node.sampler_name,
                   scheduler=node.scheduler, denoise=node.denoise, force_inpaint=node.force_inpaint,
                   cycle=node.cycle, inpaint_model=node.inpaint_model, noise_mask_feather=node.noise_mask_feather,
                   tiled_encode=getattr(node, "tiled_encode", False), tiled_decode=getattr(node, "tiled_decode", False))


def differential(model, noise_mask_feather: int):
    """The model DifferentialDiffusion applied, as the detailers apply it where noise_mask_feather
    is above 0; a model that has it already (its own strength) is left as it is, as the newer pack
    leaves a model with a denoise-mask function, and so is ImpactDummyInput's "DUMMY"."""
    if noise_mask_feather <= 0 or isinstance(model, str) or \
            getattr(model, "options", {}).get("differential_diffusion") is not None:
        return model
    return _core(DifferentialDiffusion, model=model)


def wrapped_seed(seed: int) -> int:
    """A seed counted past the widget's largest (seed + segment number + cycle) wrapped round to 0
    (% 2**64, as pack_nodes_essentials_misc wraps its seeds): the pack hands it on unwrapped, and
    the sampler's generator fails on it."""
    return seed % (SEED_MAX + 1)


def enhance_detail(cropped_image, seg: SEG, noise_mask, seed: int, how: Sampling, wildcard: str = "",
                   concat: bool = False):
    """The pack's enhance_detail: the crop upscaled (LANCZOS, 8 bits) to the guide size, encoded,
    sampled cycle times (seed, seed + 1, ...) with the segment's mask as the noise mask (blurred by
    noise_mask_feather), decoded and scaled back to the crop's size. None where the pack skips it."""
    model, positive = how.model, how.positive
    if noise_mask is not None:
        noise_mask = blurred_mask(noise_mask, how.noise_mask_feather)[..., 0]
    if wildcard:
        text = process_wildcards(wildcard, seed, "wildcard")
        model, _, wildcard_positive = encode_with_loras(text, model, how.clip, input_name="wildcard")
        positive = concat_conditioning(positive, wildcard_positive, "wildcard") if concat else wildcard_positive
    crop_h, crop_w = cropped_image.shape[1:3]
    size = upscaled_size(crop_w, crop_h, seg.bbox, how.guide_size, how.guide_size_for, how.max_size,
                         how.force_inpaint)
    if size is None:
        return None
    new_w, new_h = size
    check_run_memory("max_size", f"the segment at {tuple(seg.crop_region)} upscaled to {new_w}×{new_h}",
                     sampled=Size(1, new_h, new_w))
    upscaled = lanczos(cropped_image, new_w, new_h)
    negative = how.negative
    if noise_mask is not None and how.inpaint_model:
        positive, negative, latent = _core(InpaintModelConditioning, positive=positive, negative=negative,
                                           vae=how.vae, pixels=upscaled, mask=noise_mask)
    else:
        latent = _core(VAEEncode, pixels=upscaled[..., :3], vae=how.vae, tiled=how.tiled_encode)
        if noise_mask is not None:
            latent = _core(SetLatentNoiseMask, samples=latent, mask=noise_mask)
    for i in range(how.cycle):
        latent = _core(KSampler, model=model, seed=wrapped_seed(seed + i), steps=how.steps, cfg=how.cfg,
                       sampler_name=how.sampler_name, scheduler=how.scheduler, positive=positive,
                       negative=negative, latent_image=latent, denoise=how.denoise)
    refined = _core(VAEDecode, samples=latent, vae=how.vae, tiled=how.tiled_decode)
    return lanczos(refined, crop_w, crop_h).cpu()


def wildcard_plan(wildcard: str, segs: tuple) -> tuple[tuple, list, bool]:
    """The pack's process_wildcard_for_segs: (the segments in detailing order, each one's
    (seed or None, wildcard text), concat). [CONCAT] first adds the text's prompt to positive;
    [LAB] gives [ALL] text plus the text of the segment's [label]; [ASC] / [DSC] (by bbox x, y),
    [ASC-SIZE] / [DSC-SIZE] (by bbox area) take the [SEP]-separated texts in turn ([SEP:n]: seed n
    for the next), segments with an empty mask (never detailed) taking none; plain text goes to
    every segment."""
    concat = wildcard.startswith("[CONCAT]")
    wildcard = wildcard[len("[CONCAT]"):] if concat else wildcard
    if wildcard.startswith("[LAB]"):
        texts = {key: value.strip() for key, value in _LABEL_ITEM.findall(wildcard) if value.strip()}
        return segs, [(None, texts.get("ALL", "") + texts.get(seg.label, "")) for seg in segs], concat
    mode = _ORDER_MODE.match(wildcard)
    if mode is None:
        return segs, [(None, wildcard)] * len(segs), concat
    if mode[1] == "RND" or "[SEP:R]" in wildcard:
        raise NodeInputError("wildcard", f"{'[RND]' if mode[1] == 'RND' else '[SEP:R]'} draws from Python's unseeded "
                                         "random generator in the pack (a different result every run): not supported")
    rest = wildcard[len(mode[0]):]
    texts, separators = _SEPARATOR.split(rest), _SEPARATOR.findall(rest)
    seeds = [None] + [int(s[5:-1]) if s[5:-1].lstrip("-").isdigit() else None for s in separators]
    items = list(zip(seeds, texts))
    area = lambda seg: (seg.bbox[2] - seg.bbox[0]) * (seg.bbox[3] - seg.bbox[1])  # noqa: E731
    corner = lambda seg: (seg.bbox[0], seg.bbox[1])  # noqa: E731
    key = {"ASC": corner, "DSC": corner, "ASC-SIZE": area, "DSC-SIZE": area}[mode[1]]
    ordered = tuple(sorted(segs, key=key, reverse=mode[1].startswith("DSC")))
    # the pack's chooser takes the next item only for a segment it details: one with an empty mask
    # (skipped before) takes none
    plan, taken = [], 0
    for seg in ordered:
        plan.append((None, "") if _blank(seg) else items[taken % len(items)])
        taken += not _blank(seg)
    return ordered, plan, concat


def _blank(seg: SEG) -> bool:
    """Whether the segment's mask is all zero (the detailers skip it)."""
    import torch
    return not bool((torch.as_tensor(seg.cropped_mask) != 0).any())


def detail_each(image, segs: Segs, how: Sampling, seed: int, feather: int, noise_mask: bool, wildcard: str):
    """The pack's DetailerForEach.do_detail: each segment cropped from the picture as detailed so
    far, enhanced and pasted back through its mask blurred by feather. Gives (picture, crops,
    enhanced crops, enhanced crops with the mask as alpha, new SEGS)."""
    import torch

    if image.shape[0] > 1:
        raise NodeInputError("image", "DetailerForEach takes one picture, not a batch (as the pack: detail "
                                      "each through a list)")
    segs = _fitting(segs, image, "segs")
    if len(segs.segs) > MAX_SEGMENTS:
        raise NodeInputError("segs", f"{len(segs.segs)} segments: at most {MAX_SEGMENTS} are detailed (each is "
                                     "one sampling run)")
    # each segment's crop, detailed crop and detailed crop with alpha are kept: 3 + 3 + 4 values a pixel
    check_crops("segs", f"the {len(segs.segs)} segments' crops, before and after detailing",
                [seg.crop_region for seg in segs.segs], 10)
    image = image.clone().cpu()
    ordered, items, concat = wildcard_plan(wildcard, segs.segs)
    cropped_list, enhanced_list, alpha_list, new_segs = [], [], [], []
    for i, seg in enumerate(ordered):
        _no_wrapper(seg)
        cropped_image = crop(image, seg.crop_region).clone()  # the picture as detailed so far, never seg.cropped_image
        mask = blurred_mask(seg.cropped_mask, feather)
        if _blank(seg):
            continue
        item_seed, text = items[i]
        if text.strip() == "[SKIP]":
            continue
        if text.strip() == "[STOP]":
            break
        step = replace(how, positive=cropped_conditioning(how.positive, image, seg.crop_region),
                       negative=cropped_conditioning(how.negative, image, seg.crop_region))
        if how.model == "DUMMY":  # ImpactDummyInput on the model: no sampling, as the pack
            enhanced = cropped_image
        else:
            enhanced = enhance_detail(cropped_image, seg, seg.cropped_mask if noise_mask else None,
                                      wrapped_seed(seed + i if item_seed is None else item_seed), step, text, concat)
        if enhanced is not None:
            paste(image, enhanced, seg.crop_region[0], seg.crop_region[1], mask)
            enhanced_list.append(enhanced)
            alpha = torch.cat([enhanced[..., :3], mask[..., :1]], dim=-1) if enhanced.shape[-1] == 3 else enhanced
            alpha_list.append(alpha)
        cropped_list.append(cropped_image)
        new_segs.append(replace(seg, cropped_image=enhanced))
    for pictures in (cropped_list, enhanced_list, alpha_list):
        pictures.sort(key=lambda picture: tuple(picture.shape), reverse=True)
    return image[..., :3], cropped_list, enhanced_list, alpha_list, Segs(segs.shape, tuple(new_segs))


def _estimate_detail(cls, widgets, inputs):
    """The picture passes through; each segment samples at up to max_size a side."""
    side = widgets.get("max_size")
    sampled = Size(1, int(side), int(side)) if isinstance(side, (int, float)) else None
    return Estimate(inputs.get("image"), memory=sampling_memory(sampled))


def _refuse(node, *names: str) -> None:
    for name in names:
        if getattr(node, name, None) is not None:
            raise NodeInputError(name, "Impact Pack's detailer hooks, scheduler functions and refiner pipes are "
                                       "not built in graphflow: disconnect it")


def _empty_picture():
    import torch
    return torch.zeros((1, 64, 64, 3))


# -- nodes -----------------------------------------------------------------------------------------


class MaskToSEGS(Node):
    """Segments from a mask: combined, one segment around everything masked; else one per
    separate part (an outer contour, its holes included), dropped unless wider and taller than
    drop_size. Each crop region is the part's bounding box grown crop_factor times about its
    centre and moved inside the picture. bbox_fill makes each mask its whole bounding box (with
    combined, the pack fills the bbox's picture coordinates inside the crop, which we follow);
    contour_fill fills each part's outline, else the mask's own values are kept inside it.
    At most 512 segments (more is refused; combined gives one for each mask of a batch), and
    crops the memory can't hold (a crop region may be the whole picture) are refused before they
    are made."""
    category = "ImpactPack/Operation"
    mask: MASK
    combined: bool = Bool(False)
    crop_factor: float = Float(3.0, min=1.0, max=100, step=0.1)
    bbox_fill: bool = Bool(False)
    drop_size: int = Int(10, min=1, max=MAX_SIZE)
    contour_fill: bool = Bool(False)
    outputs = {"SEGS": SEGS}
    comfy = ComfyAlias(("MaskToSEGS",), values={k: OLD_TOGGLES[k] for k in ("combined", "bbox_fill")})

    def run(self):
        if self.mask.ndim < 2:
            raise NodeInputError("mask", f"expected a MASK [B, H, W]; got shape {tuple(self.mask.shape)}")
        return mask_to_segs(self.mask.reshape(-1, *self.mask.shape[-2:]), self.combined, self.crop_factor,
                            self.bbox_fill, self.drop_size, contour_fill=self.contour_fill)


class SegsToCombinedMask(Node):
    """All the segments' masks in one mask of the picture's size (8-bit OR, as the pack)."""
    category = "ImpactPack/Operation"
    segs: SEGS
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("SegsToCombinedMask",))

    def run(self):
        return combined_mask(_segs(self.segs))[None]


def _crops(segs: Segs, fallback, name: str) -> list:
    """Each segment's picture: its own, else its crop of the fallback picture, else 64×64 black."""
    import torch
    if fallback is not None:
        segs = _fitting(segs, _image_batch(fallback, name), "segs")
    return [torch.as_tensor(seg.cropped_image) if seg.cropped_image is not None
            else crop(fallback, seg.crop_region) if fallback is not None else _empty_picture() for seg in segs.segs]


class SEGSToImageList(Node):
    """Each segment's picture as one item of a list (the detailed one, else its crop of
    fallback_image_opt, else 64×64 black); one black picture for no segments."""
    category = "ImpactPack/Util"
    segs: SEGS
    fallback_image_opt: IMAGE = None
    outputs = {"IMAGE": ListOf(IMAGE)}
    comfy = ComfyAlias(("SEGSToImageList",), optional=("fallback_image_opt",))

    def run(self):
        return _crops(_segs(self.segs), self.fallback_image_opt, "fallback_image_opt") or [_empty_picture()]


class SEGSToMaskList(Node):
    """Each segment's mask placed in a picture-sized mask, as a list (one empty mask for none)."""
    category = "ImpactPack/Util"
    segs: SEGS
    outputs = {"MASK": ListOf(MASK)}
    comfy = ComfyAlias(("ImpactSEGSToMaskList",))

    def run(self):
        import torch
        segs = _segs(self.segs)
        masks = [combined_mask(Segs(segs.shape, (seg,)))[None] for seg in segs.segs]
        return masks or [torch.zeros((1, *segs.shape))]


class SEGSPreview(Node):
    """The segments' pictures shown in the editor and given as a list: each one's own (detailed)
    picture, else its crop of fallback_image_opt; with alpha_mode, multiplied by its mask.
    Difference: the preview shows the masked picture on black, where the pack's shows it
    see-through (with min_alpha as the least opacity); min_alpha changes nothing here."""
    category = "ImpactPack/Util"
    segs: SEGS
    alpha_mode: bool = Bool(True)
    min_alpha: float = Float(0.2, min=0.0, max=1.0, step=0.01)
    fallback_image_opt: IMAGE = None
    outputs = {"IMAGE": ListOf(IMAGE)}
    output_node = True
    comfy = ComfyAlias(("SEGSPreview",), optional=("fallback_image_opt",))

    def run(self):
        import torch
        segs = _segs(self.segs)
        if not segs.segs or (segs.segs[0].cropped_image is None and self.fallback_image_opt is None):
            return []
        pictures = []
        for seg, picture in zip(segs.segs, _crops(segs, self.fallback_image_opt, "fallback_image_opt")):
            if seg.cropped_image is None and self.fallback_image_opt is None:
                continue
            if self.alpha_mode:
                mask = torch.as_tensor(seg.cropped_mask).float()
                picture = picture * mask.reshape(-1, *mask.shape[-2:])[..., None]
            pictures.append(picture)
        show(images=[shown for picture in pictures for shown in temp_pngs(picture)])  # crops differ in size
        return pictures


class SEGSPaste(Node):
    """Each segment's picture pasted onto the image through its mask blurred by feather (as the
    detailer pastes) and scaled by alpha / 255; with ref_image_opt, its crop of that picture is
    pasted instead. Segments without a picture are left out. On a batch, picture i of each
    segment (or of ref_image_opt) goes onto picture i, so each must hold as many as image; a
    segment's batch of masks gives picture i its mask i where there are as many, else all of them
    are OR-ed into one (any value above 0.1 becoming 1), as the pack does."""
    category = "ImpactPack/Detailer"
    image: IMAGE
    segs: SEGS
    feather: int = Int(5, min=0, max=100)
    alpha: int = Int(255, min=0, max=255)
    ref_image_opt: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("SEGSPaste",), optional=("ref_image_opt",))

    def run(self):
        import torch
        image = _image_batch(self.image, "image")
        segs = _fitting(_segs(self.segs), image, "segs")
        count, (height, width) = image.shape[0], image.shape[1:3]
        ref = self.ref_image_opt
        if ref is not None:
            ref = _image_batch(ref, "ref_image_opt")
            if ref.shape[0] < count or tuple(ref.shape[1:3]) != (height, width):
                raise NodeInputError("ref_image_opt", f"expected {count} picture(s) of {width}×{height}, one for "
                                                      f"each of image's; got {ref.shape[0]} of "
                                                      f"{ref.shape[2]}×{ref.shape[1]}")
        else:
            for seg in segs.segs:
                if seg.cropped_image is not None and len(seg.cropped_image) < count:
                    raise NodeInputError("segs", f"a segment holds {len(seg.cropped_image)} picture(s) for image's "
                                                 f"{count} (picture i is pasted onto picture i): detail each picture "
                                                 "of the batch through a list")
        result = []
        for i in range(count):
            picture = image[i:i + 1].clone()
            for seg in segs.segs:
                if ref is not None:
                    patch = crop(ref[i:i + 1], seg.crop_region)
                elif seg.cropped_image is not None:
                    patch = torch.as_tensor(seg.cropped_image)[i:i + 1]
                else:
                    continue
                paste(picture, patch, seg.crop_region[0], seg.crop_region[1],
                      blurred_mask(_paste_mask(seg, i, count), self.feather) * (self.alpha / 255))
            result.append(picture)
        return torch.cat(result)


def _paste_mask(seg: SEG, i: int, count: int):
    """The mask SEGSPaste pastes picture i of `count` through: the segment's mask i where it holds
    one for each picture; all of several OR-ed as 8 bits and made 0 / 1 at 0.1 where it holds
    another number (the pack warns of it); else its one mask."""
    import torch
    mask = torch.as_tensor(seg.cropped_mask).float()
    if mask.ndim == 3 and mask.shape[0] == count:
        return mask[i]
    if mask.ndim == 3 and mask.shape[0] > 1:
        if i == 0:
            from graphflow.api import warn
            warn(f"a segment holds {mask.shape[0]} masks for {count} picture(s): pasting through all of them combined")
        bits = (mask * 255).to(torch.uint8)
        combined = bits[0]
        for frame in bits[1:]:
            combined = combined | frame
        return (combined.float() / 255.0 > 0.1).float()
    return mask.reshape(mask.shape[-2:])


class SEGSDetailer(Node):
    """The detailer's first half: each segment's picture (its own, else its crop of image) enhanced
    as DetailerForEach enhances it, kept in the SEGS for SEGSPaste. batch_size runs it again with
    the next seed (the pack starts at seed + 1; wrapped to 0 past 2**64 - 1, where the pack
    fails), every segment with the same seed. cnet_images is
    one 64×64 black picture (ControlNet wrappers are not built). The refiner pipe and Impact's
    schedulers are not supported."""
    category = "ImpactPack/Detailer"
    image: IMAGE
    segs: SEGS
    guide_size: float = Float(512, min=64, max=MAX_SIZE, step=8)
    guide_size_for: bool = Bool(True)
    max_size: float = Float(768, min=64, max=MAX_SIZE, step=8)
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    denoise: float = Float(0.5, min=0.0001, max=1.0, step=0.01)
    noise_mask: bool = Bool(True)
    force_inpaint: bool = Bool(True)
    basic_pipe: BASIC_PIPE
    refiner_ratio: float = Float(0.2, min=0.0, max=1.0)
    batch_size: int = Int(1, min=1, max=100)
    cycle: int = Int(1, min=1, max=10)
    refiner_basic_pipe_opt: BASIC_PIPE = None
    inpaint_model: bool = Bool(False)
    noise_mask_feather: int = Int(20, min=0, max=100)
    scheduler_func_opt: SCHEDULER_FUNC = None
    outputs = {"segs": SEGS, "cnet_images": ListOf(IMAGE)}
    comfy = ComfyAlias(("SEGSDetailer",), optional=("refiner_basic_pipe_opt", "inpaint_model", "noise_mask_feather",
                                                     "scheduler_func_opt"),
                       values={k: OLD_TOGGLES[k] for k in ("guide_size_for", "noise_mask", "force_inpaint")})
    estimate = classmethod(_estimate_detail)

    def run(self):
        import torch
        _refuse(self, "refiner_basic_pipe_opt", "scheduler_func_opt")
        image = _image_batch(self.image, "image")
        if image.shape[0] > 1:
            raise NodeInputError("image", "SEGSDetailer takes one picture, not a batch (as the pack)")
        segs = _fitting(_segs(self.segs), image, "segs")
        if len(segs.segs) * self.batch_size > MAX_SEGMENTS:
            raise NodeInputError("segs", f"{len(segs.segs)} segments × batch_size {self.batch_size}: at most "
                                         f"{MAX_SEGMENTS} detailings")
        check_crops("batch_size" if self.batch_size > 1 else "segs",
                    f"the detailed pictures of the {len(segs.segs)} segments × batch_size {self.batch_size}",
                    [seg.crop_region for seg in segs.segs] * self.batch_size, 3)
        model, clip, vae, positive, negative = _pipe(self.basic_pipe)
        how = Sampling.of(self, model, clip, vae, positive, negative)
        new_segs, seed = [], self.seed
        for _ in range(self.batch_size):
            seed = wrapped_seed(seed + 1)
            for seg in segs.segs:
                _no_wrapper(seg)
                cropped_image = torch.as_tensor(seg.cropped_image) if seg.cropped_image is not None \
                    else crop(image, seg.crop_region)
                if _blank(seg):
                    new_segs.append(seg)
                    continue
                step = replace(how, positive=cropped_conditioning(positive, image, seg.crop_region),
                               negative=cropped_conditioning(negative, image, seg.crop_region))
                enhanced = cropped_image if model == "DUMMY" else \
                    enhance_detail(cropped_image, seg, seg.cropped_mask if self.noise_mask else None, seed, step)
                new_segs.append(replace(seg, cropped_image=cropped_image if enhanced is None else enhanced,
                                        control_net_wrapper=None))
        return Segs(segs.shape, tuple(new_segs)), [_empty_picture()]


class DetailerForEach(Node):
    """Re-sample each segment in more detail: its crop of the picture (as detailed so far) is upscaled
    (LANCZOS) so that the bbox's shorter side (guide_size_for on: bbox; off: the crop region's)
    becomes guide_size, at most max_size a side, encoded, sampled with the segment's mask as the
    noise mask (noise_mask; blurred by noise_mask_feather, with DifferentialDiffusion when above
    0, unless the model has it already) at denoise, cycle times (seed + segment number, + 1 a
    cycle; wrapped to 0 past 2**64 - 1, where the pack fails), decoded, scaled back and pasted
    through the mask blurred by feather. Segments whose bbox is already guide_size each way, or
    that would not be enlarged, are skipped unless force_inpaint. inpaint_model encodes as
    InpaintModelConditioning does; tiled_encode / tiled_decode use VAEEncodeTiled /
    VAEDecodeTiled with their default tiles (512, overlap 64). wildcard: a prompt for each
    segment in place of positive (its wildcards drawn with the segment's seed, where the pack
    draws unseeded; [CONCAT] first: added to positive), with the pack's [LAB], [ASC] / [DSC] /
    [ASC-SIZE] / [DSC-SIZE] and [SEP] / [SEP:seed] forms (a segment with an empty mask, never
    detailed, takes no item) and [SKIP] / [STOP] items; [RND] and [SEP:R] (unseeded in the pack)
    are refused. Not supported (refused when connected): detailer_hook, scheduler_func_opt;
    Impact's AYS / GITS schedulers are not offered. One picture, not a batch; at most 512
    segments."""
    category = "ImpactPack/Detailer"
    image: IMAGE
    segs: SEGS
    model: MODEL
    clip: CLIP
    vae: VAE
    guide_size: float = Float(384, min=64, max=MAX_SIZE, step=8)
    guide_size_for: bool = Bool(True)
    max_size: float = Float(1024, min=64, max=MAX_SIZE, step=8)
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    denoise: float = Float(0.5, min=0.0001, max=1.0, step=0.01)
    feather: int = Int(5, min=0, max=100)
    noise_mask: bool = Bool(True)
    force_inpaint: bool = Bool(True)
    wildcard: str = Text("", multiline=True)
    cycle: int = Int(1, min=1, max=10)
    detailer_hook: DETAILER_HOOK = None
    inpaint_model: bool = Bool(False)
    noise_mask_feather: int = Int(20, min=0, max=100)
    scheduler_func_opt: SCHEDULER_FUNC = None
    tiled_encode: bool = Bool(False)
    tiled_decode: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}  # the pack gives no RETURN_NAMES: ComfyUI labels it by its type
    comfy = ComfyAlias(("DetailerForEach",), optional=DETAILER_OPTIONAL,
                       values={k: OLD_TOGGLES[k] for k in ("guide_size_for", "noise_mask", "force_inpaint")})
    estimate = classmethod(_estimate_detail)

    def detailed(self):
        _refuse(self, "detailer_hook", "scheduler_func_opt")
        how = Sampling.of(self, self.model, self.clip, self.vae, self.positive, self.negative)
        return detail_each(_image_batch(self.image, "image"), _segs(self.segs), how, self.seed, self.feather,
                           self.noise_mask, self.wildcard)

    def run(self):
        return self.detailed()[0]


class DetailerForEachDebug(DetailerForEach):
    """DetailerForEach, also giving the crops before and after detailing and the detailed crops
    with the blurred mask as alpha (each list largest first; one 64×64 black picture for an
    empty one). cnet_images is one 64×64 black picture (ControlNet wrappers are not built)."""
    outputs = {"image": IMAGE, "cropped": ListOf(IMAGE), "cropped_refined": ListOf(IMAGE),
               "cropped_refined_alpha": ListOf(IMAGE), "cnet_images": ListOf(IMAGE)}
    comfy = ComfyAlias(("DetailerForEachDebug",), optional=DETAILER_OPTIONAL,
                       values={k: OLD_TOGGLES[k] for k in ("guide_size_for", "noise_mask", "force_inpaint")})

    def run(self):
        image, cropped, enhanced, alpha, _ = self.detailed()
        return image, cropped or [_empty_picture()], enhanced or [_empty_picture()], alpha or [_empty_picture()], \
            [_empty_picture()]


class DetailerForEachPipe(Node):
    """DetailerForEach on a basic_pipe's model, clip, vae and prompts; gives the picture, the SEGS
    with each detailed crop, the pipe back and cnet_images (one 64×64 black picture: ControlNet
    wrappers are not built). refiner_ratio only matters with a refiner pipe, which is not
    supported (refused when connected), as are detailer_hook and scheduler_func_opt."""
    category = "ImpactPack/Detailer"
    image: IMAGE
    segs: SEGS
    guide_size: float = Float(384, min=64, max=MAX_SIZE, step=8)
    guide_size_for: bool = Bool(True)
    max_size: float = Float(1024, min=64, max=MAX_SIZE, step=8)
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    denoise: float = Float(0.5, min=0.0001, max=1.0, step=0.01)
    feather: int = Int(5, min=0, max=100)
    noise_mask: bool = Bool(True)
    force_inpaint: bool = Bool(True)
    basic_pipe: BASIC_PIPE
    wildcard: str = Text("", multiline=True)
    refiner_ratio: float = Float(0.2, min=0.0, max=1.0)
    cycle: int = Int(1, min=1, max=10)
    detailer_hook: DETAILER_HOOK = None
    refiner_basic_pipe_opt: BASIC_PIPE = None
    inpaint_model: bool = Bool(False)
    noise_mask_feather: int = Int(20, min=0, max=100)
    scheduler_func_opt: SCHEDULER_FUNC = None
    tiled_encode: bool = Bool(False)
    tiled_decode: bool = Bool(False)
    outputs = {"image": IMAGE, "segs": SEGS, "basic_pipe": BASIC_PIPE, "cnet_images": ListOf(IMAGE)}
    comfy = ComfyAlias(("DetailerForEachPipe",), optional=DETAILER_OPTIONAL + ("refiner_basic_pipe_opt",),
                       values={k: OLD_TOGGLES[k] for k in ("guide_size_for", "noise_mask", "force_inpaint")})
    estimate = classmethod(_estimate_detail)

    def run(self):
        _refuse(self, "detailer_hook", "scheduler_func_opt", "refiner_basic_pipe_opt")
        model, clip, vae, positive, negative = _pipe(self.basic_pipe)
        how = Sampling.of(self, model, clip, vae, positive, negative)
        image, _, _, _, segs = detail_each(_image_batch(self.image, "image"), _segs(self.segs), how, self.seed,
                                           self.feather, self.noise_mask, self.wildcard)
        return image, segs, self.basic_pipe, [_empty_picture()]


class SEGSOrderedFilter(Node):
    """The segments sorted by target (of the crop region; descending when order is on) and
    take_count of them from take_start given; the rest as remained_SEGS."""
    category = "ImpactPack/Util"
    segs: SEGS
    target: str = Choice(ORDER_TARGETS, "area(=w*h)")
    order: bool = Bool(True)
    take_start: int = Int(0, min=0, max=INT_MAX)
    take_count: int = Int(1, min=0, max=INT_MAX)
    outputs = {"filtered_SEGS": SEGS, "remained_SEGS": SEGS}
    comfy = ComfyAlias(("ImpactSEGSOrderedFilter",))

    def run(self):
        segs = _segs(self.segs)
        ordered = list(segs.segs)
        if self.target != "none":
            ordered.sort(key=lambda seg: _measure(seg, self.target), reverse=self.order)
        stop = self.take_start + self.take_count
        return Segs(segs.shape, tuple(ordered[self.take_start:stop])), \
            Segs(segs.shape, tuple(ordered[:self.take_start] + ordered[stop:]))


def _measure(seg: SEG, target: str) -> float:
    x1, y1, x2, y2 = seg.crop_region
    if target.startswith("confidence"):
        return seg.confidence * (100 if target == "confidence(0-100)" else 1)
    if target == "length_percent":
        return max((y2 - y1) / (x2 - x1), (x2 - x1) / (y2 - y1)) * 100
    return {"area(=w*h)": (x2 - x1) * (y2 - y1), "width": x2 - x1, "height": y2 - y1, "x1": x1, "y1": y1,
            "x2": x2, "y2": y2}[target]


class SEGSRangeFilter(Node):
    """The segments whose target (of the crop region) lies within min_value..max_value (mode
    on: inside) or outside it; the rest as remained_SEGS."""
    category = "ImpactPack/Util"
    segs: SEGS
    target: str = Choice(RANGE_TARGETS, "area(=w*h)")
    mode: bool = Bool(True)
    min_value: int = Int(0, min=0, max=INT_MAX)
    max_value: int = Int(67108864, min=0, max=INT_MAX)
    outputs = {"filtered_SEGS": SEGS, "remained_SEGS": SEGS}
    comfy = ComfyAlias(("ImpactSEGSRangeFilter",))

    def run(self):
        segs = _segs(self.segs)
        inside = [self.min_value <= _measure(seg, self.target) <= self.max_value for seg in segs.segs]
        kept = [seg for seg, is_in in zip(segs.segs, inside) if is_in == self.mode]
        rest = [seg for seg, is_in in zip(segs.segs, inside) if is_in != self.mode]
        return Segs(segs.shape, tuple(kept)), Segs(segs.shape, tuple(rest))


class SEGSLabelFilter(Node):
    """The segments whose label is listed in labels (comma-separated; 'all' keeps every one;
    eyes, eyebrows and pupils name both sides); the rest as remained_SEGS. The preset only helps
    the editor fill labels in, as in the pack."""
    category = "ImpactPack/Util"
    segs: SEGS
    preset: str = Choice(("all",) + DETECTION_LABELS, "all")
    labels: str = Text("", multiline=True)
    outputs = {"filtered_SEGS": SEGS, "remained_SEGS": SEGS}
    comfy = ComfyAlias(("ImpactSEGSLabelFilter",))

    def run(self):
        segs = _segs(self.segs)
        labels = {label.strip() for label in self.labels.split(",")}
        if "all" in labels:
            return segs, Segs(segs.shape, ())
        sides = {"eyes": ("left_eye", "right_eye"), "eyebrows": ("left_eyebrow", "right_eyebrow"),
                 "pupils": ("left_pupil", "right_pupil")}
        wanted = labels | {side for group, pair in sides.items() if group in labels for side in pair}
        return Segs(segs.shape, tuple(s for s in segs.segs if s.label in wanted)), \
            Segs(segs.shape, tuple(s for s in segs.segs if s.label not in wanted))


class SEGSLabelAssign(Node):
    """The comma-separated labels given to the segments in order (segments past the last label keep
    theirs; a count that differs is warned of, as the pack prints it)."""
    category = "ImpactPack/Util"
    segs: SEGS
    labels: str = Text("", multiline=True)
    outputs = {"SEGS": SEGS}
    comfy = ComfyAlias(("ImpactSEGSLabelAssign",))

    def run(self):
        from graphflow.api import warn
        segs = _segs(self.segs)
        labels = [label.strip() for label in self.labels.split(",")]
        if len(labels) != len(segs.segs):
            warn(f"{len(labels)} labels for {len(segs.segs)} segments")
        return Segs(segs.shape, tuple(replace(seg, label=labels[i]) if i < len(labels) else seg
                                      for i, seg in enumerate(segs.segs)))


class SEGSConcat(Node):
    """The segments of segs1, segs2, ... in one SEGS; empty ones are passed over, and ones made
    for another picture size than the first non-empty one are left out (with a warning)."""
    category = "ImpactPack/Util"
    segs1: SEGS
    segs2: SEGS = None
    segs3: SEGS = None
    segs4: SEGS = None
    segs5: SEGS = None
    segs6: SEGS = None
    segs7: SEGS = None
    segs8: SEGS = None
    segs9: SEGS = None
    segs10: SEGS = None
    segs11: SEGS = None
    segs12: SEGS = None
    segs13: SEGS = None
    segs14: SEGS = None
    segs15: SEGS = None
    segs16: SEGS = None
    segs17: SEGS = None
    segs18: SEGS = None
    segs19: SEGS = None
    segs20: SEGS = None
    outputs = {"SEGS": SEGS}
    comfy = ComfyAlias(("ImpactSEGSConcat",))

    def run(self):
        from graphflow.api import warn
        shape, joined = None, []
        for name, value in _numbered(self, "segs", LIST_INPUTS):
            value = _segs(value, name)
            if tuple(value.shape) == (0, 0) or not value.segs:
                continue
            if shape is None or tuple(value.shape) == shape:
                shape = tuple(value.shape)
                joined += value.segs
            else:
                warn(f"{name} was made for a {value.shape[1]}×{value.shape[0]} picture, not "
                     f"{shape[1]}×{shape[0]}: left out")
        if len(joined) > MAX_SEGMENTS:
            raise NodeInputError("segs1", f"{len(joined)} segments: at most {MAX_SEGMENTS}")
        return Segs(shape or (0, 0), tuple(joined))


class CountEltsInSEGS(Node):
    """The number of segments."""
    category = "ImpactPack/Util"
    segs: SEGS
    outputs = {"INT": INT}
    comfy = ComfyAlias(("ImpactCount_Elts_in_SEGS",))

    def run(self):
        return len(_segs(self.segs).segs)


class DilateMaskInSEGS(Node):
    """Each segment's mask dilated (eroded for a negative dilation) by a square of that side, as
    OpenCV's dilate / erode (the pack's dilate_mask)."""
    category = "ImpactPack/Util"
    segs: SEGS
    dilation: int = Int(10, min=-512, max=512)
    outputs = {"SEGS": SEGS}
    comfy = ComfyAlias(("ImpactDilateMaskInSEGS",))

    def run(self):
        segs = _segs(self.segs)
        out = []
        for i, seg in enumerate(segs.segs):
            progress(i, len(segs.segs))  # a large square on many whole-picture crops takes minutes: stoppable
            out.append(replace(seg, cropped_mask=dilated(seg.cropped_mask, self.dilation)))
        return Segs(segs.shape, tuple(out))


class ImpactDilateMask(Node):
    """A mask dilated (eroded for a negative dilation) by a square of that side, as OpenCV's
    dilate / erode (the pack's dilate_mask): one mask, not a batch."""
    category = "ImpactPack/Util"
    mask: MASK
    dilation: int = Int(10, min=-512, max=512)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("ImpactDilateMask",))

    def run(self):
        if self.mask.ndim == 3 and self.mask.shape[0] > 1:
            raise NodeInputError("mask", "one mask, not a batch (the pack's dilate_mask takes a 2-D mask)")
        return dilated(self.mask, self.dilation)[None]


class ImpactGaussianBlurMask(Node):
    """A mask blurred as the detailer blurs its masks: torchvision's GaussianBlur with kernel
    2 * kernel_size + 1 and sigma (smaller for a small mask, as there)."""
    category = "ImpactPack/Util"
    mask: MASK
    kernel_size: int = Int(10, min=0, max=100)
    sigma: float = Float(10.0, min=0.1, max=100.0, step=0.1)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("ImpactGaussianBlurMask",))

    def run(self):
        mask = self.mask.reshape(-1, *self.mask.shape[-2:])
        return blurred_mask(mask, self.kernel_size, self.sigma)[..., 0]


class EmptySEGS(Node):
    """No segments (of a 0×0 picture)."""
    category = "ImpactPack/Util"
    outputs = {"SEGS": SEGS}
    comfy = ComfyAlias(("EmptySegs",))

    def run(self):
        return Segs((0, 0), ())


class ImpactIsNotEmptySEGS(Node):
    """Whether there is any segment."""
    category = "ImpactPack/Logic"
    segs: SEGS
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("ImpactIsNotEmptySEGS",))

    def run(self):
        return len(_segs(self.segs).segs) > 0


class SEGSToMaskBatch(Node):
    """Each segment's mask placed in a picture-sized mask, as one batch (one empty mask for none)."""
    category = "ImpactPack/Util"
    segs: SEGS
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("ImpactSEGSToMaskBatch",))

    def run(self):
        import torch
        return torch.cat(_core(SEGSToMaskList, segs=self.segs))


class SegsBitwiseAndMask(Node):
    """Each segment's mask AND-ed, as 8 bits (values truncated), with its crop of mask (one
    picture-sized mask); the segments' ControlNet wrappers are dropped, as the pack drops them."""
    category = "ImpactPack/Operation"
    segs: SEGS
    mask: MASK
    outputs = {"SEGS": SEGS}
    comfy = ComfyAlias(("ImpactSegsAndMask", "Segs & Mask"))

    def run(self):
        import torch
        segs = _segs(self.segs)
        mask = self.mask
        while mask.ndim > 2 and mask.shape[0] == 1:
            mask = mask[0]
        if mask.ndim != 2:
            raise NodeInputError("mask", "one mask, not a batch")
        if tuple(mask.shape) != tuple(segs.shape) and segs.segs:
            raise NodeInputError("mask", f"the mask is {mask.shape[1]}×{mask.shape[0]}; the SEGS were made for "
                                         f"{segs.shape[1]}×{segs.shape[0]}")
        bits = (mask.float().cpu() * 255).to(torch.uint8)
        out = []
        for seg in segs.segs:
            x1, y1, x2, y2 = seg.crop_region
            own = (torch.as_tensor(seg.cropped_mask).float() * 255).to(torch.uint8)
            out.append(replace(seg, cropped_mask=(own & bits[y1:y2, x1:x2]).float() / 255.0, control_net_wrapper=None))
        return Segs(segs.shape, tuple(out))


def tile_starts(length: int, bbox_size: int, min_overlap: float) -> tuple[int, int]:
    """The pack's tile count along one side and the overlap between neighbours."""
    import math
    count = math.ceil(length / (bbox_size - min_overlap))
    overlap_sum = bbox_size * count - length
    if overlap_sum < 0:
        count += 1
        overlap_sum = bbox_size * count - length
    overlap = 0 if count == 1 else int(overlap_sum / (count - 1))
    return (1 if overlap == bbox_size else count), overlap


class MakeTileSEGS(Node):
    """The picture cut into overlapping bbox_size tiles as segments (for SEGSDetailer / DetailerForEach
    over the whole picture): tiles are spread so that neighbours overlap by at least min_overlap
    and the last one ends at the picture's edge; each one's crop region is its box grown
    crop_factor times, its mask the box. filter_in_segs_opt keeps tiles to the bounding box of
    those segments (their mask dilated by filter_segs_dilation) and masks out what lies outside
    them; filter_out_segs_opt masks out what lies inside. SEGS without segments (EmptySEGS) as
    filter_out_segs_opt exclude nothing, as filter_in_segs_opt keep nothing: no tiles (the pack
    fails on either). Tiles left with an empty mask are dropped. bbox_size is cut down to the
    picture (or the filter_in area) where larger; a min_overlap not below it then becomes half
    of it (the pack divides by zero or makes no tiles). mask_irregularity above 0 (random tile
    outlines drawn from an unseeded generator in the pack) is refused; irregular_mask_mode then
    changes nothing."""
    category = "ImpactPack/__for_testing"
    images: IMAGE
    bbox_size: int = Int(512, min=64, max=4096, step=8)
    crop_factor: float = Float(3.0, min=1.0, max=10, step=0.01)
    min_overlap: int = Int(5, min=0, max=512)
    filter_segs_dilation: int = Int(20, min=-255, max=255)
    mask_irregularity: float = Float(0, min=0, max=1.0, step=0.01)
    irregular_mask_mode: str = Choice(("Reuse fast", "Reuse quality", "All random fast", "All random quality"),
                                      "Reuse fast")
    filter_in_segs_opt: SEGS = None
    filter_out_segs_opt: SEGS = None
    outputs = {"SEGS": SEGS}
    comfy = ComfyAlias(("ImpactMakeTileSEGS",), optional=("filter_in_segs_opt", "filter_out_segs_opt"))

    def filter_mask(self, segs, name: str, height: int, width: int):
        import torch.nn.functional as F
        mask = combined_mask(_segs(segs, name))[None]
        if tuple(mask.shape[1:]) != (height, width):  # the pack's resize_mask
            mask = F.interpolate(mask[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        return dilated(mask, self.filter_segs_dilation)

    def run(self):
        import torch
        if self.mask_irregularity > 0:
            raise NodeInputError("mask_irregularity", "irregular tiles are drawn from an unseeded random generator "
                                                      "in the pack (a different result every run): not supported")
        height, width = _image_batch(self.images, "images").shape[1:3]
        bbox_size, min_overlap = self.bbox_size, self.min_overlap
        if bbox_size <= 2 * min_overlap:
            min_overlap = bbox_size / 2
        excluded = None
        if self.filter_out_segs_opt is not None and _segs(self.filter_out_segs_opt, "filter_out_segs_opt").segs:
            excluded = self.filter_mask(self.filter_out_segs_opt, "filter_out_segs_opt", height, width)
        kept, start_x, start_y, area_w, area_h = None, 0, 0, width, height
        if self.filter_in_segs_opt is not None:
            if not _segs(self.filter_in_segs_opt, "filter_in_segs_opt").segs:
                return Segs((height, width), ())
            kept = self.filter_mask(self.filter_in_segs_opt, "filter_in_segs_opt", height, width)
            around = mask_to_segs(kept, True, 1.0, False, 0)
            if not around.segs:
                return around
            start_x, start_y, right, bottom = around.segs[0].crop_region
            area_w, area_h = right - start_x, bottom - start_y
        bbox_size = min(bbox_size, area_w, area_h)
        if bbox_size <= min_overlap:  # only now, where bbox_size shrank to the area: the pack's rule again
            min_overlap = bbox_size / 2
        across, overlap_x = tile_starts(area_w, bbox_size, min_overlap)
        down, overlap_y = tile_starts(area_h, bbox_size, min_overlap)
        if across * down > MAX_SEGMENTS:
            raise NodeInputError("bbox_size", f"{across * down} tiles: at most {MAX_SEGMENTS}")
        boxes = []
        for row in range(down):
            y1 = start_y + row * (bbox_size - overlap_y)
            y1, y2 = (y1, y1 + bbox_size) if y1 + bbox_size < height - 1 else (height - bbox_size, height)
            for column in range(across):
                x1 = start_x + column * (bbox_size - overlap_x)
                x1, x2 = (x1, x1 + bbox_size) if x1 + bbox_size < width - 1 else (width - bbox_size, width)
                boxes.append(((x1, y1, x2, y2), make_crop_region(width, height, (x1, y1, x2, y2), self.crop_factor)))
        check_crops("crop_factor", f"the {len(boxes)} tiles' crop regions (crop_factor {self.crop_factor})",
                    [region for _, region in boxes], 1)
        tiles = []
        for (x1, y1, x2, y2), region in boxes:
            cx1, cy1, cx2, cy2 = region
            mask = torch.zeros((cy2 - cy1, cx2 - cx1))
            mask[y1 - cy1:y2 - cy1, x1 - cx1:x2 - cx1] = 1.0
            if excluded is not None:
                mask[excluded[cy1:cy2, cx1:cx2] != 0] = 0.0
            if kept is not None:
                mask[kept[cy1:cy2, cx1:cx2] == 0] = 0.0
            if bool(mask.any()):
                tiles.append(SEG(None, mask, 1.0, tuple(region), (x1, y1, x2, y2), ""))
        return Segs((height, width), tuple(tiles))
