"""LoRA as weight patches on one shared network (graphflow.memory): images bit-identical (fp32)
to a copy merged by hand, base and LoRA models alternating in one graph, originals restored
bit-exactly, the memory a LoRA adds, partial loading, the text encoder."""

import copy

import pytest
import torch
from safetensors.torch import load_file

from graphflow import memory
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.lora import apply_lora, text_lora_names, unet_lora_names
from graphflow.sampling.pipeline import sample
from graphflow.testing import write_checkpoint, write_lora

GiB = memory.GiB
MODES = ("in_place", "on_the_fly")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_memory")
    return (write_checkpoint(root / "sd1.safetensors", "sd1"),
            write_lora(root / "a.safetensors", "sd1", rank=4, alpha=2.0, seed=1, scale=0.2),
            write_lora(root / "b.safetensors", "sd1", rank=2, alpha=None, seed=2, scale=0.2))


@pytest.fixture(scope="module")
def checkpoint_bytes(files):
    loaded = load_checkpoint(files[0], device="cpu", dtype=torch.float32)
    modules = [loaded.model.unet, loaded.vae.module, *(t.model for t in loaded.clip.towers)]
    return sum(memory.module_bytes(m) for m in modules)


@pytest.fixture
def ckpt(files):
    return load_checkpoint(files[0], device="cpu", dtype=torch.float32)


@pytest.fixture
def set_mode(monkeypatch, checkpoint_bytes):
    """in_place: RAM unlimited; on_the_fly: a simulated RAM that holds the checkpoint but not the
    originals of the LoRA's weights beside it."""
    def set_to(mode):
        if mode == "in_place":
            monkeypatch.delenv("GRAPHFLOW_RAM_BUDGET_GB", raising=False)
        else:
            monkeypatch.setenv("GRAPHFLOW_RAM_BUDGET_GB", repr(1.1 * checkpoint_bytes / GiB))
    return set_to


def merge_by_hand(module, names, lora_file, strength):
    """A deep copy of `module` with W + strength * (alpha / rank) up @ down in each named layer."""
    merged = copy.deepcopy(module)
    for key, path in names.items():
        if key + ".lora_down.weight" not in lora_file:
            continue
        weight = merged.get_submodule(path).weight
        down, up = lora_file[key + ".lora_down.weight"].float(), lora_file[key + ".lora_up.weight"].float()
        alpha = float(lora_file[key + ".alpha"]) if key + ".alpha" in lora_file else down.shape[0]
        delta = (up.flatten(1) @ down.flatten(1)) * (alpha / down.shape[0])
        weight.data = weight.float() + strength * delta.reshape(weight.shape)
    return merged


def merged_clip(clip, lora_file, strength):
    towers = list(clip.towers)
    for index, tower in enumerate(towers):
        names = {k: p for k, (i, p) in text_lora_names(clip).items() if i == index}
        towers[index] = tower.with_model(merge_by_hand(tower.model, names, lora_file, strength))
    return clip.with_towers(towers)


def image(model, clip, vae, seed=3):
    cond, _ = clip.encode("a red cat")
    uncond, _ = clip.encode("")
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    out = sample(model, seed, 1, 3.0, "euler", "normal", [(cond, {})], [(uncond, {})], latent)
    return vae.decode(out["samples"])


