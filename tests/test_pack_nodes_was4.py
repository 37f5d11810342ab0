"""WAS Node Suite's fourth round (nodes/pack_nodes_was4.py) against the libraries the pack calls:
pilgram's blend modes and Instagram filters called here directly, Pillow's enhancers and
composite, OpenCV's Gaussian blur of the rectangles, scikit-learn's seeded KMeans for the palette;
and read from a UI save and an API prompt under the pack's class names, and exported back."""

import math
import random

import cv2
import numpy as np
import pilgram
import pilgram.css.blending
import pytest
import torch
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.resource_limits import RunLimits, Size
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_was4 import sparkle
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def photo(seed: int, size=(40, 56)) -> torch.Tensor:
    """A smooth colour picture with some noise, [H, W, 3] in 0..1."""
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    levels = np.stack([np.sin(3 * x + seed), np.cos(2 * y - seed), x * y], axis=-1) * 0.5 + 0.5
    return torch.from_numpy(np.clip(levels + rng.normal(0, 0.08, levels.shape), 0, 1).astype(np.float32))


IMAGES = torch.stack([photo(1), photo(2)])
OTHER = torch.stack([photo(7), photo(8)])


def pictures(images):
    """The pack's tensor2pil of each image."""
    return [Image.fromarray(np.clip(255.0 * i.numpy(), 0, 255).astype(np.uint8)) for i in images]


def tensor(picture) -> torch.Tensor:
    """The pack's pil2tensor."""
    return torch.from_numpy(np.array(picture).astype(np.float32) / 255.0)


# -- Image Blending Mode -----------------------------------------------------------------------------

MODES = ("add", "color", "color_burn", "color_dodge", "darken", "difference", "exclusion", "hard_light", "hue",
         "lighten", "multiply", "overlay", "screen", "soft_light")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("percentage", [1.0, 0.35])
def test_blending_modes_are_pilgrams_mixed_by_the_percentage(registry, mode, percentage):
    got = call(registry, "WasImageBlendingMode", image_a=IMAGES, image_b=OTHER, mode=mode,
               blend_percentage=percentage)
    assert got.shape == IMAGES.shape
    for i, (a, b) in enumerate(zip(pictures(IMAGES), pictures(OTHER))):
        blend = getattr(pilgram.css.blending, "normal" if mode == "add" else mode)(a, b).convert("RGB")
        if percentage == 1.0:  # the mask keeps none of image_a
            assert torch.equal(got[i], tensor(blend))
        # the pack's mix: Pillow's composite through a uniform mask of 255 - round(p * 255)
        keep = 255 - round(percentage * 255)
        expected = (np.array(a, dtype=np.float64) * keep + np.array(blend, dtype=np.float64) * (255 - keep)) / 255
        assert np.abs(got[i].numpy() * 255 - expected).max() <= 1.0
        assert torch.equal(got[i], tensor(Image.composite(a, blend, Image.new("L", a.size, keep))))


def test_blending_mode_add_is_pilgrams_normal_so_image_b(registry):
    got = call(registry, "WasImageBlendingMode", image_a=IMAGES, image_b=OTHER[:1], mode="add")
    for i in range(2):
        assert torch.equal(got[i], tensor(pictures(OTHER)[0]))


def test_blending_mode_bad_inputs(registry):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageBlendingMode", image_a=IMAGES, image_b=OTHER[:, :20])
    assert caught.value.input == "image_b" and "size" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageBlendingMode", image_a=IMAGES[:1], image_b=OTHER)
    assert caught.value.input == "image_b"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageBlendingMode", image_a=IMAGES[0], image_b=OTHER)
    assert caught.value.input == "image_a" and "[B, H, W, C]" in str(caught.value)


# -- Image Style Filter ------------------------------------------------------------------------------

STYLES = ("1977", "aden", "brannan", "brooklyn", "clarendon", "earlybird", "gingham", "hudson", "inkwell", "kelvin",
          "lark", "lofi", "maven", "mayfair", "moon", "nashville", "perpetua", "reyes", "rise", "slumber",
          "stinson", "toaster", "valencia", "walden", "willow", "xpro2")


@pytest.mark.parametrize("style", STYLES)
def test_style_filters_are_pilgrams(registry, style):
    got = call(registry, "WasImageStyleFilter", image=IMAGES, style=style)
    assert got.shape == IMAGES.shape
    for i, picture in enumerate(pictures(IMAGES)):
        assert torch.equal(got[i], tensor(getattr(pilgram, "_1977" if style == "1977" else style)(picture)))


def pack_sparkle(image, rng):
    """The suite's sparkle, step by step as its source reads, with rng for Python's random module."""
    image = image.convert("RGBA")
    image = ImageEnhance.Contrast(image).enhance(1.25)
    image = ImageEnhance.Color(image).enhance(1.5)
    bloom = image.filter(ImageFilter.GaussianBlur(radius=20))
    bloom = ImageEnhance.Brightness(bloom).enhance(1.2)
    bloom.putalpha(128)
    bloom = bloom.convert(image.mode)
    image = Image.alpha_composite(image, bloom)
    width, height = image.size
    layers = []
    for _ in range(2):
        particles = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(particles)
        for _ in range(5000):
            x = rng.randint(0, width)
            y = rng.randint(0, height)
            r = rng.randint(0, 255)
            g = rng.randint(0, 255)
            b = rng.randint(0, 255)
            draw.point((x, y), fill=(r, g, b, 255))
        particles = particles.filter(ImageFilter.GaussianBlur(radius=1))
        particles.putalpha(128)
        layers.append(particles)
    image = pilgram.css.blending.color_dodge(image, layers[0])
    return pilgram.css.blending.lighten(image, layers[1])


def test_fairy_tale_is_the_suites_sparkle(registry):
    picture = pictures(IMAGES)[0]
    ours = sparkle(picture, random.Random(11))
    assert np.array_equal(np.array(ours), np.array(pack_sparkle(picture, random.Random(11))))
    # unseeded, as in the pack: two runs differ, and each is a picture of the same size
    first = call(registry, "WasImageStyleFilter", image=IMAGES, style="fairy tale")
    second = call(registry, "WasImageStyleFilter", image=IMAGES, style="fairy tale")
    assert first.shape == IMAGES.shape and not torch.equal(first, second)


# -- Image Dragan Photography Filter -----------------------------------------------------------------

def pack_dragan(image, saturation, contrast, sharpness, brightness, radius, samples, strength):
    """The suite's dragan_filter as its source reads (colorize always true: the node passes a text)."""
    grey = image.convert("L")
    contrast_image = ImageEnhance.Contrast(grey).enhance(contrast)
    saturation_image = ImageEnhance.Color(contrast_image).enhance(saturation)
    sharpness_image = ImageEnhance.Sharpness(saturation_image).enhance(sharpness)
    brightness_image = ImageEnhance.Brightness(sharpness_image).enhance(brightness)
    blurred = brightness_image.filter(ImageFilter.GaussianBlur(radius=-radius))
    highpass = ImageChops.subtract(image, blurred.convert("RGB"))
    highpass = ImageChops.screen(Image.new("RGB", image.size, (127, 127, 127)), highpass.resize(image.size))
    passed = pilgram.css.blending.overlay(brightness_image.convert("RGB"), highpass)
    for _ in range(samples if samples > 0 else 1):
        passed = pilgram.css.blending.overlay(passed, highpass)
    final = ImageChops.blend(brightness_image.convert("RGB"), passed, strength)
    return pilgram.css.blending.color(final, image)


@pytest.mark.parametrize("settings", [(1.0, 1.0, 1.0, 1.0, 6.0, 1, 1.0), (1.6, 1.3, 2.0, 0.9, 2.5, 0, 0.4),
                                      (0.5, 2.0, 0.0, 1.4, 0.0, 3, 2.2)])
def test_dragan_filter_follows_the_suites_recipe(registry, settings):
    saturation, contrast, sharpness, brightness, radius, samples, strength = settings
    got = call(registry, "WasImageDraganPhotographyFilter", image=IMAGES, saturation=saturation, contrast=contrast,
               sharpness=sharpness, brightness=brightness, highpass_radius=radius, highpass_samples=samples,
               highpass_strength=strength, colorize="true")
    for i, picture in enumerate(pictures(IMAGES)):
        assert torch.equal(got[i], tensor(pack_dragan(picture, *settings)))
    # "false" is a non-empty text: the pack colorizes all the same
    unchanged = call(registry, "WasImageDraganPhotographyFilter", image=IMAGES, saturation=saturation,
                     contrast=contrast, sharpness=sharpness, brightness=brightness, highpass_radius=radius,
                     highpass_samples=samples, highpass_strength=strength, colorize="false")
    assert torch.equal(got, unchanged)


# -- Image Nova Filter -------------------------------------------------------------------------------

@pytest.mark.parametrize("amplitude, frequency", [(0.1, 3.14), (0.8, 1.7), (1.0, 100.0), (0.0, 5.0)])
def test_nova_filter_is_the_sine_of_each_level(registry, amplitude, frequency):
    small = IMAGES[:, :6, :7]
    got = call(registry, "WasImageNovaFilter", image=small, amplitude=amplitude, frequency=frequency)
    for n, picture in enumerate(pictures(small)):
        levels = np.array(picture)
        capped = min(frequency, picture.width / 2)
        expected = np.zeros_like(levels)
        for index, level in np.ndenumerate(levels):
            # the pack's int(), stored in 8 bits as NumPy 1 stored a negative Python int (wrapped)
            expected[index] = int(amplitude * math.sin(2 * math.pi * capped * (int(level) / 255)) * 255) % 256
        assert torch.equal(got[n], torch.from_numpy(expected.astype(np.float32) / 255.0))


