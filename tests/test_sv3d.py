"""SV3D (sv3d_u / sv3d_p): SVD's UNet told apart by its vector conditioning's width, against
diffusers' UNetSpatioTemporalConditionModel on identical tiny random weights; its camera
conditioning in closed form; ComfyUI's SV3D_Conditioning graph end to end."""

import math
from dataclasses import replace

import pytest
import torch

from graphflow.models.svd import SVDUNet, sv3d_p_adm, sv3d_u_adm, svd_config_from_shapes, video_variant

diffusers = pytest.importorskip("diffusers")

from tests.test_svd import TINY, diffusers_unet_to_sgm, tiny_reference  # noqa: E402


def _cos_sin(values, dim: int) -> torch.Tensor:
    """LDM's sinusoidal embedding written out: cos half first, frequencies 10000^(-i / (dim / 2))."""
    half = dim // 2
    rows = []
    for v in values:
        args = [v * math.exp(-math.log(10000.0) * i / half) for i in range(half)]
        rows.append([math.cos(a) for a in args] + [math.sin(a) for a in args])
    return torch.tensor(rows, dtype=torch.float32)


def test_variant_from_label_emb_width():
    for adm, name in ((768, "svd"), (256, "sv3d_u"), (1280, "sv3d_p")):
        ours = SVDUNet(replace(TINY, adm_in_channels=adm))
        config = svd_config_from_shapes({k: tuple(v.shape) for k, v in ours.state_dict().items()})
        assert config.adm_in_channels == adm and config.variant == name
    with pytest.raises(ValueError, match=r"512 wide .*768 \(svd\), 256 \(sv3d_u\), 1280 \(sv3d_p\)"):
        video_variant(512)


@pytest.mark.parametrize("adm, variant", [(256, "sv3d_u"), (1280, "sv3d_p")])
def test_full_size_layout_is_diffusers_with_sv3d_width(adm, variant):
    """At full size (SV3D's sgm config is SVD's but for adm_in_channels), every parameter has the
    shape of diffusers' UNetSpatioTemporalConditionModel's with that added-embedding width, and
    the config read back from the shapes names the variant. Meta device: no memory, no time."""
    from diffusers import UNetSpatioTemporalConditionModel

    from graphflow.models.svd import SVDConfig

    with torch.device("meta"):
        ours = SVDUNet(SVDConfig(adm_in_channels=adm))
        reference = UNetSpatioTemporalConditionModel(projection_class_embeddings_input_dim=adm)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in diffusers_unet_to_sgm(reference, 2, ours).items()} == shapes
    assert shapes["label_emb.0.0.weight"] == (1280, adm)
    assert svd_config_from_shapes(shapes) == SVDConfig(adm_in_channels=adm)
    assert svd_config_from_shapes(shapes).variant == variant


