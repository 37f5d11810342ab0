"""The worker: takes runs off the queue and executes them on its own thread, one at a time.

The executor is synchronous, so it runs on a dedicated daemon thread that lives as long as the
server; its cache (and so the loaded models) stays between runs. Its events arrive on that
thread; preview images are encoded to JPEG frames there, and the loop picks the events up in
batches (every FLUSH_INTERVAL). History is written before `run_finished` goes out, so a
client that reacts to it by fetching the run finds it finished.
"""

import asyncio
import logging
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field

from graphflow.device import free_memory
from graphflow.executor import Executor, RunResult, exception_message
from graphflow.workflow import WorkflowFormatError, parse_workflow

from graphflow.server.events import image_frame, preview_frame

log = logging.getLogger("graphflow.server")

FLUSH_INTERVAL = 0.02  # seconds between deliveries of a running graph's events to the clients
FORCE_AFTER = 2.0  # seconds a node may ignore an interrupt before it is stopped by force


class ExecutorThread:
    """A daemon thread that runs submitted calls one after another and resolves asyncio futures."""

    def __init__(self, name: str):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn, *args) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        return future

    def stop(self) -> None:
        self._jobs.put(None)

    def _main(self) -> None:
        import torch

        # torch.set_num_threads() reaches OpenMP only in the thread that called it; a new thread
        # gets a team as wide as the machine, whose spinning barriers stall badly on a busy CPU
        # (a 0.1 ms op taking 100 ms). Apply the process's setting here too.
        torch.set_num_threads(torch.get_num_threads())
        while (job := self._jobs.get()) is not None:
            loop, future, fn, args = job
            try:
                outcome, failed = fn(*args), False
            except Exception as e:  # handed to the awaiting coroutine
                outcome, failed = e, True
            except BaseException as e:  # KeyboardInterrupt, SystemExit...: asyncio would stop the server on them
                outcome, failed = RuntimeError(f"{type(e).__name__} raised on the worker thread"), True
                outcome.__cause__ = e
            try:
                loop.call_soon_threadsafe(_resolve, future, outcome, failed)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting any more


def _resolve(future: asyncio.Future, outcome, failed: bool) -> None:
    if not future.done():
        (future.set_exception if failed else future.set_result)(outcome)


@dataclass
class RunState:
    """A running run, as the queue listing and a late websocket client see it."""

    run_id: str
    number: int
    client_id: str | None
    submitted_at: float
    started_at: float
    interrupt: threading.Event = field(default_factory=threading.Event)
    node: str | None = None
    node_type: str | None = None
    progress: dict | None = None
    frame: bytes | None = None  # the last preview frame
    stopping: bool = False  # interrupted because the server stops: requeue, don't record

    def to_json(self) -> dict:
        return {"run_id": self.run_id, "number": self.number, "client_id": self.client_id,
                "submitted_at": self.submitted_at, "started_at": self.started_at,
                "node": self.node, "node_type": self.node_type, "progress": self.progress}


