"""ComfyUI's formats: its UI-format and API-format workflows (tests/comfyui/, written in the shapes
ComfyUI saves), converting, validating and running them on the demo model, writing them back,
and the workflows pictures carry (ComfyUI's PNG/WebP chunks, ours, A1111 parameters)."""

import base64
import io
import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image, PngImagePlugin

from graphflow.cli import main
from graphflow.comfy_format import (comfy_catalogue, custom_pack, export_api, export_ui, import_ui, ui_to_api,
                                    unknown_type_hint)
from graphflow.executor import Executor
from graphflow.node_modes import apply_modes
from graphflow.picture_metadata import (a1111_extra_networks, a1111_graph, a1111_hires_size, a1111_refiner_step,
                                        a1111_sampler, parse_a1111, workflow_from_picture)
from graphflow.validation import validate
from graphflow.workflow import WorkflowFormatError, load_workflow, parse_workflow

CORPUS = Path(__file__).parent / "comfyui"
UI_FILES = sorted(p.name for p in CORPUS.glob("*_ui.json"))
RUNNABLE = sorted(p.name for p in CORPUS.glob("*.json") if not p.name.startswith("missing_"))


def load(name, registry):
    return load_workflow(CORPUS / name, registry)


def by_id(nodes):
    return {n["id"]: n for n in nodes}


@pytest.fixture
def executor(builtin_registry):
    return Executor(builtin_registry)  # a fresh cache: every output node really runs


def images_of(workflow, result):
    return {node_id: result.values[node_id][0] for node_id, node in workflow.nodes.items() if node.type == "VAEDecode"}


# --- reading and writing back -----------------------------------------------------------------


@pytest.mark.parametrize("name", UI_FILES)
def test_ui_workflow_converts_validates_and_round_trips(name, builtin_registry):
    original = json.loads((CORPUS / name).read_text())
    workflow = load(name, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    # Through our JSON (as the editor saves it), then back to ComfyUI's UI format.
    again = parse_workflow(json.loads(json.dumps(workflow.to_json())), builtin_registry)
    written = export_ui(again, builtin_registry)
    assert by_id(written["nodes"]) == by_id(original["nodes"])  # every value, position, size, mode
    assert [n["id"] for n in written["nodes"]] == [n["id"] for n in original["nodes"]]
    assert written["links"] == original["links"]
    assert {k: v for k, v in written.items() if k not in ("nodes", "links")} == \
        {k: v for k, v in original.items() if k not in ("nodes", "links")}


def test_newer_editor_shape_with_a_socket_for_every_widget(builtin_registry):
    """ComfyUI's newer editors list each widget in `inputs` too (link null unless connected)."""
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    for node in data["nodes"]:
        order = comfy_catalogue()[node["type"]]["inputs"]
        node["inputs"] += [{"localized_name": i["name"], "name": i["name"], "type": i["type"],
                            "widget": {"name": i["name"]}, "link": None} for i in order if i.get("widget")]
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.to_json()["nodes"] == load("txt2img_api.json", builtin_registry).to_json()["nodes"]
    written = export_ui(workflow, builtin_registry)
    assert by_id(written["nodes"]) == by_id(data["nodes"]) and written["links"] == data["links"]


def test_links_as_objects_schema_1_shape(builtin_registry):
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
    data["links"] = [dict(zip(keys, link)) for link in data["links"]]
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.to_json()["nodes"] == load("txt2img_api.json", builtin_registry).to_json()["nodes"]
    assert export_ui(workflow, builtin_registry)["links"] == data["links"]


def test_ui_layout_titles_groups_and_view_go_in_the_ui_block(builtin_registry):
    workflow = load("txt2img_tricks_ui.json", builtin_registry)
    assert workflow.ui["nodes"]["3"] == {"pos": [863, 186], "width": 315}
    assert workflow.ui["nodes"]["7"]["title"] == "Negative"
    assert workflow.ui["groups"][0]["title"] == "Prompts"
    assert workflow.ui["view"] == {"x": 96, "y": -32, "zoom": 0.8}
    assert workflow.ui["notes"][0]["text"].startswith("The LoRA is bypassed")


def test_primitive_reroute_bypass_and_mute_resolve_as_comfyui_does(builtin_registry):
    tricks = load("txt2img_tricks_ui.json", builtin_registry)
    plain = load("txt2img_api.json", builtin_registry)
    # The bypassed LoRA and the muted preview stay, with their modes; the Reroute forwards the
    # VAE, the Primitive gives the seed. As it runs (modes applied) the plain graph remains.
    assert {i: tricks.ui["nodes"][i].get("mode") for i in tricks.nodes} == \
        {i: {"10": "bypass", "13": "mute"}.get(i) for i in tricks.nodes}
    assert tricks.nodes["3"].inputs["model"] == ["10", 0]
    assert apply_modes(tricks, builtin_registry).to_json()["nodes"] == plain.to_json()["nodes"]
    assert tricks.notes == []


def test_modes_are_written_as_comfyui_modes_2_and_4_and_read_back(builtin_registry):
    ours = load_workflow(Path(__file__).parent.parent / "workflows" / "txt2img.json", builtin_registry)
    decode = next(i for i, n in ours.nodes.items() if n.type == "VAEDecode")
    sampler = next(i for i, n in ours.nodes.items() if n.type == "KSampler")
    ours.ui.setdefault("nodes", {}).setdefault(decode, {})["mode"] = "mute"
    ours.ui["nodes"].setdefault(sampler, {})["mode"] = "bypass"
    written = json.loads(json.dumps(export_ui(ours, builtin_registry)))
    modes = {str(n["id"]): n["mode"] for n in written["nodes"]}
    assert modes[decode] == 2 and modes[sampler] == 4
    assert {m for i, m in modes.items() if i not in (decode, sampler)} == {0}
    back = parse_workflow(written, builtin_registry)
    assert set(back.nodes) == set(ours.nodes)
    assert back.ui["nodes"][decode]["mode"] == "mute" and back.ui["nodes"][sampler]["mode"] == "bypass"
    assert "mode" not in back.ui["nodes"][next(iter(set(ours.nodes) - {decode, sampler}))]
    # The API format has no modes: the muted node is left out, the bypass rewired.
    api = export_api(ours, builtin_registry)
    assert decode not in api and sampler not in api
    # Un-muting writes mode 0 over the kept ComfyUI node.
    del back.ui["nodes"][decode]["mode"]
    assert by_id(export_ui(back, builtin_registry)["nodes"])[int(decode)]["mode"] == 0


def test_bypassed_custom_node_is_still_rewired_by_its_socket_types(builtin_registry):
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    save = next(n for n in data["nodes"] if n["type"] == "SaveImage")
    link_in = save["inputs"][0]["link"]
    data["nodes"].append({"id": 20, "type": "ImageSharpen|pysssss", "pos": [5, 5], "size": [300, 100], "flags": {},
                          "order": 9, "mode": 4, "inputs": [{"name": "pixels", "type": "IMAGE", "link": link_in}],
                          "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [30]}],
                          "properties": {}, "widgets_values": [1.0]})
    data["links"].append([30, 20, 0, save["id"], 0, "IMAGE"])
    for link in data["links"]:
        if link[0] == link_in:
            link[3], link[4] = 20, 0
    save["inputs"][0]["link"] = 30
    workflow = parse_workflow(data, builtin_registry)
    assert "20" not in workflow.nodes  # unknown to us: left out, its IMAGE input passed through
    assert workflow.nodes[str(save["id"])].inputs["images"] == ["8", 0]
    assert any(n["node_id"] == "20" and n["message"].startswith("left out, bypassed") for n in workflow.notes)
    assert by_id(export_ui(workflow, builtin_registry)["nodes"])[20] == data["nodes"][-1]


def test_bypass_behind_a_reroute_picks_by_the_reading_input_type(builtin_registry):
    # The bypassed node's output reaches SaveImage through a Reroute whose links are typed "*":
    # ComfyUI picks what the bypass passes by the type of the input it ends at (IMAGE).
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    save = next(n for n in data["nodes"] if n["type"] == "SaveImage")
    link_in = save["inputs"][0]["link"]
    data["nodes"].append({"id": 20, "type": "SomePackImageFilter", "pos": [5, 5], "size": [300, 100], "flags": {},
                          "order": 9, "mode": 4, "inputs": [{"name": "mask", "type": "MASK", "link": None},
                                                           {"name": "pixels", "type": "IMAGE", "link": link_in}],
                          "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [30]}],
                          "properties": {}, "widgets_values": [1.0]})
    data["nodes"].append({"id": 21, "type": "Reroute", "pos": [9, 9], "size": [75, 26], "flags": {}, "order": 10,
                          "mode": 0, "inputs": [{"name": "", "type": "*", "link": 30}],
                          "outputs": [{"name": "", "type": "*", "links": [31]}], "properties": {}})
    data["links"] += [[30, 20, 0, 21, 0, "*"], [31, 21, 0, save["id"], 0, "*"]]
    for link in data["links"]:
        if link[0] == link_in:
            link[3], link[4] = 20, 1
    save["inputs"][0]["link"] = 31
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.nodes[str(save["id"])].inputs["images"] == ["8", 0]


def test_groups_notes_reroutes_collapsed_and_colours_round_trip(builtin_registry):
    data = json.loads((CORPUS / "txt2img_tricks_ui.json").read_text())
    for node in data["nodes"]:
        if node["id"] == 5:
            node["flags"] = {"collapsed": True}
            node["color"], node["bgcolor"] = "#223", "#335"
    workflow = parse_workflow(data, builtin_registry)
    ui = workflow.ui
    assert ui["nodes"]["5"] == {"pos": [473, 609], "width": 315, "collapsed": True, "color": "#223", "bgcolor": "#335"}
    assert ui["reroutes"] == {"11": {"pos": [1100, 500]}}
    assert ui["nodes"]["8"]["via"] == {"vae": ["11"]}
    assert workflow.nodes["8"].inputs["vae"] == ["4", 2]  # the engine's link is direct
    assert ui["notes"][0]["id"] == "14" and ui["notes"][0]["color"] == "#432"
    # Through our JSON unchanged, back to ComfyUI unchanged.
    again = parse_workflow(json.loads(json.dumps(workflow.to_json())), builtin_registry)
    written = export_ui(again, builtin_registry)
    assert by_id(written["nodes"]) == by_id(data["nodes"]) and written["links"] == data["links"]
    assert written["groups"] == data["groups"]

    # Edited as the editor does: group moved and retitled, note edited, a new note, a second
    # Reroute on the positive prompt's link, node 5 expanded and uncoloured, the old Reroute
    # taken out of the VAE link.
    ui = again.ui
    ui["groups"][0].update(title="Text", bounding=[0, 0, 500, 300], color="#8A8")
    ui["notes"][0]["text"] = "edited"
    ui["notes"].append({"id": "30", "pos": [5, 6], "text": "new *note*", "width": 200, "height": 90,
                        "markdown": True, "color": "#353"})
    ui["reroutes"]["31"] = {"pos": [800, 150]}
    ui["nodes"]["3"]["via"] = {"positive": ["31"]}
    del ui["nodes"]["8"]["via"]
    ui["nodes"]["5"] = {"pos": [473, 609], "width": 315}
    written = json.loads(json.dumps(export_ui(again, builtin_registry)))
    nodes = by_id(written["nodes"])
    links = {link[0]: link for link in written["links"]}
    assert written["groups"] == [{"title": "Text", "bounding": [0, 0, 500, 300], "color": "#8A8", "font_size": 24,
                                  "flags": {}}]
    assert nodes[14]["widgets_values"] == ["edited"] and nodes[14]["color"] == "#432"
    assert nodes[30]["type"] == "MarkdownNote" and nodes[30]["widgets_values"] == ["new *note*"]
    assert nodes[30]["size"] == [200, 90] and nodes[30]["color"] == "#353" and nodes[30]["pos"] == [5, 6]
    assert "collapsed" not in nodes[5]["flags"] and "color" not in nodes[5] and "bgcolor" not in nodes[5]
    positive = links[next(i["link"] for i in nodes[3]["inputs"] if i["name"] == "positive")]
    assert positive[1:3] == [31, 0]  # KSampler.positive <- Reroute 31 <- CLIPTextEncode 6
    assert nodes[31]["type"] == "Reroute" and links[nodes[31]["inputs"][0]["link"]][1:3] == [6, 0]
    assert nodes[31]["outputs"][0]["links"] == [positive[0]] and nodes[31]["outputs"][0]["type"] == "CONDITIONING"
    vae = links[next(i["link"] for i in nodes[8]["inputs"] if i["name"] == "vae")]
    assert vae[1:3] == [4, 2]  # directly from the checkpoint now
    assert nodes[11]["outputs"][0]["links"] == []  # the old Reroute stays, with nothing through it
    # ComfyUI would queue the same graph, and reading it back gives the edited ui parts.
    back = parse_workflow(written, builtin_registry)
    assert back.to_json()["nodes"] == again.to_json()["nodes"]
    assert back.ui["nodes"]["3"]["via"] == {"positive": ["31"]} and "via" not in back.ui["nodes"]["8"]
    assert set(back.ui["reroutes"]) == {"11", "31"}
    assert [n["text"] for n in back.ui["notes"]] == ["edited", "new *note*"]
    assert back.ui["notes"][1]["markdown"] is True


def test_our_own_groups_notes_and_reroutes_are_written_for_comfyui(builtin_registry):
    ours = load_workflow(Path(__file__).parent.parent / "workflows" / "txt2img.json", builtin_registry)
    decode = next(i for i, n in ours.nodes.items() if n.type == "VAEDecode")
    source = ours.nodes[decode].inputs["samples"][0]
    ours.ui["groups"] = [{"title": "Sampling", "bounding": [10, 20, 300, 400], "color": "#b58b2a"}]
    ours.ui["notes"] = [{"id": "n1", "pos": [0, -200], "text": "hello", "width": 240, "height": 80}]
    ours.ui["reroutes"] = {"r1": {"pos": [500, 0]}, "r2": {"pos": [600, 0]}}
    ours.ui.setdefault("nodes", {}).setdefault(decode, {})["via"] = {"samples": ["r1", "r2"]}
    ours.ui["nodes"][decode]["collapsed"] = True
    written = json.loads(json.dumps(export_ui(ours, builtin_registry)))
    assert written["groups"] == ours.ui["groups"]
    kinds = {n["type"]: n for n in written["nodes"]}
    assert kinds["Note"]["widgets_values"] == ["hello"] and kinds["Note"]["size"] == [240, 80]
    assert by_id(written["nodes"])[int(decode)]["flags"] == {"collapsed": True}
    back = parse_workflow(written, builtin_registry)
    assert back.to_json()["nodes"] == parse_workflow(json.loads(json.dumps(export_ui(ours, builtin_registry))),
                                                     builtin_registry).to_json()["nodes"]
    assert back.nodes[decode].inputs["samples"] == [source, 0]
    chain = back.ui["nodes"][decode]["via"]["samples"]
    assert [back.ui["reroutes"][r]["pos"] for r in chain] == [[500, 0], [600, 0]]
    assert back.ui["notes"][0]["text"] == "hello" and back.ui["nodes"][decode]["collapsed"] is True
    assert validate(back, builtin_registry) == validate(ours, builtin_registry)


def test_muted_source_leaves_its_consumer_without_the_input(builtin_registry):
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    for node in data["nodes"]:
        if node["id"] == 5:
            node["mode"] = 2  # EmptyLatentImage muted: KSampler gets no latent, as in ComfyUI
    problems = validate(parse_workflow(data, builtin_registry), builtin_registry)
    assert [(p.node_id, p.input) for p in problems] == [("3", "latent_image")]


def test_widget_fed_by_a_muted_unknown_node_is_left_without_a_value(builtin_registry):
    # ComfyUI links the converted seed widget to the muted node, then drops links to nodes it left
    # out: the sampler has no seed at all (not the widget's saved 7).
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    sampler = next(n for n in data["nodes"] if n["type"] == "KSampler")
    data["nodes"].append({"id": 20, "type": "SomePackSeed", "pos": [5, 5], "size": [300, 100], "flags": {},
                          "order": 9, "mode": 2, "inputs": [],
                          "outputs": [{"name": "SEED", "type": "INT", "links": [30]}],
                          "properties": {}, "widgets_values": [123]})
    data["links"].append([30, 20, 0, sampler["id"], len(sampler["inputs"]), "INT"])
    sampler["inputs"].append({"name": "seed", "type": "INT", "link": 30, "widget": {"name": "seed"}})
    sampler["widgets_values"][0] = 7
    workflow = parse_workflow(json.loads(json.dumps(data)), builtin_registry)
    assert "seed" not in workflow.nodes[str(sampler["id"])].inputs
    assert by_id(export_ui(workflow, builtin_registry)["nodes"])[sampler["id"]] == sampler


def test_bypassed_node_without_a_matching_input_gives_nothing(builtin_registry):
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    for node in data["nodes"]:
        if node["id"] == 8:
            node["mode"] = 4  # VAEDecode bypassed: no IMAGE input to pass on to SaveImage
    problems = validate(parse_workflow(data, builtin_registry), builtin_registry)
    assert [(p.node_id, p.input) for p in problems] == [("9", "images")]


def _bypass_graph(middle_type, middle_inputs, middle_outputs):
    """CLIPTextEncode 1 and 2 (and LoadImage 3) feed node 5 (bypassed), whose outputs feed node 6."""
    def socket(name, kind, link=None):
        return {"name": name, "type": kind, "link": link}
    links = [[1, 1, 0, 5, 0, "CONDITIONING"], [2, 2, 0, 5, 1, "CONDITIONING"],
             [3, 5, 0, 6, 1, "CONDITIONING"], [4, 5, 1, 6, 2, "CONDITIONING"]]
    nodes = [{"id": i, "type": "CLIPTextEncode", "mode": 0, "inputs": [socket("clip", "CLIP")],
              "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [i]}], "widgets_values": [t]}
             for i, t in ((1, "pos"), (2, "neg"))]
    nodes.append({"id": 5, "type": middle_type, "mode": 4, "inputs": middle_inputs, "outputs": middle_outputs,
                  "widgets_values": [1.0, 0.0, 1.0]})
    nodes.append({"id": 6, "type": "KSampler", "mode": 0,
                  "inputs": [socket("model", "MODEL"), socket("positive", "CONDITIONING", 3),
                             socket("negative", "CONDITIONING", 4), socket("latent_image", "LATENT")],
                  "outputs": [], "widgets_values": [0, "fixed", 20, 8, "euler", "normal", 1.0]})
    return {"nodes": nodes, "links": links}


@pytest.mark.parametrize("middle", ["ControlNetApplyAdvanced", "SomePackConditioningPair"])
def test_bypass_passes_the_input_at_the_same_position_first(middle, builtin_registry):
    # A bypassed ControlNetApplyAdvanced (a known class, kept with its mode; or an unknown one, left
    # out) passes positive to positive and negative to negative: ComfyUI takes the input at the
    # output's position when its type matches, not the first input of the type.
    ins = [{"name": "positive", "type": "CONDITIONING", "link": 1},
           {"name": "negative", "type": "CONDITIONING", "link": 2},
           {"name": "control_net", "type": "CONTROL_NET", "link": None},
           {"name": "image", "type": "IMAGE", "link": None}]
    outs = [{"name": "positive", "type": "CONDITIONING", "links": [3]},
            {"name": "negative", "type": "CONDITIONING", "links": [4]}]
    workflow = apply_modes(parse_workflow(_bypass_graph(middle, ins, outs), builtin_registry), builtin_registry)
    assert workflow.nodes["6"].inputs["positive"] == ["1", 0]
    assert workflow.nodes["6"].inputs["negative"] == ["2", 0]


@pytest.mark.parametrize("middle", ["ConditioningCombine", "SomePackConditioningJoin"])
def test_bypass_whose_chosen_input_is_unlinked_passes_nothing(middle, builtin_registry):
    # ComfyUI picks the input by type alone: conditioning_1 (unlinked) here, so the sampler gets
    # no positive, even though conditioning_2 is linked.
    ins = [{"name": "conditioning_1", "type": "CONDITIONING", "link": None},
           {"name": "conditioning_2", "type": "CONDITIONING", "link": 2}]
    outs = [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [3]}]
    data = _bypass_graph(middle, ins, outs)
    data["links"] = data["links"][1:3]
    data["nodes"][3]["inputs"][2]["link"] = None
    workflow = apply_modes(parse_workflow(data, builtin_registry), builtin_registry)
    assert "positive" not in workflow.nodes["6"].inputs


def test_bypass_read_by_an_any_typed_input_passes_the_input_at_its_position(builtin_registry):
    # PreviewAny reads "*": a bypassed VAEDecode passes its first input (the latent) to it, as in ComfyUI.
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    decode = next(n for n in data["nodes"] if n["type"] == "VAEDecode")
    decode["mode"] = 4
    decode["outputs"][0]["links"].append(30)
    data["nodes"].append({"id": 20, "type": "PreviewAny", "pos": [5, 5], "size": [300, 100], "flags": {},
                          "order": 9, "mode": 0, "inputs": [{"name": "source", "type": "*", "link": 30}],
                          "outputs": [], "properties": {}, "widgets_values": []})
    data["links"].append([30, decode["id"], 0, 20, 0, "*"])
    workflow = apply_modes(parse_workflow(data, builtin_registry), builtin_registry)
    sampler = next(str(n["id"]) for n in data["nodes"] if n["type"] == "KSampler")
    assert workflow.nodes["20"].inputs["source"] == [sampler, 0]


def _bypassed_before_save(data, middle_inputs, feeds):
    """Node 20 (bypassed, unknown to us, one IMAGE output) put before SaveImage; `feeds`: the
    index of its input that takes the decoded image's link."""
    save = next(n for n in data["nodes"] if n["type"] == "SaveImage")
    link_in = save["inputs"][0]["link"]
    middle_inputs[feeds]["link"] = link_in
    data["nodes"].append({"id": 20, "type": "SomePackSwitch", "pos": [5, 5], "size": [300, 100], "flags": {},
                          "order": 9, "mode": 4, "inputs": middle_inputs,
                          "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [30]}],
                          "properties": {}, "widgets_values": []})
    data["links"].append([30, 20, 0, save["id"], 0, "IMAGE"])
    for link in data["links"]:
        if link[0] == link_in:
            link[3], link[4] = 20, feeds
    save["inputs"][0]["link"] = 30
    return save


@pytest.mark.parametrize("kind", ["*", "IMAGE,MASK", "image"])
def test_bypass_takes_the_same_position_when_its_type_fits_as_litegraph_connects_types(kind, builtin_registry):
    # ComfyUI's editor keeps the input at the output's position when LiteGraph would connect the
    # types ("*" fits anything, "A,B" lists, any case), ahead of an exact IMAGE input further on.
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    save = _bypassed_before_save(data, [{"name": "any", "type": kind, "link": None},
                                        {"name": "other", "type": "IMAGE", "link": None}], 0)
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.nodes[str(save["id"])].inputs["images"] == ["8", 0]


def test_bypass_falls_back_to_the_first_input_whose_type_fits(builtin_registry):
    # No input at the output's position fits and none is exactly IMAGE: the first that fits ("*").
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    save = _bypassed_before_save(data, [{"name": "mask", "type": "MASK", "link": None},
                                        {"name": "any", "type": "*", "link": None}], 1)
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.nodes[str(save["id"])].inputs["images"] == ["8", 0]


def test_bypass_behind_a_bypass_picks_by_the_chosen_input_type_not_its_links(builtin_registry):
    # Bypassed 21 (inputs MASK, IMAGE) reaches bypassed 20's IMAGE input through a Reroute whose
    # links are typed "*": ComfyUI resolves 20's chosen input as an IMAGE, so 21 passes its IMAGE
    # input (not the MASK at the same position, as a "*" reader would take).
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    save = _bypassed_before_save(data, [{"name": "image", "type": "IMAGE", "link": None}], 0)
    decoded = next(l for l in data["links"] if l[3] == 20)
    data["nodes"] += [
        {"id": 21, "type": "SomePackMasker", "pos": [5, 5], "size": [300, 100], "flags": {}, "order": 9, "mode": 4,
         "inputs": [{"name": "mask", "type": "MASK", "link": None}, {"name": "image", "type": "IMAGE", "link": 40}],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [41]}], "properties": {}, "widgets_values": []},
        {"id": 22, "type": "Reroute", "pos": [9, 9], "size": [75, 26], "flags": {}, "order": 10, "mode": 0,
         "inputs": [{"name": "", "type": "*", "link": 41}], "outputs": [{"name": "", "type": "*", "links": [42]}],
         "properties": {}}]
    data["links"] += [[40, decoded[1], decoded[2], 21, 1, "IMAGE"], [41, 21, 0, 22, 0, "*"], [42, 22, 0, 20, 0, "*"]]
    data["links"].remove(decoded)
    data["nodes"][-3]["inputs"][0]["link"] = 42
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.nodes[str(save["id"])].inputs["images"] == ["8", 0]


