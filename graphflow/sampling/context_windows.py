"""Context windows (ComfyUI's ContextWindowsManual / WanContextWindowsManual, whose schedules and
fuse weights are AnimateDiff-Evolved's context options): when a latent is longer along one dim
than the model was trained for, each model evaluation runs on overlapping windows of that dim
and the windows' predictions are averaged per position with weights.

Where: guidance.predict_sides, the one place every guider (CFG, DualCFG, PerpNeg and the model
patches' extra predictions) gets each side's denoised prediction, as ComfyUI's calc_cond_batch.
For each window the latent x, the per-row sigma (dim 0 only) and every conditioning entry's
per-position tensors are cut to the window, the sides are predicted on the cut, and position t of
side s becomes sum_w weight_w(t) D_w,s(t) / sum_w weight_w(t) over the windows holding t. CFG and
the post-CFG patches then see full-size predictions, as ComfyUI's.

What is cut to the window (a tensor is cut only where its size along the dim is the latent's):
  - x; LTX-Video's per-token timestep mask (a noise mask: LTXVImgToVideo's known first frame);
  - a conditioning's concat channels (SVD's init image, inpainting and ip2p channels), its mask;
  - along dim 0 (the batch: SVD's frames) also everything with a batch row per latent row: the
    text / image embedding, SDXL / SVD vector conditioning, guidance, ControlNet text, attention
    bias, Stable Cascade prior, Kontext references, and the sigma; SVD's frame count becomes the
    window's length.
What is not: GLIGEN boxes and hooks (they see each window as a whole latent), LTX-Video's frame rate;
ControlNet / T2I-Adapter hint images under ContextWindowsManual (under AnimateDiff-Evolved's context
options they are cut per window: see Controls below). Positional encodings follow the window (its first frame is
frame 0), as in ComfyUI. Refused: LTXVAddGuide's appended guide frames and conditioning areas when
windowing a dim other than the batch (their positions would not follow the cut).

Controls: ComfyUI's ContextWindowsManual (comfy/context_windows.py at commit 0258521e57f7:
prepare_control_objects leaves the control as it is) hands a control the whole hint batch, which
comfy/controlnet.py's get_control (commit 005e370254d4) takes as it is when it has as many frames as
the window's model call has rows (the window times its conditionings), else cuts per conditioning
with broadcast_image_to (each conditioning of every window gets the first hint frames); graphflow
does the same for those windows. AnimateDiff-Evolved's context options (`window_controls`) instead
cut the controls per window, as the pack does with Advanced-ControlNet (the pack's sampling.py at
commit 466f5636dc76 sets each control's sub_idxs to the window's frames and full_latent_length to
the video's): while a window runs, `control_window` holds (its frames, the video's frame count), and
a ControlNet's or T2I-Adapter's hint (graphflow.models.controlnet.window_frames) and
Advanced-ControlNet's latent keyframes and strength / weight masks (graphflow.models.advanced_control)
take that window's frames.

Schedules (windows of `length` with `overlap` shared positions, over N positions):
  standard_static   start at 0, every length - overlap; the last window is moved back to end at N - 1.
  batched           consecutive windows of `length` without overlap (the last may be shorter).
  looped_uniform    for each spacing s = 1, 2, 4, ... (at most `stride` of them, and at most
                    ceil(log2(N / length)) + 1), windows of `length` positions s apart (mod N:
                    they wrap around the end), starting at round(N h) + int(s h) and then every
                    length * s - overlap while below N + round(N h) - overlap, where h =
                    ordered_halving(step) = 0, 1/2, 1/4, 3/4, 1/8, ... moves the windows every
                    step; closed_loop drops the "- overlap", so windows also start in the last
                    `overlap` positions and the end blends into the start.
  standard_uniform  looped_uniform without closed_loop, then each window that wraps is shifted to
                    end at N - 1 (and, if the next window lacks the position where it wrapped, a
                    window of `length` from there is inserted); repeated windows are dropped.
                    A spacing whose windows span more than N positions can't be shifted into the
                    video and is left out (in ComfyUI its shifted windows run past the last frame).
The uniform schedules depend on the step: its index in the run's sigmas (ComfyUI's rule: the first
sigma within a relative 1e-4; a sampler's sub-step keeps the last step's index). Reading sigma is
one host sync per prediction, for those two schedules only.

Fuse weights of a window of n positions:
  flat            1 everywhere.
  pyramid         min(k + 1, n - k) at position k: 1, 2, ..., 2, 1.
  relative        max(0.01, 1 - |i - c| / ((last - first + 0.01) / 2)) at frame i, c = (first + last) / 2
                  (ComfyUI blends by a running weighted average, which is this normalised
                  weighting); a window that wraps around counts its frames past the end as N + i.
  overlap-linear  1, but the first `overlap` positions ramp up linearly from 1e-37 to 1 unless the
                  window holds frame 0, and the last `overlap` ramp down to 1e-37 unless it
                  holds frame N - 1 (the ramps are cut to the window's length).
The weights of each position are normalised over the windows holding it before they multiply the
predictions (not after summing), so the tiny 1e-37 ramp ends stay exact.

Differences from ComfyUI, all where its code fails or computes nonsense: standard_uniform's
over-long spacings (above); a relative window that wraps (ComfyUI's formula then gets a negative
span); overlap-linear with overlap 0 or a window shorter than the overlap (a shape error there);
an overlap not below the length (an empty or endless window range there; refused here, except for
batched, which ignores it); a frame repeated within a window (over-long looped windows) is added
once per occurrence, where ComfyUI's indexed add keeps one.
"""

