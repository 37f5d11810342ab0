"""KJNodes' nodes in nodes/pack_nodes_kj_more.py (fade and gradient masks, RemapMaskRange,
ColorToMask): each against the pack's formula computed here, its errors by input name, and read
from a UI-format save and an API prompt with the pack's class names, exported back unchanged."""

import math

import numpy
import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.resource_limits import RunLimits
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import ui_graph, ui_node
from tests.test_pack_nodes_kj import refused, run


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry



CURVES = {"linear": lambda t: t, "ease_in": lambda t: t * t, "ease_out": lambda t: 1 - (1 - t) ** 2,
          "ease_in_out": lambda t: 3 * t * t - 2 * t ** 3}


def frame_levels(masks):
    """Each frame's one level, after checking the frame is flat."""
    assert torch.equal(masks, masks[:, :1, :1].expand_as(masks))
    return masks[:, 0, 0].tolist()


@pytest.mark.parametrize("curve", list(CURVES))
def test_create_fade_mask_levels_per_frame(registry, curve):
    ease = CURVES[curve]
    masks = call(registry, "CreateFadeMask", frames=7, width=20, height=16, interpolation=curve, start_level=0.9,
                 midpoint_level=0.3, end_level=0.1, midpoint_frame=0)
    assert masks.shape == (7, 16, 20)
    mid = 7 // 2  # midpoint_frame 0: half the frames
    want = [0.9 - ease(i / mid) * (0.9 - 0.3) if i <= mid else 0.3 - ease((i - mid) / (7 - mid)) * (0.3 - 0.1)
            for i in range(7)]
    assert frame_levels(masks) == pytest.approx(want, abs=1e-6)
    inverted = call(registry, "CreateFadeMask", invert=True, frames=7, width=20, height=16, interpolation=curve,
                    start_level=0.9, midpoint_level=0.3, end_level=0.1)
    assert torch.allclose(inverted, 1 - masks)
    late = call(registry, "CreateFadeMask", frames=4, width=16, height=16, midpoint_frame=2)
    assert frame_levels(late) == pytest.approx([1.0, 0.75, 0.5, 0.25])  # the last frame stops short of end_level


@pytest.mark.parametrize("curve", list(CURVES))
def test_create_fade_mask_advanced_runs_through_the_points(registry, curve):
    ease = CURVES[curve]
    masks = call(registry, "CreateFadeMaskAdvanced", points_string="0:(0.0),\n7:(1.0),\n15:(0.0)\n", frames=16,
                 width=8, height=4, interpolation=curve)
    want = [ease(i / 7) for i in range(8)] + [1 - ease((i - 7) / 8) for i in range(8, 16)]
    assert masks.shape == (16, 4, 8) and frame_levels(masks) == pytest.approx(want, abs=1e-6)


def test_create_fade_mask_advanced_unsorted_points_and_added_last_frame(registry):
    # unsorted; the last given point (2) is not the last frame, so (9, 0.2) is added; before 2 the line goes back
    masks = call(registry, "CreateFadeMaskAdvanced", points_string="5:(1.0), 2:(0.2)", frames=10, width=4, height=4,
                 invert=True)
    points = [(2, 0.2), (5, 1.0), (9, 0.2)]
    want = []
    for i in range(10):
        (f0, v0), (f1, v1) = points[:2] if i <= 5 else points[1:]
        want.append(1 - max(0.0, v0 - (i - f0) / (f1 - f0) * (v0 - v1)))  # clipped at 0 (the pack), then inverted
    assert frame_levels(masks) == pytest.approx(want, abs=1e-6)


def test_create_fade_mask_advanced_clips_levels_as_the_pack(registry):
    """The pack clips each frame's level with numpy.clip(level, 0, 255) (no scaling): negative levels,
    given or from the line run backwards before the first point, become 0; above 1 is kept."""
    for text, frames, line in (("0:(-0.5),\n3:(1.5)", 4, lambda i: -0.5 + i * 2 / 3),
                               ("2:(0.0),\n3:(1.0)", 4, lambda i: i - 2.0)):
        masks = call(registry, "CreateFadeMaskAdvanced", points_string=text, frames=frames, width=2, height=1)
        want = [float(numpy.clip(numpy.float32(line(i)), 0, 255)) for i in range(frames)]
        assert frame_levels(masks) == pytest.approx(want, abs=1e-6)
    assert frame_levels(call(registry, "CreateFadeMaskAdvanced", points_string="0:(-1.0), 1:(300.0)", frames=2,
                             width=1, height=1)) == [0.0, 255.0]


