"""comfy_mtb's (MTB Nodes, melMass) model-free backend nodes, under the pack's class names ("<Label>
(mtb)", the label being the class name without MTB_ split at its capitals, as the pack's
__init__.py builds them), inputs and outputs. Read from melMass/comfy_mtb: nodes/batch.py
@00173fa3, nodes/graph_utils.py @05fe61e0, nodes/image_processing.py @265cb953,
nodes/image_utils.py @93f7c006, nodes/number.py @c20da85e, utils.py @7e360079 (easings, tensor / PIL
conversions), web/mtb_widgets.js @f9a0998c (the dynamic inputs prefix_1, prefix_2 ... its editor adds
as links are made).

Held here: Batch Float, Batch Float Fill, Batch Float Assemble, Batch Float Normalize, Batch Float
Math, Batch Float Fit, Fit Number, Batch Make, Batch Merge, Batch Sequence, Batch Time Wrap, Batch
Shape, Concat Images, String Replace, Math Expression, Int To Number, Float To Number, Int To Bool,
Image Premultiply, Image Tile Offset, Sharpen, Blur, Mask To Image, Image Compare, Color Correct,
Stack Images, Pick From Batch, Image Resize Factor, Batch Sequence Plus; and in
nodes/pack_nodes_mtb2.py Animation Builder, Debug, Colored Image, Save Image Grid, Apply Text
Template, Any To String, Smart Step, Interpolate Condition, Load Image Sequence, Save Image
Sequence, Float To Floats, Floats To Float, Floats To Ints, Match Dimensions, Curve, Curve To Float,
Color Correct GPU, Save Gif, Styles Loader, Text To Image.

Left out: the nodes that need models (FILM / RIFE interpolation, face swap and restore, DeepBump,
ViTMatte, Whisper, upscalers, Image Remove Background), a service (Unsplash, Get Batch From History,
Load Image From Url: graphflow fetches nothing from the network), and, so far, the rest of the
pack's model-free nodes: Batch Shake and Batch Transform (below), Plot Batch Float (it draws with
matplotlib, which is not a dependency here), Interpolate Clip Sequential (its editor
adds replacement_N inputs and widgets and +/- buttons whose saved layout was not followed in this
round), and the pack's other utilities (Crop / Uncrop / Bbox nodes, Transform Image, Latent Lerp,
Tensor Ops, Audio nodes, Clock nodes, playlists, Export With Ffmpeg, Save Image, Save Tensors, Qr
Code, Image H264 Compression, Get Item, Image Batch To Sublist / Sublist To Image Batch, To Device,
Vae Decode, Auto Pan Equilateral, Model Patch Seamless, Model Pruner, Postshot, Filter Z, Color
Input, Boolean Not, Coordinates To String, Extract Coordinates From Image, Generate Trimap, Split
Bbox, Upscale Bbox By, BBox Force Dimensions): a save holding one of them is reported as needing
comfy_mtb (graphflow.comfy_format.CUSTOM_PACKS). Deglaze Image is not registered by the pack (its
class is commented out, and it needs opencv-contrib's guided filter). Note Plus, an editor-only note
(its script's own node class), is read as a note (graphflow.comfy_format.NOTE_TYPES) and written
back as itself. Batch Shake and Batch Transform need the pack's Transform Image, which is
torchvision's pad and affine on PIL images (torchvision is not a dependency here).

The pack's dynamic inputs are built here up to DYNAMIC_INPUTS of each kind (floats_1 ..., batches_1
..., image_1 ...); one past that is refused naming it."""

from __future__ import annotations

import math

from graphflow.api import ANY, BOOLEAN, FLOAT, IMAGE, INT, MASK, STRING, Bool, Choice, ComfyAlias, Estimate, Float, \
    Int, Node, NodeInputError, Size, Text, check_interrupted, repeated, socket_type
from nodes.image import MAX_SIZE, _image
from nodes.pack_nodes import MAX_LIST_ITEMS
from nodes.pack_nodes_pysssss import math_expression, regex_replace
from nodes.strings import replaced_in_turn

COMFY_PACK = "comfy_mtb"  # the custom node pack this module's ComfyUI classes come from
FLOATS = socket_type("FLOATS", "#26a69a", "A list of real numbers")  # the type nodes/hooks.py declares
NUMBER = socket_type("NUMBER", "#4db6ac", "WAS Node Suite's number: an int or a float")  # as pack_nodes_was declares it
DYNAMIC_INPUTS = 12  # numbered inputs built per dynamic prefix (the pack's editor adds them without end)

# -- easings (the pack's utils.apply_easing, Robert Penner's curves as the pack writes them) -----------


def _back_in_out(t: float) -> float:
    s = 1.70158 * 1.525
    # the pack's second half multiplies (t - 2) by t where Penner's formula squares (t - 2): kept
    return t * t * (t * (s + 1) - s) * 2 if t < 0.5 else ((t - 2) * t * ((s + 1) * t + s) + 2) * 2


def _elastic(t: float, p: float, out: bool) -> float:
    s = p / 4
    if out:
        return 2 ** (-10 * t) * math.sin((t - s) * 2 * math.pi / p) + 1
    return -(2 ** (10 * (t - 1)) * math.sin((t - 1 - s) * 2 * math.pi / p))


def _elastic_in_out(t: float) -> float:
    p = 0.3 * 1.5
    s, t = p / 4, t * 2
    if t < 1:
        return -0.5 * 2 ** (10 * (t - 1)) * math.sin((t - 1 - s) * 2 * math.pi / p)
    return 0.5 * 2 ** (-10 * (t - 1)) * math.sin((t - 1 - s) * 2 * math.pi / p) + 1


def _bounce_out(t: float) -> float:
    for edge, shift, lift in ((1 / 2.75, 0.0, 0.0), (2 / 2.75, 1.5 / 2.75, 0.75), (2.5 / 2.75, 2.25 / 2.75, 0.9375)):
        if t < edge:
            t -= shift
            return 7.5625 * t * t + lift
    t -= 2.625 / 2.75
    return 7.5625 * t * t + 0.984375


def _in_out(t: float, power: int) -> float:
    t *= 2
    return 0.5 * t ** power if t < 1 else 0.5 * ((t - 2) ** power * (1 if power % 2 else -1) + 2)


EASINGS = {
    "Linear": lambda t: t,
    "Sine In": lambda t: 1 - math.cos(t * math.pi / 2),
    "Sine Out": lambda t: math.sin(t * math.pi / 2),
    "Sine In/Out": lambda t: -0.5 * (math.cos(math.pi * t) - 1),
    "Quart In": lambda t: t ** 4,
    "Quart Out": lambda t: 1 - (t - 1) ** 4,
    "Quart In/Out": lambda t: _in_out(t, 4),
    "Cubic In": lambda t: t ** 3,
    "Cubic Out": lambda t: (t - 1) ** 3 + 1,
    "Cubic In/Out": lambda t: _in_out(t, 3),
    "Circ In": lambda t: 1 - math.sqrt(1 - t * t),
    "Circ Out": lambda t: math.sqrt(1 - (t - 1) ** 2),
    "Circ In/Out": lambda t: -0.5 * (math.sqrt(1 - (2 * t) ** 2) - 1) if t < 0.5
    else 0.5 * (math.sqrt(1 - (2 * t - 2) ** 2) + 1),
    "Back In": lambda t: t * t * (2.70158 * t - 1.70158),
    "Back Out": lambda t: (t - 1) * t * (2.70158 * t + 1.70158) + 1,  # sic: the pack's (t - 1) * t
    "Back In/Out": _back_in_out,
    "Elastic In": lambda t: t if t in (0, 1) else _elastic(t, 0.3, False),
    "Elastic Out": lambda t: t if t in (0, 1) else _elastic(t, 0.3, True),
    "Elastic In/Out": lambda t: t if t in (0, 1) else _elastic_in_out(t),
    "Bounce In": lambda t: 1 - _bounce_out(1 - t),
    "Bounce Out": _bounce_out,
    "Bounce In/Out": lambda t: (1 - _bounce_out(1 - t * 2)) * 0.5 if t < 0.5 else _bounce_out(t * 2 - 1) * 0.5 + 0.5,
}


