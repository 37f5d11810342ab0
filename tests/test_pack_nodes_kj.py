"""KJNodes' constants, batch ranges, ImageBatchMulti and CUDA speed patches (nodes/pack_nodes_kj.py):
read from graphs as the pack's editor saves them (UI format, widgets in the pack's input order)
and from API graphs, checked against closed forms and the core nodes."""

import logging

import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.comfy_format import export_ui
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def ui_graph(nodes, links=()):
    return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": list(links),
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


def run(registry, graph, outputs):
    workflow = parse_workflow(graph, registry)
    result = Executor(registry).run(workflow, outputs=outputs)
    assert result.ok, (result.problems, result.error)
    return workflow, result.values


def test_constants_read_from_the_packs_ui_graph(registry):
    """Each constant saves its widgets in the pack's order; Float Constant rounds to 6 decimals and
    String Constant Multiline drops every line break, then the spaces at its ends."""
    nodes = [ui_node(1, "INTConstant", [-12345678901234567890], outputs=[("value", "INT", [])]),
             ui_node(2, "FloatConstant", [0.12345678], outputs=[("value", "FLOAT", [])]),
             ui_node(3, "StringConstant", ["a cat"], outputs=[("STRING", "STRING", [])]),
             ui_node(4, "StringConstantMultiline", ["  first\nsecond \n", True], outputs=[("STRING", "STRING", [])]),
             ui_node(5, "StringConstantMultiline", ["one\ntwo", False], outputs=[("STRING", "STRING", [])]),
             ui_node(6, "BOOLConstant", [False], outputs=[("value", "BOOLEAN", [])])]
    workflow, values = run(registry, ui_graph(nodes), [str(i) for i in range(1, 7)])
    assert values["1"][0] == -12345678901234567890
    assert values["2"][0] == 0.123457
    assert values["3"][0] == "a cat"
    assert values["4"][0] == "firstsecond"
    assert values["5"][0] == "one\ntwo"
    assert values["6"][0] is False
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[4] == ["  first\nsecond \n", True] and saved[1] == [-12345678901234567890]


def test_constants_from_an_api_graph_with_defaults(registry):
    graph = {"1": {"class_type": "BOOLConstant", "inputs": {}},
             "2": {"class_type": "StringConstantMultiline", "inputs": {"string": "x\ny"}},
             "3": {"class_type": "INTConstant", "inputs": {"value": 7}}}
    _, values = run(registry, graph, ["1", "2", "3"])
    assert values["1"][0] is True and values["2"][0] == "xy" and values["3"][0] == 7


def frames(n, h=4, w=6):
    return torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, h, w, 3).clone() / 10


def test_get_image_range_from_batch(registry):
    images, masks = frames(5), torch.arange(7, dtype=torch.float32).reshape(7, 1, 1).expand(7, 4, 6).clone()
    out, out_masks = call(registry, "GetImageRangeFromBatch", images=images, masks=masks, start_index=1, num_frames=3)
    assert torch.equal(out, images[1:4]) and torch.equal(out_masks, masks[1:4])
    # -1: the last num_frames of the images; the masks take the images' start (the pack's rule)
    out, out_masks = call(registry, "GetImageRangeFromBatch", images=images, masks=masks, start_index=-1, num_frames=2)
    assert torch.equal(out, images[3:5]) and torch.equal(out_masks, masks[3:5])
    # cut at the end of the batch; an unconnected input gives nothing
    out, none = call(registry, "GetImageRangeFromBatch", images=images, start_index=4, num_frames=3)
    assert torch.equal(out, images[4:]) and none is None
    with pytest.raises(NodeInputError) as caught:
        call(registry, "GetImageRangeFromBatch", images=images, start_index=5, num_frames=1)
    assert caught.value.input == "start_index"


