"""ComfyUI-KJNodes' (kijai's) backend nodes beyond those in nodes/pack_nodes.py, under the pack's
class names, inputs and outputs: its constants (INTConstant, FloatConstant, StringConstant,
StringConstantMultiline, BOOLConstant); batches (GetImageRangeFromBatch, GetLatentRangeFromBatch,
InsertImagesToBatchIndexed, ReplaceImagesInBatch, ImageBatchMulti, MaskBatchMulti, the indexed and
reversed batches, ImageBatchRepeatInterleaving, the pass-throughs); ImageConcanate (sic) and
ImageConcatMulti; ImagePadKJ and ImageResizeKJv2; GrowMaskWithBlur, ResizeMask and
CreateShapeMask; ColorMatch (its 'mkl', 'hm' and 'hm-mkl-hm' methods); DiffusionModelLoaderKJ
(UNETLoader with a compute dtype) and VAELoaderKJ (VAELoader); and its CUDA speed patches
(PathchSageAttentionKJ (sic), the TorchCompile* nodes, ModelPatchTorchSettings), which pass the
model on unchanged here."""

from __future__ import annotations

import functools
import io
import math

from graphflow.api import BOOLEAN, CONDITIONING, FLOAT, IMAGE, INT, LATENT, MASK, MODEL, STRING, VAE, Bool, Choice, \
    ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, Text, folders, repeated, warn
from graphflow.choices import RESIZE_METHODS
from nodes.image import MAX_SIZE, _image, _resize_image, batch_part, joined_batches
from nodes.loaders import LoadVAE, load_unet
from nodes.mask import grow_mask
from nodes.pack_nodes import counted_inputs

COMFY_PACK = "ComfyUI-KJNodes"  # the custom node pack this module's ComfyUI classes come from

KJ_INT_LIMIT = 0xffffffffffffffff  # the pack's INTConstant and FloatConstant bounds, both signs

# -- constants --------------------------------------------------------------------------------


class KJIntConstant(Node):
    """A whole number to link into several inputs, as KJNodes' INT Constant does."""
    category = "KJNodes/constants"
    value: int = Int(0, min=-KJ_INT_LIMIT, max=KJ_INT_LIMIT)
    outputs = {"value": INT}
    comfy = ComfyAlias(("INTConstant",))

    def run(self):
        return self.value


class KJFloatConstant(Node):
    """A number to link into several inputs, as KJNodes' Float Constant does: given rounded to
    6 decimals, as the pack gives it."""
    category = "KJNodes/constants"
    value: float = Float(0.0, min=-KJ_INT_LIMIT, max=KJ_INT_LIMIT, step=0.00001)
    outputs = {"value": FLOAT}
    comfy = ComfyAlias(("FloatConstant",))

    def run(self):
        return round(self.value, 6)


class KJStringConstant(Node):
    """One line of text to link into several inputs, as KJNodes' String Constant does."""
    category = "KJNodes/constants"
    string: str = Text("")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("StringConstant",))

    def run(self):
        return self.string


class KJStringConstantMultiline(Node):
    """Text to link into several inputs, as KJNodes' String Constant Multiline does (nodes/nodes.py
    at commit b37122a9): the text is read line by line and the lines are joined again with a line
    break. With strip_newlines each line's own break is dropped first, so the text comes out as
    given less one final line break; without it every line break but a final one is doubled.
    Spaces are never cut."""
    category = "KJNodes/constants"
    string: str = Text("", multiline=True)
    strip_newlines: bool = Bool(True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("StringConstantMultiline",))

    def run(self):
        lines = io.StringIO(self.string).readlines()  # each keeps its "\n", as the pack reads them
        return "\n".join(line.removesuffix("\n") if self.strip_newlines else line for line in lines)


class KJBoolConstant(Node):
    """True or false to link into several inputs, as KJNodes' BOOL Constant does."""
    category = "KJNodes/constants"
    value: bool = Bool(True)
    outputs = {"value": BOOLEAN}
    comfy = ComfyAlias(("BOOLConstant",))

    def run(self):
        return self.value


# -- batches ----------------------------------------------------------------------------------


def kj_range(count: int, start: int, frames: int, name: str) -> tuple[int, int]:
    """KJNodes' batch range of `count` items: start_index -1 takes the last `frames` (all, if
    fewer), num_frames -1 runs to the end; the end is cut to the batch. (start, end)."""
    if start == -1:
        if frames == -1:  # "the last ... to the end" names no count
            raise NodeInputError("start_index", "-1 takes the last num_frames, but num_frames is -1 (to the end): "
                                                "expected a start_index of 0 or more, or num_frames of 1 or more")
        start = max(0, count - frames)
    if not 0 <= start < count:
        raise NodeInputError("start_index", f"{start} is outside the {name} (0 to {count - 1}, or -1 for the last)")
    return start, count if frames == -1 else min(start + frames, count)


class GetImageRangeFromBatch(Node):
    """Take num_frames images (and masks) from start_index on, as KJNodes' Get Image or Mask
    Range From Batch does: start_index -1 takes the last num_frames; fewer are given when the
    batch ends first. The masks take the images' start when both are connected (as the pack
    does); an output whose input is not connected gives nothing."""
    category = "KJNodes/image"
    start_index: int = Int(0, min=-1, max=4096)
    num_frames: int = Int(1, min=1, max=4096)
    images: IMAGE = None
    masks: MASK = None
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("GetImageRangeFromBatch",))

    def run(self):
        start, images, masks = self.start_index, None, None
        if self.images is not None:
            start, end = kj_range(len(self.images), start, self.num_frames, "image batch")
            images = self.images[start:end]
        if self.masks is not None:
            start, end = kj_range(len(self.masks), start, self.num_frames, "mask batch")
            masks = self.masks[start:end]
        return images, masks


class GetLatentRangeFromBatch(Node):
    """Take num_frames latents from start_index on, as KJNodes' Get Latent Range From Batch
    does: along the batch of image latents, along the frames of video latents (B, C, T, H, W).
    start_index -1 takes the last num_frames; num_frames -1 runs to the end. Like the pack, only
    the samples are given on (no noise mask or batch indices)."""
    category = "KJNodes/latents"
    latents: LATENT
    start_index: int = Int(0, min=-1, max=4096)
    num_frames: int = Int(1, min=-1, max=4096)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("GetLatentRangeFromBatch",))

    def run(self):
        x = self.latents.get("samples") if isinstance(self.latents, dict) else None
        if x is None or x.ndim not in (4, 5):
            raise NodeInputError("latents", "expected a LATENT of image (B, C, H, W) or video (B, C, T, H, W) samples")
        video = x.ndim == 5
        start, end = kj_range(x.shape[2 if video else 0], self.start_index, self.num_frames,
                              "latent's frames" if video else "latent batch")
        return {"samples": (x[:, :, start:end] if video else x[start:end]).contiguous()}


