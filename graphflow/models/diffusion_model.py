"""The MODEL socket: a UNet plus what a sampler must know about it (prediction type, latent
format, noise schedule, SDXL's vector conditioning)."""

import copy
from dataclasses import dataclass

import torch

from .latent_formats import SD1, SDXL, LatentFormat
from .unet import UNet, timestep_embedding

ARCHS = ("sd1", "sd2", "sdxl", "sdxl_refiner")
PREDICTIONS = ("eps", "v", "x0", "lcm", "edm")  # as graphflow.sampling.model_sampling


@dataclass(frozen=True)
class BetaSchedule:
    linear_start: float = 0.00085
    linear_end: float = 0.012
    num_timesteps: int = 1000
    kind: str = "scaled_linear"  # betas = linspace(sqrt(start), sqrt(end), n) ** 2

    def alphas_cumprod(self) -> torch.Tensor:
        """Cumulative product of (1 - beta) over the training timesteps, float64 [num_timesteps]."""
        if self.kind == "scaled_linear":
            betas = torch.linspace(self.linear_start ** 0.5, self.linear_end ** 0.5, self.num_timesteps,
                                   dtype=torch.float64) ** 2
        elif self.kind == "linear":
            betas = torch.linspace(self.linear_start, self.linear_end, self.num_timesteps, dtype=torch.float64)
        else:
            raise ValueError(f"unknown beta schedule kind {self.kind!r}")
        return torch.cumprod(1.0 - betas, dim=0)


class DiffusionModel:
    """unet(x, timesteps, context, y) predicts eps or v for model-space latents (LDM convention,
    float timesteps in [0, 999]). Copying is shallow: `with_unet` gives a new DiffusionModel that
    differs only by its UNet (LoRA-patched weights, say) and shares everything else."""

    def __init__(self, unet: UNet, arch: str, prediction: str = "eps", latent_format: LatentFormat | None = None,
                 beta_schedule: BetaSchedule = BetaSchedule()):
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHS}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.unet = unet.eval()
        self.arch = arch
        self.prediction = prediction
        self.latent_format = latent_format or (SDXL if arch.startswith("sdxl") else SD1)
        self.beta_schedule = beta_schedule
        self.zsnr = False  # sigma table rescaled to zero terminal SNR (ModelSamplingDiscrete)
        self.edm = None  # (sigma_min, sigma_max): continuous-time sampling (ModelSamplingContinuousEDM)
        # Sampling options set by model-patch nodes, read by graphflow.sampling.pipeline:
        # "cfg_rescale" (RescaleCFG's multiplier), "differential_diffusion" (its strength).
        self.options: dict = {}

    @property
    def in_channels(self) -> int:
        return self.unet.config.in_channels

    @property
    def inpaint(self) -> bool:
        """A 9-channel inpainting model: input = noisy latent (4) + mask (1) + masked-image latent (4)."""
        return self.in_channels == 2 * self.latent_format.channels + 1

    @property
    def adm_channels(self) -> int:
        return self.unet.config.adm_in_channels

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def to(self, device=None, dtype=None) -> "DiffusionModel":
        self.unet.to(device=device, dtype=dtype)
        return self

    def with_sampling(self, prediction: str, zsnr: bool = False) -> "DiffusionModel":
        """The same model sampled with another parametrisation / sigma table (shares the UNet)."""
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if prediction == "edm":
            raise ValueError("'edm' prediction needs continuous sampling (with_continuous_sampling)")
        clone = copy.copy(self)
        clone.prediction, clone.zsnr, clone.edm = prediction, bool(zsnr), None
        return clone

    def with_continuous_sampling(self, prediction: str, sigma_min: float, sigma_max: float) -> "DiffusionModel":
        """The same model sampled in continuous time (EDM): timestep 0.25 ln sigma, sigmas in
        [sigma_min, sigma_max]; prediction "edm", "v" or "eps"."""
        if prediction not in ("edm", "v", "eps"):
            raise ValueError(f"continuous-time prediction must be 'edm', 'v' or 'eps', got {prediction!r}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min {sigma_min} and sigma_max {sigma_max}")
        clone = copy.copy(self)
        clone.prediction, clone.zsnr, clone.edm = prediction, False, (float(sigma_min), float(sigma_max))
        return clone

    def with_options(self, **options) -> "DiffusionModel":
        """The same model with sampling options added (see `options`); the original is unchanged."""
        clone = copy.copy(self)
        clone.options = {**self.options, **options}
        return clone

    def with_unet(self, unet: UNet) -> "DiffusionModel":
        clone = copy.copy(self)
        clone.unet = unet
        return clone

    def __call__(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None,
                 y: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(x, timesteps, context, y)

    def encode_adm(self, cond_options: dict, width_px: int, height_px: int, negative: bool = False) -> torch.Tensor | None:
        """SDXL's vector conditioning y [B, adm_channels], or None for SD1/SD2.

        base (2816):    pooled CLIP-G [B, 1280] + 256-d sinusoidal embeddings of
                        (orig height, orig width, crop top, crop left, target height, target width)
        refiner (2560): pooled [B, 1280] + embeddings of (orig height, orig width, crop top, crop left,
                        aesthetic score)
        Sizes default to the image being generated (width_px x height_px), crops to 0, the aesthetic
        score to 6.0 (2.5 for the negative prompt, as SDXL's refiner was trained)."""
        if not self.adm_channels:
            return None
        width = cond_options.get("width", width_px)
        height = cond_options.get("height", height_px)
        crop_top = cond_options.get("crop_h", 0)
        crop_left = cond_options.get("crop_w", 0)
        if self.arch == "sdxl_refiner":
            score = cond_options.get("aesthetic_score", 2.5 if negative else 6.0)
            values = [height, width, crop_top, crop_left, score]
        else:
            values = [height, width, crop_top, crop_left,
                      cond_options.get("target_height", height), cond_options.get("target_width", width)]
        pooled = cond_options.get("pooled_output")
        if pooled is None:  # no pooled text embedding given: zeros, as ComfyUI does
            pooled = torch.zeros(1, self.adm_channels - 256 * len(values))
        pooled = pooled.float().cpu()
        if pooled.dim() == 1:
            pooled = pooled[None]
        sizes = timestep_embedding(torch.tensor(values, dtype=torch.float32), 256).reshape(1, -1)
        y = torch.cat([pooled, sizes.expand(pooled.shape[0], -1)], dim=1)
        if y.shape[1] != self.adm_channels:
            raise ValueError(f"SDXL conditioning has {y.shape[1]} channels (pooled {pooled.shape[1]} + "
                             f"{len(values)}x256), the UNet expects {self.adm_channels}")
        return y
