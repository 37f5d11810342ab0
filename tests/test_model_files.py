"""CheckpointSave (LDM single file read back identically by our loader and by diffusers' single-file
converters), SaveLatent / LoadLatent (ComfyUI's .latent format)."""

import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_nodes_image_mask import call

from graphflow.context import NodeInputError
from graphflow.folders import BUNDLED
from graphflow.models.checkpoint import load_checkpoint
from graphflow.testing import unet_config, vae_config, write_checkpoint

sys.path.insert(0, str(Path(__file__).parent))


def saved_file(folders, prefix="checkpoints/graphflow"):
    files = sorted((folders.outputs / Path(prefix).parent).glob(Path(prefix).name + "_*_.safetensors"))
    return files[-1]


def assert_same_checkpoint(a, b):
    for part in ("unet",):
        sa, sb = a.model.unet.state_dict(), b.model.unet.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), part
    sa, sb = a.vae.module.state_dict(), b.vae.module.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    for ta, tb in zip(a.clip.towers, b.clip.towers):
        pa, pb = dict(ta.model.named_parameters()), dict(tb.model.named_parameters())
        assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa), ta.name
        assert ta.model.config.num_attention_heads == tb.model.config.num_attention_heads
    assert (a.model.arch, a.model.prediction, a.model.latent_format.scale_factor) == \
        (b.model.arch, b.model.prediction, b.model.latent_format.scale_factor)
    assert a.model.unet.config == b.model.unet.config and a.vae.module.config == b.vae.module.config


@pytest.mark.parametrize("arch", ["sd1", "sd2_v"])  # SDXL: in the diffusers test below
def test_checkpoint_save_round_trips_a_merged_model(builtin_registry, tmp_folders, tmp_path, arch):
    paths = [write_checkpoint(tmp_path / f"{arch}{s}.safetensors", arch, seed=s) for s in (0, 3)]
    first, second = (load_checkpoint(p, device="cpu") for p in paths)
    model = call(builtin_registry, "ModelMergeSimple", model1=first.model, model2=second.model, ratio=0.4)
    clip = call(builtin_registry, "CLIPMergeSimple", clip1=first.clip, clip2=second.clip, ratio=0.4)
    call(builtin_registry, "CheckpointSave", model=model, clip=clip, vae=first.vae, filename_prefix="checkpoints/m")
    path = saved_file(tmp_folders, "checkpoints/m")
    assert path.name == "m_00001_.safetensors"
    back = load_checkpoint(path, device="cpu")
    first.model, first.clip = model, clip
    assert_same_checkpoint(first, back)
    # The same key layout as a real checkpoint (OpenCLIP's unused logit_scale aside).
    original = set(load_file(str(paths[0])))
    written = set(load_file(str(path)))
    marker = {"v_pred"} if arch == "sd2_v" else set()  # ComfyUI's v-prediction marker key
    assert written == {k for k in original if not k.endswith("logit_scale")} | marker
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["modelspec.predict_key"] == ("v" if arch == "sd2_v" else "epsilon")
    call(builtin_registry, "CheckpointSave", model=model, clip=clip, vae=first.vae, filename_prefix="checkpoints/m")
    assert saved_file(tmp_folders, "checkpoints/m").name == "m_00002_.safetensors"


def test_checkpoint_save_keeps_the_demo_models_hidden_config(builtin_registry, tmp_folders):
    demo = load_checkpoint(BUNDLED / "checkpoints" / "graphflow-demo.safetensors", device="cpu")
    call(builtin_registry, "CheckpointSave", model=demo.model, clip=demo.clip, vae=demo.vae,
         filename_prefix="demo")
    back = load_checkpoint(saved_file(tmp_folders, "demo"), device="cpu")
    assert_same_checkpoint(demo, back)  # norm groups, head counts, the 0.0819 latent scale
    assert back.model.latent_format.scale_factor == pytest.approx(0.081868)
    cond, _ = back.clip.encode("a red circle on a white background")
    torch.testing.assert_close(cond, demo.clip.encode("a red circle on a white background")[0])


