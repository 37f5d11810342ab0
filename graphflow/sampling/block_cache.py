"""Block caches: skip a model's transformer blocks at steps where their input changed little, adding
the residual (blocks' output minus their input) of the last step that ran them. They work inside the
network call, through graphflow.models.block_runner; the embeddings and the output head always run.

TeaCache (Liu et al. 2024, "Timestep Embedding Tells: It's Time to Cache for Video Diffusion
Model"), as welltop-cn/ComfyUI-TeaCache's nodes.py (3657f7f5) does it: at each call, with m_t the
model type's probe (FLUX: the first double block's modulated image input, (1 + scale1) *
img_norm1(img) + shift1; Wan 2.1: the time embedding e, or in the "ret_mode" types its six-way
projection e0; HiDream: the timestep embedding; LTX-Video: the first block's attention input,
rms_norm(x) * (1 + scale_msa) + shift_msa, its residual taken after the output norm and modulation),

    d_t   = mean|m_t - m_{t-1}| / mean|m_{t-1}|         (relative L1 change since the previous call)
    acc  += poly(d_t)                                    (poly: the model type's rescaling polynomial,
                                                          coefficients highest power first)
    acc < rel_l1_thresh  ->  skip: img + residual        (residual of the last computed call)
    otherwise            ->  run the blocks, store residual = img_out - img_in, acc = 0

Precision: the pack evaluates the mean, the polynomial and the running sum as tensors in the
model's dtype (bf16 for FLUX and Wan in ComfyUI); graphflow takes the means in float32 and keeps
the sum as a Python float, so a sum within a bf16 rounding of rel_l1_thresh may decide the other
way than in the pack. The first call of a run (no m_{t-1}) computes. m_{t-1} is the previous call's, computed or not.
FLUX keeps one sum for the whole call (cond and uncond batched together), as the pack; Wan,
HiDream and LTX-Video (the pack's "is_cfg" families) one per conditioning entry of the call, on its
rows: the blocks run when any entry's rule says so, and each entry gets its own residual.
Outside [start_percent, end_percent] every call computes, but acc still accumulates as in the pack.
The percent is the step's place in the run's sigmas: index / (steps), the index of the sigma in
them (or of the interval that holds it), as the pack reads sample_sigmas. One difference: under
KSamplerAdvanced graphflow counts in its whole schedule (the sigmas a network wrapper's start_run
gets), where ComfyUI's sample_sigmas hold only the steps it runs.

First Block Cache (chengzeyi/Comfy-WaveSpeed first_block_cache.py 3ac0d83d, fbcache_nodes.py
04f882b9): run the first block; p_t its probe (FLUX: the image tokens after the first double
block; UNet: input block 1's residual; LTX-Video, through the pack's generic CachedTransformerBlocks
swapped in for `transformer_blocks`: the first block's residual, the cached residual the hidden
states' alone, taken before the output norm; SD3, its `joint_blocks` swapped: the first joint
block's own image-token residual, before any ControlNet residual, the image tokens' residual
cached), and p_prev the probe of the last COMPUTED step:

    mean|p_prev - p_t| / mean|p_prev| < residual_diff_threshold   ->  skip the other blocks:
        hidden after the first block + the cached residual of the other blocks
    otherwise: store p_t, run the other blocks, cache their residual (output - input)

and a skip also needs end_sigma <= sigma <= start_sigma (start / end as percents of the model's
sigma range) and fewer than max_consecutive_cache_hits skips in a row (-1: no limit). Calls at the
same sigma as the previous one (cond and uncond split) are the step's later calls: each has its own
cached tensors and skips only if the step's first call did (and its shapes match).

State is fresh for every sampling run (a network wrapper's per-run state) and its tensors are let
go when the run ends (end_run: the MODEL keeps only the counts in `last`); First Block Cache's is
also reset, as the pack's, when sigma rises or the input's shape past the batch, dtype or device
changes. A stack that changes size inside First Block Cache's span (Deep Shrink at input block 0
or 1) has no residual to add: those calls compute. Each deciding call reads one number back from
the device (a host sync), as the packs; under torch.compile the decision and the bookkeeping run
outside the graph (torch.compiler.disable, as WaveSpeed's), so the graphs of skipping and of
computing are made once, not recompiled each step.

One block cache per MODEL: a later one replaces an earlier (ComfyUI runs only the last unet
function wrapper). Before TiledDiffusion one is refused: its state would take each tile for the
next step of the same picture.
"""

from __future__ import annotations

import torch

from graphflow.models.block_runner import block_runner

