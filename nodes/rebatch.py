"""Re-batching: a list of latent or image batches cut again into batches of a chosen size.

Both take the whole list at once (input_is_list) and give a list (ListOf), as ComfyUI's
RebatchLatents and RebatchImages do, so a sampler or decoder after them runs once per batch."""

from __future__ import annotations

from graphflow.api import IMAGE, LATENT, ComfyAlias, Estimate, Int, ListOf, Node, NodeInputError, Size
from nodes.latent import _repeat_to, _samples

LATENT_SCALE = 8  # pixels per latent cell: a default noise mask is at pixel size, as in ComfyUI


def _batch_estimate(cls, widgets, inputs):
    """Batches of at most batch_size, so that the memory check of the nodes after a re-batch
    (which is often there to fit in memory) counts one batch, not the whole list."""
    size, batch_size = next(iter(inputs.values()), None), widgets.get("batch_size")
    if size is None or not isinstance(batch_size, int):
        return Estimate(size)
    return Estimate(Size(min(size.batch, batch_size), size.height, size.width))


class RebatchLatents(Node):
    """Cut a list of latent batches into batches of `batch_size`, in order; the last of a run may
    be smaller, and a latent of another height or width starts a new batch. Each latent keeps its
    noise mask (at its own size, as ComfyUI keeps it) and batch index (its position in the incoming
    list where it had none), so the sampler draws the same noise for it as before. Masks of
    different sizes that fall into one batch are resized to 8x the latent's size to join there
    (where ComfyUI stops with an error)."""
    category = "latent/batch"
    input_is_list = True
    latents: LATENT
    batch_size: int = Int(1, min=1, max=4096)
    outputs = {"latents": ListOf(LATENT)}
    comfy = ComfyAlias(("RebatchLatents",))
    estimate = classmethod(_batch_estimate)

    def run(self):
        size = self.batch_size[0]
        groups, offset = [], 0  # groups: consecutive (samples, masks, indices) of one height × width
        for latent in self.latents:
            samples = _samples(latent, "latents")
            masks = _noise_masks(latent, samples)
            indices = list(latent.get("batch_index", range(offset, offset + samples.shape[0])))
            offset += samples.shape[0]
            if groups and groups[-1][0][0].shape[-2:] == samples.shape[-2:]:
                for part, value in zip(groups[-1], (samples, masks, indices)):
                    part.append(value)
            else:
                groups.append(([samples], [masks], [indices]))
        return [batch for group in groups for batch in _cut(group, size)]


def _noise_masks(latent: dict, samples):
    """The latent's noise masks as [B, 1, h, w] at their own size (all ones at 8x the latent's
    size where it has none), one per latent."""
    import torch

    batch, height, width = samples.shape[0], samples.shape[-2] * LATENT_SCALE, samples.shape[-1] * LATENT_SCALE
    mask = latent.get("noise_mask")
    if mask is None:
        return torch.ones(batch, 1, height, width)
    if not torch.is_tensor(mask) or mask.ndim < 2:
        raise NodeInputError("latents", "expected a LATENT whose 'noise_mask' is a tensor [B, 1, h, w]")
    return _repeat_to(mask.reshape(-1, 1, *mask.shape[-2:]).float().cpu(), batch)


def _join_masks(masks: list, samples):
    """One batch's masks as one tensor: as they are where they share a size (the sampler resizes
    them), else each resized (bilinear) to 8x the latents' size."""
    import torch
    import torch.nn.functional as F

    if len({m.shape[-2:] for m in masks}) > 1:
        size = (samples.shape[-2] * LATENT_SCALE, samples.shape[-1] * LATENT_SCALE)
        masks = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear") for m in masks]
    return torch.cat(masks)


def _cut(group, size: int) -> list[dict]:
    import torch

    samples = torch.cat(group[0])
    masks = [m[i:i + 1] for m in group[1] for i in range(m.shape[0])]  # one per latent
    indices = [i for part in group[2] for i in part]
    batches = []
    for start in range(0, samples.shape[0], size):
        batch = {"samples": samples[start:start + size], "batch_index": indices[start:start + size]}
        mask = _join_masks(masks[start:start + size], samples)
        if mask.mean() != 1.0:  # all ones masks nothing: left out, as ComfyUI does
            batch["noise_mask"] = mask
        batches.append(batch)
    return batches


class RebatchImages(Node):
    """Cut a list of image batches into batches of `batch_size`, in order (the last may be
    smaller). The images that go into one batch must have the same height and width."""
    category = "image/batch"
    input_is_list = True
    images: IMAGE
    batch_size: int = Int(1, min=1, max=4096)
    outputs = {"images": ListOf(IMAGE)}
    comfy = ComfyAlias(("RebatchImages",))
    estimate = classmethod(_batch_estimate)

    def run(self):
        import torch

        size = self.batch_size[0]
        images = [image for batch in self.images for image in batch]
        batches = []
        for start in range(0, len(images), size):
            part = images[start:start + size]
            for k, image in enumerate(part, start):
                if image.shape != part[0].shape:
                    raise NodeInputError("images", f"image {k} is {tuple(image.shape)} [H, W, C] but image {start} "
                                         f"is {tuple(part[0].shape)}; images batched together must be one size")
            batches.append(torch.stack(part))
        return batches
