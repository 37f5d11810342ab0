"""Write MODEL / CLIP / VAE back as one single-file checkpoint in the original LDM key layout
(what CheckpointSave makes, and what our loader, ComfyUI and diffusers' from_single_file read):

    model.diffusion_model.*            the UNet
    first_stage_model.*                the VAE
    cond_stage_model.transformer.text_model.* / cond_stage_model.model.* / conditioner.embedders.N.*
                                       the text encoder towers in their file layouts (CLIP-L in
                                       transformers' names, OpenCLIP towers with fused q/k/v)

What weights cannot show is written into the safetensors metadata (`graphflow.config`: prediction,
head counts, norm groups, latent scale) with ComfyUI's `modelspec.*` keys, and, as ComfyUI does,
empty `v_pred` / `ztsnr` marker tensors for v-prediction (zero terminal SNR) models, so the file
loads back as the same model.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from graphflow.memory import manager

from .architecture import UNET_PREFIX, VAE_PREFIX
from .diffusion_model import DiffusionModel
from .text_encoders import HF, TextEncoder, hf_to_openclip, text_transformer
from .vae import VAE
from .weight_files import config_metadata

MODELSPEC_ARCH = {"sd1": "stable-diffusion-v1", "sd2": "stable-diffusion-v2-768-v", "sdxl": "stable-diffusion-xl-v1-base",
                  "sdxl_refiner": "stable-diffusion-xl-v1-refiner"}


def _tower_state(tower) -> dict[str, torch.Tensor]:
    """One tower in its checkpoint layout, keys below its prefix."""
    state = manager().weights(tower.model, tower.patches)  # its LoRAs saved merged in
    inner = "" if text_transformer(tower.model) is tower.model else "text_model."
    hf = {"text_model." + k[len(inner):]: v for k, v in state.items()
          if k.startswith(inner) and not k.startswith("text_projection.") and k[len(inner):] != "embeddings.position_ids"}
    if tower.projection is not None:
        hf["text_projection.weight"] = state["text_projection.weight"]
    if tower.spec.layout == HF:
        state = {k[len("text_model."):] if k.startswith("text_model.") else k: v for k, v in hf.items()}
        positions = state["embeddings.position_embedding.weight"].shape[0]
        state["embeddings.position_ids"] = torch.arange(positions)[None]  # as SD1 files carry it
        return state
    return hf_to_openclip(hf)


def checkpoint_state(model: DiffusionModel, clip: TextEncoder, vae: VAE) -> dict[str, torch.Tensor]:
    state = {UNET_PREFIX + k: v for k, v in manager().weights(model.unet, model.patches).items()}
    state.update({VAE_PREFIX + k: v for k, v in vae.module.state_dict().items()})
    for tower in clip.towers:
        state.update({tower.spec.prefix + k: v for k, v in _tower_state(tower).items()})
    if model.prediction == "v" and model.edm is None:  # ComfyUI's marker keys, which both loaders read
        state["v_pred"] = torch.tensor([])
        if model.zsnr:
            state["ztsnr"] = torch.tensor([])
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def checkpoint_metadata(model: DiffusionModel, clip: TextEncoder, vae: VAE, title: str = "") -> dict[str, str]:
    fmt = model.latent_format
    latent_format = {"scale_factor": fmt.scale_factor, "shift_factor": fmt.shift_factor}
    if fmt.rgb_factors is not None:
        latent_format.update(rgb_factors=[list(r) for r in fmt.rgb_factors], rgb_bias=list(fmt.rgb_bias))
    unet = model.unet.config
    trained = model.prediction if model.prediction in ("eps", "v") and model.edm is None else None
    metadata = config_metadata(
        prediction=trained,  # lcm / x0 / EDM sampling is a sampling choice, not stored (as in ComfyUI)
        unet={"num_heads": unet.num_heads, "num_head_channels": unet.num_head_channels, "norm_groups": unet.norm_groups},
        vae={"norm_groups": vae.module.config.norm_groups},
        text_encoders={t.name: {"num_attention_heads": t.model.config.num_attention_heads,
                                "hidden_act": t.model.config.hidden_act} for t in clip.towers},
        latent_format=latent_format)
    metadata.update({"modelspec.sai_model_spec": "1.0.0", "modelspec.implementation": "sgm",
                     "modelspec.architecture": MODELSPEC_ARCH[model.arch], "modelspec.title": title})
    if trained is not None:
        metadata["modelspec.predict_key"] = "epsilon" if trained == "eps" else "v"
    if model.inpaint:
        metadata["modelspec.architecture"] += "/inpaint"
    return metadata


def save_checkpoint(path, model: DiffusionModel, clip: TextEncoder, vae: VAE, extra_metadata: dict | None = None) -> Path:
    if clip.arch != model.arch:
        raise ValueError(f"the text encoder is for {clip.arch}, the model is {model.arch}")
    if vae.latent_channels != model.latent_format.channels:
        raise ValueError(f"the VAE makes {vae.latent_channels}-channel latents, the model takes "
                         f"{model.latent_format.channels}")
    path = Path(path)
    metadata = checkpoint_metadata(model, clip, vae, path.stem)
    for key, value in (extra_metadata or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    save_file(checkpoint_state(model, clip, vae), str(path), metadata=metadata)
    return path
