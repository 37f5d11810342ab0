"""ComfyUI-Inpaint-CropAndStitch's Improved nodes (nodes/pack_nodes_crop_stitch.py): the crop area
against the pack's rule worked out here step by step (borders, aspect ratios, padding multiples,
the context mask and factor), both device modes' mask operations against scipy (the CPU mode's
calls, and the GPU mode's torch operations by scipy's equivalents), the resizes against PIL, the
stitch's blend formula and round trip, pre-resize and outpainting extension, batches, the clear
errors, and a UI-format save and an API prompt with the pack's class names running crop → VAE
encode → KSampler → decode → stitch on a tiny checkpoint, written back unchanged."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_closing, binary_fill_holes, correlate, gaussian_filter, grey_dilation, label

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

CROP_INPUTS = ["image", "downscale_algorithm", "upscale_algorithm", "preresize", "preresize_mode",
               "preresize_min_width", "preresize_min_height", "preresize_max_width", "preresize_max_height",
               "mask_fill_holes", "mask_expand_pixels", "mask_invert", "mask_blend_pixels", "mask_hipass_filter",
               "extend_for_outpainting", "extend_up_factor", "extend_down_factor", "extend_left_factor",
               "extend_right_factor", "context_from_mask_extend_factor", "output_resize_to_target_size",
               "output_target_width", "output_target_height", "output_padding", "device_mode", "mask",
               "optional_context_mask"]
# the pack's widget defaults, in its order
CROP_DEFAULTS = ["bilinear", "bicubic", False, "ensure minimum resolution", 1024, 1024, 16384, 16384, True, 0,
                 False, 32, 0.1, False, 1.0, 1.0, 1.0, 1.0, 1.2, True, 512, 512, "32", "gpu (much faster)"]
PLAIN = {"mask_fill_holes": False, "mask_blend_pixels": 0, "mask_hipass_filter": 0.0,
         "context_from_mask_extend_factor": 1.0}  # the mask's own box, untouched


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def crop(registry, **inputs):
    return call(registry, "InpaintCropImproved", **inputs)


def stitch(registry, stitcher, image):
    return call(registry, "InpaintStitchImproved", stitcher=stitcher, inpainted_image=image)


def picture(height, width, seed=0):
    return torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(seed))


def box_mask(height, width, x, y, w, h):
    mask = torch.zeros(1, height, width)
    mask[:, y:y + h, x:x + w] = 1.0
    return mask


# -- the pack's rules, worked out here -----------------------------------------------------------


def pack_place(start, size, grown, limit):
    """The pack's placing of a side grown from size to grown: centred, moved back inside, else centred on the picture."""
    start = start - (grown - size) // 2
    if start < 0:
        return 0 if start + grown + (-start) <= limit else -((grown - limit) // 2)
    if start + grown > limit:
        overflow = start + grown - limit
        return start - overflow if start - overflow >= 0 else -((grown - limit) // 2)
    return start


def pack_area(x, y, w, h, target_w, target_h, padding, image_w, image_h, resize_output=True):
    """crop_magic_im's steps 1-3b as the pack writes them: the padded target, the context grown
    along one side to the target's aspect ratio and placed, and without a resize each side grown
    to the target's and placed again."""
    if padding:
        target_w, target_h = int(math.ceil(target_w / padding) * padding), int(math.ceil(target_h / padding) * padding)
    ratio = target_w / target_h
    if w / h < ratio:
        new_w, new_h = int(h * ratio), h
        new_x, new_y = pack_place(x, w, new_w, image_w), y
    else:
        new_w, new_h = w, int(w / ratio)
        new_x, new_y = x, pack_place(y, h, new_h, image_h)
    if not resize_output and new_w < target_w:
        new_x, new_w = pack_place(new_x, new_w, target_w, image_w), target_w
    if not resize_output and new_h < target_h:
        new_y, new_h = pack_place(new_y, new_h, target_h, image_h), target_h
    return (new_x, new_y, new_w, new_h), (target_w, target_h)


def eight_bit(array):
    """torchvision's to_pil_image on a float tensor: x · 255 truncated to uint8."""
    return (np.asarray(array, dtype=np.float32) * np.float32(255)).astype(np.uint8)


def pil(array, width, height, algorithm):
    """The pack's rescale: 8-bit, PIL's resize with that filter, / 255."""
    resized = Image.fromarray(eight_bit(array)).resize((width, height), getattr(Image, algorithm.upper()))
    return np.asarray(resized).astype(np.float32) / np.float32(255)


def edge_canvas(image, area):
    """The picture grown by its edge pixels to hold the area (numpy's 'edge' padding); its left, top."""
    x, y, w, h = area
    height, width = image.shape[1:3]
    left, top = max(-x, 0), max(-y, 0)
    right, bottom = max(x + w - width, 0), max(y + h - height, 0)
    grown = np.pad(image[0].numpy(), ((top, bottom), (left, right), (0, 0)), mode="edge")
    return grown, left, top


# -- the crop area ---------------------------------------------------------------------------------

AREA_CASES = [
    # picture h, w; mask box x, y, w, h; target w, h; padding
    (100, 150, (10, 40, 20, 20), (512, 512), 32),  # square inside
    (100, 150, (0, 0, 12, 30), (512, 256), 0),  # at the top-left corner, widened to 2:1
    (100, 150, (140, 90, 10, 10), (96, 200), 8),  # bottom-right corner, tall target
    (60, 80, (5, 20, 70, 10), (64, 256), 32),  # a tall target on a wide mask: taller than the picture
    (60, 80, (30, 5, 8, 50), (300, 100), 16),  # a wide target on a tall mask: wider than the picture
    (64, 64, (0, 0, 64, 64), (100, 70), 64),  # the whole picture, padded to 128 × 128
]


@pytest.mark.parametrize("height, width, box, target, padding", AREA_CASES)
def test_crop_area_is_the_packs_rule(registry, height, width, box, target, padding):
    image = picture(height, width)
    stitcher, cropped, cropped_mask = crop(registry, image=image, mask=box_mask(height, width, *box), **PLAIN,
                                           output_target_width=target[0], output_target_height=target[1],
                                           output_padding=str(padding))
    area, (target_w, target_h) = pack_area(*box, *target, padding, width, height)
    grown, left, top = edge_canvas(image, area)
    piece = stitcher.pieces[0]
    assert piece.crop_in_canvas == (area[0] + left, area[1] + top, area[2], area[3])
    assert piece.canvas_to_original == (left, top, width, height)
    assert np.array_equal(piece.canvas[0].numpy(), grown)
    assert cropped.shape == (1, target_h, target_w, 3) and cropped_mask.shape == (1, target_h, target_w)
    x, y, w, h = piece.crop_in_canvas
    algorithm = "bicubic" if target_w > w or target_h > h else "bilinear"
    assert np.array_equal(cropped[0].numpy(), pil(grown[y:y + h, x:x + w], target_w, target_h, algorithm))
    canvas_mask = np.pad(box_mask(height, width, *box)[0].numpy(), ((top, grown.shape[0] - height - top),
                                                                     (left, grown.shape[1] - width - left)),
                         constant_values=1.0)
    assert np.array_equal(cropped_mask[0].numpy(), pil(canvas_mask[y:y + h, x:x + w], target_w, target_h, algorithm))


@pytest.mark.parametrize("box, padding", [((10, 40, 21, 13), 0), ((10, 40, 21, 13), 8), ((0, 95, 150, 5), 32),
                                          ((140, 0, 10, 17), 64)])
def test_crop_at_its_own_size_is_grown_to_the_multiple_and_not_resized(registry, box, padding):
    image = picture(100, 150)
    stitcher, cropped, cropped_mask = crop(registry, image=image, mask=box_mask(100, 150, *box), **PLAIN,
                                           output_resize_to_target_size=False, output_padding=str(padding))
    area, (target_w, target_h) = pack_area(*box, box[2], box[3], padding, 150, 100, resize_output=False)
    assert area[2:] == (target_w, target_h) and cropped.shape[1:3] == (target_h, target_w)
    grown, left, top = edge_canvas(image, area)
    piece = stitcher.pieces[0]
    x, y, w, h = piece.crop_in_canvas
    assert (x, y, w, h) == (area[0] + left, area[1] + top, area[2], area[3])
    assert np.array_equal(cropped[0].numpy(), grown[y:y + h, x:x + w])  # the canvas's own values
    assert cropped_mask.shape == (1, h, w)


def test_context_factor_and_context_mask_grow_the_box(registry):
    box = (40, 30, 21, 10)
    factor = 1.5
    grow_x, grow_y = int(round(21 * 0.5 / 2)), int(round(10 * 0.5 / 2))  # the pack's: round halves to even
    grown = (40 - grow_x, 30 - grow_y, 21 + 2 * grow_x, 10 + 2 * grow_y)
    context = box_mask(100, 150, 120, 80, 5, 5)
    joined = (grown[0], grown[1], 125 - grown[0], 85 - grown[1])
    settings = {**PLAIN, "context_from_mask_extend_factor": factor, "output_padding": "0"}
    stitcher, cropped, _ = crop(registry, image=picture(100, 150), mask=box_mask(100, 150, *box),
                                optional_context_mask=context, **settings, output_target_width=128,
                                output_target_height=64)
    area, _ = pack_area(*joined, 128, 64, 0, 150, 100)
    assert stitcher.pieces[0].crop_in_canvas == area
    # the growth stops at the picture's edge
    stitcher, _, _ = crop(registry, image=picture(100, 150), mask=box_mask(100, 150, 0, 0, 10, 10), **settings,
                          output_resize_to_target_size=False)
    assert stitcher.pieces[0].crop_in_canvas == (0, 0, 12, 12)
    # the growth is worked out in float32 and rounded half to even (torch's): 15 · 0.2 / 2 is 1.4999... in
    # Python's float, 1.5 in float32, so 2 pixels a side; 10 · 0.1 / 2 is 0.5000...04, 0.5 in float32: none
    for size, factor, grow in ((15, 1.2, 2), (10, 1.1, 0)):
        stitcher, _, _ = crop(registry, image=picture(100, 150), mask=box_mask(100, 150, 50, 40, size, size),
                              **{**settings, "context_from_mask_extend_factor": factor},
                              output_resize_to_target_size=False)
        assert stitcher.pieces[0].crop_in_canvas == (50 - grow, 40 - grow, size + 2 * grow, size + 2 * grow)


def test_an_empty_mask_crops_the_whole_picture_and_an_empty_mask_of_another_size_is_no_mask(registry):
    image = picture(40, 60)
    for mask in (None, torch.zeros(1, 40, 60), torch.zeros(1, 64, 64)):
        stitcher, cropped, cropped_mask = crop(registry, image=image, mask=mask, **PLAIN,
                                               output_resize_to_target_size=False, output_padding="0")
        assert stitcher.pieces[0].crop_in_canvas == (0, 0, 60, 40)
        assert torch.equal(cropped, image) and not cropped_mask.any()


# -- the mask operations ------------------------------------------------------------------------------


def cpu_fill(values):
    for level in [1, 0.99, 0.97, 0.95, 0.93, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]:
        filled = binary_fill_holes(binary_closing(values >= level, structure=np.ones((3, 3)), border_value=1))
        values = np.maximum(values, np.where(filled != 0, level, 0))
    return values.astype(np.float32)


def gpu_fill(values):
    """The pixels not connected (8-neighbours, through pixels not above 0.5) to a frame around
    the picture become 1: scipy's labelling of the converged flood."""
    passable = np.pad(values <= 0.5, 1, constant_values=True)
    labels, _ = label(passable, structure=np.ones((3, 3)))
    outside = labels == labels[0, 0]
    return np.maximum(values, 1.0 - outside[1:-1, 1:-1]).astype(np.float32)


def dilation_side(pixels):
    return math.ceil(pixels / 4 * 1.5 + 1)


def cpu_expand(values, pixels):
    side = dilation_side(pixels)
    return np.clip(grey_dilation(values, footprint=np.ones((side, side), dtype=np.uint8)).astype(np.float32), 0, 1)


def gpu_expand(values, pixels):
    side = dilation_side(pixels) | 1  # made odd, centred: the edges repeat (a max ignores them)
    return grey_dilation(values, size=(side, side), mode="nearest")


def cpu_blur(values, pixels):
    return np.clip(gaussian_filter(values, sigma=pixels / 4), 0, 1)


def gpu_blur(values, pixels):
    sigma = pixels / 4
    side = 2 * int(4.0 * sigma + 0.5) + 1
    x = np.arange(side, dtype=np.float32) - np.float32((side - 1) / 2)
    kernel = np.exp(-0.5 * (x / np.float32(sigma)) ** 2)
    kernel = kernel / kernel.sum()
    return np.clip(correlate(values, np.outer(kernel, kernel), mode="constant", cval=0.0), 0, 1)


MODES = {"cpu (compatible)": (cpu_fill, cpu_expand, cpu_blur), "gpu (much faster)": (gpu_fill, gpu_expand, gpu_blur)}


def pack_mask(mask, mode, fill, expand, invert, blend, hipass):
    """The pack's chain on a numpy mask, by scipy's functions."""
    fill_holes, dilate, blur = MODES[mode]
    values = mask.astype(np.float32)
    if fill:
        values = fill_holes(values)
    if expand:
        values = dilate(values, expand)
    if invert:
        values = 1.0 - values
    if blend:
        values = blur(dilate(values, blend), blend * 0.5)
    if hipass >= 0.01:
        values = np.where(values < hipass, 0, values).astype(np.float32)
    return values


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("fill, expand, invert, blend, hipass", [
    (True, 0, False, 32, 0.1), (True, 6, False, 0, 0.0), (False, 0, True, 8, 0.3), (True, 3, True, 5, 0.5),
    (True, 13, False, 1, 0.0)])
def test_mask_operations_are_the_packs(registry, mode, fill, expand, invert, blend, hipass):
    mask = np.zeros((48, 64), dtype=np.float32)
    mask[10:30, 12:40] = 0.8
    mask[16:24, 20:30] = 0.0  # a hole
    mask[18:20, 22:24] = 0.3  # a faint spot in it
    mask[35:40, 50:52] = 0.05  # under the hipass filter
    mask[44:48, 0:6] = 0.95  # at the corner
    stitcher, cropped, cropped_mask = crop(registry, image=picture(48, 64), mask=torch.from_numpy(mask)[None],
                                           optional_context_mask=torch.ones(1, 48, 64), mask_fill_holes=fill,
                                           mask_expand_pixels=expand, mask_invert=invert, mask_blend_pixels=blend,
                                           mask_hipass_filter=hipass, context_from_mask_extend_factor=1.0,
                                           output_resize_to_target_size=False, output_padding="0", device_mode=mode)
    want = pack_mask(mask, mode, fill, expand, invert, blend, hipass)
    assert stitcher.pieces[0].crop_in_canvas == (0, 0, 64, 48)  # the context mask takes in the whole picture
    assert np.allclose(cropped_mask[0].numpy(), want, atol=1e-6)
    blend_mask = MODES[mode][2](cropped_mask[0].numpy(), blend * 0.5) if blend else cropped_mask[0].numpy()
    assert np.allclose(stitcher.pieces[0].blend_mask[0].numpy(), blend_mask, atol=1e-6)


def test_gpu_fill_stops_after_as_many_steps_as_the_longer_side():
    """The pack's flood, a 3×3 max-pool a step for at most max(H, W) steps, run here as the pack
    writes it: a winding corridor longer than that leaves its far end unreached, so filled."""
    import torch.nn.functional as F
    from nodes.pack_nodes_crop_stitch import fill_holes_gpu

    mask = torch.ones(1, 23, 23)  # walls, with a serpentine corridor inside entered from the top
    mask[0, 1:22:2, 1:22] = 0.0
    for row in range(2, 21, 2):
        mask[0, row, 21 if row % 4 == 2 else 1] = 0.0
    mask[0, 0, 1] = 0.0
    passable = torch.zeros(1, 25, 25)
    passable[:, 1:-1, 1:-1] = 1.0 - (mask > 0.5).float()
    outside = torch.zeros(1, 25, 25)
    outside[:, 0], outside[:, -1], outside[:, :, 0], outside[:, :, -1] = 1, 1, 1, 1
    for _ in range(23):
        grown = F.max_pool2d(outside.unsqueeze(1), 3, 1, 1).squeeze(1) * passable
        grown[:, 0], grown[:, -1], grown[:, :, 0], grown[:, :, -1] = 1, 1, 1, 1
        if torch.equal(grown, outside):
            break
        outside = grown
    want = torch.maximum(mask, 1.0 - outside[:, 1:-1, 1:-1])
    assert torch.equal(fill_holes_gpu(mask), want)
    assert want[0, 1, 5] == 0 and want[0, 21, 5] == 1  # the corridor's start is reached, its far end filled
    converged = gpu_fill(mask[0].numpy())
    assert not np.array_equal(converged, want[0].numpy())  # a flood without the cap would reach it


def test_the_two_modes_find_different_holes(registry):
    """The CPU mode fills a grey ring's hole at the ring's level; the GPU mode cuts the mask at 0.5."""
    ring = np.zeros((40, 40), dtype=np.float32)
    ring[5:35, 5:35] = 0.4
    ring[12:28, 12:28] = 0.0
    settings = dict(image=picture(40, 40), mask=torch.from_numpy(ring)[None], mask_blend_pixels=0,
                    mask_hipass_filter=0.0, output_resize_to_target_size=False, output_padding="0")
    _, _, cpu = crop(registry, **settings, device_mode="cpu (compatible)")
    _, _, gpu = crop(registry, **settings, device_mode="gpu (much faster)")
    assert cpu[0, 20, 20] == pytest.approx(0.4) and gpu[0, 20, 20] == 0.0


# -- the stitch ------------------------------------------------------------------------------------------


def test_stitch_blends_by_the_packs_formula(registry):
    image = picture(100, 150)
    mask = box_mask(100, 150, 60, 30, 25, 20)
    stitcher, cropped, _ = crop(registry, image=image, mask=mask, mask_blend_pixels=12,
                                output_resize_to_target_size=False, output_padding="8")
    piece = stitcher.pieces[0]
    x, y, w, h = piece.crop_in_canvas
    assert (w, h) == cropped.shape[2:0:-1]  # own size, padded: the stitch resizes nothing
    inpainted = torch.full_like(cropped, 0.2)
    result = stitch(registry, stitcher, inpainted)[0].numpy()
    weight = np.clip(np.floor(piece.blend_mask[0].numpy() * np.float32(255)) / np.float32(255), 0, 1)[..., None]
    colour = np.float32(math.floor(0.2 * 255) / 255)
    want = image[0].numpy().copy()
    left, top = piece.canvas_to_original[:2]
    area = want[y - top:y - top + h, x - left:x - left + w]
    want[y - top:y - top + h, x - left:x - left + w] = weight * colour + (1.0 - weight) * area
    assert np.allclose(result, want, atol=1e-6)
    assert weight.max() == 1.0 and weight.min() == 0.0


@pytest.mark.parametrize("target, box", [((512, 512), (10, 40, 20, 20)), ((64, 192), (140, 0, 10, 100)),
                                         ((256, 64), (0, 50, 150, 10))])
def test_crop_then_stitch_keeps_the_picture_outside_the_mask(registry, target, box):
    """No sampling between: outside the blend mask the original comes back exactly (also where
    the canvas grew), inside it the blend of the crop resized there and back."""
    image = picture(100, 150, seed=3)
    stitcher, cropped, _ = crop(registry, image=image, mask=box_mask(100, 150, *box), output_target_width=target[0],
                                output_target_height=target[1])
    result = stitch(registry, stitcher, cropped)
    assert result.shape == image.shape
    piece = stitcher.pieces[0]
    x, y, w, h = piece.crop_in_canvas
    left, top = piece.canvas_to_original[:2]
    algorithm = "bicubic" if w > cropped.shape[2] or h > cropped.shape[1] else "bilinear"
    weight = pil(piece.blend_mask[0].numpy(), w, h, algorithm)[..., None]
    back = pil(cropped[0].numpy(), w, h, algorithm)
    canvas = piece.canvas[0].numpy().copy()
    canvas[y:y + h, x:x + w] = weight * back + (1 - weight) * canvas[y:y + h, x:x + w]
    want = canvas[top:top + 100, left:left + 150]
    assert np.allclose(result[0].numpy(), want, atol=1e-6)
    outside = np.ones((canvas.shape[0], canvas.shape[1]), dtype=bool)
    outside[y:y + h, x:x + w] = weight[..., 0] == 0
    outside = outside[top:top + 100, left:left + 150]
    assert outside.sum() > 0 and torch.equal(result[0][torch.from_numpy(outside)], image[0][torch.from_numpy(outside)])


def test_one_stitcher_serves_a_batch_and_batches_crop_per_image(registry):
    images = torch.cat([picture(64, 80, seed=s) for s in range(2)])
    masks = torch.cat([box_mask(64, 80, 5, 5, 10, 10), box_mask(64, 80, 50, 30, 20, 30)])
    stitcher, cropped, _ = crop(registry, image=images, mask=masks, output_target_width=64, output_target_height=64)
    assert cropped.shape == (2, 64, 64, 3) and len(stitcher.pieces) == 2
    for i in range(2):
        one, one_crop, _ = crop(registry, image=images[i:i + 1], mask=masks[i:i + 1], output_target_width=64,
                                output_target_height=64)
        assert torch.equal(cropped[i], one_crop[0]) and one.pieces[0].crop_in_canvas == stitcher.pieces[i].crop_in_canvas
    # one picture, two masks: a crop for each; one mask for two pictures: the same area in each
    stitcher, cropped, _ = crop(registry, image=images[:1], mask=masks, output_target_width=64, output_target_height=64)
    assert cropped.shape[0] == 2 and stitcher.pieces[0].crop_in_canvas != stitcher.pieces[1].crop_in_canvas
    stitcher, _, _ = crop(registry, image=images, mask=masks[:1], output_target_width=64, output_target_height=64)
    assert stitcher.pieces[0].crop_in_canvas == stitcher.pieces[1].crop_in_canvas
    single, single_crop, _ = crop(registry, image=images[:1], mask=masks[:1], output_target_width=64,
                                  output_target_height=64)
    result = stitch(registry, single, torch.cat([single_crop, single_crop]))
    assert result.shape == (2, 64, 80, 3) and torch.equal(result[0], result[1])


# -- pre-resize and outpainting ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, size, least, most, new_size, algorithm", [
    ("ensure minimum resolution", (60, 40), (120, 100), (16384, 16384), (150, 100), "bicubic"),
    ("ensure maximum resolution", (60, 40), (0, 0), (30, 30), (30, 20), "bilinear"),
    ("ensure minimum and maximum resolution", (60, 40), (90, 10), (200, 200), (90, 60), "bicubic"),
    ("ensure minimum and maximum resolution", (60, 40), (10, 10), (45, 45), (45, 30), "bilinear"),
])
def test_preresize_scales_as_the_pack(registry, mode, size, least, most, new_size, algorithm):
    width, height = size
    image = picture(height, width)
    stitcher, cropped, _ = crop(registry, image=image, mask=None, **PLAIN, preresize=True, preresize_mode=mode,
                                preresize_min_width=least[0], preresize_min_height=least[1],
                                preresize_max_width=most[0], preresize_max_height=most[1],
                                output_resize_to_target_size=False, output_padding="0")
    scale = max(least[0] / width, least[1] / height) if algorithm == "bicubic" else min(most[0] / width,
                                                                                          most[1] / height)
    assert (int(width * scale), int(height * scale)) == new_size
    assert stitcher.pieces[0].canvas_to_original == (0, 0, *new_size)
    resized = pil(image[0].numpy(), *new_size, algorithm)
    assert np.array_equal(stitcher.pieces[0].canvas[0].numpy(), resized)
    assert stitch(registry, stitcher, cropped).shape == (1, new_size[1], new_size[0], 3)


