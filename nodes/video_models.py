"""Stable Video Diffusion (SVD / SVD-XT, image to video), as ComfyUI's video_model nodes: load an
image-only checkpoint (graphflow.models.svd), condition it on an init image, shape the CFG across
the frames, scale its temporal attention.

A video is a LATENT batch of frames; the sampler runs it through the video UNet as one video."""

from __future__ import annotations

from graphflow.api import (CLIP_VISION, CONDITIONING, IMAGE, LATENT, MODEL, VAE, Choice, ComfyAlias, Float, Int,
                           Node, NodeInputError, Text, folders, warn)
from nodes.checkpoint_save import _output_path, _show_saved, _workflow_metadata


class ImageOnlyCheckpointLoader(Node):
    """Load an image-only video checkpoint as Stability ships Stable Video Diffusion
    (svd.safetensors, svd_xt.safetensors) and SV3D (sv3d_u.safetensors, sv3d_p.safetensors) from
    models/checkpoints/: the video diffusion model, the CLIP vision model that encodes its init
    image, and its VAE (with the temporal decoder where the file has one). Any other checkpoint
    loads as in ComfyUI: its model, the image encoder it carries (unCLIP, Stable Zero123) or an
    empty clip_vision (a warning says so), and its VAE."""
    category = "loaders/video_models"
    checkpoint: str = Choice(lambda: folders.list_models("checkpoints"), model_folder="checkpoints")
    outputs = {"model": MODEL, "clip_vision": CLIP_VISION, "vae": VAE}
    comfy = ComfyAlias(("ImageOnlyCheckpointLoader",), inputs={"ckpt_name": "checkpoint"})

    @classmethod
    def fingerprint(cls, checkpoint):
        return folders.model_state("checkpoints", checkpoint)

    def run(self):
        from graphflow.models.architecture import is_video_checkpoint
        from graphflow.models.checkpoint import load_checkpoint_with_vision, load_image_only_checkpoint
        from graphflow.models.weight_files import CheckpointError, WeightFile

        try:
            path = folders.find_model("checkpoints", self.checkpoint)
        except (FileNotFoundError, ValueError) as e:
            raise NodeInputError("checkpoint", str(e)) from None
        try:
            with WeightFile(path) as f:
                video = is_video_checkpoint(f.shapes)
            if video:
                return load_image_only_checkpoint(path)
            loaded = load_checkpoint_with_vision(path)
        except CheckpointError as e:
            raise NodeInputError("checkpoint", str(e)) from None
        if loaded.clip_vision is None:
            warn(f"{self.checkpoint} carries no CLIP vision model (not SVD, unCLIP or Stable Zero123), so clip_vision "
                 f"is empty")
        return loaded.model, loaded.clip_vision, loaded.vae


