"""pysssss's (ComfyUI-Custom-Scripts') nodes (nodes/pack_nodes_pysssss.py), read from UI graphs
in the pack's saved shape and API graphs: its loaders (the core loaders' results, {content,
image} file items, the example widgets), String Function, Math Expression (its grammar, a.width,
Node.widget), Constrain Image against Pillow, Repeater, Load / Save Text (inside their folders),
Play Sound / System Notification and Reroute Primitive."""

import json
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

from graphflow import memory
from graphflow.comfy_format import export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint, write_lora
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_pysssss import comfy_widgets, constrain_size, math_expression, string_function
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def models(tmp_folders, written_once):
    """Model folders with copies (a test may write over its own) of a tiny checkpoint and LoRA,
    written once per test file."""
    for sub, name, write in (("checkpoints", "tiny.safetensors", lambda path: write_checkpoint(path, "sd1")),
                             ("loras", "first.safetensors", lambda path: write_lora(path, "sd1", seed=1))):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
        shutil.copyfile(written_once(f"{sub}-{name}", write), tmp_folders.models / sub / name)
    return tmp_folders


def weights(model, clip):
    unet = memory.manager().weights(model.unet, model.patches)
    tower = clip.towers[0]
    return unet, memory.manager().weights(tower.model, tower.patches)


def test_loaders_read_the_packs_ui_graph_and_equal_the_core_loaders(registry, models):
    """The editor saves the file lists' {content, image} items and its example list (and, when an
    example is picked, the prompt box) after the core widgets."""
    nodes = [
        ui_node(1, "CheckpointLoader|pysssss", [{"content": "tiny.safetensors", "image": None}, "[none]"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2]), ("VAE", "VAE", []),
                         ("example", "STRING", [])]),
        ui_node(2, "LoraLoader|pysssss", [{"content": "first.safetensors", "image": "loras/first.png"}, 0.7, -0.4,
                                          "notes", "a trigger word"],
                [("model", "MODEL", 1, False), ("clip", "CLIP", 2, False)],
                [("MODEL", "MODEL", []), ("CLIP", "CLIP", []), ("lora_name", "STRING", [])]),
    ]
    workflow = parse_workflow(ui_graph(nodes, [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 2, 1, "CLIP"]]), registry)
    assert workflow.nodes["1"].inputs == {"checkpoint": "tiny.safetensors", "example": "[none]"}
    assert workflow.nodes["2"].inputs["lora_name"] == "first.safetensors"
    assert workflow.nodes["2"].inputs["prompt"] == "a trigger word"
    got = Executor(registry).run(workflow, outputs=["1", "2"])
    assert got.ok, (got.problems, got.error)
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                         "lora_name": "first.safetensors", "strength_model": 0.7,
                                                         "strength_clip": -0.4}}}
    want = run_graph(registry, core, ["2"]).values
    assert got.values["1"][3] == "" and got.values["2"][2] == "first.safetensors"
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}  # items kept
    assert saved[1][:2] == [{"content": "tiny.safetensors", "image": None}, "[none]"]
    assert saved[2] == [{"content": "first.safetensors", "image": "loras/first.png"}, 0.7, -0.4, "notes",
                        "a trigger word"]
    workflow.nodes["2"].inputs["lora_name"] = "second.safetensors"  # another file: a plain name, as now saved
    assert next(n for n in export_ui(workflow, registry)["nodes"] if n["id"] == 2)["widgets_values"][0] == \
        "second.safetensors"
    (unet, tower), (unet_want, tower_want) = weights(*got.values["2"][:2]), weights(*want["2"])
    base, _ = weights(*want["1"][:2])
    assert any(not torch.equal(unet[n], base[n]) for n in unet)
    assert all(torch.equal(unet[n], unet_want[n]) for n in unet)
    assert all(torch.equal(tower[n], tower_want[n]) for n in tower)
    # an API graph as the pack's editor queues it: the file item as it is, the example's prompt text
    api = {"1": {"class_type": "CheckpointLoader|pysssss", "inputs": {
        "ckpt_name": {"content": "tiny.safetensors", "image": None}, "example": "best", "prompt": "a cat"}}}
    assert run_graph(registry, api, ["1"]).values["1"][3] == "a cat"


