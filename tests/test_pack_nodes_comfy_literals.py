"""ComfyLiterals' nodes (nodes/pack_nodes_comfy_literals.py; its bare Int / Float / String are
ComfyUI-Logic's in nodes/pack_nodes_mxlogic.py, tested there with ComfyLiterals' inputs too):
Operation against Python's operators, int() and float(), its clear errors, the Checkpoint / Lora
lists against the pack's line split, KepStringLiteral, and UI-format saves and API prompts with
the pack's class names that run and round-trip."""

import operator

import pytest
import torch

from graphflow.comfy_format import comfy_catalogue, custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

REFERENCE = {"A+B": operator.add, "A-B": operator.sub, "A*B": operator.mul, "A/B": operator.truediv}


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def node(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


def test_the_packs_names_are_ours_and_clash_with_no_core_class(registry):
    for name in ("Operation", "Checkpoint", "Lora", "KepStringLiteral"):
        assert name not in comfy_catalogue()
        assert registry.comfy_node(name).__module__ == "nodes.pack_nodes_comfy_literals"
        assert custom_pack(name) == "ComfyLiterals"
    for name in ("Int", "Float", "String"):  # shared with ComfyUI-Logic, whose nodes answer them
        assert registry.comfy_node(name).__module__ == "nodes.pack_nodes_mxlogic"
    assert custom_pack("OperationX") is None and custom_pack("Loras") is None  # whole names only


@pytest.mark.parametrize("operation", list(REFERENCE))
@pytest.mark.parametrize("a_type, a, b_type, b", [("Int", 7, "Int", 2), ("Int", -7, "Float", 2.5),
                                                  ("Float", 0.1, "Float", 0.2), ("Float", -3.75, "Int", 4)])
def test_operation_is_pythons_operator_as_int_and_float(registry, operation, a_type, a, b_type, b):
    inputs = {"a_type": a_type, "b_type": b_type, "operation": operation,
              f"a_{a_type.lower()}": a, f"b_{b_type.lower()}": b}
    # the other side's input of each pair, linked but not chosen, is not read
    inputs.setdefault("a_float" if a_type == "Int" else "a_int", 99 if a_type != "Int" else 99.5)
    whole, number = node(registry, "Operation", **inputs)
    want = REFERENCE[operation](a, b)
    assert whole == int(want) and type(whole) is int
    assert number == float(want) and type(number) is float


def test_operation_errors_name_the_input(registry):
    with pytest.raises(NodeInputError) as caught:  # Float chosen, only the Int linked
        node(registry, "Operation", a_type="Float", b_type="Int", operation="A+B", a_int=1, b_int=2)
    assert caught.value.input == "a_float" and "A - Float" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Operation", a_type="Int", b_type="Float", operation="A/B", a_int=1, b_float=0.0)
    assert caught.value.input == "b_float"
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Operation", a_type="Float", b_type="Float", operation="A*B", a_float=1e308, b_float=1e308)
    assert caught.value.input == "operation"
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Operation", a_type="Int", b_type="Int", operation="A*B", a_int=2 ** 62, b_int=2 ** 62)
    assert caught.value.input == "operation"
    for a, b, operation, said in ((10 ** 200, 10 ** 200, "A*B", "64-bit"), (10 ** 400, 1, "A+B", "64-bit"),
                                  (2 ** 70, 1, "A+B", "64-bit"), (10 ** 4000, 10 ** 4000, "A*B", "64-bit"),
                                  (10 ** 400, 3, "A/B", "not a finite")):
        with pytest.raises(NodeInputError) as caught:  # results beyond what a float holds, or 64 bits
            node(registry, "Operation", a_type="Int", b_type="Int", operation=operation, a_int=a, b_int=b)
        assert caught.value.input == "operation" and said in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Operation", a_type="Int", b_type="Int", operation="A+B", a_int="3", b_int=1)
    assert caught.value.input == "a_int"


@pytest.mark.parametrize("name", ["Checkpoint", "Lora"])
@pytest.mark.parametrize("text", ["", "a.safetensors", "a.safetensors\nsub/b.ckpt\n", "\n\nx\n\n y \n"])
def test_lists_are_the_packs_line_split(registry, name, text):
    assert node(registry, name, literal=text) == list(filter(None, text.split("\n")))


@pytest.mark.parametrize("name", ["Checkpoint", "Lora"])
def test_a_list_longer_than_the_list_cap_is_refused_naming_literal(registry, name):
    from nodes.pack_nodes import MAX_LIST_ITEMS
    assert len(node(registry, name, literal="a\n" * MAX_LIST_ITEMS)) == MAX_LIST_ITEMS
    with pytest.raises(NodeInputError) as caught:  # each name would run the nodes after it once
        node(registry, name, literal="a\n" * (MAX_LIST_ITEMS + 1))
    assert caught.value.input == "literal" and f"{MAX_LIST_ITEMS:,}" in str(caught.value)


def test_kep_string_literal_gives_its_text(registry):
    assert node(registry, "KepStringLiteral", text="two\nlines") == "two\nlines"


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry):
    prompt = {
        "1": {"class_type": "Int", "inputs": {"Number": "7"}},
        "2": {"class_type": "Float", "inputs": {"Number": "2.5"}},
        "3": {"class_type": "Operation", "inputs": {"A Type": "Int", "B Type": "Float", "Operation": "A/B",
                                                    "A - Int": ["1", 0], "B - Float": ["2", 0]}},
        "4": {"class_type": "Lora", "inputs": {"literal": "one.safetensors\n\ntwo.safetensors"}},
        "5": {"class_type": "DebugPrint", "inputs": {"ANY": ["4", 0]}},
        "6": {"class_type": "KepStringLiteral", "inputs": {"String": "hello"}},
        "7": {"class_type": "DebugPrint", "inputs": {"ANY": ["3", 1]}},
        "8": {"class_type": "DebugPrint", "inputs": {"ANY": ["6", 0]}},
    }
    result = run_graph(registry, prompt)
    assert result.values["3"] == (int(7 / 2.5), 7 / 2.5)
    assert result.outputs["5"] == {"text": ["one.safetensors", "two.safetensors"]}  # one run per name
    assert result.outputs["7"] == {"text": [str(7 / 2.5)]} and result.outputs["8"] == {"text": ["hello"]}
    api = export_api(parse_workflow(prompt, registry), registry)
    written = {k: (v["class_type"], v["inputs"]) for k, v in api.items()}
    for key in ("3", "4", "5", "6", "7", "8"):
        assert written[key] == (prompt[key]["class_type"], prompt[key]["inputs"])
    assert written["1"][0] == "Int" and written["2"][0] == "Float"  # written back in ComfyUI-Logic's shape


