"""sipherxyz's comfyui-art-venture, its model-free nodes (round 1), under the pack's class names,
inputs (order, defaults, ranges), outputs and categories. Read from the pack's
modules/utility_nodes.py at commit 8e83109a4ea8507beb5cf79476fde9a94d4cd840 (its tensor2pil /
pil2tensor and get_dict_attribute from modules/utils.py at 4405434b9c71d2938bc45db37bc8bc47f4d5efcc)
and modules/postprocessing/color_blend.py at 1138a1f4d96f6cfa64752ceaaf78dace26e163b9.

Nodes here: ImageMuxer, ImageScaleDown, ImageScaleDownBy, ImageScaleDownToSize,
ImageScaleToMegapixels, ImageAlphaComposite, ImageGaussianBlur, ImageRepeat, ImageExtractChannel,
ImageApplyChannel, ColorBlend, OverlayInpaintedLatent; StringToInt, StringToNumber, BooleanPrimitive, NumberScaler,
RandomInt, RandomFloat, SeedSelector, AspectRatioSelector, SDXLAspectRatioSelector,
CheckpointNameSelector, TextRandomMultiline, TextSwitchCase; LoadJsonFromText and the
Get{Object,Text,Float,Int,Bool}FromJson readers. The pack's ColorCorrect (its copy of EllangoK's)
is answered by nodes/pack_nodes_post_processing.py's PostProcColorCorrect, the same inputs and formula.

Its parameter pipes and loader variants (AV_...) are in nodes/pack_nodes_art_venture_loaders.py;
round 2 (the inpaint crop / overlay helpers, merges, save, Fooocus samplers and ControlNet loaders)
in nodes/pack_nodes_art_venture2.py. Left out (graphflow/comfy_format.py ART_VENTURE_LEFT_OUT says
why, class by class): the URL loaders and uploads, the QR code generator, the model-running classes
(ISNet, SAM, BLIP, DeepDanbooru, LaMa, ControlNet preprocessors, LLM APIs), DependenciesEdit (see
round 2's module) and the older IP-Adapter nodes AV_StyleApply, AV_IPAdapterEncodeFromJson and
AV_IPAdapterApplyEncoded (AV_IPAdapterPipe / AV_IPAdapter are round 3, nodes/pack_nodes_art_venture3.py).

As in the pack, the PIL steps see a picture as 8-bit (x · 255 clipped, cut to a whole level) and
give levels / 255 back. Two-channel (grey + alpha) pictures, which the pack's tensor2pil makes
Pillow "LA", are refused by the Pillow nodes here (ScaleDown*, GaussianBlur, AlphaComposite),
each saying so in its help. The pack marks the Get*FromJson readers OUTPUT_NODE; here they
are not output nodes, so a reader whose outputs lead nowhere is not run (nothing is lost: they
show nothing).
"""

from __future__ import annotations

from graphflow.api import (
    BOOLEAN, FLOAT, IMAGE, INT, LATENT, MASK, STRING, Bool, Choice, ComfyAlias, Estimate, Float, Int, ListOf, Node,
    NodeInputError, Size, Text, check_interrupted, check_run_memory, folders, progress, repeated, run_limits, show,
)
from graphflow.workflow import MAX_JSON_DEPTH, json_depth_exceeds
from nodes.image import _image
from nodes.loaders import DEMO_CHECKPOINT
from nodes.pack_nodes_crystools import JSON
from nodes.upscale import UPSCALE_MODEL

COMFY_PACK = "comfyui-art-venture"  # the custom node pack this module's ComfyUI classes come from

CATEGORY = "Art Venture/Utils"
POST_CATEGORY = "ArtVenture/Post Processing"
MAX_RESOLUTION = 8192  # the pack's width / height / size bound
SEED_MAX = 0xFFFFFFFFFFFFFFFF
BIG = float(0xFFFFFFFFFFFFFFFF)  # the pack's max for its FLOAT widgets
CHANNELS = ("R", "G", "B", "A")
# the pack's SDXL sizes by ratio; AspectRatioSelector offers a few of them scaled down
SDXL_SIZES = {"1:1": (1024, 1024), "2:3": (832, 1216), "3:4": (896, 1152), "5:8": (768, 1216),
              "9:16": (768, 1344), "9:19": (704, 1472), "9:21": (640, 1536), "3:2": (1216, 832),
              "4:3": (1152, 896), "8:5": (1216, 768), "16:9": (1344, 768), "19:9": (1472, 704),
              "21:9": (1536, 640)}
