"""Model-level sampling settings and UNet patches, as ComfyUI's ModelSamplingDiscrete,
ModelSamplingContinuousEDM, ModelSamplingContinuousV, RescaleCFG, DifferentialDiffusion, FreeU
and FreeU_V2: each returns a new MODEL sharing the UNet's weights (the input is unchanged)."""

import copy

from graphflow.api import MODEL, Bool, Choice, ComfyAlias, Float, Node, NodeInputError

SAMPLING = {"eps": "eps", "v_prediction": "v", "lcm": "lcm", "x0": "x0", "img_to_img": "img_to_img"}


def _discrete_model(model):
    """The MODEL if it is an SD1/SD2/SDXL UNet model (the nodes below change its sampling or UNet)."""
    if not hasattr(model, "with_sampling") or getattr(model, "prediction", None) == "flow":
        raise NodeInputError("model", "this node works on SD1.x / SD2.x / SDXL models; this one is a "
                                      f"{getattr(model, 'prediction', '?')!r} model (use ModelSamplingSD3 / Flux)")
    return model


def _with_options(model, **options):
    """A shallow copy of any MODEL with sampling options added (read by graphflow.sampling.pipeline)."""
    clone = copy.copy(model)
    clone.options = {**getattr(model, "options", {}), **options}
    return clone


class ModelSamplingDiscrete(Node):
    """Say how the model was trained, when the file can't: eps (most SD models), v_prediction
    (SD2-768, some fine-tunes), lcm (latent consistency models and LCM LoRAs: use the lcm sampler,
    few steps, cfg about 1-2), x0 (predicts the clean image) or img_to_img (predicts the clean
    image from the noisy latent as it is, unscaled: image-to-image models such as Lotus). zsnr
    rescales the noise schedule to zero terminal SNR, for models trained that way (usually with
    v_prediction)."""
    category = "advanced/model"
    model: MODEL
    sampling: str = Choice(list(SAMPLING), "eps")
    zsnr: bool = Bool(False)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelSamplingDiscrete",))

    def run(self):
        return _discrete_model(self.model).with_sampling(SAMPLING[self.sampling], self.zsnr)


class RescaleCFG(Node):
    """Rescale the guided prediction to the positive prompt's contrast (Lin et al. 2023), which
    keeps high cfg from burning out colours, notably with v-prediction / zero-SNR models. multiplier
    mixes the rescaled result with plain CFG (0 = plain CFG). It takes ComfyUI's single slot for
    a CFG replacement: it replaces an earlier RenormCFG / PerpNeg, and a later one replaces it."""
    category = "advanced/model"
    model: MODEL
    multiplier: float = Float(0.7, min=0.0, max=1.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("RescaleCFG",))

    def run(self):
        clone = _with_options(self.model, cfg_rescale=self.multiplier)
        if getattr(clone, "cfg_function", None) is not None:
            clone.cfg_function = None  # ComfyUI's sampler_cfg_function holds one function: the last node's
        return clone


class DifferentialDiffusion(Node):
    """Inpaint with a soft mask that says how much each pixel may change: a pixel at 0.3 is
    repainted only over the last 30% of the steps, one at 1 from the start (Levin & Fried 2023).
    Use with a grey-level noise mask (SetLatentNoiseMask, InpaintModelConditioning). strength between
    0 and 1 blends the per-step binary mask with the soft one; 0 and 1 use the binary mask alone
    (as ComfyUI)."""
    category = "advanced/model"
    model: MODEL
    strength: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("DifferentialDiffusion",), optional=("strength",))

    def run(self):
        return _with_options(self.model, differential_diffusion=self.strength)