@pytest.mark.parametrize("text, message", [("0:0.5, 7:(1.0)", "expected points like"), ("zero:(1.0)", "expected"),
                                           ("15:(1.0)", "at least two points"), ("3:(1.0), 3:(0.0)", "different")])
def test_create_fade_mask_advanced_refuses_bad_points(registry, text, message):
    with pytest.raises(NodeInputError, match=message) as caught:
        call(registry, "CreateFadeMaskAdvanced", points_string=text, frames=16, width=4, height=4)
    assert caught.value.input == "points_string"


def test_create_gradient_mask(registry):
    masks = call(registry, "CreateGradientMask", frames=4, width=16, height=16)
    ramp = torch.linspace(1, 0, 16)
    assert masks.shape == (4, 16, 16)
    for i in range(4):
        assert torch.allclose(masks[i], (ramp - i / 4).expand(16, 16))
    assert masks.min() < 0  # the pack does not clamp
    assert torch.allclose(call(registry, "CreateGradientMask", frames=4, width=16, height=16, invert=True), 1 - masks)
    with pytest.raises(NodeInputError, match="at least 1") as caught:
        call(registry, "CreateGradientMask", frames=0)
    assert caught.value.input == "frames"


def test_remap_mask_range(registry):
    mask = torch.rand(2, 5, 6, generator=torch.Generator().manual_seed(3)) * 0.5
    out = call(registry, "RemapMaskRange", mask=mask, min=0.2, max=0.9)
    assert torch.allclose(out, (mask / mask.max() * 0.7 + 0.2).clamp(0, 1))
    assert torch.equal(call(registry, "RemapMaskRange", mask=torch.zeros(1, 2, 2), min=-1.0, max=2.0),
                       torch.zeros(1, 2, 2))  # no division by a zero peak; -1 clamps to 0
    assert torch.allclose(call(registry, "RemapMaskRange", mask=mask, min=-0.5, max=3.0),
                          (mask / mask.max() * 3.5 - 0.5).clamp(0, 1))


def test_color_to_mask_by_distance(registry):
    g = torch.Generator().manual_seed(5)
    images = torch.rand(5, 6, 7, 3, generator=g)
    images[:, 0, 0] = torch.tensor([200, 30, 90]) / 255
    color = torch.tensor([200.0, 30.0, 90.0])
    for threshold in (0, 40, 120):
        want = ((images * 255 - color).pow(2).sum(-1).sqrt() <= threshold).float()
        out = call(registry, "ColorToMask", images=images, red=200, green=30, blue=90, threshold=threshold, per_batch=2)
        assert torch.equal(out, want) and out[:, 0, 0].eq(1).all()
        inverted = call(registry, "ColorToMask", images=images, invert=True, red=200, green=30, blue=90,
                        threshold=threshold)
        assert torch.equal(inverted, 1 - want)
    with pytest.raises(NodeInputError) as caught:  # one channel: would be compared with all three colours
        call(registry, "ColorToMask", images=images[..., :1])
    assert caught.value.input == "images"


def test_the_packs_ui_save_runs_and_exports_back(registry):
    nodes = [ui_node(1, "CreateFadeMaskAdvanced", ["0:(0.0),\n3:(1.0)\n", False, 4, 8, 8, "ease_in"],
                     outputs=[("MASK", "MASK", [1])]),
             ui_node(2, "RemapMaskRange", [0.5, 1.0], inputs=[("mask", "MASK", 1, False)],
                     outputs=[("mask", "MASK", [])]),
             ui_node(3, "CreateFadeMask", [True, 3, 16, 16, "linear", 1.0, 0.5, 0.0, 0],
                     outputs=[("MASK", "MASK", [])]),
             ui_node(4, "CreateGradientMask", [False, 2, 16, 16], outputs=[("MASK", "MASK", [])])]
    workflow, values = run(registry, ui_graph(nodes, [[1, 1, 0, 2, 0, "MASK"]]), ["2", "3", "4"])
    fade = torch.tensor([(i / 3) ** 2 for i in range(4)])
    assert torch.allclose(values["2"][0][:, 0, 0], fade / fade.max() * 0.5 + 0.5)
    assert frame_levels(values["3"][0]) == pytest.approx([0.0, 0.5, 0.75])  # 1 - (1, 0.5, 0.25)
    assert values["4"][0].shape == (2, 16, 16)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[1] == ["0:(0.0),\n3:(1.0)\n", False, 4, 8, 8, "ease_in"]
    assert saved[3] == [True, 3, 16, 16, "linear", 1.0, 0.5, 0.0, 0] and saved[2] == [0.5, 1.0]


