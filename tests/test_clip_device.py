"""CLIPLoader / DualCLIPLoader's device input: "cpu" pins the text encoders to the CPU (loaded,
kept and run there, never moved by the memory manager), "default" lets the manager move them.

There is no GPU here, so the compute device is faked by a memory manager whose device is
"meta": anything it moves there loses its numbers, so an encoding that still equals the CPU's
proves the encoder never went there."""

import json

import pytest
import torch
from torch import nn

from graphflow import device as device_module
from graphflow import memory
from graphflow.comfy_format import export_api
from graphflow.executor import Executor
from graphflow.models import text_encoder_files
from graphflow.models.text_encoder_files import load_text_encoders
from graphflow.testing import write_text_encoder
from graphflow.workflow import parse_workflow

CPU = torch.device("cpu")


class MetaDeviceManager(memory.MemoryManager):
    """A manager whose compute device is not the CPU: its moves show on the tensors themselves."""

    @property
    def device(self) -> torch.device:
        return torch.device("meta")


@pytest.fixture
def meta_manager(monkeypatch):
    manager = MetaDeviceManager()
    monkeypatch.setattr(memory, "_manager", manager)
    for name in ("GRAPHFLOW_VRAM_BUDGET_GB", "GRAPHFLOW_RAM_BUDGET_GB"):
        monkeypatch.delenv(name, raising=False)
    return manager


@pytest.fixture
def te_files(tmp_path):
    return {"t5": write_text_encoder(tmp_path / "t5xxl_fp16.safetensors", "t5xxl", seed=1),
            "clip_l": write_text_encoder(tmp_path / "clip_l.safetensors", "clip_l", seed=2),
            "clip_g": write_text_encoder(tmp_path / "clip_g.safetensors", "clip_g", seed=3)}


def mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Linear(16, 16) for _ in range(3)])


def test_pinned_component_never_moves_to_the_compute_device(meta_manager, monkeypatch):
    pinned, default = mlp(0), mlp(1)
    x = torch.randn(2, 16)
    want = pinned(x)
    meta_manager.pin_to_cpu(pinned, "text_encoder", "text_encoder:t5")
    with memory.use(default, "diffusion_model") as comp:  # the control: the fake device does take modules
        assert comp.state == "loaded" and all(p.is_meta for p in default.parameters())
    for vram in ("normal", "low", "none"):  # not loaded whole, in part, or streamed block by block
        meta_manager.configure(vram)
        with memory.use(pinned, "text_encoder", "text_encoder:t5") as comp:
            assert comp.pinned and comp.state == "offloaded" and comp.resident_bytes == 0 and not comp.hooks
            assert meta_manager.device_for(pinned) == CPU
            assert all(p.device == CPU for p in pinned.parameters())
            assert torch.equal(pinned(x), want)
    assert not [e for e in meta_manager.events if e.get("component") == "text_encoder:t5"]
    listed = {c["name"]: c for c in meta_manager.status()["components"]}
    assert listed["text_encoder:t5"] | {"size": 0} == {
        "name": "text_encoder:t5", "kind": "text_encoder", "size": 0, "state": "offloaded", "resident_bytes": 0,
        "blocks": 3, "resident_blocks": 0, "pinned": True}


def test_pinned_encoder_takes_no_device_room(fresh_manager, monkeypatch):
    """Under a simulated budget (the CPU as the device, the manager's record telling them apart) a
    pinned encoder is never counted on the device, so the diffusion model filling it stays; an
    unpinned one pushes it out while it encodes."""
    model, encoder = mlp(2), mlp(3)
    size = memory.module_bytes(model)
    monkeypatch.setenv("GRAPHFLOW_VRAM_BUDGET_GB", repr(1.2 * size / memory.GiB))
    with memory.use(model, "diffusion_model"):
        pass
    fresh_manager.pin_to_cpu(encoder, "text_encoder")
    with memory.use(encoder, "text_encoder") as comp:
        assert comp.state == "offloaded" and fresh_manager.used() == size
    assert fresh_manager.components[id(model)].state == "loaded"
    assert [e["action"] for e in fresh_manager.events] == ["load"]
    fresh_manager.components[id(encoder)].pinned = False  # the same encoder, default device
    with memory.use(encoder, "text_encoder"):
        assert fresh_manager.components[id(model)].state == "offloaded"
    assert [e["action"] for e in fresh_manager.events] == ["load", "offload", "load", "offload"]


