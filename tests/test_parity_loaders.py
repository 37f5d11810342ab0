"""ComfyUI parity of the loader nodes (CheckpointLoaderSimple, UNETLoader, CLIPLoader, VAELoader, ...):
which files their lists offer (ComfyUI's folder_paths: extensions, folders, search order) and what
the loaders read from a file."""

import shutil

import pytest

from graphflow.executor import Executor
from graphflow.testing import write_checkpoint
from graphflow.workflow import parse_workflow
from tests.test_folders import tiny_checkpoint  # noqa: F401 (fixture)


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_a_sft_checkpoint_is_listed_and_loads(builtin_registry, tmp_folders, tiny_checkpoint):
    # ComfyUI lists .sft (safetensors under early FLUX releases' name), .pkl and .pt2 files too
    shutil.copy(tiny_checkpoint, _touch(tmp_folders.models / "checkpoints" / "tiny.sft"))
    for name in ("old.pkl", "export.pt2", "notes.txt"):
        _touch(tmp_folders.models / "checkpoints" / name)
    names = tmp_folders.list_models("checkpoints")
    assert {"tiny.sft", "old.pkl", "export.pt2"} <= set(names) and "notes.txt" not in names
    workflow = parse_workflow({"nodes": {"1": {"type": "LoadCheckpoint", "inputs": {"checkpoint": "tiny.sft"}}}})
    result = Executor(builtin_registry).run(workflow, outputs=["1"])
    assert result.status == "success", (result.problems, result.error)


def test_model_folders_and_search_order_are_comfyuis(tmp_folders):
    models = tmp_folders.models
    # diffusion models: models/unet/ is searched before models/diffusion_models/
    first = _touch(models / "unet" / "same.safetensors")
    _touch(models / "diffusion_models" / "same.safetensors")
    _touch(models / "diffusion_models" / "other.safetensors")
    assert tmp_folders.find_model("diffusion_models", "same.safetensors") == first.resolve()
    assert {"same.safetensors", "other.safetensors"} <= set(tmp_folders.list_models("diffusion_models"))
    # text encoders: models/text_encoders/ and the older models/clip/
    _touch(models / "text_encoders" / "t5.safetensors")
    _touch(models / "clip" / "clip_l.safetensors")
    assert {"t5.safetensors", "clip_l.safetensors"} <= set(tmp_folders.list_models("text_encoders"))
    # ControlNets: models/controlnet/ and models/t2i_adapter/
    _touch(models / "t2i_adapter" / "sketch.safetensors")
    assert "sketch.safetensors" in tmp_folders.list_models("controlnet")
    # a model repository's .git folder is never listed
    _touch(models / "vae" / ".git" / "objects" / "blob.bin")
    _touch(models / "vae" / "repo" / ".git" / "lfs.safetensors")
    _touch(models / "vae" / "repo" / "ae.safetensors")
    assert [n for n in tmp_folders.list_models("vae") if n.startswith(("repo/", ".git/"))] == ["repo/ae.safetensors"]


def test_text_encoder_loaders_offer_both_folders(builtin_registry, tmp_folders):
    _touch(tmp_folders.models / "clip" / "clip_l.safetensors")
    _touch(tmp_folders.models / "text_encoders" / "t5.safetensors")
    from nodes.text_encoder_loaders import LoadTextEncoder

    choices = LoadTextEncoder.input_specs["clip_name"].widget.choices()
    assert {"clip_l.safetensors", "t5.safetensors"} <= set(choices)


def test_vaeloader_takes_taesd_halves_of_any_model_extension(builtin_registry, tmp_folders):
    """ComfyUI's VAELoader offers taef1 once models/vae_approx/ holds taef1_encoder.* and
    taef1_decoder.* of any model extension, and takes the first of each by name."""
    import torch
    from safetensors.torch import save_file

    from graphflow.models.latent_formats import FLUX
    from graphflow.models.taesd import Decoder, Encoder, TAESDConfig

    torch.manual_seed(0)
    enc, dec = Encoder(TAESDConfig(latent_channels=16)), Decoder(TAESDConfig(latent_channels=16))
    approx = tmp_folders.models / "vae_approx"
    approx.mkdir(parents=True)
    widget = builtin_registry.get("LoadVAE").input_specs["vae_name"].widget
    save_file(enc.state_dict(), str(approx / "taef1_encoder.sft"))
    torch.save(dec.state_dict(), approx / "taef1_decoder.pt")
    assert "taef1" in widget.choices() and widget.choices()[-1] == "pixel_space"
    # a second decoder, sorting after the first (.pt < .safetensors), is not the one taken
    save_file({k: torch.zeros_like(v) for k, v in dec.state_dict().items()}, str(approx / "taef1_decoder.safetensors"))
    node = builtin_registry.get("LoadVAE").__new__(builtin_registry.get("LoadVAE"))
    node.vae_name = "taef1"
    tiny = node.run()
    x = torch.randn(1, 16, 4, 4)  # the decoder's input: FLUX's latent, scaled and shifted
    with torch.no_grad():
        expected = dec(x).clamp(0, 1)
        got = tiny.decode(x / FLUX.scale_factor + FLUX.shift_factor).movedim(-1, 1)
    assert expected.abs().sum() > 0 and torch.allclose(got, expected, atol=1e-5)
    assert tiny.latent_format.scale_factor == FLUX.scale_factor