def test_the_packs_api_prompt_runs_and_exports_back(registry):
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": 1,
                                                              "color": 0xC81E5A}},
              "2": {"class_type": "ColorToMask", "inputs": {"images": ["1", 0], "invert": False, "red": 200,
                                                            "green": 30, "blue": 90, "threshold": 2,
                                                            "per_batch": 16}},
              "3": {"class_type": "CreateGradientMask", "inputs": {"frames": 3, "width": 16, "height": 16}}}
    workflow, values = run(registry, prompt, ["2", "3"])
    assert torch.equal(values["2"][0], torch.ones(1, 4, 8))
    assert values["3"][0].shape == (3, 16, 16)
    again = export_api(workflow, registry)
    assert again["2"]["class_type"] == "ColorToMask" and again["2"]["inputs"]["threshold"] == 2
    assert again["2"]["inputs"]["images"] == ["1", 0] and again["3"]["inputs"]["frames"] == 3


def test_huge_generated_masks_are_refused_before_running(registry):
    for node in ({"type": "CreateFadeMask", "inputs": {"frames": 10000, "width": 4096, "height": 4096}},
                 {"type": "CreateFadeMaskAdvanced", "inputs": {"frames": 10000, "width": 4096, "height": 4096}},
                 {"type": "CreateGradientMask", "inputs": {"frames": 255, "width": 4096, "height": 4096}}):
        assert "1" in refused(registry, [node], RunLimits(max_batch=64)), node["type"]
        small = {"type": node["type"], "inputs": {"frames": 4, "width": 64, "height": 64}}
        assert refused(registry, [small], RunLimits(max_batch=64)) == set()


def test_join_strings_and_something_to_string(registry):
    assert call(registry, "JoinStrings", delimiter=", ", string1="a cat", string2="a hat") == "a cat, a hat"
    assert call(registry, "JoinStrings", delimiter="-", string1="alone") == "alone-"
    assert call(registry, "SomethingToString", input=0.25, prefix="cfg ", suffix="!") == "cfg 0.25!"
    assert call(registry, "SomethingToString", input=True) == "True"
    assert call(registry, "SomethingToString", input=[1, 2.5, "x"]) == ", ".join(str(v) for v in [1, 2.5, "x"])
    with pytest.raises(NodeInputError, match="expected a number") as caught:
        call(registry, "SomethingToString", input="text")
    assert caught.value.input == "input"


def test_empty_latent_image_presets_is_empty_latent_image_of_the_preset(registry):
    latent, width, height = call(registry, "EmptyLatentImagePresets", dimensions="1216 x 832 (1.46:1)", batch_size=2)
    core = call(registry, "EmptyLatent", width=1216, height=832, batch_size=2)
    assert (width, height) == (1216, 832) and torch.equal(latent["samples"], core["samples"])
    latent, width, height = call(registry, "EmptyLatentImagePresets", dimensions="1536 x 640 (2.4:1)", invert=True)
    assert (width, height) == (640, 1536) and latent["samples"].shape == (1, 4, 1536 // 8, 640 // 8)


def test_text_nodes_from_the_packs_ui_save_and_api_prompt(registry):
    nodes = [ui_node(1, "INTConstant", [7], outputs=[("value", "INT", [1])]),
             ui_node(2, "SomethingToString", ["steps: ", ""], inputs=[("input", "*", 1, False)],
                     outputs=[("STRING", "STRING", [2])]),
             ui_node(3, "JoinStrings", [" | "], inputs=[("string1", "STRING", 2, False)],
                     outputs=[("STRING", "STRING", [])]),
             ui_node(4, "EmptyLatentImagePresets", ["768 x 512 (1.5:1)", True, 1],
                     outputs=[("Latent", "LATENT", []), ("Width", "INT", []), ("Height", "INT", [])])]
    links = [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "STRING"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["3", "4"])
    assert values["3"][0] == "steps: 7 | " and values["4"][1:] == (512, 768)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2] == ["steps: ", ""] and saved[3] == [" | "] and saved[4] == ["768 x 512 (1.5:1)", True, 1]
    prompt = {"1": {"class_type": "FloatConstant", "inputs": {"value": 1.5}},
              "2": {"class_type": "SomethingToString", "inputs": {"input": ["1", 0], "suffix": "x"}},
              "3": {"class_type": "JoinStrings", "inputs": {"delimiter": "+", "string1": "a", "string2": ["2", 0]}}}
    workflow, values = run(registry, prompt, ["3"])
    assert values["3"][0] == "a+1.5x"
    again = export_api(workflow, registry)
    assert again["3"]["inputs"] == {"delimiter": "+", "string1": "a", "string2": ["2", 0]}
    assert again["2"]["inputs"]["input"] == ["1", 0] and again["2"]["class_type"] == "SomethingToString"