def test_extend_for_outpainting_repeats_the_edges_and_masks_the_new_area(registry):
    image = picture(40, 60)
    stitcher, cropped, cropped_mask = crop(registry, image=image, mask=box_mask(40, 60, 20, 10, 5, 5), **PLAIN,
                                           extend_for_outpainting=True, extend_up_factor=1.5, extend_down_factor=1.0,
                                           extend_left_factor=1.25, extend_right_factor=1.1,
                                           output_resize_to_target_size=False, output_padding="0")
    new_h, new_w = int(40 * (1.0 + 1.5 - 1.0 + 1.0 - 1.0)), int(60 * (1.0 + 1.25 - 1.0 + 1.1 - 1.0))
    up, left = int(40 * 0.5), int(60 * 0.25)
    want = np.pad(image[0].numpy(), ((up, new_h - 40 - up), (left, new_w - 60 - left), (0, 0)), mode="edge")
    piece = stitcher.pieces[0]
    assert piece.canvas_to_original == (0, 0, new_w, new_h)
    assert np.array_equal(piece.canvas[0].numpy(), want)
    # the new area is masked, so the context is the whole extended picture: its aspect ratio as a
    # float (81 / 60) gives int(81 / 1.35) = 59 rows, which the crop at its own size grows back to 60
    area = pack_area(0, 0, new_w, new_h, new_w, new_h, 0, new_w, new_h, resize_output=False)[0]
    assert piece.crop_in_canvas == area == (0, 0, 81, 60)
    canvas_mask = np.ones((new_h, new_w), dtype=np.float32)
    canvas_mask[up:up + 40, left:left + 60] = box_mask(40, 60, 20, 10, 5, 5)[0].numpy()
    assert np.array_equal(cropped_mask[0].numpy(), canvas_mask)
    assert np.array_equal(cropped[0].numpy(), want)


