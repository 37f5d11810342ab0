"""The server on loopback: runs, progress, queue, cancel, interrupt, restart, validation."""

import asyncio
import io
import json

import pytest
from aiohttp import WSMsgType
from PIL import Image

import server_nodes
from graphflow import folders as folders_module
from graphflow.registry import Registry
from graphflow.server.app import SERVER, create_app
from graphflow.server.events import parse_preview_frame
from graphflow.validation import validate
from graphflow.workflow import parse_workflow
from server_nodes import Hold

TIMEOUT = 20  # generous upper bound; every wait ends on an event, not on the clock


@pytest.fixture
def home(tmp_path):
    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=tmp_path)
    Hold.gate = __import__("threading").Event()
    yield tmp_path
    Hold.gate.set()  # never leave a worker thread waiting
    folders_module.folders.__dict__.update(saved)


@pytest.fixture
def registry():
    registry = Registry()
    for cls in server_nodes.SERVER_NODES:
        registry.add(cls, source="tests")
    return registry


@pytest.fixture
def start(aiohttp_client, registry, home):
    async def start(db=None, **options):
        app = create_app(registry, db or home / "runs.db", web_dir=None, **options)
        return await aiohttp_client(app)
    return start


def image_workflow(prefix="t", red=255, steps=3, hold=False, fail=False) -> dict:
    nodes = {"1": {"type": "Canvas", "inputs": {"red": red, "steps": steps}}}
    source = ["1", 0]
    if hold:
        nodes["2"] = {"type": "Hold", "inputs": {"image": source}}
        source = ["2", 0]
    if fail:
        nodes["3"] = {"type": "Boom", "inputs": {"image": source}}
    else:
        nodes["3"] = {"type": "SaveTestImage", "inputs": {"image": source, "prefix": prefix}}
    return {"version": 1, "nodes": nodes}


async def submit(client, workflow, **extra) -> dict:
    response = await client.post("/api/runs", json={"workflow": workflow, **extra})
    body = await response.json()
    assert response.status == 200, body
    return body


async def receive_until(ws, predicate, timeout=TIMEOUT) -> list[dict]:
    """Websocket messages (binary frames as {"type": "frame", ...}) up to the first matching one."""
    got = []

    async def collect():
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.TEXT:
                item = json.loads(msg.data)
            elif msg.type == WSMsgType.BINARY:
                meta, image = parse_preview_frame(msg.data)
                item = {"type": "frame", "data": meta, "image": image}
            else:
                raise AssertionError(f"websocket ended: {msg.type} {msg.data!r}")
            got.append(item)
            if predicate(item):
                return got

    return await asyncio.wait_for(collect(), timeout)


def finished(run_id):
    return lambda m: m["type"] == "run_finished" and m["data"]["run_id"] == run_id


def started_node(node_type):
    return lambda m: m["type"] == "node_started" and m["data"]["node_type"] == node_type


async def wait_status(client, run_id, statuses, timeout=TIMEOUT) -> dict:
    """Poll one run's record until it reaches a status (used where no websocket is listening)."""
    async def poll():
        while True:
            record = await (await client.get(f"/api/history/{run_id}")).json()
            if record["status"] in statuses:
                return record
            await asyncio.sleep(0.01)
    return await asyncio.wait_for(poll(), timeout)


