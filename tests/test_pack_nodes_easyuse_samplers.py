"""ComfyUI-Easy-Use's further samplers (nodes/pack_nodes_easyuse_samplers.py) against the core
node chains they stand for: easy fullkSampler against KSampler (+ VAEEncode), easy
kSamplerInpainting against VAEEncodeForInpaint / GrowMask + InpaintModelConditioning /
DifferentialDiffusion + KSampler, easy kSamplerDownscaleUnet against PatchModelAddDownscale +
KSampler (its Auto factor by the pack's rule), easy preSamplingNoiseIn's latent against the slerp
and sigma formula written out here with torch, the clear errors, UI-format saves and API prompts
with the pack's class names, and export round trips."""

import math

import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_pysssss import models  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


LOADER = {"class_type": "easy comfyLoader", "inputs": {
    "ckpt_name": "tiny.safetensors", "vae_name": "Baked VAE", "clip_skip": -1, "lora_name": "None",
    "lora_model_strength": 1.0, "lora_clip_strength": 1.0, "resolution": "width x height (custom)",
    "empty_latent_width": 64, "empty_latent_height": 64, "positive": "a red cube", "negative": "blurry",
    "batch_size": 1}}
PRESAMPLING = {"class_type": "easy preSampling", "inputs": {
    "pipe": ["1", 0], "steps": 2, "cfg": 6.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
    "seed": 77}}
# the same model, prompts and latent as the loader above, through the core nodes
CORE = {"11": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "12": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["11", 1], "stop_at_clip_layer": -1}},
        "13": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["12", 0], "text": "a red cube"}},
        "14": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["12", 0], "text": "blurry"}},
        "15": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}


def _ksampler(model, latent, seed=77, steps=2, cfg=6.5, denoise=1.0, positive=("13", 0), negative=("14", 0)):
    return {"class_type": "KSampler", "inputs": {
        "model": list(model), "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": "euler",
        "scheduler": "normal", "positive": list(positive), "negative": list(negative), "latent_image": list(latent),
        "denoise": denoise}}


def _image_and_mask():
    """A 64x64 picture (grey with a brighter square) and a mask over its top-left 24x24 part."""
    return {"21": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                           "color": 0x808080}},
            "22": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 64, "height": 64}},
            "23": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 24, "height": 24}},
            "24": {"class_type": "MaskComposite", "inputs": {"destination": ["22", 0], "source": ["23", 0],
                                                             "x": 8, "y": 8, "operation": "add"}}}


def test_full_ksampler_ui_save_equals_ksampler_with_its_widgets_and_round_trips(registry, models):
    """easy fullkSampler as the editor saves it (the seed's control widget after it): its widgets'
    settings, not the pipe's, as KSampler samples; the pipe keeps its own settings."""
    nodes = [
        ui_node(1, "easy comfyLoader", ["tiny.safetensors", "Baked VAE", -1, "None", 1.0, 1.0,
                                        "width x height (custom)", 64, 64, "a red cube", "blurry", 1],
                [("optional_lora_stack", "LORA_STACK", None, False),
                 ("optional_controlnet_stack", "CONTROL_NET_STACK", None, False)],
                [("pipe", "PIPE_LINE", [1]), ("model", "MODEL", []), ("vae", "VAE", [])]),
        ui_node(2, "easy preSampling", [9, 3.0, "euler", "karras", 1.0, 5, "fixed"],
                [("pipe", "PIPE_LINE", 1, False), ("image_to_latent", "IMAGE", None, False),
                 ("latent", "LATENT", None, False)], [("pipe", "PIPE_LINE", [2])]),
        ui_node(3, "easy fullkSampler", [2, 6.5, "euler", "normal", 1.0, "Hide", 0, "ComfyUI", 77, "fixed"],
                [("pipe", "PIPE_LINE", 2, False), ("model", "MODEL", None, False),
                 ("positive", "CONDITIONING", None, False), ("negative", "CONDITIONING", None, False),
                 ("latent", "LATENT", None, False), ("vae", "VAE", None, False), ("clip", "CLIP", None, False),
                 ("xyPlot", "XYPLOT", None, False), ("image", "IMAGE", None, False),
                 ("seed", "INT", None, True)],
                [(n, t, []) for n, t in (("pipe", "PIPE_LINE"), ("image", "IMAGE"), ("model", "MODEL"),
                                         ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                                         ("latent", "LATENT"), ("vae", "VAE"), ("clip", "CLIP"), ("seed", "INT"))]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "PIPE_LINE"], [2, 2, 0, 3, 0, "PIPE_LINE"]])
    pipe, images, model, positive, negative, latent, vae, clip, seed = run_graph(registry, graph, ["3"]).values["3"]
    core = {**CORE, "16": _ksampler(("11", 0), ("15", 0)),
            "17": {"class_type": "VAEDecode", "inputs": {"samples": ["16", 0], "vae": ["11", 2]}}}
    want = run_graph(registry, core, ["16", "17"]).values
    assert torch.allclose(latent["samples"], want["16"][0]["samples"], atol=1e-5)
    assert torch.allclose(images, want["17"][0], atol=1e-5)
    assert seed == 77 and pipe["seed"] == 77 and pipe["samples"] is latent
    assert pipe["loader_settings"]["steps"] == 9 and pipe["loader_settings"]["scheduler"] == "karras"
    assert model is pipe["model"] and vae is pipe["vae"] and clip is pipe["clip"]
    exported = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert exported[3]["type"] == "easy fullkSampler"
    assert exported[3]["widgets_values"] == [2, 6.5, "euler", "normal", 1.0, "Hide", 0, "ComfyUI", 77, "fixed"]


def test_full_ksampler_encodes_a_connected_image_and_takes_connected_conditionings(registry, models):
    """API prompt: an image (no latent) is VAE-encoded as the latent to start from and the
    connected positive replaces the pipe's, as KSampler on VAEEncode with that prompt gives."""
    graph = {"1": LOADER, "2": PRESAMPLING, **CORE, **_image_and_mask(),
             "3": {"class_type": "easy fullkSampler", "inputs": {
                 "pipe": ["2", 0], "steps": 3, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal",
                 "denoise": 0.6, "image_output": "None", "link_id": 0, "save_prefix": "ComfyUI", "seed": 9,
                 "positive": ["31", 0], "image": ["21", 0]}},
             "31": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["12", 0], "text": "a blue ball"}},
             "32": {"class_type": "VAEEncode", "inputs": {"pixels": ["21", 0], "vae": ["11", 2]}},
             "33": _ksampler(("11", 0), ("32", 0), seed=9, steps=3, cfg=4.0, denoise=0.6, positive=("31", 0))}
    values = run_graph(registry, graph, ["3", "33"]).values
    pipe, images, _, positive, *_ = values["3"]
    assert images is None  # image_output None: not decoded
    assert torch.allclose(pipe["samples"]["samples"], values["33"][0]["samples"], atol=1e-5)
    assert positive is pipe["positive"]
    back = export_api(parse_workflow(graph, registry), registry)
    assert back["3"]["class_type"] == "easy fullkSampler" and back["3"]["inputs"]["denoise"] == 0.6


