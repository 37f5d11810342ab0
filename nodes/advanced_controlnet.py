"""Kosinkadink's ComfyUI-Advanced-ControlNet nodes, under the pack's class names, inputs and
outputs: scheduling a ControlNet's or T2I-Adapter's strength over the sampling (timestep
keyframes) and over the latents of a batch (latent keyframes), weighting its residuals per UNet
block (soft weights), a per-pixel strength mask and a multiplier for the negative prompt's rows.
How the control is scheduled and weighted: graphflow/models/advanced_control.py.

Read from the pack at these stored commits (the newest-looking ones): adv_control/nodes_main.py
and nodes_deprecated.py and nodes_weight.py 0a0c10b25b9c27488a08222b4878958378643f29,
control.py (its universal weights) 2bde95a468ce5fd3959f646258606ae221fa1e17, utils.py (keyframes, masks, weights)
95e26b9b7906415a3a51e10ded09d6b17f908f8d, nodes_keyframes.py
2ed1fff6b99124436c4fc216d2f9f05f60a489d6 and nodes_latent_keyframe.py
e44bc6c461db2996fc3bb57be313c7bb8b44adb4.

Held here: ControlNetLoaderAdvanced and DiffControlNetLoaderAdvanced (and the pack's new
ACN_ControlNetLoaderAdvanced / ACN_DiffControlNetLoaderAdvanced), ACN_AdvancedControlNetApply
(and _v2, and the one-conditioning ACN_AdvancedControlNetApplySingle and _v2), the weights
(ScaledSoftControlNetWeights, SoftControlNetWeights, CustomControlNetWeights,
SoftT2IAdapterWeights, CustomT2IAdapterWeights, ACN_DefaultUniversalWeights, their ACN_ SD1.5
versions, ACN_ExtrasMiddleMult, ScaledSoftMaskedUniversalWeights), the keyframes (TimestepKeyframe,
ACN_TimestepKeyframeInterpolation, ACN_TimestepKeyframeFromStrengthList, LatentKeyframe,
LatentKeyframeGroup, LatentKeyframeBatchedGroup, LatentKeyframeTiming).

Left out: SparseCtrl, ControlLLLite / Anima LLLite, Reference-only, CtrLoRA, SVD-ControlNet and
LooseControl (other networks, none of which graphflow loads); the ControlNet++ loaders and input
node (the pack runs xinsir's union ControlNet through code of its own, not checked here against
graphflow's union net: load the file with ControlNetLoader and set its type with
SetUnionControlNetType); the Flux / Anima custom weights, the inpainting apply node and the
deprecated image-folder loader; masks on SD3 / FLUX ControlNets (refused: their residuals are
token rows).
The pack's flip_weights inputs are kept for the saves' widget places but, as in the pack's current
version, do nothing. The pack's old input names (control_net_weights, prev_timestep_keyframe,
prev_latent_keyframe, the loaders' timestep_keyframe) are read; an API prompt linking both an old
name and the current one is read as the pack's functions take it, by the old name's link
(ComfyAlias.old_links_first)."""

from __future__ import annotations

from graphflow.api import (CONDITIONING, FLOAT, IMAGE, LATENT, MASK, MODEL, VAE, Bool, Choice, ComfyAlias, Estimate,
                           Float, Int, Node, NodeInputError, Text, folders, socket_type)
from nodes.controlnet import CONTROL_NET, _hint_image, _load

COMFY_PACK = "ComfyUI-Advanced-ControlNet"  # the custom node pack this module's ComfyUI classes come from

CONTROL_NET_WEIGHTS = socket_type("CONTROL_NET_WEIGHTS", "#6b8e23", "Weights per ControlNet / T2I-Adapter residual")
TIMESTEP_KEYFRAME = socket_type("TIMESTEP_KEYFRAME", "#b8860b", "A ControlNet's schedule over the sampling steps")
LATENT_KEYFRAME = socket_type("LATENT_KEYFRAME", "#cd853f", "ControlNet strengths per latent of a batch")
CN_WEIGHTS_EXTRAS = socket_type("CN_WEIGHTS_EXTRAS", "#708090", "Extra settings for ControlNet weights")

CATEGORY = "Adv-ControlNet 🛂🅐🅒🅝"
BIG = 2 ** 53 - 1  # the pack's BIGMIN / BIGMAX for batch indices and step counts
INTERPOLATIONS = ("linear", "ease-in", "ease-out", "ease-in-out")
WEIGHT_OUTPUTS = {"CN_WEIGHTS": CONTROL_NET_WEIGHTS, "TK_SHORTCUT": TIMESTEP_KEYFRAME}
# the pack's optional inputs, listed so to ComfyUI clients
TK_OPT = ("tk_optional",)
APPLY_OPT = ("mask_optional", "timestep_kf", "latent_kf_override", "weights_override")
WEIGHTS_OPT = ("uncond_multiplier", "cn_extras")
SERIES_OPT = ("prev_timestep_kf", "cn_weights", "latent_keyframe", "null_latent_kf_strength", "inherit_missing",
              "mask_optional", "print_keyframes")


def _same(*names: str) -> dict:
    """ComfyAlias inputs that map each name onto itself: beside an old name mapped onto the same
    input, they mark the current name, the one exports write (ComfyAlias.written_names)."""
    return {name: name for name in names}


# -- loaders --------------------------------------------------------------------------------------


def _keyframed(net, keyframes):
    from graphflow.models.advanced_control import KeyframedNet

    return net if keyframes is None else KeyframedNet(net, keyframes)


