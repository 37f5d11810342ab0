"""Acly's comfyui-inpaint-nodes (nodes/pack_nodes_inpaint.py): the mask and fill nodes against
the pack's library calls computed here (kornia's gaussian_blur2d, OpenCV's dilate / erode /
GaussianBlur / inpaint, the formulas); VAE Encode & Inpaint Conditioning against the core
InpaintModelConditioning; Fooocus' head and patch, in the pack's file layouts for the tiny SDXL
checkpoint, against the merge and conv formulas; LaMa through spandrel's own class with random
weights against spandrel's model called directly with the pack's padding and resizing; the errors
by input name; a UI-format save and API prompts with the pack's class names, exported back."""

import contextlib
import copy
import math
import threading
from types import SimpleNamespace

import cv2
import kornia
import numpy
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from graphflow import memory
from graphflow.comfy_format import export_api, export_ui
from graphflow.context import Interrupted, NodeContext, NodeInputError, _current
from graphflow.executor import Executor
from graphflow.testing import write_checkpoint, write_esrgan
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import ui_graph, ui_node
from tests.test_pack_nodes_kj import run

SDXL_SCALE = 0.13025  # SDXL's latent scale factor (process_latent_in)


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


def failed(registry, graph, outputs):
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=outputs)
    assert not result.ok
    problems = [(p.node_id, p.input, p.message) for p in result.problems]
    if result.error:
        problems.append((result.error.get("node_id"), result.error.get("input"), result.error.get("message", "")))
    return problems


def kornia_blur(x, size):
    """The pack's util.gaussian_blur: kornia's gaussian_blur2d, sigma 0.3 (size - 1) + 0.8."""
    sigma = 0.3 * (size - 1) + 0.8
    return kornia.filters.gaussian_blur2d(x, (size, size), (sigma, sigma))


def cv2_square(x, radius, erode=False):
    """OpenCV's dilate (outside: 0) or erode (outside: 1) of a 0/1 [H, W] with a square 2r+1 wide."""
    kernel = numpy.ones((2 * radius + 1, 2 * radius + 1), numpy.uint8)
    a = x.numpy().astype(numpy.float32)
    if erode:
        return torch.from_numpy(cv2.erode(a, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1))
    return torch.from_numpy(cv2.dilate(a, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0))


def blob_mask(h=32, w=40):
    mask = torch.zeros(1, h, w)
    mask[0, 8:20, 10:26] = 1.0
    mask[0, 8:20, 26:30] = 0.995  # still masked (0.99 and up)
    mask[0, 22:26, 5:9] = 0.5  # not masked: below 0.99
    return mask


@contextlib.contextmanager
def node_context(stopped=False):
    """A node context as the executor gives one (its interrupt set if `stopped`); yields its events."""
    events, interrupt = [], threading.Event()
    if stopped:
        interrupt.set()
    token = _current.set(NodeContext("run", "1", "test", events.append, interrupt))
    try:
        yield events
    finally:
        _current.reset(token)


def steps(events):
    return [(e["value"], e["max"]) for e in events if e["type"] == "progress"]


# -- masks ---------------------------------------------------------------------------------------


def test_expand_mask_is_a_square_dilation_then_korias_blur(registry):
    mask = blob_mask()
    mask[0, 2, 2] = 0.02  # any value above 0 grows
    out = call(registry, "InpaintExpandMask", mask=mask, grow=3, blur=6)
    grown = cv2_square((mask[0] > 0).float(), 3)
    want = kornia_blur(grown[None, None], 7)[:, 0]  # blur 6 made odd
    torch.testing.assert_close(out, want, rtol=0, atol=2e-6)
    assert torch.equal(call(registry, "InpaintExpandMask", mask=mask, grow=3, blur=0)[0], grown)
    assert torch.equal(call(registry, "InpaintExpandMask", mask=mask, grow=0, blur=0), mask)
    # a grow past the picture's size reaches every pixel with a masked one in it
    assert torch.equal(call(registry, "InpaintExpandMask", mask=mask, grow=500, blur=0), torch.ones_like(mask))


