"""UI saves of pack nodes whose inputs the pack marks forceInput (ComfyAlias.force_input).

The two layouts, as ComfyUI's editors save them:
- before ComfyUI frontend 1.16 (April 2025) a forceInput input was a widget converted to an input
  at once: widgets_values holds its (hidden, never edited) value at its place in the input order,
  and the node's inputs list it as a converted widget ("widget": {"name": ...}). Facts from
  Comfy-Org/ComfyUI_frontend PR #3326 ("No longer create widget for forceInput input") and PR #3337
  ("remove the dummy widget value serialized from workflows prior to v1.16"), whose
  migrateWidgetsValues (src/utils/litegraphUtil.ts) drops those values when the save is as long as
  the older layout.
- from 1.16 on a forceInput input is a bare socket: no value, no "widget" key. Real saves: a was-ns
  3.0.0 workflow in the index (file 28414572772: Text Concatenate's text_a .. text_d sockets with
  shape 7 and no widget key; widgets_values [delimiter, clean_whitespace] as in file 56313848808),
  and CR Text Concatenate saved as widgets_values ["， "] with text1 / text2 linked (file 60189420891).
"""

import pytest

from graphflow.comfy_format import export_api, export_ui, import_api, import_ui, ui_to_api
from graphflow.executor import Executor
from graphflow.registry import Registry
from tests.test_pack_nodes import ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def pack_node(id, class_type, forced, widgets, older_editor):
    """A node with unlinked forceInput sockets `forced` (name, type), as the editor saves it: before
    frontend 1.16 each listed as a converted widget (its value is in `widgets` then)."""
    return ui_node(id, class_type, widgets, inputs=[(name, kind, None, older_editor) for name, kind in forced])


# class, its forceInput sockets, widgets_values before frontend 1.16, from 1.16 on, and the widget
# values both must read as (the pack's input order: its INPUT_TYPES, read for each module)
CASES = [
    ("CR Text Concatenate", [("text1", "STRING"), ("text2", "STRING")],
     ["", "", " | "], [" | "], {"separator": " | "}),
    ("CR Text Replace", [("text", "STRING")],
     ["", "cat", "dog", "", "", "", ""], ["cat", "dog", "", "", "", ""], {"find1": "cat", "replace1": "dog"}),
    ("Text Concatenate", [("text_a", "STRING"), ("text_b", "STRING"), ("text_c", "STRING"), ("text_d", "STRING")],
     [" + ", "false", "", "", "", ""], [" + ", "false"], {"delimiter": " + ", "clean_whitespace": "false"}),
    ("Text Find and Replace", [("text", "STRING")],
     ["", "cat", "dog"], ["cat", "dog"], {"find": "cat", "replace": "dog"}),
    ("easy promptConcat", [("prompt1", "STRING"), ("prompt2", "STRING")],
     ["", "", " ; "], [" ; "], {"separator": " ; "}),
    ("SDXL Power Prompt - Positive (rgthree)", [("opt_clip_width", "INT"), ("opt_clip_height", "INT")],
     ["a cat", "a dog", 1024, 1024, "CHOOSE", "CHOOSE", "CHOOSE", 2048, 1536, 0, 16],
     ["a cat", "a dog", "CHOOSE", "CHOOSE", "CHOOSE", 2048, 1536, 0, 16],
     {"prompt_g": "a cat", "prompt_l": "a dog", "target_width": 2048, "target_height": 1536,
      "crop_width": 0, "crop_height": 16}),
    ("LatentKeyframeBatchedGroup", [("float_strengths", "FLOAT")], [-1, True], [True], {"print_keyframes": True}),
    ("ACN_TimestepKeyframeFromStrengthList", [("float_strengths", "FLOAT")],
     [-1, 0.25, 0.75, 0.5, False, True], [0.25, 0.75, 0.5, False, True],
     {"start_percent": 0.25, "end_percent": 0.75, "null_latent_kf_strength": 0.5, "inherit_missing": False,
      "print_keyframes": True}),
]


