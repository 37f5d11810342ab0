"""Telling model files apart (graphflow.models.file_kind): `graphflow inspect` on every kind of file
users download, and the advice a loader gives when handed the wrong kind."""

import pytest
import torch
from safetensors.torch import save_file

from graphflow import cli
from graphflow import testing as t
from graphflow.models.checkpoint import CheckpointError, load_checkpoint
from graphflow.models.checkpoint_report import inspect_report
from graphflow.models.file_kind import identify
from graphflow.models.weight_files import WeightFile

WRITERS = {  # file -> (writer, expected folder, words the kind's name must hold)
    "sd1.safetensors": (lambda p: t.write_checkpoint(p, "sd1"), "checkpoints", "checkpoint"),
    "flux.safetensors": (lambda p: t.write_flow_checkpoint(p, "flux_dev", components=("model",)),
                         "diffusion_models", "FLUX.1 diffusion model"),
    "sd3.safetensors": (lambda p: t.write_flow_checkpoint(p, "sd3_medium"), "checkpoints", "SD3 / SD3.5 checkpoint"),
    "controlnet.safetensors": (lambda p: t.write_controlnet(p, "sd1"), "controlnet", "ControlNet"),
    "controlnet_diffusers.safetensors": (lambda p: t.write_controlnet(p, "sd1", layout="diffusers"), "controlnet",
                                         "ControlNet"),
    "union.safetensors": (lambda p: t.write_union_controlnet(p), "controlnet", "union ControlNet"),
    "sd3_controlnet.safetensors": (lambda p: t.write_flow_controlnet(p, "sd3_medium"), "controlnet",
                                   "ControlNet (SD3 / SD3.5)"),
    "flux_controlnet.safetensors": (lambda p: t.write_flow_controlnet(p, "flux_dev"), "controlnet",
                                    "ControlNet (FLUX.1)"),
    "t2i.safetensors": (lambda p: t.write_t2i_adapter(p), "controlnet", "T2I-Adapter"),
    "lora.safetensors": (lambda p: t.write_lora(p, "sdxl"), "loras", "LoRA"),
    "vae.safetensors": (lambda p: t.write_vae(p), "vae", "VAE (SD1.x / SD2.x / SDXL)"),
    "flux_vae.safetensors": (lambda p: t.write_flow_vae(p), "vae", "VAE (SD3 / FLUX.1)"),
    "t5.safetensors": (lambda p: t.write_flow_text_encoder(p, "t5xxl"), "text_encoders", "T5"),
    "clip_l.safetensors": (lambda p: t.write_text_encoder(p, "clip_l"), "text_encoders", "text encoder"),
    "clip_vision.safetensors": (lambda p: t.write_clip_vision(p), "clip_vision", "CLIP vision"),
    "redux.safetensors": (lambda p: t.write_redux(p), "style_models", "Redux"),
    "uso.safetensors": (lambda p: t.write_uso_projector(p), "model_patches", "USO style projector"),
    "gligen.safetensors": (lambda p: t.write_gligen(p), "gligen", "GLIGEN"),
    "depth_anything_v2_vits.pth": (lambda p: t.write_depth_anything(p), "annotators", "Depth Anything"),
    "hypernetwork.safetensors": (lambda p: t.write_hypernetwork(p), "hypernetworks", "hypernetwork"),
    "embedding.safetensors": (lambda p: save_file({"emb_params": torch.zeros(3, 768)}, str(p)), "embeddings",
                              "embedding"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kinds")
    for name, (write, _, _) in WRITERS.items():
        write(folder / name)
    return folder


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_kind_of_file_is_identified_and_inspected(files, name):
    _, folder, words = WRITERS[name]
    with WeightFile(files / name) as f:
        kind = identify(f.shapes)
    assert kind is not None and kind.folder == folder and words in kind.name, kind
    report = inspect_report(files / name)
    assert name in report and "params" in report
    # checkpoints and diffusion models get the architecture report, every other file its kind
    assert ("architecture:" in report) if folder in ("checkpoints", "diffusion_models") else (words in report)


def test_the_named_loaders_exist(files, builtin_registry):
    for name in WRITERS:
        with WeightFile(files / name) as f:
            loader = identify(f.shapes).loader
        assert loader.startswith("`") or builtin_registry.get(loader.split()[0]) is not None, loader


def test_full_size_families_are_named():
    from graphflow.models.controlnet import ControlNet, ControlNetConfig

    for arch, family in (("sd1", "SD1.x"), ("sd2", "SD2.x"), ("sdxl", "SDXL")):
        with torch.device("meta"):
            net = ControlNet(ControlNetConfig(unet=t.unet_config(arch, scaled_down=False)))
        shapes = {"control_model." + k: tuple(v.shape) for k, v in net.state_dict().items()}
        assert identify(shapes).name == f"ControlNet ({family})"


def test_lora_report_counts_modules_and_rank(files):
    report = inspect_report(files / "lora.safetensors")
    assert "rank 4" in report and "text encoder" in report and "diffusion model" in report


def test_upscale_models_are_described_by_spandrel(tmp_path):
    path = t.write_esrgan(tmp_path / "4x.safetensors", scale=4)
    report = inspect_report(path)
    assert "upscale model" in report and "ESRGAN" in report and "4x" in report


def test_loaders_advise_the_right_folder(files):
    """A checkpoint loader handed a ControlNet, T5 or VAE file says what it is and where it goes
    (a T5 file used to be called 'a standalone VAE')."""
    for name, folder in (("controlnet.safetensors", "controlnet"), ("t5.safetensors", "text_encoders"),
                         ("vae.safetensors", "vae"), ("lora.safetensors", "loras")):
        with pytest.raises(CheckpointError, match=f"put it in models/{folder}/"):
            load_checkpoint(files / name, device="cpu")
    from graphflow.models.controlnet import load_controlnet
    from graphflow.models.lora import read_lora

    with pytest.raises(CheckpointError, match="is not a ControlNet.*models/text_encoders/"):
        load_controlnet(files / "t5.safetensors")
    with pytest.raises(CheckpointError, match="models/controlnet/ and load it with LoadControlNet"):
        read_lora(files / "controlnet.safetensors")


def test_cli_inspect_of_an_unknown_file_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "mystery.safetensors"
    save_file({"blob.weight": torch.zeros(2, 2)}, str(path))
    assert cli.main(["inspect", str(path)]) == cli.EXIT_FILE
    err = capsys.readouterr().err
    assert "mystery" in err or "blob" in err
    assert "Traceback" not in err


def test_cli_inspect_finds_a_file_by_name_in_any_models_folder(tmp_path, capsys):
    from graphflow.folders import folders

    saved = dict(folders.__dict__)
    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    t.write_lora(models / "loras" / "style.safetensors", "sd1")
    try:
        assert cli.main(["inspect", "style.safetensors", "--models-dir", str(models)]) == cli.EXIT_OK
        assert "kind: LoRA, for models/loras/" in capsys.readouterr().out
        assert cli.main(["inspect", "absent.safetensors", "--models-dir", str(models)]) == cli.EXIT_FILE
        assert "no model file of that name" in capsys.readouterr().err
    finally:  # the CLI configured the process-wide folders
        folders.__dict__.clear()
        folders.__dict__.update(saved)


@pytest.mark.parametrize("writer, words", [(t.write_photomaker, "PhotoMaker v1 ID encoder"),
                                           (t.write_ip_adapter, "IP-Adapter")])
def test_cli_inspect_reads_nested_dicts_of_a_pickle_under_dotted_names(tmp_path, capsys, writer, words):
    """PhotoMaker's photomaker-v1.bin is {"id_encoder": {...}, "lora_weights": {...}} and IP-Adapter's
    .bin {"image_proj": {...}, "ip_adapter": {...}}: their tensors are named as the .safetensors
    forms name them ("id_encoder.<key>"), so `inspect` tells what the file is."""
    pickled, flat = writer(tmp_path / "model.bin"), writer(tmp_path / "model.safetensors")
    raw = torch.load(pickled, weights_only=True)
    with WeightFile(pickled) as f, WeightFile(flat) as g:
        assert set(f.shapes) == set(g.shapes) == {f"{group}.{k}" for group, part in raw.items() for k in part}
        key = sorted(f.shapes)[-1]
        assert torch.equal(f.get(key), g.get(key)) and f.dtypes[key] == "float16"
    assert cli.main(["inspect", str(pickled)]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"pickle, {len(g.shapes)} tensors" in out and f"kind: {words}" in out


@pytest.fixture(scope="module")
def depth_anything_release(tmp_path_factory):
    return t.write_depth_anything(tmp_path_factory.mktemp("depth") / "depth_anything_v2_vits.safetensors")


def test_depth_anything_files_are_sent_to_the_folder_of_the_pack_that_reads_them(depth_anything_release, tmp_path):
    """comfyui_controlnet_aux keeps the releases' names in models/annotators/, kijai's
    ComfyUI-DepthAnythingV2 its _fp16 / _fp32 names in models/depthanything/."""
    kijai = tmp_path / "depth_anything_v2_vits_fp16.safetensors"
    kijai.write_bytes(depth_anything_release.read_bytes())
    release = inspect_report(depth_anything_release)
    assert "for models/annotators/, loaded by DepthAnythingV2Preprocessor" in release
    assert "models/depthanything/ under one of its _fp16 / _fp32" in release  # either pack, renamed
    assert "for models/depthanything/, loaded by DownloadAndLoadDepthAnythingV2Model" in inspect_report(kijai)


def test_a_depth_anything_file_in_transformers_layout_is_told_where_and_under_what_name(depth_anything_release,
                                                                                        tmp_path):
    """A -hf repository's model.safetensors (transformers' names) goes to models/annotators/ under
    the ckpt_name's stem with .safetensors."""
    from safetensors.torch import load_file

    from graphflow.models.depth_anything import load_depth_anything
    from tests.test_depth_anything import to_transformers

    hf = tmp_path / "model.safetensors"
    state = to_transformers(load_file(str(depth_anything_release)), load_depth_anything(depth_anything_release).config)
    save_file({k: v.contiguous() for k, v in state.items()}, str(hf))
    report = inspect_report(hf)
    assert "Depth Anything depth model (V1 or V2) in transformers' layout" in report
    assert "for models/annotators/" in report and "depth_anything_v2_vitl.safetensors" in report
    with WeightFile(hf) as f:  # a loader handed it names the layout and the folder
        assert "transformers' layout" in identify(f.shapes).advice()