class FreeU(Node):
    """FreeU (Si et al. 2023): amplify the UNet decoder's backbone features (b1 at the deepest
    level, b2 at the next) and damp the low frequencies of its skip connections (s1, s2), which
    often gives more detail and better structure for free. b = 1 and s = 1 change nothing."""
    category = "model_patches/unet"
    model: MODEL
    b1: float = Float(1.1, min=0.0, max=10.0, step=0.01)
    b2: float = Float(1.2, min=0.0, max=10.0, step=0.01)
    s1: float = Float(0.9, min=0.0, max=10.0, step=0.01)
    s2: float = Float(0.2, min=0.0, max=10.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("FreeU",))

    def run(self):
        from graphflow.models.freeu import apply_freeu

        return apply_freeu(_discrete_model(self.model), self.b1, self.b2, self.s1, self.s2, version=1)


class FreeU_V2(Node):
    """FreeU version 2: like FreeU, but the backbone amplification follows each pixel's mean
    activation (from 1 where it is lowest to b where it is highest), which keeps colours from
    oversaturating. b = 1 and s = 1 change nothing."""
    category = "model_patches/unet"
    model: MODEL
    b1: float = Float(1.3, min=0.0, max=10.0, step=0.01)
    b2: float = Float(1.4, min=0.0, max=10.0, step=0.01)
    s1: float = Float(0.9, min=0.0, max=10.0, step=0.01)
    s2: float = Float(0.2, min=0.0, max=10.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("FreeU_V2",))

    def run(self):
        from graphflow.models.freeu import apply_freeu

        return apply_freeu(_discrete_model(self.model), self.b1, self.b2, self.s1, self.s2, version=2)


EDM_SAMPLING = {"v_prediction": "v", "edm": "edm", "edm_playground_v2.5": "edm", "eps": "eps",
                "cosmos_rflow": "cosmos_rflow"}


class ModelSamplingContinuousEDM(Node):
    """Sample a model trained in continuous time (EDM), such as CosXL: noise levels between
    sigma_min and sigma_max, the UNet told 0.25 ln(sigma) as its timestep. sampling is what the
    model predicts: v_prediction (CosXL), edm (Karras et al.'s F-prediction), edm_playground_v2.5
    (edm with Playground v2.5's latent space: each channel standardised, as ComfyUI), eps or
    cosmos_rflow (Cosmos-Predict2's rectified flow). A Playground v2.5 checkpoint is loaded so
    already (sigmas 0.002 .. 80), from its edm_mean / edm_std marker keys."""
    category = "advanced/model"
    model: MODEL
    sampling: str = Choice(list(EDM_SAMPLING), "v_prediction")
    sigma_max: float = Float(120.0, min=0.0, max=1000.0, step=0.001)
    sigma_min: float = Float(0.002, min=0.0, max=1000.0, step=0.001)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelSamplingContinuousEDM",))

    def run(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise NodeInputError("sigma_min", f"sigma_min ({self.sigma_min}) must be above 0 and below sigma_max "
                                              f"({self.sigma_max})")
        model = _discrete_model(self.model).with_continuous_sampling(EDM_SAMPLING[self.sampling], self.sigma_min,
                                                                     self.sigma_max)
        if self.sampling == "edm_playground_v2.5":
            from graphflow.models.latent_formats import PLAYGROUND_2_5
            model.latent_format = PLAYGROUND_2_5  # a copy: the input model keeps its own
        return model


class ModelSamplingContinuousV(Node):
    """Sample a v-prediction model trained in continuous time with the UNet told the noise level's
    angle, 2/pi atan(sigma), as its timestep (Salimans & Ho 2022, appendix D): noise levels between
    sigma_min and sigma_max. For models trained that way (not for CosXL: use
    ModelSamplingContinuousEDM)."""
    category = "advanced/model"
    model: MODEL
    sampling: str = Choice(["v_prediction"], "v_prediction")
    sigma_max: float = Float(500.0, min=0.0, max=1000.0, step=0.001)
    sigma_min: float = Float(0.03, min=0.0, max=1000.0, step=0.001)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelSamplingContinuousV",))

    def run(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise NodeInputError("sigma_min", f"sigma_min ({self.sigma_min}) must be above 0 and below sigma_max "
                                              f"({self.sigma_max})")
        return _discrete_model(self.model).with_continuous_sampling("v", self.sigma_min, self.sigma_max, "atan")
