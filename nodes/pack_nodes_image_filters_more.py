"""spacepxl's ComfyUI-Image-Filters, part two (part one, nodes/pack_nodes_image_filters.py, holds
the image and mask filters and says what is left out): its latent filters (ClampOutliers,
AdainLatent, AdainFilterLatent, SharpenFilterLatent, BatchNormalizeLatent, OffsetLatentImage,
LatentNormalizeShuffle, VisualizeLatents, LatentStats as ImageFiltersLatentStats), conditioning and sampling nodes
(InstructPixToPixConditioningAdvanced, InpaintConditionEncode, InpaintConditionApply,
ConditioningSubtract, CustomNoise, PrintSigmas) and generated frames (GameOfLife, ExtractNFrames,
MergeFramesByIndex). Read from the pack's nodes.py at commit
7ba4e444f0416f5cf7ee55d56b1504dea2404ac7.

The pack's LatentStats shares its ComfyUI class name with graphflow's own LatentStats
(nodes/diagnostics.py), which stays that name's default: ImageFiltersLatentStats is read where a UI
save's node names this pack (cnr_id comfyui-image-filters, aux_id spacepxl/ComfyUI-Image-Filters).
"""

from __future__ import annotations

import functools

from graphflow.api import (CONDITIONING, FLOAT, IMAGE, LATENT, MASK, NOISE, SIGMAS, STRING, VAE, Bool, ComfyAlias,
                           Estimate, Float, Int, Node, NodeInputError, Size, check_interrupted, show, socket_type,
                           warn)
from nodes.conditioning import _crop_to_multiple, _with_options
from nodes.image import _image
from nodes.image_ops import _gaussian
from nodes.pack_nodes_image_filters import (MAX_RESOLUTION, SEED_MAX, _adain, _batch_normalize, _latent, _mask,
                                            _reference_for, _std_mean, gaussian_blur)

COMFY_PACK = "ComfyUI-Image-Filters"  # the custom node pack this module's ComfyUI classes come from

INPAINT_CONDITION = socket_type("INPAINT_CONDITION", description="an encoded inpainting picture and its mask "
                                "(InpaintConditionEncode -> InpaintConditionApply)")
LIST = socket_type("LIST", description="a Python list of frame indexes (ExtractNFrames -> MergeFramesByIndex)")


# -- latents ----------------------------------------------------------------------------------


def _with_samples(latent, samples) -> dict:
    return {**latent, "samples": samples}


class ClampOutliers(Node):
    """Clamp each latent's channels to mean +- std_dev standard deviations (of that latent and
    channel), as Image-Filters' Clamp Outliers does."""
    category = "latent/filters"
    latents: LATENT
    std_dev: float = Float(3.0, min=0.1, max=100.0, step=0.1, round=0.1)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("ClampOutliers",))

    def run(self):
        import torch
        samples = _latent(self.latents, "latents").clone()
        for i in range(samples.shape[0]):
            check_interrupted()
            for c in range(samples.shape[1]):
                sd, mean = _std_mean(samples[i, c])
                samples[i, c] = torch.clamp(samples[i, c], min=mean - sd * self.std_dev, max=mean + sd * self.std_dev)
        return _with_samples(self.latents, samples)


class AdainLatent(Node):
    """Adaptive instance normalisation of latents, as Image-Filters' AdaIN (Latent) does: each
    latent's channels take the mean and standard deviation of the reference latent at the same
    place in its batch (the reference batch must be as long); blended with the input by factor."""
    category = "latent/filters"
    latents: LATENT
    reference: LATENT
    factor: float = Float(1.0, min=-10.0, max=10.0, step=0.01, round=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("AdainLatent",))

    def run(self):
        samples = _latent(self.latents, "latents")
        reference = _reference_for(_latent(self.reference, "reference"), samples, "reference", 1)
        return _with_samples(self.latents, _adain(samples, reference, self.factor, 1))


def _image_latent(latent, name: str):
    samples = _latent(latent, name)
    if samples.ndim != 4:
        raise NodeInputError(name, f"expected an image latent [B, C, H, W], got {samples.ndim} dimensions")
    return samples