def test_full_ksampler_on_an_advanced_pipe_takes_its_denoise_with_the_pipes_steps(registry, models):
    """The pack's common_ksampler(denoise, start_step, last_step): the schedule of `steps` at
    fullkSampler's denoise (BasicScheduler), cut at preSamplingAdvanced's last and first steps
    (SplitSigmas; leftover noise kept), sampled from the seed's noise (SamplerCustom)."""
    graph = {"1": LOADER, **CORE,
             "2": {"class_type": "easy preSamplingAdvanced", "inputs": {
                 "pipe": ["1", 0], "steps": 9, "cfg": 2.0, "sampler_name": "euler", "scheduler": "normal",
                 "start_at_step": 1, "end_at_step": 3, "add_noise": "enable (CPU)", "seed": 5,
                 "return_with_leftover_noise": "enable"}},
             "3": {"class_type": "easy fullkSampler", "inputs": {
                 "pipe": ["2", 0], "steps": 4, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal",
                 "denoise": 0.5, "image_output": "None", "link_id": 0, "save_prefix": "ComfyUI", "seed": 9}},
             "41": {"class_type": "BasicScheduler", "inputs": {"model": ["11", 0], "scheduler": "normal", "steps": 4,
                                                              "denoise": 0.5}},
             "42": {"class_type": "SplitSigmas", "inputs": {"sigmas": ["41", 0], "step": 3}},
             "43": {"class_type": "SplitSigmas", "inputs": {"sigmas": ["42", 0], "step": 1}},
             "44": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
             "45": {"class_type": "SamplerCustom", "inputs": {
                 "model": ["11", 0], "add_noise": True, "noise_seed": 9, "cfg": 4.0, "positive": ["13", 0],
                 "negative": ["14", 0], "sampler": ["44", 0], "sigmas": ["43", 1], "latent_image": ["15", 0]}}}
    values = run_graph(registry, graph, ["3", "41", "45"]).values
    assert len(values["41"][0]) == 5  # 4 steps of the 8-step schedule
    assert torch.allclose(values["3"][0]["samples"]["samples"], values["45"][0]["samples"], atol=1e-5)


def _inpaint_graph(additional, grow=6):
    return {"1": LOADER, **_image_and_mask(), **CORE,
            "2": {**PRESAMPLING, "inputs": {**PRESAMPLING["inputs"], "image_to_latent": ["21", 0]}},
            "3": {"class_type": "easy kSamplerInpainting", "inputs": {
                "pipe": ["2", 0], "grow_mask_by": grow, "image_output": "Hide", "link_id": 0,
                "save_prefix": "ComfyUI", "additional": additional, "mask": ["24", 0]}}}


def test_ksampler_inpainting_none_equals_vae_encode_for_inpaint_then_ksampler(registry, models):
    graph = {**_inpaint_graph("None", grow=4),
             "41": {"class_type": "VAEEncodeForInpaint", "inputs": {"pixels": ["21", 0], "vae": ["11", 2],
                                                                    "mask": ["24", 0], "grow_mask_by": 4}},
             "42": _ksampler(("11", 0), ("41", 0)),
             "43": {"class_type": "VAEDecode", "inputs": {"samples": ["42", 0], "vae": ["11", 2]}}}
    values = run_graph(registry, graph, ["3", "42", "43"]).values
    pipe, images, vae = values["3"]
    assert torch.allclose(pipe["samples"]["samples"], values["42"][0]["samples"], atol=1e-5)
    assert torch.allclose(images, values["43"][0], atol=1e-5)
    assert vae is pipe["vae"] and "noise_mask" in pipe["samples"]
    back = export_api(parse_workflow(graph, registry), registry)
    assert back["3"]["class_type"] == "easy kSamplerInpainting" and back["3"]["inputs"]["additional"] == "None"


@pytest.mark.parametrize("additional", ["InpaintModelCond", "Differential Diffusion"])
def test_ksampler_inpainting_model_conditioning_equals_the_core_chain(registry, models, additional):
    """InpaintModelCond: the mask grown (square corners) then InpaintModelConditioning; Differential
    Diffusion: the mask as it is and the model through DifferentialDiffusion."""
    mask = ["24", 0]
    model = ["11", 0]
    core = {}
    if additional == "InpaintModelCond":
        core["51"] = {"class_type": "GrowMask", "inputs": {"mask": ["24", 0], "expand": 6, "tapered_corners": False}}
        mask = ["51", 0]
    else:
        core["52"] = {"class_type": "DifferentialDiffusion", "inputs": {"model": ["11", 0]}}
        model = ["52", 0]
    core["53"] = {"class_type": "InpaintModelConditioning", "inputs": {
        "positive": ["13", 0], "negative": ["14", 0], "vae": ["11", 2], "pixels": ["21", 0], "mask": mask,
        "noise_mask": True}}
    core["54"] = _ksampler(model, ("53", 2), positive=("53", 0), negative=("53", 1))
    values = run_graph(registry, {**_inpaint_graph(additional), **core}, ["3", "53", "54"]).values
    pipe = values["3"][0]
    assert torch.allclose(pipe["samples"]["samples"], values["54"][0]["samples"], atol=1e-5)
    assert torch.equal(pipe["positive"][0][1]["concat_mask"], values["53"][0][0][1]["concat_mask"])


def test_ksampler_inpainting_refuses_what_is_not_built_in_and_a_missing_mask(registry, models):
    for additional in ("Fooocus Inpaint", "Brushnet Random + DD"):
        with pytest.raises(NodeInputError, match="not built in") as e:
            call(registry, "EasyKSamplerInpainting", pipe={}, additional=additional)
        assert e.value.input == "additional"
    with pytest.raises(NodeInputError, match="no mask") as e:
        call(registry, "EasyKSamplerInpainting", pipe={"samples": {"samples": torch.zeros(1, 4, 8, 8)}})
    assert e.value.input == "mask"
    with pytest.raises(NodeInputError, match="no images") as e:
        call(registry, "EasyKSamplerInpainting", pipe={"samples": {"samples": torch.zeros(1, 4, 8, 8)}},
             mask=torch.ones(1, 64, 64))
    assert e.value.input == "pipe"


def _downscale_graph(mode, width=64, **widgets):
    loader = {**LOADER, "inputs": {**LOADER["inputs"], "empty_latent_width": width}}
    inputs = {"pipe": ["2", 0], "downscale_mode": mode, "block_number": 1, "downscale_factor": 2.0,
              "start_percent": 0.0, "end_percent": 0.35, "downscale_after_skip": True,
              "downscale_method": "bicubic", "upscale_method": "bicubic", "image_output": "Hide", "link_id": 0,
              "save_prefix": "ComfyUI", **widgets}
    core = {**CORE, "15": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": 64,
                                                                          "batch_size": 1}}}
    return {"1": loader, "2": PRESAMPLING, "3": {"class_type": "easy kSamplerDownscaleUnet", "inputs": inputs},
            **core}


def _deep_shrink(factor, start=0.0, end=0.35, after_skip=True, method="bicubic"):
    return {"class_type": "PatchModelAddDownscale", "inputs": {
        "model": ["11", 0], "block_number": 1, "downscale_factor": factor, "start_percent": start,
        "end_percent": end, "downscale_after_skip": after_skip, "downscale_method": method,
        "upscale_method": "bicubic"}}


def test_ksampler_downscale_unet_custom_equals_patch_model_add_downscale(registry, models):
    graph = {**_downscale_graph("Custom", downscale_factor=1.5, end_percent=0.6, downscale_after_skip=False,
                                downscale_method="bilinear"),
             "61": _deep_shrink(1.5, end=0.6, after_skip=False, method="bilinear"),
             "62": _ksampler(("61", 0), ("15", 0)), "63": _ksampler(("11", 0), ("15", 0))}
    values = run_graph(registry, graph, ["3", "62", "63"]).values
    got = values["3"][0]["samples"]["samples"]
    assert torch.allclose(got, values["62"][0]["samples"], atol=1e-5)
    assert not torch.allclose(got, values["63"][0]["samples"], atol=1e-4)  # the patch did change the sampling
    back = export_api(parse_workflow(graph, registry), registry)
    assert back["3"]["class_type"] == "easy kSamplerDownscaleUnet" and back["3"]["inputs"]["end_percent"] == 0.6


