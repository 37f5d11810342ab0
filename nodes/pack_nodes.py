"""Small nodes of popular ComfyUI custom node packs, under the packs' class names, inputs and
defaults, so that saved workflows using them run: rgthree-comfy's Power Lora Loader, Lora Loader
Stack, Seed and Image Comparer,
KJNodes' GetImageSizeAndCount, ImageResizeKJ and ConditioningMultiCombine,
ComfyUI_essentials' ImageResize+ and SimpleMath+ (its GetImageSize+ is an alias of GetImageSize: same inputs and outputs)."""

from __future__ import annotations

import ast
import json
import math
import operator
import os
import random

from graphflow.api import ANY, CLIP, CONDITIONING, FLOAT, IMAGE, INT, MODEL, Bool, Choice, ComfyAlias, Estimate, Float, Int, \
    Node, NodeInputError, Size, Text, folders, show, warn
from graphflow.choices import RESIZE_METHODS
from nodes.conditioning import concat_conditioning
from nodes.image import MAX_SIZE, _resize_image, temp_pngs

# The bound packs most often give their whole-number widgets, both signs: 2**64 - 1, the most a
# ComfyUI INT widget holds (a seed's max), so also the most a whole-number result may be here.
INT_LIMIT = 0xFFFFFFFFFFFFFFFF


def _core(cls, renamed: dict | None = None, **inputs):
    """A core node's run() on these inputs (the very code that node runs; widgets not given take
    its defaults), its input errors named by this node's inputs (renamed: core name -> ours):
    a pack node that is a core node plus something gives the core node's values."""
    node = cls.__new__(cls)
    node.__dict__.update({name: spec.default for name, spec in cls.input_specs.items()})
    node.__dict__.update(inputs)
    try:
        return node.run()
    except NodeInputError as e:
        raise NodeInputError((renamed or {}).get(e.input, e.input), str(e)) from None


def counted_inputs(node, prefix: str) -> list[tuple[str, object]]:
    """(name, value) of a Multi node's inputs prefix2 ... prefix<inputcount> (KJNodes' numbered
    inputs): each of them must be connected."""
    named = []
    for i in range(2, node.inputcount + 1):
        name = f"{prefix}{i}"
        if getattr(node, name) is None:
            raise NodeInputError(name, f"not connected, but inputcount is {node.inputcount}")
        named.append((name, getattr(node, name)))
    return named


MAX_LIST_ITEMS = 100_000  # a longer list would run the nodes after it that many times: refused


def _list_fits(count: int, input_name: str) -> None:
    """Refuse, naming the input, a list output (ListOf) longer than MAX_LIST_ITEMS."""
    if count > MAX_LIST_ITEMS:
        raise NodeInputError(input_name, f"makes a list of {count:,} values; the limit is {MAX_LIST_ITEMS:,} (each "
                                         f"value runs the nodes after it once)")


def image_or_latent_size(value) -> tuple[int, int] | None:
    """(width, height) of an image or mask batch, or of a latent's pixels (its size times 8), as
    rgthree's Image or Latent Size and pysssss's Math Expression read them; None for anything else."""
    if isinstance(value, dict) and "samples" in value:
        return value["samples"].shape[3] * 8, value["samples"].shape[2] * 8
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) < 3:
        return None
    return shape[2], shape[1]


# -- rgthree-comfy ----------------------------------------------------------------------------

RGTHREE_SEED_MAX = 1125899906842624  # the Seed node's widget bounds: ±2**50
# The Seed widget's special values: the pack's editor replaces them by a real seed when queueing
# (-1 random, -2 last seed + 1, -3 last seed - 1) and keeps the special value in the saved
# workflow; a backend that gets one anyway (an API graph) draws a random seed.
RGTHREE_SPECIAL_SEEDS = (-1, -2, -3)


def _lora_choices() -> list[str]:
    return ["None"] + folders.list_models("loras")


