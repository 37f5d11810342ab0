"""Custom packs' nodes checked against the packs' own behaviour where an audit found ours
different: KJNodes' ImageResizeKJ, rgthree's Lora Loader Stack and Power Lora Loader,
ComfyUI_essentials' SimpleMath+."""

import json

import pytest
import torch

from graphflow.comfy_format import export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import CKPT, lora, lora_folders, power_lora_ui_graph, weights  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def test_image_resize_kj_takes_the_reference_size_without_cutting_it(registry):
    """KJNodes cuts to divisible_by only when get_image_size is not connected: a 30 x 21
    reference gives 30 x 21 whatever divisible_by says."""
    image = torch.rand(1, 50, 100, 3, generator=torch.Generator().manual_seed(0))
    out, width, height = call(registry, "ImageResizeKJ", image=image, divisible_by=8, upscale_method="bilinear",
                              get_image_size=torch.zeros(2, 21, 30, 3))
    assert (width, height) == (30, 21) and out.shape == (1, 21, 30, 3)
    want = torch.nn.functional.interpolate(image.movedim(-1, 1), size=(21, 30), mode="bilinear").movedim(1, -1)
    assert torch.allclose(out, want)


def test_lora_loader_stack_skips_a_row_of_strength_zero_without_reading_its_file(registry, lora_folders):
    """The pack applies a row only when its LoRA isn't "None" and its strength isn't 0: a
    zero-strength row naming a file that isn't a LoRA at all is never read."""
    (lora_folders.models / "loras" / "broken.safetensors").write_bytes(b"not a safetensors file")
    model, clip = object(), object()
    rows = {"lora_01": "broken.safetensors", "strength_01": 0.0, "lora_02": "None", "strength_02": 1.0,
            "lora_03": "broken.safetensors", "strength_03": -0.0}
    assert call(registry, "LoraLoaderStack", model=model, clip=clip, **rows) == (model, clip)
    with pytest.raises(NodeInputError, match="broken.safetensors") as caught:  # read once it has a strength
        call(registry, "LoraLoaderStack", model=model, clip=clip, **rows, lora_04="broken.safetensors")
    assert caught.value.input == "lora_04"


def power_lora(rows, clip=True):
    inputs = {"model": ["1", 0], "loras": json.dumps(rows)}
    if clip:
        inputs["clip"] = ["1", 1]
    return {"1": CKPT, "2": {"class_type": "Power Lora Loader (rgthree)", "inputs": inputs}}


def run_weights(registry, graph, output):
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=[output])
    assert result.ok, (result.problems, result.error)
    return weights(*result.values[output])


@pytest.mark.parametrize("saved_name", [
    "first",  # without its extension
    "elsewhere/first.safetensors",  # another machine's subfolder: by file name
    "elsewhere/first",  # by file name without extension
    "irs",  # contained in the path ("f-irs-t.safetensors")
])
def test_power_lora_loader_finds_a_lora_by_the_packs_looser_names(registry, lora_folders, saved_name):
    """rgthree looks a row's LoRA up by its exact name, then without extension, then by file name
    alone (with and without extension), then as any part of a path."""
    want = run_weights(registry, {"1": CKPT, "2": lora("1", "first.safetensors", 0.7)}, "2")
    got = run_weights(registry, power_lora([{"on": True, "lora": saved_name, "strength": 0.7}]), "2")
    for have, expected in zip(got, want):
        assert all(torch.equal(have[n], expected[n]) for n in have)


def test_power_lora_loader_skips_a_lora_that_matches_no_file(registry, lora_folders):
    """The pack logs a LoRA it can't find and goes on without it; ComfyUI's run gives the image."""
    rows = [{"on": True, "lora": "gone.safetensors", "strength": 1.0},
            {"on": True, "lora": "second.safetensors", "strength": -0.5, "strengthTwo": 0.3},
            {"on": False, "lora": None, "strength": 1.0}]  # an unset row that is off is never read
    want = {"1": CKPT, "2": lora("1", "second.safetensors", -0.5)}
    want["2"]["inputs"]["strength_clip"] = 0.3
    for have, expected in zip(run_weights(registry, power_lora(rows), "2"), run_weights(registry, want, "2")):
        assert all(torch.equal(have[n], expected[n]) for n in have)


