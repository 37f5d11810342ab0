"""KJNodes' nodes in nodes/pack_nodes_kj.py (constants, batches, concatenation, pad and resize, masks,
ColorMatch, CUDA speed patches): read from graphs as the pack's editor saves them (UI format,
widgets in the pack's input order) and from API graphs, checked against closed forms and the core
nodes."""

import functools
import io
import logging
import math

import numpy
import pytest
import torch
from PIL import ImageColor

from graphflow.context import NodeInputError
from graphflow.comfy_format import export_ui
from graphflow.executor import Executor
from graphflow.resource_limits import RunLimits, Size, default_estimate
from graphflow.validation import validate
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from nodes.pack_nodes_kj import kj_v2_plan
from tests.test_pack_nodes import ui_graph, ui_node


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


def run(registry, graph, outputs):
    workflow = parse_workflow(graph, registry)
    result = Executor(registry).run(workflow, outputs=outputs)
    assert result.ok, (result.problems, result.error)
    return workflow, result.values


def pack_multiline(text, strip_newlines):
    """KJNodes' stringify (nodes.py @b37122a9) written out: the lines as io.StringIO reads them
    (each with its "\n"), each line's "\n" removed when stripping, joined with "\n"."""
    # (the pack skips lines whose .strip() starts with "\n": none can, so every line is stripped)
    lines = []
    for line in io.StringIO(text):
        if strip_newlines:
            line = line.replace("\n", "")
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.parametrize("strip", [True, False])
@pytest.mark.parametrize("text", ["first\nsecond", " a \n\nb\n", "", "\n", "one line ", "x\r\ny\n\n", "\n\n end"])
def test_string_constant_multiline_joins_lines_as_the_pack(registry, text, strip):
    assert call(registry, "KJStringConstantMultiline", string=text, strip_newlines=strip) == pack_multiline(text, strip)


def test_constants_read_from_the_packs_ui_graph(registry):
    """Each constant saves its widgets in the pack's order; Float Constant rounds to 6 decimals and
    String Constant Multiline rejoins its lines as the pack does (see pack_multiline)."""
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
    assert values["4"][0] == "  first\nsecond " == pack_multiline("  first\nsecond \n", True)
    assert values["5"][0] == "one\n\ntwo" == pack_multiline("one\ntwo", False)
    assert values["6"][0] is False
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[4] == ["  first\nsecond \n", True] and saved[1] == [-12345678901234567890]


def test_constants_from_an_api_graph_with_defaults(registry):
    graph = {"1": {"class_type": "BOOLConstant", "inputs": {}},
             "2": {"class_type": "StringConstantMultiline", "inputs": {"string": "x\ny"}},
             "3": {"class_type": "INTConstant", "inputs": {"value": 7}}}
    _, values = run(registry, graph, ["1", "2", "3"])
    assert values["1"][0] is True and values["2"][0] == "x\ny" and values["3"][0] == 7


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
             ui_node(2, "GetImageRangeFromBatch", [-1, 2],
                     [("images", "IMAGE", 1, False), ("masks", "MASK", None, False)],
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
    ("TorchCompileModelAdvanced", ["inductor", False, "default", "auto", True, 64, False],
     {"dynamic": "auto", "debug_compile_keys": False}),
    ("TorchCompileModelQwenImage", ["cudagraphs", True, "default", False, False, 32],
     {"backend": "cudagraphs", "compile_transformer_blocks_only": False, "dynamo_cache_size_limit": 32}),
    ("TorchCompileModelFluxAdvancedV2", ["inductor", False, "default", True, False, False, 64, True],
     {"double_blocks": True, "single_blocks": False, "force_parameter_static_shapes": True}),
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


def test_torch_compile_vae_passes_the_vae_on(registry, caplog):
    vae = object()
    with caplog.at_level(logging.WARNING):
        assert call(registry, "TorchCompileVAE", vae=vae, compile_decoder=False) is vae
    assert "VAE is passed on uncompiled" in caplog.text


def picture(h=12, w=20, b=2, seed=0):
    return torch.rand(b, h, w, 3, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size, target, keep, position, divisible_by, plan", [
    ((20, 12), (10, 10), "stretch", "center", 2, (None, (10, 10), (0, 0, 0, 0))),
    ((20, 12), (0, 9), "stretch", "center", 0, (None, (20, 9), (0, 0, 0, 0))),
    ((20, 12), (10, 10), "resize", "center", 0, (None, (10, 6), (0, 0, 0, 0))),
    ((20, 12), (0, 6), "resize", "center", 0, (None, (10, 6), (0, 0, 0, 0))),
    ((20, 12), (10, 10), "pad", "center", 0, (None, (10, 6), (0, 0, 2, 2))),
    ((20, 12), (10, 10), "pad", "bottom", 0, (None, (10, 6), (0, 0, 4, 0))),
    ((12, 20), (10, 10), "pad_edge", "left", 0, (None, (6, 10), (0, 4, 0, 0))),
    # 8x8 inside 11x8, padded 1 + 2, rounded up to 12 wide on the right
    ((20, 20), (11, 8), "pad", "center", 2, (None, (8, 8), (1, 3, 0, 0))),
    # 7x7 inside 11x7, cut to 6x6: the padding (2 + 2) makes 10, already even
    ((20, 20), (11, 7), "pad", "center", 2, (None, (6, 6), (2, 2, 0, 0))),
    ((20, 12), (10, 10), "crop", "center", 0, ((4, 0, 12, 12), (10, 10), (0, 0, 0, 0))),
    ((20, 12), (10, 10), "crop", "right", 0, ((8, 0, 12, 12), (10, 10), (0, 0, 0, 0))),
    ((12, 20), (10, 5), "crop", "top", 0, ((0, 0, 12, 6), (10, 5), (0, 0, 0, 0))),
    ((20, 10), (10, 10), "total_pixels", "center", 0, (None, (14, 7), (0, 0, 0, 0))),
])
def test_image_resize_kj_v2_plan(size, target, keep, position, divisible_by, plan):
    assert kj_v2_plan(*size, *target, keep, position, divisible_by) == plan


