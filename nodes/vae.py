"""VAE nodes: pixels to latents and back, tiled for large images, and inpainting's encode."""

from __future__ import annotations

from graphflow.api import IMAGE, LATENT, MASK, VAE, Bool, ComfyAlias, Int, Node, NodeInputError

MAX_TILE = 4096


def _require_vae(vae):
    if vae is None:
        raise NodeInputError("vae", "no VAE: the checkpoint has none; load one with LoadVAE")
    return vae


def _tiled(method, vae, tile_size: int, overlap: int, temporal_size: int, temporal_overlap: int):
    """A VAE's tiled encode or decode; a video VAE (one with a temporal compression) also tiles
    over frames, an image VAE has no frames to tile."""
    if getattr(vae, "temporal_compression", None):
        return method(tile_size, overlap, temporal_size, temporal_overlap)
    return method(tile_size, overlap)


class VAEEncode(Node):
    """Encode images into latents (raw VAE space). Sizes are cropped to multiples of the VAE's
    downscale (8 for most). Tiled encoding handles images too large for memory (tile_size and
    overlap in pixels; overlap under half the tile), averaged over three tilings as ComfyUI's
    VAEEncodeTiled. A video VAE (LTX-Video, Mochi) takes the IMAGE batch as the frames of one
    video and, tiled, also tiles over frames: temporal_size frames per tile overlapping by
    temporal_overlap, turned into whole latent frames as ComfyUI's VAEEncodeTiled does."""
    category = "latent"
    pixels: IMAGE
    vae: VAE
    tiled: bool = Bool(False)
    tile_size: int = Int(512, min=64, max=MAX_TILE, step=32)
    overlap: int = Int(64, min=0, max=MAX_TILE, step=32)
    temporal_size: int = Int(64, min=8, max=MAX_TILE, step=4)
    temporal_overlap: int = Int(8, min=4, max=MAX_TILE, step=4)
    outputs = {"latent": LATENT}
    comfy = (ComfyAlias(("VAEEncode",), optional=("tiled", "tile_size", "overlap", "temporal_size",
                                               "temporal_overlap")),
             ComfyAlias(("VAEEncodeTiled",), fixed={"tiled": True}))

    def run(self):
        vae = _require_vae(self.vae)
        if self.tiled:
            from graphflow.models.tiling import OverlapError

            try:
                return {"samples": _tiled(lambda *a: vae.encode_tiled(self.pixels, *a), vae, self.tile_size,
                                          self.overlap, self.temporal_size, self.temporal_overlap)}
            except OverlapError as e:  # ComfyUI's range() fails there
                raise NodeInputError("overlap", str(e)) from None
        return {"samples": vae.encode(self.pixels)}


class VAEDecode(Node):
    """Decode latents into images. Tiled decoding (sizes in pixels) handles images too large for
    memory, as ComfyUI's VAEDecodeTiled: overlap at most a quarter of the tile, and the decode
    averaged over three tilings (tall, wide and square tiles) so that seams blur out; plain
    decoding also falls back to it when memory runs out. A video latent (LTX-Video, Mochi) decodes to its frames as one IMAGE batch;
    tiled, it is also cut over frames: temporal_size frames per tile overlapping by
    temporal_overlap, turned into latent frames as ComfyUI's VAEDecodeTiled does (a video no longer
    than a tile is not cut in time). Image VAEs ignore the temporal inputs."""
    category = "latent"
    keeps_frames = True  # a video latent decodes to its frames
    samples: LATENT
    vae: VAE
    tiled: bool = Bool(False)
    tile_size: int = Int(512, min=64, max=MAX_TILE, step=32)
    overlap: int = Int(64, min=0, max=MAX_TILE, step=32)
    temporal_size: int = Int(64, min=8, max=MAX_TILE, step=4)
    temporal_overlap: int = Int(8, min=4, max=MAX_TILE, step=4)
    outputs = {"image": IMAGE}
    comfy = (ComfyAlias(("VAEDecode",), optional=("tiled", "tile_size", "overlap", "temporal_size",
                                               "temporal_overlap")),
             ComfyAlias(("VAEDecodeTiled",), fixed={"tiled": True}))

    def run(self):
        vae = _require_vae(self.vae)
        latent = self.samples["samples"]
        if latent.shape[1] != vae.latent_channels:
            hint = (" (Stable Cascade's Stage A decodes Stage B's output; a Stage C latent goes through "
                    "StableCascade_StageB_Conditioning and Stage B first)"
                    if getattr(vae.latent_format, "name", "") == "stable_cascade_b" else "")
            raise NodeInputError("samples", f"latents have {latent.shape[1]} channels; this VAE uses "
                                            f"{vae.latent_channels}{hint}")
        if self.tiled:
            return _tiled(lambda *a: vae.decode_tiled(latent, *a), vae, self.tile_size, self.overlap,
                          self.temporal_size, self.temporal_overlap)
        return vae.decode(latent)


class VAEEncodeForInpaint(Node):
    """Encode an image for inpainting: the masked area is greyed out before encoding, and the
    mask, grown by about `grow_mask_by` / 2 pixels each way and made 0/1, is attached so the
    sampler repaints only there.
    Use denoise 1.0; for inpainting models (9 channels) this is the input they expect."""
    category = "latent/inpaint"
    pixels: IMAGE
    vae: VAE
    mask: MASK
    grow_mask_by: int = Int(6, min=0, max=64)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("VAEEncodeForInpaint",))

    def run(self):
        import math

        import torch
        import torch.nn.functional as F
        vae = _require_vae(self.vae)
        pixels = self.pixels
        b, h, w, _ = pixels.shape
        f = vae.downscale
        mask = self.mask.reshape(-1, 1, *self.mask.shape[-2:]).float()
        mask = F.interpolate(mask, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        top, left = (h % f) // 2, (w % f) // 2
        H, W = h - h % f, w - w % f
        pixels, mask = pixels[:, top:top + H, left:left + W], mask[:, top:top + H, left:left + W]
        # As ComfyUI: the pixels are greyed where the rounded mask is set (not grown); the noise
        # mask is the rounded mask summed over a g x g box (padding ceil((g - 1) / 2), so an even g
        # reaches one pixel further down and right than up and left), clamped, cut back to size.
        binary = mask.round()
        grown = mask
        if g := self.grow_mask_by:
            box = torch.ones(1, 1, g, g)
            grown = F.conv2d(binary[:, None], box, padding=math.ceil((g - 1) / 2)).clamp(0, 1)[:, 0, :H, :W]
        greyed = (pixels - 0.5) * (1.0 - binary)[..., None] + 0.5
        return {"samples": vae.encode(greyed), "noise_mask": grown.round()[:, None]}
