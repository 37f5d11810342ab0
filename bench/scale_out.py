"""Throughput of the demo txt2img on the single-process server, and on 1 and 2 Ray workers
(one torch thread each), in the same run; and the dispatch overhead per run against the
local worker.

    PYTHONPATH=. python bench/scale_out.py [--runs 16] [--steps 8] [--size 64]

Throughput: `runs` runs (distinct seeds; the model stays loaded) submitted at once, timed
from the first submit to the last finished record. Overhead: `--latency-runs` one-step runs
one after another; per run, the server's time from handing the run over to recording its
result, minus the executor's own time (the Ray round trip, event stream and file shipping; or
the local thread hand-off), on one Ray worker minus on the local worker. The submit-to-finished
latency of those runs is printed too. The goal with 2 workers is 1.8x the single process; it needs 2 free cores.
"""

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def workflow(seed: int, steps: int, size: int) -> dict:
    data = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    data.pop("ui", None)
    nodes = data["nodes"]
    nodes["4"]["inputs"].update(width=size, height=size, batch_size=1)
    nodes["5"]["inputs"].update(seed=seed, steps=steps)
    nodes["7"]["inputs"]["filename_prefix"] = "bench"
    return data


async def measure(registry, db: Path, dispatcher, args, base: int) -> dict:
    """Seeds from `base`: each configuration runs its own, so no worker's cache holds a result."""
    from aiohttp.test_utils import TestClient, TestServer

    from graphflow.server.app import create_app

    app = create_app(registry, db, web_dir=None, dispatcher=dispatcher)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        ws = await client.ws_connect("/ws")

        async def run_all(items) -> list[dict]:
            ids = []
            for item in items:
                response = await client.post("/api/runs", json={"workflow": item})
                ids.append((await response.json())["run_id"])
            waiting = set(ids)
            while waiting:  # the websocket says when, without polling (the client shares this process)
                msg = await ws.receive()
                if msg.type.name == "TEXT":
                    data = json.loads(msg.data)
                    if data["type"] == "run_finished":
                        waiting.discard(data["data"]["run_id"])
            records = [await (await client.get(f"/api/history/{run_id}")).json() for run_id in ids]
            for record in records:
                assert record["status"] == "success", record.get("error")
            return records

        await run_all([workflow(base + 10_000 + i, args.steps, args.size) for i in range(2)])  # load the model everywhere
        began = time.perf_counter()
        records = await run_all([workflow(base + i, args.steps, args.size) for i in range(args.runs)])
        wall = time.perf_counter() - began
        latencies, overheads = [], []
        for i in range(args.latency_runs):
            began = time.perf_counter()
            (record,) = await run_all([workflow(base + 20_000 + i, 1, args.size)])
            latencies.append(time.perf_counter() - began)
            # What the worker added around the executor: the Ray round trip and file shipping,
            # or the local thread hand-off (from the server's start of the run to its finish).
            placement = record["placement"]
            overheads.append(placement["dispatch_seconds"] if "dispatch_seconds" in placement
                             else record["finished_at"] - record["started_at"] - record["elapsed"])
        workers = sorted({r["placement"]["worker"] for r in records})
        return {"throughput": args.runs / wall, "wall": wall, "latency_ms": 1000 * statistics.mean(latencies),
                "overhead_ms": 1000 * statistics.mean(overheads),
                "run_ms": 1000 * statistics.mean(r["placement"]["run_seconds"] for r in records), "workers": workers}
    finally:
        await ws.close()
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--latency-runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    import ray

    from graphflow.cluster import RayDispatcher, WorkerPool
    from graphflow.folders import configure
    from graphflow.registry import default_registry

    home = Path(tempfile.mkdtemp(prefix="graphflow-bench-"))
    configure(home=home)
    registry = default_registry()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    both = WorkerPool(workers=2, torch_threads=1)
    both.start()
    one = WorkerPool(workers=1, torch_threads=1)
    one.slots = both.slots[:1]  # the same actor: no second start
    print(f"cores: {os.cpu_count()}; {args.runs} runs of {args.steps} steps at {args.size}x{args.size}, "
          f"{args.rounds} rounds (medians)", flush=True)
    configs = {"single process": lambda: None, "ray, 1 worker": lambda: RayDispatcher(one, owns_pool=False),
               "ray, 2 workers": lambda: RayDispatcher(both, owns_pool=False)}
    results = {name: [] for name in configs}
    base = 0
    # Rounds interleave the configurations, so a burst of load from elsewhere hits them alike.
    for round_ in range(args.rounds):
        for name, dispatcher in configs.items():
            base += 100_000
            r = asyncio.run(measure(registry, home / f"{base}.db", dispatcher(), args, base))
            results[name].append(r)
            print(f"round {round_ + 1}, {name}: {r['throughput']:.2f} runs/s, run {r['run_ms']:.0f} ms, "
                  f"1-step latency {r['latency_ms']:.0f} ms, overhead {r['overhead_ms']:.1f} ms, load average {os.getloadavg()[0]:.1f}", flush=True)
    both.shutdown()
    ray.shutdown()

    median = {name: {key: statistics.median(r[key] for r in rs) for key in ("throughput", "run_ms", "latency_ms", "overhead_ms")}
              for name, rs in results.items()}
    local = median["single process"]
    print()
    print(f"{'':16}{'runs/s':>8}{'vs local':>10}{'run ms':>9}{'1-step latency ms':>19}{'overhead ms':>13}")
    for name, r in median.items():
        print(f"{name:16}{r['throughput']:8.2f}{r['throughput'] / local['throughput']:9.2f}x"
              f"{r['run_ms']:9.1f}{r['latency_ms']:19.1f}{r['overhead_ms']:13.1f}")
    print(f"ray 2 workers / ray 1 worker: {median['ray, 2 workers']['throughput'] / median['ray, 1 worker']['throughput']:.2f}x")
    print(f"dispatch overhead per run (server-side time around the executor, ray 1 worker - single process): "
          f"{median['ray, 1 worker']['overhead_ms'] - local['overhead_ms']:.1f} ms")


if __name__ == "__main__":
    main()
