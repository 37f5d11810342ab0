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
and shared by two MODELs with the same motion model; placed once a run (not at each temporal call),
on a compute device named with an index the tensors' device lacks or the other way round, as CUDA's
"cuda" and a tensor's cuda:0 (simulated on the CPU by "cpu:0"); two runs holding the same motion
models in other orders take their locks in one order.
"""

import shutil
import threading
import time
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

from graphflow import memory
from graphflow.device import same_device
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


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The checkpoint and ControlNet, written once a module (no test writes to them)."""
    root = tmp_path_factory.mktemp("windows_models")
    for sub in ("checkpoints", "controlnet"):
        (root / sub).mkdir()
    write_checkpoint(root / "checkpoints" / "tiny.safetensors", "sd1")
    write_controlnet(root / "controlnet" / "cn.safetensors", "sd1", seed=1)
    return root


@pytest.fixture
def models(tmp_folders, files):
    shutil.copytree(files, tmp_folders.models, dirs_exist_ok=True)
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


def test_acn_masks_under_uniform_windows_are_made_once_a_run():
    """Uniform schedules move the windows every step: each window still gets the masks and latent
    keyframes of its frames (the control made by hand from the pack's rule), and the run's cache holds
    the whole video's masks and strengths once, not one set per window; the run's end lets go of it."""
    frames, length, overlap, steps = 24, 8, 2, 6
    g = torch.Generator().manual_seed(1)
    image = torch.rand(frames, 32, 32, 3, generator=g)
    mask = torch.rand(frames - 5, 32, 32, generator=g)  # shorter than the video: the last one repeated
    weight_mask = torch.rand(frames + 3, 4, 4, generator=g)
    latents = ((3, 0.9), (12, 0.5), (-1, 0.6))
    control = acn_control(image, mask, weight_mask, latents)
    seen, sizes = set(), []
    for step in range(steps):
        sigma = torch.full((length,), 10.0 - step)
        for window in context_windows(frames, length, overlap, "looped_uniform", 1, False, step):
            seen.add(tuple(window))
            x = torch.zeros(length, 4, 4, 4)
            token = control_window.set((tuple(window), frames))
            try:
                got = control.own_residuals(x, sigma, sigma, None, None, None)
            finally:
                control_window.reset(token)
            index = torch.tensor(window)
            mapped = tuple((window.index(i % frames), s) for i, s in latents if i % frames in window)
            want = acn_control(extended(image, frames)[index], extended(mask, frames)[index],
                               extended(weight_mask, frames)[index], mapped).own_residuals(x, sigma, sigma, None, None,
                                                                                           None)
            for key in want:
                for a, b in zip(got[key], want[key]):
                    torch.testing.assert_close(a, b)
        sizes.append(len(control._run.tensors))
    first = context_windows(frames, length, overlap, "looped_uniform", 1, False, 0)
    assert len(seen) >= 2 * len(first)  # the windows did move
    assert sizes == sizes[:1] * steps  # nothing more was kept after the first step's windows
    assert sizes[0] <= 6  # the two masks at pixel and residual size, the video's strengths
    control.end_run()
    assert control._run.tensors == {}


def test_window_frames_takes_a_short_hints_frames_without_extending_it(monkeypatch):
    from graphflow.models import controlnet

    def refused(t, count):
        raise AssertionError(f"a copy of the hint extended to {count} frames")

    monkeypatch.setattr(controlnet, "extend_to", refused)
    hint = torch.arange(5.0).reshape(5, 1, 1, 1)
    token = control_window.set(((2, 3, 4, 5, 6, 0), 1000))
    try:
        got = controlnet.window_frames(hint)
    finally:
        control_window.reset(token)
    assert got.reshape(-1).tolist() == [2, 3, 4, 4, 4, 0]  # frames past the hint take its last one


# ---- the motion model in the memory manager ---------------------------------------------------

