"""The workflow JSON format (version 1), its loading and saving (ComfyUI's formats: comfy_format).

    {"version": 1,
     "nodes": {"<id>": {"type": "KSampler", "inputs": {"seed": 5, "model": ["4", 0]}}},
     "ui": {...}}

An input is a literal, or a link `[source node id, output index or name]`. A literal list is
written `{"__value__": [...]}` so it can't be mistaken for a link. `ui` (positions, groups,
notes) belongs to the editor and is kept verbatim.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

FORMAT_VERSION = 1


class WorkflowFormatError(ValueError):
    """The file is not a workflow this version of graphflow can read."""


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
    from graphflow.comfy_format import is_api_graph

    return is_api_graph(data)


def parse_workflow(data: Any, registry=None) -> Workflow:
    """A Workflow from parsed JSON: our format, or a ComfyUI API-format or UI-format graph
    (those need the registry, for the ComfyUI names; graphflow.comfy_format reads them)."""
    from graphflow import comfy_format

    if comfy_format.is_api_graph(data) or comfy_format.is_ui_graph(data):
        if registry is None:
            from graphflow.registry import default_registry

            registry = default_registry()
        if comfy_format.is_api_graph(data):
            return comfy_format.import_api(data, registry)
        return comfy_format.import_ui(data, registry)
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
    try:
        return Workflow.model_validate(data)
    except ValidationError as e:
        details = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise WorkflowFormatError(f"malformed workflow: {details}") from None


def load_workflow(path: str | Path, registry=None) -> Workflow:
    """A workflow from a file: JSON in any format parse_workflow reads, or a PNG/WebP picture
    whose metadata holds one (ours, ComfyUI's, or A1111/Forge generation parameters)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorkflowFormatError(f"no such workflow file: {path}") from None
    except IsADirectoryError:
        raise WorkflowFormatError(f"{path} is a folder, not a workflow file") from None
    from graphflow.picture_metadata import is_picture, workflow_from_picture

    if is_picture(raw):
        return workflow_from_picture(raw, registry, what=str(path))
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WorkflowFormatError(f"{path} is not valid JSON: {e}") from None
    return parse_workflow(data, registry)


def save_workflow(workflow: Workflow, path: str | Path) -> None:
    Path(path).write_text(json.dumps(workflow.to_json(), indent=2) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class ComfyAlias:
    """How a ComfyUI class maps onto one of our nodes (the node's `comfy` attribute holds one,
    or a tuple of them when several ComfyUI classes map onto the node)."""

    class_types: tuple[str, ...]
    inputs: dict[str, str] = field(default_factory=dict)  # ComfyUI input name -> ours
    values: dict[str, dict] = field(default_factory=dict)  # our input name -> {ComfyUI value: ours}
    ignore: tuple[str, ...] = ()  # ComfyUI inputs with no meaning here
    fixed: dict = field(default_factory=dict)  # our inputs set by the class itself (VAEDecodeTiled: tiled=True)


def comfy_aliases(cls) -> tuple[ComfyAlias, ...]:
    if cls.comfy is None:
        return ()
    return cls.comfy if isinstance(cls.comfy, tuple) else (cls.comfy,)


def import_comfy(graph: dict, registry) -> Workflow:
    """Convert a ComfyUI API-format graph (graphflow.comfy_format.import_api)."""
    from graphflow.comfy_format import import_api

    return import_api(graph, registry)
