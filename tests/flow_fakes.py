"""A stand-in flow MODEL (the SD3 / FLUX contract: model(x, sigma, context, y, guidance=None) ->
velocity, arch "sd3" | "flux", prediction "flow", latent_format, guidance_embed) around a
closed-form velocity, recording every call."""

import torch

from graphflow.models.latent_formats import FLUX, SD3


class FakeFlowModel:
    def __init__(self, predict_x0, arch="sd3", guidance_embed=False, dtype=torch.float32):
        """predict_x0(x, sigma [B], context, y, guidance) -> the x0 the model should imply; the
        model returns the velocity (x - x0) / sigma, so D(x; sigma) = x0 exactly."""
        self.predict_x0 = predict_x0
        self.arch = arch
        self.prediction = "flow"
        self.latent_format = SD3 if arch == "sd3" else FLUX
        self.in_channels = 16
        self.adm_channels = 0
        self.guidance_embed = guidance_embed
        self.device = torch.device("cpu")
        self.dtype = dtype
        self.calls = []

    def __call__(self, x, sigma, context=None, y=None, guidance=None):
        self.calls.append({"x": x.clone(), "sigma": sigma.clone(), "context": context, "y": y, "guidance": guidance})
        x0 = self.predict_x0(x.float(), sigma.float(), context, y, guidance)
        s = sigma.float().reshape(-1, 1, 1, 1)
        return ((x.float() - x0) / s).to(x.dtype)


def constant_x0(value):
    def predict(x, sigma, context, y, guidance):
        return torch.full_like(x, value)
    return predict


def gaussian_x0(mu, s):
    """E[x0 | x_t] for data N(mu, s^2) under x_t = (1 - sigma) x0 + sigma eps: the exact denoiser."""
    def predict(x, sigma, context, y, guidance):
        sigma = sigma.reshape(-1, 1, 1, 1)
        a = 1 - sigma
        return mu + a * s ** 2 / (a ** 2 * s ** 2 + sigma ** 2) * (x - a * mu)
    return predict
