"""Inspire Pack's nodes built in (nodes/pack_nodes_inspire.py). The samplers' starting noise is
checked against the pack's prepare_noise rebuilt here from torch's seeded generators and the
mixing formulas (linear rescaled to unit variance; slerp from the angle computed with numpy); the
samplers against the core KSampler / KSamplerAdvanced for the settings that make them the same, and
through a sampler that leaves its input unchanged (eps = 0) so that the output is the starting
noise times one scale. UI-format saves as the pack's editor writes them, and API prompts."""

import math

import numpy as np
import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.sampling.noise import NoiseSource
from graphflow.testing import write_checkpoint
from graphflow.workflow import parse_workflow
from nodes import pack_nodes_inspire as inspire
from nodes.sampling import KSampler, KSamplerAdvanced
from sampling_fakes import FakeModel, prompt
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def models(tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    return tmp_folders


def randn(shape, seed):
    return torch.randn(shape, generator=torch.manual_seed(seed))


def linear_mix(a, b, s):
    return ((1 - s) * a + s * b) / math.sqrt((1 - s) ** 2 + s ** 2)


def slerp_reference(s, a, b):
    """Slerp of each image's flattened noise, its angle from numpy."""
    out = []
    for x, y in zip(a.reshape(a.shape[0], -1).double().numpy(), b.reshape(b.shape[0], -1).double().numpy()):
        omega = np.arccos(np.dot(x / np.linalg.norm(x), y / np.linalg.norm(y)))
        out.append(np.sin((1 - s) * omega) / np.sin(omega) * x + np.sin(s * omega) / np.sin(omega) * y)
    return torch.tensor(np.stack(out), dtype=torch.float32).reshape(a.shape)


SHAPE = (3, 4, 6, 5)


def noise(mode="comfy", seed=7, batch_index=None, **variation):
    return inspire.inspire_noise(torch.zeros(SHAPE), seed, batch_index, CPU, mode, **variation)


def test_cpu_noise_modes_follow_the_packs_prepare_noise():
    assert torch.equal(noise("comfy"), randn(SHAPE, 7))  # the core KSampler's noise
    assert torch.equal(noise("incremental"), torch.cat([randn((1, 4, 6, 5), 7 + i) for i in range(3)]))
    # "variation str inc": every image the seed's noise, the variation mixed in at 0.2 + 0.05 * i
    base, var = randn((1, 4, 6, 5), 7), randn((1, 4, 6, 5), 11)
    got = noise("variation str inc:0.05", variation_seed=11, variation_strength=0.2)
    want = torch.cat([linear_mix(base, var, 0.2 + 0.05 * i) for i in range(3)])
    torch.testing.assert_close(got, want)
    # a batch_index: each image the comfy draw at its index, no variation (as the pack)
    got = noise("incremental", batch_index=[2, 0, 2], variation_seed=11, variation_strength=0.5)
    generator = torch.manual_seed(7)
    drawn = [torch.randn((1, 4, 6, 5), generator=generator) for _ in range(3)]  # one image at a time
    assert torch.equal(got, torch.cat([drawn[2], drawn[0], drawn[2]]))


@pytest.mark.parametrize("mode", ["comfy", "incremental"])
def test_variation_noise_linear_and_slerp(mode):
    seeds = randn(SHAPE, 7) if mode == "comfy" else torch.cat([randn((1, 4, 6, 5), 7 + i) for i in range(3)])
    var = randn((1, 4, 6, 5), 99).expand(SHAPE)
    linear = noise(mode, variation_seed=99, variation_strength=0.3)
    torch.testing.assert_close(linear, linear_mix(seeds, var, 0.3))
    assert abs(float(linear.std()) - 1) < 0.1  # rescaled to unit variance
    slerped = noise(mode, variation_seed=99, variation_strength=0.3, variation_method="slerp")
    torch.testing.assert_close(slerped, slerp_reference(0.3, seeds, var), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(slerped, linear)
    # strength 0 leaves the seed's noise, 1 gives the variation's
    torch.testing.assert_close(noise(mode, variation_seed=99, variation_strength=1.0), var.contiguous())
    assert torch.equal(noise(mode, variation_seed=99, variation_strength=0.0), seeds)


def test_slerp_of_parallel_noises_is_the_linear_mix():
    a = randn((2, 4, 3, 3), 1)
    torch.testing.assert_close(inspire.slerp(0.4, a, a.clone()), a)


def test_noise_refusals():
    with pytest.raises(NodeInputError) as caught:
        noise("incremental", seed=2**64 - 2)
    assert caught.value.input == "seed"
    with pytest.raises(NodeInputError) as caught:
        noise("variation str inc:abc")
    assert caught.value.input == "batch_seed_mode"


def test_gpu_mode_without_cuda_falls_back_to_cpu_noise_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from graphflow import device
    monkeypatch.setattr(device, "compute_device", lambda: torch.device("cpu"))
    with caplog.at_level("WARNING"):
        assert inspire._noise_device("GPU(=A1111)") == CPU
    assert "CUDA" in caplog.text
    assert inspire._noise_device("CPU") == CPU


def still_eps(x, t, context, y):
    return torch.zeros_like(x[:, :4])


def fake_inputs(model, **more):
    return {"model": model, "positive": prompt(0.3), "negative": prompt(-0.2),
            "latent_image": {"samples": torch.zeros(2, 4, 8, 8)}, "steps": 3, "cfg": 5.0, **more}


def test_ksampler_cpu_comfy_is_the_core_ksampler(registry):
    """CPU noise, comfy batch mode, no variation and internal_seed = seed: the core KSampler's
    latent, an ancestral sampler's added noise included."""
    from sampling_fakes import gaussian_eps
    model = FakeModel(gaussian_eps(0.2, 0.5))
    ours = call(registry, "InspireKSampler", **fake_inputs(model, seed=5, sampler_name="euler_ancestral",
                                                            scheduler="karras", denoise=0.8, noise_mode="CPU",
                                                            batch_seed_mode="comfy", internal_seed=5))
    core = call(registry, "KSampler", **fake_inputs(model, seed=5, sampler_name="euler_ancestral",
                                                     scheduler="karras", denoise=0.8))
    assert torch.equal(ours["samples"], core["samples"])
    other = call(registry, "InspireKSampler", **fake_inputs(model, seed=5, sampler_name="euler_ancestral",
                                                             scheduler="karras", denoise=0.8, noise_mode="CPU",
                                                             batch_seed_mode="comfy", internal_seed=6))
    assert not torch.equal(other["samples"], core["samples"])  # internal_seed drives the added noise


@pytest.mark.parametrize("mode,variation", [("incremental", {}),
                                            ("comfy", {"variation_seed": 3, "variation_strength": 0.4,
                                                       "variation_method": "slerp"}),
                                            ("variation str inc:0.01", {"variation_seed": 3})])
def test_advanced_sampler_starts_from_the_packs_noise(registry, mode, variation):
    """eps = 0 leaves x as it starts, so the leftover-noise output is the starting noise times the
    scale the core sampler shows for its own (comfy) noise."""
    model = FakeModel(still_eps)
    common = dict(steps=4, sampler_name="euler", scheduler="normal", start_at_step=0, end_at_step=2)
    core = call(registry, "KSamplerAdvanced", **fake_inputs(model, noise_seed=9, return_with_leftover_noise="enable",
                                                             **common))
    scale = core["samples"] / randn((2, 4, 8, 8), 9)
    assert torch.allclose(scale, scale.flatten()[0].expand_as(scale), rtol=1e-4)
    ours = call(registry, "InspireKSamplerAdvanced", **fake_inputs(
        model, noise_seed=9, add_noise=True, return_with_leftover_noise=True, noise_mode="CPU",
        batch_seed_mode=mode, **variation, **common))
    want = inspire.inspire_noise(torch.zeros(2, 4, 8, 8), 9, None, CPU, mode, **variation)
    torch.testing.assert_close(ours["samples"], want * scale, rtol=1e-4, atol=1e-5)
    off = call(registry, "InspireKSamplerAdvanced", **fake_inputs(
        model, noise_seed=9, add_noise=False, return_with_leftover_noise=True, noise_mode="CPU",
        batch_seed_mode=mode, **variation, **common))
    assert not off["samples"].any()  # add_noise off: no noise at all


def test_random_noise_is_a_noise_source_for_custom_samplers(registry):
    source = call(registry, "InspireRandomNoise", noise_seed=4, noise_mode="CPU", batch_seed_mode="incremental",
                  variation_seed=1, variation_strength=0.5, internal_seed=12)
    assert isinstance(source, NoiseSource) and source.seed == 12
    samples = torch.zeros(2, 4, 8, 8)
    want = inspire.inspire_noise(samples, 4, None, CPU, "incremental", 1, 0.5)
    assert torch.equal(source.generate(samples), want)


def test_the_packs_schedulers(registry):
    from graphflow.sampling.schedules import align_your_steps, gits
    assert torch.equal(inspire._scheduler("AYS SDXL")(None, 10), align_your_steps("SDXL", 10))
    assert torch.equal(inspire._scheduler("GITS[coeff=1.2]")(None, 10), gits(1.2, 10))
    assert inspire._scheduler("karras") == "karras"


KS_WIDGETS = [5, "fixed", 2, 7.0, "euler", "normal", 1.0, "CPU", "comfy", 0, 0.0, "linear", 5]


def sampler_graph(class_type, widgets, seed_node=None):
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [])]),
        ui_node(2, "CLIPTextEncode", ["a cat"], [("clip", "CLIP", 2, False)], [("CONDITIONING", "CONDITIONING", [4])]),
        ui_node(3, "CLIPTextEncode", ["blurry"], [("clip", "CLIP", 3, False)],
                [("CONDITIONING", "CONDITIONING", [5])]),
        ui_node(4, "EmptyLatentImage", [64, 64, 2], outputs=[("LATENT", "LATENT", [6])]),
        ui_node(5, class_type, widgets, [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 4, False),
                                         ("negative", "CONDITIONING", 5, False), ("latent_image", "LATENT", 6, False)],
                [("LATENT", "LATENT", [])]),
    ]
    links = [[1, 1, 0, 5, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 3, 0, "CLIP"],
             [4, 2, 0, 5, 1, "CONDITIONING"], [5, 3, 0, 5, 2, "CONDITIONING"], [6, 4, 0, 5, 3, "LATENT"]]
    return ui_graph(nodes, links)


