"""spacepxl's ComfyUI-Image-Filters (nodes/pack_nodes_image_filters.py and _more.py), checked
against the formulas and library calls the pack's nodes.py (commit 7ba4e444) makes: OpenCV's
blurs, morphology and Scharr, He et al.'s guided filter computed here window by window in
float64, colorsys for HSV, numpy statistics, Conway's rules; the errors by input name; the sizes
declared to the resource limits; a UI-format save and an API prompt with the pack's class names
(a latent node sampled by KSampler on the demo checkpoint), written back as they were read."""

import colorsys

import cv2
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.resource_limits import RunLimits, Size, default_estimate
from graphflow.validation import validate
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_image_filters import guided_filter
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

DEMO = "graphflow-demo.safetensors"


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def close(got, want, atol=1e-5):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64), atol=atol,
                               rtol=1e-5)


# -- the guided filter, against the paper's formula --------------------------------------------


def window_means(x, r):
    """Mean over each (2r+1)^2 window of an [H, W, ...] float64 array, the border mirrored with
    the edge pixel repeated (OpenCV's BORDER_REFLECT = numpy's "symmetric")."""
    pad = [(r, r), (r, r)] + [(0, 0)] * (x.ndim - 2)
    windows = sliding_window_view(np.pad(x, pad, mode="symmetric"), (2 * r + 1, 2 * r + 1), axis=(0, 1))
    return windows.mean(axis=(-2, -1))


def paper_guided_filter(guide, p, r, eps):
    """He et al. (ECCV 2010 / TPAMI 2013), eqs. for a colour guide: per window k,
    a_k = (Sigma_k + eps U)^-1 (mean(I p) - mu_k mean(p)), b_k = mean(p) - a_k . mu_k; the output
    is mean(a) . I + mean(b) over the windows covering each pixel. guide [H, W, G], p [H, W]."""
    guide, p = guide.astype(np.float64), p.astype(np.float64)
    mu = window_means(guide, r)
    mean_p = window_means(p, r)
    sigma = window_means(guide[..., :, None] * guide[..., None, :], r) - mu[..., :, None] * mu[..., None, :]
    cov = window_means(guide * p[..., None], r) - mu * mean_p[..., None]
    a = np.linalg.solve(sigma + eps * np.eye(guide.shape[-1]), cov[..., None])[..., 0]
    b = mean_p - (a * mu).sum(-1)
    return (window_means(a, r) * guide).sum(-1) + window_means(b, r)


def adjugate3(m):
    """The adjugate of [..., 3, 3] matrices: the transposed cofactors (signed 2x2 minors)."""
    adj = np.empty_like(m)
    for i in range(3):
        for j in range(3):
            minor = np.delete(np.delete(m, i, -2), j, -1)
            adj[..., j, i] = (-1) ** (i + j) * np.linalg.det(minor)
    return adj


def opencv_guided_filter(guide, p, r, eps):
    """OpenCV-contrib's guided filter (modules/ximgproc/src/guided_filter.cpp) for a 3-channel
    guide: the paper's formula, with (Sigma + eps U)^-1 taken as adj / det, and where eps < 1e-2
    and |det| < 1e-6, det counted as 1 (ComputeCovGuideInv_ParBody)."""
    guide, p = guide.astype(np.float64), p.astype(np.float64)
    mu, mean_p = window_means(guide, r), window_means(p, r)
    sigma = window_means(guide[..., :, None] * guide[..., None, :], r) - mu[..., :, None] * mu[..., None, :]
    cov = window_means(guide * p[..., None], r) - mu * mean_p[..., None]
    m = sigma + eps * np.eye(3)
    det = np.linalg.det(m)
    if eps < 1e-2:
        det = np.where(np.abs(det) < 1e-6, 1.0, det)
    a = (adjugate3(m) @ cov[..., None])[..., 0] / det[..., None]
    b = mean_p - (a * mu).sum(-1)
    return (window_means(a, r) * guide).sum(-1) + window_means(b, r)


def paper_filter_batch(guide, images, r, eps):
    g, x = guide.numpy(), images.numpy()
    return np.stack([np.stack([paper_guided_filter(g[i], x[i, ..., c], r, eps) for c in range(x.shape[-1])], -1)
                     for i in range(len(x))])


@pytest.mark.parametrize("radius, eps", [(1, 0.01), (2, 0.001), (6, 0.05)])  # 6: a window wider than the image
def test_guided_filter_is_the_papers_formula(radius, eps):
    guide, source = rand(2, 7, 9, 3, seed=1), rand(2, 7, 9, 2, seed=2)
    close(guided_filter(guide, source, radius, eps), paper_filter_batch(guide, source, radius, eps), atol=2e-5)
    grey = guide[..., :1]  # a one-channel guide: a = cov(I, p) / (var(I) + eps)
    close(guided_filter(grey, source, radius, eps), paper_filter_batch(grey, source, radius, eps), atol=2e-5)
    mask = source[..., 0]  # a [B, H, W] source comes back [B, H, W]
    close(guided_filter(guide, mask, radius, eps), paper_filter_batch(guide, source[..., :1], radius, eps)[..., 0],
          atol=2e-5)


def test_guided_filter_follows_opencvs_rule_for_a_near_singular_colour_guide():
    """eps 0.001, a guide grey (three equal channels) on its left half: there det(Sigma + eps U)
    is under 1e-6, and OpenCV divides the adjugate by 1 instead."""
    guide = rand(1, 10, 12, 3, seed=48)
    guide[:, :, :6] = guide[:, :, :6, :1]  # grey: a rank-1 covariance
    source = rand(1, 10, 12, 2, seed=49)
    want = np.stack([opencv_guided_filter(guide[0].numpy(), source[0, ..., c].numpy(), 2, 0.001) for c in range(2)],
                    -1)
    got = guided_filter(guide, source, 2, 0.001)[0]
    close(got, want, atol=2e-5)
    exact = paper_filter_batch(guide, source, 2, 0.001)[0]
    assert np.abs(exact - want).max() > 1e-2  # the rule changes the result there
    close(guided_filter(guide, source, 2, 0.01)[0], paper_filter_batch(guide, source, 2, 0.01)[0], atol=2e-5)


def test_guided_filter_matches_opencv_contrib_where_installed():
    ximgproc = pytest.importorskip("cv2.ximgproc")
    guide, source = rand(1, 12, 10, 3, seed=3), rand(1, 12, 10, 3, seed=4)
    want = ximgproc.guidedFilter(guide[0].numpy(), source[0].numpy(), 3, 0.01)
    close(guided_filter(guide, source, 3, 0.01)[0], want, atol=1e-4)


def test_guided_filter_nodes(registry):
    images, guide = rand(2, 8, 6, 3, seed=5), rand(2, 8, 6, 3, seed=6)
    # Guided Filter Image: radius 2*size+1, eps sigma / 10
    got = call(registry, "GuidedFilterImage", images=images, guide=guide, size=1, sigma=0.5)
    close(got, paper_filter_batch(guide, images, 3, 0.05), atol=2e-5)
    # (DEPRECATED) Guided Filter Alpha: the alpha filtered, guided by the images, one per image
    got = call(registry, "GuidedFilterAlpha", images=guide, alpha=images, filter_radius=1, sigma=0.2)
    close(got, paper_filter_batch(guide, images, 3, 0.02), atol=2e-5)
    got = call(registry, "GuidedFilterAlpha", images=guide[:1], alpha=images, filter_radius=1, sigma=0.2)
    close(got, paper_filter_batch(guide[:1], images[:1], 3, 0.02), atol=2e-5)  # a longer alpha batch is cut
    with pytest.raises(NodeInputError) as caught:  # the pack indexes alpha by the images
        call(registry, "GuidedFilterAlpha", images=guide, alpha=images[:1])
    assert caught.value.input == "alpha"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "GuidedFilterImage", images=images, guide=guide[:, :4])
    assert caught.value.input == "guide" and "6x8" in str(caught.value)


