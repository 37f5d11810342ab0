"""ComfyUI-Advanced-ControlNet's control schedule (Kosinkadink's pack; nodes in
nodes/advanced_controlnet.py): per-residual weights, timestep keyframes, latent keyframes, strength
masks and an uncond multiplier on top of an applied ControlNet or T2I-Adapter
(graphflow.models.controlnet.ControlApplied).

Rules as the pack's AdvancedControlBase applies them (adv_control/utils.py and control.py):

* Residual places. ControlNets give one residual per UNet input block ("output", index k = input
  block k) and one after the middle block; T2I-Adapters give features after input blocks ("input")
  and, for SDXL, one after the middle block. The pack's lists are ComfyUI's: its "output" list is in
  block order as ours is, its "input" list in reverse block order (the weights for "input" are read
  reversed, so weights_input[k] belongs to block k on SD1.5's 12-block list).
* Scaled soft ("universal") weights: residual k of a list of n gets base ** (n - k), the middle
  one 1 (or ACN_ExtrasMiddleMult's value) (ControlNets); T2I-Adapters take base ** 7, base ** 2,
  base ** 1, base ** 0, each for three places of the 12 (the pack's fixed list), the middle one
  likewise.
* Each residual: rows of the negative prompt times uncond_multiplier, then times its latent's
  keyframe strength (latents without a keyframe: the timestep keyframe's null_latent_kf_strength),
  times the apply node's mask and the timestep keyframe's mask (each resized bilinear to the
  image's pixel size, then to the residual's), times the keyframe's strength, then times
  strength x weight.
* Timestep keyframes: at each new sigma, once the current keyframe has run its guarantee_steps,
  the following keyframes whose start_percent's sigma is at or above the current sigma are taken in
  turn (stopping after one with guarantee_steps > 0); a keyframe without weights / latent keyframes
  / mask keeps the previous one's when inherit_missing, else goes back to none. The apply node's
  weights_override and latent_kf_override replace the keyframes' whenever the keyframe changes.
  Each sampling run starts the schedule again, which then only moves forward as the pack's
  (rising sigmas, as FlipSigmas' unsampling gives, do not restart it); for a control called
  outside the sampling pipeline, a sigma above the last one seen starts it again.

Under AnimateDiff-Evolved's context windows (graphflow.sampling.context_windows: window_controls), as
the pack's sub_idxs / full_latent_length (adv_control/utils.py at commit 95e26b9b7906, control.py at
2bde95a468ce): latent keyframes count the frames of the whole video (a negative index from its end)
and each window takes its frames' strengths (null_latent_kf_strength for frames without one); the
strength mask, a timestep keyframe's mask and a weight mask are matched to the whole video's frames
(cut, or the last repeated) and each window takes its frames' masks; the hint images likewise
(graphflow.models.controlnet.window_frames), a T2I-Adapter's too: the pack's T2IAdapterAdvanced
extends a hint shorter than the video only to its own length and then fails on a window's frames
past its end (IndexError); that its ControlNetAdvanced repeats the last frame there is taken as
the intent, for both. Core's ContextWindowsManual leaves all of them counting
the window's own latents (its first frames), as ComfyUI's does. As the pack, scaled soft weights
leave a Control-LoRA's residuals as they are (it puts them on a list Control-LoRAs do not give),
the middle one too whatever ACN_ExtrasMiddleMult says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .controlnet import ControlApplied, UnionTyped, extend_to, window_key

# the kinds of weights (the pack's ControlWeightType) and the nets that take them
DEFAULT, UNIVERSAL, CONTROLNET, T2IADAPTER = "default", "universal", "controlnet", "t2iadapter"
CONTROLLORA = "controllora"


@dataclass(frozen=True)
class ControlWeights:
    """Weights per residual (CONTROL_NET_WEIGHTS). output / middle / input: explicit weights for
    those lists (None: 1 everywhere); base_multiplier: universal (scaled soft) weights."""
    kind: str = DEFAULT
    output: tuple[float, ...] | None = None
    middle: tuple[float, ...] | None = None
    input: tuple[float, ...] | None = None
    base_multiplier: float = 1.0
    uncond_multiplier: float = 1.0
    middle_mult: float = 1.0  # ACN_ExtrasMiddleMult's: the middle residual's universal weight
    # ScaledSoftMaskedUniversalWeights': a [B, H, W] mask, raised per residual to the power the
    # universal weights raise base_multiplier to
    mask: torch.Tensor | None = field(default=None, compare=False)

    def weight(self, key: str, index: int, length: int, net_kind: str) -> float:
        """The weight of place `index` (our block order) of a list of `length` places (ComfyUI's
        list length for "input")."""
        if self.kind == DEFAULT:
            return 1.0
        if self.kind == UNIVERSAL:
            if net_kind == CONTROLLORA:  # the pack's Control-LoRA universal weights: none, the middle's extras neither
                return 1.0
            return self.middle_mult if key == "middle" else _universal(key, index, length, self.base_multiplier,
                                                                       net_kind)
        if key == "middle":
            return _at(self.middle, index)
        if key == "input":  # the pack reads these reversed against ComfyUI's reversed list
            return _at(self.input, len(self.input) - length + index) if self.input is not None and \
                length - 1 - index < len(self.input) else 1.0
        return _at(self.output, index)


def _at(weights, index: int) -> float:
    return 1.0 if weights is None or not 0 <= index < len(weights) else float(weights[index])


def t2i_places(four: tuple[float, ...]) -> tuple[float, ...]:
    """The pack's get_properly_arranged_t2i_weights: each of four weights for three places."""
    return tuple(w for w in four for _ in range(3))


