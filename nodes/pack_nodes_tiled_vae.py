"""shiimizu's ComfyUI-TiledDiffusion, its Tiled VAE: Tiled VAE Encode (VAEEncodeTiled_TiledDiffusion)
and Tiled VAE Decode (VAEDecodeTiled_TiledDiffusion), read at tiled_vae.py 1169db008422 (and
__init__.py 37fbe897f41e). The algorithm is graphflow.models.tiled_vae's; the pack's Tiled
Diffusion nodes are nodes/pack_nodes_tiled_diffusion.py."""

from __future__ import annotations

import math

from graphflow.api import (IMAGE, LATENT, VAE, Bool, ComfyAlias, Int, Node, NodeInputError, Size, check_run_memory,
                           progress)

COMFY_PACK = "ComfyUI-TiledDiffusion"  # the custom node pack this module's ComfyUI classes come from
MAX_TILE = 4096
# the pack's defaults where no GPU is seen (it picks larger ones by the GPU's memory: up to 3072
# encoding, 2048 decoding)
ENCODER_TILE, DECODER_TILE = 512, 512

DIFFERS = """Differs from the pack: each GroupNorm's statistics are the whole picture's (each pixel
    once, the variance pooled with the spread of the tiles' means), where the pack averages the
    padded tiles' variances (overlaps counted twice and the spread between tiles left out, which
    raises the contrast where tiles differ); in fast mode a channel flat on the scaled picture (a
    plain canvas, an empty latent) is moved to the picture's mean only, where the pack divides 0 by
    0 and gives NaN everywhere; the mid-block attention is per tile, as the pack's."""


def _autoencoder(vae):
    """The VAE socket's KL autoencoder (SD1.x, SD2.x, SDXL, SD3, FLUX); others refused."""
    from graphflow.models.vae import VAE as KLSocket, AutoencoderKL

    if vae is None:
        raise NodeInputError("vae", "no VAE: the checkpoint has none; load one with LoadVAE")
    if not isinstance(vae, KLSocket) or not isinstance(vae.module, AutoencoderKL):
        raise NodeInputError("vae", f"Tiled VAE runs the KL autoencoder of SD1.x, SD2.x, SDXL, SD3 and FLUX "
                                    f"(4 or 16 latent channels); {type(vae).__name__} "
                                    f"({type(getattr(vae, 'module', vae)).__name__}) is not one (video VAEs, TAESD "
                                    f"and the others go through VAEEncodeTiled / VAEDecodeTiled)")
    return vae