from .step_cache import _check, restarted, with_per_run

# welltop-cn/ComfyUI-TeaCache nodes.py (3657f7f566481dafd1a4797d792649270b9abc85) SUPPORTED_MODELS_COEFFICIENTS:
# the rescaling polynomial's coefficients per model_type, highest power first
TEACACHE_COEFFICIENTS = {
    "flux": (4.98651651e+02, -2.83781631e+02, 5.58554382e+01, -3.82021401e+00, 2.64230861e-01),
    "ltxv": (2.14700694e+01, -1.28016453e+01, 2.31279151e+00, 7.92487521e-01, 9.69274326e-03),
    "hunyuan_video": (7.33226126e+02, -4.01131952e+02, 6.75869174e+01, -3.14987800e+00, 9.61237896e-02),
    "hidream_i1_full": (-3.13605009e+04, -7.12425503e+02, 4.91363285e+01, 8.26515490e+00, 1.08053901e-01),
    "wan2.1_t2v_1.3B": (2.39676752e+03, -1.31110545e+03, 2.01331979e+02, -8.29855975e+00, 1.37887774e-01),
    "wan2.1_t2v_14B": (-5784.54975374, 5449.50911966, -1811.16591783, 256.27178429, -13.02252404),
    "wan2.1_i2v_480p_14B": (-3.02331670e+02, 2.23948934e+02, -5.25463970e+01, 5.87348440e+00, -2.01973289e-01),
    "wan2.1_i2v_720p_14B": (-114.36346466, 65.26524496, -18.82220707, 4.91518089, -0.23412683),
    "wan2.1_t2v_1.3B_ret_mode": (-5.21862437e+04, 9.23041404e+03, -5.28275948e+02, 1.36987616e+01, -4.99875664e-02),
    "wan2.1_t2v_14B_ret_mode": (-3.03318725e+05, 4.90537029e+04, -2.65530556e+03, 5.87365115e+01, -3.15583525e-01),
    "wan2.1_i2v_480p_14B_ret_mode": (2.57151496e+05, -3.54229917e+04, 1.40286849e+03, -1.35890334e+01,
                                     1.32517977e-01),
    "wan2.1_i2v_720p_14B_ret_mode": (8.10705460e+03, 2.13393892e+03, -3.72934672e+02, 1.66203073e+01,
                                     -4.17769401e-02),
}
# the model_types graphflow's block hook is built for, and the MODEL arch each needs
TEACACHE_ARCHS = {"flux": "flux", "hidream_i1_full": "hidream", "ltxv": "ltxv",
                  **{t: "wan" for t in TEACACHE_COEFFICIENTS if t.startswith("wan2.1")}}
# the pack's "is_cfg" path, every family it caches but FLUX: a state per conditioning entry (cond,
# uncond) of a batched call
PER_ENTRY_ARCHS = frozenset(TEACACHE_ARCHS.values()) - {"flux"}


def poly(coefficients, x):
    """sum_i c_i x^(n - 1 - i): numpy.polyval's order."""
    out = torch.zeros_like(x)
    for c in coefficients:
        out = out * x + c
    return out