class LoadControlNetAdvanced(Node):
    """Load a ControlNet or T2I-Adapter as Load ControlNet does (the same files), as the pack's
    Load Advanced ControlNet Model does; a timestep keyframe connected here is its schedule
    (strengths, weights, latent keyframes, masks over the sampling) under any apply node,
    unless the advanced apply node is given another. Masks are refused on SD3 / FLUX ControlNets."""
    category = CATEGORY
    control_net_name: str = Choice(lambda: folders.list_models("controlnet"), model_folder="controlnet")
    tk_optional: TIMESTEP_KEYFRAME = None
    outputs = {"CONTROL_NET": CONTROL_NET}
    comfy = ComfyAlias(("ControlNetLoaderAdvanced",),
                       inputs={"timestep_keyframe": "tk_optional", **_same("tk_optional")},
                       old_links_first=("timestep_keyframe",), optional=TK_OPT)

    @classmethod
    def fingerprint(cls, control_net_name, **links):
        return folders.model_state("controlnet", control_net_name)

    def run(self):
        net = _load(self.control_net_name)
        _refuse_token_masks(net, self.tk_optional, None, None, "tk_optional")
        return _keyframed(net, self.tk_optional)


class LoadControlNetAdvancedV2(LoadControlNetAdvanced):
    """Load a ControlNet or T2I-Adapter with an optional timestep keyframe, as the pack's newer
    Load Advanced ControlNet Model does (see ControlNetLoaderAdvanced)."""
    comfy = ComfyAlias(("ACN_ControlNetLoaderAdvanced",), inputs={"cnet": "control_net_name", "_tk_opt": "tk_optional"},
                       optional=TK_OPT)


class LoadDiffControlNetAdvanced(Node):
    """Load a "difference" ControlNet (its weights added to the model's UNet weights) as Load
    Diff ControlNet does, as the pack's Load Advanced ControlNet Model (diff) does, with an
    optional timestep keyframe (see ControlNetLoaderAdvanced)."""
    category = CATEGORY
    model: MODEL
    control_net_name: str = Choice(lambda: folders.list_models("controlnet"), model_folder="controlnet")
    tk_optional: TIMESTEP_KEYFRAME = None
    outputs = {"CONTROL_NET": CONTROL_NET}
    comfy = ComfyAlias(("DiffControlNetLoaderAdvanced",),
                       inputs={"timestep_keyframe": "tk_optional", **_same("tk_optional")},
                       old_links_first=("timestep_keyframe",), optional=TK_OPT)

    @classmethod
    def fingerprint(cls, control_net_name, **links):
        return folders.model_state("controlnet", control_net_name)

    def run(self):
        net = _load(self.control_net_name, self.model)
        _check_weights(net, self.tk_optional, None, "tk_optional")
        return _keyframed(net, self.tk_optional)


class LoadDiffControlNetAdvancedV2(LoadDiffControlNetAdvanced):
    """Load a "difference" ControlNet with an optional timestep keyframe, as the pack's newer
    Load Advanced ControlNet Model (diff) does."""
    comfy = ComfyAlias(("ACN_DiffControlNetLoaderAdvanced",),
                       inputs={"cnet": "control_net_name", "_tk_opt": "tk_optional"}, optional=TK_OPT)


# -- apply ------------------------------------------------------------------------------------------


def _check_weights(net, keyframes, weights_override, input_name: str) -> None:
    """The pack's verify_all_weights: the override, else every keyframe's weights, must suit the net."""
    from graphflow.models.advanced_control import fits, net_kind

    kind = net_kind(net)
    if weights_override is not None:
        if not fits(weights_override, kind):
            raise NodeInputError("weights_override", f"{weights_override.kind} weights do not suit this {kind} "
                                                     f"(expected universal, default or {kind} weights)")
        return
    for frame in getattr(keyframes, "frames", ()):
        if frame.weights is not None and not fits(frame.weights, kind):
            raise NodeInputError(input_name, f"the keyframe at start_percent {frame.start_percent} has "
                                             f"{frame.weights.kind} weights, which do not suit this {kind} "
                                             f"(expected universal, default or {kind} weights)")


def _refuse_token_masks(net, keyframes, mask, weights_override, keyframes_input: str) -> None:
    """Masks on an SD3 / FLUX ControlNet (with or without a VAE for its hint) are refused: its
    residuals are token rows, which the pack reshapes for FLUX only."""
    from graphflow.models.advanced_control import token_rows

    if not token_rows(net):
        return
    for name, given in (("mask_optional", mask is not None),
                        (keyframes_input, any(f.mask is not None or getattr(f.weights, "mask", None) is not None
                                              for f in getattr(keyframes, "frames", ()))),
                        ("weights_override", getattr(weights_override, "mask", None) is not None)):
        if given:
            raise NodeInputError(name, "masks scale SD1 / SD2 / SDXL ControlNets and T2I-Adapters here, not "
                                       "this SD3 / FLUX ControlNet")


def _checked_mask(mask, input_name: str = "mask_optional"):
    """The MASK as given ([B, H, W] or [H, W]; None stays None), or a clear error."""
    if mask is not None and getattr(mask, "ndim", 0) not in (2, 3):
        raise NodeInputError(input_name, f"expected a MASK [B, H, W] or [H, W], got shape "
                                         f"{tuple(getattr(mask, 'shape', ()))}")
    return mask


def _strength_mask(mask):
    mask = _checked_mask(mask)
    return mask if mask is None or mask.ndim == 3 else mask.unsqueeze(0)


def _advanced_apply(node, sides, to_uncond: bool):
    """The pack's apply: each side's entries get the control chained to what they carried (entries
    that carried the same share one control); strength 0 passes everything through unchecked."""
    from graphflow.models.advanced_control import AdvancedControl, KeyframedNet

    if node.strength == 0:
        return sides
    if node.control_net is None:
        raise NodeInputError("control_net", "no ControlNet: connect a loader's CONTROL_NET")
    image = _hint_image(node.image)
    net, keyframes = node.control_net, None
    if isinstance(net, KeyframedNet):
        net, keyframes = net.net, net.keyframes
    keyframes = node.timestep_kf if node.timestep_kf is not None else keyframes
    needs_vae = getattr(net, "needs_vae", False)
    if needs_vae and node.vae_optional is None:
        raise NodeInputError("vae_optional", "this ControlNet (SD3 / FLUX) reads the hint image as a latent: "
                                             "connect the model's VAE")
    _check_weights(net, keyframes, node.weights_override, "timestep_kf")
    mask = _strength_mask(node.mask_optional)
    _refuse_token_masks(net, keyframes, mask, node.weights_override, "timestep_kf")
    cache, out = {}, []
    for conditioning in sides:
        if conditioning is None:
            out.append(None)
            continue
        entries = []
        for cond, options in conditioning:
            previous = options.get("control")
            if id(previous) not in cache:
                cache[id(previous)] = AdvancedControl(
                    net, image, node.strength, node.start_percent, node.end_percent, previous=previous,
                    vae=node.vae_optional if needs_vae else None, keyframes=keyframes, strength_mask=mask,
                    weights_override=node.weights_override, latent_override=node.latent_kf_override)
            entries.append((cond, {**options, "control": cache[id(previous)], "control_apply_to_uncond": to_uncond}))
        out.append(entries)
    return tuple(out)