def _local_std_mean(t, d: int, name: str):
    """The pack's std_mean_filter: a Gaussian-blurred mean and the root of the blurred square deviation."""
    import torch
    mean = gaussian_blur(t, d, d, name)
    return torch.sqrt(gaussian_blur((t - mean) ** 2, d, d, name)), mean


class AdainFilterLatent(Node):
    """Local AdaIN of latents, as Image-Filters' AdaIN Filter (Latent) does: mean and standard
    deviation measured under a Gaussian window of 2*filter_size+1 (OpenCV's blur), the latents'
    swapped for the reference's pixel by pixel; blended with the input by factor. The reference
    must have the latents' shape, or be one latent of it for all (as the pack broadcasts it); one
    latent against several references, which the pack broadcasts to one output per reference, is
    refused (its output would not be the latents' batch)."""
    category = "latent/filters"
    latents: LATENT
    reference: LATENT
    filter_size: int = Int(1, min=1, max=128)
    factor: float = Float(1.0, min=-10.0, max=10.0, step=0.01, round=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("AdainFilterLatent",))

    def run(self):
        import torch
        samples = _image_latent(self.latents, "latents")
        reference = _image_latent(self.reference, "reference")
        if reference.shape[1:] != samples.shape[1:] or len(reference) not in (1, len(samples)):
            raise NodeInputError("reference", f"expected a latent of the latents' shape {tuple(samples.shape)} (or a "
                                              f"batch of 1), got {tuple(reference.shape)}")
        d = self.filter_size * 2 + 1
        t, ref = samples.movedim(1, -1).float(), reference.movedim(1, -1).float()
        t_std, t_mean = _local_std_mean(t, d, "latents")
        ref_std, ref_mean = _local_std_mean(ref, d, "reference")
        t = ((t - t_mean) / t_std * ref_std + ref_mean).movedim(-1, 1)
        return _with_samples(self.latents, torch.lerp(samples, t.to(samples), self.factor))


class SharpenFilterLatent(Node):
    """Unsharp mask on latents, as Image-Filters' Sharpen Filter (Latent) does: the detail over a
    Gaussian blur of window 2*filter_size+1 is multiplied by factor and put back."""
    category = "latent/filters"
    latents: LATENT
    filter_size: int = Int(1, min=1, max=128)
    factor: float = Float(1.0, min=-100.0, max=100.0, step=0.01, round=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("SharpenFilterLatent",))

    def run(self):
        samples = _image_latent(self.latents, "latents")
        d = self.filter_size * 2 + 1
        t = samples.movedim(1, -1).float()
        blurred = gaussian_blur(t, d, d, "latents")
        return _with_samples(self.latents, ((t - blurred) * self.factor + blurred).movedim(-1, 1).to(samples))


class BatchNormalizeLatent(Node):
    """Even out a latent batch as Image-Filters' Batch Normalize (Latent) does: each latent's
    channels take the mean and standard deviation of that channel over the whole batch; blended
    with the input by factor."""
    category = "latent/filters"
    latents: LATENT
    factor: float = Float(1.0, min=-10.0, max=10.0, step=0.01, round=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("BatchNormalizeLatent",))

    def run(self):
        return _with_samples(self.latents, _batch_normalize(_latent(self.latents, "latents"), self.factor, 1))


