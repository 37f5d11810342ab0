"""HunyuanVideo 1.0 nodes (ComfyUI's names and inputs): image to video for its image-to-video models.
The text-to-video graph needs none of its own: UNETLoader, DualCLIPLoader type hunyuan_video,
EmptyHunyuanLatentVideo (nodes.wan), FluxGuidance, KSampler, VAELoader / VAEDecode(Tiled)."""

from __future__ import annotations

from graphflow.api import CONDITIONING, IMAGE, LATENT, VAE, Choice, ComfyAlias, Int, Node, NodeInputError
from nodes.wan import MAX_SIZE, _fit, empty_video, image_to_video_mask, with_options

GUIDANCE_TYPES = ("v1 (concat)", "v2 (replace)", "custom")


class HunyuanImageToVideo(Node):
    """Start a HunyuanVideo image-to-video sampling: an empty latent of `length` frames, and with a start
    image (scaled to width x height around its centre; several images: the first frames) its latent,
    used as the guidance type says. v1 (concat), for hunyuan_video_image_to_video_720p: the latent and a
    mask of the latent frames it fixes go into the positive conditioning, which the model takes as extra
    input channels. v2 (replace), for the v2 model: the latent fills the first latent frames, a noise
    mask keeps them, and the model modulates the first frame as clean (guiding_frame_index 0). custom
    (a reference latent) is not supported."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    vae: VAE
    width: int = Int(848, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(53, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    guidance_type: str = Choice(GUIDANCE_TYPES, "v1 (concat)")
    start_image: IMAGE = None
    outputs = {"positive": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("HunyuanImageToVideo",), optional=("start_image",))

    def run(self):
        latent = empty_video(self.batch_size, self.length, self.height, self.width)
        if self.start_image is None:
            return self.positive, {"samples": latent}
        if self.guidance_type == "custom":
            raise NodeInputError("guidance_type", "custom (a reference latent for the model) is not supported; "
                                                  "use v1 (concat) or v2 (replace)")
        start = _fit(self.start_image[:self.length], self.width, self.height, "start_image")
        if not callable(getattr(self.vae, "encode", None)):
            raise NodeInputError("vae", "HunyuanImageToVideo needs a VAE that encodes (hunyuan_video_vae_bf16)")
        encoded = self.vae.encode(start)
        if encoded.ndim != 5 or encoded.shape[1] != latent.shape[1]:
            raise NodeInputError("vae", "HunyuanImageToVideo needs a video VAE of 16 latent channels (hunyuan_video_"
                                        f"vae_bf16), got latents {tuple(encoded.shape)}")
        mask = image_to_video_mask(latent.shape[2], encoded.shape[-2], encoded.shape[-1], start.shape[0])
        if self.guidance_type == "v1 (concat)":
            return with_options(self.positive, concat_latent_image=encoded, concat_mask=mask), {"samples": latent}
        latent[:, :, :encoded.shape[2]] = encoded[:, :, :latent.shape[2]].float()
        return with_options(self.positive, guiding_frame_index=0), {"samples": latent, "noise_mask": mask}
