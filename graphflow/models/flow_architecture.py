"""What a SD3 / SD3.5 / FLUX.1 file is, from its safetensors header alone (names and shapes).

Layouts recognised (P = the diffusion model's prefix: `model.diffusion_model.` in all-in-one
files and ComfyUI's saves, none in diffusion-model-only files):

    SD3 / SD3.5 (Stability)   P joint_blocks.N.{x_block,context_block}.*, x_embedder, pos_embed, ...
    FLUX.1 (BFL)              P double_blocks.N.*, single_blocks.N.*, img_in, txt_in, ...
    Chroma (lodestones)       FLUX's names plus distilled_guidance_layer.*, without *_mod.lin,
                              time_in, vector_in, guidance_in
    Chroma Radiance           Chroma's, with img_in_patch (a conv) for img_in and the pixel head
                              nerf_image_embedder, nerf_blocks.N, nerf_final_layer(_conv) for
                              final_layer (ComfyUI's marker: nerf_blocks.0.norm.scale)
    LTX-Video (Lightricks)    P transformer_blocks.N.*, patchify_proj, adaln_single, ...; its
                              causal video VAE under vae.* (Lightricks' 0.9.0 layout)
    Mochi 1 (Genmo)           P blocks.N.{attn.qkv_x,mod_y,mlp_x.w1,...}, pos_frequencies,
                              t5_y_embedder, t5_yproj, x_embedder, final_layer (Genmo's layout)
    Wan 2.1 (Alibaba)         P blocks.N.{self_attn,cross_attn,ffn,modulation,norm3}, patch_embedding,
                              text_embedding, time_embedding, time_projection, head (+ img_emb: I2V;
                              + pose_patch_embedding, motion_encoder, face_encoder, face_adapter:
                              Wan 2.2 Animate)
    Lumina Image 2.0          P layers.N.{attention.qkv,feed_forward.w1,...}, cap_embedder,
      (Alpha-VLLM)            noise_refiner, context_refiner, t_embedder, x_embedder (the
                              original layout); all-in-one: FLUX's VAE under vae., Gemma-2 2B
                              under text_encoders.gemma2_2b.transformer.
    Qwen-Image (Alibaba Qwen)    P transformer_blocks.N.{img_mod.1,attn.add_q_proj,img_mlp.net.0.proj,...},
                              img_in, txt_norm, txt_in, time_text_embed, norm_out, proj_out (ComfyUI's
                              layout, diffusers' names); its VAE is Wan 2.1's (qwen_image_vae)
    HunyuanVideo 1.0 (Tencent) P double_blocks.N.{img_attn_qkv,img_mod.linear,img_mlp.fc1,...},
                              single_blocks.N.{linear1,modulation.linear,...}, img_in.proj,
                              txt_in.individual_token_refiner.blocks.N, time_in.mlp, guidance_in
                              (Tencent's names, as ComfyUI's hunyuan_video_t2v_720p file)
    HunyuanImage 2.1 (Tencent) HunyuanVideo's names without vector_in (ComfyUI's test): 2-D
                              img_in.proj and byt5_in.{layernorm,fc1,fc2,fc3} (hunyuanimage2.1_bf16;
                              the distilled file adds guidance_in, time_r_in); the refiner's 3-D
                              img_in.proj, guidance_in, time_r_in (hunyuanimage2.1_refiner)
    AuraFlow (fal)            P double_layers.N.{attn.w1q,modC,mlpX,...}, single_layers.N.{attn.w1q,modCX,
                              mlp}, cond_seq_linear, init_x_linear, positional_encoding,
                              register_tokens (fal's names); all-in-one (ComfyUI's aura_flow_0.3):
                              the SDXL VAE under vae., Pile-T5-XL under text_encoders.pile_t5xl.
    VAE                       first_stage_model.* (Stability) or vae.* (ComfyUI's FLUX saves)
    text encoders             text_encoders.{clip_l,clip_g,t5xxl}.transformer.* (transformers' layouts)

Families: SD3 medium (no QK-norm), SD3.5 large (RMS QK-norm), SD3.5 medium (MMDiT-X: attn2 in
early blocks); FLUX.1 dev (guidance_in), schnell (none), Fill (384 packed input channels =
noisy latent + masked image + mask), and the 128-channel control variants (Depth/Canny); Chroma,
Chroma Radiance (arch "chroma", family "chroma_radiance": pixel space, no VAE).
"""