@pytest.mark.parametrize("adm", [256, 1280])
def test_unet_matches_diffusers(adm):
    from diffusers.models.embeddings import Timesteps

    reference = tiny_reference(adm)
    config = replace(TINY, adm_in_channels=adm)
    ours = SVDUNet(config).eval()
    ours.load_state_dict(diffusers_unet_to_sgm(reference, config.num_res_blocks, ours), strict=True)
    # SV3D_u's y is one added time id (the augmentation level) embedded 256 wide: diffusers'
    # add_time_proj as it is, fed added_time_ids [[augmentation]].
    if adm == 1280:
        # diffusers embeds every added time id 256 wide (add_time_proj); SV3D_p embeds its two camera
        # angles 512 wide. Its add_time_proj is swapped for diffusers' own Timesteps at those widths
        # over (augmentation, polar, azimuth) per video; add_embedding (label_emb) stays diffusers'.
        class SV3DTimeProj(torch.nn.Module):
            narrow, wide = Timesteps(256, True, 0), Timesteps(512, True, 0)

            def forward(self, ids):
                ids = ids.reshape(-1, 3)
                return torch.cat([self.narrow(ids[:, 0]), self.wide(ids[:, 1]), self.wide(ids[:, 2])], 1).flatten()

        reference.add_time_proj = SV3DTimeProj()
    torch.manual_seed(1)
    videos, frames = 2, 3
    x = torch.randn(videos, frames, 8, 8, 12)
    image_embeds = torch.randn(videos, 1, 24)
    sigma = torch.tensor([3.0, 0.5])
    t = 0.25 * sigma.log()
    cameras = [(0.02, 10.0, 30.0), (0.0, -20.0, 400.0)]  # (augmentation, elevation, azimuth) per video
    if adm == 256:
        time_ids = torch.tensor([[aug] for aug, _, _ in cameras])
        y = torch.cat([sv3d_u_adm(aug) for aug, _, _ in cameras])
    else:
        time_ids = torch.tensor([[aug, math.radians(math.fmod(90 - el, 360)), math.radians(math.fmod(az, 360))]
                                 for aug, el, az in cameras])
        y = torch.cat([sv3d_p_adm(aug, el, az) for aug, el, az in cameras])
    assert y.shape == (videos, adm)
    with torch.no_grad():
        expected = reference(x, t, image_embeds, time_ids).sample
        got = ours(x.flatten(0, 1), t.repeat_interleave(frames), image_embeds.repeat_interleave(frames, 0),
                   y.repeat_interleave(frames, 0), num_frames=frames)
    torch.testing.assert_close(got, expected.flatten(0, 1), atol=1e-4, rtol=1e-4)


def test_sv3d_vectors_closed_form():
    torch.testing.assert_close(sv3d_u_adm(0.3), _cos_sin([0.3], 256))
    elevations, azimuths = [10.0, -30.0, 85.5, 0.0], [0.0, 90.0, 360.0, 725.0]
    y = sv3d_p_adm(0.0, elevations, azimuths)
    assert y.shape == (4, 1280)
    # polar angle 90 - elevation; fmod wraps 360 to 0 and 725 to 5 degrees
    polar = [math.radians(90 - e) for e in elevations]
    azimuth = [math.radians(a) for a in (0.0, 90.0, 0.0, 5.0)]
    torch.testing.assert_close(y[:, :256], _cos_sin([0.0] * 4, 256))
    torch.testing.assert_close(y[:, 256:768], _cos_sin(polar, 512), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y[:, 768:], _cos_sin(azimuth, 512), atol=1e-5, rtol=1e-5)
    assert torch.equal(y[0, 768:], y[2, 768:])  # 360 degrees is the first view again
    torch.testing.assert_close(sv3d_p_adm(0.0, 20.0, azimuths)[:, 256:768], _cos_sin([math.radians(70)] * 4, 512))
    with pytest.raises(ValueError, match="as many elevations as azimuths"):
        sv3d_p_adm(0.0, [1.0, 2.0], [1.0, 2.0, 3.0])


# -- nodes ---------------------------------------------------------------------------------------

def _sv3d_graph(checkpoint: str, frames: int = 4, loader: str = "ImageOnlyCheckpointLoader") -> dict:
    return {
        "1": {"class_type": loader, "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 80, "height": 48, "batch_size": 1, "color": 0xff8020}},
        "3": {"class_type": "SV3D_Conditioning",
              "inputs": {"clip_vision": ["1", 1], "init_image": ["2", 0], "vae": ["1", 2], "width": 48, "height": 48,
                         "video_frames": frames, "elevation": 12.5}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["3", 0], "negative": ["3", 1],
                                                   "latent_image": ["3", 2], "seed": 3, "steps": 2, "cfg": 2.5,
                                                   "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["6", 0], "filename_prefix": "sv3d", "fps": 6.0,
                                                           "lossless": False, "quality": 85, "method": "default"}},
    }


