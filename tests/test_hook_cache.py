"""The memory manager's cache of hook sets' patched weights (graphflow.memory, "Cached patch
sets"): sampling with it on is bit-identical to sampling with it off, each (hook set, strengths)
is computed once instead of at every switch, it stays unused (or is evicted first) when memory is
short, holds only the sets of the last round of model calls, and is empty with the weights back at
their originals after a run, also a failed one."""

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from graphflow import memory
from graphflow.memory import WeightPatch
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.lora import apply_lora, read_lora
from graphflow.sampling.hooks import Hooks, Keyframe, Keyframes, WeightHook, model_patches
from graphflow.sampling.model_sampling import DiscreteSchedule
from graphflow.sampling.pipeline import sample_with_sigmas
from graphflow.sampling.schedules import compute_sigmas

sys.path.insert(0, str(Path(__file__).parent))
from test_hooks import SHAPE, ckpt, files, prompts  # noqa: E402,F401  (the same model, LoRA and prompts)




@pytest.fixture
def computations(monkeypatch):
    """How many patched weights the manager computed (one call of memory._changed per weight)."""
    calls = []
    changed = memory._changed

    def counted(weight, patches):
        calls.append(len(patches))
        return changed(weight, patches)
    monkeypatch.setattr(memory, "_changed", counted)
    return calls


def lora_hook(files, strength=1.0, keyframes=None):
    return WeightHook("style", strength, 0.0, lora=read_lora(files["lora"]), keyframes=keyframes)


def run(model, positive, negative, steps, callback=None):
    sigmas = compute_sigmas(DiscreteSchedule.from_betas(), "normal", steps, 1.0)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    return sample_with_sigmas(model, sigmas, noise, torch.zeros(SHAPE), positive, negative, 3.0, "euler", 0,
                              callback=callback)


def state(model):
    return {k: v.detach().clone() for k, v in model.unet.state_dict().items()}


def same_weights(model, before):
    return all(torch.equal(v, before[k]) for k, v in model.unet.state_dict().items())


def patched_params(model, hook):
    return len({p.param for p in model_patches(model, hook, 1.0)})


def cached_sets_bytes(manager):
    """Bytes of cached patched weights (the device originals left out)."""
    return sum(e.nbytes for (_, ps), e in manager.patch_cache.items() if ps)


@pytest.mark.parametrize("own_lora", [False, True], ids=["plain_model", "lora_loader_model"])
def test_keyframed_hook_cache_on_and_off_bit_identical_and_computed_once_per_set(
        files, ckpt, prompts, fresh_manager, computations, own_lora):
    cond, uncond = prompts
    model = apply_lora(ckpt.model, None, files["lora"], 0.5, 0.0)[0] if own_lora else ckpt.model
    keyframes = Keyframes().add(Keyframe(1.0, 0.0)).add(Keyframe(0.4, 0.5))
    hook = lora_hook(files, 1.5, keyframes)
    positive, negative = [(cond, {"hooks": Hooks((hook,))})], [(uncond, {})]
    before = state(ckpt.model)
    steps = 4
    fresh_manager.cache_patches = False
    off = run(model, positive, negative, steps)
    computed_off = len(computations)
    fresh_manager.patch(model.unet, ())  # both runs start from the originals
    computations.clear()
    fresh_manager.cache_patches = True
    sizes = []
    on = run(model, positive, negative, steps, callback=lambda info: sizes.append(fresh_manager.cache_bytes()))
    assert torch.equal(on, off)
    n = patched_params(model, hook)  # the model's own LoRA is the same file: it patches the same weights
    # off: every switch recomputes (to the hooked set and, with a LoRA of the model's own, back)
    assert computed_off >= n * steps * (2 if own_lora else 1) - n
    # on: the model's own set once (memory.use), each of the keyframes' two strengths once
    assert len(computations) == n * (3 if own_lora else 2)
    assert max(sizes) > 0  # the cache was used
    assert fresh_manager.cache_bytes() == 0 and not fresh_manager.patch_cache
    fresh_manager.patch(model.unet, ())
    assert same_weights(ckpt.model, before) and fresh_manager.backup_bytes() == 0


def test_model_as_lora_hook_cache_on_and_off_bit_identical(files, ckpt, prompts, fresh_manager, computations):
    cond, uncond = prompts
    other = load_checkpoint(files["b"], device="cpu", dtype=torch.float32)
    hook = WeightHook("b", 0.7, 0.0, model=other.model)
    positive, negative = [(cond, {"hooks": Hooks((hook,))})], [(uncond, {})]
    before = state(ckpt.model)
    fresh_manager.cache_patches = False
    off = run(ckpt.model, positive, negative, 3)
    computed_off = len(computations)
    computations.clear()
    fresh_manager.cache_patches = True
    on = run(ckpt.model, positive, negative, 3)
    assert torch.equal(on, off)
    n = len(list(ckpt.model.unet.parameters()))  # a model taken as LoRA changes every weight
    assert computed_off == 3 * n and len(computations) == n
    assert same_weights(ckpt.model, before) and not fresh_manager.patch_cache


def exact_budget(monkeypatch, nbytes):
    gb = nbytes / memory.GiB
    if int(gb * memory.GiB) < nbytes:
        gb = math.nextafter(gb, math.inf)
    monkeypatch.setenv("GRAPHFLOW_VRAM_BUDGET_GB", repr(gb))


