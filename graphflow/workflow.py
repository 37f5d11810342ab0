"""The workflow JSON format (version 1), its loading and saving (ComfyUI's formats: comfy_format).

    {"version": 1,
     "nodes": {"<id>": {"type": "KSampler", "inputs": {"seed": 5, "model": ["4", 0]}}},
     "ui": {...}}

An input is a literal, or a link `[source node id, output index or name]`. A literal list is
written `{"__value__": [...]}` so it can't be mistaken for a link. `ui` (positions, groups,
notes) belongs to the editor and is kept verbatim.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

FORMAT_VERSION = 1
# Deeper JSON is refused before anything walks it: real workflows nest about 6 levels (a literal
# list inside an input), and recursive readers and writers (pydantic, json) fail near 1,000.
MAX_JSON_DEPTH = 64


@dataclass
class Problem:
    """One thing wrong with a workflow, located as closely as known (node, input)."""

    node_id: str | None
    node_type: str | None
    input: str | None
    message: str
    kind: str | None = field(default=None, compare=False)  # ComfyUI's error type for it, where one fits

    def __str__(self):
        where = []
        if self.node_id is not None:
            where.append(f"node {self.node_id}" + (f" ({self.node_type})" if self.node_type else ""))
        if self.input is not None:
            where.append(f"input '{self.input}'")
        return (", ".join(where) + ": " if where else "") + self.message

    def to_dict(self) -> dict:
        return {"node_id": self.node_id, "node_type": self.node_type, "input": self.input, "message": self.message}


class WorkflowFormatError(ValueError):
    """The data is not a workflow this version of graphflow can read; `problems` says where."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = problems or [Problem(None, None, None, message)]


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists and objects nest deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return False


class NodeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1)
    inputs: dict[str, Any] = Field(default_factory=dict)
    version: int | None = None  # the node's version when the workflow was saved


class Workflow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = FORMAT_VERSION
    nodes: dict[str, NodeEntry]
    ui: dict[str, Any] = Field(default_factory=dict)
    # Non-fatal notes from importing (inputs ComfyUI itself ignores, muted nodes left out, ...):
    # {node_id, node_type, input, message}; not saved.
    _notes: list = PrivateAttr(default_factory=list)

    @property
    def notes(self) -> list[dict]:
        return self._notes

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)


def is_link(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], (int, str))
        and not isinstance(value[1], bool)
    )


def literal(value: Any) -> Any:
    """A literal input's value, unwrapping `{"__value__": ...}`."""
    if isinstance(value, dict) and set(value) == {"__value__"}:
        return value["__value__"]
    return value


def is_comfy_api_graph(data: Any) -> bool:
    """An object of node entries with `class_type` (entries that lack it are reported on import)."""
    return (
        isinstance(data, dict)
        and "nodes" not in data
        and any(isinstance(v, dict) and "class_type" in v for v in data.values())
    )


def parse_workflow(data: Any, registry=None) -> Workflow:
    """A Workflow from parsed JSON: our format, or a ComfyUI API-format or UI-format graph
    (those need the registry, for the ComfyUI names; graphflow.comfy_format reads them).

    Any other JSON value raises WorkflowFormatError, whose `problems` name the nodes at fault."""
    if json_depth_exceeds(data):
        raise WorkflowFormatError(f"not a workflow: lists and objects nest deeper than {MAX_JSON_DEPTH} levels")
    from graphflow import comfy_format

    if is_comfy_api_graph(data) or comfy_format.is_ui_graph(data):
        if registry is None:
            from graphflow.registry import default_registry

            registry = default_registry()
        if is_comfy_api_graph(data):
            return comfy_format.import_api(data, registry)
        try:
            return comfy_format.import_ui(data, registry)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            if isinstance(e, WorkflowFormatError):
                raise
            raise WorkflowFormatError(f"malformed ComfyUI UI-format graph: {type(e).__name__}: {e}") from None
    if not isinstance(data, dict) or "nodes" not in data:
        raise WorkflowFormatError(
            "not a workflow: expected {\"version\": 1, \"nodes\": {...}}, a ComfyUI API-format graph "
            "or a ComfyUI UI-format graph"
        )
    version = data.get("version", FORMAT_VERSION)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise WorkflowFormatError(
            f"workflow format version {version} is newer than this graphflow reads ({FORMAT_VERSION})"
        )
    return _validated(data)


