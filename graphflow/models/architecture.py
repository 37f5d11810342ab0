"""What a single-file SD checkpoint is: its LDM key layout and the architecture its keys show.

Architecture detection works on key names and shapes (see `detect_architecture`). What weights
cannot show comes from the file's `graphflow.config` metadata (see graphflow.models.weight_files).

v-prediction cannot be seen in weights. It is taken, first match wins, from: the `prediction`
argument; graphflow.config; the ModelSpec metadata `modelspec.prediction_type`; a `v_pred`
marker key (ComfyUI's convention); for 4-channel SD2 only, ComfyUI's heuristic (std of
output_blocks.11.1.transformer_blocks.0.norm1.bias > 0.09 means the 768-v model); else eps.

Playground v2.5 (an SDXL file with ComfyUI's `edm_mean` and `edm_std` marker keys) is told by its
markers as ComfyUI's SDXL.model_type tells it (comfyanonymous/ComfyUI comfy/supported_models.py,
commit c4d1a8d3567a1363db63e8212b99a1a6bffb5719, whose order is both Playground markers, then
edm_vpred.sigma_max, then v_pred: a file with Playground's markers and edm_vpred keys is Playground;
005e370254d42fcc07904b607b2354dc091f814f has no edm_vpred branch): prediction "edm" (Karras et
al.'s F-prediction, sigma_data 0.5) on continuous sigmas 0.002 .. 80 (sigma_range), latent format
PLAYGROUND_2_5. One marker alone is plain SDXL (noted), as ComfyUI asks for both.
The markers' values are not read (ComfyUI's constants are the format's; diffusers' converter,
loaders/single_file_utils.py of diffusers 0.42.1, copies the values into its VAE config as
latents_mean / latents_std with scaling_factor 0.5). sigma_data 0.5 goes with "edm" in
graphflow.sampling.model_sampling.ContinuousSchedule, as ComfyUI's ModelSamplingContinuousEDM node
sets it for "edm" and "edm_playground_v2.5" (1.0 otherwise; its io-schema version in
comfy_extras/nodes_model_advanced.py, read in the code index, and the older
048426796c7330fc901cf1638f9895a1ffe300c5 for edm_playground_v2.5).
"""

from collections import Counter
from dataclasses import dataclass, field, fields, replace

from .architectures import ARCHITECTURES
from .configs import (ARCH_TOWERS, HF, TowerSpec, UNetConfig, VAEConfig, unet_config_from_state_dict,
                      vae_config_from_state_dict)
from .flow_architecture import FlowInfo, detect_flow_model
from .latent_formats import PLAYGROUND_2_5, SD1, SD_X4, SDXL, LatentFormat
from .weight_files import CONFIG_KEY, CONFIG_SECTIONS, CheckpointError, read_graphflow_config
from .zero123 import CAMERA_WIDTH, CC_PROJECTION, is_zero123

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
# ComfyUI's keys for an EDM-style v-prediction model's sigma range (CosXL; read for SDXL)
EDM_VPRED_MAX, EDM_VPRED_MIN = "edm_vpred.sigma_max", "edm_vpred.sigma_min"
# ComfyUI's markers of Playground v2.5 (both needed; read for SDXL): EDM in its own latent space,
# with ComfyUI's SDXL sampling_settings for it (sigma_data 0.5 comes with prediction "edm")
PLAYGROUND_MARKERS = ("edm_mean", "edm_std")
PLAYGROUND_SIGMAS = (0.002, 80.0)
VAE_PARTS = ("encoder", "decoder", "quant_conv", "post_quant_conv")  # a VAE file's other keys (loss.*) are not read

# -- key prefixes ------------------------------------------------------------------------------

_KNOWN_PREFIXES = (UNET_PREFIX, VAE_PREFIX, "cond_stage_model.transformer.", "cond_stage_model.model.visual.",
                   "cond_stage_model.model.",
                   "conditioner.embedders.0.transformer.", "conditioner.embedders.0.model.",
                   "conditioner.embedders.1.model.", "model_ema.", "text_encoders.clip_l.transformer.",
                   "text_encoders.clip_g.transformer.", "text_encoders.t5xxl.transformer.", "vae.",
                   "embedder.model.visual.", "noise_augmentor.", "low_scale_model.", "cc_projection.")


