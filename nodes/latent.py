"""Latent nodes: empty latents, upscale, batch, noise mask.

A LATENT is a dict {"samples": [B, C, H/8, W/8] in the VAE's raw space, "noise_mask"?: [B, 1, h, w]
at any resolution (the sampler resizes it), "batch_index"?: [int]}; nodes never modify the
dict they're given."""

import torch
import torch.nn.functional as F

from graphflow.api import LATENT, MASK, Choice, ComfyAlias, Estimate, Int, Node, Size
from graphflow.images import RESIZE_METHODS, center_crop_to_aspect, resize_nchw

MAX_SIZE = 16384


class EmptyLatent(Node):
    """A blank latent batch of the given pixel size to start txt2img from (4 channels, 1/8 size)."""
    category = "latent"
    width: int = Int(512, min=16, max=MAX_SIZE, step=8, resource="width")
    height: int = Int(512, min=16, max=MAX_SIZE, step=8, resource="height")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("EmptyLatentImage",))

    def run(self):
        return {"samples": torch.zeros(self.batch_size, 4, self.height // 8, self.width // 8)}


class LatentUpscale(Node):
    """Resize latents to a new pixel size (0 keeps the aspect ratio from the other side)."""
    category = "latent"
    samples: LATENT
    upscale_method: str = Choice(RESIZE_METHODS, "nearest-exact")
    width: int = Int(1024, min=0, max=MAX_SIZE, step=8, resource="width")
    height: int = Int(1024, min=0, max=MAX_SIZE, step=8, resource="height")
    crop: str = Choice(["disabled", "center"], "disabled")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentUpscale",))

    def run(self):
        x = self.samples["samples"]
        h, w = x.shape[-2:]
        width = self.width // 8 or max(1, round(w * (self.height // 8) / h))
        height = self.height // 8 or max(1, round(h * width / w))
        if self.crop == "center":
            x = center_crop_to_aspect(x, width, height)
        out = {k: v for k, v in self.samples.items() if k != "noise_mask"}
        out["samples"] = resize_nchw(x, width, height, self.upscale_method)
        return out


class LatentBatch(Node):
    """Join two latent batches; the second is resized to the first's size if they differ."""
    category = "latent"
    samples1: LATENT
    samples2: LATENT
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentBatch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        a, b = inputs.get("samples1"), inputs.get("samples2")
        if a is None or b is None:
            return Estimate(a or b)
        return Estimate(Size(a.batch + b.batch, a.height, a.width))

    def run(self):
        a, b = self.samples1["samples"], self.samples2["samples"]
        if a.shape[1:] != b.shape[1:]:
            b = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False)
        index1 = self.samples1.get("batch_index", list(range(a.shape[0])))
        index2 = self.samples2.get("batch_index", list(range(b.shape[0])))
        offset = max(index1) + 1
        return {"samples": torch.cat([a, b]), "batch_index": list(index1) + [offset + i for i in index2]}


class SetLatentNoiseMask(Node):
    """Limit sampling to the masked area (1 = repaint): the rest of the latent is put back
    after every step, so an ordinary model can inpaint."""
    category = "latent/inpaint"
    samples: LATENT
    mask: MASK
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("SetLatentNoiseMask",))

    def run(self):
        out = dict(self.samples)
        out["noise_mask"] = self.mask.reshape(-1, 1, *self.mask.shape[-2:]).float()
        return out
