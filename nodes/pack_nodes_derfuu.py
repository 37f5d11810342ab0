"""Derfuu's ModdedNodes (Derfuu/Derfuu_ComfyUI_ModdedNodes) under the pack's class names, inputs
and outputs: its values (Float, Integer, Text, Text Box, DynamicPrompts Text Box), text (String
Concatenate, String Replace), To text (Debug), Random, converters (Int to Float, Ceil, Floor,
Absolute value), sizes (Get latent size, Get image size), math (Sum, Subtract, Multiply, Divide,
Power, Square root, Sinus, Cosines, Tangent), Logic node, and the modded nodes (Latent Scale by
ratio / to side, Image scale by ratio / to side, Conditioning area scale by ratio).

The current pack names its classes "DF_<name>" (__init__.py at
240bcbe442f083a233beac4bfe4881e2289350c6, with pyscripts/ Types.py and fields.py at
dd5e1541dca0169ba8bc11bb2a79cb94f9d97e5b, Debug.py at 8f29882642fbe7da9c58da6dd822efd4ff87d28a,
Converters.py, GetSizes.py, Random.py, Strings.py, SimpleMath.py, Trigonometry.py, LogicNode.py
at 588f4ccbe2169298099e1578f6ff0d4b56d90cf8, Modded/Images.py, Latents.py, Conditioning.py at
2b405890cefb95ba89ca30c7c326dd6145ef51b5, components/sizes.py at
4abdf368608b25b91ebf89b4c3e7c13e49c93937, scripts/debugNode.js at
c60bfa6bee8c9fcb037e3f3b360f77a9cd5f0281). Its earlier versions used bare names ("Integer",
"Sum", "Image scale to side" ...; utility/mapping_replace.py at
43653f29f8cd19baec387f87696a5e59a473214e maps them onto the DF_ ones): those are aliases here,
their inputs being in the same order. The bare "Float" is left to ComfyUI-Logic's Float
(nodes/pack_nodes_mxlogic.py), which reads Derfuu's Value input too (a saved Derfuu Float runs
as the number it holds) but writes the node back in Logic's shape (its input named `value`).

The earlier versions' tuple nodes (Tuple, Int to tuple, Tuple to floats, Tuple to ints, Tuple
swap, Tuple multiply, ConditioningSetArea with tuples, LatentComposite with tuples, the four
"... debug print" nodes, and Get latent / image size with their third output, a TUPLE) are
here under those names too (pyscripts/ Tuples.py, TuplesUsed/, Debug.py and __init__.py at
7b6746767c0f627831fbd40648648c6360cb9032, Nodes/Functions/GetSizes.py at
b3d93a72a0760a246b179549b8d07f25f99822d3). Left out: the pack's whole first layout, from when
it was "Derfuu_ComfyUI_CustomNodes" (__init__.py at dd6557a235d225ed6c5defc43f4c13ad0c56c32b):
all its classes, named with a "_DF" suffix (FloatNode_DF, SumNode_DF, ImageScale_Side_DF,
EmptyLatentImage_DF ... 33 of them), take other inputs than the later ones (SumNode_DF's
FLOAT_A and FLOAT_B, a TUPLE for sizes ...); a save using them stays unknown, its message naming
the pack. Nothing of the pack needs model weights or a service.

Deliberately unlike the pack: a result that is not a finite float (an overflow, a math domain
error, division by zero) or a whole number past +-INT_LIMIT is a NodeInputError naming the
input, and a scaled image or latent must be 1 to MAX_SIZE pixels a side. Where the pack names
no outputs of a node with two of one type (Square root, Tuple to floats / ints, the earlier Get
latent / image size), ComfyUI labels them by type; our editor gives them names (said in their
help), while /object_info and UI saves written back label them by type as ComfyUI does."""

from __future__ import annotations

import math
import operator
import sys

from graphflow.api import ANY, CONDITIONING, FLOAT, IMAGE, INT, LATENT, STRING, Choice, ComfyAlias, Estimate, Float, \
    Int, Node, NodeInputError, Size, Text, show, socket_type
from nodes.conditioning import ConditioningSetArea
from nodes.image import MAX_SIZE, _image
from nodes.latent import LatentComposite, _samples, _upscale
from nodes.pack_nodes import _core
from nodes.pack_nodes_comfymath import _value, _whole
from nodes.pack_nodes_mxlogic import SHOWN_TEXT, _truth
from nodes.pack_nodes_pysssss import regex_replace
from nodes.strings import fits, replaced_in_turn

COMFY_PACK = "Derfuu_ComfyUI_ModdedNodes"  # the custom node pack this module's ComfyUI classes come from

TUPLE = socket_type("TUPLE", "#a1887f", "Derfuu's ModdedNodes' pair of numbers: (width, height) or (x, y)")

# The pack's widget bounds (components/fields.py): any finite float; an INT up to sys.maxsize.
FLOAT_MAX = sys.float_info.max
INT_MAX = sys.maxsize
SCALE_METHODS = ("nearest-exact", "bilinear", "bicubic", "bislerp", "area", "lanczos")  # common_upscale's
CROP_METHODS = ("disabled", "center")
SIDES = ("Longest", "Shortest", "Width", "Height")
ROOT = "Derfuu_Nodes"


def _number(default=1.0, least=-FLOAT_MAX, step=0.01):
    """The pack's FLOAT field: default 1, step 0.01, any finite value (from `least`)."""
    return Float(default, min=least, max=FLOAT_MAX, step=step)