@pytest.mark.parametrize("action, tidy, texts, expected", [
    ("append", False, ("a", "", "c"), "ac"),
    ("append", True, ("red  cube ,", "blue", ""), "red cube, blue"),
    ("replace", False, ("a cat sat", "cat", "dog"), "a dog sat"),
    ("replace", False, ("a cat sat", "/c(a)t/", r"m\1p"), "a map sat"),  # /regex/
    ("replace", True, ("a, ,b", ",", ",,"), "a,b"),
    ("replace", True, ("a,,,,,,,,b", "x", "y"), "a,,b"),  # ",," folded twice only, as the pack
    ("replace", False, ("x/y", "/", "-"), "-x-/-y-"),  # a lone slash: the empty expression, as in the pack
    ("replace", False, ("x/y", "//", "-"), "-x-/-y-"),
])
def test_string_function(action, tidy, texts, expected):
    assert string_function(action, tidy, *texts) == expected


def test_string_function_stops_backtracking_and_refuses_huge_results(monkeypatch):
    """A /regex/ is guarded as RegexReplace's (re can't be stopped once it runs), and a replace
    that would write text_c between every character is refused before the text is built."""
    monkeypatch.setattr("nodes.strings.REGEX_SECONDS", 0.2)
    for pattern in ("/^(a|aa)+$/", "/(a+)+$/"):
        start = time.monotonic()
        with pytest.raises(NodeInputError, match="backtracks") as caught:
            string_function("replace", False, "a" * 200 + "b", pattern, "")
        assert time.monotonic() - start < 5 and caught.value.input == "text_b"
    monkeypatch.setattr("nodes.strings.MAX_TEXT", 1000)
    for find in ("", "/", "//", "/x??/", "x"):
        with pytest.raises(NodeInputError, match="1,000") as caught:
            string_function("replace", False, "x" * 100, find, "y" * 20)
        assert caught.value.input == "text_c"
    for find in ("", "//"):  # 40 * 21 + 20 characters: within the limit
        assert string_function("replace", False, "x" * 40, find, "y" * 20) == "y" * 20 + ("x" + "y" * 20) * 40
    with pytest.raises(NodeInputError, match="replacement") as caught:  # re reads the template first, as the pack
        string_function("replace", False, "abc", "/(x)/", r"\3")
    assert caught.value.input == "text_c"


def test_string_function_node(registry):
    graph = {"1": {"class_type": "StringFunction|pysssss", "inputs": {
        "action": "append", "tidy_tags": "yes", "text_a": "red", "text_b": "undefined", "text_c": "cube"}}}
    result = run_graph(registry, graph)
    assert result.values["1"] == ("red, cube",)
    assert result.outputs["1"]["text"] == ["red, cube"]
    with pytest.raises(NodeInputError, match="regular expression") as caught:
        call(registry, "PysssssStringFunction", action="replace", text_a="a", text_b="/(/")
    assert caught.value.input == "text_b"
    cls = registry.get("PysssssStringFunction")
    assert list(cls.input_specs) == ["action", "tidy_tags", "text_a", "text_b", "text_c"]
    # the pack's editor adds a "result" widget showing the last result, saved after the others
    nodes = [ui_node(1, "StringFunction|pysssss", ["replace", "no", "a cat", "cat", "dog", ["a dog"]],
                     outputs=[("STRING", "STRING", [])])]
    workflow = parse_workflow(ui_graph(nodes, []), registry)
    assert workflow.nodes["1"].inputs == {"action": "replace", "tidy_tags": "no", "text_a": "a cat",
                                          "text_b": "cat", "text_c": "dog"}


IMAGE = torch.zeros(2, 24, 32, 3)
LATENT = {"samples": torch.zeros(1, 4, 12, 10)}


@pytest.mark.parametrize("expression, names, expected", [
    ("a * 2 + b", {"a": 3, "b": 1.5}, 7.5),
    ("7 // 2 + 7 % 4 + 2 ** 3 - -1", {}, 3 + 3 + 8 + 1),
    ("6 ^ 3 | 8 & 12 << 1 >> 1", {}, 6 ^ 3 | 8 & 12 << 1 >> 1),
    ("~5 + (not 0)", {}, -6 + 1),
    ("a.width * a.height + b.width + b.height", {"a": IMAGE, "b": LATENT}, 32 * 24 + 80 + 96),
    ("1 and 0 or 2", {}, 1),  # and/or give 1 or 0
    ("1 < 2 < 0", {}, 1),  # only the first comparison counts, as in the pack
    ("iif(a > 2, 10, 20) + round(2.567, 2) + ceil(1.2) + floor(1.8) + sqrt(16) + int(3.9)", {"a": 3},
     10 + 2.57 + 2 + 1 + 4 + 3),
    ("min(3, a, 2) + max(1, 5, 4)", {"a": 0}, 5),
    ("3 / 2", {}, 1.5),
])
def test_math_expression_grammar(expression, names, expected):
    assert math_expression(expression, names) == pytest.approx(expected)