def test_image_resize_kj_v2_stretch_and_crop_are_image_scales(registry):
    image = picture()
    out, w, h, mask = call(registry, "ImageResizeKJv2", image=image, width=10, height=8, upscale_method="bilinear",
                           keep_proportion="stretch")
    assert (w, h) == (10, 8) and mask.shape == (64, 64) and not mask.any()
    assert torch.equal(out, call(registry, "ImageScale", image=image, width=10, height=8, upscale_method="bilinear"))
    out, w, h, _ = call(registry, "ImageResizeKJv2", image=image, width=8, height=8, upscale_method="area",
                        keep_proportion="crop", crop_position="left")
    assert torch.equal(out, call(registry, "ImageScale", image=image[:, :, :12], width=8, height=8,
                                 upscale_method="area"))


def test_image_resize_kj_v2_pads_with_the_colour_and_gives_the_mask(registry):
    image = picture()
    out, w, h, mask = call(registry, "ImageResizeKJv2", image=image, width=10, height=10, upscale_method="bicubic",
                           keep_proportion="pad", pad_color="255, 0, 51", divisible_by=0)
    assert (w, h) == (10, 10)
    inner = call(registry, "ImageScale", image=image, width=10, height=6, upscale_method="bicubic")
    assert torch.equal(out[:, 2:8], inner)
    assert torch.allclose(out[:, :2], torch.tensor([1.0, 0.0, 0.2])) and torch.allclose(out[:, 8:],
                                                                                       torch.tensor([1.0, 0.0, 0.2]))
    assert mask[:, 2:8].sum() == 0 and mask[:, :2].min() == 1 and mask[:, 8:].min() == 1
    # a given mask is resized with the image and its edges repeated over the padding
    given = torch.zeros(2, 12, 20)
    given[:, :2] = 1  # nearest-exact halving samples rows 1, 3 ...
    _, _, _, mask = call(registry, "ImageResizeKJv2", image=image, mask=given, width=10, height=10,
                         upscale_method="nearest-exact", keep_proportion="pad_edge_pixel", divisible_by=0)
    assert mask[:, :3].min() == 1 and mask[:, 3:].max() == 0


def test_image_pad_kj_modes(registry):
    image = picture(4, 5, 1)
    out, mask = call(registry, "ImagePadKJ", image=image, left=2, right=1, top=1, bottom=3, pad_mode="edge_pixel")
    rows = torch.tensor([0, 0, 1, 2, 3, 3, 3, 3])
    cols = torch.tensor([0, 0, 0, 1, 2, 3, 4, 4])
    assert torch.equal(out, image[:, rows][:, :, cols])
    assert mask.shape == (1, 8, 8) and mask[:, 1:5, 2:7].sum() == 0 and mask.sum() == 64 - 20
    out, _ = call(registry, "ImagePadKJ", image=image, top=1, left=1, pad_mode="edge")
    assert torch.allclose(out[0, 0, 1:], image[0, 0].mean(0).expand(5, 3))  # top: the top row's mean
    assert torch.allclose(out[0, :, 0], image[0, :, 0].mean(0).expand(5, 3))  # left (over the corner)
    out, mask = call(registry, "ImagePadKJ", image=image, extra_padding=1, pad_mode="color", color="#ff8000")
    assert out.shape == (1, 6, 7, 3) and torch.allclose(out[0, 0, 0], torch.tensor([1.0, 128 / 255, 0.0]))
    out, mask = call(registry, "ImagePadKJ", image=image, target_width=9, target_height=6, pad_mode="color")
    assert out.shape == (1, 6, 9, 3) and torch.equal(out[:, 1:5, 2:7], image) and out[:, 0].max() == 0
    # the colour as the pack's string_to_color reads it (PIL's names, 0..1 fractions, one grey
    # value, values clipped to 0-255; an alpha for an RGBA image)
    for text, want in (("red", ImageColor.getrgb("red")), ("0.5, 0.25, 1", (int(0.5 * 255), int(0.25 * 255), 255)),
                       ("64", (64, 64, 64)), ("300, -4, 12", (255, 0, 12)), ("#00ff7f", (0, 255, 127))):
        out, _ = call(registry, "ImagePadKJ", image=image, left=1, pad_mode="color", color=text)
        assert torch.equal(out[0, :, 0], torch.tensor([v / 255.0 for v in want]).expand(4, 3)), text
    rgba = torch.cat([image, torch.full_like(image[..., :1], 0.5)], dim=-1)
    out, _ = call(registry, "ImagePadKJ", image=rgba, top=1, pad_mode="color", color="255, 0, 0, 51")
    assert torch.equal(out[0, 0], torch.tensor([1.0, 0.0, 0.0, 0.2]).expand(5, 4))
    out = call(registry, "ImageResizeKJv2", image=image, width=7, height=4, keep_proportion="pad",
               pad_color="blue", divisible_by=0, upscale_method="nearest-exact")[0]
    assert torch.equal(out[0, :, 0], torch.tensor([0.0, 0.0, 1.0]).expand(4, 3))
    for widgets, name in (({"pad_mode": "pillarbox_blur"}, "pad_mode"),
                          ({"pad_mode": "color", "color": "not a colour"}, "color"),
                          ({"pad_mode": "color", "color": "255, 0, 0, 51"}, "color")):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "ImagePadKJ", image=image, left=1, **widgets)
        assert caught.value.input == name
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ImagePadKJ", image=image, target_width=3, target_height=6)
    assert caught.value.input == "target_width"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ImageResizeKJv2", image=image, width=7, height=4, keep_proportion="pad", pad_color="nope")
    assert caught.value.input == "pad_color"