def test_extend_factors_under_one_cut_the_picture(registry):
    image = picture(40, 60)
    stitcher, _, _ = crop(registry, image=image, mask=None, **PLAIN, extend_for_outpainting=True,
                          extend_up_factor=0.5, extend_left_factor=0.75, output_resize_to_target_size=False,
                          output_padding="0")
    assert torch.equal(stitcher.pieces[0].canvas, image[:, 20:, 15:])


# -- errors -------------------------------------------------------------------------------------------------


def test_errors_name_the_input(registry):
    image = picture(40, 60)
    cases = [
        (dict(image=image, mask=box_mask(30, 30, 1, 1, 5, 5)), "mask"),
        (dict(image=image, mask=None, optional_context_mask=box_mask(30, 30, 1, 1, 5, 5)), "optional_context_mask"),
        (dict(image=torch.cat([image, image]), mask=None, output_resize_to_target_size=False),
         "output_resize_to_target_size"),
        (dict(image=torch.cat([image, image, image]), mask=torch.zeros(2, 40, 60)), "mask"),
        (dict(image=image, mask=None, preresize=True, preresize_mode="ensure minimum and maximum resolution",
              preresize_min_width=100, preresize_max_width=50), "preresize_max_width"),
        (dict(image=image, mask=None, preresize=True, preresize_mode="ensure minimum and maximum resolution",
              preresize_min_width=100, preresize_max_width=200, preresize_min_height=10, preresize_max_height=20),
         "preresize_mode"),
        (dict(image=image, mask=None, extend_for_outpainting=True, extend_up_factor=0.01, extend_down_factor=0.01),
         "extend_up_factor"),
        (dict(image=picture(40, 100), mask=None, extend_for_outpainting=True, extend_left_factor=100.0,
              extend_right_factor=100.0), "extend_left_factor"),  # 19900 pixels wide
    ]
    for inputs, name in cases:
        with pytest.raises(NodeInputError) as caught:
            crop(registry, **inputs)
        assert caught.value.input == name, (name, caught.value)
    stitcher, cropped, _ = crop(registry, image=torch.cat([image, image]), mask=None)
    with pytest.raises(NodeInputError) as caught:
        stitch(registry, stitcher, torch.cat([cropped] * 3))
    assert caught.value.input == "inpainted_image"
    with pytest.raises(NodeInputError) as caught:
        stitch(registry, {"x": 0}, cropped)
    assert caught.value.input == "stitcher"