def test_expand_mask_blur_wider_than_the_picture_reflects_as_opencv(registry):
    """kornia (the pack) refuses a kernel wider than the picture; we keep reflecting (BORDER_REFLECT_101)."""
    mask = blob_mask(12, 10)
    out = call(registry, "InpaintExpandMask", mask=mask, grow=0, blur=31)
    sigma = 0.3 * 30 + 0.8
    want = cv2.GaussianBlur(mask[0].numpy(), (31, 31), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    torch.testing.assert_close(out[0], torch.from_numpy(want), rtol=0, atol=2e-6)


def max_pool_within(mask, radius):
    """torch's max-pool over the 2r+1 square (outside: -inf; the radius cut to the picture), > 0:
    the pack's binary dilation as one pool per axis computes it."""
    h, w = mask.shape[-2:]
    rx, ry = min(radius, w - 1), min(radius, h - 1)
    x = F.max_pool2d(mask, (1, 2 * rx + 1), stride=1, padding=(0, rx)) if rx else mask
    x = F.max_pool2d(x, (2 * ry + 1, 1), stride=1, padding=(ry, 0)) if ry else x
    return (x > 0).float()


def test_grow_and_shrink_equal_the_max_pool_in_log_passes_and_stop(registry, monkeypatch):
    import nodes.mask
    g = torch.Generator().manual_seed(6)
    mask = (torch.rand(2, 90, 120, generator=g) > 0.995).float()
    for radius in (1, 4, 37, 89, 300):
        grown = call(registry, "InpaintExpandMask", mask=mask, grow=radius, blur=0)
        assert torch.equal(grown, max_pool_within(mask[:, None], radius)[:, 0]), radius
        full = 1.0 - mask
        shrunk = call(registry, "InpaintShrinkMask", mask=full, shrink=radius, blur=0)
        assert torch.equal(shrunk, 1.0 - max_pool_within(1.0 - full[:, None], radius)[:, 0]), radius
    checks = []
    monkeypatch.setattr(nodes.mask, "check_interrupted", lambda: checks.append(1))
    point = torch.zeros(1, 1024, 1024)
    point[0, 0, 0] = 1.0
    grown = call(registry, "InpaintExpandMask", mask=point, grow=1023, blur=0)  # a 2047 square a side
    assert torch.equal(grown, torch.ones(1, 1024, 1024))
    assert len(checks) == 2 * 10  # log2(2047) doublings an axis, each stop-checked
    monkeypatch.undo()
    for node, name in (("InpaintExpandMask", "grow"), ("InpaintShrinkMask", "shrink")):
        with node_context(stopped=True), pytest.raises(Interrupted):
            call(registry, node, mask=mask, blur=0, **{name: 3})


def test_wide_blurs_go_by_fft_band_by_band_and_stop(registry, monkeypatch):
    import nodes.image_ops
    g = torch.Generator().manual_seed(7)
    mask = torch.rand(1, 300, 280, generator=g)
    for size in (127, 129, 255):  # the convolution, then the FFT
        out = call(registry, "InpaintExpandMask", mask=mask, grow=0, blur=size)
        torch.testing.assert_close(out, kornia_blur(mask[:, None], size)[:, 0], rtol=0, atol=2e-6)
    checks = []
    monkeypatch.setattr(nodes.image_ops, "check_interrupted", lambda: checks.append(1))
    monkeypatch.setattr(nodes.image_ops, "BLUR_BAND_VALUES", 7000)
    image = torch.rand(1, 140, 150, 3, generator=g)
    for blur in (9, 131):
        checks.clear()
        out = call(registry, "InpaintMaskedBlur", image=image, mask=torch.ones(1, 140, 150), blur=blur)
        want = kornia_blur(image.permute(0, 3, 1, 2), blur).permute(0, 2, 3, 1)
        torch.testing.assert_close(out, want, rtol=0, atol=3e-6)
        def bands(length, other):  # a pass along `length`: whole planes a band, else a plane's rows a band
            plane = (length + blur - 1) * other
            if plane <= 7000:
                return math.ceil(3 / (7000 // plane))
            return 3 * math.ceil(other / (7000 // (length + blur - 1)))
        assert len(checks) == bands(150, 140) + bands(140, 150) > 2
    monkeypatch.undo()
    with node_context(stopped=True), pytest.raises(Interrupted):
        call(registry, "InpaintMaskedBlur", image=image, mask=torch.ones(1, 140, 150), blur=255)
    with node_context(stopped=True), pytest.raises(Interrupted):
        call(registry, "InpaintExpandMask", mask=mask, grow=0, blur=7)


def test_denoise_to_compositing_mask_formula_and_error(registry):
    mask = torch.linspace(0, 1, 50).reshape(1, 5, 10)
    out = call(registry, "InpaintDenoiseToCompositingMask", mask=mask, offset=0.1, threshold=0.3)
    torch.testing.assert_close(out, ((mask - 0.1) / 0.2).clamp(0, 1), rtol=0, atol=1e-6)
    with pytest.raises(NodeInputError) as e:
        call(registry, "InpaintDenoiseToCompositingMask", mask=mask, offset=0.5, threshold=0.3)
    assert e.value.input == "threshold" and "higher than offset" in str(e.value)


# -- fill / blur ------------------------------------------------------------------------------------


def pack_alpha(mask, falloff):
    """The pack's fill alpha: mask_floor, then times the blurred erosion (kornia; OpenCV's erode)."""
    alpha = (mask >= 0.99).float()
    if falloff > 0:
        eroded = torch.stack([cv2_square(a, falloff, erode=True) for a in alpha])
        alpha = alpha * kornia_blur(eroded[:, None], falloff)[:, 0]
    return alpha


def test_masked_fill_neutral_with_falloff(registry):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 32, 40, 3, generator=g)
    mask = blob_mask()
    out = call(registry, "InpaintMaskedFill", image=image, mask=mask, fill="neutral", falloff=4)
    alpha = pack_alpha(mask, 5)  # falloff 4 made odd
    want = (image - 0.5) * (1.0 - alpha)[..., None] + 0.5
    torch.testing.assert_close(out, want, rtol=0, atol=2e-6)
    hard = call(registry, "InpaintMaskedFill", image=image, mask=mask, fill="neutral", falloff=0)
    assert (hard[0, 14, 18] == 0.5).all() and (hard[0, 14, 28] == 0.5).all()
    assert torch.equal(hard[0, 23, 6], image[0, 23, 6])  # a mask of 0.5 is not filled


@pytest.mark.parametrize("fill, method", [("telea", cv2.INPAINT_TELEA), ("navier-stokes", cv2.INPAINT_NS)])
def test_masked_fill_opencv_methods(registry, fill, method):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 32, 40, 3, generator=g)
    mask = torch.cat([blob_mask(), blob_mask().flip(-1)])
    out = call(registry, "InpaintMaskedFill", image=image, mask=mask, fill=fill, falloff=0)
    for b in range(2):
        alpha = (mask[b] >= 0.99).float().numpy()
        rgb = image[b].numpy()
        filled = cv2.inpaint((255.0 * rgb).astype(numpy.uint8), (255.0 * alpha).astype(numpy.uint8), 3, method)
        want = rgb * (1 - alpha[..., None]) + filled.astype(numpy.float32) / 255.0 * alpha[..., None]
        torch.testing.assert_close(out[b], torch.from_numpy(want), rtol=0, atol=1e-6)
    assert not torch.equal(out, image)


def test_masked_fill_errors(registry):
    image = torch.rand(2, 32, 40, 3)
    for mask, words in ((torch.ones(1, 32, 40), "1 masks for 2 images"), (torch.ones(2, 30, 40), "same size")):
        with pytest.raises(NodeInputError) as e:
            call(registry, "InpaintMaskedFill", image=image, mask=mask, fill="neutral")
        assert e.value.input == "mask" and words in str(e.value)
    with pytest.raises(NodeInputError) as e:
        call(registry, "InpaintMaskedFill", image=torch.rand(1, 8, 8, 4), mask=torch.ones(1, 8, 8), fill="telea")
    assert e.value.input == "image" and "RGB" in str(e.value)


def test_masked_blur_against_kornia(registry):
    g = torch.Generator().manual_seed(2)
    image = torch.rand(2, 32, 40, 3, generator=g)
    mask = blob_mask()
    out = call(registry, "InpaintMaskedBlur", image=image, mask=mask, blur=10, falloff=20)
    pixels = image.permute(0, 3, 1, 2)
    alpha = pack_alpha(mask, 9)[:, None]  # falloff: min(21, blur 11 - 2)
    want = pixels + (kornia_blur(pixels, 11) - pixels) * alpha
    torch.testing.assert_close(out, want.permute(0, 2, 3, 1), rtol=0, atol=3e-6)
    plain = call(registry, "InpaintMaskedBlur", image=image, mask=mask, blur=15, falloff=0)
    want = pixels + (kornia_blur(pixels, 15) - pixels) * (mask >= 0.99).float()[:, None]
    torch.testing.assert_close(plain, want.permute(0, 2, 3, 1), rtol=0, atol=3e-6)
    with pytest.raises(NodeInputError) as e:
        call(registry, "InpaintMaskedBlur", image=image, mask=torch.ones(3, 32, 40))
    assert e.value.input == "mask"


def test_masked_blur_estimate_refuses_a_picture_too_large_before_running(registry):
    """The blur's working set: the picture's float32 copies and one bounded band, whatever the
    kernel; a picture whose blur would not fit the memory is refused before anything runs."""
    from graphflow.resource_limits import RunLimits, Size
    from graphflow.validation import plan_workflow
    from nodes.image_ops import BLUR_BAND_VALUES
    cls = registry.get("InpaintMaskedBlur")
    size = Size(1, 512, 512)
    small = cls.estimate({"blur": 3, "falloff": 0}, {"image": size})
    huge = cls.estimate({"blur": 8191, "falloff": 0}, {"image": size})
    assert small.size is size and huge.memory == small.memory == 3 * 3 * 4 * 512 * 512 + 48 * min(BLUR_BAND_VALUES,
                                                                                               3 * 512 * 512)
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8192, "height": 8192, "batch_size": 1,
                                                           "color": 0}},
              "2": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8192, "height": 8192}},
              "3": {"class_type": "INPAINT_MaskedBlur", "inputs": {"image": ["1", 0], "mask": ["2", 0],
                                                                   "blur": 8191, "falloff": 0}}}

    def refused(gigabytes):
        limits = RunLimits(ram_bytes=gigabytes * 2 ** 30, device_bytes=gigabytes * 2 ** 30)
        return [p.node_id for p in plan_workflow(parse_workflow(prompt, registry), registry, ["3"], limits)[1]]
    assert refused(64) == []
    assert refused(2) == ["3"]  # 2.25 GB of copies: refused at the blur, the picture itself fits


