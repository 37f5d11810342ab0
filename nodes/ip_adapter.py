"""IP-Adapter: load an image prompt adapter (models/ipadapter/) and apply it to a SD1.x / SDXL
MODEL with a reference image, under ComfyUI_IPAdapter_plus's node names and inputs. The result is
a patched copy of the MODEL: the UNet cross-attentions also attend to the image's tokens."""

from __future__ import annotations

from graphflow.api import (CLIP_VISION, IMAGE, MASK, MODEL, Bool, Choice, ComfyAlias, Float, Int, Node,
                           NodeInputError, Text, folders, socket_type)
from graphflow.choices import (IPADAPTER_COMBINE_METHODS, IPADAPTER_CROP_POSITIONS, IPADAPTER_INTERPOLATIONS,
                               IPADAPTER_NOISE_TYPES)
from nodes.clip_vision import load_clip_vision_file

IPADAPTER = socket_type("IPADAPTER", "#7e57c2", "An IP-Adapter: image projection and cross-attention weights")
EMBEDS = socket_type("EMBEDS", "#9575cd", "IP-Adapter image features: CLIP image embeddings (basic adapters) or "
                                          "penultimate hidden states (plus), one row per image")
# ComfyUI_IPAdapter_plus's choices
WEIGHT_TYPES = ("linear", "ease in", "ease out", "ease in-out", "reverse in-out", "weak input", "weak output",
                "weak middle", "strong middle", "style transfer", "composition", "strong style transfer",
                "style and composition", "style transfer precise", "composition precise")
COMBINE_EMBEDS = ("concat", "add", "subtract", "average", "norm average")
EMBEDS_SCALINGS = ("V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty")
SIMPLE_WEIGHT_TYPES = ("standard", "prompt is more important", "style transfer")
# the simple node's choices as the pack maps them
SIMPLE_TO_ADVANCED = {"standard": "linear", "prompt is more important": "ease out", "style transfer": "style transfer"}
PRESETS = ("LIGHT - SD1.5 only (low strength)", "STANDARD (medium strength)", "VIT-G (medium strength)",
           "PLUS (high strength)", "PLUS FACE (portraits)", "FULL FACE - SD1.5 only (portraits stronger)")


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
        return folders.model_state("ipadapter", ipadapter_file)

    def run(self):
        return _load_adapter(self.ipadapter_file, "ipadapter_file")


def _load_adapter(name: str, input_name: str):
    from graphflow.models.ip_adapter import load_ip_adapter
    from graphflow.models.weight_files import CheckpointError

    try:
        path = folders.find_model("ipadapter", name)
    except (FileNotFoundError, ValueError) as e:
        raise NodeInputError(input_name, str(e)) from None
    try:
        return load_ip_adapter(path)
    except CheckpointError as e:
        raise NodeInputError(input_name, str(e)) from None


class IPAdapterUnifiedLoader(Node):
    """Load the IP-Adapter and CLIP vision model of a preset, found by ComfyUI_IPAdapter_plus's
    file-name patterns in models/ipadapter/ and models/clip_vision/ (STANDARD: ip-adapter_sd15 or
    ip-adapter_sdxl_vit-h with CLIP-ViT-H-14-laion2B-s32B-b79K; PLUS: ip-adapter-plus_*; VIT-G:
    ip-adapter_sdxl with CLIP-ViT-bigG-14-laion2B-39B-b160k; ...). The ipadapter output carries
    both: connect it to an IPAdapter node without a clip_vision. The model passes through."""
    category = "ipadapter"
    model: MODEL
    preset: str = Choice(PRESETS, "STANDARD (medium strength)")
    ipadapter: IPADAPTER = None
    outputs = {"model": MODEL, "ipadapter": IPADAPTER}
    comfy = ComfyAlias(("IPAdapterUnifiedLoader",), optional=("ipadapter",))

    @classmethod
    def fingerprint(cls, preset):
        # which files the preset finds depends on both folders' contents
        states = []
        for kind in ("ipadapter", "clip_vision"):
            for name in folders.list_models(kind):
                states.append(f"{kind}/{folders.model_state(kind, name)}")
        return "\n".join(states)

    def run(self):
        import re

        from graphflow.models.ip_adapter import IPAdapterBundle, IPAdapterError, preset_patterns

        if getattr(self.model, "is_flow", True):
            raise NodeInputError("model", f"IP-Adapter is for SD1.x / SDXL UNets, not {getattr(self.model, 'arch', self.model)}")
        sdxl = self.model.arch.startswith("sdxl")
        try:
            adapter_patterns, vision_pattern = preset_patterns(self.preset, sdxl)
        except IPAdapterError as e:
            raise NodeInputError("preset", str(e)) from None
        adapters = folders.list_models("ipadapter")
        adapter_file = next((name for pattern in adapter_patterns for name in adapters
                             if re.search(pattern, name, re.IGNORECASE)), None)
        if adapter_file is None:
            raise NodeInputError("preset", f"preset {self.preset!r} ({'SDXL' if sdxl else 'SD1.5'}) found no IP-Adapter "
                                           f"in models/ipadapter: looked for a file name matching "
                                           f"{' or '.join(adapter_patterns)} (e.g. the h94/IP-Adapter file)")
        visions = folders.list_models("clip_vision")
        vision_file = next((name for name in visions if re.search(vision_pattern, name, re.IGNORECASE)), None)
        if vision_file is None:
            raise NodeInputError("preset", f"preset {self.preset!r} found no CLIP vision model in models/clip_vision: "
                                           f"looked for a file name matching {vision_pattern}")
        previous = self.ipadapter  # the pack's pipeline input: reuse what it loaded when the same files
        if isinstance(previous, IPAdapterBundle) and previous.adapter_file == adapter_file:
            adapter = previous.adapter
        else:
            adapter = _load_adapter(adapter_file, "preset")
        if isinstance(previous, IPAdapterBundle) and previous.clip_vision_file == vision_file:
            clip_vision = previous.clip_vision
        else:
            clip_vision = load_clip_vision_file(vision_file, "preset")
        return self.model, IPAdapterBundle(adapter, clip_vision, adapter_file, vision_file)


