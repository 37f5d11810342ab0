"""`graphflow validate` checks a LoadDiffusers folder before a run, as it checks a model file: what
the loader would refuse (no model_index.json, no unet/ or transformer/, a listed part missing or
without weights, a shard the index names but the folder lacks, a truncated file) is a problem of
node and input `model_path`, found without importing torch."""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from graphflow.validation import validate
from graphflow.workflow import parse_workflow
from tests.test_cli_robustness import validate_probed

ROOT = Path(__file__).parent.parent


def _weights(path: Path, shards: int = 1) -> None:
    """A component's weights: one file, or a sharded set (index and shards) of `shards` files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"block.{i}.weight": np.full((2, 2), i, np.float32) for i in range(4)}
    if shards == 1:
        save_file(tensors, str(path))
        return
    weight_map = {}
    for i in range(shards):
        name = path.name.replace(".safetensors", f"-{i + 1:05d}-of-{shards:05d}.safetensors")
        part = {k: v for j, (k, v) in enumerate(tensors.items()) if j % shards == i}
        save_file(part, str(path.parent / name))
        weight_map.update(dict.fromkeys(part, name))
    (path.parent / (path.name + ".index.json")).write_text(json.dumps({"weight_map": weight_map}))


def flux_folder(root: Path) -> Path:
    """A FLUX.1 folder's structure (its weights' contents are not what validation reads)."""
    index = {"_class_name": "FluxPipeline", "transformer": ["diffusers", "FluxTransformer2DModel"],
             "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
             "text_encoder_2": ["transformers", "T5EncoderModel"]}
    root.mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps(index))
    (root / "transformer").mkdir()
    (root / "transformer" / "config.json").write_text(json.dumps({"_class_name": "FluxTransformer2DModel"}))
    _weights(root / "transformer" / "diffusion_pytorch_model.safetensors", shards=3)
    _weights(root / "vae" / "diffusion_pytorch_model.safetensors")
    _weights(root / "text_encoder" / "model.safetensors")
    _weights(root / "text_encoder_2" / "model.safetensors", shards=2)
    return root


def sd_folder(root: Path) -> Path:
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"]}
    root.mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps(index))
    _weights(root / "unet" / "diffusion_pytorch_model.safetensors", shards=2)
    (root / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 768}))
    _weights(root / "vae" / "diffusion_pytorch_model.safetensors")
    _weights(root / "text_encoder" / "model.safetensors")
    return root


def _first_shard(folder: Path) -> Path:
    return sorted(folder.glob("*-00001-of-*.safetensors"))[0]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-4])


# how each broken folder is made from a good one, and what the problem says
BREAKAGES = {
    "no model_index": (flux_folder, lambda r: (r / "model_index.json").unlink(), r"no model_index.json"),
    "no unet": (sd_folder, lambda r: _rmtree(r / "unet"), r"expected unet/ \(SD1/SD2/SDXL\) or transformer/"),
    "no vae": (flux_folder, lambda r: _rmtree(r / "vae"), r"vae/ is missing \(model_index.json lists it\)"),
    "text encoder without weights": (sd_folder, lambda r: (r / "text_encoder" / "model.safetensors").unlink(),
                                     r"text_encoder/ holds no weights \(model_index.json lists it\)"),
    "T5 without weights": (flux_folder, lambda r: [p.unlink() for p in (r / "text_encoder_2").iterdir()],
                           r"text_encoder_2/ holds no weights"),
    "a missing shard": (flux_folder, lambda r: _first_shard(r / "transformer").unlink(),
                        r"/transformer/diffusion_pytorch_model.safetensors.index.json: shard "
                        r"diffusion_pytorch_model-00001-of-00003.safetensors is missing"),
    "a truncated shard": (sd_folder, lambda r: _truncate(_first_shard(r / "unet")),
                          r"/unet/diffusion_pytorch_model-00001-of-00002.safetensors is not a readable safetensors"),
    "a truncated vae": (flux_folder, lambda r: _truncate(r / "vae" / "diffusion_pytorch_model.safetensors"),
                        r"/vae/diffusion_pytorch_model.safetensors is not a readable safetensors"),
}


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def workflow_with(model_path: str) -> dict:
    """The txt2img example with its checkpoint loader replaced by LoadDiffusers."""
    workflow = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    workflow["nodes"]["1"] = {"type": "LoadDiffusers", "inputs": {"model_path": model_path}}
    return workflow


def _problems(registry, model_path: str):
    return validate(parse_workflow(workflow_with(model_path), registry), registry)


@pytest.mark.parametrize("make", [flux_folder, sd_folder])
def test_a_whole_folder_validates(builtin_registry, tmp_folders, make):
    make(tmp_folders.models / "diffusers" / "good")
    assert _problems(builtin_registry, "good") == []


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_folder_is_a_problem_of_model_path(builtin_registry, tmp_folders, breakage):
    make, damage, message = BREAKAGES[breakage]
    root = make(tmp_folders.models / "diffusers" / "broken")
    damage(root)
    problems = _problems(builtin_registry, "broken")
    assert [(p.node_id, p.node_type, p.input) for p in problems] == [("1", "LoadDiffusers", "model_path")]
    assert problems[0].message.startswith("broken")
    import re

    assert re.search(message, problems[0].message), problems[0].message


def test_the_loader_refuses_what_validation_reports(builtin_registry, tmp_folders):
    """One reading of the layout: the loader's own refusal says the same (no model_index.json)."""
    from graphflow.context import NodeInputError
    from tests.test_nodes_image_mask import call

    root = flux_folder(tmp_folders.models / "diffusers" / "cut")
    (root / "model_index.json").unlink()
    assert "cut" in builtin_registry.get("LoadDiffusers").input_specs["model_path"].widget.choices()
    with pytest.raises(NodeInputError, match="no model_index.json") as e:
        call(builtin_registry, "LoadDiffusers", model_path="cut")
    assert e.value.input == "model_path"


def test_validate_checks_folders_without_importing_torch(tmp_path):
    models = tmp_path / "models"
    flux_folder(models / "diffusers" / "good")
    root = flux_folder(models / "diffusers" / "broken")
    shard = _first_shard(root / "text_encoder_2")
    shard.unlink()
    for name, code_wanted in (("good", 0), ("broken", 3)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(workflow_with(name)))
        code, loaded, stderr = validate_probed(path, models)
        assert code == code_wanted, stderr
        assert loaded == [], f"validate imported {loaded}"
    assert "node 1 (LoadDiffusers), input 'model_path'" in stderr and f"shard {shard.name} is missing" in stderr
