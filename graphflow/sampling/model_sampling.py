"""A discrete-time (DDPM) eps / v model seen as a k-diffusion denoiser D(x; sigma).

The samplers work in k-diffusion's "sigma space" (Karras et al. 2022, "Elucidating the Design
Space of Diffusion-Based Generative Models", sec. 2): x = x0 + sigma * eps, no signal scaling.
A DDPM timestep t with cumulative alpha a_t corresponds to sigma_t = sqrt((1 - a_t) / a_t), and
the UNet, trained on the variance-preserving x_vp = sqrt(a_t) x0 + sqrt(1 - a_t) eps, sees
x_vp = x / sqrt(sigma^2 + 1) (the c_in scaling).

Timestep lookup: ComfyUI feeds the UNet the NEAREST training timestep (argmin of
|log sigma - log sigma_t|), an integer, even when the schedule's sigma lies between two table
entries (`normal`, `karras`, ...). We do the same by default so imported graphs give ComfyUI's
images; `quantize=False` gives k-diffusion's / diffusers' log-sigma interpolation instead
(fractional timesteps), used to compare against diffusers' schedulers.
"""

import contextlib
import math

import torch

from .step_cache import wrapped_network


def in_sigma_window(sigma: torch.Tensor, sigma_start: float | None, sigma_end: float | None,
                    rounded: bool = False) -> bool:
    """ComfyUI's timestep-range rule: sigma_end <= sigma <= sigma_start (None: unbounded), judged by
    the batch's first sigma. Reading it back is a host sync, so callers ask only when a range is set.
    rounded: the bounds first rounded to sigma's dtype (float32), as comparing the sigma TENSOR with
    Python floats does; ComfyUI's conditioning ranges and ControlNets compare so, its SLG and the
    IP-Adapter compare sigma.item() in double precision. A step whose sigma is the float32 nearest
    a flow model's bound (1 - percent, shifted) falls on the other side otherwise."""
    first = sigma.reshape(-1)[0]
    s = float(first)
    if rounded:
        sigma_start, sigma_end = (None if b is None else float(torch.tensor(b, dtype=first.dtype))
                                  for b in (sigma_start, sigma_end))
    return (sigma_start is None or s <= sigma_start) and (sigma_end is None or s >= sigma_end)


def tiled_rows(v: torch.Tensor | None, tiles: int) -> torch.Tensor | None:
    """A per-row input for `tiles` tiles stacked along the batch (TiledDiffusion): repeated whole (a
    scalar stays one)."""
    return v if v is None or tiles == 1 or v.ndim == 0 else v.repeat(tiles, *(1,) * (v.ndim - 1))


@contextlib.contextmanager
def tiled_unet_rows(tiles: int):
    """While `tiles` tiles of a call's rows are stacked along the batch (TiledDiffusion): unet_rows
    describing each tile's rows, so per-row patches (IP-Adapter's negative rows, per-entry tokens)
    read every tile as they read the whole call."""
    from .guidance import UNetRows, unet_rows

    rows = unet_rows.get()
    if rows is None or tiles == 1:
        yield
        return
    token = unet_rows.set(UNetRows(rows.sigma, rows.negative * tiles, rows.conds * tiles))
    try:
        yield
    finally:
        unet_rows.reset(token)


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """Broadcast a per-sample [B] (or scalar) tensor against an ndim-dimensional batch. A 0-dim
    tensor stays 0-dim: a host sigma must stay a scalar to combine with device tensors."""
    if v.ndim == 0:
        return v
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def alphas_cumprod_from_betas(linear_start: float = 0.00085, linear_end: float = 0.012,
                              num_timesteps: int = 1000, kind: str = "scaled_linear") -> torch.Tensor:
    """LDM's beta schedules, computed in float64 as ComfyUI does (float32 here shifts sigma_max in
    the 6th digit)."""
    if kind == "scaled_linear":  # SD1/SD2/SDXL: linear in sqrt(beta)
        betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, num_timesteps, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(linear_start, linear_end, num_timesteps, dtype=torch.float64)
    else:
        raise ValueError(f"unknown beta schedule {kind!r}; expected 'scaled_linear' or 'linear'")
    return torch.cumprod(1.0 - betas, dim=0)