def test_a_huge_target_is_refused_before_the_run(registry):
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 64, "color": 0}},
              "2": {"class_type": "InpaintCropImproved", "inputs": {
                  "image": ["1", 0], **dict(zip(CROP_INPUTS[1:], CROP_DEFAULTS)),
                  "output_target_width": 16384, "output_target_height": 16384}}}
    from graphflow.executor import Executor
    from graphflow.resource_limits import SERVER_LIMITS
    result = Executor(registry, limits=SERVER_LIMITS).run(parse_workflow(prompt, registry), outputs=["2"])
    assert not result.ok and result.problems and "2" in str(result.problems)


# -- the pack's names, saves and prompts ------------------------------------------------------------------


def test_the_packs_names_inputs_and_defaults(registry):
    node = registry.comfy_node("InpaintCropImproved")
    assert list(node.input_specs) == CROP_INPUTS
    assert [node.input_specs[n].default for n in CROP_INPUTS[1:-2]] == CROP_DEFAULTS
    assert [o.name for o in node.output_specs] == ["stitcher", "cropped_image", "cropped_mask"]
    assert list(registry.comfy_node("InpaintStitchImproved").input_specs) == ["stitcher", "inpainted_image"]
    for name in ("InpaintCrop", "InpaintStitch", "InpaintExtendOutpaint", "InpaintResize"):
        assert custom_pack(name) == "ComfyUI-Inpaint-CropAndStitch"


