"""crystian's ComfyUI-Crystools' nodes (nodes/pack_nodes_crystools.py), read from UI graphs in the
pack's saved shape and from API prompts with its class names, written back by export_ui /
export_api: primitives, Show any (to JSON), lists, switches, pipes; picture metadata read and
written (checked against Pillow's own reading of the files); the metadata extractor and the
comparators; Read JSON file (inside the inputs folder) and JSON extractor; Stats system."""

import json
import os
from datetime import datetime

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin
from PIL.ExifTags import IFD, TAGS

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_crystools import EXTRA_METADATA_DEFAULT, file_size_text, json_diff, nested_value
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def run(registry, graph, outputs=None):
    return run_graph(registry, graph, outputs)


def failure(registry, graph):
    result = Executor(registry).run(parse_workflow(graph, registry))
    assert not result.ok
    return result.error or {"message": str(result.problems)}


# -- UI and API graphs ---------------------------------------------------------------------------


def test_ui_graph_reads_the_packs_widgets_by_position_and_writes_them_back(registry, tmp_folders):
    """Show any saves its shown text as a fourth widget value (the pack's display box), Switch
    string its two text boxes before the boolean, List of strings eight texts and the delimiter."""
    nodes = [
        ui_node(1, "Primitive integer [Crystools]", [5], outputs=[("int", "INT", [1])]),
        ui_node(2, "Primitive float [Crystools]", [2.5], outputs=[("float", "FLOAT", [2])]),
        ui_node(3, "Primitive string [Crystools]", ["cat"], outputs=[("string", "STRING", [3])]),
        ui_node(4, "Primitive boolean [Crystools]", [False], outputs=[("boolean", "BOOLEAN", [4])]),
        ui_node(5, "Switch string [Crystools]", ["", "dog", True],
                [("on_true", "STRING", 3, True), ("on_false", "STRING", None, True),
                 ("boolean", "BOOLEAN", 4, True)], [("string", "STRING", [5])]),
        ui_node(6, "List of strings [Crystools]", ["a", "", "b", "", "", "", "", "c", "-"],
                [("string_2", "STRING", 5, True)],
                [("concatenated", "STRING", [6]), ("list_string", "ListString", [])]),
        ui_node(7, "Show any [Crystools]", [False, True, "", "old shown text"], [("any_value", "*", 6, False)]),
        ui_node(8, "Primitive string multiline [Crystools]", ["x\ny"], outputs=[("string", "STRING", [])]),
        ui_node(9, "Switch any [Crystools]", [True], [("on_true", "*", 1, False), ("on_false", "*", 2, False)],
                [("*", "*", [7])]),
        ui_node(10, "Show any to JSON [Crystools]", [], [("any_value", "*", 7, False)],
                [("string", "STRING", [])]),
    ]
    links = [[1, 1, 0, 9, 0, "INT"], [2, 2, 0, 9, 1, "FLOAT"], [3, 3, 0, 5, 0, "STRING"],
             [4, 4, 0, 5, 2, "BOOLEAN"], [5, 5, 0, 6, 1, "STRING"], [6, 6, 0, 7, 0, "STRING"], [7, 9, 0, 10, 0, "*"]]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, registry)
    assert workflow.nodes["7"].inputs["prefix"] == "" and workflow.nodes["6"].inputs["delimiter"] == "-"
    result = run(registry, graph, outputs=["7", "8", "10"])
    assert result.values["5"][0] == "dog"  # boolean False: on_false's text box
    assert result.values["6"][0] == "a-dog-b-c" and result.values["6"][1] == [["a", "dog", "b", "c"]]
    assert result.outputs["7"]["text"] == [False, True, "", "a-dog-b-c"]
    assert result.values["8"][0] == "x\ny"
    assert result.values["10"][0] == "5"
    written = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    assert written[5]["widgets_values"] == ["", "dog", True]
    assert written[6]["widgets_values"] == ["a", "", "b", "", "", "", "", "c", "-"]
    assert written[7]["widgets_values"][:3] == [False, True, ""]
    assert written[1]["widgets_values"] == [5] and written[2]["widgets_values"] == [2.5]
    assert parse_workflow(export_ui(workflow, registry), registry).to_json()["nodes"] == workflow.to_json()["nodes"]


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry, tmp_folders):
    prompt = {
        "1": {"class_type": "Primitive integer [Crystools]", "inputs": {"int": 3}},
        "2": {"class_type": "Pipe to/edit any [Crystools]", "inputs": {"any_1": ["1", 0], "any_4": ["3", 0]}},
        "3": {"class_type": "Primitive string [Crystools]", "inputs": {"string": "four"}},
        "4": {"class_type": "Pipe to/edit any [Crystools]", "inputs": {"CPipeAny": ["2", 0], "any_2": ["1", 0],
                                                                       "any_4": ["5", 0]}},
        "5": {"class_type": "Primitive float [Crystools]", "inputs": {"float": 0.5}},
        "6": {"class_type": "Pipe from any [Crystools]", "inputs": {"CPipeAny": ["4", 0]}},
        "7": {"class_type": "List of any [Crystools]", "inputs": {"any_1": ["6", 4], "any_2": ["6", 5],
                                                                  "any_3": ["6", 1]}},
        "8": {"class_type": "Switch from any [Crystools]", "inputs": {"any": ["7", 0], "boolean": False}},
        "9": {"class_type": "Show any to JSON [Crystools]", "inputs": {"any_value": ["8", 1]}},
        "10": {"class_type": "JSON extractor [Crystools]", "inputs": {"json": ["11", 0], "key": "a.b",
                                                                      "default": "none"}},
        "11": {"class_type": "Read JSON file [Crystools]", "inputs": {"path_to_json": "p.json"}},
    }
    (tmp_folders.inputs / "p.json").write_text('{"a": {"b": "7"}}', encoding="utf-8")
    result = run(registry, prompt, outputs=["9", "10"])
    assert result.values["6"] == ([3, 3, None, 0.5, None, None], 3, 3, None, 0.5, None, None)
    assert result.values["7"][0] == [[0.5, 3]]  # unlinked and None values left out; a list output of one list
    assert result.values["8"] == ([None], [[0.5, 3]])  # run once for the one item, as ComfyUI runs it
    assert json.loads(result.values["9"][0]) == [0.5, 3]
    assert result.values["10"] == ("7", "7", 7, 7.0, False)
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in prompt.items()}
    for node_id in prompt:
        assert api[node_id]["inputs"] == prompt[node_id]["inputs"], node_id
    ui = json.loads(json.dumps(export_ui(parse_workflow(prompt, registry), registry)))
    assert parse_workflow(ui, registry).to_json()["nodes"] == parse_workflow(prompt, registry).to_json()["nodes"]


