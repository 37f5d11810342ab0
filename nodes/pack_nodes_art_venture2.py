"""sipherxyz's comfyui-art-venture, round 2: its inpaint crop / overlay helpers, its checkpoint merges
and save, and its Fooocus samplers, under the pack's class names, inputs (order, defaults, ranges),
outputs and categories. Read from the pack's files in the code index:

- modules/inpaint/nodes.py at commit 1138a1f4d96f6cfa64752ceaaf78dace26e163b9
  (PrepareImageAndMaskForInpaint with its controlnet_image, OverlayInpaintedImage), and
  CreateExpandedCanvasForOutpaint from the stored version of that file whose class takes
  original_image, focused_image, left / top / right / bottom, focus_mode, feather_edges and gives
  a CROP_REGION (code index file id 48085353469, 17961 characters; the index gives no commit for
  it; the file at ffa9e1a101371bb19e4c99b63507b52a1c5512fc lacks the class). The other stored
  version (file id 48536652131: image, left / top / right / bottom, expansion_direction,
  custom_width, custom_height, expansion_factor; four INT outputs) is not followed, and its UI
  saves are refused by name (canvas_widgets) rather than read mis-mapped;
  modules/masking.py at 509e4d660aa3c13f79c82becf2512f16e70c9ee6 (get_crop_region,
  expand_crop_region: A1111's), modules/image_utils.py at 509e4d660aa3c13f79c82becf2512f16e70c9ee6
  (resize_image: A1111's resize modes) and utils.py's numpy2pil / tensor2pil (the 8-bit round trip).
  The preparation follows 1138a1f4's version, whose inputs extend the older one's (ffa9e1a: the same
  widgets in the same order, so its saves load); the stored version with tight_focus / focus_padding /
  target_size inputs and four INT outputs is not followed. Categories: "Art Venture/Inpainting", as
  the other versions and round 1's OverlayInpaintedLatent (1138a1f4 writes "ArtVenture/Inpainting");
- modules/nodes.py at 51dd8fcb7cd80f283cd5ea09e0e4eab104ef301e (AV_CheckpointMerge,
  AV_CheckpointSave) and modules/utility_nodes.py at 8e83109a4ea8507beb5cf79476fde9a94d4cd840
  (MergeModels, the pack's UtilModelMerge);
- modules/fooocus/__init__.py at 1138a1f4d96f6cfa64752ceaaf78dace26e163b9, fooocus/patch.py at
  34467691ee0c6310a8678dd46e39fb6153e52d5f, fooocus/anisotropic.py at
  3b6e0b8b9fb6c4f7ad74a0571be2ce391d8a7a24 and fooocus/efficient.py at
  1138a1f4d96f6cfa64752ceaaf78dace26e163b9 (the Fooocus samplers' sharpness);
- modules/controlnet/__init__.py at 10ff95d0d319f40cc2bc9de136e8478319cca817 and
  controlnet/preprocessors.py at 200f6252e5d50282fa6fb2a39afb787bf7244227 (the ControlNet loaders,
  their preprocessor choices and the arguments they call comfyui_controlnet_aux's nodes with). The
  stackers' "Auto:" choice follows the later detect_controlnet, at 713f6de76130f2e0101a2f46597a233113f6c23e,
  which round 4's AV_ControlNetPreprocessor uses too (one rule for the pack): for sdxl it passes over
  files naming t2i or lllite, where 10ff95d0 passed over sdxl_t2i files only.

Nodes here: PrepareImageAndMaskForInpaint, OverlayInpaintedImage, CreateExpandedCanvasForOutpaint,
AV_CheckpointMerge, MergeModels, AV_CheckpointSave, Fooocus_KSampler, Fooocus_KSamplerAdvanced,
Fooocus_KSamplerEfficient, AV_ControlNetLoader, AV_ControlNetEfficientLoader,
AV_ControlNetEfficientLoaderAdvanced, AV_ControlNetEfficientStacker, AV_ControlNetEfficientStackerSimple.
The ControlNet loaders run the preprocessors "None", "canny" and "scribble" (graphflow's
comfyui_controlnet_aux nodes, nodes/pack_nodes_controlnet_aux.py); the others of the pack's list
need that pack's downloaded models and are refused by name when chosen (the workflow still loads).

Left out (graphflow/comfy_format.py ART_VENTURE_LEFT_OUT says why): Fooocus_KSamplerEfficientAdvanced
(the pack gives it KSampler (Efficient)'s inputs but calls KSampler Adv. (Efficient)'s function with
them, so it cannot run there), DependenciesEdit (it unpacks an 8-entry DEPENDENCIES tuple, which
today's Efficient Loader, and graphflow's, do not make: they give 16 entries), and the older
IP-Adapter nodes AV_StyleApply, AV_IPAdapterEncodeFromJson and AV_IPAdapterApplyEncoded (see round 3,
nodes/pack_nodes_art_venture3.py, which has AV_IPAdapterPipe / AV_IPAdapter).

Where the pack swaps ComfyUI's functions for the run (its Fooocus samplers patch ComfyUI's
sampling function, UNet forward and SDXL size conditioning; its CheckpointSave turns the live model
to float16), ours changes nothing shared: the sharpness is a network wrapper on a copy of the MODEL
that the sampler calls (the SDXL size scaling that copy's adm_size_scale), and the float16 save casts the weights it writes.
"""

from __future__ import annotations

import copy

from graphflow.api import (
    CONDITIONING, IMAGE, LATENT, MASK, MODEL, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError,
    Size, Text, check_interrupted, check_run_memory, folders, socket_type, warn,
)
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.advanced_controlnet import TIMESTEP_KEYFRAME
from nodes.checkpoint_save import CheckpointSave
from nodes.controlnet import CONTROL_NET
from nodes.efficiency_nodes import CONTROL_NET_STACK, KSamplerEfficient, sampler_widgets
from nodes.pack_nodes_art_venture import _picture, _tensor
from nodes.sampling import SEED_MAX, _estimate, _sample

COMFY_PACK = "comfyui-art-venture"  # the custom node pack this module's ComfyUI classes come from

INPAINTING = "Art Venture/Inpainting"
MERGING = "Art Venture/Model Merging"
SAMPLING = "ArtVenture/Sampling"

