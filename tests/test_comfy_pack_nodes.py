"""Popular custom packs' frontend-only nodes in ComfyUI's UI format (KJNodes' SetNode/GetNode,
rgthree's virtual nodes, cg-use-everywhere's broadcasts), read as those packs build the API
prompt, and the display nodes ShowText|pysssss and Display Any (rgthree)."""

import copy
import json
import time

import pytest
import torch

from graphflow.cli import main
from graphflow.comfy_format import export_ui, import_ui
from graphflow.executor import Executor
from graphflow.server.comfyui_messages import translate
from graphflow.validation import validate
from graphflow.workflow import WorkflowFormatError
from tests.test_cli_robustness import probe

TXT2IMG_NODES = [
    (4, "CheckpointLoaderSimple", [], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
     ["graphflow-demo.safetensors"]),
    (6, "CLIPTextEncode", [("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")],
     ["a red circle on a white background"]),
    (7, "CLIPTextEncode", [("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")], [""]),
    (5, "EmptyLatentImage", [], [("LATENT", "LATENT")], [64, 64, 1]),
    (3, "KSampler", [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                     ("latent_image", "LATENT")], [("LATENT", "LATENT")], [42, "fixed", 2, 5, "euler", "normal", 1]),
    (8, "VAEDecode", [("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")], []),
    (9, "SaveImage", [("images", "IMAGE")], [], ["ComfyUI"]),
]
# (from id, from slot, to id, to input name)
TXT2IMG_EDGES = [(4, 0, 3, "model"), (4, 1, 6, "clip"), (4, 1, 7, "clip"), (6, 0, 3, "positive"),
                 (7, 0, 3, "negative"), (5, 0, 3, "latent_image"), (3, 0, 8, "samples"), (4, 2, 8, "vae"),
                 (8, 0, 9, "images")]


def node(node_id, class_type, inputs=(), outputs=(), widgets=(), **extra):
    return {"id": node_id, "type": class_type, "pos": [0, 100 * node_id], "size": [300, 100], "flags": {},
            "order": 0, "mode": 0, "properties": {"Node name for S&R": class_type},
            "inputs": [{"name": n, "type": t, "link": None} for n, t in inputs],
            "outputs": [{"name": n, "type": t, "links": []} for n, t in outputs],
            "widgets_values": list(widgets), **extra}


