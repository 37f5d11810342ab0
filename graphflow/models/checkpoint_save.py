"""Write MODEL / CLIP / VAE back as one single-file checkpoint in the original LDM key layout
(what CheckpointSave makes, and what our loader, ComfyUI and diffusers' from_single_file read):

    model.diffusion_model.*            the UNet
    first_stage_model.*                the VAE
    cond_stage_model.transformer.text_model.* / cond_stage_model.model.* / conditioner.embedders.N.*
                                       the text encoder towers in their file layouts (CLIP-L in
                                       transformers' names, OpenCLIP towers with fused q/k/v)

What weights cannot show is written into the safetensors metadata (`graphflow.config`: prediction,
head counts, norm groups, latent scale) with ComfyUI's `modelspec.*` keys, and, as ComfyUI does,
empty `v_pred` / `ztsnr` marker tensors for v-prediction (zero terminal SNR) models and
`edm_vpred.sigma_max` / `sigma_min` for continuous-time v ones (CosXL), so the file loads back as
the same model.

SD3 / FLUX / Chroma checkpoints are written in ComfyUI's layout for them (flow_checkpoint_state):
model.diffusion_model.*, text_encoders.<name>.transformer.*, first_stage_model.* (SD3) or vae.*.

The parts alone, as ComfyUI's ModelSave / VAESave / CLIPSave write them:

    model    the diffusion model (any family) under `model.diffusion_model.` (+ markers, config)
    vae      the LDM VAE keys without prefix (`encoder.*`, `decoder.*`, ...)
    clip     one file per text encoder: CLIP towers in transformers' names (`text_model.*`,
             `text_projection.weight`), T5-XXL in T5EncoderModel's (`shared.weight`, `encoder.*`)

A part that doesn't fit is refused with NodeInputError naming the parameter at fault (model, clip,
vae), the names the saving nodes' inputs have, so a node needn't read the message to blame one.
"""

import json
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from graphflow.context import NodeInputError
from graphflow.memory import manager

from .architecture import EDM_VPRED_MAX, EDM_VPRED_MIN, UNET_PREFIX, VAE_PREFIX
from .architectures import ARCHITECTURES
from .cast_layers import FP8_DTYPES
from .diffusion_model import DiffusionModel
from .text_encoders import HF, TextEncoder, hf_to_openclip, text_transformer
from .vae import VAE
from .weight_files import config_metadata


def _hf_tower_state(tower) -> dict[str, torch.Tensor]:
    """One tower in transformers' names (`text_model.*`, `text_projection.weight`)."""
    state = manager().weights(tower.model, tower.patches)  # its LoRAs saved merged in
    inner = "" if text_transformer(tower.model) is tower.model else "text_model."
    hf = {"text_model." + k[len(inner):]: v for k, v in state.items()
          if k.startswith(inner) and not k.startswith("text_projection.") and k[len(inner):] != "embeddings.position_ids"}
    if tower.projection is not None:
        hf["text_projection.weight"] = state["text_projection.weight"]
    return hf