CROP_REGION = socket_type("CROP_REGION", "#9e9e9e", "comfyui-art-venture's crop regions: an int64 tensor [batch, 4] "
                                                     "of (left, top, right, bottom) per image; (0, 0, 0, 0): none")

# -- the pack's A1111 picture helpers -----------------------------------------------------------------


def _resized(picture, width: int, height: int, fill: bool):
    """A1111's resize_image as the pack has it, into an RGB canvas of width x height: fill (its
    RESIZE_TO_FILL) scales to cover and crops the middle; else (RESIZE_TO_FIT) scales to fit inside
    and fills the two bands left by stretching the picture's edge rows / columns. Lanczos."""
    from PIL import Image

    ratio, source_ratio = width / height, picture.width / picture.height
    if fill:
        w = width if ratio > source_ratio else picture.width * height // picture.height
        h = height if ratio <= source_ratio else picture.height * width // picture.width
    else:
        w = width if ratio < source_ratio else picture.width * height // picture.height
        h = height if ratio >= source_ratio else picture.height * width // picture.width
    scaled = picture.resize((w, h), resample=Image.LANCZOS)
    canvas = Image.new("RGB", (width, height))
    canvas.paste(scaled, box=(width // 2 - w // 2, height // 2 - h // 2))
    if fill:
        return canvas
    if ratio < source_ratio:
        band = height // 2 - h // 2
        if band > 0:
            canvas.paste(scaled.resize((width, band), box=(0, 0, width, 0)), box=(0, 0))
            canvas.paste(scaled.resize((width, band), box=(0, scaled.height, width, scaled.height)),
                         box=(0, band + h))
    elif ratio > source_ratio:
        band = width // 2 - w // 2
        if band > 0:
            canvas.paste(scaled.resize((band, height), box=(0, 0, 0, height)), box=(0, 0))
            canvas.paste(scaled.resize((band, height), box=(scaled.width, 0, scaled.width, height)),
                         box=(band + w, 0))
    return canvas


def _crop_region(mask, pad: int) -> tuple[int, int, int, int]:
    """A1111's get_crop_region: the box (left, top, right, bottom) of the mask's non-zero pixels,
    grown by pad on each side within the picture."""
    import numpy as np

    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (max(int(columns[0]) - pad, 0), max(int(rows[0]) - pad, 0),
            min(int(columns[-1]) + 1 + pad, w), min(int(rows[-1]) + 1 + pad, h))


def _expanded_region(region, width: int, height: int, image_width: int, image_height: int):
    """A1111's expand_crop_region: the box grown along one side to the ratio width : height, kept
    inside the picture where it fits (it may still poke out: A1111's arithmetic, as the pack has it)."""
    x1, y1, x2, y2 = region
    if (x2 - x1) / (y2 - y1) > width / height:
        grow = int((x2 - x1) / (width / height) - (y2 - y1))
        y1, y2 = y1 - grow // 2, y2 + grow - grow // 2
        if y2 >= image_height:
            y1, y2 = y1 - (y2 - image_height), image_height
        if y1 < 0:
            y1, y2 = 0, y2 - y1
        y2 = min(y2, image_height)
    else:
        grow = int((y2 - y1) * (width / height) - (x2 - x1))
        x1, x2 = x1 - grow // 2, x2 + grow - grow // 2
        if x2 >= image_width:
            x1, x2 = x1 - (x2 - image_width), image_width
        if x1 < 0:
            x1, x2 = 0, x2 - x1
        x2 = min(x2, image_width)
    return x1, y1, x2, y2


def _levels(array, mode=None):
    """The pack's numpy2pil: 255 x clipped, cut to a level."""
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.clip(255.0 * array, 0, 255).astype(np.uint8), mode)


def _blurred_mask(mask, blur: int):
    """A1111's mask blur, as the pack does it: OpenCV's Gaussian of sigma `blur` in a window of
    2 * int(2.5 * blur + 0.5) + 1."""
    import cv2

    array = mask.detach().cpu().float().numpy()
    if blur <= 0:
        return array
    size = 2 * int(2.5 * blur + 0.5) + 1
    return cv2.GaussianBlur(array, (size, size), blur)


def _see_through_masked(picture, mask):
    """The picture with the mask's pixels made transparent (alpha 255 - mask; colours cut through
    Pillow's premultiplied RGBa, as the pack pastes them), as a 4-channel tensor."""
    from PIL import Image, ImageOps

    masked = Image.new("RGBa", picture.size)
    masked.paste(picture.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask))
    return _tensor(masked.convert("RGBA"))


def _batch(name: str, tensor, batch: int, what: str) -> None:
    if tensor.shape[0] != batch:
        raise NodeInputError(name, f"{tensor.shape[0]} images, {what} has {batch}: expected the same batch size")