def budget(monkeypatch, nbytes):
    monkeypatch.setenv("GRAPHFLOW_VRAM_BUDGET_GB", repr(nbytes / memory.GiB))


def motion_components(manager):
    return [c for c in manager.components.values() if c.kind == "motion_model" and c.module() is not None]


def actions(manager, kind):
    return [e["action"] for e in manager.events if e.get("kind") == kind]


def test_motion_model_is_counted_loaded_streamed_offloaded_and_shared(fresh_manager, monkeypatch, files):
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.sampling.pipeline import sample

    ckpt = load_checkpoint(files / "checkpoints" / "tiny.safetensors", device="cpu", dtype=torch.float32)
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


def test_same_device_takes_an_index_less_device_as_its_current_one():
    current = torch.cuda.current_device() if torch.cuda.is_available() else 0
    assert same_device(torch.device("cuda"), torch.device("cuda", current))
    assert same_device(torch.device("cpu", 0), torch.device("cpu"))
    assert not same_device(torch.device("cuda", 1), torch.device("cuda", 0))
    assert not same_device(torch.device("cpu"), torch.device("cuda", 0))
    assert not same_device(None, torch.device("cpu"))


def test_a_partly_loaded_motion_copy_is_placed_once_a_run(fresh_manager, cpu0_device, monkeypatch, files):
    """Each temporal call saw the manager's device ("cuda", here "cpu:0") unequal to x's (cuda:0, "cpu")
    and loaded the copy again: a partly loaded one was placed anew at every call."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.sampling.pipeline import sample

    assert fresh_manager.device != fresh_manager.offload_device
    ckpt = load_checkpoint(files / "checkpoints" / "tiny.safetensors", device="cpu", dtype=torch.float32)
    mm = load_motion_model(motion_module_state(unet_config("sd1"), "v2", seed=6))
    video = evolved_model(ckpt.model, "autoselect", [(mm, MotionSettings(), (0.0, 1.0))])
    cond, _ = ckpt.clip.encode("a cat")
    uncond, _ = ckpt.clip.encode("")

    def run():
        return sample(video, 4, 3, 4.0, "euler", "normal", [(cond, {})], [(uncond, {})],
                      {"samples": torch.zeros(4, 4, 8, 8)})["samples"]

    want = run()
    assert actions(fresh_manager, "motion_model") == ["load"]
    (comp,) = motion_components(fresh_manager)
    fresh_manager.offload_all()
    fresh_manager.events.clear()
    budget(monkeypatch, memory.module_bytes(ckpt.model.unet) + comp.size // 2)
    assert torch.equal(run(), want)
    assert actions(fresh_manager, "motion_model") == ["partial"]  # once, not at each of the 3 steps' 14 calls


def test_place_control_leaves_a_partly_loaded_controlnet_streamed(fresh_manager, cpu0_device, monkeypatch, files):
    from graphflow.models.controlnet import load_control_model, place_control

    net = load_control_model(files / "controlnet" / "cn.safetensors", dtype=torch.float32)
    budget(monkeypatch, memory.module_bytes(net) // 2)
    comp = fresh_manager.load(net, "control", "cn")
    assert comp.state == "partial"
    moves = []
    monkeypatch.setattr(net, "to", lambda *args, **kwargs: moves.append((args, kwargs)) or net)
    place_control(net, torch.zeros(2, 4, 8, 8))
    assert moves == [] and comp.state == "partial"
    fresh_manager.offload(net)
    place_control(net, torch.zeros(2, 4, 8, 8))  # outside a sampling run: moved to x's device
    assert len(moves) == 1


def test_two_runs_with_motion_models_in_other_orders_do_not_deadlock(fresh_manager, monkeypatch, files):
    """MODEL A runs motion models (M1, M2), MODEL B (M2, M1), on two threads (server workers): each used
    to hold its first motion copy's run lock while waiting for the other's. The barrier lets both reach
    their first motion copy before going on (when one run holds every lock, the other waits before
    it: the barrier times out and both go on)."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.sampling.pipeline import sample

    ckpt = load_checkpoint(files / "checkpoints" / "tiny.safetensors", device="cpu", dtype=torch.float32)
    m1 = load_motion_model(motion_module_state(unet_config("sd1"), "v2", seed=1))
    m2 = load_motion_model(motion_module_state(unet_config("sd1"), "v2", seed=2))
    s = MotionSettings()
    a = evolved_model(ckpt.model, "autoselect", [(m1, s, (0.0, 1.0)), (m2, s, (0.0, 1.0))])
    b = evolved_model(ckpt.model, "autoselect", [(m2, s, (0.0, 1.0)), (m1, s, (0.0, 1.0))])
    cond, _ = ckpt.clip.encode("a cat")
    uncond, _ = ckpt.clip.encode("")
    barrier = threading.Barrier(2)
    first = threading.local()
    plain_use = memory.use

    @contextmanager
    def use(module, kind, name=None, patches=()):
        with plain_use(module, kind, name, patches) as comp:
            if kind == "motion_model" and not getattr(first, "done", False):
                first.done = True
                try:
                    barrier.wait(timeout=3)
                except threading.BrokenBarrierError:
                    pass
            yield comp

    monkeypatch.setattr(memory, "use", use)
    done, errors = [], []

    def worker(model, tag):
        try:
            sample(model, 4, 1, 4.0, "euler", "normal", [(cond, {})], [(uncond, {})],
                   {"samples": torch.zeros(4, 4, 8, 8)})
            done.append(tag)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(model, tag), daemon=True) for model, tag in ((a, "A"), (b, "B"))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 90
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not [t for t in threads if t.is_alive()], "the two runs deadlocked"
    assert errors == [] and sorted(done) == ["A", "B"]