def _line(default: str = ""):
    """A one-line text widget (a function: nodes here have inputs named Text, shadowing the API's)."""
    return Text(default)


def _box(**hints):
    return Text("", multiline=True, **hints)


def _whole_number(default=1):
    """The pack's INT field: default 1 (or `default`), +-sys.maxsize."""
    return Int(default, min=-INT_MAX, max=INT_MAX)


def _finite(op: str, function, *args, names: tuple[str, ...]) -> float:
    """function(*args) as a float, what Python fails on (division by zero, a domain error, an
    overflow) or an infinite result told as a NodeInputError naming the input."""
    result = _value(op, function, *args, names=names)
    if not math.isfinite(result):
        raise NodeInputError(names[-1], f"{op} of {', '.join(map(repr, args))} is {result}, not a finite number")
    return float(result)


# -- values -------------------------------------------------------------------------------------


class DerfuuFloat(Node):
    """A number, as Derfuu's Float gives it."""
    category = f"{ROOT}/Variables"
    Value: float = _number()
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("DF_Float",))

    def run(self):
        return self.Value


class DerfuuInteger(Node):
    """A whole number, as Derfuu's Integer gives it: its Value is a number widget (step 1) cut
    to a whole number toward zero (int()); one past +-INT_LIMIT is an error."""
    category = f"{ROOT}/Variables"
    Value: float = _number(step=1)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("DF_Integer", "Integer"))

    def run(self):
        return _whole(int(self.Value), "Value")


class DerfuuText(Node):
    """A line of text, as Derfuu's Text gives it."""
    category = f"{ROOT}/Variables"
    Text: str = _line()
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("DF_Text", "Text"))

    def run(self):
        return self.Text


class DerfuuTextBox(Node):
    """Text of several lines, as Derfuu's Text Box gives it."""
    category = f"{ROOT}/Variables"
    Text: str = _box()
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("DF_Text_Box", "Text box"))

    def run(self):
        return self.Text


class DerfuuDynamicPromptsTextBox(Node):
    """Text of several lines, as Derfuu's DynamicPrompts Text Box gives it: the editor replaces
    each {a|b|c} by one of its choices when it queues (so does reading a UI-format save here)."""
    category = f"{ROOT}/Variables"
    Text: str = _box(dynamic_prompts=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("DF_DynamicPrompts_Text_Box",))

    def run(self):
        return self.Text


# -- text ---------------------------------------------------------------------------------------


class DerfuuStringConcatenate(Node):
    """Prepend, Delimiter and Append joined, as Derfuu's String Concatenate joins them."""
    category = f"{ROOT}/Functions/String Operations"
    Prepend: str = _line()
    Append: str = _line()
    Delimiter: str = _line(", ")
    outputs = {"TEXT": STRING}
    comfy = ComfyAlias(("DF_String_Concatenate", "String Concatenate"))

    def run(self):
        fits(len(self.Prepend) + len(self.Delimiter) + len(self.Append), "Append")
        return f"{self.Prepend}{self.Delimiter}{self.Append}"


class DerfuuStringReplace(Node):
    """Replace Pattern in Text by Replace_With, as Derfuu's String Replace does: "Strict" every
    occurrence of the text as it is, "RegEx" every match of a regular expression (Python's,
    Replace_With may refer to groups as \\1). An expression that backtracks too long is stopped
    and a result over MAX_TEXT characters refused, as strings.py's nodes do."""
    category = f"{ROOT}/Functions/String Operations"
    Text: str = _line()
    Pattern: str = _line()
    Replace_With: str = _line()
    Mode: str = Choice(("Strict", "RegEx"), "Strict")
    outputs = {"TEXT": STRING}
    comfy = ComfyAlias(("DF_String_Replace", "String Replace"))

    def run(self):
        if self.Mode == "Strict":
            return replaced_in_turn(self.Text, [(self.Pattern, self.Replace_With)], ["Replace_With"])
        # pysssss's regex replacement is re.sub(pattern, replace, text) too
        return regex_replace(self.Text, self.Pattern, self.Replace_With, "Pattern", "Replace_With")


# -- debug --------------------------------------------------------------------------------------


def _text(value) -> str:
    """str(value), or the message of Python's refusal to write it (an int of over 4300 digits), as
    the pack's To text (Debug) gives it instead."""
    try:
        return str(value)
    except Exception as e:  # as the pack: whatever str() raises becomes the text
        return str(e)


class DerfuuToText(Node):
    """Show any value as text, as Derfuu's To text (Debug) does: passes the value on and gives
    its text (str()); the text is printed on the server's console and shown on the node (the
    first SHOWN_TEXT characters). A value Python won't write as text gives that error's message.
    ComfyUI runs the pack's node on every queue (its IS_CHANGED); here it runs again when its
    input changes, like other nodes."""
    category = f"{ROOT}/Debug"
    output_node = True
    ANY: ANY
    outputs = {"SAME AS INPUT": ANY, "STRING": STRING}
    comfy = ComfyAlias(("DF_To_text_(Debug)", "To text (Debug)"))

    def run(self):
        text = _text(self.ANY)
        print(f"[DEBUG]: {text[:SHOWN_TEXT]}")
        show(text=[text[:SHOWN_TEXT]])
        return self.ANY, text