class AVPrepareImageAndMaskForInpaint(Node):
    """The pack's A1111-style inpaint preparation. The mask is blurred first (OpenCV Gaussian,
    sigma mask_blur, 0: none). With inpaint_masked the box around the mask's pixels, grown by
    mask_padding and then to the ratio width : height (both 0: the picture's size; then both must
    be set or both 0), is cut from the picture, the mask and controlnet_image (at its own scale)
    and resized to width x height (A1111's resize-to-fit: scaled to fit, the bands filled by
    stretching the edges; Lanczos); crop_region is that box. Without it the picture and the
    blurred mask pass whole and crop_region is the whole picture. overlay_image is the whole
    picture with the blurred mask's pixels made transparent (RGBA), for Overlay Inpainted Image to
    lay over the inpainted result. controlnet_image: black 64 x 64 where none is linked. As in the
    pack, pictures pass through 8 bits (x · 255 cut to a level). An empty mask with inpaint_masked
    is refused (the pack's A1111 crop box is then inverted, e.g. (480, 480, 32, 32) for 512 x 512
    and padding 32, which Pillow's crop refuses or which cuts garbage; it divides by zero only
    when the side is twice the padding)."""
    category = INPAINTING
    image: IMAGE
    mask: MASK
    mask_blur: int = Int(4, min=0, max=64)
    inpaint_masked: bool = Bool(False)
    mask_padding: int = Int(32, min=0, max=1024)
    width: int = Int(0, min=0, max=2048, resource="width")
    height: int = Int(0, min=0, max=2048, resource="height")
    controlnet_image: IMAGE = None
    outputs = {"inpaint_image": IMAGE, "inpaint_mask": MASK, "overlay_image": IMAGE, "crop_region": CROP_REGION,
               "controlnet_image": IMAGE}
    comfy = ComfyAlias(("PrepareImageAndMaskForInpaint",), optional=("controlnet_image",))

    def run(self):
        import torch

        image, mask = self.image, self.mask
        _batch("mask", mask, image.shape[0], "image")
        if self.controlnet_image is not None:
            _batch("controlnet_image", self.controlnet_image, image.shape[0], "image")
        if tuple(mask.shape[1:3]) != tuple(image.shape[1:3]):
            raise NodeInputError("mask", f"{mask.shape[2]}x{mask.shape[1]}, the image is {image.shape[2]}x"
                                         f"{image.shape[1]}: expected the same size")
        source_h, source_w = image.shape[1:3]
        out_w, out_h = self.width, self.height
        if self.inpaint_masked:
            if out_w == 0 and out_h == 0:
                out_w, out_h = source_w, source_h
            elif out_w == 0 or out_h == 0:
                raise NodeInputError("width" if out_w == 0 else "height",
                                     "0 with the other set: inpaint_masked needs both set, or both 0 (the picture's "
                                     "size)")
            hint_w, hint_h = out_w, out_h
            if self.controlnet_image is not None:
                sx, sy = self.controlnet_image.shape[2] / source_w, self.controlnet_image.shape[1] / source_h
                hint_w, hint_h = int(out_w * sx), int(out_h * sy)
                if hint_w < 1 or hint_h < 1:
                    raise NodeInputError("controlnet_image", f"{self.controlnet_image.shape[2]}x"
                                         f"{self.controlnet_image.shape[1]} for a {source_w}x{source_h} image: at "
                                         f"its scale the {out_w}x{out_h} cut-out is {hint_w}x{hint_h} px; expected "
                                         "one big enough to give at least 1 px each way")
            # the cut-out and the hint's, each at its own scale, as one row of pixels per image
            check_run_memory("width", "the cut-out's size",
                             images=Size(image.shape[0], 1, out_w * out_h + hint_w * hint_h))
        images, masks, overlays, regions, hints = [], [], [], [], []
        for index in range(image.shape[0]):
            check_interrupted()
            blurred = _blurred_mask(mask[index], self.mask_blur)
            mask_picture = _levels(blurred, "L")
            picture = _picture(image[index], "image")
            hint = None if self.controlnet_image is None else _picture(self.controlnet_image[index],
                                                                       "controlnet_image")
            if self.inpaint_masked:
                if not blurred.any():
                    raise NodeInputError("mask", f"image {index}: the mask is empty, so there is nothing to cut out "
                                                 "for inpaint_masked")
                region = _expanded_region(_crop_region(blurred, self.mask_padding), out_w, out_h, source_w, source_h)
                inpaint = _resized(picture.crop(region), out_w, out_h, fill=False)
                inpaint_mask = _resized(mask_picture.crop(region), out_w, out_h, fill=False).convert("L")
                if hint is not None:
                    sx, sy = hint.width / source_w, hint.height / source_h
                    x1, y1, x2, y2 = region
                    cut = int(x1 * sx), int(y1 * sy), int(x2 * sx), int(y2 * sy)
                    if cut[2] - cut[0] < 1 or cut[3] - cut[1] < 1:
                        raise NodeInputError("controlnet_image", f"image {index}: the box {region} is "
                                             f"{cut[2] - cut[0]}x{cut[3] - cut[1]} px at the hint's scale; expected "
                                             "a controlnet_image big enough to give at least 1 px each way")
                    hint = _resized(hint.crop(cut), hint_w, hint_h, fill=False)
            else:
                inpaint, inpaint_mask, region = picture, mask_picture, (0, 0, source_w, source_h)
            overlays.append(_see_through_masked(picture, mask_picture))
            images.append(_tensor(inpaint))
            masks.append(_tensor(inpaint_mask)[..., 0])
            regions.append(torch.tensor(region, dtype=torch.int64))
            if hint is not None:
                hints.append(_tensor(hint))
        hint = torch.stack(hints) if hints else torch.zeros(image.shape[0], 64, 64, 3)
        return torch.stack(images), torch.stack(masks), torch.stack(overlays), torch.stack(regions), hint


def _regions(crop_region, batch: int):
    import torch

    if not isinstance(crop_region, torch.Tensor) or crop_region.ndim != 2 or crop_region.shape[-1] != 4:
        raise NodeInputError("crop_region", "expected comfyui-art-venture's CROP_REGION (a [batch, 4] tensor of "
                                            "left, top, right, bottom)")
    if crop_region.shape[0] != batch:
        raise NodeInputError("crop_region", f"{crop_region.shape[0]} regions for {batch} images: expected one each")
    return [tuple(int(v) for v in row) for row in crop_region.tolist()]


