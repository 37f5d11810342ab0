"""graphflow.models.architectures: one table of what graphflow knows per architecture. Each entry is
complete, the code reads it (a new architecture needs only its entry), and no module keeps a
per-architecture list of its own again."""

import ast
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from graphflow.models.architectures import ARCHITECTURES
from graphflow.models.checkpoint import flow_network
from graphflow.models.diffusion_model import DiffusionModel
from graphflow.models.flow_architecture import _CONFIG_READERS, _LACKING, _MARKERS
from graphflow.models.latent_formats import LATENT_FORMATS
from graphflow.sampling.flow_sampling import default_flow_schedule, flow_vectors

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("key", list(ARCHITECTURES))
def test_every_architecture_is_complete(key):
    arch = ARCHITECTURES[key]
    assert arch.key == key and arch.name and arch.short
    assert arch.latent is LATENT_FORMATS[arch.latent_format]
    if arch.flow:  # sampled without a ModelSampling node: its shift, its schedule; built from the file
        assert arch.shift is not None and arch.schedule in ("shift", "flux") and arch.multiplier > 0
        assert issubclass(flow_network(key), torch.nn.Module)
        assert (key in _MARKERS or key in _LACKING) and key in _CONFIG_READERS  # told in files, config from shapes
    else:
        assert arch.schedule is None and arch.network is None and arch.pooled == 0
        assert arch.shift is None or arch.cascade  # (ModelSamplingStableCascade's)
    assert not arch.packed or arch.flow
    assert not arch.pooled or arch.vector_width  # a pooled vector has a width in the network's config
    assert arch.guidance is None or arch.flow  # a distilled guidance embedding (FLUX dev's, HunyuanVideo's, ...)
    assert (arch.empty_latent is not None) == arch.video  # named when a video model gets no video latent
    assert not arch.masked_timesteps or arch.video
    assert not arch.text_mask or arch.flow
    assert arch.saved_as in (None, "unet", "flow") and (arch.saved_as == "flow") <= arch.flow
    assert arch.native_size is None or arch.native_size % 8 == 0


def test_the_empty_latent_nodes_named_in_hints_exist(builtin_registry):
    named = {a.empty_latent for a in ARCHITECTURES.values() if a.empty_latent}
    assert named and all(builtin_registry.comfy_node(name) is not None for name in named), named


def test_the_file_detectors_know_the_flow_families_and_only_them():
    flow = {k for k, a in ARCHITECTURES.items() if a.flow}
    assert set(_MARKERS) | set(_LACKING) == flow and set(_CONFIG_READERS) == flow


@pytest.mark.parametrize("key", [k for k, a in ARCHITECTURES.items() if a.flow])
def test_a_flow_model_samples_with_its_entrys_schedule(key):
    arch = ARCHITECTURES[key]
    schedule = default_flow_schedule(SimpleNamespace(arch=key, sampling_shift=None, guidance_embed=True))
    assert schedule.kind == arch.schedule and schedule.shift == arch.shift
    assert schedule.multiplier == (1.0 if arch.schedule == "flux" else arch.multiplier)


class _Net(torch.nn.Module):
    def __init__(self, guidance_embed=False):
        super().__init__()
        self.config = SimpleNamespace(in_channels=16, vec_in_dim=32, guidance_embed=guidance_embed)


def test_a_new_architecture_needs_only_its_entry(monkeypatch):
    """An entry added to the table (none of the old lists touched) is a MODEL the sampler knows: its
    latent format, flow shift and schedule, video or not, vector conditioning."""
    new = replace(ARCHITECTURES["hunyuan_video"], key="new_flow", video=False, shift=4.5, schedule="shift",
                  multiplier=1.0, pooled=0, vector_width=None, latent_format="flux")
    monkeypatch.setitem(ARCHITECTURES, "new_flow", new)
    model = DiffusionModel(_Net(), "new_flow", "flow")
    assert model.is_flow and not model.is_video and not model.is_cascade
    assert model.latent_format is LATENT_FORMATS["flux"] and model.sampling_shift == 4.5 and model.adm_channels == 0
    schedule = default_flow_schedule(model)
    assert (schedule.kind, schedule.shift, schedule.multiplier) == ("shift", 4.5, 1.0)
    assert flow_vectors(model, {}, 2) == (None, None)  # no pooled vector, no guidance
    with pytest.raises(ValueError, match="does not fit new_flow"):
        DiffusionModel(_Net(), "new_flow", "eps")
    # a pooled vector (zeros when the conditioning has none) and a distilled guidance of its own
    monkeypatch.setitem(ARCHITECTURES, "new_flow", replace(new, vector_width="vec_in_dim", pooled=32, guidance=2.5))
    model = DiffusionModel(_Net(guidance_embed=True), "new_flow", "flow")
    assert model.adm_channels == 32
    pooled, guidance = flow_vectors(model, {}, 2)
    assert pooled.shape == (2, 32) and not pooled.any() and guidance.tolist() == [2.5, 2.5]


