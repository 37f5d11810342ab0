"""Validation: every problem of a workflow in one report, or a plan ready to execute.

Only the nodes that would run are checked: the output nodes (or the requested ones) and
their ancestors, as in ComfyUI, so a half-wired node off to the side doesn't block a run.
"""

import logging
import math
from dataclasses import dataclass, field

from pydantic import ValidationError

from graphflow.comfy_format import prompt_left_out
from graphflow.node_modes import apply_modes
from graphflow import resource_limits
from graphflow.node import Node, widget_model_linking
from graphflow.resource_limits import RunLimits
from graphflow.registry import Registry
from graphflow.workflow import Problem, Workflow, is_link, literal  # Problem: re-exported

log = logging.getLogger("graphflow.validation")

# What each widget kind accepts from a link.
WIDGET_LINK_TYPES = {
    "INT": {"INT"},
    "FLOAT": {"FLOAT", "INT"},
    "STRING": {"STRING"},
    "BOOLEAN": {"BOOLEAN"},
    "CHOICE": {"STRING", "INT", "FLOAT"},
}
ANY = "*"
# socket types a literal value may be given for, each with the conversion ComfyUI's backend
# validation applies to a value of that type (execution.py validate_inputs: int(), float(), str()).
# ComfyUI passes a BOOLEAN value on unconverted; here only true / false (or 0 / 1) is taken, as
# bool("false") would be true
SOCKET_LITERALS = {"STRING": str, "INT": int, "FLOAT": float, "BOOLEAN": bool}
SOCKET_RANGES = {"INT": " within int64", "FLOAT": " that is finite", "BOOLEAN": " (true or false, or 0 or 1)"}
INT64_MAX = 2**63 - 1  # a socket has no widget bounds: its literal is held to what a linked output could give


def _socket_literal(kind: str, value):
    """A literal for a STRING / INT / FLOAT / BOOLEAN socket, converted; ValueError if it isn't one
    (an INT beyond int64, a FLOAT that is not finite, a BOOLEAN that is not true / false / 0 / 1)."""
    if kind == "BOOLEAN" and (isinstance(value, float) or value not in (True, False)):
        raise ValueError(value)
    converted = SOCKET_LITERALS[kind](value)
    if kind == "INT" and abs(converted) > INT64_MAX or kind == "FLOAT" and not math.isfinite(converted):
        raise ValueError(converted)
    return converted