def pack_shadows_and_highlights(image, shadow_thresh, highlight_thresh, shadow_factor, highlight_factor,
                                shadow_smooth, highlight_smooth, simplify_masks):
    """The suite's shadows_and_highlights as its source reads (an RGB picture, no alpha)."""
    grays = image.convert("L")
    grays = grays.filter(ImageFilter.GaussianBlur(radius=float(simplify_masks)))
    shadow_mask = Image.eval(grays, lambda x: 255 if x < shadow_thresh else 0)
    highlight_mask = Image.eval(grays, lambda x: 255 if x > highlight_thresh else 0)
    shadow_mask = shadow_mask.filter(ImageFilter.GaussianBlur(radius=shadow_smooth))
    highlight_mask = highlight_mask.filter(ImageFilter.GaussianBlur(radius=highlight_smooth))
    image_shadow = Image.eval(image.copy(), lambda x: x * shadow_factor)
    image_highlight = Image.eval(image.copy(), lambda x: x * highlight_factor)
    shadow_mask = shadow_mask.filter(ImageFilter.GaussianBlur(radius=shadow_smooth))
    highlight_mask = highlight_mask.filter(ImageFilter.GaussianBlur(radius=highlight_smooth))
    result = image.copy()
    result.paste(image_shadow, shadow_mask)
    result.paste(image_highlight, highlight_mask)
    return pilgram.css.blending.color(result, image), shadow_mask, highlight_mask


@pytest.mark.parametrize("settings", [(75.0, 175.0, 1.5, 0.5, 0.25, 0.25, 0.0), (120.0, 140.0, 0.3, 2.5, 4.0, 1.5, 2.0),
                                      (60.0, 200.0, -1.0, 1.2, 0.0, 0.0, 0.0)])
def test_shadows_and_highlights_follow_the_suites_recipe(registry, settings):
    shadow_t, highlight_t, shadow_f, highlight_f, shadow_s, highlight_s, simplify = settings
    image, shadows, highlights = call(registry, "WasImageShadowsAndHighlights", image=IMAGES,
                                      shadow_threshold=shadow_t, shadow_factor=shadow_f, shadow_smoothing=shadow_s,
                                      highlight_threshold=highlight_t, highlight_factor=highlight_f,
                                      highlight_smoothing=highlight_s, simplify_isolation=simplify)
    for i, picture in enumerate(pictures(IMAGES)):
        result, shadow_mask, highlight_mask = pack_shadows_and_highlights(picture, *settings)
        assert torch.equal(image[i], tensor(result))
        assert torch.equal(shadows[i], tensor(shadow_mask.convert("RGB")))
        assert torch.equal(highlights[i], tensor(highlight_mask.convert("RGB")))
    assert shadows.shape == highlights.shape == IMAGES.shape


def test_masks_combine_batch_is_the_clamped_sum(registry):
    masks = torch.rand(3, 8, 9) * 0.6
    got = call(registry, "WasMasksCombineBatch", masks=masks)
    expected = torch.clamp(torch.sum(torch.stack([m.unsqueeze(0) for m in masks], dim=0), dim=0), 0, 1)
    assert got.shape == (1, 8, 9) and torch.equal(got, expected)
    assert torch.equal(call(registry, "WasMasksCombineBatch", masks=masks[0]), masks[:1])
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasMasksCombineBatch", masks=torch.zeros(1, 1, 4, 4))
    assert caught.value.input == "masks"


# -- Mask Rect Area (and Advanced) -------------------------------------------------------------------

def pack_rect(height, width, top, bottom, left, right, blur):
    mask = torch.zeros((height, width))
    mask[top:bottom, left:right] = 1
    if blur > 0:
        mask = torch.from_numpy(cv2.GaussianBlur(mask.numpy().astype("float32"), (blur * 2 + 1, blur * 2 + 1), 0))
    return mask.unsqueeze(0)


@pytest.mark.parametrize("x, y, width, height, blur", [(0, 0, 50, 50, 0), (29, 7, 41, 13, 0), (10, 20, 30, 70, 5),
                                                      (60, 80, 100, 100, 0), (33, 67, 0, 10, 3), (1, 99, 58, 1, 40)])
def test_mask_rect_area_in_percent_of_512(registry, x, y, width, height, blur):
    got = call(registry, "WasMaskRectArea", x=x, y=y, width=width, height=height, blur_radius=blur)
    # the pack's rule: int() of (percent / 100) * 512 on Python floats
    left, top = int(x / 100 * 512), int(y / 100 * 512)
    right, bottom = int((x / 100 + width / 100) * 512), int((y / 100 + height / 100) * 512)
    expected = pack_rect(512, 512, top, bottom, left, right, blur)
    assert got.shape == (1, 512, 512) and got.dtype == torch.float32
    assert torch.equal(got, expected)


def test_mask_rect_area_rounds_as_the_pack_floats_do(registry):
    # 0.29 * 512 = 148.48 and (0.1 + 0.2) * 512 = 153.60000000000002: cut, not rounded
    got = call(registry, "WasMaskRectArea", x=29, y=10, width=1, height=20)
    rows, columns = torch.nonzero(got[0], as_tuple=True)
    assert (columns.min().item(), columns.max().item()) == (148, 152)  # int(0.3 * 512) = 153, exclusive
    assert (rows.min().item(), rows.max().item()) == (51, 152)


@pytest.mark.parametrize("x, y, width, height, image_width, image_height, blur",
                         [(0, 0, 256, 256, 512, 512, 0), (64, 128, 320, 64, 384, 256, 0),
                          (128, 0, 4096, 4096, 256, 192, 7), (300, 10, 5, 90, 320, 128, 2),
                          (512, 0, 64, 64, 512, 64, 3)])
def test_mask_rect_area_advanced_in_pixels(registry, x, y, width, height, image_width, image_height, blur):
    got = call(registry, "WasMaskRectAreaAdvanced", x=x, y=y, width=width, height=height, image_width=image_width,
               image_height=image_height, blur_radius=blur)
    assert torch.equal(got, pack_rect(image_height, image_width, y, y + height, x, x + width, blur))


def test_rect_masks_sizes_are_known_before_the_run(registry):
    assert registry.get("WasMaskRectArea").estimate({}, {}).size == Size(1, 512, 512)
    graph = {"1": {"class_type": "Mask Rect Area (Advanced)",
                   "inputs": {"x": 0, "y": 0, "width": 64, "height": 64, "image_width": 4096, "image_height": 4096,
                              "blur_radius": 0}}}
    result = Executor(registry, limits=RunLimits(max_pixels=1024 * 1024)).run(parse_workflow(graph, registry),
                                                                             outputs=["1"])
    assert not result.ok
    assert result.problems and result.problems[0].input in ("image_width", "image_height")


# -- Image Color Palette -----------------------------------------------------------------------------

