"""ControlNets and T2I-Adapters: load them from models/controlnet/ (and the bundled demo one) and
apply them to a conditioning with a hint image.

The applied control travels in the conditioning's options under "control", chained to any
control applied before (stacked controls add their residuals), as in ComfyUI; the sampler runs
it next to the UNet for the entries that carry it. A text of the ControlNets' own
(CLIPTextEncodeControlnet) travels as "cross_attn_controlnet"."""

from graphflow.api import (CLIP, CONDITIONING, IMAGE, MASK, MODEL, VAE, Choice, ComfyAlias, Float, Node,
                           NodeInputError, Text, folders, socket_type)
from graphflow.choices import UNION_CONTROLNET_TYPES

CONTROL_NET = socket_type("CONTROL_NET", "#00d78d", "A ControlNet or T2I-Adapter")


def _load(name: str, model=None):
    from graphflow.models.controlnet import load_control_model
    from graphflow.models.weight_files import CheckpointError

    try:
        path = folders.find_model("controlnet", name)
    except (FileNotFoundError, ValueError) as e:
        raise NodeInputError("control_net_name", str(e)) from None
    try:
        return load_control_model(path, base=model)
    except CheckpointError as e:
        raise NodeInputError("control_net_name", str(e)) from None


class LoadControlNet(Node):
    """Load a ControlNet or a T2I-Adapter: SD1/SD2/SDXL ControlNets in the original layout
    (lllyasviel's .pth/.safetensors, with or without control_model.) or diffusers' layout; SD3 /
    SD3.5 ControlNets in diffusers' layout (InstantX's, Stability's SD3.5 large ones); FLUX
    ControlNets in diffusers' layout (InstantX's) or XLabs'; union ControlNets (SDXL ControlNet++,
    xinsir's diffusion_pytorch_model[_promax].safetensors, and FLUX unions, InstantX's and
    Shakker-Labs': set their type with SetUnionControlNetType); Qwen-Image ControlNets (InstantX's
    Union, which takes no type, and Inpainting); T2I-Adapters for SD1/SD2 and SDXL, full or light,
    in TencentARC's or diffusers' layout. SD3, FLUX (XLabs' aside) and Qwen-Image ControlNets read
    the hint through a VAE: apply them with one. Control-LoRA files (Stability's) are built
    on the weights of the model they are sampled with, when sampling starts, as in ComfyUI. A file whose name ends in _shuffle or _shuffle_fp16 (lllyasviel's shuffle
    ControlNet) has its residuals averaged over the image, as ComfyUI does."""
    category = "loaders"
    control_net_name: str = Choice(lambda: folders.list_models("controlnet"), model_folder="controlnet")
    outputs = {"control_net": CONTROL_NET}
    comfy = ComfyAlias(("ControlNetLoader",))

    @classmethod
    def fingerprint(cls, control_net_name):
        return folders.model_state("controlnet", control_net_name)

    def run(self):
        return _load(self.control_net_name)


class LoadDiffControlNet(Node):
    """Load a "difference" ControlNet (its weights added to the model's UNet weights); a plain
    ControlNet loads as is. A Control-LoRA (its low-rank differences applied to UNet weights) is
    built, as in ComfyUI, on the model it is sampled with when sampling starts, not on this one."""
    category = "loaders"
    model: MODEL
    control_net_name: str = Choice(lambda: folders.list_models("controlnet"), model_folder="controlnet")
    outputs = {"control_net": CONTROL_NET}
    comfy = ComfyAlias(("DiffControlNetLoader",))

    @classmethod
    def fingerprint(cls, control_net_name, **links):
        return folders.model_state("controlnet", control_net_name)

    def run(self):
        return _load(self.control_net_name, self.model)


def _apply(conditioning, net, image, strength, start, end, cache: dict, vae=None, mask=None, to_uncond=False):
    """Each entry gets the control chained to what it carried; entries that carried the same
    previous control share one new control (one ControlNet run per UNet call). to_uncond: ComfyUI's
    control_apply_to_uncond (graphflow.sampling.guidance.share_controls)."""
    from graphflow.models.controlnet import ControlApplied

    out = []
    for cond, options in conditioning:
        previous = options.get("control")
        key = id(previous)
        if key not in cache:
            # a net loaded with a schedule (ComfyUI-Advanced-ControlNet's loaders) applies itself
            make = getattr(net, "applied", None) or ControlApplied
            cache[key] = make(net, image, strength, start, end, previous=previous, vae=vae, mask=mask)
        out.append((cond, {**options, "control": cache[key], "control_apply_to_uncond": to_uncond}))
    return out