PREDICTIONS = ("eps", "v", "x0", "lcm", "img_to_img")
LCM_ORIGINAL_TIMESTEPS = 50  # LCM distils the schedule to 50 of the 1000 training timesteps


def rescale_zero_terminal_snr(sigmas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", alg. 1: shift
    and scale sqrt(alpha_bar) so the last timestep has zero SNR (kept at alpha_bar 4.897e-8, as
    ComfyUI does, so its sigma stays finite) while the first keeps its value."""
    root = (1 / (sigmas * sigmas + 1)).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    alphas = root ** 2
    alphas[-1] = 4.8973451890853435e-08
    return ((1 - alphas) / alphas) ** 0.5


class DiscreteSchedule:
    """The sigma table of a model trained on discrete timesteps, plus its parametrisation.

    sigmas: float32 [num_timesteps], increasing with t (SD: 0.029167 ... 14.614641).
    prediction: what the UNet outputs: "eps", "v", "x0" (the clean latent itself), "img_to_img"
    (x0 from the unscaled x: ComfyUI's IMG_TO_IMG, for image-to-image models such as Lotus) or "lcm" (a
    latent consistency model: eps with LCM's boundary condition, on a table distilled to 50 of
    the training timesteps, t = 19, 39, ..., 999). zsnr: the table rescaled to zero terminal SNR
    (models trained so, e.g. with v-prediction). ComfyUI's ModelSamplingDiscrete sets both.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, prediction: str = "eps", sigma_data: float = 1.0,
                 zsnr: bool = False):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        alphas_cumprod = alphas_cumprod.to(torch.float64)
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        if zsnr:
            sigmas = rescale_zero_terminal_snr(sigmas)
        self.sigmas = sigmas.to(torch.float32)
        # ComfyUI takes the log before rounding to float32 (a third of the entries differ in the
        # last bit from the log of the rounded sigmas, which moves normal's sigmas by an ulp)
        self.log_sigmas = sigmas.log().to(torch.float32)
        self.skip = 1  # training timesteps per table entry
        if prediction == "lcm":  # LCM's table is sliced from the float32 sigmas, its log taken there
            self.skip = len(self.sigmas) // LCM_ORIGINAL_TIMESTEPS
            self.sigmas = self.sigmas[self.skip - 1::self.skip].clone()
            self.log_sigmas = self.sigmas.log()
        self.prediction = prediction
        self.sigma_data = sigma_data
        self.zsnr = zsnr
        self._tables = {}

    @classmethod
    def from_betas(cls, linear_start: float = 0.00085, linear_end: float = 0.012, num_timesteps: int = 1000,
                   kind: str = "scaled_linear", prediction: str = "eps", zsnr: bool = False) -> "DiscreteSchedule":
        return cls(alphas_cumprod_from_betas(linear_start, linear_end, num_timesteps, kind), prediction, zsnr=zsnr)

    @classmethod
    def for_model(cls, model) -> "DiscreteSchedule":
        """From a MODEL's `beta_schedule` (linear_start, linear_end, num_timesteps, kind), `prediction`
        and `zsnr` (set by ModelSamplingDiscrete; False if absent); a ContinuousSchedule for a model
        whose `edm` (sigma_min, sigma_max) ModelSamplingContinuousEDM / V set."""
        if getattr(model, "arch", "").startswith("stable_cascade"):
            return CascadeSchedule(model.sampling_shift)
        edm = getattr(model, "edm", None)
        if getattr(model, "prediction", None) == "cosmos_rflow":  # its range as ModelSamplingContinuousEDM set it
            return CosmosRFlowSchedule() if edm is None else CosmosRFlowSchedule(*edm)
        if edm is not None:
            return ContinuousSchedule(edm[0], edm[1], model.prediction, getattr(model, "continuous_timestep", "log"))
        b = model.beta_schedule
        return cls.from_betas(b.linear_start, b.linear_end, b.num_timesteps,
                              getattr(b, "kind", "scaled_linear"), model.prediction, getattr(model, "zsnr", False))

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]

    def _log_sigmas(self, device: torch.device) -> torch.Tensor:
        if device not in self._tables:
            self._tables[device] = self.log_sigmas.to(device)
        return self._tables[device]

    def timestep(self, sigma: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        """The training timestep of each sigma, float32, same shape and device as `sigma`.
        quantize=True: the nearest table entry in log sigma (ComfyUI); False: linear interpolation
        between the two neighbouring entries in log sigma (k-diffusion, diffusers)."""
        log_sigmas = self._log_sigmas(sigma.device)
        log_sigma = sigma.float().log().reshape(-1)
        # the two table entries around each sigma (log_sigmas increases with t)
        high = torch.searchsorted(log_sigmas, log_sigma).clamp(1, len(log_sigmas) - 1)
        low = high - 1
        if quantize:  # the nearer one; ties go to the lower timestep, as an argmin over the table would
            nearer_low = (log_sigma - log_sigmas[low]).abs() <= (log_sigma - log_sigmas[high]).abs()
            index = torch.where(nearer_low, low, high)
            return (index * self.skip + (self.skip - 1)).reshape(sigma.shape).float()
        w = ((log_sigma - log_sigmas[low]) / (log_sigmas[high] - log_sigmas[low])).clamp(0, 1)
        return ((low + w) * self.skip + (self.skip - 1)).reshape(sigma.shape)

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        """sigma at a (fractional) timestep: linear interpolation of log sigma between table entries."""
        timestep = torch.as_tensor(timestep)
        log_sigmas = self._log_sigmas(timestep.device)
        t = ((timestep.float() - (self.skip - 1)) / self.skip).clamp(0, len(log_sigmas) - 1)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()

    def percent_to_sigma(self, percent: float) -> float:
        """ComfyUI's percent of the sampling process -> sigma: 0 is above every sigma, 1 is 0, in
        between the sigma at timestep (1 - percent) * 999 (log-sigma interpolated)."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma((1.0 - percent) * (len(self.sigmas) * self.skip - 1)))

    def c_in(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The UNet's input: x / sqrt(sigma^2 + sigma_data^2) (sigma space -> variance-preserving);
        img_to_img models take x as it is."""
        if self.prediction == "img_to_img":
            return x
        sigma = append_dims(sigma, x.ndim)
        return x / (sigma ** 2 + self.sigma_data ** 2) ** 0.5

    def denoised(self, sigma: torch.Tensor, model_output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The UNet's prediction -> x0 estimate.
        eps: x - sigma * eps.
        v (Salimans & Ho 2022, "Progressive Distillation", v = alpha eps - sigma_vp x0):
           x * sd^2 / (sigma^2 + sd^2) - v * sigma * sd / sqrt(sigma^2 + sd^2)."""
        if self.prediction in ("x0", "img_to_img"):
            return model_output
        if self.prediction == "lcm":  # consistency boundary condition (Luo et al. 2023), timesteps scaled by 10
            t = append_dims(self.timestep(sigma) * 10.0, x.ndim)
            c_skip = 0.25 / (t * t + 0.25)
            c_out = t / (t * t + 0.25) ** 0.5
            return c_out * (x - model_output * append_dims(sigma, x.ndim)) + c_skip * x
        sigma = append_dims(sigma, x.ndim)
        if self.prediction == "eps":
            return x - model_output * sigma
        sd = self.sigma_data
        if self.prediction == "edm":  # Karras et al. 2022, table 1: c_skip x + c_out F
            return x * sd ** 2 / (sigma ** 2 + sd ** 2) + model_output * sigma * sd / (sigma ** 2 + sd ** 2) ** 0.5
        return x * sd ** 2 / (sigma ** 2 + sd ** 2) - model_output * sigma * sd / (sigma ** 2 + sd ** 2) ** 0.5

    def is_max_denoise(self, sigma0: torch.Tensor | float) -> bool:
        """Whether sampling starts from pure noise (sigma0 at or above the table's top)."""
        sigma0, sigma_max = float(sigma0), float(self.sigma_max)
        return math.isclose(sigma0, sigma_max, rel_tol=1e-5) or sigma0 > sigma_max

    def noise_scaling(self, sigma: torch.Tensor, noise: torch.Tensor, latent: torch.Tensor,
                      max_denoise: bool = False) -> torch.Tensor:
        """The sampler's starting point. From pure noise the latent (zero, or an image) has unit
        prior variance, so x = latent + noise * sqrt(1 + sigma^2); at a lower start sigma
        (img2img, inpainting's known region) x = latent + noise * sigma. The same for eps and v
        models: both are sampled in the same sigma space, only the denoiser differs."""
        sigma = torch.as_tensor(sigma, dtype=noise.dtype, device=noise.device)
        if sigma.ndim:  # per-sample [B]
            sigma = append_dims(sigma, noise.ndim)
        if max_denoise:
            noise = noise * torch.sqrt(1.0 + sigma ** 2.0)
        else:
            noise = noise * sigma
        return noise + latent


class ContinuousSchedule(DiscreteSchedule):
    """Continuous noise levels (EDM, Karras et al. 2022), as ComfyUI's ModelSamplingContinuousEDM:
    the UNet's timestep is c_noise = 0.25 ln sigma; sigmas between sigma_min and sigma_max; the
    table (for the table-based schedulers) is 1000 log-uniform sigmas. prediction "edm" (F-
    prediction, sigma_data 0.5), "v" or "eps" (sigma_data 1). timestep "atan" is ComfyUI's
    ModelSamplingContinuousV instead: the UNet is told 2/pi atan sigma, the angle of the
    v-parametrisation (Salimans & Ho 2022, appendix D), in [0, 1)."""

    def __init__(self, sigma_min: float, sigma_max: float, prediction: str = "v", timestep: str = "log"):
        if prediction not in ("edm", "v", "eps"):
            raise ValueError(f"continuous-time prediction must be 'edm', 'v' or 'eps', got {prediction!r}")
        if timestep not in ("log", "atan"):
            raise ValueError(f"continuous-time timestep must be 'log' or 'atan', got {timestep!r}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
        self.sigmas = torch.linspace(math.log(sigma_min), math.log(sigma_max), 1000).exp().float()
        self.log_sigmas = self.sigmas.log()
        self.range = (float(sigma_min), float(sigma_max))
        self.prediction = prediction
        self.sigma_data = 0.5 if prediction == "edm" else 1.0
        self.zsnr = False
        self.skip = 1
        self._tables = {}
        self.timing = timestep

    def timestep(self, sigma: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        if self.timing == "atan":
            return sigma.float().atan() * (2 / math.pi)
        return 0.25 * sigma.float().log()

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        if self.timing == "atan":
            return (torch.as_tensor(timestep).float() * (math.pi / 2)).tan()
        return (torch.as_tensor(timestep).float() / 0.25).exp()

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        # the table's float32 ends, as ComfyUI's (not the configured range: they differ in the 8th digit)
        low, high = math.log(float(self.sigma_min)), math.log(float(self.sigma_max))
        return math.exp((high - low) * (1.0 - percent) + low)


class CosmosRFlowSchedule(ContinuousSchedule):
    """Cosmos-Predict2's rectified flow in EDM's sigma space, as ComfyUI samples it
    (ModelSamplingCosmosRFlow + COSMOS_RFLOW; sigmas 0.002 .. 80, sigma_data 1): x = latent +
    sigma noise; the network sees t = sigma / (1 + sigma) and x (1 - t) = the flow's
    (1 - t) latent + t noise, and predicts v; x0 = x (1 - t) - v t. Starting from pure noise
    adds no sqrt(1 + sigma^2) (the prior's variance is in the flow already)."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        super().__init__(sigma_min, sigma_max, "v")
        self.prediction = "cosmos_rflow"

    def timestep(self, sigma: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        sigma = sigma.float()
        return sigma / (sigma + 1)

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(timestep).float()
        top = self.range[1]
        return torch.where(t >= top / (top + 1), torch.full_like(t, top), t / (1 - t).clamp_min(1e-12))

    def c_in(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x / (append_dims(sigma, x.ndim) + 1)

    def denoised(self, sigma: torch.Tensor, model_output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = append_dims(self.timestep(sigma), x.ndim)
        return x * (1 - t) - model_output * t

    def noise_scaling(self, sigma, noise: torch.Tensor, latent: torch.Tensor,
                      max_denoise: bool = False) -> torch.Tensor:
        return super().noise_scaling(sigma, noise, latent, max_denoise=False)

    def scale_latent_inpaint(self, sigma: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """A known region (video2world's given frames) at sigma: the latent x (1 + sigma), which the
        network sees clean (ComfyUI's CosmosPredict2.scale_latent_inpaint)."""
        return latent * (append_dims(sigma, latent.ndim) + 1)


class CascadeSchedule(DiscreteSchedule):
    """Stable Cascade's noise levels (ComfyUI's StableCascadeSampling; Würstchen's GDF cosine
    schedule): continuous time t in [0, 1], alpha_bar(t) = cos^2((t + s) / (1 + s) * pi/2) /
    cos^2(s / (1 + s) * pi/2) with s = 0.008 (Nichol & Dhariwal 2021), its log-SNR moved by
    -2 ln(shift) when shift != 1, clamped to [1e-4, 0.9999]; sigma = sqrt((1 - a) / a). The
    network is told t from sigma through the unshifted cosine (as ComfyUI does), predicts eps.
    The table (for the table-based schedulers) is sigma((i + 1) / 10000), i = 0..9999."""

    cosine_s = 8e-3

    def __init__(self, shift: float = 1.0):
        if not shift > 0:
            raise ValueError(f"the Stable Cascade shift must be positive, got {shift}")
        self.shift = float(shift)
        self.prediction = "eps"
        self.sigma_data = 1.0
        self.zsnr = False
        self.skip = 1
        self._tables = {}
        # float32 throughout, as ComfyUI computes the table (float64 moves most entries by an ulp
        # or more, up to 0.1% with a shift)
        self.sigmas = self.sigma((torch.arange(1, 10001, dtype=torch.float64) / 10000).float())
        self.log_sigmas = self.sigmas.log()

    @property
    def _s(self) -> torch.Tensor:
        return torch.tensor(self.cosine_s, dtype=torch.float32)

    @property
    def _alpha_bar_0(self) -> torch.Tensor:
        s = self._s
        return torch.cos(s / (1 + s) * math.pi * 0.5) ** 2

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(timestep, dtype=torch.float32)
        s = self._s
        alpha_bar = torch.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2 / self._alpha_bar_0
        if self.shift != 1.0:
            log_snr = (alpha_bar / (1 - alpha_bar)).log() + 2 * torch.log(1.0 / torch.tensor(self.shift))
            alpha_bar = log_snr.sigmoid()
        alpha_bar = alpha_bar.clamp(0.0001, 0.9999)
        return ((1 - alpha_bar) / alpha_bar) ** 0.5

    def timestep(self, sigma: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        s = self._s.to(sigma.device)
        var = (1 / (sigma.float() * sigma.float() + 1)).clamp(0, 1.0)
        return ((var * self._alpha_bar_0.to(sigma.device)) ** 0.5).acos() / (math.pi * 0.5) * (1 + s) - s

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(1.0 - percent))


class ModelDenoiser:
    """D(x; sigma) for a MODEL (graphflow.models.DiffusionModel or anything with `unet(x, t, context,
    y)`, `dtype`, `prediction`, `beta_schedule`).

    x stays float32; the UNet runs in the model's dtype and its output is cast back to float32.
    `concat` (inpainting models: mask + masked-image latent) is appended to the c_in-scaled x,
    unscaled, as ComfyUI and the LDM inpainting training do."""

    def __init__(self, model, schedule: DiscreteSchedule | None = None, quantize_timesteps: bool = True):
        self.model = model
        self.schedule = schedule or DiscreteSchedule.for_model(model)
        self.quantize_timesteps = quantize_timesteps
        # a MODEL's network wrappers (EasyCache: graphflow.sampling.step_cache), fresh state per denoiser
        self.network_wrappers = tuple(make() for make in getattr(model, "network_wrappers", ()))
        self.tile_controls = {}  # TiledDiffusion: the run's stretched hints and per-tile control cuts
        self.context_windows = None  # a run's context windows (the pipeline sets them; predict_sides reads them)
        # Cosmos-Predict2 video2world's noise mask [B, C, frames, h, w]: each frame is told the step's
        # timestep x its mean mask (0 for given frames; ComfyUI's CosmosPredict2.process_timestep)
        self.timestep_mask = None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor | None = None,
                 y: torch.Tensor | None = None, concat: torch.Tensor | None = None,
                 control=None, gligen=None, control_context: torch.Tensor | None = None,
                 prior: torch.Tensor | None = None, num_frames: int | None = None,
                 frame_rate: float | None = None) -> torch.Tensor:
        # frame_rate: video conditioning's, passed to networks that take it (Cosmos 1.0's fps; Cosmos-
        # Predict2 runs without fps modulation, as in ComfyUI)
        xc = self.schedule.c_in(sigma, x)
        dtype = self.model.dtype
        if concat is not None:
            xc = torch.cat([xc, concat.to(xc.device, xc.dtype)], dim=1)
        t = self.schedule.timestep(sigma, self.quantize_timesteps).float()
        if self.timestep_mask is not None:
            frames = self.timestep_mask.mean(dim=(1, 3, 4))
            t = t[:, None] * frames.repeat(x.shape[0] // frames.shape[0], 1)  # [B, frames]

        def network(xc, t, context, y, control):
            residuals = None
            if control is not None:  # ControlNets see the scaled latent without inpainting channels, in the UNet's dtype
                control_in = context if control_context is None else control_context  # CLIPTextEncodeControlnet's
                residuals = control.residuals(xc[:, :x.shape[1]].to(dtype), sigma, t, control_in, y, self.schedule,
                                              getattr(self.model.unet, "config", None))
            unet = self.model.unet if gligen is None else gligen.patched_unet(self.model.unet, xc.to(dtype))
            extra = {} if residuals is None else {"control": residuals}
            if prior is not None:  # Stable Cascade Stage B: Stage C's latent
                extra["effnet"] = prior.to(dtype)
            if num_frames is not None:  # SVD: how the batch splits into videos
                extra["num_frames"] = num_frames
            if frame_rate is not None and getattr(self.model.unet, "takes_fps", False):
                extra["fps"] = frame_rate
            return unet(xc.to(dtype), t,
                        None if context is None else context.to(dtype),
                        y if y is None or not y.is_floating_point() else y.to(dtype),  # class labels stay whole
                        **extra).float()

        def run(xc, regions=None, shift=(0, 0)):  # all the network's work, which a step cache may skip
            if regions is None:
                return network(xc, t, context, y, control)
            # tiles of x (TiledDiffusion): xc holds len(regions) tiles of x's rows each
            if gligen is not None or prior is not None or num_frames is not None or self.timestep_mask is not None:
                raise ValueError("TiledDiffusion can't cut GLIGEN boxes, a Stable Cascade prior or video frames to "
                                 "its tiles")
            if control is None:
                k = len(regions)
                with tiled_unet_rows(k):
                    return network(xc, tiled_rows(t, k), tiled_rows(context, k), tiled_rows(y, k), None)
            rows = x.shape[0]  # one call a tile, each with its part of every hint
            return torch.cat([network(xc[i * rows:(i + 1) * rows], t, context, y,
                                      control.cut(region, x.shape[-2:], shift, self.tile_controls))
                              for i, region in enumerate(regions)])

        output = wrapped_network(self.network_wrappers, run, xc, sigma, x.shape[1])
        return self.schedule.denoised(sigma, output, x)