def universal_power(key: str, index: int, length: int, net_kind: str) -> int:
    """The power universal weights raise base_multiplier (or the weight mask) to at this place:
    0 in the middle; a ControlNet's residual k of n: n - k; a T2I-Adapter's: 7, 2, 1 or 0 by the
    pack's fixed 12-place list."""
    if key == "middle":
        return 0
    if net_kind == T2IADAPTER:
        places = t2i_places((7, 2, 1, 0))
        at = len(places) - length + index
        return places[at] if 0 <= at < len(places) else 0
    return length - index


def _universal(key: str, index: int, length: int, base: float, net_kind: str) -> float:
    return base ** float(universal_power(key, index, length, net_kind))


@dataclass(frozen=True)
class LatentKeyframes:
    """Strengths per latent of the batch (LATENT_KEYFRAME): (batch_index, strength) sorted by
    index, one per index (a later one for the same index replaces it)."""
    frames: tuple[tuple[int, float], ...] = ()

    def with_frames(self, frames) -> "LatentKeyframes":
        merged = dict(self.frames)
        merged.update((int(i), float(s)) for i, s in frames)
        return LatentKeyframes(tuple(sorted(merged.items())))

    def multipliers(self, latent_count: int, null_strength: float) -> list[float]:
        """One multiplier per latent: its keyframe's strength (a negative index counts from the
        end), null_strength for latents without one."""
        out = [null_strength] * latent_count
        for index, strength in self.frames:
            real = index + latent_count if index < 0 else index
            if 0 <= real < latent_count:
                out[real] = strength
        return out


@dataclass(frozen=True)
class TimestepKeyframe:
    start_percent: float = 0.0
    strength: float = 1.0
    weights: ControlWeights | None = None
    latent_keyframes: LatentKeyframes | None = None
    null_latent_kf_strength: float = 0.0
    inherit_missing: bool = True
    guarantee_steps: int = 1
    mask: torch.Tensor | None = field(default=None, compare=False)


# the pack's group starts with this one (start 0, nothing set, guarantees no step)
FIRST_KEYFRAME = TimestepKeyframe(guarantee_steps=0)


@dataclass(frozen=True)
class TimestepKeyframes:
    """TIMESTEP_KEYFRAME: keyframes sorted by start_percent (equal ones in the order added)."""
    frames: tuple[TimestepKeyframe, ...] = (FIRST_KEYFRAME,)

    def added(self, *keyframes: TimestepKeyframe) -> "TimestepKeyframes":
        """These keyframes added (sorted once: a stable sort keeps equal starts in the order added)."""
        return TimestepKeyframes(tuple(sorted(self.frames + keyframes, key=lambda k: k.start_percent)))

    @classmethod
    def only(cls, keyframe: TimestepKeyframe) -> "TimestepKeyframes":
        """The pack's TimestepKeyframeGroup.default: the group whose first keyframe is this one
        (the weights nodes' TK_SHORTCUT)."""
        return cls((keyframe,))


@dataclass(frozen=True)
class KeyframedNet:
    """A ControlNet / T2I-Adapter with timestep keyframes from the pack's loader; applied by any
    apply node, it schedules itself (the pack's loaders give an advanced control to the core
    apply nodes too)."""
    net: object
    keyframes: TimestepKeyframes

    def __getattr__(self, name):  # needs_vae, concat_mask, ... are the net's
        if name.startswith("__") or name in ("net", "keyframes"):
            raise AttributeError(name)
        return getattr(self.net, name)

    @property
    def applied(self) -> type:
        """What an apply node makes of it (nodes/controlnet.py): a control with its keyframes."""
        return AdvancedControl

    nbytes = 0  # the weights are counted where the net was loaded (graphflow.cache)