def test_bypassed_reroute_passes_on_as_any_type(builtin_registry):
    # Bypassed node 20 (inputs MASK, IMAGE) feeds SaveImage through Reroute 21. Plain, the Reroute
    # forwards SaveImage's IMAGE type and 20 passes its IMAGE input; bypassed (mode 4), ComfyUI
    # resolves the Reroute's own "*" input, and a "*" reader takes 20's input at the same position.
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    save = _bypassed_before_save(data, [{"name": "mask", "type": "MASK", "link": None},
                                        {"name": "image", "type": "IMAGE", "link": None}], 1)
    data["nodes"].append({"id": 21, "type": "Reroute", "pos": [9, 9], "size": [75, 26], "flags": {}, "order": 10,
                          "mode": 0, "inputs": [{"name": "", "type": "*", "link": 30}],
                          "outputs": [{"name": "", "type": "*", "links": [31]}], "properties": {}})
    next(link for link in data["links"] if link[0] == 30)[3:5] = [21, 0]
    data["links"].append([31, 21, 0, save["id"], 0, "*"])
    save["inputs"][0]["link"] = 31
    assert parse_workflow(data, builtin_registry).nodes[str(save["id"])].inputs["images"] == ["8", 0]
    data["nodes"][-1]["mode"] = 4
    assert "images" not in parse_workflow(data, builtin_registry).nodes[str(save["id"])].inputs


