"""Rectified-flow ("CONST") model sampling: SD3 / SD3.5 and FLUX.1 seen as denoisers D(x; sigma).

A flow model is trained on x_t = (1 - sigma) x0 + sigma eps, sigma in [0, 1], and predicts the
velocity v = eps - x0 (Lipman et al. 2023, "Flow Matching"; Esser et al. 2024, "Scaling Rectified
Flow Transformers", the SD3 paper). So D(x; sigma) = x - sigma v, and k-diffusion's ODE step
x + (x - D) / sigma * (sigma_next - sigma) is exactly the flow's Euler step: the sigma-space
samplers run unchanged. What differs from the eps/v models (model_sampling.DiscreteSchedule):
  - no input scaling (c_in = 1), the model gets sigma itself as its timestep (the model file
    applies its own x1000);
  - the starting point is sigma * noise + (1 - sigma) * latent, whatever sigma (ComfyUI's CONST
    ignores max_denoise: sigma_max is 1, where the latent has weight 0 anyway);
  - a sample stopped early (leftover noise) is divided by (1 - sigma) when handed back, so that
    re-noising it with noise_scaling later gives the same x (ComfyUI's inverse_noise_scaling).

Sigma of a training time t in (0, 1], with ComfyUI's two shifts (their nodes of the same name):
  ModelSamplingSD3 ("discrete flow"): sigma = shift t / (1 + (shift - 1) t); SD3 uses shift 3,
      FLUX schnell shift 1; a table of 1000 times t = k / 1000, timestep = sigma * multiplier.
  ModelSamplingFlux: sigma = e^mu / (e^mu + (1 / t - 1)) (SD3 paper eq. 23's "time shift" in
      log-SNR); mu is linear in the number of 2x2 image patches, base_shift at 256 patches and
      max_shift at 4096 (`flux_mu`); FLUX dev defaults to mu 1.15 (1024x1024); a table of
      10000 times, timestep = sigma.
The schedulers (schedules.py) read only the table and sigma/timestep, so every one of them works
over flow sigmas as ComfyUI computes them.
"""

import math

import torch
import torch.nn.functional as F

from ..choices import DEFAULT_FLUX_GUIDANCE, FLUX_BASE_SHIFT, FLUX_MAX_SHIFT  # noqa: F401 (re-exported)
from ..models.architectures import ARCHITECTURES
from .model_sampling import DiscreteSchedule, append_dims, tiled_rows, tiled_unet_rows
from .step_cache import wrapped_network

DEFAULT_SD3_SHIFT = ARCHITECTURES["sd3"].shift


def time_snr_shift(shift: float, t):
    """SD3's shift: sigma = shift t / (1 + (shift - 1) t) (the identity for shift 1)."""
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def flux_time_shift(mu: float, t):
    """FLUX's shift: sigma = e^mu / (e^mu + (1 / t - 1)); equals time_snr_shift(e^mu, t)."""
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1))


def flux_mu(width: int, height: int, base_shift: float = FLUX_BASE_SHIFT, max_shift: float = FLUX_MAX_SHIFT) -> float:
    """ModelSamplingFlux's mu for an image of width x height pixels: linear in the number of
    packed latent tokens (width/16 * height/16), base_shift at 256 tokens, max_shift at 4096."""
    slope = (max_shift - base_shift) / (4096 - 256)
    return width * height / (8 * 8 * 2 * 2) * slope + (base_shift - slope * 256)


def ltxv_shift(tokens: int, max_shift: float = 2.05, base_shift: float = 0.95) -> float:
    """ModelSamplingLTXV's / LTXVScheduler's mu: linear in the latent's token count (frames x
    rows x columns), base_shift at 1024 tokens, max_shift at 4096."""
    slope = (max_shift - base_shift) / (4096 - 1024)
    return tokens * slope + (base_shift - slope * 1024)