async def test_submit_streams_progress_and_serves_outputs(start, home):
    client = await start()
    ws = await client.ws_connect("/ws?client_id=alice")
    first = await receive_until(ws, lambda m: True)
    assert first[0]["type"] == "status" and first[0]["data"]["client_id"] == "alice"

    queued = await submit(client, image_workflow(prefix="red", steps=4), client_id="alice")
    run_id = queued["run_id"]
    assert queued["position"] == 0
    messages = await receive_until(ws, finished(run_id))
    kinds = [m["type"] for m in messages if m["type"] not in ("queue", "frame")]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.index("node_started") < kinds.index("progress") < kinds.index("node_finished")

    progress = [m["data"] for m in messages if m["type"] == "progress"]
    assert [(p["value"], p["max"]) for p in progress] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(p["run_id"] == run_id and p["node"] == "1" and p["client_id"] == "alice" for p in progress)
    frames = [m for m in messages if m["type"] == "frame"]
    assert len(frames) == 4
    for step, frame in enumerate(frames, 1):
        assert frame["data"]["run_id"] == run_id and frame["data"]["node"] == "1"
        assert frame["data"]["value"] == step and frame["data"]["image_type"] == "image/jpeg"
        preview = Image.open(io.BytesIO(frame["image"]))
        assert preview.format == "JPEG" and preview.size == (32, 24)
        assert abs(preview.getpixel((5, 5))[0] - round(255 * step / 4)) <= 8  # JPEG is lossy

    done = messages[-1]["data"]
    assert done["status"] == "success" and done["client_id"] == "alice"
    image = done["outputs"]["3"]["images"][0]
    assert image["type"] == "output" and image["filename"].startswith("red_")

    # History is written before run_finished goes out.
    record = await (await client.get(f"/api/history/{run_id}")).json()
    assert record["status"] == "success" and record["outputs"] == done["outputs"]
    assert set(record["timings"]) == {"1", "3"} and record["finished_at"] >= record["started_at"]
    assert record["workflow"]["nodes"]["3"]["inputs"]["prefix"] == "red"

    response = await client.get("/api/view", params={"filename": image["filename"], "type": "output"})
    assert response.status == 200 and response.content_type == "image/png"
    served = Image.open(io.BytesIO(await response.read()))
    assert served.getpixel((0, 0)) == (255, 0, 0)
    assert (home / "outputs" / image["filename"]).is_file()

    thumb = await client.get("/api/view", params={"filename": image["filename"], "thumbnail": "16"})
    assert thumb.content_type == "image/jpeg" and max(Image.open(io.BytesIO(await thumb.read())).size) == 16

    listing = await (await client.get("/api/history")).json()
    assert listing["total"] == 1 and listing["items"][0]["run_id"] == run_id
    assert "workflow" not in listing["items"][0]


async def test_queue_order_positions_and_front(start):
    client = await start(paused=True)
    runs = [await submit(client, image_workflow(prefix=f"q{i}", red=10 * i)) for i in range(3)]
    assert [r["position"] for r in runs] == [0, 1, 2]
    assert runs[0]["number"] < runs[1]["number"] < runs[2]["number"]
    urgent = await submit(client, image_workflow(prefix="urgent"), front=True)
    assert urgent["position"] == 0

    queue = await (await client.get("/api/queue")).json()
    expected = [urgent["run_id"]] + [r["run_id"] for r in runs]
    assert [p["run_id"] for p in queue["pending"]] == expected
    assert [p["position"] for p in queue["pending"]] == [0, 1, 2, 3]
    assert queue["running"] == []

    ws = await client.ws_connect("/ws")
    client.server.app[SERVER].resume()
    messages = await receive_until(ws, finished(runs[-1]["run_id"]))
    assert [m["data"]["run_id"] for m in messages if m["type"] == "run_started"] == expected
    queue = await (await client.get("/api/queue")).json()
    assert queue == {"running": [], "pending": [], "pending_total": 0}