def net_kind(net) -> str:
    from .controlnet import ControlLoraFile
    from .t2i_adapter import T2IAdapter

    net = net.net if isinstance(net, (UnionTyped, KeyframedNet)) else net
    if isinstance(net, T2IAdapter):
        return T2IADAPTER
    if isinstance(net, ControlLoraFile):
        return CONTROLLORA
    return CONTROLNET


def token_rows(net) -> bool:
    """An SD3 / FLUX ControlNet (residuals are token rows [B, tokens, width], which masks do not
    scale here), whether or not it reads its hint through a VAE."""
    from .flux_controlnet import FluxControlNet
    from .mmdit_controlnet import MMDiTControlNet

    while isinstance(net, (UnionTyped, KeyframedNet)):  # a loader's schedule around a typed union net, say
        net = net.net
    return isinstance(net, (FluxControlNet, MMDiTControlNet))


def fits(weights: ControlWeights, kind: str) -> bool:
    """The pack's verify_all_weights: universal and default weights fit every net, the others their own."""
    return weights.kind in (UNIVERSAL, DEFAULT, kind)


class AdvancedControl(ControlApplied):
    """A control applied by the pack's apply node (or loaded with keyframes): see the module's
    rules. mask: the strength mask [B, H, W] (not ControlApplied's inpainting mask)."""

    def __init__(self, net, image, strength, start_percent=0.0, end_percent=1.0, previous=None, vae=None, mask=None,
                 keyframes: TimestepKeyframes | None = None, strength_mask: torch.Tensor | None = None,
                 weights_override: ControlWeights | None = None, latent_override: LatentKeyframes | None = None):
        if isinstance(net, KeyframedNet):  # the loader's schedule, unless the apply node gave one
            net, keyframes = net.net, keyframes if keyframes is not None else net.keyframes
        super().__init__(net, image, strength, start_percent, end_percent, previous, vae, mask)
        self.keyframes = keyframes or TimestepKeyframes()
        self.strength_mask = strength_mask
        self.weights_override, self.latent_override = weights_override, latent_override
        self.kind = net_kind(self.net)
        self._run = None  # this sampling run's schedule state (_Schedule)
        self._runs_told = False  # start_run is called: a rising sigma is not a new run

    def start_run(self) -> None:
        """A sampling run starts (graphflow.sampling.pipeline): the schedule starts again, and
        only moves forward until the next run (as the pack's, whatever the sigmas do)."""
        self._run, self._runs_told = None, True

    def end_run(self) -> None:
        """A sampling run ended (graphflow.sampling.pipeline): the masks and multipliers it made (on
        the device) are let go; the schedule's place stays until the next run starts it again."""
        run = self._run
        if run is not None:
            run.tensors = {}

    def own_residuals(self, x, sigma, timesteps, context, y, schedule, unet_config=None, **extra) -> dict | None:
        run = self._step(sigma, schedule)
        keyframe = run.keyframe
        if self.strength == 0.0 or keyframe.strength == 0.0:  # the pack's get_control_inject: no net run
            return None
        if not self.in_range(sigma, schedule):
            return None
        mine = self.net_residuals(x, timesteps, context, y, unet_config, **extra)
        weights = run.weights if run.weights is not None and run.weights.kind != DEFAULT else ControlWeights()
        rows = _negative_rows(x.shape[0])
        chunks = _chunks()
        # the pack's T2I "input" list (ComfyUI's) keeps one place more for SDXL adapters, whose
        # last feature is the middle one
        lengths = {k: len(v) for k, v in mine.items()}
        if self.kind == T2IADAPTER:
            lengths["input"] = lengths.get("input", 0) + len(mine.get("middle") or ())
        out = {}
        for key, places in mine.items():
            # one multiply per residual: the factors (numbers, per-row and per-pixel maps) are folded first
            out[key] = [None if r is None else
                        r * self._multiplier(r, x, run, weights, rows, chunks,
                                             self._weight(weights, key, k, lengths[key], r, chunks, run))
                        for k, r in enumerate(places)]
        return out

    def _weight(self, weights, key, index, length, r, chunks, run):
        """strength x the place's weight: a number, or the weight mask (resized to the residual)
        raised to the place's power."""
        if weights.kind == UNIVERSAL and weights.mask is not None:
            _refuse_token_rows(r)
            power = float(universal_power(key, index, length, self.kind))
            return self.strength * torch.pow(_residual_mask(weights.mask, None, r, chunks, run.tensors), power)
        return self.strength * weights.weight(key, index, length, self.kind)

    def _multiplier(self, r, x, run, weights, rows, chunks, weight):
        """What r is multiplied by: weight (strength x the place's weight, a number or a map) times
        the keyframe's strength, the negative rows' uncond_multiplier, the latents' keyframe
        strengths and the masks; the maps are small (one channel, rows or pixels), so they are
        multiplied together rather than into r one by one."""
        keyframe = run.keyframe
        m = weight * keyframe.strength if keyframe.strength != 1.0 else weight
        if weights.uncond_multiplier != 1.0 and any(rows):
            m = m * run.rows_tensor(("uncond", weights.uncond_multiplier, rows), r, lambda: [
                weights.uncond_multiplier if negative else 1.0 for negative in rows])
        if run.latents is not None:
            latent_count = r.shape[0] // chunks
            null = keyframe.null_latent_kf_strength
            window = _window(latent_count)
            if window is None:
                m = m * run.rows_tensor(("latents", id(run.latents), null, latent_count, chunks), r,
                                        lambda: run.latents.multipliers(latent_count, null) * chunks)
            else:  # the whole video's strengths made once a run (the windows move), the window's frames taken
                frames, full = window
                whole = run.rows_tensor(("video latents", id(run.latents), null, full), r,
                                        lambda: run.latents.multipliers(full, null))
                rows = whole.index_select(0, torch.tensor(frames, device=whole.device))
                m = m * (rows.repeat(chunks, *[1] * (r.ndim - 1)) if chunks > 1 else rows)
        for mask in (self.strength_mask, run.mask):
            if mask is not None:
                _refuse_token_rows(r)
                m = m * _residual_mask(mask, x, r, chunks, run.tensors)
        return m

    def _step(self, sigma, schedule) -> "_Schedule":
        frames = self.keyframes.frames
        if len(frames) == 1 and frames[0].start_percent <= 0:
            # one keyframe from the start: the schedule never moves, so sigma is not read back
            # (on a GPU that waits for the device)
            if self._run is None:
                self._run = self._started(_Schedule(starts=(float("inf"),)).advanced(frames, float("-inf")))
            return self._run
        now = float(sigma.reshape(-1)[0])
        run = self._run
        # a new sampling run; outside the pipeline (no start_run), a sigma above the last one tells it
        if run is None or (not self._runs_told and now > run.sigma):
            run = _Schedule(starts=tuple(schedule.percent_to_sigma(k.start_percent) for k in self.keyframes.frames))
        elif now == run.sigma:  # the same step (the other side's call, say)
            return run
        self._run = self._started(run.advanced(frames, now))
        return self._run

    def _started(self, run: "_Schedule") -> "_Schedule":
        """The apply node's overrides replace the keyframe's whenever the keyframe changes."""
        if run.index != run.last_index:
            if self.weights_override is not None:
                run.weights = self.weights_override
            if self.latent_override is not None:
                run.latents = self.latent_override
        return run


