"""Sharded sets (`*.safetensors.index.json` and its shards, or `*.bin.index.json` and pickled
shards) wherever a model file goes: offered as one entry in the loaders' lists, cached by all of
their files, inspected as a whole; pickled shards read by PyTorch's restricted unpickler only."""

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
           ("LoadVAE", "vae_name", "vae"), ("LoadDiffusionModel", "unet_name", "diffusion_models"),
           ("LoadModelPatch", "name", "model_patches")]


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


def write_bin_shards(state_dict: dict, folder, shards: int = 3) -> list[str]:
    """transformers' older sharded save, as save_pretrained(safe_serialization=False,
    max_shard_size=...) wrote it before transformers 5 (which writes safetensors only):
    pytorch_model-0000i-of-0000N.bin pickles and pytorch_model.bin.index.json."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"pytorch_model-{i:05d}-of-{shards:05d}.bin" for i in range(1, shards + 1)]
    keys = list(state_dict)
    weight_map = {k: names[i * shards // len(keys)] for i, k in enumerate(keys)}
    for name in names:
        torch.save({k: state_dict[k].clone() for k in keys if weight_map[k] == name}, folder / name)
    total = sum(t.numel() * t.element_size() for t in state_dict.values())
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                     "weight_map": weight_map}))
    return names


def test_a_sharded_bin_set_is_offered_and_loads_as_a_text_encoder(builtin_registry, tmp_folders):
    """A sharded pickle set (pytorch_model.bin.index.json with .bin shards): one entry in the
    loader's list, checked by validation, loaded as the model it was split from."""
    transformers = pytest.importorskip("transformers")
    from graphflow.models.file_check import model_file_problem
    from graphflow.testing import t5_config
    from tests.test_diffusers_folder import _close

    folder = tmp_folders.models / "text_encoders" / "t5"
    model = transformers.T5EncoderModel(t5_config()).eval()
    shards = write_bin_shards(model.state_dict(), folder)
    name = "t5/pytorch_model.bin.index.json"
    assert [n for n in tmp_folders.list_models("text_encoders") if n.startswith("t5/")] == [name]
    assert name in builtin_registry.get("LoadTextEncoder").input_specs["clip_name"].widget.options()
    assert model_file_problem("text_encoders", folder / "pytorch_model.bin.index.json") is None
    clip = call(builtin_registry, "LoadTextEncoder", clip_name=name, type="sd3")
    ids = [[71, 1131, 5, 1]]
    with torch.no_grad():
        _close(clip.t5.run(ids), model(torch.tensor(ids)).last_hidden_state)
    cls = builtin_registry.get("LoadTextEncoder")
    before = cls.fingerprint(clip_name=name, type="sd3")
    (folder / shards[1]).write_bytes((folder / shards[1]).read_bytes() + b" ")  # downloaded again
    assert cls.fingerprint(clip_name=name, type="sd3") != before
    (folder / shards[2]).unlink()
    assert f"shard {shards[2]} is missing" in model_file_problem("text_encoders", folder / "pytorch_model.bin.index.json")


class _RunsCode:
    """A pickled object whose unpickling would call os.mkdir: the restricted unpickler must refuse it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os
        return os.mkdir, (str(self.path),)


def test_a_bin_shard_is_read_by_the_restricted_unpickler_only(tmp_path):
    from graphflow.models.weight_files import CheckpointError

    torch.save({"a.weight": torch.ones(2, 2)}, tmp_path / "m-00001-of-00002.bin")
    marker = tmp_path / "ran"
    torch.save({"b.weight": _RunsCode(marker)}, tmp_path / "m-00002-of-00002.bin")
    (tmp_path / "m.bin.index.json").write_text(json.dumps({"weight_map": {
        "a.weight": "m-00001-of-00002.bin", "b.weight": "m-00002-of-00002.bin"}}))
    with pytest.raises(CheckpointError, match=r"m-00002-of-00002.bin was refused by PyTorch's restricted unpickler"):
        WeightFile(tmp_path / "m.bin.index.json")
    assert not marker.exists()
    torch.save({"b.weight": torch.full((3,), 2.0)}, tmp_path / "m-00002-of-00002.bin")
    with WeightFile(tmp_path / "m.bin.index.json") as f:
        assert f.format == "sharded" and f.shards == ["m-00001-of-00002.bin", "m-00002-of-00002.bin"]
        assert torch.equal(f.get("a.weight"), torch.ones(2, 2)) and torch.equal(f.get("b.weight"), torch.full((3,), 2.0))


def test_a_diffusers_folder_with_a_bin_sharded_part(builtin_registry, tmp_folders):
    """A part saved as pickled shards loads as the whole file does; validation, which reads no
    pickles, still finds a missing shard."""
    pytest.importorskip("diffusers")
    from graphflow.models.diffusers_folder import load_diffusers
    from graphflow.models.file_check import model_file_problem
    from tests.test_diffusers_folder import _close, write_folder

    root = tmp_folders.models / "diffusers" / "tiny"
    _, _, towers = write_folder(root, "sd1")
    (root / "text_encoder" / "model.safetensors").unlink()
    shards = write_bin_shards(towers["text_encoder"].state_dict(), root / "text_encoder")
    assert model_file_problem("diffusers", root) is None
    ckpt = load_diffusers(root, device="cpu", dtype=torch.float32)
    ids = torch.tensor([[49406, 320, 1125, 49407]])
    with torch.no_grad():
        _close(ckpt.clip.towers[0].model(ids).last_hidden_state, towers["text_encoder"](ids).last_hidden_state)
    (root / "text_encoder" / shards[0]).unlink()
    assert model_file_problem("diffusers", root) == (f"tiny/text_encoder/pytorch_model.bin.index.json: shard "
                                                     f"{shards[0]} is missing from {root / 'text_encoder'}")
