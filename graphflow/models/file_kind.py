"""What kind of model file this is, from its tensor names and shapes alone (no weights read).

Users download checkpoints, LoRAs, ControlNets, VAEs, text encoders and a dozen other add-ons
as bare .safetensors files whose names say little, and a file in the wrong folder or the wrong
loader is the commonest first-run failure. This is the one place that tells them apart; the
loaders' error messages ("this looks like a ControlNet: put it in models/controlnet/ ..."),
validation and `graphflow inspect` ask it. Torch-free: validation must stay light. Checks run from the most specific marker to the most general:
a Control-LoRA has `lora_` keys and a GLIGEN file UNet block names, so those come first.
"""

from dataclasses import dataclass

from .architectures import ARCHITECTURES
from .configs import (AURA_FLOW_DIFFUSERS_MARKER, byte_level, is_hunyuan_image_refiner_vae,  # torch-free
                      is_hunyuan_image_vae, is_hunyuan_video_vae)

UNET_PREFIX = "model.diffusion_model."
# the tensors a union ControlNet (SDXL ControlNet++) adds to a plain one (torch-free here: validation reads it)
UNION_KEYS = ("task_embedding", "transformer_layes.", "spatial_ch_projs.", "control_add_embedding.")
_LORA_PARTS = (".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.", ".lora.down.", "_lora.down.", ".hada_w1_a",
               ".lokr_w1", ".lora_magnitude_vector")
_CONTEXT_FAMILIES = {768: "SD1.x", 1024: "SD2.x", 2048: "SDXL"}  # cross-attention context width
QWEN_MARKER = "model.layers.0.self_attn.k_proj.bias"  # Qwen2.5 (graphflow.models.qwen25vl.MARKER)
_CLIP_WIDTHS = {768: "CLIP-L", 1024: "OpenCLIP ViT-H (SD2.x)", 1280: "OpenCLIP ViT-bigG (CLIP-G)"}


@dataclass(frozen=True)
class FileKind:
    name: str  # "ControlNet (SDXL)"
    folder: str  # the models/ subfolder its loader lists
    loader: str  # the graphflow node that loads it

    def advice(self) -> str:
        """One sentence for an error message about a file loaded as something else."""
        use = f"use {self.loader}" if self.loader.startswith("`") else f"load it with {self.loader}"
        return f"This looks like a {self.name}: put it in models/{self.folder}/ and {use}."


def _has(shapes, *markers: str) -> bool:
    return any(k.startswith(markers) or any("." + m in k for m in markers) for k in shapes)


def _sd_family(shapes) -> str:
    """SD1.x / SD2.x / SDXL from a UNet-like network's cross-attention width, or '' if unusual."""
    for key, shape in shapes.items():
        if key.endswith(("attn2.to_k.weight", "attn2.to_v.weight")) and len(shape) == 2:
            return _CONTEXT_FAMILIES.get(shape[1], "")
    return ""


def _named(kind: str, family: str) -> str:
    return f"{kind} ({family})" if family else kind


def _controlnet(shapes) -> FileKind | None:
    if "lora_controlnet" in shapes:
        return FileKind(_named("Control-LoRA", _sd_family(shapes)), "controlnet", "LoadDiffControlNet")
    if "pos_embed_input.proj.weight" in shapes:
        return FileKind("ControlNet (SD3 / SD3.5)", "controlnet", "LoadControlNet")
    if "controlnet_blocks.0.weight" in shapes and "transformer_blocks.0.img_mlp.net.0.proj.weight" in shapes:
        return FileKind("ControlNet (Qwen-Image)", "controlnet", "LoadControlNet")  # InstantX's, ComfyUI's test
    if "controlnet_x_embedder.weight" in shapes or "pos_embed_input.weight" in shapes:
        union = "controlnet_mode_embedder.weight" in shapes
        return FileKind("union ControlNet (FLUX.1)" if union else "ControlNet (FLUX.1)", "controlnet", "LoadControlNet")
    if any(k.startswith(UNION_KEYS) for k in shapes) and "style_embedding" not in shapes:  # T2I style: transformer_layes too
        return FileKind(_named("union ControlNet", _sd_family(shapes)), "controlnet", "LoadControlNet")
    if _has(shapes, "control_model.", "input_hint_block.", "controlnet_cond_embedding.") and not _has(shapes, UNET_PREFIX):
        return FileKind(_named("ControlNet", _sd_family(shapes)), "controlnet", "LoadControlNet")
    if any(k in shapes for k in ("body.0.out_conv.weight", "adapter.body.0.out_conv.weight", "adapter.conv_in.weight")) \
            or ("conv_in.weight" in shapes and _has(shapes, "body.")):
        return FileKind("T2I-Adapter", "controlnet", "LoadControlNet")
    return None


