"""comfyanonymous' ComfyUI_experiments (ComfyUI's author's own pack) built in under the pack's class
names, inputs, defaults, ranges and outputs, read at comfyanonymous/ComfyUI_experiments:
__init__.py 4eb1a327ab596c43491c4ab1c45132847978e520, reference_only.py
21f3565a8f7a7851426c56fa426ac3a7c5ebffff, sampler_rescalecfg.py e881b1d93b9d37501e18138d08378f1a30a70ed0
(its sampler_cfg_function taking ComfyUI's args dict), sampler_tonemap.py
2c6588ead46db4be64e64c42414d784616664b52, sampler_tonemap_rescalecfg.py
4eb1a327ab596c43491c4ab1c45132847978e520, advanced_model_merging.py
3cc3eb53d93cc1c6c763d3e536552b6169ae0095, sdxl_model_merging.py c3eac46f33a9c9e02e04626e878c5582837c4ed0
and workflows/reference_only_simple.json 503fefdf65da57af79e98811db1b3c19def09685.

Nodes: ReferenceOnlySimple; the three CFG functions RescaleClassifierFreeGuidanceTest,
ModelSamplerTonemapNoiseTest and TonemapNoiseWithRescaleCFG; the block merges ModelMergeBlockNumber,
ModelMergeSDXLTransformers and ModelMergeSDXLDetailedTransformers. That is every class the pack
registers but its ModelMergeSDXL: ComfyUI's core registers a ModelMergeSDXL too, with the same
inputs, and the core's class wins when ComfyUI loads (a custom node does not replace a core name),
so a save's ModelMergeSDXL is the core's node, ours in nodes/model_merging.py; it is not redefined.

The CFG functions sit in the MODEL's sampler_cfg_function slot (graphflow.sampling.cfg_patches; the
last such patch wins, as in ComfyUI). ComfyUI hands that function cond = x - D_cond and
uncond = x - D_uncond (D: the denoised predictions, x: the noisy latent) and takes x - its result as
the guided prediction; ours get the predictions, so each is computed in ComfyUI's terms: standard
deviations and norms are of x - D, as in the pack. At cfg 1 the negative is not evaluated and its
prediction counts as 0 (uncond = x), as in ComfyUI."""

from __future__ import annotations

from graphflow.api import LATENT, MODEL, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size

from nodes.latent_operations import tonemap_reinhard
from nodes.model_merging import _SD1_BLOCKS, _block_merge_node

COMFY_PACK = "ComfyUI_experiments"  # the custom node pack this module's ComfyUI classes come from
CATEGORY = "custom_node_experiments"


# -- the CFG functions, in ComfyUI's terms (cond / uncond are x - D) -------------------------------


def _rescaled_to_positive(result, cond, multiplier: float):
    """A CFG result brought to the positive's per-image standard deviation (unbiased, over dims
    1-3), blended with the result as it is by multiplier (1: rescaled, 0: unchanged)."""
    import torch
    ro_pos = torch.std(cond, dim=(1, 2, 3), keepdim=True)
    ro_cfg = torch.std(result, dim=(1, 2, 3), keepdim=True)
    return multiplier * (result * (ro_pos / ro_cfg)) + (1.0 - multiplier) * result


def rescale_cfg(cond, uncond, cond_scale: float, multiplier: float):
    """RescaleClassifierFreeGuidanceTest (Lin et al. 2023, arXiv:2305.08891, as the pack does it on
    x - D, not in v-space like ComfyUI's core RescaleCFG): plain CFG rescaled to the positive's
    per-image standard deviation, blended with plain CFG by multiplier."""
    return _rescaled_to_positive(uncond + cond_scale * (cond - uncond), cond, multiplier)


