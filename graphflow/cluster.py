"""Scale-out on Ray: worker actors that each own an Executor (and so keep their models warm),
a pool that keeps the wanted number of them alive, and the dispatcher that feeds them the
server's queue with model-affinity routing. Only imported with `graphflow[ray]` installed.

Ray does membership, transport and process scheduling: a worker is an actor placed on a GPU
(or a CPU node); its events come back as a streaming generator; a dead actor surfaces as
RayActorError on the call that was using it. What crosses the network per run: the workflow
JSON and the model keys out; event batches, JPEG preview frames, the result and the output
files back (see docs/scale-out.md).
"""

import asyncio
import logging
import os
import queue
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

try:
    import ray
    from ray.exceptions import RayActorError
except ImportError as e:  # the one place that says how to get it
    raise ImportError("scale-out needs Ray: pip install 'graphflow[ray]'") from e

log = logging.getLogger("graphflow.cluster")

MODEL_TYPES = {"MODEL", "CLIP", "VAE", "CONTROL_NET", "CLIP_VISION", "UPSCALE_MODEL"}  # outputs that are models
FLUSH_INTERVAL = 0.02  # seconds between event batches from a worker
RECONCILE_INTERVAL = 2.0  # seconds between checks of the pool against its target size
NAMESPACE = "graphflow"


# --- model keys: which nodes load models, by the executor's own signatures --------------------

def model_keys(workflow, registry, targets=None) -> dict[str, str]:
    """{node id: signature} of the workflow's model-loading nodes (those that output a model);
    empty when the graph can't be planned or fingerprinted here (no affinity for that run)."""
    from graphflow.executor import Executor
    from graphflow.validation import plan_workflow

    plan, _ = plan_workflow(workflow, registry, targets)
    if plan is None:
        return {}
    try:
        signatures = Executor(registry).signatures(plan)
    except Exception:  # a model file this machine doesn't have: route without affinity
        return {}
    # a loader whose file name is linked has no key before the run: no affinity for it
    return {node_id: signatures[node_id] for node_id in plan.order if node_id in signatures
            and any(o.type in MODEL_TYPES for o in plan.nodes[node_id].cls.output_specs)}


MAX_SHIPPED_INPUTS = 512 * 2**20  # bytes of input files sent with one run


def input_files(workflow_json: dict) -> dict[str, bytes]:
    """The files of this machine's inputs folder (uploads) that the workflow names in a widget:
    sent with the run, since a worker elsewhere can't read them (bundled examples it has)."""
    from graphflow.folders import folders, safe_join

    files, total = {}, 0
    for node in (workflow_json.get("nodes") or {}).values():
        for value in (node.get("inputs") or {}).values() if isinstance(node, dict) else ():
            if not isinstance(value, str) or value in files or not value or len(value) > 1000:
                continue
            try:
                path = safe_join(folders.inputs, value)
            except ValueError:
                continue
            if path.is_file():
                total += path.stat().st_size
                if total > MAX_SHIPPED_INPUTS:
                    raise ValueError(f"the run's input files take more than {MAX_SHIPPED_INPUTS >> 20} MB")
                files[value] = path.read_bytes()
    return files


def _label(node) -> str:
    names = [str(v) for v in node.inputs.values() if isinstance(v, str)]
    return f"{node.type}({', '.join(names)})" if names else node.type


# --- the worker actor ---------------------------------------------------------------------------

