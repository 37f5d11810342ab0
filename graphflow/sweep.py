"""Sweeps: one workflow run once per line of overrides, in this process or on Ray workers.

A sweep file is JSON lines; each line is an object of `"NODE.INPUT": value` overrides (the
same as `--set NODE.INPUT=VALUE`) or a list of "NODE.INPUT=VALUE" strings. The results file
gets one JSON line per finished run: its line number, overrides, status, files (relative to
the output folder) and where it ran. Lines with a successful result are skipped when the
sweep is run again, so an interrupted sweep resumes where it stopped.
"""

import json
import threading
import time
from pathlib import Path


class SweepError(ValueError):
    """The sweep file can't be read (names the line)."""


def parse_assignment(text: str):
    """"NODE.INPUT=VALUE" -> ("NODE", "INPUT", value); VALUE is JSON or plain text (as --set)."""
    key, sep, raw = text.partition("=")
    node_id, dot, name = key.rpartition(".")
    if not sep or not dot or not node_id or not name:
        raise ValueError(f"{text!r}: expected NODE_ID.INPUT=VALUE")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return node_id, name, value


def read_sweep(path) -> list[dict]:
    """The overrides of each line, as {"NODE.INPUT": value}; blank lines are skipped."""
    lines = []
    for number, text in enumerate(Path(path).read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as e:
            raise SweepError(f"{path}, line {number}: not JSON ({e.msg})") from None
        if isinstance(item, list) and all(isinstance(x, str) for x in item):
            try:
                item = {f"{n}.{i}": v for n, i, v in map(parse_assignment, item)}
            except ValueError as e:
                raise SweepError(f"{path}, line {number}: {e}") from None
        if not isinstance(item, dict) or not all(isinstance(k, str) and "." in k for k in item):
            raise SweepError(f'{path}, line {number}: expected {{"NODE_ID.INPUT": value, ...}} '
                             'or ["NODE_ID.INPUT=VALUE", ...]')
        lines.append(item)
    return lines


def apply_overrides(workflow, overrides: dict):
    """A copy of the workflow with the overrides set; KeyError names a node it doesn't have."""
    copy = workflow.model_copy(deep=True) if hasattr(workflow, "model_copy") else _copy(workflow)
    for key, value in overrides.items():
        node_id, _, name = key.rpartition(".")
        if node_id not in copy.nodes:
            raise KeyError(f"{key!r}: the workflow has no node {node_id!r}")
        copy.nodes[node_id].inputs[name] = value
    return copy


def _copy(workflow):
    import copy

    return copy.deepcopy(workflow)


def read_results(path) -> dict[int, dict]:
    """The last result recorded for each line (a torn last line, from a kill, is ignored)."""
    results = {}
    path = Path(path)
    if path.is_file():
        for text in path.read_text().splitlines():
            try:
                item = json.loads(text)
                results[int(item["line"])] = item
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return results


def image_files(outputs: dict) -> list[str]:
    """The saved images of a run's outputs, relative to the output folder."""
    files = []
    for shown in outputs.values():
        for image in shown.get("images", []):
            if image.get("type", "output") == "output" and "filename" in image:  # none: sent, not saved
                files.append("/".join(p for p in (image.get("subfolder", ""), image["filename"]) if p))
    return files


class SweepProgress:
    """One progress bar for the whole sweep, on stderr."""

    def __init__(self, total: int, done: int = 0, stream=None, quiet: bool = False):
        import sys

        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.total, self.done, self.failed, self.quiet = total, done, 0, quiet
        self.started = time.perf_counter()
        self.ran = 0
        self._shown = -1

    def update(self, ok: bool) -> None:
        self.done += 1
        self.ran += 1
        self.failed += not ok
        if self.quiet:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        rate = self.ran / max(time.perf_counter() - self.started, 1e-9)
        bar = (f"  sweep |{'#' * filled}{'.' * (width - filled)}| {self.done}/{self.total}"
               + (f", {self.failed} failed" if self.failed else "") + f"  {rate:.2f} runs/s")
        if self.live:
            self.stream.write("\r" + bar + ("\n" if self.done == self.total else ""))
        elif self.done * 10 // max(self.total, 1) != self._shown:  # about every tenth
            self._shown = self.done * 10 // max(self.total, 1)
            self.stream.write(bar + "\n")
        self.stream.flush()


def run_sweep(workflow, lines: list[dict], results_path, registry, *, limits=None, pool=None,
              stop: threading.Event | None = None, progress: SweepProgress | None = None) -> dict:
    """Run the lines not yet done (per the results file), in this process or on `pool`'s Ray
    workers; append each result as it finishes. Returns {"ran", "skipped", "failed", "interrupted"}."""
    results_path = Path(results_path)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    done = {i for i, r in read_results(results_path).items() if r.get("status") == "success"}
    todo = [i for i in range(len(lines)) if i not in done]
    stop = stop or threading.Event()
    progress = progress or SweepProgress(len(lines), len(done), quiet=True)
    counts = {"ran": 0, "skipped": len(done), "failed": 0, "interrupted": False}
    lock = threading.Lock()

    with open(results_path, "a") as out:
        def record(index: int, status: str, files=(), error=None, **where) -> None:
            item = {"line": index, "overrides": lines[index], "status": status, "files": list(files),
                    "error": error, **where}
            with lock:
                out.write(json.dumps(item, default=str) + "\n")
                out.flush()
                counts["ran"] += 1
                counts["failed"] += status != "success"
                progress.update(status == "success")

        prepared = {}
        for index in todo:
            try:
                prepared[index] = apply_overrides(workflow, lines[index])
            except KeyError as e:
                record(index, "invalid", error=str(e.args[0]))
        runnable = [i for i in todo if i in prepared]
        if pool is None:
            _run_here(prepared, runnable, registry, limits, stop, record, counts)
        else:
            import asyncio

            def restart_clock() -> None:
                progress.started = time.perf_counter()

            asyncio.run(_run_on_ray(prepared, runnable, registry, pool, stop, record, counts, restart_clock))
    return counts


def _message(error) -> str | None:
    if not error:
        return None
    where = f"node {error.get('node_id')} ({error.get('node_type')})" if error.get("node_id") else "run"
    return f"{where}: {error.get('exception_type')}: {error.get('message')}"


def _run_here(prepared, runnable, registry, limits, stop, record, counts) -> None:
    from graphflow.executor import Executor

    executor = Executor(registry, limits=limits)
    for index in runnable:
        if stop.is_set():
            counts["interrupted"] = True
            return
        result = executor.run(prepared[index], interrupt=stop)
        result.values.clear()
        if result.status == "interrupted" and stop.is_set():
            counts["interrupted"] = True  # not recorded: it runs again on resume
            return
        error = _message(result.error) or ("; ".join(map(str, result.problems)) or None)
        record(index, result.status, image_files(result.outputs), error, worker="local", elapsed=result.elapsed)


async def _run_on_ray(prepared, runnable, registry, pool, stop, record, counts, progress_started) -> None:
    import asyncio

    from graphflow.cluster import MAX_WORKER_DEATHS, WorkerDied, execute_remote, model_keys, store_files

    await asyncio.to_thread(pool.start)
    progress_started()  # the rate counts runs, not the cluster's start
    todo = list(runnable)
    deaths: dict[int, int] = {}
    interrupts: list[threading.Event] = []

    async def watch_stop() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for event in interrupts:
            event.set()

    async def work(slot) -> None:
        while todo and not stop.is_set() and slot.alive:
            index = todo.pop(0)
            workflow = prepared[index]
            interrupt = threading.Event()
            interrupts.append(interrupt)
            try:
                keys = model_keys(workflow, registry)
                result, files, _ = await execute_remote(slot, f"sweep-{index}", workflow.to_json(), None, keys,
                                                        lambda event, frame: None, interrupt)
            except WorkerDied as e:
                pool.drop(slot)
                deaths[index] = deaths.get(index, 0) + e.started
                if deaths[index] < MAX_WORKER_DEATHS:
                    todo.insert(0, index)  # runs next, on another worker
                else:
                    record(index, "error", error=f"{e}; the line killed {deaths[index]} workers", worker=slot.name)
                return
            except Exception as e:  # not the worker's death: this line's failure (e.g. its inputs too big)
                record(index, "error", error=f"{type(e).__name__}: {e}", worker=slot.name)
                continue
            finally:
                interrupts.remove(interrupt)
            if result["status"] == "interrupted" and stop.is_set():
                counts["interrupted"] = True
                return
            outputs = await asyncio.to_thread(store_files, result["outputs"], files)
            record(index, result["status"], image_files(outputs), _message(result["error"]), worker=slot.name,
                   elapsed=result["elapsed"])

    watcher = asyncio.create_task(watch_stop())
    try:
        while todo and not stop.is_set():
            slots = [s for s in pool.slots if s.alive]
            if not slots:
                raise RuntimeError("no Ray worker is left to run the sweep")
            await asyncio.gather(*(work(s) for s in slots))
    finally:
        watcher.cancel()
    if stop.is_set() and todo:
        counts["interrupted"] = True