from __future__ import annotations

import contextvars
import copy
import math
from dataclasses import dataclass, field, replace

import torch

from ..choices import CONTEXT_FUSE_METHODS as FUSE_METHODS
from ..choices import CONTEXT_SCHEDULES as SCHEDULES

UNIFORM = ("standard_uniform", "looped_uniform")

# (the window's frames, the whole video's frame count) while a window of context windows with
# window_controls runs (AnimateDiff-Evolved's sub_idxs and full_length); None otherwise
control_window: contextvars.ContextVar[tuple[tuple[int, ...], int] | None] = contextvars.ContextVar(
    "control_window", default=None)
# (the window's frames, the whole batch's length) while any window over dim 0 (the batch: AnimateDiff's
# frames) runs, core's windows included; None otherwise. AnimateDiff's per-frame multivals read it
batch_window: contextvars.ContextVar[tuple[tuple[int, ...], int] | None] = contextvars.ContextVar(
    "batch_window", default=None)


def ordered_halving(step: int) -> float:
    """The step index's 64 bits in reverse order, as a fraction: 0, 1/2, 1/4, 3/4, 1/8, 5/8, ..."""
    return int(format(step % 2 ** 64, "064b")[::-1], 2) / 2 ** 64


def _uniform(num_frames: int, length: int, overlap: int, stride: int, closed_loop: bool, step: int,
             fit: bool = False) -> list[list[int]]:
    """The uniform windows before standard_uniform's fixing (positions taken mod num_frames);
    fit: without the spacings whose windows are longer than the video."""
    levels = min(stride, math.ceil(math.log2(num_frames / length)) + 1)
    phase = ordered_halving(step)
    pad = int(round(num_frames * phase))
    windows = []
    for level in range(levels):
        spacing = 2 ** level
        if fit and (length - 1) * spacing + 1 > num_frames:
            break
        stop = num_frames + pad - (0 if closed_loop else overlap)
        for start in range(int(phase * spacing) + pad, stop, length * spacing - overlap):
            windows.append([(start + k * spacing) % num_frames for k in range(length)])
    return windows


def _wraps_at(window: list[int]) -> int | None:
    """The first position whose frame is smaller than the one before (the window wrapped)."""
    for k in range(1, len(window)):
        if window[k] < window[k - 1]:
            return k
    return None


def _standard_uniform(num_frames: int, length: int, overlap: int, stride: int, step: int) -> list[list[int]]:
    windows = _uniform(num_frames, length, overlap, stride, False, step, fit=True)
    repeated = []
    k = 0
    while k < len(windows):
        window = windows[k]
        wrap = _wraps_at(window)
        if wrap is not None:
            wrapped_to = window[wrap]
            relative = [(f - window[0]) % num_frames for f in window]
            windows[k] = [f + num_frames - 1 - relative[-1] for f in relative]  # ends at the last frame
            if wrapped_to not in windows[(k + 1) % len(windows)]:
                windows.insert(k + 1, list(range(wrapped_to, wrapped_to + length)))
        if windows[k] in windows[:k]:
            repeated.append(k)
        k += 1
    return [w for k, w in enumerate(windows) if k not in repeated]