def test_ksampler_downscale_unet_auto_shrinks_by_the_packs_rule(registry, models):
    """Auto: width / context_dim when over 1.75 (the longer side over context_dim), 0 to 0.35,
    after the skip, bicubic; a latent no wider than that samples with the model as it is."""
    model = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")[0]
    context_dim = model.unet.config.context_dim
    width = 8 * math.ceil(1.9 * context_dim / 8)  # over 1.75 context_dim
    graph = {**_downscale_graph("Auto", width=width), "61": _deep_shrink(width / context_dim),
             "62": _ksampler(("61", 0), ("15", 0))}
    values = run_graph(registry, graph, ["3", "62"]).values
    assert torch.allclose(values["3"][0]["samples"]["samples"], values["62"][0]["samples"], atol=1e-5)
    narrow = 8 * (context_dim // 8)
    graph = {**_downscale_graph("Auto", width=narrow), "63": _ksampler(("11", 0), ("15", 0))}
    graph["1"]["inputs"]["empty_latent_height"] = graph["15"]["inputs"]["height"] = narrow
    values = run_graph(registry, graph, ["3", "63"]).values
    assert torch.allclose(values["3"][0]["samples"]["samples"], values["63"][0]["samples"], atol=1e-5)


def _noise_in_formula(latent, seed, variation_seed, factor, sigma):
    """The pack's noise injection written out: seed's noise for every image, the variation seed's
    per image, slerped, times sigma."""
    b, c, h, w = latent.shape
    low = torch.randn((1, c, h, w), generator=torch.Generator().manual_seed(seed)).repeat(b, 1, 1, 1).reshape(b, -1)
    high = torch.randn((b, c, h, w), generator=torch.Generator().manual_seed(variation_seed)).reshape(b, -1)
    cos = (low / low.norm(dim=1, keepdim=True) * high / high.norm(dim=1, keepdim=True)).sum(1)
    omega = torch.arccos(cos)
    mixed = (torch.sin((1 - factor) * omega) / torch.sin(omega))[:, None] * low \
        + (torch.sin(factor * omega) / torch.sin(omega))[:, None] * high
    return latent + mixed.reshape(b, c, h, w) * sigma


def test_presampling_noise_in_adds_slerped_noise_then_ksampler_adds_none(registry, models):
    """UI save: loader -> easy preSamplingNoiseIn -> easy kSampler. The latent is the formula's
    (sigma: the normal schedule's first kept sigma less its last over SD1's 0.18215) and the
    sampler continues it without noise, as KSampler's denoise schedule with add_noise off."""
    from graphflow.sampling import compute_sigmas, model_sampling_for
    from graphflow.sampling.pipeline import sample
    nodes = [
        ui_node(1, "easy comfyLoader", ["tiny.safetensors", "Baked VAE", -1, "None", 1.0, 1.0,
                                        "width x height (custom)", 64, 64, "a red cube", "blurry", 2],
                [("optional_lora_stack", "LORA_STACK", None, False),
                 ("optional_controlnet_stack", "CONTROL_NET_STACK", None, False)],
                [("pipe", "PIPE_LINE", [1]), ("model", "MODEL", []), ("vae", "VAE", [])]),
        ui_node(2, "easy preSamplingNoiseIn", [0.3, 4, 5.0, "euler", "normal", 0.5, 11, "fixed"],
                [("pipe", "PIPE_LINE", 1, False), ("optional_noise_seed", "INT", None, False),
                 ("optional_latent", "LATENT", None, False)], [("pipe", "PIPE_LINE", [2])]),
        ui_node(3, "easy kSampler", ["Hide", 0, "ComfyUI"],
                [("pipe", "PIPE_LINE", 2, False), ("model", "MODEL", None, False)],
                [("pipe", "PIPE_LINE", []), ("image", "IMAGE", [])]),
        ui_node(4, "easy pipeOut", [], [("pipe", "PIPE_LINE", 3, False)],
                [(n, t, []) for n, t in (("pipe", "PIPE_LINE"), ("model", "MODEL"), ("pos", "CONDITIONING"),
                                         ("neg", "CONDITIONING"), ("latent", "LATENT"), ("vae", "VAE"),
                                         ("clip", "CLIP"), ("image", "IMAGE"), ("seed", "INT"))]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "PIPE_LINE"], [2, 2, 0, 3, 0, "PIPE_LINE"],
                             [3, 1, 0, 4, 0, "PIPE_LINE"]])
    values = run_graph(registry, graph, ["2", "3", "4"]).values
    noised, sampled = values["2"][0], values["3"][0]
    model = values["4"][1]
    sigmas = compute_sigmas(model_sampling_for(model), "normal", 4)
    start = round(4 - 4 * 0.5)
    sigma = float(sigmas[start] - sigmas[4]) / 0.18215
    want = _noise_in_formula(torch.zeros(2, 4, 8, 8), 11, 12, 0.3, sigma)
    assert torch.allclose(noised["samples"]["samples"], want, atol=1e-5)
    assert noised["loader_settings"]["add_noise"] == "disable"
    continued = sample(model, 11, 4, 5.0, "euler", "normal", noised["positive"], noised["negative"],
                       noised["samples"], denoise=0.5, add_noise=False)
    assert torch.allclose(sampled["samples"]["samples"], continued["samples"], atol=1e-5)
    exported = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert exported[2]["widgets_values"] == [0.3, 4, 5.0, "euler", "normal", 0.5, 11, "fixed"]


def test_presampling_noise_in_masks_the_noise_and_grows_the_mask(registry, models):
    """With a noise mask the noise goes only where it is set, the mask grows 5 pixels (cross
    steps, as Grow Mask with tapered corners) and optional_noise_seed seeds the variation."""
    pipe = run_graph(registry, {"1": LOADER}, ["1"]).values["1"][0]
    mask = torch.zeros(1, 8, 8)
    mask[:, 2:5, 3:6] = 1.0
    latent = {"samples": torch.zeros(1, 4, 8, 8), "noise_mask": mask}
    got = call(registry, "EasyPreSamplingNoiseIn", pipe=pipe, factor=0.5, steps=3, seed=4, optional_noise_seed=40,
               optional_latent=latent)["samples"]
    from graphflow.sampling import compute_sigmas, model_sampling_for
    sigma = float(compute_sigmas(model_sampling_for(pipe["model"]), "normal", 3)[0]) / 0.18215
    want = _noise_in_formula(latent["samples"], 4, 40, 0.5, sigma) * mask
    assert torch.allclose(got["samples"], want, atol=1e-5)
    grown = call(registry, "GrowMask", mask=mask, expand=5, tapered_corners=True)
    assert torch.equal(got["noise_mask"], grown)
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyPreSamplingNoiseIn", pipe={"model": pipe["model"]})
    assert e.value.input == "optional_latent"


