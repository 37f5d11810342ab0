"""WAS Node Suite's later layouts (nodes/pack_nodes_was.py, nodes/pack_nodes_was_image.py): each
changed node read from a UI save and an API prompt in both the suite's 2.2.2 layout and its later
one, against Python / Pillow references; and the later suite's logic and text nodes."""

import operator
import random
import re

import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_was import IMAGES, pictures, tensor


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def link(id, src, src_slot, dst, dst_slot, type):
    return [id, src, src_slot, dst, dst_slot, type]


def widgets_of(workflow, registry, node_id):
    return next(n["widgets_values"] for n in export_ui(workflow, registry)["nodes"] if n["id"] == node_id)


# -- Text Concatenate -------------------------------------------------------------------------------


def later_concatenate(delimiter, clean_whitespace, texts):
    """The later pack's joining, written from its description: the connected texts in name
    order, stripped when cleaning, empty ones left out, joined by the delimiter ("\\n" typed)."""
    texts = [t.strip() if clean_whitespace == "true" else t for t in texts if t is not None]
    return ("\n" if delimiter == "\\n" else delimiter).join(t for t in texts if t != "")


@pytest.mark.parametrize("delimiter, clean, texts", [
    (", ", "true", [" a ", "", "  ", "d"]), (", ", "false", [" a ", "", "  ", "d"]),
    ("\\n", "true", ["x", None, "y", None]),
    ("", "false", ["a", "b", None, "c"]), (" | ", "true", [None, None, None, None]),
])
def test_text_concatenate_later_layout_joins_as_the_pack(registry, delimiter, clean, texts):
    inputs = dict(zip(("text_a", "text_b", "text_c", "text_d"), texts))
    assert call(registry, "WasTextConcatenate", delimiter=delimiter, clean_whitespace=clean, **inputs) == \
        later_concatenate(delimiter, clean, texts)


def test_text_concatenate_old_layout_keeps_the_old_joining(registry):
    """2.2.2: text_a + text_b always, text_c / text_d when not empty, a line break between them
    or nothing."""
    assert call(registry, "WasTextConcatenate", text_a="a", text_b="", linebreak_addition="true",
                text_c="", text_d="d") == "\n".join(["a", "", "d"])
    assert call(registry, "WasTextConcatenate", text_a=" a", text_b="b ", text_c="c",
                linebreak_addition="false") == " a" + "b " + "c"


def concatenate_graph(widgets):
    nodes = [ui_node(1, "Text Multiline", ["  red  "], outputs=[("STRING", "STRING", [1])]),
             ui_node(2, "Text Multiline", ["cube"], outputs=[("STRING", "STRING", [2])]),
             ui_node(3, "Text Concatenate", widgets, [("text_a", "STRING", 1, False), ("text_b", "STRING", 2, False)],
                     [("STRING", "STRING", [])])]
    return ui_graph(nodes, [link(1, 1, 0, 3, 0, "STRING"), link(2, 2, 0, 3, 1, "STRING")])


@pytest.mark.parametrize("widgets, want, saved", [
    (["true"], "  red  \ncube", ["\n", "false", "true"]),  # 2.2.2: linebreak_addition
    (["false"], "  red  cube", ["", "false", "false"]),
    ([" + ", "true"], "red + cube", [" + ", "true", ""]),  # later: delimiter, clean_whitespace
    (["\\n", "false"], "  red  \ncube", ["\\n", "false", ""]),
])
def test_text_concatenate_ui_saves_of_both_layouts(registry, widgets, want, saved):
    graph = concatenate_graph(widgets)
    assert run_graph(registry, graph, ["3"]).values["3"] == (want,)
    workflow = parse_workflow(graph, registry)
    assert widgets_of(workflow, registry, 3) == saved  # the later layout (plus the old input, "" when unset)
    again = parse_workflow(export_api(workflow, registry), registry)
    assert again.nodes["3"].inputs == {"linebreak_addition": "", **workflow.nodes["3"].inputs}
    assert run_graph(registry, export_ui(workflow, registry), ["3"]).values["3"] == (want,)


def test_text_concatenate_api_prompts_of_both_layouts(registry):
    graph = {
        "1": {"class_type": "Text String", "inputs": {"text": " a ", "text_b": "b", "text_c": "", "text_d": ""}},
        "2": {"class_type": "Text Concatenate", "inputs": {"text_a": ["1", 0], "text_b": ["1", 1],
                                                           "linebreak_addition": "true"}},
        "3": {"class_type": "Text Concatenate", "inputs": {"delimiter": "; ", "clean_whitespace": "true",
                                                           "text_a": ["1", 0], "text_c": ["1", 1]}},
    }
    values = run_graph(registry, graph, ["2", "3"]).values
    assert values["2"] == (" a \nb",) and values["3"] == ("; ".join(["a", "b"]),)
    exported = export_api(parse_workflow(graph, registry), registry)
    assert exported["2"]["inputs"]["linebreak_addition"] == "true"
    assert {k: v for k, v in exported["3"]["inputs"].items() if k != "linebreak_addition"} == graph["3"]["inputs"]


