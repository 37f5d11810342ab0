"""ComfyUI-Easy-Use's further samplers and preSampling nodes, under the pack's class names, inputs
and outputs (read from yolain/ComfyUI-Easy-Use: py/nodes/samplers.py at
39fa6ef37ab612ec9aed8dd04c17b45e23275ebe and py/nodes/preSampling.py at
ca93381de85abf2a3e2f70f30f5f567d2d6caa13, the versions the first round read; py/nodes/fix.py at
4825827b06d9e787007870cd4f93acfad665879e; the gradual-latent samplers' upscale-step rule from the
GradualLatentSampler source its py/libs/gradual_latent_hires_fix.py copies): easy fullkSampler,
easy kSamplerInpainting, easy kSamplerDownscaleUnet, easy preSamplingNoiseIn, easy
preSamplingSdTurbo / kSamplerSDTurbo, easy preSamplingCustom / kSamplerCustom (onto the core
custom-sampling nodes), easy unSampler, easy hiresFix, and Stable Cascade's easy cascadeLoader
(py/nodes/loaders.py at 037080ac3935b5a398a12a6510dd600c762d8983), easy preSamplingCascade, easy
fullCascadeKSampler and easy cascadeKSampler. They take and give the pipe of
nodes/pack_nodes_easyuse_pipe.py (its loaders, preSampling and kSampler).

Left out: preSamplingDynamicCFG (graphflow has no dynamic-thresholding CFG),
kSamplerLayerDiffusion / preSamplingLayerDiffusion (LayerDiffuse's model weights) and the
detailer fixes of fix.py (Impact Pack's detector pipes). Refused by name: kSamplerInpainting's
Fooocus and BrushNet choices (model weights the pack downloads), preSamplingSdTurbo's
gradual-latent upscaling runs and preSamplingCustom's inversed_euler."""

from __future__ import annotations

from types import SimpleNamespace

from graphflow.api import CLIP, CONDITIONING, IMAGE, INT, LATENT, MASK, MODEL, SAMPLER, SIGMAS, VAE, Bool, Choice, \
    ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, Text, check_run_memory, folders, run_limits, \
    show
from graphflow.choices import DEEP_SHRINK_RESIZE_METHODS, SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.conditioning import InpaintModelConditioning
from nodes.mask import GrowMask, grow_mask
from nodes.model_sampling import DifferentialDiffusion
from nodes.efficiency_nodes import LORA_STACK, _lora_rows
from nodes.pack_nodes import _apply_lora, _core
from nodes.pack_nodes_easyuse import SEED_MAX
from nodes import custom_sampling
from nodes.custom_sampling import KSamplerSelect, SamplerCustom, SDTurboScheduler
from nodes.pack_nodes_easyuse_pipe import IMAGE_OUTPUTS, PIPE_LINE, RESOLUTIONS, _pipe_dict, _placeholder_image, \
    _text_encoder_choices, decoded_and_shown, easy_ksample, latent_size, shown
from nodes.unet_patches import PatchModelAddDownscale
from nodes.upscale import ImageUpscaleWithModel, LoadUpscaleModel
from nodes.vae import VAEEncode, VAEEncodeForInpaint

COMFY_PACK = "ComfyUI-Easy-Use"  # the custom node pack this module's ComfyUI classes come from

SAMPLERS = "EasyUse/Sampler"
# the image_output choices of the pack's inpainting, downscale-UNet and SDTurbo samplers
PLAIN_IMAGE_OUTPUTS = ("Hide", "Preview", "Save", "Hide&Save", "Sender", "Sender&Save")


class EasyFullKSampler(Node):
    """Sample a pipe with the sampler settings given here, as Easy-Use's easy fullkSampler does:
    steps, cfg, sampler, scheduler, denoise and seed from the widgets (the pipe's start / end step,
    add_noise and leftover-noise settings from easy preSamplingAdvanced still apply, to the
    schedule denoise makes, as in the pack); model, positive, negative, latent, VAE and CLIP, when connected, in
    place of the pipe's;
    an image (without a latent) is encoded with the VAE as the latent to start from. Then decoded
    and shown or saved as easy kSampler does (image_output, save_prefix). Gives the pipe (the new
    latent, images, seed, the connected conditionings, VAE and CLIP; its model and sampler settings
    as they were), the images, model, conditionings, latent, VAE, CLIP and seed. Left out: the
    xyPlot input (the pack's XY plot) and, as in easy kSampler, Preview&Choose (kept as Preview)
    and Sender's image receiver."""
    category = SAMPLERS
    output_node = True
    pipe: PIPE_LINE
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "normal")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    image_output: str = Choice(IMAGE_OUTPUTS, "Hide")
    link_id: int = Int(0, min=0, max=2 ** 63 - 1)
    save_prefix: str = Text("ComfyUI", file_name=True)
    seed: int = Int(0, min=0, max=SEED_MAX)
    model: MODEL = None
    positive: CONDITIONING = None
    negative: CONDITIONING = None
    latent: LATENT = None
    vae: VAE = None
    clip: CLIP = None
    image: IMAGE = None
    outputs = {"pipe": PIPE_LINE, "image": IMAGE, "model": MODEL, "positive": CONDITIONING,
               "negative": CONDITIONING, "latent": LATENT, "vae": VAE, "clip": CLIP, "seed": INT}
    comfy = ComfyAlias(("easy fullkSampler",), ignore=("xyPlot",),
                       optional=("seed", "model", "positive", "negative", "latent", "vae", "clip", "image"))

    def run(self):
        pipe = _pipe_dict(self.pipe)
        vae = self.vae if self.vae is not None else pipe.get("vae")
        samples = self.latent
        if self.image is not None and samples is None:
            if vae is None:
                raise NodeInputError("image", "an image to encode needs a VAE: connect one or give a pipe with one")
            samples = _core(VAEEncode, {"pixels": "image"}, pixels=self.image[..., :3], vae=vae)
        parts = {"positive": self.positive, "negative": self.negative, "samples": samples, "vae": self.vae,
                 "clip": self.clip, "seed": self.seed}
        settings = {"steps": self.steps, "cfg": self.cfg, "sampler_name": self.sampler_name,
                    "scheduler": self.scheduler, "denoise": self.denoise}
        new_pipe, images = easy_ksample(self, parts=parts, sampler_settings=settings)
        return (new_pipe, images, new_pipe.get("model"), new_pipe["positive"], new_pipe["negative"],
                new_pipe["samples"], new_pipe["vae"], new_pipe.get("clip"), new_pipe["seed"])


INPAINT_ADDITIONS = ("None", "InpaintModelCond", "Differential Diffusion", "Fooocus Inpaint", "Fooocus Inpaint + DD",
                     "Brushnet Random", "Brushnet Random + DD", "Brushnet Segmentation", "Brushnet Segmentation + DD")


