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
clients wait for. Each node's start, step and finish (a cached node's too) also sends
`progress_state`: the prompt's nodes that are running or finished, pending ones left out, as
ComfyUI's progress registry reports them.

Feature flags: a client whose first message is `feature_flags` with `supports_preview_metadata`
gets previews as ComfyUI's PREVIEW_IMAGE_WITH_METADATA frames (type 4: metadata naming node and
prompt, then the image), and gets them without `&previews=1` (such a client knows a preview from
a result); any other client keeps the plain type-1 frames.
"""

import json
import struct
import time

MESSAGE_TYPES = ("status", "execution_start", "execution_cached", "executing", "progress", "progress_state",
                 "executed", "execution_success", "execution_error", "execution_interrupted")
PREVIEW_IMAGE = 1  # ComfyUI's binary event types: an image, and an image after a JSON metadata block
PREVIEW_IMAGE_WITH_METADATA = 4
JPEG, PNG = 1, 2  # ComfyUI's image format codes


def feature_flags(max_upload_size: int) -> dict:
    """ComfyUI's server feature flags (GET /features, and the answer to a client's own
    `feature_flags` message)."""
    return {"supports_preview_metadata": True, "max_upload_size": max_upload_size}


def wants_preview_metadata(client_flags) -> bool:
    """Whether a client's `feature_flags` data asks for type-4 previews (ComfyUI: only a literal true)."""
    return isinstance(client_flags, dict) and client_flags.get("supports_preview_metadata") is True


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


class NodeStates:
    """Each running prompt's nodes as ComfyUI's progress registry keeps them: a node is running
    from 0 of 1 when it starts, takes each step's value and max, and is finished (value = max)
    when it ends or the cache answers it; a node that fails or is interrupted stays running."""

    def __init__(self):
        self.runs: dict[str, dict[str, dict]] = {}

    def update(self, kind: str, data: dict) -> bool:
        """Apply one of our events; whether it changed a node (and so calls for a progress_state)."""
        prompt_id = data.get("run_id")
        if kind in ("run_started", "run_finished", "run_invalid", "run_cancelled", "run_requeued"):
            self.runs.pop(prompt_id, None)  # a requeued run starts afresh
            return False
        if kind not in ("node_started", "progress", "node_finished", "node_cached"):
            return False
        nodes, node = self.runs.setdefault(prompt_id, {}), data["node"]
        entry = nodes.get(node)
        if entry is None:  # ComfyUI's node state (graphflow has no subgraph expansion: a node is its own
            # display and real node, parentless); pending nodes are not kept, as ComfyUI sends none
            entry = nodes[node] = {"value": 0.0, "max": 1.0, "state": "running", "node_id": node,
                                   "prompt_id": prompt_id, "display_node_id": node, "parent_node_id": None,
                                   "real_node_id": node}
        if kind == "node_started":
            entry.update(state="running", value=0.0, max=1.0)
        elif kind == "progress":
            entry.update(state="running", value=data["value"], max=data["max"])
        else:
            entry.update(state="finished", value=entry["max"])
        return True

    def progress_state(self, prompt_id: str) -> dict:
        """ComfyUI's progress_state data: every node of the prompt that has started, keyed by id (the
        entries themselves: the message is serialised as it is made)."""
        return {"prompt_id": prompt_id, "nodes": self.runs.get(prompt_id, {})}


def translate(kind: str, data: dict, node_states: dict | None = None) -> list[tuple[str, dict]]:
    """ComfyUI's (type, data) messages for one of our events (none for events it has no word for);
    `node_states` is the event's progress_state data (NodeStates.progress_state), placed where ComfyUI
    sends it: before `executing` and `progress`, after `executed`."""
    state = [("progress_state", node_states)] if node_states is not None else []
    prompt_id = data.get("run_id")
    node = data.get("node")
    if kind == "queue":
        return [status(_queue_remaining(data))]
    if kind == "run_started":
        now = _now()
        return [("execution_start", {"prompt_id": prompt_id, "timestamp": now}),
                ("execution_cached", {"nodes": list(data.get("cached") or []), "prompt_id": prompt_id,
                                      "timestamp": now})]
    if kind in ("node_cached", "node_finished"):
        # a cached node is named in execution_cached already, unless the run found it cached only
        # once its key was made (after a fingerprint of a linked value)
        cached = [("execution_cached", {"nodes": [node], "prompt_id": prompt_id, "timestamp": _now()})] \
            if kind == "node_cached" and data.get("announced") is False else []
        if not data.get("ui"):
            return cached + state
        executed = {"node": node, "display_node": node, "output": data["ui"], "prompt_id": prompt_id}
        return cached + [("executed", executed)] + state
    if kind == "node_started":
        return state + [("executing", {"node": node, "display_node": node, "prompt_id": prompt_id})]
    if kind == "progress":
        return state + [("progress", {"value": data["value"], "max": data["max"], "prompt_id": prompt_id,
                                      "node": node})]
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


def preview_frame(frame: bytes, with_metadata: bool = False) -> bytes:
    """Our preview frame (JSON metadata + JPEG) in ComfyUI's framing: event type 1, image type,
    bytes; or `with_metadata`, type 4, metadata length, ComfyUI's metadata (node and prompt ids,
    image_type), bytes."""
    from graphflow.server.events import parse_preview_frame  # events imports this module

    meta, image = parse_preview_frame(frame)
    if with_metadata:
        node = meta.get("node")
        header = json.dumps({"node_id": node, "prompt_id": meta.get("run_id"), "display_node_id": node,
                             "parent_node_id": None, "real_node_id": node,
                             "image_type": meta.get("image_type", "image/jpeg")}).encode()
        return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(header)) + header + image
    code = PNG if meta.get("image_type") == "image/png" else JPEG
    return struct.pack(">II", PREVIEW_IMAGE, code) + image


def image_frame(data: bytes, image_type: str = "image/png") -> bytes:
    """A picture a node sends as it is, in ComfyUI's framing: event type 1, format code, bytes."""
    return struct.pack(">II", PREVIEW_IMAGE, JPEG if image_type == "image/jpeg" else PNG) + data