def kj_indexes(text: str) -> list[int]:
    """KJNodes' index list: whole numbers separated by commas ("0, 1, 2")."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise NodeInputError("indexes", f"{text!r}: expected whole numbers separated by commas, like \"0, 4, 8\"") \
            from None


def _indexed(size, indexes, extra: int = 0) -> Estimate:
    """The indexed nodes' estimate: a batch of the listed indexes (plus `extra`); the input's size
    while the list is unknown or unreadable (the run then reports it)."""
    try:
        count = len(kj_indexes(indexes)) + extra
    except (NodeInputError, AttributeError):
        return Estimate(size)
    return Estimate(None if size is None else Size(count, size.height, size.width))


class InsertImagesToBatchIndexed(Node):
    """Put images_to_insert into original_images at the listed indexes, as KJNodes' Insert Images To
    Batch Indexed does. mode "replace": the n-th listed frame becomes the n-th inserted image (as
    many as there are of both; negative indexes count from the end). mode "insert": the images go
    in between, each at its index in the new, longer batch (list them in increasing order; the
    inserted images repeat when fewer than the indexes). Empty indexes pass the batch on."""
    category = "KJNodes/image"
    original_images: IMAGE
    images_to_insert: IMAGE
    indexes: str = Text("0, 1, 2", multiline=True)
    mode: str = Choice(("replace", "insert"), "replace")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("InsertImagesToBatchIndexed",), optional=("mode",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("original_images")
        if widgets.get("mode", "replace") != "insert" or widgets.get("indexes") == "":
            return Estimate(size)
        return _indexed(size, widgets.get("indexes"), size.batch if size is not None else 0)

    def run(self):
        import torch
        original, new = _image(self.original_images, "original_images"), _image(self.images_to_insert,
                                                                                "images_to_insert")
        if self.indexes == "":
            return original
        indexes = kj_indexes(self.indexes)
        if original.shape[1:] != new.shape[1:]:
            raise NodeInputError("images_to_insert", f"{new.shape[2]}x{new.shape[1]}x{new.shape[3]} images: expected "
                                                     f"original_images' {original.shape[2]}x{original.shape[1]}x"
                                                     f"{original.shape[3]}")
        count = len(original) + len(indexes)
        if self.mode == "replace":
            out = original.clone()
            for index, image in zip(indexes, new):
                if not -len(out) <= index < len(out):
                    raise NodeInputError("indexes", f"{index} is outside the batch of {len(out)}")
                out[index] = image
            return out
        if len(new) == 0:
            raise NodeInputError("images_to_insert", "an empty batch: expected at least one image to insert")
        # strictly: a repeated index would leave the originals short of frames at the end
        if any(a >= b for a, b in zip(indexes, indexes[1:])) or indexes[0] < 0 or indexes[-1] >= count:
            raise NodeInputError("indexes", f"expected increasing indexes from 0 to {count - 1} to insert at, each "
                                            "once")
        frames, taken = [], 0
        for i in range(count):
            if taken < len(indexes) and i == indexes[taken]:
                frames.append(new[taken % len(new)])
                taken += 1
            else:
                frames.append(original[i - taken])
        return torch.stack(frames)


class ReplaceImagesInBatch(Node):
    """Overwrite frames from start_index on with the replacement images (and masks), as KJNodes'
    Replace Images In Batch does: replacements of another size are first resized to the
    original's (lanczos for images, nearest-exact for masks, cropped to the aspect at the centre).
    The replacements must fit before the batch ends. An output whose original and replacement are
    not both connected gives the pack's black 64x64 placeholder."""
    category = "KJNodes/image"
    start_index: int = Int(1, min=0, max=4096)
    original_images: IMAGE = None
    replacement_images: IMAGE = None
    original_masks: MASK = None
    replacement_masks: MASK = None
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("ReplaceImagesInBatch",))

    def replaced(self, original, new, what: str, method: str):
        end = self.start_index + len(new)
        if self.start_index >= len(original) or end > len(original):
            raise NodeInputError("start_index", f"{len(new)} replacement {what} from {self.start_index} do not fit "
                                                f"in the {len(original)} original ones")
        if new.shape[1:3] != original.shape[1:3]:
            new = _resize_image(new, original.shape[2], original.shape[1], method, crop=True)
        out = original.clone()
        out[self.start_index:end] = new.to(out.dtype)
        return out

    def run(self):
        import torch
        images, masks = torch.zeros(1, 64, 64, 3), torch.zeros(1, 64, 64)
        if self.original_images is not None and self.replacement_images is not None:
            images = self.replaced(_image(self.original_images, "original_images"),
                                   _image(self.replacement_images, "replacement_images"), "images", "lanczos")
        if self.original_masks is not None and self.replacement_masks is not None:
            original, new = (m.reshape(-1, *m.shape[-2:])[..., None]  # a single [H, W] mask as a batch of one
                             for m in (self.original_masks, self.replacement_masks))
            masks = self.replaced(original, new, "masks", "nearest-exact")[..., 0]
        return images, masks


class GetImagesFromBatchIndexed(Node):
    """The images at the listed indexes ("0, 1, 2"; negative ones count from the end), in that
    order, as KJNodes' Get Images From Batch Indexed gives them."""
    category = "KJNodes/image"
    images: IMAGE
    indexes: str = Text("0, 1, 2", multiline=True)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("GetImagesFromBatchIndexed",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _indexed(inputs.get("images"), widgets.get("indexes"))

    def run(self):
        indexes = kj_indexes(self.indexes)
        count = len(self.images)
        if not all(-count <= i < count for i in indexes):
            raise NodeInputError("indexes", f"{self.indexes!r} reaches outside the batch of {count}")
        return self.images[indexes]


class GetLatentsFromBatchIndexed(Node):
    """The latents at the listed indexes, as KJNodes' Get Latents From Batch Indexed gives them:
    along the batch (latent_format BCHW), or the frames of a video latent stored BTCHW or BCTHW
    (graphflow's video latents are BCTHW). The latent's other entries are kept as they are."""
    category = "KJNodes/latents"
    latents: LATENT
    indexes: str = Text("0, 1, 2", multiline=True)
    latent_format: str = Choice(("BCHW", "BTCHW", "BCTHW"), "BCHW")
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("GetLatentsFromBatchIndexed",))

    @classmethod
    def estimate(cls, widgets, inputs):
        if widgets.get("latent_format", "BCHW") != "BCHW":  # picks a video's frames: the input's size
            return Estimate(inputs.get("latents"))
        return _indexed(inputs.get("latents"), widgets.get("indexes"))

    def run(self):
        x = self.latents.get("samples") if isinstance(self.latents, dict) else None
        axis = {"BCHW": 0, "BTCHW": 1, "BCTHW": 2}[self.latent_format]
        if x is None or x.ndim <= axis:
            raise NodeInputError("latents", f"expected a LATENT with samples laid out {self.latent_format}")
        indexes, count = kj_indexes(self.indexes), x.shape[axis]
        if not all(-count <= i < count for i in indexes):
            where = "batch" if axis == 0 else "frames"
            raise NodeInputError("indexes", f"{self.indexes!r} reaches outside the {count} {where} of the latent")
        return {**self.latents, "samples": x.index_select(axis, torch_index(indexes, count))}


def torch_index(indexes: list[int], count: int):
    """Python-style indexes (negative from the end) as a tensor for index_select."""
    import torch
    return torch.tensor([i % count for i in indexes], dtype=torch.long)


class ReverseImageBatch(Node):
    """The batch in reverse order, as KJNodes' Reverse Image Batch gives it."""
    category = "KJNodes/image"
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ReverseImageBatch",))

    def run(self):
        return self.images.flip(0)


class ImageBatchRepeatInterleaving(Node):
    """Each image repeated `repeats` times in place (0, 1 -> 0, 0, 1, 1), as KJNodes' Image Batch
    Repeat Interleaving does, with the mask repeated alike; without a mask, one that is 1 on the
    first of each image's copies and 0 elsewhere."""
    category = "KJNodes/image"
    images: IMAGE
    repeats: int = Int(1, min=1, max=4096)
    mask: MASK = None
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("ImageBatchRepeatInterleaving",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return repeated(inputs.get("images"), widgets.get("repeats"))

    def run(self):
        images = self.images.repeat_interleave(self.repeats, dim=0)
        if self.mask is not None:
            return images, self.mask.repeat_interleave(self.repeats, dim=0)
        mask = images.new_zeros(images.shape[:3])
        mask[::self.repeats] = 1.0
        return images, mask


class ImagePass(Node):
    """Pass the image on unchanged (nothing when unconnected), as KJNodes' ImagePass does."""
    category = "KJNodes/image"
    image: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImagePass",))

    def run(self):
        return self.image


class ModelPassThrough(Node):
    """Pass the model on unchanged (nothing when unconnected), as KJNodes' ModelPassThrough does: a stand-in
    for a bypassed input of a Set node."""
    category = "KJNodes/misc"
    model: MODEL = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelPassThrough",))

    def run(self):
        return self.model


class CondPassThrough(Node):
    """Pass positive and negative conditioning on unchanged, as KJNodes' CondPassThrough does."""
    category = "KJNodes/misc"
    positive: CONDITIONING = None
    negative: CONDITIONING = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("CondPassThrough",))

    def run(self):
        return self.positive, self.negative