def ui_graph(nodes, edges):
    """A UI-format graph (as ComfyUI's editor saves it) from nodes and (from, slot, to, input name) edges."""
    nodes = [copy.deepcopy(n) if isinstance(n, dict) else node(*n) for n in nodes]
    by_id = {n["id"]: n for n in nodes}
    links = []
    for link_id, (a, slot, b, name) in enumerate(edges, 1):
        output = by_id[a]["outputs"][slot]
        index = next(i for i, s in enumerate(by_id[b]["inputs"]) if s["name"] == name)
        by_id[b]["inputs"][index]["link"] = link_id
        output["links"].append(link_id)
        links.append([link_id, a, slot, b, index, output["type"]])
    return {"last_node_id": max(by_id), "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {}, "version": 0.4}


def graph_of(workflow):
    return {k: (n.type, n.inputs) for k, n in workflow.nodes.items()}


def without(edges, *drop):
    return [e for e in edges if (e[2], e[3]) not in drop]


def problems_of(data, registry):
    with pytest.raises(WorkflowFormatError) as e:
        import_ui(data, registry)
    return e.value.problems


# --- KJNodes SetNode / GetNode ----------------------------------------------------------------


def set_get_txt2img():
    """txt2img with the model, CLIP and VAE passed through Set/Get pairs: one GetNode feeding two
    encoders, and the VAE's GetNode reaching the decoder through a Reroute."""
    extra = [node(20, "SetNode", [("MODEL", "MODEL")], [("*", "*")], ["model"]),
             node(21, "GetNode", [], [("MODEL", "MODEL")], ["model"]),
             node(22, "SetNode", [("CLIP", "CLIP")], [("*", "*")], ["clip"]),
             node(23, "GetNode", [], [("CLIP", "CLIP")], ["clip"]),
             node(24, "SetNode", [("VAE", "VAE")], [("*", "*")], ["vae"]),
             node(25, "GetNode", [], [("VAE", "VAE")], ["vae"]),
             node(26, "Reroute", [("", "*")], [("", "VAE")])]
    edges = without(TXT2IMG_EDGES, (3, "model"), (6, "clip"), (7, "clip"), (8, "vae"))
    edges += [(4, 0, 20, "MODEL"), (21, 0, 3, "model"), (4, 1, 22, "CLIP"), (23, 0, 6, "clip"), (23, 0, 7, "clip"),
              (4, 2, 24, "VAE"), (25, 0, 26, ""), (26, 0, 8, "vae")]
    return ui_graph(TXT2IMG_NODES + extra, edges)


def test_set_get_pairs_read_as_the_direct_links_and_run(builtin_registry, tmp_folders):
    direct = import_ui(ui_graph(TXT2IMG_NODES, TXT2IMG_EDGES), builtin_registry)
    workflow = import_ui(set_get_txt2img(), builtin_registry)
    assert graph_of(workflow) == graph_of(direct)
    assert workflow.nodes["6"].inputs["clip"] == workflow.nodes["7"].inputs["clip"] == ["4", 1]
    assert workflow.nodes["8"].inputs["vae"] == ["4", 2]
    assert validate(workflow, builtin_registry) == [] and workflow.notes == []
    result = Executor(builtin_registry).run(workflow)
    assert result.ok, result.error or result.problems
    image = result.values["8"][0]
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(image).all() and image.std() > 0.01


def test_set_node_passes_its_input_on_too(builtin_registry):
    extra = [node(20, "SetNode", [("MODEL", "MODEL")], [("MODEL", "MODEL")], ["model"])]
    edges = without(TXT2IMG_EDGES, (3, "model")) + [(4, 0, 20, "MODEL"), (20, 0, 3, "model")]
    assert import_ui(ui_graph(TXT2IMG_NODES + extra, edges), builtin_registry).nodes["3"].inputs["model"] == ["4", 0]


def test_set_node_in_the_top_graph_is_seen_from_a_subgraph(builtin_registry):
    inner = {"id": "sub-1", "name": "decode", "inputs": [{"name": "samples", "type": "LATENT"}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
             "nodes": [node(1, "GetNode", [], [("VAE", "VAE")], ["vae"]),
                       node(2, "VAEDecode", [("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")])],
             "links": [[1, 1, 0, 2, 1, "VAE"], [2, -10, 0, 2, 0, "LATENT"], [3, 2, 0, -20, 0, "IMAGE"]]}
    inner["nodes"][1]["inputs"][1]["link"], inner["nodes"][1]["inputs"][0]["link"] = 1, 2
    nodes = [n for n in TXT2IMG_NODES if n[0] != 8] + [
        node(24, "SetNode", [("VAE", "VAE")], [("*", "*")], ["vae"]),
        node(30, "sub-1", [("samples", "LATENT")], [("IMAGE", "IMAGE")])]
    edges = [e for e in TXT2IMG_EDGES if 8 not in (e[0], e[2])] + [(4, 2, 24, "VAE"), (3, 0, 30, "samples"),
                                                                    (30, 0, 9, "images")]
    data = ui_graph(nodes, edges)
    data["definitions"] = {"subgraphs": [inner]}
    workflow = import_ui(data, builtin_registry)
    assert workflow.nodes["30:2"].inputs == {"samples": ["3", 0], "vae": ["4", 2]}


def test_get_node_without_a_set_node_and_two_set_nodes_of_one_name_are_problems(builtin_registry):
    data = set_get_txt2img()
    next(n for n in data["nodes"] if n["id"] == 25)["widgets_values"] = ["vea"]
    problems = problems_of(data, builtin_registry)
    assert [(p.node_id, p.node_type) for p in problems] == [("25", "GetNode")]
    assert "'vea'" in problems[0].message
    data = set_get_txt2img()
    data["nodes"].append(node(27, "SetNode", [("CLIP", "CLIP")], [("*", "*")], ["model"]))
    problems = problems_of(data, builtin_registry)
    assert [(p.node_id, p.node_type) for p in problems] == [("27", "SetNode")]
    assert "node 20" in problems[0].message


def test_validate_command_reports_pack_problems_without_a_traceback_or_torch(builtin_registry, tmp_path, capsys):
    data = set_get_txt2img()
    next(n for n in data["nodes"] if n["id"] == 25)["widgets_values"] = ["vea"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    assert main(["validate", str(path)]) == 3
    err = capsys.readouterr().err
    assert "node 25 (GetNode)" in err and "'vea'" in err and "Traceback" not in err
    ambiguous = ui_graph(TXT2IMG_NODES + [everywhere(30, "Anything Everywhere", [("MODEL", "MODEL")]),
                                          everywhere(31, "Anything Everywhere", [("MODEL", "MODEL")])],
                         without(TXT2IMG_EDGES, (3, "model")) + [(4, 0, 30, "MODEL"), (4, 0, 31, "MODEL")])
    path.write_text(json.dumps(ambiguous))
    assert main(["validate", str(path)]) == 3
    err = capsys.readouterr().err
    assert "node 3 (KSampler), input 'model'" in err and "Traceback" not in err
    good = tmp_path / "good.json"
    good.write_text(json.dumps(set_get_txt2img()))
    code, loaded = probe(tmp_path, "validate", str(good))
    assert code == 0 and loaded == []
    code, loaded = probe(tmp_path, "validate", str(path))
    assert code == 3 and loaded == []


# --- rgthree ----------------------------------------------------------------------------------


def test_rgthree_virtual_nodes_leave_the_graph_as_it_is(builtin_registry):
    extra = [node(40, "Fast Groups Muter (rgthree)", [], [("OPT_CONNECTION", "*")]),
             node(41, "Fast Groups Bypasser (rgthree)", [], [("OPT_CONNECTION", "*")]),
             node(42, "Fast Actions Button (rgthree)", [("", "*")], [("OPT_CONNECTION", "*")], ["Action", "Mute all"]),
             node(43, "Bookmark (rgthree)", [], [], ["1", 1]),
             node(44, "Label (rgthree)", [], []),
             node(45, "Reroute (rgthree)", [("", "*")], [("", "*")])]
    edges = without(TXT2IMG_EDGES, (8, "vae")) + [(4, 2, 45, ""), (45, 0, 8, "vae"), (41, 0, 42, "")]
    workflow = import_ui(ui_graph(TXT2IMG_NODES + extra, edges), builtin_registry)
    assert graph_of(workflow) == graph_of(import_ui(ui_graph(TXT2IMG_NODES, TXT2IMG_EDGES), builtin_registry))
    assert workflow.notes == []


def test_a_group_muted_by_the_fast_groups_muter_does_not_run(builtin_registry):
    """The muter's toggles set mode 2 (bypasser: 4) on the group's nodes, as saved in the file."""
    nodes = [node(1, "PrimitiveStringMultiline", [], [("STRING", "STRING")], ["kept"]),
             node(2, "PrimitiveStringMultiline", [], [("STRING", "STRING")], ["muted"], mode=2),
             node(3, "ShowText|pysssss", [("text", "STRING")], [("STRING", "STRING")], [""]),
             node(4, "ShowText|pysssss", [("text", "STRING")], [("STRING", "STRING")], [""], mode=2),
             node(5, "Fast Groups Muter (rgthree)", [], [("OPT_CONNECTION", "*")])]
    data = ui_graph(nodes, [(1, 0, 3, "text"), (2, 0, 4, "text")])
    data["groups"] = [{"title": "Off", "bounding": [0, 150, 400, 300]}]
    workflow = import_ui(data, builtin_registry)
    assert workflow.ui["nodes"]["4"]["mode"] == "mute" and workflow.ui["nodes"]["2"]["mode"] == "mute"
    result = Executor(builtin_registry).run(workflow)
    assert result.ok, result.error or result.problems
    assert result.outputs == {"3": {"text": ["kept"]}}


# --- cg-use-everywhere ------------------------------------------------------------------------


def everywhere(node_id, class_type, inputs, widgets=(), **extra):
    return node(node_id, class_type, inputs, [], widgets, **extra)


def test_anything_everywhere_fills_unconnected_inputs_of_its_type(builtin_registry):
    extra = [everywhere(30, "Anything Everywhere3", [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")])]
    edges = without(TXT2IMG_EDGES, (3, "model"), (6, "clip"), (7, "clip"), (8, "vae"))
    edges += [(4, 0, 30, "MODEL"), (4, 1, 30, "CLIP"), (4, 2, 30, "VAE")]
    workflow = import_ui(ui_graph(TXT2IMG_NODES + extra, edges), builtin_registry)
    assert graph_of(workflow) == graph_of(import_ui(ui_graph(TXT2IMG_NODES, TXT2IMG_EDGES), builtin_registry))
    assert validate(workflow, builtin_registry) == []


def test_a_connected_input_is_left_alone(builtin_registry):
    other = (10, "CheckpointLoaderSimple", [], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
             ["other.safetensors"])
    extra = [everywhere(30, "Anything Everywhere", [("MODEL", "MODEL")])]
    edges = without(TXT2IMG_EDGES, (3, "model")) + [(4, 0, 30, "MODEL"), (10, 0, 3, "model")]
    workflow = import_ui(ui_graph(TXT2IMG_NODES + [other] + extra, edges), builtin_registry)
    assert workflow.nodes["3"].inputs["model"] == ["10", 0]


def test_input_name_regexes_pick_the_input_in_both_saved_shapes(builtin_registry):
    """Before 7.0 the regexes were widgets (title, input, group); since, node properties."""
    positive = everywhere(31, "Anything Everywhere?", [("CONDITIONING", "CONDITIONING")], [".*", "^pos", ".*"])
    negative = everywhere(32, "Anything Everywhere", [("CONDITIONING", "CONDITIONING")],
                          properties={"ue_properties": {"version": "7.1", "input_regex": "neg"}})
    edges = without(TXT2IMG_EDGES, (3, "positive"), (3, "negative")) + [(6, 0, 31, "CONDITIONING"),
                                                                          (7, 0, 32, "CONDITIONING")]
    workflow = import_ui(ui_graph(TXT2IMG_NODES + [positive, negative], edges), builtin_registry)
    assert workflow.nodes["3"].inputs["positive"] == ["6", 0] and workflow.nodes["3"].inputs["negative"] == ["7", 0]
    # Inverted, "neg" matches "positive" too: two broadcasts of one priority for it, none for "negative".
    negative["properties"]["ue_properties"]["input_regex_invert"] = True
    problems = problems_of(ui_graph(TXT2IMG_NODES + [positive, negative], edges), builtin_registry)
    assert [(p.node_id, p.input) for p in problems] == [("3", "positive")]


def test_prompts_everywhere_sends_positive_and_negative(builtin_registry):
    prompts = everywhere(33, "Prompts Everywhere", [("CONDITIONING", "CONDITIONING"), ("CONDITIONING", "CONDITIONING")])
    prompts["inputs"][1]["name"] = "CONDITIONING_1"
    data = ui_graph(TXT2IMG_NODES + [prompts], without(TXT2IMG_EDGES, (3, "positive"), (3, "negative"))
                    + [(6, 0, 33, "CONDITIONING"), (7, 0, 33, "CONDITIONING_1")])
    workflow = import_ui(data, builtin_registry)
    assert workflow.nodes["3"].inputs["positive"] == ["6", 0] and workflow.nodes["3"].inputs["negative"] == ["7", 0]


def test_seed_everywhere_reaches_a_seed_widget_marked_connectable(builtin_registry):
    data = ui_graph(TXT2IMG_NODES + [node(34, "Seed Everywhere", [], [("INT", "INT")], [1234, "fixed"])], TXT2IMG_EDGES)
    sampler = next(n for n in data["nodes"] if n["id"] == 3)
    sampler["inputs"].append({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": None})
    assert import_ui(data, builtin_registry).nodes["3"].inputs["seed"] == 42  # widgets take no broadcasts
    sampler["properties"]["ue_properties"] = {"widget_ue_connectable": {"seed": True}}
    assert import_ui(data, builtin_registry).nodes["3"].inputs["seed"] == 1234


def test_two_broadcasts_for_one_input_are_a_problem(builtin_registry):
    extra = [everywhere(30, "Anything Everywhere", [("MODEL", "MODEL")]),
             everywhere(31, "Anything Everywhere", [("MODEL", "MODEL")])]
    edges = without(TXT2IMG_EDGES, (3, "model")) + [(4, 0, 30, "MODEL"), (4, 0, 31, "MODEL")]
    problems = problems_of(ui_graph(TXT2IMG_NODES + extra, edges), builtin_registry)
    assert [(p.node_id, p.node_type, p.input) for p in problems] == [("3", "KSampler", "model")]
    assert "node 30" in problems[0].message and "node 31" in problems[0].message
    # A higher priority decides it; a muted broadcaster sends nothing.
    extra[1]["properties"]["ue_properties"] = {"version": "7.0", "priority": 50}
    assert import_ui(ui_graph(TXT2IMG_NODES + extra, edges), builtin_registry).nodes["3"].inputs["model"] == ["4", 0]
    extra[1]["properties"]["ue_properties"], extra[1]["mode"] = {}, 2
    workflow = import_ui(ui_graph(TXT2IMG_NODES + extra, edges), builtin_registry)
    assert workflow.nodes["3"].inputs["model"] == ["4", 0]
    assert set(workflow.nodes) == {"3", "4", "5", "6", "7", "8", "9"} and validate(workflow, builtin_registry) == []
    assert workflow.notes == []


def test_colour_restriction_and_undecidable_group_restriction(builtin_registry):
    source = everywhere(30, "Anything Everywhere", [("MODEL", "MODEL")], color="#223",
                        properties={"ue_properties": {"version": "7.0", "color_restricted": 1}})
    edges = without(TXT2IMG_EDGES, (3, "model")) + [(4, 0, 30, "MODEL")]
    assert "model" not in import_ui(ui_graph(TXT2IMG_NODES + [source], edges), builtin_registry).nodes["3"].inputs
    nodes = [dict(node(*n), color="#223") if n[0] == 3 else n for n in TXT2IMG_NODES]
    assert import_ui(ui_graph(nodes + [source], edges), builtin_registry).nodes["3"].inputs["model"] == ["4", 0]
    source["properties"]["ue_properties"]["group_restricted"] = 1
    problems = problems_of(ui_graph(nodes + [source], edges), builtin_registry)
    assert [(p.node_id, p.node_type) for p in problems] == [("30", "Anything Everywhere")]
    assert "group" in problems[0].message


# --- writing back ----------------------------------------------------------------------------


def rgthree_txt2img():
    extra = [node(40, "Fast Groups Muter (rgthree)", [], [("OPT_CONNECTION", "*")]),
             node(45, "Reroute (rgthree)", [("", "*")], [("", "*")])]
    return ui_graph(TXT2IMG_NODES + extra, without(TXT2IMG_EDGES, (8, "vae")) + [(4, 2, 45, ""), (45, 0, 8, "vae")])


def everywhere_txt2img():
    extra = [everywhere(30, "Anything Everywhere3", [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")])]
    edges = without(TXT2IMG_EDGES, (3, "model"), (6, "clip"), (7, "clip"), (8, "vae"))
    return ui_graph(TXT2IMG_NODES + extra, edges + [(4, 0, 30, "MODEL"), (4, 1, 30, "CLIP"), (4, 2, 30, "VAE")])


@pytest.mark.parametrize("make", [set_get_txt2img, rgthree_txt2img, everywhere_txt2img])
def test_written_back_as_it_was_read(make, builtin_registry):
    """The pack's nodes and their links stay; a broadcast input stays unlinked (the broadcaster sends it)."""
    data = make()
    written = export_ui(import_ui(data, builtin_registry), builtin_registry)
    assert {n["id"]: n for n in written["nodes"]} == {n["id"]: n for n in data["nodes"]}
    assert written["links"] == data["links"]


# --- display nodes ----------------------------------------------------------------------------


def test_show_text_and_display_any_send_their_text_to_the_ui(builtin_registry):
    nodes = [node(1, "PrimitiveStringMultiline", [], [("STRING", "STRING")], ["a cat"]),
             node(2, "PrimitiveInt", [], [("INT", "INT")], [7, "fixed"]),
             node(3, "ShowText|pysssss", [("text", "STRING")], [("STRING", "STRING")], ["a cat"]),
             node(4, "Display Any (rgthree)", [("source", "*")], []),
             node(5, "Display Any (rgthree)", [("source", "*")], []),
             node(6, "ShowText|pysssss", [("text", "STRING")], [("STRING", "STRING")], [""])]
    data = ui_graph(nodes, [(1, 0, 3, "text"), (2, 0, 4, "source"), (3, 0, 5, "source"), (3, 0, 6, "text")])
    workflow = import_ui(data, builtin_registry)
    assert workflow.nodes["3"].type == "ShowLinkedText" and workflow.nodes["4"].type == "DisplayAny"
    assert validate(workflow, builtin_registry) == []
    events = []
    result = Executor(builtin_registry).run(workflow, on_event=events.append)
    assert result.ok, result.error or result.problems
    # ComfyUI's websocket "executed" message carries the node's ui: {"text": [...]}, as pysssss returns it
    executed = {data["node"]: data["output"] for e in events for kind, data in translate(e["type"], e)
                if kind == "executed"}
    assert executed == result.outputs
    assert result.outputs["3"] == {"text": ["a cat"]} and result.outputs["6"] == {"text": ["a cat"]}
    assert result.outputs["4"] == {"text": ["7"]}
    assert result.outputs["5"] == {"text": ["a cat"]}  # ShowText's list output, item by item
    written = export_ui(workflow, builtin_registry)  # with the text the editor showed
    assert {n["id"]: n for n in written["nodes"]} == {n["id"]: n for n in data["nodes"]}


def test_display_any_writes_values_as_rgthree_does(builtin_registry, monkeypatch):
    from tests.test_nodes_image_mask import call

    shown = []
    monkeypatch.setattr("nodes.primitives.show", lambda text: shown.extend(text))
    for value in ("text", 3, 2.5, True, None, {"a": [1, "é"]}):
        call(builtin_registry, "DisplayAny", source=value)
    assert shown == ["text", "3", "2.5", "True", "None", json.dumps({"a": [1, "é"]}, ensure_ascii=False)]
    assert shown[-1] == '{"a": [1, "é"]}'


def test_a_broadcast_regex_that_backtracks_without_end_is_a_problem_not_a_hang(builtin_registry, monkeypatch):
    # A stranger's file can bring a title regex that Python's re takes years over on a title like
    # "aaa...b": reading the file stops it and names the broadcaster instead of holding the server.
    monkeypatch.setattr("graphflow.comfy_pack_nodes.REGEX_SECONDS", 0.2)
    source = everywhere(31, "Anything Everywhere", [("MODEL", "MODEL")],
                        properties={"ue_properties": {"version": "7.1", "title_regex": "(a+)+$"}})
    edges = without(TXT2IMG_EDGES, (3, "model")) + [(4, 0, 31, "MODEL")]
    data = ui_graph(TXT2IMG_NODES + [source], edges)
    data["nodes"][0]["title"] = "a" * 60 + "b"
    start = time.monotonic()
    problems = problems_of(data, builtin_registry)
    assert time.monotonic() - start < 10
    assert any(p.node_id == "31" and "backtracks" in p.message for p in problems)