def test_presampling_noise_in_leaves_torchs_random_state_alone_and_names_bad_inputs(registry, models):
    """Its noise comes from generators of its own: the process-wide generator (a server's shared
    random state) is as it was; a seed torch can't take and a latent that isn't 4-D are named."""
    pipe = run_graph(registry, {"1": LOADER}, ["1"]).values["1"][0]
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    call(registry, "EasyPreSamplingNoiseIn", pipe=pipe, steps=3, seed=4, optional_noise_seed=40)
    assert torch.equal(torch.get_rng_state(), state)
    for seed in (2 ** 64, -1, 1.5):
        with pytest.raises(NodeInputError, match="2\\*\\*64") as e:
            call(registry, "EasyPreSamplingNoiseIn", pipe=pipe, steps=3, optional_noise_seed=seed)
        assert e.value.input == "optional_noise_seed"
    call(registry, "EasyPreSamplingNoiseIn", pipe=pipe, steps=3, optional_noise_seed=2 ** 64 - 1)  # torch's most
    video = {"samples": torch.zeros(1, 4, 2, 8, 8)}
    with pytest.raises(NodeInputError, match="1, 4, 2, 8, 8") as e:
        call(registry, "EasyPreSamplingNoiseIn", pipe=pipe, steps=3, optional_latent=video)
    assert e.value.input == "optional_latent"
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyPreSamplingNoiseIn", pipe={**pipe, "samples": {"samples": torch.zeros(4, 8, 8)}}, steps=3)
    assert e.value.input == "pipe"


def test_controlnet_stack_ui_save_into_the_loader_equals_chained_apply_controlnet_advanced(registry, models):
    """easy controlnetStack as the editor saves it (advanced, two rows, the third unused) into easy
    comfyLoader's optional_controlnet_stack: the loader's conditionings are those of two
    ControlNetApplyAdvanced in turn; toggle off gives no stack."""
    from graphflow.testing import write_controlnet
    (models.models / "controlnet").mkdir(exist_ok=True)
    write_controlnet(models.models / "controlnet" / "cn.safetensors", "sd1")
    widgets = [True, "advanced", 2, "cn.safetensors", 0.7, 0.1, 0.8, 1.0, "cn.safetensors", 0.4, 0.0, 0.5, 1.0,
               "None", 1.0, 0.0, 1.0, 1.0]
    nodes = [
        ui_node(1, "EmptyImage", [64, 64, 1, 0xFFFFFF], [], [("IMAGE", "IMAGE", [1, 2])]),
        ui_node(2, "easy controlnetStack", widgets,
                [("optional_controlnet_stack", "CONTROL_NET_STACK", None, False), ("image_1", "IMAGE", 1, False),
                 ("image_2", "IMAGE", 2, False), ("image_3", "IMAGE", None, False)],
                [("controlnet_stack", "CONTROL_NET_STACK", [3])]),
        ui_node(3, "easy comfyLoader", ["tiny.safetensors", "Baked VAE", -1, "None", 1.0, 1.0,
                                        "width x height (custom)", 64, 64, "a red cube", "blurry", 1],
                [("optional_lora_stack", "LORA_STACK", None, False),
                 ("optional_controlnet_stack", "CONTROL_NET_STACK", 3, False)],
                [("pipe", "PIPE_LINE", [4]), ("model", "MODEL", []), ("vae", "VAE", [])]),
        ui_node(4, "easy pipeOut", [], [("pipe", "PIPE_LINE", 4, False)],
                [(n, t, []) for n, t in (("pipe", "PIPE_LINE"), ("model", "MODEL"), ("pos", "CONDITIONING"),
                                         ("neg", "CONDITIONING"), ("latent", "LATENT"), ("vae", "VAE"),
                                         ("clip", "CLIP"), ("image", "IMAGE"), ("seed", "INT"))]),
    ]
    links = [[1, 1, 0, 2, 1, "IMAGE"], [2, 1, 0, 2, 2, "IMAGE"], [3, 2, 0, 3, 1, "CONTROL_NET_STACK"],
             [4, 3, 0, 4, 0, "PIPE_LINE"]]
    graph = ui_graph(nodes, links)
    values = run_graph(registry, graph, ["2", "4"]).values
    stack = values["2"][0]
    assert [row[:5] for row in stack] == [("cn.safetensors", 0.7, 0.1, 0.8, 1.0),
                                          ("cn.safetensors", 0.4, 0.0, 0.5, 1.0)]
    core = {**CORE, "31": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                                 "color": 0xFFFFFF}},
            "32": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}},
            "33": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                "positive": ["13", 0], "negative": ["14", 0], "control_net": ["32", 0], "image": ["31", 0],
                "strength": 0.7, "start_percent": 0.1, "end_percent": 0.8, "vae": ["11", 2]}},
            "34": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                "positive": ["33", 0], "negative": ["33", 1], "control_net": ["32", 0], "image": ["31", 0],
                "strength": 0.4, "start_percent": 0.0, "end_percent": 0.5, "vae": ["11", 2]}},
            "35": _ksampler(("11", 0), ("15", 0), positive=("34", 0), negative=("34", 1))}
    want = run_graph(registry, core, ["34", "35"]).values
    pos, neg = values["4"][2], values["4"][3]
    assert len(pos) == len(want["34"][0]) and set(pos[0][1]) == set(want["34"][0][0][1])
    # the same conditionings sample to the same latent
    got = call(registry, "KSampler", model=values["4"][1], seed=77, steps=2, cfg=6.5, sampler_name="euler",
               scheduler="normal", positive=pos, negative=neg, latent_image=values["4"][4])
    assert torch.allclose(got["samples"], want["35"][0]["samples"], atol=1e-5)
    exported = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert exported[2]["type"] == "easy controlnetStack" and exported[2]["widgets_values"] == widgets
    assert call(registry, "EasyControlnetStack", toggle=False, controlnet_1="cn.safetensors") is None
    simple = call(registry, "EasyControlnetStack", toggle=True, mode="simple", controlnet_1="cn.safetensors",
                  start_percent_1=0.3, image_1=torch.zeros(1, 8, 8, 3))
    assert simple[0][2:4] == (0.0, 1.0)  # simple mode: the whole sampling
    with pytest.raises(NodeInputError, match="soft weights") as e:
        from nodes.pack_nodes_easyuse_pipe import stacked_controlnets
        stacked_controlnets([("cn.safetensors", 1.0, 0.0, 1.0, 0.5, torch.zeros(1, 8, 8, 3), True)], [], [], None)
    assert e.value.input == "optional_controlnet_stack"


def test_hires_fix_equals_upscale_model_then_image_scale_then_vae_encode(registry, models):
    """API prompt: the pipe's images through the upscale model (192-pixel tiles, 8 overlap), by
    percentage to a multiple of 8, then encoded: as UpscaleModelLoader + ImageUpscaleWithModel +
    ImageScale + VAEEncode; the pack's rounding of sizes; no image named."""
    from graphflow.testing import write_esrgan
    from nodes.pack_nodes_easyuse_samplers import nearest_multiple_of_8
    (models.models / "upscale_models").mkdir(exist_ok=True)
    write_esrgan(models.models / "upscale_models" / "x2.safetensors", scale=2)
    graph = {"1": LOADER, **_image_and_mask(), **CORE,
             "2": {**PRESAMPLING, "inputs": {**PRESAMPLING["inputs"], "image_to_latent": ["21", 0]}},
             "3": {"class_type": "easy hiresFix", "inputs": {
                 "model_name": "x2.safetensors", "rescale_after_model": True, "rescale_method": "bilinear",
                 "rescale": "by percentage", "percent": 70, "width": 1024, "height": 1024, "longer_side": 1024,
                 "crop": "disabled", "image_output": "Hide", "link_id": 0, "save_prefix": "ComfyUI",
                 "pipe": ["2", 0]}},
             "71": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "x2.safetensors"}},
             "72": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["71", 0], "image": ["21", 0],
                                                                      "tile_size": 192, "overlap": 8}},
             "73": {"class_type": "ImageScale", "inputs": {"image": ["72", 0], "upscale_method": "bilinear",
                                                           "width": 88, "height": 88, "crop": "disabled"}},
             "74": {"class_type": "VAEEncode", "inputs": {"pixels": ["73", 0], "vae": ["11", 2]}}}
    values = run_graph(registry, graph, ["3", "73", "74"]).values
    pipe, image, latent = values["3"]
    assert nearest_multiple_of_8(0.7 * 128) == 88  # 89.6 -> 89 -> 88
    assert torch.equal(image, values["73"][0])
    assert torch.allclose(latent["samples"], values["74"][0]["samples"], atol=1e-6)
    assert pipe["samples"] is latent and pipe["images"] is image and pipe["seed"] == 77
    assert [nearest_multiple_of_8(v) for v in (3, 12, 11.9, 100, 101)] == [8, 16, 8, 104, 104]
    back = export_api(parse_workflow(graph, registry), registry)
    assert back["3"]["class_type"] == "easy hiresFix" and back["3"]["inputs"]["rescale_after_model"] is True
    vae = run_graph(registry, {"11": CORE["11"]}, ["11"]).values["11"][2]
    longer = call(registry, "EasyHiresFix", model_name="x2.safetensors", rescale="to longer side - maintain aspect",
                  longer_side=100, rescale_method="nearest-exact", image_output="Hide",
                  image=torch.rand(1, 24, 40, 3), vae=vae)
    assert longer[1].shape[1:3] == (nearest_multiple_of_8(104 * 48 / 80), 104)
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyHiresFix", model_name="x2.safetensors", pipe={"vae": object()})
    assert e.value.input == "image"


