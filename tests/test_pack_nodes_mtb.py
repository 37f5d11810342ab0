"""comfy_mtb's model-free nodes (nodes/pack_nodes_mtb.py and pack_nodes_mtb2.py): the easings
against Robert Penner's formulas (and the pack's own where it writes them otherwise), the
float-list nodes against plain Python, the batch and image nodes against torch / numpy / OpenCV /
PIL / scikit-image computed here, String Replace against re.sub, Math Expression's substitution,
errors by input name, and UI-format saves and API prompts with the pack's class names that run and
round-trip."""

import math
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_mtb import DYNAMIC_INPUTS, EASINGS
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def node(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


def penner_bounce_out(t):
    n1, d1 = 7.5625, 2.75
    if t < 1 / d1:
        return n1 * t * t
    if t < 2 / d1:
        t -= 1.5 / d1
        return n1 * t * t + 0.75
    if t < 2.5 / d1:
        t -= 2.25 / d1
        return n1 * t * t + 0.9375
    t -= 2.625 / d1
    return n1 * t * t + 0.984375


# Penner's easings as easings.net writes them; Back Out and Back In/Out are checked apart (the pack's differ)
PENNER = {
    "Linear": lambda t: t,
    "Sine In": lambda t: 1 - math.cos(t * math.pi / 2),
    "Sine Out": lambda t: math.sin(t * math.pi / 2),
    "Sine In/Out": lambda t: -(math.cos(math.pi * t) - 1) / 2,
    "Quart In": lambda t: t ** 4,
    "Quart Out": lambda t: 1 - (1 - t) ** 4,
    "Quart In/Out": lambda t: 8 * t ** 4 if t < 0.5 else 1 - (-2 * t + 2) ** 4 / 2,
    "Cubic In": lambda t: t ** 3,
    "Cubic Out": lambda t: 1 - (1 - t) ** 3,
    "Cubic In/Out": lambda t: 4 * t ** 3 if t < 0.5 else 1 - (-2 * t + 2) ** 3 / 2,
    "Circ In": lambda t: 1 - math.sqrt(1 - t ** 2),
    "Circ Out": lambda t: math.sqrt(1 - (t - 1) ** 2),
    "Circ In/Out": lambda t: (1 - math.sqrt(1 - (2 * t) ** 2)) / 2 if t < 0.5
    else (math.sqrt(1 - (-2 * t + 2) ** 2) + 1) / 2,
    "Back In": lambda t: 2.70158 * t ** 3 - 1.70158 * t ** 2,
    "Elastic In": lambda t: t if t in (0, 1) else -(2 ** (10 * t - 10)) * math.sin((t * 10 - 10.75) * 2 * math.pi / 3),
    "Elastic Out": lambda t: t if t in (0, 1) else 2 ** (-10 * t) * math.sin((t * 10 - 0.75) * 2 * math.pi / 3) + 1,
    "Bounce Out": penner_bounce_out,
    "Bounce In": lambda t: 1 - penner_bounce_out(1 - t),
    "Bounce In/Out": lambda t: (1 - penner_bounce_out(1 - 2 * t)) / 2 if t < 0.5
    else (1 + penner_bounce_out(2 * t - 1)) / 2,
}
# The pack's own: Back Out multiplies (t - 1) by t (Penner squares t - 1); Back In/Out's second half
# the same; Elastic In/Out with period 0.45 as Penner's older code has it
PACK_ONLY = {
    "Back Out": lambda t: (t - 1) * t * (2.70158 * t + 1.70158) + 1,
    "Back In/Out": lambda t: (t * t * (t * (1.70158 * 1.525 + 1) - 1.70158 * 1.525)) * 2 if t < 0.5
    else ((t - 2) * t * ((1.70158 * 1.525 + 1) * t + 1.70158 * 1.525) + 2) * 2,
    "Elastic In/Out": lambda t: t if t in (0, 1) else (
        -0.5 * 2 ** (10 * (2 * t - 1)) * math.sin((2 * t - 1 - 0.1125) * 2 * math.pi / 0.45) if t < 0.5
        else 0.5 * 2 ** (-10 * (2 * t - 1)) * math.sin((2 * t - 1 - 0.1125) * 2 * math.pi / 0.45) + 1),
}


def test_the_packs_names_are_ours_and_named_as_the_packs(registry):
    for name in ("Batch Float (mtb)", "Batch Merge (mtb)", "Concat Images (mtb)", "Math Expression (mtb)",
                 "String Replace (mtb)", "Fit Number (mtb)", "Batch Time Wrap (mtb)", "Batch Shape (mtb)"):
        assert registry.comfy_node(name).__module__ == "nodes.pack_nodes_mtb"
        assert custom_pack(name) == "comfy_mtb"
    assert custom_pack("Image Resize Factor (mtb)") == "comfy_mtb"  # not WAS's "Image Resize" prefix
    assert set(EASINGS) == set(PENNER) | set(PACK_ONLY)


@pytest.mark.parametrize("easing", sorted(set(EASINGS)))
def test_batch_float_steps_follow_the_easing(registry, easing):
    reference = {**PENNER, **PACK_ONLY}[easing]
    got = node(registry, "Batch Float (mtb)", mode="Steps", count=9, min=-2.0, max=3.0, easing=easing)
    want = [-2.0 + 5.0 * reference(i / 8) for i in range(9)]
    assert got == pytest.approx(want, abs=1e-9)


def test_batch_float_single_and_the_count_it_needs(registry):
    assert node(registry, "Batch Float (mtb)", mode="Single", count=3, min=0.25, max=9.0, easing="Linear") == [0.25] * 3
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float (mtb)", mode="Steps", count=1, min=0.0, max=1.0, easing="Linear")
    assert caught.value.input == "count"
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float (mtb)", mode="Single", count=10 ** 9, min=0.0, max=1.0, easing="Linear")
    assert caught.value.input == "count"


def test_fill_assemble_normalize(registry):
    fill = dict(floats=[1.0, 2.0], value=9.0, count=4)
    assert node(registry, "Batch Float Fill (mtb)", direction="tail", **fill) == [1.0, 2.0, 9.0, 9.0]
    assert node(registry, "Batch Float Fill (mtb)", direction="head", **fill) == [9.0, 9.0, 1.0, 2.0]
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float Fill (mtb)", direction="tail", floats=[1.0, 2.0, 3.0], value=0.0, count=2)
    assert caught.value.input == "count"
    lists = dict(floats_1=[1.0], floats_2=[2.0, 3.0], floats_4=[4.0])
    assert node(registry, "Batch Float Assemble (mtb)", reverse=False, **lists) == [1.0, 2.0, 3.0, 4.0]
    assert node(registry, "Batch Float Assemble (mtb)", reverse=True, **lists) == [4.0, 2.0, 3.0, 1.0]
    values = [3.0, -1.0, 7.0]
    assert node(registry, "Batch Float Normalize (mtb)", floats=values) == \
        pytest.approx([(v - min(values)) / (max(values) - min(values)) for v in values])
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float Normalize (mtb)", floats=[2.0, 2.0])
    assert caught.value.input == "floats"


@pytest.mark.parametrize("operation, reference", [
    ("add", lambda a, b, c: a + b + c), ("sub", lambda a, b, c: a - b - c), ("mul", lambda a, b, c: a * b),
    ("div", lambda a, b, c: a / b), ("pow", lambda a, b, c: a ** b), ("abs", lambda a, b, c: abs(a))])
def test_batch_float_math_element_by_element(registry, operation, reference):
    a, b, c = [1.5, -2.0, 4.0], [2.0, 3.0, 0.5], [0.25, 1.0, -3.0]
    if operation == "pow":  # a negative to a fractional power is complex: refused, tested below
        c = [0.25, 1.0, 3.0]
    got = node(registry, "Batch Float Math (mtb)", reverse=False, operation=operation, floats_1=a, floats_2=b,
               floats_3=c)
    assert got == pytest.approx([reference(*column) for column in zip(a, b, c)])
    backwards = node(registry, "Batch Float Math (mtb)", reverse=True, operation=operation, floats_1=a, floats_2=b,
                     floats_3=c)
    assert backwards == pytest.approx([reference(*column) for column in zip(c, b, a)])


def test_batch_float_math_errors_name_the_input(registry):
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float Math (mtb)", reverse=False, operation="add", floats_1=[1.0], floats_2=[1.0, 2.0])
    assert caught.value.input == "floats_2"
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float Math (mtb)", reverse=False, operation="div", floats_1=[1.0], floats_2=[0.0])
    assert caught.value.input == "floats_2"
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float Math (mtb)", reverse=False, operation="mul", floats_1=[1.0])
    assert caught.value.input == "floats_2"
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float Math (mtb)", reverse=False, operation="pow", floats_1=[-1.0], floats_2=[0.5])
    assert caught.value.input == "floats_2" and "not a real number" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float Math (mtb)", reverse=False, operation="add")
    assert caught.value.input == "floats_1"
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float Math (mtb)", reverse=False, operation="add", floats_1="1, 2")
    assert caught.value.input == "floats_1"
    # whole numbers in a list are floats: 10 ** 1000000 overflows as a float, not an exact integer
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float Math (mtb)", reverse=False, operation="pow", floats_1=[10], floats_2=[10 ** 6])
    assert caught.value.input == "floats_2" and "out of range" in str(caught.value)
    got = node(registry, "Batch Float Math (mtb)", reverse=False, operation="mul", floats_1=[3], floats_2=[2])
    assert got == [6.0] and type(got[0]) is float
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Float Math (mtb)", reverse=False, operation="add", floats_1=[10 ** 400])
    assert caught.value.input == "floats_1"


@pytest.mark.parametrize("value, clamp, easing", [(0.3, False, "Linear"), (1.7, False, "Linear"),
                                                  (1.7, True, "Sine In"),
                                                  (-4.0, True, "Cubic Out"), (0.6, False, "Bounce In")])
def test_fit_number_and_batch_float_fit(registry, value, clamp, easing):
    source, target = (-1.0, 2.0), (10.0, 30.0)
    t = (value - source[0]) / (source[1] - source[0])
    t = min(max(t, 0.0), 1.0) if clamp else t
    want = target[0] + (target[1] - target[0]) * PENNER[easing](t)
    got = node(registry, "Fit Number (mtb)", value=value, clamp=clamp, source_min=source[0], source_max=source[1],
               target_min=target[0], target_max=target[1], easing=easing)
    assert got == pytest.approx(want)
    fitted = node(registry, "Batch Float Fit (mtb)", values=[value, source[0]], clamp=clamp, auto_compute_source=False,
                  source_min=source[0], source_max=source[1], target_min=target[0], target_max=target[1],
                  easing=easing)
    assert fitted == pytest.approx([want, target[0]])


def test_fit_number_empty_source_range_auto_source_and_a_value_circ_cant_ease(registry):
    assert node(registry, "Fit Number (mtb)", value=5.0, clamp=False, source_min=1.0, source_max=1.0, target_min=2.0,
                target_max=4.0, easing="Linear") == 2.0
    values = [2.0, 4.0, 3.0]
    assert node(registry, "Batch Float Fit (mtb)", values=values, clamp=False, auto_compute_source=True,
                source_min=0.0, source_max=1.0, target_min=0.0, target_max=1.0, easing="Linear") == [0.0, 1.0, 0.5]
    with pytest.raises(NodeInputError) as caught:  # Circ In of t = 2: the square root of a negative
        node(registry, "Fit Number (mtb)", value=2.0, clamp=False, source_min=0.0, source_max=1.0, target_min=0.0,
             target_max=1.0, easing="Circ In")
    assert caught.value.input == "value"


def test_batch_make_is_torch_repeat(registry):
    images = torch.rand(2, 5, 6, 3)
    assert torch.equal(node(registry, "Batch Make (mtb)", image=images, count=3), torch.cat([images] * 3))


@pytest.mark.parametrize("fusion_mode", ["add", "multiply", "average"])
@pytest.mark.parametrize("fill", ["head", "tail"])
def test_batch_merge_fills_then_merges_in_turn(registry, fusion_mode, fill):
    a, b, c = torch.rand(3, 4, 4, 3), torch.rand(1, 4, 4, 3), torch.rand(2, 4, 4, 3)
    kept = a.clone()

    def filled(x):
        edge = x[0] if fill == "head" else x[-1]
        extra = [edge] * (3 - len(x))
        return torch.stack(extra + list(x) if fill == "head" else list(x) + extra)

    want = filled(a)
    for x in (b, c):
        want = {"add": want + filled(x), "multiply": want * filled(x), "average": (want + filled(x)) / 2}[fusion_mode]
    got = node(registry, "Batch Merge (mtb)", fusion_mode=fusion_mode, fill=fill, batches_1=a, batches_2=b, batches_3=c)
    assert torch.allclose(got, want)
    assert torch.equal(a, kept)  # the input is left as it was
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Merge (mtb)", fusion_mode=fusion_mode, fill=fill, batches_1=a,
             batches_2=torch.rand(1, 5, 4, 3))
    assert caught.value.input == "batches_2"


