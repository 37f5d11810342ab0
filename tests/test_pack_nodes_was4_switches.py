"""WAS Node Suite's Lora, CLIP Vision and Control Net Model input switches
(nodes/pack_nodes_was4_switches.py) in both of the pack's layouts (boolean, boolean_number), read
from an API prompt and a UI save under the pack's class names, and exported back."""

import pytest

from graphflow.api import CLIP, MODEL, Node, Text
from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


A, B = object(), object()


@pytest.mark.parametrize("node, inputs", [
    ("WasClipVisionInputSwitch", ("clip_vision_a", "clip_vision_b")),
    ("WasControlNetModelInputSwitch", ("control_net_a", "control_net_b"))])
def test_switches_pick_by_boolean_or_boolean_number(registry, node, inputs):
    first, second = inputs
    pick = lambda **switch: call(registry, node, **{first: A, second: B}, **switch)  # noqa: E731
    assert pick(boolean=True) is A and pick(boolean=False) is B
    # the 2023 layout: on when the number rounds to 1
    assert pick(boolean_number=1) is A and pick(boolean_number=0.6) is A and pick(boolean_number=2) is B
    assert pick(boolean_number=0) is B and pick(boolean=True, boolean_number=0) is A  # boolean first
    with pytest.raises(NodeInputError) as caught:
        pick()
    assert caught.value.input == "boolean"


def test_lora_switch_gives_the_chosen_pair(registry):
    model_a, clip_a, model_b, clip_b = object(), object(), object(), object()
    inputs = {"model_a": model_a, "clip_a": clip_a, "model_b": model_b, "clip_b": clip_b}
    assert call(registry, "WasLoraInputSwitch", **inputs, boolean=True) == (model_a, clip_a)
    assert call(registry, "WasLoraInputSwitch", **inputs, boolean_number=0) == (model_b, clip_b)


class ModelAndClip(Node):
    """A MODEL and a CLIP of its own (plain objects, one pair per node): what the Lora switch routes,
    without loading a checkpoint (a tiny one took some 6 s to write, most of it transformers' import
    for its text encoder, and the switch never looks inside what it passes on)."""
    name: str = Text("a")
    outputs = {"model": MODEL, "clip": CLIP}

    def run(self):
        return object(), object()


@pytest.fixture(scope="module")
def with_sources():
    registry = Registry().load_builtin()
    registry.add(ModelAndClip, source="tests")
    return registry


def test_lora_switch_in_an_api_prompt_both_layouts(with_sources):
    registry = with_sources
    for switch in ({"boolean": ["3", 0]}, {"boolean_number": ["4", 0]}):
        graph = {"1": {"class_type": "ModelAndClip", "inputs": {"name": "a"}},
                 "2": {"class_type": "ModelAndClip", "inputs": {"name": "b"}},
                 "3": {"class_type": "Logic Boolean Primitive", "inputs": {"boolean": False}},
                 "4": {"class_type": "Constant Number", "inputs": {"number_type": "integer", "number": 0}},
                 "5": {"class_type": "Lora Input Switch", "inputs": {"model_a": ["1", 0], "clip_a": ["1", 1],
                                                                     "model_b": ["2", 0], "clip_b": ["2", 1],
                                                                     **switch}}}
        values = run_graph(registry, graph, ["1", "2", "5"]).values
        assert values["5"][0] is values["2"][0] and values["5"][1] is values["2"][1]
        assert values["1"][0] is not values["2"][0] and values["1"][1] is not values["2"][1]
        assert export_api(parse_workflow(graph, registry), registry)["5"] == graph["5"]


def test_switch_ui_saves_of_both_layouts(registry):
    later = ui_node(2, "Control Net Model Input Switch", [],
                    inputs=[("control_net_a", "CONTROL_NET", None, False),
                            ("control_net_b", "CONTROL_NET", None, False), ("boolean", "BOOLEAN", 1, False)],
                    outputs=[("CONTROL_NET", "CONTROL_NET", [])])
    older = ui_node(3, "CLIP Vision Input Switch", [],
                    inputs=[("clip_vision_a", "CLIP_VISION", None, False),
                            ("clip_vision_b", "CLIP_VISION", None, False), ("boolean_number", "NUMBER", 2, False)],
                    outputs=[("CLIP_VISION", "CLIP_VISION", [])])
    nodes = [ui_node(1, "Logic Boolean Primitive", [True], outputs=[("BOOLEAN", "BOOLEAN", [1])]),
             ui_node(4, "Constant Number", ["integer", 1], outputs=[("NUMBER", "NUMBER", [2])]),
             later, older]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 2, "BOOLEAN"], [2, 4, 0, 3, 2, "NUMBER"]])
    workflow = parse_workflow(graph, registry)
    assert workflow.nodes["2"].inputs["boolean"] == ["1", 0]
    assert workflow.nodes["3"].inputs["boolean_number"] == ["4", 0]
    written = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    assert written[2]["type"] == "Control Net Model Input Switch" and written[3]["type"] == "CLIP Vision Input Switch"
    prompt = export_api(workflow, registry)
    assert prompt["2"]["inputs"] == {"boolean": ["1", 0]} and prompt["3"]["inputs"] == {"boolean_number": ["4", 0]}