class OffsetLatentImage(Node):
    """A 4-channel latent batch (SD1 / SDXL) with each channel set to its offset, as
    Image-Filters' Offset Latent Image does: a start with a colour or brightness bias."""
    category = "latent"
    width: int = Int(512, min=16, max=MAX_RESOLUTION, step=8, resource="width")
    height: int = Int(512, min=16, max=MAX_RESOLUTION, step=8, resource="height")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    offset_0: float = Float(0.0, min=-10.0, max=10.0, step=0.1, round=0.1)
    offset_1: float = Float(0.0, min=-10.0, max=10.0, step=0.1, round=0.1)
    offset_2: float = Float(0.0, min=-10.0, max=10.0, step=0.1, round=0.1)
    offset_3: float = Float(0.0, min=-10.0, max=10.0, step=0.1, round=0.1)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("OffsetLatentImage",))

    def run(self):
        import torch
        offsets = torch.tensor([self.offset_0, self.offset_1, self.offset_2, self.offset_3], dtype=torch.float32)
        shape = (self.batch_size, 4, self.height // 8, self.width // 8)
        return {"samples": offsets.view(1, 4, 1, 1).expand(shape).clone()}


class LatentNormalizeShuffle(Node):
    """As Image-Filters' LatentNormalizeShuffle does: flatten > 0 removes the low frequencies
    (minus a ComfyUI Gaussian kernel of 2*flatten+1, sigma 1, zero-padded); normalize sets each
    latent's first four channels to mean 0, standard deviation 1; shuffle gives channels
    1, 2, 3, 0 (so four channels come out). Latents of four or more channels."""
    category = "latent/filters"
    latents: LATENT
    flatten: int = Int(0, min=0, max=16)
    normalize: bool = Bool(True)
    shuffle: bool = Bool(True)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("LatentNormalizeShuffle",))

    def run(self):
        import torch
        import torch.nn.functional as F
        t = _image_latent(self.latents, "latents").clone()
        if t.shape[1] < 4:
            raise NodeInputError("latents", f"expected 4 or more channels, got {t.shape[1]}")
        if self.flatten > 0:
            channels = t.shape[1]
            weights = _gaussian(self.flatten, 1.0)  # ComfyUI's gaussian_kernel(2r+1, 1) is its outer product
            kernel = torch.outer(weights, weights).to(t).repeat(channels, 1, 1).unsqueeze(1)
            t = t - F.conv2d(t, kernel, padding="same", groups=channels)
        if self.normalize:
            for b in range(t.shape[0]):
                for c in range(4):
                    sd, mean = _std_mean(t[b, c])
                    t[b, c] = (t[b, c] - mean) / sd
        if self.shuffle:
            t = t[:, [1, 2, 3, 0]]
        return _with_samples(self.latents, t)