def context_windows(num_frames: int, length: int, overlap: int, schedule: str = "standard_static", stride: int = 1,
                    closed_loop: bool = False, step: int = 0) -> list[list[int]]:
    """The windows (lists of positions along the windowed dim) of one model evaluation; one window
    of everything when num_frames <= length. See the module docstring for each schedule."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown context schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    if length < 1 or overlap < 0 or stride < 1:
        raise ValueError(f"context windows need length >= 1, overlap >= 0 and stride >= 1, got {length}, {overlap}, "
                         f"{stride}")
    if num_frames <= length:
        return [list(range(num_frames))]
    if schedule == "batched":
        return [list(range(start, min(start + length, num_frames))) for start in range(0, num_frames, length)]
    if overlap >= length:
        raise ValueError(f"the context overlap ({overlap}) must be smaller than the context length ({length})")
    if schedule == "standard_static":
        windows = []
        for start in range(0, num_frames, length - overlap):
            if start + length >= num_frames:  # the last window ends at the last frame
                windows.append(list(range(num_frames - length, num_frames)))
                break
            windows.append(list(range(start, start + length)))
        return windows
    if schedule == "looped_uniform":
        return _uniform(num_frames, length, overlap, stride, closed_loop, step)
    return _standard_uniform(num_frames, length, overlap, stride, step)


def _ramp(a: float, b: float, n: int) -> list[float]:
    # a (1 - t) + b t: exactly a and b at the ends (a + (b - a) t would lose 1e-37 next to 1)
    return [a] if n == 1 else [a * (1 - k / (n - 1)) + b * (k / (n - 1)) for k in range(n)]


def fuse_weights(method: str, window: list[int], num_frames: int, overlap: int = 0) -> list[float]:
    """The weight of each position of `window` (frames of num_frames) when windows are fused."""
    n = len(window)
    if method == "flat":
        return [1.0] * n
    if method == "pyramid":
        return [float(min(k + 1, n - k)) for k in range(n)]
    if method == "relative":
        frames = [window[0] + (f - window[0]) % num_frames for f in window]  # past the end: N + i
        first, last = frames[0], frames[-1]
        centre, half = (first + last) / 2, (last - first + 0.01) / 2
        return [max(0.01, 1 - abs(f - centre) / half) for f in frames]
    if method == "overlap-linear":
        weights = [1.0] * n
        ramp = min(overlap, n)
        if ramp > 0 and min(window) > 0:
            weights[:ramp] = _ramp(1e-37, 1.0, ramp)
        if ramp > 0 and max(window) < num_frames - 1:
            weights[n - ramp:] = _ramp(1.0, 1e-37, ramp)
        return weights
    raise ValueError(f"unknown fuse method {method!r}; expected one of {', '.join(FUSE_METHODS)}")


def normalised_weights(windows: list[list[int]], method: str, num_frames: int, overlap: int) -> list[list[float]]:
    """Each window's fuse weights divided by the sum of the weights every window gives its frame."""
    weights = [fuse_weights(method, w, num_frames, overlap) for w in windows]
    totals = [0.0] * num_frames
    for window, ws in zip(windows, weights):
        for f, wt in zip(window, ws):
            totals[f] += wt
    missing = [f for f in range(num_frames) if totals[f] == 0]
    if missing:  # no schedule leaves frames out; a guard for the sum below
        raise ValueError(f"the context windows leave frames {missing[:8]} of {num_frames} uncovered")
    return [[wt / totals[f] for f, wt in zip(window, ws)] for window, ws in zip(windows, weights)]


def fuse(parts: list[torch.Tensor], windows: list[list[int]], weights: list[list[float]], dim: int,
         like: torch.Tensor) -> torch.Tensor:
    """sum over windows of part * normalised weight, each added at its window's positions of dim."""
    out = torch.zeros_like(like)
    shape = [1] * like.ndim
    shape[dim] = -1
    for part, window, ws in zip(parts, windows, weights):
        index = torch.tensor(window, device=like.device)
        w = torch.tensor(ws, device=like.device, dtype=part.dtype).reshape(shape)
        out.index_add_(dim, index, part * w)
    return out


