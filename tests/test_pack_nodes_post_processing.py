"""EllangoK's ComfyUI-post-processing-nodes (nodes/pack_nodes_post_processing.py): each node against
the pack's formula or library calls (torch / numpy / OpenCV / Pillow) written out here from its
post_processing_nodes.py, on small batches; the pack's unseeded draws against the same draws after
seeding the global generators at 0; the errors by input name; the pack's example workflow as a
UI-format save and an API prompt under the pack's class names, with export round trips."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

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


def _pack_kernel(size, sigma):
    """The pack's gaussian_kernel: exp(-d²/2σ²) over a -1..1 grid, normalised."""
    x, y = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    g = torch.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    return g / g.sum()


def _pack_conv(image, kernel):
    channels, size = image.shape[-1], kernel.shape[-1]
    weights = kernel.repeat(channels, 1, 1).unsqueeze(1)
    return F.conv2d(image.permute(0, 3, 1, 2), weights, padding=size // 2, groups=channels).permute(0, 2, 3, 1)


def _pack_sharpen_kernel(size, alpha):
    kernel = torch.ones((size, size)) * -1
    kernel[size // 2, size // 2] = size ** 2
    return kernel * alpha


# -- blends -----------------------------------------------------------------------------------


def test_arithmetic_blend_modes_and_errors(registry):
    a, b = _images(1), _images(2)
    for mode, want in (("add", a + b), ("subtract", a - b), ("difference", (a - b).abs())):
        out = call(registry, "PostProcArithmeticBlend", image1=a, image2=b, blend_mode=mode)
        assert torch.equal(out, want.clamp(0, 1)), mode
    a[0, 0, 0] = 0
    out = call(registry, "PostProcArithmeticBlend", image1=a, image2=b, blend_mode="divide")
    assert torch.equal(out, (a != 0).float())  # the pack divides image1 by itself
    out = call(registry, "PostProcArithmeticBlend", image1=a, image2=b[:1], blend_mode="add")
    assert torch.equal(out, (a + b[:1]).clamp(0, 1))
    with pytest.raises(NodeInputError) as e:
        call(registry, "PostProcArithmeticBlend", image1=a, image2=_images(3, height=8), blend_mode="add")
    assert e.value.input == "image2"


def _pack_blend(a, b, mode):
    if mode == "normal":
        return b
    if mode == "multiply":
        return a * b
    if mode == "screen":
        return 1 - (1 - a) * (1 - b)
    if mode == "overlay":
        return torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    g = torch.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, torch.sqrt(a))
    return torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (g - a))


