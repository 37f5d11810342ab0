"""filliptm's ComfyUI_Fill-Nodes, round 3 (nodes/pack_nodes_fill3.py): each node against an independent
reference (the pack's blend formulas written out pixel by pixel; its placement arithmetic worked by hand;
scipy's correlation for the feathering); inputs and defaults against the pack's INPUT_TYPES; errors by
input name; an API prompt under the pack's class names run through the executor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphflow.comfy_format import custom_pack, export_api
from graphflow.registry import Registry
from graphflow.server.comfyui_object_info import object_info
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph
from tests.test_pack_nodes_fill import _images, _refused


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


# -- inputs as the pack declares them --------------------------------------------------------------

BLEND_MODES = ["normal", "multiply", "screen", "overlay", "soft_light", "hard_light", "darken", "lighten",
               "difference"]
# class: [(input, type, default, min, max, step)] in INPUT_TYPES order (None where the pack gives none)
PACK_INPUTS = {
    "FL_PasteByMask": [("image_base", "IMAGE", None, None, None, None), ("image_to_paste", "IMAGE", None, None, None, None),
                       ("mask", "IMAGE", None, None, None, None), ("resize_behavior", "COMBO", "resize", None, None, None),
                       ("blend_mode", "COMBO", "normal", None, None, None), ("feather_amount", "INT", 0, 0, 100, 1),
                       ("mask_mapping_optional", "MASK_MAPPING", None, None, None, None)],
}
PACK_OUTPUTS = {}
PACK_OPTIONAL = {"FL_PasteByMask": 6}
PACK_CHOICES = {("FL_PasteByMask", "resize_behavior"): ["resize", "keep_ratio_fill", "keep_ratio_fit", "source_size",
                                                        "source_size_unmasked"],
                ("FL_PasteByMask", "blend_mode"): BLEND_MODES}


def test_inputs_and_outputs_are_the_packs(registry):
    info = object_info(registry)
    for name, inputs in PACK_INPUTS.items():
        entry = info[name]
        order = entry["input_order"].get("required", []) + entry["input_order"].get("optional", [])
        assert order == [i[0] for i in inputs], name
        declared = {**entry["input"].get("required", {}), **entry["input"].get("optional", {})}
        for input_name, kind, default, low, high, step in inputs:
            spec = declared[input_name]
            assert (spec[0] if isinstance(spec[0], str) else "COMBO") == kind, (name, input_name)
            if kind == "COMBO" and (name, input_name) in PACK_CHOICES:
                assert spec[0] == PACK_CHOICES[name, input_name], (name, input_name)
            options = spec[1] if len(spec) > 1 else {}
            for key, want in (("default", default), ("min", low), ("max", high), ("step", step)):
                if want is not None:
                    assert options.get(key) == want, (name, input_name, key)
        assert entry["output"] == PACK_OUTPUTS.get(name, ["IMAGE"]), name
        assert entry["category"].startswith("🏵️Fill Nodes/"), name
        if name in PACK_OPTIONAL:
            assert entry["input_order"].get("required", []) == [i[0] for i in inputs[:PACK_OPTIONAL[name]]], name
    assert info["FL_PasteByMask"]["category"] == "🏵️Fill Nodes/utility"


def test_the_packs_classes_are_ours_and_its_others_are_named(registry):
    import nodes.pack_nodes_fill3 as fill3
    from graphflow.comfy_format import FILL_LATER, FILL_LEFT_OUT
    ours = [cls for cls in registry if cls.__module__ == fill3.__name__]
    assert len(ours) == len(PACK_INPUTS)
    for cls in ours:
        name = cls.comfy.class_types[0]
        assert name in PACK_INPUTS and registry.comfy_node(name) is cls, name
        assert custom_pack(name) == "ComfyUI_Fill-Nodes", name
    assert not set(PACK_INPUTS) & (set(FILL_LATER) | set(FILL_LEFT_OUT))
    assert not set(FILL_LATER) & set(FILL_LEFT_OUT)


# -- FL_PasteByMask ----------------------------------------------------------------------------------

def _soft_light(top, base):
    if top <= 0.5:
        return base - (1 - 2 * top) * base * (1 - base)
    return base + (2 * top - 1) * (math.sqrt(base) - base)


# the usual blend formulas, top over base, one value at a time
FORMULAS = {
    "normal": lambda top, base: top,
    "multiply": lambda top, base: top * base,
    "screen": lambda top, base: 1 - (1 - top) * (1 - base),
    "overlay": lambda top, base: 2 * base * top if base <= 0.5 else 1 - 2 * (1 - top) * (1 - base),
    "soft_light": _soft_light,
    "hard_light": lambda top, base: 2 * top * base if top <= 0.5 else 1 - 2 * (1 - top) * (1 - base),
    "darken": min,
    "lighten": max,
    "difference": lambda top, base: abs(top - base),
}


@pytest.mark.parametrize("mode", BLEND_MODES)
def test_paste_by_mask_blends_by_the_modes_formula_over_the_mask(registry, mode):
    base, paste = _images(1, 1, 10, 12), _images(2, 1, 4, 5)
    mask = torch.zeros(1, 10, 12, 1)
    mask[0, 3:7, 2:7, 0] = torch.linspace(0.2, 1.0, 20).reshape(4, 5)  # a box the paste's size: no resizing
    out = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask, blend_mode=mode)
    assert out.shape == (1, 10, 12, 4)
    want = np.concatenate([base.numpy(), np.ones((1, 10, 12, 1), np.float32)], axis=-1).astype(np.float64)
    for y in range(3, 7):
        for x in range(2, 7):
            amount = float(mask[0, y, x, 0])
            top = list(paste[0, y - 3, x - 2].double().numpy()) + [1.0]  # an RGB paste is opaque
            for c in range(4):
                under = want[0, y, x, c]
                want[0, y, x, c] = FORMULAS[mode](top[c], under) * amount + under * (1 - amount)
    np.testing.assert_allclose(out.numpy(), want, atol=1e-5)


def test_paste_by_mask_fits_the_box_keeping_the_ratio(registry):
    base, paste = _images(3, 1, 12, 16), _images(4, 1, 3, 9)
    mask = torch.zeros(1, 12, 16)
    mask[0, 2:8, 5:11] = 1  # a 6 × 6 box centred on (7.5, 4.5)
    out = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask,
               resize_behavior="keep_ratio_fit")
    # ratio 3 in a square box: 6 wide, int(6 / 3) = 2 tall, rows from floor(4.5 - 1) + 1 = 4
    piece = F.interpolate(paste.permute(0, 3, 1, 2), size=(2, 6), mode="bicubic").permute(0, 2, 3, 1)
    want = base.clone()
    want[0, 4:6, 5:11] = piece[0]
    torch.testing.assert_close(out[..., :3], want, atol=1e-6, rtol=0)
    assert torch.equal(out[..., 3], torch.ones(1, 12, 16))


def test_paste_by_mask_keeps_the_source_size_cut_at_the_edges(registry):
    base, paste = _images(5, 1, 12, 16), _images(6, 1, 8, 8)
    mask = torch.zeros(1, 12, 16)
    mask[0, 0, 1] = 1  # one pixel: the 8 × 8 paste centred there from floor(0 - 4) + 1 = -3, floor(1 - 4) + 1 = -2
    unmasked = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask,
                    resize_behavior="source_size_unmasked")
    want = base.clone()
    want[0, 0:5, 0:6] = paste[0, 3:8, 2:8]
    torch.testing.assert_close(unmasked[..., :3], want, atol=0, rtol=0)
    masked = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask,
                  resize_behavior="source_size")
    want = base.clone()
    want[0, 0, 1] = paste[0, 3, 3]  # only the mask's pixel takes it
    torch.testing.assert_close(masked[..., :3], want, atol=0, rtol=0)


def test_paste_by_mask_feathers_by_the_packs_gaussian(registry):
    from scipy.ndimage import correlate
    base, paste = _images(7, 1, 16, 18), _images(8, 1, 6, 8)
    mask = torch.zeros(1, 16, 18, 3)
    mask[0, 5:11, 4:12] = 1
    feather = 12  # sigma 1.2 over int(12 / 5) * 2 + 1 = 5 taps
    out = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask, feather_amount=feather,
               blend_mode="darken")
    taps = np.arange(5) - 2.0
    kernel = np.exp(-(taps[:, None] ** 2 + taps[None, :] ** 2) / (2 * 1.2 ** 2))
    inside = np.zeros((16, 18))
    inside[5:11, 4:12] = 0.2989 + 0.587 + 0.114  # a white RGB mask's luma (torchvision's weights)
    amount = correlate(inside, kernel / kernel.sum(), mode="constant")[..., None]
    top = np.ones((16, 18, 4))  # white around the paste, as the pack builds it
    top[5:11, 4:12, :3] = paste[0].numpy()
    under = np.concatenate([base[0].numpy(), np.ones((16, 18, 1))], axis=-1)
    want = np.minimum(top, under) * amount + under * (1 - amount)
    np.testing.assert_allclose(out[0].numpy(), want, atol=1e-5)
    assert 0 < amount[4, 8, 0] < 1  # the feathering reaches outside the box


def test_paste_by_mask_cycles_batches_or_follows_the_mapping(registry):
    base, paste = _images(9, 2, 8, 8), _images(10, 3, 2, 2)
    mask = torch.zeros(1, 8, 8)
    mask[0, 1:3, 1:3] = 1
    out = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=mask)
    assert out.shape == (3, 8, 8, 4)
    for i, b in enumerate((0, 1, 0)):  # the base batch repeated in turn to the paste's three
        want = base[b].clone()
        want[1:3, 1:3] = paste[i]
        assert torch.equal(out[i, ..., :3], want), i
    masks = torch.zeros(3, 8, 8)
    masks[0, 0:2, 0:2] = masks[1, 4:6, 4:6] = masks[2, 6:8, 0:2] = 1
    mapped = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste[:2], mask=masks,
                  mask_mapping_optional=torch.tensor([1, 0, 3]))
    assert mapped.shape == (2, 8, 8, 4)
    want = base.clone()
    want[1, 0:2, 0:2] = paste[0]
    want[0, 4:6, 4:6] = paste[1]
    want[1, 6:8, 0:2] = paste[0]  # mask 2 takes paste 2 % 2 onto image 3 % 2
    assert torch.equal(mapped[..., :3], want)


def test_paste_by_mask_leaves_an_empty_mask_alone_and_refuses_bad_input(registry):
    base, paste = _images(11, 1, 8, 8), _images(12, 1, 1, 8)
    out = call(registry, "FillPasteByMask", image_base=base, image_to_paste=paste, mask=torch.zeros(1, 8, 8))
    assert torch.equal(out[..., :3], base)
    box = torch.zeros(1, 8, 8)
    box[0, 0:2, 0:2] = 1
    # ratio 8 fitted into a 2 × 2 box is int(2 / 8) = 0 pixels tall
    _refused(registry, "FillPasteByMask", "image_to_paste", image_base=base, image_to_paste=paste, mask=box,
             resize_behavior="keep_ratio_fit")
    _refused(registry, "FillPasteByMask", "mask", image_base=base, image_to_paste=paste, mask=torch.zeros(1, 8, 8, 2))
    _refused(registry, "FillPasteByMask", "mask_mapping_optional", image_base=base, image_to_paste=paste, mask=box,
             mask_mapping_optional=torch.tensor([0.5]))
    _refused(registry, "FillPasteByMask", "mask_mapping_optional", image_base=base, image_to_paste=paste,
             mask=box.repeat(2, 1, 1), mask_mapping_optional=torch.tensor([0]))


# -- a ComfyUI prompt ------------------------------------------------------------------------------

API_PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 12, "batch_size": 1, "color": 0x336699}},
    "2": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 2, "batch_size": 1, "color": 0xFF8000}},
    "3": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 16, "height": 12}},
    "4": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 4, "height": 2}},
    "5": {"class_type": "MaskComposite", "inputs": {"destination": ["3", 0], "source": ["4", 0], "x": 5, "y": 3,
                                                    "operation": "add"}},
    "6": {"class_type": "MaskToImage", "inputs": {"mask": ["5", 0]}},
    "7": {"class_type": "FL_PasteByMask", "inputs": {"image_base": ["1", 0], "image_to_paste": ["2", 0],
                                                     "mask": ["6", 0], "resize_behavior": "resize",
                                                     "blend_mode": "multiply", "feather_amount": 0}},
    "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
}


def test_an_api_prompt_with_the_packs_classes_runs_and_round_trips(registry):
    values = run_graph(registry, API_PROMPT, ["8"]).values
    base, pasted = values["1"][0], values["7"][0]
    want = base.clone()
    amount = 0.2989 + 0.587 + 0.114  # MaskToImage's white read back as luma
    under = base[0, 3:5, 5:9]
    want[0, 3:5, 5:9] = under * values["2"][0][0] * amount + under * (1 - amount)
    torch.testing.assert_close(pasted[..., :3], want, atol=1e-6, rtol=0)
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["class_type"] == entry["class_type"]
        assert api[node_id]["inputs"] == entry["inputs"], node_id
