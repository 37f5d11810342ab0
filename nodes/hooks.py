"""ComfyUI's hooks (advanced/hooks): LoRAs and models-as-LoRA attached to a conditioning, so the
sampler patches them into the model only while it evaluates that conditioning, at a strength
scheduled by keyframes; the text encoder's hooks (SetClipHooks); conditioning properties (mask,
strength, timesteps range, hooks) set and combined one or a positive/negative pair at a time, and
"default" conditioning used where nothing else covers (graphflow.sampling.hooks and guidance)."""

from __future__ import annotations

from graphflow.api import (CLIP, CONDITIONING, MASK, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError,
                           folders, socket_type, warn)
from nodes.conditioning import _with_options
from nodes.loaders import _find

HOOKS = socket_type("HOOKS", "#c5a3ff", "LoRAs and models-as-LoRA to patch in while a conditioning is evaluated")
HOOK_KEYFRAMES = socket_type("HOOK_KEYFRAMES", "#ffb3c1", "Strength multipliers for hooks over the sampling steps")
TIMESTEPS_RANGE = socket_type("TIMESTEPS_RANGE", "#9fd8cb", "A part of the sampling: (start_percent, end_percent)")
FLOATS = socket_type("FLOATS", "#26a69a", "A list of real numbers")
INTERPOLATIONS = ("linear", "ease_in", "ease_out", "ease_in_out")
STRENGTH = dict(min=-20.0, max=20.0, step=0.01)


# -- creating hooks -------------------------------------------------------------------------------

def _lora_hook(node, strength_model: float, strength_clip: float):
    from graphflow.models.checkpoint import CheckpointError
    from graphflow.models.lora import read_lora
    from graphflow.sampling.hooks import Hooks, WeightHook

    if strength_model == 0 and strength_clip == 0:
        return node.prev_hooks
    path = _find("loras", node.lora_name, "lora_name")
    skipped = []  # keys that are no LoRA parts: left unread with a warning, as ComfyUI does
    try:
        modules = read_lora(path, skipped)
    except CheckpointError as e:
        raise NodeInputError("lora_name", str(e)) from None
    if skipped:
        warn(f"{path.name}: {len(skipped)} keys were not loaded (no LoRA parts graphflow reads, as ComfyUI's "
             f"'lora key not loaded'): {', '.join(sorted(skipped))}")
    hook = WeightHook(path.name, strength_model, strength_clip, lora=modules)
    return (node.prev_hooks or Hooks()).combine(Hooks((hook,)))


def _model_hook(node, strength_model: float, strength_clip: float):
    from graphflow.models.checkpoint import CheckpointError, load_checkpoint
    from graphflow.sampling.hooks import Hooks, WeightHook

    path = _find("checkpoints", node.ckpt_name, "ckpt_name")
    try:
        loaded = load_checkpoint(path)
    except CheckpointError as e:
        raise NodeInputError("ckpt_name", str(e)) from None
    hook = WeightHook(path.name, strength_model, strength_clip, model=loaded.model,
                      clip=loaded.clip if strength_clip != 0 else None)
    return (node.prev_hooks or Hooks()).combine(Hooks((hook,)))


class CreateHookLora(Node):
    """A LoRA as a hook: attached to a conditioning (Cond Set Props) or a text encoder (Set CLIP
    Hooks), it changes the model only while that conditioning is evaluated. Adds to prev_hooks."""
    category = "advanced/hooks/create"
    lora_name: str = Choice(lambda: folders.list_models("loras"), model_folder="loras")
    strength_model: float = Float(1.0, **STRENGTH)
    strength_clip: float = Float(1.0, **STRENGTH)
    prev_hooks: HOOKS = None
    outputs = {"HOOKS": HOOKS}
    comfy = ComfyAlias(("CreateHookLora",), optional=('prev_hooks',))

    @classmethod
    def fingerprint(cls, lora_name, **widgets):
        return folders.model_state("loras", lora_name)

    def run(self):
        return _lora_hook(self, self.strength_model, self.strength_clip)


class CreateHookLoraModelOnly(Node):
    """A LoRA's diffusion-model part as a hook (see Create Hook LoRA)."""
    category = "advanced/hooks/create"
    lora_name: str = Choice(lambda: folders.list_models("loras"), model_folder="loras")
    strength_model: float = Float(1.0, **STRENGTH)
    prev_hooks: HOOKS = None
    outputs = {"HOOKS": HOOKS}
    comfy = ComfyAlias(("CreateHookLoraModelOnly",), optional=('prev_hooks',))

    @classmethod
    def fingerprint(cls, lora_name, **widgets):
        return folders.model_state("loras", lora_name)

    def run(self):
        return _lora_hook(self, self.strength_model, 0.0)


