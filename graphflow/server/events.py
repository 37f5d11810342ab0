"""Websocket fan-out: every connected client gets every message, and none can hold up the worker.

Each client has a bounded outbox drained by its own task. Broadcasting only appends to the
outboxes (never awaits), so the event loop, and through it the worker, never waits on a
client. A new queue snapshot replaces one still waiting in an outbox. A full outbox drops the
oldest preview frame first, then the oldest progress message, then the oldest node event
(all superseded by newer messages, and a run's `run_finished` carries its outcome); a client
that still can't keep up is disconnected and can reconnect to get a fresh `status` snapshot.
"""

import asyncio
import io
import json
import logging
import struct
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from graphflow.server import comfyui_messages

log = logging.getLogger("graphflow.server")

PREVIEW_FRAME = 4  # binary frame type: preview image with JSON metadata (see docs/api.md)
PREVIEW_MAX_SIDE = 512

KEEP, PROGRESS, PREVIEW, NODE = 0, 1, 2, 3  # how readily a queued message may be dropped
DROP_ORDER = (PREVIEW, PROGRESS, NODE)


def dumps(value) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def message(kind: str, data: dict) -> str:
    return dumps({"type": kind, "data": data})


def preview_frame(meta: dict, image, max_side: int = PREVIEW_MAX_SIDE) -> bytes:
    """A binary preview frame: type, metadata length, JSON metadata, JPEG bytes."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = _to_pil(image)
    image = image.convert("RGB")
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    meta = dict(meta, image_type="image/jpeg", width=image.width, height=image.height)
    header = dumps(meta).encode()
    return struct.pack(">II", PREVIEW_FRAME, len(header)) + header + buffer.getvalue()


def image_frame(meta: dict, data: bytes, image_type: str = "image/png") -> bytes:
    """A binary frame of a picture a node sent as it is (SaveImageWebsocket, ETN_SendImageWebSocket),
    in the preview framing."""
    header = dumps(dict(meta, image_type=image_type)).encode()
    return struct.pack(">II", PREVIEW_FRAME, len(header)) + header + data


def parse_preview_frame(frame: bytes) -> tuple[dict, bytes]:
    """(metadata, image bytes) of a preview frame; what a Python client does with one."""
    kind, length = struct.unpack_from(">II", frame)
    if kind != PREVIEW_FRAME:
        raise ValueError(f"not a preview frame (type {kind})")
    return json.loads(frame[8:8 + length]), frame[8 + length:]


def _to_pil(value):
    """A preview given as an IMAGE tensor/array ([B,]H,W,C in 0..1) instead of a PIL image."""
    import numpy as np
    from PIL import Image

    array = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value, dtype=np.float32)
    if array.ndim == 4:
        array = array[0]
    if array.ndim != 3:
        raise TypeError(f"preview must be a PIL image or an [H, W, C] image, got shape {array.shape}")
    return Image.fromarray((array[..., :3].clip(0, 1) * 255).round().astype("uint8"))


@dataclass
class Outgoing:
    payload: str | bytes
    rank: int = KEEP
    replaces: str | None = None  # a snapshot: it replaces a queued message with the same key


class Client:
    def __init__(self, ws: web.WebSocketResponse, client_id: str, limit: int, send_timeout: float, transport=None,
                 protocol: str = "graphflow", previews: bool = True):
        self.ws = ws
        self.client_id = client_id
        self.protocol = protocol  # "graphflow", or "comfyui": ComfyUI's messages, for its own prompts only
        self.previews = previews
        self.preview_metadata = False  # a ComfyUI client that asked for type-4 preview frames
        self.limit = limit
        self.send_timeout = send_timeout
        self.transport = transport
        self.outbox: deque[Outgoing] = deque()
        self.wakeup = asyncio.Event()
        self.overflowed = False
        self.dropped = 0

    def push(self, item: Outgoing) -> None:
        if self.overflowed:
            return
        if item.replaces is not None:
            for i, queued in enumerate(self.outbox):
                if queued.replaces == item.replaces:
                    del self.outbox[i]
                    break
        while len(self.outbox) >= self.limit:
            if not any(self._drop(rank) for rank in DROP_ORDER):
                self.overflowed = True  # the pump disconnects it
                break
        else:
            self.outbox.append(item)
        self.wakeup.set()

    def _drop(self, rank: int) -> bool:
        for i, queued in enumerate(self.outbox):
            if queued.rank == rank:
                del self.outbox[i]
                self.dropped += 1
                return True
        return False

    async def pump(self) -> None:
        """Send the outbox in order until the socket closes or the client falls too far behind."""
        try:
            while not self.ws.closed:
                if self.overflowed:
                    log.warning("websocket client %s can't keep up; disconnecting it", self.client_id)
                    self._abort()
                    return
                if not self.outbox:
                    self.wakeup.clear()
                    await self.wakeup.wait()
                    continue
                item = self.outbox.popleft()
                send = self.ws.send_str if isinstance(item.payload, str) else self.ws.send_bytes
                await asyncio.wait_for(send(item.payload), self.send_timeout)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError) as e:
            log.info("websocket client %s dropped: %s", self.client_id, type(e).__name__)
            self._abort()

    def _abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


class Hub:
    def __init__(self, outbox_limit: int = 256, send_timeout: float = 10.0):
        self.clients: set[Client] = set()
        self.outbox_limit = outbox_limit
        self.send_timeout = send_timeout
        self.node_states = comfyui_messages.NodeStates()  # for ComfyUI's progress_state

    def connect(self, ws, client_id: str, first: list[Outgoing], transport=None, protocol: str = "graphflow",
                previews: bool = True) -> Client:
        """Register a client; `first` (the state snapshot) is queued ahead of any later message."""
        client = Client(ws, client_id, self.outbox_limit, self.send_timeout, transport, protocol, previews)
        for item in first:
            client.push(item)
        self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)

    def send(self, kind: str, data: dict, rank: int = KEEP, replaces: str | None = None) -> None:
        changed = self.node_states.update(kind, data)  # kept with no client too: one may connect
        if not self.clients:
            return
        item = comfy_items = None
        for client in list(self.clients):
            if client.protocol == "comfyui":
                if not comfyui_messages.concerns(client.client_id, data):
                    continue
                if comfy_items is None:  # built once, and only when a ComfyUI client is told of the run
                    states = self.node_states.progress_state(data["run_id"]) if changed else None
                    comfy_items = [Outgoing(message(k, d), rank, replaces)
                                   for k, d in comfyui_messages.translate(kind, data, states)]
                for comfy_item in comfy_items:
                    client.push(comfy_item)
            else:
                item = item or Outgoing(message(kind, data), rank, replaces)
                client.push(item)

    def client_ids(self) -> set[str]:
        """The client ids with a websocket open."""
        return {client.client_id for client in self.clients}

    def send_to(self, client_ids, kind: str, data: dict) -> None:
        """A message for these client ids alone (every socket each has open), as ComfyUI's send_json
        with a sid: nobody gets it where none is connected. Encoded once, and only where some id
        has a socket. Never dropped."""
        wanted = set(client_ids)
        item = None
        for client in list(self.clients):
            if client.client_id in wanted:
                item = item or Outgoing(message(kind, data))
                client.push(item)

    def send_frame(self, frame: bytes, client_id: str | None = None) -> None:
        """A preview frame of a run submitted by `client_id`: ours to our clients, ComfyUI's framing
        (type 4 with metadata to those that asked for it, else type 1) to the ComfyUI clients that
        submitted it."""
        item = Outgoing(frame, PREVIEW)
        comfy_items: dict[bool, Outgoing] = {}
        for client in list(self.clients):
            if not client.previews:
                continue
            if client.protocol != "comfyui":
                client.push(item)
            elif comfyui_messages.concerns(client.client_id, {"client_id": client_id}):
                metadata = client.preview_metadata
                if metadata not in comfy_items:
                    comfy_items[metadata] = Outgoing(comfyui_messages.preview_frame(frame, metadata), PREVIEW)
                client.push(comfy_items[metadata])

    def send_image(self, frame: bytes, image: bytes, client_id: str | None, image_type: str = "image/png") -> None:
        """An image a node sends instead of saving it (SaveImageWebsocket, ETN_SendImageWebSocket): to
        the client that submitted the run only, as ComfyUI sends it (to every client where the run
        names none): ComfyUI clients get ComfyUI's PNG or JPEG frame, ours a preview frame; never
        dropped."""
        comfy_item = Outgoing(comfyui_messages.image_frame(image, image_type))
        item = Outgoing(frame)
        for client in list(self.clients):
            if comfyui_messages.concerns(client.client_id, {"client_id": client_id}):
                client.push(item if client.protocol != "comfyui" else comfy_item)

    async def close_all(self) -> None:
        for client in list(self.clients):
            try:
                await asyncio.wait_for(client.ws.close(code=1001, message=b"server shutting down"), 2)
            except (asyncio.TimeoutError, ConnectionError, RuntimeError):
                client._abort()