class VisualizeLatents(Node):
    """The latent's channels side by side in grey, as Image-Filters' Visualize Latents does:
    normalised over the whole batch (mean 0.5, a standard deviation of 0.1), channels laid out
    down then across a square of int(sqrt(channels)) per side. Channels beyond the square (3 of
    them: one shown) are left out here, where the pack fails with a RuntimeError."""
    category = "utils"
    latent: LATENT
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("VisualizeLatents",))

    def run(self):
        import torch
        samples = _image_latent(self.latent, "latent")
        batch, channels, height, width = samples.shape
        samples = (samples - samples.mean()) / samples.std() / 10 + 0.5
        side = int(channels ** 0.5)
        grid = torch.zeros(batch, height * side, width * side)
        for i in range(channels):
            top, left = (i % side) * height, (i // side) * width
            # past the square the pack's slice is empty and its copy raises RuntimeError; left out here
            if top < height * side and left < width * side:
                grid[:, top:top + height, left:left + width] = samples[:, i]
        return grid.unsqueeze(-1).repeat(1, 1, 1, 3)


class ImageFiltersLatentStats(Node):
    """The latent's batch size, channels, width and height (and ×8, in pixels), and each channel's
    mean, standard deviation (n − 1), min and max over the whole batch to one decimal, as
    Image-Filters' LatentStats reports them (shown, and on `stats`); c0_mean .. c3_mean are the
    first four channels' means (0 for a channel the latent lacks).

    ComfyUI's class name "LatentStats" is graphflow's own LatentStats (diagnostics) by default: a UI
    save is read as this node where its properties name this pack (cnr_id comfyui-image-filters or
    aux_id spacepxl/ComfyUI-Image-Filters). An API prompt can't tell them apart (both take only
    `latent`), so one is read as graphflow's node."""
    category = "utils"
    latent: LATENT
    outputs = {"stats": STRING, "c0_mean": FLOAT, "c1_mean": FLOAT, "c2_mean": FLOAT, "c3_mean": FLOAT}
    output_node = True
    comfy = ComfyAlias(("LatentStats",), pack=("comfyui-image-filters", "spacepxl/ComfyUI-Image-Filters"))

    def run(self):
        import torch
        samples = _image_latent(self.latent, "latent")
        batch, channels, height, width = samples.shape
        lines = [f"batch size: {batch}", f"channels: {channels}", f"width: {width} ({width * 8})",
                 f"height: {height} ({height * 8})"]
        means = [0.0] * 4
        for i in range(channels):
            channel = samples[:, i].float()
            std, mean = (float(v) for v in torch.std_mean(channel))
            if i < 4:
                means[i] = mean
            lines.append(f"c{i} mean: {mean:.1f} std_dev: {std:.1f} min: {float(channel.min()):.1f} "
                         f"max: {float(channel.max()):.1f}")
        report = "\n".join(lines)
        show(text=[report])
        return (report, *means)


# -- conditioning, noise, sigmas --------------------------------------------------------------


class InstructPixToPixConditioningAdvanced(Node):
    """InstructPix2Pix conditioning from latents, as Image-Filters' node does: the original latent
    times original_scale goes into both conditionings as the model's concatenated image
    (cond1 = positive with it, cond2 = negative with it; `negative` passes the negative on
    unchanged for a three-way guider); the latent out is `new` times new_scale (samples only).
    The two latents must have one shape."""
    category = "conditioning/instructpix2pix"
    positive: CONDITIONING
    negative: CONDITIONING
    new: LATENT
    new_scale: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    original: LATENT
    original_scale: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    outputs = {"cond1": CONDITIONING, "cond2": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("InstructPixToPixConditioningAdvanced",))

    def run(self):
        new, original = _latent(self.new, "new"), _latent(self.original, "original")
        if new.shape != original.shape:
            raise NodeInputError("original", f"expected a latent of new's shape {tuple(new.shape)}, got "
                                             f"{tuple(original.shape)}")
        concat = original * self.original_scale
        cond1 = [(cond, {**options, "concat_latent_image": concat}) for cond, options in self.positive]
        cond2 = [(cond, {**options, "concat_latent_image": concat}) for cond, options in self.negative]
        return cond1, cond2, self.negative, {"samples": new * self.new_scale}


class InpaintConditionEncode(Node):
    """Encode the picture to inpaint once, as Image-Filters' Inpaint Condition Encode does: the
    mask is resized (bilinear) to the picture, both are centre-cropped to multiples of 8, the
    masked area (mask over 0.5) is greyed out and the picture encoded with the VAE; the encoded
    picture and the mask go on to Inpaint Condition Apply (as InpaintModelConditioning gives
    them to an inpainting model)."""
    category = "conditioning/inpaint"
    vae: VAE
    pixels: IMAGE
    mask: MASK
    outputs = {"inpaint_condition": INPAINT_CONDITION}
    comfy = ComfyAlias(("InpaintConditionEncode",))

    def run(self):
        import torch.nn.functional as F
        if self.vae is None:
            raise NodeInputError("vae", "no VAE: the checkpoint has none; load one with LoadVAE")
        pixels = _image(self.pixels, "pixels")
        mask = _mask(self.mask, "mask").reshape(-1, 1, *self.mask.shape[-2:]).float()
        if len(mask) not in (1, len(pixels)):
            raise NodeInputError("mask", f"expected 1 mask or one per picture ({len(pixels)}), got {len(mask)}")
        mask = F.interpolate(mask, size=pixels.shape[1:3], mode="bilinear")
        pixels, mask = _crop_to_multiple(pixels, 8, mask)
        keep = (1.0 - mask.round())[:, 0, :, :, None]
        greyed = (pixels[..., :3] - 0.5) * keep + 0.5
        # the VAE crops to its own multiple (the same centre crop: 8 divides it or it divides 8)
        encoded = self.vae.encode(_crop_to_multiple(greyed, self.vae.downscale)[0])
        return {"concat_latent_image": encoded, "concat_mask": mask}


class InpaintConditionApply(Node):
    """Give an encoded inpainting picture (Inpaint Condition Encode's) to both conditionings, as
    Image-Filters' Inpaint Condition Apply does. The latent is latents_optional (else zeros the
    size of the encoded picture); noise_mask adds the mask as its noise mask, so sampling
    changes only the masked area."""
    category = "conditioning/inpaint"
    positive: CONDITIONING
    negative: CONDITIONING
    inpaint_condition: INPAINT_CONDITION
    noise_mask: bool = Bool(False)
    latents_optional: LATENT = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("InpaintConditionApply",))

    def run(self):
        import torch
        condition = self.inpaint_condition
        if not isinstance(condition, dict) or not {"concat_latent_image", "concat_mask"} <= condition.keys():
            raise NodeInputError("inpaint_condition", "expected Inpaint Condition Encode's output")
        encoded, mask = condition["concat_latent_image"], condition["concat_mask"]
        if self.latents_optional is not None:
            latent = dict(self.latents_optional)
        else:
            latent = {"samples": torch.zeros_like(encoded)}
        if self.noise_mask:
            latent["noise_mask"] = mask
        values = {"concat_latent_image": encoded, "concat_mask": mask}
        return _with_options(self.positive, **values), _with_options(self.negative, **values), latent


