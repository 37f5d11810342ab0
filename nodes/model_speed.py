"""MODEL patches that change how the diffusion model computes, not what (graphflow.models.speed)."""

from __future__ import annotations

from graphflow.api import MODEL, Choice, ComfyAlias, Node, NodeInputError
from graphflow.choices import COMPILE_BACKENDS, COMPUTE_DTYPES


def _check_model(model, what: str):
    import torch
    if not isinstance(getattr(model, "unet", None), torch.nn.Module) or not hasattr(model, "with_unet"):
        raise NodeInputError("model", f"{what} needs a diffusion MODEL (from a checkpoint or UNETLoader)")


class ModelComputeDtype(Node):
    """The diffusion model computing in another dtype: fp32 (slowest, the reference), fp16 or
    bf16 (half the memory traffic; bf16 avoids fp16's overflows), or default (what graphflow
    picks for this device). The new MODEL holds its own copy of the weights in that dtype (fp8
    weights stay fp8); LoRAs applied before or after still apply."""
    category = "advanced/debug/model"
    model: MODEL
    dtype: str = Choice(COMPUTE_DTYPES, "default")
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelComputeDtype",))

    def run(self):
        from graphflow.models.speed import with_compute_dtype
        _check_model(self.model, "ModelComputeDtype")
        return with_compute_dtype(self.model, self.dtype)


class TorchCompileModel(Node):
    """Compiles the diffusion model with torch.compile when it samples (as --compile does, with
    this backend): the first run of each image size compiles (seconds to minutes), later runs
    reuse it and are faster. inductor: fused kernels (needs a C++ compiler on the CPU, Triton
    on CUDA); cudagraphs: replays CUDA graphs (CUDA only). If compiling fails, a warning says why
    and the model runs uncompiled."""
    category = "advanced/model"
    model: MODEL
    backend: str = Choice(COMPILE_BACKENDS, "inductor")
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("TorchCompileModel",))

    def run(self):
        from graphflow.models.speed import with_compile
        _check_model(self.model, "TorchCompileModel")
        return with_compile(self.model, self.backend)
