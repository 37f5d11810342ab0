"""What graphflow knows of each diffusion-model architecture (DiffusionModel.arch), in one table.

Adding a family means adding one Architecture here; the loaders, samplers and reports read these
facts from ARCHITECTURES rather than keeping lists of their own. What depends on a file's layout
stays with the file readers: the key markers and config readers (flow_architecture), the SD
families' text-encoder towers (configs.ARCH_TOWERS).

Torch-free: `graphflow validate` / `inspect` read it through the file detectors.
"""

from dataclasses import dataclass

from ..choices import DEFAULT_FLUX_GUIDANCE, FLUX_MAX_SHIFT
from .latent_formats import HUNYUAN_IMAGE21_REFINER, LATENT_FORMATS, WAN22, LatentFormat


@dataclass(frozen=True)
class Architecture:
    key: str  # DiffusionModel.arch
    name: str  # the family in reports and messages ("FLUX.1")
    latent_format: str  # a LATENT_FORMATS name (a network's config may pick another: Wan 2.2, Chroma Radiance)
    short_name: str = ""  # the network in "the ... keys" messages, when not `name` ("FLUX")
    flow: bool = False  # rectified flow (prediction "flow"); else eps / v / EDM
    video: bool = False  # latents [B, C, frames, h, w] (Cosmos-Predict2, Qwen-Image: an image is one frame)
    packed: bool = False  # 2x2 patches packed into the channels inside the network (FLUX's in_channels / 4)
    cascade: bool = False  # a Stable Cascade stage
    # ComfyUI's sampling_settings: the default shift (flow: ModelSamplingSD3's shift or ModelSamplingFlux's
    # mu, by `schedule`; Stable Cascade: ModelSamplingStableCascade's) and ModelSamplingSD3's multiplier
    shift: float | None = None
    schedule: str | None = None  # flow: "shift" (ModelSamplingSD3) or "flux" (ModelSamplingFlux: multiplier 1)
    multiplier: float = 1000.0
    native_size: int | None = None  # the side of its training images (the editor's EmptyLatent); None: 512
    guidance: float | None = None  # a guidance-distilled model's, when no FluxGuidance sets one (ComfyUI's)
    pooled: int = 0  # flow: the pooled text vector's width when the conditioning has none (zeros)
    vector_width: str | None = None  # the network config's field of its vector conditioning (y) width; None: no y
    fp16: bool = True  # False: ComfyUI runs it in bf16 or fp32 only (fp32 where fp16 would be the default)
    # shorter prompts repeated to share a model call (ComfyUI's CONDCrossAttn, UNets); DiTs take the
    # prompt as CONDRegular: prompts of other lengths run apart (joint attention would change)
    repeats_text: bool = False
    # video: a latent's noise mask scales the timestep the network is told, per token (LTX-Video, Mochi) or per
    # frame (Cosmos; Wan only with the 2.2 VAE's latents: DiffusionModel); else every token is told the step's
    masked_timesteps: bool = False
    # flow: a conditioning's "attention_mask" is its text encoder's mask [B, T] (prepare_conds' Cond.text_mask),
    # not FLUX's attention bias (HunyuanVideo's, HunyuanImage's)
    text_mask: bool = False
    empty_latent: str | None = None  # video: a node making latents it samples (named in hints)
    network: str | None = None  # flow: "module.Class" under graphflow.models, the network the loader builds
    vae_file: str = "ae.safetensors for FLUX"  # flow: the VAE file to load when the checkpoint holds none
    text_encoder_note: str = "no text encoders in the file: load them with DualCLIPLoader / TripleCLIPLoader"
    saved_as: str | None = None  # CheckpointSave's layout: "unet" (LDM + graphflow.config), "flow" (ComfyUI's)
    modelspec: str | None = None  # ComfyUI's modelspec.architecture, written for these only

    @property
    def short(self) -> str:
        return self.short_name or self.name

    @property
    def latent(self) -> LatentFormat:
        return LATENT_FORMATS[self.latent_format]


def _t5_alone(arch: str, encoder: str = "T5-XXL") -> str:
    return f"no text encoder in the file: load {encoder} with CLIPLoader, type {arch}"


_UNET = dict(repeats_text=True, vector_width="adm_in_channels")