def _tower_state(tower) -> dict[str, torch.Tensor]:
    """One tower in its checkpoint layout, keys below its prefix."""
    hf = _hf_tower_state(tower)
    if tower.spec.layout == HF:
        state = {k[len("text_model."):] if k.startswith("text_model.") else k: v for k, v in hf.items()}
        positions = state["embeddings.position_embedding.weight"].shape[0]
        state["embeddings.position_ids"] = torch.arange(positions)[None]  # as SD1 files carry it
        return state
    return hf_to_openclip(hf)


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def model_state(model: DiffusionModel, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The diffusion model (its patches merged in) under `model.diffusion_model.`, with
    ComfyUI's v-prediction marker keys, which both loaders read, and Stable Zero123's cc_projection.
    As in ComfyUI, `v_pred` marks a model read as v-prediction (its model type, whatever
    ModelSamplingDiscrete set since; `ztsnr` then follows the sampling's zsnr), the edm_vpred
    keys a model sampled as continuous-time EDM v (ModelSamplingContinuousEDM v_prediction).
    A model read as Playground v2.5 keeps its edm_mean / edm_std markers (beyond ComfyUI, whose
    save drops them and so loads its own save back as plain SDXL).
    `dtype` (art-venture's float16 save): the network's floating weights cast to it, fp8 ones (and
    their scales) kept."""
    state = {UNET_PREFIX + k: v for k, v in manager().weights(model.unet, model.patches).items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() and v.dtype not in FP8_DTYPES
                 and not k.endswith((".scale_weight", ".scale_input")) else v for k, v in state.items()}
    if getattr(model, "context_projection", None) is not None:  # Stable Zero123 (ComfyUI's saves drop it)
        state.update({"cc_projection." + k: v for k, v in model.context_projection.state_dict().items()})
    if any(k.endswith(".scale_weight") for k in state):  # fp8 weights with their scales: ComfyUI's marker
        state[UNET_PREFIX + "scaled_fp8"] = torch.zeros(1).to(torch.float8_e4m3fn)
    if model.model_type == "v":
        state["v_pred"] = torch.tensor([])
        if model.zsnr:
            state["ztsnr"] = torch.tensor([])
    fmt = model.read_latent_format
    if model.model_type == "edm" and model.arch == "sdxl" and fmt.channel_mean is not None:
        # read as Playground v2.5: its markers, or it loads back as plain SDXL (ComfyUI's save drops them)
        state["edm_mean"] = torch.tensor(fmt.channel_mean).view(1, -1, 1, 1)
        state["edm_std"] = torch.tensor(fmt.channel_std).view(1, -1, 1, 1)
    if model.prediction == "v" and model.edm is not None and model.continuous_timestep == "log":  # EDM-style v
        # (CosXL, SVD, ModelSamplingContinuousEDM v_prediction; not ModelSamplingContinuousV, which ComfyUI does not mark)
        sigma_min, sigma_max = model.edm
        state[EDM_VPRED_MAX] = torch.tensor(sigma_max).float()  # ComfyUI's keys (both loaders read them for SDXL)
        state[EDM_VPRED_MIN] = torch.tensor(sigma_min).float()
    return _cpu(state)


def checkpoint_state(model: DiffusionModel, clip: TextEncoder, vae: VAE,
                     dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    state = model_state(model, dtype)
    state.update({VAE_PREFIX + k: v for k, v in vae.module.state_dict().items()})
    for tower in clip.towers:
        state.update({tower.spec.prefix + k: v for k, v in _tower_state(tower).items()})
    return _cpu(state)


def _latent_format_config(fmt) -> dict:
    latent_format = {"scale_factor": fmt.scale_factor, "shift_factor": fmt.shift_factor}
    if fmt.rgb_factors is not None:
        latent_format.update(rgb_factors=[list(r) for r in fmt.rgb_factors], rgb_bias=list(fmt.rgb_bias))
    return latent_format


def _title(path) -> str:
    """ComfyUI's modelspec.title: the file name prefix and the counter, "ComfyUI 1"."""
    stem = Path(path).stem
    numbered = re.fullmatch(r"(.*)_(\d{5,})_", stem)
    return f"{numbered[1]} {int(numbered[2])}" if numbered else stem


def model_metadata(model: DiffusionModel, path="", **sections) -> dict[str, str]:
    """ComfyUI's modelspec keys (the architecture for SDXL, its refiner, SVD and SD3; the
    prediction for every model read as eps or v, by its model type, as ComfyUI: a sampling node's
    choice is not written), and graphflow.config for the UNet families (flow models are known by
    their key names and shapes alone) with the latent format the model was read with, not one a
    sampling node set (ModelSamplingContinuousEDM's edm_playground_v2.5 on a plain SDXL)."""
    metadata = {}
    trained = model.model_type if model.model_type in ("eps", "v") else None
    arch = ARCHITECTURES[model.arch]
    if arch.saved_as == "unet":  # the UNet families are written with a graphflow.config
        unet = model.unet.config
        metadata = config_metadata(
            arch=model.arch,  # a real-size UNet alone shows it; a scaled-down one needs it said
            prediction=trained,  # lcm / x0 / EDM sampling is a sampling choice, not stored (as in ComfyUI)
            unet={"num_heads": unet.num_heads, "num_head_channels": unet.num_head_channels,
                  "norm_groups": unet.norm_groups},
            latent_format=_latent_format_config(model.read_latent_format), **sections)
    # ComfyUI's modelspec.architecture, written (with sai_model_spec, implementation and title) for
    # some families only; SD1.x / SD2.x files get none (ComfyUI's list leaves them out)
    if arch.modelspec is not None:
        architecture = arch.modelspec
        if model.arch == "sdxl" and model.unet.config.in_channels == 8:  # ComfyUI's SDXL_instructpix2pix
            architecture = "stable-diffusion-xl-v1-edit"
        metadata.update({"modelspec.architecture": architecture, "modelspec.sai_model_spec": "1.0.0",
                         "modelspec.implementation": "sgm", "modelspec.title": _title(path)})
    if trained is not None:
        metadata["modelspec.predict_key"] = "epsilon" if trained == "eps" else "v"
    return metadata


def checkpoint_metadata(model: DiffusionModel, clip: TextEncoder, vae: VAE, path="") -> dict[str, str]:
    return model_metadata(
        model, path, vae={"norm_groups": vae.module.config.norm_groups},
        text_encoders={t.name: {"num_attention_heads": t.model.config.num_attention_heads,
                                "hidden_act": t.model.config.hidden_act} for t in clip.towers})


def _save(path, state: dict[str, torch.Tensor], metadata: dict[str, str], extra_metadata: dict | None) -> Path:
    for key, value in (extra_metadata or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    save_file(state, str(path), metadata=metadata)
    return Path(path)


def flow_checkpoint_state(model: DiffusionModel, clip, vae: VAE,
                          dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """An SD3 / FLUX / Chroma checkpoint as ComfyUI's CheckpointSave writes one (its model configs'
    prefixes): the model under model.diffusion_model., each text encoder under
    text_encoders.<clip_l / clip_g / t5xxl>.transformer. (CLIPSave's keys), the VAE under
    first_stage_model. (SD3) or vae. (FLUX, Chroma, AuraFlow: its vae_key_prefix); the all-in-one loader
    reads it back."""
    state = model_state(model, dtype)
    for name, (tower, _) in text_encoder_states(clip).items():
        state.update({f"text_encoders.{name}.transformer.{k}": v for k, v in tower.items()})
    prefix = VAE_PREFIX if model.arch == "sd3" else "vae."
    state.update({prefix + k: v for k, v in vae.module.state_dict().items()})
    return _cpu(state)


def checkpoint_families() -> str:
    """The families CheckpointSave writes (Architecture.saved_as), as messages name them."""
    names = [arch.name for arch in ARCHITECTURES.values() if arch.saved_as]
    return ", ".join(names[:-1]) + " and " + names[-1]


def save_checkpoint(path, model: DiffusionModel, clip: TextEncoder, vae: VAE, extra_metadata: dict | None = None,
                    model_dtype: torch.dtype | None = None) -> Path:
    layout = ARCHITECTURES[model.arch].saved_as  # flow families: ComfyUI's layouts
    if layout is None:
        raise NodeInputError("model", f"a {model.arch} model; single-file checkpoints are written for "
                                      f"{checkpoint_families()}")
    if getattr(clip, "arch", None) != model.arch:
        raise NodeInputError("clip", f"the text encoder is for {getattr(clip, 'arch', '?')}, the model is {model.arch}")
    if vae.latent_channels != model.latent_format.channels:
        raise NodeInputError("vae", f"the VAE makes {vae.latent_channels}-channel latents, the model takes "
                                    f"{model.latent_format.channels}")
    if layout == "flow":
        return _save(path, flow_checkpoint_state(model, clip, vae, model_dtype), model_metadata(model, path),
                     extra_metadata)
    return _save(path, checkpoint_state(model, clip, vae, model_dtype), checkpoint_metadata(model, clip, vae, path),
                 extra_metadata)


def save_model(path, model: DiffusionModel, extra_metadata: dict | None = None) -> Path:
    """ModelSave's file: the diffusion model alone (UNETLoader and CheckpointLoader read it)."""
    return _save(path, model_state(model), model_metadata(model, path), extra_metadata)


def save_vae(path, vae: VAE, extra_metadata: dict | None = None) -> Path:
    """VAESave's file: bare LDM keys; the latent scale (which the weights cannot show) in the
    graphflow.config, so that the VAE loader gives back the same latent format. A video VAE
    (Wan, Mochi, Cosmos, LTX-Video) in the layout VAELoader reads it from, which names its format."""
    from .vae import VideoVAESocket

    if isinstance(vae, VideoVAESocket):
        return _save(path, _cpu(vae.module.state_dict()), {}, extra_metadata)
    metadata = config_metadata(vae={"norm_groups": vae.module.config.norm_groups},
                               latent_format=_latent_format_config(vae.latent_format))
    return _save(path, _cpu(vae.module.state_dict()), metadata, extra_metadata)


def text_encoder_states(clip) -> dict[str, tuple[dict[str, torch.Tensor], dict[str, str]]]:
    """CLIPSave's files, by encoder name (clip_l, clip_g, clip_h, t5xxl, umt5xxl, pile_t5xl): each encoder
    alone in the names the separate-file loaders (CLIPLoader, DualCLIPLoader, ...) read, and its metadata.
    Lumina 2's Gemma-2 (gemma2_2b): model.* with its tokenizer as spiece_model, as Comfy-Org's file;
    Qwen-Image's Qwen2.5-VL (qwen25_7b): its language model's model.* (no vision tower: it was not read);
    HunyuanImage's, and its byT5 (byt5_small) in T5's names."""
    from .gemma2 import SPIECE_KEY, GemmaTextEncoder
    from .llama import DecoderTextEncoder
    from .t5 import SentencePieceIds

    if isinstance(clip, DecoderTextEncoder):  # HunyuanVideo's CLIP-L, then the model.* (llava_llama3_fp16's keys)
        states = {t.name: (_cpu(_hf_tower_state(t)), _tower_metadata(t.name, t)) for t in clip.towers}
        state = _cpu(manager().weights(clip.model, clip.patches))  # CLIPAttentionMultiply saved merged in
        if isinstance(clip, GemmaTextEncoder):
            state[SPIECE_KEY] = torch.frombuffer(bytearray(clip.pieces.model), dtype=torch.uint8)
        states[clip.key] = (state, {})
        for name, encoder in clip.extra_encoders:  # HunyuanImage's glyph encoder: byt5_small_glyphxl's keys
            states[name] = (_t5_state(encoder), {})
        return states
    if isinstance(clip, TextEncoder):
        towers = {t.name: t for t in clip.towers}
        t5 = None
    else:  # FlowTextEncoder, HiDreamTextEncoder
        towers = {name: t for name, t in (("clip_l", clip.clip_l), ("clip_g", clip.clip_g)) if t is not None}
        t5 = clip.t5
    states = {name: (_cpu(_hf_tower_state(tower)), _tower_metadata(name, tower)) for name, tower in towers.items()}
    if getattr(clip, "arch", None) == "hidream" and clip.model is not None:  # Llama 3.1's model.*, as ComfyUI's file
        states["llama"] = (_cpu(manager().weights(clip.model, clip.patches)), {})
    if t5 is not None:
        state = _t5_state(t5)
        if isinstance(t5.pieces, SentencePieceIds):  # UMT5 (Wan): its tokenizer beside the weights, as in Comfy-Org's
            state["spiece_model"] = torch.frombuffer(bytearray(t5.pieces.model), dtype=torch.uint8)
        # Pile-T5 (AuraFlow): its tokenizer ships with graphflow, as with ComfyUI
        states[t5.comfy_name] = (state, {})
    return states


def _t5_state(t5) -> dict[str, torch.Tensor]:
    """A T5's (byT5's) weights on the CPU; files hold the tied embedding once, as shared.weight."""
    return _cpu({k: v for k, v in manager().weights(t5.model).items() if k != "encoder.embed_tokens.weight"})


def _tower_metadata(name: str, tower) -> dict[str, str]:
    """Which tower this is and what its weights cannot show (the loader reads both)."""
    config = tower.model.config
    return config_metadata(text_encoders={name: {"num_attention_heads": config.num_attention_heads,
                                                       "hidden_act": config.hidden_act}})


def save_text_encoder(path, state: tuple[dict[str, torch.Tensor], dict[str, str]],
                      extra_metadata: dict | None = None) -> Path:
    """One of text_encoder_states' (weights, metadata) as a file, marked "format": "pt" as
    ComfyUI's CLIPSave marks its files."""
    return _save(path, state[0], {"format": "pt", **state[1]}, extra_metadata)


def save_image_only_checkpoint(path, model: DiffusionModel, clip_vision, vae: VAE,
                               extra_metadata: dict | None = None) -> Path:
    """ImageOnlyCheckpointSave's file, as ComfyUI writes it: a video model (SVD, SV3D) with its CLIP
    vision model (transformers' names) under conditioner.embedders.0.open_clip.model.visual. and its
    VAE; load_image_only_checkpoint reads it back."""
    from .checkpoint import SVD_IMAGE_ENCODER, TEMPORAL_VAE_KEY

    if model.arch != "svd":
        raise NodeInputError("model", "image-only checkpoints hold a video model (Stable Video Diffusion); "
                                      f"this is {model.arch}")
    vae_state = vae.module.state_dict()
    if TEMPORAL_VAE_KEY not in vae_state and model.unet.config.variant == "svd":  # SV3D ships either
        raise NodeInputError("vae", "the VAE has no temporal decoder; a video checkpoint needs the one it was "
                                    "loaded with")
    state = model_state(model)
    state.update({VAE_PREFIX + k: v for k, v in vae_state.items()})
    state.update({SVD_IMAGE_ENCODER + k: v for k, v in clip_vision.module.state_dict().items()})
    return _save(path, _cpu(state), model_metadata(model, path), extra_metadata)
