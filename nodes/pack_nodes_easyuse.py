"""ComfyUI-Easy-Use's small value, logic and prompt nodes, under the pack's class names, inputs
and outputs (read from yolain/ComfyUI-Easy-Use: py/nodes/logic.py at commit
05b91821964e8dd83c8df198e1ab07de99203582, py/nodes/prompt.py at 070001b36be2bbdfcf766b6a2d6f14c36cb62906,
py/nodes/seed.py at 3515268de557bb165cbfa7ee830710a45fabe8ef and the image-size nodes of
py/nodes/image.py): easy seed, easy int / float / string / boolean, easy showAnything, easy
clearCacheAll / clearCacheKey / cleanGpuUsed, easy imageSize / imageSizeBySide /
imageSizeByLongerSide, easy compare, easy ifElse, easy isNone, easy textSwitch / imageSwitch,
easy anythingIndexSwitch / textIndexSwitch / imageIndexSwitch, easy promptConcat /
promptReplace / promptLine, easy positive / negative, easy mathInt / mathFloat / mathString.
The pack's pipe system (loaders, pipe nodes, preSampling, kSampler) is in
nodes/pack_nodes_easyuse_pipe.py.

Left out: the loops (whileLoop*, forLoop*: ComfyUI graph expansion), easy ab / blocker /
anythingInversedSwitch (ComfyUI's execution blocker), the wildcard, style and portrait prompt
nodes (the pack's data files and wildcard folders) and the model-backed nodes."""

from __future__ import annotations

import json
import operator
import re
import sys

from graphflow.api import ANY, BOOLEAN, FLOAT, IMAGE, INT, STRING, Bool, Choice, ComfyAlias, Float, Int, ListOf, \
    Node, NodeInputError, Text, show
from nodes.pack_nodes import POWER_LIMIT
from nodes.strings import _fits, _guarded, replaced_in_turn

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
INT_LIMIT = 0xFFFFFFFFFFFFFFFF  # the pack's mathInt widget bounds


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
    comfy = ComfyAlias(("easy promptConcat",), optional=("prompt1", "prompt2", "separator"))

    def run(self):
        prompt1, prompt2 = self.prompt1 or "", self.prompt2 or ""
        _fits(len(prompt1) + len(self.separator) + len(prompt2), "prompt2")
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
    comfy = ComfyAlias(("easy promptReplace",),
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

