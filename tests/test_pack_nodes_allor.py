"""Nourepide's ComfyUI-Allor (nodes/pack_nodes_allor.py, nodes/pack_nodes_allor_draw.py): each node
against the library call the pack makes (Pillow's ImageFilter / ImageDraw / resize / crop /
rotate, OpenCV's blurs, torchvision's adjust_* and pad), written out here on small batches with the
pack's 8-bit round trip (x · 255 cut to a level, levels / 255 back); the errors by input name; a
UI-format save and an API prompt under the pack's class names, with export round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from graphflow.api import Size
from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def _images(seed=0, batch=2, height=20, width=28, channels=3):
    return torch.rand(batch, height, width, channels, generator=torch.Generator().manual_seed(seed))


def _pil(picture):
    """The pack's tensor_to_image: torchvision's ToPILImage, x · 255 cut to a byte."""
    levels = (picture * 255).to(torch.uint8).numpy()
    return Image.fromarray(levels, {3: "RGB", 4: "RGBA"}[levels.shape[-1]])


def _back(picture):
    """The pack's image_to_tensor: torchvision's ToTensor, levels / 255."""
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255)


def _each(images, change):
    return torch.stack([_back(change(_pil(image))) for image in images])


def _layers(images, change):
    """The pack's cv2_layer: change on the colour channels, then on the alpha apart."""
    out = []
    for image in images:
        pixels = image.numpy()
        parts = [change(pixels[..., :3])]
        if pixels.shape[-1] == 4:
            parts.append(change(pixels[..., 3:4])[..., None])
        out.append(torch.from_numpy(np.concatenate(parts, axis=2)))
    return torch.stack(out)


def _refused(registry, node_type, input_name, match=None, **inputs):
    with pytest.raises(NodeInputError, match=match) as caught:
        call(registry, node_type, **inputs)
    assert caught.value.input == input_name
    return caught.value


# -- alpha ---------------------------------------------------------------------------------------


def test_alpha_channel_nodes(registry):
    rgb, rgba = _images(), _images(1, channels=4)
    added = call(registry, "AllorAlphaChanelAdd", images=rgb)
    assert torch.equal(added[..., :3], rgb) and torch.equal(added[..., 3], torch.ones(2, 20, 28))
    assert call(registry, "AllorAlphaChanelAdd", images=rgba) is rgba
    mask = torch.rand(1, 20, 28)
    by_mask = call(registry, "AllorAlphaChanelAddByMask", images=rgba, mask=mask, method="default")
    assert torch.equal(by_mask[..., :3], rgba[..., :3]) and torch.equal(by_mask[1, ..., 3], 1.0 - mask[0])
    empty = call(registry, "AllorAlphaChanelAddByMask", images=rgb, mask=torch.ones(1, 64, 64), method="default")
    assert bool((empty[..., 3] == 1).all())  # a 64×64 mask is ComfyUI's empty one, as the pack reads it
    inverted = call(registry, "AllorAlphaChanelAddByMask", images=rgb, mask=mask[0], method="invert")
    assert torch.equal(inverted[0, ..., 3], mask[0])
    _refused(registry, "AllorAlphaChanelAddByMask", "mask", "size 28×19", images=rgb, mask=mask[:, :19],
             method="default")
    as_mask = call(registry, "AllorAlphaChanelAsMask", images=rgba, method="default")
    assert torch.equal(as_mask, 1.0 - rgba[:1, ..., 3])
    assert torch.equal(call(registry, "AllorAlphaChanelAsMask", images=rgba, method="invert"), rgba[:1, ..., 3])
    _refused(registry, "AllorAlphaChanelAsMask", "images", "no alpha", images=rgb, method="default")
    restored = call(registry, "AllorAlphaChanelRestore", images=rgba)
    assert torch.equal(restored[..., :3], rgba[..., :3]) and bool((restored[..., 3] == 1).all())
    assert call(registry, "AllorAlphaChanelRestore", images=rgb) is rgb
    assert torch.equal(call(registry, "AllorAlphaChanelRemove", images=rgba), rgba[..., :3])


# -- batches -------------------------------------------------------------------------------------


def test_batch_get_remove_fork_join_permute(registry):
    images = _images(batch=5, height=4, width=6)
    assert torch.equal(call(registry, "AllorImageBatchGet", images=images, index=2), images[1:2])
    assert torch.equal(call(registry, "AllorImageBatchGet", images=images, index=9), images[4:5])
    removed = call(registry, "AllorImageBatchRemove", images=images, index=3)
    assert torch.equal(removed, torch.cat([images[:2], images[3:]]))
    assert torch.equal(call(registry, "AllorImageBatchRemove", images=images, index=7), images)
    _refused(registry, "AllorImageBatchRemove", "images", "leaves no image", images=images[:1], index=1)
    first, second = call(registry, "AllorImageBatchFork", images=images, priority="first")
    assert torch.equal(first, images[:3]) and torch.equal(second, images[3:])
    first, second = call(registry, "AllorImageBatchFork", images=images, priority="second")
    assert torch.equal(first, images[:2]) and torch.equal(second, images[2:])
    first, second = call(registry, "AllorImageBatchFork", images=images[:1], priority="first")
    assert torch.equal(first, images[:1]) and torch.equal(second, images[:1])
    joined = call(registry, "AllorImageBatchJoin", images_a=images[:2], images_b=images[2:])
    assert torch.equal(joined, images)
    _refused(registry, "AllorImageBatchJoin", "images_b", "width 5", images_a=images, images_b=images[..., :5, :])
    _refused(registry, "AllorImageBatchJoin", "images_b", "channels 4", images_a=images,
             images_b=torch.zeros(1, 4, 6, 4))
    permuted = call(registry, "AllorImageBatchPermute", images=images, permute="3, 1;1 9", start_with_zero=False)
    assert torch.equal(permuted, images[[2, 0, 0, 4]])
    zero = call(registry, "AllorImageBatchPermute", images=images, permute="0 4", start_with_zero=True)
    assert torch.equal(zero, images[[0, 4]])
    assert registry.get("AllorImageBatchPermute").estimate({"permute": "1 2 3 2 1"},
                                                           {"images": Size(5, 4, 6)}).size == Size(5, 4, 6)
    _refused(registry, "AllorImageBatchPermute", "permute", "no numbers", images=images, permute="a, b",
             start_with_zero=False)


# -- composite -----------------------------------------------------------------------------------


def _pack_composite(a, b, a_xy, b_xy, width, height, background):
    """Each picture as RGBA pasted on a transparent container (what overflows cut), a over b or b
    over a by PIL's alpha_composite."""
    def placed(picture, xy):
        container = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        container.paste(picture.convert("RGBA"), xy)
        return container
    layer_a, layer_b = placed(_pil(a), a_xy), placed(_pil(b), b_xy)
    back, front = (layer_a, layer_b) if background == "images_a" else (layer_b, layer_a)
    return _back(Image.alpha_composite(back, front))