def tonemap_noise(cond, uncond, cond_scale: float, multiplier: float):
    """ModelSamplerTonemapNoiseTest: the guidance cond - uncond tonemapped per pixel as
    LatentOperationTonemapReinhard does (nodes/latent_operations.py), but with top = (mean + 3 std
    of the lengths) x multiplier rather than 5 std; the result is uncond + tonemapped x cond_scale."""
    return uncond + tonemap_reinhard(cond - uncond, multiplier, spread=3.0) * cond_scale


def tonemap_rescale_cfg(cond, uncond, cond_scale: float, tonemap_multiplier: float, rescale_multiplier: float):
    """TonemapNoiseWithRescaleCFG: tonemap_noise's result rescaled to the positive's standard
    deviation as rescale_cfg does with plain CFG, blended with it by rescale_multiplier."""
    return _rescaled_to_positive(tonemap_noise(cond, uncond, cond_scale, tonemap_multiplier), cond,
                                 rescale_multiplier)


def comfy_cfg_function(guide):
    """Our cfg_function (denoised predictions in, guided denoised out) for one of ComfyUI's
    sampler_cfg_function bodies guide(cond, uncond, cond_scale), which take x - D and whose result
    ComfyUI subtracts from x."""
    def cfg_function(args):
        from graphflow.sampling.cfg_patches import cfg_predictions
        cond, uncond = cfg_predictions(args)
        x = args["x"]
        return x - guide(x - cond, x - uncond, args["cond_scale"])
    return cfg_function


def _with_guide(model, guide):
    from graphflow.sampling.cfg_patches import with_cfg_function
    if not hasattr(model, "unet"):
        raise NodeInputError("model", "expected a diffusion MODEL")
    return with_cfg_function(model, comfy_cfg_function(guide))


def _tonemap_top(multiplier: float, node: str, input_name: str) -> None:
    """Called by the installed cfg function, not when the node runs: a later CFG node (RescaleCFG)
    takes the one slot in ComfyUI, so a 0 that is never sampled is harmless there and runs here.
    Sampled, top = 0 divides by zero (the pack's run gives NaN latents, a black picture)."""
    if multiplier <= 0.0:
        raise NodeInputError("model", f"{node}'s {input_name} is 0: at 0 the tonemap divides by zero (the pack's "
                                      "output is NaN, a black picture); set it above 0 (lower values allow "
                                      "higher CFG)")


class RescaleClassifierFreeGuidanceTest(Node):
    """Rescale Classifier-Free Guidance (Lin et al. 2023, "Common Diffusion Noise Schedules and
    Sample Steps are Flawed", arXiv:2305.08891) as the pack does it: each step's CFG result
    is brought to the standard deviation of the positive prediction, which keeps high CFG from
    over-saturating; multiplier blends the rescaled result (1) with plain CFG (0). Unlike the core
    RescaleCFG node it works on ComfyUI's x - denoised values rather than in v-space, as the pack
    does. Replaces the CFG combination (the last such patch wins)."""
    category = CATEGORY
    model: MODEL
    multiplier: float = Float(0.7, min=0.0, max=1.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("RescaleClassifierFreeGuidanceTest",), output_names=("MODEL",))

    def run(self):
        multiplier = self.multiplier
        return _with_guide(self.model, lambda c, u, s: rescale_cfg(c, u, s, multiplier))


class ModelSamplerTonemapNoiseTest(Node):
    """Tonemaps the guidance (the positive minus the negative prediction) with Reinhard's curve
    so that a high CFG does not break the image: per pixel, the guidance's length over the
    channels is compressed towards a ceiling of (mean + 3 standard deviations of the lengths) x
    multiplier, keeping its direction; the result is scaled by the CFG as usual. Lower the
    multiplier to use a higher CFG. Sampling with multiplier 0 is an error (the pack divides by zero
    there: a black picture); a later node that replaces the CFG function (RescaleCFG) makes a 0
    harmless, as in ComfyUI. Replaces the CFG combination (the last such patch wins)."""
    category = CATEGORY
    model: MODEL
    multiplier: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelSamplerTonemapNoiseTest",), output_names=("MODEL",))

    def run(self):
        multiplier = self.multiplier

        def guide(cond, uncond, cond_scale):
            _tonemap_top(multiplier, "ModelSamplerTonemapNoiseTest", "multiplier")
            return tonemap_noise(cond, uncond, cond_scale, multiplier)
        return _with_guide(self.model, guide)


