"""twri's SDXL Prompt Styler (nodes/pack_nodes_sdxl_styler.py): the stylers against the pack's
template rules written out here (str.replace of {prompt}, the ", " joins, the " . " split), the
shipped style files (they parse, their style counts are the pack's), user style files read from
models/styles (duplicate names suffixed), the clear errors, and UI-format saves and API prompts
with the pack's class names that run and round-trip."""

import json
import logging
import time
from pathlib import Path

import pytest

from graphflow.comfy_format import comfy_catalogue, custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from nodes import pack_nodes_sdxl_styler as styler
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

DATA = Path(styler.__file__).parent.parent / "graphflow" / "data" / "sdxl_prompt_styler"
# the pack's files as stored (twri/sdxl_prompt_styler): their sizes in characters and their style counts
SHIPPED = {"sdxl_styles.json": (28269, 104), "sdxl_styles_base.json": (99, 1), "sdxl_styles_diva.json": (17112, 80)}


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def styles_folder(tmp_folders):
    folder = tmp_folders.models / "styles"
    folder.mkdir()
    return folder


def node(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


def shipped_templates() -> dict:
    """The shipped styles by name, read here straight from the files."""
    return {t["name"]: t for name in sorted(SHIPPED) for t in json.loads((DATA / name).read_text(encoding="utf-8"))}


def test_the_packs_names_are_ours_and_clash_with_no_core_class(registry):
    for name in ("SDXLPromptStyler", "SDXLPromptStylerAdvanced", "CameraStyler", "PerfectionStylerAdvanced",
                 "TimeofdayStyler", "MilehighStylerAdvanced"):
        assert name not in comfy_catalogue()
        assert registry.comfy_node(name).__module__ == "nodes.pack_nodes_sdxl_styler"
        assert custom_pack(name) == "sdxl_prompt_styler"
    assert custom_pack("SDXLPromptStylerbyMood") is None  # another pack's styler: whole names only


def test_the_shipped_files_parse_and_hold_the_packs_styles():
    assert sorted(p.name for p in DATA.glob("*.json")) == sorted(SHIPPED)
    for name, (chars, count) in SHIPPED.items():
        raw = (DATA / name).read_bytes()
        text = raw.decode("utf-8")
        assert len(text) == chars, name
        content = json.loads(text)
        assert len(content) == count and all(set(t) == {"name", "prompt", "negative_prompt"} for t in content)
    assert (DATA / "sdxl_styles_diva.json").read_bytes().count(b"\r\n") == 400  # the pack's CRLF lines, kept
    assert b"\r" not in (DATA / "sdxl_styles.json").read_bytes()  # its LF ones
    assert (DATA / "LICENSE").read_text().startswith("MIT License")
    names = styler.style_names()
    # the files in name order: sdxl_styles.json's first
    assert len(names) == 104 + 1 + 80 and names[0] == "sai-base" and names[104] == "base"
    assert "sai-cinematic" in names and "Whimsical and Playful" in names


def test_a_style_replaces_prompt_and_joins_the_negatives(registry):
    template = shipped_templates()["Art Deco"]
    out = node(registry, "SDXLPromptStyler", text_positive="a cat", text_negative="dog", style="Art Deco")
    assert out == (template["prompt"].replace("{prompt}", "a cat"), template["negative_prompt"] + ", dog")
    # an empty negative: the template's alone; base's empty negative: the given one alone
    assert node(registry, "SDXLPromptStyler", text_positive="a cat", style="Art Deco")[1] == template["negative_prompt"]
    assert node(registry, "SDXLPromptStyler", text_positive="a cat", text_negative="dog", style="base") == \
        ("a cat", "dog")


def test_style_positive_and_negative_off_keep_the_texts(registry):
    template = shipped_templates()["Baroque"]
    given = {"text_positive": "p", "text_negative": "n", "style": "Baroque"}
    assert node(registry, "SDXLPromptStyler", **given, style_positive=False) == \
        ("p", template["negative_prompt"] + ", n")
    assert node(registry, "SDXLPromptStyler", **given, style_negative=False) == \
        (template["prompt"].replace("{prompt}", "p"), "n")


def test_user_style_files_are_read_and_duplicates_get_suffixes(registry, styles_folder):
    (styles_folder / "mine.json").write_text(json.dumps([
        {"name": "no placeholder", "prompt": "a fixed prompt", "negative_prompt": ""},
        {"name": "twice", "prompt": "{prompt} and {prompt}", "negative_prompt": "bad"},
        {"name": "base", "prompt": "my base {prompt}", "negative_prompt": ""},
        {"name": "base", "prompt": "my second base {prompt}", "negative_prompt": ""},
    ]), encoding="utf-8")
    (styles_folder / "broken.json").write_text('[{"name": "half"}]', encoding="utf-8")  # no prompt: left out
    (styles_folder / "nested").mkdir()
    (styles_folder / "nested" / "deep.json").write_text(json.dumps([
        {"name": "deep", "prompt": "{prompt}", "negative_prompt": ""}]), encoding="utf-8")
    names = styler.style_names()
    assert names[-4:] == ["no placeholder", "twice", "base_1", "base_2"]  # the shipped "base" came first
    assert "half" not in names and "deep" not in names  # a category folder's file is not the main list's
    # a template without {prompt}: the positive text is dropped, as str.replace leaves the template
    assert node(registry, "SDXLPromptStyler", text_positive="cat", style="no placeholder") == ("a fixed prompt", "")
    assert node(registry, "SDXLPromptStyler", text_positive="cat", style="twice")[0] == "cat and cat"
    assert node(registry, "SDXLPromptStyler", text_positive="cat", style="base_2")[0] == "my second base cat"


def test_bad_entries_of_a_style_file_are_left_out_one_by_one(registry, styles_folder, caplog):
    (styles_folder / "entries.json").write_text(json.dumps([
        {"name": "good", "prompt": "good {prompt}", "negative_prompt": "ugly"},
        {"name": 7, "prompt": "{prompt}", "negative_prompt": ""},  # a number for a name
        {"name": "no prompt", "negative_prompt": ""},
        {"name": "null prompt", "prompt": None, "negative_prompt": ""},
        {"name": "null negative", "prompt": "n {prompt}", "negative_prompt": None},
        {"name": "no negative", "prompt": "m {prompt}"},
        {"name": "list negative", "prompt": "{prompt}", "negative_prompt": ["x"]},
        "just text",
        {"name": "last", "prompt": "last {prompt}", "negative_prompt": ""},
    ]), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        names = styler.style_names()
    assert names[-4:] == ["good", "null negative", "no negative", "last"]
    assert not {"7", "no prompt", "null prompt", "list negative", "just text"} & set(names)
    assert "entries.json" in caplog.text and "entry 1" in caplog.text and "and 2 more" in caplog.text
    # a null or missing negative is empty: the given negative alone, as the pack's join gives it
    assert node(registry, "SDXLPromptStyler", text_positive="cat", text_negative="x", style="null negative") == \
        ("n cat", "x")
    assert node(registry, "SDXLPromptStyler", text_positive="cat", text_negative="", style="no negative") == \
        ("m cat", "")
    assert node(registry, "SDXLPromptStyler", text_positive="cat", text_negative="x", style="good") == \
        ("good cat", "ugly, x")


def test_unreadable_style_files_are_left_out_with_a_warning(registry, styles_folder, tmp_path, monkeypatch,
                                                            caplog):
    def styles(*names):
        return json.dumps([{"name": n, "prompt": f"{n} {{prompt}}", "negative_prompt": ""} for n in names])

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "linked.json").write_text(styles("from outside"), encoding="utf-8")
    (styles_folder / "linked.json").symlink_to(outside / "linked.json")  # a link out of the folder
    (styles_folder / "large.json").write_text(styles("large one") + " " * 50_000, encoding="utf-8")
    monkeypatch.setattr(styler, "MAX_STYLE_FILE", 40_000)  # the large file is over it, the others (shipped too) under
    (styles_folder / "invalid.json").write_text('[{"name": "cut short", ', encoding="utf-8")
    (styles_folder / "object.json").write_text('{"name": "an object", "prompt": "{prompt}"}', encoding="utf-8")
    (styles_folder / "valid.json").write_text(styles("kept"), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        names = styler.style_names()
    assert names[-1] == "kept" and sorted(names[:-1]) == sorted(shipped_templates())  # the shipped, then "kept"
    assert "large.json is larger than 40,000 bytes" in caplog.text
    assert "invalid.json could not be read" in caplog.text
    assert "object.json is a JSON dict, not a list of styles" in caplog.text
    assert "linked.json" not in caplog.text  # a link out is not offered: never read
    assert node(registry, "SDXLPromptStyler", text_positive="cat", style="kept") == ("kept cat", "")
    assert not {"from outside", "large one", "cut short", "an object"} & set(names)
    with pytest.raises(ValueError, match="'from outside' is not one of the choices"):
        node(registry, "SDXLPromptStyler", text_positive="cat", style="from outside")


def pack_renames(names: list[str]) -> list[str]:
    """The pack's renaming written out: each name, else the first free name_1, name_2 ..."""
    seen, out = set(), []
    for original in names:
        name, suffix = original, 1
        while name in seen:
            name, suffix = f"{original}_{suffix}", suffix + 1
        seen.add(name)
        out.append(name)
    return out


def test_many_duplicate_names_are_renamed_quickly_as_the_pack_does(styles_folder):
    mixed = ["b", "a_2", "a", "b", "a", "a_1", "a", "b_1", "b", "a"]  # literal suffixes among the repeats
    (styles_folder / "mixed.json").write_text(json.dumps(
        [{"name": n, "prompt": "{prompt}", "negative_prompt": ""} for n in mixed]), encoding="utf-8")
    assert styler.style_names()[-len(mixed):] == pack_renames(mixed)
    # 20,000 of one name (with a literal "a_3" first): the renaming took 61 s, trying every suffix anew
    (styles_folder / "mixed.json").unlink()
    many = ["a_3"] + ["a"] * 20_000
    (styles_folder / "many.json").write_text(json.dumps(
        [{"name": n, "prompt": "{prompt}", "negative_prompt": ""} for n in many]), encoding="utf-8")
    started = time.perf_counter()
    names = styler.style_names()[-len(many):]
    assert time.perf_counter() - started < 5
    assert names == ["a_3", "a", "a_1", "a_2", *(f"a_{k}" for k in range(4, 20_001))]


def test_an_unknown_style_is_refused_naming_the_input_and_the_closest(registry):
    prompt = {"1": {"class_type": "SDXLPromptStyler",
                    "inputs": {"text_positive": "a", "text_negative": "", "style": "Art Dekko", "log_prompt": False,
                               "style_positive": True, "style_negative": True}}}
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["1"])
    assert not result.ok
    problem = result.problems[0]
    assert problem.input == "style" and "'Art Dekko'" in problem.message and "closest: 'Art Deco'" in problem.message
    with pytest.raises(NodeInputError) as caught:  # a style gone between listing and running
        styler.find_style(styler.all_styles(), "Art Dekko", "style", "the style files")
    assert caught.value.input == "style" and "'Art Deco'" in str(caught.value)
    # find_style names the same closest styles as the choice's refusal (one search, one cutoff)
    for value in ("Art Dekko", "sai-anme", "photo-lon exposure"):
        with pytest.raises(NodeInputError) as caught:
            styler.find_style(styler.all_styles(), value, "style", "the style files")
        result = Executor(registry).run(parse_workflow(
            {"1": {**prompt["1"], "inputs": {**prompt["1"]["inputs"], "style": value}}}, registry), outputs=["1"])
        named = str(caught.value).split("closest: ")[1]
        assert f"closest: {named})" in result.problems[0].message


def test_both_main_stylers_rerun_when_a_style_file_changes(styles_folder):
    before = styler.SDXLPromptStyler.fingerprint(style="sai-base")
    assert styler.SDXLPromptStylerAdvanced.fingerprint(style="sai-base") == before
    (styles_folder / "mine.json").write_text('[{"name": "x", "prompt": "{prompt}", "negative_prompt": ""}]',
                                             encoding="utf-8")
    after = styler.SDXLPromptStyler.fingerprint(style="sai-base")
    assert after != before and "mine.json" in after
    assert styler.SDXLPromptStylerAdvanced.fingerprint(style="sai-base") == after


def test_the_closest_choices_of_a_long_list_are_searched_among_few(monkeypatch):
    """A bad value among 100,000 choices: difflib compares at most MAX_CLOSE_SEARCH of them (it
    compared all, seconds per value), narrowed to those sharing the value's start."""
    import difflib

    from graphflow import node as node_api
    compared = []

    class CountingMatcher(difflib.SequenceMatcher):
        def set_seq1(self, a):
            if a:  # not the empty one the matcher starts with
                compared.append(a)
            super().set_seq1(a)

    monkeypatch.setattr(difflib, "SequenceMatcher", CountingMatcher)
    choices = [f"style {i:06d}" for i in range(100_000)] + ["Art Deco"]
    assert node_api.closest_choices("Art Dekko", choices) == ["Art Deco"]
    assert len(compared) == 1  # the one choice starting "Art"
    compared.clear()
    close = node_api.closest_choices("style 04217x", choices)  # every choice starts "sty": cut at the bound
    assert len(close) == 5 and all(name.startswith("style ") for name in close)
    assert 0 < len(compared) <= node_api.MAX_CLOSE_SEARCH < len(choices)
    compared.clear()
    short = [f"style {i}" for i in range(100)]  # a short list is compared in full, as difflib alone does
    assert node_api.closest_choices("style 4x", short) == difflib.get_close_matches("style 4x", short, n=5)
    assert len(compared) == 2 * len(short)  # both calls (ours and the reference) saw every choice
    # through a Choice's validation: the refusal names the closest of the long list
    widget = node_api.Choice(lambda: choices)
    with pytest.raises(ValueError, match="closest: 'Art Deco'"):
        node_api._check_choice(widget)("Art Dekko")


def test_advanced_splits_at_the_first_dot_into_g_and_l(registry, styles_folder):
    (styles_folder / "two.json").write_text(json.dumps([
        {"name": "split", "prompt": "cinematic {prompt} . film grain, moody . extra", "negative_prompt": "ugly"},
        {"name": "l prompt", "prompt": "g part . l has {prompt}", "negative_prompt": ""},
    ]), encoding="utf-8")
    g_part, l_part = "cinematic {prompt}", "film grain, moody . extra"  # "x . y . z".split(" . ", 1), stripped
    out = node(registry, "SDXLPromptStylerAdvanced", text_positive_g="a cat", text_positive_l="soft light",
               text_negative="blurry", style="split", negative_prompt_to="G only")
    positive_g, positive_l = g_part.replace("{prompt}", "a cat"), l_part + ", soft light"
    assert out == (positive_g, positive_l, f"{positive_g} . {positive_l}", "ugly, blurry", "", "ugly, blurry")
    out = node(registry, "SDXLPromptStylerAdvanced", text_positive_g="a cat", style="split",
               negative_prompt_to="L only", copy_to_l=True)
    # copy_to_l: G's comma tokens first, then L's not among them
    merged = ", ".join(["cinematic a cat", "film grain", "moody . extra"])
    assert out[1] == merged and out[3:5] == ("", "ugly")
    # the L part's {prompt} takes text_positive_g; copy_to_l then does nothing
    out = node(registry, "SDXLPromptStylerAdvanced", text_positive_g="cat", text_positive_l="x", style="l prompt",
               copy_to_l=True)
    assert out[:3] == ("g part", "l has cat, x", "g part . l has cat, x")
    # a template without " . ": all G; no L text, so text_positive is G alone
    base = node(registry, "SDXLPromptStylerAdvanced", text_positive_g="cat", style="base")
    assert base == ("cat", "", "cat", "", "", "")


def test_advanced_on_the_shipped_sai_styles(registry):
    for name in ("sai-cinematic", "sai-texture", "sai-fantasy art"):
        template = shipped_templates()[name]
        g_part, _, l_part = template["prompt"].partition(" . ")
        out = node(registry, "SDXLPromptStylerAdvanced", text_positive_g="a cat", text_positive_l="",
                   text_negative="", style=name)
        assert out[0] == g_part.strip().replace("{prompt}", "a cat") and out[1] == l_part.strip()
        assert out[2] == (f"{out[0]} . {out[1]}" if l_part else out[0]) and out[5] == template["negative_prompt"]


def test_copy_to_l_keeps_repeated_tokens_once(registry, styles_folder):
    (styles_folder / "t.json").write_text(json.dumps([
        {"name": "tokens", "prompt": "{prompt}, sharp . sharp, vivid", "negative_prompt": ""}]), encoding="utf-8")
    out = node(registry, "SDXLPromptStylerAdvanced", text_positive_g="cat", text_positive_l="cat", style="tokens",
               copy_to_l=True)
    g_tokens = ["cat", "sharp"]
    l_tokens = ["sharp", "vivid", "cat"]
    for token in g_tokens:
        if token in l_tokens:
            l_tokens.remove(token)
    assert out[1] == ", ".join(g_tokens + l_tokens) == "cat, sharp, vivid"


def test_log_prompt_logs_the_styled_texts(registry, caplog):
    with caplog.at_level(logging.INFO, logger="nodes.pack_nodes_sdxl_styler"):
        node(registry, "SDXLPromptStyler", text_positive="cat", style="base", log_prompt=True)
    assert "text_positive_styled: cat" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nodes.pack_nodes_sdxl_styler"):
        node(registry, "SDXLPromptStyler", text_positive="cat", style="base", log_prompt=False)
    assert caplog.text == ""


CATEGORY_STYLES = {"camera": [("None", "{prompt}", ""), ("wide", "{prompt}, wide angle", "fisheye")],
                   "mood": [("calm", "calm {prompt} . quiet", "angry"), ("None", "{prompt}", "")]}


@pytest.fixture
def category_folders(styles_folder):
    """The Perfection Styler's folders, each with a "None" style; camera and mood with one more."""
    for folder in styler.PERFECTION_FOLDERS:
        styles = CATEGORY_STYLES.get(folder, [("None", "{prompt}", "")])
        (styles_folder / folder).mkdir()
        (styles_folder / folder / f"{folder}.json").write_text(json.dumps(
            [{"name": n, "prompt": p, "negative_prompt": neg} for n, p, neg in styles]), encoding="utf-8")
    return styles_folder


def apply_styles(positive: str, negative: str, chosen: list[tuple]) -> tuple[str, str]:
    """The pack's rule for a chain of templates, written out: replace, then join the negatives."""
    for _, prompt, template_negative in chosen:
        positive = prompt.replace("{prompt}", positive)
        negative = ", ".join(x for x in (template_negative, negative) if x)
    return positive, negative


def test_a_category_styler_applies_its_lists_in_turn(registry, category_folders):
    assert registry.comfy_node("CameraStyler").input_specs["camera"].widget.choices() == ["None", "wide"]
    assert node(registry, "CameraStyler", text_positive="cat", text_negative="x", camera="wide") == \
        apply_styles("cat", "x", [CATEGORY_STYLES["camera"][1]])
    menus = {folder: "None" for folder in styler.PERFECTION_FOLDERS} | {"camera": "wide", "mood": "calm"}
    out = node(registry, "PerfectionStyler", text_positive="cat", text_negative="x", **menus)
    # the Perfection Styler's order: camera ... mood ...; the "None" styles change nothing
    assert out == apply_styles("cat", "x", [CATEGORY_STYLES["camera"][1], CATEGORY_STYLES["mood"][0]])
    assert out == ("calm cat, wide angle . quiet", "angry, fisheye, x")


def test_a_category_styler_with_no_style_files_names_its_folder(registry, category_folders):
    prompt = {"1": {"class_type": "DepthStyler", "inputs": {"text_positive": "a", "text_negative": "",
                                                             "depth": "shallow", "log_prompt": False}}}
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["1"])
    assert not result.ok and result.problems[0].input == "depth"
    with pytest.raises(NodeInputError, match="models/styles/depth"):
        styler.find_style(styler.category_styles("depth"), "shallow", "depth", "models/styles/depth/*.json")


