"""AnimateDiff-Evolved's context windows and the controls, and the motion model in the memory manager.

Windows: under the pack's context options each window's ControlNet / T2I-Adapter takes the window's own
hint frames, as AnimateDiff-Evolved (sampling.py, 466f5636dc76: each control's sub_idxs = the window's
frames, full_latent_length = the video's) with Advanced-ControlNet (control.py 2bde95a468ce, utils.py
95e26b9b7906: the hint / masks matched to the video's frames with extend_to_batch_size, last one repeated,
then hint[sub_idxs]; latent keyframes' indices mapped onto the window) cut them. Core's
ContextWindowsManual hands the whole hint, which broadcast_image_to cuts to the call's rows per
conditioning unless it has as many frames as the call has rows. Spies read which hint frames each net
call received (frame k of the hint image is the constant k / 40); Advanced-ControlNet's latent
keyframes and masks are checked against a control built by hand from the pack's indexing rule for
each window.

Memory: the motion model's copy is a graphflow.memory component (kind motion_model), counted, loaded
with the UNet, streamed or offloaded under a simulated device budget, loaded again for the next run,
and shared by two MODELs with the same motion model.
"""

import pytest
import torch
import torch.nn.functional as F

from graphflow import memory
from graphflow.models.advanced_control import (UNIVERSAL, AdvancedControl, ControlWeights, LatentKeyframes,
                                               TimestepKeyframe, TimestepKeyframes)
from graphflow.models.animatediff import MotionSettings, load_motion_model, placed_motion
from graphflow.models.controlnet import ControlNet
from graphflow.models.t2i_adapter import T2IAdapter, T2IAdapterConfig
from graphflow.sampling.context_windows import ContextWindows, context_windows, control_window, with_context_windows
from graphflow.testing import motion_module_state, unet_config, write_checkpoint, write_controlnet
from nodes.animatediff import context_options, evolved_model
from tests.test_nodes_image_mask import call

FRAMES, LENGTH, OVERLAP = 32, 16, 4
WINDOWS = context_windows(FRAMES, LENGTH, OVERLAP)  # standard_static: 0-15, 12-27, 16-31
STEP = 40  # hint frame k holds k / STEP everywhere


