"""The hooks' conditioning nodes as ComfyUI defines them (set_conds_props, ..._and_combine,
set_default_conds_and_combine, ConditioningTimestepsRange, CombineHooks, keyframe makers) and the
sampler's handling of "default" entries (ComfyUI's finalize_default_conds)."""

import math

import pytest
import torch
from sampling_fakes import SD, FakeModel, context_eps, prompt
from test_nodes_image_mask import call

from graphflow.sampling import CFGDenoiser, ModelDenoiser, prepare_conds
from graphflow.sampling.hooks import Hooks, Keyframe, Keyframes, KeyframeClock, WeightHook, clip_schedule

SHAPE = (1, 4, 16, 16)


def hooks(name="h"):
    return Hooks((WeightHook(name),))


def predict(conditioning, sigma=1.0):
    model = FakeModel(context_eps)
    out = CFGDenoiser(ModelDenoiser(model), prepare_conds(conditioning, model, SHAPE, "cpu", schedule=SD), [], 1.0)(
        torch.zeros(SHAPE), torch.tensor([sigma]))
    return out, model.unet.calls


def test_timesteps_range_and_its_before_and_after(builtin_registry):
    assert call(builtin_registry, "ConditioningTimestepsRange", start_percent=0.2, end_percent=0.7) == \
        ((0.2, 0.7), (0.0, 0.2), (0.7, 1.0))


def test_set_properties_sets_hooks_mask_strength_and_range(builtin_registry):
    h1, h2 = hooks("a"), hooks("b")
    mask = torch.ones(8, 8)
    base = prompt(0.5, hooks=h1)
    out = call(builtin_registry, "ConditioningSetProperties", cond_NEW=base, strength=0.3, set_cond_area="mask bounds",
               mask=mask, hooks=h2, timesteps=(0.1, 0.6))
    options = out[0][1]
    assert options["mask"].shape == (1, 8, 8) and options["mask_strength"] == 0.3
    assert options["set_area_to_bounds"] is True
    assert (options["start_percent"], options["end_percent"]) == (0.1, 0.6)
    assert [h.name for h in options["hooks"].hooks] == ["a", "b"]  # added to the entry's own
    assert "mask" not in base[0][1] and base[0][1]["hooks"] is h1  # input untouched
    # without a mask, strength sets nothing (ComfyUI's set_mask_for_conditioning)
    plain = call(builtin_registry, "ConditioningSetProperties", cond_NEW=prompt(0.5), strength=0.3,
                 set_cond_area="default")
    assert plain[0][1] == {}


def test_and_combine_and_pair_nodes(builtin_registry):
    h = hooks()
    old, new = prompt(0.1), prompt(0.9)
    out = call(builtin_registry, "ConditioningSetPropertiesAndCombine", cond=old, cond_NEW=new, strength=1.0,
               set_cond_area="default", hooks=h)
    assert len(out) == 2 and out[0][1] == {} and out[1][1]["hooks"] is h and out[1][0] is new[0][0]
    pos, neg = call(builtin_registry, "PairConditioningSetProperties", positive_NEW=prompt(1.0), negative_NEW=prompt(2.0),
                    strength=1.0, set_cond_area="default", timesteps=(0.0, 0.5))
    assert pos[0][1]["end_percent"] == 0.5 and neg[0][1]["end_percent"] == 0.5
    pos, neg = call(builtin_registry, "PairConditioningSetPropertiesAndCombine", positive=prompt(1.0), negative=prompt(2.0),
                    positive_NEW=prompt(3.0), negative_NEW=prompt(4.0), strength=1.0, set_cond_area="default", hooks=h)
    assert [float(c[0, 0, 0]) for c, _ in pos] == [1.0, 3.0] and [float(c[0, 0, 0]) for c, _ in neg] == [2.0, 4.0]
    assert "hooks" not in pos[0][1] and neg[1][1]["hooks"] is h
    pos, neg = call(builtin_registry, "PairConditioningCombine", positive_A=prompt(1.0), negative_A=prompt(2.0),
                    positive_B=prompt(3.0), negative_B=prompt(4.0))
    assert [float(c[0, 0, 0]) for c, _ in pos + neg] == [1.0, 3.0, 2.0, 4.0]
    out = call(builtin_registry, "ConditioningSetDefaultCombine", cond=prompt(1.0), cond_DEFAULT=prompt(2.0), hooks=h)
    assert "default" not in out[0][1] and out[1][1]["default"] is True and out[1][1]["hooks"] is h
    pos, neg = call(builtin_registry, "PairConditioningSetDefaultCombine", positive=prompt(1.0), negative=prompt(2.0),
                    positive_DEFAULT=prompt(3.0), negative_DEFAULT=prompt(4.0))
    assert pos[1][1]["default"] is True and neg[1][1]["default"] is True and "hooks" not in pos[1][1]


