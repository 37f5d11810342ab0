"""ComfyUI_essentials' second-round nodes (nodes/pack_nodes_essentials_misc.py): ImageSmartSharpen+
against OpenCV's bilateral filter and kornia's sharpness (the calls the pack makes), computed here;
MaskFromSegmentation+ against PIL's quantizer and scipy.ndimage; the sampler / scheduler switch
helpers; each read from a UI-format save and an API prompt with the pack's class names and written back."""

import cv2
import numpy
import pytest
import scipy.ndimage
import torch
from PIL import Image

from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import ui_graph, ui_node
from tests.test_pack_nodes_kj import run


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


def pictures(batch=2, height=20, width=24, channels=3, seed=0):
    return torch.rand((batch, height, width, channels), generator=torch.Generator().manual_seed(seed))


def reference_smart_sharpen(images, noise_radius, preserve_edges, sharpen, ratio):
    """The pack's formula through the libraries it calls: cv2.bilateralFilter and kornia.enhance.sharpness."""
    import kornia
    sigma_color = max(1 - preserve_edges, 0.05) if preserve_edges > 0 else preserve_edges
    sigma_space = 0.3 * ((noise_radius - 1) * 0.5 - 1) + 0.8
    out = []
    for image in images:
        blurred = torch.from_numpy(cv2.bilateralFilter(image.numpy(), noise_radius, sigma_color, sigma_space)) \
            if noise_radius > 1 else image
        sharpened = kornia.enhance.sharpness(image.permute(2, 0, 1), sharpen).permute(1, 2, 0) if sharpen > 0 else image
        out.append((ratio * sharpened + (1 - ratio) * blurred).clamp(0, 1))
    return torch.stack(out)


@pytest.mark.parametrize("noise_radius, preserve_edges, sharpen, ratio",
                         [(7, 0.75, 5.0, 0.5), (3, 0.0, 0.5, 0.3), (25, 1.0, 25.0, 0.9), (1, 0.5, 2.0, 1.0),
                          (9, 0.4, 0.0, 0.0)])
def test_smart_sharpen_equals_opencv_bilateral_and_kornia_sharpness(registry, noise_radius, preserve_edges,
                                                                    sharpen, ratio):
    images = pictures()
    out = call(registry, "ImageSmartSharpen", image=images, noise_radius=noise_radius,
               preserve_edges=preserve_edges, sharpen=sharpen, ratio=ratio)
    want = reference_smart_sharpen(images, noise_radius, preserve_edges, sharpen, ratio)
    assert out.shape == images.shape
    assert torch.allclose(out, want, atol=1e-5)


def test_smart_sharpen_with_nothing_to_do_keeps_the_image_and_refuses_alpha(registry):
    images = pictures()
    assert torch.equal(call(registry, "ImageSmartSharpen", image=images, noise_radius=1, preserve_edges=0.5,
                            sharpen=0.0, ratio=0.5), images)
    with pytest.raises(NodeInputError) as err:
        call(registry, "ImageSmartSharpen", image=pictures(channels=4))
    assert err.value.input == "image" and "channels" in str(err.value)


def test_smart_sharpen_stops_between_images_when_interrupted(registry, monkeypatch):
    """An interrupt while one image is filtered stops the node before the next."""
    import threading
    from graphflow import context
    ctx = context.NodeContext("run", "1", "ImageSmartSharpen", emit=lambda event: None, interrupt=threading.Event())
    filtered = []

    def bilateral(*args):
        filtered.append(args[0])
        ctx.interrupt.set()
        return args[0]
    monkeypatch.setattr(cv2, "bilateralFilter", bilateral)
    token = context._current.set(ctx)
    try:
        with pytest.raises(context.Interrupted):
            call(registry, "ImageSmartSharpen", image=pictures(batch=3))
    finally:
        context._current.reset(token)
    assert len(filtered) == 1