# -- switches, pipes, lists, debugger ------------------------------------------------------------


@pytest.mark.parametrize("kind,value", [("any", 7), ("conditioning", [[torch.ones(1, 2, 3), {}]]),
                                        ("image", torch.rand(1, 4, 4, 3)), ("mask", torch.rand(1, 4, 4)),
                                        ("latent", {"samples": torch.zeros(1, 4, 2, 2)})])
def test_switches_give_the_chosen_input_and_name_an_unlinked_one(registry, kind, value):
    name = f"Switch {kind} [Crystools]"
    node_type = registry.comfy_node(name).node_type
    assert call(registry, node_type, on_true=value, on_false="other", boolean=True) is value
    assert call(registry, node_type, on_true="other", on_false=value, boolean=False) is value
    with pytest.raises(NodeInputError) as caught:
        call(registry, node_type, on_true=value, boolean=False)
    assert caught.value.input == "on_false"


def test_pipe_rejects_what_is_not_a_pipe(registry):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CrystoolsPipeFromAny", CPipeAny=[1, 2])
    assert caught.value.input == "CPipeAny"


def test_show_any_logs_with_its_prefix_and_says_inactive_when_not_displayed(registry, caplog):
    prompt = {"1": {"class_type": "Primitive integer [Crystools]", "inputs": {"int": 12}},
              "2": {"class_type": "Show any [Crystools]", "inputs": {"any_value": ["1", 0], "console": True,
                                                                     "display": False, "prefix": "seed"}}}
    with caplog.at_level("INFO", logger="nodes.pack_nodes_crystools"):
        result = run(registry, prompt)
    assert "seed: 12" in caplog.messages
    assert result.outputs["2"]["text"] == [True, False, "seed", "inactive"]


def test_show_any_to_json_writes_dicts_and_lists_indented(registry):
    item = {"a": [1, 2], "b": "x"}
    assert call(registry, "CrystoolsShowAnyToJSON", any_value=[item]) == json.dumps(item, indent=2)
    assert call(registry, "CrystoolsShowAnyToJSON", any_value=[(1, 2)]) == "(1, 2)"  # not a list: str()
    assert call(registry, "CrystoolsShowAnyToJSON", any_value=None) == "inactive"
    assert call(registry, "CrystoolsShowAnyToJSON", any_value=[{"t": torch.zeros(1)}]) == \
        "The input is a dict, but could not be serialized.\n"


def test_get_resolution_is_the_tensors_width_and_height(registry):
    image = torch.rand(2, 24, 40, 3)
    result = run(registry, {"1": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 24,
                                                                         "batch_size": 2, "color": 0}},
                            "2": {"class_type": "Get resolution [Crystools]", "inputs": {"image": ["1", 0]}}})
    assert result.values["2"] == (40, 24) and result.outputs["2"]["text"] == ["40x24"]
    assert call(registry, "CrystoolsGetResolution", image=image) == (image.shape[2], image.shape[1])


# -- pictures and their metadata -----------------------------------------------------------------


