"""The SD3 / FLUX nodes: ComfyUI API-format graphs with the real class and input names run end to
end on random-weight text encoder files and a fake flow model (the SD3 / FLUX MODEL contract)."""

import json

import pytest
import torch
from flow_fakes import FakeFlowModel, constant_x0

from graphflow.api import MODEL, Choice, Node
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.sampling import SCHEDULERS, FlowSchedule, flux_mu
from graphflow.testing import T5_TINY, write_text_encoder
from graphflow.workflow import parse_workflow
from test_nodes_image_mask import call

MODELS = {}


class FakeFlowLoader(Node):
    """Test stand-in for a flow-model loader."""
    kind: str = Choice(["sd3", "flux_dev", "flux_schnell"], "flux_dev")
    outputs = {"model": MODEL}

    def run(self):
        arch = "sd3" if self.kind == "sd3" else "flux"
        model = FakeFlowModel(constant_x0(0.5), arch=arch, guidance_embed=self.kind == "flux_dev")
        MODELS[self.kind] = model
        return model


@pytest.fixture(scope="module")
def registry():
    reg = Registry().load_builtin()
    reg.add(FakeFlowLoader, source="tests")
    return reg


@pytest.fixture
def files(tmp_folders):
    (tmp_folders.models / "text_encoders").mkdir()
    (tmp_folders.models / "clip").mkdir()
    write_text_encoder(tmp_folders.models / "text_encoders" / "t5xxl_fp8_e4m3fn.safetensors", "t5xxl", seed=1,
                       dtype=torch.float8_e4m3fn)
    write_text_encoder(tmp_folders.models / "clip" / "clip_l.safetensors", "clip_l", seed=2)
    write_text_encoder(tmp_folders.models / "text_encoders" / "clip_g.safetensors", "clip_g", seed=3)
    return tmp_folders


def run_graph(registry, graph, output):
    wf = parse_workflow(json.loads(json.dumps(graph)), registry)
    result = Executor(registry).run(wf, outputs=[output])
    assert result.ok, result.error or result.problems
    return result


def link(node, slot=0):
    return [node, slot]


def test_flux_dev_graph_in_comfyui_names(registry, files):
    graph = {
        "1": {"class_type": "FakeFlowLoader", "inputs": {"kind": "flux_dev"}},
        "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl_fp8_e4m3fn.safetensors",
                                                         "clip_name2": "clip_l.safetensors", "type": "flux",
                                                         "device": "default"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in the snow", "clip": link("2")}},
        "4": {"class_type": "FluxGuidance", "inputs": {"conditioning": link("3"), "guidance": 2.0}},
        "5": {"class_type": "ModelSamplingFlux", "inputs": {"model": link("1"), "max_shift": 1.15, "base_shift": 0.5,
                                                            "width": 128, "height": 96}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 128, "height": 96, "batch_size": 1}},
        "7": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": link("3")}},
        "8": {"class_type": "KSampler", "inputs": {"model": link("5"), "seed": 3, "steps": 3, "cfg": 1.0,
                                                   "sampler_name": "euler", "scheduler": "simple",
                                                   "positive": link("4"), "negative": link("7"),
                                                   "latent_image": link("6"), "denoise": 1.0}},
    }
    result = run_graph(registry, graph, "8")
    samples = result.values["8"][0]["samples"]
    assert samples.shape == (1, 16, 12, 16)
    torch.testing.assert_close(samples, torch.full_like(samples, 0.5 / 0.3611 + 0.1159), atol=1e-5, rtol=0)
    calls = MODELS["flux_dev"].calls
    assert len(calls) == 3  # cfg 1: only the positive
    expected = SCHEDULERS["simple"](FlowSchedule.flux(flux_mu(128, 96)), 3)
    assert [float(c["sigma"][0]) for c in calls] == pytest.approx(expected[:-1].tolist())
    assert calls[0]["context"].shape == (1, 256, T5_TINY["d_model"])
    assert calls[0]["y"].shape == (1, 64) and calls[0]["guidance"].tolist() == [2.0]
    encoded = result.values["3"][0]
    torch.testing.assert_close(calls[0]["y"], encoded[0][1]["pooled_output"])
    assert "guidance" not in encoded[0][1]  # FluxGuidance made a new conditioning