async def test_cancel_pending_and_refuse_cancelling_running(start):
    client = await start()
    ws = await client.ws_connect("/ws")
    blocker = await submit(client, image_workflow(prefix="block", hold=True))
    await receive_until(ws, started_node("Hold"))
    keep = await submit(client, image_workflow(prefix="keep"))
    drop = await submit(client, image_workflow(prefix="drop"))
    assert drop["position"] == 1

    response = await client.delete(f"/api/queue/{drop['run_id']}")
    assert response.status == 200 and (await response.json())["status"] == "cancelled"
    messages = await receive_until(ws, lambda m: m["type"] == "run_cancelled")
    assert messages[-1]["data"]["run_id"] == drop["run_id"]
    queue = await (await client.get("/api/queue")).json()
    assert [p["run_id"] for p in queue["pending"]] == [keep["run_id"]]
    assert [r["run_id"] for r in queue["running"]] == [blocker["run_id"]]
    assert queue["running"][0]["node_type"] == "Hold"

    assert (await client.delete(f"/api/queue/{blocker['run_id']}")).status == 409
    assert (await client.delete(f"/api/queue/{drop['run_id']}")).status == 409
    assert (await client.delete("/api/queue/no-such-run")).status == 404

    Hold.gate.set()
    messages = await receive_until(ws, finished(keep["run_id"]))
    assert drop["run_id"] not in {m["data"].get("run_id") for m in messages if m["type"] == "run_started"}
    record = await (await client.get(f"/api/history/{drop['run_id']}")).json()
    assert record["status"] == "cancelled" and record["started_at"] is None
    statuses = {i["run_id"]: i["status"] for i in (await (await client.get("/api/history")).json())["items"]}
    assert statuses == {blocker["run_id"]: "success", keep["run_id"]: "success", drop["run_id"]: "cancelled"}


async def test_interrupt_running_run(start):
    client = await start()
    ws = await client.ws_connect("/ws")
    run = await submit(client, image_workflow(hold=True))
    after = await submit(client, image_workflow(prefix="after"))
    await receive_until(ws, started_node("Hold"))

    response = await client.post("/api/interrupt")
    assert (await response.json()) == {"interrupted": [run["run_id"]]}
    messages = await receive_until(ws, finished(run["run_id"]))
    stopped = [m["data"] for m in messages if m["type"] == "run_interrupted"]
    assert stopped == [{"run_id": run["run_id"], "node": "2", "node_type": "Hold", "client_id": None, "executed": ["1"]}]
    assert messages[-1]["data"]["status"] == "interrupted"
    record = await (await client.get(f"/api/history/{run['run_id']}")).json()
    assert record["status"] == "interrupted" and record["error"]["node_id"] == "2"

    # The queue goes on with the next run.
    messages = await receive_until(ws, finished(after["run_id"]))
    assert messages[-1]["data"]["status"] == "success"
    assert (await (await client.post("/api/interrupt", json={})).json()) == {"interrupted": []}


async def test_failing_node_reports_structured_error(start):
    client = await start()
    ws = await client.ws_connect("/ws")
    run = await submit(client, image_workflow(fail=True))
    messages = await receive_until(ws, finished(run["run_id"]))
    failed = [m["data"] for m in messages if m["type"] == "node_failed"]
    assert len(failed) == 1
    error = failed[0]["error"]
    assert (error["node_id"], error["node_type"], error["input"]) == ("3", "Boom", "image")
    assert error["message"] == "this node refuses every image" and error["exception_type"] == "NodeInputError"
    assert messages[-1]["data"]["status"] == "error" and messages[-1]["data"]["error"]["node_id"] == "3"
    record = await (await client.get(f"/api/history/{run['run_id']}")).json()
    assert record["status"] == "error" and record["error"]["input"] == "image"
    failed_only = await (await client.get("/api/history", params={"status": "error"})).json()
    assert [i["run_id"] for i in failed_only["items"]] == [run["run_id"]]


