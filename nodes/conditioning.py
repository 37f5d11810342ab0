"""Text conditioning: encode prompts, combine, concatenate, average, restrict to an area, a mask
or a part of the sampling, zero out; the image conditioning of inpainting and InstructPix2Pix models.

CONDITIONING is a list of (embedding [B, T, D], options) pairs; options may carry
"pooled_output" (SDXL), "area" (h, w, y, x in latent units, or ("percentage", h, w, y, x); on video
latents (t, h, w, z, y, x) / ("percentage", t, h, w, z, y, x)),
"strength", "mask" + "mask_strength" + "set_area_to_bounds", "start_percent" / "end_percent",
"concat_latent_image" / "concat_mask", "reference_latents", "concat_image" + "noise_augmentation"
(the x4 upscaler's low-res picture) (graphflow.sampling.guidance and pipeline read them).
Nodes never modify the lists or dicts they are given."""

from __future__ import annotations

from graphflow.api import (CLIP, CONDITIONING, IMAGE, LATENT, MASK, VAE, Bool, Choice, ComfyAlias, Float, Int,
                           Node, NodeInputError, Text)

MAX_SIZE = 16384


def encoded(clip, encode) -> list:
    """The CONDITIONING of `encode(clip) -> (cond, options)`: one entry, or as the encoder's
    SetClipHooks hooks say (graphflow.sampling.hooks.encode_with_hooks)."""
    if getattr(clip, "hooks", None) is None:
        return [encode(clip)]
    from graphflow.sampling.hooks import encode_with_hooks

    return encode_with_hooks(clip, encode)


def append_options(conditioning, **lists):
    """The conditioning with each list option extended by these values (ComfyUI's conditioning_set_values
    with append=True: several WanVaceToVideo nodes in a row give several VACE inputs, several
    ReferenceLatent nodes several references)."""
    return [(cond, {**opts, **{k: list(opts.get(k) or []) + v for k, v in lists.items()}}) for cond, opts in conditioning]


class CLIPEncode(Node):
    """Encode a prompt with the text encoder. Long prompts are split into 77-token windows.
    (word:1.3) weights a part and (word) is 1.1, as in ComfyUI; \\( is a literal bracket and
    [word] is plain text. clip_skip -1 uses the last layer, -2 the one before it; 0 keeps the
    model's default (SD2 and SDXL: -2)."""
    category = "conditioning"
    text: str = Text("", multiline=True)
    clip: CLIP
    clip_skip: int = Int(0, min=-24, max=0)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncode",), optional=("clip_skip",))

    def run(self):
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        def encode(clip):
            try:
                cond, pooled, *extra = clip.encode(self.text, clip_skip=self.clip_skip or None)
            except ValueError as e:
                raise NodeInputError("clip_skip", str(e)) from None
            # a third item: more options (HiDream's conditioning_llama3)
            return cond, {**({} if pooled is None else {"pooled_output": pooled}), **(extra[0] if extra else {})}

        return encoded(self.clip, encode)


class CLIPSetLastLayer(Node):
    """Stop the text encoder at an earlier layer for every prompt encoded with it
    (-1 = the last layer, -2 = the one before). As in ComfyUI, a CLIP with fewer layers than asked
    for uses its last one, and T5 (SD3, FLUX, T5-only models) stops at that layer too."""
    category = "conditioning"
    clip: CLIP
    stop_at_clip_layer: int = Int(-1, min=-24, max=-1)
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("CLIPSetLastLayer",))

    def run(self):
        try:
            return self.clip.with_clip_skip(self.stop_at_clip_layer)
        except ValueError as e:
            raise NodeInputError("stop_at_clip_layer", str(e)) from None


class ConditioningCombine(Node):
    """Use both conditionings: the sampler averages their predictions (by area and strength)."""
    category = "conditioning"
    conditioning_1: CONDITIONING
    conditioning_2: CONDITIONING
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningCombine",))

    def run(self):
        return list(self.conditioning_1) + list(self.conditioning_2)


