"""Primitive values: feed one number or text into several widget inputs, and show text or any
value as text."""

import json
import sys

from graphflow.api import ANY, BOOLEAN, FLOAT, INT, STRING, Bool, ComfyAlias, Float, Int, ListOf, Node, Text, show


class IntValue(Node):
    """An integer to link into widget inputs (a shared seed, a size)."""
    category = "primitives"
    value: int = Int(0, min=-(2**63), max=2**64 - 1, control_after_generate=True)
    outputs = {"value": INT}
    comfy = ComfyAlias(("PrimitiveInt",))

    def run(self):
        return self.value


class FloatValue(Node):
    """A number to link into widget inputs (cfg, denoise, strengths)."""
    category = "primitives"
    value: float = Float(0.0, step=0.01)
    outputs = {"value": FLOAT}
    comfy = ComfyAlias(("PrimitiveFloat",))

    def run(self):
        return self.value


class TextValue(Node):
    """Text to link into widget inputs (a prompt shared by several encoders)."""
    category = "primitives"
    text: str = Text("", multiline=True)
    outputs = {"text": STRING}
    comfy = ComfyAlias(("PrimitiveStringMultiline", "PrimitiveString"), inputs={"value": "text"})

    def run(self):
        return self.text


class BoolValue(Node):
    """True or false, to link into toggle inputs."""
    category = "primitives"
    value: bool = Bool(False)
    outputs = {"value": BOOLEAN}
    comfy = ComfyAlias(("PrimitiveBoolean",))

    def run(self):
        return self.value


class ShowText(Node):
    """Show text (a report, a statistic) in the editor and on the command line."""
    category = "primitives"
    output_node = True
    text: str = Text("", multiline=True)

    def run(self):
        show(text=[self.text])


class PreviewAny(Node):
    """Show any value as text, as ComfyUI's Preview as Text does: text as it is, numbers and
    true/false as written, lists and dicts of plain values as indented JSON, anything else
    (tensors, conditioning, models) as Python prints it."""
    category = "utils"
    output_node = True
    source: ANY
    comfy = ComfyAlias(("PreviewAny",))

    def run(self):
        show(text=[as_text(self.source)])


class ShowLinkedText(Node):
    """Show linked text in the editor and pass it on, as pysssss's Show Text does: a list of
    texts is taken whole, shown item by item, and given on as the same list."""
    category = "utils"
    output_node = True
    input_is_list = True
    text: STRING
    outputs = {"text": ListOf(STRING)}
    comfy = ComfyAlias(("ShowText|pysssss",))

    def run(self):
        texts = [str(t) for t in self.text]
        show(text=texts)
        return texts


class DisplayAny(Node):
    """Show any value as one line of text, as rgthree's Display Any does: text as it is,
    numbers and true/false as written, lists and dicts of plain values as compact JSON,
    anything else as Python prints it."""
    category = "utils"
    output_node = True
    source: ANY
    comfy = ComfyAlias(("Display Any (rgthree)",))

    def run(self):
        value = self.source
        if isinstance(value, (str, int, float, bool)) or value is None:
            shown = as_text(value)
        else:
            try:
                shown = json.dumps(value, ensure_ascii=False)
            except (TypeError, ValueError):
                try:
                    shown = str(value)
                except Exception:  # a value whose str() fails
                    shown = "source exists, but could not be serialized."
        show(text=[shown])


def as_text(value) -> str:
    """PreviewAny's text of a value."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    try:
        return json.dumps(value, indent=4)
    except Exception:  # whatever stops JSON (a tensor inside, nesting too deep) falls back to str(), as ComfyUI's
        pass
    torch = sys.modules.get("torch")  # a tensor in the value means torch is loaded already
    if torch is not None:
        torch.set_printoptions(edgeitems=6)  # ComfyUI shows 6 numbers at each end
    try:
        return str(value)
    except Exception:  # a value whose str() fails
        return "source exists, but could not be serialized."
    finally:
        if torch is not None:
            torch.set_printoptions(profile="default")
