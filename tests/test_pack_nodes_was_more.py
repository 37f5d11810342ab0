"""WAS Node Suite's region masks (nodes/pack_nodes_was_more.py) against the pack's recipe redone
here with Pillow, scipy.ndimage and skimage.measure (the libraries it calls), with the pack's
pil2mask (1 - level / 255) applied; read from a UI save and an API prompt under the pack's class
names, and exported back."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def blobs(seed: int, size=(40, 48)) -> torch.Tensor:
    """A grey mask of scattered blobs of several sizes and levels."""
    rng = np.random.default_rng(seed)
    levels = np.zeros(size, dtype=np.float32)
    for _ in range(6):
        y, x = rng.integers(0, size[0] - 8), rng.integers(0, size[1] - 8)
        h, w = rng.integers(1, 9), rng.integers(1, 9)
        levels[y:y + h, x:x + w] = rng.uniform(0.3, 1.0)
    return torch.from_numpy(levels)


MASKS = torch.stack([blobs(1), blobs(2), blobs(3)])


def pictures(masks):
    return [Image.fromarray(np.clip(255.0 * m.numpy(), 0, 255).astype(np.uint8)) for m in masks]


def pil2mask(picture) -> torch.Tensor:
    """The pack's pil2mask."""
    return 1.0 - torch.from_numpy(np.array(picture.convert("L")).astype(np.float32) / 255.0)


def binary(picture, threshold):
    return np.array(picture.point(lambda x: 255 if x > threshold else 0, mode="1"))


def region_picture(region):
    return Image.fromarray(region.astype(np.uint8) * 255, mode="L")


def test_dominant_region_is_the_largest_inverted_region(registry):
    from scipy.ndimage import label
    got = call(registry, "WasMaskDominantRegion", masks=MASKS, threshold=100)
    assert got.shape == MASKS.shape
    for mask, picture in zip(got, pictures(MASKS)):
        labels, _ = label(binary(ImageOps.invert(picture), 100))
        sizes = np.bincount(labels.flatten())
        assert torch.equal(mask, pil2mask(region_picture(labels == np.argmax(sizes[1:]) + 1)))
    # a white square on black: the black surround is the largest region, so the square is 1
    square = torch.zeros(1, 20, 20)
    square[0, 5:10, 5:10] = 1.0
    assert torch.equal(call(registry, "WasMaskDominantRegion", masks=square), square)
    # nothing dark enough: the pack's background label covers the whole picture
    assert torch.equal(call(registry, "WasMaskDominantRegion", masks=torch.ones(1, 8, 8)), torch.zeros(1, 8, 8))


def test_minority_region_is_the_smallest_region(registry):
    from scipy.ndimage import label
    got = call(registry, "WasMaskMinorityRegion", masks=MASKS, threshold=90)
    for mask, picture in zip(got, pictures(MASKS)):
        labels, _ = label(binary(picture, 90))
        sizes = np.bincount(labels.flatten())
        assert torch.equal(mask, pil2mask(region_picture(labels == np.argmin(sizes[1:]) + 1)))
    two = torch.zeros(1, 20, 20)
    two[0, 1:3, 1:3] = 1.0  # 4 pixels, the smallest
    two[0, 10:15, 10:15] = 1.0
    want = torch.ones(1, 20, 20)
    want[0, 1:3, 1:3] = 0.0
    assert torch.equal(call(registry, "WasMaskMinorityRegion", masks=two), want)
    assert torch.equal(call(registry, "WasMaskMinorityRegion", masks=torch.zeros(1, 6, 6)), torch.zeros(1, 6, 6))


@pytest.mark.parametrize("size", [1, 40, 150, 4096])
def test_arbitrary_region_against_skimage(registry, size):
    from skimage.measure import label, regionprops
    got = call(registry, "WasMaskArbitraryRegion", masks=MASKS, size=size, threshold=60)
    for mask, picture in zip(got, pictures(MASKS)):
        bits = binary(picture, 60)
        labels = label(bits)
        big = sorted((r for r in regionprops(labels) if r.area >= size * bits.size / 10000), key=lambda r: r.area)
        want = pil2mask(region_picture(labels == big[0].label)) if big else pil2mask(picture)
        assert torch.allclose(mask, want, atol=1e-6)
    # diagonal neighbours join (skimage's 8-connectivity): two touching corners are one region of 2
    corners = torch.zeros(1, 10, 10)
    corners[0, 2, 2] = corners[0, 3, 3] = 1.0
    assert call(registry, "WasMaskArbitraryRegion", masks=corners, size=20)[0, 3, 3] == 0