# -- VAE Encode & Inpaint Conditioning ---------------------------------------------------------------


@pytest.fixture(scope="module")
def xl_folders(tmp_path_factory):
    from graphflow import folders as folders_module
    saved = dict(folders_module.folders.__dict__)
    home = tmp_path_factory.mktemp("inpaint_home")
    configured = folders_module.configure(home=home)
    for sub in (configured.inputs, configured.outputs, configured.models / "checkpoints",
                configured.models / "inpaint"):
        sub.mkdir(parents=True, exist_ok=True)
    write_checkpoint(configured.models / "checkpoints" / "tiny_xl.safetensors", "sdxl")
    yield configured
    folders_module.folders.__dict__.update(saved)


def write_fooocus(folder, width=32, seed=0, keys=None):
    """A Fooocus head {"head": [width, 5, 3, 3]} (.pth) and patch {key: (uint8 q, min, max)} (.patch)
    for the tiny SDXL UNet, in the pack's layouts; returns (head, patch) as written."""
    g = torch.Generator().manual_seed(seed)
    head = torch.randn(width, 5, 3, 3, generator=g)
    torch.save({"head": head}, folder / "fooocus_inpaint_head.pth")
    shapes = keys or {"diffusion_model.input_blocks.0.0.weight": (32, 4, 3, 3),
                      "diffusion_model.input_blocks.0.0.bias": (32,),
                      "diffusion_model.out.2.weight": (4, 32, 3, 3)}
    patch = {}
    for key, shape in shapes.items():
        q = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
        low = -torch.rand(shape[:1] + (1,) * (len(shape) - 1), generator=g).half()
        high = torch.rand(shape[:1] + (1,) * (len(shape) - 1), generator=g).half()
        patch[key] = (q, low, high)
    patch["diffusion_model.not_a_layer.weight"] = next(iter(patch.values()))
    torch.save(patch, folder / "inpaint_v26.fooocus.patch")
    return head, patch


def inpaint_inputs(h=64, w=64):
    g = torch.Generator().manual_seed(3)
    pixels = torch.rand(1, h, w, 3, generator=g)
    mask = torch.zeros(1, h, w)
    mask[0, 16:40, 8:30] = 1.0
    mask[0, 40:44, 8:30] = 0.6
    return pixels, mask


def test_vae_encode_inpaint_conditioning_is_the_core_node_plus_the_inpaint_latent(registry, xl_folders):
    from graphflow.models.checkpoint import load_checkpoint
    ckpt = load_checkpoint(xl_folders.models / "checkpoints" / "tiny_xl.safetensors")
    cond = [(torch.zeros(1, 2, 8), {"pooled_output": torch.zeros(1, 8)})]
    pixels, mask = inpaint_inputs()
    pos, neg, latent_inpaint, latent = call(registry, "InpaintVAEEncodeInpaintConditioning", positive=cond,
                                            negative=cond, vae=ckpt.vae, pixels=pixels, mask=mask)
    core = call(registry, "InpaintModelConditioning", positive=cond, negative=cond, vae=ckpt.vae, pixels=pixels,
                mask=mask, noise_mask=True)
    assert torch.equal(latent["samples"], core[2]["samples"]) and torch.equal(latent["noise_mask"],
                                                                               core[2]["noise_mask"])
    assert torch.equal(pos[0][1]["concat_latent_image"], core[0][0][1]["concat_latent_image"])
    assert torch.equal(latent_inpaint["samples"], core[0][0][1]["concat_latent_image"])
    assert torch.equal(latent_inpaint["noise_mask"], core[2]["noise_mask"].round())
    assert set(latent_inpaint["noise_mask"].unique().tolist()) == {0.0, 1.0}
    with pytest.raises(NodeInputError) as e:
        call(registry, "InpaintVAEEncodeInpaintConditioning", positive=[], negative=cond, vae=ckpt.vae,
             pixels=pixels, mask=mask)
    assert e.value.input == "positive"


# -- Fooocus inpaint ---------------------------------------------------------------------------------