def pack_palette(picture, colors):
    """The suite's generate_palette's colours, with scikit-learn's KMeans as it calls it."""
    from sklearn.cluster import KMeans
    img = picture.resize((picture.width // 2, picture.height // 2), resample=Image.BILINEAR)
    pixels = np.array(img).reshape((-1, 3))
    centres = np.uint8(KMeans(n_clusters=colors, random_state=0, n_init="auto").fit(pixels).cluster_centers_)
    luminance = np.sqrt(np.dot(centres, [0.299, 0.587, 0.114]))
    order = np.argsort(luminance)
    centres, luminance = centres[order], luminance[order]
    groups = {0: [], 1: [], 2: []}
    for i in range(colors):
        groups[int(np.argmax(centres[i]))].append((centres[i], luminance[i]))
    ordered = []
    for key in (0, 1, 2):
        ordered += [tuple(int(c) for c in colour) for colour, _ in sorted(groups[key], key=lambda item: item[1])]
    return ordered


@pytest.mark.parametrize("colors, mode", [(8, "Chart"), (10, "Chart"), (16, "back_to_back")])
def test_color_palette_is_the_seeded_kmeans_palette(registry, colors, mode):
    image, palettes = call(registry, "WasImageColorPalette", image=IMAGES, colors=colors, mode=mode)
    rows = 1 if mode == "back_to_back" else int(math.sqrt(colors))
    columns = colors if mode == "back_to_back" else math.ceil(colors / rows)
    assert image.shape == (2, rows * 128, columns * 128, 3)
    assert isinstance(palettes, list) and len(palettes) == 2
    for n, picture in enumerate(pictures(IMAGES)):
        colours = pack_palette(picture, colors)
        assert palettes[n] == "\n".join("#%02x%02x%02x" % c for c in colours)
        drawn = (image[n].numpy() * 255).round().astype(np.uint8)
        for i, colour in enumerate(colours):
            row, column = (0, i) if mode == "back_to_back" else (i % rows, i // rows)
            # the cell's top-left quarter: away from where any label might reach
            cell = drawn[row * 128:row * 128 + 64, column * 128:column * 128 + 64]
            assert (cell == np.array(colour, dtype=np.uint8)).all()
        if mode == "Chart" and colors % rows:  # the last column's empty places stay white
            assert (drawn[-1, -1] == 255).all()


def test_color_palette_estimate_and_errors(registry):
    cls = registry.get("WasImageColorPalette")
    estimate = cls.estimate({"colors": 256, "mode": "back_to_back"}, {"image": Size(3, 100, 200)})
    assert estimate.size == Size(3, 128, 256 * 128) and estimate.memory == 100 * 200 // 4 * 3 * 8 * 4
    assert cls.estimate({"colors": 20, "mode": "Chart"}, {"image": Size(1, 8, 8)}).size == Size(1, 4 * 128, 5 * 128)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageColorPalette", image=IMAGES[:, :6, :6], colors=16)
    assert caught.value.input == "colors"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageColorPalette", image=IMAGES[0])
    assert caught.value.input == "image"


def test_color_palette_refuses_work_over_its_budget(registry, monkeypatch):
    import nodes.pack_nodes_was4 as module
    # the pack's own sizes: a 2050 x 2050 image at 16 colours is over 2^24 halved pixels x colours (15 fit);
    # a 2900 x 2900 one is over it even at 8 colours. Both are refused before KMeans starts.
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageColorPalette", image=torch.zeros(1, 2050, 2050, 3), colors=16)
    assert caught.value.input == "colors" and "at most 15" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageColorPalette", image=torch.zeros(1, 2900, 2900, 3), colors=8)
    assert caught.value.input == "image"
    # the bound is halved pixels x colours: with a budget of 20 x 28 x 9 the 40 x 56 images take 9, not 10
    monkeypatch.setattr(module, "PALETTE_WORK_BUDGET", 20 * 28 * 9)
    _, palettes = call(registry, "WasImageColorPalette", image=IMAGES[:1], colors=9)
    assert palettes[0] == "\n".join("#%02x%02x%02x" % c for c in pack_palette(pictures(IMAGES[:1])[0], 9))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageColorPalette", image=IMAGES[:1], colors=10)
    assert caught.value.input == "colors" and "at most 9" in str(caught.value)
    # a stop is heard between images: here before the second of two
    from graphflow.context import Interrupted
    checks = []

    def stop_at_the_second():
        checks.append(1)
        if len(checks) == 2:
            raise Interrupted("stop")
    monkeypatch.setattr(module, "check_interrupted", stop_at_the_second)
    with pytest.raises(Interrupted):
        call(registry, "WasImageColorPalette", image=IMAGES, colors=8)
    assert len(checks) == 2


@pytest.mark.parametrize("size", [(1, 64), (64, 1), (1, 1)])
def test_color_palette_refuses_an_image_with_nothing_left_when_halved(registry, size):
    # the pack's halving resize to a side of 0 fails inside Pillow
    with pytest.raises(ValueError):
        Image.new("RGB", (size[1], size[0])).resize((size[1] // 2, size[0] // 2), resample=Image.BILINEAR)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageColorPalette", image=torch.zeros(1, *size, 3), colors=8)
    assert caught.value.input == "image"


# -- workflows ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, says", [
    ("Image Rembg (Remove Background)", "rembg"), ("Diffusers Model Loader", "diffusers_convert.load_diffusers"),
    ("Diffusers Hub Model Down-Loader", "Hugging Face hub"), ("SAM Parameters", "SAM Image Mask"),
    ("SAM Parameters Combine", "SAM Image Mask")])
def test_left_out_classes_are_refused_by_name_with_why(registry, name, says):
    from graphflow.comfy_format import custom_pack, unknown_type_hint
    assert registry.comfy_node(name) is None and custom_pack(name) == "WAS Node Suite"
    assert says in unknown_type_hint(name)
    result = Executor(registry).run(parse_workflow({"1": {"class_type": name, "inputs": {}}}, registry))
    assert not result.ok and any(name in p.message and says in p.message for p in result.problems)


def test_the_module_help_leaves_out_no_node_it_builds(registry):
    import nodes.pack_nodes_was4 as module
    help_text = " ".join(module.__doc__.split())  # names may wrap across lines
    left_out = help_text.split("Left out here")[1]
    built = [cls.comfy.class_types[0] for cls in vars(module).values()
             if isinstance(cls, type) and cls.__module__ == module.__name__ and getattr(cls, "comfy", None)]
    assert len(built) == 33
    assert [name for name in built if name in left_out] == []
    assert all(name in help_text.split("Read from")[0] for name in built)


def test_was4_nodes_in_a_ui_save(registry):
    nodes = [ui_node(1, "EmptyImage", [32, 24, 1, 0xff8000], outputs=[("IMAGE", "IMAGE", [1, 2, 3])]),
             ui_node(2, "Image Blending Mode", ["multiply", 0.5],
                     inputs=[("image_a", "IMAGE", 1, False), ("image_b", "IMAGE", 2, False)],
                     outputs=[("image", "IMAGE", [4])]),
             ui_node(3, "Image Style Filter", ["inkwell"], inputs=[("image", "IMAGE", 3, False)],
                     outputs=[("IMAGE", "IMAGE", [])]),
             ui_node(4, "Mask Rect Area", [10, 20, 30, 40, 2], outputs=[("MASKS", "MASK", [])]),
             ui_node(5, "Mask Rect Area (Advanced)", [64, 0, 128, 64, 256, 128, 0], outputs=[("MASKS", "MASK", [])]),
             ui_node(6, "Image Nova Filter", [0.2, 2.0], inputs=[("image", "IMAGE", 4, False)],
                     outputs=[("IMAGE", "IMAGE", [])]),
             ui_node(7, "Image Dragan Photography Filter", [1.2, 1.1, 1.0, 1.0, 3.0, 1, 0.5, "false"],
                     inputs=[("image", "IMAGE", 5, False)], outputs=[("IMAGE", "IMAGE", [])]),
             ui_node(8, "Image Color Palette", [8, "back_to_back"], inputs=[("image", "IMAGE", 6, False)],
                     outputs=[("image", "IMAGE", []), ("color_palettes", "LIST", [])])]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 2, 1, "IMAGE"], [3, 1, 0, 3, 0, "IMAGE"],
             [4, 2, 0, 6, 0, "IMAGE"], [5, 2, 0, 7, 0, "IMAGE"], [6, 3, 0, 8, 0, "IMAGE"]]
    nodes[1]["outputs"][0]["links"] = [4, 5]
    nodes[2]["outputs"][0]["links"] = [6]
    graph = ui_graph(nodes, links)
    values = run_graph(registry, graph, ["2", "3", "4", "5", "6", "7", "8"]).values
    orange = Image.new("RGB", (32, 24), (255, 128, 0))
    multiplied = pilgram.css.blending.multiply(orange, orange).convert("RGB")
    mixed = Image.composite(orange, multiplied, Image.new("L", orange.size, 255 - round(0.5 * 255)))
    assert torch.equal(values["2"][0][0], tensor(mixed))
    assert torch.equal(values["3"][0][0], tensor(pilgram.inkwell(orange)))
    assert torch.equal(values["4"][0], pack_rect(512, 512, 102, 307, 51, 204, 2))
    assert torch.equal(values["5"][0], pack_rect(128, 256, 0, 64, 64, 192, 0))
    assert values["6"][0].shape == (1, 24, 32, 3) and values["7"][0].shape == (1, 24, 32, 3)
    assert values["8"][0].shape == (1, 128, 8 * 128, 3) and len(values["8"][1]) == 1
    workflow = parse_workflow(graph, registry)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2] == ["multiply", 0.5] and saved[3] == ["inkwell"]
    # as the pack's editor saves them: the schema's values, its script's widgets holding the same, the canvas
    assert saved[4] == [10, 20, 30, 40, 2, 10, 20, 30, 40, 2, None]
    assert saved[5] == [64, 0, 128, 64, 256, 128, 0, 64, 0, 128, 64, 256, 128, 0, None] and saved[6] == [0.2, 2.0]
    assert saved[7] == [1.2, 1.1, 1.0, 1.0, 3.0, 1, 0.5, "false"] and saved[8] == [8, "back_to_back"]
    again = export_api(parse_workflow(export_api(workflow, registry), registry), registry)
    assert again["5"]["class_type"] == "Mask Rect Area (Advanced)"
    assert again["5"]["inputs"] == {"x": 64, "y": 0, "width": 128, "height": 64, "image_width": 256,
                                    "image_height": 128, "blur_radius": 0}
    assert again["7"]["inputs"]["colorize"] == "false" and again["7"]["inputs"]["image"] == ["2", 0]


