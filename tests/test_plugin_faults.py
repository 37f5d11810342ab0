"""Plugins that misbehave at run time (raise anything, loop for long, print heavily) fail or
stop only their own run: the server stays up and the other nodes keep working. And an
interrupted run keeps what it finished: a re-run takes those nodes from the cache."""

import asyncio
import textwrap
import threading
import time

import pytest

import server_nodes
from graphflow import folders as folders_module
from graphflow.executor import Executor
from graphflow.plugins import load_plugins
from graphflow.registry import Registry
from graphflow.server.app import create_app
from graphflow.workflow import parse_workflow

TIMEOUT = 30

MISBEHAVING = '''
import sys
import threading
import time

from graphflow.api import IMAGE, Float, Int, Node, Text, check_interrupted, progress, show


class BadMessage(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")


class Raises(Node):
    """Raises `kind` of exception."""
    output_node = True
    image: IMAGE
    kind: str = Text("ValueError")

    def run(self):
        if self.kind == "recursion":
            def down(n):
                return down(n + 1)
            down(0)
        if self.kind == "memory":
            bytearray(2**62)
        if self.kind == "BadMessage":
            raise BadMessage()
        if self.kind == "exit":
            sys.exit(3)
        raise {"ValueError": ValueError("plugin gave up"), "KeyboardInterrupt": KeyboardInterrupt(),
               "GeneratorExit": GeneratorExit(), "BaseException": BaseException("odd")}[self.kind]


class Spin(Node):
    """Busy for up to `seconds`; `check` is how it looks for interrupts: check_interrupted(),
    progress(), "never", or "swallow" (it checks but catches the exception)."""
    output_node = True
    image: IMAGE
    seconds: float = Float(60.0, min=0.0, max=600.0)
    check: str = Text("check_interrupted")
    cacheable = False

    def run(self):
        end = time.monotonic() + self.seconds
        i = 0
        while time.monotonic() < end:
            sum(range(1000))
            i += 1
            if self.check == "check_interrupted":
                check_interrupted()
            elif self.check == "progress" and i % 100 == 0:
                progress(i // 100, 10**6)
            elif self.check == "swallow":  # catches everything it can, the interrupt included
                try:
                    check_interrupted()
                except Exception:
                    pass
        show(text=[f"spun {i}"])


class Chatty(Node):
    """Prints `lines` lines to stdout and stderr, then shows how many."""
    output_node = True
    image: IMAGE
    lines: int = Int(1000, min=0, max=10**7)
    cacheable = False

    def run(self):
        for i in range(self.lines):
            print(f"chatty plugin line {i} " + "x" * 60)
            print(f"chatty plugin warning {i}", file=sys.stderr)
        show(text=[str(self.lines)])
'''


@pytest.fixture
def registry(tmp_path):
    registry = Registry()
    for cls in server_nodes.SERVER_NODES:
        registry.add(cls, source="tests")
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "misbehaving.py").write_text(textwrap.dedent(MISBEHAVING))
    load_plugins(registry, [folder], entry_points=False)
    assert registry.problems == []
    return registry


@pytest.fixture
def client(aiohttp_client, registry, tmp_path):
    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=tmp_path)
    server_nodes.Hold.gate = threading.Event()

    async def start():
        return await aiohttp_client(create_app(registry, tmp_path / "runs.db", web_dir=None))

    yield start
    server_nodes.Hold.gate.set()
    folders_module.folders.__dict__.update(saved)


def graph(node_type: str, **inputs) -> dict:
    return {"nodes": {"1": {"type": "Canvas", "inputs": {"steps": 1}},
                      "2": {"type": node_type, "inputs": {"image": ["1", 0], **inputs}}}}


GOOD = {"nodes": {"1": {"type": "Canvas", "inputs": {"steps": 1, "red": 7}},
                  "2": {"type": "SaveTestImage", "inputs": {"image": ["1", 0], "prefix": "good"}}}}


async def submit(client, workflow) -> str:
    response = await client.post("/api/runs", json={"workflow": workflow})
    body = await response.json()
    assert response.status == 200, body
    return body["run_id"]


async def wait_record(client, run_id, statuses=("success", "error", "interrupted", "invalid")) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        record = await (await client.get(f"/api/history/{run_id}")).json()
        if record["status"] in statuses:
            return record
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} did not reach {statuses}")


async def wait_running(client, node_type) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        running = (await (await client.get("/api/queue")).json())["running"]
        if running and running[0]["node_type"] == node_type:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{node_type} never ran")


KINDS = ["ValueError", "BadMessage", "recursion", "memory", "exit", "KeyboardInterrupt", "GeneratorExit",
         "BaseException"]


async def test_a_plugin_raising_anything_fails_only_its_run(client):
    client = await client()
    for kind in KINDS:
        run_id = await submit(client, graph("Raises", kind=kind))
        good = await submit(client, GOOD)
        record = await wait_record(client, run_id)
        assert record["status"] == "error", (kind, record)
        error = record["error"]
        assert (error["node_id"], error["node_type"], error["source"]) == ("2", "Raises", "misbehaving"), kind
        assert error["message"] and "misbehaving.py" in error["traceback"], kind
        assert (await wait_record(client, good))["status"] == "success", kind  # the worker carries on
    assert (await client.get("/api/system")).status == 200