async def test_restart_keeps_pending_runs_and_history(start, home):
    db = home / "state" / "queue.db"
    client = await start(db)
    ws = await client.ws_connect("/ws")
    first = await submit(client, image_workflow(prefix="before"))
    done = await receive_until(ws, finished(first["run_id"]))
    first_image = done[-1]["data"]["outputs"]["3"]["images"][0]["filename"]

    held = await submit(client, image_workflow(prefix="held", hold=True))
    await receive_until(ws, started_node("Hold"))
    later = [await submit(client, image_workflow(prefix=f"later{i}", red=i)) for i in range(2)]
    await client.close()  # the server stops: the held run is interrupted and goes back to the queue

    Hold.gate.set()
    client = await start(db, paused=True)
    queue = await (await client.get("/api/queue")).json()
    expected = [held["run_id"]] + [r["run_id"] for r in later]
    assert [p["run_id"] for p in queue["pending"]] == expected
    record = await (await client.get(f"/api/history/{held['run_id']}")).json()
    assert record["status"] == "pending" and record["started_at"] is None

    ws = await client.ws_connect("/ws")
    client.server.app[SERVER].resume()
    messages = await receive_until(ws, finished(later[-1]["run_id"]))
    assert [m["data"]["run_id"] for m in messages if m["type"] == "run_started"] == expected
    assert all(m["data"]["status"] == "success" for m in messages if m["type"] == "run_finished")

    history = await (await client.get("/api/history")).json()
    assert history["total"] == 4
    assert {i["run_id"] for i in history["items"]} == {first["run_id"], *expected}
    old = await (await client.get(f"/api/history/{first['run_id']}")).json()
    assert old["status"] == "success" and old["outputs"]["3"]["images"][0]["filename"] == first_image
    assert (await client.get("/api/view", params={"filename": first_image})).status == 200


async def test_run_left_running_by_a_crash_is_requeued_once(home, registry, aiohttp_client):
    from graphflow.server.store import RunStore

    db = home / "crash.db"
    store = RunStore(db)
    workflow = parse_workflow(image_workflow(prefix="crash"), registry).to_json()
    store.add("crashed", workflow)
    assert store.claim_next()["run_id"] == "crashed"  # the process dies here, mid-run
    store.close()

    client = await aiohttp_client(create_app(registry, db, web_dir=None))
    record = await wait_status(client, "crashed", ("success", "error"))
    assert record["status"] == "success"

    store = RunStore(db)  # a run that took the server down twice is not tried again
    store.add("poison", workflow)
    store.claim_next()
    store.requeue("poison")
    store.claim_next()
    assert store.recover() == []
    assert store.get("poison")["status"] == "error"
    assert "stopped during this run" in store.get("poison")["error"]["message"]
    store.close()


async def test_invalid_workflow_is_refused_with_every_problem(start, registry):
    client = await start()
    workflow = {"version": 1, "nodes": {
        "1": {"type": "Canvas", "inputs": {"width": 0, "steps": 2}},
        "2": {"type": "Canvs", "inputs": {}},
        "3": {"type": "SaveTestImage", "inputs": {"image": ["1", 0], "bogus": 1}},
        "4": {"type": "SaveTestImage", "inputs": {"prefix": "x"}},
    }}
    response = await client.post("/api/runs", json={"workflow": workflow})
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid workflow"
    cli_report = [p.to_dict() for p in validate(parse_workflow(workflow, registry), registry)]
    assert body["problems"] == cli_report
    assert {(p["node_id"], p["input"]) for p in body["problems"]} == {
        ("1", "width"), ("2", None), ("3", "bogus"), ("4", "image")}
    assert "did you mean Canvas" in next(p["message"] for p in body["problems"] if p["node_id"] == "2")

    for bad in (b"{not json", json.dumps({"nothing": 1}).encode(), json.dumps({"workflow": {"nodes": 5}}).encode()):
        response = await client.post("/api/runs", data=bad, headers={"Content-Type": "application/json"})
        body = await response.json()
        assert response.status == 400 and body["problems"][0]["node_id"] is None, body

    comfy = {"1": {"class_type": "Canvas", "inputs": {"red": 300}},
             "2": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0]}}}
    response = await client.post("/prompt", json={"prompt": comfy})
    assert response.status == 400
    body = await response.json()
    assert body["node_errors"]["1"]["errors"][0]["extra_info"]["input_name"] == "red"

    assert (await (await client.get("/api/queue")).json())["pending_total"] == 0
    assert (await (await client.get("/api/history")).json())["total"] == 0