def relative_l1(current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """mean|current - previous| / mean|previous|."""
    return (current - previous).abs().float().mean() / previous.abs().float().mean()


def step_index(sigmas: torch.Tensor, sigma: float) -> int:
    """The step a sigma belongs to in the run's sigmas, as the TeaCache pack finds it: the index of
    an equal sigma, else of the first interval holding it, else 0."""
    sigmas = sigmas.float().cpu()
    equal = (sigmas == sigma).nonzero()
    if len(equal):
        return int(equal[0])
    for i in range(len(sigmas) - 1):
        if (sigmas[i] - sigma) * (sigmas[i + 1] - sigma) <= 0:
            return i
    return 0


def _parts(per_entry: bool) -> list[tuple]:
    """(state key, rows) of this call: one part per conditioning entry batched into it (the pack's
    cond_or_uncond for Wan), or one for the whole call, keyed by its entries (the pack's FLUX keeps
    one state for every call; batched, that is the same, and split calls keep theirs apart)."""
    from .guidance import unet_rows
    rows = unet_rows.get()
    keys = tuple(id(c) for c in rows.conds) if rows is not None and rows.conds else (None,)
    if not per_entry:
        return [(keys, slice(None))]
    return [(key, k) for k, key in enumerate(keys)]


class TeaCacheState:
    """One sampling run's TeaCache (see the module docstring); `computed` / `skipped` count calls."""

    name = "TeaCache"
    inside_network = True  # its state is one picture's: a tiling wrapper inside it is refused

    def __init__(self, coefficients, threshold, start_percent, end_percent, cache_device, per_entry, ret_mode):
        self.coefficients, self.threshold = coefficients, threshold
        self.start_percent, self.end_percent, self.cache_device = start_percent, end_percent, cache_device
        self.per_entry, self.ret_mode = per_entry, ret_mode
        self.sigmas = None
        self.states = {}
        self.parts, self.enabled, self.rows, self.current = None, True, [], []  # the current call's
        self.computed = self.skipped = 0

    def start_run(self, sigmas):
        self.sigmas = sigmas

    def end_run(self):
        # the MODEL keeps `last` (in the executor's cache): no hidden states past the run
        self.states, self.current, self.sigmas = {}, [], None

    def __call__(self, run, xc, sigma, channels):
        s = float(sigma.reshape(-1)[0])
        self.enabled = True
        if self.sigmas is not None and len(self.sigmas) > 1:
            self.enabled = self.start_percent <= step_index(self.sigmas, s) / (len(self.sigmas) - 1) <= self.end_percent
        self.parts = _parts(self.per_entry)
        with block_runner(self._blocks):
            return run(xc)

    def _blocks(self, stack):
        hidden = stack.hidden
        residual = self._cached(stack.modulated(self.ret_mode), hidden)
        if residual is not None:
            return hidden + residual
        out = stack.all()
        self._store(out, hidden)
        return out

    # The decision and the bookkeeping run outside torch.compile (as WaveSpeed's get_can_use_cache and
    # set_buffer): traced, their host numbers and dicts would be guarded on and recompiled every step.
    @torch.compiler.disable
    def _cached(self, probe, hidden):
        """The residual to add to `hidden` when this call skips, else None."""
        size = hidden.shape[0] // (len(self.parts) if self.per_entry else 1)
        self.rows = [slice(None) if isinstance(k, slice) else slice(k * size, (k + 1) * size) for _, k in self.parts]
        self.current = [self.states.setdefault(key, {"acc": 0.0, "previous": None, "residual": None, "compute": True})
                        for key, _ in self.parts]
        for state, r in zip(self.current, self.rows):
            self._update(state, probe[r])
        residuals = [state["residual"] for state in self.current]
        if (self.enabled and not any(state["compute"] for state in self.current)
                and all(res is not None and res.shape == hidden[r].shape for res, r in zip(residuals, self.rows))):
            self.skipped += 1
            return torch.cat([res.to(hidden.device) for res in residuals])
        self.computed += 1
        return None

    def _update(self, state, probe):
        previous, state["previous"] = state["previous"], probe
        if previous is None:
            return  # the first call computes (compute starts True)
        if previous.shape == probe.shape:
            state["acc"] += float(poly(self.coefficients, relative_l1(probe, previous)))
            state["compute"] = not state["acc"] < self.threshold
        else:
            state["compute"] = True
        if state["compute"]:
            state["acc"] = 0.0

    @torch.compiler.disable
    def _store(self, out, hidden):
        for state, r in zip(self.current, self.rows):
            state["residual"] = (out[r] - hidden[r]).to(self.cache_device or out.device)


class FirstBlockCacheState:
    """One sampling run's First Block Cache (see the module docstring)."""

    name = "First Block Cache"
    inside_network = True

    def __init__(self, threshold, start_sigma, end_sigma, max_hits):
        self.threshold, self.start_sigma, self.end_sigma, self.max_hits = threshold, start_sigma, end_sigma, max_hits
        self.last_sigma, self.layout, self.sequence, self.hits, self.use_cache = None, None, 0, 0, False
        self.sigma = None  # the current call's
        self.buffers = {}  # sequence number -> {"probe", "residual"}
        self.computed = self.skipped = 0

    def end_run(self):
        self.buffers = {}

    def __call__(self, run, xc, sigma, channels):
        s = float(sigma.reshape(-1)[0])
        layout = (tuple(xc.shape[1:]), xc.dtype, xc.device)  # the pack's reset keys, the batch size aside
        if restarted(self.last_sigma, s, self.layout, layout):
            self.buffers, self.sequence, self.hits = {}, 0, 0
        elif s == self.last_sigma:
            self.sequence += 1  # the step's next call (cond and uncond split)
        else:
            self.sequence = 0
        self.last_sigma, self.layout, self.sigma = s, layout, s
        with block_runner(self._blocks):
            return run(xc)

    def _blocks(self, stack):
        after_first, probe = stack.first()
        residual = self._cached(after_first, probe)
        tail = getattr(stack, "tail", None)  # the residual stops before it (block_runner's docstring)
        if residual is not None:
            return after_first + residual if tail is None else tail(after_first + residual)
        out = stack.rest() if tail is None else stack.rest(tail=False)
        self._store(out, after_first)
        return out if tail is None else tail(out)

    @torch.compiler.disable  # as TeaCacheState._cached
    def _cached(self, after_first, probe):
        """The residual to add to `after_first` when this call skips, else None (the probe kept)."""
        cached = self.buffers.setdefault(self.sequence, {})
        previous = cached.get("probe")
        use = False
        if previous is not None:  # without one the pack decides nothing (hits unchanged)
            similar = previous.shape == probe.shape
            if self.sequence > 0:
                self.use_cache = self.use_cache and similar  # follows the step's first call
            else:
                similar = similar and float(relative_l1(probe, previous)) < self.threshold
                similar = similar and self.end_sigma <= self.sigma <= self.start_sigma
                similar = similar and (self.max_hits < 0 or self.hits < self.max_hits)
                self.hits = self.hits + 1 if similar else 0
                self.use_cache = similar
            use = self.use_cache
        residual = cached.get("residual")
        if use and residual is not None and residual.shape == after_first.shape:
            self.skipped += 1
            return residual
        self.computed += 1
        cached["probe"] = probe
        return None

    @torch.compiler.disable
    def _store(self, out, after_first):
        cached = self.buffers[self.sequence]
        # a stack that changes the size inside it (Deep Shrink at input block 0 or 1) has no residual
        # to add: its calls always compute
        cached["residual"] = out - after_first if out.shape == after_first.shape else None


BLOCK_CACHE = "block cache"  # the PerRun kind: a later block cache replaces an earlier one


def with_teacache(model, model_type: str, rel_l1_thresh: float, start_percent: float = 0.0,
                  end_percent: float = 1.0, cache_device: str | None = None):
    """A copy of `model` whose blocks go through TeaCache with `model_type`'s polynomial
    (TEACACHE_COEFFICIENTS; the types in TEACACHE_ARCHS are built); rel_l1_thresh 0 returns the
    model itself, as the pack does. It replaces a block cache the model had."""
    if model_type not in TEACACHE_ARCHS:
        raise ValueError(f"TeaCache: model_type {model_type!r} is not built in graphflow; built: "
                         f"{', '.join(TEACACHE_ARCHS)}")
    _check("TeaCache", None, start_percent, end_percent)  # any threshold: the ret_mode polynomials go below 0
    if start_percent > end_percent:  # the pack takes it and never skips
        raise ValueError(f"TeaCache: start_percent {start_percent} is after end_percent {end_percent}")
    if rel_l1_thresh == 0:
        return model
    coefficients = TEACACHE_COEFFICIENTS[model_type]
    per_entry, ret_mode = TEACACHE_ARCHS[model_type] in PER_ENTRY_ARCHS, model_type.endswith("_ret_mode")
    return with_per_run(model, "network_wrappers",
                        lambda: TeaCacheState(coefficients, rel_l1_thresh, start_percent, end_percent, cache_device,
                                              per_entry, ret_mode), BLOCK_CACHE)


def with_first_block_cache(model, residual_diff_threshold: float, start: float = 0.0, end: float = 1.0,
                           max_consecutive_cache_hits: int = -1):
    """A copy of `model` whose blocks go through First Block Cache; threshold 0 or
    max_consecutive_cache_hits 0 return the model itself, as the pack does. It replaces a block
    cache the model had."""
    from .flow_sampling import model_sampling_for

    _check("First Block Cache", residual_diff_threshold, start, end, "residual_diff_threshold", "start and end")
    if start > end:  # the pack takes it and never skips
        raise ValueError(f"First Block Cache: start {start} is after end {end}")
    if max_consecutive_cache_hits < -1:
        raise ValueError(f"First Block Cache: max_consecutive_cache_hits must be -1 (no limit) or more, got "
                         f"{max_consecutive_cache_hits}")
    if residual_diff_threshold == 0 or max_consecutive_cache_hits == 0:
        return model
    schedule = model_sampling_for(model)
    start_sigma, end_sigma = schedule.percent_to_sigma(start), schedule.percent_to_sigma(end)
    return with_per_run(model, "network_wrappers",
                        lambda: FirstBlockCacheState(residual_diff_threshold, start_sigma, end_sigma,
                                                     max_consecutive_cache_hits), BLOCK_CACHE)