def test_a_same_dtype_motion_copy_shares_the_motion_models_ram_again(fresh_manager, monkeypatch):
    """The copy in the motion model's dtype starts on its tensors; a move back from a device gives it CPU
    tensors of its own (done here by hand: on the CPU nothing moves); dropped from RAM when RAM runs
    short, it is made again sharing the motion model's tensors."""
    mm = load_motion_model(motion_module_state(unet_config("sd1"), "v2", seed=7, dtype=torch.float32))
    copy, _ = placed_motion(mm, torch.float32)

    def shared():
        return all(a.data_ptr() == b.data_ptr() for a, b in zip(copy.state_dict().values(), mm.state_dict().values()))

    assert shared()
    for p in copy.parameters():  # as the manager's offload from a GPU leaves them
        p.data = p.data.clone()
    assert not shared()
    filler = torch.nn.Module()
    filler.weight = torch.nn.Parameter(torch.zeros(16), requires_grad=False)
    monkeypatch.setenv("GRAPHFLOW_RAM_BUDGET_GB", repr(1024 / memory.GiB))
    fresh_manager.load(filler, "other", "filler")
    assert actions(fresh_manager, "motion_model") == ["drop"]
    monkeypatch.delenv("GRAPHFLOW_RAM_BUDGET_GB")
    fresh_manager.load(copy, "motion_model", "motion")
    assert actions(fresh_manager, "motion_model")[-1:] == ["load"] and shared()


def test_a_freed_components_bytes_leave_the_device_count(fresh_manager, monkeypatch):
    """A MODEL and its motion model dropped: their records stay until the next register / status, but
    the weights went with the modules, so used() no longer counts them (it did until then)."""
    import gc

    budget(monkeypatch, 1 << 20)
    kept, freed = torch.nn.Linear(8, 8), torch.nn.Linear(16, 16)
    fresh_manager.load(kept, "other", "kept")
    fresh_manager.load(freed, "motion_model", "freed")
    assert fresh_manager.used() == memory.module_bytes(kept) + memory.module_bytes(freed)
    del freed
    gc.collect()
    assert len(fresh_manager.components) == 2  # not forgotten yet
    assert fresh_manager.used() == memory.module_bytes(kept)
