"""ComfyUI-Easy-Use's small value, logic and prompt nodes, under the pack's class names, inputs
and outputs (read from yolain/ComfyUI-Easy-Use: py/nodes/logic.py at commit
05b91821964e8dd83c8df198e1ab07de99203582, py/nodes/prompt.py at 070001b36be2bbdfcf766b6a2d6f14c36cb62906,
py/nodes/seed.py at 3515268de557bb165cbfa7ee830710a45fabe8ef and the image-size nodes of
py/nodes/image.py): easy seed, easy int / float / string / boolean, easy showAnything, easy
clearCacheAll / clearCacheKey / cleanGpuUsed, easy imageSize / imageSizeBySide /
imageSizeByLongerSide, easy compare, easy ifElse, easy isNone, easy textSwitch / imageSwitch,
easy anythingIndexSwitch / textIndexSwitch / imageIndexSwitch, easy promptConcat /
promptReplace / promptLine, easy positive / negative, easy mathInt / mathFloat / mathString;
from py/nodes/image.py at 18830962a44112b8084cb6d5c29077426cd8783e: easy imageInsetCrop,
imageScaleDown / imageScaleDownBy / imageScaleDownToSize, imageRatio, imagePixelPerfect,
imageConcat, imagesSplitImage, imageCount, imageSplitGrid, joinImageBatch, imageSave,
loadImageBase64, imageListToImageBatch / imageBatchToImageList; from the logic.py above: easy
showTensorShape, batchAnything, convertAnything, outputToList, lengthAnything, indexAnything. The
pack's pipe system (loaders, pipe nodes, preSampling, kSampler) is in
nodes/pack_nodes_easyuse_pipe.py, its further samplers in nodes/pack_nodes_easyuse_samplers.py.

Left out: the loops (whileLoop*, forLoop*: ComfyUI graph expansion, which graphflow's executor
does not do), easy ab / blocker / anythingInversedSwitch (ComfyUI's execution blocker), the
wildcard, style and portrait prompt nodes (the pack's data files and wildcard folders), the
model-backed nodes (imageRemBg, imageInterrogator, humanSegmentation: weights the pack downloads),
imageToBase64, imageConcat's match_image_size (an error when on), imageChooser (waits for a pick
in the editor), the tile / split-list / mask-crop image nodes, and, of the task's list:
stylesSelector (the styles picked live in the editor node's properties, which an API prompt
does not carry and graphflow's nodes do not read), ipadapterApply (its own presets,
file patterns and FaceID / InsightFace parts do not map cleanly onto nodes/ip_adapter.py) and
preSamplingLayerDiffusion (LayerDiffuse's weights)."""

from __future__ import annotations

import json
import operator
import re
import sys

from graphflow.api import ANY, BOOLEAN, FLOAT, IMAGE, INT, MASK, STRING, Bool, Choice, ComfyAlias, Estimate, Float, \
    Int, ListOf, Node, NodeInputError, Size, Text, show
from nodes.image import SaveImage, preview
from nodes.pack_nodes import INT_LIMIT, POWER_LIMIT, _core
from nodes.strings import _guarded, fits, replaced_in_turn

COMFY_PACK = "ComfyUI-Easy-Use"  # the custom node pack this module's ComfyUI classes come from

SEED_MAX = 1125899906842624  # the pack's MAX_SEED_NUM (2**50)
LOGIC = "EasyUse/Logic"
FLOW_COUNT = 10  # the pack's MAX_FLOW_NUM: index switches have inputs 0 to 9


# -- values -------------------------------------------------------------------------------------


class EasySeed(Node):
    """A seed to link into samplers, as Easy-Use's easy seed gives it (the editor's
    control_after_generate follows the widget and changes it between runs)."""
    category = "EasyUse/Seed"
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"seed": INT}
    comfy = ComfyAlias(("easy seed",))

    def run(self):
        return self.seed


class EasyInt(Node):
    """A whole number, as Easy-Use's easy int gives it."""
    category = "EasyUse/Logic/Type"
    value: int = Int(0, min=-999999, max=999999)
    outputs = {"int": INT}
    comfy = ComfyAlias(("easy int",))

    def run(self):
        return self.value


class EasyFloat(Node):
    """A number, as Easy-Use's easy float gives it."""
    category = "EasyUse/Logic/Type"
    value: float = Float(0.0, min=-999999, max=999999, step=0.01)
    outputs = {"float": FLOAT}
    comfy = ComfyAlias(("easy float",))

    def run(self):
        return self.value


class EasyString(Node):
    """A line of text, as Easy-Use's easy string gives it."""
    category = "EasyUse/Logic/Type"
    value: str = Text("")
    outputs = {"string": STRING}
    comfy = ComfyAlias(("easy string",))

    def run(self):
        return self.value


class EasyBoolean(Node):
    """True or false, as Easy-Use's easy boolean gives it."""
    category = "EasyUse/Logic/Type"
    value: bool = Bool(False)
    outputs = {"boolean": BOOLEAN}
    comfy = ComfyAlias(("easy boolean",))

    def run(self):
        return self.value


def shown_values(items: list) -> list:
    """Easy-Use's Show Any texts of the values it was given: text as it is, a list taking the
    place of everything before it (as the pack does), anything else as JSON, or as Python
    prints it when it is no JSON."""
    values = []
    for item in items:
        if type(item) is str:
            values.append(item)
        elif type(item) is list:
            values = item
        else:
            try:
                values.append(json.dumps(item))
            except (TypeError, ValueError):
                try:
                    values.append(str(item))
                except ValueError as e:  # a whole number past Python's int-to-text digit limit
                    values.append(f"<{type(item).__name__} too long to show: {e}>")
    return values


class EasyShowAnything(Node):
    """Show any value as text and pass the shown text on, as Easy-Use's easy showAnything does:
    text as it is, other values as JSON (or as Python prints them). One value gives its text;
    several (a list input) give the list of texts."""
    category = LOGIC
    output_node = True
    input_is_list = True
    anything: ANY = None
    outputs = {"output": ANY}
    comfy = ComfyAlias(("easy showAnything", "easy showAnythingLazy"), optional=("anything",))

    def run(self):
        values = shown_values(self.anything or [])
        show(text=[str(v) for v in values])
        return values[0] if len(values) == 1 else values