class MaskBatchMulti(Node):
    """Join mask_1 ... mask_<inputcount> into one batch, as KJNodes' Mask Batch Multi does: a mask
    of another size is first resized to mask_1's (bicubic, stretched). Up to 20 inputs here (the
    pack allows 1000)."""
    category = "KJNodes/masking"
    inputcount: int = Int(2, min=2, max=20)
    mask_1: MASK
    mask_2: MASK
    mask_3: MASK = None
    mask_4: MASK = None
    mask_5: MASK = None
    mask_6: MASK = None
    mask_7: MASK = None
    mask_8: MASK = None
    mask_9: MASK = None
    mask_10: MASK = None
    mask_11: MASK = None
    mask_12: MASK = None
    mask_13: MASK = None
    mask_14: MASK = None
    mask_15: MASK = None
    mask_16: MASK = None
    mask_17: MASK = None
    mask_18: MASK = None
    mask_19: MASK = None
    mask_20: MASK = None
    outputs = {"masks": MASK}
    comfy = ComfyAlias(("MaskBatchMulti",))

    @classmethod
    def estimate(cls, widgets, inputs):
        count = widgets.get("inputcount", 2)
        return joined_batches([inputs.get(f"mask_{i}") for i in range(1, count + 1)]) \
            if isinstance(count, int) else Estimate(None)

    def run(self):
        import torch
        parts = [self.mask_1.reshape(-1, *self.mask_1.shape[-2:])]  # a single [H, W] mask as a batch of one
        for _, mask in counted_inputs(self, "mask_"):
            mask = mask.reshape(-1, *mask.shape[-2:])
            if mask.shape[1:] != parts[0].shape[1:]:
                mask = _mask_to(mask, parts[0].shape[2], parts[0].shape[1], "bicubic")
            parts.append(mask.to(parts[0].dtype))
        return torch.cat(parts)


class ImageBatchMulti(Node):
    """Join image_1 ... image_<inputcount> into one batch, as KJNodes' Image Batch Multi does:
    each next image is added as ImageBatch adds image2 (resized, centre-cropped, bilinear, to
    the first image's size). Up to 20 inputs here (the pack allows 1000)."""
    category = "KJNodes/image"
    inputcount: int = Int(2, min=2, max=20)
    image_1: IMAGE
    image_2: IMAGE
    image_3: IMAGE = None
    image_4: IMAGE = None
    image_5: IMAGE = None
    image_6: IMAGE = None
    image_7: IMAGE = None
    image_8: IMAGE = None
    image_9: IMAGE = None
    image_10: IMAGE = None
    image_11: IMAGE = None
    image_12: IMAGE = None
    image_13: IMAGE = None
    image_14: IMAGE = None
    image_15: IMAGE = None
    image_16: IMAGE = None
    image_17: IMAGE = None
    image_18: IMAGE = None
    image_19: IMAGE = None
    image_20: IMAGE = None
    outputs = {"images": IMAGE}
    comfy = ComfyAlias(("ImageBatchMulti",))

    @classmethod
    def estimate(cls, widgets, inputs):
        count = widgets.get("inputcount", 2)
        return joined_batches([inputs.get(f"image_{i}") for i in range(1, count + 1)]) \
            if isinstance(count, int) else Estimate(None)

    def run(self):
        import torch
        first = _image(self.image_1, "image_1")
        parts = [first]
        for name, image in counted_inputs(self, "image_"):
            parts.append(batch_part(first, _image(image, name), name, "image_1"))
        return torch.cat(parts)


def _repeat_last(images, count: int):
    """The batch made `count` long by repeating its last image."""
    import torch
    return torch.cat([images, images[-1:].expand(count - len(images), -1, -1, -1)]) if len(images) < count else images


class ImageConcanate(Node):
    """Put image2 beside image1 (right, left) or under or above it (down, up), as KJNodes' Image
    Concatenate (ImageConcanate, the pack's spelling) does as of 2025: the shorter batch repeats
    its last image; match_image_size first resizes image2 (lanczos) to image1's height (right,
    left) or width (down, up), keeping image2's aspect (the other side rounded down); an image
    without alpha gets an opaque one when the other has it. Without match_image_size the sides
    that meet must be the same size."""
    category = "KJNodes/image"
    image1: IMAGE
    image2: IMAGE
    direction: str = Choice(("right", "down", "left", "up"), "right")
    match_image_size: bool = Bool(True)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageConcanate",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _concat_estimate([inputs.get("image1"), inputs.get("image2")], widgets.get("direction", "right"),
                                widgets.get("match_image_size", True))

    def run(self):
        return kj_concat(_image(self.image1, "image1"), _image(self.image2, "image2"), self.direction,
                         self.match_image_size)


def kj_concat(a, b, direction: str, match: bool, size_of=None, name: str = "image2"):
    """ImageConcanate's join of b onto a; with match, b takes the height (or width) of `size_of`
    (a [B, H, W, C] shape; a's own by default), as ImageConcatMulti keeps its first image's."""
    import torch
    count = max(len(a), len(b))
    a, b = _repeat_last(a, count), _repeat_last(b, count)
    across = direction in ("right", "left")
    if match:
        size, _ = kj_concat_size(a.shape[:3], b.shape[:3], across, True, size_of)
        if min(size) < 1:
            raise NodeInputError(name, f"a {b.shape[2]}x{b.shape[1]} image would be resized to {size[0]}x{size[1]} "
                                       "to match the first image")
        b = _resize_image(b, *size, "lanczos")
    if a.shape[-1] != b.shape[-1]:  # the one with fewer channels gets opaque ones
        more = max(a.shape[-1], b.shape[-1])
        a, b = (torch.cat([t, t.new_ones(*t.shape[:-1], more - t.shape[-1])], -1) for t in (a, b))
    side = 1 if across else 2
    if a.shape[side] != b.shape[side]:
        raise NodeInputError(name, f"{'height' if across else 'width'} {b.shape[side]}, the image it joins has "
                                   f"{a.shape[side]}: expected the same, or match_image_size on")
    first, second = (a, b.to(a.dtype)) if direction in ("right", "down") else (b.to(a.dtype), a)
    return torch.cat([first, second], dim=2 if across else 1)


def kj_concat_size(a, b, across: bool, match: bool, size_of=None):
    """ImageConcanate's sizes for b (batch, height, width) joined onto a: b's (width, height) after
    match_image_size, which takes the height (across: right, left) or width of `size_of` (a's by
    default) and keeps b's aspect, the other side rounded down; and the result's (batch, height,
    width): the longer batch, the joined sides added up."""
    (count, height, width), (b_count, b_height, b_width) = a[:3], b[:3]
    if match:
        to_height, to_width = (size_of or a)[1:3]
        aspect = b_width / b_height
        b_width, b_height = (int(to_height * aspect), to_height) if across else (to_width, int(to_width / aspect))
    joined = (height, width + b_width) if across else (height + b_height, width)
    return (b_width, b_height), (max(count, b_count), *joined)