class WorkflowInvalid(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


@dataclass
class PlannedNode:
    id: str
    cls: type[Node]
    widgets: dict  # validated literal widget values, defaults filled in
    links: dict[str, tuple[str, int]]  # input name -> (source node id, output index)
    input_sizes: dict = field(default_factory=dict)  # latent/image/mask input -> its Size as validation estimated it


@dataclass
class Plan:
    order: list[str]  # topological
    nodes: dict[str, PlannedNode]
    targets: list[str]
    workflow: Workflow = field(repr=False, default=None)


def plan_workflow(workflow: Workflow, registry: Registry, outputs: list[str] | None = None,
                  limits: RunLimits | None = None) -> tuple[Plan | None, list[Problem]]:
    """The plan, or every problem; `limits` (default: what fits on this machine) bounds the sizes,
    steps and memory the run may take (graphflow.resource_limits)."""
    problems: list[Problem] = []
    workflow = apply_modes(workflow, registry)  # muted and bypassed nodes don't run
    entries = workflow.nodes

    if outputs:
        targets = []
        for node_id in outputs:
            if node_id in entries:
                targets.append(node_id)
            else:
                problems.append(Problem(node_id, None, None, "requested output node does not exist"))
    else:
        targets = [i for i, e in entries.items() if (cls := registry.get(e.type)) is not None and cls.output_node]
        if not targets:
            known = [i for i, e in entries.items() if e.type not in registry]
            if not known:
                problems.append(Problem(None, None, None,
                                        "the workflow has no output node (such as SaveImage or PreviewImage): nothing would run"))

    # Nodes that would run: targets and their ancestors, plus (when no outputs are named)
    # unknown-type nodes, so they're reported.
    unknown = [] if outputs else [i for i, e in entries.items() if e.type not in registry]
    needed, stack = set(), list(targets) + unknown
    while stack:
        node_id = stack.pop()
        if node_id in needed:
            continue
        needed.add(node_id)
        for value in entries[node_id].inputs.values():
            if is_link(value) and value[0] in entries:
                stack.append(value[0])

    planned: dict[str, PlannedNode] = {}
    graph = LinkGraph()
    unknown_seen = 0
    for node_id in sorted(needed, key=_natural_key):
        node = _check_node(node_id, workflow, registry, problems, suggest=unknown_seen < SUGGESTED_TYPES)
        unknown_seen += entries[node_id].type not in registry
        graph.add_node(node_id)
        if node is not None:
            planned[node_id] = node
            for src, _ in node.links.values():
                graph.add_edge(src, node_id)

    order = graph.topological_order()
    if order is None:
        cycle = graph.find_cycle()
        path = [edge[0] for edge in cycle] + [cycle[0][0]]
        first = path[0]
        problems.append(Problem(first, entries[first].type, None,
                                "links form a cycle: " + " -> ".join(path) + "; a workflow must be acyclic"))

    if problems:
        return None, problems
    plan = Plan(order, planned, targets, workflow)
    problems = resource_limits.check(plan, limits)
    if problems:
        return None, problems
    return plan, []


class LinkGraph:
    """The nodes a run needs and their links, ordered as networkx.DiGraph orders them (each node
    where it first appears, each node's successors likewise), so that the run order is the one
    networkx.topological_sort gave: networkx's import was ~0.1 s of every `graphflow validate`, and
    it is now imported only to name a cycle."""

    def __init__(self):
        self.successors: dict[str, dict[str, None]] = {}
        self.predecessors: dict[str, set[str]] = {}

    def add_node(self, node: str) -> None:
        if node not in self.successors:
            self.successors[node] = {}
            self.predecessors[node] = set()

    def add_edge(self, source: str, target: str) -> None:
        self.add_node(source)
        self.add_node(target)
        self.successors[source][target] = None
        self.predecessors[target].add(source)

    def topological_order(self) -> list[str] | None:
        """networkx.topological_sort's order (Kahn's, a generation of nodes at a time); None where the
        links form a cycle."""
        waiting = {node: len(sources) for node, sources in self.predecessors.items() if sources}
        ready = [node for node, sources in self.predecessors.items() if not sources]
        order = []
        while ready:
            generation, ready = ready, []
            for node in generation:
                for target in self.successors[node]:
                    waiting[target] -= 1
                    if waiting[target] == 0:
                        ready.append(target)
                        del waiting[target]
            order += generation
        return None if waiting else order

    def find_cycle(self) -> list[tuple[str, str]]:
        """networkx.find_cycle on the same graph: the cycle's links, as the problem has named it."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.successors)
        graph.add_edges_from((source, target) for source, targets in self.successors.items() for target in targets)
        return nx.find_cycle(graph)


def output_nodes(workflow: Workflow, registry: Registry) -> list[str]:
    """The nodes a run would aim at: output nodes, and unknown-type nodes that nothing reads from
    (a custom output node this registry lacks)."""
    read = {value[0] for e in workflow.nodes.values() for value in e.inputs.values() if is_link(value)}
    return [i for i, e in workflow.nodes.items()
            if (cls := registry.get(e.type)) is not None and cls.output_node or cls is None and i not in read]


def validate(workflow: Workflow, registry: Registry, outputs: list[str] | None = None,
             limits: RunLimits | None = None) -> list[Problem]:
    return plan_workflow(workflow, registry, outputs, limits)[1]


def _natural_key(node_id: str):
    return (0, int(node_id), "") if node_id.isascii() and node_id.isdigit() else (1, 0, node_id)


SUGGESTED_TYPES = 8  # unknown types of one workflow given a "did you mean" (a hostile graph has thousands)


def unknown_type_problem(node_id: str, node_type: str, registry: Registry, suggest: bool = True) -> Problem:
    """A node of a type the registry lacks: which pack it comes from, or (`suggest`) the names it
    is close to."""
    from graphflow.comfy_format import unknown_type_hint

    why = unknown_type_hint(node_type)
    if why:
        return Problem(node_id, node_type, None, f"unknown node type: {why}")
    close = registry.close_types(node_type) if suggest else []
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return Problem(node_id, node_type, None, f"unknown node type '{node_type}'{hint}")


def _check_node(node_id, workflow: Workflow, registry: Registry, problems: list[Problem],
                suggest: bool = True) -> PlannedNode | None:
    entry = workflow.nodes[node_id]
    cls = registry.get(entry.type)
    if cls is None:
        problems.append(unknown_type_problem(node_id, entry.type, registry, suggest))
        return None

    inputs = entry.inputs
    if entry.version is not None and entry.version != cls.version:
        if entry.version > cls.version:
            problems.append(Problem(node_id, entry.type, None,
                                    f"saved with version {entry.version} of this node, newer than the installed version {cls.version}"))
            return None
        try:
            upgraded = cls.upgrade(dict(inputs), entry.version)
        except Exception as e:  # the node's own upgrade code failed: report it on the node
            problems.append(Problem(node_id, entry.type, None, f"saved with version {entry.version} of this node; "
                                    f"its upgrade to version {cls.version} failed: {type(e).__name__}: {e}"))
            return None
        if upgraded is not None and not isinstance(upgraded, dict):
            upgraded = None
        if upgraded is None:
            problems.append(Problem(node_id, entry.type, None,
                                    f"saved with version {entry.version} of this node; version {cls.version} "
                                    "can't read it: this node needs updating (re-create it)"))
            return None
        inputs = upgraded

    count = len(problems)
    links, literals, socket_literals = {}, {}, {}
    for name, value in inputs.items():
        spec = cls.input_specs.get(name)
        if spec is None:
            known = ", ".join(cls.input_specs) or "none"
            problems.append(Problem(node_id, entry.type, name,
                                    _unknown_input(cls, name) or f"unknown input; this node's inputs are: {known}"))
            continue
        if is_link(value):
            resolved = _check_link(node_id, entry.type, spec, value, workflow, registry, problems)
            if resolved is not None:
                links[name] = resolved
        elif spec.socket is not None and spec.type in SOCKET_LITERALS:
            # a value for a text / number socket (a pack's forceInput input): ComfyUI's backend
            # runs it, converted as its validation converts a widget of that type
            try:
                socket_literals[name] = _socket_literal(spec.type, literal(value))
            except (TypeError, ValueError, OverflowError):
                problems.append(Problem(node_id, entry.type, name, f"expected a link from {_a(spec.type)} "
                                        f"output or {_a(spec.type.lower())} value{SOCKET_RANGES.get(spec.type, '')}, "
                                        f"got {_short(value)}"))
        elif spec.socket is not None:
            problems.append(Problem(node_id, entry.type, name,
                                    f"expected a link from {_a(spec.type)} output, got the value {_short(value)}"))
        else:
            literals[name] = literal(value)

    for name, spec in cls.input_specs.items():
        if spec.required and name not in inputs:
            what = f"a link from {_a(spec.type)} output" if spec.socket else f"{_a(spec.type.lower())} value"
            problems.append(Problem(node_id, entry.type, name, f"missing required input: expected {what}",
                                    "required_input_missing"))
    for name in prompt_left_out(workflow, node_id):
        spec = cls.input_specs.get(name)
        if name not in inputs and spec is not None and not spec.required:  # a required one is reported above
            what = WIDGET_KINDS.get(spec.widget.kind, "one of its choices") if spec.widget is not None else \
                f"a link from {_a(spec.type)} output"
            problems.append(Problem(node_id, entry.type, name, "missing required input: the ComfyUI API prompt this "
                                    "node was read from leaves it out, which ComfyUI refuses (give it a value); "
                                    f"expected {what}", "required_input_missing"))

    widgets = {}
    linked_widgets = frozenset(name for name in links if cls.input_specs[name].widget)
    model = widget_model_linking(cls, linked_widgets) if linked_widgets else cls.widget_model
    try:
        widgets = model.model_validate(literals).model_dump()
    except ValidationError as e:
        for err in e.errors():
            name = str(err["loc"][0]) if err["loc"] else None
            if err["type"] == "missing" and (name in links or name not in literals):
                continue  # a linked widget, or a missing input reported above
            problems.append(Problem(node_id, entry.type, name, _widget_message(cls, name, err),
                                    _widget_error_kind(cls, name, err)))
    if len(problems) == count:
        _check_model_files(node_id, cls, widgets, links, problems)
    if len(problems) > count:
        return None
    for name in links:
        widgets.pop(name, None)
    return PlannedNode(node_id, cls, widgets | socket_literals, links)


def _unknown_input(cls, name: str) -> str | None:
    """The node's own message for an input it does not declare (Node.unknown_input), or None; a
    plugin's hook that fails or answers other than text is passed over (validation never raises)."""
    try:
        message = cls.unknown_input(name)
    except Exception:
        log.warning("%s.unknown_input(%r) failed", cls.node_type, name, exc_info=True)
        return None
    return message if isinstance(message, str) and message else None


def _check_model_files(node_id, cls, widgets: dict, links: dict, problems: list[Problem]) -> None:
    """Model files (or diffusers folders) named by widgets marked `model_folder=...` must be loadable
    (graphflow.models.file_check)."""
    for name, spec in cls.input_specs.items():
        kind = spec.widget.hints.get("model_folder") if spec.widget is not None else None
        if kind is None or name in links or not isinstance(widgets.get(name), str):
            continue
        if widgets[name] in spec.widget.hints.get("not_files", ()):  # LoadVAE's "taesd": two files elsewhere
            continue
        from graphflow.folders import FOLDER_KINDS, folders
        from graphflow.models.file_check import model_file_problem

        try:
            find = folders.find_model_folder if kind in FOLDER_KINDS else folders.find_model
            path = find(kind, widgets[name])
        except (FileNotFoundError, ValueError) as e:
            problems.append(Problem(node_id, cls.node_type, name, str(e), "value_not_in_list"))
            continue
        problem = model_file_problem(kind, path)
        if problem is not None:
            problems.append(Problem(node_id, cls.node_type, name, problem))


def _check_link(node_id, node_type, spec, value, workflow, registry, problems):
    src_id, output = value
    src = workflow.nodes.get(src_id)
    if src is None:
        problems.append(Problem(node_id, node_type, spec.name, f"links to node '{src_id}', which does not exist",
                                "bad_linked_input"))
        return None
    src_cls = registry.get(src.type)
    if src_cls is None:
        return None  # reported on that node
    outs = src_cls.output_specs
    listing = ", ".join(f"{i}: {o.name} ({o.type})" for i, o in enumerate(outs)) or "none"
    if isinstance(output, str):
        index = next((i for i, o in enumerate(outs) if o.name == output), None)
        if index is None:
            problems.append(Problem(node_id, node_type, spec.name,
                                    f"links to output '{output}' of node {src_id} ({src.type}), which has no such output; its outputs are {listing}",
                                    "bad_linked_input"))
            return None
    else:
        index = output
        if not 0 <= index < len(outs):
            problems.append(Problem(node_id, node_type, spec.name,
                                    f"links to output {index} of node {src_id} ({src.type}), which has outputs {listing}",
                                    "bad_linked_input"))
            return None
    out_type = outs[index].type
    accepted = {spec.type} if spec.socket is not None else WIDGET_LINK_TYPES[spec.type]
    if out_type != ANY and spec.type != ANY and out_type not in accepted:
        expected = spec.type if spec.socket is not None else " or ".join(sorted(accepted))
        problems.append(Problem(node_id, node_type, spec.name,
                                f"expected a link of type {expected}, but output {index} of node {src_id} ({src.type}) is {out_type}",
                                "return_type_mismatch"))
        return None
    return (src_id, index)


WIDGET_KINDS = {"INT": "an integer", "FLOAT": "a number", "STRING": "text", "BOOLEAN": "true or false"}


def _widget_message(cls, name, err) -> str:
    spec = cls.input_specs.get(name)
    value = _short(err.get("input"))
    if spec is None or spec.widget is None:
        return err["msg"]
    w = spec.widget
    kind = WIDGET_KINDS.get(w.kind)
    if err["type"] in ("greater_than_equal", "less_than_equal"):
        return f"got {value}; expected {kind} from {w.min} to {w.max}"
    if w.kind == "CHOICE" or err["type"] == "value_error":  # a validator's own message (choices, file names)
        return str(err.get("ctx", {}).get("error", err["msg"]))
    return f"got {value}; expected {kind}" + (f" from {w.min} to {w.max}" if w.min is not None and w.max is not None else "")


def _widget_error_kind(cls, name, err) -> str:
    """ComfyUI's error type for a widget value it would refuse."""
    spec = cls.input_specs.get(name)
    if err["type"] == "greater_than_equal":
        return "value_smaller_than_min"
    if err["type"] == "less_than_equal":
        return "value_bigger_than_max"
    if spec is not None and spec.widget is not None and spec.widget.kind == "CHOICE":
        return "value_not_in_list"
    return "invalid_input_type"


def _a(word: str) -> str:
    return ("an " if word[:1].upper() in "AEIOU" else "a ") + word


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