def test_enhance_detail_is_its_formula(registry):
    images = rand(2, 9, 8, 3, seed=7)
    got = call(registry, "EnhanceDetail", images=images, filter_radius=1, sigma=0.5, denoise=0.4, detail_mult=3.0)
    for i, image in enumerate(images.numpy()):
        smoothed = cv2.bilateralFilter(image, 3, 0.04, 3)
        base = np.stack([np.clip(paper_guided_filter(image, image[..., c], 3, 0.05), 0.001, 1) for c in range(3)], -1)
        want = np.clip(((smoothed / base - 1) * 3.0 + 1) * base - smoothed + image, 0, 1)
        close(got[i], want, atol=1e-4)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "EnhanceDetail", images=rand(1, 4, 4, 4))
    assert caught.value.input == "images"


# -- OpenCV filters ---------------------------------------------------------------------------


def test_blurs_are_opencvs_gaussian(registry):
    images, masks = rand(2, 10, 12, 3, seed=8), rand(3, 10, 12, seed=9)
    got = call(registry, "BlurImageFast", images=images, radius_x=2, radius_y=1)
    close(got, np.stack([cv2.GaussianBlur(im, (5, 3), 0) for im in images.numpy()]))
    got = call(registry, "BlurMaskFast", masks=masks, radius_x=0, radius_y=3)
    close(got, np.stack([cv2.GaussianBlur(m, (1, 7), 0) for m in masks.numpy()]))
    assert call(registry, "BlurImageFast", images=images, radius_x=0, radius_y=0) is images


def test_dilate_erode_mask(registry):
    masks = rand(2, 9, 11, seed=10)
    padded = np.pad(masks.numpy(), [(0, 0), (2, 2), (2, 2)], constant_values=-np.inf)
    box_max = sliding_window_view(padded, (5, 5), axis=(1, 2)).max(axis=(-2, -1))  # a 5x5 square's max
    close(call(registry, "DilateErodeMask", masks=masks, radius=2, shape="box"), box_max)
    padded = np.pad(masks.numpy(), [(0, 0), (2, 2), (2, 2)], constant_values=np.inf)
    close(call(registry, "DilateErodeMask", masks=masks, radius=-2, shape="box"),
          sliding_window_view(padded, (5, 5), axis=(1, 2)).min(axis=(-2, -1)))
    disc = cv2.circle(np.zeros((7, 7), np.uint8), (3, 3), 3, 1, -1)
    close(call(registry, "DilateErodeMask", masks=masks, radius=3, shape="circle"),
          np.stack([cv2.dilate(m, disc) for m in masks.numpy()]))


def test_median_and_bilateral_are_opencvs(registry):
    images = rand(2, 10, 9, 3, seed=11)
    close(call(registry, "MedianFilterImage", images=images, size=2),
          np.stack([cv2.medianBlur(im, 5) for im in images.numpy()]))
    # over 5 pixels the pack's median runs in 8 bits
    close(call(registry, "MedianFilterImage", images=images, size=3),
          np.stack([cv2.medianBlur((im * 255).astype(np.uint8), 7) / 255 for im in images.numpy()]))
    close(call(registry, "BilateralFilterImage", images=images, size=2, sigma_color=0.3, sigma_space=4.0),
          np.stack([cv2.bilateralFilter(im, 5, 0.3, 4.0) for im in images.numpy()]))


def test_opencv_channel_limits_are_named(registry):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "BilateralFilterImage", images=rand(1, 4, 4, 4))
    assert caught.value.input == "images" and "1 or 3 channels" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "MedianFilterImage", images=rand(1, 4, 4, 2))
    assert caught.value.input == "images" and "1, 3 or 4 channels" in str(caught.value)


def test_alpha_clean_is_its_formula(registry):
    images = rand(1, 12, 12, 3, seed=12)
    got = call(registry, "AlphaClean", images=images, radius=2, fill_holes=1, white_threshold=0.5, extra_clip=0.9)
    image = images[0].numpy()
    alpha = np.clip((image - 0.5) / 0.5, 0, 1)
    white = cv2.GaussianBlur(image * alpha, (5, 5), 0) * 0.99 + (image * alpha).mean() * 0.01
    level = cv2.GaussianBlur(alpha, (5, 5), 0) * 0.99 + alpha.mean() * 0.01
    cleaned = np.clip(cv2.bilateralFilter(image, 9, 0.05, 8) / (white / np.clip(level, 1e-5, 1) * 0.9), 0, 1)
    closed = cv2.erode(cv2.dilate(cleaned ** 2, np.ones((3, 3), np.uint8)), np.ones((5, 5), np.uint8))
    close(got[0], np.maximum(cleaned, cv2.GaussianBlur(closed, (3, 3), 0)), atol=1e-4)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "AlphaClean", images=images, white_threshold=1.0)
    assert caught.value.input == "white_threshold"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "AlphaClean", images=rand(1, 4, 4, 4))
    assert caught.value.input == "images" and "1 or 3 channels" in str(caught.value)


def test_normal_map_simple_is_scharr(registry):
    images = rand(2, 8, 10, 4, seed=13)
    got = call(registry, "NormalMapSimple", images=images, scale_XY=2.0)
    for i, image in enumerate(images.numpy()):
        luma = image[..., :3].mean(-1)
        # the pack's own call: its BORDER_REFLECT lands in OpenCV's output argument
        vector = np.stack([-cv2.Scharr(luma, -1, 1, 0, cv2.BORDER_REFLECT) * 2,
                           cv2.Scharr(luma, -1, 0, 1, cv2.BORDER_REFLECT) * 2, np.ones_like(luma)], -1)
        close(got[i, ..., :3], vector / np.linalg.norm(vector, axis=-1, keepdims=True) / 2 + 0.5, atol=1e-5)
        close(got[i, ..., 3], image[..., 3])  # alpha kept


# -- colour and frequency formulas ------------------------------------------------------------


def test_color_match_and_restore_detail(registry):
    images, reference = rand(2, 6, 5, 3, seed=14), rand(1, 4, 3, 3, seed=15)
    got = call(registry, "ColorMatchImage", images=images, reference=reference, blur_size=0)
    t, ref = images.numpy() + 0.1, reference.numpy() + 0.1
    close(got, t / t.mean((1, 2), keepdims=True) * ref.mean((1, 2), keepdims=True) - 0.1)
    detail = rand(2, 6, 5, 3, seed=16)
    got = call(registry, "RestoreDetail", images=images, detail=detail, mode="add", blur_size=1, factor=0.5)
    blur = lambda x: np.stack([cv2.GaussianBlur(im, (3, 3), 0) for im in x])  # noqa: E731
    t, d = images.numpy() + 0.1, detail.numpy() + 0.1
    restored = d - blur(d) + blur(t) - 0.1
    close(got, np.clip(images.numpy() + 0.5 * (restored - images.numpy()), 0, 1))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "RestoreDetail", images=images, detail=reference)
    assert caught.value.input == "detail"


def test_windows_over_100_pixels_run_at_a_tenth_of_the_size(registry):
    """The pack's cv_blur_tensor / guided_filter_tensor: bilinear to a tenth, a window of
    d // 20 * 2 + 1 there, bilinear back."""
    import torch.nn.functional as F
    images, detail = rand(1, 40, 50, 3, seed=42), rand(1, 40, 50, 3, seed=43)
    got = call(registry, "RestoreDetail", images=images, detail=detail, mode="multiply", blur_size=60)

    def big_blur(x):  # d = 121: a 13-pixel window at 4x5
        small = F.interpolate(x.movedim(-1, 1), scale_factor=0.1, mode="bilinear").movedim(1, -1).numpy()
        small = torch.from_numpy(np.stack([cv2.GaussianBlur(im, (13, 13), 0) for im in small]))
        return F.interpolate(small.movedim(-1, 1), size=(40, 50), mode="bilinear").movedim(1, -1).numpy()
    t, d = images + 0.1, detail + 0.1
    close(got, np.clip(d.numpy() / big_blur(d) * big_blur(t) - 0.1, 0, 1), atol=1e-5)
    got = call(registry, "GuidedFilterImage", images=images, guide=detail, size=60, sigma=1.0)
    small = lambda x: F.interpolate(x.movedim(-1, 1), scale_factor=0.1, mode="bilinear").movedim(1, -1)  # noqa: E731
    filtered = torch.from_numpy(paper_filter_batch(small(detail), small(images), 13, 0.1)).float()
    close(got, F.interpolate(filtered.movedim(-1, 1), size=(40, 50), mode="bilinear").movedim(1, -1), atol=2e-5)


