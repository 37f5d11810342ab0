"""Malformed workflows and request bodies get the structured problem report, never an exception:
the reader, `graphflow validate`, POST /api/runs and ComfyUI's /prompt (each case here crashed
before: AttributeError, TypeError: unhashable, a raw pydantic error, RecursionError)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import server_nodes
from graphflow import cli
from graphflow import folders as folders_module
from graphflow.registry import Registry
from graphflow.server.app import create_app
from graphflow.validation import validate
from graphflow.workflow import MAX_JSON_DEPTH, WorkflowFormatError, parse_workflow

REPO = Path(__file__).resolve().parents[1]

GOOD = {"1": {"class_type": "Number", "inputs": {"value": 2}}, "2": {"class_type": "Show", "inputs": {"x": ["1", 0]}}}


def comfy_with(node_two) -> dict:
    return {"1": GOOD["1"], "2": node_two}


# (graph, the node the problem must name, words the message must contain)
CRASHED_BEFORE = {
    "inputs a list": (comfy_with({"class_type": "Show", "inputs": [1, 2]}), "2", "'inputs' must be an object"),
    "inputs a number": (comfy_with({"class_type": "Show", "inputs": 7}), "2", "'inputs' must be an object"),
    "class_type null": (comfy_with({"class_type": None, "inputs": {}}), "2", "'class_type' must be"),
    "class_type empty": (comfy_with({"class_type": "", "inputs": {}}), "2", "'class_type' must be"),
    "class_type a list": (comfy_with({"class_type": ["Show"], "inputs": {}}), "2", "'class_type' must be"),
    "class_type a dict": (comfy_with({"class_type": {"a": 1}, "inputs": {}}), "2", "'class_type' must be"),
    "class_type a number": (comfy_with({"class_type": 5, "inputs": {}}), "2", "'class_type' must be"),
    "entry not an object": (comfy_with("Show"), "2", "expected a node object"),
    "entry without class_type": (comfy_with({"inputs": {}}), "2", "'class_type' must be"),
    "ours: type a list": ({"nodes": {"1": {"type": ["Show"]}}}, "1", "type"),
    "ours: type empty": ({"nodes": {"1": {"type": ""}}}, "1", "type"),
    "ours: inputs a list": ({"nodes": {"1": {"type": "Show", "inputs": [1, 2]}}}, "1", "inputs"),
    "ours: node not an object": ({"nodes": {"1": [1, 2]}}, "1", ""),
}


@pytest.mark.parametrize("case", list(CRASHED_BEFORE))
def test_malformed_graphs_are_reported_by_node(toy_registry, case):
    graph, node_id, words = CRASHED_BEFORE[case]
    with pytest.raises(WorkflowFormatError) as caught:
        parse_workflow(graph, toy_registry)
    problems = caught.value.problems
    assert [p.node_id for p in problems] == [node_id], problems
    assert words in problems[0].message


def test_comfy_values_that_are_not_hashable_are_kept_for_validation(toy_registry):
    # Multiply's alias maps "op" values through a dict; a list value used to raise TypeError.
    from graphflow.api import ComfyAlias
    import toy_nodes

    class Mapped(toy_nodes.Scale):
        comfy = ComfyAlias(("Mapped",), values={"mode": {"times": "mul"}})

    toy_registry.add(Mapped)
    workflow = parse_workflow({"1": {"class_type": "Number"}, "2": {"class_type": "Mapped",
                               "inputs": {"x": ["1", 0], "mode": {"x": [1]}}, "_meta": "not an object"},
                               "3": {"class_type": "Show", "inputs": {"x": ["2", 0]}}}, toy_registry)
    [problem] = validate(workflow, toy_registry)
    assert (problem.node_id, problem.input) == ("2", "mode") and "not one of the choices" in problem.message


def test_non_string_ids_and_digit_lookalikes_do_not_crash_validation(toy_registry):
    workflow = parse_workflow({"²": {"class_type": "Number"}, 3: {"class_type": "Show", "inputs": {"x": ["²", 0]}}},
                              toy_registry)
    assert validate(workflow, toy_registry) == []


def test_failing_upgrade_is_a_problem_on_the_node(toy_registry):
    import toy_nodes

    class Old(toy_nodes.Number):
        version = 2

        @classmethod
        def upgrade(cls, inputs, saved_version):
            raise KeyError("value")

    toy_registry.add(Old)
    workflow = parse_workflow({"nodes": {"1": {"type": "Old", "version": 1},
                                         "2": {"type": "Show", "inputs": {"x": ["1", 0]}}}})
    [problem] = validate(workflow, toy_registry)
    assert problem.node_id == "1" and "upgrade to version 2 failed: KeyError" in problem.message


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deep_nesting_is_refused_by_the_reader(tmp_path):
    with pytest.raises(WorkflowFormatError, match="deeper than"):
        parse_workflow({"nodes": {"1": {"type": "X", "inputs": {"v": json.loads(nested(MAX_JSON_DEPTH + 5))}}}})
    deep = tmp_path / "deep.json"
    deep.write_text(nested(100_000))
    assert cli.main(["validate", str(deep)]) == cli.EXIT_FILE  # not JSON we can read: no traceback


@pytest.fixture
def use_toy_registry(toy_registry, monkeypatch):
    import graphflow.registry

    monkeypatch.setattr(graphflow.registry, "_default", toy_registry)
    return toy_registry


def test_cli_validate_lists_problems_and_exits_3(use_toy_registry, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(CRASHED_BEFORE["inputs a list"][0]))
    assert cli.main(["validate", str(path)]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert "node 2 (Show): 'inputs' must be an object" in err and "Traceback" not in err


def test_cli_validate_subprocess_prints_no_traceback(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"3": {"class_type": None}, "4": {"class_type": "SaveImage", "inputs": [1, 2]}}))
    done = subprocess.run([sys.executable, "-m", "graphflow.cli", "validate", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == cli.EXIT_INVALID, done.stderr
    assert "Traceback" not in done.stderr
    assert "node 3: 'class_type' must be" in done.stderr and "node 4 (SaveImage): 'inputs' must be" in done.stderr


# --- the server -----------------------------------------------------------------------------

@pytest.fixture
def client(aiohttp_client, tmp_path):
    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=tmp_path)
    registry = Registry()
    for cls in server_nodes.SERVER_NODES:
        registry.add(cls, source="tests")

    async def start():
        return await aiohttp_client(create_app(registry, tmp_path / "runs.db", web_dir=None, paused=True))
    yield start
    folders_module.folders.__dict__.update(saved)


def server_graph(case: str) -> dict:
    graph, _, _ = CRASHED_BEFORE[case]
    if "nodes" in graph:
        return graph
    return {"1": {"class_type": "Canvas", "inputs": {}}, "2": graph["2"]}


@pytest.mark.parametrize("case", [c for c in CRASHED_BEFORE if not c.startswith("ours")][:6])
async def test_server_answers_malformed_graphs_with_problems(client, case):
    c = await client()
    graph = server_graph(case)
    for path, body in (("/api/runs", {"workflow": graph}), ("/prompt", {"prompt": graph})):
        r = await c.post(path, json=body)
        assert r.status == 400, (path, await r.text())
        reply = await r.json()
        assert [p["node_id"] for p in reply["problems"]] == ["2"]
        assert "Error" not in json.dumps(reply)  # no exception names or text
    if "class_type" in case:
        assert reply["node_errors"]["2"]["errors"][0]["type"] == "invalid_node"


async def test_deeply_nested_bodies_get_400(client):
    c = await client()
    for path in ("/api/runs", "/prompt", "/api/workflow/convert"):
        r = await c.post(path, data=nested(100_000), headers={"Content-Type": "application/json"})
        assert r.status == 400, path
        assert "nests lists and objects deeper" in json.dumps(await r.json())
        body = '{"workflow": {"nodes": {"1": {"type": "Canvas", "inputs": {"red": %s}}}}}' % nested(MAX_JSON_DEPTH)
        r = await c.post(path, data=body, headers={"Content-Type": "application/json"})
        assert r.status == 400, path


async def test_bad_client_and_prompt_ids_are_structured_problems(client):
    c = await client()
    graph = {"1": {"class_type": "Canvas"}, "2": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0]}}}
    r = await c.post("/api/runs", json={"workflow": graph, "client_id": ["x"]})
    assert r.status == 400 and "client_id" in (await r.json())["problems"][0]["message"]
    r = await c.post("/prompt", json={"prompt": graph, "prompt_id": {"a": 1}})
    assert r.status == 400 and "prompt_id" in (await r.json())["problems"][0]["message"]
