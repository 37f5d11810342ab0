"""Inspire Pack's list, batch, mask, folder, noise and guidance utilities, under the pack's class
names.

Read from ltdrdata/ComfyUI-Inspire-Pack: inspire/image_util.py at
019713040ce59db099a72bf7bdbc9d3c595d3bc5, inspire/list_nodes.py at
0bd92419dec46f6e41ec46c1d565e6ec3dfcc986, inspire/util_nodes.py at
5320c1c7d21c92a1185a335687a09f89464509b8, inspire/conditioning_nodes.py at
186b601e659642ee66545350a746fb4edf4fd433 (with comfy_PoP's Conditioning Multiplier, store file
14947320762, which it calls).

Nodes: FloatRange, ChangeImageBatchSize, ChangeLatentBatchSize, ImageBatchSplitter,
LatentBatchSplitter, ColorMapToMasks, SelectNthMask, ConcatConditioningsWithMultiplier,
CLIPTextEncodeWithWeight, RGB_HexToHSV, LoadImagesFromDir, LoadImageListFromDir, CompositeNoise,
ScheduledCFGGuider, ScheduledPerpNegCFGGuider, ConditioningUpscale, ConditioningStretch (each
"... //Inspire"); the last two from inspire/conditioning_nodes.py; CLIPTextEncodeWithWeight and
CompositeNoise from inspire/prompt_support.py (store file 11146785535), the scheduled guiders from
inspire/sampler_nodes.py at 09ae2eaa9bae5dd3b251c25450b514fe6e31e7dc.
The folder loaders read folders inside the inputs folder only (the pack reads any folder on disk).

Left out: LoadImage //Inspire (the picture as base64 text its editor writes into the workflow).
"""

from __future__ import annotations

import colorsys
import functools
import math
import re

from graphflow.api import CLIP, CONDITIONING, FLOAT, GUIDER, IMAGE, INT, LATENT, MASK, MODEL, SIGMAS, STRING, Bool, \
    Choice, ComfyAlias, Estimate, Float, Int, ListOf, Node, NodeInputError, Size, Text, folders, run_limits, \
    safe_join, warn
from graphflow.folders import UnsafePathError
from nodes.conditioning import CLIPEncode, encoded
from nodes.image import _image
from nodes.pack_nodes import _core
from nodes.pack_nodes_inspire import NOISE_IMAGE, _samples
from nodes.sampling import SEED_MAX

COMFY_PACK = "comfyui-inspire-pack"  # the custom node pack this module's ComfyUI classes come from

SPLIT_MAX = 50  # the splitters' split_count bound: split_count + 1 outputs


class InspireFloatRange(Node):
    """The floats from start to stop by step, as a list (at most limit of them; start > stop
    counts down). ensure_end adds stop when the steps miss it, dropping the last step first when
    no room is left (the pack compares with the room left after the steps taken). start == stop
    or step 0 gives [start]. Added up step by step in floating point, as the pack does."""
    category = "InspirePack/Util"
    start: float = Float(0.0, min=-100.0, max=100.0, step=0.000000001)
    stop: float = Float(1.0, min=-100.0, max=100.0, step=0.000000001)
    step: float = Float(0.01, min=0.0, max=100.0, step=0.000000001)
    limit: int = Int(100, min=2, max=4096)
    ensure_end: bool = Bool(True)
    outputs = {"FLOAT": ListOf(FLOAT)}
    comfy = ComfyAlias(("FloatRange //Inspire",))

    def run(self):
        start, stop, room = self.start, self.stop, self.limit
        if start == stop or self.step == 0:
            return [start]
        reverse = start > stop
        if reverse:
            start, stop = stop, start
        values, x, last = [], start, start
        while x <= stop and room > 0:
            values.append(x)
            last = x
            room -= 1
            x += self.step
        if self.ensure_end and last != stop:
            if len(values) >= room:
                values.pop()
            values.append(stop)
        return values[::-1] if reverse else values