def eased(t: float, easing: str, input_name: str) -> float:
    """The pack's easing of t (0..1 for the curves to mean what they say; the pack eases any t)."""
    try:
        return float(EASINGS[easing](t))
    except (ValueError, OverflowError) as e:  # Circ's square root of a negative: t beyond 0..1
        raise NodeInputError(input_name, f"{t:g} can't be eased by {easing} ({e}); clamp it to the source range") \
            from None


def fit_number(value: float, clamp: bool, source_min: float, source_max: float, target_min: float,
               target_max: float, easing: str, input_name: str = "value") -> float:
    """MTB's Fit Number: value's place in the source range (0 where the range is empty), clamped
    to 0..1 if asked, eased, then placed in the target range."""
    t = 0.0 if source_min == source_max else (value - source_min) / (source_max - source_min)
    if clamp:
        t = max(min(t, 1.0), 0.0)
    return target_min + (target_max - target_min) * eased(t, easing, input_name)


def _floats(value, name: str) -> list[float]:
    """The list as floats: an int in it (a list from elsewhere) made a float, as the pack's lists
    hold (so that pow of 10 by 10 ** 6 overflows as a float does, not as an exact integer)."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) for v in value):
        raise NodeInputError(name, "expected FLOATS: a list of numbers")
    try:
        return [float(v) for v in value]
    except OverflowError:
        raise NodeInputError(name, "holds a whole number too large for a float") from None


def _count_fits(count: int, name: str) -> None:
    if count > MAX_LIST_ITEMS:
        raise NodeInputError(name, f"makes a list of {count:,} numbers; the limit is {MAX_LIST_ITEMS:,}")


def _dynamic(node, prefix: str) -> list[tuple[str, object]]:
    """(name, value) of the node's connected prefix_1 ... inputs, in number order (as the pack's
    editor adds them, and so as its Python reads them)."""
    named = ((f"{prefix}_{i}", getattr(node, f"{prefix}_{i}")) for i in range(1, DYNAMIC_INPUTS + 1))
    return [(name, value) for name, value in named if value is not None]


def _dynamic_refusal(name: str, prefixes: tuple[str, ...]) -> str | None:
    prefix, _, number = name.rpartition("_")
    if prefix in prefixes and number.isdigit() and int(number) > DYNAMIC_INPUTS:
        return (f"graphflow builds {DYNAMIC_INPUTS} {prefix} inputs ({prefix}_1 ... {prefix}_{DYNAMIC_INPUTS}); "
                f"join the rest into one of them first (another node of this kind)")
    return None


# -- batch floats ---------------------------------------------------------------------------------


class MtbBatchFloat(Node):
    """A list of `count` numbers: in Steps mode from min to max along the easing curve (the i-th
    is min + (max - min) * easing(i / (count - 1)), so Steps needs a count of 2 or more); in
    Single mode min `count` times, as MTB's Batch Float does."""
    category = "mtb/batch"
    mode: str = Choice(("Single", "Steps"), "Steps")
    count: int = Int(2)
    min: float = Float(0.0, step=0.001)
    max: float = Float(1.0, step=0.001)
    easing: str = Choice(tuple(EASINGS), "Linear")
    outputs = {"FLOATS": FLOATS}
    comfy = ComfyAlias(("Batch Float (mtb)",))

    def run(self):
        _count_fits(self.count, "count")
        if self.mode == "Single":
            return [self.min] * max(self.count, 0)
        if self.count == 1:
            raise NodeInputError("count", "Steps mode needs a count of at least 2")
        return [self.min + (self.max - self.min) * eased(i / (self.count - 1), self.easing, "easing")
                for i in range(self.count)]


class MtbBatchFloatFill(Node):
    """The list made `count` long by adding `value` after it (tail) or before it (head), as MTB's
    Batch Float Fill does; a list already longer than count is refused."""
    category = "mtb/batch"
    floats: FLOATS
    direction: str = Choice(("head", "tail"), "tail")
    value: float = Float(0.0)
    count: int = Int(1)
    outputs = {"FLOATS": FLOATS}
    comfy = ComfyAlias(("Batch Float Fill (mtb)",))

    def run(self):
        floats = _floats(self.floats, "floats")
        if len(floats) > self.count:
            raise NodeInputError("count", f"the list is {len(floats)} long, longer than count ({self.count})")
        _count_fits(self.count, "count")
        fill = [self.value] * (self.count - len(floats))
        return floats + fill if self.direction == "tail" else fill + floats


class _FloatsInputs(Node):
    floats_1: FLOATS = None
    floats_2: FLOATS = None
    floats_3: FLOATS = None
    floats_4: FLOATS = None
    floats_5: FLOATS = None
    floats_6: FLOATS = None
    floats_7: FLOATS = None
    floats_8: FLOATS = None
    floats_9: FLOATS = None
    floats_10: FLOATS = None
    floats_11: FLOATS = None
    floats_12: FLOATS = None

    @classmethod
    def unknown_input(cls, name):
        return _dynamic_refusal(name, ("floats",))

    def lists(self) -> list[tuple[str, list[float]]]:
        named = [(name, _floats(value, name)) for name, value in _dynamic(self, "floats")]
        return named[::-1] if self.reverse else named


class MtbBatchFloatAssemble(_FloatsInputs):
    """The connected lists (floats_1, floats_2 ...; last first with reverse) one after another,
    as MTB's Batch Float Assemble does."""
    category = "mtb/batch"
    reverse: bool = Bool(False)
    outputs = {"FLOATS": FLOATS}
    comfy = ComfyAlias(("Batch Float Assemble (mtb)",))

    def run(self):
        joined = [value for _, floats in self.lists() for value in floats]
        _count_fits(len(joined), "floats_1")
        return joined


