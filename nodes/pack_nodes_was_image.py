"""WAS Node Suite's (WASasquatch/was-node-suite-comfyui, WAS_Node_Suite.py at commit
c6cadcca870488fdb1f82d2f1082e0d4de64eb53) image nodes, under the pack's class names, inputs,
defaults and outputs: Image Blend, Image Blend by Mask, Image Blank, Image Resize, Image Flip,
Image Rotate, Image Crop Location, Image Crop Square Location, Image Paste Crop, Image Filter
Adjustments, Image Levels Adjustment, Image Threshold, Image Remove Color, Image Select Channel,
Image Mix RGB Channels, Image Padding, Image Stitch, Image Transpose, Image Edge Detection Filter,
Image High Pass Filter, Image Bloom Filter, Images to RGB, Tensor Batch to Image, Image Save and
Load Image Batch; Image Bounds, Inset Image Bounds, Bounded Image Crop, Bounded Image Crop with
Mask, Bounded Image Blend (and with Mask); the masks' Mask Invert, Masks Add, Masks Subtract, Masks
Combine Regions, Mask Dilate Region, Mask Erode Region, Mask Fill Holes, Mask Threshold Region,
Mask Gaussian Region, Mask Floor Region, Mask Ceiling Region, Mask Batch to Mask, Convert Masks to
Images and Image to Latent Mask; and Latent Upscale by Factor (WAS). Pillow (and scipy for the
masks' regions) does the work, as in the pack, on its 8-bit pictures; the pack's single-image nodes
work image by image here. The pack gives some masks as [B, 1, H, W] (or fails on a batch); here
masks are always [B, H, W]. (The text, number and other nodes are in nodes/pack_nodes_was.py, whose
docstring names what is left out.)

Later layouts (the suite's 2024-2025 WAS_Node_Suite.py, read from the class sources quoted by a
documentation mirror of its nodes): Image Save follows it (extension adds jpg and bmp; dpi after
extension, optimize_image after quality; outputs images and files), reading the mid-2023 saves
without dpi and optimize_image; Load Image Batch follows it (the random mode, the optional
filename_text_extension). Compared and unchanged: Image Resize, Image Crop Location, Image Blend
by Mask, Mask Dilate Region, Mask Threshold Region. The others follow c6cadcc.
"""

from __future__ import annotations

import os
import random
import re
import uuid

from graphflow.api import IMAGE, LATENT, MASK, STRING, Choice, ComfyAlias, Estimate, Float, Int, Node, \
    NodeInputError, Size, Text, folders, safe_join, show, socket_type, subfolder_name, warn
from graphflow.folders import UnsafePathError
from nodes.image import MAX_SIZE
from nodes.pack_nodes_was import output_folder, parse_tokens, remember

COMFY_PACK = "WAS Node Suite"  # the custom node pack this module's ComfyUI classes come from

# -- images ---------------------------------------------------------------------------------------

CROP_DATA = socket_type("CROP_DATA", "#9e9e9e", "WAS Node Suite's crop: ((width, height), (left, top, right, bottom))")


def _pictures(images, input_name: str) -> list:
    """Each image of a batch as the pack's 8-bit RGB picture (255 x value, clipped, truncated)."""
    from graphflow.images import image_to_pil

    if getattr(images, "dim", lambda: 0)() != 4:
        raise NodeInputError(input_name, "expected an image batch [B, H, W, C]")
    return [image_to_pil(image[..., :3]).convert("RGB") for image in images]


def picture_pairs(image_a, image_b, same_size: bool = True) -> tuple[list, list]:
    """image_a's and image_b's pictures (_pictures), image_b one or as many as image_a (WAS's
    two-image nodes take image_b's i-th, or its only, picture for image_a's i-th), of one size."""
    first, second = _pictures(image_a, "image_a"), _pictures(image_b, "image_b")
    if len(second) not in (1, len(first)):
        raise NodeInputError("image_b", f"{len(second)} images for {len(first)}: expected 1 or as many")
    if same_size and first[0].size != second[0].size:
        raise NodeInputError("image_b", f"{second[0].size} is not image_a's size {first[0].size}")
    return first, second


def _batch(pictures) -> "torch.Tensor":
    import torch

    from graphflow.images import pil_to_image

    sizes = {p.size for p in pictures}
    if len(sizes) > 1:
        raise NodeInputError("image", f"the images come out in different sizes {sorted(sizes)}: a batch needs one")
    return torch.cat([pil_to_image(p) for p in pictures], dim=0)


class WasImageBlend(Node):
    """image_b laid over image_a at blend_percentage (0: image_a, 1: image_b), as WAS's Image
    Blend does with Pillow's composite through a uniform 8-bit mask. Batches are blended image by
    image (a single image_b over each of image_a); the two must be one size."""
    category = "WAS Suite/Image"
    image_a: IMAGE
    image_b: IMAGE
    blend_percentage: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Image Blend",))

    def run(self):
        from PIL import Image, ImageOps

        first, second = picture_pairs(self.image_a, self.image_b)
        mask = ImageOps.invert(Image.new("L", first[0].size, round(self.blend_percentage * 255)))
        return _batch([Image.composite(a, second[i % len(second)], mask) for i, a in enumerate(first)])


RESAMPLING = {"lanczos": 1, "nearest": 0, "bilinear": 2, "bicubic": 3}  # Pillow's Resampling numbers