class AVOverlayInpaintedImage(Node):
    """Puts the inpainted picture back: resized (A1111's resize-to-fill: scaled to cover, the middle
    kept; Lanczos) into its crop_region of a transparent canvas of overlay_image's size (region
    (0, 0, 0, 0): taken as it is, and then it must be overlay_image's size), with overlay_image
    (Prepare Image & Mask for Inpaint's: the original with the masked pixels transparent) laid
    over it; RGB out. 8-bit, as in the pack. A region is refused unless left < right, top <
    bottom and it is at most 4x the picture's size each way: A1111's expanded box may poke out of
    the picture (the part outside is cut off when pasted), so corners outside it are taken.
    """
    category = INPAINTING
    inpainted: IMAGE
    overlay_image: IMAGE
    crop_region: CROP_REGION
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("OverlayInpaintedImage",))

    def run(self):
        import torch
        from PIL import Image

        batch = self.inpainted.shape[0]
        _batch("overlay_image", self.overlay_image, batch, "inpainted")
        regions = _regions(self.crop_region, batch)
        if self.overlay_image.shape[-1] != 4:
            raise NodeInputError("overlay_image", f"{self.overlay_image.shape[-1]} channels: expected RGBA (Prepare "
                                                  "Image & Mask for Inpaint's overlay_image)")
        height, width = self.overlay_image.shape[1:3]
        results = []
        for index, (x1, y1, x2, y2) in enumerate(regions):
            check_interrupted()
            picture = _picture(self.inpainted[index], "inpainted")
            overlay = _picture(self.overlay_image[index], "overlay_image")
            if (x1, y1, x2, y2) != (0, 0, 0, 0):
                if x2 <= x1 or y2 <= y1 or x2 - x1 > 4 * width or y2 - y1 > 4 * height:
                    raise NodeInputError("crop_region", f"image {index}: ({x1}, {y1}, {x2}, {y2}); expected "
                                                        "left < right and top < bottom, at most 4x the "
                                                        f"{width}x{height} picture's size each way")
                canvas = Image.new("RGBA", overlay.size)
                canvas.paste(_resized(picture, x2 - x1, y2 - y1, fill=True), (x1, y1))
                picture = canvas
            elif picture.size != overlay.size:
                raise NodeInputError("inpainted", f"{picture.width}x{picture.height} with crop region (0, 0, 0, 0): "
                                                  f"expected overlay_image's size, {width}x{height}")
            picture = picture.convert("RGBA")
            picture.alpha_composite(overlay)
            results.append(_tensor(picture.convert("RGB")))
        return (torch.stack(results),)


FOCUS_MODES = ("only_focused", "mask_outside_focus", "mask_both")


EXPANSION_DIRECTIONS = ("left", "right", "top", "bottom", "all", "custom")


def canvas_widgets(values: list) -> list:
    """CreateExpandedCanvasForOutpaint's widgets_values; a save of the pack's other version (its
    fifth widget an expansion_direction) would read as focus_mode / feather_edges, so is refused."""
    if len(values) >= 5 and values[4] in EXPANSION_DIRECTIONS:
        raise ValueError(f"widgets {values!r} are the pack's other version of this node (image, left, top, right, "
                         "bottom, expansion_direction, custom_width, custom_height, expansion_factor; four INT "
                         "outputs), which graphflow does not build; the one built takes original_image, "
                         "focused_image, ..., focus_mode, feather_edges")
    return values


canvas_widgets.doc_note = "UI saves of the pack's other version of this class refused by name (see the node's help)"


class AVCreateExpandedCanvasForOutpaint(Node):
    """focused_image resized (A1111's resize-to-fill; Lanczos) into the box left, top, right,
    bottom of original_image (clamped inside it: at least 1 pixel), with a mask for outpainting:
    white (1) outside the box, the box black (mask_both: grey, 128/255, and no feathering); the box
    drawn as Pillow draws rectangles, its right and bottom edges included. only_focused: the
    canvas is the focused picture alone on white; with feather_edges its edges fade into the
    white (a Gaussian blur of that radius on its alpha; the mask stays sharp).
    mask_outside_focus: the original with the focused picture in the box; feather_edges blurs the
    mask. new_crop_region is the clamped box. As in the pack, pairs of images go by index up to
    the shorter batch, and pictures pass through 8 bits. UI saves of the pack's other version of
    this class (image, expansion_direction, custom_width / custom_height, expansion_factor; four
    INT outputs) are refused by name, not read into these inputs."""
    category = INPAINTING
    original_image: IMAGE
    focused_image: IMAGE
    left: int = Int(0, min=0, max=4096)
    top: int = Int(0, min=0, max=4096)
    right: int = Int(0, min=0, max=4096)
    bottom: int = Int(0, min=0, max=4096)
    focus_mode: str = Choice(FOCUS_MODES, "mask_outside_focus")
    feather_edges: int = Int(10, min=0, max=100)
    outputs = {"expanded_image": IMAGE, "outpaint_mask": MASK, "new_crop_region": CROP_REGION}
    comfy = ComfyAlias(("CreateExpandedCanvasForOutpaint",), widgets=canvas_widgets)

    def run(self):
        import torch
        from PIL import Image, ImageDraw, ImageFilter

        images, masks, regions = [], [], []
        for index in range(min(self.original_image.shape[0], self.focused_image.shape[0])):
            check_interrupted()
            original = _picture(self.original_image[index], "original_image")
            focused = _picture(self.focused_image[index], "focused_image")
            width, height = original.size
            left = max(0, min(self.left, width - 1))
            top = max(0, min(self.top, height - 1))
            right = max(left + 1, min(self.right, width))
            bottom = max(top + 1, min(self.bottom, height))
            box = (left, top, right, bottom)
            focused = _resized(focused, right - left, bottom - top, fill=True).convert("RGBA")
            if self.focus_mode == "only_focused":
                canvas = Image.new("RGBA", original.size, (0, 0, 0, 0))
            else:
                canvas = original.convert("RGBA")
            canvas.paste(focused, (left, top))
            mask = Image.new("L", original.size, 255)
            ImageDraw.Draw(mask).rectangle(box, fill=128 if self.focus_mode == "mask_both" else 0)
            if self.feather_edges > 0 and self.focus_mode == "only_focused":
                alpha = Image.new("L", original.size, 0)
                ImageDraw.Draw(alpha).rectangle(box, fill=255)
                canvas.putalpha(alpha.filter(ImageFilter.GaussianBlur(radius=self.feather_edges)))
            elif self.feather_edges > 0 and self.focus_mode == "mask_outside_focus":
                mask = mask.filter(ImageFilter.GaussianBlur(radius=self.feather_edges))
            white = Image.new("RGB", canvas.size, (255, 255, 255))
            white.paste(canvas, mask=canvas.split()[3])
            images.append(_tensor(white))
            masks.append(_tensor(mask)[..., 0])
            regions.append(torch.tensor(box, dtype=torch.int64))
        if not images:
            raise NodeInputError("focused_image", "an empty batch: expected at least one image in each")
        return torch.stack(images), torch.stack(masks), torch.stack(regions)


# -- merges and save ----------------------------------------------------------------------------------


def _merged(node, factors, fit, model2=None):
    from graphflow.models.merge import MergeError, merge_models

    try:
        return merge_models(node.model1, node.model2 if model2 is None else model2, factors, fit)
    except MergeError as e:
        raise NodeInputError("model2", str(e)) from None