class ConditioningSubtract(Node):
    """Subtract a prompt's embedding from others, as Image-Filters' ConditioningSubtract does:
    each entry of cond_orig minus subtract_strength times the first entry of cond_subtract (cut
    or zero-padded to its token count); pooled outputs likewise, where cond_orig has none its
    pooled output counting as cond_subtract's (so the result is that times 1 - subtract_strength,
    as in the pack). Only the first entry of cond_subtract is used."""
    category = "conditioning"
    cond_orig: CONDITIONING
    cond_subtract: CONDITIONING
    subtract_strength: float = Float(1.0, step=0.01)
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSubtract",))

    def run(self):
        import torch
        if not self.cond_subtract:
            raise NodeInputError("cond_subtract", "the conditioning is empty")
        if len(self.cond_subtract) > 1:
            warn("cond_subtract has more than one entry: only the first is subtracted")
        source, source_options = self.cond_subtract[0]
        pooled_from = source_options.get("pooled_output")
        out = []
        for cond, options in self.cond_orig:
            if source.shape[-1] != cond.shape[-1]:
                raise NodeInputError("cond_subtract", f"expected embeddings of width {cond.shape[-1]} "
                                                      f"(cond_orig's), got {source.shape[-1]}")
            part = source[:, :cond.shape[1]].to(cond)
            if part.shape[1] < cond.shape[1]:
                part = torch.cat([part, part.new_zeros(part.shape[0], cond.shape[1] - part.shape[1], part.shape[2])], 1)
            options = dict(options)
            pooled_to = options.get("pooled_output", pooled_from)
            if pooled_from is not None and pooled_to is not None:
                options["pooled_output"] = pooled_to - pooled_from * self.subtract_strength
            out.append((cond - part * self.subtract_strength, options))
        return out


class CustomNoise(Node):
    """Starting noise taken from a latent, as Image-Filters' CustomNoise does: each latent's
    channels normalised to mean 0, standard deviation 1 over height and width; the sampler adds
    it as it would its seeded noise (its shape must be the sampled latent's). Samplers that draw
    more noise on the way (ancestral, SDE) draw it with seed 0, as the pack's."""
    category = "sampling/custom_sampling/noise"
    noise: LATENT
    outputs = {"NOISE": NOISE}
    comfy = ComfyAlias(("CustomNoise",))

    def run(self):
        import torch
        samples = _latent(self.noise, "noise").detach().float().cpu()
        sd, mean = torch.std_mean(samples, dim=(-2, -1), keepdim=True)
        return _latent_noise_class()(given=(samples - mean) / sd)


@functools.cache
def _latent_noise_class():
    """A NoiseSource (so the samplers and AddNoise take it) that is a fixed tensor, made on first
    use: graphflow.sampling imports torch, which listing nodes doesn't need."""
    from dataclasses import dataclass, field

    from graphflow.sampling.noise import NoiseSource

    @dataclass(frozen=True)
    class LatentNoise(NoiseSource):
        given: object = field(default=None, compare=False)

        def generate(self, samples, batch_index=None):
            if tuple(samples.shape) != tuple(self.given.shape):
                raise NodeInputError("noise", f"expected the sampled latent's shape {tuple(samples.shape)}, got "
                                              f"{tuple(self.given.shape)}")
            return self.given.clone()

    return LatentNoise


