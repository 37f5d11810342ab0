"""welltop-cn/ComfyUI-TeaCache: its TeaCache and CompileModel
nodes, under the pack's class names, inputs, defaults and order, read at nodes.py
3657f7f566481dafd1a4797d792649270b9abc85 (and 1a11412deac8 for the older max_skip_steps layout,
not taken: the current node has no such input) and README.md b5bdbd88.

Built: TeaCache for model_type "flux" (FLUX.1 dev / schnell / Fill / Kontext), the eight Wan 2.1
types (wan2.1_*, ret_mode included: any Wan MODEL, as the pack patches any), hidream_i1_full (any
HiDream-I1 MODEL) and ltxv, on graphflow's block hook (graphflow.models.block_runner,
graphflow.sampling.block_cache: the formula is there).
Not built yet: hunyuan_video: HunyuanVideo runs each sample apart when its text masks differ, which
one state per call would misread; choosing it is refused by name. cache_device comes from later pack
versions than the one in the code index: read as an optional input (its values cuda / cpu, default
cuda, as saves of the pack's 1.9.0 carry it, 5th of its widgets). Those versions' model types
flux-kontext, lumina_2, hidream_i1_dev and hidream_i1_fast (named by third-party workflow builders;
their coefficients not in the index) are refused by name.
CompileModel: graphflow's TorchCompileModel under the pack's inputs, where they mean the same.
"""

from __future__ import annotations

from graphflow.api import MODEL, Bool, Choice, ComfyAlias, Float, Node, NodeInputError

COMFY_PACK = "ComfyUI-TeaCache"  # the custom node pack this module's ComfyUI classes come from

MODEL_TYPES = ("flux", "ltxv", "hunyuan_video", "hidream_i1_full", "wan2.1_t2v_1.3B", "wan2.1_t2v_14B",
               "wan2.1_i2v_480p_14B", "wan2.1_i2v_720p_14B", "wan2.1_t2v_1.3B_ret_mode", "wan2.1_t2v_14B_ret_mode",
               "wan2.1_i2v_480p_14B_ret_mode", "wan2.1_i2v_720p_14B_ret_mode",
               # later pack versions' (their saves carry them; their coefficients were not in the index):
               # taken so such a save is refused by name, not as an unknown choice
               "flux-kontext", "lumina_2", "hidream_i1_dev", "hidream_i1_fast")
COMPILE_MODES = ("default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead")
PACK_BACKENDS = ("inductor", "cudagraphs", "eager", "aot_eager")


def check_arch(model, arch: str, model_type: str):
    """Refuses a MODEL of another family than model_type's."""
    from graphflow.models.architectures import ARCHITECTURES
    from nodes.model_speed import _check_sampled_model
    _check_sampled_model(model, "TeaCache")
    if getattr(model, "arch", None) != arch:
        raise NodeInputError("model_type", f"TeaCache with model_type {model_type!r} needs a {ARCHITECTURES[arch].short} "
                                           f"MODEL, got a {getattr(model, 'arch', '?')} model")


class TeaCache(Node):
    """TeaCache (Liu et al. 2024): skips the transformer blocks at steps where their input changed
    little since the previous step, adding the blocks' last computed residual instead. The relative
    L1 change of the model type's probe (FLUX, LTX-Video: the first block's modulated input; Wan 2.1
    and HiDream: the time embedding), rescaled by its polynomial, accumulates until it reaches
    rel_l1_thresh (0: off; the pack suggests 0.4 for FLUX, 0.06 for LTX-Video, 0.08 to 0.26 for
    Wan 2.1); then the blocks run and the sum restarts. Only between start_percent and end_percent
    of the run's steps. model_type: all but hunyuan_video are built in graphflow (it is refused).
    cache_device: where the residual is kept (cpu saves GPU memory, costs a copy a step). State is
    fresh each run; Wan, HiDream and LTX-Video keep cond and uncond apart, as the pack
    (graphflow.sampling.block_cache)."""
    category = "TeaCache"
    model: MODEL
    model_type: str = Choice(MODEL_TYPES, "flux")
    rel_l1_thresh: float = Float(0.4, min=0.0, max=10.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    cache_device: str = Choice(("cuda", "cpu"), "cuda")
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("TeaCache",), optional=("cache_device",))

    def run(self):
        from graphflow.sampling.block_cache import TEACACHE_ARCHS, with_teacache
        if self.model_type not in TEACACHE_ARCHS:
            raise NodeInputError("model_type", f"{self.model_type!r} is not built in graphflow yet: TeaCache runs "
                                               f"with {', '.join(TEACACHE_ARCHS)}")
        check_arch(self.model, TEACACHE_ARCHS[self.model_type], self.model_type)
        if self.start_percent > self.end_percent:  # the pack takes it and never skips
            raise NodeInputError("end_percent", f"{self.end_percent} is before start_percent {self.start_percent}: "
                                                "TeaCache would never skip")
        return with_teacache(self.model, self.model_type, self.rel_l1_thresh, self.start_percent, self.end_percent,
                             "cpu" if self.cache_device == "cpu" else None)


class TeaCacheCompileModel(Node):
    """Compile Model (TeaCache pack): torch.compile of the diffusion model when it samples, as
    TorchCompileModel does. graphflow compiles with its own settings: backend inductor or cudagraphs,
    mode default, fullgraph and dynamic off; other values are refused by name. fullgraph cannot hold:
    TeaCache and First Block Cache decide outside the compiled graph (a graph break each call);
    dynamic: graphflow compiles one graph per latent size, not a size-generic one."""
    category = "TeaCache"
    model: MODEL
    mode: str = Choice(COMPILE_MODES, "default")
    backend: str = Choice(PACK_BACKENDS, "inductor")
    fullgraph: bool = Bool(False)
    dynamic: bool = Bool(False)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("CompileModel",))

    def run(self):
        from graphflow.choices import COMPILE_BACKENDS
        from graphflow.models.speed import with_compile
        from nodes.model_speed import _check_model
        _check_model(self.model, "CompileModel")
        if self.backend not in COMPILE_BACKENDS:
            raise NodeInputError("backend", f"{self.backend!r}: graphflow compiles with "
                                            f"{' or '.join(COMPILE_BACKENDS)}")
        for name, value in (("mode", self.mode != "default"), ("fullgraph", self.fullgraph), ("dynamic", self.dynamic)):
            if value:
                raise NodeInputError(name, f"{getattr(self, name)!r}: graphflow compiles with mode default, "
                                           "fullgraph and dynamic off")
        return with_compile(self.model, self.backend)