def _check_image(image, name: str):
    if getattr(image, "ndim", 0) != 4 or image.shape[-1] not in (1, 3, 4):
        raise NodeInputError(name, f"expected an IMAGE [B, H, W, C], got shape {tuple(getattr(image, 'shape', ()))}")
    if 0 in image.shape[:3]:
        raise NodeInputError(name, f"expected at least one picture of at least 1x1 pixels, got shape "
                                   f"{tuple(image.shape)}")


def _features(adapter, clip_vision, image, name: str):
    from graphflow.models.ip_adapter import IPAdapterError

    _check_image(image, name)
    features = adapter.features(clip_vision.encode_image(image, crop=True))
    try:
        adapter.tokens(features[:1])  # the widths fit: the error names the CLIP vision model
    except IPAdapterError as e:
        raise NodeInputError("clip_vision", str(e)) from None
    return features


def _unbundle(adapter, clip_vision, need_clip_vision: bool = True):
    """The IP-Adapter and the CLIP vision model to use: IPAdapterUnifiedLoader's bundle brings its
    own (a connected clip_vision wins)."""
    from graphflow.models.ip_adapter import IPAdapter, IPAdapterBundle

    if isinstance(adapter, IPAdapterBundle):
        adapter, clip_vision = adapter.adapter, clip_vision if clip_vision is not None else adapter.clip_vision
    if not isinstance(adapter, IPAdapter):
        raise NodeInputError("ipadapter", f"expected an IP-Adapter (IPAdapterModelLoader or IPAdapterUnifiedLoader), "
                                          f"got {type(adapter).__name__}")
    if clip_vision is None and need_clip_vision:
        raise NodeInputError("clip_vision", "no CLIP vision model: connect a LoadCLIPVision with the image encoder "
                                            "the IP-Adapter was trained with (ViT-H for the SD1.5 and *_vit-h files), "
                                            "or load the adapter with IPAdapterUnifiedLoader")
    return adapter, clip_vision


def _no_image_features(adapter, clip_vision, like):
    """The negative side's features when no negative image is given: a black image's hidden states
    (plus) or zero image embeddings, as ComfyUI_IPAdapter_plus."""
    import torch

    if adapter.config.kind == "plus":
        return adapter.features(clip_vision.encode_image(torch.zeros(1, 224, 224, 3), crop=True))
    return torch.zeros_like(like)


def apply_image_prompt(model, adapter, clip_vision, image, weight: float, start_at: float, end_at: float,
                       combine: str = "concat", scaling: str = "V only", image_negative=None,
                       weight_type: str = "linear", attn_mask=None, per_latent: bool = False, boost=None,
                       layer_weights=None):
    """The patched MODEL (the nodes' shared body; inputs already checked by name)."""
    adapter, clip_vision = _unbundle(adapter, clip_vision)
    _check_model(model, attn_mask)
    cond = _features(adapter, clip_vision, image, "image")
    if image_negative is not None:
        uncond = _features(adapter, clip_vision, image_negative, "image_negative")
    else:
        uncond = _no_image_features(adapter, clip_vision, cond)
    return patch_model(model, adapter, cond, uncond, weight, start_at, end_at, combine, scaling, weight_type,
                       attn_mask, per_latent, boost=boost, layer_weights=layer_weights)


