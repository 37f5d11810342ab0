"""WAS Node Suite's nodes (nodes/pack_nodes_was.py), read from UI graphs in the pack's saved shape
and from API prompts under its class names: text nodes against Python's re / random / str, the
number and logic nodes against Python's operators, the text files inside their folders (escapes
refused), the switches, sizes and loaders (the core loaders' results plus the file's name)."""

import math
import operator
import os
import random
import re
import time

import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from nodes import pack_nodes_was as was
from nodes import pack_nodes_was_image as was_image
from nodes.pack_nodes_was import is_prime, parse_tokens, replace_one_by_one, text_to_number, truncate
from nodes.strings import MAX_TEXT
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_pysssss import models  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def link(id, src, src_slot, dst, dst_slot, type):
    return [id, src, src_slot, dst, dst_slot, type]


# -- a UI save and an API prompt ------------------------------------------------------------------


def test_ui_graph_of_text_and_number_nodes_runs_and_round_trips(registry):
    """As the editor saves them: widgets in the pack's order (Random Number's seed followed by
    control_after_generate), linked text inputs without widgets."""
    nodes = [
        ui_node(1, "Text Multiline", ["# a comment\nred cube\n  # another\non a table"],
                outputs=[("STRING", "STRING", [1])]),
        ui_node(2, "Constant Number", ["float", 2.5], outputs=[("NUMBER", "NUMBER", [2]), ("FLOAT", "FLOAT", []),
                                                               ("INT", "INT", [])]),
        ui_node(3, "Random Number", ["integer", 1, 6, 42, "fixed"],
                outputs=[("NUMBER", "NUMBER", [3]), ("FLOAT", "FLOAT", []), ("INT", "INT", [])]),
        ui_node(4, "Number Operation", ["multiplication"], [("number_a", "NUMBER", 2, False),
                                                            ("number_b", "NUMBER", 3, False)],
                [("NUMBER", "NUMBER", [4]), ("FLOAT", "FLOAT", []), ("INT", "INT", [])]),
        ui_node(5, "Number to String", [], [("number", "NUMBER", 4, False)], [("STRING", "STRING", [5])]),
        ui_node(6, "Text Concatenate", ["true"], [("text_a", "STRING", 1, False), ("text_b", "STRING", 5, False)],
                [("STRING", "STRING", [])]),
    ]
    links = [link(1, 1, 0, 6, 0, "STRING"), link(2, 2, 0, 4, 0, "NUMBER"), link(3, 3, 0, 4, 1, "NUMBER"),
             link(4, 4, 0, 5, 0, "NUMBER"), link(5, 5, 0, 6, 1, "STRING")]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, registry)
    assert workflow.nodes["3"].inputs["seed"] == 42
    values = run_graph(registry, graph, ["6"]).values
    drawn = random.Random(42).randint(1, 6)  # the pack: random.seed(seed); random.randint(minimum, maximum)
    assert values["6"][0] == f"red cube\non a table\n{2.5 * drawn}"
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[3][:4] == ["integer", 1, 6, 42] and saved[6] == ["\n", "false", "true"] and saved[2] == ["float", 2.5]
    again = parse_workflow(export_api(workflow, registry), registry)
    assert {k: n.inputs for k, n in again.nodes.items()} == {k: n.inputs for k, n in workflow.nodes.items()}


def test_api_prompt_with_the_packs_class_names(registry):
    graph = {
        "1": {"class_type": "Text String", "inputs": {"text": "a cat sat", "text_b": "cat", "text_c": "dog",
                                                      "text_d": ""}},
        "2": {"class_type": "Text Find and Replace Input", "inputs": {"text": ["1", 0], "find": ["1", 1],
                                                                      "replace": ["1", 2]}},
        "3": {"class_type": "Text Find and Replace", "inputs": {"text": ["2", 0], "find": r"(\w+) sat",
                                                                "replace": r"sat \1"}},
        "4": {"class_type": "Logic Boolean", "inputs": {"boolean_number": 0}},
        "5": {"class_type": "Text Input Switch", "inputs": {"text_a": ["1", 0], "text_b": ["3", 0],
                                                            "boolean_number": ["4", 0]}},
        "6": {"class_type": "Number Input Condition", "inputs": {"number_a": ["4", 0], "number_b": ["7", 0],
                                                                 "return_boolean": "false",
                                                                 "comparison": "greater-than"}},
        "7": {"class_type": "Text to Number", "inputs": {"text": ["8", 0]}},
        "8": {"class_type": "Text String", "inputs": {"text": "-7"}},
    }
    values = run_graph(registry, graph, ["5", "6"]).values
    assert values["5"] == ("a sat dog",)
    assert values["6"] == (0, 0.0, 0)  # 0 > -7: number_a
    exported = export_api(parse_workflow(graph, registry), registry)
    assert {k: v["class_type"] for k, v in exported.items()} == {k: v["class_type"] for k, v in graph.items()}
    assert exported["3"]["inputs"] == graph["3"]["inputs"]


# -- text -----------------------------------------------------------------------------------------


def test_text_multiline_leaves_comment_lines_out(registry):
    text = "one\n # two\n\nthree\r\n#four"
    assert call(registry, "WasTextMultiline", text=text) == "\n".join(
        line for line in text.split("\n") if not line.strip().startswith("#"))
    assert call(registry, "WasTextMultiline", text="") == ""


def test_text_concatenate_skips_empty_optional_texts(registry):
    assert call(registry, "WasTextConcatenate", text_a="a", text_b="", linebreak_addition="true",
                text_c="", text_d="d") == "a\n\nd"
    assert call(registry, "WasTextConcatenate", text_a="a", text_b="b", text_c="c", linebreak_addition="false") == "abc"
    assert call(registry, "WasTextConcatenate", text_a="a", text_b="b", text_c="c") == "a, b, c"  # the later layout


def naive_one_by_one(text, find, replace):
    for _ in range(text.count(find)):
        text = text.replace(find, replace, 1)
    return text


@pytest.mark.parametrize("text, find, replace", [
    ("aaaaabbbabab", "ab", "b"), ("ab a", "a", "xa"), ("abc", "", "-"), ("aabbXab", "ab", ""),
    ("the cat and the cat", "cat", "dog"), ("x", "y", "z"), ("aaaa", "aa", "a"),
])
def test_find_and_replace_input_replaces_first_occurrences_one_by_one(text, find, replace):
    assert replace_one_by_one(text, find, replace) == naive_one_by_one(text, find, replace)


def test_find_and_replace_input_matches_the_loop_on_random_texts():
    rng = random.Random(3)
    for _ in range(3000):
        text, find, replace = ("".join(rng.choice("ab") for _ in range(rng.randint(0, n))) for n in (16, 3, 4))
        assert replace_one_by_one(text, find, replace) == naive_one_by_one(text, find, replace)


def test_find_and_replace_input_is_quick_on_many_matches():
    started = time.monotonic()
    assert replace_one_by_one("ab" * 200_000, "ab", "c") == "c" * 200_000
    assert time.monotonic() - started < 5


