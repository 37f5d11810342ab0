"""More of ComfyUI-KJNodes' (kijai's) model-free nodes, under the pack's class names, inputs and
outputs (read from kijai/ComfyUI-KJNodes nodes/mask_nodes.py at commit
28381262d197596eb2b4c9bcc361228a5dcef4cc, nodes/nodes.py at commit
b37122a9fd079b2854fa92565582a195d6b03c92, nodes/image_nodes.py at commit
6dfd2c2420260dbb321a3412b9f1dff439a0f2e3 and nodes/batchcrop_nodes.py at commit
2f7300dc546ec2d36fa8b0feebe493d41026524c): BatchCropFromMask and BatchUncrop; the generated masks
CreateFadeMask, CreateFadeMaskAdvanced and CreateGradientMask, RemapMaskRange and ColorToMask;
JoinStrings, SomethingToString and EmptyLatentImagePresets; CrossFadeImages,
ImageNormalize_Neg1_To_1, RemapImageRange, SplitImageChannels and MergeImageChannels;
ConditioningSetMaskAndCombine and its 3 / 4 / 5 variants; CustomSigmas.

Round 3 (nodes/pack_nodes_kj3.py) builds ImageCropByMask, ImageCropByMaskAndResize,
ImageUncropByMask, BatchCropFromMaskAdvanced, BatchUncropAdvanced, OffsetMask, CreateTextMask,
MaskOrImageToWeight, FloatToMask, JoinStringMulti, StringToFloatList, WidgetToString,
FloatToSigmas, SigmasToFloat, ImageAndMaskPreview and ImageGridComposite2x2 / 3x3."""

from __future__ import annotations

import math

from graphflow.api import ANY, CONDITIONING, IMAGE, INT, LATENT, MASK, SIGMAS, STRING, Bool, Choice, ComfyAlias, \
    Float, Int, Node, NodeInputError, Size, Text, check_run_memory, socket_type
from nodes.conditioning import ConditioningSetMask
from nodes.latent import EmptyLatent
from nodes.pack_nodes import _core

COMFY_PACK = "ComfyUI-KJNodes"  # the custom node pack this module's ComfyUI classes come from

FADE_CURVES = ("linear", "ease_in", "ease_out", "ease_in_out")


def eased(t: float, curve: str) -> float:
    """The pack's easing of a 0..1 fraction: squared, mirrored square, or smoothstep."""
    if curve == "ease_in":
        return t * t
    if curve == "ease_out":
        return 1 - (1 - t) * (1 - t)
    if curve == "ease_in_out":
        return 3 * t * t - 2 * t * t * t
    return t


def level_masks(levels, width: int, height: int, invert: bool):
    """One flat mask per level, inverted (1 - level) where asked."""
    import torch
    values = torch.tensor(levels, dtype=torch.float32)
    masks = values[:, None, None].expand(len(levels), height, width).clone()
    return 1.0 - masks if invert else masks


class CreateFadeMask(Node):
    """A batch of flat masks fading from start_level to midpoint_level by midpoint_frame (0: half the
    frames, frames // 2), then towards end_level, as KJNodes' (deprecated) Create Fade Mask does.
    Frame i up to the midpoint has t = i / midpoint_frame; after it t = (i - midpoint) / (frames -
    midpoint), so the last frame stops one step short of end_level, as in the pack. The curve eases t."""
    category = "KJNodes/deprecated"
    invert: bool = Bool(False)
    frames: int = Int(2, min=2, max=10000, resource="batch")
    width: int = Int(256, min=16, max=4096, resource="width")
    height: int = Int(256, min=16, max=4096, resource="height")
    interpolation: str = Choice(FADE_CURVES, "linear")
    start_level: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    midpoint_level: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    end_level: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    midpoint_frame: int = Int(0, min=0, max=4096)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("CreateFadeMask",))

    def run(self):
        midpoint = self.midpoint_frame or self.frames // 2
        levels = []
        for i in range(self.frames):
            if i <= midpoint:
                t = eased(i / midpoint, self.interpolation)
                levels.append(self.start_level - t * (self.start_level - self.midpoint_level))
            else:
                t = eased((i - midpoint) / (self.frames - midpoint), self.interpolation)
                levels.append(self.midpoint_level - t * (self.midpoint_level - self.end_level))
        return level_masks(levels, self.width, self.height, self.invert)