class PrintSigmas(Node):
    """Show the sigmas and pass them on, as Image-Filters' PrintSigmas does."""
    category = "utils"
    sigmas: SIGMAS
    outputs = {"SIGMAS": SIGMAS}
    output_node = True
    comfy = ComfyAlias(("PrintSigmas",))

    def run(self):
        show(text=[str(self.sigmas)])
        return self.sigmas


# -- generated frames -------------------------------------------------------------------------


class GameOfLife(Node):
    """Conway's Game of Life, as Image-Filters' Game Of Life does: a width x height grid (wrapping
    at the edges) seeded by uniform noise over threshold (torch's generator seeded with seed), or
    by optional_start's first mask (resized, nearest) over threshold; `steps` frames, each cell
    cell_size pixels. Outputs the frames as images and masks, and the cells that turned off and
    on at each step."""
    category = "image/filters"
    width: int = Int(32, min=8, max=1024)
    height: int = Int(32, min=8, max=1024)
    cell_size: int = Int(16, min=8, max=1024, step=8)
    seed: int = Int(0, min=0, max=SEED_MAX)
    threshold: float = Float(0.8, min=0.0, max=1.0, step=0.01)
    steps: int = Int(64, min=1, max=999999)
    optional_start: MASK = None
    outputs = {"image": IMAGE, "mask": MASK, "off": MASK, "on": MASK}
    comfy = ComfyAlias(("GameOfLife",))

    @classmethod
    def estimate(cls, widgets, inputs):
        values = [widgets.get(k) for k in ("steps", "height", "width", "cell_size")]
        if not all(isinstance(v, int) for v in values):
            return Estimate(None)
        steps, height, width, cell = values
        return Estimate(Size(steps, height * cell, width * cell))

    def run(self):
        import torch
        import torch.nn.functional as F
        if self.optional_start is None:
            grid = torch.rand(1, 1, self.height, self.width, generator=torch.Generator().manual_seed(self.seed))
        else:
            start = _mask(self.optional_start, "optional_start")[:1].unsqueeze(0).float()
            grid = F.interpolate(start, size=(self.height, self.width))
        grid = (grid > self.threshold).float()
        kernel = torch.ones(1, 1, 3, 3)
        kernel[0, 0, 1, 1] = 0
        frames, offs, ons = [grid], [torch.zeros_like(grid)], [torch.zeros_like(grid)]
        for _ in range(self.steps - 1):
            check_interrupted()
            neighbours = F.conv2d(F.pad(grid, (1, 1, 1, 1), mode="circular"), kernel)
            alive = (neighbours == 3) | ((grid == 1) & (neighbours == 2))
            new = alive.float()
            offs.append(((grid == 1) & ~alive).float())
            ons.append(((grid == 0) & alive).float())
            frames.append(new)
            grid = new

        def scaled(states):
            size = (self.height * self.cell_size, self.width * self.cell_size)
            return F.interpolate(torch.cat(states), size=size).squeeze(1)
        masks = scaled(frames)
        return masks.unsqueeze(-1).repeat(1, 1, 1, 3), masks, scaled(offs), scaled(ons)