def test_composite_absolute_and_relative_against_pils_alpha_composite(registry):
    a, b = _images(1, height=12, width=16), _images(2, height=10, width=9, channels=4)
    out = call(registry, "AllorImageCompositeAbsolute", images_a=a, images_b=b, images_a_x=3, images_a_y=2,
               images_b_x=10, images_b_y=5, container_width=20, container_height=0, background="images_a",
               method="pair")
    assert out.shape == (2, 12, 20, 4)
    for i in range(2):
        assert torch.equal(out[i], _pack_composite(a[i], b[i], (3, 2), (10, 5), 20, 12, "images_a"))
    matrix = call(registry, "AllorImageCompositeAbsolute", images_a=a, images_b=b[:1], images_a_x=0, images_a_y=0,
                  images_b_x=0, images_b_y=0, container_width=0, container_height=0, background="images_b",
                  method="matrix")
    assert matrix.shape == (2, 12, 16, 4)
    assert torch.equal(matrix[1], _pack_composite(a[1], b[0], (0, 0), (0, 0), 16, 12, "images_b"))
    _refused(registry, "AllorImageCompositeAbsolute", "images_b", "method pair", images_a=a, images_b=b[:1],
             images_a_x=0, images_a_y=0, images_b_x=0, images_b_y=0, container_width=0, container_height=0,
             background="images_a", method="pair")
    tall = _images(3, batch=1, height=12, width=9, channels=4)
    relative = call(registry, "AllorImageCompositeRelative", images_a=a, images_b=tall, images_a_x=0.0,
                    images_a_y=0.0, images_b_x=0.5, images_b_y=0.5, background="images_a",
                    container_size_type="sum_width", method="matrix")
    # sum_width: 16 + 9 wide, 12 high; b at int((25 - 9) · 0.5), int((12 - 12) · 0.5)
    assert relative.shape == (2, 12, 25, 4)
    assert torch.equal(relative[0], _pack_composite(a[0], tall[0], (0, 0), (8, 0), 25, 12, "images_a"))
    summed = call(registry, "AllorImageCompositeRelative", images_a=a, images_b=b, images_a_x=1.0,
                  images_a_y=1.0, images_b_x=0.3, images_b_y=0.0, background="images_b",
                  container_size_type="sum", method="pair")
    # sum: 25 × 22; a at (9, 10), b at int(16 · 0.3) = 4
    assert torch.equal(summed[1], _pack_composite(a[1], b[1], (9, 10), (4, 0), 25, 22, "images_b"))
    on_container = call(registry, "AllorImageCompositeAbsoluteByContainer", container=torch.zeros(3, 15, 21, 3),
                        images_a=a, images_b=b, images_a_x=5, images_a_y=0, images_b_x=0, images_b_y=9,
                        background="images_b", method="pair")
    assert on_container.shape == (2, 15, 21, 4)
    assert torch.equal(on_container[0], _pack_composite(a[0], b[0], (5, 0), (0, 9), 21, 15, "images_b"))
    relative_on = call(registry, "AllorImageCompositeRelativeByContainer", container=torch.zeros(1, 15, 21, 3),
                       images_a=a, images_b=b, images_a_x=1.0, images_a_y=0.5, images_b_x=0.25, images_b_y=1.0,
                       background="images_a", method="pair")
    # a at (21 - 16, int(3 · 0.5)), b at (int(12 · 0.25), 15 - 10)
    assert torch.equal(relative_on[1], _pack_composite(a[1], b[1], (5, 1), (3, 5), 21, 15, "images_a"))
    _refused(registry, "AllorImageCompositeRelativeByContainer", "container", "at least", images_a=a, images_b=b,
             container=torch.zeros(1, 11, 30, 3), images_a_x=0.0, images_a_y=0.0, images_b_x=0.0, images_b_y=0.0,
             background="images_a", method="pair")
    _refused(registry, "AllorImageCompositeRelative", "container_size_type", "one height", images_a=a,
             images_b=b, images_a_x=0.0, images_a_y=0.0, images_b_x=0.0, images_b_y=0.0, background="images_a",
             container_size_type="sum_width", method="matrix")


# -- containers ----------------------------------------------------------------------------------


def test_containers_are_pils_one_colour_pictures(registry):
    color = (10, 200, 30, int(0.5 * 255))
    plain = call(registry, "AllorImageContainer", width=7, height=5, red=10, green=200, blue=30, alpha=0.5)
    assert torch.equal(plain, _back(Image.new("RGBA", (7, 5), color))[None])
    image = _images(batch=3, height=6, width=10)
    # the pack reads (height, width) as (width, height): 6 + 2 wide, 10 + 1 high
    added = call(registry, "AllorImageContainerInheritanceAdd", images=image, add_width=2, add_height=1, red=10,
                 green=200, blue=30, alpha=0.5, method="for_each")
    assert added.shape == (3, 11, 8, 4) and torch.equal(added[2], _back(Image.new("RGBA", (8, 11), color)))
    scaled = call(registry, "AllorImageContainerInheritanceScale", images=image, scale_width=1.5, scale_height=2.0,
                  red=10, green=200, blue=30, alpha=0.5, method="single")
    assert scaled.shape == (1, 20, 9, 4)
    b = _images(batch=2, height=9, width=4)
    maxed = call(registry, "AllorImageContainerInheritanceMax", images_a=image, images_b=b, red=1, green=2, blue=3,
                 alpha=1.0, method="for_each_matrix")
    assert maxed.shape == (6, 9, 10, 4) and torch.equal(maxed[0], _back(Image.new("RGBA", (10, 9), (1, 2, 3, 255))))
    summed = call(registry, "AllorImageContainerInheritanceSum", images_a=image, images_b=b, red=1, green=2, blue=3,
                  alpha=1.0, container_size_type="sum", method="for_each_pair")
    assert summed.shape == (3, 15, 14, 4)
    _refused(registry, "AllorImageContainerInheritanceSum", "container_size_type", "one width", images_a=image,
             images_b=b, red=1, green=2, blue=3, alpha=1.0, container_size_type="sum_height", method="single")
    assert registry.get("AllorImageContainerInheritanceSum").estimate(
        {"container_size_type": "sum_width", "method": "for_each_matrix"},
        {"images_a": Size(3, 6, 10), "images_b": Size(2, 6, 4)}).size == Size(6, 6, 14)


# -- drawing -------------------------------------------------------------------------------------

COLOURS = dict(outline_size=2, outline_red=10, outline_green=20, outline_blue=30, outline_alpha=0.8, fill_red=200,
               fill_green=100, fill_blue=50, fill_alpha=0.6)


def _canvas(width, height, ssaa, draw, method=Image.Resampling.LANCZOS):
    canvas = Image.new("RGBA", (width * ssaa, height * ssaa), (0, 0, 0, 0))
    draw(ImageDraw.Draw(canvas))
    return _back(canvas.resize((width, height), method))[None]


def test_drawn_shapes_against_pils_imagedraw(registry):
    box = [(40 * 0.1 * 3, 30 * 0.2 * 3), (40 * 0.9 * 3, 30 * 0.8 * 3)]
    fill, outline = (200, 100, 50, int(0.6 * 255)), (10, 20, 30, int(0.8 * 255))
    rectangle = call(registry, "AllorImageDrawRectangle", width=40, height=30, start_x=0.1, start_y=0.2, end_x=0.9,
                     end_y=0.8, SSAA=3, method="lanczos", **COLOURS)
    assert torch.equal(rectangle, _canvas(40, 30, 3, lambda d: d.rectangle(box, fill, outline, 6)))
    container = torch.zeros(2, 30, 40, 3)
    ellipse = call(registry, "AllorImageDrawEllipseByContainer", container=container, start_x=0.1, start_y=0.2,
                   end_x=0.9, end_y=0.8, SSAA=3, method="bilinear", **COLOURS)
    assert torch.equal(ellipse, _canvas(40, 30, 3, lambda d: d.ellipse(box, fill, outline, 6),
                                        Image.Resampling.BILINEAR))
    rounded = call(registry, "AllorImageDrawRectangleRounded", width=40, height=30, start_x=0.1, start_y=0.2,
                   end_x=0.9, end_y=0.8, radius=5, top_left_corner="true", top_right_corner="false",
                   bottom_right_corner="true", bottom_left_corner="false", SSAA=3, method="lanczos", **COLOURS)
    want = _canvas(40, 30, 3, lambda d: d.rounded_rectangle(box, 15, fill, outline, 6,
                                                            corners=(True, False, True, False)))
    assert torch.equal(rounded, want)
    whole = [(0.0, 0.0), (40 * 2 * 1.0, 30 * 2 * 1.0)]
    ink = (255, 0, 128, int(0.5 * 255))
    strokes = dict(width=40, height=30, size=2, start_x=0.0, start_y=0.0, end_x=1.0, end_y=1.0, red=255, green=0,
                   blue=128, alpha=0.5, SSAA=2, method="box")
    arc = call(registry, "AllorImageDrawArc", start=30, end=200, **strokes)
    assert torch.equal(arc, _canvas(40, 30, 2, lambda d: d.arc(whole, 30, 200, ink, 4), Image.Resampling.BOX))
    chord = call(registry, "AllorImageDrawChord", start=30, end=200, **strokes)
    assert torch.equal(chord, _canvas(40, 30, 2, lambda d: d.chord(whole, 30, 200, ink, 4), Image.Resampling.BOX))
    line = call(registry, "AllorImageDrawLine", **strokes)
    assert torch.equal(line, _canvas(40, 30, 2, lambda d: d.line(whole, ink, 4), Image.Resampling.BOX))
    pie = call(registry, "AllorImageDrawPiesliceByContainer", container=container, start_x=0.0, start_y=0.0,
               end_x=1.0, end_y=1.0, start=0, end=240, SSAA=1, method="nearest", **COLOURS)
    pie_box = [(0.0, 0.0), (40.0, 30.0)]
    assert torch.equal(pie, _canvas(40, 30, 1, lambda d: d.pieslice(pie_box, 0, 240, fill, outline, 2),
                                    Image.Resampling.NEAREST))
    polygon = call(registry, "AllorImageDrawPolygon", size=32, sides=6, rotation=15, SSAA=2, method="lanczos",
                   **COLOURS)
    assert torch.equal(polygon, _canvas(32, 32, 2, lambda d: d.regular_polygon((32, 32, 32), 6, 15, fill, outline)))
    _refused(registry, "AllorImageDrawRectangle", "end_x", "end_x ≥ start_x", width=40, height=30, start_x=0.9,
             start_y=0.2, end_x=0.1, end_y=0.8, SSAA=1, method="lanczos", **COLOURS)
    _refused(registry, "AllorImageDrawLine", "SSAA", "smaller SSAA", **{**strokes, "width": 16384, "height": 16384,
                                                                         "SSAA": 16})
    from graphflow.resource_limits import default_estimate
    container = registry.get("AllorImageContainer")
    assert default_estimate(container, {"width": 16384, "height": 9000}, {}).size == Size(1, 9000, 16384)
    estimate = registry.get("AllorImageDrawEllipse").estimate({"width": 100, "height": 50, "SSAA": 4}, {})
    assert estimate.size == Size(1, 50, 100) and estimate.memory == 100 * 50 * 16 * 4