@pytest.mark.parametrize("expression, message", [
    ("__import__('os')", "Invalid function call"),
    ("a.__class__", "Node not found"),
    ("'text'", "not a number"),
    ("a", "not a number"),  # an image needs .width / .height
    ("x + 1", "Name not found"),
    ("min(1)", "requires 2 or more"),
    ("[1, 2]", "grammar"),
    ("2 ** 100000", "too big"),
    ("1 << 100000", "too big"),
    ("(10 ** 9000) ** 9000", "too big"),  # each exponent allowed, the result far too big
    ("1 in 2", "not one of"),
    ("-" * 5000 + "1", "nested too deeply"),
    ("+".join(["1"] * 5000), "nested too deeply"),
    ("-" * 200_000 + "1", "nested too deeply"),  # the parser's MemoryError
    ("2 ** 1023 * 2", "too large to convert to float"),  # a whole number, but no float output
])
def test_math_expression_refusals(registry, expression, message):
    with pytest.raises(NodeInputError, match=message) as caught:
        call(registry, "PysssssMathExpression", expression=expression, a=IMAGE)
    assert caught.value.input == "expression"


def test_math_expression_round_to_far_left_digits_is_quick():
    """round of a whole number to -b digits works out 10 ** -b in Python: 16 s for b = -10**7."""
    start = time.monotonic()
    assert math_expression("round(1, -10000000) + round(-7 * 10 ** 40, -3000000)", {}) == 0
    assert time.monotonic() - start < 1
    assert [math_expression(f"round({a}, {b})", {}) for a, b in ((15, -1), (25, -1), (-1250, -2), (7, 2))] == \
        [20, 20, -1200, 7]


def test_math_expression_node_outputs_and_random(registry):
    assert call(registry, "PysssssMathExpression", expression="a / 4", a=-7) == (-1, -1.75)  # int() cuts toward 0
    drawn = {call(registry, "PysssssMathExpression", expression="randomint(1, 1000000)")[0] for _ in range(4)}
    assert len(drawn) > 1
    cls = registry.get("PysssssMathExpression")
    assert cls.fingerprint(expression="randomint(1, 9)") != cls.fingerprint(expression="randomint(1, 9)")
    assert cls.fingerprint(expression="a.width + 1") is None
    assert cls.fingerprint(expression="KSampler.steps") != cls.fingerprint(expression="KSampler.steps")
    start = time.monotonic()  # run on every queue: linear in the formula's length (3 s for 40k letters before)
    for long in ("a" * 100_000, "7" * 100_000 + "x", "b1" * 50_000 + ".width"):
        assert cls.fingerprint(expression=long) is None
    assert time.monotonic() - start < 1