def test_batch_sequence_joins_in_order(registry):
    a, b = torch.rand(2, 3, 3, 3), torch.rand(1, 3, 3, 3)
    for reverse, want in ((False, torch.cat([a, b])), (True, torch.cat([b, a]))):
        assert torch.equal(node(registry, "Batch Sequence (mtb)", reverse=reverse, batches_1=a, batches_2=b), want)


def test_batch_time_wrap_resamples_the_curve_and_picks_frames(registry):
    frames = torch.rand(7, 2, 2, 3)
    curve = [0.0, 0.9, 0.2, 1.0]
    images, resampled = node(registry, "Batch Time Wrap (mtb)", target_count=11, frames=frames, curve=curve)
    want_curve = np.interp(np.linspace(0, 1, 11), np.linspace(0, 1, len(curve)), curve)
    assert resampled == pytest.approx(want_curve.tolist())
    picks = np.clip([int(round(6 * p)) for p in want_curve], 0, 6)
    assert torch.equal(images, torch.stack([frames[i] for i in picks]))
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Time Wrap (mtb)", target_count=3, frames=frames, curve=[])
    assert caught.value.input == "curve"


@pytest.mark.parametrize("shape", ["Box", "Circle", "Diamond", "Tube"])
def test_batch_shape_is_opencvs_drawing(registry, shape):
    width, height, size = 40, 30, 16
    mask = np.zeros((height, width), np.uint8)
    center = (width // 2, height // 2)
    if shape == "Box":
        cv2.rectangle(mask, (center[0] - 8, center[1] - 8), (center[0] + 8, center[1] + 8), 255, -1)
    elif shape == "Circle":
        cv2.circle(mask, center, 8, 255, -1)
    elif shape == "Diamond":
        cv2.fillPoly(mask, [np.array([[20, 7], [28, 15], [20, 23], [12, 15]])], 255)
    else:
        cv2.ellipse(mask, center, (8, 8), 0, 0, 360, 255, 3)
    want = np.zeros((height, width, 3), np.float32)
    want[:] = np.array([0x10, 0x20, 0x30]) / 255
    want[mask == 255] = np.array([0xff, 0x80, 0x00]) / 255
    got = node(registry, "Batch Shape (mtb)", count=2, shape=shape, image_width=width, image_height=height,
               shape_size=size, color="#ff8000", bg_color="#102030", shade_color="#000000", thickness=3,
               shadex=0.0, shadey=0.0)
    assert got.shape == (2, height, width, 3)
    assert np.allclose(got[1].numpy(), want)


def test_batch_shape_shading_and_a_bad_colour(registry):
    got = node(registry, "Batch Shape (mtb)", count=1, shape="Box", image_width=11, image_height=11, shape_size=100,
               color="#000000", bg_color="#000000", shade_color="#000000", thickness=5, shadex=100.0, shadey=50.0)
    ramp_x = (100.0 * np.linspace(0, 1, 11)).astype(np.float32).astype(np.uint8)
    ramp_y = (50.0 * np.linspace(0, 1, 11)).astype(np.float32).astype(np.uint8)
    assert np.allclose(got[0, 4, :, 0].numpy(), ramp_x / 255)
    assert np.allclose(got[0, :, 4, 1].numpy(), ramp_y / 255)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Batch Shape (mtb)", count=1, shape="Box", image_width=8, image_height=8, shape_size=4,
             color="red", bg_color="#000000", shade_color="#000000", thickness=5, shadex=0.0, shadey=0.0)
    assert caught.value.input == "color"