from dataclasses import dataclass, field, replace

from .configs import (ChromaConfig, ChromaRadianceConfig, FluxConfig, LTXVConfig, LTXVVAEConfig, Lumina2Config,
                      MMDiTConfig, MochiConfig, QwenImageConfig, qwen_image_config_from_state_dict,
                      HiDreamConfig, hidream_config_from_state_dict,
                      MochiVAEConfig, VAEConfig, chroma_config_from_state_dict, flux_config_from_state_dict,
                      lumina2_config_from_state_dict,
                      ltxv_config_from_state_dict, ltxv_vae_config_from_state_dict, mmdit_config_from_state_dict,
                      WanConfig, mochi_config_from_state_dict, mochi_vae_config_from_state_dict,
                      vae_config_from_state_dict, wan_config_from_state_dict,
                      HunyuanVideoConfig, HunyuanVideoVAEConfig, hunyuan_video_config_from_state_dict,
                      hunyuan_video_vae_config_from_state_dict, is_hunyuan_video_vae,
                      HunyuanImageConfig, hunyuan_image_config_from_state_dict,
                      HunyuanImageVAEConfig, hunyuan_image_vae_config_from_state_dict, is_hunyuan_image_vae,
                      AURA_FLOW_MARKER, AuraFlowConfig, aura_flow_config_from_state_dict)
from .architectures import ARCHITECTURES, network_latent_format
from .latent_formats import CHROMA_RADIANCE, WAN22, LatentFormat
from .weight_files import CheckpointError

DIFFUSION_PREFIXES = ("model.diffusion_model.", "")
VAE_PREFIXES = ("first_stage_model.", "vae.")
VAE_PARTS = ("encoder", "decoder", "quant_conv", "post_quant_conv")
TEXT_ENCODER_PREFIX = "text_encoders."
TEXT_ENCODERS = ("clip_l", "clip_g", "t5xxl", "gemma2_2b", "pile_t5xl")  # pile_t5xl: AuraFlow's

FAMILY_NAMES = {"sd3_medium": "SD3 medium", "sd35_large": "SD3.5 large", "sd35_medium": "SD3.5 medium",
                "flux_dev": "FLUX.1 dev", "flux_schnell": "FLUX.1 schnell", "flux_fill": "FLUX.1 Fill (dev)",
                "flux_control": "FLUX.1 Depth/Canny (dev)", "chroma": "Chroma",
                "chroma_radiance": "Chroma Radiance (pixel space)",
                "ltxv": "LTX-Video", "mochi": "Mochi 1 Preview", "wan_t2v": "Wan 2.1 text-to-video",
                "wan_i2v": "Wan 2.1 image-to-video", "wan_flf2v": "Wan 2.1 first-last-frame-to-video",
                "wan_fun_control": "Wan 2.1 Fun Control", "wan_vace": "Wan 2.1 VACE",
                "wan_camera": "Wan Fun Control-Camera (camera-controlled image-to-video)",
                "lumina2": "Lumina Image 2.0", "qwen_image": "Qwen-Image", "hidream": "HiDream-I1",
                "hunyuan_video": "HunyuanVideo 1.0 text-to-video",
                "hunyuan_image": "HunyuanImage 2.1", "hunyuan_image_distilled": "HunyuanImage 2.1 distilled",
                "hunyuan_image_refiner": "HunyuanImage 2.1 refiner",
                "wan22_ti2v": "Wan 2.2 TI2V 5B (text/image-to-video)",
                "wan22_i2v": "Wan 2.2 I2V A14B expert (image-to-video without CLIP vision)",
                "wan22_animate": "Wan 2.2 Animate (character animation from pose and face videos)",
                "aura_flow": "AuraFlow"}