@pytest.mark.parametrize("class_type,forced,older,newer,expected", CASES, ids=[c[0] for c in CASES])
def test_both_layouts_read_the_same(registry, class_type, forced, older, newer, expected):
    read = {}
    for layout, values, older_editor in (("older", older, True), ("newer", newer, False),
                                         # a save whose inputs list lacks the converted-widget marks
                                         # (hand-made, or by a converter): told by its length
                                         ("older, no marks", older, False)):
        graph, _, _ = ui_to_api(ui_graph([pack_node(1, class_type, forced, values, older_editor)]), registry)
        inputs = graph["1"]["inputs"]
        read[layout] = inputs
        for name, value in expected.items():
            assert inputs[name] == value, (layout, name, inputs)
        for name, _ in forced:  # an unlinked forceInput socket gets no value from the save
            assert name not in inputs, (layout, name)
    assert read["older"] == read["newer"]


def test_the_current_layout_is_not_cut(registry):
    """A newer editor's save with a forceInput socket marked as a converted widget (an older save's
    inputs kept) but the current widgets_values: nothing is dropped."""
    node = pack_node(1, "CR Text Concatenate", [("text1", "STRING"), ("text2", "STRING")], [" | "], True)
    graph, _, _ = ui_to_api(ui_graph([node]), registry)
    assert graph["1"]["inputs"]["separator"] == " | "


@pytest.mark.parametrize("class_type,forced,values,expected", [
    ("CR Text Replace", [("text", "STRING")], ["cat", "dog", "", "", "", ""], {"find1": "cat", "replace1": "dog"}),
    ("SDXL Power Prompt - Positive (rgthree)", [("opt_clip_width", "INT"), ("opt_clip_height", "INT")],
     ["a cat", "a dog", "CHOOSE", "CHOOSE", "CHOOSE", 2048, 1536, 0, 16],
     {"prompt_g": "a cat", "prompt_l": "a dog", "insert_embedding": "CHOOSE", "target_width": 2048,
      "target_height": 1536, "crop_width": 0, "crop_height": 16}),
], ids=["CR Text Replace", "rgthree"])
def test_a_newer_save_with_a_stale_mark_keeps_its_values(registry, class_type, forced, values, expected):
    """A newer editor's save (the current layout, forceInput place first or among other widgets)
    whose forceInput sockets still carry an older save's converted-widget marks: its values are as
    many as the current layout's places, so none is dropped."""
    graph, _, _ = ui_to_api(ui_graph([pack_node(1, class_type, forced, values, True)]), registry)
    inputs = graph["1"]["inputs"]
    for name, value in expected.items():
        assert inputs[name] == value, (name, inputs)


def concatenate_save(older_editor: bool) -> dict:
    """CR Text -> CR Text Concatenate <- CR Text, as the pack's editor saves it."""
    texts = [ui_node(i, "CR Text", [text], outputs=[("text", "*", [i]), ("show_help", "STRING", [])])
             for i, text in ((1, "first"), (2, "second"))]
    concatenate = ui_node(3, "CR Text Concatenate", ["", "", " | "] if older_editor else [" | "],
                          inputs=[("text1", "STRING", 1, older_editor), ("text2", "STRING", 2, older_editor)],
                          outputs=[("STRING", "*", []), ("show_help", "STRING", [])])
    return ui_graph(texts + [concatenate], [[1, 1, 0, 3, 0, "STRING"], [2, 2, 0, 3, 1, "STRING"]])


@pytest.mark.parametrize("older_editor", [True, False])
def test_ui_save_runs_as_the_pack_joins(registry, older_editor):
    result = Executor(registry).run(import_ui(concatenate_save(older_editor), registry), outputs=["3"])
    assert result.ok, (result.problems, result.error)
    assert result.values["3"][0] == "first" + " | " + "second"  # the pack's text1 + separator + text2


