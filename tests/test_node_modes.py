"""Bypassed and muted nodes (ui.nodes[id].mode), honoured by validation and the executor."""

from graphflow.executor import Executor
from graphflow.validation import validate
from graphflow.workflow import parse_workflow


def chain(modes):
    return parse_workflow({"nodes": {
        "1": {"type": "Number", "inputs": {"value": 2.0}},
        "2": {"type": "Scale", "inputs": {"x": ["1", 0], "factor": 3}},
        "3": {"type": "Number", "inputs": {"value": 10}},
        "4": {"type": "Add", "inputs": {"a": ["2", "y"], "b": ["3", 0]}},
        "5": {"type": "Show", "inputs": {"x": ["4", 0]}},
    }, "ui": {"nodes": {i: {"pos": [0, 0], "mode": m} for i, m in modes.items()}}})


def test_a_bypassed_node_passes_its_matching_input_through(toy_registry):
    result = Executor(toy_registry).run(chain({"2": "bypass"}))
    assert result.ok and result.outputs == {"5": {"text": ["12.0"]}}  # 2 + 10, not 2 * 3 + 10
    assert "2" not in result.executed


def test_chained_bypasses_pass_through(toy_registry):
    workflow = chain({"2": "bypass", "4": "bypass"})
    result = Executor(toy_registry).run(workflow)
    assert result.ok and result.outputs == {"5": {"text": ["2.0"]}}


def test_a_muted_node_does_not_run_and_its_reader_misses_the_input(toy_registry):
    problems = validate(chain({"3": "mute"}), toy_registry)
    assert problems == []  # Add's b is optional: it runs without it
    result = Executor(toy_registry).run(chain({"3": "mute"}))
    assert result.outputs == {"5": {"text": ["6.0"]}} and "3" not in result.executed
    problems = validate(chain({"1": "mute"}), toy_registry)
    assert any(p.node_id == "2" and p.input == "x" for p in problems), problems


def test_a_muted_output_node_leaves_nothing_to_run(toy_registry):
    problems = validate(chain({"5": "mute"}), toy_registry)
    assert any("no output node" in p.message for p in problems), problems