@pytest.mark.parametrize("operation_widgets", [["Int", "Float", "A*B"], ["Int", "Float", "A*B", 0, 0.0, 0, 0.0]])
def test_ui_save_with_the_packs_nodes_runs_and_round_trips(registry, operation_widgets):
    """As the pack's editor saves Operation: the type and operation widgets, and only the two
    inputs its script leaves (here A - Int and B - Float), linked; an editor before ComfyUI
    frontend 1.16 also saved a value for each of the four forceInput numbers."""
    nodes = [
        ui_node(1, "Int", ["12"], outputs=[("INT", "INT", [1])]),
        ui_node(2, "Float", ["0.5"], outputs=[("FLOAT", "FLOAT", [2])]),
        ui_node(3, "Operation", operation_widgets, [("A - Int", "INT", 1, False), ("B - Float", "FLOAT", 2, False)],
                [("INT", "INT", [3]), ("FLOAT", "FLOAT", [4])]),
        ui_node(4, "DebugPrint", [], [("ANY", "*", 3, False)]),
        ui_node(5, "DebugPrint", [], [("ANY", "*", 4, False)]),
        ui_node(6, "Checkpoint", ["x.safetensors\ny.safetensors"], outputs=[("Selected Checkpoints", "*", [5])]),
        ui_node(7, "DebugPrint", [], [("ANY", "*", 5, False)]),
        ui_node(8, "KepStringLiteral", ["text here"], outputs=[("STRING", "STRING", [])]),
    ]
    links = [[1, 1, 0, 3, 0, "INT"], [2, 2, 0, 3, 1, "FLOAT"], [3, 3, 0, 4, 0, "INT"], [4, 3, 1, 5, 0, "FLOAT"],
             [5, 6, 0, 7, 0, "*"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["4", "5", "7", "8"])
    assert result.outputs["4"] == {"text": ["6"]} and result.outputs["5"] == {"text": ["6.0"]}
    assert result.outputs["7"] == {"text": ["x.safetensors", "y.safetensors"]}
    assert result.values["8"] == ("text here",)
    saved = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in saved["nodes"]}
    for n in nodes:
        assert by_id[n["id"]]["type"] == n["type"]
        if n["type"] not in ("Int", "Float", "Operation"):  # those: ComfyUI-Logic's widgets; below
            assert by_id[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]
    assert by_id[3]["widgets_values"] == ["Int", "Float", "A*B"]  # as today's editor saves it
    linked = {i["name"] for i in by_id[3]["inputs"] if i.get("link") is not None}
    assert linked == {"A - Int", "B - Float"}


