"""fp8 matmuls for the diffusion model's Linear layers (GRAPHFLOW_FP8_MATMUL, `--fp8-matmul`) on
GPUs with fp8 tensor cores: compute capability 8.9 or newer (Ada, Hopper, Blackwell).

For a sampling run each Linear's weight is quantized once to float8_e4m3fn with a per-tensor
scale s_w = amax|W| / 448 (448: e4m3's largest finite value), and each call quantizes its input
the same way (s_x from the input's own amax, computed on the device: no sync). torch._scaled_mm
then computes (x_q W_q^T) s_x s_w with fp32 accumulation, output in the input's dtype; the bias
is added after. The layers' own weights are left as they are (LoRA, saving and later runs without
the option see them unchanged) and the fp8 copies are dropped when the run ends. Layers whose
widths are not multiples of 16 (what _scaled_mm takes) keep their ordinary matmul, and so do a GGUF
model's quantized layers (graphflow.models.gguf_layers.QuantizedLinear: their weight is the file's
blocks, dequantized as they run).
Layers of a ComfyUI scaled-fp8 file (graphflow.models.cast_layers) already hold an e4m3fn
weight and its per-tensor scale: those are used as they are, and the file's `scale_input`, where
it has one, is the input's scale instead of its amax.
"""

import contextlib

import torch
from torch import nn

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
MIN_CAPABILITY = (8, 9)


def unsupported_reason(device: torch.device) -> str | None:
    """Why fp8 matmuls cannot run on `device`, or None when they can."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"the compute device is {device.type}, not an NVIDIA GPU"
    capability = torch.cuda.get_device_capability(device)
    if capability < MIN_CAPABILITY:
        return (f"{torch.cuda.get_device_name(device)} has compute capability {capability[0]}.{capability[1]}, "
                f"below {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]}")
    return None


def check_supported(device: torch.device) -> None:
    reason = unsupported_reason(device)
    if reason is not None:
        raise ValueError(f"--fp8-matmul (GRAPHFLOW_FP8_MATMUL) needs a GPU with fp8 tensor cores (compute "
                         f"capability 8.9 or newer: Ada, Hopper); {reason}")


def quantize(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(t / s as float8_e4m3fn, s) with the per-tensor scale s = amax|t| / 448, fp32 0-dim."""
    scale = (t.detach().abs().amax().float() / E4M3_MAX).clamp(min=1e-12)
    return (t.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scale


def scaled_mm(a, b, scale_a, scale_b, out_dtype):
    out = torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, out_dtype=out_dtype)
    return out[0] if isinstance(out, tuple) else out  # PyTorch 2.4 also returned the output's amax


def _layer_scale(layer: nn.Module, name: str) -> torch.Tensor | None:
    scale = getattr(layer, name, None)
    return None if scale is None else scale.float()


def weight_for_matmul(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """(e4m3fn weight, its per-tensor scale): a scaled-fp8 layer's own, else quantized."""
    scale = _layer_scale(layer, "scale_weight")
    if scale is not None and layer.weight.dtype == E4M3 and scale.numel() == 1:
        return layer.weight, scale.reshape(())
    if scale is not None:  # per-row scales or another fp8 type: quantized again from the true weight
        from .cast_layers import scaled

        return quantize(scaled(layer.weight.float(), scale))
    return quantize(layer.weight)


def fp8_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    weight, weight_scale = layer._fp8_weight
    rows = x.reshape(-1, x.shape[-1])
    x_scale = _layer_scale(layer, "scale_input")
    if x_scale is None:
        x_q, x_scale = quantize(rows)
    else:
        x_scale = x_scale.reshape(())
        x_q = (rows.float() / x_scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
    # _scaled_mm takes the second operand column-major: the transpose of the row-major [out, in]
    out = scaled_mm(x_q, weight.t(), x_scale, weight_scale, x.dtype)
    if layer.bias is not None:
        out = out + layer.bias.to(x.dtype)
    return out.reshape(*x.shape[:-1], layer.out_features)


def eligible(module: nn.Module) -> bool:
    from .gguf_layers import QuantizedLinear

    # a GGUF layer's weight is the file's blocks (uint8 bytes, not values): it keeps its own matmul
    return (isinstance(module, nn.Linear) and not isinstance(module, QuantizedLinear)
            and module.in_features % 16 == 0 and module.out_features % 16 == 0)


@contextlib.contextmanager
def fp8_matmuls(model: nn.Module):
    """Within the block, the eligible Linear layers of `model` multiply in fp8."""
    layers = [m for m in model.modules() if eligible(m)]
    for layer in layers:
        layer._fp8_weight = weight_for_matmul(layer)
        layer.forward = lambda x, layer=layer: fp8_linear(layer, x)
    try:
        yield layers
    finally:
        for layer in layers:
            del layer.forward, layer._fp8_weight
