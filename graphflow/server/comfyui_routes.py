"""ComfyUI's HTTP API, served beside ours for scripts, bots and apps written against ComfyUI:
/prompt, /queue, /history, /object_info, /system_stats, /embeddings, /models, /interrupt, /free,
/upload and /view, with ComfyUI's request and response shapes (docs/comfyui.md lists them)."""

import asyncio
from functools import partial

from aiohttp import web

from graphflow.device import memory_stats
from graphflow.comfy_format import comfy_version, export_api
from graphflow.folders import COMFY_KINDS, MODEL_KINDS, UnsafePathError, folders
from graphflow.validation import SUGGESTED_TYPES, Problem, output_nodes, unknown_type_problem
from graphflow.workflow import WorkflowFormatError, parse_workflow

from graphflow.server import comfyui_messages, file_routes, system_routes
from graphflow.server.json_api import (CLIENT_ID, error_response, int_query, json_body, json_response,
                                       valid_client_id)
from graphflow.server.server import server_of
from graphflow.server.store import FINISHED
from graphflow.server.uploads import RequestError


# extra_data keys ComfyUI never stores (API keys for its paid nodes): dropped as they come in.
SENSITIVE_EXTRA_DATA = ("auth_token_comfy_org", "api_key_comfy_org")


def _comfy_node_errors(problems: list[Problem], dependents: dict[str, list[str]] | None = None) -> dict:
    """ComfyUI's `node_errors`: per node its errors, class and the outputs it keeps from running."""
    errors: dict[str, dict] = {}
    for p in problems:
        if p.node_id is None:
            continue
        entry = errors.setdefault(p.node_id, {"errors": [], "dependent_outputs": list((dependents or {}).get(p.node_id, [])),
                                              "class_type": p.node_type})
        kind = p.kind or ("invalid_input" if p.input else "invalid_node")
        entry["errors"].append({"type": kind, "message": p.message,
                                "details": p.input or "", "extra_info": {"input_name": p.input}})
    return errors


def _failed(kind: str, message: str, problems: list[Problem], dependents: dict | None = None,
            details: str | None = None):
    """ComfyUI's 400 answer: `error` {type, message, details, extra_info} and `node_errors`
    (`problems`: ours, in our shape, for clients that want node and input apart). A prompt-level
    refusal (`details` given: ComfyUI's "Node ID '#3'") has no node_errors, as in ComfyUI."""
    node_errors = _comfy_node_errors(problems, dependents) if details is None else {}
    if details is None:
        details = "\n".join(f"{p.message}: {p.input or ''}" if p.node_id is not None else p.message for p in problems)
    return json_response({
        "error": {"type": kind, "message": message, "details": details, "extra_info": {}},
        "node_errors": node_errors,
        "problems": [p.to_dict() for p in problems]}, 400)