class EasyKSamplerInpainting(Node):
    """Inpaint the pipe's images, as Easy-Use's easy kSamplerInpainting does, then sample as easy
    kSampler does (the pipe's settings from easy preSampling). The mask is `mask`, else the
    pipe's latent's noise mask. additional "None": the images encoded for inpainting with the mask
    grown by grow_mask_by (VAE Encode (for Inpainting)); "InpaintModelCond": the mask grown by
    grow_mask_by pixels (Grow Mask, square corners), then InpaintModelConditioning with a noise
    mask; "Differential Diffusion": InpaintModelConditioning with the mask as it is and the model
    through Differential Diffusion. Gives the pipe (the inpainting conditionings and the new
    latent), the images and the VAE. Left out: the Fooocus Inpaint and BrushNet choices (their
    model files, which the pack downloads; an error naming `additional`)."""
    category = SAMPLERS
    output_node = True
    pipe: PIPE_LINE
    grow_mask_by: int = Int(6, min=0, max=64)
    image_output: str = Choice(PLAIN_IMAGE_OUTPUTS, "Preview")
    link_id: int = Int(0, min=0, max=2 ** 63 - 1)
    save_prefix: str = Text("ComfyUI", file_name=True)
    additional: str = Choice(INPAINT_ADDITIONS, "None")
    model: MODEL = None
    mask: MASK = None
    outputs = {"pipe": PIPE_LINE, "image": IMAGE, "vae": VAE}
    comfy = ComfyAlias(("easy kSamplerInpainting",), optional=("model", "mask"))

    def run(self):
        if "Fooocus" in self.additional or "Brushnet" in self.additional:
            raise NodeInputError("additional", f"{self.additional!r} needs the pack's Fooocus / BrushNet inpaint "
                                               "models, which are not built in; use None, InpaintModelCond or "
                                               "Differential Diffusion")
        pipe = _pipe_dict(self.pipe)
        latent, images, vae = pipe.get("samples"), pipe.get("images"), pipe.get("vae")
        mask = self.mask
        if mask is None and isinstance(latent, dict):
            mask = latent.get("noise_mask")
        if mask is None:
            raise NodeInputError("mask", "no mask: connect one, or give a pipe whose latent has a noise mask")
        if images is None:
            raise NodeInputError("pipe", "the pipe has no images to inpaint (easy preSampling's image_to_latent or "
                                         "easy pipeIn's image puts them there)")
        if vae is None:
            raise NodeInputError("pipe", "the pipe has no VAE to encode its images with")
        model = self.model if self.model is not None else pipe.get("model")
        positive, negative = pipe.get("positive"), pipe.get("negative")
        renamed = {"pixels": "pipe", "vae": "pipe", "positive": "pipe", "negative": "pipe"}
        if self.additional == "None":
            latent = _core(VAEEncodeForInpaint, renamed, pixels=images, vae=vae, mask=mask,
                           grow_mask_by=self.grow_mask_by)
        else:
            if self.additional == "InpaintModelCond":
                mask = _core(GrowMask, {"expand": "grow_mask_by"}, mask=mask, expand=self.grow_mask_by,
                             tapered_corners=False)
            positive, negative, latent = _core(InpaintModelConditioning, renamed, positive=positive,
                                               negative=negative, vae=vae, pixels=images, mask=mask,
                                               noise_mask=True)
            if self.additional == "Differential Diffusion":
                model = _core(DifferentialDiffusion, model=model)
        new_pipe, images = easy_ksample(self, parts={"positive": positive, "negative": negative, "samples": latent},
                                        model=model)
        return new_pipe, images, new_pipe["vae"]


DOWNSCALE_MODES = ("None", "Auto", "Custom")


def auto_downscale_factor(model, samples) -> float | None:
    """The pack's Auto Deep Shrink factor: the latent's pixel width (height) over the UNet's
    context_dim, used when the width's is above 1.75 (else the height's, above 1.25) and the
    longer side is above context_dim; None where it does not shrink."""
    config = getattr(getattr(model, "unet", None), "config", None)
    context_dim = getattr(config, "context_dim", None)
    if not context_dim or not isinstance(samples, dict) or "samples" not in samples:
        return None
    height, width = samples["samples"].shape[2] * 8, samples["samples"].shape[3] * 8
    if max(width, height) <= context_dim:
        return None
    if width / context_dim > 1.75:
        return width / context_dim
    if height / context_dim > 1.25:
        return height / context_dim
    return None


class EasyKSamplerDownscaleUnet(Node):
    """easy kSampler with Kohya's Deep Shrink on the model (PatchModelAddDownscale), as Easy-Use's
    easy kSamplerDownscaleUnet does. downscale_mode "Custom": the widgets' block, factor, percent
    range, after-skip and methods; "Auto": the pack's own rule, block_number's block shrunk by the
    latent's pixel width over the UNet's context_dim when that is above 1.75 (else by the height's
    when above 1.25, and only when the longer side is above context_dim), from 0 to 0.35 of the
    sampling, after the skip, bicubic both ways; "None": the model as it is. Same image outputs and
    left-out parts as easy kSampler."""
    category = SAMPLERS
    output_node = True
    pipe: PIPE_LINE
    downscale_mode: str = Choice(DOWNSCALE_MODES, "Auto")
    block_number: int = Int(3, min=1, max=32)
    downscale_factor: float = Float(2.0, min=0.1, max=9.0, step=0.001)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(0.35, min=0.0, max=1.0, step=0.001)
    downscale_after_skip: bool = Bool(True)
    downscale_method: str = Choice(DEEP_SHRINK_RESIZE_METHODS, "bicubic")
    upscale_method: str = Choice(DEEP_SHRINK_RESIZE_METHODS, "bicubic")
    image_output: str = Choice(PLAIN_IMAGE_OUTPUTS, "Preview")
    link_id: int = Int(0, min=0, max=2 ** 63 - 1)
    save_prefix: str = Text("ComfyUI", file_name=True)
    model: MODEL = None
    outputs = {"pipe": PIPE_LINE, "image": IMAGE}
    comfy = ComfyAlias(("easy kSamplerDownscaleUnet",), optional=("model",))

    def run(self):
        pipe = _pipe_dict(self.pipe)
        model = self.model if self.model is not None else pipe.get("model")
        if model is not None and self.downscale_mode == "Custom":
            model = _core(PatchModelAddDownscale, model=model, block_number=self.block_number,
                          downscale_factor=self.downscale_factor, start_percent=self.start_percent,
                          end_percent=self.end_percent, downscale_after_skip=self.downscale_after_skip,
                          downscale_method=self.downscale_method, upscale_method=self.upscale_method)
        elif model is not None and self.downscale_mode == "Auto":
            factor = auto_downscale_factor(model, pipe.get("samples"))
            if factor is not None:
                model = _core(PatchModelAddDownscale, model=model, block_number=self.block_number,
                              downscale_factor=factor, start_percent=0.0, end_percent=0.35,
                              downscale_after_skip=True, downscale_method="bicubic", upscale_method="bicubic")
        return easy_ksample(self, model=model)


def slerp(factor: float, low, high):
    """Spherical interpolation between two noise batches, image by image: along the great circle
    from low (factor 0) to high (factor 1), each keeping its own length."""
    import torch
    flat_low, flat_high = low.reshape(low.shape[0], -1), high.reshape(high.shape[0], -1)
    unit_low = torch.nan_to_num(flat_low / flat_low.norm(dim=1, keepdim=True))
    unit_high = torch.nan_to_num(flat_high / flat_high.norm(dim=1, keepdim=True))
    angle = torch.acos((unit_low * unit_high).sum(1))
    sin = torch.sin(angle)
    mixed = ((torch.sin((1.0 - factor) * angle) / sin)[:, None] * flat_low
             + (torch.sin(factor * angle) / sin)[:, None] * flat_high)
    return mixed.reshape(low.shape)


