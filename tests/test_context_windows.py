"""Context windows (ContextWindowsManual, WanContextWindowsManual; graphflow.sampling.context_windows).

Window lists are checked against lists worked out by hand from the schedules' rules (the module
docstring), fuse weights against their closed forms; a model that is pointwise along the windowed
dim must give the same result windowed as whole; a latent no longer than the window must sample
bit-identically; a tiny LTX-Video's windows without overlap sample as separate videos, and it
samples with both nodes in a ComfyUI graph; a tiny SVD is windowed over its frames (the batch)."""

import copy
import json

import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.sampling.context_windows import (ContextWindows, context_windows, cut_cond, fuse_weights,
                                                normalised_weights, ordered_halving, with_context_windows)
from graphflow.sampling.guidance import Cond, predict_sides
from tests.sampling_fakes import FakeModel, gaussian_eps, prompt
from tests.test_nodes_image_mask import call

SCHEDULES = ("standard_static", "standard_uniform", "looped_uniform", "batched")
FUSES = ("pyramid", "relative", "flat", "overlap-linear")


# --- window lists -------------------------------------------------------------------------------

def r(a, b):
    return list(range(a, b))


def test_ordered_halving_is_the_bit_reversed_step():
    assert [ordered_halving(s) for s in range(8)] == [0, 1 / 2, 1 / 4, 3 / 4, 1 / 8, 5 / 8, 3 / 8, 7 / 8]


def test_standard_static_and_batched_windows():
    # every length - overlap = 3 frames a window; the one reaching the end is moved back to end there
    assert context_windows(10, 4, 1, "standard_static") == [r(0, 4), r(3, 7), r(6, 10)]
    assert context_windows(11, 4, 1, "standard_static") == [r(0, 4), r(3, 7), r(6, 10), r(7, 11)]
    assert context_windows(20, 8, 2, "standard_static", step=5) == [r(0, 8), r(6, 14), r(12, 20)]
    assert context_windows(10, 4, 1, "batched") == [r(0, 4), r(4, 8), [8, 9]]
    assert context_windows(8, 4, 3, "batched") == [r(0, 4), r(4, 8)]  # no overlap in batches
    for schedule in SCHEDULES:  # short enough: one window of everything
        assert context_windows(4, 4, 1, schedule, step=3) == [r(0, 4)]


def test_looped_uniform_windows_move_with_the_step_and_wrap():
    # 10 frames, length 4, overlap 1: starts every 3 from pad = round(10 * ordered_halving(step)),
    # up to 10 + pad - overlap (closed loop: 10 + pad)
    assert context_windows(10, 4, 1, "looped_uniform", step=0) == [r(0, 4), r(3, 7), r(6, 10)]
    assert context_windows(10, 4, 1, "looped_uniform", closed_loop=True, step=0) == \
        [r(0, 4), r(3, 7), r(6, 10), [9, 0, 1, 2]]
    # step 1: pad 5, starts 5, 8, 11
    assert context_windows(10, 4, 1, "looped_uniform", step=1) == [[5, 6, 7, 8], [8, 9, 0, 1], [1, 2, 3, 4]]
    assert context_windows(10, 4, 1, "looped_uniform", closed_loop=True, step=1) == \
        [[5, 6, 7, 8], [8, 9, 0, 1], [1, 2, 3, 4], [4, 5, 6, 7]]
    # step 2: 10 * 1/4 = 2.5 rounds half to even (Python's round, as ComfyUI): pad 2
    assert context_windows(10, 4, 1, "looped_uniform", step=2) == [[2, 3, 4, 5], [5, 6, 7, 8], [8, 9, 0, 1]]
    # stride 2 (at most ceil(log2(20 / 8)) + 1 = 3 spacings): spacing 2 starts every 8 * 2 - 2 = 14
    assert context_windows(20, 8, 2, "looped_uniform", stride=2, step=0) == \
        [r(0, 8), r(6, 14), r(12, 20), r(0, 16)[::2], [14, 16, 18, 0, 2, 4, 6, 8]]
    # step 1 with spacing 2: offset int(1/2 * 2) = 1 more, pad 10
    assert context_windows(20, 8, 2, "looped_uniform", stride=2, step=1)[3:] == \
        [[11, 13, 15, 17, 19, 1, 3, 5], r(5, 20)[::2]]


