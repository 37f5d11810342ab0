"""What a running node can reach: progress reports, the interrupt check, results to show.

The executor sets the context around each node's run(); outside a run these are no-ops,
so a node can be called directly in a test or a script.
"""

import ctypes
import logging
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable


log = logging.getLogger("graphflow")


class Interrupted(Exception):
    """The run was interrupted (by the user or a caller); raised inside the running node."""


class ForcedInterrupt(BaseException):
    """Raised into a node that ignored an interrupt (see force_interrupt). A BaseException, so
    that the node's own `except Exception` can't swallow it."""


class NodeInputError(ValueError):
    """A node's input has a value the node can't work with; names the input for the error report."""

    def __init__(self, input: str, message: str):
        super().__init__(message)
        self.input = input


@dataclass
class NodeContext:
    run_id: str
    node_id: str
    node_type: str
    emit: Callable[[dict], None]
    interrupt: threading.Event
    workflow: dict = field(default_factory=dict)
    registry: Any = None  # the run's node registry (what ComfyUI's formats are written with)
    texts: dict = field(default_factory=dict)  # the run's workflow_texts, shared by its nodes, made once
    pnginfo: dict = field(default_factory=dict)  # ComfyUI's extra_pnginfo the run was queued with (/prompt)
    limits: Any = None  # the run's RunLimits (graphflow.resource_limits), None: no policy limit
    ui: dict = field(default_factory=dict)
    thread: int | None = None  # the thread inside the node's run(), while it is (under guard)
    item: int | None = None  # in a run per list item: this item's index (from 0) ...
    items: int | None = None  # ... and how many there are
    reported: bool = False  # the node reported progress of its own during this item
    stop_after: bool = False  # the node asked the run to end after it (stop_after_this_node)
    guard: threading.Lock = field(default_factory=threading.Lock, repr=False)


def force_interrupt(ctx: NodeContext) -> bool:
    """Raise ForcedInterrupt inside the node's run(), for a node that never checks for
    interrupts; False if it isn't in run() any more. Python delivers it at the node's next
    bytecode: a Python loop stops, a long C call (a sleep, one big tensor op) finishes first."""
    with ctx.guard:
        if ctx.thread is None:
            return False
        return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ctx.thread),
                                                          ctypes.py_object(ForcedInterrupt)) == 1


_current: ContextVar[NodeContext | None] = ContextVar("graphflow_node_context", default=None)


def current() -> NodeContext | None:
    return _current.get()


def check_interrupted() -> None:
    ctx = _current.get()
    if ctx is not None and ctx.interrupt.is_set():
        raise Interrupted(f"interrupted in node {ctx.node_id} ({ctx.node_type})")


def stop_after_this_node() -> None:
    """End the run after the running node, as ComfyUI's interrupt_processing() called from a node
    does (mxToolkit's Stop): the node finishes and its outputs are kept (cached, as any node's),
    then the run ends interrupted there, what ran before it done. A node run once per list item
    stops the run after its last item. A rerun with the node's inputs unchanged finds it in the
    cache, doesn't run it, and so goes on past it (unless the cache dropped it meanwhile, or the
    node is not cacheable). No-op outside a run."""
    ctx = _current.get()
    if ctx is not None:
        ctx.stop_after = True


def progress(value: int, total: int, preview: Any = None) -> None:
    """Report step `value` of `total` (and optionally a preview image); also checks for interrupt."""
    ctx = _current.get()
    if ctx is None:
        return
    check_interrupted()
    event = {"type": "progress", "run_id": ctx.run_id, "node": ctx.node_id, "node_type": ctx.node_type,
             "value": value, "max": total}
    if ctx.items is not None:  # one bar over all the items: item k's steps fill its k-th share
        ctx.reported = True
        event.update(value=ctx.item * total + value, max=ctx.items * total, item=ctx.item, items=ctx.items)
    if preview is not None:
        event["preview"] = preview
    ctx.emit(event)


def show(**results: list) -> None:
    """Attach results to the running node for the user to see, e.g. show(images=[...], text=[...])."""
    ctx = _current.get()
    if ctx is None:
        return
    for key, values in results.items():
        ctx.ui.setdefault(key, []).extend(values)


def warn(message: str) -> None:
    """Tell the user something went less than right without failing the node (a LoRA key that
    matched no layer, say): logged, printed by the CLI, sent to the editor."""
    ctx = _current.get()
    log.warning("%s%s", f"node {ctx.node_id} ({ctx.node_type}): " if ctx is not None else "", message)
    if ctx is not None:
        ctx.emit({"type": "warning", "run_id": ctx.run_id, "node": ctx.node_id, "node_type": ctx.node_type,
                  "message": message})


def send_image(data: bytes, image_type: str = "image/png") -> None:
    """Send a picture file's bytes (a PNG, or a JPEG with image_type "image/jpeg") to the run's
    clients over the websocket instead of saving it (outside a server run it goes nowhere)."""
    ctx = _current.get()
    if ctx is None:
        return
    check_interrupted()
    ctx.emit({"type": "image", "run_id": ctx.run_id, "node": ctx.node_id, "node_type": ctx.node_type, "image": bytes(data),
              "image_type": image_type})


def current_workflow() -> dict:
    """The workflow being run, as JSON (SaveImage embeds it in the PNG)."""
    ctx = _current.get()
    return ctx.workflow if ctx is not None else {}


def current_node_id() -> str | None:
    """The id of the node running, as current_workflow() names it; None outside a run."""
    ctx = _current.get()
    return ctx.node_id if ctx is not None else None


def workflow_texts() -> dict[str, str]:
    """The workflow being run as the JSON texts a saved file embeds: ours under "graphflow", and
    ComfyUI's "prompt" (API format) and "workflow" (its editor's format) under the keys ComfyUI's
    savers write, so that what we save reopens in ComfyUI too. A prompt queued with ComfyUI's
    extra_pnginfo has each of its keys written as the client sent it, as ComfyUI's savers do: its
    "workflow" is the editor's own graph, layout and all, not ours made from the prompt. Empty
    outside a run."""
    ctx = _current.get()
    if ctx is None or not ctx.workflow:
        return {}
    if not ctx.texts:
        import json

        from graphflow.comfy_format import comfy_texts

        texts = comfy_texts(ctx.workflow, ctx.registry, editor=("workflow" not in ctx.pnginfo))
        ctx.texts.update({**texts, **{key: json.dumps(value) for key, value in ctx.pnginfo.items() if key != "graphflow"}})
        ctx.texts["graphflow"] = json.dumps(ctx.workflow)
    return dict(ctx.texts)


def run_limits():
    """The running server's policy limits (a graphflow.resource_limits.RunLimits: max_pixels per
    image, max_batch, max_steps; None where there is none), for a node that allocates by a rule its
    `estimate` can't tell. Sizes its `estimate` does tell are checked by the executor already, with
    linked values too. No limits outside a run."""
    from graphflow.resource_limits import RunLimits

    ctx = _current.get()
    return ctx.limits if ctx is not None and ctx.limits is not None else RunLimits()
