"""Scale-out on a local Ray cluster (CPU workers, the demo model at 64x64, few steps).

One cluster and one pool of two worker actors serve the whole module (actors take seconds to
start); each test builds a server on it with its own database. The test that kills a worker
runs last: the pool then starts a replacement.
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import WSMsgType
from PIL import Image

ray = pytest.importorskip("ray")

from graphflow import folders as folders_module  # noqa: E402
from graphflow.folders import BUNDLED  # noqa: E402
from graphflow.registry import default_registry  # noqa: E402
from graphflow.server.app import SERVER, create_app  # noqa: E402
from graphflow.server.events import parse_preview_frame  # noqa: E402
from graphflow.server.store import RunStore  # noqa: E402

from graphflow.cluster import RayDispatcher, WorkerPool  # noqa: E402
from graphflow.sweep import SweepProgress, read_results, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120  # upper bound on a wait on this busy 2-core machine; every wait ends on an event
DEMO = "graphflow-demo.safetensors"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("ray-home")
    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=home)
    checkpoints = home / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in ("ckpt-c.safetensors", "ckpt-d.safetensors"):  # the demo model under other names
        shutil.copy(BUNDLED / "checkpoints" / DEMO, checkpoints / name)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=3, include_dashboard=False, namespace="graphflow-tests", log_to_driver=False)
    pool = WorkerPool(workers=2, torch_threads=1)
    try:
        pool.start()
        yield pool, home
    finally:
        pool.shutdown()
        ray.shutdown()
        folders_module.folders.__dict__.update(saved)


@pytest.fixture
def start(aiohttp_client, cluster, tmp_path):
    pool, home = cluster
    registry = default_registry()

    async def start(db=None, **options):
        app = create_app(registry, db or tmp_path / "runs.db", web_dir=None,
                         dispatcher=RayDispatcher(pool, owns_pool=False), **options)
        client = await aiohttp_client(app)
        await wait_until(lambda: len(pool.slots) == 2 and app[SERVER].dispatcher.server is not None)
        return client
    return start


def txt2img(seed=1, steps=3, checkpoint=DEMO, prefix="ray") -> dict:
    workflow = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    workflow.pop("ui", None)
    nodes = workflow["nodes"]
    nodes["1"]["inputs"]["checkpoint"] = checkpoint
    nodes["4"]["inputs"]["batch_size"] = 1
    nodes["5"]["inputs"].update(seed=seed, steps=steps)
    nodes["7"]["inputs"]["filename_prefix"] = prefix
    return workflow


async def wait_until(predicate, timeout=TIMEOUT):
    async def poll():
        while not predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


async def next_message(ws) -> dict:
    """The next websocket message; a binary preview frame as {"type": "frame"}."""
    msg = await ws.receive(timeout=TIMEOUT)
    if msg.type == WSMsgType.BINARY:
        return {"type": "frame", "data": parse_preview_frame(msg.data)[0]}
    assert msg.type == WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def submit(client, workflow) -> str:
    response = await client.post("/api/runs", json={"workflow": workflow})
    body = await response.json()
    assert response.status == 200, body
    return body["run_id"]


async def finished(client, run_id, timeout=TIMEOUT) -> dict:
    async def poll():
        while True:
            record = await (await client.get(f"/api/history/{run_id}")).json()
            if record["status"] not in ("pending", "running"):
                return record
            await asyncio.sleep(0.05)
    return await asyncio.wait_for(poll(), timeout)


def worker_loads(pool) -> dict[str, dict]:
    return {info["name"]: info["loads"] for info in ray.get([s.actor.info.remote() for s in pool.slots])}


async def test_runs_spread_over_two_workers_and_come_back_with_their_files(start, cluster):
    pool, home = cluster
    client = await start(paused=True)
    ws = await client.ws_connect("/ws")
    run_ids = [await submit(client, txt2img(seed=s, prefix="spread")) for s in range(4)]

    async def stream_kinds() -> set:  # read as they come: an unread socket misses the server's pings
        kinds = set()
        while True:
            msg = await next_message(ws)
            kinds.add(msg["type"])
            if msg["type"] == "run_finished" and msg["data"]["run_id"] == run_ids[-1]:
                return kinds

    streamed = asyncio.create_task(stream_kinds())
    client.app[SERVER].resume()
    records = [await finished(client, r) for r in run_ids]

    assert [r["status"] for r in records] == ["success"] * 4, [r["error"] for r in records]
    workers = {r["placement"]["worker"] for r in records}
    assert workers == {s.name for s in pool.slots}  # both workers ran some
    for record in records:
        placement = record["placement"]
        assert placement["device"] == "cpu" and placement["run_seconds"] > 0 and placement["queue_wait"] >= 0
    # The images came back to the server's output folder, one file each, workflow embedded.
    names = [r["outputs"]["7"]["images"][0]["filename"] for r in records]
    assert len(set(names)) == 4
    for name in names:
        with Image.open(home / "outputs" / name) as image:
            assert image.size == (64, 64)
            assert json.loads(image.info["graphflow"])["nodes"]["7"]["inputs"]["filename_prefix"] == "spread"
    # Node events and progress streamed from the workers to the websocket.
    assert {"node_started", "progress", "frame", "node_finished", "run_finished"} <= await streamed
    system = await (await client.get("/api/system")).json()
    assert system["workers"] == 2
    listed = system["cluster"]["workers"]
    assert {w["name"] for w in listed} == workers and all(w["device"] == "cpu" for w in listed)
    assert any(f"LoadCheckpoint({DEMO})" in w["loaded"] for w in listed)
    await ws.close()


async def test_free_reaches_the_workers(start, cluster):
    pool, _ = cluster
    client = await start()
    await finished(client, await submit(client, txt2img(seed=99, prefix="free")))
    response = await client.post("/api/free", json={"models": True})
    assert (await response.json())["dropped"] >= 1
    assert all(info["loaded"] == {} for info in ray.get([s.actor.info.remote() for s in pool.slots]))


async def test_alternating_checkpoints_settle_one_per_worker(start, cluster):
    pool, _ = cluster
    before = worker_loads(pool)
    client = await start(paused=True)
    # Two of each: with more, a worker that finishes its model's runs while several runs of the
    # other model still wait may rightly load that model too (the dispatcher's "spread"), which
    # depends on timing; with two of each at most one run ever waits for a busy worker's model.
    sequence = ["ckpt-c.safetensors", "ckpt-d.safetensors"] * 2
    run_ids = [await submit(client, txt2img(seed=i, checkpoint=c, prefix="affinity")) for i, c in enumerate(sequence)]
    client.app[SERVER].resume()
    records = [await finished(client, r) for r in run_ids]
    assert [r["status"] for r in records] == ["success"] * len(sequence)

    ran_on = {c: {r["placement"]["worker"] for r, cc in zip(records, sequence) if cc == c} for c in set(sequence)}
    order = [(c[5], r["placement"]["worker"], r["started_at"]) for r, c in zip(records, sequence)]
    assert len(ran_on["ckpt-c.safetensors"]) == 1 and len(ran_on["ckpt-d.safetensors"]) == 1, order
    assert ran_on["ckpt-c.safetensors"] != ran_on["ckpt-d.safetensors"]
    # Each checkpoint was loaded once in all, not once per worker.
    after = worker_loads(pool)
    for checkpoint in ("ckpt-c.safetensors", "ckpt-d.safetensors"):
        label = f"LoadCheckpoint({checkpoint})"
        loads = {name: after[name].get(label, 0) - before.get(name, {}).get(label, 0) for name in after}
        assert sorted(loads.values()) == [0, 1], (checkpoint, loads)


async def test_an_uploaded_input_goes_with_the_run(start, cluster):
    pool, home = cluster
    client = await start()
    upload = home / "inputs" / "uploads" / "mine.png"
    upload.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (10, 200, 30)).save(upload)  # only in the server's inputs folder
    workflow = json.loads((ROOT / "workflows" / "img2img.json").read_text())
    workflow.pop("ui", None)
    workflow["nodes"]["4"]["inputs"]["image"] = "uploads/mine.png"
    workflow["nodes"]["6"]["inputs"]["steps"] = 2
    record = await finished(client, await submit(client, workflow))
    assert record["status"] == "success", record["error"]
    with Image.open(home / "outputs" / record["outputs"]["8"]["images"][0]["filename"]) as image:
        assert image.size == (64, 64)


async def test_interrupt_reaches_a_remote_run(start):
    client = await start()
    ws = await client.ws_connect("/ws")
    run_id = await submit(client, txt2img(seed=7, steps=400, prefix="interrupt"))
    while True:  # a progress event from the worker: it is sampling
        msg = await next_message(ws)
        if msg["type"] == "progress" and msg["data"]["run_id"] == run_id:
            break
    response = await client.post("/api/interrupt", json={"run_id": run_id})
    assert (await response.json())["interrupted"] == [run_id]
    record = await finished(client, run_id)
    assert record["status"] == "interrupted"
    assert record["error"]["node_type"] == "KSampler"
    assert record["placement"]["run_seconds"] < 60
    await ws.close()


async def test_restart_resumes_pending_runs_on_the_cluster(start, tmp_path):
    db = tmp_path / "restart.db"
    first = await start(db, paused=True)
    run_ids = [await submit(first, txt2img(seed=20 + i, prefix="restart")) for i in range(3)]
    await first.close()  # the server stops with three runs queued
    store = RunStore(db)
    store.claim(run_ids[0])  # and one of them left running, as after a kill -9
    store.close()

    second = await start(db)
    records = [await finished(second, r) for r in run_ids]
    assert [r["status"] for r in records] == ["success"] * 3
    assert all(r["placement"]["worker"].startswith("worker-") for r in records)
    total = (await (await second.get("/api/history")).json())["total"]
    assert total == 3


def test_sweep_in_process_resumes_after_sigint(cluster, tmp_path):
    _, home = cluster
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(txt2img(steps=2, prefix="sweep")))
    sweep = tmp_path / "sweep.jsonl"
    sweep.write_text("".join(json.dumps({"5.seed": i, "2.text": f"shape {i}"}) + "\n" for i in range(20)))
    results = tmp_path / "sweep.results.jsonl"
    command = [sys.executable, "-m", "graphflow.cli", "run", str(workflow), "--sweep", str(sweep),
               "--output-dir", str(home / "sweep-out"), "--models-dir", str(home / "models")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    while len(read_results(results)) < 4:
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.poll() else ""
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(TIMEOUT) == 130
    partial = read_results(results)
    assert 4 <= len(partial) < 20

    # Resumed here, by the function the command calls (a second process start costs ~15 s here).
    from graphflow.workflow import parse_workflow
    from graphflow.sweep import read_sweep

    registry = default_registry()
    saved = folders_module.folders.outputs
    folders_module.folders.outputs = home / "sweep-out"  # as the command's --output-dir
    try:
        resumed = run_sweep(parse_workflow(json.loads(workflow.read_text()), registry), read_sweep(sweep), results,
                            registry)
    finally:
        folders_module.folders.outputs = saved
    assert resumed["skipped"] == len(partial) and resumed["ran"] == 20 - len(partial) and resumed["failed"] == 0
    final = read_results(results)
    assert sorted(final) == list(range(20)) and all(r["status"] == "success" for r in final.values())
    lines = results.read_text().splitlines()
    assert len(lines) == 20  # no line ran twice
    files = [f for r in final.values() for f in r["files"]]
    assert len(set(files)) == 20 and all((home / "sweep-out" / f).is_file() for f in files)


class StopAfter(SweepProgress):
    def __init__(self, total, done, stop, after):
        super().__init__(total, done, quiet=True)
        self.stop, self.after = stop, after

    def update(self, ok):
        super().update(ok)
        if self.ran >= self.after:
            self.stop.set()


def test_sweep_on_ray_spreads_and_resumes(cluster, tmp_path):
    import threading

    from graphflow.workflow import parse_workflow

    pool, home = cluster
    registry = default_registry()
    workflow = parse_workflow(txt2img(steps=2, prefix="raysweep"), registry)
    lines = [{"5.seed": i} for i in range(20)]
    results = tmp_path / "results.jsonl"
    stop = threading.Event()
    first = run_sweep(workflow, lines, results, registry, pool=pool, stop=stop,
                      progress=StopAfter(20, 0, stop, after=6))
    assert first["interrupted"] and 6 <= first["ran"] < 20
    second = run_sweep(workflow, lines, results, registry, pool=pool)
    assert not second["interrupted"] and second["skipped"] == first["ran"] and second["failed"] == 0
    final = read_results(results)
    assert sorted(final) == list(range(20)) and all(r["status"] == "success" for r in final.values())
    assert {r["worker"] for r in final.values()} == {s.name for s in pool.slots}
    files = [f for r in final.values() for f in r["files"]]
    assert len(set(files)) == 20 and all((home / "outputs" / f).is_file() for f in files)


async def test_zz_killed_worker_run_completes_elsewhere_and_the_pool_heals(start, cluster):
    pool, _ = cluster
    client = await start()
    server = client.app[SERVER]
    ws = await client.ws_connect("/ws")
    long_run = await submit(client, txt2img(seed=30, steps=150, prefix="killed"))
    behind = [await submit(client, txt2img(seed=31 + i, prefix="behind")) for i in range(2)]
    while True:
        msg = await next_message(ws)
        if msg["type"] == "progress" and msg["data"]["run_id"] == long_run:
            break
    victim = next(s for s in pool.slots if s.run_id == long_run)
    ray.kill(victim.actor)

    record = await finished(client, long_run)
    assert record["status"] == "success", record["error"]
    assert record["placement"]["worker"] != victim.name
    assert record["placement"]["died_on"] == [victim.name]
    for run_id in behind:
        assert (await finished(client, run_id))["status"] == "success"
    history = await (await client.get("/api/history")).json()
    assert history["total"] == 3 and server.store.count_pending() == 0
    assert victim.name not in {s.name for s in pool.slots}  # dropped
    await wait_until(lambda: len(pool.slots) == 2)  # and replaced, without a restart
    system = await (await client.get("/api/system")).json()
    assert victim.name not in {w["name"] for w in system["cluster"]["workers"]}
    await ws.close()


async def test_a_run_that_kills_two_workers_is_recorded_as_an_error(aiohttp_client, tmp_path, monkeypatch):
    """The dispatcher's bookkeeping, with workers whose every call dies (no processes killed)."""
    import graphflow.cluster as cluster
    from graphflow.cluster import Slot, WorkerDied

    class DyingPool(WorkerPool):
        def start(self):
            self.slots = [Slot("doomed-1", None), Slot("doomed-2", None)]

        def missing(self):
            return []

    calls = []

    async def dies(slot, run_id, *args, **kwargs):
        calls.append(slot.name)
        raise WorkerDied(f"worker {slot.name} died during run {run_id}")

    monkeypatch.setattr(cluster, "execute_remote", dies)
    monkeypatch.setattr(cluster, "RECONCILE_INTERVAL", 3600)
    pool = DyingPool(workers=2)
    app = create_app(default_registry(), tmp_path / "runs.db", web_dir=None, dispatcher=RayDispatcher(pool, False))
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/ws")
    run_id = await submit(client, txt2img())
    record = await finished(client, run_id)
    assert record["status"] == "error" and record["error"]["exception_type"] == "WorkerDied"
    assert sorted(calls) == ["doomed-1", "doomed-2"]  # requeued once, ran elsewhere, not a third time
    assert record["placement"]["died_on"] == calls
    assert pool.slots == []  # both dropped
    kinds = []
    while "run_finished" not in kinds:
        kinds.append((await next_message(ws))["type"])
    assert kinds.count("run_requeued") == 1
    await ws.close()
