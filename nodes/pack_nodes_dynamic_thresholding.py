"""mcmonkey's sd-dynamic-thresholding ("CFG fix"), its two ComfyUI nodes under the pack's class names,
inputs and outputs, as read at mcmonkeyprojects/sd-dynamic-thresholding: dynthres_comfyui.py commit
5d63447afbc44b377f706a5eb0430f85791dcf30 (the nodes, with the "cfg equals mimic scale: plain CFG"
shortcut), dynthres_core.py commit 83f619ab3772f7905aed8c841958d02a59b45d10 (the math) and
__init__.py commit 1fd915af739859e9ec9a015a417a11d7dbeaa791 (the class names):

- DynamicThresholdingFull: every option of the pack's core.
- DynamicThresholdingSimple: mimic_scale and threshold_percentile; the rest fixed as the pack fixes
  them (constant scales, one threshold over the whole batch, MEAN, AD, no interpolation).

Both put a CFG function in the MODEL's sampler_cfg_function slot (graphflow.sampling.cfg_patches),
as the pack does in ComfyUI: it sees the positive / negative x0 predictions (the pack turns
ComfyUI's x - x0 arguments back into x0) and returns the guided x0. The step's place in the run is
the pack's: 999 minus the model sampling's timestep of the step's sigma (ComfyUI's
model_sampling.timestep: the nearest training timestep for SD1 / SDXL, sigma x 1000 for SD3-style
flow models, sigma itself for FLUX), over 998. So on FLUX every step sits at the end of the
schedule (fraction about 1), and on SD3 the first step a little before its start (-1 / 998), as in
ComfyUI. Left out: the core's experiment modes (fixed off by both nodes) and the pack's A1111
extension and UniPC sampler (not ComfyUI nodes)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from graphflow.api import MODEL, Choice, ComfyAlias, Float, Node

COMFY_PACK = "sd-dynamic-thresholding"  # the custom node pack this module's ComfyUI classes come from

MODES = ("Constant", "Linear Down", "Cosine Down", "Half Cosine Down", "Linear Up", "Cosine Up", "Half Cosine Up",
         "Power Up", "Power Down", "Linear Repeating", "Cosine Repeating", "Sawtooth")
STARTPOINTS = ("MEAN", "ZERO")
VARIABILITIES = ("AD", "STD")
MAX_STEPS = 999  # the pack's step scale: step = 999 - timestep, its fraction step / (999 - 1)
POWER_MODES = ("Power Up", "Power Down")

# each mode's multiplier of (scale - its minimum) at fraction f of the run, v = sched_val; 1.5707 and
# 6.28318 are the pack's rounded pi / 2 and 2 pi, and its "Half Cosine" takes cos(f) in radians
SCHEDULES = {
    "Constant": lambda f, v: 1.0,
    "Linear Down": lambda f, v: 1.0 - f,
    "Half Cosine Down": lambda f, v: math.cos(f),
    "Cosine Down": lambda f, v: math.cos(f * 1.5707),
    "Linear Up": lambda f, v: f,
    "Half Cosine Up": lambda f, v: 1.0 - math.cos(f),
    "Cosine Up": lambda f, v: 1.0 - math.cos(f * 1.5707),
    "Power Up": lambda f, v: math.pow(f, v),
    "Power Down": lambda f, v: 1.0 - math.pow(f, v),
    "Linear Repeating": lambda f, v: abs(0.5 - (f * v) % 1.0) * 2,  # a triangle: 1 at 0, 0 halfway, 1 again
    "Cosine Repeating": lambda f, v: math.cos(f * 6.28318 * v) * 0.5 + 0.5,
    "Sawtooth": lambda f, v: (f * v) % 1.0,
}


def scheduled_scale(scale: float, mode: str, minimum: float, fraction: float, sched_val: float,
                    mode_input: str = "mimic_mode") -> float:
    """The pack's interpret_scale: minimum + (scale - minimum) x the mode's multiplier at `fraction`
    of the run. A negative fraction to a fractional power (a Power mode at the first step of a full
    run on an SD3-style flow model) has no real value: the pack's run fails there with a math
    domain error, ours with this one, naming the node's inputs (mode_input: which mode it is)."""
    if mode in POWER_MODES and fraction < 0 and sched_val != int(sched_val):
        raise ValueError(f"DynamicThresholdingFull: {mode_input} {mode} with the fractional sched_val {sched_val} "
                         f"has no value at this step (step fraction {fraction:.4f}, before the schedule's start, "
                         "as at an SD3-style model's first step of a full-denoise run; the pack fails there too): "
                         "use a whole sched_val or another mode, or start the run later (denoise below 1)")
    return minimum + (scale - minimum) * SCHEDULES[mode](fraction, sched_val)