def test_get_image_range_from_batch_ui_graph(registry):
    nodes = [ui_node(1, "EmptyImage", [8, 8, 5, 0], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "GetImageRangeFromBatch", [-1, 2], [("images", "IMAGE", 1, False), ("masks", "MASK", None, False)],
                     [("IMAGE", "IMAGE", []), ("MASK", "MASK", [])])]
    workflow, values = run(registry, ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"]]), ["2"])
    assert workflow.nodes["2"].inputs["start_index"] == -1 and values["2"][0].shape == (2, 8, 8, 3)


def test_get_latent_range_from_batch(registry):
    image = {"samples": torch.randn(5, 4, 2, 3), "batch_index": [0, 1, 2, 3, 4]}
    out = call(registry, "GetLatentRangeFromBatch", latents=image, start_index=1, num_frames=2)
    assert set(out) == {"samples"} and torch.equal(out["samples"], image["samples"][1:3])
    video = {"samples": torch.randn(1, 16, 7, 2, 3)}
    out = call(registry, "GetLatentRangeFromBatch", latents=video, start_index=2, num_frames=-1)
    assert torch.equal(out["samples"], video["samples"][:, :, 2:])
    out = call(registry, "GetLatentRangeFromBatch", latents=video, start_index=-1, num_frames=3)
    assert torch.equal(out["samples"], video["samples"][:, :, 4:])
    with pytest.raises(NodeInputError) as caught:
        call(registry, "GetLatentRangeFromBatch", latents=video, start_index=7, num_frames=1)
    assert caught.value.input == "start_index"
    graph = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 4}},
             "2": {"class_type": "GetLatentRangeFromBatch", "inputs": {"latents": ["1", 0], "start_index": -1,
                                                                       "num_frames": 3}}}
    _, values = run(registry, graph, ["2"])
    assert values["2"][0]["samples"].shape == (3, 4, 8, 8)


def test_image_batch_multi_equals_image_batch_in_turn(registry):
    a, b, c = frames(2), frames(1, 8, 6) + 0.05, frames(3) + 0.02
    out = call(registry, "ImageBatchMulti", inputcount=3, image_1=a, image_2=b, image_3=c)
    first = call(registry, "ImageBatch", image1=a, image2=b)
    assert torch.equal(out, call(registry, "ImageBatch", image1=first, image2=c))
    assert out.shape == (6, 4, 6, 3)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ImageBatchMulti", inputcount=3, image_1=a, image_2=b)
    assert caught.value.input == "image_3"
    nodes = [ui_node(1, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [1, 2])]),
             ui_node(2, "ImageBatchMulti", [2, None], [("image_1", "IMAGE", 1, False), ("image_2", "IMAGE", 2, False)],
                     [("images", "IMAGE", [])])]
    _, values = run(registry, ui_graph(nodes, [[1, 1, 0, 2, 1, "IMAGE"], [2, 1, 0, 2, 2, "IMAGE"]]), ["2"])
    assert values["2"][0].shape == (2, 8, 8, 3)


@pytest.mark.parametrize("node_type, widgets, settings", [
    # the pack's 2025 saves: no allow_compile widget yet
    ("PathchSageAttentionKJ", ["sageattn_qk_int8_pv_fp16_cuda"],
     {"sage_attention": "sageattn_qk_int8_pv_fp16_cuda", "allow_compile": False}),
    ("PathchSageAttentionKJ", ["auto", True], {"sage_attention": "auto", "allow_compile": True}),
    ("TorchCompileModelWanVideoV2", ["inductor", False, "max-autotune", False, True, 64, False],
     {"backend": "inductor", "mode": "max-autotune", "compile_transformer_blocks_only": True,
      "dynamo_cache_size_limit": 64, "force_parameter_static_shapes": False}),
    ("ModelPatchTorchSettings", [True], {"enable_fp16_accumulation": True}),
])
def test_speed_patches_read_the_packs_widgets_and_pass_the_model_on(registry, caplog, node_type, widgets, settings):
    nodes = [ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                     outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", []), ("VAE", "VAE", [])]),
             ui_node(2, node_type, widgets, [("model", "MODEL", 1, False)], [("MODEL", "MODEL", [])])]
    workflow = parse_workflow(ui_graph(nodes, [[1, 1, 0, 2, 0, "MODEL"]]), registry)
    defaults = registry.comfy_node(node_type).widget_model.model_validate({}).model_dump()
    assert {k: workflow.nodes["2"].inputs.get(k, defaults[k]) for k in settings} == settings
    model = object()
    with caplog.at_level(logging.WARNING):
        assert call(registry, node_type, model=model, **settings) is model
    assert "passed on" in caplog.text


def test_speed_patches_left_off_say_nothing(registry, caplog):
    model = object()
    with caplog.at_level(logging.WARNING):
        assert call(registry, "PathchSageAttentionKJ", model=model, sage_attention="disabled") is model
        assert call(registry, "ModelPatchTorchSettings", model=model, enable_fp16_accumulation=False) is model
    assert "passed on" not in caplog.text