def test_blend_modes_and_the_packs_crop_and_resize(registry):
    a, b = _images(1), _images(2)
    for mode in ("normal", "multiply", "screen", "overlay", "soft_light"):
        out = call(registry, "PostProcBlend", image1=a, image2=b, blend_factor=0.3, blend_mode=mode)
        assert torch.allclose(out, (a * 0.7 + _pack_blend(a, b, mode) * 0.3).clamp(0, 1), atol=1e-6), mode
    wide = _images(4, batch=1, height=10, width=40)  # aspect 4 against 1.4: the centre cut to 14 wide
    out = call(registry, "PostProcBlend", image1=a, image2=wide, blend_factor=1.0, blend_mode="normal")
    cut = wide[:, :, (40 - int(10 * 28 / 20)) // 2:][:, :, :int(10 * 28 / 20)]
    want = F.interpolate(cut.permute(0, 3, 1, 2), size=(20, 28), mode="bilinear", align_corners=False)
    assert out.shape == a.shape and torch.allclose(out[0], want.permute(0, 2, 3, 1)[0].clamp(0, 1), atol=1e-6)
    with pytest.raises(NodeInputError) as e:
        call(registry, "PostProcBlend", image1=a, image2=_images(2, channels=4), blend_factor=0.5,
             blend_mode="multiply")
    assert e.value.input == "image2"


def test_dissolve_draws_as_the_pack_after_seeding_torch(registry):
    a, b = _images(1), _images(2)
    torch.manual_seed(0)
    keep = (torch.rand_like(a) < 0.4).float()
    out = call(registry, "PostProcDissolve", image1=a, image2=b, dissolve_factor=0.4)
    assert torch.equal(out, (a * keep + b * (1 - keep)).clamp(0, 1))
    again = call(registry, "PostProcDissolve", image1=a, image2=b, dissolve_factor=0.4)
    assert torch.equal(out, again)
    # the help's limit: float64 (the pack's rand_like draws float64 numbers) is not the pack's draw
    out = call(registry, "PostProcDissolve", image1=a.double(), image2=b.double(), dissolve_factor=0.4)
    assert torch.equal(out, (a.double() * keep + b.double() * (1 - keep)).clamp(0, 1))  # our float32 draw
    torch.manual_seed(0)
    assert not torch.equal(keep.double(), (torch.rand_like(a.double()) < 0.4).double())
    with pytest.raises(NodeInputError) as e:
        call(registry, "PostProcDissolve", image1=a, image2=_images(2, width=5), dissolve_factor=0.4)
    assert e.value.input == "image2"


def test_dodge_and_burn_modes(registry):
    """The pack's dodge / burn on m = mask · intensity, with color_dodge / color_burn choosing by
    the raw mask (mask < 1, mask > 0): areas of exactly 0 and 1 in the mask tell the two apart."""
    image, mask = _images(1) * 0.9 + 0.05, _images(2)
    mask[:, :5] = 1.0
    mask[:, 5:9] = 0.0
    m = mask * 0.6
    dodge = lambda x: x / (1 - m + 1e-7)  # noqa: E731
    burn = lambda x: 1 - (1 - x) / (m + 1e-7)  # noqa: E731
    wants = {"dodge": dodge(image), "burn": burn(image), "dodge_and_burn": burn(dodge(image)),
             "burn_and_dodge": dodge(burn(image)),
             "color_dodge": torch.where(mask < 1, image / (1 - mask * 0.6), image),
             "color_burn": torch.where(mask > 0, 1 - (1 - image) / (mask * 0.6), image),
             "linear_dodge": (image + m).clamp(0, 1), "linear_burn": (image - m).clamp(0, 1)}
    for mode, want in wants.items():
        out = call(registry, "PostProcDodgeAndBurn", image=image, mask=mask, intensity=0.6, mode=mode)
        assert torch.allclose(out, want, rtol=1e-5, atol=1e-6), mode
    out = call(registry, "PostProcDodgeAndBurn", image=image, mask=mask, intensity=0.6, mode="color_dodge")
    assert torch.equal(out[:, :5], image[:, :5])  # mask 1: kept, not image / (1 - 0.6)
    assert torch.allclose(out[:, 9:], image[:, 9:] / (1 - mask[:, 9:] * 0.6))
    out = call(registry, "PostProcDodgeAndBurn", image=image, mask=mask, intensity=0.6, mode="color_burn")
    assert torch.equal(out[:, 5:9], image[:, 5:9])  # mask 0: kept
    flat, ones = torch.full((1, 2, 2, 3), 0.4), torch.ones(1, 2, 2, 3)
    out = call(registry, "PostProcDodgeAndBurn", image=flat, mask=ones, intensity=0.5, mode="color_dodge")
    assert torch.equal(out, flat)  # the pack's 0.4, not 0.4 / (1 - 0.5)
    # intensity 0: the pack's color_burn divides by zero where the mask is above 0
    out = call(registry, "PostProcDodgeAndBurn", image=image, mask=mask, intensity=0.0, mode="color_burn")
    assert torch.isneginf(out[:, 9:][mask[:, 9:] > 0]).all() and torch.equal(out[:, 5:9], image[:, 5:9])
    with pytest.raises(NodeInputError) as e:
        call(registry, "PostProcDodgeAndBurn", image=image, mask=mask[..., 0], intensity=0.6, mode="dodge")
    assert e.value.input == "mask"


# -- filters ----------------------------------------------------------------------------------


def test_blur_sharpen_and_glow_use_the_packs_kernels_with_zero_borders(registry):
    image = _images(1, channels=4)
    out = call(registry, "PostProcBlur", image=image, blur_radius=3, sigma=0.7)
    assert torch.allclose(out, _pack_conv(image, _pack_kernel(7, 0.7)), atol=1e-6)
    out = call(registry, "PostProcSharpen", image=image, sharpen_radius=2, alpha=1.5)
    assert torch.allclose(out, _pack_conv(image, _pack_sharpen_kernel(5, 1.5)).clamp(0, 1), atol=1e-5)
    out = call(registry, "PostProcGlow", image=image, intensity=0.8, blur_radius=4)
    blurred = _pack_conv(image, _pack_kernel(9, (9 - 1) / 6))
    assert torch.allclose(out, (image + blurred * 0.8).clamp(0, 1), atol=1e-6)
    # Glow's and PencilSketch's help: the kernel's edge against its centre, near a box from radius 3
    for radius, edge in ((1, 0.011), (2, 0.32), (3, 0.61), (5, 0.84)):
        kernel = _pack_kernel(2 * radius + 1, radius / 3)
        assert abs(kernel[0, radius] / kernel[radius, radius] - edge) < 0.01, radius


class _CountedInterrupt:
    """A run's interrupt event that is never set, counting how often the node looks at it."""

    def __init__(self):
        self.checks = 0

    def is_set(self):
        self.checks += 1
        return False


@contextlib.contextmanager
def _interrupt_checks(interrupt=None):
    """Run a node's run() as inside a run whose interrupt event is `interrupt` (default: counted)."""
    from graphflow.context import NodeContext, _current
    interrupt = interrupt or _CountedInterrupt()
    token = _current.set(NodeContext("run", "1", "node", lambda event: None, interrupt))
    try:
        yield interrupt
    finally:
        _current.reset(token)


def test_wide_kernels_in_two_passes_equal_the_packs_2d_kernels(registry):
    """The largest radii (Glow 50, PencilSketch 31, Blur and Sharpen 15) as two 1-D passes equal
    the pack's full 2-D conv2d within 1e-5 (Sharpen's 961 · alpha centre in float64: in float32
    both ways round at 1e-4), checking for an interrupt between passes and images."""
    import threading

    from graphflow.context import Interrupted
    image = _images(20, batch=2, height=40, width=56)
    out = call(registry, "PostProcBlur", image=image, blur_radius=15, sigma=0.4)
    assert (out - _pack_conv(image, _pack_kernel(31, 0.4))).abs().max() < 1e-5
    with _interrupt_checks() as interrupt:
        out = call(registry, "PostProcGlow", image=image, intensity=0.3, blur_radius=50)
    assert interrupt.checks >= 4  # each image, and between its two passes
    assert (out - (image + _pack_conv(image, _pack_kernel(101, 100 / 6)) * 0.3).clamp(0, 1)).abs().max() < 1e-5
    out = call(registry, "PostProcPencilSketch", image=image, blur_radius=31, sharpen_alpha=0.0)
    grey = image.mean(-1, keepdim=True).expand(-1, -1, -1, 3)
    want = (grey / (1 - _pack_conv(1 - grey, _pack_kernel(63, 31 / 3)) + 1e-7)).clamp(0, 1)
    assert (out - want).abs().max() < 1e-5
    wide = image.double()
    out = call(registry, "PostProcSharpen", image=wide, sharpen_radius=15, alpha=5.0)
    kernel = _pack_sharpen_kernel(31, 5.0).double()
    assert out.dtype == torch.float64 and (out - _pack_conv(wide, kernel).clamp(0, 1)).abs().max() < 1e-5
    stop = threading.Event()
    stop.set()
    with _interrupt_checks(stop), pytest.raises(Interrupted):
        call(registry, "PostProcGlow", image=image, intensity=0.3, blur_radius=50)


def test_pencil_sketch_follows_the_packs_steps(registry):
    image = _images(5)
    for alpha in (1.3, 0.0):
        out = call(registry, "PostProcPencilSketch", image=image, blur_radius=3, sharpen_alpha=alpha)
        x = image.permute(0, 3, 1, 2)
        grey = x.mean(dim=1, keepdim=True).repeat(1, 3, 1, 1)
        blurred = F.conv2d(1 - grey, _pack_kernel(7, 1.0).repeat(3, 1, 1).unsqueeze(1), padding=3, groups=3)
        want = torch.clamp(grey / (1 - blurred + 1e-7), 0, 1)
        if alpha:
            want = F.conv2d(want, _pack_sharpen_kernel(3, alpha).repeat(3, 1, 1).unsqueeze(1), padding=1, groups=3)
            want = want.clamp(0, 1)
        assert torch.allclose(out, want.permute(0, 2, 3, 1), atol=1e-5), alpha


def _reflect101_quadrant_means(values, radius):
    """Mean of each pixel's four (radius + 1)² quadrants (down-right, down-left, up-right,
    up-left), OpenCV's default border (reflect without repeating the edge: numpy's "reflect")."""
    pad = np.pad(values, [(radius, radius), (radius, radius)] + [(0, 0)] * (values.ndim - 2), mode="reflect")
    h, w = values.shape[:2]
    out = []
    for dy, dx in ((0, 0), (0, -radius), (-radius, 0), (-radius, -radius)):
        total = 0
        for i in range(radius + 1):
            for j in range(radius + 1):
                total = total + pad[radius + dy + i:radius + dy + i + h, radius + dx + j:radius + dx + j + w]
        out.append(total / (radius + 1) ** 2)
    return out


def test_kuwahara_mean_against_quadrant_means_and_gaussian_against_opencv(registry):
    image = _images(6, batch=2, height=18, width=22)
    out = call(registry, "PostProcKuwaharaBlur", image=image, blur_radius=2, method="mean")
    for b in range(2):  # the pack's code fails on a batch: each image here
        pixels = (image[b].numpy() * 255).astype(np.uint8)
        grey = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY).astype(np.float64)
        means = _reflect101_quadrant_means(pixels.astype(np.float64), 2)
        variances = [sq - m * m for sq, m in zip(_reflect101_quadrant_means(grey ** 2, 2),
                                                 _reflect101_quadrant_means(grey, 2))]
        best = np.argmin(np.stack(variances), axis=0)
        want = np.take_along_axis(np.stack(means), best[None, ..., None], 0)[0]
        got = out[b].numpy() * 255
        assert np.array_equal(got, np.floor(want + 1e-4))  # OpenCV's float32 sums, cut to 8 bits
    out = call(registry, "PostProcKuwaharaBlur", image=image, blur_radius=3, method="gaussian")
    pixels = (image[1].numpy() * 255).astype(np.uint8)
    img, grey = pixels.astype(np.float32), cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY).astype(np.float32)
    k = cv2.getGaussianKernel(7, -1, ktype=cv2.CV_32F)
    k /= k[3:].sum()
    halves = np.array([k[:4], k[3:]])
    avgs, devs = [], []
    for (ix, iy), anchor in zip([[1, 1], [1, 0], [0, 1], [0, 0]], [(0, 0), (0, 3), (3, 0), (3, 3)]):
        kx, ky = halves[[ix, iy]]
        avgs.append(cv2.sepFilter2D(img, -1, kx, ky, anchor=anchor))
        m = cv2.sepFilter2D(grey, -1, kx, ky, anchor=anchor)
        devs.append(cv2.sepFilter2D(grey ** 2, -1, kx, ky, anchor=anchor) - m ** 2)
    want = np.take_along_axis(np.stack(avgs), np.argmin(np.stack(devs), 0)[None, ..., None], 0)[0]
    assert np.array_equal(out[1].numpy(), torch.from_numpy(want.astype(np.uint8)).numpy() / np.float32(255.0))
    same = call(registry, "PostProcKuwaharaBlur", image=image, blur_radius=0, method="mean")
    assert same is image


