"""The executor: runs a workflow's nodes in topological order, reusing cached outputs.

A node's signature is a Merkle hash of its type, version, literal inputs, external
fingerprint and the signatures of the nodes it links from, so an unchanged subgraph hits
the cache, a changed widget re-runs only that node and its descendants, and two identical
subgraphs in one graph run once.

A node may end the run after itself (graphflow.api.stop_after_this_node): the run is
interrupted there with the node's outputs cached, so a rerun finds it done and goes on.

Data lists (ComfyUI's): a ListOf output is an ItemList; a node that gets one runs once per item
and caches its outputs, lists of the runs' values, as one entry; a node with input_is_list runs
once on whole lists (graphflow.node).
"""

import hashlib
import reprlib
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Callable

from graphflow.cache import OutputCache
from graphflow.context import (ForcedInterrupt, Interrupted, NodeContext, NodeInputError, _current, check_interrupted,
                               force_interrupt)
from graphflow.node import Node
from graphflow.registry import Registry
from graphflow.resource_limits import RunLimits, linked_value_problem
from graphflow.validation import Plan, Problem, plan_workflow
from graphflow.workflow import Workflow


@dataclass
class RunResult:
    run_id: str
    status: str  # success | invalid | error | interrupted
    outputs: dict[str, dict] = field(default_factory=dict)  # node id -> what it showed (images, text)
    problems: list[Problem] = field(default_factory=list)
    error: dict | None = None  # node_id, node_type, input, exception_type, message, traceback
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    values: dict[str, tuple] = field(default_factory=dict, repr=False)  # node outputs of this run

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def to_json(self) -> dict:
        return {
            "run_id": self.run_id, "status": self.status, "outputs": self.outputs,
            "problems": [p.to_dict() for p in self.problems], "error": self.error,
            "executed": self.executed, "cached": self.cached, "timings": self.timings, "elapsed": self.elapsed,
        }


def _no_events(event: dict) -> None:
    pass