SMALL_RATIOS = ("1:1", "2:3", "3:4", "9:16", "3:2", "4:3", "16:9")
MAX_KEY_LENGTH = 10_000  # a JSON key path longer than any document's nesting needs


# -- the pack's PIL round trip ----------------------------------------------------------------------


def _picture(image, input_name: str = "images"):
    """One [H, W, C] image as the pack's tensor2pil sees it: x · 255 clipped and cut to a level,
    one channel squeezed to an L picture."""
    import numpy as np
    from PIL import Image
    levels = np.clip(255.0 * image.detach().cpu().float().numpy(), 0, 255).astype(np.uint8)
    if levels.shape[-1] == 1:
        levels = levels[..., 0]
    elif levels.shape[-1] not in (3, 4):
        raise NodeInputError(input_name, f"{levels.shape[-1]} channels: expected 1, 3 or 4")
    return Image.fromarray(levels)


def _tensor(picture):
    """A PIL picture as a [H, W, C] float tensor: its levels / 255."""
    import numpy as np
    import torch
    levels = np.asarray(picture, dtype=np.float32) / 255
    return torch.from_numpy(levels if levels.ndim == 3 else levels[..., None])


def _scaled_down(images, width: int, height: int, crop: bool):
    """The pack's image_scale_down: cropped around the centre to width:height when asked, each
    image as RGB resized by Pillow's Lanczos."""
    import torch
    from PIL import Image
    from graphflow.images import center_crop_to_aspect
    if crop:
        images = center_crop_to_aspect(images.movedim(-1, 1), width, height).movedim(1, -1)
    out = []
    for image in images:
        check_interrupted()
        out.append(_tensor(_picture(image).convert("RGB").resize((width, height), Image.Resampling.LANCZOS)))
    return torch.stack(out)


def _scale_by_size(size: Size | None, scale: float) -> Size | None:
    if size is None or not isinstance(scale, (int, float)):
        return None
    return Size(size.batch, max(1, int(size.height * scale)), max(1, int(size.width * scale)))


def _scaled_down_by(images, scale_by: float, input_name: str):
    height, width = images.shape[1:3]
    new_width, new_height = int(width * scale_by), int(height * scale_by)
    if new_width < 1 or new_height < 1:
        raise NodeInputError(input_name, f"scales the {width}×{height} images to {new_width}×{new_height}, "
                                         "under one pixel (Pillow can't make that)")
    return _scaled_down(images, new_width, new_height, True)


# -- images ------------------------------------------------------------------------------------------


class AVImageMuxer(Node):
    """One of up to four images, picked by input_selector counted from 0 (as Python indexes the
    pack's list: -1 is image_4, -4 image_1). Picking an image that is not linked is refused (the
    pack would pass None on)."""
    category = CATEGORY
    image_1: IMAGE
    image_2: IMAGE
    input_selector: int = Int(0, min=-4, max=3)
    image_3: IMAGE = None
    image_4: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageMuxer",), optional=("image_3", "image_4"))

    def run(self):
        images = [self.image_1, self.image_2, self.image_3, self.image_4]
        picked = images[self.input_selector]
        if picked is None:
            raise NodeInputError("input_selector", f"{self.input_selector} picks image_{self.input_selector % 4 + 1}, "
                                                   "which is not linked")
        return picked


class AVImageScaleDown(Node):
    """Resize each image to width × height with Pillow's Lanczos, after cropping it around the
    centre to that aspect ratio when crop is "center" (else it is stretched). As in the pack, the
    images go through 8-bit RGB: an alpha channel is dropped, one channel made grey RGB (two
    channels, grey + alpha, are refused); it scales up too, despite its name."""
    category = CATEGORY
    images: IMAGE
    width: int = Int(512, min=1, max=MAX_RESOLUTION, resource="width")
    height: int = Int(512, min=1, max=MAX_RESOLUTION, resource="height")
    crop: str = Choice(("disabled", "center"), "disabled")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageScaleDown",))

    def run(self):
        return _scaled_down(_image(self.images, "images"), self.width, self.height, self.crop == "center")