def test_frequency_separate_and_combine(registry):
    original, low = rand(1, 5, 4, 3, seed=17), rand(1, 5, 4, 3, seed=18)
    high = call(registry, "FrequencySeparate", original=original, low_frequency=low, mode="subtract")
    close(high, original - low + 0.5)
    close(call(registry, "FrequencyCombine", high_frequency=high, low_frequency=low, mode="subtract"), original)
    high = call(registry, "FrequencySeparate", original=original, low_frequency=low, mode="divide", eps=0.2)
    close(high, (original + 0.2) / (low + 0.2) / 2)
    close(call(registry, "FrequencyCombine", high_frequency=high, low_frequency=low, mode="divide", eps=0.2), original)


def test_remap_clamp_shuffle_and_difference(registry):
    image = rand(2, 3, 4, 4, seed=19) * 1.4 - 0.2
    close(call(registry, "RemapRange", image=image, blackpoint=0.2, whitepoint=0.7),
          np.clip((image.numpy() - 0.2) / 0.5, 0, 1))
    close(call(registry, "RemapRange", image=image, blackpoint=0.9, whitepoint=0.5),
          np.clip((image.numpy() - 0.499) / 0.001, 0, 1))
    image[0, 0, 0, 0] = float("nan")
    clamped = call(registry, "ClampImage", image=image, blackpoint=0.1, whitepoint=0.8)
    close(clamped, np.clip(np.nan_to_num(image.numpy()), 0.1, 0.8))
    shuffled = call(registry, "ShuffleChannels", image=image, red="blue", green="white", blue="black", alpha="alpha")
    close(shuffled, np.stack([image[..., 2], np.ones(image.shape[:3]), np.zeros(image.shape[:3]), image[..., 3]], -1))
    shuffled = call(registry, "ShuffleChannels", image=image[..., :3], red="alpha", green="red", blue="green")
    close(shuffled, np.stack([np.ones(image.shape[:3]), image[..., 0], image[..., 1]], -1))
    a, b = rand(2, 3, 3, 3, seed=20), rand(2, 3, 3, 3, seed=21)
    close(call(registry, "DifferenceChecker", images1=a, images2=b, multiplier=3.0),
          np.clip(np.abs(a.numpy() - b.numpy()) * 3, 0, 1))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "DifferenceChecker", images1=a, images2=b[:, :2])
    assert caught.value.input == "images2"


def adain_reference(x, ref, axis):
    """Each item's channels (along `axis` of an item) moved to the reference item's mean and std (ddof 1)."""
    x, ref = x.astype(np.float64), ref.astype(np.float64)
    other = tuple(a for a in range(1, x.ndim) if a != axis)
    mean, sd = x.mean(other, keepdims=True), x.std(other, ddof=1, keepdims=True)
    ref_mean, ref_sd = ref.mean(other, keepdims=True), ref.std(other, ddof=1, keepdims=True)
    return (x - mean) / sd * ref_sd + ref_mean


def test_adain_and_batch_normalize(registry):
    images, reference = rand(2, 5, 4, 3, seed=22), rand(2, 5, 4, 3, seed=23) * 3
    want = adain_reference(images.numpy(), reference.numpy(), 3)
    close(call(registry, "AdainImage", images=images, reference=reference, factor=1.0), want)
    close(call(registry, "AdainImage", images=images, reference=reference, factor=0.25),
          images.numpy() + 0.25 * (want - images.numpy()))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "AdainImage", images=images, reference=reference[:1])
    assert caught.value.input == "reference"
    latents, ref_latents = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5) * 2 + 1
    got = call(registry, "AdainLatent", latents={"samples": latents}, reference={"samples": ref_latents})
    close(got["samples"], adain_reference(latents.numpy(), ref_latents.numpy(), 1), atol=1e-4)
    # batch normalize: each image's channel to the whole batch's statistics of that channel
    x = images.numpy().astype(np.float64)
    mean, sd = x.mean((1, 2), keepdims=True), x.std((1, 2), ddof=1, keepdims=True)
    batch_mean, batch_sd = x.mean((0, 1, 2), keepdims=True), x.std((0, 1, 2), ddof=1, keepdims=True)
    close(call(registry, "BatchNormalizeImage", images=images), (x - mean) / sd * batch_sd + batch_mean)
    y = latents.numpy().astype(np.float64)
    mean, sd = y.mean((2, 3), keepdims=True), y.std((2, 3), ddof=1, keepdims=True)
    batch_mean, batch_sd = y.mean((0, 2, 3), keepdims=True), y.std((0, 2, 3), ddof=1, keepdims=True)
    close(call(registry, "BatchNormalizeLatent", latents={"samples": latents})["samples"],
          (y - mean) / sd * batch_sd + batch_mean, atol=1e-4)


def test_batch_average(registry):
    images = rand(4, 2, 3, 3, seed=24)
    close(call(registry, "BatchAverageImage", images=images, operation="mean"), images.numpy().mean(0, keepdims=True))
    lower_median = np.sort(images.numpy(), axis=0)[1:2]  # torch's median of an even count: the lower middle
    close(call(registry, "BatchAverageImage", images=images, operation="median"), lower_median)
    assert registry.get("BatchAverageImage").estimate({}, {"images": Size(4, 2, 3)}).size == Size(1, 2, 3)


def test_image_constants(registry):
    rgb = call(registry, "ImageConstant", width=5, height=3, batch_size=2, red=0.25, green=0.5, blue=1.0)
    assert rgb.shape == (2, 3, 5, 3) and torch.equal(rgb[1, 2, 4], torch.tensor([0.25, 0.5, 1.0]))
    for hue, saturation, value in ((0.0, 0.0, 0.4), (0.1, 0.5, 0.8), (0.45, 1.0, 0.6), (0.7, 0.3, 1.0),
                                   (0.95, 0.9, 0.9), (1.0, 0.5, 0.5)):
        hsv = call(registry, "ImageConstantHSV", width=2, height=2, hue=hue, saturation=saturation, value=value)
        close(hsv[0, 0, 0], colorsys.hsv_to_rgb(hue % 1.0, saturation, value), atol=1e-6)


def test_film_grain_is_its_formula(registry):
    import torch.nn.functional as F
    image = rand(1, 10, 12, 3, seed=44)
    got = call(registry, "BetterFilmGrain", image=image, scale=0.5, strength=0.8, saturation=0.6, toe=0.05, seed=7)
    torch.manual_seed(7)  # the pack draws from torch's global generator
    noise = torch.rand(1, 20, 24, 3).numpy()[0]
    r, g, b = noise[..., 0], noise[..., 1], noise[..., 2]
    y = cv2.GaussianBlur(0.2123 * r + 0.7152 * g + 0.0722 * b, (3, 3), 0)
    cb = cv2.GaussianBlur(-0.1146 * r - 0.3854 * g + 0.5 * b, (15, 15), 0)
    cr = cv2.GaussianBlur(0.5 * r - 0.4542 * g - 0.0458 * b, (11, 11), 0)
    rgb = np.stack([y + 1.5748 * cr, y - 0.1873 * cb - 0.4681 * cr, y + 1.8556 * cb], -1)
    grain = (rgb - 0.5) * 0.8 * np.array([2.0, 1.0, 3.0]) + 1
    grain = grain * 0.6 + grain[..., 1:2] * 0.4
    grain = F.interpolate(torch.from_numpy(grain).float().permute(2, 0, 1)[None], size=(10, 12),
                          mode="bilinear")[0].permute(1, 2, 0).numpy()
    close(got[0], np.clip((1 - (1 - image[0].numpy()) * grain) * 0.95 + 0.05, 0, 1), atol=1e-5)


