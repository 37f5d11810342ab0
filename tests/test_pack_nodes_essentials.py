"""ComfyUI_essentials' nodes in nodes/pack_nodes_essentials.py and pack_nodes_essentials_misc.py:
read from graphs as the pack's editor saves them (UI format, widgets in the pack's input order) and
from API prompts, written back, and
checked against the pack's formulas written out here with numpy, and against the libraries it
calls (torchvision's Gaussian through kornia's, scipy.ndimage) and the core nodes it wraps."""

import math

import numpy
import pytest
import scipy.ndimage
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.resource_limits import RunLimits, Size
from graphflow.testing import write_checkpoint, write_vae
from graphflow.validation import validate
from graphflow.workflow import parse_workflow
from nodes.pack_nodes import _core
from nodes.pack_nodes_essentials import expand_indexes
from nodes.pack_nodes_essentials_misc import SDXL_RESOLUTIONS
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import ui_graph, ui_node
from tests.test_pack_nodes_kj import run


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


def pictures(batch=2, height=12, width=16, channels=3, seed=0):
    return torch.rand((batch, height, width, channels), generator=torch.Generator().manual_seed(seed))


def torchvision_sigma(kernel):
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def kornia_blur(mask, kernel):
    """torchvision's gaussian_blur (what the pack calls) through kornia's equal filter: reflect borders."""
    import kornia
    sigma = torchvision_sigma(kernel)
    return kornia.filters.gaussian_blur2d(mask[:, None], (kernel, kernel), (sigma, sigma), border_type="reflect")[:, 0]


# -- graphs as the pack's editor saves them -----------------------------------------------------


def test_ui_graph_of_image_nodes_reads_runs_and_saves_back(registry):
    """EmptyImage -> ImageCrop+ (bottom-right, moved) -> ImageFlip+ -> ImageDesaturate+, with the
    crop's x and y; each widget list in the pack's input order."""
    nodes = [ui_node(1, "EmptyImage", [40, 30, 1, 0xFF8000], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "ImageCrop+", [16, 8, "bottom-right", -4, -2], [("image", "IMAGE", 1, False)],
                     [("IMAGE", "IMAGE", [2]), ("x", "INT", []), ("y", "INT", [])]),
             ui_node(3, "ImageFlip+", ["xy"], [("image", "IMAGE", 2, False)], [("IMAGE", "IMAGE", [3])]),
             ui_node(4, "ImageDesaturate+", [0.5, "average"], [("image", "IMAGE", 3, False)],
                     [("IMAGE", "IMAGE", [])])]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["2", "4"])
    crop, x, y = values["2"]
    assert (x, y) == (40 - 16 - 4, 30 - 8 - 2) and crop.shape == (1, 8, 16, 3)
    want = torch.tensor([1.0, 128 / 255, 0.0])
    grey = want.mean()
    assert torch.allclose(values["4"][0], (0.5 * want + 0.5 * grey).expand(1, 8, 16, 3), atol=1e-6)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2] == [16, 8, "bottom-right", -4, -2] and saved[4] == [0.5, "average"]


def test_sdxl_text_encode_resolves_choices_in_a_ui_save(registry):
    """The pack's text is a dynamicPrompts widget: the editor picks one option of each {a|b} when it queues."""
    nodes = [ui_node(1, "CLIPTextEncodeSDXL+", [1024, 1024, 4, "a {red|red} cube {x|x}"],
                     [("clip", "CLIP", None, False)], [("CONDITIONING", "CONDITIONING", [])])]
    workflow = parse_workflow(ui_graph(nodes, []), registry)
    assert workflow.nodes["1"].inputs["text"] == "a red cube x"


def test_ui_graph_of_utilities_and_masks(registry):
    """SimpleMathSlider+ -> SimpleMathDual+ (a); SDXLEmptyLatentSizePicker+ -> BatchCount+;
    TransitionMask+ -> MaskFromBatch+; Display Any with the text box its editor adds after a run."""
    nodes = [ui_node(1, "SimpleMathSlider+", [0.25, -2.0, 6.0, 2],
                     outputs=[("FLOAT", "FLOAT", [1]), ("INT", "INT", [])]),
             ui_node(2, "SimpleMathDual+", ["a * 2", "a // 1 + d"], [("a", "*", 1, False)],
                     [("int_1", "INT", []), ("float_1", "FLOAT", []), ("int_2", "INT", []), ("float_2", "FLOAT", [])]),
             ui_node(3, "SDXLEmptyLatentSizePicker+", ["832x1216 (0.68)", 3, 0, 512],
                     outputs=[("LATENT", "LATENT", [2]), ("width", "INT", []), ("height", "INT", [])]),
             ui_node(4, "BatchCount+", [], [("batch", "*", 2, False)], [("INT", "INT", [3])]),
             ui_node(5, "DisplayAny", ["3"], [("input", "*", 3, False)]),
             ui_node(6, "TransitionMask+", [8, 4, 6, 1, 5, "horizontal slide", "linear"],
                     outputs=[("MASK", "MASK", [4])]),
             ui_node(7, "MaskFromBatch+", [2, 3], [("mask", "MASK", 4, False)], [("MASK", "MASK", [])])]
    links = [[1, 1, 0, 2, 0, "FLOAT"], [2, 3, 0, 4, 0, "LATENT"], [3, 4, 0, 5, 0, "INT"], [4, 6, 0, 7, 0, "MASK"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["1", "2", "3", "4", "5", "7"])
    assert values["1"] == (0.0, 0)  # -2 + 0.25 * 8
    assert values["2"] == (0, 0.0, 0, 0.0)
    latent, width, height = values["3"]
    assert (width, height) == (832, 512) and latent["samples"].shape == (3, 4, 64, 104)
    assert values["4"][0] == 3
    masks = values["7"][0]
    # frame 0 empty, frames 1..4 the slide at 0, 1/3, 2/3, 1, frame 5 full: frames 2..4 taken
    assert [m[0].sum().item() for m in masks] == [round(8 / 3), round(16 / 3), 8]
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[6] == [8, 4, 6, 1, 5, "horizontal slide", "linear"] and saved[3] == ["832x1216 (0.68)", 3, 0, 512]


def test_api_prompt_with_the_packs_classes_runs_and_exports_back(registry):
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 2, "color": 0}},
             "2": {"class_type": "ImageExpandBatch+",
                   "inputs": {"image": ["1", 0], "size": 5, "method": "repeat last"}},
             "3": {"class_type": "ImageTile+", "inputs": {"image": ["2", 0], "rows": 2, "cols": 2, "overlap": 0.25,
                                                          "overlap_x": 0, "overlap_y": 0}},
             "4": {"class_type": "ImageUntile+", "inputs": {"tiles": ["3", 0], "overlap_x": ["3", 3],
                                                            "overlap_y": ["3", 4], "rows": 2, "cols": 2}},
             "5": {"class_type": "MaskFromList+", "inputs": {"width": 16, "height": 8, "str_values": "0.5, 2"}},
             "6": {"class_type": "MaskBlur+", "inputs": {"mask": ["5", 0], "amount": 4, "device": "auto"}},
             "7": {"class_type": "SimpleComparison+", "inputs": {"a": ["3", 1], "b": ["3", 2], "comparison": ">"}},
             "8": {"class_type": "SimpleCondition+", "inputs": {"evaluate": ["7", 0], "on_true": ["3", 1],
                                                                "on_false": ["3", 2]}}}
    workflow, values = run(registry, graph, ["2", "3", "4", "6", "8"])
    assert values["2"][0].shape[0] == 5
    tiles, tile_w, tile_h, ov_x, ov_y = values["3"]
    assert (tile_w, tile_h, ov_x, ov_y) == (16 + 4, 12 + 3, 4, 3) and tiles.shape == (20, 15, 20, 3)
    assert values["4"][0].shape == (1, 24, 32, 3)
    assert torch.equal(values["6"][0], torch.tensor([0.5, 1.0]).view(2, 1, 1).expand(2, 8, 16))  # flat stays flat
    assert values["8"][0] == 20
    exported = export_api(workflow, registry)
    assert exported["2"] == graph["2"] and exported["6"] == graph["6"] and exported["8"] == graph["8"]
    assert exported["4"]["inputs"]["overlap_x"] == ["3", 3]