def png_with_chunks(path, size=(20, 12), alpha=True, **chunks):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (size[1], size[0], 4 if alpha else 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    for key, text in chunks.items():
        info.add_text(key, text)
    Image.fromarray(pixels).save(path, pnginfo=info)
    return pixels


def test_load_image_with_metadata_reads_a_png_as_pillow_does(registry, tmp_folders):
    prompt = {"3": {"class_type": "KSampler", "inputs": {"seed": 1}}}
    pixels = png_with_chunks(tmp_folders.inputs / "gen.png", prompt=json.dumps(prompt),
                             workflow=json.dumps({"nodes": []}), parameters="a cat, Steps: 20",
                             Rating="5", Title="not json")
    graph = {"1": {"class_type": "Load image with metadata [Crystools]", "inputs": {"image": "gen.png"}}}
    image, mask, got_prompt, metadata = run(registry, graph, outputs=["1"]).values["1"]
    assert torch.equal(image, torch.from_numpy(pixels[..., :3].astype(np.float32) / 255.0)[None])
    assert torch.equal(mask, 1.0 - torch.from_numpy(pixels[..., 3].astype(np.float32) / 255.0)[None])
    assert got_prompt == prompt
    path = tmp_folders.inputs / "gen.png"
    with Image.open(path) as picture:
        info = picture.info
    assert metadata["prompt"] == json.loads(info["prompt"]) and metadata["workflow"] == {"nodes": []}
    assert metadata["parameters"] == info["parameters"] and metadata["Rating"] == 5 and metadata["Title"] == "not json"
    assert metadata["fileinfo"] == {"filename": "gen.png", "resolution": "20x12",  # relative: no server path
                                    "date": str(datetime.fromtimestamp(os.path.getmtime(path))),
                                    "size": file_size_text(os.path.getsize(path))}


def test_load_image_with_metadata_reads_a_jpegs_exif_and_a_webps_file_info_only(registry, tmp_folders):
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif.get_ifd(IFD.Exif)[0x9003] = "2024:01:02 03:04:05"
    Image.new("RGB", (16, 8), (10, 20, 30)).save(tmp_folders.inputs / "photo.jpg", exif=exif)
    Image.new("RGB", (16, 8), (10, 20, 30)).save(tmp_folders.inputs / "pic.webp")
    graph = {"1": {"class_type": "Load image with metadata [Crystools]", "inputs": {"image": "photo.jpg"}},
             "2": {"class_type": "Load image with metadata [Crystools]", "inputs": {"image": "pic.webp"}}}
    values = run(registry, graph, outputs=["1", "2"]).values
    _, mask, prompt, metadata = values["1"]
    with Image.open(tmp_folders.inputs / "photo.jpg") as picture:
        read = picture.getexif()
    assert prompt == {} and mask.shape == (1, 64, 64) and not mask.any()
    assert metadata[TAGS[0x010F]] == "Camera maker"
    assert metadata["Exif"] == {TAGS[k]: str(v) for k, v in read.get_ifd(IFD.Exif).items()}
    assert set(metadata) >= {"fileinfo", "Make", "Exif", "GPSInfo"}
    assert values["2"][2] == {} and set(values["2"][3]) == {"fileinfo"}


def test_load_image_with_metadata_names_a_missing_or_outside_file(registry, tmp_folders):
    png_with_chunks(tmp_folders.inputs.parent / "secret.png")  # a real picture just outside the inputs folder
    for name in ("../secret.png", "nothing.png"):
        result = Executor(registry).run(parse_workflow(
            {"1": {"class_type": "Load image with metadata [Crystools]", "inputs": {"image": name}}}, registry))
        assert not result.ok and [p.input for p in result.problems] == ["image"], name  # refused as a choice
        assert name in result.problems[0].message
    node = registry.get("CrystoolsLoadImageWithMetadata").__new__(registry.get("CrystoolsLoadImageWithMetadata"))
    for name in ("../secret.png", "nothing.png"):  # run() itself, past the choice check (a stale list)
        node.image = name
        with pytest.raises(NodeInputError) as caught:
            node.run()
        assert caught.value.input == "image" and name in str(caught.value)
        assert str(tmp_folders.inputs) not in str(caught.value)


def shown_by(monkeypatch, registry, node_type, **inputs) -> dict:
    """What a node's run() shows in the editor (its show() call), with its result."""
    import nodes.pack_nodes_crystools as crystools

    shown = {}
    monkeypatch.setattr(crystools, "show", lambda **items: shown.update(items))
    shown["result"] = call(registry, node_type, **inputs)
    return shown


def test_load_image_with_metadata_names_a_bundled_example_by_name_and_previews_it(registry, tmp_folders,
                                                                                    monkeypatch):
    from graphflow.folders import BUNDLED

    name = "red-circle-on-blue.png"  # a bundled example input, not in the user's inputs folder
    assert not (tmp_folders.inputs / name).exists() and (BUNDLED / "inputs" / name).is_file()
    prompt = {"1": {"class_type": "Load image with metadata [Crystools]", "inputs": {"image": name}},
              "2": {"class_type": "Preview from metadata [Crystools]", "inputs": {"metadata_raw": ["1", 3]}}}
    result = run(registry, prompt)
    assert result.values["1"][3]["fileinfo"]["filename"] == name
    assert result.outputs["2"]["images"] == [{"filename": name, "subfolder": "", "type": "input"}]
    assert f"File: {name}\n" in result.outputs["2"]["text"][0]
    absolute = {"fileinfo": {**result.values["1"][3]["fileinfo"],  # the pack writes the absolute path
                             "filename": (BUNDLED / "inputs" / name).resolve().as_posix()}}
    shown = shown_by(monkeypatch, registry, "CrystoolsPreviewFromMetadata", metadata_raw=absolute)
    assert shown["result"] is absolute
    assert shown["images"] == [{"filename": name, "subfolder": "", "type": "input"}]


def chunks_of(path) -> dict:
    with Image.open(path) as picture:
        return dict(picture.text)


def test_save_image_with_extra_metadata_writes_each_key_as_a_json_text_chunk(registry, tmp_folders):
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 2,
                                                   "color": 0xFFFFFF}},
              "2": {"class_type": "Save image with extra metadata [Crystools]",
                    "inputs": {"image": ["1", 0], "filename_prefix": "cry/pic", "with_workflow": True,
                               "metadata_extra": EXTRA_METADATA_DEFAULT}},
              "3": {"class_type": "Save image with extra metadata [Crystools]",
                    "inputs": {"image": ["1", 0], "filename_prefix": "bare", "with_workflow": False,
                               "metadata_extra": "just words"}},
              "4": {"class_type": "Save image with extra metadata [Crystools]",
                    "inputs": {"image": ["1", 0], "filename_prefix": "list", "with_workflow": False,
                               "metadata_extra": "[1, 2]"}}}
    result = run(registry, prompt)
    # both saved; the first shown, as the pack's execute shows saved["ui"]["images"][0] only
    assert (tmp_folders.outputs / "cry" / "pic_00002_.png").is_file()
    assert result.outputs["2"]["images"] == [{"filename": "pic_00001_.png", "subfolder": "cry", "type": "output"}]
    first = tmp_folders.outputs / "cry" / "pic_00001_.png"
    chunks = chunks_of(first)
    for key, value in json.loads(EXTRA_METADATA_DEFAULT).items():
        assert json.loads(chunks[key]) == value  # each value as JSON text, as ComfyUI writes extra_pnginfo
    assert chunks["Author"] == '"crystian.ia"' and json.loads(chunks["prompt"])["2"]["inputs"]["filename_prefix"] == \
        "cry/pic" and "workflow" in chunks
    assert chunks_of(tmp_folders.outputs / "bare_00001_.png") == {"extra": '"just words"'}
    assert chunks_of(tmp_folders.outputs / "list_00001_.png") == {}
    metadata = result.values["2"][0]
    assert metadata["Rating"] == 5 and metadata["Keywords"] == [""] and metadata["prompt"]["1"]["class_type"] == \
        "EmptyImage"
    assert metadata["fileinfo"]["filename"] == "cry/pic_00001_.png [output]"  # ComfyUI's annotated name
    assert metadata["fileinfo"]["resolution"] == "16x8"
    with Image.open(first) as picture:
        assert np.array_equal(np.asarray(picture.convert("RGB")), np.full((8, 16, 3), 255, dtype=np.uint8))