class FlowSchedule:
    """The model sampling of a flow model: sigma table, sigma(t), and the CONST parametrisation.
    Same interface as model_sampling.DiscreteSchedule, so schedulers, samplers and the pipeline
    take either. kind "shift" (ModelSamplingSD3) or "flux" (ModelSamplingFlux, shift = mu)."""

    prediction = "flow"
    sigma_data = 1.0

    def __init__(self, kind: str = "shift", shift: float = DEFAULT_SD3_SHIFT, multiplier: float = 1000.0,
                 timesteps: int = 1000):
        if kind not in ("shift", "flux"):
            raise ValueError(f"flow sampling kind must be 'shift' or 'flux', got {kind!r}")
        self.kind = kind
        self.shift = float(shift)
        self.multiplier = float(multiplier)
        t = torch.arange(1, timesteps + 1, 1) / timesteps  # float32, as ComfyUI builds it
        self.sigmas = self.sigma(t * self.multiplier).float()

    @classmethod
    def sd3(cls, shift: float = DEFAULT_SD3_SHIFT, multiplier: float = 1000.0) -> "FlowSchedule":
        return cls("shift", shift, multiplier, 1000)

    @classmethod
    def flux(cls, mu: float = FLUX_MAX_SHIFT) -> "FlowSchedule":
        return cls("flux", mu, 1.0, 10000)

    def __repr__(self):
        return f"FlowSchedule({self.kind!r}, shift={self.shift}, multiplier={self.multiplier}, timesteps={len(self.sigmas)})"

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]

    def timestep(self, sigma: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        """ComfyUI's timestep of a sigma: sigma * multiplier (continuous, never quantized)."""
        return torch.as_tensor(sigma) * self.multiplier

    def sigma(self, timestep) -> torch.Tensor:
        t = torch.as_tensor(timestep) / self.multiplier
        if self.kind == "flux":
            return flux_time_shift(self.shift, t)
        return time_snr_shift(self.shift, t)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        shift = flux_time_shift if self.kind == "flux" else time_snr_shift
        return float(shift(self.shift, 1.0 - percent))

    def c_in(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x

    def denoised(self, sigma: torch.Tensor, model_output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Velocity -> x0: x - sigma v."""
        return x - model_output * append_dims(sigma, x.ndim)

    def is_max_denoise(self, sigma0) -> bool:
        sigma0, sigma_max = float(sigma0), float(self.sigma_max)
        return math.isclose(sigma0, sigma_max, rel_tol=1e-5) or sigma0 > sigma_max

    def noise_scaling(self, sigma, noise: torch.Tensor, latent: torch.Tensor, max_denoise: bool = False) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=noise.dtype, device=noise.device)
        if sigma.ndim:
            sigma = append_dims(sigma, noise.ndim)
        return sigma * noise + (1.0 - sigma) * latent

    def inverse_noise_scaling(self, sigma, latent: torch.Tensor) -> torch.Tensor:
        sigma = float(sigma)
        return latent if sigma == 0.0 else latent / (1.0 - sigma)


def is_flow(schedule) -> bool:
    return getattr(schedule, "prediction", None) == "flow"


def default_flow_schedule(model) -> FlowSchedule:
    """The sampling a flow MODEL gets without a ModelSamplingSD3/Flux node, as ComfyUI sets it:
    SD3/SD3.5 shift 3.0 (or the model's `sampling_shift`); FLUX dev mu 1.15; FLUX schnell (no
    guidance embedding) shift 1.0; LTX-Video mu 2.37; Mochi and Lumina 2 shift 6.0 (multiplier 1); Wan 2.1
    shift 8.0; HiDream shift 1.0; HunyuanVideo shift 7.0; HunyuanImage 2.1 shift 5.0 (its refiner 4.0);
    Qwen-Image mu 1.15 (ModelSamplingFlux, timestep sigma); Chroma mu 1.15 (ComfyUI's ModelType.FLUX: ModelSamplingFlux with its default shift, Chroma's
    sampling_settings setting none)."""
    arch = getattr(model, "arch", None)
    shift = getattr(model, "sampling_shift", None)
    if isinstance(shift, dict):  # {"shift": s} or {"base_shift", "max_shift"} (FLUX dev's dynamic shift)
        shift = shift.get("shift", shift.get("max_shift"))
    if arch == "flux" and not getattr(model, "guidance_embed", True):  # FLUX schnell
        return FlowSchedule.sd3(1.0 if shift is None else float(shift), multiplier=1.0)
    spec = ARCHITECTURES.get(arch)
    if spec is None or not spec.flow:  # a flow model of no known family: SD3's
        spec = ARCHITECTURES["sd3"]
    shift = spec.shift if shift is None else float(shift)
    if spec.schedule == "flux":  # ModelSamplingFlux: shift is mu
        return FlowSchedule.flux(shift)
    return FlowSchedule.sd3(shift, multiplier=spec.multiplier)


def model_sampling_for(model):
    """A MODEL's sampling: the one a ModelSamplingSD3/Flux node set (`model_sampling`), else the
    flow default for flow models, else the eps/v model's discrete schedule."""
    sampling = getattr(model, "model_sampling", None)
    if sampling is not None and hasattr(sampling, "sigmas"):
        return sampling
    if getattr(model, "prediction", None) == "flow":
        return default_flow_schedule(model)
    return DiscreteSchedule.for_model(model)


class FlowDenoiser:
    """D(x; sigma) for a flow MODEL called as model(x, sigma, context, y, guidance=None) -> velocity.
    x stays float32; the model runs in its dtype. `guidance` (FLUX dev's distilled guidance
    scale, [B]) is passed only to models with a guidance embedding. timestep_mask (LTX-Video with
    a noise mask, [B, C, frames, h, w]): the model is told sigma x the mask per token (ComfyUI's
    LTXV process_timestep), while x0 = x - sigma v keeps the step's sigma."""

    def __init__(self, model, schedule: FlowSchedule | None = None, timestep_mask: torch.Tensor | None = None):
        self.model = model
        self.timestep_mask = timestep_mask
        native_schedule = default_flow_schedule(model)
        self.schedule = schedule or native_schedule
        # ComfyUI gives the network sigma x the sampling's multiplier; graphflow's flow models take sigma
        # and scale it by their own family's multiplier, so another one (ModelSamplingAuraFlow's 1 on
        # SD3 / Wan, ModelSamplingSD3's 1000 on FLUX / Lumina 2) reaches them as this ratio
        native = native_schedule.multiplier
        self.timestep_scale = getattr(self.schedule, "multiplier", native) / native
        self.network_wrappers = tuple(make() for make in getattr(model, "network_wrappers", ()))  # see ModelDenoiser
        self.tile_controls = {}  # TiledDiffusion: the run's stretched hints and per-tile control cuts
        self.context_windows = None  # a run's context windows (the pipeline sets them; predict_sides reads them)
        self.sample_sigmas = None  # the run's sigmas (the pipeline sets them): MeanFlow models embed the next one

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor | None = None,
                 y: torch.Tensor | None = None, concat: torch.Tensor | None = None,
                 guidance: torch.Tensor | None = None, control=None,
                 attention_mask: torch.Tensor | None = None, reference_latents: list | None = None,
                 reference_method: str = "offset", control_context: torch.Tensor | None = None,
                 frame_rate: float | None = None, keyframe_positions: torch.Tensor | None = None,
                 clip_fea: torch.Tensor | None = None, vace_context: torch.Tensor | None = None,
                 vace_strength: tuple = (), time_dim_concat: torch.Tensor | None = None,
                 camera_conditions: torch.Tensor | None = None, pose_latents: torch.Tensor | None = None,
                 face_pixels: torch.Tensor | None = None, llama_states: torch.Tensor | None = None,
                 guiding_frame_index: torch.Tensor | None = None,
                 text_mask: torch.Tensor | None = None,
                 byt5_states: torch.Tensor | None = None) -> torch.Tensor:
        dtype = self.model.dtype
        kwargs = {}
        if concat is not None and getattr(self.model, "arch", None) == "hidream":  # HiDream-E1: beside x, not channels
            kwargs["image_cond"], concat = concat.to(x.device, dtype), None
        xc = x if concat is None else torch.cat([x, concat.to(x.device, x.dtype)], dim=1)
        if frame_rate is not None:  # LTX-Video (prepare_conds sets it for video models only)
            kwargs["frame_rate"] = frame_rate
        if keyframe_positions is not None:  # LTX-Video's appended guide frames (likewise)
            kwargs["keyframe_positions"] = keyframe_positions.to(x.device)
        if guidance is not None:
            kwargs["guidance"] = guidance.to(x.device, torch.float32)
        if clip_fea is not None:  # Wan image-to-video: CLIP vision's penultimate states
            kwargs["clip_fea"] = clip_fea.to(x.device, dtype)
        if vace_context is not None:  # Wan VACE: the control inputs and their strengths
            kwargs["vace_context"], kwargs["vace_strength"] = vace_context.to(x.device, dtype), vace_strength
        if time_dim_concat is not None:  # Phantom-Wan: subject frames after the video's
            kwargs["time_dim_concat"] = time_dim_concat.to(x.device, dtype)
        if camera_conditions is not None:  # Wan Fun Control-Camera: Plücker rays for its control_adapter
            kwargs["camera_conditions"] = camera_conditions.to(x.device, dtype)
        if pose_latents is not None:  # Wan Animate: the pose video's latent for its pose_patch_embedding
            kwargs["pose_latents"] = pose_latents.to(x.device, dtype)
        if face_pixels is not None:  # Wan Animate: the face video for its motion and face encoders
            kwargs["face_pixel_values"] = face_pixels.to(x.device, dtype)
        if llama_states is not None:  # HiDream: Llama 3.1's per-layer states
            kwargs["llama_states"] = llama_states.to(x.device, dtype)
        if guiding_frame_index is not None:  # HunyuanVideo's token replace (v2 image to video)
            kwargs["guiding_frame_index"] = guiding_frame_index.to(x.device, torch.float32)
        if byt5_states is not None:  # HunyuanImage: byT5's states of the quoted text (conditioning_byt5small)
            kwargs["txt_byt5"] = byt5_states.to(x.device, dtype)
        sigma_next = self._next_sigma(sigma)
        if sigma_next is not None:  # the distilled HunyuanImage's MeanFlow embedding
            kwargs["sigma_next"] = sigma_next.to(x.device).expand(x.shape[0])
        if text_mask is not None:  # HunyuanVideo's / HunyuanImage's text encoder's mask [B, T] (prepare_conds)
            kwargs["text_mask"] = text_mask.to(x.device)
        if attention_mask is not None:
            if getattr(self.model, "arch", None) != "flux":
                raise ValueError("an attention mask (StyleModelApply's attn_bias) needs a FLUX model")
            kwargs["attention_mask"] = attention_mask.to(x.device)
        if reference_latents:  # FLUX Kontext, Qwen-Image-Edit, Wan 2.2 Fun Control's ref_conv (prepare_conds' only)
            kwargs["reference_latents"] = [r.to(x.device, dtype) for r in reference_latents]
            kwargs["reference_method"] = reference_method

        def network(xc, sigma, context, y, control, extra):
            extra = dict(extra)
            if control is not None:  # ControlNets see the noisy latent without Fill's channels, in the model's dtype
                pooled = torch.zeros(xc.shape[0], self.model.adm_channels, device=x.device) if y is None else y
                context_in = context if control_context is None else control_context  # CLIPTextEncodeControlnet's
                context_in = None if context_in is None else context_in.to(dtype)
                guidance_in = {} if guidance is None else {"guidance": extra["guidance"]}
                residuals = control.residuals(xc[:, :x.shape[1]].to(dtype), sigma, self._scaled(sigma), context_in,
                                              pooled.to(dtype), self.schedule, getattr(self.model.unet, "config", None),
                                              base=self.model.unet, **guidance_in)
                if residuals is not None:
                    extra["control"] = residuals
            return self.model(xc.to(dtype), self._model_sigma(sigma, xc),
                              None if context is None else context.to(dtype),
                              None if y is None else y.to(dtype), **extra).float()

        def run(xc, regions=None, shift=(0, 0)):  # all the network's work, which a step cache may skip
            if regions is None:
                return network(xc, sigma, context, y, control, kwargs)
            # tiles of x (TiledDiffusion): xc holds len(regions) tiles of x's rows each
            # reference latents (Kontext, Qwen-Image-Edit) go whole to every tile, as the pack passes them
            uncut = sorted(set(kwargs) - {"guidance", "sigma_next", "reference_latents", "reference_method"})
            if uncut or self.timestep_mask is not None:
                raise ValueError(f"TiledDiffusion: cutting {', '.join(uncut) or 'a timestep mask'} to its tiles is "
                                 f"not built yet")
            if control is None:
                k = len(regions)
                tiled = {key: [tiled_rows(r, k) for r in v] if key == "reference_latents"
                         else v if isinstance(v, str) else tiled_rows(v, k) for key, v in kwargs.items()}
                with tiled_unet_rows(k):
                    return network(xc, tiled_rows(sigma, k), tiled_rows(context, k), tiled_rows(y, k), None, tiled)
            rows = x.shape[0]  # one call a tile, each with its part of every hint
            return torch.cat([network(xc[i * rows:(i + 1) * rows], sigma, context, y,
                                      control.cut(region, x.shape[-2:], shift, self.tile_controls), kwargs)
                              for i, region in enumerate(regions)])

        v = wrapped_network(self.network_wrappers, run, xc, sigma, x.shape[1])
        return self.schedule.denoised(sigma, v, x)

    @property
    def sample_sigmas(self) -> torch.Tensor | None:
        return self._sample_sigmas

    @sample_sigmas.setter
    def sample_sigmas(self, sigmas: torch.Tensor | None) -> None:
        """The run's sigmas, kept (on the CPU) for a MeanFlow model only: the distilled HunyuanImage 2.1
        (time_r_in) embeds the sigma after each step's; its refiner does not (ComfyUI's disable_time_r)."""
        config = getattr(getattr(self.model, "unet", None), "config", None)
        meanflow = getattr(config, "meanflow", False) and not getattr(config, "refiner", False)
        self._sample_sigmas = sigmas.float().cpu() if sigmas is not None and meanflow else None

    def _next_sigma(self, sigma: torch.Tensor) -> torch.Tensor | None:
        """For a MeanFlow model, the sigma after this one in the run's sigmas, found as ComfyUI finds it
        (the first equal to the step's); None when it is not one of them (a sampler's intermediate
        sigma: not embedded, as ComfyUI) or the model has no such input."""
        sigmas = self._sample_sigmas
        if sigmas is None:
            return None
        where = (sigmas[:-1] == float(sigma.reshape(-1)[0])).nonzero()  # (a sync: MeanFlow models only)
        return sigmas[int(where[0]) + 1].reshape(1) if len(where) else None

    def _model_sigma(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """sigma [B], or with a timestep mask sigma per token [B, frames * h * w] (as the network takes it)."""
        sigma = self._scaled(sigma)
        if self.timestep_mask is None:
            return sigma
        mask = self.timestep_mask[:, 0]
        if mask.shape[1:] != x.shape[2:]:
            raise ValueError(f"the noise mask (LTXVImgToVideo / LTXVAddGuide's conditioning frames) covers the whole "
                             f"latent {tuple(mask.shape[1:])}; a conditioning area's crop {tuple(x.shape[2:])} can't "
                             "use it: sample without the area or without the noise mask")
        mask = mask.repeat(x.shape[0] // mask.shape[0], 1, 1, 1)  # the sides' chunks, each the latent's batch
        return (mask * sigma.reshape(-1, 1, 1, 1)).flatten(1)

    def _scaled(self, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.float()
        return sigma if self.timestep_scale == 1.0 else sigma * self.timestep_scale


def attention_bias(model, options: dict, latent_hw: tuple[int, int]) -> torch.Tensor:
    """A conditioning's "attention_mask" (ComfyUI's: an additive bias [B, T + n, T + n] over its text
    tokens and an image grid of "attention_mask_img_shape" (n = h x w, 1 x 1 by default)) at FLUX's
    image-token grid for this latent (2x2 patches, odd sizes rounded up): the image parts are
    resized bilinearly, as ComfyUI's upscale_dit_mask does."""
    mask = options["attention_mask"].float()
    mask = mask[None] if mask.ndim == 2 else mask
    hi, wi = options.get("attention_mask_img_shape", (1, 1))
    ho, wo = math.ceil(latent_hw[0] / 2), math.ceil(latent_hw[1] / 2)
    if (hi, wi) == (ho, wo):
        return mask
    b, t = mask.shape[0], mask.shape[1] - hi * wi

    def grid(m, size):  # [b, rows, hi*wi] -> [b, rows, ho*wo]
        rows = m.shape[1]
        if hi * wi == 1:  # what bilinear gives, without its 0 * -inf = nan for a -inf bias (strength 0)
            return m.expand(b, rows, size[0] * size[1])
        m = F.interpolate(m.reshape(b * rows, 1, hi, wi), size=size, mode="bilinear")
        return m.reshape(b, rows, -1)

    txt_txt, txt_img = mask[:, :t, :t], grid(mask[:, :t, t:], (ho, wo))
    img_txt = grid(mask[:, t:, :t].transpose(1, 2), (ho, wo)).transpose(1, 2)
    img_img = grid(grid(mask[:, t:, t:], (ho, wo)).transpose(1, 2), (ho, wo)).transpose(1, 2)
    return torch.cat([torch.cat([txt_txt, txt_img], 2), torch.cat([img_txt, img_img], 2)], 1)


def hidream_text(options: dict) -> torch.Tensor:
    """A HiDream conditioning's Llama 3.1 per-layer states [B, layers, L, 4096] ("conditioning_llama3"),
    checked with its "pooled_output": both come from QuadrupleCLIPLoader's CLIP, as in ComfyUI."""
    llama, pooled = options.get("conditioning_llama3"), options.get("pooled_output")
    if llama is None or pooled is None:
        missing = " and ".join(name for name, value in (("conditioning_llama3", llama), ("pooled_output", pooled))
                               if value is None)
        raise ValueError(f"a HiDream model needs the conditioning's {missing} (Llama 3.1's per-layer states and the "
                         "pooled CLIP-L + CLIP-G vector): encode the prompt with a CLIP from QuadrupleCLIPLoader "
                         "(CLIP-L, CLIP-G, T5-XXL, Llama 3.1 8B)")
    if not torch.is_tensor(llama) or llama.ndim != 4:
        raise ValueError("a HiDream conditioning's conditioning_llama3 must be Llama's per-layer states "
                         f"[B, layers, L, 4096], got {getattr(llama, 'shape', type(llama).__name__)}")
    return llama


def flow_vectors(model, options: dict, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(y [B, P] or None, guidance [B] or None) of one conditioning entry for a flow model. y is the
    pooled text vector (zeros when the conditioning has none, as ComfyUI's zeroed encoders give);
    guidance only for models with a guidance embedding (FLUX dev, HunyuanVideo, the distilled HunyuanImage
    2.1), default 3.5 (HunyuanVideo and HunyuanImage 6.0) as in ComfyUI; for
    Chroma (no y: None) the conditioning's (FluxGuidance) when it sets one, else None (the model's 0)."""
    if getattr(model, "arch", None) == "chroma":  # no pooled vector
        value = options.get("guidance")
        return None, None if value is None else torch.full((batch,), float(value))
    spec = ARCHITECTURES.get(getattr(model, "arch", None))
    if spec is not None and spec.flow and not spec.pooled:  # no pooled vector; a guidance embedding only in
        # a distilled file (HunyuanImage 2.1's: FluxGuidance's value, else its family's default)
        value = options.get("guidance", spec.guidance) if getattr(model, "guidance_embed", False) else None
        return None, None if value is None else torch.full((batch,), float(value))
    declared = getattr(model, "pooled_channels", None)
    pooled = options.get("pooled_output")
    if getattr(model, "arch", None) == "hidream":  # ComfyUI's encode_adm reads it, no zeros instead
        hidream_text(options)
        declared = model.adm_channels
    if pooled is None:
        width = model.adm_channels if getattr(model, "arch", None) == "hunyuan_video" else None  # (tiny ones too)
        pooled = torch.zeros(1, declared or width or (spec.pooled if spec is not None else 0))
    pooled = pooled.float().reshape(-1, pooled.shape[-1])
    if declared and pooled.shape[-1] != declared:
        raise ValueError(f"the pooled text vector has {pooled.shape[-1]} channels, this "
                         f"{getattr(model, 'arch', 'flow')} model expects {declared}")
    if pooled.shape[0] != batch:
        pooled = pooled.repeat(math.ceil(batch / pooled.shape[0]), 1)[:batch]
    guidance = None
    if getattr(model, "guidance_embed", False):
        value = options.get("guidance", DEFAULT_FLUX_GUIDANCE if spec is None or spec.guidance is None
                            else spec.guidance)
        if value is not None:
            guidance = torch.full((batch,), float(value))
    return pooled, guidance
