"""Layers whose weights may be stored in another dtype than the one they compute in.

A 12B FLUX in fp8 takes 12 GB instead of 24: its Linear/Conv weights stay float8_e4m3fn (or
e5m2) in memory and are upcast to the input's dtype for each call, one layer at a time. With
weights already in the compute dtype the layers are plain nn.Linear / nn.Conv2d.

ComfyUI's scaled fp8 files (graphflow.models.weight_files) keep their fp8 weights so too, each
layer holding its `scale_weight` (and `scale_input`, for fp8 matmuls) as buffers: the weight is
upcast, then multiplied by the scale, as the file's dequantised weight would be (in float32 the
same numbers bit for bit). Layers without a scale have neither buffer set (None).
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


def stochastic_round(x: torch.Tensor, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """float32 `x` in `dtype`; into fp8, rounded down or up at random with probability the distance
    to the other neighbour (seeded: the same result for the same seed), as ComfyUI stores a LoRA-patched
    fp8 weight: a change below half of fp8's step survives on average where rounding to nearest drops
    it. Beyond fp8's range: its largest value (e4m3fn has no infinity). Other dtypes: a plain cast."""
    if dtype not in FP8_DTYPES:
        return x.to(dtype)
    mantissa, bias, top = (3, 7, 15) if dtype == torch.float8_e4m3fn else (2, 15, 31)
    a = x.float().abs()
    exponent = (torch.floor(torch.log2(a)) + bias).clamp(0, top)  # biased; 0: subnormal (and zero)
    step = torch.exp2(exponent.clamp(min=1) - bias - mantissa)  # the grid spacing at each value
    noise = torch.rand(a.shape, generator=torch.Generator(a.device).manual_seed(seed), device=a.device)
    limit = torch.finfo(dtype).max
    return (torch.sign(x.float()) * torch.floor(a / step + noise) * step).clamp(-limit, limit).to(dtype)


def scaled(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """weight x scale_weight: a scalar, or one per output row ([out] or [out, 1])."""
    if scale.numel() > 1:
        scale = scale.reshape(-1, *[1] * (weight.dim() - 1))
    return weight * scale


class _Scalable:
    """A layer whose weight may carry a scale_weight (and scale_input), both None unless set."""

    def _scale_buffers(self):
        self.register_buffer("scale_weight", None)
        self.register_buffer("scale_input", None)

    def _weight(self, x: torch.Tensor) -> torch.Tensor:
        weight = _cast(self.weight, x)
        return weight if self.scale_weight is None else scaled(weight, self.scale_weight.to(x.dtype))


class Linear(_Scalable, nn.Linear):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._scale_buffers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self._weight(x), _cast(self.bias, x))


class Conv2d(_Scalable, nn.Conv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._scale_buffers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self._weight(x), _cast(self.bias, x))


def set_scales(module: nn.Module, scales: dict[str, torch.Tensor], input_scales: dict[str, torch.Tensor]) -> None:
    """Give the cast layers of `module` the scales of their fp8 weights, by weight name
    (`blocks.0.qkv.weight` -> the layer `blocks.0.qkv`)."""
    for names, buffer in ((scales, "scale_weight"), (input_scales, "scale_input")):
        for key, scale in names.items():
            layer = module.get_submodule(key[:-len(".weight")])
            if not isinstance(layer, _Scalable):  # a plain layer would ignore it: wrong numbers
                raise ValueError(f"{key} is stored scaled in fp8 but its layer cannot apply a scale")
            setattr(layer, buffer, scale)


def castable_weights(module: nn.Module) -> set[str]:
    """State-dict names of the weights that may stay in fp8 (those of the cast layers)."""
    return {f"{name}.weight" for name, m in module.named_modules() if isinstance(m, (Linear, Conv2d))}


def compute_dtype(module: nn.Module) -> torch.dtype:
    """The dtype a model computes in: that of its first non-fp8 floating-point tensor."""
    for t in (*module.parameters(), *module.buffers()):
        if t.is_floating_point() and t.dtype not in FP8_DTYPES:
            return t.dtype
    return torch.float32