class PowerLoraLoader(Node):
    """Apply any number of LoRAs in turn, as rgthree's Power Lora Loader does. `loras` is a JSON
    list of the pack's rows {on, lora, strength, strengthTwo} (its lora_1, lora_2 ... inputs and
    saved row widgets are read into it): a row that is on and has a non-zero strength is applied
    with `strength` to the model and `strengthTwo` (or, when absent or null, `strength`) to the
    text encoder; without a text encoder connected only the model is changed. A LoRA name that
    names no file is looked for as the pack does (without its extension, by file name alone, then
    any file whose path contains it), and skipped with a warning when nothing matches."""
    category = "loaders"
    model: MODEL = None
    clip: CLIP = None
    loras: str = Text("[]", multiline=True)
    outputs = {"MODEL": MODEL, "CLIP": CLIP}
    comfy = ComfyAlias(("Power Lora Loader (rgthree)",), gather={"lora_": "loras"},
                       ignore=("PowerLoraLoaderHeaderWidget", "\u2795 Add Lora"))

    @classmethod
    def fingerprint(cls, loras="[]", **widgets):
        try:
            rows = [r for r in json.loads(loras) if isinstance(r, dict) and r.get("on")]
            names = folders.list_models("loras")  # the folder walked once for all rows
            files = [rgthree_lora_file(r["lora"], names) for r in rows if isinstance(r.get("lora"), str)]
            return tuple(folders.model_state("loras", f) for f in files if f is not None)
        except (ValueError, TypeError, KeyError, FileNotFoundError):
            return None  # run() names the problem

    def run(self):
        model, clip = self.model, self.clip
        names = None  # the LoRA folder, listed at the first row that needs it
        for row in power_lora_rows(self.loras):
            strength_model = row["strength"]
            strength_clip = row.get("strengthTwo")
            if clip is None:
                if strength_clip:
                    warn(f"{row['lora']}: a text encoder strength ({strength_clip}) but no text encoder connected")
                strength_clip = 0
            elif strength_clip is None:
                strength_clip = strength_model
            if row["on"] and (strength_model != 0 or strength_clip != 0):
                names = folders.list_models("loras") if names is None else names
                name = rgthree_lora_file(row["lora"], names)
                if name is None:
                    warn(f"no LoRA file matches {row['lora']!r}: skipped, as the pack skips it")
                elif model is not None:
                    if name != row["lora"]:
                        warn(f"LoRA {row['lora']!r} taken to be {name!r}, as the pack matches names")
                    model, clip = _apply_lora(model, clip, name, strength_model, strength_clip, "loras")
        return model, clip


def rgthree_lora_file(name: str, names: list[str]) -> str | None:
    """The LoRA file rgthree's Power Lora Loader takes for a row's name: that file, else the
    first whose path without extension, file name, or file name without extension equals the
    name (as it is, then cut the same way), else the first whose path contains the name; None
    when none does (`names`: the LoRA folder's files). So a workflow from a machine keeping its
    LoRAs in other subfolders still runs."""
    if name in names:
        return name
    stem, base = os.path.splitext, os.path.basename
    for key in (lambda p: stem(p)[0], base, lambda p: stem(base(p))[0]):
        keys = [key(n) for n in names]
        for wanted in (name, key(name)):
            if wanted in keys:
                return names[keys.index(wanted)]
    return next((n for n in names if name in n), None)


def power_lora_rows(text: str) -> list[dict]:
    """The Power Lora Loader's rows from its JSON text; rows lacking on, lora or strength are
    skipped, as the pack skips them."""
    try:
        rows = json.loads(text)
    except ValueError as e:
        raise NodeInputError("loras", f"expected a JSON list of LoRA rows, got {text[:60]!r} ({e})") from None
    if not isinstance(rows, list):
        raise NodeInputError("loras", f"expected a JSON list of LoRA rows, got {type(rows).__name__}")
    rows = [r for r in rows if isinstance(r, dict) and {"on", "lora", "strength"} <= r.keys()]
    for row in rows:  # a row that is off is never looked at
        strengths = [row["strength"]] + ([row["strengthTwo"]] if row.get("strengthTwo") is not None else [])
        if row["on"] and (not isinstance(row["lora"], str) or not all(isinstance(v, (int, float)) for v in strengths)):
            raise NodeInputError("loras", f"a row that is on needs a file name and numeric strengths, got {row}")
    return rows


