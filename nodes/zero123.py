"""Stable Zero123: the conditioning that asks its model for a view of the object in an image from
another camera angle (graphflow.models.zero123).

The positive conditioning is one token: the image's CLIP image embedding followed by the camera
embedding, which the model projects to its context (cc_projection); the input image's VAE latent
travels as "concat_latent_image" (the model's 4 extra input channels). The negative is zeros of the
embedding's width and a zero image latent, as ComfyUI builds them."""

from __future__ import annotations

from graphflow.api import CLIP_VISION, CONDITIONING, IMAGE, LATENT, VAE, ComfyAlias, Float, Int, Node, NodeInputError

MAX_SIZE = 16384


def _angle(default: float = 0.0) -> float:
    return Float(default, min=-180.0, max=180.0, step=0.1, round=False)


def _camera_embeddings(elevations, azimuths):
    """[len, 1, 4] camera embeddings, computed in float32 as ComfyUI's camera_embeddings: elevation e
    becomes deg2rad((90 - e) - 90), so it carries float32's rounding of 90 - e."""
    import torch

    el = torch.as_tensor(list(elevations), dtype=torch.float32)
    az = torch.as_tensor(list(azimuths), dtype=torch.float32)
    return torch.stack([torch.deg2rad((90 - el) - 90), torch.sin(torch.deg2rad(az)), torch.cos(torch.deg2rad(az)),
                        torch.deg2rad(90 - torch.zeros_like(el))], dim=-1)[:, None]


def _encode(node) -> tuple:
    """(image embedding [1, 1, D], the image's raw VAE latent at width x height) of node.init_image."""
    from graphflow.images import center_crop_to_aspect, resize_nchw

    image = node.init_image
    if getattr(image, "ndim", 0) != 4 or image.shape[-1] not in (1, 3, 4):
        raise NodeInputError("init_image", f"expected an IMAGE [B, H, W, C], got shape {tuple(getattr(image, 'shape', ()))}")
    if image.shape[0] != 1:
        raise NodeInputError("init_image", f"Stable Zero123 turns one image; got a batch of {image.shape[0]} "
                                           f"(pick one with ImageFromBatch)")
    if node.vae is None:
        raise NodeInputError("vae", "no VAE: the checkpoint has none; load one with VAELoader")
    embeds = node.clip_vision.encode_image(image).image_embeds
    if embeds.ndim != 2:
        raise NodeInputError("clip_vision", f"Stable Zero123 takes a CLIP image embedding [B, D] (a CLIP ViT-L/14 "
                                            f"vision model); this model gives {tuple(embeds.shape)}")
    pixels = image.movedim(-1, 1).float()
    pixels = resize_nchw(center_crop_to_aspect(pixels, node.width, node.height), node.width, node.height, "bilinear")
    pixels = pixels.movedim(1, -1)[..., :3]
    if pixels.shape[-1] == 1:
        pixels = pixels.expand(*pixels.shape[:3], 3)
    return embeds[None], node.vae.encode(pixels)


def _outputs(embeds, cameras, latent, batch_size, height, width, batched: bool):
    import torch

    context = torch.cat([embeds.expand(cameras.shape[0], -1, -1), cameras], dim=-1)
    positive = [(context, {"concat_latent_image": latent})]
    negative = [(torch.zeros_like(embeds), {"concat_latent_image": torch.zeros_like(latent)})]
    samples = {"samples": torch.zeros(batch_size, 4, height // 8, width // 8)}
    if batched:  # every view starts from the same noise (the first image's), only the camera differs
        samples["batch_index"] = [0] * batch_size
    return positive, negative, samples


class StableZero123Conditioning(Node):
    """Conditioning for Stable Zero123 (stable_zero123.ckpt): the object in init_image seen from
    another camera. elevation (up/down) and azimuth (around the object) are in degrees, relative to
    the input view. The image is encoded by clip_vision (a CLIP ViT-L/14 vision model) and, resized
    to width x height (centre crop), by the VAE; the latent is empty at that size (sample it at
    denoise 1, with the checkpoint's model)."""
    category = "conditioning/3d_models"
    clip_vision: CLIP_VISION
    init_image: IMAGE
    vae: VAE
    width: int = Int(256, min=16, max=MAX_SIZE, step=8, resource="width")
    height: int = Int(256, min=16, max=MAX_SIZE, step=8, resource="height")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    elevation: float = _angle()
    azimuth: float = _angle()
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("StableZero123_Conditioning",))

    def run(self):
        embeds, latent = _encode(self)
        cameras = _camera_embeddings([self.elevation], [self.azimuth])
        return _outputs(embeds, cameras, latent, self.batch_size, self.height, self.width, batched=False)


class StableZero123ConditioningBatched(StableZero123Conditioning):
    """Stable Zero123 conditioning for a batch of views: image i of batch_size is seen from elevation
    + i * elevation_batch_increment and azimuth + i * azimuth_batch_increment (degrees), each from
    the same starting noise (a turntable: azimuth_batch_increment 360 / batch_size). Otherwise as
    StableZero123Conditioning."""
    elevation_batch_increment: float = _angle()
    azimuth_batch_increment: float = _angle()
    comfy = ComfyAlias(("StableZero123_Conditioning_Batched",))

    def run(self):
        embeds, latent = _encode(self)
        elevations, azimuths = [], []
        elevation, azimuth = self.elevation, self.azimuth
        for _ in range(self.batch_size):  # accumulated as ComfyUI does (the same float rounding)
            elevations.append(elevation)
            azimuths.append(azimuth)
            elevation += self.elevation_batch_increment
            azimuth += self.azimuth_batch_increment
        cameras = _camera_embeddings(elevations, azimuths)
        return _outputs(embeds, cameras, latent, self.batch_size, self.height, self.width, batched=True)
