"""The HTTP and websocket server: queue, history, files and live progress over the executor.

`create_app()` builds the aiohttp application (tests inject a registry and a database): a
`Server` (graphflow.server.server), the routes of editor_routes, run_routes, file_routes,
model_routes, system_routes and comfyui_routes, and a guard that keeps other hosts and origins out.
`serve()` runs it for `graphflow serve`. The endpoints are documented in docs/api.md.
"""

import asyncio
import logging
import signal
import socket
import sys
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from graphflow.cache import OutputCache
from graphflow.folders import MODEL_KINDS, UnsafePathError, folders
from graphflow.registry import Registry, default_registry
from graphflow.resource_limits import SERVER_LIMITS, RunLimits

from graphflow.server import (comfyui_routes, editor_routes, etn_routes, file_routes, model_routes, run_routes,
                              system_routes, user_workflows)
from graphflow.server.json_api import error_response
from graphflow.server.server import SERVER, WEB_DIR, Server, ServerConfig, is_loopback
from graphflow.server.uploads import RequestError, UploadLimits, sweep_staged

log = logging.getLogger(__name__)

def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _address(netloc: str, scheme: str) -> tuple[str, int] | None:
    """(host, port) of a host[:port], the scheme's port when none is given; None if malformed."""
    try:
        parts = urlsplit(f"//{netloc}")
        return (parts.hostname or "", parts.port or {"http": 80, "https": 443}.get(scheme, 0))
    except ValueError:
        return None


def _same_origin(origin: str, host_header: str, scheme: str) -> bool:
    """The page that sent the request is this server's own: the same host and port, where
    localhost, 127.0.0.1 and ::1 count as one host (a page opened at 127.0.0.1 talking to
    localhost). Other origins stay out, a rebinding name too: it is no loopback name."""
    if origin == "null":
        return False
    origin_parts = urlsplit(origin)
    theirs = _address(origin_parts.netloc, origin_parts.scheme)
    ours = _address(host_header, scheme)
    if theirs is None or ours is None or theirs[1] != ours[1]:
        return False
    return theirs[0] == ours[0] or (is_loopback(theirs[0]) and is_loopback(ours[0]))


