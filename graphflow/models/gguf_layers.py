"""Running on a GGUF file's quantized weights (graphflow.models.gguf reads the file): ggml's block
types dequantized in torch, and the Linear layer that keeps its weight as the file's blocks.

Dequantization follows each ggml block type's layout (ggml-common.h), our own code, checked against
gguf-py's numpy reference (gguf.quants.dequantize). Apart from graphflow.models.gguf so that reading
a GGUF file's header (validation, `graphflow inspect`) does not import torch.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .gguf import GGML_TYPES, QUANTIZED, GGUFContents, GGUFError


# -- dequantization -----------------------------------------------------------------------------
# Each ggml block type's layout (ggml-common.h): scales are little-endian fp16; the block's values
# come out in the order given. Worked out from the format, checked against gguf.quants.dequantize.

def _f16(blocks: torch.Tensor, start: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The fp16 at byte `start` of each block, as `dtype` [N, 1]."""
    return blocks[:, start:start + 2].contiguous().view(torch.float16).to(dtype)


def _nibbles(qs: torch.Tensor) -> torch.Tensor:
    """[N, n] bytes -> [N, 2n]: the low nibbles of all bytes, then the high ones (ggml's order)."""
    return torch.cat([qs & 0x0F, qs >> 4], dim=1)


def _bits(packed: torch.Tensor, count: int) -> torch.Tensor:
    """[N, n] bytes -> [N, count, n]: bit b of every byte, for b < count."""
    shifts = torch.arange(count, device=packed.device, dtype=torch.uint8).reshape(1, count, 1)
    return (packed.unsqueeze(1) >> shifts) & 1


def _q8_0(b, dtype=torch.float32):  # d, 32 int8
    return _f16(b, 0, dtype) * b[:, 2:].contiguous().view(torch.int8).to(dtype)


def _q4_0(b, dtype=torch.float32):  # d, 16 bytes of 4-bit values, offset 8
    return _f16(b, 0, dtype) * (_nibbles(b[:, 2:]).to(dtype) - 8)


def _q4_1(b):  # d, m, 16 bytes of 4-bit values
    return _f16(b, 0) * _nibbles(b[:, 4:]).float() + _f16(b, 2)


