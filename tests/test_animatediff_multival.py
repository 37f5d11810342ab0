"""AnimateDiff-Evolved's per-frame multivals: ADE_MultivalDynamic's float_val as a list (FizzNodes'
Batch Value Schedule by link), fitted to the video and cut per context window as the pack's
full_length / sub_idxs do, and the motion module's per-frame key scale and effect checked against
the attention and blend formulas."""

import math

import pytest
import torch

import graphflow.models.animatediff as animatediff
from graphflow.models.animatediff import MotionSettings, TemporalAttention, load_motion_model, per_frame
from graphflow.sampling.context_windows import batch_window, context_windows
from graphflow.testing import motion_module_state
from tests.test_animatediff import FRAMES, TINY
from tests.test_animatediff_nodes import model_files, models, prompt, registry  # noqa: F401 (fixtures)
from tests.test_pack_nodes import run_graph

SCHEDULE = "0:(0.5), 3:(1.5), 5:(0.9)"


def scheduled(graph: dict, frames: int) -> dict:
    """The prompt with a Batch Value Schedule linked into Multival Dynamic's float_val."""
    graph["11"] = {"class_type": "BatchValueSchedule", "inputs": {"text": SCHEDULE, "max_frames": frames}}
    graph["3"] = {"class_type": "ADE_MultivalDynamic", "inputs": {"float_val": ["11", 0]}}
    return graph


def test_a_batch_value_schedule_becomes_the_motion_models_per_frame_scale(registry, models):
    result = run_graph(registry, scheduled(prompt(frames=6), 6), ["11", "3", "5", "9"])
    values = result.values["11"][0]
    assert isinstance(values, list) and len(values) == 6 and len(set(values)) > 1
    assert result.values["3"][0] == tuple(values)
    assert result.values["5"][0].unet.motion[1].scale == tuple(values)
    samples = result.values["9"][0]["samples"]
    assert samples.shape == (6, 4, 8, 8) and torch.isfinite(samples).all()


def test_a_list_multival_changes_the_run_unlike_its_first_value(registry, models):
    listed = run_graph(registry, scheduled(prompt(frames=6), 6), ["9"]).values["9"][0]["samples"]
    graph = prompt(frames=6)
    graph["3"] = {"class_type": "ADE_MultivalDynamic", "inputs": {"float_val": 0.5}}
    single = run_graph(registry, graph, ["9"]).values["9"][0]["samples"]
    assert (listed - single).abs().max() > 1e-4


def test_each_context_window_takes_its_frames_values(registry, models, monkeypatch):
    seen = []

    def recording(value, frames):
        out = per_frame(value, frames)
        if isinstance(value, tuple):
            seen.append((batch_window.get(), out.tolist()))
        return out

    monkeypatch.setattr(animatediff, "per_frame", recording)
    context = {"class_type": "ADE_StandardStaticContextOptions",
               "inputs": {"context_length": 4, "context_overlap": 1, "fuse_method": "pyramid"}}
    result = run_graph(registry, scheduled(prompt(frames=8, context=context), 8), ["11", "9"])
    values = result.values["11"][0]
    assert len(values) == 8
    assert seen
    windows = set()
    for (window, length), scale in seen:
        assert length == 8 and len(window) == 4
        assert scale == pytest.approx([values[i] for i in window])
        windows.add(window)
    assert windows == {tuple(w) for w in context_windows(8, 4, 1, "standard_static")}
    assert torch.isfinite(result.values["9"][0]["samples"]).all()


def test_a_list_is_fitted_to_the_video_then_cut_to_the_window():
    # shorter than the video: its last value repeated (the pack's extend_list_to_batch_size)
    assert per_frame((1.0, 2.0), 4).tolist() == [1.0, 2.0, 2.0, 2.0]
    # longer: its first frames
    assert per_frame((1.0, 2.0, 3.0, 4.0, 5.0), 3).tolist() == [1.0, 2.0, 3.0]
    assert per_frame(0.7, 3) == 0.7
    token = batch_window.set(((4, 5, 6), 7))
    try:
        assert per_frame((1.0, 2.0, 3.0, 4.0, 5.0), 3).tolist() == [5.0, 5.0, 5.0]
        assert per_frame((0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0), 3).tolist() == [4.0, 5.0, 6.0]
    finally:
        batch_window.reset(token)


def reference_attention(attn: TemporalAttention, t: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """softmax(q (k s_j)^T / sqrt(d)) v per head, for t [n, frames, C] (no positional encoding)."""
    n, frames, c = t.shape
    heads, d = attn.heads, c // attn.heads
    q = attn.to_q(t).view(n, frames, heads, d).transpose(1, 2)
    k = (attn.to_k(t) * scale.view(1, frames, 1)).view(n, frames, heads, d).transpose(1, 2)
    v = attn.to_v(t).view(n, frames, heads, d).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return attn.to_out((weights @ v).transpose(1, 2).reshape(n, frames, c))


def test_per_frame_scale_multiplies_each_frames_keys():
    torch.manual_seed(0)
    attn = TemporalAttention(32, 8, None)
    scale = torch.tensor([0.5, 1.0, 1.5, 2.0, 0.2, 1.2])
    videos, pixels = 2, 5
    x = torch.randn(videos * FRAMES, pixels, 32)
    with torch.no_grad():
        got = attn(x, FRAMES, scale)
        t = x.reshape(videos, FRAMES, pixels, 32).transpose(1, 2).reshape(-1, FRAMES, 32)
        expected = reference_attention(attn, t, scale)
        expected = expected.reshape(videos, pixels, FRAMES, 32).transpose(1, 2).reshape(videos * FRAMES, pixels, 32)
        # a constant per-frame scale is the number
        torch.testing.assert_close(attn(x, FRAMES, torch.full((FRAMES,), 1.7)), attn(x, FRAMES, 1.7))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_per_frame_effect_blends_each_frame_of_each_video():
    from graphflow.models.animatediff import _run_temporal

    motion = load_motion_model(motion_module_state(TINY, "v2", dtype=torch.float32))
    module = motion.temporal_modules()["input"][0]
    x = torch.randn(2 * FRAMES, 32, 8, 8)
    effect = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    with torch.no_grad():
        full = module.temporal_transformer(x, FRAMES)
        blended = _run_temporal(motion, "input", 0, MotionSettings(effect=effect), False, x, FRAMES)
    e = torch.tensor(effect).repeat(2).view(-1, 1, 1, 1)
    torch.testing.assert_close(blended, x * (1 - e) + full * e)
    torch.testing.assert_close(blended[0], x[0])  # effect 0: the frame unchanged
    torch.testing.assert_close(blended[FRAMES + 5], full[FRAMES + 5])


def test_an_empty_or_wrong_list_is_refused_naming_float_val():
    from pydantic import ValidationError

    from graphflow.api import NodeInputError
    from nodes.animatediff import MultivalDynamic as cls

    with pytest.raises(ValidationError, match="float_val"):  # a linked value is checked item by item
        cls.linked_widget_model.model_validate({"float_val": [1.0, "two"]})
    node = cls.__new__(cls)
    node.__dict__.update(cls.linked_widget_model.model_validate({"float_val": []}).model_dump(), mask_optional=None)
    with pytest.raises(NodeInputError) as caught:
        node.run()
    assert caught.value.input == "float_val" and "empty" in str(caught.value)
