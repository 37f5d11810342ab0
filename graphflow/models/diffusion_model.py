"""The MODEL socket: a UNet or a flow transformer (MM-DiT, FLUX) plus what a sampler must know
about it (prediction type, latent format, noise schedule or flow shift, vector conditioning)."""

import copy
from dataclasses import dataclass

import torch

from .architectures import ARCHITECTURES, network_latent_format
from .cast_layers import FP8_DTYPES, compute_dtype
from .latent_formats import WAN22, LatentFormat
from .unet import timestep_embedding

PREDICTIONS = ("eps", "v", "x0", "lcm", "img_to_img", "edm", "flow", "cosmos_rflow")  # as graphflow.sampling.model_sampling (+ flow)


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


# PixArt-α / Σ: DDPM's linear betas (ComfyUI's "sqrt_linear" for PixArt), epsilon prediction
PIXART_SCHEDULE = BetaSchedule(linear_start=0.0001, linear_end=0.02, num_timesteps=1000, kind="linear")


class DiffusionModel:
    """A denoising network and what a sampler needs to know about it. Copying is shallow:
    `with_unet` gives a new DiffusionModel that differs only by its network, `with_patches` one
    that differs by the weight patches (LoRAs, graphflow.memory.WeightPatch) the memory manager
    applies to the shared network before it runs. `unet` holds the network for every family.

    UNet families (sd1, sd2, sdxl, sdxl_refiner; prediction "eps" or "v"):
        model(x, t, context, y) with model-space x, float timesteps t in [0, 999] (LDM
        convention), context [B, T, C], y SDXL's vector or None -> eps or v.

    Flow families (sd3, flux, chroma; prediction "flow", rectified flow x_t = (1 - sigma) x0 + sigma eps):
        model(x, sigma, context, y, guidance=None, concat=None) -> velocity v, x0 = x - sigma * v
        x        model-space latent [B, 16, h, w] (what the sampler holds; FLUX packs 2x2 inside)
        sigma    float tensor [B] in [0, 1]; the network scales it by 1000 itself
        context  text tokens [B, T, 4096] (SD3: CLIP-L+G states zero-padded to 4096 next to T5's
                 along T; FLUX: T5's)
        y        pooled vector [B, 2048] (SD3: CLIP-L + CLIP-G pooled) or [B, 768] (FLUX: CLIP-L);
                 Chroma has none ([B, 0])
        guidance [B] floats (or one), FLUX dev's distilled guidance (FluxGuidance); None skips
                 the guidance embedding, as ComfyUI's model does (FluxDisableGuidance; the sampler
                 passes ComfyUI's default 3.5 when the conditioning sets none); ignored by models
                 without `guidance_embed` (schnell, SD3)
        concat   FLUX Fill's extra channels [B, 80, h, w]: masked-image latent (16) + mask folded
                 8x8 into 64 channels
        reference_latents, reference_method  FLUX Kontext's reference images (ReferenceLatent):
                 model-space latents [B, 16, h, w] appended to the image tokens, placed by
                 "offset" / "index" / "uxo" (graphflow.models.flux.reference_positions)
    The flow shift a sampler applies by default (ComfyUI's): SD3 `sampling_shift` 3.0, sigma' =
    s t / (1 + (s - 1) t). FLUX dev `shift_dynamic`: the resolution-dependent exponential shift,
    mu linear from base_shift 0.5 at 256 image tokens to max_shift 1.15 at 4096, sigma' = e^mu /
    (e^mu + 1/t - 1) (`sampling_shift` 1.15 is the mu used without a resolution). schnell:
    fixed `sampling_shift` 1.0, no shift. Chroma: ComfyUI samples it as FLUX dev (ModelSamplingFlux,
    mu 1.15), with guidance 0 and real CFG. Chroma Radiance is arch "chroma" too (sampled alike,
    ComfyUI's ChromaRadiance being a Chroma), its x the image [B, 3, H, W] in -1..1 (latent format
    CHROMA_RADIANCE, the pixel_space VAE).

    LTX-Video (ltxv, graphflow.models.ltxv): x a video latent [B, 128, frames, h, w]; context T5's
    tokens; model(x, sigma, context, y, frame_rate=25.0, keyframe_positions=None) (y unused: no
    pooled vector; keyframe_positions: LTXVAddGuide's appended guide frames' coordinates). Sampled
    as ComfyUI does, ModelSamplingFlux with mu 2.37 (`sampling_shift`) unless ModelSamplingLTXV
    sets another.

    Mochi 1 (mochi, graphflow.models.mochi): x a video latent [B, 12, frames, h, w]; context T5's
    tokens; model(x, sigma, context, y, attention_mask=None) (y unused). Sampled as ComfyUI does,
    ModelSamplingSD3's discrete flow with shift 6.0 and multiplier 1 (`sampling_shift`).

    Lumina Image 2.0 (lumina2, graphflow.models.lumina2): x a FLUX-VAE latent [B, 16, h, w];
    context Gemma-2 2B's states; model(x, sigma, context, y, text_mask=None) (y unused). Sampled
    as ComfyUI's Lumina2: discrete flow, shift 6.0, multiplier 1 (`sampling_shift`).

    Qwen-Image (qwen_image, graphflow.models.qwen_image): x a Wan-2.1-VAE latent as one frame
    [B, 16, 1, h, w] (ComfyUI's, from EmptySD3LatentImage's [B, 16, h, w]); context Qwen2.5-VL 7B's
    states; model(x, sigma, context, y, text_mask=None) (y unused). Sampled as ComfyUI's QwenImage
    (ModelType.FLUX): ModelSamplingFlux, shift (mu) 1.15, timestep sigma (`sampling_shift`).

    HiDream-I1 (hidream, graphflow.models.hidream): x a FLUX-VAE latent [B, 16, h, w]; context
    T5-XXL's states [B, T, 4096]; y the pooled CLIP-L + CLIP-G vector [B, 2048] (the conditioning's
    "pooled_output"); model(x, sigma, context, y, llama_states=...) with Llama 3.1's per-layer
    states [B, 32, L, 4096] (the conditioning's "conditioning_llama3"). Sampled as ComfyUI's HiDream
    (ModelType.FLOW, sampling_settings empty): discrete flow, shift 1.0, multiplier 1000; its
    workflows set the shift with ModelSamplingSD3 (3.0 Full, 6.0 Dev / Fast). HiDream-E1 (same
    layout): image_cond, InstructPixToPixConditioning's latent, set beside x along the width.
    HunyuanVideo 1.0 (hunyuan_video, graphflow.models.hunyuan_video): x a video latent [B, 16, frames,
    h, w] of its causal 3-D VAE (format HUNYUAN_VIDEO, scale 0.476986); context LLaVA-Llama-3's states,
    y CLIP-L's pooled vector; model(x, sigma, context, y, guidance=None, text_mask=None). Sampled as
    ComfyUI's HunyuanVideo: discrete flow, shift 7.0, multiplier 1000 (`sampling_shift`); its
    distilled guidance is FluxGuidance's, 6.0 when the conditioning sets none.
    HunyuanImage 2.1 (hunyuan_image, graphflow.models.hunyuan_image): x an image latent [B, 64, h, w] of
    its 32x VAE (format HUNYUAN_IMAGE21, scale 0.75289); context Qwen2.5-VL 7B's states (no pooled
    vector); model(x, sigma, context, y, guidance=None, text_mask=None, txt_byt5=None, sigma_next=None):
    txt_byt5 the conditioning's "conditioning_byt5small" (byT5's states of the quoted text). Sampled as
    ComfyUI's HunyuanImage21: discrete flow, shift 5.0, multiplier 1000 (`sampling_shift`); the distilled
    file's guidance embedding takes FluxGuidance's value, 6.0 when the conditioning sets none, and its
    MeanFlow embedding the step's next sigma. Its refiner (config.refiner): x [B, 128, 1, h, w], the
    sampled HunyuanImage21Refiner latent (64 channels: its VAE's 32 with the frame paired) and the
    conditioning's concat_latent_image (HunyuanRefinerLatent's); shift 4.0; guidance 6.0 by default.

    AuraFlow (aura_flow, graphflow.models.aura_flow): x an SDXL-VAE latent [B, 4, h, w]; context Pile-T5-XL's
    states [B, T, 2048]; model(x, sigma, context, y) (y unused), the network's timestep sigma itself. Sampled
    as ComfyUI's AuraFlow: discrete flow, shift 1.73, multiplier 1 (`sampling_shift`).

    Wan 2.1 (wan, graphflow.models.wan): x a video latent [B, 16, frames, h, w] (image-to-video
    models: 36 channels in, the concat's mask and image latent after the latent); context UMT5's
    512 tokens; model(x, sigma, context, y, clip_fea=None) (y unused; clip_fea CLIP vision's
    penultimate states for I2V). Sampled as ComfyUI does, ModelSamplingSD3's discrete flow with
    shift 8.0 (multiplier 1000: the network's timestep is 1000 sigma).

    Stable Cascade (stable_cascade_c: Stage C, the prior; stable_cascade_b: Stage B, the decoder;
    graphflow.models.stable_cascade), prediction "eps" on StableCascadeSampling's cosine schedule
    (graphflow.sampling.model_sampling.CascadeSchedule) with `sampling_shift` 2.0 (C) / 1.0 (B):
        model(x, t, context, y, effnet=None): t in [0, 1]; context CLIP-G's hidden states; y its
        pooled output [B, 1280]; effnet Stage C's latent (Stage B's "stable_cascade_prior").

    PixArt-α / Σ ("pixart", graphflow.models.pixart), prediction "eps" on PIXART_SCHEDULE, latent
    SD1's (α) or SDXL's (Σ): model(x, t, context, y) as the UNets, context T5-XXL's tokens, y α's
    micro-conditioning [B, 3] (height, width, aspect ratio; encode_adm), None for Σ.

    Stable Video Diffusion (svd: graphflow.models.svd), prediction "v" in continuous EDM time
    (sigmas 0.002 .. 700; the loader sets it), frames on the batch dimension:
        model(x, t, context, y, num_frames): context the init image's CLIP vision embedding, y
        svd_adm of the conditioning's fps / motion_bucket_id / augmentation_level, the init
        image's latent on the channels (the 8-channel path of graphflow.sampling.pipeline).
    SV3D (sv3d_u / sv3d_p) is this arch too, its unet.config.variant telling which y it takes:
    the augmentation level alone (u) or with each frame's camera elevation / azimuth (p).

    Cosmos-Predict2 (cosmos, graphflow.models.cosmos), prediction "cosmos_rflow": ComfyUI's
    rectified flow in EDM sigmas (graphflow.sampling.model_sampling.CosmosRFlowSchedule); x a video
    latent [B, 16, frames, h, w] (an image is one frame), in the Wan 2.1 VAE's format;
    model(x, t, context, y) with t = sigma / (1 + sigma), context old T5-XXL's 512 tokens, y unused.

    Cosmos 1.0 (cosmos1, graphflow.models.cosmos.Cosmos1), prediction "edm" in continuous time
    (sigmas 0.002 .. 80, sigma_data 0.5, timestep ln(sigma) / 4; the loader sets it); x a video
    latent [B, 16 (+1 Video2World mask), frames, h, w] of Cosmos' CV8x8x8 tokenizer (format
    COSMOS1); model(x, t, context, y, fps=None), context old T5-XXL's 512 tokens, fps the
    conditioning's frame_rate (ComfyUI passes none unless it is set). A noise mask's known
    frames are seen clean (scale_latent_inpaint)."""

    def __init__(self, unet, arch: str, prediction: str = "eps", latent_format: LatentFormat | None = None,
                 beta_schedule: BetaSchedule | None = None, sampling_shift: float | None = None,
                 shift_dynamic: bool | None = None, base_shift: float = 0.5, max_shift: float = 1.15):
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; expected one of {tuple(ARCHITECTURES)}")
        if prediction not in PREDICTIONS or (prediction == "flow") != ARCHITECTURES[arch].flow:
            raise ValueError(f"prediction {prediction!r} does not fit {arch}: flow models (sd3, flux) predict "
                             f"'flow', the UNet families one of {PREDICTIONS[:-1]}")
        self.unet = unet.eval()
        self.arch = arch
        self.prediction = prediction
        self.latent_format = latent_format or network_latent_format(arch, getattr(unet, "config", None))
        # the latent format the file was read with: sampling nodes (ModelSamplingContinuousEDM's
        # edm_playground_v2.5) change latent_format, the savers write this one, as ComfyUI stores no sampling choice
        self.read_latent_format = self.latent_format
        if beta_schedule is None:  # SD's, but the x4 upscaler was trained on its own
            from .x4_upscaler import SCHEDULE

            beta_schedule = SCHEDULE if self.upscaler else BetaSchedule()
        self.beta_schedule = beta_schedule
        self.guidance_embed = bool(getattr(unet.config, "guidance_embed", False))
        if sampling_shift is None:  # FLUX schnell (no guidance embedding): 1; HunyuanImage's refiner: 4 (ComfyUI's)
            sampling_shift = 1.0 if arch == "flux" and not self.guidance_embed else \
                4.0 if self.is_hunyuan_image_refiner else ARCHITECTURES[arch].shift
        self.sampling_shift = sampling_shift
        self.shift_dynamic = (arch == "flux" and self.guidance_embed) if shift_dynamic is None else shift_dynamic
        self.base_shift, self.max_shift = base_shift, max_shift
        self.zsnr = False  # sigma table rescaled to zero terminal SNR (ModelSamplingDiscrete, 'ztsnr' key)
        self.edm = None  # (sigma_min, sigma_max): continuous-time sampling (ModelSamplingContinuousEDM / V)
        # ComfyUI's model type V_PREDICTION_EDM, fixed when the file is read (its edm_vpred marker,
        # CosXL): an SDXL InstructPix2Pix model then takes its image latent scaled (CosXL edit)
        self.edm_v_file = False
        # ComfyUI's model type (model.model.model_type), fixed when the file is read: "eps", "v",
        # "v_edm" (an EDM-style v file: CosXL, SVD), else the prediction ("flow", "edm", ...).
        # Sampling nodes leave it; the savers write it (predict_key, v_pred), as ComfyUI's do
        self.model_type = prediction
        self.continuous_timestep = "log"  # how continuous sampling tells the UNet sigma: "log" (EDM) or "atan" (V)
        self.noise_augmentor = None  # unCLIP models: y is a noise-augmented CLIP image embedding (models.unclip)
        self.context_projection = None  # Stable Zero123's cc_projection: [image embedding, camera] -> context
        # SDXL base: (positive, negative) factors on the original size in y, crops and target sizes
        # left as they are (art-venture's Fooocus samplers patch ComfyUI's SDXL.encode_adm so)
        self.adm_size_scale: tuple[float, float] | None = None
        # Sampling options set by model-patch nodes, read by graphflow.sampling.pipeline:
        # "cfg_rescale" (RescaleCFG's multiplier), "differential_diffusion" (its strength),
        # "compile_backend" (TorchCompileModel's: graphflow.models.speed).
        self.options: dict = {}
        self.patches: tuple = ()  # graphflow.memory.WeightPatch on `unet`, applied in order

    @property
    def is_flow(self) -> bool:
        return self.prediction == "flow"

    @property
    def in_channels(self) -> int:
        """Latent channels the network takes (FLUX: its packed width / 4; Chroma Radiance: RGB)."""
        cfg = self.unet.config
        packed = ARCHITECTURES[self.arch].packed and not getattr(cfg, "pixel_space", False)
        return cfg.in_channels // (4 if packed else 1)

    @property
    def inpaint(self) -> bool:
        """A 9-channel inpainting model: input = noisy latent (4) + mask (1) + masked-image latent (4)."""
        return not self.is_flow and self.in_channels == 2 * self.latent_format.channels + 1

    @property
    def fill(self) -> bool:
        """FLUX Fill: 16 latent + 80 concat channels (masked-image latent, mask folded 8x8)."""
        return self.arch == "flux" and self.in_channels == self.latent_format.channels + 80

    @property
    def upscaler(self) -> bool:
        """Stability's x4 upscaler: the low-res image's 3 channels follow the latent, its noise level
        is the class label (graphflow.models.x4_upscaler)."""
        return not self.is_flow and bool(getattr(self.unet.config, "num_classes", 0))

    @property
    def is_video(self) -> bool:
        """Latents [B, C, frames, h, w] (LTX-Video, Mochi, Wan; Cosmos, Qwen-Image and the HunyuanImage refiner: an
        image is one frame)."""
        return ARCHITECTURES[self.arch].video or self.is_hunyuan_image_refiner

    @property
    def is_hunyuan_image_refiner(self) -> bool:
        return self.arch == "hunyuan_image" and bool(getattr(self.unet.config, "refiner", False))

    @property
    def masked_timesteps(self) -> bool:
        """A video latent's noise mask scales the timestep the network is told, per token (LTX-Video,
        Mochi) or per frame (the Wan 2.2 TI2V 5B; Wan 2.1 and Qwen-Image are told the step's, as ComfyUI's
        WAN21 and QwenImage)."""
        wan21 = self.arch == "wan" and self.latent_format is not WAN22
        return ARCHITECTURES[self.arch].masked_timesteps and not wan21

    @property
    def default_frame_rate(self) -> float | None:
        """The frame rate a video model is told when the conditioning sets none (LTXVConditioning
        sets one): LTX-Video's 25; None for Cosmos 1.0, whose RoPE then counts frames (ComfyUI's)."""
        return None if self.arch == "cosmos1" else 25.0

    def scale_latent_inpaint(self, schedule):
        """ComfyUI's per-model scale_latent_inpaint: f(sigma, latent) -> what a noise mask's known
        region is set to before each model call, or None for the sampler's generic rule (the
        latent noised to sigma; a video's clean latent). Cosmos 1.0 (CosmosVideo): the latent as
        the network would see it at sigma 0 (schedule.c_in), rescaled so that c_in at sigma
        gives it back: the known frames are seen clean. Cosmos-Predict2: its schedule's."""
        if self.arch != "cosmos1":
            return getattr(schedule, "scale_latent_inpaint", None)

        def known(sigma, latent):
            s = sigma.reshape(sigma.shape[:1] + (1,) * (latent.ndim - 1)) if sigma.ndim else sigma
            clean = schedule.c_in(torch.zeros_like(sigma), latent)
            return clean * (s ** 2 + schedule.sigma_data ** 2) ** 0.5

        return known

    @property
    def is_cascade(self) -> bool:
        return ARCHITECTURES[self.arch].cascade

    @property
    def adm_channels(self) -> int:
        if self.arch == "pixart":  # α's (height, width, aspect ratio); Σ takes none
            return 3 if self.unet.config.micro_condition else 0
        width = ARCHITECTURES[self.arch].vector_width
        return getattr(self.unet.config, width) if width else 0

    @property
    def device(self) -> torch.device:
        from graphflow.memory import manager

        return manager().device_for(self.unet)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (fp8-stored weights are upcast to it layer by layer)."""
        return compute_dtype(self.unet)

    def to(self, device=None, dtype=None) -> "DiffusionModel":
        """Move and/or change the compute dtype; fp8-stored weights stay fp8."""
        if dtype is None:
            self.unet.to(device=device)
        else:
            self.unet._apply(lambda t: t.to(device=device, dtype=dtype if t.is_floating_point()
                                            and t.dtype not in FP8_DTYPES else t.dtype))
        return self

    def with_sampling(self, prediction: str, zsnr: bool = False) -> "DiffusionModel":
        """The same model sampled with another parametrisation / sigma table (shares the UNet)."""
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if prediction == "edm":
            raise ValueError("'edm' prediction needs continuous sampling (with_continuous_sampling)")
        clone = copy.copy(self)
        clone.prediction, clone.zsnr, clone.edm, clone.continuous_timestep = prediction, bool(zsnr), None, "log"
        return clone

    def with_continuous_sampling(self, prediction: str, sigma_min: float, sigma_max: float,
                                 timestep: str = "log") -> "DiffusionModel":
        """The same model sampled in continuous time, sigmas in [sigma_min, sigma_max]; prediction
        "edm", "v", "eps" or "cosmos_rflow" (Cosmos-Predict2's rectified flow in EDM sigmas, its
        own timestep); the UNet's timestep 0.25 ln sigma ("log", EDM) or 2/pi atan sigma
        ("atan", ModelSamplingContinuousV)."""
        if prediction not in ("edm", "v", "eps", "cosmos_rflow"):
            raise ValueError(f"continuous-time prediction must be 'edm', 'v', 'eps' or 'cosmos_rflow', "
                             f"got {prediction!r}")
        if timestep not in ("log", "atan"):
            raise ValueError(f"continuous-time timestep must be 'log' or 'atan', got {timestep!r}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min {sigma_min} and sigma_max {sigma_max}")
        clone = copy.copy(self)
        clone.prediction, clone.zsnr, clone.edm = prediction, False, (float(sigma_min), float(sigma_max))
        clone.continuous_timestep = timestep
        return clone

    def with_options(self, **options) -> "DiffusionModel":
        """The same model with sampling options added (see `options`); the original is unchanged."""
        clone = copy.copy(self)
        clone.options = {**self.options, **options}
        return clone

    def with_unet(self, unet) -> "DiffusionModel":
        """The same model with another network of the same layout (the patches still apply)."""
        clone = copy.copy(self)
        clone.unet = unet
        return clone

    def with_patches(self, patches: tuple) -> "DiffusionModel":
        clone = copy.copy(self)
        clone.patches = tuple(patches)
        return clone

    def __call__(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None,
                 y: torch.Tensor | None = None, guidance: torch.Tensor | None = None, **extra) -> torch.Tensor:
        from graphflow.memory import manager

        if self.patches is not None:  # None: the caller placed the weights (graphflow.training's copy)
            manager().patch(self.unet, self.patches)  # the shared weights may hold another model's patches
        if self.is_flow:
            if y is None:  # no pooled text vector: zeros, as ComfyUI does
                y = torch.zeros(x.shape[0], self.adm_channels, device=x.device, dtype=x.dtype)
            return self.unet(x, timesteps, context, y, guidance=guidance, **extra)
        return self.unet(x, timesteps, context, y)

    def encode_context(self, embedding: torch.Tensor) -> torch.Tensor:
        """A conditioning's embedding [B, T, D] as the network's context: Stable Zero123 projects its
        image + camera embeddings (graphflow.models.zero123.project_context); others take it as it is."""
        if self.context_projection is None:
            return embedding
        from .zero123 import project_context

        return project_context(self.context_projection, embedding, self.unet.config.context_dim)

    def _cascade_images(self, entries, batch: int) -> torch.Tensor:
        """Stage C's clip_img from unCLIP conditioning, as ComfyUI's StableCascade_C: every image
        embedding times its entry's strength (noise_augmentation unused), in order, flattened
        [batch, N * 768] to ride after the pooled vector (graphflow.models.stable_cascade)."""
        width = self.unet.config.clip_image_width
        images = [e["clip_vision_output"].image_embeds.float().cpu() * e["strength"] for e in entries]
        if not images or any(i.ndim != 2 or i.shape[-1] != width for i in images):
            raise ValueError(f"Stable Cascade Stage C takes {width}-wide CLIP image embeddings (CLIP ViT-L's) from "
                             f"unCLIPConditioning; got {[tuple(i.shape) for i in images]}")
        return torch.cat(images).reshape(1, -1).expand(batch, -1)

    def encode_adm(self, cond_options: dict, width_px: int, height_px: int, negative: bool = False,
                   seed: int = 0, device=None) -> torch.Tensor | None:
        """SDXL's vector conditioning y [B, adm_channels], or None for SD1/SD2; the x4 upscaler's
        class label [1]; PixArt-α's [[height, width, aspect ratio]].
        unCLIP models: the conditioning's image embeddings, noise-augmented with noise from `seed`
        (graphflow.models.unclip.unclip_adm; `device`: the model's, where ComfyUI draws a merge's noise).
        SDXL with unCLIP conditioning (ComfyUI's "revision"): the augmented CLIP-G image embeddings
        replace the pooled text vector (graphflow.models.unclip.sdxl_pooled). Stable Cascade Stage C
        with unCLIP conditioning: the pooled vector followed by the weighted image embeddings.

        base (2816):    pooled CLIP-G [B, 1280] + 256-d sinusoidal embeddings of
                        (orig height, orig width, crop top, crop left, target height, target width)
        refiner (2560): pooled [B, 1280] + embeddings of (orig height, orig width, crop top, crop left,
                        aesthetic score)
        Sizes default to the image being generated (width_px x height_px), crops to 0, the aesthetic
        score to 6.0 (2.5 for the negative prompt, as SDXL's refiner was trained). `adm_size_scale`
        (positive, negative) scales the base's original size, not its crops or target size."""
        if self.is_flow or self.is_cascade:  # the pooled text vector as it is (zeros without one, as ComfyUI)
            pooled = cond_options.get("pooled_output")
            pooled = torch.zeros(1, self.adm_channels) if pooled is None else pooled.float().cpu().reshape(-1, self.adm_channels)
            if self.arch == "stable_cascade_c" and "unclip_conditioning" in cond_options:
                return torch.cat([pooled, self._cascade_images(cond_options["unclip_conditioning"], pooled.shape[0])], 1)
            return pooled
        if self.arch == "pixart":  # CLIPTextEncodePixArtAlpha's size, else the image's (ComfyUI's fallback)
            width, height = cond_options.get("width"), cond_options.get("height")
            if width is None or height is None:
                width, height = width_px, height_px
            return torch.tensor([[float(height), float(width),
                                  float(cond_options.get("aspect_ratio", height / width))]])
        if self.arch == "svd":  # ComfyUI's SVD_img2vid / SV3D_u / SV3D_p defaults
            from .svd import sv3d_p_adm, sv3d_u_adm, svd_adm

            variant = self.unet.config.variant
            augmentation = cond_options.get("augmentation_level", 0.0)
            if variant == "sv3d_u":
                return sv3d_u_adm(augmentation)
            if variant == "sv3d_p":
                return sv3d_p_adm(augmentation, cond_options.get("elevation", 0.0), cond_options.get("azimuth", 0.0))
            if "azimuth" in cond_options:
                raise ValueError("this conditioning is SV3D_Conditioning's (camera elevation / azimuth per frame); "
                                 "it needs an SV3D model (sv3d_u / sv3d_p), this one is Stable Video Diffusion: "
                                 "condition it with SVD_img2vid_Conditioning")
            return svd_adm(cond_options.get("fps", 6), cond_options.get("motion_bucket_id", 127),
                           cond_options.get("augmentation_level", 0.0))
        if self.upscaler:  # the class label: the low-res image's noise level (0 without one)
            from .x4_upscaler import noise_level

            return torch.tensor([noise_level(cond_options.get("noise_augmentation", 0.0))])
        if self.noise_augmentor is not None:
            from .unclip import unclip_adm

            return unclip_adm(cond_options.get("unclip_conditioning"), self.noise_augmentor, seed, device=device)
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
            target = cond_options.get("target_height", height), cond_options.get("target_width", width)
            if self.adm_size_scale is not None:
                factor = self.adm_size_scale[1 if negative else 0]
                width, height = width * factor, height * factor
            values = [height, width, crop_top, crop_left, *target]
        pooled = cond_options.get("pooled_output")
        if "unclip_conditioning" in cond_options:  # the image embeddings instead of the text's, as ComfyUI
            from .unclip import sdxl_pooled

            pooled = sdxl_pooled(cond_options["unclip_conditioning"], seed, device)
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
