"""ComfyUI's hooks: LoRAs (and whole models taken as LoRAs) that act only on the conditioning they
are attached to, at a strength scheduled over the sampling steps.

A HOOKS value is a `Hooks` (ComfyUI's HookGroup): WeightHooks, each a LoRA's modules
(graphflow.models.lora.read_lora) or a second model whose difference to the sampled one is the
change (ComfyUI's "model_as_lora": W + s (W2 - W0), W0 the weight before any LoRA), with a model
and a clip strength and optional `Keyframes`. A conditioning entry carries them as
options["hooks"]; while the sampler evaluates that entry the diffusion model's shared weights
hold the model's own patches plus the hooks' (graphflow.memory.WeightPatch, applied in place by
the memory manager and restored from the originals, so bit-exact), and entries with different
hook sets are never batched together.
Patches are applied only when the active (hook set, strengths) changes, and the model's own patch
set is put back when sampling ends, also when it fails. Within a run the memory manager caches the
weights of the sets switched away from where memory allows (`patch(..., cache=True)`), so a
hooked positive and an un-hooked negative swap tensors each step instead of recomputing the
hooked weights (and, for a model with LoRAs of its own, the model's) at every switch; the cache
holds only the sets used in the previous round of model calls (a keyframe's earlier strengths
drop out) and is emptied when the run ends.

Keyframes (ComfyUI's HookKeyframeGroup): each (strength_mult, start_percent, guarantee_steps);
the strength of a hook is strength_model (or strength_clip) times the current keyframe's
strength_mult (1 without keyframes). At each new sigma the current keyframe, once it has been
used for its guarantee_steps (0 when it starts before the run's largest sigma), gives way to the
last of the following keyframes whose start sigma (percent_to_sigma(start_percent)) is >= sigma,
stopping at the first one that itself guarantees steps. Start sigmas are compared rounded to the
sigmas' dtype (float32), as ComfyUI compares them with the sigma tensors.
"""

from __future__ import annotations

import contextvars
import math
from dataclasses import dataclass, field, replace

import torch


@dataclass(frozen=True)
class Keyframe:
    strength: float
    start_percent: float = 0.0
    guarantee_steps: int = 1


@dataclass(frozen=True, eq=False)
class Keyframes:
    """HOOK_KEYFRAMES: keyframes in order of start_percent (equal starts keep the order added)."""
    frames: tuple[Keyframe, ...] = ()

    def add(self, frame: Keyframe) -> "Keyframes":
        return Keyframes(tuple(sorted((*self.frames, frame), key=lambda f: f.start_percent)))


@dataclass(frozen=True, eq=False)
class WeightHook:
    """One LoRA (`lora`: kohya module name -> LoraModule) or model-as-LoRA (`model` / `clip`: the
    second checkpoint's parts). `ref` is shared by copies that differ only by keyframes: a group
    holds a hook once (ComfyUI compares hooks by their hook_ref)."""
    name: str
    strength_model: float = 1.0
    strength_clip: float = 1.0
    lora: dict | None = None
    model: object = None
    clip: object = None
    keyframes: Keyframes | None = None
    ref: object = field(default_factory=object)


@dataclass(frozen=True, eq=False)
class Hooks:
    """HOOKS: a set of WeightHooks, in the order added."""
    hooks: tuple[WeightHook, ...] = ()

    def combine(self, other: "Hooks | None") -> "Hooks":
        hooks = list(self.hooks)
        for hook in () if other is None else other.hooks:
            if all(h.ref is not hook.ref for h in hooks):
                hooks.append(hook)
        return Hooks(tuple(hooks))

    def with_keyframes(self, keyframes: Keyframes | None) -> "Hooks":
        """The hooks scheduled by a copy of `keyframes` of their own, shared by these hooks only: a
        sampling run keeps one clock per Keyframes object, and ComfyUI's SetHookKeyframes clones the
        group, so hooks scheduled by two such nodes from one HOOK_KF advance separately."""
        own = None if keyframes is None else Keyframes(keyframes.frames)
        return Hooks(tuple(replace(h, keyframes=own) for h in self.hooks))


def hooks_key(hooks: Hooks | None) -> tuple:
    """What decides whether two conditioning entries may share a model call."""
    return () if hooks is None else hooks.hooks


def combine_hooks(groups) -> Hooks | None:
    """CombineHooks: the hooks of every group given (None where none is)."""
    groups = [g for g in groups if g is not None]
    if not groups:
        return None
    out = groups[0]
    for group in groups[1:]:
        out = out.combine(group)
    return out


