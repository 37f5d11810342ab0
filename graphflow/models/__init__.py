"""The model stack: UNet, VAE, text encoders, checkpoints."""

from .diffusion_model import BetaSchedule, DiffusionModel
from .latent_formats import FLUX, LATENT_FORMATS, SD1, SD3, SDXL, LatentFormat, fit_rgb_factors
from .unet import UNet, UNetConfig, unet_config_from_state_dict
from .vae import VAE, Autoencoder, AutoencoderKL, VAEConfig, vae_config_from_state_dict
from .text_encoders import ClipTower, TextEncoder
from .checkpoint import (ArchInfo, Checkpoint, CheckpointError, detect_architecture, inspect_report, load_checkpoint,
                         load_text_encoder, load_vae)
from .lora import LoraError, apply_lora