def core_api(class_type, inputs):
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
            "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
            "5": {"class_type": class_type, "inputs": {"model": ["1", 0], "positive": ["2", 0],
                                                       "negative": ["3", 0], "latent_image": ["4", 0], **inputs}}}


def test_ui_save_of_ksampler_inspire_equals_the_core_ksampler(registry, models):
    workflow = parse_workflow(sampler_graph("KSampler //Inspire", KS_WIDGETS), registry)
    inputs = workflow.to_json()["nodes"]["5"]["inputs"]
    assert (inputs["seed"], inputs["noise_mode"], inputs["batch_seed_mode"], inputs["internal_seed"]) == \
        (5, "CPU", "comfy", 5)
    ours = run_graph(registry, sampler_graph("KSampler //Inspire", KS_WIDGETS), ["5"]).values["5"][0]
    core = run_graph(registry, core_api("KSampler", {"seed": 5, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                                     "scheduler": "normal", "denoise": 1.0}), ["5"]).values["5"][0]
    assert torch.equal(ours["samples"], core["samples"])
    # written back as the pack's editor saves it
    back = export_ui(workflow, registry)
    node = next(n for n in back["nodes"] if n["type"] == "KSampler //Inspire")
    assert node["widgets_values"] == KS_WIDGETS
    api = export_api(workflow, registry)
    assert api["5"]["class_type"] == "KSampler //Inspire" and api["5"]["inputs"]["batch_seed_mode"] == "comfy"


