"""comfy_mtb's (MTB Nodes, melMass) model-free backend nodes, under the pack's class names ("<Label>
(mtb)", the label being the class name without MTB_ split at its capitals, as the pack's
__init__.py builds them), inputs and outputs. Read from melMass/comfy_mtb: nodes/batch.py
@00173fa3, nodes/graph_utils.py @05fe61e0, utils.py's easings, web/mtb_widgets.js's dynamic inputs
(prefix_1, prefix_2 ... added as links are made).

Held here: Batch Float, Batch Float Fill, Batch Float Assemble, Batch Float Normalize, Batch Float
Math, Batch Float Fit, Fit Number, Batch Make, Batch Merge, Batch Sequence, Batch Time Wrap, Batch
Shape, Concat Images, String Replace, Math Expression.

Left out: the nodes that need models (FILM / RIFE interpolation, face swap and restore, DeepBump,
ViTMatte, upscalers), a service (Unsplash, Get Batch From History, URL loads), and, for this round,
the rest of the pack's model-free nodes (Batch Shake, Batch Transform, Batch Sequence Plus, Plot
Batch Float, the image, mask, animation and I/O nodes): a save holding one of them is reported as
needing comfy_mtb (graphflow.comfy_format.CUSTOM_PACKS).

The pack's dynamic inputs are built here up to DYNAMIC_INPUTS of each kind (floats_1 ..., batches_1
..., image_1 ...); one past that is refused naming it."""

from __future__ import annotations

import math

from graphflow.api import ANY, FLOAT, IMAGE, INT, MASK, STRING, Bool, Choice, ComfyAlias, Estimate, Float, Int, \
    Node, NodeInputError, Size, Text, check_interrupted, progress, repeated, socket_type
from nodes.image import MAX_SIZE, _image
from nodes.pack_nodes import MAX_LIST_ITEMS
from nodes.pack_nodes_pysssss import math_expression, regex_replace
from nodes.strings import replaced_in_turn

COMFY_PACK = "comfy_mtb"  # the custom node pack this module's ComfyUI classes come from
FLOATS = socket_type("FLOATS", "#26a69a", "A list of real numbers")  # the type nodes/hooks.py declares
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
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) for v in value):
        raise NodeInputError(name, "expected FLOATS: a list of numbers")
    return list(value)


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
    8 bits as the pack does). shade_color changes nothing, as in the pack. Every image is the same."""
    category = "mtb/batch"
    count: int = Int(1, min=1, max=4096, resource="batch")
    shape: str = Choice(("Box", "Circle", "Diamond", "Tube"), "Circle")
    image_width: int = Int(512, min=1, max=MAX_SIZE, resource="width")
    image_height: int = Int(512, min=1, max=MAX_SIZE, resource="height")
    shape_size: int = Int(100, min=0)
    color: str = Text("#ffffff")
    bg_color: str = Text("#000000")
    shade_color: str = Text("#000000")
    thickness: int = Int(5)
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