def pack_curve(t, curve):
    """The pack's cross-fade easings, written out from its formulas."""
    if curve == "bounce":
        return (1 - (1 - 2 * t) ** 2) * 0.5 if t < 0.5 else ((t - 0.5) * 2) ** 2 * 0.5 + 0.5
    if curve == "elastic":
        return math.sin(13 * math.pi / 2 * t) * 2 ** (10 * (t - 1))
    if curve == "glitchy":
        return t + 0.1 * math.sin(40 * t)
    if curve == "exponential_ease_out":
        return 1 - (1 - t) ** 4
    return CURVES[curve](t)


@pytest.mark.parametrize("curve", ["linear", "ease_in_out", "bounce", "elastic", "glitchy", "exponential_ease_out"])
def test_cross_fade_images_frames(registry, curve):
    g = torch.Generator().manual_seed(11)
    first, second = torch.rand(6, 4, 5, 3, generator=g), torch.rand(5, 4, 5, 3, generator=g)
    out = call(registry, "CrossFadeImages", images_1=first, images_2=second, interpolation=curve,
               transition_start_index=-3, transitioning_frames=4, start_level=0.2, end_level=0.9)
    count = 3  # cut to images_1's frames from index 3
    levels = [0.2 + (0.9 - 0.2) * i / (count - 1) for i in range(count)]
    faded = [(1 - pack_curve(a, curve)) * first[3 + i] + pack_curve(a, curve) * second[i] for i, a in enumerate(levels)]
    want = torch.cat([first[:3], torch.stack(faded), second[count:]])
    assert out.shape == want.shape and torch.allclose(out, want, atol=1e-5)


def test_cross_fade_images_errors(registry):
    images = torch.rand(3, 4, 4, 3)
    for inputs, name in [({"transition_start_index": 3}, "transition_start_index"),
                         ({"transition_start_index": -4}, "transition_start_index"),
                         ({"transitioning_frames": 0}, "transitioning_frames")]:
        with pytest.raises(NodeInputError) as caught:
            call(registry, "CrossFadeImages", images_1=images, images_2=images, **inputs)
        assert caught.value.input == name
    with pytest.raises(NodeInputError, match="images_1's size") as caught:
        call(registry, "CrossFadeImages", images_1=images, images_2=torch.rand(3, 5, 4, 3))
    assert caught.value.input == "images_2"


def test_cross_fade_images_from_the_packs_ui_save(registry):
    nodes = [ui_node(1, "EmptyImage", [8, 8, 3, 0], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "EmptyImage", [8, 8, 3, 0xFFFFFF], outputs=[("IMAGE", "IMAGE", [2])]),
             ui_node(3, "CrossFadeImages", ["ease_in", 1, 2, 0.0, 1.0],
                     inputs=[("images_1", "IMAGE", 1, False), ("images_2", "IMAGE", 2, False)],
                     outputs=[("IMAGE", "IMAGE", [])])]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "IMAGE"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["3"])
    # black frame 0, then black -> white eased over 2 frames (0, then 1), then white's third frame
    assert values["3"][0][:, 0, 0, 0].tolist() == pytest.approx([0.0, 0.0, 1.0, 1.0])
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[3] == ["ease_in", 1, 2, 0.0, 1.0]