class AVImageScaleDownBy(Node):
    """Scale each image by scale_by (sizes cut to whole pixels), cropped around the centre to the
    new aspect ratio and resized with Pillow's Lanczos through 8-bit RGB, as ImageScaleDown does."""
    category = CATEGORY
    images: IMAGE
    scale_by: float = Float(0.5, min=0.01, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageScaleDownBy",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return Estimate(_scale_by_size(inputs.get("images"), widgets.get("scale_by")))

    def run(self):
        return _scaled_down_by(_image(self.images, "images"), self.scale_by, "scale_by")


class AVImageScaleDownToSize(Node):
    """Scale each image down so that its longer side (mode on: "max") or its shorter side (mode
    off: "min") is `size` pixels; images already within it are kept at their size (still passed
    through 8-bit RGB, as ImageScaleDownBy does)."""
    category = CATEGORY
    images: IMAGE
    size: int = Int(512, min=1, max=MAX_RESOLUTION)
    mode: bool = Bool(True, label_on="max", label_off="min")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageScaleDownToSize",))

    @staticmethod
    def scale(height: int, width: int, size: int, longer: bool) -> float:
        return min(size / (max(width, height) if longer else min(width, height)), 1.0)

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        if size is None or not isinstance(widgets.get("size"), int):
            return Estimate(None)
        return Estimate(_scale_by_size(size, cls.scale(size.height, size.width, widgets["size"],
                                                       bool(widgets.get("mode", True)))))

    def run(self):
        images = _image(self.images, "images")
        return _scaled_down_by(images, self.scale(*images.shape[1:3], self.size, self.mode), "size")


class AVImageScaleToMegapixels(Node):
    """Scale each image to about `megapixels` · 1024² pixels, keeping its aspect ratio. Down: as
    ImageScaleDownBy (Lanczos through 8-bit RGB). Up by less than 1.2, or with no upscale model:
    ComfyUI's bicubic resize to the rounded size. Up by 1.2 or more with a model: the model's
    upscale (tiles of 512 overlapping by 32, ImageUpscaleWithModel's defaults), then centre-crop and
    Lanczos down to the rounded size; the model's full-size result is checked against the pixel and
    memory limits before it runs. An enlarged size is held to 16384 a side, the server's pixel limit
    and the memory the run may use (the pack has no bound)."""
    category = CATEGORY
    images: IMAGE
    megapixels: float = Float(1.0, min=0.1, max=100.0, step=0.05)
    upscale_model_opt: UPSCALE_MODEL = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageScaleToMegapixels",), optional=("upscale_model_opt",))

    @staticmethod
    def scale(height: int, width: int, megapixels: float) -> float:
        import math
        return math.sqrt(megapixels * 1024 * 1024 / (width * height))

    @staticmethod
    def check_size(batch: int, height: int, width: int, new_height: int, new_width: int) -> None:
        """Refuse an enlargement the planner could not size (a loaded picture's size is known only
        while running) before it is made."""
        from nodes.image import MAX_SIZE
        what = f"scales {width}×{height} to {new_width}×{new_height}"
        if max(new_width, new_height) > MAX_SIZE:
            raise NodeInputError("megapixels", f"{what}, over {MAX_SIZE} pixels a side")
        max_pixels = run_limits().max_pixels
        if max_pixels is not None and new_width * new_height > max_pixels:
            raise NodeInputError("megapixels", f"{what}, larger than this server allows "
                                               f"({max_pixels / 1e6:.1f} megapixels)")
        check_run_memory("megapixels", what, images=Size(batch, new_height, new_width))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, megapixels = inputs.get("images"), widgets.get("megapixels")
        if size is None or not isinstance(megapixels, (int, float)):
            return Estimate(None)
        scale = cls.scale(size.height, size.width, megapixels)
        if scale <= 1.0:
            return Estimate(_scale_by_size(size, scale))
        return Estimate(Size(size.batch, round(size.height * scale), round(size.width * scale)))

    def run(self):
        from nodes.image import _resize_image
        images = _image(self.images, "images")
        height, width = images.shape[1:3]
        scale = self.scale(height, width, self.megapixels)
        if scale <= 1.0:
            return _scaled_down_by(images, scale, "megapixels")
        new_width, new_height = round(width * scale), round(height * scale)
        self.check_size(images.shape[0], height, width, new_height, new_width)
        if scale < 1.2 or self.upscale_model_opt is None:
            return _resize_image(images, new_width, new_height, "bicubic")
        from graphflow.models.upscale import upscale_fitting
        model = self.upscale_model_opt
        if images.shape[-1] != model.input_channels:
            raise NodeInputError("images", f"the upscale model takes {model.input_channels}-channel images, "
                                           f"got {images.shape[-1]} channels")
        from nodes.pack_nodes_easyuse_samplers import check_upscaled_size
        check_upscaled_size(images, model.scale, "images", "upscale_model_opt")  # before the model's full size
        upscaled = upscale_fitting(model, images, 512, 32, on_tile=progress)
        return _scaled_down(upscaled, new_width, new_height, True)


class AVImageAlphaComposite(Node):
    """image_2 laid over image_1 by its alpha (Pillow's alpha_composite), pair by pair; an image
    without alpha counts as opaque. The result has four channels (RGBA), as the pack's. Pictures of
    1, 3 or 4 channels are taken (two, grey + alpha, refused)."""
    category = CATEGORY
    image_1: IMAGE
    image_2: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageAlphaComposite",))

    def run(self):
        import torch
        from PIL import Image
        first, second = _image(self.image_1, "image_1"), _image(self.image_2, "image_2")
        if first.shape[0] != second.shape[0]:
            raise NodeInputError("image_2", f"{second.shape[0]} images: image_1 has {first.shape[0]} "
                                            "(the pack needs as many)")
        if first.shape[1:3] != second.shape[1:3]:
            raise NodeInputError("image_2", f"{second.shape[2]}×{second.shape[1]}: image_1 is "
                                            f"{first.shape[2]}×{first.shape[1]} (the pack needs the same size)")
        out = []
        for below, above in zip(first, second):
            check_interrupted()
            out.append(_tensor(Image.alpha_composite(_picture(below, "image_1").convert("RGBA"),
                                                       _picture(above, "image_2").convert("RGBA"))))
        return torch.stack(out)


class AVImageGaussianBlur(Node):
    """Pillow's GaussianBlur of the given radius on each image (8-bit, its channels as they are;
    1, 3 or 4 of them: two, grey + alpha, are refused).
    A one-channel image comes back with its channel (the pack drops it there, leaving a
    [B, H, W] tensor no IMAGE input reads)."""
    category = CATEGORY
    images: IMAGE
    radius: int = Int(1, min=1, max=100)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageGaussianBlur",))

    def run(self):
        import torch
        from PIL import ImageFilter
        out = []
        for image in _image(self.images, "images"):
            check_interrupted()
            out.append(_tensor(_picture(image).filter(ImageFilter.GaussianBlur(radius=self.radius))))
        return torch.stack(out)


class AVImageRepeat(Node):
    """The batch repeated `amount` times, one copy after another."""
    category = CATEGORY
    images: IMAGE
    amount: int = Int(1, min=1, max=1024)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageRepeat",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return repeated(inputs.get("images"), widgets.get("amount"))

    def run(self):
        return _image(self.images, "images").repeat(self.amount, 1, 1, 1)


class AVImageExtractChannel(Node):
    """One channel of each image as a mask. A mask given as the images counts as grey (its value
    in R, G and B); A of an image without alpha is refused."""
    category = CATEGORY
    images: IMAGE
    channel: str = Choice(CHANNELS, "R")
    outputs = {"channel_data": MASK}
    comfy = ComfyAlias(("ImageExtractChannel",))

    def run(self):
        import torch
        images = self.images
        if not torch.is_tensor(images) or images.ndim not in (3, 4):
            raise NodeInputError("images", "expected an IMAGE: a [B, H, W, C] tensor")
        if images.ndim == 3:
            images = images.unsqueeze(3).repeat(1, 1, 1, 3)
        index = CHANNELS.index(self.channel)
        if index >= images.shape[3]:
            raise NodeInputError("channel", f"{self.channel}: the images have {images.shape[3]} channels, no alpha")
        return images[..., index].clone()


class AVImageApplyChannel(Node):
    """Each image with one channel replaced by channel_data: the mask of the same index, or the one
    mask for every image. A on an image without alpha adds the channel (a one-channel image made
    grey RGB first; A on a two-channel one is refused, its channels unclear). The pack writes the whole
    mask batch into each image, which works only for a single mask; a batch of masks goes image by
    image here, and other counts are refused."""
    category = CATEGORY
    images: IMAGE
    channel_data: MASK
    channel: str = Choice(CHANNELS, "R")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageApplyChannel",))

    def run(self):
        import torch
        images = _image(self.images, "images")
        masks = self.channel_data
        if not torch.is_tensor(masks) or masks.ndim not in (2, 3):
            raise NodeInputError("channel_data", "expected a MASK: a [B, H, W] tensor")
        masks = masks.reshape(-1, *masks.shape[-2:])
        if masks.shape[1:] != images.shape[1:3]:
            raise NodeInputError("channel_data", f"{masks.shape[2]}×{masks.shape[1]}: the images are "
                                                 f"{images.shape[2]}×{images.shape[1]}")
        if masks.shape[0] not in (1, images.shape[0]):
            raise NodeInputError("channel_data", f"{masks.shape[0]} masks for {images.shape[0]} images: "
                                                 "expected one, or one per image")
        out = images.detach().cpu().float().clone()
        index = CHANNELS.index(self.channel)
        if index == 3 and out.shape[3] < 4:
            if out.shape[3] == 2:
                raise NodeInputError("images", "2 channels: expected 1 (grey), 3 (RGB) or 4 (RGBA) to set A in")
            rgb = out.repeat(1, 1, 1, 3) if out.shape[3] == 1 else out[..., :3]
            out = torch.cat([rgb, torch.ones(*out.shape[:3], 1)], dim=3)
        elif index >= out.shape[3]:
            raise NodeInputError("images", f"{out.shape[3]} channels: no {self.channel} to replace")
        out[..., index] = masks.to(out)
        return out


class AVColorBlend(Node):
    """Stability AI's colour blend as the pack copies it: the colour layer's colours with the
    black-and-white layer's lightness, in OpenCV's 8-bit Lab. The shorter batch is repeated to
    the longer; a colour layer of another size is resized to the other's by ComfyUI's bicubic with
    a centre crop. As in the pack, OpenCV reads the RGB pictures as BGR, so the lightness weighs red
    0.114 and blue 0.299 (the colours themselves round-trip unchanged)."""
    category = POST_CATEGORY
    bw_layer: IMAGE
    color_layer: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ColorBlend",))

    @classmethod
    def estimate(cls, widgets, inputs):
        bw, color = inputs.get("bw_layer"), inputs.get("color_layer")
        if bw is None or color is None:
            return Estimate(bw)
        return Estimate(Size(max(bw.batch, color.batch), bw.height, bw.width))

    def run(self):
        import cv2
        import numpy as np
        import torch
        from nodes.image import _resize_image
        bw, color = _image(self.bw_layer, "bw_layer"), _image(self.color_layer, "color_layer")
        for name, layer in (("bw_layer", bw), ("color_layer", color)):
            if layer.shape[-1] != 3:
                raise NodeInputError(name, f"{layer.shape[-1]} channels: expected 3 (RGB)")
        count = max(bw.shape[0], color.shape[0])
        bw, color = (layer.repeat(count, 1, 1, 1)[:count] for layer in (bw.cpu(), color.cpu()))
        if bw.shape != color.shape:
            color = _resize_image(color, bw.shape[2], bw.shape[1], "bicubic", crop=True)
        bw_levels = (bw * 255).to(torch.uint8).numpy()
        color_levels = (color * 255).to(torch.uint8).numpy()
        out = []
        for grey_source, colours in zip(bw_levels, color_levels):
            check_interrupted()
            _, a, b = cv2.split(cv2.cvtColor(colours, cv2.COLOR_BGR2Lab))
            lab = cv2.merge((cv2.cvtColor(grey_source, cv2.COLOR_BGR2GRAY), a, b))
            out.append(torch.from_numpy(cv2.cvtColor(lab, cv2.COLOR_Lab2BGR).astype(np.float32) / 255))
        return torch.stack(out)


class AVOverlayInpaintedLatent(Node):
    """The inpainted latent where the mask is set, the original elsewhere: each mask (8-bit, cut
    to levels) resized to the latent's size by Pillow's bicubic and rounded to 0 or 1 (halves to
    even, as numpy rounds). The pack tiles the mask over 4 channels, which fails on 16-channel
    latents (SD3, FLUX); here it covers every channel. As in the pack, the result holds the samples
    only (no noise mask or batch index)."""
    category = "Art Venture/Inpainting"
    original: LATENT
    inpainted: LATENT
    mask: MASK
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("OverlayInpaintedLatent",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image
        original, inpainted = self.original["samples"], self.inpainted["samples"]
        masks = self.mask
        if original.ndim != 4:
            raise NodeInputError("original", f"samples of shape {tuple(original.shape)}: expected an image latent "
                                             "[B, C, H, W] (a video latent has frames)")
        if inpainted.shape != original.shape:
            raise NodeInputError("inpainted", f"samples of shape {tuple(inpainted.shape)}: expected the original's "
                                              f"{tuple(original.shape)} (image latents)")
        if not torch.is_tensor(masks) or masks.ndim != 3 or masks.shape[0] != original.shape[0]:
            raise NodeInputError("mask", f"expected a [B, H, W] mask batch of {original.shape[0]}, the latents' batch")
        height, width = original.shape[2:]
        out = []
        for before, after, mask in zip(original, inpainted, masks):
            levels = np.clip(255.0 * mask.detach().cpu().float().numpy(), 0, 255).astype(np.uint8)
            small = Image.fromarray(levels, "L").convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
            keep = torch.from_numpy(np.around(np.asarray(small, dtype=np.float32)[..., 0] / 255)).to(before)
            out.append(after * keep + before * (1.0 - keep))
        return {"samples": torch.stack(out)}


# -- numbers, text and choices -----------------------------------------------------------------------


class AVStringToInt(Node):
    """The whole number written in the text (Python's int(): digits, a sign, underscores between
    digits, spaces around; at most 4300 digits, Python's limit)."""
    category = CATEGORY
    string: str = Text("0")
    outputs = {"INT": INT}
    comfy = ComfyAlias(("StringToInt",))

    def run(self):
        try:
            return int(self.string)
        except ValueError:
            digits = self.string.strip().lstrip("+-").replace("_", "")
            if digits.isdigit():  # a whole number past Python's digit limit
                import sys
                raise NodeInputError("string", f"a whole number of {len(digits)} digits: Python reads at most "
                                               f"{sys.get_int_max_str_digits()}") from None
            raise NodeInputError("string", f"{self.string[:60]!r} is not a whole number") from None


class AVStringToNumber(Node):
    """The number written in the text, as a FLOAT and as an INT rounded as chosen (round: Python's,
    halves to the even neighbour; floor; ceil)."""
    category = CATEGORY
    string: str = Text("0")
    rounding: str = Choice(("round", "floor", "ceil"), "round")
    outputs = {"INT": INT, "FLOAT": FLOAT}
    comfy = ComfyAlias(("StringToNumber",))

    def run(self):
        import math
        try:
            number = float(self.string)
        except ValueError:
            raise NodeInputError("string", f"{self.string[:60]!r} is not a number") from None
        if not math.isfinite(number):
            raise NodeInputError("string", f"{self.string[:60]!r} is not a finite number")
        whole = {"floor": math.floor, "ceil": math.ceil}.get(self.rounding, round)(number)
        return int(whole), number


class AVBooleanPrimitive(Node):
    """A boolean, flipped when reverse is on, and as text ("True" / "False", as Python writes it)."""
    category = CATEGORY
    value: bool = Bool(False)
    reverse: bool = Bool(False)
    outputs = {"BOOLEAN": BOOLEAN, "STRING": STRING}
    comfy = ComfyAlias(("BooleanPrimitive",))

    def run(self):
        value = self.value != self.reverse
        return value, str(value)


class AVNumberScaler(Node):
    """value mapped linearly from min..max onto scale_to_min..scale_to_max (not clamped: a value
    outside min..max lands outside the new range)."""
    category = CATEGORY
    min: float = Float(1.0, min=0.0, max=BIG)
    max: float = Float(10.0, min=0.0, max=BIG)
    scale_to_min: float = Float(0.0, min=0.0, max=BIG)
    scale_to_max: float = Float(1.0, min=0.0, max=BIG)
    value: float = Float(0.0, min=0.0, max=BIG)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("NumberScaler",))

    def run(self):
        if self.max == self.min:
            raise NodeInputError("max", f"{self.max} equals min: the range to scale from is empty")
        return (self.value - self.min) / (self.max - self.min) * (self.scale_to_max - self.scale_to_min) \
            + self.scale_to_min


def _drawing_generator():
    """A torch generator freshly seeded from the system's entropy: a new number each run, as the
    pack's draw from torch's global generator (never reused from the cache: see fingerprint)."""
    import random
    import torch
    return torch.Generator().manual_seed(random.SystemRandom().getrandbits(63))


def _every_run(cls, **widgets) -> float:
    """A fingerprint never equal to the last: the pack's IS_CHANGED is random, so it runs every time."""
    import random
    return random.random()


class AVRandomInt(Node):
    """A whole number drawn from min up to max - 1 (torch.randint), and as text. As in the pack it
    runs anew every time, giving a new number each run; the number drawn is shown on the node."""
    category = CATEGORY
    min: int = Int(0, min=0, max=SEED_MAX)
    max: int = Int(100, min=0, max=SEED_MAX)
    outputs = {"INT": INT, "STRING": STRING}
    comfy = ComfyAlias(("RandomInt",))

    fingerprint = classmethod(_every_run)

    def run(self):
        import torch
        if self.max <= self.min:
            raise NodeInputError("max", f"{self.max}: expected more than min ({self.min}); max itself is never drawn")
        if self.max > 2 ** 63 - 1:
            raise NodeInputError("max", f"{self.max}: torch.randint draws below 2^63 only")
        number = int(torch.randint(self.min, self.max, (1,), generator=_drawing_generator()).item())
        show(text=[str(number)])
        return number, str(number)


class AVRandomFloat(Node):
    """A number drawn uniformly from min..max (torch.rand scaled), and as text. As in the pack it
    runs anew every time, giving a new number each run; the number drawn is shown on the node."""
    category = CATEGORY
    min: float = Float(0.0, min=0.0, max=BIG)
    max: float = Float(1.0, min=0.0, max=BIG)
    outputs = {"FLOAT": FLOAT, "STRING": STRING}
    comfy = ComfyAlias(("RandomFloat",))

    fingerprint = classmethod(_every_run)

    def run(self):
        import torch
        number = torch.rand(1, generator=_drawing_generator()).item() * (self.max - self.min) + self.min
        show(text=[str(number)])
        return number, str(number)


class AVSeedSelector(Node):
    """seed when mode is on ("random"), fixed_seed when off ("fixed")."""
    category = CATEGORY
    mode: bool = Bool(True, label_on="random", label_off="fixed")
    seed: int = Int(0, min=0, max=SEED_MAX)
    fixed_seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"seed": INT}
    comfy = ComfyAlias(("SeedSelector",))

    def run(self):
        return self.seed if self.mode else self.fixed_seed


