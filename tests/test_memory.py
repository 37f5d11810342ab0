"""The model memory manager (graphflow.memory) under a simulated device budget
(GRAPHFLOW_VRAM_BUDGET_GB): LRU offload, partial load with per-block streaming hooks, the
demo workflows bit-identical to the unlimited run, out-of-memory in a node through the server."""

import os
import threading
from typing import ClassVar

import pytest
import torch
from torch import nn

from graphflow import memory
from graphflow.api import Bool, Node
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.server.app import create_app
from graphflow.workflow import load_workflow

from test_demo_workflows import WORKFLOWS
from test_server import submit, wait_status

GiB = memory.GiB


def budget(monkeypatch, nbytes):
    monkeypatch.setenv("GRAPHFLOW_VRAM_BUDGET_GB", repr(nbytes / GiB))


def mlp(seed, width=64, depth=4):
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])


def test_lru_offload_then_partial_load_matches_full(fresh_manager, monkeypatch):
    a, b = mlp(0), mlp(1)
    size = memory.module_bytes(a)
    x = torch.randn(3, 64)
    want = b(x)
    budget(monkeypatch, 1.5 * size)
    with memory.use(a, "vae"):
        pass
    assert fresh_manager.components[id(a)].state == "loaded"
    with memory.use(b, "diffusion_model"):  # needs a's room: a goes, b fits whole
        assert fresh_manager.components[id(a)].state == "offloaded"
        assert fresh_manager.components[id(b)].state == "loaded"
        assert torch.equal(b(x), want)
    assert [e["action"] for e in fresh_manager.events] == ["load", "offload", "load"]

    budget(monkeypatch, 0.8 * size)  # b alone no longer fits: partly resident, the rest streamed
    fresh_manager.offload_all()
    fresh_manager.peak = 0
    streamed = []
    with memory.use(b, "diffusion_model") as comp:
        assert comp.state == "partial" and comp.resident_blocks == 2 and comp.blocks == 4  # Linear layers
        assert comp.resident_bytes + size / 4 <= 0.8 * size  # room left for one streamed layer
        assert len(comp.hooks) == 2 * 2  # a pre- and a post-hook on each streamed block
        for block in b:
            block.register_forward_hook(lambda m, args, out: streamed.append(m))
        assert torch.equal(b(x), want)
    assert len(streamed) == 4
    assert not fresh_manager.components[id(b)].hooks or fresh_manager.components[id(b)].state == "partial"
    assert fresh_manager.used() <= fresh_manager.capacity() and fresh_manager.peak <= 0.8 * size


def test_vram_none_streams_everything_and_text_encoders_leave(fresh_manager, monkeypatch):
    fresh_manager.configure("none")
    budget(monkeypatch, 100 * GiB)
    model = mlp(2)
    x = torch.randn(2, 64)
    want = model(x)
    with memory.use(model, "diffusion_model") as comp:
        assert comp.state == "partial" and comp.resident_blocks == 0
        assert torch.equal(model(x), want)
    fresh_manager.configure("normal")
    encoder = mlp(3)
    with memory.use(encoder, "text_encoder") as comp:
        assert comp.state == "loaded"
    assert fresh_manager.components[id(encoder)].state == "offloaded"  # gone after encoding
    assert fresh_manager.components[id(model)].state == "partial"  # the sampler's model stays
    with pytest.raises(ValueError, match="--vram"):
        fresh_manager.configure("tiny")

    fresh_manager.offload_all()
    fresh_manager.configure("low")  # at most half the free memory for weights: split though it would fit
    budget(monkeypatch, 1.5 * memory.module_bytes(model))
    with memory.use(model, "diffusion_model") as comp:
        assert comp.state == "partial" and 0 < comp.resident_bytes <= 0.75 * comp.size
        assert torch.equal(model(x), want)


def run_workflow(registry, name):
    workflow = load_workflow(WORKFLOWS / f"{name}.json")
    # each step loads, streams and offloads as the others: 3 steps show it as the saved 20 do
    for node in workflow.nodes.values():
        if node.type == "KSampler":
            node.inputs["steps"] = 3
    result = Executor(registry).run(workflow)
    assert result.ok, result.error or result.problems
    return result


def decoded(result):
    return [v[0] for k, v in result.values.items() if v and isinstance(v[0], torch.Tensor) and v[0].dim() == 4
            and v[0].shape[-1] == 3]


