"""Stable Zero123: detection and loading of its checkpoint (SD1 UNet with 8 input channels,
cc_projection, CLIP vision under cond_stage_model.model.visual.), the conditioning nodes against
closed forms, the projected context and the UNet call against references on identical weights,
and a ComfyUI Stable Zero123 graph end to end."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.models.architecture import detect_architecture
from graphflow.models.checkpoint import load_checkpoint, load_diffusion_model
from graphflow.models.checkpoint_save import save_model
from graphflow.models.checkpoint_report import inspect_report
from graphflow.models.unet import UNet, UNetConfig
from graphflow.models.weight_files import CheckpointError
from graphflow.sampling.pipeline import sample
from graphflow.testing import ZERO123_EMBED, write_clip_vision, write_zero123_checkpoint
from tests.test_nodes_image_mask import call
from tests.test_unet import TINY, to_diffusers_unet
from tests.test_workflows import workflow


def test_full_size_layout_detected_as_comfyui_does():
    """The real file's shapes (SD1 UNet, 8 input channels, context 768, cc_projection 772 -> 768,
    leftovers of CLIP's text part, no text encoder) give SD1 with 8 heads and no CLIP."""
    with torch.device("meta"):
        unet = UNet(UNetConfig(in_channels=8))
    shapes = {"model.diffusion_model." + k: tuple(v.shape) for k, v in unet.state_dict().items()}
    shapes.update({"cc_projection.weight": (768, 772), "cc_projection.bias": (768,),
                   "cond_stage_model.model.token_embedding.weight": (49408, 768),
                   "cond_stage_model.model.ln_final.weight": (768,)})
    info = detect_architecture(shapes)
    assert info.zero123 and info.arch == "sd1" and info.towers == ()
    assert (info.in_channels, info.context_dim, info.unet.num_heads) == (8, 768, 8)
    assert info.name == "SD1.x Stable Zero123" and info.latent_format.scale_factor == 0.18215
    assert not info.inpaint and info.prediction == "eps"
    # without cc_projection the same UNet is no model graphflow knows (8 channels, no text encoder)
    del shapes["cc_projection.weight"], shapes["cc_projection.bias"]
    with pytest.raises(CheckpointError):
        detect_architecture(shapes)


def test_checkpoint_loaded_with_projection_and_image_encoder(tmp_path):
    path = write_zero123_checkpoint(tmp_path / "stable_zero123.safetensors")
    stored = load_file(str(path))
    loaded = load_checkpoint(path, device="cpu", dtype=torch.float32, clip_vision=True)
    assert loaded.info.zero123 and loaded.clip is None and loaded.vae is not None
    model = loaded.model
    assert model.arch == "sd1" and model.in_channels == 8 and model.unet.config.context_dim == ZERO123_EMBED
    projection = model.context_projection
    assert (projection.in_features, projection.out_features) == (ZERO123_EMBED + 4, ZERO123_EMBED)
    torch.testing.assert_close(projection.weight, stored["cc_projection.weight"].float(), atol=0, rtol=0)
    torch.testing.assert_close(projection.bias, stored["cc_projection.bias"].float(), atol=0, rtol=0)
    assert loaded.clip_vision.config.projection_dim == ZERO123_EMBED
    visual = loaded.clip_vision.module.vision_model.embeddings.patch_embedding.weight
    torch.testing.assert_close(visual, stored["cond_stage_model.model.visual.conv1.weight"].float(), atol=0, rtol=0)


def test_inspect_names_it(tmp_path):
    report = inspect_report(write_zero123_checkpoint(tmp_path / "z.safetensors"))
    assert "architecture: SD1.x Stable Zero123 [sd1]" in report
    assert f"cc_projection: Linear {ZERO123_EMBED + 4} -> {ZERO123_EMBED}" in report
    assert "clip vision (cond_stage_model.model.visual.)" in report and "in 8 ch" in report
    assert "text encoder: none" in report