@dataclass(frozen=True)
class ContextWindows:
    """A MODEL's context-window settings (its `context_windows` attribute; ContextWindowsManual)."""

    length: int
    overlap: int
    schedule: str = "standard_static"
    stride: int = 1
    closed_loop: bool = False
    fuse_method: str = "pyramid"
    dim: int = 0
    # AnimateDiff-Evolved's context options: controls' hints, latent keyframes and masks follow the
    # window (see the module docstring); core's ContextWindowsManual leaves them whole
    window_controls: bool = False

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown context schedule {self.schedule!r}; expected one of {', '.join(SCHEDULES)}")
        if self.fuse_method not in FUSE_METHODS:
            raise ValueError(f"unknown fuse method {self.fuse_method!r}; expected one of {', '.join(FUSE_METHODS)}")

    def for_run(self, sigmas: torch.Tensor) -> "WindowedRun":
        return WindowedRun(self, sigmas.detach().float().cpu())


def with_context_windows(model, windows: ContextWindows):
    """A shallow copy of the MODEL that samples with these context windows (the input is unchanged;
    a later node's windows replace earlier ones, as in ComfyUI)."""
    patched = copy.copy(model)
    patched.context_windows = windows
    return patched


@dataclass(eq=False)
class WindowedRun:
    """One sampling run's context windows: the step index and the cut conditioning entries (kept for
    the run, so a window's entries are the same objects every step: EasyCache caches per entry)."""

    settings: ContextWindows
    sigmas: torch.Tensor
    step: int = 0
    _cut: dict = field(default_factory=dict)

    def applies(self, x: torch.Tensor) -> bool:
        dim = self.settings.dim
        if dim >= x.ndim:
            raise ValueError(f"context windows: dim {dim} is beyond this latent's {x.ndim} dims {tuple(x.shape)} "
                             f"(ContextWindowsManual's dim)")
        return x.shape[dim] > self.settings.length

    def windows(self, num_frames: int, sigma: torch.Tensor) -> list[list[int]]:
        s = self.settings
        if s.schedule in UNIFORM:
            matches = torch.nonzero(torch.isclose(self.sigmas, sigma.reshape(-1)[:1].float().cpu(), rtol=1e-4))
            if matches.numel():  # else a sampler's sub-step: keep the last step's index
                self.step = int(matches[0])
        return context_windows(num_frames, s.length, s.overlap, s.schedule, s.stride, s.closed_loop, self.step)

    def predict(self, predict_sides, model_denoiser, sides: list, x: torch.Tensor, sigma: torch.Tensor):
        """predict_sides(model_denoiser, sides, x, sigma) over the windows, fused."""
        dim, num_frames = self.settings.dim, x.shape[self.settings.dim]
        windows = self.windows(num_frames, sigma)
        weights = normalised_weights(windows, self.settings.fuse_method, num_frames, self.settings.overlap)
        parts = []
        for window in windows:
            index = torch.tensor(window, device=x.device)
            sub_sigma = sigma
            if dim == 0 and sigma.ndim == 1 and sigma.shape[0] == num_frames:
                sub_sigma = sigma.index_select(0, index.to(sigma.device))
            sub_sides = [None if side is None else [self._cut_cond(c, window, x) for c in side] for side in sides]
            token = control_window.set((tuple(window), num_frames)) if self.settings.window_controls else None
            batch_token = batch_window.set((tuple(window), num_frames)) if dim == 0 else None
            try:
                parts.append(predict_sides(self._cut_denoiser(model_denoiser, index, x), sub_sides,
                                           x.index_select(dim, index), sub_sigma))
            finally:
                if batch_token is not None:
                    batch_window.reset(batch_token)
                if token is not None:
                    control_window.reset(token)
        return [fuse([p[k] for p in parts], windows, weights, dim, x) for k in range(len(sides))]

    def _cut_denoiser(self, model_denoiser, index: torch.Tensor, x: torch.Tensor):
        cut = copy.copy(model_denoiser)
        cut.context_windows = None
        mask = getattr(model_denoiser, "timestep_mask", None)  # LTX-Video's per-token sigma
        if mask is not None:
            cut.timestep_mask = _take(mask, self.settings.dim, index, x.shape[self.settings.dim])
        return cut

    def _cut_cond(self, cond, window: list[int], x: torch.Tensor):
        key = (id(cond), tuple(window))
        if key not in self._cut:
            self._cut[key] = (cond, cut_cond(cond, self.settings.dim, window, x.shape))  # holds cond: ids stay unique
        return self._cut[key][1]


