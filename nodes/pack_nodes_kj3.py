"""ComfyUI-KJNodes' (kijai's) nodes of round 3, under the pack's class names, inputs and outputs,
read from kijai/ComfyUI-KJNodes: nodes/image_nodes.py at commit
016f9c14e23460df56730438f80c30cf4add78b1, nodes/batchcrop_nodes.py at commit
03ec8a8af5364f99fdd87263655b7e5bcb26c987, nodes/mask_nodes.py at commit
00da1910634fbf314d407608efb281ae6f7f1ba2, nodes/nodes.py at commit
008eed9014016f481c7dcf6e51e4c67aa1f395a0, nodes/curve_nodes.py at commit
37a0973b474307b2883cfb49e720f2754106d98d and utility/utility.py at commit
2acdef1766026ff3be00daf3c45f6a064db9100f (its string_to_color).

Crop and uncrop by mask: ImageCropByMask, ImageCropByMaskAndResize, ImageUncropByMask,
BatchCropFromMaskAdvanced and BatchUncropAdvanced (round 2's BatchCropFromMask / BatchUncrop are
in nodes/pack_nodes_kj_more.py). Values and sigmas: FloatToSigmas, SigmasToFloat,
StringToFloatList, JoinStringMulti and WidgetToString. Masks: OffsetMask, CreateTextMask,
MaskOrImageToWeight and FloatToMask. Images: ImageGridComposite2x2, ImageGridComposite3x3 and
ImageAndMaskPreview.

Left out of the nodes built (each node's help says so): MaskOrImageToWeight's 'pandas series'
output (pandas is not a dependency here) and its 'string' output (the pack fails on it);
CreateTextMask draws with PIL's default font where the pack's font file is not in models/fonts.
The pack's other classes not built here stay unknown, named in comfy_format's CUSTOM_PACKS."""

from __future__ import annotations

import math
from numbers import Integral, Real

from graphflow.api import ANY, FLOAT, IMAGE, INT, MASK, SIGMAS, STRING, Bool, Choice, ComfyAlias, Estimate, Float, \
    Int, Node, NodeInputError, Size, Text, check_run_memory, current_node_id, current_workflow, progress, repeated
from graphflow.workflow import literal
from nodes.image import MAX_SIZE, ImageCompositeMasked, _image, _resize_image, preview
from nodes.pack_nodes import _core
from nodes.pack_nodes_essentials_misc import drawn_within_pillows_limit, font_choices, text_font
from nodes.pack_nodes_kj import _mask_to, kj_color
from nodes.pack_nodes_kj_more import BBOX, check_picture_channels, mask_pixels, to_pil

COMFY_PACK = "ComfyUI-KJNodes"  # the custom node pack this module's ComfyUI classes come from


def _masks(mask, name: str):
    """A MASK as a batch ([H, W] becomes one mask)."""
    import torch
    if not torch.is_tensor(mask) or mask.ndim not in (2, 3):
        raise NodeInputError(name, "expected a MASK: a [B, H, W] tensor")
    return mask[None] if mask.ndim == 2 else mask


def _filled(batch, name: str, what: str = "images"):
    """The batch, refused naming the input when it holds none (the pack fails there)."""
    if batch.shape[0] == 0:
        raise NodeInputError(name, f"an empty batch (0 {what}): expected at least one")
    return batch


# -- crop and uncrop by mask (nodes/image_nodes.py) ----------------------------------------------


