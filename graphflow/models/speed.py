"""How the diffusion model runs during sampling: channels-last convolutions and torch.compile.

GRAPHFLOW_CHANNELS_LAST (1 / 0): the UNet's convolution weights in channels-last (NHWC) layout,
    which cuDNN's tensor-core kernels prefer (activations follow the weights). Default: on for
    CUDA, off elsewhere. The VAE decodes in NHWC under the same setting (always on the CPU,
    where oneDNN is faster with it).
GRAPHFLOW_COMPILE (1 / 0, `--compile`): the diffusion model's forward goes through
    torch.compile (mode "default", dynamic=False: one graph per input shape). The compiled
    forward is kept on the model module, so later runs of the same model reuse it, and shapes
    seen before hit torch's compile caches (in memory, and inductor's on-disk FX graph cache
    across processes). A model only partly on the device (memory manager streaming blocks)
    runs uncompiled. If compiling fails (no C++ compiler for the CPU backend, say), a warning
    says why and the model runs uncompiled. GRAPHFLOW_COMPILE_BACKEND picks torch.compile's
    backend (default inductor), GRAPHFLOW_COMPILE_MODE (`--compile-mode`) its mode (COMPILE_MODES: "reduce-overhead"
    replays each step as a CUDA graph, which saves the kernel launches that bound small images
    on a fast GPU; "max-autotune" searches kernels for minutes more).
GRAPHFLOW_FP8_MATMUL (1 / 0, `--fp8-matmul`): the Linear layers multiply in fp8 (fp8_matmul.py).

Per model (ComfyUI's nodes): TorchCompileModel sets the MODEL's "compile_backend" option, which
compiles it as --compile does with that backend (`with_compile`); ModelComputeDtype gives a MODEL
that computes in another dtype (`with_compute_dtype`).
"""

import contextlib
import os
import warnings

import torch
from torch import nn

from ..choices import COMPILE_MODES
from .attention import kernels


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} is {value!r}; expected 1 or 0")


def channels_last(device: torch.device) -> bool:
    return _flag("GRAPHFLOW_CHANNELS_LAST", torch.device(device).type == "cuda")


def compile_requested() -> bool:
    return _flag("GRAPHFLOW_COMPILE", False)


def compile_mode() -> str:
    mode = os.environ.get("GRAPHFLOW_COMPILE_MODE", "").strip().lower() or "default"
    if mode not in COMPILE_MODES:
        raise ValueError(f"GRAPHFLOW_COMPILE_MODE is {mode!r}; expected one of {', '.join(COMPILE_MODES)}")
    return mode


def compile_module(module: nn.Module, backend: str | None = None) -> None:
    """Give `module` a compiled forward (once per backend and mode; nn.Module.compile's slot),
    falling back to eager with a warning when compiling fails. backend: torch.compile's, else
    GRAPHFLOW_COMPILE_BACKEND's (default inductor)."""
    # id: a shallow copy of the module (a FreeU or HyperTile MODEL) inherits these attributes, but
    # the compiled forward runs the module it was made for
    settings = (backend or os.environ.get("GRAPHFLOW_COMPILE_BACKEND", "inductor"), compile_mode(), id(module))
    if getattr(module, "_graphflow_compiled", None) is not None and module._graphflow_compiled_as == settings:
        module._compiled_call_impl = module._graphflow_compiled
        return
    backend, mode, _ = settings
    compiled = torch.compile(module._call_impl, backend=backend, mode=None if mode == "default" else mode,
                             dynamic=False)
    graphs = mode in ("reduce-overhead", "max-autotune")  # inductor's CUDA graphs

    def call(*args, **kwargs):
        if graphs:
            # each call is a new replay: its caller turns the outputs into new tensors at once
            # (x0, CFG), so the previous replay's buffers are free to be written again
            torch.compiler.cudagraph_mark_step_begin()
        try:
            return compiled(*args, **kwargs)
        except torch._dynamo.exc.TorchDynamoException as e:
            if isinstance(e, (torch._dynamo.exc.BackendCompilerFailed, torch._dynamo.exc.InternalTorchDynamoError)):
                cause = getattr(e, "inner_exception", None) or e.__cause__ or e
                warnings.warn(f"torch.compile of the diffusion model failed, running it uncompiled: "
                              f"{type(cause).__name__}: {cause}", stacklevel=2)
                module._graphflow_compiled = module._compiled_call_impl = None
            # an error of the model itself (raised while tracing) comes back plain from the eager call
            return module._call_impl(*args, **kwargs)

    module._graphflow_compiled = module._compiled_call_impl = call
    module._graphflow_compiled_as = settings