def test_standard_uniform_windows_shift_wrapping_ones_to_the_end():
    # step 1 from the looped [5..8], [8, 9, 0, 1], [1..4]: the wrapping window ends at 9 instead,
    # and as the next one lacks frame 0 (where it wrapped) a window from 0 is inserted
    assert context_windows(10, 4, 1, "standard_uniform", step=1) == [[5, 6, 7, 8], r(6, 10), r(0, 4), r(1, 5)]
    # overlap 2, step 1: looped [5..8], [7, 8, 9, 0], [9, 0, 1, 2], [1..4]; both wrapping ones become
    # [6..9] (the second dropped as a repeat), before [1..4] the window from 0 is inserted
    assert context_windows(10, 4, 2, "standard_uniform", step=1) == [[5, 6, 7, 8], r(6, 10), r(0, 4), r(1, 5)]
    # stride 2: the spacing-2 window [14, 16, .., 8] shifted to end at 19
    assert context_windows(20, 8, 2, "standard_uniform", stride=2, step=0) == \
        [r(0, 8), r(6, 14), r(12, 20), r(0, 16)[::2], r(5, 20)[::2]]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_covers_every_frame_with_whole_windows(schedule):
    for frames in (5, 9, 16, 17, 33):
        for length, overlap in ((4, 1), (4, 3), (8, 2), (3, 0)):
            for step in range(5):
                windows = context_windows(frames, length, overlap, schedule, stride=3, closed_loop=step % 2,
                                          step=step)
                assert sorted({f for w in windows for f in w}) == r(0, frames), (frames, length, step)
                assert all(0 <= f < frames for w in windows for f in w)
                full = windows if schedule != "batched" else windows[:-1]
                assert all(len(w) == min(length, frames) for w in full)
                if schedule == "standard_uniform":  # no window wraps, none repeats
                    assert all(w == sorted(w) for w in windows)
                    assert len({tuple(w) for w in windows}) == len(windows)


def test_overlap_must_be_below_the_length():
    with pytest.raises(ValueError, match="overlap"):
        context_windows(10, 4, 4, "standard_static")


# --- fuse weights -------------------------------------------------------------------------------

def test_fuse_weights_closed_forms():
    assert fuse_weights("flat", r(3, 7), 10) == [1.0] * 4
    assert fuse_weights("pyramid", r(0, 5), 10) == [1, 2, 3, 2, 1]
    assert fuse_weights("pyramid", r(0, 4), 10) == [1, 2, 2, 1]
    half = (6 - 3 + 0.01) / 2  # relative: 1 - |i - centre| / half-span, at least 0.01
    assert 1 - 1.5 / half < 0.01  # the ends get the floor
    assert fuse_weights("relative", r(3, 7), 10) == pytest.approx([0.01, 1 - 0.5 / half, 1 - 0.5 / half, 0.01])
    half = (7 - 3 + 0.01) / 2
    assert fuse_weights("relative", r(3, 8), 10) == pytest.approx([0.01, 1 - 1 / half, 1.0, 1 - 1 / half, 0.01])
    assert fuse_weights("relative", [9, 0, 1], 10) == fuse_weights("relative", [9, 10, 11], 12)  # wrapped: N + i
    assert fuse_weights("relative", [4], 10) == [1.0]
    assert fuse_weights("relative", r(0, 9), 10)[0] == 0.01
    # overlap-linear: ramps over the overlap, not at the video's ends
    assert fuse_weights("overlap-linear", r(3, 9), 10, 2) == [1e-37, 1.0, 1.0, 1.0, 1.0, 1e-37]
    assert fuse_weights("overlap-linear", r(0, 6), 10, 3) == [1.0, 1.0, 1.0, 1.0, 0.5, 1e-37]
    assert fuse_weights("overlap-linear", r(4, 10), 10, 3) == pytest.approx([1e-37, 0.5, 1.0, 1.0, 1.0, 1.0])
    assert fuse_weights("overlap-linear", r(4, 8), 10, 0) == [1.0] * 4


def test_normalised_weights_sum_to_one_per_frame():
    for method in FUSES:
        windows = context_windows(17, 5, 2, "looped_uniform", stride=2, closed_loop=True, step=3)
        weights = normalised_weights(windows, method, 17, 2)
        totals = [0.0] * 17
        for w, ws in zip(windows, weights):
            for f, x in zip(w, ws):
                totals[f] += x
        assert totals == pytest.approx([1.0] * 17, abs=1e-12)


# --- a pointwise model: windows change nothing ---------------------------------------------------