class LoraLoaderStack(Node):
    """Apply up to four LoRAs in turn, each with one strength for both the model and the text
    encoder, as rgthree's Lora Loader Stack does (a LoRA named "None" or of strength 0 is skipped,
    its file not even looked for)."""
    category = "loaders"
    model: MODEL
    clip: CLIP
    lora_01: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    strength_01: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_02: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    strength_02: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_03: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    strength_03: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_04: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    strength_04: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    outputs = {"MODEL": MODEL, "CLIP": CLIP}
    comfy = ComfyAlias(("Lora Loader Stack (rgthree)",))

    @classmethod
    def fingerprint(cls, **widgets):
        return tuple(folders.model_state("loras", widgets[f"lora_0{i}"]) for i in range(1, 5)
                     if widgets.get(f"lora_0{i}", "None") != "None" and widgets.get(f"strength_0{i}", 1.0) != 0)

    def run(self):
        model, clip = self.model, self.clip
        for i in range(1, 5):
            name, strength = getattr(self, f"lora_0{i}"), getattr(self, f"strength_0{i}")
            if name != "None" and strength != 0:
                model, clip = _apply_lora(model, clip, name, strength, strength, f"lora_0{i}")
        return model, clip


def _apply_lora(model, clip, name, strength_model, strength_clip, input_name):
    """One LoRA file applied as LoadLoRA applies it, errors naming this node's input."""
    from graphflow.models.checkpoint import CheckpointError
    from graphflow.models.lora import apply_lora

    try:
        path = folders.find_model("loras", name)
        return apply_lora(model, clip, path, strength_model, strength_clip, strict=False, warn=warn)
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        raise NodeInputError(input_name, str(e)) from None


def random_seed(marker: int, limit: int) -> int:
    """A fresh random seed in 0..limit for an editor's seed marker (-1 "random", ...) that reached
    the engine unreplaced (an API graph written by hand), with a warning, as the packs' backends do."""
    seed = random.SystemRandom().randint(0, limit)
    warn(f"seed {marker} is the editor's marker for a seed drawn when queueing; got none, so using random seed {seed}")
    return seed


class RgthreeSeed(Node):
    """A seed to link into samplers, as rgthree's Seed node: -1, -2 and -3 are the editor's
    "random", "increment" and "decrement" markers, replaced by the pack's editor when queueing;
    one reaching the engine (an API graph written by hand) becomes a fresh random seed, with a
    warning, as the pack's backend does."""
    category = "primitives"
    seed: int = Int(0, min=-RGTHREE_SEED_MAX, max=RGTHREE_SEED_MAX)
    outputs = {"SEED": INT}
    comfy = ComfyAlias(("Seed (rgthree)",))

    @classmethod
    def fingerprint(cls, seed=0):
        return random.random() if seed in RGTHREE_SPECIAL_SEEDS else None  # never reuse a random draw

    def run(self):
        return random_seed(self.seed, RGTHREE_SEED_MAX) if self.seed in RGTHREE_SPECIAL_SEEDS else self.seed


class ImageComparer(Node):
    """Show two images (or batches) to compare, as rgthree's Image Comparer does: both are saved
    to the temp folder like a preview and given to the editor as `a_images` and `b_images`;
    either may be left unconnected."""
    category = "image"
    output_node = True
    image_a: IMAGE = None
    image_b: IMAGE = None
    comfy = ComfyAlias(("Image Comparer (rgthree)",))

    def run(self):
        show(a_images=temp_pngs(self.image_a) if self.image_a is not None else [],
             b_images=temp_pngs(self.image_b) if self.image_b is not None else [])


# -- ComfyUI-KJNodes --------------------------------------------------------------------------

class GetImageSizeAndCount(Node):
    """Pass images on with their width, height and count, as KJNodes' Get Image Size & Count does
    (the editor shows "countxwidthxheight")."""
    category = "image"
    image: IMAGE
    outputs = {"image": IMAGE, "width": INT, "height": INT, "count": INT}
    comfy = ComfyAlias(("GetImageSizeAndCount",))

    def run(self):
        count, height, width = self.image.shape[:3]
        show(text=[f"{count}x{width}x{height}"])
        return self.image, width, height, count


