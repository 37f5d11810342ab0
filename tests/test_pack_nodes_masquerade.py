"""masquerade-nodes-comfyui's nodes (nodes/pack_nodes_masquerade.py): each against the pack's
formula written out with numpy / OpenCV / scipy / colorsys / torch, the clear errors, its size
estimates, and the pack's classes read from UI and API graphs (a crop - edit - paste chain)."""

import colorsys
import json
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.resource_limits import RunLimits, Size
from graphflow.validation import validate
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale, which the pack reads RGB masks with


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


def node(registry, comfy_class, **inputs):
    """Run the node ComfyUI's `comfy_class` maps onto, with the pack's input names."""
    return call(registry, registry.comfy_node(comfy_class).node_type, **inputs)


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def luma(rgb):
    return LUMA[0] * rgb[..., 0] + LUMA[1] * rgb[..., 1] + LUMA[2] * rgb[..., 2]


# -- masks -------------------------------------------------------------------------------------


def test_mask_morphology_is_opencv_dilate_and_erode_on_a_square(registry):
    mask = (rand(2, 20, 24) > 0.7).float() * rand(2, 20, 24, seed=1)
    for distance in (0, 1, 3):
        kernel = np.ones((2 * distance + 1,) * 2, np.uint8)
        dilate = lambda m: cv2.dilate(m, kernel)  # outside the picture is -inf for dilate, +inf for erode
        erode = lambda m: cv2.erode(m, kernel)
        refs = {"dilate": dilate, "erode": erode, "open": lambda m: dilate(erode(m)),
                "close": lambda m: erode(dilate(m))}
        for op, ref in refs.items():
            out = node(registry, "Mask Morphology", image=mask, distance=distance, op=op)
            assert out.shape == (2, 20, 24)
            expected = np.stack([ref(m.numpy()) for m in mask])
            np.testing.assert_allclose(out.numpy(), expected, atol=1e-6, err_msg=f"{op} {distance}")


def test_mask_morphology_and_blur_at_their_largest_sizes_take_seconds_not_minutes(registry):
    """A (2k + 1)² square per pixel took 30 s for close at distance 128 on 512² and minutes on
    larger pictures; a row then a column at a time takes about a second here."""
    import time
    mask = rand(1, 512, 512, seed=9) ** 3  # values off torch.rand's 2^-24 grid, where 1 - (1 - x) != x
    kernel = np.ones((257, 257), np.uint8)
    start = time.monotonic()
    out = node(registry, "Mask Morphology", image=mask, distance=128, op="close")
    assert time.monotonic() - start < 10
    np.testing.assert_allclose(out[0].numpy(), cv2.erode(cv2.dilate(mask[0].numpy(), kernel), kernel), atol=1e-7)
    eroded = node(registry, "Mask Morphology", image=mask, distance=3, op="erode")
    # the pack's erode, 1 - dilate(1 - mask), to the bit (not the plain minimum)
    inverse = 1.0 - mask[0].numpy()
    assert np.array_equal(eroded[0].numpy(), 1.0 - cv2.dilate(inverse, np.ones((7, 7), np.uint8)))
    image = rand(1, 1024, 1024, 3, seed=10)
    start = time.monotonic()
    out = node(registry, "Blur", image=image, radius=48, sigma_factor=1.0)
    assert time.monotonic() - start < 10
    sigma = 0.6 * 48 - 0.3
    line = np.exp(-np.arange(-48, 49) ** 2 / (2 * sigma ** 2))
    line /= line.sum()
    # the 2-D Gaussian is the outer product of the 1-D ones: scipy, a row then a column, in float64
    expected = ndimage.correlate1d(ndimage.correlate1d(image[0].double().numpy(), line, axis=0, mode="mirror"),
                                   line, axis=1, mode="mirror")
    np.testing.assert_allclose(out[0].numpy(), expected, atol=2e-6)


def test_mask_morphology_reads_an_rgba_images_alpha_and_an_rgb_images_luma(registry):
    rgb = rand(1, 6, 7, 3)
    out = node(registry, "Mask Morphology", image=rgb, distance=0, op="dilate")
    torch.testing.assert_close(out, luma(rgb))
    rgba = torch.cat((rgb, rand(1, 6, 7, 1, seed=2)), dim=3)
    assert torch.equal(node(registry, "Mask Morphology", image=rgba, distance=0, op="dilate"), rgba[..., 3])
    opaque = torch.cat((rgb, torch.ones(1, 6, 7, 1)), dim=3)  # alpha all 1: the luma, as the pack does
    torch.testing.assert_close(node(registry, "Mask Morphology", image=opaque, distance=0, op="dilate"), luma(rgb))


def test_combine_masks_ops_on_a_mask_and_an_image(registry):
    mask, image = rand(1, 5, 6) * 1.6 - 0.3, rand(1, 5, 6, 3, seed=3)
    a, b = mask.numpy()[..., None].repeat(3, axis=3), image.numpy()  # the mask repeated to RGB
    refs = {"union (max)": np.maximum(a, b), "intersection (min)": np.minimum(a, b), "difference": a - b,
            "multiply": a * b, "add": a + b, "greater_or_equal": (a >= b).astype(np.float32),
            "greater": (a > b).astype(np.float32)}
    for op, ref in refs.items():
        out = node(registry, "Combine Masks", image1=mask, image2=image, op=op, clamp_result="no", round_result="no")
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-6, err_msg=op)
        clamped = node(registry, "Combine Masks", image1=mask, image2=image, op=op, clamp_result="yes",
                       round_result="yes")
        np.testing.assert_array_equal(clamped.numpy(), np.round(np.clip(ref, 0, 1)))


def test_combine_masks_multiply_alpha_and_batches(registry):
    rgba, mask = rand(1, 4, 5, 4), rand(3, 4, 5, seed=4)
    out = node(registry, "Combine Masks", image1=rgba, image2=mask, op="multiply_alpha", clamp_result="no",
               round_result="no")
    # the mask is first repeated to RGBA (all four channels), then read back as a mask: its alpha
    assert out.shape == (3, 4, 5, 4)
    assert torch.equal(out[..., :3], rgba[..., :3].expand(3, 4, 5, 3))
    torch.testing.assert_close(out[..., 3], rgba[..., 3] * mask)
    two, three = rand(2, 4, 5), rand(3, 4, 5)
    with pytest.raises(NodeInputError) as e:
        node(registry, "Combine Masks", image1=two, image2=three, op="add", clamp_result="no", round_result="no")
    assert e.value.input == "image2" and "batch" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        node(registry, "Combine Masks", image1=two, image2=rand(2, 4, 6), op="add", clamp_result="no",
             round_result="no")
    assert e.value.input == "image2" and "same size" in str(e.value)