def test_smooth_region_against_scipy(registry):
    from scipy.ndimage import gaussian_filter
    for sigma in (0.0, 1.5, 5.0):
        got = call(registry, "WasMaskSmoothRegion", masks=MASKS, sigma=sigma)
        for mask, picture in zip(got, pictures(MASKS)):
            smoothed = gaussian_filter(np.array(picture), sigma=sigma)
            made = Image.fromarray(np.where(smoothed >= np.max(smoothed) / 2, 255, 0).astype(np.uint8), mode="L")
            assert torch.equal(mask, pil2mask(ImageOps.invert(made.convert("RGB"))))
    # the pack's quirk: all black is at least half of its highest (0) everywhere
    assert torch.equal(call(registry, "WasMaskSmoothRegion", masks=torch.zeros(1, 5, 5)), torch.ones(1, 5, 5))


@pytest.mark.parametrize("sigma", [0.0, 1e-16, 0.7, 3.0, 40.0])
def test_smooth_region_blurs_in_strips_as_gaussian_filter_does(sigma):
    # strips of 3 lines cut every pass many times; sigma 40 reaches past the 19 x 26 picture
    from scipy.ndimage import gaussian_filter

    from nodes.pack_nodes_was_more import gaussian_in_strips
    level = np.random.default_rng(7).integers(0, 256, (19, 26)).astype(np.uint8)
    got = gaussian_in_strips(level, sigma, strip=3)
    assert got.dtype == np.uint8 and np.array_equal(got, gaussian_filter(level, sigma=sigma))


def test_smooth_region_checks_for_an_interrupt_between_strips(registry, monkeypatch):
    import nodes.pack_nodes_was_more as module
    from graphflow.api import Interrupted
    checks = []

    def interrupt_at_the_third():
        checks.append(1)
        if len(checks) == 3:
            raise Interrupted("stop")
    monkeypatch.setattr(module, "check_interrupted", interrupt_at_the_third)
    monkeypatch.setattr(module, "BLUR_STRIP", 8)
    with pytest.raises(Interrupted):
        call(registry, "WasMaskSmoothRegion", masks=torch.rand(1, 40, 40), sigma=128.0)
    assert len(checks) == 3


def test_the_module_help_leaves_out_no_node_it_builds(registry):
    import nodes.pack_nodes_was_more as module
    left_out = module.__doc__.split("Left out here")[1]
    built = [cls.comfy.class_types[0] for cls in vars(module).values()
             if isinstance(cls, type) and cls.__module__ == module.__name__ and getattr(cls, "comfy", None)]
    assert len(built) == 9
    assert [name for name in built if name in left_out] == []


def test_a_single_mask_and_bad_masks(registry):
    one = call(registry, "WasMaskMinorityRegion", masks=MASKS[0])
    assert torch.equal(one, call(registry, "WasMaskMinorityRegion", masks=MASKS[:1]))
    for node in ("WasMaskDominantRegion", "WasMaskMinorityRegion", "WasMaskArbitraryRegion", "WasMaskSmoothRegion"):
        with pytest.raises(NodeInputError, match="mask batch") as caught:
            call(registry, node, masks=torch.zeros(1, 1, 4, 4))
        assert caught.value.input == "masks"