# -- masks ------------------------------------------------------------------------------------


def test_canny_edge_mask_is_a_0_255_mask_shaped_image(registry):
    image = torch.zeros(2, 24, 24, 3)
    image[0, 6:18, 6:18] = 1.0
    image[1, :, 12:] = 0.6
    out = call(registry, "PostProcCannyEdgeMask", image=image, lower_threshold=50, upper_threshold=150)
    assert out.shape == (2, 24, 24) and set(out.unique().tolist()) == {0.0, 255.0}
    for b in range(2):
        grey = (cv2.cvtColor(image[b].numpy(), cv2.COLOR_RGB2GRAY) * 255).astype(np.uint8)
        assert np.array_equal(out[b].numpy(), cv2.Canny(grey, 50, 150).astype(np.float32))


def test_hsv_threshold_mask_per_channel(registry):
    image = _images(7)
    for channel, scale, index in (("hue", 180, 0), ("saturation", 255, 1), ("value", 255, 2)):
        out = call(registry, "PostProcHSVThresholdMask", image=image, low_threshold=0.2, high_threshold=0.7,
                     hsv_channel=channel)
        hsv = np.stack([cv2.cvtColor((p * 255).astype(np.uint8), cv2.COLOR_RGB2HSV) for p in image.numpy()])
        inside = (hsv[..., index] >= int(0.2 * scale)) & (hsv[..., index] <= int(0.7 * scale))
        assert out.shape == (2, 20, 28) and np.array_equal(out.numpy(), inside.astype(np.float32)), channel


# -- colour adjustments -----------------------------------------------------------------------


def _pack_color_correct(pixels, temperature, hue, brightness, contrast, saturation, gamma):
    picture = ImageEnhance.Brightness(Image.fromarray(pixels)).enhance(1 + brightness / 100)
    picture = np.array(ImageEnhance.Contrast(picture).enhance(1 + contrast / 100)).astype(np.float32)
    t = temperature / 100
    if t > 0:
        picture[:, :, 0] *= 1 + t
        picture[:, :, 1] *= 1 + t * 0.4
    elif t < 0:
        picture[:, :, 2] *= 1 - t
    picture = np.clip(np.power(np.clip(picture, 0, 255) / 255, gamma), 0, 1)
    hls = cv2.cvtColor(picture, cv2.COLOR_RGB2HLS)
    hls[:, :, 2] = np.clip((1 + saturation / 100) * hls[:, :, 2], 0, 1)
    hsv = cv2.cvtColor(cv2.cvtColor(hls, cv2.COLOR_HLS2RGB) * 255, cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = (hsv[:, :, 0] + hue) % 360
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.uint8) / 255


def test_color_correct_follows_pillow_and_opencv(registry):
    image = _images(8)
    for settings in ((35, 10, 5, 10, 35, 1.0), (-40, -25, -20, 30, -50, 1.6), (0, 0, 0, 0, 0, 1.0)):
        out = call(registry, "PostProcColorCorrect", image=image,
                     **dict(zip(("temperature", "hue", "brightness", "contrast", "saturation", "gamma"), settings)))
        want = np.stack([_pack_color_correct((p * 255).astype(np.uint8), *settings) for p in image.numpy()])
        assert np.allclose(out.numpy(), want.astype(np.float32)), settings
    # all neutral: the 8-bit picture, give or take a level of OpenCV's float round trips
    assert np.abs(out.numpy() * 255 - (image.numpy() * 255).astype(np.uint8)).max() <= 1.0001