def test_unary_mask_and_image_ops(registry):
    image = rand(2, 4, 5, 3) * 2 - 0.5
    gray = luma(image).numpy()
    refs = {"invert": lambda x: 1 - x, "round": np.round, "clamp": lambda x: np.clip(x, 0, 1), "abs": np.abs,
            "average": lambda x: np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape)}
    for op, ref in refs.items():
        masked = node(registry, "Unary Mask Op", image=image, op=op)
        np.testing.assert_allclose(masked.numpy(), ref(gray), atol=1e-6, err_msg=op)
        rgb = node(registry, "Unary Image Op", image=torch.cat((image, torch.ones(2, 4, 5, 1)), dim=3), op=op)
        np.testing.assert_allclose(rgb.numpy(), ref(image.numpy()), atol=1e-6, err_msg=op)  # alpha dropped


def pack_gaussian(radius, sigma_factor):
    """The pack's kernel: exp(-(x² + y²) / 2σ²) over a (2r + 1)² square, σ = f · (0.6 r - 0.3), summing to 1."""
    sigma = sigma_factor * (0.6 * radius - 0.3)
    size = 2 * radius + 1
    kernel = np.array([[math.exp(-((i - radius) ** 2 + (j - radius) ** 2) / (2 * sigma ** 2)) for j in range(size)]
                       for i in range(size)])
    return kernel / kernel.sum()


def test_blur_is_the_packs_gaussian_with_mirrored_edges(registry):
    image = rand(2, 12, 15, 3)
    for radius, factor in ((3, 1.0), (2, 0.5), (0, 1.0)):
        out = node(registry, "Blur", image=image, radius=radius, sigma_factor=factor)
        kernel = pack_gaussian(radius, factor)
        # torch's 'reflect' padding is scipy's 'mirror' (the edge pixel not repeated)
        expected = np.stack([np.stack([ndimage.correlate(image[b, ..., c].numpy().astype(np.float64), kernel,
                                                         mode="mirror") for c in range(3)], axis=-1)
                             for b in range(2)])
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)  # float32 passes: ~1e-7 off float64
    image = rand(1, 52, 50, 3, seed=4)  # the largest radius: 97² weights, still within float32's rounding
    out = node(registry, "Blur", image=image, radius=48, sigma_factor=1.0)
    expected = ndimage.correlate(image[0, ..., 2].double().numpy(), pack_gaussian(48, 1.0), mode="mirror")
    np.testing.assert_allclose(out[0, ..., 2].numpy(), expected, atol=2e-6)
    one = rand(2, 12, 15, 1, seed=8)  # a 1-channel image comes back a mask [B, H, W], as the pack gives it
    out = node(registry, "Blur", image=one, radius=2, sigma_factor=1.0)
    assert out.shape == (2, 12, 15)
    np.testing.assert_allclose(out[1].numpy(), ndimage.correlate(one[1, ..., 0].double().numpy(),
                                                                 pack_gaussian(2, 1.0), mode="mirror"), atol=1e-6)
    mask = rand(1, 12, 15)
    out = node(registry, "Blur", image=mask, radius=2, sigma_factor=1.0)
    assert out.shape == (1, 12, 15)
    np.testing.assert_allclose(out[0].numpy(), ndimage.correlate(mask[0].double().numpy(), pack_gaussian(2, 1.0),
                                                                 mode="mirror"), atol=1e-6)
    with pytest.raises(NodeInputError) as e:
        node(registry, "Blur", image=mask, radius=12, sigma_factor=1.0)
    assert e.value.input == "radius"


def test_image_to_mask_intensity_and_the_packs_alpha(registry):
    rgba = rand(1, 3, 4, 4)
    intensity = node(registry, "Image To Mask", image=rgba, method="intensity")
    torch.testing.assert_close(intensity, luma(rgba[..., :3]))  # RGBA loses its alpha first
    # "alpha" gives channel 0 of the image made RGBA, as the pack's code does: red, not alpha
    assert torch.equal(node(registry, "Image To Mask", image=rgba, method="alpha"), rgba[..., 0])
    mask = rand(2, 3, 4)
    assert torch.equal(node(registry, "Image To Mask", image=mask, method="alpha"), mask)
    assert torch.equal(node(registry, "Image To Mask", image=mask, method="intensity"), mask)


def test_mix_images_and_color_by_mask(registry):
    a, b, mask = rand(2, 4, 5, 3), rand(2, 4, 5, 3, seed=1), rand(1, 4, 5, seed=2)
    out = node(registry, "Mix Images By Mask", image1=a, image2=b, mask=mask)
    m = mask.numpy()[..., None]
    np.testing.assert_allclose(out.numpy(), a.numpy() * (1 - m) + b.numpy() * m, atol=1e-6)
    rgb_mask = rand(2, 4, 5, 3, seed=5)  # an RGB mask mixes each channel by its own channel
    out = node(registry, "Mix Images By Mask", image1=a, image2=b, mask=rgb_mask)
    np.testing.assert_allclose(out.numpy(), a.numpy() * (1 - rgb_mask.numpy()) + b.numpy() * rgb_mask.numpy(),
                               atol=1e-6)
    rgba = torch.cat((a, rand(2, 4, 5, 1, seed=6)), dim=3)
    out = node(registry, "Mix Color By Mask", image=rgba, r=255, g=128, b=0, mask=mask)
    color = np.array([1.0, 128 / 255, 0.0, 1.0])  # the colour gets alpha 1; the image's alpha mixes towards it
    np.testing.assert_allclose(out.numpy(), rgba.numpy() * (1 - m) + color * m, atol=1e-6)
    gray = rand(1, 4, 5, seed=7)  # a mask image becomes RGB
    out = node(registry, "Mix Color By Mask", image=gray, r=0, g=0, b=255, mask=mask)
    np.testing.assert_allclose(out.numpy(), gray.numpy()[..., None] * (1 - m) + np.array([0, 0, 1.0]) * m,
                               atol=1e-6)
    with pytest.raises(NodeInputError) as e:
        node(registry, "Mix Images By Mask", image1=a, image2=b, mask=rand(1, 8, 5))
    assert e.value.input == "mask"


def test_mix_images_by_mask_alpha_follows_the_mask_kind(registry):
    """RGBA images: a plain mask is repeated into alpha too (alpha mixes by it); an RGB mask gets
    alpha 1, so the result's alpha is image2's, as the pack's tensor2rgba makes them."""
    a = torch.cat((rand(1, 3, 4, 3), rand(1, 3, 4, 1, seed=1)), dim=3)
    b = torch.cat((rand(1, 3, 4, 3, seed=2), rand(1, 3, 4, 1, seed=3)), dim=3)
    mask = rand(1, 3, 4, seed=4)
    out = node(registry, "Mix Images By Mask", image1=a, image2=b, mask=mask)
    m = mask.numpy()[..., None]
    np.testing.assert_allclose(out.numpy(), a.numpy() * (1 - m) + b.numpy() * m, atol=1e-6)
    rgb_mask = rand(1, 3, 4, 3, seed=5)
    out = node(registry, "Mix Images By Mask", image1=a, image2=b, mask=rgb_mask)
    m = np.concatenate((rgb_mask.numpy(), np.ones((1, 3, 4, 1), np.float32)), axis=3)
    np.testing.assert_allclose(out.numpy(), a.numpy() * (1 - m) + b.numpy() * m, atol=1e-6)
    np.testing.assert_allclose(out[..., 3].numpy(), b[..., 3].numpy(), atol=1e-6)


