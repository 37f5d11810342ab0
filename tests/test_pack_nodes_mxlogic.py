"""mxToolkit's and ComfyUI-Logic's nodes (nodes/pack_nodes_mxlogic.py): the sliders and the seed
read from their widgets as the editor saves and sends them, mxStop ending the run, Logic's
values, Compare against Python's operators, If ANY execute A else B against Python's truth,
DebugPrint's text, the clear errors, and UI-format saves and API prompts with the packs' class
names (Logic's bare ones and its later "-🔬" ones) that run and are written back unchanged."""

import gc
import operator
import weakref

import pytest
import torch

from graphflow.comfy_format import comfy_catalogue, custom_pack, export_api, export_ui, import_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def node(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


LOGIC_NAMES = ("Compare", "Int", "Float", "Bool", "String", "If ANY execute A else B", "DebugPrint")


def test_the_packs_names_are_ours_and_clash_with_no_core_class(registry):
    catalogue = comfy_catalogue()
    for name in (*LOGIC_NAMES, *(f"{n}-🔬" for n in LOGIC_NAMES if n != "If ANY execute A else B"),
                 "If ANY return A else B-🔬", "mxSlider", "mxSlider2D", "mxSeed", "mxStop"):
        assert name not in catalogue
        assert registry.comfy_node(name).__module__ == "nodes.pack_nodes_mxlogic"
    assert registry.comfy_node("If ANY return A else B-🔬") is registry.comfy_node("If ANY execute A else B")
    assert custom_pack("If ANY return A else B-🔬") == "ComfyUI-Logic"
    assert custom_pack("Integer") is None and custom_pack("IntSomething") is None  # whole names only
    assert custom_pack("mxSomethingNew") == "ComfyUI-mxToolkit"


# -- mxToolkit -----------------------------------------------------------------------------------


def test_sliders_give_the_float_or_the_whole_widget(registry):
    assert node(registry, "mxSlider", Xi=7, Xf=7.25, isfloatX=0) == 7
    assert node(registry, "mxSlider", Xi=7, Xf=7.25, isfloatX=1) == 7.25
    assert node(registry, "mxSlider2D", Xi=512, Xf=512.5, Yi=768, Yf=768.25, isfloatX=1, isfloatY=0) == (512.5, 768)
    assert node(registry, "mxSlider2D", Xi=512, Xf=512.5, Yi=768, Yf=768.25, isfloatX=0, isfloatY=1) == (512, 768.25)
    defaults = {n: s.widget.default for n, s in registry.comfy_node("mxSlider2D").input_specs.items()}
    assert defaults == {"Xi": 512, "Xf": 512, "Yi": 512, "Yf": 512, "isfloatX": 0, "isfloatY": 0}
    assert list(registry.comfy_node("mxSlider").input_specs) == ["Xi", "Xf", "isfloatX"]


def test_seed_passes_its_value_within_the_packs_bounds(registry):
    assert node(registry, "mxSeed", X=123456) == 123456
    cls = registry.comfy_node("mxSeed")
    for bad in (-1, 4294967297):
        with pytest.raises(Exception):
            cls.widget_model.model_validate({"X": bad})


def test_stop_ends_the_first_run_and_a_rerun_goes_on(registry):
    """As the pack's Stop: the run ends at it (what came before done), and queueing the same
    workflow again goes on past it; a changed input before it stops the run again."""
    prompt = {"1": {"class_type": "String", "inputs": {"value": "first"}},
              "2": {"class_type": "mxStop", "inputs": {"In": ["1", 0]}},
              "3": {"class_type": "DebugPrint", "inputs": {"ANY": ["2", 0]}}}
    executor = Executor(registry)
    stopped = executor.run(parse_workflow(prompt, registry))
    assert stopped.status == "interrupted" and not stopped.ok
    assert stopped.error["node_id"] == "2" and stopped.error["exception_type"] == "Interrupted"
    assert stopped.values["1"] == ("first",) and "3" not in stopped.values and "3" not in stopped.outputs
    went_on = executor.run(parse_workflow(prompt, registry))
    assert went_on.ok and went_on.outputs["3"] == {"text": ["first"]} and "1" in went_on.cached
    again = executor.run(parse_workflow(prompt, registry))  # done: all from the cache
    assert again.ok and set(again.cached) == {"1", "2", "3"}
    prompt["1"]["inputs"]["value"] = "second"
    assert executor.run(parse_workflow(prompt, registry)).status == "interrupted"
    assert executor.run(parse_workflow(prompt, registry)).outputs["3"] == {"text": ["second"]}


def stop_prompt(source: dict) -> dict:
    return {"1": source, "2": {"class_type": "mxStop", "inputs": {"In": ["1", 0]}},
            "3": {"class_type": "DebugPrint", "inputs": {"ANY": ["2", 0]}}}


def test_stop_on_a_list_passes_every_item_then_a_rerun_goes_on(registry):
    """Stop gets a list item by item: it passes all nine on, the run ends after its last item,
    and the second run goes on with the whole list (nothing to remember item by item)."""
    lines = [f"line{i}" for i in range(9)]
    prompt = stop_prompt({"class_type": "CR Text List",
                          "inputs": {"multiline_text": "\n".join(lines), "start_index": 0, "max_rows": 1000}})
    executor = Executor(registry)
    stopped = executor.run(parse_workflow(prompt, registry))
    assert stopped.status == "interrupted" and stopped.error["node_id"] == "2"
    assert list(stopped.values["2"][0]) == lines and "3" not in stopped.executed
    went_on = executor.run(parse_workflow(prompt, registry))
    assert went_on.ok and "2" in went_on.cached and went_on.outputs["3"] == {"text": lines}


def test_a_stop_in_one_workflow_lets_no_other_through(registry):
    """Each workflow's Stop stops its own first run and lets its own rerun go on, whatever ran
    between (two workflows whose values are the same small int included)."""
    first = stop_prompt({"class_type": "Int", "inputs": {"value": 5}})
    second = stop_prompt({"class_type": "CM_IntBinaryOperation", "inputs": {"op": "Add", "a": 2, "b": 3}})
    executor = Executor(registry)
    assert executor.run(parse_workflow(first, registry)).status == "interrupted"
    assert executor.run(parse_workflow(second, registry)).status == "interrupted"
    assert executor.run(parse_workflow(first, registry)).outputs["3"] == {"text": ["5"]}
    assert executor.run(parse_workflow(second, registry)).outputs["3"] == {"text": ["5"]}
    assert Executor(registry).run(parse_workflow(first, registry)).status == "interrupted"  # another cache


def test_stop_keeps_nothing_outside_the_cache(registry):
    """What Stop passed on is held by the cache alone: cleared from it, the value is freed."""
    prompt = stop_prompt({"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                                 "color": 0}})
    executor = Executor(registry)
    stopped = executor.run(parse_workflow(prompt, registry))
    assert stopped.status == "interrupted"
    image = weakref.ref(stopped.values["2"][0])
    del stopped
    executor.cache.clear()
    gc.collect()
    assert image() is None


async def test_a_stopped_run_is_recorded_interrupted_by_the_server(aiohttp_client, tmp_path, registry):
    """Through the server: the first run's record says interrupted at Stop (as ComfyUI's
    execution_interrupted), the rerun's success, with DebugPrint's text."""
    from graphflow.server.app import create_app
    from tests.test_server import wait_status

    client = await aiohttp_client(create_app(registry, tmp_path / "runs.db", web_dir=None))
    prompt = stop_prompt({"class_type": "String", "inputs": {"value": "server"}})
    records = []
    for _ in range(2):
        response = await client.post("/api/runs", json={"workflow": prompt})
        assert response.status == 200
        run_id = (await response.json())["run_id"]
        records.append(await wait_status(client, run_id, ("success", "error", "interrupted", "invalid")))
    assert records[0]["status"] == "interrupted" and records[0]["error"]["node_id"] == "2"
    assert records[0]["error"]["node_type"] == "MxStop" and "3" not in records[0]["executed"]
    assert records[1]["status"] == "success" and records[1]["outputs"]["3"] == {"text": ["server"]}


def test_ui_save_of_the_sliders_reads_their_widgets(registry):
    """The pack's editor keeps the slider's value in properties and copies it into the hidden
    widgets on every change: widgets_values are what it runs with."""
    slider = ui_node(1, "mxSlider", [30, 30.5, 1], outputs=[("", "FLOAT", [1])])
    slider["properties"] = {"value": 30.5, "min": 0, "max": 100, "step": 0.5, "decimals": 1, "snap": True}
    pad = ui_node(2, "mxSlider2D", [832, 832, 1216, 1216, 0, 0], outputs=[("", "INT", [2]), ("", "INT", [])])
    seed = ui_node(3, "mxSeed", [42], outputs=[("", "INT", [])])
    seed["properties"] = {"seed": 42, "min": 0, "max": 4294967296, "autorunQueue": True, "interruptQueue": True}
    compare = ui_node(4, "Compare", ["a > b"], [("a", "*", 1, False), ("b", "*", 2, False)],
                      [("BOOLEAN", "BOOLEAN", [3])])
    choose = ui_node(5, "If ANY execute A else B", [], [("ANY", "*", 3, False), ("IF_TRUE", "*", 4, False),
                                                         ("IF_FALSE", "*", 5, False)], [("?", "*", [])])
    text_yes = ui_node(6, "String-🔬", ["big"], outputs=[("STRING", "STRING", [4])])
    text_no = ui_node(7, "String", ["small"], outputs=[("STRING", "STRING", [5])])
    show = ui_node(8, "DebugPrint-🔬", [], [("ANY", "*", 6, False)])
    links = [[1, 1, 0, 4, 0, "FLOAT"], [2, 2, 0, 4, 1, "INT"], [3, 4, 0, 5, 0, "BOOLEAN"], [4, 6, 0, 5, 1, "STRING"],
             [5, 7, 0, 5, 2, "STRING"], [6, 5, 0, 8, 0, "*"]]
    nodes = [slider, pad, seed, compare, choose, text_yes, text_no, show]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["3", "8"])
    assert result.values["1"] == (30.5,) and result.values["2"] == (832, 1216) and result.values["3"] == (42,)
    assert result.values["4"] == (False,)  # 30.5 > 832 is false
    assert result.values["5"] == ("small",)
    assert result.outputs["8"] == {"text": ["small"]}
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for n in nodes:
        assert saved[n["id"]]["type"] == n["type"]
        assert saved[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


def test_mx_reroute_forwards_and_is_written_back(registry):
    """mxReroute is the pack's editor-only Reroute: the link runs through it, and the save keeps it."""
    reroute = ui_node(2, "mxReroute", [], [("", "*", 1, False)], [("", "INT", [2])])
    reroute["properties"] = {"inputDir": "UP", "outputDir": "DOWN"}
    nodes = [ui_node(1, "mxSlider", [12, 12, 0], outputs=[("", "INT", [1])]), reroute,
             ui_node(3, "CM_IntUnaryOperation", ["Sqr", 0], [("a", "INT", 2, True)], [("INT", "INT", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 3, 0, "INT"]])
    assert run_graph(registry, graph, ["3"]).values["3"] == (144,)
    workflow = import_ui(graph, registry)
    assert workflow.nodes["3"].inputs["a"] == ["1", 0]
    written = export_ui(workflow, registry)
    assert {n["id"]: n["type"] for n in written["nodes"]} == {1: "mxSlider", 2: "mxReroute", 3: "CM_IntUnaryOperation"}
    assert [link[1:5] for link in written["links"]] == [[1, 0, 2, 0], [2, 0, 3, 0]]
    assert next(n for n in written["nodes"] if n["id"] == 2) == reroute  # its sides (properties) kept


# -- ComfyUI-Logic -------------------------------------------------------------------------------


def test_value_nodes(registry):
    assert node(registry, "Int", value=-5) == -5
    assert node(registry, "Float-🔬", value=0.25) == 0.25
    assert node(registry, "Bool", value=True) is True
    assert node(registry, "String", value="two\nlines") == "two\nlines"
    assert registry.comfy_node("String-🔬").input_specs["value"].widget.multiline


def test_debug_print_shows_the_text_or_names_its_input(registry):
    assert node(registry, "DebugPrint", ANY=12345) is None
    with pytest.raises(NodeInputError) as caught:  # str() refuses an int of over 4300 digits
        node(registry, "DebugPrint", ANY=10 ** 5000)
    assert caught.value.input == "ANY"


@pytest.mark.parametrize("class_type, inputs, want", [
    ("Int", {"Number": "7"}, 7), ("Int", {"Number": " -12 "}, int(" -12 ")),  # ComfyLiterals: int(Number)
    ("Float", {"Number": "1.5"}, 1.5), ("Float", {"Number": "1e3"}, float("1e3")),  # float(Number)
    ("Float", {"Value": 2.5}, 2.5),  # Derfuu's ModdedNodes' Float
    ("String", {"String": "hi"}, "hi")])  # ComfyLiterals' String
def test_the_shared_bare_names_take_the_other_packs_inputs(registry, class_type, inputs, want):
    """Int, Float and String are also ComfyLiterals' classes (Number / String, texts) and Float
    Derfuu's (Value): their API prompts run, the text read as Python's int() / float() reads it."""
    prompt = {"1": {"class_type": class_type, "inputs": inputs},
              "2": {"class_type": "DebugPrint", "inputs": {"ANY": ["1", 0]}}}
    got = run_graph(registry, prompt).values["1"][0]
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize("class_type, text", [("Int", "abc"), ("Int", "1e3"), ("Float", "x1"), ("Float", "inf")])
def test_a_text_that_is_no_number_is_refused_naming_the_input(registry, class_type, text):
    prompt = {"1": {"class_type": class_type, "inputs": {"Number": text}},
              "2": {"class_type": "DebugPrint", "inputs": {"ANY": ["1", 0]}}}
    result = Executor(registry).run(parse_workflow(prompt, registry))
    assert result.status == "invalid"
    assert [(p.node_id, p.input) for p in result.problems] == [("1", "value")]
    assert repr(text) in result.problems[0].message


def test_a_ui_save_of_comfyliterals_int_runs(registry):
    """ComfyLiterals' Int saves its Number text as the one widget value: read as the number."""
    nodes = [ui_node(1, "Int", ["1"], outputs=[("INT", "INT", [1])]),
             ui_node(2, "Float", ["0.25"], outputs=[("FLOAT", "FLOAT", [2])]),
             ui_node(3, "CM_IntBinaryOperation", ["Add", 0, 0], [("a", "INT", 1, True), ("b", "INT", None, True)],
                     [("INT", "INT", [3])]),
             ui_node(4, "DebugPrint", [], [("ANY", "*", 3, False)]),
             ui_node(5, "DebugPrint", [], [("ANY", "*", 2, False)])]
    graph = ui_graph(nodes, [[1, 1, 0, 3, 0, "INT"], [2, 2, 0, 5, 0, "FLOAT"], [3, 3, 0, 4, 0, "INT"]])
    result = run_graph(registry, graph)
    assert result.values["1"] == (1,) and result.values["2"] == (0.25,) and result.outputs["4"] == {"text": ["1"]}


COMPARE_REFERENCE = {"a == b": operator.eq, "a != b": operator.ne, "a < b": operator.lt, "a > b": operator.gt,
                     "a <= b": operator.le, "a >= b": operator.ge}


@pytest.mark.parametrize("comparison", list(COMPARE_REFERENCE))
@pytest.mark.parametrize("a, b", [(1, 2), (2, 2), (2.5, 2), ("abc", "abd"), ("b", "b"), (True, 0)])
def test_compare_equals_pythons_operators(registry, comparison, a, b):
    assert node(registry, "Compare", a=a, b=b, comparison=comparison) is COMPARE_REFERENCE[comparison](a, b)


def test_compare_errors(registry):
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Compare", a="text", b=3, comparison="a < b")
    assert caught.value.input == "b"
    assert node(registry, "Compare", a="text", b=3, comparison="a == b") is False  # == works on anything
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Compare", a=torch.zeros(2, 2), b=torch.zeros(2, 2), comparison="a == b")
    assert caught.value.input == "a"


@pytest.mark.parametrize("condition", [True, False, 0, 1, -2, 0.0, 0.5, "", "x", [], [0], None])
def test_if_execute_follows_pythons_truth(registry, condition):
    got = node(registry, "If ANY execute A else B", ANY=condition, IF_TRUE="A", IF_FALSE="B")
    assert got == ("A" if bool(condition) else "B")


def test_if_return_is_the_if_node(registry):
    """The pack's later name "If ANY return A else B-🔬" is its If (IfExecute): an API prompt
    with it runs and is written back under that name."""
    prompt = {"1": {"class_type": "Bool-🔬", "inputs": {"value": False}},
              "2": {"class_type": "String-🔬", "inputs": {"value": "A"}},
              "3": {"class_type": "String-🔬", "inputs": {"value": "B"}},
              "4": {"class_type": "If ANY return A else B-🔬",
                    "inputs": {"ANY": ["1", 0], "IF_TRUE": ["2", 0], "IF_FALSE": ["3", 0]}},
              "5": {"class_type": "DebugPrint-🔬", "inputs": {"ANY": ["4", 0]}}}
    assert run_graph(registry, prompt).outputs["5"] == {"text": ["B"]}
    assert export_api(parse_workflow(prompt, registry), registry)["4"]["class_type"] == "If ANY return A else B-🔬"


def test_if_execute_on_a_tensor(registry):
    assert node(registry, "If ANY execute A else B", ANY=torch.tensor([2.0]), IF_TRUE=1, IF_FALSE=2) == 1
    with pytest.raises(NodeInputError) as caught:
        node(registry, "If ANY execute A else B", ANY=torch.ones(1, 8, 8, 3), IF_TRUE=1, IF_FALSE=2)
    assert caught.value.input == "ANY"


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry):
    prompt = {
        "1": {"class_type": "Int", "inputs": {"value": 4}},
        "2": {"class_type": "Float-🔬", "inputs": {"value": 4.0}},
        "3": {"class_type": "Compare-🔬", "inputs": {"a": ["1", 0], "b": ["2", 0], "comparison": "a == b"}},
        "4": {"class_type": "mxSlider", "inputs": {"Xi": 20, "Xf": 20.0, "isfloatX": 0}},
        "5": {"class_type": "mxSeed", "inputs": {"X": 7}},
        "6": {"class_type": "If ANY execute A else B", "inputs": {"ANY": ["3", 0], "IF_TRUE": ["4", 0],
                                                                  "IF_FALSE": ["5", 0]}},
        "7": {"class_type": "DebugPrint", "inputs": {"ANY": ["6", 0]}},
        "8": {"class_type": "Bool-🔬", "inputs": {"value": False}},
        "9": {"class_type": "mxSlider2D", "inputs": {"Xi": 1, "Xf": 1.5, "Yi": 2, "Yf": 2.5, "isfloatX": 1,
                                                     "isfloatY": 1}},
        "10": {"class_type": "String", "inputs": {"value": "x"}},
    }
    result = run_graph(registry, prompt, ["7", "8", "9", "10"])
    assert result.values["3"] == (True,) and result.values["6"] == (20,)
    assert result.outputs["7"] == {"text": ["20"]}
    assert result.values["8"] == (False,) and result.values["9"] == (1.5, 2.5) and result.values["10"] == ("x",)
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in api.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}