@pytest.mark.parametrize("adm, temporal_vae", [(256, False), (1280, True)])
def test_comfyui_sv3d_graph_end_to_end(builtin_registry, tmp_folders, monkeypatch, adm, temporal_vae):
    """ImageOnlyCheckpointLoader -> SV3D_Conditioning -> KSampler -> VAEDecode -> SaveAnimatedWEBP;
    the UNet sees positive and negative as two videos of 4 frames, and y as the closed form of
    each frame's camera: SV3D_p's rows differ by azimuth 0, 120, 240, 360 at polar angle 77.5."""
    from PIL import Image

    from graphflow.executor import Executor
    from graphflow.models import svd
    from graphflow.models.vae import VAE
    from graphflow.models.video_vae import VideoVAE
    from graphflow.testing import write_svd_checkpoint
    from graphflow.workflow import parse_workflow

    (tmp_folders.models / "checkpoints").mkdir(parents=True)
    write_svd_checkpoint(tmp_folders.models / "checkpoints" / "sv3d.safetensors", adm_in_channels=adm,
                         temporal_vae=temporal_vae)
    calls = []
    forward = svd.SVDUNet.forward

    def spy(self, x, timesteps, context, y, num_frames=None):
        calls.append((x.shape, num_frames, y.float().cpu()))
        return forward(self, x, timesteps, context, y, num_frames)

    monkeypatch.setattr(svd.SVDUNet, "forward", spy)
    result = Executor(builtin_registry).run(parse_workflow(_sv3d_graph("sv3d.safetensors"), builtin_registry))
    assert result.ok, result.error
    assert type(result.values["1"][2]) is (VideoVAE if temporal_vae else VAE)
    frames = result.values["6"][0]
    assert frames.shape == (4, 48, 48, 3)
    assert calls and all(shape == (8, 8, 6, 6) and n == 4 for shape, n, _ in calls)
    if adm == 256:
        expected = sv3d_u_adm(0.0).expand(4, -1)
    else:
        expected = torch.cat([_cos_sin([0.0] * 4, 256), _cos_sin([math.radians(77.5)] * 4, 512),
                              _cos_sin([math.radians(a) for a in (0.0, 120.0, 240.0, 0.0)], 512)], dim=1)
        assert (calls[0][2][1] - calls[0][2][0]).abs().max() > 0.1  # the frames' cameras differ
    for _, _, y in calls:  # positive and negative carry the same cameras
        torch.testing.assert_close(y, torch.cat([expected, expected]), atol=1e-5, rtol=1e-5)
    [saved] = list(tmp_folders.outputs.glob("sv3d*.webp"))
    with Image.open(saved) as webp:
        assert webp.n_frames == 4 and webp.size == (48, 48)


def test_conditioning_as_comfyui(builtin_registry, tmp_folders):
    from graphflow.models.checkpoint import load_image_only_checkpoint
    from graphflow.testing import write_svd_checkpoint
    from tests.test_nodes_image_mask import call

    _, clip_vision, vae = load_image_only_checkpoint(
        write_svd_checkpoint(tmp_folders.models / "sv3d_p.safetensors", adm_in_channels=1280),
        device="cpu", dtype=torch.float32)
    image = torch.rand(1, 40, 90, 3)
    positive, negative, latent = call(builtin_registry, "SV3DConditioning", clip_vision=clip_vision, init_image=image,
                                      vae=vae, width=64, height=32, video_frames=5, elevation=-15.0)
    [(embedding, options)] = positive
    torch.testing.assert_close(embedding, clip_vision.encode_image(image).image_embeds[None])
    assert options["concat_latent_image"].shape == (1, 4, 4, 8)
    assert options["elevation"] == [-15.0] * 5 and options["azimuth"] == [0.0, 90.0, 180.0, 270.0, 360.0]
    [(zeros, negative_options)] = negative
    assert not zeros.any() and not negative_options["concat_latent_image"].any()
    assert negative_options["azimuth"] == options["azimuth"]
    assert latent["samples"].shape == (5, 4, 4, 8) and not latent["samples"].any()
    # one frame: azimuth 0 alone (the increment is 360 / (max(frames, 2) - 1))
    one = call(builtin_registry, "SV3DConditioning", clip_vision=clip_vision, init_image=image, vae=vae, width=64,
               height=32, video_frames=1, elevation=0.0)[0][0][1]
    assert one["azimuth"] == [0.0]