def test_one_image_mixed_by_each_mask_of_a_batch(registry):
    """One picture and a batch of masks (Separate Mask Components' pieces) give a batch, as the
    pack's broadcasting does; batches of 2 and 3 are refused."""
    a, b, masks = rand(1, 4, 5, 3), rand(1, 4, 5, 3, seed=1), rand(3, 4, 5, seed=2)
    m = masks.numpy()[..., None]
    out = node(registry, "Mix Images By Mask", image1=a, image2=b, mask=masks)
    assert out.shape == (3, 4, 5, 3)
    np.testing.assert_allclose(out.numpy(), a.numpy() * (1 - m) + b.numpy() * m, atol=1e-6)
    out = node(registry, "Mix Color By Mask", image=a, r=255, g=0, b=51, mask=masks)
    assert out.shape == (3, 4, 5, 3)
    np.testing.assert_allclose(out.numpy(), a.numpy() * (1 - m) + np.array([1.0, 0.0, 0.2]) * m, atol=1e-6)
    out = node(registry, "Mix Images By Mask", image1=masks[:1], image2=b, mask=masks)  # a mask image1 too
    np.testing.assert_allclose(out.numpy(), masks[:1].numpy()[..., None] * (1 - m) + b.numpy() * m, atol=1e-6)
    for name, inputs in (("Mix Images By Mask", dict(image1=a.repeat(2, 1, 1, 1), image2=b)),
                         ("Mix Color By Mask", dict(image=a.repeat(2, 1, 1, 1), r=0, g=0, b=0))):
        with pytest.raises(NodeInputError) as e:
            node(registry, name, mask=masks, **inputs)
        assert e.value.input == "mask" and "batch of 3" in str(e.value), name


def test_create_rect_mask_pixels_percent_and_corners(registry):
    base = dict(mode="pixels", origin="topleft", x=3.0, y=2.0, width=4.0, height=5.0, image_width=64,
                image_height=128)
    expected = np.zeros((128, 64), np.float32)
    expected[2:2 + 5 + 1, 3:3 + 4 + 1] = 1  # both ends included, as the pack draws it
    out = node(registry, "Create Rect Mask", **base)
    assert out.shape == (1, 128, 64)
    np.testing.assert_array_equal(out[0].numpy(), expected)
    flipped = node(registry, "Create Rect Mask", **{**base, "origin": "bottomright"})
    expected = np.zeros((128, 64), np.float32)
    expected[128 - 7:128 - 2 + 1, 64 - 7:64 - 3 + 1] = 1
    np.testing.assert_array_equal(flipped[0].numpy(), expected)
    percent = node(registry, "Create Rect Mask", **{**base, "mode": "percent", "x": 25.0, "y": 50.0,
                                                     "width": 50.0, "height": 10.0})
    expected = np.zeros((128, 64), np.float32)
    expected[int(0.5 * 128):int(0.6 * 128) + 1, int(0.25 * 64):int(0.75 * 64) + 1] = 1
    np.testing.assert_array_equal(percent[0].numpy(), expected)
    copied = node(registry, "Create Rect Mask", **base, copy_image_size=torch.zeros(3, 10, 12, 3))
    assert copied.shape == (1, 10, 12) and copied[0, 2:8, 3:8].eq(1).all() and copied.sum() == 30


def test_mask_to_region_worked_examples(registry):
    mask = torch.zeros(1, 16, 16)
    mask[0, 4:6, 5:8] = 1  # box x 5..7, y 4..5: the pack counts it 2 × 1
    base = dict(padding=0, constraints="ignore", constraint_x=64, constraint_y=64, min_width=0, min_height=0,
                batch_behavior="match_size")
    region = node(registry, "Mask To Region", mask=mask, **base)
    expected = torch.zeros(1, 16, 16)
    expected[0, 4:6, 5:8] = 1  # drawn with its end included: the box itself
    assert torch.equal(region, expected)
    # padding 2: x 3..9, y 2..7 (6 × 5); keep_ratio 1:1 widens the height to 6: y 2..8
    region = node(registry, "Mask To Region", mask=mask, **{**base, "padding": 2, "constraints": "keep_ratio"})
    expected = torch.zeros(1, 16, 16)
    expected[0, 2:9, 3:10] = 1
    assert torch.equal(region, expected)
    # multiple_of 4 × 4 on 6 × 5: 8 × 8, the growth split 1 / 1 and 1 / 2: x 2..10, y 1..9
    region = node(registry, "Mask To Region", mask=mask, **{**base, "padding": 2, "constraints": "multiple_of",
                                                             "constraint_x": 4, "constraint_y": 4})
    expected = torch.zeros(1, 16, 16)
    expected[0, 1:10, 2:11] = 1
    assert torch.equal(region, expected)
    # min_width 12 at the left edge: x 0..5 counts 5 wide; +7 split 3 / 4 gives -3..9, moved to 0..12
    edge = torch.zeros(1, 16, 16)
    edge[0, 4:6, 0:6] = 1
    region = node(registry, "Mask To Region", mask=edge, **{**base, "min_width": 12})
    expected = torch.zeros(1, 16, 16)
    expected[0, 4:6, 0:13] = 1
    assert torch.equal(region, expected)


def test_mask_to_region_batches_and_empty_masks(registry):
    masks = torch.zeros(3, 16, 16)
    masks[0, 2:4, 2:12] = 1  # 9 × 1
    masks[1, 8:12, 8:11] = 1  # 2 × 3
    base = dict(padding=0, constraints="ignore", constraint_x=64, constraint_y=64, min_width=0, min_height=0)
    region = node(registry, "Mask To Region", mask=masks, batch_behavior="match_size", **base)
    # all widened to 9 × 3; mask 1: x 8..10 (2 wide) grows 7: 3 left, 4 right; y 8..11 stays 3 high
    expected = torch.zeros(3, 16, 16)
    expected[0, 1:5, 2:12] = 1
    expected[1, 8:12, 5:15] = 1
    assert torch.equal(region, expected)  # the empty mask gives an empty region
    # match_ratio: mask 1's 2:3 is nearest 1:1; mask 0 (9 × 1) gets height max(1, 9 * 3 // 2) = 13
    region = node(registry, "Mask To Region", mask=masks, batch_behavior="match_ratio", **base)
    expected = torch.zeros(3, 16, 16)
    expected[0, 0:14, 2:12] = 1  # y 2..3 grows 12 (6 / 6): -4..9, moved to 0..13
    expected[1, 8:12, 8:11] = 1
    assert torch.equal(region, expected)


