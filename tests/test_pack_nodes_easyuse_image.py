"""ComfyUI-Easy-Use's image and any-type nodes (nodes/pack_nodes_easyuse.py): the scale-down nodes
against Pillow's Lanczos, crops / concatenations / joins against tensor slicing and torch.cat,
the ratio against math.gcd, batchAnything against torch.cat and F.interpolate, convertAnything
against Python's conversions, the list nodes through the executor, the clear errors, a UI-format
save and an API prompt with the pack's class names, and export round trips."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_easyuse_samplers import run_with_limits  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def _images(b=2, h=30, w=40, seed=0):
    return torch.rand(b, h, w, 3, generator=torch.Generator().manual_seed(seed))


def _pillow_lanczos(image, width, height):
    picture = Image.fromarray(np.clip(image.numpy() * 255.0, 0, 255).astype(np.uint8)).convert("RGB")
    return torch.from_numpy(np.asarray(picture.resize((width, height), Image.LANCZOS), dtype=np.float32) / 255.0)


def test_scale_down_is_pillows_lanczos_after_the_centre_crop(registry):
    images = _images()
    got = call(registry, "EasyImageScaleDown", images=images, width=20, height=15, crop="disabled")
    assert got.shape == (2, 15, 20, 3)
    assert all(torch.equal(got[i], _pillow_lanczos(images[i], 20, 15)) for i in range(2))
    got = call(registry, "EasyImageScaleDown", images=images, width=10, height=10, crop="center")
    cut = round((40 - 40 * (1.0 / (40 / 30))) / 2)  # 5 columns off each side of the 40x30 images
    assert all(torch.equal(got[i], _pillow_lanczos(images[i, :, cut:40 - cut], 10, 10)) for i in range(2))


def test_scale_down_by_and_to_size(registry):
    images = _images()
    got = call(registry, "EasyImageScaleDownBy", images=images, scale_by=0.33)
    assert got.shape[1:3] == (int(30 * 0.33), int(40 * 0.33))
    want = call(registry, "EasyImageScaleDown", images=images, width=int(40 * 0.33), height=int(30 * 0.33),
                crop="center")
    assert torch.equal(got, want)
    longer = call(registry, "EasyImageScaleDownToSize", images=images, size=20, mode=True)
    assert longer.shape[1:3] == (15, 20)
    shorter = call(registry, "EasyImageScaleDownToSize", images=images, size=15, mode=False)
    assert shorter.shape[1:3] == (15, 20)
    never_up = call(registry, "EasyImageScaleDownToSize", images=images, size=400, mode=True)
    assert never_up.shape[1:3] == (30, 40)
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyImageScaleDownBy", images=_images(h=30, w=40), scale_by=0.01)
    assert e.value.input == "scale_by"


def test_inset_crop_in_pixels_and_percent_snapped_to_8(registry):
    image = _images(1, 64, 80)
    got = call(registry, "EasyImageInsetCrop", image=image, measurement="Pixels", left=8, right=17, top=0, bottom=16)
    assert torch.equal(got, image[:, 0:64 - 16, 8:80 - 16])  # right 17 snaps to 16
    got = call(registry, "EasyImageInsetCrop", image=image, measurement="Percentage", left=25, right=0, top=50,
               bottom=0)
    assert torch.equal(got, image[:, 32:, 16:])  # 25% of 80 = 20 -> 16; 50% of 64 = 32
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyImageInsetCrop", image=image, left=48, right=40)
    assert e.value.input == "left"
    # sides that meet exactly leave nothing either (the pack gives a 0-wide image there)
    for sides, name in (({"left": 40, "right": 40}, "left"), ({"top": 32, "bottom": 32}, "top"),
                        ({"measurement": "Percentage", "left": 50, "right": 50}, "left")):
        with pytest.raises(NodeInputError, match="leave no") as e:
            call(registry, "EasyImageInsetCrop", image=image, **sides)
        assert e.value.input == name
    assert call(registry, "EasyImageInsetCrop", image=image, left=40, right=32).shape == (1, 64, 8, 3)


def test_ratio_pixel_perfect_split_and_join(registry):
    image = _images(3, 48, 64)
    assert call(registry, "EasyImageRatio", image=image) == (4, 3, 4.0, 3.0)
    w, h = 1366, 768
    g = math.gcd(w, h)
    assert call(registry, "EasyImageRatio", image=torch.zeros(1, h, w, 3))[:2] == (w // g, h // g)
    assert call(registry, "EasyImagePixelPerfect", image=image, resize_mode="Resize and Fill") == 48
    parts = call(registry, "EasyImagesSplitImage", images=image)
    assert [p is None for p in parts] == [False, False, False, True, True]
    assert all(torch.equal(parts[i], image[i:i + 1]) for i in range(3))
    horizontal = call(registry, "EasyJoinImageBatch", images=image, mode="horizontal")
    assert torch.equal(horizontal, torch.cat([image[0], image[1], image[2]], dim=1)[None])
    vertical = call(registry, "EasyJoinImageBatch", images=image, mode="vertical")
    assert torch.equal(vertical, image.reshape(1, 3 * 48, 64, 3))


def test_concat_in_each_direction(registry):
    a, b = _images(1, 16, 20, seed=1), _images(1, 16, 12, seed=2)
    assert torch.equal(call(registry, "EasyImageConcat", image1=a, image2=b, direction="right"), torch.cat((a, b), 2))
    assert torch.equal(call(registry, "EasyImageConcat", image1=a, image2=b, direction="left"), torch.cat((b, a), 2))
    c = _images(1, 8, 20, seed=3)
    assert torch.equal(call(registry, "EasyImageConcat", image1=a, image2=c, direction="down"), torch.cat((a, c), 1))
    assert torch.equal(call(registry, "EasyImageConcat", image1=a, image2=c, direction="up"), torch.cat((c, a), 1))
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyImageConcat", image1=a, image2=b, direction="down")
    assert e.value.input == "image2"
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyImageConcat", image1=a, image2=b, match_image_size=True)
    assert e.value.input == "match_image_size"


def test_batch_anything_by_the_packs_rules(registry):
    a, b = _images(2, 16, 16, seed=1), _images(1, 8, 16, seed=2)
    got = call(registry, "EasyBatchAnything", any_1=a, any_2=b)
    # b (8x16) centre-cropped to a's square aspect (4 columns off each side), resized bilinearly
    want_b = F.interpolate(b.movedim(-1, 1)[:, :, :, 4:12], size=(16, 16), mode="bilinear").movedim(1, -1)
    assert torch.allclose(got, torch.cat((a, want_b)), atol=1e-6)
    latent_a = {"samples": torch.zeros(2, 4, 8, 8)}
    latent_b = {"samples": torch.ones(1, 4, 8, 8), "batch_index": [5]}
    joined = call(registry, "EasyBatchAnything", any_1=latent_a, any_2=latent_b)
    assert torch.equal(joined["samples"], torch.cat((latent_a["samples"], latent_b["samples"])))
    assert joined["batch_index"] == [0, 1, 5]
    assert call(registry, "EasyBatchAnything", any_1="x", any_2=["a"]) == ["a", "x"]
    assert call(registry, "EasyBatchAnything", any_1=3, any_2="y") == [3, "y"]
    assert call(registry, "EasyBatchAnything", any_1=[1], any_2=[2, 3]) == [1, 2, 3]
    with pytest.raises(NodeInputError):
        call(registry, "EasyBatchAnything", any_1={"a": 1}, any_2={"b": 2})


def test_batch_anything_joins_masks_of_one_size_and_names_the_rest(registry):
    """The pack cats any tensors of the same shape, masks included; its resize is for images."""
    m1, m2 = torch.rand(2, 6, 9), torch.rand(3, 6, 9)
    assert torch.equal(call(registry, "EasyBatchAnything", any_1=m1, any_2=m2), torch.cat((m1, m2)))
    for other in (torch.rand(1, 6, 8), _images(1, 6, 9)):  # another size; an image batch
        with pytest.raises(NodeInputError) as e:
            call(registry, "EasyBatchAnything", any_1=m1, any_2=other)
        assert e.value.input == "any_2"


def test_convert_anything_is_pythons_conversion(registry):
    assert call(registry, "EasyConvertAnything", anything=3.7, output_type="int") == int(3.7)
    assert call(registry, "EasyConvertAnything", anything="2.5", output_type="float") == 2.5
    assert call(registry, "EasyConvertAnything", anything=0, output_type="boolean") is False
    assert call(registry, "EasyConvertAnything", anything=[1, 2], output_type="string") == str([1, 2])
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyConvertAnything", anything="many", output_type="int")
    assert e.value.input == "anything"


def test_list_nodes_length_index_and_shape_through_a_graph(registry):
    """API prompt with the pack's class names: a batch split into a list, its length and an
    item; a single batch's length and image; the list joined back; the shapes shown."""
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 3, "color": 0xFF0000}},
        "2": {"class_type": "easy imageBatchToImageList", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "easy lengthAnything", "inputs": {"any": ["2", 0]}},
        "4": {"class_type": "easy indexAnything", "inputs": {"any": ["2", 0], "index": 2}},
        "5": {"class_type": "easy lengthAnything", "inputs": {"any": ["1", 0]}},
        "6": {"class_type": "easy indexAnything", "inputs": {"any": ["1", 0], "index": 1}},
        "7": {"class_type": "easy imageListToImageBatch", "inputs": {"images": ["2", 0]}},
        "8": {"class_type": "easy showTensorShape", "inputs": {"tensor": ["1", 0]}},
        "9": {"class_type": "easy convertAnything", "inputs": {"*": ["3", 0], "output_type": "string"}},
        "10": {"class_type": "easy outputToList", "inputs": {"tuple": ["11", 0]}},
        "11": {"class_type": "easy batchAnything", "inputs": {"any_1": ["9", 0], "any_2": ["12", 0]}},
        "12": {"class_type": "easy string", "inputs": {"value": "b"}},
        "13": {"class_type": "easy lengthAnything", "inputs": {"any": ["10", 0]}},
    }
    result = run_graph(registry, graph, ["3", "4", "5", "6", "7", "8", "13"])
    values = result.values
    assert values["3"][0] == 3 and values["5"][0] == 3
    assert values["4"][0].shape == (1, 8, 16, 3) and values["6"][0].shape == (1, 8, 16, 3)
    assert values["7"][0].shape == (3, 8, 16, 3)
    assert result.outputs["8"]["text"] == [[3, 8, 16, 3]]
    assert values["13"][0] == 2  # ["3", "b"] handed on as two items
    back = export_api(parse_workflow(graph, registry), registry)
    assert back["9"]["inputs"]["*"] == ["3", 0] and back["9"]["class_type"] == "easy convertAnything"