def test_saved_model_keeps_cc_projection(tmp_path):
    """ModelSave's file of a Stable Zero123 model is one again, for UNETLoader and CheckpointLoader."""
    path = write_zero123_checkpoint(tmp_path / "z.safetensors")
    model = load_checkpoint(path, device="cpu", dtype=torch.float32).model
    saved = save_model(tmp_path / "saved.safetensors", model)
    for reloaded in (load_diffusion_model(saved, device="cpu", dtype=torch.float32),
                     load_checkpoint(saved, device="cpu", dtype=torch.float32).model):
        assert reloaded.in_channels == 8
        torch.testing.assert_close(reloaded.context_projection.weight, model.context_projection.weight, atol=0, rtol=0)
        torch.testing.assert_close(reloaded.context_projection.bias, model.context_projection.bias, atol=0, rtol=0)


def test_mismatched_projection_refused(tmp_path):
    path = write_zero123_checkpoint(tmp_path / "z.safetensors")
    state = load_file(str(path))
    state["cc_projection.weight"] = torch.zeros(ZERO123_EMBED + 8, ZERO123_EMBED + 4, dtype=torch.float16)
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match="cc_projection.weight .* context width 32"):
        load_checkpoint(tmp_path / "bad.safetensors", device="cpu")


# -- the conditioning nodes ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny checkpoint loaded in float32, its file's tensors, and a 40x56 test picture."""
    path = write_zero123_checkpoint(tmp_path_factory.mktemp("zero123") / "stable_zero123.safetensors")
    loaded = load_checkpoint(path, device="cpu", dtype=torch.float32, clip_vision=True)
    g = torch.Generator().manual_seed(7)
    image = torch.rand(1, 40, 56, 3, generator=g)
    return loaded, load_file(str(path)), image


def _closed_form(elevation: float, azimuth: float) -> torch.Tensor:
    el, az = math.radians(elevation), math.radians(azimuth)
    return torch.tensor([-el, math.sin(az), math.cos(az), math.pi / 2])


@pytest.mark.parametrize("elevation, azimuth", [(0.0, 0.0), (30.0, 90.0), (-12.5, -135.0), (180.0, 45.3)])
def test_conditioning_is_image_embedding_and_camera(builtin_registry, tiny, elevation, azimuth):
    loaded, _, image = tiny
    positive, negative, latent = call(builtin_registry, "StableZero123Conditioning", clip_vision=loaded.clip_vision,
                                      init_image=image, vae=loaded.vae, width=64, height=48, batch_size=3,
                                      elevation=elevation, azimuth=azimuth)
    (context, options), = positive
    embeds = loaded.clip_vision.encode_image(image).image_embeds
    assert context.shape == (1, 1, ZERO123_EMBED + 4)
    torch.testing.assert_close(context[0, 0, :ZERO123_EMBED], embeds[0], atol=0, rtol=0)
    torch.testing.assert_close(context[0, 0, ZERO123_EMBED:], _closed_form(elevation, azimuth), atol=2e-5, rtol=0)
    # the concat latent: the 56x40 image centre-cropped to 64:48 as ComfyUI's common_upscale does
    # (round(excess / 2) whole columns off each side: 1), resized bilinearly, VAE-encoded (raw)
    left = round((56 - 56 * ((64 / 48) / (56 / 40))) / 2)
    assert left == 1
    crop = image.movedim(-1, 1)[..., left:56 - left]
    expected = loaded.vae.encode(F.interpolate(crop, size=(48, 64), mode="bilinear").movedim(1, -1))
    assert options["concat_latent_image"].shape == (1, 4, 6, 8)
    torch.testing.assert_close(options["concat_latent_image"], expected, atol=1e-6, rtol=0)
    (zeros, negative_options), = negative
    assert zeros.shape == (1, 1, ZERO123_EMBED) and not zeros.any()
    assert negative_options["concat_latent_image"].shape == (1, 4, 6, 8) and not negative_options["concat_latent_image"].any()
    assert latent["samples"].shape == (3, 4, 6, 8) and not latent["samples"].any() and "batch_index" not in latent


