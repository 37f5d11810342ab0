"""KJNodes' round-3 nodes (nodes/pack_nodes_kj3.py): each against the pack's rule or the library
it calls (torchvision's Resize / rotate, PIL's Lanczos, resize, text and blur, torch's cat),
computed here; their errors by input name; and read from UI-format saves and API prompts with
the pack's class names, exported back unchanged."""

import copy
import math

import numpy
import pytest
import torch
import torch.nn.functional as F

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



def failed(registry, graph, outputs):
    """The error of a run that must fail (a dict with node_id, input, message)."""
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=outputs)
    assert not result.ok
    return result.error or {}


def eight_bit(x):
    return (x * 255).round() / 255


def comfy_lanczos(images, width, height):
    """ComfyUI's common_upscale 'lanczos': each picture through PIL at 8 bits."""
    from PIL import Image
    out = []
    for image in images:
        picture = Image.fromarray(numpy.clip(255.0 * image.numpy(), 0, 255).astype(numpy.uint8))
        out.append(numpy.asarray(picture.resize((width, height), Image.Resampling.LANCZOS), numpy.float32) / 255)
    return torch.from_numpy(numpy.stack(out))


def rounded_box(mask):
    """(x0, y0, x1, y1) of a mask's pixels at 0.5 and above, both ends included (numpy)."""
    ys, xs = numpy.nonzero(numpy.round(mask.numpy()) > 0)
    return xs.min(), ys.min(), xs.max(), ys.max()


# -- ImageCropByMask --------------------------------------------------------------------------------


def test_image_crop_by_mask_crops_to_the_rounded_box(registry):
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 20, 30, 3, generator=g)
    masks = torch.zeros(2, 20, 30)
    masks[0, 3:9, 4:15] = 0.6
    masks[0, 0, 0] = 0.49  # rounds to 0: not in the box
    masks[1, 10:16, 12:23] = 1.0
    out = call(registry, "ImageCropByMask", image=images, mask=masks)
    for b in range(3):
        x0, y0, x1, y1 = rounded_box(masks[min(b, 1)])  # the last mask serves the third image
        assert torch.equal(out[b], images[b, y0:y1 + 1, x0:x1 + 1])
    assert out.shape == (3, 6, 11, 3)


def test_image_crop_by_mask_errors(registry):
    images = torch.rand(2, 20, 30, 3)
    with pytest.raises(NodeInputError, match="empty") as caught:
        call(registry, "ImageCropByMask", image=images, mask=torch.full((1, 20, 30), 0.4))
    assert caught.value.input == "mask"
    masks = torch.zeros(2, 20, 30)
    masks[0, 2:5, 2:5] = 1
    masks[1, 2:6, 2:5] = 1
    with pytest.raises(NodeInputError, match="one size") as caught:
        call(registry, "ImageCropByMask", image=images, mask=masks)
    assert caught.value.input == "mask"
    beyond = torch.zeros(1, 64, 64)
    beyond[0, 40:50, 40:50] = 1  # a larger mask whose box lies outside the 30x20 image: the pack gives a 0x0 image
    with pytest.raises(NodeInputError, match="outside") as caught:
        call(registry, "ImageCropByMask", image=images, mask=beyond)
    assert caught.value.input == "mask"


# -- ImageCropByMaskAndResize / ImageUncropByMask ---------------------------------------------------