class TonemapNoiseWithRescaleCFG(Node):
    """ModelSamplerTonemapNoiseTest's tonemapped guidance (tonemap_multiplier) followed by
    RescaleClassifierFreeGuidanceTest's rescale to the positive prediction's standard deviation
    (rescale_multiplier: 1 the rescaled result, 0 the tonemapped one). Sampling with
    tonemap_multiplier 0 is an error (the pack divides by zero there: a black picture); a later
    node that replaces the CFG function (RescaleCFG) makes a 0 harmless, as in ComfyUI. Replaces
    the CFG combination (the last such patch wins)."""
    category = CATEGORY
    model: MODEL
    tonemap_multiplier: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    rescale_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("TonemapNoiseWithRescaleCFG",), output_names=("MODEL",))

    def run(self):
        tonemap, rescale = self.tonemap_multiplier, self.rescale_multiplier

        def guide(cond, uncond, cond_scale):
            _tonemap_top(tonemap, "TonemapNoiseWithRescaleCFG", "tonemap_multiplier")
            return tonemap_rescale_cfg(cond, uncond, cond_scale, tonemap, rescale)
        return _with_guide(self.model, guide)


# -- ReferenceOnlySimple ---------------------------------------------------------------------------


REFERENCE_MASK_SIDE = 64  # the pack's noise mask is 64 x 64 whatever the latent's size (resized when sampled)


def reference_patch(batch: int):
    """A self-attention (attn1) patch, BasicTransformerBlock.self_attention_patches' form, that
    makes every image attend to the first image of its group of `batch` (the reference) besides
    itself: the keys / values become the image's own tokens followed by the reference's (the
    reference's own: its tokens twice, which attends as once). The batch the UNet runs is whole
    groups (the positive's images, the negative's), each starting with the reference. A patch
    before it that changed the token count (ToMe, HyperTile), or a sampled batch that is not whole
    groups (another LATENT than the node's), is an error naming the node (the pack's IndexError)."""
    def patch(queries, keys, size):
        tokens = queries.shape[1]
        if keys.shape[1] != tokens or keys.shape[0] != queries.shape[0]:
            raise NodeInputError("model", f"ReferenceOnlySimple's attention patch got {queries.shape[0]} x {tokens} "
                                          f"query tokens but {keys.shape[0]} x {keys.shape[1]} key tokens: a patch "
                                          "applied to the model before it (ToMe, HyperTile) changed them; apply "
                                          "that one after ReferenceOnlySimple, or leave it out")
        if queries.shape[0] % batch:
            raise NodeInputError("model", f"ReferenceOnlySimple's attention patch expects the sampled batch to be "
                                          f"whole groups of {batch} (the reference and batch_size new images), got "
                                          f"{queries.shape[0]}: sample ReferenceOnlySimple's own LATENT")
        keys = keys.repeat(1, 2, 1)
        for first in range(0, queries.shape[0], batch):
            keys[first + 1:first + batch, tokens:] = queries[first]
        return queries, keys, size, _unchanged

    return patch


def _unchanged(out):
    return out


def with_reference_attention(model, batch: int):
    """The MODEL with reference_patch(batch) on each of its UNet's transformer blocks (shallow copies:
    the input MODEL is unchanged); None when it has none (not a UNet model)."""
    from graphflow.models.lora import copied_modules
    from graphflow.models.unet import BasicTransformerBlock
    paths = [path for path, m in model.unet.named_modules() if isinstance(m, BasicTransformerBlock)]
    if not paths:
        return None
    unet, blocks = copied_modules(model.unet, paths)
    for block in blocks.values():
        block.self_attention_patches = (*block.self_attention_patches, reference_patch(batch))
    return model.with_unet(unet)


