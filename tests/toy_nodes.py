"""Small nodes for engine tests: they count their executions so caching can be checked."""

import threading
from typing import ClassVar
from collections import Counter

from graphflow.api import (INT, STRING, Bool, Choice, Float, Int, Node, NodeInputError, Text,
                           check_interrupted, progress, show, socket_type)

NUMBER = socket_type("TOY_NUMBER", "#123456", "a number for tests")
runs: Counter = Counter()


class Number(Node):
    """A constant number."""
    category = "test"
    value: float = Float(1.0, min=-1000, max=1000)
    outputs = {"number": NUMBER}

    def run(self):
        runs["Number"] += 1
        return self.value


class Add(Node):
    """Add two numbers (b is optional)."""
    category = "test"
    a: NUMBER
    b: NUMBER = None
    outputs = {"sum": NUMBER}

    def run(self):
        runs["Add"] += 1
        return self.a + (self.b if self.b is not None else 0)


class Scale(Node):
    category = "test"
    x: NUMBER
    factor: int = Int(2, min=1, max=10)
    mode: str = Choice(["mul", "pow"], "mul")
    outputs = {"y": NUMBER}

    def run(self):
        runs["Scale"] += 1
        return self.x * self.factor if self.mode == "mul" else self.x ** self.factor


class Split(Node):
    """Two outputs: the integer part (as INT) and a label."""
    category = "test"
    x: NUMBER
    outputs = {"whole": INT, "label": STRING}

    def run(self):
        runs["Split"] += 1
        return int(self.x), f"n={self.x}"


class Repeat(Node):
    category = "test"
    text: str = Text("ab", multiline=True)
    times: int = Int(1, min=1, max=5)
    upper: bool = Bool(False)
    outputs = {"text": STRING}

    def run(self):
        runs["Repeat"] += 1
        out = self.text * self.times
        return out.upper() if self.upper else out


class Show(Node):
    """Output node: shows the number."""
    category = "test"
    output_node = True
    x: NUMBER

    def run(self):
        runs["Show"] += 1
        show(text=[repr(self.x)])


class ShowText(Node):
    category = "test"
    output_node = True
    text: str = Text("")

    def run(self):
        runs["ShowText"] += 1
        show(text=[self.text])


class Fail(Node):
    """Raises unless ok is set."""
    category = "test"
    x: NUMBER
    ok: bool = False
    outputs = {"x": NUMBER}

    def run(self):
        runs["Fail"] += 1
        if not self.ok:
            raise NodeInputError("x", f"refusing {self.x}")
        return self.x


class Clock(Node):
    """Never cacheable: a fresh value every run."""
    category = "test"
    cacheable = False
    outputs = {"tick": NUMBER}

    def run(self):
        runs["Clock"] += 1
        return float(runs["Clock"])


class Slow(Node):
    """Reports progress over `steps` steps; waits on `gate` at step `pause_at` (for interrupt tests)."""
    category = "test"
    x: NUMBER
    steps: int = Int(5, min=1, max=100)
    outputs = {"x": NUMBER}
    gate: ClassVar[threading.Event | None] = None  # set by tests; ClassVar, so not an input

    def run(self):
        runs["Slow"] += 1
        for i in range(1, self.steps + 1):
            if i == 3 and Slow.gate is not None:
                Slow.gate.wait(5)
            progress(i, self.steps)
        return self.x


TOY_NODES = [Number, Add, Scale, Split, Repeat, Show, ShowText, Fail, Clock, Slow]