def test_find_and_replace_is_re_sub_guarded(registry):
    text = "color: red, colour: blue"
    assert call(registry, "WasTextFindAndReplace", text=text, find=r"colou?r", replace="hue")[0] == \
        re.sub(r"colou?r", "hue", text)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextFindAndReplace", text="a", find="(", replace="")
    assert caught.value.input == "find"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextFindAndReplace", text="a", find="a", replace=r"\9")
    assert caught.value.input == "replace"
    with pytest.raises(NodeInputError, match="backtracks") as caught:
        call(registry, "WasTextFindAndReplace", text="a" * 40 + "b", find="(a+)+$", replace="")
    assert caught.value.input == "find"


def test_find_and_replace_by_dictionary_draws_as_the_pack_does(registry):
    dictionary = {"color": ["red", "green", "blue", "gold"], "shape": ["cube", "ball"]}
    text = "a __color__ __shape__ and a __color__ __shape__"
    got = call(registry, "WasTextFindAndReplaceByDictionary", text=text, dictionary=dictionary, seed=5)
    # the pack: random.seed(seed); each replacement random.choice, then seed += 1 and reseed
    random.seed(5)
    seed, want = 5, text
    for term, lines in dictionary.items():
        for _ in range(want.count(f"__{term}__")):
            want = want.replace(f"__{term}__", random.choice(lines), 1)
            seed += 1
            random.seed(seed)
    assert got == want
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextFindAndReplaceByDictionary", text="x", dictionary=["no"], seed=0)
    assert caught.value.input == "dictionary"
    for bad in ({"a": 5}, {"a": "xyz"}, {"a": ["x", 5]}):
        with pytest.raises(NodeInputError, match="expected a list of texts") as caught:
            call(registry, "WasTextFindAndReplaceByDictionary", text="__a__", dictionary=bad, seed=0)
        assert caught.value.input == "dictionary"


def test_find_and_replace_by_dictionary_is_linear_and_checks_the_size(registry):
    text = "__a__" * 80000  # replaced one by one: seconds
    started = time.perf_counter()
    got = call(registry, "WasTextFindAndReplaceByDictionary", text=text, dictionary={"a": ["x", "y"]}, seed=3)
    assert time.perf_counter() - started < 2
    draw, seed, want = random.Random(3), 3, []
    for _ in range(80000):
        want.append(draw.choice(["x", "y"]))
        seed += 1
        draw.seed(seed)
    assert got == "".join(want)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextFindAndReplaceByDictionary", text="__a__" * 100,
             dictionary={"a": ["z" * (MAX_TEXT // 50)]}, seed=0)
    assert caught.value.input == "dictionary"


def test_random_line_is_pythons_seeded_choice(registry):
    text = "one\ntwo\nthree\nfour\nfive"
    for seed in (0, 1, 12345, 2 ** 63):
        random.seed(seed)
        assert call(registry, "WasTextRandomLine", text=text, seed=seed) == random.choice(text.split("\n"))


@pytest.mark.parametrize("text, keep, side, by, want", [
    ("abcdefghijkl", 4, "end", "characters", "ijkl"), ("abcdefghijkl", 4, "beginning", "characters", "abcd"),
    ("one  two three four", 2, "end", "words", "three four"), ("one two three", 2, "beginning", "words", "one two"),
])
def test_truncate(text, keep, side, by, want):
    assert truncate(text, keep, side, by) == want


def test_text_to_number_reads_as_the_pack():
    assert text_to_number("3") == 3.0 and isinstance(text_to_number("3"), float)
    assert text_to_number("2.5") == 2.5 and text_to_number("-7") == -7 and isinstance(text_to_number("-7"), int)
    with pytest.raises(NodeInputError) as caught:
        text_to_number("seven")
    assert caught.value.input == "text"


def test_text_lists_and_dictionaries(registry):
    assert call(registry, "WasTextList", text_a="a", text_b="", text_c="c", text_g="g") == ["a", "c", "g"]
    assert call(registry, "WasTextListConcatenate", list_a=["a"], list_b=["b"], list_c=["c"]) == ["a", "b"]
    assert call(registry, "WasTextDictionaryUpdate", dictionary_a={"x": [1], "y": [2]},
                dictionary_b={"y": [3]}, dictionary_d={"z": []}) == {"x": [1], "y": [3], "z": []}
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextListConcatenate", list_a="a", list_b=["b"])
    assert caught.value.input == "list_a"


def test_parse_tokens_fills_in_the_built_in_tokens():
    now = 1_700_000_000.75
    got = parse_tokens("[time]/[time(%Y-%m-%d)]/[hostname]/[custom]", now)
    assert got == f"1700000000/{time.strftime('%Y-%m-%d', time.localtime(now))}/{os.uname().nodename}/[custom]"


@pytest.mark.parametrize("text", ["[time(%Y)]-[time(%m)]", "[time(a(%d))]", "[time(%H\n)]", "[time(%Y)", "x)][time(]",
                                  "[time(%Y)]\r[time(%j)]\n[time(", "[time([time(%Y)])]"])
def test_parse_tokens_time_formats_as_the_pack_regex_and_fast_on_unclosed_ones(text):
    now = 1_700_000_000.0
    pack = re.sub(r"\[time\((.*?)\)\]", lambda m: time.strftime(m.group(1), time.localtime(now)), text)
    assert parse_tokens(text, now) == pack
    started = time.perf_counter()
    parse_tokens("[time(" * 20000 + text, now)  # the lazy regex took seconds here
    assert time.perf_counter() - started < 0.5


def test_shared_token_and_counter_tables_are_bounded(registry, tmp_folders, monkeypatch):
    from PIL import Image
    monkeypatch.setattr(was, "CUSTOM_TOKENS", {})
    monkeypatch.setattr(was, "LINE_COUNTERS", {})
    monkeypatch.setattr(was_image, "BATCH_COUNTERS", {})
    call(registry, "WasTextAddTokens", tokens="\n".join(f"[t{i}]: v{i}" for i in range(was.MAX_REMEMBERED + 5)))
    assert len(was.CUSTOM_TOKENS) == was.MAX_REMEMBERED and "[t4]" not in was.CUSTOM_TOKENS  # the oldest went
    call(registry, "WasTextAddTokenByInput", token_name="[t5]", token_value="again")  # set again: now the newest
    call(registry, "WasTextAddTokenByInput", token_name="[new]", token_value="x")
    assert list(was.CUSTOM_TOKENS)[-2:] == ["[t5]", "[new]"] and "[t6]" not in was.CUSTOM_TOKENS
    assert parse_tokens("[t5] [new] [t1004]") == "again x v1004"
    for node, name, widgets in (("WasTextAddTokens", "tokens", {"tokens": "[" + "n" * 300 + "]: v"}),
                                ("WasTextAddTokenByInput", "token_name", {"token_name": "n" * 300, "token_value": "v"}),
                                ("WasTextAddTokenByInput", "token_value",
                                 {"token_name": "[big]", "token_value": "v" * (MAX_TEXT + 1)})):
        with pytest.raises(NodeInputError) as caught:
            call(registry, node, **widgets)
        assert caught.value.input == name
    for i in range(was.MAX_REMEMBERED + 3):
        call(registry, "WasTextLoadLineFromFile", multiline_text="a\nb", label=f"l{i}")
    assert len(was.LINE_COUNTERS) == was.MAX_REMEMBERED and "l0" not in was.LINE_COUNTERS
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextLoadLineFromFile", multiline_text="a", label="l" * 300)
    assert caught.value.input == "label"
    (tmp_folders.inputs / "b").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_folders.inputs / "b" / "a.png")
    for i in range(was.MAX_REMEMBERED + 3):
        call(registry, "WasLoadImageBatch", path="b", mode="incremental_image", label=f"l{i}")
    assert len(was_image.BATCH_COUNTERS) == was.MAX_REMEMBERED and "l2" not in was_image.BATCH_COUNTERS
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasLoadImageBatch", path="b", mode="incremental_image", label="l" * 300)
    assert caught.value.input == "label"


def test_parse_a1111_embeddings(registry, tmp_folders):
    folder = tmp_folders.models / "embeddings"
    folder.mkdir(exist_ok=True)
    (folder / "easynegative.safetensors").write_bytes(b"x")
    (folder / "bad-hands.pt").write_bytes(b"x")
    text = "easynegative, bad-hands, noteasynegative"
    want = re.sub(r"\beasynegative\b", "embedding:easynegative", text)
    want = re.sub(r"\bbad\-hands\b", "embedding:bad-hands", want)
    assert call(registry, "WasTextParseA1111Embeddings", text=text) == want


# -- text files -----------------------------------------------------------------------------------


def test_load_text_file_reads_inside_the_input_folder_only(registry, tmp_folders, tmp_path):
    (tmp_folders.inputs / "lists").mkdir()
    (tmp_folders.inputs / "lists" / "colors.v1.txt").write_text("red\n# not this\ngreen\r\nblue\n", encoding="utf-8")
    text, dictionary = call(registry, "WasLoadTextFile", file_path="lists/colors.v1.txt")
    assert text == "red\ngreen\nblue" and dictionary == {"colors": ["red", "green", "blue"]}
    assert call(registry, "WasLoadTextFile", file_path="lists/colors.v1.txt", dictionary_name="c")[1] == \
        {"c": ["red", "green", "blue"]}
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (tmp_folders.inputs / "link.txt").symlink_to(outside)
    for name in ("../secret.txt", str(outside), "link.txt", "", "missing.txt"):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "WasLoadTextFile", file_path=name)
        assert caught.value.input == "file_path"


def test_load_line_from_file_by_index_and_automatically(registry, tmp_folders):
    (tmp_folders.inputs / "prompts.txt").write_text("  first \nsecond\nthird\n", encoding="utf-8")
    was.LINE_COUNTERS.clear()
    assert call(registry, "WasTextLoadLineFromFile", file_path="prompts.txt", mode="index", index=4) == \
        ("second", {"[filename]": ["first", "second", "third"]})
    lines = [call(registry, "WasTextLoadLineFromFile", file_path="prompts.txt", label="a")[0] for _ in range(4)]
    assert lines == ["first", "second", "third", "first"]
    assert call(registry, "WasTextLoadLineFromFile", file_path="prompts.txt", label="b")[0] == "first"
    assert call(registry, "WasTextLoadLineFromFile", multiline_text="x\ny", label="a")[0] == "x"  # new source
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextLoadLineFromFile", multiline_text="x\ny", mode="index", index=2)
    assert caught.value.input == "index"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextLoadLineFromFile", file_path="../prompts.txt")
    assert caught.value.input == "file_path"
    (tmp_folders.inputs / "empty.txt").write_text("")
    (tmp_folders.inputs / "blank.txt").write_text("\n")
    with pytest.raises(NodeInputError, match="empty") as caught:
        call(registry, "WasTextLoadLineFromFile", file_path="empty.txt")
    assert caught.value.input == "file_path"
    assert call(registry, "WasTextLoadLineFromFile", file_path="blank.txt", mode="index")[0] == ""


def test_text_files_past_max_text_are_refused_before_reading(registry, tmp_folders, monkeypatch):
    from pathlib import Path
    (tmp_folders.inputs / "long.txt").write_text("a\n" * 8)  # 16 bytes
    monkeypatch.setattr(was, "MAX_TEXT", 15)
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: pytest.fail("read"))
    for node, widgets in (("WasLoadTextFile", {}), ("WasTextLoadLineFromFile", {"mode": "index"})):
        with pytest.raises(NodeInputError, match="16 bytes") as caught:
            call(registry, node, file_path="long.txt", **widgets)
        assert caught.value.input == "file_path"


def test_save_text_file_numbers_files_inside_the_output_folder(registry, tmp_folders, tmp_path):
    day = time.strftime("%Y-%m-%d")
    call(registry, "WasSaveTextFile", text="one", path="./ComfyUI/output/[time(%Y-%m-%d)]")
    call(registry, "WasSaveTextFile", text="two", path="output/[time(%Y-%m-%d)]")
    (tmp_folders.outputs / "notes").mkdir()
    (tmp_folders.outputs / "notes" / "p-007.txt").write_text("old")
    call(registry, "WasSaveTextFile", text="three", path="notes", filename_prefix="p", filename_delimiter="-",
         filename_number_padding=3)
    assert sorted(p.name for p in (tmp_folders.outputs / day).iterdir()) == ["ComfyUI_0001.txt", "ComfyUI_0002.txt"]
    assert (tmp_folders.outputs / day / "ComfyUI_0002.txt").read_text() == "two"
    assert (tmp_folders.outputs / "notes" / "p-008.txt").read_text() == "three"
    (tmp_folders.outputs / "elsewhere").symlink_to(tmp_path)
    for path in ("../escape", "/tmp/escape", "./ComfyUI/output/../../x", "elsewhere", "C:/Users"):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "WasSaveTextFile", text="x", path=path)
        assert caught.value.input == "path"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasSaveTextFile", text="x", path="notes", filename_prefix="../up")
    assert caught.value.input == "filename_prefix"
    call(registry, "WasSaveTextFile", text="four", path=str(tmp_folders.outputs / "notes"), filename_prefix="p",
         filename_delimiter="-", filename_number_padding=3)  # absolute, inside the output folder
    assert (tmp_folders.outputs / "notes" / "p-009.txt").read_text() == "four"