# Chroma first: it has FLUX's markers too
_MARKERS = {"sd3": ("joint_blocks.0.x_block.attn.qkv.weight", "x_embedder.proj.weight"),
            "chroma": ("double_blocks.0.img_attn.qkv.weight", "distilled_guidance_layer.in_proj.weight"),
            "flux": ("double_blocks.0.img_attn.qkv.weight", "img_in.weight"),
            "ltxv": ("adaln_single.emb.timestep_embedder.linear_1.weight", "patchify_proj.weight"),
            "mochi": ("t5_y_embedder.to_kv.weight", "pos_frequencies", "blocks.0.attn.qkv_x.weight"),
            "wan": ("patch_embedding.weight", "text_embedding.0.weight", "blocks.0.self_attn.q.weight",
                    "head.modulation"),
            "lumina2": ("cap_embedder.1.weight", "noise_refiner.0.attention.k_norm.weight"),
            "qwen_image": ("txt_norm.weight", "transformer_blocks.0.attn.add_q_proj.weight", "img_in.weight",
                           "proj_out.weight"),  # proj_out: not its ControlNet (InstantX's, no final layer)
            "hidream": ("caption_projection.0.linear.weight", "x_embedder.proj.weight",
                        "p_embedder.pooled_embedder.linear_1.weight"),
            # (HunyuanImage 2.1 and its refiner: these without vector_in, see find_flow_model)
            "hunyuan_video": ("txt_in.individual_token_refiner.blocks.0.norm1.weight", "img_in.proj.weight"),
            "aura_flow": (AURA_FLOW_MARKER, "cond_seq_linear.weight", "positional_encoding")}
# families told apart from another's markers by a key they lack: ComfyUI's HunyuanImage21(Refiner) is
# HunyuanVideo's layout without vector_in (vec_in_dim None)
_LACKING = {"hunyuan_image": ("hunyuan_video", "vector_in.in_layer.weight")}
_CONFIG_READERS = {"sd3": mmdit_config_from_state_dict, "flux": flux_config_from_state_dict,
                   "chroma": chroma_config_from_state_dict, "ltxv": ltxv_config_from_state_dict,
                   "mochi": mochi_config_from_state_dict, "wan": wan_config_from_state_dict,
                   "lumina2": lumina2_config_from_state_dict, "qwen_image": qwen_image_config_from_state_dict,
                   "hidream": hidream_config_from_state_dict,
                   "hunyuan_video": hunyuan_video_config_from_state_dict,
                   "hunyuan_image": hunyuan_image_config_from_state_dict,
                   "aura_flow": aura_flow_config_from_state_dict}


@dataclass
class FlowInfo:
    """A flow-model file: the family, where each part is and the configurations read from shapes."""

    # sd3 | flux | chroma | ltxv | mochi | wan | lumina2 | qwen_image | hidream | hunyuan_video | hunyuan_image
    # | aura_flow
    arch: str
    family: str  # a FAMILY_NAMES key
    prefix: str  # of the diffusion model's keys
    config: (MMDiTConfig | FluxConfig | ChromaConfig | LTXVConfig | MochiConfig | WanConfig | Lumina2Config
             | QwenImageConfig | HiDreamConfig | HunyuanVideoConfig | HunyuanImageConfig | AuraFlowConfig)
    vae: VAEConfig | LTXVVAEConfig | MochiVAEConfig | HunyuanVideoVAEConfig | HunyuanImageVAEConfig | None = None
    vae_prefix: str | None = None
    text_encoders: dict = field(default_factory=dict)  # clip_l / clip_g / t5xxl -> key prefix
    notes: list = field(default_factory=list)
    prediction: str = "flow"

    @property
    def name(self) -> str:
        return FAMILY_NAMES[self.family]

    @property
    def latent_format(self) -> LatentFormat:
        if isinstance(self.config, ChromaRadianceConfig):
            return CHROMA_RADIANCE
        return network_latent_format(self.arch, self.config)

    @property
    def latent_channels(self) -> int:
        return self.latent_format.channels