def test_checkpoint_save_blames_the_part_that_does_not_fit(builtin_registry, tmp_folders, tmp_path):
    """save_checkpoint says which part is wrong (NodeInputError.input: its parameter's name), and
    CheckpointSave blames its input of that name, whatever the message says."""
    from graphflow.models.checkpoint_save import save_checkpoint
    from graphflow.models.vae import PixelSpaceVAE

    sd1 = load_checkpoint(write_checkpoint(tmp_path / "sd1.safetensors", "sd1"), device="cpu")
    sd2 = load_checkpoint(write_checkpoint(tmp_path / "sd2.safetensors", "sd2"), device="cpu")
    wrong = {"clip": dict(clip=sd2.clip, vae=sd1.vae), "vae": dict(clip=sd1.clip, vae=PixelSpaceVAE())}
    for part, parts in wrong.items():
        with pytest.raises(NodeInputError) as e:
            save_checkpoint(tmp_path / "x.safetensors", sd1.model, **parts)
        assert e.value.input == part
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, "CheckpointSave", model=sd1.model, filename_prefix="bad", **parts)
        assert e.value.input == part, str(e.value)
    with pytest.raises(NodeInputError, match="the text encoder is for sd2") as e:
        call(builtin_registry, "CheckpointSave", model=sd1.model, clip=sd2.clip, vae=PixelSpaceVAE(),
             filename_prefix="bad")
    assert e.value.input == "clip"  # the first part that doesn't fit
    assert not list(tmp_folders.outputs.glob("bad_*")) and not (tmp_path / "x.safetensors").exists()


