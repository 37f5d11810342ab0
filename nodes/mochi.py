"""Mochi 1 nodes (ComfyUI's names and inputs): the empty video latent."""

from __future__ import annotations

from graphflow.api import LATENT, ComfyAlias, Int, Node

MAX_SIZE = 16384
LATENT_CHANNELS = 12  # the Mochi VAE's
FRAMES_PER_LATENT, PIXELS_PER_LATENT = 6, 8


def latent_frames(length: int) -> int:
    """Latent frames of a video of `length` frames: the first alone, then one per 6."""
    return (length - 1) // FRAMES_PER_LATENT + 1


class EmptyMochiLatentVideo(Node):
    """A blank Mochi latent: 12 channels, one latent frame for the first picture and one for each
    6 after it ((length - 1) / 6 + 1), 1/8 of the width and height."""
    category = "latent/video"
    width: int = Int(848, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(25, min=7, max=MAX_SIZE, step=6, resource="frames", frame_stride=6)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("EmptyMochiLatentVideo",))

    def run(self):
        import torch
        return {"samples": torch.zeros(self.batch_size, LATENT_CHANNELS, latent_frames(self.length),
                                       self.height // PIXELS_PER_LATENT, self.width // PIXELS_PER_LATENT)}
