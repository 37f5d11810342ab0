"""IP-Adapter: load an image prompt adapter (models/ipadapter/) and apply it to a SD1.x / SDXL
MODEL with a reference image, under ComfyUI_IPAdapter_plus's node names and inputs. The result is
a patched copy of the MODEL: every UNet cross-attention also attends to the image's tokens."""

from __future__ import annotations

from graphflow.api import (CLIP_VISION, IMAGE, MASK, MODEL, Choice, ComfyAlias, Float, Node, NodeInputError, folders,
                           socket_type)

IPADAPTER = socket_type("IPADAPTER", "#7e57c2", "An IP-Adapter: image projection and cross-attention weights")
# ComfyUI_IPAdapter_plus's choices, so that its workflows load; the ones not implemented are refused when run
WEIGHT_TYPES = ("linear", "ease in", "ease out", "ease in-out", "reverse in-out", "weak input", "weak output",
                "weak middle", "strong middle", "style transfer", "composition", "strong style transfer",
                "style and composition", "style transfer precise", "composition precise")
COMBINE_EMBEDS = ("concat", "add", "subtract", "average", "norm average")
EMBEDS_SCALINGS = ("V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty")
SIMPLE_WEIGHT_TYPES = ("standard", "prompt is more important", "style transfer")


class IPAdapterModelLoader(Node):
    """Load an IP-Adapter (h94/IP-Adapter's ip-adapter_sd15, ip-adapter-plus_sd15,
    ip-adapter_sdxl_vit-h, ip-adapter-plus_sdxl_vit-h and the like; .safetensors or .bin) from
    models/ipadapter/. Use it with the CLIP vision model it was trained with (ViT-H for these)."""
    category = "loaders"
    ipadapter_file: str = Choice(lambda: folders.list_models("ipadapter"), model_folder="ipadapter")
    outputs = {"ipadapter": IPADAPTER}
    comfy = ComfyAlias(("IPAdapterModelLoader",))

    @classmethod
    def fingerprint(cls, ipadapter_file):
        stat = folders.find_model("ipadapter", ipadapter_file).stat()
        return f"{ipadapter_file}:{stat.st_size}:{stat.st_mtime_ns}"

    def run(self):
        from graphflow.models.ip_adapter import load_ip_adapter
        from graphflow.models.weight_files import CheckpointError

        try:
            path = folders.find_model("ipadapter", self.ipadapter_file)
        except (FileNotFoundError, ValueError) as e:
            raise NodeInputError("ipadapter_file", str(e)) from None
        try:
            return load_ip_adapter(path)
        except CheckpointError as e:
            raise NodeInputError("ipadapter_file", str(e)) from None


def _check_image(image, name: str):
    if getattr(image, "ndim", 0) != 4 or image.shape[-1] not in (1, 3, 4):
        raise NodeInputError(name, f"expected an IMAGE [B, H, W, C], got shape {tuple(getattr(image, 'shape', ()))}")


def _features(adapter, clip_vision, image, name: str):
    from graphflow.models.ip_adapter import IPAdapterError

    _check_image(image, name)
    features = adapter.features(clip_vision.encode_image(image, crop=True))
    try:
        adapter.tokens(features[:1])  # the widths fit: the error names the CLIP vision model
    except IPAdapterError as e:
        raise NodeInputError("clip_vision", str(e)) from None
    return features