def fooocus_ui_graph():
    """The pack's inpaint workflow shape, as the editor saves it (pack nodes with their widgets)."""
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny_xl.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [4])]),
        ui_node(2, "CLIPTextEncode", ["a cat"], inputs=[("clip", "CLIP", 2, False)],
                outputs=[("CONDITIONING", "CONDITIONING", [5])]),
        ui_node(3, "CLIPTextEncode", ["text, watermark"], inputs=[("clip", "CLIP", 3, False)],
                outputs=[("CONDITIONING", "CONDITIONING", [6])]),
        ui_node(4, "EmptyImage", [64, 64, 1, 8421504], outputs=[("IMAGE", "IMAGE", [7])]),
        ui_node(5, "SolidMask", [1.0, 64, 64], outputs=[("MASK", "MASK", [8])]),
        ui_node(6, "INPAINT_ExpandMask", [4, 3], inputs=[("mask", "MASK", 8, False)],
                outputs=[("MASK", "MASK", [9])]),
        ui_node(7, "INPAINT_VAEEncodeInpaintConditioning", [],
                inputs=[("positive", "CONDITIONING", 5, False), ("negative", "CONDITIONING", 6, False),
                        ("vae", "VAE", 4, False), ("pixels", "IMAGE", 7, False), ("mask", "MASK", 9, False)],
                outputs=[("positive", "CONDITIONING", []), ("negative", "CONDITIONING", []),
                         ("latent_inpaint", "LATENT", [10]), ("latent_samples", "LATENT", [])]),
        ui_node(8, "INPAINT_LoadFooocusInpaint", ["fooocus_inpaint_head.pth", "inpaint_v26.fooocus.patch"],
                outputs=[("INPAINT_PATCH", "INPAINT_PATCH", [11])]),
        ui_node(9, "INPAINT_ApplyFooocusInpaint", [],
                inputs=[("model", "MODEL", 1, False), ("patch", "INPAINT_PATCH", 11, False),
                        ("latent", "LATENT", 10, False)], outputs=[("MODEL", "MODEL", [])]),
    ]
    links = [[1, 1, 0, 9, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 3, 0, "CLIP"], [4, 1, 2, 7, 2, "VAE"],
             [5, 2, 0, 7, 0, "CONDITIONING"], [6, 3, 0, 7, 1, "CONDITIONING"], [7, 4, 0, 7, 3, "IMAGE"],
             [8, 5, 0, 6, 0, "MASK"], [9, 6, 0, 7, 4, "MASK"], [10, 7, 2, 9, 2, "LATENT"],
             [11, 8, 0, 9, 1, "INPAINT_PATCH"]]
    return ui_graph(nodes, links)


def test_fooocus_inpaint_from_a_ui_save_merges_the_patch_and_adds_the_head(registry, xl_folders):
    head, patch = write_fooocus(xl_folders.models / "inpaint")
    workflow, values = run(registry, fooocus_ui_graph(), ["1", "7", "9"])
    base, patched = values["1"][0], values["9"][0]
    before = memory.manager().weights(base.unet, base.patches)
    after = memory.manager().weights(patched.unet, patched.patches)
    for key, (q, low, high) in patch.items():
        name = key.removeprefix("diffusion_model.")
        if name not in before:
            continue
        diff = (q.float() / 255.0) * (high.float() - low.float()) + low.float()
        want = (before[name].float() + diff).to(before[name].dtype)
        assert torch.equal(after[name], want), name
    untouched = "input_blocks.1.0.in_layers.2.weight"
    assert torch.equal(after[untouched], before[untouched])
    # the model given in is unchanged, and the head's output goes after input block 0 only
    assert memory.manager().weights(base.unet, base.patches)["out.2.weight"].equal(before["out.2.weight"])
    latent = values["7"][2]
    mask = F.max_pool2d(latent["noise_mask"].round(), (8, 8)).round()
    feed = torch.cat([mask, latent["samples"] * SDXL_SCALE], dim=1)
    feature = F.conv2d(F.pad(feed, (1, 1, 1, 1), "replicate"), head)
    (block_patch,) = patched.unet.input_block_patches
    h = torch.randn(2, 32, 8, 8)
    torch.testing.assert_close(block_patch(h, 0, None), h + feature.repeat(2, 1, 1, 1), rtol=0, atol=1e-5)
    assert torch.equal(block_patch(h, 1, None), h)
    assert not getattr(base.unet, "input_block_patches", ())
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[8] == ["fooocus_inpaint_head.pth", "inpaint_v26.fooocus.patch"]
    assert saved[6] == [4, 3, "gaussian"]  # today's layout: blur_type after blur
    assert saved[9] == [] and saved[7] == []


def test_fooocus_patched_model_samples_from_an_api_prompt(registry, xl_folders):
    write_fooocus(xl_folders.models / "inpaint")
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_xl.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "4": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}},
        "5": {"class_type": "INPAINT_VAEEncodeInpaintConditioning",
              "inputs": {"positive": ["2", 0], "negative": ["2", 0], "vae": ["1", 2], "pixels": ["3", 0],
                         "mask": ["4", 0]}},
        "6": {"class_type": "INPAINT_LoadFooocusInpaint",
              "inputs": {"head": "fooocus_inpaint_head.pth", "patch": "inpaint_v26.fooocus.patch"}},
        "7": {"class_type": "INPAINT_ApplyFooocusInpaint",
              "inputs": {"model": ["1", 0], "patch": ["6", 0], "latent": ["5", 2]}},
        "8": {"class_type": "KSampler", "inputs": {"model": ["7", 0], "positive": ["5", 0], "negative": ["5", 1],
                                                   "latent_image": ["5", 3], "seed": 1, "steps": 1, "cfg": 2.0,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "9": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["5", 0],
                                                   "negative": ["5", 1], "latent_image": ["5", 3], "seed": 1,
                                                   "steps": 1, "cfg": 2.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0}},
    }
    workflow, values = run(registry, prompt, ["8", "9"])
    with_patch, without = values["8"][0]["samples"], values["9"][0]["samples"]
    assert torch.isfinite(with_patch).all() and not torch.equal(with_patch, without)
    again = export_api(workflow, registry)
    for node in ("5", "6", "7"):
        assert again[node] == prompt[node]


