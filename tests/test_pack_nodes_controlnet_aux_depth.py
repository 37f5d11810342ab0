"""comfyui_controlnet_aux's Depth Anything preprocessors (nodes/pack_nodes_controlnet_aux_depth.py) on
tiny random-weight files in the original layout: the nodes' maps against the pack's detectors
rebuilt here step by step from its source (DepthAnythingV2Detector.__call__ / infer_image /
image2tensor, Resize's lower-bound rule, the .pth-era DepthAnythingDetector.__call__), with the
network itself checked against transformers in tests/test_depth_anything.py; the file lookup, a
missing and a bad file, AIO, and an API-format prompt through the executor."""

import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphflow.context import NodeInputError
from graphflow.models.depth_anything import load_depth_anything
from graphflow.testing import write_depth_anything
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_controlnet_aux import call, picture, resize_image_with_pad, to_image, to_uint8, \
    write_picture


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return {"v2": write_depth_anything(folder / "depth_anything_v2_vitl.pth", seed=1),
            "v1": write_depth_anything(folder / "depth_anything_vits14.safetensors", seed=2)}


@pytest.fixture
def annotators(tmp_folders, weights):
    """The V2 file in the pack's own layout (a subfolder), V1 as a safetensors conversion at the top."""
    nested = tmp_folders.models / "annotators" / "depth-anything" / "Depth-Anything-V2-Large"
    nested.mkdir(parents=True)
    (nested / "depth_anything_v2_vitl.pth").write_bytes(weights["v2"].read_bytes())
    (tmp_folders.models / "annotators" / "depth_anything_vits14.safetensors").write_bytes(weights["v1"].read_bytes())
    return tmp_folders


# -- the pack's detectors, rebuilt ------------------------------------------------------------------


def lower_bound_size(width, height):
    """Resize(518, 518, keep_aspect_ratio=True, ensure_multiple_of=14, resize_method='lower_bound').get_size."""
    scale_height, scale_width = 518 / height, 518 / width
    if scale_width > scale_height:
        scale_height = scale_width
    else:
        scale_width = scale_height

    def constrain(x, min_val):
        y = (np.round(x / 14) * 14).astype(int)
        if y < min_val:
            y = (np.ceil(x / 14) * 14).astype(int)
        return y

    return constrain(scale_width * width, 518), constrain(scale_height * height, 518)


def transform(image):
    """Resize (INTER_CUBIC) -> NormalizeImage(ImageNet) -> PrepareForNet, on a float 0..1 HxWx3 array."""
    width, height = lower_bound_size(image.shape[1], image.shape[0])
    image = cv2.resize(image, (int(width), int(height)), interpolation=cv2.INTER_CUBIC)
    image = (image - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return np.ascontiguousarray(np.transpose(image, (2, 0, 1))).astype(np.float32)


def pack_v2(model, input_image, detect_resolution):
    raw_image = cv2.cvtColor(input_image, cv2.COLOR_RGB2BGR)  # __call__ hands infer_image BGR
    h, w = raw_image.shape[:2]
    image = torch.from_numpy(transform(cv2.cvtColor(raw_image, cv2.COLOR_BGR2RGB) / 255.0)).unsqueeze(0)
    with torch.no_grad():
        depth = model(image) * 1  # max_depth=1 from the node wrapper
        depth = F.interpolate(depth[:, None], (h, w), mode="bilinear", align_corners=True)[0, 0].numpy()
    depth = (depth - depth.min()) / (depth.max() - depth.min()) * 255.0
    depth = depth.astype(np.uint8)
    detected_map = np.repeat(depth[:, :, None], 3, axis=2)
    detected_map, remove_pad = resize_image_with_pad(detected_map, detect_resolution, cv2.INTER_CUBIC)
    return remove_pad(detected_map)


def hf_model(path, version):
    """transformers' DepthAnythingForDepthEstimation holding the file's weights."""
    from tests.test_depth_anything import transformers_model
    return transformers_model(load_depth_anything(path, version=version).config, load_state(path))


def load_state(path):
    from safetensors.torch import load_file
    return load_file(str(path)) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)