class EasyClearCacheAll(Node):
    """Pass `anything` on, as Easy-Use's easy clearCacheAll does after emptying the pack's own
    loader cache; graphflow's model cache is its own and is left alone."""
    category = LOGIC
    output_node = True
    anything: ANY
    outputs = {"output": ANY}
    comfy = ComfyAlias(("easy clearCacheAll",))

    def run(self):
        return self.anything


class EasyClearCacheKey(Node):
    """Pass `anything` on, as Easy-Use's easy clearCacheKey does after removing cache_key from
    the pack's own loader cache (which graphflow does not have)."""
    category = LOGIC
    output_node = True
    anything: ANY
    cache_key: str = Text("*")
    outputs = {"output": ANY}
    comfy = ComfyAlias(("easy clearCacheKey",))

    def run(self):
        return self.anything


class EasyCleanGpuUsed(Node):
    """Pass `anything` on, as Easy-Use's easy cleanGpuUsed does after unloading models to free
    GPU memory; graphflow manages its own model memory, so here it only passes the value on."""
    category = LOGIC
    output_node = True
    anything: ANY
    outputs = {"output": ANY}
    comfy = ComfyAlias(("easy cleanGpuUsed",))

    def run(self):
        return self.anything


# -- image size ---------------------------------------------------------------------------------


class EasyImageSize(Node):
    """An image batch's width and height, as Easy-Use's easy imageSize gives and shows them."""
    category = "EasyUse/Image"
    output_node = True
    image: IMAGE
    outputs = {"width_int": INT, "height_int": INT}
    comfy = ComfyAlias(("easy imageSize",))

    def run(self):
        height, width = self.image.shape[1], self.image.shape[2]
        show(text=[f"Width: {width} , Height: {height}"])
        return width, height


class EasyImageSizeBySide(Node):
    """An image batch's longest or shortest side, as Easy-Use's easy imageSizeBySide gives and
    shows it."""
    category = "EasyUse/Image"
    output_node = True
    image: IMAGE
    side: str = Choice(("Longest", "Shortest"), "Longest")
    outputs = {"resolution": INT}
    comfy = ComfyAlias(("easy imageSizeBySide",))

    def run(self):
        height, width = self.image.shape[1], self.image.shape[2]
        side = max(width, height) if self.side == "Longest" else min(width, height)
        show(text=[str(side)])
        return side


class EasyImageSizeByLongerSide(Node):
    """An image batch's longer side, as Easy-Use's easy imageSizeByLongerSide gives and shows it."""
    category = "EasyUse/Image"
    output_node = True
    image: IMAGE
    outputs = {"resolution": INT}
    comfy = ComfyAlias(("easy imageSizeByLongerSide",))

    def run(self):
        side = max(self.image.shape[1], self.image.shape[2])
        show(text=[str(side)])
        return side


# -- logic --------------------------------------------------------------------------------------

COMPARISONS = {"a == b": operator.eq, "a != b": operator.ne, "a < b": operator.lt, "a > b": operator.gt,
               "a <= b": operator.le, "a >= b": operator.ge}


class EasyCompare(Node):
    """Compare a with b, as Easy-Use's easy compare does (Python's comparison of the two values:
    numbers by value, texts alphabetically). Values that cannot be ordered are an error."""
    category = "EasyUse/Logic/Math"
    a: ANY
    b: ANY
    comparison: str = Choice(tuple(COMPARISONS), "a == b")
    outputs = {"boolean": BOOLEAN}
    comfy = ComfyAlias(("easy compare",))

    def run(self):
        try:
            return bool(COMPARISONS[self.comparison](self.a, self.b))
        except (TypeError, RuntimeError) as e:
            raise NodeInputError("b", f"cannot be compared with a ({type(self.a).__name__} "
                                      f"{self.comparison} {type(self.b).__name__}): {e}") from None


class EasyIfElse(Node):
    """on_true when boolean is true, else on_false, as Easy-Use's easy ifElse picks. The pack
    runs only the chosen branch (ComfyUI's lazy inputs); graphflow runs both when both are
    connected, and the unchosen one may be left unconnected."""
    category = LOGIC
    boolean: bool = Bool(False)
    on_true: ANY = None
    on_false: ANY = None
    outputs = {"*": ANY}
    comfy = ComfyAlias(("easy ifElse",), optional=("on_true", "on_false"))

    def run(self):
        name = "on_true" if self.boolean else "on_false"
        if getattr(self, name) is None:
            raise NodeInputError(name, f"not connected, but boolean is {self.boolean}")
        return getattr(self, name)


class EasyIsNone(Node):
    """Whether `any` is None (an upstream node gave nothing), as Easy-Use's easy isNone tells."""
    category = LOGIC
    any: ANY
    outputs = {"boolean": BOOLEAN}
    comfy = ComfyAlias(("easy isNone",))

    def run(self):
        return self.any is None


class EasyTextSwitch(Node):
    """text1 when input is 1, else text2, as Easy-Use's easy textSwitch picks; the chosen one
    must be connected."""
    category = "EasyUse/Logic/Switch"
    input: int = Int(1, min=1, max=2)
    text1: STRING = None
    text2: STRING = None
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("easy textSwitch",), optional=("text1", "text2"))

    def run(self):
        return _chosen(self, "text1" if self.input == 1 else "text2", f"input is {self.input}")


class EasyImageSwitch(Node):
    """image_a when boolean is true, else image_b, as Easy-Use's easy imageSwitch picks."""
    category = "EasyUse/Logic/Switch"
    image_a: IMAGE
    image_b: IMAGE
    boolean: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("easy imageSwitch",))

    def run(self):
        return self.image_a if self.boolean else self.image_b


def _chosen(node, name: str, why: str):
    """The value of the input a switch chose, which must be connected."""
    value = getattr(node, name)
    if value is None:
        raise NodeInputError(name, f"not connected, but {why}")
    return value