def test_sdxl_text_encode_and_preview_from_latent_equal_the_core_nodes(registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "xl.safetensors", "sdxl")
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "xl.safetensors"}},
             "2": {"class_type": "CLIPTextEncodeSDXL+", "inputs": {"width": 256, "height": 192, "size_cond_factor": 3,
                                                                   "text": "a red fox", "clip": ["1", 1]}},
             "3": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
                 "clip": ["1", 1], "width": 768, "height": 576, "crop_w": 0, "crop_h": 0, "target_width": 768,
                 "target_height": 576, "text_g": "a red fox", "text_l": "a red fox"}},
             "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
             "5": {"class_type": "ImagePreviewFromLatent+", "inputs": {"latent": ["4", 0], "vae": ["1", 2],
                                                                       "tile_size": 0, "image": "none"}},
             "6": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}}}
    workflow = parse_workflow(graph, registry)
    result = Executor(registry).run(workflow, outputs=["2", "3", "5", "6"])
    assert result.ok, (result.problems, result.error)
    ((got, got_options),), ((want, want_options),) = result.values["2"][0], result.values["3"][0]
    assert torch.equal(got, want) and torch.equal(got_options["pooled_output"], want_options["pooled_output"])
    assert got_options["width"] == 768 and got_options["target_height"] == 576
    image, mask, width, height = result.values["5"]
    assert torch.equal(image, result.values["6"][0]) and (width, height) == (64, 48) and mask.shape == (1, 64, 64)
    assert len(result.outputs["5"]["images"]) == 1


def test_preview_from_latent_tiles_overlap_as_the_packs_decode_tiled(registry, tmp_folders):
    """The pack calls vae.decode_tiled(tile_x=tile_size // 8, tile_y=tile_size // 8) with ComfyUI's
    default overlap, 16 latent pixels: VAE Decode (Tiled) with an overlap of 128 pixels. A VAE file
    alone (the checkpoint's text encoders are not used); the latent just over a 512-pixel tile each way."""
    (tmp_folders.models / "vae").mkdir(exist_ok=True)
    write_vae(tmp_folders.models / "vae" / "xl.safetensors")
    graph = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "xl.safetensors"}},
             "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 576, "height": 576, "batch_size": 1}},
             "3": {"class_type": "ImagePreviewFromLatent+", "inputs": {"latent": ["2", 0], "vae": ["1", 0],
                                                                       "tile_size": 512, "image": "none"}}}
    for node_id, overlap in (("4", 128), ("5", 64)):
        graph[node_id] = {"class_type": "VAEDecodeTiled", "inputs": {
            "samples": ["2", 0], "vae": ["1", 0], "tile_size": 512, "overlap": overlap, "temporal_size": 64,
            "temporal_overlap": 8}}
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["3", "4", "5"])
    assert result.ok, (result.problems, result.error)
    image = result.values["3"][0]
    assert torch.equal(image, result.values["4"][0]) and not torch.equal(image, result.values["5"][0])


# -- image nodes against the pack's formulas ----------------------------------------------------