@pytest.mark.parametrize("name", ["txt2img", "img2img"])
def test_demo_workflow_under_a_tiny_budget_is_bit_identical(name, builtin_registry, tmp_folders, fresh_manager,
                                                           monkeypatch):
    free = run_workflow(builtin_registry, name)
    sizes = {c.kind: c.size for c in fresh_manager.components.values()}
    assert {"text_encoder", "diffusion_model", "vae"} <= set(sizes)
    assert not any(e["action"] in ("partial", "offload") and e["kind"] != "text_encoder"
                   for e in fresh_manager.events)

    fresh_manager.offload_all()
    fresh_manager.events.clear()
    budget(monkeypatch, sizes["diffusion_model"] // 2)  # the UNet must be split, the others swapped
    tight = run_workflow(builtin_registry, name)
    want, got = decoded(free), decoded(tight)
    assert want and all(torch.equal(a, b) for a, b in zip(want, got, strict=True))

    by_kind = {}
    for event in fresh_manager.events:
        by_kind.setdefault(event["kind"], []).append(event)
    split = [e for e in by_kind["diffusion_model"] if e["action"] == "partial"]
    assert split and 0 < split[0]["resident_blocks"] < split[0]["blocks"]
    assert split[0]["bytes"] <= sizes["diffusion_model"] // 2
    assert any(e["action"] == "offload" for e in by_kind["text_encoder"])
    # the UNet made room for the VAE by leaving when decoding began
    assert any(e["action"] == "offload" for e in by_kind["diffusion_model"])
    status = fresh_manager.status()
    assert status["simulated_budget"] and status["used"] <= status["capacity"]


class GreedyModel(Node):
    """Puts a model on the device, then runs out of memory if asked (an injected CUDA OOM)."""
    category = "test"
    output_node = True
    cacheable = False
    fail: bool = Bool(False)
    model: ClassVar[nn.Module] = mlp(4)

    def run(self):
        with memory.use(GreedyModel.model, "diffusion_model", "greedy"):
            if self.fail:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")


async def test_out_of_memory_in_a_node_offloads_and_the_server_keeps_going(aiohttp_client, tmp_folders,
                                                                          fresh_manager, monkeypatch):
    budget(monkeypatch, GiB)
    registry = Registry()
    registry.add(GreedyModel, source="tests")
    client = await aiohttp_client(create_app(registry, tmp_folders.home / "runs.db", web_dir=None))
    workflow = {"version": 1, "nodes": {"1": {"type": "GreedyModel", "inputs": {"fail": True}}}}
    record = await wait_status(client, (await submit(client, workflow))["run_id"], ("error", "success"))
    error = record["error"]
    assert record["status"] == "error" and error["node_id"] == "1" and error["node_type"] == "GreedyModel"
    assert error["exception_type"] == "OutOfMemoryError" and error["out_of_memory"]
    assert "--vram low" in error["suggestion"] and "GreedyModel" in error["suggestion"]
    assert [e["action"] for e in fresh_manager.events] == ["load", "offload"]  # resident models moved out
    system = await (await client.get("/api/system")).json()
    (greedy,) = system["models"]["components"]
    assert greedy["name"] == "greedy" and greedy["state"] == "offloaded" and system["models"]["used"] == 0

    workflow["nodes"]["1"]["inputs"]["fail"] = False
    record = await wait_status(client, (await submit(client, workflow))["run_id"], ("error", "success"))
    assert record["status"] == "success", record["error"]
    system = await (await client.get("/api/system")).json()
    assert system["models"]["components"][0]["state"] == "loaded"
    assert system["models"]["used"] == memory.module_bytes(GreedyModel.model)


def test_cli_memory_flags(monkeypatch, tmp_path, capsys):
    from graphflow.cli import EXIT_USAGE, main

    monkeypatch.setenv("GRAPHFLOW_VRAM", "normal")  # restored after the test whatever main() sets
    monkeypatch.setenv("GRAPHFLOW_RESERVE_VRAM_GB", "0")
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(tmp_path / "missing.json"), "--vram", "tiny"])
    assert exit_info.value.code == 2 and "--vram" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.json"), "--reserve-vram", "-1"]) == EXIT_USAGE
    assert "--reserve-vram" in capsys.readouterr().err
    live = memory.MemoryManager()
    monkeypatch.setattr(memory, "_manager", live)
    main(["run", str(tmp_path / "missing.json"), "--vram", "low", "--reserve-vram", "1.5"])
    assert (live.vram, live.reserve) == ("low", int(1.5 * GiB))
    assert os.environ["GRAPHFLOW_VRAM"] == "low"  # read by a server's worker processes too