def test_sd_turbo_presampling_and_sampler_equal_sampler_custom_with_sd_turbo_scheduler(registry, models):
    """UI save: loader -> easy preSamplingSdTurbo (its seed's control widget after it) -> easy
    kSamplerSDTurbo, as SDTurboScheduler + KSamplerSelect + SamplerCustom + VAEDecode give it;
    the gradual-latent upscaling runs are refused naming start_step."""
    widgets = [3, 1.5, "euler_ancestral", 1.0, 1.0, 2.0, 5, 15, 3, 3, 0.5, 0.0, 21, "fixed"]
    nodes = [
        ui_node(1, "easy comfyLoader", ["tiny.safetensors", "Baked VAE", -1, "None", 1.0, 1.0,
                                        "width x height (custom)", 64, 64, "a red cube", "blurry", 1],
                [("optional_lora_stack", "LORA_STACK", None, False),
                 ("optional_controlnet_stack", "CONTROL_NET_STACK", None, False)],
                [("pipe", "PIPE_LINE", [1]), ("model", "MODEL", []), ("vae", "VAE", [])]),
        ui_node(2, "easy preSamplingSdTurbo", widgets, [("pipe", "PIPE_LINE", 1, False)],
                [("pipe", "PIPE_LINE", [2])]),
        ui_node(3, "easy kSamplerSDTurbo", ["Hide", 0, "ComfyUI"],
                [("pipe", "PIPE_LINE", 2, False), ("model", "MODEL", None, False)],
                [("pipe", "PIPE_LINE", []), ("image", "IMAGE", [])]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "PIPE_LINE"], [2, 2, 0, 3, 0, "PIPE_LINE"]])
    pipe, images = run_graph(registry, graph, ["3"]).values["3"]
    core = {**CORE, "81": {"class_type": "SDTurboScheduler", "inputs": {"model": ["11", 0], "steps": 3,
                                                                         "denoise": 1.0}},
            "82": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
            "83": {"class_type": "SamplerCustom", "inputs": {
                "model": ["11", 0], "add_noise": True, "noise_seed": 21, "cfg": 1.5, "positive": ["13", 0],
                "negative": ["14", 0], "sampler": ["82", 0], "sigmas": ["81", 0], "latent_image": ["15", 0]}},
            "84": {"class_type": "VAEDecode", "inputs": {"samples": ["83", 0], "vae": ["11", 2]}}}
    want = run_graph(registry, core, ["83", "84"]).values
    assert torch.allclose(pipe["samples"]["samples"], want["83"][0]["samples"], atol=1e-5)
    assert torch.allclose(images, want["84"][0], atol=1e-5)  # Hide decodes without showing
    assert pipe["seed"] == 21 and pipe["images"] is images
    exported = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert exported[2]["widgets_values"] == widgets and exported[3]["type"] == "easy kSamplerSDTurbo"
    loader_pipe = run_graph(registry, {"1": LOADER}, ["1"]).values["1"][0]
    with pytest.raises(NodeInputError, match="gradual") as e:
        call(registry, "EasyPreSamplingSdTurbo", pipe=loader_pipe, steps=6, sampler_name="euler_ancestral")
    assert e.value.input == "start_step"  # the default start_step 5 upscales at step 4 of 6
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyPreSamplingSdTurbo", pipe=loader_pipe, steps=2, sampler_name="dpmpp_2m_sde", eta=0.5)
    assert e.value.input == "eta"
    plain = call(registry, "EasyPreSamplingSdTurbo", pipe=loader_pipe, steps=6, sampler_name="euler")
    assert len(plain["loader_settings"]["sigmas"]) == 7
    with pytest.raises(NodeInputError, match="preSamplingSdTurbo") as e:
        call(registry, "EasyKSamplerSDTurbo", pipe=loader_pipe)
    assert e.value.input == "pipe"


def test_zero123_and_svd_loaders_equal_the_core_conditioning_nodes(registry, tmp_folders):
    """API prompts: easy zero123Loader as ImageOnlyCheckpointLoader + StableZero123_Conditioning,
    easy svdLoader (its resolution entry) as ImageOnlyCheckpointLoader + SVD_img2vid_Conditioning;
    the pipes carry seed 0 and the 1x1 placeholder image; an optional prompt needs clip_name."""
    from graphflow.testing import write_svd_checkpoint, write_zero123_checkpoint
    (tmp_folders.models / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_zero123_checkpoint(tmp_folders.models / "checkpoints" / "stable_zero123.safetensors")
    write_svd_checkpoint(tmp_folders.models / "checkpoints" / "tiny_svd.safetensors")
    image = {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 40, "batch_size": 1, "color": 0x4080C0}}
    graph = {
        "1": image,
        "2": {"class_type": "easy zero123Loader", "inputs": {
            "ckpt_name": "stable_zero123.safetensors", "vae_name": "Baked VAE", "init_image": ["1", 0],
            "empty_latent_width": 32, "empty_latent_height": 24, "batch_size": 2, "elevation": 10.0,
            "azimuth": 30.0}},
        "3": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "stable_zero123.safetensors"}},
        "4": {"class_type": "StableZero123_Conditioning", "inputs": {
            "clip_vision": ["3", 1], "init_image": ["1", 0], "vae": ["3", 2], "width": 32, "height": 24,
            "batch_size": 2, "elevation": 10.0, "azimuth": 30.0}},
        "5": {"class_type": "easy svdLoader", "inputs": {
            "ckpt_name": "tiny_svd.safetensors", "vae_name": "Baked VAE", "clip_name": "None", "init_image": ["1", 0],
            "resolution": "width x height (custom)", "empty_latent_width": 64, "empty_latent_height": 32,
            "video_frames": 3, "motion_bucket_id": 60, "fps": 8, "augmentation_level": 0.0}},
        "6": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "tiny_svd.safetensors"}},
        "7": {"class_type": "SVD_img2vid_Conditioning", "inputs": {
            "clip_vision": ["6", 1], "init_image": ["1", 0], "vae": ["6", 2], "width": 64, "height": 32,
            "video_frames": 3, "motion_bucket_id": 60, "fps": 8, "augmentation_level": 0.0}},
    }
    values = run_graph(registry, graph, ["2", "4", "5", "7"]).values
    for loader, core in (("2", "4"), ("5", "7")):
        pipe = values[loader][0]
        positive, negative, latent = values[core]
        assert torch.equal(pipe["positive"][0][0], positive[0][0])
        assert torch.equal(pipe["positive"][0][1]["concat_latent_image"], positive[0][1]["concat_latent_image"])
        assert torch.equal(pipe["negative"][0][0], negative[0][0])
        assert pipe["samples"]["samples"].shape == latent["samples"].shape
        assert pipe["seed"] == 0 and pipe["images"].shape == (1, 1, 1, 3)
    assert values["5"][0]["loader_settings"]["batch_size"] == 1
    back = export_api(parse_workflow(graph, registry), registry)
    assert back["2"]["class_type"] == "easy zero123Loader" and back["5"]["class_type"] == "easy svdLoader"
    graph["5"]["inputs"]["optional_positive"] = "a wave"
    with pytest.raises(AssertionError, match="clip_name"):
        run_graph(registry, graph, ["5"])