def _check_model(model, attn_mask):
    if attn_mask is not None and (getattr(attn_mask, "ndim", 0) not in (2, 3) or 0 in attn_mask.shape):
        raise NodeInputError("attn_mask", f"expected a MASK [B, H, W], got shape {tuple(getattr(attn_mask, 'shape', ()))}")
    if getattr(model, "is_flow", True):
        raise NodeInputError("model", f"IP-Adapter is for SD1.x / SDXL UNets, not {getattr(model, 'arch', model)}")
    # start_at after end_at is no error in the pack: no sigma is in the window, the image prompt never acts


def _combine(features, combine: str):
    from graphflow.models.ip_adapter_images import combine_embeds

    return combine_embeds([features], combine)


def patch_model(model, adapter, cond, uncond, weight: float, start_at: float, end_at: float, combine: str,
                scaling: str, weight_type: str, attn_mask, per_latent: bool = False, composition=None,
                composition_weight: float = 1.0, boost=None, layer_weights=None):
    """The MODEL with the image prompt of CLIP features cond / uncond (one row per image).
    per_latent: image k prompts latent k of the batch (the last image the latents beyond).
    composition: the composition transformers' CLIP features (IPAdapterStyleComposition), combined
    as cond's; composition_weight: their weight in the "style and composition" types."""
    from graphflow.models.ip_adapter import IPAdapterError, apply_ip_adapter
    from graphflow.sampling.flow_sampling import model_sampling_for

    uncond = _to_count(uncond, cond.shape[0])  # as the pack: as many as the (style) images, then
    if per_latent and composition is not None:  # latent k takes row k (the last beyond) of each
        count = max(cond.shape[0], composition.shape[0])
        cond, composition, uncond = (_to_count(f, count) for f in (cond, composition, uncond))
    if combine != "concat" and cond.shape[0] > 1 and not per_latent:
        # the pack combines the composition images when the style images are several, a single one
        # too (norm average: its signs); kept as it is only where the pack's subtract gives NaN
        if composition is not None and (composition.shape[0] > 1 or combine != "subtract"):
            composition = _combine(composition, combine)
        cond = _combine(cond, combine)
        uncond = uncond[:1]  # as the pack: the first negative, not a combination

    def tokens(features):
        out = adapter.tokens(features)
        return out if per_latent else out.reshape(1, -1, out.shape[-1])  # concat: all in one sequence

    sigma_range = None
    if start_at > 0 or end_at < 1:
        schedule = model_sampling_for(model)
        sigma_range = (schedule.percent_to_sigma(start_at), schedule.percent_to_sigma(end_at))
    try:
        return apply_ip_adapter(model, adapter, tokens(cond), tokens(uncond), weight, sigma_range, scaling,
                                weight_type, attn_mask, composition_weight,
                                None if composition is None else tokens(composition), boost, layer_weights)
    except IPAdapterError as e:
        raise NodeInputError("ipadapter", str(e)) from None


class IPAdapterAdvanced(Node):
    """Prompt with an image: every UNet cross-attention also attends to the image's IP-Adapter
    tokens, out = attention(text) + weight * attention(image tokens), between start_at and end_at
    (fractions of the schedule). The negative prompt gets image_negative's tokens (default: those of
    no image). Several images: concat (all their tokens), or add, subtract (the first minus the
    others' mean), average, norm average of their CLIP features. weight_type spreads the weight
    over the UNet's transformers as ComfyUI_IPAdapter_plus does ("style transfer" on SDXL: output
    block 1 alone; "composition": input block 8; the ease and
    weak ones scale it by position or block). embeds_scaling: "V only" scales the image attention,
    "K+V" its keys and values, the "C penalty" ones by weight * width / 1280 (weaker in the narrow
    attentions; "K+mean(V)": only the values' mean over the tokens). attn_mask: where in
    the picture the image prompt acts (resized to each attention's grid, multiplies its part).
    clip_vision: the encoder the adapter was trained with (IPAdapterUnifiedLoader's comes along)."""
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
        return apply_image_prompt(self.model, self.ipadapter, self.clip_vision, self.image, self.weight,
                                  self.start_at, self.end_at, self.combine_embeds, self.embeds_scaling,
                                  self.image_negative, self.weight_type, self.attn_mask)