def test_checkpoint_save_is_read_by_diffusers(builtin_registry, tmp_folders, tmp_path):
    """diffusers' single-file converters (what from_single_file runs) give the same diffusers-layout
    weights from our saved file as from the original checkpoint, and its AutoencoderKL.from_single_file
    loads the saved VAE into a model that encodes as ours does."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_open_clip_checkpoint,
                                                     create_unet_diffusers_config_from_ldm)
    from test_unet import ldm_original_config
    from transformers import CLIPTextModelWithProjection

    source = write_checkpoint(tmp_path / "xl.safetensors", "sdxl", seed=2)
    ckpt = load_checkpoint(source, device="cpu", dtype=torch.float32)
    call(builtin_registry, "CheckpointSave", model=ckpt.model, clip=ckpt.clip, vae=ckpt.vae, filename_prefix="xl")
    path = saved_file(tmp_folders, "xl")
    saved = load_file(str(path))
    original_state = {k: v.float() for k, v in load_file(str(source)).items()}

    def same(a, b):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k].float(), b[k].float()), k

    original = ldm_original_config(unet_config("sdxl"))
    config = create_unet_diffusers_config_from_ldm(original, saved)
    unet_saved = convert_ldm_unet_checkpoint(dict(saved), config)
    assert "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight" in unet_saved
    same(unet_saved, convert_ldm_unet_checkpoint(dict(original_state), config))
    same(convert_ldm_clip_checkpoint(dict(saved)), convert_ldm_clip_checkpoint(dict(original_state)))
    text_g = CLIPTextModelWithProjection(ckpt.clip.towers[1].model.config)
    same(convert_open_clip_checkpoint(text_g, dict(saved), prefix="conditioner.embedders.1.model."),
         convert_open_clip_checkpoint(text_g, dict(original_state), prefix="conditioner.embedders.1.model."))
    cfg = vae_config()
    original["model"]["params"]["first_stage_config"]["params"] = {
        "embed_dim": 4, "ddconfig": {"ch": cfg.ch, "ch_mult": list(cfg.ch_mult), "num_res_blocks": cfg.num_res_blocks,
                                     "in_channels": 3, "out_ch": 3, "z_channels": 4, "resolution": 256}}
    original["model"]["params"]["scale_factor"] = 0.13025
    vae = AutoencoderKL.from_single_file(str(path), original_config=original).eval()
    pixels = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        mean = vae.encode(pixels * 2 - 1).latent_dist.mean
    torch.testing.assert_close(mean, ckpt.vae.encode(pixels.permute(0, 2, 3, 1)), rtol=1e-4, atol=1e-4)


def test_save_and_load_latent_in_comfyuis_format(builtin_registry, tmp_folders):
    samples = torch.randn(2, 4, 6, 5)
    call(builtin_registry, "SaveLatent", samples={"samples": samples, "batch_index": [0, 1]},
         filename_prefix="latents/test")
    path = tmp_folders.outputs / "latents" / "test_00001_.latent"
    tensors = load_file(str(path))
    assert set(tensors) == {"latent_tensor", "latent_format_version_0"} and tensors["latent_format_version_0"].numel() == 0
    assert torch.equal(tensors["latent_tensor"], samples)
    # ComfyUI numbers a prefix's files of every kind together: after test_00007_.png comes test_00008_.latent
    (tmp_folders.outputs / "latents" / "test_00007_.png").write_bytes(b"")
    call(builtin_registry, "SaveLatent", samples={"samples": samples}, filename_prefix="latents/test")
    assert sorted(p.name for p in (tmp_folders.outputs / "latents").iterdir()) == [
        "test_00001_.latent", "test_00007_.png", "test_00008_.latent"]
    (tmp_folders.inputs / "test.latent").write_bytes(path.read_bytes())
    loaded = call(builtin_registry, "LoadLatent", latent="test.latent")
    assert torch.equal(loaded["samples"], samples)
    # An old file without the version marker holds the scaled latent.
    save_file({"latent_tensor": samples * 0.18215}, str(tmp_folders.inputs / "old.latent"))
    torch.testing.assert_close(call(builtin_registry, "LoadLatent", latent="old.latent")["samples"], samples)
    save_file({"something": samples}, str(tmp_folders.inputs / "bad.latent"))
    with pytest.raises(NodeInputError, match="latent_tensor") as e:
        call(builtin_registry, "LoadLatent", latent="bad.latent")
    assert e.value.input == "latent"


def test_vae_tiled_classes_map_onto_our_vae_nodes_with_tiling(builtin_registry):
    from graphflow.workflow import import_comfy

    graph = {"1": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["3", 0], "vae": ["4", 2], "tile_size": 256,
                                                              "overlap": 32, "temporal_size": 64, "temporal_overlap": 8}},
             "2": {"class_type": "VAEEncodeTiled", "inputs": {"pixels": ["5", 0], "vae": ["4", 2], "tile_size": 512,
                                                              "overlap": 64, "temporal_size": 64, "temporal_overlap": 8}}}
    nodes = import_comfy(graph, builtin_registry).nodes
    assert nodes["1"].type == "VAEDecode"
    assert nodes["1"].inputs == {"tiled": True, "samples": ["3", 0], "vae": ["4", 2], "tile_size": 256, "overlap": 32,
                                 "temporal_size": 64, "temporal_overlap": 8}  # video VAEs tile over frames too
    assert nodes["2"].type == "VAEEncode" and nodes["2"].inputs["tiled"] is True

    class RecordingVAE:
        latent_channels = 4
        calls = []

        def decode_tiled(self, latent, tile_size, overlap):
            self.calls.append(("decode", tile_size, overlap))
            return torch.zeros(1, 8, 8, 3)

        def encode_tiled(self, pixels, tile_size, overlap):
            self.calls.append(("encode", tile_size, overlap))
            return torch.zeros(1, 4, 1, 1)

    vae = RecordingVAE()
    call(builtin_registry, "VAEDecode", samples={"samples": torch.zeros(1, 4, 1, 1)}, vae=vae, tiled=True,
         tile_size=256, overlap=32)
    call(builtin_registry, "VAEEncode", pixels=torch.zeros(1, 8, 8, 3), vae=vae, tiled=True, tile_size=512, overlap=64)
    assert vae.calls == [("decode", 256, 32), ("encode", 512, 64)]


def test_checkpoint_save_marks_v_prediction_and_zsnr_as_comfyui_does(builtin_registry, tmp_folders, tmp_path):
    """ComfyUI writes v_pred / predict_key by the model type read from the file (model.model.model_type),
    which ModelSamplingDiscrete leaves as it is (it patches model_sampling only); ztsnr follows the
    sampling's zsnr on a v model."""
    v_file = load_checkpoint(write_checkpoint(tmp_path / "v.safetensors", "sd2_v"), device="cpu")
    assert v_file.model.prediction == "v"
    vz = call(builtin_registry, "ModelSamplingDiscrete", model=v_file.model, sampling="v_prediction", zsnr=True)
    call(builtin_registry, "CheckpointSave", model=vz, clip=v_file.clip, vae=v_file.vae, filename_prefix="vz")
    path = saved_file(tmp_folders, "vz")
    with safe_open(str(path), "pt") as f:
        assert {"v_pred", "ztsnr"} <= set(f.keys()) and f.metadata()["modelspec.predict_key"] == "v"
    back = load_checkpoint(path, device="cpu")
    assert (back.model.prediction, back.model.zsnr) == ("v", True)

    # an eps file sampled as v (zero SNR) is still written as the eps model it was read as
    ckpt = load_checkpoint(write_checkpoint(tmp_path / "m.safetensors", "sd1"), device="cpu")
    as_v = call(builtin_registry, "ModelSamplingDiscrete", model=ckpt.model, sampling="v_prediction", zsnr=True)
    call(builtin_registry, "CheckpointSave", model=as_v, clip=ckpt.clip, vae=ckpt.vae, filename_prefix="as_v")
    path = saved_file(tmp_folders, "as_v")
    with safe_open(str(path), "pt") as f:
        assert not {"v_pred", "ztsnr"} & set(f.keys()) and f.metadata()["modelspec.predict_key"] == "epsilon"
    back = load_checkpoint(path, device="cpu")
    assert (back.model.prediction, back.model.zsnr) == ("eps", False)
    # and a v file sampled as eps as the v model
    as_eps = call(builtin_registry, "ModelSamplingDiscrete", model=v_file.model, sampling="eps", zsnr=False)
    call(builtin_registry, "ModelSave", model=as_eps, filename_prefix="as_eps")
    with safe_open(str(saved_file(tmp_folders, "as_eps")), "pt") as f:
        assert "v_pred" in f.keys() and "ztsnr" not in f.keys() and f.metadata()["modelspec.predict_key"] == "v"
    # A sampling choice such as lcm is not a property of the weights: the file stays a plain eps model.
    lcm = call(builtin_registry, "ModelSamplingDiscrete", model=ckpt.model, sampling="lcm", zsnr=False)
    call(builtin_registry, "CheckpointSave", model=lcm, clip=ckpt.clip, vae=ckpt.vae, filename_prefix="lcm")
    back = load_checkpoint(saved_file(tmp_folders, "lcm"), device="cpu")
    assert (back.model.prediction, back.model.zsnr) == ("eps", False)


