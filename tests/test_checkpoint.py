"""Checkpoint detection and loading on random-weight files in the real LDM layout."""

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from graphflow.models import DiffusionModel
from graphflow.models.checkpoint import (UNET_PREFIX, VAE_PREFIX, CheckpointError, detect_architecture, load_checkpoint,
                                         load_vae)
from graphflow.models.checkpoint_report import inspect_report
from graphflow.models.text_encoders import ARCH_TOWERS, HF, build_tower_module, hf_to_openclip
from graphflow.models.unet import UNet
from graphflow.models.vae import AutoencoderKL
from graphflow.models.weight_files import config_metadata
from graphflow.testing import (ARCHS, PROJECTED, text_config, unet_config, vae_config, vae_state, write_checkpoint,
                               write_vae)

EXPECTED = {  # arch, inpaint, prediction, latent scale
    "sd1": ("sd1", False, "eps", 0.18215),
    "sd1_inpaint": ("sd1", True, "eps", 0.18215),
    "sd2": ("sd2", False, "eps", 0.18215),
    "sd2_v": ("sd2", False, "v", 0.18215),
    "sdxl": ("sdxl", False, "eps", 0.13025),
    "sdxl_refiner": ("sdxl_refiner", False, "eps", 0.13025),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {arch: write_checkpoint(root / f"{arch}.safetensors", arch) for arch in ARCHS}


def header(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, f.metadata()


@pytest.mark.parametrize("arch", ARCHS)
def test_detects_every_architecture(arch, checkpoints):
    shapes, metadata = header(checkpoints[arch])
    info = detect_architecture(shapes, metadata)
    name, inpaint, prediction, scale = EXPECTED[arch]
    assert (info.arch, info.inpaint, info.prediction) == (name, inpaint, prediction)
    assert info.latent_format.scale_factor == scale
    assert info.unet == unet_config(arch)
    assert info.vae == vae_config()
    assert [t.name for t in info.towers] == [t.name for t in ARCH_TOWERS[name]]


def full_size_shapes(arch):
    """Header of a real-size checkpoint, computed on the meta device (nothing allocated)."""
    shapes = {}
    with torch.device("meta"):
        shapes.update({UNET_PREFIX + k: tuple(v.shape) for k, v in UNet(unet_config(arch, False)).state_dict().items()})
        shapes.update({VAE_PREFIX + k: tuple(v.shape) for k, v in AutoencoderKL(vae_config(False)).state_dict().items()})
        for spec in ARCH_TOWERS[{"sd1_inpaint": "sd1", "sd2_v": "sd2"}.get(arch, arch)]:
            model = build_tower_module(text_config(spec.name, False), PROJECTED[spec.name])
            state = {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v
                     for k, v in model.state_dict().items()}
            if spec.layout == HF:
                shapes.update({spec.prefix + k[len("text_model."):]: tuple(v.shape) for k, v in state.items()})
            else:
                shapes.update({spec.prefix + k: tuple(v.shape) for k, v in hf_to_openclip(state).items()})
    return shapes


@pytest.mark.parametrize("arch, context, adm", [("sd1", 768, 0), ("sd1_inpaint", 768, 0), ("sd2", 1024, 0),
                                                ("sdxl", 2048, 2816), ("sdxl_refiner", 1280, 2560)])
def test_detects_full_size_layouts(arch, context, adm):
    shapes = full_size_shapes(arch)
    info = detect_architecture(shapes)
    assert info.arch == EXPECTED[arch][0] and info.inpaint == EXPECTED[arch][1]
    assert (info.context_dim, info.adm_channels) == (context, adm)
    assert info.unet == unet_config(arch, scaled_down=False)
    # the UNet's numbers alone decide when the text encoders are missing
    unet_only = {k: v for k, v in shapes.items() if k.startswith(UNET_PREFIX)}
    assert detect_architecture(unet_only).arch == EXPECTED[arch][0]


def test_sd2_v_prediction_sources():
    shapes = full_size_shapes("sd2")
    key = UNET_PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
    wide = lambda k: torch.randn(shapes[k], generator=torch.Generator().manual_seed(0)) * 0.2  # noqa: E731
    narrow = lambda k: torch.randn(shapes[k], generator=torch.Generator().manual_seed(0)) * 0.02  # noqa: E731
    info = detect_architecture(shapes, get_tensor=wide)
    assert info.prediction == "v" and "heuristic" in info.prediction_source
    assert detect_architecture(shapes, get_tensor=narrow).prediction == "eps"
    assert detect_architecture(shapes).prediction == "eps"  # header only: no heuristic
    assert detect_architecture(shapes, {"modelspec.prediction_type": "v"}).prediction == "v"
    assert detect_architecture(shapes, config_metadata(prediction="eps"), get_tensor=wide).prediction == "eps"
    assert detect_architecture(shapes, prediction="v").prediction_source == "given by the caller"
    assert detect_architecture({**shapes, "v_pred": ()}).prediction == "v"
    assert key in shapes


@pytest.mark.parametrize("arch", ARCHS)
def test_loads_and_runs(arch, checkpoints):
    ckpt = load_checkpoint(checkpoints[arch], device="cpu")
    model, clip, vae, info = ckpt.model, ckpt.clip, ckpt.vae, ckpt.info
    assert isinstance(model, DiffusionModel) and model.arch == info.arch == EXPECTED[arch][0]
    assert model.prediction == EXPECTED[arch][2] and model.inpaint == EXPECTED[arch][1]
    assert model.dtype == vae.dtype == clip.dtype == torch.float32  # CPU default
    assert model.latent_format == info.latent_format
    # the pieces fit together: text -> cross-attention context, pooled -> SDXL's vector conditioning
    cond, pooled = clip.encode("a cat")
    y = model.encode_adm({"pooled_output": pooled}, 64, 64)
    assert (y is None) == (info.adm_channels == 0)
    x = torch.randn(1, model.in_channels, 8, 8)
    with torch.no_grad():
        out = model(x, torch.tensor([500.0]), cond, y)
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()
    image = vae.decode(torch.randn(1, 4, 8, 8))
    assert image.shape == (1, 64, 64, 3)


def test_weights_are_the_files(checkpoints):
    path = checkpoints["sd1"]
    stored = load_file(str(path))
    ckpt = load_checkpoint(path, device="cpu")
    for name, param in ckpt.model.unet.state_dict().items():
        assert torch.equal(param, stored[UNET_PREFIX + name].float()), name
    for name, param in ckpt.vae.module.state_dict().items():
        assert torch.equal(param, stored[VAE_PREFIX + name].float()), name
    assert not any(p.requires_grad for p in ckpt.model.unet.parameters())


def test_dtype_override(checkpoints):
    ckpt = load_checkpoint(checkpoints["sdxl"], device="cpu", dtype=torch.float16)
    assert ckpt.model.dtype == ckpt.vae.dtype == ckpt.clip.dtype == torch.float16
    stored = load_file(str(checkpoints["sdxl"]), device="cpu")
    w = ckpt.model.unet.input_blocks[0][0].weight
    assert torch.equal(w, stored[UNET_PREFIX + "input_blocks.0.0.weight"])


def test_metadata_config_overrides(tmp_path, checkpoints):
    tensors = load_file(str(checkpoints["sd1"]))
    path = tmp_path / "meta.safetensors"
    meta = config_metadata(unet={"num_heads": 2, "num_head_channels": -1}, vae={"norm_groups": 8},
                           latent_format={"scale_factor": 0.68}, prediction="v")
    save_file(tensors, str(path), metadata=meta)
    ckpt = load_checkpoint(path, device="cpu")
    assert ckpt.info.unet.num_heads == 2 and ckpt.model.unet.config.num_heads == 2
    assert ckpt.vae.module.config.norm_groups == 8 and ckpt.vae.module.encoder.norm_out.num_groups == 8
    assert ckpt.model.latent_format.scale_factor == 0.68 and ckpt.model.prediction == "v"
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=config_metadata(unet={"num_hedas": 2}))
    with pytest.raises(CheckpointError, match="unknown unet fields.*num_hedas"):
        load_checkpoint(bad, device="cpu")


def test_preview_uses_the_rgb_factors_the_checkpoint_carries(tmp_path, checkpoints):
    """The demo model stores its own latent -> RGB fit; previews must use it, not SD1's."""
    from graphflow.sampling.preview import latent_preview

    tensors = load_file(str(checkpoints["sd1"]))
    factors = [[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # ch0 red, ch1 blue
    path = tmp_path / "fit.safetensors"
    save_file(tensors, str(path), metadata=config_metadata(
        latent_format={"scale_factor": 0.5, "rgb_factors": factors, "rgb_bias": [0.0, 0.0, 0.0]}))
    info = detect_architecture({k: tuple(v.shape) for k, v in tensors.items()},
                               config_metadata(latent_format={"scale_factor": 0.5, "rgb_factors": factors}))
    assert info.latent_format.rgb_factors == tuple(map(tuple, factors))
    ckpt = load_checkpoint(path, device="cpu")
    x = torch.zeros(1, 4, 8, 8)
    x[:, 1] = 1.0  # blue background
    x[:, 0, 2:6, 2:6], x[:, 1, 2:6, 2:6] = 1.0, 0.0  # a red square
    rgb = latent_preview(x, ckpt.model.latent_format)[0]
    assert rgb[4, 4].tolist() == [1.0, 0.0, 0.0] and rgb[0, 0].tolist() == [0.0, 0.0, 1.0]


# -- errors ------------------------------------------------------------------------------------

def test_pickle_checkpoint_loads_through_the_restricted_unpickler(tmp_path, checkpoints):
    state = load_file(str(checkpoints["sd1"]))
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": state, "global_step": 10}, path)
    ckpt = load_checkpoint(path, device="cpu")
    assert ckpt.info.arch == "sd1"
    assert torch.equal(ckpt.model.unet.out[2].weight, state[UNET_PREFIX + "out.2.weight"].float())


class Payload:  # an arbitrary object: weights_only unpickling must refuse it
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_with_objects_is_refused(tmp_path, capfd):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="evil.pt was refused by PyTorch's restricted unpickler.*print"):
        load_checkpoint(path, device="cpu")
    assert "this must never run" not in capfd.readouterr().out


def test_safetensors_header_that_starts_like_a_pickle(tmp_path):
    """A header length of 0x280 starts the file with bytes 0x80 0x02, a pickle's opening."""
    path = tmp_path / "tricky.safetensors"
    for n in range(600):
        save_file({"x": torch.zeros(2)}, str(path), metadata={"pad": "p" * n})
        if path.read_bytes()[:2] == b"\x80\x02":
            break
    else:
        pytest.fail("could not craft the header length")
    from graphflow.models.checkpoint import WeightFile

    with WeightFile(path) as f:
        assert f.format == "safetensors" and torch.equal(f.get("x"), torch.zeros(2))


def test_a_header_longer_than_the_format_allows_is_refused_unread(tmp_path):
    """A file claiming a header over safetensors' 100,000,000 bytes is refused from its first 8 bytes
    (the library refuses it too), not read into memory first: the file is sparse, all zeros."""
    from graphflow.models.weight_files import SAFETENSORS_MAX_HEADER, WeightFile
    claimed = SAFETENSORS_MAX_HEADER + 1
    path = tmp_path / "huge-header.safetensors"
    with open(path, "wb") as fh:
        fh.write(claimed.to_bytes(8, "little"))
        fh.truncate(8 + claimed + 16)
    with pytest.raises(CheckpointError, match="over the format's 100000000 bytes"):
        WeightFile(path)


def test_an_index_over_its_bound_is_refused_unread(tmp_path):
    from graphflow.models.weight_files import MAX_INDEX_BYTES, WeightFile
    path = tmp_path / "model.safetensors.index.json"
    with open(path, "wb") as fh:  # sparse: nothing to read, and reading it would take 32 MB
        fh.truncate(MAX_INDEX_BYTES + 1)
    with pytest.raises(CheckpointError, match=f"over the {MAX_INDEX_BYTES} an index is read to"):
        WeightFile(path)


@pytest.mark.parametrize("metadata", [[1], "text", 5])
def test_a_header_whose_metadata_is_no_object_is_a_checkpoint_error(tmp_path, metadata):
    """safetensors' __metadata__ is an object of strings; anything else is the file's fault, said so."""
    import json

    from graphflow.models.weight_files import WeightFile
    header = json.dumps({"__metadata__": metadata, "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
    path = tmp_path / "odd.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header.encode() + bytes(4))
    with pytest.raises(CheckpointError, match="__metadata__ is a"):
        WeightFile(path)


def test_truncated_and_garbage_files(tmp_path, checkpoints):
    data = checkpoints["sd1"].read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated, device="cpu")
    garbage = tmp_path / "page.safetensors"
    garbage.write_bytes(b"<html><body>404 not found</body></html>")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(garbage, device="cpu")
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_unknown_keys_say_what_was_found(tmp_path, checkpoints):
    path = tmp_path / "other.safetensors"
    save_file({"transformer.blocks.0.weight": torch.zeros(2, 2), "pos_embed": torch.zeros(3)}, str(path))
    with pytest.raises(CheckpointError, match=r"no UNet keys under model\.diffusion_model\.; found prefixes: ") as err:
        load_checkpoint(path, device="cpu")
    assert "transformer. (1)" in str(err.value) and "pos_embed (1)" in str(err.value)
    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(1, 2)}, str(lora))
    with pytest.raises(CheckpointError, match="looks like a LoRA"):
        load_checkpoint(lora, device="cpu")


def test_incomplete_checkpoints(tmp_path, checkpoints):
    tensors = load_file(str(checkpoints["sdxl"]))
    no_g = {k: v for k, v in tensors.items() if not k.startswith("conditioner.embedders.1.")}
    path = tmp_path / "no_g.safetensors"
    save_file(no_g, str(path))
    with pytest.raises(CheckpointError, match="clip_g under conditioner.embedders.1.model."):
        load_checkpoint(path, device="cpu")
    broken = {k: v for k, v in tensors.items() if "output_blocks.1.0.in_layers.2" not in k}
    save_file(broken, str(path))
    with pytest.raises(CheckpointError, match="UNet"):
        load_checkpoint(path, device="cpu")
    wrong = dict(tensors)
    wrong[UNET_PREFIX + "input_blocks.1.0.in_layers.2.weight"] = torch.zeros(32, 32, 3, 1, dtype=torch.float16)
    save_file(wrong, str(path))
    with pytest.raises(CheckpointError, match="UNet"):
        load_checkpoint(path, device="cpu")


def test_checkpoint_without_vae(tmp_path):
    path = write_checkpoint(tmp_path / "novae.safetensors", "sd1", components=("unet", "text"))
    ckpt = load_checkpoint(path, device="cpu")
    assert ckpt.vae is None and any("no VAE" in n for n in ckpt.info.notes)


# -- standalone VAE ----------------------------------------------------------------------------

def test_standalone_vae_layouts(tmp_path):
    import diffusers.loaders.single_file_utils as sfu

    state = vae_state(vae_config(), seed=5, dtype=torch.float32)
    bare = write_vae(tmp_path / "bare.safetensors", seed=5, dtype=torch.float32)
    prefixed = write_vae(tmp_path / "prefixed.safetensors", seed=5, dtype=torch.float32, prefixed=True)
    # the diffusers layout, made by diffusers' own converter
    cfg = vae_config()
    diffusers_config = {"block_out_channels": [cfg.ch * m for m in cfg.ch_mult], "layers_per_block": cfg.num_res_blocks,
                        "down_block_types": ["DownEncoderBlock2D"] * len(cfg.ch_mult),
                        "up_block_types": ["UpDecoderBlock2D"] * len(cfg.ch_mult)}
    converted = sfu.convert_ldm_vae_checkpoint({k: v.clone() for k, v in state.items()}, diffusers_config)
    assert "encoder.down_blocks.0.resnets.0.conv1.weight" in converted
    save_file({k: v.contiguous() for k, v in converted.items()}, str(tmp_path / "diffusers.safetensors"))
    legacy_names = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    legacy = {}  # older diffusers files name the mid-block attention query/key/value/proj_attn
    for key, value in converted.items():
        for new_name, old_name in legacy_names.items():
            key = key.replace(new_name, old_name)
        legacy[key] = value.contiguous()
    assert "decoder.mid_block.attentions.0.query.weight" in legacy
    save_file(legacy, str(tmp_path / "diffusers_legacy.safetensors"))
    for path in (bare, prefixed, tmp_path / "diffusers.safetensors", tmp_path / "diffusers_legacy.safetensors"):
        vae = load_vae(path, device="cpu")
        loaded = vae.module.state_dict()
        assert loaded.keys() == state.keys(), path.name
        for k in state:
            assert torch.equal(loaded[k], state[k]), (path.name, k)


def test_standalone_vae_overrides_checkpoint_vae(tmp_path, checkpoints):
    ckpt = load_checkpoint(checkpoints["sd1"], device="cpu")
    vae = load_vae(write_vae(tmp_path / "v.safetensors", seed=99), device="cpu")
    z = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(vae.decode(z), ckpt.vae.decode(z))
    assert load_vae(checkpoints["sd1"], device="cpu").module.state_dict().keys() == ckpt.vae.module.state_dict().keys()
    with pytest.raises(CheckpointError, match="no VAE keys"):
        load_vae(write_checkpoint(tmp_path / "t.safetensors", "sd1", components=("text",)))


# -- inspect -----------------------------------------------------------------------------------

def test_inspect_report(checkpoints):
    report = inspect_report(checkpoints["sdxl"])
    assert "architecture: SDXL base [sdxl]" in report
    assert "scaling factor 0.13025" in report and "latent: 4 channels" in report
    assert "text encoder clip_g:" in report and "OpenCLIP layout" in report and "float16" in report
    unet_params = sum(p.numel() for p in UNet(unet_config("sdxl")).parameters())
    assert f"unet: {unet_params / 1e6:,.1f}M params" in report
    assert "inpainting" in inspect_report(checkpoints["sd1_inpaint"])
    assert "v-prediction" in inspect_report(checkpoints["sd2_v"])


def test_cli_inspect(tmp_path, checkpoints):
    from graphflow.cli import main

    assert main(["inspect", str(checkpoints["sd1"])]) == 0
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 3)
    assert main(["inspect", str(bad)]) != 0