class ReferenceOnlySimple(Node):
    """Reference-only: the images sampled follow the look of a reference picture (encode it with
    VAEEncode) without a ControlNet. The LATENT out is the reference's latent followed by
    batch_size empty latents, with a noise mask that keeps the reference (0) and samples the rest
    (1); the MODEL's self-attention makes each sampled image attend to the reference's tokens as
    well as its own. Sample it with a KSampler at denoise 1; the first image out is the
    reference, the others are the new ones (crop them with LatentFromBatch / ImageFromBatch).
    As the pack: only the reference's first image is the reference. A reference LATENT of several
    images (a warning says so) is put first whole, but the noise mask has 1 + batch_size entries
    and is cycled over the longer batch (ComfyUI's repeat_to_batch_size): every latent at a multiple
    of 1 + batch_size keeps what it holds (masked 0: a new image there stays empty), the others are
    sampled (a reference image there is sampled over); use one reference image (LatentFromBatch).
    A patch that changes the self-attention's tokens (ToMe, HyperTile) goes after this node on
    the model, and the KSampler must sample this node's LATENT (whole groups of reference and new
    images): otherwise sampling stops with an error naming this node. The reference's own noise
    mask and batch indices are not carried; on a model without UNet transformer blocks (FLUX, SD3) the attention is left unchanged (a warning says so)."""
    category = CATEGORY
    model: MODEL
    reference: LATENT
    batch_size: int = Int(1, min=1, max=64)
    outputs = {"model": MODEL, "latent": LATENT}
    comfy = ComfyAlias(("ReferenceOnlySimple",), output_names=("MODEL", "LATENT"))

    @classmethod
    def estimate(cls, widgets, inputs):
        reference, batch_size = inputs.get("reference"), widgets.get("batch_size")
        if reference is None or not isinstance(batch_size, int):
            return Estimate(None)
        return Estimate(Size(reference.batch + batch_size, reference.height, reference.width))

    def run(self):
        import torch

        from nodes.latent import _samples
        reference = _samples(self.reference, "reference")
        if not hasattr(self.model, "unet"):
            raise NodeInputError("model", "expected a diffusion MODEL")
        empty = torch.zeros((self.batch_size, *reference.shape[1:]), dtype=reference.dtype, device=reference.device)
        batch = self.batch_size + reference.shape[0]
        model = with_reference_attention(self.model, batch)
        if model is None:
            from graphflow.api import warn
            warn("ReferenceOnlySimple: this model has no UNet self-attention to patch (as in ComfyUI, the "
                 "reference latent is still put first in the batch, but does not guide the others)")
            model = self.model
        if reference.shape[0] > 1:
            from graphflow.api import warn
            kept = [i for i in range(batch) if i % (1 + self.batch_size) == 0]
            warn(f"ReferenceOnlySimple: the reference LATENT has {reference.shape[0]} images; only the first is "
                 f"the reference and, as in ComfyUI, the mask of {1 + self.batch_size} entries cycles over the "
                 f"{batch} latents: latents {kept} (from 0) keep what they hold (a new image there stays empty), "
                 "the others are sampled (a reference image there is sampled over); pick one reference image "
                 "with LatentFromBatch")
        side = REFERENCE_MASK_SIDE
        mask = torch.cat((torch.zeros((1, side, side)), torch.ones((self.batch_size, side, side))))
        return model, {"samples": torch.cat((reference, empty)), "noise_mask": mask}


# -- block merges ----------------------------------------------------------------------------------


def _merge_node(name: str, doc: str, prefixes: list[str]) -> type[Node]:
    """nodes/model_merging.py's per-block merge under the pack's class name, category and output
    name (ComfyUI's ModelMergeBlocks, which the pack's nodes subclass)."""
    return _block_merge_node(name, doc, prefixes, (name,), category="advanced/model_merging", module=__name__,
                             output_names=("MODEL",))


