"""MODEL patches that change how the guided prediction is formed (graphflow.sampling.cfg_patches,
graphflow.sampling.skip_layer_guidance): ComfyUI's APG, Epsilon Scaling, CFG-Zero*, CFGNorm, TCFG,
Mahiro, FreSca, RenormCFG, PerpNeg and the Skip Layer Guidance nodes."""

from __future__ import annotations

import logging

from graphflow.api import CONDITIONING, MODEL, ComfyAlias, Float, Int, Node, Text


class AdaptiveProjectedGuidance(Node):
    """Adaptive Projected Guidance (Sadat et al. 2024): high CFG without oversaturation. The guidance
    (positive minus negative prediction) is limited to an L2 norm of norm_threshold (0: no limit),
    optionally averaged over steps (momentum: a running sum with that weight on the past; 0 off),
    and its part along the positive prediction, which oversaturates, is weighted by eta (0 removes
    it). Result: positive + cfg * guidance, so with eta 1 and no threshold or momentum it is plain CFG
    at cfg + 1 (as ComfyUI's). It changes the positive prediction before the CFG combination, so
    RescaleCFG and the other guidance patches work on its result (as in ComfyUI)."""
    category = "sampling/custom_sampling"
    model: MODEL
    eta: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    norm_threshold: float = Float(5.0, min=0.0, max=50.0, step=0.1)
    momentum: float = Float(0.0, min=-5.0, max=1.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("APG",))

    def run(self):
        from graphflow.sampling.cfg_patches import adaptive_projected_guidance
        return adaptive_projected_guidance(self.model, self.eta, self.norm_threshold, self.momentum)


class EpsilonScaling(Node):
    """Epsilon Scaling (Ning et al. 2023): divides the model's guided noise estimate by
    scaling_factor at every step, countering the exposure bias of sampling (images come out less
    washed out). 1 changes nothing; the paper's values are about 1.005 to 1.01."""
    category = "model_patches/unet"
    model: MODEL
    scaling_factor: float = Float(1.005, min=0.5, max=1.5, step=0.001)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("Epsilon Scaling",))

    def run(self):
        from graphflow.sampling.cfg_patches import epsilon_scaling
        return epsilon_scaling(self.model, self.scaling_factor)


# ---- Skip Layer Guidance ---------------------------------------------------------------------------

def _layers(model, double_text: str, single_text: str, double_input: str, single_input: str):
    """The block indices; a model without such blocks, or an index past them, skips nothing there (as
    ComfyUI's block replacements reach no block: its guidance term is then zero), with a warning."""
    from graphflow.sampling.skip_layer_guidance import block_lists, check_layers, parse_layers
    double, single = parse_layers(double_text), parse_layers(single_text)
    unet = getattr(model, "unet", None)
    problem = check_layers(unet, double, single)
    if problem is not None:
        doubles, _ = block_lists(unet)
        name = single_input if doubles and problem.startswith("single") else double_input
        logging.getLogger(__name__).warning("%s: %s; nothing is skipped there", name, problem)
    return double, single


class SkipLayerGuidanceSD3(Node):
    """Skip Layer Guidance for SD3 / SD3.5: each step between start_percent and end_percent of the
    run also predicts the positive prompt with the listed transformer blocks left out (e.g. "7, 8,
    9") and pushes the result away from that prediction by `scale`: better anatomy and structure.
    One more model evaluation per step inside the window."""
    category = "advanced/guidance"
    model: MODEL
    layers: str = Text("7, 8, 9")
    scale: float = Float(3.0, min=0.0, max=10.0, step=0.1)
    start_percent: float = Float(0.01, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(0.15, min=0.0, max=1.0, step=0.001)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("SkipLayerGuidanceSD3",))

    def run(self):
        from graphflow.sampling.skip_layer_guidance import skip_layer_guidance
        double, _ = _layers(self.model, self.layers, "", "layers", "layers")
        return skip_layer_guidance(self.model, double, [], self.scale, self.start_percent, self.end_percent)


class SkipLayerGuidanceDiT(Node):
    """Skip Layer Guidance for diffusion transformers (SD3 / SD3.5, FLUX, Chroma, Wan, LTX-Video,
    Mochi, Qwen-Image): like SkipLayerGuidanceSD3, with FLUX's double-stream and single-stream
    blocks listed apart (SD3's joint blocks and Wan's, LTX-Video's, Mochi's and Qwen-Image's
    blocks are double blocks; they have no single ones, so single_layers is ignored there).
    rescaling_scale above 0 pulls the result's overall standard deviation towards the positive
    prediction's (0 off, 1 fully)."""
    category = "advanced/guidance"
    model: MODEL
    double_layers: str = Text("7, 8, 9")
    single_layers: str = Text("7, 8, 9")
    scale: float = Float(3.0, min=0.0, max=10.0, step=0.1)
    start_percent: float = Float(0.01, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(0.15, min=0.0, max=1.0, step=0.001)
    rescaling_scale: float = Float(0.0, min=0.0, max=10.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("SkipLayerGuidanceDiT",))

    def run(self):
        from graphflow.sampling.skip_layer_guidance import skip_layer_guidance
        double, single = _layers(self.model, self.double_layers, self.single_layers, "double_layers", "single_layers")
        return skip_layer_guidance(self.model, double, single, self.scale, self.start_percent, self.end_percent,
                                   self.rescaling_scale)


class SkipLayerGuidanceDiTSimple(Node):
    """Skip Layer Guidance, simple version: between start_percent and end_percent the negative
    prompt is predicted with the listed blocks left out, inside ordinary CFG (no extra scale).
    Needs cfg above 1 (a negative prediction); inside the window the positive and negative run as
    two model calls instead of one batched call."""
    category = "advanced/guidance"
    model: MODEL
    double_layers: str = Text("7, 8, 9")
    single_layers: str = Text("7, 8, 9")
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("SkipLayerGuidanceDiTSimple",))

    def run(self):
        from graphflow.sampling.skip_layer_guidance import skip_layer_uncond
        double, single = _layers(self.model, self.double_layers, self.single_layers, "double_layers", "single_layers")
        return skip_layer_uncond(self.model, double, single, self.start_percent, self.end_percent)


