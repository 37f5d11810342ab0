"""Server throughput and latency: N small graphs from several concurrent clients.

Starts `graphflow serve`'s application in a subprocess on 127.0.0.1 (with this file's small
nodes), then:
  1. one client, one graph at a time: submit-to-done latency against running the same graphs
     with the Executor directly in this process (the ratio is the server's overhead: HTTP,
     validation, SQLite, the worker hand-off and the websocket);
  2. C clients at once, each submitting its next graph as soon as its last one is done:
     throughput and p50/p99 submit-to-done latency (which includes waiting in the queue).
Every graph has its own seed, so nothing comes from the cache.

    python bench/server.py [--graphs 200] [--clients 4] [--steps 4] [--size 96]
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from graphflow.api import FLOAT, IMAGE, Int, Node, progress, show

REPO = Path(__file__).resolve().parents[1]


class BenchNoise(Node):
    """Seeded noise image."""
    seed: int = Int(0, min=0, max=2**31)
    size: int = Int(96, min=8, max=1024)
    outputs = {"image": IMAGE}

    def run(self):
        generator = torch.Generator().manual_seed(self.seed)
        return torch.rand(1, self.size, self.size, 3, generator=generator)


class BenchSmooth(Node):
    """A few steps of box blur, reporting progress like a sampler."""
    image: IMAGE
    steps: int = Int(4, min=1, max=100)
    outputs = {"image": IMAGE}

    def run(self):
        x = self.image.permute(0, 3, 1, 2)
        kernel = torch.full((3, 1, 3, 3), 1 / 9)
        for i in range(1, self.steps + 1):
            x = torch.nn.functional.conv2d(x, kernel, padding=1, groups=3)
            progress(i, self.steps)
        return x.permute(0, 2, 3, 1)


class BenchStat(Node):
    """Output node: the image's mean."""
    output_node = True
    image: IMAGE
    outputs = {"mean": FLOAT}

    def run(self):
        mean = float(self.image.mean())
        show(text=[f"{mean:.6f}"])
        return mean


BENCH_NODES = (BenchNoise, BenchSmooth, BenchStat)


def registry():
    from graphflow.registry import Registry

    r = Registry()
    for cls in BENCH_NODES:
        r.add(cls, source="bench")
    return r


def graph(seed: int, steps: int, size: int) -> dict:
    return {"version": 1, "nodes": {
        "1": {"type": "BenchNoise", "inputs": {"seed": seed, "size": size}},
        "2": {"type": "BenchSmooth", "inputs": {"image": ["1", 0], "steps": steps}},
        "3": {"type": "BenchStat", "inputs": {"image": ["2", 0]}},
    }}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_server(db: str) -> None:
    """The subprocess: serve on an ephemeral loopback port with the bench nodes."""
    from graphflow.server.app import serve

    torch.set_num_threads(1)
    sys.exit(serve("127.0.0.1", 0, db_path=db, registry=registry()))


def direct(graphs: list[dict]) -> list[float]:
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    reg = registry()
    executor = Executor(reg)
    executor.run(parse_workflow(graph(10**6, 1, 8), reg))  # warm up
    latencies = []
    for g in graphs:
        began = time.perf_counter()
        result = executor.run(parse_workflow(g, reg))  # parse counts: the server parses too
        assert result.ok, result.error
        latencies.append(time.perf_counter() - began)
    return latencies


class BenchClient:
    """One client: its own HTTP session and websocket; waits for its runs' run_finished."""

    def __init__(self, session, url: str):
        self.session, self.url = session, url
        self.done: dict[str, float] = {}
        self.waiting: dict[str, asyncio.Future] = {}

    async def connect(self):
        self.ws = await self.session.ws_connect(self.url + "ws")
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        import aiohttp

        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            if '"run_finished"' not in msg.data:
                continue
            import json

            data = json.loads(msg.data)["data"]
            now = time.perf_counter()
            assert data["status"] == "success", data
            future = self.waiting.pop(data["run_id"], None)
            if future is not None:
                future.set_result(now)
            else:
                self.done[data["run_id"]] = now

    async def run(self, workflow: dict) -> float:
        began = time.perf_counter()
        async with self.session.post(self.url + "api/runs", json={"workflow": workflow}) as response:
            body = await response.json()
            assert response.status == 200, body
        run_id = body["run_id"]
        if run_id in self.done:  # finished before the response was read
            return self.done.pop(run_id) - began
        future = asyncio.get_running_loop().create_future()
        self.waiting[run_id] = future
        return await future - began

    async def close(self):
        await self.ws.close()
        self.reader.cancel()


async def through_server(url: str, batches: list[list[dict]]) -> tuple[list[float], float]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        clients = [BenchClient(session, url) for _ in batches]
        for client in clients:
            await client.connect()
        await clients[0].run(graph(10**6 + 1, 1, 8))  # warm up

        async def work(client, graphs):
            return [await client.run(g) for g in graphs]

        began = time.perf_counter()
        results = await asyncio.gather(*(work(c, b) for c, b in zip(clients, batches)))
        wall = time.perf_counter() - began
        for client in clients:
            await client.close()
    return [x for r in results for x in r], wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--graphs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)  # the server subprocess
    args = parser.parse_args()
    if args.serve:
        return run_server(args.serve)

    import tempfile

    torch.set_num_threads(1)
    n, c = args.graphs, args.clients
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, GRAPHFLOW_HOME=home, PYTHONPATH=str(REPO))
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(Path(home) / "bench.db")],
                                  cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = server.stdout.readline()
            if "http://" not in line:
                raise SystemExit(f"the server did not start: {line!r}")
            url = line.split()[4]

            seeds = iter(range(10 * n))
            sequential = [graph(next(seeds), args.steps, args.size) for _ in range(n)]
            direct_lat = direct(sequential)
            serial_lat, serial_wall = asyncio.run(through_server(url, [[graph(next(seeds), args.steps, args.size)
                                                                         for _ in range(n)]]))
            batches = [[graph(next(seeds), args.steps, args.size) for _ in range(n // c)] for _ in range(c)]
            concurrent_lat, concurrent_wall = asyncio.run(through_server(url, batches))
        finally:
            server.terminate()
            server.wait(timeout=30)

    ms = 1000
    direct_p50, serial_p50 = statistics.median(direct_lat), statistics.median(serial_lat)
    direct_throughput = n / sum(direct_lat)
    print(f"graphs: {n} x (noise {args.size}px -> {args.steps} blur steps -> stat), nothing cached; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"executor directly, one at a time: p50 {direct_p50 * ms:.2f} ms, p99 {percentile(direct_lat, 0.99) * ms:.2f} ms, "
          f"{direct_throughput:.1f} graphs/s")
    print(f"server, 1 client, one at a time:  p50 {serial_p50 * ms:.2f} ms, p99 {percentile(serial_lat, 0.99) * ms:.2f} ms, "
          f"{n / serial_wall:.1f} graphs/s")
    print(f"  submit-to-done overhead vs direct: {serial_p50 / direct_p50:.2f}x at p50 "
          f"(+{(serial_p50 - direct_p50) * ms:.2f} ms per graph)")
    total = len(concurrent_lat)
    print(f"server, {c} concurrent clients:    {total / concurrent_wall:.1f} graphs/s "
          f"({total / concurrent_wall / direct_throughput:.2f}x direct throughput), submit-to-done "
          f"p50 {statistics.median(concurrent_lat) * ms:.2f} ms, p99 {percentile(concurrent_lat, 0.99) * ms:.2f} ms")


if __name__ == "__main__":
    main()