def kj_resize_size(ow: int, oh: int, width: int, height: int, keep_proportion: bool, divisible_by: int,
                   reference: tuple[int, int] | None = None) -> tuple[int, int]:
    """ImageResizeKJ's target size for an ow x oh image: the reference image's size as it is when
    one is given (the pack cuts nothing then), else width x height (a 0 side: the image's), or
    with keep_proportion the largest size of the image's aspect inside it (a 0 side follows the
    other), cut down to multiples of divisible_by."""
    if reference is not None:
        return reference
    if keep_proportion:
        if width == 0 and height != 0:
            width = round(ow * height / oh)
        elif height == 0 and width != 0:
            height = round(oh * width / ow)
        elif width != 0 and height != 0:
            ratio = min(width / ow, height / oh)
            width, height = round(ow * ratio), round(oh * ratio)
    else:
        width, height = width or ow, height or oh
    if divisible_by > 1:
        width, height = width - width % divisible_by, height - height % divisible_by
    return width, height


class ImageResizeKJ(Node):
    """Resize images as KJNodes' Resize Image (ImageResizeKJ) does: to width x height (a 0 side
    keeps the image's), or with keep_proportion to the largest size of the image's aspect that
    fits (a 0 side follows the other), the size then cut down to multiples of divisible_by; or to
    get_image_size's size, as it is, when that is connected. Crop "center" crops to the new aspect
    first instead of stretching. Resampling is ImageScale's. Gives the images with their width
    and height."""
    category = "image/transform"
    image: IMAGE
    width: int = Int(512, min=0, max=MAX_SIZE, resource="width")
    height: int = Int(512, min=0, max=MAX_SIZE, resource="height")
    upscale_method: str = Choice(RESIZE_METHODS, "nearest-exact")
    keep_proportion: bool = Bool(False)
    divisible_by: int = Int(2, min=0, max=512)
    get_image_size: IMAGE = None
    crop: str = Choice(("disabled", "center"), "disabled")
    outputs = {"IMAGE": IMAGE, "width": INT, "height": INT}
    # The pack also takes crop 0, for center: old workflows saved it there after a widget-order change.
    comfy = ComfyAlias(("ImageResizeKJ",), values={"crop": {0: "center", "center": "center"}})

    @classmethod
    def estimate(cls, widgets, inputs):
        source, reference = inputs.get("image"), inputs.get("get_image_size")
        if reference is not None and source is not None:
            return Estimate(Size(source.batch, reference.height, reference.width))
        sides = [widgets.get(name) for name in ("width", "height", "divisible_by")]
        if source is None or "get_image_size" in inputs or not all(isinstance(v, int) for v in sides) \
                or not isinstance(widgets.get("keep_proportion"), bool):
            return Estimate(None)  # a size only the run knows
        width, height = kj_resize_size(source.width, source.height, *sides[:2], widgets["keep_proportion"], sides[2])
        return Estimate(Size(source.batch, max(height, 1), max(width, 1)))

    def run(self):
        _, oh, ow, _ = self.image.shape
        reference = None if self.get_image_size is None else (self.get_image_size.shape[2],
                                                               self.get_image_size.shape[1])
        width, height = kj_resize_size(ow, oh, self.width, self.height, self.keep_proportion, self.divisible_by,
                                       reference)
        if width < 1 or height < 1:
            uncut = kj_resize_size(ow, oh, self.width, self.height, self.keep_proportion, 0, reference)
            name = "divisible_by" if min(uncut) >= 1 else "width" if uncut[0] < 1 else "height"
            raise NodeInputError(name, f"the {ow}x{oh} image would be resized to {width}x{height}: expected a "
                                       f"size of at least 1x1 (after cutting it down to multiples of divisible_by)")
        out = _resize_image(self.image, width, height, self.upscale_method, crop=self.crop == "center")
        return out, width, height


