"""Two small value packs under their class names, inputs and outputs.

mxToolkit (Smirnov75/ComfyUI-mxToolkit): mxSlider, mxSlider2D, mxSeed and mxStop. Read from the
stored mxtoolkit.py (index id 14748440549, "mxToolkit - Max Smirnov 2024"; the index names no
commit for it) and the editor scripts js/Slider.js at 38773a6f7be5f79e5dad8924aa7617d65dcb2a89,
js/Seed.js and js/StopProc.js at 273c6b2ed28bd52030d501083509626131299b08. The sliders and the
seed keep their value in the node's properties in a UI save and copy it into their (hidden)
widgets whenever it changes, and the editor sends those widgets in an API prompt: so both
formats are read from the widgets (Xi, Xf, isfloatX ...; X). The pack's mxReroute is an
editor-only node: a UI save's link runs through it (graphflow/comfy_pack_nodes.py); its settings
page is the editor's.

ComfyUI-Logic (theUpsider/ComfyUI-Logic): Compare, Int, Float, Bool, String, "If ANY execute A
else B" and DebugPrint, under both the bare names of its earlier versions (read from the stored
copy index id 5109794068) and the "-🔬" names of nodes.py at
2159d64567c1445d3ff375b5de90b127ee0e56e0 (String's box multiline there). "If ANY return A else
B-🔬" is the If node (IfExecute: IF_TRUE or IF_FALSE by ANY), as the pack's README and its
later versions have it; at 2159d64 a second entry of that name in the class table (IfExecuteNode,
which runs another node class by name with no inputs and fails in the pack itself) overrode it,
and a save of that one (ANY with NODE_TRUE / NODE_FALSE choices) is refused here naming them."""

from __future__ import annotations

from graphflow.api import ANY, BOOLEAN, FLOAT, INT, STRING, Bool, Choice, ComfyAlias, Float, Int, Node, \
    NodeInputError, Text, show, stop_after_this_node
from nodes.pack_nodes import INT_LIMIT
from nodes.pack_nodes_easyuse import COMPARISONS  # the same six, names and order, as Logic's Compare

# No COMFY_PACK: this module holds two packs, so each class is named by CUSTOM_PACKS
# (graphflow.comfy_format: "ComfyUI-mxToolkit" by its "mx" prefix, "ComfyUI-Logic" by whole name).

MX_LIMIT = 4294967296  # the sliders' and the seed's widget bounds (2**32)

# -- mxToolkit ---------------------------------------------------------------------------------


class MxSlider(Node):
    """A slider's value, as mxToolkit's Slider gives it: Xf when isfloatX is 1 (the slider has
    decimals), else Xi. The slider itself (its min, max, step and decimals) is the editor's; it
    writes the value into these widgets."""
    category = "utils/mxToolkit"
    Xi: int = Int(20, min=-MX_LIMIT, max=MX_LIMIT)
    Xf: float = Float(20, min=-MX_LIMIT, max=MX_LIMIT)
    isfloatX: int = Int(0, min=0, max=1)
    outputs = {"X": ANY}
    comfy = ComfyAlias(("mxSlider",))

    def run(self):
        return self.Xf if self.isfloatX > 0 else self.Xi


class MxSlider2D(Node):
    """A 2D slider's X and Y, as mxToolkit's Slider 2D gives them: each the float widget when
    its isfloat is 1, else the whole one. The 2D pad itself is the editor's."""
    category = "utils/mxToolkit"
    Xi: int = Int(512, min=-MX_LIMIT, max=MX_LIMIT)
    Xf: float = Float(512, min=-MX_LIMIT, max=MX_LIMIT)
    Yi: int = Int(512, min=-MX_LIMIT, max=MX_LIMIT)
    Yf: float = Float(512, min=-MX_LIMIT, max=MX_LIMIT)
    isfloatX: int = Int(0, min=0, max=1)
    isfloatY: int = Int(0, min=0, max=1)
    outputs = {"X": ANY, "Y": ANY}
    comfy = ComfyAlias(("mxSlider2D",))

    def run(self):
        return (self.Xf if self.isfloatX > 0 else self.Xi), (self.Yf if self.isfloatY > 0 else self.Yi)


class MxSeed(Node):
    """A seed, as mxToolkit's Seed gives it. Drawing a new one, its history of three and
    queueing a run on a click are the pack's editor's; the seed drawn is saved in X."""
    category = "utils/mxToolkit"
    X: int = Int(0, min=0, max=MX_LIMIT)
    outputs = {"X": INT}
    comfy = ComfyAlias(("mxSeed",))

    def run(self):
        return self.X


class MxStop(Node):
    """Stop the run here, as mxToolkit's Stop does: it passes In on and the run ends interrupted
    after it, what ran before it (previews and saves included) done and Stop's own output kept
    in the cache. Run the workflow again with nothing before it changed and Stop, found in the
    cache, doesn't run: the run goes on from there, as the pack's Continue (or Queue) button
    resumes it; a changed input before it stops the run again, and so does a rerun after the
    cache has dropped Stop's output. On a list, Stop passes every item on, then ends the run
    (in ComfyUI, which checks for an interrupt before each item, the pack's Stop ends the run
    at the list's second item, unfinished, every time). Its button itself is the editor's. Going on
    needs the cache of the process that stopped: `graphflow run` starts each time with an empty
    cache, and sweeps and cluster workers keep caches of their own, so there Stop stops every run."""
    category = "utils/mxToolkit"
    In: ANY
    outputs = {"*": ANY}
    comfy = ComfyAlias(("mxStop",))

    def run(self):
        stop_after_this_node()
        return self.In


# -- ComfyUI-Logic -----------------------------------------------------------------------------

