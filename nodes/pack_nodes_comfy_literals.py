"""M1kep's ComfyLiterals, under the pack's class names, inputs and outputs, as read at
M1kep/ComfyLiterals (__init__.py at bdddb08ca82d90d75d97b1d437a652e0284a32ac, nodes.py at
292dd793f4aa7d0cce2e35fd9152db6377a32e0e, operations.py at b9d5d79bcaf10d12792bd450bffbd546ebc8e35b):

- Operation: A + B, A - B, A * B or A / B of two linked numbers, each an INT or a FLOAT as its
  type widget says, given as a whole number and as a number.
- Checkpoint and Lora: a typed list of model file names, one a line, given on as a list.
- String (its second class name KepStringLiteral): a text.

The pack's bare "Int", "Float" and "String" are also ComfyUI-Logic's class names; ComfyUI-Logic's
nodes in nodes/pack_nodes_mxlogic.py answer them, reading ComfyLiterals' `Number` / `String`
inputs (a typed-in number text read as the pack's int() / float() read it, "7.0" refused by Int
as there, whole numbers beyond 2^64 - 1 either way refused, and inf, nan and "1e400" refused by
Float on purpose: its widget holds finite numbers; bad text refused naming the input). They are
written back in ComfyUI-Logic's shape (input `value`), which a ComfyUI with ComfyLiterals and
without ComfyUI-Logic does not read. KepStringLiteral, ComfyLiterals' own, is answered here.
Nothing of the pack is left out but its editor script's hiding of the Operation's unused inputs.
"""

from __future__ import annotations

import math

from graphflow.api import ANY, FLOAT, INT, STRING, Choice, ComfyAlias, ListOf, Node, NodeInputError, Text
from nodes.pack_nodes import _list_fits

COMFY_PACK = "ComfyLiterals"  # the custom node pack this module's ComfyUI classes come from

INT64 = (-2 ** 63, 2 ** 63 - 1)  # a whole-number result outside these can't be an INT here
OPERATIONS = {"A+B": lambda a, b: a + b, "A-B": lambda a, b: a - b,
              "A*B": lambda a, b: a * b, "A/B": lambda a, b: a / b}


class LiteralsOperation(Node):
    """A op B, as ComfyLiterals' Operation: A is the linked "A - Int" when A Type is Int, else
    the linked "A - Float" (B likewise); the result is given as a whole number (int(): cut toward
    0, 7 / 2 -> 3) and as a number. The input its type names must be linked; dividing by 0, a
    result that is not finite, and a whole number beyond 64 bits are refused, naming the input."""
    category = "Literals"
    a_type: str = Choice(("Int", "Float"), "Int")
    b_type: str = Choice(("Int", "Float"), "Int")
    operation: str = Choice(tuple(OPERATIONS), "A+B")
    a_int: INT = None
    a_float: FLOAT = None
    b_int: INT = None
    b_float: FLOAT = None
    outputs = {"INT": INT, "FLOAT": FLOAT}
    comfy = ComfyAlias(("Operation",),
                       inputs={"A Type": "a_type", "B Type": "b_type", "Operation": "operation", "A - Int": "a_int",
                               "A - Float": "a_float", "B - Int": "b_int", "B - Float": "b_float"},
                       force_input=("a_int", "a_float", "b_int", "b_float"))

    def operand(self, side: str):
        kind = getattr(self, f"{side}_type")
        name = f"{side}_{kind.lower()}"
        value = getattr(self, name)
        comfy_name = f"{side.upper()} - {kind}"
        if value is None:
            raise NodeInputError(name, f"{side.upper()} Type is {kind}: link a number into {comfy_name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NodeInputError(name, f"expected a number, got {type(value).__name__}")
        return value

    def run(self):
        a, b = self.operand("a"), self.operand("b")
        if self.operation == "A/B" and b == 0:
            raise NodeInputError(f"b_{self.b_type.lower()}", "B is 0: can't divide by it")
        try:
            result = OPERATIONS[self.operation](a, b)
        except OverflowError:
            result = math.inf
        # a whole-number result first: one beyond a float's range would make isfinite() raise (not
        # printed: it may have more digits than str() of an int allows)
        if isinstance(result, int) and not INT64[0] <= result <= INT64[1]:
            raise NodeInputError("operation", f"{self.operation} of the linked whole numbers is beyond a 64-bit "
                                              f"whole number")
        if not math.isfinite(result):
            raise NodeInputError("operation", f"{self.operation} of {a} and {b} is not a finite number")
        whole = int(result)
        if not INT64[0] <= whole <= INT64[1]:
            raise NodeInputError("operation", f"{self.operation} = {whole} is beyond a 64-bit whole number")
        return whole, float(result)


def _names(literal: str) -> list[str]:
    """The pack's parse: the text's lines, empty ones dropped (kept as they are otherwise); more
    than MAX_LIST_ITEMS of them refused, naming `literal` (the pack sets no limit)."""
    names = [line for line in literal.split("\n") if line]
    _list_fits(len(names), "literal")
    return names


class LiteralsCheckpointList(Node):
    """A list of checkpoint names typed one a line, given on one by one (each node fed by it runs
    once per name), as ComfyLiterals' Checkpoint. The names are passed on as written: the loader
    they feed checks them. (The pack fills the box with every checkpoint found when the editor
    loads; here it starts empty.) At most 100,000 names (the pack sets no limit)."""
    category = "List Stuff"
    literal: str = Text("", multiline=True)
    outputs = {"Selected Checkpoints": ListOf(ANY)}
    comfy = ComfyAlias(("Checkpoint",))

    def run(self):
        return _names(self.literal)


class LiteralsLoraList(Node):
    """A list of LoRA names typed one a line, given on one by one, as ComfyLiterals' Lora. The
    names are passed on as written: the loader they feed checks them. (The pack fills the box
    with every LoRA found when the editor loads; here it starts empty.) At most 100,000 names (the
    pack sets no limit)."""
    category = "List Stuff"
    literal: str = Text("", multiline=True)
    outputs = {"Selected Loras": ListOf(ANY)}
    comfy = ComfyAlias(("Lora",))

    def run(self):
        return _names(self.literal)


class LiteralsString(Node):
    """A text, as ComfyLiterals' String under its own class name KepStringLiteral (its bare
    "String" is answered by ComfyUI-Logic's String, which reads the same input)."""
    category = "Literals"
    text: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("KepStringLiteral",), inputs={"String": "text"})

    def run(self):
        return self.text