class IPAdapterStyleComposition(Node):
    """SDXL only: the style of image_style and the composition of image_composition, as
    ComfyUI_IPAdapter_plus's node. image_style's tokens, times weight_style, go to the style
    transformer (output block 1); image_composition's, times weight_composition, to the
    composition transformer (input block 8). expand_style: the style image (and weight) on every
    other transformer too ("strong style and composition"). Several images per input are combined
    by combine_embeds; the rest as IPAdapterAdvanced."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    image_style: IMAGE
    image_composition: IMAGE
    weight_style: float = Float(1.0, min=-1.0, max=5.0, step=0.05)
    weight_composition: float = Float(1.0, min=-1.0, max=5.0, step=0.05)
    expand_style: bool = Bool(False)
    combine_embeds: str = Choice(COMBINE_EMBEDS, "average")
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    embeds_scaling: str = Choice(EMBEDS_SCALINGS, "V only")
    image_negative: IMAGE = None
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("IPAdapterStyleComposition",), optional=("image_negative", "attn_mask", "clip_vision"))

    def run(self):
        return _run_style_composition(self, self.combine_embeds, per_latent=False)


def _run_style_composition(node, combine: str, per_latent: bool):
    adapter, clip_vision = _unbundle(node.ipadapter, node.clip_vision)
    _check_model(node.model, node.attn_mask)
    if not node.model.arch.startswith("sdxl"):  # as the pack, which has no SD1.5 layout for it
        raise NodeInputError("model", f"style + composition transfer is for SDXL models only, not {node.model.arch}")
    cond = _features(adapter, clip_vision, node.image_style, "image_style")
    composition = _features(adapter, clip_vision, node.image_composition, "image_composition")
    if node.image_negative is not None:
        uncond = _features(adapter, clip_vision, node.image_negative, "image_negative")
    else:
        uncond = _no_image_features(adapter, clip_vision, cond)
    weight_type = "strong style and composition" if node.expand_style else "style and composition"
    return patch_model(node.model, adapter, cond, uncond, node.weight_style, node.start_at, node.end_at, combine,
                       node.embeds_scaling, weight_type, node.attn_mask, per_latent, composition=composition,
                       composition_weight=node.weight_composition)


class IPAdapterStyleCompositionBatch(Node):
    """IPAdapterStyleComposition with one image per latent (as IPAdapterBatch): latent k gets
    image_style's and image_composition's image k (the last one beyond)."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    image_style: IMAGE
    image_composition: IMAGE
    weight_style: float = Float(1.0, min=-1.0, max=5.0, step=0.05)
    weight_composition: float = Float(1.0, min=-1.0, max=5.0, step=0.05)
    expand_style: bool = Bool(False)
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    embeds_scaling: str = Choice(EMBEDS_SCALINGS, "V only")
    image_negative: IMAGE = None
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("IPAdapterStyleCompositionBatch",), optional=("image_negative", "attn_mask", "clip_vision"))

    def run(self):
        return _run_style_composition(self, "concat", per_latent=True)


class IPAdapterBatch(Node):
    """IPAdapterAdvanced with one image per latent: image k prompts latent k of the batch (the last
    image the latents beyond it; image_negative and attn_mask likewise per latent), as
    ComfyUI_IPAdapter_plus's batch node. A single weight (not a per-frame list)."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    image: IMAGE
    weight: float = Float(1.0, min=-1.0, max=5.0, step=0.05)
    weight_type: str = Choice(WEIGHT_TYPES, "linear")
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    embeds_scaling: str = Choice(EMBEDS_SCALINGS, "V only")
    encode_batch_size: int = Int(0, min=0, max=4096)
    image_negative: IMAGE = None
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("IPAdapterBatch",), optional=("image_negative", "attn_mask", "clip_vision"))

    def run(self):
        # encode_batch_size only splits the CLIP vision encoding in the pack; the result is the same
        adapter, clip_vision = _unbundle(self.ipadapter, self.clip_vision)
        _check_model(self.model, self.attn_mask)
        cond = _features(adapter, clip_vision, self.image, "image")
        if self.image_negative is not None:
            uncond = _features(adapter, clip_vision, self.image_negative, "image_negative")
        else:
            uncond = _no_image_features(adapter, clip_vision, cond)
        return patch_model(self.model, adapter, cond, uncond, self.weight, self.start_at, self.end_at, "concat",
                           self.embeds_scaling, self.weight_type, self.attn_mask, per_latent=True)


def _to_count(features, count: int):
    """features with count rows: cut, or the last row repeated (the pack's tensor_to_size)."""
    if features.shape[0] >= count:
        return features[:count]
    return features[list(range(features.shape[0])) + [-1] * (count - features.shape[0])]


class IPAdapter(Node):
    """Prompt with an image (IPAdapterAdvanced with its defaults). weight_type: "standard" (the
    same weight everywhere), "prompt is more important" (ease out) or "style transfer". The CLIP
    vision model comes with IPAdapterUnifiedLoader's ipadapter, or connect clip_vision."""
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
        return apply_image_prompt(self.model, self.ipadapter, self.clip_vision, self.image, self.weight,
                                  self.start_at, self.end_at, weight_type=SIMPLE_TO_ADVANCED[self.weight_type],
                                  attn_mask=self.attn_mask)


class IPAdapterEncoder(Node):
    """The CLIP vision features an IP-Adapter takes, times weight, for IPAdapterEmbeds:
    pos_embed (the image's; mask [B, H, W] multiplies its preprocessed pixels) and neg_embed (no
    image: zeros, or a black image's hidden states for plus adapters), as ComfyUI_IPAdapter_plus."""
    category = "ipadapter"
    ipadapter: IPADAPTER
    image: IMAGE
    weight: float = Float(1.0, min=-1.0, max=3.0, step=0.01)
    mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"pos_embed": EMBEDS, "neg_embed": EMBEDS}
    comfy = ComfyAlias(("IPAdapterEncoder",), optional=("mask", "clip_vision"))

    def run(self):
        adapter, clip_vision = _unbundle(self.ipadapter, self.clip_vision)
        mask = self.mask
        if mask is not None:
            mask = mask[None] if getattr(mask, "ndim", 0) == 2 else mask
            if getattr(mask, "ndim", 0) != 3 or 0 in mask.shape:
                raise NodeInputError("mask", f"expected a MASK [B, H, W], got shape {tuple(getattr(mask, 'shape', ()))}")
        _check_image(self.image, "image")
        cond = adapter.features(clip_vision.encode_image(self.image, crop=True, mask=mask))
        _check_features(adapter, cond, "clip_vision")
        if self.weight != 1:
            cond = cond * self.weight
        return cond, _no_image_features(adapter, clip_vision, cond)


