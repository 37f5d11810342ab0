"""Attention for every model: softmax(q k^T / sqrt(d) + mask) v through PyTorch's
scaled_dot_product_attention, with the kernels chosen per device.

The UNet, the VAE, MM-DiT and FLUX call `attention`; the text encoders (transformers' CLIP and
T5, whose "sdpa" implementation calls the same PyTorch function) run inside `kernels(device)`.

GRAPHFLOW_ATTENTION (`--attention`):
  auto  the default. CUDA: cuDNN first on Hopper and newer (compute capability >= 9.0, where it
        is the fastest fused kernel), then flash, then memory-efficient, with the unfused math
        kernel last for inputs no fused kernel takes (fp32 with large heads, say). Elsewhere
        PyTorch's own choice (on the CPU its fused flash kernel).
  sdpa  PyTorch's own choice on every device.
  math  the unfused math kernel everywhere: the reference the others are checked against.
"""

import contextlib
import inspect
import os

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

ATTENTION_MODES = ("auto", "sdpa", "math")

_mode: str | None = None  # set_attention_mode's choice; None: GRAPHFLOW_ATTENTION or auto


def set_attention_mode(mode: str | None) -> None:
    """Choose the kernels (ATTENTION_MODES); None goes back to GRAPHFLOW_ATTENTION / auto."""
    if mode is not None and mode not in ATTENTION_MODES:
        raise ValueError(f"unknown attention mode {mode!r}; expected one of {', '.join(ATTENTION_MODES)}")
    global _mode
    _mode = mode


def attention_mode() -> str:
    if _mode is not None:
        return _mode
    mode = os.environ.get("GRAPHFLOW_ATTENTION", "auto").lower() or "auto"
    if mode not in ATTENTION_MODES:
        raise ValueError(f"GRAPHFLOW_ATTENTION is {mode!r}; expected one of {', '.join(ATTENTION_MODES)}")
    return mode


def backends(device: torch.device, mode: str) -> tuple | None:
    """The SDPA kernels to allow, in priority order, for `mode` on `device`; None: PyTorch's choice."""
    if mode == "math":
        return (SDPBackend.MATH,)
    if mode == "sdpa" or device.type != "cuda":
        return None
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    if torch.cuda.get_device_capability(device) >= (9, 0):
        fused.insert(0, SDPBackend.CUDNN_ATTENTION)
    return (*fused, SDPBackend.MATH)


_chosen: dict[tuple, tuple | None] = {}  # (device, mode) -> backends(); a plain dict, which torch.compile reads
# PyTorch 2.6 added the priority order; before it the kernels allowed are tried in PyTorch's own order
_ORDERED = "set_priority" in inspect.signature(sdpa_kernel).parameters


def kernels(device: torch.device):
    """A context in which PyTorch's SDPA uses the kernels chosen for `device`."""
    key = (torch.device(device), attention_mode())
    if key not in _chosen:
        _chosen[key] = backends(*key)
    chosen = _chosen[key]
    if chosen is None:
        return contextlib.nullcontext()
    return sdpa_kernel(list(chosen), set_priority=True) if _ORDERED else sdpa_kernel(list(chosen))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """[B, heads, L, d] queries, keys, values (mask: boolean keep-mask or additive float mask
    broadcastable to [B, heads, Lq, Lk]) -> [B, heads, Lq, d]."""
    if torch.compiler.is_compiling():
        # traced under the kernels() that graphflow.models.speed.sampling sets around the whole
        # compiled call (older TorchDynamo cannot trace sdpa_kernel's priority order)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    with kernels(q.device):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
