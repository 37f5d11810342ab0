"""Device and dtype policy, in one place.

GRAPHFLOW_DEVICE (cpu, cuda, cuda:1, mps) and GRAPHFLOW_DTYPE (float32, float16, bfloat16)
override the defaults: the first CUDA device, else MPS, else the CPU; half precision on a
GPU (bf16 where supported, since fp16 overflows in some VAEs), fp32 on the CPU.
"""

import functools
import gc
import os

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


@functools.cache
def compute_device() -> torch.device:
    name = os.environ.get("GRAPHFLOW_DEVICE")
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_device() -> torch.device:
    """Where loaders put weights: the CPU when the memory manager is to stream or budget them
    (GRAPHFLOW_VRAM low/none, GRAPHFLOW_VRAM_BUDGET_GB), so a model larger than the device
    loads at all; it moves them to compute_device() when they run. Else compute_device()."""
    if os.environ.get("GRAPHFLOW_VRAM", "normal") != "normal" or os.environ.get("GRAPHFLOW_VRAM_BUDGET_GB"):
        return torch.device("cpu")
    return compute_device()


def parse_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}") from None


def default_dtype(component: str = "unet", device: torch.device | None = None) -> torch.dtype:
    """The dtype to run `component` (unet, vae, text_encoder) in on `device`."""
    override = os.environ.get("GRAPHFLOW_DTYPE")
    if override:
        return parse_dtype(override)
    device = device or compute_device()
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16 if component == "vae" else torch.float16
        return torch.float32 if component == "vae" else torch.float16
    if device.type == "mps":
        return torch.float32 if component == "vae" else torch.float16
    return torch.float32


def to_device(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Move only when needed."""
    if tensor.device == device and (dtype is None or tensor.dtype == dtype):
        return tensor
    return tensor.to(device=device, dtype=dtype or tensor.dtype)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def memory_stats() -> dict:
    device = compute_device()
    stats = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        stats.update(name=torch.cuda.get_device_name(device), vram_total=total, vram_free=free,
                     torch_allocated=torch.cuda.memory_allocated(device))
    return stats