class EasyAnythingIndexSwitch(Node):
    """value<index> (index 0 to 9), as Easy-Use's easy anythingIndexSwitch picks; the chosen
    input must be connected (the pack's editor shows inputs as they are linked)."""
    category = "EasyUse/Logic/Index Switch"
    index: int = Int(0, min=0, max=FLOW_COUNT - 1)
    value0: ANY = None
    value1: ANY = None
    value2: ANY = None
    value3: ANY = None
    value4: ANY = None
    value5: ANY = None
    value6: ANY = None
    value7: ANY = None
    value8: ANY = None
    value9: ANY = None
    outputs = {"value": ANY}
    comfy = ComfyAlias(("easy anythingIndexSwitch",), optional=tuple(f"value{i}" for i in range(FLOW_COUNT)))

    def run(self):
        return _chosen(self, f"value{self.index}", f"index is {self.index}")


class EasyTextIndexSwitch(Node):
    """text<index> (index 0 to 9), as Easy-Use's easy textIndexSwitch picks; the chosen input
    must be connected."""
    category = "EasyUse/Logic/Index Switch"
    index: int = Int(0, min=0, max=FLOW_COUNT - 1)
    text0: STRING = None
    text1: STRING = None
    text2: STRING = None
    text3: STRING = None
    text4: STRING = None
    text5: STRING = None
    text6: STRING = None
    text7: STRING = None
    text8: STRING = None
    text9: STRING = None
    outputs = {"text": STRING}
    comfy = ComfyAlias(("easy textIndexSwitch",), optional=tuple(f"text{i}" for i in range(FLOW_COUNT)))

    def run(self):
        return _chosen(self, f"text{self.index}", f"index is {self.index}")


class EasyImageIndexSwitch(Node):
    """image<index> (index 0 to 9), as Easy-Use's easy imageIndexSwitch picks; the chosen input
    must be connected."""
    category = "EasyUse/Logic/Index Switch"
    index: int = Int(0, min=0, max=FLOW_COUNT - 1)
    image0: IMAGE = None
    image1: IMAGE = None
    image2: IMAGE = None
    image3: IMAGE = None
    image4: IMAGE = None
    image5: IMAGE = None
    image6: IMAGE = None
    image7: IMAGE = None
    image8: IMAGE = None
    image9: IMAGE = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("easy imageIndexSwitch",), optional=tuple(f"image{i}" for i in range(FLOW_COUNT)))

    def run(self):
        return _chosen(self, f"image{self.index}", f"index is {self.index}")


# -- math ---------------------------------------------------------------------------------------

MATH_OPERATIONS = ("add", "subtract", "multiply", "divide", "modulo", "power")


def easy_math(a, b, operation: str):
    """Easy-Use's mathInt / mathFloat: + - * and, for whole numbers, floor division (//),
    else true division; modulo and power as Python's % and **. Division by zero is an error
    naming b, as is a whole-number power too big to work out."""
    if operation in ("divide", "modulo") and b == 0:
        raise NodeInputError("b", f"{operation} by zero")
    if operation == "power" and isinstance(a, int) and isinstance(b, int) and abs(b) > POWER_LIMIT and abs(a) > 1:
        raise NodeInputError("b", f"exponent {b} is too big (at most {POWER_LIMIT} for whole numbers)")
    whole = isinstance(a, int) and isinstance(b, int)
    try:
        result = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
                  "divide": operator.floordiv if whole else operator.truediv, "modulo": operator.mod,
                  "power": operator.pow}[operation](a, b)
    except (OverflowError, ZeroDivisionError) as e:
        raise NodeInputError("b", f"{a} {operation} {b}: {e}") from None
    if isinstance(result, complex):
        raise NodeInputError("b", f"{a} to the power {b} is not a real number")
    digits = sys.get_int_max_str_digits()  # 0: no limit
    if isinstance(result, int) and digits and abs(result) >= 10 ** digits:
        raise NodeInputError("b", f"{a} {operation} {b} has more than {digits} digits, more than Python "
                                  "writes as text")
    return result


class EasyMathInt(Node):
    """a and b added, subtracted, multiplied, divided (rounded down), modulo or to the power, as
    Easy-Use's easy mathInt works them out (Python's // and %; a negative power gives a number
    that is not whole, as in the pack). A result of more than 4300 digits (Python's limit for
    writing whole numbers as text) is an error naming b."""
    category = "EasyUse/Logic/Math"
    a: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    b: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    operation: str = Choice(MATH_OPERATIONS, "add")
    outputs = {"INT": INT}
    comfy = ComfyAlias(("easy mathInt",))

    def run(self):
        return easy_math(self.a, self.b, self.operation)


class EasyMathFloat(Node):
    """a and b added, subtracted, multiplied, divided, modulo or to the power, as Easy-Use's
    easy mathFloat works them out (Python's / and %)."""
    category = "EasyUse/Logic/Math"
    a: float = Float(0.0, min=-999999999999.0, max=999999999999.0, step=0.01)
    b: float = Float(0.0, min=-999999999999.0, max=999999999999.0, step=0.01)
    operation: str = Choice(MATH_OPERATIONS, "add")
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("easy mathFloat",))

    def run(self):
        return easy_math(float(self.a), float(self.b), self.operation)


STRING_OPERATIONS = ("a == b", "a != b", "a IN b", "a MATCH REGEX(b)", "a BEGINSWITH b", "a ENDSWITH b")


def string_test(a: str, b: str, operation: str, case_sensitive: bool) -> bool:
    """Easy-Use's mathString: both texts lower-cased unless case_sensitive, then compared; a
    MATCH REGEX(b) is re.match (at the start of a), false for an invalid expression as in the
    pack, and stopped with an error naming b when it backtracks too long."""
    if not case_sensitive:
        a, b = a.lower(), b.lower()
    if operation == "a MATCH REGEX(b)":
        try:
            pattern = re.compile(b)
        except (re.error, ValueError, OverflowError, RecursionError):
            return False
        return _guarded(pattern, a, every_match=False, input_name="b").match(a) is not None
    return {"a == b": a == b, "a != b": a != b, "a IN b": a in b,
            "a BEGINSWITH b": a.startswith(b), "a ENDSWITH b": a.endswith(b)}[operation]


