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