# -- weight patches ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _AsLora:
    """ComfyUI's "model_as_lora" change of one weight: W + sum of strength (W2 - W0) over the second
    models' weights W2, W0 being the original weight, also when LoRAs (the model's own, or other
    hooks') patch it too. So these patches go first in a patch chain, where they see W0."""
    pairs: tuple  # ((W2, strength), ...)

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        w = original = weight.float()
        for target, strength in self.pairs:
            w = w + strength * (target.to(weight.device, torch.float32) - original)
        return w.to(weight.dtype)


def _model_as_lora_patches(module: torch.nn.Module, other: torch.nn.Module, strength: float, what: str,
                           key_prefix: str) -> tuple:
    """`key_prefix`: what ComfyUI's state dict puts before `module`'s parameter paths; the CRC-32
    of each weight's key seeds its stochastic rounding into fp8, as ComfyUI's patcher seeds it."""
    import zlib

    from graphflow.memory import WeightPatch

    mine = dict(module.named_parameters())
    theirs = dict(other.named_parameters())
    if set(mine) != set(theirs) or any(mine[k].shape != theirs[k].shape for k in mine):
        raise ValueError(f"{what} has another architecture or size than the one sampled; a model taken as "
                         f"LoRA must be of the same kind")
    return tuple(WeightPatch(name, _AsLora(((theirs[name].detach(), strength),)),
                             zlib.crc32(f"{key_prefix}{name}".encode())) for name in mine)


def with_patches(patches: tuple, added: tuple) -> tuple:
    """A patch chain with `added` after `patches`, except model-as-LoRA changes: those lead the
    chain, merged per weight (see _AsLora)."""
    from graphflow.memory import WeightPatch

    if not any(isinstance(p.change, _AsLora) for p in added):
        return (*patches, *added)
    lead: dict[str, list] = {}
    rest = []
    for p in (*patches, *added):
        (lead.setdefault(p.param, []) if isinstance(p.change, _AsLora) else rest).append(p)
    merged = (ps[0] if len(ps) == 1 else WeightPatch(name, _AsLora(sum((p.change.pairs for p in ps), ())), ps[0].seed)
              for name, ps in lead.items())
    return (*merged, *rest)


def model_patches(model, hook: WeightHook, strength: float) -> tuple:
    """The hook's changes to `model`'s diffusion network at `strength` (strength_model included)."""
    if strength == 0:
        return ()
    if hook.lora is not None:
        from graphflow.models.lora import TEXT_ENCODER_KEYS, apply_lora

        modules = {k: v for k, v in hook.lora.items() if not k.startswith(TEXT_ENCODER_KEYS)}
        if not modules:
            return ()
        patched, _ = apply_lora(model, None, hook.name, strength, 0.0, strict=False, modules=modules)
        return patched.patches[len(model.patches):]
    if hook.model is None:
        return ()
    return _model_as_lora_patches(model.unet, hook.model.unet, strength, hook.name, "diffusion_model.")


def clip_with_hook(clip, hook: WeightHook, strength: float):
    """`clip` with the hook's text-encoder changes at `strength` added to its towers' patches (and
    its T5's)."""
    if strength == 0:
        return clip
    if hook.lora is not None:
        from graphflow.models.lora import TEXT_ENCODER_KEYS, apply_lora

        # kohya's lora_te* and ComfyUI's text_encoders.* (a T5's in that layout) are the encoder's
        modules = {k: v for k, v in hook.lora.items() if k.startswith(TEXT_ENCODER_KEYS)}
        if not modules:
            return clip
        _, patched = apply_lora(None, clip, hook.name, 0.0, strength, strict=False, modules=modules)
        return patched
    if hook.clip is None:
        return clip
    if len(clip.towers) != len(hook.clip.towers):
        raise ValueError(f"{hook.name}'s text encoder has {len(hook.clip.towers)} CLIP towers, the one it patches "
                         f"{len(clip.towers)}; a model taken as LoRA must be of the same kind")
    towers = []
    for tower, other in zip(clip.towers, hook.clip.towers):  # in the same order for the same kind
        towers.append(tower.with_patches(with_patches(tower.patches, _model_as_lora_patches(
            tower.model, other.model, strength, f"{hook.name} ({tower.name})", tower.comfy_key_prefix))))
    clip = clip.with_towers(towers)
    t5, theirs = getattr(clip, "t5", None), getattr(hook.clip, "t5", None)
    if t5 is not None and theirs is not None:  # ComfyUI's clip weights are the whole encoder's
        prefix = f"{t5.comfy_name}.transformer."
        clip = clip.with_t5(t5.with_patches(with_patches(t5.patches, _model_as_lora_patches(
            t5.model, theirs.model, strength, f"{hook.name} ({t5.comfy_name})", prefix))))
    return clip