def test_fooocus_patch_on_a_gguf_layer_is_checked_by_its_values_shape(registry, xl_folders):
    """A GGUF layer's weight parameter holds its packed blocks ([64, 68] bytes for 64x64 Q8_0
    values): the patch is checked against, and merged into, the values it stands for."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.gguf_layers import QuantizedLinear, dequantize
    from nodes.pack_nodes_inpaint import FooocusInpaint
    ckpt = load_checkpoint(xl_folders.models / "checkpoints" / "tiny_xl.safetensors")
    unet = copy.deepcopy(ckpt.model.unet)
    path = "input_blocks.3.1.transformer_blocks.0.attn1.to_out.0"
    plain = unet.get_submodule(path)
    layer = QuantizedLinear(64, 64, True, "Q8_0", torch.float32)
    blocks = torch.randint(0, 256, (64, 68), dtype=torch.uint8, generator=torch.Generator().manual_seed(10))
    blocks.view(64, 2, 34)[:, :, :2] = torch.full((64, 2, 1), 0.01).half().view(torch.uint8)  # finite scales
    layer.weight = torch.nn.Parameter(blocks.clone(), requires_grad=False)
    layer.bias = torch.nn.Parameter(plain.bias.detach().float().clone(), requires_grad=False)
    unet.get_submodule(path.rpartition(".")[0])[0] = layer
    model = ckpt.model.with_unet(unet)
    g = torch.Generator().manual_seed(11)
    q = torch.randint(0, 256, (64, 64), generator=g, dtype=torch.uint8)
    low, high = -torch.rand(64, 1, generator=g).half(), torch.rand(64, 1, generator=g).half()
    head = torch.randn(32, 5, 3, 3, generator=g)
    latent = {"samples": torch.zeros(1, 4, 8, 8), "noise_mask": torch.ones(1, 1, 64, 64)}
    patch = FooocusInpaint(head, {f"diffusion_model.{path}.weight": (q, low, high)}, "head.pth", "gguf.patch")
    patched = call(registry, "InpaintApplyFooocusInpaint", model=model, patch=patch, latent=latent)
    values = dequantize(blocks, "Q8_0", (64, 64))
    diff = (q.float() / 255.0) * (high.float() - low.float()) + low.float()
    after = memory.manager().weights(patched.unet, patched.patches)[f"{path}.weight"]
    torch.testing.assert_close(after, values + diff, rtol=0, atol=1e-6)
    packed = FooocusInpaint(head, {f"diffusion_model.{path}.weight": (blocks, low, high)}, "head.pth", "gguf.patch")
    with pytest.raises(NodeInputError) as e:  # a patch the blocks' shape would have let through
        call(registry, "InpaintApplyFooocusInpaint", model=model, patch=packed, latent=latent)
    assert e.value.input == "patch" and "(64, 64)" in str(e.value)


def test_fooocus_errors_by_name(registry, xl_folders):
    from graphflow.models.checkpoint import load_checkpoint
    folder = xl_folders.models / "inpaint"
    write_fooocus(folder)
    ckpt = load_checkpoint(xl_folders.models / "checkpoints" / "tiny_xl.safetensors")
    loaded = call(registry, "InpaintLoadFooocusInpaint", head="fooocus_inpaint_head.pth",
                  patch="inpaint_v26.fooocus.patch")
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    cases = [({"latent": latent}, "latent", "no noise mask"),
             ({"latent": {"samples": torch.zeros(1, 16, 8, 8), "noise_mask": torch.ones(1, 1, 64, 64)}}, "latent",
              "expected latents [B, 4, h, w]"),
             ({"model": object(), "latent": latent}, "model", "UNet"),
             ({"latent": {**latent, "noise_mask": torch.ones(1, 1, 32, 32)}}, "latent", "8 times larger")]
    for inputs, name, words in cases:
        with pytest.raises(NodeInputError) as e:
            call(registry, "InpaintApplyFooocusInpaint", **{"model": ckpt.model, "patch": loaded, **inputs})
        assert e.value.input == name and words in str(e.value)
    # a head and a patch for another model
    torch.save({"head": torch.zeros(320, 5, 3, 3)}, folder / "big_head.pth")
    big = call(registry, "InpaintLoadFooocusInpaint", head="big_head.pth", patch="inpaint_v26.fooocus.patch")
    with pytest.raises(NodeInputError) as e:
        call(registry, "InpaintApplyFooocusInpaint", model=ckpt.model, patch=big,
             latent={**latent, "noise_mask": torch.ones(1, 1, 64, 64)})
    assert e.value.input == "patch" and "320 channels" in str(e.value)
    write_fooocus(folder, keys={"diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)})
    wrong = call(registry, "InpaintLoadFooocusInpaint", head="fooocus_inpaint_head.pth",
                 patch="inpaint_v26.fooocus.patch")
    with pytest.raises(NodeInputError) as e:
        call(registry, "InpaintApplyFooocusInpaint", model=ckpt.model, patch=wrong,
             latent={**latent, "noise_mask": torch.ones(1, 1, 64, 64)})
    assert e.value.input == "patch" and "another model" in str(e.value)
    # swapped files, a missing one, and a patch that is no (q, min, max) triples
    for head, patch_name, name in (("inpaint_v26.fooocus.patch", "inpaint_v26.fooocus.patch", "head"),
                                   ("fooocus_inpaint_head.pth", "fooocus_inpaint_head.pth", "patch")):
        with pytest.raises(NodeInputError) as e:
            call(registry, "InpaintLoadFooocusInpaint", head=head, patch=patch_name)
        assert e.value.input == name
    prompt = {"1": {"class_type": "INPAINT_LoadFooocusInpaint",
                    "inputs": {"head": "gone.pth", "patch": "inpaint_v26.fooocus.patch"}}}
    ((node, name, message),) = failed(registry, prompt, ["1"])
    assert (node, name) == ("1", "head") and "gone.pth" in message


# -- LaMa ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lama(xl_folders):
    """A random-weight LaMa (spandrel's own class) saved as its state dict in models/inpaint."""
    from safetensors.torch import save_file
    from spandrel.architectures.LaMa import LaMa
    torch.manual_seed(0)
    net = LaMa(in_nc=4, out_nc=3).eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(xl_folders.models / "inpaint" / "big-lama.safetensors"))
    return net


def pack_lama(net, image, mask):
    """The pack's Inpaint (using Model) for one picture, written out: pad right / bottom to a square
    (reflect), nearest-exact to 256, mask >= 0.99, LaMa, bilinear back, crop, composite."""
    _, h, w, _ = image.shape
    x, m = image.permute(0, 3, 1, 2), mask[:, None]
    side = max(h, w)
    x = F.interpolate(F.pad(x, (0, side - w, 0, side - h), mode="reflect"), size=256, mode="nearest-exact")
    m = F.interpolate(F.pad(m, (0, side - w, 0, side - h), mode="reflect"), size=256, mode="nearest-exact")
    with torch.no_grad():
        out = net(x, (m >= 0.99).float())
    out = F.interpolate(out, size=side, mode="bilinear")[:, :, :h, :w]
    keep = (mask[:, None] >= 0.99).float()
    return (image.permute(0, 3, 1, 2) + (out - image.permute(0, 3, 1, 2)) * keep).permute(0, 2, 3, 1)