def rescaled_size(width: int, height: int, mode: str, factor: float, resize_width: int, resize_height: int):
    """Image Resize's target: "rescale" the size times factor (cut to whole pixels), "resize"
    resize_width x resize_height each rounded up to a multiple of 8."""
    if mode == "rescale":
        return int(width * factor), int(height * factor)
    return -(-resize_width // 8) * 8, -(-resize_height // 8) * 8


class WasImageResize(Node):
    """Resize each image with Pillow, as WAS's Image Resize does: mode "rescale" by
    rescale_factor, "resize" to resize_width x resize_height rounded up to multiples of 8;
    supersample "true" first resizes to 8 times the target, then down to it; it is refused when
    that 8 times picture would hold more than 16384 x 16384 pixels (a target of more than 2048 x
    2048 pixels), never skipped silently."""
    category = "WAS Suite/Image/Transform"
    image: IMAGE
    mode: str = Choice(("rescale", "resize"), "rescale")
    supersample: str = Choice(("true", "false"), "true")
    resampling: str = Choice(tuple(RESAMPLING), "lanczos")
    rescale_factor: float = Float(2, min=0.01, max=16.0, step=0.01)
    resize_width: int = Int(1024, min=1, max=48000)
    resize_height: int = Int(1536, min=1, max=48000)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Resize",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        try:
            width, height = rescaled_size(size.width, size.height, widgets["mode"], widgets["rescale_factor"],
                                          widgets["resize_width"], widgets["resize_height"])
        except (AttributeError, KeyError, TypeError):
            return Estimate(size)
        # the supersampled picture: 64 times the pixels, 4 bytes each in Pillow
        working = width * height * 64 * 4 if widgets.get("supersample") == "true" else 0
        return Estimate(Size(size.batch, max(height, 1), max(width, 1)), memory=working)

    def run(self):
        from PIL import Image

        pictures = _pictures(self.image, "image")
        width, height = rescaled_size(*pictures[0].size, self.mode, self.rescale_factor, self.resize_width,
                                      self.resize_height)
        if not (1 <= width <= MAX_SIZE and 1 <= height <= MAX_SIZE):
            raise NodeInputError("rescale_factor" if self.mode == "rescale" else "resize_width",
                                 f"the result would be {width}x{height}: expected sides of 1 to {MAX_SIZE}")
        if self.supersample == "true" and 64 * width * height > MAX_SIZE ** 2:  # also when estimate() knew no size
            raise NodeInputError("supersample", f"the supersampled picture would be {width * 8}x{height * 8}, over "
                                 f"{MAX_SIZE}x{MAX_SIZE} pixels: set it \"false\" or resize less")
        resample = Image.Resampling(RESAMPLING[self.resampling])
        out = []
        for picture in pictures:
            if self.supersample == "true":
                picture = picture.resize((width * 8, height * 8), resample=resample)
            out.append(picture.resize((width, height), resample=resample))
        return _batch(out)


def _crop_to_eights(pictures, box):
    """The pack's crop: each picture cut to box, then resized (Pillow's default, bicubic) to
    whole multiples of 8; with the crop data ((width, height), box) of the cut."""
    crops = [p.crop(box) for p in pictures]
    width, height = crops[0].size
    if width < 8 or height < 8:
        raise NodeInputError("image", f"the crop is {width}x{height}: resized to multiples of 8 it would be empty")
    return _batch([c.resize((width // 8 * 8, height // 8 * 8)) for c in crops]), ((width, height), box)


class WasImageCropLocation(Node):
    """Cut the image to left..right x top..bottom (clamped to the image), then resize it to
    multiples of 8, as WAS's Image Crop Location does; also gives the crop data for Image Paste
    Crop."""
    category = "WAS Suite/Image/Process"
    image: IMAGE
    top: int = Int(0, min=0, max=10000000)
    left: int = Int(0, min=0, max=10000000)
    right: int = Int(256, min=0, max=10000000)
    bottom: int = Int(256, min=0, max=10000000)
    outputs = {"IMAGE": IMAGE, "CROP_DATA": CROP_DATA}
    comfy = ComfyAlias(("Image Crop Location",))

    def run(self):
        pictures = _pictures(self.image, "image")
        width, height = pictures[0].size
        box = (max(self.left, 0), max(self.top, 0), min(self.right, width), min(self.bottom, height))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise NodeInputError("right" if box[2] <= box[0] else "bottom",
                                 f"the crop {box} of a {width}x{height} image is empty: expected left < right and "
                                 "top < bottom inside the image")
        return _crop_to_eights(pictures, box)


def linear_ramp(size: tuple[int, int], direction: str, white_ratio: float):
    """The pack's edge ramp (an L picture): black, then from (1 - white_ratio) of the way along
    rising to white at the far edge, across (horizontal) or down (vertical)."""
    import numpy as np
    from PIL import Image

    length = size[0] if direction == "horizontal" else size[1]
    black_end = int(length * (1 - white_ratio))
    steps = np.arange(length)
    ramp = np.where(steps <= black_end, 0, ((steps - black_end) / max(length - black_end, 1) * 255).astype(int))
    ramp = ramp.astype(np.uint8)
    levels = np.tile(ramp, (size[1], 1)) if direction == "horizontal" else np.tile(ramp[:, None], (1, size[0]))
    return Image.fromarray(levels, "L")


def crop_data_of(value, source: str):
    """A CROP_DATA value ((width, height), (left, top, right, bottom)), checked: a NodeInputError
    naming crop_data where it is not one (`source`: the node that makes it, for the message)."""
    try:
        (width, height), box = value
        if len(box) != 4 or width < 1 or height < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise NodeInputError("crop_data", f"expected ((width, height), (left, top, right, bottom)) from {source}, "
                                          f"got {value!r}") from None
    return value


def paste_crop(picture, crop, crop_data, blending: float, sharpening: int):
    """Image Paste Crop of one picture: the crop resized to its crop size (and sharpened),
    pasted back at its box through a mask that fades in over `blending` of the crop from each
    side that is not at the picture's edge; (result, mask)."""
    from PIL import Image, ImageChops, ImageFilter, ImageOps

    (width, height), (left, top, right, bottom) = crop_data
    crop = crop.resize((width, height))
    for _ in range(int(sharpening)):
        crop = crop.filter(ImageFilter.SHARPEN)
    mask = Image.new("L", crop.size, 0)
    if top > 0:
        mask = ImageChops.screen(mask, ImageOps.flip(linear_ramp(crop.size, "vertical", blending)))
    if left > 0:
        mask = ImageChops.screen(mask, ImageOps.mirror(linear_ramp(crop.size, "horizontal", blending)))
    if right < picture.width:
        mask = ImageChops.screen(mask, linear_ramp(crop.size, "horizontal", blending))
    if bottom < picture.height:
        mask = ImageChops.screen(mask, linear_ramp(crop.size, "vertical", blending))
    full_mask = Image.new("L", picture.size, 0)
    full_mask.paste(ImageOps.invert(mask), (left, top))
    placed = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    placed.paste(crop, (left, top))
    result = Image.new("RGBA", picture.size, (0, 0, 0, 255))
    result.paste(picture, (0, 0))
    result.paste(placed, (0, 0), full_mask)
    return result.convert("RGB"), full_mask.convert("RGB")


class WasImagePasteCrop(Node):
    """Paste a crop (from Image Crop Location / Square Location, edited) back where it was cut,
    as WAS's Image Paste Crop does: resized to the crop's size, sharpened crop_sharpening times,
    its edges faded in over crop_blending of its size where they lie inside the image. Gives the
    image and the mask used (as an image)."""
    category = "WAS Suite/Image/Process"
    image: IMAGE
    crop_image: IMAGE
    crop_data: CROP_DATA
    crop_blending: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    crop_sharpening: int = Int(0, min=0, max=3)
    outputs = {"IMAGE": IMAGE, "IMAGE_2": IMAGE}
    comfy = ComfyAlias(("Image Paste Crop",))

    def run(self):
        crop_data_of(self.crop_data, "Image Crop Location / Square Location")
        pictures, crops = _pictures(self.image, "image"), _pictures(self.crop_image, "crop_image")
        if len(crops) not in (1, len(pictures)):
            raise NodeInputError("crop_image", f"{len(crops)} crops for {len(pictures)} images: expected 1 or as many")
        pasted = [paste_crop(p, crops[i % len(crops)], self.crop_data, self.crop_blending, self.crop_sharpening)
                  for i, p in enumerate(pictures)]
        return _batch([p for p, _ in pasted]), _batch([m for _, m in pasted])


def square_crop_box(width: int, height: int, x: int, y: int, size: int) -> tuple[int, int, int, int]:
    """Image Crop Square Location's box: size x size about (x, y), moved inward (as far as the
    image allows) where it passes an edge."""
    half = size // 2
    left, top = max(x - half, 0), max(y - half, 0)
    right, bottom = min(x + half, width), min(y + half, height)
    if right - left < size:
        if right < width:
            right = min(right + size - (right - left), width)
        elif left > 0:
            left = max(left - (size - (right - left)), 0)
    if bottom - top < size:
        if bottom < height:
            bottom = min(bottom + size - (bottom - top), height)
        elif top > 0:
            top = max(top - (size - (bottom - top)), 0)
    return left, top, right, bottom


class WasImageCropSquareLocation(Node):
    """Cut a size x size square about (x, y) (moved inward at the edges), then resize it to
    multiples of 8, as WAS's Image Crop Square Location does; also gives the crop data."""
    category = "WAS Suite/Image/Process"
    image: IMAGE
    x: int = Int(0, min=0, max=24576)
    y: int = Int(0, min=0, max=24576)
    size: int = Int(256, min=5, max=4096)
    outputs = {"IMAGE": IMAGE, "CROP_DATA": CROP_DATA}
    comfy = ComfyAlias(("Image Crop Square Location",))

    def run(self):
        pictures = _pictures(self.image, "image")
        box = square_crop_box(*pictures[0].size, self.x, self.y, self.size)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise NodeInputError("x", f"the square {box} lies outside the {pictures[0].size} image")
        return _crop_to_eights(pictures, box)


class WasImageFilterAdjustments(Node):
    """Adjust each image as WAS's Image Filter Adjustments does, in its order: brightness added
    and contrast multiplied (on the 0..1 values, clipped), then with Pillow on the 8-bit
    picture: saturation (ImageEnhance.Color), sharpness (ImageEnhance.Sharpness), `blur` passes
    of BLUR, a Gaussian blur, EDGE_ENHANCE_MORE laid over by edge_enhance, and DETAIL. Settings
    at their neutral values are skipped, so an image nothing changes is given as it is."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    brightness: float = Float(0.0, min=-1.0, max=1.0, step=0.01)
    contrast: float = Float(1.0, min=-1.0, max=2.0, step=0.01)
    saturation: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    sharpness: float = Float(1.0, min=-5.0, max=5.0, step=0.01)
    blur: int = Int(0, min=0, max=16)
    gaussian_blur: float = Float(0.0, min=0.0, max=1024.0, step=0.1)
    edge_enhance: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    detail_enhance: str = Choice(("false", "true"), "false")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Filter Adjustments",))

    def run(self):
        import torch

        images = self.image
        if getattr(images, "dim", lambda: 0)() != 4:
            raise NodeInputError("image", "expected an image batch [B, H, W, C]")
        return torch.cat([self.adjust(image[None]) for image in images], dim=0)

    def adjust(self, image):
        from PIL import Image, ImageEnhance, ImageFilter

        from graphflow.images import image_to_pil, pil_to_image

        if self.brightness != 0:
            image = (image + self.brightness).clamp(0.0, 1.0)
        if self.contrast != 1:
            image = (image * self.contrast).clamp(0.0, 1.0)
        picture = None

        def pil():
            return picture if picture is not None else image_to_pil(image[..., :3]).convert("RGB")

        if self.saturation != 1:
            picture = ImageEnhance.Color(pil()).enhance(self.saturation)
        if self.sharpness != 1:
            picture = ImageEnhance.Sharpness(pil()).enhance(self.sharpness)
        for _ in range(self.blur):
            picture = pil().filter(ImageFilter.BLUR)
        if self.gaussian_blur > 0:
            picture = pil().filter(ImageFilter.GaussianBlur(radius=self.gaussian_blur))
        if self.edge_enhance > 0:
            picture = pil()
            mask = Image.new("L", picture.size, round(self.edge_enhance * 255))
            picture = Image.composite(picture.filter(ImageFilter.EDGE_ENHANCE_MORE), picture, mask)
        if self.detail_enhance == "true":
            picture = pil().filter(ImageFilter.DETAIL)
        return image if picture is None else pil_to_image(picture)


class WasImageBlendByMask(Node):
    """image_a where the mask image is black, image_b where it is white (the mask's grey,
    resized to image_a), then that laid over image_a at blend_percentage, as WAS's Image Blend by
    Mask does with Pillow. Batches go image by image (a single image_b or mask serves all)."""
    category = "WAS Suite/Image"
    image_a: IMAGE
    image_b: IMAGE
    mask: IMAGE
    blend_percentage: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Blend by Mask",))

    def run(self):
        from PIL import Image, ImageOps

        from graphflow.images import image_to_pil

        first, second = _pictures(self.image_a, "image_a"), _pictures(self.image_b, "image_b")
        masks = [image_to_pil(m) for m in _mask_images(self.mask)]
        for name, items in (("image_b", second), ("mask", masks)):
            if len(items) not in (1, len(first)):
                raise NodeInputError(name, f"{len(items)} images for {len(first)}: expected 1 or as many")
        if any(b.size != first[0].size for b in second):
            raise NodeInputError("image_b", f"{second[0].size} is not image_a's size {first[0].size}")
        blend = ImageOps.invert(Image.new("L", first[0].size, round(self.blend_percentage * 255)))
        out = []
        for i, a in enumerate(first):
            mask = ImageOps.invert(masks[i % len(masks)].convert("L")).resize(a.size)
            out.append(Image.composite(a, Image.composite(a, second[i % len(second)], mask), blend))
        return _batch(out)


def _mask_images(images):
    if getattr(images, "dim", lambda: 0)() != 4:
        raise NodeInputError("mask", "expected an image batch [B, H, W, C] (the pack's mask here is an IMAGE)")
    return list(images)


class WasImageBlank(Node):
    """A picture of one colour, its sides cut down to multiples of 8, as WAS's Image Blank makes."""
    category = "WAS Suite/Image"
    width: int = Int(512, min=8, max=4096, resource="width")
    height: int = Int(512, min=8, max=4096, resource="height")
    red: int = Int(255, min=0, max=255)
    green: int = Int(255, min=0, max=255)
    blue: int = Int(255, min=0, max=255)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Blank",))

    def run(self):
        from PIL import Image

        size = (self.width // 8 * 8, self.height // 8 * 8)
        return _batch([Image.new("RGB", size, (self.red, self.green, self.blue))])


class WasImageThreshold(Node):
    """Black and white: the grey (Pillow's L) of each image at or above threshold x 255 (cut to a
    whole level) is white, as WAS's Image Threshold does. (The pack gives a one-channel tensor;
    here the grey is an RGB image.)"""
    category = "WAS Suite/Image/Process"
    image: IMAGE
    threshold: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Threshold",))

    def run(self):
        level = int(self.threshold * 255)
        return _batch([p.convert("L").point(lambda x: 255 if x >= level else 0, mode="L")
                       for p in _pictures(self.image, "image")])


class WasImageRemoveColor(Node):
    """Replace the pixels near the target colour by the replace colour, as WAS's Image Remove
    Color does: a pixel is replaced where the grey (Pillow's L) of its difference from the
    target is at most clip_threshold."""
    category = "WAS Suite/Image/Process"
    image: IMAGE
    target_red: int = Int(255, min=0, max=255)
    target_green: int = Int(255, min=0, max=255)
    target_blue: int = Int(255, min=0, max=255)
    replace_red: int = Int(255, min=0, max=255)
    replace_green: int = Int(255, min=0, max=255)
    replace_blue: int = Int(255, min=0, max=255)
    clip_threshold: int = Int(10, min=0, max=255)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Remove Color",))

    def run(self):
        from PIL import Image, ImageChops

        target = (self.target_red, self.target_green, self.target_blue)
        replace = (self.replace_red, self.replace_green, self.replace_blue)
        out = []
        for picture in _pictures(self.image, "image"):
            difference = ImageChops.difference(picture, Image.new("RGB", picture.size, target)).convert("L")
            near = difference.point(lambda x: 0 if x > self.clip_threshold else 255)
            out.append(Image.composite(Image.new("RGB", picture.size, replace), picture, near))
        return _batch(out)


class WasImageLevelsAdjustment(Node):
    """Stretch each image's 8-bit levels so black_level becomes 0 and white_level 255 (levels
    below black_level first raised to it), then Pillow's autocontrast with cutoff white_level, as
    WAS's Image Levels Adjustment does. mid_level is not used, as in the pack."""
    category = "WAS Suite/Image/Adjustment"
    image: IMAGE
    black_level: float = Float(0.0, min=0.0, max=255.0, step=0.1)
    mid_level: float = Float(127.5, min=0.0, max=255.0, step=0.1)
    white_level: float = Float(255, min=0.0, max=255.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Levels Adjustment",))

    def run(self):
        import numpy as np
        from PIL import Image, ImageOps

        if self.white_level == self.black_level:
            raise NodeInputError("white_level", "equal to black_level: expected a span of levels to stretch")
        out = []
        for picture in _pictures(self.image, "image"):
            levels = np.array(picture)
            levels[levels < self.black_level] = self.black_level  # cut to whole levels, as the pack's uint8 array
            stretched = (levels - self.black_level) * (255 / (self.white_level - self.black_level))
            picture = Image.fromarray(stretched.clip(0, 255).astype(np.uint8))
            out.append(ImageOps.autocontrast(picture, cutoff=self.white_level))
        return _batch(out)


class WasImageFlip(Node):
    """Mirror each image left-right ("horizontal") or top-bottom ("vertical"), as WAS's Image
    Flip does with Pillow's transpose."""
    category = "WAS Suite/Image/Transform"
    images: IMAGE
    mode: str = Choice(("horizontal", "vertical"), "horizontal")
    outputs = {"images": IMAGE}
    comfy = ComfyAlias(("Image Flip",))

    def run(self):
        from PIL import Image

        flip = Image.Transpose.FLIP_LEFT_RIGHT if self.mode == "horizontal" else Image.Transpose.FLIP_TOP_BOTTOM
        return _batch([p.transpose(flip) for p in _pictures(self.images, "images")])


class WasImageRotate(Node):
    """Turn each image counter-clockwise by rotation degrees (cut down to a multiple of 90), as
    WAS's Image Rotate does: "transpose" turns the picture (its sides swap at 90 and 270),
    "internal" turns it inside its frame with Pillow's rotate and the sampler (corners black)."""
    category = "WAS Suite/Image/Transform"
    images: IMAGE
    mode: str = Choice(("transpose", "internal"), "transpose")
    rotation: int = Int(0, min=0, max=360, step=90)
    sampler: str = Choice(("nearest", "bilinear", "bicubic"), "nearest")
    outputs = {"images": IMAGE}
    comfy = ComfyAlias(("Image Rotate",))

    def run(self):
        from PIL import Image

        rotation = min(self.rotation, 360) // 90 * 90
        out = []
        for picture in _pictures(self.images, "images"):
            if self.mode == "internal":
                picture = picture.rotate(rotation, Image.Resampling[self.sampler.upper()])
            else:
                for _ in range(rotation // 90):
                    picture = picture.transpose(Image.Transpose.ROTATE_90)
            out.append(picture)
        return _batch(out)


SAVE_EXTENSIONS = ("png", "jpg", "jpeg", "gif", "tiff", "webp", "bmp")
PIL_FORMATS = {"jpg": "JPEG"}  # the others are Pillow's format names in capitals


def image_save_widgets(values: list) -> list:
    """Image Save's widgets_values in the later layout (extension, dpi, quality, optimize_image,
    lossless_webp ...): a mid-2023 save (13 values) lacks dpi and optimize_image, a save between
    them one of the two (a number after quality is dpi's place: quality then lossless_webp's
    text). The missing ones take what those versions did: optimize on, and dpi the later
    default 300 (those versions wrote no resolution into the file)."""
    if len(values) == 13:
        return values[:6] + [300, values[6], "true"] + values[7:]
    if len(values) == 14 and isinstance(values[7], str):  # extension, quality, optimize_image: no dpi
        return values[:6] + [300] + values[6:]
    if len(values) == 14:  # extension, dpi, quality, lossless_webp: no optimize_image
        return values[:8] + ["true"] + values[8:]
    return values


class WasImageSave(Node):
    """Save images in the output folder as WAS's Image Save does: in output_path (tokens such as
    [time(%Y-%m-%d)] filled in; relative to the output folder, made when missing), named prefix +
    delimiter + number padded to filename_number_padding digits (number first with
    filename_number_start "true"), numbered on from the highest such file; overwrite_mode
    "prefix_as_filename" writes prefix.extension, replacing it. png embeds the workflow (with
    embed_workflow "true"); png and jpg / jpeg carry dpi; jpg / jpeg, tiff and webp take quality
    (webp lossless with lossless_webp); optimize_image is Pillow's optimize for png, jpg / jpeg,
    tiff and gif. Gives the images again and the saved files' paths (a list, as the pack gives).
    Follows the suite's later layout (dpi and optimize_image after extension and quality);
    older saves without them are read too. Differences from the pack: paths outside the output
    folder are refused; a numbered name that exists is skipped, never overwritten; gif files are
    written (the pack writes none); webp files carry no workflow; show_history (the pack's history
    database) is not kept, so only this run's images are shown; images must be connected (the
    pack's latest version, with none, shows the last saved file again: not done here)."""
    category = "WAS Suite/IO"
    output_node = True
    images: IMAGE
    output_path: str = Text("[time(%Y-%m-%d)]")
    filename_prefix: str = Text("ComfyUI")
    filename_delimiter: str = Text("_")
    filename_number_padding: int = Int(4, min=1, max=9)
    filename_number_start: str = Choice(("false", "true"), "false")
    extension: str = Choice(SAVE_EXTENSIONS, "png")
    dpi: int = Int(300, min=1, max=2400)
    quality: int = Int(100, min=1, max=100)
    optimize_image: str = Choice(("true", "false"), "true")
    lossless_webp: str = Choice(("false", "true"), "false")
    overwrite_mode: str = Choice(("false", "prefix_as_filename"), "false")
    show_history: str = Choice(("false", "true"), "false")
    show_history_by_prefix: str = Choice(("true", "false"), "true")
    embed_workflow: str = Choice(("true", "false"), "true")
    show_previews: str = Choice(("true", "false"), "true")
    outputs = {"images": IMAGE, "files": STRING}
    comfy = ComfyAlias(("Image Save",), widgets=image_save_widgets)

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()  # saving is the point: never skipped as cached

    def file_name(self, prefix: str, counter: int) -> str:
        if self.overwrite_mode == "prefix_as_filename":
            return f"{prefix}.{self.extension}"
        number = f"{counter:0{self.filename_number_padding}}"
        parts = (number, prefix) if self.filename_number_start == "true" else (prefix, number)
        return f"{parts[0]}{self.filename_delimiter}{parts[1]}.{self.extension}"

    def first_counter(self, folder, prefix: str) -> int:
        digits = f"(\\d{{{self.filename_number_padding}}})"
        delimiter, prefix = re.escape(self.filename_delimiter), re.escape(prefix)
        pattern = re.compile(f"{digits}{delimiter}{prefix}" if self.filename_number_start == "true"
                             else f"{prefix}{delimiter}{digits}")
        return max((int(m.group(1)) for m in map(pattern.match, os.listdir(folder)) if m), default=0) + 1

    def run(self):
        from nodes.image import _png_metadata

        prefix = parse_tokens(self.filename_prefix, input_name="filename_prefix")
        for name, value in (("filename_prefix", prefix), ("filename_delimiter", self.filename_delimiter)):
            if "/" in value or "\\" in value or "\x00" in value or value in (".", ".."):
                raise NodeInputError(name, f"{value!r} would leave the folder: expected a plain file name part")
        folder = output_folder(self.output_path, "output_path", blanks=("", "none"))
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a name part too long, a file in the way ...
            raise NodeInputError("output_path", f"can't make the folder: {e.strerror}") from None
        counter = self.first_counter(folder, prefix)
        optimize, dpi = self.optimize_image == "true", (self.dpi, self.dpi)
        options = {"png": {"optimize": optimize, "dpi": dpi},
                   "jpg": {"quality": self.quality, "optimize": optimize, "dpi": dpi},
                   "tiff": {"quality": self.quality, "optimize": optimize}, "gif": {"optimize": optimize}, "bmp": {},
                   "webp": {"quality": self.quality, "lossless": self.lossless_webp == "true"}}
        options = options["jpg" if self.extension == "jpeg" else self.extension]
        if self.extension == "png" and self.embed_workflow == "true":
            options["pnginfo"] = _png_metadata()
        image_format = PIL_FORMATS.get(self.extension, self.extension.upper())
        try:
            saved, paths = self.save_all(folder, prefix, counter, image_format, options)
        except OSError as e:  # a name too long, a folder in the way ...
            raise NodeInputError("filename_prefix", f"can't write the file: {e.strerror}") from None
        show(images=saved if self.show_previews == "true" else [])
        return self.images, paths

    def save_all(self, folder, prefix: str, counter: int, image_format: str, options: dict):
        from graphflow.images import image_to_pil

        subfolder = subfolder_name(folders.outputs, folder)
        saved, paths = [], []
        for image in self.images:
            picture = image_to_pil(image)
            if image_format == "JPEG" and picture.mode == "RGBA":
                picture = picture.convert("RGB")
            name = self.file_name(prefix, counter)
            if self.overwrite_mode == "prefix_as_filename":
                # written aside, then renamed onto the name: a link already there is replaced, never followed
                temporary = folder / f".{name[:64]}.{uuid.uuid4().hex}.tmp"
                try:
                    with open(temporary, "xb") as f:
                        picture.save(f, format=image_format, **options)
                    os.replace(temporary, folder / name)
                finally:
                    temporary.unlink(missing_ok=True)
            else:
                while True:  # the next free number: an existing file is never replaced
                    try:
                        with open(folder / name, "xb") as f:
                            picture.save(f, format=image_format, **options)
                        break
                    except FileExistsError:
                        counter += 1
                        name = self.file_name(prefix, counter)
                counter += 1
            saved.append({"filename": name, "subfolder": subfolder, "type": "output"})
            paths.append(str(folder / name))
        return saved, paths


IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".tiff", ".gif", ".bmp", ".webp")  # the pack's ALLOWED_EXT
# Load Image Batch's "incremental_image" counters, per label: {label: (folder, pattern, next index)}
BATCH_COUNTERS: dict[str, tuple[str, str, int]] = {}


def batch_image_files(path: str, pattern: str) -> list:
    """Load Image Batch's files: the pattern (a glob, ** for subfolders) in the folder `path`
    inside the input folder, pictures only, sorted; an absolute pattern or one with '..' is
    refused, and what links lead to outside the folder is left out."""
    import glob

    try:
        folder = safe_join(folders.inputs, path) if path.strip() not in ("", ".") else folders.inputs.resolve()
    except UnsafePathError as e:
        raise NodeInputError("path", f"{e} (images are read from the input folder only)") from None
    if not folder.is_dir():
        raise NodeInputError("path", f"no folder {path!r} in the input folder")
    # refused before globbing: a recursive glob from / or above the folder walks the whole disk
    parts = pattern.replace("\\", "/").split("/")
    if pattern.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", pattern) or ".." in parts:
        raise NodeInputError("pattern", f"{pattern!r} leaves the folder: expected a pattern inside it (no '..', "
                                        "not absolute)")
    base = str(folders.inputs.resolve())
    found = []
    for name in glob.glob(os.path.join(glob.escape(str(folder)), pattern), recursive=True):
        real = os.path.realpath(name)
        if real.lower().endswith(IMAGE_EXTENSIONS) and real.startswith(base + os.sep) and os.path.isfile(real):
            found.append(os.path.abspath(name))
    return sorted(found)


class WasLoadImageBatch(Node):
    """Load one picture of a folder, as WAS's Load Image Batch does: the files the pattern (a
    glob) matches in `path`, pictures only, sorted; "single_image" the one at index,
    "incremental_image" the next one each run (counted per label, from the start again after
    the last, or when the label's path or pattern changes; counters last while graphflow runs,
    not in the pack's database; the 1000 labels used last are kept, of up to 256 characters),
    "random" any one, drawn anew each run (unseeded, as in the
    pack). RGB, or RGBA for a picture with alpha when allow_RGBA_output is "true" (the pack then
    gives the file's own mode, grey and palette ones too). Also gives the file's name, without
    its extension when filename_text_extension is "false". Follows the suite's later layout
    (the random mode and filename_text_extension; older saves lack them and read the same).
    The pack reads any folder; here path is a folder inside the input folder, and a pattern
    that is absolute or has '..' is refused."""
    category = "WAS Suite/IO"
    mode: str = Choice(("single_image", "incremental_image", "random"), "single_image")
    index: int = Int(0, min=0, max=150000)
    label: str = Text("Batch 001")
    path: str = Text("")
    pattern: str = Text("*")
    allow_RGBA_output: str = Choice(("false", "true"), "false")
    filename_text_extension: str = Choice(("true", "false"), "true")
    outputs = {"image": IMAGE, "filename_text": STRING}
    comfy = ComfyAlias(("Load Image Batch",), optional=("filename_text_extension",))

    @classmethod
    def fingerprint(cls, mode="single_image", path="", pattern="*", index=0, **widgets):
        if mode != "single_image":
            return random.random()  # the next picture each run
        try:
            files = batch_image_files(path, pattern)
            return files[index], os.stat(files[index]).st_mtime_ns
        except (NodeInputError, IndexError, OSError):
            return None  # run() names the problem

    def run(self):
        from PIL import Image, ImageOps

        files = batch_image_files(self.path, self.pattern)
        if not files:
            raise NodeInputError("pattern", f"no pictures match {self.pattern!r} in {self.path!r}")
        if self.mode == "single_image":
            if self.index >= len(files):
                raise NodeInputError("index", f"{len(files)} pictures match: expected an index below that")
            chosen = files[self.index]
        elif self.mode == "random":
            chosen = files[int(random.random() * len(files))]
        else:
            folder, pattern, at = BATCH_COUNTERS.get(self.label, (self.path, self.pattern, 0))
            at = at if (folder, pattern) == (self.path, self.pattern) else 0
            chosen = files[at % len(files)]
            remember(BATCH_COUNTERS, self.label, (self.path, self.pattern, (at + 1) % len(files)), "label")
        try:
            with Image.open(chosen) as opened:
                if opened.width > MAX_SIZE or opened.height > MAX_SIZE:  # checked before decoding it
                    raise NodeInputError("path", f"{os.path.basename(chosen)!r} is {opened.width}x{opened.height}: "
                                                 f"expected sides up to {MAX_SIZE}")
                picture = ImageOps.exif_transpose(opened)
                picture = picture.convert("RGBA" if self.allow_RGBA_output == "true" and "A" in picture.getbands()
                                          else "RGB")
        except (OSError, Image.DecompressionBombError) as e:
            raise NodeInputError("path", f"can't read {os.path.basename(chosen)!r}: {e}") from None
        import numpy as np
        import torch

        name = os.path.basename(chosen)
        if self.filename_text_extension == "false":
            name = os.path.splitext(name)[0]
        return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None], name


class WasImageSelectChannel(Node):
    """One channel (red, green or blue) of each image, as a grey RGB image, as WAS's Image Select
    Channel gives it."""
    category = "WAS Suite/Image/Process"
    image: IMAGE
    channel: str = Choice(("red", "green", "blue"), "red")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Select Channel",))

    def run(self):
        from PIL import Image

        index = ("red", "green", "blue").index(self.channel)
        return _batch([Image.merge("RGB", [p.split()[index]] * 3) for p in _pictures(self.image, "image")])


class WasImageMixRGBChannels(Node):
    """An RGB image of three: the grey (Pillow's L) of red_channel as its red, of green_channel
    as its green, of blue_channel as its blue, as WAS's Image Mix RGB Channels makes it (image by
    image; a single image of one input serves all)."""
    category = "WAS Suite/Image/Process"
    red_channel: IMAGE
    green_channel: IMAGE
    blue_channel: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Mix RGB Channels",))

    def run(self):
        from PIL import Image

        names = ("red_channel", "green_channel", "blue_channel")
        greys = [[p.convert("L") for p in _pictures(getattr(self, n), n)] for n in names]
        count = max(len(g) for g in greys)
        for name, grey in zip(names, greys):
            if len(grey) not in (1, count):
                raise NodeInputError(name, f"{len(grey)} images for {count}: expected 1 or as many")
            if grey[0].size != greys[0][0].size:
                raise NodeInputError(name, f"{grey[0].size} is not red_channel's size {greys[0][0].size}")
        return _batch([Image.merge("RGB", [g[i % len(g)] for g in greys]) for i in range(count)])


def _edge_fade(size, radius: int):
    """Image Padding's feather mask: white, with black bands 2 x radius wide along the edges,
    blurred by radius (an L picture)."""
    from PIL import Image, ImageDraw, ImageFilter

    width, height = size
    mask = Image.new("L", size, 255)
    draw = ImageDraw.Draw(mask)
    for box in ((0, 0, radius * 2, height), (width - radius * 2, 0, width, height), (0, 0, width, radius * 2),
                (0, height - radius * 2, width, height)):
        draw.rectangle(box, fill=0)
    return mask.filter(ImageFilter.GaussianBlur(radius=radius))


class WasImagePadding(Node):
    """Pad each image with transparent borders for outpainting, as WAS's Image Padding does: the
    picture's edges faded out (feathering, then a second pass at a quarter of it; the pack
    always makes the second pass, whatever feather_second_pass says), set inside a transparent
    canvas grown by the paddings. Gives the RGBA image (4 channels, as the pack's) and the
    padding mask (white where transparent) as an image."""
    category = "WAS Suite/Image/Transform"
    image: IMAGE
    feathering: int = Int(120, min=0, max=2048)
    feather_second_pass: str = Choice(("true", "false"), "true")
    left_padding: int = Int(512, min=8, max=48000)
    right_padding: int = Int(512, min=8, max=48000)
    top_padding: int = Int(512, min=8, max=48000)
    bottom_padding: int = Int(512, min=8, max=48000)
    outputs = {"IMAGE": IMAGE, "IMAGE_2": IMAGE}
    comfy = ComfyAlias(("Image Padding",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        try:
            width = size.width + widgets["left_padding"] + widgets["right_padding"]
            height = size.height + widgets["top_padding"] + widgets["bottom_padding"]
        except (AttributeError, KeyError, TypeError):
            return Estimate(size)
        return Estimate(Size(size.batch, height, width))

    def run(self):
        import numpy as np
        from PIL import Image

        out, masks = [], []
        for picture in _pictures(self.image, "image"):
            width = picture.width + self.left_padding + self.right_padding
            height = picture.height + self.top_padding + self.bottom_padding
            if width > MAX_SIZE or height > MAX_SIZE:
                raise NodeInputError("left_padding", f"the padded image would be {width}x{height}: expected sides "
                                                     f"up to {MAX_SIZE}")
            faded = Image.new("RGBA", picture.size, (0, 0, 0, 0))
            for mask in (_edge_fade(picture.size, self.feathering), _edge_fade(picture.size, self.feathering // 4)):
                faded.paste(picture, (0, 0), mask)
                faded.paste(picture, (0, 0), mask)  # twice, as the pack pastes
            canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
            canvas.paste(faded, (self.left_padding, self.top_padding))
            alpha = np.asarray(canvas.getchannel("A")).astype(np.float64)
            padding = np.where(alpha != 0, (255 * (1 - alpha / 255)).astype(int), 255).astype(np.uint8)
            out.append(canvas)
            masks.append(Image.fromarray(padding, "L").convert("RGB"))
        return _batch_rgba(out), _batch(masks)


def _batch_rgba(pictures):
    import numpy as np
    import torch

    return torch.cat([torch.from_numpy(np.asarray(p, dtype=np.float32) / 255.0)[None] for p in pictures], dim=0)


class WasImageEdgeDetectionFilter(Node):
    """Edges of each image with Pillow, as WAS's Image Edge Detection Filter finds them: "normal"
    Pillow's FIND_EDGES, "laplacian" the 3 x 3 kernel of 8 ringed by -1."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    mode: str = Choice(("normal", "laplacian"), "normal")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Edge Detection Filter",))

    def run(self):
        from PIL import ImageFilter

        edges = ImageFilter.FIND_EDGES if self.mode == "normal" else \
            ImageFilter.Kernel((3, 3), (-1, -1, -1, -1, 8, -1, -1, -1, -1), 1, 0)
        return _batch([p.filter(edges) for p in _pictures(self.image, "image")])


class WasImageHighPassFilter(Node):
    """Each image minus its Gaussian blur (radius), times strength, clipped to 0..255, as WAS's
    Image High Pass Filter works it out; neutral_background "true" screens it over mid grey.
    color_output "false" gives the grey (Pillow's L) of the high pass here (the pack hands the
    three-channel result to Pillow as one channel, which current Pillow refuses)."""
    category = "WAS Suite/Image/Filter"
    images: IMAGE
    radius: int = Int(10, min=1, max=500)
    strength: float = Float(1.5, min=0.0, max=255.0, step=0.1)
    color_output: str = Choice(("true", "false"), "true")
    neutral_background: str = Choice(("true", "false"), "true")
    outputs = {"images": IMAGE}
    comfy = ComfyAlias(("Image High Pass Filter",))

    def run(self):
        import numpy as np
        from PIL import Image, ImageChops, ImageFilter

        out = []
        for picture in _pictures(self.images, "images"):
            blurred = np.asarray(picture.filter(ImageFilter.GaussianBlur(radius=self.radius))).astype(float)
            high = np.clip((np.asarray(picture).astype(float) - blurred) * self.strength, 0, 255).astype(np.uint8)
            result = Image.fromarray(high, "RGB")
            if self.color_output != "true":
                result = result.convert("L").convert("RGB")
            if self.neutral_background == "true":
                result = ImageChops.screen(Image.new("RGB", result.size, (128, 128, 128)), result)
            out.append(result)
        return _batch(out)


class WasImageBloomFilter(Node):
    """A glow, as WAS's Image Bloom Filter makes it with Pillow: the image minus its Gaussian
    blur (radius), blurred again at twice the radius, brightened 2 times, multiplied by
    intensity, and screened over the image."""
    category = "WAS Suite/Image/Filter"
    image: IMAGE
    radius: float = Float(10, min=0.0, max=1024, step=0.1)
    intensity: float = Float(1, min=0.0, max=1.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Bloom Filter",))

    def run(self):
        from PIL import Image, ImageChops, ImageEnhance, ImageFilter

        out = []
        level = int(255 * self.intensity)
        for picture in _pictures(self.image, "image"):
            high = ImageChops.subtract(picture, picture.filter(ImageFilter.GaussianBlur(radius=self.radius)))
            bloom = ImageEnhance.Brightness(high.filter(ImageFilter.GaussianBlur(radius=self.radius * 2))).enhance(2.0)
            bloom = ImageChops.multiply(bloom, Image.new("RGB", picture.size, (level, level, level)))
            out.append(ImageChops.screen(picture, bloom))
        return _batch(out)


def ramp_mask(size: tuple[int, int], rising: bool, start: int, end: int, direction: str):
    """Image Stitch's gradient mask (an L picture): black (white when falling) before `start`,
    a straight ramp from start to end (values cut to whole levels, as the pack draws its lines),
    then white (black) to the edge, across (horizontal) or down (vertical)."""
    import numpy as np
    from PIL import Image

    first, last = (0, 255) if rising else (255, 0)
    length = size[0] if direction == "horizontal" else size[1]
    steps = np.arange(length, dtype=float)
    ramp = np.where(steps < start, first, np.where(steps >= end, last, 0)).astype(float)
    inside = (steps >= start) & (steps < end)
    ramp[inside] = (first + (steps[inside] - start) / max(end - start, 1) * (last - first)).astype(int)
    ramp = ramp.astype(np.uint8)
    levels = np.tile(ramp, (size[1], 1)) if direction == "horizontal" else np.tile(ramp[:, None], (1, size[0]))
    return Image.fromarray(levels, "L")


def stitched_size(a: tuple[int, int], b: tuple[int, int], side: str, zone: int) -> tuple[int, int]:
    """The (width, height) of b stitched to a's `side` overlapping by `zone`: a's size across the join."""
    if side in ("left", "right"):
        return a[0] + b[0] - zone, a[1]
    return a[0], a[1] + b[1] - zone


def stitch(a, b, side: str, zone: int):
    """WAS's stitch_image: b joined to a's `side`, the two overlapping by `zone` pixels where
    each fades into the other; the canvas keeps a's size across the join."""
    from PIL import Image

    horizontal = side in ("left", "right")
    width, height = stitched_size(a.size, b.size, side, zone)
    axis = "horizontal" if horizontal else "vertical"
    a_length, b_length = (a.width, b.width) if horizontal else (a.height, b.height)
    a_at, b_at = (0, 0), (0, 0)
    if side in ("top", "left"):  # b first, a after it
        a_mask = ramp_mask(a.size, True, 0, zone, axis)
        b_mask = ramp_mask(b.size, False, b_length - zone, b_length, axis)
        a_at = (b.width - zone, 0) if horizontal else (0, b.height - zone)
    else:
        a_mask = ramp_mask(a.size, False, a_length - zone, a_length, axis)
        b_mask = ramp_mask(b.size, True, 0, zone, axis)
        b_at = (a.width - zone, 0) if horizontal else (0, a.height - zone)
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    canvas.paste(a, a_at, a_mask)
    canvas.paste(b, b_at, b_mask)
    return canvas


class WasImageStitch(Node):
    """Join image_b to a side of image_a, the two overlapping by `feathering` pixels where each
    fades into the other, as WAS's Image Stitch does (image by image; the result keeps
    image_a's size across the join). A result with a side over 16384 pixels is refused."""
    category = "WAS Suite/Image/Transform"
    image_a: IMAGE
    image_b: IMAGE
    stitch: str = Choice(("top", "left", "bottom", "right"), "top")
    feathering: int = Int(50, min=0, max=2048)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Stitch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        a, b = inputs.get("image_a"), inputs.get("image_b")
        try:
            width, height = stitched_size((a.width, a.height), (b.width, b.height), widgets["stitch"],
                                          widgets["feathering"])
        except (AttributeError, KeyError, TypeError):
            return Estimate(a)
        return Estimate(Size(a.batch, max(height, 1), max(width, 1)))

    def run(self):
        first, second = picture_pairs(self.image_a, self.image_b, same_size=False)
        along = (lambda p: p.width) if self.stitch in ("left", "right") else (lambda p: p.height)
        if self.feathering > min(along(first[0]), along(second[0])):
            raise NodeInputError("feathering", f"{self.feathering} pixels is more than an image's side along the "
                                               "join")
        width, height = stitched_size(first[0].size, second[0].size, self.stitch, self.feathering)
        if width > MAX_SIZE or height > MAX_SIZE:
            raise NodeInputError("image_b", f"the stitched image would be {width}x{height}: expected sides up to "
                                            f"{MAX_SIZE}")
        return _batch([stitch(a, second[i % len(second)], self.stitch, self.feathering) for i, a in enumerate(first)])


def feather_mask(size: tuple[int, int], feathering: int):
    """Image Transpose's border fade: what the pack's rectangles (step, step, width - step,
    height - step) filled 255 * (step + 1) / feathering, one inside the other, leave, computed per
    pixel from its distance to the edge (the rectangles cost feathering fills of the picture)."""
    import numpy as np
    from PIL import Image

    width, height = size
    x, y = np.arange(width), np.arange(height)
    # the largest step whose rectangle holds the pixel; PIL's rectangles include their far edge
    across, down = np.minimum(x, width - x), np.minimum(y, height - y)
    step = np.minimum(np.minimum(down[:, None], across[None, :]), feathering - 1)
    return Image.fromarray((255 * (step + 1) // feathering).astype(np.uint8), "L")


class WasImageTranspose(Node):
    """Lay image_overlay over the image, as WAS's Image Transpose does: the overlay turned
    `rotation` degrees counter-clockwise (growing to fit), resized to width x height, its border
    faded over `feathering` pixels, and pasted with its top-left corner at (X, Y). Gives an RGBA
    image (4 channels, as the pack's). width and height are 1 to 16384; feathering more than
    half the overlay's smaller side is refused (the pack's Pillow fails there)."""
    category = "WAS Suite/Image/Transform"
    image: IMAGE
    image_overlay: IMAGE
    width: int = Int(512, min=-48000, max=48000)
    height: int = Int(512, min=-48000, max=48000)
    X: int = Int(0, min=-48000, max=48000)
    Y: int = Int(0, min=-48000, max=48000)
    rotation: int = Int(0, min=-360, max=360)
    feathering: int = Int(0, min=0, max=4096)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Transpose",))

    @classmethod
    def estimate(cls, widgets, inputs):
        width, height = widgets.get("width"), widgets.get("height")
        if not (isinstance(width, int) and isinstance(height, int)):
            return Estimate(inputs.get("image"))
        # the overlay at width x height: RGBA picture, transparent canvas, composite and 4-band mask at once
        return Estimate(inputs.get("image"), memory=max(width, 0) * max(height, 0) * 4 * 4)

    def run(self):
        from PIL import Image

        for name in ("width", "height"):
            if not 1 <= getattr(self, name) <= MAX_SIZE:
                raise NodeInputError(name, f"{getattr(self, name)}: expected 1 to {MAX_SIZE} pixels")
        if 2 * self.feathering > min(self.width, self.height):
            raise NodeInputError("feathering", f"{self.feathering} pixels: expected at most half of the overlay's "
                                               f"smaller side ({min(self.width, self.height) // 2})")
        overlays = _pictures(self.image_overlay, "image_overlay")
        out = []
        for i, background in enumerate(_pictures(self.image, "image")):
            element = overlays[i % len(overlays)].rotate(self.rotation, expand=True).resize((self.width, self.height))
            if self.feathering > 0:
                mask = feather_mask(element.size, self.feathering)
                element = Image.composite(element, Image.new("RGBA", element.size, (0, 0, 0, 0)),
                                          Image.merge("RGBA", (mask, mask, mask, mask)))
            layer = Image.new("RGBA", background.size, (0, 0, 0, 0))
            layer.paste(element, (self.X, self.Y))
            background = background.convert("RGBA")
            background.paste(layer, (0, 0), layer)
            out.append(background)
        return _batch_rgba(out)


# -- bounds ---------------------------------------------------------------------------------------

IMAGE_BOUNDS = socket_type("IMAGE_BOUNDS", "#9e9e9e",
                           "WAS Node Suite's image bounds: [top, bottom, left, right] rows and columns, inclusive")


def _bounds(bounds, input_name: str) -> tuple[int, int, int, int]:
    try:
        top, bottom, left, right = (int(v) for v in bounds)
    except (TypeError, ValueError):
        raise NodeInputError(input_name, f"expected [top, bottom, left, right], got {bounds!r}") from None
    if top > bottom or left > right or top < 0 or left < 0:
        raise NodeInputError(input_name, f"{[top, bottom, left, right]} is empty: expected top <= bottom and left <= "
                                         "right, from 0")
    return top, bottom, left, right


class WasImageBounds(Node):
    """The whole image's bounds, [0, height - 1, 0, width - 1] (WAS's Image Bounds)."""
    category = "WAS Suite/Image/Bound"
    image: IMAGE
    outputs = {"IMAGE_BOUNDS": IMAGE_BOUNDS}
    comfy = ComfyAlias(("Image Bounds",))

    def run(self):
        return [0, self.image.shape[1] - 1, 0, self.image.shape[2] - 1]


class WasInsetImageBounds(Node):
    """Bounds moved inward by the four insets (WAS's Inset Image Bounds); insets that cross are
    an error."""
    category = "WAS Suite/Image/Bound"
    image_bounds: IMAGE_BOUNDS
    inset_left: int = Int(64, min=0, max=0xFFFFFFFFFFFFFFFF)
    inset_right: int = Int(64, min=0, max=0xFFFFFFFFFFFFFFFF)
    inset_top: int = Int(64, min=0, max=0xFFFFFFFFFFFFFFFF)
    inset_bottom: int = Int(64, min=0, max=0xFFFFFFFFFFFFFFFF)
    outputs = {"IMAGE_BOUNDS": IMAGE_BOUNDS}
    comfy = ComfyAlias(("Inset Image Bounds",))

    def run(self):
        top, bottom, left, right = _bounds(self.image_bounds, "image_bounds")
        inset = [top + self.inset_top, bottom - self.inset_bottom, left + self.inset_left, right - self.inset_right]
        if inset[0] > inset[1] or inset[2] > inset[3]:
            raise NodeInputError("inset_left", f"the insets cross: {inset} is empty")
        return inset


class WasBoundedImageCrop(Node):
    """The images cut to the bounds, rows top..bottom and columns left..right inclusive (WAS's
    Bounded Image Crop)."""
    category = "WAS Suite/Image/Bound"
    image: IMAGE
    image_bounds: IMAGE_BOUNDS
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Bounded Image Crop",))

    def run(self):
        top, bottom, left, right = _bounds(self.image_bounds, "image_bounds")
        if top >= self.image.shape[1] or left >= self.image.shape[2]:
            raise NodeInputError("image_bounds", f"{[top, bottom, left, right]} lies outside the "
                                                 f"{self.image.shape[2]}x{self.image.shape[1]} image")
        return self.image[:, top:bottom + 1, left:right + 1, :]


class WasBoundedImageCropWithMask(Node):
    """The images cut to the box around the mask's non-zero pixels (of all its masks), widened
    by the paddings and kept inside the image, as WAS's Bounded Image Crop with Mask does; also
    gives those bounds."""
    category = "WAS Suite/Image/Bound"
    image: IMAGE
    mask: MASK
    padding_left: int = Int(64, min=0, max=0xFFFFFFFFFFFFFFFF)
    padding_right: int = Int(64, min=0, max=0xFFFFFFFFFFFFFFFF)
    padding_top: int = Int(64, min=0, max=0xFFFFFFFFFFFFFFFF)
    padding_bottom: int = Int(64, min=0, max=0xFFFFFFFFFFFFFFFF)
    outputs = {"IMAGE": IMAGE, "IMAGE_BOUNDS": IMAGE_BOUNDS}
    comfy = ComfyAlias(("Bounded Image Crop with Mask",))

    def run(self):
        import torch

        mask = self.mask if self.mask.dim() == 3 else self.mask[None]
        lit = (mask != 0).any(dim=0)
        rows, columns = torch.where(lit.any(dim=1))[0], torch.where(lit.any(dim=0))[0]
        if rows.numel() == 0:
            raise NodeInputError("mask", "the mask is empty: expected some pixel above 0 to crop around")
        top = max(int(rows[0]) - self.padding_top, 0)
        bottom = min(int(rows[-1]) + self.padding_bottom, mask.shape[1] - 1)
        left = max(int(columns[0]) - self.padding_left, 0)
        right = min(int(columns[-1]) + self.padding_right, mask.shape[2] - 1)
        return self.image[:, top:bottom + 1, left:right + 1, :], [top, bottom, left, right]


def _feather_mask(size, width: int, height: int, feathering: int, where: tuple[int, int], blend_factor: float):
    """Bounded Image Blend's mask: white over the bounds (fading out over `feathering` pixels at
    its edges), scaled by blend_factor, in an L picture of `size`."""
    from PIL import Image, ImageFilter, ImageOps

    if feathering > 0:
        inner = ImageOps.expand(Image.new("L", (width - 2 * feathering, height - 2 * feathering), 255),
                                border=feathering, fill=0).filter(ImageFilter.GaussianBlur(radius=feathering))
    else:
        inner = Image.new("L", (width, height), 255)
    mask = Image.new("L", size, 0)
    mask.paste(inner, where)
    return mask.point(lambda p: p * blend_factor).convert("L")


class WasBoundedImageBlend(Node):
    """Lay each source image, resized (Lanczos) to the bounds, over the target within them, at
    blend_factor, its edges feathered over `feathering` pixels, as WAS's Bounded Image Blend
    does (one result per source; the target's first image)."""
    category = "WAS Suite/Image/Bound"
    target: IMAGE
    target_bounds: IMAGE_BOUNDS
    source: IMAGE
    blend_factor: float = Float(1.0, min=0.0, max=1.0)
    feathering: int = Int(16, min=0, max=0xFFFFFFFFFFFFFFFF)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Bounded Image Blend",))

    def run(self):
        from PIL import Image

        target = _pictures(self.target[:1], "target")[0]
        top, bottom, left, right = _bounds(self.target_bounds, "target_bounds")
        width, height = right - left + 1, bottom - top + 1
        if 2 * self.feathering > min(width, height):
            raise NodeInputError("feathering", f"{self.feathering} pixels on each side leave nothing of the "
                                               f"{width}x{height} bounds: expected less than half their side")
        mask = _feather_mask(target.size, width, height, self.feathering, (left, top), self.blend_factor)
        out = []
        for source in _pictures(self.source, "source"):
            placed = Image.new(target.mode, target.size)
            placed.paste(source.resize((width, height), Image.Resampling.LANCZOS), (left, top))
            out.append(Image.composite(placed, target, mask))
        return _batch(out)


class WasBoundedImageBlendWithMask(Node):
    """Lay each source image (as it is) over the target at the bounds' corner, through the
    target mask scaled by blend_factor and blurred by `feathering`, as WAS's Bounded Image Blend
    with Mask does (one result per source; the target's first image and mask)."""
    category = "WAS Suite/Image/Bound"
    target: IMAGE
    target_mask: MASK
    target_bounds: IMAGE_BOUNDS
    source: IMAGE
    blend_factor: float = Float(1.0, min=0.0, max=1.0)
    feathering: int = Int(16, min=0, max=0xFFFFFFFFFFFFFFFF)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Bounded Image Blend with Mask",))

    def run(self):
        from PIL import Image, ImageFilter

        target = _pictures(self.target[:1], "target")[0]
        top, _, left, _ = _bounds(self.target_bounds, "target_bounds")
        level = _mask_levels(self.target_mask, "target_mask")[0]
        if level.shape != (target.height, target.width):
            raise NodeInputError("target_mask", f"{level.shape[1]}x{level.shape[0]} is not the target's size "
                                                f"{target.width}x{target.height}")
        mask = Image.fromarray(level, "L").point(lambda p: p * self.blend_factor).convert("L")
        if self.feathering > 0:
            mask = mask.filter(ImageFilter.GaussianBlur(radius=self.feathering))
        out = []
        for source in _pictures(self.source, "source"):
            placed = Image.new(target.mode, target.size)
            placed.paste(source, (left, top))
            out.append(Image.composite(placed, target, mask))
        return _batch(out)


class WasImagesToRGB(Node):
    """Each image as the pack's 8-bit RGB picture (an alpha channel dropped, grey made RGB), as
    WAS's Images to RGB gives it."""
    category = "WAS Suite/Image"
    images: IMAGE
    outputs = {"images": IMAGE}
    comfy = ComfyAlias(("Images to RGB",))

    def run(self):
        from graphflow.images import image_to_pil

        if getattr(self.images, "dim", lambda: 0)() != 4:
            raise NodeInputError("images", "expected an image batch [B, H, W, C]")
        return _batch([image_to_pil(image).convert("RGB") for image in self.images])


class WasTensorBatchToImage(Node):
    """The image at batch_image_number of the batch (the last one, with a warning, past the end),
    as WAS's Tensor Batch to Image picks it."""
    category = "WAS Suite/Latent/Transform"
    images_batch: IMAGE
    batch_image_number: int = Int(0, min=0, max=64)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Tensor Batch to Image",))

    def run(self):
        return _pick(self.images_batch, self.batch_image_number)


def _pick(batch, number: int):
    if number >= batch.shape[0]:
        warn(f"batch number {number} is past the batch's {batch.shape[0]}: the last one is given, as the pack does")
        number = batch.shape[0] - 1
    return batch[number:number + 1]


# -- masks ----------------------------------------------------------------------------------------


def _mask_levels(masks, input_name: str = "masks"):
    """Each mask of a batch as the pack's 8-bit levels (255 x value, clipped, truncated), a numpy
    array [B, H, W]: a single [H, W] mask is a batch of one."""
    import numpy as np

    if getattr(masks, "dim", lambda: 0)() == 2:
        masks = masks[None]
    if getattr(masks, "dim", lambda: 0)() != 3:
        raise NodeInputError(input_name, "expected a mask batch [B, H, W]")
    return (masks.detach().float().cpu().numpy() * 255.0).clip(0, 255).astype(np.uint8)


def _masks(levels):
    """Masks [B, H, W] in 0..1 from 8-bit levels or booleans."""
    import numpy as np
    import torch

    return torch.from_numpy(np.asarray(levels, dtype=np.float32) / (1.0 if levels.dtype == bool else 255.0))


class WasMaskInvert(Node):
    """1 - mask (WAS's Mask Invert)."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Invert",))

    def run(self):
        import torch

        if not isinstance(self.masks, torch.Tensor):
            raise NodeInputError("masks", f"expected a mask tensor, got {type(self.masks).__name__}")
        return 1.0 - self.masks


class WasMasksAdd(Node):
    """masks_a + masks_b, not clamped, as WAS's Masks Add gives it (values may pass 1)."""
    category = "WAS Suite/Image/Masking"
    masks_a: MASK
    masks_b: MASK
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Masks Add",))

    def run(self):
        return _paired(self.masks_a, self.masks_b, lambda a, b: a + b)


class WasMasksSubtract(Node):
    """masks_a - masks_b, below 0 raised to 0 (WAS's Masks Subtract)."""
    category = "WAS Suite/Image/Masking"
    masks_a: MASK
    masks_b: MASK
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Masks Subtract",))

    def run(self):
        return _paired(self.masks_a, self.masks_b, lambda a, b: (a - b).clamp(min=0))


def _paired(a, b, combine):
    if a.shape[-2:] != b.shape[-2:]:
        raise NodeInputError("masks_b", f"{tuple(b.shape[-2:])} is not masks_a's size {tuple(a.shape[-2:])}")
    try:
        return combine(a, b)
    except RuntimeError:
        raise NodeInputError("masks_b", f"{b.shape[0]} masks for {a.shape[0]}: expected 1 or as many") from None


class WasMasksCombineRegions(Node):
    """The sum of the masks connected, clamped to 0..1 (WAS's Masks Combine Regions)."""
    category = "WAS Suite/Image/Masking"
    mask_a: MASK
    mask_b: MASK
    mask_c: MASK = None
    mask_d: MASK = None
    mask_e: MASK = None
    mask_f: MASK = None
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("Masks Combine Regions",))

    def run(self):
        total = self.mask_a
        for name in ("mask_b", "mask_c", "mask_d", "mask_e", "mask_f"):
            mask = getattr(self, name)
            if mask is not None:
                if mask.shape != self.mask_a.shape:
                    raise NodeInputError(name, f"{tuple(mask.shape)} is not mask_a's shape {tuple(self.mask_a.shape)}")
                total = total + mask
        return total.clamp(0.0, 1.0)


class _Morphology(Node):
    category = "WAS Suite/Image/Masking"
    masks: MASK
    iterations: int = Int(5, min=1, max=64)
    outputs = {"MASKS": MASK}

    def run(self):
        import scipy.ndimage

        operation = getattr(scipy.ndimage, self.operation)
        return _masks(operation(_mask_levels(self.masks) > 0, iterations=self.iterations,
                                structure=[[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                                           [[0, 0, 0], [0, 0, 0], [0, 0, 0]]]))


class WasMaskDilateRegion(_Morphology):
    """Grow each mask's region (any level above 0) by `iterations` pixels, as WAS's Mask Dilate
    Region does with scipy's binary_dilation (4-connected steps); gives 0 or 1."""
    operation = "binary_dilation"
    comfy = ComfyAlias(("Mask Dilate Region",))


class WasMaskErodeRegion(_Morphology):
    """Shrink each mask's region (any level above 0) by `iterations` pixels, as WAS's Mask Erode
    Region does with scipy's binary_erosion (4-connected steps; the border counts as outside);
    gives 0 or 1."""
    operation = "binary_erosion"
    comfy = ComfyAlias(("Mask Erode Region",))


class WasMaskFillHoles(Node):
    """Fill the holes of each mask's region (any level above 0), as WAS's Mask Fill Holes does
    with scipy's binary_fill_holes; gives 0 or 1."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Fill Holes",))

    def run(self):
        import scipy.ndimage

        return _masks(_stack([scipy.ndimage.binary_fill_holes(level > 0) for level in _mask_levels(self.masks)]))


def _stack(arrays):
    import numpy as np

    return np.stack(arrays)


class WasMaskThresholdRegion(Node):
    """Each mask's 8-bit levels below black_threshold set to 0 and above white_threshold to 255,
    the rest kept (WAS's Mask Threshold Region)."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    black_threshold: int = Int(75, min=0, max=255)
    white_threshold: int = Int(175, min=0, max=255)
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Threshold Region",))

    def run(self):
        levels = _mask_levels(self.masks)
        levels[levels < self.black_threshold] = 0
        levels[levels > self.white_threshold] = 255
        return _masks(levels)


class WasMaskGaussianRegion(Node):
    """Each mask blurred with Pillow's Gaussian blur of radius `radius` (cut to a whole number),
    as WAS's Mask Gaussian Region does on its inverted 8-bit picture."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    radius: float = Float(5.0, min=0.0, max=1024, step=0.1)
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Gaussian Region",))

    def run(self):
        import numpy as np
        from PIL import Image, ImageFilter, ImageOps

        blurred = [255 - np.asarray(ImageOps.invert(Image.fromarray(level, "L"))
                                    .filter(ImageFilter.GaussianBlur(radius=int(self.radius))))
                   for level in _mask_levels(self.masks)]
        return _masks(_stack(blurred).astype(np.uint8))


class WasMaskFloorRegion(Node):
    """Each mask's lowest non-zero level and below become 0, everything above 1 (WAS's Mask
    Floor Region)."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Floor Region",))

    def run(self):
        out = []
        for level in _mask_levels(self.masks):
            lit = level[level > 0]
            if lit.size:
                floor = lit.min()
                level = (level > floor).astype(level.dtype) * 255
            out.append(level)
        return _masks(_stack(out))


class WasMaskCeilingRegion(Node):
    """Each mask's 8-bit levels below 225 become 0 and from 250 up 255, the rest kept (WAS's
    Mask Ceiling Region, its offset fixed at 30)."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Mask Ceiling Region",))

    def run(self):
        levels = _mask_levels(self.masks)
        levels[levels < 225] = 0
        levels[levels >= 250] = 255
        return _masks(levels)


CHANNELS = {"alpha": 3, "red": 0, "green": 1, "blue": 2}


class WasImageToLatentMask(Node):
    """One channel of each image as a mask (alpha is 1 for an image without one), on the pack's
    8-bit levels, as WAS's Image to Latent Mask does."""
    category = "WAS Suite/Image/Masking"
    images: IMAGE
    channel: str = Choice(tuple(CHANNELS), "alpha")
    outputs = {"MASKS": MASK}
    comfy = ComfyAlias(("Image to Latent Mask",))

    def run(self):
        import numpy as np

        from graphflow.images import image_to_pil

        if getattr(self.images, "dim", lambda: 0)() != 4:
            raise NodeInputError("images", "expected an image batch [B, H, W, C]")
        levels = [np.asarray(image_to_pil(image).convert("RGBA"))[..., CHANNELS[self.channel]] for image in self.images]
        return _masks(_stack(levels))


class WasLatentUpscaleByFactor(Node):
    """Resize latents by factor with torch's interpolate (area, bicubic, bilinear or nearest;
    align "true" aligns corners for bilinear and bicubic), sizes rounded, as WAS's Latent
    Upscale by Factor (WAS) does. Latents that would decode past 16384 pixels a side are refused."""
    category = "WAS Suite/Latent/Transform"
    samples: LATENT
    mode: str = Choice(("area", "bicubic", "bilinear", "nearest"), "area")
    factor: float = Float(2.0, min=0.1, max=8.0, step=0.01)
    align: str = Choice(("true", "false"), "true")
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("Latent Upscale by Factor (WAS)",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, factor = inputs.get("samples"), widgets.get("factor")
        if size is None or not isinstance(factor, (int, float)):
            return Estimate(size)
        return Estimate(Size(size.batch, max(8, round(size.height / 8 * factor) * 8),
                             max(8, round(size.width / 8 * factor) * 8)))

    def run(self):
        import torch.nn.functional as F

        latent = self.samples["samples"]
        if not hasattr(latent, "dim") or latent.dim() != 4:
            raise NodeInputError("samples", f"expected latents of 4 dimensions (batch, channels, height, width), got "
                                            f"{getattr(latent, 'shape', type(latent).__name__)}")
        size = tuple(max(1, int(round(side * self.factor))) for side in latent.shape[-2:])
        if size[0] * 8 > MAX_SIZE or size[1] * 8 > MAX_SIZE:  # also when estimate() knew no size
            raise NodeInputError("factor", f"the latents would decode to {size[1] * 8}x{size[0] * 8}: expected sides "
                                           f"up to {MAX_SIZE}")
        if self.mode in ("bilinear", "bicubic"):
            resized = F.interpolate(latent, size=size, mode=self.mode, align_corners=self.align == "true")
        else:
            resized = F.interpolate(latent, size=size, mode=self.mode)
        return {**self.samples, "samples": resized}


class WasMaskBatchToMask(Node):
    """The mask at batch_number of the batch (the last one, with a warning, past the end), as
    WAS's Mask Batch to Mask picks it (as a batch of one)."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    batch_number: int = Int(0, min=0, max=64)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("Mask Batch to Mask",))

    def run(self):
        return _pick(self.masks if self.masks.dim() == 3 else self.masks[None], self.batch_number)


class WasConvertMasksToImages(Node):
    """Masks as grey RGB images, as WAS's Convert Masks to Images makes them (the pack takes
    [B, C, H, W] or [H, W] masks and fails on ComfyUI's [B, H, W]; here all three are taken)."""
    category = "WAS Suite/Image/Masking"
    masks: MASK
    outputs = {"IMAGES": IMAGE}
    comfy = ComfyAlias(("Convert Masks to Images",))

    def run(self):
        masks = self.masks
        if masks.dim() == 4:
            masks = masks[:, 0]
        elif masks.dim() == 2:
            masks = masks[None]
        if masks.dim() != 3:
            raise NodeInputError("masks", f"expected masks [B, H, W], got the shape {tuple(self.masks.shape)}")
        return masks[..., None].expand(-1, -1, -1, 3).clone()