# -- effects -------------------------------------------------------------------------------------


def test_adjustment_against_torchvisions_adjust_functions(registry):
    tf = pytest.importorskip("torchvision.transforms.functional")
    images = _images(3, batch=3, channels=4, height=12, width=14)
    neutral = dict(brightness=1.0, contrast=1.0, saturation=1.0, hue=0.5, gamma=1.0, sharpness=1.0, red=1.0,
                   green=1.0, blue=1.0)
    steps = [("brightness", 1.3, lambda x: tf.adjust_brightness(x, 1.3)),
             ("contrast", 0.6, lambda x: tf.adjust_contrast(x, 0.6)),
             ("saturation", 1.7, lambda x: tf.adjust_saturation(x, 1.7)),
             ("hue", 0.8, lambda x: tf.adjust_hue(x, 0.3)),
             ("hue", 0.1, lambda x: tf.adjust_hue(x, -0.4)),
             ("gamma", 2.2, lambda x: tf.adjust_gamma(x, 2.2)),
             ("sharpness", 3.0, lambda x: tf.adjust_sharpness(x, 3.0))]
    for name, value, reference in steps:
        out = call(registry, "AllorImageEffectsAdjustment", images=images, **{**neutral, name: value})
        for i in range(3):
            want = reference(images[i, ..., :3].movedim(-1, 0)).movedim(0, -1)
            assert torch.allclose(out[i, ..., :3], want, atol=1e-5), name
        assert torch.equal(out[..., 3], images[..., 3])
    mixed = call(registry, "AllorImageEffectsAdjustment", images=images[..., :3],
                 **{**neutral, "contrast": 1.4, "hue": 0.6, "red": 1.5, "blue": 0.5})
    want = tf.adjust_hue(tf.adjust_contrast(images[0, ..., :3].movedim(-1, 0), 1.4), 0.1).movedim(0, -1)
    want = (want * torch.tensor([1.5, 1.0, 0.5])).clamp(0, 1)
    assert torch.allclose(mixed[0], want, atol=1e-5)


def test_grayscale_negative_sepia(registry):
    images = _images(4, channels=4)
    grey = call(registry, "AllorImageEffectsGrayscale", images=images)
    assert grey.shape == (2, 20, 28, 3) and torch.allclose(grey[..., 1], images.mean(-1))
    negative = call(registry, "AllorImageEffectsNegative", images=images)
    assert torch.equal(negative[..., :3], 1 - images[..., :3]) and torch.equal(negative[..., 3], images[..., 3])
    sepia = call(registry, "AllorImageEffectsSepia", images=images)
    matrix = np.array([[0.393, 0.349, 0.272], [0.769, 0.686, 0.534], [0.189, 0.168, 0.131]])
    assert np.allclose(sepia[..., :3].numpy(), images[..., :3].numpy() @ matrix, atol=1e-6)
    assert float(sepia.max()) > 1.0  # not clamped, as the pack
    assert torch.equal(sepia[..., 3], images[..., 3])


# -- filters -------------------------------------------------------------------------------------


@pytest.mark.parametrize("node_type, pil_filter", [
    ("Smooth", ImageFilter.SMOOTH), ("SmoothMore", ImageFilter.SMOOTH_MORE), ("Contour", ImageFilter.CONTOUR),
    ("Detail", ImageFilter.DETAIL), ("EdgeEnhance", ImageFilter.EDGE_ENHANCE),
    ("EdgeEnhanceMore", ImageFilter.EDGE_ENHANCE_MORE), ("Emboss", ImageFilter.EMBOSS),
    ("FindEdges", ImageFilter.FIND_EDGES), ("Sharpen", ImageFilter.SHARPEN)])
def test_pil_filters(registry, node_type, pil_filter):
    for channels in (3, 4):
        images = _images(5, channels=channels)
        out = call(registry, f"AllorImageFilter{node_type}", images=images)
        assert torch.equal(out, _each(images, lambda p: p.filter(pil_filter)))


def test_rank_filters(registry):
    images = _images(6, channels=4)
    assert torch.equal(call(registry, "AllorImageFilterRank", images=images, size=2, rank=7),
                       _each(images, lambda p: p.filter(ImageFilter.RankFilter(3, 7))))
    for name, make in (("Min", ImageFilter.MinFilter), ("Max", ImageFilter.MaxFilter),
                       ("Mode", ImageFilter.ModeFilter)):
        out = call(registry, f"AllorImageFilter{name}", images=images, size=4)
        assert torch.equal(out, _each(images, lambda p: p.filter(make(5)))), name
    _refused(registry, "AllorImageFilterMin", "size", "even", images=images, size=3)
    _refused(registry, "AllorImageFilterRank", "rank", "below", images=images, size=2, rank=9)


def test_opencv_blurs(registry):
    images = _images(7, channels=4, height=24, width=30)
    cases = [
        ("Blur", dict(size_x=5, size_y=3), lambda x: cv2.blur(x, (5, 3))),
        ("BoxBlur", dict(size_x=4, size_y=6), lambda x: cv2.boxFilter(x, -1, (4, 6))),
        # the pack's own calls: its fourth argument lands on OpenCV's dst and is not used
        ("GaussianBlur", dict(size_x=6, size_y=4), lambda x: cv2.GaussianBlur(x, (5, 3), 5, 3)),
        ("GaussianBlurAdvanced", dict(size_x=8, size_y=6, sigma_x=2, sigma_y=7),
         lambda x: cv2.GaussianBlur(x, (7, 5), 2, 7)),
        ("StackBlur", dict(size_x=10, size_y=4), lambda x: cv2.stackBlur(x, (9, 3))),
        ("BilateralBlur", dict(size=6, sigma_color=0.7, sigma_intensity=0.4),
         lambda x: cv2.bilateralFilter(x, 5, 100 - 0.7 * 100, 0.4 * 100)),
    ]
    for name, widgets, reference in cases:
        out = call(registry, f"AllorImageFilter{name}", images=images, **widgets)
        assert torch.allclose(out, _layers(images, reference), atol=1e-6), name
    median = call(registry, "AllorImageFilterMedianBlur", images=images, size=6)
    want = _layers((images * 255).to(torch.uint8), lambda x: cv2.medianBlur(x, 5)) / 255
    assert torch.equal(median, want)
    _refused(registry, "AllorImageFilterGaussianBlur", "size_y", "even", images=images, size_x=4, size_y=5)
    _refused(registry, "AllorImageFilterStackBlur", "size_x", "even", images=images, size_x=1, size_y=4)


# -- transforms ----------------------------------------------------------------------------------


