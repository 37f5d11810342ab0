"""Second-look parity of core ComfyUI nodes: the text encoder loaders (CLIPLoader, DualCLIPLoader),
the attention multipliers, the flow sampling nodes (ModelSamplingAuraFlow / SD3 / Flux on models of
another family's multiplier)."""

import pytest
import torch

from flow_fakes import FakeFlowModel, constant_x0
from graphflow.sampling.flow_sampling import FlowDenoiser
from test_nodes_image_mask import call


# --- the network's timestep under another family's sampling node ----------------------------------
# ComfyUI tells the network timestep = sigma x the sampling's multiplier (ModelSamplingDiscreteFlow:
# ModelSamplingSD3 1000, ModelSamplingAuraFlow 1; ModelSamplingFlux: 1). SD3 / Wan take 1000 sigma
# natively, FLUX / Lumina 2 / Mochi take sigma (FLUX scales it by 1000 inside): AuraFlow on SD3 thus
# gives the MM-DiT a timestep 1000 times smaller, ModelSamplingSD3 on FLUX one 1000 times larger.
# graphflow's models take sigma in their family's own scale: what they are told must carry that ratio.

def _told_sigma(model, sampling):
    x = torch.randn(1, 16, 4, 4)
    sigma = torch.tensor([0.75])
    FlowDenoiser(model, sampling)(x, sigma)
    return float(model.calls[-1]["sigma"][0])


@pytest.mark.parametrize("arch, node, widgets, ratio", [
    ("sd3", "ModelSamplingAuraFlow", {"shift": 1.73}, 1 / 1000),
    ("sd3", "ModelSamplingSD3", {"shift": 3.0}, 1.0),
    ("sd3", "ModelSamplingFlux", {"max_shift": 1.15, "base_shift": 0.5, "width": 1024, "height": 1024}, 1 / 1000),
    ("flux", "ModelSamplingSD3", {"shift": 3.0}, 1000.0),
    ("flux", "ModelSamplingAuraFlow", {"shift": 1.0}, 1.0),
    ("flux", "ModelSamplingFlux", {"max_shift": 1.15, "base_shift": 0.5, "width": 1024, "height": 1024}, 1.0),
])
def test_sampling_nodes_tell_the_network_comfyuis_timestep(builtin_registry, arch, node, widgets, ratio):
    model = FakeFlowModel(constant_x0(0.0), arch=arch, guidance_embed=arch == "flux")
    patched = call(builtin_registry, node, model=model, **widgets)
    assert _told_sigma(patched, patched.model_sampling) == pytest.approx(0.75 * ratio, rel=1e-6)
    assert _told_sigma(model, None) == pytest.approx(0.75, rel=1e-6)  # the family's own sampling: as it was


# --- CLIPLoader / DualCLIPLoader: which files each type takes ---------------------------------------

@pytest.fixture
def text_encoder_files(tmp_folders):
    from graphflow.testing import write_text_encoder

    folder = tmp_folders.models / "text_encoders"
    folder.mkdir(parents=True)
    for kind in ("clip_l", "clip_g", "t5xxl"):
        write_text_encoder(folder / f"{kind}.safetensors", kind, dtype=torch.float32)
    return folder


def _run_loader(registry, class_type, inputs):
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    result = Executor(registry).run(parse_workflow({"1": {"class_type": class_type, "inputs": inputs}}), outputs=["1"])
    return result


@pytest.mark.parametrize("class_type, inputs", [
    ("DualCLIPLoader", {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl.safetensors", "type": "sdxl"}),
    ("CLIPLoader", {"clip_name": "t5xxl.safetensors", "type": "stable_diffusion"}),
])
def test_clip_only_types_name_a_t5_file_given_to_them(builtin_registry, text_encoder_files, class_type, inputs):
    """ComfyUI's sdxl / stable_diffusion types build CLIP towers (a T5 file given to them makes no
    SDXL CLIP); the error names the file, what it holds and the types that take it."""
    result = _run_loader(builtin_registry, class_type, inputs)
    assert result.status == "error"
    message = result.error["message"]
    assert "t5xxl.safetensors holds a T5-XXL" in message and "flux" in message, message


def test_unsupported_types_are_refused_by_name(builtin_registry, text_encoder_files):
    """Types of families graphflow has no model for (hidream, hunyuan_video, ...) stop before running."""
    for class_type, inputs in [("CLIPLoader", {"clip_name": "t5xxl.safetensors", "type": "hidream"}),
                               ("DualCLIPLoader", {"clip_name1": "clip_l.safetensors",
                                                   "clip_name2": "t5xxl.safetensors", "type": "hunyuan_video"})]:
        result = _run_loader(builtin_registry, class_type, inputs)
        assert result.status == "invalid" and result.problems[0].input == "type"
        assert inputs["type"] in result.problems[0].message