class EasyPreSamplingNoiseIn(Node):
    """Put sampler settings into a pipe with variation noise mixed into its latent, as Easy-Use's
    easy preSamplingNoiseIn does: one noise image from `seed` (for the whole batch) and a batch
    from optional_noise_seed (seed + 1 when unconnected or the same) are slerped at `factor`, scaled
    by the schedule's sigma at the first step denoise keeps less its last (steps' sigmas as
    KSampler's scheduler gives them) over the model's latent scale factor, and added to the latent
    (optional_latent, else the pipe's); with a noise mask the noise goes only where it is set and
    the mask grows by 5 pixels (tapered corners). easy kSampler then samples with denoise and no
    further noise, as in the pack. The noise has the latent's channel count (the pack: always 4,
    so only 4-channel latents run there)."""
    category = "EasyUse/PreSampling"
    pipe: PIPE_LINE
    factor: float = Float(0.1, min=0.0, max=1.0, step=0.01)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "normal")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    seed: int = Int(0, min=0, max=SEED_MAX)
    optional_noise_seed: INT = None
    optional_latent: LATENT = None
    outputs = {"pipe": PIPE_LINE}
    comfy = ComfyAlias(("easy preSamplingNoiseIn",), optional=("optional_noise_seed", "optional_latent"))

    def run(self):
        import torch
        import torch.nn.functional as F
        from graphflow.sampling import DISCARD_PENULTIMATE_SIGMA, compute_sigmas, model_sampling_for
        pipe = _pipe_dict(self.pipe)
        latent = self.optional_latent if self.optional_latent is not None else pipe.get("samples")
        if not isinstance(latent, dict) or "samples" not in latent:
            raise NodeInputError("optional_latent", "no latent: connect one or give a pipe with one")
        model = pipe.get("model")
        if model is None:
            raise NodeInputError("pipe", "the pipe has no model (its noise schedule scales the noise)")
        samples = latent["samples"]
        if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
            got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
            raise NodeInputError("optional_latent" if self.optional_latent is not None else "pipe",
                                 f"expected an image latent (batch, channels, height, width), got {got}")
        batch, channels, height, width = samples.shape
        # generators of their own, as the pack's torch.manual_seed draws, leaving the process's random state alone
        base = torch.randn((1, channels, height, width),
                           generator=torch.Generator().manual_seed(self.seed)).repeat(batch, 1, 1, 1)
        variation_seed = self.optional_noise_seed
        if variation_seed is not None and (not isinstance(variation_seed, int) or isinstance(variation_seed, bool)
                                           or not 0 <= variation_seed < 2 ** 64):
            raise NodeInputError("optional_noise_seed", f"expected a whole number from 0 to 2**64 - 1 (a torch "
                                                        f"seed), got {variation_seed!r}")
        if variation_seed is None or variation_seed == self.seed:
            variation_seed = self.seed + 1
        variation = torch.randn((batch, channels, height, width),
                                generator=torch.Generator().manual_seed(variation_seed))
        noise = slerp(self.factor, base, variation)
        sigmas = compute_sigmas(model_sampling_for(model), self.scheduler, self.steps, 1.0,
                                discard_penultimate=self.sampler_name in DISCARD_PENULTIMATE_SIGMA)
        start = round(self.steps - self.steps * self.denoise)
        sigma = float(sigmas[start] - sigmas[self.steps]) / model.latent_format.scale_factor
        work = {**latent, "samples": samples.clone() + noise.to(samples) * sigma}
        if "noise_mask" in latent:
            mask = latent["noise_mask"]
            resized = F.interpolate(mask.reshape(-1, 1, *mask.shape[-2:]).float(), size=(height, width),
                                    mode="bilinear").expand(-1, channels, -1, -1)
            if resized.shape[0] < batch:
                resized = resized.repeat((batch - 1) // resized.shape[0] + 1, 1, 1, 1)[:batch]
            work["samples"] = resized * work["samples"] + (1 - resized) * samples
            work["noise_mask"] = grow_mask(mask.reshape(-1, *mask.shape[-2:]), 5, True)
        settings = pipe.get("loader_settings") or {}
        return {**{k: pipe.get(k) for k in ("model", "positive", "negative", "vae", "clip", "images")},
                "samples": work, "seed": self.seed,
                "loader_settings": {**settings, "steps": self.steps, "cfg": self.cfg, "sampler_name": self.sampler_name,
                                    "scheduler": self.scheduler, "denoise": self.denoise, "add_noise": "disable"}}


HIRES_RESCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos", "bislerp")
HIRES_RESCALES = ("by percentage", "to Width/Height", "to longer side - maintain aspect")
HIRES_MAX_SIDE = 16384  # ComfyUI's MAX_RESOLUTION, where the pack clamps a percentage
# the most pixels the upscale model may make of one image without a server limit (16384², 3 GB
# of float pixels): the model's scale is known only once it is loaded, past the planner's check
HIRES_MAX_PIXELS = HIRES_MAX_SIDE ** 2


def nearest_multiple_of_8(value) -> int:
    """The pack's enforce_mul_of_64 (py/libs/sampler.py at e754b97b99558851343b5e2e9ead76cc0adc6bb4):
    truncated to a whole number, at least 8, then to the nearest multiple of 8 (4 over goes up)."""
    value = max(int(value), 8)
    leftover = value % 8
    return value - leftover if leftover < 4 else value + 8 - leftover


def hires_size(node, width: int, height: int) -> tuple[int, int]:
    """The pack's size after the model: by percentage of it (clamped to 16384, to a multiple of
    8; percent 0 keeps the width and height widgets), the width and height widgets, or the longer
    side (a multiple of 8) with the other side in proportion."""
    if node.rescale == "by percentage" and node.percent != 0:
        return (nearest_multiple_of_8(min(node.percent / 100 * width, HIRES_MAX_SIDE)),
                nearest_multiple_of_8(min(node.percent / 100 * height, HIRES_MAX_SIDE)))
    if node.rescale == "to longer side - maintain aspect":
        side = nearest_multiple_of_8(node.longer_side)
        if width > height:
            return side, nearest_multiple_of_8(side * height / width)
        return nearest_multiple_of_8(side * width / height), side
    return node.width, node.height


class EasyHiresFix(Node):
    """Upscale images with an upscale model and encode them for a second sampling pass, as
    Easy-Use's easy hiresFix does: the pipe's images (or `image`) through the model in 192-pixel
    tiles overlapping by 8 (as the pack tiles them), clamped to 0..1; with rescale_after_model
    then resized (rescale_method, crop) by percentage of the upscaled size (a multiple of 8),
    to width x height, or to longer_side keeping the aspect; cut to a multiple of 8 and encoded
    with the pipe's VAE (or `vae`). Gives the pipe (the new latent and images; without a pipe an
    empty one, as the pack), the images and the latent; image_output shows or saves the images
    as the pack's samplers do. Before the model runs, the size it makes (the image times its
    scale) is refused over the server's max_pixels or 16384 x 16384 pixels an image, and a
    batch over the server's max_batch; a final size over max_pixels is refused before resizing."""
    category = "EasyUse/Fix"
    output_node = True
    model_name: str = Choice(lambda: folders.list_models("upscale_models"), model_folder="upscale_models")
    rescale_after_model: bool = Choice((False, True), True)
    rescale_method: str = Choice(HIRES_RESCALE_METHODS, "nearest-exact")
    rescale: str = Choice(HIRES_RESCALES, "by percentage")
    percent: int = Int(50, min=0, max=1000)
    width: int = Int(1024, min=64, max=16384, step=8)
    height: int = Int(1024, min=64, max=16384, step=8)
    longer_side: int = Int(1024, min=64, max=16384, step=8)
    crop: str = Choice(("disabled", "center"), "disabled")
    image_output: str = Choice(PLAIN_IMAGE_OUTPUTS, "Preview")
    link_id: int = Int(0, min=0, max=2 ** 63 - 1)
    save_prefix: str = Text("ComfyUI", file_name=True)
    pipe: PIPE_LINE = None
    image: IMAGE = None
    vae: VAE = None
    outputs = {"pipe": PIPE_LINE, "image": IMAGE, "latent": LATENT}
    comfy = ComfyAlias(("easy hiresFix",), optional=("pipe", "image", "vae"))

    @classmethod
    def fingerprint(cls, model_name=None, **widgets):
        return folders.model_state("upscale_models", model_name) if model_name else None

    @classmethod
    def estimate(cls, widgets, inputs):
        # the sizes the widgets set: width x height, or longer_side at the image's aspect; the
        # model's scale (a percentage's base) is known only in run(), which checks that size
        image = inputs.get("image")
        batch = image.batch if image is not None else 1  # a pipe's images: at least one
        rescale, width, height = widgets.get("rescale"), widgets.get("width"), widgets.get("height")
        if widgets.get("rescale_after_model") is not True:
            return Estimate(image)  # a model's scale is at least 1
        if (rescale == "to Width/Height" or rescale == "by percentage" and widgets.get("percent") == 0) \
                and isinstance(width, int) and isinstance(height, int):
            return Estimate(Size(batch, height, width))
        if rescale == "to longer side - maintain aspect" and image is not None \
                and isinstance(widgets.get("longer_side"), int):
            width, height = hires_size(SimpleNamespace(rescale=rescale, longer_side=widgets["longer_side"]),
                                       image.width, image.height)
            return Estimate(Size(batch, height, width))
        return Estimate(None)

    def run(self):
        pipe = _pipe_dict(self.pipe) if self.pipe is not None else None
        image, vae = self.image, self.vae
        if pipe is not None:
            image = image if image is not None else pipe.get("images")
            vae = vae if vae is not None else pipe.get("vae")
        if image is None:
            raise NodeInputError("image", "no image: connect one, or a pipe with images")
        if vae is None:
            raise NodeInputError("vae", "no VAE: connect one, or a pipe with one")
        model = _core(LoadUpscaleModel, model_name=self.model_name)
        check_upscaled_size(image, model.scale, "image" if self.image is not None else "pipe")
        upscaled = _core(ImageUpscaleWithModel, upscale_model=model, image=image, tile_size=192, overlap=8)
        if self.rescale_after_model:
            width, height = hires_size(self, upscaled.shape[2], upscaled.shape[1])
            limit = run_limits().max_pixels
            if limit is not None and width * height > limit:
                raise NodeInputError("rescale", f"rescales to {width}x{height}, over the server's {limit} pixels")
            upscaled = resized_image(upscaled, width, height, self.rescale_method, self.crop == "center")
        # encoded after cutting to a multiple of 8 about the centre, as the pack crops before encoding
        latent = _core(VAEEncode, {"pixels": "image", "vae": "vae"}, pixels=upscaled[..., :3], vae=vae)
        shown(self, upscaled)
        new_pipe = {}
        if pipe is not None:
            new_pipe = {**{k: pipe.get(k) for k in ("model", "positive", "negative", "clip", "seed")}, "vae": vae,
                        "samples": latent, "images": upscaled,
                        "loader_settings": dict(pipe.get("loader_settings") or {})}
        return new_pipe, upscaled, latent


def check_upscaled_size(image, scale: int, image_input: str, model_input: str = "model_name") -> None:
    """Refuse, before the model runs, an image batch the model would make too large: an image
    over the server's max_pixels or HIRES_MAX_PIXELS, a batch over the server's max_batch, a batch
    whose images the memory can't hold. The errors name model_input (the node's upscale model
    input: ttN's is upscale_model_name) or image_input."""
    limits = run_limits()
    batch, height, width = image.shape[0], image.shape[1] * scale, image.shape[2] * scale
    cap = min(HIRES_MAX_PIXELS, limits.max_pixels) if limits.max_pixels is not None else HIRES_MAX_PIXELS
    if width * height > cap:
        raise NodeInputError(model_input, f"upscales {image.shape[2]}x{image.shape[1]} by {scale} to "
                                           f"{width}x{height}, over the {cap} pixels an image may have here")
    if limits.max_batch is not None and batch > limits.max_batch:
        raise NodeInputError(image_input, f"a batch of {batch} images is more than this server allows "
                                          f"({limits.max_batch})")
    check_run_memory(model_input, f"upscales {image.shape[2]}x{image.shape[1]} by {scale} to {width}x{height}",
                     images=Size(batch, height, width))


def resized_image(image, width: int, height: int, method: str, crop: bool):
    """ComfyUI's common_upscale on an IMAGE batch (ImageScale's resampling), bislerp included."""
    from nodes.image import _resize_image
    if method != "bislerp":
        return _resize_image(image, width, height, method, crop=crop)
    from graphflow.images import bislerp, center_crop_to_aspect
    x = image.movedim(-1, 1)
    if crop:
        x = center_crop_to_aspect(x, width, height)
    return bislerp(x, width, height).movedim(1, -1)


# the samplers the pack swaps for its gradual-latent versions (latent upscaled part-way, unsharp mask)
GRADUAL_SAMPLERS = ("euler_ancestral", "dpmpp_2s_ancestral", "dpmpp_2m_sde", "lcm")


def gradual_upscale_steps(start_step: int, end_step: int, every: int) -> list[int]:
    """The sampling steps at which the pack's gradual-latent samplers upscale the latent: from
    start_step - 1, every `every` steps, while below end_step - 1."""
    steps, step = [], start_step - 1
    while step < end_step - 1:
        steps.append(step)
        step += every
    return steps


class EasyPreSamplingSdTurbo(Node):
    """Put SD-Turbo sampler settings into a pipe, as Easy-Use's easy preSamplingSdTurbo does:
    the SD-Turbo schedule (timesteps 999, 899, ... for `steps` steps; SDTurboScheduler), the
    sampler, cfg and seed, for easy kSamplerSDTurbo. For euler_ancestral, dpmpp_2s_ancestral,
    dpmpp_2m_sde and lcm the pack runs its gradual-latent versions, which upscale the latent
    part-way (upscale_ratio, start_step, end_step, upscale_n_step, unsharp_*); those runs are not
    built in and are refused naming start_step, as are eta / s_noise other than 1: with no upscale
    step within the sampling and eta = s_noise = 1 they are the ordinary samplers, which run here
    (the pack draws their noise unseeded; here it comes from the seed)."""
    category = "EasyUse/PreSampling"
    pipe: PIPE_LINE
    steps: int = Int(1, min=1, max=10)
    cfg: float = Float(1.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    eta: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    s_noise: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    upscale_ratio: float = Float(2.0, min=0.0, max=16.0, step=0.01)
    start_step: int = Int(5, min=0, max=1000)
    end_step: int = Int(15, min=0, max=1000)
    upscale_n_step: int = Int(3, min=0, max=1000)
    unsharp_kernel_size: int = Int(3, min=1, max=21)
    unsharp_sigma: float = Float(0.5, min=0.0, max=10.0, step=0.01)
    unsharp_strength: float = Float(0.0, min=0.0, max=10.0, step=0.01)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"pipe": PIPE_LINE}
    comfy = ComfyAlias(("easy preSamplingSdTurbo",))

    def run(self):
        pipe = _pipe_dict(self.pipe)
        if pipe.get("model") is None:
            raise NodeInputError("pipe", "the pipe has no model (its noise schedule gives the SD-Turbo sigmas)")
        if self.sampler_name in GRADUAL_SAMPLERS:
            if self.upscale_n_step == 0 and self.start_step < self.end_step:
                raise NodeInputError("upscale_n_step", "0 never reaches end_step (the pack hangs); use 1 or more")
            upscaled = [i for i in gradual_upscale_steps(self.start_step, self.end_step, max(self.upscale_n_step, 1))
                        if i < self.steps]
            if upscaled:
                raise NodeInputError("start_step", f"{self.sampler_name}: the pack's gradual-latent version upscales "
                                                   f"the latent at step {upscaled[0]}, which is not built in; set "
                                                   f"start_step above {self.steps} (or pick another sampler)")
            if self.sampler_name != "lcm" and (self.eta != 1.0 or self.s_noise != 1.0):
                raise NodeInputError("eta" if self.eta != 1.0 else "s_noise",
                                     "the gradual-latent samplers' eta / s_noise other than 1 are not built in")
        sigmas = _core(SDTurboScheduler, model=pipe["model"], steps=self.steps, denoise=1.0)
        sampler = _core(KSamplerSelect, sampler_name=self.sampler_name)
        show(value=[self.seed])
        settings = pipe.get("loader_settings") or {}
        return {**{k: pipe.get(k) for k in ("model", "positive", "negative", "vae", "clip", "samples", "images")},
                "seed": self.seed,
                "loader_settings": {**settings, "sampler": sampler, "sigmas": sigmas, "steps": self.steps,
                                    "cfg": self.cfg, "add_noise": "enabled"}}


class EasyKSamplerSDTurbo(Node):
    """Sample a pipe set up by easy preSamplingSdTurbo, as Easy-Use's easy kSamplerSDTurbo does:
    its sampler over its SD-Turbo sigmas with CFG at its cfg, noise from its seed (SamplerCustom),
    the pipe's model (or `model`), conditionings and latent; then decoded with the pipe's VAE and
    shown or saved as image_output says. Gives the pipe (the new latent, images and seed) and the
    images."""
    category = SAMPLERS
    output_node = True
    pipe: PIPE_LINE
    image_output: str = Choice(PLAIN_IMAGE_OUTPUTS, "Preview")
    link_id: int = Int(0, min=0, max=2 ** 63 - 1)
    save_prefix: str = Text("ComfyUI", file_name=True)
    model: MODEL = None
    outputs = {"pipe": PIPE_LINE, "image": IMAGE}
    comfy = ComfyAlias(("easy kSamplerSDTurbo",), optional=("model",))

    def run(self):
        pipe = _pipe_dict(self.pipe)
        settings = pipe.get("loader_settings") or {}
        if "sigmas" not in settings or "sampler" not in settings or pipe.get("seed") is None:
            raise NodeInputError("pipe", "no SD-Turbo settings in the pipe: connect it through easy "
                                         "preSamplingSdTurbo first")
        for key in ("positive", "negative", "samples", "vae"):
            if pipe.get(key) is None:
                raise NodeInputError("pipe", f"the pipe has no {key}")
        model = self.model if self.model is not None else pipe.get("model")
        if model is None:
            raise NodeInputError("model", "neither connected nor in the pipe")
        latent, _ = _core(SamplerCustom, {"positive": "pipe", "negative": "pipe", "latent_image": "pipe",
                                          "sampler": "pipe", "sigmas": "pipe"},
                          model=model, add_noise=True, noise_seed=pipe["seed"], cfg=settings["cfg"],
                          positive=pipe["positive"], negative=pipe["negative"], sampler=settings["sampler"],
                          sigmas=settings["sigmas"], latent_image=pipe["samples"])
        images = decoded_and_shown(self, latent, pipe["vae"])
        return {**{k: pipe.get(k) for k in ("positive", "negative", "vae", "clip")}, "model": model,
                "samples": latent, "images": images, "seed": pipe["seed"], "loader_settings": settings}, images


CUSTOM_GUIDERS = ("CFG", "DualCFG", "Basic", "IP2P+CFG", "IP2P+DualCFG", "IP2P+Basic")
CUSTOM_SCHEDULERS = (*SCHEDULER_NAMES, "karrasADV", "exponentialADV", "polyExponential", "sdturbo", "vp",
                     "alignYourSteps", "gits")


def custom_sigmas(model, settings: dict):
    """The sigmas of the pack's get_sampler_custom: optional_sigmas, else the named schedule
    (karrasADV, exponentialADV, polyExponential from sigma_max / sigma_min / rho; vp from beta_d,
    beta_min and eps_s, which the pack's preSamplingCustom stores as beta_min; sdturbo;
    alignYourSteps for the model's family (SD1, SVD, else SDXL); gits at coeff; else KSampler's
    named scheduler), flipped when flip_sigmas is on."""
    custom, steps, denoise = settings["custom"], settings["steps"], settings["denoise"]
    name = settings["scheduler"]
    if settings.get("optional_sigmas") is not None:
        sigmas = settings["optional_sigmas"]
    elif name == "karrasADV":
        sigmas = _core(custom_sampling.KarrasScheduler, steps=steps, sigma_max=custom["sigma_max"],
                       sigma_min=custom["sigma_min"], rho=custom["rho"])
    elif name == "exponentialADV":
        sigmas = _core(custom_sampling.ExponentialScheduler, steps=steps, sigma_max=custom["sigma_max"],
                       sigma_min=custom["sigma_min"])
    elif name == "polyExponential":
        sigmas = _core(custom_sampling.PolyexponentialScheduler, steps=steps, sigma_max=custom["sigma_max"],
                       sigma_min=custom["sigma_min"], rho=custom["rho"])
    elif name == "vp":
        sigmas = _core(custom_sampling.VPScheduler, steps=steps, beta_d=custom["beta_d"], beta_min=custom["beta_min"],
                       eps_s=custom["eps_s"])
    elif name == "sdturbo":
        sigmas = _core(SDTurboScheduler, model=model, steps=steps, denoise=denoise)
    elif name == "alignYourSteps":
        family = {"sd1": "SD1", "svd": "SVD"}.get(getattr(model, "arch", ""), "SDXL")
        sigmas = _core(custom_sampling.AlignYourStepsScheduler, model_type=family, steps=steps, denoise=denoise)
    elif name == "gits":
        sigmas = _core(custom_sampling.GITSScheduler, coeff=custom["coeff"], steps=steps, denoise=denoise)
    else:
        sigmas = _core(custom_sampling.BasicScheduler, model=model, scheduler=name, steps=steps, denoise=denoise)
    if custom.get("flip_sigmas"):
        sigmas = _core(custom_sampling.FlipSigmas, sigmas=sigmas)
    return sigmas


def custom_sampled(pipe: dict, settings: dict, model) -> tuple:
    """The pipe sampled as the pack's samplers sample after easy preSamplingCustom: its guider
    (CFG; DualCFG with the loader's negative as the middle prompt at cfg / cfg_negative; Basic, the
    positive alone; FLUX models get cfg as their guidance), its sampler (optional_sampler, else
    sampler_name) and sigmas, noise from the seed unless add_noise is "disable"
    (SamplerCustomAdvanced); gives (output, denoised_output)."""
    from nodes.flow import FluxGuidance
    custom = settings["custom"]
    positive, negative, cfg = pipe["positive"], pipe["negative"], settings["cfg"]
    if cfg > 0 and getattr(model, "arch", "") == "flux":
        positive = _core(FluxGuidance, {"conditioning": "pipe"}, conditioning=positive, guidance=cfg)
    guider_name = custom.get("guider", "CFG")
    renamed = {"positive": "pipe", "negative": "pipe", "cond1": "pipe", "cond2": "pipe", "conditioning": "pipe"}
    if guider_name in ("CFG", "IP2P+CFG"):
        guider = _core(custom_sampling.CFGGuider, renamed, model=model, positive=positive, negative=negative, cfg=cfg)
    elif guider_name in ("DualCFG", "IP2P+DualCFG"):
        guider = _core(custom_sampling.DualCFGGuider, renamed, model=model, cond1=positive,
                       cond2=settings.get("middle", negative), negative=negative, cfg_conds=cfg,
                       cfg_cond2_negative=settings.get("cfg_negative", 8.0))
    else:
        guider = _core(custom_sampling.BasicGuider, renamed, model=model, conditioning=positive)
    sampler = settings.get("optional_sampler") or _core(KSamplerSelect, sampler_name=settings["sampler_name"])
    noise = (_core(custom_sampling.DisableNoise) if settings.get("add_noise") == "disable"
             else _core(custom_sampling.RandomNoise, noise_seed=pipe["seed"]))
    return _core(custom_sampling.SamplerCustomAdvanced, {"latent_image": "pipe", "sigmas": "pipe"}, noise=noise,
                 guider=guider, sampler=sampler, sigmas=custom_sigmas(model, settings), latent_image=pipe["samples"])


class EasyPreSamplingCustom(Node):
    """Put custom-sampling settings into a pipe, as Easy-Use's easy preSamplingCustom does: a
    guider (CFG; DualCFG, the loader's negative as the middle prompt, at cfg and cfg_negative;
    Basic, the positive alone; the IP2P ones first make InstructPix2Pix conditionings from
    image_to_latent, whose latent is then empty), the sampler (or optional_sampler), the schedule
    (KSampler's schedulers, karrasADV / exponentialADV / polyExponential from sigma_max, sigma_min
    and rho, sdturbo, vp (with eps_s set to beta_min, as the pack stores it), alignYourSteps, gits
    at coeff; or optional_sigmas), flip_sigmas, denoise, add_noise and the seed. image_to_latent
    (unless a 1x1 placeholder) or `latent` gives the latent as easy preSampling does; easy kSampler
    and easy kSamplerCustom then sample with SamplerCustomAdvanced. Left out: the inversed_euler
    sampler (the pack's own), add_noise "enable (GPU=A1111)" and an IP2P guider with `latent`
    (the pack fails on it); each is an error."""
    category = "EasyUse/PreSampling"
    pipe: PIPE_LINE
    guider: str = Choice(CUSTOM_GUIDERS, "Basic")
    cfg: float = Float(3.5, min=0.0, max=100.0)
    cfg_negative: float = Float(1.5, min=0.0, max=100.0)
    sampler_name: str = Choice((*SAMPLER_NAMES, "inversed_euler"), "euler")
    scheduler: str = Choice(CUSTOM_SCHEDULERS, "normal")
    coeff: float = Float(1.2, min=0.8, max=1.5, step=0.05)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    sigma_max: float = Float(14.614642, min=0.0, max=1000.0, step=0.01)
    sigma_min: float = Float(0.0291675, min=0.0, max=1000.0, step=0.01)
    rho: float = Float(7.0, min=0.0, max=100.0, step=0.01)
    beta_d: float = Float(19.9, min=0.0, max=1000.0, step=0.01)
    beta_min: float = Float(0.1, min=0.0, max=1000.0, step=0.01)
    eps_s: float = Float(0.001, min=0.0, max=1.0, step=0.0001)
    flip_sigmas: bool = Bool(False)
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    add_noise: str = Choice(("enable (CPU)", "enable (GPU=A1111)", "disable"), "enable (CPU)")
    seed: int = Int(0, min=0, max=SEED_MAX)
    image_to_latent: IMAGE = None
    latent: LATENT = None
    optional_sampler: SAMPLER = None
    optional_sigmas: SIGMAS = None
    outputs = {"pipe": PIPE_LINE}
    comfy = ComfyAlias(("easy preSamplingCustom",), optional=("image_to_latent", "latent", "optional_sampler",
                                                              "optional_sigmas"))

    def run(self):
        from nodes.conditioning import InstructPixToPixConditioning
        from nodes.pack_nodes_easyuse_pipe import _encoded_batch
        if self.sampler_name == "inversed_euler" and self.optional_sampler is None:
            raise NodeInputError("sampler_name", "the pack's inversed_euler sampler is not built in")
        if self.add_noise == "enable (GPU=A1111)":
            raise NodeInputError("add_noise", "noise drawn on the GPU is not built in; use \"enable (CPU)\"")
        pipe = _pipe_dict(self.pipe)
        settings = pipe.get("loader_settings") or {}
        positive, negative = pipe.get("positive"), pipe.get("negative")
        samples, images = pipe.get("samples"), pipe.get("images")
        ip2p = "IP2P" in self.guider
        if self.image_to_latent is not None and tuple(self.image_to_latent.shape[1:3]) != (1, 1):
            images = self.image_to_latent
            if ip2p:
                positive, negative, samples = _core(
                    InstructPixToPixConditioning, {"pixels": "image_to_latent", "vae": "pipe", "positive": "pipe",
                                                   "negative": "pipe"},
                    positive=positive, negative=negative, vae=pipe.get("vae"), pixels=images)
            else:
                samples = _encoded_batch(images, pipe.get("vae"), settings.get("batch_size", 1), "image_to_latent")
        elif self.latent is not None:
            if ip2p:
                raise NodeInputError("latent", "an IP2P guider needs image_to_latent (the pack fails on a latent)")
            samples = self.latent
        show(value=[self.seed])
        custom = {"guider": self.guider, "coeff": self.coeff, "sigma_max": self.sigma_max,
                  "sigma_min": self.sigma_min, "rho": self.rho, "beta_d": self.beta_d, "beta_min": self.beta_min,
                  "eps_s": self.beta_min, "flip_sigmas": self.flip_sigmas}  # eps_s: the pack stores beta_min
        return {"model": pipe.get("model"), "positive": positive, "negative": negative, "vae": pipe.get("vae"),
                "clip": pipe.get("clip"), "samples": samples, "images": images, "seed": self.seed,
                "loader_settings": {**settings, "middle": pipe.get("negative"), "steps": self.steps, "cfg": self.cfg,
                                    "cfg_negative": self.cfg_negative, "sampler_name": self.sampler_name,
                                    "scheduler": self.scheduler, "denoise": self.denoise, "add_noise": self.add_noise,
                                    "custom": custom, "optional_sampler": self.optional_sampler,
                                    "optional_sigmas": self.optional_sigmas}}


class EasyKSamplerCustom(Node):
    """Sample a pipe as easy kSampler does (after easy preSamplingCustom, through its guider,
    sampler and sigmas), as Easy-Use's easy kSamplerCustom does, giving also the sampled latent
    (output) and the model's last estimate of the clean latent (denoised_output; the sampled one
    after the other preSampling nodes). Its image_output defaults to None (no decoding)."""
    category = SAMPLERS
    output_node = True
    pipe: PIPE_LINE
    image_output: str = Choice(IMAGE_OUTPUTS, "None")
    link_id: int = Int(0, min=0, max=2 ** 63 - 1)
    save_prefix: str = Text("ComfyUI", file_name=True)
    model: MODEL = None
    outputs = {"pipe": PIPE_LINE, "output": LATENT, "denoised_output": LATENT, "image": IMAGE}
    comfy = ComfyAlias(("easy kSamplerCustom",), optional=("model",))

    def run(self):
        pipe = _pipe_dict(self.pipe)
        settings = pipe.get("loader_settings") or {}
        denoised = None
        if "custom" in settings:
            model = self.model if self.model is not None else pipe.get("model")
            if model is None:
                raise NodeInputError("model", "neither connected nor in the pipe")
            for key in ("positive", "negative", "samples", "vae"):
                if pipe.get(key) is None:
                    raise NodeInputError("pipe", f"the pipe has no {key}")
            if pipe.get("seed") is None:
                raise NodeInputError("pipe", "no seed in the pipe: connect it through easy preSamplingCustom first")
            latent, denoised = custom_sampled(pipe, settings, model)
            images = decoded_and_shown(self, latent, pipe["vae"])
            new_pipe = {**pipe, "samples": latent, "blend_samples": denoised, "images": images,
                        "samp_images": images}
        else:
            new_pipe, images = easy_ksample(self)
        return new_pipe, new_pipe["samples"], denoised if denoised is not None else new_pipe["samples"], images


class EasyUnSampler(Node):
    """Run sampling backwards from a latent towards noise, as Easy-Use's easy unSampler does: the
    scheduler's sigmas for `steps` (as KSampler makes them) reversed and raised by 0.0001, run with
    no noise added through steps - min(end_at_step, steps - 1) of them, with CFG at cfg between the
    positive and negative (optional_*, else the pipe's), the latent's noise mask kept; normalize
    "enable" then shifts and scales the result to mean 0 and standard deviation 1 (as the pack
    does, over the whole batch). Gives the pipe with that latent (an empty pipe without one) and
    the latent."""
    category = SAMPLERS
    steps: int = Int(20, min=1, max=10000, resource="steps")
    end_at_step: int = Int(0, min=0, max=10000)
    cfg: float = Float(1.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "normal")
    normalize: str = Choice(("disable", "enable"), "disable")
    pipe: PIPE_LINE = None
    optional_model: MODEL = None
    optional_positive: CONDITIONING = None
    optional_negative: CONDITIONING = None
    optional_latent: LATENT = None
    outputs = {"pipe": PIPE_LINE, "latent": LATENT}
    comfy = ComfyAlias(("easy unSampler",), optional=("pipe", "optional_model", "optional_positive",
                                                      "optional_negative", "optional_latent"))

    def run(self):
        from graphflow.sampling import DISCARD_PENULTIMATE_SIGMA, compute_sigmas, model_sampling_for
        pipe = _pipe_dict(self.pipe)
        parts = {}
        for name, key in (("optional_model", "model"), ("optional_positive", "positive"),
                          ("optional_negative", "negative"), ("optional_latent", "samples")):
            parts[key] = getattr(self, name) if getattr(self, name) is not None else pipe.get(key)
            if parts[key] is None:
                raise NodeInputError(name, f"not connected and the pipe has no {key}")
        last = self.steps - min(self.end_at_step, self.steps - 1)
        sigmas = compute_sigmas(model_sampling_for(parts["model"]), self.scheduler, self.steps, 1.0,
                                discard_penultimate=self.sampler_name in DISCARD_PENULTIMATE_SIGMA)
        sigmas = (sigmas.flip(0) + 0.0001)[:last + 1]
        sampler = _core(KSamplerSelect, sampler_name=self.sampler_name)
        latent, _ = _core(SamplerCustom, {"latent_image": "optional_latent", "positive": "optional_positive",
                                          "negative": "optional_negative"},
                          model=parts["model"], add_noise=False, noise_seed=0, cfg=self.cfg,
                          positive=parts["positive"], negative=parts["negative"], sampler=sampler, sigmas=sigmas,
                          latent_image=parts["samples"])
        if self.normalize == "enable":
            samples = latent["samples"] - latent["samples"].mean()
            latent = {**latent, "samples": samples / samples.std()}
        return {**pipe, "samples": latent}, latent


# -- Stable Cascade (py/nodes/loaders.py at 037080ac3935b5a398a12a6510dd600c762d8983, and the
# preSampling.py / samplers.py above) ---------------------------------------------------------------

CASCADE_PRIOR_CHANNELS = 16  # Stage C's latent channels
CASCADE_STAGE_B_CHANNELS = 4


def _cascade_stage(name: str, input_name: str) -> tuple:
    """(model, clip, vae) of a Stage C / B named in the checkpoints folder (a checkpoint, as the
    pack tells them apart), else (model, None, None) of a diffusion-model file."""
    from nodes.loaders import LoadCheckpoint, LoadDiffusionModel
    if name in folders.list_models("checkpoints"):
        return _core(LoadCheckpoint, {"checkpoint": input_name}, checkpoint=name)
    return _core(LoadDiffusionModel, {"unet_name": input_name}, unet_name=name), None, None


def _vae_or_none(name: str):
    from nodes.loaders import LoadVAE
    return None if name == "None" else _core(LoadVAE, vae_name=name)


class EasyCascadeLoader(Node):
    """Load Stable Cascade into a pipe, as Easy-Use's easy cascadeLoader does: Stage C and Stage B
    (checkpoints, or diffusion-model files), the optional_lora_stack then lora_name applied to
    Stage C and the text encoder, the text encoder clip_name (CLIPLoader, stable_cascade; "None":
    the checkpoints'), Stage A (stage_a; "Baked VAE": Stage B's checkpoint's), the prompts encoded
    as CLIP Text Encode does and the empty Stage C latents (width / compression) and Stage B
    latents (width / 4). The pipe holds (Stage C, Stage B) models, VAEs and latents, as the
    pack's. Outputs: the pipe, Stage C's model, the Stage C latent and Stage A (the pack hands the
    Stage B model on its latent_c output and the VAE pair on its vae output). Left out: wildcards
    and <lora:...> tags in the prompts."""
    category = "EasyUse/Loaders"
    stage_c: str = Choice(lambda: folders.list_models("diffusion_models") + folders.list_models("checkpoints"))
    stage_b: str = Choice(lambda: folders.list_models("diffusion_models") + folders.list_models("checkpoints"))
    stage_a: str = Choice(lambda: ["Baked VAE"] + folders.list_models("vae"), "Baked VAE", model_folder="vae",
                          not_files=("Baked VAE",))
    clip_name: str = Choice(lambda: ["None"] + _text_encoder_choices(), "None", model_folder="text_encoders",
                            not_files=("None",))
    lora_name: str = Choice(lambda: ["None"] + folders.list_models("loras"), "None", model_folder="loras",
                            not_files=("None",))
    lora_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    resolution: str = Choice(RESOLUTIONS, "1024 x 1024")
    empty_latent_width: int = Int(1024, min=16, max=16384, step=8, resource="width")
    empty_latent_height: int = Int(1024, min=16, max=16384, step=8, resource="height")
    compression: int = Int(42, min=32, max=64)
    positive: str = Text("", multiline=True)
    negative: str = Text("", multiline=True)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    optional_lora_stack: LORA_STACK = None
    outputs = {"pipe": PIPE_LINE, "model_c": MODEL, "latent_c": LATENT, "vae": VAE}
    comfy = ComfyAlias(("easy cascadeLoader",), optional=("optional_lora_stack",))

    def run(self):
        import torch

        from nodes.conditioning import CLIPEncode
        from nodes.text_encoder_loaders import LoadTextEncoder
        width, height = latent_size(self.resolution, self.empty_latent_width, self.empty_latent_height)
        samples_c = {"samples": torch.zeros(self.batch_size, CASCADE_PRIOR_CHANNELS, height // self.compression,
                                            width // self.compression)}
        samples_b = {"samples": torch.zeros(self.batch_size, CASCADE_STAGE_B_CHANNELS, height // 4, width // 4)}
        model_c, clip, vae_c = _cascade_stage(self.stage_c, "stage_c")
        model_b, clip_b, vae_b = _cascade_stage(self.stage_b, "stage_b")
        clip = clip_b if clip_b is not None else clip  # the pack keeps the last checkpoint's text encoder
        try:
            rows = [(*row, "optional_lora_stack") for row in _lora_rows(self.optional_lora_stack)]
        except NodeInputError as e:
            raise NodeInputError("optional_lora_stack", str(e)) from None
        if self.lora_name != "None":
            rows.append((self.lora_name, self.lora_model_strength, self.lora_clip_strength, "lora_name"))
        for name, strength_model, strength_clip, input_name in rows:
            model_c, clip = _apply_lora(model_c, clip, name, strength_model, strength_clip, input_name)
        if self.clip_name != "None":
            clip = _core(LoadTextEncoder, {"clip_name": "clip_name"}, clip_name=self.clip_name, type="stable_cascade")
        if clip is None:
            raise NodeInputError("clip_name", "no text encoder: name one (clip_g for Stable Cascade), or load Stage "
                                              "C / B from checkpoints that carry one")
        if self.stage_a != "Baked VAE":
            vae_b = _vae_or_none(self.stage_a)
        positive = _core(CLIPEncode, {"text": "positive"}, text=self.positive, clip=clip)
        negative = _core(CLIPEncode, {"text": "negative"}, text=self.negative, clip=clip)
        settings = {"vae_name": self.stage_a, "lora_name": self.lora_name,
                    "lora_model_strength": self.lora_model_strength, "lora_clip_strength": self.lora_clip_strength,
                    "lora_stack": [row[:3] for row in rows], "positive": self.positive,
                    "positive_token_normalization": "none", "positive_weight_interpretation": "comfy",
                    "negative": self.negative, "negative_token_normalization": "none",
                    "negative_weight_interpretation": "comfy", "resolution": self.resolution,
                    "empty_latent_width": self.empty_latent_width, "empty_latent_height": self.empty_latent_height,
                    "batch_size": self.batch_size, "compression": self.compression}
        pipe = {"model": (model_c, model_b), "positive": positive, "negative": negative, "vae": (vae_c, vae_b),
                "clip": clip, "samples": (samples_c, samples_b), "images": _placeholder_image(), "seed": 0,
                "loader_settings": settings}
        return pipe, model_c, samples_c, vae_b


def _cascade_pair(pipe: dict, key: str) -> tuple:
    value = pipe.get(key)
    if not isinstance(value, tuple) or len(value) != 2:
        raise NodeInputError("pipe", f"expected easy cascadeLoader's pipe (its {key} a (Stage C, Stage B) pair)")
    return value


def cascade_latents(node, pipe: dict, encode_vae_name: str) -> tuple:
    """The pack's Stage C / Stage B latents for its cascade nodes: image_to_latent_c encoded by
    encode_vae_name (or the pipe's Stage C VAE) as StableCascade_StageC_VAEEncode does, with blank
    Stage B latents at width / 4, both repeated batch_size times; else latent_c with the pipe's
    Stage B latent; else the pipe's; gives (samples_c, samples_b, images)."""
    from nodes.latent import RepeatLatentBatch
    from nodes.stable_cascade import StableCascadeStageCVAEEncode
    samples_c, samples_b = _cascade_pair(pipe, "samples")
    settings = pipe.get("loader_settings") or {}
    images = None
    if node.image_to_latent_c is not None:
        vae = _vae_or_none(encode_vae_name) if encode_vae_name != "None" else _cascade_pair(pipe, "vae")[0]
        if vae is None:
            raise NodeInputError("encode_vae_name", "no Stage C encoder: name one (the pipe's Stage C has none)")
        if "compression" not in settings:
            raise NodeInputError("pipe", "the pipe has no compression (easy cascadeLoader sets it)")
        import torch
        latent_c, _ = _core(StableCascadeStageCVAEEncode, {"vae": "encode_vae_name", "image": "image_to_latent_c"},
                            image=node.image_to_latent_c, vae=vae, compression=settings["compression"])
        height, width = node.image_to_latent_c.shape[1:3]
        latent_b = {"samples": torch.zeros(latent_c["samples"].shape[0], CASCADE_STAGE_B_CHANNELS, height // 4,
                                           width // 4)}
        batch = settings.get("batch_size", 1)
        samples_c = _core(RepeatLatentBatch, samples=latent_c, amount=batch)
        samples_b = _core(RepeatLatentBatch, samples=latent_b, amount=batch)
        images = node.image_to_latent_c
    elif node.latent_c is not None:
        samples_c, images = node.latent_c, pipe.get("images")
    else:
        images = pipe.get("images")
    return samples_c, samples_b, images


class EasyPreSamplingCascade(Node):
    """Put Stable Cascade Stage C sampler settings into easy cascadeLoader's pipe, as Easy-Use's
    easy preSamplingCascade does: encode / decode VAE names, steps, cfg, sampler, scheduler,
    denoise and seed; image_to_latent_c (encoded as StableCascade_StageC_VAEEncode does) or
    latent_c as the Stage C latent to start from. For easy cascadeKSampler."""
    category = "EasyUse/PreSampling"
    pipe: PIPE_LINE
    encode_vae_name: str = Choice(lambda: ["None"] + folders.list_models("vae"), "None", model_folder="vae",
                                  not_files=("None",))
    decode_vae_name: str = Choice(lambda: ["None"] + folders.list_models("vae"), "None", model_folder="vae",
                                  not_files=("None",))
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(4.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler_ancestral")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    seed: int = Int(0, min=0, max=SEED_MAX)
    image_to_latent_c: IMAGE = None
    latent_c: LATENT = None
    outputs = {"pipe": PIPE_LINE}
    comfy = ComfyAlias(("easy preSamplingCascade",), optional=("image_to_latent_c", "latent_c"))

    def run(self):
        pipe = _pipe_dict(self.pipe)
        samples_c, samples_b, images = cascade_latents(self, pipe, self.encode_vae_name)
        if self.image_to_latent_c is None and self.latent_c is None:
            images = None  # as the pack: the pipe's images are kept only with a new latent
        show(value=[self.seed])
        settings = pipe.get("loader_settings") or {}
        return {**{k: pipe.get(k) for k in ("model", "positive", "negative", "vae", "clip")},
                "samples": (samples_c, samples_b), "images": images, "seed": self.seed,
                "loader_settings": {**settings, "encode_vae_name": self.encode_vae_name,
                                    "decode_vae_name": self.decode_vae_name, "steps": self.steps, "cfg": self.cfg,
                                    "sampler_name": self.sampler_name, "scheduler": self.scheduler,
                                    "denoise": self.denoise, "add_noise": "enabled"}}


def cascade_sample(node, pipe: dict, settings: dict, samples_c, samples_b, images, decode_vae_name: str,
                   model_c) -> tuple:
    """The pack's Stage C sampling: KSampler on the Stage C latent (the seed and settings given),
    decoded with decode_vae_name (or the pipe's Stage C VAE) unless image_output hides it, then the
    pipe made ready for Stage B: the Stage B model, VAE and latent, the zeroed positive as the
    negative and it with the Stage C latent as its prior (StableCascade_StageB_Conditioning) as
    the positive. Gives (pipe, Stage C images or None)."""
    from nodes.conditioning import ConditioningZeroOut
    from nodes.sampling import KSampler
    from nodes.stable_cascade import StableCascadeStageBConditioning
    models, vaes = _cascade_pair(pipe, "model"), _cascade_pair(pipe, "vae")
    model_c = model_c if model_c is not None else models[0]
    stage_c = _core(KSampler, {"positive": "pipe", "negative": "pipe", "latent_image": "pipe"}, model=model_c,
                    seed=node_seed(node, pipe), steps=settings["steps"], cfg=settings["cfg"],
                    sampler_name=settings["sampler_name"], scheduler=settings["scheduler"],
                    positive=pipe["positive"], negative=pipe["negative"], latent_image=samples_c,
                    denoise=settings["denoise"])
    stage_c_images = None
    if node.image_output not in ("Hide", "Hide&Save"):
        vae = _vae_or_none(decode_vae_name) if decode_vae_name != "None" else vaes[0]
        if vae is None:
            raise NodeInputError("decode_vae_name", "no decoder for the Stage C latent: name one, or hide the images")
        stage_c_images = decoded_and_shown(node, stage_c, vae)
    zeroed = _core(ConditioningZeroOut, {"conditioning": "pipe"}, conditioning=pipe["positive"])
    prior = _core(StableCascadeStageBConditioning, {"conditioning": "pipe"}, conditioning=zeroed, stage_c=stage_c)
    new_pipe = {"model": models[1], "positive": prior, "negative": zeroed, "vae": vaes[1], "clip": pipe.get("clip"),
                "samples": samples_b, "images": images, "seed": node_seed(node, pipe),
                "loader_settings": dict(settings)}
    return new_pipe, stage_c_images


def node_seed(node, pipe: dict) -> int:
    seed = getattr(node, "seed", None)
    seed = seed if seed is not None else pipe.get("seed")
    if seed is None:
        raise NodeInputError("pipe", "no seed: connect the pipe through easy preSamplingCascade first")
    return seed


class EasyFullCascadeKSampler(Node):
    """Sample Stable Cascade's Stage C with the settings given here, as Easy-Use's easy
    fullCascadeKSampler does: the Stage C latent (image_to_latent_c encoded, latent_c, or the
    pipe's) through KSampler with model_c (or the pipe's Stage C), its images decoded with
    decode_vae_name (or the pipe's Stage C VAE) and shown or saved unless image_output hides
    them; gives the pipe made ready for Stage B (the Stage B model, VAE and latent, the zeroed
    prompt with the Stage C latent as its prior; easy kSampler samples it), the Stage B model and
    latent."""
    category = SAMPLERS
    output_node = True
    pipe: PIPE_LINE
    encode_vae_name: str = Choice(lambda: ["None"] + folders.list_models("vae"), "None", model_folder="vae",
                                  not_files=("None",))
    decode_vae_name: str = Choice(lambda: ["None"] + folders.list_models("vae"), "None", model_folder="vae",
                                  not_files=("None",))
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(4.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler_ancestral")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    image_output: str = Choice(PLAIN_IMAGE_OUTPUTS, "Hide")
    link_id: int = Int(0, min=0, max=2 ** 63 - 1)
    save_prefix: str = Text("ComfyUI", file_name=True)
    seed: int = Int(0, min=0, max=SEED_MAX)
    image_to_latent_c: IMAGE = None
    latent_c: LATENT = None
    model_c: MODEL = None
    outputs = {"pipe": PIPE_LINE, "model_b": MODEL, "latent_b": LATENT}
    comfy = ComfyAlias(("easy fullCascadeKSampler",), optional=("image_to_latent_c", "latent_c", "model_c"))

    def run(self):
        pipe = _pipe_dict(self.pipe)
        samples_c, samples_b, images = cascade_latents(self, pipe, self.encode_vae_name)
        settings = {**(pipe.get("loader_settings") or {}), "steps": self.steps, "cfg": self.cfg,
                    "sampler_name": self.sampler_name, "scheduler": self.scheduler, "denoise": self.denoise}
        new_pipe, _ = cascade_sample(self, pipe, settings, samples_c, samples_b, images, self.decode_vae_name,
                                     self.model_c)
        return new_pipe, new_pipe["model"], new_pipe["samples"]


class EasyCascadeKSampler(Node):
    """easy fullCascadeKSampler with the settings easy preSamplingCascade put into the pipe, as
    Easy-Use's easy cascadeKSampler does; gives the pipe made ready for Stage B and the Stage C
    images (None when hidden; the pack hands on other values there)."""
    category = SAMPLERS
    output_node = True
    pipe: PIPE_LINE
    image_output: str = Choice(PLAIN_IMAGE_OUTPUTS, "Preview")
    link_id: int = Int(0, min=0, max=2 ** 63 - 1)
    save_prefix: str = Text("ComfyUI", file_name=True)
    model_c: MODEL = None
    outputs = {"pipe": PIPE_LINE, "image": IMAGE}
    comfy = ComfyAlias(("easy cascadeKSampler",), optional=("model_c",))

    def run(self):
        pipe = _pipe_dict(self.pipe)
        settings = pipe.get("loader_settings") or {}
        missing = [k for k in ("steps", "cfg", "sampler_name", "scheduler", "denoise") if k not in settings]
        if missing:
            raise NodeInputError("pipe", f"no sampler settings in the pipe ({', '.join(missing)}): connect it "
                                         "through easy preSamplingCascade first")
        samples_c, samples_b = _cascade_pair(pipe, "samples")
        return cascade_sample(self, pipe, settings, samples_c, samples_b, pipe.get("images"),
                              settings.get("decode_vae_name", "None"), self.model_c)