def _custom_core(guider, scheduler, extra=None):
    """The core custom-sampling chain on CORE's model, prompts and latent."""
    return {**CORE, **(extra or {}), "91": scheduler, "92": guider,
            "93": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
            "94": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
            "95": {"class_type": "SamplerCustomAdvanced", "inputs": {
                "noise": ["94", 0], "guider": ["92", 0], "sampler": ["93", 0], "sigmas": ["91", 0],
                "latent_image": ["15", 0]}}}


def test_presampling_custom_then_ksampler_equals_sampler_custom_advanced(registry, models):
    """UI save: easy preSamplingCustom (CFG guider, karrasADV) -> easy kSampler gives the
    latent of KarrasScheduler + CFGGuider + KSamplerSelect + RandomNoise + SamplerCustomAdvanced."""
    widgets = ["CFG", 5.0, 1.5, "euler", "karrasADV", 1.2, 3, 10.0, 0.1, 5.0, 19.9, 0.1, 0.001, False, 1.0,
               "enable (CPU)", 5, "fixed"]
    nodes = [
        ui_node(1, "easy comfyLoader", ["tiny.safetensors", "Baked VAE", -1, "None", 1.0, 1.0,
                                        "width x height (custom)", 64, 64, "a red cube", "blurry", 1],
                [("optional_lora_stack", "LORA_STACK", None, False),
                 ("optional_controlnet_stack", "CONTROL_NET_STACK", None, False)],
                [("pipe", "PIPE_LINE", [1]), ("model", "MODEL", []), ("vae", "VAE", [])]),
        ui_node(2, "easy preSamplingCustom", widgets,
                [("pipe", "PIPE_LINE", 1, False), ("image_to_latent", "IMAGE", None, False),
                 ("latent", "LATENT", None, False), ("optional_sampler", "SAMPLER", None, False),
                 ("optional_sigmas", "SIGMAS", None, False)], [("pipe", "PIPE_LINE", [2])]),
        ui_node(3, "easy kSampler", ["Hide", 0, "ComfyUI"],
                [("pipe", "PIPE_LINE", 2, False), ("model", "MODEL", None, False)],
                [("pipe", "PIPE_LINE", []), ("image", "IMAGE", [])]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "PIPE_LINE"], [2, 2, 0, 3, 0, "PIPE_LINE"]])
    pipe = run_graph(registry, graph, ["3"]).values["3"][0]
    core = _custom_core({"class_type": "CFGGuider", "inputs": {"model": ["11", 0], "positive": ["13", 0],
                                                               "negative": ["14", 0], "cfg": 5.0}},
                        {"class_type": "KarrasScheduler", "inputs": {"steps": 3, "sigma_max": 10.0, "sigma_min": 0.1,
                                                                     "rho": 5.0}})
    want = run_graph(registry, core, ["95"]).values["95"]
    assert torch.allclose(pipe["samples"]["samples"], want[0]["samples"], atol=1e-5)
    exported = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert exported[2]["widgets_values"] == widgets


def test_ksampler_custom_dual_cfg_and_the_packs_vp_eps(registry, models):
    """API prompt: DualCFG (the loader's negative as the middle prompt) over the normal schedule
    through easy kSamplerCustom, with its denoised output, as DualCFGGuider + BasicScheduler +
    SamplerCustomAdvanced; vp's eps_s is beta_min, as the pack stores it; the pack's
    inversed_euler is refused."""
    from nodes.pack_nodes_easyuse_samplers import custom_sigmas
    settings = {"guider": "DualCFG", "cfg": 4.0, "cfg_negative": 2.0, "sampler_name": "euler", "scheduler": "normal",
                "coeff": 1.2, "steps": 3, "sigma_max": 14.6, "sigma_min": 0.03, "rho": 7.0, "beta_d": 19.9,
                "beta_min": 0.1, "eps_s": 0.001, "flip_sigmas": False, "denoise": 1.0, "add_noise": "enable (CPU)",
                "seed": 5}
    graph = {"1": LOADER, "2": {"class_type": "easy preSamplingCustom", "inputs": {"pipe": ["1", 0], **settings}},
             "3": {"class_type": "easy kSamplerCustom", "inputs": {"pipe": ["2", 0], "image_output": "None",
                                                                  "link_id": 0, "save_prefix": "ComfyUI"}}}
    core = _custom_core({"class_type": "DualCFGGuider", "inputs": {
        "model": ["11", 0], "cond1": ["13", 0], "cond2": ["14", 0], "negative": ["14", 0], "cfg_conds": 4.0,
        "cfg_cond2_negative": 2.0, "style": "regular"}},
        {"class_type": "BasicScheduler", "inputs": {"model": ["11", 0], "scheduler": "normal", "steps": 3,
                                                    "denoise": 1.0}})
    values = run_graph(registry, {**graph, **core}, ["2", "3", "95"]).values
    pipe, output, denoised, image = values["3"]
    assert image is None and pipe["samples"] is output
    assert torch.allclose(output["samples"], values["95"][0]["samples"], atol=1e-5)
    assert torch.allclose(denoised["samples"], values["95"][1]["samples"], atol=1e-5)
    back = export_api(parse_workflow(graph, registry), registry)
    assert back["2"]["class_type"] == "easy preSamplingCustom" and back["2"]["inputs"]["guider"] == "DualCFG"
    presampled = values["2"][0]
    vp = custom_sigmas(presampled["model"], {**presampled["loader_settings"], "scheduler": "vp"})
    want = call(registry, "VPScheduler", steps=3, beta_d=19.9, beta_min=0.1, eps_s=0.1)
    assert torch.allclose(vp, want)
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyPreSamplingCustom", pipe=presampled, sampler_name="inversed_euler")
    assert e.value.input == "sampler_name"


@pytest.mark.parametrize("node", ["EasyFullKSampler", "EasyKSamplerInpainting", "EasyKSamplerDownscaleUnet",
                                  "EasyPreSamplingNoiseIn", "EasyPreSamplingSdTurbo", "EasyKSamplerSDTurbo",
                                  "EasyPreSamplingCustom", "EasyKSamplerCustom", "EasyHiresFix"])
def test_new_pipe_nodes_name_a_pipe_that_is_no_easy_use_pipe(registry, node):
    """Comfyroll's PIPE_LINE (a tuple) or a pipe whose loader_settings are no dict, named as pipe."""
    extra = {"model_name": "graphflow-demo-2x.safetensors"} if node == "EasyHiresFix" else {}
    for pipe in (("a", "tuple"), {"loader_settings": [1]}):
        with pytest.raises(NodeInputError) as e:
            call(registry, node, pipe=pipe, **extra)
        assert e.value.input == "pipe"