def test_no_room_for_the_cache_same_samples_and_nothing_cached(files, ckpt, prompts, fresh_manager, computations,
                                                               monkeypatch):
    cond, uncond = prompts
    hook = lora_hook(files, 1.0, Keyframes().add(Keyframe(1.0, 0.0)).add(Keyframe(0.3, 0.5)))
    positive, negative = [(cond, {"hooks": Hooks((hook,))})], [(uncond, {})]
    fresh_manager.cache_patches = False
    off = run(ckpt.model, positive, negative, 4)
    computed_off = len(computations)
    computations.clear()
    fresh_manager.cache_patches = True
    fresh_manager.offload_all()  # placed again under the budget
    exact_budget(monkeypatch, memory.module_bytes(ckpt.model.unet))  # the network fits, nothing beside it
    sizes = []
    on = run(ckpt.model, positive, negative, 4, callback=lambda info: sizes.append(fresh_manager.cache_bytes()))
    assert torch.equal(on, off)
    placed = fresh_manager.components[id(ckpt.model.unet)]
    assert placed.state == "loaded" and fresh_manager.free() == 0
    assert sizes == [0] * 4 and len(computations) == computed_off


def test_streamed_layers_cache_in_ram_and_sample_the_same(files, ckpt, prompts, fresh_manager, monkeypatch):
    cond, uncond = prompts
    hook = lora_hook(files)
    positive, negative = [(cond, {"hooks": Hooks((hook,))})], [(uncond, {})]
    fresh_manager.cache_patches = False
    off = run(ckpt.model, positive, negative, 3)
    fresh_manager.cache_patches = True
    before = state(ckpt.model)
    fresh_manager.offload_all()  # placed again under the budget
    exact_budget(monkeypatch, memory.module_bytes(ckpt.model.unet) // 2)  # half the network streamed
    where = []
    on = run(ckpt.model, positive, negative, 3,
             callback=lambda info: where.append({e.on_device for e in fresh_manager.patch_cache.values()}))
    assert fresh_manager.components[id(ckpt.model.unet)].state == "partial"
    assert torch.equal(on, off)
    assert any(False in w for w in where)  # streamed weights' copies kept in RAM
    assert fresh_manager.used() <= fresh_manager.capacity()
    assert same_weights(ckpt.model, before) and not fresh_manager.patch_cache


def test_cache_keeps_only_the_last_rounds_sets(files, ckpt, prompts, fresh_manager, computations):
    cond, uncond = prompts
    keyframes = Keyframes()
    for i, strength in enumerate((1.0, 0.8, 0.6, 0.4, 0.2, 0.1)):
        keyframes = keyframes.add(Keyframe(strength, i / 6))
    hook = lora_hook(files, 1.0, keyframes)
    positive, negative = [(cond, {"hooks": Hooks((hook,))})], [(uncond, {})]
    names = {q.param for q in model_patches(ckpt.model, hook, 1.0)}
    n_bytes = sum(p.numel() * p.element_size() for name, p in ckpt.model.unet.named_parameters() if name in names)
    sizes = []
    run(ckpt.model, positive, negative, 6, callback=lambda info: sizes.append(cached_sets_bytes(fresh_manager)))
    sets = len(computations) // patched_params(ckpt.model, hook)
    assert sets >= 4  # the strength changed at least three times
    assert 0 < max(sizes) <= 2 * n_bytes  # this round's set and the last one's, not every earlier keyframe's


def test_weights_and_cache_after_a_failed_run(files, ckpt, prompts, fresh_manager):
    cond, uncond = prompts
    model = apply_lora(ckpt.model, None, files["lora"], 0.5, 0.0)[0]
    positive, negative = [(cond, {"hooks": Hooks((lora_hook(files),))})], [(uncond, {})]
    before = state(ckpt.model)
    cached = []

    def stop(info):
        cached.append(fresh_manager.cache_bytes())
        if info["i"] == 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run(model, positive, negative, 4, callback=stop)
    assert cached[-1] > 0  # it failed with weights cached
    assert not fresh_manager.patch_cache
    fresh_manager.patch(model.unet, ())
    assert same_weights(ckpt.model, before) and fresh_manager.backup_bytes() == 0


def test_cache_is_evicted_before_another_component_is_offloaded(fresh_manager, monkeypatch):
    torch.manual_seed(0)
    net, other = (nn.Sequential(*[nn.Linear(64, 64) for _ in range(4)]) for _ in range(2))
    size = memory.module_bytes(net)
    weight = net[0].weight.detach().clone()
    patches = (WeightPatch("0.weight", lambda w: w + 1),)
    exact_budget(monkeypatch, 2 * size)
    with memory.use(net, "vae"):
        fresh_manager.patch(net, patches, cache=True)
        fresh_manager.patch(net, (), cache=True)  # the patched weight kept for a switch back
        assert fresh_manager.cache_bytes(True) == weight.numel() * 4
        assert torch.equal(net[0].weight, weight)
        with memory.use(other, "vae"):  # fits only without the cached copy
            pass
    actions = [e["action"] for e in fresh_manager.events]
    assert "evict_patch_cache" in actions and "offload" not in actions
    assert fresh_manager.components[id(net)].state == "loaded" and not fresh_manager.patch_cache
    fresh_manager.patch(net, ())
    assert torch.equal(net[0].weight, weight) and fresh_manager.backup_bytes() == 0