def _check_memory(input_name: str, vae, batch: int, tile_px: int, height_px: int, width_px: int, fast: bool):
    """One tile's working memory on the device; without fast, the picture's widest features
    (kept with their residual between GroupNorms) in the RAM too."""
    config = vae.module.config
    check_run_memory(input_name, f"a {tile_px}-pixel tile", sampled=Size(batch, tile_px, tile_px))
    if not fast:  # a level's features and their residual, per picture pixel (level l at 1/2^l a side)
        channels = 2 * math.ceil(max(config.ch * m / 4 ** level for level, m in enumerate(config.ch_mult)))
        check_run_memory(input_name, f"the picture's features between GroupNorms ({channels} channels at "
                                     f"{width_px}x{height_px}; fast mode keeps one tile)",
                         images=Size(batch * -(-channels * vae.dtype.itemsize // 12), height_px, width_px))


def _progress(done: int, total: int):
    progress(done, total)


class VAEEncodeTiled_TiledDiffusion(Node):
    """Encode pixels in tiles of tile_size pixels (each with 32 pixels of context) that are
    normalised as one picture: at each GroupNorm every tile waits for all tiles' statistics.
    fast takes the statistics from one run on the picture scaled to a tile instead (one tile in
    memory at a time); color_fix (with fast) takes only the full-resolution GroupNorms' from there
    and gathers the rest. The pack's default tile_size depends on the GPU's memory (512 without
    one, up to 3072); ours is 512. Tiles are cut on multiples of 16 pixels. SD1.x, SD2.x, SDXL,
    SD3 and FLUX VAEs; others refused.
    """ + DIFFERS
    category = "_for_testing"
    display_name = "Tiled VAE Encode"
    pixels: IMAGE
    vae: VAE
    tile_size: int = Int(ENCODER_TILE, min=256, max=MAX_TILE, step=16)
    fast: bool = Bool(True)
    color_fix: bool = Bool(True)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("VAEEncodeTiled_TiledDiffusion",))

    def run(self):
        import torch

        from graphflow import memory
        from graphflow.models.tiled_vae import PAD_ENCODER, encoder_steps, tiled_run
        from graphflow.models.vae import centre_crop

        vae = _autoencoder(self.vae)
        if self.tile_size % 16:  # tiles on whole latent pixels
            raise NodeInputError("tile_size", f"expected a multiple of 16 of at least 256, got {self.tile_size}")
        f = vae.downscale
        if self.pixels.dim() != 4 or self.pixels.shape[1] < f or self.pixels.shape[2] < f \
                or self.pixels.shape[3] not in (3, 4):
            raise NodeInputError("pixels", f"expected an IMAGE [B, H, W, 3 or 4] of at least {f}x{f}, got "
                                           f"{tuple(self.pixels.shape)}")
        x = centre_crop(self.pixels.float().cpu(), f) * 2 - 1
        b, _, h, w = x.shape
        _check_memory("tile_size", vae, b, min(self.tile_size, max(h, w)) + 2 * PAD_ENCODER, h, w, self.fast)
        with torch.no_grad(), memory.use(vae.module, "vae", "vae"):
            moments = tiled_run(encoder_steps(vae.module), x, self.tile_size, PAD_ENCODER, 1 / f,
                                2 * vae.module.config.z_channels, vae.device, vae.dtype, fast=self.fast,
                                color_fix=self.color_fix, on_tile=_progress)
        return {"samples": moments[:, :vae.latent_channels].contiguous()}


class VAEDecodeTiled_TiledDiffusion(Node):
    """Decode latents in tiles of tile_size pixels (tile_size / 8 latent pixels, each with 11
    latent pixels of context) that are normalised as one picture: at each GroupNorm every tile
    waits for all tiles' statistics. fast takes the statistics from one run on the latent scaled
    to a tile instead (one tile in memory at a time). The pack's default tile_size depends on the
    GPU's memory (512 without one, up to 2048); ours is 512. SD1.x, SD2.x, SDXL, SD3 and FLUX
    VAEs; others refused.
    """ + DIFFERS
    category = "_for_testing"
    display_name = "Tiled VAE Decode"
    samples: LATENT
    vae: VAE
    tile_size: int = Int(DECODER_TILE, min=48 * 8, max=MAX_TILE, step=16)
    fast: bool = Bool(True)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("VAEDecodeTiled_TiledDiffusion",))

    def run(self):
        import torch

        from graphflow import memory
        from graphflow.models.tiled_vae import PAD_DECODER, decoder_steps, tiled_run

        vae = _autoencoder(self.vae)
        f = vae.downscale
        if self.tile_size < f:
            raise NodeInputError("tile_size", f"expected at least {f} pixels, got {self.tile_size}")
        z = self.samples["samples"]
        if z.dim() != 4 or z.shape[1] != vae.latent_channels:
            raise NodeInputError("samples", f"expected image latents [B, {vae.latent_channels}, h, w] for this "
                                            f"VAE, got {tuple(z.shape)}")
        b, _, h, w = z.shape
        tile = self.tile_size // f
        _check_memory("tile_size", vae, b, (min(tile, max(h, w)) + 2 * PAD_DECODER) * f, h * f, w * f, self.fast)
        with torch.no_grad(), memory.use(vae.module, "vae", "vae"):
            x = tiled_run(decoder_steps(vae.module), z.float().cpu(), tile, PAD_DECODER, f,
                          vae.module.config.out_channels, vae.device, vae.dtype, fast=self.fast, on_tile=_progress)
        return ((x + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).contiguous()