def test_ui_save_scale_concat_and_save(registry, tmp_folders):
    """UI save: easy imageScaleDownBy -> easy imageConcat (with the original) -> easy imageSave."""
    nodes = [
        ui_node(1, "EmptyImage", [32, 32, 1, 0x3366FF], [], [("IMAGE", "IMAGE", [1, 2])]),
        ui_node(2, "easy imageScaleDownToSize", [16, True], [("images", "IMAGE", 1, False)],
                [("IMAGE", "IMAGE", [3])]),
        ui_node(3, "easy imageScaleDown", [16, 16, "center"], [("images", "IMAGE", 2, False)],
                [("IMAGE", "IMAGE", [4])]),
        ui_node(4, "easy imageConcat", ["right", False], [("image1", "IMAGE", 3, False),
                                                         ("image2", "IMAGE", 4, False)],
                [("IMAGE", "IMAGE", [5])]),
        ui_node(5, "easy imageSave", ["easyui", False], [("images", "IMAGE", 5, False)]),
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 3, 0, "IMAGE"], [3, 2, 0, 4, 0, "IMAGE"],
             [4, 3, 0, 4, 1, "IMAGE"], [5, 4, 0, 5, 0, "IMAGE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["4", "5"])
    joined = result.values["4"][0]
    assert joined.shape == (1, 16, 16 + 16, 3)  # the two 16x16 scalings side by side
    saved = result.outputs["5"]["images"]
    assert len(saved) == 1 and saved[0]["type"] == "output" and saved[0]["filename"].startswith("easyui")
    exported = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert exported[3]["widgets_values"] == [16, 16, "center"] and exported[5]["type"] == "easy imageSave"


def _png_base64(array, mode):
    import base64
    import io
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_load_image_base64_decodes_rgb_and_alpha_as_the_pack(registry, tmp_folders):
    """API prompt: an RGBA PNG's colours and alpha (the mask: alpha / 255, not inverted), as
    Pillow reads the same lossless file; a grey PNG made RGB; bad text named."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(6, 9, 4), dtype=np.uint8)
    graph = {"1": {"class_type": "easy loadImageBase64", "inputs": {
        "base64_data": _png_base64(rgba, "RGBA"), "image_output": "Hide/Save", "save_prefix": "b64"}}}
    result = run_graph(registry, graph, ["1"])
    image, mask = result.values["1"]
    assert torch.equal(image[0], torch.from_numpy(rgba[..., :3].astype(np.float32) / 255.0))
    assert torch.equal(mask[0], torch.from_numpy(rgba[..., 3].astype(np.float32) / 255.0))
    assert result.outputs["1"]["images"][0]["filename"].startswith("b64")
    back = export_api(parse_workflow(graph, registry), registry)
    assert back["1"]["class_type"] == "easy loadImageBase64"
    grey = rng.integers(0, 256, size=(5, 4), dtype=np.uint8)
    image, mask = call(registry, "EasyLoadImageBase64", base64_data=_png_base64(grey, "L"), image_output="Hide")
    assert torch.equal(image[0], torch.from_numpy(np.repeat(grey[..., None], 3, -1).astype(np.float32) / 255.0))
    assert torch.equal(mask, torch.ones(1, 5, 4))
    for bad in ("not base64!!", "aGVsbG8="):  # the second decodes to "hello", no picture
        with pytest.raises(NodeInputError) as e:
            call(registry, "EasyLoadImageBase64", base64_data=bad, image_output="Hide")
        assert e.value.input == "base64_data"


def test_batch_anything_declares_the_joined_batch_before_it_runs(registry):
    """Two image batches join at any_1's size: the estimate the planner checks says so."""
    from graphflow.resource_limits import Size
    estimate = registry.get("EasyBatchAnything").estimate({}, {"any_1": Size(2, 16, 24), "any_2": Size(300, 8, 8)})
    assert estimate.size == Size(302, 16, 24)
    assert registry.get("EasyBatchAnything").estimate({}, {"any_1": None, "any_2": Size(1, 8, 8)}).size is None


@pytest.mark.parametrize("class_type", [
    "easy imageInsetCrop", "easy imageScaleDown", "easy imageScaleDownBy", "easy imageScaleDownToSize",
    "easy imageRatio", "easy imagePixelPerfect", "easy imageConcat", "easy imagesSplitImage", "easy joinImageBatch",
    "easy imageSave", "easy loadImageBase64", "easy imageListToImageBatch", "easy imageBatchToImageList",
    "easy imageCount", "easy imageSplitGrid",
    "easy showTensorShape", "easy batchAnything", "easy convertAnything", "easy outputToList",
    "easy lengthAnything", "easy indexAnything"])
def test_each_image_and_any_class_round_trips_through_the_ui_format(registry, class_type):
    from tests.test_pack_nodes_easyuse_samplers import test_each_new_class_round_trips_through_the_ui_format
    test_each_new_class_round_trips_through_the_ui_format(registry, class_type)


def test_image_count_and_split_grid_against_tensor_slicing(registry):
    images = _images(2, 31, 40)
    assert call(registry, "EasyImageCount", images=images) == 2
    cells = call(registry, "EasyImageSplitGrid", images=images, row=2, column=3)
    h, w = 31 // 2, 40 // 3
    want = torch.cat([images[:, i * h:(i + 1) * h, j * w:(j + 1) * w] for i in range(2) for j in range(3)])
    assert torch.equal(cells, want) and cells.shape == (12, 15, 13, 3)
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 20, "batch_size": 1, "color": 0}},
             "2": {"class_type": "easy imageSplitGrid", "inputs": {"images": ["1", 0], "row": 2, "column": 2}},
             "3": {"class_type": "easy imageCount", "inputs": {"images": ["2", 0]}}}
    assert run_graph(registry, graph, ["3"]).values["3"][0] == 4
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyImageSplitGrid", images=_images(1, 4, 4), row=5, column=1)
    assert e.value.input == "row"


