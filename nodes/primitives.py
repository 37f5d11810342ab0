"""Primitive values: feed one number or text into several widget inputs, and show text."""

from graphflow.api import BOOLEAN, FLOAT, INT, STRING, Bool, Float, Int, Node, Text, show


class IntValue(Node):
    """An integer to link into widget inputs (a shared seed, a size)."""
    category = "primitives"
    value: int = Int(0, min=-(2**63), max=2**64 - 1)
    outputs = {"value": INT}

    def run(self):
        return self.value


class FloatValue(Node):
    """A number to link into widget inputs (cfg, denoise, strengths)."""
    category = "primitives"
    value: float = Float(0.0, step=0.01)
    outputs = {"value": FLOAT}

    def run(self):
        return self.value


class TextValue(Node):
    """Text to link into widget inputs (a prompt shared by several encoders)."""
    category = "primitives"
    text: str = Text("", multiline=True)
    outputs = {"text": STRING}

    def run(self):
        return self.text


class BoolValue(Node):
    """True or false, to link into toggle inputs."""
    category = "primitives"
    value: bool = Bool(False)
    outputs = {"value": BOOLEAN}

    def run(self):
        return self.value


class ShowText(Node):
    """Show text (a report, a statistic) in the editor and on the command line."""
    category = "primitives"
    output_node = True
    text: str = Text("", multiline=True)

    def run(self):
        show(text=[self.text])