def test_batched_conditioning_steps_the_camera(builtin_registry, tiny):
    loaded, _, image = tiny
    args = dict(clip_vision=loaded.clip_vision, init_image=image, vae=loaded.vae, width=32, height=32, batch_size=4,
                elevation=10.0, azimuth=-170.0, elevation_batch_increment=-7.5, azimuth_batch_increment=90.0)
    positive, negative, latent = call(builtin_registry, "StableZero123ConditioningBatched", **args)
    (context, _), = positive
    assert context.shape == (4, 1, ZERO123_EMBED + 4)
    for i in range(4):
        torch.testing.assert_close(context[i, 0, ZERO123_EMBED:], _closed_form(10.0 - 7.5 * i, -170.0 + 90.0 * i),
                                   atol=2e-5, rtol=0)
        torch.testing.assert_close(context[i, 0, :ZERO123_EMBED], context[0, 0, :ZERO123_EMBED], atol=0, rtol=0)
    assert negative[0][0].shape == (1, 1, ZERO123_EMBED)
    assert latent["batch_index"] == [0, 0, 0, 0] and latent["samples"].shape == (4, 4, 4, 4)
    # one view: the single node's conditioning
    single = call(builtin_registry, "StableZero123Conditioning", **{k: v for k, v in args.items() if "increment" not in k})
    first = call(builtin_registry, "StableZero123ConditioningBatched", **{**args, "batch_size": 1})
    torch.testing.assert_close(first[0][0][0], single[0][0][0], atol=0, rtol=0)


def test_context_is_cc_projection_of_the_conditioning(builtin_registry, tiny):
    """The sampler gives the UNet cc_projection(conditioning) for the positive (hand-computed Linear
    on the file's weights) and the zeros of the negative as they are; its 4 extra input channels
    are the raw VAE latent of the image."""
    loaded, stored, image = tiny
    positive, negative, latent = call(builtin_registry, "StableZero123Conditioning", clip_vision=loaded.clip_vision,
                                      init_image=image, vae=loaded.vae, width=32, height=32, batch_size=2,
                                      elevation=20.0, azimuth=60.0)
    model = loaded.model
    seen = []
    forward = model.unet.forward

    def recording(x, t, context, y=None, **extra):
        seen.append((x.clone(), context.clone()))
        return forward(x, t, context, y, **extra)

    model.unet.forward = recording
    try:
        sample(model, 3, 1, 2.5, "euler", "normal", positive, negative, latent)
    finally:
        del model.unet.forward
    (x, context), = seen  # positive and negative in one batch of 4
    weight, bias = stored["cc_projection.weight"].float(), stored["cc_projection.bias"].float()
    projected = positive[0][0] @ weight.T + bias
    rows = context.flatten(1).any(1)
    assert rows.tolist().count(True) == 2
    torch.testing.assert_close(context[rows], projected.expand(2, -1, -1), atol=1e-6, rtol=0)
    assert not context[~rows].any()
    torch.testing.assert_close(x[rows, 4:], positive[0][1]["concat_latent_image"].expand(2, -1, -1, -1), atol=0, rtol=0)
    assert not x[~rows, 4:].any()
    with pytest.raises(ValueError, match=r"conditioning 36 wide .* or 32 wide; got 40"):
        model.encode_context(torch.zeros(1, 1, 40))


