"""MODEL patches that change how the guided prediction is formed (graphflow.sampling.cfg_patches):
ComfyUI's APG and Epsilon Scaling."""

from __future__ import annotations

from graphflow.api import MODEL, ComfyAlias, Float, Node


class AdaptiveProjectedGuidance(Node):
    """Adaptive Projected Guidance (Sadat et al. 2024): high CFG without oversaturation. The guidance
    (positive minus negative prediction) is limited to an L2 norm of norm_threshold (0: no limit),
    optionally averaged over steps (momentum: a running sum with that weight on the past; 0 off),
    and its part along the positive prediction, which oversaturates, is weighted by eta (0 removes
    it). Result: positive + cfg * guidance, so with eta 1 and no threshold or momentum it is plain CFG
    at cfg + 1 (as ComfyUI's). Replaces the CFG combination: apply it before other guidance patches."""
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
