"""Sharded sets (`*.safetensors.index.json` and its shards) wherever a model file goes: offered as
one entry in the loaders' lists, cached by all of their files, inspected as a whole."""

import json

import pytest
import torch

from graphflow.models.weight_files import WeightFile
from graphflow.server.comfyui_object_info import object_info
from graphflow.testing import shard_file, write_controlnet
from tests.test_nodes_image_mask import call


def fake_set(folder, stem: str = "model", shards: int = 3) -> list[str]:
    """An index and the shard files it names (listing reads only the index)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{stem}-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)]
    for name in names:
        (folder / name).write_bytes(b"shard")
    weight_map = {f"w{i}": name for i, name in enumerate(names)}
    (folder / f"{stem}.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return names


def test_loader_lists_offer_a_sharded_set_as_its_index(builtin_registry, tmp_folders):
    bundled = tmp_folders.list_models("controlnet")  # the demo ControlNet
    controlnets = tmp_folders.models / "controlnet"
    fake_set(controlnets / "canny")
    fake_set(controlnets, "depth", shards=2)
    (controlnets / "plain.safetensors").write_bytes(b"x")
    # a shard-like name that no index names stays offered, as does a broken index
    (controlnets / "canny" / "other-00001-of-00002.safetensors").write_bytes(b"x")
    (controlnets / "broken.safetensors.index.json").write_text("{")
    expected = ["broken.safetensors.index.json", "canny/model.safetensors.index.json",
                "canny/other-00001-of-00002.safetensors", "depth.safetensors.index.json", "plain.safetensors"]
    expected = sorted(expected + bundled)
    assert tmp_folders.list_models("controlnet") == expected
    options = builtin_registry.get("LoadControlNet").input_specs["control_net_name"].widget.options()
    assert options == expected
    info = object_info(builtin_registry)
    assert info["ControlNetLoader"]["input"]["required"]["control_net_name"][0] == expected


def test_an_index_hides_only_the_shards_in_its_own_folder(tmp_folders):
    folder = tmp_folders.models / "gligen"
    names = fake_set(folder / "a")
    (folder / "b").mkdir()
    (folder / "b" / names[0]).write_bytes(b"x")  # same name, another folder: a file of its own
    assert tmp_folders.list_models("gligen") == ["a/model.safetensors.index.json", f"b/{names[0]}"]


# every loader's cache key of its model file: (node, its file input, models folder)
LOADERS = [("LoadControlNet", "control_net_name", "controlnet"), ("LoadGLIGEN", "gligen_name", "gligen"),
           ("LoadStyleModel", "style_model_name", "style_models"), ("LoadUpscaleModel", "model_name", "upscale_models"),
           ("LoadCLIPVision", "clip_name", "clip_vision"), ("IPAdapterModelLoader", "ipadapter_file", "ipadapter"),
           ("LoadCheckpoint", "checkpoint", "checkpoints"), ("LoadLoRA", "lora_name", "loras"),
           ("LoadVAE", "vae_name", "vae"), ("LoadDiffusionModel", "unet_name", "diffusion_models")]


@pytest.mark.parametrize("node, input_name, kind", LOADERS)
def test_a_changed_shard_changes_every_loaders_cache_key(builtin_registry, tmp_folders, node, input_name, kind):
    names = fake_set(tmp_folders.models / kind / "big")
    cls = builtin_registry.get(node)
    before = cls.fingerprint(**{input_name: "big/model.safetensors.index.json"})
    (tmp_folders.models / kind / "big" / names[1]).write_bytes(b"shard, downloaded again")
    assert cls.fingerprint(**{input_name: "big/model.safetensors.index.json"}) != before


def test_ip_adapter_presets_cache_key_follows_shards(builtin_registry, tmp_folders):
    names = fake_set(tmp_folders.models / "clip_vision" / "vit-h")
    cls = builtin_registry.get("IPAdapterUnifiedLoader")
    preset = cls.input_specs["preset"].widget.default
    before = cls.fingerprint(preset=preset)
    (tmp_folders.models / "clip_vision" / "vit-h" / names[2]).write_bytes(b"shard, downloaded again")
    assert cls.fingerprint(preset=preset) != before


def test_a_sharded_controlnet_loads_and_a_changed_shard_reloads(builtin_registry, tmp_folders):
    """The loader reads the set as the file it was split from; re-running after one shard is
    replaced gives the new weights, not the cached ControlNet."""
    from graphflow.models.controlnet import load_control_model

    folder = tmp_folders.models / "controlnet"
    folder.mkdir(parents=True)
    write_controlnet(folder / "whole.safetensors", "sd1")
    (folder / "split").mkdir()
    write_controlnet(folder / "split" / "cn.safetensors", "sd1")
    index = shard_file(folder / "split" / "cn.safetensors", shards=3)
    assert [p.name for p in sorted((folder / "split").iterdir())] == [
        "cn-00001-of-00003.safetensors", "cn-00002-of-00003.safetensors", "cn-00003-of-00003.safetensors",
        "cn.safetensors.index.json"]
    name = "split/cn.safetensors.index.json"
    assert {name, "whole.safetensors"} <= set(tmp_folders.list_models("controlnet"))
    assert not any("-of-" in n for n in tmp_folders.list_models("controlnet"))

    whole = load_control_model(folder / "whole.safetensors")
    split = call(builtin_registry, "LoadControlNet", control_net_name=name)
    expected, got = whole.state_dict(), split.state_dict()
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)

    cls = builtin_registry.get("LoadControlNet")
    before = cls.fingerprint(control_net_name=name)
    shard = folder / "split" / "cn-00001-of-00003.safetensors"
    with WeightFile(shard) as f:
        tensors = {k: f.get(k) * 2 for k in f.shapes}
    from safetensors.torch import save_file

    save_file(tensors, str(shard))
    assert cls.fingerprint(control_net_name=name) != before
    reloaded = call(builtin_registry, "LoadControlNet", control_net_name=name).state_dict()
    changed = [k for k in reloaded if not torch.equal(reloaded[k], expected[k])]
    assert changed


def test_inspect_reports_the_size_of_the_whole_set(tmp_path, capsys):
    from graphflow.cli import main

    write_controlnet(tmp_path / "cn.safetensors", "sd1")
    whole = (tmp_path / "cn.safetensors").stat().st_size
    index = shard_file(tmp_path / "cn.safetensors", shards=3)
    shards = sum(p.stat().st_size for p in tmp_path.glob("cn-*-of-00003.safetensors"))
    assert abs(shards - whole) < 2**14 < whole  # the data again, plus three headers
    assert main(["inspect", str(index)]) == 0
    out = capsys.readouterr().out
    assert f"file: cn.safetensors.index.json ({shards / 2**20:,.1f} MiB, sharded, 3 shards, " in out
    with WeightFile(index) as f:
        assert f.size == shards