class AVCheckpointMerge(Node):
    """model1 x model1_weight + model2 x model2_weight, weight by weight (the diffusion model only).
    As the pack does: an inpainting (9-channel) or instruct-pix2pix (8-channel) model1 merges with
    an ordinary model2 by padding model2's 4-channel input layer with zeros (the mask and image
    channels keep model1's x model1_weight), and the reverse order is refused; a weight model2
    lacks becomes 0 (with a warning); layers whose sizes differ otherwise keep model1's x
    model1_weight. model2 is merged without its LoRAs (the pack takes its bare weights);
    model1's are kept, scaled by model1_weight."""
    category = MERGING
    model1: MODEL
    model2: MODEL
    model1_weight: float = Float(1.0, min=-1.0, max=1.0, step=0.01)
    model2_weight: float = Float(1.0, min=-1.0, max=1.0, step=0.01)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("AV_CheckpointMerge",))

    def run(self):
        from graphflow.models.merge import MergeError

        zeroed = set()

        def fit(name, w1, w2):
            if w2 is None:  # the pack patches it with minus itself
                zeroed.add(name)
                return w1.new_zeros(w1.shape)
            if w1.shape == w2.shape or w1.ndim != w2.ndim or w1.ndim < 2 \
                    or w1.shape[:1] + w1.shape[2:] != w2.shape[:1] + w2.shape[2:]:
                return w2
            if w1.shape[1] < w2.shape[1]:
                kind = "inpainting" if w2.shape[1] == 9 else "instruct-pix2pix" if w2.shape[1] == 8 else "wider"
                raise MergeError(f"{name} takes {w2.shape[1]} channels in model2 and {w1.shape[1]} in model1: when "
                                 f"merging an {kind} model with an ordinary one, model1 must be the {kind} model")
            padded = w1.new_zeros(w1.shape, dtype=w2.dtype)
            padded[:, :w2.shape[1]] = w2
            return padded

        merged = _merged(self, lambda name: (0.0, 0.0) if name in zeroed else (self.model1_weight,
                                                                                 self.model2_weight), fit,
                         self.model2.with_patches(()))  # the pack merges model2's bare weights
        if zeroed:
            warn(f"{len(zeroed)} weight(s) model2 lacks set to 0, as the pack does: {sorted(zeroed)[:3]}")
        return merged


CONV_IN = "input_blocks.0.0.weight"


class AVMergeModels(Node):
    """model1 x ratio + model2 x (1 - ratio), weight by weight (the diffusion model only: ratio 1
    keeps model1), model2 with its LoRAs except on the input layer, where the pack takes model2's
    bare weight. As the pack does, an inpainting model2's 9-channel input layer is always cut to
    its first 4 channels, which merges it into an ordinary model1; an inpainting model1's input
    layer is therefore not merged, against an ordinary model2's or an inpainting one's alike
    (model1's x ratio, as ComfyUI's merge patches leave a layer whose sizes differ; warned)."""
    category = "Art Venture/Utils"
    model1: MODEL
    model2: MODEL
    ratio: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("MergeModels",))

    def run(self):
        from graphflow.memory import manager

        def fit(name, w1, w2):
            if name != CONV_IN or w2 is None:
                return w2
            w2 = manager().weights(self.model2.unet, ())[name]  # the pack's kp[k][0]: without model2's LoRAs
            if w2.ndim == 4 and w2.shape[1] == 9:
                if w1.shape[1] == 9:
                    warn(f"{CONV_IN}: both models are inpainting ones, but as the pack does model2's 9-channel "
                         "input layer is cut to 4 channels, so it is not merged (model1's x ratio kept)")
                return w2[:, :4]
            return w2

        return _merged(self, lambda name: (self.ratio, 1.0 - self.ratio), fit)


class AVCheckpointSave(CheckpointSave):
    """CheckpointSave with dtype: float16 (the pack's default) writes the diffusion model's
    weights in float16 (fp8 weights stay fp8; the text encoder and VAE as they are); float32
    writes them as the model holds them (the pack then changes nothing either). The pack turns
    the live model to float16 for its save; here the MODEL is left as it is."""
    category = MERGING
    dtype: str = Choice(("float16", "float32"), "float16")
    comfy = ComfyAlias(("AV_CheckpointSave",), optional=("dtype",))

    def model_dtype(self):
        import torch

        return torch.float16 if self.dtype == "float16" else None


# -- Fooocus' sharpness -------------------------------------------------------------------------------

SDXL_SIZE_SCALE = (1.5, 0.8)  # the pack's (positive, negative) factors on SDXL's original size
BLUR_SIZE = 13  # the pack's bilateral_blur defaults: a 13 x 13 window, both sigmas 3, reflected borders
BLUR_SIGMA = 3.0
MAX_SHARPNESS = 100.0


def bilateral_blur(x):
    """Fooocus' anisotropic filter on [B, C, H, W]: each value the average of its 13 x 13
    neighbourhood (borders reflected), weighted by a Gaussian of the offset (sigma 3, per axis)
    times exp(-(L1 distance over the channels to the centre)^2 / (2 · 3^2)). Summed offset by
    offset, so it holds one picture's worth of memory, not 169."""
    import torch
    import torch.nn.functional as F

    r = BLUR_SIZE // 2
    h, w = x.shape[-2:]
    padded = F.pad(x, (r, r, r, r), mode="reflect")
    offsets = torch.arange(BLUR_SIZE, dtype=x.dtype, device=x.device) - r
    space = torch.exp(-offsets ** 2 / (2 * BLUR_SIGMA ** 2))
    space = space / space.sum()
    total, weights = torch.zeros_like(x), torch.zeros_like(x[:, :1])
    for i in range(BLUR_SIZE):
        for j in range(BLUR_SIZE):
            neighbour = padded[:, :, i:i + h, j:j + w]
            distance = (neighbour - x).abs().sum(1, keepdim=True)
            weight = space[i] * space[j] * torch.exp(-0.5 / BLUR_SIGMA ** 2 * distance ** 2)
            total += neighbour * weight
            weights += weight
    return total / weights