@pytest.mark.parametrize("older_editor", [True, False])
def test_export_writes_the_current_editors_layout(registry, older_editor):
    workflow = import_ui(concatenate_save(older_editor), registry)
    saved = export_ui(workflow, registry)
    node = next(n for n in saved["nodes"] if n["type"] == "CR Text Concatenate")
    assert node["widgets_values"] == [" | "]
    assert all("widget" not in socket for socket in node["inputs"] if socket["name"] in ("text1", "text2"))
    again = import_ui(saved, registry)
    assert export_api(again, registry) == export_api(workflow, registry)
    assert export_api(workflow, registry)["3"]["inputs"] == {"text1": ["1", 0], "text2": ["2", 0], "separator": " | "}


def test_api_prompt_with_the_packs_class_names(registry):
    prompt = {"1": {"class_type": "CR Text", "inputs": {"text": "first"}},
              "2": {"class_type": "CR Text", "inputs": {"text": "second"}},
              "3": {"class_type": "CR Text Concatenate",
                    "inputs": {"text1": ["1", 0], "text2": ["2", 0], "separator": " | "}}}
    workflow = import_api(prompt, registry)
    result = Executor(registry).run(workflow, outputs=["3"])
    assert result.ok, (result.problems, result.error)
    assert result.values["3"][0] == "first | second"
    assert export_api(workflow, registry)["3"]["inputs"] == prompt["3"]["inputs"]


def test_api_prompt_with_a_value_for_an_optional_force_input(registry):
    """A value sent for a forceInput input (as an editor before frontend 1.16 sent the hidden
    widget's): ComfyUI's backend runs it, converted as its validation converts the input's type
    (str for STRING), so it is read, without a note."""
    prompt = {"1": {"class_type": "CR Text", "inputs": {"text": "first"}},
              "3": {"class_type": "CR Text Concatenate",
                    "inputs": {"text1": ["1", 0], "text2": 7, "separator": " | "}}}
    workflow = import_api(prompt, registry)
    assert not any(n["node_id"] == "3" for n in workflow.notes)
    result = Executor(registry).run(workflow, outputs=["3"])
    assert result.ok, (result.problems, result.error)
    assert result.values["3"][0] == "first" + " | " + str(7)


def test_api_prompt_with_a_value_for_a_required_force_input(registry):
    prompt = {"1": {"class_type": "CR Text Replace", "inputs": {
        "text": "hello", "find1": "l", "replace1": "L", "find2": "", "replace2": "", "find3": "", "replace3": ""}}}
    workflow = import_api(prompt, registry)
    assert workflow.notes == []
    result = Executor(registry).run(workflow, outputs=["1"])
    assert result.ok, (result.problems, result.error)
    assert result.values["1"][0] == "hello".replace("l", "L")
    assert export_api(workflow, registry)["1"]["inputs"]["text"] == "hello"


def test_api_prompt_with_a_value_not_of_the_force_inputs_type(registry):
    prompt = {"1": {"class_type": "SDXL Power Prompt - Positive (rgthree)", "inputs": {
        "prompt_g": "a cat", "prompt_l": "", "opt_clip_width": "wide", "insert_lora": "CHOOSE",
        "insert_embedding": "CHOOSE", "insert_saved": "CHOOSE", "target_width": -1, "target_height": -1,
        "crop_width": -1, "crop_height": -1}}}
    result = Executor(registry).run(import_api(prompt, registry), outputs=["1"])
    assert not result.ok
    assert any(p.input == "opt_clip_width" and "an int value" in p.message for p in result.problems), result.problems