def _sample(model, frames_dim_latent):
    from graphflow.sampling.pipeline import sample
    return sample(model, 1, 4, 3.0, "euler", "normal", prompt(1.0), prompt(0.0),
                  {"samples": frames_dim_latent})["samples"]


@pytest.mark.parametrize("fuse", FUSES)
@pytest.mark.parametrize("dim", [0, 2])
def test_pointwise_model_windowed_equals_whole(fuse, dim):
    """The Gaussian-data model is exact per latent position, so every schedule's fused windows give
    the whole latent's prediction; the model only ever sees windows of at most the length."""
    model = FakeModel(gaussian_eps(0.5, 0.8))
    latent = torch.randn(7, 4, 6, 3, generator=torch.Generator().manual_seed(0))
    whole = _sample(model, latent)
    for schedule in SCHEDULES:
        model.unet.calls.clear()
        windowed = _sample(with_context_windows(model, ContextWindows(3, 1, schedule, 2, True, fuse, dim)), latent)
        assert torch.allclose(windowed, whole, rtol=1e-5, atol=1e-5), schedule
        rows = 2 if dim == 0 else 1  # the positive and negative windows in one batch
        assert model.unet.calls and all(c["x"].shape[dim] <= 3 * rows for c in model.unet.calls)


@pytest.mark.parametrize("sampler, steps", [("euler", [0, 1, 2, 3]), ("dpm_2", [0, 0, 1, 1, 2, 2, 3])])
def test_uniform_windows_follow_the_step_index_in_the_runs_sigmas(monkeypatch, sampler, steps):
    """The step is the sigma's index in the run's sigmas; dpm_2's midpoint sigmas are in no step,
    so they keep the step's windows."""
    from graphflow.sampling import context_windows as module
    from graphflow.sampling.pipeline import sample_with_sigmas

    seen = []

    def spy(num_frames, length, overlap, schedule, stride, closed_loop, step):
        seen.append(step)
        return context_windows(num_frames, length, overlap, schedule, stride, closed_loop, step)

    monkeypatch.setattr(module, "context_windows", spy)
    model = with_context_windows(FakeModel(gaussian_eps(0.5, 0.8)), ContextWindows(3, 1, "looped_uniform", dim=0))
    latent = torch.zeros(8, 4, 2, 2)
    sample_with_sigmas(model, torch.tensor([10.0, 5.0, 2.0, 1.0, 0.0]), torch.randn(latent.shape), latent,
                       prompt(1.0), prompt(0.0), 2.0, sampler, 0)
    assert seen == steps


class _FrameDenoiser:
    """A stand-in model denoiser for video latents, pointwise per frame: it mixes x with the
    conditioning's concat channels, the per-token sigma mask and the prompt, so a window cut
    without them fails (a shape error) or gives another result."""

    def __init__(self, mask):
        self.timestep_mask, self.context_windows, self.calls = mask, None, []

    def __call__(self, x, sigma, context=None, y=None, concat=None, **extra):
        self.calls.append(x.shape)
        mask = self.timestep_mask[:, :1].repeat(x.shape[0] // self.timestep_mask.shape[0], 1, 1, 1, 1)
        s = sigma.reshape(-1, 1, 1, 1, 1)
        return torch.tanh(x * s + concat[:, :1] - concat[:, 1:] * mask) + context.mean((1, 2)).reshape(-1, 1, 1, 1, 1)


def test_video_windows_cut_concat_channels_and_the_timestep_mask():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 9, 2, 3, generator=gen)
    mask = torch.rand(2, 4, 9, 2, 3, generator=gen)
    pos = Cond(context=torch.randn(2, 5, 8, generator=gen), concat=torch.randn(2, 2, 9, 2, 3, generator=gen))
    neg = Cond(context=torch.randn(2, 5, 8, generator=gen), concat=torch.randn(2, 2, 9, 2, 3, generator=gen))
    sigma = torch.tensor([0.7, 0.7])
    whole = predict_sides(_FrameDenoiser(mask), [[pos], [neg]], x, sigma)
    for schedule in SCHEDULES:
        for fuse in FUSES:
            windows = ContextWindows(4, 2, schedule, 2, True, fuse, 2).for_run(torch.tensor([1.0, 0.7, 0.0]))
            denoiser = _FrameDenoiser(mask)
            denoiser.context_windows = windows
            got = predict_sides(denoiser, [[pos], [neg]], x, sigma)
            assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, whole)), (schedule, fuse)
            assert all(shape[2] <= 4 and shape[0] == 4 for shape in denoiser.calls)  # both sides in one call


