"""ComfyUI's utils/string nodes (nodes/strings.py), judged against Python's own str and `re`
(what ComfyUI runs), the primitives' ComfyUI aliases and PreviewAny."""

import json
import re
import time

import pytest
import torch
from test_nodes_image_mask import call

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.validation import validate
from graphflow.workflow import parse_workflow

TEXT = "  Hello World, hello graphflow.\nSecond line: 42 cats and 7 dogs  "


def test_plain_string_nodes(builtin_registry):
    r = builtin_registry
    assert call(r, "StringConcatenate", string_a="a", string_b="b", delimiter=", ") == "a, b"
    assert call(r, "StringConcatenate", string_a="a", string_b="b") == "ab"
    for start, end in [(2, 7), (-6, -2), (0, 0), (5, 2), (3, 1000)]:
        assert call(r, "StringSubstring", string=TEXT, start=start, end=end) == TEXT[start:end]
    assert call(r, "StringLength", string="héllo\n") == 6
    expected = {"UPPERCASE": TEXT.upper(), "lowercase": TEXT.lower(), "Capitalize": TEXT.capitalize(),
                "Title Case": TEXT.title()}
    for mode, value in expected.items():
        assert call(r, "CaseConverter", string=TEXT, mode=mode) == value
    assert call(r, "CaseConverter", string="ab cD") == "AB CD"  # the first mode is the default
    assert call(r, "StringTrim", string=TEXT) == TEXT.strip()
    assert call(r, "StringTrim", string=TEXT, mode="Left") == TEXT.lstrip()
    assert call(r, "StringTrim", string=TEXT, mode="Right") == TEXT.rstrip()
    assert call(r, "StringReplace", string=TEXT, find="hello", replace="bye") == TEXT.replace("hello", "bye")
    assert call(r, "StringContains", string=TEXT, substring="HELLO") is False
    assert call(r, "StringContains", string=TEXT, substring="HELLO", case_sensitive=False) is True
    assert call(r, "StringCompare", string_a="Graphflow", string_b="graph") is False  # Starts With, case-sensitive
    assert call(r, "StringCompare", string_a="Graphflow", string_b="graph", case_sensitive=False) is True
    assert call(r, "StringCompare", string_a="Graphflow", string_b="FLOW", mode="Ends With", case_sensitive=False)
    assert not call(r, "StringCompare", string_a="ab", string_b="abc", mode="Equal")


FLAG_CASES = [dict(case_insensitive=ci, multiline=ml, dotall=da) for ci in (True, False) for ml in (True, False)
              for da in (True, False)]


def flags_of(case_insensitive, multiline, dotall):
    return (re.IGNORECASE if case_insensitive else 0) | (re.MULTILINE if multiline else 0) | (re.DOTALL if dotall else 0)


PATTERNS = [r"hello", r"^second.*$", r"(\d+) (cats|dogs)", r"(?P<n>\d+)", r"world.\w+", r"l+", r"x*", r"(a)|(e)"]


@pytest.mark.parametrize("flags", FLAG_CASES, ids=lambda f: "-".join(k for k, v in f.items() if v) or "none")
def test_regex_nodes_agree_with_re(builtin_registry, flags):
    r = builtin_registry
    f = flags_of(**flags)
    for pattern in PATTERNS:
        assert call(r, "RegexMatch", string=TEXT, regex_pattern=pattern, **flags) == (re.search(pattern, TEXT, f) is not None)
        first = re.search(pattern, TEXT, f)
        assert call(r, "RegexExtract", string=TEXT, regex_pattern=pattern, mode="First Match", **flags) == (
            first.group(0) if first else "")
        found = re.findall(pattern, TEXT, f)
        assert call(r, "RegexExtract", string=TEXT, regex_pattern=pattern, mode="All Matches", **flags) == "\n".join(
            m[0] if isinstance(m, tuple) else m for m in found)
        for index in (0, 1, 2):
            groups = [m.group(index) or "" for m in re.finditer(pattern, TEXT, f)
                      if m.groups() and len(m.groups()) >= index]
            assert call(r, "RegexExtract", string=TEXT, regex_pattern=pattern, mode="All Groups",
                        group_index=index, **flags) == "\n".join(groups)
            expected = (first.group(index) or "") if first and len(first.groups()) >= index else ""
            assert call(r, "RegexExtract", string=TEXT, regex_pattern=pattern, mode="First Group",
                        group_index=index, **flags) == expected
        for count in (0, 1, 2):
            assert call(r, "RegexReplace", string=TEXT, regex_pattern=pattern, replace=r"<\g<0>>", count=count,
                        **flags) == re.sub(pattern, r"<\g<0>>", TEXT, count=count, flags=f)