def _hint_image(image):
    if getattr(image, "ndim", 0) != 4 or image.shape[-1] not in (1, 3, 4):
        raise NodeInputError("image", f"expected an IMAGE [B, H, W, C], got shape {tuple(getattr(image, 'shape', ()))}")
    return image[..., :3] if image.shape[-1] != 1 else image.expand(*image.shape[:3], 3)


class ApplyControlNet(Node):
    """Guide the image with a ControlNet and a hint image (resized to the image being generated),
    over the whole sampling. As in ComfyUI (this is its deprecated node), the negative prompt
    takes the control too when none of its entries has one."""
    category = "conditioning/controlnet"
    conditioning: CONDITIONING
    control_net: CONTROL_NET
    image: IMAGE
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ControlNetApply",))

    def run(self):
        if self.strength == 0:  # as ComfyUI: nothing to add, the conditioning is passed through unchecked
            return self.conditioning
        image = _hint_image(self.image)
        if getattr(self.control_net, "needs_vae", False):
            raise NodeInputError("control_net", "this ControlNet (SD3 / FLUX) reads the hint through a VAE: use "
                                                "Apply ControlNet (ControlNetApplyAdvanced) with the vae connected")
        return _apply(self.conditioning, self.control_net, image, self.strength, 0.0, 1.0, {}, to_uncond=True)


class ApplyControlNetAdvanced(Node):
    """Guide the image with a ControlNet and a hint image, on the positive and the negative
    conditioning, between start_percent and end_percent of the sampling (converted to sigmas
    through the model's schedule; a start after the end leaves it never active, as in ComfyUI).
    The VAE is for ControlNets that read latents (SD3/FLUX/Qwen-Image ones, which need it); SD1/SD2/SDXL
    ControlNets take the hint as pixels and ignore it."""
    category = "conditioning/controlnet"
    positive: CONDITIONING
    negative: CONDITIONING
    control_net: CONTROL_NET
    image: IMAGE
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    vae: VAE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("ControlNetApplyAdvanced",), optional=("vae",))

    def run(self):
        return _apply_pair(self)


def _apply_pair(node, image=None, mask=None):
    """image: the hint as prepared (the node's image by default); mask: see ControlApplied."""
    if node.strength == 0:  # as ComfyUI: both passed through before anything is checked (no VAE needed)
        return node.positive, node.negative
    image = _hint_image(node.image) if image is None else image
    if getattr(node.control_net, "needs_vae", False) and node.vae is None:
        raise NodeInputError("vae", "this ControlNet (SD3 / FLUX) reads the hint image as a latent: connect the "
                                    "model's VAE")
    cache = {}  # positive and negative share the control where they carried the same before
    vae = node.vae if getattr(node.control_net, "needs_vae", False) else None
    return tuple(_apply(c, node.control_net, image, node.strength, node.start_percent, node.end_percent, cache, vae,
                        mask) for c in (node.positive, node.negative))


class ApplyControlNetWithVAE(Node):
    """Guide the image with a ControlNet that reads the hint image as a latent (SD3 / SD3.5 and
    FLUX ControlNets): the hint is resized to the image being generated and encoded by the VAE,
    on the positive and the negative conditioning, between start_percent and end_percent."""
    category = "conditioning/controlnet"
    positive: CONDITIONING
    negative: CONDITIONING
    control_net: CONTROL_NET
    vae: VAE
    image: IMAGE
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("ControlNetApplySD3",))

    def run(self):
        return _apply_pair(self)


class ApplyInpaintingControlNet(Node):
    """Inpaint with an inpainting ControlNet (alimama's SD3 and FLUX ones, InstantX's Qwen-Image
    one): the hint is the image with the masked part (white in the mask) blacked out, encoded by
    the VAE, plus the part to keep (the mask inverted) as an extra channel; the mask is resized to
    the image (centre-cropped) where their sizes differ. On the positive and the negative
    conditioning, between start_percent and end_percent. Any other ControlNet is applied to the
    whole image, the mask unused (as ComfyUI does)."""
    category = "conditioning/controlnet"
    positive: CONDITIONING
    negative: CONDITIONING
    control_net: CONTROL_NET
    vae: VAE
    image: IMAGE
    mask: MASK
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("ControlNetInpaintingAliMamaApply",))

    def run(self):
        if not getattr(self.control_net, "concat_mask", False):
            return _apply_pair(self)
        image, keep = _masked_hint(_hint_image(self.image), self.mask)
        return _apply_pair(self, image, keep)