CORS_HEADERS = {"Access-Control-Allow-Methods": "POST, GET, DELETE, PUT, OPTIONS, PATCH",  # ComfyUI's
                "Access-Control-Allow-Headers": "Content-Type, Authorization",
                "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}


def _granted(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a page of another origin may call (`serve --enable-cors-header`: one origin, or "*" any)."""
    return origin is not None and origin != "null" and ("*" in allowed or origin in allowed)


async def _sweep_staged_files(app) -> None:
    """The staged uploads a killed server left where uploads are written: the model folders' first
    directories (the ETN model upload) and the input, output and temp folders (/upload/image)."""
    directories = [folders.model_dirs(kind)[0] for kind in MODEL_KINDS] + [folders.inputs, folders.outputs,
                                                                            folders.temp]
    removed = await asyncio.to_thread(sweep_staged, directories)
    if removed:
        log.info("removed %d unfinished upload(s) a stopped server left", removed)


async def _cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer to a granted origin, errors too, tells the browser it may read it (a page of another
    origin reads nothing without these, however the server answered)."""
    origin = request.headers.get("Origin")
    if _granted(origin, request.app[SERVER].config.allowed_origins):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers.update(CORS_HEADERS)


def _guard(server: Server):
    @web.middleware
    async def guard(request: web.Request, handler):
        if server.loopback_only and not is_loopback(_host_name(request.host).lower()):
            return error_response(403, f"host {request.host!r} is not this machine's loopback address")
        origin = request.headers.get("Origin")
        granted = _granted(origin, server.config.allowed_origins)
        if origin is not None and not _same_origin(origin, request.host, request.scheme) and not granted:
            return error_response(403, f"requests from {origin!r} are not allowed")
        if granted and request.method == "OPTIONS":
            return web.Response()  # a browser's preflight: the headers are _cors_headers'
        try:
            return await handler(request)
        except RequestError as e:
            return error_response(e.status, str(e))
        except UnsafePathError as e:
            return error_response(400, str(e))

    return guard


def create_app(registry: Registry | None = None, db_path: str | Path | None = None, *,
               host: str = "127.0.0.1", workers: int = 1, cache: OutputCache | None = None,
               cache_max_bytes: int | None = None, max_upload_bytes: int = 50 * 2**20,
               max_image_side: int = 8192, max_model_upload_bytes: int = 4 * 2**30, paused: bool = False,
               web_dir: Path | None = WEB_DIR,
               allowed_origins: tuple[str, ...] = (), outbox_limit: int = 256, send_timeout: float = 10.0,
               shutdown_timeout: float = 10.0, run_limits: RunLimits | None = None,
               dispatcher=None) -> web.Application:
    """The server application. `db_path` defaults to <output dir>/history.db; `paused` starts
    with the queue held (app[SERVER].resume() releases it); `run_limits` bound what a run may take
    (default SERVER_LIMITS: a size, batch, steps and time policy, and what fits on this machine);
    `dispatcher` (graphflow.cluster.RayDispatcher) runs the queue on Ray workers instead of here."""
    registry = registry if registry is not None else default_registry()
    if cache is None:
        cache = OutputCache(max_bytes=cache_max_bytes) if cache_max_bytes is not None else OutputCache()
    if workers < 1:
        raise ValueError("workers must be at least 1")
    config = ServerConfig(
        db_path=Path(db_path) if db_path is not None else folders.outputs / "history.db",
        host=host, workers=workers, limits=UploadLimits(max_upload_bytes, max_image_side),
        model_upload_max_bytes=max_model_upload_bytes,
        outbox_limit=outbox_limit, send_timeout=send_timeout, allowed_origins=tuple(allowed_origins),
        shutdown_timeout=shutdown_timeout,
        web_dir=web_dir, run_limits=run_limits if run_limits is not None else SERVER_LIMITS)
    server = Server(registry, config, cache, paused=paused, dispatcher=dispatcher)
    app = web.Application(middlewares=[_guard(server)], client_max_size=max_upload_bytes + 2**20)
    app[SERVER] = server
    app[etn_routes.EXCHANGE] = etn_routes.WorkflowExchange(server.hub)
    app[etn_routes.MODEL_UPLOADS] = asyncio.Semaphore(etn_routes.MAX_MODEL_UPLOADS)
    app.on_startup.append(_sweep_staged_files)
    app.on_response_prepare.append(_cors_headers)
    app.on_startup.append(server.start)
    app.on_shutdown.append(server.stop)
    app.on_cleanup.append(server.cleanup)

    r = app.router
    r.add_get("/api/nodes", editor_routes.get_nodes)
    r.add_get("/api/system", system_routes.system)
    r.add_post("/api/runs", run_routes.post_run)
    r.add_post("/api/workflow/convert", editor_routes.convert_workflow)
    r.add_get("/api/workflows", editor_routes.list_examples)
    r.add_get("/api/workflows/{name}", editor_routes.get_example)
    r.add_get("/api/userdata/workflows", user_workflows.list_workflows)
    r.add_get("/api/userdata/workflows/{name}", user_workflows.get_workflow)
    r.add_put("/api/userdata/workflows/{name}", user_workflows.put_workflow)
    r.add_delete("/api/userdata/workflows/{name}", user_workflows.delete_workflow)
    r.add_get("/api/queue", run_routes.get_queue)
    r.add_delete("/api/queue", run_routes.cancel_all)
    r.add_delete("/api/queue/{run_id}", run_routes.cancel_run)
    r.add_post("/api/interrupt", run_routes.interrupt)
    r.add_get("/api/history", run_routes.get_history)
    r.add_get("/api/history/{run_id}", run_routes.get_run)
    r.add_delete("/api/history/{run_id}", run_routes.delete_run)
    r.add_get("/api/view", file_routes.view)
    r.add_post("/api/upload", file_routes.upload)
    r.add_post("/api/upload/mask", partial(file_routes.upload, mask=True))
    r.add_post("/api/free", system_routes.free)
    r.add_get("/api/models/{kind}/info", model_routes.model_info)
    r.add_get("/ws", run_routes.websocket)
    r.add_get("/api/ws", partial(run_routes.websocket, comfyui=True))  # ComfyUI's path: its protocol
    # ComfyUI's API, for scripts written against ComfyUI (docs/comfyui.md lists it from ROUTES).
    # ComfyUI serves each route under /api too (its own frontend calls /api/prompt, /api/object_info,
    # ...); where our API already has that method and path, ours answers (docs/comfyui.md).
    # A GET answers HEAD too, as aiohttp's add_get (ComfyUI's routes.get) makes it.
    ours = {(route.method, route.resource.canonical) for route in r.routes()}
    for method, path, handler, _ in comfyui_routes.ROUTES:
        for full in (path, "/api" + path):
            if full == path or (method, full) not in ours:
                r.add_get(full, handler) if method == "GET" else r.add_route(method, full, handler)
    for method, path, handler, _ in etn_routes.ROUTES:  # the ETN pack's routes (Krita AI Diffusion)
        r.add_route(method, path, handler)
    r.add_get("/", editor_routes.index)
    if web_dir is not None and web_dir.is_dir():
        r.add_static("/web/", web_dir, follow_symlinks=False)
    return app


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def serve(host: str = "127.0.0.1", port: int = 8188, *, db_path: str | Path | None = None,
          max_upload_mb: float = 50, cache_max_gb: float | None = None, workers: int = 1,
          registry: Registry | None = None, run_limits: RunLimits | None = None, ray: dict | None = None,
          allowed_origins: tuple[str, ...] = (), max_model_upload_mb: float = 4096) -> int:
    """Run the server until SIGINT/SIGTERM; prints the URL. Returns the exit code. `ray`: the
    options of graphflow.cluster.WorkerPool (workers, address, gpus_per_worker) to run on Ray;
    `allowed_origins`: pages of these origins ("*": any) may call it from a browser (CORS)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    cache_max_bytes = int(cache_max_gb * 2**30) if cache_max_gb else None
    dispatcher = None
    if ray is not None:
        from graphflow.cluster import RayDispatcher, WorkerPool

        limits = run_limits if run_limits is not None else SERVER_LIMITS
        dispatcher = RayDispatcher(WorkerPool(**ray, cache_max_bytes=cache_max_bytes, limits=limits))
    return asyncio.run(_serve(host, port, db_path=db_path, max_upload_bytes=int(max_upload_mb * 2**20),
                              cache_max_bytes=cache_max_bytes, workers=workers, registry=registry,
                              run_limits=run_limits, dispatcher=dispatcher, allowed_origins=allowed_origins,
                              max_model_upload_bytes=int(max_model_upload_mb * 2**20)))


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
            pass  # no signal handlers here (Windows, or not the main thread): Ctrl-C still ends the loop
    try:
        await stop.wait()
    finally:
        print("graphflow: stopping", file=sys.stderr, flush=True)
        await runner.cleanup()
    return 0