class ConditioningMultiCombine(Node):
    """Combine (or concatenate) conditioning_1 ... conditioning_<inputcount>, as KJNodes'
    Conditioning Multi Combine does: each next one is combined in front of what came before
    (ConditioningCombine(new, so far)), or appended to it as more tokens (ConditioningConcat(so
    far, new)). Gives the result and inputcount."""
    category = "conditioning"
    inputcount: int = Int(2, min=2, max=20)
    operation: str = Choice(("combine", "concat"), "combine")
    conditioning_1: CONDITIONING
    conditioning_2: CONDITIONING
    conditioning_3: CONDITIONING = None
    conditioning_4: CONDITIONING = None
    conditioning_5: CONDITIONING = None
    conditioning_6: CONDITIONING = None
    conditioning_7: CONDITIONING = None
    conditioning_8: CONDITIONING = None
    conditioning_9: CONDITIONING = None
    conditioning_10: CONDITIONING = None
    conditioning_11: CONDITIONING = None
    conditioning_12: CONDITIONING = None
    conditioning_13: CONDITIONING = None
    conditioning_14: CONDITIONING = None
    conditioning_15: CONDITIONING = None
    conditioning_16: CONDITIONING = None
    conditioning_17: CONDITIONING = None
    conditioning_18: CONDITIONING = None
    conditioning_19: CONDITIONING = None
    conditioning_20: CONDITIONING = None
    outputs = {"combined": CONDITIONING, "inputcount": INT}
    comfy = ComfyAlias(("ConditioningMultiCombine",))

    def run(self):
        combined = self.conditioning_1
        for name, new in counted_inputs(self, "conditioning_"):
            if self.operation == "combine":
                combined = list(new) + list(combined)
            else:
                combined = concat_conditioning(combined, new, name)
        return combined, self.inputcount


# -- ComfyUI_essentials -----------------------------------------------------------------------

ESSENTIALS_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "nearest-exact", "lanczos")
ESSENTIALS_METHODS = ("stretch", "keep proportion", "fill / crop", "pad")
ESSENTIALS_CONDITIONS = ("always", "downscale if bigger", "upscale if smaller", "if bigger area", "if smaller area")