def _masked_hint(image, mask):
    """ComfyUI's rule: keep = 1 - mask; the image times keep resized to it (bilinear, centre-cropped,
    rounded: masked pixels black); keep itself, at its own size, is the extra channel."""
    from graphflow.models.controlnet import resize_hint

    if getattr(mask, "ndim", 0) not in (2, 3):
        raise NodeInputError("mask", f"expected a MASK [B, H, W], got shape {tuple(getattr(mask, 'shape', ()))}")
    keep = 1.0 - mask.reshape(-1, 1, *mask.shape[-2:]).float()
    if keep.shape[0] not in (1, image.shape[0]) and image.shape[0] != 1:
        raise NodeInputError("mask", f"a batch of {keep.shape[0]} masks does not fit a batch of {image.shape[0]} "
                                     f"images: give one mask or one per image")
    where = resize_hint(keep.movedim(1, -1), image.shape[1], image.shape[2], mode="bilinear").round()
    return image * where.movedim(1, -1), keep


class CLIPTextEncodeControlnet(Node):
    """Give a conditioning's ControlNets a prompt of their own: the text, encoded with the CLIP,
    is what ControlNets (SD1/SDXL, SD3 and FLUX ones, Control-LoRAs) attend to in place of the
    conditioning's prompt, which the model itself still gets. T2I-Adapters read no text."""
    category = "conditioning/controlnet"
    clip: CLIP
    conditioning: CONDITIONING
    text: str = Text("", multiline=True)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncodeControlnet",))

    def run(self):
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        cond, pooled = self.clip.encode(self.text)
        # pooled_output_controlnet: kept as ComfyUI stores it, though its ControlNets read only the tokens
        return [(c, {**options, "cross_attn_controlnet": cond, "pooled_output_controlnet": pooled})
                for c, options in self.conditioning]


class SetUnionControlNetType(Node):
    """Tell a union ControlNet which kind of hint it gets: SDXL ControlNet++ (xinsir's
    controlnet-union-sdxl-1.0, whose 6 types end at segment, and its promax file with tile and
    repaint) or a FLUX union (InstantX's, Shakker-Labs' Union-Pro). Gives a copy with the type
    set; the loaded one stays "auto". "auto": the SDXL union adds the embedded hint without a
    type, the FLUX union gets no mode token. As in ComfyUI, a FLUX union gets the type's position
    in this list (openpose 0 ... repaint 7) as its mode, though those files number their modes
    canny 0, tile 1, depth 2, blur 3, pose 4, gray 5, low quality 6: for a canny hint pick
    openpose, for depth pick hed/pidi/scribble/ted, and so on. Any other ControlNet or
    T2I-Adapter (Qwen-Image's InstantX Union included, which has no mode input) is passed through
    unchanged, whatever the type: ComfyUI hands it the type, which it ignores. A type past what a
    union net knows (tile on the 6-type SDXL union) is an error, as in ComfyUI."""
    category = "conditioning/controlnet"
    control_net: CONTROL_NET
    type: str = Choice(UNION_CONTROLNET_TYPES, "auto")
    outputs = {"control_net": CONTROL_NET}
    comfy = ComfyAlias(("SetUnionControlNetType",))

    def run(self):
        from graphflow.models.advanced_control import KeyframedNet

        given = self.control_net
        if isinstance(given, KeyframedNet):  # ComfyUI-Advanced-ControlNet's loader: typed, it keeps its schedule
            return KeyframedNet(self._typed(given.net), given.keyframes)
        return self._typed(given)

    def _typed(self, given):
        from graphflow.models.controlnet import UnionTyped

        net = given.net if isinstance(given, UnionTyped) else given
        known = getattr(net, "union_types", None)  # (a FLUX ControlNet without modes raises AttributeError)
        if known is None:  # not a union net: ComfyUI's type reaches a forward that drops it
            return given
        if self.type not in known:
            raise NodeInputError("type", f"this union ControlNet knows {', '.join(known)}; not {self.type!r}")
        number = UNION_CONTROLNET_TYPES.index(self.type) - 1
        return UnionTyped(net, None if number < 0 else number)