def test_was4_nodes_in_an_api_prompt(registry):
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1,
                                                          "color": 0x204060}},
             "2": {"class_type": "Image Style Filter", "inputs": {"image": ["1", 0], "style": "1977"}},
             "3": {"class_type": "Image Blending Mode", "inputs": {"image_a": ["1", 0], "image_b": ["2", 0],
                                                                   "mode": "screen", "blend_percentage": 1.0}},
             "4": {"class_type": "Mask Rect Area", "inputs": {"x": 0, "y": 0, "width": 50, "height": 50,
                                                              "blur_radius": 0}},
             "5": {"class_type": "Image Color Palette", "inputs": {"image": ["3", 0], "colors": 8, "mode": "Chart"}}}
    values = run_graph(registry, graph, ["2", "3", "4", "5"]).values
    blue = Image.new("RGB", (16, 16), (0x20, 0x40, 0x60))
    styled = pilgram._1977(blue)
    assert torch.equal(values["2"][0][0], tensor(styled))
    assert torch.equal(values["3"][0][0], tensor(pilgram.css.blending.screen(blue, styled).convert("RGB")))
    assert torch.equal(values["4"][0], pack_rect(512, 512, 0, 256, 0, 256, 0))
    assert values["5"][0].shape == (1, 256, 4 * 128, 3)
    exported = export_api(parse_workflow(graph, registry), registry)
    assert exported["3"] == graph["3"] and exported["4"] == graph["4"] and exported["5"] == graph["5"]