_APPLY_HELP = """ with a hint image, between start_percent and end_percent of the sampling, as the
    pack's Apply Advanced ControlNet does: with default weights and no keyframes exactly as Apply
    ControlNet (ControlNetApplyAdvanced). mask_optional scales the control per pixel (and per latent
    of the batch; resized to each residual); timestep_kf schedules strength, weights, latent keyframes
    and masks over the steps (replacing the loader's); latent_kf_override and weights_override
    replace the keyframes' latent keyframes and weights. The VAE is for ControlNets that read
    latents (SD3 / FLUX ones)."""


class _ControlInputs(Node):
    """The inputs after the conditioning, in the pack's order, that the four apply nodes share."""
    category = CATEGORY
    control_net: CONTROL_NET
    image: IMAGE
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    mask_optional: MASK = None
    timestep_kf: TIMESTEP_KEYFRAME = None
    latent_kf_override: LATENT_KEYFRAME = None
    weights_override: CONTROL_NET_WEIGHTS = None


class _BothSides(Node):
    positive: CONDITIONING
    negative: CONDITIONING


class _OneSide(Node):
    conditioning: CONDITIONING


# An apply node lists _ControlInputs before its side's class: inputs are gathered from the last
# base to the class itself, so the conditioning comes first, then the shared inputs, then its own
# (UI saves are read by position).


class AdvancedControlNetApply(_ControlInputs, _BothSides):
    __doc__ = "Guide the positive and the negative conditioning with a ControlNet or T2I-Adapter" + _APPLY_HELP + \
        " model_optional is passed through (the pack's older networks needed it)."
    model_optional: MODEL = None
    vae_optional: VAE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "model_opt": MODEL}
    comfy = ComfyAlias(("ACN_AdvancedControlNetApply",), optional=APPLY_OPT + ("model_optional", "vae_optional"))

    def run(self):
        return (*_advanced_apply(self, (self.positive, self.negative), to_uncond=False), self.model_optional)


class AdvancedControlNetApplyV2(_ControlInputs, _BothSides):
    __doc__ = "Guide the positive and the negative conditioning with a ControlNet or T2I-Adapter" + _APPLY_HELP
    vae_optional: VAE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("ACN_AdvancedControlNetApply_v2",), optional=APPLY_OPT + ("vae_optional",))

    def run(self):
        return _advanced_apply(self, (self.positive, self.negative), to_uncond=False)


class AdvancedControlNetApplySingle(_ControlInputs, _OneSide):
    __doc__ = "Guide one conditioning with a ControlNet or T2I-Adapter" + _APPLY_HELP + \
        " As the pack's one-conditioning node, the negative prompt takes the control too where none of its " \
        "entries has one (as the core's deprecated Apply ControlNet); model_optional is passed through."
    model_optional: MODEL = None
    vae_optional: VAE = None
    outputs = {"CONDITIONING": CONDITIONING, "model_opt": MODEL}
    comfy = ComfyAlias(("ACN_AdvancedControlNetApplySingle",), optional=APPLY_OPT + ("model_optional", "vae_optional"))

    def run(self):
        return _advanced_apply(self, (self.conditioning,), to_uncond=True)[0], self.model_optional


class AdvancedControlNetApplySingleV2(_ControlInputs, _OneSide):
    __doc__ = "Guide one conditioning with a ControlNet or T2I-Adapter" + _APPLY_HELP + \
        " As the pack's one-conditioning node, the negative prompt takes the control too where none of its " \
        "entries has one; its model_opt output gives nothing, as the pack's does."
    vae_optional: VAE = None
    outputs = {"CONDITIONING": CONDITIONING, "model_opt": MODEL}
    comfy = ComfyAlias(("ACN_AdvancedControlNetApplySingle_v2",), optional=APPLY_OPT + ("vae_optional",))

    def run(self):
        return _advanced_apply(self, (self.conditioning,), to_uncond=True)[0], None


# -- weights ----------------------------------------------------------------------------------------


def _weights(kind, uncond_multiplier, extras=None, **lists):
    """(CN_WEIGHTS, TK_SHORTCUT: a schedule of one keyframe carrying them), as the pack's weights nodes give."""
    from graphflow.models.advanced_control import ControlWeights, TimestepKeyframe, TimestepKeyframes

    extras = extras or {}
    weights = ControlWeights(kind, uncond_multiplier=uncond_multiplier,
                             middle_mult=extras.get("middle_mult", 1.0), **lists)
    return weights, TimestepKeyframes.only(TimestepKeyframe(weights=weights))