class SVDImageToVideo(Node):
    """Condition a Stable Video Diffusion model on an init image: the image's CLIP vision
    embedding and its latent (scaled and centre-cropped to width x height) guide every frame;
    fps and motion_bucket_id (more: more motion) are the micro-conditioning SVD was trained with,
    augmentation_level adds that much noise to the image before encoding (looser adherence, more
    motion; ComfyUI draws it from torch's global generator, whose state a graph doesn't fix, so
    here it is drawn from seed 0 and the node is repeatable). Gives the positive and negative
    (zeroed) conditioning and an empty latent of video_frames frames."""
    category = "conditioning/video_models"
    clip_vision: CLIP_VISION
    init_image: IMAGE
    vae: VAE
    width: int = Int(1024, min=16, max=16384, step=8, resource="width")
    height: int = Int(576, min=16, max=16384, step=8, resource="height")
    video_frames: int = Int(14, min=1, max=4096, resource="frames")
    motion_bucket_id: int = Int(127, min=1, max=1023)
    fps: int = Int(6, min=1, max=1024)
    augmentation_level: float = Float(0.0, min=0.0, max=10.0, step=0.01)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("SVD_img2vid_Conditioning",))

    def run(self):
        import torch

        pooled, pixels = _init_image(self.clip_vision, self.init_image, self.width, self.height)
        if self.augmentation_level > 0:
            # ComfyUI draws this from the global RNG; a fixed seed keeps the node repeatable
            noise = torch.randn(pixels.shape, generator=torch.Generator().manual_seed(0))
            pixels = pixels + noise * self.augmentation_level
        latent = self.vae.encode(pixels)
        options = {"motion_bucket_id": self.motion_bucket_id, "fps": self.fps,
                   "augmentation_level": self.augmentation_level}
        positive = [(pooled, {**options, "concat_latent_image": latent})]
        negative = [(torch.zeros_like(pooled), {**options, "concat_latent_image": torch.zeros_like(latent)})]
        empty = torch.zeros(self.video_frames, latent.shape[1], self.height // 8, self.width // 8)
        return positive, negative, {"samples": empty}


def _init_image(clip_vision, image, width: int, height: int):
    """The init image's CLIP vision embedding [1, B, dim] (the images become tokens, as ComfyUI's)
    and its pixels centre-cropped and scaled to width x height [B, height, width, 3]."""
    from graphflow.images import center_crop_to_aspect, resize_nchw

    if getattr(image, "ndim", 0) != 4 or image.shape[-1] not in (3, 4):
        raise NodeInputError("init_image",
                             f"expected an IMAGE [B, H, W, 3], got shape {tuple(getattr(image, 'shape', ()))}")
    if not callable(getattr(clip_vision, "encode_image", None)):
        raise NodeInputError("clip_vision", f"expected a CLIP_VISION model, got {type(clip_vision).__name__}")
    embeds = clip_vision.encode_image(image).image_embeds
    if embeds is None or embeds.ndim != 2:
        raise NodeInputError("clip_vision", "expected a CLIP vision model that gives [B, dim] image embeddings")
    pixels = image[..., :3].movedim(-1, 1).float()
    pixels = center_crop_to_aspect(pixels, width, height)
    pixels = resize_nchw(pixels, width, height, "bilinear")
    return embeds.float().cpu()[None], pixels.movedim(1, -1)


class SV3DConditioning(Node):
    """Condition an SV3D model (sv3d_u / sv3d_p, from ImageOnlyCheckpointLoader) on an init image
    of an object: video_frames views orbiting it once, at the camera elevation given (degrees
    above the horizon; SV3D_p follows it and the per-frame azimuths 0, 360 / (frames - 1), ...,
    SV3D_u ignores both). The image's CLIP vision embedding and its latent (scaled and
    centre-cropped to width x height) guide every frame. Gives the positive and negative
    (zeroed) conditioning and an empty latent of video_frames frames."""
    category = "conditioning/3d_models"
    clip_vision: CLIP_VISION
    init_image: IMAGE
    vae: VAE
    width: int = Int(576, min=16, max=16384, step=8, resource="width")
    height: int = Int(576, min=16, max=16384, step=8, resource="height")
    video_frames: int = Int(21, min=1, max=4096, resource="frames")
    elevation: float = Float(0.0, min=-90.0, max=90.0, step=0.1, round=False)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("SV3D_Conditioning",))

    def run(self):
        import torch

        pooled, pixels = _init_image(self.clip_vision, self.init_image, self.width, self.height)
        latent = self.vae.encode(pixels)
        step = 360 / (max(self.video_frames, 2) - 1)
        azimuths, azimuth = [], 0.0
        for _ in range(self.video_frames):  # accumulated, as ComfyUI's (the last one is 360: the first view again)
            azimuths.append(azimuth)
            azimuth += step
        camera = {"elevation": [self.elevation] * self.video_frames, "azimuth": azimuths}
        positive = [(pooled, {"concat_latent_image": latent, **camera})]
        negative = [(torch.zeros_like(pooled), {"concat_latent_image": torch.zeros_like(latent), **camera})]
        empty = torch.zeros(self.video_frames, latent.shape[1], self.height // 8, self.width // 8)
        return positive, negative, {"samples": empty}


class VideoLinearCFGGuidance(Node):
    """CFG that rises over a video's frames: min_cfg at the first frame (the init image, which
    needs little guidance), the sampler's cfg at the last, linear in between."""
    category = "sampling/video_models"
    model: MODEL
    min_cfg: float = Float(1.0, min=0.0, max=100.0, step=0.5, round=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("VideoLinearCFGGuidance",))

    def run(self):
        from graphflow.sampling.cfg_patches import video_linear_cfg
        return video_linear_cfg(self.model, self.min_cfg)


class VideoTriangleCFGGuidance(Node):
    """CFG that rises and falls over a video's frames: min_cfg at the first and last frame, the
    sampler's cfg at the middle one, linear in between."""
    category = "sampling/video_models"
    model: MODEL
    min_cfg: float = Float(1.0, min=0.0, max=100.0, step=0.5, round=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("VideoTriangleCFGGuidance",))

    def run(self):
        from graphflow.sampling.cfg_patches import video_triangle_cfg
        return video_triangle_cfg(self.model, self.min_cfg)


def _factor() -> float:
    return Float(1.0, min=0.0, max=10.0, step=0.01)


class UNetTemporalAttentionMultiply(Node):
    """Scales the output of a video UNet's (SVD's) attention: self- and cross-attention of the
    spatial ("structural") transformer blocks and of the temporal ones (across frames). Lower
    temporal factors loosen the frames' coupling. All 1: no change. On other models (an image
    UNet, LTX-Video) every attn1 / attn2 output projection counts as structural, as in ComfyUI."""
    category = "model_patches/attention"
    model: MODEL
    self_structural: float = _factor()
    self_temporal: float = _factor()
    cross_structural: float = _factor()
    cross_temporal: float = _factor()
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("UNetTemporalAttentionMultiply",))

    def run(self):
        from graphflow.models.attention_multiply import multiply_temporal_attention

        if getattr(self.model, "unet", None) is None or not hasattr(self.model, "with_patches"):
            raise NodeInputError("model", "UNetTemporalAttentionMultiply needs a diffusion MODEL (a video UNet: "
                                          "Stable Video Diffusion, from ImageOnlyCheckpointLoader)")
        return multiply_temporal_attention(self.model, self.self_structural, self.self_temporal,
                                           self.cross_structural, self.cross_temporal)


