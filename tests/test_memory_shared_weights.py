"""Components whose modules share weights (a `_shallow` copy, a `patched_copy`, AnimateDiff's UNet
with a motion model) are one group to the memory manager: their shared tensors are counted once,
offloading one offloads the others' records too (the next run loads them again), a member placed in
part is its group's only placed member, and eviction passes over a group while a member runs.

The compute device is "cpu:0" (a device apart from the offload device, as a GPU is), so the placement
is the manager's record: the device mismatch a stale record caused on a GPU cannot happen here, the
tests check the records and the moves the manager makes instead."""

import threading

import pytest
import torch
from torch import nn

from graphflow import memory
from graphflow.models.lora import _shallow, patched_copy

GiB = memory.GiB


def budget(monkeypatch, nbytes):
    monkeypatch.setenv("GRAPHFLOW_VRAM_BUDGET_GB", repr(nbytes / GiB))


def net(width=64, depth=4):
    torch.manual_seed(0)
    return nn.Sequential(*(nn.Linear(width, width) for _ in range(depth)))


def loads(manager, name):
    return [e["action"] for e in manager.events if e.get("component") == name]


def test_two_modules_sharing_weights_are_counted_once(fresh_manager, cpu0_device):
    base = net()
    copy = _shallow(base)
    size = memory.module_bytes(base)
    a = fresh_manager.load(base, "diffusion_model", "base")
    b = fresh_manager.load(copy, "diffusion_model", "copy")
    assert a.state == b.state == "loaded"
    assert fresh_manager.used() == size  # not twice
    assert fresh_manager.peak == size
    assert a.run_lock.locks() == b.run_lock.locks()  # their runs take turns: they patch the same Parameters
    vae = net(32)
    other = fresh_manager.load(vae, "vae", "other")
    assert fresh_manager.used() == size + other.size


def test_a_partial_copy_counts_its_own_tensors_beside_the_shared_ones(fresh_manager, cpu0_device):
    base = net()
    copy = patched_copy(base, {"0.weight": torch.zeros(64, 64)})  # one weight its own, the rest shared
    fresh_manager.load(base, "diffusion_model", "base")
    fresh_manager.load(copy, "diffusion_model", "copy")
    assert fresh_manager.used() == memory.module_bytes(base) + 64 * 64 * 4


def test_ram_counts_shared_weights_once(fresh_manager):
    base = net()  # the device is the CPU here: everything is RAM
    copy = _shallow(base)
    fresh_manager.register(base, "diffusion_model", "base")
    fresh_manager.register(copy, "diffusion_model", "copy")
    assert fresh_manager.ram_used() == memory.module_bytes(base)


def test_offloading_one_offloads_the_other_and_the_next_run_reloads_it(fresh_manager, cpu0_device):
    base = net()
    copy = _shallow(base)
    outputs = []
    fresh_manager.load(base, "diffusion_model", "base")
    b = fresh_manager.load(copy, "diffusion_model", "copy")
    fresh_manager.offload(base)
    assert b.state == "offloaded" and b.resident_bytes == 0  # its weights went with the base's
    assert fresh_manager.used() == 0
    fresh_manager.events.clear()
    x = torch.randn(2, 64)
    with memory.use(copy, "diffusion_model", "copy") as comp:  # not skipped as "loaded"
        assert comp.state == "loaded"
        outputs.append(copy(x))
    assert loads(fresh_manager, "copy") == ["load"]
    assert torch.equal(outputs[0], base(x))


def test_a_copy_made_while_its_original_is_loaded_is_not_taken_as_loaded(fresh_manager, cpu0_device, monkeypatch):
    """The record of a new copy said "loaded" when its first weight was on the device (through the
    original): its own tensors were never moved, and it was counted twice. On "cpu:0" no tensor is on
    the device, so where the first weight is is taken from the manager's record here."""
    base = net()
    fresh_manager.load(base, "diffusion_model", "base")
    monkeypatch.setattr(memory, "_device_of", lambda module: fresh_manager.device)
    # a copy with a weight of its own made on the device (as a GPU's patched copy would be)
    copy = patched_copy(base, {"3.bias": torch.ones(64, device=fresh_manager.device)})
    comp = fresh_manager.register(copy, "diffusion_model", "copy")
    assert comp.state == "offloaded" and fresh_manager.used() == memory.module_bytes(base)


def test_a_member_placed_in_part_is_alone_in_its_group(fresh_manager, cpu0_device):
    """Under `--vram none` nothing is evicted for room (every block streams), so only the group rule
    can take the first member's streaming hooks off the blocks both share: with them, each block had
    two pairs of hooks and its streamed bytes were counted twice."""
    fresh_manager.configure("none")
    base = net(depth=8)
    copy = _shallow(base)
    a = fresh_manager.load(base, "diffusion_model", "base")
    assert a.state == "partial" and a.hooks
    b = fresh_manager.load(copy, "diffusion_model", "copy")
    assert b.state == "partial" and b.hooks
    assert a.state == "offloaded" and not a.hooks  # its streaming hooks would move the shared blocks
    assert all(len(block._forward_pre_hooks) == 1 for block in copy)
    x = torch.randn(2, 64)
    want = base(x)
    peaks = []
    copy[0].register_forward_pre_hook(lambda *_: peaks.append(fresh_manager.streaming))  # after streaming in
    assert torch.equal(copy(x), want) and fresh_manager.streaming == 0
    assert peaks == [int(memory._own_bytes(copy[0]))]  # the streamed block counted once