def prefix_summary(keys) -> dict[str, int]:
    """Key counts by prefix: the known checkpoint sections, else the first name component."""
    counts = Counter()
    for key in keys:
        prefix = next((p for p in _KNOWN_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            prefix = "lora_*" if key.startswith("lora_") else key.split(".")[0] + ("." if "." in key else "")
        counts[prefix] += 1
    return dict(counts.most_common())


def format_prefixes(prefixes: dict[str, int], limit: int = 8) -> str:
    if not prefixes:
        return "(no tensors)"
    items = [f"{p} ({n})" for p, n in list(prefixes.items())[:limit]]
    more = len(prefixes) - limit
    return ", ".join(items) + (f", and {more} more" if more > 0 else "")


def _hint(shapes, prefixes: dict[str, int]) -> str:
    from .file_kind import identify

    kind = identify(shapes)
    if kind is not None:
        return " " + kind.advice()
    if any(p.startswith(("down_blocks", "up_blocks", "conv_in")) for p in prefixes):
        return " This looks like a diffusers-format UNet; single-file (LDM layout) checkpoints are expected."
    return ""


# -- architecture detection --------------------------------------------------------------------

@dataclass
class ArchInfo:
    """What a checkpoint is, as far as its keys, shapes and metadata tell."""

    arch: str  # sd1 | sd2 | sdxl | sdxl_refiner
    prediction: str  # eps | v | edm (Playground v2.5: continuous sigmas, sigma_range)
    prediction_source: str
    unet: UNetConfig
    vae: VAEConfig | None
    towers: tuple[TowerSpec, ...]
    latent_format: LatentFormat
    tower_overrides: dict = field(default_factory=dict)
    prefixes: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    zero_terminal_snr: bool = False  # a 'ztsnr' marker key with v-prediction: a zero-terminal-SNR schedule
    unclip: bool = False  # SD2.1-unCLIP: y is a noise-augmented CLIP image embedding (graphflow.models.unclip)
    upscaler: bool = False  # Stability's x4 upscaler: 4 + 3 low-res image channels, noise-level label (models.x4_upscaler)
    zero123: bool = False  # Stable Zero123: image + camera context through cc_projection, image latent concat (models.zero123)
    sigma_range: tuple[float, float] | None = None  # continuous EDM sampling's (sigma_min, sigma_max): Playground

    @property
    def inpaint(self) -> bool:
        return self.unet.in_channels == 2 * self.latent_format.channels + 1

    @property
    def in_channels(self) -> int:
        return self.unet.in_channels

    @property
    def context_dim(self) -> int | None:
        return self.unet.context_dim

    @property
    def adm_channels(self) -> int:
        return self.unet.adm_in_channels

    @property
    def latent_channels(self) -> int:
        return self.latent_format.channels

    @property
    def name(self) -> str:
        return (ARCHITECTURES[self.arch].name + (" unCLIP" if self.unclip else "")
                + (" x4 upscaler" if self.upscaler else "")
                + (" Stable Zero123" if self.zero123 else "")
                + (" inpainting" if self.inpaint else "")
                + (" (v-prediction)" if self.prediction == "v" else "")
                + (" (EDM, Playground v2.5)" if self.prediction == "edm" else ""))


def _tower_present(shapes, spec: TowerSpec) -> bool:
    marker = "embeddings.token_embedding.weight" if spec.layout == HF else "token_embedding.weight"
    return spec.prefix + marker in shapes


def locate_towers(shapes) -> tuple[str | None, tuple[TowerSpec, ...], list[str]]:
    """The family whose text-encoder layout the keys show, its towers (prefixes adjusted to the
    file), and what is missing. Old SD1 files lack the `text_model.` level under transformer."""
    for arch in ("sdxl", "sdxl_refiner", "sd2", "sd1"):
        specs = []
        for spec in ARCH_TOWERS[arch]:
            if not _tower_present(shapes, spec) and spec.layout == HF:
                legacy = replace(spec, prefix=spec.prefix.removesuffix("text_model."))
                spec = legacy if _tower_present(shapes, legacy) else spec
            specs.append(spec)
        found = [s for s in specs if _tower_present(shapes, s)]
        if found:
            missing = [f"{s.name} under {s.prefix}" for s in specs if s not in found]
            return arch, tuple(specs), missing
    return None, (), []


def config_overrides(dataclass_type, values: dict | None, what: str):
    values = dict(values or {})
    names = {f.name for f in fields(dataclass_type)}
    unknown = set(values) - names
    if unknown:
        raise CheckpointError(f"{CONFIG_KEY}: unknown {what} fields {sorted(unknown)}; known: {sorted(names)}")
    return values


def _normalize_prediction(value) -> str:
    v = str(value).lower()
    if v in ("eps", "epsilon"):
        return "eps"
    if v in ("v", "v_prediction", "v-prediction"):
        return "v"
    raise CheckpointError(f"prediction must be 'eps' or 'v', got {value!r}")


def _detect_prediction(arch, unet: UNetConfig, shapes, metadata, config, prediction, get_tensor) -> tuple[str, str]:
    if prediction is not None:
        return _normalize_prediction(prediction), "given by the caller"
    if "prediction" in config:
        return _normalize_prediction(config["prediction"]), f"metadata {CONFIG_KEY}"
    spec = (metadata or {}).get("modelspec.prediction_type")
    if spec:
        return _normalize_prediction(spec), "metadata modelspec.prediction_type"
    if "v_pred" in shapes:
        return "v", "'v_pred' marker key"
    key = UNET_PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
    if arch == "sd2" and unet.in_channels == 4 and key in shapes and get_tensor is not None:
        std = float(get_tensor(key).float().std(unbiased=False))
        if std > 0.09:
            return "v", f"SD2 heuristic (ComfyUI's): norm1.bias std {std:.3f} > 0.09"
        return "eps", f"SD2 heuristic (ComfyUI's): norm1.bias std {std:.3f} <= 0.09"
    return "eps", "default: no v-prediction marker"


VIDEO_UNET_KEY = UNET_PREFIX + "input_blocks.1.0.time_stack.in_layers.2.weight"  # SVD's temporal ResBlock


def is_video_checkpoint(shapes) -> bool:
    """A Stable Video Diffusion or SV3D checkpoint (ImageOnlyCheckpointLoader's, graphflow.models.svd)."""
    return VIDEO_UNET_KEY in shapes


def detect_architecture(shapes: dict[str, tuple], metadata: dict[str, str] | None = None,
                        prediction: str | None = None, get_tensor=None) -> ArchInfo | FlowInfo:
    """Identify a single-file checkpoint from its key names and shapes (and safetensors metadata).

    SD3 / SD3.5 / FLUX.1 files (all-in-one or diffusion model only) give a FlowInfo
    (graphflow.models.flow_architecture); everything below is about the UNet families.

    The text-encoder layout decides the family: CLIP-L under cond_stage_model.transformer -> SD1;
    OpenCLIP under cond_stage_model.model -> SD2; CLIP-L + OpenCLIP bigG under conditioner.embedders.0/1
    -> SDXL base; bigG alone under conditioner.embedders.0 -> SDXL refiner. Without text-encoder
    keys, the UNet's numbers decide (context 768 -> SD1, 1024 -> SD2, adm 2816 -> SDXL, 2560 ->
    refiner). 9 UNet input channels mean an inpainting model. The UNet's context width must
    equal the text encoders' output and SDXL needs vector conditioning (adm); a mismatch is an
    unsupported variant and raises CheckpointError."""
    shapes = {k: tuple(v) for k, v in shapes.items()}
    if is_video_checkpoint(shapes):
        raise CheckpointError("this is an image-only video checkpoint (Stable Video Diffusion, SV3D): load it with "
                              "ImageOnlyCheckpointLoader")
    flow = detect_flow_model(shapes, metadata)
    if flow is not None:
        if prediction is not None and prediction != "flow":
            raise CheckpointError(f"{flow.name} is a rectified-flow model; prediction {prediction!r} does not apply")
        return flow
    config = read_graphflow_config(metadata)
    prefixes = prefix_summary(shapes)
    notes = []
    unknown_sections = set(config) - set(CONFIG_SECTIONS)
    if unknown_sections:
        notes.append(f"ignored unknown {CONFIG_KEY} sections {sorted(unknown_sections)}")

    unet_shapes = {k[len(UNET_PREFIX):]: s for k, s in shapes.items() if k.startswith(UNET_PREFIX)}
    if not unet_shapes:
        raise CheckpointError(f"no UNet keys under {UNET_PREFIX}; found prefixes: {format_prefixes(prefixes)}."
                              + _hint(shapes, prefixes))
    try:
        unet = unet_config_from_state_dict(unet_shapes)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise CheckpointError(f"the UNet keys under {UNET_PREFIX} are incomplete or of an unknown layout "
                              f"({type(e).__name__}: {e}); {len(unet_shapes)} UNet keys found") from None
    unet_values = config_overrides(UNetConfig, config.get("unet"), "unet")
    if unet_values:
        unet = replace(unet, **unet_values)

    # Stable Zero123 has no text encoder; its image encoder's leftovers (token_embedding, ...) are no tower
    zero123 = is_zero123(shapes)
    arch, towers, missing = ("sd1", (), []) if zero123 else locate_towers(shapes)
    if missing:
        raise CheckpointError(f"{ARCHITECTURES[arch].name} text encoder incomplete: missing {', '.join(missing)}; "
                              f"found prefixes: {format_prefixes(prefixes)}")
    context, adm = unet.context_dim, unet.adm_in_channels
    if arch is None:
        arch = config.get("arch") or {(768, 0): "sd1", (1024, 0): "sd2", (2048, 2816): "sdxl",
                                      (1280, 2560): "sdxl_refiner", (1024, 1536): "sd2",  # unCLIP-L
                                      (1024, 2048): "sd2"}.get((context, adm))  # unCLIP-H
        if arch not in ARCH_TOWERS:
            raise CheckpointError(f"no text encoder keys and the UNet (context {context}, adm {adm}) matches no "
                                  f"known architecture; found prefixes: {format_prefixes(prefixes)}")
        notes.append("no text encoder in the file: CLIP must come from a separate text encoder file")
    if zero123:
        _check_zero123(shapes, unet)
        notes.append("Stable Zero123: no text encoder; conditioned on a CLIP image embedding and camera angles "
                     "(StableZero123_Conditioning)")
    # SD2 with vector conditioning is SD2.1-unCLIP (label_emb takes the image embedding + its noise level)
    unclip = arch == "sd2" and bool(adm)
    if arch.startswith("sdxl") != bool(adm) and not unclip:
        raise CheckpointError(f"unsupported variant: {ARCHITECTURES[arch].name} text encoders with a UNet whose vector "
                              f"conditioning (adm_in_channels) is {adm}")

    tower_overrides = config.get("text_encoders") or {}
    if not isinstance(tower_overrides, dict):
        raise CheckpointError(f"{CONFIG_KEY}: 'text_encoders' must map tower names to config overrides")
    if towers:
        width = 0
        for spec in towers:
            hidden_key = spec.prefix + ("embeddings.token_embedding.weight" if spec.layout == HF else "token_embedding.weight")
            width += shapes[hidden_key][1]
        if context != width:
            raise CheckpointError(f"the UNet attends to context width {context} but the {ARCHITECTURES[arch].name} "
                                  f"text encoders give {width}: unsupported or mismatched checkpoint")

    vae = None
    vae_shapes = {k[len(VAE_PREFIX):]: s for k, s in shapes.items()
                  if k.startswith(VAE_PREFIX) and k[len(VAE_PREFIX):].split(".")[0] in VAE_PARTS}
    vae_values = config_overrides(VAEConfig, config.get("vae"), "vae")
    if vae_shapes:
        vae = vae_config_from_shapes(vae_shapes, vae_values, "first_stage_model.")
    else:
        notes.append(f"no VAE in the file (no keys under {VAE_PREFIX}): a separate VAE file is needed")

    # SD2 text encoder, a noise-level label table and 4 + 3 input channels: Stability's x4 upscaler
    upscaler = arch == "sd2" and bool(unet.num_classes) and unet.in_channels == SD_X4.channels + 3
    playground = arch == "sdxl" and all(k in shapes for k in PLAYGROUND_MARKERS)
    if arch == "sdxl" and not playground and any(k in shapes for k in PLAYGROUND_MARKERS):
        notes.append("only one of edm_mean/edm_std: read as plain SDXL (ComfyUI needs both)")
    latent_format = PLAYGROUND_2_5 if playground else SDXL if arch.startswith("sdxl") else SD_X4 if upscaler else SD1
    lf = config.get("latent_format") or {}
    if lf:
        latent_format = latent_format.with_scale(float(lf["scale_factor"]), lf.get("shift_factor"))
        if lf.get("rgb_factors"):  # a preview fit the file carries (the demo model's) beats the stock one
            latent_format = replace(latent_format, rgb_factors=tuple(tuple(map(float, r)) for r in lf["rgb_factors"]),
                                    rgb_bias=tuple(map(float, lf.get("rgb_bias") or (0.0, 0.0, 0.0))))
    if vae is not None and vae.latent_channels != latent_format.channels:
        raise CheckpointError(f"the VAE has {vae.latent_channels} latent channels, {ARCHITECTURES[arch].name} uses "
                              f"{latent_format.channels}")
    if not upscaler and not zero123 and unet.in_channels not in (latent_format.channels, 2 * latent_format.channels + 1):
        raise CheckpointError(f"the UNet takes {unet.in_channels} input channels; expected {latent_format.channels} "
                              f"(or {2 * latent_format.channels + 1} for inpainting)")

    sigma_range = None
    if upscaler and prediction is None and "prediction" not in config:
        pred, source = "v", "the x4 upscaler is a v-prediction model"
    elif playground and prediction is None and "prediction" not in config:
        # ComfyUI's SDXL.model_type: EDM on sigmas 0.002 .. 80; the latent format above whatever the prediction
        pred, source, sigma_range = "edm", "'edm_mean'/'edm_std' marker keys (Playground v2.5)", PLAYGROUND_SIGMAS
    else:
        pred, source = _detect_prediction(arch, unet, shapes, metadata, config, prediction, get_tensor)
    zsnr = "ztsnr" in shapes and pred == "v"  # ComfyUI reads the marker with v-prediction only
    if zsnr:
        notes.append("'ztsnr' marker key: sampled on the zero-terminal-SNR schedule")
    return ArchInfo(arch=arch, prediction=pred, prediction_source=source, unet=unet, vae=vae, towers=towers,
                    latent_format=latent_format, tower_overrides=tower_overrides, prefixes=prefixes, notes=notes,
                    zero_terminal_snr=zsnr, unclip=unclip, upscaler=upscaler, zero123=zero123, sigma_range=sigma_range)


def _check_zero123(shapes, unet: UNetConfig) -> None:
    projection = tuple(shapes[CC_PROJECTION + "weight"])
    if len(projection) != 2 or projection[0] != unet.context_dim or CC_PROJECTION + "bias" not in shapes:
        raise CheckpointError(f"Stable Zero123: cc_projection.weight {projection} must map the conditioning to the "
                              f"UNet's context width {unet.context_dim} (with cc_projection.bias)")
    if projection[1] <= CAMERA_WIDTH:
        raise CheckpointError(f"Stable Zero123: cc_projection takes {projection[1]} channels; expected an image "
                              f"embedding + the {CAMERA_WIDTH}-wide camera embedding")
    if unet.in_channels != 2 * SD1.channels or unet.adm_in_channels:
        raise CheckpointError(f"Stable Zero123: the UNet takes {unet.in_channels} input channels and vector "
                              f"conditioning {unet.adm_in_channels}; expected {2 * SD1.channels} (latent + image "
                              f"latent) and none")


def vae_config_from_shapes(vae_shapes, overrides, where: str) -> VAEConfig:
    try:
        config = vae_config_from_state_dict(vae_shapes)
    except (ValueError, KeyError, IndexError) as e:
        raise CheckpointError(f"the VAE keys under {where} are incomplete or of an unknown layout "
                              f"({type(e).__name__}: {e})") from None
    return replace(config, **overrides) if overrides else config
