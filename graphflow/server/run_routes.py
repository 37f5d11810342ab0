"""Run routes: submitting runs, the queue, interrupts, history, and the websocket that streams
live progress."""

import asyncio
import json
import uuid

from aiohttp import WSMsgType, web

from graphflow.validation import Problem

from graphflow.server import comfyui_messages
from graphflow.server.events import PREVIEW, Outgoing, message
from graphflow.server.json_api import (error_response, int_query, invalid_response, json_body, json_response,
                                        valid_client_id)
from graphflow.server.server import QUEUE_MESSAGE_LIMIT, server_of
from graphflow.server.store import FINISHED
from graphflow.server.uploads import RequestError


async def post_run(request):
    server = server_of(request)
    try:
        body = await json_body(request)
        if not isinstance(body, dict) or "workflow" not in body:
            raise RequestError(400, "the body must be a JSON object with the workflow under 'workflow'")
        client_id = valid_client_id(body.get("client_id"))
    except RequestError as e:
        return invalid_response([Problem(None, None, None, str(e))])
    workflow, problems = server.check(body["workflow"], body.get("outputs"))
    if problems:
        return invalid_response(problems)
    queued = server.enqueue(workflow, client_id, body.get("outputs"), bool(body.get("front")))
    if workflow.notes:  # non-fatal remarks of a ComfyUI import (inputs ComfyUI itself ignores, ...)
        queued["notes"] = workflow.notes
    return json_response(queued)


async def get_queue(request):
    return json_response(server_of(request).queue_json())


async def cancel_run(request):
    server = server_of(request)
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
    server = server_of(request)
    cancelled = []
    for item in server.store.pending():
        if server.store.cancel(item["run_id"]):
            cancelled.append(item["run_id"])
            server.hub.send("run_cancelled", {"run_id": item["run_id"], "client_id": item["client_id"]})
    server.queue_changed()
    return json_response({"cancelled": cancelled})


async def interrupt(request):
    server = server_of(request)
    body = await json_body(request, optional=True)
    # ComfyUI's frontend posts its own {"prompt_id"} here (ComfyUI serves /interrupt under /api too)
    run_id = (body.get("run_id") or body.get("prompt_id")) if isinstance(body, dict) else None
    return json_response({"interrupted": server.interrupt(run_id)})


async def get_history(request):
    server = server_of(request)
    offset = int_query(request, "offset", 0, 0, 2**62)
    limit = int_query(request, "limit", 50, 1, 500)
    status = request.query.get("status") or None
    if status is not None and status not in FINISHED:
        raise RequestError(400, f"status must be one of {', '.join(FINISHED)}")
    total, items = server.store.history(offset, limit, status)
    return json_response({"total": total, "offset": offset, "limit": limit, "items": items})


async def get_run(request):
    record = server_of(request).store.get(request.match_info["run_id"])
    if record is None:
        return error_response(404, f"no run {request.match_info['run_id']!r}")
    return json_response(record)


async def delete_run(request):
    server = server_of(request)
    run_id = request.match_info["run_id"]
    if server.store.delete(run_id):
        return json_response({"run_id": run_id, "deleted": True})
    status = server.store.status_of(run_id)
    if status is None:
        return error_response(404, f"no run {run_id!r}")
    return error_response(409, f"run {run_id} is {status}; cancel or interrupt it first")


async def websocket(request, comfyui: bool = False):
    server = server_of(request)
    # ComfyUI's clients say `clientId`, or connect to /api/ws (comfyui: ComfyUI's path alone, where
    # its frontend's first connection brings no id), and get ComfyUI's messages
    # (graphflow.server.comfyui_messages).
    protocol = "comfyui" if (comfyui or "clientId" in request.query
                             or request.query.get("protocol") == "comfyui") else "graphflow"
    client_id = valid_client_id(request.query.get("client_id") or request.query.get("clientId")) or uuid.uuid4().hex
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
    await ws.prepare(request)
    # The snapshot and registration happen in one step, so no message falls between them.
    if protocol == "comfyui":
        remaining = server.store.count_pending() + len(server.running)
        first = [Outgoing(message(*comfyui_messages.status(remaining, client_id)))]
        # As ComfyUI does for a client that reconnects while its prompt runs: the current node.
        first += [Outgoing(message("executing", {"node": s.node, "display_node": s.node, "prompt_id": s.run_id}))
                  for s in server.running.values() if s.client_id == client_id and s.node is not None]
    else:
        frames = [s for s in server.running.values() if s.frame is not None]
        first = [Outgoing(message("status", {"client_id": client_id, "queue": server.queue_json(QUEUE_MESSAGE_LIMIT),
                                             "previews": [s.run_id for s in frames]}))]
        first += [Outgoing(s.frame, PREVIEW) for s in frames]
    # ComfyUI sends no preview frames unless started with a preview method, and its clients count
    # every binary frame as a result image; so its clients get previews only with `previews=1`.
    previews = protocol == "graphflow" or request.query.get("previews") in ("1", "true")
    client = server.hub.connect(ws, client_id, first, request.transport, protocol, previews)
    pump = asyncio.create_task(client.pump())
    first_message = True
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    received = json.loads(msg.data)
                    kind = received.get("type")
                except (json.JSONDecodeError, AttributeError):
                    received, kind = {}, None
                if kind == "ping":
                    client.push(Outgoing(message("pong", {})))
                elif kind == "feature_flags" and protocol == "comfyui" and first_message:
                    # ComfyUI's handshake: only a client's first message states its flags, and is answered
                    # with the server's. One that reads type-4 frames knows a preview from a result.
                    if comfyui_messages.wants_preview_metadata(received.get("data")):
                        client.preview_metadata = client.previews = True
                    flags = comfyui_messages.feature_flags(server.config.limits.max_bytes)
                    client.push(Outgoing(message("feature_flags", flags)))
                first_message = False
    finally:
        server.hub.disconnect(client)
        pump.cancel()
    return ws