# -- keyframes while sampling -----------------------------------------------------------------

class KeyframeClock:
    """The current keyframe of one Keyframes during one sampling run (see the module docstring)."""

    def __init__(self, keyframes: Keyframes, schedule, max_sigma: float, dtype: torch.dtype = torch.float32):
        self.frames = keyframes.frames
        # rounded as comparing a Python float with a sigma tensor does: a flow model's 1 - percent
        # is rarely a float32, and the step at its nearest float32 must count as reached
        self.starts = [float(torch.tensor(schedule.percent_to_sigma(f.start_percent), dtype=dtype))
                       for f in self.frames]
        self.max_sigma = max_sigma
        self.index, self.used, self.sigma = 0, 0, None

    def _guaranteed(self, index: int) -> int:
        return 0 if self.starts[index] > self.max_sigma else self.frames[index].guarantee_steps

    def strength(self, sigma: float) -> float:
        if not self.frames:
            return 1.0
        if sigma != self.sigma:
            if self.used >= self._guaranteed(self.index):
                for i in range(self.index + 1, len(self.frames)):
                    if self.starts[i] < sigma:
                        break
                    self.index, self.used = i, 0
                    if self._guaranteed(i) > 0:
                        break
            self.used += 1
            self.sigma = sigma
        return self.frames[self.index].strength


def clip_schedule(hooks: Hooks) -> list[tuple[tuple[float, float], tuple[float, ...]]]:
    """SetClipHooks' schedule_clip: ((start_percent, end_percent), strength_mult per hook) for each
    stretch over which no hook's keyframe strength changes, as ComfyUI splits them."""
    ranges = []  # per hook: [((start, end), strength)]
    for hook in hooks.hooks:
        frames = hook.keyframes.frames if hook.keyframes is not None else ()
        if not frames:
            ranges.append([((0.0, 1.0), 1.0)])
            continue
        own, prev = [], frames[0]
        for frame in frames:
            if frame.start_percent > prev.start_percent and not math.isclose(frame.strength, prev.strength):
                own.append(((prev.start_percent, frame.start_percent), prev.strength))
                prev = frame
            elif frame.start_percent == prev.start_percent:
                prev = frame
        if not math.isclose(prev.start_percent, 1.0):
            own.append(((prev.start_percent, 1.0), prev.strength))
        ranges.append(own)
    bounds = sorted({0.0, *(b for own in ranges for r, _ in own for b in r)})
    out = []
    for start, end in zip(bounds, bounds[1:]):
        strengths = []
        for own in ranges:
            strengths.append(next((s for (a, b), s in own if a < end and b > start), 1.0))
        out.append(((start, end), tuple(strengths)))
    return out


@dataclass(frozen=True)
class ClipHooks:
    """SetClipHooks' record on a text encoder (ComfyUI's forced_hooks, apply_hooks_to_conds and
    use_clip_schedule): the hooks it encodes with, the hooks what it encodes carries (None: none),
    whether prompts are encoded once per keyframe stretch (else the encoder already holds the
    hooks' text parts at strength_clip: `patches`, which a later SetClipHooks takes off again, its
    hooks replacing these)."""
    hooks: Hooks
    cond_hooks: Hooks | None = None
    schedule: bool = False
    patches: tuple = ()


def clip_patches(clip) -> tuple:
    """Every weight patch a text encoder holds: its CLIP towers' and its T5's."""
    t5 = getattr(clip, "t5", None)
    towers = getattr(clip, "towers", ())
    return (*(p for tower in towers for p in tower.patches), *(getattr(t5, "patches", None) or ()))


def clip_without(clip, patches: tuple):
    """`clip` without these patch objects (the ones a SetClipHooks added), other patches kept."""
    if not patches:
        return clip
    drop = {id(p) for p in patches}  # `patches` holds them alive: no id is reused meanwhile

    def keep(held: tuple) -> tuple:
        return tuple(p for p in held if id(p) not in drop)

    if getattr(clip, "towers", ()):
        clip = clip.with_towers([tower.with_patches(keep(tower.patches)) for tower in clip.towers])
    t5 = getattr(clip, "t5", None)
    if getattr(t5, "patches", None):
        clip = clip.with_t5(t5.with_patches(keep(t5.patches)))
    return clip