def test_image_resize_kj_v2_reads_the_packs_graph(registry):
    """As the pack's editor saves it: the optional device widget after the required ones."""
    nodes = [ui_node(1, "EmptyImage", [40, 20, 1, 0xFF0000], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "ImageResizeKJv2", [32, 32, "lanczos", "pad", "0, 0, 255", "center", 16, "cpu"],
                     [("image", "IMAGE", 1, False), ("mask", "MASK", None, False)],
                     [("IMAGE", "IMAGE", []), ("width", "INT", []), ("height", "INT", []), ("mask", "MASK", [])])]
    workflow, values = run(registry, ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"]]), ["2"])
    assert workflow.nodes["2"].inputs["keep_proportion"] == "pad"
    image, width, height, mask = values["2"]
    assert (width, height) == (32, 32) and image.shape == (1, 32, 32, 3)
    assert torch.allclose(image[0, 0, 0], torch.tensor([0.0, 0.0, 1.0])) and image[0, 16, 16, 0] > 0.9
    node = next(n for n in export_ui(workflow, registry)["nodes"] if n["id"] == 2)
    assert node["widgets_values"] == [32, 32, "lanczos", "pad", "0, 0, 255", "center", 16, "cpu"]


def square_masks(n=3, size=16):
    masks = torch.zeros(n, size, size)
    masks[:, 6:10, 6:10] = 1
    return masks


def test_grow_mask_with_blur_grows_each_frame_more_as_grow_mask(registry):
    masks = square_masks()
    out, inverted = call(registry, "GrowMaskWithBlur", mask=masks, expand=2, incremental_expandrate=1.0,
                         tapered_corners=True)
    for i in range(3):
        assert torch.equal(out[i], call(registry, "GrowMask", mask=masks[i:i + 1], expand=2 + i)[0])
    assert torch.equal(inverted, 1 - out)
    out, _ = call(registry, "GrowMaskWithBlur", mask=masks, expand=-1, incremental_expandrate=1.0,
                  tapered_corners=False)
    assert [int(m.sum()) for m in out] == [4, 0, 0]  # 4x4 -> 2x2, then shrunk by 2 more: gone
    out, _ = call(registry, "GrowMaskWithBlur", mask=masks, flip_input=True)
    assert torch.equal(out, 1 - masks)


def test_grow_mask_with_blur_fills_holes_lerps_and_decays(registry):
    ring = torch.zeros(1, 9, 9)
    ring[0, 2:7, 2:7] = 1
    ring[0, 3:6, 3:6] = 0
    out, _ = call(registry, "GrowMaskWithBlur", mask=ring, fill_holes=True)
    assert out[0, 2:7, 2:7].min() == 1 and out.sum() == 25
    a, b = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    out, _ = call(registry, "GrowMaskWithBlur", mask=torch.cat([b, a]), lerp_alpha=0.25)
    assert torch.allclose(out[1], torch.full((4, 4), 0.75))  # 0.25 * 0 + 0.75 * previous
    half = torch.full((1, 4, 4), 0.5)
    half[0, 0, 0] = 0
    out, _ = call(registry, "GrowMaskWithBlur", mask=torch.cat([half, a]), decay_factor=0.5)
    # second frame: 0 + 0.5 * previous, scaled to a maximum of 1
    assert torch.allclose(out[1], half[0] / 0.5)


def test_grow_mask_with_blur_blurs_as_an_8_bit_picture(registry):
    from PIL import Image, ImageFilter
    masks = square_masks(1) * 0.9
    out, _ = call(registry, "GrowMaskWithBlur", mask=masks, blur_radius=1.5)
    picture = Image.fromarray((masks[0].numpy() * 255).astype("uint8")).filter(ImageFilter.GaussianBlur(1.5))
    assert torch.equal(out[0], torch.from_numpy(numpy.asarray(picture).astype("float32")) / 255)
    assert 0 < out[0, 5, 5] < out[0, 7, 7] < 0.9


def test_grow_mask_with_blur_reads_the_packs_graph(registry):
    nodes = [ui_node(1, "SolidMask", [1.0, 8, 8], outputs=[("MASK", "MASK", [1])]),
             ui_node(2, "GrowMaskWithBlur", [-2, 0, True, False, 0, 1, 1, False], [("mask", "MASK", 1, False)],
                     [("mask", "MASK", []), ("mask_inverted", "MASK", [])])]
    workflow, values = run(registry, ui_graph(nodes, [[1, 1, 0, 2, 0, "MASK"]]), ["2"])
    assert workflow.nodes["2"].inputs["expand"] == -2
    assert values["2"][0].shape == (1, 8, 8) and values["2"][0].min() == 1  # erosion leaves the edges (geodesic)


def test_image_concanate_directions_batches_and_sizes(registry):
    a, b = picture(12, 20, 2, seed=1), picture(6, 5, 1, seed=2)
    out = call(registry, "ImageConcanate", image1=a, image2=b, direction="right", match_image_size=True)
    resized = call(registry, "ImageScale", image=b, width=10, height=12, upscale_method="lanczos")
    assert out.shape == (2, 12, 30, 3)
    assert torch.equal(out[:, :, :20], a) and torch.equal(out[0, :, 20:], resized[0])
    assert torch.equal(out[1, :, 20:], resized[0])  # the shorter batch repeats its last image
    out = call(registry, "ImageConcanate", image1=a, image2=b, direction="up", match_image_size=True)
    assert out.shape == (2, 24 + 12, 20, 3) and torch.equal(out[:, 24:], a)  # 20 wide: 24 high, above
    c = picture(12, 4, 1, seed=3)
    out = call(registry, "ImageConcanate", image1=a, image2=c, direction="left", match_image_size=False)
    assert torch.equal(out[:, :, :4], c.expand(2, -1, -1, -1)) and torch.equal(out[:, :, 4:], a)
    rgba = torch.cat([c, torch.full((1, 12, 4, 1), 0.5)], -1)
    out = call(registry, "ImageConcanate", image1=a, image2=rgba, match_image_size=False)
    assert out.shape[-1] == 4 and out[:, :, :20, 3].min() == 1 and out[:, :, 20:, 3].max() == 0.5
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ImageConcanate", image1=a, image2=b, direction="down", match_image_size=False)
    assert caught.value.input == "image2"


def test_image_concanate_reads_the_packs_graph(registry):
    nodes = [ui_node(1, "EmptyImage", [16, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [1, 2])]),
             ui_node(2, "ImageConcanate", ["down", False],
                     [("image1", "IMAGE", 1, False), ("image2", "IMAGE", 2, False)],
                     [("IMAGE", "IMAGE", [])])]
    _, values = run(registry, ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 2, 1, "IMAGE"]]), ["2"])
    assert values["2"][0].shape == (1, 16, 16, 3)