def test_lama_from_an_api_prompt_matches_spandrel_with_the_packs_resizing(registry, xl_folders, lama):
    g = torch.Generator().manual_seed(4)
    picture = torch.rand(1, 40, 64, 3, generator=g)
    Image.fromarray((picture[0].numpy() * 255).astype(numpy.uint8)).save(xl_folders.inputs / "photo.png")
    image = torch.from_numpy(numpy.asarray(Image.open(xl_folders.inputs / "photo.png"), numpy.float32) / 255)[None]
    prompt = {"1": {"class_type": "INPAINT_LoadInpaintModel", "inputs": {"model_name": "big-lama.safetensors"}},
              "2": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
              "3": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 24, "height": 16}},
              "5": {"class_type": "INPAINT_InpaintWithModel",
                    "inputs": {"inpaint_model": ["1", 0], "image": ["2", 0], "mask": ["6", 0], "seed": 7}},
              "6": {"class_type": "MaskComposite", "inputs": {"destination": ["7", 0], "source": ["3", 0],
                                                              "x": 20, "y": 10, "operation": "add"}},
              "7": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 64, "height": 40}}}
    workflow, values = run(registry, prompt, ["5", "6"])
    mask = values["6"][0]
    want = pack_lama(lama, image, mask)
    torch.testing.assert_close(values["5"][0], want, rtol=0, atol=1e-5)
    assert torch.equal(values["5"][0][0, :10], image[0, :10]) and not torch.equal(values["5"][0], image)
    again = export_api(workflow, registry)
    assert again["5"] == prompt["5"] and again["1"] == prompt["1"]


class StubLama:
    """A stand-in with spandrel's interface (architecture id LaMa, its network as .model, called
    with a [1, 3, 256, 256] picture and a 0/1 [1, 1, 256, 256] mask): a seeded 3x3 conv of both,
    squashed to 0..1. The padding, resizing, compositing and upscaling around the model are tested
    with it; the real (random-weight) LaMa runs once, in the API prompt test."""
    architecture = SimpleNamespace(id="LaMa", name="LaMa")

    def __init__(self):
        self.model = torch.nn.Conv2d(4, 3, 3, padding=1).eval()
        with torch.no_grad():
            self.model.weight.copy_(torch.randn(3, 4, 3, 3, generator=torch.Generator().manual_seed(8)) / 4)
        self.calls = []

    def __call__(self, image, mask):
        self.calls.append((tuple(image.shape), tuple(mask.shape), set(mask.unique().tolist()) <= {0.0, 1.0}))
        return torch.sigmoid(self.model(torch.cat([image, mask], 1)))


@pytest.fixture
def stub_lama():
    return StubLama()


def test_inpaint_with_model_pads_resizes_and_composites_as_the_pack(registry, stub_lama):
    g = torch.Generator().manual_seed(9)
    for h, w in ((40, 64), (50, 36), (300, 260)):  # wide, tall, larger than LaMa's square
        image = torch.rand(2, h, w, 3, generator=g)
        mask = (torch.rand(2, h, w, generator=g) > 0.6).float() * torch.tensor([1.0, 0.995])[:, None, None]
        out = call(registry, "InpaintInpaintWithModel", inpaint_model=stub_lama, image=image, mask=mask, seed=3)
        with torch.no_grad():
            want = torch.cat([pack_lama(stub_lama, image[i:i + 1], mask[i:i + 1]) for i in range(2)])
        torch.testing.assert_close(out, want, rtol=0, atol=1e-6)
        unmasked = mask < 0.99
        assert torch.equal(out[unmasked], image[unmasked]) and not torch.equal(out, image)
    assert {c[:2] for c in stub_lama.calls} == {((1, 3, 256, 256), (1, 1, 256, 256))}
    assert all(c[2] for c in stub_lama.calls)


def test_lama_from_a_ui_save_with_a_batch_and_one_mask(registry, xl_folders, lama, stub_lama, monkeypatch):
    """The loader's reading of a LaMa file is the API prompt test's; here it gives the stub."""
    monkeypatch.setattr(registry.get("InpaintLoadInpaintModel"), "run", lambda self: stub_lama)
    nodes = [ui_node(1, "INPAINT_LoadInpaintModel", ["big-lama.safetensors"],
                     outputs=[("INPAINT_MODEL", "INPAINT_MODEL", [1])]),
             ui_node(2, "EmptyImage", [256, 256, 2, 0x336699], outputs=[("IMAGE", "IMAGE", [2])]),
             ui_node(3, "SolidMask", [1.0, 256, 256], outputs=[("MASK", "MASK", [3])]),
             ui_node(4, "INPAINT_InpaintWithModel", [5, "fixed"],
                     inputs=[("inpaint_model", "INPAINT_MODEL", 1, False), ("image", "IMAGE", 2, False),
                             ("mask", "MASK", 3, False), ("optional_upscale_model", "UPSCALE_MODEL", None, False)],
                     outputs=[("IMAGE", "IMAGE", [])])]
    links = [[1, 1, 0, 4, 0, "INPAINT_MODEL"], [2, 2, 0, 4, 1, "IMAGE"], [3, 3, 0, 4, 2, "MASK"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["2", "4"])
    image, out = values["2"][0], values["4"][0]
    with torch.no_grad():  # a 256x256 picture goes in as it is, fully masked: the model's output itself
        direct = stub_lama(image[:1].permute(0, 3, 1, 2), torch.ones(1, 1, 256, 256)).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, direct.expand(2, -1, -1, -1), rtol=0, atol=1e-5)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[4] == [5, "fixed"] and saved[1] == ["big-lama.safetensors"]


def test_inpaint_with_model_errors(registry, stub_lama):
    with pytest.raises(NodeInputError) as e:
        call(registry, "InpaintInpaintWithModel", inpaint_model=stub_lama, image=torch.rand(1, 16, 16, 3),
             mask=torch.ones(1, 8, 16))
    assert e.value.input == "mask" and "same size" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        call(registry, "InpaintInpaintWithModel", inpaint_model=object(), image=torch.rand(1, 16, 16, 3),
             mask=torch.ones(1, 16, 16))
    assert e.value.input == "inpaint_model"
    for channels in (4, 1):
        with pytest.raises(NodeInputError) as e:
            call(registry, "InpaintInpaintWithModel", inpaint_model=stub_lama, image=torch.rand(1, 16, 16, channels),
                 mask=torch.ones(1, 16, 16))
        assert e.value.input == "image" and f"got {channels} channels" in str(e.value)
    assert stub_lama.calls == []


