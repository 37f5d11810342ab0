"""graphflow.models.depth_anything against transformers' DepthAnythingForDepthEstimation on the same
random weights (the original key layout renamed as huggingface/transformers'
convert_depth_anything_to_hf.py at 13d23e06 renames it, in transformers 5's names), DINOv2's position
embedding interpolation against its formula written out, and the size detection from shapes."""

import math

import numpy as np
import pytest
import torch
from transformers import DepthAnythingConfig as HFConfig
from transformers import DepthAnythingForDepthEstimation, Dinov2Config

from graphflow.models.depth_anything import (SIZES, DepthAnything, DepthAnythingConfig, config_from_shapes,
                                             load_depth_anything, size_name)
from graphflow.models.weight_files import CheckpointError
from graphflow.testing import random_state, write_depth_anything


def to_transformers(state: dict, config: DepthAnythingConfig) -> dict:
    """The original names as transformers' DepthAnything names them (its conversion script's table;
    qkv split in three; ViT-g's SwiGLU w12 split into its gate (first half) and up (second half))."""
    out = {"backbone.embeddings.cls_token": state["pretrained.cls_token"],
           "backbone.embeddings.mask_token": state["pretrained.mask_token"],
           "backbone.embeddings.position_embeddings": state["pretrained.pos_embed"],
           "backbone.layernorm.weight": state["pretrained.norm.weight"],
           "backbone.layernorm.bias": state["pretrained.norm.bias"]}
    for p in ("weight", "bias"):
        out[f"backbone.embeddings.patch_embeddings.projection.{p}"] = state[f"pretrained.patch_embed.proj.{p}"]
    for i in range(config.depth):
        old, new = f"pretrained.blocks.{i}.", f"backbone.encoder.layer.{i}."
        out[new + "layer_scale1.lambda1"] = state[old + "ls1.gamma"]
        out[new + "layer_scale2.lambda1"] = state[old + "ls2.gamma"]
        for p in ("weight", "bias"):
            for norm in ("norm1", "norm2"):
                out[f"{new}{norm}.{p}"] = state[f"{old}{norm}.{p}"]
            q, k, v = state[f"{old}attn.qkv.{p}"].chunk(3, dim=0)
            out[f"{new}attention.q_proj.{p}"], out[f"{new}attention.k_proj.{p}"] = q, k
            out[f"{new}attention.v_proj.{p}"] = v
            out[f"{new}attention.o_proj.{p}"] = state[f"{old}attn.proj.{p}"]
            if config.swiglu:
                gate, up = state[f"{old}mlp.w12.{p}"].chunk(2, dim=0)
                out[f"{new}mlp.gate_proj.{p}"], out[f"{new}mlp.up_proj.{p}"] = gate, up
                out[f"{new}mlp.down_proj.{p}"] = state[f"{old}mlp.w3.{p}"]
            else:
                out[f"{new}mlp.fc1.{p}"] = state[f"{old}mlp.fc1.{p}"]
                out[f"{new}mlp.fc2.{p}"] = state[f"{old}mlp.fc2.{p}"]
    for p in ("weight", "bias"):
        for i in range(4):
            out[f"neck.reassemble_stage.layers.{i}.projection.{p}"] = state[f"depth_head.projects.{i}.{p}"]
            if i != 2:
                out[f"neck.reassemble_stage.layers.{i}.resize.{p}"] = state[f"depth_head.resize_layers.{i}.{p}"]
        for i in range(1, 5):  # refinenet1 is the last fusion layer
            old, new = f"depth_head.scratch.refinenet{i}.", f"neck.fusion_stage.layers.{4 - i}."
            out[f"{new}projection.{p}"] = state[f"{old}out_conv.{p}"]
            for unit in (1, 2):
                for conv in (1, 2):
                    out[f"{new}residual_layer{unit}.convolution{conv}.{p}"] = \
                        state[f"{old}resConfUnit{unit}.conv{conv}.{p}"]
        out[f"head.conv1.{p}"] = state[f"depth_head.scratch.output_conv1.{p}"]
        out[f"head.conv2.{p}"] = state[f"depth_head.scratch.output_conv2.0.{p}"]
        out[f"head.conv3.{p}"] = state[f"depth_head.scratch.output_conv2.2.{p}"]
    for i in range(4):
        out[f"neck.convs.{i}.weight"] = state[f"depth_head.scratch.layer{i + 1}_rn.weight"]
    return out


def transformers_model(config: DepthAnythingConfig, state: dict):
    backbone = Dinov2Config(hidden_size=config.dim, num_hidden_layers=config.depth, num_attention_heads=config.heads,
                            image_size=config.grid * 14, patch_size=14, use_swiglu_ffn=config.swiglu,
                            out_indices=[i + 1 for i in config.layers], apply_layernorm=True,
                            reshape_hidden_states=False)
    metric = {} if config.max_depth is None else {"depth_estimation_type": "metric", "max_depth": int(config.max_depth)}
    hf_config = HFConfig(backbone_config=backbone, reassemble_hidden_size=config.dim, patch_size=14,
                         fusion_hidden_size=config.features, neck_hidden_sizes=list(config.out_channels), **metric)
    model = DepthAnythingForDepthEstimation(hf_config).eval()
    model.load_state_dict(to_transformers(state, config), strict=True)
    return model


