"""Sampling: schedules, samplers, the eps/v model as a denoiser, CFG, noise, previews, and the
KSampler entry point `sample(...)`."""

from .flow_samplers import FLOW_SAMPLERS, sampler_for
from .flow_sampling import FlowDenoiser, FlowSchedule, flux_mu, model_sampling_for
from .guidance import CFGDenoiser, Cond, cfg_combine, prepare_conds
from .model_sampling import DiscreteSchedule, ModelDenoiser
from .noise import BrownianTreeNoiseSampler, brownian_noise_sampler, gaussian_noise_sampler, initial_noise
from .pipeline import sample, sample_with_sigmas
from .preview import encode_preview, latent_preview
from .samplers import DISCARD_PENULTIMATE_SIGMA, SAMPLERS, STOCHASTIC_SAMPLERS
from .schedules import SCHEDULERS, compute_sigmas

SAMPLER_NAMES = list(SAMPLERS)
SCHEDULER_NAMES = list(SCHEDULERS)

__all__ = [
    "SAMPLERS", "SAMPLER_NAMES", "SCHEDULERS", "SCHEDULER_NAMES", "STOCHASTIC_SAMPLERS", "DISCARD_PENULTIMATE_SIGMA",
    "sample", "sample_with_sigmas", "compute_sigmas", "DiscreteSchedule", "ModelDenoiser", "CFGDenoiser", "Cond",
    "cfg_combine", "prepare_conds", "initial_noise", "gaussian_noise_sampler", "brownian_noise_sampler",
    "BrownianTreeNoiseSampler", "latent_preview", "encode_preview",
    "FlowSchedule", "FlowDenoiser", "FLOW_SAMPLERS", "sampler_for", "flux_mu", "model_sampling_for",
]