class ScaledSoftControlNetWeights(Node):
    """Scale a ControlNet's residuals down toward the image's fine detail, as the pack's Scaled
    Soft Weights do: of the n residuals after the input blocks, the k-th (from the first block)
    is multiplied by base_multiplier ** (n - k), the middle one by 1 (or the extras' middle_mult);
    for a T2I-Adapter, its four levels by base ** 7, base ** 2, base ** 1 and 1. uncond_multiplier
    multiplies the control on the negative prompt's rows. flip_weights does nothing, as in the
    pack's current version."""
    category = CATEGORY + "/weights"
    base_multiplier: float = Float(0.825, min=0.0, max=1.0, step=0.001)
    flip_weights: bool = Bool(False)
    uncond_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    cn_extras: CN_WEIGHTS_EXTRAS = None
    outputs = WEIGHT_OUTPUTS
    comfy = ComfyAlias(("ScaledSoftControlNetWeights",), optional=WEIGHTS_OPT)

    def run(self):
        from graphflow.models.advanced_control import UNIVERSAL

        return _weights(UNIVERSAL, self.uncond_multiplier, self.cn_extras, base_multiplier=self.base_multiplier)


class ScaledSoftControlNetWeightsV2(Node):
    """Scaled Soft Weights as the pack's newer node (no flip_weights): see ScaledSoftControlNetWeights."""
    category = CATEGORY + "/weights"
    base_multiplier: float = Float(0.825, min=0.0, max=1.0, step=0.001)
    uncond_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    cn_extras: CN_WEIGHTS_EXTRAS = None
    outputs = WEIGHT_OUTPUTS
    comfy = ComfyAlias(("ACN_ScaledSoftControlNetWeights",), optional=WEIGHTS_OPT)

    def run(self):
        from graphflow.models.advanced_control import UNIVERSAL

        return _weights(UNIVERSAL, self.uncond_multiplier, self.cn_extras, base_multiplier=self.base_multiplier)


class ScaledSoftMaskedUniversalWeights(Node):
    """Scaled soft weights per pixel, as the pack's Scaled Soft Masked Weights: the mask is
    stretched to run from min_base_multiplier (its lowest value) to max_base_multiplier (its
    highest; a flat mask is max_base_multiplier everywhere), resized to each residual and raised to
    the power Scaled Soft Weights raise base_multiplier to there (n - k for residual k of n; the
    middle one unweighted). uncond_multiplier multiplies the control on the negative prompt's rows."""
    category = CATEGORY + "/weights"
    mask: MASK
    min_base_multiplier: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    max_base_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    uncond_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    cn_extras: CN_WEIGHTS_EXTRAS = None
    outputs = WEIGHT_OUTPUTS
    comfy = ComfyAlias(("ScaledSoftMaskedUniversalWeights",), optional=WEIGHTS_OPT)

    def run(self):
        import torch

        from graphflow.models.advanced_control import UNIVERSAL

        mask = _checked_mask(self.mask, "mask")
        low, high = mask.min(), mask.max()
        if low == high:
            scaled = torch.ones_like(mask) * self.max_base_multiplier
        else:  # the pack's linear_conversion
            scaled = (mask - low) / (high - low) * (self.max_base_multiplier - self.min_base_multiplier) \
                + self.min_base_multiplier
        return _weights(UNIVERSAL, self.uncond_multiplier, self.cn_extras, mask=scaled)


class DefaultControlNetWeights(Node):
    """Weights of 1 everywhere, as the pack's Default Weights: in a keyframe, they put back the
    net's own weights after other keyframes' (the extras do nothing here, as in the pack)."""
    category = CATEGORY + "/weights"
    cn_extras: CN_WEIGHTS_EXTRAS = None
    outputs = WEIGHT_OUTPUTS
    comfy = ComfyAlias(("ACN_DefaultUniversalWeights",), optional=("cn_extras",))

    def run(self):
        from graphflow.models.advanced_control import DEFAULT

        return _weights(DEFAULT, 1.0, self.cn_extras)


class ExtrasMiddleMult(Node):
    """Set the middle block's weight for scaled soft weights (the pack's Middle Weight Extras); as in
    the pack, a Control-LoRA's middle residual keeps weight 1."""
    category = CATEGORY + "/weights/extras"
    middle_mult: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    cn_extras: CN_WEIGHTS_EXTRAS = None
    outputs = {"cn_extras": CN_WEIGHTS_EXTRAS}
    comfy = ComfyAlias(("ACN_ExtrasMiddleMult",), optional=("cn_extras",))

    def run(self):
        return {**(self.cn_extras or {}), "middle_mult": self.middle_mult}


_SOFT = (0.09941396206337118, 0.12050177219802567, 0.14606275417942507, 0.17704576264172736, 0.214600924414215,
         0.26012233262329093, 0.3152997971191405, 0.3821815722656249, 0.4632503906249999, 0.561515625,
         0.6806249999999999, 0.825, 1.0)  # the pack's soft defaults: 0.825 ** (12 - k)


def _controlnet_weights(node, names):
    from graphflow.models.advanced_control import CONTROLNET

    values = [getattr(node, n) for n in names]
    return _weights(CONTROLNET, node.uncond_multiplier, node.cn_extras, output=tuple(values[:12]),
                    middle=tuple(values[12:]))


_WEIGHT_NAMES = tuple(f"weight_{k:02d}" for k in range(13))
_SD15_NAMES = tuple(f"output_{k}" for k in range(12)) + ("middle_0",)
_CN_HELP = """ for a ControlNet on SD1.5's 12 input blocks: weight k multiplies the residual
    of input block k (the 13th, the middle block's); a net with fewer blocks (SDXL's 9) takes the
    first ones. uncond_multiplier multiplies the control on the negative prompt's rows."""