def test_rect_area_saves_with_the_editor_scripts_widgets(registry):
    # the schema's five, then the script's x, y, w, h, blur_radius and its canvas (null)
    nodes = [ui_node(1, "Mask Rect Area", [5, 5, 30, 40, 0, 20, 10, 70, 70, 3, None],
                     outputs=[("MASKS", "MASK", [])]),
             ui_node(2, "Mask Rect Area (Advanced)", [0, 0, 256, 256, 512, 512, 0, 64, 128, 128, 64, 256, 192, 1, None],
                     outputs=[("MASKS", "MASK", [])])]
    graph = ui_graph(nodes)
    values = run_graph(registry, graph, ["1", "2"]).values
    # the pack gets x=20, y=10, blur_radius=3 from the script's widgets, width=30, height=40 from the schema's
    assert torch.equal(values["1"][0], pack_rect(512, 512, 51, 256, 102, 256, 3))
    assert torch.equal(values["2"][0], pack_rect(192, 256, 128, 192, 64, 192, 1))
    saved = {n["id"]: n["widgets_values"] for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    # written back as the editor saves what the pack ran: the schema's values, the script's widgets
    # from the same values (its w and h the width and height), the canvas's null; before, the five /
    # seven of the schema alone, which the script's widgets (back at their defaults) then overrode
    assert saved[1] == [20, 10, 30, 40, 3, 20, 10, 30, 40, 3, None]
    assert saved[2] == [64, 128, 128, 64, 256, 192, 1, 64, 128, 128, 64, 256, 192, 1, None]
    # the values the pack takes from each, as the editor sends the later widget of a name
    sent = [dict(zip(["x", "y", "width", "height", "blur_radius", "x", "y", "w", "h", "blur_radius"], saved[1])),
            dict(zip(["x", "y", "width", "height", "image_width", "image_height", "blur_radius"] * 2, saved[2]))]
    assert sent[0] == {"x": 20, "y": 10, "width": 30, "height": 40, "blur_radius": 3, "w": 30, "h": 40}
    assert sent[1] == {"x": 64, "y": 128, "width": 128, "height": 64, "image_width": 256, "image_height": 192,
                       "blur_radius": 1}
    # and read again here, the same masks
    again = ui_graph([ui_node(1, "Mask Rect Area", saved[1], outputs=[("MASKS", "MASK", [])]),
                      ui_node(2, "Mask Rect Area (Advanced)", saved[2], outputs=[("MASKS", "MASK", [])])])
    rerun = run_graph(registry, again, ["1", "2"]).values
    assert torch.equal(rerun["1"][0], values["1"][0]) and torch.equal(rerun["2"][0], values["2"][0])
    written = export_ui(parse_workflow(again, registry), registry)["nodes"]
    assert {n["id"]: n["widgets_values"] for n in written} == saved
    # an API prompt from that editor carries the script's w and h too: unused, as in the pack
    prompt = {"1": {"class_type": "Mask Rect Area", "inputs": {"x": 20, "y": 10, "width": 30, "height": 40,
                                                               "blur_radius": 3, "w": 70, "h": 70}}}
    assert torch.equal(run_graph(registry, prompt, ["1"]).values["1"][0], values["1"][0])
    assert export_api(parse_workflow(prompt, registry), registry)["1"]["inputs"] == {
        "x": 20, "y": 10, "width": 30, "height": 40, "blur_radius": 3}


# the suite's later rewrite: the schema's values, drawn_mask, drawn_combine (and perhaps its editor's widget)
PAINTED = "data:image/png;base64,iVBORw0KGgo="  # any non-empty text: a mask painted on the node


@pytest.mark.parametrize("extra", [["", "union"], [PAINTED, "off"], ["", "subtract", None], [""],
                                   [PAINTED, "off", None]])
def test_rect_area_saves_of_the_later_rewrite_without_a_joining_painted_mask(registry, extra):
    nodes = [ui_node(1, "Mask Rect Area", [20, 10, 30, 40, 3, *extra], outputs=[("MASKS", "MASK", [])]),
             ui_node(2, "Mask Rect Area (Advanced)", [64, 128, 128, 64, 256, 192, 1, *extra],
                     outputs=[("MASKS", "MASK", [])])]
    graph = ui_graph(nodes)
    values = run_graph(registry, graph, ["1", "2"]).values
    # the schema's values, in order (before, the Advanced node's 8-10 values were read the same way
    # but the painted mask's value was dropped unseen)
    assert torch.equal(values["1"][0], pack_rect(512, 512, 51, 256, 102, 256, 3))
    assert torch.equal(values["2"][0], pack_rect(192, 256, 128, 192, 64, 192, 1))
    notes = parse_workflow(graph, registry).notes
    assert sorted(n["node_id"] for n in notes if "drawn_mask" in n["message"]) == ["1", "2"]


@pytest.mark.parametrize("extra", [[PAINTED, "union"], [PAINTED, "subtract", None], [PAINTED], [PAINTED, "intersect"]])
def test_rect_area_saves_of_the_later_rewrite_with_a_joining_painted_mask_are_refused(registry, extra):
    from graphflow.workflow import WorkflowFormatError
    for node in (ui_node(1, "Mask Rect Area", [20, 10, 30, 40, 3, *extra], outputs=[("MASKS", "MASK", [])]),
                 ui_node(1, "Mask Rect Area (Advanced)", [64, 128, 128, 64, 256, 192, 1, *extra],
                         outputs=[("MASKS", "MASK", [])])):
        with pytest.raises(WorkflowFormatError) as caught:
            parse_workflow(ui_graph([node]), registry)
        assert any(p.node_id == "1" and "drawn_mask" in p.message for p in caught.value.problems)


@pytest.mark.parametrize("drawn, combine, refused", [("", "union", False), (PAINTED, "off", False),
                                                     (PAINTED, "union", True), (PAINTED, None, True)])
def test_rect_area_api_prompts_of_the_later_rewrite(registry, drawn, combine, refused):
    """The rewrite's API prompts carry drawn_mask / drawn_combine: run without them where they paint
    nothing (they were refused as unknown inputs), refused naming drawn_mask where a painted mask joins."""
    from graphflow.validation import validate
    painted = {"drawn_mask": drawn, **({"drawn_combine": combine} if combine is not None else {})}
    prompt = {"1": {"class_type": "Mask Rect Area", "inputs": {"x": 20, "y": 10, "width": 30, "height": 40,
                                                              "blur_radius": 3, **painted}},
              "2": {"class_type": "Mask Rect Area (Advanced)",
                    "inputs": {"x": 64, "y": 128, "width": 128, "height": 64, "image_width": 256,
                               "image_height": 192, "blur_radius": 1, **painted}}}
    problems = validate(parse_workflow(prompt, registry), registry, ["1", "2"])
    if refused:
        named = [("1", "drawn_mask"), ("2", "drawn_mask")]
        if combine is not None:
            named += [("1", "drawn_combine"), ("2", "drawn_combine")]
        assert sorted((p.node_id, p.input) for p in problems) == sorted(named)
        assert all("painted" in p.message for p in problems)
    else:
        assert problems == []
        values = run_graph(registry, prompt, ["1", "2"]).values
        assert torch.equal(values["1"][0], pack_rect(512, 512, 51, 256, 102, 256, 3))
        assert torch.equal(values["2"][0], pack_rect(192, 256, 128, 192, 64, 192, 1))


# -- Text Sort and Text Find -------------------------------------------------------------------------

def pack_sort(text, separator):
    """The suite's Text Sort, as its source reads."""
    def key(token):
        return token.replace("\\(", "\0\1").replace("(", "").replace("\0\1", "(").strip()
    sep = separator.strip()
    protected, level = "", 0
    for char in text.strip(separator + " \t\n\r"):
        if char == "(":
            level += 1
        if char == ")":
            level -= 1
        protected += "\0" if char == sep and level > 0 else char
    tokens = [t.replace("\0", sep).strip() for t in protected.split(sep)]
    return separator.join(sorted(tokens, key=key))


@pytest.mark.parametrize("text, separator", [
    ("zebra, apple, (mango:1.2), banana", ", "),
    (", (red, blue:1.1), green,  ((cyan)), \\(literal), alpha ,", ", "),
    ("c|b|(a|z)|a", "|"),
    ("c || b || (a || d) || a", " || "),
    ("one", ", "),
])
def test_text_sort_against_the_suites_rule(registry, text, separator):
    got = call(registry, "WasTextSort", text=text, separator=separator)
    assert got == pack_sort(text, separator)


def test_text_sort_examples_and_errors(registry):
    assert call(registry, "WasTextSort", text="b, (c, a:1.2), a", separator=", ") == "a, b, (c, a:1.2)"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextSort", text="a b", separator="  ")
    assert caught.value.input == "separator"


@pytest.mark.parametrize("substring, pattern, expected", [("cat", "", True), ("dog", "cat", False),
                                                          ("", "c.t\\b", True), ("", "^dog", False), ("", "", True)])
def test_text_find_substring_then_pattern(registry, substring, pattern, expected):
    import re
    text = "a cat sat"
    got = call(registry, "WasTextFind", text=text, substring=substring, pattern=pattern)
    reference = (substring in text) if substring else bool(re.search(pattern, text))
    assert got is expected and got == reference


def test_text_find_bad_and_runaway_patterns(registry):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextFind", text="abc", substring="", pattern="(")
    assert caught.value.input == "pattern"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextFind", text="a" * 40 + "b", substring="", pattern="(a+)+$")
    assert caught.value.input == "pattern" and "backtracks" in str(caught.value)


def test_text_nodes_in_an_api_prompt_and_a_ui_save(registry):
    graph = {"1": {"class_type": "PrimitiveString", "inputs": {"value": "b, c, a"}},
             "2": {"class_type": "Text Sort", "inputs": {"text": ["1", 0], "separator": ", "}},
             "3": {"class_type": "Text Find", "inputs": {"text": ["2", 0], "substring": "", "pattern": "^a, b"}}}
    values = run_graph(registry, graph, ["2", "3"]).values
    assert values["2"][0] == "a, b, c" and values["3"][0] is True
    exported = export_api(parse_workflow(graph, registry), registry)
    assert exported["2"] == graph["2"] and exported["3"] == graph["3"]
    nodes = [ui_node(1, "PrimitiveString", ["b, c, a"], outputs=[("STRING", "STRING", [1])]),
             ui_node(2, "Text Sort", [", "], inputs=[("text", "STRING", 1, False)],
                     outputs=[("STRING", "STRING", [2])]),
             ui_node(3, "Text Find", ["c", ""], inputs=[("text", "STRING", 2, False)],
                     outputs=[("found", "BOOLEAN", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "STRING"], [2, 2, 0, 3, 0, "STRING"]])
    assert run_graph(registry, graph, ["3"]).values["3"][0] is True
    saved = {n["id"]: n["widgets_values"] for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[2] == [", "] and saved[3] == ["c", ""]


# -- Text Multiline (Code Compatible), Text List to Text, Text Dictionary ... -----------------------

def test_code_compatible_multiline_keeps_comment_lines(registry):
    import socket
    text = "# a comment\nprint([hostname])\n  # kept"
    got = call(registry, "WasTextMultilineCodeCompatible", text=text)
    assert got == text.replace("[hostname]", socket.gethostname())
    assert call(registry, "WasTextMultiline", text=text) == "print(" + socket.gethostname() + ")"


@pytest.mark.parametrize("delimiter, expected", [(", ", "a, b, c"), ("\\n", "a\nb\nc"), ("", "abc"),
                                                 (" | ", "a | b | c")])
def test_text_list_to_text_joins(registry, delimiter, expected):
    texts = ["a", "b", "c"]
    got = call(registry, "WasTextListToText", delimiter=delimiter, text_list=texts)
    assert got == expected == ("\n" if delimiter == "\\n" else delimiter).join(texts)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextListToText", text_list="abc")
    assert caught.value.input == "text_list"


def test_text_dictionary_nodes(registry):
    made = call(registry, "WasTextDictionaryNew", key_1="style", value_1="oil", key_2="", value_2="dropped",
                key_3="mood", value_3="calm", key_5="style", value_5="ink")
    assert made == {"style": "ink", "mood": "calm"}
    assert call(registry, "WasTextDictionaryGet", dictionary=made, key="mood") == "calm"
    assert call(registry, "WasTextDictionaryGet", dictionary={"k": ["a", "b"]}, key="k") == str(["a", "b"])
    assert call(registry, "WasTextDictionaryGet", dictionary=made, key="none", default_value="x") == "x"
    assert call(registry, "WasTextDictionaryKeys", dictionary=made) == ["style", "mood"]
    assert call(registry, "WasTextDictionaryToText", dictionary=made) == str(made)
    import ast
    text = "{'a': 1, \"b\": [2, 3.5], 'c': {'d': None}}"
    assert call(registry, "WasTextDictionaryConvert", dictionary_text=text) == ast.literal_eval(text)
    for bad in ("[1, 2]", "{'a': __import__('os')}", "{'a': 1"):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "WasTextDictionaryConvert", dictionary_text=bad)
        assert caught.value.input == "dictionary_text"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasTextDictionaryKeys", dictionary=["a"])
    assert caught.value.input == "dictionary"


def test_text_dictionary_convert_caps_its_text_before_parsing(registry, monkeypatch):
    import ast

    from nodes.pack_nodes_was4 import DICTIONARY_TEXT_LIMIT
    at_the_cap = "{'k': '" + "x" * (DICTIONARY_TEXT_LIMIT - 10) + "'}"
    assert len(at_the_cap) == DICTIONARY_TEXT_LIMIT - 1
    assert call(registry, "WasTextDictionaryConvert", dictionary_text=at_the_cap) == ast.literal_eval(at_the_cap)
    parsed = []
    monkeypatch.setattr(ast, "literal_eval", lambda text: parsed.append(text) or {})
    with pytest.raises(NodeInputError) as caught:  # refused before the parser sees it
        call(registry, "WasTextDictionaryConvert", dictionary_text="{1: [" + "0," * DICTIONARY_TEXT_LIMIT + "]}")
    assert caught.value.input == "dictionary_text" and parsed == []


def test_dictionary_and_list_nodes_in_a_ui_save_and_an_api_prompt(registry):
    nodes = [ui_node(1, "Text Dictionary New", ["a", "1", "b", "2", "", "", "", "", "", ""],
                     outputs=[("DICT", "DICT", [1, 2])]),
             ui_node(2, "Text Dictionary Get", ["b", "none"], inputs=[("dictionary", "DICT", 1, False)],
                     outputs=[("STRING", "STRING", [])]),
             ui_node(3, "Text Dictionary Keys", [], inputs=[("dictionary", "DICT", 2, False)],
                     outputs=[("LIST", "LIST", [3])]),
             ui_node(4, "Text List to Text", [" + "], inputs=[("text_list", "LIST", 3, False)],
                     outputs=[("STRING", "STRING", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "DICT"], [2, 1, 0, 3, 0, "DICT"], [3, 3, 0, 4, 1, "LIST"]])
    values = run_graph(registry, graph, ["2", "4"]).values
    assert values["2"][0] == "2" and values["4"][0] == "a + b"
    workflow = parse_workflow(graph, registry)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[1] == ["a", "1", "b", "2", "", "", "", "", "", ""] and saved[2] == ["b", "none"]
    assert saved[4] == [" + "]
    prompt = export_api(workflow, registry)
    assert prompt["4"] == {"class_type": "Text List to Text", "inputs": {"delimiter": " + ", "text_list": ["3", 0]}}
    assert run_graph(registry, prompt, ["4"]).values["4"][0] == "a + b"
    graph = {"1": {"class_type": "PrimitiveString", "inputs": {"value": "{'x': 'y'}"}},
             "2": {"class_type": "Text Dictionary Convert", "inputs": {"dictionary_text": ["1", 0]}},
             "3": {"class_type": "Text Dictionary To Text", "inputs": {"dictionary": ["2", 0]}},
             "4": {"class_type": "Text Multiline (Code Compatible)", "inputs": {"text": "# x"}}}
    values = run_graph(registry, graph, ["3", "4"]).values
    assert values["3"][0] == "{'x': 'y'}" and values["4"][0] == "# x"
    assert export_api(parse_workflow(graph, registry), registry)["2"] == graph["2"]


# -- Blend Latents and Latent Noise Injection --------------------------------------------------------

def pack_blend(l1, l2, mode, blend):
    """The suite's blend_latents, formula by formula as its source reads (not "random")."""
    f1, f2 = blend, 1 - blend
    formulas = {
        "add": lambda: (l1 * f1) + (l2 * f2),
        "multiply": lambda: (l1 * f1) * (l2 * f2),
        "divide": lambda: (l1 * f1) / (l2 * f2),
        "subtract": lambda: (l1 * f1) - (l2 * f2),
        "overlay": lambda: (l1 * f1) * (2 * l1 * l2) + (l2 * f1) * (1 - 2 * (1 - l1) * (1 - l2)),
        "screen": lambda: 1 - ((1 - l1) * (1 - l2) * (1 - f1)),
        "difference": lambda: abs(l1 - l2) * f1,
        "exclusion": lambda: (l1 + l2 - 2 * l1 * l2) * f1,
        "hard_light": lambda: torch.where(l2 < 0.5, 2 * l1 * l2, 1 - 2 * (1 - l1) * (1 - l2)) * f1,
        "linear_dodge": lambda: torch.clamp(l1 + l2, 0, 1) * f1,
        "soft_light": lambda: ((l1 * f1) * (2 * l1 * l2 + l1 ** 2 - 2 * l1 * l2 * l1)
                               + (l2 * f1) * (2 * l1 * (1 - l2) + torch.sqrt(l1) * (2 * l2 - 1))),
    }
    out = formulas[mode]()
    return (out - out.min()) / (out.max() - out.min())


LATENT_A = torch.rand(2, 4, 6, 5, generator=torch.Generator().manual_seed(1)) + 0.1  # positive: soft_light's sqrt
LATENT_B = torch.rand(2, 4, 6, 5, generator=torch.Generator().manual_seed(2)) + 0.1


@pytest.mark.parametrize("mode", ["add", "multiply", "divide", "subtract", "overlay", "hard_light", "soft_light",
                                  "screen", "linear_dodge", "difference", "exclusion"])
@pytest.mark.parametrize("blend", [0.5, 0.2])
def test_blend_latents_against_the_suites_formulas(registry, mode, blend):
    got = call(registry, "WasBlendLatents", latent_a={"samples": LATENT_A}, latent_b={"samples": LATENT_B},
               operation=mode, blend=blend)
    assert set(got) == {"samples"}
    assert torch.allclose(got["samples"], pack_blend(LATENT_A, LATENT_B, mode, blend), atol=1e-6)
    assert got["samples"].min() == 0 and got["samples"].max() == 1


# latents as a VAE gives them: signed, about unit deviation (soft_light's square root refuses these)
SIGNED_A = torch.randn(2, 4, 6, 5, generator=torch.Generator().manual_seed(3))
SIGNED_B = torch.randn(2, 4, 6, 5, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("mode", ["add", "multiply", "divide", "subtract", "overlay", "hard_light", "screen",
                                  "linear_dodge", "difference", "exclusion"])
def test_blend_latents_of_signed_latents_against_the_suites_formulas(registry, mode):
    assert SIGNED_A.min() < 0 and SIGNED_B.min() < 0
    got = call(registry, "WasBlendLatents", latent_a={"samples": SIGNED_A}, latent_b={"samples": SIGNED_B},
               operation=mode, blend=0.3)["samples"]
    assert torch.allclose(got, pack_blend(SIGNED_A, SIGNED_B, mode, 0.3), atol=1e-5)
    assert got.min() == 0 and got.max() == 1


def test_blend_latents_soft_light_refuses_signed_latents(registry):
    assert torch.isnan(pack_blend(SIGNED_A, SIGNED_B, "soft_light", 0.5)).all()  # the pack: NaN throughout
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasBlendLatents", latent_a={"samples": SIGNED_A}, latent_b={"samples": SIGNED_B},
             operation="soft_light", blend=0.5)
    assert caught.value.input == "operation" and "square root" in str(caught.value)


def test_blend_latents_random_and_refusals(registry):
    got = call(registry, "WasBlendLatents", latent_a={"samples": LATENT_A}, latent_b={"samples": LATENT_B},
               operation="random", blend=0.5)["samples"]
    assert got.shape == LATENT_A.shape and got.min() == 0 and got.max() == 1
    with pytest.raises(NodeInputError) as caught:  # the square root of negative latents
        call(registry, "WasBlendLatents", latent_a={"samples": LATENT_A - 0.6}, latent_b={"samples": LATENT_B},
             operation="soft_light")
    assert caught.value.input == "operation"
    with pytest.raises(NodeInputError) as caught:  # 1 - blend = 0: a division by zero
        call(registry, "WasBlendLatents", latent_a={"samples": LATENT_A}, latent_b={"samples": LATENT_B},
             operation="divide", blend=1.0)
    assert caught.value.input == "operation"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasBlendLatents", latent_a={"samples": LATENT_A}, latent_b={"samples": LATENT_B[:1]})
    assert caught.value.input == "latent_b"


def test_latent_noise_injection_adds_noise_of_that_deviation(registry):
    latent = {"samples": torch.zeros(4, 4, 32, 32), "batch_index": [0, 1, 2, 3]}
    torch.manual_seed(5)
    got = call(registry, "WasLatentNoiseInjection", samples=latent, noise_std=0.3)
    torch.manual_seed(5)
    assert torch.equal(got["samples"], torch.randn_like(latent["samples"]) * 0.3)
    assert got["batch_index"] == [0, 1, 2, 3] and abs(got["samples"].std().item() - 0.3) < 0.01
    assert torch.equal(call(registry, "WasLatentNoiseInjection", samples=latent, noise_std=0.0)["samples"],
                       latent["samples"])


def test_latent_nodes_in_an_api_prompt_and_a_ui_save(registry):
    graph = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "2": {"class_type": "Latent Noise Injection", "inputs": {"samples": ["1", 0], "noise_std": 0.5}},
             "3": {"class_type": "Blend Latents", "inputs": {"latent_a": ["2", 0], "latent_b": ["2", 0],
                                                             "operation": "difference", "blend": 0.5}}}
    # the difference of a latent with itself is all 0: no range to stretch (the pack gives NaN)
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["3"])
    assert not result.ok and result.error["input"] == "operation"
    graph["3"]["inputs"]["operation"] = "add"
    values = run_graph(registry, graph, ["2", "3"]).values
    noisy = values["2"][0]["samples"]
    assert torch.allclose(values["3"][0]["samples"], (noisy - noisy.min()) / (noisy.max() - noisy.min()), atol=1e-6)
    assert export_api(parse_workflow(graph, registry), registry)["3"] == graph["3"]
    nodes = [ui_node(1, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT", [1, 2])]),
             ui_node(2, "Blend Latents", ["screen", 0.25],
                     inputs=[("latent_a", "LATENT", 1, False), ("latent_b", "LATENT", 2, False)],
                     outputs=[("LATENT", "LATENT", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "LATENT"], [2, 1, 0, 2, 1, "LATENT"]])
    workflow = parse_workflow(graph, registry)
    assert {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}[2] == ["screen", 0.25]
    assert export_api(workflow, registry)["2"]["inputs"]["operation"] == "screen"


# -- Image Rotate Hue, Image Select Color ------------------------------------------------------------

@pytest.mark.parametrize("shift", [0.0, 0.25, 0.5, 0.913])
def test_rotate_hue_is_colorsys_pixel_by_pixel(registry, shift):
    import colorsys
    small = IMAGES[:, :9, :11]
    got = call(registry, "WasImageRotateHue", image=small, hue_shift=shift)
    for n, picture in enumerate(pictures(small)):
        expected = Image.new("RGB", picture.size)
        for x in range(picture.width):
            for y in range(picture.height):
                r, g, b = picture.getpixel((x, y))
                h, l, s_ = colorsys.rgb_to_hls(r / 255, g / 255, b / 255)
                r, g, b = colorsys.hls_to_rgb((h + shift) % 1.0, l, s_)
                expected.putpixel((x, y), (int(r * 255), int(g * 255), int(b * 255)))
        assert torch.equal(got[n], tensor(expected))


@pytest.mark.parametrize("colour, variance", [((255, 255, 255), 10), ((200, 120, 60), 60), ((0, 0, 0), 255),
                                              ((128, 128, 128), 0)])
def test_select_color_keeps_the_pixels_within_variance(registry, colour, variance):
    got = call(registry, "WasImageSelectColor", image=IMAGES, red=colour[0], green=colour[1], blue=colour[2],
               variance=variance)
    for n, picture in enumerate(pictures(IMAGES)):
        expected = Image.new("RGB", picture.size, (0, 0, 0))
        red, green, blue = colour
        for x in range(picture.width):
            for y in range(picture.height):
                r, g, b = picture.getpixel((x, y))
                if (red - variance <= r <= red + variance and green - variance <= g <= green + variance
                        and blue - variance <= b <= blue + variance):
                    expected.putpixel((x, y), (r, g, b))
        assert torch.equal(got[n], tensor(expected))


# -- Image Batch, Mask Batch, Latent Batch -----------------------------------------------------------

def test_image_mask_and_latent_batches(registry):
    got = call(registry, "WasImageBatch", images_a=IMAGES, images_c=OTHER[:1])
    assert torch.equal(got, torch.cat([IMAGES, OTHER[:1]]))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageBatch", images_a=IMAGES, images_b=OTHER[:, :10])
    assert caught.value.input == "images_b"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageBatch")
    assert caught.value.input == "images_a"
    masks = torch.rand(2, 5, 6)
    got = call(registry, "WasMaskBatch", masks_b=masks, masks_d=masks[0])
    assert torch.equal(got, torch.cat([masks, masks[:1]]))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasMaskBatch", masks_a=masks, masks_b=torch.rand(1, 6, 5))
    assert caught.value.input == "masks_b"
    a = {"samples": torch.rand(2, 4, 8, 8)}
    b = {"samples": torch.rand(1, 4, 8, 8), "batch_index": [7]}
    got = call(registry, "WasLatentBatch", latent_a=a, latent_b=b)
    assert torch.equal(got["samples"], torch.cat([a["samples"], b["samples"]])) and got["batch_index"] == [0, 1, 7]
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasLatentBatch", latent_a=a, latent_d={"samples": torch.rand(1, 16, 8, 8)})
    assert caught.value.input == "latent_d"


def test_batch_and_colour_nodes_in_a_ui_save_and_an_api_prompt(registry):
    nodes = [ui_node(1, "EmptyImage", [16, 8, 1, 0x40c080], outputs=[("IMAGE", "IMAGE", [1, 2])]),
             ui_node(2, "Image Rotate Hue", [0.5], inputs=[("image", "IMAGE", 1, False)],
                     outputs=[("IMAGE", "IMAGE", [3])]),
             ui_node(3, "Image Batch", [], inputs=[("images_a", "IMAGE", 2, False), ("images_b", "IMAGE", 3, False),
                                                   ("images_c", "IMAGE", None, False),
                                                   ("images_d", "IMAGE", None, False)],
                     outputs=[("image", "IMAGE", [4])]),
             ui_node(4, "Image Select Color", [64, 192, 128, 5], inputs=[("image", "IMAGE", 4, False)],
                     outputs=[("IMAGE", "IMAGE", [])])]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 1, 0, 2, 0, "IMAGE"], [3, 2, 0, 3, 1, "IMAGE"], [4, 3, 0, 4, 0, "IMAGE"]]
    nodes[0]["outputs"][0]["links"] = [1, 2]
    nodes[1]["outputs"][0]["links"] = [3]
    graph = ui_graph(nodes, links)
    values = run_graph(registry, graph, ["3", "4"]).values
    import colorsys
    h, l, s_ = colorsys.rgb_to_hls(0x40 / 255, 0xc0 / 255, 0x80 / 255)
    turned = tuple(int(c * 255) for c in colorsys.hls_to_rgb((h + 0.5) % 1.0, l, s_))
    assert values["3"][0].shape == (2, 8, 16, 3)
    assert torch.equal(values["3"][0][1, 0, 0], torch.tensor(turned, dtype=torch.float32) / 255)
    # only the first (unturned) image is within 5 of (64, 192, 128)
    assert torch.equal(values["4"][0][0], values["3"][0][0]) and values["4"][0][1].max() == 0
    workflow = parse_workflow(graph, registry)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2] == [0.5] and saved[4] == [64, 192, 128, 5]
    prompt = export_api(workflow, registry)
    assert prompt["3"] == {"class_type": "Image Batch", "inputs": {"images_a": ["1", 0], "images_b": ["2", 0]}}
    graph = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
             "2": {"class_type": "Latent Batch", "inputs": {"latent_a": ["1", 0], "latent_c": ["1", 0]}},
             "3": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8, "height": 8}},
             "4": {"class_type": "Mask Batch", "inputs": {"masks_a": ["3", 0], "masks_b": ["3", 0]}}}
    values = run_graph(registry, graph, ["2", "4"]).values
    assert values["2"][0]["samples"].shape == (4, 4, 8, 8) and values["2"][0]["batch_index"] == [0, 1, 0, 1]
    assert values["4"][0].shape == (2, 8, 8)
    assert export_api(parse_workflow(graph, registry), registry)["2"] == graph["2"]