async def test_comfyui_api_format_and_prompt_endpoint(start):
    client = await start()
    ws = await client.ws_connect("/ws")
    graph = {"1": {"class_type": "Canvas", "inputs": {"red": 40, "steps": 1}, "_meta": {"title": "Paint"}},
             "2": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0], "prefix": "comfy"}}}
    ours = await submit(client, graph)
    response = await client.post("/prompt", json={"prompt": graph, "client_id": "script"})
    assert response.status == 200
    body = await response.json()
    assert body["node_errors"] == {} and body["number"] > ours["number"]
    messages = await receive_until(ws, finished(body["prompt_id"]))
    assert messages[-1]["data"]["client_id"] == "script"
    history = await (await client.get(f"/history/{body['prompt_id']}")).json()
    entry = history[body["prompt_id"]]
    assert entry["status"]["completed"] is True and "images" in entry["outputs"]["2"]
    cached = [m["data"] for m in messages if m["type"] == "node_cached" and m["data"]["run_id"] == body["prompt_id"]]
    assert [c["node"] for c in cached] == ["1"]  # the same Canvas as the first run: from the cache
    record = await (await client.get(f"/api/history/{ours['run_id']}")).json()
    assert record["workflow"]["ui"]["titles"] == {"1": "Paint"}

    converted = await (await client.post("/api/workflow/convert", json={"workflow": graph})).json()
    assert converted == {"workflow": record["workflow"], "format": "graphflow", "problems": [], "notes": []}
    broken = dict(graph, **{"3": {"class_type": "Nowhere", "inputs": {}}})
    converted = await (await client.post("/api/workflow/convert", json={"workflow": broken})).json()
    assert converted["workflow"]["nodes"]["3"]["type"] == "Nowhere"
    assert [p["node_id"] for p in converted["problems"]] == ["3"]
    response = await client.post("/api/workflow/convert", json={"workflow": [1, 2]})
    assert response.status == 400 and (await response.json())["problems"][0]["node_id"] is None


async def test_two_clients_see_the_run_and_a_late_client_catches_up(start):
    client = await start()
    ws1 = await client.ws_connect("/ws?client_id=one")
    ws2 = await client.ws_connect("/ws?client_id=two")
    run = await submit(client, image_workflow(hold=True, steps=2), client_id="one")
    for ws in (ws1, ws2):
        messages = await receive_until(ws, started_node("Hold"))
        assert any(m["type"] == "progress" and m["data"]["run_id"] == run["run_id"] for m in messages)
        assert sum(m["type"] == "frame" for m in messages) == 2

    late = await client.ws_connect("/ws?client_id=late")
    status = (await receive_until(late, lambda m: True))[0]
    assert status["type"] == "status"
    running = status["data"]["queue"]["running"]
    assert [r["run_id"] for r in running] == [run["run_id"]]
    assert running[0]["node"] == "2" and running[0]["node_type"] == "Hold" and running[0]["client_id"] == "one"
    assert status["data"]["previews"] == [run["run_id"]]
    frame = (await receive_until(late, lambda m: True))[0]
    assert frame["type"] == "frame" and frame["data"]["run_id"] == run["run_id"] and frame["data"]["value"] == 2

    Hold.gate.set()
    for ws in (ws1, ws2, late):
        messages = await receive_until(ws, finished(run["run_id"]))
        assert messages[-1]["data"]["status"] == "success"
    await ws2.send_json({"type": "ping"})
    assert (await receive_until(ws2, lambda m: m["type"] == "pong"))[-1]["type"] == "pong"


