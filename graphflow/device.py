"""Device and dtype policy, in one place.

GRAPHFLOW_DEVICE (cpu, cuda, cuda:1, mps) and GRAPHFLOW_DTYPE (fp32, fp16, bf16, or auto,
the default) override the defaults: the first CUDA device, else MPS, else the CPU; half
precision on a GPU (bf16 where supported, since fp16 overflows in some VAEs). On the CPU the
diffusion model and text encoders compute in bf16 where the processor has native bf16
(AVX512-BF16 or AMX: 2-2.7x the fp32 matmul speed), fp32 elsewhere; the VAE stays fp32 there
unless GRAPHFLOW_DTYPE asks otherwise. Samplers keep x and sigmas in fp32 whatever the model's
dtype (graphflow.sampling.model_sampling casts around the model's forward).
"""

import functools
import gc
import os

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of x86 bf16 dot-product units


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


def dtype_override() -> torch.dtype | None:
    """GRAPHFLOW_DTYPE as a dtype; None when unset or "auto" (the per-device choice)."""
    name = os.environ.get("GRAPHFLOW_DTYPE", "").strip()
    if not name or name.lower() == "auto":
        return None
    try:
        return parse_dtype(name)
    except ValueError:
        raise ValueError(f"GRAPHFLOW_DTYPE={name!r} is not a dtype; expected auto, {', '.join(DTYPES)}") from None


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX). Without it PyTorch
    emulates bf16 and is slower than fp32. torch's get_cpu_capability() names AVX512 but not
    its BF16 extension, so the kernel's flags decide (Linux; elsewhere: no)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return any(flag in line.split() for flag in NATIVE_BF16_FLAGS)
    except OSError:
        pass
    return False


def default_dtype(component: str = "unet", device: torch.device | None = None) -> torch.dtype:
    """The dtype to run `component` (unet, vae, text_encoder) in on `device`."""
    override = dtype_override()
    if override is not None:
        return override
    device = device or compute_device()
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16 if component == "vae" else torch.float16
        return torch.float32 if component == "vae" else torch.float16
    if device.type == "mps":
        return torch.float32 if component == "vae" else torch.float16
    if component != "vae" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def same_device(a: torch.device | None, b: torch.device | None) -> bool:
    """Whether two devices are one: a device without an index is its type's current one (CUDA's
    current device, else index 0), so torch.device("cuda") (compute_device's) is a tensor's cuda:0."""
    if a is None or b is None or a.type != b.type:
        return a == b
    return _index(a) == _index(b)


def _index(device: torch.device) -> int:
    if device.index is not None:
        return device.index
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.current_device()
    return 0


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
