"""ModelSave / CLIPSave / VAESave: the files ComfyUI's nodes of those names write (diffusion model
under model.diffusion_model., bare LDM VAE keys, one transformers-layout file per text encoder),
read back by our separate-file loaders into the same weights and outputs."""

import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from test_nodes_image_mask import call  # noqa: E402

from graphflow.context import NodeInputError  # noqa: E402
from graphflow.models.checkpoint import load_checkpoint, load_diffusion_model, load_vae  # noqa: E402
from graphflow.models.text_encoder_files import load_text_encoders  # noqa: E402
from graphflow.testing import write_checkpoint, write_flow_checkpoint  # noqa: E402

UNET = "model.diffusion_model."


def saved(folders, prefix):
    return sorted((folders.outputs / Path(prefix).parent).glob(Path(prefix).name + "_*_.safetensors"))


def same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parts")
    made = {arch: write_checkpoint(tmp / f"{arch}.safetensors", arch, seed=1) for arch in ("sd1", "sd2_v", "sdxl")}
    made["sd1_b"] = write_checkpoint(tmp / "sd1_b.safetensors", "sd1", seed=4)
    for family in ("flux_dev", "sd3_medium"):
        made[family] = write_flow_checkpoint(tmp / f"{family}.safetensors", family, seed=2)
    return made


@pytest.mark.parametrize("arch", ["sd1", "sd2_v", "sdxl", "flux_dev", "sd3_medium"])
def test_model_save_writes_the_diffusion_model_and_unet_loader_reads_it_back(builtin_registry, tmp_folders, files,
                                                                             arch):
    ckpt = load_checkpoint(files[arch], device="cpu", dtype=torch.float32)
    call(builtin_registry, "ModelSave", model=ckpt.model, filename_prefix="diffusion_models/m")
    [path] = saved(tmp_folders, "diffusion_models/m")
    assert path.name == "m_00001_.safetensors"
    written = load_file(str(path))
    marker = {"v_pred"} if arch == "sd2_v" else set()
    assert set(written) == {k for k in load_file(str(files[arch])) if k.startswith(UNET)} | marker
    back = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    assert (back.arch, back.prediction) == (ckpt.model.arch, ckpt.model.prediction)
    assert back.unet.config == ckpt.model.unet.config  # head counts etc.: the same network
    assert back.latent_format == ckpt.model.latent_format
    same_state(back.unet.state_dict(), ckpt.model.unet.state_dict())
    if arch == "sd1":
        x, t = torch.randn(1, 4, 8, 8), torch.tensor([400.0])
        context = torch.randn(1, 77, ckpt.model.unet.config.context_dim)
        with torch.no_grad():
            assert torch.equal(back.unet(x, t, context, None), ckpt.model.unet(x, t, context, None))
    # the whole-checkpoint loader takes the file too (its model part)
    assert load_checkpoint(path, device="cpu", dtype=torch.float32).model.arch == ckpt.model.arch


def test_model_save_bakes_a_merge_in(builtin_registry, tmp_folders, files):
    first, second = (load_checkpoint(files[k], device="cpu", dtype=torch.float32) for k in ("sd1", "sd1_b"))
    merged = call(builtin_registry, "ModelMergeSimple", model1=first.model, model2=second.model, ratio=0.3)
    call(builtin_registry, "ModelSave", model=merged, filename_prefix="merged")
    back = load_diffusion_model(saved(tmp_folders, "merged")[0], device="cpu", dtype=torch.float32).unet.state_dict()
    a, b = first.model.unet.state_dict(), second.model.unet.state_dict()
    assert back.keys() == a.keys()
    for name in a:
        torch.testing.assert_close(back[name], 0.3 * a[name] + 0.7 * b[name], msg=name)


@pytest.mark.parametrize("arch", ["sd1", "flux_dev"])
def test_vae_save_writes_bare_ldm_keys_that_the_vae_loader_reads_back(builtin_registry, tmp_folders, files, arch):
    ckpt = load_checkpoint(files[arch], device="cpu", dtype=torch.float32)
    call(builtin_registry, "VAESave", vae=ckpt.vae, filename_prefix="vae/v")
    [path] = saved(tmp_folders, "vae/v")
    written = load_file(str(path))
    assert "encoder.conv_in.weight" in written and not any(k.startswith("first_stage_model.") for k in written)
    back = load_vae(path, device="cpu", dtype=torch.float32)
    same_state(back.module.state_dict(), ckpt.vae.module.state_dict())
    fmt, back_fmt = ckpt.vae.latent_format, back.latent_format
    assert (back_fmt.channels, back_fmt.scale_factor, back_fmt.shift_factor) == \
        (fmt.channels, fmt.scale_factor, fmt.shift_factor)
    pixels = torch.rand(1, 16, 16, 3)
    torch.testing.assert_close(back.encode(pixels), ckpt.vae.encode(pixels))