@dataclass
class _Schedule:
    """One sampling run's place in the keyframes (the pack's _current_timestep_* fields)."""
    starts: tuple[float, ...]  # each keyframe's start_percent as a sigma
    sigma: float = float("inf")
    index: int = -1
    last_index: int = -1
    keyframe: TimestepKeyframe | None = None
    used: int = 0
    weights: ControlWeights | None = None
    latents: LatentKeyframes | None = None
    mask: torch.Tensor | None = None
    tensors: dict = field(default_factory=dict)  # per-row multipliers made on the device, kept for the run

    def rows_tensor(self, key, r: torch.Tensor, values) -> torch.Tensor:
        """A multiplier per row of r, shaped to broadcast over it; values() builds the list once."""
        key = (key, r.shape[0], r.ndim, r.dtype, r.device)
        tensors = self.tensors  # (end_run may replace the dict meanwhile)
        if key not in tensors:
            tensors[key] = torch.tensor(values(), dtype=r.dtype, device=r.device).reshape(-1, *[1] * (r.ndim - 1))
        return tensors[key]

    def advanced(self, frames, now: float) -> "_Schedule":
        run = _Schedule(**{**self.__dict__, "last_index": self.index})
        if run.keyframe is None or run.used >= run.keyframe.guarantee_steps:
            for i in range(run.index + 1, len(frames)):
                if run.starts[i] < now:
                    break
                frame = frames[i]
                run.index, run.keyframe, run.used = i, frame, 0
                if frame.weights is not None:
                    run.weights = frame.weights
                elif not frame.inherit_missing:
                    run.weights = None
                if frame.latent_keyframes is not None:
                    run.latents = frame.latent_keyframes
                elif not frame.inherit_missing:
                    run.latents = None
                if frame.mask is not None:
                    run.mask = frame.mask
                elif not frame.inherit_missing:
                    run.mask = None
                if frame.guarantee_steps > 0:
                    break
        run.sigma = now
        run.used += 1
        return run


