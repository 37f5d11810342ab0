import json
import os
import subprocess
import sys

import pytest

from graphflow import cli, registry as registry_module


@pytest.fixture
def use_toy_registry(toy_registry, monkeypatch):
    monkeypatch.setattr(registry_module, "_default", toy_registry)
    return toy_registry


def write(tmp_path, nodes, name="wf.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "nodes": nodes}))
    return str(path)


CHAIN = {"1": {"type": "Number", "inputs": {"value": 2}},
         "2": {"type": "Scale", "inputs": {"x": ["1", 0], "factor": 3}},
         "3": {"type": "Show", "inputs": {"x": ["2", 0]}}}


def test_run_prints_results_and_exits_zero(use_toy_registry, tmp_path, capsys):
    assert cli.main(["run", write(tmp_path, CHAIN), "--output-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "6.0" in out and "[1/3] Number" in err


def test_set_overrides_an_input(use_toy_registry, tmp_path, capsys):
    path = write(tmp_path, CHAIN)
    assert cli.main(["run", path, "--set", "2.factor=5", "--set", "1.value=1.5", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == "7.5"
    assert cli.main(["run", path, "--set", "2.mode=pow", "--quiet"]) == 0  # plain text value
    assert capsys.readouterr().out.strip() == "8.0"


def test_invalid_workflow_exit_code_and_report(use_toy_registry, tmp_path, capsys):
    path = write(tmp_path, CHAIN)
    assert cli.main(["run", path, "--set", "2.factor=50", "--set", "2.mode=zz"]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert "2 problems" in err and "node 2 (Scale), input 'factor'" in err and "input 'mode'" in err
    assert cli.main(["validate", path, "--set", "2.factor=50"]) == cli.EXIT_INVALID
    assert cli.main(["validate", path]) == 0
    assert cli.main(["run", path, "--set", "7.x=1"]) == cli.EXIT_INVALID


def test_node_failure_exit_code(use_toy_registry, tmp_path, capsys):
    nodes = {"1": {"type": "Number"}, "2": {"type": "Fail", "inputs": {"x": ["1", 0]}},
             "3": {"type": "Show", "inputs": {"x": ["2", 0]}}}
    assert cli.main(["run", write(tmp_path, nodes)]) == cli.EXIT_NODE_FAILED
    err = capsys.readouterr().err
    assert "node 2 (Fail), input 'x', from plugin 'tests' failed: NodeInputError: refusing 1.0" in err


def test_unreadable_file_exit_code(use_toy_registry, tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.json")]) == cli.EXIT_FILE
    assert "no such workflow file" in capsys.readouterr().err


def test_interrupt_exit_code(use_toy_registry, tmp_path, monkeypatch, capsys):
    import threading

    real_event = threading.Event

    class PreSetEvent(real_event):
        def __init__(self):
            super().__init__()
            self.set()

    monkeypatch.setattr(cli.threading, "Event", PreSetEvent)
    assert cli.main(["run", write(tmp_path, CHAIN)]) == cli.EXIT_INTERRUPTED
    assert "interrupted in node 1 (Number)\n" in capsys.readouterr().err  # a user's interrupt: no reason


def test_run_prints_the_reason_a_node_stopped_the_run_for(use_toy_registry, tmp_path, capsys):
    from graphflow.api import Interrupted, Node
    from toy_nodes import NUMBER

    class QueueFull(Node):
        category = "test"
        x: NUMBER
        outputs = {"x": NUMBER}

        def run(self):
            raise Interrupted("the queue is full")

    use_toy_registry.add(QueueFull, source="tests")
    nodes = {"1": {"type": "Number"}, "2": {"type": "QueueFull", "inputs": {"x": ["1", 0]}},
             "3": {"type": "Show", "inputs": {"x": ["2", 0]}}}
    assert cli.main(["run", write(tmp_path, nodes)]) == cli.EXIT_INTERRUPTED
    assert "interrupted in node 2 (QueueFull): the queue is full" in capsys.readouterr().err


def test_nodes_json_catalogue(use_toy_registry, capsys):
    assert cli.main(["nodes", "--json"]) == 0
    catalogue = json.loads(capsys.readouterr().out)
    scale = catalogue["nodes"]["Scale"]
    assert scale["inputs"][1] == {"name": "factor", "type": "INT", "required": False, "kind": "INT",
                                  "default": 2, "min": 1, "max": 10, "step": 1}
    assert scale["inputs"][2]["options"] == ["mul", "pow"]
    assert scale["outputs"] == [{"name": "y", "type": "TOY_NUMBER"}]
    assert catalogue["nodes"]["Add"]["description"] == "Add two numbers (b is optional)."
    assert catalogue["sockets"]["TOY_NUMBER"]["color"] == "#123456"
    assert cli.main(["nodes"]) == 0
    assert "test:" in capsys.readouterr().out


def test_real_cli_subprocess_with_builtin_nodes(tmp_path):
    path = write(tmp_path, {"1": {"type": "TextValue", "inputs": {"text": "hi there"}},
                            "2": {"type": "ShowText", "inputs": {"text": ["1", 0]}}})
    done = subprocess.run([sys.executable, "-m", "graphflow.cli", "run", path], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "hi there"
    bad = subprocess.run([sys.executable, "-m", "graphflow.cli", "run", path, "--set", "2.text=[\"9\", 0]"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 3 and "links to node '9'" in bad.stderr


def test_inspect_reports_architecture_or_a_clear_error(tmp_path, capsys):
    from graphflow.testing import write_checkpoint

    good = tmp_path / "tiny_sdxl.safetensors"
    write_checkpoint(good, "sdxl")
    assert cli.main(["inspect", str(good)]) == 0
    report = capsys.readouterr().out
    assert "SDXL" in report and "0.13025" in report

    damaged = tmp_path / "cut.safetensors"
    damaged.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert cli.main(["inspect", str(damaged)]) == cli.EXIT_FILE
    err = capsys.readouterr().err
    assert "cut.safetensors" in err and "Traceback" not in err
    assert cli.main(["inspect", str(tmp_path / "missing.safetensors")]) == cli.EXIT_FILE


def test_node_reference_docs_are_up_to_date():
    from pathlib import Path

    tools = Path(__file__).parent.parent / "tools" / "make_node_docs.py"
    root = Path(__file__).parent.parent  # this checkout's code, though the venv's install may be another's
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH"))))}
    done = subprocess.run([sys.executable, str(tools), "--check"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