class ImageOnlyCheckpointSave(Node):
    """Save a video model (Stable Video Diffusion, SV3D), its CLIP vision model and VAE as one
    .safetensors checkpoint in Stability's layout, in the outputs folder (the prefix may name a
    subfolder). Move it to models/checkpoints to load it with ImageOnlyCheckpointLoader."""
    category = "advanced/model_merging"
    output_node = True
    model: MODEL
    clip_vision: CLIP_VISION
    vae: VAE
    filename_prefix: str = Text("checkpoints/graphflow", file_name=True)
    comfy = ComfyAlias(("ImageOnlyCheckpointSave",))

    def run(self):
        from graphflow.models.checkpoint_save import save_image_only_checkpoint

        if getattr(self.model, "arch", None) != "svd":
            raise NodeInputError("model", "ImageOnlyCheckpointSave writes video (Stable Video Diffusion) checkpoints; "
                                          f"this model is {getattr(self.model, 'arch', '?')}")
        if getattr(self.clip_vision, "module", None) is None:
            raise NodeInputError("clip_vision", "expected a CLIP_VISION model")
        path = _output_path(self.filename_prefix)
        # its NodeInputError names the parameter at fault (model, vae), as our inputs are named
        save_image_only_checkpoint(path, self.model, self.clip_vision, self.vae, _workflow_metadata())
        _show_saved([path])