def pack_crop_and_resize(masks, width, height, base, padding, least, most):
    """The pack's uniform crop: each mask's box, the crop size, each crop's corner box and the
    target size (numpy and Python's int(), as the pack's arithmetic)."""
    boxes = []
    for mask in masks:
        ys, xs = numpy.nonzero(numpy.round(mask.numpy()) == 1)
        if len(ys):
            w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
            xc, yc = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
        else:
            w = h = 0
            xc, yc = width / 2, height / 2
        if least:
            w, h = max(w, least), max(h, least)
        if most:
            w, h = min(w, most), min(h, most)
        fw = min(w + 2 * min((width - w) // 2, padding), width)
        fh = min(h + 2 * min((height - h) // 2, padding), height)
        boxes.append((max(0, min(int(xc - fw / 2), width - fw)), max(0, min(int(yc - fh / 2), height - fh)), fw, fh))
    crop_w = -(-max(b[2] for b in boxes) // 16) * 16
    crop_h = -(-max(b[3] for b in boxes) // 16) * 16
    aspect = max(b[2] / b[3] for b in boxes)
    tw, th = (base, int(base / aspect)) if aspect > 1 else (int(base * aspect), base)
    tw, th = -(-tw // 16) * 16, -(-th // 16) * 16
    corners = []
    for x, y, w, h in boxes:
        x0 = max(0, min(int(x + w / 2 - crop_w / 2), width - crop_w))
        y0 = max(0, min(int(y + h / 2 - crop_h / 2), height - crop_h))
        corners.append((x0, y0, x0 + crop_w, y0 + crop_h))
    return corners, tw, th


@pytest.mark.parametrize("base, padding, least, most", [(512, 0, 128, 512), (64, 5, 0, 0), (96, 40, 24, 40)])
def test_image_crop_by_mask_and_resize_boxes_and_crops(registry, base, padding, least, most):
    g = torch.Generator().manual_seed(2)
    images = eight_bit(torch.rand(3, 70, 90, 3, generator=g))
    masks = torch.zeros(3, 70, 90)
    masks[0, 5:20, 3:40] = 1
    masks[1, 40:69, 60:88] = 0.7
    masks[2, 30:35, 44:50] = 1
    crops, crop_masks, corners = call(registry, "ImageCropByMaskAndResize", image=images, mask=masks,
                                      base_resolution=base, padding=padding, min_crop_resolution=least,
                                      max_crop_resolution=most)
    want_corners, tw, th = pack_crop_and_resize(masks, 90, 70, base, padding, least, most)
    assert corners == want_corners and crops.shape == (3, th, tw, 3) and crop_masks.shape == (3, th, tw)
    for i, (x0, y0, x1, y1) in enumerate(corners):
        piece = images[i:i + 1, y0:y1, x0:x1]
        assert torch.allclose(crops[i:i + 1], comfy_lanczos(piece, tw, th), atol=1e-6)
        want_mask = F.interpolate(masks[i, y0:y1, x0:x1].round()[None, None], size=(th, tw), mode="bilinear")
        assert torch.allclose(crop_masks[i], want_mask[0, 0], atol=1e-6)


def test_image_crop_by_mask_and_resize_errors(registry):
    images = torch.rand(2, 40, 40, 3)
    masks = torch.zeros(2, 40, 40)
    masks[0, 5:10, 5:10] = 1
    with pytest.raises(NodeInputError, match="empty") as caught:  # mask 1 is empty: a 0x0 box with no minimum
        call(registry, "ImageCropByMaskAndResize", image=images, mask=masks, min_crop_resolution=0)
    assert caught.value.input == "min_crop_resolution"
    _, _, corners = call(registry, "ImageCropByMaskAndResize", image=images, mask=masks, min_crop_resolution=16)
    assert corners[1] == (12, 12, 28, 28)  # the empty mask's box: 16 square at the centre
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ImageCropByMaskAndResize", image=images, mask=masks, base_resolution=0)
    assert caught.value.input == "base_resolution"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ImageCropByMaskAndResize", image=images, mask=masks[:1])
    assert caught.value.input == "mask"
    larger = torch.zeros(2, 80, 80)  # a box past the 40x40 picture (it gave a corner box of 0..80)
    larger[:, 50:70, 50:70] = 1
    with pytest.raises(NodeInputError, match="80x80, the images 40x40") as caught:
        call(registry, "ImageCropByMaskAndResize", image=images, mask=larger)
    assert caught.value.input == "mask"
    # the crops are base_resolution on their longer side (rounded up to 16): a huge one is refused before the run
    picture = {"type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    solid = {"type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}}
    crop = {"type": "ImageCropByMaskAndResize",
            "inputs": {"image": ["1", 0], "mask": ["2", 0], "base_resolution": 8192}}
    assert "3" in refused(registry, [picture, solid, crop], RunLimits(max_pixels=2048 * 2048))
    crop["inputs"]["base_resolution"] = 1024
    assert refused(registry, [picture, solid, crop], RunLimits(max_pixels=2048 * 2048)) == set()


def test_size_refusals_name_the_input_that_sets_the_size(registry):
    """Over the policy, ImageCropByMaskAndResize's crops are named by base_resolution (typed in or
    linked) and OffsetMask's batch by duplication_factor, not by the mask."""
    from graphflow.validation import validate
    picture = {"type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    solid = {"type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}}
    for base in (8192, ["4", 0]):
        graph = {"1": picture, "2": solid, "4": {"type": "IntValue", "inputs": {"value": 8192}},
                 "3": {"type": "ImageCropByMaskAndResize", "inputs": {"image": ["1", 0], "mask": ["2", 0],
                                                                      "base_resolution": base}}}
        executor = Executor(registry, limits=RunLimits(max_pixels=2048 * 2048))
        result = executor.run(parse_workflow({"nodes": graph}, registry), outputs=["3"])
        # typed in, validation refuses it; linked, the run does before the node starts
        where = [(p.node_id, p.input) for p in result.problems] or [(result.error["node_id"], result.error["input"])]
        assert not result.ok and where == [("3", "base_resolution")], (result.problems, result.error)
    graph = {"1": solid, "2": {"type": "OffsetMask", "inputs": {"mask": ["1", 0], "duplication_factor": 1000}},
             "3": {"type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
             "4": {"type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    problems = validate(parse_workflow({"nodes": graph}), registry, limits=RunLimits(max_batch=64))
    assert [(p.node_id, p.input) for p in problems] == [("2", "duplication_factor")]


def test_image_uncrop_by_mask_blends_the_resized_source_into_its_box(registry):
    g = torch.Generator().manual_seed(3)
    dest = eight_bit(torch.rand(2, 30, 40, 3, generator=g))
    source = eight_bit(torch.rand(2, 16, 16, 3, generator=g))
    masks = torch.rand(2, 16, 16, generator=g)
    boxes = [(4, 6, 20, 18), (30, 20, 46, 36)]  # the second runs past the right and bottom edges
    numpy_boxes = [tuple(numpy.int64(v) for v in box) for box in boxes]  # boxes another pack made with numpy
    out = call(registry, "ImageUncropByMask", destination=dest, source=source, mask=masks,
               bbox=numpy_boxes + [(0, 0, 1, 1)])
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        patch = comfy_lanczos(source[i:i + 1], x1 - x0, y1 - y0)[0]
        weight = F.interpolate(masks[i][None, None], size=(y1 - y0, x1 - x0), mode="bilinear")[0, 0, ..., None]
        want = dest[i].clone()
        w, h = min(x1, 40) - x0, min(y1, 30) - y0
        inside = dest[i, y0:y0 + h, x0:x0 + w]
        want[y0:y0 + h, x0:x0 + w] = inside * (1 - weight[:h, :w]) + patch[:h, :w] * weight[:h, :w]
        assert torch.allclose(out[i], want, atol=1e-6)
    for name, kwargs in (("bbox", {"bbox": boxes[:1]}), ("mask", {"mask": masks[:1]}),
                         ("destination", {"destination": dest[:1]}), ("source", {"source": source[..., :1]}),
                         ("bbox", {"bbox": [(4, 6, 4, 18), boxes[1]]}), ("bbox", {"bbox": [(50, 0, 60, 9), boxes[1]]}),
                         ("bbox", {"bbox": [(4.5, 6, 20, 18), boxes[1]]})):
        inputs = {"destination": dest, "source": source, "mask": masks, "bbox": boxes} | kwargs
        with pytest.raises(NodeInputError) as caught:
            call(registry, "ImageUncropByMask", **inputs)
        assert caught.value.input == name, kwargs


def test_crop_and_resize_then_uncrop_from_the_packs_ui_save(registry):
    """The pack's inpainting round trip as the editor saves it: crop by mask and resize, then paste
    back with Image Uncrop By Mask (a flat picture comes back as it was)."""
    nodes = [ui_node(1, "EmptyImage", [64, 48, 1, 0x336699], outputs=[("IMAGE", "IMAGE", [1, 4])]),
             ui_node(2, "CreateShapeMask", ["square", 1, 30, 20, 0, 64, 48, 16, 12],
                     outputs=[("mask", "MASK", [2]), ("mask_inverted", "MASK", [])]),
             ui_node(3, "ImageCropByMaskAndResize", [256, 4, 16, 64],
                     inputs=[("image", "IMAGE", 1, False), ("mask", "MASK", 2, False)],
                     outputs=[("images", "IMAGE", [3]), ("masks", "MASK", [5]), ("bbox", "BBOX", [6])]),
             ui_node(4, "ImageUncropByMask", [],
                     inputs=[("destination", "IMAGE", 4, False), ("source", "IMAGE", 3, False),
                             ("mask", "MASK", 5, False), ("bbox", "BBOX", 6, False)],
                     outputs=[("image", "IMAGE", [])])]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "MASK"], [3, 3, 0, 4, 1, "IMAGE"], [4, 1, 0, 4, 0, "IMAGE"],
             [5, 3, 1, 4, 2, "MASK"], [6, 3, 2, 4, 3, "BBOX"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["3", "4"])
    mask = call(registry, "CreateShapeMask", shape="square", frames=1, location_x=30, location_y=20, grow=0,
                frame_width=64, frame_height=48, shape_width=16, shape_height=12)[0]
    want_corners, tw, th = pack_crop_and_resize(mask, 64, 48, 256, 4, 16, 64)
    assert values["3"][2] == want_corners and values["3"][0].shape == (1, th, tw, 3)
    assert torch.allclose(values["4"][0], call(registry, "EmptyImage", width=64, height=48, color=0x336699), atol=1e-6)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[3] == [256, 4, 16, 64] and saved[4] == []


# -- BatchCropFromMaskAdvanced / BatchUncropAdvanced ------------------------------------------------


def pack_advanced_boxes(masks, width, height, mult, alpha, preserve, max_w, max_h):
    """The pack's advanced crop boxes, union box and output size, from numpy (Python's round)."""
    def box_of(mask):
        ys, xs = numpy.nonzero(numpy.clip(255.0 * mask.numpy(), 0, 255).astype(numpy.uint8))
        if len(xs) == 0:
            return None
        return ((xs.min() + xs.max()) / 2.0, (ys.min() + ys.max()) / 2.0,
                xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)

    def fit(w, h, lw, lh):
        w, h = max(1, int(round(w))), max(1, int(round(h)))
        scale = min([1.0] + [lim / side for lim, side in ((lw, w), (lh, h)) if lim > 0])
        return (max(1, int(round(w * scale))), max(1, int(round(h * scale)))) if scale < 1 else (w, h)

    def place(cx, cy, w, h):
        w, h = int(max(1, min(round(w), width))), int(max(1, min(round(h), height)))
        x0 = max(0, min(int(round(cx - w / 2.0)), width - w))
        y0 = max(0, min(int(round(cy - h / 2.0)), height - h))
        return x0, y0, w, h

    infos = [box_of(m) for m in masks]
    found = [i for i in infos if i is not None]
    if preserve:
        box = fit(max(1, round(max([i[2] for i in found] or [width]) * mult)),
                  max(1, round(max([i[3] for i in found] or [height]) * mult)), width, height)
        out = fit(*box, max_w, max_h)
    else:
        side = math.ceil(max(1, round(max([max(i[2], i[3]) for i in found] or [min(width, height)]) * mult)) / 16) * 16
        if side > min(width, height):
            side = min(width, height) // 16 * 16 if min(width, height) >= 16 else min(width, height)
        box = out = (side, side)
    union = box_of(masks.max(dim=0)[0])
    if union is None:
        ucx, ucy, uw, uh = width / 2, height / 2, *box
    else:
        ucx, ucy = union[0], union[1]
        uw, uh = max(1, round(union[2] * mult)), max(1, round(union[3] * mult))
    uw, uh = fit(uw, uh, width, height) if preserve else (min(max(1, int(round(max(uw, uh)))), min(width, height)),) * 2
    boxes, previous = [], None
    for i, info in enumerate(infos):
        here = (round(info[0]), round(info[1])) if info else (previous or (width // 2, height // 2))
        if i > 0:
            here = previous if alpha <= 0 else here if alpha >= 1 else \
                (round(alpha * here[0] + (1 - alpha) * previous[0]), round(alpha * here[1] + (1 - alpha) * previous[1]))
        previous = here
        boxes.append(place(*here, *box))
    return boxes, place(ucx, ucy, uw, uh), out


@pytest.mark.parametrize("mult, alpha, preserve, max_w, max_h", [(1.0, 0.5, False, 0, 0), (1.3, 1.0, False, 0, 0),
                                                                 (1.2, 0.3, True, 0, 0), (2.0, 0.0, True, 20, 0),
                                                                 (0.8, 0.6, True, 30, 12)])
def test_batch_crop_from_mask_advanced_boxes_and_crops(registry, mult, alpha, preserve, max_w, max_h):
    from torchvision.transforms import InterpolationMode, Resize
    g = torch.Generator().manual_seed(5)
    images = torch.rand(4, 50, 70, 3, generator=g)
    masks = torch.zeros(4, 50, 70)
    masks[0, 5:20, 6:30] = 1
    masks[2, 20:45, 40:66] = 0.5  # mask 1 is empty: its centre is the previous frame's
    masks[3, 30:33, 10:14] = 1
    out = call(registry, "BatchCropFromMaskAdvanced", original_images=images, masks=masks, crop_size_mult=mult,
               bbox_smooth_alpha=alpha, preserve_aspect_ratio=preserve, max_width=max_w, max_height=max_h)
    originals, crops, crop_masks, union_crops, union_masks, boxes, union_box, out_w, out_h = out
    want_boxes, want_union, (want_w, want_h) = pack_advanced_boxes(masks, 70, 50, mult, alpha, preserve, max_w, max_h)
    assert originals is images and boxes == want_boxes and union_box == [want_union]
    assert (out_w, out_h) == (want_w, want_h) and crops.shape == (4, want_h, want_w, 3)
    for i, (x, y, w, h) in enumerate(boxes):
        piece, piece_mask = images[i, y:y + h, x:x + w].permute(2, 0, 1), masks[i, y:y + h, x:x + w][None]
        if (h, w) != (want_h, want_w):
            piece = Resize((want_h, want_w))(piece)
            piece_mask = Resize((want_h, want_w), interpolation=InterpolationMode.NEAREST)(piece_mask)
        assert torch.allclose(crops[i], piece.permute(1, 2, 0), atol=1e-6)
        assert torch.equal(crop_masks[i], piece_mask[0])
        ux, uy, uw, uh = want_union
        assert torch.equal(union_crops[i], images[i, uy:uy + uh, ux:ux + uw])
        assert torch.equal(union_masks[i], masks[i, uy:uy + uh, ux:ux + uw])


def test_batch_crop_from_mask_advanced_empty_masks_and_errors(registry):
    images = torch.rand(2, 40, 60, 3)
    out = call(registry, "BatchCropFromMaskAdvanced", original_images=images, masks=torch.zeros(2, 40, 60))
    # no mask pixels: a square of the shorter side (40, to 16s: 32) at the centre, the union box the same
    assert out[5] == [(14, 4, 32, 32)] * 2 and out[6] == [(14, 4, 32, 32)] and out[7:] == (32, 32)
    single = call(registry, "BatchCropFromMaskAdvanced", original_images=images, masks=torch.ones(1, 40, 60))
    assert single[1].shape[0] == 1 and len(single[5]) == 1  # one mask for two images: one crop, as the pack
    with pytest.raises(NodeInputError) as caught:
        call(registry, "BatchCropFromMaskAdvanced", original_images=images, masks=torch.ones(2, 30, 60))
    assert caught.value.input == "masks"


def test_batch_uncrop_advanced_pastes_exactly_without_blending(registry):
    from PIL import Image
    g = torch.Generator().manual_seed(6)
    images = eight_bit(torch.rand(2, 30, 40, 3, generator=g))
    crops = eight_bit(torch.rand(2, 12, 10, 3, generator=g))
    boxes = [(5, 4, 10, 12), (35, 20, 10, 12)]  # the second is cut at the right edge (5 wide)
    out = call(registry, "BatchUncropAdvanced", original_images=images, cropped_images=crops,
               cropped_masks=torch.ones(2, 12, 10), combined_crop_mask=torch.ones(2, 12, 10),
               bboxes=boxes + [(0, 0, 1, 1)], border_blending=0.0)
    for i, (x, y, w, h) in enumerate(boxes):
        w, h = min(40 - x, w), min(30 - y, h)
        patch = Image.fromarray((crops[i].numpy() * 255).round().astype(numpy.uint8)).resize((w, h))
        want = images[i].clone()
        want[y:y + h, x:x + w] = torch.from_numpy(numpy.asarray(patch).astype(numpy.float32) / 255)
        assert torch.allclose(out[i], want, atol=1e-6)
    # the crop's own mask (use_square_mask off): its pixels at 1 take the crop, those at 0 keep the image
    half = torch.zeros(2, 12, 10)
    half[:, :, :5] = 1
    masked = call(registry, "BatchUncropAdvanced", original_images=images, cropped_images=crops, cropped_masks=half,
                  combined_crop_mask=half, bboxes=boxes[:1] * 2, border_blending=0.0, use_square_mask=False)
    assert torch.allclose(masked[0, 4:16, 5:10], crops[0, :, :5], atol=1e-6)
    assert torch.equal(masked[0, 4:16, 10:15], images[0, 4:16, 10:15])


def scaled_region(region, scale, width, height):
    """The pack's paste region scaled about its centre and kept inside the picture."""
    x0, y0, x1, y1 = region
    sw, sh = max(1, int(round((x1 - x0) * scale))), max(1, int(round((y1 - y0) * scale)))
    nx0, ny0 = int(round(x0 + (x1 - x0) / 2 - sw / 2)), int(round(y0 + (y1 - y0) / 2 - sh / 2))
    nx0 = min(max(nx0, 0), width - sw) if sw <= width else 0
    ny0 = min(max(ny0, 0), height - sh) if sh <= height else 0
    return nx0, ny0, min(width, nx0 + sw), min(height, ny0 + sh)


@pytest.mark.parametrize("scale", [0.5, 1.5, 3.0])
def test_batch_uncrop_advanced_crop_rescale_and_combined_box(registry, scale):
    from PIL import Image
    images = eight_bit(torch.rand(1, 30, 40, 3, generator=torch.Generator().manual_seed(7)))
    crops = torch.full((1, 8, 8, 3), 0.2)
    ones = torch.ones(1, 8, 8)
    box = (26, 2, 8, 8)
    out = call(registry, "BatchUncropAdvanced", original_images=images, cropped_images=crops, cropped_masks=ones,
               combined_crop_mask=ones, bboxes=[(0, 0, 2, 2)], combined_bounding_box=[box], use_combined_mask=True,
               border_blending=0.0, crop_rescale=scale)
    x0, y0, x1, y1 = scaled_region((26, 2, 34, 10), scale, 40, 30)
    patch = Image.fromarray(numpy.full((8, 8, 3), 51, numpy.uint8)).resize((x1 - x0, y1 - y0))
    want = images[0].clone()
    want[y0:y1, x0:x1] = torch.from_numpy(numpy.asarray(patch).astype(numpy.float32) / 255)
    assert torch.allclose(out[0], want, atol=1e-6)


def test_batch_uncrop_advanced_blends_the_border_and_refuses_bad_input(registry):
    images = eight_bit(torch.rand(1, 100, 100, 3, generator=torch.Generator().manual_seed(8)) * 0.5 + 0.5)
    crops = torch.full((1, 80, 80, 3), 0.0)
    ones = torch.ones(1, 80, 80)
    inputs = {"original_images": images, "cropped_images": crops, "cropped_masks": ones, "combined_crop_mask": ones,
              "bboxes": [(10, 10, 80, 80)]}
    blended = call(registry, "BatchUncropAdvanced", **inputs)
    # blend width 80 / 2 x 0.25 = 10: a black outline of 5 pixels, blurred by 2.5 (box, then Gaussian): the
    # middle is the crop, the picture's edge the image, and the box's own edge mostly the image
    assert torch.equal(blended[0, 30:70, 30:70], torch.zeros(40, 40, 3))
    assert torch.equal(blended[0, :3], images[0, :3]) and torch.equal(blended[0, :, :3], images[0, :, :3])
    edge = blended[0, 10, 20:80]
    assert (edge > 0).all() and ((edge - images[0, 10, 20:80]).abs() < 0.25).all()
    for name, change in (("cropped_images", {"cropped_images": crops.repeat(2, 1, 1, 1)}),
                         ("bboxes", {"bboxes": []}), ("bboxes", {"bboxes": [(10, 10, 20)]}),
                         ("bboxes", {"bboxes": [(150, 150, 5, 5)]}),
                         ("combined_bounding_box", {"use_combined_mask": True}),
                         ("cropped_masks", {"cropped_masks": torch.ones(0, 20, 20)})):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "BatchUncropAdvanced", **(inputs | change))
        assert caught.value.input == name, change


def pack_uncrop_advanced(image, crop, region, blending):
    """The pack's square-mask paste with PIL, one image: its tensor2pil pictures (squeezed: one
    channel is an 'L' picture), the crop resized to the region, a white block with a black
    outline round(ratio / 2) wide, box- then Gaussian-blurred by ratio / 4, alpha-composited."""
    from PIL import Image, ImageDraw, ImageFilter

    def picture(pixels):
        return Image.fromarray(numpy.clip(255.0 * pixels.numpy().squeeze(), 0, 255).astype(numpy.uint8))

    base = picture(image)
    x0, y0, x1, y1 = region
    patch = picture(crop).resize((x1 - x0, y1 - y0)).convert("RGB")
    ratio = max(patch.size) / 2 * blending
    block = Image.new("L", patch.size, 255)
    ImageDraw.Draw(block).rectangle((0, 0, patch.size[0] - 1, patch.size[1] - 1), outline=0, width=round(ratio / 2))
    alpha = Image.new("L", base.size, 0)
    alpha.paste(block, region)
    alpha = alpha.filter(ImageFilter.BoxBlur(radius=ratio / 4)).filter(ImageFilter.GaussianBlur(radius=ratio / 4))
    blend = base.convert("RGBA")
    blend.paste(patch, region)
    blend.putalpha(alpha)
    merged = Image.alpha_composite(base.convert("RGBA"), blend).convert("RGB")
    return torch.from_numpy(numpy.asarray(merged).astype(numpy.float32) / 255)


@pytest.mark.parametrize("blending", [0.1, 0.25, 0.6, 1.0])
def test_batch_uncrop_advanced_border_blending_is_the_packs(registry, blending):
    g = torch.Generator().manual_seed(9)
    images = eight_bit(torch.rand(2, 60, 70, 3, generator=g))
    crops = eight_bit(torch.rand(2, 24, 30, 3, generator=g))
    boxes = [(8, 6, 30, 24), (50, 40, 30, 24)]  # the second is cut at the edges (20 x 20)
    ones = torch.ones(2, 24, 30)
    out = call(registry, "BatchUncropAdvanced", original_images=images, cropped_images=crops, cropped_masks=ones,
               combined_crop_mask=ones, bboxes=boxes, border_blending=blending)
    for i, (x, y, w, h) in enumerate(boxes):
        region = (x, y, x + min(70 - x, w), y + min(60 - y, h))
        assert torch.equal(out[i], pack_uncrop_advanced(images[i], crops[i], region, blending))


def test_batch_uncrop_advanced_of_one_channel_images_is_the_packs(registry):
    """One-channel images are grey pictures to the pack's tensor2pil; the result is RGB."""
    g = torch.Generator().manual_seed(10)
    images, crops = eight_bit(torch.rand(1, 30, 40, 1, generator=g)), eight_bit(torch.rand(1, 10, 12, 1, generator=g))
    ones = torch.ones(1, 10, 12)
    out = call(registry, "BatchUncropAdvanced", original_images=images, cropped_images=crops, cropped_masks=ones,
               combined_crop_mask=ones, bboxes=[(5, 6, 12, 10)], border_blending=0.4)
    assert out.shape == (1, 30, 40, 3)
    assert torch.equal(out[0], pack_uncrop_advanced(images[0], crops[0], (5, 6, 17, 16), 0.4))
    plain = call(registry, "BatchUncrop", original_images=images, cropped_images=crops, bboxes=[(5, 6, 12, 10)],
                 border_blending=0.0)  # round 2's Batch Uncrop reads them the same way
    assert torch.equal(plain[0, 7:15, 6:16], crops[0, 1:9, 1:11].expand(-1, -1, 3))  # its edges: a 1-pixel blend
    assert torch.equal(plain[0, :6], images[0, :6].expand(-1, -1, 3))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "BatchUncropAdvanced", original_images=images.repeat(1, 1, 1, 2), cropped_images=crops,
             cropped_masks=ones, combined_crop_mask=ones, bboxes=[(5, 6, 12, 10)])
    assert caught.value.input == "original_images"


def test_crop_and_uncrop_nodes_refuse_empty_batches_by_name(registry):
    image, none3, none2 = torch.rand(1, 32, 32, 3), torch.zeros(0, 32, 32, 3), torch.zeros(0, 32, 32)
    ones = torch.ones(1, 32, 32)
    for node, inputs, name in (
            ("ImageCropByMask", {"image": image, "mask": none2}, "mask"),
            ("ImageCropByMask", {"image": none3, "mask": ones}, "image"),
            ("ImageCropByMaskAndResize", {"image": none3, "mask": ones}, "image"),
            ("BatchCropFromMaskAdvanced", {"original_images": image, "masks": none2}, "masks"),
            ("BatchCropFromMaskAdvanced", {"original_images": none3, "masks": ones}, "original_images"),
            ("ImageUncropByMask", {"destination": image, "source": none3, "mask": ones, "bbox": []}, "source"),
            ("BatchUncropAdvanced", {"original_images": none3, "cropped_images": none3, "cropped_masks": ones,
                                     "combined_crop_mask": ones, "bboxes": []}, "original_images"),
            ("ImageAndMaskPreview", {"image": image, "mask": none2, "pass_through": True}, "mask"),
            ("ImageAndMaskPreview", {"image": none3, "mask": ones, "pass_through": True}, "image")):
        with pytest.raises(NodeInputError, match="empty batch") as caught:
            call(registry, node, **inputs)
        assert caught.value.input == name, (node, inputs)


def test_batch_crop_and_uncrop_advanced_from_the_packs_ui_save(registry):
    nodes = [ui_node(1, "EmptyImage", [48, 40, 2, 0x204060], outputs=[("IMAGE", "IMAGE", [1, 3])]),
             ui_node(2, "CreateShapeMask", ["circle", 2, 20, 18, 2, 48, 40, 12, 10],
                     outputs=[("mask", "MASK", [2]), ("mask_inverted", "MASK", [])]),
             ui_node(3, "BatchCropFromMaskAdvanced", [1.5, 0.5, False, 0, 0],
                     inputs=[("original_images", "IMAGE", 1, False), ("masks", "MASK", 2, False)],
                     outputs=[("original_images", "IMAGE", []), ("cropped_images", "IMAGE", [4]),
                              ("cropped_masks", "MASK", [5]), ("combined_crop_image", "IMAGE", []),
                              ("combined_crop_masks", "MASK", [6]), ("bboxes", "BBOX", [7]),
                              ("combined_bounding_box", "BBOX", [8]), ("bbox_width", "INT", []),
                              ("bbox_height", "INT", [])]),
             ui_node(4, "BatchUncropAdvanced", [0.25, 1.0, False, True],
                     inputs=[("original_images", "IMAGE", 3, False), ("cropped_images", "IMAGE", 4, False),
                             ("cropped_masks", "MASK", 5, False), ("combined_crop_mask", "MASK", 6, False),
                             ("bboxes", "BBOX", 7, False), ("combined_bounding_box", "BBOX", 8, False)],
                     outputs=[("IMAGE", "IMAGE", [])])]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "MASK"], [3, 1, 0, 4, 0, "IMAGE"], [4, 3, 1, 4, 1, "IMAGE"],
             [5, 3, 2, 4, 2, "MASK"], [6, 3, 4, 4, 3, "MASK"], [7, 3, 5, 4, 4, "BBOX"], [8, 3, 6, 4, 5, "BBOX"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["3", "4"])
    masks = call(registry, "CreateShapeMask", shape="circle", frames=2, location_x=20, location_y=18, grow=2,
                 frame_width=48, frame_height=40, shape_width=12, shape_height=10)[0]
    want_boxes, want_union, _ = pack_advanced_boxes(masks, 48, 40, 1.5, 0.5, False, 0, 0)
    assert values["3"][5] == want_boxes and values["3"][6] == [want_union]
    assert torch.allclose(values["4"][0], values["3"][0], atol=1 / 255)  # one colour: pasting back changes nothing
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[3] == [1.5, 0.5, False, 0, 0] and saved[4] == [0.25, 1.0, False, True]


# -- values, sigmas and strings ---------------------------------------------------------------------


def test_float_and_sigma_lists(registry):
    sigmas = call(registry, "FloatToSigmas", float_list=[14.6, 3.5, 0.0])
    assert torch.equal(sigmas, torch.tensor([14.6, 3.5, 0.0], dtype=torch.float32))
    assert torch.equal(call(registry, "FloatToSigmas", float_list=2.0), torch.tensor([2.0]))
    assert call(registry, "SigmasToFloat", sigmas=sigmas) == sigmas.tolist()
    assert call(registry, "StringToFloatList", string="1, 2.5,\n-3e2 ") == [1.0, 2.5, -300.0]
    for node, inputs, name in (("FloatToSigmas", {"float_list": [1.0, float("nan")]}, "float_list"),
                               ("FloatToSigmas", {"float_list": ["a"]}, "float_list"),
                               ("SigmasToFloat", {"sigmas": [1.0]}, "sigmas"),
                               ("StringToFloatList", {"string": "1, two"}, "string")):
        with pytest.raises(NodeInputError) as caught:
            call(registry, node, **inputs)
        assert caught.value.input == name


def test_join_string_multi(registry):
    inputs = {"inputcount": 4, "string_1": "a cat", "string_2": "", "string_3": "a hat", "string_4": "red"}
    assert call(registry, "JoinStringMulti", delimiter=", ", **inputs) == "a cat, a hat, red"
    assert call(registry, "JoinStringMulti", return_list=True, **inputs) == ["a cat", "a hat", "red"]
    assert call(registry, "JoinStringMulti", inputcount=2, string_1="", delimiter="-", string_3="x") == ""
    assert call(registry, "JoinStringMulti", inputcount=3, string_1="x", string_3="z") == "x z"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "JoinStringMulti", inputcount=2, string_1="x", string_2=["a", "b"])
    assert caught.value.input == "string_2"


def test_join_string_multi_beyond_its_20_inputs_is_refused_naming_the_input_and_the_cap(registry):
    """The pack grows string_21 and on with inputcount; ours has 20: a UI save linking string_22,
    or an API prompt giving string_25, is refused naming that input and the cap. Other unknown
    inputs keep the generic message."""
    from graphflow.validation import validate
    nodes = [ui_node(1, "StringConstant", ["A"], outputs=[("STRING", "STRING", [1, 2])])]
    inputs = [("string_1", "STRING", 1, False)] + [(f"string_{i}", "STRING", None, False) for i in range(2, 22)]
    nodes.append(ui_node(2, "JoinStringMulti", [22, "-", False], inputs=inputs + [("string_22", "STRING", 2, False)],
                         outputs=[("string", "STRING", [])]))
    saved = ui_graph(nodes, [[1, 1, 0, 2, 0, "STRING"], [2, 1, 0, 2, 21, "STRING"]])
    prompt = {"1": {"class_type": "StringConstant", "inputs": {"string": "A"}},
              "2": {"class_type": "JoinStringMulti", "inputs": {"inputcount": 25, "string_1": ["1", 0], "delimiter": "-",
                                                                "return_list": False, "string_25": ["1", 0]}}}
    for graph, name in ((saved, "string_22"), (prompt, "string_25")):
        problems = validate(parse_workflow(graph, registry), registry, outputs=["2"])
        assert [(p.node_id, p.input) for p in problems] == [("2", name)]
        assert "has 20 string inputs" in problems[0].message and "unknown input" not in problems[0].message
    prompt["2"]["inputs"] = {"inputcount": 2, "string_1": ["1", 0], "string_two": ["1", 0]}
    prompt["3"] = {"class_type": "StringToFloatList", "inputs": {"string": "1", "string_25": "x"}}
    problems = validate(parse_workflow(prompt, registry), registry, outputs=["2", "3"])
    assert sorted((p.node_id, p.input) for p in problems) == [("2", "string_two"), ("3", "string_25")]
    assert all(p.message.startswith("unknown input; this node's inputs are: ") for p in problems)


def test_values_from_the_packs_ui_save_and_api_prompt(registry):
    nodes = [ui_node(1, "StringToFloatList", ["14.6, 7.0, 3.1, 0.0"], outputs=[("FLOAT", "FLOAT", [1])]),
             ui_node(2, "FloatToSigmas", [], inputs=[("float_list", "FLOAT", 1, False)],
                     outputs=[("SIGMAS", "SIGMAS", [2])]),
             ui_node(3, "SigmasToFloat", [], inputs=[("sigmas", "SIGMAS", 2, False)], outputs=[("float", "FLOAT", [])]),
             ui_node(4, "StringConstant", ["first"], outputs=[("STRING", "STRING", [3])]),
             ui_node(5, "StringConstant", ["third"], outputs=[("STRING", "STRING", [4])]),
             # the pack's "Update inputs" button saves a null after its widgets
             ui_node(6, "JoinStringMulti", [3, " + ", False, None],
                     inputs=[("string_1", "STRING", 3, False), ("string_2", "STRING", None, False),
                             ("string_3", "STRING", 4, False)], outputs=[("string", "STRING", [])])]
    links = [[1, 1, 0, 2, 0, "FLOAT"], [2, 2, 0, 3, 0, "SIGMAS"], [3, 4, 0, 6, 0, "STRING"], [4, 5, 0, 6, 2, "STRING"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["3", "6"])
    assert values["3"][0] == torch.tensor([14.6, 7.0, 3.1, 0.0]).tolist() and values["6"][0] == "first + third"
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[6] == [3, " + ", False] and saved[1] == ["14.6, 7.0, 3.1, 0.0"] and saved[2] == []
    prompt = {"1": {"class_type": "StringToFloatList", "inputs": {"string": "0.5, 0.25"}},
              "2": {"class_type": "FloatToMask", "inputs": {"input_values": ["1", 0], "width": 6, "height": 4}},
              "3": {"class_type": "StringConstant", "inputs": {"string": "x"}},
              "4": {"class_type": "JoinStringMulti", "inputs": {"inputcount": 2, "string_1": ["3", 0], "delimiter": "|",
                                                                "return_list": True, "string_2": ["3", 0]}}}
    workflow, values = run(registry, prompt, ["2", "4"])
    assert torch.equal(values["2"][0], torch.tensor([0.5, 0.25])[:, None, None].expand(2, 4, 6))
    assert values["4"][0] == ["x", "x"]
    again = export_api(workflow, registry)
    assert again["4"]["class_type"] == "JoinStringMulti" and again["4"]["inputs"] == prompt["4"]["inputs"]
    assert again["2"]["inputs"] == prompt["2"]["inputs"]


# -- WidgetToString ---------------------------------------------------------------------------------


def widget_graph(widget_values, any_link=None):
    """An EmptyImage titled "Canvas" (node 5), ImageScaleBy (node 7), and a WidgetToString (node 9)
    reading from them, as the editor saves it."""
    canvas = ui_node(5, "EmptyImage", [64, 32, 1, 0], outputs=[("IMAGE", "IMAGE", [1])])
    canvas["title"] = "Canvas"
    scale = ui_node(7, "ImageScaleBy", ["bilinear", 1.25], inputs=[("image", "IMAGE", 1, False)],
                    outputs=[("IMAGE", "IMAGE", [2] if any_link else [])])
    reader = ui_node(9, "WidgetToString", widget_values, inputs=[("any_input", "*", 2 if any_link else None, False)],
                     outputs=[("STRING", "STRING", [])])
    links = [[1, 5, 0, 7, 0, "IMAGE"]] + ([[2, 7, 0, 9, 0, "IMAGE"]] if any_link else [])
    return ui_graph([canvas, scale, reader], links)


@pytest.mark.parametrize("widgets, linked, want", [
    ([5, "width", False, "", 2], False, "64"),
    ([0, "width, height", False, "Canvas", 2], False, "width: 64, height: 32"),
    ([0, "scale_by", False, "", 3], True, "1.250"),
    ([7, "", True, "", 1], False, "upscale_method: bilinear, scale_by: 1.2, image: ['5', 0]"),
    ([5, "color", False, "Canvas", 2], False, "0"),  # the title is looked up first
])
def test_widget_to_string_reads_the_running_workflow(registry, widgets, linked, want):
    _, values = run(registry, widget_graph(widgets, linked), ["9"])
    assert values["9"][0] == want


@pytest.mark.parametrize("widgets, name", [([12, "width", False, "", 2], "id"),
                                           ([0, "width", False, "Nope", 2], "node_title"),
                                           ([5, "depth", False, "", 2], "widget_name"),
                                           ([5, "", False, "", 2], "widget_name"),
                                           ([0, "width", False, "", 2], "any_input")])
def test_widget_to_string_refuses_what_it_cannot_find(registry, widgets, name):
    error = failed(registry, widget_graph(widgets), ["9"])
    assert error.get("node_id") == "9" and error.get("input") == name, error


def test_widget_to_string_reads_again_when_the_node_read_changes(registry):
    graph = widget_graph([5, "width", False, "", 2])
    executor = Executor(registry)
    assert executor.run(parse_workflow(graph, registry), outputs=["9"]).values["9"][0] == "64"
    graph["nodes"][0]["widgets_values"][0] = 80
    assert executor.run(parse_workflow(graph, registry), outputs=["9"]).values["9"][0] == "80"


def test_widget_to_string_from_an_api_prompt_with_titles(registry):
    prompt = {"3": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1},
                    "_meta": {"title": "Size"}},
              "4": {"class_type": "WidgetToString", "inputs": {"id": 0, "widget_name": "height", "return_all": False,
                                                               "node_title": "Size", "allowed_float_decimals": 2}}}
    workflow, values = run(registry, prompt, ["4"])
    assert values["4"][0] == "768"
    again = export_api(workflow, registry)
    assert again["4"]["class_type"] == "WidgetToString" and again["4"]["inputs"]["node_title"] == "Size"
    assert again["3"]["_meta"] == {"title": "Size"}


def test_widget_to_string_by_id_inside_a_subgraph_reads_the_subgraphs_node_first(registry):
    """Inside a subgraph, id names the subgraph's own node before the top level's (the pack's
    prompt key "<subgraph node>:<id>" first), and falls back to the top level's."""
    import json
    from pathlib import Path
    saved = json.loads((Path(__file__).parent / "comfyui" / "txt2img_subgraph_ui.json").read_text())
    saved["nodes"].append(ui_node(1, "EmptyLatentImage", [32, 48, 1], outputs=[("LATENT", "LATENT", [])]))
    inner = saved["definitions"]["subgraphs"][0]["nodes"]
    for node_id, widgets in ((20, [1, "text", False, "", 2]), (21, [5, "width", False, "", 2]),
                             (22, [12, "width", False, "", 2])):
        inner.append(ui_node(node_id, "WidgetToString", widgets, inputs=[("any_input", "*", None, False)],
                             outputs=[("STRING", "STRING", [])]))
    workflow = parse_workflow(saved, registry)
    result = Executor(registry).run(workflow, outputs=["6:20", "6:21"])
    assert result.ok, (result.problems, result.error)
    assert result.values["6:20"][0] == "a red circle on a white background"  # not top-level node 1's
    assert result.values["6:21"][0] == "64"  # no node 5 in the subgraph: the top level's
    error = Executor(registry).run(workflow, outputs=["6:22"]).error
    assert error["node_id"] == "6:22" and error["input"] == "id" and "6:12" in error["message"]


def test_widget_to_string_writes_a_list_as_python_does(registry):
    """A literal list is held wrapped ({"__value__": [...]}) in the workflow; the pack's str() of
    the prompt's value writes the list itself."""
    graph = {"nodes": {"1": {"type": "FloatToMask", "inputs": {"input_values": {"__value__": [0.25, 0.5]},
                                                               "width": 2, "height": 2}},
                       "2": {"type": "WidgetToString", "inputs": {"id": 1, "widget_name": "input_values"}},
                       "3": {"type": "WidgetToString", "inputs": {"id": 1, "return_all": True}}}}
    _, values = run(registry, graph, ["2", "3"])
    assert values["2"][0] == str([0.25, 0.5])
    assert values["3"][0] == f"input_values: {[0.25, 0.5]}, width: 2, height: 2"


# -- masks ------------------------------------------------------------------------------------------


def pack_offset(masks, x, y, angle, times, roll, incremental, mode):
    """The pack's Offset Mask with torchvision's rotate and torch's roll, its shifts by slicing."""
    from torchvision.transforms import functional as TF
    masks = masks.repeat(times, 1, 1).clone()
    _, h, w = masks.shape
    for i in range(len(masks)):
        if angle != 0 and incremental:
            masks[i] = TF.rotate(masks[i][None], angle * (i + 1))[0]
        elif angle > 0:
            masks[i] = TF.rotate(masks[i][None], angle)[0]
        k = i + 1 if incremental else 1
        dx, dy = min(x * k, w - 1), min(y * k, h - 1)
        if roll:
            masks[i] = torch.roll(torch.roll(masks[i], dx, 1), dy, 0)
            continue
        if mode != "empty":
            continue
        m = masks[i]
        if dx > 0:
            m = torch.cat([torch.zeros(h, dx), m[:, :-dx]], 1)
        elif dx < 0:
            m = torch.cat([m[:, :dx], torch.zeros(h, -dx)], 1)
        if dy > 0:
            m = torch.cat([torch.zeros(dy, w), m[:-dy]], 0)
        elif dy < 0:
            m = torch.cat([m[:dy], torch.zeros(-dy, w)], 0)
        masks[i] = m
    return masks


@pytest.mark.parametrize("x, y, angle, times, roll, incremental, mode", [
    (5, 3, 0, 1, False, False, "empty"), (-4, -2, 0, 2, False, True, "empty"), (7, -3, 30, 2, True, False, "empty"),
    (3, 2, -45, 3, False, True, "empty"), (2, 0, -30, 1, False, False, "empty"), (60, 40, 90, 1, False, False, "empty"),
    (4, 4, 15, 2, False, False, "border"), (-3, 5, 0, 1, False, False, "reflection"),
    (-100, 0, 0, 1, True, True, "empty"),
    (-50, 0, 0, 1, False, False, "empty")])
def test_offset_mask_matches_the_pack(registry, x, y, angle, times, roll, incremental, mode):
    g = torch.Generator().manual_seed(9)
    masks = (torch.rand(2, 36, 50, generator=g) > 0.6).float()
    masks[:, 10:20, 15:30] = 1
    out = call(registry, "OffsetMask", mask=masks, x=x, y=y, angle=angle, duplication_factor=times, roll=roll,
               incremental=incremental, padding_mode=mode)
    assert torch.equal(out, pack_offset(masks, x, y, angle, times, roll, incremental, mode))


def test_offset_mask_refuses_a_move_past_the_mask_and_huge_batches(registry):
    with pytest.raises(NodeInputError) as caught:  # the pack's slicing fails beyond the width
        call(registry, "OffsetMask", mask=torch.ones(1, 8, 20), x=-21)
    assert caught.value.input == "x"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "OffsetMask", mask=torch.ones(1, 8, 20), y=-9, incremental=False)
    assert caught.value.input == "y"
    node = {"type": "OffsetMask", "inputs": {"mask": ["1", 0], "duplication_factor": 1000}}
    solid = {"type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}}
    assert "2" in refused(registry, [solid, node], RunLimits(max_batch=64))
    assert refused(registry, [solid, node | {"inputs": {"mask": ["1", 0], "duplication_factor": 4}}],
                   RunLimits(max_batch=64)) == set()


def pack_text_frame(text, font, x, y, size, color, width, height, rotation=None):
    """The pack's text picture with PIL: its word wrap and one line per font_size."""
    from PIL import Image, ImageDraw
    words, lines, line, used = text.split(), [], [], 0
    for word in words:
        if used + font.getbbox(word)[2] <= width - 2 * x:
            line.append(word)
            used += font.getbbox(word)[2] + font.getbbox(" ")[2]
        else:
            lines.append(" ".join(line))
            line, used = [word], font.getbbox(word)[2]
    lines += [" ".join(line)] if line else []
    picture = Image.new("RGB", (width, height), "black")
    draw = ImageDraw.Draw(picture)
    top = y
    for text_line in lines:
        center = (x + font.getlength(text_line) / 2, top + size / 2)
        try:  # ligatures off where Pillow can (raqm), as the pack; PIL's default font has no raqm layout
            draw.text((x, top), text_line, font=font, fill=color, features=["-liga"])
        except KeyError:
            draw.text((x, top), text_line, font=font, fill=color)
        top += size
    if rotation is not None:
        picture = picture.rotate(rotation, center=center)
    return torch.from_numpy(numpy.asarray(picture).astype(numpy.float32) / 255)


def test_create_text_mask_draws_wraps_and_turns(registry):
    from PIL import ImageFont
    font = ImageFont.load_default(size=20)  # the pack's FreeMono.ttf is not in models/fonts: PIL's default
    text = "the quick brown fox jumps"
    images, masks = call(registry, "CreateTextMask", frames=1, text_x=6, text_y=4, font_size=20, font_color="yellow",
                         text=text, font="FreeMono.ttf", width=120, height=96)
    want = pack_text_frame(text, font, 6, 4, 20, "yellow", 120, 96)
    assert torch.equal(images[0], want) and torch.equal(masks[0], want[..., 0])
    assert want[60:, :, 0].sum() > 0  # wrapped onto later lines
    images, masks = call(registry, "CreateTextMask", invert=True, frames=4, text="HELLO!", font_size=20, width=96,
                         height=64, text_x=10, text_y=20, start_rotation=10, end_rotation=-50)
    angles = [10.0]
    for _ in range(3):
        angles.append(angles[-1] + (-60 / 3))
    for i, angle in enumerate(angles):
        frame = pack_text_frame("HELLO!", font, 10, 20, 20, "white", 96, 64, rotation=angle)
        assert torch.equal(images[i], 1 - frame) and torch.equal(masks[i], 1 - frame[..., 0])
    same_angles = call(registry, "CreateTextMask", frames=2, start_rotation=30, end_rotation=30, width=64, height=32)
    assert torch.equal(same_angles[0][0], same_angles[0][1])  # equal rotations turn nothing, as the pack


def test_create_text_mask_draws_only_what_shows_and_once_for_all_frames(registry, monkeypatch):
    """Lines below the canvas are not drawn, and the picture is drawn once and turned per frame:
    the frames are still the pack's (drawn whole each frame), also when the rotation's centre (the
    last line's) lies below the canvas."""
    from PIL import ImageDraw, ImageFont
    drawn = []
    draw_text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, text, *a, **k: (
        drawn.append(text), draw_text(self, xy, text, *a, **k))[1])
    font, text = ImageFont.load_default(size=20), " ".join(["WW", "fig"] * 100)
    images, masks = call(registry, "CreateTextMask", frames=3, text=text, font_size=20, width=64, height=64, text_x=2,
                         text_y=3, start_rotation=20, end_rotation=-40, invert=True)
    visible = len(drawn)
    assert 1 <= visible <= math.ceil(64 / 20)  # of some hundreds of lines, once for the 3 frames
    drawn.clear()
    for i, angle in enumerate((20, -10.0, -40.0)):
        frame = pack_text_frame(text, font, 2, 3, 20, "white", 64, 64, rotation=angle)
        assert torch.equal(images[i], 1 - frame) and torch.equal(masks[i], 1 - frame[..., 0])
    assert len(drawn) % 3 == 0 and len(drawn) // 3 >= 200  # the pack's way: every line, every frame
    drawn.clear()
    images, masks = call(registry, "CreateTextMask", frames=8, text=" ".join(["WW"] * 200), font_size=1024,
                         width=64, height=64)
    assert drawn == [] and images.shape == (8, 64, 64, 3) and images.sum() == 0 and masks.sum() == 0
    unturned = call(registry, "CreateTextMask", frames=3, text="fig", font_size=20, width=64, height=32)[0]
    assert len(drawn) == 1 and torch.equal(unturned[0], pack_text_frame("fig", font, 0, 0, 20, "white", 64, 32))
    assert torch.equal(unturned[1], unturned[0]) and torch.equal(unturned[2], unturned[0])


def test_create_text_mask_refuses_a_line_on_the_canvas_larger_than_pillow_draws(registry):
    """Pillow's DecompressionBombError for the line's bitmap, named font_size (the helper
    drawn_within_pillows_limit, which Text To Image (mtb) and DrawText share)."""
    from PIL import Image, ImageDraw, ImageFont
    with pytest.raises(Image.DecompressionBombError):
        ImageDraw.Draw(Image.new("RGB", (512, 4096))).text((0, 2048), "W" * 20000, font=ImageFont.load_default(2048))
    with pytest.raises(NodeInputError) as caught:  # the pack's wrap puts the word on line 2, at y 2048
        call(registry, "CreateTextMask", text="W" * 20000, font_size=2048, width=512, height=4096)
    assert caught.value.input == "font_size" and "line 2 of the text (20000 characters)" in str(caught.value)


def test_create_text_mask_uses_a_font_in_models_fonts(registry, tmp_folders):
    """A font file in models/fonts is drawn with (Pillow's own Aileron, written under the pack's
    font name, and a name of its own, listed as a choice too)."""
    from PIL import ImageFont
    folder = tmp_folders.models / "fonts"
    folder.mkdir(parents=True, exist_ok=True)
    data = ImageFont.load_default(10).path.getvalue()
    for name in ("FreeMono.ttf", "aileron.ttf"):
        (folder / name).write_bytes(data)
    assert "aileron.ttf" in registry.get("CreateTextMask").input_specs["font"].widget.choices()
    for name in ("FreeMono.ttf", "aileron.ttf"):
        images, masks = call(registry, "CreateTextMask", text="Waffle fig", font=name, font_size=24, text_x=3,
                             width=160, height=40)
        want = pack_text_frame("Waffle fig", ImageFont.truetype(str(folder / name), 24), 3, 0, 24, "white", 160, 40)
        assert torch.equal(images[0], want) and torch.equal(masks[0], want[..., 0]) and want.sum() > 0


def test_create_text_mask_errors_and_size_estimate(registry):
    for inputs, name in (({"font_color": "not-a-colour"}, "font_color"), ({"frames": 1, "end_rotation": 20}, "frames"),
                         ({"text": "  ", "frames": 2, "end_rotation": 20}, "text"),
                         # a word Pillow will not draw (its bitmap is over Pillow's limit), on the canvas
                         ({"text": "W" * 200, "font_size": 1500, "width": 16, "height": 2000}, "font_size")):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "CreateTextMask", **inputs)
        assert caught.value.input == name
    big = {"type": "CreateTextMask", "inputs": {"frames": 4096, "width": 4096, "height": 4096}}
    assert "1" in refused(registry, [big], RunLimits(max_batch=64))


def test_mask_or_image_to_weight_and_float_to_mask(registry):
    g = torch.Generator().manual_seed(10)
    masks, images = torch.rand(3, 8, 9, generator=g), torch.rand(2, 8, 9, 3, generator=g)
    values, texts = call(registry, "MaskOrImageToWeight", masks=masks)
    assert values == [m.mean().item() for m in masks] and texts == [str(v) for v in values]
    values, texts = call(registry, "MaskOrImageToWeight", images=images, output_type="tensor")
    assert torch.equal(values, torch.tensor([i.mean().item() for i in images], dtype=torch.float32))
    assert call(registry, "MaskOrImageToWeight") == ([], [])
    for inputs, name in (({"masks": masks, "images": images}, "masks"), ({"masks": masks, "output_type": "string"},
                                                                         "output_type"),
                         ({"masks": masks, "output_type": "pandas series"}, "output_type")):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "MaskOrImageToWeight", **inputs)
        assert caught.value.input == name
    out = call(registry, "FloatToMask", input_values=[[0.1, 0.9], [0.5]], width=5, height=3)
    assert torch.equal(out, torch.stack([torch.ones(3, 5) * v for v in (0.1, 0.9, 0.5)]))
    assert torch.equal(call(registry, "FloatToMask", input_values=0.3, width=2, height=2), torch.ones(1, 2, 2) * 0.3)
    assert torch.equal(call(registry, "FloatToMask", input_values=torch.tensor([0.2, 0.4]), width=2, height=1),
                       torch.tensor([[[0.2, 0.2]], [[0.4, 0.4]]]))
    for bad in ([], "text", [0.5, "x"]):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "FloatToMask", input_values=bad)
        assert caught.value.input == "input_values"