def _concat_estimate(sizes, direction, match) -> Estimate:
    """The concatenation nodes' estimate: each next size joined onto the result so far (unknown
    while any input's size or a widget is)."""
    if any(s is None for s in sizes) or not isinstance(direction, str) or not isinstance(match, bool):
        return Estimate(None)
    first = out = (sizes[0].batch, sizes[0].height, sizes[0].width)
    for size in sizes[1:]:
        _, out = kj_concat_size(out, (size.batch, size.height, size.width), direction in ("right", "left"), match,
                                first)
    return Estimate(Size(*out))


class ImageConcatMulti(Node):
    """Join image_1 ... image_<inputcount> one after another in one direction, as KJNodes' Image
    Concatenate Multi does: each next image is joined onto the result so far as ImageConcanate
    joins image2, with match_image_size matching it to image_1's height (right, left) or width
    (down, up). Up to 20 inputs here (the pack allows 1000)."""
    category = "KJNodes/image"
    inputcount: int = Int(2, min=2, max=20)
    image_1: IMAGE
    image_2: IMAGE
    direction: str = Choice(("right", "down", "left", "up"), "right")
    match_image_size: bool = Bool(False)
    image_3: IMAGE = None
    image_4: IMAGE = None
    image_5: IMAGE = None
    image_6: IMAGE = None
    image_7: IMAGE = None
    image_8: IMAGE = None
    image_9: IMAGE = None
    image_10: IMAGE = None
    image_11: IMAGE = None
    image_12: IMAGE = None
    image_13: IMAGE = None
    image_14: IMAGE = None
    image_15: IMAGE = None
    image_16: IMAGE = None
    image_17: IMAGE = None
    image_18: IMAGE = None
    image_19: IMAGE = None
    image_20: IMAGE = None
    outputs = {"images": IMAGE}
    comfy = ComfyAlias(("ImageConcatMulti",))

    @classmethod
    def estimate(cls, widgets, inputs):
        count = widgets.get("inputcount", 2)
        if not isinstance(count, int):
            return Estimate(None)
        return _concat_estimate([inputs.get(f"image_{i}") for i in range(1, count + 1)],
                                widgets.get("direction", "right"), widgets.get("match_image_size", False))

    def run(self):
        out = first = _image(self.image_1, "image_1")
        for name, image in counted_inputs(self, "image_"):
            out = kj_concat(out, _image(image, name), self.direction, self.match_image_size, first.shape, name)
        return out


# -- resize and pad ---------------------------------------------------------------------------


def kj_color(text: str, name: str) -> list[int]:
    """A KJNodes colour widget as the pack's string_to_color (utility/utility.py @2acdef17) reads it,
    0-255: "r, g, b" or "r, g, b, a" (all within 0..1 read as fractions of 255), "#rrggbb" /
    "#rrggbbaa" (the # may be left out), a colour name, or one grey value; each clipped to 0-255.
    What the pack reads as black with a warning is refused here."""
    from PIL import ImageColor
    bare = text.lstrip("#")
    try:
        if "," in text:
            values = [float(part.strip()) for part in text.split(",")]
            color = [int(v * 255) for v in values] if all(0 <= v <= 1 for v in values) else [int(v) for v in values]
        elif text.startswith("#") or (bare.isalnum() and not bare.replace(".", "", 1).isdigit()):
            if len(bare) in (6, 8) and all(c in "0123456789ABCDEFabcdef" for c in bare):
                color = [int(bare[i:i + 2], 16) for i in range(0, len(bare), 2)]
            else:
                color = list(ImageColor.getrgb(text))
        else:
            value = float(text.strip())
            color = [int(value * 255) if 0 <= value <= 1 else int(value)] * 3
    except (ValueError, OverflowError):
        color = []
    if len(color) not in (3, 4):
        raise NodeInputError(name, f"{text!r} is not a colour: expected \"r, g, b\" or \"r, g, b, a\" (0-255), "
                                   "\"#rrggbb\" or a colour name")
    return [min(max(v, 0), 255) for v in color]


def kj_pad(image, mask, left: int, right: int, top: int, bottom: int, mode: str, color: str,
           color_name: str = "color"):
    """ImagePadKJ's padding of an image batch (and its mask): "color" fills with the colour (read
    by kj_color; an alpha only on an image that has one), "edge" each side with the mean colour
    of the image's edge row or column there (the left and right sides over the corners),
    "edge_pixel" repeats the edge pixels outwards. A given mask (at the
    image's size) is padded by repeating its edges; without one the mask is 1 on the padding and
    0 on the image. (image, mask)."""
    import torch
    import torch.nn.functional as F
    b, h, w, c = image.shape
    if mode == "edge_pixel":
        out = F.pad(image.movedim(-1, 1), (left, right, top, bottom), mode="replicate").movedim(1, -1)
    else:
        out = image.new_zeros(b, h + top + bottom, w + left + right, c)
        if mode == "color":
            fill = [v / 255.0 for v in kj_color(color, color_name)]
            if len(fill) > max(c, 3):  # the pack fails to fill 3 channels with 4 values
                raise NodeInputError(color_name, f"{color!r} has an alpha, but the image has {c} channels: expected "
                                                 "\"r, g, b\"")
            out[:] = torch.tensor(fill + [1.0] * (c - len(fill)), dtype=image.dtype)[:c]
        else:  # edge: in the pack's order, so the left and right means cover the corners
            out[:, :top] = image[:, :1].mean(dim=2, keepdim=True)
            out[:, top + h:] = image[:, -1:].mean(dim=2, keepdim=True)
            out[:, :, :left] = image[:, :, :1].mean(dim=1, keepdim=True)
            out[:, :, left + w:] = image[:, :, -1:].mean(dim=1, keepdim=True)
        out[:, top:top + h, left:left + w] = image
    if mask is not None:
        out_mask = F.pad(mask[:, None], (left, right, top, bottom), mode="replicate")[:, 0]
    else:
        out_mask = image.new_ones(b, h + top + bottom, w + left + right)
        out_mask[:, top:top + h, left:left + w] = 0
    return out, out_mask


def _mask_to(mask, width: int, height: int, method: str, crop: bool = False):
    """A MASK batch resized as an IMAGE is (each of its 3 copies alike)."""
    return _resize_image(mask[..., None].expand(-1, -1, -1, 3), width, height, method, crop=crop)[..., 0]