def test_old_ui_saves_take_the_seed_as_internal_seed(registry, models):
    old = [5, "randomize", 2, 7.0, "euler", "normal", 1.0, "CPU", "incremental", 0, 0.0]  # before variation_method
    inputs = parse_workflow(sampler_graph("KSampler //Inspire", old), registry).to_json()["nodes"]["5"]["inputs"]
    assert (inputs["variation_method"], inputs["internal_seed"]) == ("linear", 5)
    adv = [True, 8, "fixed", 2, 7.0, "euler", "normal", 0, 10000, "CPU", False, "comfy", 0, 0.0, "linear"]
    inputs = parse_workflow(sampler_graph("KSamplerAdvanced //Inspire", adv), registry).to_json()["nodes"]["5"]["inputs"]
    assert (inputs["noise_seed"], inputs["internal_seed"], inputs["add_noise"]) == (8, 8, True)


def test_api_prompt_of_ksampler_advanced_inspire(registry, models):
    inputs = {"add_noise": True, "noise_seed": 3, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
              "scheduler": "normal", "start_at_step": 0, "end_at_step": 10000, "noise_mode": "CPU",
              "return_with_leftover_noise": False, "batch_seed_mode": "comfy", "variation_seed": 0,
              "variation_strength": 0.0, "variation_method": "linear", "internal_seed": 3}
    ours = run_graph(registry, core_api("KSamplerAdvanced //Inspire", inputs), ["5"]).values["5"][0]
    core = run_graph(registry, core_api("KSamplerAdvanced", {
        "add_noise": "enable", "noise_seed": 3, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
        "scheduler": "normal", "start_at_step": 0, "end_at_step": 10000,
        "return_with_leftover_noise": "disable"}), ["5"]).values["5"][0]
    assert torch.equal(ours["samples"], core["samples"])
    workflow = parse_workflow(core_api("KSamplerAdvanced //Inspire", inputs), registry)
    assert export_api(workflow, registry)["5"]["inputs"] == {**inputs, "model": ["1", 0], "positive": ["2", 0],
                                                              "negative": ["3", 0], "latent_image": ["4", 0]}