class WorkerActor:
    """One executor with its cache, in its own process on some machine of the cluster.

    Threaded (max_concurrency > 1) so that interrupt() and info() are served while run() runs;
    runs themselves go one at a time through the executor's lock."""

    def __init__(self, name: str, folder_paths: dict, cache_max_bytes: int | None = None,
                 limits=None, torch_threads: int | None = None, previews: str | None = None):
        from graphflow.cache import OutputCache
        from graphflow.executor import Executor
        from graphflow.folders import configure
        from graphflow.registry import default_registry

        self.name = name
        self.torch_threads = torch_threads
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        # Outputs land in a private folder and are shipped back: no shared filesystem assumed.
        self.scratch = Path(tempfile.mkdtemp(prefix=f"graphflow-{name}-"))
        configure(**{**folder_paths, "inputs": self.scratch / "inputs", "outputs": self.scratch / "outputs"})
        from graphflow.folders import folders

        folders.temp = self.scratch / "temp"
        folders.plugins = list(dict.fromkeys(folders.plugins))  # home/plugins and GRAPHFLOW_PLUGINS come twice
        if previews is not None:  # the server's --previews
            from graphflow.sampling.preview import set_preview_method

            set_preview_method(previews)
        self.registry = default_registry()
        cache = OutputCache(max_bytes=cache_max_bytes) if cache_max_bytes else OutputCache()
        self.executor = Executor(self.registry, cache, limits)
        self.interrupts: dict[str, threading.Event] = {}
        self.keys: dict[str, tuple[str, str]] = {}  # server key -> (this worker's signature, label)
        self.loads: dict[str, int] = {}  # label -> times a model-loading node ran here (not cached)
        self.runs = 0

    def info(self) -> dict:
        from graphflow.device import compute_device

        device = compute_device()
        if device.type == "cuda":
            import torch

            device_name = f"{device} ({torch.cuda.get_device_name(device)})"
        else:
            device_name = str(device)
        return {"name": self.name, "host": socket.gethostname(), "node_id": ray.get_runtime_context().get_node_id(),
                "pid": os.getpid(), "device": device_name, "loaded": self.loaded(), "loads": dict(self.loads),
                "runs": self.runs}

    def loaded(self) -> dict[str, str]:
        """{server key: label} of the models still in this worker's cache."""
        return {key: label for key, (signature, label) in list(self.keys.items())  # a run may add keys meanwhile
                if signature in self.executor.cache}

    def free(self, models: bool, cache: bool) -> int:
        """As the server's /api/free, on this worker: drop cached outputs (or those holding models)."""
        from graphflow.device import free_memory
        from graphflow.server.system_routes import holds_model

        if cache:
            dropped = len(self.executor.cache)
            self.executor.cache.clear()
        else:
            dropped = self.executor.cache.discard(holds_model) if models else 0
        free_memory()
        return dropped

    def interrupt(self, run_id: str) -> bool:
        """Interrupt the run; a node that ignores it is stopped by force after FORCE_AFTER seconds,
        as on the server's own worker."""
        from graphflow.server.worker import FORCE_AFTER

        event = self.interrupts.get(run_id)
        if event is None:
            return False
        event.set()

        def force() -> None:
            while run_id in self.interrupts:
                time.sleep(FORCE_AFTER)
                if run_id in self.interrupts and self.executor.force_interrupt():
                    log.warning("run %s ignored the interrupt; stopping it by force", run_id)

        threading.Thread(target=force, daemon=True).start()
        return True

    def run(self, run_id: str, workflow_json: dict, targets, keys: dict[str, str], preview_max_side: int = 512,
            inputs: dict[str, bytes] | None = None, pnginfo: dict | None = None):
        """Streams {"events": [(event, frame)]} batches, then {"result": ...} with the output files.
        `inputs`: the server's input files the workflow names, put in this worker's inputs folder;
        `pnginfo`: ComfyUI's extra_pnginfo for the files the run saves (Executor.run)."""
        from graphflow.executor import RunResult
        from graphflow.folders import folders, safe_join

        for name, data in (inputs or {}).items():
            path = safe_join(folders.inputs, name)
            if not (path.is_file() and path.read_bytes() == data):  # unchanged: keep it (and its cache)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        from graphflow.validation import plan_workflow
        from graphflow.workflow import WorkflowFormatError, parse_workflow

        interrupt = self.interrupts.setdefault(run_id, threading.Event())
        events: queue.SimpleQueue = queue.SimpleQueue()
        done = object()
        outcome = {}
        try:
            workflow = parse_workflow(workflow_json, self.registry)
        except WorkflowFormatError as e:
            self.interrupts.pop(run_id, None)
            yield {"result": RunResult(run_id, "invalid", problems=e.problems).to_json(), "files": [],
                   "loaded": self.loaded()}
            return
        plan, _ = plan_workflow(workflow, self.registry, targets)
        if plan is not None and keys:
            try:
                mine = self.executor.signatures(plan)
                for node_id, key in keys.items():
                    if node_id in mine:
                        self.keys[key] = (mine[node_id], _label(workflow.nodes[node_id]))
            except Exception:
                pass  # the run reports the failing fingerprint itself

        def on_event(event: dict) -> None:
            if event["type"] == "run_finished":
                return  # the server sends it once history is written
            frame = None
            if event["type"] == "image":  # sent instead of saved (SaveImageWebsocket): as the local worker does
                from graphflow.server.events import image_frame

                frame = image_frame({"run_id": run_id, "node": event["node"], "node_type": event["node_type"],
                                     "final": True}, event["image"], event["image_type"])
            elif "preview" in event:
                from graphflow.server.events import preview_frame

                image = event.pop("preview")
                try:
                    frame = preview_frame({"run_id": run_id, "node": event["node"], "node_type": event["node_type"],
                                           "value": event["value"], "max": event["max"]}, image, preview_max_side)
                except Exception as e:
                    log.warning("node %s sent a preview that can't be encoded: %s", event["node"], e)
                event["preview"] = frame is not None
            events.put((event, frame))

        def execute() -> None:
            if self.torch_threads:
                import torch

                torch.set_num_threads(self.torch_threads)  # per thread for OpenMP (see server.worker)
            try:
                outcome["result"] = self.executor.run(workflow, outputs=targets, on_event=on_event,
                                                      interrupt=interrupt, run_id=run_id, pnginfo=pnginfo)
            except BaseException as e:
                outcome["exception"] = e
            events.put(done)

        thread = threading.Thread(target=execute, name=f"graphflow-run-{run_id[:8]}", daemon=True)
        thread.start()
        finished = False
        while not finished:
            batch = []
            deadline = time.monotonic() + FLUSH_INTERVAL
            while True:
                try:
                    item = events.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is done:
                    finished = True
                    break
                batch.append(item)
            if batch:
                yield {"events": batch}
        self.interrupts.pop(run_id, None)
        if "exception" in outcome:
            raise outcome["exception"]
        result = outcome["result"]
        result.values.clear()
        self.runs += 1
        for node_id in result.executed:
            if node_id in keys:
                label = _label(workflow.nodes[node_id])
                self.loads[label] = self.loads.get(label, 0) + 1
        yield {"result": result.to_json(), "files": self._collect(result.outputs), "loaded": self.loaded()}

    def _collect(self, outputs: dict) -> list[dict]:
        """The files the run wrote (its images), read and removed from this worker's scratch."""
        from graphflow.folders import folders

        files = []
        for shown in outputs.values():
            for image in shown.get("images", []):
                if "filename" not in image:  # sent over the websocket (ETN_SendImageWebSocket), not saved
                    continue
                base = folders.outputs if image.get("type", "output") == "output" else folders.temp
                path = base / image.get("subfolder", "") / image["filename"]
                if path.is_file():
                    files.append({**image, "data": path.read_bytes()})
                    path.unlink()
        return files

    def shutdown(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def store_files(outputs: dict, files: list[dict]) -> dict:
    """Write files shipped from a worker into this machine's output (or temp) folder, renaming on a
    clash (workers number their files independently), and point the run's outputs at them."""
    from graphflow.folders import folders, safe_join

    renamed = {}
    for item in files:
        kind = item.get("type", "output")
        base = folders.outputs if kind == "output" else folders.temp
        folder = safe_join(base, item["subfolder"]) if item.get("subfolder") else base
        folder.mkdir(parents=True, exist_ok=True)
        name = item["filename"]
        stem, suffix = os.path.splitext(name)
        match = re.fullmatch(r"(.*)_(\d{5})", stem)
        counter = int(match.group(2)) if match else 0
        while True:
            try:
                with open(folder / name, "xb") as f:
                    f.write(item["data"])
                break
            except FileExistsError:
                counter += 1
                name = f"{match.group(1) if match else stem}_{counter:05d}{suffix}"
        renamed[(kind, item.get("subfolder", ""), item["filename"])] = name
    for shown in outputs.values():
        for image in (i for i in shown.get("images", []) if "filename" in i):
            key = (image.get("type", "output"), image.get("subfolder", ""), image["filename"])
            image["filename"] = renamed.get(key, image["filename"])
    return outputs


# --- the pool -------------------------------------------------------------------------------------

@dataclass
class Slot:
    """The server's view of one worker actor."""

    name: str
    actor: object
    info: dict = field(default_factory=dict)
    loaded: dict = field(default_factory=dict)  # server key -> label, as the worker last reported
    run_id: str | None = None  # the run it is running (one at a time)
    runs: int = 0
    alive: bool = True

    @property
    def busy(self) -> bool:
        return self.run_id is not None

    def to_json(self) -> dict:
        return {"name": self.name, "host": self.info.get("host"), "device": self.info.get("device"),
                "pid": self.info.get("pid"), "running": self.run_id, "runs": self.runs,
                "loaded": sorted(self.loaded.values())}


class WorkerPool:
    """Worker actors on a Ray cluster: `workers` of them, or (workers=None) one per `gpus_per_worker`
    GPUs of each machine and one on each machine without GPUs, re-checked as machines join and leave."""

    def __init__(self, workers: int | None = None, address: str | None = None, gpus_per_worker: float = 1.0,
                 cpus_per_worker: float = 1.0, torch_threads: int | None = None, cache_max_bytes: int | None = None,
                 limits=None, folder_paths: dict | None = None, init_options: dict | None = None):
        self.target = workers
        self.address = address
        self.gpus_per_worker = gpus_per_worker
        self.cpus_per_worker = cpus_per_worker
        self.torch_threads = torch_threads
        self.cache_max_bytes = cache_max_bytes
        self.limits = limits
        self.folder_paths = folder_paths
        self.init_options = init_options or {}
        self.slots: list[Slot] = []
        self.started_ray = False
        self._counter = 0
        self.changed = None  # an asyncio.Event the dispatcher waits on, set when the pool grows

    # Blocking calls (ray.init, actor start): the async callers run them in a thread.
    def start(self) -> None:
        if not ray.is_initialized():
            options = {"include_dashboard": False, "namespace": NAMESPACE, "log_to_driver": False}
            if self.address:
                options["address"] = self.address
            elif self.target is not None:
                options["num_cpus"] = max(1, int(self.target * self.cpus_per_worker + 0.999))
            ray.init(**{**options, **self.init_options})
            self.started_ray = True
        self.reconcile()

    def missing(self) -> list[tuple[str | None, float]]:
        """(node id or None: anywhere, GPUs) of each worker to start to reach the wanted pool."""
        alive = [s for s in self.slots if s.alive]
        if self.target is not None:
            gpus = self.gpus_per_worker if ray.cluster_resources().get("GPU", 0) >= self.gpus_per_worker > 0 else 0
            return [(None, gpus)] * (self.target - len(alive))
        wanted = []
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            node_gpus = node["Resources"].get("GPU", 0)
            if node_gpus and self.gpus_per_worker > 0:
                count, gpus = int(node_gpus // self.gpus_per_worker), self.gpus_per_worker
            else:
                count, gpus = 1, 0  # a CPU worker on a machine without GPUs
            have = sum(1 for s in alive if s.info.get("node_id") == node["NodeID"])
            wanted += [(node["NodeID"], gpus)] * (count - have)
        return wanted

    def reconcile(self) -> list[Slot]:
        """Drop dead workers, start missing ones; returns those started (already answering)."""
        self.slots = [s for s in self.slots if s.alive]
        new = self.start_workers(self.missing())
        self.slots += new
        return new

    def start_workers(self, places: list[tuple[str | None, float]]) -> list[Slot]:
        """Start a worker at each (node, GPUs); returns those that answered (the caller adds them)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        new = []
        for node_id, gpus in places:
            self._counter += 1
            name = f"worker-{self._counter}-{uuid.uuid4().hex[:4]}"
            options = {"name": f"graphflow-{name}", "max_concurrency": 4, "num_cpus": self.cpus_per_worker,
                       "num_gpus": gpus, "max_restarts": 0}
            if node_id is not None:
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
            if self.torch_threads:
                threads = str(self.torch_threads)
                options["runtime_env"] = {"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}}
            from graphflow.sampling.preview import preview_method

            actor = ray.remote(WorkerActor).options(**options).remote(
                name, self._folder_paths(), self.cache_max_bytes, self.limits, self.torch_threads, preview_method())
            new.append(Slot(name, actor))
        ready = []
        for slot in new:
            try:
                slot.info = ray.get(slot.actor.info.remote(), timeout=300)
                ready.append(slot)
            except Exception as e:  # no room on the cluster yet, or it died at start: retried next time
                log.warning("worker %s did not start: %s", slot.name, e)
                ray.kill(slot.actor)
        return ready

    def _folder_paths(self) -> dict:
        if self.folder_paths is not None:
            return self.folder_paths
        from graphflow.folders import folders

        return {"home": str(folders.home), "models": str(folders.models), "plugins": [str(p) for p in folders.plugins]}

    def drop(self, slot: Slot) -> None:
        slot.alive = False
        self.slots = [s for s in self.slots if s is not slot]

    def shutdown(self) -> None:
        for slot in self.slots:
            try:
                ray.kill(slot.actor)
            except Exception:
                pass
        self.slots = []
        if self.started_ray:
            ray.shutdown()


class WorkerDied(Exception):
    """The worker running a run died (its process killed, its machine lost); `started`: the run
    had begun there (a worker found dead before it began is not the run's fault)."""

    def __init__(self, message: str, started: bool = True):
        super().__init__(message)
        self.started = started


async def execute_remote(slot: Slot, run_id: str, workflow_json: dict, targets, keys: dict,
                         deliver, interrupt: threading.Event, preview_max_side: int = 512,
                         pnginfo: dict | None = None) -> tuple[dict, list, dict]:
    """Run on `slot`: `deliver(event, frame)` for each event as it streams back; interrupt forwarded;
    the input files it names go with it. Returns (result json, shipped files, loaded models).
    Raises WorkerDied."""
    inputs = await asyncio.to_thread(input_files, workflow_json)
    stream = slot.actor.run.remote(run_id, workflow_json, targets, keys, preview_max_side, inputs, pnginfo)

    async def forward_interrupt() -> None:
        while not interrupt.is_set():
            await asyncio.sleep(0.05)
        slot.actor.interrupt.remote(run_id)

    forwarder = asyncio.create_task(forward_interrupt())
    started = False
    try:
        async for ref in stream:
            item = await ref
            started = True
            for event, frame in item.get("events", ()):
                deliver(event, frame)
            if "result" in item:
                slot.loaded = item["loaded"]
                slot.runs += 1
                return item["result"], item["files"], item["loaded"]
        raise WorkerDied(f"worker {slot.name} ended run {run_id} without a result")
    except RayActorError as e:
        raise WorkerDied(f"worker {slot.name} died during run {run_id}: {type(e).__name__}", started) from e
    finally:
        forwarder.cancel()


# --- the server's dispatcher -------------------------------------------------------------------------

LOOKAHEAD = 32  # pending runs scanned for one whose models an idle worker already holds
MAX_WORKER_DEATHS = 2  # a run that kills this many workers is recorded as an error


class RayDispatcher:
    """Feeds the server's queue to the pool's workers, one run per worker at a time.

    Routing, for each idle worker: the first queued run (in queue order, within LOOKAHEAD) whose
    model-loading nodes it holds; a run no worker holds goes to the idle worker holding the fewest
    models; a run whose models another, busy, worker holds waits for it, unless more than one run
    waits for those models (then loading them a second time pays off). So a burst alternating two
    models on two workers settles to one model per worker.
    """

    def __init__(self, pool: WorkerPool, owns_pool: bool = True):
        self.pool = pool
        self.owns_pool = owns_pool  # shut the workers (and a Ray it started) down with the server
        self.server = None
        self.keys: dict[str, dict[str, str]] = {}  # run id -> {node id: model key}, for queued runs
        self.deaths: dict[str, list[str]] = {}  # run id -> workers that died running it
        self.current: dict[str, set[str]] = {}  # worker name -> model keys of the run it runs
        self.tasks: set[asyncio.Task] = set()

    async def free(self, models: bool, cache: bool) -> int:
        """/api/free on every worker; how many cached outputs they dropped."""
        refs = [slot.actor.free.remote(models, cache) for slot in self.pool.slots]
        dropped = 0
        for ref in refs:
            try:
                dropped += await ref
            except RayActorError:
                pass  # gone; the pool notices
        for slot in self.pool.slots:
            slot.loaded = {}  # as the next report will say
        return dropped

    def describe(self) -> dict:
        return {"engine": "ray", "address": self.pool.address or "local",
                "workers": [slot.to_json() for slot in self.pool.slots]}

    async def loop(self, server) -> None:
        self.server = server
        await asyncio.to_thread(self.pool.start)
        log.info("dispatching to %d Ray worker(s)", len(self.pool.slots))
        keeper = asyncio.create_task(self._keep_pool())
        try:
            while not server.stopping:
                if not server.paused and self._dispatch_one():
                    continue
                server.work.clear()  # no await since the last look at the queue
                await server.work.wait()
        finally:
            keeper.cancel()
            if self.tasks:
                await asyncio.wait(self.tasks)  # interrupted by stop(): they requeue their runs
            if self.owns_pool:
                await asyncio.to_thread(self.pool.shutdown)

    async def _keep_pool(self) -> None:
        """Drop workers that stopped answering, start missing ones (machines joined or left)."""
        while True:
            await asyncio.sleep(RECONCILE_INTERVAL)
            for slot in [s for s in self.pool.slots if not s.busy]:
                runs = slot.runs
                try:
                    info = await asyncio.wait_for(asyncio.wrap_future(slot.actor.info.remote().future()), 30)
                except (RayActorError, asyncio.TimeoutError) as e:
                    if slot.busy or slot.runs != runs:
                        continue  # picked up a run meanwhile; that run will tell
                    log.warning("worker %s is gone (%s); dropping it", slot.name, type(e).__name__)
                    self.pool.drop(slot)
                    continue
                except Exception:
                    log.exception("worker %s could not report", slot.name)
                    continue
                if not slot.busy and slot.runs == runs:  # else a newer result has said what it holds
                    slot.info, slot.loaded = info, info["loaded"]
            try:
                missing = await asyncio.to_thread(self.pool.missing)
                if missing:
                    new = await asyncio.to_thread(self.pool.start_workers, missing)
                    self.pool.slots += new
                    if new:
                        log.info("%d worker(s) joined", len(new))
                        self.server.work.set()
            except Exception:
                log.exception("could not check the Ray cluster")

    def _models(self, slot: Slot) -> set[str]:
        return set(slot.loaded) | self.current.get(slot.name, set())

    def _keys_of(self, run_id: str) -> dict[str, str]:
        if run_id not in self.keys:
            from graphflow.workflow import parse_workflow

            try:
                record = self.server.store.get(run_id)
                workflow = parse_workflow(record["workflow"], self.server.registry)
                self.keys[run_id] = model_keys(workflow, self.server.registry, record.get("targets"))
            except Exception:
                self.keys[run_id] = {}
        return self.keys[run_id]

    def _dispatch_one(self) -> bool:
        slots = [s for s in self.pool.slots if s.alive]
        idle = [s for s in slots if not s.busy]
        if not idle:
            return False
        pending = self.server.store.pending(LOOKAHEAD)
        if len(self.keys) > 4 * LOOKAHEAD:  # forget runs cancelled while queued
            window = {item["run_id"] for item in pending}
            self.keys = {run_id: keys for run_id, keys in self.keys.items() if run_id in window}
        wanted = [frozenset(self._keys_of(item["run_id"]).values()) for item in pending]
        fewest = lambda s: (len(self._models(s)), s.runs)  # noqa: E731
        spread = None
        for item, keys in zip(pending, wanted):
            score = {s.name: len(keys & self._models(s)) for s in slots}
            holders = [s for s in slots if score[s.name]]
            idle_holders = [s for s in holders if not s.busy]
            if idle_holders:
                return self._start(max(idle_holders, key=lambda s: score[s.name]), item["run_id"])
            if not holders:
                return self._start(min(idle, key=fewest), item["run_id"])
            if spread is None and wanted.count(keys) > 1:
                spread = item["run_id"]
        if spread is not None:
            return self._start(min(idle, key=fewest), spread)
        return False

    def _start(self, slot: Slot, run_id: str) -> bool:
        from graphflow.server.worker import RunState

        server = self.server
        record = server.store.claim(run_id)
        keys = self.keys.pop(run_id, {})
        if record is None:
            return True  # cancelled meanwhile; look again
        state = RunState(run_id, record["number"], record["client_id"], record["submitted_at"], record["started_at"])
        server.running[run_id] = state
        slot.run_id = run_id
        self.current[slot.name] = set(keys.values())
        server.queue_changed()
        task = asyncio.create_task(self._run(slot, record, state, keys), name=f"graphflow-run-{run_id[:8]}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _run(self, slot: Slot, record: dict, state, keys: dict) -> None:
        from graphflow.server.worker import pnginfo_of

        server, store, run_id = self.server, self.server.store, state.run_id
        dispatched = time.time()
        try:
            result, files, _ = await execute_remote(
                slot, run_id, record["workflow"], record.get("targets"), keys,
                lambda event, frame: server.run_event(state, event, frame), state.interrupt,
                server.config.preview_max_side, pnginfo_of(record))
            outputs = await asyncio.to_thread(store_files, result["outputs"], files)
        except WorkerDied as e:
            log.warning("%s", e)
            self.pool.drop(slot)
            server.running.pop(run_id, None)
            dead = self.deaths.setdefault(run_id, [])
            if e.started and not state.stopping:
                dead.append(slot.name)
            if len(dead) < MAX_WORKER_DEATHS:
                store.requeue(run_id, attempt_counts=False)  # at the head: next, elsewhere (not a server death)
                server.hub.send("run_requeued", {"run_id": run_id, "client_id": state.client_id,
                                                 "worker": slot.name, "reason": str(e)})
            else:
                error = {"node_id": state.node, "node_type": state.node_type, "source": None, "input": None,
                         "exception_type": "WorkerDied", "traceback": "",
                         "message": f"the run killed {len(dead)} workers ({', '.join(dead)}); not retried"}
                store.finish(run_id, "error", error=error, placement={"worker": slot.name, "died_on": dead})
                self.deaths.pop(run_id, None)
                server.hub.send("run_finished", {"run_id": run_id, "client_id": state.client_id, "status": "error",
                                                 "elapsed": 0.0, "outputs": {}, "error": error, "timings": {},
                                                 "executed": [], "cached": []})
            self._done(slot)
            return
        except Exception as e:  # a bug outside any node: record it rather than stop dispatching
            log.exception("run %s failed in the dispatcher", run_id)
            import traceback

            result = {"status": "error", "outputs": {}, "problems": [], "timings": {}, "executed": [], "cached": [],
                      "elapsed": 0.0, "error": {"node_id": None, "node_type": None, "source": None, "input": None,
                                                "exception_type": type(e).__name__, "message": str(e),
                                                "traceback": "".join(traceback.format_exception(e))}}
            outputs = {}
        server.running.pop(run_id, None)
        if state.stopping and result["status"] == "interrupted":
            store.requeue(run_id, attempt_counts=False)  # the server is stopping: run it again after the restart
            self._done(slot)
            return
        placement = {"worker": slot.name, "host": slot.info.get("host"), "device": slot.info.get("device"),
                     "queue_wait": dispatched - record["submitted_at"], "run_seconds": result["elapsed"],
                     "dispatch_seconds": time.time() - dispatched - result["elapsed"]}
        if self.deaths.get(run_id):
            placement["died_on"] = self.deaths.pop(run_id)
        store.finish(run_id, result["status"], outputs=outputs, error=result["error"], problems=result["problems"],
                     timings=result["timings"], executed=result["executed"], cached=result["cached"],
                     elapsed=result["elapsed"], placement=placement)
        server.hub.send("run_finished", {
            "run_id": run_id, "client_id": state.client_id, "status": result["status"], "elapsed": result["elapsed"],
            "outputs": outputs, "error": result["error"], "timings": result["timings"],
            "executed": result["executed"], "cached": result["cached"], "worker": slot.name})
        self._done(slot)

    def _done(self, slot: Slot) -> None:
        self.current.pop(slot.name, None)
        slot.run_id = None
        self.server.queue_changed()
        self.server.work.set()