def test_resize_nodes_against_pil(registry):
    images = _images(8, height=20, width=30)
    out = call(registry, "AllorImageTransformResizeAbsolute", images=images, width=13, height=9, method="hamming")
    assert torch.equal(out, _each(images, lambda p: p.resize((13, 9), Image.Resampling.HAMMING)))
    out = call(registry, "AllorImageTransformResizeRelative", images=images, scale_width=0.5, scale_height=1.5,
               method="bicubic")
    assert torch.equal(out, _each(images, lambda p: p.resize((15, 30), Image.Resampling.BICUBIC)))
    # fit 12 × 100: the scale fitting both maximums is 12 / 30; the minimums (0) ask for none
    out = call(registry, "AllorImageTransformResizeClip", images=images, max_width=12, max_height=100, min_width=0,
               min_height=0, method="lanczos")
    assert torch.equal(out, _each(images, lambda p: p.resize((12, 8), Image.Resampling.LANCZOS)))
    same = call(registry, "AllorImageTransformResizeClip", images=images, max_width=10, max_height=10, min_width=10,
                min_height=10, method="lanczos")
    assert same is images
    estimate = registry.get("AllorImageTransformResizeClip").estimate(
        {"max_width": 12, "max_height": 100, "min_width": 0, "min_height": 0}, {"images": Size(2, 20, 30)})
    assert estimate.size == Size(2, 8, 12)


def test_crops_against_pil(registry):
    images = _images(9, height=20, width=30, channels=4)
    out = call(registry, "AllorImageTransformCropAbsolute", images=images, start_x=20, start_y=5, end_x=40, end_y=15)
    assert out.shape == (2, 10, 20, 4)
    assert torch.equal(out, _each(images, lambda p: p.crop((20, 5, 40, 15))))
    out = call(registry, "AllorImageTransformCropRelative", images=images, start_x=0.25, start_y=0.25, end_x=0.75,
               end_y=0.75)
    assert torch.equal(out, _each(images, lambda p: p.crop((7.5, 5.0, 22.5, 15.0))))
    _refused(registry, "AllorImageTransformCropAbsolute", "end_x", "ends before", images=images, start_x=10,
             start_y=0, end_x=5, end_y=5)
    corners = call(registry, "AllorImageTransformCropCorners", images=images, radius=6, top_left_corner="true",
                   top_right_corner="true", bottom_right_corner="false", bottom_left_corner="true", SSAA=2,
                   method="lanczos")
    canvas = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).rounded_rectangle(((0, 0), (60, 40)), 12, (255, 255, 255, 255),
                                             corners=(True, True, False, True))
    cut = 1.0 - _back(canvas.resize((30, 20), Image.Resampling.LANCZOS))[..., 3:]
    assert torch.equal(corners, (images - cut).clamp(0, 1))
    assert bool((corners[:, 0, 0] == 0).all()) and torch.equal(corners[:, -1, -1], images[:, -1, -1])


def test_padding_as_the_pack_calls_torchvisions_pad(registry):
    tf = pytest.importorskip("torchvision.transforms.functional")
    images = _images(10, height=12, width=16)
    for method in ("reflect", "edge", "constant"):
        out = call(registry, "AllorImageTransformPaddingAbsolute", images=images, add_width=3, add_height=5,
                   method=method)
        want = torch.stack([tf.pad(image.permute(2, 0, 1), [5, 3], padding_mode=method).permute(1, 2, 0)
                            for image in images])
        assert torch.equal(out, want), method
    out = call(registry, "AllorImageTransformPaddingRelative", images=images, scale_width=0.25, scale_height=0.5,
               method="edge")
    want = torch.stack([tf.pad(image.permute(2, 0, 1), [6, 4], padding_mode="edge").permute(1, 2, 0)
                        for image in images])
    assert torch.equal(out, want)
    assert registry.get("AllorImageTransformPaddingAbsolute").estimate(
        {"add_width": 3, "add_height": 5}, {"images": Size(2, 12, 16)}).size == Size(2, 18, 26)
    _refused(registry, "AllorImageTransformPaddingAbsolute", "add_width", "reflect", images=images, add_width=12,
             add_height=1, method="reflect")