def test_bad_inputs(builtin_registry, tmp_folders):
    from graphflow.api import NodeInputError
    from graphflow.executor import Executor
    from graphflow.testing import write_checkpoint, write_svd_checkpoint
    from graphflow.workflow import parse_workflow
    from tests.test_nodes_image_mask import call

    checkpoints = tmp_folders.models / "checkpoints"
    checkpoints.mkdir(parents=True)
    write_svd_checkpoint(checkpoints / "odd.safetensors", adm_in_channels=512)
    write_checkpoint(checkpoints / "sd1.safetensors", "sd1")
    write_svd_checkpoint(checkpoints / "svd.safetensors")
    with pytest.raises(NodeInputError, match=r"512 wide") as error:
        call(builtin_registry, "ImageOnlyCheckpointLoader", checkpoint="odd.safetensors")
    assert error.value.input == "checkpoint"
    # an image checkpoint loads as in ComfyUI: its model and VAE, an empty clip_vision
    model, clip_vision, vae = call(builtin_registry, "ImageOnlyCheckpointLoader", checkpoint="sd1.safetensors")
    assert model.arch == "sd1" and clip_vision is None and vae is not None
    # and the other way round: an SV3D file is not for the image checkpoint loader
    write_svd_checkpoint(checkpoints / "sv3d_p.safetensors", adm_in_channels=1280)
    with pytest.raises(NodeInputError, match=r"SV3D\): load it with ImageOnlyCheckpointLoader"):
        call(builtin_registry, "LoadCheckpoint", checkpoint="sv3d_p.safetensors")
    with pytest.raises(NodeInputError, match="IMAGE") as error:
        call(builtin_registry, "SV3DConditioning", clip_vision=None, init_image=torch.rand(40, 90, 3), vae=None,
             width=64, height=32, video_frames=3, elevation=0.0)
    assert error.value.input == "init_image"
    # SV3D's camera conditioning on plain SVD: refused at sampling, naming what to use instead
    result = Executor(builtin_registry).run(parse_workflow(_sv3d_graph("svd.safetensors", 3), builtin_registry))
    assert not result.ok and "SV3D model" in str(result.error) and "SVD_img2vid_Conditioning" in str(result.error)
    assert result.error["node_type"] == "KSampler"
    # ... and on an image model (SD1's KSampler fed SV3D_Conditioning's output)
    graph = _sv3d_graph("svd.safetensors", 3)
    graph["9"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd1.safetensors"}}
    graph["5"]["inputs"]["model"] = ["9", 0]
    result = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry))
    assert not result.ok and result.error["node_type"] == "KSampler"
    assert "SV3D_Conditioning" in result.error["message"] and "this one is sd1" in result.error["message"]


def test_image_only_checkpoint_save_round_trip_with_the_image_vae(builtin_registry, tmp_folders):
    """An SV3D file with the image VAE saves and loads back as it was (SVD's needs its temporal one)."""
    from graphflow.models.checkpoint import load_image_only_checkpoint
    from graphflow.testing import write_svd_checkpoint
    from tests.test_nodes_image_mask import call

    model, clip_vision, vae = load_image_only_checkpoint(
        write_svd_checkpoint(tmp_folders.models / "sv3d_u.safetensors", adm_in_channels=256, temporal_vae=False),
        device="cpu", dtype=torch.float32)
    call(builtin_registry, "ImageOnlyCheckpointSave", model=model, clip_vision=clip_vision, vae=vae,
         filename_prefix="checkpoints/sv3d_copy")
    [saved] = list((tmp_folders.outputs / "checkpoints").glob("sv3d_copy_*.safetensors"))
    model2, _, vae2 = load_image_only_checkpoint(saved, device="cpu", dtype=torch.float32)
    assert model2.unet.config.variant == "sv3d_u" and type(vae2) is type(vae)
    z = torch.randn(2, 4, 4, 4)
    torch.testing.assert_close(vae2.decode(z), vae.decode(z))