# the real SDXL UNet's transformer depths: input block -> depth, output block's mirror (8 - i) -> depth
_SDXL_INPUT_TRANSFORMERS = {4: 2, 5: 2, 7: 10, 8: 10}
_SDXL_OUTPUT_TRANSFORMERS = {3: 2, 4: 2, 5: 2, 6: 10, 7: 10, 8: 10}
SDXL_TRANSFORMER_PARTS = ("norm1", "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out", "ff.net", "norm2",
                          "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out", "norm3")


def sdxl_transformer_prefixes(parts: tuple[str, ...] | None) -> list[str]:
    """The pack's ratio names for the SDXL transformer merges, in its order: per block its ResBlock
    (.0.) and, where it has one, its transformer (.1.) and each transformer block (a trailing '.'),
    or each of their parts (`parts`, no trailing '.'); the middle block's three parts likewise."""
    def blocks(path: str, depth: int) -> list[str]:
        names = [f"{path}.transformer_blocks.{j}." for j in range(depth)] if parts is None else \
            [f"{path}.transformer_blocks.{j}.{part}" for j in range(depth) for part in parts]
        return names

    prefixes = ["time_embed.", "label_emb."]
    for i in range(9):
        prefixes.append(f"input_blocks.{i}.0.")
        if i in _SDXL_INPUT_TRANSFORMERS:
            prefixes += [f"input_blocks.{i}.1.", *blocks(f"input_blocks.{i}.1", _SDXL_INPUT_TRANSFORMERS[i])]
    for i in range(3):
        prefixes.append(f"middle_block.{i}.")
        if i == 1:
            prefixes += blocks("middle_block.1", 10)
    for i in range(9):
        prefixes.append(f"output_blocks.{i}.0.")
        if 8 - i in _SDXL_OUTPUT_TRANSFORMERS:
            prefixes += [f"output_blocks.{i}.1.", *blocks(f"output_blocks.{i}.1", _SDXL_OUTPUT_TRANSFORMERS[8 - i])]
    return prefixes + ["out."]


ModelMergeBlockNumber = _merge_node(
    "ModelMergeBlockNumber", """Merge two models with one ratio per numbered UNet block (ratio 1 = model1's
    weights): model1 * ratio + model2 * (1 - ratio), by the longest ratio name a weight's name starts
    with (time_embed.'s ratio for a weight under none). The names are SD1 / SD2's: 12 input blocks,
    the 3 parts of the middle block, 12 output blocks (the core's ModelMergeSD1 has the same).""",
    _SD1_BLOCKS)
ModelMergeSDXLTransformers = _merge_node(
    "ModelMergeSDXLTransformers", """Merge two SDXL models with one ratio per UNet block part (ratio 1 =
    model1's weights): model1 * ratio + model2 * (1 - ratio), by the longest ratio name a weight's
    name starts with (time_embed.'s ratio for a weight under none). Each of the 9 input and 9 output
    blocks has a ratio for its ResBlock (.0.) and, where it has one, its transformer (.1., its norms
    and projections) and each of the transformer's blocks; the middle block's 10 transformer blocks
    likewise.""", sdxl_transformer_prefixes(None))
ModelMergeSDXLDetailedTransformers = _merge_node(
    "ModelMergeSDXLDetailedTransformers", """ModelMergeSDXLTransformers with a ratio for each part of each
    transformer block instead of one per block: norm1, attn1.to_q / to_k / to_v / to_out (the
    self-attention), ff.net (the feed-forward), norm2, attn2.to_q / to_k / to_v / to_out (the
    cross-attention with the prompt) and norm3; model1 * ratio + model2 * (1 - ratio), by the
    longest ratio name a weight's name starts with (time_embed.'s ratio for a weight under none).""",
    sdxl_transformer_prefixes(SDXL_TRANSFORMER_PARTS))