def test_a_category_styler_whose_folder_is_empty_says_where_to_copy_the_packs_files(registry, styles_folder):
    # a UI save with a chosen style, no data copied: refused at validation, naming the folder to fill
    graph = ui_graph([ui_node(1, "ArtistStyler", ["a", "", "Claude Monet", False])], [])
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["1"])
    assert not result.ok
    problem = result.problems[0]
    assert problem.input == "artist" and "'Claude Monet'" in problem.message
    assert "copy the pack's data/artist folder into models/styles/artist" in problem.message


def test_a_category_advanced_styler_swaps_g_and_l_as_the_pack_does(registry, category_folders):
    out = node(registry, "MoodStylerAdvanced", text_positive_g="G", text_positive_l="L", text_negative="n",
               mood="calm", negative_prompt_to="Both")
    # the pack's Template.split_template_advanced on "calm {prompt} . quiet", fed L as G and G as L
    g_template, l_template = "calm {prompt}", "quiet"
    positive_g, positive_l = g_template.replace("{prompt}", "L"), ", ".join([l_template, "G"])
    assert out == (positive_g, positive_l, f"{positive_g} . {positive_l}", "angry, n", "angry, n", "angry, n")


def test_ui_save_with_the_packs_nodes_runs_and_round_trips(registry, styles_folder):
    nodes = [
        ui_node(1, "SDXLPromptStyler", ["a lighthouse", "text", "Art Nouveau", True, True, False],
                outputs=[("text_positive", "STRING", [1]), ("text_negative", "STRING", [])]),
        ui_node(2, "DebugPrint", [], [("ANY", "*", 1, False)]),
        ui_node(3, "SDXLPromptStylerAdvanced", ["g text", "l text", "neg", "base", "L only", False, False],
                outputs=[(n, "STRING", []) for n in styler.ADVANCED_OUTPUTS]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "STRING"]])
    result = run_graph(registry, graph, ["2", "3"])
    template = shipped_templates()["Art Nouveau"]
    assert result.outputs["2"] == {"text": [template["prompt"].replace("{prompt}", "a lighthouse")]}
    assert result.values["3"] == ("g text", "l text", "g text . l text", "", "neg", "neg")
    saved = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in saved["nodes"]}
    for n in nodes:
        assert by_id[n["id"]]["type"] == n["type"] and by_id[n["id"]]["widgets_values"] == n["widgets_values"]