def test_mask_to_region_keep_ratio_divisible_follows_the_packs_search(registry):
    mask = torch.zeros(1, 64, 64)
    mask[0, 10:15, 10:20] = 1  # 9 × 4 (the pack's count)
    base = dict(padding=0, constraints="keep_ratio_divisible", min_width=0, min_height=0,
                batch_behavior="match_size")
    # 12 × 8: i runs 1 .. min(12 // 9, 8 // 4) = 1: the target (9, 4) is not at least (12, 8): unchanged
    region = node(registry, "Mask To Region", mask=mask, constraint_x=12, constraint_y=8, **base)
    expected = torch.zeros(1, 64, 64)
    expected[0, 10:15, 10:20] = 1
    assert torch.equal(region, expected)
    # a one-pixel-high mask has height 0: the search is unbounded; 6 × 4's divisors 1, 2: at i = 2,
    # (3 >= 3, 0 >= 2) fails too, so nothing changes; with match_ratio the 0 height has no ratio
    thin = torch.zeros(1, 64, 64)
    thin[0, 5, 5:9] = 1
    region = node(registry, "Mask To Region", mask=thin, constraint_x=6, constraint_y=4, **base)
    assert region.sum() == 4
    with pytest.raises(NodeInputError) as e:
        node(registry, "Mask To Region", mask=thin, constraint_x=6, constraint_y=4,
             **{**base, "batch_behavior": "match_ratio"})
    assert e.value.input == "mask"