def test_flux_loader_equals_checkpoint_text_encode_and_zeroed_negative(registry, tmp_folders):
    """API prompt: easy fluxLoader on an all-in-one FLUX file gives CheckpointLoaderSimple +
    CLIPTextEncode's positive, ConditioningZeroOut's negative and a 16-channel empty latent."""
    from graphflow.testing import write_flow_checkpoint
    (tmp_folders.models / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_flow_checkpoint(tmp_folders.models / "checkpoints" / "flux_tiny.safetensors", "flux_dev")
    graph = {
        "1": {"class_type": "easy fluxLoader", "inputs": {
            "ckpt_name": "flux_tiny.safetensors", "vae_name": "Baked VAE", "lora_name": "None",
            "lora_model_strength": 1.0, "lora_clip_strength": 1.0, "resolution": "width x height (custom)",
            "empty_latent_width": 64, "empty_latent_height": 80, "positive": "a fox", "batch_size": 2}},
        "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux_tiny.safetensors"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": "a fox"}},
        "4": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["3", 0]}},
        "5": {"class_type": "easy preSampling", "inputs": {"pipe": ["1", 0], "steps": 1, "cfg": 1.0,
                                                           "sampler_name": "euler", "scheduler": "simple",
                                                           "denoise": 1.0, "seed": 3}},
        "6": {"class_type": "easy kSampler", "inputs": {"pipe": ["5", 0], "image_output": "None", "link_id": 0,
                                                        "save_prefix": "x"}},
    }
    values = run_graph(registry, graph, ["1", "3", "4", "6"]).values
    assert values["6"][0]["samples"]["samples"].shape == (2, 16, 10, 8)  # the pipe samples as a FLUX pipe
    pipe = values["1"][0]
    assert _same_conditioning(pipe["positive"], values["3"][0])
    assert _same_conditioning(pipe["negative"], values["4"][0]) and not pipe["negative"][0][0].any()
    assert pipe["samples"]["samples"].shape == (2, 16, 10, 8)
    back = export_api(parse_workflow(graph, registry), registry)
    assert back["1"]["class_type"] == "easy fluxLoader" and back["1"]["inputs"]["positive"] == "a fox"


def _same_conditioning(a, b):
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) for x, y in zip(a, b))


ROUND_TRIP_CLASSES = ["easy fullkSampler", "easy kSamplerInpainting", "easy kSamplerDownscaleUnet",
                      "easy preSamplingNoiseIn", "easy preSamplingSdTurbo", "easy kSamplerSDTurbo",
                      "easy preSamplingCustom", "easy kSamplerCustom", "easy hiresFix", "easy controlnetStack",
                      "easy zero123Loader", "easy svdLoader", "easy fluxLoader", "easy unSampler",
                      "easy cascadeLoader", "easy preSamplingCascade", "easy fullCascadeKSampler",
                      "easy cascadeKSampler"]
NEEDED = {"easy hiresFix": {"model_name": "x2.safetensors"}, "easy zero123Loader": {"ckpt_name": "z.safetensors"},
          "easy svdLoader": {"ckpt_name": "svd.safetensors"},
          "easy cascadeLoader": {"stage_c": "c.safetensors", "stage_b": "b.safetensors"}}


@pytest.mark.parametrize("class_type", ROUND_TRIP_CLASSES)
def test_each_new_class_round_trips_through_the_ui_format(registry, class_type):
    """An API prompt of the class with its widgets' defaults, exported to a UI save (the widgets
    in the pack's order, control widgets after seeds) and read back, gives the same inputs."""
    cls = next(c for c in registry._nodes.values()
               if any(class_type in alias.class_types for alias in ((c.comfy,) if not isinstance(
                   getattr(c, "comfy", None), tuple) else c.comfy) if alias))
    inputs = {name: spec.default for name, spec in cls.input_specs.items() if spec.widget and spec.default is not None}
    api = {"1": {"class_type": class_type, "inputs": {**inputs, **NEEDED.get(class_type, {})}}}
    workflow = parse_workflow(api, registry)
    ui = export_ui(workflow, registry)
    assert ui["nodes"][0]["type"] == class_type
    assert export_api(parse_workflow(ui, registry), registry)["1"]["inputs"] == export_api(workflow, registry)["1"][
        "inputs"]


def test_unsampler_runs_the_reversed_schedule_without_noise(registry, models):
    """API prompt: easy unSampler on the loader's pipe equals SamplerCustom (no noise) over
    KSampler's normal sigmas reversed, raised by 0.0001 and cut at steps - end_at_step; normalize
    gives mean 0, standard deviation 1."""
    from graphflow.sampling import compute_sigmas, model_sampling_for
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)) * 0.5}
    pipe = run_graph(registry, {"1": LOADER}, ["1"]).values["1"][0]
    got_pipe, got = call(registry, "EasyUnSampler", pipe=pipe, optional_latent=latent, steps=4, end_at_step=1,
                         cfg=2.0, sampler_name="euler", scheduler="normal", normalize="disable")
    sigmas = compute_sigmas(model_sampling_for(pipe["model"]), "normal", 4).flip(0) + 0.0001
    sampler = call(registry, "KSamplerSelect", sampler_name="euler")
    want, _ = call(registry, "SamplerCustom", model=pipe["model"], add_noise=False, noise_seed=0, cfg=2.0,
                   positive=pipe["positive"], negative=pipe["negative"], sampler=sampler, sigmas=sigmas[:4],
                   latent_image=latent)
    assert torch.allclose(got["samples"], want["samples"], atol=1e-5) and got_pipe["samples"] is got
    normalized = call(registry, "EasyUnSampler", pipe=pipe, optional_latent=latent, steps=4, end_at_step=1,
                      cfg=2.0, normalize="enable")[1]["samples"]
    assert abs(float(normalized.mean())) < 1e-5 and abs(float(normalized.std()) - 1.0) < 1e-5
    graph = {"1": LOADER, "2": {"class_type": "easy unSampler", "inputs": {
        "steps": 3, "end_at_step": 0, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
        "normalize": "disable", "pipe": ["1", 0]}}}
    assert run_graph(registry, graph, ["2"]).values["2"][1]["samples"].shape == (1, 4, 8, 8)
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyUnSampler", pipe={})
    assert e.value.input == "optional_model"