class SoftControlNetWeights(Node):
    __doc__ = "Weights per residual, soft by default (0.825 ** (12 - k)), as the pack's ControlNet Soft Weights," + \
        _CN_HELP + " flip_weights does nothing, as in the pack's current version."
    category = CATEGORY + "/weights/ControlNet"
    weight_00: float = Float(_SOFT[0], min=0.0, max=10.0, step=0.001)
    weight_01: float = Float(_SOFT[1], min=0.0, max=10.0, step=0.001)
    weight_02: float = Float(_SOFT[2], min=0.0, max=10.0, step=0.001)
    weight_03: float = Float(_SOFT[3], min=0.0, max=10.0, step=0.001)
    weight_04: float = Float(_SOFT[4], min=0.0, max=10.0, step=0.001)
    weight_05: float = Float(_SOFT[5], min=0.0, max=10.0, step=0.001)
    weight_06: float = Float(_SOFT[6], min=0.0, max=10.0, step=0.001)
    weight_07: float = Float(_SOFT[7], min=0.0, max=10.0, step=0.001)
    weight_08: float = Float(_SOFT[8], min=0.0, max=10.0, step=0.001)
    weight_09: float = Float(_SOFT[9], min=0.0, max=10.0, step=0.001)
    weight_10: float = Float(_SOFT[10], min=0.0, max=10.0, step=0.001)
    weight_11: float = Float(_SOFT[11], min=0.0, max=10.0, step=0.001)
    weight_12: float = Float(_SOFT[12], min=0.0, max=10.0, step=0.001)
    flip_weights: bool = Bool(False)
    uncond_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    cn_extras: CN_WEIGHTS_EXTRAS = None
    outputs = WEIGHT_OUTPUTS
    comfy = ComfyAlias(("SoftControlNetWeights",), optional=WEIGHTS_OPT)

    def run(self):
        return _controlnet_weights(self, _WEIGHT_NAMES)


# each Custom weights node is its Soft one (same inputs in the same places) with weights defaulting to 1
class CustomControlNetWeights(SoftControlNetWeights):
    __doc__ = "Weights per residual, as the pack's ControlNet Custom Weights," + _CN_HELP + \
        " flip_weights does nothing, as in the pack's current version."
    weight_00: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_01: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_02: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_03: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_04: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_05: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_06: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_07: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_08: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_09: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_10: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_11: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_12: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    comfy = ComfyAlias(("CustomControlNetWeights",), optional=WEIGHTS_OPT)


class SoftControlNetWeightsSD15(Node):
    __doc__ = "Weights per residual, soft by default, as the pack's ControlNet Soft Weights [SD1.5]," + _CN_HELP
    category = CATEGORY + "/weights/ControlNet"
    output_0: float = Float(_SOFT[0], min=0.0, max=10.0, step=0.001)
    output_1: float = Float(_SOFT[1], min=0.0, max=10.0, step=0.001)
    output_2: float = Float(_SOFT[2], min=0.0, max=10.0, step=0.001)
    output_3: float = Float(_SOFT[3], min=0.0, max=10.0, step=0.001)
    output_4: float = Float(_SOFT[4], min=0.0, max=10.0, step=0.001)
    output_5: float = Float(_SOFT[5], min=0.0, max=10.0, step=0.001)
    output_6: float = Float(_SOFT[6], min=0.0, max=10.0, step=0.001)
    output_7: float = Float(_SOFT[7], min=0.0, max=10.0, step=0.001)
    output_8: float = Float(_SOFT[8], min=0.0, max=10.0, step=0.001)
    output_9: float = Float(_SOFT[9], min=0.0, max=10.0, step=0.001)
    output_10: float = Float(_SOFT[10], min=0.0, max=10.0, step=0.001)
    output_11: float = Float(_SOFT[11], min=0.0, max=10.0, step=0.001)
    middle_0: float = Float(_SOFT[12], min=0.0, max=10.0, step=0.001)
    uncond_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    cn_extras: CN_WEIGHTS_EXTRAS = None
    outputs = WEIGHT_OUTPUTS
    comfy = ComfyAlias(("ACN_SoftControlNetWeightsSD15",), optional=WEIGHTS_OPT)

    def run(self):
        return _controlnet_weights(self, _SD15_NAMES)


class CustomControlNetWeightsSD15(SoftControlNetWeightsSD15):
    __doc__ = "Weights per residual, as the pack's ControlNet Custom Weights [SD1.5]," + _CN_HELP
    output_0: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_1: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_2: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_3: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_4: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_5: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_6: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_7: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_8: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_9: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_10: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    output_11: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    middle_0: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    comfy = ComfyAlias(("ACN_CustomControlNetWeightsSD15",), optional=WEIGHTS_OPT)


def _t2i_weights(node, names):
    from graphflow.models.advanced_control import T2IADAPTER, t2i_places

    return _weights(T2IADAPTER, node.uncond_multiplier, node.cn_extras,
                    input=t2i_places(tuple(getattr(node, n) for n in names)))


_T2I_HELP = """ for a T2I-Adapter: weight k multiplies its feature for UNet level k (the pack
    gives each of the four weights to three of SD1.5's 12 input blocks, as ComfyUI places the
    features). uncond_multiplier multiplies the control on the negative prompt's rows."""


class SoftT2IAdapterWeights(Node):
    __doc__ = "Weights per T2I-Adapter level, soft by default, as the pack's T2IAdapter Soft Weights," + _T2I_HELP + \
        " flip_weights does nothing, as in the pack's current version."
    category = CATEGORY + "/weights/T2IAdapter"
    weight_00: float = Float(0.25, min=0.0, max=10.0, step=0.001)
    weight_01: float = Float(0.62, min=0.0, max=10.0, step=0.001)
    weight_02: float = Float(0.825, min=0.0, max=10.0, step=0.001)
    weight_03: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    flip_weights: bool = Bool(False)
    uncond_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    cn_extras: CN_WEIGHTS_EXTRAS = None
    outputs = WEIGHT_OUTPUTS
    comfy = ComfyAlias(("SoftT2IAdapterWeights",), optional=WEIGHTS_OPT)

    def run(self):
        return _t2i_weights(self, _WEIGHT_NAMES[:4])


class CustomT2IAdapterWeights(SoftT2IAdapterWeights):
    __doc__ = "Weights per T2I-Adapter level, as the pack's T2IAdapter Custom Weights," + _T2I_HELP + \
        " flip_weights does nothing, as in the pack's current version."
    weight_00: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_01: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_02: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    weight_03: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    comfy = ComfyAlias(("CustomT2IAdapterWeights",), optional=WEIGHTS_OPT)