def test_save_text_file_creates_its_file_exclusively(registry, tmp_folders, tmp_path, monkeypatch):
    (tmp_folders.outputs / "notes").mkdir()
    (tmp_folders.outputs / "notes" / "n_0001.txt").symlink_to(tmp_path / "dangling.txt")  # a link to no file
    real = was.next_numbered_name
    taken = []

    def racing(folder, *args):  # another run writes the name between choosing it and creating it
        name = real(folder, *args)
        if not taken:
            taken.append(name)
            (folder / name).write_text("other run")
        return name

    monkeypatch.setattr(was, "next_numbered_name", racing)
    call(registry, "WasSaveTextFile", text="mine", path="notes", filename_prefix="n")
    assert not (tmp_path / "dangling.txt").exists()
    assert taken == ["n_0002.txt"] and (tmp_folders.outputs / "notes" / "n_0002.txt").read_text() == "other run"
    assert (tmp_folders.outputs / "notes" / "n_0003.txt").read_text() == "mine"


# -- numbers and logic ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation, function", [
    ("addition", operator.add), ("subtraction", operator.sub), ("division", operator.truediv),
    ("floor division", operator.floordiv), ("multiplication", operator.mul), ("exponentiation", operator.pow),
    ("modulus", operator.mod), ("greater-than", operator.gt), ("greater-than or equals", operator.ge),
    ("less-than", operator.lt), ("less-than or equals", operator.le), ("equals", operator.eq),
    ("does not equal", operator.ne),
])
def test_number_operation_is_pythons_operator(registry, operation, function):
    for a, b in ((7, 2), (-7.5, 2), (3, 3)):
        want = +function(a, b)
        assert call(registry, "WasNumberOperation", number_a=a, number_b=b, operation=operation) == \
            (want, float(want), int(want))


def test_number_operation_refusals(registry):
    for operation, b in (("division", 0), ("modulus", 0), ("exponentiation", 10 ** 6)):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "WasNumberOperation", number_a=2, number_b=b, operation=operation)
        assert caught.value.input == "number_b"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasNumberOperation", number_a="2", number_b=1)
    assert caught.value.input == "number_a"


def test_number_input_condition(registry):
    def condition(a, b, comparison, boolean="false"):
        return call(registry, "WasNumberInputCondition", number_a=a, number_b=b, return_boolean=boolean,
                    comparison=comparison)[0]

    assert condition(3, 9, "divisible by", "true") == 1 and condition(4, 9, "factor of") == 9
    assert condition(7, 1, "if A prime") == 7 and condition(9, 1, "if A prime") == 1
    assert condition(0, 5, "and", "true") == 0 and condition(0, 5, "or") == 0
    assert [n for n in range(200) if is_prime(n)] == [n for n in range(200)
                                                      if n > 1 and all(n % d for d in range(2, n))]
    with pytest.raises(NodeInputError) as caught:
        condition(0, 5, "divisible by")
    assert caught.value.input == "number_a"


def test_constant_random_and_multiple_of(registry):
    assert call(registry, "WasConstantNumber", number_type="integer", number=-2.7) == (-2, -2.0, -2)
    assert call(registry, "WasConstantNumber", number_type="bool", number=0.5) == (0, 0.0, 0)
    assert call(registry, "WasConstantNumber", number_type="float", number=2.5) == (2.5, 2.5, 2)
    draw = random.Random(9)
    assert call(registry, "WasRandomNumber", number_type="float", minimum=-1, maximum=1, seed=9)[0] == \
        draw.uniform(-1, 1)
    assert call(registry, "WasRandomNumber", number_type="bool", seed=9)[0] == random.Random(9).random()
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasRandomNumber", number_type="integer", minimum=0.5, maximum=3, seed=1)
    assert caught.value.input == "minimum"
    assert call(registry, "WasNumberMultipleOf", number=13, multiple=8) == (16, 16.0, 16)
    assert call(registry, "WasNumberMultipleOf", number=16, multiple=8)[0] == 16
    assert call(registry, "WasIntegerPlaceCounter", int_input=12345) == 5
    assert call(registry, "WasNumberPI") == (math.pi, math.pi)
    assert call(registry, "WasNumberToSeed", number=12) == {"seed": 12}
    assert call(registry, "WasNumberToInt", number=-3.9) == -3
    assert call(registry, "WasNumberToString", number=2.0) == "2.0"


# -- sizes and switches ---------------------------------------------------------------------------


def test_sizes_and_aspect_ratio(registry):
    image = torch.zeros(2, 1080, 1920, 3)
    assert call(registry, "WasImageSizeToNumber", image=image) == (1920, 1080, 1920.0, 1080.0, 1920, 1080)
    assert call(registry, "WasLatentSizeToNumber", samples={"samples": torch.zeros(1, 4, 96, 128)})[:2] == (128, 96)
    gcd = math.gcd(1920, 1080)
    assert call(registry, "WasImageAspectRatio", image=image) == \
        (1920 / 1080, 1920 / 1080, 1, f"{1920 // gcd}:{1080 // gcd}", "landscape")
    assert call(registry, "WasImageAspectRatio", image=image, width=512, height=768)[3:] == ("2:3", "portrait")
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageAspectRatio")
    assert caught.value.input == "image"


def test_switches_follow_boolean_number(registry):
    a, b = torch.zeros(1, 2, 2, 3), torch.ones(1, 2, 2, 3)
    assert call(registry, "WasImageInputSwitch", image_a=a, image_b=b, boolean_number=1) is a
    assert call(registry, "WasImageInputSwitch", image_a=a, image_b=b, boolean_number=0.4) is b
    assert call(registry, "WasLatentInputSwitch", latent_a={"a": 1}, latent_b={"b": 1}, boolean_number=0.6) == {"a": 1}
    assert call(registry, "WasNumberInputSwitch", number_a=2.5, number_b=7, boolean_number=0) == (7, 7.0, 7)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasVaeInputSwitch", vae_a=1, vae_b=2, boolean_number="yes")
    assert caught.value.input == "boolean_number"

# every input switch here: (class, ours, its _a / _b inputs' prefix, socket type)
SWITCHES = [("Image Input Switch", "WasImageInputSwitch", "image", "IMAGE"),
            ("Latent Input Switch", "WasLatentInputSwitch", "latent", "LATENT"),
            ("Conditioning Input Switch", "WasConditioningInputSwitch", "conditioning", "CONDITIONING"),
            ("Model Input Switch", "WasModelInputSwitch", "model", "MODEL"),
            ("VAE Input Switch", "WasVaeInputSwitch", "vae", "VAE"),
            ("CLIP Input Switch", "WasClipInputSwitch", "clip", "CLIP"),
            ("Upscale Model Switch", "WasUpscaleModelSwitch", "upscale_model", "UPSCALE_MODEL"),
            ("Text Input Switch", "WasTextInputSwitch", "text", "STRING"),
            ("Number Input Switch", "WasNumberInputSwitch", "number", "NUMBER")]


@pytest.mark.parametrize("comfy_name, ours, kind, socket", SWITCHES)
def test_switch_reads_both_layouts(registry, comfy_name, ours, kind, socket):
    """The later layout's boolean and the 2023 one's boolean_number, each alone; boolean first when
    both are given; neither is an error naming boolean."""
    a, b = (2.5, 7) if kind == "number" else ("first", "second")
    pick = lambda **switch: call(registry, ours, **{f"{kind}_a": a, f"{kind}_b": b}, **switch)  # noqa: E731
    first, second = ((a, float(a), int(a)), (b, float(b), int(b))) if kind == "number" else (a, b)
    assert pick(boolean=True) == first and pick(boolean=False) == second
    assert pick(boolean_number=1) == first and pick(boolean_number=0.6) == first
    assert pick(boolean_number=0) == second and pick(boolean_number=2) == second
    assert pick(boolean=False, boolean_number=1) == second
    with pytest.raises(NodeInputError) as caught:
        pick()
    assert caught.value.input == "boolean"
    # the pack's current input order: _a, _b, boolean (boolean_number after it, read from older saves)
    assert list(registry.comfy_node(comfy_name).input_specs)[:4] == [f"{kind}_a", f"{kind}_b", "boolean",
                                                                    "boolean_number"]


@pytest.mark.parametrize("comfy_name, ours, kind, socket", SWITCHES)
def test_switch_api_prompt_and_ui_save_in_both_layouts(registry, comfy_name, ours, kind, socket):
    """An API prompt and a UI save of each layout, read and written back as they were."""
    sources = {"1": {"class_type": "Logic Boolean Primitive", "inputs": {"boolean": False}},
               "2": {"class_type": "Constant Number", "inputs": {"number_type": "integer", "number": 0}}}
    for switch in ({"boolean": ["1", 0]}, {"boolean_number": ["2", 0]}):
        graph = {**sources, "3": {"class_type": comfy_name,
                                  "inputs": {f"{kind}_a": ["2", 0], f"{kind}_b": ["2", 0], **switch}}}
        workflow = parse_workflow(graph, registry)
        assert workflow.nodes["3"].type == ours
        assert export_api(workflow, registry)["3"] == graph["3"]
    for name, kind_of_switch, source in (("boolean", "BOOLEAN", 1), ("boolean_number", "NUMBER", 2)):
        nodes = [ui_node(1, "Logic Boolean Primitive", [True], outputs=[("BOOLEAN", "BOOLEAN", [1])]),
                 ui_node(2, "Constant Number", ["integer", 1], outputs=[("NUMBER", "NUMBER", [2])]),
                 ui_node(3, comfy_name, [], inputs=[(f"{kind}_a", socket, None, False),
                                                    (f"{kind}_b", socket, None, False),
                                                    (name, kind_of_switch, source, False)],
                         outputs=[(socket, socket, [])])]
        workflow = parse_workflow(ui_graph(nodes, [[source, source, 0, 3, 2, kind_of_switch]]), registry)
        assert workflow.nodes["3"].type == ours and workflow.nodes["3"].inputs[name] == [str(source), 0]
        written = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}[3]
        assert written["type"] == comfy_name
        assert [i["name"] for i in written["inputs"] if i.get("link") is not None] == [name]
        assert export_api(workflow, registry)["3"]["inputs"] == {name: [str(source), 0]}