class Executor:
    def __init__(self, registry: Registry, cache: OutputCache | None = None, limits: RunLimits | None = None):
        self.registry = registry
        self.cache = cache if cache is not None else OutputCache()
        self.limits = limits  # checked before each run; max_run_seconds stops a run like an interrupt
        self._lock = threading.Lock()
        self._node: NodeContext | None = None  # the node running now

    def run(
        self,
        workflow: Workflow,
        *,
        outputs: list[str] | None = None,
        on_event: Callable[[dict], None] | None = None,
        interrupt: threading.Event | None = None,
        run_id: str | None = None,
        pnginfo: dict | None = None,
    ) -> RunResult:
        """`pnginfo`: ComfyUI's extra_pnginfo (key -> JSON value) for the files the run saves."""
        run_id = run_id or uuid.uuid4().hex
        emit = on_event or _no_events
        interrupt = interrupt or threading.Event()
        result = RunResult(run_id, "success")
        start = time.perf_counter()
        with self._lock:
            plan, problems = plan_workflow(workflow, self.registry, outputs, self.limits)
            if plan is None:
                result.status, result.problems = "invalid", problems
                emit({"type": "run_invalid", "run_id": run_id, "problems": [p.to_dict() for p in problems]})
                return result
            limit = self.limits.max_run_seconds if self.limits is not None else None
            timed_out = []  # the timer's mark that it, not a user, interrupted the run
            timer = None
            if limit is not None:
                timer = threading.Timer(limit, lambda: (timed_out.append(True), interrupt.set()))
                timer.daemon = True
                timer.start()
            try:
                self._execute(plan, result, emit, interrupt, pnginfo if isinstance(pnginfo, dict) else {})
            finally:
                if timer is not None:
                    timer.cancel()
            if result.status == "interrupted" and timed_out:
                result.error["message"] = f"stopped: the run went over its time limit of {limit:g} s " \
                                          f"({result.error['message']})"
                result.error["time_limit"] = limit
        result.elapsed = time.perf_counter() - start
        emit({"type": "run_finished", "run_id": run_id, "status": result.status, "elapsed": result.elapsed,
              "outputs": result.outputs, "error": result.error})
        return result

    def force_interrupt(self) -> bool:
        """Stop the running node even if it never checks for interrupts (for a caller that set
        the interrupt and waited in vain); False if no node is in its run()."""
        ctx = self._node
        return ctx is not None and ctx.interrupt.is_set() and force_interrupt(ctx)

    def signatures(self, plan: Plan) -> dict[str, str]:
        """Each node's cache key (see _keys), for the nodes whose key is known before the run: not
        one whose fingerprint reads a linked widget's value, nor those after it, whose keys the run
        makes (the cluster routes by these keys, so they are the same on every call)."""
        signatures, fingerprints = _keys(plan, uuid.uuid4().hex, self.registry, _workflow_json(plan))
        pending = set()  # also a never-cacheable node and those after it: keys of one call only
        for node_id in plan.order:
            node = plan.nodes[node_id]
            if fingerprints[node_id] is LINKED_FINGERPRINT or not node.cls.cacheable or \
                    any(src in pending for src, _ in node.links.values()):
                pending.add(node_id)
        return {node_id: key for node_id, key in signatures.items() if node_id not in pending}

    def _execute(self, plan: Plan, result: RunResult, emit, interrupt, pnginfo: dict) -> None:
        run_id = result.run_id
        values = result.values
        nonce = uuid.uuid4().hex  # never-cacheable nodes get a fresh signature every run
        workflow_json = _workflow_json(plan)
        try:
            (signatures, fingerprints), failure = _keys(plan, nonce, self.registry, workflow_json, interrupt,
                                                        self.limits), None
        except FingerprintFailed as e:  # a node's fingerprint failed (e.g. its file vanished)
            signatures, fingerprints, failure = {}, {}, e
        # Announced up front, as ComfyUI's single execution_cached message does; a node the cache
        # drops meanwhile still runs, and one that a twin's run fills is still reported as cached
        # (as is one whose key the run makes: after a fingerprint of a linked value).
        cached = [node_id for node_id, signature in signatures.items() if signature in self.cache]
        emit({"type": "run_started", "run_id": run_id, "nodes": plan.order, "cached": cached})
        if failure is not None:
            node_id = failure.node_id
            if isinstance(failure.error, Interrupted):  # stopped while hashing its file
                self._interrupted(result, emit, node_id, plan.nodes[node_id].cls.node_type, "before it started")
            else:
                self._fail(result, emit, node_id, plan.nodes[node_id].cls.node_type, failure.error)
            return
        rekeyed, per_run = set(), set()  # nodes keyed again in the run; those whose key is this run's only
        texts = {}  # workflow_texts(), made by the first node that saves a file
        for node_id in plan.order:
            node = plan.nodes[node_id]
            node_type = node.cls.node_type
            if interrupt.is_set():
                self._interrupted(result, emit, node_id, node_type, "before it started")
                return
            sources = [src for src, _ in node.links.values()]
            if fingerprints[node_id] is LINKED_FINGERPRINT:  # its sources have run: the linked values are known
                try:
                    fingerprints[node_id] = _linked_fingerprint(node_id, plan, values, self.registry, workflow_json,
                                                                interrupt, self.limits)
                except Interrupted:
                    self._interrupted(result, emit, node_id, node_type, "before it started")
                    return
                rekeyed.add(node_id)
            if fingerprints[node_id] is UNFINGERPRINTED or not node.cls.cacheable or \
                    any(src in per_run for src in sources):
                per_run.add(node_id)  # its outputs are not kept: no later run has this key
            if node_id in rekeyed or any(src in rekeyed for src in sources):
                rekeyed.add(node_id)
                signatures[node_id] = _signature(node, signatures, fingerprints[node_id], nonce)
            signature = signatures[node_id]
            entry = self.cache.get(signature)
            if entry is not None:
                values[node_id] = entry.outputs
                result.cached.append(node_id)
                if entry.ui:
                    result.outputs[node_id] = entry.ui
                emit({"type": "node_cached", "run_id": run_id, "node": node_id, "node_type": node_type, "ui": entry.ui,
                      "announced": node_id in cached})
                continue

            emit({"type": "node_started", "run_id": run_id, "node": node_id, "node_type": node_type})
            ctx = NodeContext(run_id, node_id, node_type, emit, interrupt, workflow_json, self.registry, texts,
                              pnginfo=pnginfo, limits=self.limits)
            token = _current.set(ctx)
            self._node = ctx
            began = time.perf_counter()
            try:
                linked = {name: values[src][index] for name, (src, index) in node.links.items()}
                outputs = _run_node(node, ctx, linked)
            except (Interrupted, ForcedInterrupt) as e:
                # a node that stopped the run itself (nobody set the interrupt) says why, where it gives one
                reason = "" if interrupt.is_set() else str(e)
                self._interrupted(result, emit, node_id, node_type,
                                  f"while it ran: {reason}" if reason else "while it ran", reason)
                return
            except (Exception, SystemExit) as e:  # a node calling sys.exit() fails its run, not the process
                self._fail(result, emit, node_id, node_type, e, ctx)
                return
            except BaseException as e:  # KeyboardInterrupt, GeneratorExit... raised by the node's own code
                if isinstance(e, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                    raise  # Ctrl-C in a terminal: abort at once
                self._fail(result, emit, node_id, node_type, e, ctx)
                return
            finally:
                with ctx.guard:
                    ctx.thread = None
                self._node = None
                _current.reset(token)
            elapsed = time.perf_counter() - began
            values[node_id] = outputs
            result.executed.append(node_id)
            result.timings[node_id] = elapsed
            if ctx.ui:
                result.outputs[node_id] = ctx.ui
            if node.cls.cacheable and node_id not in per_run:
                self.cache.put(signature, outputs, ctx.ui)
            emit({"type": "node_finished", "run_id": run_id, "node": node_id, "node_type": node_type,
                  "elapsed": elapsed, "ui": ctx.ui})
            if ctx.stop_after:  # stop_after_this_node(): the run ends here, this node's outputs kept
                self._interrupted(result, emit, node_id, node_type, "after it ran, as the node asks",
                                  "the node asked the run to stop after it")
                return

    def _fail(self, result, emit, node_id, node_type, exc, ctx: NodeContext | None = None) -> None:
        result.status = "error"
        result.error = {
            "node_id": node_id,
            "node_type": node_type,
            "source": self.registry.source(node_type),  # "builtin" or the plugin that defined it
            "input": exc.input if isinstance(exc, NodeInputError) else None,
            "exception_type": type(exc).__name__,
            # module-qualified as ComfyUI reports it ("torch.OutOfMemoryError"; builtins bare)
            "exception_class": _qualified_name(type(exc)),
            "message": exception_message(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        }
        if ctx is not None and ctx.item is not None:  # it failed in its run for one list item
            result.error.update(item=ctx.item, items=ctx.items)
            result.error["message"] = f"on list item {ctx.item} (of {ctx.items}, counting from 0): " \
                                      f"{result.error['message']}"
        if _out_of_memory(exc):
            from graphflow import memory  # torch is loaded already: it raised

            memory.manager().offload_all()  # the next run starts from an empty device
            result.error["out_of_memory"] = True
            result.error["suggestion"] = (f"node {node_id} ({node_type}) ran out of memory; the loaded models (but "
                                          "any another run is using) were moved to CPU RAM. Run again with --vram low (or --vram none, or "
                                          "--reserve-vram GB), or a smaller image or batch.")
        emit({"type": "node_failed", "run_id": result.run_id, "node": node_id, "node_type": node_type, "error": result.error,
              "executed": list(result.executed)})

    def _interrupted(self, result, emit, node_id, node_type, when, reason: str = "") -> None:
        """`reason`: why the node itself stopped the run (kept apart as error["reason"]); none for a
        user's interrupt or the time limit."""
        result.status = "interrupted"
        result.error = {"node_id": node_id, "node_type": node_type, "source": self.registry.source(node_type), "input": None,
                        "exception_type": "Interrupted", "message": f"interrupted {when}", "traceback": ""}
        if reason:
            result.error["reason"] = reason
        emit({"type": "run_interrupted", "run_id": result.run_id, "node": node_id, "node_type": node_type,
              "executed": list(result.executed)})


def _qualified_name(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _out_of_memory(exc: BaseException) -> bool:
    # By name: this module must not import torch (light commands); torch.OutOfMemoryError is the CUDA one.
    return isinstance(exc, MemoryError) or any(c.__name__ == "OutOfMemoryError" for c in type(exc).__mro__)


def exception_message(exc: BaseException) -> str:
    """str(exc), else its type's name (MemoryError() says nothing), even for an exception whose
    __str__ fails (plugin code can raise anything)."""
    try:
        return str(exc) or type(exc).__name__
    except Exception:
        return f"({type(exc).__name__} whose message can't be read)"


class ItemList(list):
    """A list that flows item by item (ComfyUI's data lists): a ListOf output, or an output of a
    node run once per item. A plain Python list is one value (CONDITIONING is one)."""


def _run_node(node, ctx: NodeContext, linked: dict) -> tuple:
    """Run the node on its linked values: once, once per list item, or once on whole lists."""
    cls = node.cls
    lengths = {name: len(v) for name, v in linked.items() if isinstance(v, ItemList)}
    if cls.input_is_list:
        inputs = {name: [value] for name, value in node.widgets.items()}
        inputs |= {name: list(v) if isinstance(v, ItemList) else [v] for name, v in linked.items()}
        return _list_outputs(cls, [_call(node, ctx, inputs)], mapped=False)
    if not lengths:
        return _list_outputs(cls, [_call(node, ctx, node.widgets | linked)], mapped=False)
    for name, length in lengths.items():
        if length == 0:
            raise NodeInputError(name, "got an empty list: there is no item to run the node on")
    count = max(lengths.values())
    results = []
    for k in range(count):
        check_interrupted()
        ctx.item, ctx.items, ctx.reported = k, count, False
        # Shorter lists repeat their last item (ComfyUI's rule).
        item = {name: v[min(k, len(v) - 1)] if isinstance(v, ItemList) else v for name, v in linked.items()}
        results.append(_call(node, ctx, node.widgets | item))
        if not ctx.reported:
            ctx.emit({"type": "progress", "run_id": ctx.run_id, "node": ctx.node_id, "node_type": ctx.node_type,
                      "value": k + 1, "max": count, "item": k, "items": count})
    ctx.item = ctx.items = None
    return _list_outputs(cls, results, mapped=True)


def _call(node, ctx: NodeContext, inputs: dict) -> tuple:
    instance = node.cls.__new__(node.cls)
    instance.__dict__.update(inputs)
    if any(node.cls.input_specs[name].widget for name in node.links):
        _check_linked_widgets(node, instance)
        problem = None if node.cls.input_is_list else linked_value_problem(node, inputs, ctx.limits)
        if problem is not None:
            raise NodeInputError(problem.input, f"linked value: {problem.message}")
    ctx.thread = threading.get_ident()
    try:
        returned = instance.run()
    finally:
        with ctx.guard:
            ctx.thread = None
    # A ForcedInterrupt sent as run() returned arrives by this call at the latest.
    return _as_tuple(node.cls, returned)


def _list_outputs(cls, results: list[tuple], mapped: bool) -> tuple:
    """Each output from the runs' returns: a ListOf output's lists joined into one, any other
    output an ItemList of one value per run when the node ran per item, else the value itself."""
    outputs = []
    for i, spec in enumerate(cls.output_specs):
        if spec.is_list:
            joined = ItemList()
            for returned in results:
                if not isinstance(returned[i], (list, tuple)):
                    raise TypeError(f"output {spec.name!r} is declared ListOf({spec.type}); run() must return "
                                    f"a list for it, got {type(returned[i]).__name__}")
                joined.extend(returned[i])
            outputs.append(joined)
        elif mapped:
            outputs.append(ItemList(returned[i] for returned in results))
        else:
            outputs.append(results[0][i])
    return tuple(outputs)


def _as_tuple(cls, returned) -> tuple:
    expected = len(cls.output_specs)
    if expected == 1:
        return (returned,)
    if expected == 0:
        return ()
    if not isinstance(returned, tuple) or len(returned) != expected:
        names = ", ".join(o.name for o in cls.output_specs)
        raise TypeError(f"run() must return a tuple of {expected} values ({names}), got {type(returned).__name__}")
    return returned


def _check_linked_widgets(node, instance) -> None:
    from pydantic import ValidationError

    widgets = {name: instance.__dict__[name] for name, spec in node.cls.input_specs.items() if spec.widget}
    # A node taking lists gets each widget as a list: check every item.
    rows = [widgets]
    if node.cls.input_is_list:
        count = max(map(len, widgets.values())) if all(widgets.values()) else 0  # an empty list: the node's to judge
        rows = [{name: v[min(k, len(v) - 1)] for name, v in widgets.items()} for k in range(count)]
    try:
        for row in rows:
            node.cls.linked_widget_model.model_validate(row, context={"linked": True})
    except ValidationError as e:
        err = e.errors()[0]
        # reprlib: a linked list of a million numbers would otherwise be quoted whole
        raise NodeInputError(str(err["loc"][0]), f"linked value {reprlib.repr(err.get('input'))}: {err['msg']}") from None


LINKED_FINGERPRINT = object()  # a fingerprint that needs a linked widget's value, made when the run has it
UNFINGERPRINTED = object()  # a fingerprint that failed on a linked value: the node runs, uncached


class FingerprintFailed(Exception):
    def __init__(self, node_id: str, error: BaseException):
        super().__init__(str(error))
        self.node_id, self.error = node_id, error


def _workflow_json(plan: Plan) -> dict:
    return plan.workflow.to_json() if plan.workflow is not None else {}


def _keys(plan: Plan, nonce: str, registry, workflow_json: dict, interrupt=None,
          limits=None) -> tuple[dict[str, str], dict]:
    """Each node's cache key and fingerprint: its type, version, widgets, fingerprint and its
    sources' keys. A node whose fingerprint reads a linked widget (a file name from a text node)
    has LINKED_FINGERPRINT and a key of this run only, as the value is not known before its source
    runs; the run makes both again then. FingerprintFailed names the node whose fingerprint failed."""
    signatures, fingerprints = {}, {}
    for node_id in plan.order:
        node = plan.nodes[node_id]
        if _fingerprint_reads_links(node):
            fingerprints[node_id] = LINKED_FINGERPRINT
        else:
            try:
                fingerprints[node_id] = _fingerprint(node_id, plan, node.widgets, registry, workflow_json,
                                                     interrupt, limits)
            except (Exception, SystemExit) as e:
                raise FingerprintFailed(node_id, e) from e
        signatures[node_id] = _signature(node, signatures, fingerprints[node_id], nonce)
    return signatures, fingerprints


def _signature(node, signatures: dict, fingerprint, nonce: str) -> str:
    cls = node.cls
    marker = nonce if fingerprint is LINKED_FINGERPRINT or fingerprint is UNFINGERPRINTED else repr(fingerprint)
    # Widget values are validated JSON literals in declaration order, so repr is canonical.
    text = f"{cls.node_type}\0{cls.version}\0{node.widgets!r}\0{marker}"
    for name, (src, index) in sorted(node.links.items()):
        text += f"\0{name}={signatures[src]}:{index}"
    if not cls.cacheable:
        text += nonce
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _has_fingerprint(cls) -> bool:
    """Whether the class has a fingerprint of its own (a classmethod, or a plugin's staticmethod)."""
    return getattr(cls.fingerprint, "__func__", cls.fingerprint) is not Node.fingerprint.__func__


def _fingerprint_reads_links(node) -> bool:
    return _has_fingerprint(node.cls) and any(node.cls.input_specs[name].widget for name in node.links)


def _fingerprint(node_id: str, plan: Plan, widgets: dict, registry, workflow_json: dict, interrupt=None,
                 limits=None):
    """The node's fingerprint, made where current_workflow() / current_node_id() / run_limits()
    answer as in its run (CLIP Text Encode++'s depends on the step count of the sampler it feeds)
    and the run's interrupt stops a long one (a video's hash)."""
    cls = plan.nodes[node_id].cls
    if not _has_fingerprint(cls):
        return None
    token = _current.set(NodeContext("", node_id, cls.node_type, lambda event: None, interrupt or threading.Event(),
                                     workflow_json, registry, limits=limits))
    try:
        return cls.fingerprint(**widgets)
    finally:
        _current.reset(token)


def _linked_fingerprint(node_id: str, plan: Plan, values: dict, registry, workflow_json: dict, interrupt=None,
                        limits=None):
    """The fingerprint with the linked widgets' values (each item's, for a list), or UNFINGERPRINTED
    where it fails on them (a value that is no file name): the node then runs, uncached, and its
    run() judges the value, naming the input."""
    node = plan.nodes[node_id]
    linked = {name: values[src][index] for name, (src, index) in node.links.items()
              if node.cls.input_specs[name].widget}
    count = max((len(v) for v in linked.values() if isinstance(v, ItemList)), default=0)
    rows = [{name: v[min(k, len(v) - 1)] if isinstance(v, ItemList) else v for name, v in linked.items()}
            for k in range(count)] if count else [linked]
    made = []
    try:
        for row in rows:
            if interrupt is not None and interrupt.is_set():  # a list of many names: one file each
                raise Interrupted(f"interrupted in node {node_id} ({node.cls.node_type}) before it started")
            made.append(_fingerprint(node_id, plan, node.widgets | row, registry, workflow_json, interrupt, limits))
    except Interrupted:
        raise
    except (Exception, SystemExit):
        return UNFINGERPRINTED
    return tuple(made)