@pytest.fixture
def tiny(tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    return tmp_folders


CROP_WIDGETS = ["bilinear", "bicubic", False, "ensure minimum resolution", 1024, 1024, 16384, 16384, True, 0,
                False, 16, 0.1, False, 1.0, 1.0, 1.0, 1.0, 1.2, True, 64, 64, "32", "cpu (compatible)"]


def inpaint_prompt():
    link = lambda node, index=0: [str(node), index]  # noqa: E731
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 80, "batch_size": 1, "color": 0x3366cc}},
        "3": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 96, "height": 80}},
        "4": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 16, "height": 12}},
        "5": {"class_type": "MaskComposite", "inputs": {"destination": link(3), "source": link(4), "x": 40, "y": 30,
                                                        "operation": "add"}},
        "6": {"class_type": "InpaintCropImproved", "inputs": {"image": link(2), **dict(zip(CROP_INPUTS[1:],
                                                                                           CROP_WIDGETS)),
                                                             "mask": link(5)}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red ball", "clip": link(1, 1)}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": link(1, 1)}},
        "9": {"class_type": "VAEEncode", "inputs": {"pixels": link(6, 1), "vae": link(1, 2)}},
        "10": {"class_type": "KSampler", "inputs": {"model": link(1), "seed": 3, "steps": 2, "cfg": 4.0,
                                                    "sampler_name": "euler", "scheduler": "normal",
                                                    "positive": link(7), "negative": link(8),
                                                    "latent_image": link(9), "denoise": 0.8}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": link(10), "vae": link(1, 2)}},
        "12": {"class_type": "InpaintStitchImproved", "inputs": {"stitcher": link(6), "inpainted_image": link(11)}},
    }


