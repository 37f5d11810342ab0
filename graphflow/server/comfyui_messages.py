"""Our run events as ComfyUI's websocket messages, for clients written against ComfyUI.

A client that connects with `/ws?clientId=…` (ComfyUI's spelling; ours is `client_id`) gets
ComfyUI's messages instead of ours, and, as in ComfyUI, only for the prompts it submitted with
that client id (prompts submitted without one go to every such client); `status` goes to all.
Binary preview frames (ComfyUI's framing) only with `&previews=1`: ComfyUI sends none by
default, and its client libraries take every binary frame for a result image. The order
follows ComfyUI's: execution_start, one execution_cached naming every node the cache
answers (an empty list when none), then per node executing /
progress / executed, and at the end execution_success (or execution_error /
execution_interrupted) followed by `executing` with `node: null`, which ComfyUI's example
clients wait for.
"""

import struct
import time

MESSAGE_TYPES = ("status", "execution_start", "execution_cached", "executing", "progress", "executed",
                 "execution_success", "execution_error", "execution_interrupted")
PREVIEW_IMAGE = 1  # ComfyUI's binary event type for an image
JPEG, PNG = 1, 2  # ComfyUI's image format codes


def feature_flags(max_upload_size: int) -> dict:
    """ComfyUI's server feature flags (GET /features, and the answer to a client's own
    `feature_flags` message). Our preview frames are ComfyUI's plain ones, without metadata."""
    return {"supports_preview_metadata": False, "max_upload_size": max_upload_size}


def concerns(client_id: str | None, data: dict) -> bool:
    """Whether a ComfyUI client `client_id` is told about an event of a run with data['client_id']."""
    owner = data.get("client_id")
    return owner is None or owner == client_id


def _now() -> int:
    return int(time.time() * 1000)


def _queue_remaining(queue: dict) -> int:
    return int(queue.get("pending_total", len(queue.get("pending", [])))) + len(queue.get("running", []))


def status(queue_remaining: int, sid: str | None = None) -> tuple[str, dict]:
    data = {"status": {"exec_info": {"queue_remaining": queue_remaining}}}
    if sid is not None:
        data["sid"] = sid
    return "status", data


def execution_error(prompt_id: str, error: dict, executed: list, timestamp: int) -> dict:
    """ComfyUI's execution_error data from our error record (`traceback` a list of lines;
    `current_outputs` a list of node ids: we keep no per-input snapshot, so it and
    `current_inputs` are empty)."""
    return {"prompt_id": prompt_id, "node_id": error.get("node_id"), "node_type": error.get("node_type"),
            "executed": list(executed), "exception_message": error.get("message", ""),
            "exception_type": error.get("exception_class") or error.get("exception_type", ""),
            "traceback": (error.get("traceback") or "").splitlines(keepends=True),
            "current_inputs": {}, "current_outputs": [], "timestamp": timestamp}


def execution_interrupted(prompt_id: str, node: str | None, node_type: str | None, executed: list,
                          timestamp: int) -> dict:
    return {"prompt_id": prompt_id, "node_id": node, "node_type": node_type, "executed": list(executed),
            "timestamp": timestamp}


def history_status(record: dict) -> dict:
    """ComfyUI's history `status` of a finished run: status_str, completed, and the run's
    messages as [event, data] pairs (execution_start, execution_cached, then execution_success,
    execution_error or execution_interrupted), which clients read the run's times from."""
    prompt_id = record["run_id"]
    success = record["status"] == "success"
    started = int((record.get("started_at") or record.get("finished_at") or 0) * 1000)
    finished = int((record.get("finished_at") or 0) * 1000)
    messages = []
    if record.get("started_at") is not None:
        messages += [["execution_start", {"prompt_id": prompt_id, "timestamp": started}],
                     ["execution_cached", {"nodes": list(record.get("cached") or []), "prompt_id": prompt_id,
                                           "timestamp": started}]]
    error = record.get("error") or {}
    if success:
        messages.append(["execution_success", {"prompt_id": prompt_id, "timestamp": finished}])
    elif record["status"] == "interrupted":
        messages.append(["execution_interrupted", execution_interrupted(
            prompt_id, error.get("node_id"), error.get("node_type"), record.get("executed") or [], finished)])
    elif error:
        messages.append(["execution_error", execution_error(prompt_id, error, record.get("executed") or [], finished)])
    return {"status_str": "success" if success else "error", "completed": success, "messages": messages}


def translate(kind: str, data: dict) -> list[tuple[str, dict]]:
    """ComfyUI's (type, data) messages for one of our events (none for events it has no word for)."""
    prompt_id = data.get("run_id")
    node = data.get("node")
    if kind == "queue":
        return [status(_queue_remaining(data))]
    if kind == "run_started":
        now = _now()
        return [("execution_start", {"prompt_id": prompt_id, "timestamp": now}),
                ("execution_cached", {"nodes": list(data.get("cached") or []), "prompt_id": prompt_id,
                                      "timestamp": now})]
    if kind == "node_cached":  # already named in execution_cached; ComfyUI re-sends only what it shows
        if not data.get("ui"):
            return []
        return [("executed", {"node": node, "display_node": node, "output": data["ui"], "prompt_id": prompt_id})]
    if kind == "node_started":
        return [("executing", {"node": node, "display_node": node, "prompt_id": prompt_id})]
    if kind == "progress":
        return [("progress", {"value": data["value"], "max": data["max"], "prompt_id": prompt_id, "node": node})]
    if kind == "node_finished":
        if not data.get("ui"):
            return []
        return [("executed", {"node": node, "display_node": node, "output": data["ui"], "prompt_id": prompt_id})]
    if kind == "node_failed":
        return [("execution_error", execution_error(prompt_id, data.get("error") or {}, data.get("executed") or [],
                                                    _now()))]
    if kind == "run_interrupted":
        return [("execution_interrupted", execution_interrupted(prompt_id, node, data.get("node_type"),
                                                                data.get("executed") or [], _now()))]
    if kind == "run_finished":
        done = [("executing", {"node": None, "prompt_id": prompt_id})]
        if data.get("status") == "success":
            return [("execution_success", {"prompt_id": prompt_id, "timestamp": _now()})] + done
        return done
    if kind in ("run_invalid", "run_cancelled"):
        return [("executing", {"node": None, "prompt_id": prompt_id})]
    return []


def preview_frame(frame: bytes) -> bytes:
    """Our preview frame (JSON metadata + JPEG) in ComfyUI's framing: event type, image type, bytes."""
    from graphflow.server.events import parse_preview_frame  # events imports this module

    meta, image = parse_preview_frame(frame)
    code = PNG if meta.get("image_type") == "image/png" else JPEG
    return struct.pack(">II", PREVIEW_IMAGE, code) + image


def image_frame(png: bytes) -> bytes:
    return struct.pack(">II", PREVIEW_IMAGE, PNG) + png