class ConditioningSetArea(Node):
    """Apply the conditioning only to a rectangle of the image (pixel units, multiples of 8),
    with a strength relative to the other conditionings it is combined with."""
    category = "conditioning"
    conditioning: CONDITIONING
    width: int = Int(64, min=64, max=MAX_SIZE, step=8)
    height: int = Int(64, min=64, max=MAX_SIZE, step=8)
    x: int = Int(0, min=0, max=MAX_SIZE, step=8)
    y: int = Int(0, min=0, max=MAX_SIZE, step=8)
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetArea",))

    def run(self):
        area = (self.height // 8, self.width // 8, self.y // 8, self.x // 8)
        # an area set here wins over an earlier ConditioningSetMask's "mask bounds", as in ComfyUI
        return _with_options(self.conditioning, area=area, strength=self.strength, set_area_to_bounds=False)


class ConditioningZeroOut(Node):
    """Replace the embeddings (and pooled output) with zeros: an 'empty' negative for models
    trained that way (SDXL turbo, SD3)."""
    category = "conditioning"
    conditioning: CONDITIONING
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningZeroOut",))

    def run(self):
        import torch
        zeroed = []
        for cond, options in self.conditioning:
            options = dict(options)
            if options.get("pooled_output") is not None:
                options["pooled_output"] = torch.zeros_like(options["pooled_output"])
            zeroed.append((torch.zeros_like(cond), options))
        return zeroed


def _with_options(conditioning, **values) -> list:
    return [(cond, {**options, **values}) for cond, options in conditioning]


def _first(conditioning, name: str):
    if not conditioning:
        raise NodeInputError(name, "the conditioning is empty")
    return conditioning[0]


class ConditioningConcat(Node):
    """Append the tokens of `conditioning_from` to each entry of `conditioning_to`: one longer
    prompt, attended to as a whole (unlike Combine, which averages two predictions). Only the
    first entry of conditioning_from is used."""
    category = "conditioning"
    conditioning_to: CONDITIONING
    conditioning_from: CONDITIONING
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningConcat",))

    def run(self):
        return concat_conditioning(self.conditioning_to, self.conditioning_from, "conditioning_from")


def concat_conditioning(conditioning_to, conditioning_from, input_name: str) -> list:
    """ConditioningConcat's result; a width mismatch is an error naming `input_name`."""
    import torch
    source = _first(conditioning_from, input_name)[0]
    out = []
    for cond, options in conditioning_to:
        if cond.shape[-1] != source.shape[-1]:
            raise NodeInputError(input_name, f"embeddings are {source.shape[-1]} wide; "
                                             f"the conditioning it is appended to is {cond.shape[-1]} wide (another model?)")
        out.append((torch.cat([cond, source.to(cond.dtype).expand(cond.shape[0], -1, -1)], dim=1), dict(options)))
    return out


class ConditioningAverage(Node):
    """Blend two prompts' embeddings: to * conditioning_to_strength + from * (1 - strength),
    token by token (conditioning_from cut or zero-padded to conditioning_to's length), and the
    same for SDXL's pooled output. Only the first entry of conditioning_from is used."""
    category = "conditioning"
    conditioning_to: CONDITIONING
    conditioning_from: CONDITIONING
    conditioning_to_strength: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningAverage",))

    def run(self):
        import torch.nn.functional as F
        source, source_options = _first(self.conditioning_from, "conditioning_from")
        pooled_from = source_options.get("pooled_output")
        w = self.conditioning_to_strength
        out = []
        for cond, options in self.conditioning_to:
            if cond.shape[-1] != source.shape[-1]:
                raise NodeInputError("conditioning_from", f"embeddings are {source.shape[-1]} wide; "
                                                          f"conditioning_to's are {cond.shape[-1]} (another model?)")
            other = source[:, :cond.shape[1]]
            if other.shape[1] < cond.shape[1]:
                other = F.pad(other, (0, 0, 0, cond.shape[1] - other.shape[1]))
            options = dict(options)
            pooled_to = options.get("pooled_output")
            if pooled_from is not None:
                options["pooled_output"] = pooled_from if pooled_to is None else pooled_to * w + pooled_from * (1 - w)
            out.append((cond * w + other.to(cond.dtype) * (1 - w), options))
        return out


class ConditioningSetTimestepRange(Node):
    """Use the conditioning only during part of the sampling: from `start` to `end` as fractions
    of the denoising process (0 = the first, noisiest step; 1 = the end), measured on the model's
    noise schedule as ComfyUI does. Combine several to change prompts mid-way. A start after the
    end gives an entry that is never used (as in ComfyUI)."""
    category = "advanced/conditioning"
    conditioning: CONDITIONING
    start: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetTimestepRange",))

    def run(self):
        return _with_options(self.conditioning, start_percent=self.start, end_percent=self.end)


class ConditioningSetMask(Node):
    """Apply the conditioning only where the mask is (weighted by the mask's values times
    `strength`, against the other conditionings it is combined with). "mask bounds" runs the
    model on the mask's bounding box only, which is faster and gives the prompt the whole crop."""
    category = "conditioning"
    conditioning: CONDITIONING
    mask: MASK
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    set_cond_area: str = Choice(["default", "mask bounds"], "default")
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetMask",))

    def run(self):
        mask = self.mask
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3:
            raise NodeInputError("mask", f"expected a MASK [B, H, W], got shape {tuple(mask.shape)}")
        return _with_options(self.conditioning, mask=mask, mask_strength=self.strength,
                             set_area_to_bounds=self.set_cond_area == "mask bounds")


class ConditioningSetAreaPercentage(Node):
    """Apply the conditioning only to a rectangle given as fractions of the image size, with a
    strength relative to the other conditionings it is combined with."""
    category = "conditioning"
    conditioning: CONDITIONING
    width: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    height: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    x: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    y: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetAreaPercentage",))

    def run(self):
        if self.x >= 1.0 or self.y >= 1.0:
            raise NodeInputError("x" if self.x >= 1.0 else "y", "the area starts at the image's edge")
        area = ("percentage", self.height, self.width, self.y, self.x)
        return _with_options(self.conditioning, area=area, strength=self.strength, set_area_to_bounds=False)


class ConditioningSetAreaPercentageVideo(Node):
    """Apply the conditioning only to a box of a video: width, height and temporal (its length in
    frames) as fractions of the video's size, starting at x, y and frame z (fractions too), with a
    strength relative to the other conditionings it is combined with. The weight fades in over a
    few latent positions at the box's inner edges, in time too. Needs a video latent (LTX-Video,
    Mochi); on an image latent sampling stops with an error."""
    category = "conditioning"
    conditioning: CONDITIONING
    width: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    height: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    temporal: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    x: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    y: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    z: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetAreaPercentageVideo",))

    def run(self):
        for name in ("x", "y", "z"):
            if getattr(self, name) >= 1.0:
                raise NodeInputError(name, "the area starts at the video's edge")
        area = ("percentage", self.temporal, self.height, self.width, self.z, self.y, self.x)
        return _with_options(self.conditioning, area=area, strength=self.strength, set_area_to_bounds=False)


def _crop_to_multiple(pixels: torch.Tensor, multiple: int, *others: torch.Tensor):
    """Centre-crop IMAGE [B, H, W, C] (and same-size [B, 1, H, W] masks) to multiples of `multiple`."""
    h, w = pixels.shape[1:3]
    H, W = h // multiple * multiple, w // multiple * multiple
    top, left = (h % multiple) // 2, (w % multiple) // 2
    cropped = [pixels[:, top:top + H, left:left + W]]
    cropped += [m[:, :, top:top + H, left:left + W] for m in others]
    return cropped


class InpaintModelConditioning(Node):
    """Conditioning for inpainting models (9 input channels): the image with the masked area
    greyed out is encoded and given to the model with the mask, through both conditionings. The
    latent is the whole image encoded, so denoise below 1 keeps its content; with noise_mask the
    sampler also changes only the masked area. Works with ordinary models too (noise mask only)."""
    category = "conditioning/inpaint"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    pixels: IMAGE
    mask: MASK
    noise_mask: bool = Bool(True)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("InpaintModelConditioning",))

    def run(self):
        import torch.nn.functional as F
        if self.vae is None:
            raise NodeInputError("vae", "no VAE: the checkpoint has none; load one with LoadVAE")
        f = self.vae.downscale
        mask = self.mask.reshape(-1, 1, *self.mask.shape[-2:]).float()
        mask = F.interpolate(mask, size=self.pixels.shape[1:3], mode="bilinear")
        # ComfyUI crops the picture and the mask to multiples of 8 whatever the VAE; its VAE then
        # crops what it encodes to its own multiple (the same centre crop: 8 divides f or f divides 8)
        pixels, mask = _crop_to_multiple(self.pixels, 8, mask)
        keep = (1.0 - mask.round())[:, 0, :, :, None]
        greyed = (pixels - 0.5) * keep + 0.5
        concat_latent = self.vae.encode(_crop_to_multiple(greyed, f)[0])
        latent = {"samples": self.vae.encode(_crop_to_multiple(self.pixels, f)[0])}
        if self.noise_mask:
            latent["noise_mask"] = mask
        values = {"concat_latent_image": concat_latent, "concat_mask": mask}
        return _with_options(self.positive, **values), _with_options(self.negative, **values), latent