@pytest.mark.parametrize("clip_type, names", [("flux", ("clip_l", "t5")), ("sdxl", ("clip_l", "clip_g")),
                                               ("stable_diffusion", ("clip_l",))])
def test_cpu_clip_encodes_on_the_cpu_as_the_default_one(te_files, fresh_manager, monkeypatch, clip_type, names):
    """Loaded with on_cpu under a non-CPU compute device, every encoder is pinned and the
    conditioning equals a default-device encoder's on the CPU, bit for bit."""
    paths = [te_files[n] for n in names]
    default = load_text_encoders(paths, clip_type)
    want = default.encode("a red fox in the snow")
    meta = MetaDeviceManager()
    monkeypatch.setattr(memory, "_manager", meta)
    clip = load_text_encoders(paths, clip_type, on_cpu=True)
    models = text_encoder_files._models(clip)
    assert sorted(name for _, name in models) == sorted(f"text_encoder:{n}" for n in names)
    assert all(meta.components[id(m)].pinned for m, _ in models)
    got = clip.encode("a red fox in the snow")
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            assert g.device == CPU and torch.equal(g, w)
    assert all(p.device == CPU for m, _ in models for p in m.parameters())
    assert not [e for e in meta.events if e["action"] in ("load", "partial")]


def test_cpu_clip_dropped_from_ram_comes_back_pinned_on_the_cpu(te_files, meta_manager):
    clip = load_text_encoders([te_files["t5"], te_files["clip_l"]], "flux", on_cpu=True)
    want = clip.encode("a cat")
    comp = meta_manager.components[id(clip.t5.model)]
    meta_manager._drop(comp)
    assert comp.state == "dropped"
    got = clip.encode("a cat")
    assert comp.pinned and comp.state == "offloaded" and all(torch.equal(g, w) for g, w in zip(got, want))


@pytest.mark.parametrize("native_bf16", [False, True])
def test_cpu_clip_dtype_is_the_cpu_text_encoder_dtype(te_files, fresh_manager, monkeypatch, native_bf16):
    """With a (faked) CUDA compute device the default encoder takes the GPU's fp16; a device
    "cpu" one takes what text encoders compute in on this CPU (fp32, bf16 where it is native)."""
    monkeypatch.delenv("GRAPHFLOW_DTYPE", raising=False)
    monkeypatch.delenv("GRAPHFLOW_VRAM_BUDGET_GB", raising=False)
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(text_encoder_files, "compute_device", lambda: torch.device("cuda"))
    monkeypatch.setattr(text_encoder_files, "load_device", lambda: CPU)  # read here; the GPU would get it on use
    paths = [te_files["t5"], te_files["clip_l"]]
    default = load_text_encoders(paths, "flux")
    pinned = load_text_encoders(paths, "flux", on_cpu=True)
    assert default.t5.model.shared.weight.dtype == torch.float16
    want = torch.bfloat16 if native_bf16 else torch.float32
    for encoder in (pinned.t5, pinned.clip_l):
        assert {p.dtype for p in encoder.model.parameters()} == {want}
        assert all(p.device == CPU for p in encoder.model.parameters())


# -- the nodes and ComfyUI graphs ------------------------------------------------------------

@pytest.fixture
def model_files(tmp_folders):
    folder = tmp_folders.models / "text_encoders"
    folder.mkdir()
    write_text_encoder(folder / "t5xxl_fp16.safetensors", "t5xxl", seed=1)
    write_text_encoder(folder / "clip_l.safetensors", "clip_l", seed=2)
    return tmp_folders


def api_graph(device):
    graph = {"1": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl_fp16.safetensors",
                                                              "clip_name2": "clip_l.safetensors", "type": "flux"}},
             "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["1", 0]}},
             "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": "clip_l.safetensors",
                                                          "type": "stable_diffusion"}},
             "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["3", 0]}}}
    if device is not None:
        for loader in ("1", "3"):
            graph[loader]["inputs"]["device"] = device
    return graph


def ui_graph(device):
    loader = {"id": 1, "type": "CLIPLoader", "pos": [0, 0], "size": [300, 100], "flags": {}, "order": 0, "mode": 0,
              "inputs": [], "outputs": [{"name": "CLIP", "type": "CLIP", "links": []}], "properties": {},
              "widgets_values": ["clip_l.safetensors", "stable_diffusion", device]}
    dual = {"id": 2, "type": "DualCLIPLoader", "pos": [0, 200], "size": [300, 120], "flags": {}, "order": 1,
            "mode": 0, "inputs": [], "outputs": [{"name": "CLIP", "type": "CLIP", "links": []}], "properties": {},
            "widgets_values": ["t5xxl_fp16.safetensors", "clip_l.safetensors", "flux", device]}
    return {"last_node_id": 2, "last_link_id": 0, "nodes": [loader, dual], "links": [], "groups": [], "config": {},
            "extra": {}, "version": 0.4}