class CreateHookModelAsLora(Node):
    """Another checkpoint of the same kind as a hook: weights become W + strength (W2 - W), so at
    strength 1 the hooked conditioning is evaluated by that checkpoint's model (and its text encoder
    for prompts encoded through Set CLIP Hooks)."""
    category = "advanced/hooks/create"
    ckpt_name: str = Choice(lambda: folders.list_models("checkpoints"), model_folder="checkpoints")
    strength_model: float = Float(1.0, **STRENGTH)
    strength_clip: float = Float(1.0, **STRENGTH)
    prev_hooks: HOOKS = None
    outputs = {"HOOKS": HOOKS}
    comfy = ComfyAlias(("CreateHookModelAsLora",), optional=('prev_hooks',))

    @classmethod
    def fingerprint(cls, ckpt_name, **widgets):
        return folders.model_state("checkpoints", ckpt_name)

    def run(self):
        return _model_hook(self, self.strength_model, self.strength_clip)


class CreateHookModelAsLoraModelOnly(Node):
    """Another checkpoint's diffusion model as a hook (see Create Hook Model as LoRA)."""
    category = "advanced/hooks/create"
    ckpt_name: str = Choice(lambda: folders.list_models("checkpoints"), model_folder="checkpoints")
    strength_model: float = Float(1.0, **STRENGTH)
    prev_hooks: HOOKS = None
    outputs = {"HOOKS": HOOKS}
    comfy = ComfyAlias(("CreateHookModelAsLoraModelOnly",), optional=('prev_hooks',))

    @classmethod
    def fingerprint(cls, ckpt_name, **widgets):
        return folders.model_state("checkpoints", ckpt_name)

    def run(self):
        return _model_hook(self, self.strength_model, 0.0)


def _combine(*groups):
    from graphflow.sampling.hooks import combine_hooks

    return combine_hooks(groups)


class CombineHooks2(Node):
    """All the hooks of both inputs (each hook once)."""
    category = "advanced/hooks/combine"
    hooks_A: HOOKS = None
    hooks_B: HOOKS = None
    outputs = {"HOOKS": HOOKS}
    comfy = ComfyAlias(("CombineHooks2",), optional=('hooks_A', 'hooks_B'))

    def run(self):
        return _combine(self.hooks_A, self.hooks_B)


class CombineHooks4(Node):
    """All the hooks of the four inputs (each hook once)."""
    category = "advanced/hooks/combine"
    hooks_A: HOOKS = None
    hooks_B: HOOKS = None
    hooks_C: HOOKS = None
    hooks_D: HOOKS = None
    outputs = {"HOOKS": HOOKS}
    comfy = ComfyAlias(("CombineHooks4",), optional=('hooks_A', 'hooks_B', 'hooks_C', 'hooks_D'))

    def run(self):
        return _combine(self.hooks_A, self.hooks_B, self.hooks_C, self.hooks_D)


class CombineHooks8(Node):
    """All the hooks of the eight inputs (each hook once)."""
    category = "advanced/hooks/combine"
    hooks_A: HOOKS = None
    hooks_B: HOOKS = None
    hooks_C: HOOKS = None
    hooks_D: HOOKS = None
    hooks_E: HOOKS = None
    hooks_F: HOOKS = None
    hooks_G: HOOKS = None
    hooks_H: HOOKS = None
    outputs = {"HOOKS": HOOKS}
    comfy = ComfyAlias(("CombineHooks8",), optional=('hooks_A', 'hooks_B', 'hooks_C', 'hooks_D', 'hooks_E', 'hooks_F', 'hooks_G', 'hooks_H'))

    def run(self):
        return _combine(self.hooks_A, self.hooks_B, self.hooks_C, self.hooks_D,
                        self.hooks_E, self.hooks_F, self.hooks_G, self.hooks_H)


# -- scheduling -----------------------------------------------------------------------------------

def _keyframes(prev, pairs, first_guarantees: int | None = None):
    """prev_hook_kf plus a keyframe per (start_percent, strength); with first_guarantees set, the
    first new keyframe guarantees that many steps and the others none (ComfyUI's series)."""
    from graphflow.sampling.hooks import Keyframe, Keyframes

    out = prev or Keyframes()
    for k, (percent, strength) in enumerate(pairs):
        steps = 1 if first_guarantees is None else (first_guarantees if k == 0 else 0)
        out = out.add(Keyframe(float(strength), float(percent), steps))
    return out