def test_save_image_with_extra_metadata_refuses_a_prefix_leaving_the_outputs(registry, tmp_folders):
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
              "2": {"class_type": "Save image with extra metadata [Crystools]",
                    "inputs": {"image": ["1", 0], "filename_prefix": "../out", "with_workflow": True}}}
    assert "filename_prefix" in json.dumps(failure(registry, prompt))
    assert not (tmp_folders.outputs.parent / "out_00001_.png").exists()


def test_preview_from_image_and_from_metadata(registry, tmp_folders):
    (tmp_folders.inputs / "sub").mkdir()
    png_with_chunks(tmp_folders.inputs / "sub" / "in.png", prompt=json.dumps({"9": {"class_type": "X", "inputs": {}}}))
    prompt = {"1": {"class_type": "Load image with metadata [Crystools]", "inputs": {"image": "sub/in.png"}},
              "2": {"class_type": "Preview from image [Crystools]", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "Preview from metadata [Crystools]", "inputs": {"metadata_raw": ["1", 3]}},
              "4": {"class_type": "Preview from metadata [Crystools]", "inputs": {"metadata_raw": ["2", 0]}},
              "5": {"class_type": "Preview from image [Crystools]", "inputs": {}}}
    result = run(registry, prompt)
    shown = result.outputs["2"]["images"][0]
    temp_file = tmp_folders.temp / shown["subfolder"] / shown["filename"]
    assert shown["type"] == "temp" and temp_file.is_file()
    metadata = result.values["2"][0]
    assert metadata["prompt"] == json.loads(chunks_of(temp_file)["prompt"])  # the running prompt, read back
    assert metadata["prompt"]["2"]["class_type"] == "Preview from image [Crystools]"
    temp_name = f"crystools/{shown['filename']} [temp]"  # named as ComfyUI annotates a temp file
    assert result.outputs["2"]["text"][0].startswith(f"Source: Image link \nFile: {temp_name}\n")
    assert str(tmp_folders.home) not in json.dumps(result.outputs, default=str)  # no server path reaches the editor
    assert result.outputs["3"]["images"] == [{"filename": "in.png", "subfolder": "sub", "type": "input"}]
    assert result.outputs["3"]["text"][0].endswith("Prompt from image:\n" + json.dumps(
        {"9": {"class_type": "X", "inputs": {}}}, indent=2))
    assert result.values["3"][0] == result.values["1"][3]
    assert result.outputs["4"]["images"] == []  # a temp file: not in an inputs folder, not shown
    assert result.outputs["5"]["text"] == ["Source: Empty"] and result.values["5"][0] == ""
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CrystoolsPreviewFromMetadata", metadata_raw=[1, 2])
    assert caught.value.input == "metadata_raw"