def reference_segments(image, segments, isolated, small, fill):
    pixels = (image.clamp(0, 1) * 255).to(torch.uint8).numpy()
    picture = Image.fromarray(pixels)
    reduced = numpy.asarray(picture.quantize(palette=picture.quantize(colors=segments),
                                             dither=Image.Dither.NONE).convert("RGB"))
    masks = []
    for color in numpy.unique(reduced.reshape(-1, 3), axis=0):
        mask = (reduced == color).all(axis=-1)
        if isolated:
            mask = scipy.ndimage.binary_opening(mask, structure=numpy.ones((isolated, isolated)))
        if fill:
            mask = scipy.ndimage.binary_fill_holes(mask)
        if mask.sum() / mask.size > small:
            masks.append(mask)
    return numpy.stack(masks) if masks else numpy.zeros((1,) + reduced.shape[:2])


@pytest.mark.parametrize("segments, isolated, small, fill", [(6, 0, 0.0, False), (3, 2, 0.05, True),
                                                              (16, 3, 0.0, False), (1, 0, 0.0, True)])
def test_mask_from_segmentation_equals_pil_quantize_and_scipy(registry, segments, isolated, small, fill):
    images = pictures(batch=2, height=24, width=32, seed=3)
    out = call(registry, "MaskFromSegmentation", image=images, segments=segments, remove_isolated_pixels=isolated,
               remove_small_masks=small, fill_holes=fill)
    want = reference_segments(images[0], segments, isolated, small, fill)
    assert out.dtype == torch.float32 and numpy.array_equal(out.numpy(), want.astype(numpy.float32))


@pytest.mark.parametrize("side", [1, 2, 3, 4, 7, 31, 32])
def test_square_opening_by_a_row_and_a_column_equals_scipys_opening_by_the_square(side):
    from nodes.pack_nodes_essentials_misc import square_opening
    rng = numpy.random.default_rng(side)
    # blobs of several sizes, touching the borders, so the opening removes some and keeps others
    mask = scipy.ndimage.gaussian_filter(rng.random((90, 123)), 2 + side / 4) > 0.5
    want = scipy.ndimage.binary_opening(mask, structure=numpy.ones((side, side)))
    assert side == 1 or not numpy.array_equal(want, mask)
    assert numpy.array_equal(square_opening(mask, side), want)


def test_mask_from_segmentation_declares_segments_masks_and_stops_when_interrupted(registry):
    """The estimate counts `segments` masks of the image's size, so limits refuse a big request
    before it runs; an interrupt stops it between colours."""
    import threading
    from graphflow import context
    from graphflow.resource_limits import RunLimits
    from tests.test_pack_nodes_kj import empty_image, refused
    segmentation = lambda segments: {"type": "MaskFromSegmentation", "inputs": {  # noqa: E731
        "image": ["1", 0], "segments": segments}}
    assert refused(registry, [empty_image(512, 512), segmentation(16)], RunLimits(max_batch=8)) == {"2"}
    assert refused(registry, [empty_image(512, 512), segmentation(8)], RunLimits(max_batch=8)) == set()
    huge = RunLimits(ram_bytes=2 * 2**30, device_bytes=2 * 2**30)  # 16 masks of 8192^2 take 4 GiB
    assert "2" in refused(registry, [empty_image(8192, 8192), segmentation(16)], huge)
    ctx = context.NodeContext("run", "1", "MaskFromSegmentation", emit=lambda event: None,
                              interrupt=threading.Event())
    ctx.interrupt.set()
    token = context._current.set(ctx)
    try:
        with pytest.raises(context.Interrupted):
            call(registry, "MaskFromSegmentation", image=pictures(), remove_isolated_pixels=3)
    finally:
        context._current.reset(token)