def region_by_the_packs_rule(masks, padding, constraints, cx, cy, min_width, min_height, batch_behavior):
    """Mask To Region worked out mask by mask in Python integers from the rule the pack follows;
    None where the pack's own code fails (a factor search with no bound: a box of no size)."""
    batch, height, width = masks.shape
    empty = [not (m > 0).any() for m in masks]
    boxes = []
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m) if not empty[i] else ([0], [0])  # an empty mask counts its top-left pixel
        x0, y0 = max(min(xs) - padding, 0), max(min(ys) - padding, 0)
        x1, y1 = min(max(xs) + padding, width), min(max(ys) + padding, height)  # the far edge, not the last pixel
        boxes.append([x0, y0, x1, y1])
    sizes = [[b[2] - b[0], b[3] - b[1]] for b in boxes]  # one less than the pixels counted: the pack's count
    targets = [[max(w, min_width), max(h, min_height)] for w, h in sizes]
    if constraints == "keep_ratio":
        for t in targets:
            t[0] = max(t[0], t[1] * cx // cy)
            t[1] = max(t[1], t[0] * cy // cx)
    elif constraints == "keep_ratio_divisible":
        # the largest factor i such that the constraint divided by i still fits in some target;
        # each i dividing both constraints sets the targets at least (cx / i, cy / i) to exactly that
        bound = max(min(cx // w if w else math.inf, cy // h if h else math.inf) for w, h in targets)
        if bound == math.inf:
            return None
        for i in range(1, int(bound) + 1):
            if cx % i == 0 and cy % i == 0:
                for t in targets:
                    if t[0] >= cx // i and t[1] >= cy // i:
                        t[:] = [cx // i, cy // i]
    elif constraints == "multiple_of":
        for t in targets:
            t[:] = [-(-t[0] // cx) * cx, -(-t[1] // cy) * cy]  # up to the next multiple
    if batch_behavior == "match_size":
        most = [max(t[0] for t in targets), max(t[1] for t in targets)]
        targets = [list(most) for _ in targets]
    elif not all(empty):
        # the first non-empty mask whose ratio is nearest 1:1 gives all its ratio (each only widened);
        # nearness in float32, as the pack's tensors have it: 16 / 12 and 16 / 24 are not a tie there
        nearest = min((i for i in range(batch) if not empty[i]),
                      key=lambda i: abs(np.float32(targets[i][0]) / np.float32(targets[i][1]) - np.float32(1)))
        w_m, h_m = targets[nearest]
        for t in targets:
            t[0] = max(t[0], t[1] * w_m // h_m)
            t[1] = max(t[1], t[0] * h_m // w_m)
    region = np.zeros((batch, height, width), np.float32)
    for i in range(batch):
        if empty[i]:
            continue
        x0, y0, x1, y1 = boxes[i]
        grow_x, grow_y = targets[i][0] - sizes[i][0], targets[i][1] - sizes[i][1]
        x0, x1 = x0 - grow_x // 2, x1 + grow_x - grow_x // 2  # the growth split around the box
        y0, y1 = y0 - grow_y // 2, y1 + grow_y - grow_y // 2
        if x0 < 0:  # moved back inside over the left or top edge, then the right or bottom one
            x0, x1 = 0, x1 - x0
        if y0 < 0:
            y0, y1 = 0, y1 - y0
        if x1 > width:
            x0, x1 = x0 - (x1 - width), width
        if y1 > height:
            y0, y1 = y0 - (y1 - height), height
        region[i, y0:y1 + 1, x0:x1 + 1] = 1  # the end included; a start still below 0 counts from the end
    return region


def test_mask_to_region_follows_the_packs_rule_over_random_masks(registry):
    rng = np.random.default_rng(5)
    checked = 0
    for case in range(160):
        batch, height, width = int(rng.integers(1, 4)), int(rng.integers(8, 40)), int(rng.integers(8, 40))
        masks = np.zeros((batch, height, width), np.float32)
        for m in masks:
            if rng.random() < 0.2:
                continue  # an empty mask
            for _ in range(int(rng.integers(1, 3))):  # boxes of at least 2 × 2 pixels
                y, x = int(rng.integers(0, height - 1)), int(rng.integers(0, width - 1))
                h, w = int(rng.integers(2, height - y + 1)), int(rng.integers(2, width - x + 1))
                m[y:y + h, x:x + w] = rng.uniform(0.05, 1.0, (h, w))
        settings = dict(padding=int(rng.integers(0, 6)), constraints=str(rng.choice(
            ["keep_ratio", "keep_ratio_divisible", "multiple_of", "ignore"])),
            constraint_x=int(rng.choice([2, 3, 4, 6, 8, 12, 16, 64])),
            constraint_y=int(rng.choice([2, 3, 4, 6, 8, 12, 16, 64])),
            min_width=int(rng.integers(0, width + 6)) * int(rng.random() < 0.5),
            min_height=int(rng.integers(0, height + 6)) * int(rng.random() < 0.5),
            batch_behavior=str(rng.choice(["match_ratio", "match_size"])))
        expected = region_by_the_packs_rule(masks, *settings.values())
        if expected is None:
            continue
        region = node(registry, "Mask To Region", mask=torch.from_numpy(masks), **settings)
        np.testing.assert_array_equal(region.numpy(), expected, err_msg=f"case {case}: {settings}")
        checked += 1
    assert checked > 140


def test_cut_by_mask_crops_the_box_and_resizes_bicubic(registry):
    image = rand(2, 20, 24, 3)
    mask = torch.zeros(2, 20, 24)
    mask[0, 3:9, 4:14] = 1  # 10 × 6
    mask[1, 10:14, 2:6] = 1  # 4 × 4
    out = node(registry, "Cut By Mask", image=image, mask=mask, force_resize_width=0, force_resize_height=0)
    assert out.shape == (2, 6, 10, 4)  # mask 1's cut, stretched to the largest box, has alpha outside its own
    assert torch.equal(out[0, ..., :3], image[0, 3:9, 4:14])
    rgba1 = torch.cat((image[1, 10:14, 2:6], torch.ones(4, 4, 1)), dim=2).permute(2, 0, 1)[None]
    expected = F.interpolate(rgba1, size=(6, 10), mode="bicubic").permute(0, 2, 3, 1)[0]
    torch.testing.assert_close(out[1], expected)
    forced = node(registry, "Cut By Mask", image=image, mask=mask[:1], force_resize_width=7, force_resize_height=5)
    crop = torch.cat((image[:, 3:9, 4:14], torch.ones(2, 6, 10, 1)), dim=3).permute(0, 3, 1, 2)
    expected = F.interpolate(crop, size=(5, 7), mode="bicubic").permute(0, 2, 3, 1)  # one mask for both images
    if expected[..., 3].min() == 1:  # RGB stays RGB only where every cut pixel stays exactly opaque
        expected = expected[..., :3]
    assert forced.shape == expected.shape
    torch.testing.assert_close(forced, expected)
    whole = torch.ones(1, 20, 24)  # the whole picture: no resizing, all opaque
    assert torch.equal(node(registry, "Cut By Mask", image=image, mask=whole, force_resize_width=0,
                            force_resize_height=0), image)
    soft = mask[:1] * 0.5
    cut = node(registry, "Cut By Mask", image=mask[:1], mask=soft, force_resize_width=0, force_resize_height=0)
    assert torch.equal(cut, torch.full((1, 6, 10), 0.5))  # a mask cut gives the cut's alpha: mask · soft


def test_cut_by_mask_names_the_input_that_makes_the_cut_too_big(registry):
    from graphflow.executor import Executor
    image, mask = rand(1, 32, 32, 3), torch.zeros(1, 32, 32)
    mask[0, 4:20, 4:20] = 1
    for width, height, name in ((0, 100000, "force_resize_height"), (100000, 0, "force_resize_width"),
                                (100000, 100000, "force_resize_width"), (20, 100000, "force_resize_height")):
        with pytest.raises(NodeInputError) as e:
            node(registry, "Cut By Mask", image=image, mask=mask, force_resize_width=width, force_resize_height=height)
        assert e.value.input == name and "outside 1..16384" in str(e.value), (width, height)
    # the server's max_pixels: a forced height of 100 (estimated 1 wide, so the graph is accepted)
    # on a box 64 wide gives 64×100 = 6400 pixels, over 5000: refused while running
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                          "color": 0xFFFFFF}},
             "2": {"class_type": "Cut By Mask", "inputs": {"image": ["1", 0], "mask": ["1", 0],
                                                           "force_resize_width": 0, "force_resize_height": 100}}}
    result = Executor(registry, limits=RunLimits(max_pixels=5000)).run(parse_workflow(graph, registry),
                                                                       outputs=["2"])
    assert result.status == "error" and result.error["input"] == "force_resize_height"
    assert "64×100" in result.error["message"] and "megapixels" in result.error["message"]
    result = Executor(registry, limits=RunLimits(max_pixels=6400)).run(parse_workflow(graph, registry),
                                                                       outputs=["2"])
    assert result.ok and result.values["2"][0].shape[:3] == (1, 100, 64)


def pack_components(mask):
    """The pack's labelling: every set pixel numbered 1 + its index in the batch, each then given the
    largest number of its 3×3 neighbourhood among the set pixels until nothing changes."""
    batch, height, width = mask.shape
    on = (mask > 0).unsqueeze(1)
    labels = (torch.arange(batch * height * width, dtype=torch.float64) + 1).reshape(batch, 1, height, width)
    labels[~on] = 0
    while True:
        grown = F.max_pool2d(labels, 3, stride=1, padding=1)
        grown[~on] = 0
        if torch.equal(grown, labels):
            break
        labels = grown
    labels = labels[:, 0]
    found = [v for v in torch.unique(labels).tolist() if v]
    images = [int((v - 1) // (height * width)) for v in found]
    pieces = torch.stack([torch.where(labels[i] == v, mask[i], 0.0) for v, i in zip(found, images)])
    return pieces, images


def test_separate_mask_components_as_the_packs_max_pool_labelling(registry):
    mask = (rand(3, 18, 22, seed=11) > 0.75).float() * rand(3, 18, 22, seed=12)
    mask[1] = 0  # an empty mask gives no pieces
    pieces, mapping = node(registry, "Separate Mask Components", mask=mask)
    expected, images = pack_components(mask)
    assert len(pieces) > 5
    assert torch.equal(pieces, expected) and mapping.tolist() == images and mapping.dtype == torch.int32


def test_separated_pieces_cut_and_paste_back_by_the_mapping(registry):
    image = rand(2, 16, 16, 3)
    mask = torch.zeros(2, 16, 16)
    mask[0, 1:4, 1:5] = 1
    mask[0, 9:13, 8:12] = 1
    mask[1, 5:9, 5:9] = 1
    pieces, mapping = node(registry, "Separate Mask Components", mask=mask)
    assert mapping.tolist() == [0, 0, 1]
    cut = node(registry, "Cut By Mask", image=image, mask=pieces, force_resize_width=0, force_resize_height=0,
               mask_mapping_optional=mapping)
    assert cut.shape == (3, 4, 4, 3)  # each piece fills its box: opaque, so RGB as the image
    assert torch.equal(cut[1, ..., :3], image[0, 9:13, 8:12]) and torch.equal(cut[2, ..., :3], image[1, 5:9, 5:9])
    base = torch.zeros(2, 16, 16, 3)
    pasted = node(registry, "Paste By Mask", image_base=base, image_to_paste=cut, mask=pieces,
                  resize_behavior="resize", mask_mapping_optional=mapping)
    expected = torch.zeros(2, 16, 16, 4)
    expected[..., 3] = 1
    for i, (y, x) in enumerate(((slice(9, 13), slice(8, 12)), (slice(5, 9), slice(5, 9)))):
        expected[i, y, x, :3] = image[i, y, x]
    expected[0, 1:4, 1:5, :3] = F.interpolate(cut[:1].permute(0, 3, 1, 2), size=(3, 4), mode="bicubic")[
        0, :3].permute(1, 2, 0)
    torch.testing.assert_close(pasted, expected)


def test_paste_by_mask_resize_behaviors(registry):
    base, paste = rand(1, 20, 30, 3), rand(1, 4, 8, 3, seed=2)
    mask = torch.zeros(1, 20, 30)
    mask[0, 6:12, 10:16] = 1  # 6 × 6, centre (12.5, 8.5)
    for behavior, (w, h) in {"resize": (6, 6), "keep_ratio_fit": (6, 3), "keep_ratio_fill": (12, 6),
                             "source_size": (8, 4), "source_size_unmasked": (8, 4)}.items():
        out = node(registry, "Paste By Mask", image_base=base, image_to_paste=paste, mask=mask,
                   resize_behavior=behavior)
        piece = paste.permute(0, 3, 1, 2)
        if (h, w) != (4, 8):
            piece = F.interpolate(piece, size=(h, w), mode="bicubic")
        piece = piece[0].permute(1, 2, 0)
        top, left = math.floor(8.5 - h / 2) + 1, math.floor(12.5 - w / 2) + 1
        inside = torch.zeros(20, 30, dtype=torch.bool)
        inside[top:top + h, left:left + w] = True
        if behavior not in ("keep_ratio_fill", "source_size_unmasked"):
            inside &= mask[0].bool()  # the mask limits the paste
        expected = torch.cat((base, torch.ones(1, 20, 30, 1)), dim=3)[0]
        placed = expected.clone()
        placed[top:top + h, left:left + w, :3] = piece
        expected[inside] = placed[inside]
        torch.testing.assert_close(out[0], expected, msg=behavior)


def test_mixing_masks_and_one_channel_images_by_a_mask(registry):
    a, b, mask = rand(2, 4, 5), rand(2, 4, 5, seed=1), rand(2, 4, 5, 3, seed=2)
    m = luma(mask)  # an RGB mask read as a mask
    torch.testing.assert_close(node(registry, "Mix Images By Mask", image1=a, image2=b, mask=mask),
                               a * (1 - m) + b * m)
    out = node(registry, "Mix Images By Mask", image1=a[..., None], image2=b[..., None], mask=mask)
    torch.testing.assert_close(out, (a * (1 - m) + b * m)[..., None])


def test_paste_by_mask_repeats_batches_that_divide_and_refuses_others(registry):
    base, paste = rand(1, 8, 8, 3), rand(2, 2, 2, 3, seed=1)
    mask = torch.zeros(1, 8, 8)
    mask[0, 2:4, 3:5] = 1
    out = node(registry, "Paste By Mask", image_base=base, image_to_paste=paste, mask=mask, resize_behavior="resize")
    assert out.shape == (2, 8, 8, 4)  # the base and mask repeated to the paste's batch
    for i in range(2):
        assert torch.equal(out[i, 2:4, 3:5, :3], paste[i]) and torch.equal(out[i, :2, :, :3], base[0, :2])
    with pytest.raises(NodeInputError) as e:
        node(registry, "Paste By Mask", image_base=rand(2, 8, 8, 3), image_to_paste=rand(3, 2, 2, 3), mask=mask,
             resize_behavior="resize")
    assert e.value.input == "image_base" and "divide" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        node(registry, "Paste By Mask", image_base=base, image_to_paste=paste, mask={"samples": base},
             resize_behavior="resize")
    assert e.value.input == "mask" and "mask batch" in str(e.value)


def test_paste_by_mask_refuses_a_huge_resize(registry):
    base, paste = torch.zeros(1, 64, 64, 3), torch.zeros(1, 1, 2000, 3)
    mask = torch.zeros(1, 64, 64)
    mask[0, :, 10:50] = 1  # 40 × 64: filling it with a 2000:1 strip is 128000 wide
    with pytest.raises(NodeInputError) as e:
        node(registry, "Paste By Mask", image_base=base, image_to_paste=paste, mask=mask,
             resize_behavior="keep_ratio_fill")
    assert e.value.input == "image_to_paste" and "128000" in str(e.value)


def test_separated_pieces_by_their_mapping_in_a_ui_save(registry):
    """Separate Mask Components' MASK_MAPPING linked into Cut By Mask, as the pack's examples do."""
    nodes = [
        ui_node(1, "EmptyImage", [32, 32, 1, 0x808080], outputs=[("IMAGE", "IMAGE", [1, 4])]),
        ui_node(2, "Create Rect Mask", ["pixels", "topleft", 2, 2, 5, 3, 64, 64],
                [("copy_image_size", "IMAGE", 1, False)], [("IMAGE", "IMAGE", [2])]),
        ui_node(4, "Combine Masks", ["union (max)", "yes", "no"], [("image1", "IMAGE", 2, False),
                                                                   ("image2", "IMAGE", 5, False)],
                [("IMAGE", "IMAGE", [6])]),
        ui_node(5, "Separate Mask Components", [], [("mask", "IMAGE", 6, False)],
                [("mask", "IMAGE", [7]), ("mask_mappings", "MASK_MAPPING", [8])]),
        ui_node(6, "Cut By Mask", [16, 16], [("image", "IMAGE", 4, False), ("mask", "IMAGE", 7, False),
                                             ("mask_mapping_optional", "MASK_MAPPING", 8, False)],
                [("IMAGE", "IMAGE", [])]),
        ui_node(7, "Constant Mask", [0.0, 32, 32], [("copy_image_size", "IMAGE", None, False)],
                [("IMAGE", "IMAGE", [5])]),  # empty: the union is the rectangle alone, one piece
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 4, 0, "IMAGE"], [4, 1, 0, 6, 0, "IMAGE"],
             [5, 7, 0, 4, 1, "IMAGE"], [6, 4, 0, 5, 0, "IMAGE"], [7, 5, 0, 6, 1, "IMAGE"],
             [8, 5, 1, 6, 2, "MASK_MAPPING"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, outputs=["1", "5", "6"])
    pieces, mapping = result.values["5"]
    assert pieces.shape == (1, 32, 32) and mapping.tolist() == [0]
    cut = result.values["6"][0]
    crop = result.values["1"][0][:, 2:6, 2:8].permute(0, 3, 1, 2)  # the 5 × 3 rectangle, ends included: 6 × 4
    expected = F.interpolate(torch.cat((crop, torch.ones(1, 1, 4, 6)), dim=1), size=(16, 16), mode="bicubic")
    expected = expected.permute(0, 2, 3, 1)
    torch.testing.assert_close(cut, expected[..., :3] if expected[..., 3].min() == 1 else expected)
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[6]["widgets_values"] == [16, 16] and saved[5]["type"] == "Separate Mask Components"


# -- sizes, channels, batches, colour ------------------------------------------------------


def test_sizes_channels_constants_pruning_and_batches(registry):
    image = rand(3, 5, 7, 3)
    assert node(registry, "Get Image Size", image=image) == (7, 5)
    assert node(registry, "Get Image Size", image=image[..., 0]) == (7, 5)
    assert torch.equal(node(registry, "Change Channel Count", image=image[..., 0], kind="RGBA"),
                       image[..., :1].expand(3, 5, 7, 4))
    rgba = node(registry, "Change Channel Count", image=image, kind="RGBA")
    assert torch.equal(rgba[..., :3], image) and rgba[..., 3].eq(1).all()
    torch.testing.assert_close(node(registry, "Change Channel Count", image=image, kind="mask"), luma(image))
    assert torch.equal(node(registry, "Change Channel Count", image=rgba, kind="RGB"), image)
    assert torch.equal(node(registry, "Constant Mask", value=-2.5, explicit_height=3, explicit_width=4),
                       torch.full((1, 3, 4), -2.5))
    assert node(registry, "Constant Mask", value=1.0, explicit_height=0, explicit_width=4).shape == (1, 16, 16)
    assert node(registry, "Constant Mask", value=1.0, explicit_height=3, explicit_width=4,
                copy_image_size=image).shape == (1, 5, 7)
    mask = torch.stack([torch.full((5, 7), 0.2), torch.full((5, 7), 0.5), torch.full((5, 7), 0.9)])
    assert torch.equal(node(registry, "Prune By Mask", image=image, mask=mask), image[1:])
    with pytest.raises(NodeInputError) as e:
        node(registry, "Prune By Mask", image=image, mask=mask[:2])
    assert e.value.input == "mask"
    batch = node(registry, "Make Image Batch", image1=image, image3=image[:1])
    assert torch.equal(batch, torch.cat((image, image[:1])))
    with pytest.raises(NodeInputError) as e:
        node(registry, "Make Image Batch", image1=image, image2=rand(1, 5, 8, 3))
    assert e.value.input == "image2"


def test_convert_color_space_against_colorsys(registry):
    rgb = rand(1, 6, 6, 3, seed=21)
    rgb[0, 0, 0] = torch.tensor([0.5, 0.5, 0.5])  # grey: hue and saturation 0
    rgb[0, 0, 1] = torch.tensor([0.9, 0.9, 0.2])  # red and green tie as the largest
    pixels = rgb.reshape(-1, 3).tolist()
    hsv = node(registry, "Convert Color Space", in_space="RGB", out_space="HSV", image=rgb)
    np.testing.assert_allclose(hsv.reshape(-1, 3).numpy(), [colorsys.rgb_to_hsv(*p) for p in pixels], atol=1e-5)
    hsl = node(registry, "Convert Color Space", in_space="RGB", out_space="HSL", image=rgb)
    hls = [colorsys.rgb_to_hls(*p) for p in pixels]
    np.testing.assert_allclose(hsl.reshape(-1, 3).numpy(), [(h, s, l) for h, l, s in hls], atol=1e-5)
    back = node(registry, "Convert Color Space", in_space="HSL", out_space="RGB", image=hsl)
    torch.testing.assert_close(back, rgb, atol=1e-5, rtol=0)
    back = node(registry, "Convert Color Space", in_space="HSV", out_space="HSL", image=hsv)
    torch.testing.assert_close(back, hsl, atol=1e-5, rtol=0)
    mask = rgb[..., 0]  # the same space in and out: the input as it is, a mask too
    assert torch.equal(node(registry, "Convert Color Space", in_space="HSV", out_space="HSV", image=mask), mask)


def test_incrementer_cycles_and_reads_the_seed_control_widget(registry):
    assert node(registry, "MasqueradeIncrementer", seed=7, max_value=3) == 1
    assert node(registry, "MasqueradeIncrementer", seed=-1, max_value=5) == 4
    graph = ui_graph([ui_node(1, "MasqueradeIncrementer", [11, "increment", 4], outputs=[("INT", "INT", [])])])
    result = run_graph(registry, graph, outputs=["1"])
    assert result.values["1"][0] == 3
    saved = export_ui(parse_workflow(graph, registry), registry)["nodes"][0]
    assert saved["type"] == "MasqueradeIncrementer" and saved["widgets_values"] == [11, "increment", 4]


def test_pack_classes_are_named_whole(registry):
    for name in ("Blur", "Get Image Size", "Mask By Text", "Create QR Code", "Combine Masks"):
        assert custom_pack(name) == "masquerade-nodes-comfyui"
    assert custom_pack("Blur Image") is None and custom_pack("Get Image Size+") == "ComfyUI_essentials"


# -- estimates ---------------------------------------------------------------------------------


def refused(registry, nodes, limits):
    graph = {str(i + 1): n for i, n in enumerate(nodes)}
    graph[str(len(graph) + 1)] = {"type": "PreviewImage", "inputs": {"images": [str(len(graph)), 0]}}
    return {p.node_id for p in validate(parse_workflow({"nodes": graph}), registry, limits=limits)}


def test_sizes_from_numbers_are_estimated_so_limits_refuse_a_huge_one(registry):
    rect, constant, cut = (registry.comfy_node(c) for c in ("Create Rect Mask", "Constant Mask", "Cut By Mask"))
    assert rect.estimate({"image_width": 640, "image_height": 320}, {}).size == Size(1, 320, 640)
    assert rect.estimate({"image_width": 640, "image_height": 320}, {"copy_image_size": Size(4, 30, 20)}).size \
        == Size(1, 30, 20)
    assert constant.estimate({"explicit_width": 0, "explicit_height": 9}, {}).size == Size(1, 16, 16)
    assert cut.estimate({"force_resize_width": 300, "force_resize_height": 0}, {"image": Size(2, 64, 64)}).size \
        == Size(2, 1, 300)
    batch, region = registry.comfy_node("Make Image Batch"), registry.comfy_node("Mask To Region")
    assert batch.estimate({}, {"image1": Size(2, 8, 9), "image4": Size(3, 8, 9)}).size == Size(5, 8, 9)
    assert region.estimate({"constraint_x": 10**6, "min_width": 10**6}, {"mask": Size(2, 8, 9)}).size \
        == Size(2, 8, 9)  # the region is drawn inside the mask whatever the numbers
    limits = RunLimits(max_pixels=4096 * 4096)
    huge = {"type": rect.node_type, "inputs": {"image_width": 65536, "image_height": 65536}}
    assert refused(registry, [huge], limits) == {"1"}
    huge = {"type": constant.node_type, "inputs": {"explicit_width": 100000, "explicit_height": 100000}}
    assert refused(registry, [huge], limits) == {"1"}
    small = {"type": constant.node_type, "inputs": {"explicit_width": 100000, "explicit_height": 0}}
    assert refused(registry, [small], limits) == set()
    image = {"type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    huge = {"type": cut.node_type, "inputs": {"image": ["1", 0], "mask": ["1", 0], "force_resize_width": 100000,
                                               "force_resize_height": 100000}}
    assert refused(registry, [image, huge], limits) == {"2"}


# -- the pack's classes in ComfyUI graphs: crop, edit, paste back --------------------------------


def chain_expected(picture):
    """The chain's result worked out directly: the rectangle x 16..36, y 8..20 (Create Rect Mask's
    20 × 12 from (16, 8), ends included) painted red; its region with padding 2 is x 14..38, y 6..22;
    that piece inverted and pasted back where it was (same size: no resizing); RGBA out."""
    mixed = picture.clone()
    mixed[:, 8:21, 16:37] = torch.tensor([1.0, 0.0, 0.0])
    out = torch.cat((mixed, torch.ones(*mixed.shape[:3], 1)), dim=3)
    out[:, 6:23, 14:39, :3] = 1.0 - mixed[:, 6:23, 14:39]
    return out


CHAIN_API = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0x3366CC}},
    "2": {"class_type": "Create Rect Mask", "inputs": {"mode": "pixels", "origin": "topleft", "x": 16, "y": 8,
                                                       "width": 20, "height": 12, "image_width": 512,
                                                       "image_height": 512, "copy_image_size": ["1", 0]}},
    "3": {"class_type": "Mix Color By Mask", "inputs": {"image": ["1", 0], "r": 255, "g": 0, "b": 0,
                                                        "mask": ["2", 0]}},
    "4": {"class_type": "Mask To Region", "inputs": {"mask": ["2", 0], "padding": 2, "constraints": "ignore",
                                                     "constraint_x": 64, "constraint_y": 64, "min_width": 0,
                                                     "min_height": 0, "batch_behavior": "match_ratio"}},
    "5": {"class_type": "Cut By Mask", "inputs": {"image": ["3", 0], "mask": ["4", 0], "force_resize_width": 0,
                                                  "force_resize_height": 0}},
    "6": {"class_type": "Unary Image Op", "inputs": {"image": ["5", 0], "op": "invert"}},
    "7": {"class_type": "Paste By Mask", "inputs": {"image_base": ["3", 0], "image_to_paste": ["6", 0],
                                                    "mask": ["4", 0], "resize_behavior": "resize"}},
    "8": {"class_type": "Get Image Size", "inputs": {"image": ["5", 0]}},
}


def test_crop_edit_paste_chain_from_an_api_prompt(registry):
    result = run_graph(registry, CHAIN_API, outputs=["1", "7", "8"])
    picture = result.values["1"][0]
    torch.testing.assert_close(result.values["7"][0], chain_expected(picture))
    assert tuple(result.values["8"]) == (25, 17)
    api = export_api(parse_workflow(CHAIN_API, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in CHAIN_API.items()}
    for node_id, entry in CHAIN_API.items():
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_crop_edit_paste_chain_from_a_ui_save(registry):
    nodes = [
        ui_node(1, "EmptyImage", [64, 48, 1, 0x3366CC], outputs=[("IMAGE", "IMAGE", [1, 2])]),
        ui_node(2, "Create Rect Mask", ["pixels", "topleft", 16, 8, 20, 12, 512, 512],
                [("copy_image_size", "IMAGE", 1, False)], [("IMAGE", "IMAGE", [4, 5])]),
        ui_node(3, "Mix Color By Mask", [255, 0, 0], [("image", "IMAGE", 2, False), ("mask", "IMAGE", 4, False)],
                [("IMAGE", "IMAGE", [6, 7])]),
        ui_node(4, "Mask To Region", [2, "ignore", 64, 64, 0, 0, "match_ratio"], [("mask", "IMAGE", 5, False)],
                [("IMAGE", "IMAGE", [8, 9])]),
        ui_node(5, "Cut By Mask", [0, 0], [("image", "IMAGE", 6, False), ("mask", "IMAGE", 8, False),
                                           ("mask_mapping_optional", "MASK_MAPPING", None, False)],
                [("IMAGE", "IMAGE", [10])]),
        ui_node(6, "Unary Image Op", ["invert"], [("image", "IMAGE", 10, False)], [("IMAGE", "IMAGE", [11])]),
        ui_node(7, "Paste By Mask", ["resize"], [("image_base", "IMAGE", 7, False),
                                                 ("image_to_paste", "IMAGE", 11, False), ("mask", "IMAGE", 9, False),
                                                 ("mask_mapping_optional", "MASK_MAPPING", None, False)],
                [("IMAGE", "IMAGE", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 3, 0, "IMAGE"], [4, 2, 0, 3, 1, "IMAGE"], [5, 2, 0, 4, 0, "IMAGE"],
             [6, 3, 0, 5, 0, "IMAGE"], [7, 3, 0, 7, 0, "IMAGE"],
             [8, 4, 0, 5, 1, "IMAGE"], [9, 4, 0, 7, 2, "IMAGE"], [10, 5, 0, 6, 0, "IMAGE"], [11, 6, 0, 7, 1, "IMAGE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, outputs=["1", "7"])
    torch.testing.assert_close(result.values["7"][0], chain_expected(result.values["1"][0]))
    workflow = parse_workflow(graph, registry)
    saved = {n["id"]: n for n in json.loads(json.dumps(export_ui(workflow, registry)))["nodes"]}
    for original in nodes:
        assert saved[original["id"]]["type"] == original["type"]
        assert saved[original["id"]]["widgets_values"] == original["widgets_values"], original["type"]


def test_a_mask_batch_on_an_image_socket_previews_and_saves_as_grey(registry, tmp_folders):
    """Mask Morphology gives a mask batch [B, H, W] on its IMAGE socket; PreviewImage and SaveImage
    write each mask as a grey picture, as ComfyUI's Image.fromarray makes a 2-D array."""
    from PIL import Image
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 9, "height": 7, "batch_size": 2,
                                                          "color": 0x4080C0}},
             "2": {"class_type": "Mask Morphology", "inputs": {"image": ["1", 0], "distance": 1, "op": "dilate"}},
             "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
             "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "masq"}}}
    result = run_graph(registry, graph, outputs=["2", "3", "4"])
    masks = result.values["2"][0]
    assert masks.shape == (2, 7, 9)
    levels = np.clip(masks.numpy() * 255.0, 0, 255).astype(np.uint8)  # ComfyUI's savers' 8 bits
    for node_id, folder in (("3", tmp_folders.temp), ("4", tmp_folders.outputs)):
        shown = result.outputs[node_id]["images"]
        assert len(shown) == 2
        for picture, expected in zip(shown, levels):
            with Image.open(folder / picture["subfolder"] / picture["filename"]) as saved:
                assert saved.mode == "L"
                np.testing.assert_array_equal(np.asarray(saved), expected)


def dotted_picture(folder, size):
    """A black picture with a white dot on every other pixel each way: (size / 2)² pieces."""
    from PIL import Image
    dots = np.zeros((size, size), np.uint8)
    dots[::2, ::2] = 255
    Image.fromarray(dots, "L").convert("RGB").save(folder / "dots.png")
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "dots.png"}},
            "2": {"class_type": "Separate Mask Components", "inputs": {"mask": ["1", 0]}}}


def test_separate_mask_components_refuses_too_many_pieces_before_making_them(registry, tmp_folders):
    from graphflow.executor import Executor
    graph = parse_workflow(dotted_picture(tmp_folders.inputs, 32), registry)  # 256 pieces of 32×32
    result = Executor(registry, limits=RunLimits(max_batch=64)).run(graph, outputs=["2"])
    assert result.status == "error" and result.error["input"] == "mask"
    assert "256 pieces" in result.error["message"] and "(64)" in result.error["message"]
    # 256 masks of 32×32 float32 are 1 MiB: refused where the run may use less memory
    result = Executor(registry, limits=RunLimits(max_batch=1000, ram_bytes=2**20 - 1)).run(graph, outputs=["2"])
    assert result.status == "error" and result.error["input"] == "mask"
    assert "256 pieces of 32×32" in result.error["message"]
    result = Executor(registry, limits=RunLimits(max_batch=256, ram_bytes=2**20)).run(graph, outputs=["1", "2"])
    assert result.ok, result.error
    pieces, mapping = result.values["2"]
    assert pieces.shape == (256, 32, 32) and mapping.tolist() == [0] * 256
    expected, _ = pack_components(luma(result.values["1"][0]))  # the RGB picture read as a mask
    assert torch.equal(pieces, expected)