def test_batch_windows_cut_every_row_wise_conditioning_and_set_svd_frames():
    """dim 0 (SVD's frames): embeddings, vector conditioning, concat and sigma per row are cut,
    and the model is told the window's frame count."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 4, 2, 2, generator=gen)
    cond = Cond(context=torch.randn(6, 1, 8, generator=gen), y=torch.randn(6, 3, generator=gen),
                concat=torch.randn(6, 4, 2, 2, generator=gen), video_frames=6)
    sigma = torch.linspace(0.5, 1.0, 6)
    seen = []

    def denoiser(x, sigma, context=None, y=None, concat=None, num_frames=None):
        seen.append((x.shape[0], num_frames))
        prompt_value = y[:, :1, None, None] * context.mean((1, 2))[:, None, None, None]
        return x * sigma.reshape(-1, 1, 1, 1) + concat + prompt_value

    class Denoiser:
        context_windows = None

        def __call__(self, *args, **kwargs):
            return denoiser(*args, **kwargs)

    [whole] = predict_sides(Denoiser(), [[cond]], x, sigma)
    windowed = Denoiser()
    windowed.context_windows = ContextWindows(4, 1, "standard_static", dim=0).for_run(torch.tensor([1.0, 0.0]))
    seen.clear()
    [got] = predict_sides(windowed, [[cond]], x, sigma)
    assert torch.allclose(got, whole, atol=1e-6)
    assert seen == [(4, 4), (4, 4)]  # windows [0..3], [2..5]


def test_guide_frames_and_areas_are_refused_over_frames():
    cond = Cond(context=torch.zeros(1, 2, 8), keyframe_positions=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="LTXVAddGuide"):
        cut_cond(cond, 2, [0, 1], (1, 128, 5, 2, 2))
    assert cut_cond(cond, 0, [0], (1, 128, 5, 2, 2)).keyframe_positions is cond.keyframe_positions
    with pytest.raises(ValueError, match="area"):
        cut_cond(Cond(context=torch.zeros(1, 2, 8), area=(2, 2, 0, 0)), 3, [0, 1], (1, 4, 8, 8))


# --- nodes --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry():
    from graphflow.registry import Registry
    return Registry().load_builtin()


class _VideoModel(FakeModel):
    is_video = True


def test_nodes_set_the_windows_and_wan_counts_video_frames(registry):
    model = _VideoModel(gaussian_eps(0.0, 1.0))
    out = call(registry, "ContextWindowsManual", model=model, dim=2, context_schedule="looped_uniform",
               closed_loop=True, fuse_method="flat")
    assert out.context_windows == ContextWindows(16, 4, "looped_uniform", 1, True, "flat", 2)
    assert getattr(model, "context_windows", None) is None  # the input MODEL is unchanged
    wan = call(registry, "WanContextWindowsManual", model=model)  # 81 video frames -> 21 latent, 30 -> 8
    assert wan.context_windows == ContextWindows(21, 8, "standard_static", 1, False, "pyramid", 2)
    assert call(registry, "WanContextWindowsManual", model=model, context_length=17,
                context_overlap=0).context_windows.overlap == 0
    small = call(registry, "WanContextWindowsManual", model=model, context_length=17, context_overlap=4)
    assert (small.context_windows.length, small.context_windows.overlap) == (5, 1)


def test_nodes_refuse_bad_settings_by_input(registry):
    model = _VideoModel(gaussian_eps(0.0, 1.0))
    with pytest.raises(NodeInputError, match="overlap") as e:
        call(registry, "ContextWindowsManual", model=model, context_length=4, context_overlap=4)
    assert e.value.input == "context_overlap"
    call(registry, "ContextWindowsManual", model=model, context_length=4, context_overlap=4,
         context_schedule="batched")  # batches don't overlap
    with pytest.raises(NodeInputError, match="channels") as e:
        call(registry, "ContextWindowsManual", model=model, dim=1)
    assert e.value.input == "dim"
    with pytest.raises(NodeInputError, match="video latents") as e:
        call(registry, "WanContextWindowsManual", model=FakeModel(gaussian_eps(0.0, 1.0)))
    assert e.value.input == "model"
    with pytest.raises(NodeInputError, match="latent frames"):
        call(registry, "WanContextWindowsManual", model=model, context_length=5, context_overlap=8)


# --- LTX-Video ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ltxv(tmp_path_factory):
    """A tiny random LTX-Video checkpoint's model and a prompt pair for it."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.testing import write_ltxv_checkpoint

    path = write_ltxv_checkpoint(tmp_path_factory.mktemp("ltxv") / "ltxv.safetensors", dtype=torch.float32, seed=3)
    model = load_checkpoint(path, device="cpu", dtype=torch.float32).model
    gen = torch.Generator().manual_seed(4)
    channels = model.unet.config.caption_channels
    positive, negative = ([(torch.randn(1, 3, channels, generator=gen), {"frame_rate": 24.0})] for _ in range(2))
    return model, positive, negative


