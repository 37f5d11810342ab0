"""Node classes' pydantic models: a built-in node's (graphflow.node's LAZY_MODEL_MODULES) built on
first use, any other's (a plugin's) at declaration, the same models either way; and the declared
inputs read from each class's own annotations as typing.get_type_hints reads them."""

import threading
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


def test_own_annotations_read_as_get_type_hints_reads_them(builtin_registry):
    for cls in builtin_registry:
        for klass in cls.__mro__[:-2]:  # Node and object declare no inputs
            own = klass.__dict__.get("__annotations__", {})
            every = get_type_hints(klass, include_extras=True)
            assert node_module._own_hints(klass) == {name: every[name] for name in own}, klass


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