@pytest.mark.parametrize("comfy_name, ours, kind, socket", SWITCHES)
def test_switch_ui_export_writes_boolean_number_only_where_linked_or_saved(registry, comfy_name, ours, kind, socket):
    """The current pack's switches have no boolean_number: a UI export of a switch linked by
    boolean writes none; one linked by boolean_number, or read from a save that had it, keeps it."""
    sources = {"1": {"class_type": "Logic Boolean Primitive", "inputs": {"boolean": False}},
               "2": {"class_type": "Constant Number", "inputs": {"number_type": "integer", "number": 0}}}
    for switch, names in (({"boolean": ["1", 0]}, [f"{kind}_a", f"{kind}_b", "boolean"]),
                          ({"boolean_number": ["2", 0]}, [f"{kind}_a", f"{kind}_b", "boolean", "boolean_number"])):
        graph = {**sources, "3": {"class_type": comfy_name,
                                  "inputs": {f"{kind}_a": ["2", 0], f"{kind}_b": ["2", 0], **switch}}}
        written = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}[3]
        assert [i["name"] for i in written["inputs"]] == names
    nodes = [ui_node(1, "Logic Boolean Primitive", [True], outputs=[("BOOLEAN", "BOOLEAN", [1])]),
             ui_node(3, comfy_name, [], inputs=[(f"{kind}_a", socket, None, False), (f"{kind}_b", socket, None, False),
                                                ("boolean", "BOOLEAN", 1, False),
                                                ("boolean_number", "NUMBER", None, False)],
                     outputs=[(socket, socket, [])])]
    workflow = parse_workflow(ui_graph(nodes, [[1, 1, 0, 3, 2, "BOOLEAN"]]), registry)
    written = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}[3]
    assert [i["name"] for i in written["inputs"]] == [f"{kind}_a", f"{kind}_b", "boolean", "boolean_number"]


def test_switches_run_in_an_api_prompt_of_each_layout(registry):
    """Text Input Switch as a later save links it (Logic Boolean Primitive) and as a 2023 one does
    (Logic Boolean's NUMBER), run."""
    texts = {"1": {"class_type": "Text String", "inputs": {"text": "a", "text_b": "", "text_c": "", "text_d": ""}},
             "2": {"class_type": "Text String", "inputs": {"text": "b", "text_b": "", "text_c": "", "text_d": ""}},
             "3": {"class_type": "Logic Boolean Primitive", "inputs": {"boolean": True}},
             "4": {"class_type": "Logic Boolean", "inputs": {"boolean_number": 0}}}
    for switch, expected in (({"boolean": ["3", 0]}, "a"), ({"boolean_number": ["4", 0]}, "b")):
        graph = {**texts, "5": {"class_type": "Text Input Switch",
                                "inputs": {"text_a": ["1", 0], "text_b": ["2", 0], **switch}}}
        assert run_graph(registry, graph, ["5"]).values["5"] == (expected,)


# -- loaders --------------------------------------------------------------------------------------


def test_loaders_give_the_core_loaders_results_and_the_file_name(registry, models):
    graph = {"1": {"class_type": "Checkpoint Loader (Simple)", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "2": {"class_type": "Lora Loader", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                           "lora_name": "first.safetensors", "strength_model": 0.5,
                                                           "strength_clip": 0.5}},
             "3": {"class_type": "Load Lora", "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": "None",
                                                         "strength_model": 1.0, "strength_clip": 1.0}},
             "4": {"class_type": "Checkpoint Loader", "inputs": {"config_name": "v1-inference.yaml",
                                                                 "ckpt_name": "tiny.safetensors"}}}
    values = run_graph(registry, graph, ["2", "3", "4"]).values
    # a UI save lists the config file first
    nodes = [ui_node(1, "Checkpoint Loader", ["v1-inference.yaml", "tiny.safetensors"],
                     outputs=[("MODEL", "MODEL", []), ("CLIP", "CLIP", []), ("VAE", "VAE", []),
                              ("NAME_STRING", "STRING", [])])]
    workflow = parse_workflow(ui_graph(nodes), registry)
    assert workflow.nodes["1"].inputs == {"config_name": "v1-inference.yaml", "checkpoint": "tiny.safetensors"}
    assert export_ui(workflow, registry)["nodes"][0]["widgets_values"] == ["v1-inference.yaml", "tiny.safetensors"]
    assert values["1"][3] == "tiny" and values["2"][2] == "first" and values["4"][3] == "tiny"
    assert values["3"][:2] == values["1"][:2] and values["3"][2] == "None"
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                         "lora_name": "first.safetensors", "strength_model": 0.5,
                                                         "strength_clip": 0.5}}}
    want = run_graph(registry, core, ["2"]).values
    from graphflow import memory
    got_unet = memory.manager().weights(values["2"][0].unet, values["2"][0].patches)
    want_unet = memory.manager().weights(want["2"][0].unet, want["2"][0].patches)
    assert all(torch.equal(got_unet[k], want_unet[k]) for k in want_unet)


def test_text_to_conditioning_is_the_core_encoding(registry, models):
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "2": {"class_type": "Text Multiline", "inputs": {"text": "a red cube"}},
             "3": {"class_type": "Text to Conditioning", "inputs": {"clip": ["1", 1], "text": ["2", 0]}},
             "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a red cube"}}}
    values = run_graph(registry, graph, ["3", "4"]).values
    (cond, options), = values["3"][0]
    (want, want_options), = values["4"][0]
    assert torch.equal(cond, want) and options.keys() == want_options.keys()


def test_executor_reports_a_bad_text_number_by_its_input(registry):
    graph = {"1": {"class_type": "Text String", "inputs": {"text": "abc"}},
             "2": {"class_type": "Text to Number", "inputs": {"text": ["1", 0]}}}
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["2"])
    assert not result.ok and "text" in str(result.error)


# -- images, against Pillow -----------------------------------------------------------------------


def pictures(images):
    """The pack's tensor2pil of each image: 255 x value, clipped, truncated to 8 bits."""
    from PIL import Image
    return [Image.fromarray((image.numpy() * 255).clip(0, 255).astype("uint8")) for image in images]


def tensor(picture):
    import numpy as np
    return torch.from_numpy(np.asarray(picture, dtype="float32") / 255.0)


IMAGES = torch.rand(2, 40, 48, 3, generator=torch.Generator().manual_seed(0))


def test_image_blend_is_pillows_composite(registry):
    from PIL import Image, ImageOps
    other = torch.rand(1, 40, 48, 3, generator=torch.Generator().manual_seed(1))
    got = call(registry, "WasImageBlend", image_a=IMAGES, image_b=other, blend_percentage=0.3)
    mask = ImageOps.invert(Image.new("L", (48, 40), round(0.3 * 255)))
    for i, a in enumerate(pictures(IMAGES)):
        assert torch.equal(got[i], tensor(Image.composite(a, pictures(other)[0], mask)))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageBlend", image_a=IMAGES, image_b=torch.rand(1, 8, 8, 3))
    assert caught.value.input == "image_b"


@pytest.mark.parametrize("widgets, size", [
    ({"mode": "rescale", "rescale_factor": 0.55, "supersample": "false", "resampling": "bicubic"}, (26, 22)),
    ({"mode": "resize", "resize_width": 30, "resize_height": 17, "supersample": "true", "resampling": "lanczos"},
     (32, 24)),
    ({"mode": "resize", "resize_width": 16, "resize_height": 16, "supersample": "false", "resampling": "nearest"},
     (16, 16)),
])
def test_image_resize_is_pillows_resize(registry, widgets, size):
    from PIL import Image
    got = call(registry, "WasImageResize", image=IMAGES, **widgets)
    resample = Image.Resampling[widgets["resampling"].upper()]
    for i, picture in enumerate(pictures(IMAGES)):
        if widgets["supersample"] == "true":
            picture = picture.resize((size[0] * 8, size[1] * 8), resample=resample)
        assert torch.equal(got[i], tensor(picture.resize(size, resample=resample)))


def test_image_resize_estimate_and_refusal(registry):
    from graphflow.resource_limits import Size
    cls = registry.get("WasImageResize")
    estimate = cls.estimate({"mode": "rescale", "rescale_factor": 4.0, "supersample": "true", "resize_width": 1,
                             "resize_height": 1}, {"image": Size(1, 1000, 2000)})
    assert (estimate.size.width, estimate.size.height) == (8000, 4000) and estimate.memory == 8000 * 4000 * 64 * 4
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageResize", image=IMAGES, rescale_factor=0.01)
    assert caught.value.input == "rescale_factor"
    with pytest.raises(NodeInputError) as caught:  # 4096 x 4096 (16 x 256): supersampled, 32768 x 32768
        call(registry, "WasImageResize", image=torch.rand(1, 256, 256, 3), rescale_factor=16.0)
    assert caught.value.input == "supersample"
    assert call(registry, "WasImageResize", image=torch.rand(1, 256, 256, 3), rescale_factor=16.0,
                supersample="false").shape == (1, 4096, 4096, 3)


def test_crops_are_pillows_crop_then_resize_to_eights(registry):
    got, data = call(registry, "WasImageCropLocation", image=IMAGES, top=3, left=5, right=400, bottom=39)
    assert data == ((43, 36), (5, 3, 48, 39))
    for i, picture in enumerate(pictures(IMAGES)):
        assert torch.equal(got[i], tensor(picture.crop((5, 3, 48, 39)).resize((40, 32))))
    got, data = call(registry, "WasImageCropSquareLocation", image=IMAGES, x=45, y=2, size=20)
    assert data == ((20, 20), (28, 0, 48, 20))
    assert torch.equal(got[1], tensor(pictures(IMAGES)[1].crop((28, 0, 48, 20)).resize((16, 16))))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageCropLocation", image=IMAGES, left=30, right=20)
    assert caught.value.input == "right"
    for top, bottom in ((10, 5), (7, 7)):  # empty only from top to bottom: bottom is named
        with pytest.raises(NodeInputError, match="is empty") as caught:
            call(registry, "WasImageCropLocation", image=IMAGES, top=top, left=0, right=8, bottom=bottom)
        assert caught.value.input == "bottom"


def test_filter_adjustments_follow_the_packs_order_with_pillow(registry):
    from PIL import Image, ImageEnhance, ImageFilter
    got = call(registry, "WasImageFilterAdjustments", image=IMAGES, brightness=0.1, contrast=1.2, saturation=1.5,
               sharpness=2.0, blur=1, gaussian_blur=1.5, edge_enhance=0.4, detail_enhance="true")
    for i in range(2):
        adjusted = ((IMAGES[i] + 0.1).clamp(0, 1) * 1.2).clamp(0, 1)
        picture = pictures(adjusted[None])[0]
        picture = ImageEnhance.Sharpness(ImageEnhance.Color(picture).enhance(1.5)).enhance(2.0)
        picture = picture.filter(ImageFilter.BLUR).filter(ImageFilter.GaussianBlur(radius=1.5))
        picture = Image.composite(picture.filter(ImageFilter.EDGE_ENHANCE_MORE), picture,
                                  Image.new("L", picture.size, round(0.4 * 255)))
        assert torch.equal(got[i], tensor(picture.filter(ImageFilter.DETAIL)))
    untouched = call(registry, "WasImageFilterAdjustments", image=IMAGES, brightness=-0.2)
    assert torch.equal(untouched, (IMAGES - 0.2).clamp(0, 1))


