"""A stand-in MODEL for sampling tests: the CONTRACTS interface (unet(x, t, context, y),
prediction, latent_format, in_channels, adm_channels, beta_schedule, encode_adm, device, dtype)
around a closed-form prediction function, recording every UNet call."""

from types import SimpleNamespace

import torch

from graphflow.models.latent_formats import SD1
from graphflow.sampling import DiscreteSchedule

SD = DiscreteSchedule.from_betas()


class FakeUNet(torch.nn.Module):
    def __init__(self, predict, dtype=torch.float32):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1, dtype=dtype))  # gives the module a dtype
        self.predict = predict
        self.calls = []

    def forward(self, x, t, context=None, y=None):
        self.calls.append({"x": x.clone(), "t": t.clone(), "context": context, "y": y})
        return self.predict(x, t, context, y)


class FakeModel:
    def __init__(self, predict, prediction="eps", latent_format=SD1, in_channels=4, adm_channels=0,
                 dtype=torch.float32):
        self.unet = FakeUNet(predict, dtype)
        self.prediction = prediction
        self.latent_format = latent_format
        self.in_channels = in_channels
        self.adm_channels = adm_channels
        self.beta_schedule = SimpleNamespace(linear_start=0.00085, linear_end=0.012, num_timesteps=1000,
                                             kind="scaled_linear")
        self.device = torch.device("cpu")
        self.dtype = dtype
        self.adm_requests = []

    def encode_adm(self, options, width_px, height_px, negative=False):
        self.adm_requests.append((dict(options), width_px, height_px, negative))
        y = torch.zeros(1, self.adm_channels)
        y[0, :4] = torch.tensor([width_px, height_px, float(negative), options.get("tag", 0.0)])
        return y


def context_eps(x_in, t, context, y):
    """eps = the mean of each prompt embedding: makes the prediction depend on which prompt ran."""
    return context.float().mean(dim=(1, 2)).reshape(-1, 1, 1, 1).expand(x_in.shape[0], 4, *x_in.shape[2:]).to(x_in.dtype)


def gaussian_eps(mu, s, prediction="eps"):
    """The exact eps (or v) prediction for model-space data N(mu, s^2), from the UNet's own inputs:
    x_in = x / sqrt(sigma_t^2 + 1) and the integer timestep t."""
    def predict(x_in, t, context, y):
        sigma = SD.sigmas[t.long()].reshape(-1, 1, 1, 1).to(x_in.dtype)
        x = x_in[:, :4] * (sigma ** 2 + 1).sqrt()
        denoised = (s ** 2 * x + sigma ** 2 * mu) / (s ** 2 + sigma ** 2)
        eps = (x - denoised) / sigma
        if prediction == "eps":
            return eps
        return (eps - sigma * denoised) / (sigma ** 2 + 1).sqrt()  # v = alpha eps - sigma_vp x0
    return predict


def prompt(value, tokens=77, dim=8, batch=1, **options):
    return [(torch.full((batch, tokens, dim), float(value)), options)]