def colour_cast(seed, n=1, h=10, w=12):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, h, w, 1, generator=g)
    mix = torch.tensor([[0.5, 0.2, 0.1], [0.1, 0.3, 0.2], [0.05, 0.1, 0.4]]) * (1 + seed % 3)
    return (base * torch.tensor([0.6, 0.3, 0.2]) + torch.rand(n, h, w, 3, generator=g) @ mix * 0.5).clamp(0, 1)


def test_color_match_mkl_gives_the_references_mean_and_covariance(registry):
    from nodes.pack_nodes_kj import mkl_transfer
    target, ref = colour_cast(1)[0].double(), colour_cast(2)[0].double()
    out = mkl_transfer(target, ref).reshape(-1, 3)
    assert torch.allclose(out.mean(0), ref.reshape(-1, 3).mean(0), atol=1e-10)
    assert torch.allclose(torch.cov(out.T), torch.cov(ref.reshape(-1, 3).T), atol=1e-10)
    assert torch.allclose(mkl_transfer(ref, ref), ref, atol=1e-6)  # an image matched to itself is unchanged
    # the library's own construction (numpy's eig, its spacing before inverting) gives the same map
    t, r = target.reshape(-1, 3).numpy(), ref.reshape(-1, 3).numpy()
    values, ua = numpy.linalg.eig(numpy.cov(t.T))
    da = numpy.diag(numpy.sqrt(values.clip(0)))
    c_values, uc = numpy.linalg.eig(da @ ua.T @ numpy.cov(r.T) @ ua @ da)
    da_inv = numpy.diag(1.0 / (numpy.diag(da) + numpy.spacing(1)))
    transfer = ua @ da_inv @ uc @ numpy.diag(numpy.sqrt(c_values.clip(0))) @ uc.T @ da_inv @ ua.T
    want = (t - t.mean(0)) @ transfer + r.mean(0)
    assert numpy.allclose(out.numpy(), want, atol=1e-9)


def test_color_match_node_strength_batches_and_refusals(registry):
    from nodes.pack_nodes_kj import mkl_transfer
    target, ref = colour_cast(1, n=2), colour_cast(5)
    out = call(registry, "ColorMatch", image_ref=ref, image_target=target, method="mkl", strength=0.5)
    want = torch.stack([t + 0.5 * (mkl_transfer(t, ref[0]) - t) for t in target]).clamp(0, 1)
    assert torch.allclose(out, want, atol=1e-6) and out.dtype == torch.float32
    assert call(registry, "ColorMatch", image_ref=ref, image_target=target, strength=0.0) is target
    for inputs, name in (({"method": "reinhard"}, "method"),
                         ({"image_ref": colour_cast(3, n=2)[:, :, :, :2]}, "image_ref")):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "ColorMatch", **{"image_ref": ref, "image_target": target, **inputs})
        assert caught.value.input == name
    nodes = [ui_node(1, "EmptyImage", [8, 8, 1, 0x336699], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "EmptyImage", [8, 8, 2, 0x993311], outputs=[("IMAGE", "IMAGE", [2])]),
             ui_node(3, "ColorMatch", ["mkl", 1.0, True], [("image_ref", "IMAGE", 1, False),
                                                          ("image_target", "IMAGE", 2, False)],
                     [("image", "IMAGE", [])])]
    _, values = run(registry, ui_graph(nodes, [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "IMAGE"]]), ["3"])
    # flat colours: the mean moves onto the reference's colour
    assert torch.allclose(values["3"][0], torch.tensor([0x33, 0x66, 0x99]) / 255.0 * torch.ones(2, 8, 8, 3), atol=1e-6)


def test_image_concat_multi_joins_in_turn_matching_the_first_image(registry):
    a, b, c = picture(12, 20, 1, seed=1), picture(6, 5, 1, seed=2), picture(24, 8, 1, seed=3)
    out = call(registry, "ImageConcatMulti", inputcount=3, image_1=a, image_2=b, image_3=c, direction="right",
               match_image_size=True)
    ab = call(registry, "ImageConcanate", image1=a, image2=b, direction="right", match_image_size=True)
    assert torch.equal(out, call(registry, "ImageConcanate", image1=ab, image2=c, direction="right",
                                 match_image_size=True))
    assert out.shape == (1, 12, 20 + 10 + 4, 3)
    # down: each next one matched to image_1's width (20), not the result's
    out = call(registry, "ImageConcatMulti", inputcount=2, image_1=a, image_2=c, direction="down",
               match_image_size=True)
    assert out.shape == (1, 12 + 60, 20, 3)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ImageConcatMulti", inputcount=3, image_1=a, image_2=a)
    assert caught.value.input == "image_3"
    nodes = [ui_node(1, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [1, 2])]),
             ui_node(2, "ImageConcatMulti", [2, "left", False], [("image_1", "IMAGE", 1, False),
                                                                 ("image_2", "IMAGE", 2, False)],
                     [("images", "IMAGE", [])])]
    workflow, values = run(registry, ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 2, 1, "IMAGE"]]), ["2"])
    assert workflow.nodes["2"].inputs["direction"] == "left" and values["2"][0].shape == (1, 8, 16, 3)