def test_image_nodes_in_a_ui_graph(registry):
    nodes = [
        ui_node(1, "EmptyImage", [48, 40, 1, 0], outputs=[("IMAGE", "IMAGE", [1, 2])]),
        ui_node(2, "Image Resize", ["resize", "false", "nearest", 2, 30, 20], [("image", "IMAGE", 1, False)],
                [("IMAGE", "IMAGE", [])]),
        ui_node(3, "Image Crop Square Location", [10, 10, 16], [("image", "IMAGE", 2, False)],
                [("IMAGE", "IMAGE", []), ("CROP_DATA", "CROP_DATA", [])]),
    ]
    graph = ui_graph(nodes, [link(1, 1, 0, 2, 0, "IMAGE"), link(2, 1, 0, 3, 0, "IMAGE")])
    values = run_graph(registry, graph, ["2", "3"]).values
    assert values["2"][0].shape == (1, 24, 32, 3) and values["3"][0].shape == (1, 16, 16, 3)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[2] == ["resize", "false", "nearest", 2, 30, 20] and saved[3] == [10, 10, 16]


def test_blend_by_mask_is_pillows_composites(registry):
    from PIL import Image, ImageOps
    other = torch.rand(2, 40, 48, 3, generator=torch.Generator().manual_seed(2))
    mask = torch.rand(1, 20, 24, 3, generator=torch.Generator().manual_seed(3))
    got = call(registry, "WasImageBlendByMask", image_a=IMAGES, image_b=other, mask=mask, blend_percentage=0.25)
    grey = ImageOps.invert(pictures(mask)[0].convert("L")).resize((48, 40))
    blend = ImageOps.invert(Image.new("L", (48, 40), round(0.25 * 255)))
    for i, (a, b) in enumerate(zip(pictures(IMAGES), pictures(other))):
        assert torch.equal(got[i], tensor(Image.composite(a, Image.composite(a, b, grey), blend)))


def test_flip_rotate_threshold_remove_color_levels_are_pillows(registry):
    from PIL import Image, ImageChops, ImageOps
    import numpy as np
    source = pictures(IMAGES)
    got = call(registry, "WasImageFlip", images=IMAGES, mode="vertical")
    assert torch.equal(got[1], tensor(source[1].transpose(Image.Transpose.FLIP_TOP_BOTTOM)))
    got = call(registry, "WasImageRotate", images=IMAGES, mode="transpose", rotation=270)
    assert got.shape == (2, 48, 40, 3) and torch.equal(got[0], tensor(source[0].rotate(270, expand=True)))
    got = call(registry, "WasImageRotate", images=IMAGES, mode="internal", rotation=100, sampler="bicubic")
    assert torch.equal(got[0], tensor(source[0].rotate(90, Image.Resampling.BICUBIC)))
    got = call(registry, "WasImageThreshold", image=IMAGES, threshold=0.6)
    grey = np.asarray(source[0].convert("L"))
    assert torch.equal(got[0, ..., 0], torch.from_numpy((grey >= int(0.6 * 255)).astype("float32")))
    got = call(registry, "WasImageRemoveColor", image=IMAGES, target_red=128, target_green=128, target_blue=128,
               replace_red=0, replace_green=255, replace_blue=0, clip_threshold=40)
    near = ImageChops.difference(source[1], Image.new("RGB", (48, 40), (128, 128, 128))).convert("L")
    near = near.point(lambda x: 0 if x > 40 else 255)
    want = Image.composite(Image.new("RGB", (48, 40), (0, 255, 0)), source[1], near)
    assert torch.equal(got[1], tensor(want))
    got = call(registry, "WasImageLevelsAdjustment", image=IMAGES, black_level=30, white_level=200)
    levels = np.array(source[0]).astype("float64")
    levels[levels < 30] = 30
    stretched = Image.fromarray(((levels - 30) * (255 / 170)).clip(0, 255).astype("uint8"))
    assert torch.equal(got[0], tensor(ImageOps.autocontrast(stretched, cutoff=200)))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageLevelsAdjustment", image=IMAGES, black_level=100, white_level=100)
    assert caught.value.input == "white_level"
    blank = call(registry, "WasImageBlank", width=30, height=17, red=255, green=0, blue=10)
    assert blank.shape == (1, 16, 24, 3) and torch.equal(blank[0, 0, 0], torch.tensor([1.0, 0.0, 10 / 255]))


# -- Image Save and Load Image Batch: inside their folders ------------------------------------------


def test_image_save_names_files_as_the_pack_inside_the_output_folder(registry, tmp_folders, tmp_path):
    from PIL import Image
    day = time.strftime("%Y-%m-%d")
    call(registry, "WasImageSave", images=IMAGES)
    call(registry, "WasImageSave", images=IMAGES[:1])
    assert sorted(p.name for p in (tmp_folders.outputs / day).iterdir()) == \
        ["ComfyUI_0001.png", "ComfyUI_0002.png", "ComfyUI_0003.png"]
    with Image.open(tmp_folders.outputs / day / "ComfyUI_0002.png") as saved:
        assert torch.equal(tensor(saved.convert("RGB")), tensor(pictures(IMAGES)[1]))
    call(registry, "WasImageSave", images=IMAGES[:1], output_path="shots", filename_prefix="cat",
         filename_delimiter="-", filename_number_padding=2, filename_number_start="true", extension="jpeg",
         quality=80)
    call(registry, "WasImageSave", images=IMAGES[:1], output_path=str(tmp_folders.outputs / "shots"),
         filename_prefix="cat", filename_delimiter="-", filename_number_padding=2, filename_number_start="true",
         extension="webp")
    call(registry, "WasImageSave", images=IMAGES[:1], output_path="", filename_prefix="final", extension="gif",
         overwrite_mode="prefix_as_filename")
    assert sorted(p.name for p in (tmp_folders.outputs / "shots").iterdir()) == ["01-cat.jpeg", "02-cat.webp"]
    assert (tmp_folders.outputs / "final.gif").is_file()
    (tmp_folders.outputs / "away").symlink_to(tmp_path)
    for path in ("../escape", "/tmp/escape", "away", "a/../../b"):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "WasImageSave", images=IMAGES[:1], output_path=path)
        assert caught.value.input == "output_path"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageSave", images=IMAGES[:1], filename_prefix="../x")
    assert caught.value.input == "filename_prefix"


def test_image_save_prefix_as_filename_replaces_a_link_never_writing_through_it(registry, tmp_folders, tmp_path):
    from PIL import Image
    outside = tmp_path / "pwned.png"
    outside.write_bytes(b"kept")
    (tmp_folders.outputs / "victim.png").symlink_to(outside)
    call(registry, "WasImageSave", images=IMAGES[:1], output_path="", filename_prefix="victim",
         overwrite_mode="prefix_as_filename")
    assert outside.read_bytes() == b"kept"
    saved = tmp_folders.outputs / "victim.png"
    assert not saved.is_symlink()
    with Image.open(saved) as picture:
        assert torch.equal(tensor(picture.convert("RGB")), tensor(pictures(IMAGES)[0]))
    assert [p.name for p in tmp_folders.outputs.iterdir()] == ["victim.png"]  # no temporary file left


@pytest.mark.parametrize("pattern", ["/usr/**", "../**", "sub/../../*.png", "..\\*.png", "C:/x/*.png"])
def test_load_image_batch_refuses_patterns_leaving_the_folder_before_globbing(registry, tmp_folders, monkeypatch,
                                                                               pattern):
    import glob
    (tmp_folders.inputs / "batch").mkdir()
    monkeypatch.setattr(glob, "glob", lambda *a, **k: pytest.fail("globbed"))
    with pytest.raises(NodeInputError, match="leaves the folder") as caught:
        call(registry, "WasLoadImageBatch", path="batch", pattern=pattern)
    assert caught.value.input == "pattern"
    assert was_image.WasLoadImageBatch.fingerprint(path="batch", pattern=pattern) is None


def test_bad_inputs_are_named_not_raw_tracebacks(registry, tmp_folders):
    from PIL import Image
    long = "n" * 300  # past a file name's 255 bytes
    for node, name, widgets in (
            ("WasImageSave", "filename_prefix", {"images": IMAGES[:1], "filename_prefix": long, "output_path": ""}),
            ("WasImageSave", "filename_prefix", {"images": IMAGES[:1], "filename_prefix": long, "output_path": "",
                                                 "overwrite_mode": "prefix_as_filename"}),
            ("WasImageSave", "output_path", {"images": IMAGES[:1], "output_path": long}),
            ("WasSaveTextFile", "filename_prefix", {"text": "x", "filename_prefix": long, "path": ""}),
            ("WasSaveTextFile", "path", {"text": "x", "path": long}),
            ("WasNumberInputCondition", "number_a", {"number_a": float("nan"), "number_b": 1,
                                                     "comparison": "if A prime"}),
            ("WasNumberInputCondition", "number_a", {"number_a": float("inf"), "number_b": 1,
                                                     "comparison": "if A prime"}),
            ("WasNumberToFloat", "number", {"number": "x"}),
            ("WasNumberToFloat", "number", {"number": 10 ** 400}),
            ("WasMaskInvert", "masks", {"masks": "x"})):
        with pytest.raises(NodeInputError) as caught:
            call(registry, node, **widgets)
        assert caught.value.input == name, (node, widgets)
    assert not any(p.name.endswith(".tmp") for p in tmp_folders.outputs.iterdir())
    (tmp_folders.inputs / "big").mkdir()
    Image.new("1", (16385, 8)).save(tmp_folders.inputs / "big" / "wide.png")
    Image.new("1", (15000, 15000)).save(tmp_folders.inputs / "big" / "bomb.png")  # Pillow's bomb error on open
    for pattern in ("wide.png", "bomb.png"):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "WasLoadImageBatch", path="big", pattern=pattern)
        assert caught.value.input == "path"