def test_metadata_extractor_writes_properties_and_csv_as_the_pack(registry):
    raw = {"fileinfo": {"filename": "a.png", "size": "1 KB"}, "prompt": {"1": {"inputs": {}}}, "parameters": "x\ny",
           "Rating": 5}
    prompt, workflow, fileinfo, whole, properties, csv = call(registry, "CrystoolsMetadataExtractor", metadata_raw=raw)
    assert json.loads(prompt) == raw["prompt"] and workflow == "{}" and json.loads(fileinfo) == raw["fileinfo"]
    assert whole == json.dumps(raw, indent=2)
    assert properties.splitlines() == [f'"fileinfo"={json.dumps(json.dumps(raw["fileinfo"]))}',
                                       f'"prompt"={json.dumps(json.dumps(raw["prompt"]))}',
                                       '"parameters"="x\\ny"', '"Rating"=5']
    assert csv.split("\n")[0] == '"key"\t"value"' and csv.split("\n")[3] == '"parameters"\t"x\\ny"'
    assert call(registry, "CrystoolsMetadataExtractor", metadata_raw=None)[3:] == ("null", "", "")


def test_json_diff_in_deepdiffs_words():
    old = {"a": 1, "b": {"c": "x", "d": [1, 2]}, "gone": True, "t": 1}
    new = {"a": 2, "b": {"c": "x", "d": [2, 1]}, "new": [3], "t": "1"}
    assert json_diff(old, new) == {"values_changed": {"root['a']": {"new_value": 2, "old_value": 1}},
                                   "dictionary_item_removed": {"root['gone']": True},
                                   "dictionary_item_added": {"root['new']": [3]}}
    assert list(json_diff({"a": 1, "x": 0}, {"a": 3, "y": 0})) == ["values_changed", "dictionary_item_removed",
                                                                    "dictionary_item_added"]
    assert json_diff([1, 2], [1, 3]) == {"values_changed": {"root": {"new_value": [1, 3], "old_value": [1, 2]}}}
    assert json_diff({"1": {"inputs": {"seed": 4}}}, {"1": {"inputs": {"seed": 5}}}) == \
        {"values_changed": {"root['1']['inputs']['seed']": {"new_value": 5, "old_value": 4}}}


def test_comparators(registry):
    old = {"prompt": {"3": {"inputs": {"steps": 20}}}, "fileinfo": {"size": "1 KB"}}
    new = {"prompt": {"3": {"inputs": {"steps": 30}}}, "fileinfo": {"size": "2 KB"}}
    graph_diff = call(registry, "CrystoolsMetadataComparator", metadata_raw_old=old, metadata_raw_new=new,
                      what="Prompt")
    assert json.loads(graph_diff) == json_diff(old["prompt"], new["prompt"]) and graph_diff.startswith("{\n  ")
    assert json.loads(call(registry, "CrystoolsMetadataComparator", metadata_raw_old=old, metadata_raw_new=new,
                           what="Workflow")) == {}
    assert call(registry, "CrystoolsMetadataComparator", metadata_raw_old="x", metadata_raw_new=new,
                what="Fileinfo") == "Invalid metadata raw"
    assert json.loads(call(registry, "CrystoolsJSONComparator", json_old={"k": 1}, json_new={"k": 1, "l": 2})) == \
        {"dictionary_item_added": {"root['l']": 2}}


# -- JSON ----------------------------------------------------------------------------------------