def _take(t, dim: int, index: torch.Tensor, size: int):
    """t cut to the window along dim where it has the latent's size there, else unchanged."""
    if not torch.is_tensor(t) or t.ndim <= dim or t.shape[dim] != size:
        return t
    return t.index_select(dim, index.to(t.device))


def _animate_window(cond, window: list[int], size: int) -> dict:
    """Wan Animate's driving videos for a window of latent frames, as ComfyUI's WAN22_Animate cuts them:
    they start at the second latent frame (the first is the reference image's), so the window's first
    frame gets none and latent frame i takes pose frame i - 1 and face frames 4 (i - 1) to 4 i - 1.
    A pose latent of another length than the video's, or a window left empty, is passed whole."""
    out = {}
    frames = [i - 1 for i in window[1:] if i >= 1]
    if not frames:
        return out
    pose, faces = cond.pose_latents, cond.face_pixels
    if pose is not None and pose.shape[2] == size - 1:
        out["pose_latents"] = pose[:, :, frames]
    if faces is not None:
        picked = [4 * i + k for i in frames for k in range(4) if 4 * i + k < faces.shape[2]]
        if picked:
            out["face_pixels"] = faces[:, :, picked]
    return out


def cut_cond(cond, dim: int, window: list[int], x_shape: tuple):
    """A conditioning entry (guidance.Cond) for the window's cut of a latent of shape x_shape."""
    size = x_shape[dim]
    index = torch.tensor(window)
    if dim >= 2 and cond.keyframe_positions is not None:
        raise ValueError("context windows over frames can't place LTXVAddGuide's appended guide frames (their "
                         "positions are the whole video's); sample without the context windows node or without "
                         "the guides")
    changes = {"concat": _take(cond.concat, dim, index, size)}
    if cond.vace_context is not None:  # Wan VACE's [B, N, C, T, h, w]: the input axis after the batch
        changes["vace_context"] = _take(cond.vace_context, dim if dim == 0 else dim + 1, index, size)
    if dim != 2 and cond.time_dim_concat is not None:  # Phantom's subject frames: whole in every time window
        changes["time_dim_concat"] = _take(cond.time_dim_concat, dim, index, size)
    if cond.camera_conditions is not None:  # Wan camera rays [B, 24, T, 8h, 8w]: pixel-sized, cut in batch or time
        if dim > 2:
            raise ValueError("context windows over rows or columns can't cut WanCameraImageToVideo's camera "
                             "conditions (pixel-sized rays); use windows over frames or the batch")
        changes["camera_conditions"] = _take(cond.camera_conditions, dim, index, size)
    if dim > 2 and (cond.pose_latents is not None or cond.face_pixels is not None):
        raise ValueError("context windows over rows or columns can't cut WanAnimateToVideo's pose and face videos; "
                         "use windows over frames or the batch")
    if dim == 2:
        changes.update(_animate_window(cond, window, size))
    if dim >= 2 and cond.area is not None:
        # an area spanning the whole windowed dim (an image area on a video: every frame) spans each
        # window whole; one inside it would have to be cut and its fade moved with each window
        n, i = len(cond.area) // 2, dim - 2
        if cond.area[n + i] != 0 or cond.area[i] < size:
            raise ValueError(f"context windows over dim {dim} can't cut a conditioning area that covers part of "
                             f"that dim ({cond.area}: ConditioningSetArea*, mask bounds); use an area over all of "
                             f"it, dim 0 or no area")
        changes["area"] = cond.area[:i] + (len(window),) + cond.area[i + 1:]
    if cond.mask is not None:  # [b, h, w] / video [b, T, h, w]: the latent's dims without the channels
        changes["mask"] = _take(cond.mask, dim if dim == 0 else dim - 1, index, size)
    if dim == 0:  # one row per latent row
        for name in ("context", "y", "guidance", "control_context", "attention_mask", "text_mask", "prior", "clip_fea",
                     "pose_latents", "face_pixels"):  # (the last two: Wan Animate's driving videos)
            changes[name] = _take(getattr(cond, name), 0, index, size)
        changes["references"] = tuple(_take(r, 0, index, size) for r in cond.references)
        if cond.video_frames is not None:  # SVD: the window is the video
            changes["video_frames"] = len(window)
    return replace(cond, **changes)