def fp8_matmul_requested() -> bool:
    return _flag("GRAPHFLOW_FP8_MATMUL", False)


@contextlib.contextmanager
def sampling(module: nn.Module, device: torch.device, convolutional: bool = True, compile_backend: str | None = None):
    """Within the block, `module` (a diffusion model on `device`) runs with the speed options
    (and fp8 matmuls when GRAPHFLOW_FP8_MATMUL asks for them: graphflow.models.fp8_matmul);
    compile_backend (TorchCompileModel's) compiles it with that backend even without --compile."""
    device = torch.device(device)
    if convolutional and channels_last(device):
        module.to(memory_format=torch.channels_last)  # 4-D weights only; idempotent
    resident = all(p.device.type == device.type and device.index in (None, p.device.index)
                   for p in module.parameters())
    with contextlib.ExitStack() as stack:
        stack.enter_context(kernels(device))  # for a compiled forward, which traces attention without its own
        if fp8_matmul_requested():
            from .fp8_matmul import check_supported, fp8_matmuls

            check_supported(device)
            stack.enter_context(fp8_matmuls(module))
        if (compile_backend or compile_requested()) and resident:
            compile_module(module, compile_backend)
            # an uncompiled run next time (partial load, flag off) stays eager
            stack.callback(setattr, module, "_compiled_call_impl", None)
        yield


def with_compile(model, backend: str):
    """The MODEL compiled with `backend` whenever it samples (the compiled forward is kept on
    its network and reused by later runs); the input model is unchanged."""
    return model.with_options(compile_backend=backend)


def with_compute_dtype(model, dtype: str):
    """The MODEL computing in `dtype` (COMPUTE_DTYPES; "default": the dtype graphflow loads
    such a model in on this device, graphflow.device). Weights in another dtype are converted
    into a copy of the network that the new MODEL holds (fp8-stored weights stay fp8: they are
    upcast per layer); the input model, its weights and its weight patches (LoRAs) are kept."""
    from graphflow.device import compute_device, default_dtype, parse_dtype
    from graphflow.memory import manager

    from .cast_layers import FP8_DTYPES
    from .checkpoint import _flow_default_dtype
    from .lora import copied_modules

    if dtype == "default":
        target = _flow_default_dtype(compute_device()) if model.is_flow else default_dtype("unet", compute_device())
    else:
        target = parse_dtype(dtype)
    if model.dtype == target:
        return model

    def converts(t):
        return t is not None and t.is_floating_point() and t.dtype not in FP8_DTYPES and t.dtype != target

    owners = [path for path, m in model.unet.named_modules() if path and
              any(converts(t) for t in (*m._parameters.values(), *m._buffers.values()))]
    # the originals: without the weight patches another MODEL may have applied to them just now
    originals = manager().weights(model.unet)
    unet, copies = copied_modules(model.unet, owners)
    with torch.no_grad():
        for path, module in copies.items():
            for name, p in module._parameters.items():
                if converts(p):
                    module._parameters[name] = nn.Parameter(originals[f"{path}.{name}"].to(target),
                                                            requires_grad=False)
            for name, b in module._buffers.items():
                if converts(b):
                    module._buffers[name] = originals.get(f"{path}.{name}", b).to(target)  # non-persistent: as is
    return model.with_unet(unet)