def find_flow_model(shapes) -> tuple[str, str] | None:
    """(arch, prefix) of a SD3/FLUX/Chroma diffusion model among the keys, or None."""
    for arch, markers in _MARKERS.items():
        for prefix in DIFFUSION_PREFIXES:
            if all(prefix + m in shapes for m in markers):
                lacking = next((a for a, (of, key) in _LACKING.items() if of == arch and prefix + key not in shapes),
                               None)
                return lacking or arch, prefix
    return None


def _family(arch: str, config) -> str:
    if arch == "sd3":
        return "sd35_medium" if config.x_self_attn_layers else "sd35_large" if config.qk_norm else "sd3_medium"
    if arch == "wan":
        if config.out_channels == WAN22.channels:  # ComfyUI's WAN22_T2V (out_dim 48)
            return "wan22_ti2v"
        if config.face_adapter_layers:  # pose_patch_embedding (ComfyUI's WAN22_Animate)
            return "wan22_animate"
        if config.vace_layers:
            return "wan_vace"
        if config.camera_in_channels:  # control_adapter (ComfyUI's WAN21_Camera / WAN22_Camera)
            return "wan_camera"
        if config.in_channels == 3 * config.latent_channels:  # control + start-image latents (ComfyUI's FunControl2V)
            return "wan_fun_control"
        if config.in_channels == config.latent_channels + 20 and not config.i2v:  # mask + image latent, no img_emb
            return "wan22_i2v"
        return "wan_flf2v" if config.img_emb_tokens else "wan_i2v" if config.i2v else "wan_t2v"
    if arch == "chroma" and isinstance(config, ChromaRadianceConfig):
        return "chroma_radiance"
    if arch == "hunyuan_image":
        if config.refiner:
            return "hunyuan_image_refiner"
        return "hunyuan_image_distilled" if config.meanflow or config.guidance_embed else arch
    if arch in FAMILY_NAMES:  # a family of its own
        return arch
    packed = config.in_channels // 4
    if packed == config.latent_channels + 80:
        return "flux_fill"
    if packed == 2 * config.latent_channels:
        return "flux_control"
    return "flux_dev" if config.guidance_embed else "flux_schnell"


def _text_encoders(shapes) -> dict[str, str]:
    found = {}
    for name in TEXT_ENCODERS:
        prefix = f"{TEXT_ENCODER_PREFIX}{name}.transformer."
        if any(k.startswith(prefix) for k in shapes):
            found[name] = prefix
    return found


def vae_in(shapes) -> tuple[str, dict] | None:
    """(prefix, shapes without it) of an LDM-layout VAE under first_stage_model. or vae., or None."""
    for prefix in VAE_PREFIXES:
        part = {k[len(prefix):]: s for k, s in shapes.items()
                if k.startswith(prefix) and k[len(prefix):].split(".")[0] in VAE_PARTS}
        if part:
            return prefix, part
    return None


# the key ComfyUI tells a standalone LTX-Video VAE file by
LTXV_VAE_MARKER = "decoder.up_blocks.0.res_blocks.0.conv1.conv.weight"


