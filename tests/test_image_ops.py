"""ComfyUI's image postprocessing, batch/transform and mask compositing nodes (nodes/image_ops.py,
the end of nodes/mask.py), against closed forms, Pillow, torchvision and kornia."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from graphflow.context import NodeInputError
from test_nodes_image_mask import call


def refused(registry, node_type, input, **inputs):
    """The NodeInputError's message, checking that it names `input`."""
    with pytest.raises(NodeInputError) as error:
        call(registry, node_type, **inputs)
    assert error.value.input == input
    return str(error.value)


def pixel(*values):
    """A [1, 1, n, 3] image: one grey pixel per value."""
    return torch.tensor(values, dtype=torch.float32)[None, None, :, None].expand(1, 1, -1, 3).clone()


def test_blend_modes_by_hand(builtin_registry):
    a, b = pixel(0.2, 0.8), pixel(0.6, 0.3)
    # blend_factor 0.5: (a + mode(a, b)) / 2, clamped; modes worked out by hand for both pixels.
    expected = {"normal": (0.4, 0.55), "multiply": (0.16, 0.52), "screen": (0.44, 0.83),
                "overlay": (0.22, 0.76), "soft_light": (0.2248, 0.768), "difference": (0.0, 0.65)}
    for mode, values in expected.items():
        out = call(builtin_registry, "ImageBlend", image1=a, image2=b, blend_factor=0.5, blend_mode=mode)
        assert torch.allclose(out[0, 0, :, 0], torch.tensor(values), atol=1e-6), mode
    # image2 resized to image1 and a batch of one blended into every image; image1's alpha kept.
    rgba = torch.rand(3, 6, 8, 4)
    out = call(builtin_registry, "ImageBlend", image1=rgba, image2=torch.ones(1, 3, 4, 3), blend_factor=1.0,
               blend_mode="multiply")
    assert out.shape == (3, 6, 8, 4) and torch.allclose(out, rgba)
    assert "batch of 2" in refused(builtin_registry, "ImageBlend", "image2", image1=rgba, image2=torch.rand(2, 6, 8, 4))


def test_blur_is_torchvisions_gaussian_with_sigma_in_radius_units(builtin_registry):
    from torchvision.transforms.functional import gaussian_blur
    image = torch.rand(2, 13, 17, 3)
    for radius, sigma in ((1, 1.0), (4, 0.3), (6, 2.5)):
        out = call(builtin_registry, "ImageBlur", image=image, blur_radius=radius, sigma=sigma)
        ref = gaussian_blur(image.movedim(-1, 1), [2 * radius + 1] * 2, [sigma * radius] * 2).movedim(1, -1)
        assert torch.allclose(out, ref, atol=1e-6), (radius, sigma)
    # Radius 1, sigma 1: weights e^-1/2 : 1 : e^-1/2 along each axis; a centred dot spreads so.
    dot = torch.zeros(1, 5, 5, 1)
    dot[0, 2, 2] = 1
    out = call(builtin_registry, "ImageBlur", image=dot, blur_radius=1, sigma=1.0)[0, :, :, 0]
    w = torch.tensor([np.exp(-0.5), 1.0, np.exp(-0.5)], dtype=torch.float32)
    w = w / w.sum()
    assert torch.allclose(out[1:4, 1:4], w[:, None] * w[None, :], atol=1e-7) and out[0].abs().max() < 1e-7
    assert "9x4" in refused(builtin_registry, "ImageBlur", "blur_radius", image=torch.rand(1, 4, 9, 3), blur_radius=4)


def test_sharpen_applies_comfyuis_kernel(builtin_registry):
    image = torch.rand(1, 12, 10, 3) * 0.5 + 0.25
    radius, sigma, alpha = 2, 0.8, 0.3
    # ComfyUI's construction: a Gaussian on a -1..1 grid times -10 alpha, the centre raised so the
    # kernel sums to 1, applied to the mirrored image.
    y, x = torch.meshgrid(torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 5), indexing="ij")
    g = torch.exp(-(x * x + y * y) / (2 * sigma * sigma))
    kernel = g / g.sum() * -(alpha * 10)
    kernel[2, 2] += 1.0 - kernel.sum()
    padded = F.pad(image.movedim(-1, 1), (radius,) * 4, mode="reflect")
    ref = F.conv2d(padded, kernel.expand(3, 1, 5, 5), groups=3).clamp(0, 1).movedim(1, -1)
    out = call(builtin_registry, "ImageSharpen", image=image, sharpen_radius=radius, sigma=sigma, alpha=alpha)
    assert torch.allclose(out, ref, atol=1e-5)
    flat = torch.full((1, 6, 6, 3), 0.3)
    assert torch.allclose(call(builtin_registry, "ImageSharpen", image=flat, alpha=5.0), flat, atol=1e-6)
    assert torch.equal(call(builtin_registry, "ImageSharpen", image=image, alpha=0.0), image.clamp(0, 1))