ARCHITECTURES = {a.key: a for a in (
    Architecture("sd1", "SD1.x", "sd1", native_size=512, saved_as="unet", **_UNET),
    Architecture("sd2", "SD2.x", "sd1", native_size=512, saved_as="unet", **_UNET),  # SD2-v: 768 (native_size.py)
    Architecture("sdxl", "SDXL base", "sdxl", native_size=1024, saved_as="unet",
                 modelspec="stable-diffusion-xl-v1-base", **_UNET),
    Architecture("sdxl_refiner", "SDXL refiner", "sdxl", native_size=1024, saved_as="unet",
                 modelspec="stable-diffusion-xl-v1-refiner", **_UNET),
    Architecture("sd3", "SD3 / SD3.5", "sd3", short_name="MM-DiT", flow=True, shift=3.0, schedule="shift",
                 native_size=1024, pooled=2048, vector_width="adm_in_channels", network="mmdit.MMDiT",
                 saved_as="flow", modelspec="stable-diffusion-v3-medium"),
    # FLUX schnell (no guidance embedding): ModelSamplingSD3 shift 1, multiplier 1 (DiffusionModel, flow_sampling)
    Architecture("flux", "FLUX.1", "flux", short_name="FLUX", flow=True, packed=True, shift=FLUX_MAX_SHIFT,
                 schedule="flux", native_size=1024, guidance=DEFAULT_FLUX_GUIDANCE, pooled=768,
                 vector_width="vec_in_dim", network="flux.Flux", saved_as="flow"),
    # no sampling_settings: ModelSamplingFlux's default mu
    Architecture("chroma", "Chroma", "flux", flow=True, packed=True, shift=FLUX_MAX_SHIFT, schedule="flux",
                 native_size=1024, network="chroma.Chroma", text_encoder_note=_t5_alone("chroma"), saved_as="flow"),
    Architecture("stable_cascade_c", "Stable Cascade Stage C", "stable_cascade_prior", cascade=True, shift=2.0,
                 repeats_text=True, vector_width="clip_pooled_width"),
    Architecture("stable_cascade_b", "Stable Cascade Stage B", "stable_cascade_b", cascade=True, shift=1.0,
                 repeats_text=True, vector_width="clip_pooled_width"),
    Architecture("pixart", "PixArt", "sd1"),  # α's micro-conditions: DiffusionModel.adm_channels
    Architecture("svd", "Stable Video Diffusion", "sd1", modelspec="stable-video-diffusion-img2vid-v1", **_UNET),
    Architecture("ltxv", "LTX-Video", "ltxv", flow=True, video=True, masked_timesteps=True, shift=2.37,
                 schedule="flux", network="ltxv.LTXV", empty_latent="EmptyLTXVLatentVideo",
                 text_encoder_note=_t5_alone("ltxv")),
    Architecture("mochi", "Mochi", "mochi", flow=True, video=True, masked_timesteps=True, shift=6.0,
                 schedule="shift", multiplier=1.0, network="mochi.Mochi", empty_latent="EmptyMochiLatentVideo",
                 vae_file="mochi_vae.safetensors",
                 text_encoder_note=_t5_alone("mochi")),
    Architecture("cosmos", "Cosmos-Predict2", "wan21", video=True, masked_timesteps=True,
                 empty_latent="EmptyHunyuanLatentVideo"),
    Architecture("cosmos1", "Cosmos 1.0", "cosmos1cv8x8x8", video=True, masked_timesteps=True,
                 empty_latent="EmptyCosmosLatentVideo"),
    # Wan 2.2's VAE (TI2V 5B, 48 channels): DiffusionModel and FlowInfo read it from the network's config
    Architecture("wan", "Wan 2.1", "wan21", flow=True, video=True, masked_timesteps=True, shift=8.0,
                 schedule="shift", network="wan.Wan", empty_latent="EmptyHunyuanLatentVideo",
                 vae_file="wan_2.1_vae.safetensors",
                 text_encoder_note=_t5_alone("wan", "UMT5-XXL")),
    Architecture("lumina2", "Lumina Image 2.0", "flux", short_name="Lumina 2", flow=True, shift=6.0,
                 schedule="shift", multiplier=1.0, native_size=1024, network="lumina2.Lumina2",
                 text_encoder_note="no text encoder in the file: load Gemma-2 2B (gemma_2_2b_fp16.safetensors) with "
                                   "CLIPLoader, type lumina2"),
    # ComfyUI's QwenImage: ModelType.FLUX
    Architecture("qwen_image", "Qwen-Image", "wan21", flow=True, video=True, shift=1.15, schedule="flux",
                 native_size=1328, fp16=False, network="qwen_image.QwenImage", empty_latent="EmptySD3LatentImage",
                 vae_file="qwen_image_vae.safetensors, a Wan 2.1 VAE",
                 text_encoder_note="no text encoder in the file: load Qwen2.5-VL 7B (qwen_2.5_vl_7b.safetensors) "
                                   "with CLIPLoader, type qwen_image"),
    # ComfyUI's HiDream: ModelType.FLOW, sampling_settings empty (shift 1, multiplier 1000)
    Architecture("hidream", "HiDream-I1", "flux", short_name="HiDream", flow=True, shift=1.0, schedule="shift",
                 native_size=1024, pooled=2048, vector_width="text_emb_dim", fp16=False, network="hidream.HiDream",
                 text_encoder_note="no text encoders in the file: load CLIP-L, CLIP-G, T5-XXL and Llama 3.1 8B with "
                                   "QuadrupleCLIPLoader"),
    # ComfyUI's HunyuanVideo: sampling_settings shift 7 (multiplier 1000); extra_conds' guidance 6
    Architecture("hunyuan_video", "HunyuanVideo 1.0", "hunyuan_video", short_name="HunyuanVideo", flow=True,
                 video=True, shift=7.0, schedule="shift", guidance=6.0, pooled=768, vector_width="vec_in_dim",
                 fp16=False, text_mask=True, network="hunyuan_video.HunyuanVideo",
                 vae_file="hunyuan_video_vae_bf16.safetensors",
                 empty_latent="EmptyHunyuanLatentVideo",
                 text_encoder_note="no text encoders in the file: load CLIP-L and LLaVA-Llama-3 8B "
                                   "(clip_l.safetensors, llava_llama3_fp8_scaled.safetensors) with DualCLIPLoader, "
                                   "type hunyuan_video"),
    # ComfyUI's HunyuanImage21: sampling_settings shift 5 (its refiner's 4: DiffusionModel); no pooled vector;
    # extra_conds' guidance 6, embedded by the distilled file only
    Architecture("hunyuan_image", "HunyuanImage 2.1", "hunyuan_image21", short_name="HunyuanImage", flow=True,
                 shift=5.0, schedule="shift", native_size=2048, guidance=6.0, fp16=False, text_mask=True,
                 network="hunyuan_image.HunyuanImage", vae_file="hunyuan_image_2.1_vae_fp16.safetensors",
                 text_encoder_note="no text encoders in the file: load Qwen2.5-VL 7B and the byT5 glyph encoder "
                                   "(qwen_2.5_vl_7b.safetensors, byt5_small_glyphxl_fp16.safetensors) with "
                                   "DualCLIPLoader, type hunyuan_image (or Qwen2.5-VL alone with CLIPLoader, type "
                                   "hunyuan_image)"),
    # ComfyUI's AuraFlow: ModelType.FLOW, sampling_settings multiplier 1.0, shift 1.73 (ModelSamplingAuraFlow's)
    Architecture("aura_flow", "AuraFlow", "sdxl", flow=True, shift=1.73, schedule="shift", multiplier=1.0,
                 native_size=1024, network="aura_flow.AuraFlow", saved_as="flow",
                 vae_file="sdxl_vae.safetensors, the SDXL VAE",
                 text_encoder_note="no text encoder in the file: load Pile-T5-XL with CLIPLoader (ComfyUI tells it "
                                   "by its shapes, whatever the type), or ComfyUI's all-in-one "
                                   "aura_flow_0.3.safetensors with CheckpointLoaderSimple"),
)}


def network_latent_format(arch: str, config) -> LatentFormat:
    """The latent format `arch`'s network with this config samples: its entry's, but for the networks
    whose config picks another: Wan with the 2.2 VAE's 48 channels (the TI2V 5B, ComfyUI's WAN22_T2V),
    HunyuanImage 2.1's refiner (Chroma Radiance's pixel space: its loader and FlowInfo)."""
    if arch == "wan" and getattr(config, "out_channels", None) == WAN22.channels:
        return WAN22
    if arch == "hunyuan_image" and getattr(config, "refiner", False):
        return HUNYUAN_IMAGE21_REFINER
    return ARCHITECTURES[arch].latent