def test_an_older_save_without_the_style_toggles_reads(registry):
    """A save from before style_positive / style_negative: four widgets; the toggles take their defaults."""
    nodes = [ui_node(1, "SDXLPromptStyler", ["cat", "", "Cubism", False],
                     outputs=[("text_positive", "STRING", []), ("text_negative", "STRING", [])])]
    result = run_graph(registry, ui_graph(nodes), ["1"])
    template = shipped_templates()["Cubism"]
    assert result.values["1"] == (template["prompt"].replace("{prompt}", "cat"), template["negative_prompt"])


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry, category_folders):
    prompt = {
        "1": {"class_type": "SDXLPromptStyler",
              "inputs": {"text_positive": "a fox", "text_negative": "", "style": "Minimalism", "log_prompt": False,
                         "style_positive": True, "style_negative": True}},
        "2": {"class_type": "CameraStyler",
              "inputs": {"text_positive": ["1", 0], "text_negative": ["1", 1], "camera": "wide", "log_prompt": False}},
        "3": {"class_type": "SDXLPromptStylerAdvanced",
              "inputs": {"text_positive_g": "g", "text_positive_l": "", "text_negative": "", "style": "base",
                         "negative_prompt_to": "Both", "copy_to_l": True, "log_prompt": False}},
    }
    result = run_graph(registry, prompt, ["2", "3"])
    template = shipped_templates()["Minimalism"]
    positive, negative = template["prompt"].replace("{prompt}", "a fox"), template["negative_prompt"]
    assert result.values["2"] == (f"{positive}, wide angle", f"fisheye, {negative}")
    # copy_to_l with an empty L: the pack's merge gives G's text alone to L
    assert result.values["3"][:3] == ("g", "g", "g . g")
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in api.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}