def pack_v1(model, input_image, detect_resolution):
    """The pack's current DepthAnythingDetector.__call__ (transformers.py at 586c8f5) on transformers'
    own depth-estimation pipeline, with the -hf repositories' preprocessor_config (DPTImageProcessor:
    518x518, keep_aspect_ratio, ensure_multiple_of 14, bicubic, ImageNet mean and std, no pad)."""
    from PIL import Image
    from transformers import DPTImageProcessor, pipeline
    processor = DPTImageProcessor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                                  resample=3, do_pad=False, image_mean=[0.485, 0.456, 0.406],
                                  image_std=[0.229, 0.224, 0.225])
    pipe = pipeline(task="depth-estimation", model=model, image_processor=processor, device="cpu")
    input_image, remove_pad = resize_image_with_pad(input_image, detect_resolution, cv2.INTER_CUBIC)
    with torch.no_grad():
        depth_array = np.array(pipe(Image.fromarray(input_image))["depth"], dtype=np.float32)
    depth_min, depth_max = depth_array.min(), depth_array.max()
    if depth_max > depth_min:
        depth_array = (depth_array - depth_min) / (depth_max - depth_min) * 255.0
    else:
        depth_array = np.zeros_like(depth_array)
    return remove_pad(np.repeat(depth_array.astype(np.uint8)[:, :, None], 3, axis=2))


def test_network_size_is_the_lower_bound_multiple_of_14():
    from nodes.pack_nodes_controlnet_aux_depth import network_size
    # transformers' conversion script's COCO picture (640x480) reaches the network as 686x518
    assert network_size(480, 640) == (518, 686)
    assert network_size(1000, 1000) == (518, 518) and network_size(100, 3000) == (518, 15540)
    for height, width in [(37, 91), (300, 199), (518, 777), (1080, 1920)]:
        expected_w, expected_h = lower_bound_size(width, height)
        assert network_size(height, width) == (expected_h, expected_w)


def test_v2_map_is_the_packs(annotators, weights, builtin_registry):
    image = picture(60, 84, seed=3)
    out = call(builtin_registry, "DepthAnythingV2Preprocessor", image=image, resolution=128)
    expected = pack_v2(load_depth_anything(weights["v2"], version=2), to_uint8(image), 128)
    assert out.shape == (1, 128, 179, 3)  # the short side at `resolution`: round(84 * 128 / 60)
    assert torch.equal(out, to_image(expected))
    assert out.min() == 0 and out.max() > 0.9  # stretched to 0..255 before the resize


def test_v1_map_is_the_packs_transformers_pipeline(annotators, weights, builtin_registry):
    image = picture(90, 64, seed=4)
    out = call(builtin_registry, "DepthAnythingPreprocessor", image=image, ckpt_name="depth_anything_vits14.pth",
               resolution=192)
    assert load_depth_anything(weights["v1"], version=1).config.layers == (8, 9, 10, 11)  # the last four blocks
    expected = pack_v1(hf_model(weights["v1"], version=1), to_uint8(image), 192)
    assert out.shape == (1, 270, 192, 3)
    assert torch.equal(out, to_image(expected))
    v2_layers = pack_v1(hf_model(weights["v1"], version=2), to_uint8(image), 192)
    assert not np.array_equal(v2_layers, expected)  # the blocks read matter


def test_dpt_size_is_dpt_image_processors():
    from transformers.models.dpt.image_processing_dpt import get_resize_output_image_size

    from nodes.pack_nodes_controlnet_aux_depth import dpt_size
    for height, width in [(512, 768), (768, 512), (192, 320), (1024, 1024), (64, 4096), (640, 512), (576, 1024)]:
        want = get_resize_output_image_size(torch.zeros(3, height, width), (518, 518), True, 14)
        assert dpt_size(height, width) == (want.height, want.width), (height, width)