class _DebugPrint(Node):
    """The pack's earlier "... debug print" nodes: "Prefix: value" printed and shown."""
    category = f"{ROOT}/Debug"
    output_node = True
    Prefix: str = _line()

    def printed(self, value):
        text = f"{self.Prefix}: {_text(value)}"[:SHOWN_TEXT]
        print(text)
        show(text=[text])


class DerfuuFloatDebugPrint(_DebugPrint):
    """Print "Prefix: Value" on the server's console (and show it on the node), as Derfuu's
    earlier Float debug print does."""
    Value: float = _number()
    comfy = ComfyAlias(("Float debug print",))

    def run(self):
        self.printed(self.Value)


class DerfuuIntDebugPrint(_DebugPrint):
    """Print "Prefix: Value" on the server's console (and show it on the node), as Derfuu's
    earlier Int debug print does."""
    Value: int = _whole_number()
    comfy = ComfyAlias(("Int debug print",))

    def run(self):
        self.printed(self.Value)


class DerfuuTupleDebugPrint(_DebugPrint):
    """Print "Prefix: Values" on the server's console (and show it on the node), as Derfuu's
    earlier Tuple debug print does."""
    Values: TUPLE
    comfy = ComfyAlias(("Tuple debug print",))

    def run(self):
        self.printed(self.Values)


class DerfuuStringDebugPrint(_DebugPrint):
    """Print "Prefix: Text" on the server's console (and show it on the node), as Derfuu's
    earlier String debug print does."""
    Text: str = _line()
    comfy = ComfyAlias(("String debug print",))

    def run(self):
        self.printed(self.Text)


# -- random, converters -------------------------------------------------------------------------


class DerfuuRandom(Node):
    """A random number between Value_A and Value_B, as Derfuu's Random draws it: numpy's uniform
    after seeding numpy with seed (so the same seed gives the same number; the pack seeds numpy's
    global generator, here a generator of the node's own is seeded the same way). Saves from the
    pack's earliest versions, which had no seed and drew anew each run, get seed 0."""
    category = f"{ROOT}/Functions"
    Value_A: float = _number(0.0)
    Value_B: float = _number(1.0)
    seed: int = Int(0, min=0, max=2 ** 32 - 1)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("DF_Random", "Random"))

    def run(self):
        import numpy as np
        return _finite("uniform", np.random.RandomState(self.seed).uniform, self.Value_A, self.Value_B,
                       names=("Value_A", "Value_B"))


class DerfuuIntToFloat(Node):
    """A whole number as a float, as Derfuu's Int to Float gives it."""
    category = f"{ROOT}/Functions/Converters"
    Value: int = _whole_number()
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("DF_Int_to_Float", "Int to float"))

    def run(self):
        return float(self.Value)


class DerfuuCeil(Node):
    """The smallest whole number not below Value (math.ceil), as Derfuu's Ceil gives it; one
    past +-INT_LIMIT is an error."""
    category = f"{ROOT}/Functions/Converters"
    Value: float = _number()
    outputs = {"INT": INT}
    comfy = ComfyAlias(("DF_Ceil", "Ceil"))

    def run(self):
        return _whole(math.ceil(self.Value), "Value")


class DerfuuFloor(Node):
    """The largest whole number not above Value (math.floor), as Derfuu's Floor gives it; one
    past +-INT_LIMIT is an error."""
    category = f"{ROOT}/Functions/Converters"
    Value: float = _number()
    outputs = {"INT": INT}
    comfy = ComfyAlias(("DF_Floor", "Floor"))

    def run(self):
        return _whole(math.floor(self.Value), "Value")


class DerfuuAbsoluteValue(Node):
    """|Value|, or -|Value| with negative_out true, as Derfuu's Absolute value means to give it
    (the pack's own function names the switch Get_negative, so ComfyUI fails to call it; here
    negative_out does what it says)."""
    category = f"{ROOT}/Functions/Converters"
    Value: float = _number()
    negative_out: bool = Choice((False, True), False)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("DF_Absolute_value", "Absolute value"))

    def run(self):
        return -abs(self.Value) if self.negative_out else abs(self.Value)


# -- sizes ----------------------------------------------------------------------------------------


class DerfuuGetLatentSize(Node):
    """A latent's width and height, as Derfuu's Get latent size gives them: in pixels (its size
    times 8), or with original true in latent pixels. Video latents are refused."""
    category = f"{ROOT}/Functions"
    latent: LATENT
    original: bool = Choice((False, True), False)
    outputs = {"WIDTH": INT, "HEIGHT": INT}
    comfy = ComfyAlias(("DF_Get_latent_size",))

    def run(self):
        x = _samples(self.latent, "latent")
        scale = 1 if self.original else 8
        return x.shape[3] * scale, x.shape[2] * scale


class DerfuuGetLatentSizeTuple(DerfuuGetLatentSize):
    """A latent's width and height, as Derfuu's earlier Get latent size gives them: in pixels
    (its size times 8), or with original true in latent pixels, and the pair as a TUPLE. Video
    latents are refused. Its outputs are named WIDTH, HEIGHT, TUPLE in this editor; ComfyUI names
    the pack's (which has no names for them) by their types, INT, INT, TUPLE, and so do UI saves
    written back (labels only: links go by position)."""
    outputs = {"WIDTH": INT, "HEIGHT": INT, "TUPLE": TUPLE}
    comfy = ComfyAlias(("Get latent size",), output_names=("INT", "INT", "TUPLE"))

    def run(self):
        width, height = super().run()
        return width, height, (width, height)