# Literals keyed by architectures that are about something else than the architecture, each with why.
ALLOWED = {
    ("graphflow/models/flow_architecture.py", "_MARKERS"): "file layouts: the keys a flow file is told by (in order)",
    ("graphflow/models/flow_architecture.py", "_CONFIG_READERS"): "file layouts: configs read from shapes",
    ("graphflow/models/flow_architecture.py", "_VAE_READERS"): "file layouts: a VAE inside a checkpoint",
    ("graphflow/models/configs.py", "ARCH_TOWERS"): "the SD families' text-encoder towers (layouts)",
    ("graphflow/models/configs.py", "DEFAULT_CLIP_SKIP"): "the SD families' text encoders",
    ("graphflow/models/configs.py", "LAYER_NORM_HIDDEN"): "the SD families' text encoders",
    ("graphflow/models/architecture.py", "locate_towers"): "the order SD text-encoder layouts are tried in",
    ("graphflow/models/diffusers_layout.py", "read_folder"): "diffusers folders: text_encoder/ slots per family",
    # where a feature is built: the networks whose forwards First Block Cache splits (FluxBlocks, UNetBlocks);
    # SVD's and Stable Cascade's UNets are not among them
    ("nodes/pack_nodes_wavespeed.py", "FBCACHE_ARCHS"): "First Block Cache's networks",
    # CLIPLoader / DualCLIPLoader types: ComfyUI's CLIPType names, some of which are architecture names
    ("graphflow/models/flow_text.py", "T5_ALONE"): "CLIP types",
    ("graphflow/models/flow_text.py", "T5_ALONE_NAMES"): "CLIP types",
    ("graphflow/models/t5.py", "MIN_LENGTH"): "CLIP types: the T5 tokenizer's padding",
    ("graphflow/models/text_encoder_files.py", "DUAL_TYPES"): "CLIP types",
    ("nodes/text_encoder_loaders.py", "LoadDualTextEncoders"): "CLIP types",
}


def _per_arch_literals(path: Path):
    """(top-level name, line) of each dict keyed by, or tuple / list / set of, 3 or more architecture
    names and nothing else in this module; the name is the assignment's, the function's or the class's."""
    tree = ast.parse(path.read_text())
    for top in tree.body:
        names = [t.id for t in getattr(top, "targets", [getattr(top, "target", None)]) if isinstance(t, ast.Name)]
        owner = getattr(top, "name", None) or (names[0] if names else None)
        for node in ast.walk(top):
            items = node.keys if isinstance(node, ast.Dict) else node.elts if isinstance(
                node, (ast.Tuple, ast.List, ast.Set)) else None
            if items and len(items) >= 3 and all(isinstance(k, ast.Constant) and k.value in ARCHITECTURES
                                                   for k in items):
                yield owner, node.lineno


def test_no_module_keeps_a_per_architecture_list_of_its_own():
    found = {}
    for path in sorted([*(ROOT / "graphflow").rglob("*.py"), *(ROOT / "nodes").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "graphflow/models/architectures.py":
            continue
        for owner, line in _per_arch_literals(path):
            found.setdefault((rel, owner), line)
    extra = {f"{rel}:{line} ({owner})" for (rel, owner), line in found.items() if (rel, owner) not in ALLOWED}
    assert not extra, f"per-architecture facts belong in graphflow.models.architectures: {sorted(extra)}"
    stale = set(ALLOWED) - set(found)
    assert not stale, f"allowed literals that no longer exist (drop them from ALLOWED): {sorted(stale)}"


def test_the_table_is_torch_free():
    """`graphflow validate` / `inspect` read it through the file detectors, which must not import torch."""
    code = ("import sys, graphflow.models.architectures, graphflow.models.flow_architecture, "
            "graphflow.models.file_kind; print(sorted(m for m in ('torch', 'safetensors') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