def test_api_prompt_runs_both_and_aio(annotators, weights, builtin_registry):
    image = picture(56, 70, seed=5)
    write_picture(annotators, "in.png", image)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
        "2": {"class_type": "DepthAnythingV2Preprocessor", "inputs": {
            "image": ["1", 0], "ckpt_name": "depth_anything_v2_vitl.pth", "resolution": 64}},
        "3": {"class_type": "DepthAnythingPreprocessor", "inputs": {
            "image": ["1", 0], "ckpt_name": "depth_anything_vits14.pth", "resolution": 128}},
        "4": {"class_type": "AIO_Preprocessor", "inputs": {
            "image": ["1", 0], "preprocessor": "DepthAnythingV2Preprocessor", "resolution": 64}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    result = run_graph(builtin_registry, prompt, outputs=["2", "3", "4", "5"])
    loaded = to_uint8(image)
    v2 = to_image(pack_v2(load_depth_anything(weights["v2"], version=2), loaded, 64))
    assert torch.equal(result.values["2"][0], v2)
    assert torch.equal(result.values["4"][0], v2)  # AIO: the default ckpt_name, vitl
    assert torch.equal(result.values["3"][0], to_image(pack_v1(hf_model(weights["v1"], version=1), loaded, 128)))


def test_ui_save_reads_widgets_in_the_packs_order(annotators, weights, builtin_registry):
    """As the editor saves it: ckpt_name, then resolution (define_preprocessor_inputs' order)."""
    image = picture(64, 48, seed=8)
    write_picture(annotators, "in.png", image)
    nodes = [ui_node(1, "LoadImage", ["in.png", "image"], outputs=[("IMAGE", "IMAGE", [1]), ("MASK", "MASK", [])]),
             ui_node(2, "DepthAnythingV2Preprocessor", ["depth_anything_v2_vitl.pth", 96],
                     [("image", "IMAGE", 1, False)], [("IMAGE", "IMAGE", [])])]
    result = run_graph(builtin_registry, ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"]]), outputs=["2"])
    expected = pack_v2(load_depth_anything(weights["v2"], version=2), to_uint8(image), 96)
    assert torch.equal(result.values["2"][0], to_image(expected))


def test_a_missing_file_names_the_folder_and_where_to_get_it(tmp_folders, builtin_registry):
    with pytest.raises(NodeInputError) as caught:
        call(builtin_registry, "DepthAnythingV2Preprocessor", image=picture(32, 32),
             ckpt_name="depth_anything_v2_vitb.pth")
    message = str(caught.value)
    assert caught.value.input == "ckpt_name"
    assert str(tmp_folders.models / "annotators") in message and "Depth-Anything-V2-Base" in message
    with pytest.raises(NodeInputError) as caught:
        call(builtin_registry, "DepthAnythingPreprocessor", image=picture(32, 32))
    assert "LiheYoung/Depth-Anything" in str(caught.value) and "depth_anything_vitl14.pth" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:  # through AIO: named as its own input
        call(builtin_registry, "AIO_Preprocessor", image=picture(32, 32), preprocessor="DepthAnythingV2Preprocessor")
    assert caught.value.input == "preprocessor" and "depth_anything_v2_vitl.pth" in str(caught.value)


def test_a_file_of_another_kind_is_refused_by_name(tmp_folders, builtin_registry):
    from safetensors.torch import save_file
    (tmp_folders.models / "annotators").mkdir()
    save_file({"model.0.weight": torch.zeros(4, 3, 3, 3)}, str(tmp_folders.models / "annotators" /
                                                                "depth_anything_v2_vits.safetensors"))
    with pytest.raises(NodeInputError) as caught:
        call(builtin_registry, "DepthAnythingV2Preprocessor", image=picture(32, 32),
             ckpt_name="depth_anything_v2_vits.pth")
    assert caught.value.input == "ckpt_name" and "not a Depth Anything model" in str(caught.value)


def test_one_load_per_file(annotators, builtin_registry, monkeypatch):
    import graphflow.models.depth_anything as module
    from nodes import pack_nodes_controlnet_aux_depth as nodes
    loads = []
    real = module.load_depth_anything
    monkeypatch.setattr(module, "load_depth_anything", lambda *a, **k: loads.append(a) or real(*a, **k))
    nodes._loaded.clear()
    for seed in (6, 7):
        call(builtin_registry, "DepthAnythingV2Preprocessor", image=picture(30, 40, seed=seed), resolution=64)
    assert len(loads) == 1
    call(builtin_registry, "DepthAnythingPreprocessor", image=picture(30, 40), ckpt_name="depth_anything_vits14.pth")
    assert len(loads) == 2 and len(nodes._loaded) == 1  # the previous file let go


def test_stretch_and_a_flat_depth():
    from nodes.pack_nodes_controlnet_aux_depth import stretched
    depth = np.array([[0.5, 1.0], [2.5, 1.7]], np.float32)
    assert stretched(depth).tolist() == [[0, 63], [255, 153]]  # (d - 0.5) / 2 * 255, truncated
    assert stretched(np.full((2, 3), 4.0, np.float32)).tolist() == [[0] * 3] * 2


def test_a_picture_too_long_for_the_network_is_refused(annotators, builtin_registry):
    with pytest.raises(NodeInputError) as caught:  # 16x1024: 518x33152 at the network
        call(builtin_registry, "DepthAnythingV2Preprocessor", image=torch.rand(1, 16, 1024, 3), resolution=64)
    assert caught.value.input == "image" and "16384" in str(caught.value)


@pytest.mark.parametrize("class_type, ckpt_name", [("DepthAnythingV2Preprocessor", "depth_anything_v2_vitl.pth"),
                                                   ("DepthAnythingPreprocessor", "depth_anything_vits14.pth")])
def test_a_resolution_too_big_for_the_picture_is_refused_before_the_network_runs(annotators, builtin_registry,
                                                                                   class_type, ckpt_name, monkeypatch):
    from nodes import pack_nodes_controlnet_aux_depth as nodes
    monkeypatch.setattr(nodes, "run_network", lambda *a: pytest.fail("the network ran"))
    with pytest.raises(NodeInputError) as caught:  # 64x128 at 16384: 16384x32768
        call(builtin_registry, class_type, image=picture(128, 64), ckpt_name=ckpt_name, resolution=16384)
    assert caught.value.input == "resolution" and "16384" in str(caught.value)


def test_aio_runs_again_when_the_weights_file_changes(annotators, builtin_registry):
    """AIO's cache key holds the default file's state, as the depth nodes' own keys do."""
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow
    image = picture(40, 52, seed=9)
    write_picture(annotators, "in.png", image)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
              "2": {"class_type": "AIO_Preprocessor", "inputs": {
                  "image": ["1", 0], "preprocessor": "DepthAnythingV2Preprocessor", "resolution": 64}}}
    executor = Executor(builtin_registry)
    first = executor.run(parse_workflow(prompt, builtin_registry), outputs=["2"])
    assert first.ok, first.error
    path = annotators.models / "annotators" / "depth-anything" / "Depth-Anything-V2-Large" / \
        "depth_anything_v2_vitl.pth"
    old = path.stat()
    write_depth_anything(path, seed=11)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns + 10**9))  # a new time even on a coarse clock
    second = executor.run(parse_workflow(prompt, builtin_registry), outputs=["2"])
    assert second.ok, second.error
    expected = to_image(pack_v2(load_depth_anything(path, version=2), to_uint8(image), 64))
    assert torch.equal(second.values["2"][0], expected)
    assert not torch.equal(first.values["2"][0], expected)