def _text_encoder(shapes) -> FileKind | None:
    if "model.layers.0.post_feedforward_layernorm.weight" in shapes:  # ComfyUI's test for Gemma-2 2B
        tokenizer = "its tokenizer inside" if "spiece_model" in shapes else "NO tokenizer inside (spiece_model)"
        return FileKind(f"Gemma-2 2B text encoder (Lumina 2: type lumina2; {tokenizer})", "text_encoders",
                        "LoadTextEncoder")
    if QWEN_MARKER in shapes:  # ComfyUI's test for Qwen2.5 (7B: 512 rows, 3B: 256)
        if shapes.get("model.embed_tokens.weight", (0, 0))[1] == 2048:
            return FileKind("Qwen2.5 3B text encoder (OmniGen2's; graphflow does not load it)", "text_encoders",
                            "LoadTextEncoder")
        vision = "its vision tower inside" if any(k.startswith("visual.") for k in shapes) else "text only"
        return FileKind(f"Qwen2.5-VL 7B text encoder (Qwen-Image: type qwen_image; HunyuanImage 2.1: type "
                        f"hunyuan_image; {vision})", "text_encoders",
                        "LoadTextEncoder")
    for key, shape in shapes.items():
        if key.endswith("encoder.block.0.layer.0.SelfAttention.q.weight"):
            if key.replace("0.layer.0.SelfAttention.q.", "1.layer.0.SelfAttention.relative_attention_bias.") in shapes:
                tokenizer = "its tokenizer inside" if "spiece_model" in shapes else "NO tokenizer inside (spiece_model)"
                return FileKind(f"UMT5-XXL text encoder (Wan 2.1; {tokenizer})", "text_encoders", "LoadTextEncoder")
            prefix = key[:-len("encoder.block.0.layer.0.SelfAttention.q.weight")]
            if byte_level({k[len(prefix):]: s for k, s in shapes.items() if k.startswith(prefix)}):
                return FileKind("byT5-small glyph text encoder (HunyuanImage 2.1: DualCLIPLoader type hunyuan_image, "
                                "with Qwen2.5-VL 7B)", "text_encoders", "LoadDualTextEncoders")
            if key.replace("layer.0.SelfAttention.q.", "layer.1.DenseReluDense.wi.") in shapes:  # ReLU: T5 v1.0
                return FileKind("old T5-XXL text encoder (T5 v1.0, for Cosmos 1.0 and Cosmos-Predict2: type cosmos)",
                                "text_encoders", "LoadTextEncoder")
            return FileKind("T5 text encoder (T5-XXL for SD3 / FLUX / Chroma)", "text_encoders", "LoadTextEncoder")
        if key.endswith(("embeddings.token_embedding.weight", "token_embedding.weight")) and len(shape) == 2 \
                and not key.startswith("cond_stage_model.") and not key.startswith("conditioner."):
            tower = _CLIP_WIDTHS.get(shape[1], f"CLIP, width {shape[1]}")
            return FileKind(f"text encoder ({tower})", "text_encoders", "LoadTextEncoder")
    # ComfyUI's test for Llama 3 8B, Gemma-2's and Qwen2.5's keys aside (graphflow.models.llama.llama_prefix)
    if "model.layers.0.post_attention_layernorm.weight" in shapes and \
            "model.layers.0.self_attn.k_proj.bias" not in shapes:
        return FileKind("LLaVA-Llama-3 8B text encoder (HunyuanVideo: type hunyuan_video, with a CLIP-L file)",
                        "text_encoders", "LoadDualTextEncoders")
    return None