def ours(config: DepthAnythingConfig, seed: int = 0):
    model = DepthAnything(config).eval()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = random_state(shapes, seed, torch.float32)
    model.load_state_dict(state, strict=True)
    return model, state


TINY = DepthAnythingConfig(64, 6, 2, 16, (8, 16, 32, 64), (1, 2, 4, 5), grid=4)


@pytest.mark.parametrize("config", [TINY, DepthAnythingConfig(64, 4, 1, 16, (16, 16, 16, 16), (0, 1, 2, 3),
                                                              swiglu=True, grid=4)], ids=["mlp", "swiglu"])
def test_equals_transformers_on_the_stored_grid(config):
    model, state = ours(config)
    reference = transformers_model(config, state)
    pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(pixel_values=pixels).predicted_depth
        got = model(pixels)
    assert got.shape == expected.shape == (2, 56, 56)
    assert expected.abs().max() > 0.01  # not a ReLU'd zero everywhere
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def dinov2_interpolation(grid: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """DINOv2's pos-embed resampling written out: PyTorch's bicubic (A = -0.75, edge indices clamped)
    with source position (i + 0.5) / factor - 0.5 for factor (patches + 0.1) / side on each axis."""
    def weights(t):
        a = -0.75
        near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1
        far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        return [far(t + 1), near(t), near(1 - t), far(2 - t)]

    def resample(x, n, axis):
        side = x.shape[axis]
        factor = (n + 0.1) / math.sqrt(side * side)
        out = []
        for i in range(n):
            src = (i + 0.5) / factor - 0.5
            base = math.floor(src)
            taps = [np.take(x, min(max(base + k, 0), side - 1), axis=axis) for k in (-1, 0, 1, 2)]
            out.append(sum(w * tap for w, tap in zip(weights(src - base), taps)))
        return np.stack(out, axis=axis)

    return resample(resample(grid, rows, 0), cols, 1)


def test_position_embeddings_follow_dinov2s_offset_rule():
    model, _ = ours(TINY, seed=3)
    embed = model.pretrained.position_embeddings(5 * 14 + 3, 7 * 14)  # a height past a multiple of 14
    stored = model.pretrained.pos_embed.detach()
    grid = stored[0, 1:].reshape(4, 4, -1).numpy().astype(np.float64)
    expected = dinov2_interpolation(grid, 5, 7).reshape(35, -1)
    assert embed.shape == (1, 36, 64)
    assert torch.equal(embed[0, 0], stored[0, 0])
    np.testing.assert_allclose(embed[0, 1:].detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    # transformers resamples to the target size instead: other positions, other values
    by_size = torch.nn.functional.interpolate(stored[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2), size=(5, 7),
                                              mode="bicubic").permute(0, 2, 3, 1).reshape(35, -1)
    assert not torch.allclose(by_size, embed[0, 1:], atol=1e-3)
    assert model.pretrained.position_embeddings(56, 56) is model.pretrained.pos_embed


def test_equals_transformers_off_the_grid_given_dinov2s_embeddings():
    """A 70x98 input (5x7 patches): everything but the embedding resampling checked against
    transformers, whose resampling is replaced by DINOv2's (checked above against its formula)."""
    model, state = ours(TINY, seed=4)
    reference = transformers_model(TINY, state)
    reference.backbone.embeddings.interpolate_pos_encoding = \
        lambda embeddings, height, width: model.pretrained.position_embeddings(height, width)
    pixels = torch.randn(1, 3, 70, 98, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = reference(pixel_values=pixels).predicted_depth
        got = model(pixels)
    assert got.shape == (1, 70, 98)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def meta_shapes(config):
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in DepthAnything(config).state_dict().items()}


@pytest.mark.parametrize("name", list(SIZES))
def test_the_released_sizes_are_told_from_their_shapes(name):
    shapes = meta_shapes(SIZES[name])
    assert config_from_shapes(shapes) == SIZES[name]
    assert size_name(config_from_shapes(shapes)) == name
    v1 = config_from_shapes(shapes, version=1)
    assert v1.layers == tuple(range(SIZES[name].depth - 4, SIZES[name].depth)) and size_name(v1) == name


def test_files_load_alike_from_pth_and_safetensors(tmp_path):
    pth = write_depth_anything(tmp_path / "depth_anything_v2_vits.pth", seed=6)
    converted = write_depth_anything(tmp_path / "converted.safetensors", seed=6)
    a, b = load_depth_anything(pth), load_depth_anything(converted)
    assert a.config == b.config and a.config.layers == (2, 5, 8, 11) and a.config.heads == 1
    pixels = torch.randn(1, 3, 28, 42)
    with torch.no_grad():
        assert torch.equal(a(pixels), b(pixels))
    assert load_depth_anything(pth, version=1).config.layers == (8, 9, 10, 11)


def test_other_files_are_refused_saying_what_they_are(tmp_path):
    from safetensors.torch import save_file
    save_file({"model.0.weight": torch.zeros(4, 3, 3, 3)}, str(tmp_path / "esrgan.safetensors"))
    with pytest.raises(CheckpointError, match="esrgan.safetensors: not a Depth Anything model"):
        load_depth_anything(tmp_path / "esrgan.safetensors")
    seven = {k: v for k, v in torch.load(write_depth_anything(tmp_path / "d.pth"), weights_only=True).items()
             if not k.startswith(tuple(f"pretrained.blocks.{i}." for i in range(7, 12)))}
    torch.save(seven, tmp_path / "seven.pth")
    with pytest.raises(CheckpointError, match="7 blocks"):
        load_depth_anything(tmp_path / "seven.pth")
    state = torch.load(tmp_path / "d.pth", weights_only=True)
    state["depth_head.projects.0.weight"] = torch.zeros(9, 64, 1, 1)  # the head's shapes disagree
    torch.save(state, tmp_path / "bad_head.pth")
    with pytest.raises(CheckpointError, match="bad_head.pth"):
        load_depth_anything(tmp_path / "bad_head.pth")


@pytest.mark.parametrize("swiglu", [False, True], ids=["mlp", "swiglu"])
def test_files_in_transformers_layout_load_and_match_it(tmp_path, swiglu):
    """A -hf repository's model.safetensors (save_pretrained writes transformers 4's names, as the
    hub's files hold them) and a bare state dict in transformers 5's names both load, giving
    transformers' output; the blocks are the file's, the version the caller's."""
    from safetensors.torch import save_file
    config = DepthAnythingConfig(64, 12, 1, 16, (8, 16, 32, 64), (2, 5, 8, 11), swiglu=swiglu, grid=4)
    _, state = ours(config, seed=7)
    reference = transformers_model(config, state)
    reference.save_pretrained(tmp_path / "hf")
    from safetensors import safe_open
    with safe_open(str(tmp_path / "hf" / "model.safetensors"), "pt") as f:
        legacy = "mlp.weights_in.weight" if swiglu else "attention.attention.query.weight"
        assert f"backbone.encoder.layer.0.{legacy}" in set(f.keys())  # the hub files' names
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "bare.safetensors"))
    pixels = torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        expected = reference(pixel_values=pixels).predicted_depth
    assert expected.abs().max() > 0.01
    for path in (tmp_path / "hf" / "model.safetensors", tmp_path / "bare.safetensors"):
        model = load_depth_anything(path)
        assert model.config == config, path.name
        with torch.no_grad():
            torch.testing.assert_close(model(pixels), expected, rtol=1e-4, atol=1e-5)
    assert load_depth_anything(tmp_path / "bare.safetensors", version=1).config.layers == (8, 9, 10, 11)