def test_the_model_leaves_the_device_after_its_run(annotators, builtin_registry, fresh_manager):
    """As the pack deletes its model after each run: the memory manager offloads it, kept in RAM."""
    from nodes import pack_nodes_controlnet_aux_depth as nodes
    call(builtin_registry, "DepthAnythingV2Preprocessor", image=picture(30, 40), resolution=64)
    (model,) = nodes._loaded.values()
    comp = fresh_manager.components[id(model)]
    assert comp.kind == "annotator" and comp.state == "offloaded"


def test_v1_refuses_a_picture_too_thin_for_the_network(annotators, builtin_registry):
    # 8x1024 at resolution 64: 64x8192 after the pad, whose DPT size is 0x518 (64 * 518 / 8192 rounds to 0 * 14)
    with pytest.raises(NodeInputError) as caught:
        call(builtin_registry, "DepthAnythingPreprocessor", image=torch.rand(1, 8, 1024, 3),
             ckpt_name="depth_anything_vits14.pth", resolution=64)
    assert caught.value.input == "image" and "518x0" in str(caught.value)


@pytest.mark.parametrize("class_type, inputs", [
    ("DepthAnythingV2Preprocessor", {}),
    ("DepthAnythingPreprocessor", {"ckpt_name": "depth_anything_vits14.pth"}),
    ("AIO_Preprocessor", {"preprocessor": "DepthAnythingV2Preprocessor"}),
])
def test_a_batch_moves_the_model_onto_the_device_and_off_once(annotators, builtin_registry, cpu0_device, fresh_manager,
                                                              class_type, inputs):
    """As the pack moves its model to the device once per run, not once per picture."""
    images = torch.cat([picture(30, 40, seed=seed) for seed in (1, 2, 3)])
    out = call(builtin_registry, class_type, image=images, resolution=64, **inputs)
    assert out.shape[0] == 3
    moves = [e["action"] for e in fresh_manager.events if e["kind"] == "annotator"]
    assert moves == ["load", "offload"]


def test_a_read_of_another_file_waits_for_the_read_under_way(weights, monkeypatch):
    """Two workers asking for two files at once: the second read (which lets the first file go)
    waits until the first has its model, which it gets (unlocked, the first found the cache cleared
    under it: a bare KeyError)."""
    import threading

    from graphflow.models.depth_anything import DepthAnything
    from nodes import pack_nodes_controlnet_aux_depth as nodes
    other = {}

    class Racing(dict):  # the cache, starting the other worker as the first's model goes in
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            if key[0] == str(weights["v2"]) and "thread" not in other:
                other["thread"] = threading.Thread(
                    target=lambda: other.setdefault("model", nodes.loaded_model(weights["v1"], "v1", version=1)))
                other["thread"].start()
                other["thread"].join(timeout=0.5)  # locked out: it waits for this read to end

    monkeypatch.setattr(nodes, "_loaded", Racing())
    first = nodes.loaded_model(weights["v2"], "v2", version=2)
    other["thread"].join()
    assert isinstance(first, DepthAnything) and first.config.layers != other["model"].config.layers
    assert list(nodes._loaded.values()) == [other["model"]]