class ImagePadKJ(Node):
    """Pad images (and a mask), as KJNodes' Pad Image KJ does: by left, right, top and bottom, each
    plus extra_padding; or, with target_width and target_height connected, centred in that size
    (the image first shrunk by extra_padding, lanczos). pad_mode "color" fills with color, read as
    the pack's ImagePadKJ (image_nodes.py @016f9c14) reads it: "r, g, b" (0-255, or all 0..1;
    with an alpha ", a" for an RGBA image), "#rrggbb", a colour name or one grey value; "edge"
    with each edge's mean colour, "edge_pixel" repeats the edge pixels; "pillarbox_blur" is
    refused here. The mask is 1 on the padding, 0 on the image; a given mask is
    resized to the image (nearest-exact) and padded by repeating its edges."""
    category = "KJNodes/image"
    image: IMAGE
    left: int = Int(0, min=0, max=MAX_SIZE)
    right: int = Int(0, min=0, max=MAX_SIZE)
    top: int = Int(0, min=0, max=MAX_SIZE)
    bottom: int = Int(0, min=0, max=MAX_SIZE)
    extra_padding: int = Int(0, min=0, max=MAX_SIZE)
    pad_mode: str = Choice(("edge", "edge_pixel", "color", "pillarbox_blur"), "edge")
    color: str = Text("0, 0, 0")
    mask: MASK = None
    target_width: INT = None
    target_height: INT = None
    outputs = {"images": IMAGE, "masks": MASK}
    comfy = ComfyAlias(("ImagePadKJ",))

    def run(self):
        if self.pad_mode == "pillarbox_blur":
            raise NodeInputError("pad_mode", "pillarbox_blur is not supported by graphflow: expected edge, edge_pixel "
                                             "or color")
        image, mask, extra = _image(self.image, "image"), self.mask, self.extra_padding
        _, h, w, _ = image.shape
        if self.target_width is not None and self.target_height is not None:
            for name in ("target_width", "target_height"):  # linked INTs have no bounds of their own
                if getattr(self, name) > MAX_SIZE:
                    raise NodeInputError(name, f"{getattr(self, name)} is more than {MAX_SIZE} pixels")
            if extra > 0:
                if extra >= min(w, h):
                    raise NodeInputError("extra_padding", f"{extra} would shrink the {w}x{h} image to nothing")
                w, h = w - extra, h - extra
                image = _resize_image(image, w, h, "lanczos")
            left, top = (self.target_width - w) // 2, (self.target_height - h) // 2
            right, bottom = self.target_width - w - left, self.target_height - h - top
            if min(left, top, right, bottom) < 0:
                raise NodeInputError("target_width", f"{self.target_width}x{self.target_height} is smaller than "
                                                     f"the {w}x{h} image: expected a size to pad it to")
        else:
            left, right, top, bottom = (v + extra for v in (self.left, self.right, self.top, self.bottom))
            # the check before the run cannot tell whether the targets are linked, so it sees none of this
            if max(w + left + right, h + top + bottom) > MAX_SIZE:
                raise NodeInputError("extra_padding" if extra else "left", f"the {w}x{h} image would be padded to "
                                     f"{w + left + right}x{h + top + bottom}: expected at most {MAX_SIZE} a side")
        if mask is not None and mask.shape[-2:] != (h, w):
            mask = _mask_to(mask, w, h, "nearest-exact")
        return kj_pad(image, mask, left, right, top, bottom, self.pad_mode, self.color)


KEEP_PROPORTION = ("stretch", "resize", "pad", "pad_edge", "pad_edge_pixel", "crop", "pillarbox_blur", "total_pixels")
CROP_POSITIONS = ("center", "top", "bottom", "left", "right")