def test_read_json_file_reads_only_inside_the_inputs_folder(registry, tmp_folders):
    (tmp_folders.inputs / "conf").mkdir()
    (tmp_folders.inputs / "conf" / "a.json").write_text('{"size": {"w": 512}}', encoding="utf-8")
    (tmp_folders.inputs / "bad.json").write_text("{nope", encoding="utf-8")
    (tmp_folders.outputs / "o.json").write_text("{}", encoding="utf-8")
    prompt = {"1": {"class_type": "Read JSON file [Crystools]", "inputs": {"path_to_json": "conf/a.json"}},
              "2": {"class_type": "JSON extractor [Crystools]", "inputs": {"json": ["1", 0], "key": "size.w",
                                                                          "default": ""}}}
    result = run(registry, prompt, outputs=["2"])
    assert result.values["1"][0] == {"size": {"w": 512}} and result.values["2"][:3] == (512, "512", 512)
    assert result.outputs["1"]["text"] == [json.dumps({"size": {"w": 512}}, indent=2)]
    assert call(registry, "CrystoolsReadJSONFile", path_to_json="") == {}
    for path in ("../outputs/o.json", str(tmp_folders.outputs / "o.json"), "missing.json", "bad.json"):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "CrystoolsReadJSONFile", path_to_json=path)
        assert caught.value.input == "path_to_json", path


@pytest.mark.parametrize("value,expected", [
    ("12", ("12", "12", 12, 12.0, False)),
    ("3.5", ("3.5", "3.5", "3.5", 3.5, False)),  # int("3.5") fails: the value unconverted
    ("TRUE", ("TRUE", "TRUE", "TRUE", "TRUE", True)),
    ("word", ("word", "word", "word", "word", False)),
    (7, (7, "7", 7, 7.0, 7)),  # a number has no lower(): boolean gives it unconverted
    (2.75, (2.75, "2.75", 2, 2.75, 2.75)),
    (True, (True, "True", 1, 1.0, True)),
    ([1], ([1], "[1]", [1], [1], [1])),
    ({"k": 1}, ({"k": 1}, "{'k': 1}", {"k": 1}, {"k": 1}, {"k": 1})),
])
def test_json_extractor_converts_as_python_does_and_passes_what_fails_on(registry, value, expected):
    got = call(registry, "CrystoolsJSONExtractor", json={"v": value}, key="v", default="")
    assert got == expected
    assert [type(v) for v in got] == [type(v) for v in expected]  # 1 == True == 1.0: the types tell them apart


def test_json_extractor_keys(registry):
    data = {"a": '{"b": {"c": 1}}', "s": "plain"}
    assert nested_value(data, "a.b.c", "d") == 1  # JSON text on the way is parsed
    assert nested_value(data, "a.x", "d") == "d" and nested_value(data, "s", "d") == "plain"
    assert call(registry, "CrystoolsJSONExtractor", json=data, key="", default="d")[0] == ""  # the pack's ""
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CrystoolsJSONExtractor", json=data, key="s.t", default="")
    assert caught.value.input == "key"


def test_stats_system_passes_the_latent_on_and_shows_the_machine(registry):
    psutil = pytest.importorskip("psutil")  # the reference figures; the node reads /proc/meminfo without it
    prompt = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
              "2": {"class_type": "Stats system [Crystools]", "inputs": {"latent": ["1", 0]}}}
    result = run(registry, prompt, outputs=["2"])
    assert result.values["2"][0] is result.values["1"][0]
    lines = result.outputs["2"]["text"][0].splitlines()
    assert lines[0] == "Samples Passthrough:" and len(lines) == 4
    assert lines[1].endswith(f"Total RAM: {psutil.virtual_memory().total / 1024 ** 3:.2f} GB")
    assert lines[3].startswith("Used Space: ")


def test_stats_system_reads_the_systems_memory_without_psutil(registry, monkeypatch):
    import sys

    from nodes.pack_nodes_crystools import system_stats

    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now fails
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert system_stats()[0].endswith(f"Total RAM: {total / 1024 ** 3:.2f} GB")