def test_insert_images_to_batch_indexed(registry):
    original, new = frames(4), frames(2) + 1
    out = call(registry, "InsertImagesToBatchIndexed", original_images=original, images_to_insert=new,
               indexes="1, -1", mode="replace")
    assert torch.equal(out, torch.stack([original[0], new[0], original[2], new[1]]))
    out = call(registry, "InsertImagesToBatchIndexed", original_images=original, images_to_insert=new,
               indexes="0, 3, 5", mode="insert")
    # new frames at 0, 3 and 5 of the 7; the inserted images repeat
    assert torch.equal(out, torch.stack([new[0], original[0], original[1], new[1], original[2], new[0], original[3]]))
    assert call(registry, "InsertImagesToBatchIndexed", original_images=original, images_to_insert=new,
                indexes="") is original
    for indexes, mode in (("1, x", "replace"), ("9", "replace"), ("3, 1", "insert")):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "InsertImagesToBatchIndexed", original_images=original, images_to_insert=new,
                 indexes=indexes, mode=mode)
        assert caught.value.input == "indexes"


def test_replace_images_in_batch(registry):
    original, new = frames(5), frames(2) + 1
    masks = torch.zeros(5, 4, 6)
    images, out_masks = call(registry, "ReplaceImagesInBatch", start_index=2, original_images=original,
                             replacement_images=new, original_masks=masks, replacement_masks=torch.ones(2, 8, 12))
    assert torch.equal(images, torch.cat([original[:2], new, original[4:]]))
    assert out_masks.shape == (5, 4, 6) and out_masks[2:4].min() == 1 and out_masks[[0, 1, 4]].max() == 0
    small = frames(1, 2, 3)
    images, placeholder = call(registry, "ReplaceImagesInBatch", start_index=0, original_images=original,
                               replacement_images=small)
    assert torch.equal(images[0], call(registry, "ImageScale", image=small, width=6, height=4,
                                       upscale_method="lanczos", crop="center")[0])
    assert placeholder.shape == (1, 64, 64) and not placeholder.any()
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ReplaceImagesInBatch", start_index=4, original_images=original, replacement_images=new)
    assert caught.value.input == "start_index"


def test_resize_mask_is_image_scale_on_the_mask(registry):
    masks = torch.rand(2, 12, 20, generator=torch.Generator().manual_seed(4))
    for method in ("bilinear", "lanczos", "area"):
        out, w, h = call(registry, "ResizeMask", mask=masks, width=10, height=10, upscale_method=method, crop="center")
        scaled = call(registry, "ImageScale", image=masks[..., None].expand(-1, -1, -1, 3), width=10, height=10,
                      upscale_method=method, crop="center")
        assert (w, h) == (10, 10) and torch.equal(out, scaled[..., 0])
    out, w, h = call(registry, "ResizeMask", mask=masks, width=10, height=0, keep_proportions=True)
    assert (w, h) == (10, 6) and out.shape == (2, 6, 10)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ResizeMask", mask=masks, width=0, height=8)
    assert caught.value.input == "width"
    nodes = [ui_node(1, "SolidMask", [1.0, 16, 8], outputs=[("MASK", "MASK", [1])]),
             ui_node(2, "ResizeMask", [8, 8, True, "bilinear", "disabled"], [("mask", "MASK", 1, False)],
                     [("mask", "MASK", []), ("width", "INT", []), ("height", "INT", [])])]
    _, values = run(registry, ui_graph(nodes, [[1, 1, 0, 2, 0, "MASK"]]), ["2"])
    assert values["2"][1:] == (8, 4)


def test_create_shape_mask(registry):
    masks, inverted = call(registry, "CreateShapeMask", shape="square", frames=3, location_x=10, location_y=12,
                           grow=4, frame_width=32, frame_height=24, shape_width=8, shape_height=10)
    assert masks.shape == (3, 24, 32) and torch.equal(inverted, 1 - masks)
    for i, (w, h) in enumerate([(4, 5), (6, 7), (8, 9)]):  # half sizes, growing by 2 each side
        want = torch.zeros(24, 32)
        want[max(12 - h, 0):12 + h + 1, max(10 - w, 0):10 + w + 1] = 1
        assert torch.equal(masks[i], want)
    circle, _ = call(registry, "CreateShapeMask", shape="circle", location_x=20, location_y=20, frame_width=40,
                     frame_height=40, shape_width=20, shape_height=20)
    box = circle[0, 10:31, 10:31]  # the box 10..30, both ends included, holds all of it
    assert circle.sum() == box.sum() and torch.equal(box, box.flip(0)) and torch.equal(box, box.T)
    assert abs(circle.sum() - math.pi * 10.5 ** 2) < 20 and circle[0, 20, 20] == 1 and circle[0, 20, 31] == 0
    triangle, _ = call(registry, "CreateShapeMask", shape="triangle", location_x=20, location_y=20, frame_width=40,
                       frame_height=40, shape_width=20, shape_height=20)
    rows = triangle[0].sum(1)
    box = triangle[0, :, 10:31]
    assert rows[10] <= 2 and rows[30] == 21 and triangle.sum() == box.sum() and torch.equal(box, box.flip(1))


def test_create_shape_mask_reads_the_packs_graph(registry):
    nodes = [ui_node(1, "CreateShapeMask", ["square", 2, 8, 8, -2, 16, 16, 8, 8],
                     outputs=[("mask", "MASK", []), ("mask_inverted", "MASK", [])])]
    _, values = run(registry, ui_graph(nodes), ["1"])
    assert [int(m.sum()) for m in values["1"][0]] == [81, 49]  # 9x9, then 7x7


def test_color_match_histogram_methods(registry):
    from nodes.pack_nodes_kj import histogram_match, mkl_transfer
    g = torch.Generator().manual_seed(7)
    target = torch.randperm(48, generator=g).reshape(4, 4, 3).double() / 48
    ref = torch.rand(4, 4, 3, generator=g, dtype=torch.float64)
    out = histogram_match(target, ref)
    # distinct values, as many of each: each channel takes exactly the reference's values, in target's order
    for c in range(3):
        assert torch.equal(out[..., c].flatten().sort().values, ref[..., c].flatten().sort().values)
        assert torch.equal(out[..., c].flatten().argsort(), target[..., c].flatten().argsort())
    assert torch.equal(histogram_match(ref, ref), ref)
    image, reference = colour_cast(1), colour_cast(4)
    out = call(registry, "ColorMatch", image_ref=reference, image_target=image, method="hm-mkl-hm")
    want = histogram_match(mkl_transfer(histogram_match(image[0], reference[0]), reference[0]), reference[0])
    assert torch.allclose(out[0], want.clamp(0, 1).float(), atol=1e-6)


