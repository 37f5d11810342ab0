"""What we save carries ComfyUI's own metadata beside ours: PNG chunks / WebP EXIF tags / container
and safetensors keys "prompt" (API format) and "workflow" (its editor's format), so ComfyUI reopens
our files; read back here as ComfyUI reads them (its keys, its tag numbers)."""

import json

from PIL import Image
from safetensors import safe_open

from graphflow.comfy_format import import_ui
from graphflow.executor import Executor
from graphflow.workflow import is_comfy_api_graph, parse_workflow

GRAPH = {"nodes": {
    "1": {"type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0x336699}},
    "2": {"type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "meta/still"}},
    "3": {"type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "meta/anim"}},
    "4": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "5": {"type": "SaveLatent", "inputs": {"samples": ["4", 0], "filename_prefix": "meta/latent"}},
}}


def check_comfy_texts(texts: dict, registry):
    prompt = json.loads(texts["prompt"])
    assert is_comfy_api_graph(prompt)
    assert prompt["2"] == {"inputs": {"images": ["1", 0], "filename_prefix": "meta/still"}, "class_type": "SaveImage"}
    assert prompt["1"]["inputs"]["color"] == 0x336699
    ui = json.loads(texts["workflow"])
    assert sorted(n["type"] for n in ui["nodes"]) == sorted(  # ComfyUI's class names
        ["EmptyImage", "SaveImage", "SaveAnimatedWEBP", "EmptyLatentImage", "SaveLatent"])
    assert prompt["4"]["class_type"] == "EmptyLatentImage"
    reopened = import_ui(ui, registry).nodes  # the editor's graph gives back the same nodes and values
    assert {k: n.type for k, n in reopened.items()} == {k: n["type"] for k, n in GRAPH["nodes"].items()}
    for node_id, node in GRAPH["nodes"].items():  # (and every default written out)
        assert {k: reopened[node_id].inputs[k] for k in node["inputs"]} == node["inputs"]
    assert json.loads(texts["graphflow"])["nodes"]["2"]["type"] == "SaveImage"


def test_saved_files_carry_comfyuis_prompt_and_workflow(builtin_registry, tmp_folders):
    result = Executor(builtin_registry).run(parse_workflow(GRAPH, builtin_registry))
    assert result.ok, result.error
    out = tmp_folders.outputs / "meta"
    png = Image.open(out / result.outputs["2"]["images"][0]["filename"])
    check_comfy_texts(png.info, builtin_registry)

    exif = Image.open(out / result.outputs["3"]["images"][0]["filename"]).getexif()
    tags = {key: text for key, _, text in (exif[t].partition(":") for t in (0x0110, 0x010F, 0x010E))}
    assert [exif[t].partition(":")[0] for t in (0x0110, 0x010F, 0x010E)] == ["prompt", "workflow", "graphflow"]
    check_comfy_texts(tags, builtin_registry)

    with safe_open(str(out / result.outputs["5"]["latents"][0]["filename"]), "pt") as f:
        check_comfy_texts(f.metadata(), builtin_registry)


def test_a_graph_comfyui_cannot_write_is_saved_with_ours_alone(builtin_registry, tmp_folders, monkeypatch):
    import graphflow.comfy_format

    def broken(workflow, registry):
        raise KeyError("a node ComfyUI's format cannot hold")

    monkeypatch.setattr(graphflow.comfy_format, "export_ui", broken)
    result = Executor(builtin_registry).run(parse_workflow(GRAPH, builtin_registry), outputs=["2"])
    assert result.ok, result.error
    png = Image.open(tmp_folders.outputs / "meta" / result.outputs["2"]["images"][0]["filename"])
    assert "prompt" not in png.info and "workflow" not in png.info
    assert json.loads(png.info["graphflow"])["nodes"]["2"]["type"] == "SaveImage"