def test_ram_pressure_drops_idle_components_and_reads_them_back(fresh_manager, monkeypatch, tmp_path):
    from graphflow.models import checkpoint
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.testing import write_checkpoint
    from test_lora_memory import image

    monkeypatch.delenv("GRAPHFLOW_RAM_BUDGET_GB", raising=False)
    ckpt = load_checkpoint(write_checkpoint(tmp_path / "sd1.safetensors", "sd1"), device="cpu", dtype=torch.float32)
    want = image(ckpt.model, ckpt.clip, ckpt.vae)
    sizes = {c.kind: c.size for c in fresh_manager.components.values()}
    params = {id(p) for p in ckpt.model.unet.parameters()}
    built = []  # what reading a dropped component back builds: that kind of component alone
    for builder, kind in (("build_unet", "diffusion_model"), ("build_vae", "vae"),
                          ("build_text_encoder", "text_encoder")):
        original = getattr(checkpoint, builder)
        monkeypatch.setattr(checkpoint, builder, lambda *a, original=original, kind=kind, **k: (
            built.append(kind), original(*a, **k))[1])
    # RAM for the diffusion model and the VAE, not for the text encoder beside them as well
    monkeypatch.setenv("GRAPHFLOW_RAM_BUDGET_GB", repr(1.01 * (sizes["diffusion_model"] + sizes["vae"]) / GiB))
    assert torch.equal(image(ckpt.model, ckpt.clip, ckpt.vae), want)
    assert torch.equal(image(ckpt.model, ckpt.clip, ckpt.vae), want)
    actions = {(e["action"], e["kind"]) for e in fresh_manager.events}
    for kind in ("diffusion_model", "text_encoder"):
        assert ("drop", kind) in actions and ("reload", kind) in actions
    assert sorted(built) == sorted(e["kind"] for e in fresh_manager.events if e["action"] == "reload")
    assert fresh_manager.ram_used() <= fresh_manager.ram_capacity()
    states = {c.name: c.state for c in fresh_manager.components.values()}
    assert "dropped" in states.values()
    tower = ckpt.clip.towers[0].model
    assert all(p.is_meta for p in tower.parameters()) == (states["text_encoder:clip_l"] == "dropped")
    assert {id(p) for p in ckpt.model.unet.parameters()} == params  # the same Parameters, read back into


@pytest.mark.parametrize("family", ["sd3_medium", "sdxl"])
def test_a_dropped_component_is_read_back_alone(fresh_manager, monkeypatch, tmp_path, family):
    """Each text encoder, the VAE and the diffusion model come back from the file on their own:
    a dropped CLIP-L does not read SD3's T5-XXL or CLIP-G again, nor the VAE the diffusion model."""
    from graphflow.models import checkpoint, text_encoder_files
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.testing import write_checkpoint, write_flow_checkpoint

    monkeypatch.delenv("GRAPHFLOW_RAM_BUDGET_GB", raising=False)
    path = tmp_path / "model.safetensors"
    if family == "sdxl":
        write_checkpoint(path, "sdxl")
    else:
        write_flow_checkpoint(path, family)
    ckpt = load_checkpoint(path, device="cpu", dtype=torch.float32)
    read = []
    for module, builders in ((checkpoint, ("build_unet", "build_vae", "build_flow_model", "tower_from_weights")),
                             (text_encoder_files, ("_t5", "_tower"))):
        for builder in builders:
            original = getattr(module, builder)
            monkeypatch.setattr(module, builder, lambda *a, original=original, builder=builder, **k: (
                read.append(builder), original(*a, **k))[1])
    components = {c.name: c for c in fresh_manager.components.values()}
    expected = {"text_encoder:t5": ["_t5"], "vae": ["build_vae"],
                "diffusion_model:sd3": ["build_flow_model"], "diffusion_model:sdxl": ["build_unet"]}
    assert set(components) == {f"diffusion_model:{'sdxl' if family == 'sdxl' else 'sd3'}", "vae", "text_encoder:clip_l",
                               "text_encoder:clip_g", *(["text_encoder:t5"] if family != "sdxl" else [])}
    for name, comp in components.items():
        module = comp.module()
        before = {k: v.clone() for k, v in module.state_dict().items()}
        read.clear()
        fresh_manager._drop(comp)
        assert comp.state == "dropped" and all(p.is_meta for p in module.parameters())
        fresh_manager.present(module)
        # one tower built (SD3's through _tower, which builds with tower_from_weights)
        assert read == expected.get(name, ["_tower", "tower_from_weights"] if family != "sdxl"
                                    else ["tower_from_weights"]), name
        after = module.state_dict()
        assert all(torch.equal(after[k], v) for k, v in before.items()), name


