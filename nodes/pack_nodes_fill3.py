"""filliptm's ComfyUI_Fill-Nodes, round 3 (rounds 1 and 2 are nodes/pack_nodes_fill.py and
nodes/pack_nodes_fill2.py): more of its model-free classes, under the pack's class names, display
names (its __init__.py at 003fd21a70528c707c34178543948fa992458781), inputs (order, defaults, ranges),
outputs (their RETURN_NAMES, or types where it gives none) and categories. Read from the pack's
nodes/*.py at these commits:
  e781475a858d62b42312ed05bbbf82845b7bd564 FL_PasteByMask.py (the whole file: tensor2mask,
  tensor2rgba, its gaussian_blur and the nine blend modes); 7e40cac64901cf4b1df0d3e2c3294aeb715dea36
  FL_BlackFrameReject.py; 88056c54e5b1db57e5645a61cda244d211013d4b utility/FL_SD_Slices.py
  (FL_SDUltimate_Slices) and image/FL_AnimeLineExtractor.py (its earlier layout, without invert_output,
  at 504358021a82ba91674cce42a8e984fb1ef3b926);
  FL_VideoCropNStitch.py (FL_VideoCropMask, FL_VideoRecompose) in its later version, which scales an
  oversized crop back inside the frame and clamps the recomposed box (the index holds it without a
  commit; its version at 88056c54 lets a crop run off the frame); 88056c54
  api_tools/FL_API_Base64_ImageLoader.py and api_tools/FL_API_ImageSaver.py (with user_id; their
  earlier layouts, refused from UI saves, at 655316e60fdf4d2d219983e51b41594d8a421e27 and
  19588f1b62ea00875ac8b22bc529032966ee7291);
  5d9f67074ba74659e2bb3e2c757d0e15eeade220 FL_ImageCaptionLayout.py; 88056c54 utility/FL_ClipScanner.py
  (its tokenizer, open_clip's SimpleTokenizer, read in open_clip 3.3's tokenizer.py as installed here)
  and captioning/FL_Video_Caption_Saver.py (the OpenCV version; an earlier one wrote with moviepy);
  FL_ZipDirectory.py (as the index holds it); FL_BulletHellGame.py and FL_TetrisGame.py at
  8716aa7286ead65e72c24d1c0809f66c4deda696, utility/FL_SystemCheck.py at
  82f6242b7f2270c736a13b2ecacd4f240a79ff3a. Read to sort out the classes not built: FL_HunyuanDelight.py at
  469d0c28b538720149487095251f140f23f0bac8, FL_BatchAligned.py at 5d9f6707 (FL_BatchAlign, a model patch:
  not built yet), and FL_PDFToImages.py, FL_TextToPDF.py, FL_PDFEncryptor.py, FL_ImageCaptionLayoutPDF.py,
  FL_WF_Agent.py and FL_TimeLine.py as the index holds them. Built from video/FL_VideoCut.py at
  88056c54 (FL_VideoCut, which calls itself FL_SceneCut); FL_ProResVideo.py at
  b040953d53e9bc99ad8340327946f66d87480e6b (its ffmpeg version; the earlier one, with moviepy, read as
  the index holds it); FL_FractalKSampler from wip/FL_KsamplerFractals.py at 88056c54 (its second
  version; the first, nodes/FL_KsamplerFractals.py at ab164ec202a0de86306cc805db865d5006785076, fails
  on every run, and its UI saves are refused). Built from the index's copy without a commit:
  FL_NFTGenerator.py in its version that also looks in the pack's folder;
  and from 9119ccecb2eb5715b172a8871e7e6505a2cdb5b2 FL_KSamplerXYZPlot.py (the same at 88056c54 as
  ksamplers/FL_KSamplerXYZPlot.py), FL_UpscaleModel.py in its latest layout the index holds (precision
  auto / 32 / 16 / bfloat16 and batch_size; ComfyUI's should_use_fp16 / should_use_bf16 read as "a GPU").

Nodes here: FL_PasteByMask (Masquerade's Paste By Mask as the pack forked it, with blend modes and
feathering; built on nodes/pack_nodes_masquerade.py's conversions, boxes and sizes),
FL_BlackFrameReject, FL_SDUltimate_Slices, FL_AnimeLineExtractor (OpenCV, as the pack),
FL_VideoCropMask and FL_VideoRecompose (their CROP_DATA a list of boxes, one a frame; WAS Node
Suite's socket of that name carries another shape, which FL_VideoRecompose refuses),
FL_API_Base64_ImageLoader, FL_API_ImageSaver, FL_ImageCaptionLayout, FL_ZipDirectory and
FL_VideoCaptionSaver (files read only inside the inputs folder, or the outputs folder for the zipper
as for round 2's FL_ZipSave, and written only inside the outputs folder; the pack reads and writes
anywhere on disk), FL_NFTGenerator (the same; its files in order of name), FL_ClipScanner
(graphflow's CLIP tokenizer, whose ids are open_clip's), FL_KSamplerXYZPlot (graphflow's KSampler,
VAEEncode and VAEDecode, its grid drawn with Pillow as the pack draws it), FL_FractalKSampler
(graphflow's KSampler, at the one level the pack runs), FL_BulletHellGame, FL_TetrisGame and
FL_SystemCheck (nodes that do nothing, as in the pack; their editor scripts and web route are not
served), FL_ProResVideo and FL_VideoCut (OpenCV's measures as the pack's; clips through graphflow's
PyAV writer with the pack's ffmpeg settings), FL_UpscaleModel
(ImageUpscaleWithModel on a copy of the model in the chosen precision). The pack's other
classes are named in graphflow/comfy_format.py (FILL_LEFT_OUT with why, FILL_LATER not built yet).

Where the pack draws from Python's global random state (FL_NFTGenerator's random.seed(dummy_seed)),
ours draws the same numbers from a generator of its own, so a run repeats and other nodes' draws are
untouched; its help says so.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from graphflow.api import (
    CONDITIONING, FLOAT, IMAGE, INT, LATENT, MODEL, STRING, VAE, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node,
    NodeInputError, Size, Text, check_interrupted, socket_type,
)
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.image import _image
from nodes.pack_nodes_fill import _channels, _levels
from nodes.pack_nodes_fill2 import KSAMPLERS, MASK_MAPPING, UTILITY_LOWER
from nodes.pack_nodes_masquerade import PASTE_BEHAVIORS, _fit_mask, _tensor, as_mask, as_rgba, mask_boxes, placed_paste
from nodes.upscale import UPSCALE_MODEL

COMFY_PACK = "ComfyUI_Fill-Nodes"  # the custom node pack this module's ComfyUI classes come from
# WAS Node Suite's socket of the same name carries another shape; FL_VideoRecompose refuses it
CROP_DATA = socket_type("CROP_DATA", "#9e9e9e", "A crop's box")

BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "hard_light", "darken", "lighten",
               "difference")


def blended(mode: str, top, base):
    """The pack's blend of the pasted picture `top` over `base`, channel by channel (alpha too)."""
    import torch
    if mode == "multiply":
        return top * base
    if mode == "screen":
        return 1.0 - (1.0 - top) * (1.0 - base)
    if mode == "overlay":
        doubled = 2.0 * base
        return torch.where(doubled <= 1.0, top * doubled, 1.0 - (1.0 - top) * (2.0 - doubled))
    if mode == "soft_light":
        return torch.where(top <= 0.5, base - (1.0 - 2.0 * top) * base * (1.0 - base),
                           base + (2.0 * top - 1.0) * (torch.sqrt(base) - base))
    if mode == "hard_light":
        return torch.where(top <= 0.5, 2.0 * top * base, 1.0 - 2.0 * (1.0 - top) * (1.0 - base))
    if mode == "darken":
        return torch.minimum(top, base)
    if mode == "lighten":
        return torch.maximum(top, base)
    if mode == "difference":
        return (top - base).abs()
    return top