def measured_peak(fn):
    """The most memory fn() holds at once beyond what it started with: torch's CPU allocations
    (the profiler's, in order) plus numpy's peak (tracemalloc; numpy reports to it). A sum of two
    peaks, so at most their true joint peak's double, at least it."""
    import tracemalloc

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        tracemalloc.start()
        try:
            fn()
            numpy_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    held = torch_peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        held += event.self_cpu_memory_usage
        torch_peak = max(torch_peak, held)
    return torch_peak + numpy_peak


def test_film_grain_declares_its_grains_memory(registry):
    """At scale 0.25 the grain has 16 times the image's pixels: declared, and close to what it takes."""
    image = rand(2, 32, 40, 3, seed=47)
    call(registry, "BetterFilmGrain", image=image, scale=0.25)  # first run: imports, OpenCV's set-up
    peak = measured_peak(lambda: call(registry, "BetterFilmGrain", image=image, scale=0.25))
    declared = registry.get("BetterFilmGrain").estimate({"scale": 0.25}, {"image": Size(2, 32, 40)})
    assert declared.size == Size(2, 32, 40)
    assert 0.75 * peak <= declared.memory <= peak, (declared.memory, peak)  # a lower bound, close
    assert declared.memory >= 2 * 128 * 160 * 60  # the grain's pixels, 16 times the image's
    unknown = registry.get("BetterFilmGrain").estimate({}, {"image": Size(2, 32, 40)})  # a linked scale
    assert unknown.memory == declared.memory


def test_film_grain_without_strength_only_lifts_the_toe(registry):
    image = rand(2, 6, 8, 4, seed=39)
    got = call(registry, "BetterFilmGrain", image=image, strength=0.0, toe=0.1, seed=5)
    close(got[..., :3], np.clip((1 - (1 - image.numpy()[..., :3])) * 0.9 + 0.1, 0, 1))  # grain 1 everywhere
    close(got[..., 3], image[..., 3])


def test_relight_simple(registry):
    image, normals = rand(1, 4, 6, 3, seed=25), rand(1, 4, 6, 3, seed=26)
    got = call(registry, "RelightSimple", image=image, normals=normals, x=0.3, y=-0.5, z=0.8, brightness=1.5)
    light = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    diffuse = np.clip(((normals.numpy() * 2 - 1) * light).sum(-1, keepdims=True), 0, 1)  # same size: no resize
    close(got, np.clip(image.numpy() * diffuse * 1.5, 0, 1))
    with pytest.raises(NodeInputError) as caught:
        call(registry, "RelightSimple", image=image, normals=normals.repeat(2, 1, 1, 1))
    assert caught.value.input == "normals"


# -- tonemapping ------------------------------------------------------------------------------


def srgb_encode(x):
    return np.where(x <= 0.0031308, x * 12.92, np.power(np.maximum(x, 1e-12), 1 / 2.4) * 1.055 - 0.055)


def srgb_decode(x):
    return np.where(x <= 0.0404482362771082, x / 12.92, np.power((x + 0.055) / 1.055, 2.4))


def linlog(x):
    """The pack's tonemap curve: S-Log3 code value v, then (1 / (1 + (v / (1 - v))^-1.7))^1.7 above 0.06."""
    v = np.clip((np.log10((np.maximum(x, 0.0) + 0.01) / 0.19) * 261.5 + 420) / 1023, 0, 1)
    with np.errstate(divide="ignore"):
        curve = np.power(1 / (1 + np.power(v / (1 - v), -1.7)), 1.7)
    return np.where(x > 0.06, curve, x)


def test_tonemap_untonemap_and_exposure(registry):
    linear = torch.linspace(0.0, 4.0, 60).reshape(1, 3, 5, 4)
    mapped = call(registry, "Tonemap", images=linear, input_mode="linear", output_mode="linear", tonemap_scale=2.0)
    close(mapped[..., :3], linlog(linear.numpy()[..., :3] / 2) * 2, atol=1e-5)
    close(mapped[..., 3], linear[..., 3])  # alpha untouched
    back = call(registry, "UnTonemap", images=mapped, input_mode="linear", output_mode="linear", tonemap_scale=2.0)
    close(back[..., :3], linear[..., :3], atol=2e-3)  # the curve's inverse
    srgb = call(registry, "Tonemap", images=linear, input_mode="linear", output_mode="sRGB")
    close(srgb, np.clip(np.concatenate([srgb_encode(linlog(linear.numpy()[..., :3])), linear.numpy()[..., 3:]], -1),
                        0, 1), atol=1e-5)
    image = rand(1, 4, 4, 3, seed=27)
    exposed = call(registry, "ExposureAdjust", images=image, stops=1.5, input_mode="linear", output_mode="linear",
                   tonemap="linear")
    close(exposed, image.numpy() * 2 ** 1.5)
    exposed = call(registry, "ExposureAdjust", images=image, stops=-1.0, input_mode="sRGB", output_mode="sRGB",
                   tonemap="Reinhard")
    x = srgb_decode(np.clip(image.numpy(), 0, 0.999))
    x = np.clip(x, 0, 0.999)
    x = x / (1 - x) * 0.5
    close(exposed, np.clip(srgb_encode(x / (x + 1)), 0, 1), atol=1e-5)
    # linlog: un-tonemapped, exposed, tonemapped again; at 0 stops the curve and its inverse cancel
    same = call(registry, "ExposureAdjust", images=image, stops=0.0, input_mode="linear", output_mode="linear",
                tonemap="linlog")
    close(same, image, atol=2e-3)
    brighter = call(registry, "ExposureAdjust", images=image, stops=1.0, input_mode="linear", output_mode="linear",
                    tonemap="linlog")
    assert (brighter >= same - 1e-6).all() and (brighter.mean() > same.mean())


# -- normals ----------------------------------------------------------------------------------


def test_convert_normals(registry):
    normals = rand(2, 3, 4, 3, seed=28) * 0.5 + 0.5  # blue over 0.5: nothing to fix
    n = normals.numpy()
    got = call(registry, "ConvertNormals", normals=normals, input_mode="BAE", output_mode="Standard", normalize=False)
    close(got, np.stack([1 - n[..., 0], n[..., 1], n[..., 2]], -1))
    got = call(registry, "ConvertNormals", normals=normals, input_mode="MiDaS", output_mode="Standard",
               normalize=False, scale_XY=2.0)
    standard = np.stack([1 - n[..., 2], n[..., 1], n[..., 0]], -1)
    standard[..., :2] = (standard[..., :2] - 0.5) * 2 + 0.5
    close(got, standard)
    got = call(registry, "ConvertNormals", normals=normals, input_mode="Standard", output_mode="MiDaS")
    v = n * 2 - 1
    unit = v / np.linalg.norm(v, axis=-1, keepdims=True) / 2 + 0.5
    close(got, np.stack([unit[..., 2], unit[..., 1], 1 - unit[..., 0]], -1), atol=1e-6)
    black = torch.zeros(1, 2, 2, 3)  # no normal at all: filled flat, or from optional_fill
    close(call(registry, "ConvertNormals", normals=black, input_mode="Standard", output_mode="Standard"),
          np.broadcast_to([0.5, 0.5, 1.0], (1, 2, 2, 3)))
    fill = torch.tensor([0.2, 0.6, 0.9]).expand(1, 2, 2, 3)
    close(call(registry, "ConvertNormals", normals=black, input_mode="Standard", output_mode="Standard",
               normalize=False, optional_fill=fill), fill)


