"""Step caching: skip the diffusion model at steps where its input changed little, reusing the last
computed step's output-minus-input difference (ComfyUI's EasyCache and LazyCache nodes).

EasyCache (Zhou et al. 2025, "Less is Enough: Training-Free Video Diffusion Acceleration via
Runtime-Adaptive Caching") wraps the network call (the c_in-scaled input -> eps / v / velocity):
  - at each computed step it records the input x and output o (the first conditioning entry's
    rows, subsampled 8x in the last two dims) and the output's mean magnitude |o| (over the whole
    call: every entry batched into it, as ComfyUI's);
  - between two computed steps the transformation rate k = mean|o - o_prev| / mean|x - x_prev|;
  - at a later step the output change is estimated as k * mean|x - x_prev| / |o_prev| (x_prev:
    the last COMPUTED step's input, as ComfyUI's), added to an accumulated change; while that
    stays below reuse_threshold the step is skipped and the output is x + (o - x) of the last
    computed step; once it does not, the step is computed and the sum restarts from 0;
  - the difference o - x is cached per conditioning entry (its rows of the batch), so skipping
    works whether cond and uncond run batched in one call or split into several; the first
    entry of the first call inside the window leads: its calls decide, the other calls of the
    same step follow them.
  So the earliest skip is the third step inside the window (x_prev, then k are needed first).
LazyCache (ComfyUI's simpler variant) does the same on the guided prediction: the whole CFG
result D(x; sigma) against the sampler's x, one difference for the whole batch, judged on the
whole batch; it records x and D before the window too (k only inside it), so it can skip from
the second step inside the window.

A skipped EasyCache step skips everything the network call does (ControlNets, GLIGEN included).
A skipped LazyCache step calls no post-CFG hook either (as ComfyUI's): the CFG++ samplers then
reuse the last computed step's unconditional prediction.

Differences from ComfyUI: state is fresh for every sampling run and also reset when sigma rises
or the latent's shape changes.

The window: start_percent / end_percent become sigmas by the model's schedule; a call is judged
while end_sigma < sigma <= start_sigma; calls at sigma <= end_sigma run as usual.

Host syncs: whether to skip is data-dependent, so the deciding call reads one small tensor back
from the device (the sigma and the accumulated change together): ONE sync per step while the
node is on the MODEL and sampling has not passed end_percent (the steps before start_percent read
sigma too, to find where the window starts). The calls that follow the decision in the same
step, and every call once sigma passed end_sigma, read nothing. Without the node nothing changes:
the sampling loop stays free of syncs (tests/test_sampling_syncs.py).
"""

import copy
import logging

import torch

log = logging.getLogger(__name__)

SUBSAMPLE = 8  # ComfyUI's: the change rates are measured on every 8th pixel in each direction


def _subsample(t: torch.Tensor) -> torch.Tensor:
    return t[..., ::SUBSAMPLE, ::SUBSAMPLE]


def _mean_abs(t: torch.Tensor) -> torch.Tensor:
    return t.abs().float().mean()


class _Window:
    """The sigma window of a step cache and the run's host bookkeeping."""

    def __init__(self, name: str, threshold: float, start_sigma: float, end_sigma: float, verbose: bool):
        self.name, self.threshold, self.verbose = name, float(threshold), verbose
        self.start_sigma, self.end_sigma = float(start_sigma), float(end_sigma)
        self.last_sigma = None  # the sigma of the last deciding call (host float)
        self.done = False  # sigma passed end_sigma: no more reads until the run ends
        self.skipped = 0
        self.calls = 0

    def read(self, sigma: torch.Tensor, candidate: torch.Tensor | None) -> tuple[float, float | None]:
        """(sigma, accumulated change) on the host: the one sync of a deciding call."""
        s = sigma.reshape(-1)[0].float()
        if candidate is None:
            return float(s), None
        s, c = torch.stack([s.to(candidate.device), candidate.float()]).tolist()
        return s, c

    def end_run(self):
        # the MODEL keeps `last` (in the executor's cache): only the counts outlive the run, not its tensors
        self.reset()


