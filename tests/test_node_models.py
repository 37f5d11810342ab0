"""Node classes' pydantic models: a built-in node's (graphflow.node's LAZY_MODEL_MODULES) built on
first use, any other's (a plugin's) at declaration, the same models either way; and the declared
inputs read from each class's own annotations as typing.get_type_hints reads them."""

import sys
import threading
import types
import warnings
from typing import ClassVar, get_type_hints

import pytest

import graphflow.node as node_module
from graphflow.api import INT, Bool, Choice, Float, Int, Node, NodeDeclarationError, Text
from graphflow.types import IMAGE
from graphflow.registry import Registry
from graphflow.validation import validate
from graphflow.workflow import parse_workflow

LAZY_MODULE = "nodes.test_node_models"  # a built-in node's module name: its models wait for first use


def _declare(module: str) -> list[type[Node]]:
    """The same nodes, declared as if in `module`: a source of numbers, a node with every kind of
    widget, and its subclass with one more widget."""

    class Count(Node):
        __module__ = module
        value: int = Int(1, min=-10**6, max=10**6)
        outputs = {"value": INT}

        def run(self):
            return self.value

    class Sized(Node):
        __module__ = module
        output_node = True
        width: int = Int(512, min=16, max=4096, step=8, linked_min=1)
        strength: float = Float(0.5, min=0.0, max=1.0, linked_nonfinite=True)
        name: str = Text("out", file_name=True)
        mode: str = Choice(["fast", "slow"], "fast")
        flip: bool = Bool(False)
        image: IMAGE = None
        outputs = {"image": IMAGE}

        def run(self):
            return self.image

    class SizedSteps(Sized):
        __module__ = module
        steps: int = Int(20, min=1, max=100)

    return [Count, Sized, SizedSteps]


def _problems(classes: list[type[Node]]) -> list[dict]:
    registry = Registry()
    for cls in classes:
        registry.add(cls, source="tests")
    # the parent validated first: its model must not become its subclass's
    bad = {"width": 8, "strength": 2.0, "name": "../x", "mode": "medium", "flip": "maybe"}
    workflow = parse_workflow({"nodes": {
        "a": {"type": "Sized", "inputs": bad},
        "b": {"type": "SizedSteps", "inputs": {**bad, "steps": 0}},
        "c": {"type": "SizedSteps", "inputs": {"width": "7.0", "steps": 101}},
        "n": {"type": "Count", "inputs": {"value": 3}},
        "d": {"type": "Sized", "inputs": {"width": ["n", 0], "strength": float("nan")}},
    }})
    return [p.to_dict() for p in validate(workflow, registry)]


@pytest.fixture(scope="module")
def problems():
    return {"lazy": _problems(_declare(LAZY_MODULE)), "eager": _problems(_declare(__name__))}


def test_a_builtin_node_builds_its_models_on_first_use_and_another_at_declaration(monkeypatch):
    built = []
    create_model = node_module.create_model
    monkeypatch.setattr(node_module, "create_model",
                        lambda model, /, **fields: built.append(model) or create_model(model, **fields))
    lazy = _declare(LAZY_MODULE)
    assert built == []
    _declare(__name__)  # a plugin's: a declaration pydantic refuses fails its import
    assert built == ["CountWidgets", "SizedWidgets", "SizedLinkedWidgets", "SizedStepsWidgets",
                     "SizedStepsLinkedWidgets"]
    built.clear()
    _problems(lazy)
    assert sorted(built) == ["CountWidgets", "SizedStepsWidgets", "SizedWidgets", "SizedWidgetsLinking"]


def test_a_lazily_built_model_gives_the_problems_of_one_built_at_declaration(problems):
    assert problems["lazy"] == problems["eager"]
    found = {(p["node_id"], p["input"]) for p in problems["lazy"]}
    for node in "ab":
        assert {(node, name) for name in ("width", "strength", "name", "mode", "flip")} <= found
    assert {("b", "steps"), ("c", "width"), ("c", "steps"), ("d", "strength")} <= found
    assert ("a", "steps") not in found and not any(p["node_id"] == "n" for p in problems["lazy"])
    steps = next(p["message"] for p in problems["lazy"] if (p["node_id"], p["input"]) == ("c", "steps"))
    assert steps == "got 101; expected an integer from 1 to 100"