class SharpnessPatch:
    """A network wrapper (graphflow.sampling.step_cache.wrapped_network) blending each positive-
    prompt row of the network's output with its bilateral_blur by alpha = 0.001 · sharpness ·
    (1 - t / 999), t the row's UNet timestep; the negative prompt's rows pass as they are."""

    def __init__(self, sharpness: float, schedule):
        self.sharpness, self.schedule = sharpness, schedule

    def __call__(self):
        return self.wrap

    def wrap(self, run, xc, sigma, channels):
        import torch

        from graphflow.sampling.guidance import unet_rows

        output = run(xc)
        rows = unet_rows.get()
        positive = torch.ones(output.shape[0], dtype=torch.bool)
        if rows is not None and len(rows.negative) == output.shape[0]:
            positive = torch.tensor([not negative for negative in rows.negative])
        if not positive.any():
            return output
        t = self.schedule.timestep(sigma.reshape(-1).to(output.device)).to(output.dtype)
        t = t.expand(output.shape[0]) if t.numel() == 1 else t
        alpha = (0.001 * self.sharpness * (1.0 - t / 999.0)).view(-1, *[1] * (output.ndim - 1))
        degraded = bilateral_blur(output) * alpha + output * (1.0 - alpha)
        return torch.where(positive.to(output.device).view(-1, *[1] * (output.ndim - 1)), degraded, output)


def sharpened(model, sharpness: float, latent_image: dict):
    """`model` with Fooocus' sharpness as the pack applies it (none at 0), checked first, and
    SDXL base models with the pack's size scaling (at every sharpness: its patch is on for the run)."""
    from graphflow.sampling.model_sampling import DiscreteSchedule

    arch = getattr(model, "arch", None)
    if arch == "sdxl":
        model = copy.copy(model)
        model.adm_size_scale = SDXL_SIZE_SCALE
    if sharpness == 0:
        return model
    from graphflow.models.architectures import ARCHITECTURES

    if getattr(ARCHITECTURES.get(arch), "saved_as", None) != "unet":  # the SD1 / SD2 / SDXL UNet families
        raise NodeInputError("model", f"a {arch} model: the pack's sharpness patches ComfyUI's SD1 / SD2 / SDXL UNet; "
                                      "set sharpness 0 for other models")
    samples = latent_image.get("samples") if isinstance(latent_image, dict) else None
    if samples is not None and min(samples.shape[-2:]) <= BLUR_SIZE // 2:
        raise NodeInputError("latent_image", f"{samples.shape[-1]}x{samples.shape[-2]} latent: the sharpness filter "
                                             f"reflects {BLUR_SIZE // 2} rows at each border, so it needs at least "
                                             f"{BLUR_SIZE // 2 + 1}x{BLUR_SIZE // 2 + 1} (sharpness 0 has no limit)")
    patched = copy.copy(model)
    # outermost, so a tiling wrapper (TiledDiffusion) stays innermost, as it must
    patched.network_wrappers = (SharpnessPatch(sharpness, DiscreteSchedule.for_model(model)),
                                *getattr(model, "network_wrappers", ()))
    return patched


SHARPNESS_HELP = """ sharpness (0 to 100): Fooocus' anisotropic sharpening, as the pack's patch: at each step the
    UNet's output for the positive prompt is blended with its bilateral blur (13 x 13, both sigmas
    3) by 0.001 · sharpness · (1 - t / 999), t the UNet timestep; the negative's is untouched. SD1 /
    SD2 / SDXL models only (the pack patches their UNet); 0 turns the filter off. SDXL base models
    (not the refiner) also get the pack's size conditioning at every sharpness, 0 included: the
    original width and height in the vector conditioning x1.5 for the positive prompt and x0.8
    for the negative, crops and target sizes as they are (the pack swaps ComfyUI's SDXL
    encode_adm for the run), so SDXL results differ from KSampler's even at 0."""


class FooocusKSampler(Node):
    __doc__ = "KSampler with" + SHARPNESS_HELP
    category = SAMPLING
    model: MODEL
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    sharpness: float = Float(2.0, min=0.0, max=MAX_SHARPNESS, step=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("Fooocus_KSampler",), optional=("sharpness",))
    estimate = classmethod(_estimate)
    noise_mode = "comfy"  # ComfyUI's noise, as KSampler's default

    def run(self):
        self.model = sharpened(self.model, self.sharpness, self.latent_image)
        return _sample(self, self.seed, denoise=self.denoise)


class FooocusKSamplerAdvanced(Node):
    __doc__ = "KSamplerAdvanced with" + SHARPNESS_HELP
    category = SAMPLING
    model: MODEL
    add_noise: str = Choice(["enable", "disable"], "enable")
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    start_at_step: int = Int(0, min=0, max=10000)
    end_at_step: int = Int(10000, min=0, max=10000)
    return_with_leftover_noise: str = Choice(["disable", "enable"], "disable")
    sharpness: float = Float(2.0, min=0.0, max=MAX_SHARPNESS, step=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("Fooocus_KSamplerAdvanced",), optional=("sharpness",))
    estimate = classmethod(_estimate)
    noise_mode = "comfy"

    def run(self):
        self.model = sharpened(self.model, self.sharpness, self.latent_image)
        return _sample(self, self.noise_seed, start_step=self.start_at_step, end_step=self.end_at_step,
                       add_noise=self.add_noise == "enable",
                       return_with_leftover_noise=self.return_with_leftover_noise == "enable")


class FooocusKSamplerEfficient(KSamplerEfficient):
    __doc__ = "KSampler (Efficient) with" + SHARPNESS_HELP + """
    A UI save of the pack's older versions, with sampler_state first, reads too (sampler_state
    dropped: every run samples). Models its scripts load (XY Plot's checkpoint / LoRA axes, HighRes-Fix's hires_ckpt_name) are
    sampled with it too, as the pack's global patch does. The MODEL given out is the one given in,
    without the sharpness (as the pack's)."""
    category = SAMPLING
    sharpness: float = Float(2.0, min=0.0, max=MAX_SHARPNESS, step=0.01)
    comfy = ComfyAlias(("Fooocus_KSamplerEfficient",), ignore=("sampler_state",), widgets=sampler_widgets,
                       optional=("optional_vae", "script", "sharpness"))

    def loaded_model(self, model):
        return sharpened(model, self.sharpness, self.latent_image)

    def run(self):
        given = self.model
        self.model = sharpened(self.model, self.sharpness, self.latent_image)
        return (given, *super().run()[1:])