class SoftT2IAdapterWeightsV2(Node):
    __doc__ = "Weights per T2I-Adapter level, soft by default, as the pack's newer T2IAdapter Soft Weights," + \
        _T2I_HELP
    category = CATEGORY + "/weights/T2IAdapter"
    input_0: float = Float(0.25, min=0.0, max=10.0, step=0.001)
    input_1: float = Float(0.62, min=0.0, max=10.0, step=0.001)
    input_2: float = Float(0.825, min=0.0, max=10.0, step=0.001)
    input_3: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    uncond_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    cn_extras: CN_WEIGHTS_EXTRAS = None
    outputs = WEIGHT_OUTPUTS
    comfy = ComfyAlias(("ACN_SoftT2IAdapterWeights",), optional=WEIGHTS_OPT)

    def run(self):
        return _t2i_weights(self, ("input_0", "input_1", "input_2", "input_3"))


class CustomT2IAdapterWeightsV2(SoftT2IAdapterWeightsV2):
    __doc__ = "Weights per T2I-Adapter level, as the pack's newer T2IAdapter Custom Weights," + _T2I_HELP
    input_0: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    input_1: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    input_2: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    input_3: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    comfy = ComfyAlias(("ACN_CustomT2IAdapterWeights",), optional=WEIGHTS_OPT)


# -- keyframes --------------------------------------------------------------------------------------


class TimestepKeyframe(Node):
    """Add a keyframe to a ControlNet's schedule (the pack's Timestep Keyframe): from start_percent
    of the sampling on, the control's strength is multiplied by `strength` (0: the net is not run),
    cn_weights replace its weights, latent_keyframe its per-latent strengths (latents without one
    get null_latent_kf_strength) and mask_optional multiplies it per pixel. Without weights,
    latent keyframes or mask, the keyframe keeps the previous keyframe's (inherit_missing) or
    none. A keyframe is used for at least guarantee_steps steps before a later one takes over
    (0: it may be skipped when a later one has started too). Keyframes at the same start_percent
    are taken in the order added."""
    category = CATEGORY + "/keyframes"
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    prev_timestep_kf: TIMESTEP_KEYFRAME = None
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    cn_weights: CONTROL_NET_WEIGHTS = None
    latent_keyframe: LATENT_KEYFRAME = None
    null_latent_kf_strength: float = Float(0.0, min=0.0, max=10.0, step=0.001)
    inherit_missing: bool = Bool(True)
    guarantee_steps: int = Int(1, min=0, max=BIG)
    mask_optional: MASK = None
    outputs = {"TIMESTEP_KF": TIMESTEP_KEYFRAME}
    comfy = ComfyAlias(("TimestepKeyframe",), inputs={
        "prev_timestep_keyframe": "prev_timestep_kf", "control_net_weights": "cn_weights",
        **_same("prev_timestep_kf", "cn_weights")},
        old_links_first=("prev_timestep_keyframe", "control_net_weights"), optional=(
        "prev_timestep_kf", "strength", "cn_weights", "latent_keyframe", "null_latent_kf_strength", "inherit_missing",
        "guarantee_steps", "mask_optional"))

    def run(self):
        from graphflow.models.advanced_control import TimestepKeyframe as Keyframe
        from graphflow.models.advanced_control import TimestepKeyframes

        keyframe = Keyframe(self.start_percent, self.strength, self.cn_weights, self.latent_keyframe,
                            self.null_latent_kf_strength, self.inherit_missing, self.guarantee_steps,
                            _checked_mask(self.mask_optional))
        return (self.prev_timestep_kf or TimestepKeyframes()).added(keyframe)


def _curve(start: float, end: float, count: int, interpolation: str) -> list[float]:
    """The pack's StrengthInterpolation.get_weights: count values from start to end along the
    curve, over t = torch.linspace(0, 1, count) in float32 (numpy's float32 for the eased ones)."""
    import numpy as np
    import torch

    if interpolation == "linear":
        return torch.linspace(start, end, count).tolist()
    t = torch.linspace(0, 1, count).numpy()
    shape = {"ease-in": np.power(t, 2), "ease-out": 1 - np.power(1 - t, 2),
             "ease-in-out": (1 - np.cos(t * np.float32(np.pi))) / 2}[interpolation]
    return ((end - start) * shape + start).astype(np.float32).tolist()


def _keyframe_series(node, percents, strengths):
    """Keyframes at these percents with these strengths, the first guaranteed one step, added to
    prev_timestep_kf (the pack's interpolation nodes)."""
    from graphflow.models.advanced_control import TimestepKeyframe as Keyframe
    from graphflow.models.advanced_control import TimestepKeyframes

    mask = _checked_mask(node.mask_optional)
    return (node.prev_timestep_kf or TimestepKeyframes()).added(*(
        Keyframe(float(percent), float(strength), node.cn_weights, node.latent_keyframe, node.null_latent_kf_strength,
                 node.inherit_missing, 1 if k == 0 else 0, mask)
        for k, (percent, strength) in enumerate(zip(percents, strengths))))


class TimestepKeyframeInterpolation(Node):
    """`intervals` keyframes evenly spaced from start_percent to end_percent, their strengths going
    from strength_start to strength_end (linear, ease-in t², ease-out 1 - (1 - t)², ease-in-out
    (1 - cos πt) / 2), each with the same weights, latent keyframes and mask, as the pack's
    Timestep Keyframe Interpolation: the first is used for at least one step, the others may be
    skipped by a later one that has started too. print_keyframes is accepted and ignored (the pack
    logs the keyframes)."""
    category = CATEGORY + "/keyframes"
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    strength_start: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    strength_end: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    interpolation: str = Choice(INTERPOLATIONS, "linear")
    intervals: int = Int(50, min=2, max=100)
    prev_timestep_kf: TIMESTEP_KEYFRAME = None
    cn_weights: CONTROL_NET_WEIGHTS = None
    latent_keyframe: LATENT_KEYFRAME = None
    null_latent_kf_strength: float = Float(0.0, min=0.0, max=10.0, step=0.001)
    inherit_missing: bool = Bool(True)
    mask_optional: MASK = None
    print_keyframes: bool = Bool(False)
    outputs = {"TIMESTEP_KF": TIMESTEP_KEYFRAME}
    comfy = ComfyAlias(("ACN_TimestepKeyframeInterpolation",), optional=SERIES_OPT)

    def run(self):
        percents = _curve(self.start_percent, self.end_percent, self.intervals, "linear")
        strengths = _curve(self.strength_start, self.strength_end, self.intervals, self.interpolation)
        return _keyframe_series(self, percents, strengths)