def kj_v2_plan(ow: int, oh: int, width: int, height: int, keep: str, position: str, divisible_by: int):
    """ImageResizeKJv2's geometry for an ow x oh image: (crop box (x, y, w, h) or None, resized
    size (w, h), padding (left, right, top, bottom))."""
    pads = (0, 0, 0, 0)
    if keep in ("resize", "total_pixels") or keep.startswith("pad"):
        if keep == "total_pixels":  # width x height pixels in the image's aspect
            new_w, new_h = int(math.sqrt(width * height * ow / oh)), int(math.sqrt(width * height * oh / ow))
        elif width == 0 or height == 0:  # a 0 side follows the other (both 0: the image's size)
            new_w = width or (round(ow * height / oh) if height else ow)
            new_h = height or (round(oh * width / ow) if width else oh)
        else:
            ratio = min(width / ow, height / oh)
            new_w, new_h = round(ow * ratio), round(oh * ratio)
        if keep.startswith("pad"):  # the rest of width x height, placed by crop_position
            free_w, free_h = max((width or new_w) - new_w, 0), max((height or new_h) - new_h, 0)
            left = {"left": 0, "right": free_w}.get(position, free_w // 2)
            top = {"top": 0, "bottom": free_h}.get(position, free_h // 2)
            pads = (left, free_w - left, top, free_h - top)
        width, height = new_w, new_h
    else:
        width, height = width or ow, height or oh
    if divisible_by > 1:
        width, height = width - width % divisible_by, height - height % divisible_by
    crop = None
    if keep == "crop" and width > 0 and height > 0:
        if ow / oh > width / height:
            cw, ch = round(oh * width / height), oh
        else:
            cw, ch = ow, round(ow * height / width)
        x = {"left": 0, "right": ow - cw}.get(position, (ow - cw) // 2)
        y = {"top": 0, "bottom": oh - ch}.get(position, (oh - ch) // 2)
        crop = (x, y, cw, ch)
    if any(pads) and divisible_by > 1:  # the padded size is rounded up on the right and bottom
        left, right, top, bottom = pads
        right += -(width + left + right) % divisible_by
        bottom += -(height + top + bottom) % divisible_by
        pads = (left, right, top, bottom)
    return crop, (width, height), pads


class ImageResizeKJv2(Node):
    """Resize images (and a mask), as KJNodes' Resize Image v2 does. keep_proportion: "stretch" to
    width x height (a 0 side keeps the image's); "resize" to the largest size of the image's aspect
    inside it (a 0 side follows the other); "crop" cuts the image to width x height's aspect at
    crop_position first; "pad" / "pad_edge" / "pad_edge_pixel" resize as "resize" and then pad to
    width x height, the image placed by crop_position, padding with pad_color (read as ImagePadKJ
    reads its color), the edge means or the edge pixels (as ImagePadKJ); "total_pixels" keeps the
    image's aspect with about width x height pixels. The size is then cut down to multiples of
    divisible_by (a padded size rounded up). "pillarbox_blur" and the nvidia_rtx_vsr method are
    refused here; device is ignored. The mask output is the resized (and padded) mask; without one,
    1 on the padding, or a 64x64 zero placeholder when nothing was padded, as the pack gives."""
    category = "KJNodes/image"
    image: IMAGE
    width: int = Int(512, min=0, max=MAX_SIZE)
    height: int = Int(512, min=0, max=MAX_SIZE)
    upscale_method: str = Choice(RESIZE_METHODS + ("nvidia_rtx_vsr",), "nearest-exact")
    keep_proportion: str = Choice(KEEP_PROPORTION, "stretch")
    pad_color: str = Text("0, 0, 0")
    crop_position: str = Choice(CROP_POSITIONS, "center")
    divisible_by: int = Int(2, min=0, max=512)
    mask: MASK = None
    device: str = Choice(("cpu", "gpu"), "cpu")
    outputs = {"IMAGE": IMAGE, "width": INT, "height": INT, "mask": MASK}
    comfy = ComfyAlias(("ImageResizeKJv2",), optional=("device",))

    @classmethod
    def estimate(cls, widgets, inputs):
        image, size = inputs.get("image"), [widgets.get(name) for name in ("width", "height", "divisible_by")]
        if image is None or not all(isinstance(v, int) for v in size):
            return Estimate(None)
        _, (width, height), (left, right, top, bottom) = kj_v2_plan(
            image.width, image.height, *size[:2], widgets.get("keep_proportion", "stretch"),
            widgets.get("crop_position", "center"), size[2])
        return Estimate(Size(image.batch, height + top + bottom, width + left + right))

    def run(self):
        import torch
        if self.keep_proportion == "pillarbox_blur":
            raise NodeInputError("keep_proportion", "pillarbox_blur is not supported by graphflow: expected stretch, "
                                                    "resize, pad, pad_edge, pad_edge_pixel, crop or total_pixels")
        if self.upscale_method == "nvidia_rtx_vsr":
            raise NodeInputError("upscale_method", "nvidia_rtx_vsr (NVIDIA's video super resolution) is not supported "
                                                   "by graphflow: expected one of " + ", ".join(RESIZE_METHODS))
        image, mask = _image(self.image, "image"), self.mask
        _, oh, ow, _ = image.shape
        if mask is not None and mask.shape[-2:] == (64, 64) and (oh, ow) != (64, 64):
            mask = None  # ComfyUI's 64x64 placeholder for "no mask", as the pack reads it
        if mask is not None and mask.shape[-2:] != (oh, ow):
            mask = _mask_to(mask, ow, oh, "bilinear")
        crop, (width, height), pads = kj_v2_plan(ow, oh, self.width, self.height, self.keep_proportion,
                                                 self.crop_position, self.divisible_by)
        if width < 1 or height < 1:
            raise NodeInputError("divisible_by" if self.divisible_by > 1 else "width",
                                 f"the {ow}x{oh} image would be resized to {width}x{height}: expected at least 1x1")
        if crop is not None:
            x, y, cw, ch = crop
            image = image[:, y:y + ch, x:x + cw]
            mask = None if mask is None else mask[:, y:y + ch, x:x + cw]
        image = _resize_image(image, width, height, self.upscale_method)
        mask = None if mask is None else _mask_to(mask, width, height, self.upscale_method)
        if any(pads):
            mode = {"pad_edge": "edge", "pad_edge_pixel": "edge_pixel"}.get(self.keep_proportion, "color")
            image, mask = kj_pad(image, mask, *pads, mode, self.pad_color, "pad_color")
        if mask is None:
            mask = torch.zeros(64, 64)
        return image, image.shape[2], image.shape[1], mask


# -- masks ------------------------------------------------------------------------------------


def kj_blur_mask(mask, radius: float):
    """A mask blurred as the pack blurs it: as an 8-bit picture (values cut, not rounded) through
    PIL's GaussianBlur(radius), back to 0..1."""
    import numpy as np
    import torch
    from PIL import Image, ImageFilter
    levels = np.clip(255.0 * mask.cpu().numpy(), 0, 255).astype(np.uint8)
    blurred = Image.fromarray(levels).filter(ImageFilter.GaussianBlur(radius))
    return torch.from_numpy(np.asarray(blurred).astype(np.float32) / 255.0)


class GrowMaskWithBlur(Node):
    """Grow (or with a negative expand, shrink) each mask of a batch, then blur, as KJNodes' Grow
    Mask With Blur does. flip_input inverts the input first. Growing is GrowMask's (tapered_corners:
    the cross step); each next mask grows by incremental_expandrate more (away from 0). fill_holes
    fills enclosed holes (the mask made 0/1). With lerp_alpha < 1 each mask is mixed with the one
    before it (alpha * this + (1 - alpha) * previous); with decay_factor < 1, decay * previous is
    added and the mask scaled back to a maximum of 1. blur_radius > 0 blurs each mask as an 8-bit
    picture (PIL's Gaussian blur). Gives the mask and 1 - mask."""
    category = "KJNodes/masking"
    mask: MASK
    expand: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    incremental_expandrate: float = Float(0.0, min=0.0, max=100.0, step=0.1)
    tapered_corners: bool = Bool(True)
    flip_input: bool = Bool(False)
    blur_radius: float = Float(0.0, min=0.0, max=100.0, step=0.1)
    lerp_alpha: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    decay_factor: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    fill_holes: bool = Bool(False)
    outputs = {"mask": MASK, "mask_inverted": MASK}
    comfy = ComfyAlias(("GrowMaskWithBlur",), optional=("fill_holes",))

    def run(self):
        import scipy.ndimage
        import torch
        masks = self.mask.reshape(-1, *self.mask.shape[-2:]).float()
        if self.flip_input:
            masks = 1.0 - masks
        out, previous, expand = [], None, float(self.expand)
        for m in masks:
            m = grow_mask(m[None], round(expand), self.tapered_corners)[0]
            # the step grows away from 0 (an expand of 0 grows)
            expand += -self.incremental_expandrate if expand < 0 else self.incremental_expandrate
            if self.fill_holes:
                m = torch.from_numpy(scipy.ndimage.binary_fill_holes((m > 0).numpy()).astype("float32"))
            if previous is not None and self.lerp_alpha < 1.0:
                m = self.lerp_alpha * m + (1 - self.lerp_alpha) * previous
            if previous is not None and self.decay_factor < 1.0:
                m = m + self.decay_factor * previous
                m = m / m.max() if m.max() > 0 else m
            previous = m
            out.append(m)
        if self.blur_radius > 0:
            out = [kj_blur_mask(m, self.blur_radius) for m in out]
        result = torch.stack(out)
        return result, 1.0 - result


def kj_mask_size(ow: int, oh: int, width: int, height: int, keep: bool) -> tuple[int, int]:
    """ResizeMask's new size for an ow x oh mask: width x height, or with keep the largest of the
    mask's aspect inside it (a 0 side: the mask's own)."""
    if keep:
        ratio = min((width or ow) / ow, (height or oh) / oh)
        width, height = round(ow * ratio), round(oh * ratio)
    return width, height


class ResizeMask(Node):
    """Resize masks, as KJNodes' Resize Mask does: to width x height, or with keep_proportions to
    the largest size of the mask's aspect inside it (a 0 side: the mask's own); crop "center" cuts
    to the new aspect first instead of stretching. Resampling is ImageScale's. Gives the masks
    with their width and height."""
    category = "KJNodes/masking"
    mask: MASK
    width: int = Int(512, min=0, max=MAX_SIZE)
    height: int = Int(512, min=0, max=MAX_SIZE)
    keep_proportions: bool = Bool(False)
    upscale_method: str = Choice(RESIZE_METHODS, "nearest-exact")
    crop: str = Choice(("disabled", "center"), "disabled")
    outputs = {"mask": MASK, "width": INT, "height": INT}
    comfy = ComfyAlias(("ResizeMask",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, width, height = inputs.get("mask"), widgets.get("width"), widgets.get("height")
        if size is None or not isinstance(width, int) or not isinstance(height, int):
            return Estimate(None)
        width, height = kj_mask_size(size.width, size.height, width, height, widgets.get("keep_proportions", False))
        return Estimate(Size(size.batch, height, width))

    def run(self):
        mask = self.mask[None] if self.mask.ndim == 2 else self.mask
        _, oh, ow = mask.shape
        width, height = kj_mask_size(ow, oh, self.width, self.height, self.keep_proportions)
        if width < 1 or height < 1:
            raise NodeInputError("width" if width < 1 else "height", f"the {ow}x{oh} mask would be resized to "
                                 f"{width}x{height}: expected at least 1x1 (a 0 side only with keep_proportions)")
        out = _mask_to(mask, width, height, self.upscale_method, crop=self.crop == "center")
        return out, out.shape[2], out.shape[1]


class CreateShapeMask(Node):
    """Draw a white circle, square or triangle on black masks, as KJNodes' Create Shape Mask does
    (with PIL): centred at location_x, location_y, shape_width x shape_height, each next frame
    grow pixels bigger (or smaller; never below 0). The circle and square fill the box from centre
    - size // 2 to centre + size // 2, both ends included; the triangle points up from the box's
    bottom corners. Gives the masks and 1 - masks."""
    category = "KJNodes/masking/generate"
    shape: str = Choice(("circle", "square", "triangle"), "circle")
    frames: int = Int(1, min=1, max=4096, resource="batch")
    location_x: int = Int(256, min=0, max=4096)
    location_y: int = Int(256, min=0, max=4096)
    grow: int = Int(0, min=-512, max=512)
    frame_width: int = Int(512, min=16, max=4096, resource="width")
    frame_height: int = Int(512, min=16, max=4096, resource="height")
    shape_width: int = Int(128, min=8, max=4096)
    shape_height: int = Int(128, min=8, max=4096)
    outputs = {"mask": MASK, "mask_inverted": MASK}
    comfy = ComfyAlias(("CreateShapeMask",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageDraw
        x, y, out = self.location_x, self.location_y, []
        for i in range(self.frames):
            w, h = max(0, self.shape_width + i * self.grow) // 2, max(0, self.shape_height + i * self.grow) // 2
            picture = Image.new("L", (self.frame_width, self.frame_height), 0)
            draw = ImageDraw.Draw(picture)
            if self.shape == "circle":
                draw.ellipse([(x - w, y - h), (x + w, y + h)], fill=255)
            elif self.shape == "square":
                draw.rectangle([(x - w, y - h), (x + w, y + h)], fill=255)
            else:
                draw.polygon([(x, y - h), (x - w, y + h), (x + w, y + h)], fill=255)
            out.append(torch.from_numpy(np.asarray(picture).astype(np.float32) / 255.0))
        masks = torch.stack(out)
        return masks, 1.0 - masks


# -- colour ----------------------------------------------------------------------------------

COLOR_MATCH_METHODS = ("mkl", "hm", "reinhard", "mvgd", "hm-mvgd-hm", "hm-mkl-hm")


class ColorReference:
    """A reference image's statistics for the colour matches, each computed once, when first asked
    for: a batch's targets all matched to one reference reuse them."""

    def __init__(self, image):
        self.image = image

    @functools.cached_property
    def histograms(self) -> list:
        """Per channel: the distinct values and their cumulative shares of the pixels."""
        import numpy as np
        r = self.image.double().numpy()
        out = []
        for c in range(r.shape[-1]):
            values, counts = np.unique(r[..., c], return_counts=True)
            out.append((values, np.cumsum(counts) / counts.sum()))
        return out

    @functools.cached_property
    def moments(self):
        """The mean colour and the unbiased colour covariance, float64."""
        import torch
        r = self.image.reshape(-1, 3).double()
        return r.mean(0), torch.cov(r.T)


def _reference(ref) -> ColorReference:
    return ref if isinstance(ref, ColorReference) else ColorReference(ref)


def histogram_match(target, ref):
    """target [H, W, C] with each channel's histogram matched to ref's (an image or its
    ColorReference), as color-matcher's 'hm': every distinct value goes to the reference value at
    its cumulative share (linearly between the reference's distinct values)."""
    import numpy as np
    import torch
    t, histograms = target.double().numpy(), _reference(ref).histograms
    out = np.empty_like(t)
    for c in range(t.shape[-1]):
        _, where, counts = np.unique(t[..., c], return_inverse=True, return_counts=True)
        ref_values, ref_shares = histograms[c]
        mapped = np.interp(np.cumsum(counts) / counts.sum(), ref_shares, ref_values)
        out[..., c] = mapped[where.reshape(-1)].reshape(t.shape[:-1])
    return torch.from_numpy(out).to(target.dtype)


def mkl_transfer(target, ref):
    """The colours of target [H, W, 3] moved onto ref's (an image or its ColorReference) by the
    Monge-Kantorovich linearisation (Pitie et al.), as the color-matcher library's 'mkl' does:
    x -> (x - mean_t) T + mean_r with the symmetric T = St^-1/2 (St^1/2 Sr St^1/2)^1/2 St^-1/2 (S:
    unbiased colour covariances), which gives the result ref's mean and covariance. Float64
    throughout."""
    import torch
    t = target.reshape(-1, 3).double()
    mean_r, cov_r = _reference(ref).moments
    cov_t = torch.cov(t.T)
    values, vectors = torch.linalg.eigh(cov_t)
    root = values.clamp(min=0).sqrt()
    # the library adds a double's spacing before inverting, so a flat channel gives no division by 0
    inv_root = 1.0 / (root + torch.finfo(torch.float64).eps)
    c = root[:, None] * (vectors.T @ cov_r @ vectors) * root[None, :]
    c_values, c_vectors = torch.linalg.eigh(c)
    c_root = c_vectors @ torch.diag(c_values.clamp(min=0).sqrt()) @ c_vectors.T
    transfer = vectors @ (inv_root[:, None] * c_root * inv_root[None, :]) @ vectors.T
    out = (t - t.mean(0)) @ transfer + mean_r
    return out.reshape(target.shape).to(target.dtype)


class ColorMatch(Node):
    """Match image_target's colours to image_ref's, as KJNodes' Color Match does with the
    color-matcher library: 'mkl' (Monge-Kantorovich linearisation: the result gets the reference's
    mean colour and colour covariance), 'hm' (each channel's histogram matched to the reference's)
    and 'hm-mkl-hm' (the three in turn) are built in; 'reinhard', 'mvgd' and 'hm-mvgd-hm' are
    refused here. Each target image is matched to the reference of
    the same index (a single reference serves all); strength mixes the result with the target
    (1: all of it; above 1 goes further), then it is clipped to 0..1. multithread does nothing
    here."""
    category = "KJNodes/image"
    image_ref: IMAGE
    image_target: IMAGE
    method: str = Choice(COLOR_MATCH_METHODS, "mkl")
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    multithread: bool = Bool(True)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ColorMatch",), optional=("strength", "multithread"))

    def run(self):
        import torch
        steps = {"mkl": (mkl_transfer,), "hm": (histogram_match,),
                 "hm-mkl-hm": (histogram_match, mkl_transfer, histogram_match)}.get(self.method)
        if steps is None:
            raise NodeInputError("method", f"{self.method!r} is not built into graphflow: expected mkl, hm or "
                                           "hm-mkl-hm")
        target, ref = _image(self.image_target, "image_target"), _image(self.image_ref, "image_ref")
        if self.strength == 0:
            return target
        for name, image in (("image_target", target), ("image_ref", ref)):
            if image.shape[-1] != 3:
                raise NodeInputError(name, f"{image.shape[-1]} channels: expected RGB images")
            if mkl_transfer in steps and image.shape[1] * image.shape[2] < 2:  # one pixel has no colour covariance
                raise NodeInputError(name, f"{image.shape[2]}x{image.shape[1]} images: expected at least 2 pixels for "
                                           f"{self.method}")
        if len(ref) != 1 and len(ref) < len(target):
            raise NodeInputError("image_ref", f"{len(ref)} images for {len(target)} targets: expected one, or one "
                                              "per target image")
        out, refs = [], [ColorReference(r) for r in ref[:len(target)]]
        for i, image in enumerate(target):
            matched = image
            for step in steps:
                matched = step(matched, refs[0 if len(refs) == 1 else i])
            out.append(image + self.strength * (matched - image))
        return torch.stack(out).float().clamp(0, 1)


# -- CUDA speed patches -----------------------------------------------------------------------

SAGE_ATTENTION_MODES = ("disabled", "auto", "sageattn_qk_int8_pv_fp16_cuda", "sageattn_qk_int8_pv_fp16_triton",
                        "sageattn_qk_int8_pv_fp8_cuda", "sageattn_qk_int8_pv_fp8_cuda++", "sageattn3",
                        "sageattn3_per_block_mean")


class PathchSageAttentionKJ(Node):
    """KJNodes' Patch Sage Attention KJ (the pack's spelling), which swaps ComfyUI's attention for
    the SageAttention CUDA kernels: here the model is passed on unchanged, with a warning when a
    mode is chosen. graphflow picks its attention backend itself (see `graphflow --help`); the
    images differ from SageAttention's only by its quantisation error."""
    category = "KJNodes/experimental"
    model: MODEL
    sage_attention: str = Choice(SAGE_ATTENTION_MODES, "disabled")
    allow_compile: bool = Bool(False)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("PathchSageAttentionKJ",), optional=("allow_compile",))

    def run(self):
        if self.sage_attention != "disabled":
            warn(f"SageAttention ({self.sage_attention}) is not used: the model is passed on unchanged and runs "
                 "with graphflow's own attention backend")
        return self.model


COMPILE_MODES = ("default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead")


class TorchCompileModelWanVideoV2(Node):
    """KJNodes' TorchCompileModelWanVideoV2, which torch.compiles a Wan model's blocks: here the
    model is passed on unchanged, with a warning. To compile in graphflow use the core
    TorchCompileModel node or the --compile option; the images are the same either way."""
    category = "KJNodes/torchcompile"
    model: MODEL
    backend: str = Choice(("inductor", "cudagraphs"), "inductor")
    fullgraph: bool = Bool(False)
    mode: str = Choice(COMPILE_MODES, "default")
    dynamic: bool = Bool(False)
    compile_transformer_blocks_only: bool = Bool(True)
    dynamo_cache_size_limit: int = Int(64, min=0, max=1024)
    force_parameter_static_shapes: bool = Bool(True)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("TorchCompileModelWanVideoV2",), optional=("force_parameter_static_shapes",))

    def run(self):
        return uncompiled(self.model)


class DiffusionModelLoaderKJ(Node):
    """Load a diffusion model as UNETLoader does, as KJNodes' Diffusion Model Loader KJ does:
    weight_dtype fp8_* as there, fp16 / bf16 / fp32 a copy of the weights in that dtype;
    compute_dtype as ModelComputeDtype. Its CUDA switches (patch_cublaslinear, sage_attention,
    enable_fp16_accumulation) change nothing here but a warning; an extra_state_dict to merge in
    (a VACE module, say) is refused."""
    category = "KJNodes/experimental"
    model_name: str = Choice(lambda: folders.list_models("diffusion_models"))
    weight_dtype: str = Choice(("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2", "fp16", "bf16", "fp32"),
                               "default")
    compute_dtype: str = Choice(("default", "fp16", "bf16", "fp32"), "default")
    patch_cublaslinear: bool = Bool(False)
    sage_attention: str = Choice(SAGE_ATTENTION_MODES, "disabled")
    enable_fp16_accumulation: bool = Bool(False)
    extra_state_dict: STRING = None
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("DiffusionModelLoaderKJ",))

    @classmethod
    def fingerprint(cls, model_name, **widgets):
        return folders.model_state("diffusion_models", model_name)

    def run(self):
        from graphflow.models.speed import with_compute_dtype
        if self.extra_state_dict is not None:
            raise NodeInputError("extra_state_dict", "merging another state dict into the model is not supported by "
                                                     "graphflow: expected it unconnected")
        switches = [name for name, on in (("patch_cublaslinear", self.patch_cublaslinear),
                                          ("sage_attention", self.sage_attention != "disabled"),
                                          ("enable_fp16_accumulation", self.enable_fp16_accumulation)) if on]
        if switches:
            warn(", ".join(switches) + " changes nothing in graphflow: the model runs with its own attention backend")
        fp8 = self.weight_dtype.startswith("fp8")
        model = load_unet(self.model_name, self.weight_dtype if fp8 else "default", "model_name")
        if not fp8 and self.weight_dtype != "default":
            model = with_compute_dtype(model, self.weight_dtype)
        return model if self.compute_dtype == "default" else with_compute_dtype(model, self.compute_dtype)


class VAELoaderKJ(LoadVAE):
    """Load a VAE as VAELoader does, as KJNodes' VAELoader KJ does. Its device and weight_dtype
    choices are not followed: graphflow runs the VAE on its device in the dtype it picks there
    (a warning says so when they ask for a dtype other than the pack's fp32 default or the CPU)."""
    category = "KJNodes/vae"
    device: str = Choice(("main_device", "cpu"), "main_device")
    weight_dtype: str = Choice(("bf16", "fp16", "fp32"), "fp32")
    comfy = ComfyAlias(("VAELoaderKJ",))

    @classmethod
    def fingerprint(cls, vae_name, **widgets):
        return super().fingerprint(vae_name)

    def run(self):
        if self.device != "main_device" or self.weight_dtype != "fp32":
            warn(f"device {self.device} and weight_dtype {self.weight_dtype} are not followed: the VAE runs where "
                 "and in the dtype graphflow picks")
        return super().run()


def uncompiled(value, what: str = "model"):
    """A KJNodes torch.compile node's input given on as it is, with a warning."""
    warn(f"the {what} is passed on uncompiled: use the TorchCompileModel node or --compile to compile it")
    return value


class TorchCompileModelAdvanced(Node):
    """KJNodes' TorchCompileModelAdvanced, which torch.compiles a model's transformer blocks: here
    the model is passed on unchanged, with a warning. To compile in graphflow use the core
    TorchCompileModel node or the --compile option; the images are the same either way."""
    category = "KJNodes/torchcompile"
    model: MODEL
    backend: str = Choice(("inductor", "cudagraphs"), "inductor")
    fullgraph: bool = Bool(False)
    mode: str = Choice(COMPILE_MODES, "default")
    dynamic: str = Choice(("auto", "true", "false"), "auto")
    compile_transformer_blocks_only: bool = Bool(True)
    dynamo_cache_size_limit: int = Int(64, min=0, max=1024)
    debug_compile_keys: bool = Bool(False)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("TorchCompileModelAdvanced",))

    def run(self):
        return uncompiled(self.model)


class TorchCompileModelQwenImage(Node):
    """KJNodes' TorchCompileModelQwenImage, which torch.compiles a Qwen-Image model's blocks: here
    the model is passed on unchanged, with a warning (use TorchCompileModel or --compile)."""
    category = "KJNodes/torchcompile"
    model: MODEL
    backend: str = Choice(("inductor", "cudagraphs"), "inductor")
    fullgraph: bool = Bool(False)
    mode: str = Choice(COMPILE_MODES, "default")
    dynamic: bool = Bool(False)
    compile_transformer_blocks_only: bool = Bool(True)
    dynamo_cache_size_limit: int = Int(64, min=0, max=1024)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("TorchCompileModelQwenImage",))

    def run(self):
        return uncompiled(self.model)


class TorchCompileModelFluxAdvancedV2(Node):
    """KJNodes' TorchCompileModelFluxAdvancedV2, which torch.compiles a Flux model's double and
    single blocks: here the model is passed on unchanged, with a warning (use TorchCompileModel or
    --compile)."""
    category = "KJNodes/torchcompile"
    model: MODEL
    backend: str = Choice(("inductor", "cudagraphs"), "inductor")
    fullgraph: bool = Bool(False)
    mode: str = Choice(COMPILE_MODES, "default")
    double_blocks: bool = Bool(True)
    single_blocks: bool = Bool(True)
    dynamic: bool = Bool(False)
    dynamo_cache_size_limit: int = Int(64, min=0, max=1024)
    force_parameter_static_shapes: bool = Bool(True)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("TorchCompileModelFluxAdvancedV2",),
                       optional=("dynamo_cache_size_limit", "force_parameter_static_shapes"))

    def run(self):
        return uncompiled(self.model)


class TorchCompileVAE(Node):
    """KJNodes' TorchCompileVAE, which torch.compiles a VAE's encoder and decoder: here the VAE is
    passed on unchanged, with a warning."""
    category = "KJNodes/torchcompile"
    vae: VAE
    backend: str = Choice(("inductor", "cudagraphs"), "inductor")
    fullgraph: bool = Bool(False)
    mode: str = Choice(COMPILE_MODES, "default")
    compile_encoder: bool = Bool(True)
    compile_decoder: bool = Bool(True)
    outputs = {"VAE": VAE}
    comfy = ComfyAlias(("TorchCompileVAE",))

    def run(self):
        return uncompiled(self.vae, "VAE")


class ModelPatchTorchSettings(Node):
    """KJNodes' Model Patch Torch Settings, which turns on CUDA fp16 matmul accumulation while the
    model runs: here the model is passed on unchanged (with a warning when it is asked for);
    graphflow keeps torch's default accumulation."""
    category = "KJNodes/experimental"
    model: MODEL
    enable_fp16_accumulation: bool = Bool(False)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("ModelPatchTorchSettings",))

    def run(self):
        if self.enable_fp16_accumulation:
            warn("fp16 accumulation is not turned on: the model is passed on unchanged")
        return self.model