def cascade_stage(shapes) -> str | None:
    """"c" / "b" for a Stable Cascade Stage C / Stage B network (bare original keys), "a" for its
    Stage A VQGAN, "effnet" for Stage C's image encoder, else None."""
    if "clf.1.weight" in shapes and "embedding.1.weight" in shapes:
        if "clip_txt_mapper.weight" in shapes:
            return "c"
        if "effnet_mapper.0.weight" in shapes and "clip_mapper.weight" in shapes:
            return "b"
    if "vquantizer.codebook.weight" in shapes and "in_block.1.weight" in shapes:
        return "a"
    if "backbone.1.0.block.0.1.num_batches_tracked" in shapes and "mapper.0.weight" in shapes:
        return "effnet"
    return None


# PixArt-α / Σ: the original files' adaLN-single projection (ComfyUI's marker) and caption MLP;
# diffusers' PixArtTransformer2DModel as ComfyUI tells it from SD3's (which has pos_embed.proj too)
PIXART_MARKERS = ("t_block.1.weight", "y_embedder.y_proj.fc1.weight")
PIXART_DIFFUSERS_MARKERS = ("adaln_single.emb.timestep_embedder.linear_1.bias", "pos_embed.proj.bias")
PIXART_NAMES = {"pixart_alpha": "PixArt-α", "pixart_sigma": "PixArt-Σ"}


def find_pixart(shapes) -> tuple[str, str, str] | None:
    """(variant "pixart_alpha" | "pixart_sigma", layout "original" | "diffusers", key prefix) of a
    PixArt transformer, bare or under model.diffusion_model.; None for other files. α is the one
    with the size and aspect-ratio embedders."""
    for prefix in ("", UNET_PREFIX):
        if all(prefix + m in shapes for m in PIXART_MARKERS):
            alpha = prefix + "ar_embedder.mlp.0.weight" in shapes
            return ("pixart_alpha" if alpha else "pixart_sigma"), "original", prefix
        if all(prefix + m in shapes for m in PIXART_DIFFUSERS_MARKERS):
            alpha = prefix + "adaln_single.emb.aspect_ratio_embedder.linear_1.weight" in shapes
            return ("pixart_alpha" if alpha else "pixart_sigma"), "diffusers", prefix
    return None


def find_cosmos(shapes) -> str | None:
    """The key prefix of a Cosmos-Predict2 network (NVIDIA's layout: bare, ComfyUI's
    model.diffusion_model. or NVIDIA's net.) among `shapes`, or None."""
    markers = ("x_embedder.proj.1.weight", "t_embedding_norm.weight", "blocks.0.mlp.layer1.weight")
    return next((p for p in ("model.diffusion_model.", "net.", "") if all(p + m in shapes for m in markers)), None)


def is_cosmos1_vae(shapes) -> bool:
    """NVIDIA's Cosmos 1.0 continuous video tokenizer (cosmos_cv8x8x8_1.0.safetensors): ComfyUI's
    marker, the unpatcher's wavelet buffer, or the tokenizer's own quant convolutions."""
    return "decoder.unpatcher3d.wavelets" in shapes or (
        "post_quant_conv.conv3d.weight" in shapes and "encoder.conv_in.0.conv3d.weight" in shapes)


def find_cosmos1(shapes) -> str | None:
    """The key prefix of a Cosmos 1.0 network (NVIDIA's first layout, blocks.blockN.blocks.M: bare,
    under ComfyUI's model.diffusion_model. or NVIDIA's net.) among `shapes`, or None."""
    markers = ("x_embedder.proj.1.weight", "blocks.block0.blocks.0.block.attn.to_q.0.weight",
               "final_layer.linear.weight")
    return next((p for p in ("model.diffusion_model.", "net.", "") if all(p + m in shapes for m in markers)), None)


# transformers' DepthAnythingForDepthEstimation (-hf repositories' model.safetensors, transformers 4's
# or 5's names: graphflow.models.depth_anything.hf_names); head.conv3 sets it apart from DPT's head.head.*
DEPTH_ANYTHING_HF_MARKERS = ("backbone.embeddings.cls_token", "backbone.encoder.layer.0.layer_scale1.lambda1",
                             "neck.fusion_stage.layers.0.projection.weight", "head.conv3.weight")
