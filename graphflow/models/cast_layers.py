"""Layers whose weights may be stored in another dtype than the one they compute in.

A 12B FLUX in fp8 takes 12 GB instead of 24: its Linear/Conv weights stay float8_e4m3fn (or
e5m2) in memory and are upcast to the input's dtype for each call, one layer at a time. With
weights already in the compute dtype the layers are plain nn.Linear / nn.Conv2d.
"""

import torch
import torch.nn.functional as F
from torch import nn

FP8_DTYPES = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, n))

# the UNETLoader's weight_dtype choices (ComfyUI's names) -> storage dtype of Linear/Conv weights
WEIGHT_DTYPES = {"default": None,
                 "fp8_e4m3fn": getattr(torch, "float8_e4m3fn", None),
                 "fp8_e5m2": getattr(torch, "float8_e5m2", None)}


def _cast(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    return t if t is None or t.dtype == like.dtype else t.to(like.dtype)


class Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, _cast(self.weight, x), _cast(self.bias, x))


class Conv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))


def castable_weights(module: nn.Module) -> set[str]:
    """State-dict names of the weights that may stay in fp8 (those of the cast layers)."""
    return {f"{name}.weight" for name, m in module.named_modules() if isinstance(m, (Linear, Conv2d))}


def compute_dtype(module: nn.Module) -> torch.dtype:
    """The dtype a model computes in: that of its first non-fp8 floating-point tensor."""
    for t in (*module.parameters(), *module.buffers()):
        if t.is_floating_point() and t.dtype not in FP8_DTYPES:
            return t.dtype
    return torch.float32