def test_ui_graph_of_the_image_and_json_nodes_as_their_editor_saves_them(registry, tmp_folders):
    """Load image with metadata saves its upload button after the file; Read JSON file and JSON
    extractor save their shown text after their widgets; Metadata comparator, whose editor stops
    saving widgets once it has run, may have none (its `what` is then the first choice)."""
    png_with_chunks(tmp_folders.inputs / "gen.png", prompt=json.dumps({"3": {"inputs": {"steps": 20}}}))
    png_with_chunks(tmp_folders.inputs / "gen2.png", prompt=json.dumps({"3": {"inputs": {"steps": 30}}}))
    (tmp_folders.inputs / "a.json").write_text('{"k": "v"}', encoding="utf-8")
    nodes = [
        ui_node(1, "Load image with metadata [Crystools]", ["gen.png", "image"],
                outputs=[("image", "IMAGE", [1]), ("mask", "MASK", []), ("prompt", "JSON", []),
                         ("Metadata RAW", "METADATA_RAW", [2])]),
        ui_node(2, "Load image with metadata [Crystools]", ["gen2.png", "image"],
                outputs=[("image", "IMAGE", []), ("mask", "MASK", []), ("prompt", "JSON", []),
                         ("Metadata RAW", "METADATA_RAW", [3])]),
        ui_node(3, "Metadata comparator [Crystools]", [],
                [("metadata_raw_old", "METADATA_RAW", 2, False), ("metadata_raw_new", "METADATA_RAW", 3, False)],
                [("diff", "JSON", [])]),
        ui_node(4, "Read JSON file [Crystools]", ["a.json", "old shown text"], outputs=[("json", "JSON", [4])]),
        ui_node(5, "JSON extractor [Crystools]", ["k", "none", "old shown text"], [("json", "JSON", 4, False)],
                [("any", "*", []), ("string", "STRING", []), ("int", "INT", []), ("float", "FLOAT", []),
                 ("boolean", "BOOLEAN", [])]),
        ui_node(6, "Save image with extra metadata [Crystools]", ["crys", False, '{"Title": "t"}'],
                [("image", "IMAGE", 1, False)], [("Metadata RAW", "METADATA_RAW", [])]),
    ]
    links = [[1, 1, 0, 6, 0, "IMAGE"], [2, 1, 3, 3, 0, "METADATA_RAW"], [3, 2, 3, 3, 1, "METADATA_RAW"],
             [4, 4, 0, 5, 0, "JSON"]]
    graph = ui_graph(nodes, links)
    result = run(registry, graph, outputs=["3", "5", "6"])
    assert json.loads(result.values["3"][0]) == {"values_changed": {"root['3']['inputs']['steps']": {
        "new_value": 30, "old_value": 20}}}
    assert result.values["5"][:2] == ("v", "v")
    assert chunks_of(tmp_folders.outputs / "crys_00001_.png") == {"Title": '"t"'}
    written = {n["id"]: n["widgets_values"] for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert written[1] == ["gen.png", "image"]  # the upload button's value, as its editor saves it
    assert written[3] == ["Prompt"] and written[4] == ["a.json"]
    assert written[5] == ["k", "none"] and written[6] == ["crys", False, '{"Title": "t"}']


# -- review mends: big lists, PNG keys, deep JSON, file names ------------------------------------


def test_comparators_compare_long_lists_as_multisets(registry):
    import random
    import time

    old = list(range(50_000)) + [{"k": i} for i in range(100)]
    new = old[:]
    random.Random(1).shuffle(new)
    started = time.perf_counter()
    assert json_diff({"l": old}, {"l": new}) == {}  # same items, another order
    assert json.loads(call(registry, "CrystoolsJSONComparator", json_old=old, json_new=new)) == {}
    assert time.perf_counter() - started < 10  # was quadratic: 40k ints took 45 s
    new[7] = -1  # one item differs: the whole list is the one change
    assert json_diff({"l": old}, {"l": new}) == {"values_changed": {"root['l']": {"new_value": new, "old_value": old}}}
    assert json_diff([1, 1, 2], [1, 2, 2]) != {}  # as many of each, not just the same ones
    assert json_diff([1, 2], [2, 1, 1]) != {}


def save_extra(registry, tmp_folders, extra: dict, with_workflow=True, prefix="extra"):
    return call(registry, "CrystoolsSaveImageWithExtraMetadata", image=torch.zeros(1, 4, 4, 3),
                filename_prefix=prefix, with_workflow=with_workflow, metadata_extra=json.dumps(extra))


@pytest.mark.parametrize("key", ["prompt\u0000x", "ключ", "k" * 80, "", " lead", "trail ", "two  spaces", "tab\t",
                                 "graphflow"])
def test_save_image_with_extra_metadata_refuses_keys_png_cant_hold_or_that_forge_a_graph(registry, tmp_folders, key):
    for with_workflow in (True, False):
        with pytest.raises(NodeInputError) as caught:
            save_extra(registry, tmp_folders, {"Title": "t", key: 1}, with_workflow)
        assert caught.value.input == "metadata_extra" and repr(key) in str(caught.value)
    assert not list(tmp_folders.outputs.glob("*.png"))  # refused before anything is written


def test_save_image_with_extra_metadata_keeps_the_running_graphs_chunks(registry, tmp_folders):
    for key in ("prompt", "workflow"):
        with pytest.raises(NodeInputError) as caught:
            save_extra(registry, tmp_folders, {key: {"1": {}}}, with_workflow=True)
        assert caught.value.input == "metadata_extra" and "with_workflow" in str(caught.value)
    # without the workflow there is no graph to replace: written as the pack writes it
    metadata = save_extra(registry, tmp_folders, {"prompt": {"1": {}}, "k" * 79: "x", "é ü": 2}, with_workflow=False)
    written = chunks_of(tmp_folders.outputs / "extra_00001_.png")
    assert written == {"prompt": '{"1": {}}', "k" * 79: '"x"', "é ü": "2"}
    assert metadata["prompt"] == {"1": {}} and metadata["fileinfo"]["filename"] == "extra_00001_.png [output]"


def deep_list(depth: int):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def test_deep_json_is_a_clear_error_naming_the_input(registry, tmp_folders):
    (tmp_folders.inputs / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CrystoolsReadJSONFile", path_to_json="deep.json")
    assert caught.value.input == "path_to_json" and "nested too deeply" in str(caught.value)
    deep = deep_list(100_000)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CrystoolsJSONComparator", json_old={"a": [[1]]}, json_new={"a": deep})
    assert caught.value.input == "json_new" and "nested too deeply" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CrystoolsJSONComparator", json_old=[deep], json_new=[deep, 1])
    assert caught.value.input == "json_old" and "nested too deeply" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CrystoolsMetadataComparator", metadata_raw_old={"prompt": {"a": [1]}},
             metadata_raw_new={"prompt": {"a": deep}}, what="Prompt")
    assert caught.value.input == "metadata_raw_new"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CrystoolsMetadataExtractor", metadata_raw={"fileinfo": {}, "x": deep})
    assert caught.value.input == "metadata_raw"
    with pytest.raises(NodeInputError) as caught:  # JSON text on the way to the key
        call(registry, "CrystoolsJSONExtractor", json={"a": "[" * 100_000 + "]" * 100_000}, key="a.b", default="")
    assert caught.value.input == "json"
    with pytest.raises(NodeInputError) as caught:  # the value found can't be shown
        call(registry, "CrystoolsJSONExtractor", json={"a": deep}, key="a", default="")
    assert caught.value.input == "json"
    # Show any to JSON says it can't, as the pack does for any error
    assert call(registry, "CrystoolsShowAnyToJSON", any_value=[deep]) == \
        "The input is a list, but could not be serialized.\n"


def test_read_json_file_errors_name_no_server_path(registry, tmp_folders):
    (tmp_folders.inputs / "dir.json").mkdir()
    for name in (".", "dir.json"):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "CrystoolsReadJSONFile", path_to_json=name)
        assert caught.value.input == "path_to_json"
        assert str(tmp_folders.home) not in str(caught.value) and os.strerror(21) in str(caught.value)  # EISDIR


