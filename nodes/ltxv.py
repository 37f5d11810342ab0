"""LTX-Video nodes (ComfyUI's names and inputs): the empty video latent, image to video, the
frame rate in the conditioning, the token-count-dependent flow shift as a model setting or a
sigma schedule."""

from __future__ import annotations

import math

from graphflow.api import (CONDITIONING, IMAGE, LATENT, MODEL, SIGMAS, VAE, Bool, ComfyAlias, Estimate, Float, Int,
                           Node, NodeInputError)

MAX_SIZE = 16384
LATENT_CHANNELS = 128  # the video VAE's
FRAMES_PER_LATENT, PIXELS_PER_LATENT = 8, 32
APPENDED_GUIDE_FRAMES = 2  # LTXVAddGuide appends a guide's first latent frames; the rest go in place


def _tokens(latent, name: str = "latent") -> int:
    """The latent's token count: the product of its sizes after batch and channels (frames x rows
    x columns of a video; rows x columns of an image latent, as ComfyUI counts it); ComfyUI's 4096
    without a latent."""
    if latent is None:
        return 4096
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if getattr(samples, "ndim", 0) < 3:
        raise NodeInputError(name, "expected a LATENT (a video one: EmptyLTXVLatentVideo), got "
                                   f"{tuple(samples.shape) if samples is not None else type(latent).__name__}")
    return math.prod(samples.shape[2:])


def empty_video(batch_size: int, length: int, height: int, width: int):
    import torch
    frames = (length - 1) // FRAMES_PER_LATENT + 1
    return torch.zeros(batch_size, LATENT_CHANNELS, frames, height // PIXELS_PER_LATENT, width // PIXELS_PER_LATENT)


def _check_vae(vae, node: str) -> None:
    if getattr(vae, "latent_format", None) is None or vae.latent_format.name != "ltxv":
        raise NodeInputError("vae", f"{node} needs LTX-Video's video VAE (from an LTX-Video checkpoint)")


def _encode_frames(vae, image, width: int, height: int, crop: bool = True):
    """The images as the frames of one video, scaled to width x height (cropped around the centre
    to that aspect first, or stretched), encoded: [1, 128, latent frames, h, w]."""
    from graphflow.images import center_crop_to_aspect, resize_nchw

    pixels = image[..., :3].movedim(-1, 1)
    if crop:
        pixels = center_crop_to_aspect(pixels, width, height)
    return vae.encode(resize_nchw(pixels, width, height, "bilinear").movedim(1, -1))


def _video_latent(latent, node: str):
    """(samples [B, 128, F, h, w], noise mask [B, 1, F, h or 1, w or 1]: the latent's own or all ones)."""
    import torch

    samples = latent.get("samples") if isinstance(latent, dict) else None
    if samples is None or samples.ndim != 5 or samples.shape[1] != LATENT_CHANNELS:
        got = tuple(samples.shape) if samples is not None else type(latent).__name__
        raise NodeInputError("latent", f"{node} needs an LTX-Video LATENT [B, {LATENT_CHANNELS}, frames, h, w] "
                                       f"(EmptyLTXVLatentVideo), got {got}")
    mask = latent.get("noise_mask")
    if mask is None:
        return samples, torch.ones(samples.shape[0], 1, samples.shape[2], 1, 1)
    if mask.ndim != 5 or mask.shape[2] != samples.shape[2]:
        raise NodeInputError("latent", f"{node}: the latent's noise mask must be [B, 1, {samples.shape[2]}, h, w] "
                                       f"(one value per latent frame), got {tuple(mask.shape)}")
    return samples, mask.float()


def _guide_frames(conditioning) -> int:
    """How many latent frames at the end of a latent are appended guides (LTXVAddGuide's), counted
    as ComfyUI counts them: the distinct frames of the positions the conditioning carries for
    them (two guides given the same frame count once)."""
    import torch

    for _, options in conditioning:
        positions = options.get("keyframe_idxs")
        if positions is not None:
            return torch.unique(positions[:, 0]).numel()
    return 0


def _with_keyframes(conditioning, positions):
    """The conditioning with the appended guide frames' positions set (None: removed)."""
    out = []
    for cond, options in conditioning:
        options = {k: v for k, v in options.items() if k != "keyframe_idxs"}
        if positions is not None:
            options["keyframe_idxs"] = positions
        out.append((cond, options))
    return out


class EmptyLTXVLatentVideo(Node):
    """A blank LTX-Video latent: 128 channels, one latent frame for the first picture and one for
    each 8 after it ((length - 1) / 8 + 1), 1/32 of the width and height."""
    category = "latent/video/ltxv"
    width: int = Int(768, min=64, max=MAX_SIZE, step=32, resource="width")
    height: int = Int(512, min=64, max=MAX_SIZE, step=32, resource="height")
    length: int = Int(97, min=1, max=MAX_SIZE, step=8, resource="frames", frame_stride=8)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
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
    width: int = Int(768, min=64, max=MAX_SIZE, step=32, resource="width")
    height: int = Int(512, min=64, max=MAX_SIZE, step=32, resource="height")
    length: int = Int(97, min=9, max=MAX_SIZE, step=8, resource="frames", frame_stride=8)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    strength: float = Float(1.0, min=0.0, max=1.0)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("LTXVImgToVideo",))

    def run(self):
        import torch

        _check_vae(self.vae, "LTXVImgToVideo")
        first = _encode_frames(self.vae, self.image, self.width, self.height)
        latent = empty_video(self.batch_size, self.length, self.height, self.width)
        if first.shape[2] > latent.shape[2]:  # ComfyUI fails here too
            raise NodeInputError("image", f"LTXVImgToVideo: the {self.image.shape[0]} images are {first.shape[2]} "
                                          f"latent frames, more than the video's {latent.shape[2]} (length "
                                          f"{self.length}); give fewer images or a longer length")
        latent[:, :, :first.shape[2]] = first
        mask = torch.ones(self.batch_size, 1, latent.shape[2], 1, 1)
        mask[:, :, :first.shape[2]] = 1.0 - self.strength
        return self.positive, self.negative, {"samples": latent, "noise_mask": mask}