def test_concat_split_grid_and_join_declare_their_output_sizes(registry):
    """The estimates the planner checks are the sizes the nodes give (compared with a run), and a
    server's limits refuse the oversized cases before they run."""
    from graphflow.resource_limits import SERVER_LIMITS, Size
    from graphflow.validation import validate
    a, b = _images(2, 6, 8), _images(2, 6, 5, seed=1)
    for direction in ("right", "left"):
        got = call(registry, "EasyImageConcat", image1=a, image2=b, direction=direction)
        size = registry.get("EasyImageConcat").estimate({"direction": direction},
                                                         {"image1": Size(2, 6, 8), "image2": Size(2, 6, 5)}).size
        assert size == Size(*got.shape[:3]) == Size(2, 6, 13)
    c = _images(2, 3, 8, seed=2)
    for direction in ("down", "up"):
        got = call(registry, "EasyImageConcat", image1=a, image2=c, direction=direction)
        size = registry.get("EasyImageConcat").estimate({"direction": direction},
                                                         {"image1": Size(2, 6, 8), "image2": Size(2, 3, 8)}).size
        assert size == Size(*got.shape[:3]) == Size(2, 9, 8)
    images = _images(3, 31, 40)
    got = call(registry, "EasyImageSplitGrid", images=images, row=2, column=3)
    size = registry.get("EasyImageSplitGrid").estimate({"row": 2, "column": 3}, {"images": Size(3, 31, 40)}).size
    assert size == Size(*got.shape[:3]) == Size(18, 15, 13)
    for mode in ("horizontal", "vertical"):
        got = call(registry, "EasyJoinImageBatch", images=images, mode=mode)
        size = registry.get("EasyJoinImageBatch").estimate({"mode": mode}, {"images": Size(3, 31, 40)}).size
        assert size == Size(*got.shape[:3])

    def problems(node):
        graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 1040, "height": 1024, "batch_size": 64,
                                                              "color": 0}},
                 "2": {"class_type": "EmptyImage", "inputs": {"width": 4100, "height": 8192, "batch_size": 1,
                                                              "color": 0}},
                 "4": {"class_type": "EmptyImage", "inputs": {"width": 4096, "height": 8192, "batch_size": 1,
                                                              "color": 0}},
                 "3": node}
        return [(p.node_id, p.input, p.message) for p in
                validate(parse_workflow(graph, registry), registry, outputs=["3"], limits=SERVER_LIMITS)]

    # 10 x 10 cells of 64 images: a batch of 6400
    split = problems({"class_type": "easy imageSplitGrid", "inputs": {"images": ["1", 0], "row": 10, "column": 10}})
    assert [(n, i) for n, i, _ in split] == [("3", "images")] and "batch of 6400" in split[0][2]
    assert problems({"class_type": "easy imageSplitGrid",
                     "inputs": {"images": ["1", 0], "row": 1, "column": 1}}) == []
    # 64 images of 1040 wide side by side: 66560 x 1024, over 8192 x 8192's pixels
    joined = problems({"class_type": "easy joinImageBatch", "inputs": {"images": ["1", 0], "mode": "horizontal"}})
    assert [(n, i) for n, i, _ in joined] == [("3", "images")] and "66560×1024" in joined[0][2]
    # 4100 + 4100 wide at 8192 high is over 8192 x 8192's pixels; 4096 + 4096 is not
    concat = {"direction": "right", "match_image_size": False}
    wide = problems({"class_type": "easy imageConcat", "inputs": {**concat, "image1": ["2", 0], "image2": ["2", 0]}})
    assert [(n, i) for n, i, _ in wide] == [("3", "image2")] and "8200×8192" in wide[0][2]
    assert problems({"class_type": "easy imageConcat", "inputs": {**concat, "image1": ["4", 0], "image2": ["4", 0]}}) == []