def test_batches_estimate_the_joined_batch(registry):
    inputs = {"images_a": Size(2, 64, 48), "images_c": Size(3, 64, 48)}
    assert registry.get("WasImageBatch").estimate({}, inputs).size == Size(5, 64, 48)
    assert registry.get("WasMaskBatch").estimate({}, {"masks_b": Size(4, 8, 8)}).size == Size(4, 8, 8)
    assert registry.get("WasLatentBatch").estimate({}, {}).size is None
    graph = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 40}},
             "2": {"class_type": "Latent Batch", "inputs": {"latent_a": ["1", 0], "latent_b": ["1", 0]}}}
    result = Executor(registry, limits=RunLimits(max_batch=64)).run(parse_workflow(graph, registry), outputs=["2"])
    assert not result.ok and any(p.node_id == "2" for p in result.problems)


# -- Image Median Filter, Mask Crop Dominant / Minority Region ---------------------------------------

@pytest.mark.parametrize("diameter, sigma_color, sigma_space", [(2, 10.0, 10.0), (9, 75.5, 40.9), (0, 30.0, 3.0)])
def test_median_filter_is_opencvs_bilateral_filter(registry, diameter, sigma_color, sigma_space):
    got = call(registry, "WasImageMedianFilter", image=IMAGES, diameter=diameter, sigma_color=sigma_color,
               sigma_space=sigma_space)
    for n, picture in enumerate(pictures(IMAGES)):
        bgr = cv2.cvtColor(np.array(picture.convert("RGB")), cv2.COLOR_RGB2BGR)
        bgr = cv2.bilateralFilter(bgr, int(diameter), int(sigma_color), int(sigma_space))
        expected = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).convert("RGB")
        assert torch.equal(got[n], tensor(expected))