def _check_features(adapter, features, name: str):
    from graphflow.models.ip_adapter import IPAdapterError

    if getattr(features, "ndim", 0) not in (2, 3):
        raise NodeInputError(name, f"expected IP-Adapter EMBEDS (IPAdapterEncoder), got {type(features).__name__}")
    try:
        adapter.tokens(features[:1])
    except IPAdapterError as e:
        raise NodeInputError(name, str(e)) from None


class IPAdapterEmbeds(Node):
    """IPAdapterAdvanced on CLIP features already encoded (IPAdapterEncoder, maybe combined or
    weighted): every row of pos_embed gives its tokens (concat); neg_embed the negative prompt's
    (default: those of no image, which for plus adapters needs the CLIP vision model)."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    pos_embed: EMBEDS
    weight: float = Float(1.0, min=-1.0, max=3.0, step=0.05)
    weight_type: str = Choice(WEIGHT_TYPES, "linear")
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    embeds_scaling: str = Choice(EMBEDS_SCALINGS, "V only")
    neg_embed: EMBEDS = None
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("IPAdapterEmbeds",), optional=("neg_embed", "attn_mask", "clip_vision"))
    per_latent = False

    def run(self):
        adapter, clip_vision = _unbundle(self.ipadapter, self.clip_vision, need_clip_vision=False)
        _check_model(self.model, self.attn_mask)
        _check_features(adapter, self.pos_embed, "pos_embed")
        uncond = self.neg_embed
        if uncond is None:
            if clip_vision is None and adapter.config.kind == "plus":
                raise NodeInputError("clip_vision", "a plus IP-Adapter without neg_embed needs the CLIP vision model "
                                                    "(for a black image's features): connect clip_vision or neg_embed")
            uncond = _no_image_features(adapter, clip_vision, self.pos_embed)
        else:
            _check_features(adapter, uncond, "neg_embed")
        return patch_model(self.model, adapter, self.pos_embed, uncond, self.weight, self.start_at, self.end_at,
                           "concat", self.embeds_scaling, self.weight_type, self.attn_mask, self.per_latent)


class IPAdapterEmbedsBatch(IPAdapterEmbeds):
    """IPAdapterEmbeds with one row of pos_embed per latent (as IPAdapterBatch): latent k gets
    row k's tokens (the last row the latents beyond), neg_embed likewise."""
    comfy = ComfyAlias(("IPAdapterEmbedsBatch",), optional=("neg_embed", "attn_mask", "clip_vision"))
    per_latent = True


class PrepImageForClipVision(Node):
    """The square of the image the CLIP vision encoder should see, at 224 x 224, as
    ComfyUI_IPAdapter_plus prepares it: cut at crop_position (top, bottom, left, right or center:
    the short side's square; pad: the whole image, black bars on the short side), resized by
    Pillow with `interpolation`, then contrast-adaptive sharpened by `sharpening` (0: none)."""
    category = "ipadapter"
    image: IMAGE
    interpolation: str = Choice(IPADAPTER_INTERPOLATIONS, "LANCZOS")
    crop_position: str = Choice(IPADAPTER_CROP_POSITIONS, "top")  # the pack's list has no default: its first
    sharpening: float = Float(0.0, min=0.0, max=1.0, step=0.05)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("PrepImageForClipVision",))

    def run(self):
        from graphflow.models.ip_adapter_images import prep_for_clip_vision

        _check_image(self.image, "image")
        return prep_for_clip_vision(self.image.float(), self.interpolation, self.crop_position, self.sharpening)