def test_color_tint_sepia_parabolize_and_solarize_formulas(registry):
    image = _images(9)
    grey = (image * torch.tensor([0.2989, 0.5870, 0.1140])).sum(-1, keepdim=True)
    pack_tints = {  # the pack's mode_filters, in its order
        "sepia": [1.0, 0.8, 0.6], "red": [1.0, 0.6, 0.6], "green": [0.6, 1.0, 0.6], "blue": [0.6, 0.8, 1.0],
        "cyan": [0.6, 1.0, 1.0], "magenta": [1.0, 0.6, 1.0], "yellow": [1.0, 1.0, 0.6], "purple": [0.8, 0.6, 1.0],
        "orange": [1.0, 0.7, 0.3], "warm": [1.0, 0.9, 0.7], "cool": [0.7, 0.9, 1.0], "lime": [0.7, 1.0, 0.3],
        "navy": [0.3, 0.4, 0.7], "vintage": [0.9, 0.85, 0.7], "rose": [1.0, 0.8, 0.9], "teal": [0.3, 0.8, 0.8],
        "maroon": [0.7, 0.3, 0.5], "peach": [1.0, 0.8, 0.6], "lavender": [0.8, 0.6, 1.0], "olive": [0.6, 0.7, 0.4]}
    assert list(registry.get("PostProcColorTint").input_specs["mode"].widget.choices()) == list(pack_tints)
    for mode, rgb in pack_tints.items():
        out = call(registry, "PostProcColorTint", image=image, strength=0.6, mode=mode)
        assert torch.allclose(out, grey * torch.tensor(rgb) * 0.6 + image * 0.4, atol=1e-6), mode
    for node_type in ("PostProcColorTint", "PostProcSepia"):  # strength 0 (the pack's no-op branch) can't reach run()
        with pytest.raises(ValueError):
            registry.get(node_type).widget_model.model_validate({"strength": 0.0})
    out = call(registry, "PostProcSepia", image=image, strength=1.0)
    assert torch.allclose(out, grey * torch.tensor([1.0, 0.8, 0.6]), atol=1e-6)
    out = call(registry, "PostProcParabolize", image=image, coeff=-2.5, vertex_x=0.3, vertex_y=0.9)
    assert torch.allclose(out, (-2.5 * (image - 0.3) ** 2 + 0.9).clamp(0, 1), atol=1e-6)
    out = call(registry, "PostProcSolarize", image=image, threshold=0.4)
    assert torch.equal(out, torch.where(image > 0.4, 1 - image, image))


def test_quantize_follows_pillow(registry):
    image = _images(10)
    for colors, dither, flag in ((8, "none", Image.Dither.NONE), (5, "floyd-steinberg", Image.Dither.FLOYDSTEINBERG)):
        out = call(registry, "PostProcQuantize", image=image, colors=colors, dither=dither)
        for b in range(2):
            picture = Image.fromarray((image[b] * 255).to(torch.uint8).numpy(), mode="RGB")
            palette = picture.quantize(colors=colors)
            want = np.array(picture.quantize(colors=colors, palette=palette, dither=flag).convert("RGB"))
            assert torch.equal(out[b], torch.tensor(want).float() / 255), (colors, dither)
            assert len(np.unique(want.reshape(-1, 3), axis=0)) <= colors


def test_kmeans_quantize_follows_opencv_seeded(registry):
    image = _images(11, batch=2, height=12, width=14)
    out = call(registry, "PostProcKMeansQuantize", image=image, colors=4, precision=3)
    for b in range(2):
        values = image[b].numpy().reshape(-1, 3).astype(np.float32)
        cv2.setRNGSeed(0)
        _, labels, centers = cv2.kmeans(values, 4, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 15, 0.01),
                                        1, cv2.KMEANS_PP_CENTERS)
        assert np.array_equal(out[b].numpy(), centers[labels.flatten()].reshape(12, 14, 3))
        assert len(np.unique(out[b].numpy().reshape(-1, 3), axis=0)) <= 4
    with pytest.raises(NodeInputError) as e:
        call(registry, "PostProcKMeansQuantize", image=_images(1, height=2, width=2), colors=5, precision=1)
    assert e.value.input == "colors"
    with _interrupt_checks() as interrupt:
        call(registry, "PostProcKMeansQuantize", image=_images(11, batch=3, height=6, width=5), colors=2, precision=1)
    assert interrupt.checks >= 3  # each image
    big = torch.zeros(1, 1024, 1024, 3)  # 1024² × 256 × 500 iterations: 36 s in the pack, refused here
    with pytest.raises(NodeInputError) as e:
        call(registry, "PostProcKMeansQuantize", image=big, colors=256, precision=100)
    assert e.value.input == "precision" and "at most 2e+10" in str(e.value)


# -- effects ----------------------------------------------------------------------------------