def test_diffusion_model_loader_kj_is_unet_loader_with_a_compute_dtype(registry, tmp_folders, caplog):
    from graphflow.testing import write_checkpoint
    (tmp_folders.models / "diffusion_models").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "diffusion_models" / "tiny.safetensors", "sd1")
    core = call(registry, "LoadDiffusionModel", unet_name="tiny.safetensors")
    model = call(registry, "DiffusionModelLoaderKJ", model_name="tiny.safetensors")
    assert model.dtype == core.dtype
    assert all(torch.equal(a, b) for a, b in zip(model.unet.state_dict().values(), core.unet.state_dict().values()))
    with caplog.at_level(logging.WARNING):
        bf16 = call(registry, "DiffusionModelLoaderKJ", model_name="tiny.safetensors", compute_dtype="bf16",
                    sage_attention="auto")
    assert "sage_attention changes nothing" in caplog.text
    want = call(registry, "ModelComputeDtype", model=core, dtype="bf16")
    assert bf16.dtype == torch.bfloat16
    assert all(torch.equal(a, b) for a, b in zip(bf16.unet.state_dict().values(), want.unet.state_dict().values()))
    fp8 = call(registry, "DiffusionModelLoaderKJ", model_name="tiny.safetensors", weight_dtype="fp8_e4m3fn_fast")
    fp8_core = call(registry, "LoadDiffusionModel", unet_name="tiny.safetensors", weight_dtype="fp8_e4m3fn")
    assert all(torch.equal(a, b) for a, b in zip(fp8.unet.state_dict().values(), fp8_core.unet.state_dict().values()))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "DiffusionModelLoaderKJ", model_name="tiny.safetensors", extra_state_dict="/x/vace.safetensors")
    assert caught.value.input == "extra_state_dict"
    nodes = [ui_node(1, "DiffusionModelLoaderKJ", ["tiny.safetensors", "default", "fp32", False, "disabled", False],
                     [("extra_state_dict", "STRING", None, False)], [("MODEL", "MODEL", [])])]
    workflow = parse_workflow(ui_graph(nodes), registry)
    assert workflow.nodes["1"].inputs["compute_dtype"] == "fp32" and workflow.nodes["1"].inputs["model_name"] == \
        "tiny.safetensors"


def test_vae_loader_kj_is_vae_loader(registry, tmp_folders, caplog):
    from graphflow.testing import write_vae
    (tmp_folders.models / "vae").mkdir(exist_ok=True)
    write_vae(tmp_folders.models / "vae" / "tiny_vae.safetensors")
    core = call(registry, "LoadVAE", vae_name="tiny_vae.safetensors")
    with caplog.at_level(logging.WARNING):
        vae = call(registry, "VAELoaderKJ", vae_name="tiny_vae.safetensors", weight_dtype="bf16")
    assert "weight_dtype bf16 are not followed" in caplog.text
    assert type(vae) is type(core)
    core_weights, weights = core.module.state_dict(), vae.module.state_dict()
    assert core_weights.keys() == weights.keys() and all(torch.equal(core_weights[k], weights[k]) for k in weights)
    nodes = [ui_node(1, "VAELoaderKJ", ["tiny_vae.safetensors", "main_device", "bf16"], outputs=[("vae", "VAE", [])])]
    workflow = parse_workflow(ui_graph(nodes), registry)
    assert workflow.nodes["1"].inputs["weight_dtype"] == "bf16"


def test_indexed_reversed_and_interleaved_batches(registry):
    images = frames(5)
    assert torch.equal(call(registry, "GetImagesFromBatchIndexed", images=images, indexes="4, 0, -2"),
                       images[[4, 0, 3]])
    with pytest.raises(NodeInputError) as caught:
        call(registry, "GetImagesFromBatchIndexed", images=images, indexes="5")
    assert caught.value.input == "indexes"
    video = {"samples": torch.randn(1, 4, 6, 2, 2), "noise_mask": torch.ones(1, 1, 6, 2, 2)}
    out = call(registry, "GetLatentsFromBatchIndexed", latents=video, indexes="0, 5", latent_format="BCTHW")
    assert torch.equal(out["samples"], video["samples"][:, :, [0, 5]]) and out["noise_mask"] is video["noise_mask"]
    assert torch.equal(call(registry, "ReverseImageBatch", images=images), images[[4, 3, 2, 1, 0]])
    out, mask = call(registry, "ImageBatchRepeatInterleaving", images=images[:2], repeats=3)
    assert torch.equal(out, images[[0, 0, 0, 1, 1, 1]]) and mask[:, 0, 0].tolist() == [1, 0, 0, 1, 0, 0]
    given = torch.rand(2, 4, 6)
    _, mask = call(registry, "ImageBatchRepeatInterleaving", images=images[:2], repeats=2, mask=given)
    assert torch.equal(mask, given[[0, 0, 1, 1]])


def test_mask_batch_multi_and_pass_throughs(registry):
    import torch.nn.functional as F
    a, b = torch.rand(2, 8, 8), torch.rand(1, 4, 6)
    out = call(registry, "MaskBatchMulti", inputcount=2, mask_1=a, mask_2=b)
    want = F.interpolate(b[:, None], size=(8, 8), mode="bicubic")[:, 0]
    assert out.shape == (3, 8, 8) and torch.equal(out[:2], a) and torch.allclose(out[2], want[0], atol=1e-6)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "MaskBatchMulti", inputcount=3, mask_1=a, mask_2=b)
    assert caught.value.input == "mask_3"
    image, model, cond = frames(1), object(), [["c", {}]]
    assert call(registry, "ImagePass", image=image) is image and call(registry, "ImagePass") is None
    assert call(registry, "ModelPassThrough", model=model) is model
    assert call(registry, "CondPassThrough", positive=cond) == (cond, None)


