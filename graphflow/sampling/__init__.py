"""Sampling: schedules, samplers, the eps/v model as a denoiser, CFG, noise, previews, and the
KSampler entry point `sample(...)`.

The names below are imported on first use (PEP 562), so that importing a name list from here (or
from graphflow.choices) does not import torch.
"""

import importlib

from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES

_HOMES = {
    "flow_samplers": ("FLOW_SAMPLERS", "sampler_for"),
    "flow_sampling": ("FlowDenoiser", "FlowSchedule", "flux_mu", "model_sampling_for"),
    "guidance": ("CFGDenoiser", "Cond", "cfg_combine", "prepare_conds"),
    "model_sampling": ("DiscreteSchedule", "ModelDenoiser"),
    "noise": ("BrownianTreeNoiseSampler", "brownian_noise_sampler", "gaussian_noise_sampler", "initial_noise"),
    "pipeline": ("sample", "sample_with_sigmas"),
    "preview": ("encode_preview", "latent_preview"),
    "samplers": ("DISCARD_PENULTIMATE_SIGMA", "SAMPLERS", "STOCHASTIC_SAMPLERS"),
    "schedules": ("SCHEDULERS", "compute_sigmas"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = ["SAMPLER_NAMES", "SCHEDULER_NAMES", *_HOME_OF]


def __getattr__(name: str):
    if name not in _HOME_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME_OF[name]}"), name)
    globals()[name] = value
    return value
