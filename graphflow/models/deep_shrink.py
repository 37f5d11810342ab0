"""Kohya's Deep Shrink ("hires fix" inside the UNet), as ComfyUI's PatchModelAddDownscale: while
sampling is between start_percent and end_percent, the features after input block `block_number`
are shrunk by downscale_factor, so the deeper blocks see an image of the size they were trained on
(composition holds together at large resolutions); each decoder block whose features are smaller
than the skip connection they meet resizes them up to it.

The range is checked on the sampler's sigma, as ComfyUI does (within a sampler run it is
graphflow.sampling.guidance.unet_rows'; a direct UNet call falls back to the sigma of its
timestep, a table entry), once per model call on the host (one sync a step, as ComfyUI's). The patches go on a shallow copy of the UNet
(`input_block_patches[_after_skip]`, `output_block_patches`), so the input MODEL is unchanged.
"""

import torch

from .diffusion_model import DiffusionModel
from .lora import _shallow


def _resize(h: torch.Tensor, width: int, height: int, method: str) -> torch.Tensor:
    from graphflow.images import bislerp, resize_nchw
    if method == "bislerp":
        return bislerp(h, width, height).to(h.dtype)
    return resize_nchw(h, width, height, method)


def downscale_patch(block_number: int, factor: float, sigma_start: float, sigma_end: float, sigma_of, method: str):
    """patch(h, k, timesteps): h shrunk by `factor` after input block k == block_number while
    sigma_end <= the sampler's sigma (or sigma_of(timestep) outside a sampler run) <= sigma_start."""
    from graphflow.sampling.guidance import unet_rows

    def patch(h, k, timesteps):
        if k != block_number:
            return h
        rows = unet_rows.get()
        if rows is not None:
            sigma = float(rows.sigma.reshape(-1)[0])
        else:
            sigma = float(sigma_of(timesteps.reshape(-1)[0].float().cpu()))
        if sigma_end <= sigma <= sigma_start:
            return _resize(h, round(h.shape[-1] * (1.0 / factor)), round(h.shape[-2] * (1.0 / factor)), method)
        return h
    return patch


def upscale_patch(method: str):
    """Output-block patch: features smaller than their skip connection are resized up to it."""
    def patch(h, skip):
        if h.shape[2] != skip.shape[2]:
            h = _resize(h, skip.shape[-1], skip.shape[-2], method)
        return h, skip
    return patch


def apply_deep_shrink(model: DiffusionModel, block_number: int, downscale_factor: float, start_percent: float,
                      end_percent: float, downscale_after_skip: bool = True, downscale_method: str = "bicubic",
                      upscale_method: str = "bicubic") -> DiffusionModel:
    from graphflow.sampling import model_sampling_for
    schedule = model_sampling_for(model)
    shrink = downscale_patch(block_number, downscale_factor, schedule.percent_to_sigma(start_percent),
                             schedule.percent_to_sigma(end_percent), schedule.sigma, downscale_method)
    unet = _shallow(model.unet)
    name = "input_block_patches_after_skip" if downscale_after_skip else "input_block_patches"
    setattr(unet, name, (*getattr(model.unet, name, ()), shrink))
    unet.output_block_patches = (*getattr(model.unet, "output_block_patches", ()), upscale_patch(upscale_method))
    return model.with_unet(unet)