class AVSDXLAspectRatioSelector(Node):
    """The ratio's SDXL size (1024² pixels or near it): 2:3 is 832 × 1216, 16:9 1344 × 768, ..."""
    category = CATEGORY
    aspect_ratio: str = Choice(tuple(SDXL_SIZES), "1:1")
    outputs = {"ratio": STRING, "width": INT, "height": INT}
    comfy = ComfyAlias(("SDXLAspectRatioSelector",))

    def run(self):
        return (self.aspect_ratio, *SDXL_SIZES[self.aspect_ratio])


class AVAspectRatioSelector(Node):
    """The ratio's SDXL size scaled so its longer side is 768, each side cut down to a multiple of 8
    (2:3 is 520 × 768)."""
    category = CATEGORY
    aspect_ratio: str = Choice(SMALL_RATIOS, "1:1")
    outputs = {"ratio": STRING, "width": INT, "height": INT}
    comfy = ComfyAlias(("AspectRatioSelector",))

    def run(self):
        width, height = SDXL_SIZES[self.aspect_ratio]
        scale = 768 / max(width, height)
        return self.aspect_ratio, int(scale * width / 8) * 8, int(scale * height / 8) * 8


class AVCheckpointNameSelector(Node):
    """A checkpoint's file name, twice: for a loader's ckpt_name and as text."""
    category = CATEGORY
    ckpt_name: str = Choice(lambda: folders.list_models("checkpoints"), DEMO_CHECKPOINT, model_folder="checkpoints")
    outputs = {"ckpt_name": STRING, "ckpt_name_str": STRING}
    comfy = ComfyAlias(("CheckpointNameSelector",))

    def run(self):
        return self.ckpt_name, self.ckpt_name