def pack_crop_region(image, padding, pick):
    """The suite's crop_dominant_region / crop_minority_region, as its source reads."""
    from scipy.ndimage import label
    binary = image.convert("L").point(lambda x: 255 if x > 128 else 0, mode="1")
    labeled, count = label(np.array(binary))
    chooser = max if pick == "dominant" else min
    chosen = chooser(range(1, count + 1), key=lambda i: np.sum(labeled == i))
    bbox = Image.fromarray((labeled == chosen).astype(np.uint8) * 255, mode="L").getbbox()
    cropped = image.crop(bbox)
    side = max(cropped.size) + 2 * padding
    centred = Image.new("L", (side, side), color="black")
    centred.paste(cropped, ((side - cropped.width) // 2, (side - cropped.height) // 2), mask=cropped)
    return ImageOps.invert(centred)


def blob_mask():
    levels = np.zeros((30, 40), dtype=np.float32)
    levels[2:12, 3:20] = 0.9   # the largest region
    levels[20:23, 30:32] = 0.7  # the smallest
    levels[18:26, 5:11] = 0.6
    levels[5:7, 8:10] = 0.3    # below 128: inside the largest box, not a region
    return torch.from_numpy(levels)[None]


@pytest.mark.parametrize("node, pick", [("WasMaskCropDominantRegion", "dominant"),
                                        ("WasMaskCropMinorityRegion", "minority")])
@pytest.mark.parametrize("padding", [0, 5, 24])
def test_mask_crop_dominant_and_minority_regions(registry, node, pick, padding):
    mask = blob_mask()
    got = call(registry, node, masks=mask, padding=padding)
    picture = Image.fromarray(np.clip(255.0 * mask[0].numpy(), 0, 255).astype(np.uint8))
    # the pack's pil2mask: 1 - level / 255 of the inverted square
    expected = 1.0 - torch.from_numpy(np.array(pack_crop_region(picture, padding, pick)).astype(np.float32) / 255.0)
    assert got.shape == (1, *expected.shape)
    assert torch.allclose(got[0], expected, atol=1e-6)
    with pytest.raises(NodeInputError) as caught:
        call(registry, node, masks=torch.zeros(1, 8, 8))
    assert caught.value.input == "masks"
    with pytest.raises(NodeInputError) as caught:
        call(registry, node, masks=torch.cat([mask, mask]))
    assert caught.value.input == "masks"


def test_median_and_crop_region_in_an_api_prompt_and_a_ui_save(registry):
    graph = {"1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 12, "height": 6}},
             "2": {"class_type": "Mask Crop Dominant Region", "inputs": {"masks": ["1", 0], "padding": 2}},
             "3": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
             "4": {"class_type": "Image Median Filter", "inputs": {"image": ["3", 0], "diameter": 3,
                                                                    "sigma_color": 10.0, "sigma_space": 10.0}}}
    values = run_graph(registry, graph, ["2", "4"]).values
    expected = torch.zeros(1, 16, 16)
    expected[0, 5:11, 2:14] = 1.0
    assert torch.equal(values["2"][0], expected)
    assert torch.equal(values["4"][0], torch.zeros(1, 8, 8, 3))
    assert export_api(parse_workflow(graph, registry), registry)["4"] == graph["4"]
    nodes = [ui_node(1, "SolidMask", [1.0, 8, 8], outputs=[("MASK", "MASK", [1])]),
             ui_node(2, "Mask Crop Minority Region", [3], inputs=[("masks", "MASK", 1, False)],
                     outputs=[("MASKS", "MASK", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "MASK"]])
    assert run_graph(registry, graph, ["2"]).values["2"][0].shape == (1, 14, 14)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[2] == [3]


def test_crop_region_estimates_its_padded_square(registry):
    for node in ("WasMaskCropDominantRegion", "WasMaskCropMinorityRegion"):
        estimate = registry.get(node).estimate({"padding": 4096}, {"masks": Size(1, 300, 500)})
        assert estimate.size == Size(1, 500 + 8192, 500 + 8192)
    graph = {"1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 4096, "height": 4096}},
             "2": {"class_type": "Mask Crop Dominant Region", "inputs": {"masks": ["1", 0], "padding": 4096}}}
    result = Executor(registry, limits=RunLimits(max_pixels=8192 * 8192)).run(parse_workflow(graph, registry),
                                                                              outputs=["2"])
    assert not result.ok and any(p.node_id == "2" for p in result.problems)


# -- Image Chromatic Aberration, Logic Boolean Primitive ---------------------------------------------

def pack_chromatic_aberration(img, r_offset, g_offset, b_offset, fade_radius):
    """The suite's apply_chromatic_aberration, as its source reads (its gradients drawn line by line)."""
    def lingrad(size, direction, white_ratio):
        image = Image.new("RGB", size)
        draw = ImageDraw.Draw(image)
        length = size[1] if direction == "vertical" else size[0]
        black_end = length - white_ratio
        for i in range(length):
            value = 0 if i <= black_end else int(((i - black_end) / (length - black_end)) * 255)
            line = [(0, i), (size[0], i)] if direction == "vertical" else [(i, 0), (i, size[1])]
            draw.line(line, fill=(value, value, value))
        return image.convert("L")

    size = img.size
    mask = Image.new("L", size, 255)
    left = ImageOps.invert(lingrad(size, "horizontal", int(fade_radius * 2)))
    right = left.copy().transpose(Image.FLIP_LEFT_RIGHT)
    top = ImageOps.invert(lingrad(size, "vertical", int(fade_radius * 2)))
    bottom = top.copy().transpose(Image.FLIP_TOP_BOTTOM)
    for side in (left, right, top, bottom):
        mask = ImageChops.multiply(mask, side)
    mask = ImageChops.multiply(mask, mask)
    r, g, b = img.split()
    merged = Image.merge("RGB", (ImageChops.offset(r, r_offset, 0), ImageChops.offset(g, 0, g_offset),
                                 ImageChops.offset(b, 0, b_offset)))
    return Image.composite(merged, img, mask).convert("RGB")


@pytest.mark.parametrize("offsets, fade", [((2, -1, 1), 12), ((-7, 5, 0), 3), ((30, 0, -40), 0), ((1, 1, 1), 200)])
def test_chromatic_aberration_follows_the_suites_recipe(registry, offsets, fade):
    got = call(registry, "WasImageChromaticAberration", image=IMAGES, red_offset=offsets[0], green_offset=offsets[1],
               blue_offset=offsets[2], intensity=0.9, fade_radius=fade)
    for n, picture in enumerate(pictures(IMAGES)):
        assert torch.equal(got[n], tensor(pack_chromatic_aberration(picture, *offsets, fade)))


def test_chromatic_aberration_and_boolean_in_a_ui_save_and_an_api_prompt(registry):
    assert call(registry, "WasLogicBooleanPrimitive", boolean=True) is True
    nodes = [ui_node(1, "EmptyImage", [24, 16, 1, 0x808080], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "Image Chromatic Aberration", [3, -2, 1, 0.5, 4], inputs=[("image", "IMAGE", 1, False)],
                     outputs=[("IMAGE", "IMAGE", [])]),
             ui_node(3, "Logic Boolean Primitive", [True], outputs=[("BOOLEAN", "BOOLEAN", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"]])
    values = run_graph(registry, graph, ["2", "3"]).values
    grey = Image.new("RGB", (24, 16), (128, 128, 128))
    assert torch.equal(values["2"][0][0], tensor(pack_chromatic_aberration(grey, 3, -2, 1, 4)))
    assert values["3"][0] is True
    workflow = parse_workflow(graph, registry)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2] == [3, -2, 1, 0.5, 4] and saved[3] == [True]
    prompt = export_api(workflow, registry)
    assert prompt["3"] == {"class_type": "Logic Boolean Primitive", "inputs": {"boolean": True}}
    assert prompt["2"]["inputs"]["fade_radius"] == 4


# -- Images to Linear, Image Tiled -------------------------------------------------------------------

def test_images_to_linear_is_pillows_grey(registry):
    got = call(registry, "WasImagesToLinear", images=IMAGES)
    for n, picture in enumerate(pictures(IMAGES)):
        grey = tensor(picture.convert("L"))
        assert torch.equal(got[n], grey[..., None].expand(-1, -1, 3))


def pack_tiles(image, num_tiles):
    """The suite's tile_image, as its source reads."""
    img_width, img_height = image.size
    num_rows = int(num_tiles ** 0.5)
    num_cols = (num_tiles + num_rows - 1) // num_rows
    tile_width, tile_height = img_width // num_cols, img_height // num_rows
    return [image.crop((x, y, x + tile_width, y + tile_height))
            for y in range(0, img_height, tile_height) for x in range(0, img_width, tile_width)]


@pytest.mark.parametrize("num_tiles", [2, 4, 6, 7, 9, 64])
def test_image_tiled_cuts_as_the_suite_does(registry, num_tiles):
    got = call(registry, "WasImageTiled", image=IMAGES[:1], num_tiles=num_tiles)
    tiles = pack_tiles(pictures(IMAGES[:1])[0], num_tiles)
    assert got.shape[0] == len(tiles)
    for n, tile in enumerate(tiles):
        assert torch.equal(got[n], tensor(tile))
    estimate = registry.get("WasImageTiled").estimate({"num_tiles": num_tiles}, {"image": Size(1, 40, 56)})
    assert estimate.size == Size(len(tiles), tiles[0].height, tiles[0].width)
    both = call(registry, "WasImageTiled", image=IMAGES, num_tiles=num_tiles)
    assert both.shape[0] == 2 * len(tiles) and torch.equal(both[:len(tiles)], got)


def test_image_tiled_refuses_empty_tiles_and_runs_from_a_prompt(registry):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "WasImageTiled", image=IMAGES[:, :3, :3], num_tiles=64)
    assert caught.value.input == "num_tiles"
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 30, "height": 20, "batch_size": 1, "color": 255}},
             "2": {"class_type": "Image Tiled", "inputs": {"image": ["1", 0], "num_tiles": 4}},
             "3": {"class_type": "Images to Linear", "inputs": {"images": ["2", 0]}}}
    values = run_graph(registry, graph, ["2", "3"]).values
    assert values["2"][0].shape == (4, 10, 15, 3)
    assert torch.equal(values["3"][0], torch.full((4, 10, 15, 3), round(0.114 * 255) / 255))
    assert export_api(parse_workflow(graph, registry), registry)["2"] == graph["2"]
    nodes = [ui_node(1, "EmptyImage", [30, 20, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "Image Tiled", [6], inputs=[("image", "IMAGE", 1, False)], outputs=[("IMAGES", "IMAGE", [])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"]])
    assert run_graph(registry, graph, ["2"]).values["2"][0].shape == (6, 10, 10, 3)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[2] == [6]


# -- Number Counter ----------------------------------------------------------------------------------

def pack_counter(runs, number_type, mode, start, stop, step, resets=()):
    """The suite's increment_number over several runs of one node, as its source reads."""
    counters, results = {}, []
    for run in range(runs):
        counter = int(start) if mode == "integer" else start
        if "id" in counters:
            counter = counters["id"]
        if round(1 if run in resets else 0) >= 1:
            counter = start
        if mode == "increment":
            counter += step
        elif mode == "deccrement":
            counter -= step
        elif mode == "increment_to_stop":
            counter = counter + step if counter < stop else counter
        elif mode == "decrement_to_stop":
            counter = counter - step if counter > stop else counter
        counters["id"] = counter
        results.append((int(counter) if number_type == "integer" else float(counter), float(counter), int(counter)))
    return results


@pytest.mark.parametrize("number_type, mode, start, stop, step", [
    ("integer", "increment", 0.0, 0.0, 1.0), ("float", "increment", 2.5, 0.0, 0.75),
    ("integer", "increment_to_stop", 0.0, 3.0, 1.0), ("float", "decrement_to_stop", 5.0, 1.0, 1.5),
    ("integer", "decrement", 4.0, 0.0, 1.0)])
def test_number_counter_counts_run_after_run(registry, number_type, mode, start, stop, step):
    from nodes.pack_nodes_was4 import NUMBER_COUNTERS
    NUMBER_COUNTERS.clear()
    got = [call(registry, "WasNumberCounter", number_type=number_type, mode=mode, start=start, stop=stop, step=step)
           for _ in range(6)]
    assert [tuple(g) for g in got] == pack_counter(6, number_type, mode, start, stop, step)


def test_number_counter_resets_and_runs_each_time_in_a_graph(registry):
    from nodes.pack_nodes_was4 import NUMBER_COUNTERS
    NUMBER_COUNTERS.clear()
    graph = {"1": {"class_type": "Number Counter", "inputs": {"number_type": "integer", "mode": "increment",
                                                              "start": 10, "stop": 0, "step": 2}}}
    executor = Executor(registry)
    counts = [executor.run(parse_workflow(graph, registry), outputs=["1"]).values["1"][2] for _ in range(3)]
    assert counts == [12, 14, 16]
    graph["2"] = {"class_type": "Constant Number", "inputs": {"number_type": "integer", "number": 1}}
    graph["1"]["inputs"]["reset_bool"] = ["2", 0]
    assert executor.run(parse_workflow(graph, registry), outputs=["1"]).values["1"][2] == 12
    assert export_api(parse_workflow(graph, registry), registry)["1"] == graph["1"]
    for bad in (math.nan, math.inf, -math.inf):  # the pack's round() of these raises
        with pytest.raises((ValueError, OverflowError)):
            round(bad)
        with pytest.raises(NodeInputError) as caught:
            call(registry, "WasNumberCounter", number_type="integer", mode="increment", start=0, stop=0, step=1,
                 reset_bool=bad)
        assert caught.value.input == "reset_bool"
    nodes = [ui_node(1, "Number Counter", ["float", "increment_to_stop", 0, 1, 0.5],
                     outputs=[("number", "NUMBER", []), ("float", "FLOAT", []), ("int", "INT", [])])]
    workflow = parse_workflow(ui_graph(nodes), registry)
    assert export_ui(workflow, registry)["nodes"][0]["widgets_values"] == ["float", "increment_to_stop", 0, 1, 0.5]
