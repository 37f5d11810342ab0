"""kijai's ComfyUI-DepthAnythingV2 (nodes/pack_nodes_depth_anything_v2.py) on tiny random-weight files:
DepthAnything_V2 against the pack's process() rebuilt here step by step from its nodes.py (047a4ecf),
with the network checked against transformers in tests/test_depth_anything.py; the metric head and
inverted map by the file name, a missing file, the pack's names and an API-format prompt."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms

from graphflow.context import NodeInputError
from graphflow.models.depth_anything import load_depth_anything
from graphflow.testing import write_depth_anything
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph
from tests.test_pack_nodes_controlnet_aux import picture, write_picture

RELATIVE = "depth_anything_v2_vits_fp32.safetensors"
METRIC = "depth_anything_v2_metric_hypersim_vitl_fp32.safetensors"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("depthanything")
    return {RELATIVE: write_depth_anything(folder / RELATIVE, seed=3),
            METRIC: write_depth_anything(folder / METRIC, seed=4)}


@pytest.fixture
def models(tmp_folders, written):
    folder = tmp_folders.models / "depthanything"
    folder.mkdir()
    for name, path in written.items():
        (folder / name).write_bytes(path.read_bytes())
    return tmp_folders


def pack_process(model, images, is_metric):
    """DepthAnything_V2.process as the pack writes it (float32, no autocast)."""
    B, H, W, C = images.shape
    images = images.permute(0, 3, 1, 2)
    orig_H, orig_W = H, W
    if W % 14 != 0:
        W = W - (W % 14)
    if H % 14 != 0:
        H = H - (H % 14)
    if orig_H % 14 != 0 or orig_W % 14 != 0:
        images = F.interpolate(images, size=(H, W), mode="bilinear")
    normalized_images = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])(images)
    out = []
    with torch.no_grad():
        for img in normalized_images:
            depth = model(img.unsqueeze(0))
            depth = (depth - depth.min()) / (depth.max() - depth.min())
            out.append(depth)
    depth_out = torch.cat(out, dim=0).unsqueeze(-1).repeat(1, 1, 1, 3).float()
    final_H, final_W = (orig_H // 2) * 2, (orig_W // 2) * 2
    if depth_out.shape[1] != final_H or depth_out.shape[2] != final_W:
        depth_out = F.interpolate(depth_out.permute(0, 3, 1, 2), size=(final_H, final_W),
                                  mode="bilinear").permute(0, 2, 3, 1)
    depth_out = (depth_out - depth_out.min()) / (depth_out.max() - depth_out.min())
    depth_out = torch.clamp(depth_out, 0, 1)
    return 1 - depth_out if is_metric else depth_out


def loaded(registry, name):
    return call(registry, "DownloadAndLoadDepthAnythingV2Model", model=name)


def test_relative_maps_are_the_packs(models, written, builtin_registry):
    images = torch.cat([picture(45, 61, seed=1), picture(45, 61, seed=2)])  # neither side a multiple of 14
    da = loaded(builtin_registry, RELATIVE)
    out = call(builtin_registry, "DepthAnything_V2", da_model=da, images=images)
    expected = pack_process(load_depth_anything(written[RELATIVE]), images, is_metric=False)
    assert out.shape == (2, 44, 60, 3)  # rounded down to even
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert out.min() == 0 and out.max() == 1


def test_metric_files_get_the_metric_head_and_an_inverted_map(models, written, builtin_registry):
    images = picture(56, 42, seed=5)  # multiples of 14: no resize on the way in or out
    da = loaded(builtin_registry, METRIC)
    assert da["is_metric"] and da["model"].config.max_depth == 20.0  # hypersim's
    out = call(builtin_registry, "DepthAnything_V2", da_model=da, images=images)
    expected = pack_process(load_depth_anything(written[METRIC], max_depth=20.0), images, is_metric=True)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    relative_head = pack_process(load_depth_anything(written[METRIC]), images, is_metric=True)
    assert not torch.allclose(out, relative_head, atol=1e-3)  # the sigmoid head matters
    vkitti_scale = pack_process(load_depth_anything(written[METRIC], max_depth=80.0), images, is_metric=True)
    torch.testing.assert_close(out, vkitti_scale, rtol=0, atol=1e-6)  # its scale doesn't: the stretch takes it away


def test_a_missing_file_is_named_with_the_folder_and_source(tmp_folders, builtin_registry):
    with pytest.raises(NodeInputError) as caught:
        loaded(builtin_registry, "depth_anything_v2_vitb_fp16.safetensors")
    message = str(caught.value)
    assert caught.value.input == "model" and "depth_anything_v2_vitb_fp16.safetensors" in message
    assert str(tmp_folders.models / "depthanything") in message and "Kijai/DepthAnythingV2-safetensors" in message


def test_pictures_smaller_than_a_patch_are_refused(models, builtin_registry):
    da = loaded(builtin_registry, RELATIVE)
    with pytest.raises(NodeInputError) as caught:
        call(builtin_registry, "DepthAnything_V2", da_model=da, images=torch.rand(1, 10, 40, 3))
    assert caught.value.input == "images" and "14" in str(caught.value)


def test_the_packs_names_inputs_and_outputs(builtin_registry):
    from graphflow.comfy_format import custom_pack
    loader = builtin_registry.comfy_node("DownloadAndLoadDepthAnythingV2Model")
    assert list(loader.input_specs) == ["model"]
    assert loader.input_specs["model"].default == "depth_anything_v2_vitl_fp32.safetensors"
    assert len(loader.input_specs["model"].widget.options) == 8
    assert [o.name for o in loader.output_specs] == ["da_v2_model"]
    node = builtin_registry.comfy_node("DepthAnything_V2")
    assert list(node.input_specs) == ["da_model", "images"] and [o.name for o in node.output_specs] == ["image"]
    assert {loader.category, node.category} == {"DepthAnythingV2"}
    assert custom_pack("DepthAnything_V2") == custom_pack("DownloadAndLoadDepthAnythingV2Model") == \
        "ComfyUI-DepthAnythingV2"


def test_api_prompt_runs(models, written, builtin_registry):
    image = picture(42, 70, seed=6)
    write_picture(models, "in.png", image)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
              "2": {"class_type": "DownloadAndLoadDepthAnythingV2Model", "inputs": {"model": RELATIVE}},
              "3": {"class_type": "DepthAnything_V2", "inputs": {"da_model": ["2", 0], "images": ["1", 0]}}}
    result = run_graph(builtin_registry, prompt, outputs=["3"])
    loaded_image = torch.from_numpy(np.asarray(image[0] * 255.0, dtype=np.uint8).astype(np.float32) / 255.0)[None]
    expected = pack_process(load_depth_anything(written[RELATIVE]), loaded_image, is_metric=False)
    torch.testing.assert_close(result.values["3"][0], expected, rtol=0, atol=1e-6)


def test_a_batch_moves_the_model_onto_the_device_and_off_once(models, builtin_registry, cpu0_device, fresh_manager):
    """As the pack: the model to the device once, every picture, offloaded once."""
    da = loaded(builtin_registry, RELATIVE)
    images = torch.cat([picture(28, 42, seed=seed) for seed in (1, 2, 3)])
    assert call(builtin_registry, "DepthAnything_V2", da_model=da, images=images).shape[0] == 3
    assert [e["action"] for e in fresh_manager.events if e["kind"] == "annotator"] == ["load", "offload"]


def test_a_picture_too_big_for_the_memory_is_refused_as_images(models, builtin_registry, monkeypatch):
    from graphflow import resource_limits
    da = loaded(builtin_registry, RELATIVE)
    monkeypatch.setattr(resource_limits, "_budget", lambda limits: {"ram": 1000, "device": ("device", None)})
    with pytest.raises(NodeInputError) as caught:
        call(builtin_registry, "DepthAnything_V2", da_model=da, images=picture(28, 42))
    assert caught.value.input == "images" and "Depth Anything at 42x28" in str(caught.value)


def test_an_empty_batch_is_refused_as_images(models, builtin_registry):
    da = loaded(builtin_registry, RELATIVE)
    with pytest.raises(NodeInputError) as caught:
        call(builtin_registry, "DepthAnything_V2", da_model=da, images=torch.zeros(0, 28, 42, 3))
    assert caught.value.input == "images" and "at least one image" in str(caught.value)


def test_validation_checks_the_file_before_the_run(models, builtin_registry):
    """A missing file is a problem of `model` before anything runs; a present one is none (its
    kind is comfyui_controlnet_aux's Depth Anything files', which this folder takes too)."""
    from graphflow.validation import validate
    from graphflow.workflow import parse_workflow

    def problems(name):
        prompt = {"1": {"class_type": "DownloadAndLoadDepthAnythingV2Model", "inputs": {"model": name}}}
        return validate(parse_workflow(prompt, builtin_registry), builtin_registry, outputs=["1"])

    assert problems(RELATIVE) == []
    (missing,) = problems("depth_anything_v2_vitb_fp32.safetensors")
    assert missing.input == "model" and "depth_anything_v2_vitb_fp32.safetensors" in missing.message
    assert str(models.models / "depthanything") in missing.message


def test_fp16_files_are_computed_in_float32(models, builtin_registry):
    """An fp16 file's values exactly, in float32: its map is the pack's process() on a float32 file
    holding the same values."""
    from safetensors.torch import load_file, save_file
    name = "depth_anything_v2_vits_fp16.safetensors"
    half = write_depth_anything(models.models / "depthanything" / name, seed=5, dtype=torch.float16)
    widened = models.models / "widened.safetensors"
    save_file({k: v.float() for k, v in load_file(str(half)).items()}, str(widened))
    da = loaded(builtin_registry, name)
    assert {p.dtype for p in da["model"].parameters()} == {torch.float32}
    images = picture(42, 56, seed=7)
    out = call(builtin_registry, "DepthAnything_V2", da_model=da, images=images)
    torch.testing.assert_close(out, pack_process(load_depth_anything(widened), images, is_metric=False),
                               rtol=0, atol=1e-6)