def test_mask_from_segmentation_of_a_two_colour_picture(registry):
    """A red square with a black hole on a blue ground: three colours, three masks; fill_holes fills
    each mask's holes; remove_small_masks above the hole's share drops it; nothing kept gives one empty mask."""
    image = torch.zeros((1, 16, 16, 3))
    image[..., 2] = 1.0
    image[0, 4:12, 4:12] = torch.tensor([1.0, 0.0, 0.0])
    image[0, 7:9, 7:9] = 0.0
    masks = call(registry, "MaskFromSegmentation", image=image, segments=3)
    assert sorted(m.sum().item() for m in masks) == [4, 60, 256 - 64]
    filled = call(registry, "MaskFromSegmentation", image=image, segments=3, fill_holes=True,
                  remove_small_masks=4 / 256)
    # the black hole (4 pixels, not more than 4/256) is dropped; the red square, filled, is whole, and
    # so is the blue ground, whose hole was the square
    assert sorted(m.sum().item() for m in filled) == [64, 256]
    empty = call(registry, "MaskFromSegmentation", image=image, segments=3, remove_small_masks=1.0)
    assert empty.shape == (1, 16, 16) and empty.sum() == 0
    with pytest.raises(NodeInputError) as err:
        call(registry, "MaskFromSegmentation", image=pictures(channels=1))
    assert err.value.input == "image"


def test_select_helpers_read_their_switches_from_a_ui_save_in_comfyuis_order(registry):
    """The pack's UI saves one boolean per sampler / scheduler, in ComfyUI's list order."""
    samplers = [name in ("euler", "dpmpp_2m", "uni_pc") for name in SAMPLER_NAMES]
    schedulers = [name in ("simple", "beta") for name in SCHEDULER_NAMES]
    nodes = [ui_node(1, "SamplerSelectHelper+", samplers, outputs=[("STRING", "STRING", [])]),
             ui_node(2, "SchedulerSelectHelper+", schedulers, outputs=[("STRING", "STRING", [])])]
    workflow, values = run(registry, ui_graph(nodes), ["1", "2"])
    assert values["1"][0] == "euler, dpmpp_2m, uni_pc"
    assert values["2"][0] == "simple, beta"
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[1] == samplers and saved[2] == schedulers
    none = call(registry, "SchedulerSelectHelper")
    assert none == ""


@pytest.mark.parametrize("node_type, names, kind", [("SamplerSelectHelper+", SAMPLER_NAMES, "sampler"),
                                                     ("SchedulerSelectHelper+", SCHEDULER_NAMES, "scheduler")])
@pytest.mark.parametrize("change", [-3, 1])
def test_select_helpers_refuse_a_ui_save_from_a_comfyui_with_another_list(registry, node_type, names, kind, change):
    """A save from a ComfyUI with 3 fewer samplers (before seeds_3, sa_solver, sa_solver_pece), or
    one more, can't be read by place: its switches would land on other names. Refused, naming the node."""
    from graphflow.comfy_format import ui_to_api
    from graphflow.workflow import WorkflowFormatError
    switches = [name in (names[0], names[-1]) for name in names]
    switches = switches[:-4] + switches[-1:] if change < 0 else switches + [False]
    nodes = [ui_node(7, node_type, switches, outputs=[("STRING", "STRING", [])])]
    with pytest.raises(WorkflowFormatError) as err:
        ui_to_api(ui_graph(nodes), registry)
    [problem] = err.value.problems
    assert problem.node_id == "7" and problem.node_type == node_type
    assert f"{len(switches)} {kind}s" in problem.message and str(len(names)) in problem.message