@pytest.fixture
def models(tmp_folders):
    for sub in ("checkpoints", "controlnet"):
        (tmp_folders.models / sub).mkdir(parents=True, exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_controlnet(tmp_folders.models / "controlnet" / "cn.safetensors", "sd1", seed=1)
    return tmp_folders.models


def frames_image(count: int) -> torch.Tensor:
    return (torch.arange(count, dtype=torch.float32) / STEP).reshape(count, 1, 1, 1).expand(count, 64, 64, 3).clone()


def motion():
    return load_motion_model(motion_module_state(unet_config("sd1"), "v2", seed=5))


def animated(model, motion_model, pack_windows: bool):
    """The MODEL with the motion model and 16-frame windows: the pack's context options, or core's
    ContextWindowsManual (the same windows without window_controls)."""
    m_models = [(motion_model, MotionSettings(), (0.0, 1.0))]
    if pack_windows:
        return evolved_model(model, "autoselect", m_models, context_options("standard_static", LENGTH, OVERLAP))
    core = ContextWindows(LENGTH, OVERLAP, "standard_static", 1, False, "pyramid", 0)
    return with_context_windows(evolved_model(model, "autoselect", m_models), core)


def hint_chunks(monkeypatch, cls, registry, model, positive, negative) -> list[tuple[int, ...]]:
    """Sample one step of a 32-frame video and give the hint frames each call of cls's forward got, one
    tuple per 16 rows (a window's cond or uncond half)."""
    seen = []
    forward = cls.forward

    def spy(self, *args, **kwargs):
        hint = args[1] if cls is ControlNet else args[0]
        seen.append(torch.round(hint[:, 0, 0, 0].float() * STEP).long().tolist())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(cls, "forward", spy)
    latent = {"samples": torch.zeros(FRAMES, 4, 8, 8)}
    out = call(registry, "KSampler", model=model, positive=positive, negative=negative, latent_image=latent, seed=3,
               steps=1, cfg=4.0, sampler_name="euler", scheduler="normal", denoise=1.0)["samples"]
    assert torch.isfinite(out).all()
    flat = [frames for call_frames in seen for frames in call_frames]
    return [tuple(flat[i:i + LENGTH]) for i in range(0, len(flat), LENGTH)]


def per_window(expected_windows, chunks):
    per = len(chunks) // len(expected_windows)
    assert per >= 1 and len(chunks) == per * len(expected_windows), chunks
    return [tuple(w) for w in expected_windows for _ in range(per)]


def conditioning(registry):
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    positive = call(registry, "CLIPEncode", text="a cat walking", clip=clip)
    negative = call(registry, "CLIPEncode", text="", clip=clip)
    return model, positive, negative


@pytest.mark.parametrize("apply_node", ["ApplyControlNetAdvanced", "AdvancedControlNetApply"])
def test_each_pack_window_takes_its_own_hint_frames(builtin_registry, models, monkeypatch, apply_node):
    model, positive, negative = conditioning(builtin_registry)
    net = call(builtin_registry, "LoadControlNet", control_net_name="cn.safetensors")
    applied = call(builtin_registry, apply_node, positive=positive, negative=negative, control_net=net,
                   image=frames_image(FRAMES), strength=1.0, start_percent=0.0, end_percent=1.0)
    mm = motion()
    chunks = hint_chunks(monkeypatch, ControlNet, builtin_registry, animated(model, mm, True), *applied[:2])
    assert chunks == per_window(WINDOWS, chunks)  # 0-15, 12-27, 16-31
    # core's ContextWindowsManual hands the whole hint: a call of a window's cond and uncond (32 rows) takes
    # the 32 hint frames as they are (ComfyUI broadcasts only a hint batch of another size), so the cond
    # half gets frames 0-15 and the uncond half 16-31 in every window
    monkeypatch.undo()
    chunks = hint_chunks(monkeypatch, ControlNet, builtin_registry, animated(model, mm, False), *applied[:2])
    assert chunks == [tuple(range(LENGTH)), tuple(range(LENGTH, FRAMES))] * len(WINDOWS)


def test_short_and_single_hints_under_pack_windows(builtin_registry, models, monkeypatch):
    """20 hint frames for 32: matched to the video by repeating the last (frame 19), then cut per window;
    one hint frame: every frame of every window."""
    model, positive, negative = conditioning(builtin_registry)
    net = call(builtin_registry, "LoadControlNet", control_net_name="cn.safetensors")
    video = animated(model, motion(), True)
    short = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative, control_net=net,
                 image=frames_image(20), strength=1.0, start_percent=0.0, end_percent=1.0)
    chunks = hint_chunks(monkeypatch, ControlNet, builtin_registry, video, *short)
    assert chunks == per_window([[min(f, 19) for f in w] for w in WINDOWS], chunks)
    monkeypatch.undo()
    single = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative, control_net=net,
                  image=frames_image(8)[5:6], strength=1.0, start_percent=0.0, end_percent=1.0)
    chunks = hint_chunks(monkeypatch, ControlNet, builtin_registry, video, *single)
    assert chunks == per_window([[5] * LENGTH] * len(WINDOWS), chunks)


def test_t2i_adapter_features_follow_the_window(builtin_registry, models, monkeypatch):
    """A T2I-Adapter keeps its features while the hint batch stays; each window's hint frames are
    another batch, so each window gets features of its own frames."""
    model, positive, negative = conditioning(builtin_registry)
    cfg = model.unet.config
    torch.manual_seed(0)
    adapter = T2IAdapter(T2IAdapterConfig(channels=tuple(m * cfg.model_channels for m in cfg.channel_mult)))
    applied = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative,
                   control_net=adapter, image=frames_image(FRAMES), strength=1.0, start_percent=0.0, end_percent=1.0)
    chunks = hint_chunks(monkeypatch, T2IAdapter, builtin_registry, animated(model, motion(), True), *applied)
    assert chunks == per_window(WINDOWS, chunks)