class IPAdapterTiled(Node):
    """IPAdapterAdvanced on a reference image of any shape, as ComfyUI_IPAdapter_plus's tiled
    node: the image (nearly square: its centre square at 512 x 512; else its short side at 256,
    at most 4 tiles long) is cut into 256-pixel tiles overlapping evenly; each tile prompts the
    part of the picture it covers (its attention mask: attn_mask, default all ones, inside the
    tile). Outputs the MODEL, the tiles and their masks. sharpening: contrast-adaptive
    sharpening of the resized image. Several images per tile are combined by combine_embeds."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    image: IMAGE
    weight: float = Float(1.0, min=-1.0, max=3.0, step=0.05)
    weight_type: str = Choice(WEIGHT_TYPES, "linear")
    combine_embeds: str = Choice(COMBINE_EMBEDS, "concat")
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    sharpening: float = Float(0.0, min=0.0, max=1.0, step=0.05)
    embeds_scaling: str = Choice(EMBEDS_SCALINGS, "V only")
    image_negative: IMAGE = None
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL, "tiles": IMAGE, "masks": MASK}
    comfy = ComfyAlias(("IPAdapterTiled",), optional=("image_negative", "attn_mask", "clip_vision"))

    def run(self):
        return _run_tiled(self, per_latent=False)


def _run_tiled(node, per_latent: bool):
    """IPAdapterTiled's and IPAdapterTiledBatch's body: one adapter per tile, each masked to its tile."""
    import torch

    from graphflow.models.ip_adapter_images import reference_tiles

    adapter, clip_vision = _unbundle(node.ipadapter, node.clip_vision)
    _check_model(node.model, node.attn_mask)
    _check_image(node.image, "image")
    mask = node.attn_mask
    if mask is not None and mask.ndim == 2:
        mask = mask[None]
    tiles, masks = reference_tiles(node.image.float(), mask, node.sharpening)
    uncond = None
    if node.image_negative is not None:
        uncond = _features(adapter, clip_vision, node.image_negative, "image_negative")
    model = node.model
    combine = "concat" if per_latent else node.combine_embeds
    for tile, tile_mask in zip(tiles, masks):  # each tile's adapter adds to the others'
        cond = _features(adapter, clip_vision, tile, "image")
        tile_uncond = uncond if uncond is not None else _no_image_features(adapter, clip_vision, cond)
        model = patch_model(model, adapter, cond, tile_uncond, node.weight, node.start_at, node.end_at, combine,
                            node.embeds_scaling, node.weight_type, tile_mask, per_latent)
    return model, torch.cat(tiles), torch.cat(masks)


class IPAdapterTiledBatch(Node):
    """IPAdapterTiled with one image per latent (as IPAdapterBatch): each tile's image k prompts
    latent k. encode_batch_size only splits the encoding in the pack: the result is the same."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    image: IMAGE
    weight: float = Float(1.0, min=-1.0, max=3.0, step=0.05)
    weight_type: str = Choice(WEIGHT_TYPES, "linear")
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    sharpening: float = Float(0.0, min=0.0, max=1.0, step=0.05)
    embeds_scaling: str = Choice(EMBEDS_SCALINGS, "V only")
    encode_batch_size: int = Int(0, min=0, max=4096)
    image_negative: IMAGE = None
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL, "tiles": IMAGE, "masks": MASK}
    comfy = ComfyAlias(("IPAdapterTiledBatch",), optional=("image_negative", "attn_mask", "clip_vision"))

    def run(self):
        return _run_tiled(self, per_latent=True)


class IPAdapterCombineEmbeds(Node):
    """Combine up to five EMBEDS (IPAdapterEncoder's): concat (all rows), add, subtract (the first
    row minus the others' mean), average, norm average (each feature divided by its norm over the
    rows, then averaged), max or min (element-wise), as ComfyUI_IPAdapter_plus."""
    category = "ipadapter"
    embed1: EMBEDS
    method: str = Choice(IPADAPTER_COMBINE_METHODS, "concat")
    embed2: EMBEDS = None
    embed3: EMBEDS = None
    embed4: EMBEDS = None
    embed5: EMBEDS = None
    outputs = {"embeds": EMBEDS}
    comfy = ComfyAlias(("IPAdapterCombineEmbeds",), optional=("embed2", "embed3", "embed4", "embed5"))

    def run(self):
        from graphflow.models.ip_adapter_images import combine_embeds

        embeds = []
        for name in ("embed1", "embed2", "embed3", "embed4", "embed5"):
            value = getattr(self, name)
            if value is None:
                continue
            if getattr(value, "ndim", 0) not in (2, 3):
                raise NodeInputError(name, f"expected IP-Adapter EMBEDS (IPAdapterEncoder), got {type(value).__name__}")
            if embeds and value.shape[1:] != embeds[0].shape[1:]:
                raise NodeInputError(name, f"EMBEDS of shape {tuple(value.shape)} don't fit embed1's "
                                           f"{tuple(embeds[0].shape)}: encode them with the same CLIP vision model "
                                           f"and the same kind of IP-Adapter")
            embeds.append(value)
        return combine_embeds(embeds, self.method)


