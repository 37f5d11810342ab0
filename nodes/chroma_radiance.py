"""Chroma Radiance nodes (ComfyUI's nodes_chroma_radiance): the pixel-space empty "latent" and
the head's options between two sigmas. The model loads with UNETLoader, its text encoder with
CLIPLoader type chroma, and VAELoader's "pixel_space" turns its latents into images and back."""

from __future__ import annotations

from graphflow.api import LATENT, MODEL, Bool, ComfyAlias, Float, Int, Node

MAX_SIZE = 16384


class EmptyChromaRadianceLatent(Node):
    """A blank batch for Chroma Radiance: the image itself at full size, [B, 3, height, width],
    all zeros (mid-grey in its -1..1 pixels)."""
    category = "latent/chroma_radiance"
    width: int = Int(1024, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(1024, min=16, max=MAX_SIZE, step=16, resource="height")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("EmptyChromaRadianceLatentImage",))

    def run(self):
        import torch
        return {"samples": torch.zeros(self.batch_size, 3, self.height, self.width)}


class ChromaRadianceOptions(Node):
    """Allows setting advanced options for the Chroma Radiance model: nerf_tile_size, how many
    patches (x batch) its pixel head runs at once (-1: the model's default, 32; 0: all at once,
    may need a lot of memory; the image does not change), used by the network calls at sigmas
    from start_sigma down to end_sigma (both included). preserve_wrapper keeps an earlier
    ChromaRadianceOptions on the model (its options win where both apply); off, it is dropped.
    nerf_tile_size -1 leaves the model as it is; models other than Chroma Radiance ignore it."""
    category = "model_patches/chroma_radiance"
    model: MODEL
    preserve_wrapper: bool = Bool(True)
    start_sigma: float = Float(1.0, min=0.0, max=1.0)
    end_sigma: float = Float(0.0, min=0.0, max=1.0)
    nerf_tile_size: int = Int(-1, min=-1)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ChromaRadianceOptions",))

    def run(self):
        from graphflow.models.chroma import with_radiance_options

        if self.nerf_tile_size < 0:  # no option set: ComfyUI hands the model back untouched
            return self.model
        return with_radiance_options(self.model, self.start_sigma, self.end_sigma, self.preserve_wrapper,
                                     nerf_tile_size=self.nerf_tile_size)