def test_checkpoint_save_writes_comfyuis_modelspec_keys(builtin_registry, tmp_folders, tmp_path):
    """ComfyUI's save_checkpoint: modelspec.architecture / sai_model_spec / implementation / title
    ("<prefix name> <counter>") for SDXL (and its refiner, SVD, SD3) only; predict_key for every
    eps or v model."""
    for arch, expected in (("sd1", None), ("sdxl", "stable-diffusion-xl-v1-base")):
        ckpt = load_checkpoint(write_checkpoint(tmp_path / f"{arch}.safetensors", arch), device="cpu")
        call(builtin_registry, "CheckpointSave", model=ckpt.model, clip=ckpt.clip, vae=ckpt.vae,
             filename_prefix=f"checkpoints/{arch}")
        with safe_open(str(saved_file(tmp_folders, f"checkpoints/{arch}")), "pt") as f:
            metadata = f.metadata()
        assert metadata["modelspec.predict_key"] == "epsilon"
        assert metadata.get("modelspec.architecture") == expected
        if expected:
            assert (metadata["modelspec.title"], metadata["modelspec.sai_model_spec"],
                    metadata["modelspec.implementation"]) == (f"{arch} 1", "1.0.0", "sgm")
        else:
            assert not {"modelspec.title", "modelspec.sai_model_spec", "modelspec.implementation"} & set(metadata)


def test_checkpoint_save_marks_an_edm_v_model_as_comfyui_does(builtin_registry, tmp_folders, tmp_path):
    """A model under ModelSamplingContinuousEDM v_prediction (CosXL's sampling) is written with
    ComfyUI's edm_vpred.sigma_max / sigma_min keys, which an SDXL file is read back by."""
    ckpt = load_checkpoint(write_checkpoint(tmp_path / "xl.safetensors", "sdxl"), device="cpu")
    edm = call(builtin_registry, "ModelSamplingContinuousEDM", model=ckpt.model, sampling="v_prediction",
               sigma_max=80.0, sigma_min=0.03)
    call(builtin_registry, "CheckpointSave", model=edm, clip=ckpt.clip, vae=ckpt.vae, filename_prefix="cosxl")
    path = saved_file(tmp_folders, "cosxl")
    state = load_file(str(path))
    assert state["edm_vpred.sigma_max"].dtype == torch.float32 and state["edm_vpred.sigma_max"].item() == 80.0
    assert state["edm_vpred.sigma_min"].item() == pytest.approx(0.03) and "v_pred" not in state
    with safe_open(str(path), "pt") as f:  # ComfyUI: the model type's (the file was eps), beside the EDM keys
        assert f.metadata()["modelspec.predict_key"] == "epsilon"
    back = load_checkpoint(path, device="cpu").model
    assert (back.prediction, back.continuous_timestep) == ("v", "log")
    assert back.edm == pytest.approx((0.03, 80.0))
    # the plain model next to it is still read as what it is
    call(builtin_registry, "CheckpointSave", model=ckpt.model, clip=ckpt.clip, vae=ckpt.vae, filename_prefix="plain")
    plain = load_checkpoint(saved_file(tmp_folders, "plain"), device="cpu").model
    assert plain.edm is None and plain.prediction == "eps"