# -- ControlNet loaders -------------------------------------------------------------------------------

LOADERS = "Art Venture/Loaders"
# the pack's preprocessor choices (each offered where comfyui_controlnet_aux has its node), in its order
PREPROCESSORS = ("canny", "lineart", "lineart_coarse", "lineart_anime", "lineart_manga", "scribble", "scribble_hed",
                 "hed", "hed_safe", "pidi", "pidi_safe", "mlsd", "openpose", "dwpose", "normalmap_bae",
                 "normalmap_midas", "depth_midas", "depth", "depth_zoe", "seg_ofcoco", "seg_ofade20k", "seg_ufade20k",
                 "tile")
BUILT_PREPROCESSORS = ("None", "canny", "scribble")  # comfyui_controlnet_aux's model-free ones graphflow has
AUTO = ("Auto: sd15", "Auto: sdxl", "Auto: sdxl_t2i")
PREPROCESSOR_HELP = """ preprocessor: "None" uses the image as it is; "canny"
    (thresholds 100 / 200) and "scribble" run comfyui_controlnet_aux's Canny Edge / Scribble Lines at
    `resolution`, as the pack calls them; the others need that pack's downloaded models (and the
    pack's own "tile" call fails for want of a resolution input), so they are refused by name."""


def _refuse_unbuilt(preprocessor: str) -> None:
    if preprocessor not in BUILT_PREPROCESSORS:
        why = ("the pack's own call fails for it (its tile preprocessor has no resolution input)"
               if preprocessor == "tile" else "it runs comfyui_controlnet_aux's downloaded models")
        raise NodeInputError("preprocessor", f"{preprocessor!r}: {why}; choices that work here: "
                                             f"{', '.join(BUILT_PREPROCESSORS)}")


def _preprocessed(image, preprocessor: str, resolution: int):
    from nodes.pack_nodes import _core
    from nodes.pack_nodes_controlnet_aux import CannyEdgePreprocessor, ScribblePreprocessor

    if preprocessor == "None":
        return image
    if preprocessor == "canny":
        result = _core(CannyEdgePreprocessor, image=image, low_threshold=100, high_threshold=200,
                       resolution=resolution)
    elif preprocessor == "scribble":
        result = _core(ScribblePreprocessor, image=image, resolution=resolution)
    else:
        _refuse_unbuilt(preprocessor)
    return result[0] if isinstance(result, tuple) else result


def _controlnet(name: str, override: str, keyframe):
    """The pack's load_controlnet: the override where models/controlnet/ has it (else name, with
    a warning), None for "None", a timestep keyframe as Advanced-ControlNet's loader takes it."""
    from nodes.advanced_controlnet import _keyframed
    from nodes.controlnet import _load
    from nodes.pack_nodes_art_venture_loaders import _choosing_input, _overridden

    chosen = _overridden("controlnet", name, override, "ControlNet")
    if chosen == "None":
        return None
    try:
        net = _load(chosen)
    except NodeInputError as e:
        raise NodeInputError(_choosing_input("control_net_name", "control_net_override", override, chosen),
                             str(e)) from None
    return _keyframed(net, keyframe)


SDXL_LEFT_OUT = ("t2i", "lllite")  # detect_controlnet skips these files for sdxl (10ff95d0: "sdxl_t2i" only)
# the pack's detect_controlnet rules, in its order: the preprocessors each takes, and what the file
# name must hold (None: the preprocessor's own name)
DETECTION_RULES = ((("canny", "scribble", "mlsd"), None), (("scribble", "scribble_hed"), "scribble"),
                   (("lineart", "lineart_coarse"), "lineart."), (("lineart_anime", "lineart_manga"), "lineart_anime"),
                   (("hed", "hed_safe", "pidi", "pidi_safe"), "softedge"),
                   (("pose", "openpose", "dwpose"), "openpose"), (("normalmap_bae", "normalmap_midas"), "normalbae"),
                   (("depth", "depth_midas", "depth_zoe"), "depth"),
                   (("seg_ofcoco", "seg_ofade20k", "seg_ufade20k"), "seg"), (("tile",), "tile"))


def _detected(preprocessor: str, version: str) -> str:
    """The pack's detect_controlnet (713f6de7's, which its stackers and AV_ControlNetPreprocessor
    share): among the files naming the SD version (for sdxl, none holding a word of SDXL_LEFT_OUT),
    the first one each matching rule finds ("None" where none). Its rules share one pass over the
    files, so for scribble, which two rules take, the second finds the scribble file after the
    first's, as the pack's does."""
    names = iter([n for n in folders.list_models("controlnet") if version in n
                  and not (version == "sdxl" and any(word in n for word in SDXL_LEFT_OUT))])
    found = "None"
    for preprocessors, key in DETECTION_RULES:
        if preprocessor in preprocessors:
            found = next((n for n in names if (key or preprocessor) in n), "None")
    return found


def _controlnet_choice(extra=("None",)):
    return Choice(lambda: [*extra, *folders.list_models("controlnet")], "None", model_folder="controlnet",
                  not_files=extra)


class AVControlNetLoader(Node):
    """ControlNetLoader with control_net_override (a file name used in place of control_net_name
    where models/controlnet/ has it; "None", or a name not found, with a warning, keeps
    control_net_name) and an optional timestep keyframe (its schedule, as Advanced-ControlNet's
    loader takes one)."""
    category = LOADERS
    control_net_name: str = Choice(lambda: folders.list_models("controlnet"), model_folder="controlnet")
    control_net_override: str = Text("None")
    timestep_keyframe: TIMESTEP_KEYFRAME = None
    outputs = {"CONTROL_NET": CONTROL_NET}
    comfy = ComfyAlias(("AV_ControlNetLoader",), optional=("control_net_override", "timestep_keyframe"))

    def run(self):
        net = _controlnet(self.control_net_name, self.control_net_override, self.timestep_keyframe)
        if net is None:
            raise NodeInputError("control_net_name", "no ControlNet chosen")
        return net