class EasyCacheState(_Window):
    """One sampling run's EasyCache state (see the module docstring)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.reset()

    def reset(self):
        self.leader = None  # the conditioning entry whose call decides (ComfyUI's first_cond_uuid)
        self.started = False  # a step inside the window was judged: the leader is fixed from then on
        self.x_prev = self.o_prev = self.o_norm = None
        self.rate = None  # k, a device tensor
        self.accumulated = 0.0
        self.diffs = {}  # conditioning entry -> its rows of (output - input) at the last computed step
        self.layout = None  # (shape per row, dtype, device) of the cached tensors
        self.step = None  # the UNetRows.sigma of the step the leader judged last, and its verdict
        self.skip_step = False
        self.last_sigma = None

    def __call__(self, run, xc: torch.Tensor, sigma: torch.Tensor, channels: int) -> torch.Tensor:
        from .guidance import unet_rows

        rows = unet_rows.get()
        if rows is None or self.done:  # a call outside guidance, or past the window
            return run(xc)
        keys = tuple(id(c) for c in rows.conds) or (None,)
        size = xc.shape[0] // len(keys)
        x = xc[:, :channels]
        if self.leader is None or (not self.started and self.step is not rows.sigma):
            # before the window each step's first call leads (it reads sigma); the first call inside
            # the window keeps the lead, as ComfyUI's first_cond_uuid (entries may change over the run:
            # ConditioningSetTimestepRange)
            self.leader = keys[0]
        if self.leader not in keys:  # follows the step's decision
            if self.step is rows.sigma and self.skip_step and all(k in self.diffs for k in keys):
                return self._apply(x, keys, size)
            output = run(xc)
            self._record_diffs(output, x, keys, size)
            return output

        lead = slice(keys.index(self.leader) * size, (keys.index(self.leader) + 1) * size)
        x_lead = _subsample(x[lead])
        input_change = candidate = None
        if self.x_prev is not None and self.x_prev.shape == x_lead.shape:
            input_change = _mean_abs(x_lead - self.x_prev)
            if self.rate is not None:
                candidate = self.accumulated + self.rate * input_change / self.o_norm
        s, accumulated = self.read(sigma, candidate)
        layout = (tuple(x.shape[1:]), size, x.dtype, x.device)
        if restarted(self.last_sigma, s, self.layout, layout):
            self.reset()
            self.leader, input_change, accumulated = keys[0], None, None
            lead = slice(0, size)
            x_lead = _subsample(x[lead])
        self.layout, self.last_sigma = layout, s
        self.step, self.skip_step = rows.sigma, False
        self.calls += 1
        if s <= self.end_sigma:
            self.done = True
            return run(xc)
        active = s <= self.start_sigma
        self.started = self.started or active
        if active and accumulated is not None:
            if accumulated < self.threshold and all(k in self.diffs for k in keys):
                self.accumulated, self.skip_step = accumulated, True
                self.skipped += 1
                if self.verbose:
                    log.info("%s: skipping the step at sigma %.4g (accumulated change %.4g < %.4g)",
                             self.name, s, accumulated, self.threshold)
                return self._apply(x, keys, size)
            if self.verbose:
                log.info("%s: computing the step at sigma %.4g (accumulated change %.4g)", self.name, s, accumulated)
            self.accumulated = 0.0
        output = run(xc)
        if active:
            o_lead = _subsample(output[lead])
            if self.o_prev is not None and input_change is not None:
                self.rate = _mean_abs(o_lead - self.o_prev) / input_change
            # |o| over the whole call (all its entries' rows, as ComfyUI's), the lead's rows only for the rates
            self.x_prev, self.o_prev, self.o_norm = x_lead.clone(), o_lead.clone(), _mean_abs(output[:, :channels])
        self._record_diffs(output, x, keys, size)
        return output

    def _record_diffs(self, output, x, keys, size):
        diff = output - x.to(output.dtype)
        for k, key in enumerate(keys):
            self.diffs[key] = diff[k * size:(k + 1) * size]

    def _apply(self, x, keys, size):
        return torch.cat([x[k * size:(k + 1) * size] + self.diffs[key] for k, key in enumerate(keys)])


class LazyCacheState(_Window):
    """One sampling run's LazyCache state: the guided prediction D(x; sigma) as x + (D - x) of the
    last computed call while the accumulated estimated change stays below the threshold."""

    def __init__(self, *args):
        super().__init__(*args)
        self.reset()

    def reset(self):
        self.x_prev = self.o_prev = self.o_norm = self.rate = self.diff = None
        self.accumulated = 0.0
        self.layout = None
        self.last_sigma = None

    def __call__(self, predict, x: torch.Tensor, sigma: torch.Tensor, **extra) -> torch.Tensor:
        if self.done:
            return predict(x, sigma, **extra)
        x_sub = _subsample(x)
        input_change = candidate = None
        if self.x_prev is not None and self.x_prev.shape == x_sub.shape:
            input_change = _mean_abs(x_sub - self.x_prev)
            if self.rate is not None:
                candidate = self.accumulated + self.rate * input_change / self.o_norm
        s, accumulated = self.read(sigma, candidate)
        layout = (tuple(x.shape), x.dtype, x.device)
        if restarted(self.last_sigma, s, self.layout, layout):
            self.reset()
            input_change = accumulated = None
        self.layout, self.last_sigma = layout, s
        self.calls += 1
        if s <= self.end_sigma:
            self.done = True
            return predict(x, sigma, **extra)
        active = s <= self.start_sigma
        if active and accumulated is not None:
            if accumulated < self.threshold:
                self.accumulated = accumulated
                self.skipped += 1
                if self.verbose:
                    log.info("%s: skipping the step at sigma %.4g (accumulated change %.4g < %.4g)",
                             self.name, s, accumulated, self.threshold)
                return x + self.diff
            if self.verbose:
                log.info("%s: computing the step at sigma %.4g (accumulated change %.4g)", self.name, s, accumulated)
            self.accumulated = 0.0
        output = predict(x, sigma, **extra)
        o_sub = _subsample(output)
        if active and self.o_prev is not None and input_change is not None:  # k from inside the window only
            self.rate = _mean_abs(o_sub - self.o_prev) / input_change
        self.diff = output - x
        self.x_prev, self.o_prev, self.o_norm = x_sub.clone(), o_sub.clone(), _mean_abs(output)
        return output


class PerRun:
    """A MODEL's per-run wrapper: make() once per sampling run (so no state leaks between runs);
    the last run's state stays readable as `last` (calls, skipped). kind: the wrappers of one kind
    replace each other (block caches: a later one is the one that runs, as ComfyUI's last unet
    function wrapper)."""

    def __init__(self, make, kind: str | None = None):
        self.make, self.kind, self.last = make, kind, None

    def __call__(self):
        self.last = self.make()
        return self.last


def with_per_run(model, slot: str, make, kind: str | None = None):
    """A copy of `model` with PerRun(make) last in its `slot` (network_wrappers, prediction_wrappers),
    an earlier wrapper of the same kind taken out."""
    earlier = tuple(w for w in getattr(model, slot, ()) if kind is None or getattr(w, "kind", None) != kind)
    patched = copy.copy(model)
    setattr(patched, slot, (*earlier, PerRun(make, kind)))
    return patched


def restarted(last_sigma: float | None, sigma: float, last_layout, layout) -> bool:
    """Whether a cache starts again: sigma rose (the sampler restarted) or the input's layout changed."""
    return (last_sigma is not None and sigma > last_sigma) or last_layout not in (None, layout)