# -- Text Find and Replace's counts -----------------------------------------------------------------


@pytest.mark.parametrize("text, find, replace", [
    ("a cat and a cat", "cat", "dog"), ("aaa", "a*", "-"), ("x1 y22", r"(\d+)", r"<\1>"), ("none", "z", "q"),
])
def test_find_and_replace_gives_re_subn_and_its_count(registry, text, find, replace):
    new, count = re.subn(find, replace, text)
    assert call(registry, "WasTextFindAndReplace", text=text, find=find, replace=replace) == \
        (new, count, float(count), count)


def test_find_and_replace_count_in_a_ui_save(registry):
    """A 2.2.2 save links output 0 only; a later one may link the count (output 1, a NUMBER)."""
    nodes = [ui_node(1, "Text Multiline", ["a b a"], outputs=[("STRING", "STRING", [1])]),
             ui_node(2, "Text Find and Replace", ["a", "z"], [("text", "STRING", 1, False)],
                     [("result_text", "STRING", [2]), ("replacement_count_number", "NUMBER", [3]),
                      ("replacement_count_float", "FLOAT", []), ("replacement_count_int", "INT", [])]),
             ui_node(3, "Text Multiline", ["unused"], outputs=[("STRING", "STRING", [])]),
             ui_node(4, "Number to String", [], [("number", "NUMBER", 3, False)], [("STRING", "STRING", [])])]
    graph = ui_graph(nodes, [link(1, 1, 0, 2, 0, "STRING"), link(3, 2, 1, 4, 0, "NUMBER")])
    result = run_graph(registry, graph, ["2", "4"]).values
    assert result["2"][0] == "z b z" and result["4"] == ("2",)


# -- the later suite's logic and text nodes ---------------------------------------------------------


@pytest.mark.parametrize("node, function", [
    ("WasLogicComparisonAnd", operator.and_), ("WasLogicComparisonOr", operator.or_),
    ("WasLogicComparisonXor", operator.xor),
])
def test_logic_comparisons_are_pythons_operators(registry, node, function):
    for a in (False, True):
        for b in (False, True):
            assert call(registry, node, boolean_a=a, boolean_b=b) is function(a, b)


def test_not_boolean_to_text_and_contains(registry):
    assert call(registry, "WasLogicNot", boolean=True) is False and call(registry, "WasLogicNot") is True
    assert call(registry, "WasBooleanToText", boolean=True) == str(True)
    assert call(registry, "WasBooleanToText", boolean=False) == str(False)
    for text, sub in (("A Red Cube", "red"), ("A Red Cube", "Red"), ("abc", ""), ("abc", "d")):
        assert call(registry, "WasTextContains", text=text, sub_text=sub) is (sub.lower() in text.lower())
        assert call(registry, "WasTextContains", text=text, sub_text=sub, case_insensitive=False) is (sub in text)


@pytest.mark.parametrize("text, separator, seed", [("a,b,c,d,e", ",", 0), ("red | cube | on | a table", " | ", 7),
                                                   ("single", ",", 3), ("", ",", 12345678901234)])
def test_text_shuffle_is_pythons_seeded_shuffle(registry, text, separator, seed):
    parts = text.split(separator)
    random.seed(seed)  # the pack seeds Python's own random, then shuffles
    random.shuffle(parts)
    assert call(registry, "WasTextShuffle", text=text, separator=separator, seed=seed) == separator.join(parts)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextShuffle", text=text, separator="", seed=seed)
    assert caught.value.input == "separator"