def test_normalize_remap_split_and_merge_channels(registry):
    g = torch.Generator().manual_seed(2)
    rgba = torch.rand(2, 3, 4, 4, generator=g)
    assert torch.allclose(call(registry, "ImageNormalize_Neg1_To_1", images=rgba), rgba * 2 - 1)
    assert torch.allclose(call(registry, "RemapImageRange", image=rgba, min=-0.5, max=2.0, clamp=False),
                          -0.5 + rgba * 2.5)
    assert torch.allclose(call(registry, "RemapImageRange", image=rgba, min=-0.5, max=2.0),
                          (-0.5 + rgba * 2.5).clamp(0, 1))
    red, green, blue, mask = call(registry, "SplitImageChannels", image=rgba)
    for c, grey in enumerate((red, green, blue)):
        assert torch.equal(grey, rgba[..., c:c + 1].repeat(1, 1, 1, 3))
    assert torch.equal(mask, rgba[..., 3])
    assert torch.equal(call(registry, "MergeImageChannels", red=red, green=green, blue=blue, alpha=mask), rgba)
    assert torch.equal(call(registry, "MergeImageChannels", red=rgba, green=rgba, blue=rgba), rgba[..., :3])
    *_, no_alpha = call(registry, "SplitImageChannels", image=rgba[..., :3])
    assert torch.equal(no_alpha, torch.zeros(2, 3, 4))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "MergeImageChannels", red=red, green=green[:1], blue=blue)
    assert caught.value.input == "green"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "MergeImageChannels", red=red, green=green, blue=blue, alpha=mask[:, :2])
    assert caught.value.input == "alpha"
    for name in ("red", "green", "blue"):  # a 1-channel image has no green or blue to take
        with pytest.raises(NodeInputError) as caught:
            call(registry, "MergeImageChannels", **{"red": rgba, "green": rgba, "blue": rgba, name: rgba[..., :1]})
        assert caught.value.input == name


def test_channel_nodes_from_an_api_prompt(registry):
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1,
                                                              "color": 0x336699}},
              "2": {"class_type": "SplitImageChannels", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "MergeImageChannels", "inputs": {"red": ["2", 2], "green": ["2", 1],
                                                                   "blue": ["2", 0]}},
              "4": {"class_type": "ImageNormalize_Neg1_To_1", "inputs": {"images": ["3", 0]}}}
    workflow, values = run(registry, prompt, ["4"])
    # red and blue swapped: 0x99, 0x66, 0x33, then to -1..1
    want = torch.tensor([0x99, 0x66, 0x33]) / 255 * 2 - 1
    assert torch.allclose(values["4"][0][0, 0, 0], want, atol=1e-6)
    again = export_api(workflow, registry)
    assert again["3"]["inputs"] == {"red": ["2", 2], "green": ["2", 1], "blue": ["2", 0]}
    assert again["4"]["class_type"] == "ImageNormalize_Neg1_To_1"


def conditioning(seed):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(1, 3, 8, generator=g), {"pooled_output": torch.rand(1, 8, generator=g)})]


@pytest.mark.parametrize("count", [2, 3, 4, 5])
def test_conditioning_set_mask_and_combine_is_set_mask_then_combine(registry, count):
    name = "ConditioningSetMaskAndCombine" + ("" if count == 2 else str(count))
    inputs, want_pos, want_neg = {"set_cond_area": "mask bounds"}, [], []
    for i in range(1, count + 1):
        pos, neg, mask = conditioning(10 * i), conditioning(10 * i + 1), torch.rand(8, 8)
        strength = 0.25 * i
        inputs.update({f"positive_{i}": pos, f"negative_{i}": neg, f"mask_{i}": mask, f"mask_{i}_strength": strength})
        for side, want in ((pos, want_pos), (neg, want_neg)):
            masked = call(registry, "ConditioningSetMask", conditioning=side, mask=mask, strength=strength,
                          set_cond_area="mask bounds")
            want[:] = call(registry, "ConditioningCombine", conditioning_1=list(want), conditioning_2=masked)
    positive, negative = call(registry, name, **inputs)
    for got, want in ((positive, want_pos), (negative, want_neg)):
        assert len(got) == len(want) == count
        for (t, options), (wt, woptions) in zip(got, want):
            assert torch.equal(t, wt) and options.keys() == woptions.keys()
            assert torch.equal(options["mask"], woptions["mask"]) and options["mask"].shape == (1, 8, 8)
            assert options["mask_strength"] == woptions["mask_strength"] and options["set_area_to_bounds"] is True


def test_conditioning_set_mask_and_combine_errors_and_ui_save(registry):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ConditioningSetMaskAndCombine", positive_1=conditioning(1), negative_1=conditioning(2),
             positive_2=conditioning(3), negative_2=conditioning(4), mask_1=torch.rand(8, 8),
             mask_2=torch.rand(1, 1, 8, 8))
    assert caught.value.input == "mask_2"
    nodes = [ui_node(1, "ConditioningSetMaskAndCombine3", [0.5, 1.0, 2.0, "mask bounds"],
                     outputs=[("combined_positive", "CONDITIONING", []), ("combined_negative", "CONDITIONING", [])])]
    workflow = parse_workflow(ui_graph(nodes), registry)
    assert {k: workflow.nodes["1"].inputs[k] for k in ("mask_1_strength", "mask_3_strength", "set_cond_area")} == \
        {"mask_1_strength": 0.5, "mask_3_strength": 2.0, "set_cond_area": "mask bounds"}
    assert export_ui(workflow, registry)["nodes"][0]["widgets_values"] == [0.5, 1.0, 2.0, "mask bounds"]