def _window(latent_count: int) -> tuple | None:
    """The AnimateDiff context window (frames, the video's frame count) whose frames these latent_count
    latents are, or None (no such window: the latents are the whole batch)."""
    window = window_key()
    return window if window is not None and len(window[0]) == latent_count else None


def _negative_rows(batch: int) -> tuple[bool, ...]:
    from graphflow.sampling.guidance import unet_rows

    rows = unet_rows.get()
    if rows is None or len(rows.negative) != batch:
        return (False,) * batch
    return tuple(rows.negative)


def _chunks() -> int:
    from .controlnet import batch_chunks

    return batch_chunks()


def _refuse_token_rows(r: torch.Tensor) -> None:
    if r.ndim != 4:  # a net whose residuals are token rows (a loader's schedule reaches here unchecked)
        raise ValueError("Advanced ControlNet masks (mask_optional, a timestep keyframe's mask, masked weights) "
                         "scale SD1 / SD2 / SDXL ControlNets and T2I-Adapters, not this SD3 / FLUX ControlNet, "
                         f"whose residuals are token rows (shape {tuple(r.shape)}): remove the mask")


def _residual_mask(mask: torch.Tensor, x: torch.Tensor | None, r: torch.Tensor, chunks: int,
                   cache: dict | None = None) -> torch.Tensor:
    """The pack's rule: the mask [B, H, W] resized (bilinear) to the image's pixel size (x's
    latent size x 8; a weight mask, x None, skips this), cut or extended (last one repeated) to
    the latents of one conditioning entry (in an AnimateDiff context window: to the whole video's
    frames, of which the window's are taken), repeated per entry, then resized (bilinear) to the
    residual's size. The resizes work per mask, so masks are cut first (none past the latents' or
    the video's frames is resized) and, in a window, its frames taken after (the last mask for frames
    past the end, without an extended copy); made on r's device. With a cache (the run's tensors),
    the pixel-size mask and each residual size's are made once a run: in a context window the whole
    video's, from which each window takes its frames (uniform schedules move the windows every step,
    so per-window masks would pile up)."""
    latent_count = r.shape[0] // chunks
    pixels = None if x is None else (x.shape[2] * 8, x.shape[3] * 8)
    window = _window(latent_count)
    # the mask is held by the control or its keyframes for the whole run, so its id stays its own;
    # in a window the masks made are the whole video's (no chunks: each window's rows are taken after)
    made = (id(mask), tuple(mask.shape), pixels, r.device) + \
        ((latent_count, chunks, r.shape[0]) if window is None else ("video", window[1]))
    key = ("residual mask", made, tuple(r.shape[2:]), r.dtype)
    m = cache.get(key) if cache is not None else None
    if m is None:
        m = cache.get(("pixel mask", made)) if cache is not None else None
        if m is None:
            m = mask[:latent_count if window is None else window[1]]
            m = m.to(r.device).reshape(-1, 1, *mask.shape[-2:]).float()
            if window is None:
                m = extend_to(m, latent_count)
            if pixels is not None:
                m = F.interpolate(m, size=pixels, mode="bilinear")
            if window is None and m.shape[0] not in (1, r.shape[0]):
                m = m.repeat(chunks, 1, 1, 1)
            if cache is not None:
                cache[("pixel mask", made)] = m
        m = F.interpolate(m, size=tuple(r.shape[2:]), mode="bilinear").to(r.dtype)
        if cache is not None:
            cache[key] = m
    if window is None or m.shape[0] == 1:  # (one mask: every row)
        return m
    last = m.shape[0] - 1
    m = m.index_select(0, torch.tensor([min(f, last) for f in window[0]], device=m.device))
    return m.repeat(chunks, 1, 1, 1) if chunks > 1 else m
