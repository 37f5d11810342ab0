"""The model stack: UNet, VAE, text encoders, checkpoints.

The names below are imported on first use (PEP 562), not with the package: importing
graphflow.models.latent_formats, as the node catalogue does, must not pull in transformers
(text_encoders) or the torch models, which would cost the light commands seconds.
"""

import importlib

_EXPORTS = {
    "diffusion_model": ["BetaSchedule", "DiffusionModel"],
    "latent_formats": ["FLUX", "LATENT_FORMATS", "SD1", "SD3", "SDXL", "LatentFormat", "fit_rgb_factors"],
    "unet": ["UNet", "UNetConfig", "unet_config_from_state_dict"],
    "vae": ["VAE", "Autoencoder", "AutoencoderKL", "VAEConfig", "vae_config_from_state_dict"],
    "text_encoders": ["ClipTower", "TextEncoder"],
    "architecture": ["ArchInfo", "detect_architecture"],
    "checkpoint": ["Checkpoint", "load_checkpoint", "load_text_encoder", "load_vae"],
    "checkpoint_report": ["inspect_report"],
    "weight_files": ["CheckpointError"],
    "lora": ["LoraError", "apply_lora"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)


def __dir__():
    return sorted(list(globals()) + __all__)