def test_a_real_easy_prompt_concat_save(registry):
    """Easy-Use's promptConcat as a 2024 community save holds it (index file 64346945652): both
    prompts linked and listed as converted widgets, a value kept for each (the second a whole
    prompt), then the separator."""
    texts = [ui_node(i, "PrimitiveStringMultiline", [text], outputs=[("STRING", "STRING", [i])])
             for i, text in ((1, "a girl"), (2, "wanostyle, solo"))]
    concat = ui_node(82, "easy promptConcat", ["", "wanostyle, solo, ((masterpiece)), manga,", "，"],
                     inputs=[("prompt1", "STRING", 1, True), ("prompt2", "STRING", 2, True)],
                     outputs=[("prompt", "STRING", [])])
    save = ui_graph(texts + [concat], [[1, 1, 0, 82, 0, "STRING"], [2, 2, 0, 82, 1, "STRING"]])
    graph, _, _ = ui_to_api(save, registry)
    assert graph["82"]["inputs"] == {"prompt1": ["1", 0], "prompt2": ["2", 0], "separator": "，"}
    result = Executor(registry).run(import_ui(save, registry), outputs=["82"])
    assert result.ok, (result.problems, result.error)
    assert result.values["82"][0] == "a girl" + "，" + "wanostyle, solo"  # the pack's prompt1 + separator + prompt2


@pytest.mark.parametrize("value, expected", [(10**30, "within int64"), (1e300, "within int64"),
                                             ("inf", "within int64")])
def test_a_number_value_for_a_socket_is_held_to_what_a_link_could_give(registry, value, expected):
    """A socket has no widget bounds: a literal INT beyond int64 (which a node could take as a size or
    a count) is refused by name, as an int that doesn't convert is."""
    prompt = {"1": {"class_type": "SDXL Power Prompt - Positive (rgthree)", "inputs": {
        "prompt_g": "a cat", "prompt_l": "", "opt_clip_width": value, "insert_lora": "CHOOSE",
        "insert_embedding": "CHOOSE", "insert_saved": "CHOOSE", "target_width": -1, "target_height": -1,
        "crop_width": -1, "crop_height": -1}}}
    result = Executor(registry).run(import_api(prompt, registry), outputs=["1"])
    assert not result.ok
    assert any(p.input == "opt_clip_width" and expected in p.message for p in result.problems), result.problems


@pytest.mark.parametrize("value, expected", [("12", 12), (7.9, 7), (True, 1)])
def test_an_int_value_for_a_socket_converts_as_comfyuis_validation_does(registry, value, expected):
    """ComfyUI's validate_inputs runs int() on an INT input's value: text of digits, a float
    (truncated) and a boolean convert; CR Integer To String writes what it got."""
    prompt = {"1": {"class_type": "CR Integer To String", "inputs": {"int_": value}}}
    result = Executor(registry).run(import_api(prompt, registry), outputs=["1"])
    assert result.ok, (result.problems, result.error)
    assert result.values["1"][0] == str(int(value)) == str(expected)


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), (0, False), (1, True)])
def test_a_boolean_value_for_a_socket(value, expected):
    from graphflow.validation import _socket_literal
    converted = _socket_literal("BOOLEAN", value)
    assert converted is expected


@pytest.mark.parametrize("value", ["false", "true", 0.0, 2, None, [True]])
def test_a_boolean_socket_refuses_what_is_not_true_or_false(value):
    """bool("false") is true: a text, a float or another number for a BOOLEAN socket is refused,
    not read by its truth."""
    from graphflow.validation import _socket_literal
    with pytest.raises(ValueError):
        _socket_literal("BOOLEAN", value)


def test_object_info_marks_every_text_and_number_socket_force_input(registry):
    """A ComfyUI editor shows an INT / FLOAT / STRING / BOOLEAN input without forceInput as a widget;
    our socket inputs are marked so it shows a socket (CR Integer To String's int_, which the pack
    declared as a plain widget before it added the mark), other sockets are not."""
    from graphflow.server.comfyui_object_info import object_info
    info = object_info(registry)
    assert info["CR Integer To String"]["input"]["required"]["int_"] == ["INT", {"forceInput": True}]
    assert info["KSampler"]["input"]["required"]["model"] == ["MODEL", {}]
    assert "forceInput" not in info["KSampler"]["input"]["required"]["seed"][1]