def test_inpainting_mask_is_matched_to_the_windows_hint_not_cut():
    """Advanced-ControlNet repeats an inpainting ControlNet's mask (its extra concat) to the window's hint
    count: every window takes the first masks, beside its own hint frames."""
    from graphflow.models.controlnet import ControlApplied

    image = frames_image(FRAMES)
    mask = (torch.arange(FRAMES, dtype=torch.float32) / STEP).reshape(FRAMES, 1, 1, 1).expand(FRAMES, 1, 64, 64)
    control = ControlApplied(None, image, 1.0, mask=mask.clone())
    for window in WINDOWS:
        token = control_window.set((tuple(window), FRAMES))
        try:
            rows = 2 * len(window)  # a window's cond and uncond in one call
            hint = control.hint(64, 64, rows, "cpu", torch.float32)
            keep = control.mask_hint(8, 8, rows, "cpu", torch.float32)
        finally:
            control_window.reset(token)
        assert torch.round(hint[:, 0, 0, 0] * STEP).long().tolist() == window * 2
        assert torch.round(keep[:, 0, 0, 0] * STEP).long().tolist() == list(range(LENGTH)) * 2


class HintNet:
    """A stand-in net whose residuals are its hint pooled to the latent size: they show which hint
    frames it was given."""

    def control(self, applied, x, timesteps, context, y, unet_config=None, **extra):
        hint = applied.hint(x.shape[2] * 8, x.shape[3] * 8, x.shape[0], x.device, x.dtype)
        r = F.avg_pool2d(hint, 8)
        return {"output": [r, r * 2.0], "middle": [r + 1.0]}


def extended(t: torch.Tensor, count: int) -> torch.Tensor:
    """Advanced-ControlNet's extend_to_batch_size: cut to count, or the last one repeated."""
    return t[:count] if t.shape[0] >= count else torch.cat([t] + [t[-1:]] * (count - t.shape[0]))


def acn_control(image, mask, weight_mask, latents):
    keyframe = TimestepKeyframe(null_latent_kf_strength=0.25, latent_keyframes=LatentKeyframes(latents))
    return AdvancedControl(HintNet(), image, 0.8, strength_mask=mask, keyframes=TimestepKeyframes.only(keyframe),
                           weights_override=ControlWeights(UNIVERSAL, base_multiplier=0.9, mask=weight_mask))