def test_logic_and_text_nodes_in_a_ui_save_and_an_api_prompt(registry):
    nodes = [
        ui_node(1, "Text Multiline", ["a, b, c"], outputs=[("STRING", "STRING", [1, 2])]),
        ui_node(2, "Text Contains", ["", "B", True], [("text", "STRING", 1, True)], [("BOOLEAN", "BOOLEAN", [3])]),
        ui_node(3, "Logic Comparison XOR", [False, True], [("boolean_a", "BOOLEAN", 3, True)],
                [("BOOLEAN", "BOOLEAN", [4])]),
        ui_node(4, "Logic NOT", [False], [("boolean", "BOOLEAN", 4, True)], [("BOOLEAN", "BOOLEAN", [5])]),
        ui_node(5, "Boolean To Text", [False], [("boolean", "BOOLEAN", 5, True)], [("STRING", "STRING", [])]),
        ui_node(6, "Text Shuffle", [", ", 5, "fixed"], [("text", "STRING", 2, False)], [("STRING", "STRING", [])]),
    ]
    links = [link(1, 1, 0, 2, 0, "STRING"), link(2, 1, 0, 6, 0, "STRING"), link(3, 2, 0, 3, 0, "BOOLEAN"),
             link(4, 3, 0, 4, 0, "BOOLEAN"), link(5, 4, 0, 5, 0, "BOOLEAN")]
    graph = ui_graph(nodes, links)
    values = run_graph(registry, graph, ["5", "6"]).values
    parts = "a, b, c".split(", ")
    random.Random(5).shuffle(parts)
    assert values["5"] == (str(not (True != True)),) and values["6"] == (", ".join(parts),)
    workflow = parse_workflow(graph, registry)
    assert widgets_of(workflow, registry, 6) == [", ", 5, "fixed"]
    api = export_api(workflow, registry)
    assert {api[k]["class_type"] for k in api} >= {"Text Contains", "Logic Comparison XOR", "Logic NOT",
                                                    "Boolean To Text", "Text Shuffle"}
    assert run_graph(registry, api, ["5", "6"]).values == values
    prompt = {"1": {"class_type": "Logic Comparison AND", "inputs": {"boolean_a": True, "boolean_b": True}},
              "2": {"class_type": "Logic Comparison OR", "inputs": {"boolean_a": ["1", 0], "boolean_b": False}},
              "3": {"class_type": "Boolean To Text", "inputs": {"boolean": ["2", 0]}}}
    assert run_graph(registry, prompt, ["3"]).values["3"] == ("True",)


# -- Image Save ----------------------------------------------------------------------------------------


LATER_SAVE = ["out", "pic", "_", 3, "false", "png", 150, 100, "false", "false", "false", "false", "true", "true", "true"]


@pytest.mark.parametrize("widgets", [
    ["out", "pic", "_", 3, "false", "png", 100, "false", "false", "false", "true", "true", "true"],  # mid-2023
    ["out", "pic", "_", 3, "false", "png", 100, "true", "false", "false", "false", "true", "true", "true"],  # + optimize
    ["out", "pic", "_", 3, "false", "png", 300, 100, "false", "false", "false", "true", "true", "true"],  # + dpi
    LATER_SAVE,
])
def test_image_save_ui_saves_of_each_layout(registry, tmp_folders, widgets):
    from PIL import Image
    nodes = [ui_node(1, "EmptyImage", [16, 12, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "Image Save", widgets, [("images", "IMAGE", 1, False)],
                     [("images", "IMAGE", []), ("files", "STRING", [])])]
    graph = ui_graph(nodes, [link(1, 1, 0, 2, 0, "IMAGE")])
    result = run_graph(registry, graph)
    assert result.outputs["2"]["images"] == [{"filename": "pic_001.png", "subfolder": "out", "type": "output"}]
    workflow = parse_workflow(graph, registry)
    saved = widgets_of(workflow, registry, 2)
    assert len(saved) == 15 and saved[:6] == widgets[:6] and saved[9:] == widgets[-6:]
    assert workflow.nodes["2"].inputs["dpi"] == (150 if widgets is LATER_SAVE else 300)
    assert workflow.nodes["2"].inputs["optimize_image"] == ("false" if widgets is LATER_SAVE else "true")
    with Image.open(tmp_folders.outputs / "out" / "pic_001.png") as picture:  # png keeps dots per metre
        assert picture.info["dpi"] == pytest.approx((workflow.nodes["2"].inputs["dpi"],) * 2, abs=0.05)
        assert "prompt" in picture.info or "workflow" in picture.info  # embed_workflow "true"


def test_image_save_later_inputs_and_outputs(registry, tmp_folders):
    from PIL import Image
    images, files = call(registry, "WasImageSave", images=IMAGES, output_path="", filename_prefix="shot",
                         extension="jpg", dpi=72, quality=90, optimize_image="false")
    assert images is IMAGES
    assert files == [str(tmp_folders.outputs.resolve() / f"shot_000{i}.jpg") for i in (1, 2)]
    for path, want in zip(files, pictures(IMAGES)):
        with Image.open(path) as saved:
            assert saved.format == "JPEG" and saved.info["dpi"] == pytest.approx((72, 72), abs=0.01)
            reference = tmp_folders.outputs / "reference.jpg"
            want.save(reference, format="JPEG", quality=90, dpi=(72, 72))
            with Image.open(reference) as expected:
                assert torch.equal(tensor(saved.convert("RGB")), tensor(expected.convert("RGB")))
    _, files = call(registry, "WasImageSave", images=IMAGES[:1], output_path="", filename_prefix="flat",
                    extension="bmp")
    with Image.open(files[0]) as saved:
        assert saved.format == "BMP" and torch.equal(tensor(saved.convert("RGB")), tensor(pictures(IMAGES)[0]))
    api = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
           "2": {"class_type": "Image Save", "inputs": {"images": ["1", 0], "output_path": "api", "filename_prefix": "p",
                                                        "filename_delimiter": "_", "filename_number_padding": 2,
                                                        "filename_number_start": "false", "extension": "png",
                                                        "quality": 100, "lossless_webp": "false",
                                                        "overwrite_mode": "false", "show_history": "false",
                                                        "show_history_by_prefix": "true", "embed_workflow": "false",
                                                        "show_previews": "true"}}}  # a mid-2023 prompt: no dpi
    run_graph(registry, api)
    with Image.open(tmp_folders.outputs / "api" / "p_01.png") as saved:
        assert "prompt" not in saved.info and saved.info["dpi"] == pytest.approx((300, 300), abs=0.05)
    assert export_api(parse_workflow(api, registry), registry)["2"]["inputs"]["dpi"] == 300