def _resized_batch(batch, batch_size: int, mode: str):
    """The pack's simple mode: the batch cut to batch_size, or filled up with its last item."""
    import torch

    if mode != "simple":
        warn(f"unknown mode {mode!r}: the batch is passed on unchanged, as the pack does")
        return batch
    if len(batch) < batch_size:
        return torch.cat([batch, batch[-1:].expand(batch_size - len(batch), *batch.shape[1:])])
    return batch[:batch_size]


def _batch_size_estimate(cls, widgets, inputs):
    size = next((s for s in inputs.values() if s is not None), None)
    count = widgets.get("batch_size")
    if size is None or not isinstance(count, int):
        return Estimate(None)
    return Estimate(Size(count, size.height, size.width))


class InspireChangeImageBatchSize(Node):
    """The image batch made batch_size long: cut, or filled up by repeating its last image."""
    category = "InspirePack/Util"
    image: IMAGE
    batch_size: int = Int(1, min=1, max=4096)
    mode: str = Choice(("simple",), "simple")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ChangeImageBatchSize //Inspire",))
    estimate = classmethod(_batch_size_estimate)

    def run(self):
        return _resized_batch(_image(self.image, "image"), self.batch_size, self.mode)


class InspireChangeLatentBatchSize(Node):
    """The latent batch made batch_size long: cut, or filled up by repeating its last latent (its
    other entries, a noise_mask or batch_index, passed on as they are, as the pack does)."""
    category = "InspirePack/Util"
    latent: LATENT
    batch_size: int = Int(1, min=1, max=4096)
    mode: str = Choice(("simple",), "simple")
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("ChangeLatentBatchSize //Inspire",))
    estimate = classmethod(_batch_size_estimate)

    def run(self):
        return {**self.latent, "samples": _resized_batch(_samples(self.latent), self.batch_size, self.mode)}


def _split(count: int, items: list, rest, filler) -> list:
    """The splitters' outputs: the first split_count items one by one, then the rest as one
    batch; when the batch is too short, the filler in every place left (the rest's too)."""
    taken = items[:count]
    if count >= len(items):
        return taken + [filler()] * (count - len(taken) + 1)
    return taken + [rest(len(items) - count)]


class InspireImageBatchSplitter(Node):
    """Split an image batch: outputs 1..split_count give its first images one by one, the next
    output the rest as a batch; when the batch is shorter, a black 64x64 image fills each place
    left. The pack's editor shows split_count + 1 outputs; the outputs past those give nothing."""
    category = "InspirePack/Util"
    images: IMAGE
    split_count: int = Int(4, min=0, max=SPLIT_MAX)
    outputs = {"IMAGE" if i == 0 else f"IMAGE_{i}": IMAGE for i in range(SPLIT_MAX + 1)}
    comfy = ComfyAlias(("ImageBatchSplitter //Inspire",))

    def run(self):
        import torch

        images = _image(self.images, "images")
        parts = _split(self.split_count, [image[None] for image in images], lambda n: images[-n:],
                       lambda: torch.zeros(1, 64, 64, 3))
        return tuple(parts + [None] * (SPLIT_MAX + 1 - len(parts)))


class InspireLatentBatchSplitter(Node):
    """Split a latent batch as Image Batch Splitter splits images: each latent keeps the input's
    other entries as they are (as the pack: a noise_mask is not split), and the places left are
    filled with an empty 8x8 (64-pixel) four-channel latent."""
    category = "InspirePack/Util"
    latent: LATENT
    split_count: int = Int(4, min=0, max=SPLIT_MAX)
    outputs = {"LATENT" if i == 0 else f"LATENT_{i}": LATENT for i in range(SPLIT_MAX + 1)}
    comfy = ComfyAlias(("LatentBatchSplitter //Inspire",))

    def run(self):
        import torch

        samples = _samples(self.latent)
        base = {k: v for k, v in self.latent.items() if k != "samples"}
        parts = _split(self.split_count, [{**base, "samples": s[None]} for s in samples],
                       lambda n: {**base, "samples": samples[-n:]},
                       lambda: {**base, "samples": torch.zeros(1, 4, 8, 8)})
        return tuple(parts + [None] * (SPLIT_MAX + 1 - len(parts)))


