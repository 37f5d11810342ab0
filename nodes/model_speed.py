"""MODEL patches that change how the diffusion model computes, not what (graphflow.models.speed),
and the step caches that skip some of its calls (graphflow.sampling.step_cache)."""

from __future__ import annotations

from graphflow.api import MODEL, Bool, Choice, ComfyAlias, Float, Node, NodeInputError
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


def _check_sampled_model(model, what: str):
    if not hasattr(model, "unet") or not hasattr(model, "latent_format"):
        raise NodeInputError("model", f"{what} needs a diffusion MODEL (from a checkpoint or UNETLoader)")


class EasyCache(Node):
    """EasyCache (Zhou et al. 2025): skips the diffusion model at steps where its input changed
    little, reusing the last computed step's output-minus-input difference, while the estimated
    accumulated output change stays below reuse_threshold (0: never skips; larger: faster, further
    from the uncached image). Only between start_percent and end_percent of sampling; the first two
    steps there are always computed. Works with UNet and flow models, cond and uncond batched or
    not; made for flow (video) models: on SD1-style models few steps or a high threshold shift
    colours. Costs one GPU sync per step while sampling is before end_percent. verbose logs each
    decision (graphflow.sampling.step_cache)."""
    category = "advanced/debug/model"
    model: MODEL
    reuse_threshold: float = Float(0.2, min=0.0, max=3.0, step=0.01)
    start_percent: float = Float(0.15, min=0.0, max=1.0, step=0.01)
    end_percent: float = Float(0.95, min=0.0, max=1.0, step=0.01)
    verbose: bool = Bool(False)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("EasyCache",))

    def run(self):
        from graphflow.sampling.step_cache import with_easycache
        _check_sampled_model(self.model, "EasyCache")
        return with_easycache(self.model, self.reuse_threshold, self.start_percent, self.end_percent, self.verbose)


class LazyCache(Node):
    """LazyCache (ComfyUI's simpler EasyCache): skips the whole guided prediction (all prompts and
    CFG at once) at steps where the latent changed little, reusing the last computed step's
    prediction-minus-latent difference while the estimated accumulated change stays below
    reuse_threshold. Only between start_percent and end_percent of sampling. Usually worse than
    EasyCache, but it sits outside every other model patch. One GPU sync per step while sampling
    is before end_percent; verbose logs each decision."""
    category = "advanced/debug/model"
    model: MODEL
    reuse_threshold: float = Float(0.2, min=0.0, max=3.0, step=0.01)
    start_percent: float = Float(0.15, min=0.0, max=1.0, step=0.01)
    end_percent: float = Float(0.95, min=0.0, max=1.0, step=0.01)
    verbose: bool = Bool(False)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("LazyCache",))

    def run(self):
        from graphflow.sampling.step_cache import with_lazycache
        _check_sampled_model(self.model, "LazyCache")
        return with_lazycache(self.model, self.reuse_threshold, self.start_percent, self.end_percent, self.verbose)
