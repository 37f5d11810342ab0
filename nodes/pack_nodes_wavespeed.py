"""chengzeyi/Comfy-WaveSpeed: its ApplyFBCacheOnModel (First Block Cache), under the pack's class
name, inputs, defaults and order, read at fbcache_nodes.py 04f882b935e70c4ec85aacba97186d6ab3bf2078
and first_block_cache.py 3ac0d83d789ceb5bf51428d245ab2faffeaf101b (its class list: __init__.py
ff9e06997bb2); how ComfyUI's forwards call the swapped lists was read in
comfy/ldm/lightricks/model.py (005d2d3a135e: BasicTransformerBlock.forward takes `timestep`) and in
ComfyUI-derived copies of the Wan forward (`block(x, e=e0, freqs=freqs, context=context, ...)`) and
MMDiT.forward_core_with_concat (`for i in range(len(self.joint_blocks))`, text first).

Built for the families the pack patches by class that graphflow runs: FLUX (its "Flux" forward: the
first double block, then the rest), the SD UNets (its "UNetModel" forward: input blocks 0 and 1,
then the other input, middle and output blocks), LTX-Video, which the pack reaches through its
generic path (fbcache_nodes.py swaps LTXVModel's `transformer_blocks` for first_block_cache.py's
CachedTransformerBlocks; the blocks take `timestep`, so its NextDiT-style forward runs: the first
block's residual is the probe, the hidden states' residual of the other blocks is cached, the output
norm runs after) and SD3 (its `joint_blocks` swapped: the first joint block's image-token residual
is the probe, the image tokens' residual cached; the pack keeps no text-token residual, as the last
joint block is pre-only and returns no text tokens), on graphflow's block hook
(graphflow.models.block_runner; the rule in graphflow.sampling.block_cache). Wan and HiDream are
refused with why the pack fails on them (FBCACHE_PACK_FAILS). One difference on SD3 with a
ControlNet: under the pack's swap ComfyUI's block loop runs once, so only the ControlNet's first
residual is added, after the whole stack; graphflow adds each after its block, as without the cache
(residual 0 after the probe is taken, so the probe is block 0's alone as in the pack; a skip's cached
residual holds the others). On LTX-Video under a timestep mask (frames a noise mask keeps, their
tokens at sigma 0) the probe spans every token, the kept frames' too, as the pack's does: their part
changes little, so such a run skips more calls at a given threshold. object_to_patch: the pack's get_model_object name;
graphflow's MODEL has one network, so only "diffusion_model" is taken.

Not built yet (graphflow/comfy_format.py WAVESPEED_LATER): ApplyFBCacheOnModelAdvanced,
EnhancedLoadDiffusionModel, EnhancedCompileModel (their sources, misc_nodes.py and the advanced
node, were not read for this round); left out (WAVESPEED_LEFT_OUT): the Velocator nodes, which run
the closed `velocator` package.
"""

from __future__ import annotations

from graphflow.api import MODEL, ComfyAlias, Float, Int, Node, NodeInputError, Text

COMFY_PACK = "Comfy-WaveSpeed"  # the custom node pack this module's ComfyUI classes come from

FBCACHE_ARCHS = ("flux", "sd1", "sd2", "sdxl", "sdxl_refiner", "ltxv", "sd3")
# families the pack's generic path does not run, read in fbcache_nodes.py / first_block_cache.py
# against ComfyUI's models: refused with the pack's own outcome, not built differently here
FBCACHE_PACK_FAILS = {
    "wan": "the pack swaps WanModel's `blocks` for its CachedTransformerBlocks, which passes the text "
           "context as the blocks' second positional argument, where WanAttentionBlock takes `e` (also "
           "given by name): the pack stops with a TypeError on Wan",
    "hidream": "the pack's generic path looks for transformer_blocks / double_blocks / joint_blocks / blocks / "
               "layers / dit_blocks; HiDream's double_stream_blocks / single_stream_blocks are none of them, "
               "so the pack refuses HiDream (\"No supported blocks found\")",
}


class ApplyFBCacheOnModel(Node):
    """Apply First Block Cache: runs the model's first block each step; when its output changed
    less than residual_diff_threshold (relative mean absolute difference; 0: off) since the last
    step that ran every block, the other blocks are skipped and their cached residual added. Only
    between start and end (fractions of the model's sigma range) and at most
    max_consecutive_cache_hits skips in a row (-1: no limit, 0: off). For FLUX (the image tokens
    after the first double block compared), SD1 / SD2 / SDXL UNets (input block 1's residual),
    LTX-Video and SD3 / SD3.5 (the first block's residual; LTX-Video's other blocks' residual
    cached before the output norm). Wan and HiDream are refused: the pack itself fails on them.
    State is fresh each run; cond and uncond split into two calls each keep their cache."""
    category = "wavespeed"
    model: MODEL
    object_to_patch: str = Text("diffusion_model")
    residual_diff_threshold: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    start: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    end: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    max_consecutive_cache_hits: int = Int(-1, min=-1)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ApplyFBCacheOnModel",))

    def run(self):
        from graphflow.sampling.block_cache import with_first_block_cache
        from nodes.model_speed import _check_sampled_model
        _check_sampled_model(self.model, "ApplyFBCacheOnModel")
        if self.object_to_patch != "diffusion_model":
            raise NodeInputError("object_to_patch", f"{self.object_to_patch!r}: graphflow's MODEL patches its one "
                                                    "network, \"diffusion_model\"")
        if self.model.arch in FBCACHE_PACK_FAILS:
            raise NodeInputError("model", f"First Block Cache does not run on {self.model.arch} in the pack: "
                                          f"{FBCACHE_PACK_FAILS[self.model.arch]}")
        if self.model.arch not in FBCACHE_ARCHS:
            raise NodeInputError("model", f"First Block Cache is built for FLUX, SD UNets, LTX-Video and SD3 in "
                                          f"graphflow, not {self.model.arch} yet")
        if self.start > self.end:  # the pack takes it and never skips
            raise NodeInputError("end", f"{self.end} is before start {self.start}: First Block Cache would never skip")
        return with_first_block_cache(self.model, self.residual_diff_threshold, self.start, self.end,
                                      self.max_consecutive_cache_hits)