def params(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("mode", MODES)
def test_lora_images_match_a_copy_merged_by_hand(fresh_manager, monkeypatch, set_mode, files, ckpt, mode):
    set_mode(mode)
    _, lora_path, _ = files
    lora_file = load_file(str(lora_path))
    model, clip = apply_lora(ckpt.model, ckpt.clip, lora_path, 0.8, 0.6)
    by_hand = ckpt.model.with_unet(merge_by_hand(ckpt.model.unet, unet_lora_names(ckpt.model.unet), lora_file, 0.8))
    want = image(by_hand, merged_clip(ckpt.clip, lora_file, 0.6), ckpt.vae)
    got = image(model, clip, ckpt.vae)
    assert torch.equal(got, want)
    assert not torch.equal(got, image(ckpt.model, ckpt.clip, ckpt.vae))  # the LoRA does change the image
    modes = {e["mode"] for e in fresh_manager.events if e["action"] == "patch"}
    assert modes == {"in_place"} if mode == "in_place" else "on_the_fly" in modes  # the UNet's originals don't fit


@pytest.fixture(scope="module")
def separate_images(files):
    """Base, LoRA a, LoRA b and a+b, each from its own freshly loaded checkpoint."""
    path, lora_a, lora_b = files

    def separately(which):
        fresh = load_checkpoint(path, device="cpu", dtype=torch.float32)
        model, clip = fresh.model, fresh.clip
        for lora in which:
            model, clip = apply_lora(model, clip, lora, 0.9, 0.7)
        return image(model, clip, fresh.vae)

    return {"base": separately([]), "a": separately([lora_a]), "b": separately([lora_b]),
            "a+b": separately([lora_a, lora_b])}


@pytest.mark.parametrize("mode", MODES)
def test_base_and_two_loras_alternating_match_separate_runs(fresh_manager, monkeypatch, set_mode, files,
                                                            separate_images, mode):
    set_mode(mode)
    path, lora_a, lora_b = files
    want = separate_images
    shared = load_checkpoint(path, device="cpu", dtype=torch.float32)
    models = {"base": (shared.model, shared.clip)}
    models["a"] = apply_lora(shared.model, shared.clip, lora_a, 0.9, 0.7)
    models["b"] = apply_lora(shared.model, shared.clip, lora_b, 0.9, 0.7)
    models["a+b"] = apply_lora(*models["a"], lora_b, 0.9, 0.7)
    for name in ("a", "base", "b", "a+b", "a", "b"):
        assert torch.equal(image(*models[name], shared.vae), want[name]), name
    assert len({id(m.unet) for m, _ in models.values()}) == 1  # one network for all four


def test_graph_with_base_and_lora_branches_matches_separate_graphs(fresh_manager, builtin_registry, tmp_folders, files):
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    path, lora_a, _ = files
    for sub, file in (("checkpoints", path), ("loras", lora_a)):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
        (tmp_folders.models / sub / file.name).write_bytes(file.read_bytes())

    def branch(tag, model, clip):
        return {f"6{tag}": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red cat", "clip": clip}},
                f"3{tag}": {"class_type": "KSampler", "inputs": {
                    "seed": 5, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                    "model": model, "positive": [f"6{tag}", 0], "negative": [f"6{tag}", 0], "latent_image": ["5", 0]}},
                f"8{tag}": {"class_type": "VAEDecode", "inputs": {"samples": [f"3{tag}", 0], "vae": ["4", 2]}},
                f"9{tag}": {"class_type": "PreviewImage", "inputs": {"images": [f"8{tag}", 0]}}}

    common = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": path.name}},
              "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": lora_a.name,
                                                             "strength_model": 1.0, "strength_clip": 1.0}},
              "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}
    lora, base = branch("l", ["10", 0], ["10", 1]), branch("b", ["4", 0], ["4", 1])

    def run(graph):
        result = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry))
        assert result.status == "success", (result.problems, result.error)
        return result.values

    both = run({**common, **lora, **base})
    alone_lora, alone_base = run({**common, **lora}), run({**common, **base})
    assert torch.equal(both["8l"][0], alone_lora["8l"][0]) and torch.equal(both["8b"][0], alone_base["8b"][0])
    assert not torch.equal(both["8l"][0], both["8b"][0])


@pytest.mark.parametrize("mode", MODES)
def test_unpatch_and_strength_zero_restore_the_originals(fresh_manager, monkeypatch, set_mode, files, ckpt, mode):
    set_mode(mode)
    _, lora_path, _ = files
    unet, tower = ckpt.model.unet, ckpt.clip.towers[0].model
    before_unet, before_tower = params(unet), params(tower)
    storage = {n: p.data_ptr() for n, p in unet.named_parameters()}
    model, clip = apply_lora(ckpt.model, ckpt.clip, lora_path, 1.0, 1.0)
    image(model, clip, ckpt.vae)
    if mode == "in_place":  # the shared weights hold the LoRA now
        assert any(not torch.equal(p, before_unet[n]) for n, p in unet.named_parameters())
    fresh_manager.unpatch(unet)
    fresh_manager.unpatch(tower)
    assert_same(params(unet), before_unet)
    assert_same(params(tower), before_tower)
    assert {n: p.data_ptr() for n, p in unet.named_parameters()} == storage  # the original tensors themselves
    assert not fresh_manager.patched and fresh_manager.backup_bytes() == 0
    assert not any(m._forward_pre_hooks for m in unet.modules())  # no on-the-fly hook left behind
    zero_model, zero_clip = apply_lora(ckpt.model, ckpt.clip, lora_path, 0.0, 0.0)
    assert zero_model.patches == () and zero_clip is ckpt.clip
    assert torch.equal(image(zero_model, zero_clip, ckpt.vae), image(ckpt.model, ckpt.clip, ckpt.vae))
    image(model, clip, ckpt.vae)
    image(ckpt.model, ckpt.clip, ckpt.vae)  # the base model running restores them too
    assert_same(params(unet), before_unet)


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind these tensors (shared storages counted once)."""
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


def held(model, manager) -> list:
    """Every tensor the base model, its LoRA variant and the manager's backups keep alive."""
    lora_parts = [t for p in model.patches for t in p.change.args[0].parts.values()]
    backups = [r.original for r in manager.patched.values() if r.original is not None]
    return [*model.unet.parameters(), *model.unet.buffers(), *lora_parts, *backups]