def test_rotate_and_transpose_against_pil(registry):
    images = _images(11, height=16, width=24, channels=4)
    out = call(registry, "AllorImageTransformRotate", images=images, angle=30.0, expand="true", SSAA=2,
               method="lanczos")

    def rotated(picture):
        big = picture.resize((48, 32), Image.Resampling.LANCZOS)
        big = big.rotate(30.0, Image.Resampling.BICUBIC, True, fillcolor=(0, 0, 0, 0))
        return big.resize((big.width // 2, big.height // 2), Image.Resampling.LANCZOS)
    assert torch.equal(out, _each(images, rotated))
    plain = call(registry, "AllorImageTransformRotate", images=images[..., :3], angle=90.0, expand="false", SSAA=1,
                 method="box")
    assert torch.equal(plain, _each(images[..., :3], lambda p: p.rotate(90.0, Image.Resampling.NEAREST, False,
                                                                        fillcolor=(0, 0, 0))))
    assert call(registry, "AllorImageTransformRotate", images=images, angle=360.0, expand="true", SSAA=4,
                method="lanczos") is images
    for method, how in (("flip_horizontally", Image.Transpose.FLIP_LEFT_RIGHT),
                        ("rotate_90", Image.Transpose.ROTATE_90), ("transverse", Image.Transpose.TRANSVERSE)):
        out = call(registry, "AllorImageTransformTranspose", images=images, method=method)
        assert torch.equal(out, _each(images, lambda p: p.transpose(how))), method


# -- text ----------------------------------------------------------------------------------------

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture
def dejavu_in_models_fonts(tmp_folders):
    import os
    import shutil
    if not os.path.exists(DEJAVU):
        pytest.skip("no DejaVu Sans on this machine")
    (tmp_folders.models / "fonts").mkdir(parents=True, exist_ok=True)
    shutil.copy(DEJAVU, tmp_folders.models / "fonts" / "DejaVuSans.ttf")
    return ImageFont.truetype(DEJAVU, 20, encoding="unic")


def test_text_nodes_against_pils_text_drawing(registry, dejavu_in_models_fonts):
    font = dejavu_in_models_fonts
    text = "Allor, 42!"
    out = call(registry, "AllorImageTextOutlined", text=text, font="DejaVuSans.ttf", size=20, red=250, green=10,
               blue=20, outline_size=2, outline_red=0, outline_green=0, outline_blue=255, alpha=0.8, margin_x=3,
               margin_y=1)
    left, top, right, bottom = font.getbbox(text)
    canvas = Image.new("RGBA", (right + 10, bottom - top + 6), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((5, 3 - top), text=text, fill=(250, 10, 20, 204), stroke_fill=(0, 0, 255, 204),
                                stroke_width=2, font=font)
    assert torch.equal(out, _back(canvas)[None])
    plain = call(registry, "AllorImageText", text=text, font="DejaVuSans.ttf", size=20, red=255, green=255,
                 blue=255, alpha=1.0, margin_x=0, margin_y=0)
    canvas = Image.new("RGBA", (right, bottom - top), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((0, -top), text=text, fill=(255, 255, 255, 255), font=font)
    assert torch.equal(plain, _back(canvas)[None])
    lines = "first line\nsecond, longer line\n3"
    multi = call(registry, "AllorImageTextMultilineOutlined", text=lines, font="DejaVuSans.ttf", align="center",
                 size=20, red=1, green=2, blue=3, outline_size=1, outline_red=200, outline_green=200, outline_blue=0,
                 alpha=1.0, margin_x=2, margin_y=2)
    font = ImageFont.truetype(DEJAVU, 20, encoding="unic", layout_engine=ImageFont.Layout.BASIC)
    top = font.getbbox(lines)[1]
    box = ImageDraw.Draw(Image.new("RGBA", (0, 0))).multiline_textbbox((0, 0), lines, font)
    canvas = Image.new("RGBA", (box[2] + 6, box[3] - top + (2 + 3) * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((3, 3 - top), text=lines, fill=(1, 2, 3, 255), stroke_fill=(200, 200, 0, 255),
                                stroke_width=1, font=font, align="center")
    assert torch.equal(multi, _back(canvas)[None])
    _refused(registry, "AllorImageText", "text", "nothing to draw", text="", font="DejaVuSans.ttf", size=20,
             red=255, green=255, blue=255, alpha=1.0, margin_x=0, margin_y=0)
    prompt = {"1": {"class_type": "ImageTextMultiline", "inputs": {
        "text": "a\nb", "font": "Missing.ttf", "align": "left", "size": 12, "red": 255, "green": 255, "blue": 255,
        "alpha": 1.0, "margin_x": 0, "margin_y": 0}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    from graphflow.validation import validate
    (problem,) = validate(parse_workflow(prompt, registry), registry)
    assert problem.input == "font" and "DejaVuSans.ttf" in problem.message


# -- lens effects --------------------------------------------------------------------------------


def _pack_radialspace_2d(size, curvy, scale, mode, min_val=0.0, max_val=1.0, center=(0.5, 0.5)):
    """The pack's radialspace_2D, written out: size = (rows, cols) as its lens nodes pass it."""
    xx, yy = torch.meshgrid(torch.linspace(0, 1, size[0]), torch.linspace(0, 1, size[1]), indexing="ij")
    if mode == "circle":
        d = torch.sqrt((xx - center[0]) ** 2 + (yy - center[1]) ** 2) ** curvy
    else:
        a, b = torch.abs(xx - center[0]) ** curvy, torch.abs(yy - center[1]) ** curvy
        d = {"square": torch.max, "rectangle": torch.add, "corners": torch.min}[mode](a, b)
    return torch.clamp(d / d.max() * scale, min_val, max_val).float()


def _pack_radialspace_1d(size, curvy, min_val, max_val):
    tensor = _pack_radialspace_2d((1, size), curvy, 1.0, "square", min_val, max_val, (0.0, 0.5)).squeeze()
    if min_val < 0:
        tensor[:len(tensor) // 2] = -(tensor[:len(tensor) // 2])
    return ((tensor - tensor.min()) / (tensor.max() - tensor.min())) * (max_val - min_val) + min_val


def test_lens_vignette_against_the_packs_gradient_and_torchvision(registry):
    tf = pytest.importorskip("torchvision.transforms.functional")
    images = _images(13, channels=4, height=18, width=18)
    out, mask = call(registry, "AllorImageEffectsLensVignette", images=images, lens_shape="rectangle",
                     lens_edge="around", lens_curvy=2.5, lens_zoom=0.5, brightness=0.3, saturation=0.6)
    gradient = _pack_radialspace_2d((18, 18), 2.5, 1.5, "rectangle")
    faded = images.permute(0, 3, 1, 2).clone()
    faded[:, :3] = tf.adjust_saturation(tf.adjust_brightness(faded[:, :3], 0.3), 0.6)
    weight = gradient[None, ..., None]
    assert torch.allclose(out, images * (1 - weight) + faded.permute(0, 2, 3, 1) * weight, atol=1e-6)
    assert torch.equal(mask, gradient[None])
    wide = _images(14, height=12, width=20)
    _, mask = call(registry, "AllorImageEffectsLensVignette", images=wide, lens_shape="circle",
                   lens_edge="symmetric", lens_curvy=3.0, lens_zoom=0.0, brightness=0.25, saturation=0.5)
    assert torch.equal(mask[0], _pack_radialspace_2d((20, 20), 3.0, 1.0, "circle")[4:16])
    _, odd = call(registry, "AllorImageEffectsLensVignette", images=wide[:, :11], lens_shape="circle",
                  lens_edge="symmetric", lens_curvy=3.0, lens_zoom=0.0, brightness=0.25, saturation=0.5)
    assert odd.shape == (1, 11, 20)  # the pack's cut takes 12 rows here and fails


def test_lens_optic_axis_against_opencvs_remap_and_stack_blur(registry):
    images = _images(15, height=16, width=22)
    out, mask = call(registry, "AllorImageEffectsLensOpticAxis", images=images, lens_shape="circle",
                     lens_edge="around", lens_curvy=4.0, lens_zoom=2.0, lens_aperture=0.05, blur_intensity=4)
    gradient = _pack_radialspace_2d((16, 22), 4.0, 3.0, "circle", 0.0, 5.0)
    y_v, x_v = torch.meshgrid(torch.arange(16), torch.arange(22), indexing="ij")
    dx, dy = x_v - 11, y_v - 8
    distance = torch.sqrt(dx ** 2 + dy ** 2)
    # the pack's maps, its 0 / 0 at the centre (NaN there) read as no move
    map_x = (x_v + torch.nan_to_num(gradient * dx / distance) * (-0.05 * 100)).to(torch.float32).numpy()
    map_y = (y_v + torch.nan_to_num(gradient * dy / distance) * (-0.05 * 100)).to(torch.float32).numpy()
    moved = _layers(images, lambda x: cv2.remap(x, map_x, map_y, cv2.INTER_LINEAR))
    blurred = _layers(moved, lambda x: cv2.stackBlur(x, (3, 3)))
    weight = gradient.clamp(0, 1)[None, ..., None]
    assert torch.allclose(out, moved * (1 - weight) + blurred * weight, atol=1e-6)
    assert not bool(out.isnan().any())
    want_mask = torch.from_numpy(cv2.remap(gradient.numpy(), map_x, map_y, cv2.INTER_LINEAR)).clamp(0, 1)
    assert torch.equal(mask[0], want_mask)
    _refused(registry, "AllorImageEffectsLensOpticAxis", "blur_intensity", "even", images=images,
             lens_shape="circle", lens_edge="around", lens_curvy=4.0, lens_zoom=2.0, lens_aperture=0.5,
             blur_intensity=5)


def _pack_aberration(image, shift, method, shift_type, mixing_type, transpose, colors, curvy):
    """The pack's ImageEffectsLensChromaticAberration on one picture, written out (torchvision's pad,
    a torch.roll a row)."""
    tf = pytest.importorskip("torchvision.transforms.functional")
    img = image.clone()
    if transpose == "rotate":
        img = img.permute(1, 0, 2)
    r, g, b = img[:, :, 0:3].split(1, 2)
    height, width = img[:, :, 0].shape
    low, high = {1: (-shift, shift), 2: (0, shift), 3: (0, shift)}[shift_type]
    f_shifts = _pack_radialspace_1d(height + 2 * shift, curvy, low, high)
    t_shifts = _pack_radialspace_1d(width + 2 * shift, curvy, low, high)
    if shift_type == 2:
        f_shifts, t_shifts = torch.flip(f_shifts, dims=(0,)), torch.flip(t_shifts, dims=(0,))
    signs = {1: (1, -1), 2: (-1, -1), 3: (1, 1), 4: (-1, 1)}[mixing_type]
    f, s = {"rb": (r, b), "rg": (r, g), "gb": (g, b)}[colors]
    results = []
    for channel, sign in zip((f, s), signs):
        pad = tf.pad(channel.squeeze(), [shift, shift], padding_mode=method).unsqueeze(2)
        shifted = torch.zeros_like(pad)
        for i in range(height + shift * 2):
            shifted[i] = torch.roll(pad[i], shifts=int(sign * f_shifts[i]), dims=0)
        if transpose == "reflect":
            for i in range(width + shift * 2):
                shifted[:, i] = torch.roll(shifted[:, i], shifts=int(sign * t_shifts[i]), dims=0)
        results.append(shifted[shift:-shift, shift:-shift, :])
    parts = {"rb": [results[0], g, results[1]], "rg": [results[0], results[1], b],
             "gb": [r, results[0], results[1]]}[colors]
    img[:, :, 0:3] = torch.cat(parts, 2)
    return img.permute(1, 0, 2) if transpose == "rotate" else img


@pytest.mark.parametrize("shift, method, shift_type, mixing_type, transpose, colors, curvy", [
    (3, "reflect", 1, 1, "none", "rb", 1.0), (4, "edge", 2, 2, "rotate", "rg", 2.0),
    (2, "constant", 3, 4, "reflect", "gb", 0.5), (5, "reflect", 1, 3, "reflect", "rb", 3.0)])
def test_lens_chromatic_aberration_against_the_packs_rolls(registry, shift, method, shift_type, mixing_type,
                                                           transpose, colors, curvy):
    images = _images(16, channels=4, height=14, width=17)
    out = call(registry, "AllorImageEffectsLensChromaticAberration", images=images, shift=shift, method=method,
               shift_type=shift_type, mixing_type=mixing_type, transpose=transpose, colors=colors, lens_curvy=curvy)
    for i in range(2):
        want = _pack_aberration(images[i], shift, method, shift_type, mixing_type, transpose, colors, curvy)
        assert torch.equal(out[i], want)


def test_lens_chromatic_aberration_where_the_packs_code_fails(registry):
    images = _images(17, height=10, width=12)
    widgets = dict(method="edge", mixing_type=1, transpose="none", colors="rb", lens_curvy=1.0)
    assert call(registry, "AllorImageEffectsLensChromaticAberration", images=images, shift=0, shift_type=1,
                **widgets) is images
    out = call(registry, "AllorImageEffectsLensChromaticAberration", images=images, shift=2, shift_type=4, **widgets)
    # every row moved by 2: red one way, blue the other, the edge repeated in
    padded = torch.nn.functional.pad(images.movedim(-1, 1), (2, 2, 2, 2), mode="replicate").movedim(1, -1)
    assert torch.equal(out[..., 0], padded[:, 2:-2, :12, 0]) and torch.equal(out[..., 2], padded[:, 2:-2, 4:, 2])
    _refused(registry, "AllorImageEffectsLensChromaticAberration", "shift", "reflect", images=images, shift=10,
             shift_type=1, **{**widgets, "method": "reflect"})


# -- noise and clamps ----------------------------------------------------------------------------


def test_noise_equals_the_packs_draws_after_seeding_numpys_generator_at_0(registry):
    images = _images(12, channels=4, height=6, width=8)
    base = images.numpy()
    np.random.seed(0)
    noise = np.random.beta(2, 3, base.shape[:3])[..., None].repeat(3, -1)
    out = call(registry, "AllorImageNoiseBeta", images=images, a=2, b=3, monochromatic="true", invert="false",
               channels="rgb")
    assert np.array_equal(out[..., :3].numpy(), (base[..., :3] + noise).astype(np.float32))
    assert torch.equal(out[..., 3], images[..., 3]) and float(out.max()) > 1.0  # not clamped, as the pack
    np.random.seed(0)
    noise = np.random.binomial(40, 0.3, base[..., [0, 3]].shape).astype(np.float32) / 255
    out = call(registry, "AllorImageNoiseBinomial", images=images, n=40, p=0.3, monochromatic="false",
               invert="true", channels="ra")
    assert np.array_equal(out[..., [0, 3]].numpy(), np.clip(base[..., [0, 3]] - noise, 0, 1))
    assert torch.equal(out[..., 1:3], images[..., 1:3])
    np.random.seed(0)
    levels = np.frombuffer(np.random.bytes(base[..., 1].size), np.uint8).reshape(base.shape[:3] + (1,))
    out = call(registry, "AllorImageNoiseBytes", images=images, monochromatic="true", invert="false", channels="g")
    assert np.array_equal(out[..., 1:2].numpy(), np.clip(base[..., 1:2] + levels.astype(np.float32) / 255, 0, 1))
    np.random.seed(0)
    noise = np.abs(np.random.normal(0, 1, base[..., :2].shape))
    noise /= noise.max()
    out = call(registry, "AllorImageNoiseGaussian", images=images, strength=0.3, monochromatic="false",
               invert="false", channels="rg")
    assert np.array_equal(out[..., :2].numpy(), np.clip(base[..., :2] + noise * 0.3, 0, 1).astype(np.float32))
    _refused(registry, "AllorImageNoiseBytes", "channels", "3 channels", images=images[..., :3],
             monochromatic="false", invert="false", channels="ba")


def test_clamps_give_their_input_back(registry):
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    assert call(registry, "AllorLatentClamp", latent=latent) is latent
    images = _images()
    assert call(registry, "AllorImageClamp", image=images) is images
    assert call(registry, "AllorControlNetClamp", control_net_clamp="net") == "net"


# -- workflows -----------------------------------------------------------------------------------

CONTAINER = [48, 32, 20, 40, 60, 1.0]
RECTANGLE = [0.1, 0.2, 0.9, 0.8, 2, 0, 0, 0, 1.0, 255, 255, 255, 0.75, 2, "lanczos"]


def test_a_ui_save_with_the_packs_classes_runs_and_round_trips(registry):
    nodes = [
        ui_node(1, "ImageContainer", CONTAINER, outputs=[("IMAGE", "IMAGE", [1, 2])]),
        ui_node(2, "ImageDrawRectangleByContainer", RECTANGLE, [("container", "IMAGE", 1, False)],
                [("IMAGE", "IMAGE", [3])]),
        ui_node(3, "ImageCompositeAbsolute", [4, 2, 0, 0, 0, 0, "images_a", "pair"],
                [("images_a", "IMAGE", 2, False), ("images_b", "IMAGE", 3, False)], [("IMAGE", "IMAGE", [4])]),
        ui_node(4, "ImageFilterGaussianBlur", [4, 4], [("images", "IMAGE", 4, False)], [("IMAGE", "IMAGE", [5])]),
        ui_node(5, "ImageTransformRotate", [90.0, "true", 1, "nearest"], [("images", "IMAGE", 5, False)],
                [("IMAGE", "IMAGE", [6])]),
        ui_node(6, "ImageBatchPermute", ["1, 1", False], [("images", "IMAGE", 6, False)], [("IMAGE", "IMAGE", [7])]),
        ui_node(7, "AlphaChanelAsMask", ["invert"], [("images", "IMAGE", 7, False)], [("MASK", "MASK", [])]),
        # as the pack's own example (images/examples/1.json) saves it
        ui_node(8, "ImageCompositeRelative", [0, 1, 0, 0, "images_a", "max", "pair"],
                [("images_a", "IMAGE", 8, False), ("images_b", "IMAGE", 9, False)], [("IMAGE", "IMAGE", [])]),
    ]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 1, 0, 2, 0, "IMAGE"], [3, 2, 0, 3, 1, "IMAGE"], [4, 3, 0, 4, 0, "IMAGE"],
             [5, 4, 0, 5, 0, "IMAGE"], [6, 5, 0, 6, 0, "IMAGE"], [7, 6, 0, 7, 0, "IMAGE"], [8, 5, 0, 8, 0, "IMAGE"],
             [9, 1, 0, 8, 1, "IMAGE"]]
    graph = ui_graph(nodes, links)
    values = {k: v[0] for k, v in run_graph(registry, graph, ["7", "8"]).values.items() if v}
    container = _back(Image.new("RGBA", (48, 32), (20, 40, 60, 255)))[None]
    assert torch.equal(values["1"], container)
    drawn = call(registry, "AllorImageDrawRectangle", width=48, height=32, **dict(zip(
        ["start_x", "start_y", "end_x", "end_y", "outline_size", "outline_red", "outline_green", "outline_blue",
         "outline_alpha", "fill_red", "fill_green", "fill_blue", "fill_alpha", "SSAA", "method"], RECTANGLE)))
    assert torch.equal(values["2"], drawn)
    assert torch.equal(values["3"][0], _pack_composite(container[0], drawn[0], (4, 2), (0, 0), 48, 32, "images_a"))
    assert torch.allclose(values["4"], _layers(values["3"], lambda x: cv2.GaussianBlur(x, (3, 3), 3, 3)),
                          atol=1e-6)
    assert values["5"].shape == (1, 48, 32, 4) and values["6"].shape == (2, 48, 32, 4)
    assert torch.equal(values["7"], values["6"][:1, ..., 3])
    # a (32 wide, 48 high after the turn) and b (48 × 32) on a 48 × 48 container: a at y = (48 - 48) · 1
    assert values["8"].shape == (1, 48, 48, 4)
    assert torch.equal(values["8"][0], _pack_composite(values["5"][0], container[0], (0, 0), (0, 0), 48, 48,
                                                       "images_a"))
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for node in nodes:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]


API_PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 24, "height": 16, "batch_size": 3, "color": 0x336699}},
    "2": {"class_type": "AlphaChanelAdd", "inputs": {"images": ["1", 0]}},
    "3": {"class_type": "ImageEffectsNegative", "inputs": {"images": ["2", 0]}},
    "4": {"class_type": "ImageFilterMax", "inputs": {"images": ["3", 0], "size": 2}},
    "5": {"class_type": "ImageTransformResizeAbsolute", "inputs": {"images": ["4", 0], "width": 12, "height": 8,
                                                                   "method": "bilinear"}},
    "6": {"class_type": "ImageBatchFork", "inputs": {"images": ["5", 0], "priority": "second"}},
    "7": {"class_type": "ImageBatchJoin", "inputs": {"images_a": ["6", 1], "images_b": ["6", 0]}},
    "8": {"class_type": "ImageTransformTranspose", "inputs": {"images": ["7", 0], "method": "rotate_270"}},
    "9": {"class_type": "AlphaChanelRemove", "inputs": {"images": ["8", 0]}},
    "10": {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}},
    "11": {"class_type": "ImageClamp", "inputs": {"image": ["9", 0]}},
}


def test_an_api_prompt_with_the_packs_classes_runs_and_round_trips(registry):
    result = run_graph(registry, API_PROMPT, ["10"])
    values = {k: v[0] for k, v in result.values.items() if v}
    negative = 1 - values["1"]
    want = _each(torch.cat([negative, torch.ones_like(negative[..., :1])], -1),
                 lambda p: p.filter(ImageFilter.MaxFilter(3)).resize((12, 8), Image.Resampling.BILINEAR))
    assert torch.equal(values["5"], want)
    assert torch.equal(values["7"], torch.cat([want[1:], want[:1]]))
    assert values["9"].shape == (3, 12, 8, 3)
    assert torch.equal(values["9"], _each(values["7"], lambda p: p.transpose(Image.Transpose.ROTATE_270))[..., :3])
    assert values["11"] is values["9"]
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in API_PROMPT.items()}
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_the_packs_classes_are_ours_and_its_left_out_ones_are_named(registry):
    import nodes.pack_nodes_allor as allor
    import nodes.pack_nodes_allor_draw as allor_draw
    ours = [cls for cls in registry if cls.__module__ in (allor.__name__, allor_draw.__name__)]
    assert len(ours) == 92
    for cls in ours:
        name = cls.comfy.class_types[0]
        assert registry.comfy_node(name) is cls, name
        assert cls.node_type == "Allor" + name
    assert custom_pack("ImageSegmentation") == "ComfyUI-Allor"
    assert custom_pack("ImageEffectsLensBokeh") == "ComfyUI-Allor"
    assert custom_pack("ImageBatchCopy") == "ComfyUI-Allor" and custom_pack("ImageBatchCopyX") is None


def test_estimates_answer_odd_widget_values_without_failing(registry):
    """An estimate sees widget values before they are checked (linked, or a save's odd ones): it
    answers (knowing nothing, where need be) and never fails, and its sizes are whole numbers."""
    import random
    odd = [None, "x", -5, 0, 1, 10 ** 9, float("nan"), float("inf"), 2.5, True, [1], {"a": 1}]
    pick = random.Random(0)
    for cls in registry:
        if not cls.__module__.startswith("nodes.pack_nodes_allor"):
            continue
        for _ in range(40):
            widgets = {n: pick.choice(odd) for n, spec in cls.input_specs.items() if spec.widget}
            inputs = {n: pick.choice([None, Size(2, 10, 12)]) for n, spec in cls.input_specs.items() if spec.socket}
            estimate = cls.estimate(widgets, inputs)
            if estimate is not None and estimate.size is not None:
                size = estimate.size
                assert all(isinstance(v, int) for v in (size.batch, size.height, size.width)), cls.node_type


# -- mends: bounded and interruptible window filters, measured sizes, the pack's formulas ---------


def _counting_interrupts(monkeypatch):
    import nodes.pack_nodes_allor as allor
    calls = []
    monkeypatch.setattr(allor, "check_interrupted", lambda: calls.append(1))
    return calls


def test_window_filters_by_strips_give_one_calls_pixels_and_hear_a_stop(registry, monkeypatch):
    import nodes.pack_nodes_allor as allor
    monkeypatch.setattr(allor, "STRIP_ROWS", 5)
    images = _images(20, batch=1, channels=4, height=41, width=23)
    images[:, :20] *= 0.2  # strips of different ranges: the bilateral filter's value table follows the range
    calls = _counting_interrupts(monkeypatch)
    out = call(registry, "AllorImageFilterRank", images=images, size=4, rank=11)
    assert torch.equal(out, _each(images, lambda p: p.filter(ImageFilter.RankFilter(5, 11))))
    assert len(calls) >= 41 // 5  # a stop check each strip, not once an image
    for name, make in (("Min", ImageFilter.MinFilter), ("Max", ImageFilter.MaxFilter),
                       ("Mode", ImageFilter.ModeFilter)):
        out = call(registry, f"AllorImageFilter{name}", images=images, size=6)
        assert torch.equal(out, _each(images, lambda p: p.filter(make(7)))), name
    cases = [
        ("GaussianBlur", dict(size_x=6, size_y=12), lambda x: cv2.GaussianBlur(x, (5, 11), 5)),
        ("GaussianBlurAdvanced", dict(size_x=4, size_y=30, sigma_x=3, sigma_y=0),
         lambda x: cv2.GaussianBlur(x, (3, 29), 3)),
        ("BilateralBlur", dict(size=10, sigma_color=0.9, sigma_intensity=0.4),
         lambda x: cv2.bilateralFilter(x, 9, 100 - 0.9 * 100, 0.4 * 100)),
    ]
    for name, widgets, reference in cases:
        calls.clear()
        out = call(registry, f"AllorImageFilter{name}", images=images, **widgets)
        if name == "BilateralBlur":  # its weight table follows each strip's value range: float32 rounding
            assert torch.allclose(out, _layers(images, reference), rtol=0, atol=1e-6), name
        else:
            assert torch.equal(out, _layers(images, reference)), name
        assert len(calls) > 2, name
    median = call(registry, "AllorImageFilterMedianBlur", images=images, size=16)
    assert torch.equal(median, _layers((images * 255).to(torch.uint8), lambda x: cv2.medianBlur(x, 15)) / 255)


def test_window_filters_refuse_work_beyond_reason_naming_size(registry, monkeypatch):
    import nodes.pack_nodes_allor as allor
    images = _images(21, batch=1, height=40, width=30)
    # the real bounds: each widget's largest window runs on pictures up to 1536² (not on 8192² ones);
    # the Gaussian's largest kernels up to about 2896², as its help says
    assert 63 * 63 * 1536 * 1536 <= allor.MOST_RANK_WORK < 63 * 63 * 8192 * 8192
    assert 63 * 63 * 1536 * 1536 <= allor.MOST_BILATERAL_WORK
    assert 2046 * 2896 ** 2 <= allor.MOST_GAUSSIAN_WORK < 2046 * 2898 ** 2
    # ... through the nodes: the largest rank / min / max / mode window on an SDXL 1024 × 1536
    # picture is not refused (the filtering itself left out here: minutes)
    sdxl = torch.zeros(1, 1536, 1024, 3)
    monkeypatch.setattr(allor, "_pil_by_strips", lambda picture, image_filter, reach: picture)
    for name in ("Rank", "Min", "Max", "Mode"):
        extra = {"rank": 1} if name == "Rank" else {}
        assert call(registry, f"AllorImageFilter{name}", images=sdxl, size=62, **extra).shape == sdxl.shape, name
        _refused(registry, f"AllorImageFilter{name}", "size", "beyond", images=torch.zeros(1, 1537, 1536, 3),
                 size=62, **extra)
    monkeypatch.undo()
    # a median window wider than the picture works as the pack's (OpenCV's) call: its default on 8 × 7
    small = _images(23, batch=1, height=8, width=7)
    for size in (10, 34):
        median = call(registry, "AllorImageFilterMedianBlur", images=small, size=size)
        assert torch.equal(median, _layers((small * 255).to(torch.uint8), lambda x: cv2.medianBlur(x, size - 1)) / 255)
    monkeypatch.setattr(allor, "MOST_RANK_WORK", 25 * 40 * 30)  # a 5² window on 40 × 30 is the most
    assert call(registry, "AllorImageFilterMode", images=images, size=4).shape == images.shape
    _refused(registry, "AllorImageFilterMode", "size", "beyond", images=images, size=6)
    _refused(registry, "AllorImageFilterRank", "size", "beyond", images=images, size=6, rank=1)
    monkeypatch.setattr(allor, "MOST_BILATERAL_WORK", 25 * 40 * 30)
    _refused(registry, "AllorImageFilterBilateralBlur", "size", "beyond", images=images, size=8,
             sigma_color=0.5, sigma_intensity=0.5)
    monkeypatch.setattr(allor, "MOST_GAUSSIAN_WORK", 10 * 40 * 30)
    _refused(registry, "AllorImageFilterGaussianBlur", "size_x", "beyond", images=images, size_x=10, size_y=4)
    monkeypatch.setattr(allor, "MOST_MEDIAN_WORK", 5 * 40 * 30)
    _refused(registry, "AllorImageFilterMedianBlur", "size", "beyond", images=images, size=8)


def test_pil_filters_name_rank_only_where_there_is_one(registry, monkeypatch):
    import nodes.pack_nodes_allor as allor
    images = _images(22, batch=1)

    def bad_filter(self):
        raise ValueError("bad filter")
    monkeypatch.setattr(allor.AllorImageFilterSmooth, "_filter", bad_filter)
    with pytest.raises(ValueError, match="bad filter") as caught:
        call(registry, "AllorImageFilterSmooth", images=images)
    assert not isinstance(caught.value, NodeInputError)
    _refused(registry, "AllorImageFilterRank", "rank", "below", images=images, size=2, rank=9)


def test_text_canvas_held_to_the_servers_max_pixels(registry, dejavu_in_models_fonts, monkeypatch):
    import nodes.pack_nodes_allor_draw as draw
    from graphflow.resource_limits import RunLimits
    inputs = dict(text="MMM MMM", font="DejaVuSans.ttf", size=40, red=255, green=255, blue=255, alpha=1.0,
                  margin_x=0, margin_y=0)
    height, width = call(registry, "AllorImageText", **inputs).shape[1:3]
    monkeypatch.setattr(draw, "run_limits", lambda: RunLimits(max_pixels=height * width - 1))
    _refused(registry, "AllorImageText", "size", "megapixels", **inputs)
    _refused(registry, "AllorImageTextMultiline", "size", "megapixels", align="left",
             **{**inputs, "text": "MMM MMM\nMMM MMM"})
    _refused(registry, "AllorImageTextOutlined", "size", "megapixels", outline_size=2, outline_red=0,
             outline_green=0, outline_blue=0, **inputs)
    monkeypatch.setattr(draw, "run_limits", lambda: RunLimits(max_pixels=height * width))
    assert call(registry, "AllorImageText", **inputs).shape[1:3] == (height, width)


def test_batch_permute_held_to_max_batch_and_refusing_unreadable_numbers(registry, monkeypatch):
    import nodes.pack_nodes_allor as allor
    from graphflow.resource_limits import RunLimits
    images = _images(23, batch=3, height=4, width=5)
    monkeypatch.setattr(allor, "run_limits", lambda: RunLimits(max_batch=4))
    assert call(registry, "AllorImageBatchPermute", images=images, permute="1 2 3 1",
                start_with_zero=False).shape[0] == 4
    _refused(registry, "AllorImageBatchPermute", "permute", "allows", images=images, permute="1 2 3 1 2",
             start_with_zero=False)
    monkeypatch.setattr(allor, "run_limits", lambda: RunLimits())
    _refused(registry, "AllorImageBatchPermute", "permute", "digits", images=images, permute="9" * 5000,
             start_with_zero=False)
    # numbers past int64 are cut to the batch's end as any number past it
    far = call(registry, "AllorImageBatchPermute", images=images, permute="2 " + "9" * 30, start_with_zero=False)
    assert torch.equal(far, images[[1, 2]])
    monkeypatch.setattr(allor, "check_run_memory", lambda name, what, images: (_ for _ in ()).throw(
        NodeInputError(name, f"{what}: too much memory")))
    _refused(registry, "AllorImageBatchPermute", "permute", "memory", images=images, permute="1",
             start_with_zero=False)


def test_composite_relative_sum_height_is_the_packs_container(registry):
    a = _images(24, batch=1, height=6, width=8)
    b = _images(25, batch=1, height=9, width=5, channels=4)
    for a_size, b_size, (bx, by) in (((8, 6), (5, 9), (0.5, 1.0)), ((8, 6), (12, 4), (0.0, 0.5))):
        a = _images(24, batch=1, height=a_size[1], width=a_size[0])
        b = _images(25, batch=1, height=b_size[1], width=b_size[0], channels=4)
        out = call(registry, "AllorImageCompositeRelative", images_a=a, images_b=b, images_a_x=0.0,
                   images_a_y=1.0, images_b_x=bx, images_b_y=by, background="images_a",
                   container_size_type="sum_height", method="pair")
        # the pack's sum_height: images_a's width, images_a's height twice; offsets int((container - image) · x)
        width, height = a_size[0], a_size[1] + a_size[1]
        a_xy = (int((width - a_size[0]) * 0.0), int((height - a_size[1]) * 1.0))
        b_xy = (int((width - b_size[0]) * bx), int((height - b_size[1]) * by))
        assert out.shape == (1, height, width, 4)
        assert torch.equal(out[0], _pack_composite(a[0], b[0], a_xy, b_xy, width, height, "images_a"))
    # b wider than the container at x 0.5: shifted left by half its overflow and cut (the pack fails there)
    out = call(registry, "AllorImageCompositeRelative", images_a=a, images_b=b, images_a_x=0.0, images_a_y=0.0,
               images_b_x=0.5, images_b_y=0.0, background="images_a", container_size_type="sum_height",
               method="pair")
    assert torch.equal(out[0], _pack_composite(a[0], b[0], (0, 0), ((8 - 12) // 2, 0), 8, 12, "images_a"))
    assert registry.get("AllorImageCompositeRelative").estimate(
        {"container_size_type": "sum_height", "method": "pair"},
        {"images_a": Size(1, 6, 8), "images_b": Size(1, 4, 12)}).size == Size(1, 12, 8)


def test_rotate_estimate_is_the_expanded_box(registry):
    images = _images(26, batch=1, height=100, width=100)
    node = registry.get("AllorImageTransformRotate")
    for angle, ssaa, shape in ((45.0, 1, (100, 100)), (30.0, 2, (40, 70)), (90.0, 1, (30, 50)), (200.0, 1, (20, 60))):
        pictures = images[:, :shape[0], :shape[1]]
        out = call(registry, "AllorImageTransformRotate", images=pictures, angle=angle, expand="true", SSAA=ssaa,
                   method="bilinear")
        size = node.estimate({"angle": angle, "expand": "true", "SSAA": ssaa, "method": "bilinear"},
                             {"images": Size(1, *shape)}).size
        # a lower bound within PIL's outward rounding of the corners
        assert size.height <= out.shape[1] <= size.height + 2 and size.width <= out.shape[2] <= size.width + 2, angle
    assert node.estimate({"angle": 45.0, "expand": "true", "SSAA": 1}, {"images": Size(1, 100, 100)}).size.width > 140
    assert node.estimate({"angle": 45.0, "expand": "false", "SSAA": 1},
                         {"images": Size(1, 100, 100)}).size == Size(1, 100, 100)


def test_chromatic_aberration_declares_its_padded_working_memory(registry):
    node = registry.get("AllorImageEffectsLensChromaticAberration")
    estimate = node.estimate({"shift": 4096}, {"images": Size(1, 8192, 8192)})
    # the padded channel and its int64 row index alone: (8192 + 2 · 4096)² · (4 + 8) bytes
    assert estimate.memory >= (8192 + 2 * 4096) ** 2 * 12
    assert estimate.size == Size(1, 8192, 8192)
    assert node.estimate({"shift": None}, {"images": Size(1, 8, 8)}).memory == 0


def test_padding_refusal_names_the_input_at_fault(registry):
    images = _images(27, height=12, width=16)
    # add_height pads left and right (the width, 16); add_width above and below (the height, 12)
    _refused(registry, "AllorImageTransformPaddingAbsolute", "add_height", "width", images=images, add_width=1,
             add_height=16, method="reflect")
    _refused(registry, "AllorImageTransformPaddingRelative", "scale_width", "height", images=images,
             scale_width=1.0, scale_height=0.1, method="reflect")
    _refused(registry, "AllorImageTransformPaddingRelative", "scale_height", "width", images=images,
             scale_width=0.1, scale_height=1.5, method="reflect")