_DEPTH_ANYTHING = "Depth Anything depth model (V1 or V2)"
_CONTROLNET_AUX_DEPTH = "DepthAnythingV2Preprocessor / DepthAnythingPreprocessor"
_KIJAI_DEPTH = "DownloadAndLoadDepthAnythingV2Model"


def _depth_anything(shapes, name: str) -> FileKind | None:
    """comfyui_controlnet_aux reads the releases' names from models/annotators/ (depth_anything_v2_vitl.pth,
    or a .safetensors of that stem); kijai's ComfyUI-DepthAnythingV2 its own _fp16 / _fp32 .safetensors
    names from models/depthanything/. Both read either layout."""
    if all(m in shapes for m in DEPTH_ANYTHING_HF_MARKERS):
        return FileKind(f"{_DEPTH_ANYTHING} in transformers' layout (a -hf repository's model.safetensors)",
                        "annotators", f"{_CONTROLNET_AUX_DEPTH}, renamed to the node's ckpt_name with .safetensors "
                        "(depth_anything_v2_vitl.safetensors for V2, depth_anything_vitl14.safetensors for V1)")
    if not (_has(shapes, "pretrained.patch_embed.") and _has(shapes, "depth_head.")):
        return None
    if name.startswith("depth_anything_v2_") and name.endswith(("_fp16.safetensors", "_fp32.safetensors")):
        return FileKind(_DEPTH_ANYTHING, "depthanything", _KIJAI_DEPTH)
    return FileKind(_DEPTH_ANYTHING, "annotators", f"{_CONTROLNET_AUX_DEPTH} (or, in models/depthanything/ "
                    f"under one of its _fp16 / _fp32 .safetensors names, {_KIJAI_DEPTH})")


