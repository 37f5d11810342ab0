"""Stability's x4 upscaler (stable-diffusion-x4-upscaler): an SD2 UNet that sees the low-res image.

The checkpoint is SD2-shaped (OpenCLIP ViT-H text encoder, penultimate layer), with a UNet of
7 input channels (the noisy latent's 4 + the low-res RGB image's 3, in -1..1), a table of 1000
class labels (`label_emb`, the image's noise level), 8 heads and, on its upper levels, first
attentions that read the text (LDM's disable_self_attentions); its VAE downsamples by 4
(scale factor 0.08333). It predicts v on the 0.0001..0.02 schedule (LDM's "linear":
betas = linspace(sqrt(start), sqrt(end), 1000) ** 2).

The low-res image is augmented as LDM's ImageConcatWithNoiseAugmentation, the way ComfyUI's
SD_X4Upscaler does: noise level n = round(350 * noise_augmentation); when noise_augmentation > 0
the image becomes sqrt(abar_n) image + sqrt(1 - abar_n) noise on the same schedule, the noise
drawn on the CPU from the sampler's seed - 10; the class label is n either way.
"""

import torch

from .diffusion_model import BetaSchedule

SCHEDULE = BetaSchedule(linear_start=0.0001, linear_end=0.02)  # sampling and augmentation alike
MAX_NOISE_LEVEL = 350
IMAGE_CHANNELS = 3


def noise_level(noise_augmentation: float) -> int:
    return round(MAX_NOISE_LEVEL * float(noise_augmentation))


def augment(image: torch.Tensor, noise_augmentation: float, seed: int) -> torch.Tensor:
    """The low-res image [B, 3, h, w] in -1..1 as the UNet sees it at this noise augmentation."""
    if noise_augmentation <= 0:
        return image
    abar = SCHEDULE.alphas_cumprod()[noise_level(noise_augmentation)]
    generator = torch.Generator().manual_seed((seed - 10) % 2 ** 64)
    noise = torch.randn(image.shape, generator=generator, dtype=image.dtype).to(image.device)
    return (abar.sqrt() * image + (1 - abar).sqrt() * noise).to(image.dtype)