class DerfuuGetImageSize(Node):
    """An image batch's width and height, as Derfuu's Get image size gives them."""
    category = f"{ROOT}/Functions"
    image: IMAGE
    outputs = {"WIDTH": INT, "HEIGHT": INT}
    comfy = ComfyAlias(("DF_Get_image_size",))

    def run(self):
        image = _image(self.image, "image")
        return image.shape[2], image.shape[1]


class DerfuuGetImageSizeTuple(DerfuuGetImageSize):
    """An image batch's width and height, as Derfuu's earlier Get image size gives them, and the
    pair as a TUPLE. Its outputs are named WIDTH, HEIGHT, TUPLE in this editor; ComfyUI names the
    pack's (which has no names for them) by their types, INT, INT, TUPLE, and so do UI saves
    written back (labels only: links go by position)."""
    outputs = {"WIDTH": INT, "HEIGHT": INT, "TUPLE": TUPLE}
    comfy = ComfyAlias(("Get image size",), output_names=("INT", "INT", "TUPLE"))

    def run(self):
        width, height = super().run()
        return width, height, (width, height)


# -- math -----------------------------------------------------------------------------------------


class _TwoValues(Node):
    """Value_A and Value_B, the pack's two-number math nodes' inputs."""
    category = f"{ROOT}/Math"
    Value_A: float = _number()
    Value_B: float = _number()
    outputs = {"FLOAT": FLOAT}


class DerfuuSum(_TwoValues):
    """Value_A + Value_B, as Derfuu's Sum gives it."""
    comfy = ComfyAlias(("DF_Sum", "Sum"))

    def run(self):
        return _finite("sum", lambda a, b: a + b, self.Value_A, self.Value_B, names=("Value_A", "Value_B"))


class DerfuuSubtract(_TwoValues):
    """Value_A - Value_B, as Derfuu's Subtract gives it."""
    comfy = ComfyAlias(("DF_Subtract", "Subtract"))

    def run(self):
        return _finite("subtraction", lambda a, b: a - b, self.Value_A, self.Value_B, names=("Value_A", "Value_B"))


class DerfuuMultiply(_TwoValues):
    """Value_A * Value_B, as Derfuu's Multiply gives it."""
    comfy = ComfyAlias(("DF_Multiply", "Multiply"))

    def run(self):
        return _finite("product", lambda a, b: a * b, self.Value_A, self.Value_B, names=("Value_A", "Value_B"))


class DerfuuDivide(Node):
    """Numerator / Denominator, as Derfuu's Divide gives it; a Denominator of 0 is an error
    naming it (the pack fails there too, with Python's ZeroDivisionError)."""
    category = f"{ROOT}/Math"
    Numerator: float = _number()
    Denominator: float = _number()
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("DF_Divide", "Divide"))

    def run(self):
        return _finite("division", lambda a, b: a / b, self.Numerator, self.Denominator,
                       names=("Numerator", "Denominator"))


class DerfuuPower(Node):
    """Value to the power Exponent (math.pow, on floats: it can't grow without bound), as
    Derfuu's Power gives it. A negative Value to a fractional power (no real result) is an
    error naming Value, one too big for a float an error naming Exponent."""
    category = f"{ROOT}/Math"
    Value: float = _number()
    Exponent: float = _number()
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("DF_Power", "Power"))

    def run(self):
        return _finite("power", math.pow, float(self.Value), float(self.Exponent), names=("Value", "Exponent"))


class DerfuuSquareRoot(Node):
    """The square root of Value and its negative, as Derfuu's Square root gives them; a negative
    Value is an error naming it. The outputs are named FLOAT and negative in this editor; ComfyUI
    names the pack's (which has no names for them) by their type, FLOAT and FLOAT, and so do UI
    saves written back (labels only: links go by position)."""
    category = f"{ROOT}/Math"
    Value: float = _number()
    outputs = {"FLOAT": FLOAT, "negative": FLOAT}
    comfy = ComfyAlias(("DF_Square_root", "Square root"), output_names=("FLOAT", "FLOAT"))

    def run(self):
        root = _finite("square root", math.sqrt, self.Value, names=("Value",))
        return root, -root


def _trigonometry(name: str, forward, inverse, value: float, type_: str, arc: bool) -> float:
    """The pack's trigonometry: value taken as degrees with type_ DEG (converted to radians
    first, before the arc function too), then the function or, with arc, its inverse."""
    if type_ == "DEG":
        value = math.radians(value)
    return _finite(f"arc{name}" if arc else name, inverse if arc else forward, value, names=("value",))


class DerfuuSinus(Node):
    """sin(value), or with arcSin asin(value) (in radians), as Derfuu's Sinus gives it. With
    type_ DEG the value is read as degrees, as in the pack also before asin (which then takes
    the degrees' radians); asin of a number outside -1..1 is an error naming value."""
    category = f"{ROOT}/Math/Trigonometry"
    value: float = _number()
    type_: str = Choice(("RAD", "DEG"), "RAD")
    arcSin: bool = Choice((False, True), False)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("DF_Sinus", "Sinus"))

    def run(self):
        return _trigonometry("sin", math.sin, math.asin, self.value, self.type_, self.arcSin)