def test_regex_defaults_are_comfyuis(builtin_registry):
    # case-insensitive by default; group 1 by default
    assert call(builtin_registry, "RegexMatch", string="ABC", regex_pattern="b") is True
    assert call(builtin_registry, "RegexExtract", string="size 512x768", regex_pattern=r"(\d+)x(\d+)",
                mode="First Group") == "512"
    assert call(builtin_registry, "RegexReplace", string="a-b-c", regex_pattern="-", replace=r"+") == "a+b+c"
    assert call(builtin_registry, "RegexReplace", string="w=512", regex_pattern=r"(\w)=(\d+)",
                replace=r"\2 \1") == "512 w"


def test_bad_patterns_and_replacements_name_the_input(builtin_registry):
    for node, extra in [("RegexMatch", {}), ("RegexExtract", {}), ("RegexReplace", {"replace": "x"})]:
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, node, string="abc", regex_pattern="(unclosed", **extra)
        assert e.value.input == "regex_pattern" and "valid regular expression" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "RegexReplace", string="abc", regex_pattern="(b)", replace=r"\3")
    assert e.value.input == "replace"


def test_catastrophic_backtracking_is_stopped_not_hung(builtin_registry, monkeypatch):
    monkeypatch.setattr("nodes.strings.REGEX_SECONDS", 0.2)
    text = "a" * 200 + "b"  # Python's re would take longer than the age of the universe here
    # (a+)+$ too: the `regex` module, which stopped matches before, runs it at once where re hangs
    for pattern in (r"^(a|aa)+$", r"(a+)+$"):
        for node, extra in [("RegexMatch", {}), ("RegexExtract", {"mode": "All Groups"}),
                            ("RegexReplace", {"replace": ""})]:
            start = time.monotonic()
            with pytest.raises(NodeInputError) as e:
                call(builtin_registry, node, string=text, regex_pattern=pattern, **extra)
            assert time.monotonic() - start < 5
            assert e.value.input == "regex_pattern" and "backtracks" in str(e.value)


def test_a_trial_that_ended_is_not_run_again(builtin_registry, monkeypatch):
    import graphflow.regex_trial as trial

    children = []
    real_run = trial.subprocess.run
    monkeypatch.setattr(trial.subprocess, "run", lambda *a, **k: children.append(k["input"]) or real_run(*a, **k))
    text = f"remembered {time.time_ns()}"  # a text no other test judged
    assert call(builtin_registry, "RegexExtract", string=text, regex_pattern=r"\d", mode="All Matches") != ""
    replaced = call(builtin_registry, "RegexReplace", string=text, regex_pattern=r"\d", replace="")
    assert replaced == re.sub(r"\d", "", text)
    # every match ended, so the first does too: no child for the search
    assert call(builtin_registry, "RegexMatch", string=text, regex_pattern=r"\d") is True
    assert len(children) == 1
    assert call(builtin_registry, "RegexMatch", string=text + "!", regex_pattern=r"\d") is True
    assert call(builtin_registry, "RegexMatch", string=text, regex_pattern=r"\d+") is True
    assert len(children) == 3  # another text, another pattern: judged again
    # a first match that ended says nothing about every match
    assert call(builtin_registry, "RegexExtract", string=text + "!", regex_pattern=r"\d", mode="All Matches") != ""
    assert len(children) == 4


def test_primitive_aliases_read_comfyui_workflows(builtin_registry):
    graph = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": 7}},
        "2": {"class_type": "PrimitiveString", "inputs": {"value": "a cat"}},
        "3": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": " and\na dog"}},
        "4": {"class_type": "StringConcatenate", "inputs": {"string_a": ["2", 0], "string_b": ["3", 0],
                                                            "delimiter": ","}},
        "5": {"class_type": "StringSubstring", "inputs": {"string": ["4", 0], "start": 0, "end": ["1", 0]}},
        "6": {"class_type": "PrimitiveBoolean", "inputs": {"value": True}},
        "7": {"class_type": "PrimitiveFloat", "inputs": {"value": 2.5}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}},
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
        "10": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}},
        "11": {"class_type": "StringLength", "inputs": {"string": ["4", 0]}},
        "12": {"class_type": "PreviewAny", "inputs": {"source": ["11", 0]}},
    }
    workflow = parse_workflow(graph, builtin_registry)
    assert not validate(workflow, builtin_registry)
    result = Executor(builtin_registry).run(workflow)
    assert result.ok, result.error
    joined = "a cat, and\na dog"
    assert result.outputs["8"] == {"text": [joined[:7]]}
    assert result.outputs["9"] == {"text": ["True"]} and result.outputs["10"] == {"text": ["2.5"]}
    assert result.outputs["12"] == {"text": [str(len(joined))]}