def test_a_subclass_gets_its_own_model_after_its_parents_was_built():
    count, sized, steps = _declare(LAZY_MODULE)
    assert "steps" not in sized.widget_model.model_fields
    assert set(steps.widget_model.model_fields) == {"width", "strength", "name", "mode", "flip", "steps"}
    assert steps.linked_widget_model.model_validate({"width": 1}).width == 1  # linked_min
    assert count.linked_widget_model is count.widget_model  # no linked hints: one model


def test_every_builtin_node_builds_its_models_without_a_warning(builtin_registry):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cls in builtin_registry:
            widgets = {name for name, spec in cls.input_specs.items() if spec.widget}
            assert set(cls.widget_model.model_fields) == widgets, cls.node_type
            assert set(cls.linked_widget_model.model_fields) == widgets, cls.node_type


def _assert_own_hints_are_get_type_hints(cls):
    for klass in cls.__mro__:
        if klass not in (Node, object):  # a mixin after Node too
            own = klass.__dict__.get("__annotations__", {})
            every = get_type_hints(klass, include_extras=True)
            assert node_module._own_hints(klass) == {name: every[name] for name in own}, klass


def test_own_annotations_read_as_get_type_hints_reads_them(builtin_registry):
    for cls in builtin_registry:
        _assert_own_hints_are_get_type_hints(cls)


MIXINS = """
from typing import ClassVar
from graphflow.api import Node
from graphflow.types import MASK

Soft = MASK  # named in this module only


class Masked(Node):
    mask: Soft = None

    def run(self):
        return None


class Helper:  # no node: its annotations are read, and are no inputs
    helper: dict[str, int]
    calls: ClassVar[int] = 0
    alias: "Soft"
"""

DECLARATIONS = """
from typing import Annotated, ClassVar
import graphflow.types as types_module
from graphflow.api import Bool, Float, Int, Node, Text
from graphflow.types import IMAGE, LATENT
from {mixins} import Helper, Masked


class Base(Node):
    steps: int = Int(20, min=1)
    strength: float = Float(0.5)
    image: IMAGE = None
    count: ClassVar[int] = 0
    _private: int = 0
    outputs = {{"image": IMAGE}}

    def run(self):
        return self.image


class Overridden(Base):  # inherited inputs declared again, as other kinds
    steps: float = Float(1.5)
    image: LATENT = None
    name: str = Text("x")


class ClassAttribute(Node):
    Kind = IMAGE
    picture: Kind = None  # a class attribute as an annotation
    mask: types_module.MASK = None
    quoted: "bool" = Bool(True)
    extras: Annotated[int, "a note"] = Int(1)

    def run(self):
        return None


class ShadowedInt(Node):
    int = float
    amount: int = Float(0.25)

    def run(self):
        return None


class Mixed(Overridden, Masked, Helper):  # Node comes before Helper in its __mro__
    extra: bool = Bool(False)
"""


def _specs_from_get_type_hints(cls) -> dict:
    """cls's inputs read as before _own_hints: every Node class's hints from typing.get_type_hints."""
    specs = {}
    for klass in reversed(cls.__mro__):
        if klass is Node or not issubclass(klass, Node):
            continue
        hints = get_type_hints(klass, include_extras=True)
        for name in klass.__dict__.get("__annotations__", {}):
            if getattr(hints[name], "__origin__", None) is not ClassVar and not name.startswith("_"):
                default = klass.__dict__.get(name, node_module._REQUIRED)
                specs[name] = node_module._input_spec(cls, name, hints[name], default)
    return specs


@pytest.fixture(scope="module", params=["", "from __future__ import annotations\n"], ids=["plain", "future"])
def declared(request) -> dict[str, type]:
    """DECLARATIONS in a module of their own (their mixins in another), with or without string annotations."""
    names = [f"test_node_models_{request.param_index}_{part}" for part in ("mixins", "declarations")]
    modules = [types.ModuleType(name) for name in names]
    sys.modules.update(zip(names, modules))  # where annotations are resolved
    try:
        for module, source in zip(modules, (MIXINS, DECLARATIONS.format(mixins=names[0]))):
            exec(compile(request.param + source, module.__name__, "exec"), module.__dict__)  # noqa: S102
        yield {name: value for name, value in vars(modules[1]).items() if isinstance(value, type)}
    finally:
        for name in names:
            del sys.modules[name]