# -- Load Image Batch --------------------------------------------------------------------------------


@pytest.fixture
def batch_folder(tmp_folders):
    from PIL import Image
    folder = tmp_folders.inputs / "batch"
    folder.mkdir()
    for name, color in {"a.png": (255, 0, 0), "b.jpg": (0, 0, 255), "c.png": (0, 255, 0)}.items():
        Image.new("RGB", (8, 8), color).save(folder / name)
    return folder


def test_load_image_batch_random_mode_and_extension_free_names(registry, batch_folder):
    files = sorted(p.name for p in batch_folder.iterdir())
    for seed in range(6):
        random.seed(seed)
        want = files[int(random.random() * len(files))]  # the pack's draw
        random.seed(seed)
        image, name = call(registry, "WasLoadImageBatch", path="batch", mode="random")
        assert name == want and image.shape == (1, 8, 8, 3)
    assert call(registry, "WasLoadImageBatch", path="batch", index=1, filename_text_extension="false")[1] == "b"


@pytest.mark.parametrize("widgets, want", [
    (["single_image", 2, "Batch 001", "batch", "*", "false"], "c.png"),  # without filename_text_extension
    (["single_image", 2, "Batch 001", "batch", "*", "false", "false"], "c"),
])
def test_load_image_batch_ui_saves_of_both_layouts(registry, batch_folder, widgets, want):
    nodes = [ui_node(1, "Load Image Batch", widgets, outputs=[("image", "IMAGE", []), ("filename_text", "STRING", [])])]
    graph = ui_graph(nodes)
    assert run_graph(registry, graph, ["1"]).values["1"][1] == want
    workflow = parse_workflow(graph, registry)
    assert widgets_of(workflow, registry, 1) == widgets[:6] + [widgets[6] if len(widgets) == 7 else "true"]
    api = export_api(workflow, registry)
    assert api["1"]["class_type"] == "Load Image Batch" and run_graph(registry, api, ["1"]).values["1"][1] == want


def test_load_image_batch_random_mode_runs_every_time(registry, batch_folder):
    cls = registry.get("WasLoadImageBatch")
    assert cls.fingerprint(mode="random", path="batch") != cls.fingerprint(mode="random", path="batch")
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasLoadImageBatch", path="batch", pattern="*.gif", mode="random")
    assert caught.value.input == "pattern"


# -- renamed classes and later behaviour ----------------------------------------------------------------


def test_text_multiline_fills_in_tokens_as_the_later_pack(registry):
    import socket
    text = "# a comment\nshot on [hostname]\n  # another\n[time(%Y)]"
    want = "\n".join(line for line in text.split("\n") if not line.strip().startswith("#"))
    got = call(registry, "WasTextMultiline", text=text)
    assert got.split("\n")[0] == want.split("\n")[0].replace("[hostname]", socket.gethostname())
    assert re.fullmatch(r"\d{4}", got.split("\n")[1])


def test_seed_and_ksampler_answer_to_both_names(registry):
    assert call(registry, "WasSeed", seed=7) == ({"seed": 7}, 7, 7.0, 7)
    for name, ours in (("Seed", "WasSeed"), ("Seed (Legacy)", "WasSeed"), ("KSampler (WAS)", "WasKSampler"),
                       ("KSampler (Legacy)", "WasKSampler")):
        assert registry.comfy_node(name).node_type == ours
    prompt = {"1": {"class_type": "Seed", "inputs": {"seed": 5}},
              "2": {"class_type": "Seed (Legacy)", "inputs": {"seed": 6}},
              "3": {"class_type": "Number to String", "inputs": {"number": ["1", 1]}}}
    assert run_graph(registry, prompt, ["3"]).values["3"] == ("5",)
    exported = export_api(parse_workflow(prompt, registry), registry)
    assert {k: v["class_type"] for k, v in exported.items()} == {k: v["class_type"] for k, v in prompt.items()}