def test_inpaint_with_model_and_fill_report_progress_per_image_and_stop(registry, stub_lama):
    image, mask = torch.rand(3, 24, 20, 3), torch.ones(1, 24, 20)
    with node_context() as events:
        call(registry, "InpaintInpaintWithModel", inpaint_model=stub_lama, image=image, mask=mask)
    assert steps(events) == [(1, 3), (2, 3), (3, 3)]
    with node_context() as events:
        call(registry, "InpaintMaskedFill", image=image, mask=mask.expand(3, -1, -1), fill="telea")
    assert steps(events) == [(1, 3), (2, 3), (3, 3)]
    stub_lama.calls.clear()
    with node_context(stopped=True), pytest.raises(Interrupted):
        call(registry, "InpaintInpaintWithModel", inpaint_model=stub_lama, image=image, mask=mask)
    assert stub_lama.calls == []
    with node_context(stopped=True), pytest.raises(Interrupted):
        call(registry, "InpaintMaskedFill", image=image, mask=mask.expand(3, -1, -1), fill="navier-stokes")


def test_inpaint_with_model_upscales_the_square_with_the_optional_model(registry, xl_folders, stub_lama):
    """The pack upscales the model's 256x256 square with optional_upscale_model (one 512 tile here:
    the bare network, clamped to 0..1) before resizing it back (bilinear) to the padded square."""
    from graphflow.models.upscale import load_upscale_model
    esrgan = load_upscale_model(write_esrgan(xl_folders.models / "inpaint" / "x2.safetensors", scale=2))
    g = torch.Generator().manual_seed(5)
    image, mask = torch.rand(1, 30, 20, 3, generator=g), torch.zeros(1, 30, 20)
    mask[0, 5:20, 4:12] = 1.0
    x = F.interpolate(F.pad(image.permute(0, 3, 1, 2), (0, 10, 0, 0), mode="reflect"), size=256, mode="nearest-exact")
    m = F.interpolate(F.pad(mask[:, None], (0, 10, 0, 0), mode="reflect"), size=256, mode="nearest-exact")
    with torch.no_grad():
        square = esrgan(stub_lama(x, (m >= 0.99).float())).clamp(0, 1)
    back = F.interpolate(square, size=30, mode="bilinear")[:, :, :30, :20].permute(0, 2, 3, 1)
    want = image + (back - image) * mask[..., None]
    out = call(registry, "InpaintInpaintWithModel", inpaint_model=stub_lama, image=image, mask=mask, seed=0,
               optional_upscale_model=esrgan)
    torch.testing.assert_close(out, want, rtol=0, atol=1e-5)


def test_load_inpaint_model_refuses_mat_torchscript_and_other_models(registry, xl_folders):
    from safetensors.torch import save_file
    folder = xl_folders.models / "inpaint"
    save_file({"synthesis.first_stage.conv_first.conv.resample_filter": torch.ones(4, 4)},
              str(folder / "Places_512_FullData_G.safetensors"))
    write_esrgan(folder / "esrgan.safetensors")
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(4, 3, 1)), str(folder / "scripted.pt"))
    for name, words in (("Places_512_FullData_G.safetensors", "MAT"), ("esrgan.safetensors", "not an inpainting"),
                        ("scripted.pt", "TorchScript")):
        with pytest.raises(NodeInputError) as e:
            call(registry, "InpaintLoadInpaintModel", model_name=name)
        assert e.value.input == "model_name" and words in str(e.value), str(e.value)
    assert "torch.jit.load('scripted.pt').state_dict()" in str(e.value) and "generator.model" in str(e.value)
    prompt = {"1": {"class_type": "INPAINT_LoadInpaintModel", "inputs": {"model_name": "gone.pth"}}}
    ((node, name, message),) = failed(registry, prompt, ["1"])
    assert (node, name) == ("1", "model_name") and "gone.pth" in message


def test_fill_blur_and_mask_nodes_from_a_ui_save_and_an_api_prompt(registry):
    """The pack's preprocess workflow shapes: Fill / Blur Masked Area and Denoise to Compositing
    Mask with their widgets in the pack's order, exported back unchanged."""
    nodes = [ui_node(1, "EmptyImage", [48, 32, 1, 0xff8000], outputs=[("IMAGE", "IMAGE", [1, 2])]),
             ui_node(2, "SolidMask", [1.0, 48, 32], outputs=[("MASK", "MASK", [3, 4, 5])]),
             ui_node(3, "INPAINT_MaskedFill", ["neutral", 0],
                     inputs=[("image", "IMAGE", 1, False), ("mask", "MASK", 3, False)],
                     outputs=[("IMAGE", "IMAGE", [])]),
             ui_node(4, "INPAINT_MaskedBlur", [65, 11],
                     inputs=[("image", "IMAGE", 2, False), ("mask", "MASK", 4, False)],
                     outputs=[("IMAGE", "IMAGE", [])]),
             ui_node(5, "INPAINT_DenoiseToCompositingMask", [0.25, 0.75],
                     inputs=[("mask", "MASK", 5, False)], outputs=[("MASK", "MASK", [])])]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 1, 0, 4, 0, "IMAGE"], [3, 2, 0, 3, 1, "MASK"], [4, 2, 0, 4, 1, "MASK"],
             [5, 2, 0, 5, 0, "MASK"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["1", "3", "4", "5"])
    image = values["1"][0]
    assert torch.equal(values["3"][0], torch.full_like(image, 0.5))  # all masked: all grey
    torch.testing.assert_close(values["4"][0], image, rtol=0, atol=1e-6)  # a flat colour blurs to itself
    assert torch.equal(values["5"][0], torch.ones(1, 32, 48))
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[3] == ["neutral", 0] and saved[4] == [65, 11] and saved[5] == [0.25, 0.75]
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 255}},
              "2": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 16, "height": 16}},
              "3": {"class_type": "INPAINT_ExpandMask", "inputs": {"mask": ["2", 0], "grow": 2, "blur": 3,
                                                                     "blur_type": "linear"}},
              "4": {"class_type": "INPAINT_MaskedFill",
                    "inputs": {"image": ["1", 0], "mask": ["3", 0], "fill": "telea", "falloff": 3}}}
    workflow, values = run(registry, prompt, ["4"])
    assert values["4"][0].shape == (1, 16, 16, 3)
    again = export_api(workflow, registry)
    assert again["3"] == prompt["3"] and again["4"] == prompt["4"]