def test_depth_to_normals_are_the_cross_product_of_central_differences(registry):
    depth = rand(1, 5, 7, 3, seed=29)
    got = call(registry, "DepthToNormals", depth=depth, scale=2.0, output_mode="Standard")
    h, w = 5, 7
    points = depth.numpy()[0].astype(np.float64) * 2.0
    points[..., 0] = np.linspace(-1, 1, w)[None, :]
    points[..., 1] = np.linspace(-h / w, h / w, h)[:, None]
    p = np.pad(points, [(1, 1), (1, 1), (0, 0)], mode="edge")
    dx = p[1:-1, :-2] - p[1:-1, 2:]
    dy = p[:-2, 1:-1] - p[2:, 1:-1]
    normal = np.cross(dx, dy)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    normal[..., 1] *= -1
    close(got[0], normal / 2 + 0.5, atol=1e-5)
    bae = call(registry, "DepthToNormals", depth=depth, scale=2.0, output_mode="BAE")
    close(bae[..., 0], 1 - got[..., 0].numpy(), atol=1e-6)
    midas = call(registry, "DepthToNormals", depth=depth, scale=2.0, output_mode="MiDaS")
    close(midas, bae.numpy()[..., ::-1])
    with pytest.raises(NodeInputError) as caught:
        call(registry, "DepthToNormals", depth=rand(1, 3, 3, 1))
    assert caught.value.input == "depth"


def test_keyer(registry):
    images = rand(1, 3, 4, 3, seed=30)
    t = images.numpy()
    image, alpha, mask = call(registry, "Keyer", images=images, operation="luminance", low=0.2, high=0.8, gamma=2.0)
    with np.errstate(invalid="ignore"):  # 1/gamma powers of values under low are NaN, in the pack as here
        want = np.clip(np.power((0.2126 * t[..., 0] + 0.7152 * t[..., 1] + 0.0722 * t[..., 2] - 0.2) / 0.6, 0.5), 0, 1)
    close(mask, want)
    close(alpha[..., 1], mask)
    close(image, t * alpha.numpy())
    _, _, mask = call(registry, "Keyer", images=images, operation="greenscreen", low=0.5, high=0.5, premult=False)
    close(mask, (0.7 * (t[..., 0] + t[..., 2]) - t[..., 1] + 1 > 0.5).astype(np.float32))
    _, _, mask = call(registry, "Keyer", images=images, operation="saturation")
    close(mask, (t.max(-1) - t.min(-1)) / t.max(-1))


# -- jitter -----------------------------------------------------------------------------------


def test_jitter_shifts_and_unjitter_undoes_them(registry):
    image = rand(1, 6, 8, 3, seed=31)
    jittered = call(registry, "JitterImage", images=image, jitter_scale=1.0)
    assert jittered.shape == (9, 6, 8, 3)
    close(jittered[0], image[0], atol=1e-6)  # no shift
    close(jittered[1, :, :-1], image[0, :, 1:], atol=1e-6)  # (1, 0): each pixel takes its right neighbour's
    close(jittered[1, :, -1], image[0, :, -1], atol=1e-6)  # the edge repeated
    close(jittered[3, :-1], image[0, 1:], atol=1e-6)  # (0, 1): the one below's
    close(jittered[6, 1:, 1:], image[0, :-1, :-1], atol=1e-6)  # (-1, -1)
    restored = call(registry, "UnJitterImage", images=jittered, jitter_scale=1.0)
    close(restored[:, 1:-1, 1:-1], image[:, 1:-1, 1:-1].expand(9, -1, -1, -1), atol=1e-5)  # away from the edges
    averaged = call(registry, "BatchAverageUnJittered", images=torch.cat([jittered, jittered[:4]]), operation="mean")
    close(averaged, jittered.numpy().mean(0, keepdims=True))  # the partial group is dropped
    assert registry.get("JitterImage").estimate({}, {"images": Size(2, 6, 8)}).size == Size(18, 6, 8)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "UnJitterImage", images=jittered, oflow_align=True)
    assert caught.value.input == "oflow_align" and "RAFT" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "BatchAverageUnJittered", images=jittered[:5])
    assert caught.value.input == "images"


# -- latents ----------------------------------------------------------------------------------


def test_latent_filters(registry):
    samples = torch.randn(2, 4, 6, 5, generator=torch.Generator().manual_seed(32)) * 2
    latent = {"samples": samples, "batch_index": [3, 4]}
    clamped = call(registry, "ClampOutliers", latents=latent, std_dev=1.0)
    s = samples.numpy().astype(np.float64)
    mean, sd = s.mean((2, 3), keepdims=True), s.std((2, 3), ddof=1, keepdims=True)
    close(clamped["samples"], np.clip(s, mean - sd, mean + sd), atol=1e-5)
    assert clamped["batch_index"] == [3, 4] and latent["samples"] is samples  # the input is not changed
    sharpened = call(registry, "SharpenFilterLatent", latents=latent, filter_size=1, factor=2.5)
    hwc = samples.movedim(1, -1).numpy()
    blurred = np.stack([cv2.GaussianBlur(x, (3, 3), 0) for x in hwc])
    close(sharpened["samples"].movedim(1, -1), (hwc - blurred) * 2.5 + blurred, atol=1e-5)
    reference = torch.randn(2, 4, 6, 5, generator=torch.Generator().manual_seed(33)) + 0.5
    filtered = call(registry, "AdainFilterLatent", latents=latent, reference={"samples": reference}, filter_size=1)

    def local(x):
        m = np.stack([cv2.GaussianBlur(i, (3, 3), 0) for i in x])
        return np.sqrt(np.stack([cv2.GaussianBlur(i, (3, 3), 0) for i in (x - m) ** 2])), m
    (sd, mean), (ref_sd, ref_mean) = local(hwc), local(reference.movedim(1, -1).numpy())
    close(filtered["samples"].movedim(1, -1), (hwc - mean) / sd * ref_sd + ref_mean, atol=1e-3)
    # a reference batch of 1 is broadcast to all, as in the pack
    one = call(registry, "AdainFilterLatent", latents=latent, reference={"samples": reference[:1]}, filter_size=1)
    ref_sd, ref_mean = local(reference[:1].movedim(1, -1).numpy())
    close(one["samples"].movedim(1, -1), (hwc - mean) / sd * ref_sd + ref_mean, atol=1e-3)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "AdainFilterLatent", latents=latent, reference={"samples": reference[:, :, :4]})
    assert caught.value.input == "reference"


def test_offset_latent_and_normalize_shuffle(registry):
    offset = call(registry, "OffsetLatentImage", width=64, height=32, batch_size=2, offset_0=1.5, offset_3=-2.0)
    assert offset["samples"].shape == (2, 4, 4, 8)
    assert torch.equal(offset["samples"][:, :, 1, 2], torch.tensor([[1.5, 0.0, 0.0, -2.0]] * 2))
    samples = torch.randn(2, 4, 7, 6, generator=torch.Generator().manual_seed(34)) * 3 + 1
    got = call(registry, "LatentNormalizeShuffle", latents={"samples": samples}, flatten=1, normalize=True,
               shuffle=True)["samples"]
    # ComfyUI's gaussian_kernel(3, 1): exp(-d^2 / 2) on a -1..1 grid, summing to 1; zero padding
    x, y = np.meshgrid(np.linspace(-1, 1, 3), np.linspace(-1, 1, 3), indexing="ij")
    kernel = np.exp(-(x * x + y * y) / 2)
    kernel /= kernel.sum()
    s = samples.numpy().astype(np.float64)
    padded = np.pad(s, [(0, 0), (0, 0), (1, 1), (1, 1)])
    flat = s - (sliding_window_view(padded, (3, 3), axis=(2, 3)) * kernel).sum((-2, -1))
    flat = (flat - flat.mean((2, 3), keepdims=True)) / flat.std((2, 3), ddof=1, keepdims=True)
    close(got, flat[:, [1, 2, 3, 0]], atol=1e-5)
    wide = torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(46))
    got = call(registry, "LatentNormalizeShuffle", latents={"samples": wide}, normalize=False)["samples"]
    assert torch.equal(got, wide[:, [1, 2, 3, 0]])  # as the pack: four channels come out
    with pytest.raises(NodeInputError) as caught:
        call(registry, "LatentNormalizeShuffle", latents={"samples": samples[:, :3]})
    assert caught.value.input == "latents"