def test_region_masks_in_a_ui_save(registry):
    link = lambda id, src, dst, slot: [id, src, 0, dst, slot, "MASK"]  # noqa: E731
    nodes = [ui_node(1, "SolidMask", [1.0, 16, 16], outputs=[("MASK", "MASK", [1, 2])]),
             ui_node(2, "Mask Dominant Region", [200], inputs=[("masks", "MASK", 1, False)],
                     outputs=[("MASKS", "MASK", [3])]),
             ui_node(3, "Mask Smooth Region", [2.5], inputs=[("masks", "MASK", 2, False)],
                     outputs=[("MASKS", "MASK", [])]),
             ui_node(4, "Mask Arbitrary Region", [10, 50], inputs=[("masks", "MASK", 3, False)],
                     outputs=[("MASKS", "MASK", [])])]
    graph = ui_graph(nodes, [link(1, 1, 2, 0), link(2, 1, 3, 0), link(3, 2, 4, 0)])
    values = run_graph(registry, graph, ["3", "4"]).values
    assert torch.equal(values["3"][0], torch.ones(1, 16, 16))
    # all white: no region is dark enough for Dominant (all 0), so none is lit for Arbitrary: inverted, all 1
    assert torch.equal(values["4"][0], torch.ones(1, 16, 16))
    workflow = parse_workflow(graph, registry)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2] == [200] and saved[3] == [2.5] and saved[4] == [10, 50]
    again = export_api(parse_workflow(export_api(workflow, registry), registry), registry)
    assert again["4"]["class_type"] == "Mask Arbitrary Region"
    assert again["4"]["inputs"]["size"] == 10 and again["4"]["inputs"]["threshold"] == 50


def test_region_masks_in_an_api_prompt(registry):
    graph = {"1": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 12, "height": 12}},
             "2": {"class_type": "Mask Minority Region", "inputs": {"masks": ["1", 0], "threshold": 10}},
             "3": {"class_type": "Mask Smooth Region", "inputs": {"masks": ["2", 0], "sigma": 1.0}}}
    values = run_graph(registry, graph, ["2", "3"]).values
    assert torch.equal(values["2"][0], torch.zeros(1, 12, 12))
    assert torch.equal(values["3"][0], torch.ones(1, 12, 12))
    exported = export_api(parse_workflow(graph, registry), registry)
    assert exported["2"] == {"class_type": "Mask Minority Region", "inputs": {"masks": ["1", 0], "threshold": 10}}
    assert exported["3"]["inputs"]["sigma"] == 1.0