class IPAdapterNoise(Node):
    """A noise image for an IP-Adapter's image_negative (224 x 224), as ComfyUI_IPAdapter_plus:
    from image_optional (its centre square) or black. fade: towards uniform noise by strength;
    dissolve: that share of the values replaced by uniform noise; gaussian: plus strength times
    normal noise; shuffle: the image warped and flipped, then noised. blur: a Gaussian blur of
    that kernel size (0: none). The noise is seeded by the image, so it repeats."""
    category = "ipadapter"
    type: str = Choice(IPADAPTER_NOISE_TYPES, "fade")
    strength: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    blur: int = Int(0, min=0, max=32)
    image_optional: IMAGE = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("IPAdapterNoise",), optional=("image_optional",))

    def run(self):
        from graphflow.models.ip_adapter_images import noise_image

        if self.image_optional is not None:
            _check_image(self.image_optional, "image_optional")
        return noise_image(self.type, self.strength, self.blur, self.image_optional)


class IPAdapterPreciseStyleTransfer(Node):
    """The style of the image (weight type "style transfer precise"): the style transformers get
    the image at `weight`; the composition ones (SDXL input block 8, SD1.5 input blocks 7-8, block
    7 at a quarter) get it at style_boost on the negative side only (the positive side none), which
    keeps the image's composition out. The rest as IPAdapterAdvanced."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    image: IMAGE
    weight: float = Float(1.0, min=-1.0, max=5.0, step=0.05)
    style_boost: float = Float(1.0, min=-5.0, max=5.0, step=0.05)
    combine_embeds: str = Choice(COMBINE_EMBEDS, "concat")
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    embeds_scaling: str = Choice(EMBEDS_SCALINGS, "V only")
    image_negative: IMAGE = None
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("IPAdapterPreciseStyleTransfer",), optional=("image_negative", "attn_mask", "clip_vision"))
    per_latent = False

    def run(self):
        return _run_precise(self, "style transfer precise", self.style_boost, self.per_latent)


def _run_precise(node, weight_type: str, boost: float, per_latent: bool):
    return apply_image_prompt(node.model, node.ipadapter, node.clip_vision, node.image, node.weight, node.start_at,
                              node.end_at, node.combine_embeds, node.embeds_scaling, node.image_negative, weight_type,
                              node.attn_mask, per_latent, boost)


class IPAdapterPreciseStyleTransferBatch(IPAdapterPreciseStyleTransfer):
    """IPAdapterPreciseStyleTransfer with one image per latent (as IPAdapterBatch;
    combine_embeds is unused, as in the pack)."""
    comfy = ComfyAlias(("IPAdapterPreciseStyleTransferBatch",), optional=("image_negative", "attn_mask", "clip_vision"))
    per_latent = True


class IPAdapterPreciseComposition(Node):
    """The composition of the image (weight type "composition precise"): the composition
    transformers get the image at `weight` (SD1.5's input block 7 a quarter); the others get it at
    composition_boost on the negative side only: a tenth of it on SDXL but in output block 1, and
    in SD1.5's middle block and output blocks 3-4. The rest as IPAdapterAdvanced."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    image: IMAGE
    weight: float = Float(1.0, min=-1.0, max=5.0, step=0.05)
    composition_boost: float = Float(0.0, min=-5.0, max=5.0, step=0.05)
    combine_embeds: str = Choice(COMBINE_EMBEDS, "concat")
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    embeds_scaling: str = Choice(EMBEDS_SCALINGS, "V only")
    image_negative: IMAGE = None
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("IPAdapterPreciseComposition",), optional=("image_negative", "attn_mask", "clip_vision"))
    per_latent = False

    def run(self):
        return _run_precise(self, "composition precise", self.composition_boost, self.per_latent)


class IPAdapterPreciseCompositionBatch(IPAdapterPreciseComposition):
    """IPAdapterPreciseComposition with one image per latent (as IPAdapterBatch;
    combine_embeds is unused, as in the pack)."""
    comfy = ComfyAlias(("IPAdapterPreciseCompositionBatch",), optional=("image_negative", "attn_mask", "clip_vision"))
    per_latent = True