def test_separately_loaded_flux_files_are_dropped_and_read_back_each_from_its_file(fresh_manager, monkeypatch,
                                                                                   tmp_path):
    """UNETLoader + DualCLIPLoader + VAELoader, as ComfyUI's FLUX workflows load it: every part can
    leave RAM under pressure, and comes back from its own file alone (CLIP-L without T5-XXL)."""
    from graphflow.models import checkpoint, text_encoder_files
    from graphflow.models.checkpoint import load_diffusion_model, load_vae
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_flow_checkpoint, write_flow_vae, write_text_encoder

    monkeypatch.delenv("GRAPHFLOW_RAM_BUDGET_GB", raising=False)
    model = load_diffusion_model(write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_dev", components=("model",),
                                                       prefixed=False), device="cpu", dtype=torch.float32)
    vae = load_vae(write_flow_vae(tmp_path / "ae.safetensors"), device="cpu", dtype=torch.float32)
    clip = load_text_encoders([write_text_encoder(tmp_path / "t5.safetensors", "t5xxl"),
                               write_text_encoder(tmp_path / "clip_l.safetensors", "clip_l")], "flux",
                              device="cpu", dtype=torch.float32)
    read = []
    for module, builders in ((checkpoint, ("build_flow_model", "build_vae")), (text_encoder_files, ("_t5", "_tower"))):
        for builder in builders:
            original = getattr(module, builder)
            monkeypatch.setattr(module, builder, lambda *a, original=original, builder=builder, **k: (
                read.append(builder), original(*a, **k))[1])
    modules = {"diffusion_model:flux": (model.unet, ["build_flow_model"]), "vae": (vae.module, ["build_vae"]),
               "text_encoder:clip_l": (clip.clip_l.model, ["_tower"]), "text_encoder:t5": (clip.t5.model, ["_t5"])}
    assert {c.name for c in fresh_manager.components.values()} == set(modules)
    for name, (module, builds) in modules.items():
        comp = fresh_manager.components[id(module)]
        assert comp.name == name and comp.reload is not None
        before = {k: v.clone() for k, v in module.state_dict().items()}
        read.clear()
        fresh_manager._drop(comp)
        assert comp.state == "dropped" and all(p.is_meta for p in module.parameters())
        fresh_manager.present(module)
        assert read == builds, name
        after = module.state_dict()
        assert all(torch.equal(after[k], v) for k, v in before.items()), name


def test_separately_loaded_sdxl_clip_files_are_read_back_each_from_its_file(fresh_manager, monkeypatch, tmp_path):
    """DualCLIPLoader (sdxl) with clip_l and clip_g files: a dropped CLIP-L comes back from its own
    file, without building CLIP-G (1.4 GB at full size) again, and the other way round."""
    from graphflow.models import checkpoint
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_text_encoder

    monkeypatch.delenv("GRAPHFLOW_RAM_BUDGET_GB", raising=False)
    files = [write_text_encoder(tmp_path / "clip_g.safetensors", "clip_g"),
             write_text_encoder(tmp_path / "clip_l.safetensors", "clip_l")]
    clip = load_text_encoders(files, "sdxl", device="cpu", dtype=torch.float32)
    built = []
    original = checkpoint.tower_from_weights
    monkeypatch.setattr(checkpoint, "tower_from_weights", lambda spec, *a, **k: (built.append(spec.name),
                                                                                 original(spec, *a, **k))[1])
    for tower in clip.towers:
        comp = fresh_manager.components[id(tower.model)]
        assert comp.name == f"text_encoder:{tower.name}"
        before = {k: v.clone() for k, v in tower.model.state_dict().items()}
        built.clear()
        fresh_manager._drop(comp)
        fresh_manager.present(tower.model)
        assert built == [tower.name]
        after = tower.model.state_dict()
        assert all(torch.equal(after[k], v) for k, v in before.items()), tower.name