def _series(start: float, end: float, count: int, method: str = "linear") -> list[float]:
    """`count` values from start to end along the interpolation curve, in float32 throughout as
    ComfyUI's get_weights computes them (a float32 linspace, numpy float32 arithmetic on it)."""
    import numpy as np
    import torch

    if method == "linear":
        return torch.linspace(start, end, count).tolist()
    shape = {"ease_in": lambda t: t ** 2, "ease_out": lambda t: 1 - (1 - t) ** 2,
             "ease_in_out": lambda t: (1 - np.cos(t * np.pi)) / 2}[method]
    return ((end - start) * shape(torch.linspace(0, 1, count).numpy()) + start).tolist()


class CreateHookKeyframe(Node):
    """A keyframe: from start_percent of the sampling on, hooks given these keyframes (Set Hook
    Keyframes) act at strength_mult times their strength; it holds for at least one step."""
    category = "advanced/hooks/scheduling"
    strength_mult: float = Float(1.0, **STRENGTH)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    prev_hook_kf: HOOK_KEYFRAMES = None
    outputs = {"HOOK_KF": HOOK_KEYFRAMES}
    comfy = ComfyAlias(("CreateHookKeyframe",), optional=('prev_hook_kf',))

    def run(self):
        return _keyframes(self.prev_hook_kf, [(self.start_percent, self.strength_mult)])


class CreateHookKeyframesInterpolated(Node):
    """keyframes_count keyframes spread evenly from start_percent to end_percent, their strengths
    going from strength_start to strength_end along the interpolation curve."""
    category = "advanced/hooks/scheduling"
    strength_start: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    strength_end: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    interpolation: str = Choice(list(INTERPOLATIONS), "linear")
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    keyframes_count: int = Int(5, min=2, max=100)
    print_keyframes: bool = Bool(False)
    prev_hook_kf: HOOK_KEYFRAMES = None
    outputs = {"HOOK_KF": HOOK_KEYFRAMES}
    comfy = ComfyAlias(("CreateHookKeyframesInterpolated",), optional=('prev_hook_kf',))

    def run(self):
        percents = _series(self.start_percent, self.end_percent, self.keyframes_count)
        strengths = _series(self.strength_start, self.strength_end, self.keyframes_count, self.interpolation)
        if self.print_keyframes:
            for p, s in zip(percents, strengths):
                print(f"Hook Keyframe - start_percent:{p} = {s}")
        return _keyframes(self.prev_hook_kf, list(zip(percents, strengths)), first_guarantees=1)


class CreateHookKeyframesFromFloats(Node):
    """One keyframe per strength in floats_strength, spread evenly from start_percent to end_percent
    (an empty list adds none: prev_hook_kf, or no keyframes, which Set Hook Keyframes then sets)."""
    category = "advanced/hooks/scheduling"
    floats_strength: FLOATS
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    print_keyframes: bool = Bool(False)
    prev_hook_kf: HOOK_KEYFRAMES = None
    outputs = {"HOOK_KF": HOOK_KEYFRAMES}
    comfy = ComfyAlias(("CreateHookKeyframesFromFloats",), optional=('prev_hook_kf',))

    def run(self):
        values = self.floats_strength
        if isinstance(values, (int, float)) and not isinstance(values, bool):
            values = [float(values)]
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            raise NodeInputError("floats_strength", f"expected a number or a list of numbers, got "
                                                    f"{type(self.floats_strength).__name__}") from None
        percents = _series(self.start_percent, self.end_percent, len(values))
        if self.print_keyframes:
            for p, s in zip(percents, values):
                print(f"Hook Keyframe - start_percent:{p} = {s}")
        return _keyframes(self.prev_hook_kf, list(zip(percents, values)), first_guarantees=1)


class SetHookKeyframes(Node):
    """The hooks with these keyframes scheduling their strength (none connected: unchanged)."""
    category = "advanced/hooks/scheduling"
    hooks: HOOKS
    hook_kf: HOOK_KEYFRAMES = None
    outputs = {"HOOKS": HOOKS}
    comfy = ComfyAlias(("SetHookKeyframes",), optional=('hook_kf',))

    def run(self):
        if self.hooks is None or self.hook_kf is None:  # no hooks: a Create Hook node at strength 0
            return self.hooks
        return self.hooks.with_keyframes(self.hook_kf)