class MtbBatchFloatMath(_FloatsInputs):
    """Element by element over the connected lists (which must be as long as each other), as
    MTB's Batch Float Math does: add sums them all, sub takes the others from the first; mul,
    div and pow use the first two lists only; abs the first only. reverse takes the last list
    first."""
    category = "mtb/utils"
    reverse: bool = Bool(False)
    operation: str = Choice(("add", "sub", "mul", "div", "pow", "abs"), "add")
    outputs = {"FLOATS": FLOATS}
    comfy = ComfyAlias(("Batch Float Math (mtb)",))

    def run(self):
        named = self.lists()
        if not named:
            raise NodeInputError("floats_1", "not connected: the node needs at least one list")
        first_name, first = named[0]
        for name, floats in named[1:]:
            if len(floats) != len(first):
                raise NodeInputError(name, f"{len(floats)} values; {first_name} has {len(first)}")
        lists = [floats for _, floats in named]
        if self.operation == "add":
            return [sum(column) for column in zip(*lists)]
        if self.operation == "sub":
            return [column[0] - sum(column[1:]) for column in zip(*lists)]
        if self.operation == "abs":
            return [abs(v) for v in first]
        if len(lists) < 2:
            raise NodeInputError("floats_2", f"not connected: {self.operation} takes two lists")
        second_name = named[1][0]
        result = []
        for a, b in zip(lists[0], lists[1]):
            try:
                result.append(a / b if self.operation == "div" else a * b if self.operation == "mul" else a ** b)
            except (ZeroDivisionError, OverflowError) as e:
                raise NodeInputError(second_name, f"{a:g} {self.operation} {b:g}: {e}") from None
            if isinstance(result[-1], complex):
                raise NodeInputError(second_name, f"{a:g} to the power {b:g} is not a real number")
        return result


class MtbBatchFloatNormalize(Node):
    """The list rescaled to 0..1 ((x - min) / (max - min)), as MTB's Batch Float Normalize
    does; a list whose values are all equal is refused (the pack divides by zero)."""
    category = "mtb/batch"
    floats: FLOATS
    outputs = {"normalized_floats": FLOATS}
    comfy = ComfyAlias(("Batch Float Normalize (mtb)",))

    def run(self):
        floats = _floats(self.floats, "floats")
        if not floats or min(floats) == max(floats):
            raise NodeInputError("floats", "needs at least two different values to normalize")
        low, high = min(floats), max(floats)
        return [(x - low) / (high - low) for x in floats]


class MtbFitNumber(Node):
    """value moved from the source range to the target range along the easing curve, as MTB's
    Fit Number does: its place in the source range (0 when source_min equals source_max),
    clamped to 0..1 with clamp, eased, then put in the target range."""
    category = "mtb/math"
    value: FLOAT
    clamp: bool = Bool(False)
    source_min: float = Float(0.0, min=-1e5, step=0.01)
    source_max: float = Float(1.0, min=-1e5, step=0.01)
    target_min: float = Float(0.0, min=-1e5, step=0.01)
    target_max: float = Float(1.0, min=-1e5, step=0.01)
    easing: str = Choice(tuple(EASINGS), "Linear")
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("Fit Number (mtb)",), force_input=("value",))

    def run(self):
        return fit_number(self.value, self.clamp, self.source_min, self.source_max, self.target_min,
                          self.target_max, self.easing)


class MtbBatchFloatFit(Node):
    """Fit Number applied to each value of the list, as MTB's Batch Float Fit does;
    auto_compute_source takes the list's own min and max as the source range."""
    category = "mtb/batch"
    values: FLOATS
    clamp: bool = Bool(False)
    auto_compute_source: bool = Bool(False)
    source_min: float = Float(0.0, step=0.01)
    source_max: float = Float(1.0, step=0.01)
    target_min: float = Float(0.0, step=0.01)
    target_max: float = Float(1.0, step=0.01)
    easing: str = Choice(tuple(EASINGS), "Linear")
    outputs = {"FLOATS": FLOATS}
    comfy = ComfyAlias(("Batch Float Fit (mtb)",))

    def run(self):
        values = _floats(self.values, "values")
        low, high = (min(values), max(values)) if self.auto_compute_source and values else \
            (self.source_min, self.source_max)
        return [fit_number(v, self.clamp, low, high, self.target_min, self.target_max, self.easing, "values")
                for v in values]


# -- image batches --------------------------------------------------------------------------------


class MtbBatchMake(Node):
    """The image (each image of its batch) repeated `count` times as one batch, as MTB's Batch
    Make does. Its mask input changes nothing: the pack gives only the images."""
    category = "mtb/batch"
    image: IMAGE
    count: int = Int(1, min=1)
    mask: MASK = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Batch Make (mtb)",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return repeated(inputs.get("image"), widgets.get("count"))

    def run(self):
        return _image(self.image, "image").repeat(self.count, 1, 1, 1)


class _BatchesInputs(Node):
    batches_1: IMAGE = None
    batches_2: IMAGE = None
    batches_3: IMAGE = None
    batches_4: IMAGE = None
    batches_5: IMAGE = None
    batches_6: IMAGE = None
    batches_7: IMAGE = None
    batches_8: IMAGE = None
    batches_9: IMAGE = None
    batches_10: IMAGE = None
    batches_11: IMAGE = None
    batches_12: IMAGE = None

    @classmethod
    def unknown_input(cls, name):
        return _dynamic_refusal(name, ("batches",))

    def batches(self) -> list[tuple[str, object]]:
        named = [(name, _image(value, name)) for name, value in _dynamic(self, "batches")]
        if not named:
            raise NodeInputError("batches_1", "not connected: the node needs at least one batch")
        return named


def _same_image_size(named, what: str) -> None:
    first_name, first = named[0]
    for name, images in named[1:]:
        if images.shape[1:] != first.shape[1:]:
            raise NodeInputError(name, f"images of {images.shape[2]}×{images.shape[1]}×{images.shape[3]}; {what} "
                                       f"{first_name}'s {first.shape[2]}×{first.shape[1]}×{first.shape[3]}")


class MtbBatchSequence(_BatchesInputs):
    """The connected batches one after another (the last first with reverse), as MTB's Batch
    Sequence does; their images must be the same size."""
    category = "mtb/batch"
    reverse: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Batch Sequence (mtb)",))

    @classmethod
    def estimate(cls, widgets, inputs):
        sizes = [s for name, s in inputs.items() if name.startswith("batches_") and s is not None]
        return Estimate(Size(sum(s.batch for s in sizes), sizes[0].height, sizes[0].width) if sizes else None)

    def run(self):
        import torch
        named = self.batches()
        named = named[::-1] if self.reverse else named
        _same_image_size(named, "the images before are")
        return torch.cat([images for _, images in named])


class MtbBatchMerge(_BatchesInputs):
    """The connected batches merged image by image, as MTB's Batch Merge does: a shorter batch
    is first made as long as the longest by repeating its first image before it (fill head) or
    its last after it (tail); then add, multiply, or average in turn ((a + b) / 2, then that
    with c, and so on). The images must be the same size. (The pack adds and multiplies into
    its first input's tensor; here the inputs are left as they were.)"""
    category = "mtb/batch"
    fusion_mode: str = Choice(("add", "multiply", "average"), "average")
    fill: str = Choice(("head", "tail"), "tail")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Batch Merge (mtb)",))

    @classmethod
    def estimate(cls, widgets, inputs):
        sizes = [s for name, s in inputs.items() if name.startswith("batches_") and s is not None]
        return Estimate(Size(max(s.batch for s in sizes), sizes[0].height, sizes[0].width) if sizes else None)

    def run(self):
        import torch
        named = self.batches()
        _same_image_size(named, "merged with")
        longest = max(images.shape[0] for _, images in named)
        merged = None
        for _, images in named:
            missing = longest - images.shape[0]
            if missing:
                edge = images[:1] if self.fill == "head" else images[-1:]
                parts = (edge.repeat(missing, 1, 1, 1), images) if self.fill == "head" else \
                    (images, edge.repeat(missing, 1, 1, 1))
                images = torch.cat(parts)
            if merged is None:
                merged = images
            elif self.fusion_mode == "add":
                merged = merged + images
            elif self.fusion_mode == "multiply":
                merged = merged * images
            else:
                merged = (merged + images) / 2
        return merged