def ltxv_vae(shapes, prefix: str = "vae.") -> tuple[str, LTXVVAEConfig] | None:
    """(prefix, config) of LTX-Video's causal video VAE under `prefix` (a checkpoint's vae.; ""
    for a VAE file alone), or None."""
    part = {k[len(prefix):]: tuple(s) for k, s in shapes.items() if k.startswith(prefix)}
    if not part:
        return None
    if "decoder.last_time_embedder.timestep_embedder.linear_1.weight" in part or \
            "decoder.timestep_scale_multiplier" in part:
        raise CheckpointError(f"the LTX-Video VAE under {prefix or 'no prefix'} is a timestep-conditioned one "
                              "(0.9.1 and later); graphflow reads the 0.9.0 VAE only")
    try:
        return prefix, ltxv_vae_config_from_state_dict(part)
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"the LTX-Video VAE keys under {prefix or 'no prefix'} are incomplete "
                              f"({type(e).__name__}: {e})") from None


# keys only Genmo's VAE decoder / encoder have (ComfyUI tells them by these)
MOCHI_VAE_DECODER = "blocks.2.blocks.3.stack.5.weight"
MOCHI_VAE_ENCODER = "layers.4.layers.1.attn_block.attn.qkv.weight"


def mochi_vae_prefix(shapes) -> str | None:
    """Where Genmo's Mochi VAE decoder sits among the keys: "decoder." (ComfyUI's mochi_vae.safetensors),
    "vae.decoder." (a checkpoint), "" (Genmo's decoder file); None when there is none."""
    return next((p for p in ("decoder.", "vae.decoder.", "") if p + MOCHI_VAE_DECODER in shapes), None)


def mochi_encoder_prefix(shapes, decoder_prefix: str) -> str | None:
    """Where the encoder beside that decoder sits ("encoder." / "vae.encoder."), None without one."""
    prefix = decoder_prefix[:-len("decoder.")] + "encoder." if decoder_prefix.endswith("decoder.") else None
    return prefix if prefix is not None and prefix + MOCHI_VAE_ENCODER in shapes else None


def _config_under(shapes, prefix: str, name: str, read):
    """(prefix, read(the keys under prefix, prefix stripped)), or None where `read` gives None (not
    that VAE); incomplete keys (KeyError / ValueError / IndexError) a CheckpointError naming `name`."""
    part = {k[len(prefix):]: tuple(s) for k, s in shapes.items() if k.startswith(prefix)}
    try:
        config = read(part)
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"the {name} keys under {prefix} are incomplete ({type(e).__name__}: {e})") from None
    return None if config is None else (prefix, config)


def _mochi_vae(shapes) -> tuple[str, MochiVAEConfig] | None:
    """(prefix, config) of a Mochi VAE decoder saved in a checkpoint under vae.decoder., or None."""
    if "vae.decoder." + MOCHI_VAE_DECODER not in shapes:
        return None
    return _config_under(shapes, "vae.decoder.", "Mochi VAE", mochi_vae_config_from_state_dict)


def _hunyuan_video_vae(shapes) -> tuple[str, HunyuanVideoVAEConfig] | None:
    """(prefix, config) of a HunyuanVideo VAE saved in a checkpoint under vae. (ComfyUI's vae_key_prefix), or None."""
    return _config_under(shapes, "vae.", "HunyuanVideo VAE", lambda part: hunyuan_video_vae_config_from_state_dict(
        part) if is_hunyuan_video_vae(part) else None)


def _hunyuan_image_vae(shapes) -> tuple[str, HunyuanImageVAEConfig] | None:
    """(prefix, config) of a HunyuanImage 2.1 VAE saved in a checkpoint under vae. (CheckpointSave's), or None."""
    return _config_under(shapes, "vae.", "HunyuanImage 2.1 VAE", lambda part: hunyuan_image_vae_config_from_state_dict(
        part) if is_hunyuan_image_vae(part) else None)


# the families whose VAE a checkpoint holds in a layout of its own (else an LDM VAE under first_stage_model. /
# vae.); Wan, Qwen-Image: graphflow reads no Wan VAE inside a checkpoint yet (wan_2.1_vae / qwen_image_vae: VAELoader)
def _unread_vae(shapes) -> None:
    return None


