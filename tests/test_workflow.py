import json

import pytest

from graphflow.executor import Executor
from graphflow.workflow import (WorkflowFormatError, import_comfy, load_workflow, parse_workflow,
                                save_workflow)

UI = {"positions": {"1": [10.5, -3], "2": [300, 40]}, "groups": [{"title": "G", "bounding": [0, 0, 1, 1]}],
      "notes": [{"text": "hello\nworld", "extra": {"nested": [1, 2, {"deep": None}]}}], "unknown_key": True}


def test_ui_block_round_trips_verbatim(tmp_path, toy_registry):
    data = {"version": 1, "nodes": {
        "1": {"type": "Number", "inputs": {"value": 2}},
        "2": {"type": "Show", "inputs": {"x": ["1", 0]}}}, "ui": UI}
    source = tmp_path / "in.json"
    source.write_text(json.dumps(data))
    workflow = load_workflow(source, toy_registry)
    out = tmp_path / "out.json"
    save_workflow(workflow, out)
    assert json.loads(out.read_text()) == data
    assert json.loads(out.read_text())["ui"] == UI


def test_literal_lists_are_wrapped_not_links():
    wf = parse_workflow({"nodes": {"1": {"type": "X", "inputs": {"pair": {"__value__": ["a", 0]}}}}})
    from graphflow.workflow import is_link, literal
    value = wf.nodes["1"].inputs["pair"]
    assert not is_link(value) and literal(value) == ["a", 0]


def test_format_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(WorkflowFormatError, match="not valid JSON"):
        load_workflow(bad)
    with pytest.raises(WorkflowFormatError, match="no such workflow file"):
        load_workflow(tmp_path / "missing.json")
    with pytest.raises(WorkflowFormatError, match="newer than this graphflow"):
        parse_workflow({"version": 9, "nodes": {}})
    with pytest.raises(WorkflowFormatError, match="nodes.1.type"):
        parse_workflow({"nodes": {"1": {"inputs": {}}}})


COMFY = {
    "3": {"class_type": "NumberConst", "inputs": {"val": 2.5}, "_meta": {"title": "My number"}},
    "4": {"class_type": "Multiply", "inputs": {"x": ["3", 0], "factor": 3, "op": "times", "legacy": 1}},
    "9": {"class_type": "Show", "inputs": {"x": ["4", 0]}},
}


@pytest.fixture
def comfy_registry(toy_registry):
    import toy_nodes
    from graphflow.workflow import ComfyAlias

    class NumberC(toy_nodes.Number):
        node_type = "NumberC"
        comfy = ComfyAlias(("NumberConst",), inputs={"val": "value"})

    class ScaleC(toy_nodes.Scale):
        node_type = "ScaleC"
        comfy = ComfyAlias(("Multiply",), inputs={"op": "mode"}, values={"mode": {"times": "mul"}},
                           ignore=("legacy",))

    toy_registry.add(NumberC)
    toy_registry.add(ScaleC)
    return toy_registry


def test_comfy_api_graph_imports_and_runs(comfy_registry):
    workflow = parse_workflow(COMFY, comfy_registry)
    assert workflow.nodes["3"].type == "NumberC" and workflow.nodes["3"].inputs == {"value": 2.5}
    assert workflow.nodes["4"].inputs == {"x": ["3", 0], "factor": 3, "mode": "mul"}
    assert workflow.nodes["9"].type == "Show"  # same name on both sides
    assert workflow.ui["titles"] == {"3": "My number"}
    result = Executor(comfy_registry).run(workflow)
    assert result.ok and result.outputs["9"] == {"text": ["7.5"]}


def test_comfy_unknown_class_is_reported_by_node(comfy_registry):
    graph = dict(COMFY)
    graph["5"] = {"class_type": "SomeCustomNode", "inputs": {"x": ["4", 0]}}
    graph["9"] = {"class_type": "Show", "inputs": {"x": ["5", 0]}}
    result = Executor(comfy_registry).run(import_comfy(graph, comfy_registry))
    assert result.status == "invalid"
    assert [(p.node_id, p.node_type) for p in result.problems] == [("5", "SomeCustomNode")]


def test_comfy_node_ids_with_colons(comfy_registry):
    graph = {"54:73": {"class_type": "NumberConst", "inputs": {"val": 1}},
             "54:74": {"class_type": "Show", "inputs": {"x": ["54:73", 0]}}}
    result = Executor(comfy_registry).run(parse_workflow(graph, comfy_registry))
    assert result.ok and result.outputs["54:74"] == {"text": ["1.0"]}
