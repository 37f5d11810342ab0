"""A server in a subprocess, killed with SIGKILL while it works its queue and restarted on the
same folders: tests/test_persistence.py runs a few kills, bench/soak.py many.

The server is `graphflow serve`'s own serve() on an ephemeral loopback port with cheap nodes:
the plugin soak_plugin/soak_pattern.py's `Pattern` (a seeded image built over a few steps,
with progress and a short sleep per step so that most kills land inside a run) and the
built-in `SaveImage`, which writes a PNG with the workflow embedded (`cli=True` starts the
real `graphflow serve --plugins-dir`, with every built-in node: slower to start). Every run has its own seed, so each output can be checked against the run
that made it: same seed in the PNG, same pixels as recomputing the pattern here.

    python tests/persistence.py --serve HOME  # the subprocess
"""

import importlib.util
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = Path(__file__).resolve().parent / "soak_plugin"
PREFIX = "kill/run"  # one prefix for every run: SaveImage's numbering is part of what is tested
FINISHED = ("success", "error", "interrupted", "cancelled", "invalid")


def _load_pattern():
    spec = importlib.util.spec_from_file_location("soak_pattern_reference", PLUGIN_DIR / "soak_pattern.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pattern


pattern = _load_pattern()  # to recompute each run's image here


def registry():
    """SaveImage and the plugin's Pattern: what `graphflow serve --plugins-dir` would offer of them."""
    import nodes.image
    from graphflow.plugins import load_plugins
    from graphflow.registry import Registry

    r = Registry()
    r.add(nodes.image.SaveImage)
    load_plugins(r, [PLUGIN_DIR], entry_points=False)
    assert not r.problems, r.problems
    return r


def workflow(seed: int, size: int = 64, steps: int = 4, pause: float = 0.01) -> dict:
    return {"version": 1, "nodes": {
        "1": {"type": "Pattern", "inputs": {"seed": seed, "size": size, "steps": steps, "pause": pause}},
        "2": {"type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": PREFIX}},
    }}


def serve_main(home: str, workers: int) -> None:
    from graphflow import folders
    from graphflow.server.app import serve

    torch.set_num_threads(1)
    folders.configure(home=Path(home))
    sys.exit(serve("127.0.0.1", 0, db_path=Path(home) / "runs.db", workers=workers, registry=registry()))


# --- the parent's side ------------------------------------------------------------------------

class ServerProcess:
    """The server, started and waited for; its output goes to HOME/server.log."""

    def __init__(self, home: Path, workers: int = 1, cli: bool = False):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                   GRAPHFLOW_HOME=str(home), OMP_NUM_THREADS="1")
        if cli:
            command = [sys.executable, "-m", "graphflow.cli", "serve", "--port", "0", "--db", str(home / "runs.db"),
                       "--output-dir", str(home / "outputs"), "--plugins-dir", str(PLUGIN_DIR),
                       "--workers", str(workers)]
        else:
            command = [sys.executable, str(Path(__file__).resolve()), "--serve", str(home), "--workers", str(workers)]
        log_path = home / "server.log"
        start = log_path.stat().st_size if log_path.exists() else 0
        self.log = open(log_path, "a")
        self.process = subprocess.Popen(command, cwd=home, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        text=True)
        deadline = time.monotonic() + 120
        while "running at http://" not in (text := log_path.read_text()[start:]):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"the server did not start:\n{text}")
            time.sleep(0.02)
        self.url = text.split("running at ", 1)[1].split()[0]
        self.pid = self.process.pid

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.load(response)

    def post(self, path: str, body: dict):
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self.log.close()
        return code


def runs_table(db: Path) -> dict[str, dict]:
    """Every run's status, attempts and outputs, read straight from the database."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT run_id, status, attempts, outputs, workflow FROM runs").fetchall()
    finally:
        connection.close()
    return {r[0]: {"status": r[1], "attempts": r[2], "outputs": json.loads(r[3]) if r[3] else None,
                   "seed": json.loads(r[4])["nodes"]["1"]["inputs"]["seed"]} for r in rows}


def statuses(db: Path) -> dict[str, tuple[str, int]]:
    """run id -> (status, attempts): the cheap read the waits poll."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {r[0]: (r[1], r[2]) for r in connection.execute("SELECT run_id, status, attempts FROM runs")}
    finally:
        connection.close()