def test_sd3_graph_in_comfyui_names(registry, files):
    graph = {
        "1": {"class_type": "FakeFlowLoader", "inputs": {"kind": "sd3"}},
        "2": {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "clip_g.safetensors",
                                                           "clip_name2": "t5xxl_fp8_e4m3fn.safetensors",
                                                           "clip_name3": "clip_l.safetensors"}},
        "3": {"class_type": "CLIPTextEncodeSD3", "inputs": {"clip": link("2"), "clip_l": "a cat", "clip_g": "a cat",
                                                            "t5xxl": "a cat on a sofa", "empty_padding": "none"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": link("2")}},
        "5": {"class_type": "ModelSamplingSD3", "inputs": {"model": link("1"), "shift": 2.0}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
        "7": {"class_type": "KSampler", "inputs": {"model": link("5"), "seed": 1, "steps": 4, "cfg": 4.5,
                                                   "sampler_name": "dpmpp_2m", "scheduler": "sgm_uniform",
                                                   "positive": link("3"), "negative": link("4"),
                                                   "latent_image": link("6"), "denoise": 1.0}},
    }
    result = run_graph(registry, graph, "7")
    samples = result.values["7"][0]["samples"]
    torch.testing.assert_close(samples, torch.full_like(samples, 0.5 / 1.5305 + 0.0609), atol=1e-5, rtol=0)
    calls = MODELS["sd3"].calls
    expected = SCHEDULERS["sgm_uniform"](FlowSchedule.sd3(2.0), 4)
    assert [float(c["sigma"][0]) for c in calls] == pytest.approx(expected[:-1].tolist())
    first = calls[0]
    assert first["x"].shape[0] == 4  # positive and negative of 2 images in one call
    assert first["context"].shape == (4, 154, T5_TINY["d_model"]) and first["y"].shape == (4, 192)
    assert first["guidance"] is None


def test_node_inputs_match_comfyui_catalogue(registry):
    """Input names, defaults and order as ComfyUI's object_info lists them (the comfy alias maps them)."""
    expected = {
        "ModelSamplingSD3": ["model", "shift"],
        "ModelSamplingAuraFlow": ["model", "shift"],
        "ModelSamplingFlux": ["model", "max_shift", "base_shift", "width", "height"],
        "EmptySD3LatentImage": ["width", "height", "batch_size"],
        "CLIPTextEncodeSD3": ["clip", "clip_l", "clip_g", "t5xxl", "empty_padding"],
        "CLIPTextEncodeFlux": ["clip", "clip_l", "t5xxl", "guidance"],
        "FluxGuidance": ["conditioning", "guidance"],
        "CLIPLoader": ["clip_name", "type", "device"],
        "DualCLIPLoader": ["clip_name1", "clip_name2", "type", "device"],
        "TripleCLIPLoader": ["clip_name1", "clip_name2", "clip_name3"],
    }
    defaults = {("ModelSamplingSD3", "shift"): 3.0, ("ModelSamplingAuraFlow", "shift"): 1.73,
                ("ModelSamplingFlux", "max_shift"): 1.15,
                ("ModelSamplingFlux", "base_shift"): 0.5, ("ModelSamplingFlux", "width"): 1024,
                ("EmptySD3LatentImage", "width"): 1024, ("FluxGuidance", "guidance"): 3.5,
                ("CLIPTextEncodeFlux", "guidance"): 3.5, ("CLIPTextEncodeSD3", "empty_padding"): "none",
                ("CLIPLoader", "device"): "default", ("DualCLIPLoader", "device"): "default"}
    for comfy_name, inputs in expected.items():
        cls = registry.comfy_node(comfy_name)
        assert cls is not None, comfy_name
        assert list(cls.input_specs) == inputs, comfy_name
    for (comfy_name, name), value in defaults.items():
        assert registry.comfy_node(comfy_name).input_specs[name].default == value


def test_nodes_check_their_inputs(registry):
    from graphflow.context import NodeInputError
    from sampling_fakes import FakeModel

    eps_model = FakeModel(lambda x, t, c, y: torch.zeros_like(x))
    with pytest.raises(NodeInputError, match="flow model"):
        call(registry, "ModelSamplingSD3", model=eps_model, shift=3.0)
    model = FakeFlowModel(constant_x0(0.0), arch="flux")
    patched = call(registry, "ModelSamplingFlux", model=model, max_shift=1.15, base_shift=0.5, width=512, height=512)
    assert patched is not model and getattr(model, "model_sampling", None) is None
    assert patched.model_sampling.shift == pytest.approx(flux_mu(512, 512))
    latent = call(registry, "EmptySD3Latent", width=96, height=64, batch_size=3)
    assert latent["samples"].shape == (3, 16, 8, 12) and torch.count_nonzero(latent["samples"]) == 0
    cond = [(torch.zeros(1, 4, 8), {"pooled_output": torch.ones(1, 8)})]
    out = call(registry, "FluxGuidance", conditioning=cond, guidance=5.0)
    assert out[0][1] == {"pooled_output": cond[0][1]["pooled_output"], "guidance": 5.0} and "guidance" not in cond[0][1]
    with pytest.raises(NodeInputError, match="SD3 text encoder"):
        call(registry, "CLIPTextEncodeSD3", clip=object(), clip_l="", clip_g="", t5xxl="", empty_padding="none")


def test_loader_nodes_report_bad_files(registry, files):
    from graphflow.context import NodeInputError

    with pytest.raises(NodeInputError, match="CLIP-L and a T5"):
        call(registry, "LoadDualTextEncoders", clip_name1="clip_l.safetensors", clip_name2="clip_g.safetensors",
             type="flux")
    with pytest.raises(ValueError, match="not one of the choices"):  # validation names the files there are
        call(registry, "LoadTextEncoder", clip_name="missing.safetensors", type="sd3")
    sdxl = call(registry, "LoadDualTextEncoders", clip_name1="clip_g.safetensors", clip_name2="clip_l.safetensors",
                type="sdxl")
    assert sdxl.arch == "sdxl" and [t.name for t in sdxl.towers] == ["clip_l", "clip_g"]
    sd1 = call(registry, "LoadTextEncoder", clip_name="clip_l.safetensors", type="stable_diffusion")
    assert sd1.arch == "sd1" and sd1.encode("a cat")[0].shape == (1, 77, 64)
    single = call(registry, "LoadTextEncoder", clip_name="clip_g.safetensors", type="sd3")
    assert single.clip_g is not None and single.clip_l is None and single.t5 is None


def test_model_sampling_aura_flow_shifts_with_multiplier_one(registry):
    from graphflow.context import NodeInputError
    from sampling_fakes import FakeModel

    model = FakeFlowModel(constant_x0(0.0), arch="flux", guidance_embed=False)
    patched = call(registry, "ModelSamplingAuraFlow", model=model, shift=1.73)
    assert patched is not model and getattr(model, "model_sampling", None) is None
    schedule = patched.model_sampling
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    torch.testing.assert_close(schedule.sigmas.double(), 1.73 * t / (1 + 0.73 * t), atol=1e-6, rtol=0)
    sigma = torch.tensor([0.9, 0.2])
    torch.testing.assert_close(schedule.timestep(sigma), sigma)  # the model is told sigma itself
    torch.testing.assert_close(schedule.sigma(sigma), 1.73 * sigma / (1 + 0.73 * sigma))
    # FLUX schnell's own sampling is this one at shift 1 (ComfyUI: multiplier 1, shift 1)
    schnell = call(registry, "ModelSamplingAuraFlow", model=model, shift=1.0).model_sampling
    from graphflow.sampling.flow_sampling import default_flow_schedule
    assert torch.equal(schnell.sigmas, default_flow_schedule(model).sigmas)
    with pytest.raises(NodeInputError, match="flow model"):
        call(registry, "ModelSamplingAuraFlow", model=FakeModel(lambda x, t, c, y: torch.zeros_like(x)), shift=1.73)