def _validated(data: dict, type_of: dict | None = None) -> Workflow:
    """The Workflow model of `data`, or WorkflowFormatError with one problem per pydantic error."""
    try:
        return Workflow.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
    problems = []
    for err in errors:
        loc = tuple(err["loc"])
        node_id = str(loc[1]) if len(loc) > 1 and loc[0] == "nodes" else None
        node_type = (type_of or {}).get(node_id)
        if node_type is None and node_id is not None and isinstance(data.get("nodes"), dict):
            entry = data["nodes"].get(node_id)
            node_type = entry.get("type") if isinstance(entry, dict) and isinstance(entry.get("type"), str) else None
        name = str(loc[3]) if len(loc) > 3 and loc[2] == "inputs" else None
        field_name = ".".join(map(str, loc[2:] if node_id is not None else loc)) or "the workflow"
        problems.append(Problem(node_id, node_type or None, name, f"{field_name}: {err['msg']}"))
    details = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in errors)
    raise WorkflowFormatError(f"malformed workflow: {details}", problems)


def load_workflow(path: str | Path, registry=None) -> Workflow:
    """A workflow from a file: JSON in any format parse_workflow reads, or a PNG/WebP picture
    whose metadata holds one (ours, ComfyUI's, or A1111/Forge generation parameters)."""
    from graphflow.picture_metadata import is_picture, workflow_from_picture

    raw = _read_bytes(path)
    if is_picture(raw):
        return workflow_from_picture(raw, registry, what=str(path))
    return parse_workflow(_json_of(raw, path), registry)


def read_json_file(path: str | Path) -> Any:
    """The JSON value in a file; WorkflowFormatError when it can't be read or isn't JSON."""
    return _json_of(_read_bytes(path), path)


def _read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise WorkflowFormatError(f"no such workflow file: {path}") from None
    except IsADirectoryError:
        raise WorkflowFormatError(f"{path} is a folder, not a workflow file") from None
    except OSError as e:
        raise WorkflowFormatError(f"can't read {path}: {e.strerror or e}") from None


def _json_of(raw: bytes, path: str | Path) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WorkflowFormatError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise WorkflowFormatError(f"not a workflow: {path} nests lists and objects too deeply") from None