@pytest.mark.parametrize("filename", ["a\u0000.png", "/tmp/a\u0000b.png", "x" * 5000 + ".png"])
def test_preview_from_metadata_names_an_invalid_file_name(registry, tmp_folders, filename):
    metadata = {"fileinfo": {"filename": filename, "resolution": "1x1", "date": "", "size": "1 bytes"}}
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CrystoolsPreviewFromMetadata", metadata_raw=metadata)
    assert caught.value.input == "metadata_raw"


def test_preview_from_metadata_shows_only_pictures_in_an_inputs_folder(registry, tmp_folders, monkeypatch):
    png_with_chunks(tmp_folders.inputs / "in.png")
    png_with_chunks(tmp_folders.outputs / "in.png")
    png_with_chunks(tmp_folders.inputs.parent / "out.png")

    def shown(filename):
        metadata = {"fileinfo": {"filename": filename, "resolution": "1x1", "date": "", "size": "1 bytes"}}
        return shown_by(monkeypatch, registry, "CrystoolsPreviewFromMetadata", metadata_raw=metadata)["images"]

    item = [{"filename": "in.png", "subfolder": "", "type": "input"}]
    assert shown("in.png") == item and shown("in.png [input]") == item
    assert shown((tmp_folders.inputs / "in.png").as_posix()) == item  # the pack's absolute path
    assert shown("in.png [output]") == []  # another folder's picture: not shown, not looked at
    assert shown("../out.png") == [] and shown((tmp_folders.inputs.parent / "out.png").as_posix()) == []
    with pytest.raises(NodeInputError) as caught:
        shown("gone.png")
    assert caught.value.input == "metadata_raw" and str(tmp_folders.home) not in str(caught.value)


def test_stats_system_reads_graphflows_compute_device_and_memory_figures(registry, monkeypatch):
    import sys

    from graphflow.resource_limits import memory_figures
    from nodes.pack_nodes_crystools import system_stats

    monkeypatch.setenv("GRAPHFLOW_DEVICE", "cpu")  # graphflow computes on the CPU even where CUDA is
    assert system_stats()[1] == "Used VRAM: no CUDA device (graphflow computes on cpu)"
    monkeypatch.setitem(sys.modules, "psutil", None)
    with open("/proc/meminfo") as f:  # the kernel's own figures, read here independently
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    figures = memory_figures()  # MemAvailable moves between two reads: only its range is fixed
    assert figures["ram_total"] == fields["MemTotal"] and 0 < figures["ram_available"] <= fields["MemTotal"]
    assert system_stats()[0].endswith(f"Total RAM: {fields['MemTotal'] / 1024 ** 3:.2f} GB")