class DerfuuCosines(Node):
    """cos(value), or with arcCos acos(value) (in radians), as Derfuu's Cosines gives it. With
    type_ DEG the value is read as degrees, as in the pack also before acos (which then takes
    the degrees' radians); acos of a number outside -1..1 is an error naming value."""
    category = f"{ROOT}/Math/Trigonometry"
    value: float = _number()
    type_: str = Choice(("RAD", "DEG"), "RAD")
    arcCos: bool = Choice((False, True), False)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("DF_Cosines", "Cosines"))

    def run(self):
        return _trigonometry("cos", math.cos, math.acos, self.value, self.type_, self.arcCos)


class DerfuuTangent(Node):
    """tan(value), or with arcTan atan(value) (in radians), as Derfuu's Tangent gives it. With
    type_ DEG the value is read as degrees, as in the pack also before atan (which then takes
    the degrees' radians)."""
    category = f"{ROOT}/Math/Trigonometry"
    value: float = _number()
    type_: str = Choice(("RAD", "DEG"), "RAD")
    arcTan: bool = Choice((False, True), False)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("DF_Tangent", "Tangent"))

    def run(self):
        return _trigonometry("tan", math.tan, math.atan, self.value, self.type_, self.arcTan)


LOGIC_COMPARISONS = {"A > B": operator.gt, "A < B": operator.lt, "A = B": operator.eq}
# the truth of A and of B, as functions: looked at only as far as Python's and / or look
LOGIC_CONNECTIVES = {"A AND B": lambda a, b: a() and b(), "A OR B": lambda a, b: a() or b(),
                     "A XOR B": lambda a, b: a() != b()}
LOGIC_OPERATIONS = (*LOGIC_COMPARISONS, *LOGIC_CONNECTIVES)  # the pack's order


class DerfuuLogicNode(Node):
    """OnTrue when the Operation on CompareValue_A and CompareValue_B holds, else OnFalse, as
    Derfuu's Logic node chooses: A > B, A < B, A = B compare the values (Python's comparison:
    numbers by value, texts alphabetically); AND, OR and XOR their truth (non-zero, non-empty).
    An input left unconnected counts as false, as in the pack. Values that can't be compared (a
    text and a number with >), or have no single truth (an image), are errors naming the input."""
    category = f"{ROOT}/Functions"
    Operation: str = Choice(LOGIC_OPERATIONS, "A > B")
    CompareValue_A: ANY
    CompareValue_B: ANY = None
    OnTrue: ANY = None
    OnFalse: ANY = None
    outputs = {"*": ANY}
    comfy = ComfyAlias(("DF_Logic_node", "Logic node"), optional=("CompareValue_B", "OnTrue", "OnFalse"))

    def run(self):
        a = self.CompareValue_A
        b = False if self.CompareValue_B is None else self.CompareValue_B
        if self.Operation in LOGIC_COMPARISONS:
            try:
                holds = _truth(LOGIC_COMPARISONS[self.Operation](a, b), "CompareValue_A")
            except (TypeError, RuntimeError) as e:
                raise NodeInputError("CompareValue_B", f"{type(a).__name__} and {type(b).__name__} can't be "
                                                       f"compared with {self.Operation} ({e})") from None
        else:
            holds = LOGIC_CONNECTIVES[self.Operation](lambda: _truth(a, "CompareValue_A"),
                                                      lambda: _truth(b, "CompareValue_B"))
        chosen = self.OnTrue if holds else self.OnFalse
        return False if chosen is None else chosen


# -- image and latent scaling ---------------------------------------------------------------------


def _side_size(width: int, height: int, side_length: int, side: str, input_name: str) -> tuple[float, float]:
    """The pack's size for scaling to a side: that side set to side_length, the other following
    the aspect ratio (Longest: the width when wider than high, else the height; Shortest: the
    width when narrower than high, else the height). An empty input (named input_name) has none."""
    if not (width and height):
        raise NodeInputError(input_name, f"has a side of 0 pixels ({width}x{height}): it has no aspect ratio to keep")
    if side == "Longest":
        side = "Width" if width > height else "Height"
    elif side == "Shortest":
        side = "Width" if width < height else "Height"
    if side == "Width":
        return side_length, height / width * side_length
    return width / height * side_length, side_length


def _checked(width: float, height: float, input_name: str, most: int, unit: str = "pixels") -> tuple[int, int]:
    """width x height rounded up (the pack's math.ceil), if each side is 1 to `most`."""
    if not math.isfinite(width + height) or not (1 <= math.ceil(width) <= most and 1 <= math.ceil(height) <= most):
        raise NodeInputError(input_name, f"gives a size of {width:g}x{height:g} {unit}; expected each side "
                                         f"from 1 to {most}")
    return math.ceil(width), math.ceil(height)


def _scaled_image(image, width: int, height: int, method: str, crop: str):
    """The image batch resized as ComfyUI's common_upscale does (bislerp and lanczos included)."""
    return _upscale(image.movedim(-1, 1), width, height, method, crop).movedim(1, -1)


def _image_estimate(size: Size | None, plan) -> Estimate:
    """The output size from `plan` (image width, height -> new width, height), when known."""
    if size is None:
        return Estimate(size)
    try:
        width, height = plan(size.width, size.height)
    except (NodeInputError, TypeError, ValueError, ArithmeticError):
        return Estimate(size)  # run() names the problem
    return Estimate(Size(size.batch, height, width))