def test_cascade_loader_presampling_and_samplers_equal_the_core_stable_cascade_graph(registry, tmp_folders):
    """UI-free API prompt: easy cascadeLoader -> easy preSamplingCascade -> easy cascadeKSampler ->
    easy kSampler (Stage B with the same settings, as the pack's pipe carries them) equals
    UNETLoader x2 + CLIPLoader + VAELoader + StableCascade_EmptyLatentImage + KSampler (Stage C) +
    ConditioningZeroOut + StableCascade_StageB_Conditioning + KSampler (Stage B); easy
    fullCascadeKSampler gives the same Stage B pipe from its widgets."""
    from graphflow.testing import write_stable_cascade, write_stage_a, write_text_encoder
    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir(exist_ok=True)
    write_stable_cascade(m / "diffusion_models" / "stage_c.safetensors", "c", seed=1)
    write_stable_cascade(m / "diffusion_models" / "stage_b.safetensors", "b", seed=2)
    write_stage_a(m / "vae" / "stage_a.safetensors", seed=3)
    write_text_encoder(m / "text_encoders" / "clip_g.safetensors", "clip_g", seed=4, dtype=torch.float32)
    sampling = {"steps": 2, "cfg": 4.0, "sampler_name": "euler_ancestral", "scheduler": "simple", "denoise": 1.0}
    graph = {
        "1": {"class_type": "easy cascadeLoader", "inputs": {
            "stage_c": "stage_c.safetensors", "stage_b": "stage_b.safetensors", "stage_a": "stage_a.safetensors",
            "clip_name": "clip_g.safetensors", "lora_name": "None", "lora_model_strength": 1.0,
            "lora_clip_strength": 1.0, "resolution": "width x height (custom)", "empty_latent_width": 320,
            "empty_latent_height": 256, "compression": 42, "positive": "a fox in the snow", "negative": "",
            "batch_size": 1}},
        "2": {"class_type": "easy preSamplingCascade", "inputs": {
            "pipe": ["1", 0], "encode_vae_name": "None", "decode_vae_name": "None", "seed": 7, **sampling}},
        "3": {"class_type": "easy cascadeKSampler", "inputs": {"pipe": ["2", 0], "image_output": "Hide",
                                                              "link_id": 0, "save_prefix": "x"}},
        "4": {"class_type": "easy kSampler", "inputs": {"pipe": ["3", 0], "image_output": "Hide", "link_id": 0,
                                                        "save_prefix": "x"}},
        "5": {"class_type": "easy fullCascadeKSampler", "inputs": {
            "pipe": ["1", 0], "encode_vae_name": "None", "decode_vae_name": "None", "image_output": "Hide",
            "link_id": 0, "save_prefix": "x", "seed": 7, **sampling}},
        "11": {"class_type": "UNETLoader", "inputs": {"unet_name": "stage_c.safetensors", "weight_dtype": "default"}},
        "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "stage_b.safetensors", "weight_dtype": "default"}},
        "13": {"class_type": "CLIPLoader", "inputs": {"clip_name": "clip_g.safetensors", "type": "stable_cascade"}},
        "14": {"class_type": "VAELoader", "inputs": {"vae_name": "stage_a.safetensors"}},
        "15": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in the snow", "clip": ["13", 0]}},
        "16": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["13", 0]}},
        "17": {"class_type": "StableCascade_EmptyLatentImage",
               "inputs": {"width": 320, "height": 256, "compression": 42, "batch_size": 1}},
        "18": {"class_type": "KSampler", "inputs": {"model": ["11", 0], "positive": ["15", 0], "negative": ["16", 0],
                                                    "latent_image": ["17", 0], "seed": 7, **sampling}},
        "19": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["15", 0]}},
        "20": {"class_type": "StableCascade_StageB_Conditioning", "inputs": {"conditioning": ["19", 0],
                                                                             "stage_c": ["18", 0]}},
        "21": {"class_type": "KSampler", "inputs": {"model": ["12", 0], "positive": ["20", 0], "negative": ["19", 0],
                                                    "latent_image": ["17", 1], "seed": 7, **sampling}},
    }
    values = run_graph(registry, graph, ["1", "3", "4", "5", "18", "21"]).values
    loader_pipe, model_c, latent_c, vae = values["1"]
    assert latent_c["samples"].shape == (1, 16, 256 // 42, 320 // 42) and model_c is loader_pipe["model"][0]
    stage_b_pipe = values["3"][0]
    prior = stage_b_pipe["positive"][0][1]["stable_cascade_prior"]
    assert torch.allclose(prior["samples"] if isinstance(prior, dict) else prior, values["18"][0]["samples"],
                          atol=1e-5)
    assert stage_b_pipe["model"] is loader_pipe["model"][1] and stage_b_pipe["vae"] is vae
    assert torch.allclose(values["4"][0]["samples"]["samples"], values["21"][0]["samples"], atol=1e-5)
    full_pipe, model_b, latent_b = values["5"]
    assert model_b is loader_pipe["model"][1] and latent_b["samples"].shape == (1, 4, 64, 80)
    assert not full_pipe["negative"][0][0].any()
    back = export_api(parse_workflow(graph, registry), registry)
    assert [back[k]["class_type"] for k in "12345"] == ["easy cascadeLoader", "easy preSamplingCascade",
                                                        "easy cascadeKSampler", "easy kSampler",
                                                        "easy fullCascadeKSampler"]
    with pytest.raises(NodeInputError) as e:
        call(registry, "EasyCascadeKSampler", pipe={"samples": ({}, {}), "loader_settings": {}})
    assert e.value.input == "pipe"


@pytest.fixture
def run_with_limits():
    """Set the running server's policy limits, as the executor's node context gives them."""
    import threading

    from graphflow.context import NodeContext, _current
    tokens = []

    def use(limits):
        ctx = NodeContext("run", "1", "test", lambda event: None, threading.Event(), limits=limits)
        tokens.append(_current.set(ctx))
    yield use
    for token in reversed(tokens):
        _current.reset(token)


def test_hires_fix_refuses_what_the_model_would_make_too_large_before_it_runs(registry, tmp_folders,
                                                                              run_with_limits, monkeypatch):
    """The model's size (image x scale) is held to the server's max_pixels, a fixed cap and max_batch
    even when nothing is rescaled after it; the widget-set sizes are declared to the planner."""
    from graphflow.resource_limits import RunLimits, Size
    from graphflow.testing import write_esrgan
    from nodes import pack_nodes_easyuse_samplers as samplers
    (tmp_folders.models / "upscale_models").mkdir(exist_ok=True)
    write_esrgan(tmp_folders.models / "upscale_models" / "x2.safetensors", scale=2)
    ran = []
    monkeypatch.setattr(samplers.ImageUpscaleWithModel, "run", lambda node: ran.append(1))
    image = torch.rand(2, 24, 40, 3)  # the x2 model makes 2 x 80x48
    run_with_limits(RunLimits(max_pixels=80 * 48 - 1))
    for after in (False, True):
        with pytest.raises(NodeInputError, match="80x48") as e:
            call(registry, "EasyHiresFix", model_name="x2.safetensors", rescale_after_model=after,
                 image_output="Hide", image=image, vae=object())
        assert e.value.input == "model_name"
    run_with_limits(RunLimits(max_batch=1))
    with pytest.raises(NodeInputError, match="batch of 2") as e:
        call(registry, "EasyHiresFix", model_name="x2.safetensors", image_output="Hide", pipe={"vae": object(),
                                                                                               "images": image})
    assert e.value.input == "pipe"
    run_with_limits(RunLimits())
    monkeypatch.setattr(samplers, "HIRES_MAX_PIXELS", 80 * 48 - 1)  # the cap without a server limit
    with pytest.raises(NodeInputError, match="80x48"):
        call(registry, "EasyHiresFix", model_name="x2.safetensors", image_output="Hide", image=image, vae=object())
    assert ran == []  # refused before the model ran
    monkeypatch.setattr(samplers, "HIRES_MAX_PIXELS", 80 * 48)
    run_with_limits(RunLimits(max_pixels=80 * 48, max_batch=2))
    samplers.check_upscaled_size(image, 2, "image")  # at the limits: allowed

    estimate = registry.get("EasyHiresFix").estimate
    widgets = {"rescale_after_model": True, "rescale": "to Width/Height", "width": 16384, "height": 8192,
               "percent": 50, "longer_side": 100}
    assert estimate(widgets, {"image": Size(3, 24, 40)}).size == Size(3, 8192, 16384)
    assert estimate({**widgets, "rescale": "by percentage", "percent": 0}, {}).size == Size(1, 8192, 16384)
    longer = estimate({**widgets, "rescale": "to longer side - maintain aspect"}, {"image": Size(1, 24, 40)}).size
    assert longer == Size(1, samplers.nearest_multiple_of_8(104 * 24 / 40), 104)  # as run() sizes it (test above)
    assert estimate({**widgets, "rescale": "by percentage"}, {"image": Size(1, 24, 40)}).size is None  # the scale's
    assert estimate({**widgets, "rescale_after_model": False}, {"image": Size(1, 24, 40)}).size == Size(1, 24, 40)