def parse_layer_weights(text: str) -> dict[int, float] | None:
    """IPAdapterMS's layer_weights: "transformer:weight" pairs separated by commas (or newlines),
    e.g. "0:0.5, 6:1.0"; None when empty."""
    pairs = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        index, _, value = pair.partition(":")
        try:
            out[int(index)] = float(value)
        except ValueError:
            raise NodeInputError("layer_weights", f"{pair!r} is not 'transformer:weight' (e.g. '6:1.0'); expected "
                                                  f"comma-separated pairs such as '0:0.5, 6:1.0'") from None
    return out


class IPAdapterMS(Node):
    """IPAdapterAdvanced with a weight per UNet transformer (ComfyUI's transformer_index: SD1.5
    input 0-5, middle 6, output 7-15; SDXL input 0-3, middle 4, output 5-10): layer_weights
    "index:multiple" pairs, e.g. "3:2.5, 6:1.0", each times `weight`; the transformers not listed
    are left alone. Empty: as IPAdapterAdvanced. With layer_weights the weight type counts only
    when it is a precise one (its sides swap); weight_faceidv2 is for FaceID adapters, which
    graphflow does not load, and is ignored."""
    category = "ipadapter"
    model: MODEL
    ipadapter: IPADAPTER
    image: IMAGE
    weight: float = Float(1.0, min=-1.0, max=5.0, step=0.05)
    weight_faceidv2: float = Float(1.0, min=-1.0, max=5.0, step=0.05)
    weight_type: str = Choice(WEIGHT_TYPES, "linear")
    combine_embeds: str = Choice(COMBINE_EMBEDS, "concat")
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    embeds_scaling: str = Choice(EMBEDS_SCALINGS, "V only")
    layer_weights: str = Text("", multiline=True)
    image_negative: IMAGE = None
    attn_mask: MASK = None
    clip_vision: CLIP_VISION = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("IPAdapterMS",), optional=("image_negative", "attn_mask", "clip_vision"),
                       ignore=("insightface",))  # FaceID's

    def run(self):
        return apply_image_prompt(self.model, self.ipadapter, self.clip_vision, self.image, self.weight,
                                  self.start_at, self.end_at, self.combine_embeds, self.embeds_scaling,
                                  self.image_negative, self.weight_type, self.attn_mask,
                                  layer_weights=parse_layer_weights(self.layer_weights))


EMBEDS_SUFFIX = ".ipadpt"


class IPAdapterSaveEmbeds(Node):
    """Save EMBEDS to the outputs folder as `prefix_NNNNN.ipadpt` (ComfyUI_IPAdapter_plus's file:
    the tensor as torch.save writes it). Copy it to the inputs folder for IPAdapterLoadEmbeds."""
    category = "ipadapter"
    output_node = True
    embeds: EMBEDS
    filename_prefix: str = Text("IP_embeds", file_name=True)
    comfy = ComfyAlias(("IPAdapterSaveEmbeds",))

    def run(self):
        import torch

        from nodes.image import _next_counter, _write_new

        if getattr(self.embeds, "ndim", 0) not in (2, 3):
            raise NodeInputError("embeds", f"expected IP-Adapter EMBEDS (IPAdapterEncoder), "
                                           f"got {type(self.embeds).__name__}")
        try:
            folder, stem = folders.output_location(self.filename_prefix)
        except ValueError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        embeds = self.embeds.detach().cpu().contiguous()
        _write_new(lambda path: torch.save(embeds, path), folder, stem,
                   _next_counter(folder, stem), EMBEDS_SUFFIX)


def _embeds_files() -> list[str]:
    return folders.list_inputs((EMBEDS_SUFFIX,))


class IPAdapterLoadEmbeds(Node):
    """Load EMBEDS saved by IPAdapterSaveEmbeds (a .ipadpt file in the inputs folder). The file is
    read by PyTorch's restricted unpickler: plain tensors only, any other pickled object refused."""
    category = "ipadapter"
    embeds: str = Choice(_embeds_files, description="a .ipadpt file in the inputs folder")
    outputs = {"embeds": EMBEDS}
    comfy = ComfyAlias(("IPAdapterLoadEmbeds",))

    @classmethod
    def fingerprint(cls, embeds):
        stat = folders.input_path(embeds).stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def run(self):
        import torch

        from graphflow.models.weight_files import CheckpointError, read_pickle

        path = folders.input_path(self.embeds)
        if not path.is_file():
            raise NodeInputError("embeds", f"no file {self.embeds!r} in the inputs folder")
        try:
            value = read_pickle(path)
        except CheckpointError as e:
            raise NodeInputError("embeds", str(e)) from None
        if not torch.is_tensor(value) or value.ndim not in (2, 3):
            found = f"a tensor of shape {tuple(value.shape)}" if torch.is_tensor(value) else f"a {type(value).__name__}"
            raise NodeInputError("embeds", f"{self.embeds!r} holds {found}, not IP-Adapter EMBEDS [B, D] or [B, T, D]")
        return value.float()
