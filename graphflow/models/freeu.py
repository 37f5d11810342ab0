"""FreeU (Si et al. 2023, "FreeU: Free Lunch in Diffusion U-Net"), as ComfyUI's FreeU / FreeU_V2
patch the UNet: at each decoder block whose incoming features have model_channels * 4 (b1, s1) or
model_channels * 2 (b2, s2) channels, the first half of the backbone features is amplified by b
(V2: by 1 + (b - 1) * the block's normalised mean activation, per pixel) and the skip features'
lowest frequencies (the centre 2x2 of the shifted spectrum) are scaled by s.

The patch goes on a shallow copy of the UNet (`output_block_patches`), so the input MODEL and
its weights are shared and unchanged.
"""

import torch

from .diffusion_model import DiffusionModel
from .lora import _shallow


def fourier_filter(x: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """Scale the (2 threshold)^2 lowest spatial frequencies of [B, C, H, W] by `scale`."""
    freq = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    H, W = freq.shape[-2:]
    mask = torch.ones(H, W, device=x.device)
    mask[H // 2 - threshold:H // 2 + threshold, W // 2 - threshold:W // 2 + threshold] = scale
    freq = torch.fft.ifftshift(freq * mask, dim=(-2, -1))
    return torch.fft.ifftn(freq, dim=(-2, -1)).real.to(x.dtype)


def freeu_patch(model_channels: int, b1: float, b2: float, s1: float, s2: float, version: int = 1):
    scales = {model_channels * 4: (b1, s1), model_channels * 2: (b2, s2)}

    def patch(h: torch.Tensor, skip: torch.Tensor):
        scale = scales.get(int(h.shape[1]))
        if scale is None:
            return h, skip
        b, s = scale
        half = h.shape[1] // 2
        factor = b
        if version == 2:
            mean = h.mean(1, keepdim=True)
            flat = mean.flatten(1)
            lo, hi = flat.amin(1).reshape(-1, 1, 1, 1), flat.amax(1).reshape(-1, 1, 1, 1)
            factor = (b - 1) * (mean - lo) / (hi - lo) + 1
        h = torch.cat([h[:, :half] * factor, h[:, half:]], dim=1)
        return h, fourier_filter(skip, 1, s)

    return patch


def apply_freeu(model: DiffusionModel, b1: float, b2: float, s1: float, s2: float, version: int = 1) -> DiffusionModel:
    unet = _shallow(model.unet)
    unet.output_block_patches = (*getattr(model.unet, "output_block_patches", ()),
                                 freeu_patch(model.unet.config.model_channels, b1, b2, s1, s2, version))
    return model.with_unet(unet)