# -- the later version's mask nodes --------------------------------------------------------------


def pack_mask_blur(mask, size, blur_type):
    """The pack's util.mask_blur through kornia (its library), with the pack's kernels built here."""
    if size <= 2:
        return mask
    if blur_type == "gaussian":
        return kornia_blur(mask, size)
    if blur_type == "box" or size == 3:
        kernel = torch.ones(1, size) / size
    else:
        h = size // 2
        side = torch.linspace(1 / h, (h - 1) / h, h)
        kernel = torch.cat([side, torch.ones(1), side.flip(0)])
        kernel = (kernel / kernel.sum())[None]
    return kornia.filters.filter2d_separable(mask, kernel, kernel, border_type="reflect")


@pytest.mark.parametrize("blur_type", ["box", "linear", "gaussian"])
def test_expand_and_shrink_mask_blur_types(registry, blur_type):
    mask = blob_mask()
    for blur in (2, 3, 8):
        out = call(registry, "InpaintExpandMask", mask=mask, grow=2, blur=blur, blur_type=blur_type)
        grown = cv2_square((mask[0] > 0).float(), 2)[None, None]
        want = pack_mask_blur(grown, blur + 1 if blur % 2 == 0 else blur, blur_type)
        torch.testing.assert_close(out, want[:, 0], rtol=0, atol=2e-6)
        out = call(registry, "InpaintShrinkMask", mask=mask, shrink=2, blur=blur, blur_type=blur_type)
        shrunk = cv2_square((mask[0] >= 1).float(), 2, erode=True)[None, None]
        want = pack_mask_blur(shrunk, blur + 1 if blur % 2 == 0 else blur, blur_type)
        torch.testing.assert_close(out, want[:, 0], rtol=0, atol=2e-6)
    assert torch.equal(call(registry, "InpaintExpandMask", mask=mask, grow=0, blur=1, blur_type=blur_type), mask)


def test_shrink_mask_erodes_from_the_border_as_if_outside_were_masked(registry):
    mask = torch.ones(1, 10, 12)
    mask[0, 4, 5] = 0.0
    out = call(registry, "InpaintShrinkMask", mask=mask, shrink=1, blur=0)
    want = torch.ones(10, 12)
    want[3:6, 4:7] = 0.0  # only the hole grows; the picture's edge does not eat in
    assert torch.equal(out[0], want)


def test_stabilize_mask(registry):
    mask = torch.tensor([[[0.0, 0.5, 0.985, 0.995, 1.0]]])
    out = call(registry, "InpaintStabilizeMask", mask=mask, epsilon=0.01)
    assert torch.equal(out, torch.where(mask > 0.99, torch.ones_like(mask), mask))
    assert out[0, 0].tolist() == [0.0, 0.5, pytest.approx(0.985), 1.0, 1.0]


def test_later_mask_nodes_from_ui_saves_old_and_new(registry):
    """Expand Mask saved before blur_type ([grow, blur]) and after ([grow, blur, blur_type]), Shrink
    and Stabilize Mask as the later editor saves them; exported back in today's layout. The mask
    has an edge (its left half set), where the blur types differ: the old layout blurs as gaussian."""
    nodes = [ui_node(1, "SolidMask", [0.0, 24, 24], outputs=[("MASK", "MASK", [5])]),
             ui_node(6, "SolidMask", [1.0, 12, 24], outputs=[("MASK", "MASK", [6])]),
             ui_node(7, "MaskComposite", [0, 0, "add"],
                     inputs=[("destination", "MASK", 5, False), ("source", "MASK", 6, False)],
                     outputs=[("MASK", "MASK", [1, 2, 3, 4])]),
             ui_node(2, "INPAINT_ExpandMask", [2, 5], inputs=[("mask", "MASK", 1, False)],
                     outputs=[("MASK", "MASK", [])]),
             ui_node(3, "INPAINT_ExpandMask", [2, 5, "box"], inputs=[("mask", "MASK", 2, False)],
                     outputs=[("MASK", "MASK", [])]),
             ui_node(4, "INPAINT_ShrinkMask", [4, 0, "linear"], inputs=[("mask", "MASK", 3, False)],
                     outputs=[("MASK", "MASK", [])]),
             ui_node(5, "INPAINT_StabilizeMask", [0.05], inputs=[("mask", "MASK", 4, False)],
                     outputs=[("MASK", "MASK", [])])]
    links = [[1, 7, 0, 2, 0, "MASK"], [2, 7, 0, 3, 0, "MASK"], [3, 7, 0, 4, 0, "MASK"], [4, 7, 0, 5, 0, "MASK"],
             [5, 1, 0, 7, 0, "MASK"], [6, 6, 0, 7, 1, "MASK"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["2", "3", "4", "5", "7"])
    edge = torch.zeros(1, 24, 24)
    edge[0, :, :12] = 1.0
    assert torch.equal(values["7"][0], edge)
    gaussian = pack_mask_blur(cv2_square(edge[0], 2)[None, None], 5, "gaussian")[:, 0]
    box = pack_mask_blur(cv2_square(edge[0], 2)[None, None], 5, "box")[:, 0]
    assert (gaussian - box).abs().max() > 0.04  # far beyond the tolerance below
    torch.testing.assert_close(values["2"][0], gaussian, rtol=0, atol=2e-6)
    torch.testing.assert_close(values["3"][0], box, rtol=0, atol=2e-6)
    assert torch.equal(values["4"][0], cv2_square(edge[0], 4, erode=True)[None])
    assert torch.equal(values["5"][0], edge)
    old_prompt = {"1": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 24, "height": 24}},
                  "3": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 12, "height": 24}},
                  "4": {"class_type": "MaskComposite", "inputs": {"destination": ["1", 0], "source": ["3", 0],
                                                                  "x": 0, "y": 0, "operation": "add"}},
                  "2": {"class_type": "INPAINT_ExpandMask", "inputs": {"mask": ["4", 0], "grow": 2, "blur": 5}}}
    torch.testing.assert_close(run(registry, old_prompt, ["2"])[1]["2"][0], gaussian, rtol=0, atol=2e-6)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2] == [2, 5, "gaussian"] and saved[3] == [2, 5, "box"] and saved[4] == [4, 0, "linear"]
    assert saved[5] == [0.05]