def identify(shapes: dict[str, tuple], name: str = "") -> FileKind | None:
    """The kind of model file these keys and shapes are, or None when nothing matches. The file's
    `name` tells apart what two packs keep in different folders (Depth Anything)."""
    from .flow_architecture import OWN_VAE_FAMILIES, MOCHI_VAE_ENCODER, find_flow_model, mochi_vae_prefix, vae_in

    controlnet = _controlnet(shapes)
    if controlnet is not None:
        return controlnet
    if _has(shapes, "position_net."):
        return FileKind("GLIGEN text-box model", "gligen", "LoadGLIGEN")
    depth_anything = _depth_anything(shapes, name)
    if depth_anything is not None:
        return depth_anything
    if _has(shapes, "image_proj.") and _has(shapes, "ip_adapter."):
        return FileKind("IP-Adapter", "ipadapter", "IPAdapterModelLoader")
    if _has(shapes, "fuse_module.mlp1.") and _has(shapes, "visual_projection_2."):  # before LoRA: v1 files carry one
        return FileKind("PhotoMaker v1 ID encoder", "photomaker", "PhotoMakerLoader")
    if any(".motion_modules." in k and "_lora." in k for k in shapes):  # guoyww's v2_lora_*.ckpt
        return FileKind("AnimateDiff motion LoRA", "animatediff_motion_lora", "AnimateDiffLoraLoader")
    if any(k.startswith("lora_") or any(p in k for p in _LORA_PARTS) for k in shapes) \
            or shapes and all(k.endswith((".diff", ".diff_b")) for k in shapes):  # full-diff LoRA (LoraSave)
        return FileKind("LoRA", "loras", "LoadLoRA")
    if any(".motion_modules." in k and ".temporal_transformer." in k or k.startswith("down_blocks.")
           and ".temporal_attentions." in k for k in shapes):  # AnimateDiff / HotshotXL (after LoRA: motion LoRAs)
        return FileKind("AnimateDiff motion module", "animatediff_models", "LoadAnimateDiffModel")
    if "txt_norm.weight" not in shapes and any(  # (Qwen-Image's own layout is diffusers' names: a file of its own)
            k.startswith("transformer_blocks.") and ".attn.add_q_proj." in k
            or k.startswith("single_transformer_blocks.") and ".proj_mlp." in k for k in shapes):
        # transformer/ of a diffusers folder (or one shard of it): the folder loads as a whole
        family = "FLUX.1" if _has(shapes, "single_transformer_blocks.") else "SD3 / SD3.5"
        return FileKind(f"{family} transformer in diffusers' layout (part of a diffusers folder)", "diffusers",
                        "`LoadDiffusers` on the whole folder (model_index.json, transformer/, vae/, text_encoder*/)")
    if AURA_FLOW_DIFFUSERS_MARKER in shapes:  # ComfyUI's UNETLoader converts it (convert_diffusers_mmdit)
        return FileKind("AuraFlow diffusion model (diffusers' AuraFlowTransformer2DModel layout)", "diffusion_models",
                        "LoadDiffusionModel")
    if find_cosmos(shapes) is not None:
        return FileKind("Cosmos-Predict2 diffusion model", "diffusion_models", "LoadDiffusionModel")
    if find_cosmos1(shapes) is not None:
        return FileKind("Cosmos 1.0 diffusion model", "diffusion_models", "LoadDiffusionModel")
    pixart = find_pixart(shapes)
    if pixart is not None:
        layout = " (diffusers' PixArtTransformer2DModel layout)" if pixart[1] == "diffusers" else ""
        return FileKind(f"{PIXART_NAMES[pixart[0]]} diffusion model{layout}", "diffusion_models", "LoadDiffusionModel")
    stage = cascade_stage(shapes)
    if stage == "a":
        return FileKind("Stable Cascade Stage A (VQGAN VAE)", "vae", "LoadVAE")
    if stage == "effnet":
        return FileKind("Stable Cascade Stage C encoder (EfficientNet, for StableCascade_StageC_VAEEncode)", "vae",
                        "LoadVAE")
    if stage is not None:
        return FileKind(f"Stable Cascade Stage {stage.upper()} diffusion model", "diffusion_models",
                        "LoadDiffusionModel")
    stage = cascade_stage({k[len(UNET_PREFIX):]: s for k, s in shapes.items() if k.startswith(UNET_PREFIX)})
    if stage in ("c", "b"):
        return FileKind(f"Stable Cascade Stage {stage.upper()} checkpoint", "checkpoints", "LoadCheckpoint")
    flow = find_flow_model(shapes)
    has_vae = vae_in(shapes) is not None or (flow is not None and flow[0] in OWN_VAE_FAMILIES
                                             and _has(shapes, "vae."))
    if flow is not None:
        name = ARCHITECTURES[flow[0]].name
        if flow[0] == "wan" and shapes[flow[1] + "patch_embedding.weight"][1] == 48:  # the 2.2 VAE's latents
            name = "Wan 2.2 TI2V 5B"
        if flow[0] == "hunyuan_video" and _has(shapes, flow[1] + "byt5_in.", flow[1] + "vision_in."):
            name = "HunyuanVideo 1.5 / HunyuanImage 2.1 (not supported)"  # with vector_in: neither's
        if flow[0] == "hunyuan_image" and len(shapes[flow[1] + "img_in.proj.weight"]) == 5:  # 3-D patches
            name = "HunyuanImage 2.1 refiner"
        if flow[0] == "hunyuan_image" and (_has(shapes, flow[1] + "vision_in.", flow[1] + "cond_type_embedding.") or (
                name.endswith("refiner") and _has(shapes, flow[1] + "byt5_in."))):
            name = "HunyuanVideo 1.5 (not supported)"
        if flow[0] == "chroma" and flow[1] + "nerf_blocks.0.norm.scale" in shapes:  # ComfyUI's marker
            name = "Chroma Radiance (pixel space)"
        if has_vae:
            return FileKind(f"{name} checkpoint", "checkpoints", "LoadCheckpoint")
        return FileKind(f"{name} diffusion model", "diffusion_models", "LoadDiffusionModel")
    if _has(shapes, UNET_PREFIX):
        return FileKind(_named("checkpoint", _sd_family(shapes)), "checkpoints", "LoadCheckpoint")
    if "redux_up.weight" in shapes and "redux_down.weight" in shapes:
        return FileKind("FLUX Redux style model", "style_models", "LoadStyleModel")
    if "style_embedding" in shapes and "transformer_layes.0.attn.in_proj_weight" in shapes:
        return FileKind("T2I-Adapter style model (SD1.x)", "style_models", "LoadStyleModel")
    if "controlnet_blocks.0.y_rms.weight" in shapes:  # ComfyUI's marker
        return FileKind("Qwen-Image DiffSynth ControlNet (model patch)", "model_patches", "LoadModelPatch")
    if "feature_embedder.mid_layer_norm.bias" in shapes:  # ComfyUI's marker
        return FileKind("USO style projector (FLUX model patch)", "model_patches", "LoadModelPatch")
    if is_cosmos1_vae(shapes):
        return FileKind("Cosmos 1.0 video VAE (CV8x8x8 tokenizer)", "vae", "LoadVAE")
    if "decoder.up_blocks.0.res_blocks.0.conv1.conv.weight" in shapes:  # ComfyUI's marker
        return FileKind("LTX-Video video VAE", "vae", "LoadVAE")
    if is_hunyuan_image_refiner_vae(shapes):  # before HunyuanVideo's: the same names, RMS norms
        return FileKind("HunyuanImage 2.1 refiner VAE (16x, 32 channels; HunyuanVideo 1.5's shape)", "vae", "LoadVAE")
    if is_hunyuan_video_vae(shapes):
        return FileKind("HunyuanVideo video VAE", "vae", "LoadVAE")
    if is_hunyuan_image_vae(shapes):
        return FileKind("HunyuanImage 2.1 VAE (32x, 64 channels)", "vae", "LoadVAE")
    if "encoder.conv1.weight" in shapes and _has(shapes, "decoder.upsamples."):  # before CLIP vision: it has a conv1
        if "decoder.upsamples.0.upsamples.0.residual.0.gamma" in shapes:  # residual stages
            return FileKind("Wan 2.2 video VAE", "vae", "LoadVAE")
        return FileKind("Wan 2.1 video VAE", "vae", "LoadVAE")
    if QWEN_MARKER in shapes:  # before CLIP vision: ComfyUI's Qwen2.5-VL files carry their vision tower (visual.*)
        return _text_encoder(shapes)
    if any(k.startswith(("vision_model.", "visual.")) or k == "conv1.weight" for k in shapes):
        return FileKind("CLIP vision model", "clip_vision", "LoadCLIPVision")
    text = _text_encoder(shapes)
    if text is not None:
        return text
    if has_vae or _has(shapes, "encoder.down.", "decoder.up.", "encoder.down_blocks.", "decoder.up_blocks."):
        channels = next((s[1] for k, s in shapes.items() if k.endswith("decoder.conv_in.weight") and len(s) == 4), 0)
        family = {4: "SD1.x / SD2.x / SDXL", 16: "SD3 / FLUX.1"}.get(channels, f"{channels} latent channels" if channels else "")
        return FileKind(_named("VAE", family), "vae", "LoadVAE")
    if mochi_vae_prefix(shapes) is not None or "encoder." + MOCHI_VAE_ENCODER in shapes:
        return FileKind("Mochi video VAE", "vae", "LoadVAE")
    if "1.conv.0.weight" in shapes or _has(shapes, "encoder.layers.", "decoder.layers."):
        return FileKind("TAESD tiny autoencoder", "vae_approx", "LoadVAE (as taesd, taesdxl, taesd3 or taef1)")
    if any(k.split(".")[0].isdigit() and ".linear." in k for k in shapes):
        return FileKind("hypernetwork", "hypernetworks", "LoadHypernetwork")
    if _has(shapes, "input_blocks.", "middle_block.", "output_blocks."):
        return FileKind(_named("UNet (diffusion model only)", _sd_family(shapes)), "diffusion_models", "LoadDiffusionModel")
    if "emb_params" in shapes or _has(shapes, "string_to_param") or (shapes and set(shapes) <= {"clip_l", "clip_g"}):
        return FileKind("textual-inversion embedding", "embeddings", "`embedding:NAME` in a prompt")
    return None