def _video(model, positive, negative, latent, mask=None, noise=None):
    """Two Euler steps with CFG 3 from the latent and noise (seeded by default)."""
    from graphflow.sampling.pipeline import sample_with_sigmas

    if noise is None:
        noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(5))
    return sample_with_sigmas(model, torch.tensor([1.0, 0.6, 0.0]), noise, latent, positive, negative, 3.0, "euler",
                              0, noise_mask=mask)


def test_ltxv_no_longer_than_the_window_samples_bit_identically(ltxv):
    model, positive, negative = ltxv
    latent = torch.randn(1, 128, 3, 2, 2, generator=torch.Generator().manual_seed(6))
    plain = _video(model, positive, negative, latent)
    for windows in (ContextWindows(3, 1, "standard_static", dim=2), ContextWindows(8, 2, "looped_uniform", 2, True,
                                                                                   "relative", 2),
                    ContextWindows(1, 0, "batched", fuse_method="flat", dim=0)):
        assert torch.equal(_video(with_context_windows(model, windows), positive, negative, latent), plain)


def test_ltxv_batched_windows_sample_as_separate_videos(ltxv):
    """Windows without overlap, fused flat: each window samples as a video of its own would,
    with its frames' noise and its part of the noise mask (the per-token sigma of LTXVImgToVideo's
    known frames); a window cut without the mask would not even run."""
    model, positive, negative = ltxv
    latent = torch.randn(1, 128, 5, 2, 2, generator=torch.Generator().manual_seed(7))
    mask = torch.tensor([0.0, 1.0, 1.0, 0.5, 1.0]).reshape(1, 1, 5, 1, 1)
    patched = with_context_windows(model, ContextWindows(3, 0, "batched", fuse_method="flat", dim=2))
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(8))
    windowed = _video(patched, positive, negative, latent, mask, noise)
    parts = [_video(model, positive, negative, latent[:, :, w], mask[:, :, w], noise[:, :, w])
             for w in (slice(0, 3), slice(3, 5))]
    assert torch.allclose(windowed, torch.cat(parts, 2), atol=1e-5)
    assert float((windowed - _video(model, positive, negative, latent, mask, noise)).abs().max()) > 1e-3


@pytest.fixture
def ltxv_files(tmp_folders):
    from graphflow.testing import write_flow_text_encoder, write_ltxv_checkpoint

    m = tmp_folders.models
    for sub in ("checkpoints", "text_encoders"):
        (m / sub).mkdir()
    write_ltxv_checkpoint(m / "checkpoints" / "ltxv.safetensors", dtype=torch.float32, seed=3)
    write_flow_text_encoder(m / "text_encoders" / "t5.safetensors", "t5xxl", dtype=torch.float32, seed=1)
    return tmp_folders


def ltxv_graph(windows: dict | None) -> dict:
    """ComfyUI's LTX-Video text-to-video example in API format, shrunk (64x64, 33 frames: 5 latent
    frames, 2 steps), with a context windows node (class_type and inputs) before the sampler."""
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltxv.safetensors"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5.safetensors", "type": "ltxv",
                                                     "device": "default"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a boat on a lake at dawn", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["2", 0]}},
        "5": {"class_type": "LTXVConditioning", "inputs": {"positive": ["3", 0], "negative": ["4", 0],
                                                           "frame_rate": 24.0}},
        "6": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 64, "height": 64, "length": 33,
                                                               "batch_size": 1}},
        "7": {"class_type": "LTXVScheduler", "inputs": {"steps": 2, "max_shift": 2.05, "base_shift": 0.95,
                                                        "stretch": True, "terminal": 0.1, "latent": ["6", 0]}},
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "9": {"class_type": "SamplerCustom", "inputs": {"model": ["1", 0], "add_noise": True, "noise_seed": 7,
                                                        "cfg": 3.0, "positive": ["5", 0], "negative": ["5", 1],
                                                        "sampler": ["8", 0], "sigmas": ["7", 0],
                                                        "latent_image": ["6", 0]}},
    }
    if windows is not None:
        graph["20"] = {"class_type": windows["class_type"], "inputs": {"model": ["1", 0], **windows["inputs"]}}
        graph["9"]["inputs"]["model"] = ["20", 0]
    return graph