async def test_catalogue_system_and_free(start):
    import torch

    client = await start()
    catalogue = await (await client.get("/api/nodes")).json()
    assert set(catalogue["nodes"]) == {"Canvas", "Hold", "SaveTestImage", "Boom"}
    assert catalogue["nodes"]["Canvas"]["inputs"][0]["name"] == "width"

    system = await (await client.get("/api/system")).json()
    assert system["device"]["device"] and system["versions"]["torch"] == torch.__version__
    assert system["workers"] == 1 and system["queue"] == {"running": 0, "pending": 0}

    cache = client.server.app[SERVER].cache
    cache.put("model", (torch.nn.Linear(4, 4),))
    cache.put("latent", ({"samples": torch.zeros(1, 4, 8, 8)},))
    body = await (await client.post("/api/free", json={"models": True})).json()
    assert body["dropped"] == 1 and "model" not in cache and "latent" in cache
    body = await (await client.post("/api/free", json={"cache": True})).json()
    assert body["dropped"] == 1 and body["cache"]["entries"] == 0 and len(cache) == 0


async def test_history_paging_and_delete(start):
    client = await start()
    ws = await client.ws_connect("/ws")
    runs = [await submit(client, image_workflow(prefix=f"p{i}", steps=1)) for i in range(5)]
    await receive_until(ws, finished(runs[-1]["run_id"]))
    page = await (await client.get("/api/history", params={"offset": 1, "limit": 2})).json()
    assert page["total"] == 5 and page["limit"] == 2
    assert [i["run_id"] for i in page["items"]] == [runs[3]["run_id"], runs[2]["run_id"]]
    assert (await client.get("/api/history", params={"limit": "9999"})).status == 400
    assert (await client.get("/api/history", params={"status": "bogus"})).status == 400
    assert (await client.delete(f"/api/history/{runs[0]['run_id']}")).status == 200
    assert (await client.get(f"/api/history/{runs[0]['run_id']}")).status == 404
    assert (await (await client.get("/api/history")).json())["total"] == 4


async def test_two_workers_run_two_graphs_at_once(start):
    client = await start(workers=2, cache_max_bytes=10**6)
    ws = await client.ws_connect("/ws")
    runs = [await submit(client, image_workflow(prefix=f"w{i}", red=i, hold=True)) for i in range(2)]
    holding = set()
    await receive_until(ws, lambda m: m["type"] == "node_started" and m["data"]["node_type"] == "Hold"
                        and holding.add(m["data"]["run_id"]) is None and len(holding) == 2)
    queue = await (await client.get("/api/queue")).json()
    assert {r["run_id"] for r in queue["running"]} == {r["run_id"] for r in runs} == holding
    assert (await (await client.post("/api/interrupt", json={"run_id": runs[0]["run_id"]})).json()) == {
        "interrupted": [runs[0]["run_id"]]}
    await receive_until(ws, finished(runs[0]["run_id"]))
    Hold.gate.set()
    await receive_until(ws, finished(runs[1]["run_id"]))
    statuses = [(await (await client.get(f"/api/history/{r['run_id']}")).json())["status"] for r in runs]
    assert statuses == ["interrupted", "success"]
    system = await (await client.get("/api/system")).json()
    assert system["workers"] == 2 and system["cache"]["max_bytes"] == 10**6


async def test_example_workflows_are_served(aiohttp_client, tmp_path):
    import json
    from pathlib import Path

    from graphflow.server.app import create_app

    client = await aiohttp_client(create_app(db_path=tmp_path / "h.db"))
    listing = await (await client.get("/api/workflows")).json()
    assert "txt2img" in listing["workflows"]
    served = await (await client.get("/api/workflows/txt2img")).json()
    on_disk = json.loads((Path(__file__).parent.parent / "workflows" / "txt2img.json").read_text())
    assert served == on_disk
    assert (await client.get("/api/workflows/nope")).status == 404
    assert (await client.get("/api/workflows/..%2Fpyproject")).status in (400, 404)