@pytest.mark.parametrize("shape", ["Box", "Circle", "Diamond", "Tube"])
def test_batch_shape_bounds_its_size_and_thickness_for_opencv(registry, shape):
    """shape_size up to 2 × MAX_SIZE and thickness up to OpenCV's 32767 draw as OpenCV does; past
    them the inputs are refused by name (OpenCV's own errors were tracebacks)."""
    from pydantic import ValidationError
    from nodes.image import MAX_SIZE
    widgets = dict(count=1, shape=shape, image_width=64, image_height=48, color="#ffffff", bg_color="#000000",
                   shade_color="#000000", shadex=0.0, shadey=0.0)
    got = node(registry, "Batch Shape (mtb)", shape_size=2 * MAX_SIZE, thickness=32767, **widgets)
    mask, half = np.zeros((48, 64), np.uint8), MAX_SIZE
    if shape == "Tube":
        cv2.ellipse(mask, (32, 24), (half, half), 0, 0, 360, 255, 32767)
    else:  # every filled shape this big covers the whole image
        cv2.rectangle(mask, (32 - half, 24 - half), (32 + half, 24 + half), 255, -1)
    assert np.array_equal(got[0, :, :, 0].numpy() == 1.0, mask == 255)
    for name, value in (("shape_size", 10 ** 12), ("shape_size", 2 * MAX_SIZE + 1), ("thickness", 100000)):
        with pytest.raises(ValidationError) as caught:
            node(registry, "Batch Shape (mtb)", **{"shape_size": 16, "thickness": 3, **widgets, name: value})
        assert [e["loc"] for e in caught.value.errors()] == [(name,)]