def fade_points(text: str, frames: int) -> list[tuple[int, float]]:
    """The pack's "frame:(level)" list, comma separated; a point at the last frame is added with
    the last given level when the last given point is not there; sorted by frame."""
    points = []
    for item in text.rstrip(",\n").split(","):
        frame, sep, level = item.partition(":")
        level = level.strip()
        try:
            if not sep or not (level.startswith("(") and level.endswith(")")):
                raise ValueError
            points.append((int(frame.strip()), float(level[1:-1])))
        except ValueError:
            raise NodeInputError("points_string", f"expected points like 0:(0.0), 7:(1.0), got {item.strip()!r}")
    if points[-1][0] != frames - 1:
        points.append((frames - 1, points[-1][1]))
    points.sort(key=lambda p: p[0])
    frame_numbers = [p[0] for p in points]
    if len(points) < 2 or len(set(frame_numbers)) < len(frame_numbers):
        raise NodeInputError("points_string", f"expected at least two points at different frames, got frames "
                             f"{frame_numbers} (with the last frame, {frames - 1}, added)")
    return points


class CreateFadeMaskAdvanced(Node):
    """A batch of flat masks whose level runs through points_string ("frame:(level)", comma
    separated, frames counted from 0), as KJNodes' Create Fade Mask Advanced does: each frame is
    eased between the points either side of it (before the first point the line goes on backwards);
    the last frame takes the last given level if no point names it. Each level is then clipped to
    0..255 as the pack clips it (its 8-bit colour range, never scaled): below 0 becomes 0, while
    levels above 1 are kept."""
    category = "KJNodes/masking/generate"
    points_string: str = Text("0:(0.0),\n7:(1.0),\n15:(0.0)\n", multiline=True)
    invert: bool = Bool(False)
    frames: int = Int(16, min=2, max=10000, resource="batch")
    width: int = Int(512, min=1, max=4096, resource="width")
    height: int = Int(512, min=1, max=4096, resource="height")
    interpolation: str = Choice(FADE_CURVES, "linear")
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("CreateFadeMaskAdvanced",))

    def run(self):
        points = fade_points(self.points_string, self.frames)
        levels, after = [], 1
        for i in range(self.frames):
            while after < len(points) - 1 and i > points[after][0]:
                after += 1
            (f0, v0), (f1, v1) = points[after - 1], points[after]
            t = eased((i - f0) / (f1 - f0), self.interpolation)
            levels.append(min(max(v0 - t * (v0 - v1), 0.0), 255.0))  # the pack's np.clip(color, 0, 255)
        return level_masks(levels, self.width, self.height, self.invert)


class CreateGradientMask(Node):
    """A batch of horizontal gradient masks, as KJNodes' Create Gradient Mask does: 1 at the left to
    0 at the right, frame i lowered by i / frames (not clamped: later frames go below 0, as in the
    pack). The pack's default of 0 frames gives it an empty batch; here 0 frames is refused."""
    category = "KJNodes/masking/generate"
    invert: bool = Bool(False)
    frames: int = Int(0, min=0, max=255, resource="batch")
    width: int = Int(256, min=16, max=4096, resource="width")
    height: int = Int(256, min=16, max=4096, resource="height")
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("CreateGradientMask",))

    def run(self):
        import torch
        if self.frames < 1:
            raise NodeInputError("frames", "expected at least 1 frame (the pack gives an empty batch for 0)")
        ramp = torch.linspace(1.0, 0.0, self.width)
        lowered = ramp[None, :] - torch.arange(self.frames, dtype=torch.float32)[:, None] / self.frames
        masks = lowered[:, None, :].expand(self.frames, self.height, self.width).clone()
        return 1.0 - masks if self.invert else masks


class RemapMaskRange(Node):
    """Rescale masks so their brightest value becomes max and 0 becomes min, as KJNodes' Remap Mask
    Range does (one scale for the whole batch; an all-zero batch is not divided), clamped to 0..1."""
    category = "KJNodes/masking"
    mask: MASK
    min: float = Float(0.0, min=-10.0, max=1.0, step=0.01)
    max: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("RemapMaskRange",))

    def run(self):
        peak = float(self.mask.max())
        peak = peak if peak > 0 else 1.0
        return (self.mask / peak * (self.max - self.min) + self.min).clamp(0.0, 1.0)