def _check(name, threshold, start_percent, end_percent, threshold_name="reuse_threshold",
           percents="start_percent and end_percent"):
    if not 0.0 <= start_percent <= 1.0 or not 0.0 <= end_percent <= 1.0:
        raise ValueError(f"{name}: {percents} must lie in [0, 1], got {start_percent} and {end_percent}")
    if threshold is not None and threshold < 0:
        raise ValueError(f"{name}: {threshold_name} must be at least 0, got {threshold}")


def with_easycache(model, reuse_threshold: float = 0.2, start_percent: float = 0.15, end_percent: float = 0.95,
                   verbose: bool = False):
    """A copy of `model` whose network calls go through EasyCache (the input is not changed)."""
    return _with_cache(model, EasyCacheState, "EasyCache", "network_wrappers", reuse_threshold, start_percent,
                       end_percent, verbose)


def with_lazycache(model, reuse_threshold: float = 0.2, start_percent: float = 0.15, end_percent: float = 0.95,
                   verbose: bool = False):
    """A copy of `model` whose guided predictions go through LazyCache (the input is not changed)."""
    return _with_cache(model, LazyCacheState, "LazyCache", "prediction_wrappers", reuse_threshold, start_percent,
                       end_percent, verbose)


def _with_cache(model, state, name: str, slot: str, reuse_threshold, start_percent, end_percent, verbose):
    from .flow_sampling import model_sampling_for

    _check(name, reuse_threshold, start_percent, end_percent)
    schedule = model_sampling_for(model)
    start_sigma, end_sigma = schedule.percent_to_sigma(start_percent), schedule.percent_to_sigma(end_percent)
    return with_per_run(model, slot, lambda: state(name, reuse_threshold, start_sigma, end_sigma, verbose))


def wrapped_network(wrappers, run, xc: torch.Tensor, sigma: torch.Tensor, channels: int, **tiles) -> torch.Tensor:
    """run(xc) -> the network's output, through a denoiser's per-run network wrappers (first applied
    outermost). A tiling wrapper (TiledDiffusion) calls run(xc, regions=..., shift=...) with its
    tiles stacked in xc, so run cuts what else is spatial (ControlNet hints) to them: a wrapper
    inside it would see tiles as if they were the picture, so none may follow it."""
    if not wrappers:
        return run(xc, **tiles)
    if tiles:
        raise ValueError("a network wrapper (EasyCache, ...) applied after TiledDiffusion would see its tiles as "
                         "whole pictures: apply TiledDiffusion last")
    first, rest = wrappers[0], wrappers[1:]
    if getattr(first, "inside_network", False) and any(getattr(w, "tiles_network", False) for w in rest):
        # its one state would take each tile for the next step of the same picture
        raise ValueError(f"a block cache ({first.name}) applied before TiledDiffusion would compare one tile with "
                         "another: use one or the other")
    return first(lambda xc_, **tiles_: wrapped_network(rest, run, xc_, sigma, channels, **tiles_), xc, sigma, channels)


class WrappedDenoiser:
    """A guided denoiser D(x; sigma) through a MODEL's per-run prediction wrappers (LazyCache)."""

    def __init__(self, denoiser, wrapper):
        self.denoiser, self.wrapper = denoiser, wrapper

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra) -> torch.Tensor:
        return self.wrapper(self.denoiser, x, sigma, **extra)