def test_math_expression_reads_another_nodes_widget_in_a_ui_graph(registry):
    nodes = [
        {**ui_node(1, "EmptyImage", [32, 24, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
         "properties": {"Node name for S&R": "Blank"}},
        {**ui_node(2, "EmptyImage", [16, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [])]), "title": "Small"},
        ui_node(3, "MathExpression|pysssss", ["Blank.width * 2 + a.height\n+ Small.height"],
                [("a", "INT,FLOAT,IMAGE,LATENT", 1, False)], [("INT", "INT", []), ("FLOAT", "FLOAT", [])]),
    ]
    result = run_graph(registry, ui_graph(nodes, [[1, 1, 0, 3, 0, "IMAGE"]]), ["3"])
    assert result.values["3"] == (96, 96.0) and result.outputs["3"]["value"] == [96]


def test_math_expression_reads_the_workflow_once_per_run(monkeypatch):
    calls = []
    texts = {"workflow": json.dumps({"nodes": [{"id": 4, "type": "KSampler"}]}),
             "prompt": json.dumps({"4": {"inputs": {"steps": 20, "cfg": 7.5}}})}
    monkeypatch.setattr("nodes.pack_nodes_pysssss.workflow_texts", lambda: calls.append(1) or texts)
    assert math_expression("KSampler.steps * KSampler.cfg + KSampler.steps", {}, comfy_widgets()) == 170
    assert len(calls) == 1


@pytest.mark.parametrize("size, limits, crop, want", [
    ((100, 50), (64, 64, 0, 0), False, ((64, 32), None)),
    ((50, 100), (64, 64, 0, 0), False, ((32, 64), None)),
    ((100, 50), (40, 40, 0, 0), True, ((40, 20), None)),
    ((100, 50), (40, 40, 0, 30), True, ((60, 30), (10, 0, 50, 30))),  # covers, then the middle is cut
    ((20, 10), (1024, 1024, 0, 0), False, ((1024, 512), None)),  # the pack grows small images to the max
    ((100, 50), (64, 64, 0, 48), False, ((64, 48), None)),  # at least min_height (the aspect given up)
])
def test_constrain_size(size, limits, crop, want):
    assert constrain_size(*size, *limits, crop) == want


def test_constrain_image_equals_pillows_lanczos(registry):
    images = torch.rand(2, 50, 100, 4, generator=torch.Generator().manual_seed(0))
    out = call(registry, "PysssssConstrainImage", images=images, max_width=40, max_height=40, min_height=30,
               crop_if_required="yes")
    assert isinstance(out, list) and len(out) == 2
    for image, got in zip(images, out):
        picture = Image.fromarray(np.clip(255.0 * image.numpy(), 0, 255).astype(np.uint8)).convert("RGB")
        want = picture.resize((60, 30), Image.LANCZOS).crop((10, 0, 50, 30))
        assert got.shape == (1, 30, 40, 3)
        assert torch.equal(got[0], torch.from_numpy(np.asarray(want, dtype=np.float32) / 255.0))
    video = call(registry, "PysssssConstrainImageForVideo", images=images, max_width=40, max_height=40,
                 min_height=30, crop_if_required="yes")
    assert torch.equal(video, torch.cat(out))
    with pytest.raises(NodeInputError, match="above 0"):
        call(registry, "PysssssConstrainImage", images=images, max_width=0, max_height=0)


def test_repeater_gives_a_list_the_next_nodes_run_over(registry):
    graph = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 5}},
             "2": {"class_type": "Repeater|pysssss", "inputs": {"source": ["1", 0], "repeats": 3, "output": "single",
                                                               "node_mode": "reuse"}},
             "3": {"class_type": "MathExpression|pysssss", "inputs": {"expression": "a * 2", "a": ["2", 0]}}}
    result = run_graph(registry, graph, ["3"])
    assert result.values["2"][0] == [5, 5, 5]
    assert result.values["3"][0] == [10, 10, 10]
    with pytest.raises(NodeInputError, match="multi") as caught:
        call(registry, "PysssssRepeater", source=1, output="multi")
    assert caught.value.input == "output"
    assert call(registry, "PysssssRepeater", source="x", repeats=0) == []


def test_save_and_load_text_stay_in_their_folders(registry, tmp_folders):
    def save(text, **widgets):
        return call(registry, "PysssssSaveText", text=text, **{"root_dir": "output", "file": "notes/a.b.txt",
                                                               **widgets})

    assert save("one") == ("one", "notes/a")  # subfolder made; the name up to its first dot
    assert save("two") == ("one\ntwo", "notes/a")
    assert save("three", insert=False) == ("one\ntwothree", "notes/a")
    assert save("new", append="overwrite") == ("new", "notes/a")
    assert (tmp_folders.outputs / "notes" / "a.b.txt").read_text() == "new"
    with pytest.raises(NodeInputError, match="already exists"):
        save("x", append="new only")
    assert call(registry, "PysssssLoadText", root_dir="output", file="notes/a.b.txt") == ("new", "notes/a")
    (tmp_folders.inputs / "prompt.txt").write_text("from input", encoding="utf-8")
    graph = {"1": {"class_type": "LoadText|pysssss", "inputs": {"root_dir": "input", "file": "prompt.txt"}},
             "2": {"class_type": "SaveText|pysssss", "inputs": {"root_dir": "temp", "file": "copy.txt",
                                                                "append": "append", "insert": True,
                                                                "text": ["1", 0]}}}
    result = run_graph(registry, graph)
    assert (tmp_folders.temp / "copy.txt").read_text() == "from input"
    run_graph(registry, graph)  # an output node that writes runs again, though nothing changed
    assert (tmp_folders.temp / "copy.txt").read_text() == "from input\nfrom input"
    assert result.values["2"] == ("from input", "copy")
    for name in ("../outside.txt", "/etc/passwd", "[none]", ""):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "PysssssLoadText", root_dir="input", file=name)
        assert caught.value.input == "file"
        with pytest.raises(NodeInputError):
            save("x", file=name)
    assert not (tmp_folders.home / "outside.txt").exists()