def test_image_save_in_a_ui_graph_shows_its_files(registry, tmp_folders):
    nodes = [ui_node(1, "EmptyImage", [16, 16, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "Image Save", ["out", "ComfyUI", "_", 4, "false", "png", 100, "false", "false", "false",
                                      "true", "true", "true"], [("images", "IMAGE", 1, False)])]
    graph = ui_graph(nodes, [link(1, 1, 0, 2, 0, "IMAGE")])
    result = run_graph(registry, graph)
    assert result.outputs["2"]["images"] == [{"filename": "ComfyUI_0001.png", "subfolder": "out", "type": "output"}]
    saved = {n["id"]: n["widgets_values"] for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    old = nodes[1]["widgets_values"]  # a mid-2023 save: written back in the later layout, with dpi and optimize_image
    assert saved[2] == old[:6] + [300, old[6], "true"] + old[7:]


def test_load_image_batch_reads_the_input_folder_only(registry, tmp_folders, tmp_path):
    from PIL import Image
    folder = tmp_folders.inputs / "batch"
    (folder / "sub").mkdir(parents=True)
    colors = {"b.png": (0, 0, 255), "a.jpg": (255, 0, 0), "sub/c.png": (0, 255, 0)}
    for name, color in colors.items():
        Image.new("RGB", (8, 8), color).save(folder / name)
    (folder / "notes.txt").write_text("not a picture")
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    (folder / "link.png").symlink_to(tmp_path / "outside.png")
    image, name = call(registry, "WasLoadImageBatch", path="batch", index=1)
    assert name == "b.png" and image.shape == (1, 8, 8, 3) and image[0, 0, 0, 2] == 1.0
    assert call(registry, "WasLoadImageBatch", path="batch", pattern="**/*.png", index=1)[1] == "c.png"
    was_image.BATCH_COUNTERS.clear()
    names = [call(registry, "WasLoadImageBatch", path="batch", mode="incremental_image", label="x")[1]
             for _ in range(3)]
    assert names == ["a.jpg", "b.png", "a.jpg"]
    with pytest.raises(NodeInputError) as caught:  # only outside.png there, and link.png leads to it
        call(registry, "WasLoadImageBatch", path="batch", pattern="../../*.png")
    assert caught.value.input == "pattern"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasLoadImageBatch", path="batch", pattern="link.png")
    assert caught.value.input == "pattern"
    for path in ("..", str(tmp_path), "missing"):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "WasLoadImageBatch", path=path)
        assert caught.value.input == "path"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasLoadImageBatch", path="batch", index=5)
    assert caught.value.input == "index"


# -- masks, against scipy / numpy / Pillow ---------------------------------------------------------


MASKS = torch.rand(2, 24, 20, generator=torch.Generator().manual_seed(4))


def levels(masks):
    import numpy as np
    return (masks.numpy() * 255).clip(0, 255).astype(np.uint8)


def test_mask_regions_are_scipys(registry):
    import numpy as np
    import scipy.ndimage
    sparse = (MASKS > 0.9).float() * MASKS
    ring = torch.zeros(1, 12, 12)
    ring[0, 2:9, 2:9] = 1
    ring[0, 4:7, 4:7] = 0
    for node, function in (("WasMaskDilateRegion", scipy.ndimage.binary_dilation),
                           ("WasMaskErodeRegion", scipy.ndimage.binary_erosion)):
        got = call(registry, node, masks=sparse, iterations=2)
        for i in range(2):
            want = function(levels(sparse)[i] > 0, iterations=2).astype("float32")
            assert np.array_equal(got[i].numpy(), want)
    filled = call(registry, "WasMaskFillHoles", masks=ring)
    assert np.array_equal(filled[0].numpy(), scipy.ndimage.binary_fill_holes(levels(ring)[0] > 0).astype("float32"))
    assert filled[0, 5, 5] == 1


def test_mask_levels_and_arithmetic(registry):
    import numpy as np
    from PIL import Image, ImageFilter, ImageOps
    want = levels(MASKS).copy()
    want[want < 60] = 0
    want[want > 200] = 255
    assert torch.equal(call(registry, "WasMaskThresholdRegion", masks=MASKS, black_threshold=60, white_threshold=200),
                       torch.from_numpy(want.astype("float32") / 255))
    blurred = ImageOps.invert(Image.fromarray(levels(MASKS)[1], "L")).filter(ImageFilter.GaussianBlur(radius=3))
    got = call(registry, "WasMaskGaussianRegion", masks=MASKS, radius=3.7)
    # the pack: pil2mask of the blurred inverted picture, 1 - level / 255
    assert torch.allclose(got[1], torch.from_numpy(1 - np.asarray(blurred, dtype="float32") / 255), atol=1e-6)
    ceiling = levels(MASKS).copy()
    ceiling[ceiling < 225] = 0
    ceiling[ceiling >= 250] = 255
    assert torch.equal(call(registry, "WasMaskCeilingRegion", masks=MASKS), torch.from_numpy(ceiling / np.float32(255)))
    floor = call(registry, "WasMaskFloorRegion", masks=MASKS)
    lowest = levels(MASKS)[0][levels(MASKS)[0] > 0].min()
    assert torch.equal(floor[0], torch.from_numpy((levels(MASKS)[0] > lowest).astype("float32")))
    assert torch.equal(call(registry, "WasMaskInvert", masks=MASKS), 1 - MASKS)
    assert torch.equal(call(registry, "WasMasksAdd", masks_a=MASKS, masks_b=MASKS), MASKS + MASKS)
    assert torch.equal(call(registry, "WasMasksSubtract", masks_a=MASKS[:1], masks_b=MASKS),
                       (MASKS[:1] - MASKS).clamp(min=0))
    assert torch.equal(call(registry, "WasMasksCombineRegions", mask_a=MASKS, mask_b=MASKS, mask_d=MASKS),
                       (MASKS * 3).clamp(0, 1))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasMasksAdd", masks_a=MASKS, masks_b=torch.zeros(1, 5, 5))
    assert caught.value.input == "masks_b"
    channels = call(registry, "WasImageToLatentMask", images=IMAGES, channel="green")
    assert torch.equal(channels, torch.from_numpy(np.stack([np.asarray(p)[..., 1] for p in pictures(IMAGES)])
                                                  .astype("float32") / 255))
    assert torch.equal(call(registry, "WasImageToLatentMask", images=IMAGES, channel="alpha"), torch.ones(2, 40, 48))


def test_masks_in_an_api_prompt(registry):
    graph = {"1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 16, "height": 16}},
             "2": {"class_type": "Mask Invert", "inputs": {"masks": ["1", 0]}},
             "3": {"class_type": "Mask Dilate Region", "inputs": {"masks": ["2", 0], "iterations": 3}},
             "4": {"class_type": "Masks Combine Regions", "inputs": {"mask_a": ["2", 0], "mask_b": ["3", 0]}}}
    values = run_graph(registry, graph, ["4"]).values
    assert torch.equal(values["4"][0], torch.zeros(1, 16, 16))
    assert export_api(parse_workflow(graph, registry), registry)["3"]["inputs"]["iterations"] == 3


def test_select_channel_and_mix_rgb_are_pillows(registry):
    from PIL import Image
    got = call(registry, "WasImageSelectChannel", image=IMAGES, channel="blue")
    assert torch.equal(got[1], tensor(Image.merge("RGB", [pictures(IMAGES)[1].split()[2]] * 3)))
    other = torch.rand(2, 40, 48, 3, generator=torch.Generator().manual_seed(5))
    got = call(registry, "WasImageMixRGBChannels", red_channel=IMAGES, green_channel=other, blue_channel=IMAGES[:1])
    want = Image.merge("RGB", (pictures(IMAGES)[1].convert("L"), pictures(other)[1].convert("L"),
                               pictures(IMAGES)[0].convert("L")))
    assert torch.equal(got[1], tensor(want))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageMixRGBChannels", red_channel=IMAGES, green_channel=torch.rand(1, 4, 4, 3),
             blue_channel=IMAGES)
    assert caught.value.input == "green_channel"


def test_ksampler_legacy_and_nsp_encode_are_the_core_nodes(registry, models):
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "2": {"class_type": "CLIPTextEncode (NSP)", "inputs": {"mode": "Noodle Soup Prompts", "noodle_key": "__",
                                                                   "seed": 0, "text": "a red cube", "clip": ["1", 1]}},
             "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red cube", "clip": ["1", 1]}},
             "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "5": {"class_type": "Seed (Legacy)", "inputs": {"seed": 7}},
             "6": {"class_type": "KSampler (Legacy)", "inputs": {"model": ["1", 0], "seed": ["5", 0], "steps": 2,
                                                                 "cfg": 5.0, "sampler_name": "euler",
                                                                 "scheduler": "normal", "positive": ["2", 0],
                                                                 "negative": ["3", 0], "latent_image": ["4", 0],
                                                                 "denoise": 1.0}},
             "7": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 7, "steps": 2, "cfg": 5.0,
                                                        "sampler_name": "euler", "scheduler": "normal",
                                                        "positive": ["3", 0], "negative": ["3", 0],
                                                        "latent_image": ["4", 0], "denoise": 1.0}}}
    values = run_graph(registry, graph, ["6", "7"]).values
    assert values["2"][1:] == ("a red cube", "a red cube")
    assert torch.equal(values["2"][0][0][0], values["3"][0][0][0])
    assert torch.equal(values["6"][0]["samples"], values["7"][0]["samples"])
    for text in ("a __color__ cube", "a {red|blue} cube", "$style cube"):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "WasNSPCLIPTextEncode", text=text, clip=values["1"][1])
        assert caught.value.input == "text"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasKSampler", seed=7)
    assert caught.value.input == "seed"


@pytest.mark.parametrize("text", ["a {red|blue} cube", "{a|}", "{|}", "{}", "{a}", "{{a|b}", "{a|b}}", "{a{b|c}",
                                  "{a|b{c}", "|{a}|", "no braces | here", "{a\n|b}", "} {a|b"])
def test_nsp_choice_detection_is_the_regex_in_one_pass(text):
    assert was.has_choice(text) == bool(re.search(r"\{[^{}]*\|[^{}]*\}", text))
    started = time.perf_counter()
    was.has_choice("{" + "|" * 100000 + text)  # the regex: quadratic here
    assert time.perf_counter() - started < 0.5