def encode_with_hooks(clip, encode) -> list:
    """A CONDITIONING from `encode(clip) -> (cond, options)` that honours the encoder's ClipHooks:
    one entry, or with schedule one per stretch of clip_schedule, encoded at that stretch's
    strengths and marked "clip_start_percent" / "clip_end_percent" for the sampler."""
    clip_hooks = getattr(clip, "hooks", None)
    if clip_hooks is None:
        return [encode(clip)]
    extra = {} if clip_hooks.cond_hooks is None else {"hooks": clip_hooks.cond_hooks}
    if not clip_hooks.schedule:
        cond, options = encode(clip)
        return [(cond, {**options, **extra})]
    out = []
    for (start, end), mults in clip_schedule(clip_hooks.hooks):
        patched = clip
        for hook, mult in zip(clip_hooks.hooks.hooks, mults):
            patched = clip_with_hook(patched, hook, hook.strength_clip * mult)
        cond, options = encode(patched)
        out.append((cond, {**options, "clip_start_percent": start, "clip_end_percent": end, **extra}))
    return out


class HookSwitch:
    """Puts the right weights in the diffusion network for each model call of one sampling run."""

    def __init__(self, model, schedule, sigmas: torch.Tensor):
        self.model, self.schedule = model, schedule
        self.max_sigma, self.dtype = float(sigmas.max()), sigmas.dtype
        self.clocks: dict[int, KeyframeClock] = {}
        self.cache: dict[tuple, tuple] = {}
        self.current = ((), ())  # the model's own patches: what memory.use put there
        self.sigma = None  # the round of model calls (one sigma) now running
        self.used: dict[int, tuple] = {}  # patch sets used in this round

    def strength(self, hook: WeightHook, sigma: float) -> float:
        if hook.keyframes is None:
            return 1.0
        clock = self.clocks.get(id(hook.keyframes))
        if clock is None:
            clock = KeyframeClock(hook.keyframes, self.schedule, self.max_sigma, self.dtype)
            self.clocks[id(hook.keyframes)] = clock
        return clock.strength(sigma)

    def activate(self, hooks: Hooks | None, sigma: torch.Tensor) -> None:
        from graphflow.memory import manager

        key = hooks_key(hooks)
        s = float(sigma.reshape(-1)[0])
        if s != self.sigma:  # a new round: cached sets not used in the last one won't be again soon
            manager().keep_patch_cache(self.model.unet, self.used.values())
            self.cache = {k: v for k, v in self.cache.items() if id(v) in self.used}
            self.sigma, self.used = s, {}
        strengths = tuple(h.strength_model * self.strength(h, s) for h in key)
        patches = self.cache.get((key, strengths))
        if patches is None:
            patches = self.model.patches
            for hook, strength in zip(key, strengths):
                patches = with_patches(patches, model_patches(self.model, hook, strength))
            self.cache[(key, strengths)] = patches
        self.used[id(patches)] = patches
        if (key, strengths) == self.current:
            return
        manager().patch(self.model.unet, patches, cache=True)
        self.current = (key, strengths)

    def restore(self) -> None:
        from graphflow.memory import manager

        try:
            manager().patch(self.model.unet, self.model.patches)
        finally:
            manager().drop_patch_cache(self.model.unet)
        self.current = ((), ())


def check_hooks(model, conditioning) -> None:
    """Raise ValueError (a LoraError is one) when a hook in `conditioning` does not fit `model`."""
    seen = set()
    for entry in conditioning:
        for hook in hooks_key(entry_hooks(entry)):
            if id(hook) not in seen:
                seen.add(id(hook))
                model_patches(model, hook, 1.0)


# set by the sampler around a run whose conditioning has hooks; None otherwise
hook_switch: contextvars.ContextVar[HookSwitch | None] = contextvars.ContextVar("hook_switch", default=None)


def entry_hooks(entry) -> Hooks | None:
    """A conditioning entry's hooks (None for none, or for what is no entry)."""
    if isinstance(entry, (list, tuple)) and len(entry) > 1 and isinstance(entry[1], dict):
        return entry[1].get("hooks")
    return None