# -- memory ------------------------------------------------------------------------------------

RSS_SCRIPT = textwrap.dedent("""
    import gc, json, os, sys
    import torch
    from graphflow.models.checkpoint import load_checkpoint

    def status(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

    load_checkpoint(sys.argv[1], device="cpu")  # warm-up: imports, allocator
    results = []
    for path in sys.argv[2:]:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current RSS: earlier spikes are not this load's
        base = status("VmRSS")
        ckpt = load_checkpoint(path, device="cpu", dtype=torch.float32)
        load_peak = status("VmHWM")
        touched = sum(float(p.sum()) for p in ckpt.model.unet.parameters())  # page in mmap-backed weights
        size = sum(p.numel() * p.element_size() for p in ckpt.model.unet.parameters())
        results.append({"load_peak": (load_peak - base) / size, "in_use": (status("VmRSS") - base) / size,
                        "model": size})
        del ckpt
    print(json.dumps(results))
""")


def test_peak_memory_is_about_one_copy(tmp_path, checkpoints):
    """Loading a ~100 MB (fp32) UNet grows the process by about the model's size, not twice it:
    an fp32 file is used in place through the memory map; an fp16 file cast to fp32 is read tensor
    by tensor (a naive mmap-and-cast peaks at 1.5x)."""
    config = replace(unet_config("sd1"), model_channels=64, channel_mult=(1, 2, 4), num_res_blocks=2,
                     transformer_depth=(1, 1, 1))
    paths = [write_checkpoint(tmp_path / f"mid_{bits}.safetensors", "sd1", unet=config, components=("unet", "text"),
                              dtype=dtype) for bits, dtype in (("32", torch.float32), ("16", torch.float16))]
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(checkpoints["sd1"]), *map(str, paths)],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    for result in json.loads(out.stdout.strip().splitlines()[-1]):
        assert result["model"] > 80e6
        assert result["load_peak"] < 1.3, result
        assert result["in_use"] < 1.3, result


def test_the_demo_models_preview_of_a_red_circle_on_blue_is_red_on_blue():
    """The bundled demo checkpoint carries its fitted preview factors; SD1's stock ones gave a
    white blob on magenta."""
    import numpy as np
    from PIL import Image

    from graphflow.folders import BUNDLED
    from graphflow.sampling.preview import latent_preview

    ckpt = load_checkpoint(BUNDLED / "checkpoints" / "graphflow-demo.safetensors", device="cpu")
    fmt = ckpt.model.latent_format
    pixels = np.asarray(Image.open(BUNDLED / "inputs" / "red-circle-on-blue.png").convert("RGB"), dtype="float32") / 255
    latent = fmt.process_in(ckpt.vae.encode(torch.from_numpy(pixels)[None]))
    rgb = latent_preview(latent, fmt)[0]
    h, w, _ = rgb.shape
    centre, corner = rgb[h // 2, w // 2], rgb[1, 1]
    assert centre[0] > centre[2] + 0.3 and centre[0] > centre[1] + 0.2, centre  # red
    assert corner[2] > corner[0] + 0.3 and corner[2] > corner[1] + 0.3, corner  # blue