def test_image_pad_kj_refuses_a_linked_target_above_max_size(registry):
    """A linked INT has no bounds: a huge target is refused before it is allocated."""
    image = torch.zeros(1, 4, 4, 3)
    for big in (10 ** 12, 16385):
        for name in ("target_width", "target_height"):
            targets = {"target_width": 8, "target_height": 8, name: big}
            with pytest.raises(NodeInputError) as e:
                call(registry, "ImagePadKJ", image=image, **targets)
            assert e.value.input == name and "16384" in str(e.value)


def refused(registry, nodes, limits):
    """The ids ("1", "2", ...) of the `nodes` that validation refuses under `limits`; the last one's
    first output (a MASK shown through MaskToImage) goes to a PreviewImage."""
    graph = {str(i + 1): node for i, node in enumerate(nodes)}
    end = str(len(graph))
    if next(iter(registry.get(nodes[-1]["type"]).output_specs)).type == "MASK":
        graph[str(len(graph) + 1)] = {"type": "MaskToImage", "inputs": {"mask": [end, 0]}}
        end = str(len(graph))
    graph[str(len(graph) + 1)] = {"type": "PreviewImage", "inputs": {"images": [end, 0]}}
    return {p.node_id for p in validate(parse_workflow({"nodes": graph}), registry, limits=limits)}


def empty_image(width, height, batch=1):
    return {"type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": batch}}


def test_create_shape_mask_declares_its_size_so_limits_refuse_a_huge_one(registry):
    cls = registry.get("CreateShapeMask")
    widgets = {"frames": 3, "frame_width": 40, "frame_height": 30}
    assert default_estimate(cls, widgets, {}).size == Size(3, 30, 40)
    shape = {"type": "CreateShapeMask", "inputs": {"frames": 4096, "frame_width": 4096, "frame_height": 4096}}
    assert refused(registry, [shape], RunLimits(max_batch=64)) == {"1"}
    shape = {"type": "CreateShapeMask", "inputs": {"frames": 2, "frame_width": 4096, "frame_height": 4096}}
    assert refused(registry, [shape], RunLimits(max_pixels=2048 * 2048)) == {"1"}
    assert refused(registry, [shape], RunLimits(max_batch=64, max_pixels=4096 * 4096)) == set()


def test_image_resize_kj_v2_estimates_its_size_so_limits_refuse_a_huge_one(registry):
    cls = registry.get("ImageResizeKJv2")
    for keep in ("stretch", "resize", "pad", "crop", "total_pixels"):
        widgets = {"width": 100, "height": 30, "keep_proportion": keep, "crop_position": "center", "divisible_by": 8}
        image = torch.zeros(2, 48, 64, 3)
        out = call(registry, "ImageResizeKJv2", image=image, **widgets)[0]
        assert cls.estimate(widgets, {"image": Size(2, 48, 64)}).size == Size(*out.shape[:3]), keep
    resize = {"type": "ImageResizeKJv2", "inputs": {"image": ["1", 0], "width": 16384, "height": 16384}}
    assert refused(registry, [empty_image(64, 64), resize], RunLimits(max_pixels=8192 * 8192)) == {"2"}


def test_concatenations_estimate_their_size_so_limits_refuse_a_huge_one(registry):
    a, b, c = torch.zeros(2, 64, 8, 3), torch.zeros(3, 16, 128, 3), torch.zeros(1, 20, 30, 3)
    sizes = {name: Size(*t.shape[:3]) for name, t in (("a", a), ("b", b), ("c", c))}
    for direction in ("right", "down", "left", "up"):
        for match, second in ((True, "b"), (False, "a")):
            images = {"image1": a, "image2": {"a": a, "b": b}[second]}
            widgets = {"direction": direction, "match_image_size": match}
            out = call(registry, "ImageConcanate", **images, **widgets)
            estimate = registry.get("ImageConcanate").estimate(widgets, {"image1": sizes["a"],
                                                                          "image2": sizes[second]})
            assert estimate.size == Size(*out.shape[:3]), (direction, match)
        widgets = {"inputcount": 3, "direction": direction, "match_image_size": True}
        out = call(registry, "ImageConcatMulti", image_1=a, image_2=b, image_3=c, **widgets)
        estimate = registry.get("ImageConcatMulti").estimate(widgets, {"image_1": sizes["a"], "image_2": sizes["b"],
                                                                        "image_3": sizes["c"]})
        assert estimate.size == Size(*out.shape[:3]), direction
    concat = {"type": "ImageConcanate", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}}
    limits = RunLimits(max_pixels=1024 * 1024)  # a 512x1 image beside a 8x64 one comes out 32776x64
    assert refused(registry, [empty_image(8, 64), empty_image(512, 1), concat], limits) == {"3"}


def test_image_pad_kj_refuses_padding_beyond_max_size(registry):
    image = torch.zeros(1, 4, 4, 3)
    with pytest.raises(NodeInputError) as e:
        call(registry, "ImagePadKJ", image=image, left=16384, extra_padding=16384)
    assert e.value.input == "extra_padding" and "49156x32772" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        call(registry, "ImagePadKJ", image=image, top=16000, bottom=381)
    assert e.value.input == "left" and "4x16385" in str(e.value)
    assert call(registry, "ImagePadKJ", image=image, top=16000, bottom=380, pad_mode="color")[0].shape == (1, 16384, 4, 3)


def test_repeat_interleaving_declares_its_batch_so_limits_refuse_a_huge_one(registry):
    assert registry.get("ImageBatchRepeatInterleaving").estimate({"repeats": 3}, {"images": Size(2, 4, 5)}).size == \
        Size(6, 4, 5)
    repeat = {"type": "ImageBatchRepeatInterleaving", "inputs": {"images": ["1", 0], "repeats": 4096}}
    assert refused(registry, [empty_image(8, 8, 2), repeat], RunLimits(max_batch=64)) == {"2"}