@pytest.mark.parametrize("weight_dtype", ["fp8_e4m3fn", "fp8_e5m2"])
def test_unetloader_fp8_weight_dtype_rounds_every_tensor_as_comfyui(tmp_path, weight_dtype):
    """UNETLoader's fp8 weight_dtype: ComfyUI builds the whole network in fp8 (Linear biases, RMSNorm
    scales, embeddings too) and upcasts each tensor where used: the same function as the
    full-precision model with every tensor rounded to fp8."""
    import torch

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_flow_checkpoint

    storage = getattr(torch, weight_dtype.replace("fp8", "float8"))
    path = write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_dev", components=("model",), prefixed=False,
                                 dtype=torch.float32)
    full = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    fp8 = load_diffusion_model(path, device="cpu", dtype=torch.float32, weight_dtype=weight_dtype)
    with torch.no_grad():
        for t in full.unet.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.to(storage).float())
    norm = fp8.unet.double_blocks[0].img_attn.norm.query_norm.scale
    assert norm.dtype == torch.float32 and torch.equal(norm, norm.to(storage).float())
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(1, 16, 8, 8, generator=g), torch.tensor([0.5]), torch.randn(1, 5, 192, generator=g),
            torch.randn(1, 64, generator=g))
    with torch.no_grad():
        torch.testing.assert_close(fp8(*args, guidance=torch.tensor([3.5])), full(*args, guidance=torch.tensor([3.5])),
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["sd1", "pixart"])
def test_unetloader_fp8_on_a_unet_or_pixart_gives_comfyuis_rounded_numbers(tmp_path, family):
    """ComfyUI takes fp8_e4m3fn for a SD1 UNet or PixArt too (where graphflow used to refuse): every
    tensor rounded to fp8, upcast where used."""
    import torch

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_pixart

    path = tmp_path / f"{family}.safetensors"
    write_checkpoint(path, "sd1") if family == "sd1" else write_pixart(path, dtype=torch.float32)
    full = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    fp8 = load_diffusion_model(path, device="cpu", dtype=torch.float32, weight_dtype="fp8_e4m3fn")
    assert fp8.arch == family and fp8.dtype == torch.float32
    with torch.no_grad():
        for t in full.unet.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.to(torch.float8_e4m3fn).float())
    for name, t in fp8.unet.state_dict().items():
        torch.testing.assert_close(t, full.unet.state_dict()[name], atol=0, rtol=0)


def test_upscalemodelloader_takes_face_restoration_models(tmp_path, monkeypatch):
    """ComfyUI's UpscaleModelLoader takes every spandrel single-image model, face restoration
    (GFPGAN, CodeFormer: purpose "FaceSR") included; only other kinds (inpainting) are refused."""
    import spandrel
    import torch
    from safetensors.torch import save_file

    from graphflow.models.upscale import load_upscale_model
    from graphflow.models.weight_files import CheckpointError

    conv = torch.nn.Conv2d(3, 3, 1)
    path = tmp_path / "face.safetensors"
    save_file({k: v.contiguous() for k, v in conv.state_dict().items()}, str(path))
    real = spandrel.ModelLoader.load_from_state_dict
    arch = real(spandrel.ModelLoader(), _esrgan_state()).architecture

    def face_model(self, state):
        return spandrel.ImageModelDescriptor(conv, state, arch, "FaceSR", [], False, False, 1, 3, 3)
    monkeypatch.setattr(spandrel.ModelLoader, "load_from_state_dict", face_model)
    assert load_upscale_model(path).purpose == "FaceSR"

    class Inpainter:  # not a single-image model
        architecture, purpose = arch, "Inpainting"
    monkeypatch.setattr(spandrel.ModelLoader, "load_from_state_dict", lambda self, state: Inpainter())
    with pytest.raises(CheckpointError, match="face.safetensors .* not a single-image model"):
        load_upscale_model(path)


def _esrgan_state():
    """A tiny ESRGAN's state dict (for a real spandrel Architecture object)."""
    import tempfile
    from pathlib import Path

    from safetensors.torch import load_file

    from graphflow.testing import write_esrgan

    with tempfile.TemporaryDirectory() as d:
        return load_file(str(write_esrgan(Path(d) / "e.safetensors", scale=4)))


def test_ztsnr_marker_counts_with_v_prediction_only(tmp_path):
    """ComfyUI samples on the zero-terminal-SNR schedule when a checkpoint has the 'ztsnr' marker
    key next to 'v_pred'; an eps checkpoint with 'ztsnr' alone keeps the ordinary schedule."""
    from graphflow.models.architecture import detect_architecture
    from graphflow.models.weight_files import WeightFile

    with WeightFile(write_checkpoint(tmp_path / "xl.safetensors", "sdxl")) as f:
        shapes = dict(f.shapes)
    assert not detect_architecture({**shapes, "ztsnr": ()}).zero_terminal_snr
    info = detect_architecture({**shapes, "v_pred": (), "ztsnr": ()})
    assert info.prediction == "v" and info.zero_terminal_snr