def test_visualize_latents(registry):
    samples = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(35))
    image = call(registry, "VisualizeLatents", latent={"samples": samples})
    s = samples.numpy().astype(np.float64)
    s = (s - s.mean()) / s.std(ddof=1) / 10 + 0.5
    assert image.shape == (2, 6, 10, 3)
    close(image[:, 3:6, 0:5, 0], s[:, 1], atol=1e-6)  # channel 1: down first
    close(image[:, 0:3, 5:10, 1], s[:, 2], atol=1e-6)  # channel 2: then across
    three = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(52))  # the pack raises here
    t = three.numpy().astype(np.float64)
    close(call(registry, "VisualizeLatents", latent={"samples": three})[0, ..., 0],
          ((t - t.mean()) / t.std(ddof=1) / 10 + 0.5)[0, 0], atol=1e-6)  # a 1x1 square: channel 0 only


def test_instruct_pix2pix_advanced_and_conditioning_subtract(registry):
    cond = [(torch.randn(1, 5, 8), {"pooled_output": torch.randn(1, 8)})]
    negative = [(torch.zeros(1, 5, 8), {})]
    new, original = {"samples": torch.randn(1, 4, 2, 2)}, {"samples": torch.randn(1, 4, 2, 2)}
    cond1, cond2, neg, latent = call(registry, "InstructPixToPixConditioningAdvanced", positive=cond,
                                     negative=negative, new=new, new_scale=2.0, original=original, original_scale=0.5)
    assert torch.equal(cond1[0][1]["concat_latent_image"], original["samples"] * 0.5)
    assert torch.equal(cond2[0][1]["concat_latent_image"], original["samples"] * 0.5)
    assert neg is negative and "concat_latent_image" not in cond[0][1]
    assert torch.equal(latent["samples"], new["samples"] * 2.0)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "InstructPixToPixConditioningAdvanced", positive=cond, negative=negative, new=new,
             original={"samples": torch.zeros(1, 4, 3, 2)})
    assert caught.value.input == "original"
    orig = [(torch.randn(1, 7, 8), {"pooled_output": torch.randn(1, 8)}), (torch.randn(1, 3, 8), {})]
    (first, first_options), (second, second_options) = call(registry, "ConditioningSubtract", cond_orig=orig,
                                                            cond_subtract=cond, subtract_strength=0.3)
    padded = torch.cat([cond[0][0], torch.zeros(1, 2, 8)], 1)  # 5 tokens padded to 7
    close(first, orig[0][0] - 0.3 * padded)
    close(first_options["pooled_output"], orig[0][1]["pooled_output"] - 0.3 * cond[0][1]["pooled_output"])
    close(second, orig[1][0] - 0.3 * cond[0][0][:, :3])  # cut to 3
    # none of its own: counted as the subtracted one's, so that times 1 - 0.3, as the pack computes it
    close(second_options["pooled_output"], cond[0][1]["pooled_output"] * 0.7)


def test_inpaint_condition_encode_and_apply_give_what_inpaint_model_conditioning_gives(registry):
    # the pixel-space VAE (its latents: the picture in -1..1) and prompts built in memory: no
    # checkpoint to load; the encoding path and crops are the same for any VAE
    vae = call(registry, "LoadVAE", vae_name="pixel_space")
    positive = [(rand(1, 4, 8, seed=53), {"pooled_output": torch.zeros(1, 8)})]
    negative = [(torch.zeros(1, 4, 8), {})]
    pixels, mask = rand(1, 36, 42, 3, seed=40), (rand(1, 18, 21, seed=41) > 0.6).float()  # not multiples of 8
    condition = call(registry, "InpaintConditionEncode", vae=vae, pixels=pixels, mask=mask)
    core_positive, core_negative, core_latent = call(registry, "InpaintModelConditioning", positive=positive,
                                                     negative=negative, vae=vae, pixels=pixels, mask=mask)
    want = core_positive[0][1]
    close(condition["concat_latent_image"], want["concat_latent_image"], atol=1e-5)
    close(condition["concat_mask"], want["concat_mask"])
    assert condition["concat_mask"].shape == (1, 1, 32, 40)
    cond1, cond2, latent = call(registry, "InpaintConditionApply", positive=positive, negative=negative,
                                inpaint_condition=condition, noise_mask=True)
    for got in (cond1, cond2):
        assert got[0][1]["concat_latent_image"] is condition["concat_latent_image"]
        assert got[0][1]["concat_mask"] is condition["concat_mask"]
    assert torch.equal(latent["samples"], torch.zeros_like(condition["concat_latent_image"]))
    assert latent["noise_mask"] is condition["concat_mask"]
    given = {"samples": torch.ones(1, 3, 32, 40)}
    _, _, latent = call(registry, "InpaintConditionApply", positive=positive, negative=negative,
                        inpaint_condition=condition, latents_optional=given)
    assert latent == given and latent is not given and "noise_mask" not in latent
    with pytest.raises(NodeInputError) as caught:
        call(registry, "InpaintConditionApply", positive=positive, negative=negative, inpaint_condition={})
    assert caught.value.input == "inpaint_condition"


def test_custom_noise_normalises_a_latent_and_add_noise_takes_it(registry):
    samples = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(45)) * 4 + 2
    noise = call(registry, "CustomNoise", noise={"samples": samples})
    s = samples.numpy().astype(np.float64)
    normalised = (s - s.mean((2, 3), keepdims=True)) / s.std((2, 3), ddof=1, keepdims=True)
    close(noise.generate(torch.zeros(1, 4, 8, 8)), normalised, atol=1e-5)
    assert noise.seed == 0
    # core AddNoise on an empty latent: 0 + sigma * noise (an eps model), sigma = first - last sigma
    model = call(registry, "LoadCheckpoint", checkpoint=DEMO)[0]
    sigmas = torch.tensor([3.0, 1.0])
    added = call(registry, "AddNoise", model=model, noise=noise, sigmas=sigmas,
                 latent_image={"samples": torch.zeros(1, 4, 8, 8)})
    fmt = model.latent_format
    want = fmt.process_out(torch.from_numpy(normalised).float() * 2.0)
    close(added["samples"], want, atol=1e-4)
    with pytest.raises(NodeInputError) as caught:
        noise.generate(torch.zeros(1, 4, 4, 4))
    assert caught.value.input == "noise"


# -- generated frames -------------------------------------------------------------------------