# ---- CFG reshaping -----------------------------------------------------------------------------------

class CFGZeroStar(Node):
    """CFG-Zero* (Fan et al. 2025): before guidance, the negative prompt's prediction is scaled by
    the factor that best matches it to the positive one (per image), which keeps flow models
    (SD3, FLUX, Wan) from overshooting early in sampling. No settings; at cfg 1 nothing changes."""
    category = "advanced/guidance"
    model: MODEL
    outputs = {"patched_model": MODEL}
    comfy = ComfyAlias(("CFGZeroStar",))

    def run(self):
        from graphflow.sampling.cfg_patches import cfg_zero_star
        return cfg_zero_star(self.model)


class CFGNorm(Node):
    """Caps, at every pixel, the guided prediction's length (over channels) at the positive
    prediction's, then multiplies by strength: tames high CFG."""
    category = "advanced/guidance"
    model: MODEL
    strength: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"patched_model": MODEL}
    comfy = ComfyAlias(("CFGNorm",))

    def run(self):
        from graphflow.sampling.cfg_patches import cfg_norm
        return cfg_norm(self.model, self.strength)


class TCFG(Node):
    """Tangential Damping CFG (Kwon et al. 2025): the negative prompt's noise estimate keeps only
    its part along the main direction it shares with the positive one, so guidance pushes away
    from less off-manifold noise. No settings; does nothing at cfg 1."""
    category = "advanced/guidance"
    model: MODEL
    outputs = {"patched_model": MODEL}
    comfy = ComfyAlias(("TCFG",))

    def run(self):
        from graphflow.sampling.cfg_patches import tcfg
        return tcfg(self.model)


class Mahiro(Node):
    """Mahiro guidance: mixes the CFG result with the positive prediction times cfg, weighted by
    how much the negative agrees with the result, so guidance follows the positive prompt's
    direction more than its difference from the negative."""
    category = "advanced/guidance"
    model: MODEL
    outputs = {"patched_model": MODEL}
    comfy = ComfyAlias(("Mahiro",))

    def run(self):
        from graphflow.sampling.cfg_patches import mahiro
        return mahiro(self.model)


class FreSca(Node):
    """FreSca (Huang et al. 2025): scales the guidance (positive minus negative prediction) in
    frequency space, scale_low for frequencies within freq_cutoff indices of the spectrum's centre
    and scale_high above: above 1 for high frequencies sharpens detail. Both 1 is plain CFG; at
    cfg 1 (no negative prediction) it does nothing. As ComfyUI's, on a video latent the frames
    beyond freq_cutoff of the middle frame (and an odd count's last frame) get scale_high at all
    frequencies."""
    category = "advanced/guidance"
    model: MODEL
    scale_low: float = Float(1.0, min=0.0, max=10.0, step=0.01,
                             description="Scaling factor for low-frequency components")
    scale_high: float = Float(1.25, min=0.0, max=10.0, step=0.01,
                              description="Scaling factor for high-frequency components")
    freq_cutoff: int = Int(20, min=1, max=10000, step=1,
                           description="Number of frequency indices around center to consider as low-frequency")
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("FreSca",))

    def run(self):
        from graphflow.sampling.cfg_patches import fresca
        return fresca(self.model, self.scale_low, self.scale_high, self.freq_cutoff)


class RenormCFG(Node):
    """Renormalised CFG (Lumina-Image 2.0): the guided prediction's length per image is capped at
    renorm_cfg times the positive prediction's (0: no cap); from sigma cfg_trunc up, the positive
    prediction alone is used (the default 100 never truncates). Replaces the CFG combination."""
    category = "advanced/model"
    model: MODEL
    cfg_trunc: float = Float(100.0, min=0.0, max=100.0, step=0.01)
    renorm_cfg: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("RenormCFG",))

    def run(self):
        from graphflow.sampling.cfg_patches import renorm_cfg
        return renorm_cfg(self.model, self.cfg_trunc, self.renorm_cfg)


class PerpNeg(Node):
    """Perp-Neg (Armandpour et al. 2023) as a model patch: the negative prompt pushes away only
    with its part perpendicular to the positive's guidance, both measured from an empty prompt's
    prediction (empty_conditioning, one more model evaluation per step). neg_scale weighs the
    negative. PerpNegGuider does the same in one batched call."""
    category = "advanced/guidance"
    model: MODEL
    empty_conditioning: CONDITIONING
    neg_scale: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("PerpNeg",))

    def run(self):
        from graphflow.sampling.cfg_patches import perp_neg
        return perp_neg(self.model, self.empty_conditioning, self.neg_scale)