class EasyMathString(Node):
    """Compare two texts, as Easy-Use's easy mathString does: equal, not equal, a within b, a
    matching the regular expression b (from its start), a starting or ending with b; with
    case_sensitive off both are lower-cased first."""
    category = "EasyUse/Logic/Math"
    a: str = Text("")
    b: str = Text("")
    operation: str = Choice(STRING_OPERATIONS, "a == b")
    case_sensitive: bool = Bool(True)
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("easy mathString",))

    def run(self):
        return string_test(self.a, self.b, self.operation, self.case_sensitive)


# -- prompts ------------------------------------------------------------------------------------

PROMPT = "EasyUse/Prompt"


class EasyPositive(Node):
    """A positive prompt's text, as Easy-Use's easy positive gives it."""
    category = PROMPT
    positive: str = Text("", multiline=True)
    outputs = {"positive": STRING}
    comfy = ComfyAlias(("easy positive",))

    def run(self):
        return self.positive


class EasyNegative(Node):
    """A negative prompt's text, as Easy-Use's easy negative gives it."""
    category = PROMPT
    negative: str = Text("", multiline=True)
    outputs = {"negative": STRING}
    comfy = ComfyAlias(("easy negative",))

    def run(self):
        return self.negative


class EasyPromptConcat(Node):
    """prompt1, separator and prompt2 joined, as Easy-Use's easy promptConcat joins them (an
    unconnected prompt counts as empty text; the separator is written between them even then).
    A result over 10,000,000 characters is refused (an error naming prompt2)."""
    category = PROMPT
    prompt1: STRING = None
    prompt2: STRING = None
    separator: str = Text("")
    outputs = {"prompt": STRING}
    comfy = ComfyAlias(("easy promptConcat",), force_input=("prompt1", "prompt2"),
                       optional=("prompt1", "prompt2", "separator"))

    def run(self):
        prompt1, prompt2 = self.prompt1 or "", self.prompt2 or ""
        fits(len(prompt1) + len(self.separator) + len(prompt2), "prompt2")
        return prompt1 + self.separator + prompt2


class EasyPromptReplace(Node):
    """prompt with find1 replaced by replace1, then find2 by replace2, then find3 by replace3, as
    Easy-Use's easy promptReplace does (plain text, every occurrence; an empty find with a
    non-empty replacement puts it between every character, as Python's str.replace does)."""
    category = PROMPT
    prompt: STRING
    find1: str = Text("")
    replace1: str = Text("")
    find2: str = Text("")
    replace2: str = Text("")
    find3: str = Text("")
    replace3: str = Text("")
    outputs = {"prompt": STRING}
    comfy = ComfyAlias(("easy promptReplace",), force_input=("prompt",),
                       optional=("find1", "replace1", "find2", "replace2", "find3", "replace3"))

    def run(self):
        pairs = ((self.find1, self.replace1), (self.find2, self.replace2), (self.find3, self.replace3))
        return replaced_in_turn(self.prompt, pairs, ("prompt",) * 3)


class EasyPromptLine(Node):
    """The lines of `prompt` from start_index, at most max_rows of them, as a list (each line runs
    the nodes after it once), as Easy-Use's easy promptLine gives them; remove_empty_lines drops
    blank lines first. A start_index past the end gives the last line, as in the pack."""
    category = PROMPT
    prompt: str = Text("text", multiline=True)
    start_index: int = Int(0, min=0, max=9999)
    max_rows: int = Int(1000, min=1, max=9999)
    remove_empty_lines: bool = Bool(True)
    outputs = {"STRING": ListOf(STRING), "COMBO": ListOf(STRING)}
    comfy = ComfyAlias(("easy promptLine",))

    def run(self):
        lines = self.prompt.split("\n")
        if self.remove_empty_lines:
            lines = [line for line in lines if line.strip()]
        start = max(0, min(self.start_index, len(lines) - 1))
        rows = lines[start:start + self.max_rows]
        return rows, list(rows)



# -- images (py/nodes/image.py at 18830962a44112b8084cb6d5c29077426cd8783e) -----------------------

IMAGE_CATEGORY = "EasyUse/Image"


def _whole_image_batch(image, input_name: str):
    if getattr(image, "ndim", None) != 4:
        raise NodeInputError(input_name, f"expected an IMAGE batch [B, H, W, C], got {type(image).__name__}")
    return image


class EasyImageInsetCrop(Node):
    """Crop left, right, top and bottom off an image batch, as Easy-Use's easy imageInsetCrop
    does: in pixels, or in percent of the width / height (measurement "Percentage"); each amount
    is rounded down to a multiple of 8 first. A crop that leaves nothing is an error naming the
    side (where the sides meet exactly, the pack gives an empty image instead)."""
    category = IMAGE_CATEGORY
    image: IMAGE
    measurement: str = Choice(("Pixels", "Percentage"), "Pixels")
    left: int = Int(0, min=0, max=16384, step=8)
    right: int = Int(0, min=0, max=16384, step=8)
    top: int = Int(0, min=0, max=16384, step=8)
    bottom: int = Int(0, min=0, max=16384, step=8)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("easy imageInsetCrop",))

    def run(self):
        image = _whole_image_batch(self.image, "image")
        height, width = image.shape[1], image.shape[2]
        amounts = {"left": self.left, "right": self.right, "top": self.top, "bottom": self.bottom}
        if self.measurement == "Percentage":  # the pack's int(size - size * (100 - p) / 100)
            amounts = {side: int((width if side in ("left", "right") else height)
                                 - (width if side in ("left", "right") else height) * (100 - p) / 100)
                       for side, p in amounts.items()}
        amounts = {side: p // 8 * 8 for side, p in amounts.items()}
        x0, x1 = amounts["left"], width - amounts["right"]
        y0, y1 = amounts["top"], height - amounts["bottom"]
        if y0 >= y1:
            raise NodeInputError("top", f"top {y0} and bottom {amounts['bottom']} leave no rows of {height}")
        if x0 >= x1:
            raise NodeInputError("left", f"left {x0} and right {amounts['right']} leave no columns of {width}")
        return image[:, y0:y1, x0:x1, :]


def scaled_down(images, width: int, height: int, crop: str):
    """The pack's imageScaleDown: centre-cropped to width:height's aspect when crop is "center"
    (rounded offsets, as the pack takes them), then each image resized with Pillow's Lanczos on
    its 8-bit RGB picture."""
    import numpy as np
    import torch
    from PIL import Image

    from graphflow.images import image_to_pil
    if crop == "center":
        old_height, old_width = images.shape[1], images.shape[2]
        old_aspect, new_aspect = old_width / old_height, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
        images = images[:, y:old_height - y, x:old_width - x, :]
    resized = [np.asarray(image_to_pil(image).convert("RGB").resize((width, height), Image.Resampling.LANCZOS),
                          dtype=np.float32) / 255.0 for image in images]
    return torch.from_numpy(np.stack(resized))


class EasyImageScaleDown(Node):
    """Resize images to width x height with Lanczos (on 8-bit RGB pictures, as the pack does
    through Pillow), as Easy-Use's easy imageScaleDown does; crop "center" first cuts the images
    to the new aspect ratio about their centre."""
    category = IMAGE_CATEGORY
    images: IMAGE
    width: int = Int(512, min=1, max=16384, resource="width")
    height: int = Int(512, min=1, max=16384, resource="height")
    crop: str = Choice(("disabled", "center"), "disabled")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("easy imageScaleDown",))

    def run(self):
        return scaled_down(_whole_image_batch(self.images, "images"), self.width, self.height, self.crop)