def test_api_prompt_with_the_packs_classes_runs_and_exports_back(registry):
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 1,
                                                          "color": 0x3366CC}},
             "2": {"class_type": "ImageSmartSharpen+", "inputs": {"image": ["1", 0], "noise_radius": 5,
                                                                  "preserve_edges": 0.5, "sharpen": 3.0, "ratio": 0.4}},
             "3": {"class_type": "MaskFromSegmentation+", "inputs": {"image": ["2", 0], "segments": 4,
                                                                     "remove_isolated_pixels": 0,
                                                                     "remove_small_masks": 0.0, "fill_holes": False}},
             "4": {"class_type": "SamplerSelectHelper+", "inputs": {name: name == "ddim" for name in SAMPLER_NAMES}}}
    workflow, values = run(registry, graph, ["2", "3", "4"])
    flat = torch.tensor([0x33, 0x66, 0xCC]) / 255
    assert torch.allclose(values["2"][0], flat.expand(1, 24, 32, 3), atol=1e-5)  # a flat picture stays flat
    assert values["3"][0].shape == (1, 24, 32) and values["3"][0].sum() == 24 * 32
    assert values["4"][0] == "ddim"
    exported = export_api(workflow, registry)
    assert exported["2"] == graph["2"] and exported["3"] == graph["3"] and exported["4"] == graph["4"]


def test_guidance_timestepping_sets_the_cfg_inside_its_window_only():
    """The CFG function against the formula uncond + (cond - uncond) x scale, scale = value for
    sigma_end < sigma <= sigma_start, the sampler's cfg elsewhere; no negative counts as 0."""
    from types import SimpleNamespace
    from graphflow.sampling.cfg_patches import timestep_window_cfg
    cond, uncond = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    model = SimpleNamespace(options={"cfg_rescale": 0.7})
    patched = timestep_window_cfg(model, 2.5, sigma_start=5.0, sigma_end=1.0)
    assert "cfg_rescale" not in patched.options and not hasattr(model, "cfg_function")  # one slot; input kept
    guide = patched.cfg_function
    for sigma, scale in ((6.0, 7.0), (5.0, 2.5), (3.0, 2.5), (1.0, 7.0), (0.5, 7.0)):
        args = {"cond_denoised": cond, "uncond_denoised": uncond, "cond_scale": 7.0,
                "sigma": torch.full((2,), sigma)}
        assert torch.allclose(guide(args), uncond + (cond - uncond) * scale)
    no_negative = {"cond_denoised": cond, "uncond_denoised": None, "cond_scale": 1.0, "sigma": torch.full((2,), 3.0)}
    assert torch.allclose(guide(no_negative), 2.5 * cond)