class AVTextRandomMultiline(Node):
    """`amount` of the text's non-empty lines (each stripped) in an order shuffled by Python's
    random.Random(seed), as a list."""
    category = CATEGORY
    text: str = Text("", multiline=True)
    amount: int = Int(1, min=1, max=1024)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"lines": ListOf(STRING)}
    comfy = ComfyAlias(("TextRandomMultiline",))

    def run(self):
        import random
        lines = [line.strip() for line in self.text.strip().split("\n") if line.strip()]
        random.Random(self.seed).shuffle(lines)
        return lines[:self.amount]


class AVTextSwitchCase(Node):
    """The text of the case named by condition: switch_cases is lines "case<delimiter>text", a
    line without the delimiter continuing the case above; the first case whose name equals
    condition wins, else default_value. An empty delimiter is refused (the pack fails there)."""
    category = CATEGORY
    switch_cases: str = Text("", multiline=True)
    condition: str = Text("")
    default_value: str = Text("")
    delimiter: str = Text(":")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("TextSwitchCase",))

    def run(self):
        if not self.delimiter:
            raise NodeInputError("delimiter", "empty: expected the text between a case's name and its output")
        name, lines = None, []
        for line in self.switch_cases.split("\n"):
            if self.delimiter in line:
                if name is not None and name == self.condition:
                    break
                name, first = line.split(self.delimiter, 1)
                lines = [first]
            elif name is not None:
                lines.append(line)
        if name is not None and name == self.condition:
            return "\n".join(lines)
        return self.default_value