def _scaled_down_by(images, scale_by: float, input_name: str):
    width, height = int(images.shape[2] * scale_by), int(images.shape[1] * scale_by)
    if width < 1 or height < 1:
        raise NodeInputError(input_name, f"scales {images.shape[2]}x{images.shape[1]} to {width}x{height}: "
                                         "nothing left")
    return scaled_down(images, width, height, "center")


class EasyImageScaleDownBy(Node):
    """Scale images down by scale_by (the new size truncated to whole pixels), as Easy-Use's easy
    imageScaleDownBy does: easy imageScaleDown with the centre crop."""
    category = IMAGE_CATEGORY
    images: IMAGE
    scale_by: float = Float(0.5, min=0.01, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("easy imageScaleDownBy",))

    def run(self):
        return _scaled_down_by(_whole_image_batch(self.images, "images"), self.scale_by, "scale_by")


class EasyImageScaleDownToSize(Node):
    """Scale images down so their longer side (mode on, "max") or shorter side (off, "min") is
    `size`, never up, as Easy-Use's easy imageScaleDownToSize does."""
    category = IMAGE_CATEGORY
    images: IMAGE
    size: int = Int(512, min=1, max=16384)
    mode: bool = Bool(True)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("easy imageScaleDownToSize",))

    def run(self):
        images = _whole_image_batch(self.images, "images")
        sides = (images.shape[2], images.shape[1])
        scale_by = min(self.size / (max(sides) if self.mode else min(sides)), 1.0)
        return _scaled_down_by(images, scale_by, "size")


class EasyImageRatio(Node):
    """An image's aspect ratio in lowest terms (width and height over their greatest common
    divisor), as whole numbers and as numbers, as Easy-Use's easy imageRatio gives and shows it."""
    category = IMAGE_CATEGORY
    output_node = True
    image: IMAGE
    outputs = {"width_ratio_int": INT, "height_ratio_int": INT, "width_ratio_float": FLOAT,
               "height_ratio_float": FLOAT}
    comfy = ComfyAlias(("easy imageRatio",))

    def run(self):
        import math
        image = _whole_image_batch(self.image, "image")
        height, width = image.shape[1], image.shape[2]
        divisor = math.gcd(width, height)
        w, h = width // divisor, height // divisor
        show(text=[f"Image Ratio is {w}:{h}"])
        return w, h, float(w), float(h)


PIXEL_PERFECT_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")


class EasyImagePixelPerfect(Node):
    """The pixel-perfect resolution of an image, as Easy-Use's easy imagePixelPerfect gives and
    shows it: the pack compares the image with its own size, so every resize_mode gives the
    shorter side."""
    category = IMAGE_CATEGORY
    output_node = True
    image: IMAGE
    resize_mode: str = Choice(PIXEL_PERFECT_MODES, "Just Resize")
    outputs = {"resolution": INT}
    comfy = ComfyAlias(("easy imagePixelPerfect",))

    def run(self):
        image = _whole_image_batch(self.image, "image")
        height, width = image.shape[1], image.shape[2]
        # the pack's k0 = k1 = 1 (target size = image size): min or max of them times the shorter side
        resolution = round(min(height, width))
        show(text=[f"Width:{width}\nHeight:{height}\nPixelPerfect:{resolution}"])
        return resolution


class EasyImageConcat(Node):
    """Put image2 beside image1, as Easy-Use's easy imageConcat does: right / left of it (same
    heights needed) or below / above it (same widths needed), batch by batch. Left out:
    match_image_size (the pack's fit-resize of image2; an error when on)."""
    category = IMAGE_CATEGORY
    image1: IMAGE
    image2: IMAGE
    direction: str = Choice(("right", "down", "left", "up"), "right")
    match_image_size: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("easy imageConcat",))

    @classmethod
    def estimate(cls, widgets, inputs):
        first, second = inputs.get("image1"), inputs.get("image2")
        if first is None or second is None:
            return Estimate(None)
        if widgets.get("direction") in ("down", "up"):
            return Estimate(Size(first.batch, first.height + second.height, first.width))
        return Estimate(Size(first.batch, first.height, first.width + second.width))

    def run(self):
        import torch
        if self.match_image_size:
            raise NodeInputError("match_image_size", "resizing image2 to image1 is not built in: resize it first "
                                                     "(e.g. ImageScale) and turn this off")
        first, second = _whole_image_batch(self.image1, "image1"), _whole_image_batch(self.image2, "image2")
        dim = 2 if self.direction in ("right", "left") else 1
        other = 1 if dim == 2 else 2
        if first.shape[0] != second.shape[0] or first.shape[other] != second.shape[other] \
                or first.shape[3] != second.shape[3]:
            raise NodeInputError("image2", f"is {tuple(second.shape)}; to go {self.direction} of image1 "
                                           f"{tuple(first.shape)} it needs the same batch, channels and "
                                           f"{'height' if dim == 2 else 'width'}")
        pair = (first, second) if self.direction in ("right", "down") else (second, first)
        return torch.cat(pair, dim=dim)