class ColorToMask(Node):
    """White where a pixel's colour lies within threshold of red, green, blue (the straight-line
    distance in 0..255 units, threshold included), black elsewhere; invert swaps them. As KJNodes'
    Color To Mask does; per_batch only sets how many images the pack handles at once."""
    category = "KJNodes/masking"
    images: IMAGE
    invert: bool = Bool(False)
    red: int = Int(0, min=0, max=255)
    green: int = Int(0, min=0, max=255)
    blue: int = Int(0, min=0, max=255)
    threshold: int = Int(10, min=0, max=255)
    per_batch: int = Int(16, min=1, max=4096)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("ColorToMask",))

    def run(self):
        import torch
        if self.images.shape[-1] < 3:  # a 1-channel image would be compared against all 3 colours silently
            raise NodeInputError("images", f"expected images of 3 or more channels, got {self.images.shape[-1]}")
        color = torch.tensor([self.red, self.green, self.blue], dtype=torch.float32)
        out = []
        for start in range(0, self.images.shape[0], self.per_batch):
            chunk = self.images[start:start + self.per_batch, ..., :3]
            distance = torch.linalg.vector_norm(chunk * 255 - color, dim=-1)
            out.append((distance <= self.threshold).float())
        masks = torch.cat(out)
        return 1.0 - masks if self.invert else masks


# -- text and values (nodes/nodes.py at commit b37122a9fd079b2854fa92565582a195d6b03c92) ----------


class JoinStrings(Node):
    """string1 + delimiter + string2, as KJNodes' Join Strings does (an unconnected string is
    empty, so the delimiter is still there)."""
    category = "KJNodes/text"
    delimiter: str = Text(" ")
    string1: STRING = None
    string2: STRING = None
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("JoinStrings",), optional=("string1", "string2"))

    def run(self):
        return (self.string1 or "") + self.delimiter + (self.string2 or "")


class SomethingToString(Node):
    """A number or boolean as Python writes it (True, 0.5), or a list's items joined by ", ",
    between prefix and suffix, as KJNodes' Something To String does. The pack gives nothing for
    any other value (text included); here that is refused, naming the input."""
    category = "KJNodes/text"
    input: ANY
    prefix: str = Text("")
    suffix: str = Text("")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("SomethingToString",), optional=("prefix", "suffix"))

    def run(self):
        if isinstance(self.input, (bool, int, float)):
            text = str(self.input)
        elif isinstance(self.input, list):
            text = ", ".join(str(item) for item in self.input)
        else:
            raise NodeInputError("input", f"expected a number, a boolean or a list, got {type(self.input).__name__} "
                                          "(the pack gives no string for it)")
        return self.prefix + text + self.suffix


LATENT_PRESETS = ("512 x 512 (1:1)", "768 x 512 (1.5:1)", "960 x 512 (1.875:1)", "1024 x 512 (2:1)",
                  "1024 x 576 (1.778:1)", "1536 x 640 (2.4:1)", "1344 x 768 (1.75:1)", "1216 x 832 (1.46:1)",
                  "1152 x 896 (1.286:1)", "1024 x 1024 (1:1)")


def preset_size(preset: str, invert: bool) -> tuple[int, int]:
    """(width, height) of a "W x H (ratio)" preset; invert swaps them."""
    width, height = (int(side) for side in preset.split("(")[0].split("x"))
    return (height, width) if invert else (width, height)


class EmptyLatentImagePresets(Node):
    """An empty latent (as Empty Latent Image makes it) of a preset size, width and height swapped
    with invert, with that width and height, as KJNodes' Empty Latent Image Presets gives them."""
    category = "KJNodes/latents"
    dimensions: str = Choice(LATENT_PRESETS, "512 x 512 (1:1)")
    invert: bool = Bool(False)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    outputs = {"Latent": LATENT, "Width": INT, "Height": INT}
    comfy = ComfyAlias(("EmptyLatentImagePresets",))

    def run(self):
        width, height = preset_size(self.dimensions, self.invert)
        return _core(EmptyLatent, width=width, height=height, batch_size=self.batch_size), width, height


# -- images (nodes/image_nodes.py at commit 6dfd2c2420260dbb321a3412b9f1dff439a0f2e3) --------------

CROSSFADE_CURVES = ("linear", "ease_in", "ease_out", "ease_in_out", "bounce", "elastic", "glitchy",
                    "exponential_ease_out")


def crossfade_eased(t: float, curve: str) -> float:
    """The pack's cross-fade easings: the fade-mask ones, plus bounce (ease_out then ease_in, each
    over half), elastic, glitchy (a wobble added) and a fourth-power ease out."""
    if curve == "bounce":
        return eased(t * 2, "ease_out") * 0.5 if t < 0.5 else eased((t - 0.5) * 2, "ease_in") * 0.5 + 0.5
    if curve == "elastic":
        return math.sin(13 * math.pi / 2 * t) * math.pow(2, 10 * (t - 1))
    if curve == "glitchy":
        return t + 0.1 * math.sin(40 * t)
    if curve == "exponential_ease_out":
        return 1 - (1 - t) ** 4
    return eased(t, curve)