MAX_MASK_VALUES = 2 ** 31  # ColorMapToMasks' masks at most: 8 GB of float32


class InspireColorMapToMasks(Node):
    """A mask for each of the colours covering at least min_pixels pixels of the first image of
    color_map (at most max_count, the most common first; equally common ones in colour order): 1
    where a pixel has exactly that colour, for every image of the batch (colour by colour, each
    colour's masks for the whole batch). No such colour: one empty mask. How many masks that makes is
    known once the colours are counted: then a server's max_batch (and at most 2**31 mask values)
    is checked, before the masks are made."""
    category = "InspirePack/Util"
    color_map: IMAGE
    min_pixels: int = Int(500, min=1, max=SEED_MAX)
    max_count: int = Int(5, min=0, max=1000)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("ColorMapToMasks //Inspire",))

    def run(self):
        import torch

        color_map = _image(self.color_map, "color_map")
        colors, counts = torch.unique(color_map[0].reshape(-1, color_map.shape[-1]), dim=0, return_counts=True)
        order = torch.sort(counts, descending=True, stable=True).indices
        colors, counts = colors[order], counts[order]
        top = colors[counts >= self.min_pixels][:self.max_count]
        if len(top) == 0:
            return torch.zeros(1, *color_map.shape[1:3])
        count, limit = len(top) * color_map.shape[0], run_limits().max_batch
        made = f"{len(top)} colours x {color_map.shape[0]} images make {count} masks"
        if limit is not None and count > limit:
            raise NodeInputError("max_count", f"{made}: more than this server allows ({limit})")
        if count * color_map.shape[1] * color_map.shape[2] > MAX_MASK_VALUES:
            raise NodeInputError("max_count", f"{made} of {color_map.shape[2]}x{color_map.shape[1]}: more than "
                                              f"{MAX_MASK_VALUES} mask values")
        return torch.cat([(color_map == color).all(dim=-1).float() for color in top])


class InspireSelectNthMask(Node):
    """The idx-th mask of a batch (from 0), as a batch of one."""
    category = "InspirePack/Util"
    masks: MASK
    idx: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("SelectNthMask //Inspire",))

    def run(self):
        masks = self.masks if self.masks.ndim == 3 else self.masks.reshape(-1, *self.masks.shape[-2:])
        if self.idx >= len(masks):
            raise NodeInputError("idx", f"the batch holds {len(masks)} masks (0 .. {len(masks) - 1}), got {self.idx}")
        return masks[self.idx][None]


CONCAT_INPUTS = 20  # conditioning1 .. conditioning20: the pack's editor adds them as they are linked


def _scaled(conditioning, multiplier: float) -> list:
    """comfy_PoP's Conditioning Multiplier: each embedding and pooled output times multiplier."""
    scaled = []
    for cond, options in conditioning:
        options = dict(options)
        if "pooled_output" in options and options["pooled_output"] is not None:
            options["pooled_output"] = options["pooled_output"] * multiplier
        scaled.append((cond * multiplier, options))
    return scaled


