"""ComfyUI parity of the hook nodes (comfy_extras/nodes_hooks.py, comfy/hooks.py): keyframe strengths
in float32, keyframe starts compared with the sigma tensor in float32, one keyframe clock per Set
Hook Keyframes node, an empty strengths list, a timesteps range whose start is after its end."""

import numpy as np
import pytest
import torch
from sampling_fakes import SD, FakeModel, prompt
from test_nodes_image_mask import call

from graphflow.sampling import prepare_conds
from graphflow.sampling.flow_sampling import FlowSchedule
from graphflow.sampling.hooks import Hooks, HookSwitch, Keyframes, WeightHook


def keyframes(registry, *pairs):
    """CreateHookKeyframe nodes chained: (strength_mult, start_percent) each."""
    kf = None
    for strength, percent in pairs:
        kf = call(registry, "CreateHookKeyframe", strength_mult=strength, start_percent=percent, prev_hook_kf=kf)
    return kf


def test_timesteps_range_start_after_end_gives_a_range_never_used(builtin_registry):
    out = call(builtin_registry, "ConditioningTimestepsRange", start_percent=0.7, end_percent=0.2)
    assert out == ((0.7, 0.2), (0.0, 0.7), (0.2, 1.0))
    (conditioned,) = call(builtin_registry, "ConditioningSetProperties", cond_NEW=prompt(1.0), strength=1.0,
                          set_cond_area="default", timesteps=out[0])
    cond = prepare_conds([conditioned], FakeModel(lambda *a: None), (1, 4, 8, 8), "cpu", schedule=SD)[0]
    # 70% is a smaller sigma than 20%: no sigma is both at most the first and at least the second
    assert not any(cond.active(torch.tensor([s])) for s in (14.6, SD.percent_to_sigma(0.45), 1.0, 0.03))


def test_keyframes_from_an_empty_float_list_add_none(builtin_registry):
    prev = keyframes(builtin_registry, (0.5, 0.3))
    out = call(builtin_registry, "CreateHookKeyframesFromFloats", floats_strength=[], start_percent=0.0,
               end_percent=1.0, print_keyframes=False, prev_hook_kf=prev)
    assert out.frames == prev.frames
    empty = call(builtin_registry, "CreateHookKeyframesFromFloats", floats_strength=[], start_percent=0.0,
                 end_percent=1.0, print_keyframes=False)
    assert empty.frames == ()
    # set on hooks, no keyframes replace the ones they had: full strength all the way
    hooks = Hooks((WeightHook("h"),)).with_keyframes(prev)
    cleared = call(builtin_registry, "SetHookKeyframes", hooks=hooks, hook_kf=empty)
    switch = HookSwitch(None, SD, torch.tensor([14.6, 1.0, 0.0]))
    assert [switch.strength(cleared.hooks[0], s) for s in (14.6, 1.0)] == [1.0, 1.0]


def test_keyframe_start_is_reached_at_the_float32_sigma_nearest_it(builtin_registry):
    # a shift-1 flow model: 90% is sigma 1 - 0.9 = 0.09999999999999998, whose nearest float32 is the
    # float32 0.1 a 10-step simple schedule lands on; the sigma tensor compared with it says reached
    kf = keyframes(builtin_registry, (1.0, 0.0), (0.5, 0.9))
    hooks = call(builtin_registry, "SetHookKeyframes", hooks=Hooks((WeightHook("h"),)), hook_kf=kf)
    sigmas = torch.tensor([1.0, 0.5, 0.1, 0.0])
    switch = HookSwitch(None, FlowSchedule.sd3(shift=1.0), sigmas)
    assert [switch.strength(hooks.hooks[0], float(s)) for s in sigmas[:-1]] == [1.0, 1.0, 0.5]


