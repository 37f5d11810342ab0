"""The model stack: UNet, VAE, text encoders, checkpoints."""

from .diffusion_model import BetaSchedule, DiffusionModel
from .latent_formats import FLUX, LATENT_FORMATS, SD1, SD3, SDXL, LatentFormat, fit_rgb_factors
from .unet import UNet, UNetConfig, unet_config_from_state_dict
from .vae import VAE, Autoencoder, AutoencoderKL, VAEConfig, vae_config_from_state_dict
from .text_encoders import ClipTower, TextEncoder
from .architecture import ArchInfo, detect_architecture
from .checkpoint import Checkpoint, load_checkpoint, load_text_encoder, load_vae
from .checkpoint_report import inspect_report
from .weight_files import CheckpointError
from .lora import LoraError, apply_lora
