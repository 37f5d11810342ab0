"""Soak the server: many websocket clients and a long queue, then many kill -9s.

1. `graphflow serve` (the real command, with the cheap plugin tests/soak_plugin) on an ephemeral
   loopback port; C websocket clients connect and together queue N cheap prompts (noise image
   -> SaveImage) as fast as the server takes them. Checked: every client sees every run's
   `run_finished` (success), and the server's memory (RSS) once the queue has drained is within
   10% of what it was before (measured after a warm-up, with the clients connected). Printed:
   p50/p99 submit-to-done latency (the submitting client's view, queueing included).
2. The long version of tests/test_persistence.py: K kills with SIGKILL at random moments while
   the queue is worked, restarts on the same folders, then: no run, history entry or output
   lost, and SQLite's integrity_check says ok.

    python bench/soak.py [--clients 50] [--prompts 1000] [--kills 30] [--runs-per-kill 8]
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import persistence  # noqa: E402  (tests/persistence.py: the server process and the kill cycle)


def rss(pid: int) -> tuple[int, int]:
    """(resident, peak resident) bytes of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Client:
    """One websocket client: records when each run_finished reaches it."""

    def __init__(self, session, url: str, name: str):
        self.session, self.url, self.name = session, url, name
        self.finished: dict[str, tuple[float, str]] = {}
        self.changed = asyncio.Event()
        self.closed_early = None
        self.node_events = 0  # node_finished messages received (these may be dropped for a client behind)

    async def connect(self):
        self.ws = await self.session.ws_connect(self.url + f"ws?client_id={self.name}", max_msg_size=0)
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        import aiohttp

        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT and '"node_finished"' in msg.data:
                self.node_events += 1
            elif msg.type == aiohttp.WSMsgType.TEXT and '"run_finished"' in msg.data:
                data = json.loads(msg.data)["data"]
                self.finished[data["run_id"]] = (time.perf_counter(), data["status"])
                self.changed.set()
        self.closed_early = f"websocket closed: {self.ws.close_code}"
        self.changed.set()

    async def submit(self, workflow: dict) -> tuple[str, float]:
        began = time.perf_counter()
        async with self.session.post(self.url + "api/runs", json={"workflow": workflow, "client_id": self.name}) as r:
            body = await r.json()
            assert r.status == 200, body
        return body["run_id"], began

    async def wait_for(self, run_ids: set[str], timeout: float):
        deadline = time.monotonic() + timeout
        while not run_ids <= self.finished.keys():
            if self.closed_early:
                raise AssertionError(f"client {self.name}: {self.closed_early}")
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"client {self.name} saw {len(run_ids & self.finished.keys())} of "
                                     f"{len(run_ids)} completions")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass


async def websocket_soak(url: str, pid: int, clients: int, prompts: int, timeout: float) -> dict:
    import aiohttp

    seeds = iter(range(10**9))
    cheap = dict(size=16, steps=1, pause=0.0)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        pool = [Client(session, url, f"soak{i}") for i in range(clients)]
        await asyncio.gather(*(c.connect() for c in pool))
        warm = [await pool[0].submit(persistence.workflow(next(seeds), **cheap)) for _ in range(20)]
        await asyncio.gather(*(c.wait_for({r for r, _ in warm}, timeout) for c in pool))
        await asyncio.sleep(1)
        before, _ = rss(pid)

        per_client = [prompts // clients + (i < prompts % clients) for i in range(clients)]

        async def queue(client, n):
            return [await client.submit(persistence.workflow(next(seeds), **cheap)) for _ in range(n)]

        began = time.perf_counter()
        submitted = await asyncio.gather(*(queue(c, n) for c, n in zip(pool, per_client)))
        queued_in = time.perf_counter() - began
        all_runs = {r for batch in submitted for r, _ in batch}
        await asyncio.gather(*(c.wait_for(all_runs, timeout) for c in pool))
        drained_in = time.perf_counter() - began
        await asyncio.sleep(1)
        after, peak = rss(pid)

        latencies, failed = [], 0
        for client, batch in zip(pool, submitted):
            for run_id, t0 in batch:
                done, status = client.finished[run_id]
                latencies.append(done - t0)
                failed += status != "success"
        seen = [len(all_runs & c.finished.keys()) for c in pool]
        node_events = [c.node_events / (2 * (len(all_runs) + len(warm))) for c in pool]  # two nodes a run
        for c in pool:
            await c.ws.close()
            c.reader.cancel()
    return {"runs": len(all_runs), "clients": clients, "every_client_saw": min(seen), "failed": failed,
            "queued_in": queued_in, "drained_in": drained_in, "rss_before": before, "rss_after": after,
            "rss_peak": peak, "p50": statistics.median(latencies), "p99": percentile(latencies, 0.99),
            "node_events": (min(node_events), max(node_events))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--runs-per-kill", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="server workers in the kill test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    ok = True
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)

    if args.prompts:
        with tempfile.TemporaryDirectory() as home:
            server = persistence.ServerProcess(Path(home), cli=True)
            try:
                figures = asyncio.run(websocket_soak(server.url, server.pid, args.clients, args.prompts, args.timeout))
            except BaseException:
                print("server log (last lines):", *(Path(home) / "server.log").read_text().splitlines()[-15:],
                      sep="\n  ")
                raise
            finally:
                server.stop()
        mb = 2**20
        growth = figures["rss_after"] / figures["rss_before"] - 1
        print(f"websocket soak: {figures['runs']} prompts queued by {figures['clients']} clients in "
              f"{figures['queued_in']:.1f} s, drained in {figures['drained_in']:.1f} s; every client saw "
              f"{figures['every_client_saw']}/{figures['runs']} completions, {figures['failed']} failed")
        print(f"  node_finished messages received: {figures['node_events'][0]:.0%} to {figures['node_events'][1]:.0%} "
              "per client (the rest dropped for clients behind; no run_finished is dropped)")
        print(f"  submit-to-done latency: p50 {figures['p50'] * 1000:.0f} ms, p99 {figures['p99'] * 1000:.0f} ms "
              "(queueing included)")
        print(f"  server RSS: {figures['rss_before'] / mb:.1f} MiB before, {figures['rss_after'] / mb:.1f} MiB after "
              f"the queue drained ({growth:+.1%}), peak {figures['rss_peak'] / mb:.1f} MiB", flush=True)
        ok &= figures["every_client_saw"] == figures["runs"] and figures["failed"] == 0 and growth <= 0.10

    if args.kills:
        with tempfile.TemporaryDirectory() as home:
            report = persistence.kill_cycle(Path(home), args.kills, args.runs_per_kill, seed=args.seed,
                                            workers=args.workers, size=128, timeout=args.timeout)
            log = (Path(home) / "server.log").read_text()
        print(f"kill -9 soak: the server log has {log.count('Traceback')} tracebacks")
        print(f"kill -9 soak ({args.workers} worker(s)): {report.summary()}", flush=True)
        for problem in report.lost + report.changed + report.bad_outputs + report.unreadable_files:
            print("  ", problem)
        ok &= report.ok
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
