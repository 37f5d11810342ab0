"""Parity of the sampling set-up with ComfyUI's (nodes.py KSampler / KSamplerAdvanced, comfy/sample.py,
comfy/samplers.py, comfy_extras/nodes_custom_sampler.py): timestep ranges, latents and noise masks
of other shapes, the steps KSamplerAdvanced leaves nothing to do for."""

import torch
from flow_fakes import FakeFlowModel, constant_x0
from sampling_fakes import FakeModel, gaussian_eps, prompt

from graphflow.sampling import compute_sigmas, sample
from graphflow.sampling.flow_sampling import model_sampling_for
from graphflow.sampling.model_sampling import in_sigma_window


def flow_prompt(value, **options):
    return [(torch.full((1, 4, 8), float(value)), options)]


def test_timestep_range_bounds_are_compared_in_float32():
    """ComfyUI compares the sigma tensor with the range's Python-float bounds, which torch rounds
    to float32 first: a flow model's step sigma that is the float32 nearest a bound is inside."""
    sigma = torch.tensor([2 / 3], dtype=torch.float32)  # 0.66666669 > 2/3 in double precision
    assert float(sigma) > 2 / 3
    assert in_sigma_window(sigma, 2 / 3, 0.0, rounded=True)
    assert not in_sigma_window(sigma, 2 / 3, 0.0)  # SLG / IP-Adapter: sigma.item() in double
    assert in_sigma_window(torch.tensor([0.9], dtype=torch.float32), 1.0, 0.9, rounded=True)


def test_conditioning_start_percent_on_a_flow_schedule_counts_the_boundary_step():
    """SD3 (shift 3), 20 simple steps: start_percent 0.6 is sigma 2/3, and step 12's sigma is
    float32(2/3); ComfyUI evaluates the ranged prompt from that step on (8 of the 20 steps)."""
    model = FakeFlowModel(constant_x0(0.0))
    schedule = model_sampling_for(model)
    sigmas = compute_sigmas(schedule, "simple", 20)
    assert float(sigmas[12]) == float(torch.tensor(schedule.percent_to_sigma(0.6), dtype=torch.float32))
    positive = flow_prompt(1.0) + flow_prompt(2.0, start_percent=0.6, end_percent=1.0)
    sample(model, 0, 20, 1.0, "euler", "simple", positive, [], {"samples": torch.zeros(1, 16, 4, 4)})
    ranged = [i for i, call in enumerate(model.calls) if bool((call["context"] == 2.0).any())]
    assert ranged == list(range(12, 20))