def test_float_to_mask_beyond_the_memory_is_refused_before_the_masks_are_made(registry):
    # one 3000x3000 mask (36 MB) fits the 64 MB budget, so the graph is valid; its 8 values make 8 of them
    graph = {"1": {"class_type": "StringToFloatList", "inputs": {"string": ", ".join(["0.5"] * 8)}},
             "2": {"class_type": "FloatToMask", "inputs": {"input_values": ["1", 0], "width": 3000, "height": 3000}}}
    limits = RunLimits(ram_bytes=2**26, device_bytes=2**26)
    result = Executor(registry, limits=limits).run(parse_workflow(graph, registry), outputs=["2"])
    assert not result.ok and result.error.get("input") == "input_values" and "memory" in result.error["message"]
    small = copy.deepcopy(graph)
    small["2"]["inputs"].update(width=64, height=64)
    assert Executor(registry, limits=limits).run(parse_workflow(small, registry), outputs=["2"]).ok


def test_mask_nodes_from_the_packs_ui_save(registry):
    nodes = [ui_node(1, "CreateTextMask", [False, 2, 4, 4, 16, "white", "KJ", "FreeMono.ttf", 64, 32, 0, 30],
                     outputs=[("IMAGE", "IMAGE", []), ("MASK", "MASK", [1])]),
             ui_node(2, "OffsetMask", [3, 1, 0, 2, True, False, "empty"], inputs=[("mask", "MASK", 1, False)],
                     outputs=[("mask", "MASK", [2])]),
             ui_node(3, "MaskOrImageToWeight", ["list"], inputs=[("images", "IMAGE", None, False),
                                                                 ("masks", "MASK", 2, False)],
                     outputs=[("FLOAT", "FLOAT", [3]), ("STRING", "STRING", [])]),
             ui_node(4, "FloatToMask", [8, 6], inputs=[("input_values", "FLOAT", 3, False)],
                     outputs=[("MASK", "MASK", [])])]
    links = [[1, 1, 1, 2, 0, "MASK"], [2, 2, 0, 3, 1, "MASK"], [3, 3, 0, 4, 0, "FLOAT"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["1", "2", "3", "4"])
    text_masks = values["1"][1]
    want = pack_offset(text_masks, 3, 1, 0, 2, True, False, "empty")
    assert torch.equal(values["2"][0], want) and values["3"][0] == [m.mean().item() for m in want]
    assert torch.equal(values["4"][0], torch.tensor(values["3"][0])[:, None, None].expand(4, 6, 8))
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[1] == [False, 2, 4, 4, 16, "white", "KJ", "FreeMono.ttf", 64, 32, 0, 30]
    assert saved[2] == [3, 1, 0, 2, True, False, "empty"] and saved[3] == ["list"] and saved[4] == [8, 6]


# -- images -----------------------------------------------------------------------------------------


def test_image_grids_are_the_packs_concatenation(registry):
    g = torch.Generator().manual_seed(11)
    parts = [torch.rand(2, 5 + i // 3, 6 + i % 3, 3, generator=g) for i in range(9)]
    # rows of equal height; all rows as wide: widths 6, 7, 8 in every row
    grid = call(registry, "ImageGridComposite3x3", **{f"image{i + 1}": parts[i] for i in range(9)})
    rows = [torch.cat(parts[r * 3:r * 3 + 3], dim=2) for r in range(3)]
    assert torch.equal(grid, torch.cat(rows, dim=1))
    four = [torch.rand(1, 4, 5, 3, generator=g) for _ in range(4)]
    grid = call(registry, "ImageGridComposite2x2", **{f"image{i + 1}": four[i] for i in range(4)})
    assert torch.equal(grid, torch.cat([torch.cat(four[:2], 2), torch.cat(four[2:], 2)], 1))
    for change, name in (({"image2": torch.rand(1, 3, 5, 3)}, "image2"), ({"image4": torch.rand(1, 4, 6, 3)}, "image3"),
                         ({"image3": torch.rand(2, 4, 5, 3), "image4": torch.rand(2, 4, 5, 3)}, "image3")):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "ImageGridComposite2x2", **({f"image{i + 1}": four[i] for i in range(4)} | change))
        assert caught.value.input == name, change


def test_image_and_mask_preview_composites_the_coloured_mask(registry):
    g = torch.Generator().manual_seed(12)
    image, mask = torch.rand(2, 6, 7, 3, generator=g), torch.rand(2, 6, 7, generator=g)
    out = call(registry, "ImageAndMaskPreview", image=image, mask=mask, mask_opacity=0.8, mask_color="255, 0, 64, 128",
               pass_through=True)
    weight = (mask * 0.8 * (128 / 255))[..., None]
    color = torch.tensor([1.0, 0.0, 64 / 255])
    assert torch.allclose(out, image * (1 - weight) + color * weight, atol=1e-6)
    for text, want in (("#ff8000", [1.0, 128 / 255, 0.0]), ("0.5, 0.5, 1", [127 / 255, 127 / 255, 1.0]),
                       ("blue", [0, 0, 1]), ("128", [128 / 255] * 3)):
        out = call(registry, "ImageAndMaskPreview", image=image, mask=torch.ones(2, 6, 7), mask_color=text,
                   pass_through=True)
        assert torch.allclose(out, torch.tensor(want, dtype=torch.float32).expand_as(out), atol=1e-6), text
    rgba = torch.rand(1, 6, 7, 4, generator=g)
    out = call(registry, "ImageAndMaskPreview", image=rgba, mask=torch.ones(1, 6, 7), pass_through=True)
    assert torch.allclose(out, torch.ones(1, 6, 7, 4))  # the colour takes an opaque alpha
    shown = call(registry, "ImageAndMaskPreview", mask=mask, pass_through=True)
    assert torch.equal(shown, mask[..., None].expand(-1, -1, -1, 3))
    assert call(registry, "ImageAndMaskPreview", image=image, pass_through=True) is image
    for inputs, name in (({}, "image"), ({"image": image, "mask": mask, "mask_color": "1, 2"}, "mask_color"),
                         ({"image": image, "mask": mask, "mask_color": "nonsense!"}, "mask_color")):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "ImageAndMaskPreview", pass_through=True, **inputs)
        assert caught.value.input == name


def test_image_nodes_from_the_packs_ui_save_and_api_prompt(registry, tmp_folders):
    nodes = [ui_node(1, "EmptyImage", [8, 6, 1, 0xFF0000], outputs=[("IMAGE", "IMAGE", [1, 2, 3, 4, 5])]),
             ui_node(2, "ImageGridComposite2x2", [],
                     inputs=[("image1", "IMAGE", 1, False), ("image2", "IMAGE", 2, False),
                             ("image3", "IMAGE", 3, False), ("image4", "IMAGE", 4, False)],
                     outputs=[("IMAGE", "IMAGE", [6])]),
             ui_node(3, "SolidMask", [1.0, 16, 12], outputs=[("MASK", "MASK", [7])]),
             ui_node(4, "ImageAndMaskPreview", [0.5, "0, 0, 255", False],
                     inputs=[("image", "IMAGE", 6, False), ("mask", "MASK", 7, False)],
                     outputs=[("composite", "IMAGE", [])])]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 2, 1, "IMAGE"], [3, 1, 0, 2, 2, "IMAGE"], [4, 1, 0, 2, 3, "IMAGE"],
             [6, 2, 0, 4, 0, "IMAGE"], [7, 3, 0, 4, 1, "MASK"]]
    result = Executor(registry).run(parse_workflow(ui_graph(nodes, links), registry))
    assert result.ok, (result.problems, result.error)
    assert torch.allclose(result.values["4"][0], torch.tensor([0.5, 0.0, 0.5]).expand(1, 12, 16, 3))
    assert len(result.outputs["4"]["images"]) == 1  # shown: pass_through off
    workflow = parse_workflow(ui_graph(nodes, links), registry)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[4] == [0.5, "0, 0, 255", False] and saved[2] == []
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0}},
              "2": {"class_type": "ImageGridComposite3x3", "inputs": {f"image{i}": ["1", 0] for i in range(1, 10)}},
              "3": {"class_type": "ImageAndMaskPreview", "inputs": {"mask_opacity": 1.0, "mask_color": "255, 255, 255",
                                                                    "pass_through": True, "image": ["2", 0]}}}
    workflow, values = run(registry, prompt, ["3"])
    assert values["3"][0].shape == (1, 12, 12, 3)
    again = export_api(workflow, registry)
    assert again["2"]["inputs"] == prompt["2"]["inputs"] and again["3"]["inputs"] == prompt["3"]["inputs"]