class CrossFadeImages(Node):
    """images_1 up to transition_start_index (negative: counted from the end), then
    transitioning_frames frames blending images_1 from there into images_2's first frames, then
    the rest of images_2, as KJNodes' Cross Fade Images does (images_1's frames after the fade are
    dropped, as in the pack). The blend runs from start_level to end_level evenly, each eased by
    interpolation; transitioning_frames is cut to the frames both batches have there, and a fade
    of no frames is refused (the pack fails to stack none). The eight easings are the pack's
    (image_nodes.py @6dfd2c24), all of which run there: its bounce is an ease-out to halfway, then an
    ease-in, with no rebound. The pack eases its float32 levels as tensors, here as Python floats
    (double precision): levels differ by about 1e-7."""
    category = "KJNodes/image"
    images_1: IMAGE
    images_2: IMAGE
    interpolation: str = Choice(CROSSFADE_CURVES, "linear")
    transition_start_index: int = Int(1, min=-4096, max=4096)
    transitioning_frames: int = Int(1, min=0, max=4096)
    start_level: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    end_level: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("CrossFadeImages",))

    def run(self):
        import torch
        first, second = self.images_1, self.images_2
        start = self.transition_start_index
        start = len(first) + start if start < 0 else start
        if not 0 <= start < len(first):
            raise NodeInputError("transition_start_index", f"expected a frame of images_1's {len(first)} "
                                 f"(negative: from the end), got {self.transition_start_index}")
        if first.shape[1:] != second.shape[1:]:
            raise NodeInputError("images_2", f"expected images of images_1's size {tuple(first.shape[1:3])} and "
                                 f"{first.shape[3]} channels, got {tuple(second.shape[1:3])}, {second.shape[3]}")
        count = min(self.transitioning_frames, len(first) - start, len(second))
        if count < 1:
            raise NodeInputError("transitioning_frames", "expected at least 1 frame to fade")
        levels = torch.linspace(self.start_level, self.end_level, count)
        faded = []
        for i in range(count):
            alpha = crossfade_eased(float(levels[i]), self.interpolation)
            faded.append((1 - alpha) * first[start + i] + alpha * second[i])
        return torch.cat([first[:start], torch.stack(faded), second[count:]])


class ImageNormalize_Neg1_To_1(Node):
    """images * 2 - 1: the 0..1 range moved to -1..1, as KJNodes' Image Normalize -1 to 1 does."""
    category = "KJNodes/image"
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageNormalize_Neg1_To_1",))

    def run(self):
        return self.images * 2.0 - 1.0


class RemapImageRange(Node):
    """min + image * (max - min), clamped to 0..1 with clamp, as KJNodes' Remap Image Range does."""
    category = "KJNodes/image"
    image: IMAGE
    min: float = Float(0.0, min=-10.0, max=1.0, step=0.01)
    max: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    clamp: bool = Bool(True)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("RemapImageRange",))

    def run(self):
        import torch
        image = self.min + self.image.to(torch.float32) * (self.max - self.min)
        return image.clamp(0.0, 1.0) if self.clamp else image


class SplitImageChannels(Node):
    """Each of red, green and blue as a grey image (the channel in all three), and the alpha
    channel as a mask, as KJNodes' Split Image Channels does. An image without alpha gives an
    all-zero mask (the pack's version read gives an empty one there)."""
    category = "KJNodes/image"
    image: IMAGE
    outputs = {"red": IMAGE, "green": IMAGE, "blue": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("SplitImageChannels",))

    def run(self):
        import torch
        image = self.image
        if image.shape[-1] < 3:
            raise NodeInputError("image", f"expected an RGB or RGBA image, got {image.shape[-1]} channel(s)")
        greys = [image[..., c:c + 1].expand(-1, -1, -1, 3).clone() for c in range(3)]
        alpha = image[..., 3].clone() if image.shape[-1] > 3 else torch.zeros(image.shape[:3], dtype=image.dtype)
        return *greys, alpha