def pack_crop(picture, padding):
    """The pack's crop_region, with Pillow's getbbox and crop."""
    bbox = picture.getbbox()
    if bbox is None:
        return picture, (picture.size, (0, 0, 0, 0))
    side = max(bbox[2] - bbox[0], bbox[3] - bbox[1]) + 2 * padding
    x = max((bbox[2] + bbox[0]) // 2 - side // 2, 0)
    y = max((bbox[3] + bbox[1]) // 2 - side // 2, 0)
    box = (x, y, min(x + side, picture.width), min(y + side, picture.height))
    cut = picture.crop(box)
    return cut, (cut.size, box)


@pytest.mark.parametrize("index, padding", [(0, 0), (1, 3), (2, 24), (0, 4096)])
def test_mask_crop_region_against_pillow(registry, index, padding):
    cut, crop_data = pack_crop(pictures(MASKS)[index], padding)
    got = call(registry, "WasMaskCropRegion", mask=MASKS[index:index + 1], padding=padding, region_type="minority")
    # the pack: pil2mask of the inverted cut, so the cut's levels / 255
    assert torch.allclose(got[0], pil2mask(ImageOps.invert(cut))[None], atol=1e-6)
    (width, height), (left, top, right, bottom) = crop_data
    assert got[1] == crop_data and got[2:] == (top, left, right, bottom, width, height)


def test_mask_crop_region_edges_and_errors(registry):
    dot = torch.zeros(1, 30, 30)
    dot[0, 10:14, 12:14] = 0.5  # a 2 x 4 box: a square of 4 + 2 x 2 = 8 about (13, 12)
    got = call(registry, "WasMaskCropRegion", mask=dot, padding=2)
    assert got[1] == ((8, 8), (9, 8, 17, 16))
    assert torch.equal(got[0], dot[:, 8:16, 9:17].mul(255).floor().div(255))  # the pack's 8-bit levels
    blank = call(registry, "WasMaskCropRegion", mask=torch.zeros(1, 6, 7))
    assert blank[1] == ((7, 6), (0, 0, 0, 0)) and torch.equal(blank[0], torch.zeros(1, 6, 7))
    with pytest.raises(NodeInputError, match="one mask") as caught:
        call(registry, "WasMaskCropRegion", mask=MASKS)
    assert caught.value.input == "mask"


def test_mask_crop_region_feeds_image_paste_crop_in_an_api_prompt(registry):
    graph = {"1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 16, "height": 16}},
             "2": {"class_type": "Mask Crop Region", "inputs": {"mask": ["1", 0], "padding": 0,
                                                                "region_type": "dominant"}},
             "3": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
             "4": {"class_type": "Image Paste Crop", "inputs": {"image": ["3", 0], "crop_image": ["3", 0],
                                                                "crop_data": ["2", 1], "crop_blending": 0.25,
                                                                "crop_sharpening": 0}}}
    values = run_graph(registry, graph, ["2", "4"]).values
    assert values["2"][1] == ((16, 16), (0, 0, 16, 16)) and values["2"][6:] == (16, 16)
    assert values["4"][0].shape == (1, 16, 16, 3)
    exported = export_api(parse_workflow(graph, registry), registry)
    assert exported["2"] == graph["2"]


def lingrad(size, direction, white_ratio):
    """The pack's ramp, drawn line by line with ImageDraw as it does."""
    from PIL import ImageDraw
    picture = Image.new("RGB", size)
    draw = ImageDraw.Draw(picture)
    length = size[1] if direction == "vertical" else size[0]
    black_end = int(length * (1 - white_ratio))
    for i in range(length):
        value = 0 if i <= black_end else int((i - black_end) / (length - black_end) * 255)
        line = [(0, i), (size[0], i)] if direction == "vertical" else [(i, 0), (i, size[1])]
        draw.line(line, fill=(value, value, value))
    return picture.convert("L")


def pack_paste(mask, crop, crop_data, blend, sharpen):
    """The pack's Mask Paste Region on one mask, with Pillow, then its pil2mask of both results."""
    from PIL import ImageChops, ImageFilter
    size, (left, top, right, bottom) = crop_data
    crop = crop.resize(size)
    for _ in range(sharpen):
        crop = crop.filter(ImageFilter.SHARPEN)
    image = Image.new("RGBA", mask.size, (0, 0, 0, 255))
    image.paste(mask, (0, 0))
    padded = Image.new("RGBA", mask.size, (0, 0, 0, 0))
    padded.paste(crop, (left, top))
    fade = Image.new("L", crop.size, 0)
    if top > 0:
        fade = ImageChops.screen(fade, ImageOps.flip(lingrad(crop.size, "vertical", blend)))
    if left > 0:
        fade = ImageChops.screen(fade, ImageOps.mirror(lingrad(crop.size, "horizontal", blend)))
    if right < mask.width:
        fade = ImageChops.screen(fade, lingrad(crop.size, "horizontal", blend))
    if bottom < mask.height:
        fade = ImageChops.screen(fade, lingrad(crop.size, "vertical", blend))
    blend_mask = Image.new("L", mask.size, 0)
    blend_mask.paste(ImageOps.invert(fade), (left, top))
    image.paste(padded, (0, 0), blend_mask)
    return (pil2mask(ImageOps.invert(image.convert("RGB")).convert("L")),
            pil2mask(ImageOps.invert(blend_mask.convert("RGB")).convert("L")))


@pytest.mark.parametrize("crop_data, blend, sharpen", [(((10, 12), (5, 6, 15, 18)), 0.25, 0),
                                                       (((20, 14), (0, 0, 20, 14)), 0.6, 2),
                                                       (((16, 16), (32, 24, 48, 40)), 1.0, 1)])
def test_mask_paste_region_against_the_packs_recipe(registry, crop_data, blend, sharpen):
    crop = blobs(7, size=(9, 11))[None]
    got = call(registry, "WasMaskPasteRegion", mask=MASKS, crop_mask=crop, crop_data=crop_data, crop_blending=blend,
               crop_sharpening=sharpen)
    for i, picture in enumerate(pictures(MASKS)):
        pasted, used = pack_paste(picture, pictures(crop)[0], crop_data, blend, sharpen)
        assert torch.allclose(got[0][i], pasted, atol=1e-6) and torch.allclose(got[1][i], used, atol=1e-6)


def test_mask_paste_region_errors(registry):
    with pytest.raises(NodeInputError, match="Mask Crop Region") as caught:
        call(registry, "WasMaskPasteRegion", mask=MASKS, crop_mask=MASKS, crop_data=False)
    assert caught.value.input == "crop_data"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasMaskPasteRegion", mask=MASKS, crop_mask=MASKS[:2], crop_data=((4, 4), (0, 0, 4, 4)))
    assert caught.value.input == "crop_mask"


def test_crop_and_paste_region_in_a_ui_save(registry):
    nodes = [ui_node(1, "SolidMask", [0.0, 24, 20], outputs=[("MASK", "MASK", [1, 2])]),
             ui_node(2, "Mask Crop Region", [2, "dominant"], inputs=[("mask", "MASK", 1, False)],
                     outputs=[("cropped_mask", "MASK", [3]), ("crop_data", "CROP_DATA", [4])]),
             ui_node(3, "Mask Invert", [], inputs=[("masks", "MASK", 3, False)], outputs=[("MASKS", "MASK", [5])]),
             ui_node(4, "Mask Paste Region", [0.5, 1],
                     inputs=[("mask", "MASK", 2, False), ("crop_mask", "MASK", 5, False),
                             ("crop_data", "CROP_DATA", 4, False)],
                     outputs=[("MASK", "MASK", []), ("MASK", "MASK", [])])]
    links = [[1, 1, 0, 2, 0, "MASK"], [2, 1, 0, 4, 0, "MASK"], [3, 2, 0, 3, 0, "MASK"], [4, 2, 1, 4, 2, "CROP_DATA"],
             [5, 3, 0, 4, 1, "MASK"]]
    graph = ui_graph(nodes, links)
    values = run_graph(registry, graph, ["4"]).values
    # an all-black mask: the whole mask is "cut" with the box (0, 0, 0, 0), inverted to white and pasted back at
    # (0, 0); its right and bottom count as inside the mask (0 < 24, 0 < 20), so they fade, as in the pack
    want = pack_paste(Image.new("L", (24, 20), 0), Image.new("L", (24, 20), 255), ((24, 20), (0, 0, 0, 0)), 0.5, 1)
    assert torch.allclose(values["4"][0][0], want[0], atol=1e-6)
    assert torch.allclose(values["4"][1][0], want[1], atol=1e-6)
    assert values["4"][0][0, 0, 0] == 1 and values["4"][0][0, -1, -1] < 0.1
    workflow = parse_workflow(graph, registry)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2] == [2, "dominant"] and saved[4] == [0.5, 1]
    again = export_api(parse_workflow(export_api(workflow, registry), registry), registry)
    assert again["4"]["inputs"]["crop_data"] == ["2", 1] and again["4"]["class_type"] == "Mask Paste Region"


IMAGES = torch.rand(2, 20, 24, 3, generator=torch.Generator().manual_seed(3))


def image_pictures(images):
    return [Image.fromarray(np.clip(255.0 * i.numpy(), 0, 255).astype(np.uint8)) for i in images]


def test_gradient_map_picks_the_gradients_colour_by_grey_level(registry):
    # a 256-wide gradient is taken as it is: the colour at column L of its top row
    ramp = torch.rand(1, 4, 256, 3, generator=torch.Generator().manual_seed(4))
    row = np.asarray(image_pictures(ramp)[0])[0]
    for flip in ("false", "true"):
        got = call(registry, "WasImageGradientMap", image=IMAGES, gradient_image=ramp, flip_left_right=flip)
        for image, picture in zip(got, image_pictures(IMAGES)):
            grey = np.asarray(picture.convert("L"))
            colours = (row[::-1] if flip == "true" else row)[grey]
            assert torch.equal(image, torch.from_numpy(colours.astype(np.float32) / 255))


def later_gradient_map(picture, gradient, reverse):
    """The pack's WAS_Tools_Class.gradient_map in its later source (the documentation mirror's,
    "Version 2 optimized based on Mark Setchell's ideas"), step by step: the gradient mirrored
    if reverse, the grey of Pillow's "L", the gradient resized to 256 x 256 by cv2.resize, its
    top row as the (256, 1, 3) table of cv2.applyColorMap."""
    import cv2
    if reverse:
        gradient = gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    grey = np.array(picture.convert("L"))
    table = cv2.resize(np.array(gradient.convert("RGB")), (256, 256))[0, :, :].reshape((256, 1, 3)).astype(np.uint8)
    return Image.fromarray(cv2.applyColorMap(grey, table))


@pytest.mark.parametrize("gradient_size, flip", [((7, 30), "false"), ((7, 30), "true"), ((300, 4), "true"),
                                                 ((3, 700), "false")])
def test_gradient_map_against_the_later_sources_recipe(registry, gradient_size, flip):
    gradient = torch.rand(2, *gradient_size, 3, generator=torch.Generator().manual_seed(6))
    got = call(registry, "WasImageGradientMap", image=IMAGES, gradient_image=gradient, flip_left_right=flip)
    for i, picture in enumerate(image_pictures(IMAGES)):
        want = later_gradient_map(picture, image_pictures(gradient)[i], flip == "true")
        assert torch.equal(got[i], as_tensor(want))


def test_gradient_map_errors(registry):
    gradient = torch.rand(2, 7, 30, 3, generator=torch.Generator().manual_seed(6))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageGradientMap", image=IMAGES, gradient_image=torch.rand(3, 4, 4, 3))
    assert caught.value.input == "gradient_image"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageGradientMap", image=IMAGES[0], gradient_image=gradient)
    assert caught.value.input == "image"


def test_gradient_map_in_a_ui_save_and_api_prompt(registry):
    nodes = [ui_node(1, "EmptyImage", [8, 8, 1, 0x808080], outputs=[("IMAGE", "IMAGE", [1, 2])]),
             ui_node(2, "Image Gradient Map", ["true"],
                     inputs=[("image", "IMAGE", 1, False), ("gradient_image", "IMAGE", 2, False)],
                     outputs=[("IMAGE", "IMAGE", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 2, 1, "IMAGE"]])
    values = run_graph(registry, graph, ["2"]).values
    assert torch.allclose(values["2"][0], torch.full((1, 8, 8, 3), 128 / 255), atol=1e-6)
    workflow = parse_workflow(graph, registry)
    assert export_ui(workflow, registry)["nodes"][1]["widgets_values"] == ["true"]
    prompt = export_api(workflow, registry)
    assert prompt["2"] == {"class_type": "Image Gradient Map",
                           "inputs": {"image": ["1", 0], "gradient_image": ["1", 0], "flip_left_right": "true"}}
    assert torch.equal(run_graph(registry, prompt, ["2"]).values["2"][0], values["2"][0])


def pack_gradient(size, mode, stops_text, tolerance):
    """The pack's gradient: its stops parsed, its spectrum, drawn line by line with ImageDraw, blurred."""
    from PIL import ImageDraw, ImageFilter
    colors = {}
    for stop in stops_text.strip().replace(" ", "").split("\n"):
        position, colour = stop.split(":")
        colors[int(position)] = [int(c) for c in colour.split(",")]
    colors[0] = colors[min(colors)]
    colors[255] = colors[max(colors)]
    keys = sorted(colors)
    spectrum = []
    for i in range(256):
        start, end = max(p for p in keys if p <= i), min(p for p in keys if p >= i)
        factor = 0 if start == end else (i - start) / (end - start)
        spectrum.append(tuple(round(colors[start][c] + (colors[end][c] - colors[start][c]) * factor) for c in range(3)))
    picture = Image.new("RGB", size, color=(0, 0, 0))
    draw = ImageDraw.Draw(picture)
    for i in range(size[0] if mode == "horizontal" else size[1]):
        colour = spectrum[int(i * 100 / ((size[0] if mode == "horizontal" else size[1]) - 1))]
        if tolerance > 0:
            colour = tuple(round(c / tolerance) * tolerance for c in colour)
        draw.line((i, 0, i, size[1]) if mode == "horizontal" else (0, i, size[0], i), fill=colour)
    blur = 1.5
    if size[0] > 512 or size[1] > 512:
        blur *= max(max(size) / 512, 1.5)
    return picture.filter(ImageFilter.GaussianBlur(radius=blur))


@pytest.mark.parametrize("width, height, direction, tolerance, stops", [
    (64, 80, "horizontal", 0, "0:255,0,0\n25:255,255,255\n50:0,255,0\n75:0,0,255"),
    (96, 70, "vertical", 0, " 10: 0, 0, 0\n90:255,128,7"),
    (130, 64, "horizontal", 100, "0:255,0,0\n60:30,255,120\n200:0,0,255"),  # 255 rounds to 300: clipped
    (600, 64, "vertical", 16, "50:1,2,3\n100:250,251,252"),
])
def test_generate_gradient_against_the_packs_drawing(registry, width, height, direction, tolerance, stops):
    got = call(registry, "WasImageGenerateGradient", width=width, height=height, direction=direction,
               tolerance=tolerance, gradient_stops=stops)
    want = pack_gradient((width, height), direction, stops, tolerance)
    assert got.shape == (1, height, width, 3)
    assert torch.equal(got[0], torch.from_numpy(np.asarray(want).astype(np.float32) / 255))


def test_generate_gradient_errors_and_prompts(registry):
    for stops in ("", "10:255,0", "red:1,2,3", "0:1,2,3\n\n50:4,5,6"):
        with pytest.raises(NodeInputError, match="position:red") as caught:
            call(registry, "WasImageGenerateGradient", gradient_stops=stops)
        assert caught.value.input == "gradient_stops"
    nodes = [ui_node(1, "Image Generate Gradient", [64, 64, "vertical", 0, "0:0,0,0\n100:255,255,255"],
                     outputs=[("IMAGE", "IMAGE", [])])]
    graph = ui_graph(nodes)
    values = run_graph(registry, graph, ["1"]).values
    assert torch.equal(values["1"][0][0], torch.from_numpy(np.asarray(
        pack_gradient((64, 64), "vertical", "0:0,0,0\n100:255,255,255", 0)).astype(np.float32) / 255))
    workflow = parse_workflow(graph, registry)
    assert export_ui(workflow, registry)["nodes"][0]["widgets_values"] == [64, 64, "vertical", 0,
                                                                            "0:0,0,0\n100:255,255,255"]
    prompt = export_api(workflow, registry)
    assert prompt["1"]["class_type"] == "Image Generate Gradient" and prompt["1"]["inputs"]["direction"] == "vertical"
    assert torch.equal(run_graph(registry, prompt, ["1"]).values["1"][0], values["1"][0])


def pack_paste_location(image, crop_image, top, left, right, bottom, blend_amount, sharpen_amount):
    """The pack's paste_image of Image Paste Crop by Location, step by step with Pillow."""
    from PIL import ImageDraw, ImageFilter
    image, crop_image = image.convert("RGBA"), crop_image.convert("RGBA")

    def inset_border(picture, border_width, border_color):
        bordered = Image.new(picture.mode, picture.size, border_color)
        bordered.paste(picture, (0, 0))
        ImageDraw.Draw(bordered).rectangle((0, 0, picture.width - 1, picture.height - 1), outline=border_color,
                                           width=border_width)
        return bordered
    top, left = min(max(top, 0), image.height), min(max(left, 0), image.width)
    bottom, right = min(max(bottom, 0), image.height), min(max(right, 0), image.width)
    crop_size = (right - left, bottom - top)
    crop = crop_image.resize(crop_size).convert("RGBA")
    for _ in range(sharpen_amount):
        crop = crop.filter(ImageFilter.SHARPEN)
    ratio = max(crop_size) / 2 * float(blend_amount)
    blend = image.copy()
    mask = Image.new("L", image.size, 0)
    mask.paste(inset_border(Image.new("L", crop_size, 255), int(ratio / 2), 0), (left, top))
    blend.paste(crop, (left, top), crop)
    mask = mask.filter(ImageFilter.BoxBlur(radius=ratio / 4)).filter(ImageFilter.GaussianBlur(radius=ratio / 4))
    blend.putalpha(mask)
    return Image.alpha_composite(image, blend), mask.convert("RGB")


def as_tensor(picture):
    return torch.from_numpy(np.asarray(picture.convert("RGB")).astype(np.float32) / 255)


@pytest.mark.parametrize("box, blend, sharpen", [((2, 3, 15, 17), 0.25, 0), ((0, 0, 24, 20), 1.0, 2),
                                                 ((10, 5, 400, 300), 0.6, 1)])
def test_paste_crop_by_location_against_the_packs_recipe(registry, box, blend, sharpen):
    top, left, right, bottom = box
    crop = torch.rand(1, 9, 7, 3, generator=torch.Generator().manual_seed(8))
    got = call(registry, "WasImagePasteCropByLocation", image=IMAGES, crop_image=crop, top=top, left=left, right=right,
               bottom=bottom, crop_blending=blend, crop_sharpening=sharpen)
    for i, picture in enumerate(image_pictures(IMAGES)):
        image, mask = pack_paste_location(picture, image_pictures(crop)[0], top, left, right, bottom, blend, sharpen)
        assert torch.equal(got[0][i], as_tensor(image)) and torch.equal(got[1][i], as_tensor(mask))


def test_paste_crop_by_location_unblended_is_a_plain_paste(registry):
    crop = torch.rand(1, 6, 5, 3, generator=torch.Generator().manual_seed(9))
    got = call(registry, "WasImagePasteCropByLocation", image=IMAGES[:1], crop_image=crop, top=4, left=3, right=8,
               bottom=10, crop_blending=0.0)
    want = IMAGES[:1].clone()
    want[0, 4:10, 3:8] = crop[0]
    assert torch.allclose(got[0], want, atol=1 / 255 + 1e-6)
    assert torch.equal(got[1][0, 4:10, 3:8], torch.ones(6, 5, 3)) and got[1].sum() == 6 * 5 * 3
    with pytest.raises(NodeInputError, match="is empty") as caught:
        call(registry, "WasImagePasteCropByLocation", image=IMAGES, crop_image=crop, left=30, right=40)
    assert caught.value.input == "right"
    # empty only from top to bottom: bottom is named
    for top, bottom in ((10, 5), (7, 7), (25, 30)):
        with pytest.raises(NodeInputError, match="is empty") as caught:
            call(registry, "WasImagePasteCropByLocation", image=IMAGES, crop_image=crop, top=top, left=0, right=8,
                 bottom=bottom)
        assert caught.value.input == "bottom"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImagePasteCropByLocation", image=IMAGES, crop_image=torch.rand(3, 4, 4, 3))
    assert caught.value.input == "crop_image"


def test_paste_crop_by_location_in_a_ui_save(registry):
    nodes = [ui_node(1, "EmptyImage", [32, 32, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "EmptyImage", [8, 8, 1, 0xFFFFFF], outputs=[("IMAGE", "IMAGE", [2])]),
             ui_node(3, "Image Paste Crop by Location", [4, 6, 20, 16, 0.0, 0],
                     inputs=[("image", "IMAGE", 1, False), ("crop_image", "IMAGE", 2, False)],
                     outputs=[("IMAGE", "IMAGE", []), ("IMAGE", "IMAGE", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "IMAGE"]])
    values = run_graph(registry, graph, ["3"]).values
    want = torch.zeros(1, 32, 32, 3)
    want[0, 4:16, 6:20] = 1.0  # top 4, left 6, right 20, bottom 16, by position
    assert torch.equal(values["3"][0], want) and torch.equal(values["3"][1], want)
    workflow = parse_workflow(graph, registry)
    assert export_ui(workflow, registry)["nodes"][2]["widgets_values"] == [4, 6, 20, 16, 0.0, 0]
    prompt = export_api(workflow, registry)
    assert prompt["3"]["class_type"] == "Image Paste Crop by Location" and prompt["3"]["inputs"]["left"] == 6
    assert torch.equal(run_graph(registry, prompt, ["3"]).values["3"][0], want)