def pack_crop_boxes(masks, width, height, mult, alpha):
    """The pack's BatchCropFromMask boxes, from numpy: extents, the box size, the smoothed centres."""
    pixels = [numpy.nonzero(numpy.clip(255.0 * m.numpy(), 0, 255).astype(numpy.uint8)) for m in masks]
    box_w = round(round(alpha * max(p[1].max() - p[1].min() for p in pixels)) * mult)
    box_h = round(round(alpha * max(p[0].max() - p[0].min() for p in pixels)) * mult)
    boxes, center = [], None
    for i, (ys, xs) in enumerate(pixels):
        here = (round(numpy.mean(xs)), round(numpy.mean(ys)))
        center = here if i == 0 else (round(alpha * here[0] + (1 - alpha) * center[0]),
                                      round(alpha * here[1] + (1 - alpha) * center[1]))
        x0, x1 = max(0, center[0] - round(box_w / 2)), min(width, center[0] + round(box_w / 2))
        y0, y1 = max(0, center[1] - round(box_h / 2)), min(height, center[1] + round(box_h / 2))
        boxes.append((x0, y0, x1 - x0, y1 - y0))
    return boxes, box_w, box_h


def test_batch_crop_from_mask_boxes_and_crops(registry):
    from torchvision.transforms import CenterCrop, Resize
    g = torch.Generator().manual_seed(4)
    images = torch.rand(3, 40, 50, 3, generator=g)
    masks = torch.zeros(3, 40, 50)
    masks[0, 5:20, 6:30] = 1
    masks[1, 10:31, 20:41] = 0.5
    masks[2, 25:39, 30:49] = 1
    masks[2, 0, 0] = 0.003  # under 1/255: not counted, as the pack's 8-bit mask drops it
    for mult, alpha in ((1.0, 1.0), (1.5, 0.5), (0.8, 0.3)):
        originals, crops, boxes, width, height = call(registry, "BatchCropFromMask", original_images=images,
                                                      masks=masks, crop_size_mult=mult, bbox_smooth_alpha=alpha)
        want_boxes, want_w, want_h = pack_crop_boxes(masks, 50, 40, mult, alpha)
        assert originals is images and boxes == want_boxes and (width, height) == (want_w, want_h)
        for crop, image, (x, y, w, h) in zip(crops, images, boxes):
            piece = image[y:y + h, x:x + w].permute(2, 0, 1)
            new_h = min(h, want_h)
            want = CenterCrop((want_h, want_w))(Resize((new_h, round(new_h * want_w / want_h)), antialias=True)(piece))
            assert torch.allclose(crop, want.permute(1, 2, 0), atol=1e-5)
    with pytest.raises(NodeInputError, match="empty") as caught:
        call(registry, "BatchCropFromMask", original_images=images, masks=torch.zeros(3, 40, 50))
    assert caught.value.input == "masks"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "BatchCropFromMask", original_images=images, masks=masks, bbox_smooth_alpha=0.0)
    assert caught.value.input == "bbox_smooth_alpha"


def test_batch_crop_from_mask_refuses_what_the_pack_crashes_on(registry):
    images = torch.rand(1, 64, 64, 3)
    cases = []
    small = torch.zeros(1, 64, 64)
    small[0, 10:13, 10:13] = 1  # extent 2, x 0.5: a 1-pixel box, whose half (round(0.5) = 0) leaves no crop
    cases.append((small, 0.5, "crop_size_mult"))
    bigger = torch.zeros(1, 128, 128)
    bigger[0, 100:110, 100:110] = 1  # its centre lies outside the 64x64 images
    cases.append((bigger, 1.0, "masks"))
    line = torch.zeros(1, 64, 64)
    line[0, 5, 5] = line[0, 5, 20] = 1  # one row: no height to size a box by, whatever crop_size_mult
    cases.append((line, 10.0, "masks"))
    for masks, mult, name in cases:
        with pytest.raises(NodeInputError) as caught:
            call(registry, "BatchCropFromMask", original_images=images, masks=masks, crop_size_mult=mult,
                 bbox_smooth_alpha=1.0)
        assert caught.value.input == name, (name, caught.value)
    _, crops, boxes, width, height = call(registry, "BatchCropFromMask", original_images=images, masks=small,
                                          crop_size_mult=1.0, bbox_smooth_alpha=1.0)
    assert crops.shape == (1, 2, 2, 3) and (width, height) == (2, 2)