def test_paste_crop_puts_the_crop_back_with_the_packs_ramps(registry):
    import numpy as np
    from PIL import Image, ImageChops, ImageOps
    crop, data = call(registry, "WasImageCropLocation", image=IMAGES[:1], top=8, left=0, right=32, bottom=32)
    assert data == ((32, 24), (0, 8, 32, 32))
    edited = 1 - crop
    got, mask = call(registry, "WasImagePasteCrop", image=IMAGES[:1], crop_image=edited, crop_data=data,
                     crop_blending=0.5, crop_sharpening=0)

    def ramp(size, direction, ratio):  # the pack's lingrad, drawn line by line
        picture = Image.new("L", size)
        length = size[0] if direction == "horizontal" else size[1]
        black_end = int(length * (1 - ratio))
        for i in range(length):
            value = 0 if i <= black_end else int(((i - black_end) / (length - black_end)) * 255)
            for j in range(size[1] if direction == "horizontal" else size[0]):
                picture.putpixel((i, j) if direction == "horizontal" else (j, i), value)
        return picture

    piece = pictures(edited)[0].resize((32, 24))
    fade = Image.new("L", (32, 24), 0)
    fade = ImageChops.screen(fade, ImageOps.flip(ramp((32, 24), "vertical", 0.5)))  # top 8 > 0
    fade = ImageChops.screen(fade, ramp((32, 24), "horizontal", 0.5))  # right 32 < 48
    # bottom 32 < 40 too
    fade = ImageChops.screen(fade, ramp((32, 24), "vertical", 0.5))
    full = Image.new("L", (48, 40), 0)
    full.paste(ImageOps.invert(fade), (0, 8))
    want = pictures(IMAGES[:1])[0].copy()
    want.paste(piece, (0, 8), ImageOps.invert(fade))
    assert torch.equal(got[0], tensor(want))
    assert torch.equal(mask[0, ..., 0], torch.from_numpy(np.asarray(full, dtype="float32") / 255))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImagePasteCrop", image=IMAGES, crop_image=edited, crop_data=(1, 2))
    assert caught.value.input == "crop_data"


def test_bounds_crop_and_blend(registry):
    from PIL import Image, ImageFilter, ImageOps
    bounds = call(registry, "WasImageBounds", image=IMAGES)
    assert bounds == [0, 39, 0, 47]
    inset = call(registry, "WasInsetImageBounds", image_bounds=bounds, inset_left=4, inset_right=6, inset_top=2,
                 inset_bottom=3)
    assert inset == [2, 36, 4, 41]
    assert torch.equal(call(registry, "WasBoundedImageCrop", image=IMAGES, image_bounds=inset), IMAGES[:, 2:37, 4:42])
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasInsetImageBounds", image_bounds=bounds, inset_left=40, inset_right=40)
    assert caught.value.input == "inset_left"
    mask = torch.zeros(1, 40, 48)
    mask[0, 10:20, 5:9] = 0.5
    cropped, found = call(registry, "WasBoundedImageCropWithMask", image=IMAGES, mask=mask, padding_left=8,
                          padding_right=2, padding_top=1, padding_bottom=30)
    assert found == [9, 39, 0, 10] and torch.equal(cropped, IMAGES[:, 9:40, 0:11])
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasBoundedImageCropWithMask", image=IMAGES, mask=torch.zeros(1, 40, 48))
    assert caught.value.input == "mask"
    source = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(6))
    got = call(registry, "WasBoundedImageBlend", target=IMAGES, target_bounds=[5, 24, 10, 39], source=source,
               blend_factor=0.8, feathering=3)
    inner = ImageOps.expand(Image.new("L", (24, 14), 255), border=3, fill=0).filter(ImageFilter.GaussianBlur(radius=3))
    blend = Image.new("L", (48, 40), 0)
    blend.paste(inner, (10, 5))
    blend = blend.point(lambda p: p * 0.8).convert("L")
    placed = Image.new("RGB", (48, 40))
    placed.paste(pictures(source)[0].resize((30, 20), Image.Resampling.LANCZOS), (10, 5))
    assert torch.equal(got[0], tensor(Image.composite(placed, pictures(IMAGES)[0], blend)))
    got = call(registry, "WasBoundedImageBlendWithMask", target=IMAGES, target_mask=mask, target_bounds=[5, 24, 10, 39],
               source=source, blend_factor=1.0, feathering=0)
    placed = Image.new("RGB", (48, 40))
    placed.paste(pictures(source)[0], (10, 5))
    want = Image.composite(placed, pictures(IMAGES)[0], Image.fromarray(levels(mask)[0], "L"))
    assert torch.equal(got[0], tensor(want))


@pytest.mark.parametrize("mode, align", [("bilinear", "true"), ("bicubic", "false"), ("nearest", "true"),
                                         ("area", "false")])
def test_latent_upscale_by_factor_is_torch_interpolate(registry, mode, align):
    import torch.nn.functional as F
    latent = torch.rand(2, 4, 12, 10, generator=torch.Generator().manual_seed(7))
    got = call(registry, "WasLatentUpscaleByFactor", samples={"samples": latent}, mode=mode, factor=1.5, align=align)
    options = {"align_corners": align == "true"} if mode in ("bilinear", "bicubic") else {}
    assert torch.equal(got["samples"], F.interpolate(latent, size=(18, 15), mode=mode, **options))


def test_image_padding_is_the_packs_feathered_canvas(registry):
    from PIL import Image, ImageDraw, ImageFilter
    import numpy as np
    got, mask = call(registry, "WasImagePadding", image=IMAGES[:1], feathering=8, left_padding=10, right_padding=12,
                     top_padding=9, bottom_padding=8)
    assert got.shape == (1, 57, 70, 4) and mask.shape == (1, 57, 70, 3)
    picture = pictures(IMAGES[:1])[0]

    def fade(radius):
        m = Image.new("L", (48, 40), 255)
        d = ImageDraw.Draw(m)
        d.rectangle((0, 0, radius * 2, 40), fill=0)
        d.rectangle((48 - radius * 2, 0, 48, 40), fill=0)
        d.rectangle((0, 0, 48, radius * 2), fill=0)
        d.rectangle((0, 40 - radius * 2, 48, 40), fill=0)
        return m.filter(ImageFilter.GaussianBlur(radius=radius))

    faded = Image.new("RGBA", (48, 40), (0, 0, 0, 0))
    for m in (fade(8), fade(8), fade(2), fade(2)):
        faded.paste(picture, (0, 0), m)
    canvas = Image.new("RGBA", (70, 57), (0, 0, 0, 0))
    canvas.paste(faded, (10, 9))
    assert torch.equal(got[0], tensor(canvas))
    want = [int(255 * (1 - a / 255)) if a != 0 else 255 for a in np.asarray(canvas.getchannel("A")).flatten().tolist()]
    assert np.array_equal((mask[0, ..., 0].numpy() * 255).round().astype(int).flatten(), np.array(want))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImagePadding", image=IMAGES[:1], left_padding=20000)
    assert caught.value.input == "left_padding"


def test_edge_high_pass_and_bloom_filters_are_pillows(registry):
    from PIL import Image, ImageChops, ImageEnhance, ImageFilter
    import numpy as np
    picture = pictures(IMAGES)[1]
    got = call(registry, "WasImageEdgeDetectionFilter", image=IMAGES, mode="laplacian")
    kernel = ImageFilter.Kernel((3, 3), (-1, -1, -1, -1, 8, -1, -1, -1, -1), 1, 0)
    assert torch.equal(got[1], tensor(picture.filter(kernel)))
    got = call(registry, "WasImageEdgeDetectionFilter", image=IMAGES, mode="normal")
    assert torch.equal(got[1], tensor(picture.filter(ImageFilter.FIND_EDGES)))
    got = call(registry, "WasImageHighPassFilter", images=IMAGES, radius=3, strength=2.0)
    blurred = np.asarray(picture.filter(ImageFilter.GaussianBlur(radius=3))).astype(float)
    high = np.asarray(picture).astype(float) - blurred
    high = Image.fromarray(np.clip(high * 2.0, 0, 255).astype(np.uint8))
    assert torch.equal(got[1], tensor(ImageChops.screen(Image.new("RGB", (48, 40), (128, 128, 128)), high)))
    got = call(registry, "WasImageBloomFilter", image=IMAGES, radius=2.5, intensity=0.6)
    bloom = ImageChops.subtract(picture, picture.filter(ImageFilter.GaussianBlur(radius=2.5)))
    bloom = ImageEnhance.Brightness(bloom.filter(ImageFilter.GaussianBlur(radius=5.0))).enhance(2.0)
    bloom = ImageChops.multiply(bloom, Image.new("RGB", (48, 40), (int(255 * 0.6),) * 3))
    assert torch.equal(got[1], tensor(ImageChops.screen(picture, bloom)))


def drawn_gradient(start_color, end_color, size, start, end, mode):
    """The pack's linear_gradient, drawn line by line with ImageDraw."""
    from PIL import Image, ImageDraw
    gradient = Image.new("RGB", size, end_color)
    draw = ImageDraw.Draw(gradient)
    length = size[0] if mode == "horizontal" else size[1]
    for i in range(length):
        if i < start:
            color = start_color
        elif i < end:
            color = tuple(int(s + (i - start) / (end - start) * (e - s)) for s, e in zip(start_color, end_color))
        else:
            color = end_color
        draw.line((i, 0, i, size[1] - 1) if mode == "horizontal" else (0, i, size[0] - 1, i), color)
    return gradient.convert("L")


@pytest.mark.parametrize("side", ["top", "left", "bottom", "right"])
def test_image_stitch_fades_across_the_join(registry, side):
    from PIL import Image
    other = torch.rand(1, 30, 20, 3, generator=torch.Generator().manual_seed(8))
    got = call(registry, "WasImageStitch", image_a=IMAGES[:1], image_b=other, stitch=side, feathering=10)
    a, b = pictures(IMAGES[:1])[0], pictures(other)[0]
    black, white = (0, 0, 0), (255, 255, 255)
    horizontal = side in ("left", "right")
    mode = "horizontal" if horizontal else "vertical"
    length = (lambda p: p.width) if horizontal else (lambda p: p.height)
    canvas = Image.new("RGB", (48 + 20 - 10, 40) if horizontal else (48, 40 + 30 - 10))
    if side in ("top", "left"):
        a_mask = drawn_gradient(black, white, a.size, 0, 10, mode)
        b_mask = drawn_gradient(white, black, b.size, length(b) - 10, length(b), mode)
        a_at, b_at = ((20 - 10, 0) if horizontal else (0, 30 - 10)), (0, 0)
    else:
        a_mask = drawn_gradient(white, black, a.size, length(a) - 10, length(a), mode)
        b_mask = drawn_gradient(black, white, b.size, 0, 10, mode)
        a_at, b_at = (0, 0), ((48 - 10, 0) if horizontal else (0, 40 - 10))
    canvas.paste(a, a_at, a_mask)
    canvas.paste(b, b_at, b_mask)
    assert torch.equal(got[0], tensor(canvas))