def _params(module) -> dict:
    return dict(module.named_parameters())


@pytest.mark.parametrize("arch, clip_type, names", [
    ("sd1", "stable_diffusion", ["clip_l"]),
    ("sdxl", "sdxl", ["clip_g", "clip_l"]),
    ("flux_dev", "flux", ["clip_l", "t5xxl"]),
    ("sd3_medium", "sd3", ["clip_g", "clip_l", "t5xxl"]),
])
def test_clip_save_writes_one_file_per_encoder_that_clip_loaders_read_back(builtin_registry, tmp_folders, files,
                                                                           arch, clip_type, names):
    ckpt = load_checkpoint(files[arch], device="cpu", dtype=torch.float32)
    call(builtin_registry, "CLIPSave", clip=ckpt.clip, filename_prefix="text_encoders/c")
    paths = sorted((tmp_folders.outputs / "text_encoders").glob("*.safetensors"))
    assert [p.name for p in paths] == [f"c_{n}_00001_.safetensors" for n in names]
    for path in paths:
        keys = set(load_file(str(path)))
        with safe_open(str(path), "pt") as f:
            assert f.metadata()["format"] == "pt"  # ComfyUI's CLIPSave metadata
        if "t5xxl" in path.name:
            assert "shared.weight" in keys and all(k.startswith(("encoder.", "shared.")) for k in keys)
        else:
            assert all(k.startswith(("text_model.", "text_projection.")) for k in keys)
    back = load_text_encoders(paths, clip_type, device="cpu", dtype=torch.float32)
    if arch.startswith(("sd1", "sdxl")):
        for a, b in zip(ckpt.clip.towers, back.towers):
            assert a.name == b.name
            same_state(_params(b.model), _params(a.model))
        prompt = "a red circle"
        torch.testing.assert_close(back.encode(prompt)[0], ckpt.clip.encode(prompt)[0])
    else:
        for slot in ("clip_l", "clip_g", "t5"):
            a, b = getattr(ckpt.clip, slot), getattr(back, slot)
            assert (a is None) == (b is None), slot
            if a is not None:
                same_state(_params(b.model), _params(a.model))
        torch.testing.assert_close(back.encode("a red circle")[0], ckpt.clip.encode("a red circle")[0])


@pytest.mark.parametrize("node, socket", [("ModelSave", "model"), ("VAESave", "vae"), ("CLIPSave", "clip")])
def test_part_saves_stay_inside_the_outputs_folder(builtin_registry, tmp_folders, files, node, socket):
    ckpt = load_checkpoint(files["sd1"], device="cpu", dtype=torch.float32)
    value = {"model": ckpt.model, "vae": ckpt.vae, "clip": ckpt.clip}[socket]
    with pytest.raises(ValueError, match="stay inside"):
        call(builtin_registry, node, **{socket: value, "filename_prefix": "../../escape"})
    outside = tmp_folders.outputs.parent / "outside"
    outside.mkdir()
    (tmp_folders.outputs / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, node, **{socket: value, "filename_prefix": "link/escape"})
    assert e.value.input == "filename_prefix"
    assert not list(outside.iterdir())


@pytest.mark.parametrize("family", ["wan21", "wan22", "mochi", "cosmos1", "ltxv"])
def test_vae_save_of_a_video_vae_reads_back_as_the_same_vae(builtin_registry, tmp_folders, tmp_path, family):
    """Video VAEs (Wan 2.1 / 2.2, Mochi, Cosmos' CV8x8x8, LTX-Video's) save in the layout VAELoader
    takes for them, and decode a latent exactly as before."""
    from graphflow import testing
    from graphflow.models.file_kind import identify
    from graphflow.models.weight_files import WeightFile

    source = tmp_path / "vae.safetensors"
    if family == "ltxv":
        vae = load_checkpoint(testing.write_ltxv_checkpoint(source, dtype=torch.float32), device="cpu",
                              dtype=torch.float32).vae
    else:
        writer = {"wan21": testing.write_wan_vae, "wan22": lambda p, **kw: testing.write_wan_vae(p, wan22=True, **kw),
                  "mochi": testing.write_mochi_vae, "cosmos1": testing.write_cosmos_vae}[family]
        vae = load_vae(writer(source, dtype=torch.float32), device="cpu", dtype=torch.float32)
    call(builtin_registry, "VAESave", vae=vae, filename_prefix="vae/v")
    [path] = saved(tmp_folders, "vae/v")
    with WeightFile(path) as f:
        assert identify(f.shapes).loader == "LoadVAE"
    back = load_vae(path, device="cpu", dtype=torch.float32)
    assert type(back) is type(vae) and back.latent_format == vae.latent_format
    same_state(back.module.state_dict(), vae.module.state_dict())
    latent = torch.randn(1, vae.latent_channels, 2, 2, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(back.decode(latent), vae.decode(latent), rtol=0, atol=0)