class LTXVPreprocess(Node):
    """Give pictures the look of video frames: each one is encoded as H.264 at this compression
    (x264's CRF; 0 leaves the pictures untouched, higher is lossier) and decoded back. LTX-Video was
    trained on compressed video, so a clean still image used as a start or guide frame moves more
    when it carries the same artefacts. An odd width or height loses its last column or row (H.264's
    colour planes need even sizes), as in ComfyUI."""
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
        if min(self.image.shape[1:3]) < 2:
            raise NodeInputError("image", f"LTXVPreprocess needs pictures of at least 2x2 pixels, got "
                                          f"{self.image.shape[2]}x{self.image.shape[1]}")
        try:
            return h264_roundtrip(self.image, self.img_compression)
        except VideoFileError as e:
            raise NodeInputError("image", f"LTXVPreprocess could not encode the frames as H.264: {e}") from None


class LTXVAddGuide(Node):
    """Guide a video with a picture or a clip at a frame: the image (or the frames of a video,
    cut to 8n + 1 of them) is stretched to the latent's size, encoded and kept by the noise mask
    with `strength` (1: kept as it is; lower: that much of it is redrawn). Its first latent frame
    (two for a clip) is appended after the video's frames and told the model's positions of the
    frames it guides (a keyframe in the conditioning): it pulls the video there while those
    frames are drawn fresh; LTXVCropGuides removes the appended frames after sampling. A longer
    clip's further latent frames replace the video's own that follow. Negative frame_idx counts
    from the end (-1: the last frame); a clip of more than one frame starts at a multiple of 8.
    Guides add up when chained."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    latent: LATENT
    image: IMAGE
    frame_idx: int = Int(0, min=-9999, max=9999)
    strength: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("LTXVAddGuide",))

    def run(self):
        import torch

        from graphflow.models.ltxv import pixel_positions
        _check_vae(self.vae, "LTXVAddGuide")
        samples, mask = _video_latent(self.latent, "LTXVAddGuide")
        batch, _, total, h, w = samples.shape
        frames = total - _guide_frames(self.positive)  # the video's own, before earlier guides
        if self.image.ndim != 4 or self.image.shape[0] == 0:
            raise NodeInputError("image", f"expected an IMAGE batch [frames, H, W, C], got {tuple(self.image.shape)}")
        images = self.image[:(self.image.shape[0] - 1) // FRAMES_PER_LATENT * FRAMES_PER_LATENT + 1]
        frame_idx = self.frame_idx
        if frame_idx < 0:
            frame_idx = max((frames - 1) * FRAMES_PER_LATENT + 1 + frame_idx, 0)
        if images.shape[0] > 1:  # a clip's latent frames line up with the video's
            frame_idx = frame_idx // FRAMES_PER_LATENT * FRAMES_PER_LATENT
        latent_idx = (frame_idx + FRAMES_PER_LATENT - 1) // FRAMES_PER_LATENT
        guide = _encode_frames(self.vae, images, w * PIXELS_PER_LATENT, h * PIXELS_PER_LATENT, crop=False)
        guide = guide.to(samples).expand(batch, -1, -1, -1, -1)
        length = guide.shape[2]
        if latent_idx + length > frames:
            raise NodeInputError("frame_idx", f"LTXVAddGuide: the guide's {images.shape[0]} frames ({length} latent) "
                                              f"from frame {frame_idx} run past the video's {frames} latent frames "
                                              f"({(frames - 1) * FRAMES_PER_LATENT + 1} frames)")
        kept = torch.full((mask.shape[0], 1, length, *mask.shape[3:]), 1.0 - self.strength)
        appended = min(APPENDED_GUIDE_FRAMES, length)
        samples, mask = samples.clone(), mask.clone()
        mask[:, :, latent_idx:latent_idx + appended] = 1.0  # drawn fresh, pulled by the appended guide
        samples[:, :, latent_idx + appended:latent_idx + length] = guide[:, :, appended:]
        mask[:, :, latent_idx + appended:latent_idx + length] = kept[:, :, appended:]
        positions = pixel_positions(appended, h, w, causal=True, device="cpu")
        positions[:, 0] += frame_idx
        conds = []
        for side in (self.positive, self.negative):
            earlier = next((o["keyframe_idxs"] for _, o in side if o.get("keyframe_idxs") is not None), None)
            conds.append(_with_keyframes(side, positions if earlier is None else torch.cat([earlier, positions])))
        latent = {"samples": torch.cat([samples, guide[:, :, :appended]], dim=2),
                  "noise_mask": torch.cat([mask, kept[:, :, :appended]], dim=2)}
        return conds[0], conds[1], latent


class LTXVCropGuides(Node):
    """After sampling with LTXVAddGuide's appended guide frames: remove them from the latent (and
    its noise mask) and their positions from the conditioning, leaving the video's own frames to
    decode or sample further. A latent without appended guides passes unchanged. As in ComfyUI
    the guides are counted by the frames they were given: of two guides at the same frame, one
    latent frame stays on the end."""
    category = "conditioning/video_models"
    keeps_frames = True  # the guide frames it crops are not counted in the hinted length
    positive: CONDITIONING
    negative: CONDITIONING
    latent: LATENT
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("LTXVCropGuides",))

    def run(self):
        samples, mask = _video_latent(self.latent, "LTXVCropGuides")
        guides = _guide_frames(self.positive)
        if guides == 0:
            return self.positive, self.negative, {"samples": samples, "noise_mask": mask}
        if guides >= samples.shape[2]:
            raise NodeInputError("latent", f"LTXVCropGuides: the conditioning has {guides} appended guide frames but "
                                           f"the latent has only {samples.shape[2]} frames; connect the latent that "
                                           "came from the same LTXVAddGuide (through the sampler)")
        latent = {"samples": samples[:, :, :-guides], "noise_mask": mask[:, :, :-guides]}
        return _with_keyframes(self.positive, None), _with_keyframes(self.negative, None), latent


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


class TrimVideoLatent(Node):
    """Drop the first `trim_amount` latent frames of a video latent (8 video frames each, the
    first one picture): e.g. the frames a continuation repeated from the video before it. A noise
    mask passes unchanged, as in ComfyUI: a sampler stretches it over the frames that are left."""
    category = "latent/video"
    samples: LATENT
    trim_amount: int = Int(0, min=0, max=99999)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("TrimVideoLatent",))

    @classmethod
    def estimate(cls, widgets, inputs):
        """The video less the trimmed frames, at most 8 decoded frames each (LTX-Video's; Wan's 4):
        a lower bound of the frames left."""
        from dataclasses import replace

        size, trim = inputs.get("samples"), widgets.get("trim_amount")
        if size is None or not isinstance(trim, int):
            return Estimate(size)
        return Estimate(replace(size, frames=max(1, size.frames - 8 * trim)))

    def run(self):
        samples = self.samples.get("samples") if isinstance(self.samples, dict) else None
        if samples is None or samples.ndim != 5:
            got = tuple(samples.shape) if samples is not None else type(self.samples).__name__
            raise NodeInputError("samples", f"TrimVideoLatent needs a video LATENT [B, C, frames, h, w], got {got}")
        frames = samples.shape[2]
        if self.trim_amount >= frames:
            raise NodeInputError("trim_amount", f"TrimVideoLatent: trimming {self.trim_amount} of the latent's "
                                                f"{frames} frames would leave none")
        return {**self.samples, "samples": samples[:, :, self.trim_amount:]}