def integrity(db: Path) -> str:
    connection = sqlite3.connect(db)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.03)


@dataclass
class KillReport:
    kills: int = 0
    submitted: dict[str, int] = field(default_factory=dict)  # run id -> seed, as acknowledged
    unacknowledged: int = 0  # runs stored whose submission got no answer (the kill cut it off)
    hit_running: int = 0  # kills that landed while a run was running (it ran again)
    integrity: list[str] = field(default_factory=list)  # integrity_check after each kill and at the end
    lost: list[str] = field(default_factory=list)  # runs (acknowledged or stored) not finished successfully
    changed: list[str] = field(default_factory=list)  # finished runs whose record changed after a kill
    bad_outputs: list[str] = field(default_factory=list)  # outputs missing, unreadable or not their run's
    unreadable_files: list[str] = field(default_factory=list)  # any PNG in outputs that can't be read
    orphans: int = 0  # complete PNGs of runs that were killed after saving and ran again
    temp_files: int = 0  # SaveImage's temporary files left by a kill mid-write
    exit_code: int | None = None  # of the last server, stopped with SIGINT after the checks
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.changed or self.bad_outputs or self.unreadable_files) and \
            all(i == "ok" for i in self.integrity) and self.exit_code == 0

    def summary(self) -> str:
        return (f"{self.kills} kills ({self.hit_running} mid-run), {len(self.submitted)} runs acknowledged "
                f"(+{self.unacknowledged} stored unacknowledged): lost {len(self.lost)}, finished records "
                f"changed {len(self.changed)}, bad outputs {len(self.bad_outputs)}, unreadable files "
                f"{len(self.unreadable_files)}, integrity {sorted(set(self.integrity))}; orphan PNGs "
                f"{self.orphans}, temp files left {self.temp_files}; {self.seconds:.1f} s")