# -- JSON --------------------------------------------------------------------------------------------


def _parsed(text: str, input_name: str):
    """JSON text's value; text that is not JSON, or whose lists and objects nest deeper than
    MAX_JSON_DEPTH (Python's parser takes ~990 levels, more than later steps can walk), refused."""
    import json
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise NodeInputError(input_name, f"not JSON: {str(e)[:200]}") from None
    if json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise NodeInputError(input_name, f"lists and objects nest deeper than {MAX_JSON_DEPTH} levels")
    return value


class AVLoadJsonFromText(Node):
    """The JSON text parsed into its value (an object, a list, ...). Lists and objects nested
    deeper than 64 levels are refused (the pack takes what Python's parser takes)."""
    category = CATEGORY
    data: str = Text("", multiline=True)
    outputs = {"JSON": JSON}
    comfy = ComfyAlias(("LoadJsonFromText",))

    def run(self):
        return _parsed(self.data, "data")


def _json_value(data, key: str, default):
    """The value at key's dotted path ("a.b", "[0]" for a list's item), as the pack's
    get_dict_attribute finds it; default where the path leads nowhere or to null. Text that opens
    an object or a list (JSON text, as Crystools' JSON may carry) is parsed first; other text (a
    JSON document that is a string) has no keys, as in the pack."""
    if len(key) > MAX_KEY_LENGTH:
        raise NodeInputError("key", f"{len(key)} characters: at most {MAX_KEY_LENGTH}")
    if isinstance(data, str) and data.lstrip()[:1] in ("{", "["):
        data = _parsed(data, "json")
    value = data
    for part in key.split("."):
        if part.startswith("[") and part.endswith("]"):
            try:
                index = int(part[1:-1])
            except ValueError:
                return default
            if not isinstance(value, (list, tuple)) or not -len(value) <= index < len(value):
                return default
            value = value[index]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return default
        if value is None:
            return default
    return value