SHOWN_TEXT = 10_000  # DebugPrint shows at most this many characters of a value


def _truth(value, input_name: str) -> bool:
    """Python's truth of a value, as the pack tests it; a tensor of several numbers (which
    Python refuses to call true or false) is an error naming the input."""
    try:
        return bool(value)
    except (RuntimeError, ValueError, TypeError) as e:
        raise NodeInputError(input_name, f"{type(value).__name__} has no single true/false value ({e})") from None


class LogicString(Node):
    """A text, as ComfyUI-Logic's String gives it. The bare name "String" is ComfyLiterals'
    class too (its input named String): a prompt or save of either pack runs here, and is
    written back in ComfyUI-Logic's shape (its input `value`, which a ComfyUI with ComfyLiterals
    and without ComfyUI-Logic does not read)."""
    category = "Logic"
    value: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = (ComfyAlias(("String",), inputs={"String": "value", "value": "value"}), ComfyAlias(("String-🔬",)))

    def run(self):
        return self.value


class LogicInt(Node):
    """A whole number, as ComfyUI-Logic's Int gives it. The bare name "Int" is ComfyLiterals'
    class too, whose Number is a text: a prompt or save of either pack runs here, a typed-in
    text read as the whole number it writes (" -12 ", "+3", "1_000", as the pack's int()) and
    any other text ("7.0" too, as the pack's int()) refused, naming the input. Unlike the pack's
    int(): numbers beyond the widget's range (2^64 - 1 either way) are refused. It is written back in
    ComfyUI-Logic's shape (its input `value`), which a ComfyUI with ComfyLiterals and without
    ComfyUI-Logic does not read (its Number is missing there). A text linked into Number is
    refused: the value here is a whole-number widget, which takes INT links only."""
    category = "Logic"
    value: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    outputs = {"INT": INT}
    comfy = (ComfyAlias(("Int",), inputs={"Number": "value", "value": "value"}), ComfyAlias(("Int-🔬",)))

    def run(self):
        return self.value


class LogicFloat(Node):
    """A number, as ComfyUI-Logic's Float gives it. The bare name "Float" is ComfyLiterals'
    class too (Number, a text) and Derfuu's ModdedNodes' (Value): a prompt or save of any of
    them runs here, a typed-in text read as the number it writes ("1.5", "1e3", as the pack's
    float()) and any other text refused, naming the input. Unlike ComfyLiterals' float(), "inf",
    "nan" and a text beyond a float's range ("1e400") are refused on purpose: the widget holds
    finite numbers only. It is written back in ComfyUI-Logic's shape (its input `value`), which a
    ComfyUI with ComfyLiterals and without ComfyUI-Logic does not read (its Number is missing
    there). A text linked into Number is refused: the value here is a number widget (INT or
    FLOAT links)."""
    category = "Logic"
    value: float = Float(0, step=0.01)
    outputs = {"FLOAT": FLOAT}
    comfy = (ComfyAlias(("Float",), inputs={"Number": "value", "Value": "value", "value": "value"}),
             ComfyAlias(("Float-🔬",)))

    def run(self):
        return self.value


class LogicBool(Node):
    """True or false, as ComfyUI-Logic's Bool gives it."""
    category = "Logic"
    value: bool = Bool(False)
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("Bool", "Bool-🔬"))

    def run(self):
        return self.value


class LogicCompare(Node):
    """a compared with b (==, !=, <, >, <=, >=), as ComfyUI-Logic's Compare does, on any two
    values Python compares (numbers, texts ...). Values that can't be ordered (a text and a
    number with <), or whose comparison is not one true/false (two images), are errors."""
    category = "Logic"
    a: ANY
    b: ANY
    comparison: str = Choice(tuple(COMPARISONS), "a == b")
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("Compare", "Compare-🔬"))

    def run(self):
        try:
            result = COMPARISONS[self.comparison](self.a, self.b)
        except TypeError as e:
            raise NodeInputError("b", f"{type(self.a).__name__} and {type(self.b).__name__} can't be compared "
                                      f"with {self.comparison} ({e})") from None
        return _truth(result, "a")


class LogicIfExecute(Node):
    """IF_TRUE when ANY is true (Python's truth: non-zero, non-empty), else IF_FALSE, as
    ComfyUI-Logic's "If ANY execute A else B" (later "If ANY return A else B-🔬") passes them
    on. Both IF_TRUE and IF_FALSE are worked out before the choice, as in the pack (no lazy
    inputs: the branch not taken runs too)."""
    category = "Logic"
    ANY: ANY
    IF_TRUE: ANY
    IF_FALSE: ANY
    outputs = {"?": ANY}
    comfy = ComfyAlias(("If ANY execute A else B", "If ANY return A else B-🔬"))

    def run(self):
        return self.IF_TRUE if _truth(self.ANY, "ANY") else self.IF_FALSE


class LogicDebugPrint(Node):
    """Show a value (its text, the first SHOWN_TEXT characters), as ComfyUI-Logic's DebugPrint
    prints it on the server's console; here it is printed there too and shown on the node. A
    value Python won't write as text (a whole number of over 4300 digits) is an error naming ANY."""
    category = "Logic"
    output_node = True
    ANY: ANY
    outputs = {}
    comfy = ComfyAlias(("DebugPrint", "DebugPrint-🔬"))

    def run(self):
        try:
            text = str(self.ANY)
        except ValueError as e:  # Python's limit on the digits of an int written as text
            raise NodeInputError("ANY", f"{type(self.ANY).__name__} can't be written as text ({e})") from None
        print(text[:SHOWN_TEXT])
        show(text=[text[:SHOWN_TEXT]])