class ImageCropByMask(Node):
    """Crop each image to its mask's box, as KJNodes' Image Crop By Mask does: the mask is rounded
    (0.5 and up is in), and image i takes mask i's box (the last mask's when there are fewer), from
    its first to its last marked row and column, both included. The crops must come out the same
    size, as the pack stacks them; an empty mask, boxes of different sizes, or a box outside the
    image (a larger mask's; the pack gives a 0x0 image) are refused naming mask (the pack fails
    there), and so is an empty batch of images or masks."""
    category = "KJNodes/image"
    image: IMAGE
    mask: MASK
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageCropByMask",))

    def run(self):
        import torch
        images, masks = _filled(_image(self.image, "image"), "image"), _masks(self.mask, "mask").round()
        _filled(masks, "mask", "masks")
        crops = []
        for b in range(images.shape[0]):
            marked = masks[min(b, masks.shape[0] - 1)] > 0
            rows, cols = torch.where(marked.any(dim=1))[0], torch.where(marked.any(dim=0))[0]
            if len(rows) == 0:
                raise NodeInputError("mask", f"the mask for image {b} is empty (under 0.5 everywhere): expected "
                                             "a mask marking what to crop")
            crop = images[b:b + 1, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            if crop.shape[1] == 0 or crop.shape[2] == 0:  # the pack gives a 0x0 image there
                raise NodeInputError("mask", f"the mask for image {b} marks columns {int(cols[0])}-{int(cols[-1])}, "
                                             f"rows {int(rows[0])}-{int(rows[-1])}, outside the {images.shape[2]}x"
                                             f"{images.shape[1]} image: expected a box inside it")
            if crops and crop.shape != crops[0].shape:
                raise NodeInputError("mask", f"image {b}'s box is {crop.shape[2]}x{crop.shape[1]}, image 0's "
                                             f"{crops[0].shape[2]}x{crops[0].shape[1]}: expected boxes of one size "
                                             "to stack the crops")
            crops.append(crop)
        return torch.cat(crops)


def _ceil16(value: int) -> int:
    return (value + 15) // 16 * 16


def mask_box(mask, padding: int, least: int, most: int) -> tuple[int, int, int, int]:
    """ImageCropByMaskAndResize's box of one rounded mask (x0, y0, width, height): the marked
    pixels' box (both ends included; none: a 0x0 box at the centre), at least `least` and at most
    `most` a side (0: no bound), grown by `padding` each side only as far as the picture has room,
    then moved inside it."""
    import torch
    h0, w0 = mask.shape
    ys, xs = torch.nonzero(mask == 1, as_tuple=True)
    if len(ys) == 0:
        x_c, y_c, width, height = w0 / 2.0, h0 / 2.0, 0, 0
    else:
        x_min, x_max, y_min, y_max = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
        width, height = x_max - x_min + 1, y_max - y_min + 1
        x_c, y_c = (x_min + x_max) / 2.0, (y_min + y_max) / 2.0
    if least:
        width, height = max(width, least), max(height, least)
    if most:
        width, height = min(width, most), min(height, most)
    final_w = min(width + 2 * min((w0 - width) // 2, padding), w0)
    final_h = min(height + 2 * min((h0 - height) // 2, padding), h0)
    # int() cuts toward 0, as the pack's does
    return (max(0, min(int(x_c - final_w / 2), w0 - final_w)), max(0, min(int(y_c - final_h / 2), h0 - final_h)),
            final_w, final_h)


class ImageCropByMaskAndResize(Node):
    """Crop every image around its mask with one crop size, and resize the crops to one size, as
    KJNodes' Image Crop By Mask And Resize does. Each (rounded) mask's box is its marked pixels'
    (a 0x0 box at the centre when empty), at least min_crop_resolution and at most
    max_crop_resolution a side (0: no bound), grown by `padding` a side as far as the image has
    room. The crop is the largest box width and height, each rounded up to a multiple of 16,
    centred on each box and moved inside the image; it is resized (images Lanczos, masks bilinear)
    to base_resolution on its longer side by the widest box's aspect, both sides rounded up to
    multiples of 16. Gives the crops, their masks and each crop's box as (x0, y0, x1, y1), which
    Image Uncrop By Mask pastes back. Refused: an empty mask with min_crop_resolution 0 (a box with
    no size), no images, fewer masks than images, and base_resolution 0. The resized crops (at most
    base_resolution square, rounded up to 16) are checked before the run."""
    category = "KJNodes/image"
    image: IMAGE
    mask: MASK
    base_resolution: int = Int(512, min=0, max=MAX_SIZE, step=8, resource="width")  # names it in a refusal
    padding: int = Int(0, min=0, max=MAX_SIZE)
    min_crop_resolution: int = Int(128, min=0, max=MAX_SIZE, step=8)
    max_crop_resolution: int = Int(512, min=0, max=MAX_SIZE, step=8)
    outputs = {"images": IMAGE, "masks": MASK, "bbox": BBOX}
    comfy = ComfyAlias(("ImageCropByMaskAndResize",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, base = inputs.get("image"), widgets.get("base_resolution")
        if size is None or not isinstance(base, int):
            return Estimate(size)
        return Estimate(Size(size.batch, _ceil16(base), _ceil16(base)))  # the longer side is base; the other less

    def run(self):
        import torch
        images, masks = _filled(_image(self.image, "image"), "image"), _masks(self.mask, "mask").round()
        if masks.shape[0] < images.shape[0]:
            raise NodeInputError("mask", f"{masks.shape[0]} masks for {images.shape[0]} images: expected one per image")
        if masks.shape[1:] != images.shape[1:3]:  # its boxes would lie past the picture
            raise NodeInputError("mask", f"the masks are {masks.shape[2]}x{masks.shape[1]}, the images "
                                         f"{images.shape[2]}x{images.shape[1]}: expected the images' size")
        boxes = [mask_box(masks[i], self.padding, self.min_crop_resolution, self.max_crop_resolution)
                 for i in range(images.shape[0])]
        for i, (_, _, w, h) in enumerate(boxes):
            if w < 1 or h < 1:
                raise NodeInputError("min_crop_resolution", f"mask {i} is empty, so its box is {w}x{h}: expected a "
                                                            "min_crop_resolution above 0 to size it")
        crop_w, crop_h = _ceil16(max(w for _, _, w, _ in boxes)), _ceil16(max(h for _, _, _, h in boxes))
        aspect = max(w / h for _, _, w, h in boxes)
        if aspect > 1:
            target_w, target_h = self.base_resolution, int(self.base_resolution / aspect)
        else:
            target_w, target_h = int(self.base_resolution * aspect), self.base_resolution
        target_w, target_h = _ceil16(target_w), _ceil16(target_h)
        if target_w < 1 or target_h < 1:
            raise NodeInputError("base_resolution", f"the crops come out {target_w}x{target_h}: expected a "
                                                    "base_resolution above 0")
        crops, crop_masks, corners = [], [], []
        for i, (x, y, w, h) in enumerate(boxes):
            x0 = max(0, min(int(x + w / 2 - crop_w / 2), images.shape[2] - crop_w))
            y0 = max(0, min(int(y + h / 2 - crop_h / 2), images.shape[1] - crop_h))
            crops.append(_resize_image(images[i:i + 1, y0:y0 + crop_h, x0:x0 + crop_w], target_w, target_h,
                                       "lanczos"))
            crop_masks.append(_mask_to(masks[i:i + 1, y0:y0 + crop_h, x0:x0 + crop_w], target_w, target_h, "bilinear"))
            corners.append((x0, y0, x0 + crop_w, y0 + crop_h))
        return torch.cat(crops), torch.cat(crop_masks), corners


def _corner_box(box, name: str) -> tuple[int, int, int, int]:
    """One (x0, y0, x1, y1) box of whole numbers, x1 > x0 and y1 > y0."""
    if not isinstance(box, (tuple, list)) or len(box) != 4 or \
            not all(isinstance(v, Integral) and not isinstance(v, bool) for v in box):
        raise NodeInputError(name, f"expected boxes of 4 whole numbers (x0, y0, x1, y1), got {box!r}")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise NodeInputError(name, f"the box {tuple(box)} is empty: expected x1 > x0 and y1 > y0")
    return tuple(int(v) for v in box)


class ImageUncropByMask(Node):
    """Paste each source image back into destination at its box (x0, y0, x1, y1), blended by its
    mask, as KJNodes' Image Uncrop By Mask does (with Image Crop By Mask And Resize's outputs):
    source i is resized (Lanczos) and mask i (bilinear) to the box, and the result is destination i
    x (1 - mask) + source x mask there; a box running past the destination's edges is cut there.
    One image per source; no sources, fewer destinations, masks or boxes than sources, or a source
    with other channels than the destination, are refused (the pack fails there); each resized
    source is checked against the memory before it is made."""
    category = "KJNodes/image"
    destination: IMAGE
    source: IMAGE
    mask: MASK
    bbox: BBOX
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageUncropByMask",))

    def run(self):
        import torch
        import torch.nn.functional as F
        dest, source, masks = _image(self.destination, "destination"), _image(self.source, "source"), \
            _masks(self.mask, "mask")
        count = _filled(source, "source").shape[0]
        for name, have in (("destination", dest.shape[0]), ("mask", masks.shape[0]),
                           ("bbox", len(self.bbox) if isinstance(self.bbox, (list, tuple)) else 0)):
            if have < count:
                raise NodeInputError(name, f"{have} for {count} source images: expected one per source image")
        if source.shape[-1] != dest.shape[-1]:
            raise NodeInputError("source", f"{source.shape[-1]} channels; the destination has {dest.shape[-1]}")
        _, height, width, _ = dest.shape
        out = []
        for i in range(count):
            x0, y0, x1, y1 = _corner_box(self.bbox[i], "bbox")
            if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:  # nothing to paste (the pack may fail there)
                raise NodeInputError("bbox", f"the box {(x0, y0, x1, y1)} lies outside the {width}x{height} "
                                             "destination")
            check_run_memory("bbox", f"the box {(x0, y0, x1, y1)} resizes a source image to {x1 - x0}x{y1 - y0}",
                             images=Size(1, y1 - y0, x1 - x0))
            patch = _resize_image(source[i:i + 1], x1 - x0, y1 - y0, "lanczos")[0]
            weight = _mask_to(masks[i:i + 1], x1 - x0, y1 - y0, "bilinear")[0]
            # negative padding cuts what runs past the destination, as the pack's F.pad does
            sides = (x0, width - x1, y0, height - y1)
            patch = F.pad(patch, (0, 0, *sides))
            weight = F.pad(weight, sides)[..., None]
            out.append(dest[i] * (1.0 - weight) + patch * weight)
        return torch.stack(out)


# -- batch crop and uncrop (nodes/batchcrop_nodes.py) ------------------------------------------


def mask_extent(mask) -> dict | None:
    """The pack's box of one mask's pixels at 8 bits: first and last column and row, centre
    (their middle) and width / height (both ends included); None for an empty mask."""
    try:
        ys, xs = mask_pixels(mask, "masks")
    except NodeInputError:  # empty: the advanced crop falls back to the picture's centre
        return None
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    return {"center": ((x0 + x1) / 2.0, (y0 + y1) / 2.0), "width": x1 - x0 + 1, "height": y1 - y0 + 1}


def fit_box(center_x: float, center_y: float, box_w, box_h, img_w: int, img_h: int) -> tuple[int, int, int, int]:
    """A box of (box_w, box_h) (rounded, 1 up to the picture's size) centred on the point, shifted
    inside the picture keeping its size: (x0, y0, x1, y1)."""
    width, height = int(max(1, min(round(box_w), img_w))), int(max(1, min(round(box_h), img_h)))
    x0 = max(0, min(int(round(center_x - width / 2.0)), img_w - width))
    y0 = max(0, min(int(round(center_y - height / 2.0)), img_h - height))
    return x0, y0, x0 + width, y0 + height


def shrunk_to(width, height, limit_w: int, limit_h: int) -> tuple[int, int]:
    """(width, height) rounded, scaled down keeping the aspect to fit limit_w x limit_h (0: no
    limit), at least 1."""
    width, height = max(1, int(round(width))), max(1, int(round(height)))
    scale = min([1.0] + [limit / side for limit, side in ((limit_w, width), (limit_h, height)) if limit > 0])
    if scale < 1.0:
        width, height = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    return width, height


class BatchCropFromMaskAdvanced(Node):
    """Crop each image around its mask, one box size for the batch, and also all of them by the
    masks' union, as KJNodes' Batch Crop From Mask Advanced does (its current version), by its
    rules: a mask's box runs from its first to its last pixel (8-bit, above 0), both included. With
    preserve_aspect_ratio the box is the widest by the tallest box times crop_size_mult, shrunk to
    fit the image keeping its aspect, and the crops are resized to fit max_width x max_height (0:
    no bound) keeping it too; without, the box is a square of the largest box side times
    crop_size_mult, rounded up to a multiple of 16, and no larger than the image's shorter side
    (rounded down to 16 where that is 16 or more). Each box is centred on its mask's box centre
    (rounded; an empty mask takes the previous frame's, or the image's centre), moving from the
    previous frame's centre by bbox_smooth_alpha, and shifted inside the image; each crop (and its
    mask) is resized to the output size where it differs (bilinear antialiased; masks nearest).
    The union box is the union mask's box times crop_size_mult (square without
    preserve_aspect_ratio, at most the image's shorter side), centred on it. Gives the images, the
    crops, their masks, the union crops and their masks, the boxes (x, y, width, height), the
    union box (a list of one) and the output width and height. As the pack, an image without a
    mask (more images than masks) is left out; masks of another size than the images, and no images
    or no masks, are refused."""
    category = "KJNodes/masking"
    original_images: IMAGE
    masks: MASK
    crop_size_mult: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    bbox_smooth_alpha: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    preserve_aspect_ratio: bool = Bool(False)
    max_width: int = Int(0, min=0, max=16384)
    max_height: int = Int(0, min=0, max=16384)
    outputs = {"original_images": IMAGE, "cropped_images": IMAGE, "cropped_masks": MASK, "combined_crop_image": IMAGE,
               "combined_crop_masks": MASK, "bboxes": BBOX, "combined_bounding_box": BBOX, "bbox_width": INT,
               "bbox_height": INT}
    comfy = ComfyAlias(("BatchCropFromMaskAdvanced",))

    def _sizes(self, infos, image_w: int, image_h: int):
        """The crop box's size and the crops' output size."""
        found = [info for info in infos if info is not None]
        mult = self.crop_size_mult
        if self.preserve_aspect_ratio:
            widest = max((info["width"] for info in found), default=image_w)
            tallest = max((info["height"] for info in found), default=image_h)
            box = shrunk_to(max(1, round(widest * mult)), max(1, round(tallest * mult)), image_w, image_h)
            return box, shrunk_to(*box, self.max_width, self.max_height)
        side = max((max(info["width"], info["height"]) for info in found), default=min(image_w, image_h))
        side = math.ceil(max(1, round(side * mult)) / 16) * 16
        shorter = min(image_w, image_h)
        if side > shorter:
            side = shorter // 16 * 16 if shorter >= 16 else shorter
        return (side, side), (side, side)

    def _union_box(self, masks, box, image_w: int, image_h: int):
        import torch
        union = mask_extent(torch.max(masks, dim=0)[0])
        if union is None:
            (center_x, center_y), (width, height) = (image_w / 2.0, image_h / 2.0), box
        else:
            center_x, center_y = union["center"]
            width = max(1, round(union["width"] * self.crop_size_mult))
            height = max(1, round(union["height"] * self.crop_size_mult))
        if self.preserve_aspect_ratio:
            width, height = shrunk_to(width, height, image_w, image_h)
        else:
            width = height = min(max(1, int(round(max(width, height)))), min(image_w, image_h))
        return fit_box(center_x, center_y, width, height, image_w, image_h)

    def _centers(self, infos, image_w: int, image_h: int):
        """Each frame's box centre, smoothed from the previous frame's by bbox_smooth_alpha."""
        alpha, centers, previous = self.bbox_smooth_alpha, [], None
        for i, info in enumerate(infos):
            if info is not None:
                here = (round(info["center"][0]), round(info["center"][1]))
            else:
                here = previous if previous is not None else (image_w // 2, image_h // 2)
            if i > 0 and 0 < alpha < 1:
                here = (round(alpha * here[0] + (1 - alpha) * previous[0]),
                        round(alpha * here[1] + (1 - alpha) * previous[1]))
            elif i > 0 and alpha <= 0:
                here = previous
            previous = here
            centers.append(here)
        return centers

    def run(self):
        import torch
        import torch.nn.functional as F
        images = _filled(_image(self.original_images, "original_images"), "original_images")
        masks = _filled(_masks(self.masks, "masks"), "masks", "masks")
        if masks.shape[-2:] != images.shape[1:3]:
            raise NodeInputError("masks", f"expected masks of the images' size {tuple(images.shape[1:3])} (height, "
                                          f"width), got {tuple(masks.shape[-2:])}")
        image_h, image_w = images.shape[1:3]
        infos = [mask_extent(mask) for mask in masks]
        (box_w, box_h), (out_w, out_h) = self._sizes(infos, image_w, image_h)
        ux0, uy0, ux1, uy1 = self._union_box(masks, (box_w, box_h), image_w, image_h)
        boxes, crops, crop_masks, union_crops, union_masks = [], [], [], [], []
        for i, (cx, cy) in enumerate(self._centers(infos[:len(images)], image_w, image_h)):
            x0, y0, x1, y1 = fit_box(cx, cy, box_w, box_h, image_w, image_h)
            boxes.append((x0, y0, x1 - x0, y1 - y0))
            crop, crop_mask = images[i, y0:y1, x0:x1], masks[i, y0:y1, x0:x1]
            if crop.shape[:2] != (out_h, out_w):  # torchvision's Resize, as the pack's
                crop = F.interpolate(crop.permute(2, 0, 1)[None], size=(out_h, out_w), mode="bilinear",
                                     align_corners=False, antialias=True)[0].permute(1, 2, 0)
                crop_mask = F.interpolate(crop_mask[None, None], size=(out_h, out_w), mode="nearest")[0, 0]
            crops.append(crop)
            crop_masks.append(crop_mask)
            union_crops.append(images[i, uy0:uy1, ux0:ux1])
            union_masks.append(masks[i, uy0:uy1, ux0:ux1])
        return (images, torch.stack(crops), torch.stack(crop_masks), torch.stack(union_crops),
                torch.stack(union_masks), boxes, [(ux0, uy0, ux1 - ux0, uy1 - uy0)], out_w, out_h)


def _xywh_boxes(boxes, count: int, name: str) -> list:
    """The first `count` (x, y, width, height) boxes, each of 4 finite numbers."""
    if not isinstance(boxes, (list, tuple)) or len(boxes) < count:
        have = len(boxes) if isinstance(boxes, (list, tuple)) else 0
        raise NodeInputError(name, f"expected a box for each of the {count} images, got {have}")
    for box in boxes[:count]:
        if not isinstance(box, (tuple, list)) or len(box) != 4 or \
                not all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in box):
            raise NodeInputError(name, f"expected boxes of 4 numbers (x, y, width, height), got {box!r}")
    return list(boxes[:count])


def scaled_around_center(region, scale: float, image_w: int, image_h: int) -> tuple[int, int, int, int]:
    """BatchUncropAdvanced's paste region (x0, y0, x1, y1) scaled by `scale` about its centre and
    moved, then cut, inside the picture (at least 1 pixel a side)."""
    x0, y0, x1, y1 = region
    if scale == 1.0:
        return int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
    width, height = x1 - x0, y1 - y0
    scaled_w, scaled_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    x0, y0 = int(round(x0 + width / 2.0 - scaled_w / 2.0)), int(round(y0 + height / 2.0 - scaled_h / 2.0))
    x1, y1 = x0 + scaled_w, y0 + scaled_h
    if x0 < 0:
        x0, x1 = 0, x1 - x0
    if y0 < 0:
        y0, y1 = 0, y1 - y0
    if x1 > image_w:
        x0, x1 = x0 - (x1 - image_w), image_w
    if y1 > image_h:
        y0, y1 = y0 - (y1 - image_h), image_h
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(image_w, x1), min(image_h, y1)
    return x0, y0, (x1 if x1 > x0 else min(image_w, x0 + 1)), (y1 if y1 > y0 else min(image_h, y0 + 1))


def outlined_block(width: int, height: int, border: int):
    """A white 'L' block with a black outline `border` pixels wide (PIL's rectangle outline; 0:
    none), as the advanced uncrop's square mask."""
    from PIL import Image, ImageDraw
    block = Image.new("L", (width, height), 255)
    ImageDraw.Draw(block).rectangle((0, 0, width - 1, height - 1), outline=0, width=border)
    return block


class BatchUncropAdvanced(Node):
    """Paste each crop back into its image, as KJNodes' Batch Uncrop Advanced does (with PIL, in 8
    bits): at its box (x, y, width, height; with use_combined_mask the combined_bounding_box's
    first box and combined_crop_mask's masks), cut at the image's edges, scaled by crop_rescale
    about its centre and moved inside the image; the crop is resized to it (PIL's default filter).
    The paste is blended by a mask: with use_square_mask a white block with a black outline
    (crop's longer side / 2 x border_blending) / 2 pixels wide, else the crop's mask resized to the
    block; box- then Gaussian-blurred by a quarter of that blend width. One-channel images are grey
    pictures, as the pack's tensor2pil makes them; the result is RGB. Extra boxes are dropped; no
    images, fewer boxes, crops or masks than images, use_combined_mask without a
    combined_bounding_box, a box not of 4 numbers, or images of 2 channels (no picture), are
    refused."""
    category = "KJNodes/masking"
    original_images: IMAGE
    cropped_images: IMAGE
    cropped_masks: MASK
    combined_crop_mask: MASK
    bboxes: BBOX
    border_blending: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    crop_rescale: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    use_combined_mask: bool = Bool(False)
    use_square_mask: bool = Bool(True)
    combined_bounding_box: BBOX = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("BatchUncropAdvanced",), optional=("combined_bounding_box",))

    def _boxes_and_masks(self, count: int):
        if self.use_combined_mask:
            if not self.combined_bounding_box:
                raise NodeInputError("combined_bounding_box", "not connected: use_combined_mask needs the union box "
                                                              "(Batch Crop From Mask Advanced's combined_bounding_box)")
            boxes, masks, name = _xywh_boxes(self.combined_bounding_box, 1, "combined_bounding_box") * count, \
                _masks(self.combined_crop_mask, "combined_crop_mask"), "combined_crop_mask"
        else:
            boxes, masks, name = _xywh_boxes(self.bboxes, count, "bboxes"), \
                _masks(self.cropped_masks, "cropped_masks"), "cropped_masks"
        if len(masks) < count:
            raise NodeInputError(name, f"{len(masks)} masks for {count} images: expected one per image")
        return boxes, masks

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageFilter
        images = _filled(_image(self.original_images, "original_images"), "original_images")
        crops = _image(self.cropped_images, "cropped_images")
        for name, batch in (("original_images", images), ("cropped_images", crops)):
            check_picture_channels(name, batch)
        if len(images) != len(crops):
            raise NodeInputError("cropped_images", f"expected as many crops as original_images ({len(images)}), "
                                                   f"got {len(crops)}")
        boxes, masks = self._boxes_and_masks(len(images))
        box_name = "combined_bounding_box" if self.use_combined_mask else "bboxes"
        out = []
        for image, crop, mask, (x, y, w, h) in zip(images, crops, masks, boxes):
            picture = to_pil(image)
            width, height = picture.size
            region = (x, y, x + min(width - x, w), y + min(height - y, h))
            if region[2] <= region[0] or region[3] <= region[1]:
                raise NodeInputError(box_name, f"the box {(x, y, w, h)} has nothing inside the {width}x{height} "
                                               "image")
            region = scaled_around_center(region, self.crop_rescale, width, height)
            size = (max(1, round(region[2] - region[0])), max(1, round(region[3] - region[1])))
            patch = to_pil(crop).resize(size).convert("RGB")
            blend_ratio = max(patch.size) / 2 * self.border_blending
            alpha = Image.new("L", picture.size, 0)
            if self.use_square_mask:
                alpha.paste(outlined_block(*size, round(blend_ratio / 2)), region)
            else:
                alpha.paste(to_pil(mask).resize(size), region)
            alpha = alpha.filter(ImageFilter.BoxBlur(radius=blend_ratio / 4))
            alpha = alpha.filter(ImageFilter.GaussianBlur(radius=blend_ratio / 4))
            blend = picture.convert("RGBA")
            blend.paste(patch, region)
            blend.putalpha(alpha)
            merged = Image.alpha_composite(picture.convert("RGBA"), blend).convert("RGB")
            out.append(torch.from_numpy(np.asarray(merged).astype(np.float32) / 255.0))
        return torch.stack(out)


# -- values and sigmas (nodes/nodes.py, nodes/curve_nodes.py) ------------------------------------


def _numbers(value, name: str) -> list[float]:
    """A number, or a list / tensor of numbers, as a list of floats."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Real) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, (list, tuple)) and all(isinstance(v, Real) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    raise NodeInputError(name, f"expected a number or a list of numbers, got {type(value).__name__}")


class FloatToSigmas(Node):
    """A sigma schedule from a list of numbers (String To Float List's, say), as KJNodes' Float To
    Sigmas makes it (float32). A single number is a schedule of one here (the pack's is a 0-d
    tensor no sampler takes); a value that is not finite (nan, inf) is refused, as no sampler can
    use it."""
    category = "KJNodes/noise"
    float_list: FLOAT
    outputs = {"SIGMAS": SIGMAS}
    comfy = ComfyAlias(("FloatToSigmas",), force_input=("float_list",))

    def run(self):
        import torch
        values = _numbers(self.float_list, "float_list")
        if not all(math.isfinite(v) for v in values):
            raise NodeInputError("float_list", f"expected finite numbers, got {values!r}")
        return torch.tensor(values, dtype=torch.float32)


class SigmasToFloat(Node):
    """A sigma schedule as a list of numbers, as KJNodes' Sigmas To Float gives it."""
    category = "KJNodes/noise"
    sigmas: SIGMAS
    outputs = {"float": FLOAT}
    comfy = ComfyAlias(("SigmasToFloat",))

    def run(self):
        import torch
        if not torch.is_tensor(self.sigmas):
            raise NodeInputError("sigmas", f"expected a SIGMAS tensor, got {type(self.sigmas).__name__}")
        return self.sigmas.tolist()


class StringToFloatList(Node):
    """A list of numbers from comma-separated text ("1, 2, 3"), as KJNodes' String To Float List
    makes it: each item as Python's float() reads it (spaces around it ignored)."""
    category = "KJNodes/misc"
    string: str = Text("1, 2, 3", multiline=True)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("StringToFloatList",))

    def run(self):
        try:
            return [float(item.strip()) for item in self.string.split(",")]
        except ValueError:
            raise NodeInputError("string", f"expected numbers separated by commas, like '1, 2.5, 3', got "
                                           f"{self.string!r}") from None


class JoinStringMulti(Node):
    """string_1 ... string_<inputcount> joined by the delimiter, or given as a list of them with
    return_list, as KJNodes' Join String Multi does: an input left unconnected or empty is skipped
    (string_1 always comes first, even empty). Up to 20 inputs here (the pack allows 1000: an
    inputcount above 20 reads the 20, and a save that connects or sets string_21 or later is
    refused naming that input and the cap)."""
    category = "KJNodes/text"
    inputcount: int = Int(2, min=2, max=1000)
    string_1: STRING
    delimiter: str = Text(" ")
    return_list: bool = Bool(False)
    string_2: STRING = None
    string_3: STRING = None
    string_4: STRING = None
    string_5: STRING = None
    string_6: STRING = None
    string_7: STRING = None
    string_8: STRING = None
    string_9: STRING = None
    string_10: STRING = None
    string_11: STRING = None
    string_12: STRING = None
    string_13: STRING = None
    string_14: STRING = None
    string_15: STRING = None
    string_16: STRING = None
    string_17: STRING = None
    string_18: STRING = None
    string_19: STRING = None
    string_20: STRING = None
    outputs = {"string": STRING}
    comfy = ComfyAlias(("JoinStringMulti",), force_input=("string_1", "string_2"))
    MOST = 20  # string inputs built here

    @classmethod
    def unknown_input(cls, name):
        number = name.removeprefix("string_")
        if number.isdigit() and int(number) > cls.MOST:
            return (f"graphflow's Join String Multi has {cls.MOST} string inputs (string_1 ... string_{cls.MOST}); "
                    f"the pack's inputcount can add more: expected {name}'s text joined into one of the {cls.MOST} "
                    "(an earlier Join String Multi, say)")
        return None

    def run(self):
        named = [("string_1", self.string_1)]
        for i in range(2, min(self.inputcount, self.MOST) + 1):
            if value := getattr(self, f"string_{i}"):
                named.append((f"string_{i}", value))
        if self.return_list:
            return [value for _, value in named]
        for name, value in named:
            if not isinstance(value, str):  # a list from another Join String Multi, say: the pack fails too
                raise NodeInputError(name, f"expected text to join, got {type(value).__name__} (return_list gives "
                                           "a list)")
        return self.delimiter.join(value for _, value in named)


def node_titles(workflow: dict) -> dict[str, str]:
    """The titles set on the workflow's nodes (a UI save's node titles, an API prompt's _meta)."""
    ui = workflow.get("ui") if isinstance(workflow.get("ui"), dict) else {}
    titles = {k: v for k, v in (ui.get("titles") if isinstance(ui.get("titles"), dict) else {}).items()
              if isinstance(v, str)}
    titles.update({k: v["title"] for k, v in (ui.get("nodes") if isinstance(ui.get("nodes"), dict) else {}).items()
                   if isinstance(v, dict) and isinstance(v.get("title"), str) and v["title"]})
    return titles


def widget_text(value, decimals: int) -> str:
    """A widget value as the pack writes it: a float with `decimals` places, else str() (a list as
    Python writes it, not as the workflow wraps it)."""
    value = literal(value)
    return f"{value:.{decimals}f}" if isinstance(value, float) else str(value)


class WidgetToString(Node):
    """The value of another node's widget in the running workflow, as text, as KJNodes' Widget To
    String gives it. The node is the one titled node_title when that is set (titles set in the
    editor), else the one with this id when id is not 0 (in a subgraph, the subgraph's own node of
    that id first, then the top level's, as the pack looks), else the node linked to any_input.
    widget_name names the input (several, comma-separated, give "name: value" pairs); return_all
    gives all the node's inputs as "name: value" pairs, its links last (ComfyUI's prompt lists
    socket inputs after the widgets; a widget fed by a link goes there too here). Floats are
    written with allowed_float_decimals places, links as [node id, output]. The inputs are the
    node's as this workflow holds them (the pack reads ComfyUI's prompt: the names are the same
    but where one of our nodes names an input otherwise). A missing node or widget is refused,
    naming the input that asked for it. The value is read again whenever the node read changes."""
    category = "KJNodes/text"
    id: int = Int(0, min=0, max=100000)
    widget_name: str = Text("")
    return_all: bool = Bool(False)
    any_input: ANY = None
    node_title: str = Text("")
    allowed_float_decimals: int = Int(2, min=0, max=10)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("WidgetToString",), optional=("any_input", "node_title", "allowed_float_decimals"))

    @classmethod
    def fingerprint(cls, **widgets):
        """The text it would give now: a change in the node read runs this one again."""
        try:
            return cls._read(current_workflow(), current_node_id(), **widgets)
        except Exception:  # noqa: BLE001 - run() names the problem
            return None

    @staticmethod
    def _target(workflow: dict, own_id, id=0, node_title="", **_) -> str:
        nodes = workflow.get("nodes") if isinstance(workflow.get("nodes"), dict) else {}
        if node_title:
            found = [node_id for node_id, title in node_titles(workflow).items() if title == node_title]
            if not found or found[0] not in nodes:
                raise NodeInputError("node_title", f"no node titled {node_title!r} in the workflow")
            return found[0]
        if id != 0:  # inside a subgraph, its own node of that id first, as the pack's prompt key
            prefix = str(own_id).rpartition(":")[0]
            for key in ([f"{prefix}:{id}"] if prefix else []) + [str(id)]:
                if key in nodes:
                    return key
            raise NodeInputError("id", f"no node {id} in the workflow" + (f" (nor {prefix}:{id} in this node's "
                                                                            "subgraph)" if prefix else ""))
        link = (nodes.get(str(own_id), {}).get("inputs") or {}).get("any_input")
        if not (isinstance(link, list) and len(link) == 2 and str(link[0]) in nodes):
            raise NodeInputError("any_input", "no node to read: expected an id, a node_title, or a node linked "
                                              "to any_input")
        return str(link[0])

    @classmethod
    def _read(cls, workflow: dict, own_id, widget_name="", return_all=False, allowed_float_decimals=2, **where) -> str:
        node_id = cls._target(workflow, own_id, **where)
        inputs = workflow["nodes"][node_id].get("inputs") or {}
        if return_all:  # links last: ComfyUI's prompt lists a node's socket inputs after its widgets
            ordered = sorted(inputs.items(), key=lambda item: isinstance(item[1], list) and len(item[1]) == 2)
            return ", ".join(f"{k}: {widget_text(v, allowed_float_decimals)}" for k, v in ordered).strip(", ")
        names = [name.strip() for name in widget_name.split(",") if name.strip()]
        missing = [name for name in names if name not in inputs] or ([] if names else [widget_name])
        if missing:
            raise NodeInputError("widget_name", f"node {node_id} has no widget {missing[0]!r}; its inputs: "
                                                f"{', '.join(inputs) or '(none)'}")
        if len(names) == 1:
            return widget_text(inputs[names[0]], allowed_float_decimals)
        return ", ".join(f"{name}: {widget_text(inputs[name], allowed_float_decimals)}" for name in names)

    def run(self):
        return self._read(current_workflow(), current_node_id(), widget_name=self.widget_name,
                          return_all=self.return_all, allowed_float_decimals=self.allowed_float_decimals,
                          id=self.id, node_title=self.node_title)


# -- masks (nodes/mask_nodes.py, nodes/curve_nodes.py) ------------------------------------------


def rotated(mask, degrees: float):
    """torchvision's rotate of one [H, W] mask (functional.rotate on a tensor): counter-clockwise
    about the centre, nearest pixel, zero outside, same size."""
    import torch
    import torch.nn.functional as F
    h, w = mask.shape
    turn = math.radians(-degrees)  # torchvision inverts the angle for its sampling grid
    theta = torch.tensor([[math.cos(turn), math.sin(turn), 0.0], [-math.sin(turn), math.cos(turn), 0.0]],
                         dtype=torch.float32)
    base = torch.empty(1, h, w, 3)
    base[..., 0].copy_(torch.linspace(-w * 0.5 + 0.5, w * 0.5 + 0.5 - 1, steps=w))
    base[..., 1].copy_(torch.linspace(-h * 0.5 + 0.5, h * 0.5 + 0.5 - 1, steps=h).unsqueeze_(-1))
    base[..., 2].fill_(1)
    grid = base.view(1, h * w, 3).bmm(theta.T[None] / torch.tensor([0.5 * w, 0.5 * h])).view(1, h, w, 2)
    return F.grid_sample(mask[None, None].float(), grid, mode="nearest", padding_mode="zeros",
                         align_corners=False)[0, 0].to(mask.dtype)


def shifted(mask, dx: int, dy: int, mode: str):
    """The pack's move of one [H, W] mask without roll: by dx right / dy down with 'empty' padding
    (a negative one clears that many columns at the right / rows at the bottom without moving the
    mask, as the pack's slicing does); any other padding_mode moves nothing (the pack's modes are
    not those its F.pad branch tests for)."""
    if mode != "empty":
        return mask
    out = mask.clone()
    h, w = mask.shape
    if dx > 0:
        out = torch_cat_zeros(out[:, :-dx], (h, dx), dim=1, before=True)
    elif dx < 0:
        out = torch_cat_zeros(out[:, :dx], (h, -dx), dim=1, before=False)
    if dy > 0:
        out = torch_cat_zeros(out[:-dy], (dy, w), dim=0, before=True)
    elif dy < 0:
        out = torch_cat_zeros(out[:dy], (-dy, w), dim=0, before=False)
    return out


def torch_cat_zeros(part, zeros_shape, dim: int, before: bool):
    """`part` with a block of zeros before or after it along `dim`."""
    import torch
    zeros = part.new_zeros(zeros_shape)
    return torch.cat([zeros, part] if before else [part, zeros], dim=dim)


class OffsetMask(Node):
    """Move, rotate and repeat masks, as KJNodes' Offset Mask does: the batch is repeated
    duplication_factor times; a non-zero angle turns mask i by angle x (i + 1) degrees with
    incremental, else (angle above 0 only, as the pack tests) each by angle (torchvision's rotate:
    counter-clockwise, nearest pixel, zero outside); then each moves x right and y down (x (i + 1)
    with incremental), at most size - 1. With roll the mask wraps round; without, padding_mode
    'empty' fills with 0, and a negative x or y clears that many columns at the right / rows at the
    bottom without moving the mask, and 'border' or 'reflection' move nothing: all as the pack does
    (its move tests for other mode names). An x or y past the mask's width or height the other way
    (the pack fails there) is refused."""
    category = "KJNodes/masking"
    mask: MASK
    x: int = Int(0, min=-4096, max=MAX_SIZE)
    y: int = Int(0, min=-4096, max=MAX_SIZE)
    angle: int = Int(0, min=-360, max=360)
    duplication_factor: int = Int(1, min=1, max=1000, resource="batch")  # names it in a refusal
    roll: bool = Bool(False)
    incremental: bool = Bool(False)
    padding_mode: str = Choice(("empty", "border", "reflection"), "empty")
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("OffsetMask",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return repeated(inputs.get("mask"), widgets.get("duplication_factor"))

    def run(self):
        import torch
        masks = _masks(self.mask, "mask").repeat(self.duplication_factor, 1, 1).clone()
        count, height, width = masks.shape
        if self.angle != 0 and (self.incremental or self.angle > 0):
            for i in range(count):
                masks[i] = rotated(masks[i], self.angle * (i + 1) if self.incremental else self.angle)
        for i in range(count):
            steps = i + 1 if self.incremental else 1
            dx, dy = min(self.x * steps, width - 1), min(self.y * steps, height - 1)
            if self.roll:
                masks[i] = torch.roll(masks[i], shifts=(dy, dx), dims=(0, 1))
                continue
            if self.padding_mode == "empty" and (dx < -width or dy < -height):
                name, have, size = ("x", dx, width) if dx < -width else ("y", dy, height)
                raise NodeInputError(name, f"mask {i} moves {have}, past the mask's {size} pixels: expected "
                                           f"at most {size} the other way")
            masks[i] = shifted(masks[i], dx, dy, self.padding_mode)
        return masks


PACK_FONTS = ("FreeMono.ttf", "FreeMonoBoldOblique.otf", "TTNorms-Black.otf")  # the fonts the pack ships


def text_mask_fonts() -> list[str]:
    """The pack's font names (drawn with PIL's default font unless they are in models/fonts), then
    the .ttf / .otf files in models/fonts."""
    return list(dict.fromkeys([*PACK_FONTS, *font_choices()]))


def wrapped_lines(text: str, font, room: int) -> list[str]:
    """The pack's word wrap: words added while the line's width so far (each word's box right edge
    plus a space's) stays within `room`; a word that does not fit starts a new line (the first
    one too, leaving an empty line before it)."""
    lines, line, used = [], [], 0
    space = font.getbbox(" ")[2]
    for word in text.split():
        word_width = font.getbbox(word)[2]
        if used + word_width <= room:
            line.append(word)
            used += word_width + space
        else:
            lines.append(" ".join(line))
            line, used = [word], word_width
    if line:
        lines.append(" ".join(line))
    return lines


class CreateTextMask(Node):
    """Text drawn on black, as an image and a mask (its red channel), as KJNodes' Create Text Mask
    draws it (with PIL): the words wrapped to width - 2 x text_x, each line font_size below the
    last from (text_x, text_y), in font_color. When start_rotation and end_rotation differ, frame
    i is turned counter-clockwise by start_rotation + i x (end - start) / (frames - 1) degrees about
    the last line's centre (equal ones turn nothing, as in the pack). invert gives 1 - both. The
    font is a .ttf / .otf file in models/fonts; the pack's own fonts (FreeMono.ttf ...) are drawn
    with PIL's default font at font_size unless put in models/fonts. The picture is drawn once and
    turned for each frame (the pack draws the same picture each frame), and lines wholly off the
    canvas are not drawn (they show nothing). Refused: a colour PIL does not know, a rotation over
    one frame (the pack divides by 0), a rotation of no text, and a line on the canvas too large for
    Pillow to draw (named font_size; the pack fails there)."""
    category = "KJNodes/text"
    invert: bool = Bool(False)
    frames: int = Int(1, min=1, max=4096, resource="batch")
    text_x: int = Int(0, min=0, max=4096)
    text_y: int = Int(0, min=0, max=4096)
    font_size: int = Int(32, min=8, max=4096)
    font_color: str = Text("white")
    text: str = Text("HELLO!", multiline=True)
    font: str = Choice(text_mask_fonts, "FreeMono.ttf")
    width: int = Int(512, min=16, max=4096, resource="width")
    height: int = Int(512, min=16, max=4096, resource="height")
    start_rotation: int = Int(0, min=0, max=359)
    end_rotation: int = Int(0, min=-359, max=359)
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("CreateTextMask",))

    def _picture(self, font, lines):
        """The unrotated text picture (the pack draws the same one for every frame) and the centre
        a rotation turns about: the last line's. A line whose ink box lies wholly outside the
        canvas is measured, not drawn (it draws nothing there; the rotation only turns what is
        inside)."""
        from PIL import Image, ImageDraw
        picture = Image.new("RGB", (self.width, self.height), "black")
        draw = ImageDraw.Draw(picture)
        top, center = self.text_y, None
        for i, line in enumerate(lines):
            center = (self.text_x + font.getlength(line) / 2, top + self.font_size / 2)
            try:  # ligatures off, as the pack asks where Pillow can (with raqm)
                features, box = ["-liga"], font.getbbox(line, features=["-liga"])
            except (KeyError, ValueError, OSError):
                features, box = None, font.getbbox(line)
            left, upper, right, lower = box[0] + self.text_x, box[1] + top, box[2] + self.text_x, box[3] + top
            if right > 0 and lower > 0 and left < self.width and upper < self.height:
                with drawn_within_pillows_limit("font_size", f"line {i + 1} of the text ({len(line)} characters) at "
                                                             f"font_size {self.font_size} is {box[2] - box[0]}x"
                                                             f"{box[3] - box[1]} pixels, more than Pillow draws: "
                                                             "expected a smaller font_size or shorter words in text"):
                    draw.text((self.text_x, top), line, font=font, fill=self.font_color, features=features)
            top += self.font_size
        return picture, center

    def run(self):
        import numpy as np
        import torch
        from PIL import ImageColor
        try:
            ImageColor.getrgb(self.font_color)
        except ValueError:
            raise NodeInputError("font_color", f"{self.font_color!r} is not a colour: expected a name like "
                                               "\"white\" or one like \"#ff8000\"") from None
        turning = self.start_rotation != self.end_rotation
        if turning and self.frames < 2:
            raise NodeInputError("frames", "a rotation (start_rotation != end_rotation) needs 2 frames or more")
        font = text_font(self.font, self.font_size)
        lines = wrapped_lines(self.text, font, self.width - 2 * self.text_x)
        if turning and not lines:
            raise NodeInputError("text", "empty: a rotation turns about the last line, and there is none")
        picture, center = self._picture(font, lines)
        images = torch.empty(self.frames, self.height, self.width, 3)
        masks = torch.empty(self.frames, self.height, self.width)
        rotation = self.start_rotation
        step = (self.end_rotation - self.start_rotation) / (self.frames - 1) if turning else 0
        for i in range(self.frames):
            progress(i, self.frames)
            if turning or i == 0:  # the pack's float32 / 255, written into the batch
                frame = picture.rotate(rotation, center=center) if turning else picture
                np.divide(np.asarray(frame), np.float32(255.0), out=images[i].numpy(), dtype=np.float32)
                rotation += step  # added up frame by frame, as the pack does (its floats, to the last bit)
            else:  # unturned frames are all the first
                images[i] = images[0]
            masks[i] = images[i, ..., 0]
        progress(self.frames, self.frames)
        if self.invert:  # 1 - x in place: -x + 1 is the same float
            images.neg_().add_(1.0)
            masks.neg_().add_(1.0)
        return images, masks


class MaskOrImageToWeight(Node):
    """The mean of each mask, or of each image, as KJNodes' Mask Or Image To Weight gives it: a
    list of numbers ('tensor': a float32 tensor of them; the pack wraps it in a tuple) and the same
    as a list of texts. Nothing connected gives empty lists; both connected is refused, as in the
    pack. Left out: 'pandas series' (pandas is not a dependency here) and 'string' (the pack fails
    on it): both are refused naming output_type."""
    category = "KJNodes/weights"
    output_type: str = Choice(("list", "pandas series", "tensor", "string"), "list")
    images: IMAGE = None
    masks: MASK = None
    outputs = {"FLOAT": FLOAT, "STRING": STRING}
    comfy = ComfyAlias(("MaskOrImageToWeight",), optional=("images", "masks"))

    def run(self):
        import torch
        if self.images is not None and self.masks is not None:
            raise NodeInputError("masks", "both masks and images are connected: expected one of them only")
        if self.output_type not in ("list", "tensor"):
            raise NodeInputError("output_type", f"{self.output_type!r} is not built here: expected 'list' or "
                                                "'tensor'")
        batch = self.masks if self.masks is not None else self.images
        means = [item.mean().item() for item in batch] if batch is not None else []
        values = torch.tensor(means, dtype=torch.float32) if self.output_type == "tensor" else means
        return values, [str(v) for v in means]


def _flat_values(values, name: str) -> list:
    """FloatToMask's values: one number, a list or tensor of them, or a list of lists (flattened)."""
    if isinstance(values, (list, tuple)) and values and all(isinstance(item, list) for item in values):
        values = [v for item in values for v in item]
    return _numbers(values, name)


class FloatToMask(Node):
    """A batch of flat masks, one per number, each filled with it, as KJNodes' Float To Mask makes
    them: one number, a list of numbers (a list of lists is flattened) or a tensor. An empty list
    is refused (the pack fails on it); the masks are checked against the memory before they are
    made. At most 16384 pixels a side here (the pack sets no bound)."""
    category = "KJNodes/masking/generate"
    input_values: FLOAT
    width: int = Int(100, min=1, max=MAX_SIZE, resource="width")
    height: int = Int(100, min=1, max=MAX_SIZE, resource="height")
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("FloatToMask",), force_input=("input_values",))

    def run(self):
        import torch
        values = _flat_values(self.input_values, "input_values")
        if not values:
            raise NodeInputError("input_values", "an empty list: expected a number for each mask")
        check_run_memory("input_values", f"{len(values)} values make as many {self.width}x{self.height} masks",
                         images=Size(math.ceil(len(values) / 3), self.height, self.width))  # a mask is 1/3 an image
        return torch.tensor(values, dtype=torch.float32)[:, None, None].expand(-1, self.height, self.width).clone()


# -- images (nodes/image_nodes.py) ---------------------------------------------------------------


def grid_of(rows: list[list[tuple[str, object]]]):
    """Images joined side by side in each row, the rows one above the other (the pack's torch.cat),
    each mismatch refused naming the input."""
    import torch
    joined = []
    for row in rows:
        first_name, first = row[0][0], _image(row[0][1], row[0][0])
        for name, image in row[1:]:
            image = _image(image, name)
            if image.shape[0] != first.shape[0] or image.shape[1] != first.shape[1] or \
                    image.shape[3] != first.shape[3]:
                raise NodeInputError(name, f"{tuple(image.shape)} (batch, height, width, channels) beside "
                                           f"{first_name}'s {tuple(first.shape)}: expected the same batch, height "
                                           "and channels in a row")
        joined.append((first_name, torch.cat([image for _, image in row], dim=2)))
    for name, row in joined[1:]:
        top_name, top = joined[0]
        if row.shape[0] != top.shape[0] or row.shape[2] != top.shape[2] or row.shape[3] != top.shape[3]:
            raise NodeInputError(name, f"its row is {tuple(row.shape)} (batch, height, width, channels), "
                                       f"{top_name}'s {tuple(top.shape)}: expected rows of the same batch, width "
                                       "and channels")
    return torch.cat([row for _, row in joined], dim=1)


def _grid_estimate(inputs: dict, names: list[list[str]]) -> Estimate:
    """A grid's size from its images' (unknown while any is)."""
    sizes = [[inputs.get(name) for name in row] for row in names]
    if any(size is None for row in sizes for size in row):
        return Estimate(None)
    return Estimate(Size(sizes[0][0].batch, sum(row[0].height for row in sizes),
                         sum(size.width for size in sizes[0])))


class ImageGridComposite2x2(Node):
    """Four images in a 2x2 grid, as KJNodes' Image Grid Composite 2x2 joins them: image1 image2 on
    top, image3 image4 below. Images in a row must match in batch, height and channels, and the
    rows in width."""
    category = "KJNodes/image"
    image1: IMAGE
    image2: IMAGE
    image3: IMAGE
    image4: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageGridComposite2x2",))
    ROWS = [["image1", "image2"], ["image3", "image4"]]

    @classmethod
    def estimate(cls, widgets, inputs):
        return _grid_estimate(inputs, cls.ROWS)

    def run(self):
        return grid_of([[(name, getattr(self, name)) for name in row] for row in self.ROWS])


class ImageGridComposite3x3(Node):
    """Nine images in a 3x3 grid, as KJNodes' Image Grid Composite 3x3 joins them: image1-3 on top,
    image4-6 in the middle, image7-9 below. Images in a row must match in batch, height and
    channels, and the rows in width."""
    category = "KJNodes/image"
    image1: IMAGE
    image2: IMAGE
    image3: IMAGE
    image4: IMAGE
    image5: IMAGE
    image6: IMAGE
    image7: IMAGE
    image8: IMAGE
    image9: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageGridComposite3x3",))
    ROWS = [["image1", "image2", "image3"], ["image4", "image5", "image6"], ["image7", "image8", "image9"]]

    @classmethod
    def estimate(cls, widgets, inputs):
        return _grid_estimate(inputs, cls.ROWS)

    def run(self):
        return grid_of([[(name, getattr(self, name)) for name in row] for row in self.ROWS])


class ImageAndMaskPreview(Node):
    """Preview an image, a mask, or the mask laid over the image, as KJNodes' Image And Mask
    Preview does: the mask in mask_color ("r, g, b", "r, g, b, a", "#rrggbb[aa]" or a name; its
    alpha scales the mask) at mask_opacity, composited over the image (the mask's picture resized
    to the image's size, as ComfyUI's composite; an RGBA image gives the colour an alpha of 1).
    With pass_through the result is given on composite and not shown; without, it is shown, and
    given too (the pack then gives nothing there). Neither input connected, or an empty batch, is
    refused."""
    category = "KJNodes/masking"
    output_node = True
    mask_opacity: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    mask_color: str = Text("255, 255, 255")
    pass_through: bool = Bool(False)
    image: IMAGE = None
    mask: MASK = None
    outputs = {"composite": IMAGE}
    comfy = ComfyAlias(("ImageAndMaskPreview",), optional=("image", "mask"))

    def _composite(self):
        import torch
        mask = _masks(self.mask, "mask")
        color = kj_color(self.mask_color, "mask_color")
        weight = mask * self.mask_opacity * (color[3] / 255.0 if len(color) == 4 else 1.0)
        picture = torch.tensor([c / 255 for c in color[:3]], dtype=mask.dtype).expand(*mask.shape, 3).clone()
        image = _image(self.image, "image")
        if image.shape[-1] > 3:  # ComfyUI's image_alpha_fix: the colour gets an opaque alpha
            picture = torch.cat([picture, torch.ones_like(picture[..., :1])], dim=-1)
        return _core(ImageCompositeMasked, destination=image, source=picture[..., :image.shape[-1]], x=0, y=0,
                     resize_source=True, mask=weight)

    def run(self):
        if self.image is None and self.mask is None:
            raise NodeInputError("image", "neither image nor mask is connected: expected one or both to preview")
        for name, batch in (("image", self.image), ("mask", self.mask)):
            if batch is not None:
                _filled(_image(batch, name) if name == "image" else _masks(batch, name), name, name + "s")
        if self.image is None:
            shown = _masks(self.mask, "mask")[..., None].expand(-1, -1, -1, 3)
        elif self.mask is None:
            shown = _image(self.image, "image")
        else:
            shown = self._composite()
        if not self.pass_through:
            preview(shown)
        return shown