@pytest.mark.parametrize("class_name", ["Base", "Overridden", "ClassAttribute", "ShadowedInt", "Mixed"])
def test_a_plugins_inputs_are_read_as_get_type_hints_reads_them(declared, class_name):
    cls = declared[class_name]
    _assert_own_hints_are_get_type_hints(cls)
    assert cls.input_specs == _specs_from_get_type_hints(cls)


def test_the_declarations_read_as_get_type_hints_reads_them_are_the_ones_meant(declared):
    kinds = {name: {n: s.type for n, s in cls.input_specs.items()} for name, cls in declared.items()
             if issubclass(cls, Node) and cls.__module__ != Node.__module__}
    assert kinds["Overridden"] == {"steps": "FLOAT", "strength": "FLOAT", "image": "LATENT", "name": "STRING"}
    assert kinds["ClassAttribute"] == {"picture": "IMAGE", "mask": "MASK", "quoted": "BOOLEAN", "extras": "INT"}
    assert kinds["ShadowedInt"] == {"amount": "FLOAT"}
    assert kinds["Mixed"] == {"mask": "MASK", **kinds["Overridden"], "extra": "BOOLEAN"}


@pytest.mark.parametrize("annotation, message", [
    ("Undefined", "node Odd: cannot read its input annotations: name 'Undefined' is not defined"),
    ("list[int]", "node Odd: input 'x' has annotation list[int]; use a socket type"),
    ("3", "node Odd: input 'x' has annotation 3; use a socket type"),
    (ClassVar["Undefined"], "node Odd: cannot read its input annotations: name 'Undefined' is not defined"),
])
def test_an_annotation_that_is_no_input_type_is_refused_as_before(annotation, message):
    with pytest.raises(NodeDeclarationError) as refused:
        type("Odd", (Node,), {"__annotations__": {"x": annotation}, "__module__": LAZY_MODULE,
                              "run": lambda self: None})
    assert str(refused.value).startswith(message)


def test_a_classvar_is_no_input():
    odd = type("Odd", (Node,), {"__annotations__": {"x": ClassVar[dict[str, int]], "y": int},
                                "__module__": LAZY_MODULE, "run": lambda self: None})
    assert list(odd.input_specs) == ["y"]


def test_a_bad_fingerprint_is_refused_before_a_linked_hint_pydantic_refuses():
    # the order of the checks before the models were built lazily: a plugin with both faults keeps
    # getting a declaration error, which its load reports as a "declaration" problem
    with pytest.raises(NodeDeclarationError, match="fingerprint\\(\\) takes 'other', no input of the node"):
        class Both(Node):
            strength: float = Float(0.5, min=0, max=1, linked_list=True, linked_max=object())

            @classmethod
            def fingerprint(cls, other):
                return None

            def run(self):
                return None


@pytest.mark.parametrize("module", [LAZY_MODULE, __name__])
@pytest.mark.parametrize("name", ["widget_model", "linked_widget_model"])
def test_an_input_named_as_a_model_is_refused(module, name):
    # a Widget in the class would hide the built model: validation failed on it
    with pytest.raises(NodeDeclarationError, match=f"input name '{name}' is reserved by the node API"):
        type("Shadow", (Node,), {"__annotations__": {name: int}, name: Int(1), "__module__": module,
                                 "run": lambda self: None})


def test_two_threads_reading_a_model_first_build_it_once(monkeypatch):
    count = _declare(LAZY_MODULE)[0]
    both_building = threading.Barrier(2)
    built = []
    create_model = node_module.create_model

    def create_model_slowly(model, /, **fields):
        built.append(model)
        try:  # unlocked, both threads meet here and each builds a model
            both_building.wait(timeout=0.5)
        except threading.BrokenBarrierError:
            pass
        return create_model(model, **fields)

    monkeypatch.setattr(node_module, "create_model", create_model_slowly)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(count.linked_widget_model)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == ["CountWidgets"]
    assert seen[0] is seen[1] is count.widget_model is count.linked_widget_model