async def comfy_prompt(request):
    """Queue a ComfyUI prompt. As in ComfyUI, the outputs whose part of the graph is valid run and
    the invalid ones come back in `node_errors`; only a prompt with no valid output, or with a node
    of a class we lack anywhere in it, is refused, with ComfyUI's error types: no_prompt,
    invalid_prompt, prompt_no_outputs or prompt_outputs_failed_validation."""
    server = server_of(request)
    try:
        body = await json_body(request)
        if not isinstance(body, dict) or "prompt" not in body:
            return _failed("no_prompt", "No prompt provided",
                           [Problem(None, None, None, "the body must be a JSON object with the graph under 'prompt'")])
        client_id = valid_client_id(body.get("client_id"))
        run_id = body.get("prompt_id")
        if run_id is not None and (not isinstance(run_id, str) or not CLIENT_ID.match(run_id)
                                   or server.store.status_of(run_id) is not None):
            raise RequestError(400, "prompt_id must be a new id of 1-128 letters, digits or _.:-")
        # the frontend's "queue selected output nodes": only those of the graph's outputs run (ids
        # are strings: as in ComfyUI, a number names no node)
        targets = body.get("partial_execution_targets")
        if targets is not None and not isinstance(targets, list):
            raise RequestError(400, "partial_execution_targets must be a list of node ids")
    except RequestError as e:
        return _failed("invalid_prompt", str(e), [Problem(None, None, None, str(e))])
    workflow, valid_outputs, problems, dependents = server.check_partial(body["prompt"], targets)
    if workflow is None:  # not a graph at all (ComfyUI: a node without class_type, say)
        problems = problems or [Problem(None, None, None, "the prompt is not a graph of nodes")]
        prompt = body["prompt"]
        lacking = [k for k, v in prompt.items() if isinstance(v, dict) and "class_type" not in v] \
            if isinstance(prompt, dict) else []
        if lacking:
            return _failed("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                           problems, details=f"Node ID '#{lacking[0]}'")
        return _failed("invalid_prompt", problems[0].message, problems)
    # As in ComfyUI, a class it does not know refuses the whole prompt, with the message clients
    # look for to tell a missing custom node (the problems say which pack it comes from).
    unknown = [unknown_type_problem(node_id, node.type, server.registry, suggest=i < SUGGESTED_TYPES)
               for i, (node_id, node) in enumerate((k, n) for k, n in workflow.nodes.items()
                                                   if server.registry.get(n.type) is None)]
    if unknown:
        return _failed("invalid_prompt", f"Cannot execute because node {unknown[0].node_type} does not exist.",
                       unknown, details=f"Node ID '#{unknown[0].node_id}'")
    if not valid_outputs and not problems:
        return _failed("prompt_no_outputs", "Prompt has no outputs", [Problem(
            None, None, None, "the prompt has no output node (SaveImage, PreviewImage, ...): nothing would run"
            if targets is None else "partial_execution_targets names none of the prompt's output nodes")])
    if not valid_outputs:
        return _failed("prompt_outputs_failed_validation", "Prompt outputs failed validation", problems, dependents)
    targets = None if not problems and targets is None else valid_outputs
    extra = body.get("extra_data") if isinstance(body.get("extra_data"), dict) else {}
    extra = {k: v for k, v in extra.items() if k not in SENSITIVE_EXTRA_DATA and k != "client_id"}
    queued = server.enqueue(workflow, client_id, targets, bool(body.get("front")), run_id, extra)
    front = bool(body.get("front"))
    return json_response({"prompt_id": queued["run_id"], "number": -queued["number"] if front else queued["number"],
                          "node_errors": _comfy_node_errors(problems, dependents)})


async def comfy_prompt_info(request):
    server = server_of(request)
    return json_response({"exec_info": {"queue_remaining": server.store.count_pending() + len(server.running)}})


async def comfy_history(request):
    """One prompt's history entry, {} until it has run (as in ComfyUI, a prompt taken off the queue
    before it ran never has one; ours keeps it in /api/history as cancelled)."""
    record = server_of(request).store.get(request.match_info["run_id"])
    if record is None or record["status"] not in FINISHED or record["status"] == "cancelled":
        return json_response({})
    return json_response({record["run_id"]: _history_entry(record, server_of(request))})


# --- ComfyUI's other HTTP routes ----------------------------------------------------------------

MODEL_FOLDERS = (*MODEL_KINDS, *COMFY_KINDS)  # ComfyUI's legacy names ("clip", "unet") answer too


async def comfy_object_info(request):
    server = server_of(request)
    return server.object_info_reply.response(server.registry, request.match_info.get("class_type"))


def _extra_data(record: dict) -> dict:
    """ComfyUI's extra_data of a queue item: what the client sent as extra_data (the editor's
    workflow under extra_pnginfo, which ComfyUI's frontend reopens from the queue and history)
    and the client_id the prompt came with, if any."""
    extra = dict(record.get("extra") or {})
    if record.get("client_id"):
        extra["client_id"] = record["client_id"]
    return extra


def _queue_item(record: dict, server) -> list:
    """ComfyUI's queue entry: [number, prompt_id, prompt, extra_data, outputs_to_execute], the
    prompt in ComfyUI's API format (what a client would queue again); the number is negative for
    a prompt queued in front, as ComfyUI numbers those."""
    registry = server.registry
    prompt, outputs = {}, list(record.get("targets") or [])
    try:
        workflow = parse_workflow(record.get("workflow") or {}, registry)
        prompt = export_api(workflow, registry)
        outputs = outputs or output_nodes(workflow, registry)
    except (WorkflowFormatError, KeyError, ValueError):
        pass  # a run recorded by an older graphflow whose nodes are gone: the ids still identify it
    number = record.get("number")
    if number is not None and server.store.queued_in_front(record["run_id"]):
        number = -number
    return [number, record["run_id"], prompt, _extra_data(record), outputs]


async def comfy_queue(request):
    server = server_of(request)
    store = server.store
    records = [store.get(run_id) for run_id in list(server.running)] + [store.get(r["run_id"]) for r in store.pending()]
    records = [r for r in records if r is not None]
    items = [_queue_item(r, server) for r in records]
    running = [item for item, r in zip(items, records) if r["status"] != "pending"]
    return json_response({"queue_running": running, "queue_pending": items[len(running):]})


async def comfy_queue_change(request):
    """{"clear": true} cancels every pending prompt; {"delete": [ids]} cancels those."""
    server = server_of(request)
    body = await json_body(request, optional=True)
    if not isinstance(body, dict):
        raise RequestError(400, 'expected {"clear": true} or {"delete": [prompt ids]}')
    ids = [r["run_id"] for r in server.store.pending()] if body.get("clear") else body.get("delete") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise RequestError(400, "'delete' must be a list of prompt ids")
    for run_id in ids:
        if server.store.cancel(run_id):
            server.hub.send("run_cancelled", {"run_id": run_id, "client_id": None})
    server.queue_changed()
    return web.Response(status=200)


def _history_entry(record: dict, server) -> dict:
    """ComfyUI's history entry: the queue item, the output nodes' ui, status and each output's
    `meta` (graphflow has no subgraph expansion: a node is its own display and real node)."""
    outputs = record["outputs"] or {}
    return {"prompt": _queue_item(record, server), "outputs": outputs,
            "status": comfyui_messages.history_status(record),
            "meta": {node: {"node_id": node, "display_node": node, "parent_node": None, "real_node_id": node}
                     for node in outputs}}


async def comfy_history_list(request):
    """Finished prompts oldest first, as ComfyUI lists them: `max_items` of them from `offset`
    (counted from the oldest), or without an offset (or a negative one) the most recent
    `max_items`. ComfyUI keeps 10000 prompts: a larger `max_items` means all, none or fewer
    means none."""
    server = server_of(request)
    store = server.store
    max_items = int_query(request, "max_items", 10_000, -2**62, 2**62)
    if max_items <= 0:
        return json_response({})
    max_items = min(max_items, 10_000)
    total, _ = store.history(0, 0, ran=True)
    offset = int_query(request, "offset", -1, -2**62, 2**62)
    if offset < 0:
        offset = max(total - max_items, 0)
    count = max(min(max_items, total - offset), 0)
    _, items = store.history(total - offset - count, count, ran=True) if count else (total, [])
    records = [store.get(r["run_id"]) for r in reversed(items)]  # with the prompt, as ComfyUI lists it
    return json_response({r["run_id"]: _history_entry(r, server) for r in records if r is not None})


async def comfy_history_change(request):
    store = server_of(request).store
    body = await json_body(request, optional=True)
    if not isinstance(body, dict):
        raise RequestError(400, 'expected {"clear": true} or {"delete": [prompt ids]}')
    if body.get("clear"):
        while True:
            _, items = store.history(0, 500)
            if not items:
                break
            for item in items:
                store.delete(item["run_id"])
    ids = body.get("delete") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise RequestError(400, "'delete' must be a list of prompt ids")
    for run_id in ids:
        store.delete(run_id)
    return web.Response(status=200)


async def comfy_system_stats(request):
    import os
    import platform
    import sys

    import torch

    stats = await asyncio.to_thread(memory_stats)
    ram = system_routes.ram()
    # as ComfyUI's torch.device: "cpu" has no index (null), "cuda:0" has 0; on the CPU the "VRAM"
    # is the machine's memory, torch's share of it all of it
    kind, _, index = stats["device"].partition(":")
    vram_total = stats.get("vram_total", ram.get("ram_total", 0))
    vram_free = stats.get("vram_free", ram.get("ram_available", 0))
    device = {"name": stats.get("name", stats["device"]), "type": kind,
              "index": int(index) if index.isdigit() else 0 if kind == "cuda" else None,
              "vram_total": vram_total, "vram_free": vram_free,
              "torch_vram_total": vram_total, "torch_vram_free": vram_free}
    return json_response({
        "system": {"os": os.name, "ram_total": ram.get("ram_total", 0), "ram_free": ram.get("ram_available", 0),
                   # the ComfyUI interface followed, as a version clients can compare; ours beside it
                   "comfyui_version": comfy_version(), "graphflow_version": system_routes.version("graphflow"),
                   "python_version": sys.version, "pytorch_version": torch.__version__,
                   "embedded_python": False, "argv": sys.argv, "platform": platform.platform()},
        "devices": [device]})


async def comfy_embeddings(request):
    names = folders.list_models("embeddings")
    return json_response(sorted({name.rsplit(".", 1)[0] for name in names}))


async def comfy_models(request):
    folder = request.match_info.get("folder")
    if folder is None:  # ComfyUI lists its folder names; the legacy "clip" and "unet" are no folders of it
        return json_response(list(MODEL_KINDS))
    if folder not in MODEL_FOLDERS:
        return error_response(404, f"no model folder {folder!r}; there are {', '.join(MODEL_FOLDERS)}")
    return json_response(folders.list_models(COMFY_KINDS.get(folder, folder)))


async def comfy_view_metadata(request):
    """A safetensors model file's `__metadata__` (LoRA browsers read training tags from it); 404, as
    ComfyUI answers, for another folder or file type, a missing file or one without metadata."""
    from graphflow.models.weight_files import CheckpointError, WeightFile

    folder, name = request.match_info["folder"], request.query.get("filename", "")
    if folder not in MODEL_FOLDERS or not name.endswith(".safetensors"):
        return error_response(404, f"no safetensors file {name!r} in model folder {folder!r}")
    try:
        path = folders.find_model(COMFY_KINDS.get(folder, folder), name)
    except (FileNotFoundError, UnsafePathError) as e:
        return error_response(404, str(e))

    def read():
        with WeightFile(path) as weights:
            return weights.metadata

    try:
        metadata = await asyncio.to_thread(read)
    except CheckpointError as e:
        return error_response(404, str(e))
    return json_response(metadata) if metadata else error_response(404, f"{name!r} has no metadata")


async def comfy_extensions(request):
    """ComfyUI's list of the frontend's extension scripts: graphflow serves none."""
    return json_response([])


async def comfy_features(request):
    return json_response(comfyui_messages.feature_flags(server_of(request).config.limits.max_bytes))


async def comfy_interrupt(request):
    """Interrupt the running prompt (ComfyUI's optional {"prompt_id"} names which); as in ComfyUI,
    a body that is no JSON interrupts whatever runs."""
    server = server_of(request)
    try:
        body = await json_body(request, optional=True)
    except RequestError:
        body = {}
    server.interrupt(body.get("prompt_id") or body.get("run_id") if isinstance(body, dict) else None)
    return web.Response(status=200)


# (method, path, handler, what it does): registered by the app, listed in docs/comfyui.md.
ROUTES = (
    ("POST", "/prompt", comfy_prompt, "queue an API-format graph; valid outputs run, invalid ones come back in `node_errors` (a class graphflow lacks refuses it)"),
    ("GET", "/prompt", comfy_prompt_info, "`exec_info.queue_remaining`"),
    ("GET", "/queue", comfy_queue, "`queue_running` and `queue_pending`"),
    ("POST", "/queue", comfy_queue_change, "`clear`, or `delete` a list of pending prompts"),
    ("GET", "/history", comfy_history_list, "finished prompts, oldest first (`max_items`, `offset`)"),
    ("POST", "/history", comfy_history_change, "`clear`, or `delete` a list"),
    ("GET", "/history/{run_id}", comfy_history, "one prompt's outputs and status"),
    ("GET", "/object_info", comfy_object_info, "the node schema under ComfyUI's class and input names"),
    ("GET", "/object_info/{class_type}", comfy_object_info, "one class's schema"),
    ("GET", "/system_stats", comfy_system_stats, "system and device memory"),
    ("GET", "/embeddings", comfy_embeddings, "textual-inversion embedding names"),
    ("GET", "/extensions", comfy_extensions, "the frontend's extension scripts (none)"),
    ("GET", "/features", comfy_features, "`supports_preview_metadata` (true), `max_upload_size`"),
    ("GET", "/models", comfy_models, "model folder names"),
    ("GET", "/models/{folder}", comfy_models, "a model folder's files"),
    ("GET", "/view_metadata/{folder}", comfy_view_metadata, "a safetensors model's `__metadata__` (`filename`)"),
    ("GET", "/view", file_routes.view, "a file; `preview` re-encodes (webp/jpeg;quality), `channel` rgb or a"),
    ("POST", "/upload/image", file_routes.upload, "multipart `image`, `subfolder`, `type`, `overwrite`"),
    ("POST", "/upload/mask", partial(file_routes.upload, mask=True), "a mask onto an uploaded image (`original_ref`)"),
    ("POST", "/interrupt", comfy_interrupt, "interrupt the running prompt (optionally `prompt_id`)"),
    ("POST", "/free", system_routes.free, "`unload_models`, `free_memory`"),
)