class Worker:
    def __init__(self, server, executor: Executor, index: int = 0):
        self.server = server
        self.executor = executor
        self.index = index
        self.thread: ExecutorThread | None = None
        self.state: RunState | None = None

    async def loop(self) -> None:
        server = self.server
        self.thread = ExecutorThread(f"graphflow-worker-{self.index}")
        while not server.stopping:
            record = None if server.paused else server.store.claim_next()
            if record is None:
                server.work.clear()  # no await since claim_next: a submit can't slip in between
                await server.work.wait()
                continue
            await self.run(record)
        self.thread.stop()

    async def run(self, record: dict) -> None:
        server, store = self.server, self.server.store
        state = RunState(record["run_id"], record["number"], record["client_id"], record["submitted_at"],
                         record["started_at"])
        self.state = state
        server.running[state.run_id] = state
        server.queue_changed()
        try:
            result = await self._execute(record, state)
        except Exception as e:  # a bug outside any node: record it rather than kill the worker
            log.exception("run %s failed in the worker", state.run_id)
            result = RunResult(state.run_id, "error", error={
                "node_id": None, "node_type": None, "source": None, "input": None,
                "exception_type": type(e).__name__, "message": exception_message(e),
                "traceback": "".join(traceback.format_exception(e))})
        finally:
            self.state = None
            server.running.pop(state.run_id, None)

        if state.stopping and result.status == "interrupted":
            store.requeue(state.run_id, attempt_counts=False)  # the server is stopping: run it again after the restart
            server.queue_changed()
            return
        store.finish(state.run_id, result.status, outputs=result.outputs, error=result.error,
                     problems=[p.to_dict() for p in result.problems], timings=result.timings,
                     executed=result.executed, cached=result.cached, elapsed=result.elapsed,
                     placement={"worker": f"local-{self.index}", "queue_wait": state.started_at - state.submitted_at,
                                "run_seconds": result.elapsed})
        if result.error and (result.error.get("out_of_memory") or "OutOfMemory" in (result.error.get("exception_type") or "")):
            server.cache.clear()  # start the next run from a clean device
            free_memory()
        server.hub.send("run_finished", {
            "run_id": state.run_id, "client_id": state.client_id, "status": result.status,
            "elapsed": result.elapsed, "outputs": result.outputs, "error": result.error,
            "timings": result.timings, "executed": result.executed, "cached": result.cached})
        server.queue_changed()

    async def _execute(self, record: dict, state: RunState) -> RunResult:
        try:
            workflow = parse_workflow(record["workflow"], self.server.registry)
        except WorkflowFormatError as e:
            problems = e.problems
            self.server.hub.send("run_invalid", {"run_id": state.run_id, "client_id": state.client_id,
                                                 "problems": [p.to_dict() for p in problems]})
            return RunResult(state.run_id, "invalid", problems=problems)
        deliver = self.server.run_event
        max_side = self.server.config.preview_max_side
        # Events are collected here and delivered by the loop every FLUSH_INTERVAL (and once
        # more when the run ends) rather than one thread hand-off per event: on a busy machine
        # each hand-off can cost a scheduler time slice, more than a small node takes to run.
        batch: list[tuple[dict, bytes | None]] = []
        batch_lock = threading.Lock()

        def drain() -> None:  # on the loop thread
            with batch_lock:
                items = batch[:]
                batch.clear()
            for event, frame in items:
                deliver(state, event, frame)

        async def flush_periodically() -> None:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL)
                drain()

        def on_event(event: dict) -> None:  # on the executor thread
            if event["type"] == "run_finished":
                return  # sent by run() once history is written
            frame = None
            if event["type"] == "image":
                meta = {"run_id": state.run_id, "node": event["node"], "node_type": event["node_type"], "final": True}
                frame = image_frame(meta, event["image"], event["image_type"])
            elif "preview" in event:
                image = event.pop("preview")
                try:
                    frame = preview_frame({"run_id": state.run_id, "node": event["node"],
                                           "node_type": event["node_type"], "value": event["value"],
                                           "max": event["max"]}, image, max_side)
                except Exception as e:  # a bad preview must not fail the run
                    log.warning("node %s sent a preview that can't be encoded: %s", event["node"], e)
                event["preview"] = frame is not None
            with batch_lock:
                batch.append((event, frame))

        async def force_if_ignored() -> None:
            # Every way of interrupting sets the event; a node that never checks for it (a plain
            # Python loop) would hold the queue forever, so it gets the interrupt raised in it,
            # again after each FORCE_AFTER in case it catches exceptions.
            while not state.interrupt.is_set():
                await asyncio.sleep(0.1)
            while True:
                await asyncio.sleep(FORCE_AFTER)
                if self.executor.force_interrupt():
                    log.warning("node %s (%s) of run %s ignored the interrupt; stopping it by force",
                                state.node, state.node_type, state.run_id)

        started = time.perf_counter()
        helpers = [asyncio.create_task(flush_periodically()), asyncio.create_task(force_if_ignored())]
        try:
            result = await self.thread.submit(_run, self.executor, workflow, record.get("targets"), on_event,
                                              state.interrupt, state.run_id, pnginfo_of(record))
        finally:
            for task in helpers:
                task.cancel()
            drain()
        result.values.clear()  # node outputs live on in the cache, not here
        log.info("run %s: %s in %.2fs", state.run_id, result.status, time.perf_counter() - started)
        return result


def _run(executor: Executor, workflow, targets, on_event, interrupt, run_id, pnginfo) -> RunResult:
    return executor.run(workflow, outputs=targets, on_event=on_event, interrupt=interrupt, run_id=run_id,
                        pnginfo=pnginfo)


def pnginfo_of(record: dict):
    """The extra_pnginfo a ComfyUI client queued the run with (its extra_data; Executor.run takes a dict)."""
    return (record.get("extra") or {}).get("extra_pnginfo")