@pytest.mark.parametrize("on_mismatch", ["Smallest", "Largest"])
def test_concat_images_resizes_with_torch_interpolate(registry, on_mismatch):
    a, b = torch.rand(2, 8, 6, 3), torch.rand(1, 4, 10, 3)
    height, width = (4, 10) if on_mismatch == "Smallest" else (8, 6)
    resize = lambda x: x if x.shape[1:3] == (height, width) else F.interpolate(  # noqa: E731
        x.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    got = node(registry, "Concat Images (mtb)", reverse=False, on_mismatch=on_mismatch, image_1=a, image_2=b)
    assert torch.allclose(got, torch.cat([resize(a), resize(b)]))
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Concat Images (mtb)", reverse=False, on_mismatch="Error", image_1=a, image_2=b)
    assert caught.value.input == "image_2"


@pytest.mark.parametrize("old, new, use_regex", [("b", "XY", False), (r"(\d)(\d)", r"\2\1", True), ("", "-", False),
                                                 (r"\s+", " ", True)])
def test_string_replace_is_str_replace_or_re_sub(registry, old, new, use_regex):
    text = "ab 12  b34\tb"
    want = re.sub(old, new, text) if use_regex else text.replace(old, new)
    assert node(registry, "String Replace (mtb)", string=text, old=old, new=new, use_regex=use_regex) == want


def test_string_replace_refuses_a_bad_expression_naming_old(registry):
    with pytest.raises(NodeInputError) as caught:
        node(registry, "String Replace (mtb)", string="abc", old="(", new="", use_regex=True)
    assert caught.value.input == "old"


def test_math_expression_fills_in_the_inputs(registry):
    assert node(registry, "Math Expression (mtb)", expression="<x> * 2 + <y>", x=3, y=0.5) == (6.5, 6)
    assert node(registry, "Math Expression (mtb)", expression="1e3") == (1000.0, 1000)
    assert node(registry, "Math Expression (mtb)", expression="-7.9") == (-7.9, -7)  # int() as the pack's
    for inputs, name in (({"expression": "<x>", "x": "five"}, "x"), ({"expression": "__import__('os')"}, "expression"),
                         ({"expression": "1 / 0"}, "expression")):
        with pytest.raises(NodeInputError) as caught:
            node(registry, "Math Expression (mtb)", **inputs)
        assert caught.value.input == name


def test_one_dynamic_input_past_ours_is_refused_naming_it(registry):
    prompt = {"1": {"class_type": "Batch Float (mtb)", "inputs": {"mode": "Single", "count": 2, "min": 1.0, "max": 1.0,
                                                                  "easing": "Linear"}},
              "2": {"class_type": "Batch Float Assemble (mtb)",
                    "inputs": {"reverse": False, f"floats_{DYNAMIC_INPUTS + 1}": ["1", 0]}},
              "3": {"class_type": "DebugPrint", "inputs": {"ANY": ["2", 0]}}}
    from graphflow.executor import Executor
    result = Executor(registry).run(parse_workflow(prompt, registry))
    assert not result.ok
    assert f"floats_{DYNAMIC_INPUTS + 1}" in str(result.problems) + str(result.error)


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry):
    prompt = {
        "1": {"class_type": "Batch Float (mtb)", "inputs": {"mode": "Steps", "count": 4, "min": 0.0, "max": 1.0,
                                                            "easing": "Linear"}},
        "2": {"class_type": "Batch Float (mtb)", "inputs": {"mode": "Single", "count": 4, "min": 2.0, "max": 1.0,
                                                            "easing": "Linear"}},
        "3": {"class_type": "Batch Float Math (mtb)", "inputs": {"reverse": False, "operation": "mul",
                                                                 "floats_1": ["1", 0], "floats_2": ["2", 0]}},
        "4": {"class_type": "DebugPrint", "inputs": {"ANY": ["3", 0]}},
        "5": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 3, "color": 255}},
        "6": {"class_type": "Batch Time Wrap (mtb)", "inputs": {"target_count": 5, "frames": ["5", 0],
                                                                "curve": ["3", 0]}},
        "7": {"class_type": "String Replace (mtb)", "inputs": {"string": ["8", 0], "old": "cat", "new": "dog",
                                                               "use_regex": False}},
        "8": {"class_type": "PrimitiveString", "inputs": {"value": "a cat"}},
        "9": {"class_type": "DebugPrint", "inputs": {"ANY": ["7", 0]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }
    result = run_graph(registry, prompt)
    assert result.values["3"][0] == pytest.approx([0.0, 2 / 3, 4 / 3, 2.0])
    assert result.values["6"][0].shape == (5, 8, 8, 3)
    assert result.outputs["9"] == {"text": ["a dog"]}
    api = export_api(parse_workflow(prompt, registry), registry)
    for key in ("1", "2", "3", "6", "7"):
        assert (api[key]["class_type"], api[key]["inputs"]) == (prompt[key]["class_type"], prompt[key]["inputs"])


def test_ui_save_with_the_packs_nodes_runs_and_round_trips(registry):
    """As the pack's editor saves them: the widgets in the pack's order, the dynamic inputs
    (floats_1, image_1 ...) as plain inputs, String Replace's forced string input linked."""
    nodes = [
        ui_node(1, "Batch Float (mtb)", ["Steps", 3, 0.0, 1.0, "Sine Out"], outputs=[("FLOATS", "FLOATS", [1])]),
        ui_node(2, "Batch Float Fit (mtb)", [False, True, 0.0, 1.0, 5.0, 10.0, "Linear"],
                [("values", "FLOATS", 1, False)], [("FLOATS", "FLOATS", [2])]),
        ui_node(3, "Batch Float Assemble (mtb)", [True],
                [("floats_1", "FLOATS", 2, False), ("floats_2", "FLOATS", None, False)],
                [("FLOATS", "FLOATS", [3])]),
        ui_node(4, "DebugPrint", [], [("ANY", "*", 3, False)]),
        ui_node(5, "Batch Shape (mtb)", [2, "Circle", 16, 16, 8, "#ffffff", "#000000", "#000000", 5, 0.0, 0.0],
                outputs=[("IMAGE", "IMAGE", [4, 5])]),
        ui_node(6, "Concat Images (mtb)", [False, "Smallest"],
                [("image_1", "IMAGE", 4, False), ("image_2", "IMAGE", 5, False), ("image_3", "IMAGE", None, False)],
                [("IMAGE", "IMAGE", [6])]),
        ui_node(7, "Batch Make (mtb)", [2], [("image", "IMAGE", 6, False), ("mask", "MASK", None, False)],
                [("IMAGE", "IMAGE", [])]),
        ui_node(8, "Math Expression (mtb)", ["<x> / 4"], [("x", "*", 7, False)],
                [("result (float)", "FLOAT", []), ("result (int)", "INT", [])]),
        ui_node(9, "PrimitiveInt", [10, "fixed"], outputs=[("INT", "INT", [7])]),
    ]
    links = [[1, 1, 0, 2, 0, "FLOATS"], [2, 2, 0, 3, 0, "FLOATS"], [3, 3, 0, 4, 0, "*"], [4, 5, 0, 6, 0, "IMAGE"],
             [5, 5, 0, 6, 1, "IMAGE"], [6, 6, 0, 7, 0, "IMAGE"], [7, 9, 0, 8, 0, "*"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["4", "7", "8"])
    sine_out = [math.sin(t * math.pi / 2) for t in (0.0, 0.5, 1.0)]
    fitted = [5.0 + 5.0 * (v - min(sine_out)) / (max(sine_out) - min(sine_out)) for v in sine_out]
    assert result.values["3"][0] == pytest.approx(fitted)
    assert result.values["7"][0].shape == (8, 16, 16, 3)
    assert result.values["8"] == (2.5, 2)
    saved = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in saved["nodes"]}
    for n in nodes:
        assert by_id[n["id"]]["type"] == n["type"]
        assert by_id[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


# -- numbers and image processing -----------------------------------------------------------------


def test_number_conversions(registry):
    assert node(registry, "Int To Number (mtb)", int=-7) == -7
    assert node(registry, "Float To Number (mtb)", float=2.5) == 2.5
    assert node(registry, "Int To Bool (mtb)", int=0) is False and node(registry, "Int To Bool (mtb)", int=-3) is True


def u8(x):
    return np.clip(255.0 * x.numpy(), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("invert", [False, True])
def test_image_premultiply_is_pils_putalpha(registry, invert):
    from PIL import Image
    images, mask = torch.rand(2, 5, 4, 3), torch.rand(1, 5, 4)
    got = node(registry, "Image Premultiply (mtb)", image=images, mask=mask, invert=invert)
    alpha = Image.fromarray(u8(mask[0] if invert else 1.0 - mask[0]), mode="L")
    for i in range(2):
        picture = Image.fromarray(u8(images[i]), mode="RGB")
        picture.putalpha(alpha)
        assert np.array_equal(got[i].numpy(), np.asarray(picture).astype(np.float32) / 255.0)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Image Premultiply (mtb)", image=images, mask=torch.rand(1, 4, 4), invert=invert)
    assert caught.value.input == "mask"


def test_image_tile_offset_moves_each_tile_one_on(registry):
    image = torch.rand(1, 7, 9, 3)  # 3 × 2 tiles of 3 × 3: a row and a column left over
    got = node(registry, "Image Tile Offset (mtb)", image=image, tilesX=3, tilesY=2)
    want = torch.zeros_like(image)
    want[:, :6, :9] = torch.roll(image[:, :6, :9], shifts=(3, 3), dims=(1, 2))
    assert torch.equal(got, want)
    assert torch.equal(node(registry, "Image Tile Offset (mtb)", image=image, tilesX=10 ** 9, tilesY=2),
                       torch.zeros_like(image))  # more tiles than pixels: all empty, as in the pack


def _tiles_moved_one_by_one(image, tiles_x, tiles_y):
    """The pack's loop: each tile copied one tile right and down, wrapping; the rest left black."""
    tile_h, tile_w = image.shape[1] // tiles_y, image.shape[2] // tiles_x
    out = torch.zeros_like(image)
    if tile_h and tile_w:
        for row in range(tiles_y):
            for column in range(tiles_x):
                to_row, to_column = (row + 1) % tiles_y * tile_h, (column + 1) % tiles_x * tile_w
                out[:, to_row:to_row + tile_h, to_column:to_column + tile_w] = \
                    image[:, row * tile_h:(row + 1) * tile_h, column * tile_w:(column + 1) * tile_w]
    return out


@pytest.mark.parametrize("height, width, tiles_x, tiles_y", [(7, 9, 3, 2), (8, 8, 1, 1), (5, 12, 12, 5), (6, 5, 5, 1),
                                                             (11, 4, 2, 3), (3, 3, 4, 1), (1, 1, 1, 1)])
def test_image_tile_offset_is_the_packs_tile_by_tile_loop(registry, height, width, tiles_x, tiles_y):
    image = torch.rand(2, height, width, 3)
    got = node(registry, "Image Tile Offset (mtb)", image=image, tilesX=tiles_x, tilesY=tiles_y)
    assert torch.equal(got, _tiles_moved_one_by_one(image, tiles_x, tiles_y))


def test_sharpen_is_the_packs_kernel_by_conv2d(registry):
    image, radius, sx, sy, alpha = torch.rand(2, 9, 11, 3), 2, 0.8, 1.3, 0.7
    size = 2 * radius + 1
    xs = torch.linspace(-1, 1, size)
    x, y = xs[:, None].expand(size, size), xs[None, :].expand(size, size)
    kernel = torch.exp(-(x ** 2 / (2 * sx ** 2) + y ** 2 / (2 * sy ** 2)))
    kernel = kernel / kernel.sum() * -(alpha * 10)
    kernel[radius, radius] += 1 - kernel.sum()
    padded = np.pad(image.numpy(), ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="reflect")
    want = np.zeros_like(image.numpy())
    for dy in range(size):
        for dx in range(size):
            want += kernel[dy, dx].item() * padded[:, dy:dy + 9, dx:dx + 11]
    got = node(registry, "Sharpen (mtb)", image=image, sharpen_radius=radius, sigma_x=sx, sigma_y=sy, alpha=alpha)
    assert np.allclose(got.numpy(), np.clip(want, 0, 1), atol=1e-5)


def test_blur_is_skimages_gaussian(registry):
    from skimage.filters import gaussian
    image = torch.rand(2, 12, 10, 3)
    got = node(registry, "Blur (mtb)", image=image, sigmaX=2.0, sigmaY=0.5)
    want = [gaussian(image[i].numpy() * 255, sigma=(2.0, 0.5, 0), channel_axis=2) / 255 for i in range(2)]
    assert np.allclose(got.numpy(), np.stack(want), atol=1e-5)
    per_image = node(registry, "Blur (mtb)", image=image, sigmaX=2.0, sigmaY=0.5, sigmasX=[1.0, 3.0])
    want = [gaussian(image[i].numpy() * 255, sigma=(s, s, 0), channel_axis=2) / 255 for i, s in enumerate([1.0, 3.0])]
    assert np.allclose(per_image.numpy(), np.stack(want), atol=1e-5)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Blur (mtb)", image=image, sigmaX=2.0, sigmaY=0.5, sigmasX=[1.0])
    assert caught.value.input == "sigmasX"
    for sigmas in ([1.0, -1.0], [1e13, 1.0], [1.0, math.nan], [1.0, 200.5]):  # the widgets' 0 to 200
        for name in ("sigmasX", "sigmasY"):
            with pytest.raises(NodeInputError) as caught:
                node(registry, "Blur (mtb)", image=image, **{"sigmasX": [1.0, 1.0], name: sigmas})
            assert caught.value.input == name, (name, sigmas)


@pytest.mark.parametrize("invert", [False, True])
def test_mask_to_image_is_pils_composite(registry, invert):
    from PIL import Image
    mask = torch.rand(2, 6, 5)
    got = node(registry, "Mask To Image (mtb)", mask=mask, color="#ff8000", background="navy", invert=invert)
    for i in range(2):
        picture = Image.fromarray(u8(1.0 - mask[i] if invert else mask[i]), mode="L")
        want = Image.composite(Image.new("RGB", (5, 6), (255, 128, 0)), Image.new("RGB", (5, 6), (0, 0, 128)), picture)
        assert np.array_equal(got[i].numpy(), np.asarray(want).astype(np.float32) / 255)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Mask To Image (mtb)", mask=mask, color="not a colour", background="#000000", invert=invert)
    assert caught.value.input == "color"


def test_image_compare_modes(registry):
    from skimage.util import compare_images
    a, b = torch.rand(2, 6, 8, 3), torch.rand(2, 6, 8, 4)
    b3 = torch.cat([a.new_ones(2, 6, 8, 1)], -1)
    opaque_a = torch.cat([a, b3], -1)
    assert torch.allclose(node(registry, "Image Compare (mtb)", imageA=a, imageB=b, mode="diff"), (opaque_a - b).abs())
    assert torch.allclose(node(registry, "Image Compare (mtb)", imageA=a, imageB=b, mode="blend"), (opaque_a + b) / 2)
    got = node(registry, "Image Compare (mtb)", imageA=a, imageB=b, mode="checkerboard")
    for i in range(2):
        for c in range(4):
            want = compare_images(opaque_a[i, ..., c].numpy(), b[i, ..., c].numpy(), method="checkerboard")
            assert np.allclose(got[i, ..., c].numpy(), want)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Image Compare (mtb)", imageA=a, imageB=b[:1], mode="diff")
    assert caught.value.input == "imageB"


def test_color_correct_follows_the_packs_steps(registry):
    from PIL import Image
    image, mask = torch.rand(2, 4, 5, 3), (torch.rand(1, 4, 5) > 0.5).float()
    settings = dict(gamma=1.4, contrast=1.2, exposure=0.3, offset=-0.05, hue=0.1, saturation=1.3, value=0.9)
    got = node(registry, "Color Correct (mtb)", image=image, clamp=True, mask=mask, **settings)
    step = image ** (1 / 1.4)
    luminance = (0.33 * step[..., 0] + 0.71 * step[..., 1] + 0.06 * step[..., 2]).mean()
    step = torch.clamp(step * 1.2 + (1 - 1.2) * luminance, 0, 1) * 2 ** 0.3 - 0.05
    want = []
    for i in range(2):
        h, s, v = Image.fromarray(u8(step[i]), mode="RGB").convert("HSV").split()
        h = h.point(lambda x: (x + 0.1 * 255) % 256)
        s = s.point(lambda x: int(x * 1.3))
        v = v.point(lambda x: int(x * 0.9))
        want.append(np.asarray(Image.merge("HSV", (h, s, v)).convert("RGB")).astype(np.float32) / 255)
    want = np.where(mask[..., None].numpy() > 0, np.clip(np.stack(want), 0, 1), image.numpy())
    assert np.allclose(got.numpy(), want)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Color Correct (mtb)", image=image, clamp=True, **{**settings, "gamma": 0.0})
    assert caught.value.input == "gamma"


def test_ui_save_with_the_image_nodes_runs_and_round_trips(registry):
    nodes = [
        ui_node(1, "EmptyImage", [16, 12, 2, 0x336699], outputs=[("IMAGE", "IMAGE", [1, 2, 6])]),
        ui_node(2, "Color Correct (mtb)", [True, 1.0, 1.0, 0.5, 0.0, 0.0, 1.0, 1.0],
                [("image", "IMAGE", 1, False), ("mask", "MASK", None, False)], [("IMAGE", "IMAGE", [3])]),
        ui_node(3, "Sharpen (mtb)", [1, 1.0, 1.0, 1.0], [("image", "IMAGE", 2, False)], [("IMAGE", "IMAGE", [4])]),
        ui_node(4, "Image Compare (mtb)", ["diff"], [("imageA", "IMAGE", 3, False), ("imageB", "IMAGE", 4, False)],
                [("IMAGE", "IMAGE", [])]),
        ui_node(5, "SolidMask", [1.0, 16, 12], outputs=[("MASK", "MASK", [5])]),
        ui_node(6, "Mask To Image (mtb)", ["#ff0000", "#000000", False], [("mask", "MASK", 5, False)],
                [("IMAGE", "IMAGE", [])]),
        ui_node(7, "Image Tile Offset (mtb)", [2, 2], [("image", "IMAGE", 6, False)], [("IMAGE", "IMAGE", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 3, 0, "IMAGE"], [3, 2, 0, 4, 0, "IMAGE"], [4, 3, 0, 4, 1, "IMAGE"],
             [5, 5, 0, 6, 0, "MASK"], [6, 1, 0, 7, 0, "IMAGE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["4", "6", "7"])
    flat = torch.tensor([0x33, 0x66, 0x99]) / 255
    # exposure 0.5 on a flat colour: × √2; PIL's 8-bit HSV round trip moves a channel a few steps
    # (the exact steps are test_color_correct_follows_the_packs_steps')
    brighter = result.values["2"][0]
    assert np.allclose(brighter[0, 0, 0].numpy(), u8(flat * 2 ** 0.5) / 255, atol=4 / 255)
    # a flat image is unchanged by sharpening
    assert torch.allclose(result.values["3"][0], torch.clamp(flat.expand(2, 12, 16, 3), 0, 1), atol=1e-5)
    assert torch.equal(result.values["6"][0], torch.tensor([1.0, 0.0, 0.0]).expand(1, 12, 16, 3))
    assert torch.equal(result.values["7"][0], result.values["1"][0])  # a flat image is its own tile offset
    saved = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in saved["nodes"]}
    for n in nodes:
        assert by_id[n["id"]]["type"] == n["type"]
        if n["type"] not in ("EmptyImage", "SolidMask"):
            assert by_id[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


def test_stack_images_side_by_side_and_down(registry):
    a, b = torch.rand(2, 4, 5, 3), torch.rand(3, 4, 2, 4)
    rgba_a = torch.cat([a, torch.ones(2, 4, 5, 1)], -1)
    longer_a = torch.cat([rgba_a, rgba_a[:1]])  # repeated whole, then its first images
    got = node(registry, "Stack Images (mtb)", vertical=False, match_method="error", image_1=a, image_2=b)
    assert torch.equal(got, torch.cat([longer_a, b], dim=2))
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Stack Images (mtb)", vertical=True, match_method="error", image_1=a, image_2=b)
    assert caught.value.input == "image_2"
    got = node(registry, "Stack Images (mtb)", vertical=True, match_method="largest", image_1=a, image_2=b)
    scaled_b = F.interpolate(b.permute(0, 3, 1, 2), size=(int(4 * 5 / 2), 5), mode="bilinear",
                             align_corners=False).permute(0, 2, 3, 1)
    assert torch.allclose(got, torch.cat([longer_a, scaled_b], dim=1))


def test_stack_images_estimate_is_the_matched_sizes_and_an_oversized_match_is_refused(registry):
    """largest / smallest rescale keeping the aspect: the estimate is the stack run makes (both
    images 512 high side by side: 1x8x512 -> 512 x 32768), and a side over MAX_SIZE is refused
    naming match_method before any pixel is made."""
    from graphflow.api import Size
    from nodes.image import MAX_SIZE
    stack = registry.get("MtbStackImages")
    inputs = {"image_1": Size(1, 8, 512), "image_2": Size(1, 512, 8)}
    assert stack.estimate({"vertical": False, "match_method": "largest"}, inputs).size == Size(1, 512, 32768 + 8)
    assert stack.estimate({"vertical": True, "match_method": "largest"}, inputs).size == Size(1, 8 + 32768, 512)
    assert stack.estimate({"vertical": False, "match_method": "error"}, inputs).size == Size(1, 512, 520)
    got = node(registry, "Stack Images (mtb)", vertical=False, match_method="smallest",
               image_1=torch.rand(1, 4, 6, 3), image_2=torch.rand(1, 2, 5, 3))
    estimated = stack.estimate({"vertical": False, "match_method": "smallest"},
                               {"image_1": Size(1, 4, 6), "image_2": Size(1, 2, 5)}).size
    assert tuple(got.shape) == (estimated.batch, estimated.height, estimated.width, 4) == (1, 2, 8, 4)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Stack Images (mtb)", vertical=False, match_method="largest",
             image_1=torch.rand(1, 1, MAX_SIZE, 3), image_2=torch.rand(1, 8, 1, 3))
    assert caught.value.input == "match_method" and "image_1" in str(caught.value)


@pytest.mark.parametrize("direction, count, picked", [("start", 2, slice(0, 2)), ("end", 2, slice(3, 5)),
                                                      ("end", 9, slice(0, 5)), ("end", 0, slice(0, 5)),
                                                      ("start", 0, slice(0, 0))])
def test_pick_from_batch(registry, direction, count, picked):
    images, masks = torch.rand(5, 3, 3, 3), torch.rand(5, 3, 3)
    got, got_masks = node(registry, "Pick From Batch (mtb)", image=images, from_direction=direction, count=count,
                          mask=masks)
    assert torch.equal(got, images[picked]) and torch.equal(got_masks, masks[picked])
    assert node(registry, "Pick From Batch (mtb)", image=images, from_direction=direction, count=count)[1] is None


@pytest.mark.parametrize("mode, supersample", [("bilinear", True), ("bicubic", False), ("nearest", True),
                                               ("area", False)])
def test_image_resize_factor_is_torch_interpolate(registry, mode, supersample):
    image = torch.rand(2, 6, 10, 3)
    options = {"align_corners": True} if mode in ("bilinear", "bicubic") else {}
    want = F.interpolate(image.permute(0, 3, 1, 2), size=(int(6 * 1.5), int(10 * 1.5)), mode=mode, **options)
    if supersample:
        want = F.interpolate(want, scale_factor=2, mode=mode, **options)
    got, mask = node(registry, "Image Resize Factor (mtb)", image=image, factor=1.5, supersample=supersample,
                     resampling=mode)
    assert torch.allclose(got, want.permute(0, 2, 3, 1)) and mask is None


def test_image_resize_factor_refusals(registry):
    image = torch.rand(1, 4, 4, 3)
    for inputs, name in (({"resampling": "linear"}, "resampling"), ({"mask": torch.ones(1, 4, 4)}, "mask"),
                         ({"factor": 0.01}, "factor")):
        with pytest.raises(NodeInputError) as caught:
            node(registry, "Image Resize Factor (mtb)", **{"image": image, "factor": 2.0, "supersample": False,
                                                          "resampling": "bilinear", **inputs})
        assert caught.value.input == name


@pytest.mark.parametrize("iteration", [0, 7, 9, 23])
def test_animation_builder_frame_maths(registry, iteration):
    frame, scaled, count, ended = node(registry, "Animation Builder (mtb)", total_frames=10, scale_float=2.0,
                                       loop_count=3, raw_iteration=iteration, raw_loop=iteration // 10)
    assert frame == iteration % 10 and scaled == pytest.approx(frame / 9 * 2.0)
    assert count == iteration // 10 and ended is (frame == 9)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Animation Builder (mtb)", total_frames=1, scale_float=1.0, loop_count=1, raw_iteration=0,
             raw_loop=0)
    assert caught.value.input == "total_frames"


def test_debug_lines_as_the_pack_writes_them():
    from nodes.pack_nodes_mtb2 import debug_lines
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    assert debug_lines(latent, False) == [f"Latent Samples: {latent['samples'].shape} (empty)"]
    assert debug_lines([1.0, 2.5], False) == ["Array (2): [1.0, 2.5]"]
    assert debug_lines([torch.zeros(2, 3)] * 4, False) == [f"List of Tensors: {torch.zeros(2, 3).shape} (x4)"]
    assert debug_lines(True, False) == ["True"] and debug_lines(12, False) == ["12"]
    assert debug_lines({"a": 1}, False) == ['{\n  "a": 1\n}']
    assert debug_lines(torch.zeros(1, 2, 2, 3), False) is None  # shown as pictures
    assert debug_lines("x", True) == ["Type: str"]  # no __dict__: no attributes listed
    assert debug_lines(torch.zeros(1, 2, 2, 3), True) == [f"Tensor of shape {torch.Size([1, 2, 2, 3])} "
                                                          "of type torch.float32"]


def test_ui_save_with_animation_builder_and_debug_runs_and_round_trips(registry, tmp_folders):
    """Animation Builder as its editor saves it: the five inputs, then the frame and loop previews
    and the Reset and Queue buttons its script adds (read past, not written back)."""
    nodes = [
        ui_node(1, "Animation Builder (mtb)", [12, 1.0, 2, 17, 1, None, None, "reset", "queue"],
                outputs=[("frame", "INT", [1]), ("0-1 (scaled)", "FLOAT", [2]), ("count", "INT", []),
                         ("loop_ended", "BOOLEAN", [])]),
        ui_node(2, "Debug (mtb)", [False, False],
                [("anything_1", "INT", 1, False), ("anything_2", "FLOAT", 2, False), ("anything_3", "IMAGE", 3, False),
                 ("anything_4", "*", None, False)]),
        ui_node(3, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [3])]),
    ]
    links = [[1, 1, 0, 2, 0, "INT"], [2, 1, 1, 2, 1, "FLOAT"], [3, 3, 0, 2, 2, "IMAGE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph)
    assert result.values["1"] == (5, 5 / 11, 1, False)
    shown = result.outputs["2"]
    assert shown["text"] == ["5", str(5 / 11)] and len(shown["images"]) == 1
    saved = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in saved["nodes"]}
    assert by_id[1]["type"] == "Animation Builder (mtb)" and by_id[1]["widgets_values"] == [12, 1.0, 2, 17, 1]
    assert by_id[2]["type"] == "Debug (mtb)" and by_id[2]["widgets_values"] == [False, False]
    api = export_api(parse_workflow(graph, registry), registry)
    assert api["1"]["inputs"] == {"total_frames": 12, "scale_float": 1.0, "loop_count": 2, "raw_iteration": 17,
                                  "raw_loop": 1}


def test_colored_image_plain_and_over_a_foreground(registry):
    from PIL import Image
    plain = node(registry, "Colored Image (mtb)", color="#204080", width=20, height=16)
    assert plain.shape == (1, 16, 20, 3) and torch.equal(plain[0, 3, 4], torch.tensor([0x20, 0x40, 0x80]) / 255)
    foreground, mask = torch.rand(2, 10, 30, 3), torch.rand(1, 10, 30)
    got = node(registry, "Colored Image (mtb)", color="#204080", width=20, height=16, foreground_image=foreground,
               foreground_mask=mask, invert=True, mask_opacity=0.5)

    def cover(picture):  # Lanczos to cover 20 × 16 (scale 1.6: 48 × 16), the middle 20 columns
        return picture.resize((48, 16), Image.LANCZOS).crop((14, 0, 34, 16))

    alpha = (np.asarray(cover(Image.fromarray(u8(1.0 - mask[0]), mode="L"))) * 0.5).astype(np.uint8)
    for i in range(2):
        want = Image.composite(cover(Image.fromarray(u8(foreground[i]), mode="RGB")).convert("RGBA"),
                               Image.new("RGBA", (20, 16), (0x20, 0x40, 0x80)), Image.fromarray(alpha, mode="L"))
        assert np.array_equal(got[i].numpy(), np.asarray(want.convert("RGB")).astype(np.float32) / 255)
    with pytest.raises(NodeInputError) as caught:  # RGB without a mask: the pack needs an alpha then
        node(registry, "Colored Image (mtb)", color="#204080", width=20, height=16, foreground_image=foreground)
    assert caught.value.input == "foreground_image"


@pytest.mark.parametrize("count, columns, rows", [(4, 2, 2), (5, 2, 3), (3, 1, 2)])
def test_save_image_grid_writes_the_packs_grid(registry, tmp_folders, count, columns, rows):
    from PIL import Image
    from graphflow.api import folders
    images = torch.rand(count, 6, 5, 3)
    node(registry, "Save Image Grid (mtb)", images=images, filename_prefix="grids/g", save_intermediate=True)
    saved = Image.open(folders.outputs / "grids" / "g_00001_.png")
    want = np.zeros((rows * 6, columns * 5, 3), np.uint8)
    for i in range(count):
        if i // columns < rows:  # past columns × rows an image falls outside the grid, as in the pack
            want[i // columns * 6:(i // columns + 1) * 6, i % columns * 5:(i % columns + 1) * 5] = u8(images[i])
    assert np.array_equal(np.asarray(saved.convert("RGB")), want)
    for i in range(count):
        assert np.array_equal(np.asarray(Image.open(folders.outputs / "grids" / f"g_batch-{i:03}_00001_.png")),
                              u8(images[i]))
    with pytest.raises(ValueError, match="filename_prefix"):  # refused when its widgets are read, before running
        node(registry, "Save Image Grid (mtb)", images=images, filename_prefix="../out", save_intermediate=False)


def test_apply_text_template_and_any_to_string(registry):
    assert node(registry, "Apply Text Template (mtb)", template="a {var_1} and {var_2}, {var_3}", var_1=3,
                var_2="cat") == "a 3 and cat, {var_3}"
    assert node(registry, "Any To String (mtb)", input="x") == "x"
    assert node(registry, "Any To String (mtb)", input=torch.zeros(2, 3)) == \
        f"Tensor of shape {torch.Size([2, 3])} and dtype torch.float32"
    keys = {"a": 1}.keys()
    assert node(registry, "Any To String (mtb)", input={"a": 1}) == f"Dictionary of 1 items, with keys {keys}"
    assert node(registry, "Any To String (mtb)", input=2.5) == "2.5"


def test_note_plus_is_an_editor_note_kept_through_the_round_trip(registry):
    """Note Plus is comfy_mtb's editor-only note (its script registers the class; no backend node):
    a save holding it runs, and it is written back as itself, its Mode, CSS and Theme widgets kept."""
    note = {**ui_node(1, "Note Plus (mtb)", ["# Title\nsome *text*", "markdown", "h1 { color: red }", "dark"]),
            "title": "Note+ (mtb)"}
    nodes = [note,
             ui_node(2, "Batch Float (mtb)", ["Steps", 3, 0.0, 1.0, "Linear"], outputs=[("FLOATS", "FLOATS", [1])]),
             ui_node(3, "DebugPrint", [], [("ANY", "*", 1, False)])]
    graph = ui_graph(nodes, [[1, 2, 0, 3, 0, "FLOATS"]])
    workflow = parse_workflow(graph, registry)
    assert "1" not in workflow.nodes
    assert run_graph(registry, graph).outputs["3"] == {"text": [str([0.0, 0.5, 1.0])]}
    saved = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    assert saved[1]["type"] == "Note Plus (mtb)" and saved[1]["widgets_values"] == note["widgets_values"]
    assert saved[1]["title"] == "Note+ (mtb)"
    # one without its original node (added here): the pack's four widgets, its editor's defaults for
    # CSS and Theme (web/note_plus.constants.js), its Mode as the note reads
    pack_css, pack_theme = "/** here you can write css**/\nh1 {\n    color: whitesmoke;\n}", "one_dark"
    workflow.ui["notes"] += [{"id": "n1", "pos": [0, 0], "text": "*new*", "type": "Note Plus (mtb)", "markdown": True},
                             {"id": "n2", "pos": [0, 0], "text": "<b>plain</b>", "type": "Note Plus (mtb)"}]
    added = [n for n in export_ui(workflow, registry)["nodes"] if n["type"] == "Note Plus (mtb)" and n["id"] != 1]
    assert [n["widgets_values"] for n in added] == [["*new*", "markdown", pack_css, pack_theme],
                                                     ["<b>plain</b>", "raw", pack_css, pack_theme]]
    reread = parse_workflow(export_ui(workflow, registry), registry).ui["notes"]
    assert [n.get("markdown", False) for n in reread if n["text"] in ("*new*", "<b>plain</b>")] == [True, False]


def test_smart_step(registry):
    assert node(registry, "Smart Step (mtb)", step=30, start_percent=25, end_percent=90) == (30, 7, 27)


@pytest.mark.parametrize("blend", [0.0, 0.2, 0.5, 0.75, 1.0])
def test_interpolate_condition_blends_the_two_it_falls_between(registry, blend):
    conds = [[(torch.randn(1, 77, 8), {"pooled_output": torch.randn(1, 4)})] for _ in range(3)]
    got = node(registry, "Interpolate Condition (mtb)", blend=blend, condition_1=conds[0], condition_2=conds[1],
               condition_3=conds[2])
    index = min(int(blend // 0.5), 1)  # three conditionings: two halves
    local = (blend - index * 0.5) / 0.5
    (a, a_options), (b, b_options) = conds[index][0], conds[index + 1][0]
    assert len(got) == 1
    assert torch.allclose(got[0][0], (1 - local) * a + local * b)
    assert torch.allclose(got[0][1]["pooled_output"], (1 - local) * a_options["pooled_output"]
                          + local * b_options["pooled_output"])


def test_interpolate_condition_refusals(registry):
    good = [(torch.zeros(1, 77, 8), {"pooled_output": torch.zeros(1, 4)})]
    for inputs, name in (({"condition_1": good}, "condition_2"),
                         ({"condition_1": good, "condition_2": [(torch.zeros(1, 77, 8), {})]}, "condition_2"),
                         ({"condition_1": good, "condition_2": [(torch.zeros(1, 154, 8), {"pooled_output": 0})]},
                          "condition_2")):
        with pytest.raises(NodeInputError) as caught:
            node(registry, "Interpolate Condition (mtb)", blend=0.5, **inputs)
        assert caught.value.input == name


def test_batch_sequence_plus_crossfade_frames(registry):
    a, b = torch.rand(4, 3, 5, 3), torch.rand(4, 3, 5, 3)
    got = node(registry, "Batch Sequence Plus (mtb)", transition="crossfade", overlap_frames=4, reverse=False,
               batches_1=a, batches_2=b)
    # a's first two frames; four transition frames from a's last two to b's first two (progress 0, 1/3,
    # 2/3, 1, each side's frame held once it runs out, as the pack indexes them); then b's last two
    want = [a[0], a[1], a[2], a[3] * (2 / 3) + b[0] / 3, a[3] / 3 + b[0] * (2 / 3), b[1], b[2], b[3]]
    assert torch.allclose(got, torch.stack(want))
    joined = node(registry, "Batch Sequence Plus (mtb)", transition="none", overlap_frames=4, reverse=True,
                  batches_1=a, batches_2=b)
    assert torch.equal(joined, torch.cat([b, a]))


@pytest.mark.parametrize("transition", ["wipe_left", "wipe_down", "slide_right", "band_wipe_h"])
def test_transition_frames_at_a_third(transition):
    from nodes.pack_nodes_mtb import transition_frame
    first, second = torch.rand(1, 20, 30, 3), torch.rand(1, 20, 30, 3)
    mask = torch.zeros(1, 20, 30, 3)
    if transition == "wipe_left":  # the left int(30 / 3) columns show the second frame
        mask[:, :, :10] = 1
    elif transition == "wipe_down":  # the rows from int(20 * 2 / 3) down
        mask[:, 13:] = 1
    elif transition == "band_wipe_h":  # ten bands of 3 columns; band i shows int(10 - 3 i) of them
        for i in range(10):
            start = 3 * i
            end = int(min(start + int(10 - 3 * i), 3 * (i + 1)))
            if end > start:
                mask[:, :, start:end] = 1
    if transition == "slide_right":
        want = first * (2 / 3) + torch.roll(second, shifts=10, dims=2) / 3
    else:
        want = first * (1 - mask) + second * mask
    assert torch.allclose(transition_frame(first, second, transition, 1 / 3), want)


def _write_frames(folder, names, size=(6, 4), alpha=False):
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    pictures = {}
    for i, name in enumerate(names):
        pixels = (np.random.default_rng(i).random((size[1], size[0], 4 if alpha else 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels, mode="RGBA" if alpha else "RGB").save(folder / name)
        pictures[name] = pixels
    return pictures


def test_load_image_sequence_one_frame_all_and_a_range(registry, tmp_folders):
    from graphflow.api import folders
    pictures = _write_frames(folders.inputs / "clip", ["0001.png", "0002.png", "0010.png", "notes.txt"][:3])
    image, mask, frame, total = node(registry, "Load Image Sequence (mtb)", path="clip/####.png", current_frame=2)
    assert np.array_equal(u8(image[0]), pictures["0002.png"]) and (frame, total) == (2, 1)
    assert torch.equal(mask, torch.zeros(1, 64, 64))  # the pack's placeholder for a picture without alpha
    images, _, frame, total = node(registry, "Load Image Sequence (mtb)", path="clip/####.png", current_frame=-1)
    assert (frame, total) == (-1, 3)
    assert [np.array_equal(u8(images[i]), pictures[n]) for i, n in enumerate(sorted(pictures))] == [True] * 3
    ranged = node(registry, "Load Image Sequence (mtb)", path="clip/####.png", current_frame=0, range="1-2")
    assert ranged[3] == 2  # frames numbered 1 to 2 where #### stands: 0001 and 0002
    with pytest.raises(NodeInputError) as caught:  # as the pack: the end must be below the count of frames
        node(registry, "Load Image Sequence (mtb)", path="clip/####.png", current_frame=0, range="2-10")
    assert caught.value.input == "range"
    by_place = node(registry, "Load Image Sequence (mtb)", path="clip", current_frame=0, range="1-2")
    assert by_place[3] == 2 and np.array_equal(u8(by_place[0][0]), pictures["0002.png"])
    starred = node(registry, "Load Image Sequence (mtb)", path="clip/00*.png", current_frame=-1)
    assert starred[3] == 3


def test_load_image_sequence_refuses_mixed_frames_from_their_headers_before_decoding(registry, tmp_folders,
                                                                                     monkeypatch):
    """Every frame's size is read from its header first: a small first frame no longer hides a
    big one from the memory check, and frames of other pixel counts are refused with nothing
    decoded (PIL's load watched: a PNG's EXIF read decodes the picture)."""
    from PIL import ImageFile
    from graphflow.api import folders
    _write_frames(folders.inputs / "mix", ["0001.png"], size=(2, 2))
    _write_frames(folders.inputs / "mix", ["0002.png"], size=(3000, 2000))
    decoded, real_load = [], ImageFile.ImageFile.load

    def watched_load(picture):
        decoded.append(picture.size)
        return real_load(picture)
    monkeypatch.setattr(ImageFile.ImageFile, "load", watched_load)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Load Image Sequence (mtb)", path="mix/####.png", current_frame=-1)
    assert caught.value.input == "path" and "3000×2000" in str(caught.value)
    assert decoded == []
    # frames differing only in alpha make one batch where the masks agree: the pack's 64 × 64
    # placeholder for a picture without alpha, a 64 × 64 picture's own alpha
    pictures = _write_frames(folders.inputs / "alpha", ["0001.png"], size=(64, 64))
    pictures.update(_write_frames(folders.inputs / "alpha", ["0002.png"], size=(64, 64), alpha=True))
    images, masks, _, total = node(registry, "Load Image Sequence (mtb)", path="alpha/####.png", current_frame=-1)
    assert total == 2 and np.array_equal(u8(images[1]), pictures["0002.png"][..., :3])
    assert torch.equal(masks[0], torch.zeros(64, 64))
    assert torch.allclose(masks[1], 1.0 - torch.from_numpy(pictures["0002.png"][..., 3] / 255.0).float())
    _write_frames(folders.inputs / "alpha6", ["0001.png"])
    _write_frames(folders.inputs / "alpha6", ["0002.png"], alpha=True)
    with pytest.raises(NodeInputError, match="differ in size") as caught:  # 64 × 64 zeros and a 6 × 4 mask
        node(registry, "Load Image Sequence (mtb)", path="alpha6/####.png", current_frame=-1)
    assert caught.value.input == "path"
    monkeypatch.undo()  # the real decoder back
    import graphflow.api
    from graphflow.api import Size
    checked, real_check = [], graphflow.api.check_run_memory

    def seen_check(name, what, images=None, **rest):
        checked.append(images)
        return real_check(name, what, images=images, **rest)
    monkeypatch.setattr(graphflow.api, "check_run_memory", seen_check)
    _write_frames(folders.inputs / "same", ["0001.png", "0002.png"], size=(6, 4))
    assert node(registry, "Load Image Sequence (mtb)", path="same/####.png", current_frame=-1)[3] == 2
    assert checked == [Size(2, 4, 6)]
    checked.clear()  # one frame too: its header sized for the memory check before it is decoded
    assert node(registry, "Load Image Sequence (mtb)", path="same/####.png", current_frame=2)[3] == 1
    assert checked == [Size(1, 4, 6)]


def test_load_image_sequence_range_matches_a_linked_frame_by_its_listed_name(registry, tmp_folders):
    """A frame that is a link inside the inputs is numbered by its own name, not its target's."""
    from graphflow.api import folders
    pictures = _write_frames(folders.inputs / "clip", ["0001.png", "0003.png"])
    target = _write_frames(folders.inputs, ["target.png"])["target.png"]
    (folders.inputs / "clip" / "0002.png").symlink_to(folders.inputs / "target.png")
    images, _, frame, total = node(registry, "Load Image Sequence (mtb)", path="clip/####.png", current_frame=0,
                                   range="1-2")
    assert (frame, total) == (-1, 2)
    assert np.array_equal(u8(images[0]), pictures["0001.png"]) and np.array_equal(u8(images[1]), target)


def test_load_image_sequence_stays_in_the_inputs(registry, tmp_folders):
    from graphflow.api import folders
    _write_frames(folders.inputs / "clip", ["0001.png"])
    for path, frame, name in (("../secret/####.png", -1, "path"), ("/etc/*.png", -1, "path"),
                              ("clip/##/#.png", -1, "path"), ("nothing/####.png", 3, "current_frame"),
                              ("clip/####.png", 0, "range")):
        with pytest.raises(NodeInputError) as caught:
            node(registry, "Load Image Sequence (mtb)", path=path, current_frame=frame,
                 range="x" if name == "range" else "")
        assert caught.value.input == name, path


def test_save_image_sequence_writes_the_frame(registry, tmp_folders):
    from PIL import Image
    from graphflow.api import folders
    image = torch.rand(1, 5, 7, 3)
    for _ in range(2):  # the second save replaces the first, as the pack's does
        node(registry, "Save Image Sequence (mtb)", images=image, filename_prefix="seq", current_frame=12)
    saved = sorted(p.name for p in (folders.outputs / "seq").iterdir())
    assert saved == ["seq_00012.png"]
    assert np.array_equal(np.asarray(Image.open(folders.outputs / "seq" / "seq_00012.png")), u8(image[0]))
    with pytest.raises(NodeInputError) as caught:
        node(registry, "Save Image Sequence (mtb)", images=torch.rand(2, 5, 7, 3), filename_prefix="seq",
             current_frame=0)
    assert caught.value.input == "images"