# -- the text encoder -----------------------------------------------------------------------------

class SetClipHooks(Node):
    """The text encoder with the hooks' text-encoder parts (LoRA clip strength) applied. With
    apply_to_conds, what it encodes carries the hooks too, so the sampler also applies their model
    parts to it. With schedule_clip, a prompt is encoded once per stretch of the hooks' keyframes,
    each entry used during its stretch; without, keyframes are ignored here. On an encoder that
    already has hooks (an earlier Set CLIP Hooks), these replace them, as in ComfyUI; without
    apply_to_conds its conditioning keeps carrying the earlier hooks, if they were applied to it."""
    category = "advanced/hooks/clip"
    clip: CLIP
    apply_to_conds: bool = Bool(True)
    schedule_clip: bool = Bool(False)
    hooks: HOOKS = None
    outputs = {"CLIP": CLIP}
    comfy = ComfyAlias(("SetClipHooks",), optional=('hooks',))

    def run(self):
        import copy

        from graphflow.sampling.hooks import ClipHooks, clip_patches, clip_with_hook, clip_without

        if self.hooks is None:
            return self.clip
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none")
        earlier = getattr(self.clip, "hooks", None)
        clip = self.clip if earlier is None else clip_without(self.clip, earlier.patches)
        before = clip_patches(clip)  # held here, so no id of them is reused meanwhile
        held = {id(p) for p in before}
        if not self.schedule_clip:
            try:
                for hook in self.hooks.hooks:
                    clip = clip_with_hook(clip, hook, hook.strength_clip)
            except ValueError as e:
                raise NodeInputError("hooks", str(e)) from None
        added = tuple(p for p in clip_patches(clip) if id(p) not in held)
        cond_hooks = self.hooks if self.apply_to_conds else None if earlier is None else earlier.cond_hooks
        clip = copy.copy(clip)
        clip.hooks = ClipHooks(self.hooks, cond_hooks, self.schedule_clip, added)
        return clip


# -- conditioning properties ----------------------------------------------------------------------

class ConditioningTimestepsRange(Node):
    """A part of the sampling, start_percent to end_percent (0 = the first, noisiest step), and the
    parts before and after it, for the conditioning property nodes' timesteps input. A start after
    the end gives a range in which an entry is never used (as in ComfyUI)."""
    category = "advanced/hooks"
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    outputs = {"TIMESTEPS_RANGE": TIMESTEPS_RANGE, "BEFORE_RANGE": TIMESTEPS_RANGE, "AFTER_RANGE": TIMESTEPS_RANGE}
    comfy = ComfyAlias(("ConditioningTimestepsRange",))

    def run(self):
        return ((self.start_percent, self.end_percent), (0.0, self.start_percent), (self.end_percent, 1.0))


def _hooked(conditioning, hooks):
    """Each entry with `hooks` added to those it has (ComfyUI's append_hooks)."""
    if hooks is None:
        return list(conditioning)
    out = []
    for cond, options in conditioning:
        have = options.get("hooks")
        out.append((cond, {**options, "hooks": hooks if have is None else have.combine(hooks)}))
    return out


def _properties(node, conditioning, name: str):
    """ComfyUI's set_conds_props on one conditioning: hooks, then the mask with `strength` as its
    strength (strength acts through the mask only), then the timesteps range."""
    if not isinstance(conditioning, (list, tuple)):
        raise NodeInputError(name, f"expected a CONDITIONING, got {type(conditioning).__name__}")
    out = _hooked(conditioning, node.hooks)
    if node.mask is not None:
        mask = node.mask
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3:
            raise NodeInputError("mask", f"expected a MASK [B, H, W], got shape {tuple(mask.shape)}")
        out = _with_options(out, mask=mask, set_area_to_bounds=node.set_cond_area != "default",
                            mask_strength=node.strength)
    if node.timesteps is not None:
        start, end = _range(node.timesteps)
        out = _with_options(out, start_percent=start, end_percent=end)
    return out


def _range(value) -> tuple[float, float]:
    try:
        start, end = (float(v) for v in value)
    except (TypeError, ValueError):
        raise NodeInputError("timesteps", f"expected a TIMESTEPS_RANGE (start_percent, end_percent), got "
                                          f"{value!r}") from None
    return start, end


def _defaults(node, conditioning):
    return _with_options(_hooked(conditioning, node.hooks), default=True)