def test_acn_latent_keyframes_and_masks_follow_the_window():
    """Each window of the pack's context options against a control made by hand from the pack's rule:
    its hint frames, strength mask and weight mask cut from the video's (extended by the last one), and
    its latent keyframes those of the window's frames, renumbered (a negative index counts from the
    video's end; frames without one take null_latent_kf_strength)."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(20, 32, 32, 3, generator=g)
    mask = torch.rand(24, 32, 32, generator=g)
    weight_mask = torch.rand(FRAMES + 3, 4, 4, generator=g)
    latents = ((3, 0.9), (12, 0.5), (14, 0.7), (20, 1.3), (-1, 0.6), (-22, 0.8))
    control = acn_control(image, mask, weight_mask, latents)
    for window in WINDOWS:
        x = torch.zeros(len(window), 4, 4, 4)
        sigma = torch.full((len(window),), 5.0)
        token = control_window.set((tuple(window), FRAMES))
        try:
            got = control.own_residuals(x, sigma, sigma, None, None, None)
        finally:
            control_window.reset(token)
        index = torch.tensor(window)
        mapped = tuple((window.index(i % FRAMES), s) for i, s in latents if i % FRAMES in window)
        by_hand = acn_control(extended(image, FRAMES)[index], extended(mask, FRAMES)[index],
                              extended(weight_mask, FRAMES)[index], mapped)
        want = by_hand.own_residuals(x, sigma, sigma, None, None, None)
        assert got.keys() == want.keys()
        for key in want:
            for a, b in zip(got[key], want[key]):
                torch.testing.assert_close(a, b)
    # without a window (core's ContextWindowsManual) the latents are the window's own: frames 0-15
    x = torch.zeros(LENGTH, 4, 4, 4)
    sigma = torch.full((LENGTH,), 5.0)
    plain = acn_control(image, mask, weight_mask, latents).own_residuals(x, sigma, sigma, None, None, None)
    index = torch.tensor(WINDOWS[1])
    mapped = tuple((WINDOWS[1].index(i % FRAMES), s) for i, s in latents if i % FRAMES in WINDOWS[1])
    second = acn_control(extended(image, FRAMES)[index], extended(mask, FRAMES)[index],
                         extended(weight_mask, FRAMES)[index], mapped).own_residuals(x, sigma, sigma, None, None, None)
    assert not torch.allclose(plain["output"][0], second["output"][0])


# ---- the motion model in the memory manager ---------------------------------------------------

def budget(monkeypatch, nbytes):
    monkeypatch.setenv("GRAPHFLOW_VRAM_BUDGET_GB", repr(nbytes / memory.GiB))


def motion_components(manager):
    return [c for c in manager.components.values() if c.kind == "motion_model" and c.module() is not None]


def actions(manager, kind):
    return [e["action"] for e in manager.events if e.get("kind") == kind]


def test_motion_model_is_counted_loaded_streamed_offloaded_and_shared(fresh_manager, monkeypatch, tmp_path):
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.sampling.pipeline import sample

    ckpt = load_checkpoint(write_checkpoint(tmp_path / "sd1.safetensors", "sd1"), device="cpu", dtype=torch.float32)
    mm = load_motion_model(motion_module_state(unet_config("sd1"), "v1", seed=6))  # v1: GroupNorms over the frames
    assert next(mm.parameters()).dtype == torch.float16
    m_models = [(mm, MotionSettings(), (0.0, 1.0))]
    video = evolved_model(ckpt.model, "autoselect", m_models)
    other = evolved_model(ckpt.model, "use existing", m_models)  # another MODEL, the same motion model
    cond, _ = ckpt.clip.encode("a cat walking")
    uncond, _ = ckpt.clip.encode("")

    def run(model):
        return sample(model, 4, 2, 4.0, "euler", "normal", [(cond, {})], [(uncond, {})],
                      {"samples": torch.zeros(4, 4, 8, 8)})["samples"]

    want = run(video)
    (comp,) = motion_components(fresh_manager)
    # its bytes: every weight of the motion model in the UNet's float32 (the file's are float16)
    assert comp.size == 4 * sum(t.numel() for t in mm.state_dict().values())
    copy, _ = placed_motion(mm, torch.float32)
    assert comp.module() is copy and next(copy.parameters()).dtype == torch.float32
    assert next(mm.parameters()).dtype == torch.float16  # the motion model itself is left as it is
    unet_bytes = memory.module_bytes(ckpt.model.unet)
    fresh_manager.offload_all()
    fresh_manager.events.clear()

    budget(monkeypatch, unet_bytes + comp.size // 2)  # the motion model only in part beside the UNet
    assert torch.equal(run(video), want)
    assert "partial" in actions(fresh_manager, "motion_model")
    assert fresh_manager.streaming == 0

    fresh_manager.offload_all()
    fresh_manager.events.clear()
    budget(monkeypatch, unet_bytes + comp.size)  # both fit; then something else needs all the room
    assert torch.equal(run(video), want)
    assert actions(fresh_manager, "motion_model")[:1] == ["load"] and comp.state == "loaded"
    filler = torch.nn.Module()
    filler.weight = torch.nn.Parameter(torch.zeros((unet_bytes + comp.size) // 4), requires_grad=False)
    fresh_manager.load(filler, "other", "filler")
    assert "offload" in actions(fresh_manager, "motion_model") and comp.state == "offloaded"
    fresh_manager.offload(filler)
    fresh_manager.events.clear()
    assert torch.isfinite(run(other)).all()  # loaded again for the next run, the same copy
    assert actions(fresh_manager, "motion_model")[:1] == ["load"] and comp.state == "loaded"
    assert motion_components(fresh_manager) == [comp]

    # RAM short: the float32 copy (its own RAM) is dropped while idle and made again from the motion model
    fresh_manager.offload_all()
    fresh_manager.events.clear()
    monkeypatch.setenv("GRAPHFLOW_RAM_BUDGET_GB", repr(1024 / memory.GiB))
    fresh_manager.load(filler, "other", "filler")
    assert comp.state == "dropped" and next(copy.parameters()).is_meta
    monkeypatch.delenv("GRAPHFLOW_RAM_BUDGET_GB")
    fresh_manager.offload(filler)
    assert torch.equal(run(video), want)
    assert actions(fresh_manager, "motion_model")[:2] == ["drop", "reload"]
    assert next(mm.parameters()).dtype == torch.float16 and not next(mm.parameters()).is_meta