class MtbBatchTimeWrap(Node):
    """The batch retimed by a curve, as MTB's Batch Time Wrap does: the curve is resampled
    linearly (numpy.interp) to target_count points over 0..1, each point p picks the frame at
    round((frames - 1) * p) (Python's round, halves to even), clipped to the batch; also gives
    the resampled curve."""
    category = "mtb/batch"
    target_count: int = Int(25, min=2, resource="batch")
    frames: IMAGE
    curve: FLOATS
    outputs = {"image": IMAGE, "interpolated_floats": FLOATS}
    comfy = ComfyAlias(("Batch Time Wrap (mtb)",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, count = inputs.get("frames"), widgets.get("target_count")
        if size is None or not isinstance(count, int):
            return Estimate(size)
        return Estimate(Size(count, size.height, size.width))

    def run(self):
        import numpy as np
        frames = _image(self.frames, "frames")
        curve = _floats(self.curve, "curve")
        if not curve:
            raise NodeInputError("curve", "an empty list: the curve needs at least one value")
        resampled = np.interp(np.linspace(0, 1, self.target_count), np.linspace(0, 1, len(curve)), curve).tolist()
        last = frames.shape[0] - 1
        picks = [min(max(int(round(last * p)), 0), last) for p in resampled]
        return frames[picks], resampled


def _hex_rgb(text: str, name: str) -> tuple[int, int, int]:
    digits = text.strip().lstrip("#")
    if len(digits) == 6 and all(c in "0123456789abcdefABCDEF" for c in digits):
        return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))
    raise NodeInputError(name, f"expected a colour as #rrggbb, got {text!r}")


class MtbBatchShape(Node):
    """`count` images of a shape in `color` on `bg_color`, drawn with OpenCV at the centre, as
    MTB's Batch Shape does: Box (a filled square shape_size wide), Circle (filled, radius
    shape_size // 2), Diamond (filled) or Tube (a ring `thickness` wide); shadex / shadey add a
    ramp to the shape's red / green from left to right / top to bottom (summed in float and cast to
    8 bits as the pack does). shade_color changes nothing, as in the pack. Every image is the same.
    shape_size is at most twice the size limit and thickness at most 32767, OpenCV's bounds (the
    pack's widgets have none)."""
    category = "mtb/batch"
    count: int = Int(1, min=1, max=4096, resource="batch")
    shape: str = Choice(("Box", "Circle", "Diamond", "Tube"), "Circle")
    image_width: int = Int(512, min=1, max=MAX_SIZE, resource="width")
    image_height: int = Int(512, min=1, max=MAX_SIZE, resource="height")
    shape_size: int = Int(100, min=0, max=2 * MAX_SIZE)  # bounded (the pack's isn't): OpenCV's coordinates overflow
    color: str = Text("#ffffff")
    bg_color: str = Text("#000000")
    shade_color: str = Text("#000000")
    thickness: int = Int(5, max=32767)  # OpenCV's largest line thickness (the pack's widget has no bound)
    shadex: float = Float(0.0)
    shadey: float = Float(0.0)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Batch Shape (mtb)",))

    def shape_mask(self):
        import cv2
        import numpy as np
        mask = np.zeros((self.image_height, self.image_width), dtype=np.uint8)
        cx, cy, half = self.image_width // 2, self.image_height // 2, self.shape_size // 2
        if self.shape == "Box":
            cv2.rectangle(mask, (cx - half, cy - half), (cx + half, cy + half), 255, -1)
        elif self.shape == "Circle":
            cv2.circle(mask, (cx, cy), half, 255, -1)
        elif self.shape == "Diamond":
            corners = np.array([[cx, cy - half], [cx + half, cy], [cx, cy + half], [cx - half, cy]])
            cv2.fillPoly(mask, [corners], 255)
        else:
            if self.thickness == 0 or self.thickness < -1:
                raise NodeInputError("thickness", "a ring needs a thickness of 1 or more (or -1: filled)")
            cv2.ellipse(mask, (cx, cy), (half, half), 0, 0, 360, 255, self.thickness)
        return mask == 255

    def run(self):
        import cv2
        import numpy as np
        import torch
        color, background = _hex_rgb(self.color, "color"), _hex_rgb(self.bg_color, "bg_color")
        _hex_rgb(self.shade_color, "shade_color")
        inside = self.shape_mask()
        canvas = np.full((self.image_height, self.image_width, 3), background, dtype=np.uint8)
        canvas[inside] = color
        shading = np.zeros(canvas.shape, dtype=np.float32)
        shading[:, :, 0] = self.shadex * np.linspace(0, 1, self.image_width)
        shading[:, :, 1] = self.shadey * np.linspace(0, 1, self.image_height).reshape(-1, 1)
        shaded = cv2.addWeighted(canvas.astype(np.float32), 1, shading, 1, 0).astype(np.uint8)
        canvas[inside] = shaded[inside]
        image = torch.from_numpy(canvas.astype(np.float32) / 255.0)[None]
        check_interrupted()
        return image.repeat(self.count, 1, 1, 1)


class MtbConcatImages(Node):
    """The connected image batches (image_1, image_2 ...) as one batch, as MTB's Concat Images
    does: on_mismatch Smallest or Largest first resizes (bilinear, torch's interpolate) every
    batch whose images differ from the smallest / largest (by height, then width); Error refuses
    batches of other sizes. reverse changes nothing, as in the pack."""
    category = "mtb/image"
    reverse: bool = Bool(False)
    on_mismatch: str = Choice(("Error", "Smallest", "Largest"), "Smallest")
    image_1: IMAGE = None
    image_2: IMAGE = None
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
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Concat Images (mtb)",), optional=("on_mismatch",))

    @classmethod
    def unknown_input(cls, name):
        return _dynamic_refusal(name, ("image",))

    @classmethod
    def estimate(cls, widgets, inputs):
        sizes = [s for name, s in inputs.items() if name.startswith("image_") and s is not None]
        if not sizes:
            return Estimate(None)
        pick = max if widgets.get("on_mismatch") == "Largest" else min
        target = pick(sizes, key=lambda s: (s.height, s.width))
        return Estimate(Size(sum(s.batch for s in sizes), target.height, target.width))

    def run(self):
        import torch
        import torch.nn.functional as F
        named = [(name, _image(value, name)) for name, value in _dynamic(self, "image")]
        if not named:
            raise NodeInputError("image_1", "not connected: the node needs at least one image batch")
        if self.on_mismatch == "Error":
            for name, images in named[1:]:
                if images.shape != named[0][1].shape:
                    raise NodeInputError(name, f"shape {tuple(images.shape)}; image_1's is "
                                               f"{tuple(named[0][1].shape)} (on_mismatch is Error)")
            return torch.cat([images for _, images in named])
        pick = max if self.on_mismatch == "Largest" else min
        height, width = pick((images.shape[1], images.shape[2]) for _, images in named)
        resized = []
        for name, images in named:
            if images.shape[-1] != named[0][1].shape[-1]:
                raise NodeInputError(name, f"{images.shape[-1]} channels; image_1 has {named[0][1].shape[-1]}")
            if images.shape[1:3] != (height, width):
                images = F.interpolate(images.movedim(-1, 1), size=(height, width), mode="bilinear",
                                       align_corners=False).movedim(1, -1)
            resized.append(images)
        return torch.cat(resized)


