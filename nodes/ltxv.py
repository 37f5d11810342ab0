"""LTX-Video nodes (ComfyUI's names and inputs): the empty video latent, image to video, the
frame rate in the conditioning, the token-count-dependent flow shift as a model setting or a
sigma schedule."""

from __future__ import annotations

import math

from graphflow.api import (CONDITIONING, IMAGE, LATENT, MODEL, SIGMAS, VAE, Bool, ComfyAlias, Float, Int, Node,
                           NodeInputError)

MAX_SIZE = 16384
LATENT_CHANNELS = 128  # the video VAE's
FRAMES_PER_LATENT, PIXELS_PER_LATENT = 8, 32


def _tokens(latent, name: str = "latent") -> int:
    """The latent's token count (frames x rows x columns); ComfyUI's 4096 without a latent."""
    if latent is None:
        return 4096
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if samples is None or samples.ndim != 5:
        raise NodeInputError(name, "expected a video LATENT [B, C, frames, h, w] (EmptyLTXVLatentVideo), got "
                                   f"{tuple(samples.shape) if samples is not None else type(latent).__name__}")
    return math.prod(samples.shape[2:])


def empty_video(batch_size: int, length: int, height: int, width: int):
    import torch
    frames = (length - 1) // FRAMES_PER_LATENT + 1
    return torch.zeros(batch_size, LATENT_CHANNELS, frames, height // PIXELS_PER_LATENT, width // PIXELS_PER_LATENT)


class EmptyLTXVLatentVideo(Node):
    """A blank LTX-Video latent: 128 channels, one latent frame for the first picture and one for
    each 8 after it ((length - 1) / 8 + 1), 1/32 of the width and height."""
    category = "latent/video/ltxv"
    width: int = Int(768, min=64, max=MAX_SIZE, step=32)
    height: int = Int(512, min=64, max=MAX_SIZE, step=32)
    length: int = Int(97, min=1, max=MAX_SIZE, step=8)
    batch_size: int = Int(1, min=1, max=4096)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("EmptyLTXVLatentVideo",))

    def run(self):
        return {"samples": empty_video(self.batch_size, self.length, self.height, self.width)}


class LTXVImgToVideo(Node):
    """Start a video from a picture: the image (scaled to width x height, cropped around its
    centre) is encoded as the first latent frame of an otherwise empty video latent, and a noise
    mask keeps it (strength 1: kept as it is; lower: that much of it is redrawn). The sampler
    denoises the other frames around it."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    image: IMAGE
    width: int = Int(768, min=64, max=MAX_SIZE, step=32)
    height: int = Int(512, min=64, max=MAX_SIZE, step=32)
    length: int = Int(97, min=9, max=MAX_SIZE, step=8)
    batch_size: int = Int(1, min=1, max=4096)
    strength: float = Float(1.0, min=0.0, max=1.0)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("LTXVImgToVideo",))

    def run(self):
        import torch

        from graphflow.images import center_crop_to_aspect, resize_nchw
        if getattr(self.vae, "latent_format", None) is None or self.vae.latent_format.name != "ltxv":
            raise NodeInputError("vae", "LTXVImgToVideo needs LTX-Video's video VAE (from an LTX-Video checkpoint)")
        pixels = self.image[..., :3].movedim(-1, 1)
        pixels = resize_nchw(center_crop_to_aspect(pixels, self.width, self.height), self.width, self.height,
                             "bilinear").movedim(1, -1)
        first = self.vae.encode(pixels)  # the images are the frames of one video
        latent = empty_video(self.batch_size, self.length, self.height, self.width)
        latent[:, :, :first.shape[2]] = first
        mask = torch.ones(self.batch_size, 1, latent.shape[2], 1, 1)
        mask[:, :, :first.shape[2]] = 1.0 - self.strength
        return self.positive, self.negative, {"samples": latent, "noise_mask": mask}


class LTXVPreprocess(Node):
    """Give pictures the look of video frames: each one is encoded as H.264 at this compression
    (x264's CRF; 0 leaves the pictures untouched, higher is lossier) and decoded back. LTX-Video was
    trained on compressed video, so a clean still image used as a start or guide frame moves more
    when it carries the same artefacts."""
    category = "image"
    image: IMAGE
    img_compression: int = Int(35, min=0, max=100)
    outputs = {"output_image": IMAGE}
    comfy = ComfyAlias(("LTXVPreprocess",))

    def run(self):
        from graphflow.video import VideoFileError, h264_roundtrip
        if self.image.ndim != 4 or self.image.shape[0] == 0:
            raise NodeInputError("image", f"expected an IMAGE batch [frames, H, W, C], got {tuple(self.image.shape)}")
        if self.img_compression == 0:
            return self.image
        try:
            return h264_roundtrip(self.image, self.img_compression)
        except VideoFileError as e:
            raise NodeInputError("image", f"LTXVPreprocess could not encode the frames as H.264: {e}") from None


class LTXVConditioning(Node):
    """Tell LTX-Video the frame rate of the video it makes (frames per second): it places the
    frames in time by it. Set the same rate as the video is saved at."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    frame_rate: float = Float(25.0, min=0.0, max=1000.0, step=0.01)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("LTXVConditioning",))

    def run(self):
        if self.frame_rate <= 0:
            raise NodeInputError("frame_rate", f"the frame rate must be above 0, got {self.frame_rate}")
        return tuple([(cond, {**options, "frame_rate": self.frame_rate}) for cond, options in side]
                     for side in (self.positive, self.negative))


class ModelSamplingLTXV(Node):
    """Set LTX-Video's flow shift from the video's size: mu grows linearly with the latent's token
    count (frames x rows x columns), base_shift at 1024 tokens, max_shift at 4096 (4096 tokens
    without a latent), and sigma = e^mu / (e^mu + 1/t - 1)."""
    category = "advanced/model"
    model: MODEL
    max_shift: float = Float(2.05, min=0.0, max=100.0, step=0.01)
    base_shift: float = Float(0.95, min=0.0, max=100.0, step=0.01)
    latent: LATENT = None
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelSamplingLTXV",), optional=("latent",))

    def run(self):
        from graphflow.sampling.flow_sampling import FlowSchedule, ltxv_shift
        from nodes.flow import _with_sampling
        return _with_sampling(self.model, FlowSchedule.flux(ltxv_shift(_tokens(self.latent), self.max_shift,
                                                                       self.base_shift)))


class LTXVScheduler(Node):
    """LTX-Video's sigma schedule: `steps` equal steps in time shifted as ModelSamplingLTXV
    shifts them for the latent's size, then (stretch) rescaled so the last step before 0 ends
    at `terminal`."""
    category = "sampling/custom_sampling/schedulers"
    steps: int = Int(20, min=1, max=10000, resource="steps")
    max_shift: float = Float(2.05, min=0.0, max=100.0, step=0.01)
    base_shift: float = Float(0.95, min=0.0, max=100.0, step=0.01)
    stretch: bool = Bool(True)
    terminal: float = Float(0.1, min=0.0, max=0.99, step=0.01)
    latent: LATENT = None
    outputs = {"sigmas": SIGMAS}
    comfy = ComfyAlias(("LTXVScheduler",), optional=("latent",))

    def run(self):
        from graphflow.sampling.flow_sampling import ltxv_shift
        from graphflow.sampling.schedules import ltxv_sigmas
        mu = ltxv_shift(_tokens(self.latent), self.max_shift, self.base_shift)
        return ltxv_sigmas(self.steps, mu, self.stretch, self.terminal)