CROP_GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 256, "height": 256, "batch_size": 1, "color": 0}},
              "2": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 256, "height": 256}},
              "3": {"class_type": "BatchCropFromMask", "inputs": {"original_images": ["1", 0], "masks": ["2", 0],
                                                                  "crop_size_mult": 1.0, "bbox_smooth_alpha": 1.0}},
              "4": {"class_type": "BatchUncrop", "inputs": {"original_images": ["1", 0], "cropped_images": ["3", 1],
                                                            "bboxes": ["3", 2], "border_blending": 0.25,
                                                            "crop_rescale": 1.0, "border_top": True,
                                                            "border_bottom": True, "border_left": True,
                                                            "border_right": True}}}


@pytest.mark.parametrize("node, input_name, size", [("3", "crop_size_mult", "2550x2550"),
                                                     ("4", "crop_rescale", "2560x2560")])
def test_batch_crop_and_uncrop_sizes_beyond_the_memory_are_refused_before_running(registry, node, input_name, size):
    """A full 256x256 mask (extent 255) at crop_size_mult 10 makes a 2550x2550 crop; crop_rescale 10
    makes its 256x256 box (the crop's box cut at the image) a 2560x2560 patch (78 MB each as a
    float32 image): over a 64 MB budget, each is refused naming its input before it is made; at 1.0
    the same graph runs."""
    import copy
    limits = RunLimits(ram_bytes=2**26, device_bytes=2**26)
    graph = copy.deepcopy(CROP_GRAPH)
    graph[node]["inputs"][input_name] = 10.0
    result = Executor(registry, limits=limits).run(parse_workflow(graph, registry), outputs=["4"])
    error = result.error or {}
    assert not result.ok and error.get("node_id") == node and error.get("input") == input_name, result.error
    assert "memory" in str(error.get("message")) and size in str(error.get("message")), result.error
    assert Executor(registry, limits=limits).run(parse_workflow(CROP_GRAPH, registry), outputs=["4"]).ok


def test_batch_uncrop_pastes_the_crop_back(registry):
    from PIL import Image
    g = torch.Generator().manual_seed(8)
    images = (torch.rand(2, 30, 40, 3, generator=g) * 255).round() / 255
    crops = (torch.rand(2, 10, 12, 3, generator=g) * 255).round() / 255
    boxes = [(5, 4, 24, 20), (30, 20, 24, 20)]  # the second runs past the edges: cut there
    out = call(registry, "BatchUncrop", original_images=images, cropped_images=crops, bboxes=boxes + [(0, 0, 1, 1)],
               border_blending=0.0)
    for i, (x, y, w, h) in enumerate(boxes):
        w, h = min(40 - x, w), min(30 - y, h)
        crop = Image.fromarray((crops[i].numpy() * 255).round().astype(numpy.uint8)).resize((w, h))
        want = images[i].clone()
        # border_blending 0: a 0-wide border still blacks out the block's first row and column (PIL
        # rectangles include both ends), so those keep the original
        want[y + 1:y + h, x + 1:x + w] = torch.from_numpy(numpy.asarray(crop)[1:, 1:].astype(numpy.float32) / 255)
        assert torch.allclose(out[i], want, atol=1e-6)
    blended = call(registry, "BatchUncrop", original_images=images, cropped_images=crops, bboxes=boxes)
    inside = call(registry, "BatchUncrop", original_images=images, cropped_images=crops, bboxes=boxes,
                  border_blending=0.0)
    assert torch.equal(blended[0, :4], images[0, :4]) and torch.equal(blended[0, 14, 17], inside[0, 14, 17])
    assert not torch.equal(blended[0, 5, 6:28], inside[0, 5, 6:28])  # near the border, blended
    with pytest.raises(NodeInputError) as caught:
        call(registry, "BatchUncrop", original_images=images, cropped_images=crops, bboxes=boxes[:1])
    assert caught.value.input == "bboxes"
    for bad in ([(5, 4, 24), (30, 20, 24, 20)], [(70, 70, 8, 8), (30, 20, 24, 20)],  # 3 numbers; outside
                [("a", 0, 1, 1), (30, 20, 24, 20)], [(5, 4, float("nan"), 20), (30, 20, 24, 20)]):  # not numbers
        with pytest.raises(NodeInputError) as caught:
            call(registry, "BatchUncrop", original_images=images, cropped_images=crops, bboxes=bad)
        assert caught.value.input == "bboxes"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "BatchUncrop", original_images=images, cropped_images=crops[:1], bboxes=boxes)
    assert caught.value.input == "cropped_images"
    # 2 channels make no picture (the pack's tensor2pil): refused by name, as Batch Uncrop Advanced does
    for name in ("original_images", "cropped_images"):
        two = {"original_images": images, "cropped_images": crops}
        two[name] = two[name][..., :2]
        with pytest.raises(NodeInputError) as caught:
            call(registry, "BatchUncrop", bboxes=boxes, **two)
        assert caught.value.input == name and "2 channels" in str(caught.value)