def _png_header_base64(width, height):
    """A PNG file of the given size with no pixel data: its header is all Pillow reads to size it."""
    import base64
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) \
        + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def test_load_image_base64_refuses_large_pictures_and_names_empty_text(registry):
    """A 13000 x 13000 picture is under Pillow's decompression-bomb error (twice MAX_IMAGE_PIXELS)
    but over MAX_IMAGE_PIXELS: refused from its header, before OpenCV would decode ~0.5 GB; the
    server's lower max_pixels when set; empty and non-picture text named without Python's reprs."""
    assert Image.MAX_IMAGE_PIXELS < 13000 ** 2 < 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(NodeInputError, match="13000x13000") as e:
        call(registry, "EasyLoadImageBase64", base64_data=_png_header_base64(13000, 13000), image_output="Hide")
    assert e.value.input == "base64_data" and str(Image.MAX_IMAGE_PIXELS) in str(e.value)
    for text in ("", "  \n"):
        with pytest.raises(NodeInputError, match="empty") as e:
            call(registry, "EasyLoadImageBase64", base64_data=text, image_output="Hide")
        assert e.value.input == "base64_data"
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyLoadImageBase64", base64_data="aGVsbG8=", image_output="Hide")
    assert "BytesIO" not in str(e.value) and " at 0x" not in str(e.value)


def test_load_image_base64_holds_to_the_servers_max_pixels(registry, run_with_limits):
    from graphflow.resource_limits import RunLimits
    picture = _png_base64(np.zeros((5, 4, 3), dtype=np.uint8), "RGB")
    run_with_limits(RunLimits(max_pixels=19))
    with pytest.raises(NodeInputError, match="4x5, over the 19 pixels") as e:
        call(registry, "EasyLoadImageBase64", base64_data=picture, image_output="Hide")
    assert e.value.input == "base64_data"
    run_with_limits(RunLimits(max_pixels=20))
    assert call(registry, "EasyLoadImageBase64", base64_data=picture, image_output="Hide")[0].shape == (1, 5, 4, 3)