class TimestepKeyframeFromStrengthList(Node):
    """One keyframe per strength of a list, evenly spaced from start_percent to end_percent, each
    with the same weights, latent keyframes and mask, as the pack's Timestep Keyframe From List
    (a single number makes one keyframe): the first is used for at least one step. At most 10000
    strengths (a longer list is refused). print_keyframes is accepted and ignored (the pack logs
    the keyframes)."""
    category = CATEGORY + "/keyframes"
    float_strengths: FLOAT
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    prev_timestep_kf: TIMESTEP_KEYFRAME = None
    cn_weights: CONTROL_NET_WEIGHTS = None
    latent_keyframe: LATENT_KEYFRAME = None
    null_latent_kf_strength: float = Float(0.0, min=0.0, max=10.0, step=0.001)
    inherit_missing: bool = Bool(True)
    mask_optional: MASK = None
    print_keyframes: bool = Bool(False)
    outputs = {"TIMESTEP_KF": TIMESTEP_KEYFRAME}
    comfy = ComfyAlias(("ACN_TimestepKeyframeFromStrengthList",), force_input=("float_strengths",), optional=SERIES_OPT)

    def run(self):
        strengths = _float_list(self.float_strengths, "float_strengths")
        strengths = [float(self.float_strengths)] if strengths is None else strengths
        if len(strengths) > MAX_STRENGTHS:
            raise NodeInputError("float_strengths", f"{len(strengths)} strengths; at most {MAX_STRENGTHS} keyframes")
        percents = _curve(self.start_percent, self.end_percent, len(strengths), "linear") if strengths else []
        return _keyframe_series(self, percents, strengths)


MAX_STRENGTHS = 10_000  # keyframes a strength list may make (more steps than a sampling takes)


def _float_list(values, name: str) -> list[float] | None:
    """A list of numbers (None for a single number)."""
    if isinstance(values, (int, float)):
        return None
    if isinstance(values, (list, tuple)) or hasattr(values, "tolist"):
        values = values.tolist() if hasattr(values, "tolist") else values
        try:
            return [float(v) for v in values]
        except (TypeError, ValueError):
            raise NodeInputError(name, "expected a list of numbers") from None
    raise NodeInputError(name, f"expected a number or a list of numbers, got {type(values).__name__}")


def _latent_frames(previous, frames):
    """The new frames, then the previous group's on top (the pack lets the earlier node's win)."""
    from graphflow.models.advanced_control import LatentKeyframes

    group = LatentKeyframes().with_frames(frames)
    return group.with_frames(previous.frames) if previous is not None else group


_LATENT_OLD = {"prev_latent_keyframe": "prev_latent_kf", **_same("prev_latent_kf")}
_LATENT_OLD_FIRST = ("prev_latent_keyframe",)  # the pack's functions take its link over prev_latent_kf's


class LatentKeyframe(Node):
    """Give the latent at batch_index (negative: counted from the batch's end) this ControlNet
    strength (the pack's Latent Keyframe); added to prev_latent_kf, replacing its strength for
    the same index. Once latent keyframes apply, latents without one get the timestep keyframe's
    null_latent_kf_strength (0 by default)."""
    category = CATEGORY + "/keyframes"
    batch_index: int = Int(0, min=-BIG, max=BIG)
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    prev_latent_kf: LATENT_KEYFRAME = None
    outputs = {"LATENT_KF": LATENT_KEYFRAME}
    comfy = ComfyAlias(("LatentKeyframe",), inputs=_LATENT_OLD, old_links_first=_LATENT_OLD_FIRST,
                       optional=("prev_latent_kf",))

    def run(self):
        from graphflow.models.advanced_control import LatentKeyframes

        return (self.prev_latent_kf or LatentKeyframes()).with_frames([(self.batch_index, self.strength)])


class LatentKeyframeGroup(Node):
    """Latent keyframes from text, as the pack's Latent Keyframe Group: comma-separated indices
    ("3"), ranges ("2:6", end excluded) each with an optional "=strength" (1 without). With a
    latent connected, its batch size bounds the indices, a negative one counts from the end and
    ranges are Python slices of the batch; without, negative indices are refused and ranges are
    taken as written. The text may name at most 100000 keyframes in all (a longer one is refused).
    prev_latent_kf's keyframes win over these for the same index. (The pack's node names its latent
    argument otherwise and so fails when one is connected; here it counts.) print_keyframes is
    accepted and ignored (the pack logs the keyframes)."""
    category = CATEGORY + "/keyframes"
    index_strengths: str = Text("", multiline=True)
    prev_latent_kf: LATENT_KEYFRAME = None
    latent_optional: LATENT = None
    print_keyframes: bool = Bool(False)
    outputs = {"LATENT_KF": LATENT_KEYFRAME}
    comfy = ComfyAlias(("LatentKeyframeGroup",), inputs=_LATENT_OLD, old_links_first=_LATENT_OLD_FIRST,
                       optional=("prev_latent_kf", "latent_optional", "print_keyframes"))

    @classmethod
    def estimate(cls, widgets, inputs):
        text, latent = widgets.get("index_strengths"), inputs.get("latent_optional")
        count = -1 if latent is None else latent.batch
        return Estimate(None, memory=_spelled_count(text, count) * KEYFRAME_BYTES if isinstance(text, str) else 0)

    def run(self):
        count = -1 if self.latent_optional is None else int(self.latent_optional["samples"].shape[0])
        return _latent_frames(self.prev_latent_kf, _parse_index_strengths(self.index_strengths, count))