def test_indexed_nodes_estimate_the_listed_batch_so_limits_refuse_a_huge_one(registry):
    images, size = torch.zeros(3, 4, 5, 3), Size(3, 4, 5)
    for node, name, widgets, extra in [("GetImagesFromBatchIndexed", "images", {}, {}),
                                       ("InsertImagesToBatchIndexed", "original_images", {"mode": "insert"},
                                        {"images_to_insert": images[:1]}),
                                       ("InsertImagesToBatchIndexed", "original_images", {"mode": "replace"},
                                        {"images_to_insert": images[:1]})]:
        for indexes in ("0, 1, 2, 3", "2", "0, 0, 1, 1, 2"):
            try:
                out = call(registry, node, **{name: images}, indexes=indexes, **widgets, **extra)
            except NodeInputError:
                continue
            estimate = registry.get(node).estimate({"indexes": indexes, **widgets}, {name: size})
            assert estimate.size == Size(*out.shape[:3]), (node, widgets, indexes)
        assert registry.get(node).estimate({"indexes": "a, b", **widgets}, {name: size}).size == size
    latent = registry.get("GetLatentsFromBatchIndexed")
    assert latent.estimate({"indexes": "0, 0, 0, 0", "latent_format": "BCHW"}, {"latents": size}).size == \
        Size(4, 4, 5)
    pick = {"type": "GetImagesFromBatchIndexed", "inputs": {"images": ["1", 0], "indexes": ", ".join(["0"] * 65)}}
    assert refused(registry, [empty_image(8, 8, 1), pick], RunLimits(max_batch=64)) == {"2"}


def test_insert_images_refuses_repeated_indexes_and_an_empty_insert(registry):
    images = torch.zeros(3, 4, 5, 3)
    with pytest.raises(NodeInputError) as e:
        call(registry, "InsertImagesToBatchIndexed", original_images=images, images_to_insert=images[:1],
             indexes="0, 0", mode="insert")
    assert e.value.input == "indexes" and "each once" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        call(registry, "InsertImagesToBatchIndexed", original_images=images, images_to_insert=images[:0],
             indexes="0, 1", mode="insert")
    assert e.value.input == "images_to_insert"


def test_batch_multi_and_resize_mask_estimate_their_size(registry):
    a, b, c = Size(2, 4, 5), Size(3, 6, 7), Size(1, 4, 5)
    widgets = {"inputcount": 3}
    assert registry.get("ImageBatchMulti").estimate(widgets, {"image_1": a, "image_2": b, "image_3": c}).size == \
        Size(6, 4, 5)
    assert registry.get("MaskBatchMulti").estimate(widgets, {"mask_1": a, "mask_2": b, "mask_3": c}).size == \
        Size(6, 4, 5)
    assert registry.get("ImageBatch").estimate({}, {"image1": a, "image2": b}).size == Size(5, 4, 5)
    out = call(registry, "ImageBatchMulti", image_1=torch.zeros(2, 4, 5, 3), image_2=torch.zeros(3, 6, 7, 3),
               image_3=torch.zeros(1, 4, 5, 3), **widgets)
    assert out.shape[:3] == (6, 4, 5)
    mask = torch.zeros(2, 30, 40)
    for keep in (False, True):
        widgets = {"width": 100, "height": 0 if keep else 50, "keep_proportions": keep}
        out = call(registry, "ResizeMask", mask=mask, **widgets)[0]
        assert registry.get("ResizeMask").estimate(widgets, {"mask": Size(2, 30, 40)}).size == Size(*out.shape), keep
    multi = {"type": "ImageBatchMulti", "inputs": {"image_1": ["1", 0], "image_2": ["2", 0], "inputcount": 2}}
    assert refused(registry, [empty_image(8, 8, 40), empty_image(8, 8, 40), multi], RunLimits(max_batch=64)) == {"3"}


def test_bad_inputs_give_clear_errors_not_crashes(registry):
    with pytest.raises(NodeInputError) as e:
        call(registry, "GetLatentRangeFromBatch", latents={"samples": torch.zeros(4, 4, 8, 8)}, start_index=-1,
             num_frames=-1)
    assert e.value.input == "start_index" and "num_frames is -1" in str(e.value)
    for ref, target in ((torch.rand(1, 1, 1, 3), torch.rand(1, 4, 4, 3)), (torch.rand(1, 4, 4, 3), torch.rand(2, 1, 1, 3))):
        with pytest.raises(NodeInputError) as e:
            call(registry, "ColorMatch", image_ref=ref, image_target=target, method="mkl")
        assert "at least 2 pixels" in str(e.value)
    a, b = torch.rand(4, 5), torch.rand(3, 4, 5)
    out = call(registry, "MaskBatchMulti", mask_1=a, mask_2=b)
    assert out.shape == (4, 4, 5) and torch.equal(out[0], a) and torch.equal(out[1:], b)
    assert call(registry, "MaskBatchMulti", mask_1=a, mask_2=a).shape == (2, 4, 5)
    masks = call(registry, "ReplaceImagesInBatch", original_masks=torch.zeros(4, 5), replacement_masks=a,
                 start_index=0)[1]
    assert masks.shape == (1, 4, 5) and torch.equal(masks[0], a)


def test_color_match_reads_a_shared_reference_once(registry, monkeypatch):
    import nodes.pack_nodes_kj as kj
    from nodes.pack_nodes_kj import histogram_match, mkl_transfer
    calls = []
    moments = kj.ColorReference.moments.func
    monkeypatch.setattr(kj.ColorReference, "moments",
                        functools.cached_property(lambda self: calls.append(1) or moments(self)))
    kj.ColorReference.moments.__set_name__(kj.ColorReference, "moments")
    torch.manual_seed(0)
    ref, target = torch.rand(1, 6, 5, 3), torch.rand(3, 6, 5, 3)
    out = call(registry, "ColorMatch", image_ref=ref, image_target=target, method="hm-mkl-hm")
    assert len(calls) == 1
    want = torch.stack([histogram_match(mkl_transfer(histogram_match(t, ref[0]), ref[0]), ref[0]) for t in target])
    assert torch.equal(out, want.float().clamp(0, 1))