def conway(grid):
    neighbours = sum(np.roll(np.roll(grid, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if (dy, dx) != (0, 0))
    return ((neighbours == 3) | ((grid == 1) & (neighbours == 2))).astype(np.float32)


def test_game_of_life_follows_conways_rules(registry):
    image, mask, off, on = call(registry, "GameOfLife", width=10, height=9, cell_size=8, seed=3, threshold=0.6,
                                steps=5)
    with torch.random.fork_rng():  # the pack's way: torch's global generator seeded, then its rand
        torch.manual_seed(3)
        start = (torch.rand(1, 1, 9, 10) > 0.6).float()[0, 0].numpy()
    states = [start]
    for _ in range(4):
        states.append(conway(states[-1]))
    cells = mask[:, ::8, ::8].numpy()
    assert mask.shape == (5, 72, 80) and image.shape == (5, 72, 80, 3)
    close(cells, np.stack(states))
    close(off[1:, ::8, ::8], np.stack([(a == 1) & (b == 0) for a, b in zip(states, states[1:])]))
    close(on[1:, ::8, ::8], np.stack([(a == 0) & (b == 1) for a, b in zip(states, states[1:])]))
    assert registry.get("GameOfLife").estimate({"steps": 5, "height": 9, "width": 10, "cell_size": 8}, {}).size == \
        Size(5, 72, 80)
    game = {"type": "GameOfLife", "inputs": {"width": 1024, "height": 1024, "cell_size": 1024, "steps": 999999}}
    graph = {"1": game, "2": {"type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    problems = validate(parse_workflow({"nodes": graph}), registry, limits=RunLimits(max_pixels=8192 * 8192,
                                                                                      max_batch=64))
    assert {p.node_id for p in problems} == {"1"}


def test_extract_and_merge_frames(registry):
    images, masks = rand(7, 2, 2, 3, seed=36), (rand(7, 2, 2, seed=37) > 0.5).float()
    ids, picked, picked_masks = call(registry, "ExtractNFrames", frames=4, images=images, masks=masks)
    assert ids == [0, 2, 4, 6] and torch.equal(picked, images[ids]) and torch.equal(picked_masks, masks[ids])
    ids, picked, _ = call(registry, "ExtractNFrames", frames=4, images=images[:2])
    assert ids == [0, 1, 1, 1] and torch.equal(picked[3], images[1])
    new = rand(4, 2, 2, 3, seed=38)
    merged, merged_masks = call(registry, "MergeFramesByIndex", index_list=[0, 2, 4, 6], orig_images=images,
                                images=new, masks=picked_masks)
    for i, frame in enumerate([0, 2, 4, 6]):
        m = picked_masks[i][..., None]
        close(merged[frame], images[frame] * (1 - m) + new[i] * m)
    close(merged[1], images[1])
    assert merged_masks[:, 0, 0].tolist() == [0, 1, 0, 1, 0, 1, 0]
    with pytest.raises(NodeInputError) as caught:
        call(registry, "MergeFramesByIndex", index_list=[9], orig_images=images, images=new)
    assert caught.value.input == "index_list"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "MergeFramesByIndex", index_list=[-8], orig_images=images, images=new)
    assert caught.value.input == "index_list"
    # Python's indexes, as the pack takes them: -1 the last frame, -7 the first
    merged, merged_masks = call(registry, "MergeFramesByIndex", index_list=[-1, -7], orig_images=images, images=new)
    close(merged[6], new[0])
    close(merged[0], new[1])
    close(merged[1:6], images[1:6])
    assert merged_masks[:, 0, 0].tolist() == [0, 1, 1, 1, 1, 1, 0]
    extract = registry.get("ExtractNFrames")
    assert extract.estimate({"frames": 4}, {"images": Size(7, 2, 2)}).size == Size(4, 2, 2)
    assert extract.estimate({"frames": 4}, {"masks": Size(7, 3, 5)}).size == Size(4, 3, 5)
    # a lower bound of both outputs: the smaller of the linked size and the 512x512 an unlinked one gives
    assert extract.estimate({"frames": 4}, {"masks": Size(1, 4096, 4096)}).size == Size(4, 512, 512)
    assert extract.estimate({"frames": 4}, {"images": Size(1, 600, 700), "masks": Size(1, 60, 70)}).size == \
        Size(4, 60, 70)


def test_extract_n_frames_declares_its_frames_without_inputs(registry):
    """Nothing linked: `frames` black 512x512 frames, declared, so a long run is refused before it runs."""
    from graphflow.resource_limits import SERVER_LIMITS
    assert registry.get("ExtractNFrames").estimate({"frames": 100}, {}).size == Size(100, 512, 512)

    def problems(frames, limits=None):
        graph = {"1": {"type": "ExtractNFrames", "inputs": {"frames": frames}},
                 "2": {"type": "PreviewImage", "inputs": {"images": ["1", 1]}}}
        return {(p.node_id, p.input) for p in validate(parse_workflow({"nodes": graph}), registry, limits=limits)}
    assert problems(100, SERVER_LIMITS) == {("1", "frames")}  # over the server's batch of 64
    assert problems(16, SERVER_LIMITS) == set()
    assert problems(100000) == {("1", "frames")}  # over the widget's maximum
    # frames of a big linked image: the masks' 512x512 is the size, the images' bytes beyond it memory
    big = registry.get("ExtractNFrames").estimate({"frames": 4096}, {"images": Size(1, 4096, 4096)})
    assert big.size == Size(4096, 512, 512)
    assert big.memory + 4096 * 512 * 512 * 16 == 4096 * (4096 * 4096 * 12 + 512 * 512 * 4)
    graph = {"0": {"type": "EmptyImage", "inputs": {"width": 4096, "height": 4096, "batch_size": 1}},
             "1": {"type": "ExtractNFrames", "inputs": {"frames": 4096, "images": ["0", 0]}},
             "2": {"type": "PreviewImage", "inputs": {"images": ["1", 1]}}}
    from graphflow.resource_limits import RunLimits
    found = validate(parse_workflow({"nodes": graph}), registry, limits=RunLimits(ram_bytes=64 * 2**30))
    assert [p.node_id for p in found] == ["1"]  # 824 GB of frames, refused on a 64 GB machine


def test_sizes_from_inputs_are_declared(registry):
    constant = registry.get("ImageConstant")
    assert default_estimate(constant, {"width": 40, "height": 30, "batch_size": 3}, {}).size == Size(3, 30, 40)
    offset = registry.get("OffsetLatentImage")
    assert default_estimate(offset, {"width": 64, "height": 32, "batch_size": 2}, {}).size == Size(2, 32, 64)
    graph = {"1": {"type": "ImageConstant", "inputs": {"width": 8192, "height": 8192, "batch_size": 4096}},
             "2": {"type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    problems = validate(parse_workflow({"nodes": graph}), registry, limits=RunLimits(max_batch=64))
    assert {(p.node_id, p.input) for p in problems} == {("1", "batch_size")}


def test_guided_filters_declare_their_working_memory(registry):
    # what one image's guided filter takes at its peak, measured, against what is declared for it
    images, guide = rand(1, 80, 96, 3, seed=50), rand(1, 80, 96, 3, seed=51)
    call(registry, "GuidedFilterImage", images=images, guide=guide, size=1)  # first run: set-up
    peak = measured_peak(lambda: call(registry, "GuidedFilterImage", images=images, guide=guide, size=1))
    one = registry.get("GuidedFilterImage").estimate({"size": 1}, {"images": Size(1, 80, 96)}).memory
    assert 0.75 * peak <= one <= peak, (one, peak)  # a lower bound, close
    per_pixel = one / (80 * 96)
    size = Size(2, 1000, 800)  # filtered one image at a time: one image's memory
    for node, name in (("GuidedFilterImage", "images"), ("GuidedFilterAlpha", "images"), ("EnhanceDetail", "images")):
        estimate = registry.get(node).estimate({"size": 4}, {name: size})
        assert estimate.size == size and estimate.memory == per_pixel * 800 * 1000, node
    for node in ("ColorMatchImage", "RestoreDetail"):
        widgets = {"blur_type": "guidedFilter", "blur_size": 3}
        assert registry.get(node).estimate(widgets, {"images": size}).memory == per_pixel * 800000
        assert registry.get(node).estimate({**widgets, "blur_type": "blur"}, {"images": size}).memory == 0
    # a window over 100 pixels runs at a tenth of the side
    assert registry.get("GuidedFilterImage").estimate({"size": 50}, {"images": size}).memory == per_pixel * 8000
    jitter = {"type": "JitterImage", "inputs": {"images": ["1", 0]}}
    graph = {"1": {"type": "ImageConstant", "inputs": {"width": 64, "height": 64, "batch_size": 8}}, "2": jitter,
             "3": {"type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    problems = validate(parse_workflow({"nodes": graph}), registry, limits=RunLimits(max_batch=64))
    assert {p.node_id for p in problems} == {"2"}  # 8 images jittered are 72
    assert registry.get("UnJitterImage").estimate({}, {"images": Size(20, 6, 8)}).size == Size(18, 6, 8)
    assert registry.get("BatchAverageUnJittered").estimate({}, {"images": Size(20, 6, 8)}).size == Size(2, 6, 8)


# -- bad inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize("node, inputs, name, words", [
    ("MergeFramesByIndex", {"index_list": [0], "orig_images": rand(3, 4, 4, 3), "images": rand(1, 4, 4, 3),
                            "masks": rand(1, 5, 5)}, "masks", "4x4"),
    ("MergeFramesByIndex", {"index_list": [0], "orig_images": rand(3, 4, 4, 3), "images": rand(1, 4, 4, 3),
                            "orig_masks": rand(3, 4, 6)}, "orig_masks", "4x4"),
    ("ShuffleChannels", {"image": rand(1, 4, 4, 1)}, "image", "green"),
    ("BetterFilmGrain", {"image": rand(1, 8, 8, 1)}, "image", "3 or more channels"),
    ("InpaintConditionEncode", {"vae": object(), "pixels": rand(3, 8, 8, 3), "mask": rand(2, 8, 8)}, "mask",
     "one per picture (3)"),
    ("ColorMatchImage", {"images": rand(1, 8, 12, 3), "reference": rand(1, 8, 12, 3), "blur_size": 60}, "images",
     "at least 10x10"),
    ("GuidedFilterImage", {"images": rand(1, 12, 9, 3), "guide": rand(1, 12, 9, 3), "size": 60}, "images",
     "at least 10x10"),
    ("RestoreDetail", {"images": rand(1, 8, 8, 3), "detail": rand(1, 8, 8, 3), "blur_size": 60,
                       "blur_type": "guidedFilter"}, "images", "at least 10x10"),
    ("SharpenFilterLatent", {"latents": {"samples": rand(1, 4, 8, 8)}, "filter_size": 60}, "latents",
     "at least 10x10"),
])
def test_bad_inputs_are_named(registry, node, inputs, name, words):
    with pytest.raises(NodeInputError) as caught:
        call(registry, node, **inputs)
    assert caught.value.input == name and words in str(caught.value), str(caught.value)


def test_the_evident_cases_beside_the_bad_ones_still_run(registry):
    grey = rand(1, 4, 4, 1)
    shuffled = call(registry, "ShuffleChannels", image=grey, red="red", green="white", blue="black")
    close(shuffled, np.concatenate([grey.numpy(), np.ones_like(grey), np.zeros_like(grey)], -1))
    # a window of 121 on a 10-pixel side: one pixel at a tenth of the size
    assert call(registry, "GuidedFilterImage", images=rand(1, 10, 10, 3), guide=rand(1, 10, 10, 3),
                size=60).shape == (1, 10, 10, 3)


# -- interrupts -------------------------------------------------------------------------------


class InterruptAfter:
    """An interrupt flag that reads as set from its (checks + 1)-th reading on, counting them."""

    def __init__(self, checks):
        self.checks, self.read = checks, 0

    def is_set(self):
        self.read += 1
        return self.read > self.checks


@pytest.mark.parametrize("node, inputs, checks", [
    ("BlurImageFast", {"images": rand(5, 8, 8, 3)}, 2),  # per image
    ("DilateErodeMask", {"masks": rand(5, 8, 8), "radius": 3, "shape": "circle"}, 2),
    ("GuidedFilterImage", {"images": rand(4, 8, 8, 3), "guide": rand(4, 8, 8, 3), "size": 1}, 1),
    ("AdainImage", {"images": rand(4, 8, 8, 3), "reference": rand(4, 8, 8, 3)}, 1),
    ("GameOfLife", {"steps": 20000}, 5),  # per step: stopped long before the 20000th
])
def test_long_loops_stop_at_an_interrupt(registry, node, inputs, checks):
    import threading

    from graphflow.context import Interrupted, NodeContext, _current
    flag = InterruptAfter(checks)
    context = NodeContext("run", "1", node, emit=lambda event: None, interrupt=threading.Event())
    context.interrupt = flag
    token = _current.set(context)
    try:
        with pytest.raises(Interrupted):
            call(registry, node, **inputs)
    finally:
        _current.reset(token)
    assert flag.read == checks + 1  # it went on while not interrupted, and stopped at the first check after


# -- the pack's graphs ------------------------------------------------------------------------


API_PROMPT = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO}},
    "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["1", 1]}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
    "4": {"class_type": "OffsetLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "offset_0": 0.5,
                                                        "offset_1": 0.0, "offset_2": -0.5, "offset_3": 0.0}},
    "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 3, "steps": 2, "cfg": 2.0,
                                               "sampler_name": "euler", "scheduler": "normal", "positive": ["2", 0],
                                               "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 0.5}},
    "6": {"class_type": "ClampOutliers", "inputs": {"latents": ["5", 0], "std_dev": 2.0}},
    "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
    "8": {"class_type": "BlurImageFast", "inputs": {"images": ["7", 0], "radius_x": 2, "radius_y": 1}},
    "9": {"class_type": "VisualizeLatents", "inputs": {"latent": ["6", 0]}},
}