MAX_RANGE = 100_000  # keyframes one node may spell out (each is kept: ~100 bytes apiece)
KEYFRAME_BYTES = 100


def _spelled_count(text: str, count: int) -> int:
    """How many keyframes the text names, counted without making them (an unreadable group counts
    none here: run() refuses it)."""
    total = 0
    for group in text.split(",") if text else ():
        group = group.split("=", 1)[0]
        if ":" not in group:
            total += 1
            continue
        try:
            start, end = (int(part.strip()) for part in group.split(":", 1))
        except ValueError:
            continue
        total += len(range(count)[start:end] if count > 0 else range(start, end))
    return total


def _parse_index_strengths(text: str, count: int) -> list[tuple[int, float]]:
    if not text:
        return []
    named = _spelled_count(text, count)
    if named > MAX_RANGE:  # refused before any is made
        raise NodeInputError("index_strengths", f"the text names {named} keyframes; at most {MAX_RANGE} in all")
    frames = []
    for group in (g.strip() for g in text.split(",")):
        strength = 1.0
        if "=" in group:
            group, raw = (s.strip() for s in group.split("=", 1))
            try:
                strength = float(raw)
            except ValueError:
                raise NodeInputError("index_strengths", f"strength {raw!r} must be a number") from None
            if strength < 0:
                raise NodeInputError("index_strengths", f"strength {strength} cannot be negative")
        if ":" in group:
            start, end = (_index(part.strip(), count, in_range=True) for part in group.split(":", 1))
            indices = range(count)[start:end] if count > 0 else range(start, end)
            frames += [(i, strength) for i in indices]
        else:
            frames.append((_index(group, count), strength))
    return frames


def _index(raw: str, count: int, in_range: bool = False) -> int:
    try:
        index = int(raw)
    except ValueError:
        raise NodeInputError("index_strengths", f"index {raw!r} must be a whole number") from None
    if in_range:
        return index
    if count > 0 and index > count - 1:
        raise NodeInputError("index_strengths", f"index {index} is out of range for the {count} latents")
    if index < 0:
        if count <= 0:
            raise NodeInputError("index_strengths", f"negative index {index} needs a latent connected (to count "
                                                    f"from its end)")
        if count + index < 0:
            raise NodeInputError("index_strengths", f"index {index} is out of range for the {count} latents")
        index += count
    return index


class LatentKeyframeBatchedGroup(Node):
    """Latent keyframes from a list of strengths, one per latent from index 0 (the pack's Latent
    Keyframe Batched Group); a single number makes none. prev_latent_kf's keyframes win for the
    same index. print_keyframes is accepted and ignored (the pack logs the keyframes)."""
    category = CATEGORY + "/keyframes"
    float_strengths: FLOAT
    prev_latent_kf: LATENT_KEYFRAME = None
    print_keyframes: bool = Bool(False)
    outputs = {"LATENT_KF": LATENT_KEYFRAME}
    comfy = ComfyAlias(("LatentKeyframeBatchedGroup",), force_input=("float_strengths",), inputs=_LATENT_OLD,
                       old_links_first=_LATENT_OLD_FIRST,
                       optional=("prev_latent_kf", "print_keyframes"))

    def run(self):
        strengths = _float_list(self.float_strengths, "float_strengths") or []
        return _latent_frames(self.prev_latent_kf, list(enumerate(strengths)))


class LatentKeyframeTiming(Node):
    """Latent keyframes from batch_index_from up to (not including) batch_index_to_excl, their
    strengths going from strength_from to strength_to (the pack's Latent Keyframe Interpolation):
    linear, ease-in (t²), ease-out (1 - (1 - t)²) or ease-in-out ((1 - cos πt) / 2) over t evenly
    spaced in 0..1 (at most 100000 keyframes). prev_latent_kf's keyframes win for the same index.
    print_keyframes is accepted and ignored (the pack logs the keyframes)."""
    category = CATEGORY + "/keyframes"
    batch_index_from: int = Int(0, min=-BIG, max=BIG)
    batch_index_to_excl: int = Int(0, min=-BIG, max=BIG)
    strength_from: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    strength_to: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    interpolation: str = Choice(INTERPOLATIONS, "linear")
    prev_latent_kf: LATENT_KEYFRAME = None
    print_keyframes: bool = Bool(False)
    outputs = {"LATENT_KF": LATENT_KEYFRAME}
    comfy = ComfyAlias(("LatentKeyframeTiming",), inputs=_LATENT_OLD, old_links_first=_LATENT_OLD_FIRST,
                       optional=("prev_latent_kf", "print_keyframes"))

    @classmethod
    def estimate(cls, widgets, inputs):
        start, end = widgets.get("batch_index_from"), widgets.get("batch_index_to_excl")
        count = end - start if isinstance(start, int) and isinstance(end, int) else 0
        return Estimate(None, memory=max(0, count) * KEYFRAME_BYTES)

    def run(self):
        import numpy as np

        start, end = self.batch_index_from, self.batch_index_to_excl
        if start > end:
            raise NodeInputError("batch_index_to_excl", f"expected at least batch_index_from ({start}), got {end}")
        if start < 0 <= end:
            raise NodeInputError("batch_index_to_excl", "batch_index_from and batch_index_to_excl must be both "
                                                        "negative or both 0 or more")
        if end - start > MAX_RANGE:
            raise NodeInputError("batch_index_to_excl", f"{end - start} keyframes; at most {MAX_RANGE}")
        steps, a, b = end - start, self.strength_from, self.strength_to
        t = np.linspace(0, 1, steps)
        curve = {"linear": None, "ease-in": t ** 2, "ease-out": 1 - (1 - t) ** 2,
                 "ease-in-out": (1 - np.cos(t * np.pi)) / 2}[self.interpolation]
        strengths = np.linspace(a, b, steps) if curve is None else (b - a) * curve + a
        return _latent_frames(self.prev_latent_kf, [(start + i, float(strengths[i])) for i in range(steps)])