# -- numbers and text -----------------------------------------------------------------------------


class MtbStringReplace(Node):
    """`string` with every `old` replaced by `new`, as MTB's String Replace does; with use_regex
    `old` is a regular expression (re.sub, `new` may name groups as \\1), run guarded against
    patterns that backtrack without end. A bad expression is refused naming old (the pack logs
    it and gives the string unchanged)."""
    category = "mtb/string"
    string: STRING
    old: str = Text("")
    new: str = Text("")
    use_regex: bool = Bool(False)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("String Replace (mtb)",), force_input=("string",))

    def run(self):
        if self.use_regex:
            return regex_replace(self.string, self.old, self.new, "old", "new")
        return replaced_in_turn(self.string, [(self.old, self.new)], ["new"])


class MtbMathExpression(Node):
    """The expression's value, as MTB's Math Expression gives it: <x>, <y> and <z> are first
    replaced by the linked inputs' values (numbers), then the text is evaluated — here by
    graphflow's safe evaluator (pysssss's Math Expression grammar: + - * / // ** %, round, min,
    max, sqrt ...; never Python's eval). The pack reads only literals (ast.literal_eval), so every
    expression it runs gives the same here; this also computes arithmetic it refuses. Gives the
    value, and int() of it."""
    category = "mtb/math"
    expression: str = Text("", multiline=True)
    x: ANY = None
    y: ANY = None
    z: ANY = None
    outputs = {"result (float)": FLOAT, "result (int)": INT}
    comfy = ComfyAlias(("Math Expression (mtb)",))

    def run(self):
        text = self.expression
        for name in ("x", "y", "z"):
            given = getattr(self, name)
            if given is None:
                continue
            if isinstance(given, bool) or not isinstance(given, (int, float)):
                raise NodeInputError(name, f"expected a number to put in place of <{name}>")
            text = text.replace(f"<{name}>", repr(given))
        try:
            result = math_expression(text, {})
        except (ValueError, TypeError, NameError, SyntaxError, ZeroDivisionError, OverflowError) as e:
            raise NodeInputError("expression", f"can't evaluate {text!r}: {e}") from None
        if isinstance(result, float) and not math.isfinite(result):
            raise NodeInputError("expression", f"{text!r} is {result}, which has no whole number")
        return result, int(result)


class MtbIntToNumber(Node):
    """The whole number as a NUMBER (WAS Node Suite's number type), as MTB's Int To Number does."""
    category = "mtb/number"
    int: INT
    outputs = {"NUMBER": NUMBER}
    comfy = ComfyAlias(("Int To Number (mtb)",), force_input=("int",))

    def run(self):
        return self.int


class MtbFloatToNumber(Node):
    """The number as a NUMBER (WAS Node Suite's number type), as MTB's Float To Number does."""
    category = "mtb/number"
    float: FLOAT
    outputs = {"NUMBER": NUMBER}
    comfy = ComfyAlias(("Float To Number (mtb)",), force_input=("float",))

    def run(self):
        return self.float


class MtbIntToBool(Node):
    """False for 0, True for any other whole number, as MTB's Int To Bool does."""
    category = "mtb/number"
    int: int = Int(0)
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("Int To Bool (mtb)",))

    def run(self):
        return bool(self.int)


# -- image processing -----------------------------------------------------------------------------


def _bytes(images):
    """The pack's tensor2pil quantizing: 255 × value, clipped to 0..255, cut to whole numbers."""
    import numpy as np
    return np.clip(255.0 * images.detach().cpu().numpy(), 0, 255).astype(np.uint8)


def _from_bytes(array):
    import numpy as np
    import torch
    return torch.from_numpy(np.asarray(array).astype(np.float32) / 255.0)


def _mask(mask, name: str):
    import torch
    if not torch.is_tensor(mask) or mask.ndim not in (2, 3):
        raise NodeInputError(name, "expected a MASK: a [B, H, W] tensor")
    return mask if mask.ndim == 3 else mask[None]


def _pil_colour(text: str, name: str) -> tuple:
    from PIL import ImageColor
    try:
        return ImageColor.getrgb(text)
    except (ValueError, AttributeError):
        raise NodeInputError(name, f"expected a colour (#rrggbb or a CSS colour name), got {text!r}") from None


class MtbImagePremultiply(Node):
    """The image with the mask as its alpha channel (an RGBA image), as MTB's Image Premultiply
    does: the alpha is 1 - mask, or the mask itself with invert (sic: the pack's way round); the
    colours are not multiplied by it. Both are cut to 8 bits as the pack's PIL round trip does. A
    single mask serves every image; else mask i goes with image i."""
    category = "mtb/image"
    image: IMAGE
    mask: MASK
    invert: bool = Bool(False)
    outputs = {"RGBA": IMAGE}
    comfy = ComfyAlias(("Image Premultiply (mtb)",))

    def run(self):
        import numpy as np
        image, mask = _image(self.image, "image"), _mask(self.mask, "mask")
        if mask.shape[1:] != image.shape[1:3]:
            raise NodeInputError("mask", f"{mask.shape[2]}×{mask.shape[1]}; the image is "
                                         f"{image.shape[2]}×{image.shape[1]}")
        if mask.shape[0] not in (1,) and mask.shape[0] < image.shape[0]:
            raise NodeInputError("mask", f"{mask.shape[0]} masks for {image.shape[0]} images")
        alpha = _bytes(mask if self.invert else 1.0 - mask)
        alpha = np.repeat(alpha, image.shape[0], 0) if mask.shape[0] == 1 else alpha[:image.shape[0]]
        return _from_bytes(np.concatenate([_bytes(image[..., :3]), alpha[..., None]], axis=-1))


class MtbImageTileOffset(Node):
    """The image cut into tilesX × tilesY tiles (of width // tilesX by height // tilesY), each
    moved one tile right and down, wrapping around, as MTB's Image Tile Offset does to check a
    texture is seamless; the pixels past the last whole tile are left black (all of them where there
    are more tiles than pixels), as in the pack."""
    category = "mtb/generate"
    image: IMAGE
    tilesX: int = Int(2, min=1)
    tilesY: int = Int(2, min=1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Tile Offset (mtb)",))

    def run(self):
        import torch
        image = _image(self.image, "image")
        tile_h, tile_w = image.shape[1] // self.tilesY, image.shape[2] // self.tilesX
        out = torch.zeros_like(image)
        if tile_h == 0 or tile_w == 0:  # more tiles than pixels: every tile is empty, the image black
            return out
        # every tile one on, wrapping, is the whole tiles' region rolled by a tile each way
        whole_h, whole_w = tile_h * self.tilesY, tile_w * self.tilesX
        out[:, :whole_h, :whole_w] = torch.roll(image[:, :whole_h, :whole_w], shifts=(tile_h, tile_w), dims=(1, 2))
        return out


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float):
    """The pack's sharpening kernel: exp(-(x² / 2σx² + y² / 2σy²)) over x, y evenly from -1 to 1
    (size of each; x down the rows), summing to 1."""
    import torch
    x, y = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    kernel = torch.exp(-(x * x / (2 * sigma_x * sigma_x) + y * y / (2 * sigma_y * sigma_y)))
    return kernel / kernel.sum()