class ExtractNFrames(Node):
    """Pick `frames` evenly spaced frames (first and last included) from the images and masks, as
    Image-Filters' Extract N Frames does, with their indexes for Merge Frames By Index; fewer
    frames than asked repeat the last. A missing input gives black 512x512 frames. frames stops
    at 4096 (the pack sets no maximum; each frame is a copy)."""
    category = "image/filters/frames"
    frames: int = Int(16, min=2, max=4096, resource="batch")
    images: IMAGE = None
    masks: MASK = None
    outputs = {"index_list": LIST, "images": IMAGE, "masks": MASK}
    comfy = ComfyAlias(("ExtractNFrames",))

    @classmethod
    def estimate(cls, widgets, inputs):
        """`frames` images and masks, each of its linked input's size (512x512 without one): the size
        is the smaller of the two (one size stands for both outputs downstream), and what the larger
        output holds beyond it is working memory, so the bytes counted are the outputs' own."""
        frames = widgets.get("frames")
        if not isinstance(frames, int):
            return Estimate(None)
        (ih, iw), (mh, mw) = [(s.height, s.width) if s is not None else (512, 512)
                              for s in (inputs.get("images"), inputs.get("masks"))]
        height, width = min(((ih, iw), (mh, mw)), key=lambda hw: hw[0] * hw[1])
        held = frames * (ih * iw * 12 + mh * mw * 4)  # float32 RGB images, float32 masks
        return Estimate(Size(frames, height, width), memory=held - frames * height * width * 16)

    def run(self):
        import torch
        images = None if self.images is None else _image(self.images, "images")
        masks = None if self.masks is None else _mask(self.masks, "masks")
        length = max([2] + [len(x) for x in (images, masks) if x is not None])
        n = min(length, self.frames)
        step = (length - 1) / (n - 1)
        ids = [round(i * step) for i in range(n)]
        ids += [ids[-1]] * (self.frames - len(ids))
        picked_images = [images[min(i, len(images) - 1)] if images is not None else torch.zeros(512, 512, 3)
                         for i in ids]
        picked_masks = [masks[min(i, len(masks) - 1)] if masks is not None else torch.zeros(512, 512) for i in ids]
        return ids, torch.stack(picked_images), torch.stack(picked_masks)


class MergeFramesByIndex(Node):
    """Put processed frames back at their indexes (Extract N Frames' list), as Image-Filters'
    Merge Frames By Index does: each frame is blended in by its mask (whole without masks); the
    mask out is orig_masks (1 where none) with the merged frames set to 0. Indexes are Python's, as
    in the pack: -1 is the last frame."""
    category = "image/filters/frames"
    index_list: LIST
    orig_images: IMAGE
    images: IMAGE
    orig_masks: MASK = None
    masks: MASK = None
    outputs = {"images": IMAGE, "masks": MASK}
    comfy = ComfyAlias(("MergeFramesByIndex",))

    def run(self):
        import torch
        merged = _image(self.orig_images, "orig_images").clone()
        images = _image(self.images, "images")
        masks = None if self.masks is None else _mask(self.masks, "masks")
        indexes = list(self.index_list) if isinstance(self.index_list, (list, tuple)) else None
        if indexes is None or not all(isinstance(i, int) and -len(merged) <= i < len(merged) for i in indexes):
            raise NodeInputError("index_list", f"expected a list of frame indexes {-len(merged)}..{len(merged) - 1}")
        if len(images) < len(indexes) or masks is not None and len(masks) < len(indexes):
            raise NodeInputError("images", f"expected a frame (and mask) for each of the {len(indexes)} indexes")
        if images.shape[1:] != merged.shape[1:]:
            raise NodeInputError("images", f"expected frames of orig_images' size {tuple(merged.shape[1:])}, got "
                                           f"{tuple(images.shape[1:])}")
        if masks is not None and masks.shape[1:] != merged.shape[1:3]:
            raise NodeInputError("masks", f"expected masks of orig_images' size {merged.shape[2]}x{merged.shape[1]}, "
                                          f"got {masks.shape[2]}x{masks.shape[1]}")
        out_masks = torch.ones(merged.shape[:3])
        if self.orig_masks is not None:
            orig_masks = _mask(self.orig_masks, "orig_masks")
            if orig_masks.shape[1:] != merged.shape[1:3]:
                raise NodeInputError("orig_masks", f"expected masks of orig_images' size {merged.shape[2]}x"
                                                   f"{merged.shape[1]}, got {orig_masks.shape[2]}x"
                                                   f"{orig_masks.shape[1]}")
            for i in range(len(out_masks)):
                out_masks[i] = orig_masks[min(i, len(orig_masks) - 1)]
        for i, frame in enumerate(indexes):
            frame_mask = masks[i] if masks is not None else torch.ones(merged.shape[1:3])
            merged[frame] = merged[frame] * (1 - frame_mask[..., None]) + images[i] * frame_mask[..., None]
            out_masks[frame] = 0
        return merged, out_masks