def test_guidance_timestepping_over_the_whole_run_is_ksampler_at_its_value(registry, tmp_folders):
    """A UI save: Guidance Timestep from 0 to 1 (every sigma) with value 3 equals KSampler at cfg 3;
    a window from 1 to 1 (no sigma) leaves KSampler's cfg 6."""
    from graphflow.testing import write_checkpoint
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    model_out = ("MODEL", "MODEL", [1, 2, 3])
    nodes = [ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                     outputs=[model_out, ("CLIP", "CLIP", [4, 5]), ("VAE", "VAE", [])]),
             ui_node(2, "CLIPTextEncode", ["a fox"], [("clip", "CLIP", 4, False)],
                     [("CONDITIONING", "CONDITIONING", [6, 8, 10])]),
             ui_node(3, "CLIPTextEncode", [""], [("clip", "CLIP", 5, False)],
                     [("CONDITIONING", "CONDITIONING", [7, 9, 11])]),
             ui_node(4, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT", [12, 13, 14])]),
             ui_node(5, "GuidanceTimestepping+", [3.0, 0.0, 1.0], [("model", "MODEL", 1, False)],
                     [("MODEL", "MODEL", [15])]),
             ui_node(6, "GuidanceTimestepping+", [3.0, 1.0, 1.0], [("model", "MODEL", 2, False)],
                     [("MODEL", "MODEL", [16])])]
    links = [[1, 1, 0, 5, 0, "MODEL"], [2, 1, 0, 6, 0, "MODEL"], [3, 1, 0, 9, 0, "MODEL"],
             [4, 1, 1, 2, 0, "CLIP"], [5, 1, 1, 3, 0, "CLIP"]]
    sampler_inputs = lambda model, pos, neg, latent: [("model", "MODEL", model, False),  # noqa: E731
                                                       ("positive", "CONDITIONING", pos, False),
                                                       ("negative", "CONDITIONING", neg, False),
                                                       ("latent_image", "LATENT", latent, False)]
    for node_id, model_link, cfg, pos, neg, latent in ((7, 15, 6.0, 6, 7, 12), (8, 16, 6.0, 8, 9, 13),
                                                      (9, 3, 3.0, 10, 11, 14)):
        nodes.append(ui_node(node_id, "KSampler", [5, "fixed", 4, cfg, "euler", "normal", 1.0],
                             sampler_inputs(model_link, pos, neg, latent), [("LATENT", "LATENT", [])]))
    links += [[15, 5, 0, 7, 0, "MODEL"], [16, 6, 0, 8, 0, "MODEL"]]
    links += [[6, 2, 0, 7, 1, "CONDITIONING"], [7, 3, 0, 7, 2, "CONDITIONING"], [8, 2, 0, 8, 1, "CONDITIONING"],
              [9, 3, 0, 8, 2, "CONDITIONING"], [10, 2, 0, 9, 1, "CONDITIONING"], [11, 3, 0, 9, 2, "CONDITIONING"],
              [12, 4, 0, 7, 3, "LATENT"], [13, 4, 0, 8, 3, "LATENT"], [14, 4, 0, 9, 3, "LATENT"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["7", "8", "9"])
    whole, never, at_three = (values[k][0]["samples"] for k in ("7", "8", "9"))
    assert torch.allclose(whole, at_three, atol=1e-5)
    assert not torch.allclose(never, at_three, atol=1e-3)
    plain = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a fox"}},
             "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
             "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                       "latent_image": ["4", 0], "seed": 5, "steps": 4, "cfg": 6.0,
                                                       "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}}}
    _, plain_values = run(registry, plain, ["5"])
    assert torch.allclose(never, plain_values["5"][0]["samples"], atol=1e-5)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[5] == [3.0, 0.0, 1.0] and saved[6] == [3.0, 1.0, 1.0]
    assert export_api(workflow, registry)["5"] == {"class_type": "GuidanceTimestepping+", "inputs": {
        "model": ["1", 0], "value": 3.0, "start_at": 0.0, "end_at": 1.0}}


def snr_shift(shift, t):
    return shift * t / (1 + (shift - 1) * t)


def pack_normal_sigmas(shift, cut_off, shift_multiplier, steps, sgm=False):
    """ComfyUI's normal scheduler on the pack's model sampling, written out: a sigma table at the
    plain shift (its ends give the start and end timesteps), each step's sigma from its single
    timestep, shifted by shift x shift_multiplier at or below cut_off. sgm (sgm_uniform): steps + 1
    timesteps, the last dropped; else when the last timestep's sigma is 0 (ComfyUI's zero-terminal
    case) steps + 1 timesteps and no 0 appended."""
    table = snr_shift(shift, torch.arange(1, 1001, 1) / 1000)
    start, end = float(table[-1]) * 1000, float(table[0]) * 1000

    def sigma(t):
        step_shift = shift * shift_multiplier if float(t) / 1000 <= cut_off else shift
        return float(snr_shift(step_shift, torch.as_tensor(t) / 1000))
    if sgm:
        return torch.tensor([sigma(t) for t in torch.linspace(start, end, steps + 1)[:-1]] + [0.0])
    if abs(sigma(end)) <= 1e-5:
        return torch.tensor([sigma(t) for t in torch.linspace(start, end, steps + 1)])
    return torch.tensor([sigma(t) for t in torch.linspace(start, end, steps)] + [0.0])


def test_model_sampling_sd3_advanced_shifts_the_normal_schedule_after_its_cut_off(registry, tmp_folders):
    from graphflow.testing import write_flow_checkpoint
    (tmp_folders.models / "diffusion_models").mkdir(exist_ok=True)
    write_flow_checkpoint(tmp_folders.models / "diffusion_models" / "sd3.safetensors", "sd3_medium",
                          components=("model",), prefixed=False)
    graph = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "sd3.safetensors", "weight_dtype": "default"}},
             "2": {"class_type": "ModelSamplingSD3Advanced+", "inputs": {"model": ["1", 0], "shift": 3.0,
                                                                         "cut_off": 0.5, "shift_multiplier": 2.0}},
             "3": {"class_type": "BasicScheduler", "inputs": {"model": ["2", 0], "scheduler": "normal", "steps": 8,
                                                              "denoise": 1.0}},
             "4": {"class_type": "BasicScheduler", "inputs": {"model": ["2", 0], "scheduler": "simple", "steps": 8,
                                                              "denoise": 1.0}},
             "5": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 3.0}},
             "6": {"class_type": "BasicScheduler", "inputs": {"model": ["5", 0], "scheduler": "simple", "steps": 8,
                                                              "denoise": 1.0}},
             "7": {"class_type": "BasicScheduler", "inputs": {"model": ["2", 0], "scheduler": "sgm_uniform",
                                                              "steps": 7, "denoise": 1.0}}}
    workflow, values = run(registry, graph, ["3", "4", "6", "7"])
    assert torch.allclose(values["3"][0].float(), pack_normal_sigmas(3.0, 0.5, 2.0, 8), atol=1e-6)
    assert not torch.allclose(values["3"][0].float(), pack_normal_sigmas(3.0, 0.5, 1.0, 8), atol=1e-3)
    assert torch.allclose(values["7"][0].float(), pack_normal_sigmas(3.0, 0.5, 2.0, 7, sgm=True), atol=1e-6)
    assert not torch.allclose(values["7"][0].float(), pack_normal_sigmas(3.0, 0.5, 1.0, 7, sgm=True), atol=1e-3)
    assert torch.equal(values["4"][0], values["6"][0])  # the table keeps the plain shift
    assert export_api(workflow, registry)["2"] == graph["2"]
    with pytest.raises(NodeInputError) as err:
        call(registry, "ModelSamplingSD3Advanced", model=type("EpsModel", (), {"prediction": "eps"})())
    assert err.value.input == "model"


