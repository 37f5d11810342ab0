"""graphflow: a node-graph workflow engine for latent-diffusion image generation."""

__version__ = "0.1.0"