def essentials_resize_plan(ow: int, oh: int, width: int, height: int, method: str, multiple_of: int):
    """ImageResize+'s geometry: (size to resize to, (left, right, top, bottom) padding, (x, y, x2, y2)
    crop or None). The target is first cut down to multiples of multiple_of. "keep proportion" and
    "pad" fit inside the target (a 0 side is free: the image's own size or, when the other side
    grows, the largest allowed), "pad" then pads to it evenly (the odd pixel right / bottom);
    "fill / crop" covers the target and crops the middle; "stretch" takes the target (0: the
    image's side)."""
    if multiple_of > 1:
        width, height = width - width % multiple_of, height - height % multiple_of
    pads, crop = (0, 0, 0, 0), None
    if method in ("keep proportion", "pad"):
        if width == 0:  # the pack compares the image's height with the target height here
            width = MAX_SIZE if oh < height else ow
        if height == 0:
            height = MAX_SIZE if ow < width else oh
        ratio = min(width / ow, height / oh)
        new_width, new_height = round(ow * ratio), round(oh * ratio)
        if method == "pad":
            left, top = (width - new_width) // 2, (height - new_height) // 2
            pads = (left, width - new_width - left, top, height - new_height - top)
        return (new_width, new_height), pads, crop
    width, height = width or ow, height or oh
    if method == "fill / crop":
        ratio = max(width / ow, height / oh)
        new_width, new_height = round(ow * ratio), round(oh * ratio)
        x, y = max((new_width - width) // 2, 0), max((new_height - height) // 2, 0)
        return (new_width, new_height), pads, (x, y, x + width, y + height)
    return (width, height), pads, crop


def essentials_resize_applies(condition: str, ow: int, oh: int, width: int, height: int) -> bool:
    """Whether ImageResize+ resizes at all, comparing the image with the size it would resize to."""
    return (condition == "always" or condition == "downscale if bigger" and (oh > height or ow > width)
            or condition == "upscale if smaller" and (oh < height or ow < width)
            or condition == "if bigger area" and oh * ow > height * width
            or condition == "if smaller area" and oh * ow < height * width)


class ImageResizePlus(Node):
    """Resize images as ComfyUI_essentials' Image Resize does: stretch to the size, keep the
    proportion (fit inside), fill / crop (cover, then crop the middle) or pad (fit inside, then pad
    with black); only when the condition holds; a width or height of 0 follows the image. With
    multiple_of, the size is cut down to its multiples first and the result cropped (about its
    middle) to them last. Gives the images with their width and height."""
    category = "image/transform"
    image: IMAGE
    width: int = Int(512, min=0, max=MAX_SIZE, resource="width")
    height: int = Int(512, min=0, max=MAX_SIZE, resource="height")
    interpolation: str = Choice(ESSENTIALS_INTERPOLATIONS, "nearest")
    method: str = Choice(ESSENTIALS_METHODS, "stretch")
    condition: str = Choice(ESSENTIALS_CONDITIONS, "always")
    multiple_of: int = Int(0, min=0, max=512)
    outputs = {"IMAGE": IMAGE, "width": INT, "height": INT}
    comfy = ComfyAlias(("ImageResize+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        source = inputs.get("image")
        values = [widgets.get(name) for name in ("width", "height", "method", "condition", "multiple_of")]
        if source is None or None in values:
            return Estimate(None)  # a size only the run knows
        width, height, method, condition, multiple = values
        (w, h), pads, crop = essentials_resize_plan(source.width, source.height, width, height, method, multiple)
        if not essentials_resize_applies(condition, source.width, source.height, w, h):
            return Estimate(source)
        w, h = w + pads[0] + pads[1], h + pads[2] + pads[3]
        if crop is not None:
            w, h = crop[2] - crop[0], crop[3] - crop[1]
        if multiple > 1:
            w, h = w - w % multiple, h - h % multiple
        return Estimate(Size(source.batch, max(h, 1), max(w, 1)))

    def run(self):
        import torch
        import torch.nn.functional as F

        from graphflow.images import resize_nchw

        _, oh, ow, _ = self.image.shape
        (width, height), pads, crop = essentials_resize_plan(ow, oh, self.width, self.height, self.method,
                                                            self.multiple_of)
        out = self.image
        if essentials_resize_applies(self.condition, ow, oh, width, height):
            x = self.image.movedim(-1, 1)
            if self.interpolation == "nearest":  # plain torch nearest, which ComfyUI's own resizes don't offer
                x = F.interpolate(x, size=(height, width), mode="nearest")
            else:
                x = resize_nchw(x, width, height, self.interpolation)
            if any(pads):
                x = F.pad(x, pads, value=0)
            out = x.movedim(1, -1)
            if crop is not None:
                x1, y1, x2, y2 = crop
                out = out[:, y1:y2, x1:x2, :]
        m = self.multiple_of
        if m > 1 and (out.shape[2] % m or out.shape[1] % m):
            h, w = out.shape[1:3]
            x1, y1 = (w % m) // 2, (h % m) // 2
            out = out[:, y1:h - (h % m - y1), x1:w - (w % m - x1), :]
        out = torch.clamp(out, 0, 1)
        return out, out.shape[2], out.shape[1]


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.Mod: operator.mod}
_UNARY = {ast.USub: operator.neg, ast.Not: operator.not_}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_FUNCTIONS = {"min": min, "max": max, "round": round, "sum": sum, "len": len}
POWER_LIMIT = 10_000  # bigger exponents of whole numbers could take the process down


def simple_math(expression: str, names: dict):
    """The value of SimpleMath+'s expression, walked node by node under the pack's grammar:
    numbers, the names a b c d (other names are None), + - * / // ** %, unary - and not,
    comparisons (1 when all hold, else 0; a chain compares its first operand with each, as
    the pack does), and/or, calls of min max round sum len (keyword arguments left out, other
    names giving None), and indexing by a constant. Other operators (^, ~, in ...) and calls
    of anything but a name are errors, as in the pack; other expressions (attributes, strings,
    lambdas, slices) count 0. Nothing is ever evaluated by Python itself. Deliberately unlike the
    pack, and/or take more than two operands, and exponents above POWER_LIMIT are refused."""
    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name):
            return names.get(node.id)
        if isinstance(node, ast.BinOp):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > POWER_LIMIT:
                raise ValueError(f"exponent {right} is too big (at most {POWER_LIMIT})")
            return _operator(_BINARY, node.op)(left, right)
        if isinstance(node, ast.UnaryOp):
            return _operator(_UNARY, node.op)(value(node.operand))
        if isinstance(node, ast.Compare):
            left = value(node.left)
            for op, right in zip(node.ops, node.comparators):  # an operator is looked at once reached
                if not _operator(_COMPARE, op)(left, value(right)):
                    return 0
            return 1
        if isinstance(node, ast.BoolOp):
            values = [value(v) for v in node.values]
            result = values[0]
            for v in values[1:]:
                result = (result and v) if isinstance(node.op, ast.And) else (result or v)
            return result
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise ValueError(f"only {', '.join(_FUNCTIONS)} can be called")
            if node.func.id not in _FUNCTIONS:
                return None
            return _FUNCTIONS[node.func.id](*[value(a) for a in node.args])
        if isinstance(node, ast.Subscript):
            target = value(node.value)
            index = node.slice
            return target[index.value] if isinstance(index, ast.Constant) else 0
        return 0

    return value(ast.parse(expression, mode="eval").body)


def _operator(table: dict, op):
    """The function of an operator of SimpleMath+'s grammar; the pack fails on any other."""
    if type(op) not in table:
        raise ValueError(f"the operator {type(op).__name__} is not one of SimpleMath's")
    return table[type(op)]


class SimpleMath(Node):
    """Work out a formula of a, b and c, as ComfyUI_essentials' Simple Math does: + - * / // ** %,
    comparisons, and/or/not, min max round sum len, a[0] indexing (d is 0, as in the pack); an
    image or other tensor stands for its shape as a list, text for the number it spells. Gives
    the value rounded to an integer (half to even) and as a number (NaN gives 0), always a float
    here where the pack passes a whole or true/false result on as it is."""
    category = "utils"
    a: ANY = None
    b: ANY = None
    c: ANY = None
    value: str = Text("")
    outputs = {"INT": INT, "FLOAT": FLOAT}
    comfy = ComfyAlias(("SimpleMath+",))

    def run(self):
        return essentials_math(self.value, {"a": self.a, "b": self.b, "c": self.c}, "value")


def essentials_math(expression: str, given: dict, input_name: str) -> tuple[int, float]:
    """SimpleMath+'s (int, float) of an expression on the named inputs (a, b, c and, for
    SimpleMathDual+, d; unconnected ones are 0; a tensor stands for its shape, text for its
    number), errors naming input_name (the expression's input)."""
    names = {"d": 0.0}  # the pack's function takes a d too, 0.0 unless given
    for name, value in given.items():
        if value is None:
            value = 0.0
        elif hasattr(value, "shape"):
            value = list(value.shape)
        elif isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise NodeInputError(name, f"expected a number, got text {value!r}") from None
        names[name] = value
    try:
        result = simple_math(expression, names)
    except SyntaxError as e:
        raise NodeInputError(input_name, f"not a formula: {expression!r} ({e.msg})") from None
    except (TypeError, ValueError, ZeroDivisionError, IndexError, KeyError, OverflowError) as e:
        raise NodeInputError(input_name, f"{expression!r} can't be worked out: {e}") from None
    if not isinstance(result, (int, float)):
        raise NodeInputError(input_name, f"{expression!r} gives {type(result).__name__}, not a number")
    if math.isnan(result):
        result = 0.0
    if math.isinf(result):
        raise NodeInputError(input_name, f"{expression!r} is infinite, which has no integer value")
    try:
        number = float(result)
    except OverflowError:
        raise NodeInputError(input_name, f"{expression!r} is too big for a number") from None
    return round(result), number  # a whole result rounds exactly, however big
