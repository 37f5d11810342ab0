"""Parity of the merge and save nodes with ComfyUI's: ModelMerge* merge by weight name (a weight
only model1 has stays as it is, one only model2 has is unused: FLUX dev with schnell), CLIPMerge*
take T5's LoRAs, and LoraSave caps a conv's rank at its input channels, leaves Conv3d weights out
and writes T5's difference. Expected values are computed here from the weights themselves."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from graphflow.memory import manager
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.lora import apply_lora
from graphflow.testing import write_flow_checkpoint
from test_nodes_image_mask import call


def weights(module, patches=()):
    return {k: v.float() for k, v in manager().weights(module, patches).items() if v.is_floating_point()}


@pytest.fixture(scope="module")
def dev_schnell(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dev_schnell")
    return [load_checkpoint(write_flow_checkpoint(folder / f"{family}.safetensors", family, seed=seed,
                                                  components=("model",)), device="cpu", dtype=torch.float32).model
            for family, seed in (("flux_dev", 0), ("flux_schnell", 3))]


@pytest.mark.parametrize("node, widgets, a, b", [
    ("ModelMergeSimple", {"ratio": 0.3}, 0.3, 0.7),
    ("ModelMergeSubtract", {"multiplier": 2.0}, 2.0, -2.0),
    ("ModelMergeAdd", {}, 1.0, 1.0),
])
def test_flux_dev_merges_with_schnell_by_weight_name(builtin_registry, dev_schnell, node, widgets, a, b):
    """ComfyUI patches model1's weights with model2's of the same name: dev's guidance embedding,
    which schnell lacks, is kept as it is (not scaled by model1's factor); the rest merge."""
    dev, schnell = dev_schnell
    w_dev, w_schnell = weights(dev.unet), weights(schnell.unet)
    only_dev = sorted(set(w_dev) - set(w_schnell))
    assert only_dev and all(k.startswith("guidance_in.") for k in only_dev)
    merged = weights(call(builtin_registry, node, model1=dev, model2=schnell, **widgets).unet)
    assert set(merged) == set(w_dev)
    for name, w in w_dev.items():
        expected = w if name in only_dev else a * w + b * w_schnell[name]
        torch.testing.assert_close(merged[name], expected, rtol=1e-5, atol=1e-6, msg=name)

    # the other way round: schnell's layers, dev's guidance embedding unused
    back = weights(call(builtin_registry, node, model1=schnell, model2=dev, **widgets).unet)
    assert set(back) == set(w_schnell)
    for name, w in w_schnell.items():
        torch.testing.assert_close(back[name], a * w + b * w_dev[name], rtol=1e-5, atol=1e-6, msg=name)


def test_block_merge_keeps_weights_model2_lacks(builtin_registry, dev_schnell):
    dev, schnell = dev_schnell
    merged = weights(call(builtin_registry, "ModelMergeFlux1", model1=dev, model2=schnell, guidance_in=0.0,
                          img_in=0.25).unet)
    w_dev, w_schnell = weights(dev.unet), weights(schnell.unet)
    torch.testing.assert_close(merged["guidance_in.in_layer.weight"], w_dev["guidance_in.in_layer.weight"])
    torch.testing.assert_close(merged["img_in.weight"], 0.25 * w_dev["img_in.weight"] + 0.75 * w_schnell["img_in.weight"])