class AVControlNetEfficientLoader(Node):
    __doc__ = """ControlNetApply with the ControlNet loaded here: control_net_name ("None": the
    conditioning passes), control_net_override and timestep_keyframe as in the pack's ControlNet
    Loader; enabled off passes the conditioning.""" + PREPROCESSOR_HELP
    category = LOADERS
    control_net_name: str = _controlnet_choice()
    conditioning: CONDITIONING
    image: IMAGE
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    preprocessor: str = Choice(("None", *PREPROCESSORS), "None")
    control_net_override: str = Text("None")
    timestep_keyframe: TIMESTEP_KEYFRAME = None
    resolution: int = Int(512, min=64, max=2048, step=64)
    enabled: bool = Bool(True)
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("AV_ControlNetEfficientLoader",),
                       optional=("control_net_override", "timestep_keyframe", "resolution", "enabled"))

    def run(self):
        from nodes.controlnet import ApplyControlNet
        from nodes.pack_nodes import _core

        if not self.enabled:
            return self.conditioning
        net = _controlnet(self.control_net_name, self.control_net_override, self.timestep_keyframe)
        if net is None:
            return self.conditioning
        image = _preprocessed(self.image, self.preprocessor, self.resolution)
        return _core(ApplyControlNet, conditioning=self.conditioning, control_net=net, image=image,
                     strength=self.strength)


class AVControlNetEfficientLoaderAdvanced(Node):
    __doc__ = """ControlNetApplyAdvanced with the ControlNet loaded here (see the pack's
    ControlNet Loader): "None", or enabled off, passes both prompts.""" + PREPROCESSOR_HELP
    category = LOADERS
    control_net_name: str = _controlnet_choice()
    positive: CONDITIONING
    negative: CONDITIONING
    image: IMAGE
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    preprocessor: str = Choice(("None", *PREPROCESSORS), "None")
    control_net_override: str = Text("None")
    timestep_keyframe: TIMESTEP_KEYFRAME = None
    resolution: int = Int(512, min=64, max=2048, step=64)
    enabled: bool = Bool(True)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("AV_ControlNetEfficientLoaderAdvanced",),
                       optional=("control_net_override", "timestep_keyframe", "resolution", "enabled"))

    def run(self):
        from nodes.controlnet import ApplyControlNetAdvanced
        from nodes.pack_nodes import _core

        if not self.enabled:
            return self.positive, self.negative
        net = _controlnet(self.control_net_name, self.control_net_override, self.timestep_keyframe)
        if net is None:
            return self.positive, self.negative
        image = _preprocessed(self.image, self.preprocessor, self.resolution)
        return _core(ApplyControlNetAdvanced, positive=self.positive, negative=self.negative, control_net=net,
                     image=image, strength=self.strength, start_percent=self.start_percent,
                     end_percent=self.end_percent)


def _stacked(node, start: float, end: float) -> list:
    stack = list(node.cnet_stack or [])  # a new list: the pack extends the one given, which a cache would repeat
    if not node.enabled:
        return stack
    name = node.control_net_name
    if name in AUTO:
        if node.preprocessor == "None":
            raise NodeInputError("preprocessor", f"{name!r} picks the ControlNet by the preprocessor: choose one")
        name = _detected(node.preprocessor, name[len("Auto: "):])
    net = _controlnet(name, node.control_net_override, node.timestep_keyframe)
    if net is None:  # before the preprocessor: none found passes the stack, whatever it is, as the pack's
        return stack
    return stack + [(net, _preprocessed(node.image, node.preprocessor, node.resolution), node.strength, start, end)]


class AVControlNetEfficientStacker(Node):
    __doc__ = """Efficiency's Control Net Stacker with the ControlNet loaded here (see the pack's
    ControlNet Loader) and its hint preprocessed: the stack given plus (ControlNet, image,
    strength, start_percent, end_percent); "None", or enabled off, adds nothing. "Auto: sd15 /
    sdxl / sdxl_t2i" needs a preprocessor and picks the first file of models/controlnet/ naming
    that version (for sdxl, not t2i or lllite files) and the preprocessor's kind, by the pack's
    rules (e.g. depth_zoe: "depth", hed: "softedge"; scribble: the second scribble file, as the
    pack's shared pass over the files gives); none found adds nothing, for any preprocessor, as
    the pack's.""" + PREPROCESSOR_HELP
    category = LOADERS
    control_net_name: str = _controlnet_choice(("None", *AUTO))
    image: IMAGE
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    preprocessor: str = Choice(("None", *PREPROCESSORS), "None")
    cnet_stack: CONTROL_NET_STACK = None
    control_net_override: str = Text("None")
    timestep_keyframe: TIMESTEP_KEYFRAME = None
    resolution: int = Int(512, min=64, max=2048, step=64)
    enabled: bool = Bool(True)
    outputs = {"CNET_STACK": CONTROL_NET_STACK}
    comfy = ComfyAlias(("AV_ControlNetEfficientStacker",),
                       optional=("cnet_stack", "control_net_override", "timestep_keyframe", "resolution", "enabled"))

    def run(self):
        return _stacked(self, self.start_percent, self.end_percent)


class AVControlNetEfficientStackerSimple(Node):
    __doc__ = """ControlNet Stacker Adv. without start_percent / end_percent (the whole sampling).""" + \
        PREPROCESSOR_HELP
    category = LOADERS
    control_net_name: str = _controlnet_choice(("None", *AUTO))
    image: IMAGE
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    preprocessor: str = Choice(("None", *PREPROCESSORS), "None")
    cnet_stack: CONTROL_NET_STACK = None
    control_net_override: str = Text("None")
    timestep_keyframe: TIMESTEP_KEYFRAME = None
    resolution: int = Int(512, min=64, max=2048, step=64)
    enabled: bool = Bool(True)
    outputs = {"CNET_STACK": CONTROL_NET_STACK}
    comfy = ComfyAlias(("AV_ControlNetEfficientStackerSimple",),
                       optional=("cnet_stack", "control_net_override", "timestep_keyframe", "resolution", "enabled"))

    def run(self):
        return _stacked(self, 0.0, 1.0)