@pytest.mark.parametrize("check", ["check_interrupted", "progress"])
async def test_a_long_running_plugin_is_interrupted_and_the_queue_goes_on(client, check):
    client = await client()
    spinning = await submit(client, graph("Spin", seconds=120.0, check=check))
    good = await submit(client, GOOD)
    await wait_running(client, "Spin")
    began = time.monotonic()
    assert (await client.get("/api/queue")).status == 200  # the server answers while the plugin spins
    assert (await (await client.post("/api/interrupt")).json())["interrupted"] == [spinning]
    record = await wait_record(client, spinning)
    assert time.monotonic() - began < 5
    assert record["status"] == "interrupted" and record["error"]["node_type"] == "Spin"
    assert (await wait_record(client, good))["status"] == "success"


@pytest.mark.parametrize("check", ["never", "swallow"])
async def test_a_plugin_that_ignores_interrupts_is_stopped_by_force(client, check):
    """A Python loop that never checks, or catches the Interrupted it gets, would hold the queue
    forever: after FORCE_AFTER seconds the worker raises the interrupt inside the node."""
    from graphflow.server.worker import FORCE_AFTER

    client = await client()
    spinning = await submit(client, graph("Spin", seconds=120.0, check=check))
    good = await submit(client, GOOD)
    await wait_running(client, "Spin")
    began = time.monotonic()
    for _ in range(5):
        assert (await client.get("/api/queue")).status == 200  # the server answers while the plugin spins
    assert (await (await client.post("/api/interrupt")).json())["interrupted"] == [spinning]
    record = await wait_record(client, spinning)
    assert FORCE_AFTER <= time.monotonic() - began < FORCE_AFTER + 10
    assert record["status"] == "interrupted" and record["error"]["node_type"] == "Spin"
    assert (await wait_record(client, good))["status"] == "success"


def test_forced_interrupt_reaches_only_a_node_inside_run(toy_registry):
    """force_interrupt() is a no-op between nodes and after the run: the exception can only
    land in the node it was meant for."""
    executor = Executor(toy_registry)
    assert executor.force_interrupt() is False  # nothing running
    interrupt = threading.Event()
    forced = []

    def on_event(event):  # between two nodes, with the interrupt set: there is no node to force
        if event["type"] == "node_finished" and event["node"] == "a":
            interrupt.set()
            forced.append(executor.force_interrupt())

    workflow = parse_workflow({"nodes": {"a": {"type": "Number", "inputs": {"value": 1}},
                                         "b": {"type": "Show", "inputs": {"x": ["a", 0]}}}})
    result = executor.run(workflow, interrupt=interrupt, on_event=on_event)
    assert forced == [False] and result.status == "interrupted" and result.executed == ["a"]
    assert "before it started" in result.error["message"]
    assert executor.force_interrupt() is False
    assert executor.run(workflow).ok  # no exception was left pending in this thread


async def test_a_plugin_printing_heavily_does_not_hold_up_the_server(client, capfd):
    client = await client()
    chatty = await submit(client, graph("Chatty", lines=20_000))
    good = await submit(client, GOOD)
    record = await wait_record(client, chatty)
    assert record["status"] == "success" and record["outputs"]["2"]["text"] == ["20000"]
    assert (await wait_record(client, good))["status"] == "success"
    out, err = capfd.readouterr()
    assert out.count("chatty plugin line") == 20_000 and err.count("chatty plugin warning") == 20_000


# --- an interrupt keeps what was finished -----------------------------------------------------------

async def test_interrupted_run_keeps_finished_nodes_cached(client):
    client = await client()
    workflow = {"nodes": {"1": {"type": "Canvas", "inputs": {"steps": 2, "red": 99}},
                          "2": {"type": "Hold", "inputs": {"image": ["1", 0]}},
                          "3": {"type": "SaveTestImage", "inputs": {"image": ["2", 0], "prefix": "held"}}}}
    first = await submit(client, workflow)
    await wait_running(client, "Hold")
    await client.post("/api/interrupt")
    record = await wait_record(client, first)
    assert record["status"] == "interrupted" and record["executed"] == ["1"]
    server_nodes.Hold.gate.set()
    again = await wait_record(client, await submit(client, workflow))
    assert again["status"] == "success"
    assert again["cached"] == ["1"] and again["executed"] == ["2", "3"]


def test_executor_keeps_outputs_of_nodes_finished_before_an_interrupt(toy_registry):
    """Interrupted after the second node of a chain: those two are cached (not run again) and
    give the same values; the other two run."""
    import toy_nodes

    workflow = parse_workflow({"nodes": {
        "a": {"type": "Number", "inputs": {"value": 3}},
        "b": {"type": "Scale", "inputs": {"x": ["a", 0], "factor": 2}},
        "c": {"type": "Add", "inputs": {"a": ["b", 0], "b": ["a", 0]}},
        "d": {"type": "Show", "inputs": {"x": ["c", 0]}},
    }})
    executor = Executor(toy_registry)
    interrupt = threading.Event()

    def on_event(event):  # interrupt once the second node is done
        if event["type"] == "node_finished" and event["node"] == "b":
            interrupt.set()

    stopped = executor.run(workflow, interrupt=interrupt, on_event=on_event)
    assert stopped.status == "interrupted" and stopped.executed == ["a", "b"]
    assert dict(toy_nodes.runs) == {"Number": 1, "Scale": 1}
    toy_nodes.runs.clear()
    done = executor.run(workflow)
    assert done.ok and done.cached == ["a", "b"] and done.executed == ["c", "d"]
    assert dict(toy_nodes.runs) == {"Add": 1, "Show": 1}
    assert done.values["b"] == stopped.values["b"] == (6.0,) and done.outputs["d"] == {"text": ["9.0"]}