@pytest.mark.parametrize("mode", MODES)
def test_a_lora_adds_its_originals_at_most_not_a_copy(fresh_manager, monkeypatch, set_mode, files, ckpt, mode):
    set_mode(mode)
    _, lora_path, _ = files
    base_bytes = storage_bytes([*ckpt.model.unet.parameters(), *ckpt.model.unet.buffers()])
    model, _ = apply_lora(ckpt.model, None, lora_path, 1.0, 0.0)
    patched = {p.param for p in model.patches}
    patched_bytes = sum(w.numel() * w.element_size() for n, w in model.unet.named_parameters() if n in patched)
    assert patched_bytes > 0.5 * memory.module_bytes(model.unet)  # a LoRA on most of the network
    lora_bytes = storage_bytes([t for p in model.patches for t in p.change.args[0].parts.values()])
    image(model, ckpt.clip, ckpt.vae)
    image(ckpt.model, ckpt.clip, ckpt.vae)
    image(model, ckpt.clip, ckpt.vae)  # both used, the LoRA last
    extra = storage_bytes(held(model, fresh_manager)) - base_bytes - lora_bytes
    assert extra == (patched_bytes if mode == "in_place" else 0)
    assert extra == fresh_manager.backup_bytes()
    # the manager has one component for both models: on the device the network is there once
    assert [c.kind for c in fresh_manager.components.values()].count("diffusion_model") == 1


@pytest.mark.parametrize("mode", MODES)
def test_lora_under_a_partial_load_is_bit_identical(fresh_manager, monkeypatch, set_mode, files, ckpt, mode):
    _, lora_path, _ = files
    lora_file = load_file(str(lora_path))
    model, clip = apply_lora(ckpt.model, ckpt.clip, lora_path, 0.8, 0.6)
    by_hand = ckpt.model.with_unet(merge_by_hand(ckpt.model.unet, unet_lora_names(ckpt.model.unet), lora_file, 0.8))
    want = image(by_hand, merged_clip(ckpt.clip, lora_file, 0.6), ckpt.vae)
    fresh_manager.offload_all()
    fresh_manager.unpatch(ckpt.model.unet)
    set_mode(mode)
    monkeypatch.setenv("GRAPHFLOW_VRAM_BUDGET_GB", repr(0.3 * memory.module_bytes(ckpt.model.unet) / GiB))
    assert torch.equal(image(model, clip, ckpt.vae), want)
    assert any(e["action"] == "partial" and e["kind"] == "diffusion_model" for e in fresh_manager.events)
    assert torch.equal(image(ckpt.model, ckpt.clip, ckpt.vae), image(ckpt.model, ckpt.clip, ckpt.vae))


@pytest.mark.parametrize("mode", MODES)
def test_text_encoder_lora_matches_by_hand_and_the_base_encodes_as_before(fresh_manager, monkeypatch, set_mode, files, ckpt, mode):
    set_mode(mode)
    _, lora_path, _ = files
    lora_file = load_file(str(lora_path))
    base_cond, base_pooled = ckpt.clip.encode("a blue dog")
    _, clip = apply_lora(ckpt.model, ckpt.clip, lora_path, 0.0, 0.7)
    want, _ = merged_clip(ckpt.clip, lora_file, 0.7).encode("a blue dog")
    got, _ = clip.encode("a blue dog")
    assert torch.equal(got, want) and not torch.equal(got, base_cond)
    again, pooled = ckpt.clip.encode("a blue dog")
    assert torch.equal(again, base_cond) and (pooled is None or torch.equal(pooled, base_pooled))