def test_model_sampling_sd3_advanced_refuses_shift_0_and_warns_of_a_zero_second_shift(registry, tmp_folders, caplog):
    """Shift 0: every sigma NaN (0 / 0), refused by name. Multiplier 0: the normal schedule's steps
    at or below cut_off are at sigma 0 (the pack's formula), with a warning."""
    from graphflow.testing import write_flow_checkpoint
    (tmp_folders.models / "diffusion_models").mkdir(exist_ok=True)
    write_flow_checkpoint(tmp_folders.models / "diffusion_models" / "sd3.safetensors", "sd3_medium",
                          components=("model",), prefixed=False)
    advanced = lambda shift, multiplier: {  # noqa: E731
        "class_type": "ModelSamplingSD3Advanced+", "inputs": {"model": ["1", 0], "shift": shift, "cut_off": 0.5,
                                                             "shift_multiplier": multiplier}}
    graph = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "sd3.safetensors", "weight_dtype": "default"}},
             "2": advanced(3.0, 0.0),
             "3": {"class_type": "BasicScheduler", "inputs": {"model": ["2", 0], "scheduler": "normal", "steps": 8,
                                                              "denoise": 1.0}}}
    with caplog.at_level("WARNING"):
        _, values = run(registry, graph, ["3"])
    sigmas = values["3"][0].float()
    assert torch.allclose(sigmas, pack_normal_sigmas(3.0, 0.5, 0.0, 8), atol=1e-6) and (sigmas[1:-1] == 0).any()
    assert any("shift_multiplier is 0" in r.getMessage() for r in caplog.records)
    assert torch.isnan(pack_normal_sigmas(0.0, 0.5, 2.0, 8)[:-1]).all()  # what shift 0 would give
    with pytest.raises(NodeInputError) as err:
        call(registry, "ModelSamplingSD3Advanced", model=object(), shift=0.0)
    assert err.value.input == "shift"