@pytest.mark.parametrize("view, clip_strengths", [
    (None, (0.7, -0.5)),  # a new node's "Single Strength": the saved strengthTwo is not sent
    ("Single Strength", (0.7, -0.5)),
    ("Separate Model & Clip", (1, 0.3)),  # sent, a null one as 1
])
def test_power_lora_loader_ui_rows_follow_the_show_strengths_view(registry, lora_folders, view, clip_strengths):
    """rgthree's editor sends a row's strengthTwo only in its "Separate Model & Clip" view
    (serializeValue), and then a null one as 1; in the single view the model's strength serves
    the text encoder too, whatever strengthTwo the file kept."""
    rows = [{"on": True, "lora": "first.safetensors", "strength": 0.7, "strengthTwo": None},
            {"on": True, "lora": "second.safetensors", "strength": -0.5, "strengthTwo": 0.3}]
    graph = power_lora_ui_graph([{}, {"type": "PowerLoraLoaderHeaderWidget"}, *rows, {}, ""])
    node = graph["nodes"][1]
    node["properties"] = {} if view is None else {"Show Strengths": view}
    want = {"1": CKPT, "2": lora("1", "first.safetensors", 0.7), "3": lora("2", "second.safetensors", -0.5)}
    want["2"]["inputs"]["strength_clip"], want["3"]["inputs"]["strength_clip"] = clip_strengths
    got = Executor(registry).run(parse_workflow(graph, registry), outputs=["2"])
    assert got.ok, (got.problems, got.error)
    for have, expected in zip(weights(*got.values["2"]), run_weights(registry, want, "3")):
        assert all(torch.equal(have[n], expected[n]) for n in have)


def test_power_lora_loader_written_for_the_editor_sends_its_text_encoder_strengths(registry, lora_folders):
    """A row with a strengthTwo of its own is written with the "Separate Model & Clip" view set
    (else the editor would drop it), the other rows' null ones as their strength."""
    graph = power_lora_ui_graph([{}, {"type": "PowerLoraLoaderHeaderWidget"},
                                 {"on": True, "lora": "first.safetensors", "strength": 0.7}, {}, ""])
    graph["nodes"][1]["properties"] = {"Show Strengths": "Single Strength"}
    workflow = parse_workflow(graph, registry)
    workflow.nodes["2"].inputs["loras"] = json.dumps([
        {"on": True, "lora": "first.safetensors", "strength": 0.7, "strengthTwo": None},
        {"on": True, "lora": "second.safetensors", "strength": -0.5, "strengthTwo": 0.3}])
    node = next(n for n in export_ui(workflow, registry)["nodes"] if n["id"] == 2)
    assert node["properties"]["Show Strengths"] == "Separate Model & Clip"
    assert node["widgets_values"][2:4] == [
        {"on": True, "lora": "first.safetensors", "strength": 0.7, "strengthTwo": 0.7},
        {"on": True, "lora": "second.safetensors", "strength": -0.5, "strengthTwo": 0.3}]
    again = parse_workflow(export_ui(workflow, registry), registry)
    assert again.nodes["2"].inputs["loras"] == json.dumps(node["widgets_values"][2:4])


@pytest.mark.parametrize("expression, expected", [
    ("d + 1", 1.0),  # the pack's d, always 0.0
    ("round(2.567, ndigits=2)", 3),  # keyword arguments are left out
    ("max(a, 2, key=b)", 3),
    ("1 < 0 in a", 0),  # an unknown operator after a failing comparison is never looked at
])
def test_simple_math_follows_the_packs_grammar(expression, expected):
    from nodes.pack_nodes import simple_math

    assert simple_math(expression, {"a": 3, "b": 1, "c": 0.0, "d": 0.0}) == expected


@pytest.mark.parametrize("expression", [
    "a ^ b", "a | b", "~a", "+a", "1 < a in b", "a @ b",  # operators the pack has no function for
    "__import__('os').system('true')", "(lambda: 1)()", "a.real()",  # calls of anything but a name
    "foo() + 1",  # an unknown function gives None
])
def test_simple_math_refuses_what_the_pack_fails_on(registry, expression):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "SimpleMath", value=expression, a=3, b=1)
    assert caught.value.input == "value"


def test_simple_math_rounds_a_big_whole_result_exactly(registry):
    """The pack rounds the result itself: a whole number past 2**53 stays exact as INT."""
    assert call(registry, "SimpleMath", value="a * a + 1", a=2**40) == (2**80 + 1, float(2**80))
    assert call(registry, "SimpleMath", value="d", a=1) == (0, 0.0)


def test_image_resize_plus_lanczos_is_pillows_on_8_bit_pictures(registry):
    """ComfyUI_essentials resizes "lanczos" through ComfyUI's lanczos: each picture to 8 bits
    (clipped, truncated), Pillow's LANCZOS, back to 0..1; the other methods are plain torch."""
    import numpy as np
    from PIL import Image

    image = torch.rand(2, 20, 30, 3, generator=torch.Generator().manual_seed(1)) * 1.2 - 0.1
    out, width, height = call(registry, "ImageResizePlus", image=image, width=17, height=0, method="keep proportion",
                              interpolation="lanczos")
    assert (width, height) == (17, 11)  # 20 * 17 / 30 = 11.33
    for picture, got in zip(image, out):
        eight_bit = (picture.numpy() * 255).clip(0, 255).astype(np.uint8)
        want = np.asarray(Image.fromarray(eight_bit).resize((17, 11), Image.LANCZOS), dtype=np.float32) / 255
        assert torch.equal(got, torch.from_numpy(want))
    out, _, _ = call(registry, "ImageResizePlus", image=image, width=17, height=11, interpolation="bicubic")
    want = torch.nn.functional.interpolate(image.movedim(-1, 1), size=(11, 17), mode="bicubic").movedim(1, -1)
    assert torch.allclose(out, want.clamp(0, 1))