SPLIT_OUTPUTS = 5


class EasyImagesSplitImage(Node):
    """The first five images of a batch, one per output, as Easy-Use's easy imagesSplitImage gives
    them (an output past the batch gives nothing)."""
    category = IMAGE_CATEGORY
    images: IMAGE
    outputs = {f"image{i}": IMAGE for i in range(1, SPLIT_OUTPUTS + 1)}
    comfy = ComfyAlias(("easy imagesSplitImage",))

    def run(self):
        images = _whole_image_batch(self.images, "images")
        return tuple(images[i:i + 1] if i < images.shape[0] else None for i in range(SPLIT_OUTPUTS))


class EasyImageCount(Node):
    """The number of images in a batch, as Easy-Use's easy imageCount gives it."""
    category = IMAGE_CATEGORY
    images: IMAGE
    outputs = {"count": INT}
    comfy = ComfyAlias(("easy imageCount",))

    def run(self):
        return int(_whole_image_batch(self.images, "images").shape[0])


class EasyImageSplitGrid(Node):
    """Cut each image into row x column cells (width // column by height // row, the remainder
    dropped) and give them as one batch, row by row, each cell for every image of the batch in
    turn, as Easy-Use's easy imageSplitGrid does."""
    category = IMAGE_CATEGORY
    images: IMAGE
    row: int = Int(1, min=1, max=10)
    column: int = Int(1, min=1, max=10)
    outputs = {"images": IMAGE}
    comfy = ComfyAlias(("easy imageSplitGrid",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, rows, columns = inputs.get("images"), widgets.get("row"), widgets.get("column")
        if size is None or not isinstance(rows, int) or not isinstance(columns, int) or rows < 1 or columns < 1:
            return Estimate(size)
        return Estimate(Size(size.batch * rows * columns, size.height // rows, size.width // columns))

    def run(self):
        import torch
        images = _whole_image_batch(self.images, "images")
        height, width = images.shape[1], images.shape[2]
        cell_w, cell_h = width // self.column, height // self.row
        if cell_w == 0 or cell_h == 0:
            raise NodeInputError("column" if cell_w == 0 else "row",
                                 f"{width}x{height} has no room for a {self.row} x {self.column} grid")
        cells = [images[:, i * cell_h:(i + 1) * cell_h, j * cell_w:(j + 1) * cell_w]
                 for i in range(self.row) for j in range(self.column)]
        return torch.cat(cells, dim=0)


class EasyJoinImageBatch(Node):
    """An image batch joined into one image, side by side (horizontal) or one above the other
    (vertical), as Easy-Use's easy joinImageBatch does."""
    category = IMAGE_CATEGORY
    images: IMAGE
    mode: str = Choice(("horizontal", "vertical"), "horizontal")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("easy joinImageBatch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        if size is None:
            return Estimate(None)
        if widgets.get("mode") == "vertical":
            return Estimate(Size(1, size.batch * size.height, size.width))
        return Estimate(Size(1, size.height, size.batch * size.width))

    def run(self):
        import torch
        images = _whole_image_batch(self.images, "images")
        return torch.cat(list(images), dim=1 if self.mode == "horizontal" else 0)[None]


class EasyImageSave(Node):
    """Save images to the outputs folder as filename_prefix (SaveImage's naming), or only show
    them (only_preview), as Easy-Use's easy imageSave does."""
    category = IMAGE_CATEGORY
    output_node = True
    images: IMAGE
    filename_prefix: str = Text("ComfyUI", file_name=True)
    only_preview: bool = Bool(False)
    comfy = ComfyAlias(("easy imageSave",))

    def run(self):
        if self.only_preview:
            preview(self.images)
        else:
            _core(SaveImage, images=self.images, filename_prefix=self.filename_prefix)


class EasyImageListToImageBatch(Node):
    """A list of images joined into one batch, as Easy-Use's easy imageListToImageBatch does:
    each resized to the first's size where it differs (Lanczos, centre-cropped). Where the sizes
    already agree the images are joined as they are (the pack sends them through an 8-bit Lanczos
    pass at their own size)."""
    category = IMAGE_CATEGORY
    input_is_list = True
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("easy imageListToImageBatch",))

    def run(self):
        from nodes.pack_nodes_impact import join_images
        if not self.images:
            raise NodeInputError("images", "the list is empty")
        return join_images([self.images[0], *(("images", image) for image in self.images[1:])], "images")


class EasyImageBatchToImageList(Node):
    """Each image of a batch as one item of a list (what follows runs once per image), as
    Easy-Use's easy imageBatchToImageList gives them."""
    category = IMAGE_CATEGORY
    image: IMAGE
    outputs = {"IMAGE": ListOf(IMAGE)}
    comfy = ComfyAlias(("easy imageBatchToImageList",))

    def run(self):
        image = _whole_image_batch(self.image, "image")
        return [image[i:i + 1] for i in range(image.shape[0])]


BASE64_IMAGE_OUTPUTS = ("Hide", "Preview", "Save", "Hide/Save")


# what OpenCV and Pillow both decode in-process (Pillow would hand an EPS to Ghostscript)
PICTURE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")


def base64_picture_bytes(data: str, input_name: str, formats: tuple[str, ...] = PICTURE_FORMATS) -> bytes:
    """A picture file's bytes from base64 text, refused (NodeInputError naming input_name) unless
    they are a picture checked_picture_bytes passes."""
    import base64
    import binascii

    if not data.strip():
        raise NodeInputError(input_name, "is empty: paste a picture file's base64 text")
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as e:
        raise NodeInputError(input_name, f"not base64 text: {e}") from None
    return checked_picture_bytes(raw, input_name, formats)


def checked_picture_bytes(raw: bytes, input_name: str, formats: tuple[str, ...] = PICTURE_FORMATS) -> bytes:
    """A picture file's bytes, refused (NodeInputError naming input_name) unless they are a picture
    in one of formats (Pillow's names) whose size, read from its header before anything is decoded,
    is within Pillow's MAX_IMAGE_PIXELS and the server's max_pixels."""
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    from graphflow.api import run_limits
    try:
        with warnings.catch_warnings():  # over MAX_IMAGE_PIXELS is refused below, with the input named
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw), formats=formats) as header:  # reads the header only
                width, height = header.size
    except UnidentifiedImageError:  # its message names the BytesIO object, nothing the user gave
        raise NodeInputError(input_name, f"the decoded bytes are no picture of the formats read here: "
                                         f"{', '.join(formats)}") from None
    except OSError as e:
        raise NodeInputError(input_name, f"the decoded bytes are no readable picture: {e}") from None
    except Image.DecompressionBombError as e:
        raise NodeInputError(input_name, f"the picture is too large to load: {e}") from None
    # Pillow refuses only twice its MAX_IMAGE_PIXELS; OpenCV would decode up to its own, larger limit
    limits = [n for n in (Image.MAX_IMAGE_PIXELS, run_limits().max_pixels) if n is not None]
    if limits and width * height > min(limits):
        raise NodeInputError(input_name, f"the picture is {width}x{height}, over the {min(limits)} pixels "
                                         f"a picture may have here")
    return raw


def decoded_base64_picture(data: str, input_name: str):
    """(IMAGE, MASK) of a base64-encoded picture as the pack's loadImageBase64 makes them: decoded
    by OpenCV as stored, colours to RGB, the alpha channel / 255 as the mask (not inverted, as
    LoadImage's is), else a mask of ones. The size is held to Pillow's MAX_IMAGE_PIXELS and the
    server's max_pixels before anything is decoded (base64_picture_bytes).
    Grey pictures (which the pack's colour conversion fails on) are made RGB; pictures of more
    than 8 bits a channel are refused (the pack divides them by 255)."""
    import cv2
    import numpy as np
    import torch

    raw = base64_picture_bytes(data, input_name)
    picture = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if picture is None:
        raise NodeInputError(input_name, "OpenCV could not decode the picture")
    if picture.dtype != np.uint8:
        raise NodeInputError(input_name, f"a picture of {picture.dtype} channels is not read here; only 8-bit ones")
    if picture.ndim == 2:
        picture = picture[..., None]
    channels = picture.shape[2]
    mask = (torch.from_numpy(picture[..., 3].astype(np.float32) / 255.0) if channels > 3
            else torch.ones(picture.shape[:2], dtype=torch.float32))
    conversion = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB}.get(channels, cv2.COLOR_BGRA2RGB)
    rgb = cv2.cvtColor(picture, conversion).astype(np.float32) / 255.0
    return torch.from_numpy(rgb)[None], mask[None]


class EasyLoadImageBase64(Node):
    """An image from base64 text (a PNG, JPEG, WebP ... file's bytes), as Easy-Use's easy
    loadImageBase64 makes it: decoded by OpenCV, the alpha channel as the mask (1 = opaque, as
    the pack gives it; ones without alpha), shown (Preview) or saved to the outputs folder as
    save_prefix (Save, Hide/Save) or neither (Hide). Grey pictures are made RGB (the pack fails on
    them); pictures of more than 8 bits a channel, or of more pixels than Pillow's MAX_IMAGE_PIXELS
    (about 89 megapixels) or the server's max_pixels, are refused before they are decoded."""
    category = "EasyUse/Image/LoadImage"
    output_node = True
    base64_data: str = Text("")
    image_output: str = Choice(BASE64_IMAGE_OUTPUTS, "Preview")
    save_prefix: str = Text("ComfyUI", file_name=True)
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("easy loadImageBase64",))

    def run(self):
        image, mask = decoded_base64_picture(self.base64_data, "base64_data")
        if "Save" in self.image_output:
            _core(SaveImage, {"filename_prefix": "save_prefix"}, images=image, filename_prefix=self.save_prefix)
        elif self.image_output == "Preview":
            preview(image)
        return image, mask

