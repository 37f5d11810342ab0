"""Chroma: the model against diffusers' ChromaTransformer2DModel on the same file (read by
diffusers' own single-file loader and key conversion), detection, the "chroma" text encoder,
and a ComfyUI-format workflow end to end with one sampler step checked against diffusers.

diffusers' `convert_chroma_transformer_checkpoint_to_diffusers` hard-codes the full model's width
(inner_dim 3072, mlp_ratio 4) as its FLUX one does; the test compiles it with both read from the
checkpoint (test_flow_models.flux_conversion_any_width), so tiny files go through the rest of
diffusers' code unchanged.
"""

import json

import pytest
import torch
from diffusers import ChromaTransformer2DModel

from graphflow.models.checkpoint import load_diffusion_model
from graphflow.models.flux import image_ids, pack, unpack
from graphflow.testing import chroma_config, write_chroma
from tests.test_flow_models import diffusers_config_dir, flux_conversion_any_width

TOL = 1e-4


@pytest.fixture
def chroma_any_width(monkeypatch):
    import diffusers.loaders.single_file_model as sfm

    entry = dict(sfm.SINGLE_FILE_LOADABLE_CLASSES["ChromaTransformer2DModel"])
    entry["checkpoint_mapping_fn"] = flux_conversion_any_width("convert_chroma_transformer_checkpoint_to_diffusers")
    monkeypatch.setitem(sfm.SINGLE_FILE_LOADABLE_CLASSES, "ChromaTransformer2DModel", entry)


def chroma_diffusers(tmp_path, path, cfg) -> ChromaTransformer2DModel:
    config = dict(patch_size=1, in_channels=cfg.in_channels, num_layers=cfg.depth,
                  num_single_layers=cfg.depth_single_blocks, attention_head_dim=cfg.hidden_size // cfg.num_heads,
                  num_attention_heads=cfg.num_heads, joint_attention_dim=cfg.context_in_dim,
                  axes_dims_rope=list(cfg.axes_dim), approximator_num_channels=cfg.approximator_in_dim,
                  approximator_hidden_dim=cfg.approximator_hidden, approximator_layers=cfg.approximator_layers)
    return ChromaTransformer2DModel.from_single_file(
        str(path), config=diffusers_config_dir(tmp_path, ChromaTransformer2DModel, **config),
        local_files_only=True, torch_dtype=torch.float32).eval()


def diffusers_velocity(theirs, x, sigma, context, text_mask=None):
    """diffusers' transformer on image-shaped latents, as ChromaPipeline calls it (timestep = sigma)."""
    b, _, h, w = x.shape
    img_ids = image_ids(h // 2, w // 2, 1, "cpu")[0]
    mask = None
    if text_mask is not None:  # the pipeline's _prepare_attention_mask: text keep-mask, then the image tokens
        mask = torch.cat([text_mask.bool(), torch.ones(b, img_ids.shape[0], dtype=torch.bool)], dim=1)
    with torch.no_grad():
        out = theirs(hidden_states=pack(x), encoder_hidden_states=context, timestep=sigma, img_ids=img_ids,
                     txt_ids=torch.zeros(context.shape[1], 3), attention_mask=mask, return_dict=False)[0]
    return unpack(out, h, w)


@pytest.mark.parametrize("prefixed", [False, True])
def test_chroma_matches_diffusers(tmp_path, chroma_any_width, prefixed):
    path = write_chroma(tmp_path / "chroma.safetensors", dtype=torch.float32, prefixed=prefixed, seed=3)
    cfg = chroma_config()
    ours = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    assert ours.arch == "chroma" and ours.unet.config == cfg and not ours.guidance_embed
    theirs = chroma_diffusers(tmp_path, path, cfg)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, 8, 12, generator=g)
    sigma = torch.tensor([0.3, 1.0])
    context = torch.randn(2, 7, cfg.context_in_dim, generator=g)
    # Chroma's padding rule: the prompt's tokens and one pad stay, the other pads are masked
    text_mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0]])
    with torch.no_grad():
        plain = ours(x, sigma, context)
        masked = ours(x, sigma, context, text_mask=text_mask)
    expected_plain = diffusers_velocity(theirs, x, sigma, context)
    expected_masked = diffusers_velocity(theirs, x, sigma, context, text_mask)
    assert (plain - expected_plain).abs().max() < TOL * expected_plain.abs().max()
    assert (masked - expected_masked).abs().max() < TOL * expected_masked.abs().max()
    assert (masked - plain).abs().max() > 1e-3  # the mask does change the output
    # a masked-out token's content is irrelevant
    scrambled = context.clone()
    scrambled[0, 5:] = torch.randn(2, cfg.context_in_dim, generator=g)
    with torch.no_grad():
        assert torch.allclose(ours(x, sigma, scrambled, text_mask=text_mask)[0], masked[0], atol=1e-5)