def test_each_set_hook_keyframes_node_schedules_with_a_clock_of_its_own(builtin_registry):
    kf = keyframes(builtin_registry, (1.0, 0.0), (0.5, 0.5), (0.25, 0.6))  # each holds at least one step
    a = call(builtin_registry, "SetHookKeyframes", hooks=Hooks((WeightHook("a"),)), hook_kf=kf).hooks[0]
    b = call(builtin_registry, "SetHookKeyframes", hooks=Hooks((WeightHook("b"),)), hook_kf=kf).hooks[0]
    percents = (0.05, 0.3, 0.55, 0.7, 0.8)
    sigmas = torch.tensor([SD.percent_to_sigma(p) for p in percents] + [0.0])
    switch = HookSwitch(None, SD, sigmas)
    got_a, got_b = [], []
    for p, s in zip(percents, sigmas.tolist()):
        got_a.append(switch.strength(a, s))
        if p > 0.6:  # b's conditioning takes part only from 60% on (a timesteps range, say)
            got_b.append(switch.strength(b, s))
    assert got_a == [1.0, 1.0, 0.5, 0.25, 0.25]
    # b's first step finds 50% reached and holds it one step (its guarantee) before 60%'s
    assert got_b == [0.5, 0.25]


@pytest.mark.parametrize("interpolation", ["ease_in", "ease_out", "ease_in_out"])
def test_interpolated_strengths_are_computed_in_float32(builtin_registry, interpolation):
    start, end, count = 0.1, 0.7, 7
    kf = call(builtin_registry, "CreateHookKeyframesInterpolated", strength_start=start, strength_end=end,
              interpolation=interpolation, start_percent=0.0, end_percent=1.0, keyframes_count=count,
              print_keyframes=False)
    t = torch.linspace(0, 1, count).numpy()  # float32, as ComfyUI's get_weights spaces the keyframes
    curve = {"ease_in": t * t, "ease_out": np.float32(1) - (np.float32(1) - t) ** 2,
             "ease_in_out": (np.float32(1) - np.cos(t * np.float32(np.pi))) / np.float32(2)}[interpolation]
    expected = np.float32(end - start) * curve + np.float32(start)
    assert expected.dtype == np.float32
    assert [f.strength for f in kf.frames] == expected.tolist()
    assert isinstance(kf, Keyframes) and [f.guarantee_steps for f in kf.frames] == [1] + [0] * (count - 1)


def test_model_as_lora_text_part_includes_the_t5(tmp_path):
    # ComfyUI's model-as-LoRA clip weights are the whole text encoder's: FLUX's T5 changes too
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.sampling.hooks import clip_with_hook
    from graphflow.testing import write_flow_checkpoint

    a, b = (load_checkpoint(write_flow_checkpoint(tmp_path / f"{n}.safetensors", "flux_dev", seed=seed,
                                                  dtype=torch.float32), device="cpu", dtype=torch.float32)
            for n, seed in (("a", 0), ("b", 3)))
    hooked = clip_with_hook(a.clip, WeightHook("b", 0.0, 1.0, clip=b.clip), 1.0)
    got, expected, plain = (c.encode("a red circle") for c in (hooked, b.clip, a.clip))
    for g, e, p in zip(got, expected, plain):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(p, e, atol=1e-3)


def test_lora_hook_text_part_includes_comfyui_layout_t5_modules(tmp_path):
    # text_encoders.t5xxl.transformer.<module> is a text-encoder module (ComfyUI's clip key map):
    # the hook's clip part changes T5 as LoraLoader's clip strength does
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.lora import apply_lora, read_lora
    from graphflow.sampling.hooks import clip_with_hook, model_patches
    from graphflow.testing import write_flow_checkpoint

    ckpt = load_checkpoint(write_flow_checkpoint(tmp_path / "a.safetensors", "flux_dev", dtype=torch.float32),
                           device="cpu", dtype=torch.float32)
    q = ckpt.clip.t5.model.get_submodule("encoder.block.0.layer.0.SelfAttention.q")
    g = torch.Generator().manual_seed(4)
    key = "text_encoders.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.lora_{}.weight"
    save_file({key.format("down"): torch.randn(2, q.in_features, generator=g),
               key.format("up"): torch.randn(q.out_features, 2, generator=g)}, str(tmp_path / "t5.safetensors"))
    hook = WeightHook("t5.safetensors", 1.0, 0.7, lora=read_lora(tmp_path / "t5.safetensors"))
    got = clip_with_hook(ckpt.clip, hook, 0.7).encode("a red circle")[0]
    _, lora_clip = apply_lora(ckpt.model, ckpt.clip, tmp_path / "t5.safetensors", 0.0, 0.7)
    expected = lora_clip.encode("a red circle")[0]
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(ckpt.clip.encode("a red circle")[0], expected, atol=1e-3)
    assert model_patches(ckpt.model, hook, 1.0) == ()  # nothing of it is the diffusion model's