MANUAL = {"class_type": "ContextWindowsManual", "inputs": {
    "context_length": 3, "context_overlap": 1, "context_schedule": "standard_uniform", "context_stride": 1,
    "closed_loop": False, "fuse_method": "pyramid", "dim": 2}}
WAN = {"class_type": "WanContextWindowsManual", "inputs": {  # 9 video frames: 3 latent ones, 4: overlap 1
    "context_length": 9, "context_overlap": 4, "context_schedule": "looped_uniform", "context_stride": 1,
    "closed_loop": True, "fuse_method": "overlap-linear"}}


def test_comfyui_graphs_with_context_windows_validate_and_run(ltxv_files, registry):
    from graphflow.executor import Executor
    from graphflow.validation import validate
    from graphflow.workflow import parse_workflow

    def run(windows):
        workflow = parse_workflow(json.loads(json.dumps(ltxv_graph(windows))), registry)
        assert validate(workflow, registry, outputs=["9"]) == []
        result = Executor(registry).run(workflow, outputs=["9"])
        assert result.ok, json.dumps(result.error, default=str)[:3000]
        return result.values["9"][0]["samples"]

    plain = run(None)
    assert plain.shape == (1, 128, 5, 2, 2)
    for windows in (MANUAL, WAN):
        windowed = run(windows)
        assert windowed.shape == plain.shape and torch.isfinite(windowed).all()
        assert float((windowed - plain).abs().max()) > 1e-3 * float(plain.abs().max())
    bad = copy.deepcopy(MANUAL)
    bad["inputs"]["context_schedule"] = "sliding"
    problems = validate(parse_workflow(ltxv_graph(bad), registry), registry, outputs=["9"])
    assert problems and "context_schedule" in str(problems[0])


def test_svd_graph_windows_its_frames_on_the_batch(registry, tmp_folders, monkeypatch):
    """SVD's frames are the latent batch (dim 0): with windows of 3 of 5 frames the UNet sees both
    sides' windows batched, 2 x 3 latents told 3 frames per video, and the video changes."""
    from graphflow.executor import Executor
    from graphflow.models import svd
    from graphflow.testing import write_svd_checkpoint
    from graphflow.workflow import parse_workflow

    (tmp_folders.models / "checkpoints").mkdir(parents=True)
    write_svd_checkpoint(tmp_folders.models / "checkpoints" / "tiny_svd.safetensors")
    calls = []
    forward = svd.SVDUNet.forward

    def spy(self, x, timesteps, context, y, num_frames=None):
        calls.append((x.shape[0], num_frames, context.shape[0], y.shape[0]))
        return forward(self, x, timesteps, context, y, num_frames)

    monkeypatch.setattr(svd.SVDUNet, "forward", spy)
    graph = {
        "1": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "tiny_svd.safetensors"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0xff8020}},
        "3": {"class_type": "SVD_img2vid_Conditioning",
              "inputs": {"clip_vision": ["1", 1], "init_image": ["2", 0], "vae": ["1", 2], "width": 64, "height": 48,
                         "video_frames": 5, "motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}},
        "4": {"class_type": "ContextWindowsManual", "inputs": {
            "model": ["1", 0], "context_length": 3, "context_overlap": 1, "context_schedule": "standard_static",
            "context_stride": 1, "closed_loop": False, "fuse_method": "pyramid", "dim": 0}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "positive": ["3", 0], "negative": ["3", 1],
                                                   "latent_image": ["3", 2], "seed": 3, "steps": 2, "cfg": 2.5,
                                                   "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0}},
    }

    def run(graph):
        result = Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry), outputs=["5"])
        assert result.ok, json.dumps(result.error, default=str)[:3000]
        return result.values["5"][0]["samples"]

    windowed = run(graph)
    assert calls == [(6, 3, 6, 6)] * 4  # 2 steps x windows [0, 1, 2], [2, 3, 4]
    graph["5"]["inputs"]["model"] = ["1", 0]
    calls.clear()
    plain = run(graph)
    assert calls == [(10, 5, 10, 10)] * 2
    assert windowed.shape == plain.shape == (5, 4, 6, 8)
    assert float((windowed - plain).abs().max()) > 1e-3