def test_preview_any_formats_like_comfyui(builtin_registry):
    from nodes.primitives import as_text

    assert as_text(None) == "None" and as_text("x") == "x" and as_text(3) == "3" and as_text(False) == "False"
    value = {"a": [1, 2.5, None], "b": "c"}
    assert as_text(value) == json.dumps(value, indent=4)
    tensor = torch.arange(2000) % 100
    shown = as_text(tensor)
    assert shown.endswith("94, 95, 96, 97, 98, 99])") and "93" not in shown  # six numbers at each end
    assert "94" not in str(tensor)  # torch's print options restored afterwards
    assert as_text([(torch.zeros(1), {"k": 1})]).startswith("[(tensor(")


def test_primitives_in_ui_format_read_and_write_comfyuis_widgets(builtin_registry):
    from graphflow.comfy_format import export_ui, import_ui

    def node(i, class_type, values, out_type):
        return {"id": i, "type": class_type, "mode": 0, "pos": [0, 100 * i], "size": [300, 80], "flags": {},
                "order": i, "inputs": [], "outputs": [{"name": out_type, "type": out_type, "links": []}],
                "properties": {}, "widgets_values": values}

    ui = {"nodes": [node(1, "PrimitiveInt", [7, "increment"], "INT"), node(2, "PrimitiveString", ["a cat"], "STRING"),
                    node(3, "PrimitiveStringMultiline", ["two\nlines"], "STRING"),
                    node(4, "PrimitiveBoolean", [True], "BOOLEAN"), node(5, "PrimitiveFloat", [0.25], "FLOAT"),
                    node(6, "RegexReplace", ["a-b", "-", "+", False, False, True, 1], "STRING")], "links": []}
    workflow = import_ui(ui, builtin_registry)
    got = {k: (n.type, n.inputs) for k, n in workflow.nodes.items()}
    assert got == {"1": ("IntValue", {"value": 7}), "2": ("TextValue", {"text": "a cat"}),
                   "3": ("TextValue", {"text": "two\nlines"}), "4": ("BoolValue", {"value": True}),
                   "5": ("FloatValue", {"value": 0.25}),
                   "6": ("RegexReplace", {"string": "a-b", "regex_pattern": "-", "replace": "+",
                                          "case_insensitive": False, "multiline": False, "dotall": True, "count": 1})}
    written = {n["id"]: n for n in export_ui(workflow, builtin_registry)["nodes"]}
    assert [written[i]["type"] for i in range(1, 7)] == [n["type"] for n in ui["nodes"]]
    assert [written[i]["widgets_values"] for i in range(1, 7)] == [n["widgets_values"] for n in ui["nodes"]]


def test_results_beyond_the_size_limit_are_refused_before_they_are_built(builtin_registry, monkeypatch):
    monkeypatch.setattr("nodes.strings.MAX_TEXT", 1000)
    text = "x" * 100
    # an empty `find` inserts `replace` between every character: 100 * 20 + 100 characters
    assert call(builtin_registry, "StringReplace", string=text, find="", replace="y" * 8) == text.replace("", "y" * 8)
    cases = [("StringReplace", dict(string=text, find="", replace="y" * 20), "replace"),
             ("StringConcatenate", dict(string_a="a" * 600, string_b="b" * 600), "string_b"),
             ("RegexReplace", dict(string=text, regex_pattern="x", replace="yy" * 10), "replace")]
    for node, inputs, name in cases:
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, node, **inputs)
        assert e.value.input == name and "the limit is 1,000" in str(e.value)
    # the regex replacement is counted as it grows: ten replacements fit, with count=10
    assert call(builtin_registry, "RegexReplace", string=text, regex_pattern="x", replace="yy" * 10,
                count=10) == re.sub("x", "yy" * 10, text, count=10)