class Trickle:
    """Submits up to `per_life` runs, `every` seconds apart, to each server while it is up, so
    that kills also land while a submission is in flight; keeps the acknowledged ones."""

    def __init__(self, seeds, lock: threading.Lock, size: int, every: float, per_life: int = 3):
        self.seeds, self.lock, self.size, self.every, self.per_life = seeds, lock, size, every, per_life
        self.url, self.left = None, 0
        self.acknowledged: dict[str, int] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def serve(self, url: str | None) -> None:
        self.url, self.left = url, self.per_life

    def _main(self):
        while not self.stopping.wait(self.every):
            url = self.url
            if url is None or self.left <= 0:
                continue
            self.left -= 1
            with self.lock:
                seed = next(self.seeds)
            body = json.dumps({"workflow": workflow(seed, size=self.size)}).encode()
            request = urllib.request.Request(url + "api/runs", data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    self.acknowledged[json.load(response)["run_id"]] = seed
            except (OSError, ValueError):  # the server died under it
                pass

    def stop(self):
        self.stopping.set()
        self.thread.join(30)


def kill_cycle(home: Path, kills: int, runs_per_kill: int, seed: int = 0, workers: int = 1,
               window: float = 0.05, size: int = 64, pause: float = 0.03, trickle: float | None = 0.1,
               timeout: float = 120, cli: bool = False) -> KillReport:
    """Submit runs, SIGKILL the server at a random moment while it works them (and, with
    `trickle`, while a few more are submitted, `trickle` seconds apart), restart it on the same
    folders; `kills` times, then let the last server drain the queue and check everything."""
    began = time.monotonic()
    rng = random.Random(seed)
    db = home / "runs.db"
    report = KillReport()
    seeds = iter(range(seed * 10**6, (seed + 1) * 10**6))
    finished_before: dict[str, dict] = {}
    seeds_lock = threading.Lock()
    background = Trickle(seeds, seeds_lock, size, trickle) if trickle else None

    for _ in range(kills):
        server = ServerProcess(home, workers, cli)
        # The runs a kill left running are first in the queue again; let them finish before the
        # next kill, so no run is hit twice (a run that kills the server twice is given up on).
        redo = [r for r, (status, attempts) in statuses(db).items() if attempts > 0 and status not in FINISHED]
        batch = []
        for _ in range(runs_per_kill):
            with seeds_lock:
                s = next(seeds)
            batch.append(server.post("api/runs", {"workflow": workflow(s, size=size, pause=pause)})["run_id"])
            report.submitted[batch[-1]] = s
        if background:
            background.serve(server.url)
        wait_until(lambda: all(statuses(db)[r][0] in FINISHED for r in redo), timeout, "requeued runs")
        # The kill comes after a random number of this batch's runs, at a random moment of the next.
        done = rng.randrange(runs_per_kill)
        wait_until(lambda: sum(statuses(db)[r][0] in FINISHED for r in batch) >= done, timeout,
                   f"{done} runs")
        time.sleep(rng.uniform(0, window))
        server.kill()
        if background:
            background.serve(None)
        report.kills += 1
        report.integrity.append(integrity(db))
        table = runs_table(db)
        finished_before.update({r: row for r, row in table.items() if row["status"] in FINISHED})
    if background:
        background.stop()
        report.submitted.update(background.acknowledged)

    server = ServerProcess(home, workers, cli)
    wait_until(lambda: all(status in FINISHED for status, _ in statuses(db).values()), timeout,
               "the queue to drain")
    history = {}
    offset = 0
    while True:  # the history as a client reads it
        page = server.get(f"api/history?limit=500&offset={offset}")
        history.update({item["run_id"]: item for item in page["items"]})
        offset += len(page["items"])
        if offset >= page["total"] or not page["items"]:
            break
    report.exit_code = server.stop()
    report.integrity.append(integrity(db))

    table = runs_table(db)
    stored = {r: row["seed"] for r, row in table.items()}
    report.unacknowledged = len(stored.keys() - report.submitted.keys())
    report.hit_running = sum(row["attempts"] > 1 for row in table.values())
    report.changed = [r for r, row in finished_before.items() if table[r] != row]
    report.lost = [r for r in report.submitted.keys() | stored.keys() if history.get(r, {}).get("status") != "success"]
    outputs = home / "outputs"
    referenced = set()
    for run_id, s in {**stored, **report.submitted}.items():
        if run_id in report.lost:
            continue
        try:
            (image,) = history[run_id]["outputs"]["2"]["images"]
            path = outputs / image["subfolder"] / image["filename"]
            referenced.add(path)
            check_output(path, s, size)
        except (KeyError, ValueError, OSError, AssertionError) as e:
            report.bad_outputs.append(f"{run_id}: {type(e).__name__}: {e}")
    for path in sorted(outputs.rglob("*.png")):
        try:
            read_png(path)
        except (OSError, ValueError) as e:
            report.unreadable_files.append(f"{path.name}: {e}")
    report.orphans = len(set(outputs.rglob("*.png")) - referenced)
    report.temp_files = len(list(outputs.rglob(".*.tmp")))
    report.seconds = time.monotonic() - began
    return report


def read_png(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.copy(), dict(image.text)


def check_output(path: Path, seed: int, size: int) -> None:
    """The PNG is the one its run made: its seed in the embedded workflow, its pixels."""
    import numpy as np

    from graphflow.images import image_to_pil

    image, text = read_png(path)
    embedded = json.loads(text["graphflow"])["nodes"]["1"]["inputs"]["seed"]
    assert embedded == seed, f"{path.name} holds the workflow of seed {embedded}, not {seed}"
    expected = np.asarray(image_to_pil(pattern(seed, size, 4)[0]))
    assert np.array_equal(np.asarray(image), expected), f"{path.name}: pixels differ from seed {seed}'s"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", metavar="HOME", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve_main(args.serve, args.workers)