class ConditioningSetProperties(Node):
    """cond_NEW with hooks (added to its own), a mask weighted by strength ("mask bounds": only
    the mask's bounding box is sampled) and a timesteps range, whichever are connected. Without a
    mask, strength does nothing (as in ComfyUI)."""
    category = "advanced/hooks/cond single"
    cond_NEW: CONDITIONING
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    set_cond_area: str = Choice(["default", "mask bounds"], "default")
    mask: MASK = None
    hooks: HOOKS = None
    timesteps: TIMESTEPS_RANGE = None
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetProperties",), optional=('mask', 'hooks', 'timesteps'))

    def run(self):
        return _properties(self, self.cond_NEW, "cond_NEW")


class ConditioningSetPropertiesAndCombine(Node):
    """cond combined with cond_NEW, the properties set on cond_NEW only (see Cond Set Props)."""
    category = "advanced/hooks/cond single"
    cond: CONDITIONING
    cond_NEW: CONDITIONING
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    set_cond_area: str = Choice(["default", "mask bounds"], "default")
    mask: MASK = None
    hooks: HOOKS = None
    timesteps: TIMESTEPS_RANGE = None
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetPropertiesAndCombine",), optional=('mask', 'hooks', 'timesteps'))

    def run(self):
        return list(self.cond) + _properties(self, self.cond_NEW, "cond_NEW")


class PairConditioningSetProperties(Node):
    """Cond Set Props on a positive and a negative conditioning at once."""
    category = "advanced/hooks/cond pair"
    positive_NEW: CONDITIONING
    negative_NEW: CONDITIONING
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    set_cond_area: str = Choice(["default", "mask bounds"], "default")
    mask: MASK = None
    hooks: HOOKS = None
    timesteps: TIMESTEPS_RANGE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("PairConditioningSetProperties",), optional=('mask', 'hooks', 'timesteps'))

    def run(self):
        return (_properties(self, self.positive_NEW, "positive_NEW"),
                _properties(self, self.negative_NEW, "negative_NEW"))


class PairConditioningSetPropertiesAndCombine(Node):
    """positive + positive_NEW and negative + negative_NEW, the properties set on the NEW ones."""
    category = "advanced/hooks/cond pair"
    positive: CONDITIONING
    negative: CONDITIONING
    positive_NEW: CONDITIONING
    negative_NEW: CONDITIONING
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    set_cond_area: str = Choice(["default", "mask bounds"], "default")
    mask: MASK = None
    hooks: HOOKS = None
    timesteps: TIMESTEPS_RANGE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("PairConditioningSetPropertiesAndCombine",), optional=('mask', 'hooks', 'timesteps'))

    def run(self):
        return (list(self.positive) + _properties(self, self.positive_NEW, "positive_NEW"),
                list(self.negative) + _properties(self, self.negative_NEW, "negative_NEW"))


class PairConditioningCombine(Node):
    """positive_A + positive_B and negative_A + negative_B."""
    category = "advanced/hooks/cond pair"
    positive_A: CONDITIONING
    negative_A: CONDITIONING
    positive_B: CONDITIONING
    negative_B: CONDITIONING
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("PairConditioningCombine",))

    def run(self):
        return list(self.positive_A) + list(self.positive_B), list(self.negative_A) + list(self.negative_B)


class ConditioningSetDefaultCombine(Node):
    """cond plus cond_DEFAULT as a default: the default is weighed by what the other entries'
    weights (masks, areas, strengths) leave of 1 at each pixel, and not evaluated where they
    cover everything. Hooks, if connected, are added to the default's."""
    category = "advanced/hooks/cond single"
    cond: CONDITIONING
    cond_DEFAULT: CONDITIONING
    hooks: HOOKS = None
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetDefaultCombine",), optional=('hooks',))

    def run(self):
        return list(self.cond) + _defaults(self, self.cond_DEFAULT)


class PairConditioningSetDefaultCombine(Node):
    """Cond Set Default Combine on a positive and a negative conditioning at once."""
    category = "advanced/hooks/cond pair"
    positive: CONDITIONING
    negative: CONDITIONING
    positive_DEFAULT: CONDITIONING
    negative_DEFAULT: CONDITIONING
    hooks: HOOKS = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("PairConditioningSetDefaultCombine",), optional=('hooks',))

    def run(self):
        return (list(self.positive) + _defaults(self, self.positive_DEFAULT),
                list(self.negative) + _defaults(self, self.negative_DEFAULT))