class DerfuuImageScaleByRatio(Node):
    """Resize images by upscale_by (each side times it, rounded up), as Derfuu's Image scale by
    ratio does, with ComfyUI's resize methods; crop "center" first crops to the new aspect
    ratio. A size outside 1 to MAX_SIZE pixels a side is an error naming upscale_by, an image with a
    side of 0 pixels (no ratio makes it a size) one naming image."""
    category = f"{ROOT}/Modded nodes/Image"
    image: IMAGE
    upscale_by: float = _number()
    upscale_method: str = Choice(SCALE_METHODS, "nearest-exact")
    crop: str = Choice(CROP_METHODS, "disabled")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("DF_Image_scale_by_ratio", "Image scale by ratio"))

    @staticmethod
    def size(width: int, height: int, upscale_by: float) -> tuple[int, int]:
        if not (width and height):  # no ratio helps: the image is at fault, not upscale_by
            raise NodeInputError("image", f"has a side of 0 pixels ({width}x{height}): no ratio scales it to a size")
        return _checked(width * upscale_by, height * upscale_by, "upscale_by", MAX_SIZE)

    @classmethod
    def estimate(cls, widgets, inputs):
        ratio = widgets.get("upscale_by")
        return _image_estimate(inputs.get("image"), lambda w, h: cls.size(w, h, ratio))

    def run(self):
        image = _image(self.image, "image")
        width, height = self.size(image.shape[2], image.shape[1], self.upscale_by)
        return _scaled_image(image, width, height, self.upscale_method, self.crop)


class DerfuuImageScaleToSide(Node):
    """Resize images so that one side is side_length pixels and the other follows the aspect
    ratio (rounded up), as Derfuu's Image scale to side does: side Width or Height, Longest (the
    width when wider than high, else the height) or Shortest (the width when narrower than high,
    else the height). ComfyUI's resize methods; crop "center" first crops to the new aspect
    ratio. A size outside 1 to MAX_SIZE pixels a side is an error naming side_length, an image
    with a side of 0 pixels (no aspect ratio) one naming image."""
    category = f"{ROOT}/Modded nodes/Image"
    image: IMAGE
    side_length: int = _whole_number()
    side: str = Choice(SIDES, "Longest")
    upscale_method: str = Choice(SCALE_METHODS, "nearest-exact")
    crop: str = Choice(CROP_METHODS, "disabled")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("DF_Image_scale_to_side", "Image scale to side"))

    @staticmethod
    def size(width: int, height: int, side_length: int, side: str) -> tuple[int, int]:
        return _checked(*_side_size(width, height, side_length, side, "image"), "side_length", MAX_SIZE)

    @classmethod
    def estimate(cls, widgets, inputs):
        length, side = widgets.get("side_length"), widgets.get("side")
        return _image_estimate(inputs.get("image"), lambda w, h: cls.size(w, h, length, side))

    def run(self):
        image = _image(self.image, "image")
        width, height = self.size(image.shape[2], image.shape[1], self.side_length, self.side)
        return _scaled_image(image, width, height, self.upscale_method, self.crop)


MAX_LATENT = MAX_SIZE // 8  # latent pixels a side


def _latent_estimate(size: Size | None, plan) -> Estimate:
    """The output size from `plan` (latent width, height -> new latent width, height), in pixels."""
    if size is None:
        return Estimate(size)
    try:
        width, height = plan(size.width // 8, size.height // 8)
    except (NodeInputError, TypeError, ValueError, ArithmeticError):
        return Estimate(size)  # run() names the problem
    return Estimate(Size(size.batch, height * 8, width * 8))


def _scaled_latent(latent: dict, x, width: int, height: int, method: str, crop: str) -> dict:
    out = dict(latent)  # a noise mask and other entries kept, as the pack's copy keeps them
    out["samples"] = _upscale(x, width, height, method, crop)
    return out


class DerfuuLatentScaleByRatio(Node):
    """Resize latents by modifier, as Derfuu's Latent Scale by ratio does: each latent side times
    modifier, plus that product's remainder by 8, cut to a whole number (int(s + s % 8): 64 x 1.5
    gives 96, 64 x 1.3 = 83.2 gives 86). ComfyUI's resize methods; crop "center" first crops to
    the new aspect ratio. A size outside 1 to MAX_SIZE / 8 latent pixels a side is an error
    naming modifier; video latents are refused."""
    category = f"{ROOT}/Modded nodes/Latent"
    latent: LATENT
    modifier: float = _number(least=0.0)
    scale_method: str = Choice(SCALE_METHODS, "nearest-exact")
    crop: str = Choice(CROP_METHODS, "disabled")
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("DF_Latent_Scale_by_ratio", "Latent Scale by ratio"))

    @staticmethod
    def size(width: int, height: int, modifier: float) -> tuple[int, int]:
        width, height = width * modifier, height * modifier
        if math.isfinite(width + height):
            width, height = int(width + width % 8), int(height + height % 8)
        return _checked(width, height, "modifier", MAX_LATENT, "latent pixels")

    @classmethod
    def estimate(cls, widgets, inputs):
        modifier = widgets.get("modifier")
        return _latent_estimate(inputs.get("latent"), lambda w, h: cls.size(w, h, modifier))

    def run(self):
        x = _samples(self.latent, "latent")
        width, height = self.size(x.shape[3], x.shape[2], self.modifier)
        return _scaled_latent(self.latent, x, width, height, self.scale_method, self.crop)