def check_inpainted(result):
    image = result.values["2"][0]
    stitched = result.values["12"][0]
    assert stitched.shape == image.shape
    piece = result.values["6"][0].pieces[0]
    x, y, w, h = piece.crop_in_canvas
    outside = torch.ones(image.shape[1:3], dtype=torch.bool)
    outside[y:y + h, x:x + w] = torch.from_numpy(pil(piece.blend_mask[0].numpy(), w, h, "bilinear") == 0)
    assert torch.equal(stitched[0][outside], image[0][outside])
    assert not torch.equal(stitched, image)  # the sampled crop went in under the mask


def test_api_prompt_runs_crop_sample_stitch_and_round_trips(registry, tiny):
    prompt = inpaint_prompt()
    result = run_graph(registry, prompt, ["12"])
    check_inpainted(result)
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in api.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}


def test_ui_save_runs_crop_sample_stitch_and_round_trips(registry, tiny):
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [4, 5])]),
        ui_node(2, "EmptyImage", [96, 80, 1, 0x3366cc], outputs=[("IMAGE", "IMAGE", [6])]),
        ui_node(3, "SolidMask", [0.0, 96, 80], outputs=[("MASK", "MASK", [7])]),
        ui_node(4, "SolidMask", [1.0, 16, 12], outputs=[("MASK", "MASK", [8])]),
        ui_node(5, "MaskComposite", [40, 30, "add"], [("destination", "MASK", 7, False), ("source", "MASK", 8, False)],
                [("MASK", "MASK", [9])]),
        ui_node(6, "InpaintCropImproved", CROP_WIDGETS,
                [("image", "IMAGE", 6, False), ("mask", "MASK", 9, False), ("optional_context_mask", "MASK", None,
                                                                             False)],
                [("stitcher", "STITCHER", [10]), ("cropped_image", "IMAGE", [11]), ("cropped_mask", "MASK", [])]),
        ui_node(7, "CLIPTextEncode", ["a red ball"], [("clip", "CLIP", 2, False)],
                [("CONDITIONING", "CONDITIONING", [12])]),
        ui_node(8, "CLIPTextEncode", [""], [("clip", "CLIP", 3, False)], [("CONDITIONING", "CONDITIONING", [13])]),
        ui_node(9, "VAEEncode", [], [("pixels", "IMAGE", 11, False), ("vae", "VAE", 4, False)],
                [("LATENT", "LATENT", [14])]),
        ui_node(10, "KSampler", [3, "fixed", 2, 4.0, "euler", "normal", 0.8],
                [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 12, False),
                 ("negative", "CONDITIONING", 13, False), ("latent_image", "LATENT", 14, False)],
                [("LATENT", "LATENT", [15])]),
        ui_node(11, "VAEDecode", [], [("samples", "LATENT", 15, False), ("vae", "VAE", 5, False)],
                [("IMAGE", "IMAGE", [16])]),
        ui_node(12, "InpaintStitchImproved", [], [("stitcher", "STITCHER", 10, False),
                                                  ("inpainted_image", "IMAGE", 16, False)],
                [("image", "IMAGE", [])]),
    ]
    links = [[1, 1, 0, 10, 0, "MODEL"], [2, 1, 1, 7, 0, "CLIP"], [3, 1, 1, 8, 0, "CLIP"], [4, 1, 2, 9, 1, "VAE"],
             [5, 1, 2, 11, 1, "VAE"], [6, 2, 0, 6, 0, "IMAGE"], [7, 3, 0, 5, 0, "MASK"], [8, 4, 0, 5, 1, "MASK"],
             [9, 5, 0, 6, 1, "MASK"], [10, 6, 0, 12, 0, "STITCHER"], [11, 6, 1, 9, 0, "IMAGE"],
             [12, 7, 0, 10, 1, "CONDITIONING"], [13, 8, 0, 10, 2, "CONDITIONING"], [14, 9, 0, 10, 3, "LATENT"],
             [15, 10, 0, 11, 0, "LATENT"], [16, 11, 0, 12, 1, "IMAGE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["12"])
    check_inpainted(result)
    assert result.values["6"][1].shape == (1, 64, 64, 3)
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for n in nodes:
        assert saved[n["id"]]["type"] == n["type"]
        assert saved[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


def test_a_save_from_before_device_mode_reads_it_at_its_default(registry):
    """Saves from before 3.0 have 23 widget values; ComfyUI's editor leaves the new last widget
    at its default, and so does the reader."""
    nodes = [ui_node(1, "EmptyImage", [96, 80, 1, 0x3366cc], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "InpaintCropImproved", CROP_WIDGETS[:-1], [("image", "IMAGE", 1, False)],
                     [("stitcher", "STITCHER", []), ("cropped_image", "IMAGE", []), ("cropped_mask", "MASK", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"]])
    inputs = parse_workflow(graph, registry).to_json()["nodes"]["2"]["inputs"]
    assert inputs["output_padding"] == "32" and "device_mode" not in inputs  # the widget's default applies
    assert registry.comfy_node("InpaintCropImproved").input_specs["device_mode"].default == "gpu (much faster)"
    assert run_graph(registry, graph, ["2"]).values["2"][1].shape == (1, 64, 64, 3)