class AVGetObjectFromJson(Node):
    """The value at key's path ("a.b.[0].c"): {} where there is none."""
    category = CATEGORY
    json: JSON
    key: str = Text("")
    outputs = {"JSON": JSON}
    comfy = ComfyAlias(("GetObjectFromJson",))

    def run(self):
        return _json_value(self.json, self.key, {})


class AVGetTextFromJson(Node):
    """The value at key's path as text (Python's str(): a number "3", an object as Python writes a
    dict); "" where there is none. A value Python can't write (nested past its recursion limit, a
    whole number of over 4300 digits) is refused."""
    category = CATEGORY
    json: JSON
    key: str = Text("")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("GetTextFromJson",))

    def run(self):
        value = _json_value(self.json, self.key, "")
        try:
            return str(value)
        except RecursionError:
            raise NodeInputError("json", f"the value at {self.key!r} nests too deeply to write as text") from None
        except ValueError as e:  # an int past Python's digit limit for text
            raise NodeInputError("key", f"{self.key!r} holds a value Python won't write as text: {e}") from None


def _shown(value) -> str:
    """The start of a value as text for an error message, or its kind where Python can't write it."""
    try:
        return repr(str(value)[:60])
    except (RecursionError, ValueError):
        return f"a {type(value).__name__}"


