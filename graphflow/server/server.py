"""The Server behind the application: its configuration, run store, workers, websocket hub and
queue state, and how a request finds it (`app[SERVER]`, `server_of(request)`)."""

import asyncio
import ipaddress
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from graphflow.cache import OutputCache
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.resource_limits import RunLimits
from graphflow.validation import Problem, output_nodes, validate
from graphflow.workflow import Workflow, WorkflowFormatError, parse_workflow

from graphflow.server.comfyui_object_info import object_info
from graphflow.server.events import KEEP, NODE, PROGRESS, Hub
from graphflow.server.json_api import RegistryReply
from graphflow.server.store import RunStore
from graphflow.server.uploads import UploadLimits
from graphflow.server.worker import RunState, Worker

log = logging.getLogger("graphflow.server")

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
QUEUE_MESSAGE_LIMIT = 100  # pending runs listed in websocket queue messages
# What a client that falls behind may lose (see events.py); a run's outcome is never dropped.
RANKS = {"progress": PROGRESS, "node_started": NODE, "node_finished": NODE, "node_cached": NODE}


@dataclass
class ServerConfig:
    db_path: Path
    host: str = "127.0.0.1"
    workers: int = 1
    limits: UploadLimits = field(default_factory=UploadLimits)
    # a model file a client stores (PUT /api/etn/upload: the Krita plugin's LoRAs), apart from the picture limit
    model_upload_max_bytes: int = 4 * 2**30
    preview_max_side: int = 512
    outbox_limit: int = 256
    send_timeout: float = 10.0
    allowed_origins: tuple[str, ...] = ()
    shutdown_timeout: float = 10.0
    web_dir: Path | None = WEB_DIR
    run_limits: RunLimits = field(default_factory=RunLimits)  # create_app's default: SERVER_LIMITS


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server:
    def __init__(self, registry: Registry, config: ServerConfig, cache: OutputCache, paused: bool = False,
                 dispatcher=None):
        self.registry = registry
        self.config = config
        self.cache = cache
        self.store = RunStore(config.db_path)
        self.hub = Hub(config.outbox_limit, config.send_timeout)
        self.running: dict[str, RunState] = {}
        # A dispatcher (graphflow.cluster.RayDispatcher) runs the queue on other processes instead.
        self.dispatcher = dispatcher
        self.workers = [] if dispatcher is not None else [
            Worker(self, Executor(registry, cache, config.run_limits), i) for i in range(config.workers)]
        self.paused = paused
        self.stopping = False
        self.work = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._queue_scheduled = False
        self.loopback_only = is_loopback(config.host)
        # the node catalogue and ComfyUI's object_info, remade only when they change (json_api.RegistryReply)
        self.nodes_reply = RegistryReply(lambda registry: registry.catalogue())
        self.object_info_reply = RegistryReply(object_info, by_key=True)  # /object_info/{class_type} too

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, app=None) -> None:
        requeued = self.store.recover()
        if requeued:
            log.info("%d run(s) were running when the server last died; they are back in the queue", len(requeued))
        self.work = asyncio.Event()
        self.work.set()
        self._tasks = [asyncio.create_task(w.loop(), name=f"graphflow-worker-{w.index}") for w in self.workers]
        if self.dispatcher is not None:
            self._tasks.append(asyncio.create_task(self.dispatcher.loop(self), name="graphflow-dispatcher"))

    async def stop(self, app=None) -> None:
        """Stop taking runs; a running run is interrupted and goes back to the queue."""
        self.stopping = True
        for state in list(self.running.values()):
            state.stopping = True
            state.interrupt.set()
        self.work.set()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=self.config.shutdown_timeout)
            for task in pending:  # a node that never checks for interrupts; its run is recovered on restart
                log.warning("a run did not stop within %.0fs; it will run again after a restart",
                            self.config.shutdown_timeout)
                task.cancel()
        await self.hub.close_all()

    async def cleanup(self, app=None) -> None:
        self.store.close()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.work.set()

    # --- state shared with the worker ------------------------------------------------------

    def queue_json(self, limit: int | None = None) -> dict:
        return {"running": [s.to_json() for s in self.running.values()],
                "pending": self.store.pending(limit), "pending_total": self.store.count_pending()}

    def interrupt(self, run_id: str | None = None) -> list[str]:
        """Stop the running run `run_id` (every running one when None); the runs told."""
        told = []
        for state in list(self.running.values()):
            if run_id is None or state.run_id == run_id:
                state.interrupt.set()
                told.append(state.run_id)
        return told

    def queue_changed(self) -> None:
        """Tell clients about the queue, once per loop iteration however many changes came."""
        if not self._queue_scheduled:
            self._queue_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_queue)

    def _send_queue(self) -> None:
        self._queue_scheduled = False
        if self.hub.clients:
            self.hub.send("queue", self.queue_json(QUEUE_MESSAGE_LIMIT), replaces="queue")

    def run_event(self, state: RunState, event: dict, frame: bytes | None) -> None:
        """An executor event, on the loop thread: update the run's state and tell every client."""
        kind = event.pop("type")
        event["client_id"] = state.client_id
        if kind == "image":  # a node's image sent over the websocket instead of saved
            self.hub.send_image(frame, event["image"], state.client_id, event["image_type"])
            return
        if kind in ("node_started", "progress"):
            if state.node != event["node"]:
                state.progress = None
            state.node, state.node_type = event["node"], event["node_type"]
        if kind == "progress":
            state.progress = {"value": event["value"], "max": event["max"]}
        if frame is not None:
            state.frame = frame
        self.hub.send(kind, event, RANKS.get(kind, KEEP))
        if frame is not None:
            self.hub.send_frame(frame, state.client_id)

    # --- submitting --------------------------------------------------------------------------

    def check(self, data, outputs) -> tuple[Workflow | None, list[Problem]]:
        """Parse and validate (on the loop: it takes well under a millisecond for usual graphs,
        and a thread hand-off would cost more than that on a busy machine)."""
        if outputs is not None and not (isinstance(outputs, list) and all(isinstance(o, str) for o in outputs)):
            return None, [Problem(None, None, None, "'outputs' must be a list of node ids")]
        try:
            workflow = parse_workflow(data, self.registry)
        except WorkflowFormatError as e:
            return None, e.problems
        problems = validate(workflow, self.registry, outputs or None, self.config.run_limits)
        return (None, problems) if problems else (workflow, [])

    def check_partial(self, data, targets: list[str] | None = None
                      ) -> tuple[Workflow | None, list[str], list[Problem], dict[str, list[str]]]:
        """ComfyUI's /prompt rule: (workflow, the output nodes whose part of the graph is valid, the
        problems of the others, and for each node with a problem the outputs it keeps from running:
        ComfyUI's `dependent_outputs`). `targets` (ComfyUI's partial_execution_targets) keeps the
        output nodes among them: other outputs are neither run nor checked."""
        try:
            workflow = parse_workflow(data, self.registry)
        except WorkflowFormatError as e:
            return None, [], e.problems, {}
        if targets is None and not validate(workflow, self.registry, None, self.config.run_limits):
            return workflow, output_nodes(workflow, self.registry), [], {}
        valid, problems, dependents = [], [], {}
        for node_id in output_nodes(workflow, self.registry):
            if targets is not None and node_id not in targets:
                continue
            node_problems = validate(workflow, self.registry, [node_id], self.config.run_limits)
            if node_problems:
                problems += [p for p in node_problems if p not in problems]
                for p in node_problems:
                    blocked = dependents.setdefault(p.node_id, [])
                    if node_id not in blocked:
                        blocked.append(node_id)
            else:
                valid.append(node_id)
        return workflow, valid, problems, dependents

    def enqueue(self, workflow: Workflow, client_id: str | None, outputs, front: bool,
                run_id: str | None = None, extra: dict | None = None) -> dict:
        run_id = run_id or uuid.uuid4().hex
        number = self.store.add(run_id, workflow.to_json(), client_id=client_id, targets=outputs or None,
                                front=front, extra=extra or None)
        position = self.store.position(run_id)
        self.queue_changed()
        self.work.set()
        return {"run_id": run_id, "position": position, "number": number}


SERVER = web.AppKey("server", Server)  # app[SERVER]: the Server behind an application


def server_of(request: web.Request) -> Server:
    return request.app[SERVER]