def test_imported_graphs_keep_device(builtin_registry, model_files):
    api = parse_workflow(json.loads(json.dumps(api_graph("cpu"))), builtin_registry)
    assert api.nodes["1"].inputs["device"] == "cpu" and api.nodes["3"].inputs["device"] == "cpu"
    assert not [n for n in api.notes if n.get("input") == "device"]  # no longer ignored
    back = export_api(api, builtin_registry)
    assert back["1"]["inputs"]["device"] == "cpu" and back["3"]["inputs"]["device"] == "cpu"
    ui = parse_workflow(ui_graph("cpu"), builtin_registry)
    assert ui.nodes["1"].inputs["device"] == "cpu" and ui.nodes["2"].inputs["device"] == "cpu"
    assert parse_workflow(ui_graph("default"), builtin_registry).nodes["2"].inputs["device"] == "default"
    unset = parse_workflow(api_graph(None), builtin_registry)  # older graphs without it: ComfyUI's default
    assert unset.nodes["1"].inputs.get("device", "default") == "default"
    loader = builtin_registry.get("LoadTextEncoder")
    assert loader.input_specs["device"].widget.choices() == ["default", "cpu"]
    assert list(loader.input_specs)[-1] == "device"  # ComfyUI's order: clip_name, type, device
    assert list(builtin_registry.get("LoadDualTextEncoders").input_specs)[-1] == "device"


def test_graph_with_device_cpu_pins_and_encodes_as_default(builtin_registry, model_files, meta_manager,
                                                           monkeypatch):
    """The ComfyUI graph run with device "cpu" under a non-CPU compute device: its encoders are
    pinned, and the conditioning equals the same graph's with device "default" on the CPU."""
    def run(graph):
        wf = parse_workflow(json.loads(json.dumps(graph)), builtin_registry)
        result = Executor(builtin_registry).run(wf, outputs=["2", "4"])
        assert result.ok, result.error or result.problems
        return [result.values[k][0] for k in ("2", "4")]

    got = run(api_graph("cpu"))
    pinned = [c for c in meta_manager.components.values() if c.kind == "text_encoder"]
    assert len(pinned) == 3 and all(c.pinned and c.state == "offloaded" for c in pinned)  # t5, clip_l, clip_l
    monkeypatch.setattr(memory, "_manager", memory.MemoryManager())  # a CPU device: the default graph runs here
    want = run(api_graph("default"))
    loaded = [c for c in memory._manager.components.values() if c.kind == "text_encoder"]
    assert len(loaded) == 3 and not any(c.pinned for c in loaded)  # read anew (device is in the cache key)
    for g, w in zip(got, want):
        assert torch.equal(g[0][0], w[0][0])
        assert torch.equal(g[0][1]["pooled_output"], w[0][1]["pooled_output"])


def test_merge_of_a_cpu_clip_stays_on_the_cpu(te_files, tmp_path, meta_manager):
    """CLIPMergeSimple's result shares clip1's unmerged Parameters: when clip1 is kept on the CPU
    the merge is too (as ComfyUI's clone keeps clip1's devices), so encoding it moves neither."""
    from graphflow.models.merge import merge_clips

    other = write_text_encoder(tmp_path / "t5_b.safetensors", "t5xxl", seed=7)
    clip1 = load_text_encoders([te_files["t5"], te_files["clip_l"]], "flux", on_cpu=True)
    clip2 = load_text_encoders([other, te_files["clip_l"]], "flux", on_cpu=True)
    merged = merge_clips(clip1, clip2, lambda name: (0.5, 0.5))
    assert merged.t5.model is not clip1.t5.model
    assert meta_manager.is_pinned(merged.t5.model) and meta_manager.is_pinned(merged.clip_l.model)
    cond, pooled = merged.encode("a cat")
    assert cond.device == CPU and torch.isfinite(cond).all()
    assert all(p.device == CPU for m in (merged.t5.model, clip1.t5.model) for p in m.parameters())
    assert not [e for e in meta_manager.events if e["action"] in ("load", "partial")]