def _bayer_index(n):
    """The classic Bayer index matrix (0 .. n*n - 1): M2n = [[4M, 4M+2], [4M+3, 4M+1]]."""
    m = np.zeros((1, 1))
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return m


def test_quantize_is_pillows_with_each_dither(builtin_registry):
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((2, 20, 24, 3), dtype=np.float32))
    for colors in (2, 5):
        for dither in ("none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8"):
            out = call(builtin_registry, "ImageQuantize", image=image, colors=colors, dither=dither)
            for b in range(2):
                # 8 bits by truncation, as ComfyUI does; the palette from an undithered median cut.
                picture = Image.fromarray((image[b].numpy() * 255).astype(np.uint8), "RGB")
                palette = picture.quantize(colors=colors)
                if dither.startswith("bayer"):
                    n = int(dither.split("-")[1])
                    spread = 2 * 256 / (len(palette.getpalette()) // 3)
                    threshold = spread * ((_bayer_index(n) + 0.5) / (n * n) - 0.5) + 0.5
                    tiled = np.tile(threshold, (-(-20 // n), -(-24 // n)))[:20, :24, None]
                    values = np.asarray(picture, dtype=np.float32) + tiled
                    picture = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "RGB")
                    ref = picture.quantize(palette=palette, dither=Image.Dither.NONE)
                else:
                    ref = picture.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG if dither != "none"
                                           else Image.Dither.NONE)
                expected = np.asarray(ref.convert("RGB"), dtype=np.float32) / 255
                assert np.array_equal(out[b].numpy(), expected), (colors, dither)
                assert len(np.unique(out[b].reshape(-1, 3).numpy(), axis=0)) <= colors
    rgba = torch.rand(1, 4, 4, 4)
    out = call(builtin_registry, "ImageQuantize", image=rgba, colors=3)
    assert out.shape == (1, 4, 4, 4) and torch.equal(out[..., 3], rgba[..., 3])


def test_morphology_matches_kornia_and_by_hand(builtin_registry):
    kornia_morphology = pytest.importorskip("kornia.morphology")
    image = torch.rand(2, 11, 14, 3)
    ops = {"erode": kornia_morphology.erosion, "dilate": kornia_morphology.dilation,
           "open": kornia_morphology.opening, "close": kornia_morphology.closing,
           "gradient": kornia_morphology.gradient, "top_hat": kornia_morphology.top_hat,
           "bottom_hat": kornia_morphology.bottom_hat}
    for size in (3, 4, 7, 20):
        for op, reference in ops.items():
            out = call(builtin_registry, "ImageMorphology", image=image, operation=op, kernel_size=size)
            ref = reference(image.movedim(-1, 1), torch.ones(size, size)).movedim(1, -1)
            assert torch.allclose(out, ref, atol=1e-6), (op, size)
    dot = torch.zeros(1, 9, 9, 1)
    dot[0, 4, 4] = 1
    grown = call(builtin_registry, "ImageMorphology", image=dot, operation="dilate", kernel_size=5)
    assert grown.sum() == 25 and grown[0, 2:7, 2:7].min() == 1
    # An even size: dilation reaches one pixel further right and down (kornia's anchor), erosion left and up.
    grown = call(builtin_registry, "ImageMorphology", image=dot, operation="dilate", kernel_size=4)
    assert grown.sum() == 16 and grown[0, 2:6, 2:6].min() == 1
    block = torch.zeros(1, 9, 9, 1)
    block[0, 2:6, 2:6] = 1
    kept = call(builtin_registry, "ImageMorphology", image=block, operation="erode", kernel_size=4)
    assert kept.sum() == 1 and kept[0, 4, 4] == 1
    assert call(builtin_registry, "ImageMorphology", image=dot, operation="erode").sum() == 0
    assert torch.equal(call(builtin_registry, "ImageMorphology", image=dot, operation="top_hat"), dot)


def test_image_from_batch_and_repeat(builtin_registry):
    images = torch.rand(4, 3, 5, 3)
    assert torch.equal(call(builtin_registry, "ImageFromBatch", image=images, batch_index=1, length=2), images[1:3])
    # Past the end: the last image, the length cut (ComfyUI's clamping).
    assert torch.equal(call(builtin_registry, "ImageFromBatch", image=images, batch_index=9, length=3), images[3:])
    repeated = call(builtin_registry, "RepeatImageBatch", image=images[:2], amount=3)
    assert repeated.shape == (6, 3, 5, 3) and torch.equal(repeated[4:], images[:2])


def test_stitch_directions_spacing_padding_and_batches(builtin_registry):
    a, b = torch.full((2, 10, 20, 3), 0.2), torch.full((1, 5, 7, 3), 0.7)
    # Matched: image2 to image1's height keeping its aspect ratio, width int(10 * 7 / 5) = 14.
    out = call(builtin_registry, "ImageStitch", image1=a, image2=b, direction="right")
    assert out.shape == (2, 10, 34, 3)
    # Lanczos on 8-bit levels as ComfyUI's: 0.7 is truncated to 178/255.
    assert torch.allclose(out[:, :, :20], a) and torch.allclose(out[:, :, 20:], torch.tensor(178 / 255), atol=1e-6)
    out = call(builtin_registry, "ImageStitch", image1=a, image2=b, direction="up", spacing_width=3,
               spacing_color="red")
    assert out.shape == (2, 14 + 4 + 10, 20, 3)  # int(20 / (7 / 5)) = 14 rows, 4 of red, then image1
    assert torch.allclose(out[:, 14:18], torch.tensor([1.0, 0.0, 0.0])) and torch.allclose(out[:, 18:], a)
    # Unmatched: the shorter is padded, centred, with the spacing colour (white here).
    out = call(builtin_registry, "ImageStitch", image1=a, image2=b, direction="left", match_image_size=False)
    assert out.shape == (2, 10, 27, 3)
    assert torch.allclose(out[:, 2:7, :7], torch.tensor(0.7)) and (out[:, :2, :7] == 1).all()
    assert (out[:, 7:, :7] == 1).all() and torch.allclose(out[:, :, 7:], a)
    # The smaller batch repeats its last image; RGB gets an opaque alpha beside RGBA.
    rgba = torch.rand(3, 10, 4, 4)
    out = call(builtin_registry, "ImageStitch", image1=a, image2=rgba, direction="down", match_image_size=False)
    assert out.shape == (3, 20, 20, 4) and torch.equal(out[2, :10, :, :3], a[1]) and (out[:, :10, :, 3] == 1).all()
    assert torch.equal(call(builtin_registry, "ImageStitch", image1=a), a)


def test_resize_and_pad_and_scale_to_max_dimension(builtin_registry):
    from graphflow.images import resize_nchw
    image = torch.rand(1, 20, 40, 3)
    out = call(builtin_registry, "ResizeAndPadImage", image=image, target_width=30, target_height=30,
               padding_color="black", interpolation="area")
    # Scale 0.75: 30 x 15, centred: rows 7 .. 21.
    assert out.shape == (1, 30, 30, 3) and (out[:, :7] == 0).all() and (out[:, 22:] == 0).all()
    assert torch.allclose(out[:, 7:22], resize_nchw(image.movedim(-1, 1), 30, 15, "area").movedim(1, -1))
    white = call(builtin_registry, "ResizeAndPadImage", image=image, target_width=30, target_height=30)
    assert (white[:, 0] == 1).all()
    tall = torch.rand(2, 30, 12, 3)
    for size, shape in ((50, (50, 20)), (10, (10, 4))):
        out = call(builtin_registry, "ImageScaleToMaxDimension", image=tall, upscale_method="bilinear",
                   largest_size=size)
        assert out.shape == (2, *shape, 3)
    square = call(builtin_registry, "ImageScaleToMaxDimension", image=torch.rand(1, 8, 8, 3), largest_size=16)
    assert square.shape == (1, 16, 16, 3)


def test_add_noise_draws_comfyuis_cpu_noise_from_the_seed(builtin_registry):
    image = torch.full((2, 6, 7, 3), 0.5)
    torch.manual_seed(1234)
    before = torch.rand(3)
    torch.manual_seed(1234)
    out = call(builtin_registry, "ImageAddNoise", image=image, seed=42, strength=0.1)
    assert torch.equal(torch.rand(3), before)  # the process's own random numbers are left alone
    torch.manual_seed(42)  # ComfyUI: torch.manual_seed(seed), then randn of the image's shape
    assert torch.allclose(out, (image + 0.1 * torch.randn(image.shape)).clamp(0, 1))
    assert torch.equal(call(builtin_registry, "ImageAddNoise", image=image, seed=42, strength=0.0), image)


def test_image_color_to_mask_and_split_with_alpha(builtin_registry):
    image = torch.zeros(1, 2, 3, 3)
    image[0, 0, 1] = torch.tensor([0x12, 0x34, 0x56]) / 255.0
    image[0, 1, 2] = torch.tensor([0x12, 0x34, 0x57]) / 255.0  # one step off in blue
    mask = call(builtin_registry, "ImageColorToMask", image=image, color=0x123456)
    assert mask.tolist() == [[[0, 1, 0], [0, 0, 0]]]
    assert call(builtin_registry, "ImageColorToMask", image=image, color=0).sum() == 4
    rgba = torch.rand(2, 3, 4, 4)
    rgb, mask = call(builtin_registry, "SplitImageWithAlpha", image=rgba)
    assert torch.equal(rgb, rgba[..., :3]) and torch.allclose(mask, 1 - rgba[..., 3])
    rgb, mask = call(builtin_registry, "SplitImageWithAlpha", image=rgba[..., :3])
    assert mask.shape == (2, 3, 4) and (mask == 0).all()


def test_porter_duff_modes_by_hand(builtin_registry):
    # One pixel: source colour 0.8 at alpha 0.5 (mask 0.5), destination 0.4 at alpha 0.75 (mask 0.25).
    s, sa, d, da = 0.8, 0.5, 0.4, 0.75
    ps, pd = s * sa, d * da  # premultiplied: 0.4, 0.3
    union = sa + da - sa * da
    expected = {  # (colour, alpha) after un-premultiplying
        "SRC_OVER": ((ps + (1 - sa) * pd) / union, union),
        "DST_OVER": ((pd + (1 - da) * ps) / union, union),
        "SRC": (s, sa), "DST": (d, da), "CLEAR": (0.0, 0.0),
        "SRC_IN": (s, sa * da), "DST_IN": (d, sa * da),
        "SRC_OUT": (s, (1 - da) * sa), "DST_OUT": (d, (1 - sa) * da),
        "SRC_ATOP": ((da * ps + (1 - sa) * pd) / da, da), "DST_ATOP": ((sa * pd + (1 - da) * ps) / sa, sa),
        "XOR": (((1 - da) * ps + (1 - sa) * pd) / ((1 - da) * sa + (1 - sa) * da), (1 - da) * sa + (1 - sa) * da),
        "ADD": (min(1.0, (ps + pd) / min(1.0, sa + da)), min(1.0, sa + da)),
        "MULTIPLY": (ps * pd / (sa * da), sa * da),
        "SCREEN": ((ps + pd - ps * pd) / union, union),
        "DARKEN": (min(1.0, ((1 - da) * ps + (1 - sa) * pd + min(ps, pd)) / union), union),
        "LIGHTEN": (min(1.0, ((1 - da) * ps + (1 - sa) * pd + max(ps, pd)) / union), union),
        "OVERLAY": (2 * ps * pd / union, union),  # the darker half: 2 * pd < da
    }
    image = lambda v: torch.full((1, 2, 2, 3), v)  # noqa: E731
    mask = lambda v: torch.full((1, 2, 2), v)  # noqa: E731
    for mode, (colour, alpha) in expected.items():
        out, out_mask = call(builtin_registry, "PorterDuffImageComposite", source=image(s), source_alpha=mask(1 - sa),
                             destination=image(d), destination_alpha=mask(1 - da), mode=mode)
        assert torch.allclose(out, torch.tensor(colour), atol=1e-6), mode
        assert torch.allclose(out_mask, torch.tensor(1 - alpha), atol=1e-6), mode
    # The source is resized to the destination; batches pair up to the shortest (ComfyUI's), so
    # one source with three destinations gives one image, and a short mask batch cuts the rest.
    dest = torch.rand(3, 8, 8, 3)
    out, out_mask = call(builtin_registry, "PorterDuffImageComposite", source=torch.ones(1, 4, 4, 3),
                         source_alpha=torch.zeros(1, 4, 4), destination=dest,
                         destination_alpha=torch.zeros(1, 8, 8), mode="SRC_OVER")
    assert out.shape == (1, 8, 8, 3) and torch.allclose(out, torch.tensor(1.0)) and out_mask.shape == (1, 8, 8)
    out, out_mask = call(builtin_registry, "PorterDuffImageComposite", source=torch.rand(3, 8, 8, 3),
                         source_alpha=torch.ones(3, 8, 8), destination=dest,
                         destination_alpha=torch.zeros(2, 8, 8), mode="SRC_OVER")
    assert out.shape == (2, 8, 8, 3) and torch.allclose(out, dest[:2]) and out_mask.shape == (2, 8, 8)


def test_mask_preview_shows_the_mask_as_grey(builtin_registry, tmp_folders):
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow
    workflow = parse_workflow({"nodes": {
        "1": {"type": "SolidMask", "inputs": {"value": 0.6, "width": 5, "height": 3}},
        "2": {"type": "MaskPreview", "inputs": {"mask": ["1", 0]}},
    }})
    result = Executor(builtin_registry).run(workflow)
    assert result.ok, result.error
    shown = result.outputs["2"]["images"]
    assert len(shown) == 1 and shown[0]["type"] == "temp"
    picture = np.asarray(Image.open(tmp_folders.temp / shown[0]["filename"]))
    assert picture.shape == (3, 5, 3) and (picture == 153).all()


def _ui_graph(nodes: dict, links: list) -> dict:
    """A ComfyUI editor graph: nodes {id: (class, widgets_values, [input names linked in order])},
    links [(from id, from slot, to id, input name, type)]."""
    out = []
    for node_id, (class_type, widgets, _) in nodes.items():
        inputs = [{"name": name, "type": kind, "link": i + 1}
                  for i, (src, slot, dst, name, kind) in enumerate(links) if dst == node_id]
        out.append({"id": node_id, "type": class_type, "mode": 0, "inputs": inputs, "outputs": [],
                    "widgets_values": widgets})
    return {"nodes": out, "links": [[i + 1, src, slot, dst, 0, kind]
                                    for i, (src, slot, dst, name, kind) in enumerate(links)]}


def test_comfyui_editor_graph_with_these_classes_reads_by_widget_order_and_runs(builtin_registry):
    from graphflow.comfy_format import export_api, export_ui, import_ui
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow
    ui = _ui_graph({
        1: ("EmptyImage", [16, 12, 2, 0x336699], []),
        2: ("ImageAddNoise", [7, "fixed", 0.2], []),  # seed, control_after_generate, strength
        3: ("ImageStitch", ["down", False, 4, "green"], []),
        4: ("Morphology", ["close", 4], []),
        5: ("ImageSharpen", [2, 0.5, 0.7], []),
        6: ("ImageQuantize", [8, "bayer-4"], []),
        7: ("EmptyLatentImage", [128, 96, 2], []),
        8: ("LatentRotate", ["90 degrees"], []),
        9: ("LatentCut", ["y", -5, 3], []),
    }, [(1, 0, 2, "image", "IMAGE"), (2, 0, 3, "image1", "IMAGE"), (1, 0, 3, "image2", "IMAGE"),
        (3, 0, 4, "image", "IMAGE"), (4, 0, 5, "image", "IMAGE"), (5, 0, 6, "image", "IMAGE"),
        (7, 0, 8, "samples", "LATENT"), (8, 0, 9, "samples", "LATENT")])
    workflow = import_ui(ui, builtin_registry)
    assert workflow.nodes["3"].inputs["spacing_color"] == "green" and workflow.nodes["2"].inputs["seed"] == 7
    assert workflow.nodes["4"].type == "ImageMorphology" and workflow.nodes["4"].inputs["kernel_size"] == 4
    result = Executor(builtin_registry).run(workflow, outputs=["6", "9"])
    assert result.ok, result.error
    image = call(builtin_registry, "EmptyImage", width=16, height=12, batch_size=2, color=0x336699)
    image = call(builtin_registry, "ImageStitch", image1=call(builtin_registry, "ImageAddNoise", image=image, seed=7,
                                                             strength=0.2),
                 image2=image, direction="down", match_image_size=False, spacing_width=4, spacing_color="green")
    image = call(builtin_registry, "ImageMorphology", image=image, operation="close", kernel_size=4)
    image = call(builtin_registry, "ImageSharpen", image=image, sharpen_radius=2, sigma=0.5, alpha=0.7)
    expected = call(builtin_registry, "ImageQuantize", image=image, colors=8, dither="bayer-4")
    assert result.values["6"][0].shape == (2, 28, 16, 3) and torch.equal(result.values["6"][0], expected)
    # 12 x 16 latent turned to 16 x 12; rows 11 .. 13 of it.
    assert result.values["9"][0]["samples"].shape == (2, 4, 3, 12)
    # Written back in either ComfyUI format and read again: the same classes, values and links.
    for written in (export_ui(workflow, builtin_registry), export_api(workflow, builtin_registry)):
        again = parse_workflow(json.loads(json.dumps(written)), builtin_registry)
        for node_id, node in workflow.nodes.items():
            assert again.nodes[node_id].type == node.type
            assert again.nodes[node_id].inputs == node.inputs, node.type


def test_rgb_to_yuv_and_back_as_kornia_defines_them(builtin_registry):
    kornia_color = pytest.importorskip("kornia.color")
    image = torch.rand(2, 5, 6, 3)
    y, u, v = call(builtin_registry, "ImageRGBToYUV", image=image)
    ref = kornia_color.rgb_to_ycbcr(image.movedim(-1, 1)).movedim(1, -1)
    for i, plane in enumerate((y, u, v)):
        assert plane.shape == image.shape and torch.allclose(plane, ref[..., i:i + 1].expand_as(image), atol=1e-6)
    back = call(builtin_registry, "ImageYUVToRGB", Y=y, U=u, V=v)
    assert torch.allclose(back, image, atol=1e-5)  # an exact inverse
    assert torch.allclose(back, kornia_color.ycbcr_to_rgb(ref.movedim(-1, 1)).movedim(1, -1), atol=1e-5)
    red = pixel(0.0)
    red[..., 0] = 1.0
    y, u, v = call(builtin_registry, "ImageRGBToYUV", image=red)
    assert torch.allclose(torch.stack([y[0, 0, 0, 0], u[0, 0, 0, 0], v[0, 0, 0, 0]]),
                          torch.tensor([0.299, 0.5 - 0.299 * 0.564, 0.5 + 0.701 * 0.713]))
    assert "shape" in refused(builtin_registry, "ImageYUVToRGB", "V", Y=y, U=u, V=torch.rand(1, 2, 2, 3))


def test_porter_duff_refuses_a_mask_for_an_image(builtin_registry):
    mask = torch.zeros(1, 2, 2)
    assert "IMAGE" in refused(builtin_registry, "PorterDuffImageComposite", "source", source=mask, source_alpha=mask,
                              destination=torch.rand(1, 2, 2, 3), destination_alpha=mask)


def test_size_estimates_are_the_sizes_given(builtin_registry):
    from graphflow.resource_limits import Size
    image = torch.rand(3, 20, 30, 3)
    for node_type, widgets in (("ImageFromBatch", {"batch_index": 2, "length": 4}),
                               ("RepeatImageBatch", {"amount": 3}),
                               ("ResizeAndPadImage", {"target_width": 64, "target_height": 48}),
                               ("ImageScaleToMaxDimension", {"largest_size": 45})):
        shape = call(builtin_registry, node_type, image=image, **widgets).shape
        estimate = builtin_registry.get(node_type).estimate(widgets, {"image": Size(3, 20, 30)}).size
        assert estimate == Size(*shape[:3]), (node_type, widgets)