def step_fraction(model_sampling, sigma) -> float:
    """Where the step of `sigma` (the batch's first) lies in the pack's schedule: (999 - t) / 998,
    t the model sampling's timestep of it. One host sync."""
    timestep = float(model_sampling.timestep(sigma.reshape(-1)[:1])[0])
    return (MAX_STEPS - timestep) / (MAX_STEPS - 1)


def dynamic_threshold(cond, uncond, cfg_scale: float, mimic_scale: float, percentile: float = 1.0,
                      separate_channels: bool = True, startpoint: str = "MEAN", variability: str = "AD",
                      phi: float = 1.0):
    """The pack's dynthresh on x0 predictions [B, C, ...] (float32 inside): the CFG result at
    cfg_scale, its spread per image and channel about its mean (separate_channels) or over the whole
    batch at once, brought to the spread of the CFG result at mimic_scale.
      MEAN + AD:  centred values clamped at L = max(mimic's largest |value|, the `percentile`
                  quantile of cfg's |values|), divided by L, times mimic's largest, mean added back
      MEAN + STD: centred values / cfg's std x mimic's std, mean added back
      ZERO:       the uncentred CFG result x mimic's spread / cfg's (largest |value| and quantile for
                  AD, std for STD)
    Stds are the unbiased ones (torch's default), as the pack's; the quantile is torch.quantile's
    (graphflow.quantile: without the 2**24-value limit of older torch, which a batch of video
    latents exceeds over the whole batch). The result is then mixed with the plain CFG result:
    phi x it + (1 - phi) x CFG."""
    import torch

    from graphflow.quantile import quantile

    dtype = cond.dtype
    cond, uncond = cond.float(), uncond.float()
    guidance = cond - uncond
    mimic_target = uncond + guidance * mimic_scale
    cfg_target = uncond + guidance * cfg_scale
    mimic_flat, cfg_flat = mimic_target.flatten(2), cfg_target.flatten(2)
    cfg_means = cfg_flat.mean(dim=2, keepdim=True)
    mimic_centred = mimic_flat - mimic_flat.mean(dim=2, keepdim=True)
    cfg_centred = cfg_flat - cfg_means
    if separate_channels:  # one reference per image and channel
        if variability == "STD":
            mimic_ref, cfg_ref = mimic_centred.std(dim=2, keepdim=True), cfg_centred.std(dim=2, keepdim=True)
        else:
            mimic_ref = mimic_centred.abs().amax(dim=2, keepdim=True)
            cfg_ref = quantile(cfg_centred.abs(), percentile, dim=2, keepdim=True)
    elif variability == "STD":  # one for the whole batch
        mimic_ref, cfg_ref = mimic_centred.std(), cfg_centred.std()
    else:
        mimic_ref, cfg_ref = mimic_centred.abs().max(), quantile(cfg_centred.abs(), percentile)
    if startpoint == "ZERO":
        result = cfg_flat * (mimic_ref / cfg_ref)
    elif variability == "STD":
        result = cfg_centred / cfg_ref * mimic_ref + cfg_means
    else:
        limit = torch.maximum(mimic_ref, cfg_ref)
        result = cfg_centred.clamp(-limit, limit) / limit * mimic_ref + cfg_means
    result = result.reshape(cfg_target.shape)
    if phi != 1.0:
        result = result * phi + cfg_target * (1.0 - phi)
    return result.to(dtype)


@dataclass(frozen=True)
class Thresholding:
    """A node's settings, as the pack's DynThresh holds them."""

    mimic_scale: float
    threshold_percentile: float
    mimic_mode: str = "Constant"
    mimic_scale_min: float = 0.0
    cfg_mode: str = "Constant"
    cfg_scale_min: float = 0.0
    sched_val: float = 0.0
    separate_feature_channels: bool = False
    scaling_startpoint: str = "MEAN"
    variability_measure: str = "AD"
    interpolate_phi: float = 1.0

    def guided(self, cond, uncond, cfg_scale: float, fraction: float):
        mimic = scheduled_scale(self.mimic_scale, self.mimic_mode, self.mimic_scale_min, fraction, self.sched_val)
        cfg = scheduled_scale(cfg_scale, self.cfg_mode, self.cfg_scale_min, fraction, self.sched_val, "cfg_mode")
        return dynamic_threshold(cond, uncond, cfg, mimic, self.threshold_percentile,
                                 self.separate_feature_channels, self.scaling_startpoint, self.variability_measure,
                                 self.interpolate_phi)

    def cfg_function(self, args):
        """The sampler_cfg_function: plain CFG when the sampler's cfg is the mimic scale (the pack's
        shortcut, before any schedule), else the thresholded result. A negative prediction that
        was not evaluated (cfg 1) counts as 0, as in ComfyUI."""
        from graphflow.sampling.cfg_patches import cfg_predictions
        cond, uncond = cfg_predictions(args)
        cfg_scale = args["cond_scale"]
        if cfg_scale == self.mimic_scale:
            return uncond + (cond - uncond) * cfg_scale
        scheduled = {self.mimic_mode, self.cfg_mode} != {"Constant"}  # the step is read only when a mode needs it
        fraction = step_fraction(args["model_sampling"], args["sigma"]) if scheduled else 0.0
        return self.guided(cond, uncond, cfg_scale, fraction)

    def patch(self, model):
        from graphflow.sampling.cfg_patches import with_cfg_function
        return with_cfg_function(model, self.cfg_function)