def test_eviction_passes_over_a_group_while_a_member_runs(fresh_manager, cpu0_device, monkeypatch):
    base = net()
    copy = _shallow(base)
    other = net(depth=2)
    size, other_size = memory.module_bytes(base), memory.module_bytes(other)
    budget(monkeypatch, size + other_size // 2)
    fresh_manager.load(base, "diffusion_model", "base")  # loaded, idle
    with memory.use(copy, "diffusion_model", "copy"):  # runs: the group holds the shared weights
        c = fresh_manager.load(other, "control", "other")
        # before: the idle base was offloaded for the room, its shared weights leaving under the running copy
        assert fresh_manager.components[id(base)].state == "loaded"
        assert fresh_manager.components[id(copy)].state == "loaded"
        assert c.state == "partial"
        fresh_manager.offload(base)  # nothing moves while its group-mate runs
        assert fresh_manager.components[id(copy)].state == "loaded"
    c = fresh_manager.load(other, "control", "other")  # now the group may go
    assert c.state == "loaded"
    assert fresh_manager.components[id(base)].state == fresh_manager.components[id(copy)].state == "offloaded"


def test_two_animatediff_models_on_one_unet(fresh_manager, cpu0_device, monkeypatch, tmp_path):
    """The reviewer's case: two evolved MODELs from one checkpoint (shallow copies of its UNet) sampled in
    turn count the UNet once; offloading one leaves the other offloaded too and its next run loads it."""
    from graphflow.models import animatediff as ad
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.sampling.pipeline import sample
    from graphflow.testing import motion_module_state, unet_config, write_checkpoint
    from nodes.animatediff import evolved_model

    ckpt = load_checkpoint(write_checkpoint(tmp_path / "sd1.safetensors", "sd1"), device="cpu", dtype=torch.float32)
    mm = ad.load_motion_model(motion_module_state(unet_config("sd1"), "v2", seed=6))
    mods = [(mm, ad.MotionSettings(), (0.0, 1.0))]
    video = evolved_model(ckpt.model, "autoselect", mods)
    other = evolved_model(ckpt.model, "use existing", mods)
    cond, _ = ckpt.clip.encode("a cat")
    uncond, _ = ckpt.clip.encode("")

    def run(model):
        return sample(model, 4, 1, 4.0, "euler", "normal", [(cond, {})], [(uncond, {})],
                      {"samples": torch.zeros(4, 4, 8, 8)})["samples"]

    budget(monkeypatch, 10 * GiB)
    want = {id(m): run(m) for m in (video, other)}
    unets = [fresh_manager.components[id(m.unet)] for m in (video, other)]
    assert [c.state for c in unets] == ["loaded", "loaded"]
    motion = sum(c.resident_bytes for c in fresh_manager.components.values() if c.kind == "motion_model")
    assert fresh_manager.used() == memory.module_bytes(ckpt.model.unet) + motion  # the UNet once
    fresh_manager.offload(video.unet)
    assert [c.state for c in unets] == ["offloaded", "offloaded"]
    fresh_manager.events.clear()
    assert torch.equal(run(other), want[id(other)])
    assert [e["action"] for e in fresh_manager.events if e.get("kind") == "diffusion_model"] == ["load"]

    # two runs at once (server workers) of MODELs with different LoRA-like patches on the one UNet: the
    # group's run lock makes them take turns (running together, each would patch the weights under the
    # other), taken in one order with the motion model's, so neither waits for the other for ever
    name = next(n for n, _ in video.unet.named_parameters())
    patched = [m.with_patches(m.patches + (memory.WeightPatch(name, lambda w, f=f: w * f),))
               for m, f in ((video, 1.5), (other, 0.5))]
    want = {id(m): run(m) for m in patched}
    assert not torch.equal(*want.values())
    inside, release, entered = threading.Event(), threading.Event(), []

    def hold(module, args):  # the first run waits inside the network until the test lets it go
        entered.append(threading.get_ident())
        if not inside.is_set():
            inside.set()
            release.wait(30)
    handle = [m for m in video.unet.modules() if m is not video.unet and any(True for _ in m.parameters())][0]
    handle = handle.register_forward_pre_hook(hold)
    got = {}
    threads = [threading.Thread(target=lambda m=m: got.__setitem__(id(m), run(m))) for m in patched]
    try:
        threads[0].start()
        assert inside.wait(60)
        first = entered[0]
        threads[1].start()
        threads[1].join(timeout=1.0)
        assert set(entered) == {first}  # the second run waits outside the network
    finally:
        release.set()
        for t in threads:
            t.join(timeout=120)
        handle.remove()
    assert not any(t.is_alive() for t in threads)
    assert all(torch.equal(got[key], want[key]) for key in want)


class _Both(nn.Module):
    """A component sharing weights with two others (AnimateDiff's UNet copy holding a motion model)."""

    def __init__(self, unet, motion):
        super().__init__()
        self.unet, self.motion = _shallow(unet), motion


def _running(manager, module, name, started, finish):
    def run():
        with manager.use(module, "diffusion_model", name):
            started.set()
            finish.wait(10)
    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10)
    return thread