def test_only_save_text_makes_the_folder(registry, tmp_folders):
    """Planning a run reads Load Text's fingerprint: no folder is made then, only when writing."""
    assert not tmp_folders.temp.exists()
    assert registry.get("PysssssLoadText").fingerprint(root_dir="temp", file="a.txt") is None
    with pytest.raises(NodeInputError, match="no file"):
        call(registry, "PysssssLoadText", root_dir="temp", file="a.txt")
    assert not tmp_folders.temp.exists()
    assert call(registry, "PysssssSaveText", text="t", root_dir="temp", file="a.txt") == ("t", "a")
    assert (tmp_folders.temp / "a.txt").read_text() == "t"


def test_save_text_leaves_the_input_folders_other_files_alone(registry, tmp_folders):
    """Nothing but outputs and temp may be overwritten: in the input folder only .txt files (the
    pack's lists show only those) are appended to or overwritten."""
    def save(file, append):
        return call(registry, "PysssssSaveText", text="x", root_dir="input", file=file, append=append)

    tmp_folders.inputs.mkdir(parents=True, exist_ok=True)
    mask = tmp_folders.inputs / "masks" / "mask.png"
    mask.parent.mkdir()
    mask.write_bytes(b"\x89PNG not text")
    for append in ("overwrite", "append", "new only"):
        with pytest.raises(NodeInputError) as caught:
            save("masks/mask.png", append)
        assert caught.value.input == "file"
    assert mask.read_bytes() == b"\x89PNG not text"
    (tmp_folders.inputs / "prompt.txt").write_text("old", encoding="utf-8")
    assert save("prompt.txt", "overwrite") == ("x", "prompt") and save("prompt.txt", "append") == ("x\nx", "prompt")
    assert save("masks/new.png", "append") == ("x", "masks/new")  # a new file: nothing overwritten


def test_sound_and_notification_pass_values_on(registry):
    graph = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 4}},
             "2": {"class_type": "PlaySound|pysssss", "inputs": {"any": ["1", 0], "mode": "always", "volume": 0.5}},
             "3": {"class_type": "SystemNotification|pysssss", "inputs": {"message": "done", "any": ["2", 0],
                                                                          "mode": "on empty queue"}},
             "4": {"class_type": "MathExpression|pysssss", "inputs": {"expression": "a + 1", "a": ["3", 0]}}}
    result = run_graph(registry, graph)
    assert result.values["4"][0] == [5] and result.outputs["2"] == {"a": []} and result.outputs["3"] == {"a": []}


def test_reroute_primitive_forwards_or_holds_a_value(registry):
    """In the pack's editor a Reroute Primitive with no input holds the widget of what it feeds
    (here EmptyImage's width, converted to an input) and saves its value."""
    nodes = [
        ui_node(1, "ReroutePrimitive|pysssss", [40], [("value", "*", None, False)], [("INT", "INT", [1])]),
        ui_node(2, "ReroutePrimitive|pysssss", [], [("value", "*", 1, False)], [("INT", "INT", [2])]),
        ui_node(3, "EmptyImage", [512, 24, 1, 0], [("width", "INT", 2, True)], [("IMAGE", "IMAGE", [])]),
    ]
    workflow = parse_workflow(ui_graph(nodes, [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "INT"]]), registry)
    assert workflow.nodes["3"].inputs["width"] == 40
    result = Executor(registry).run(workflow, outputs=["3"])
    assert result.ok and result.values["3"][0].shape == (1, 24, 40, 3)
    graph = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 40}},
             "2": {"class_type": "ReroutePrimitive|pysssss", "inputs": {"value": ["1", 0]}},
             "3": {"class_type": "EmptyImage", "inputs": {"width": ["2", 0], "height": 8, "batch_size": 1,
                                                          "color": 0}}}
    assert run_graph(registry, graph, ["3"]).values["3"][0].shape == (1, 8, 40, 3)
    # queued by the pack's editor, one holding a widget sends its value: read as a Primitive of it
    graph["2"]["inputs"]["value"] = 48
    assert run_graph(registry, graph, ["3"]).values["3"][0].shape == (1, 8, 48, 3)
    graph["2"]["inputs"]["value"] = "48"  # text where a number goes: the Primitive's type is refused there
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["3"])
    assert not result.ok and result.problems[0].node_id == "3"