def test_primitive_value_does_not_pass_a_bypassed_node(builtin_registry):
    # Primitive 12 feeds the seed of a bypassed node (unknown to us) that feeds the sampler's seed:
    # ComfyUI's editor copies 12's value into the bypassed node's own widget and resolves the
    # sampler's link to nothing, so the sampler keeps its saved seed (7), not the Primitive's 42.
    data = json.loads((CORPUS / "txt2img_tricks_ui.json").read_text())
    sampler = next(n for n in data["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][0] = 7
    data["nodes"].append({"id": 20, "type": "SomePackSeedOffset", "pos": [5, 5], "size": [300, 100], "flags": {},
                          "order": 9, "mode": 4,
                          "inputs": [{"name": "seed", "type": "INT", "link": 13, "widget": {"name": "seed"}}],
                          "outputs": [{"name": "seed", "type": "INT", "links": [30]}],
                          "properties": {}, "widgets_values": [0, "fixed"]})
    next(link for link in data["links"] if link[0] == 13)[3:5] = [20, 0]
    data["links"].append([30, 20, 0, sampler["id"], 4, "INT"])
    next(i for i in sampler["inputs"] if i["name"] == "seed")["link"] = 30
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.nodes[str(sampler["id"])].inputs["seed"] == 7
    # Linked straight to the sampler, the Primitive's value arrives.
    assert load("txt2img_tricks_ui.json", builtin_registry).nodes[str(sampler["id"])].inputs["seed"] == 42


def test_primitive_value_reaches_only_the_widgets_it_links_to_directly(builtin_registry):
    # ComfyUI's frontend (since March 2025) copies a Primitive's value only into the widgets its own
    # links end at (PrimitiveNode.applyToGraph); a Reroute has no widget, and resolving a link through
    # it to the Primitive finds nothing. So a sampler fed through two Reroutes keeps its own seed (7),
    # while a second sampler linked straight to the same Primitive gets its value (42).
    data = json.loads((CORPUS / "txt2img_tricks_ui.json").read_text())
    sampler = next(n for n in data["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][0] = 7
    twin = json.loads(json.dumps(sampler))
    twin.update(id=30, pos=[5, 900], inputs=[{**i, "link": None} for i in twin["inputs"]],
                outputs=[{**o, "links": []} for o in twin["outputs"]])
    twin["widgets_values"][0] = 42  # the editor has copied the Primitive's value into its widget
    seed_slot = next(k for k, i in enumerate(twin["inputs"]) if i["name"] == "seed")
    twin["inputs"][seed_slot]["link"] = 33
    data["nodes"].append(twin)
    primitive = next(n for n in data["nodes"] if n["type"] == "PrimitiveNode")
    reroute = {"pos": [9, 9], "size": [75, 26], "flags": {}, "order": 10, "mode": 0, "type": "Reroute",
               "properties": {"showOutputText": False, "horizontal": False}}
    data["nodes"] += [{**reroute, "id": 20, "inputs": [{"name": "", "type": "*", "link": 13, "widget": {"name": "value"}}],
                       "outputs": [{"name": "", "type": "INT", "links": [31]}]},
                      {**reroute, "id": 21, "inputs": [{"name": "", "type": "*", "link": 31, "widget": {"name": "value"}}],
                       "outputs": [{"name": "", "type": "INT", "links": [32]}]}]
    next(link for link in data["links"] if link[0] == 13)[3:5] = [20, 0]
    data["links"] += [[31, 20, 0, 21, 0, "INT"], [32, 21, 0, sampler["id"], 4, "INT"], [33, primitive["id"], 0, 30, 4, "INT"]]
    next(i for i in sampler["inputs"] if i["name"] == "seed")["link"] = 32
    # (direct link first: were a Reroute's first, the editor of 2025 would load the Primitive with
    # its widget's default, not its saved value, a bug it fixed in 2026)
    primitive["outputs"][0]["links"].insert(0, 33)
    workflow = parse_workflow(json.loads(json.dumps(data)), builtin_registry)
    assert workflow.nodes[str(sampler["id"])].inputs["seed"] == 7
    assert workflow.nodes["30"].inputs["seed"] == 42
    written = export_ui(workflow, builtin_registry)  # the links through the Reroutes stay
    assert by_id(written["nodes"]) == by_id(data["nodes"]) and written["links"] == data["links"]


def test_subgraph_is_expanded_with_instance_prefixed_ids(builtin_registry):
    workflow = load("txt2img_subgraph_ui.json", builtin_registry)
    assert workflow.nodes["6:1"].type == "CLIPEncode"
    assert workflow.nodes["6:1"].inputs["clip"] == ["4", 1]
    assert workflow.nodes["3"].inputs["positive"] == ["6:1", 0]
    assert "6" not in workflow.nodes


def test_subgraph_widget_promoted_to_the_instance_sends_the_instance_value(builtin_registry):
    # The subgraph's "text" input feeds the inner CLIPTextEncode's text widget; the instance shows
    # it as its own widget, and ComfyUI queues the instance's value, not the inner node's.
    data = json.loads((CORPUS / "txt2img_subgraph_ui.json").read_text())
    definition = data["definitions"]["subgraphs"][0]
    definition["inputs"].append({"id": "text-input", "name": "text", "type": "STRING", "linkIds": [3]})
    definition["links"].append({"id": 3, "origin_id": -10, "origin_slot": 1, "target_id": 1, "target_slot": 1,
                                "type": "STRING"})
    definition["nodes"][0]["inputs"].append({"name": "text", "type": "STRING", "link": 3, "widget": {"name": "text"}})
    instance = next(n for n in data["nodes"] if n["id"] == 6)
    instance["inputs"].append({"name": "text", "type": "STRING", "link": None, "widget": {"name": "text"}})
    instance["widgets_values"] = ["a blue square"]
    workflow = parse_workflow(json.loads(json.dumps(data)), builtin_registry)
    assert workflow.nodes["6:1"].inputs == {"clip": ["4", 1], "text": "a blue square"}
    written = export_ui(workflow, builtin_registry)
    assert written["definitions"] == data["definitions"] and by_id(written["nodes"])[6] == instance
    # Fed by a Primitive, the instance's widget gets its value (applyToGraph), but resolving the
    # inner node's input across the boundary to the Primitive finds nothing: its own text is sent.
    data["nodes"].append({"id": 20, "type": "PrimitiveNode", "pos": [0, 0], "size": [300, 80], "flags": {},
                          "order": 0, "mode": 0, "inputs": [], "properties": {"Run widget replace on values": False},
                          "outputs": [{"name": "STRING", "type": "STRING", "links": [30], "widget": {"name": "text"}}],
                          "widgets_values": ["a green triangle"]})
    data["links"].append([30, 20, 0, 6, len(instance["inputs"]) - 1, "STRING"])
    instance["inputs"][-1]["link"] = 30
    instance["widgets_values"] = ["a green triangle"]
    workflow = parse_workflow(json.loads(json.dumps(data)), builtin_registry)
    assert workflow.nodes["6:1"].inputs["text"] == definition["nodes"][0]["widgets_values"][0]


def test_muted_or_bypassed_subgraph_instance(builtin_registry):
    # As in ComfyUI: none of a muted or bypassed instance's nodes run; readers of a muted one get
    # nothing, those of a bypassed one its input of the output's type (here the negative prompt's).
    data = json.loads((CORPUS / "txt2img_subgraph_ui.json").read_text())
    data["definitions"]["subgraphs"][0]["inputs"].append(
        {"id": "cond-input", "name": "conditioning", "type": "CONDITIONING", "linkIds": []})
    instance = next(n for n in data["nodes"] if n["id"] == 6)
    instance["inputs"].append({"name": "conditioning", "type": "CONDITIONING", "link": 10})
    data["links"].append([10, 7, 0, 6, 1, "CONDITIONING"])
    next(n for n in data["nodes"] if n["id"] == 7)["outputs"][0]["links"].append(10)
    for mode, positive in ((2, None), (4, ["7", 0]), (0, ["6:1", 0])):
        instance["mode"] = mode
        read = parse_workflow(json.loads(json.dumps(data)), builtin_registry)
        workflow = apply_modes(read, builtin_registry)
        assert workflow.nodes["3"].inputs.get("positive") == positive
        assert ("6:1" in workflow.nodes) == (mode == 0)
        written = export_ui(read, builtin_registry)  # the instance's links stay, whatever it passes
        assert by_id(written["nodes"]) == by_id(data["nodes"]) and written["links"] == data["links"]


def test_legacy_group_node_is_expanded_with_the_instance_values(builtin_registry):
    workflow = load("txt2img_group_node_ui.json", builtin_registry)
    assert workflow.nodes["6:0"].inputs == {"clip": ["4", 1], "text": "a red circle on a white background"}
    assert workflow.nodes["6:1"].inputs == {"clip": ["4", 1], "text": ""}  # not the definition's "old negative"
    assert workflow.nodes["3"].inputs["negative"] == ["6:1", 0] and workflow.notes == []
    data = json.loads((CORPUS / "txt2img_group_node_ui.json").read_text())
    data["nodes"][-1 if data["nodes"][-1]["id"] == 6 else [n["id"] for n in data["nodes"]].index(6)][
        "widgets_values"] = ["only one value"]
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.nodes["6:0"].inputs["text"] == "only one value"  # by position, as ComfyUI does
    assert workflow.nodes["6:1"].inputs["text"] == "old negative"  # the definition's, with a note
    assert [n["node_id"] for n in workflow.notes] == ["6"]


def test_muted_or_bypassed_legacy_group_node(builtin_registry):
    # ComfyUI's frontend of 2025 still runs a muted or bypassed group node's inner nodes (their
    # own modes count, not the group's); muted, its readers still get the inner outputs; bypassed,
    # each reader gets the group's first input of exactly its type (its own position first), else
    # nothing.
    data = json.loads((CORPUS / "txt2img_group_node_ui.json").read_text())
    instance = next(n for n in data["nodes"] if n["id"] == 6)
    instance["mode"] = 2
    graph = ui_to_api(data, builtin_registry)[0]
    assert {"6:0", "6:1"} <= set(graph) and graph["3"]["inputs"]["positive"] == ["6:0", 0]
    instance["mode"] = 4
    graph = ui_to_api(data, builtin_registry)[0]
    assert {"6:0", "6:1"} <= set(graph) and "positive" not in graph["3"]["inputs"]  # no CONDITIONING input
    instance["inputs"][1]["type"] = "CONDITIONING"
    graph = ui_to_api(data, builtin_registry)[0]
    assert graph["3"]["inputs"]["positive"] == ["4", 1] and graph["3"]["inputs"]["negative"] == ["4", 1]


@pytest.mark.parametrize("kind, slots", [("STRING", 1), ("INT", 2), ("COMBO", 3)])
def test_legacy_group_node_primitive_takes_the_widgets_of_its_type(builtin_registry, kind, slots):
    # A Primitive inside a group node is a widget of the group: its value, then for INT and COMBO
    # a control_after_generate, and for COMBO the control's filter list (ComfyUI's group nodes mark
    # the Primitive's input control_after_generate; string widgets take no control). The link's
    # type says which; here a STRING Primitive (typed as each kind) feeds the positive text.
    data = json.loads((CORPUS / "txt2img_group_node_ui.json").read_text())
    definition = data["extra"]["groupNodes"]["Prompts"]
    definition["nodes"][0]["inputs"].append({"name": "text", "type": "STRING", "link": 1, "widget": {"name": "text"}})
    definition["nodes"].append({"type": "PrimitiveNode", "pos": [0, 0], "size": [300, 80], "flags": {}, "order": 0,
                                "mode": 0, "inputs": [], "properties": {"Run widget replace on values": False},
                                "outputs": [{"name": kind, "type": kind, "links": [1], "widget": {"name": "text"}}],
                                "widgets_values": ["old primitive"], "index": 2})
    definition["links"].append([2, 0, 0, 1, 2, kind])
    instance = next(n for n in data["nodes"] if n["id"] == 6)
    instance["widgets_values"] = ["the negative", "the positive", "fixed", ""][:1 + slots]
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.nodes["6:0"].inputs["text"] == "the positive" and workflow.nodes["6:1"].inputs["text"] == "the negative"
    assert workflow.notes == []


def test_legacy_group_node_values_of_converted_widgets_come_last(builtin_registry):
    # An inner widget converted to an input (not fed inside the group) is a widget of the group
    # node after all the others, as ComfyUI's group nodes lay them out.
    data = json.loads((CORPUS / "txt2img_group_node_ui.json").read_text())
    definition = data["extra"]["groupNodes"]["Prompts"]
    definition["nodes"][0]["inputs"].append({"name": "text", "type": "STRING", "link": None, "widget": {"name": "text"}})
    instance = next(n for n in data["nodes"] if n["id"] == 6)
    instance["inputs"].append({"name": "text", "type": "STRING", "link": None, "widget": {"name": "text"}})
    instance["widgets_values"] = ["the negative", "the positive"]
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.nodes["6:0"].inputs["text"] == "the positive" and workflow.nodes["6:1"].inputs["text"] == "the negative"
    assert workflow.notes == []


def test_widget_order_includes_control_after_generate_and_upload_values(builtin_registry):
    ksa = [i["name"] for i in comfy_catalogue()["KSamplerAdvanced"]["inputs"] if i.get("widget")]
    assert ksa == ["add_noise", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "start_at_step",
                   "end_at_step", "return_with_leftover_noise"]
    ui = {"nodes": [{"id": 1, "type": "KSamplerAdvanced", "mode": 0, "inputs": [], "outputs": [],
                     "widgets_values": ["disable", 0, "fixed", 25, 8, "euler", "normal", 20, 10000, "disable"]},
                    {"id": 2, "type": "LoadImage", "mode": 0, "inputs": [], "outputs": [],
                     "widgets_values": ["red-circle-on-blue.png", "image"]}], "links": []}
    workflow = import_ui(ui, builtin_registry)
    assert workflow.nodes["1"].inputs == {"add_noise": "disable", "noise_seed": 0, "steps": 25, "cfg": 8,
                                          "sampler_name": "euler", "scheduler": "normal", "start_at_step": 20,
                                          "end_at_step": 10000, "return_with_leftover_noise": "disable"}
    assert workflow.nodes["2"].inputs == {"image": "red-circle-on-blue.png"}


def test_old_saves_control_toggles_sampler_prefixes_and_renamed_classes(builtin_registry):
    # Saves from before March 2023 hold a true/false toggle after the seed: ComfyUI's editor reads
    # the slot all the same (true as "randomize", false as "fixed"), strips KSampler's old
    # "sample_" sampler names and renames T2IAdapterLoader (and two misspelt classes) on loading.
    values = [5, True, 20, 8, "sample_euler_ancestral", "normal", 1]
    ui = {"nodes": [{"id": 1, "type": "KSampler", "mode": 0, "inputs": [], "outputs": [], "widgets_values": values},
                    {"id": 2, "type": "T2IAdapterLoader", "mode": 0, "inputs": [], "outputs": [],
                     "widgets_values": ["t2iadapter_canny.pth"]},
                    {"id": 3, "type": "KSampler", "mode": 0, "inputs": [], "outputs": [],
                     "widgets_values": [5, 20, 8, "euler", "normal", 1]}], "links": []}
    graph, kept, _ = ui_to_api(ui, builtin_registry)
    assert graph["1"]["inputs"] == {"seed": 5, "steps": 20, "cfg": 8, "sampler_name": "euler_ancestral",
                                    "scheduler": "normal", "denoise": 1}
    assert kept["1"]["controls"] == {"seed": "randomize"}
    assert graph["2"] == {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "t2iadapter_canny.pth"}}
    # A save without the control value (the editor would shift the rest by one) is read unshifted.
    assert graph["3"]["inputs"] == graph["1"]["inputs"] | {"sampler_name": "euler"}
    values[1] = False
    assert ui_to_api(ui, builtin_registry)[1]["1"]["controls"] == {"seed": "fixed"}
    # The prefix is gone wherever the values are read: a %KSampler.sampler_name% file name too.
    ui["nodes"].append({"id": 4, "type": "SaveImage", "mode": 0, "inputs": [], "outputs": [],
                        "widgets_values": ["%KSampler.sampler_name%"]})
    assert ui_to_api(ui, builtin_registry)[0]["4"]["inputs"]["filename_prefix"] == "euler_ancestral"


def test_widgets_without_a_saved_value_keep_their_defaults(builtin_registry):
    # The editor fills widgets by position and stops where widgets_values ends: the rest keep
    # their defaults and are queued with them (not combos', which depend on the machine's files).
    ui = {"nodes": [{"id": 1, "type": "KSampler", "mode": 0, "inputs": [], "outputs": [],
                     "widgets_values": [5, "fixed", 30]},
                    {"id": 2, "type": "EmptyLatentImage", "mode": 0, "inputs": [], "outputs": [],
                     "widgets_values": [64, 64, 1, "one too many"]}], "links": []}
    graph = ui_to_api(ui, builtin_registry)[0]
    assert graph["1"]["inputs"] == {"seed": 5, "steps": 30, "cfg": 8.0, "denoise": 1.0}
    assert graph["2"]["inputs"] == {"width": 64, "height": 64, "batch_size": 1}


def test_upload_value_comes_after_the_required_widgets(builtin_registry):
    # ComfyUI's editor adds its upload button after the class's required inputs: LoadImageMask
    # saves [image, channel, "image"], and writes it back so.
    ui = {"nodes": [{"id": 1, "type": "LoadImageMask", "mode": 0, "inputs": [], "outputs": [],
                     "widgets_values": ["m.png", "red", "image"]}], "links": []}
    workflow = import_ui(ui, builtin_registry)
    assert workflow.nodes["1"].inputs == {"image": "m.png", "channel": "red"}
    assert export_ui(workflow, builtin_registry)["nodes"][0]["widgets_values"] == ["m.png", "red", "image"]


def test_save_filename_prefix_patterns_are_filled_in_as_the_editor_queues_them(builtin_registry):
    # ComfyUI's editor fills %date:FORMAT% and %Node.widget% (by "Node name for S&R", else title)
    # into a save node's filename_prefix when it queues; unknown patterns stay.
    from datetime import datetime
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    save = next(n for n in data["nodes"] if n["type"] == "SaveImage")
    next(n for n in data["nodes"] if n["type"] == "EmptyLatentImage")["title"] = "Size/Batch"
    pattern = "%date:yyyy-MM-dd_hh-m-s%/%date:yy%_%KSampler.seed%_%Size/Batch.width%_%KSampler.cfg%_%Nope.x%_%width%" \
        "_%date:hh.mm%"  # a dot makes it a node's widget, as in ComfyUI
    save["widgets_values"] = [pattern]
    graph = ui_to_api(data, builtin_registry, now=datetime(2025, 3, 7, 9, 5, 1))[0]
    assert graph[str(save["id"])]["inputs"]["filename_prefix"] == \
        "2025-03-07_09-5-1/25_42_64_5_%Nope.x%_%width%_%date:hh.mm%"
    workflow = import_ui(json.loads(json.dumps(data)), builtin_registry)
    assert "%" not in workflow.nodes[str(save["id"])].inputs["filename_prefix"].split("_%Nope")[0]
    assert by_id(export_ui(workflow, builtin_registry)["nodes"])[save["id"]]["widgets_values"] == [pattern]


def test_primitive_sets_widgets_only(builtin_registry):
    # The editor lets a Primitive link to a socket-only input of a widget type (SaveLoRANode's
    # forceInput "steps"), but it copies its value into widgets only, and resolving the link to it
    # finds nothing: the input is left out. KSampler's steps, a widget, gets the value.
    primitive = {"id": 1, "type": "PrimitiveNode", "mode": 0, "inputs": [], "widgets_values": [12, "fixed"],
                 "outputs": [{"name": "INT", "type": "INT", "links": [1, 2], "widget": {"name": "steps"}}]}
    ui = {"nodes": [primitive,
                    {"id": 2, "type": "SaveLoRANode", "mode": 0, "outputs": [], "widgets_values": ["loras/x"],
                     "inputs": [{"name": "steps", "type": "INT", "link": 1}]},
                    {"id": 3, "type": "KSampler", "mode": 0, "outputs": [], "widgets_values": [5, "fixed", 20, 8,
                                                                                          "euler", "normal", 1],
                     "inputs": [{"name": "steps", "type": "INT", "link": 2, "widget": {"name": "steps"}}]}],
          "links": [[1, 1, 0, 2, 0, "INT"], [2, 1, 0, 3, 0, "INT"]]}
    graph = ui_to_api(ui, builtin_registry)[0]
    assert "steps" not in graph["2"]["inputs"] and graph["3"]["inputs"]["steps"] == 12


def test_primitive_with_widget_replace_fills_in_patterns(builtin_registry):
    # A Primitive whose "Run widget replace on values" property is set has its text filled in by
    # the editor (the same %date:...% / %Node.widget% replacement as a save node's prefix) before
    # it is copied into the widgets it feeds; unset, the text goes as it is.
    from datetime import datetime
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    encode = next(n for n in data["nodes"] if n["type"] == "CLIPTextEncode" and n["widgets_values"][0])
    encode["inputs"].append({"name": "text", "type": "STRING", "link": 40, "widget": {"name": "text"}})
    data["nodes"].append({"id": 40, "type": "PrimitiveNode", "pos": [0, 0], "size": [300, 80], "flags": {},
                          "order": 0, "mode": 0, "inputs": [], "properties": {"Run widget replace on values": True},
                          "outputs": [{"name": "STRING", "type": "STRING", "links": [40], "widget": {"name": "text"}}],
                          "widgets_values": ["seed %KSampler.seed% on %date:yyyy-MM-dd%"]})
    data["links"].append([40, 40, 0, encode["id"], len(encode["inputs"]) - 1, "STRING"])
    graph = ui_to_api(data, builtin_registry, now=datetime(2025, 3, 7, 9, 5, 1))[0]
    assert graph[str(encode["id"])]["inputs"]["text"] == "seed 42 on 2025-03-07"
    data["nodes"][-1]["properties"]["Run widget replace on values"] = False
    assert ui_to_api(data, builtin_registry)[0][str(encode["id"])]["inputs"]["text"] == \
        "seed %KSampler.seed% on %date:yyyy-MM-dd%"


def test_prompt_widgets_resolve_comments_and_choices_as_the_editor_queues_them(builtin_registry):
    # CLIPTextEncode's text is a dynamicPrompts widget: ComfyUI's editor drops // and /* */
    # comments and picks one option of each {a|b} when it queues; \{ \} become plain braces.
    import random
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    encode = next(n for n in data["nodes"] if n["type"] == "CLIPTextEncode" and n["widgets_values"][0])
    text = "a photo // not this\nof a {red|red} /* nor\nthis */circle \\{x\\} \\(y\\) {cat|{dog|dog}}"
    encode["widgets_values"] = [text]
    rng = random.Random(0)
    rng.random()  # {red|red} draws first
    expected_animal = ["cat", "dog"][int(rng.random() * 2)]
    graph = ui_to_api(data, builtin_registry, rng=random.Random(0))[0]
    assert graph[str(encode["id"])]["inputs"]["text"] == \
        "a photo \nof a red circle {x} \\(y\\) " + expected_animal
    workflow = import_ui(json.loads(json.dumps(data)), builtin_registry)
    assert "//" not in workflow.nodes[str(encode["id"])].inputs["text"]
    assert by_id(export_ui(workflow, builtin_registry)["nodes"])[encode["id"]]["widgets_values"] == [text]


def test_editing_after_import_is_written_back(builtin_registry):
    workflow = load("txt2img_tricks_ui.json", builtin_registry)
    workflow.nodes["3"].inputs["seed"] = 7  # no longer the Primitive's value
    workflow.nodes["3"].inputs["positive"] = ["7", 0]  # both prompts from the negative encoder
    workflow.ui["nodes"]["5"]["pos"] = [10, 20]
    written = export_ui(workflow, builtin_registry)
    nodes = by_id(written["nodes"])
    assert nodes[3]["widgets_values"][:2] == [7, "fixed"]
    assert [i["link"] for i in nodes[3]["inputs"] if i["name"] == "seed"] == [None]  # the primitive's link is gone
    assert not any(link[1] == 12 for link in written["links"])
    positive = nodes[3]["inputs"][1]
    assert positive["name"] == "positive"
    assert next(link for link in written["links"] if link[0] == positive["link"])[1:5] == [7, 0, 3, 1]
    assert sorted(nodes[7]["outputs"][0]["links"]) == sorted([6, positive["link"]])
    assert nodes[6]["outputs"][0]["links"] == []  # ComfyUI's way of saying nothing is connected
    assert nodes[5]["pos"] == [10, 20]
    assert written["last_link_id"] == positive["link"] == 15
    # What ComfyUI would queue from the written graph is what we now have.
    assert parse_workflow(written, builtin_registry).to_json()["nodes"] == workflow.to_json()["nodes"]


def test_damaged_comfyui_block_still_writes_the_graph(builtin_registry):
    workflow = load("txt2img_tricks_ui.json", builtin_registry)
    workflow.ui["comfyui"]["workflow"]["nodes"] = [{"id": [1, 2]}, "junk"]
    written = export_ui(workflow, builtin_registry)
    assert parse_workflow(written, builtin_registry).to_json()["nodes"] == workflow.to_json()["nodes"]
    assert by_id(written["nodes"])[3]["pos"] == [863, 186]  # the layout still comes from ui.nodes


def test_ours_to_ui_to_ours_keeps_the_graph(builtin_registry):
    shipped = Path(__file__).parent.parent / "workflows"
    for path in sorted(shipped.glob("*.json")):
        ours = load_workflow(path, builtin_registry)
        ui = export_ui(ours, builtin_registry)
        back = parse_workflow(json.loads(json.dumps(ui)), builtin_registry)
        again = parse_workflow(json.loads(json.dumps(export_api(ours, builtin_registry))), builtin_registry)
        for other in (back, again):
            assert set(other.nodes) == set(ours.nodes), path.name
            for node_id, node in ours.nodes.items():
                got = other.nodes[node_id]
                assert got.type == node.type, (path.name, node_id)
                for name, value in node.inputs.items():
                    if isinstance(value, list) and isinstance(value[1], str):  # a link by output name
                        cls = builtin_registry.get(ours.nodes[value[0]].type)
                        value = [value[0], [o.name for o in cls.output_specs].index(value[1])]
                    assert got.inputs.get(name) == value, (path.name, node_id, name)
        positions = [tuple(n["pos"]) for n in ui["nodes"]]
        assert len(set(positions)) == len(positions)  # laid out, not stacked, when ours had no positions
        if "nodes" in ours.ui:
            assert back.ui["nodes"]["1"]["pos"] == ours.ui["nodes"]["1"]["pos"]


def _add_sizes(registry) -> None:
    """A node with three outputs answering three pack classes: all of them, the first two, the third."""
    import toy_nodes
    from graphflow.api import ComfyAlias, Int, Node

    class Sizes(Node):
        value: int = Int(1)
        outputs = {"WIDTH": toy_nodes.NUMBER, "HEIGHT": toy_nodes.NUMBER, "AREA": toy_nodes.NUMBER}
        comfy = (ComfyAlias(("All sizes",)), ComfyAlias(("Two sizes",), outputs=(0, 1)),
                 ComfyAlias(("Area only",), outputs=(2,)))

        def run(self):
            return self.value, self.value, self.value ** 2

    registry.add(Sizes)


def test_a_ui_node_written_afresh_has_the_outputs_its_alias_exposes(toy_registry):
    """A pack class answered by one of our nodes with more outputs (ComfyAlias.outputs) gets
    only its own outputs on the UI node, as ComfyUI's editor would make it."""
    _add_sizes(toy_registry)
    prompt = {str(i): {"class_type": name, "inputs": {"value": 3}}
              for i, name in enumerate(("All sizes", "Two sizes", "Area only"), 1)}
    ui = export_ui(parse_workflow(prompt, toy_registry), toy_registry)
    assert {n["type"]: [o["name"] for o in n["outputs"]] for n in ui["nodes"]} == \
        {"All sizes": ["WIDTH", "HEIGHT", "AREA"], "Two sizes": ["WIDTH", "HEIGHT"], "Area only": ["AREA"]}


def test_links_from_an_alias_with_some_outputs_use_its_slots(toy_registry):
    """A link from "Area only" (our AREA, output 2, its only one) is written from its slot 0, and
    one from "Two sizes"' HEIGHT (ours 1) from slot 1: in the API graph, in the UI links and in
    each UI output's links; read back, the same workflow runs."""
    _add_sizes(toy_registry)
    prompt = {"1": {"class_type": "Area only", "inputs": {"value": 3}},
              "2": {"class_type": "Two sizes", "inputs": {"value": 5}},
              "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 1]}}}
    workflow = parse_workflow(prompt, toy_registry)
    assert workflow.nodes["3"].inputs == {"a": ["1", 2], "b": ["2", 1]}  # our output indexes
    assert export_api(workflow, toy_registry)["3"]["inputs"] == prompt["3"]["inputs"]
    ui = export_ui(workflow, toy_registry)
    nodes = {n["id"]: n for n in ui["nodes"]}
    links = {(link[1], link[2], link[3], link[4]): link[0] for link in ui["links"]}
    assert set(links) == {(1, 0, 3, 0), (2, 1, 3, 1)}
    assert nodes[1]["outputs"][0]["links"] == [links[(1, 0, 3, 0)]]
    assert [o["links"] for o in nodes[2]["outputs"]] == [[], [links[(2, 1, 3, 1)]]]
    back = import_ui(ui, toy_registry)
    assert back.nodes["3"].inputs == workflow.nodes["3"].inputs
    result = Executor(toy_registry).run(back, outputs=["3"])
    assert result.ok, (result.problems, result.error)
    assert result.values["3"][0] == 3 ** 2 + 5


# --- API format -------------------------------------------------------------------------------


def test_api_inputs_comfyui_ignores_are_notes_not_errors(builtin_registry):
    graph = json.loads((CORPUS / "inpaint_api.json").read_text())
    graph["8"]["inputs"]["not_an_input"] = 3
    workflow = parse_workflow(graph, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    assert {(n["node_id"], n["input"]) for n in workflow.notes} == {("4", "upload"), ("8", "not_an_input")}
    assert "image" in workflow.nodes["4"].inputs and "upload" not in workflow.nodes["4"].inputs
    graph["9"]["inputs"]["noise_mode"] = "per_image"  # ComfyUI lacks it, graphflow's KSampler has it
    assert parse_workflow(graph, builtin_registry).nodes["9"].inputs["noise_mode"] == "per_image"


def test_unknown_classes_say_whether_core_or_which_custom_pack(builtin_registry):
    graph = json.loads((CORPUS / "txt2img_api.json").read_text())
    graph["20"] = {"class_type": "FaceDetailer", "inputs": {"image": ["8", 0]}}
    graph["21"] = {"class_type": "EmptyAceStepLatentAudio", "inputs": {}}
    graph["22"] = {"class_type": "MyOwnThing", "inputs": {}}
    problems = {p.node_id: p.message for p in validate(parse_workflow(graph, builtin_registry), builtin_registry)}
    assert "custom node from ComfyUI Impact Pack, not one of graphflow's nodes" in problems["20"]
    assert "ComfyUI core node that graphflow does not support yet" in problems["21"]
    assert problems["22"].startswith("unknown node type 'MyOwnThing'")
    assert custom_pack("ShowText|pysssss") == "ComfyUI-Custom-Scripts (pysssss)"
    assert custom_pack("Power Lora Loader (rgthree)") == "rgthree-comfy"
    assert custom_pack("KSampler") is None and unknown_type_hint("KSampler2000") == ""
    assert [c for c in comfy_catalogue() if custom_pack(c)] == []  # no core class taken for a pack's


def test_a_packs_marker_suffix_beats_another_packs_prefix_whatever_their_order(monkeypatch):
    # WAS claims "Text Concatenate..." and "Image Resize..." by prefix; an unknown class carrying another
    # pack's marker is that pack's, whether that pack is listed before WAS or after it.
    from graphflow import comfy_format

    marked = {"Text Concatenate Lines (JPS)": "ComfyUI_JPS-Nodes", "Image Resize To Fit (mtb)": "comfy_mtb"}
    for order in (list(comfy_format.CUSTOM_PACKS), list(reversed(comfy_format.CUSTOM_PACKS))):
        monkeypatch.setattr(comfy_format, "CUSTOM_PACKS", {p: comfy_format.CUSTOM_PACKS[p] for p in order})
        comfy_format._pack_names.cache_clear()
        try:
            assert {name: custom_pack(name) for name in marked} == marked
            assert custom_pack("Text Concatenate Lines") == "WAS Node Suite"  # no marker: the prefix
            assert custom_pack("LayerMask: SegmentAnythingUltra") == "ComfyUI_LayerStyle_Advance"  # whole name
        finally:
            comfy_format._pack_names.cache_clear()


def test_a_pack_nodes_own_graphflow_name_does_not_claim_another_packs_class(builtin_registry):
    # Our SimpleMath answers to essentials' "SimpleMath+" only and ImageOverlay to Efficiency's
    # "Image Overlay": a class literally named "SimpleMath" is some other pack's node, read as
    # unknown (never run as ours) and written back as it was; a class named "ImageOverlay" is Mikey
    # Nodes' (MikeyImageOverlay), never graphflow's own ImageOverlay.
    graph = json.loads((CORPUS / "txt2img_api.json").read_text())
    graph["20"] = {"class_type": "SimpleMath", "inputs": {"value": "a*2", "a": ["8", 0]}}
    graph["21"] = {"class_type": "Image Overlay", "inputs": {"base_image": ["8", 0], "overlay_image": ["8", 0]}}
    graph["22"] = {"class_type": "LatentStats", "inputs": {"latent": ["3", 0]}}  # graphflow's own, no ComfyUI class
    graph["23"] = {"class_type": "ImageOverlay", "inputs": {"background_image": ["8", 0], "foreground_image": ["8", 0],
                                                           "opacity": 0.5}}
    workflow = parse_workflow(graph, builtin_registry)
    assert workflow.nodes["20"].type != "SimpleMath" and workflow.nodes["21"].type == "ImageOverlay"
    assert workflow.nodes["22"].type == "LatentStats" and workflow.nodes["23"].type == "MikeyImageOverlay"
    problems = {p.node_id: p.message for p in validate(workflow, builtin_registry)}
    assert set(problems) == {"20"}
    assert "'SimpleMath' is a ComfyUI class graphflow does not know" in problems["20"]
    assert "graphflow's own SimpleMath node is a different node" in problems["20"]
    written = export_api(workflow, builtin_registry)
    assert written["20"] == graph["20"] and written["21"]["class_type"] == "Image Overlay"
    assert written["22"]["class_type"] == "LatentStats" and written["23"] == graph["23"]

    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    data["nodes"].append({"id": 20, "type": "SimpleMath", "pos": [5, 5], "size": [300, 100], "flags": {},
                          "order": 9, "mode": 0, "inputs": [],
                          "outputs": [{"name": "INT", "type": "INT", "links": None}],
                          "properties": {}, "widgets_values": ["a*2", 7]})
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.nodes["20"].type != "SimpleMath"
    assert [p.node_id for p in validate(workflow, builtin_registry)] == ["20"]
    assert by_id(export_ui(workflow, builtin_registry)["nodes"])[20] == data["nodes"][-1]


def test_an_old_comfyui_input_name_is_read_and_the_current_one_written_back(builtin_registry):
    from graphflow.workflow import ComfyAlias

    # wherever the current name (the same as ours) is listed, it is the one written back
    for inputs in ({"old": "new", "new": "new"}, {"new": "new", "old": "new"}):
        assert ComfyAlias(("X",), inputs=inputs).written_names() == {"new": "new"}
    assert ComfyAlias(("X",), inputs={"theirs": "ours"}).written_names() == {"ours": "theirs"}
    graph = {"1": {"class_type": "TimestepKeyframe", "inputs": {"start_percent": 0.2}},
             "2": {"class_type": "TimestepKeyframe",
                   "inputs": {"start_percent": 0.5, "prev_timestep_keyframe": ["1", 0]}}}
    workflow = parse_workflow(graph, builtin_registry)
    assert workflow.nodes["2"].inputs["prev_timestep_kf"] == ["1", 0]
    written = export_api(workflow, builtin_registry)["2"]["inputs"]
    assert written["prev_timestep_kf"] == ["1", 0] and "prev_timestep_keyframe" not in written


def test_a_modules_private_base_class_is_not_a_node(builtin_registry):
    from nodes import pack_nodes_was_image

    assert "_Morphology" not in builtin_registry
    assert {"WasMaskDilateRegion", "WasMaskErodeRegion"} <= {c.node_type for c in builtin_registry}
    assert all(issubclass(builtin_registry.get(n), pack_nodes_was_image._Morphology)
               for n in ("WasMaskDilateRegion", "WasMaskErodeRegion"))


def test_unknown_custom_node_in_ui_format_is_noted_and_kept_on_writing(builtin_registry):
    data = json.loads((CORPUS / "txt2img_ui.json").read_text())
    # WAS's MiDaS Depth Approximation (it downloads its model at run time): a custom class graphflow doesn't have
    data["nodes"].append({"id": 20, "type": "MiDaS Depth Approximation", "pos": [5, 5], "size": [300, 100],
                          "flags": {}, "order": 9, "mode": 0,
                          "inputs": [{"name": "image", "type": "IMAGE", "link": 10}],
                          "outputs": [{"name": "images", "type": "IMAGE", "links": None}],
                          "properties": {}, "widgets_values": ["false", "DPT_Large", "false"]})
    data["links"].append([10, 8, 0, 20, 0, "IMAGE"])
    data["nodes"][4]["outputs"][0]["links"].append(10)  # VAEDecode's IMAGE also feeds it
    workflow = parse_workflow(data, builtin_registry)
    assert workflow.nodes["20"].inputs == {"image": ["8", 0]}
    assert any(n["node_id"] == "20" and "can't be named" in n["message"] for n in workflow.notes)
    problems = validate(workflow, builtin_registry)
    assert [p.node_id for p in problems] == ["20"] and "WAS Node Suite" in problems[0].message
    assert "torch.hub" in problems[0].message  # why it is left out
    written = export_ui(workflow, builtin_registry)
    assert by_id(written["nodes"])[20] == data["nodes"][-1]
    assert written["links"] == data["links"]


def test_missing_model_fails_validation_naming_only_that_file(builtin_registry, tmp_folders):
    problems = validate(load("missing_model_api.json", builtin_registry), builtin_registry)
    assert len(problems) == 1
    assert problems[0].node_id == "4" and "sd_xl_base_1.0.safetensors" in problems[0].message


# --- running ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RUNNABLE)
def test_corpus_runs_on_the_demo_model(name, builtin_registry, executor, tmp_folders):
    workflow = load(name, builtin_registry)
    result = executor.run(workflow)
    assert result.ok, result.error or result.problems
    images = images_of(workflow, result)
    assert images and all(torch.isfinite(i).all() and i.std() > 0.01 for i in images.values())
    if name == "hires_fix_ui.json":
        assert images["11"].shape[1:3] == (128, 128) and images["7"].shape[1:3] == (64, 64)
    if name == "area_composition_ui.json":
        assert images["7"].shape[1:3] == (64, 128)
    if name == "outpaint_api.json":
        assert images["8"].shape[1:3] == (64, 96)
    if name == "noisy_latent_composition_api.json":
        assert images["8"].shape[1:3] == (64, 128)
    saved = list(tmp_folders.outputs.rglob("*.png"))
    assert saved


def test_inpaint_workflow_on_an_inpainting_checkpoint(builtin_registry, executor, tmp_folders):
    """The same ComfyUI inpaint graph on a (tiny, random) 9-channel inpainting model."""
    from graphflow.testing import write_checkpoint

    checkpoints = tmp_folders.models / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_checkpoint(checkpoints / "tiny-inpainting.safetensors", "sd1_inpaint")
    graph = json.loads((CORPUS / "inpaint_api.json").read_text())
    graph["1"]["inputs"]["ckpt_name"] = "tiny-inpainting.safetensors"
    workflow = parse_workflow(graph, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    result = executor.run(workflow)
    assert result.ok, result.error
    image = result.values["10"][0]
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(image).all()


def test_api_graph_and_the_same_graph_in_ui_format_give_the_same_images(builtin_registry, executor, tmp_folders):
    api = load("txt2img_api.json", builtin_registry)
    reference = executor.run(api)
    assert reference.ok
    for name in ("txt2img_ui.json", "txt2img_tricks_ui.json"):
        ui = load(name, builtin_registry)
        result = Executor(builtin_registry).run(ui)
        assert result.ok
        assert torch.equal(result.values["8"][0], reference.values["8"][0]), name
    for name in ("txt2img_subgraph_ui.json", "txt2img_group_node_ui.json"):
        nested = Executor(builtin_registry).run(load(name, builtin_registry))
        assert torch.equal(nested.values["8"][0], reference.values["8"][0]), name


# --- pictures ---------------------------------------------------------------------------------


def png_with(chunks: dict) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, text in chunks.items():
        info.add_text(key, text)
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def test_comfyui_png_opens_its_editor_graph_else_its_prompt(builtin_registry, tmp_path, tmp_folders, capsys):
    ui_text = (CORPUS / "txt2img_tricks_ui.json").read_text()
    api_text = (CORPUS / "txt2img_api.json").read_text()
    both = tmp_path / "ComfyUI_00001_.png"
    both.write_bytes(png_with({"prompt": json.dumps(json.loads(api_text)), "workflow": ui_text}))
    workflow = load_workflow(both, builtin_registry)
    assert workflow.ui["imported_from"] == "comfyui-ui" and workflow.ui["nodes"]["3"]["pos"] == [863, 186]
    only_prompt = tmp_path / "prompt.png"
    only_prompt.write_bytes(png_with({"prompt": api_text}))
    workflow = load_workflow(only_prompt, builtin_registry)
    assert workflow.ui["imported_from"] == "comfyui-api"
    assert workflow.to_json()["nodes"] == load("txt2img_api.json", builtin_registry).to_json()["nodes"]
    assert main(["validate", str(both)]) == 0
    assert "valid (9 nodes)" in capsys.readouterr().out  # the muted and bypassed ones kept
    assert main(["run", str(both), "--quiet", "--output-dir", str(tmp_path / "out")]) == 0
    (printed,) = capsys.readouterr().out.split()
    assert Path(printed).is_file() and Path(printed).parent == tmp_path / "out"


def test_comfyui_animated_png_carries_its_graphs_in_comf_chunks(builtin_registry):
    # SaveAnimatedPNG writes "key\0json" chunks of its own type "comf" after the frames (no text
    # chunks); ComfyUI's editor reads them as it reads text chunks: the editor graph first.
    info = PngImagePlugin.PngInfo()
    for key, name in (("prompt", "txt2img_api.json"), ("workflow", "txt2img_ui.json")):
        text = json.dumps(json.loads((CORPUS / name).read_text()))
        info.add(b"comf", key.encode("latin-1") + b"\0" + text.encode("latin-1"), after_idat=True)
    out = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(out, format="PNG", save_all=True, append_images=frames[1:], pnginfo=info)
    assert b"comf" in out.getvalue() and b"tEXt" not in out.getvalue()
    workflow = workflow_from_picture(out.getvalue(), builtin_registry)
    assert workflow.ui["imported_from"] == "comfyui-ui" and "3" in workflow.nodes
    # A PNG cut short, or one whose chunk lengths run past its end, holds no workflow: a clear error.
    with pytest.raises(WorkflowFormatError):
        workflow_from_picture(out.getvalue()[:60] + b"\xff" * 8, builtin_registry)


def test_webp_with_comfyui_exif_strings(builtin_registry):
    exif = Image.Exif()
    exif[0x010F] = "workflow:" + (CORPUS / "txt2img_ui.json").read_text()
    exif[0x0110] = "prompt:" + (CORPUS / "txt2img_api.json").read_text()
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(out, format="WEBP", exif=exif)
    workflow = workflow_from_picture(out.getvalue(), builtin_registry)
    assert workflow.ui["imported_from"] == "comfyui-ui" and "3" in workflow.nodes


def test_our_png_round_trips_through_saveimage(builtin_registry, executor, tmp_folders):
    workflow = load("txt2img_ui.json", builtin_registry)
    assert executor.run(workflow).ok
    (saved,) = tmp_folders.outputs.rglob("*.png")
    again = load_workflow(saved, builtin_registry)
    assert again.to_json()["nodes"] == workflow.to_json()["nodes"]
    assert again.ui["nodes"] == workflow.ui["nodes"]


def test_picture_without_workflow_is_a_clear_error(tmp_path):
    plain = tmp_path / "plain.png"
    plain.write_bytes(png_with({}))
    with pytest.raises(WorkflowFormatError, match="holds no workflow"):
        load_workflow(plain)


A1111 = """masterpiece, a red circle
on a white background
Negative prompt: blurry, lowres
Steps: 4, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234, Size: 64x64, Model hash: 1b2c3d, \
Model: graphflow-demo, Clip skip: 2, Lora hashes: "corner: 0123, other: 4567", Version: v1.9.4"""


def test_a1111_parameters_are_parsed():
    settings = parse_a1111(A1111)
    assert settings["prompt"] == "masterpiece, a red circle\non a white background"
    assert settings["negative"] == "blurry, lowres"
    assert settings["steps"] == "4" and settings["cfg scale"] == "6.5" and settings["seed"] == "1234"
    assert settings["size"] == "64x64" and settings["model"] == "graphflow-demo"
    assert settings["lora hashes"] == "corner: 0123, other: 4567"
    assert a1111_sampler("DPM++ 2M Karras") == ("dpmpp_2m", "karras")
    assert a1111_sampler("Euler a") == ("euler_ancestral", "normal")
    assert a1111_sampler("DPM++ SDE", "Exponential") == ("dpmpp_sde", "exponential")
    assert a1111_sampler("DPM++ 2M SDE Heun Karras") == ("dpmpp_2m_sde_heun", "karras")
    with pytest.raises(WorkflowFormatError, match="no ComfyUI equivalent"):
        a1111_sampler("Made Up")


def test_a1111_parameters_in_webp_user_comment_and_settings_left_out_are_noted(builtin_registry):
    exif = Image.Exif()
    text = A1111.replace("Steps: 4,", "Steps: 4, Denoising strength: 0.4, ADetailer model: face_yolov8n.pt,")
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + text.encode("utf-16-be")
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(out, format="WEBP", exif=exif)
    workflow = workflow_from_picture(out.getvalue(), builtin_registry)
    sampler = next(n for n in workflow.nodes.values() if n.type == "KSampler")
    assert sampler.inputs["sampler_name"] == "dpmpp_2m" and sampler.inputs["scheduler"] == "karras"
    assert [n["message"] for n in workflow.notes] == [
        "A1111 settings not turned into nodes: adetailer model",
        "A1111 Lora hashes (to check the LoRA files by): corner: 0123, other: 4567",
        "A1111 denoising strength without hires fix (an img2img picture?): opened as txt2img"]


def test_a1111_png_opens_as_a_txt2img_graph_and_runs(builtin_registry, executor, tmp_folders):
    text = A1111.replace("DPM++ 2M Karras", "Euler")
    workflow = workflow_from_picture(png_with({"parameters": text}), builtin_registry)
    assert validate(workflow, builtin_registry) == []
    kinds = {node.type: node.inputs for node in workflow.nodes.values()}
    assert kinds["LoadCheckpoint"]["checkpoint"] == "graphflow-demo.safetensors"
    assert kinds["KSampler"]["seed"] == 1234 and kinds["KSampler"]["cfg"] == 6.5
    assert kinds["KSampler"]["steps"] == 4 and kinds["KSampler"]["sampler_name"] == "euler"
    assert kinds["EmptyLatent"] == {"width": 64, "height": 64, "batch_size": 1}
    assert kinds["CLIPSetLastLayer"]["stop_at_clip_layer"] == -2
    assert sorted(i["text"] for t, i in ((n.type, n.inputs) for n in workflow.nodes.values()) if t == "CLIPEncode") \
        == ["blurry, lowres", "masterpiece, a red circle\non a white background"]
    assert executor.run(workflow).ok


# Realistic A1111 / Forge parameters: LoRA tags, hires fix with a latent or a model upscaler, refiner.
A1111_HIRES = """masterpiece, a red circle <lora:graphflow-demo-corner:0.8>, <lyco:graphflow-demo-corner:0.5:0.25>
Negative prompt: blurry, <lora:graphflow-demo-corner:1>
Steps: 4, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 64x64, Model hash: 1b2c3d4e5f, \
Model: graphflow-demo, Denoising strength: 0.5, Clip skip: 2, Hires upscale: 2, Hires steps: 3, \
Hires upscaler: Latent (nearest-exact), Lora hashes: "graphflow-demo-corner: 0123abcd4567", Version: v1.9.4"""

FORGE_HIRES = """a red circle on blue, <lora:graphflow-demo-corner>
Negative prompt: lowres
Steps: 4, Sampler: Euler a, Schedule type: Automatic, CFG scale: 5, Distilled CFG Scale: 3.5, Seed: 77, Size: 64x48, \
Model hash: 7a8b9c0d1e, Model: graphflow-demo, Denoising strength: 0.45, Hires Module 1: Use same choices, \
Hires CFG Scale: 4, Hires upscale: 1.5, Hires steps: 0, Hires upscaler: graphflow-demo-2x, Module 1: ae, \
Beta schedule alpha: 0.6, Beta schedule beta: 0.6, \
Hires prompt: "a red circle, sharp <lora:graphflow-demo-corner:0.3>", Hires sampler: DPM++ 2M, \
Hires schedule type: Karras, Diffusion in Low Bits: Automatic (fp16 LoRA), \
Version: f2.0.1v1.10.1-previous-519-g44eb4ea8"""

A1111_REFINER = """a photo of a cat, <hypernet:style:0.7>
Negative prompt: 
Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 5, Size: 64x64, Model hash: 31e35c80fc, \
Model: graphflow-demo, Refiner: demo-refiner [9f8e7d6c5b], Refiner switch at: 0.8, \
Refiner switch by sampling steps: True, Version: v1.10.1"""


def a1111_workflow(text, registry):
    workflow = workflow_from_picture(png_with({"parameters": text}), registry)
    nodes = workflow.nodes

    def of(kind):
        return [n for n in nodes.values() if n.type == kind]

    def linked(node, name):
        return nodes[node.inputs[name][0]]

    return workflow, of, linked


def test_a1111_and_forge_parameters_with_hires_refiner_and_tags_are_parsed():
    a = parse_a1111(A1111_HIRES)
    assert a["hires upscaler"] == "Latent (nearest-exact)" and a["hires steps"] == "3" and a["hires upscale"] == "2"
    assert a["denoising strength"] == "0.5" and a["lora hashes"] == "graphflow-demo-corner: 0123abcd4567"
    assert a["negative"] == "blurry, <lora:graphflow-demo-corner:1>" and a["version"] == "v1.9.4"
    f = parse_a1111(FORGE_HIRES)
    assert f["hires prompt"] == "a red circle, sharp <lora:graphflow-demo-corner:0.3>"
    assert f["hires cfg scale"] == "4" and f["distilled cfg scale"] == "3.5"
    assert f["hires module 1"] == "Use same choices"
    assert f["diffusion in low bits"] == "Automatic (fp16 LoRA)" and f["hires upscaler"] == "graphflow-demo-2x"
    assert f["hires schedule type"] == "Karras" and f["version"] == "f2.0.1v1.10.1-previous-519-g44eb4ea8"
    r = parse_a1111(A1111_REFINER)
    assert r["refiner"] == "demo-refiner [9f8e7d6c5b]" and r["refiner switch at"] == "0.8" and r["negative"] == ""
    # A1111 cuts every <kind:args> tag out and encodes what is left, spaces and commas included
    assert a1111_extra_networks("a <lora:x:0.5>, b <lyco:y:1:0.2> <hypernet:h>") == (
        "a , b  ", [("lora", ["x", "0.5"]), ("lyco", ["y", "1", "0.2"]), ("hypernet", ["h"])])


def test_a1111_hires_size_follows_its_rounding_and_resize_rules(builtin_registry):
    assert a1111_hires_size(512, 768, {"hires upscale": "1.5"}) == (768, 1152, 0, 0)
    assert a1111_hires_size(100, 100, {"hires upscale": "1.15"}) == (114, 114, 0, 0)  # int(114.99999999999999)
    assert a1111_hires_size(512, 768, {}) == (1024, 1536, 0, 0)  # A1111's default scale: 2
    assert a1111_hires_size(512, 768, {"hires upscale": "2", "hires resize": "1000x0"}) == (1000, 1500, 0, 0)
    assert a1111_hires_size(512, 768, {"hires resize": "0x1000"}) == (666, 1000, 0, 0)
    # both sides: upscale to cover them, then cut the excess latent rows/columns, half on each side
    assert a1111_hires_size(512, 768, {"hires resize": "1024x1024"}) == (1024, 1536, 0, 64)
    assert a1111_hires_size(768, 512, {"hires resize": "1000x1000"}) == (1500, 1000, 62, 0)
    with pytest.raises(WorkflowFormatError, match="hires resize 'big' is not WIDTHxHEIGHT"):
        a1111_hires_size(512, 512, {"hires resize": "big"})
    text = A1111.replace("Size: 64x64,", "Size: 64x96, Hires resize: 128x128, Hires upscaler: Latent (bicubic),")
    notes = []
    workflow = parse_workflow(a1111_graph(parse_a1111(text), notes), builtin_registry)
    assert validate(workflow, builtin_registry) == []
    (crop,) = [n for n in workflow.nodes.values() if n.type == "LatentCrop"]
    upscale = workflow.nodes[crop.inputs["samples"][0]]
    assert upscale.type == "LatentUpscale" and upscale.inputs["upscale_method"] == "bicubic"
    assert (upscale.inputs["width"], upscale.inputs["height"]) == (128, 192)
    # 24 latent rows, (192 - 128) // 8 = 8 cut: 4 from the top, 4 from the bottom
    assert {k: crop.inputs[k] for k in ("width", "height", "x", "y")} == {"width": 128, "height": 128, "x": 0, "y": 32}
    assert notes == ["A1111 Lora hashes (to check the LoRA files by): corner: 0123, other: 4567"]
    # A1111's resizes ComfyUI lacks: noted where they give other pixels than the method used
    for upscaler, scale, method, noted in [("Latent (antialiased)", "2", "bilinear", False),
                                           ("Latent (antialiased)", "0.5", "bilinear", True),
                                           ("Latent (nearest)", "2", "nearest-exact", False),
                                           ("Latent (nearest)", "1.5", "nearest-exact", True),
                                           ("Latent (bicubic antialiased)", "2", "bicubic", True)]:
        notes = []
        text = A1111.replace("Size: 64x64,", f"Size: 64x64, Hires upscale: {scale}, Hires upscaler: {upscaler},")
        graph = a1111_graph(parse_a1111(text), notes)
        (upscale,) = [n for n in graph.values() if n["class_type"] == "LatentUpscale"]
        assert upscale["inputs"]["upscale_method"] == method
        message = f"A1111 hires upscaler {upscaler!r}: ComfyUI has no such resize here, {method} is used"
        assert (message in notes) == noted


def test_a1111_plain_resize_upscalers_have_no_model(builtin_registry):
    for upscaler, method in [("None", "lanczos"), ("Lanczos", "lanczos"), ("Nearest", "nearest-exact")]:
        text = A1111.replace("Size: 64x64,", f"Size: 64x64, Hires upscale: 1.5, Hires upscaler: {upscaler},")
        workflow, of, linked = a1111_workflow(text, builtin_registry)
        assert validate(workflow, builtin_registry) == [] and of("LoadUpscaleModel") == []
        (scale,) = of("ImageScale")
        assert (scale.inputs["upscale_method"], scale.inputs["width"], scale.inputs["height"]) == (method, 96, 96)
        assert linked(scale, "image").type == "VAEDecode" and linked(of("VAEEncode")[0], "pixels") is scale


def test_a1111_lora_tags_and_latent_hires_fix_become_nodes(builtin_registry):
    workflow, of, linked = a1111_workflow(A1111_HIRES, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    first, second = sorted(of("KSampler"), key=lambda n: -n.inputs["denoise"])
    # checkpoint -> LoRA 0.8 -> LyCORIS (text encoder 0.5, UNet 0.25) -> samplers; clip skip -> encoders
    lyco = linked(first, "model")
    assert lyco.type == "LoadLoRA" and (lyco.inputs["strength_model"], lyco.inputs["strength_clip"]) == (0.25, 0.5)
    lora = linked(lyco, "model")
    assert lora.inputs["lora_name"] == "graphflow-demo-corner.safetensors"
    assert lora.inputs["strength_model"] == lora.inputs["strength_clip"] == 0.8 and linked(lyco, "clip") is lora
    assert linked(lora, "model").type == linked(lora, "clip").type == "LoadCheckpoint"
    positive = linked(first, "positive")
    assert positive.inputs["text"] == "masterpiece, a red circle , "
    skip = linked(positive, "clip")
    assert skip.type == "CLIPSetLastLayer" and skip.inputs["stop_at_clip_layer"] == -2 and linked(skip, "clip") is lyco
    assert linked(first, "negative").inputs["text"] == "blurry, <lora:graphflow-demo-corner:1>"  # as A1111: text
    # first pass -> LatentUpscale to 128x128 -> second pass: 3 steps at denoise 0.5, the same seed, sampler, cfg
    upscale = linked(second, "latent_image")
    assert upscale.type == "LatentUpscale" and linked(upscale, "samples") is first
    assert upscale.inputs == {"samples": upscale.inputs["samples"], "upscale_method": "nearest-exact",
                              "width": 128, "height": 128, "crop": "disabled"}
    assert first.inputs["steps"] == 4 and first.inputs["denoise"] == 1.0
    assert second.inputs["steps"] == 3 and second.inputs["denoise"] == 0.5
    assert all(second.inputs[k] == first.inputs[k] for k in ("seed", "cfg", "sampler_name", "scheduler"))
    assert (first.inputs["seed"], first.inputs["sampler_name"], first.inputs["scheduler"]) == \
        (1234, "dpmpp_2m", "karras")
    assert linked(second, "model") is lyco and linked(second, "positive") is positive  # same model and prompts
    (decode,) = of("VAEDecode")
    assert linked(decode, "samples") is second and linked(of("SaveImage")[0], "images") is decode
    assert len(of("LoadCheckpoint")) == 1 and len(of("CLIPEncode")) == 2 and len(of("LoadLoRA")) == 2
    assert [n["message"] for n in workflow.notes] == [
        "A1111 Lora hashes (to check the LoRA files by): graphflow-demo-corner: 0123abcd4567",
        "A1111 applies no <...> tags in the negative prompt (it encodes them as text): kept in its text"]


def test_forge_model_upscaler_hires_fix_with_its_own_prompt_sampler_and_cfg(builtin_registry):
    workflow, of, linked = a1111_workflow(FORGE_HIRES, builtin_registry)
    assert validate(workflow, builtin_registry) == [] and workflow.notes == []
    first, second = sorted(of("KSampler"), key=lambda n: -n.inputs["denoise"])
    def settings(node):
        return node.inputs["sampler_name"], node.inputs["scheduler"], node.inputs["cfg"]

    assert settings(first) == ("euler_ancestral", "normal", 5) and settings(second) == ("dpmpp_2m", "karras", 4)
    assert second.inputs["steps"] == 4 and second.inputs["denoise"] == 0.45 and second.inputs["seed"] == 77  # 0: same
    # decode -> the 2x model -> Lanczos to int(64 * 1.5) x int(48 * 1.5) -> encode
    encode = linked(second, "latent_image")
    scale = linked(encode, "pixels")
    assert encode.type == "VAEEncode" and scale.type == "ImageScale"
    assert (scale.inputs["upscale_method"], scale.inputs["width"], scale.inputs["height"]) == ("lanczos", 96, 72)
    upscale = linked(scale, "image")
    assert upscale.type == "ImageUpscaleWithModel"
    assert linked(upscale, "upscale_model").inputs["model_name"] == "graphflow-demo-2x.safetensors"
    assert linked(linked(upscale, "image"), "samples") is first
    # <lora:name> is weight 1; the hires prompt's own tag makes the second pass's own LoRA on the same checkpoint
    first_lora, hires_lora = linked(first, "model"), linked(second, "model")
    assert first_lora.inputs["strength_model"] == first_lora.inputs["strength_clip"] == 1.0
    assert hires_lora.inputs["strength_model"] == hires_lora.inputs["strength_clip"] == 0.3
    assert linked(first_lora, "model") is linked(hires_lora, "model") and len(of("LoadCheckpoint")) == 1
    assert linked(second, "positive").inputs["text"] == "a red circle, sharp "
    assert linked(second, "negative").inputs["text"] == "lowres"
    assert linked(linked(second, "positive"), "clip") is hires_lora


def test_a1111_hires_checkpoint_and_negative_prompt_make_the_second_pass(builtin_registry, tmp_folders):
    from graphflow.folders import BUNDLED

    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    (tmp_folders.models / "checkpoints" / "sub").mkdir()
    (tmp_folders.models / "checkpoints" / "sub" / "Demo-Hires.safetensors").symlink_to(
        BUNDLED / "checkpoints" / "graphflow-demo.safetensors")
    text = FORGE_HIRES.replace("Hires upscale: 1.5,", 'Hires upscale: 1.5, Hires checkpoint: demo-hires [0a1b2c3d4e], '
                               'Hires negative prompt: "lowres, jpeg artifacts",')
    workflow, of, linked = a1111_workflow(text, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    first, second = sorted(of("KSampler"), key=lambda n: -n.inputs["denoise"])
    base, hires = sorted(of("LoadCheckpoint"), key=lambda n: n.inputs["checkpoint"] != "graphflow-demo.safetensors")
    assert hires.inputs["checkpoint"] == "sub/Demo-Hires.safetensors"  # by stem, any case, any subfolder
    # the hires prompt's LoRA on the hires checkpoint; the first pass decodes with its VAE, the rest the hires one's
    assert linked(linked(second, "model"), "model") is hires and linked(linked(first, "model"), "model") is base
    assert linked(second, "negative").inputs["text"] == "lowres, jpeg artifacts"
    assert linked(linked(second, "negative"), "clip") is linked(second, "model")
    upscaled = linked(second, "latent_image")
    assert upscaled.type == "VAEEncode" and linked(upscaled, "vae") is hires
    decodes = sorted(of("VAEDecode"), key=lambda n: linked(n, "samples") is second)
    assert [(linked(n, "samples"), linked(n, "vae")) for n in decodes] == [(first, base), (second, hires)]


def test_a1111_refiner_switch_step():
    assert a1111_refiner_step(20, 0.8, "karras", by_steps=True) == 16
    assert a1111_refiner_step(30, 0.7, "normal", by_steps=True) == 21  # 21 / 30 reaches 0.7
    # by noise level: normal's timesteps are 999 - 999k/19: k = 15 is t 210 (ratio 0.79), k = 16 t 158 (0.84)
    assert a1111_refiner_step(20, 0.8, "normal") == 16
    assert a1111_refiner_step(20, 0.8, "karras") < 16  # karras spends its later steps at low noise
    assert a1111_refiner_step(20, 1.0, "normal") == 20  # never: no refiner steps


def test_a1111_refiner_is_two_advanced_samplers_and_hypernet_tag_a_loader(builtin_registry, executor, tmp_folders):
    from graphflow.folders import BUNDLED
    from graphflow.testing import write_hypernetwork

    for sub in ("checkpoints", "hypernetworks"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    (tmp_folders.models / "checkpoints" / "demo-refiner.safetensors").symlink_to(
        BUNDLED / "checkpoints" / "graphflow-demo.safetensors")
    write_hypernetwork(tmp_folders.models / "hypernetworks" / "style.pt", widths=(64,))
    workflow, of, linked = a1111_workflow(A1111_REFINER, builtin_registry)
    assert validate(workflow, builtin_registry) == [] and workflow.notes == []
    base, refiner = sorted(of("KSamplerAdvanced"), key=lambda n: n.inputs["start_at_step"])
    assert {k: base.inputs[k] for k in ("add_noise", "start_at_step", "end_at_step", "return_with_leftover_noise")} \
        == {"add_noise": "enable", "start_at_step": 0, "end_at_step": 16, "return_with_leftover_noise": "enable"}
    assert {k: refiner.inputs[k] for k in ("add_noise", "start_at_step", "end_at_step", "return_with_leftover_noise")} \
        == {"add_noise": "disable", "start_at_step": 16, "end_at_step": 10000, "return_with_leftover_noise": "disable"}
    for sampler in (base, refiner):
        assert {k: sampler.inputs[k] for k in ("noise_seed", "steps", "cfg", "sampler_name", "scheduler")} == \
            {"noise_seed": 5, "steps": 20, "cfg": 7.0, "sampler_name": "dpmpp_2m", "scheduler": "karras"}
    assert linked(refiner, "latent_image") is base
    hypernet = linked(base, "model")
    assert hypernet.type == "LoadHypernetwork" and hypernet.inputs["hypernetwork_name"] == "style.pt"
    assert hypernet.inputs["strength"] == 0.7
    assert linked(hypernet, "model").inputs["checkpoint"] == "graphflow-demo.safetensors"
    refiner_checkpoint = linked(refiner, "model")  # no LoRA or hypernetwork: the refiner is a model of its own
    assert refiner_checkpoint.inputs["checkpoint"] == "demo-refiner.safetensors"
    assert linked(linked(refiner, "positive"), "clip") is refiner_checkpoint
    assert linked(refiner, "positive").inputs["text"] == "a photo of a cat, "
    assert linked(linked(base, "positive"), "clip").inputs["checkpoint"] == "graphflow-demo.safetensors"
    assert linked(of("VAEDecode")[0], "vae") is refiner_checkpoint and linked(of("VAEDecode")[0], "samples") is refiner
    workflow, of, linked = a1111_workflow(A1111_REFINER.replace("Steps: 20", "Steps: 5"), builtin_registry)
    base, refiner = sorted(of("KSamplerAdvanced"), key=lambda n: n.inputs["start_at_step"])
    assert base.inputs["end_at_step"] == refiner.inputs["start_at_step"] == 4
    result = executor.run(workflow)
    assert result.ok, result.error or result.problems
    (saved,) = tmp_folders.outputs.rglob("*.png")
    assert Image.open(saved).size == (64, 64)
    # the switch after the last step, or a refiner that is the base model: no refiner (A1111 never switches)
    for old, new in [("Refiner switch at: 0.8", "Refiner switch at: 1.0"),
                     ("Refiner: demo-refiner [9f8e7d6c5b]", "Refiner: graphflow-demo [31e35c80fc]")]:
        text = A1111_REFINER.replace(old, new)
        workflow, of, linked = a1111_workflow(text, builtin_registry)
        assert of("KSamplerAdvanced") == [] and len(of("KSampler")) == 1 and len(of("LoadCheckpoint")) == 1


def test_a1111_tags_without_a_node_and_refiner_with_hires_fix_are_noted(builtin_registry):
    text = A1111.replace("masterpiece,", "masterpiece, <wildcard:colours> <lora:graphflow-demo-corner:0.6:0.4:8>")
    text = text.replace("Steps: 4,", "Steps: 4, Hires upscale: 2, Refiner: other [00aa], Refiner switch at: 0.5,")
    workflow, of, linked = a1111_workflow(text, builtin_registry)
    assert [n["message"] for n in workflow.notes][1:] == [
        "A1111 prompt tag <wildcard:colours>: no node for it, left out",
        "A1111 prompt tag <lora:graphflow-demo-corner:0.6:0.4:8>: its dyn dimension is not read "
        "(the whole LoRA is applied)",
        "A1111 refiner with hires fix: not turned into nodes (A1111's 'Hires refiner' option decides its pass)"]
    (lora,) = of("LoadLoRA")
    assert (lora.inputs["strength_clip"], lora.inputs["strength_model"]) == (0.6, 0.4)
    assert len(of("KSampler")) == 2 and of("KSamplerAdvanced") == []
    with pytest.raises(WorkflowFormatError, match=r"<lora:x:lots>: weight 'lots' is not a number"):
        a1111_workflow(A1111.replace("masterpiece", "<lora:x:lots>"), builtin_registry)


@pytest.mark.parametrize("upscaler", ["Latent", "graphflow-demo-2x"])
def test_a1111_hires_fix_png_runs_to_a_picture_of_the_upscaled_size(upscaler, builtin_registry, executor, tmp_folders):
    text = A1111_HIRES.replace("Steps: 4", "Steps: 2").replace("Hires steps: 3", "Hires steps: 2")
    text = text.replace("Latent (nearest-exact)", upscaler)
    workflow = workflow_from_picture(png_with({"parameters": text}), builtin_registry)
    result = executor.run(workflow)
    assert result.ok, result.error or result.problems
    (saved,) = tmp_folders.outputs.rglob("*.png")
    assert Image.open(saved).size == (128, 128)
    first = next(v[0] for k, v in result.values.items() if workflow.nodes[k].type == "KSampler"
                 and workflow.nodes[k].inputs["denoise"] == 1.0)
    assert first["samples"].shape[-2:] == (8, 8)


def test_cli_convert_of_an_a1111_png_writes_its_comfyui_graph(tmp_path, capsys):
    picture = tmp_path / "a1111.png"
    picture.write_bytes(png_with({"parameters": A1111_HIRES}))
    assert main(["convert", str(picture), "--to", "comfy-api"]) == 0
    api = json.loads(capsys.readouterr().out)
    assert sorted(n["class_type"] for n in api.values()) == sorted([
        "CheckpointLoaderSimple", "LoraLoader", "LoraLoader", "CLIPSetLastLayer", "CLIPTextEncode", "CLIPTextEncode",
        "EmptyLatentImage", "KSampler", "LatentUpscale", "KSampler", "VAEDecode", "SaveImage"])
    loras = sorted((n["inputs"]["strength_model"], n["inputs"]["strength_clip"], n["inputs"]["lora_name"])
                   for n in api.values() if n["class_type"] == "LoraLoader")
    assert loras == [(0.25, 0.5, "graphflow-demo-corner.safetensors"), (0.8, 0.8, "graphflow-demo-corner.safetensors")]
    (upscale,) = [n for n in api.values() if n["class_type"] == "LatentUpscale"]
    assert {k: v for k, v in upscale["inputs"].items() if k != "samples"} == \
        {"upscale_method": "nearest-exact", "width": 128, "height": 128, "crop": "disabled"}
    assert api[upscale["inputs"]["samples"][0]]["class_type"] == "KSampler"
    assert main(["convert", str(picture), "--to", "comfy-ui", "-o", str(tmp_path / "ui.json")]) == 0
    ui = json.loads((tmp_path / "ui.json").read_text())
    assert sorted(n["type"] for n in ui["nodes"]) == sorted(n["class_type"] for n in api.values())
    assert "Hires fix: second pass" in {n.get("title") for n in ui["nodes"]}
    links = sum(1 for n in api.values() for v in n["inputs"].values() if isinstance(v, list))
    assert len(ui["links"]) == links


# --- command line and server ------------------------------------------------------------------


def test_cli_convert_to_each_format(tmp_path, capsys):
    source = CORPUS / "txt2img_tricks_ui.json"
    assert main(["convert", str(source), "--to", "comfy-ui", "-o", str(tmp_path / "ui.json")]) == 0
    written = json.loads((tmp_path / "ui.json").read_text())
    assert written["links"] == json.loads(source.read_text())["links"]
    assert main(["convert", str(source), "--to", "comfy-api"]) == 0
    api = json.loads(capsys.readouterr().out)
    assert api["3"]["class_type"] == "KSampler" and api["3"]["inputs"]["seed"] == 42
    assert api["4"] == {"inputs": {"ckpt_name": "graphflow-demo.safetensors"}, "class_type": "CheckpointLoaderSimple"}
    assert main(["convert", str(tmp_path / "ui.json"), "--to", "graphflow"]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert ours["version"] == 1 and ours["nodes"]["4"]["type"] == "LoadCheckpoint"
    assert main(["validate", str(CORPUS / "inpaint_api.json")]) == 0
    assert "note: node 4 (LoadImage), input 'upload': ignored" in capsys.readouterr().err


async def test_convert_endpoint_reads_ui_format_and_pictures_and_writes_each_format(aiohttp_client, tmp_path,
                                                                                     builtin_registry):
    from graphflow.server.app import create_app

    client = await aiohttp_client(create_app(builtin_registry, tmp_path / "runs.db", web_dir=None))
    ui = json.loads((CORPUS / "txt2img_tricks_ui.json").read_text())
    body = await (await client.post("/api/workflow/convert", json={"workflow": ui})).json()
    assert body["problems"] == [] and body["workflow"]["nodes"]["3"]["type"] == "KSampler"
    assert body["notes"] == [] and body["workflow"]["ui"]["nodes"]["10"]["mode"] == "bypass"  # kept, not left out
    back = await (await client.post("/api/workflow/convert", json={"workflow": body["workflow"],
                                                                  "to": "comfy-ui"})).json()
    assert back["workflow"]["links"] == ui["links"] and back["format"] == "comfy-ui"
    picture = base64.b64encode(png_with({"workflow": json.dumps(ui)})).decode()
    body = await (await client.post("/api/workflow/convert", json={"image": picture, "name": "x.png"})).json()
    assert body["workflow"]["ui"]["nodes"]["3"]["pos"] == [863, 186]
    response = await client.post("/api/workflow/convert", json={"workflow": ui, "to": "nope"})
    assert response.status == 400
    response = await client.post("/api/workflow/convert", json={"image": "not base64!"})
    assert response.status == 400
    from graphflow.server.app import SERVER

    workflow, problems = client.app[SERVER].check(ui, None)  # what POST /api/runs does first
    assert problems == [] and workflow.nodes["3"].inputs["seed"] == 42


def test_comfyui_docs_are_up_to_date():
    import subprocess
    import sys

    tool = Path(__file__).parent.parent / "tools" / "make_comfy_docs.py"
    root = Path(__file__).parent.parent  # this checkout's code, though the venv's install may be another's
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH"))))}
    done = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    text = (Path(__file__).parent.parent / "docs" / "comfyui.md").read_text()
    assert "| `CheckpointLoaderSimple` | `LoadCheckpoint` | `ckpt_name` → `checkpoint` |" in text



# --- annotated file names ---------------------------------------------------------------------


def _annotated_pictures(folders):
    """A red picture in the outputs, a blue one in the inputs; their IMAGE values."""
    red, blue = Image.new("RGB", (8, 4), (255, 0, 0)), Image.new("RGB", (8, 4), (0, 0, 255))
    (folders.outputs / "runs").mkdir()
    red.save(folders.outputs / "runs" / "pic.png")
    blue.save(folders.inputs / "in.png")
    as_image = lambda color: torch.tensor(color, dtype=torch.float32).div(255).expand(1, 4, 8, 3)  # noqa: E731
    return as_image((255, 0, 0)), as_image((0, 0, 255))


def test_annotated_file_names_of_an_api_graph_load_from_their_folder(builtin_registry, tmp_folders, executor):
    red, blue = _annotated_pictures(tmp_folders)
    graph = {"1": {"class_type": "LoadImageOutput", "inputs": {"image": "runs/pic.png [output]"}},
             "2": {"class_type": "LoadImage", "inputs": {"image": "in.png [input]"}},
             "3": {"class_type": "LoadImage", "inputs": {"image": "runs/pic.png [output]", "upload": "image"}},
             "4": {"class_type": "LoadImageMask", "inputs": {"image": "in.png [input]", "channel": "blue"}},
             "5": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
             "6": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    workflow = parse_workflow(graph, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    assert {k: (n.type, n.inputs["image"]) for k, n in workflow.nodes.items() if k != "6"} == {
        "1": ("LoadImageOutput", "runs/pic.png"), "2": ("LoadImage", "in.png"),
        "3": ("LoadImageOutput", "runs/pic.png"), "4": ("LoadImageMask", "in.png"), "5": ("LoadImage", "in.png")}
    result = executor.run(workflow, outputs=list("12345"))
    assert result.ok
    for node_id, expected in (("1", red), ("2", blue), ("3", red), ("5", blue)):
        torch.testing.assert_close(result.values[node_id][0], expected)
    assert torch.equal(result.values["4"][0], torch.ones(1, 4, 8))
    # Written back as ComfyUI names them: outputs annotated, inputs plain (its default folder).
    written = export_api(workflow, builtin_registry)
    assert [(written[k]["class_type"], written[k]["inputs"]["image"]) for k in "12345"] == [
        ("LoadImageOutput", "runs/pic.png [output]"), ("LoadImage", "in.png"),
        ("LoadImageOutput", "runs/pic.png [output]"), ("LoadImageMask", "in.png"), ("LoadImage", "in.png")]
    assert parse_workflow(written, builtin_registry).nodes["3"].inputs["image"] == "runs/pic.png"
    # A folder graphflow loads nothing from stays as written, and validation names it.
    temp = parse_workflow({"1": {"class_type": "LoadImage", "inputs": {"image": "x.png [temp]"}},
                           "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}, builtin_registry)
    problems = validate(temp, builtin_registry)
    assert [(p.node_id, p.input) for p in problems] == [("1", "image")] and "x.png [temp]" in problems[0].message


def test_annotated_file_names_of_a_ui_graph_load_and_round_trip(builtin_registry, tmp_folders, executor):
    red, blue = _annotated_pictures(tmp_folders)
    ui = {"last_node_id": 3, "last_link_id": 1, "links": [[1, 2, 0, 3, 0, "IMAGE"]], "groups": [], "version": 0.4,
          "config": {}, "extra": {},
          "nodes": [{"id": 1, "type": "LoadImageOutput", "pos": [0, 0], "size": [300, 300], "flags": {}, "order": 0,
                     "mode": 0, "inputs": [], "properties": {}, "widgets_values": ["runs/pic.png [output]", "image"],
                     "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": None, "slot_index": 0},
                                 {"name": "MASK", "type": "MASK", "links": None}]},
                    {"id": 2, "type": "LoadImage", "pos": [0, 400], "size": [300, 300], "flags": {}, "order": 1,
                     "mode": 0, "inputs": [], "properties": {}, "widgets_values": ["in.png [input]", "image"],
                     "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0},
                                 {"name": "MASK", "type": "MASK", "links": None}]},
                    {"id": 3, "type": "PreviewImage", "pos": [400, 0], "size": [300, 300], "flags": {}, "order": 2,
                     "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [],
                     "properties": {}, "widgets_values": []}]}
    workflow = import_ui(ui, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    assert [workflow.nodes[k].inputs["image"] for k in ("1", "2")] == ["runs/pic.png", "in.png"]
    result = executor.run(workflow, outputs=["1", "2"])
    assert result.ok
    torch.testing.assert_close(result.values["1"][0], red)
    torch.testing.assert_close(result.values["2"][0], blue)
    written = by_id(export_ui(workflow, builtin_registry)["nodes"])
    assert written[1]["widgets_values"] == ["runs/pic.png [output]", "image"]
    assert written[2]["widgets_values"] == ["in.png", "image"]


def test_webcam_capture_ui_node_reads_its_widgets_values(builtin_registry):
    """ComfyUI's editor saves WebcamCapture's webcam widget first and its capture button last:
    ["", 480, 360, true, "capture"]."""
    ui = {"nodes": [{"id": 10, "type": "WebcamCapture", "pos": [0, 0], "size": [270, 184], "mode": 0, "inputs": [],
                     "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}],
                     "widgets_values": ["", 480, 360, True, "capture"]}], "links": [], "version": 0.4}
    workflow = import_ui(ui, builtin_registry)
    assert workflow.nodes["10"].inputs == {"image": "", "width": 480, "height": 360, "capture_on_queue": True}
    workflow.nodes["10"].inputs["image"] = "webcam/1.png"
    (node,) = export_ui(workflow, builtin_registry)["nodes"]
    assert node["widgets_values"][:4] == ["webcam/1.png", 480, 360, True]


def test_each_pack_modules_comfy_pack_is_a_known_pack(builtin_registry):
    """A node module holding one pack's nodes names it (COMFY_PACK) as CUSTOM_PACKS does, so
    docs/comfyui.md lists its classes under that pack."""
    import sys

    from graphflow.comfy_format import CUSTOM_PACKS
    declared = {getattr(sys.modules[cls.__module__], "COMFY_PACK", None) for cls in builtin_registry} - {None}
    assert len(declared) >= 9 and declared <= set(CUSTOM_PACKS)


# --- ComfyUI's prompt validation rules for values ----------------------------------------------


def test_api_prompt_leaving_out_a_required_widget_is_refused_on_that_node(builtin_registry):
    """ComfyUI refuses a node of an API prompt that leaves a required widget out
    (required_input_missing) instead of running it on the default: a script that misspells "cfg"
    must not quietly sample at cfg 8. Our own format may leave any widget out for its default."""
    data = json.loads((CORPUS / "txt2img_api.json").read_text())
    sampler = next(k for k, v in data.items() if v["class_type"] == "KSampler")
    assert validate(parse_workflow(data, builtin_registry), builtin_registry) == []
    data[sampler]["inputs"]["CFG"] = data[sampler]["inputs"].pop("cfg")
    workflow = parse_workflow(data, builtin_registry)
    [problem] = validate(workflow, builtin_registry)
    assert (problem.node_id, problem.input, problem.kind) == (sampler, "cfg", "required_input_missing")
    assert "ComfyUI API prompt" in problem.message and problem.message.endswith("expected a number")
    ours = parse_workflow(json.loads(json.dumps(workflow.to_json())), builtin_registry)
    assert validate(ours, builtin_registry) == [problem]  # the note travels with the saved workflow
    ours.nodes[sampler].inputs["cfg"] = 6.5  # ... until the value is given
    assert validate(ours, builtin_registry) == []
    del ours.ui["comfyui"]
    del ours.nodes[sampler].inputs["cfg"]
    assert validate(ours, builtin_registry) == []  # a workflow of ours: the default
    # written back as ComfyUI's API prompt, it still lacks cfg (not the default filled in)
    assert "cfg" not in export_api(workflow, builtin_registry)[sampler]["inputs"]
    # a node replaced by one of another type no longer carries the note
    workflow.nodes[sampler].type = "KSamplerAdvanced"
    assert all(p.input != "cfg" for p in validate(workflow, builtin_registry))


def test_api_prompt_leaving_out_a_required_text_is_refused_once(builtin_registry):
    """CLIPTextEncode's text (the editor's {a|b} text: "dynamic" in the catalogue) is required as any
    widget; LoadImage's image, which our node requires too, is reported once, not twice."""
    data = json.loads((CORPUS / "txt2img_api.json").read_text())
    encoder = next(k for k, v in data.items() if v["class_type"] == "CLIPTextEncode")
    del data[encoder]["inputs"]["text"]
    data["90"] = {"class_type": "LoadImage", "inputs": {}}
    data["91"] = {"class_type": "PreviewImage", "inputs": {"images": ["90", 0]}}
    found = [(p.node_id, p.input, p.kind) for p in validate(parse_workflow(data, builtin_registry), builtin_registry)]
    assert sorted(found) == sorted([(encoder, "text", "required_input_missing"),
                                    ("90", "image", "required_input_missing")])
    # a UI save is read as the editor loads it: a widget it lacks takes its default, nothing is noted
    ui = json.loads((CORPUS / "txt2img_ui.json").read_text())
    assert "missing" not in parse_workflow(ui, builtin_registry).ui.get("comfyui", {})


def test_api_prompt_fraction_for_an_integer_widget_is_truncated_as_comfyui_does(builtin_registry):
    """ComfyUI's validation takes int() of an integer widget's value: 512.9 runs as 512, -0.5 as 0."""
    data = json.loads((CORPUS / "txt2img_api.json").read_text())
    latent = next(k for k, v in data.items() if v["class_type"] == "EmptyLatentImage")
    data[latent]["inputs"].update(width=64.9, height=64.0)
    workflow = parse_workflow(data, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    assert workflow.nodes[latent].inputs["width"] == int(64.9) == 64
    assert workflow.nodes[latent].inputs["height"] == 64
    [note] = [n for n in workflow.notes if n["input"] == "width"]
    assert note["node_id"] == latent and "64.9" in note["message"]
    data[latent]["inputs"]["width"] = 8.5  # truncated to 8, then out of range: refused as in ComfyUI
    [problem] = validate(parse_workflow(data, builtin_registry), builtin_registry)
    assert (problem.node_id, problem.input) == (latent, "width")


def test_integer_widget_text_is_read_as_pythons_int_as_comfyui_does(builtin_registry):
    """ComfyUI's validation takes int() of an integer widget's text: " 64 ", "+64" and "6_4" are
    numbers, "64.0" and "6.4e1" are refused as invalid_input_type (pydantic alone read "64.0" as 64)."""
    data = json.loads((CORPUS / "txt2img_api.json").read_text())
    latent = next(k for k, v in data.items() if v["class_type"] == "EmptyLatentImage")
    for text in (" 64 ", "+64", "6_4"):
        data[latent]["inputs"]["width"] = text
        workflow = parse_workflow(data, builtin_registry)
        assert validate(workflow, builtin_registry) == [], text
        assert int(text) == 64
    for text in ("64.0", "6.4e1", "0x40"):
        data[latent]["inputs"]["width"] = text
        [problem] = validate(parse_workflow(data, builtin_registry), builtin_registry)
        assert (problem.node_id, problem.input, problem.kind) == (latent, "width", "invalid_input_type"), text
        assert repr(text) in problem.message and "expected an integer" in problem.message


@pytest.mark.parametrize("properties", ["oops", ["x"], 3, None])
def test_ui_node_properties_that_are_no_object_are_taken_as_none(builtin_registry, properties):
    """A UI node whose "properties" is text, a list or a number (a hand-edited or foreign save) is read
    as having none, with its prefix pattern and search name looked up safely (it raised AttributeError
    inside the reader); exported back with an object there."""
    save = {"last_node_id": 2, "last_link_id": 1, "version": 0.4, "groups": [], "config": {}, "extra": {},
            "links": [[1, 1, 0, 2, 0, "LATENT"]],
            "nodes": [{"id": 1, "type": "EmptyLatentImage", "mode": 0, "inputs": [], "properties": properties,
                       "outputs": [{"name": "LATENT", "type": "LATENT", "links": [1]}], "widgets_values": [64, 64, 1]},
                      {"id": 2, "type": "SaveLatent", "mode": 0, "properties": properties,
                       "inputs": [{"name": "samples", "type": "LATENT", "link": 1}], "outputs": [],
                       "widgets_values": ["%EmptyLatentImage.width%_x"]}]}
    workflow = import_ui(save, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    assert all(isinstance(node["properties"], dict) for node in export_ui(workflow, builtin_registry)["nodes"])


def test_filename_reference_to_a_node_whose_save_is_refused_names_that_node(builtin_registry):
    """%Node.widget% in a save node's prefix, naming a node whose widgets can't be read (a Sampler
    Select Helper+ from a ComfyUI with another sampler list): the problem names that node by id."""
    from graphflow.choices import SAMPLER_NAMES
    from tests.test_pack_nodes import ui_graph, ui_node
    nodes = [ui_node(7, "SamplerSelectHelper+", [True] * (len(SAMPLER_NAMES) + 1), outputs=[("STRING", "STRING", [])]),
             ui_node(8, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(9, "SaveImage", ["pics/%SamplerSelectHelper+.euler%"], inputs=[("images", "IMAGE", 1, False)])]
    with pytest.raises(WorkflowFormatError) as err:
        ui_to_api(ui_graph(nodes, [[1, 8, 0, 9, 0, "IMAGE"]]), builtin_registry)
    [problem] = err.value.problems
    assert problem.node_id == "7" and problem.node_type == "SamplerSelectHelper+"