class InstructPixToPixConditioning(Node):
    """Conditioning for InstructPix2Pix models (8 input channels): the image to edit is encoded
    and given to the model through both conditionings; the prompt says what to change. The
    latent is empty (all zeros) at the image's size: sample it at denoise 1."""
    category = "conditioning/instructpix2pix"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    pixels: IMAGE
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("InstructPixToPixConditioning",))

    def run(self):
        import torch
        if self.vae is None:
            raise NodeInputError("vae", "no VAE: the checkpoint has none; load one with LoadVAE")
        (pixels,) = _crop_to_multiple(self.pixels, self.vae.downscale)
        concat_latent = self.vae.encode(pixels)
        values = {"concat_latent_image": concat_latent}
        return (_with_options(self.positive, **values), _with_options(self.negative, **values),
                {"samples": torch.zeros_like(concat_latent)})


class X4UpscaleConditioning(Node):
    """Conditioning for Stability's x4 upscaler (x4-upscaler-ema.safetensors): the images become
    the low-resolution picture the model draws a larger one from, given through both
    conditionings. scale_ratio is the output's size over the input's; the picture is resized
    (bilinear) to a quarter of that, the model's 4x. noise_augmentation (0..1) adds noise to it
    first (up to noise level 350 of the model's schedule; more lets the model invent more detail,
    and hides the input's artefacts). The latent is empty at the output size / 4: sample it at
    denoise 1 and decode with the upscaler's own VAE."""
    category = "conditioning/upscale_diffusion"
    images: IMAGE
    positive: CONDITIONING
    negative: CONDITIONING
    scale_ratio: float = Float(4.0, min=0.0, max=10.0, step=0.01)
    noise_augmentation: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("SD_4XUpscale_Conditioning",))

    def run(self):
        import torch

        from graphflow.images import center_crop_to_aspect, resize_nchw

        width = max(1, round(self.images.shape[-2] * self.scale_ratio))
        height = max(1, round(self.images.shape[-3] * self.scale_ratio))
        if width < 4 or height < 4:
            raise NodeInputError("scale_ratio", f"scale_ratio {self.scale_ratio} makes the {self.images.shape[-2]}x"
                                                f"{self.images.shape[-3]} images {width}x{height}: the output must be "
                                                f"at least 4x4 pixels (the latent is a quarter of it)")
        pixels = self.images.movedim(-1, 1).float() * 2.0 - 1.0  # the model sees the picture in -1..1
        pixels = resize_nchw(center_crop_to_aspect(pixels, width // 4, height // 4), width // 4, height // 4, "bilinear")
        values = {"concat_image": pixels, "noise_augmentation": self.noise_augmentation}
        latent = torch.zeros(self.images.shape[0], 4, height // 4, width // 4)
        return _with_options(self.positive, **values), _with_options(self.negative, **values), {"samples": latent}


class CLIPEncodeSDXL(Node):
    """Encode a prompt for SDXL with its size conditioning: text_g goes to the large CLIP-G
    encoder, text_l to CLIP-L (the same text in both is what plain CLIP Text Encode does; the
    shorter is padded with empty 77-token windows). width/height is the size the picture
    should look like it was taken at, crop_w/crop_h a crop offset into it (0, 0: uncropped),
    target_width/target_height the intended output size; SDXL was trained with these, so
    1024x1024 with no crop suits most square pictures. On an SD3 text encoder (as in ComfyUI)
    text_l goes to CLIP-L and text_g to CLIP-G and T5-XXL; the sizes are then unused."""
    category = "advanced/conditioning"
    clip: CLIP
    width: int = Int(1024, min=0, max=MAX_SIZE)
    height: int = Int(1024, min=0, max=MAX_SIZE)
    crop_w: int = Int(0, min=0, max=MAX_SIZE)
    crop_h: int = Int(0, min=0, max=MAX_SIZE)
    target_width: int = Int(1024, min=0, max=MAX_SIZE)
    target_height: int = Int(1024, min=0, max=MAX_SIZE)
    text_g: str = Text("", multiline=True)
    text_l: str = Text("", multiline=True)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncodeSDXL",))

    def run(self):
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        sizes = {"width": self.width, "height": self.height, "crop_w": self.crop_w, "crop_h": self.crop_h,
                 "target_width": self.target_width, "target_height": self.target_height}
        if getattr(self.clip, "arch", None) == "sd3" and hasattr(self.clip, "encode_sd3"):
            # ComfyUI's SD3 tokens have CLIP-L, CLIP-G and T5 parts: text_l fills CLIP-L's, text_g the others
            def encode_sd3(clip):
                cond, pooled = clip.encode_sd3(self.text_l, self.text_g, self.text_g, empty_padding=True)
                return cond, {"pooled_output": pooled, **sizes}

            return encoded(self.clip, encode_sd3)
        towers = sorted(t.name for t in getattr(self.clip, "towers", ()))
        if towers != ["clip_g", "clip_l"] or not hasattr(self.clip, "encode_each"):
            raise NodeInputError("clip", f"needs SDXL's text encoder (CLIP-L and CLIP-G); this one has "
                                         f"{', '.join(towers) or 'other towers'}: use CLIP Text Encode")
        def encode(clip):
            cond, pooled = clip.encode_each({"clip_g": self.text_g, "clip_l": self.text_l})
            return cond, {"pooled_output": pooled, **sizes}

        return encoded(self.clip, encode)


class CLIPEncodeSDXLRefiner(Node):
    """Encode a prompt for the SDXL refiner with its aesthetic score (ascore: 6 is a typical
    positive, around 2.5 a negative, as the refiner was trained) and the original image size
    it conditions on."""
    category = "advanced/conditioning"
    ascore: float = Float(6.0, min=0.0, max=1000.0, step=0.01)
    width: int = Int(1024, min=0, max=MAX_SIZE)
    height: int = Int(1024, min=0, max=MAX_SIZE)
    text: str = Text("", multiline=True)
    clip: CLIP
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncodeSDXLRefiner",))

    def run(self):
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        def encode(clip):
            cond, pooled = clip.encode(self.text)
            options = {"aesthetic_score": self.ascore, "width": self.width, "height": self.height}
            if pooled is not None:
                options["pooled_output"] = pooled
            return cond, options

        return encoded(self.clip, encode)


class ConditioningSetAreaStrength(Node):
    """Change the strength of the conditioning against the others it is combined with (its
    area, if any, stays)."""
    category = "conditioning"
    conditioning: CONDITIONING
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetAreaStrength",))

    def run(self):
        return _with_options(self.conditioning, strength=self.strength)


class ReferenceLatent(Node):
    """Give an edit model a reference image: the latent (VAE-encoded image) is appended to the
    conditioning's reference latents. FLUX Kontext and Qwen-Image-Edit see them next to the image
    being generated; chain several for several reference images (FluxKontextMultiReferenceLatentMethod
    places them). Without a latent the conditioning passes unchanged; models that take no reference
    latents ignore them (with a warning), as in ComfyUI."""
    category = "advanced/conditioning/edit_models"
    conditioning: CONDITIONING
    latent: LATENT = None
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ReferenceLatent",), optional=("latent",))

    def run(self):
        if self.latent is None:
            return self.conditioning
        samples = self.latent.get("samples") if isinstance(self.latent, dict) else None
        if samples is None or samples.ndim not in (4, 5):  # 5: a video VAE's (Wan); the sampler checks the model's
            raise NodeInputError("latent", "expected a LATENT with 'samples' [B, C, h, w] or [B, C, frames, h, w] "
                                           "(VAEEncode's output)")
        return append_options(self.conditioning, reference_latents=[samples])