def test_merge_and_save_read_each_models_own_weights(fresh_manager, files, ckpt):
    from graphflow.models.checkpoint_save import checkpoint_state
    from graphflow.models.merge import merge_models

    _, lora_path, _ = files
    lora_file = load_file(str(lora_path))
    model, clip = apply_lora(ckpt.model, ckpt.clip, lora_path, 0.8, 0.6)
    by_hand = merge_by_hand(ckpt.model.unet, unet_lora_names(ckpt.model.unet), lora_file, 0.8)
    base = params(ckpt.model.unet)
    image(model, clip, ckpt.vae)  # the shared network now holds the LoRA (in place)
    merged = merge_models(ckpt.model, model, lambda name: (0.5, 0.5))  # the base with its own LoRA variant
    assert merged.patches == ()
    for name, w in merged.unet.named_parameters():
        assert torch.equal(w, base[name] * 0.5 + by_hand.get_parameter(name) * 0.5), name
    saved_base = checkpoint_state(ckpt.model, ckpt.clip, ckpt.vae)
    saved_lora = checkpoint_state(model, clip, ckpt.vae)
    for name, w in by_hand.named_parameters():
        assert torch.equal(saved_lora["model.diffusion_model." + name], w)
        assert torch.equal(saved_base["model.diffusion_model." + name], base[name])
    changed_text = [k for k in saved_base if k.startswith("cond_stage_model.") and not torch.equal(saved_base[k], saved_lora[k])]
    assert changed_text  # the text encoder's LoRA saved merged in too


def test_two_threads_running_base_and_lora_take_turns(fresh_manager, files, ckpt):
    """Server workers share one network: a run with other patches waits instead of repatching
    the weights under a running sampler."""
    import threading

    _, lora_path, _ = files
    model, clip = apply_lora(ckpt.model, ckpt.clip, lora_path, 1.0, 1.0)
    want = {"base": image(ckpt.model, ckpt.clip, ckpt.vae), "lora": image(model, clip, ckpt.vae)}
    runs = {"base": (ckpt.model, ckpt.clip), "lora": (model, clip)}
    got, errors = {name: [] for name in runs}, []

    def worker(name):
        try:
            for _ in range(3):
                got[name].append(image(*runs[name], ckpt.vae))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(name,)) for name in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(torch.equal(img, want[name]) for name, imgs in got.items() for img in imgs)


def test_models_derived_from_a_dropped_base_read_it_back(fresh_manager, builtin_registry, files, ckpt):
    """A merge made before its first model was dropped from RAM (ModelMergeBlocks: the input blocks
    model1's, shared), and a copy made while it was dropped (its conv_in dict copied, holding the
    drop's meta stand-ins), each run as on the live weights: the manager reads the base back for
    them, and gives the copy the real tensors for its stand-ins even once the base is back."""
    from graphflow.models.lora import copied_modules
    from tests.test_nodes_image_mask import call

    second = load_checkpoint(files[0], device="cpu", dtype=torch.float32).model
    for p in second.unet.parameters():
        p.data += 0.01
    merged = call(builtin_registry, "ModelMergeBlocks", model1=ckpt.model, model2=second, input=1.0, middle=0.5,
                  out=0.5)
    unet = ckpt.model.unet
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(1, 4, 8, 8, generator=g), torch.tensor([500.0])
    context = torch.randn(1, 7, unet.config.context_dim, generator=g)
    with torch.no_grad():
        want_merged, want = merged(x, t, context), ckpt.model(x, t, context)
    comp = fresh_manager.components[id(unet)]
    assert comp.reload is not None
    fresh_manager._drop(comp)
    assert comp.state == "dropped" and merged.unet.input_blocks[1][0].in_layers[2].weight.is_meta
    with memory.use(merged.unet, "diffusion_model", "merged"), torch.no_grad():
        assert torch.equal(merged(x, t, context), want_merged)
    assert comp.state == "offloaded"

    del merged
    fresh_manager._forget_dead()
    fresh_manager._drop(comp)
    copy_, _ = copied_modules(unet, ["input_blocks.0.0"])  # made while dropped: its conv_in dict holds stand-ins
    assert copy_.input_blocks[0][0].weight.is_meta
    fresh_manager.present(unet)  # the base read back by another reader first
    assert comp.state == "offloaded" and copy_.input_blocks[0][0].weight.is_meta
    model = ckpt.model.with_unet(copy_)
    with memory.use(copy_, "diffusion_model", "copy"), torch.no_grad():
        assert torch.equal(model(x, t, context), want)
    assert copy_.input_blocks[0][0].weight is unet.input_blocks[0][0].weight