def feathered(amount, feather: int):
    """The pack's feathering: a Gaussian of sigma feather / 10 over max(3, 2 (feather // 5) + 1) taps
    each way, zeros beyond the picture's edges."""
    import torch
    import torch.nn.functional as F
    taps = max(3, int(feather / 5) * 2 + 1)
    x = torch.arange(taps, dtype=torch.float64) - taps // 2
    weights = torch.exp(-x * x / (2 * (feather / 10.0) ** 2))
    kernel = torch.outer(weights, weights)
    kernel = (kernel / kernel.sum()).to(amount)
    return F.conv2d(amount[None, None], kernel[None, None], padding=taps // 2)[0, 0]


class FillPasteByMask(Node):
    """Paste image_to_paste onto image_base over each mask's bounding box (its pixels not 0), as the
    pack's fork of Masquerade's Paste By Mask does: resize fits the box exactly, keep_ratio_fill
    covers it keeping the paste's ratio, keep_ratio_fit fits inside it, source_size /
    source_size_unmasked keep the paste's size (bicubic resizing, centred on the box). The paste's
    alpha, limited by the mask (not for keep_ratio_fill and source_size_unmasked, which may spill
    outside it), mixes blend_mode's result in: normal (the paste), multiply, screen, overlay,
    soft_light, hard_light, darken, lighten, difference, each the usual formula on every channel,
    alpha too. feather_amount above 0 blurs that mixing amount (a Gaussian of sigma feather / 10,
    the picture's outside counting as 0), so the paste's white surroundings fade in at its edges,
    as in the pack. mask is an IMAGE: its alpha where not all 1, else its luma (a MASK link is taken
    too). Gives RGBA. Without mask_mapping_optional the three batches are repeated in turn to the
    largest; with it, mask i and paste i modulo their count go onto base image mapping[i] modulo
    the base's count. A resized paste of no pixel, beyond 16384 a side or the server's max_pixels
    is refused (the pack fails on the first and tries the others)."""
    category = UTILITY_LOWER  # the pack's, lower case
    display_name = "FL Paste By Mask"
    image_base: IMAGE
    image_to_paste: IMAGE
    mask: IMAGE
    resize_behavior: str = Choice(PASTE_BEHAVIORS, "resize")
    blend_mode: str = Choice(BLEND_MODES, "normal")
    feather_amount: int = Int(0, min=0, max=100, step=1)
    mask_mapping_optional: MASK_MAPPING = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_PasteByMask",))

    @classmethod
    def estimate(cls, widgets, inputs):
        base = inputs.get("image_base")
        if base is None:
            return Estimate(None)
        if "mask_mapping_optional" in inputs:
            return Estimate(Size(base.batch, base.height, base.width))
        batches = [size.batch for size in (inputs.get("image_to_paste"), inputs.get("mask")) if size is not None]
        return Estimate(Size(max([base.batch, *batches]), base.height, base.width))

    def run(self):
        import torch

        from graphflow.sampling.guidance import repeat_to_batch  # the pack's ceiling repeat, cut to size
        base = as_rgba(_tensor(self.image_base, "image_base"))
        paste = as_rgba(_tensor(self.image_to_paste, "image_to_paste")).to(base)
        mask = as_mask(_tensor(self.mask, "mask")).to(base)
        mapping = self.mask_mapping_optional
        if mapping is not None:
            if not torch.is_tensor(mapping) or mapping.ndim != 1 or mapping.is_floating_point():
                raise NodeInputError("mask_mapping_optional", "expected a MASK_MAPPING (from FL Separate Mask "
                                                              "Components)")
            if mapping.numel() < mask.shape[0]:
                raise NodeInputError("mask_mapping_optional", f"{mapping.numel()} entries for {mask.shape[0]} "
                                                              "masks: expected one a mask")
        else:
            size = max(base.shape[0], paste.shape[0], mask.shape[0])
            base, paste, mask = repeat_to_batch(base, size), repeat_to_batch(paste, size), repeat_to_batch(mask, size)
        height, width = base.shape[1:3]
        mask = _fit_mask(mask, height, width)
        empty, boxes = mask_boxes(mask)
        result = base.clone()
        for i in range(mask.shape[0]):
            check_interrupted()
            if empty[i]:
                continue
            target = i % base.shape[0] if mapping is None else int(mapping[i]) % base.shape[0]
            placed = placed_paste(paste[i % paste.shape[0]][None], self.resize_behavior, boxes[i], mask[i],
                                  result[target])
            if placed is None:
                continue
            pasting, amount = placed
            if self.feather_amount > 0:
                amount = feathered(amount, self.feather_amount)
            amount = amount[..., None]
            under = result[target]
            result[target] = blended(self.blend_mode, pasting, under) * amount + under * (1.0 - amount)
        return result


# -- frames, slices, lines -------------------------------------------------------------------------

IMAGE_PROCESSING = "🏵️Fill Nodes/Image Processing"
BLACK_CHANNELS = ("all", "average", "luminance", "rgb")
SLICINGS = tuple(f"{across}x{down}" for across in range(1, 5) for down in range(1, 5))


class FillBlackFrameReject(Node):
    """Drop the images whose share of black pixels reaches threshold (percent); invert keeps those
    instead. A pixel is black where it is at most black_level: in every channel (all), in the
    channels' mean (average), in its luminance 0.2126 R + 0.7152 G + 0.0722 B (luminance), or in
    any channel (rgb); an RGBA image's alpha counts among the channels for all, average and rgb, as
    in the pack. Gives the kept images and how many were kept and dropped. A batch whose every image
    is dropped is refused (the pack gives an empty batch, which no node after it takes);
    show_progress has no effect here."""
    category = IMAGE_PROCESSING
    display_name = "FL Black Frame Reject"
    images: IMAGE
    threshold: float = Float(95.0, min=0.0, max=100.0, step=0.1)
    black_level: float = Float(0.05, min=0.0, max=0.5, step=0.01)
    channels: str = Choice(BLACK_CHANNELS, "luminance")
    invert: bool = Bool(False)
    show_progress: bool = Bool(True)
    outputs = {"filtered_images": IMAGE, "kept_count": INT, "rejected_count": INT}
    comfy = ComfyAlias(("FL_BlackFrameReject",), optional=("channels", "invert", "show_progress"))

    def run(self):
        import torch
        images = _image(self.images, "images")
        _channels(images, "images", (3, 4))
        if self.channels == "all":
            black = (images <= self.black_level).all(dim=-1)
        elif self.channels == "average":
            black = images.mean(dim=-1) <= self.black_level
        elif self.channels == "luminance":
            black = images[..., 0] * 0.2126 + images[..., 1] * 0.7152 + images[..., 2] * 0.0722 <= self.black_level
        else:
            black = (images <= self.black_level).any(dim=-1)
        percent = black.float().mean(dim=(1, 2)) * 100
        keep = percent >= self.threshold if self.invert else percent < self.threshold
        kept = int(keep.sum())
        if not kept:
            raise NodeInputError("images", f"all {images.shape[0]} images are dropped at a threshold of "
                                           f"{self.threshold}% black: nothing left to pass on")
        return images[torch.nonzero(keep)[:, 0].to(images.device)], kept, images.shape[0] - kept


class FillSDUltimateSlices(Node):
    """The tile size that cuts the image into the slicing's columns x rows (its width and height each
    divided, rounded down), times multiplier (then cut to a whole number): for Ultimate SD Upscale's
    tile_width / tile_height. Gives the image and multiplier on as they are."""
    category = "🏵️Fill Nodes/Utility"
    display_name = "FL SDUltimate Slices"
    image: IMAGE
    slicing: str = Choice(SLICINGS, "1x1")
    multiplier: float = Float(1.0, min=1.0, max=4.0, step=0.25)
    outputs = {"image": IMAGE, "slice_width": INT, "slice_height": INT, "multiplier": FLOAT}
    comfy = ComfyAlias(("FL_SDUltimate_Slices",), output_names=("image", "slice_width", "slice_height", "multiplier"))

    def run(self):
        images = _image(self.image, "image")
        across, down = map(int, self.slicing.split("x"))
        height, width = images.shape[1:3]
        return (self.image, int((width // across) * self.multiplier), int((height // down) * self.multiplier),
                self.multiplier)


class FillAnimeLineExtractor(Node):
    """Line art of each picture as white lines on black, by OpenCV as the pack does: its grey (8-bit,
    cut) blurred by an odd Gaussian of int(10 noise_reduction) pixels (one more when even; none at
    0), OpenCV's Gaussian adaptive threshold inverted over an odd block of int(50 (1 -
    detail_level)) + 11 pixels with the constant int(20 line_threshold), opened by a square of
    max(1, int(3 (1 - detail_level))) pixels and grown by one of line_width pixels when wider than
    1; invert_output (the pack's "White Background") gives black lines on white instead. RGB images
    only, as in the pack. A save of the pack's earlier layout, without invert_output, loads with it
    off (white lines on black, as that version drew)."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Anime Line Extractor"
    image: IMAGE
    line_threshold: float = Float(0.4, min=0.0, max=1.0, step=0.01)
    line_width: int = Int(1, min=1, max=5, step=1)
    detail_level: float = Float(0.5, min=0.1, max=1.0, step=0.01)
    noise_reduction: float = Float(0.3, min=0.0, max=1.0, step=0.01)
    invert_output: bool = Bool(False, description="White Background: black lines on white")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_AnimeLineExtractor",))

    def run(self):
        import cv2
        import numpy as np
        import torch
        images = _image(self.image, "image")
        _channels(images, "image", (3,))
        blur = int(self.noise_reduction * 10)
        blur += 1 - blur % 2
        block = int((1 - self.detail_level) * 50) + 11
        block += 1 - block % 2
        opening = np.ones((max(1, int((1 - self.detail_level) * 3)),) * 2, np.uint8)
        out = []
        for image in images:
            check_interrupted()
            grey = cv2.cvtColor(_levels(image), cv2.COLOR_RGB2GRAY)
            if self.noise_reduction > 0:
                grey = cv2.GaussianBlur(grey, (blur, blur), 0)
            lines = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, block,
                                          int(self.line_threshold * 20))
            lines = cv2.morphologyEx(lines, cv2.MORPH_OPEN, opening)
            if self.line_width > 1:
                lines = cv2.dilate(lines, np.ones((self.line_width, self.line_width), np.uint8), iterations=1)
            if self.invert_output:
                lines = cv2.bitwise_not(lines)
            out.append(torch.from_numpy(lines.astype(np.float32) / 255.0)[..., None].expand(-1, -1, 3))
        return torch.stack(out).to(images.device)


# -- video crop and recompose ----------------------------------------------------------------------


def _frame_masks(mask, video):
    """FL_VideoCropMask's mask as [B, H, W, C] (a MASK made a grey RGB picture, so its cropped masks are
    an IMAGE that IMAGE nodes take), one a frame of the video's size."""
    import torch
    if not torch.is_tensor(mask) or mask.ndim not in (3, 4):
        raise NodeInputError("mask", "expected an IMAGE ([B, H, W, C]) or a MASK ([B, H, W])")
    mask = mask[..., None].expand(-1, -1, -1, 3) if mask.ndim == 3 else mask
    if mask.shape[1:3] != video.shape[1:3]:
        raise NodeInputError("mask", f"is {mask.shape[2]}×{mask.shape[1]}, but the video is "
                                     f"{video.shape[2]}×{video.shape[1]}: they must be the same size")
    if mask.shape[0] < video.shape[0]:
        raise NodeInputError("mask", f"{mask.shape[0]} masks for {video.shape[0]} frames: expected one a frame")
    return mask.to(video.device)


class FillVideoCropMask(Node):
    """Crop each frame around its mask (the pixels whose channels sum above 0) and resize the crop to
    output_width x output_height (bilinear; the mask nearest), as the pack's later version does:
    the box grows by padding on each side (its width and height are the last minus the first pixel,
    plus twice the padding), its centre and size move smoothing_factor of the way from the last
    frame's to this one's (cut to whole pixels; 1 follows each frame, 0 keeps the first), a frame
    with an empty mask keeps the last crop (the whole frame before any), then the crop widens or
    heightens to the output's ratio, shrinks to fit the frame keeping it, and slides inside the
    frame. Gives the crops, the cropped masks, the video as it was and each frame's crop
    (crop_data, for FL_VideoRecompose). A box of no width and height, where the pack divides by
    zero, becomes a one-pixel crop. A MASK linked to mask is taken as a grey RGB picture, so the
    cropped masks come out RGB too."""
    category = "🏵️Fill Nodes/Utility"
    display_name = "FL Video CropMask"
    video: IMAGE
    mask: IMAGE
    output_width: int = Int(512, min=64, max=2048, step=64, resource="width")
    output_height: int = Int(512, min=64, max=2048, step=64, resource="height")
    padding: int = Int(0, min=0, max=100, step=1)
    smoothing_factor: float = Float(0.5, min=0.0, max=1.0, step=0.1)
    outputs = {"cropped_video": IMAGE, "mask": IMAGE, "original_video": IMAGE, "crop_data": CROP_DATA}
    comfy = ComfyAlias(("FL_VideoCropMask",), output_names=("cropped_video", "mask", "original_video", "crop_data"))

    def run(self):
        import torch
        import torch.nn.functional as F
        video = _image(self.video, "video")
        mask = _frame_masks(self.mask, video)
        batch, height, width = video.shape[:3]
        out_w, out_h, smooth = self.output_width, self.output_height, self.smoothing_factor
        crops, masks, crop_data, last = [], [], [], None
        for i in range(batch):
            check_interrupted()
            rows, columns = torch.where(mask[i].sum(dim=-1) > 0)
            if rows.numel():
                top, bottom, left, right = int(rows.min()), int(rows.max()), int(columns.min()), int(columns.max())
                box = ((left + right) // 2, (top + bottom) // 2, right - left + 2 * self.padding,
                       bottom - top + 2 * self.padding)
            else:
                box = last or (width // 2, height // 2, width, height)
            if last is not None:
                box = tuple(int(smooth * now + (1 - smooth) * before) for now, before in zip(box, last))
            last = box
            center_x, center_y, crop_w, crop_h = box
            ratio = out_w / out_h
            if crop_h and crop_w / crop_h > ratio or not crop_h and crop_w:
                crop_h = int(crop_w / ratio)
            else:
                crop_w = int(crop_h * ratio)
            crop_w, crop_h = max(1, crop_w), max(1, crop_h)
            scale = min(width / crop_w, height / crop_h, 1.0)
            crop_w, crop_h = max(1, int(crop_w * scale)), max(1, int(crop_h * scale))
            top = min(max(0, center_y - crop_h // 2), height - crop_h)
            left = min(max(0, center_x - crop_w // 2), width - crop_w)
            frame = video[i, top:top + crop_h, left:left + crop_w].movedim(-1, 0)[None]
            crops.append(F.interpolate(frame, size=(out_h, out_w), mode="bilinear", align_corners=False)[0])
            frame_mask = mask[i, top:top + crop_h, left:left + crop_w].movedim(-1, 0)[None]
            masks.append(F.interpolate(frame_mask, size=(out_h, out_w), mode="nearest")[0])
            crop_data.append({"top": top, "bottom": top + crop_h, "left": left, "right": left + crop_w,
                              "original_height": height, "original_width": width, "output_height": out_h,
                              "output_width": out_w})
        return torch.stack(crops).movedim(1, -1), torch.stack(masks).movedim(1, -1), self.video, crop_data


def _fitted_channels(region, crop):
    """The resized crop given the frame region's channels, as the pack's later recompose does: an RGBA
    crop over RGB(A) mixed by its alpha (the frame's extra channels taken from the crop's), other
    counts copied channel for channel over the region."""
    if crop.shape[-1] == region.shape[-1]:
        return crop
    fitted = region.clone()
    if crop.shape[-1] == 4 and region.shape[-1] >= 3:
        alpha = crop[..., 3:4].clamp(0.0, 1.0)
        fitted[..., :3] = crop[..., :3] * alpha + region[..., :3] * (1.0 - alpha)
        shared = min(region.shape[-1], 4) - 3
        fitted[..., 3:3 + shared] = crop[..., 3:3 + shared]
        return fitted
    shared = min(region.shape[-1], crop.shape[-1])
    fitted[..., :shared] = crop[..., :shared]
    return fitted


class FillVideoRecompose(Node):
    """Put each frame's crop back where FL_VideoCropMask cut it: the cropped frame resized (bilinear)
    to its box, cut to the frame, over the original frame (an RGBA crop mixed in by its alpha; other
    channel counts copied channel for channel); a box of no area leaves the frame as it was."""
    category = "🏵️Fill Nodes/experiments"
    display_name = "FL Video Recompose"
    original_video: IMAGE
    cropped_video: IMAGE
    crop_data: CROP_DATA
    outputs = {"output_video": IMAGE}
    comfy = ComfyAlias(("FL_VideoRecompose",))

    def run(self):
        import torch.nn.functional as F
        video = _image(self.original_video, "original_video")
        crops = _image(self.cropped_video, "cropped_video").to(video)
        boxes = self.crop_data
        keys = ("top", "bottom", "left", "right")
        if not isinstance(boxes, list) or not all(isinstance(box, dict) and all(
                isinstance(box.get(key), int) for key in keys) for box in boxes):
            raise NodeInputError("crop_data", "expected FL_VideoCropMask's crop_data (a list of boxes, one a "
                                              "frame; another pack's CROP_DATA is not read)")
        batch, height, width = video.shape[:3]
        for name, count in (("crop_data", len(boxes)), ("cropped_video", crops.shape[0])):
            if count < batch:
                raise NodeInputError(name, f"{count} for {batch} frames: expected one a frame")
        out = video.clone()
        for i in range(batch):
            check_interrupted()
            top = max(0, min(height, boxes[i]["top"]))
            bottom = max(top, min(height, boxes[i]["bottom"]))
            left = max(0, min(width, boxes[i]["left"]))
            right = max(left, min(width, boxes[i]["right"]))
            if bottom <= top or right <= left:
                continue
            crop = F.interpolate(crops[i].movedim(-1, 0)[None], size=(bottom - top, right - left), mode="bilinear",
                                 align_corners=False)[0].movedim(0, -1)
            out[i, top:bottom, left:right] = _fitted_channels(out[i, top:bottom, left:right], crop)
        return out


# -- API tools -------------------------------------------------------------------------------------

API_TOOLS = "🏵️Fill Nodes/API Tools"
API_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}  # FL_API_ImageSaver's, by name


def _base64_size(width: int, height: int, to_width: int, to_height: int, keep_ratio: bool) -> tuple[int, int]:
    """FL_API_Base64_ImageLoader's size: 0 keeps a side (or, keeping the ratio, follows the other);
    both given and keeping the ratio, the picture fits inside them; sides cut to whole pixels."""
    if not to_width and not to_height:
        return width, height
    if not keep_ratio:
        return to_width or width, to_height or height
    if not to_width:
        return int(width * to_height / height), to_height
    if not to_height:
        return to_width, int(height * to_width / width)
    scale = min(to_width / width, to_height / height)
    return int(width * scale), int(height * scale)


def _loader_widgets(values: list) -> list:
    """A UI save of FL_API_Base64_ImageLoader in the layout built here (88056c54: user_id between
    job_id and category, and a user_id output before category); the earlier layout (655316e6,
    seven widgets, category the fifth output) is refused rather than read shifted, as its links
    from category would land on user_id."""
    if len(values) == 7:
        raise ValueError("a save with 7 widget values is from an earlier version of the pack (655316e6: no user_id, "
                         "category its 5th output): not read; graphflow builds the layout of 88056c54 (base64_string, "
                         "job_id, user_id, category, ...; outputs image, width, height, job_id, user_id, category): "
                         "put a new FL API Base64 Image Loader in its place")
    return values


_loader_widgets.doc_note = "UI saves of the pack's earlier layout refused, naming its version (see the node's help)"


class FillAPIBase64ImageLoader(Node):
    """A picture from base64 text (with auto_clean_base64, whitespace removed and anything up to a
    data URL's "base64," dropped first), made RGB (Pillow's conversion: an alpha is dropped, not
    mixed), resized with Lanczos where resize_width / resize_height ask (see their help: 0 keeps a
    side), as the pack does. Gives it with its width and height, and job_id, user_id and category
    passed on. This is the pack's layout at 88056c54; a save of its earlier one (no user_id) is
    refused, not read shifted."""
    category = API_TOOLS
    display_name = "FL API Base64 Image Loader"
    base64_string: str = Text("", multiline=True)
    job_id: str = Text("")
    user_id: str = Text("")
    job_category: str = Text("", description="The pack's `category`, passed on")
    resize_width: int = Int(0, min=0, max=8192, step=8, description="0: the picture's, or with "
                                                                    "maintain_aspect_ratio the height's share")
    resize_height: int = Int(0, min=0, max=8192, step=8, description="0: the picture's, or with "
                                                                     "maintain_aspect_ratio the width's share")
    maintain_aspect_ratio: bool = Bool(True)
    auto_clean_base64: bool = Bool(True)
    outputs = {"image": IMAGE, "width": INT, "height": INT, "job_id": STRING, "user_id": STRING,
               "category": STRING}
    comfy = ComfyAlias(("FL_API_Base64_ImageLoader",), inputs={"category": "job_category"},
                       optional=("resize_width", "resize_height", "maintain_aspect_ratio", "auto_clean_base64"),
                       widgets=_loader_widgets,
                       output_names=("image", "width", "height", "job_id", "user_id", "category"))

    def run(self):
        import base64
        import binascii
        import io
        import re

        import numpy as np
        import torch
        from PIL import Image, UnidentifiedImageError

        from graphflow.api import check_run_memory
        text = self.base64_string
        if self.auto_clean_base64:
            text = re.sub(r"\s+", "", text)
            if "base64," in text:
                text = text.split("base64,")[1]
        try:
            picture = Image.open(io.BytesIO(base64.b64decode(text)))
        except (binascii.Error, ValueError) as e:
            raise NodeInputError("base64_string", f"not base64 text: {e}") from None
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise NodeInputError("base64_string", f"the decoded bytes are not a picture Pillow reads: {e}") from None
        width, height = picture.size
        check_run_memory("base64_string", "the decoded picture", images=Size(1, height, width))
        new_width, new_height = _base64_size(width, height, self.resize_width, self.resize_height,
                                             self.maintain_aspect_ratio)
        if not new_width or not new_height:
            raise NodeInputError("resize_width" if not new_width else "resize_height",
                                 f"a {width}×{height} picture resized so is {new_width}×{new_height}: no pixel")
        check_run_memory("resize_width", "the resized picture", images=Size(1, new_height, new_width))
        try:
            picture = picture.convert("RGB") if picture.mode != "RGB" else picture
            if (new_width, new_height) != (width, height):
                picture = picture.resize((new_width, new_height), Image.LANCZOS)
            array = np.asarray(picture, dtype=np.float32) / 255.0
        except OSError as e:
            raise NodeInputError("base64_string", f"the picture can't be read: {e}") from None
        return (torch.from_numpy(array)[None], new_width, new_height, self.job_id, self.user_id,
                self.job_category)


def _saver_widgets(values: list) -> list:
    """A UI save of FL_API_ImageSaver in the layout built here (88056c54: user_id between job_id
    and category, four outputs); the earlier layout (19588f1b, five widgets, category the third
    output) is refused rather than read shifted, as its links from category would land on user_id."""
    if len(values) == 5:
        raise ValueError("a save with 5 widget values is from an earlier version of the pack (19588f1b: no user_id, "
                         "category its 3rd output): not read; graphflow builds the layout of 88056c54 (job_id, "
                         "user_id, category, base_output_dir, image_format, image_quality; outputs saved_path, "
                         "job_id, user_id, category): put a new FL API Image Saver in its place")
    return values


_saver_widgets.doc_note = _loader_widgets.doc_note


def _api_folder_part(name: str, input_name: str) -> str:
    """A category / user_id folder of FL_API_ImageSaver: '' for none, else a relative path that stays put."""
    from graphflow.folders import file_name_problem
    name = name.replace("\\", "/").strip().strip("/")
    if name and (problem := file_name_problem(name)) or "." in name.split("/"):
        raise NodeInputError(input_name, f"{name!r}: {problem or 'a folder named .'}: expected a folder name")
    return name


class FillAPIImageSaver(Node):
    """Save the image as <job_id>.<image_format> in the folder <category>/<user_id> inside
    base_output_dir, a folder inside the outputs folder (made when missing; an empty category or
    user_id adds no folder; the pack writes anywhere on disk, so its default, an absolute path, is
    refused here), replacing a file of that name: PNG, or JPEG / WebP at image_quality; 8-bit
    levels cut as ComfyUI's savers do. Gives the file's path in the outputs folder, job_id, user_id
    and category. One image a run, as in the pack; saved again every run. Everything is checked
    before a folder is made. This is the pack's layout at 88056c54; a save of its earlier one (no
    user_id) is refused, not read shifted."""
    category = API_TOOLS
    display_name = "FL API Image Saver"
    output_node = True
    cacheable = False  # the pack saves again every run (IS_CHANGED NaN)
    image: IMAGE
    job_id: str = Text("")
    user_id: str = Text("", description="The subfolder inside category the file goes in")
    job_category: str = Text("", description="The pack's `category`: the subfolder the file goes in")
    base_output_dir: str = Text("/absolute/path/to/output")
    image_format: str = Text("png", description="png, jpg, jpeg or webp")
    image_quality: int = Int(100, min=1, max=100, step=1)
    outputs = {"saved_path": STRING, "job_id": STRING, "user_id": STRING, "category": STRING}
    comfy = ComfyAlias(("FL_API_ImageSaver",), inputs={"category": "job_category"}, widgets=_saver_widgets)

    def run(self):
        from graphflow.api import folders
        from graphflow.folders import file_name_problem
        from graphflow.images import image_to_pil
        from nodes.pack_nodes_fill import _caption_folder, _write_replacing
        images = _image(self.image, "image")
        _channels(images, "image", (1, 3, 4))
        if images.shape[0] != 1:
            raise NodeInputError("image", f"a batch of {images.shape[0]}: the pack saves one image as "
                                          "<job_id>.<format>; pick one first")
        image_format = API_FORMATS.get(self.image_format.lower())
        if image_format is None:
            raise NodeInputError("image_format", f"{self.image_format!r}: expected one of {', '.join(API_FORMATS)}")
        file_name = f"{self.job_id}.{self.image_format}"
        if "/" in file_name or "\\" in file_name or file_name_problem(file_name) or not self.job_id.strip("."):
            raise NodeInputError("job_id", f"{self.job_id!r}: expected a file name, without folders")
        picture = image_to_pil(images[0])
        if image_format == "JPEG" and picture.mode == "RGBA":
            raise NodeInputError("image_format", "an RGBA image can't be saved as JPEG: choose png or webp")
        inside = [part for part in (_api_folder_part(self.job_category, "job_category"),
                                    _api_folder_part(self.user_id, "user_id")) if part]
        base = self.base_output_dir.replace("\\", "/").strip().rstrip("/")
        if problem := file_name_problem(base):
            raise NodeInputError("base_output_dir", f"{problem}: expected a folder inside the output folder")
        folder = _caption_folder("/".join([base, *inside]), "base_output_dir")
        options = {} if image_format == "PNG" else {"quality": self.image_quality}
        path = folder / file_name
        _write_replacing(path, lambda temporary: picture.save(temporary, image_format, **options))
        return path.relative_to(folders.outputs).as_posix(), self.job_id, self.user_id, self.job_category


# -- captions layout and zip -----------------------------------------------------------------------

LAYOUT_PICTURES = (".png", ".jpg", ".jpeg")  # FL_ImageCaptionLayout's
ZIP = socket_type("ZIP", "#795548", "A zip archive's bytes (ComfyUI_Fill-Nodes' FL_ZipDirectory)")


class FillImageCaptionLayout(Node):
    """A contact sheet of the .png / .jpg / .jpeg pictures (any case) in image_directory, a folder
    inside the inputs folder (the pack reads any on disk), sorted by name: images_per_row to a row,
    each made RGB and resized (Lanczos) to image_size square, its caption (the .txt of the same name
    beside it, else "No caption found") below it in black on a white box caption_height tall,
    wrapped at (image_size - 10) / (font_size / 2) characters, all on white with padding between.
    The text is Pillow's default font, which is what the pack draws with where Arial is not
    installed (font_size sets the wrapping only)."""
    category = "🏵️Fill Nodes/Captioning"
    display_name = "FL Image Caption Layout"
    output_node = True
    image_directory: str = Text("")
    images_per_row: int = Int(3, min=1, max=10)
    image_size: int = Int(256, min=64, max=1024)
    caption_height: int = Int(64, min=32, max=256)
    font_size: int = Int(12, min=8, max=32)
    padding: int = Int(10, min=0, max=100)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_ImageCaptionLayout",))

    @classmethod
    def fingerprint(cls, image_directory="", **widgets):
        from nodes.pack_nodes_fill2 import _folder_pictures
        try:
            folder, names = _folder_pictures(image_directory, "image_directory", LAYOUT_PICTURES)
            paths = [p for name in names for p in (folder / name, folder / (name.rsplit(".", 1)[0] + ".txt"))
                     if p.exists()]  # the captions too: a changed caption changes the sheet
            return ",".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)
        except (NodeInputError, OSError):
            return "missing"

    def run(self):
        import textwrap

        import numpy as np
        import torch
        from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

        from graphflow.api import check_run_memory
        from nodes.image import check_folder_pictures
        from nodes.pack_nodes_fill2 import _caption_inside, _folder_pictures
        from nodes.pack_nodes_masquerade import _check_size
        folder, names = _folder_pictures(self.image_directory, "image_directory", LAYOUT_PICTURES)
        if not names:
            raise NodeInputError("image_directory", f"no .png, .jpg or .jpeg pictures in {self.image_directory!r}")
        check_folder_pictures([folder / name for name in names], "image_directory", "image_directory")
        size, per_row, pad, caption_height = self.image_size, self.images_per_row, self.padding, self.caption_height
        rows = -(-len(names) // per_row)
        width, height = per_row * (size + pad) + pad, rows * (size + caption_height + pad) + pad
        _check_size(width, height, "image_directory")
        check_run_memory("image_directory", f"{len(names)} pictures laid out", images=Size(1, height, width))
        sheet = Image.new("RGB", (width, height), (255, 255, 255))
        font = ImageFont.load_default()
        wrap = (size - 10) // (self.font_size // 2)
        for index, name in enumerate(names):
            check_interrupted()
            try:
                with Image.open(folder / name) as picture:
                    picture = picture.convert("RGB").resize((size, size), Image.LANCZOS)
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
                raise NodeInputError("image_directory", f"{name!r} can't be read as a picture: {e}") from None
            caption_path = _caption_inside(folder, name.rsplit(".", 1)[0] + ".txt")
            caption = caption_path.read_text(encoding="utf-8", errors="replace").strip() if caption_path else (
                "No caption found")
            x = pad + index % per_row * (size + pad)
            y = pad + index // per_row * (size + caption_height + pad)
            sheet.paste(picture, (x, y))
            box = Image.new("RGB", (size, caption_height), (255, 255, 255))
            ImageDraw.Draw(box).text((5, 5), textwrap.fill(caption, width=wrap), font=font, fill=(0, 0, 0))
            sheet.paste(box, (x, y + size))
        return torch.from_numpy(np.asarray(sheet, dtype=np.float32) / 255.0)[None]


class FillZipDirectory(Node):
    """The files below directory_path, a folder inside the outputs folder (empty: the outputs folder
    itself; the pack zips any on disk), zipped (deflated) in memory under their paths in it, sorted
    (the pack takes them in the disk's order), as a ZIP socket's bytes; zip_filename names nothing
    that lasts, as in the pack. Links leading out of the outputs folder are left out; at most
    100,000 files and folders and 4 GiB, and no more than the memory holds (the archive is held
    whole, as the files' size at most). Zipped again every run, as in the pack."""
    category = "🏵️Fill Nodes/File Operations"
    display_name = "FL Zip Directory"
    cacheable = False  # the pack zips again every run (IS_CHANGED NaN)
    directory_path: str = Text("")
    zip_filename: str = Text("archive.zip")
    outputs = {"ZIP": ZIP}
    comfy = ComfyAlias(("FL_ZipDirectory",))

    def run(self):
        import tempfile

        from graphflow.api import check_run_memory, folders
        from nodes.pack_nodes_fill2 import _zip_sources, outputs_subfolder, zip_size, zipped_files
        source = outputs_subfolder(self.directory_path, "directory_path")
        files = _zip_sources(source, folders.outputs, self.directory_path, "directory_path")
        total = zip_size(files, "directory_path")
        check_run_memory("directory_path", f"zips {len(files)} files in memory", data=total)
        # built in a temporary file and read once: a BytesIO's growth and getvalue() each copy the archive
        with tempfile.TemporaryFile() as spool:
            zipped_files(spool, files)
            spool.seek(0)
            return spool.read()


# -- CLIP scanner ----------------------------------------------------------------------------------

# FL_ClipScanner's choices: (open_clip model, pretrained weights) each names; all share OpenAI's CLIP BPE
CLIP_SCANNER_MODELS = {"SDXL (ViT-G/14)": ("ViT-g-14", "laion2b_s12b_b42k"),
                       "SD 1.5 (ViT-L/14)": ("ViT-L-14", "openai"), "FLUX (ViT-L/14)": ("ViT-L-14", "openai")}


class FillClipScanner(Node):
    """How CLIP's tokenizer splits text: a report of the BPE tokens (as "word</w>" pieces) of the
    text cleaned as open_clip cleans it (ftfy, HTML entities, whitespace, lower case) and cut to one
    77-token window (75 tokens between its start and end), with their count. As in the pack, tokens
    that start with "<" and the bare "!" token are left out of the list and the count. Every choice
    uses the same tokenizer (open_clip's for ViT-L/14 and ViT-g/14); no model is loaded."""
    category = "🏵️Fill Nodes/Utility"
    display_name = "FL Clip Scanner (Kytra)"
    output_node = True
    model_type: str = Choice(tuple(CLIP_SCANNER_MODELS), "SDXL (ViT-G/14)")
    text: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_ClipScanner",))

    def run(self):
        from graphflow.api import show
        from graphflow.models.tokenizer import WINDOW, clip_bpe, encode_text
        ids = encode_text(self.text)[:WINDOW - 2]
        tokens = [token for token in clip_bpe().convert_ids_to_tokens(ids)
                  if not token.startswith("<") and token != "!"]
        model, pretrained = CLIP_SCANNER_MODELS[self.model_type]
        report = "\n".join(("=" * 60, f"Model: {self.model_type}", f"CLIP: {model} ({pretrained})",
                            f'Prompt: "{self.text}"', f"Tokenized Output: {tokens}", f"Token Count: {len(tokens)}",
                            "=" * 60))
        show(text=[report])
        return report


# -- video caption saver ---------------------------------------------------------------------------

VIDEO_CODECS = {"mp4": "mp4v", "avi": "XVID"}  # FL_VideoCaptionSaver's OpenCV fourcc a format


class FillVideoCaptionSaver(Node):
    """Save the frames as a video, <video_name>.mp4 (MPEG-4 part 2, OpenCV's mp4v) or .avi (XVID), at
    fps, with the caption in <video_name>.txt beside it, in folder_name, a folder inside the outputs
    folder (made when missing; the pack writes anywhere on disk). As in the pack, the caption keeps
    only ASCII letters, digits, whitespace and . , ! ? -, the name's other characters become _,
    overwrite off numbers the files name_1, name_2 ... instead, and quality has no effect (the pack
    works it out but never hands it to OpenCV). Frames are 8-bit levels cut; one-channel frames are
    grey. Gives a line saying what was saved."""
    category = "🏵️Fill Nodes/Captioning"
    display_name = "FL Video Caption Saver"
    output_node = True
    cacheable = False  # it writes files each run
    images: IMAGE
    folder_name: str = Text("output_videos")
    caption_text: str = Text("Your caption here")
    video_name: str = Text("video")
    fps: float = Float(24.0, min=1.0, max=60.0, step=1.0)
    format: str = Choice(tuple(VIDEO_CODECS), "mp4")
    quality: int = Int(8, min=1, max=10, step=1)
    overwrite: bool = Bool(True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_VideoCaptionSaver",))

    def run(self):
        import re

        import cv2

        from nodes.pack_nodes_fill import _caption_folder, _write_replacing
        images = _image(self.images, "images")
        _channels(images, "images", (1, 3))
        name = re.sub(r"[^a-zA-Z0-9_-]", "_", self.video_name)
        if not name:
            raise NodeInputError("video_name", "empty: expected a name for the video")
        folder = _caption_folder(self.folder_name)
        video, text = folder / f"{name}.{self.format}", folder / f"{name}.txt"
        counter = 1
        while not self.overwrite and (video.exists() or text.exists()):
            video, text = folder / f"{name}_{counter}.{self.format}", folder / f"{name}_{counter}.txt"
            counter += 1
        height, width = images.shape[1:3]

        def write(path):
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.format]), self.fps,
                                     (width, height), isColor=True)
            if not writer.isOpened():
                raise NodeInputError("format", f"OpenCV can't write {self.format} video here")
            try:
                for image in images:
                    check_interrupted()
                    levels = _levels(image)
                    writer.write(levels.repeat(3, axis=-1) if levels.shape[-1] == 1 else levels[..., ::-1].copy())
            finally:
                writer.release()
        _write_replacing(video, write, keep_suffix=True)
        caption = re.sub(r"[^a-zA-Z0-9\s.,!?-]", "", self.caption_text)
        _write_replacing(text, lambda path: path.write_text(caption, encoding="utf-8"))
        return f"Saved video with {images.shape[0]} frames and caption in '{self.folder_name}'"


# ProRes 4444 as FL_ProResVideo asks ffmpeg for it: profile 4 (4444), Apple's vendor tag, 8,000 bits a macroblock
PRORES_OPTIONS = {"profile": "4", "vendor": "apl0", "bits_per_mb": "8000"}


class FillProResVideo(Node):
    """Save the frames as a ProRes 4444 QuickTime video, <filename>.mov (any extension given
    dropped), at fps, in save_directory, a folder inside the outputs folder (empty: the outputs
    folder itself; made when missing; the pack writes anywhere on disk), as the pack asks FFmpeg:
    prores_ks, profile 4444, yuva444p10le, vendor apl0, 8,000 bits a macroblock, through graphflow's
    PyAV writer. Where the file is there, <filename>_1.mov, _2 ... are tried in turn (the pack adds a
    random number). The pack first writes the frames to an MPEG-4 part 2 file with OpenCV and
    converts that, which loses detail and any alpha; here the frames go to ProRes directly (8-bit
    levels, cut), the alpha dropped as there, so the alpha plane is opaque. Gives a line saying
    where the video was saved."""
    category = "🏵️Fill Nodes/video"
    display_name = "FL ProRes Video"
    output_node = True
    cacheable = False  # it writes a file each run
    images: IMAGE
    fps: float = Float(30.0, min=1.0, max=120.0, step=1.0)
    filename: str = Text("prores_output")
    save_directory: str = Text("", description="A folder inside the outputs folder; empty: the outputs folder")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_ProResVideo",))

    def run(self):
        import os

        from graphflow.api import folders
        from graphflow.folders import file_name_problem
        from graphflow.video import Video, VideoFileError, frame_rate, write_video
        from nodes.pack_nodes_fill import _caption_folder, _write_replacing
        images = _image(self.images, "images")
        _channels(images, "images", (1, 3, 4))
        stem = os.path.splitext(self.filename.strip())[0]
        if "/" in stem or file_name_problem(stem) or not stem.strip("."):  # a backslash is a problem too
            raise NodeInputError("filename", f"{self.filename!r}: expected a file name, without folders")
        folder = _caption_folder(self.save_directory, "save_directory") if self.save_directory.strip() else (
            folders.outputs)
        path, counter = folder / f"{stem}.mov", 1
        while path.exists():
            path, counter = folder / f"{stem}_{counter}.mov", counter + 1
        frames = images[..., :3] if images.shape[-1] == 4 else images
        video = Video(frames, frame_rate(self.fps))

        def write(temporary):
            try:
                write_video(temporary, video, "mov", "prores_ks", pix_fmt="yuva444p10le", options=PRORES_OPTIONS)
            except VideoFileError as e:
                raise NodeInputError("images", str(e)) from None
        _write_replacing(path, write)
        return f"Video saved to {path.relative_to(folders.outputs).as_posix()}"


# -- scene cut -------------------------------------------------------------------------------------

SCENE_METHODS = {"intensity": 0.8, "histogram": 3.0, "hybrid": 1.0}  # FL_VideoCut's threshold factor a method
SCENE_DETECTION_SIDE = 640  # FL_VideoCut's longest side for detection, with downsample_detection


def _scene_cut(method: str, levels, grey, i: int, limit: float) -> bool:
    """Whether FL_VideoCut sees a cut between frames i - 1 and i: their grey levels' mean absolute
    difference (intensity); the chi-square distance of their hue-saturation histograms (16 × 16,
    each scaled to 0..1) (histogram); or hybrid: no cut below 0.3 limit of grey difference, a cut
    above 3 limit, else 0.6 of it plus 0.4 of the mean size of their Sobel gradients' difference
    against 1.2 limit."""
    import cv2
    import numpy as np
    if method == "histogram":
        hists = []
        for frame in (levels[i], levels[i - 1]):
            hist = cv2.calcHist([cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)], [0, 1], None, [16, 16], [0, 180, 0, 256])
            hists.append(cv2.normalize(hist, hist, 0, 1, cv2.NORM_MINMAX))
        return cv2.compareHist(hists[0], hists[1], cv2.HISTCMP_CHISQR) > limit
    difference = float(np.mean(cv2.absdiff(grey[i], grey[i - 1])))
    if method == "intensity":
        return difference > limit
    if difference < limit * 0.3:
        return False
    if difference > limit * 3.0:
        return True
    dx = cv2.Sobel(grey[i], cv2.CV_64F, 1, 0, ksize=3) - cv2.Sobel(grey[i - 1], cv2.CV_64F, 1, 0, ksize=3)
    dy = cv2.Sobel(grey[i], cv2.CV_64F, 0, 1, ksize=3) - cv2.Sobel(grey[i - 1], cv2.CV_64F, 0, 1, ksize=3)
    return difference * 0.6 + float(np.mean(np.sqrt(dx ** 2 + dy ** 2))) * 0.4 > limit * 1.2


def scene_bounds(levels, threshold: float, min_length: int, method: str) -> list[int]:
    """FL_VideoCut's scene boundaries in 8-bit frames: 0, each cut at least min_length frames after
    the last, and the last frame's index; a scene shorter than min_length then loses its start, so
    it joins the scene before it. Scene k is frames bounds[k] up to, not including, bounds[k + 1]
    (the pack's: the very last frame is in none)."""
    import cv2
    grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in levels] if method != "histogram" else None
    limit = threshold * SCENE_METHODS[method]
    bounds = [0]
    for i in range(1, len(levels)):
        check_interrupted()
        if _scene_cut(method, levels, grey, i, limit) and i - bounds[-1] >= min_length:
            bounds.append(i)
    if bounds[-1] != len(levels) - 1:
        bounds.append(len(levels) - 1)
    return [start for start, end in zip(bounds, bounds[1:]) if end - start >= min_length] + [bounds[-1]]


class FillVideoCut(Node):
    """Find the scene cuts in the frames and save each scene of 3 frames or more as an H.264 MP4
    clip, scene_<number>.mp4 (scene_000 first; where the file is there, scene_000_1.mp4 ... as free;
    the pack adds a random tag), at fps, in output_folder, a folder inside the outputs folder (the
    pack's default ./output/scene_cuts is scene_cuts there; made when missing; the pack writes
    anywhere on disk). A cut is where detection_method finds the frames differ by more than
    threshold (intensity: their grey levels' mean absolute difference above 0.8 threshold;
    histogram: their hue-saturation histograms' chi-square distance above 3 threshold; hybrid:
    grey levels and Sobel edges, see the pack) at least min_scene_length frames after the last
    cut; a last scene shorter than that joins the one before, and the very last frame is in no clip,
    as in the pack. downsample_detection looks at frames shrunk (Lanczos) to 640 pixels on their
    longest side. Clips are libx264 at CRF int((100 - output_quality) / 4) + 1, preset veryfast,
    tuned for film, yuv420p, through graphflow's PyAV writer (the pack pipes to the ffmpeg program;
    its faststart is not applied here), so the frames' width and height must be even. Gives the
    clips' paths in the outputs folder joined by "," and the folder's. max_workers and
    use_gpu_acceleration change only the pack's speed and have no effect here (clips are written
    one after another)."""
    category = "🏵️Fill Nodes/Video"
    display_name = "FL Video Cut Detector"
    output_node = True
    cacheable = False  # it writes files each run
    images: IMAGE
    output_folder: str = Text("./output/scene_cuts")
    fps: int = Int(24, min=1, max=120, step=1)
    threshold: float = Float(30.0, min=1.0, max=100.0, step=0.1)
    min_scene_length: int = Int(12, min=2, max=1000, step=1)
    output_quality: int = Int(85, min=1, max=100, step=1)
    detection_method: str = Choice(tuple(SCENE_METHODS), "hybrid")
    max_workers: int = Int(4, min=1, max=16, step=1)
    downsample_detection: bool = Bool(True)
    use_gpu_acceleration: bool = Bool(True)
    outputs = {"video_paths": STRING, "output_folder": STRING}
    comfy = ComfyAlias(("FL_VideoCut",))

    def run(self):
        import numpy as np

        from graphflow.api import check_run_memory, folders
        from graphflow.images import resize_nchw
        from graphflow.video import Video, VideoFileError, frame_rate, write_video
        from nodes.pack_nodes_fill import _caption_folder, _write_replacing
        from nodes.pack_nodes_fill2 import outputs_folder_parts
        images = _image(self.images, "images")
        _channels(images, "images", (3,))
        batch, height, width = images.shape[:3]
        if width % 2 or height % 2:
            raise NodeInputError("images", f"{width}×{height}: H.264 clips in yuv420p need an even width and height")
        parts = outputs_folder_parts(self.output_folder, "output_folder")
        folder = _caption_folder("/".join(parts), "output_folder") if parts else folders.outputs
        seen = images
        if self.downsample_detection and max(width, height) > SCENE_DETECTION_SIDE:
            scale = SCENE_DETECTION_SIDE / max(width, height)
            seen = resize_nchw(images.movedim(-1, 1), int(width * scale), int(height * scale), "lanczos").movedim(1, -1)
        check_run_memory("images", "scene detection's 8-bit frames", data=seen.shape.numel() * 4 // 3)
        # the pack's levels: x · 255 in float32, truncated
        levels = (seen.detach().float().clamp(0, 1) * 255).cpu().numpy().astype(np.uint8)
        bounds = scene_bounds(levels, self.threshold, self.min_scene_length, self.detection_method)
        options = {"crf": str(int((100 - self.output_quality) / 4) + 1), "preset": "veryfast", "tune": "film"}
        saved = []
        for index, (start, end) in enumerate(zip(bounds, bounds[1:])):
            check_interrupted()
            if end - start < 3:
                continue
            path, counter = folder / f"scene_{index:03d}.mp4", 1
            while path.exists():
                path, counter = folder / f"scene_{index:03d}_{counter}.mp4", counter + 1
            clip = Video(images[start:end], frame_rate(self.fps))

            def write(temporary, clip=clip):
                try:
                    write_video(temporary, clip, "mp4", "libx264", options=options)
                except VideoFileError as e:
                    raise NodeInputError("images", str(e)) from None
            _write_replacing(path, write)
            saved.append(path.relative_to(folders.outputs).as_posix())
        return ",".join(sorted(saved)), folder.relative_to(folders.outputs).as_posix()


# -- NFT generator ---------------------------------------------------------------------------------


def _rarity(name: str) -> int:
    """An FL_NFTGenerator file's weight: the number between its first "-" and the "per" after it
    ("gold-25per.png" weighs 25)."""
    if "-" not in name:
        raise NodeInputError("folder_path", f"{name!r} is not named name-<weight>per.<ext> (as gold-25per.png)")
    try:
        return int(name.split("-")[1].split("per")[0])
    except ValueError:
        raise NodeInputError("folder_path", f"{name!r}: no whole-number weight between its first '-' and 'per' "
                                            "(as gold-25per.png)") from None


def _opened(path, name: str, header_only: bool = False):
    """A picture file as the pack's np.array of it: RGB / RGBA kept, other modes made RGB; or,
    header_only, its (width, height) without decoding it."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as picture:
            if header_only:
                return picture.size
            picture = picture if picture.mode in ("RGB", "RGBA") else picture.convert("RGB")
            return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None]
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise NodeInputError("folder_path", f"{name!r} can't be read as a picture: {e}") from None


class FillNFTGenerator(Node):
    """Pick one picture of folder_path, a folder inside the inputs folder (the pack also reads its own
    folder and any on disk), by weight: each file not named *-mask.* is named name-<weight>per.<ext>
    (gold-25per.png weighs 25), and the number Python's random.seed(dummy_seed) then random() gives
    falls in one of the weights' cumulative shares, as in the pack (drawn from a generator of its own:
    the same number, Python's shared random state left alone). The files go in order of name (the pack takes
    the disk's order, which differs between machines, so its pick does too). Gives the picture and
    its mask, <name>-mask.<ext> beside it, or black where there is none; RGB and RGBA files stay as
    they are, other modes are made RGB (the pack gives them as other shapes)."""
    category = "🏵️Fill Nodes/experiments"
    display_name = "FL NFT Generator"
    folder_path: str = Text("")
    dummy_seed: int = Int(0, min=0, max=1000000)
    outputs = {"IMAGE": IMAGE, "mask": IMAGE}
    comfy = ComfyAlias(("FL_NFTGenerator",), output_names=("IMAGE", "IMAGE"))  # the pack names none

    @classmethod
    def fingerprint(cls, folder_path="", **widgets):
        from nodes.pack_nodes_fill import _randomizer_folder, listed_files
        try:
            paths = listed_files(_randomizer_folder(folder_path, "folder_path"), ("",), "folder_path", folder_path)
            return ",".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)
        except (NodeInputError, OSError):
            return "missing"

    def run(self):
        import fnmatch
        import random

        import torch

        from graphflow.api import check_run_memory
        from nodes.image import check_folder_pictures
        from nodes.pack_nodes_fill import _randomizer_folder, listed_files
        from nodes.pack_nodes_fill2 import _caption_inside
        folder = _randomizer_folder(self.folder_path, "folder_path")
        files = [path for path in listed_files(folder, ("",), "folder_path", self.folder_path)
                 if not fnmatch.fnmatch(path.name, "*-mask.*")]
        if not files:
            raise NodeInputError("folder_path", f"no files in {self.folder_path!r}")
        weights = [_rarity(path.name) for path in files]
        total = sum(weights)
        if total <= 0:
            raise NodeInputError("folder_path", f"the weights add up to {total}: expected more than 0")
        shares = [weight / total for weight in weights]
        cumulative = [sum(shares[:i + 1]) for i in range(len(shares))]
        drawn = random.Random(self.dummy_seed).random()  # random.seed(seed) then random(), without the global state
        picked = next((path for path, share in zip(files, cumulative) if drawn <= share), None)
        if picked is None:
            raise NodeInputError("dummy_seed", f"the draw {drawn} falls past the weights' last share {cumulative[-1]}")
        mask_path = _caption_inside(folder, picked.name.rsplit(".", 1)[0] + "-mask" + picked.suffix)
        check_folder_pictures([picked, mask_path] if mask_path else [picked], "folder_path", "folder_path")
        width, height = _opened(picked, picked.name, header_only=True)
        check_run_memory("folder_path", f"{picked.name!r} and its mask", images=Size(2, height, width))
        image = _opened(picked, picked.name)
        mask = _opened(mask_path, mask_path.name) if mask_path else torch.zeros(1, *image.shape[1:3], 3)
        return image, mask


# -- XYZ plot --------------------------------------------------------------------------------------

PLOT_AXES = ("steps", "cfg", "denoise", "sampler_name", "scheduler")
PLOT_CELL_MARGIN, PLOT_LABEL_MARGIN, PLOT_TITLE_OFFSET = 70, 150, 70  # FL_KSamplerXYZPlot's, in pixels
PLOT_RANGES = {"steps": (1, 10000), "cfg": (0.0, 100.0), "denoise": (0.0, 1.0)}  # KSampler's widgets'
MOST_PLOT_CELLS = 1024  # samplings a plot (each a whole KSampler run)


def _plot_values(text: str, axis: str, input_name: str) -> list:
    """An axis's values as the pack parses them: names for sampler_name / scheduler, else numbers
    (steps cut to whole); each held to KSampler's choices and ranges."""
    parts = [part.strip() for part in text.split(",")]
    if axis in ("sampler_name", "scheduler"):
        known = SAMPLER_NAMES if axis == "sampler_name" else SCHEDULER_NAMES
        if unknown := [part for part in parts if part not in known]:
            raise NodeInputError(input_name, f"{', '.join(map(repr, unknown))}: not a {axis} (expected one of "
                                             f"{', '.join(known)})")
        return parts
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise NodeInputError(input_name, f"{text!r}: expected numbers separated by commas for {axis}") from None
    low, high = PLOT_RANGES[axis]
    if bad := [value for value in values if not low <= (int(value) if axis == "steps" else value) <= high]:
        raise NodeInputError(input_name, f"{bad[0]:g} is outside {axis}'s {low}..{high}")
    return values


def _plot_size(cell_width: int, cell_height: int, columns: int, rows: int, grids: int = 1,
               vertical: bool = True) -> tuple[int, int]:
    """The width and height of _plot_grid's grid, or of `grids` of them stacked."""
    width = columns * (cell_width + PLOT_CELL_MARGIN) + PLOT_CELL_MARGIN + PLOT_LABEL_MARGIN
    height = rows * (cell_height + PLOT_CELL_MARGIN) + PLOT_CELL_MARGIN + PLOT_LABEL_MARGIN
    return (width, height * grids) if vertical else (width * grids, height)


def _plot_grid(cells: list, x_values: list, y_values: list, x_axis: str, y_axis: str, font):
    """The pack's grid: cells in rows of len(x_values), the first row at the bottom, red axes, the
    values (as Python prints them) under the columns and left of the rows, the axes' names."""
    from PIL import Image, ImageDraw
    columns, rows = len(x_values), len(y_values)
    cell_width, cell_height = cells[0].size
    width, height = _plot_size(cell_width, cell_height, columns, rows)
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    draw.line([(PLOT_LABEL_MARGIN, height - PLOT_LABEL_MARGIN), (width, height - PLOT_LABEL_MARGIN)], fill="red",
              width=2)
    draw.line([(PLOT_LABEL_MARGIN, 0), (PLOT_LABEL_MARGIN, height - PLOT_LABEL_MARGIN)], fill="red", width=2)
    for index, cell in enumerate(cells):
        row = rows - 1 - index // columns
        grid.paste(cell, (index % columns * (cell_width + PLOT_CELL_MARGIN) + PLOT_CELL_MARGIN + PLOT_LABEL_MARGIN,
                          row * (cell_height + PLOT_CELL_MARGIN) + PLOT_CELL_MARGIN))
    for index, label in enumerate(x_values):
        x = index * (cell_width + PLOT_CELL_MARGIN) + PLOT_CELL_MARGIN + PLOT_LABEL_MARGIN + cell_width // 2
        draw.text((x, height - PLOT_LABEL_MARGIN + 5), str(label), fill="black", font=font, anchor="mt")
    for index, label in enumerate(y_values):
        y = (rows - 1 - index) * (cell_height + PLOT_CELL_MARGIN) + PLOT_CELL_MARGIN + cell_height // 2
        draw.text((PLOT_LABEL_MARGIN - 5, y), str(label), fill="black", font=font, anchor="rm")
    draw.text((width // 2, height - PLOT_TITLE_OFFSET), x_axis, fill="black", font=font, anchor="ms")
    draw.text((PLOT_TITLE_OFFSET, height // 2), y_axis, fill="black", font=font, anchor="ms")
    return grid


class FillKSamplerXYZPlot(Node):
    """A grid of KSampler runs over one or two or three settings: x_values across (left to right),
    y_values up (the first at the bottom), and with a z_axis one grid a z value, stacked vertically or
    horizontally, each titled "<axis>: <value>" at its top; every cell uses the other settings as
    given and the seed plus the input's index, and is decoded with vae (required: the cells are
    pictures). Values are separated by commas: numbers for steps (cut to whole), cfg and denoise,
    names for sampler_name and scheduler; the y value wins where both axes name one setting, as in
    the pack. Each input picture (input_type image: encoded with vae; latent: each latent of the
    batch) gives a grid of its own. Labels are Pillow's default font, what the pack draws with where
    Arial is not installed (the z titles there need Arial, and fail without it); the y axis' name
    is drawn level, as current Pillow draws the pack's rotated call. At most 1,024 cells."""
    category = KSAMPLERS
    display_name = "FL KSampler XYZ Plot"
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    seed: int = Int(0, min=0, max=0xffffffffffffffff)
    input_type: str = Choice(["latent", "image"], "latent")
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(7.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    x_axis: str = Choice(PLOT_AXES, "steps")
    x_values: str = Text("20,30,40")
    y_axis: str = Choice(PLOT_AXES, "steps")
    y_values: str = Text("7,8,9")
    z_axis: str = Choice(("none", *PLOT_AXES), "none")
    z_values: str = Text("")
    z_stack_mode: str = Choice(["vertical", "horizontal"], "vertical")
    latent_image: LATENT = None
    vae: VAE = None
    image: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_KSamplerXYZPlot",), optional=("latent_image", "vae", "image"))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageDraw, ImageFont

        from graphflow.api import check_run_memory
        from nodes.pack_nodes import _core
        from nodes.pack_nodes_masquerade import _check_size
        from nodes.sampling import KSampler
        from nodes.vae import VAEDecode, VAEEncode
        x_values = _plot_values(self.x_values, self.x_axis, "x_values")
        y_values = _plot_values(self.y_values, self.y_axis, "y_values")
        z_values = _plot_values(self.z_values, self.z_axis, "z_values") if self.z_axis != "none" else [None]
        if self.vae is None:
            raise NodeInputError("vae", "not connected: the plot's cells are decoded pictures")
        if self.input_type == "image":
            if self.image is None:
                raise NodeInputError("image", "not connected, and input_type is image")
            latents = [_core(VAEEncode, {"pixels": "image"}, pixels=picture[None], vae=self.vae)
                       for picture in _image(self.image, "image")]
        elif not isinstance(self.latent_image, dict) or not torch.is_tensor(self.latent_image.get("samples")):
            raise NodeInputError("latent_image", "not connected (or not a LATENT), and input_type is latent")
        else:
            samples = self.latent_image["samples"]
            latents = [{"samples": samples[i:i + 1]} for i in range(samples.shape[0])]
        cells_a_grid = len(x_values) * len(y_values) * len(z_values)
        if cells_a_grid * len(latents) > MOST_PLOT_CELLS:
            raise NodeInputError("x_values", f"{cells_a_grid * len(latents)} samplings: at most {MOST_PLOT_CELLS}")
        if self.seed + len(latents) - 1 > 0xffffffffffffffff:
            raise NodeInputError("seed", f"{self.seed}: the last input's seed + index passes 2⁶⁴ − 1")
        vertical = self.z_stack_mode == "vertical"

        def check_plot(cell_width, cell_height):
            width, height = _plot_size(cell_width, cell_height, len(x_values), len(y_values), len(z_values),
                                       vertical)
            _check_size(width, height, "x_values")
            check_run_memory("x_values", "the plot", images=Size(len(latents), height, width))
        downscale = getattr(self.vae, "downscale", None)
        checked = isinstance(downscale, int)
        if checked:  # refused before any sampling: the cells' size is the latent's times the downscale
            latent_height, latent_width = latents[0]["samples"].shape[-2:]
            check_plot(latent_width * downscale, latent_height * downscale)
        font = ImageFont.load_default()
        grids = []
        for index, latent in enumerate(latents):
            cells = []
            for z in z_values:
                for y in y_values:
                    for x in x_values:
                        check_interrupted()
                        settings = {"steps": self.steps, "cfg": self.cfg, "denoise": self.denoise,
                                    "sampler_name": self.sampler_name, "scheduler": self.scheduler}
                        settings[self.x_axis], settings[self.y_axis] = x, y
                        if self.z_axis != "none":
                            settings[self.z_axis] = z
                        settings["steps"] = int(settings["steps"])
                        sampled = _core(KSampler, model=self.model, positive=self.positive, negative=self.negative,
                                        seed=self.seed + index, latent_image=latent, **settings)
                        decoded = _core(VAEDecode, samples=sampled, vae=self.vae)
                        cells.append(Image.fromarray(_levels(decoded[0])))
                        if not checked:  # a VAE that doesn't give its downscale: after the first cell
                            check_plot(*cells[0].size)
                            checked = True
            per_z = len(x_values) * len(y_values)
            parts = []
            for i, z in enumerate(z_values):
                part = _plot_grid(cells[i * per_z:(i + 1) * per_z], x_values, y_values, self.x_axis, self.y_axis,
                                  font)
                if self.z_axis != "none":
                    ImageDraw.Draw(part).text((200, 10), f"{self.z_axis}: {z}", fill="black", font=font)
                parts.append(part)
            width, height = _plot_size(*cells[0].size, len(x_values), len(y_values), len(z_values), vertical)
            grid, at = Image.new("RGB", (width, height), "white"), 0
            for part in parts:
                grid.paste(part, (0, at) if vertical else (at, 0))
                at += part.height if vertical else part.width
            grids.append(torch.from_numpy(np.asarray(grid, dtype=np.float32) / 255.0))
        return torch.stack(grids)


# -- fractal sampler -------------------------------------------------------------------------------


def _fractal_widgets(values: list) -> list:
    """A UI save of FL_FractalKSampler in the layout built here (nodes/wip at 88056c54: seed, its
    control, steps, cfg, sampler_name, scheduler, denoise, scale_factor, blend_factor,
    fractal_levels); the pack's first version (ab164ec2: no scale_factor or blend_factor, one
    output), which fails on every run, is refused rather than read shifted."""
    if len(values) == 8:
        raise ValueError("a save with 8 widget values is from the pack's first FL_FractalKSampler (ab164ec2: seed, "
                         "steps, cfg, sampler_name, scheduler, denoise, fractal_levels; it fails on every run, reading "
                         "a decoded picture as channels-first): not read; graphflow builds the layout of 88056c54 "
                         "(scale_factor and blend_factor before fractal_levels; outputs LATENT, VAE): put a new FL "
                         "Fractal KSampler in its place")
    return values


_fractal_widgets.doc_note = _loader_widgets.doc_note


class FillFractalKSampler(Node):
    """KSampler, then its result enlarged by scale_factor in latent space (bilinear, sides cut to
    whole latent pixels) and cut into four quadrants at half its height and width, each sampled
    again (seed + 0 ... 3 in reading order, the same denoise) and mixed back over the enlarged
    latent by blend_factor, as the pack's second version (its WIP category) does at fractal_levels
    1. From 2 on the pack fails on every run (a deeper level hands back a quadrant enlarged again,
    which no longer fits its place), so fractal_levels above 1 is refused here, its default 2 too.
    Without latent_image it samples an empty 1 × 4 × 64 × 64 latent, as the pack. Gives the latent
    and the vae on, which the pack takes but does not use."""
    category = "🏵️Fill Nodes/WIP"
    display_name = "FL Fractal KSampler"
    model: MODEL
    vae: VAE
    positive: CONDITIONING
    negative: CONDITIONING
    seed: int = Int(0, min=0, max=0xffffffffffffffff)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(7.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    scale_factor: float = Float(1.25, min=1.1, max=2.0, step=0.05)
    blend_factor: float = Float(0.5, min=0.0, max=1.0, step=0.05)
    fractal_levels: int = Int(2, min=1, max=5)
    latent_image: LATENT = None
    outputs = {"LATENT": LATENT, "VAE": VAE}
    comfy = ComfyAlias(("FL_FractalKSampler",), optional=("latent_image",), widgets=_fractal_widgets)

    def run(self):
        import torch
        import torch.nn.functional as F

        from graphflow.api import check_run_memory
        from nodes.pack_nodes import _core
        from nodes.sampling import KSampler
        if self.fractal_levels > 1:
            raise NodeInputError("fractal_levels", f"{self.fractal_levels}: the pack fails from 2 on (a deeper level's "
                                                   "result is enlarged again and no longer fits its quadrant); "
                                                   "expected 1")
        if self.seed + 3 > 0xffffffffffffffff:
            raise NodeInputError("seed", f"{self.seed}: the last quadrant's seed + 3 passes 2⁶⁴ − 1")
        latent = self.latent_image
        if latent is None:
            latent = {"samples": torch.zeros(1, 4, 64, 64)}
        elif not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")) or latent["samples"].ndim != 4:
            raise NodeInputError("latent_image", "expected an image LATENT ([B, C, H, W] samples)")
        batch, _, height, width = latent["samples"].shape
        downscale = getattr(self.vae, "downscale", 8)
        check_run_memory("latent_image", "samples it", sampled=Size(batch, height * downscale, width * downscale))
        settings = dict(model=self.model, positive=self.positive, negative=self.negative, steps=self.steps,
                        cfg=self.cfg, sampler_name=self.sampler_name, scheduler=self.scheduler, denoise=self.denoise)
        first = _core(KSampler, seed=self.seed, latent_image=latent, **settings)["samples"]
        new_h, new_w = int(height * self.scale_factor), int(width * self.scale_factor)
        enlarged = F.interpolate(first, size=(new_h, new_w), mode="bilinear", align_corners=False)
        mid_h, mid_w = new_h // 2, new_w // 2
        out = enlarged.clone()
        for i, (rows, columns) in enumerate(((slice(None, mid_h), slice(None, mid_w)),
                                             (slice(None, mid_h), slice(mid_w, None)),
                                             (slice(mid_h, None), slice(None, mid_w)),
                                             (slice(mid_h, None), slice(mid_w, None)))):
            check_interrupted()
            quadrant = enlarged[:, :, rows, columns]
            sampled = _core(KSampler, seed=self.seed + i, latent_image={"samples": quadrant}, **settings)["samples"]
            out[:, :, rows, columns] = sampled.to(out) * self.blend_factor + quadrant * (1 - self.blend_factor)
        return {"samples": out}, self.vae


# -- nodes that do nothing here ------------------------------------------------------------------

GAMES = "🏵️Fill Nodes/games"


class FillBulletHellGame(Node):
    """Nothing to run: in the pack a bullet-hell game that its editor script draws and plays on the
    node, which graphflow's editor does not have. The node, as in the pack, takes and gives nothing
    and does no work, so a workflow holding it runs as it does in ComfyUI."""
    category = GAMES
    display_name = "FL BulletHell Game"
    outputs = {}
    comfy = ComfyAlias(("FL_BulletHellGame",))

    def run(self):
        return None


class FillTetrisGame(Node):
    """Nothing to run: in the pack a Tetris game that its editor script draws and plays on the node,
    which graphflow's editor does not have. The node, as in the pack, takes and gives nothing and
    does no work, so a workflow holding it runs as it does in ComfyUI."""
    category = GAMES
    display_name = "FL Tetris Game"
    outputs = {}
    comfy = ComfyAlias(("FL_TetrisGame",))

    def run(self):
        return None


class FillSystemCheck(Node):
    """Nothing to run: in the pack its editor script shows the machine's system details (Python,
    OS, CPU, RAM, GPU, library versions, environment variables) read from a web route the pack adds
    to ComfyUI's server; graphflow serves no such route (it would show the server's setup to anyone
    who can reach it). The node, as in the pack, takes and gives nothing and does no work, so a
    workflow holding it runs as it does in ComfyUI."""
    category = "🏵️Fill Nodes/Utility"
    display_name = "FL System Check"
    output_node = True
    outputs = {}
    comfy = ComfyAlias(("FL_SystemCheck",))

    def run(self):
        return None


# -- upscale model ---------------------------------------------------------------------------------

UPSCALE_RESIZES = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
UPSCALE_PRECISIONS = ("auto", "32", "16", "bfloat16")


def _upscale_dtype(model, precision: str):
    """FL_UpscaleModel's dtype, as the pack asks ComfyUI: half where the model takes it and the device
    runs it (CUDA or Apple's GPU; not a CPU), bfloat16 where the model takes it on a CUDA card
    that has it; else float32."""
    import torch

    from graphflow.device import compute_device
    device = compute_device()
    half = getattr(model, "supports_half", False) and device.type in ("cuda", "mps")
    bf16 = (getattr(model, "supports_bfloat16", False) and device.type == "cuda"
            and torch.cuda.is_bf16_supported())
    if precision == "bfloat16":
        if not bf16:
            raise NodeInputError("precision", f"bfloat16 is not supported by this upscale model on {device.type}")
        return torch.bfloat16
    if precision == "32":
        return torch.float32
    if half:
        return torch.float16
    return torch.bfloat16 if precision == "16" and bf16 else torch.float32


def _cast_copy(network, dtype):
    """A copy of the upscale network in `dtype`, built on the CPU a tensor at a time (wherever the
    memory manager holds the shared network, no whole copy is made there behind its back) and kept
    while the network lives, one a dtype."""
    import copy

    import torch
    copies = _CAST_COPIES.setdefault(network, {})
    if dtype not in copies:
        # deepcopy takes the memo's tensors for the network's own: each cast onto the CPU, none copied as it is
        memo = {id(t): torch.nn.Parameter(t.detach().to("cpu", dtype), requires_grad=False)
                for t in network.parameters()}
        memo |= {id(t): t.detach().to("cpu", dtype if t.is_floating_point() else t.dtype) for t in network.buffers()}
        copies[dtype] = copy.deepcopy(network, memo)
    return copies[dtype]


_CAST_COPIES = weakref.WeakKeyDictionary()  # network -> {dtype: its copy}


@dataclass
class _CastUpscaler:
    """An upscale model run in `dtype`: its pictures cast to it on the way in."""
    model: object  # the network (the memory manager moves it to the device)
    scale: int
    input_channels: int
    dtype: object

    def __call__(self, picture):
        return self.model(picture.to(self.dtype))


class FillUpscaleModel(Node):
    """Upscale the images with the upscale model as ImageUpscaleWithModel does (tiles of 512
    overlapping by 32), batch_size images at a time, in precision: 32 is float32; auto and 16 run
    half precision where the model and device take it (a CUDA or Apple GPU; a CPU runs float32),
    16 falls back to bfloat16 there, as the pack asks ComfyUI; bfloat16 is refused where unsupported.
    The model itself is not changed: a copy runs in another precision (made once, while the model is
    loaded). downscale_by below 1 then
    resizes the result to round(side × downscale_by) with rescale_method (lanczos runs bicubic, as
    in the pack), clamped to 0..1."""
    category = "🏵️Fill Nodes/Loaders"
    display_name = "FL Upscale Model"
    upscale_model: UPSCALE_MODEL
    image: IMAGE
    downscale_by: float = Float(1.0, min=0.25, max=1.0, step=0.05)
    rescale_method: str = Choice(UPSCALE_RESIZES, "nearest-exact")
    precision: str = Choice(UPSCALE_PRECISIONS, "auto")
    batch_size: int = Int(1, min=1, max=100, step=1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_UpscaleModel",))

    def run(self):
        import torch
        import torch.nn.functional as F

        from graphflow.api import check_run_memory
        from nodes.pack_nodes import _core
        from nodes.upscale import ImageUpscaleWithModel
        images = _image(self.image, "image")
        model = self.upscale_model
        dtype = _upscale_dtype(model, self.precision)
        network = model.model
        if next(network.parameters()).dtype != dtype:
            network = _cast_copy(network, dtype)  # the loader's model is shared: a copy changes precision
        runner = _CastUpscaler(network, model.scale, model.input_channels, dtype)
        height, width = images.shape[1:3]
        out_h, out_w = height * model.scale, width * model.scale
        if self.downscale_by < 1.0:
            out_h, out_w = round(out_h * self.downscale_by), round(out_w * self.downscale_by)
        check_run_memory("image", f"upscales by {model.scale}", images=Size(images.shape[0], out_h, out_w))
        mode = "bicubic" if self.rescale_method == "lanczos" else self.rescale_method
        done = []
        for start in range(0, images.shape[0], self.batch_size):
            check_interrupted()
            upscaled = _core(ImageUpscaleWithModel, upscale_model=runner, image=images[start:start + self.batch_size])
            if self.downscale_by < 1.0:
                upscaled = F.interpolate(upscaled.movedim(-1, 1).float(), size=(out_h, out_w), mode=mode,
                                         align_corners=False if mode in ("bilinear", "bicubic") else None)
                upscaled = upscaled.movedim(1, -1).clamp(0, 1)
            done.append(upscaled.to(images))
        return torch.cat(done)