def save_workflow(workflow: Workflow, path: str | Path) -> None:
    Path(path).write_text(json.dumps(workflow.to_json(), indent=2) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class ComfyAlias:
    """How a ComfyUI class maps onto one of our nodes (the node's `comfy` attribute holds one,
    or a tuple of them when several ComfyUI classes map onto the node)."""

    class_types: tuple[str, ...]
    # ComfyUI input name -> ours; an old ComfyUI name listed beside the current one maps onto the
    # same input of ours and is read only: the one written back is the name equal to ours, if listed
    inputs: dict[str, str] = field(default_factory=dict)
    # old names in `inputs` whose link the pack's function takes over the current name's when an
    # API prompt gives both (Advanced-ControlNet's keyframes: `old if old else current`); else the
    # current name is read
    old_links_first: tuple[str, ...] = ()
    values: dict[str, dict] = field(default_factory=dict)  # our input name -> {ComfyUI value: ours}
    ignore: tuple[str, ...] = ()  # ComfyUI inputs with no meaning here
    fixed: dict = field(default_factory=dict)  # our inputs set by the class itself (VAEDecodeTiled: tiled=True)
    optional: tuple[str, ...] = ()  # listed as optional to ComfyUI clients: its optional inputs, and ours it lacks
    outputs: tuple[int, ...] | None = None  # our output index for each of ComfyUI's outputs (None: the same)
    # our file-name inputs whose ComfyUI names may carry a folder annotation ("x.png [output]"),
    # with the folder our node reads them from: stripped on import, written back
    folders: dict[str, str] = field(default_factory=dict)
    # ComfyUI inputs named prefix + number (rgthree's lora_1, lora_2 ...) gathered, in number order,
    # into one of ours as JSON text: {prefix: our input}
    gather: dict[str, str] = field(default_factory=dict)
    # a UI-format save's widgets_values list (or dict, for a class its editor saves by name) -> the
    # same values as the pack's current editor saves them (an older version's layout read into
    # today's: Efficiency Nodes' 2023 saves, VideoHelperSuite's list-shaped ones); it raises
    # ValueError (its message) for a save it can't read, and the graph is refused naming the node;
    # it may return (values, note) instead, the note (or None) a text the import reports on the node
    # (values of another layout it drops as having no effect)
    widgets: Callable[[list | dict], list | dict | tuple] | None = None
    # the other way, on export: our widgets_values in the schema's order (as written for the class's
    # inputs) -> the list its pack's editor saves for those values, where that editor adds widgets of
    # its own (WAS's Mask Rect Area: a second x, y, w, h, blur_radius and a preview canvas) that the
    # pack reads in place of the schema's; `widgets` reads what it writes back as the same values
    export_widgets: Callable[[list], list] | None = None
    # an API prompt's inputs (ComfyUI's names) -> the same with what the class's Python takes for an
    # optional input left out, where that is not the widget's default (Inspire's samplers: internal_seed
    # the seed); run on every import, so it fills in only what is missing
    api_inputs: Callable[[dict], dict] | None = None
    # our socket inputs the pack marks forceInput (a STRING / INT / FLOAT / BOOLEAN / combo): an
    # editor before ComfyUI frontend 1.16 (April 2025) made each a widget converted to an input and
    # saved a value for it in widgets_values, at its place in the input order; later editors make
    # it a bare socket and save none (and drop those values from an older save when its length is
    # that of the older layout). The UI reader does the same (comfy_format._without_force_input)
    force_input: tuple[str, ...] = ()
    # our socket inputs only an older layout of the pack has (WAS's switches' 2023 boolean_number):
    # a UI export writes one only where it is linked or the save read had it, as the current
    # editor, whose class lacks it, would not show it
    legacy: tuple[str, ...] = ()
    # ComfyUI's names of the class's outputs where ours differ (a pack without RETURN_NAMES, whose
    # outputs ComfyUI names by type: Derfuu's Square root's FLOAT, FLOAT); labels only, as links go
    # by position; empty: the catalogue's names for a core class, else ours
    output_names: tuple[str, ...] = ()
    # the pack whose class this is, where another pack registers a class of the same name (masquerade's
    # and EllangoK's post-processing "Blur"): its Comfy registry id and GitHub "owner/repo", compared
    # case-insensitively with a UI save's properties cnr_id / aux_id, which pick this node (an API
    # prompt: the input names); written back in UI exports. Registry.claimants keeps every node
    # claiming a name, and reports a second claimant naming no pack (no save could choose it)
    pack: tuple[str, ...] = ()

    def written_names(self) -> dict[str, str]:
        """Our input name -> the ComfyUI name it is written back as."""
        names = {}
        for theirs, ours in self.inputs.items():
            if names.get(ours) != ours:  # ComfyUI's current name (the same as ours) stays once seen
                names[ours] = theirs
        return names


def comfy_aliases(cls) -> tuple[ComfyAlias, ...]:
    """The ComfyUI classes a node answers to, as the class itself declares them: a subclass of an
    aliased node (a plugin's variant of IntValue) is a node of its own and inherits none, since
    each ComfyUI class maps onto one node."""
    comfy = cls.__dict__.get("comfy")
    if comfy is None:
        return ()
    return comfy if isinstance(comfy, tuple) else (comfy,)


def import_comfy(graph: dict, registry) -> Workflow:
    """Convert a ComfyUI API-format graph (graphflow.comfy_format.import_api)."""
    from graphflow.comfy_format import import_api

    return import_api(graph, registry)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