class DerfuuLatentScaleToSide(Node):
    """Resize latents so that one side is side_length pixels (side_length / 8 latent pixels,
    rounded down) and the other follows the aspect ratio, as Derfuu's Latent Scale to side does
    (the pixel size rounded up, then cut to latent pixels): side Width or Height, Longest (the
    width when wider than high, else the height) or Shortest (the width when narrower than high,
    else the height). ComfyUI's resize methods; crop "center" first crops to the new aspect
    ratio. A size outside 1 to MAX_SIZE / 8 latent pixels a side is an error naming side_length,
    a latent with a side of 0 pixels (no aspect ratio) one naming latent; video latents are
    refused."""
    category = f"{ROOT}/Modded nodes/Latent"
    latent: LATENT
    side_length: int = _whole_number(512)
    side: str = Choice(SIDES, "Longest")
    scale_method: str = Choice(SCALE_METHODS, "nearest-exact")
    crop: str = Choice(CROP_METHODS, "disabled")
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("DF_Latent_Scale_to_side", "Latent Scale to side"))

    @staticmethod
    def size(width: int, height: int, side_length: int, side: str) -> tuple[int, int]:
        pixel_width, pixel_height = _side_size(width, height, side_length, side, "latent")
        if math.isfinite(pixel_width + pixel_height):
            pixel_width, pixel_height = math.ceil(pixel_width) // 8, math.ceil(pixel_height) // 8
        return _checked(pixel_width, pixel_height, "side_length", MAX_LATENT, "latent pixels")

    @classmethod
    def estimate(cls, widgets, inputs):
        length, side = widgets.get("side_length"), widgets.get("side")
        return _latent_estimate(inputs.get("latent"), lambda w, h: cls.size(w, h, length, side))

    def run(self):
        x = _samples(self.latent, "latent")
        width, height = self.size(x.shape[3], x.shape[2], self.side_length, self.side)
        return _scaled_latent(self.latent, x, width, height, self.scale_method, self.crop)


# -- conditioning ---------------------------------------------------------------------------------


