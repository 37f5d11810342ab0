"""Samplers that lie to the model about the noise level: a SAMPLER value (samplers.SamplerChoice)
may carry `sigma_adjusters`, each changing the sigma the model is CALLED with while the sampler's
own steps (its sigmas, its update of x) stay as they are. This is how ComfyUI's sampler-wrapping
nodes (Detail Daemon, Lying Sigma) work: their KSAMPLER calls the wrapped sampler with a model
function that passes an altered sigma on.

An adjuster is a small frozen dataclass (a SAMPLER value the cache keeps is handed to every node
it feeds, so nothing changes it in place; two built from the same settings compare equal) with

    for_run(sigmas, cfg, schedule) -> adjust(sigma) -> sigma

called once per sampling run with the run's sigmas (CPU float32), the guider's CFG scale (ComfyUI's
`model.inner_model.cfg`: 1.0 for guiders without one, as DualCFGGuider) and the model's noise
schedule (percent_to_sigma ...); `adjust` gets the sigma batch each model call gets and returns the
sigma batch to call the model with (Detail Daemon's and Lying Sigma's read it on the host, a
device sync per model call, as the pack's do: the one exception to the sampling loop's no-sync
rule). The pipeline wraps the guided (and inpainting-masked) denoiser once per adjuster,
adjusters[0] nearest the model: a wrapper node puts its own adjuster in front of the wrapped
sampler's, so the outermost node's adjuster sees the sampler's sigma last, as the nesting of
ComfyUI's model wrappers does.
"""

from __future__ import annotations

import torch


class SigmaAdjustedDenoiser:
    """A denoiser D(x; sigma) that calls the wrapped one with adjust(sigma)."""

    def __init__(self, denoiser, adjust):
        self.denoiser, self.adjust = denoiser, adjust

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args) -> torch.Tensor:
        return self.denoiser(x, self.adjust(sigma), **extra_args)


def adjusted_denoiser(denoiser, adjusters, sigmas: torch.Tensor, cfg: float, schedule):
    """`denoiser` wrapped by each of a SAMPLER's sigma adjusters for this run's sigmas."""
    for adjuster in adjusters:
        denoiser = SigmaAdjustedDenoiser(denoiser, adjuster.for_run(sigmas, cfg, schedule))
    return denoiser


def guider_cfg(guider) -> float:
    """The CFG scale a sigma adjuster is told: the guider's `cfg` where it has one number, else 1.0
    (ComfyUI's CFGGuider.cfg, which DualCFGGuider leaves at 1.0)."""
    cfg = getattr(guider, "cfg", None)
    return float(cfg) if isinstance(cfg, (int, float)) and not isinstance(cfg, bool) else 1.0