def test_api_prompt_with_the_packs_classes_runs_and_round_trips(registry):
    values = run_graph(registry, API_PROMPT, ["8", "9"]).values
    sampled = values["5"][0]["samples"]
    s = sampled.numpy().astype(np.float64)
    mean, sd = s.mean((2, 3), keepdims=True), s.std((2, 3), ddof=1, keepdims=True)
    close(values["6"][0]["samples"], np.clip(s, mean - 2 * sd, mean + 2 * sd), atol=1e-5)
    decoded = values["7"][0]
    close(values["8"][0], np.stack([cv2.GaussianBlur(im, (5, 3), 0) for im in decoded.numpy()]))
    assert values["9"][0].shape == (1, 16, 16, 3)  # four 8x8 channels, two by two
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in API_PROMPT.items()}
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_ui_save_with_the_packs_classes_reads_runs_and_writes_back(registry):
    """As the editor saves it: widgets in the pack's order, Better Film Grain's seed followed by
    the editor's control_after_generate."""
    nodes = [
        ui_node(1, "ImageConstantHSV", [16, 12, 2, 0.6, 0.5, 0.8], outputs=[("IMAGE", "IMAGE", [1, 2, 3])]),
        ui_node(2, "ImageConstant", [16, 12, 2, 0.2, 0.4, 0.9], outputs=[("IMAGE", "IMAGE", [4])]),
        ui_node(3, "GuidedFilterImage", [1, 0.5], [("images", "IMAGE", 1, False), ("guide", "IMAGE", 4, False)],
                [("IMAGE", "IMAGE", [])]),
        ui_node(4, "BetterFilmGrain", [0.5, 0.3, 0.7, 0.01, 11, "fixed"], [("image", "IMAGE", 2, False)],
                [("IMAGE", "IMAGE", [])]),
        ui_node(5, "Keyer", ["luminance", 0.1, 0.9, 1.0, True], [("images", "IMAGE", 3, False)],
                [("image", "IMAGE", []), ("alpha", "IMAGE", []), ("mask", "MASK", [5])]),
        ui_node(6, "DilateErodeMask", [1, "circle"], [("masks", "MASK", 5, False)], [("MASK", "MASK", [])]),
    ]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 1, 0, 4, 0, "IMAGE"], [3, 1, 0, 5, 0, "IMAGE"],
             [4, 2, 0, 3, 1, "IMAGE"], [5, 5, 2, 6, 0, "MASK"]]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, registry)
    values = run_graph(registry, graph, ["3", "4", "6"]).values
    hsv = values["1"][0]
    close(hsv[0, 0, 0], colorsys.hsv_to_rgb(0.6, 0.5, 0.8), atol=1e-6)
    guide = values["2"][0]
    close(values["3"][0], paper_filter_batch(guide, hsv, 3, 0.05), atol=2e-5)
    grain = values["4"][0]
    assert grain.shape == (2, 12, 16, 3) and not torch.allclose(grain, hsv)
    again = call(registry, "BetterFilmGrain", image=hsv, scale=0.5, strength=0.3, saturation=0.7, toe=0.01, seed=11)
    assert torch.equal(grain, again)  # the seed decides the grain
    saved = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    for node in nodes:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]


def test_left_out_classes_name_the_pack(registry):
    # LatentStats stays graphflow's own node (nodes/diagnostics.py): its API saves carry that name;
    # the pack's is ImageFiltersLatentStats, chosen by the pack's ids (tests/test_comfy_pack_clash.py)
    assert registry.comfy_node("LatentStats") is registry.get("LatentStats")
    assert [c.node.node_type for c in registry.claimants("LatentStats")] == ["LatentStats", "ImageFiltersLatentStats"]
    for name in ("AlphaMatte", "BatchAlign", "ModelTest"):
        assert custom_pack(name) == "ComfyUI-Image-Filters"