_VAE_READERS = {"ltxv": ltxv_vae, "mochi": _mochi_vae, "hunyuan_video": _hunyuan_video_vae,
                "hunyuan_image": _hunyuan_image_vae, "wan": _unread_vae, "qwen_image": _unread_vae}
# the families whose checkpoints graphflow reads a VAE of their own from (under vae.; file kinds tell them by it)
OWN_VAE_FAMILIES = frozenset(arch for arch, reader in _VAE_READERS.items() if reader is not _unread_vae)


def _ltxv_file_config(config: LTXVConfig, metadata: dict | None) -> LTXVConfig:
    """Lightricks' files state in their metadata what weights cannot show (`config`: JSON with a
    "transformer" section); ComfyUI reads causal_temporal_positioning and the head count there."""
    import json

    try:
        section = json.loads((metadata or {}).get("config") or "{}").get("transformer") or {}
    except (ValueError, AttributeError):
        return config
    heads = section.get("num_attention_heads", config.num_heads)
    if not isinstance(heads, int) or heads < 1 or config.hidden_size % heads:
        raise CheckpointError(f"the file's config names {heads!r} attention heads, which do not divide the "
                              f"transformer's width {config.hidden_size}")
    return replace(config, num_heads=heads,
                   causal_temporal_positioning=bool(section.get("causal_temporal_positioning", False)))


def detect_flow_model(shapes, metadata: dict | None = None) -> FlowInfo | None:
    """A SD3/SD3.5/FLUX/Chroma/LTX-Video/Mochi file's FlowInfo, from names and shapes (and for LTX-Video
    the file's `config` metadata); None for other files."""
    found = find_flow_model(shapes)
    if found is None:
        return None
    arch, prefix = found
    model_shapes = {k[len(prefix):]: tuple(s) for k, s in shapes.items() if k.startswith(prefix)} if prefix else {
        k: tuple(s) for k, s in shapes.items() if not k.startswith((TEXT_ENCODER_PREFIX, *VAE_PREFIXES))}
    try:
        config = _CONFIG_READERS[arch](model_shapes)
    except (KeyError, ValueError, IndexError, TypeError) as e:
        raise CheckpointError(f"the {ARCHITECTURES[arch].short} keys under {prefix or '(no prefix)'} are "
                              f"incomplete or of an unknown layout ({type(e).__name__}: {e})") from None
    if arch == "ltxv":
        config = _ltxv_file_config(config, metadata)
    info = FlowInfo(arch=arch, family=_family(arch, config), prefix=prefix, config=config,
                    text_encoders=_text_encoders(shapes))
    own_vae = _VAE_READERS.get(arch)
    vae = own_vae(shapes) if own_vae is not None else vae_in(shapes)
    if own_vae is not None and vae is not None:
        info.vae_prefix, info.vae = vae
    elif vae is not None:
        info.vae_prefix = vae[0]
        try:
            info.vae = vae_config_from_state_dict(vae[1])
        except (KeyError, ValueError, IndexError) as e:
            raise CheckpointError(f"the VAE keys under {vae[0]} are incomplete ({type(e).__name__}: {e})") from None
        if info.vae.latent_channels != info.latent_channels:
            raise CheckpointError(f"the VAE under {vae[0]} has {info.vae.latent_channels} latent channels; "
                                  f"{info.name} uses {info.latent_channels}")
    elif info.family == "chroma_radiance":
        info.notes.append("pixel space, no VAE: VAELoader's pixel_space turns images into its latents and back")
    else:
        vae_file = "wan2.2_vae.safetensors" if info.latent_format is WAN22 else \
            "hunyuan_image_refiner_vae_fp16.safetensors" if info.family == "hunyuan_image_refiner" else \
            ARCHITECTURES[arch].vae_file
        info.notes.append(f"no VAE in the file: load one ({vae_file}) with LoadVAE")
    if not info.text_encoders:
        info.notes.append(ARCHITECTURES[arch].text_encoder_note)
    return info