class MergeImageChannels(Node):
    """One image from red's red channel, green's green and blue's blue, with alpha (if connected)
    as a fourth channel, as KJNodes' Merge Image Channels does; all must be the same size."""
    category = "KJNodes/image"
    red: IMAGE
    green: IMAGE
    blue: IMAGE
    alpha: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("MergeImageChannels",), optional=("alpha",))

    def run(self):
        import torch
        for name in ("red", "green", "blue"):
            channels = getattr(self, name).shape[-1]
            if channels < 3:
                raise NodeInputError(name, f"expected an image of 3 or more channels, got {channels}")
        size = self.red.shape[:3]
        for name in ("green", "blue"):
            if getattr(self, name).shape[:3] != size:
                raise NodeInputError(name, f"expected {tuple(size)} (batch, height, width) as red has, "
                                           f"got {tuple(getattr(self, name).shape[:3])}")
        channels = [self.red[..., 0], self.green[..., 1], self.blue[..., 2]]
        if self.alpha is not None:
            alpha = self.alpha[None] if self.alpha.ndim == 2 else self.alpha
            if alpha.shape != size:
                raise NodeInputError("alpha", f"expected a mask of {tuple(size)}, got {tuple(alpha.shape)}")
            channels.append(alpha.to(self.red.dtype))
        return torch.stack(channels, dim=-1)


# -- regional prompts (nodes/nodes.py at commit b37122a9fd079b2854fa92565582a195d6b03c92) ----------

COND_AREAS = ("default", "mask bounds")


def masked_and_combined(node, count: int):
    """(positives, negatives): each positive_i and negative_i set to mask_i at mask_i_strength (as
    Conditioning (Set Mask) sets it), all of them combined in order (as Conditioning (Combine))."""
    positives, negatives = [], []
    for i in range(1, count + 1):
        mask, strength = getattr(node, f"mask_{i}"), getattr(node, f"mask_{i}_strength")
        for side, out in (("positive", positives), ("negative", negatives)):
            out.extend(_core(ConditioningSetMask, {"mask": f"mask_{i}", "conditioning": f"{side}_{i}"},
                             conditioning=getattr(node, f"{side}_{i}"), mask=mask, strength=strength,
                             set_cond_area=node.set_cond_area))
    return positives, negatives


MASK_STRENGTH = {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}