class MtbSharpen(Node):
    """The image sharpened, as MTB's Sharpen does: a (2 × radius + 1)² Gaussian kernel (see
    gaussian_kernel) times -10 × alpha, its centre raised so the kernel sums to 1, run over each
    channel of the image padded by reflection, clamped to 0..1."""
    category = "mtb/image processing"
    image: IMAGE
    sharpen_radius: int = Int(1, min=1, max=31)
    sigma_x: float = Float(1.0, min=0.1, max=10.0, step=0.1)
    sigma_y: float = Float(1.0, min=0.1, max=10.0, step=0.1)
    alpha: float = Float(1.0, min=0.0, max=5.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Sharpen (mtb)",))

    def run(self):
        import torch
        import torch.nn.functional as F
        image = _image(self.image, "image")
        radius, channels = self.sharpen_radius, image.shape[3]
        if min(image.shape[1:3]) <= radius:
            raise NodeInputError("sharpen_radius", f"{radius} needs an image over {radius} pixels on each side")
        size = 2 * radius + 1
        kernel = gaussian_kernel(size, self.sigma_x, self.sigma_y) * -(self.alpha * 10)
        kernel[radius, radius] += 1.0 - kernel.sum()
        padded = F.pad(image.permute(0, 3, 1, 2), (radius,) * 4, "reflect")
        sharpened = F.conv2d(padded, kernel.to(image.dtype).repeat(channels, 1, 1)[:, None], padding=radius,
                             groups=channels)
        # as the pack: the convolution's own zero padding only makes the border that is cut off here
        sharpened = sharpened[:, :, radius:-radius, radius:-radius]
        return torch.clamp(sharpened.permute(0, 2, 3, 1), 0, 1)


class MtbBlur(Node):
    """The image blurred by scikit-image's gaussian filter, as MTB's Blur does: sigmaX along the
    rows' direction (the image's height), sigmaY along its width, none across channels; sigmasX /
    sigmasY (a value per image, each 0 to 200 as the widgets) take their place where linked
    (sigmasY defaults to sigmasX)."""
    category = "mtb/image processing"
    image: IMAGE
    sigmaX: float = Float(3.0, min=0.0, max=200.0, step=0.01)
    sigmaY: float = Float(3.0, min=0.0, max=200.0, step=0.01)
    sigmasX: FLOATS = None
    sigmasY: FLOATS = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Blur (mtb)",))

    def run(self):
        import torch
        from skimage.filters import gaussian
        image = _image(self.image, "image")
        count = image.shape[0]
        sigmas_x = [self.sigmaX] * count
        sigmas_y = [self.sigmaY] * count
        if self.sigmasX is not None:
            sigmas_x = _floats(self.sigmasX, "sigmasX")
            sigmas_y = _floats(self.sigmasY, "sigmasY") if self.sigmasY is not None else sigmas_x
            for name, values in (("sigmasX", sigmas_x), ("sigmasY", sigmas_y)):
                if len(values) < count:
                    raise NodeInputError(name, f"{len(values)} values for {count} images")
                # as the sigmaX / sigmaY widgets: past 200 the filter's kernel outgrows any memory
                if bad := [v for v in values[:count] if not 0.0 <= v <= 200.0]:
                    raise NodeInputError(name, f"{bad[0]} is not a sigma from 0 to 200")
        pixels = image.cpu().numpy() * 255
        blurred = []
        for i in range(count):
            check_interrupted()
            blurred.append(torch.from_numpy(gaussian(pixels[i], sigma=(sigmas_x[i], sigmas_y[i], 0), channel_axis=2)
                                            .astype("float32") / 255.0))
        return torch.stack(blurred)


class MtbMaskToImage(Node):
    """The mask as an RGB image: `color` where the mask is 1, `background` where it is 0, mixed
    by PIL's composite between (the mask cut to 8 bits), as MTB's Mask To Image does; invert
    uses 1 - mask. Colours are #rrggbb or CSS names, as PIL reads them."""
    category = "mtb/generate"
    mask: MASK
    color: str = Text("#ffffff")
    background: str = Text("#000000")
    invert: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Mask To Image (mtb)",), optional=("invert",))

    def run(self):
        import torch
        from PIL import Image
        mask = _mask(self.mask, "mask")
        colour, background = _pil_colour(self.color, "color"), _pil_colour(self.background, "background")
        images = []
        for mask_bytes in _bytes(1.0 - mask if self.invert else mask):
            picture = Image.fromarray(mask_bytes, mode="L")
            images.append(_from_bytes(Image.composite(Image.new("RGBA", picture.size, colour),
                                                      Image.new("RGBA", picture.size, background),
                                                      picture).convert("RGB")))
        return torch.stack(images)


class MtbImageCompare(Node):
    """imageA and imageB compared image by image, as MTB's Image Compare does: checkerboard
    (scikit-image's compare_images, per channel), diff (|A - B|) or blend ((A + B) / 2); an RGB
    image meeting an RGBA one gets an opaque alpha. imageB needs as many images as imageA, of
    the same size."""
    category = "mtb/image"
    imageA: IMAGE
    imageB: IMAGE
    mode: str = Choice(("checkerboard", "diff", "blend"), "checkerboard")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Compare (mtb)",))

    def run(self):
        import torch
        from skimage.util import compare_images
        a, b = _image(self.imageA, "imageA"), _image(self.imageB, "imageB")
        if b.shape[0] < a.shape[0] or b.shape[1:3] != a.shape[1:3]:
            raise NodeInputError("imageB", f"{tuple(b.shape[:3])} (batch, height, width); imageA is "
                                           f"{tuple(a.shape[:3])}")
        b = b[:a.shape[0]]
        if a.shape[3] == 3 and b.shape[3] == 4:
            a = torch.cat([a, torch.ones_like(a[..., :1])], -1)
        elif a.shape[3] == 4 and b.shape[3] == 3:
            b = torch.cat([b, torch.ones_like(b[..., :1])], -1)
        if a.shape[3] != b.shape[3]:
            raise NodeInputError("imageB", f"{b.shape[3]} channels; imageA has {a.shape[3]}")
        if self.mode == "diff":
            return torch.abs(a - b)
        if self.mode == "blend":
            return 0.5 * (a + b)
        a_np, b_np = a.cpu().numpy(), b.cpu().numpy()
        return torch.stack([torch.stack([torch.from_numpy(compare_images(a_np[i, ..., c], b_np[i, ..., c],
                                                                         method="checkerboard"))
                                         for c in range(a.shape[3])], dim=2) for i in range(a.shape[0])]).float()


class MtbColorCorrect(Node):
    """The image colour-corrected, as MTB's Color Correct does, in its order: gamma (value ^
    (1 / gamma)); contrast (image × contrast + (1 - contrast) × the mean over the whole batch of
    0.33 R + 0.71 G + 0.06 B, clamped to 0..1); exposure (× 2^exposure); offset (+ offset); then
    hue, saturation and value through PIL's HSV (8 bits: hue + hue × 255 wrapping at 256,
    saturation and value multiplied and cut to whole numbers); clamp to 0..1 if asked. With a
    mask, only where the mask is above 0 is changed. RGB images only (PIL's HSV)."""
    category = "mtb/image processing"
    image: IMAGE
    clamp: bool = Bool(True)
    gamma: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    contrast: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    exposure: float = Float(0.0, min=-5.0, max=5.0, step=0.01)
    offset: float = Float(0.0, min=-5.0, max=5.0, step=0.01)
    hue: float = Float(0.0, min=-0.5, max=0.5, step=0.01)
    saturation: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    value: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    mask: MASK = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Color Correct (mtb)",))

    def run(self):
        import torch
        from PIL import Image
        image = _image(self.image, "image")
        if image.shape[3] != 3:
            raise NodeInputError("image", f"{image.shape[3]} channels; Color Correct takes RGB images")
        if self.gamma == 0:
            raise NodeInputError("gamma", "0 has no inverse (the pack raises 1 / gamma)")
        adjusted = image.pow(1.0 / self.gamma)
        r, g, b = adjusted.unbind(-1)
        luminance = torch.mean(0.33 * r + 0.71 * g + 0.06 * b)
        adjusted = torch.clamp(adjusted * self.contrast + (1.0 - self.contrast) * luminance, 0.0, 1.0)
        adjusted = adjusted * 2.0 ** self.exposure + self.offset
        pictures = []
        for pixels in _bytes(adjusted):
            check_interrupted()
            h, s, v = Image.fromarray(pixels, mode="RGB").convert("HSV").split()
            h = h.point(lambda x: (x + self.hue * 255) % 256)
            s = s.point(lambda x: int(x * self.saturation))
            v = v.point(lambda x: int(x * self.value))
            pictures.append(_from_bytes(Image.merge("HSV", (h, s, v)).convert("RGB")))
        adjusted = torch.stack(pictures)
        if self.clamp:
            adjusted = torch.clamp(adjusted, 0.0, 1.0)
        if self.mask is None:
            return adjusted
        mask = _mask(self.mask, "mask")
        if mask.shape[1:] != image.shape[1:3] or mask.shape[0] not in (1, image.shape[0]):
            raise NodeInputError("mask", f"{tuple(mask.shape)}; expected 1 or {image.shape[0]} masks of "
                                         f"{image.shape[2]}×{image.shape[1]}")
        return torch.where(mask[..., None].expand_as(image) > 0, adjusted, image)


# -- image utilities ------------------------------------------------------------------------------


def _duplicated(images, count: int):
    """The batch made `count` long as the pack's Stack Images does: repeated whole, then its first
    images again for the rest."""
    import torch
    whole = images.repeat(count // images.shape[0], 1, 1, 1)
    return torch.cat([whole, images[:count % images.shape[0]]]) if count % images.shape[0] else whole


def _matched_sides(sides: list[tuple[int, int]], vertical: bool, match_method: str) -> list[tuple[int, int]]:
    """The (height, width) each image of Stack Images has once matched: unchanged for error; for
    smallest / largest the height (side by side) or width (vertical) made the smallest / largest
    of them, the other side scaled by as much and cut to a whole number."""
    if match_method not in ("smallest", "largest"):
        return list(sides)
    side = 1 if vertical else 0
    target = (min if match_method == "smallest" else max)(s[side] for s in sides)
    matched = []
    for height, width in sides:
        if (height, width)[side] != target:
            scale = target / (height, width)[side]
            height, width = (int(height * scale), target) if vertical else (target, int(width * scale))
        matched.append((height, width))
    return matched


class MtbStackImages(Node):
    """The connected images (image_1, image_2 ...) side by side, or one under the other with
    vertical, as MTB's Stack Images does: each made RGBA (an opaque alpha for RGB), each batch
    made as long as the longest by repeating it; match_method smallest / largest first scales
    each (bilinear, keeping its aspect, the other side cut to a whole number) to the smallest /
    largest height (side by side) or width (vertical), refused where that makes a side under 1 or
    over the size limit; error refuses images whose side differs."""
    category = "mtb/image utils"
    vertical: bool = Bool(False)
    match_method: str = Choice(("error", "smallest", "largest"), "error")
    image_1: IMAGE = None
    image_2: IMAGE = None
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
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Stack Images (mtb)",), optional=("match_method",))

    @classmethod
    def unknown_input(cls, name):
        return _dynamic_refusal(name, ("image",))

    @classmethod
    def estimate(cls, widgets, inputs):  # the sides after matching, added up, as run makes them
        sizes = [s for name, s in inputs.items() if name.startswith("image_") and s is not None]
        if not sizes:
            return Estimate(None)
        vertical = bool(widgets.get("vertical"))
        matched = _matched_sides([(s.height, s.width) for s in sizes], vertical, widgets.get("match_method", "error"))
        batch = max(s.batch for s in sizes)
        if vertical:
            return Estimate(Size(batch, sum(h for h, _ in matched), max(w for _, w in matched)))
        return Estimate(Size(batch, max(h for h, _ in matched), sum(w for _, w in matched)))

    def run(self):
        import torch
        import torch.nn.functional as F
        named = [(name, _image(value, name)) for name, value in _dynamic(self, "image")]
        if not named:
            raise NodeInputError("image_1", "not connected: the node needs at least one image")
        rgba = []
        for name, images in named:
            if images.shape[3] not in (3, 4):
                raise NodeInputError(name, f"{images.shape[3]} channels; expected RGB or RGBA")
            rgba.append(images if images.shape[3] == 4 else torch.cat([images, torch.ones_like(images[..., :1])], -1))
        longest = max(images.shape[0] for images in rgba)
        rgba = [_duplicated(images, longest) for images in rgba]
        side = 2 if self.vertical else 1  # the side that must match: width when stacking down
        if self.match_method == "error":
            for (name, _), images in zip(named, rgba):
                if images.shape[side] != rgba[0].shape[side]:
                    raise NodeInputError(name, f"{'width' if self.vertical else 'height'} {images.shape[side]}; "
                                               f"image_1's is {rgba[0].shape[side]} (match_method is error)")
        else:
            matched = _matched_sides([tuple(images.shape[1:3]) for images in rgba], self.vertical, self.match_method)
            for (name, _), (height, width) in zip(named, matched):
                if min(height, width) < 1 or max(height, width) > MAX_SIZE:
                    raise NodeInputError("match_method", f"{self.match_method} scales {name} to {width}×{height}; "
                                                         f"sides must be 1 to {MAX_SIZE}")
            resized = []
            for images, (height, width) in zip(rgba, matched):
                if (height, width) != tuple(images.shape[1:3]):
                    images = F.interpolate(images.permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                                           align_corners=False).permute(0, 2, 3, 1)
                resized.append(images)
            rgba = resized
        return torch.cat(rgba, dim=1 if self.vertical else 2)


class MtbPickFromBatch(Node):
    """The first (start) or last (end) `count` images of the batch, and of the mask if one is
    linked, as MTB's Pick From Batch does (count past the batch takes it all; as in the pack,
    0 from the end takes the whole batch). Without a mask the MASK output is empty (None), as
    the pack gives it."""
    category = "mtb/image utils"
    image: IMAGE
    from_direction: str = Choice(("end", "start"), "start")
    count: int = Int(1, min=0)
    mask: MASK = None
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("Pick From Batch (mtb)",))

    def run(self):
        image = _image(self.image, "image")
        count = min(self.count, image.shape[0])
        mask = None if self.mask is None else _mask(self.mask, "mask")
        if self.from_direction == "end":
            return image[-count:], None if mask is None else mask[-count:]
        return image[:count], None if mask is None else mask[:count]


RESIZE_FACTOR_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")


class MtbImageResizeFactor(Node):
    """The image scaled by `factor` with torch's interpolate (sides cut to whole numbers; corners
    aligned for the linear modes), then doubled again with supersample, as MTB's Image Resize
    Factor does. Its MASK output stays empty (None) as in the pack, which gives only the image;
    a linked mask is refused, as the pack refuses every MASK there (it needs the image's four
    dimensions). linear and trilinear are refused too: torch runs them on 3- and 5-dimensional
    tensors only, so the pack fails with them. (The pack also fails with nearest, area and
    nearest-exact, its default included, as it passes align_corners=False, which torch allows for
    the interpolating modes only; here those run as torch's plain modes.)"""
    category = "mtb/image"
    image: IMAGE
    factor: float = Float(2.0, min=0.01, max=16.0, step=0.01)
    supersample: bool = Bool(True)
    resampling: str = Choice(RESIZE_FACTOR_MODES, "nearest")
    mask: MASK = None
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("Image Resize Factor (mtb)",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, factor = inputs.get("image"), widgets.get("factor")
        if size is None or not isinstance(factor, (int, float)):
            return Estimate(size)
        grow = 2 if widgets.get("supersample", True) else 1
        return Estimate(Size(size.batch, int(size.height * factor) * grow, int(size.width * factor) * grow))

    def run(self):
        import torch.nn.functional as F
        image = _image(self.image, "image")
        if self.mask is not None:
            raise NodeInputError("mask", "the pack multiplies the image by a mask of the image's four dimensions "
                                         "only, which a MASK never has: leave it unlinked")
        if self.resampling in ("linear", "trilinear"):
            raise NodeInputError("resampling", f"{self.resampling} works on 3- / 5-dimensional tensors only (the pack "
                                               "fails on an image): choose bilinear")
        height, width = int(image.shape[1] * self.factor), int(image.shape[2] * self.factor)
        if min(height, width) < 1 or max(height, width) * (2 if self.supersample else 1) > MAX_SIZE:
            raise NodeInputError("factor", f"makes {width}×{height} images; sides must be 1 to {MAX_SIZE}")
        corners = {"align_corners": True} if self.resampling in ("bilinear", "bicubic") else {}
        resized = F.interpolate(image.movedim(-1, 1), size=(height, width), mode=self.resampling, **corners)
        if self.supersample:
            resized = F.interpolate(resized, scale_factor=2, mode=self.resampling, **corners)
        return resized.movedim(1, -1), None


TRANSITIONS = ("none", "crossfade", "slide_left", "slide_right", "slide_up", "slide_down", "wipe_left", "wipe_right",
               "wipe_up", "wipe_down", "band_wipe_h", "band_wipe_v")
BANDS = 10  # the pack's band wipes' bands


def transition_frame(first, second, transition: str, progress: float):
    """One frame of the pack's transition from `first` to `second` ([1, H, W, C] each) at progress
    0..1: none cuts at half way; crossfade mixes; a slide rolls `second` by the progress (of the width
    or height) and mixes; a wipe shows `second` over a growing part; a band wipe over each tenth's
    growing part."""
    import torch
    if transition == "none":
        return first if progress < 0.5 else second
    height, width = first.shape[1:3]
    if transition == "crossfade" or transition.startswith("slide_"):
        if transition.startswith("slide_"):
            along_width = transition in ("slide_left", "slide_right")
            shift = int((width if along_width else height) * progress)
            shift = -shift if transition in ("slide_left", "slide_up") else shift
            second = torch.roll(second, shifts=shift, dims=2 if along_width else 1)
        return first * (1 - progress) + second * progress
    mask = torch.zeros_like(first)
    if transition == "wipe_left":
        mask[:, :, :int(width * progress)] = 1
    elif transition == "wipe_right":
        mask[:, :, int(width * (1 - progress)):] = 1
    elif transition == "wipe_up":
        mask[:, :int(height * progress)] = 1
    elif transition == "wipe_down":
        mask[:, int(height * (1 - progress)):] = 1
    else:
        side = width if transition == "band_wipe_h" else height
        band = side / BANDS
        for i in range(BANDS):
            start = int(i * band)
            end = int(min(start + int(side * progress - i * band), (i + 1) * band))
            if end > start:
                if transition == "band_wipe_h":
                    mask[:, :, start:end] = 1
                else:
                    mask[:, start:end] = 1
    return first * (1 - mask) + second * mask


class MtbBatchSequencePlus(_BatchesInputs):
    """The connected batches one after another with a transition between each two, as MTB's Batch
    Sequence Plus does: overlap_frames // 2 frames of each side (as many as it has) are replaced
    by as many transition frames (see transition_frame), progress going evenly from 0 to 1; the
    first batch gives up its last ceil(overlap_frames / 2) frames and each middle one as many at
    its end. With transition none or no overlap the batches are simply joined; where the two sides
    give fewer than two frames (overlap 1) the pack's own join applies: the whole earlier batch
    again. The images must be the same size."""
    category = "mtb/batch"
    transition: str = Choice(TRANSITIONS, "none")
    overlap_frames: int = Int(0, min=0, max=120)
    reverse: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Batch Sequence Plus (mtb)",))

    @classmethod
    def estimate(cls, widgets, inputs):  # at most the batches joined (more only for overlap 1: see above)
        return MtbBatchSequence.estimate(widgets, inputs)

    def run(self):
        import torch
        named = self.batches()
        named = named[::-1] if self.reverse else named
        _same_image_size(named, "the images before are")
        batches = [images for _, images in named]
        overlap = self.overlap_frames
        if overlap == 0 or self.transition == "none":
            return torch.cat(batches)
        frames = list(batches[0][:-overlap // 2])  # the pack's -overlap // 2: minus ceil(overlap / 2)
        for i in range(1, len(batches)):
            check_interrupted()
            before, after = batches[i - 1], batches[i]
            before_count, after_count = min(overlap // 2, len(before)), min(overlap // 2, len(after))
            total = before_count + after_count
            if total < 2:
                frames += list(before[-before_count:]) + list(after[:after_count])
                continue
            for t in range(total):
                at = len(before) - before_count + min(t, before_count - 1)
                to = max(0, t - before_count)
                frames.append(transition_frame(before[at:at + 1], after[to:to + 1], self.transition,
                                               t / (total - 1))[0])
            frames += list(after[after_count:-overlap // 2] if i < len(batches) - 1 else after[after_count:])
        return torch.stack(frames)