def test_expand_batch_indexes_follow_the_packs_formulas():
    assert expand_indexes(4, 8, "expand") == [math.floor((i + 0.5) * 0.5) for i in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert expand_indexes(5, 3, "expand") == [0, 2, 4]
    assert expand_indexes(4, 3, "expand") == [0, round(1.5), 3] == [0, 2, 3]
    assert expand_indexes(3, 7, "repeat all") == [0, 1, 2, 0, 1, 2, 0]
    assert expand_indexes(3, 5, "repeat first") == [0, 0, 0, 1, 2]
    assert expand_indexes(3, 5, "repeat last") == [0, 1, 2, 2, 2]
    assert expand_indexes(5, 2, "repeat last") == [0, 1] and expand_indexes(5, 1, "expand") == [0]


def test_image_and_mask_expand_batch_pick_those_frames(registry):
    images = pictures(batch=3)
    got = call(registry, "ImageExpandBatch", image=images, size=5, method="repeat first")
    assert torch.equal(got, images[[0, 0, 0, 1, 2]])
    masks = images[..., 0]
    got = call(registry, "MaskExpandBatch", mask=masks, size=6, method="expand")
    assert torch.equal(got, masks[[0, 0, 1, 1, 2, 2]])


def test_expand_batch_declares_its_batch_so_limits_refuse_a_huge_one(registry):
    graph = {"1": {"type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "2": {"type": "ImageExpandBatch", "inputs": {"image": ["1", 0], "size": 500000}},
             "3": {"type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    problems = validate(parse_workflow({"nodes": graph}), registry, limits=RunLimits(max_batch=64))
    assert {p.node_id for p in problems} == {"2"}


def test_empty_batches_and_a_latent_without_samples_name_the_input(registry):
    for node, name, value in (("ImageExpandBatch", "image", pictures(batch=0)),
                              ("MaskExpandBatch", "mask", torch.zeros((0, 4, 4)))):
        with pytest.raises(NodeInputError) as e:
            call(registry, node, **{name: value, "size": 4})
        assert e.value.input == name
    with pytest.raises(NodeInputError) as e:
        _core(registry.get("KSamplerVariationsStochastic"), model=None, latent_image={"x": 1}, positive=[], negative=[])
    assert e.value.input == "latent_image"


def test_crop_of_no_pixels_names_the_zero_side(registry):
    for name in ("width", "height"):
        sides = {"width": 8, "height": 8, name: 0}
        with pytest.raises(NodeInputError) as e:
            call(registry, "ImageCropPlus", image=pictures(batch=1), position="top-left", **sides)
        assert e.value.input == name


def test_from_batch_ranges(registry):
    images = pictures(batch=5)
    assert torch.equal(call(registry, "ImageFromBatchPlus", image=images, start=1, length=-1), images[1:])
    assert torch.equal(call(registry, "ImageFromBatchPlus", image=images, start=9, length=3), images[4:])
    assert torch.equal(call(registry, "MaskFromBatch", mask=images[..., 0], start=2, length=2), images[2:4, ..., 0])


def test_crop_positions(registry):
    image = pictures(batch=1, height=30, width=40)
    for position, (x, y) in {"top-left": (0, 0), "top-center": (12, 0), "right-center": (24, 11),
                             "bottom-left": (0, 22), "center": (12, 11)}.items():
        crop, gx, gy = call(registry, "ImageCropPlus", image=image, width=16, height=8, position=position)
        assert (gx, gy) == (x, y) and torch.equal(crop, image[:, y:y + 8, x:x + 16]), position
    crop, x, y = call(registry, "ImageCropPlus", image=image, width=16, height=8, position="top-left", x_offset=-5)
    assert (x, y) == (0, 0) and crop.shape[2] == 11  # moved left out of the image: cut
    with pytest.raises(NodeInputError) as e:
        call(registry, "ImageCropPlus", image=image, width=16, height=8, position="top-left", x_offset=50)
    assert e.value.input == "x_offset"


def test_flip(registry):
    image = pictures()
    assert torch.equal(call(registry, "ImageFlipPlus", image=image, axis="x"), image.flip(2))
    assert torch.equal(call(registry, "MaskFlip", mask=image[..., 0], axis="xy"), image[..., 0].flip(1, 2))


def test_desaturate_methods_match_their_formulas(registry):
    image = pictures()
    rgb = image.numpy()
    greys = {"luminance (Rec.709)": rgb @ numpy.array([0.2126, 0.7152, 0.0722]),
             "luminance (Rec.601)": rgb @ numpy.array([0.299, 0.587, 0.114]),
             "average": rgb.mean(-1), "lightness": (rgb.max(-1) + rgb.min(-1)) / 2}
    for method, grey in greys.items():
        got = call(registry, "ImageDesaturate", image=image, factor=0.7, method=method)
        numpy.testing.assert_allclose(got.numpy(), 0.3 * rgb + 0.7 * grey[..., None], atol=1e-6)


def test_posterize_and_remove_alpha(registry):
    image = pictures(channels=4)
    got = call(registry, "ImagePosterize", image=image[..., :3], threshold=0.4)
    assert torch.equal(got, (image[..., :3].mean(-1, keepdim=True) > 0.4).float().expand(-1, -1, -1, 3))
    assert torch.equal(call(registry, "ImageRemoveAlpha", image=image), image[..., :3])


def cas_reference(rgb, amount):
    """AMD's contrast adaptive sharpening as the pack writes it, pixel by pixel in numpy."""
    b, h, w, c = rgb.shape
    padded = numpy.pad(rgb.astype(numpy.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = numpy.empty_like(rgb, dtype=numpy.float64)
    for y in range(h):
        for x in range(w):
            n = padded[:, y:y + 3, x:x + 3]  # the 3x3 neighbourhood
            cross = numpy.stack([n[:, 0, 1], n[:, 1, 0], n[:, 1, 1], n[:, 1, 2], n[:, 2, 1]])
            diag = numpy.stack([n[:, 0, 0], n[:, 0, 2], n[:, 2, 0], n[:, 2, 2]])
            # the pack's min_ / max_ clamp each group's least value to >= 0 and greatest to <= 1
            mn = cross.min(0).clip(min=0) + diag.min(0).clip(min=0)
            mx = cross.max(0).clip(max=1) + diag.max(0).clip(max=1)
            amp = numpy.sqrt(numpy.minimum(mn, 2 - mx) / (mx + 1e-5))
            wgt = -amp * (amount * (1 / 5 - 1 / 8) + 1 / 8)
            out[:, y, x] = ((n[:, 0, 1] + n[:, 1, 0] + n[:, 1, 2] + n[:, 2, 1]) * wgt + n[:, 1, 1]) / (1 + 4 * wgt)
    return out.clip(0, 1)


def test_contrast_adaptive_sharpening_matches_the_formula(registry):
    image = pictures(batch=1, height=7, width=9)
    got = call(registry, "ImageCASharpening", image=image, amount=0.6)
    numpy.testing.assert_allclose(got.numpy(), cas_reference(image.numpy(), 0.6), atol=1e-5)
    image = image * 1.4 - 0.2  # values past 0..1 (HDR, or another node's overshoot): the clamps matter
    got = call(registry, "ImageCASharpening", image=image, amount=0.6)
    numpy.testing.assert_allclose(got.numpy(), cas_reference(image.numpy(), 0.6), atol=1e-5)


def test_enhance_difference(registry):
    a, b = pictures(seed=1), pictures(seed=2)
    got = call(registry, "ImageEnhanceDifference", image1=a, image2=b, exponent=0.5)
    want = numpy.sqrt(numpy.clip(a.numpy() - b.numpy(), 0, None)).clip(0, 1)
    numpy.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    assert not torch.isnan(got).any()


def test_batch_multiple_resizes_to_the_first(registry):
    first, small = pictures(batch=1), pictures(batch=2, height=6, width=8, seed=3)
    got = call(registry, "ImageBatchMultiple", image_1=first, image_3=small, method="nearest-exact")
    want = torch.nn.functional.interpolate(small.movedim(-1, 1), size=(12, 16), mode="nearest-exact").movedim(1, -1)
    assert got.shape == (3, 12, 16, 3) and torch.equal(got[1:], want)
    with pytest.raises(NodeInputError) as e:
        call(registry, "ImageBatchMultiple", image_1=first, image_2=pictures(channels=4), method="lanczos")
    assert e.value.input == "image_2"


def test_list_to_batch(registry):
    images = [pictures(batch=1, seed=i) for i in range(3)]
    assert torch.equal(call(registry, "ImageListToBatch", image=images), torch.cat(images))


def test_composite_pastes_through_the_mask_and_cuts_at_the_edges(registry):
    destination, source = pictures(batch=1, height=10, width=12, seed=4), pictures(batch=2, height=4, width=5, seed=5)
    mask = torch.rand((1, 4, 5), generator=torch.Generator().manual_seed(6))
    got = call(registry, "ImageComposite", destination=destination, source=source, x=3, y=2, offset_x=1, offset_y=1,
               mask=mask)
    want = destination.expand(2, -1, -1, -1).clone()
    m = mask[..., None]
    want[:, 3:7, 4:9] = source * m + want[:, 3:7, 4:9] * (1 - m)
    assert torch.allclose(got, want)
    got = call(registry, "ImageComposite", destination=destination, source=source, x=9, y=-2)
    want = destination.expand(2, -1, -1, -1).clone()
    want[:, 0:2, 9:12] = source[:, 2:4, 0:3]
    assert torch.equal(got, want)


def test_composite_from_mask_batch(registry):
    image_from, image_to = pictures(batch=1, seed=7), pictures(batch=1, seed=8)
    masks = torch.rand((3, 12, 16), generator=torch.Generator().manual_seed(9))
    got = call(registry, "ImageCompositeFromMaskBatch", image_from=image_from, image_to=image_to, mask=masks)
    assert torch.allclose(got, masks[..., None] * image_to + (1 - masks[..., None]) * image_from)


@pytest.mark.parametrize("overlap, overlap_x, overlap_y", [(0.0, 0, 0), (0.2, 1, 3), (0.0, 2, 0)])
def test_untile_puts_tiles_back_together(registry, overlap, overlap_x, overlap_y):
    image = pictures(batch=1, height=24, width=30)
    tiles, tile_w, tile_h, ov_x, ov_y = call(registry, "ImageTile", image=image, rows=3, cols=2, overlap=overlap,
                                             overlap_x=overlap_x, overlap_y=overlap_y)
    assert tiles.shape == (6, tile_h, tile_w, 3) and (tile_w, tile_h) == (15 + ov_x, 8 + ov_y)
    assert torch.equal(tiles[0], image[0, :tile_h, :tile_w]) and torch.equal(tiles[5], image[0, -tile_h:, -tile_w:])
    back = call(registry, "ImageUntile", tiles=tiles, overlap_x=ov_x, overlap_y=ov_y, rows=3, cols=2)
    assert torch.allclose(back, image, atol=1e-6)  # the overlaps fade between equal pixels


# -- mask nodes against torchvision's blur (kornia's equal) and scipy ---------------------------


def test_mask_blur_is_torchvisions_gaussian(registry):
    mask = (torch.rand((2, 20, 24), generator=torch.Generator().manual_seed(1)) > 0.6).float()
    for amount in (1, 4, 7):
        kernel = amount + 1 - amount % 2
        got = call(registry, "MaskBlur", mask=mask, amount=amount)
        assert torch.allclose(got, kornia_blur(mask, kernel), atol=1e-6) if kernel > 1 else torch.equal(got, mask)
    assert torch.equal(call(registry, "MaskBlur", mask=mask, amount=0), mask)
    with pytest.raises(NodeInputError) as e:
        call(registry, "MaskBlur", mask=mask, amount=60)
    assert e.value.input == "amount"


def test_mask_smooth_and_fix_follow_scipy_and_the_blur(registry):
    mask = torch.rand((2, 20, 24), generator=torch.Generator().manual_seed(2))
    smooth = call(registry, "MaskSmooth", mask=mask, amount=4)
    assert torch.equal(smooth, (kornia_blur((mask > 0.5).float(), 5) > 0.5 + 1e-6).float())
    got = call(registry, "MaskFix", mask=mask, erode_dilate=-3, fill_holes=2, remove_isolated_pixels=3, smooth=0,
               blur=3)
    steps = []
    for m in mask.numpy():
        m = scipy.ndimage.grey_erosion(m, size=(3, 3))
        m = scipy.ndimage.grey_closing(m, size=(2, 2))
        steps.append(scipy.ndimage.grey_opening(m, size=(3, 3)))
    assert torch.allclose(got, kornia_blur(torch.from_numpy(numpy.stack(steps)), 3), atol=1e-6)
    dilated = call(registry, "MaskFix", mask=mask, erode_dilate=4)
    want = numpy.stack([scipy.ndimage.grey_dilation(m, size=(4, 4)) for m in mask.numpy()])
    assert torch.equal(dilated, torch.from_numpy(want))


def test_mask_bounding_box(registry):
    mask = torch.zeros((2, 20, 30))
    mask[0, 5:8, 10:12] = 1
    mask[1, 9, 20] = 0.5
    image = pictures(batch=1, height=20, width=30)
    cropped, crop, x, y, width, height = call(registry, "MaskBoundingBox", mask=mask, padding=2, image_optional=image)
    assert (x, y, width, height) == (8, 3, 21 - 8 + 2, 10 - 3 + 2)
    assert torch.equal(cropped, mask[:, 3:12, 8:23]) and torch.equal(crop, image[:, 3:12, 8:23].expand(2, -1, -1, -1))
    with pytest.raises(NodeInputError) as e:
        call(registry, "MaskBoundingBox", mask=torch.zeros((1, 4, 4)))
    assert e.value.input == "mask"


def test_masks_from_colours(registry):
    image = torch.tensor([[[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [0, 0, 0], [1, 1, 1],
                           [250 / 255, 1, 4 / 255]]])[None]
    masks = call(registry, "MaskFromRGBCMYBW", image=image)
    for i, mask in enumerate(masks):
        assert mask[0, 0, i] == 1 and mask[0, 0, :8].sum() == 1, i
    assert masks[5][0, 0, 8] == 1  # yellow within the thresholds
    got = call(registry, "MaskFromColor", image=image, red=255, green=255, blue=0, threshold=5)
    assert got[0, 0].tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 1]


def test_mask_from_list_and_batch(registry):
    masks = call(registry, "MaskFromList", width=8, height=4, values=[0.25, 3], str_values="-1, 0.5")
    assert masks.shape == (4, 4, 8) and masks[:, 0, 0].tolist() == [0.25, 1.0, 0.0, 0.5]
    with pytest.raises(NodeInputError) as e:
        call(registry, "MaskFromList", width=8, height=4, str_values="half")
    assert e.value.input == "str_values"
    joined = call(registry, "MaskBatch", mask1=masks, mask2=masks[:1, :2, :4])
    assert joined.shape == (5, 4, 8) and torch.allclose(joined[4], torch.full((4, 8), 0.25))


def test_mask_from_list_declares_its_written_values_and_caps_linked_ones(registry):
    """Each written value is a mask: the estimate counts them so max_batch applies; linked values,
    unknown before the run, are capped when it runs; the masks are views of one value each."""
    def refused(values):
        graph = {"1": {"type": "MaskFromList", "inputs": {"width": 64, "height": 64, "str_values": values}},
                 "2": {"type": "MaskPreview", "inputs": {"mask": ["1", 0]}}}
        return {p.node_id for p in validate(parse_workflow({"nodes": graph}), registry, limits=RunLimits(max_batch=64))}
    assert refused(", ".join(["0.5"] * 65)) == {"1"}
    assert refused(", ".join(["0.5"] * 64)) == set()
    with pytest.raises(NodeInputError) as e:
        call(registry, "MaskFromList", width=8, height=8, values=[0.5] * 5000)
    assert e.value.input == "values" and "4096" in str(e.value)
    masks = call(registry, "MaskFromList", width=8, height=4, str_values="0.5, 1")
    assert masks.untyped_storage().nbytes() == 2 * 4


@pytest.mark.parametrize("kind", ["vertical slide", "center box", "horizontal door", "circle", "fade"])
def test_transition_mask_frames(registry, kind):
    masks = call(registry, "TransitionMask", width=20, height=10, frames=7, start_frame=2, end_frame=6,
                 transition_type=kind, timing_function="in")
    assert masks.shape == (7, 10, 20)
    assert masks[:2].sum() == 0 and torch.equal(masks[6], torch.ones((10, 20)))
    progress = [(i / 3) ** 2 for i in range(4)]
    if kind == "fade":
        assert torch.allclose(masks[2:6, 0, 0], torch.tensor(progress))
    if kind == "vertical slide":
        assert [int(m[:, 0].sum()) for m in masks[2:6]] == [round(10 * p) for p in progress]
    if kind == "circle":
        ys, xs = torch.meshgrid(torch.arange(10.0), torch.arange(20.0), indexing="ij")
        radius = math.ceil(math.sqrt(500) * progress[2] / 2)
        assert torch.equal(masks[4], (((xs - 10) ** 2 + (ys - 5) ** 2) <= radius ** 2).float())
    with pytest.raises(NodeInputError):
        call(registry, "TransitionMask", frames=7, start_frame=5, end_frame=6)


# -- utilities and conditioning -------------------------------------------------------------------


def test_simple_math_family(registry):
    assert call(registry, "SimpleMathSliderLowRes", value=3, min=10.0, max=20.0, rounding=1) == (13.0, 13)
    assert call(registry, "SimpleMathDual", a=torch.zeros((2, 5, 7, 3)), d=4, value_1="a[2] * d",
                value_2="(a[1] + 1) / 4") == (28, 28.0, 2, 1.5)
    assert call(registry, "SimpleMathCondition", evaluate=0, a=2, on_true="a", on_false="a ** 3") == (8, 8.0)
    with pytest.raises(NodeInputError) as e:
        call(registry, "SimpleMathDual", value_1="1", value_2="1 +")
    assert e.value.input == "value_2"


def test_simple_condition_and_comparison(registry):
    assert call(registry, "SimpleCondition", evaluate=True, on_true="yes", on_false="no") == "yes"
    assert call(registry, "SimpleCondition", evaluate=0, on_true="yes", on_false="no") == "no"
    with pytest.raises(NodeInputError) as e:
        call(registry, "SimpleCondition", evaluate=False, on_true="yes")
    assert e.value.input == "on_false"
    assert call(registry, "SimpleComparison", a=3, b=2.5, comparison=">=") is True
    assert call(registry, "SimpleComparison", a="abc", b="abd", comparison="<") is True
    with pytest.raises(NodeInputError):
        call(registry, "SimpleComparison", a="3", b=2, comparison="<")


def test_debug_nodes_and_batch_count(registry, capsys):
    latent = {"samples": torch.zeros((3, 4, 8, 8)), "noise_mask": torch.ones((1, 8, 8))}
    call(registry, "DebugTensorShape", tensor=[(torch.zeros(1, 77, 768), {"pooled_output": torch.zeros(1, 768)})])
    call(registry, "ConsoleDebug", value=42, prefix="seed:")
    err = capsys.readouterr().err
    assert "Shapes found: [[1, 77, 768], [1, 768]]" in err and "seed: 42" in err
    assert call(registry, "BatchCount", batch=latent) == 3 and call(registry, "BatchCount", batch=[1, 2]) == 2
    assert call(registry, "BatchCount", batch=7) == 0
    assert set(call(registry, "RemoveLatentMask", samples=latent)) == {"samples"} and "noise_mask" in latent


# SDXLEmptyLatentSizePicker+'s resolution choices, copied from the pack's misc.py (cubiq/ComfyUI_essentials)
PACK_SDXL_RESOLUTIONS = [
    "704x1408 (0.5)", "704x1344 (0.52)", "768x1344 (0.57)", "768x1280 (0.6)", "832x1216 (0.68)", "832x1152 (0.72)",
    "896x1152 (0.78)", "896x1088 (0.82)", "960x1088 (0.88)", "960x1024 (0.94)", "1024x1024 (1.0)", "1024x960 (1.07)",
    "1088x960 (1.13)", "1088x896 (1.21)", "1152x896 (1.29)", "1152x832 (1.38)", "1216x832 (1.46)", "1280x768 (1.67)",
    "1344x768 (1.75)", "1344x704 (1.91)", "1408x704 (2.0)", "1472x704 (2.09)", "1536x640 (2.4)", "1600x640 (2.5)",
    "1664x576 (2.89)", "1728x576 (3.0)"]


def test_sdxl_size_picker_lists_the_packs_sizes(registry):
    spec = registry.get("SDXLEmptyLatentSizePicker").input_specs["resolution"].widget
    assert list(SDXL_RESOLUTIONS) == PACK_SDXL_RESOLUTIONS and spec.default == "1024x1024 (1.0)"
    latent, width, height = call(registry, "SDXLEmptyLatentSizePicker", resolution="1344x768 (1.75)", batch_size=2)
    assert (width, height) == (1344, 768) and latent["samples"].shape == (2, 4, 96, 168)


def test_conditioning_nodes(registry):
    first = [(torch.ones(1, 3, 8), {"pooled_output": torch.ones(1, 8)})]
    second = [(torch.full((1, 3, 8), 2.0), {})]
    combined = call(registry, "ConditioningCombineMultiple", conditioning_1=first, conditioning_2=second,
                    conditioning_4=first)
    assert len(combined) == 3 and combined[1][0][0, 0, 0] == 2
    negative = call(registry, "SD3NegativeConditioning", conditioning=first, end=0.25)
    (zero, zero_options), (kept, kept_options) = negative
    assert zero.abs().sum() == 0 and zero_options["pooled_output"].abs().sum() == 0
    assert (zero_options["start_percent"], zero_options["end_percent"]) == (0.25, 1.0)
    assert torch.equal(kept, first[0][0])
    assert (kept_options["start_percent"], kept_options["end_percent"]) == (0.0, 0.25)
    (only,) = call(registry, "SD3NegativeConditioning", conditioning=first, end=0.0)
    assert only[0].abs().sum() == 0 and "start_percent" not in only[1]


def kornia_color_match(image, reference, space, factor, mask=None):
    """The pack's colour match written with kornia.color, the library it calls."""
    import kornia.color as kc
    there = {"LAB": kc.rgb_to_lab, "YCbCr": kc.rgb_to_ycbcr, "LUV": kc.rgb_to_luv, "YUV": kc.rgb_to_yuv,
             "XYZ": kc.rgb_to_xyz, "RGB": lambda x: x}[space]
    back = {"LAB": kc.lab_to_rgb, "YCbCr": kc.ycbcr_to_rgb, "LUV": kc.luv_to_rgb, "YUV": kc.yuv_to_rgb,
            "XYZ": kc.xyz_to_rgb, "RGB": lambda x: x}[space]
    ref = there(reference.movedim(-1, 1))
    if mask is None:
        ref_mean, ref_std = ref.mean((2, 3), keepdim=True), ref.std((2, 3), keepdim=True)
    else:
        m = (mask > 0.5).float()[:, None]
        total = m.sum((2, 3), keepdim=True)
        ref_mean = (ref * m).sum((2, 3), keepdim=True) / total
        ref_std = torch.sqrt((((ref * m) - ref_mean) ** 2 * m).sum((2, 3), keepdim=True) / total)
    x = there(image.movedim(-1, 1))
    matched = (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True) * ref_std + ref_mean
    return back(factor * matched + (1 - factor) * x).movedim(1, -1).clamp(0, 1)


@pytest.mark.parametrize("space", ["LAB", "YCbCr", "RGB", "LUV", "YUV", "XYZ"])
def test_color_match_equals_the_packs_steps_through_kornia(registry, space):
    image, reference = pictures(batch=2, seed=11) * 0.6, pictures(batch=1, seed=12) * 0.5 + 0.4
    got = call(registry, "ImageColorMatch", image=image, reference=reference, color_space=space, factor=0.8)
    assert torch.allclose(got, kornia_color_match(image, reference, space, 0.8), atol=2e-4), space
    assert (got - image).abs().mean() > 0.1  # the colours did move
    mask = torch.zeros((1, 12, 16))
    mask[:, 2:9, 3:12] = 1
    got = call(registry, "ImageColorMatch", image=image, reference=reference, color_space=space, factor=1.0,
               reference_mask=mask)
    assert torch.allclose(got, kornia_color_match(image, reference, space, 1.0, mask), atol=2e-4), space


def test_color_match_names_a_mismatched_reference(registry):
    with pytest.raises(NodeInputError) as e:
        call(registry, "ImageColorMatch", image=pictures(batch=3), reference=pictures(batch=2))
    assert e.value.input == "reference"


def test_transition_mask_declares_every_frame_it_makes(registry):
    """Frames before start_frame are made too, however many: a start far past `frames` is refused."""
    def refused(inputs):
        graph = {"1": {"type": "TransitionMask", "inputs": inputs},
                 "2": {"type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
                 "3": {"type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
        return {p.node_id for p in validate(parse_workflow({"nodes": graph}), registry, limits=RunLimits(max_batch=64))}
    assert "1" in refused({"width": 64, "height": 64, "frames": 16, "start_frame": 500000})
    assert refused({"width": 64, "height": 64, "frames": 16, "start_frame": 4}) == set()
    masks = call(registry, "TransitionMask", width=4, height=4, frames=3, start_frame=5, end_frame=9)
    assert masks.shape[0] == 5 and masks.sum() == 0  # as the pack: 5 empty frames, no transition, none full


def test_transition_mask_size_is_unknown_while_a_widget_is_linked(registry):
    estimate = registry.get("TransitionMask").estimate
    widgets = {"width": 64, "height": 32, "frames": 8, "start_frame": 2, "end_frame": 6}
    assert estimate(widgets, {}).size == Size(8, 32, 64)
    for linked in widgets:  # a linked widget is not in widgets: its default is not its value
        assert estimate({k: v for k, v in widgets.items() if k != linked}, {}).size is None, linked


def test_image_tile_declares_its_tiles_so_max_batch_applies(registry):
    graph = {"1": {"type": "EmptyImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
             "2": {"type": "ImageTile", "inputs": {"image": ["1", 0], "rows": 16, "cols": 16}},
             "3": {"type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    problems = validate(parse_workflow({"nodes": graph}), registry, limits=RunLimits(max_batch=64))
    assert {p.node_id for p in problems} == {"2"}
    image = pictures(batch=2, height=30, width=41)
    widgets = {"rows": 3, "cols": 2, "overlap": 0.2, "overlap_x": 3, "overlap_y": 1}
    tiles = call(registry, "ImageTile", image=image, **widgets)[0]
    size = registry.get("ImageTile").estimate(widgets, {"image": Size(2, 30, 41)}).size
    assert (size.batch, size.height, size.width) == tuple(tiles.shape[:3])


def test_inject_latent_noise_is_the_packs_seeded_draw(registry):
    samples = torch.rand((2, 4, 6, 8), generator=torch.Generator().manual_seed(3))
    latent = {"samples": samples, "batch_index": [0, 1]}
    got = call(registry, "InjectLatentNoise", latent=latent, noise_seed=77, noise_strength=0.5)
    torch.manual_seed(77)  # the pack's own draw: the global generator after manual_seed
    noise = torch.randn_like(samples)
    assert torch.allclose(got["samples"], samples + 0.5 * noise) and got["batch_index"] == [0, 1]
    got = call(registry, "InjectLatentNoise", latent=latent, noise_seed=77, noise_strength=2.0, normalize="true")
    assert torch.allclose(got["samples"], samples + 2.0 * (noise * samples.std() + samples.mean()))
    mask = torch.zeros((1, 12, 16))
    mask[:, :, :8] = 1
    got = call(registry, "InjectLatentNoise", latent=latent, noise_seed=77, noise_strength=1.0, mask=mask)
    assert torch.allclose(got["samples"][..., :3], (samples + noise)[..., :3])
    assert torch.equal(got["samples"][..., 5:], samples[..., 5:])


def test_stochastic_variations_are_two_advanced_samplers(registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    base = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a fox"}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
            "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}
    shared = {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "steps": 5, "scheduler": "normal"}
    graph = {**base, "6": {"class_type": "KSamplerVariationsStochastic+", "inputs": {
        **shared, "latent_image": ["4", 0], "noise_seed": 3, "cfg": 6.0, "sampler": "euler", "variation_seed": 9,
        "variation_strength": 0.4, "cfg_scale": 0.5}},
        "7": {"class_type": "KSamplerAdvanced", "inputs": {
            **shared, "latent_image": ["5", 0], "add_noise": "enable", "noise_seed": 3, "cfg": 6.0,
            "sampler_name": "euler", "start_at_step": 0, "end_at_step": 3, "return_with_leftover_noise": "enable"}},
        "8": {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["7", 0], "amount": 2}},
        "9": {"class_type": "KSamplerAdvanced", "inputs": {
            **shared, "latent_image": ["8", 0], "add_noise": "disable", "noise_seed": 9, "cfg": 3.0,
            "sampler_name": "dpmpp_2m_sde", "start_at_step": 3, "end_at_step": 5,
            "return_with_leftover_noise": "disable"}}}
    workflow, values = run(registry, graph, ["6", "9"])
    got, want = values["6"][0]["samples"], values["9"][0]["samples"]
    assert got.shape == (2, 4, 8, 8) and torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got[0], got[1], atol=1e-3)  # the SDE steps made two variations
    assert export_api(workflow, registry)["6"] == graph["6"]


def test_seeds_are_read_with_the_editors_control_widgets(registry):
    """The editor adds control_after_generate after noise_seed (a seed's name) and after
    variation_seed (marked so by the pack), and saves it in widgets_values."""
    nodes = [ui_node(1, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT", [1])]),
             ui_node(2, "InjectLatentNoise+", [5, "randomize", 0.5, "true"], [("latent", "LATENT", 1, False)],
                     [("LATENT", "LATENT", [])]),
             ui_node(3, "KSamplerVariationsStochastic+",
                     [7, "fixed", 12, 5.5, "euler_ancestral", "karras", 21, "increment", 0.35, 0.8],
                     [("model", "MODEL", None, False), ("latent_image", "LATENT", None, False),
                      ("positive", "CONDITIONING", None, False), ("negative", "CONDITIONING", None, False)],
                     [("LATENT", "LATENT", [])])]
    workflow = parse_workflow(ui_graph(nodes, [[1, 1, 0, 2, 0, "LATENT"]]), registry)
    assert {k: v for k, v in workflow.nodes["2"].inputs.items() if k != "latent"} == {
        "noise_seed": 5, "noise_strength": 0.5, "normalize": "true"}
    inputs = workflow.nodes["3"].inputs
    assert (inputs["noise_seed"], inputs["steps"], inputs["sampler"], inputs["variation_seed"],
            inputs["variation_strength"], inputs["cfg_scale"]) == (7, 12, "euler_ancestral", 21, 0.35, 0.8)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[3] == [7, "fixed", 12, 5.5, "euler_ancestral", "karras", 21, "increment", 0.35, 0.8]
    widgets = [3, "randomize", 9, 6.5, "euler", "normal", 0.25, 8, "fixed", 0.75]
    nodes = [ui_node(1, "KSamplerVariationsWithNoise+", widgets,
                     [("model", "MODEL", None, False), ("latent_image", "LATENT", None, False),
                      ("positive", "CONDITIONING", None, False), ("negative", "CONDITIONING", None, False)],
                     [("LATENT", "LATENT", [])])]
    inputs = parse_workflow(ui_graph(nodes), registry).nodes["1"].inputs
    assert (inputs["main_seed"], inputs["steps"], inputs["variation_strength"], inputs["variation_seed"],
            inputs["denoise"]) == (3, 9, 0.25, 8, 0.75)


AFFINE = numpy.array([[0.8, 0.1, 0.05], [0.1, 0.7, 0.2], [0.0, 0.25, 0.6]]), numpy.array([0.05, 0.0, 0.1])


def write_cube(path, size, kind="3D", function=None, header=""):
    """A .cube file of `function` sampled at the LUT's points (3D rows: red fastest)."""
    grid = numpy.linspace(0, 1, size)
    if kind == "3D":
        rows = [function(numpy.array([r, g, b])) for b in grid for g in grid for r in grid]
    else:
        rows = [function(numpy.array([v, v, v])) for v in grid]
    body = "\n".join(" ".join(f"{v:.10f}" for v in row) for row in rows)
    path.write_text(f"# made by the tests\nTITLE \"test\"\n{header}LUT_{kind}_SIZE {size}\n\n{body}\n")


@pytest.fixture
def luts(tmp_folders):
    folder = tmp_folders.models / "luts"
    (folder / "sub").mkdir(parents=True)
    write_cube(folder / "affine.cube", 5, function=lambda c: AFFINE[0] @ c + AFFINE[1])
    write_cube(folder / "sub" / "square.cube", 9, "1D", function=lambda c: c ** 2)
    (folder / "broken.cube").write_text("LUT_3D_SIZE 2\n0 0 0\n1 1 1\n")
    (folder / "notes.txt").write_text("not a LUT")
    return folder


def test_apply_lut_interpolates_the_cube(registry, luts):
    assert registry.get("ImageApplyLUT").input_specs["lut_file"].widget.options() == [
        "affine.cube", "broken.cube", "sub/square.cube"]
    image = pictures(batch=1, height=5, width=6, seed=13)
    rgb = image.numpy().astype(numpy.float64)
    got = call(registry, "ImageApplyLUT", image=image, lut_file="affine.cube", gamma_correction=False,
               clip_values=False, strength=1.0)
    numpy.testing.assert_allclose(got.numpy(), rgb @ AFFINE[0].T + AFFINE[1], atol=1e-5)  # trilinear: exact
    got = call(registry, "ImageApplyLUT", image=image, lut_file="affine.cube", gamma_correction=True,
               clip_values=True, strength=0.5)
    graded = (rgb ** (1 / 2.2) @ AFFINE[0].T + AFFINE[1]) ** 2.2
    numpy.testing.assert_allclose(got.numpy(), 0.5 * graded + 0.5 * rgb, atol=1e-5)
    got = call(registry, "ImageApplyLUT", image=image, lut_file="sub/square.cube", gamma_correction=False)
    nodes = numpy.linspace(0, 1, 9)
    numpy.testing.assert_allclose(got.numpy(), numpy.interp(rgb, nodes, nodes ** 2), atol=1e-6)


def test_apply_lut_names_a_bad_or_outside_file(registry, luts):
    image = pictures(batch=1)
    with pytest.raises(NodeInputError) as e:
        call(registry, "ImageApplyLUT", image=image, lut_file="broken.cube")
    assert e.value.input == "lut_file" and "8" in str(e.value)  # a size-2 cube has 8 rows
    for name in ("../luts/affine.cube", "/etc/passwd", "gone.cube"):  # past the choices' check: run() refuses too
        with pytest.raises(NodeInputError) as e:
            _core(registry.get("ImageApplyLUT"), image=image, lut_file=name)
        assert e.value.input == "lut_file", name
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
             "2": {"class_type": "ImageApplyLUT+", "inputs": {"image": ["1", 0], "lut_file": "../../secret.cube",
                                                              "gamma_correction": True, "clip_values": True,
                                                              "strength": 1.0}},
             "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    problems = validate(parse_workflow(graph, registry), registry)
    assert [(p.node_id, p.input) for p in problems] == [("2", "lut_file")]


def write_table(path, table, low, high):
    """A .cube file of an explicit table ([N, 3] 1D, or [N, N, N, 3] indexed r, g, b) and domain."""
    rows = table if table.ndim == 2 else table.transpose(2, 1, 0, 3).reshape(-1, 3)  # red fastest
    body = "\n".join(" ".join(f"{v:.10f}" for v in row) for row in rows)
    kind = "1D" if table.ndim == 2 else "3D"
    path.write_text(f"LUT_{kind}_SIZE {table.shape[0]}\nDOMAIN_MIN {' '.join(map(str, low))}\n"
                    f"DOMAIN_MAX {' '.join(map(str, high))}\n# rows\n{body}\n")


def colour_reference(rgb, table, low, high, gamma, clip):
    """The pack's steps with colour's LUT3x1D / LUT3D.apply written out: 1D curves interpolated
    linearly and extended linearly past the domain (colour's Extrapolator "Linear"), 3D cubes
    interpolated trilinearly (scipy's regular grid) with the colour clamped to the domain."""
    import scipy.interpolate
    low, high = numpy.array(low), numpy.array(high)
    if clip:
        table = numpy.clip(table, low, high)
    x = rgb * (high - low) + low
    if gamma:
        x = x ** (1 / 2.2)
    grids = [numpy.linspace(low[c], high[c], table.shape[0]) for c in range(3)]
    if table.ndim == 2:
        out = numpy.empty_like(x)
        for c, nodes in enumerate(grids):
            v, t = x[..., c], table[:, c]
            left = t[0] + (v - nodes[0]) * (t[1] - t[0]) / (nodes[1] - nodes[0])
            right = t[-1] + (v - nodes[-1]) * (t[-1] - t[-2]) / (nodes[-1] - nodes[-2])
            out[..., c] = numpy.where(v < nodes[0], left, numpy.where(v > nodes[-1], right, numpy.interp(v, nodes, t)))
    else:
        out = scipy.interpolate.RegularGridInterpolator(grids, table)(numpy.clip(x, low, high))
    if gamma:
        out = out ** 2.2
    return (out - low) / (high - low)


@pytest.mark.parametrize("gamma", [False, True])
@pytest.mark.parametrize("clip", [False, True])
def test_apply_lut_domains_clipping_and_1d_extrapolation(registry, tmp_folders, gamma, clip):
    """DOMAIN_MIN / DOMAIN_MAX scale the pixels into the domain; clip_values clamps the table to
    it; a 1D curve is extended past its domain (gamma moves values out of it), a cube clamps."""
    folder = tmp_folders.models / "luts"
    folder.mkdir(parents=True, exist_ok=True)
    low, high = [0.2, 0.1, 0.25], [0.8, 0.9, 0.7]
    grid = numpy.linspace(0, 1, 7)
    curve = numpy.stack([0.05 + 0.9 * grid ** 2, 0.1 + 0.8 * grid, 0.95 - 0.6 * grid ** 0.5], axis=1)
    write_table(folder / "curve.cube", curve, low, high)
    r, g, b = numpy.meshgrid(*[numpy.linspace(0, 1, 5)] * 3, indexing="ij")
    cube = numpy.stack([0.05 + 0.9 * r * g, 0.1 + 0.7 * b, 0.9 - 0.8 * r ** 2], axis=-1)
    write_table(folder / "cube.cube", cube, low, high)
    image = pictures(batch=1, height=6, width=7, seed=21)
    rgb = image.numpy().astype(numpy.float64)
    for name, table in (("curve.cube", curve), ("cube.cube", cube)):
        got = call(registry, "ImageApplyLUT", image=image, lut_file=name, gamma_correction=gamma,
                   clip_values=clip, strength=1.0)
        numpy.testing.assert_allclose(got.numpy(), colour_reference(rgb, table, low, high, gamma, clip),
                                      atol=2e-5, err_msg=name)


def test_apply_lut_gamma_of_a_domain_below_zero_gives_0_where_the_pack_gives_nan(registry, tmp_folders):
    """DOMAIN_MIN -1: pixels under 0.5 scale below 0 and their 1/2.2 power is NaN (colour carries it:
    the channel through a curve, the colour through a cube); ours is 0 there, the identity elsewhere."""
    folder = tmp_folders.models / "luts"
    folder.mkdir(parents=True, exist_ok=True)
    write_table(folder / "id1.cube", numpy.array([[-1.0] * 3, [1.0] * 3]), [-1] * 3, [1] * 3)
    corners = numpy.stack(numpy.meshgrid(*[numpy.array([-1.0, 1.0])] * 3, indexing="ij"), axis=-1)
    write_table(folder / "id3.cube", corners, [-1] * 3, [1] * 3)
    image = pictures(batch=1, height=6, width=7, seed=23)
    below = image.numpy() < 0.5
    for name, undefined in (("id1.cube", below), ("id3.cube", below.any(-1, keepdims=True) & numpy.ones_like(below))):
        got = call(registry, "ImageApplyLUT", image=image, lut_file=name, gamma_correction=True, clip_values=True,
                   strength=1.0).numpy()
        assert undefined.any() and (~undefined).any()
        assert (got[undefined] == 0).all(), name
        numpy.testing.assert_allclose(got[~undefined], image.numpy()[~undefined], atol=1e-5, err_msg=name)


def test_apply_lut_reads_only_files_inside_its_folder_and_says_only_the_line(registry, luts, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    write_cube(outside / "far.cube", 2, function=lambda c: c)
    (luts / "far.cube").symlink_to(outside / "far.cube")
    (luts / "linked").symlink_to(outside)
    assert "far.cube" not in registry.get("ImageApplyLUT").input_specs["lut_file"].widget.options()
    image = pictures(batch=1)
    for name in ("far.cube", "linked/far.cube"):  # listed or not, run() reads by the same rule
        with pytest.raises(NodeInputError, match="link out of its folder") as e:
            _core(registry.get("ImageApplyLUT"), image=image, lut_file=name)
        assert e.value.input == "lut_file"
    (luts / "secret.cube").write_text("LUT_3D_SIZE 2\nDOMAIN_MIN password123 x y\n")
    (luts / "row.cube").write_text("LUT_3D_SIZE 2\n0 0 0\n# note\n\n1 hunter2 0\n")
    for name, line in (("secret.cube", 2), ("row.cube", 5)):
        with pytest.raises(NodeInputError) as e:
            call(registry, "ImageApplyLUT", image=image, lut_file=name)
        assert f"line {line}" in str(e.value) and "password" not in str(e.value) and "hunter" not in str(e.value)


def test_apply_lut_refuses_large_tables_early_and_parses_a_file_once(registry, luts, monkeypatch):
    import nodes.pack_nodes_essentials as essentials
    image = pictures(batch=1)
    (luts / "big.cube").write_text("LUT_3D_SIZE 130\n0 0 0\n")
    with pytest.raises(NodeInputError, match="2 to 129"):
        call(registry, "ImageApplyLUT", image=image, lut_file="big.cube")
    (luts / "long.cube").write_text("LUT_1D_SIZE 2\n" + "0 0 0\n" * 5 + "x\n")  # stops before the bad line
    with pytest.raises(NodeInputError, match="over 2 table rows"):
        call(registry, "ImageApplyLUT", image=image, lut_file="long.cube")
    monkeypatch.setattr(essentials, "LUT_FILE_MAX", 100)
    write_cube(luts / "sized.cube", 3, function=lambda c: c)  # over 100 bytes
    with pytest.raises(NodeInputError, match="at most 100"):
        call(registry, "ImageApplyLUT", image=image, lut_file="sized.cube")
    monkeypatch.undo()
    parsed = []
    real = essentials.read_cube
    monkeypatch.setattr(essentials, "read_cube", lambda text: parsed.append(1) or real(text))
    first = call(registry, "ImageApplyLUT", image=image, lut_file="affine.cube")
    assert torch.equal(call(registry, "ImageApplyLUT", image=image, lut_file="affine.cube"), first)
    assert len(parsed) == 1
    write_cube(luts / "affine.cube", 3, function=lambda c: 1 - c)  # changed: read again
    assert torch.allclose(call(registry, "ImageApplyLUT", image=image, lut_file="affine.cube", gamma_correction=False),
                          1 - image, atol=1e-6)
    assert len(parsed) == 2


def kornia_adobe_match(image, reference, lum, intensity, fade, neutral, mask=None):
    """The pack's Adobe-style match written with kornia.color.rgb_to_lab / lab_to_rgb."""
    import kornia.color as kc

    def stats(x, m=None):
        l, a, b = kc.rgb_to_lab(x).chunk(3, dim=1)
        if m is None:
            return l.mean(), l.std(), a.mean(), b.mean(), torch.sqrt(a.var() + b.var())
        n = m.sum()
        ml, ma, mb = (l * m).sum() / n, (a * m).sum() / n, (b * m).sum() / n
        return (ml, torch.sqrt(((l - ml) ** 2 * m).sum() / n), ma, mb,
                torch.sqrt((((a - ma) ** 2 + (b - mb) ** 2) * m).sum() / n))

    x, ref = image.movedim(-1, 1), reference.movedim(-1, 1)
    m = None if mask is None else (torch.nn.functional.interpolate(mask[:, None], size=ref.shape[2:]) > 0.5).float()
    src, dst = stats(ref, m), stats(x)
    l, a, b = kc.rgb_to_lab(x).chunk(3, dim=1)
    l = (l - dst[0]) * (src[1] / dst[1]) * lum + src[0]
    a = (a - neutral * dst[2]) * (src[4] / dst[4]) * intensity
    b = (b - neutral * dst[3]) * (src[4] / dst[4]) * intensity
    rgb = kc.lab_to_rgb(torch.cat([l, a, b], 1))
    return (fade * rgb + (1 - fade) * x).movedim(1, -1).clamp(0, 1)


def test_color_match_adobe_equals_the_packs_steps_through_kornia(registry):
    image, reference = pictures(batch=2, seed=14) * 0.7, pictures(batch=1, seed=15) * 0.5 + 0.3
    settings = {"luminance_factor": 1.2, "color_intensity_factor": 0.8, "fade_factor": 0.75,
                "neutralization_factor": 0.5}
    got = call(registry, "ImageColorMatchAdobe", image=image, reference=reference, **settings)
    want = kornia_adobe_match(image, reference, 1.2, 0.8, 0.75, 0.5)
    assert torch.allclose(got, want, atol=2e-4) and (got - image).abs().mean() > 0.05
    mask = torch.zeros((1, 6, 8))
    mask[:, 1:4, 2:7] = 1
    got = call(registry, "ImageColorMatchAdobe", image=image, reference=reference, reference_mask=mask, **settings)
    assert torch.allclose(got, kornia_adobe_match(image, reference, 1.2, 0.8, 0.75, 0.5, mask), atol=2e-4)


def test_batch_to_list_feeds_the_next_node_once_per_image(registry):
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 6, "batch_size": 3, "color": 0}},
             "2": {"class_type": "ImageBatchToList+", "inputs": {"image": ["1", 0]}},
             "3": {"class_type": "ImageFlip+", "inputs": {"image": ["2", 0], "axis": "x"}},
             "4": {"class_type": "ImageListToBatch+", "inputs": {"image": ["3", 0]}}}
    _, values = run(registry, graph, ["2", "4"])
    assert [tuple(i.shape) for i in values["2"][0]] == [(1, 6, 8, 3)] * 3
    assert values["4"][0].shape == (3, 6, 8, 3)


def test_ui_graph_of_mask_nodes_in_the_packs_widget_order(registry):
    """MaskFix+ saves erode_dilate, fill_holes, remove_isolated_pixels, smooth, blur (its inputs'
    order, not its function's); MaskBoundingBox+'s outputs are MASK, IMAGE, x, y, width, height."""
    nodes = [ui_node(1, "TransitionMask+", [24, 20, 3, 0, 3, "horizontal slide", "linear"],
                     outputs=[("MASK", "MASK", [1])]),
             ui_node(2, "MaskFix+", [-3, 0, 0, 0, 0], [("mask", "MASK", 1, False)], [("MASK", "MASK", [2])]),
             ui_node(3, "MaskBoundingBox+", [1, 0], [("mask", "MASK", 2, False), ("image_optional", "IMAGE", None,
                                                                                 False)],
                     [("MASK", "MASK", []), ("IMAGE", "IMAGE", []), ("x", "INT", [3]), ("y", "INT", []),
                      ("width", "INT", [4]), ("height", "INT", [])]),
             ui_node(4, "SimpleMathDual+", ["a + b", "b"], [("a", "*", 3, False), ("b", "*", 4, False)],
                     [("int_1", "INT", []), ("float_1", "FLOAT", []), ("int_2", "INT", []), ("float_2", "FLOAT", [])])]
    links = [[1, 1, 0, 2, 0, "MASK"], [2, 2, 0, 3, 0, "MASK"], [3, 3, 2, 4, 0, "INT"], [4, 3, 4, 4, 1, "INT"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["2", "3", "4"])
    fixed = values["2"][0]
    half = numpy.zeros((20, 24), numpy.float32)
    half[:, :12] = 1
    assert torch.equal(fixed[1], torch.from_numpy(scipy.ndimage.grey_erosion(half, size=(3, 3))))
    assert fixed[1][0].sum() == 11  # eroded, not dilated
    assert values["3"][2:] == (0, 0, 24, 20) and values["4"] == (24, 24.0, 24, 24.0)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2] == [-3, 0, 0, 0, 0] and saved[3] == [1, 0]


def reference_slerp(t, low, high):
    """Spherical interpolation of each picture's flattened noise (the formula the pack uses)."""
    a, b = low.reshape(len(low), -1).double(), high.reshape(len(high), -1).double()
    omega = torch.acos((a / a.norm(dim=1, keepdim=True) * b / b.norm(dim=1, keepdim=True)).sum(1))
    out = (torch.sin((1 - t) * omega)[:, None] * a + torch.sin(t * omega)[:, None] * b) / torch.sin(omega)[:, None]
    return out.reshape(low.shape).float()


def test_variations_with_noise_add_slerped_noise_then_sample(registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a fox"}},
             "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}}}
    _, values = run(registry, graph, ["1", "2", "3"])
    model, positive, negative = values["1"][0], values["2"][0], values["3"][0]
    samples = torch.rand((2, 4, 8, 8), generator=torch.Generator().manual_seed(5))
    mask = torch.zeros((1, 64, 64))
    mask[:, :, :32] = 1
    latent = {"samples": samples, "noise_mask": mask}
    settings = {"steps": 6, "cfg": 5.0, "sampler_name": "euler", "scheduler": "karras", "positive": positive,
                "negative": negative}
    got = call(registry, "KSamplerVariationsWithNoise", model=model, latent_image=latent, main_seed=4,
               variation_strength=0.3, variation_seed=4, denoise=0.5, **settings)
    torch.manual_seed(4)  # the pack's draws: the base noise, then main_seed + 1's
    base = torch.randn((1, 4, 8, 8)).repeat(2, 1, 1, 1)
    torch.manual_seed(5)
    variation = torch.randn((2, 4, 8, 8))
    sigmas = call(registry, "BasicScheduler", model=model, scheduler="karras", steps=6, denoise=1.0)  # euler's
    sigma = float(sigmas[3] - sigmas[6]) / model.latent_format.scale_factor
    weight = torch.nn.functional.interpolate(mask[:, None], size=(8, 8), mode="bilinear")
    noisy = samples + reference_slerp(0.3, base, variation) * sigma
    grown = mask[0].numpy()
    for _ in range(5):  # the mask grown 5 pixels, tapered: scipy's grey dilation by a cross, 5 times
        grown = scipy.ndimage.grey_dilation(grown, footprint=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    work = {"samples": weight * noisy + (1 - weight) * samples, "noise_mask": torch.from_numpy(grown)[None]}
    want = call(registry, "KSamplerAdvanced", model=model, add_noise="disable", noise_seed=4, latent_image=work,
                start_at_step=3, end_at_step=6, return_with_leftover_noise="disable", **settings)
    assert torch.allclose(got["samples"], want["samples"], atol=1e-4)
    assert not torch.allclose(got["samples"][0], got["samples"][1], atol=1e-3)


def test_display_any_old_and_new_saves(registry):
    """Saves from before the mode widget hold only the shown text; later ones [mode, text]."""
    nodes = [ui_node(1, "EmptyImage", [8, 6, 2, 0], outputs=[("IMAGE", "IMAGE", [1, 2])]),
             ui_node(2, "DisplayAny", ["tensor shape", "[[2, 6, 8, 3]]"], [("input", "*", 1, False)],
                     [("STRING", "STRING", [])]),
             ui_node(3, "DisplayAny", ["old text"], [("input", "*", 2, False)])]
    workflow, values = run(registry, ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 3, 0, "IMAGE"]]),
                           ["2", "3"])
    assert values["2"][0] == "[[2, 6, 8, 3]]"
    assert values["3"][0].startswith("tensor(")  # raw value: the tensor as Python prints it
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2] == ["tensor shape"] and saved[3] == ["raw value"]


def pillow_text(font_path, text, size, color, background, shadow, blur, shadow_color, h_align, v_align, dx, dy,
                canvas=None):
    """The pack's drawing steps, with Pillow (on a canvas of `canvas` (width, height): img_composite's)."""
    from PIL import Image, ImageColor, ImageDraw, ImageFilter, ImageFont
    font = ImageFont.truetype(str(font_path), size, layout_engine=ImageFont.Layout.BASIC)
    lines = text.split("\n")
    text_width = max(font.getbbox(line)[2] for line in lines)
    line_height = font.getmask(text).getbbox()[3] + font.getmetrics()[1]
    text_height = line_height * len(lines)
    width, height = canvas or (text_width, text_height)
    image = Image.new("RGBA", canvas or (width + shadow, height + shadow), color=ImageColor.getrgb(background))
    under = image.copy()
    for i, line in enumerate(lines):
        x = {"left": 0, "center": (width - font.getbbox(line)[2]) / 2,
             "right": width - font.getbbox(line)[2]}[h_align] + dx
        y = {"top": 0, "center": (height - text_height) / 2, "bottom": height - text_height}[v_align] + i * line_height + dy
        ImageDraw.Draw(image).text((x, y), line, font=font, fill=color)
        ImageDraw.Draw(under).text((x + shadow, y + shadow), line, font=font, fill=shadow_color)
    image = Image.alpha_composite(under.filter(ImageFilter.GaussianBlur(blur)), image) if shadow else image
    rgba = torch.from_numpy(numpy.array(image).astype(numpy.float32) / 255)[None]
    return rgba[..., :3], rgba[..., 3]


def test_draw_text_draws_as_pillow_does(registry, fonts):
    assert registry.get("DrawText").input_specs["font"].widget.options() == ["aileron.ttf"]
    args = ("Hello,\nWorld!", 24, "#FF8000", "#20202080", 3, 2, "#0000FF", "center", "top", 1, 2)
    image, mask = call(registry, "DrawText", text=args[0], font="aileron.ttf", size=24, color="#FF8000",
                       background_color="#20202080", shadow_distance=3, shadow_blur=2, shadow_color="#0000FF",
                       horizontal_align="center", vertical_align="top", offset_x=1, offset_y=2)
    want_image, want_mask = pillow_text(fonts / "aileron.ttf", *args)
    assert torch.equal(image, want_image) and torch.equal(mask, want_mask)
    assert image.shape[1] > 24 * 2 and (image[..., 0] == 1.0).any()  # two lines, orange drawn
    under = pictures(batch=1, height=40, width=120, seed=16)
    image, mask = call(registry, "DrawText", text="Hi", font="aileron.ttf", size=20, img_composite=under)
    assert image.shape == (1, 40, 120, 3) and mask.max() == 1.0
    untouched = mask[0] == 0
    assert torch.allclose(image[0][untouched], under[0][untouched], atol=1 / 255 + 1e-6)  # 8-bit, as in the pack
    for name, value in (("color", "#GG0000"), ("font", "../fonts/aileron.ttf")):
        with pytest.raises(NodeInputError) as e:
            _core(registry.get("DrawText"), **{"text": "x", "font": "aileron.ttf", name: value})
        assert e.value.input == name


@pytest.mark.parametrize("v_align", ["center", "bottom"])
def test_draw_text_aligns_on_img_composite_as_the_pack(registry, fonts, v_align):
    """On img_composite the text is placed in its picture: centred or at the bottom (and right)."""
    under = pictures(batch=1, height=70, width=150, seed=17)
    _, mask = call(registry, "DrawText", text="Ab\ncd", font="aileron.ttf", size=18, color="#FFFFFF",
                   background_color="#00000000", horizontal_align="right", vertical_align=v_align, offset_x=-3,
                   img_composite=under)
    _, want = pillow_text(fonts / "aileron.ttf", "Ab\ncd", 18, "#FFFFFF", "#00000000", 0, 0, "#000000", "right",
                          v_align, -3, 0, canvas=(150, 70))
    assert torch.equal(mask, want) and mask[0, :10].sum() == 0  # not at the top
    grey, grey_mask = call(registry, "DrawText", text="Ab", font="aileron.ttf", size=18, img_composite=under[..., :1])
    rgb, rgb_mask = call(registry, "DrawText", text="Ab", font="aileron.ttf", size=18,
                         img_composite=under[..., :1].expand(-1, -1, -1, 3))
    assert torch.equal(grey, rgb) and torch.equal(grey_mask, rgb_mask)  # grey taken as RGB, as ToPILImage does


def test_draw_text_too_large_is_refused_before_drawing(registry, fonts, monkeypatch):
    import time
    from PIL import Image
    start = time.perf_counter()
    with pytest.raises(NodeInputError, match="at size 9999") as e:
        call(registry, "DrawText", text="W" * 10, font="aileron.ttf", size=9999)
    assert e.value.input == "size" and time.perf_counter() - start < 1.0  # measured, not drawn
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow's own limit: its error named as ours
    with pytest.raises(NodeInputError) as e:
        call(registry, "DrawText", text="Hello", font="aileron.ttf", size=40)
    assert e.value.input == "size"
    monkeypatch.undo()

    def checked(text, size, limits):
        graph = {"1": {"type": "DrawText", "inputs": {"text": text, "font": "aileron.ttf", "size": size}},
                 "2": {"type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
        return {p.node_id for p in validate(parse_workflow({"nodes": graph}), registry, limits=limits)}
    assert checked("Hello\nthere", 400, RunLimits(max_pixels=100_000)) == {"1"}
    assert checked("Hello\nthere", 40, RunLimits(max_pixels=100_000)) == set()
    image, _ = call(registry, "DrawText", text="Hello\nthere", font="aileron.ttf", size=40, shadow_distance=3)
    estimate = registry.get("DrawText").estimate({"text": "Hello\nthere", "font": "aileron.ttf", "size": 40,
                                                  "shadow_distance": 3}, {})
    assert (estimate.size.height, estimate.size.width) == tuple(image.shape[1:3])


def test_draw_text_reads_only_fonts_inside_their_folder(registry, fonts, tmp_path):
    outside = tmp_path / "outside_fonts"
    outside.mkdir()
    (outside / "far.ttf").write_bytes((fonts / "aileron.ttf").read_bytes())
    (fonts / "far.ttf").symlink_to(outside / "far.ttf")
    assert registry.get("DrawText").input_specs["font"].widget.options() == ["aileron.ttf"]
    with pytest.raises(NodeInputError, match="link out of its folder") as e:
        _core(registry.get("DrawText"), text="x", font="far.ttf")
    assert e.value.input == "font"


def test_draw_text_from_a_ui_save(registry, fonts):
    widgets = ["Hi there", "aileron.ttf", 30, "#FFFFFF", "#000000FF", 0, 0, "#000000", "right", "bottom", -2, 0]
    nodes = [ui_node(1, "DrawText+", widgets, [("img_composite", "IMAGE", None, False)],
                     [("IMAGE", "IMAGE", []), ("MASK", "MASK", [])])]
    workflow, values = run(registry, ui_graph(nodes), ["1"])
    image, mask = values["1"]
    assert image.shape[0] == 1 and mask.shape == image.shape[:3] and (mask == 1).all()  # opaque background
    assert image.max() == 1.0 and image.min() == 0.0
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[1] == widgets