def test_batch_crop_and_uncrop_from_the_packs_ui_save(registry):
    nodes = [ui_node(1, "EmptyImage", [32, 24, 2, 0x204060], outputs=[("IMAGE", "IMAGE", [1, 3])]),
             ui_node(2, "CreateShapeMask", ["square", 2, 12, 10, 0, 32, 24, 10, 8],
                     outputs=[("mask", "MASK", [2]), ("mask_inverted", "MASK", [])]),
             ui_node(3, "BatchCropFromMask", [1.0, 1.0],
                     inputs=[("original_images", "IMAGE", 1, False), ("masks", "MASK", 2, False)],
                     outputs=[("original_images", "IMAGE", []), ("cropped_images", "IMAGE", [4]),
                              ("bboxes", "BBOX", [5]), ("width", "INT", []), ("height", "INT", [])]),
             ui_node(4, "BatchUncrop", [0.25, 1.0, True, True, True, True],
                     inputs=[("original_images", "IMAGE", 3, False), ("cropped_images", "IMAGE", 4, False),
                             ("bboxes", "BBOX", 5, False)], outputs=[("IMAGE", "IMAGE", [])])]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "MASK"], [3, 1, 0, 4, 0, "IMAGE"],
             [4, 3, 1, 4, 1, "IMAGE"], [5, 3, 2, 4, 2, "BBOX"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["3", "4"])
    assert values["3"][2] == [(7, 6, 10, 8)] * 2 and values["3"][3:] == (10, 8)  # 11x9 square: extent 10x8
    assert torch.allclose(values["4"][0], values["3"][0], atol=1 / 255)  # one colour: pasting back changes nothing
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[3] == [1.0, 1.0] and saved[4] == [0.25, 1.0, True, True, True, True]


def test_custom_sigmas(registry):
    text = "14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029"
    values = numpy.array([float(v) for v in text.split(", ")], dtype=numpy.float32)
    same = call(registry, "CustomSigmas", sigmas_string=text, interpolate_to_steps=10)
    assert same.dtype == torch.float32 and torch.equal(same[:-1], torch.from_numpy(values[:-1])) and same[-1] == 0
    resampled = call(registry, "CustomSigmas", sigmas_string=text, interpolate_to_steps=20)
    logs = numpy.log(values[::-1])
    want = numpy.exp(numpy.interp(numpy.linspace(0, 1, 21), numpy.linspace(0, 1, 11), logs))[::-1].copy()
    want[-1] = 0
    assert resampled.shape == (21,) and torch.allclose(resampled, torch.tensor(want, dtype=torch.float32))
    assert resampled[0] == pytest.approx(14.615, rel=1e-6) and resampled[2] == pytest.approx(6.475, rel=1e-6)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CustomSigmas", sigmas_string="14.6,6.4")
    assert caught.value.input == "sigmas_string"
    with pytest.raises(NodeInputError, match="above 0") as caught:
        call(registry, "CustomSigmas", sigmas_string="14.6, 0.0", interpolate_to_steps=4)
    assert caught.value.input == "sigmas_string"
    for text, steps in (("nan, 1.0", 3), ("inf, 1.0, 0.5", 2), ("1e400, 1.0", 3), ("3.0, -inf", 1)):
        with pytest.raises(NodeInputError, match="finite") as caught:  # float() takes them all
            call(registry, "CustomSigmas", sigmas_string=text, interpolate_to_steps=steps)
        assert caught.value.input == "sigmas_string"
    prompt = {"1": {"class_type": "CustomSigmas",
                    "inputs": {"sigmas_string": "3.0, 1.0, 0.5", "interpolate_to_steps": 2}}}
    workflow, values = run(registry, prompt, ["1"])
    assert values["1"][0].tolist() == [3.0, 1.0, 0.0]
    assert export_api(workflow, registry)["1"]["inputs"] == prompt["1"]["inputs"]