class InspireConcatConditioningsWithMultiplier(Node):
    __doc__ = f"""Concatenate conditionings, each scaled by its multiplier (comfy_PoP's Conditioning
Multiplier: the embeddings and pooled outputs times it): conditioning1's entries, each with the
first embedding of conditioning2, 3 ... appended along the tokens (as ConditioningConcat). With
conditioning1 alone it is given back unscaled, as the pack does. Inputs 2 .. {CONCAT_INPUTS} here."""
    category = "InspirePack/__for_testing"
    conditioning1: CONDITIONING
    __annotations__.update({f"conditioning{i}": CONDITIONING for i in range(2, CONCAT_INPUTS + 1)})
    locals().update({f"conditioning{i}": None for i in range(2, CONCAT_INPUTS + 1)})
    locals().update({f"multiplier{i}": Float(1.0, min=0.0, max=10.0, step=0.01) for i in range(1, CONCAT_INPUTS + 1)})
    __annotations__.update({f"multiplier{i}": float for i in range(1, CONCAT_INPUTS + 1)})
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ConcatConditioningsWithMultiplier //Inspire",))

    def run(self):
        import torch

        linked = [i for i in range(2, CONCAT_INPUTS + 1) if getattr(self, f"conditioning{i}") is not None]
        if not linked:
            return self.conditioning1
        result = _scaled(self.conditioning1, self.multiplier1)
        for i in linked:
            source = _scaled(getattr(self, f"conditioning{i}"), getattr(self, f"multiplier{i}"))[0][0]
            result = [(torch.cat([cond, source.to(cond.dtype)], dim=1), dict(options)) for cond, options in result]
        return result


def _round_up_8(value) -> int:
    return ((int(value) + 7) >> 3) << 3


def _areas_changed(conditioning, change) -> list:
    """The conditioning with each entry's area (h, w, y, x in latent units) as change(area) makes
    it; an area given in percentages is left as it is (the pack fails on one), with a warning."""
    out = []
    for cond, options in conditioning:
        options = dict(options)
        area = options.get("area")
        if area is not None and isinstance(area[0], str):
            warn("an area given in percentages (ConditioningSetAreaPercentage) is left as it is")
        elif area is not None:
            options["area"] = change(area)
        out.append((cond, options))
    return out


class InspireConditioningUpscale(Node):
    """Davemane42's Conditioning Upscale, kept by the pack for old workflows: each area (h, w, y, x
    in latent units) times scalar, each rounded up to a multiple of 8 (of latent units, as the
    pack rounds them)."""
    category = "Davemane42"
    conditioning: CONDITIONING
    scalar: int = Int(2, min=1, max=100)
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ConditioningUpscale //Inspire",))

    def run(self):
        return _areas_changed(self.conditioning, lambda area: tuple(_round_up_8(v * self.scalar) for v in area))


