"""GGUF files (graphflow.models.gguf, nodes/gguf.py): dequantization against gguf's own numpy
reference, quantized models against the same model with the dequantized weights, the loaders."""

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from graphflow.models.gguf import GGML_TYPES, QUANTIZED, dequantize  # noqa: E402

# byte offsets of the fp16 scales (d, dmin) in each K-quant block: gguf-py cannot quantize these,
# so the blocks are random bytes with finite scales written over them
K_SCALES = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def random_blocks(qtype: str, rows: int, blocks_per_row: int, seed: int = 0) -> np.ndarray:
    """Random raw blocks of `qtype` [rows, bytes]: quantized random values where gguf can quantize
    the type, else random bytes with finite scales."""
    rng = np.random.default_rng(seed)
    kind = gguf.GGMLQuantizationType[qtype]
    block, nbytes = gguf.GGML_QUANT_SIZES[kind]
    if qtype not in K_SCALES:
        return gguf.quants.quantize(rng.standard_normal((rows, block * blocks_per_row)).astype(np.float32), kind)
    raw = rng.integers(0, 256, size=(rows * blocks_per_row, nbytes), dtype=np.uint8)
    for offset in K_SCALES[qtype]:
        raw[:, offset:offset + 2] = (rng.standard_normal((len(raw), 1)) * 0.1).astype(np.float16).view(np.uint8)
    return raw.reshape(rows, -1)


def test_quantized_types_are_the_packs():
    assert set(QUANTIZED) == {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}
    for tid, (name, block, nbytes) in GGML_TYPES.items():
        kind = gguf.GGMLQuantizationType(tid)
        assert kind.name == name and gguf.GGML_QUANT_SIZES[kind] == (block, nbytes)


@pytest.mark.parametrize("qtype", sorted(set(QUANTIZED)))
def test_dequantize_matches_gguf(qtype):
    raw = random_blocks(qtype, rows=6, blocks_per_row=3, seed=len(qtype))
    expected = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype])
    ours = dequantize(torch.from_numpy(raw), qtype, expected.shape)
    assert ours.dtype == torch.float32 and ours.shape == expected.shape
    assert np.isfinite(expected).all()
    np.testing.assert_array_equal(ours.numpy(), expected)
    half = dequantize(torch.from_numpy(raw), qtype, expected.shape, torch.float16)
    assert half.dtype == torch.float16
    np.testing.assert_array_equal(half.numpy(), expected.astype(np.float16))


# -- a quantized model predicts what its dequantized weights predict ------------------------------

def _tiny_flux_state(seed: int = 0):
    from graphflow.testing import flow_file_shapes, random_state

    return random_state(flow_file_shapes("flux_dev", components=("model",), prefixed=False), seed, torch.float32)


def _flux_inputs():
    from graphflow.testing import flow_model_config

    config = flow_model_config("flux_dev")
    g = torch.Generator().manual_seed(5)
    return (torch.randn(1, 16, 8, 8, generator=g), torch.tensor([0.6]),
            torch.randn(1, 5, config.context_in_dim, generator=g), torch.randn(1, config.vec_in_dim, generator=g))


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q5_1"])
def test_quantized_flux_predicts_as_its_dequantized_weights(tmp_path, qtype):
    from safetensors.torch import save_file

    from graphflow.memory import module_bytes
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.gguf import QuantizedLinear
    from graphflow.testing import gguf_values, write_gguf

    path = write_gguf(tmp_path / "flux-tiny.gguf", _tiny_flux_state(), "flux", qtype)
    reference = tmp_path / "dequantized.safetensors"  # gguf-py's dequantized values, as a plain file
    save_file({k: v.contiguous() for k, v in gguf_values(path).items()}, str(reference))

    model = load_diffusion_model(path, "cpu", torch.float32)
    plain = load_diffusion_model(reference, "cpu", torch.float32)
    assert model.arch == plain.arch == "flux"
    layers = [m for m in model.unet.modules() if isinstance(m, QuantizedLinear)]
    assert layers and all(m.weight.dtype == torch.uint8 and m.qtype == qtype for m in layers)
    # the quantized model holds its Linear weights as blocks (bytes per value: the type's block
    # bytes / block values, 34/32 for Q8_0 against fp16's 2): less than the fp16 model holds
    block, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
    assert sum(m.weight.numel() for m in layers) == sum(m.in_features * m.out_features for m in layers) * nbytes // block
    half = load_diffusion_model(path, "cpu", torch.float16)
    assert module_bytes(half.unet) < 0.75 * module_bytes(load_diffusion_model(reference, "cpu", torch.float16).unet)
    x, sigma, context, y = _flux_inputs()
    with torch.no_grad():
        ours = model(x, sigma, context, y, guidance=torch.tensor([3.5]))
        expected = plain(x, sigma, context, y, guidance=torch.tensor([3.5]))
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_lora_on_a_quantized_flux_patches_its_dequantized_weights(tmp_path):
    """As ComfyUI-GGUF: the LoRA changes the dequantized weight; unpatched, the blocks are back."""
    from safetensors.torch import save_file

    from graphflow import memory
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import gguf_values, write_gguf

    path = write_gguf(tmp_path / "flux-tiny.gguf", _tiny_flux_state(), "flux", "Q4_0")
    reference = tmp_path / "dequantized.safetensors"
    save_file({k: v.contiguous() for k, v in gguf_values(path).items()}, str(reference))
    model, plain = load_diffusion_model(path, "cpu", torch.float32), load_diffusion_model(reference, "cpu", torch.float32)
    g = torch.Generator().manual_seed(3)
    lora = {}
    for name in ("double_blocks.0.img_attn.qkv", "single_blocks.0.linear1"):
        layer = plain.unet.get_submodule(name)
        lora[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(2, layer.in_features, generator=g) * 0.1
        lora[f"diffusion_model.{name}.lora_B.weight"] = torch.randn(layer.out_features, 2, generator=g) * 0.1
    save_file(lora, str(tmp_path / "lora.safetensors"))
    patched, _ = apply_lora(model, None, tmp_path / "lora.safetensors", 0.8, 0.0)
    expected_model, _ = apply_lora(plain, None, tmp_path / "lora.safetensors", 0.8, 0.0)
    x, sigma, context, y = _flux_inputs()
    with torch.no_grad():
        unpatched = model(x, sigma, context, y, guidance=torch.tensor([3.5]))
        ours = patched(x, sigma, context, y, guidance=torch.tensor([3.5]))
        expected = expected_model(x, sigma, context, y, guidance=torch.tensor([3.5]))
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours, unpatched, atol=1e-4)
    memory.manager().unpatch(model.unet)
    qkv = model.unet.get_submodule("double_blocks.0.img_attn.qkv")
    assert qkv.weight.dtype == torch.uint8 and qkv.weight.shape[1] == qkv.in_features // 32 * 18
    with torch.no_grad():
        torch.testing.assert_close(model(x, sigma, context, y, guidance=torch.tensor([3.5])), unpatched)
