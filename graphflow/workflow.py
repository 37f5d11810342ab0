"""The workflow JSON format (version 1) and its loading, saving and ComfyUI import.

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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    return (
        isinstance(data, dict)
        and bool(data)
        and "nodes" not in data
        and all(isinstance(v, dict) and "class_type" in v for v in data.values())
    )


def parse_workflow(data: Any, registry=None) -> Workflow:
    """A Workflow from parsed JSON: our format, or a ComfyUI API-format graph (needs the registry)."""
    if is_comfy_api_graph(data):
        if registry is None:
            from graphflow.registry import default_registry

            registry = default_registry()
        return import_comfy(data, registry)
    if not isinstance(data, dict) or "nodes" not in data:
        raise WorkflowFormatError(
            "not a workflow: expected {\"version\": 1, \"nodes\": {...}} or a ComfyUI API-format graph"
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
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkflowFormatError(f"no such workflow file: {path}") from None
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
    optional: tuple[str, ...] = ()  # listed as optional to ComfyUI clients: its optional inputs, and ours it lacks
    outputs: tuple[int, ...] | None = None  # our output index for each of ComfyUI's outputs (None: the same)


def comfy_aliases(cls) -> tuple[ComfyAlias, ...]:
    if cls.comfy is None:
        return ()
    return cls.comfy if isinstance(cls.comfy, tuple) else (cls.comfy,)


def import_comfy(graph: dict, registry) -> Workflow:
    """Convert a ComfyUI API-format graph, renaming classes, inputs and values by the aliases.

    Classes without an equivalent keep their name, so validation reports them by node."""
    nodes, titles, output_maps = {}, {}, {}
    for node_id, entry in graph.items():
        cls = registry.comfy_node(entry["class_type"])
        alias = next((a for a in comfy_aliases(cls) if entry["class_type"] in a.class_types), None) if cls else None
        if alias is not None and alias.outputs is not None:
            output_maps[str(node_id)] = alias.outputs
    for node_id, entry in graph.items():
        class_type = entry["class_type"]
        cls = registry.comfy_node(class_type)
        alias = next((a for a in comfy_aliases(cls) if class_type in a.class_types), None) if cls else None
        inputs = dict(alias.fixed) if alias is not None else {}
        for name, value in (entry.get("inputs") or {}).items():
            if alias is not None:
                if name in alias.ignore:
                    continue
                name = alias.inputs.get(name, name)
                mapping = alias.values.get(name)
                if mapping is not None and not is_link(value) and value in mapping:
                    value = mapping[value]
            if is_link(value) and str(value[0]) in output_maps and isinstance(value[1], int):
                outputs = output_maps[str(value[0])]
                value = [value[0], outputs[value[1]] if 0 <= value[1] < len(outputs) else value[1]]
            inputs[name] = value
        nodes[str(node_id)] = {"type": cls.node_type if cls is not None else class_type, "inputs": inputs}
        title = (entry.get("_meta") or {}).get("title")
        if title:
            titles[str(node_id)] = title
    ui = {"imported_from": "comfyui-api"}
    if titles:
        ui["titles"] = titles
    return Workflow.model_validate({"version": FORMAT_VERSION, "nodes": nodes, "ui": ui})