class InspireConditioningStretch(Node):
    """Davemane42's Conditioning Stretch, kept by the pack for old workflows: each area (h, w, y, x
    in latent units) stretched from a resolutionX x resolutionY picture to newWidth x newHeight
    (in 8-pixel cells, floored), then rounded up to a multiple of 8, as the pack computes it."""
    category = "Davemane42"
    conditioning: CONDITIONING
    resolutionX: int = Int(512, min=64, max=16384, step=64)
    resolutionY: int = Int(512, min=64, max=16384, step=64)
    newWidth: int = Int(512, min=64, max=16384, step=64)
    newHeight: int = Int(512, min=64, max=16384, step=64)
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ConditioningStretch //Inspire",))

    def run(self):
        def stretched(area):
            h, w, y, x = area[:4]
            down = [v * 8 * self.newHeight / self.resolutionY // 8 for v in (h, y)]
            across = [v * 8 * self.newWidth / self.resolutionX // 8 for v in (w, x)]
            return tuple(_round_up_8(v) for v in (down[0], across[0], down[1], across[1]))

        return _areas_changed(self.conditioning, stretched)


class InspireRGBHexToHSV(Node):
    """An RGB colour written #rrggbb as hue (0..360), saturation and value (0..1), by colorsys."""
    category = "InspirePack/Util"
    rgb_hex: STRING
    outputs = {"hue": FLOAT, "saturation": FLOAT, "value": FLOAT}
    comfy = ComfyAlias(("RGB_HexToHSV //Inspire",))

    def run(self):
        digits = self.rgb_hex.strip().lstrip("#")
        if not re.fullmatch(r"[0-9a-fA-F]{6}", digits):
            raise NodeInputError("rgb_hex", f"expected a colour as #rrggbb, got {self.rgb_hex!r}")
        hue, saturation, value = colorsys.rgb_to_hsv(*(int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4)))
        return hue * 360, saturation, value


class InspireCLIPTextEncodeWithWeight(Node):
    """CLIP Text Encode with every token's weight changed to weight * strength + add_weight, the
    start, end and padding tokens' too (the pack changes them all), then weighted as CLIP Text
    Encode weights: (z - z_empty) * weight + z_empty. strength 1 and add_weight 0 is CLIP Text
    Encode itself. For CLIP text encoders (SD1, SD2, SDXL)."""
    category = "InspirePack/Util"
    text: str = Text("", multiline=True)
    clip: CLIP
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    add_weight: float = Float(0.0, min=-10.0, max=10.0, step=0.01)
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncodeWithWeight //Inspire",))

    def run(self):
        if self.strength == 1 and self.add_weight == 0:
            return _core(CLIPEncode, text=self.text, clip=self.clip)
        if not hasattr(self.clip, "tokenize") or not hasattr(self.clip, "encode_tokens"):
            raise NodeInputError("clip", "token weights need a CLIP text encoder (SD1, SD2, SDXL)")
        from dataclasses import replace

        def encode(clip):
            tokens = {name: replace(windows, weights=[[w * self.strength + self.add_weight for w in window]
                                                      for window in windows.weights])
                      for name, windows in clip.tokenize(self.text).items()}
            cond, pooled = clip.encode_tokens(tokens)
            return cond, {} if pooled is None else {"pooled_output": pooled}

        return encoded(self.clip, encode)


# -- image folders ---------------------------------------------------------------------------------

DIR_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")  # the pack's


def _picked_files(directory: str, start_index: int, image_load_cap: int) -> list:
    """The picture files the folder loaders read: in a folder inside the inputs folder (the pack
    reads any folder on disk: here a path that leaves the inputs folder is refused), sorted by name,
    from start_index (-1: the last), at most image_load_cap (0: all); links leading out left out."""
    from nodes.image import folder_files

    if not directory.strip():
        raise NodeInputError("directory", "give a folder inside the inputs folder")
    try:
        folder = safe_join(folders.inputs, directory.strip().replace("\\", "/").strip("/"))
    except UnsafePathError:
        raise NodeInputError("directory", f"{directory!r} is not inside the inputs folder; folders are read only "
                                          f"there (the pack reads any folder on disk)") from None
    if not folder.is_dir():
        raise NodeInputError("directory", f"no folder {directory!r} in the inputs folder")
    files = folder_files(folder, DIR_EXTENSIONS)[start_index:]
    if image_load_cap > 0:
        files = files[:image_load_cap]
    if not files:
        raise NodeInputError("directory", f"no .jpg, .png or .webp pictures in {directory!r} from start_index "
                                          f"{start_index}")
    return files


def _folder_pictures(directory: str, start_index: int, image_load_cap: int) -> list[tuple[str, object, object]]:
    """(name, image [1, H, W, 3], mask [1, h, w]) of the picked pictures (_picked_files): each
    file's first frame, its alpha as the mask as LoadImage takes it. The server's max_batch bounds
    the count and its max_pixels each picture, read from the header before any is decoded."""
    from nodes.image import _load_picture, check_folder_pictures

    files = _picked_files(directory, start_index, image_load_cap)
    check_folder_pictures(files, "image_load_cap", "directory")
    pictures = []
    for path in files:
        try:
            image, mask = _load_picture(path, path.name, first_frame_only=True)
        except NodeInputError as e:
            raise NodeInputError("directory", str(e)) from None
        pictures.append((f"{directory.strip().rstrip('/')}/{path.name}", image, mask))
    return pictures


class InspireLoadImagesFromDir(Node):
    """The pictures of a folder inside the inputs folder as one batch (.jpg, .png, .webp, sorted by
    name; from start_index, -1 the last; at most image_load_cap, 0 all), each resized to the first
    one's size as ComfyUI's upscale does (bilinear, centre-cropped), and their masks (1 - alpha; a
    picture without alpha gives 0), each resized to that size too. The pack's mask batch leaves the
    first picture's out and swaps width and height when it resizes; here there is one mask per
    picture. Gives the count. load_always is the pack's cache switch: a changed folder is read
    again here either way. Folders outside the inputs folder, and links leading out of the folder,
    are left out; an animated file gives its first frame. A server's batch and picture-size limits
    are checked before any picture is decoded (the pack has none)."""
    category = "image"
    directory: str = Text("")
    image_load_cap: int = Int(0, min=0)
    start_index: int = Int(0, min=-1)
    load_always: bool = Bool(False)
    outputs = {"IMAGE": IMAGE, "MASK": MASK, "INT": INT}
    comfy = ComfyAlias(("LoadImagesFromDir //Inspire",), optional=("image_load_cap", "start_index", "load_always"))

    @classmethod
    def fingerprint(cls, directory="", **widgets):
        return _folder_state(directory)

    @classmethod
    def estimate(cls, widgets, inputs):
        """The count of pictures picked, at the first one's size (each is resized to it), from its header."""
        from PIL import Image

        try:
            files = _picked_files(widgets["directory"], widgets.get("start_index", 0), widgets.get("image_load_cap", 0))
            with Image.open(files[0]) as first:
                width, height = first.size
        except (KeyError, TypeError, AttributeError, NodeInputError, OSError, Image.DecompressionBombError):
            return Estimate(None)  # a linked or wrong folder: unknown until run() says what is wrong
        return Estimate(Size(len(files), height, width))

    def run(self):
        import torch
        import torch.nn.functional as F

        from nodes.image import _resize_image

        pictures = _folder_pictures(self.directory, self.start_index, self.image_load_cap)
        height, width = pictures[0][1].shape[1:3]
        images, masks = [], []
        for _, image, mask in pictures:
            if image.shape[1:3] != (height, width):
                image = _resize_image(image, width, height, "bilinear", crop=True)
            if mask.shape[1:] != (height, width):
                mask = F.interpolate(mask[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
            images.append(image)
            masks.append(mask)
        return torch.cat(images), torch.cat(masks), len(pictures)


class InspireLoadImageListFromDir(Node):
    """The pictures of a folder inside the inputs folder as a list (each at its own size; .jpg,
    .png, .webp sorted by name; from start_index; at most image_load_cap, 0 all), their masks
    (1 - alpha, else a 64x64 zero mask) and their paths (the folder joined with the file name; the
    pack gives the path on disk). Folders outside the inputs folder, and links leading out of the
    folder, are left out; an animated file gives its first frame. A server's batch limit bounds the
    count and its picture-size limit each picture, checked before any is decoded (the pack has
    none)."""
    category = "image"
    directory: str = Text("")
    image_load_cap: int = Int(0, min=0)
    start_index: int = Int(0, min=0)
    load_always: bool = Bool(False)
    outputs = {"IMAGE": ListOf(IMAGE), "MASK": ListOf(MASK), "FILE PATH": ListOf(STRING)}
    comfy = ComfyAlias(("LoadImageListFromDir //Inspire",), optional=("image_load_cap", "start_index",
                                                                       "load_always"))

    @classmethod
    def fingerprint(cls, directory="", **widgets):
        return _folder_state(directory)

    def run(self):
        pictures = _folder_pictures(self.directory, self.start_index, self.image_load_cap)
        return [p[1] for p in pictures], [p[2] for p in pictures], [p[0] for p in pictures]


def _folder_state(directory: str) -> str:
    """The folder's pictures' names, sizes and times: a changed folder is read again."""
    from nodes.image import folder_files

    try:
        folder = safe_join(folders.inputs, directory.strip().replace("\\", "/").strip("/"))
        return ",".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                        for p in folder_files(folder, DIR_EXTENSIONS))
    except (UnsafePathError, OSError):
        return "missing"


# -- noise and guidance ----------------------------------------------------------------------------

CFG_SCHEDULES = ("linear", "log", "exp")


def scheduled_cfg(from_cfg: float, to_cfg: float, i: int, steps: int, schedule: str) -> float:
    """The pack's cfg at sigma i of steps + 1: linear from from_cfg to to_cfg; log (t = log(i + 1) /
    log(steps + 1), to_cfg already at step steps - 1); exp (geometric, or an exponential ease when
    one end is 0; to_cfg at step steps - 1)."""
    if schedule == "log":
        if i == 0:
            return from_cfg
        if i == steps - 1:
            return to_cfg
        return from_cfg + (to_cfg - from_cfg) * math.log(i + 1) / math.log(steps + 1)
    if schedule == "exp":
        if i == steps - 1:
            return to_cfg
        if from_cfg == to_cfg:
            return from_cfg
        if from_cfg == 0:
            return to_cfg * (1 - math.exp(-5 * i / steps)) / (1 - math.exp(-5))
        if to_cfg == 0:
            return from_cfg * (math.exp(-5 * i / steps) - math.exp(-5)) / (1 - math.exp(-5))
        return math.exp(math.log(from_cfg) + (math.log(to_cfg) - math.log(from_cfg)) * i / steps)
    return from_cfg + (to_cfg - from_cfg) * i / steps


def _cfg_by_sigma(inner, table: dict):
    """The denoiser `inner` (a CFG or Perp-Neg one) with its scale looked up by the sigma each call
    denoises: table[float(sigma)] = (cfg, index); a sigma not in the table (a second-order sampler's
    midpoint) takes the next index's scale, as the pack's guiders do."""
    hooks = (*inner.post_cfg_functions, *inner.pre_cfg_functions, getattr(inner, "cfg_function", None))
    needs_uncond = any(getattr(fn, "needs_uncond", False) for fn in hooks)
    by_sigma, by_index, last = dict(table), {i: v for v, i in table.values()}, [0]

    def denoise(x, sigma, post_cfg=None):
        key = float(sigma.flatten()[0])
        if key not in by_sigma:
            index = min(last[0] + 1, max(by_index))
            by_sigma[key] = (by_index[index], index)
        inner.cfg, last[0] = by_sigma[key]
        if hasattr(inner, "skip_uncond"):  # CFG decides this once, from its scale
            inner.skip_uncond = math.isclose(inner.cfg, 1.0) and not needs_uncond
        return inner(x, sigma, post_cfg)

    return denoise


@functools.cache
def _scheduled_guider_class(base: str):
    """A GUIDER class of graphflow.sampling.guidance (CFGGuider, PerpNegGuider) with a scale table,
    made on first use (graphflow.sampling imports torch)."""
    from dataclasses import dataclass

    from graphflow.sampling import guidance

    @dataclass
    class Scheduled(getattr(guidance, base)):
        table: dict = None

        def denoiser(self, model_denoiser, prepare):
            return _cfg_by_sigma(super().denoiser(model_denoiser, prepare), self.table)

    return Scheduled


def _cfg_table(sigmas, from_cfg: float, to_cfg: float, schedule: str) -> dict:
    import torch

    if not torch.is_tensor(sigmas) or sigmas.ndim != 1 or len(sigmas) < 2:
        raise NodeInputError("sigmas", "expected SIGMAS: a 1-D tensor of at least two noise levels")
    steps = len(sigmas) - 1
    return {float(sigma): (scheduled_cfg(from_cfg, to_cfg, i, steps, schedule), i)
            for i, sigma in enumerate(sigmas.tolist())}


class InspireScheduledCFGGuider(Node):
    """A CFG guider whose scale changes over the sigmas: from_cfg at the first to to_cfg at the end,
    linear, log or exp (see the pack's curves: log and exp reach to_cfg a step early), looked up by
    the sigma each model call denoises (a sigma between two, of a second-order sampler, takes the
    next one's scale, as the pack). Gives the sigmas on."""
    category = "sampling/custom_sampling/guiders"
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    sigmas: SIGMAS
    from_cfg: float = Float(6.5, min=0.0, max=100.0, step=0.1)
    to_cfg: float = Float(1.0, min=0.0, max=100.0, step=0.1)
    schedule: str = Choice(CFG_SCHEDULES, "log")
    outputs = {"GUIDER": GUIDER, "SIGMAS": SIGMAS}
    comfy = ComfyAlias(("ScheduledCFGGuider //Inspire",))

    def run(self):
        table = _cfg_table(self.sigmas, self.from_cfg, self.to_cfg, self.schedule)
        guider = _scheduled_guider_class("CFGGuider")(self.model, self.positive, self.negative, self.from_cfg, table)
        return guider, self.sigmas


class InspireScheduledPerpNegCFGGuider(Node):
    """Perp-Neg guidance (as PerpNegGuider: the negative pushes away only with its part
    perpendicular to the positive's, from the empty prompt's prediction) whose scale changes over
    the sigmas as Scheduled CFGGuider's does. Gives the sigmas on."""
    category = "sampling/custom_sampling/guiders"
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    empty_conditioning: CONDITIONING
    neg_scale: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    sigmas: SIGMAS
    from_cfg: float = Float(6.5, min=0.0, max=100.0, step=0.1)
    to_cfg: float = Float(1.0, min=0.0, max=100.0, step=0.1)
    schedule: str = Choice(CFG_SCHEDULES, "log")
    outputs = {"GUIDER": GUIDER, "SIGMAS": SIGMAS}
    comfy = ComfyAlias(("ScheduledPerpNegCFGGuider //Inspire",))

    def run(self):
        table = _cfg_table(self.sigmas, self.from_cfg, self.to_cfg, self.schedule)
        guider = _scheduled_guider_class("PerpNegGuider")(self.model, self.positive, self.negative,
                                                          self.empty_conditioning, self.from_cfg, self.neg_scale,
                                                          table)
        return guider, self.sigmas


COMPOSITE_MODES = ("center", "left-top", "right-top", "left-bottom", "right-bottom", "xy")


class InspireCompositeNoise(Node):
    """Paste the source noise into the destination noise (a copy): centred, in a corner, or at x, y
    (in latent cells, as the pack takes them), the part that fits. As in the pack, the right and
    bottom corners are placed by the other side's difference (right-top's x by the heights,
    left-bottom's y by the widths): the same for square noise."""
    category = "InspirePack/Prompt"
    destination: NOISE_IMAGE
    source: NOISE_IMAGE
    mode: str = Choice(COMPOSITE_MODES, "center")
    x: int = Int(0, min=0, max=16384, step=8)
    y: int = Int(0, min=0, max=16384, step=8)
    outputs = {"NOISE_IMAGE": NOISE_IMAGE}
    comfy = ComfyAlias(("CompositeNoise //Inspire",))

    def run(self):
        out, source = self.destination.clone(), self.source
        dh, dw, sh, sw = out.shape[2], out.shape[3], source.shape[2], source.shape[3]
        y1, x1 = {"center": ((dh - sh) // 2, (dw - sw) // 2), "left-top": (0, 0), "right-top": (0, dh - sh),
                  "left-bottom": (dw - sw, 0), "right-bottom": (dw - sw, dh - sh), "xy": (self.y, self.x)}[self.mode]
        top, left = max(0, y1), max(0, x1)
        height = min(min(dh, y1 + sh) - top, y1 + sh - top)
        width = min(min(dw, x1 + sw) - left, x1 + sw - left)
        if height > 0 and width > 0:
            out[:, :, top:top + height, left:left + width] = \
                source[:, :, top - y1:top - y1 + height, left - x1:left - x1 + width]
        return out