class DynamicThresholdingFull(Node):
    """Dynamic Thresholding ("CFG fix"): lets you sample at a high CFG scale without the burnt,
    oversaturated look, by bringing each step's guided prediction to the spread it would have at
    mimic_scale (a lower CFG that looks right) while keeping the high CFG's detail and prompt
    adherence. The sampler's cfg is the real scale; equal to mimic_scale, this is plain CFG.
    threshold_percentile (AD only): the quantile of the CFG result's spread (|value - its mean|)
    used as its reference; with MEAN, values beyond the larger of it and the mimic's spread are
    clamped (1: the reference is the largest value, so none are).
    mimic_mode / cfg_mode move each scale over the run from its value toward its *_scale_min
    (Constant: no change; Down modes fall, Up modes rise, Repeating / Sawtooth cycle sched_val
    times, Power modes use sched_val as the exponent). separate_feature_channels: a spread per
    latent channel and image (else one for the batch). scaling_startpoint: rescale about the mean
    (MEAN) or about zero (ZERO; with AD and a low threshold_percentile the factor mimic / threshold
    can get huge, as in the pack). variability_measure: largest absolute value (AD) or standard
    deviation (STD). interpolate_phi: 1 the thresholded result, 0 plain CFG, between a blend.
    The step's place in the run is the pack's (999 - the model's timestep) / 998: on FLUX every
    step counts as the end of the run, on SD3 the first step of a full-denoise run just before its
    start, where a Power mode with a fractional sched_val has no value: as the pack's, such a run
    stops there with an error (img2img, a later start or cfg equal to mimic_scale run). Replaces
    the CFG combination (the last such patch wins, as in ComfyUI)."""
    category = "advanced/mcmonkey"
    model: MODEL
    mimic_scale: float = Float(7.0, min=0.0, max=100.0, step=0.5)
    threshold_percentile: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    mimic_mode: str = Choice(MODES, "Constant")
    mimic_scale_min: float = Float(0.0, min=0.0, max=100.0, step=0.5)
    cfg_mode: str = Choice(MODES, "Constant")
    cfg_scale_min: float = Float(0.0, min=0.0, max=100.0, step=0.5)
    sched_val: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    separate_feature_channels: str = Choice(("enable", "disable"), "enable")
    scaling_startpoint: str = Choice(STARTPOINTS, "MEAN")
    variability_measure: str = Choice(VARIABILITIES, "AD")
    interpolate_phi: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("DynamicThresholdingFull",), output_names=("MODEL",))

    def run(self):
        return Thresholding(self.mimic_scale, self.threshold_percentile, self.mimic_mode, self.mimic_scale_min,
                            self.cfg_mode, self.cfg_scale_min, self.sched_val,
                            self.separate_feature_channels == "enable", self.scaling_startpoint,
                            self.variability_measure, self.interpolate_phi).patch(self.model)


class DynamicThresholdingSimple(Node):
    """Dynamic Thresholding ("CFG fix"), simple: sample at a high CFG scale without burning the
    image by bringing each step's guided prediction to the spread of the CFG result at
    mimic_scale (a lower CFG that looks right). threshold_percentile: the quantile of the CFG
    result's spread (|value - its mean|) used as its reference; values beyond the larger of it and
    the mimic's spread are clamped (1: the reference is the largest value, so none are). Constant
    scales, one spread for the whole batch measured as the largest absolute value about the mean
    (DynamicThresholdingFull has the other options). With the sampler's cfg equal to mimic_scale
    this is plain CFG."""
    category = "advanced/mcmonkey"
    model: MODEL
    mimic_scale: float = Float(7.0, min=0.0, max=100.0, step=0.5)
    threshold_percentile: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("DynamicThresholdingSimple",), output_names=("MODEL",))

    def run(self):
        return Thresholding(self.mimic_scale, self.threshold_percentile).patch(self.model)