def test_image_transpose_is_pillows_rotate_resize_and_paste(registry):
    from PIL import Image, ImageDraw
    other = torch.rand(1, 30, 20, 3, generator=torch.Generator().manual_seed(9))
    got = call(registry, "WasImageTranspose", image=IMAGES[:1], image_overlay=other, width=24, height=16, X=30, Y=-4,
               rotation=30, feathering=3)
    element = pictures(other)[0].rotate(30, expand=True).resize((24, 16))
    mask = Image.new("L", (24, 16), 255)
    draw = ImageDraw.Draw(mask)
    for i in range(3):
        draw.rectangle((i, i, 24 - i, 16 - i), fill=int(255 * (i + 1) / 3))
    element = Image.composite(element, Image.new("RGBA", (24, 16), (0, 0, 0, 0)), Image.merge("RGBA", (mask,) * 4))
    layer = Image.new("RGBA", (48, 40), (0, 0, 0, 0))
    layer.paste(element, (30, -4))
    background = pictures(IMAGES[:1])[0].convert("RGBA")
    background.paste(layer, (0, 0), layer)
    assert got.shape == (1, 40, 48, 4) and torch.equal(got[0], tensor(background))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageTranspose", image=IMAGES[:1], image_overlay=other, width=-5)
    assert caught.value.input == "width"
    with pytest.raises(NodeInputError) as caught:  # the pack's Pillow rectangles fail past half a side
        call(registry, "WasImageTranspose", image=IMAGES[:1], image_overlay=other, width=24, height=16, feathering=9)
    assert caught.value.input == "feathering"


def test_image_transpose_feathering_is_the_packs_rectangles_in_one_pass(registry):
    from PIL import Image, ImageDraw
    for width, height, feathering in ((24, 16, 8), (7, 9, 3), (31, 12, 1), (2, 2, 1)):
        mask = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(mask)
        for i in range(feathering):
            draw.rectangle((i, i, width - i, height - i), fill=int(255 * (i + 1) / feathering))
        assert was_image.feather_mask((width, height), feathering).tobytes() == mask.tobytes()
    started = time.perf_counter()
    was_image.feather_mask((4096, 4096), 2048)  # the rectangles: 2048 fills of up to 16M pixels
    assert time.perf_counter() - started < 5


def test_transpose_stitch_and_latent_upscale_sizes_are_checked(registry):
    from graphflow.resource_limits import Size
    estimate = registry.get("WasImageTranspose").estimate({"width": 16384, "height": 8192},
                                                          {"image": Size(2, 64, 48), "image_overlay": Size(1, 8, 8)})
    assert estimate.size == Size(2, 64, 48) and estimate.memory == 16384 * 8192 * 16
    estimate = registry.get("WasImageStitch").estimate({"stitch": "left", "feathering": 10},
                                                       {"image_a": Size(1, 40, 48), "image_b": Size(1, 30, 20)})
    assert estimate.size == Size(1, 40, 48 + 20 - 10)
    wide = torch.rand(1, 4, 9000, 3)
    with pytest.raises(NodeInputError) as caught:  # 9000 + 9000 - 0 wide
        call(registry, "WasImageStitch", image_a=wide, image_b=wide, stitch="right", feathering=0)
    assert caught.value.input == "image_b"
    assert call(registry, "WasImageStitch", image_a=wide, image_b=wide, stitch="top", feathering=0).shape == \
        (1, 8, 9000, 3)
    with pytest.raises(NodeInputError) as caught:  # 300 x 8 = 2400 latent rows, decoding to 19200 pixels
        call(registry, "WasLatentUpscaleByFactor", samples={"samples": torch.zeros(1, 4, 300, 8)}, factor=8.0)
    assert caught.value.input == "factor"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasLatentUpscaleByFactor", samples={"samples": torch.zeros(4, 8, 8)})
    assert caught.value.input == "samples"


def levenshtein(a, b):
    """Edit distance, row by row (insert, delete, substitute at cost 1)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row, before = [i], row
        for j, cb in enumerate(b, 1):
            row.append(min(before[j] + 1, row[j - 1] + 1, before[j - 1] + (ca != cb)))
    return row[-1]


def test_text_compare_scores_by_edit_distance(registry):
    def compare(a, b, mode="similarity", tolerance=0.0):
        return call(registry, "WasTextCompare", text_a=a, text_b=b, mode=mode, tolerance=tolerance)

    got = compare("kitten", "sitting")
    assert got[:3] == ("kitten", "sitting", 0) and got[3] == 1 - levenshtein("kitten", "sitting") / 7
    assert compare("same text", "same text")[2:4] == (1, 1.0)
    assert compare("", "")[2:4] == (1, 1.0)
    # difference: text_a cut at the changed spaces the pack's walk finds ("a" | "red cube")
    got = compare("a red cube", "a blue cube", mode="difference")
    assert got[3] == 1 - (levenshtein("a red cube", "a blue cube") - 2) / 11 and got[4] == "a red cube"
    assert compare("a red cube", "a red cube", mode="difference")[3] == 1 - (0 - 1) / 10
    words = compare("a red cube on a table", "a red ball on the table", tolerance=1.0)[4].split()
    assert words and set(words) <= set("a red cube on a table".split()) | set("a red ball on the table".split())
    with pytest.raises(NodeInputError) as caught:
        compare("x" * 2000, "y" * 2000)
    assert caught.value.input == "text_b"


def test_batch_pickers_conversions_and_console(registry, caplog):
    import logging
    assert torch.equal(call(registry, "WasTensorBatchToImage", images_batch=IMAGES, batch_image_number=1), IMAGES[1:2])
    assert torch.equal(call(registry, "WasTensorBatchToImage", images_batch=IMAGES, batch_image_number=9), IMAGES[1:2])
    assert torch.equal(call(registry, "WasMaskBatchToMask", masks=MASKS, batch_number=0), MASKS[:1])
    assert torch.equal(call(registry, "WasConvertMasksToImages", masks=MASKS), MASKS[..., None].expand(-1, -1, -1, 3))
    rgba = torch.cat([IMAGES, torch.ones(2, 40, 48, 1)], dim=-1)
    want = torch.stack([tensor(p) for p in pictures(IMAGES)])
    assert torch.equal(call(registry, "WasImagesToRGB", images=rgba), want)
    with caplog.at_level(logging.INFO, logger="nodes.pack_nodes_was"):
        assert call(registry, "WasTextToConsole", text="hello", label="mine") == "hello"
        assert call(registry, "WasDebugNumberToConsole", number=2.5, label="") == 2.5
    assert "mine:\nhello" in caplog.text and "Debug to Console:\n2.5" in caplog.text


def test_custom_tokens_are_used_by_the_token_parsers(registry, tmp_folders, monkeypatch):
    monkeypatch.setattr(was, "CUSTOM_TOKENS", {})
    call(registry, "WasTextAddTokens", tokens="[shot]: portrait\n\n[style]: film: grainy")
    call(registry, "WasTextAddTokenByInput", token_name="[who]", token_value="cat")
    assert was.CUSTOM_TOKENS == {"[shot]": "portrait", "[style]": "film", "[who]": "cat"}
    assert call(registry, "WasTextParseTokens", text="[who] [shot] [style] [other]") == "cat portrait film [other]"
    call(registry, "WasSaveTextFile", text="x", path="[shot]", filename_prefix="[who]")
    assert (tmp_folders.outputs / "portrait" / "cat_0001.txt").read_text() == "x"
    call(registry, "WasTextAddTokens", tokens="[up]: ..")
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasSaveTextFile", text="x", path="[up]/away")
    assert caught.value.input == "path"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextAddTokens", tokens="no colon here")
    assert caught.value.input == "tokens"


def test_was_classes_name_their_pack_whole_not_other_packs_classes_by_prefix():
    from graphflow.comfy_format import custom_pack
    for ours in ("Image Rotate", "Random Number", "Mask Invert", "Text Find and Replace Input", "WAS_Anything",
                 "Image Blend by Mask"):
        assert custom_pack(ours) == "WAS Node Suite", ours
    for theirs in ("Image Rotate (mtb)", "Random Number Generator", "Mask Invert (Segment)"):
        assert custom_pack(theirs) != "WAS Node Suite", theirs


@pytest.mark.parametrize("widgets, name, socket", [
    ([], "boolean_number", "NUMBER"), (["", ""], "boolean_number", "NUMBER"),
    (["", "", True], "boolean", "BOOLEAN"), ([], "boolean", "BOOLEAN")])
def test_text_input_switch_saves_of_older_editors(registry, widgets, name, socket):
    """Editors before ComfyUI frontend 1.16 saved a value for each forceInput input (the texts, and
    the later layout's boolean); later ones save none: each is read onto the links."""
    nodes = [ui_node(1, "Text Multiline", ["a"], outputs=[("STRING", "STRING", [1])]),
             ui_node(2, "Text Multiline", ["b"], outputs=[("STRING", "STRING", [2])]),
             ui_node(3, "Constant Number", ["integer", 1], outputs=[("NUMBER", "NUMBER", [3])]),
             ui_node(4, "Text Input Switch", widgets,
                     inputs=[("text_a", "STRING", 1, True), ("text_b", "STRING", 2, True), (name, socket, 3, False)],
                     outputs=[("STRING", "STRING", [])])]
    graph = ui_graph(nodes, [link(1, 1, 0, 4, 0, "STRING"), link(2, 2, 0, 4, 1, "STRING"), link(3, 3, 0, 4, 2, socket)])
    workflow = parse_workflow(graph, registry)
    assert workflow.nodes["4"].inputs == {"text_a": ["1", 0], "text_b": ["2", 0], name: ["3", 0]}