def test_unet_call_matches_diffusers(tmp_path):
    """A Stable Zero123 file with an SD1 UNet at the real context width (768, 8 heads): the loaded
    model's prediction for [latent, image latent] and the projected context is diffusers'
    UNet2DConditionModel(in_channels=8) on the same weights with a hand-projected context."""
    cfg = replace(TINY["sd1"], in_channels=8)
    path = write_zero123_checkpoint(tmp_path / "z.safetensors", dtype=torch.float32, unet=cfg)
    stored = load_file(str(path))
    model = load_checkpoint(path, device="cpu", dtype=torch.float32).model
    assert model.unet.config == cfg
    theirs, _ = to_diffusers_unet(model.unet)
    assert theirs.config.in_channels == 8
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 16, 16, generator=g)
    t = torch.tensor([999.0, 400.0])
    conditioning = torch.randn(2, 1, ZERO123_EMBED + 4, generator=g)
    with torch.no_grad():
        out = model(x, t, model.encode_context(conditioning))
        context = conditioning @ stored["cc_projection.weight"].T + stored["cc_projection.bias"]
        ref = theirs(x, t, encoder_hidden_states=context).sample
        without_image = model(torch.cat([x[:, :4], torch.zeros_like(x[:, 4:])], 1), t, context)
    assert ref.abs().mean() > 0.05
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    assert (out - without_image).abs().max() > 1e-3  # the image channels matter


def test_nodes_refuse_wrong_inputs(builtin_registry, tiny):
    loaded, _, image = tiny
    args = dict(clip_vision=loaded.clip_vision, init_image=image, vae=loaded.vae)
    with pytest.raises(NodeInputError, match="one image; got a batch of 2") as info:
        call(builtin_registry, "StableZero123Conditioning", **{**args, "init_image": image.expand(2, -1, -1, -1)})
    assert info.value.input == "init_image"
    with pytest.raises(NodeInputError, match="no VAE") as info:
        call(builtin_registry, "StableZero123ConditioningBatched", **{**args, "vae": None})
    assert info.value.input == "vae"


def test_comfyui_example_graph_end_to_end(builtin_registry, tmp_folders):
    """workflows/stable_zero123_comfyui_example.json (ComfyUI's API format: CheckpointLoaderSimple
    on stable_zero123.ckpt, a pickle with a state_dict as Stability ships it, CLIPVisionLoader,
    LoadImage -> StableZero123_Conditioning -> KSampler -> VAEDecode -> SaveImage) runs on tiny files
    under the real names; the camera angle changes the picture, and a run repeats exactly."""
    (tmp_folders.models / "checkpoints").mkdir(parents=True)
    (tmp_folders.models / "clip_vision").mkdir(parents=True)
    tiny = write_zero123_checkpoint(tmp_folders.home / "z.safetensors")
    torch.save({"state_dict": load_file(str(tiny)), "global_step": 0},
               tmp_folders.models / "checkpoints" / "stable_zero123.ckpt")
    write_clip_vision(tmp_folders.models / "clip_vision" / "clip-vit-large-patch14.safetensors", seed=9)

    def run(**sets):
        sets = {"4__width": 64, "4__height": 64, "5__steps": 2, **sets}
        result = Executor(builtin_registry).run(workflow("stable_zero123_comfyui_example", **sets))
        assert result.ok, result.error or result.problems
        return result

    result = run()
    view = result.values["6"][0]
    assert view.shape == (1, 64, 64, 3)
    assert result.outputs["7"]["images"][0]["filename"].startswith("stable_zero123")
    assert (run(**{"4__azimuth": -90.0}).values["6"][0] - view).abs().max() > 1e-3
    assert (run(**{"3__image": "hint-circle-bottom-right.png"}).values["6"][0] - view).abs().max() > 1e-3
    assert torch.equal(run().values["6"][0], view)
    # unCLIPCheckpointLoader also gives the checkpoint's own image encoder, as in ComfyUI
    model, clip, vae, clip_vision = call(builtin_registry, "LoadUnCLIPCheckpoint", checkpoint="stable_zero123.ckpt")
    assert clip is None and model.context_projection is not None
    assert clip_vision.config.projection_dim == ZERO123_EMBED