def _five_bit(qh: torch.Tensor, qs: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """32 five-bit values: four bits from `qs`' nibbles, the fifth from bit i of the 32-bit `qh`."""
    high = _bits(qh, 8).transpose(1, 2).reshape(qh.shape[0], 32)  # bit i of the little-endian uint32
    return (_nibbles(qs) | (high << 4)).to(dtype)


def _q5_0(b, dtype=torch.float32):  # d, qh (4 bytes), 16 bytes; offset 16
    return _f16(b, 0, dtype) * (_five_bit(b[:, 2:6], b[:, 6:], dtype) - 16)


def _q5_1(b):  # d, m, qh, 16 bytes
    return _f16(b, 0) * _five_bit(b[:, 4:8], b[:, 8:]) + _f16(b, 2)


def _two_bit_planes(qs: torch.Tensor) -> torch.Tensor:
    """Q2_K / Q3_K's 2-bit values: 64 bytes = two halves of 32; within a half, shift 0, 2, 4, 6
    give four runs of 32 values -> [N, 256] in output order."""
    n = qs.shape[0]
    shifts = torch.tensor([0, 2, 4, 6], device=qs.device, dtype=torch.uint8).reshape(1, 1, 4, 1)
    return ((qs.reshape(n, 2, 1, 32) >> shifts) & 3).reshape(n, 256)


def _q2_k(b):  # 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit values, d, dmin
    n = b.shape[0]
    scales = b[:, :16]
    q = _two_bit_planes(b[:, 16:80]).float().reshape(n, 16, 16)
    d, dmin = _f16(b, 80).unsqueeze(2), _f16(b, 82).unsqueeze(2)
    return (d * (scales & 0x0F).float().unsqueeze(2) * q - dmin * (scales >> 4).float().unsqueeze(2)).reshape(n, 256)


def _q3_k(b):  # 32 bytes high-bit mask, 64 bytes of 2-bit values, 12 bytes of 16 six-bit scales, d
    n = b.shape[0]
    hmask, qs, packed = b[:, :32], b[:, 32:96], b[:, 96:108]
    i = torch.arange(16, device=b.device)
    low = (packed[:, i % 8] >> (4 * (i // 8)).to(torch.uint8)) & 0x0F
    high = (packed[:, 8 + i % 4] >> (2 * (i // 4)).to(torch.uint8)) & 3
    scales = (low | (high << 4)).float() - 32
    # value (half h, shift j, l) takes bit 4h + j of hmask[l]; a clear bit subtracts 4
    high_bit = _bits(hmask, 8).reshape(n, 8, 32)
    q = _two_bit_planes(qs).float() - 4 * (1 - high_bit.reshape(n, 256).float())
    return (_f16(b, 108).unsqueeze(2) * scales.unsqueeze(2) * q.reshape(n, 16, 16)).reshape(n, 256)


def _k_scales(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_K / Q5_K's eight 6-bit scales and mins from 12 bytes: the first four in the low 6 bits of
    bytes 0-3 (scales) and 4-7 (mins); the last four from bytes 8-11's nibbles with their top two
    bits in the high bits of bytes 0-3 (scales) and 4-7 (mins)."""
    first_scales, first_mins = packed[:, 0:4] & 63, packed[:, 4:8] & 63
    last_scales = (packed[:, 8:12] & 0x0F) | ((packed[:, 0:4] >> 6) << 4)
    last_mins = (packed[:, 8:12] >> 4) | ((packed[:, 4:8] >> 6) << 4)
    return (torch.cat([first_scales, last_scales], 1).float(), torch.cat([first_mins, last_mins], 1).float())


def _k_nibbles(qs: torch.Tensor) -> torch.Tensor:
    """128 bytes = four runs of 32; each gives 32 low nibbles then 32 high -> [N, 8, 32]."""
    n = qs.shape[0]
    q = qs.reshape(n, 4, 1, 32) >> torch.tensor([0, 4], device=qs.device, dtype=torch.uint8).reshape(1, 1, 2, 1)
    return (q & 0x0F).reshape(n, 8, 32)


def _with_mins(b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Q4_K / Q5_K's values: d * scale * q - dmin * min for each of the 8 sub-blocks of 32 ([N, 8, 32] q)."""
    scales, mins = _k_scales(b[:, 4:16])
    d, dmin = _f16(b, 0).unsqueeze(2), _f16(b, 2).unsqueeze(2)
    return (d * scales.unsqueeze(2) * q.float() - dmin * mins.unsqueeze(2)).reshape(b.shape[0], 256)


def _q4_k(b):  # d, dmin, 12 scale bytes, 128 bytes of 4-bit values
    return _with_mins(b, _k_nibbles(b[:, 16:]))


def _q5_k(b):  # d, dmin, 12 scale bytes, 32 bytes high bits, 128 bytes of low 4 bits
    high = _bits(b[:, 16:48], 8)  # sub-block s takes bit s of qh[l]
    return _with_mins(b, _k_nibbles(b[:, 48:]) | (high << 4))


def _q6_k(b):  # 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 scales, d
    n = b.shape[0]
    ql, qh = b[:, :128].reshape(n, 2, 64), b[:, 128:192].reshape(n, 2, 1, 32)
    # per half of 128 values: runs k = 0..3 of 32; low bits from ql[32 (k % 2) + l] >> 4 (k // 2),
    # high bits from qh[l] >> 2k
    low = torch.stack([ql[:, :, :32] & 0x0F, ql[:, :, 32:] & 0x0F, ql[:, :, :32] >> 4, ql[:, :, 32:] >> 4], dim=2)
    high = (qh >> torch.tensor([0, 2, 4, 6], device=b.device, dtype=torch.uint8).reshape(1, 1, 4, 1)) & 3
    q = (low | (high << 4)).float().reshape(n, 16, 16) - 32
    scales = b[:, 192:208].contiguous().view(torch.int8).float()
    return (_f16(b, 208).unsqueeze(2) * scales.unsqueeze(2) * q).reshape(n, 256)


_DEQUANTIZE = {"Q8_0": _q8_0, "Q4_0": _q4_0, "Q4_1": _q4_1, "Q5_0": _q5_0, "Q5_1": _q5_1, "Q2_K": _q2_k,
               "Q3_K": _q3_k, "Q4_K": _q4_k, "Q5_K": _q5_k, "Q6_K": _q6_k}
_SIZES = {name: (block, nbytes) for name, block, nbytes in GGML_TYPES.values()}
# Types whose values are one fp16 scale times a small integer (the offset applied to the integer):
# the product is exact in float32, so one IEEE fp16 multiply rounds it exactly as float32 then a
# cast does; these are computed straight in float16, without a float32 copy of the weight. Not in
# bfloat16 (its 8-bit mantissa would round the scale first), and not the types with a min or
# sub-block scales (two roundings where float32 makes one): those go through float32.
_EXACT_IN_HALF = ("Q8_0", "Q4_0", "Q5_0")


def dequantize(blocks: torch.Tensor, qtype: str, shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A quantized tensor's values: `blocks` its raw bytes (uint8, any shape whose total is a whole
    number of `qtype` blocks), `shape` the logical shape. Computed in float32 (as ggml's reference
    dequantization), then cast to `dtype`; straight in float16 where that gives the same values
    (_EXACT_IN_HALF)."""
    if qtype not in _DEQUANTIZE:
        raise GGUFError(f"cannot dequantize ggml type {qtype!r}; graphflow reads {', '.join(QUANTIZED)}")
    _, nbytes = _SIZES[qtype]
    flat = blocks.reshape(-1, nbytes)
    if dtype == torch.float16 and qtype in _EXACT_IN_HALF:
        return _DEQUANTIZE[qtype](flat, torch.float16).reshape(shape)
    return _DEQUANTIZE[qtype](flat).reshape(shape).to(dtype)


def quantized_row_bytes(qtype: str, row: int) -> int:
    """Bytes of one row of `row` values in `qtype` (GGUFError unless `row` is whole blocks)."""
    block, nbytes = _SIZES[qtype]
    if row % block:
        raise GGUFError(f"a row of {row} values is not whole {qtype} blocks of {block}")
    return row // block * nbytes


# -- running on quantized weights ----------------------------------------------------------------

class QuantizedLinear(nn.Linear):
    """nn.Linear whose weight stays as the GGUF file's blocks (a uint8 Parameter [out, bytes per
    row]) and is dequantized to the input's dtype each time the layer runs, as ComfyUI-GGUF's
    GGMLOps.Linear does: the model holds (and moves to the device) the quantized bytes only.
    A LoRA patch (graphflow.models.lora) is made for each forward, as the pack's GGUFModelPatcher
    makes it (graphflow.memory): the weight is, during the call only, its dequantized patched
    values in `compute_dtype`, which the layer runs on as a plain Linear; the blocks stay."""

    def __init__(self, in_features: int, out_features: int, bias: bool, qtype: str, compute_dtype: torch.dtype):
        super().__init__(in_features, out_features, bias, device="meta", dtype=compute_dtype)
        self.qtype, self.compute_dtype = qtype, compute_dtype
        self.weight = nn.Parameter(torch.empty(out_features, quantized_row_bytes(qtype, in_features),
                                               dtype=torch.uint8, device="meta"), requires_grad=False)

    @property
    def weight_shape(self) -> torch.Size:
        return torch.Size((self.out_features, self.in_features))

    # UnetLoaderGGUFAdvanced's dequant_dtype: the values rounded through this dtype before the cast to
    # the input's (None: straight to the input's dtype)
    dequant_dtype: torch.dtype | None = None

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        """The weight's values in `dtype` (the patched ones while a LoRA holds)."""
        w = self.weight
        if w.dtype != torch.uint8:
            return w.to(dtype)
        return dequantize(w, self.qtype, self.weight_shape, self.dequant_dtype or dtype).to(dtype)

    def values_of(self, blocks: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """This layer's weight blocks (as it holds them, or an original kept apart) as values in `dtype`
        (default: its compute dtype): what patches change and readers of the weights (saving,
        merging) get (graphflow.memory)."""
        return dequantize(blocks, self.qtype, self.weight_shape, dtype or self.compute_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantized(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, qtype={self.qtype}"


def gguf_source(source) -> tuple["GGUFContents", str] | tuple[None, str]:
    """The GGUFContents behind a weights source (a WeightFile of a .gguf or a KeyView of one) and
    the prefix its keys take there; (None, "") for anything else."""
    from .weight_files import KeyView

    prefix = ""
    while isinstance(source, KeyView):
        source, prefix = source.source, source.prefix + prefix
    contents = getattr(source, "gguf", None)
    return (contents, prefix) if contents is not None else (None, "")


def keep_quantized(net: nn.Module, source, compute_dtype: torch.dtype, skip: tuple[str, ...] = ()) -> set[str]:
    """Make the Linear layers of the meta-built `net` whose weights `source` holds quantized (a GGUF
    file) QuantizedLinear layers; their state-dict keys are returned: read them as stored (uint8,
    WeightFile.get(key, dtype=torch.uint8)). Other quantized tensors (conv, embedding, norm) are
    dequantized when read, in the compute dtype, as everything of a non-GGUF file; so are the
    layers whose path ends with one of `skip`."""
    contents, prefix = gguf_source(source)
    if contents is None:
        return set()
    kept = set()
    for path, layer in list(net.named_modules()):
        key = f"{path}.weight"
        if type(layer) is not nn.Linear and not _is_cast_linear(layer):
            continue
        if skip and path.endswith(skip):
            continue
        stored = prefix + key
        if stored not in contents.types or not contents.quantized(stored):
            continue
        if contents.shapes[stored] != (layer.out_features, layer.in_features):
            continue  # the load reports the mismatch
        parent, _, name = path.rpartition(".")
        quantized = QuantizedLinear(layer.in_features, layer.out_features, layer.bias is not None,
                                    contents.types[stored], compute_dtype)
        setattr(net.get_submodule(parent) if parent else net, name, quantized)
        kept.add(key)
    return kept


def _is_cast_linear(layer: nn.Module) -> bool:
    from .cast_layers import Linear

    return type(layer) is Linear