def test_offload_idle_keeps_a_model_in_use_and_what_shares_its_weights(fresh_manager, cpu0_device):
    idle, running = mlp(0, width=8, depth=2), mlp(1, width=8, depth=2)
    sharer = nn.Sequential(running[0], nn.Linear(8, 8))  # shares running's first layer
    for module, name in ((idle, "idle"), (running, "running"), (sharer, "sharer")):
        fresh_manager.load(module, "other", name)
    assert all(c.state == "loaded" for c in fresh_manager.components.values())
    with fresh_manager.use(running, "other", "running"):
        assert fresh_manager.offload_idle() == ["idle"]
        states = {c.name: c.state for c in fresh_manager.components.values()}
        assert states == {"idle": "offloaded", "running": "loaded", "sharer": "loaded"}
    assert sorted(fresh_manager.offload_idle()) == ["running", "sharer"]  # idle now


def test_offload_all_leaves_another_workers_running_model_and_its_cached_weights(fresh_manager, cpu0_device):
    # The executor's out-of-memory path (offload_all) in one worker while another worker runs a model:
    # that model, what shares its weights and its cached patched weights stay; the idle one moves.
    idle, running = mlp(0, width=8, depth=2), mlp(1, width=8, depth=2)
    sharer = nn.Sequential(running[0], nn.Linear(8, 8))
    for module, name in ((idle, "idle"), (sharer, "sharer")):
        fresh_manager.load(module, "other", name)
    doubled = (memory.WeightPatch("0.weight", lambda w: w * 2),)
    started, release = threading.Event(), threading.Event()

    def other_worker():
        with fresh_manager.use(running, "other", "running"):
            fresh_manager.patch(running, doubled, cache=True)
            fresh_manager.patch(running, (), cache=True)  # switched back: the doubled weight is cached
            started.set()
            assert release.wait(10)

    worker = threading.Thread(target=other_worker)
    worker.start()
    try:
        assert started.wait(10)
        cached = [k for k, e in fresh_manager.patch_cache.items() if e.owner == id(running)]
        assert cached
        assert fresh_manager.offload_all() == ["idle"]
        states = {c.name: c.state for c in fresh_manager.components.values()}
        assert states == {"idle": "offloaded", "running": "loaded", "sharer": "loaded"}
        assert [k for k in cached if k in fresh_manager.patch_cache] == cached
    finally:
        release.set()
        worker.join(10)
    assert sorted(fresh_manager.offload_all()) == ["running", "sharer"]  # idle now
    assert not fresh_manager.patch_cache


class _WatchedLock:
    """The manager's lock, saying when a thread other than the test's finds it held (then waits)."""

    def __init__(self, found_held: threading.Event):
        self.lock, self.test_thread, self.found_held = threading.RLock(), threading.get_ident(), found_held

    def __enter__(self):
        if threading.get_ident() == self.test_thread:
            self.lock.acquire()
        elif not self.lock.acquire(blocking=False):
            self.found_held.set()
            self.lock.acquire()
        return self

    def __exit__(self, *exc):
        self.lock.release()
        return False


def test_offload_idle_waits_for_a_use_between_its_load_and_its_run(fresh_manager, cpu0_device):
    # Another worker's PurgeVRAM (offload_idle) coming just after use()'s load, before the model is
    # counted in use: it waits for the manager's lock, then leaves the running model where it is.
    model = mlp(0, width=8, depth=2)
    settled = threading.Event()  # the other worker done, or waiting for the manager's lock
    fresh_manager._lock = _WatchedLock(settled)
    real_load, moved = fresh_manager.load, []

    def purge():
        moved.extend(fresh_manager.offload_idle())
        settled.set()

    other = threading.Thread(target=purge)

    def load_then_other_worker_purges(*args, **kwargs):
        comp = real_load(*args, **kwargs)
        other.start()
        assert settled.wait(10)
        return comp

    fresh_manager.load = load_then_other_worker_purges
    with fresh_manager.use(model, "other", "m") as comp:
        other.join(10)
        assert not other.is_alive()
        assert (comp.state, moved) == ("loaded", [])
    assert fresh_manager.offload_idle() == ["m"]  # not running now