@pytest.mark.parametrize("m_ends_first", [True, False])
def test_groups_joining_keep_the_locks_runs_hold(fresh_manager, cpu0_device, m_ends_first):
    """The reviewer's interleaving: A and M run (two groups), X joins them; the joined group's lock was
    M's or A's alone, so a run of X went on while the other's run still held its old lock."""
    unet, motion = net(), net(depth=2)
    events = {k: threading.Event() for k in ("a_started", "a_finish", "m_started", "m_finish")}
    run_m = _running(fresh_manager, motion, "M", events["m_started"], events["m_finish"])
    run_a = _running(fresh_manager, unet, "A", events["a_started"], events["a_finish"])
    both = _Both(unet, motion)
    fresh_manager.register(both, "diffusion_model", "X")
    first, second = ("m", "a") if m_ends_first else ("a", "m")
    events[f"{first}_finish"].set()
    (run_m if m_ends_first else run_a).join(10)
    x_ran = threading.Event()

    def run_x():
        with fresh_manager.use(both, "diffusion_model", "X"):
            x_ran.set()
    thread = threading.Thread(target=run_x)
    thread.start()
    assert not x_ran.wait(0.5)  # the other group's run still goes on: X waits for it
    events[f"{second}_finish"].set()
    assert x_ran.wait(10)  # and runs when it ends (no deadlock)
    for t in (thread, run_m, run_a):
        t.join(10)
        assert not t.is_alive()


def test_runs_going_when_their_groups_join_go_on(fresh_manager, cpu0_device):
    """A run that started before the join takes its own lock again inside it (use() after the
    pipeline's gathered locks) without waiting for the other group's run."""
    unet, motion = net(), net(depth=2)
    started, finish = threading.Event(), threading.Event()
    run_m = _running(fresh_manager, motion, "M", started, finish)
    lock = fresh_manager.register(unet, "diffusion_model", "A").run_lock
    done = threading.Event()

    def run_a():
        with memory.run_locks([lock]):
            fresh_manager.register(_Both(unet, motion), "diffusion_model", "X")  # the groups join
            with fresh_manager.use(unet, "diffusion_model", "A"):
                done.set()
    thread = threading.Thread(target=run_a)
    thread.start()
    assert done.wait(10)
    finish.set()
    for t in (thread, run_m):
        t.join(10)
        assert not t.is_alive()


def test_pin_to_cpu_leaves_a_running_member_where_it_is(fresh_manager, cpu0_device):
    a = net()
    b = _shallow(a)
    with memory.use(a, "diffusion_model", "a") as comp:
        pinned = fresh_manager.pin_to_cpu(b, "text_encoder", "b")
        assert pinned.pinned and comp.state == "loaded" and comp.resident_bytes  # not moved under its run
        assert loads(fresh_manager, "a") == ["load"]
    assert comp.state == "offloaded" and fresh_manager.used() == 0  # moved when its run ended


def test_a_group_with_a_pinned_member_runs_on_the_cpu(fresh_manager, cpu0_device):
    a = net()
    b = _shallow(a)
    fresh_manager.pin_to_cpu(b, "text_encoder", "b")
    comp = fresh_manager.load(a, "diffusion_model", "a")
    assert comp.state == "offloaded" and fresh_manager.used() == 0
    assert fresh_manager.device_for(a) == torch.device("cpu") == fresh_manager.device_for(b)


def test_a_sibling_loaded_while_a_member_placed_in_part_runs(fresh_manager, cpu0_device, monkeypatch):
    """Loading a sibling whole over the budget left the running member's record "partial" with its
    streaming hooks on the shared blocks (they moved the sibling's weights out), and said nothing."""
    a = net()
    size = memory.module_bytes(a)
    budget(monkeypatch, size * 0.6)
    c = _shallow(a)
    with memory.use(a, "diffusion_model", "a") as comp:
        assert comp.state == "partial"
        sibling = fresh_manager.load(c, "diffusion_model", "c")
        assert sibling.state == comp.state == "loaded" and not comp.hooks
        assert fresh_manager.used() == size > fresh_manager.capacity()
        assert [e for e in fresh_manager.events if e["action"] == "over_budget"][-1]["component"] == "c"
        x = torch.randn(2, 64)
        assert torch.equal(c(x), a(x))