def apply_image_prompt(model, adapter, clip_vision, image, weight: float, start_at: float, end_at: float,
                       combine: str = "concat", scaling: str = "V only", image_negative=None):
    """The patched MODEL (the nodes' shared body; inputs already checked by name)."""
    import torch

    from graphflow.models.ip_adapter import IPAdapter, IPAdapterError, apply_ip_adapter
    from graphflow.sampling.flow_sampling import model_sampling_for

    if not isinstance(adapter, IPAdapter):
        raise NodeInputError("ipadapter", f"expected an IP-Adapter (IPAdapterModelLoader), got {type(adapter).__name__}")
    if clip_vision is None:
        raise NodeInputError("clip_vision", "no CLIP vision model: connect a LoadCLIPVision with the image encoder "
                                            "the IP-Adapter was trained with (ViT-H for the SD1.5 and *_vit-h files)")
    if getattr(model, "is_flow", True):
        raise NodeInputError("model", f"IP-Adapter is for SD1.x / SDXL UNets, not {getattr(model, 'arch', model)}")
    if start_at > end_at:
        raise NodeInputError("start_at", f"start_at {start_at} is after end_at {end_at}")
    cond = _features(adapter, clip_vision, image, "image")
    if image_negative is not None:
        uncond = _features(adapter, clip_vision, image_negative, "image_negative")
    elif adapter.config.kind == "plus":  # a black image's hidden states, as ComfyUI_IPAdapter_plus
        uncond = adapter.features(clip_vision.encode_image(torch.zeros(1, 224, 224, 3), crop=True))
    else:
        uncond = torch.zeros_like(cond)
    uncond = uncond.repeat(-(-cond.shape[0] // uncond.shape[0]), *[1] * (uncond.ndim - 1))[:cond.shape[0]]
    if cond.shape[0] > 1 and combine in ("subtract", "norm average"):
        raise NodeInputError("combine_embeds", f"{combine!r} is not supported; use concat, add or average "
                                               f"to combine several images")

    def tokens(features):
        if combine == "average":
            features = features.mean(0, keepdim=True)
        elif combine == "add":
            features = features.sum(0, keepdim=True)
        out = adapter.tokens(features)
        return out.reshape(1, -1, out.shape[-1])  # concat: every image's tokens in one sequence

    sigma_range = None
    if start_at > 0 or end_at < 1:
        schedule = model_sampling_for(model)
        sigma_range = (schedule.percent_to_sigma(start_at), schedule.percent_to_sigma(end_at))
    try:
        return apply_ip_adapter(model, adapter, tokens(cond), tokens(uncond), weight, sigma_range, scaling)
    except IPAdapterError as e:
        raise NodeInputError("ipadapter", str(e)) from None


class IPAdapterAdvanced(Node):
    """Prompt with an image: every UNet cross-attention also attends to the image's IP-Adapter
    tokens, out = attention(text) + weight * attention(image tokens), between start_at and end_at
    (fractions of the schedule). The negative prompt gets image_negative's tokens (default: those of
    no image). Several images: concat (all their tokens), add or average (of their CLIP
    features). weight_type "linear" (one weight everywhere) and embeds_scaling "V only" / "K+V"
    are implemented; attn_mask is not. clip_vision: the encoder the adapter was trained with."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    image: IMAGE
    weight: float = Float(1.0, min=-1.0, max=5.0, step=0.05)
    weight_type: str = Choice(WEIGHT_TYPES, "linear")
    combine_embeds: str = Choice(COMBINE_EMBEDS, "concat")
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    embeds_scaling: str = Choice(EMBEDS_SCALINGS, "V only")
    image_negative: IMAGE = None
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("IPAdapterAdvanced",), optional=("image_negative", "attn_mask", "clip_vision"))

    def run(self):
        if self.weight_type != "linear":
            raise NodeInputError("weight_type", f"{self.weight_type!r} is not supported; only 'linear' (the same "
                                                f"weight in every layer) is")
        if self.embeds_scaling not in ("V only", "K+V"):
            raise NodeInputError("embeds_scaling", f"{self.embeds_scaling!r} is not supported; use 'V only' or 'K+V'")
        if self.attn_mask is not None:
            raise NodeInputError("attn_mask", "attention masks are not supported; leave attn_mask unconnected")
        return apply_image_prompt(self.model, self.ipadapter, self.clip_vision, self.image, self.weight,
                                  self.start_at, self.end_at, self.combine_embeds, self.embeds_scaling,
                                  self.image_negative)


class IPAdapter(Node):
    """Prompt with an image (IPAdapterAdvanced with its defaults): weight_type "standard" only.
    Unlike ComfyUI_IPAdapter_plus's node, whose unified loader bundles the CLIP vision model, this
    one takes it as the clip_vision input."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    image: IMAGE
    weight: float = Float(1.0, min=-1.0, max=3.0, step=0.05)
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    weight_type: str = Choice(SIMPLE_WEIGHT_TYPES, "standard")
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("IPAdapter",), optional=("attn_mask", "clip_vision"))

    def run(self):
        if self.weight_type != "standard":
            raise NodeInputError("weight_type", f"{self.weight_type!r} is not supported; only 'standard' is")
        if self.attn_mask is not None:
            raise NodeInputError("attn_mask", "attention masks are not supported; leave attn_mask unconnected")
        return apply_image_prompt(self.model, self.ipadapter, self.clip_vision, self.image, self.weight,
                                  self.start_at, self.end_at)