def test_default_entry_fills_what_the_others_leave():
    mask = torch.zeros(1, 16, 16)
    mask[:, :, :8] = 1.0
    mask[:, :, 8:12] = 0.25
    out, _ = predict(prompt(0.5, mask=mask) + prompt(2.0, default=True))
    # weights: masked prompt m, default max(0, 1 - m); eps = the prompt's value, denoised = -sigma eps at x 0
    m = mask[0]
    expected = -(0.5 * m + 2.0 * (1 - m).clamp(min=0)) / (m + (1 - m).clamp(min=0))
    torch.testing.assert_close(out[0, 0], expected)
    # a plain prompt covers everything: the default is not evaluated at all
    out, calls = predict(prompt(0.5) + prompt(2.0, default=True))
    assert len(calls) == 1 and torch.allclose(out, torch.tensor(-0.5))
    # a prompt outside its timestep range leaves the default everything
    out, _ = predict(prompt(0.5, start_percent=0.9, end_percent=1.0) + prompt(2.0, default=True), sigma=10.0)
    assert torch.allclose(out, torch.tensor(-2.0 * 10.0))  # denoised = x - sigma eps at x 0


def test_entries_with_different_hooks_are_not_batched():
    h = hooks()
    _, calls = predict(prompt(0.5) + prompt(1.0))
    assert len(calls) == 1
    _, calls = predict(prompt(0.5) + prompt(1.0, hooks=h) + prompt(2.0, hooks=h))
    assert sorted(c["x"].shape[0] for c in calls) == [1, 2]


def test_combine_hooks_keeps_each_hook_once(builtin_registry):
    a, b = hooks("a"), hooks("b")
    assert call(builtin_registry, "CombineHooks2") is None
    assert call(builtin_registry, "CombineHooks2", hooks_B=a) is a
    both = call(builtin_registry, "CombineHooks4", hooks_A=a, hooks_B=b, hooks_D=a)
    assert [h.name for h in both.hooks] == ["a", "b"]
    kf = Keyframes().add(Keyframe(0.5))
    scheduled = call(builtin_registry, "SetHookKeyframes", hooks=both, hook_kf=kf)
    own = scheduled.hooks[0].keyframes  # one copy of kf for the node's hooks (ComfyUI clones the group)
    assert own.frames == kf.frames and all(h.keyframes is own for h in scheduled.hooks)
    assert both.hooks[0].keyframes is None
    assert [h.name for h in scheduled.combine(both).hooks] == ["a", "b"]  # the same hooks by reference


def test_keyframe_makers(builtin_registry):
    kf = call(builtin_registry, "CreateHookKeyframesInterpolated", strength_start=0.0, strength_end=1.0,
              interpolation="ease_in", start_percent=0.2, end_percent=0.6, keyframes_count=3, print_keyframes=False)
    assert [round(f.start_percent, 6) for f in kf.frames] == [0.2, 0.4, 0.6]
    assert [f.strength for f in kf.frames] == pytest.approx([0.0, 0.25, 1.0])
    assert [f.guarantee_steps for f in kf.frames] == [1, 0, 0]
    kf = call(builtin_registry, "CreateHookKeyframesFromFloats", floats_strength=[1.0, 0.5], start_percent=0.0,
              end_percent=1.0, print_keyframes=False)
    assert [(f.start_percent, f.strength) for f in kf.frames] == [(0.0, 1.0), (1.0, 0.5)]
    out = call(builtin_registry, "CreateHookKeyframe", strength_mult=2.0, start_percent=0.5, prev_hook_kf=kf)
    assert [f.start_percent for f in out.frames] == [0.0, 0.5, 1.0] and len(kf.frames) == 2


def test_keyframe_clock_honours_guarantee_steps():
    # two keyframes both due at the first step: the first guarantees two steps before the second takes over
    frames = Keyframes((Keyframe(1.0, 0.0, 0), Keyframe(0.3, 0.0, 2), Keyframe(0.7, 0.0, 1)))
    clock = KeyframeClock(frames, SD, max_sigma=14.6)
    # start sigma of percent 0 is above the run's largest: no keyframe guarantees anything
    assert [clock.strength(s) for s in (14.6, 14.6, 5.0, 1.0)] == [0.7, 0.7, 0.7, 0.7]
    frames = Keyframes((Keyframe(1.0, 0.0), Keyframe(0.3, 0.001, 2), Keyframe(0.7, 0.002)))
    clock = KeyframeClock(frames, SD, max_sigma=14.6)
    assert [clock.strength(s) for s in (14.0, 13.0, 12.0)] == [0.3, 0.3, 0.7]


def test_clip_schedule_splits_at_strength_changes():
    kf = Keyframes().add(Keyframe(1.0, 0.0)).add(Keyframe(1.0, 0.3)).add(Keyframe(0.5, 0.6))
    plain = WeightHook("plain")
    scheduled = WeightHook("scheduled", keyframes=kf)
    assert clip_schedule(Hooks((plain, scheduled))) == [((0.0, 0.6), (1.0, 1.0)), ((0.6, 1.0), (1.0, 0.5))]
    assert math.isclose(clip_schedule(Hooks((plain,)))[0][1][0], 1.0)