# -- any-type helpers (py/nodes/logic.py at 05b91821964e8dd83c8df198e1ab07de99203582) --------------


class EasyShowTensorShape(Node):
    """Show the shapes of the tensors in a value (a tensor, or those inside dicts and lists, a
    latent's samples and noise mask among them), as Easy-Use's easy showTensorShape does."""
    category = LOGIC
    output_node = True
    tensor: ANY
    comfy = ComfyAlias(("easy showTensorShape",))

    def run(self):
        shapes = []

        def collect(value, depth=0):
            if depth > 64:  # a value nested this deep holds no more tensors worth showing
                return
            if isinstance(value, dict):
                for item in value.values():
                    collect(item, depth + 1)
            elif isinstance(value, list):
                for item in value:
                    collect(item, depth + 1)
            elif hasattr(value, "shape"):
                shapes.append(list(value.shape))

        collect(self.tensor)
        show(text=shapes)


def _batch_numbers(first, second):
    """The pack's rule for a text or number with something else: appended to a list or tuple,
    else both in a new list."""
    if second is None:
        return first
    if isinstance(second, tuple):
        return second + (first,)
    if isinstance(second, list):
        return second + [first]
    return [first, second]


def _latent_batch(first: dict, second: dict):
    import torch
    a, b = first["samples"], second["samples"]
    if a.shape[1:] != b.shape[1:]:
        if a.shape[1] != b.shape[1]:
            raise NodeInputError("any_2", f"a latent of {b.shape[1]} channels cannot join one of {a.shape[1]}")
        b = _centre_resized(b, a.shape[3], a.shape[2])
    return {**first, "samples": torch.cat((a, b), dim=0),
            "batch_index": first.get("batch_index", list(range(a.shape[0])))
            + second.get("batch_index", list(range(b.shape[0])))}


def _centre_resized(x, width: int, height: int):
    """NCHW resized bilinearly to width x height after a centre crop to that aspect (ComfyUI's
    common_upscale with crop "center")."""
    import torch.nn.functional as F
    old_height, old_width = x.shape[2], x.shape[3]
    old_aspect, new_aspect = old_width / old_height, width / height
    if old_aspect > new_aspect:
        cut = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
        x = x[:, :, :, cut:old_width - cut]
    elif old_aspect < new_aspect:
        cut = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
        x = x[:, :, cut:old_height - cut]
    return F.interpolate(x, size=(height, width), mode="bilinear")