def test_ascii_art_draws_the_packs_characters_with_the_default_font(registry, tmp_folders):
    chars = r" .'`^\",:;I1!i><-+_-?][}{1)(|\/tfjrxnuvczXYUCLQ0OZmwqpbdkhao*#MW&8%B@$"
    image = _images(12, batch=1, height=30, width=40)
    out = call(registry, "PostProcAsciiArt", image=image, char_size=8, font_size=10)
    picture = Image.fromarray((image[0].numpy() * 255).astype("uint8"), "RGB")
    small = picture.resize((40 // 8, 30 // 8), Image.Resampling.NEAREST)
    want = Image.new("RGB", picture.size, (0, 0, 0))
    draw, font = ImageDraw.Draw(want), ImageFont.load_default(size=10)  # no models/fonts/arial.ttf here
    for i in range(small.height):
        for j in range(small.width):
            r, g, b = small.getpixel((j, i))
            draw.text((j * 8, i * 8), chars[((r + g + b) // 3) * len(chars) // 256], font=font, fill=(r, g, b))
    assert torch.equal(out[0], torch.tensor(np.array(want)) / 255.0)
    assert out.max() > 0
    for name, widgets in (("char_size", dict(char_size=0, font_size=10)),
                          ("char_size", dict(char_size=64, font_size=10)),
                          ("font_size", dict(char_size=8, font_size=0))):
        with pytest.raises(NodeInputError) as e:
            call(registry, "PostProcAsciiArt", image=image, **widgets)
        assert e.value.input == name


def test_chromatic_aberration_rolls_each_channel(registry):
    image = _images(13, channels=4)
    out = call(registry, "PostProcChromaticAberration", image=image, red_shift=3, red_direction="horizontal",
                 green_shift=-2, green_direction="vertical", blue_shift=5, blue_direction="vertical")
    x = image.permute(0, 3, 1, 2)
    shifts = [(0, 3), (2, 0), (-5, 0)]  # the pack's get_shift: vertical shifts negated, over dims (1, 2)
    want = torch.stack([torch.roll(x[:, i], shifts=shifts[i], dims=(1, 2)) for i in range(3)], dim=1)
    assert torch.equal(out, want.permute(0, 2, 3, 1))


def _pack_film_grain(image, intensity, scale, temperature, vignette):
    """The pack's FilmGrain, drawing from numpy's global generator."""
    def gradient(h, x, y):
        g = np.array([[1, 1], [-1, 1], [1, -1], [-1, -1]])[h % 4]
        return g[:, :, 0] * x + g[:, :, 1] * y

    out = []
    for picture in image.numpy():
        height, width = picture.shape[:2]
        noise = np.zeros((height, width))
        for octave in range(4):
            X, Y = np.meshgrid(np.linspace(0, 1, width, endpoint=False), np.linspace(0, 1, height, endpoint=False))
            X, Y = X * scale * 2 ** octave, Y * scale * 2 ** octave
            xf, yf = X - X.astype(int), Y - Y.astype(int)
            u, v = xf * xf * (3.0 - 2.0 * xf), yf * yf * (3.0 - 2.0 * yf)
            n00 = gradient(np.random.randint(0, 4, (height, width)), xf, yf)
            n01 = gradient(np.random.randint(0, 4, (height, width)), xf, yf - 1)
            n10 = gradient(np.random.randint(0, 4, (height, width)), xf - 1, yf)
            n11 = gradient(np.random.randint(0, 4, (height, width)), xf - 1, yf - 1)
            x1, x2 = n00 + u * (n10 - n00), n01 + u * (n11 - n01)
            noise += (x1 + v * (x2 - x1)) * 0.5 ** octave
        noise = noise / (1 - 0.5 ** 4)
        noise = (noise - noise.min()) / (noise.max() - noise.min())
        grain = np.clip(picture + ((noise * 2 - 1) * intensity)[:, :, None], 0, 1)
        t = temperature / 100
        if t > 0:
            grain[:, :, 0] *= 1 + t
            grain[:, :, 1] *= 1 + t * 0.4
        elif t < 0:
            grain[:, :, 2] *= 1 - t
        grain = np.clip(grain, 0, 1)
        if vignette:
            X, Y = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
            radius = np.sqrt(X ** 2 + Y ** 2)
            grain = np.clip(grain * (1 - radius / radius.max() * min(vignette, 1))[..., None], 0, 1)
        out.append(grain)
    return np.stack(out)


def test_film_grain_equals_the_pack_after_seeding_numpy(registry):
    image = _images(14)
    for settings in ((0.4, 5.0, 20.0, 0.2), (0.2, 10.0, -30.0, 0.0)):
        out = call(registry, "PostProcFilmGrain", image=image,
                     **dict(zip(("intensity", "scale", "temperature", "vignette"), settings)))
        np.random.seed(0)
        want = _pack_film_grain(image, *settings)
        assert np.allclose(out.numpy(), want.astype(np.float32), atol=1e-6), settings
        assert not torch.equal(out[0], out[1])  # the batch's images draw in turn
    for height, width in ((1, 1), (1, 2), (2, 2)):  # flat noise: the pack's stretch gives NaN
        tiny = _images(14, batch=1, height=height, width=width)
        np.random.seed(0)
        with np.errstate(invalid="ignore"):
            assert np.isnan(_pack_film_grain(tiny, 0.3, 10.0, 0.0, 0.0)).all()
        out = call(registry, "PostProcFilmGrain", image=tiny, intensity=0.3, scale=10.0, temperature=0.0,
                   vignette=0.0)
        assert torch.equal(out, tiny), (height, width)  # no grain


def _pack_pixel_sort(img, mask, horizontal, span_limit, key, reverse):
    """The pack's pixel_sort, loop for loop: runs of 1s keep their ends, runs of 0s get sorted."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] /= 2.0
    m = np.where(mask > 0, 1, 0).astype(np.uint8)
    if not horizontal:
        img, hsv, m = img.transpose(1, 0, 2), hsv.transpose(1, 0, 2), m.T.copy()
    out = np.zeros_like(img)
    for row, (pixels, keys, marks) in enumerate(zip(img, hsv, m)):
        in_band, start, end = False, None, None
        for j, value in enumerate(marks):
            if value == 1:
                if not in_band:
                    in_band, start = True, j
                end = j
            elif in_band:
                marks[start + 1:end] = 0
                in_band = False
        if in_band:
            marks[start + 1:end] = 0
        spans, start = [], None
        for i, value in enumerate(marks):
            if value == 0 and start is None:
                start = i
            if value == 1 and start is not None:
                if span_limit is None or i - start <= span_limit:
                    spans.append((start, i))
                start = None
        if start is not None and (span_limit is None or len(marks) - start <= span_limit):
            spans.append((start, len(marks)))
        line = pixels.copy()
        for a, b in spans:
            order = sorted(range(a, b), key=lambda x: keys[x][key], reverse=reverse)
            line[a:b] = pixels[order]
        out[row] = line
    return out if horizontal else out.transpose(1, 0, 2)


def test_pixel_sort_matches_the_packs_loops(registry):
    image = _images(15, height=18, width=24)
    image[:, :, :6] = 0.5  # ties: equal keys keep their order, forward and backward
    marks = torch.rand(2, 18, 24, generator=torch.Generator().manual_seed(3)) > 0.75
    mask = marks.float() * 255
    for direction in ("horizontal", "vertical"):
        for span_limit in (0, 5):
            for key, sort_by in enumerate(("hue", "saturation", "value")):
                for order in ("forward", "backward"):
                    out = call(registry, "PostProcPixelSort", image=image, mask=mask, direction=direction,
                                 span_limit=span_limit, sort_by=sort_by, order=order)
                    for b in range(2):
                        want = _pack_pixel_sort(image[b].numpy(), mask[b].numpy(), direction == "horizontal",
                                                span_limit or None, key, order == "backward")
                        assert np.array_equal(out[b].numpy(), want), (direction, span_limit, sort_by, order)
    tall = _images(15, batch=1, height=130, width=6)
    with _interrupt_checks() as interrupt:
        out = call(registry, "PostProcPixelSort", image=tall, mask=torch.zeros(1, 130, 6), direction="horizontal",
                   span_limit=0, sort_by="value", order="forward")
    assert interrupt.checks >= 3  # every 64 lines
    assert np.array_equal(out[0].numpy(), _pack_pixel_sort(tall[0].numpy(), np.zeros((130, 6)), True, None, 2, False))
    out = call(registry, "PostProcPixelSort", image=image, mask=mask[..., None].expand(-1, -1, -1, 3),
                 direction="horizontal", span_limit=0, sort_by="value", order="forward")
    assert np.array_equal(out[0].numpy(), _pack_pixel_sort(image[0].numpy(), mask[0].numpy(), True, None, 2, False))
    with pytest.raises(NodeInputError) as e:
        call(registry, "PostProcPixelSort", image=image, mask=mask[:, :10], direction="horizontal", span_limit=0,
             sort_by="hue", order="forward")
    assert e.value.input == "mask"


def test_pixelize_averages_whole_squares(registry):
    image = _images(16, height=20, width=27)
    out = call(registry, "PostProcPixelize", image=image, pixel_size=4)
    blocks = image[:, :20, :24].reshape(2, 5, 4, 6, 4, 3).mean(dim=(2, 4))
    rows = torch.arange(20) * 5 // 20
    cols = torch.arange(27) * 6 // 27  # nearest: floor(index · in / out)
    assert torch.allclose(out, blocks[:, rows][:, :, cols], atol=1e-6)
    with pytest.raises(NodeInputError) as e:
        call(registry, "PostProcPixelize", image=image, pixel_size=21)
    assert e.value.input == "pixel_size"


def test_sine_wave_rolls_rows_or_columns(registry):
    import math
    image = _images(17, channels=4)
    for direction in ("horizontal", "vertical"):
        out = call(registry, "PostProcSineWave", image=image, amplitude=7, frequency=3, direction=direction)
        want = torch.zeros_like(image)
        for b in range(2):
            for c in range(3):
                if direction == "horizontal":
                    for i in range(20):
                        offset = int(7 * np.sin(2 * math.pi * i * 3 / 20))
                        want[b, i, :, c] = torch.roll(image[b, i, :, c], offset)
                else:
                    for j in range(28):
                        offset = int(7 * np.sin(2 * math.pi * j * 3 / 28))
                        want[b, :, j, c] = torch.roll(image[b, :, j, c], offset)
        assert torch.equal(out, want), direction
    assert torch.equal(out[..., 3], torch.zeros_like(out[..., 3]))  # as in the pack, alpha comes back 0


def test_vignette_square_as_the_pack_and_other_shapes(registry):
    square = _images(18, height=16, width=16)
    out = call(registry, "PostProcVignette", image=square, vignette=0.7)
    x = torch.linspace(-1, 1, 16)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    radius = torch.sqrt(X ** 2 + Y ** 2)
    want = (square * (1 - (radius / radius.amax()).unsqueeze(0).unsqueeze(-1) * 0.7)).clamp(0, 1)
    assert torch.allclose(out, want, atol=1e-6)
    wide = _images(18, height=10, width=30)
    out = call(registry, "PostProcVignette", image=wide, vignette=4.0)  # strength clamps at 1
    X, Y = np.meshgrid(np.linspace(-1, 1, 30), np.linspace(-1, 1, 10))
    shade = 1 - np.sqrt(X ** 2 + Y ** 2) / np.sqrt(2)
    assert np.allclose(out.numpy(), np.clip(wide.numpy() * shade[None, ..., None], 0, 1), atol=1e-6)
    assert out[0, 0, 0].abs().max() < 1e-6 and out[0, 4:6, 14:16].max() > 0
    same = call(registry, "PostProcVignette", image=wide, vignette=0.0)
    assert same is wide


def test_bfloat16_images_run_as_their_float32_values(registry):
    """numpy has no bfloat16: the nodes that go through numpy take the float32 values and give
    bfloat16 back, as the same picture in float32 does."""
    image = _images(21, batch=2, height=16, width=18).bfloat16()
    mask = (torch.rand(2, 16, 18, generator=torch.Generator().manual_seed(4)) > 0.7).bfloat16()
    runs = [("PostProcKuwaharaBlur", dict(blur_radius=2, method="mean")),
            ("PostProcFilmGrain", dict(intensity=0.3, scale=4.0, temperature=10.0, vignette=0.2)),
            ("PostProcColorCorrect", dict(temperature=20, hue=10, brightness=5, contrast=10, saturation=20, gamma=1.2)),
            ("PostProcHSVThresholdMask", dict(low_threshold=0.2, high_threshold=0.7, hsv_channel="value")),
            ("PostProcQuantize", dict(colors=6, dither="none")),
            ("PostProcKMeansQuantize", dict(colors=3, precision=1)),
            ("PostProcPixelSort", dict(mask=mask, direction="vertical", span_limit=0, sort_by="hue", order="forward"))]
    for node_type, inputs in runs:
        out = call(registry, node_type, image=image, **inputs)
        same = {k: v.float() if torch.is_tensor(v) else v for k, v in inputs.items()}
        want = call(registry, node_type, image=image.float(), **same)
        assert out.dtype == want.dtype or out.dtype == torch.bfloat16, node_type
        assert torch.equal(out.float(), want.to(out.dtype).float()), node_type


def test_not_an_image_is_refused_by_name(registry):
    with pytest.raises(NodeInputError) as e:
        call(registry, "PostProcSolarize", image=torch.rand(4, 4), threshold=0.5)
    assert e.value.input == "image"


# -- workflows --------------------------------------------------------------------------------


def _write_input(tmp_folders):
    pixels = (np.random.default_rng(2).random((40, 48, 3)) * 255).astype(np.uint8)
    pixels[10:30, 12:36] = (200, 60, 30)
    Image.fromarray(pixels, "RGB").save(tmp_folders.inputs / "in.png")


def test_the_packs_example_workflow_as_a_ui_save(registry, tmp_folders):
    """The shape of the pack's examples/example_workflow.json: ColorCorrect feeding PencilSketch,
    FilmGrain, Solarize, Blend and Quantize; CannyEdgeMask and HSVThresholdMask marking PixelSort."""
    _write_input(tmp_folders)
    nodes = [
        ui_node(75, "LoadImage", ["in.png", "image"], outputs=[("IMAGE", "IMAGE", [136, 180]), ("MASK", "MASK", [])]),
        ui_node(78, "ColorCorrect", [35, 10, 5, 10, 35, 1], [("image", "IMAGE", 136, False)],
                [("IMAGE", "IMAGE", [138, 140, 142, 145, 149])]),
        ui_node(79, "PencilSketch", [4, 1], [("image", "IMAGE", 138, False)], [("IMAGE", "IMAGE", [])]),
        ui_node(81, "FilmGrain", [0.4, 5, 20, 0.2], [("image", "IMAGE", 140, False)], [("IMAGE", "IMAGE", [])]),
        ui_node(83, "Solarize", [0.9], [("image", "IMAGE", 142, False)], [("IMAGE", "IMAGE", [144, 163])]),
        ui_node(85, "Blend", [0.5000000000000001, "normal"], [("image1", "IMAGE", 145, False),
                                                                ("image2", "IMAGE", 144, False)],
                [("IMAGE", "IMAGE", [165])]),
        ui_node(89, "Quantize", [8, "none"], [("image", "IMAGE", 149, False)], [("IMAGE", "IMAGE", [])]),
        ui_node(99, "CannyEdgeMask", [100, 200], [("image", "IMAGE", 163, False)], [("IMAGE", "IMAGE", [166])]),
        ui_node(91, "PixelSort", ["vertical", 0, "hue", "forward"], [("image", "IMAGE", 165, False),
                                                                     ("mask", "IMAGE", 166, False)],
                [("IMAGE", "IMAGE", [175])]),
        ui_node(104, "HSVThresholdMask", [0.2, 0.7, "hue"], [("image", "IMAGE", 180, False)],
                [("IMAGE", "IMAGE", [179])]),
        ui_node(103, "PixelSort", ["horizontal", 0, "value", "forward"], [("image", "IMAGE", 175, False),
                                                                          ("mask", "IMAGE", 179, False)],
                [("IMAGE", "IMAGE", [177])]),
        ui_node(98, "SaveImage", ["ComfyUI"], [("images", "IMAGE", 177, False)]),
    ]
    links = [[136, 75, 0, 78, 0, "IMAGE"], [138, 78, 0, 79, 0, "IMAGE"], [140, 78, 0, 81, 0, "IMAGE"],
             [142, 78, 0, 83, 0, "IMAGE"], [144, 83, 0, 85, 1, "IMAGE"], [145, 78, 0, 85, 0, "IMAGE"],
             [149, 78, 0, 89, 0, "IMAGE"], [163, 83, 0, 99, 0, "IMAGE"], [165, 85, 0, 91, 0, "IMAGE"],
             [166, 99, 0, 91, 1, "IMAGE"], [175, 91, 0, 103, 0, "IMAGE"], [179, 104, 0, 103, 1, "IMAGE"],
             [177, 103, 0, 98, 0, "IMAGE"], [180, 75, 0, 104, 0, "IMAGE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["79", "81", "89", "98"])
    values = {k: v[0] for k, v in result.values.items() if v}
    loaded = values["75"]
    corrected = _pack_color_correct((loaded[0].numpy() * 255).astype(np.uint8), 35, 10, 5, 10, 35, 1)
    assert np.allclose(values["78"][0].numpy(), corrected.astype(np.float32))
    np.random.seed(0)
    assert np.allclose(values["81"].numpy(), _pack_film_grain(values["78"], 0.4, 5, 20, 0.2).astype(np.float32),
                       atol=1e-6)
    solarized = values["83"]
    assert torch.equal(solarized, torch.where(values["78"] > 0.9, 1 - values["78"], values["78"]))
    assert torch.allclose(values["85"], (values["78"] * 0.5 + solarized * 0.5).clamp(0, 1), atol=1e-6)
    assert len(np.unique(values["89"][0].numpy().reshape(-1, 3), axis=0)) <= 8
    assert values["99"].shape == (1, 40, 48) and values["104"].shape == (1, 40, 48)
    want = _pack_pixel_sort(values["85"][0].numpy(), values["99"][0].numpy(), False, None, 0, False)
    assert np.array_equal(values["91"][0].numpy(), want)
    assert len(list(tmp_folders.outputs.glob("ComfyUI_*.png"))) == 1
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for node in nodes[1:-1]:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]


API_PROMPT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
    "2": {"class_type": "ChromaticAberration", "inputs": {
        "image": ["1", 0], "red_shift": 2, "red_direction": "horizontal", "green_shift": 0,
        "green_direction": "horizontal", "blue_shift": -3, "blue_direction": "vertical"}},
    "3": {"class_type": "Vignette", "inputs": {"image": ["2", 0], "vignette": 0.5}},
    "4": {"class_type": "Sharpen", "inputs": {"image": ["3", 0], "sharpen_radius": 1, "alpha": 1.2}},
    "5": {"class_type": "KuwaharaBlur", "inputs": {"image": ["1", 0], "blur_radius": 2, "method": "gaussian"}},
    "6": {"class_type": "ArithmeticBlend", "inputs": {"image1": ["4", 0], "image2": ["5", 0],
                                                      "blend_mode": "difference"}},
    "7": {"class_type": "DodgeAndBurn", "inputs": {"image": ["6", 0], "mask": ["5", 0], "intensity": 0.3,
                                                   "mode": "linear_dodge"}},
    "8": {"class_type": "ColorTint", "inputs": {"image": ["7", 0], "strength": 0.5, "mode": "vintage"}},
    "9": {"class_type": "Glow", "inputs": {"image": ["8", 0], "intensity": 0.5, "blur_radius": 3}},
    "10": {"class_type": "Dissolve", "inputs": {"image1": ["9", 0], "image2": ["1", 0], "dissolve_factor": 0.7}},
    "11": {"class_type": "SineWave", "inputs": {"image": ["10", 0], "amplitude": 5, "frequency": 2,
                                                "direction": "vertical"}},
    "12": {"class_type": "Pixelize", "inputs": {"image": ["11", 0], "pixel_size": 4}},
    "13": {"class_type": "Parabolize", "inputs": {"image": ["12", 0], "coeff": 1.5, "vertex_x": 0.4,
                                                  "vertex_y": 0.1}},
    "14": {"class_type": "AsciiArt", "inputs": {"image": ["1", 0], "char_size": 8, "font_size": 8}},
    "15": {"class_type": "Sepia", "inputs": {"image": ["14", 0], "strength": 0.5}},
    "16": {"class_type": "KMeansQuantize", "inputs": {"image": ["1", 0], "colors": 6, "precision": 2}},
    "17": {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "post"}},
}


def test_an_api_prompt_with_the_packs_classes_runs_and_round_trips(registry, tmp_folders):
    _write_input(tmp_folders)
    result = run_graph(registry, API_PROMPT, ["15", "16", "17"])
    values = {k: v[0] for k, v in result.values.items() if v}
    steps = [("2", "PostProcChromaticAberration", "1"), ("3", "PostProcVignette", "2"), ("4", "PostProcSharpen", "3"),
             ("5", "PostProcKuwaharaBlur", "1"), ("8", "PostProcColorTint", "7"), ("9", "PostProcGlow", "8"),
             ("11", "PostProcSineWave", "10"), ("12", "PostProcPixelize", "11"), ("13", "PostProcParabolize", "12"),
             ("14", "PostProcAsciiArt", "1"), ("15", "PostProcSepia", "14"), ("16", "PostProcKMeansQuantize", "1")]
    for node_id, node_type, source in steps:
        widgets = {k: v for k, v in API_PROMPT[node_id]["inputs"].items() if not isinstance(v, list)}
        want = call(registry, node_type, image=values[source], **widgets)
        assert torch.equal(values[node_id], want), node_type
    assert torch.equal(values["6"], (values["4"] - values["5"]).abs().clamp(0, 1))
    assert torch.equal(values["7"], (values["6"] + values["5"] * 0.3).clamp(0, 1))
    torch.manual_seed(0)
    keep = (torch.rand_like(values["9"]) < 0.7).float()
    assert torch.equal(values["10"], (values["9"] * keep + values["1"] * (1 - keep)).clamp(0, 1))
    assert len(list(tmp_folders.outputs.glob("post_*.png"))) == 1
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in API_PROMPT.items()}
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_the_comfy_class_blur_is_masquerades_unless_the_save_names_this_pack(registry):
    """Both packs register "Blur"; Masquerade's is the default (radius, sigma_factor), this pack's
    Blur (PostProcBlur) is read where a save names this pack or its input names (the reading:
    tests/test_comfy_pack_clash.py)."""
    assert registry.comfy_node("Blur").__module__ == "nodes.pack_nodes_masquerade"
    assert [c.node.node_type for c in registry.claimants("Blur")] == ["MasqueradeBlur", "PostProcBlur"]
    assert registry.claimants("Blur")[1].pack == ("comfyui-post-processing-nodes",
                                                  "EllangoK/ComfyUI-post-processing-nodes")
    for name in ("ArithmeticBlend", "AsciiArt", "Blend", "CannyEdgeMask", "ChromaticAberration", "ColorCorrect",
                 "ColorTint", "Dissolve", "DodgeAndBurn", "FilmGrain", "Glow", "HSVThresholdMask", "KuwaharaBlur",
                 "Parabolize", "PencilSketch", "PixelSort", "Pixelize", "Quantize", "Sharpen", "SineWave", "Solarize",
                 "Vignette", "Sepia", "KMeansQuantize"):
        assert registry.comfy_node(name).__module__ == "nodes.pack_nodes_post_processing", name
        assert custom_pack(name) is None, name
    assert custom_pack("Blur") == "masquerade-nodes-comfyui"  # this pack names no class of its own


def test_an_api_prompts_blur_with_this_packs_inputs_is_postprocblur(registry):
    """"Blur" is Masquerade's by default; an API prompt giving only this pack's inputs (blur_radius,
    sigma) is read as PostProcBlur, one mixing both packs' inputs as Masquerade's, whose refusal of
    blur_radius names PostProcBlur."""
    from graphflow.validation import validate
    image = {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}}
    prompt = {"1": image, "2": {"class_type": "Blur", "inputs": {"image": ["1", 0], "blur_radius": 3, "sigma": 1.0}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    workflow = parse_workflow(prompt, registry)
    assert validate(workflow, registry) == [] and registry.get(workflow.nodes["2"].type) is not None
    assert "PostProcBlur" in workflow.nodes["2"].type
    prompt["2"]["inputs"] = {"image": ["1", 0], "radius": 3, "blur_radius": 3}
    (problem,) = validate(parse_workflow(prompt, registry), registry)
    assert (problem.node_type, problem.input) == ("MasqueradeBlur", "blur_radius")
    assert "PostProcBlur" in problem.message
    prompt["2"] = {"class_type": "Blur", "inputs": {"image": ["1", 0], "radius": 3, "sigma_factor": 1.0, "size": 2}}
    (problem,) = validate(parse_workflow(prompt, registry), registry)
    assert problem.input == "size" and problem.message.startswith("unknown input")


def test_sizes_follow_the_image_for_the_resource_check(registry):
    """No node here sizes its output from a number: each estimate is its first image's size, so a
    huge picture is refused where it is made (the pack's nodes keep the input's size)."""
    from graphflow.api import Size
    from graphflow.resource_limits import default_estimate
    size = Size(4, 300, 200)
    for cls in registry:
        if cls.__module__ == "nodes.pack_nodes_post_processing":
            sockets = {name: size for name, spec in cls.input_specs.items() if spec.socket}
            assert cls.estimate({}, sockets) is None, cls.node_type  # no rule of its own
            assert default_estimate(cls, {}, sockets).size == size


DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def test_ascii_art_draws_with_models_fonts_arial(registry, tmp_folders):
    """With models/fonts/arial.ttf (here a copy of DejaVu Sans), the pack's truetype("arial.ttf") font."""
    import os
    import shutil
    if not os.path.exists(DEJAVU):
        pytest.skip("no DejaVu Sans on this machine to stand in for arial.ttf")
    (tmp_folders.models / "fonts").mkdir(parents=True, exist_ok=True)
    shutil.copy(DEJAVU, tmp_folders.models / "fonts" / "arial.ttf")
    image = _images(19, batch=2, height=24, width=36)
    out = call(registry, "PostProcAsciiArt", image=image, char_size=6, font_size=8)
    font = ImageFont.truetype(DEJAVU, 8)
    chars = r" .'`^\",:;I1!i><-+_-?][}{1)(|\/tfjrxnuvczXYUCLQ0OZmwqpbdkhao*#MW&8%B@$"
    for b in range(2):
        picture = Image.fromarray((image[b].numpy() * 255).astype("uint8"), "RGB")
        small = picture.resize((6, 4), Image.Resampling.NEAREST)
        want = Image.new("RGB", picture.size, (0, 0, 0))
        draw = ImageDraw.Draw(want)
        for i in range(4):
            for j in range(6):
                r, g, bl = small.getpixel((j, i))
                draw.text((j * 6, i * 6), chars[((r + g + bl) // 3) * len(chars) // 256], font=font, fill=(r, g, bl))
        assert torch.equal(out[b], torch.tensor(np.array(want)) / 255.0)
    with_arial = call(registry, "PostProcAsciiArt", image=image, char_size=6, font_size=8)
    shutil.rmtree(tmp_folders.models / "fonts")
    assert not torch.equal(call(registry, "PostProcAsciiArt", image=image, char_size=6, font_size=8), with_arial)