class ConditioningSetMaskAndCombine(Node):
    """Two regional prompts in one node, as KJNodes' ConditioningSetMaskAndCombine does: each
    positive and negative set to its mask and strength as Conditioning (Set Mask) does, the
    positives combined (Conditioning (Combine)) and the negatives combined."""
    category = "KJNodes/masking/conditioning"
    positive_1: CONDITIONING
    negative_1: CONDITIONING
    positive_2: CONDITIONING
    negative_2: CONDITIONING
    mask_1: MASK
    mask_2: MASK
    mask_1_strength: float = Float(**MASK_STRENGTH)
    mask_2_strength: float = Float(**MASK_STRENGTH)
    set_cond_area: str = Choice(COND_AREAS, "default")
    outputs = {"combined_positive": CONDITIONING, "combined_negative": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetMaskAndCombine",))

    def run(self):
        return masked_and_combined(self, 2)


class ConditioningSetMaskAndCombine3(Node):
    """Three regional prompts in one node, as KJNodes' ConditioningSetMaskAndCombine3 does (see
    ConditioningSetMaskAndCombine)."""
    category = "KJNodes/masking/conditioning"
    positive_1: CONDITIONING
    negative_1: CONDITIONING
    positive_2: CONDITIONING
    negative_2: CONDITIONING
    positive_3: CONDITIONING
    negative_3: CONDITIONING
    mask_1: MASK
    mask_2: MASK
    mask_3: MASK
    mask_1_strength: float = Float(**MASK_STRENGTH)
    mask_2_strength: float = Float(**MASK_STRENGTH)
    mask_3_strength: float = Float(**MASK_STRENGTH)
    set_cond_area: str = Choice(COND_AREAS, "default")
    outputs = {"combined_positive": CONDITIONING, "combined_negative": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetMaskAndCombine3",))

    def run(self):
        return masked_and_combined(self, 3)


class ConditioningSetMaskAndCombine4(Node):
    """Four regional prompts in one node, as KJNodes' ConditioningSetMaskAndCombine4 does (see
    ConditioningSetMaskAndCombine)."""
    category = "KJNodes/masking/conditioning"
    positive_1: CONDITIONING
    negative_1: CONDITIONING
    positive_2: CONDITIONING
    negative_2: CONDITIONING
    positive_3: CONDITIONING
    negative_3: CONDITIONING
    positive_4: CONDITIONING
    negative_4: CONDITIONING
    mask_1: MASK
    mask_2: MASK
    mask_3: MASK
    mask_4: MASK
    mask_1_strength: float = Float(**MASK_STRENGTH)
    mask_2_strength: float = Float(**MASK_STRENGTH)
    mask_3_strength: float = Float(**MASK_STRENGTH)
    mask_4_strength: float = Float(**MASK_STRENGTH)
    set_cond_area: str = Choice(COND_AREAS, "default")
    outputs = {"combined_positive": CONDITIONING, "combined_negative": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetMaskAndCombine4",))

    def run(self):
        return masked_and_combined(self, 4)


class ConditioningSetMaskAndCombine5(Node):
    """Five regional prompts in one node, as KJNodes' ConditioningSetMaskAndCombine5 does (see
    ConditioningSetMaskAndCombine)."""
    category = "KJNodes/masking/conditioning"
    positive_1: CONDITIONING
    negative_1: CONDITIONING
    positive_2: CONDITIONING
    negative_2: CONDITIONING
    positive_3: CONDITIONING
    negative_3: CONDITIONING
    positive_4: CONDITIONING
    negative_4: CONDITIONING
    positive_5: CONDITIONING
    negative_5: CONDITIONING
    mask_1: MASK
    mask_2: MASK
    mask_3: MASK
    mask_4: MASK
    mask_5: MASK
    mask_1_strength: float = Float(**MASK_STRENGTH)
    mask_2_strength: float = Float(**MASK_STRENGTH)
    mask_3_strength: float = Float(**MASK_STRENGTH)
    mask_4_strength: float = Float(**MASK_STRENGTH)
    mask_5_strength: float = Float(**MASK_STRENGTH)
    set_cond_area: str = Choice(COND_AREAS, "default")
    outputs = {"combined_positive": CONDITIONING, "combined_negative": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetMaskAndCombine5",))

    def run(self):
        return masked_and_combined(self, 5)


# -- batch crop / uncrop (nodes/batchcrop_nodes.py at commit 2f7300dc546ec2d36fa8b0feebe493d41026524c) --

BBOX = socket_type("BBOX", "#8d6e63", "KJNodes' crop boxes: a list of (x, y, width, height), one per image")


def mask_pixels(mask, name: str):
    """(ys, xs) of the pixels the pack counts as in the mask: those that are not 0 at 8 bits."""
    import torch
    ys, xs = torch.nonzero((mask * 255).clamp(0, 255).to(torch.uint8), as_tuple=True)
    if len(ys) == 0:
        raise NodeInputError(name, "a mask is empty: expected every mask to mark something to crop around")
    return ys, xs


def center_crop(image, height: int, width: int):
    """torchvision's CenterCrop of a [C, H, W] image: zero-padded first where it is smaller."""
    import torch.nn.functional as F
    h, w = image.shape[-2:]
    if height > h or width > w:
        dw, dh = max(width - w, 0), max(height - h, 0)
        image = F.pad(image, [dw // 2, (dw + 1) // 2, dh // 2, (dh + 1) // 2])
        h, w = image.shape[-2:]
    top, left = int(round((h - height) / 2.0)), int(round((w - width) / 2.0))
    return image[..., top:top + height, left:left + width]


class BatchCropFromMask(Node):
    """Crop each image around its mask, one box size for the batch, as KJNodes' Batch Crop From
    Mask does, by the pack's rules: the box is the largest mask extent (last - first pixel, over all
    masks) times bbox_smooth_alpha (the pack smooths it against 0), times crop_size_mult; each box
    is centred on its mask's mean pixel (rounded), the centre moving from the previous frame's by
    bbox_smooth_alpha, cut at the image's edges; each crop is resized (bilinear, antialiased) to the
    box's height and aspect, then centre-cropped (zero-padded) to the box. Gives the images, the
    crops, the boxes (x, y, width, height) and the box's width and height. Refused (the pack fails
    there): masks of another size than the images, an empty mask or masks with no extent (one row or
    column), and a box under 2 pixels wide or high (its half rounds to 0: an empty crop). The crops
    (the box, up to crop_size_mult^2 times the masks' extent) are checked against the memory before
    they are made."""
    category = "KJNodes/masking"
    original_images: IMAGE
    masks: MASK
    crop_size_mult: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    bbox_smooth_alpha: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"original_images": IMAGE, "cropped_images": IMAGE, "bboxes": BBOX, "width": INT, "height": INT}
    comfy = ComfyAlias(("BatchCropFromMask",))

    def run(self):
        import torch
        import torch.nn.functional as F
        images, alpha = self.original_images, self.bbox_smooth_alpha
        masks = self.masks[None] if self.masks.ndim == 2 else self.masks
        if masks.shape[-2:] != images.shape[1:3]:
            raise NodeInputError("masks", f"expected masks of the images' size {tuple(images.shape[1:3])} (height, "
                                          f"width), got {tuple(masks.shape[-2:])}")
        pixels = [mask_pixels(mask, "masks") for mask in masks]
        widest = max(int(xs.max() - xs.min()) for _, xs in pixels)
        tallest = max(int(ys.max() - ys.min()) for ys, _ in pixels)
        if widest == 0 or tallest == 0:
            raise NodeInputError("masks", f"the masks' extent (last - first pixel) is {widest}x{tallest}: expected "
                                          "masks at least 2 pixels wide and high to size a box by")
        box_w = round(round(alpha * widest) * self.crop_size_mult)
        box_h = round(round(alpha * tallest) * self.crop_size_mult)
        if round(box_w / 2) < 1 or round(box_h / 2) < 1:  # the crop runs half a box either side: empty
            raise NodeInputError("bbox_smooth_alpha" if alpha == 0 else "crop_size_mult",
                                 f"the crop box comes out {box_w}x{box_h}: expected at least 2x2 (a larger "
                                 f"crop_size_mult or bbox_smooth_alpha)")
        check_run_memory("crop_size_mult", f"crop_size_mult {self.crop_size_mult:g} makes {box_w}x{box_h} crops",
                         images=Size(len(pixels), box_h, box_w))
        boxes, crops, center = [], [], None
        for i, ((ys, xs), image) in enumerate(zip(pixels, images)):
            here = (round(float(xs.double().mean())), round(float(ys.double().mean())))
            center = here if i == 0 else (round(alpha * here[0] + (1 - alpha) * center[0]),
                                          round(alpha * here[1] + (1 - alpha) * center[1]))
            x0, x1 = max(0, center[0] - round(box_w / 2)), min(image.shape[1], center[0] + round(box_w / 2))
            y0, y1 = max(0, center[1] - round(box_h / 2)), min(image.shape[0], center[1] + round(box_h / 2))
            boxes.append((x0, y0, x1 - x0, y1 - y0))
            crop = image[y0:y1, x0:x1].permute(2, 0, 1)
            new_h = min(crop.shape[1], box_h)
            new_w = round(new_h * box_w / box_h)
            crop = F.interpolate(crop[None], size=(new_h, new_w), mode="bilinear", align_corners=False,
                                 antialias=True)[0]
            crops.append(center_crop(crop, box_h, box_w).permute(1, 2, 0))
        return images, torch.stack(crops), boxes, box_w, box_h


def to_pil(image):
    """One image as the pack's tensor2pil makes it: 8-bit, clipped; one channel gives an 'L'
    picture (its squeeze)."""
    import numpy as np
    from PIL import Image
    pixels = image.cpu().numpy()
    pixels = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
    return Image.fromarray(np.clip(255.0 * pixels, 0, 255).astype(np.uint8))


def check_picture_channels(name: str, batch) -> None:
    """Refuse, naming `name`, an image batch whose channels to_pil makes no picture of (the pack's
    tensor2pil: 1 grey, 3 RGB or 4 RGBA)."""
    if batch.shape[-1] not in (1, 3, 4):
        raise NodeInputError(name, f"{batch.shape[-1]} channels: expected 1 (grey), 3 (RGB) or 4 (RGBA)")


def inset_border(block, width: int, top: bool, bottom: bool, left: bool, right: bool):
    """Black out the chosen edges of a white block, width pixels in (PIL rectangles, ends included)."""
    from PIL import ImageDraw
    draw, (w, h) = ImageDraw.Draw(block), block.size
    if top:
        draw.rectangle((0, 0, w, width), fill=0)
    if bottom:
        draw.rectangle((0, h - width, w, h), fill=0)
    if left:
        draw.rectangle((0, 0, width, h), fill=0)
    if right:
        draw.rectangle((w - width, 0, w, h), fill=0)
    return block


class BatchUncrop(Node):
    """Paste each crop back into its image at its box, as KJNodes' Batch Uncrop does (with PIL, in
    8 bits): the box (cut at the image's edges) times crop_rescale, the crop resized to it; the
    edges chosen blend into the image over (the crop's longer side / 2 * border_blending) / 2
    pixels, box- then Gaussian-blurred by a quarter of that (one-channel images are grey pictures, as
    the pack's tensor2pil makes them; the result is RGB). Extra boxes are dropped; fewer boxes
    than images, a box not of 4 numbers, a different number of crops, or images of 2 channels (no
    picture), is refused. Each resized patch (crop_rescale x the box) is checked against the memory
    before it is made."""
    category = "KJNodes/masking"
    original_images: IMAGE
    cropped_images: IMAGE
    bboxes: BBOX
    border_blending: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    crop_rescale: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    border_top: bool = Bool(True)
    border_bottom: bool = Bool(True)
    border_left: bool = Bool(True)
    border_right: bool = Bool(True)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("BatchUncrop",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageFilter
        images, crops = self.original_images, self.cropped_images
        for name, batch in (("original_images", images), ("cropped_images", crops)):
            check_picture_channels(name, batch)
        if len(images) != len(crops):
            raise NodeInputError("cropped_images", f"expected as many crops as original_images ({len(images)}), "
                                                   f"got {len(crops)}")
        if len(self.bboxes) < len(images):
            raise NodeInputError("bboxes", f"expected a box for each of the {len(images)} images, got "
                                           f"{len(self.bboxes)}")
        edges = (self.border_top, self.border_bottom, self.border_left, self.border_right)
        for box in self.bboxes[:len(images)]:
            if not isinstance(box, (tuple, list)) or len(box) != 4 or \
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box):
                raise NodeInputError("bboxes", f"expected boxes of 4 numbers (x, y, width, height), got {box!r}")
        out = []
        for image, crop, (x, y, w, h) in zip(images, crops, self.bboxes):
            picture = to_pil(image)
            width, height = picture.size
            region = (x, y, x + min(width - x, w), y + min(height - y, h))
            if region[2] <= region[0] or region[3] <= region[1]:
                raise NodeInputError("bboxes", f"the box {(x, y, w, h)} has nothing inside the {width}x{height} image")
            region = tuple(round(v * self.crop_rescale) for v in region)
            size = (region[2] - region[0], region[3] - region[1])
            if size[0] < 1 or size[1] < 1:
                raise NodeInputError("crop_rescale", f"a box comes out {size[0]}x{size[1]}: expected at least 1x1")
            check_run_memory("crop_rescale", f"crop_rescale {self.crop_rescale:g} resizes a crop to "
                                             f"{size[0]}x{size[1]}", images=Size(1, size[1], size[0]))
            patch = to_pil(crop).resize(size).convert("RGB")
            blend_ratio = max(patch.size) / 2 * self.border_blending
            blend, alpha = picture.convert("RGBA"), Image.new("L", picture.size, 0)
            alpha.paste(inset_border(Image.new("L", size, 255), round(blend_ratio / 2), *edges), region)
            blend.paste(patch, region)
            alpha = alpha.filter(ImageFilter.BoxBlur(radius=blend_ratio / 4))
            alpha = alpha.filter(ImageFilter.GaussianBlur(radius=blend_ratio / 4))
            blend.putalpha(alpha)
            merged = Image.alpha_composite(picture.convert("RGBA"), blend).convert("RGB")
            out.append(torch.from_numpy(np.asarray(merged).astype(np.float32) / 255.0))
        return torch.stack(out)


# -- sigmas (nodes/nodes.py at commit b37122a9fd079b2854fa92565582a195d6b03c92) -----------------------


class CustomSigmas(Node):
    """A sigma schedule from ", "-separated numbers, as KJNodes' Custom Sigmas makes it: when their
    count is not interpolate_to_steps + 1 they are resampled to it, evenly in log space (numpy's
    interp of the reversed logs, as the pack does); the last sigma is then set to 0. Resampling a list
    with a sigma of 0 or below (no logarithm) is refused, and so is any sigma that is not a finite
    number (nan, inf, or too large for a float, as 1e400), which the pack would pass to the sampler."""
    category = "KJNodes/noise"
    sigmas_string: str = Text("14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029",
                              multiline=True)
    interpolate_to_steps: int = Int(10, min=0, max=255)
    outputs = {"SIGMAS": SIGMAS}
    comfy = ComfyAlias(("CustomSigmas",))

    def run(self):
        import numpy as np
        import torch
        try:
            values = [float(item) for item in self.sigmas_string.split(", ")]
        except ValueError:
            raise NodeInputError("sigmas_string", "expected numbers separated by a comma and a space, like "
                                                  f"'14.615, 6.475, 0.029', got {self.sigmas_string!r}")
        sigmas = np.asarray(values, dtype=np.float32)
        if not np.isfinite(sigmas).all():
            raise NodeInputError("sigmas_string", f"expected finite numbers (not nan or inf, each under 3.4e38 as a "
                                                  f"32-bit float), got {self.sigmas_string!r}")
        count = self.interpolate_to_steps + 1
        if len(sigmas) != count:
            if (sigmas <= 0).any():
                raise NodeInputError("sigmas_string", "expected sigmas above 0 to interpolate in log space")
            logs = np.interp(np.linspace(0, 1, count), np.linspace(0, 1, len(sigmas)), np.log(sigmas[::-1]))
            sigmas = np.exp(logs)[::-1].copy()
        out = torch.tensor(sigmas, dtype=torch.float32)
        out[-1] = 0
        return out