def test_a_checkpoint_list_feeds_the_loaders_ckpt_name_on_the_demo_model(registry, tmp_folders):
    """Checkpoint's names linked into CheckpointLoaderSimple.ckpt_name: the loader loads (and
    checks) each, as when typed in."""
    from tests.test_comfy_core_demo import base_graph

    typed = base_graph()
    typed["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}
    want = run_graph(registry, typed, ["8"]).values["8"][0]
    linked = {**typed, "20": {"class_type": "Checkpoint", "inputs": {"literal": "graphflow-demo.safetensors\n"}}}
    linked["4"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ["20", 0]}}
    got = run_graph(registry, linked, ["8"]).values["8"][0]  # a list of one picture: one name
    assert len(got) == 1 and torch.equal(got[0], want)
    linked["20"]["inputs"]["literal"] = "missing.safetensors"
    failed = Executor(registry).run(parse_workflow(linked, registry), outputs=["8"])
    assert not failed.ok and failed.error["node_id"] == "4" and "missing.safetensors" in failed.error["message"]


def test_a_lora_list_feeds_the_loaders_lora_name(registry, tmp_folders):
    """Lora's names linked into LoraLoader.lora_name: one run per name, each the LoRA typed in;
    a name outside the loras folder is refused by the loader."""
    from graphflow.testing import write_checkpoint, write_lora

    for sub in ("checkpoints", "loras"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    for seed, name in enumerate(("first.safetensors", "second.safetensors"), 1):
        write_lora(tmp_folders.models / "loras" / name, "sd1", seed=seed)

    def graph(lora_name):
        return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
                "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                             "lora_name": lora_name, "strength_model": 1.0,
                                                             "strength_clip": 1.0}},
                "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": "a red cat"}},
                "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
                "5": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["3", 0],
                                                           "negative": ["3", 0], "latent_image": ["4", 0],
                                                           "seed": 1, "steps": 2, "cfg": 3.0, "sampler_name": "euler",
                                                           "scheduler": "normal", "denoise": 1.0}}}

    typed = [run_graph(registry, graph(name), ["5"]).values["5"][0]["samples"]
             for name in ("first.safetensors", "second.safetensors")]
    assert not torch.equal(*typed)  # the two LoRAs do differ
    linked = {**graph(["10", 0]), "10": {"class_type": "Lora",
                                         "inputs": {"literal": "first.safetensors\nsecond.safetensors"}}}
    got = run_graph(registry, linked, ["5"]).values["5"][0]
    assert len(got) == 2 and all(torch.equal(g["samples"], t) for g, t in zip(got, typed))
    linked["10"]["inputs"]["literal"] = "../../../etc/passwd"
    failed = Executor(registry).run(parse_workflow(linked, registry), outputs=["5"])
    assert not failed.ok and failed.error["node_id"] == "2" and "etc/passwd" in failed.error["message"]


@pytest.mark.parametrize("class_type, text, read", [
    ("Int", " 7 ", int), ("Int", "+3", int), ("Int", "1_000", int),
    ("Float", " 2.5", float), ("Float", "1_0.5", float), ("Float", "1e3", float)])
def test_the_bare_int_and_float_read_number_as_their_help_says(registry, class_type, text, read):
    """ComfyLiterals' Int / Float (answered by ComfyUI-Logic's): Number read as the pack's
    int() / float()."""
    got = run_graph(registry, {"1": {"class_type": class_type, "inputs": {"Number": text}}}, ["1"]).values["1"][0]
    assert got == read(text) and type(got) is type(read(text))


@pytest.mark.parametrize("class_type, text", [("Int", str(2 ** 64)), ("Int", "abc"), ("Int", "7.0"), ("Float", "inf"),
                                              ("Float", "nan"), ("Float", "1e400"), ("Float", "")])
def test_the_bare_int_and_float_refuse_what_their_help_says(registry, class_type, text):
    """Beyond 2^64 - 1 (the pack's int() takes it) and non-finite floats (the pack's float() gives
    them) are refused on purpose, as is text that is no number ("7.0" for Int: the pack's int()
    refuses it), naming the input."""
    result = Executor(registry).run(parse_workflow({"1": {"class_type": class_type, "inputs": {"Number": text}}},
                                                   registry), outputs=["1"])
    assert result.status == "invalid" and [p.input for p in result.problems] == ["value"]


def test_the_bare_names_are_written_back_in_comfyui_logics_shape(registry):
    """The loss the help names: ComfyLiterals' Number / String come back as Logic's `value`."""
    prompt = {"1": {"class_type": "Int", "inputs": {"Number": "7"}},
              "2": {"class_type": "Float", "inputs": {"Number": "2.5"}},
              "3": {"class_type": "String", "inputs": {"String": "hi"}}}
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: (v["class_type"], list(v["inputs"])) for k, v in api.items()} == \
        {"1": ("Int", ["value"]), "2": ("Float", ["value"]), "3": ("String", ["value"])}