def test_a_transformers_layout_file_missing_tensors_says_which(tmp_path):
    from safetensors.torch import save_file
    _, state = ours(DepthAnythingConfig(64, 12, 1, 16, (8, 16, 32, 64), (2, 5, 8, 11), grid=4), seed=9)
    hf = to_transformers(state, DepthAnythingConfig(64, 12, 1, 16, (8, 16, 32, 64), (2, 5, 8, 11), grid=4))
    del hf["head.conv3.weight"]
    save_file({k: v.contiguous() for k, v in hf.items()}, str(tmp_path / "cut.safetensors"))
    with pytest.raises(CheckpointError, match="cut.safetensors: in transformers' Depth Anything layout.*head.conv3"):
        load_depth_anything(tmp_path / "cut.safetensors")


def test_size_resampling_equals_transformers_off_the_grid():
    """resampling "size" (the pack's current V1 runs transformers' model): transformers' own
    position embeddings, unreplaced, on a 70x98 input."""
    from dataclasses import replace
    model, state = ours(replace(TINY, resampling="size"), seed=4)
    reference = transformers_model(TINY, state)
    pixels = torch.randn(1, 3, 70, 98, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model(pixels), reference(pixel_values=pixels).predicted_depth, rtol=1e-4, atol=1e-5)


def test_a_metric_model_equals_transformers_metric_head():
    """max_depth: Depth-Anything-V2's metric models (a sigmoid times max_depth, not a ReLU)."""
    from dataclasses import replace
    config = replace(TINY, max_depth=20.0)
    model, state = ours(config, seed=10)
    reference = transformers_model(config, state)
    pixels = torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        expected = reference(pixel_values=pixels).predicted_depth
        torch.testing.assert_close(model(pixels), expected, rtol=1e-4, atol=1e-5)
    assert 0 < expected.min() and expected.max() < 20.0