class EasyBatchAnything(Node):
    """Two values batched, as Easy-Use's easy batchAnything does: images joined into one batch
    (the second resized bilinearly, centre-cropped, to the first's size where it differs), masks
    of the same size joined into one (masks of different sizes are an error, as in the pack),
    latents joined likewise with their batch indexes, a text or number appended to the other
    value's list (or both made a list), and anything else added with + (lists joined)."""
    category = LOGIC
    any_1: ANY
    any_2: ANY
    outputs = {"batch": ANY}
    comfy = ComfyAlias(("easy batchAnything",))

    @classmethod
    def estimate(cls, widgets, inputs):
        # two image or latent batches: any_2 is resized to any_1's size, so the joined batch is
        # both batches at any_1's size
        first, second = inputs.get("any_1"), inputs.get("any_2")
        if first is None or second is None:
            return Estimate(None)
        return Estimate(Size(first.batch + second.batch, first.height, first.width))

    def run(self):
        import torch
        a, b = self.any_1, self.any_2
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            if a is None or b is None:
                return b if a is None else a
            if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
                raise NodeInputError("any_2", "a tensor (images, masks) batches only with a tensor")
            if a.ndim == 3 and b.ndim == 3:  # masks: the pack resizes only images, so sizes must match
                if a.shape[1:] != b.shape[1:]:
                    raise NodeInputError("any_2", f"masks of {b.shape[2]}x{b.shape[1]} cannot join masks of "
                                                  f"{a.shape[2]}x{a.shape[1]}: the same size is needed")
                return torch.cat((a, b), dim=0)
            if a.ndim != 4 or b.ndim != 4:
                raise NodeInputError("any_2", f"images batch only with images and masks with masks; got "
                                              f"{tuple(a.shape)} and {tuple(b.shape)}")
            if a.shape[1:] != b.shape[1:]:
                if a.shape[3] != b.shape[3]:
                    raise NodeInputError("any_2", f"images of {b.shape[3]} channels cannot join ones of {a.shape[3]}")
                b = _centre_resized(b.movedim(-1, 1), a.shape[2], a.shape[1]).movedim(1, -1)
            return torch.cat((a, b), dim=0)
        if isinstance(a, (str, float, int)):
            return _batch_numbers(a, b)
        if isinstance(b, (str, float, int)):
            return _batch_numbers(b, a)
        if isinstance(a, dict) and "samples" in a:
            if b is None:
                return a
            if isinstance(b, dict) and "samples" in b:
                return _latent_batch(a, b)
            raise NodeInputError("any_2", "a latent batches only with a latent")
        if isinstance(b, dict) and "samples" in b:
            if a is None:
                return b
            raise NodeInputError("any_1", "a latent batches only with a latent")
        if a is None or b is None:
            return b if a is None else a
        try:
            return a + b
        except TypeError:
            raise NodeInputError("any_2", f"cannot batch {type(a).__name__} with {type(b).__name__}") from None


class EasyConvertAnything(Node):
    """A value converted to text, a whole number, a number or true / false with Python's str,
    int, float and bool, as Easy-Use's easy convertAnything does (its input is named "*")."""
    category = LOGIC
    output_node = True
    anything: ANY
    output_type: str = Choice(("string", "int", "float", "boolean"), "string")
    outputs = {"*": ANY}
    comfy = ComfyAlias(("easy convertAnything",), inputs={"*": "anything"})

    def run(self):
        convert = {"string": str, "int": int, "float": float, "boolean": bool}[self.output_type]
        try:
            return convert(self.anything)
        except (TypeError, ValueError, OverflowError) as e:
            raise NodeInputError("anything", f"cannot be made a {self.output_type}: {e}") from None


class EasyOutputToList(Node):
    """A list (or tuple) handed on item by item, so what follows runs once per item, as
    Easy-Use's easy outputToList does."""
    category = LOGIC
    tuple: ANY
    outputs = {"list": ListOf(ANY)}
    comfy = ComfyAlias(("easy outputToList",))

    def run(self):
        if not isinstance(self.tuple, (list, tuple)):
            raise NodeInputError("tuple", f"expected a list or tuple, got {type(self.tuple).__name__}")
        return list(self.tuple)


def _single_or_list(values: list):
    """What the pack's list-reading nodes see: several items (a list output upstream) as the
    list, one as the value itself."""
    return values if len(values) > 1 else values[0]


class EasyLengthAnything(Node):
    """The length of a value, as Easy-Use's easy lengthAnything gives it: the number of items of
    a list output, else the value's own length (an image or latent tensor's batch, a text's
    characters, a list's items). A list output of one item counts that item's length here (the
    pack reads the upstream node's list flag; graphflow sees the one value)."""
    category = LOGIC
    input_is_list = True
    any: ANY
    outputs = {"length": INT}
    comfy = ComfyAlias(("easy lengthAnything",))

    def run(self):
        value = _single_or_list(self.any)
        try:
            return len(value)
        except TypeError:
            raise NodeInputError("any", f"a {type(value).__name__} has no length") from None


class EasyIndexAnything(Node):
    """Item `index` of a value, as Easy-Use's easy indexAnything gives it: of a list output, that
    item; of a tensor (an image or mask batch), that image as a batch of one; else value[index].
    As in easy lengthAnything, a list output of one item is indexed as that item."""
    category = LOGIC
    input_is_list = True
    any: ANY
    index: int = Int(0, min=0, max=1000000)
    outputs = {"out": ANY}
    comfy = ComfyAlias(("easy indexAnything",))

    def run(self):
        import torch
        index = self.index[0]
        if len(self.any) > 1:
            if index >= len(self.any):
                raise NodeInputError("index", f"{index} is past the list's {len(self.any)} items")
            return self.any[index]
        value = self.any[0]
        try:
            if isinstance(value, torch.Tensor):
                if index >= value.shape[0]:
                    raise IndexError(f"the batch has {value.shape[0]}")
                return value[index:index + 1].clone()
            return value[index]
        except (IndexError, KeyError, TypeError) as e:
            raise NodeInputError("index", f"{index} is not in the {type(value).__name__}: {e}") from None
