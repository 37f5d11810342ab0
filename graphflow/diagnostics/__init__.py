"""Latent-space diagnostics: how a VAE uses its latent space, made measurable.

latent_stats   per-channel statistics before/after the scaling factor, NaN/Inf checks
logvar         the encoder's posterior log-variance and its anomalous locations
sensitivity    how much of the decoded image each latent location controls ("black hole" score)
latent_edits   region perturbation and interpolation of latents
image_metrics  MSE, L1, PSNR, SSIM, LPIPS
heatmaps       colour maps, labelled tiles and overlays as IMAGE tensors
"""
