"""The HTTP and websocket server: queue, history, files and live progress over the executor.

`create_app()` builds the aiohttp application (tests inject a registry and a database);
`serve()` runs it for `graphflow serve`. The endpoints are documented in docs/api.md.
"""

import asyncio
import importlib.metadata
import ipaddress
import json
import logging
import platform
import re
import signal
import socket
import sys
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from graphflow.cache import OutputCache
from graphflow.device import free_memory, memory_stats
from graphflow.executor import Executor
from graphflow.folders import UnsafePathError, folders
from graphflow.registry import Registry, default_registry
from graphflow.validation import Problem, validate
from graphflow.workflow import Workflow, parse_workflow

from graphflow.server import uploads
from graphflow.server.events import KEEP, PREVIEW, PROGRESS, Hub, Outgoing, dumps, message
from graphflow.server.store import FINISHED, RunStore
from graphflow.server.uploads import UploadError, UploadLimits
from graphflow.server.worker import RunState, Worker

log = logging.getLogger("graphflow.server")

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
QUEUE_MESSAGE_LIMIT = 100  # pending runs listed in websocket queue messages
CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass
class ServerConfig:
    db_path: Path
    host: str = "127.0.0.1"
    workers: int = 1
    limits: UploadLimits = field(default_factory=UploadLimits)
    preview_max_side: int = 512
    outbox_limit: int = 256
    send_timeout: float = 10.0
    allowed_origins: tuple[str, ...] = ()
    shutdown_timeout: float = 10.0
    web_dir: Path | None = WEB_DIR


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def json_response(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def error_response(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


def invalid_response(problems: list[Problem]) -> web.Response:
    return json_response({"error": "invalid workflow", "problems": [p.to_dict() for p in problems]}, 400)


def holds_model(value, depth: int = 0) -> bool:
    """Whether a cached output holds a model (a torch module somewhere inside it)."""
    import torch

    if isinstance(value, torch.nn.Module):
        return True
    if depth > 3 or isinstance(value, (torch.Tensor, str, bytes, int, float, bool)) or value is None:
        return False
    if isinstance(value, dict):
        return any(holds_model(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_model(v, depth + 1) for v in value)
    if hasattr(value, "__dict__"):
        return any(holds_model(v, depth + 1) for v in vars(value).values())
    return False


class Server:
    def __init__(self, registry: Registry, config: ServerConfig, cache: OutputCache, paused: bool = False):
        self.registry = registry
        self.config = config
        self.cache = cache
        self.store = RunStore(config.db_path)
        self.hub = Hub(config.outbox_limit, config.send_timeout)
        self.running: dict[str, RunState] = {}
        self.workers = [Worker(self, Executor(registry, cache), i) for i in range(config.workers)]
        self.paused = paused
        self.stopping = False
        self.work = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._queue_scheduled = False
        self.loopback_only = is_loopback(config.host)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, app=None) -> None:
        requeued = self.store.recover()
        if requeued:
            log.info("%d run(s) were running when the server last died; they are back in the queue", len(requeued))
        self.work = asyncio.Event()
        self.work.set()
        self._tasks = [asyncio.create_task(w.loop(), name=f"graphflow-worker-{w.index}") for w in self.workers]

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

    def queue_changed(self) -> None:
        """Tell clients about the queue, once per loop iteration however many changes came."""
        if not self._queue_scheduled:
            self._queue_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_queue)

    def _send_queue(self) -> None:
        self._queue_scheduled = False
        if self.hub.clients:
            self.hub.send("queue", self.queue_json(QUEUE_MESSAGE_LIMIT))

    def run_event(self, state: RunState, event: dict, frame: bytes | None) -> None:
        """An executor event, on the loop thread: update the run's state and tell every client."""
        kind = event.pop("type")
        event["client_id"] = state.client_id
        if kind in ("node_started", "progress"):
            if state.node != event["node"]:
                state.progress = None
            state.node, state.node_type = event["node"], event["node_type"]
        if kind == "progress":
            state.progress = {"value": event["value"], "max": event["max"]}
        if frame is not None:
            state.frame = frame
        self.hub.send(kind, event, PROGRESS if kind == "progress" else KEEP)
        if frame is not None:
            self.hub.send_frame(frame)

    # --- submitting --------------------------------------------------------------------------

    def check(self, data, outputs) -> tuple[Workflow | None, list[Problem]]:
        """Parse and validate (on the loop: it takes well under a millisecond for usual graphs,
        and a thread hand-off would cost more than that on a busy machine)."""
        if outputs is not None and not (isinstance(outputs, list) and all(isinstance(o, str) for o in outputs)):
            return None, [Problem(None, None, None, "'outputs' must be a list of node ids")]
        try:
            workflow = parse_workflow(data, self.registry)
        except Exception as e:  # WorkflowFormatError, or a malformed ComfyUI graph
            return None, [Problem(None, None, None, str(e) or type(e).__name__)]
        problems = validate(workflow, self.registry, outputs or None)
        return (None, problems) if problems else (workflow, [])

    def enqueue(self, workflow: Workflow, client_id: str | None, outputs, front: bool,
                run_id: str | None = None) -> dict:
        run_id = run_id or uuid.uuid4().hex
        number = self.store.add(run_id, workflow.to_json(), client_id=client_id, targets=outputs or None,
                                front=front)
        position = self.store.position(run_id)
        self.queue_changed()
        self.work.set()
        return {"run_id": run_id, "position": position, "number": number}


# --- handlers -------------------------------------------------------------------------------

SERVER = web.AppKey("server", Server)  # app[SERVER]: the Server behind an application


def _server(request: web.Request) -> Server:
    return request.app[SERVER]


async def _json_body(request: web.Request, optional: bool = False):
    if optional and not request.body_exists:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UploadError(400, "the body is not valid JSON") from None
    if optional and body is None:
        return {}
    return body


def _client_id(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not CLIENT_ID.match(value):
        raise UploadError(400, "client_id must be 1-128 letters, digits or _.:-")
    return value


async def get_nodes(request):
    return json_response(_server(request).registry.catalogue())


EXAMPLE_WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


async def list_examples(request):
    names = sorted(p.stem for p in EXAMPLE_WORKFLOWS.glob("*.json")) if EXAMPLE_WORKFLOWS.is_dir() else []
    return json_response({"workflows": names})


async def get_example(request):
    name = request.match_info["name"]
    if not name.replace("_", "").replace("-", "").isalnum():
        return error_response(400, f"invalid workflow name {name!r}")
    path = EXAMPLE_WORKFLOWS / f"{name}.json"
    if not path.is_file():
        return error_response(404, f"no example workflow named {name!r}")
    return web.Response(text=path.read_text(encoding="utf-8"), content_type="application/json")


async def post_run(request):
    server = _server(request)
    try:
        body = await _json_body(request)
    except UploadError as e:
        return invalid_response([Problem(None, None, None, str(e))])
    if not isinstance(body, dict) or "workflow" not in body:
        return invalid_response([Problem(None, None, None,
                                         "the body must be a JSON object with the workflow under 'workflow'")])
    client_id = _client_id(body.get("client_id"))
    workflow, problems = server.check(body["workflow"], body.get("outputs"))
    if problems:
        return invalid_response(problems)
    return json_response(server.enqueue(workflow, client_id, body.get("outputs"), bool(body.get("front"))))


async def convert_workflow(request):
    """A workflow in our format from ours or a ComfyUI API graph, with its validation report
    (informative: the editor loads an invalid graph so the user can fix it)."""
    server = _server(request)
    try:
        body = await _json_body(request)
    except UploadError as e:
        return json_response({"error": str(e), "problems": [Problem(None, None, None, str(e)).to_dict()]}, 400)
    if not isinstance(body, dict) or "workflow" not in body:
        message = "the body must be a JSON object with the workflow under 'workflow'"
        return json_response({"error": message, "problems": [Problem(None, None, None, message).to_dict()]}, 400)
    try:
        workflow = parse_workflow(body["workflow"], server.registry)
    except Exception as e:
        problem = Problem(None, None, None, str(e) or type(e).__name__)
        return json_response({"error": problem.message, "problems": [problem.to_dict()]}, 400)
    problems = validate(workflow, server.registry)
    return json_response({"workflow": workflow.to_json(), "problems": [p.to_dict() for p in problems]})


async def get_queue(request):
    return json_response(_server(request).queue_json())


async def cancel_run(request):
    server = _server(request)
    run_id = request.match_info["run_id"]
    if server.store.cancel(run_id):
        record = server.store.get(run_id)
        server.hub.send("run_cancelled", {"run_id": run_id, "client_id": record["client_id"]})
        server.queue_changed()
        return json_response({"run_id": run_id, "status": "cancelled"})
    status = server.store.status_of(run_id)
    if status is None:
        return error_response(404, f"no run {run_id!r}")
    if status == "running":
        return error_response(409, f"run {run_id} is running; interrupt it with POST /api/interrupt")
    return error_response(409, f"run {run_id} already finished ({status})")


async def cancel_all(request):
    server = _server(request)
    cancelled = []
    for item in server.store.pending():
        if server.store.cancel(item["run_id"]):
            cancelled.append(item["run_id"])
            server.hub.send("run_cancelled", {"run_id": item["run_id"], "client_id": item["client_id"]})
    server.queue_changed()
    return json_response({"cancelled": cancelled})


async def interrupt(request):
    server = _server(request)
    body = await _json_body(request, optional=True)
    run_id = body.get("run_id") if isinstance(body, dict) else None
    interrupted = []
    for state in list(server.running.values()):
        if run_id is None or state.run_id == run_id:
            state.interrupt.set()
            interrupted.append(state.run_id)
    return json_response({"interrupted": interrupted})


def _int_query(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UploadError(400, f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise UploadError(400, f"{name} must be from {low} to {high}, got {value}")
    return value


async def get_history(request):
    server = _server(request)
    offset = _int_query(request, "offset", 0, 0, 2**62)
    limit = _int_query(request, "limit", 50, 1, 500)
    status = request.query.get("status") or None
    if status is not None and status not in FINISHED:
        raise UploadError(400, f"status must be one of {', '.join(FINISHED)}")
    total, items = server.store.history(offset, limit, status)
    return json_response({"total": total, "offset": offset, "limit": limit, "items": items})


async def get_run(request):
    record = _server(request).store.get(request.match_info["run_id"])
    if record is None:
        return error_response(404, f"no run {request.match_info['run_id']!r}")
    return json_response(record)


async def delete_run(request):
    server = _server(request)
    run_id = request.match_info["run_id"]
    if server.store.delete(run_id):
        return json_response({"run_id": run_id, "deleted": True})
    status = server.store.status_of(run_id)
    if status is None:
        return error_response(404, f"no run {run_id!r}")
    return error_response(409, f"run {run_id} is {status}; cancel or interrupt it first")


async def view(request):
    query = request.query
    path = uploads.resolve_view(query.get("type") or "output", query.get("subfolder"), query.get("filename"))
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    if query.get("thumbnail"):
        size = _int_query(request, "thumbnail", 256, 16, 2048)
        data = await asyncio.to_thread(uploads.thumbnail, path, size)
        return web.Response(body=data, content_type="image/jpeg", headers=headers)
    headers["Content-Type"] = uploads.VIEW_TYPES[path.suffix.lower()]
    return web.FileResponse(path, headers=headers)


async def upload(request, mask: bool = False):
    server = _server(request)
    limits = server.config.limits
    fields, file = await uploads.read_form(request, limits)
    name = uploads.clean_filename(file["filename"])
    subfolder = uploads.clean_subfolder(fields.get("subfolder"))
    overwrite = fields.get("overwrite", "").strip().lower() in ("1", "true", "yes", "on")
    info = await asyncio.to_thread(uploads.check_image, file["data"], file["content_type"], limits)
    data = file["data"]
    if mask:
        raw = fields.get("original") or fields.get("original_ref")
        try:
            ref = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            ref = None
        if not isinstance(ref, dict):
            raise UploadError(400, "a mask upload needs 'original': JSON {filename, subfolder, type} of the image")
        original = uploads.resolve_view(ref.get("type") or "input", ref.get("subfolder"), ref.get("filename"))
        data = await asyncio.to_thread(uploads.apply_mask, original, data)
        info = await asyncio.to_thread(uploads.check_image, data, "image/png", limits)
    result = await asyncio.to_thread(uploads.store_input, data, name, subfolder, info["format"], overwrite)
    return json_response(dict(result, **info))


async def free(request):
    server = _server(request)
    body = await _json_body(request, optional=True)
    if not isinstance(body, dict):
        raise UploadError(400, 'expected {"models": bool, "cache": bool}')
    drop_cache = bool(body.get("cache") or body.get("free_memory"))
    drop_models = bool(body.get("models") or body.get("unload_models"))
    dropped = 0
    if drop_cache:
        dropped = len(server.cache)
        server.cache.clear()
    elif drop_models:
        dropped = server.cache.discard(holds_model)
    await asyncio.to_thread(free_memory)
    return json_response({"dropped": dropped, "cache": _cache_json(server.cache)})


def _cache_json(cache: OutputCache) -> dict:
    return {"entries": len(cache), "bytes": cache.nbytes, "max_bytes": cache.max_bytes}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _ram() -> dict:
    info = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    info["ram_total" if key == "MemTotal" else "ram_available"] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return info


async def system(request):
    server = _server(request)
    import aiohttp
    import PIL
    import torch

    return json_response({
        "versions": {"graphflow": _version("graphflow"), "python": platform.python_version(),
                     "torch": torch.__version__, "aiohttp": aiohttp.__version__, "pillow": PIL.__version__},
        "device": await asyncio.to_thread(memory_stats),
        "memory": _ram(),
        "cache": _cache_json(server.cache),
        "queue": {"running": len(server.running), "pending": server.store.count_pending()},
        "workers": len(server.workers),
        "limits": {"max_upload_bytes": server.config.limits.max_bytes,
                   "max_image_side": server.config.limits.max_side},
        "problems": list(server.registry.problems),
    })


async def websocket(request):
    server = _server(request)
    client_id = _client_id(request.query.get("client_id") or request.query.get("clientId")) or uuid.uuid4().hex
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
    await ws.prepare(request)
    # The snapshot and registration happen in one step, so no message falls between them.
    frames = [s for s in server.running.values() if s.frame is not None]
    first = [Outgoing(message("status", {"client_id": client_id, "queue": server.queue_json(QUEUE_MESSAGE_LIMIT),
                                         "previews": [s.run_id for s in frames]}))]
    first += [Outgoing(s.frame, PREVIEW) for s in frames]
    client = server.hub.connect(ws, client_id, first, request.transport)
    pump = asyncio.create_task(client.pump())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    kind = json.loads(msg.data).get("type")
                except (json.JSONDecodeError, AttributeError):
                    kind = None
                if kind == "ping":
                    client.push(Outgoing(message("pong", {})))
    finally:
        server.hub.disconnect(client)
        pump.cancel()
    return ws


async def index(request):
    web_dir = _server(request).config.web_dir
    page = web_dir / "index.html" if web_dir is not None else None
    if page is not None and page.is_file():
        return web.FileResponse(page)
    return web.Response(text="<!doctype html><title>graphflow</title><p>graphflow server: the editor is not "
                             "installed; the API is at /api (see docs/api.md).</p>", content_type="text/html")


# --- ComfyUI-compatible routes ----------------------------------------------------------------

def _comfy_node_errors(problems: list[Problem]) -> dict:
    errors: dict[str, dict] = {}
    for p in problems:
        if p.node_id is None:
            continue
        entry = errors.setdefault(p.node_id, {"errors": [], "dependent_outputs": [], "class_type": p.node_type})
        entry["errors"].append({"type": "invalid_input" if p.input else "invalid_node", "message": p.message,
                                "details": p.input or "", "extra_info": {"input_name": p.input}})
    return errors


async def comfy_prompt(request):
    server = _server(request)
    try:
        body = await _json_body(request)
    except UploadError as e:
        body = None
        problems = [Problem(None, None, None, str(e))]
    if body is not None:
        if not isinstance(body, dict) or "prompt" not in body:
            problems = [Problem(None, None, None, "the body must be a JSON object with the graph under 'prompt'")]
        else:
            workflow, problems = server.check(body["prompt"], None)
    if problems:
        return json_response({
            "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": "\n".join(map(str, problems)), "extra_info": {}},
            "node_errors": _comfy_node_errors(problems),
            "problems": [p.to_dict() for p in problems]}, 400)
    run_id = body.get("prompt_id")
    if run_id is not None and (not isinstance(run_id, str) or not CLIENT_ID.match(run_id)
                               or server.store.status_of(run_id) is not None):
        raise UploadError(400, "prompt_id must be a new id of 1-128 letters, digits or _.:-")
    queued = server.enqueue(workflow, _client_id(body.get("client_id")), None, bool(body.get("front")), run_id)
    return json_response({"prompt_id": queued["run_id"], "number": queued["number"], "node_errors": {}})


async def comfy_prompt_info(request):
    server = _server(request)
    return json_response({"exec_info": {"queue_remaining": server.store.count_pending() + len(server.running)}})


async def comfy_history(request):
    record = _server(request).store.get(request.match_info["run_id"])
    if record is None or record["status"] not in FINISHED:
        return json_response({})
    status = {"status_str": "success" if record["status"] == "success" else "error",
              "completed": record["status"] == "success", "messages": []}
    return json_response({record["run_id"]: {
        "prompt": [record["number"], record["run_id"], record["workflow"], {}, list(record["outputs"] or {})],
        "outputs": record["outputs"] or {}, "status": status}})


# --- the application ------------------------------------------------------------------------

def _guard(server: Server):
    @web.middleware
    async def guard(request: web.Request, handler):
        if server.loopback_only and not is_loopback(_host_name(request.host).lower()):
            return error_response(403, f"host {request.host!r} is not this machine's loopback address")
        origin = request.headers.get("Origin")
        if origin is not None:
            netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
            if netloc != request.host.lower() and origin not in server.config.allowed_origins:
                return error_response(403, f"requests from {origin!r} are not allowed")
        try:
            return await handler(request)
        except UploadError as e:
            return error_response(e.status, str(e))
        except UnsafePathError as e:
            return error_response(400, str(e))

    return guard


def create_app(registry: Registry | None = None, db_path: str | Path | None = None, *,
               host: str = "127.0.0.1", workers: int = 1, cache: OutputCache | None = None,
               cache_max_bytes: int | None = None, max_upload_bytes: int = 50 * 2**20,
               max_image_side: int = 8192, paused: bool = False, web_dir: Path | None = WEB_DIR,
               allowed_origins: tuple[str, ...] = (), outbox_limit: int = 256, send_timeout: float = 10.0,
               shutdown_timeout: float = 10.0) -> web.Application:
    """The server application. `db_path` defaults to <output dir>/history.db; `paused` starts
    with the queue held (app[SERVER].resume() releases it)."""
    registry = registry if registry is not None else default_registry()
    if cache is None:
        cache = OutputCache(max_bytes=cache_max_bytes) if cache_max_bytes is not None else OutputCache()
    if workers < 1:
        raise ValueError("workers must be at least 1")
    config = ServerConfig(
        db_path=Path(db_path) if db_path is not None else folders.outputs / "history.db",
        host=host, workers=workers, limits=UploadLimits(max_upload_bytes, max_image_side),
        outbox_limit=outbox_limit, send_timeout=send_timeout, allowed_origins=tuple(allowed_origins), shutdown_timeout=shutdown_timeout,
        web_dir=web_dir)
    server = Server(registry, config, cache, paused=paused)
    app = web.Application(middlewares=[_guard(server)], client_max_size=max_upload_bytes + 2**20)
    app[SERVER] = server
    app.on_startup.append(server.start)
    app.on_shutdown.append(server.stop)
    app.on_cleanup.append(server.cleanup)

    r = app.router
    r.add_get("/api/nodes", get_nodes)
    r.add_get("/api/system", system)
    r.add_post("/api/runs", post_run)
    r.add_post("/api/workflow/convert", convert_workflow)
    r.add_get("/api/workflows", list_examples)
    r.add_get("/api/workflows/{name}", get_example)
    r.add_get("/api/queue", get_queue)
    r.add_delete("/api/queue", cancel_all)
    r.add_delete("/api/queue/{run_id}", cancel_run)
    r.add_post("/api/interrupt", interrupt)
    r.add_get("/api/history", get_history)
    r.add_get("/api/history/{run_id}", get_run)
    r.add_delete("/api/history/{run_id}", delete_run)
    r.add_get("/api/view", view)
    r.add_post("/api/upload", upload)
    r.add_post("/api/upload/mask", partial(upload, mask=True))
    r.add_post("/api/free", free)
    r.add_get("/ws", websocket)
    # ComfyUI-compatible names for scripts written against ComfyUI.
    r.add_post("/prompt", comfy_prompt)
    r.add_get("/prompt", comfy_prompt_info)
    r.add_get("/history/{run_id}", comfy_history)
    r.add_get("/view", view)
    r.add_post("/upload/image", upload)
    r.add_post("/upload/mask", partial(upload, mask=True))
    r.add_post("/interrupt", interrupt)
    r.add_get("/", index)
    if web_dir is not None and web_dir.is_dir():
        r.add_static("/web/", web_dir, follow_symlinks=False)
    return app


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def serve(host: str = "127.0.0.1", port: int = 8188, *, db_path: str | Path | None = None,
          max_upload_mb: float = 50, cache_max_gb: float | None = None, workers: int = 1,
          registry: Registry | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; prints the URL. Returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return asyncio.run(_serve(host, port, db_path=db_path, max_upload_bytes=int(max_upload_mb * 2**20),
                              cache_max_bytes=int(cache_max_gb * 2**30) if cache_max_gb else None,
                              workers=workers, registry=registry))


async def _serve(host, port, **options) -> int:
    # Bind before loading anything, so a taken port is reported at once.
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as e:
        print(f"graphflow: cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr)
        return 1
    app = create_app(host=host, **options)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    print(f"graphflow server running at {_url(host, sock.getsockname()[1])}  (Ctrl-C to stop)", flush=True)
    if not is_loopback(host):
        print(f"graphflow: WARNING: listening on {host}, open to the network; there is no authentication, "
              "anyone who can reach this port can run workflows and read outputs", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        print("graphflow: stopping", file=sys.stderr, flush=True)
        await runner.cleanup()
    return 0