class DerfuuConditioningAreaScaleByRatio(Node):
    """Scale the areas of a conditioning (ConditioningSetArea's) by modifier and their strength
    by strength_modifier, as Derfuu's Conditioning area scale by ratio does: each of height,
    width, y, x becomes int(value x 8 x modifier) // 8 latent pixels. An entry without an area
    is passed on as it is. Unlike the pack, an entry with an area but no strength counts strength
    1 (the pack fails), a percentage area (ConditioningSetAreaPercentage's, on which the pack
    fails) is an error naming conditioning, and the pack's min_sigma / max_sigma keys (0 and 99,
    read by no sampler here) are not added."""
    category = f"{ROOT}/Modded nodes/Conditions"
    conditioning: CONDITIONING
    modifier: float = _number()
    strength_modifier: float = _number()
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("DF_Conditioning_area_scale_by_ratio", "Conditioning area scale by ratio"))

    def run(self):
        scaled = []
        for cond, options in self.conditioning:
            area = options.get("area")
            if area is None:
                scaled.append((cond, options))
                continue
            if len(area) != 4 or not all(isinstance(v, (int, float)) for v in area):
                raise NodeInputError("conditioning", f"its area {area!r} is not (height, width, y, x) in latent "
                                                     "pixels (a percentage area can't be scaled by a ratio)")
            pixels = [v * 8 * self.modifier for v in area]
            new_area = tuple(int(p) // 8 for p in pixels) if all(map(math.isfinite, pixels)) else None
            if new_area is None or min(new_area) < 0 or max(new_area) > MAX_LATENT:
                raise NodeInputError("modifier", f"scales the area {tuple(area)} (height, width, y, x) past "
                                                 f"latent sizes from 0 to {MAX_LATENT}")
            strength = _finite("strength", lambda s, m: s * m, options.get("strength", 1.0), self.strength_modifier,
                               names=("conditioning", "strength_modifier"))
            scaled.append((cond, {**options, "area": new_area, "strength": strength}))
        return scaled


# -- tuples (the pack's earlier versions) ---------------------------------------------------------


def _pair(value, input_name: str) -> tuple:
    """A TUPLE's two numbers."""
    if not isinstance(value, (tuple, list)) or len(value) != 2 or \
            not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
        raise NodeInputError(input_name, f"expected a TUPLE of two finite numbers, got {value!r:.80}")
    return tuple(value)


TUPLE_ROUNDING = {"No": lambda v: v, "Yes": round, "Ceil": math.ceil, "Floor": math.floor}


class DerfuuTuple(Node):
    """Two numbers as a TUPLE, as Derfuu's Tuple makes it: as they are (round_ No), rounded
    (Yes: Python's round, halves to even), or to whole numbers up (Ceil) or down (Floor); a whole
    number past +-INT_LIMIT is an error."""
    category = f"{ROOT}/Tuples"
    Value_A: float = _number()
    Value_B: float = _number()
    round_: str = Choice(tuple(TUPLE_ROUNDING), "No")
    outputs = {"TUPLE": TUPLE}
    comfy = ComfyAlias(("Tuple",))

    def run(self):
        a, b = (TUPLE_ROUNDING[self.round_](v) for v in (self.Value_A, self.Value_B))
        if self.round_ != "No":
            a, b = _whole(a, "Value_A"), _whole(b, "Value_B")
        return a, b


class DerfuuIntToTuple(Node):
    """Two whole numbers as a TUPLE, as Derfuu's Int to tuple makes it."""
    category = f"{ROOT}/Tuples"
    Value_A: int = _whole_number()
    Value_B: int = _whole_number()
    outputs = {"TUPLE": TUPLE}
    comfy = ComfyAlias(("Int to tuple",))

    def run(self):
        return self.Value_A, self.Value_B


class DerfuuTupleToFloats(Node):
    """A TUPLE's two numbers, as Derfuu's Tuple to floats gives them (as floats here; the pack
    passes whole numbers on as they are). The outputs are named A and B in this editor; ComfyUI
    names the pack's (which has no names for them) by their type, FLOAT and FLOAT, and so do UI
    saves written back (labels only: links go by position)."""
    category = f"{ROOT}/Tuples"
    Tuple: TUPLE
    outputs = {"A": FLOAT, "B": FLOAT}
    comfy = ComfyAlias(("Tuple to floats",), output_names=("FLOAT", "FLOAT"))

    def run(self):
        a, b = _pair(self.Tuple, "Tuple")
        return float(a), float(b)


class DerfuuTupleToInts(Node):
    """A TUPLE's two numbers cut to whole numbers toward zero (int()), as Derfuu's Tuple to ints
    gives them; one past +-INT_LIMIT is an error. The outputs are named A and B in this editor;
    ComfyUI names the pack's (which has no names for them) by their type, INT and INT, and so do UI
    saves written back (labels only: links go by position)."""
    category = f"{ROOT}/Tuples"
    Tuple: TUPLE
    outputs = {"A": INT, "B": INT}
    comfy = ComfyAlias(("Tuple to ints",), output_names=("INT", "INT"))

    def run(self):
        a, b = _pair(self.Tuple, "Tuple")
        return _whole(int(a), "Tuple"), _whole(int(b), "Tuple")


class DerfuuTupleSwap(Node):
    """A TUPLE with its two numbers swapped, as Derfuu's Tuple swap gives it."""
    category = f"{ROOT}/Tuples"
    Tuple: TUPLE
    outputs = {"TUPLE": TUPLE}
    comfy = ComfyAlias(("Tuple swap",))

    def run(self):
        a, b = _pair(self.Tuple, "Tuple")
        return b, a


class DerfuuTupleMultiply(Node):
    """A TUPLE's two numbers each times Value, as Derfuu's Tuple multiply gives them (floats)."""
    category = f"{ROOT}/Tuples"
    Tuple: TUPLE
    Value: float = _number()
    outputs = {"TUPLE": TUPLE}
    comfy = ComfyAlias(("Tuple multiply",))

    def run(self):
        a, b = _pair(self.Tuple, "Tuple")
        return tuple(_finite("product", lambda v, m: v * m, float(v), self.Value, names=("Tuple", "Value"))
                     for v in (a, b))


def _place(pair: tuple, input_name: str, most: int) -> tuple[int, int]:
    """A TUPLE of pixel sizes or positions as whole numbers (int(), as the pack takes them), 0 to `most`."""
    a, b = (int(v) for v in _pair(pair, input_name))
    if not (0 <= a <= most and 0 <= b <= most):
        raise NodeInputError(input_name, f"expected pixel values from 0 to {most}, got {(a, b)}")
    return a, b


class DerfuuConditioningSetAreaWithTuples(Node):
    """Set a conditioning's area from TUPLEs, as Derfuu's ConditioningSetArea with tuples does:
    size_tuple is (width, height), offset_tuple (x, y), in pixels (cut to multiples of 8), with
    strength; it is ConditioningSetArea on those numbers (the pack's min_sigma / max_sigma keys,
    read by no sampler here, are not added). Negative or over-MAX_SIZE values are errors."""
    category = f"{ROOT}/Tuples/Modded nodes/Conditioning"
    conditioning: CONDITIONING
    size_tuple: TUPLE
    offset_tuple: TUPLE
    strength: float = _number()
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetArea with tuples",))

    def run(self):
        width, height = _place(self.size_tuple, "size_tuple", MAX_SIZE)
        x, y = _place(self.offset_tuple, "offset_tuple", MAX_SIZE)
        return _core(ConditioningSetArea, conditioning=self.conditioning, width=width, height=height, x=x, y=y,
                     strength=self.strength)


class DerfuuLatentCompositeWithTuples(Node):
    """Paste samples_from into samples_to at position_tuple's (x, y) pixels, feathering the edges
    over `feather` pixels, as Derfuu's LatentComposite with tuples does: ComfyUI's LatentComposite
    on those numbers. A negative feather is none, as in the pack (its fade loop never runs);
    negative or over-MAX_SIZE positions, or a feather over MAX_SIZE, are errors."""
    category = f"{ROOT}/Tuples/Modded nodes/Latents"
    samples_to: LATENT
    samples_from: LATENT
    position_tuple: TUPLE
    feather: int = _whole_number()
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("LatentComposite with tuples",))

    def run(self):
        x, y = _place(self.position_tuple, "position_tuple", MAX_SIZE)
        if self.feather > MAX_SIZE:
            raise NodeInputError("feather", f"expected at most {MAX_SIZE} pixels, got {self.feather}")
        return _core(LatentComposite, samples_to=self.samples_to, samples_from=self.samples_from, x=x, y=y,
                     feather=max(0, self.feather))