def _number(value, kind, key: str):
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise NodeInputError("key", f"{key!r} holds {_shown(value)}, not a number") from None


class AVGetFloatFromJson(Node):
    """The value at key's path as a number (float(): "2.5" text too); 0.0 where there is none."""
    category = CATEGORY
    json: JSON
    key: str = Text("")
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("GetFloatFromJson",))

    def run(self):
        import math
        number = _number(_json_value(self.json, self.key, 0.0), float, self.key)
        if not math.isfinite(number):
            raise NodeInputError("key", f"{self.key!r} holds {number}, not a finite number")
        return number


class AVGetIntFromJson(Node):
    """The value at key's path as a whole number (int(): 2.9 is 2, "7" text too); 0 where there is none."""
    category = CATEGORY
    json: JSON
    key: str = Text("")
    outputs = {"INT": INT}
    comfy = ComfyAlias(("GetIntFromJson",))

    def run(self):
        return _number(_json_value(self.json, self.key, 0), int, self.key)


class AVGetBoolFromJson(Node):
    """The value at key's path as a boolean; False where there is none. The pack passes whatever
    is there on as the BOOLEAN; here true / false pass as they are, a number is true when not 0,
    and anything else (text, a list, an object, NaN or an infinity) is refused."""
    category = CATEGORY
    json: JSON
    key: str = Text("")
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("GetBoolFromJson",))

    def run(self):
        import math
        value = _json_value(self.json, self.key, False)
        if isinstance(value, (bool, int)) or isinstance(value, float) and math.isfinite(value):
            return bool(value)
        raise NodeInputError("key", f"{self.key!r} holds {_shown(value)}, not true / false or a number")
