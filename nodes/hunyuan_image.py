"""HunyuanImage 2.1 nodes (ComfyUI's names and inputs). Its text-to-image graph needs only
EmptyHunyuanImageLatent (nodes.latent); the refiner pass takes its input image through
HunyuanRefinerLatent: VAEEncode with the refiner's VAE -> HunyuanRefinerLatent -> KSampler on the
refiner model -> VAEDecode with the refiner's VAE."""

from __future__ import annotations

from graphflow.api import CONDITIONING, LATENT, ComfyAlias, Float, Node, NodeInputError
from nodes.wan import both_with


class HunyuanRefinerLatent(Node):
    """Prepare the HunyuanImage 2.1 refiner pass: the image's latent (the refiner VAE's, [B, 32, 1, h, w])
    goes into both conditionings as the refiner's extra input channels, noise-augmented by
    noise_augmentation when the sampler builds them (ComfyUI's: noise x a + image x min(1 - a, 0.75));
    the latent out is an empty one of the same size, which the refiner samples from noise."""
    category = "sd"
    positive: CONDITIONING
    negative: CONDITIONING
    latent: LATENT
    noise_augmentation: float = Float(0.1, min=0.0, max=1.0, step=0.01)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("HunyuanRefinerLatent",))

    def run(self):
        import torch

        samples = self.latent["samples"]
        if samples.ndim != 5:
            raise NodeInputError("latent", "HunyuanRefinerLatent takes the refiner VAE's latent [B, 32, frames, h, w] "
                                           f"(VAEEncode with hunyuan_image_refiner_vae), got {tuple(samples.shape)}")
        positive, negative = both_with(self.positive, self.negative, concat_latent_image=samples,
                                       noise_augmentation=self.noise_augmentation)
        return positive, negative, {"samples": torch.zeros(samples.shape[0], 32, *samples.shape[2:])}
