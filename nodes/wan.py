"""Wan 2.1 / 2.2 nodes (ComfyUI's names and inputs): the empty video latent Wan's text-to-video graphs
use (EmptyHunyuanLatentVideo: Wan's and HunyuanVideo's VAEs share its shape), image to video and
first / last frame to video, Phantom subjects to video; Wan 2.2 TI2V 5B's latent (Wan22ImageToVideoLatent: a start image kept
by a noise mask, which the sampler turns into per-frame timesteps).

The image nodes encode the given frames (the rest of the video mid-grey) with the VAE they are
given, and put the latent and a mask of the given latent frames into the conditioning
(concat_latent_image, concat_mask), which graphflow.sampling.pipeline.wan_concat turns into
the I2V model's 20 extra input channels; a CLIP vision output's penultimate states become the
model's image tokens (clip_vision_output).

Fun Control-Camera: WanCameraEmbedding turns a preset camera move into each pixel's Plücker ray per
frame (CameraCtrl's camera; ComfyUI's nodes_camera_trajectory), which WanCameraImageToVideo puts into
the conditioning (camera_conditions) for the model's camera adapter.

Wan 2.2 Animate: WanAnimateToVideo puts the reference image's latent and the (background or grey)
video in the concat channels, and the pose video's latent and the face video's pixels in the
conditioning (pose_video_latent, face_video_pixels) for the model's pose and face inputs."""

from __future__ import annotations

import math

from graphflow.api import (CLIP_VISION_OUTPUT, CONDITIONING, IMAGE, INT, LATENT, MASK, VAE, Choice, ComfyAlias, Float,
                           Int, Node, NodeInputError, Text, socket_type)

from nodes.conditioning import append_options

MAX_SIZE = 16384
LATENT_CHANNELS = 16  # the Wan 2.1 VAE's
FRAMES_PER_LATENT, PIXELS_PER_LATENT = 4, 8


def latent_frames(length: int) -> int:
    """Latent frames of a video of `length` frames: the first alone, then one per 4."""
    return (length - 1) // FRAMES_PER_LATENT + 1


def empty_video(batch_size: int, length: int, height: int, width: int):
    import torch
    return torch.zeros(batch_size, LATENT_CHANNELS, latent_frames(length), height // PIXELS_PER_LATENT,
                       width // PIXELS_PER_LATENT)


def with_options(conditioning, **options):
    """The conditioning with these options set on every entry (ComfyUI's conditioning_set_values)."""
    return [(cond, {**opts, **options}) for cond, opts in conditioning]


def both_with(positive, negative, **options):
    """(positive, negative), each with these options set (what most video nodes give both sides)."""
    return with_options(positive, **options), with_options(negative, **options)


def _fit(image, width: int, height: int, name: str, method: str = "bilinear"):
    """IMAGE frames [N, H, W, C] scaled to width x height around the centre (ComfyUI's common_upscale
    "bilinear" (or `method`), "center"), RGB only."""
    from graphflow.images import center_crop_to_aspect, resize_nchw

    if getattr(image, "ndim", 0) != 4:
        raise NodeInputError(name, f"expected an IMAGE [frames, H, W, C], got {tuple(getattr(image, 'shape', ()))}")
    pixels = image[..., :3].movedim(-1, 1).float()
    return resize_nchw(center_crop_to_aspect(pixels, width, height), width, height, method).movedim(1, -1)


def _encode(vae, pixels, node: str, channels: int = LATENT_CHANNELS):
    name = "Wan 2.1 VAE, wan_2.1_vae" if channels == LATENT_CHANNELS else "Wan 2.2 VAE, wan2.2_vae"
    if not callable(getattr(vae, "encode", None)):
        raise NodeInputError("vae", f"{node} needs a VAE that encodes (the {name}.safetensors)")
    fmt = getattr(vae, "latent_format", None)
    if fmt is not None and fmt.channels != channels:
        raise NodeInputError("vae", f"{node} needs the {name}.safetensors ({channels} latent channels); this "
                                    f"one has {fmt.channels}")
    latent = vae.encode(pixels)
    if latent.ndim != 5:
        raise NodeInputError("vae", f"{node} needs a video VAE (latents [B, C, frames, h, w]), got "
                                    f"{tuple(latent.shape)}")
    return latent


def _vae_kind(vae, node: str):
    """(latent channels, pixels per latent, latent format) of the Wan 2.1 VAE (16, 8) or the Wan 2.2
    VAE (48, 16): the nodes ComfyUI sizes by the VAE (vae.latent_channels, spacial_compression_encode)."""
    from graphflow.models.latent_formats import WAN21, WAN22

    channels = getattr(getattr(vae, "latent_format", None), "channels", LATENT_CHANNELS)
    if channels not in (WAN21.channels, WAN22.channels):
        raise NodeInputError("vae", f"{node} needs the Wan 2.1 VAE (16 channels) or the Wan 2.2 VAE (48); this "
                                    f"one has {channels}")
    if channels == WAN21.channels:
        return channels, PIXELS_PER_LATENT, WAN21
    return channels, 2 * PIXELS_PER_LATENT, WAN22


def image_to_video_mask(frames: int, height: int, width: int, given: int):
    """WanImageToVideo's concat_mask [1, 1, latent frames, h, w]: 0 on the latent frames the
    `given` start frames fall in ((given - 1) // 4 + 1), 1 elsewhere."""
    import torch

    mask = torch.ones(1, 1, frames, height, width)
    mask[:, :, :latent_frames(given)] = 0.0
    return mask


def first_last_mask(frames: int, height: int, width: int, start: int | None, end: int | None = None):
    """WanFirstLastFrameToVideo's concat_mask [1, 4, latent frames, h, w]: a per-pixel-frame mask
    (0 on the start frames and the 3 after them, as ComfyUI's, even for an empty start image, and
    on the end frames; None: no such image) folded 4 frames per latent frame into 4 channels."""
    import torch

    mask = torch.ones(1, 1, frames * FRAMES_PER_LATENT, height, width)
    if start is not None:
        mask[:, :, :start + 3] = 0.0
    if end:
        mask[:, :, -end:] = 0.0
    return mask.view(1, frames, FRAMES_PER_LATENT, height, width).transpose(1, 2)


class EmptyHunyuanLatentVideo(Node):
    """A blank Wan 2.1 (or HunyuanVideo) latent: 16 channels, one latent frame for the first picture
    and one for each 4 after it ((length - 1) / 4 + 1), 1/8 of the width and height."""
    category = "latent/video"
    width: int = Int(848, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(25, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("EmptyHunyuanLatentVideo",))

    def run(self):
        return {"samples": empty_video(self.batch_size, self.length, self.height, self.width)}


class WanImageToVideo(Node):
    """Start a Wan 2.1 image-to-video sampling: the start image (scaled to width x height around its
    centre; several images: the first frames) is encoded with the rest of the video mid-grey, and
    both conditionings get that latent and a mask of the latent frames it fixes; a CLIP vision
    output (CLIPVisionEncode of the start image, crop none) becomes the model's image tokens.
    Gives an empty latent of `length` frames to sample."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    width: int = Int(832, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(81, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    clip_vision_output: CLIP_VISION_OUTPUT = None
    start_image: IMAGE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("WanImageToVideo",), optional=("clip_vision_output", "start_image"))

    def run(self):
        import torch

        latent = empty_video(self.batch_size, self.length, self.height, self.width)
        positive, negative = self.positive, self.negative
        if self.start_image is not None:
            start = _fit(self.start_image[:self.length], self.width, self.height, "start_image")
            video = torch.full((self.length, self.height, self.width, 3), 0.5)
            video[:start.shape[0]] = start
            encoded = _encode(self.vae, video, "WanImageToVideo")
            mask = image_to_video_mask(latent.shape[2], encoded.shape[-2], encoded.shape[-1], start.shape[0])
            positive, negative = both_with(positive, negative, concat_latent_image=encoded, concat_mask=mask)
        if self.clip_vision_output is not None:
            positive, negative = both_with(positive, negative, clip_vision_output=self.clip_vision_output)
        return positive, negative, {"samples": latent}


class Wan22ImageToVideoLatent(Node):
    """Start a Wan 2.2 TI2V 5B video: an empty 48-channel latent (the Wan 2.2 VAE's: 1/16 of the
    width and height, one latent frame for the first picture and one per 4 after it; one video
    whatever batch_size, as ComfyUI's). With a start image (scaled to width x height around its
    centre; several images: the first frames), batch_size videos: its latent fills the first latent
    frames and a noise mask keeps them (0 there, 1 elsewhere), so the sampler leaves them be and
    the model is told they are clean (timestep 0 on those frames)."""
    category = "conditioning/inpaint"
    vae: VAE
    width: int = Int(1280, min=32, max=MAX_SIZE, step=32, resource="width")
    height: int = Int(704, min=32, max=MAX_SIZE, step=32, resource="height")
    length: int = Int(49, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    start_image: IMAGE = None
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("Wan22ImageToVideoLatent",), optional=("start_image",))

    def run(self):
        import torch

        from graphflow.models.latent_formats import WAN22

        frames, h, w = latent_frames(self.length), self.height // 16, self.width // 16
        latent = torch.zeros(1, WAN22.channels, frames, h, w)
        if self.start_image is None:
            return {"samples": latent}  # batch 1, batch_size unused (ComfyUI's, as CosmosImageToVideoLatent's)
        start = _fit(self.start_image[:self.length], self.width, self.height, "start_image")
        encoded = _encode(self.vae, start, "Wan22ImageToVideoLatent", WAN22.channels)
        if encoded.shape[-2:] != (h, w):
            raise NodeInputError("vae", f"Wan22ImageToVideoLatent needs a VAE with 16x smaller latents (the Wan 2.2 "
                                        f"VAE): got {tuple(encoded.shape[-2:])} for {self.height} x {self.width}")
        given = min(encoded.shape[2], frames)
        latent[:, :, :given] = encoded[:, :, :given].float()
        mask = torch.ones(1, 1, frames, h, w)
        mask[:, :, :given] = 0.0
        # the frames left to sample hold the model space's zero (ComfyUI: process_out(0) there)
        latent = WAN22.process_out(latent) * mask + latent * (1.0 - mask)
        return {"samples": latent.repeat(self.batch_size, 1, 1, 1, 1),
                "noise_mask": mask.repeat(self.batch_size, 1, 1, 1, 1)}


def first_last_frames(node, start_image, end_image, vision_start, vision_end):
    """WanFirstLastFrameToVideo's work (WanFunInpaintToVideo's too): (positive, negative, latent)."""
    import torch

    from graphflow.models.clip_vision import ClipVisionOutput

    name = type(node).__name__
    channels, scale, _ = _vae_kind(node.vae, name)  # the Wan 2.2 VAE too (Fun 5B InP), as ComfyUI's
    latent = torch.zeros(node.batch_size, channels, latent_frames(node.length), node.height // scale,
                         node.width // scale)
    video = torch.full((node.length, node.height, node.width, 3), 0.5)
    start = end = None
    if start_image is not None:
        frames = _fit(start_image[:node.length], node.width, node.height, "start_image")
        video[:frames.shape[0]], start = frames, frames.shape[0]
    if end_image is not None:
        frames = _fit(end_image[-node.length:], node.width, node.height, "end_image")
        if not frames.shape[0]:  # ComfyUI fails here too (its [-0:] is every frame)
            raise NodeInputError("end_image", f"{name} needs at least one end frame, got an empty IMAGE")
        video[-frames.shape[0]:], end = frames, frames.shape[0]
    encoded = _encode(node.vae, video, name, channels)
    mask = first_last_mask(latent.shape[2], latent.shape[3], latent.shape[4], start, end)
    positive = with_options(node.positive, concat_latent_image=encoded, concat_mask=mask)
    negative = with_options(node.negative, concat_latent_image=encoded, concat_mask=mask)
    outputs = [o for o in (vision_start, vision_end) if o is not None]
    if outputs:
        vision = outputs[0]
        if len(outputs) == 2:
            states = torch.cat([o["penultimate_hidden_states"] for o in outputs], dim=-2)
            vision = ClipVisionOutput(**{**{f: None for f in ClipVisionOutput.__dataclass_fields__},
                                         "penultimate_hidden_states": states})
        positive, negative = both_with(positive, negative, clip_vision_output=vision)
    return positive, negative, {"samples": latent}


class WanFirstLastFrameToVideo(Node):
    """Wan 2.1 first-last-frame-to-video (FLF2V): the start images open the video and the end images
    close it (each scaled to width x height around the centre), the rest mid-grey; encoded and
    masked into both conditionings (the latent sized by the VAE: Wan 2.1's 16 channels at 1/8, or
    Wan 2.2's 48 at 1/16). The two CLIP vision outputs' tokens are joined (start, then
    end) as the model's image tokens."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    width: int = Int(832, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(81, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    clip_vision_start_image: CLIP_VISION_OUTPUT = None
    clip_vision_end_image: CLIP_VISION_OUTPUT = None
    start_image: IMAGE = None
    end_image: IMAGE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("WanFirstLastFrameToVideo",),
                       optional=("clip_vision_start_image", "clip_vision_end_image", "start_image", "end_image"))

    def run(self):
        return first_last_frames(self, self.start_image, self.end_image, self.clip_vision_start_image,
                                 self.clip_vision_end_image)


class WanFunInpaintToVideo(Node):
    """Wan 2.1 / 2.2 Fun InP (inpainting between frames): as WanFirstLastFrameToVideo, the start
    images opening the video and the end images closing it (Wan 2.1 or 2.2 VAE), one CLIP vision
    output as the image tokens."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    width: int = Int(832, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(81, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    clip_vision_output: CLIP_VISION_OUTPUT = None
    start_image: IMAGE = None
    end_image: IMAGE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("WanFunInpaintToVideo",), optional=("clip_vision_output", "start_image", "end_image"))

    def run(self):
        return first_last_frames(self, self.start_image, self.end_image, self.clip_vision_output, None)


class WanFunControlToVideo(Node):
    """Wan 2.1 Fun Control: the control video (depth, pose, edges...; scaled to width x height around
    the centre) and the start image are encoded into the model's 32 extra channels (control latent,
    then start-image latent; zero where none is given), no mask; a CLIP vision output becomes the
    image tokens."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    width: int = Int(832, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(81, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    clip_vision_output: CLIP_VISION_OUTPUT = None
    start_image: IMAGE = None
    control_video: IMAGE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("WanFunControlToVideo",), optional=("clip_vision_output", "start_image", "control_video"))

    def run(self):
        from graphflow.models.latent_formats import WAN21

        latent = empty_video(self.batch_size, self.length, self.height, self.width)
        # raw latents that are 0 in model space, where nothing is given (ComfyUI's process_out of zeros)
        concat = WAN21.process_out(empty_video(self.batch_size, self.length, self.height, self.width)).repeat(
            1, 2, 1, 1, 1)
        frames = concat.shape[2]
        if self.start_image is not None:
            start = _encode(self.vae, _fit(self.start_image[:self.length], self.width, self.height, "start_image"),
                            "WanFunControlToVideo")
            concat[:, LATENT_CHANNELS:, :start.shape[2]] = start[:, :, :frames]
        if self.control_video is not None:
            control = _encode(self.vae, _fit(self.control_video[:self.length], self.width, self.height,
                                             "control_video"), "WanFunControlToVideo")
            concat[:, :LATENT_CHANNELS, :control.shape[2]] = control[:, :, :frames]
        positive = with_options(self.positive, concat_latent_image=concat)
        negative = with_options(self.negative, concat_latent_image=concat)
        if self.clip_vision_output is not None:
            positive, negative = both_with(positive, negative, clip_vision_output=self.clip_vision_output)
        return positive, negative, {"samples": latent}


class WanPhantomSubjectToVideo(Node):
    """Start a Phantom-Wan subject-to-video sampling: each subject image (scaled to width x height
    around its centre) is encoded alone with the VAE, one latent frame each, and the model sees them
    after the video's frames (time_dim_concat) without sampling them. positive and negative_text get
    the subjects; negative_img_text gets blank (zero) frames in their place, to guide away from
    text and subjects both (Phantom's CFG with two negatives: DualCFGGuider). Gives an empty latent
    of `length` frames to sample."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    width: int = Int(832, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(81, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    images: IMAGE = None
    outputs = {"positive": CONDITIONING, "negative_text": CONDITIONING, "negative_img_text": CONDITIONING,
               "latent": LATENT}
    comfy = ComfyAlias(("WanPhantomSubjectToVideo",), optional=("images",))

    def run(self):
        import torch

        from graphflow.models.latent_formats import WAN21

        latent = empty_video(self.batch_size, self.length, self.height, self.width)
        positive, negative_text, negative_img_text = self.positive, self.negative, self.negative
        if self.images is not None:
            images = _fit(self.images[:self.length], self.width, self.height, "images")
            subjects = torch.cat([_encode(self.vae, image[None], "WanPhantomSubjectToVideo") for image in images],
                                 dim=2)
            positive = with_options(positive, time_dim_concat=subjects)
            negative_text = with_options(negative_text, time_dim_concat=subjects)
            # blank frames: zeros in model space, as raw latent
            negative_img_text = with_options(negative_img_text,
                                             time_dim_concat=WAN21.process_out(torch.zeros_like(subjects)))
        return positive, negative_text, negative_img_text, {"samples": latent}


class Wan22FunControlToVideo(Node):
    """Wan 2.2 Fun Control (the 14B's 16-channel latents or the 5B's 48, as the VAE gives): the
    control video (scaled to width x height around the centre) is encoded into the model's extra
    channels: control latent, a 4-channel mask (nothing given: all 0 after 1 - mask), then a
    start-image slot (zeros in model space); a reference image's latent goes to the model's
    ref_conv as tokens before the video's."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    width: int = Int(832, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(81, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    ref_image: IMAGE = None
    control_video: IMAGE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("Wan22FunControlToVideo",), optional=("ref_image", "control_video"))

    def run(self):
        import torch

        node = "Wan22FunControlToVideo"
        channels, scale, fmt = _vae_kind(self.vae, node)
        frames, h, w = latent_frames(self.length), self.height // scale, self.width // scale
        latent = torch.zeros(self.batch_size, channels, frames, h, w)
        # raw latents that are 0 in model space (control slot, start-image slot)
        concat = fmt.process_out(torch.zeros_like(latent)).repeat(1, 2, 1, 1, 1)
        mask = torch.ones(1, 1, frames * FRAMES_PER_LATENT, h, w)  # no start image: every frame to make
        reference = None
        if self.ref_image is not None:
            reference = _encode(self.vae, _fit(self.ref_image[:1], self.width, self.height, "ref_image"), node,
                                channels)
        if self.control_video is not None:
            control = _encode(self.vae, _fit(self.control_video[:self.length], self.width, self.height,
                                             "control_video"), node, channels)
            concat[:, :channels, :control.shape[2]] = control[:, :, :frames]
        mask = mask.view(1, frames, FRAMES_PER_LATENT, h, w).transpose(1, 2)
        values = {"concat_latent_image": concat, "concat_mask": mask, "concat_mask_index": channels}
        positive, negative = with_options(self.positive, **values), with_options(self.negative, **values)
        if reference is not None:
            positive = append_options(positive, reference_latents=[reference])
            negative = append_options(negative, reference_latents=[reference])
        return positive, negative, {"samples": latent}


TRACK_POINTS = 121  # ATI's tracks: 121 points each (24 fps), resampled to the video's frames


def parse_tracks(text: str) -> list:
    """WanTrackToVideo's tracks: JSON (single quotes allowed) of one track (a list of {"x", "y"}), a
    list of tracks, or a list of such lists (one per batch item); unreadable text: no tracks."""
    import json

    try:
        data = json.loads(text.replace("'", '"'))
    except json.JSONDecodeError:
        return []
    data = list(data) if isinstance(data, list) else []
    if data and isinstance(data[0], dict) and "x" in data[0]:
        data = [data]
    return data


def track_tensor(tracks: list, width: int, height: int, frames: int):
    """ATI's track tensor [frames + 1, N, 4] of N tracks of pixel points: (time in [-1, 1], x and y
    around the centre in short-edge halves, visibility +-1), each track padded with invisible points
    (or cut) to 121 points, the first point kept and the other 120 resampled to `frames`."""
    import math

    import torch

    points = torch.zeros(TRACK_POINTS, len(tracks), 3)
    for n, track in enumerate(tracks):
        for t, p in enumerate(track[:TRACK_POINTS]):
            points[t, n] = torch.tensor([float(p["x"]), float(p["y"]), 1.0])
    xy = (points[..., :2] - torch.tensor([width, height]) / 2) / min(width, height) * 2
    visible = points[..., 2:] * 2 - 1
    time = torch.linspace(-1, 1, TRACK_POINTS).view(-1, 1, 1).expand_as(visible)
    out = torch.cat([time, xy, visible], dim=-1)
    g = math.gcd(120, frames)
    rest = torch.repeat_interleave(out[1:], frames // g, dim=0)[1::120 // g]
    return torch.cat([out[:1], rest], dim=0)


def patch_motion(tracks, latent, temperature: float, topk: int):
    """ATI's motion patch of one video: tracks [T, N, 4] (pixel frames), latent [C, F, h, w] in model
    space -> (mask [F, h, w], features [C, F, h, w]). Each later latent frame's pixels take the
    first frame's features where the tracks are (each track's visible points averaged over the 4
    pixel frames of the latent frame), weighted exp(-temperature d^2) over the topk nearest tracks,
    the latent elsewhere; the mask is those weights summed (1 on the first frame)."""
    import torch
    import torch.nn.functional as F

    _, frames, h, w = latent.shape
    short = min(h, w)
    xy, visible = tracks[..., 1:3], tracks[..., 3:].clamp(0, 1)
    start = (xy[:1] / torch.tensor([w / short, h / short])).clamp(-1, 1)  # grid_sample's [-1, 1]
    xs, ys = torch.linspace(-w / short, w / short, w), torch.linspace(-h / short, h / short, h)
    grid = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)], dim=-1)  # [h, w, (x, y)]
    seen = visible[1:].reshape(frames - 1, 4, -1, 1).sum(1)  # [F - 1, N, 1]
    where = (xy[1:] * visible[1:]).reshape(frames - 1, 4, -1, 2).sum(1) / (seen + 1e-5)
    dist = (where[:, None, None] - grid[None, :, :, None]).pow(2).sum(-1)  # [F - 1, h, w, N]
    weight = torch.exp(-dist * temperature) * seen.clamp(0, 1).view(frames - 1, 1, 1, -1)
    weight, index = torch.topk(weight, k=min(topk, weight.shape[-1]), dim=-1)
    point = F.grid_sample(latent[:, :1].movedim(1, 0), start[None].to(latent.dtype), mode="bilinear",
                          padding_mode="zeros", align_corners=False)[0, :, 0].T  # [N, C]
    moved = (point[index] * weight[..., None]).sum(-2).permute(3, 0, 1, 2)  # [C, F - 1, h, w]
    total = weight.sum(-1)
    features = torch.cat([latent[:, :1], moved + latent[:, 1:] * (1 - total.clamp(0, 1))], dim=1)
    return torch.cat([torch.ones_like(total[:1]), total]), features


class WanTrackToVideo(Node):
    """Wan 2.1 ATI (trajectory control, an I2V model): the start image (the rest of the video
    mid-grey) is encoded, and each latent frame after the first takes the first frame's features
    along the given tracks (JSON lists of {"x", "y"} pixel points, 121 per track at 24 fps;
    temperature: how sharply a point's features fall off with distance; topk: tracks mixed per
    pixel), as the I2V concat latent, its mask the tracks' weights. Several start images (up to
    batch_size) or track sets (a list of track lists) are spread evenly over the batch, as ComfyUI's.
    No tracks: WanImageToVideo."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    tracks: str = Text("[]", multiline=True)
    width: int = Int(832, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(81, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    temperature: float = Float(220.0, min=1.0, max=1000.0, step=0.1)
    topk: int = Int(2, min=1, max=10)
    start_image: IMAGE
    clip_vision_output: CLIP_VISION_OUTPUT = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("WanTrackToVideo",), optional=("clip_vision_output",))

    def run(self):
        import torch

        from graphflow.models.latent_formats import WAN21
        from graphflow.sampling.guidance import batch_picks

        node = "WanTrackToVideo"
        data = parse_tracks(self.tracks)
        if not data:
            return WanImageToVideo.run(self)  # its inputs are all ours, by the same names
        if (self.length - 1) % FRAMES_PER_LATENT:
            raise NodeInputError("length", f"{node} needs 4n + 1 frames (whole latent frames), got {self.length}")
        if isinstance(data[0][0], dict):
            data = [data]  # one list of tracks for every batch item
        latent = empty_video(self.batch_size, self.length, self.height, self.width)
        positive, negative = self.positive, self.negative
        start = _fit(self.start_image[:self.batch_size], self.width, self.height, "start_image")
        mask, features = [], []
        # start images and track sets spread over the batch (ComfyUI's resize_to_batch_size)
        for i, t in zip(batch_picks(start.shape[0], self.batch_size), batch_picks(len(data), self.batch_size)):
            video = torch.full((self.length, self.height, self.width, 3), 0.5)
            video[0] = start[i]
            encoded = WAN21.process_in(_encode(self.vae, video, node).float())[0]  # patching is non-linear
            tracks = track_tensor(data[t], self.width, self.height, self.length - 1)
            m, f = patch_motion(tracks, encoded, self.temperature, self.topk)
            mask.append(m[None].expand(FRAMES_PER_LATENT, -1, -1, -1))
            features.append(f)
        values = {"concat_mask": 1.0 - torch.stack(mask), "concat_latent_image": WAN21.process_out(torch.stack(features))}
        positive, negative = both_with(positive, negative, **values)
        if self.clip_vision_output is not None:
            positive, negative = both_with(positive, negative, clip_vision_output=self.clip_vision_output)
        return positive, negative, {"samples": latent}


class WanVaceToVideo(Node):
    """Control a Wan 2.1 VACE model: the control video (scaled to width x height around the centre,
    padded with grey to `length` frames) is encoded twice, its parts outside the control masks
    (inactive) and inside (reactive), beside the masks folded 8x8 into 64 channels per latent frame;
    a reference image is encoded as one more latent frame before the video (trim_latent says how
    many frames to drop after sampling: TrimVideoLatent). strength scales this input's hints.
    Several nodes in a row add several inputs."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    width: int = Int(832, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(81, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    strength: float = Float(1.0, min=0.0, max=1000.0, step=0.01)
    control_video: IMAGE = None
    control_masks: MASK = None
    reference_image: IMAGE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT, "trim_latent": INT}
    comfy = ComfyAlias(("WanVaceToVideo",), optional=("control_video", "control_masks", "reference_image"))

    def run(self):
        import torch
        import torch.nn.functional as F

        from graphflow.images import center_crop_to_aspect, resize_nchw
        from graphflow.models.latent_formats import WAN21

        node, stride = "WanVaceToVideo", PIXELS_PER_LATENT
        frames = latent_frames(self.length)
        if self.control_video is not None:
            video = _fit(self.control_video[:self.length], self.width, self.height, "control_video")
            video = F.pad(video, (0, 0, 0, 0, 0, 0, 0, self.length - video.shape[0]), value=0.5)
        else:
            video = torch.full((self.length, self.height, self.width, 3), 0.5)
        reference = None
        if self.reference_image is not None:
            reference = _encode(self.vae, _fit(self.reference_image[:1], self.width, self.height, "reference_image"),
                                node)
            reference = torch.cat([reference, WAN21.process_out(torch.zeros_like(reference))], dim=1)
        if self.control_masks is None:
            mask = torch.ones(self.length, self.height, self.width, 1)
        else:
            mask = self.control_masks.float()
            if mask.ndim == 3:
                mask = mask[:, None]
            elif mask.ndim != 4:
                raise NodeInputError("control_masks", f"expected a MASK [frames, H, W], got {tuple(mask.shape)}")
            mask = mask[:self.length]
            mask = resize_nchw(center_crop_to_aspect(mask, self.width, self.height), self.width, self.height,
                               "bilinear").movedim(1, -1)
            mask = F.pad(mask, (0, 0, 0, 0, 0, 0, 0, self.length - mask.shape[0]), value=1.0)
        video = video - 0.5
        inactive = _encode(self.vae, video * (1 - mask) + 0.5, node)
        reactive = _encode(self.vae, video * mask + 0.5, node)
        control = torch.cat([inactive, reactive], dim=1)
        if reference is not None:
            control = torch.cat([reference, control], dim=2)
        h, w = self.height // stride, self.width // stride
        # each latent pixel's 8x8 mask block as 64 channels, frames resampled to the latent's
        mask = mask.reshape(self.length, h, stride, w, stride).permute(2, 4, 0, 1, 3).reshape(stride * stride,
                                                                                             self.length, h, w)
        mask = F.interpolate(mask[None], size=(frames, h, w), mode="nearest-exact")[0]
        trim = 0
        if reference is not None:
            mask = torch.cat([torch.zeros_like(mask[:, :reference.shape[2]]), mask], dim=1)
            frames += reference.shape[2]
            trim = reference.shape[2]
        values = {"vace_frames": [control], "vace_mask": [mask[None]], "vace_strength": [self.strength]}
        latent = torch.zeros(self.batch_size, LATENT_CHANNELS, frames, h, w)
        return (append_options(self.positive, **values), append_options(self.negative, **values),
                {"samples": latent}, trim)


# -- Fun Control-Camera (WanCameraEmbedding, WanCameraImageToVideo) --------------------------------

WAN_CAMERA_EMBEDDING = socket_type("WAN_CAMERA_EMBEDDING", "#8ecae6",
                                   "A camera path as Plücker rays per pixel [1, 24, latent frames, H, W] (Wan Fun "
                                   "Control-Camera)")
# WanCameraEmbedding's presets: (rotation about x, y, z; translation along x, y, z), in units of
# CAMERA_ANGLE and CAMERA_SHIFT reached at the video's end at speed 1 (camera to world, y down, z ahead)
CAMERA_POSES = {
    "Static": ((0, 0, 0), (0, 0, 0)),
    "Pan Up": ((0, 0, 0), (0, -1, 0)),
    "Pan Down": ((0, 0, 0), (0, 1, 0)),
    "Pan Left": ((0, 0, 0), (-1, 0, 0)),
    "Pan Right": ((0, 0, 0), (1, 0, 0)),
    "Zoom In": ((0, 0, 0), (0, 0, 2)),
    "Zoom Out": ((0, 0, 0), (0, 0, -2)),
    "Anti Clockwise (ACW)": ((0, 0, -1), (0, 0, 0)),
    "ClockWise (CW)": ((0, 0, 1), (0, 0, 0)),
}
CAMERA_ANGLE, CAMERA_SHIFT = math.pi / 3, 1.5
POSE_WIDTH, POSE_HEIGHT = 1280, 720  # the frame CameraCtrl's trajectories are given in: focal lengths fit it


def _rotation(angles):
    """[N, 3] angles about x, y, z -> [N, 3, 3] Rz @ Ry @ Rx."""
    import torch

    c, s = angles.cos().unbind(-1), angles.sin().unbind(-1)
    one, zero = torch.ones_like(angles[:, 0]), torch.zeros_like(angles[:, 0])
    rx = torch.stack([one, zero, zero, zero, c[0], -s[0], zero, s[0], c[0]], -1).view(-1, 3, 3)
    ry = torch.stack([c[1], zero, s[1], zero, one, zero, -s[1], zero, c[1]], -1).view(-1, 3, 3)
    rz = torch.stack([c[2], -s[2], zero, s[2], c[2], zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ (ry @ rx)


def camera_poses(pose: str, speed: float, frames: int):
    """[frames, 4, 4] float64 camera-to-world matrices of a preset: frame i moved i / frames x speed
    units of its rotation and translation. The first is the identity, so these are already relative
    to it (CameraCtrl's relative poses)."""
    import torch

    angles, shift = (torch.tensor(v, dtype=torch.float64) for v in CAMERA_POSES[pose])
    progress = torch.arange(frames, dtype=torch.float64)[:, None] / frames * speed
    out = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
    out[:, :3, :3] = _rotation(progress * CAMERA_ANGLE * angles)
    out[:, :3, 3] = progress * CAMERA_SHIFT * shift
    return out


def camera_intrinsics(width: int, height: int, fx: float, fy: float, cx: float, cy: float):
    """(fx, fy, cx, cy) in pixels from fractions of the frame. The focal lengths are the pose frame's
    (1280 x 720) fitted to this one by its height when the pose frame is wider, else by its width."""
    ratio = POSE_WIDTH / POSE_HEIGHT
    if ratio > width / height:
        fx = height * ratio * fx / width
    else:
        fy = width / ratio * fy / height
    return fx * width, fy * height, cx * width, cy * height


def plucker_rays(poses, intrinsics, height: int, width: int):
    """[frames, H, W, 6] float32: each pixel centre's ray through the camera of each pose, as its
    moment (origin x direction) then its unit direction, in the first camera's frame."""
    import torch

    poses = poses.float()
    fx, fy, cx, cy = torch.tensor(intrinsics, dtype=torch.float32).unbind()
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32) + 0.5,
                          torch.arange(width, dtype=torch.float32) + 0.5, indexing="ij")
    d = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u)], dim=-1).reshape(-1, 3)
    d = d / d.norm(dim=-1, keepdim=True)
    directions = d @ poses[:, :3, :3].transpose(1, 2)  # [frames, HW, 3]
    origins = poses[:, None, :3, 3].expand_as(directions)
    rays = torch.cat([torch.linalg.cross(origins, directions, dim=-1), directions], dim=-1)
    return rays.reshape(-1, height, width, 6)


def camera_embedding(pose: str, width: int, height: int, length: int, speed: float, fx: float, fy: float, cx: float,
                     cy: float):
    """WanCameraEmbedding's [1, 24, latent frames, H, W]: the rays of `length` (4n + 1) frames with the
    first frame counted 4 times (the VAE's first latent frame is one picture, the others 4), 4 frames
    per latent frame, channel 4 c + k the ray's component c in the group's frame k."""
    import torch

    rays = plucker_rays(camera_poses(pose, speed, length), camera_intrinsics(width, height, fx, fy, cx, cy), height,
                        width).permute(0, 3, 1, 2)  # [frames, 6, H, W]
    rays = torch.cat([rays[:1].expand(FRAMES_PER_LATENT - 1, -1, -1, -1), rays])
    groups = rays.shape[0] // FRAMES_PER_LATENT
    rays = rays.reshape(groups, FRAMES_PER_LATENT, 6, height, width).transpose(1, 2)
    return rays.reshape(groups, 6 * FRAMES_PER_LATENT, height, width).transpose(0, 1)[None].contiguous()


class WanCameraEmbedding(Node):
    """A camera path for Wan Fun Control-Camera (WanCameraImageToVideo's camera_conditions): a preset
    move, evenly over the video (at speed 1 pans move the camera 1.5 units sideways or up / down,
    zooms 3 along the view, rotations turn it 60 degrees about the view, by the end; speed scales
    that), as each pixel's Plücker ray (moment and direction) in every frame, for a video of width x
    height and `length` (4n + 1) frames. fx, fy: focal lengths as fractions of a 1280 x 720 frame
    fitted to this one (0 is refused: ComfyUI's rays would be NaN); cx, cy: the principal point as
    fractions of the width and height."""
    category = "camera"
    camera_pose: str = Choice(tuple(CAMERA_POSES), "Static")
    width: int = Int(832, min=16, max=MAX_SIZE, step=16)
    height: int = Int(480, min=16, max=MAX_SIZE, step=16)
    length: int = Int(81, min=1, max=MAX_SIZE, step=4)
    speed: float = Float(1.0, min=0.0, max=10.0, step=0.1)
    fx: float = Float(0.5, min=0.0, max=1.0, step=0.000000001)
    fy: float = Float(0.5, min=0.0, max=1.0, step=0.000000001)
    cx: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    cy: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"camera_embedding": WAN_CAMERA_EMBEDDING, "width": INT, "height": INT, "length": INT}
    comfy = ComfyAlias(("WanCameraEmbedding",), optional=("speed", "fx", "fy", "cx", "cy"))

    def run(self):
        node = "WanCameraEmbedding"
        if (self.length - 1) % FRAMES_PER_LATENT:
            raise NodeInputError("length", f"{node} needs 4n + 1 frames (whole latent frames), got {self.length}")
        for name in ("fx", "fy"):
            if getattr(self, name) <= 0:
                raise NodeInputError(name, f"{node} needs a focal length above 0, got {getattr(self, name)}")
        rays = camera_embedding(self.camera_pose, self.width, self.height, self.length, self.speed, self.fx, self.fy,
                                self.cx, self.cy)
        return rays, self.width, self.height, self.length


class WanCameraImageToVideo(Node):
    """Start a Wan Fun Control-Camera sampling: the start image (scaled to width x height around its
    centre) is encoded as the model's 16 extra channels (the latent frames after it zero in model
    space; no start image: zeros) with a mask of the frames it fixes, the camera path
    (WanCameraEmbedding, of the same size and length) goes to the model's camera adapter, and a
    CLIP vision output becomes its image tokens. Gives an empty latent of `length` frames to sample."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    width: int = Int(832, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(81, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    clip_vision_output: CLIP_VISION_OUTPUT = None
    start_image: IMAGE = None
    camera_conditions: WAN_CAMERA_EMBEDDING = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("WanCameraImageToVideo",), optional=("clip_vision_output", "start_image", "camera_conditions"))

    def run(self):
        from graphflow.models.latent_formats import WAN21

        node = "WanCameraImageToVideo"
        latent = empty_video(self.batch_size, self.length, self.height, self.width)
        positive, negative = self.positive, self.negative
        if self.start_image is not None:
            concat = WAN21.process_out(empty_video(self.batch_size, self.length, self.height, self.width))
            start = _fit(self.start_image[:self.length], self.width, self.height, "start_image")
            # the first-last-frame mask of the start frames: read by the 36-channel Wan 2.2 Fun Camera,
            # ignored by the 2.1 Control-Camera (32 channels: no mask channels)
            mask = first_last_mask(latent.shape[2], latent.shape[3], latent.shape[4], start.shape[0], 0)
            start = _encode(self.vae, start, node)
            concat[:, :, :start.shape[2]] = start[:, :, :concat.shape[2]]
            positive, negative = both_with(positive, negative, concat_latent_image=concat, concat_mask=mask)
        if self.camera_conditions is not None:
            rays = self.camera_conditions
            frames = latent.shape[2]
            if getattr(rays, "ndim", 0) != 5 or tuple(rays.shape[2:]) != (frames, self.height, self.width):
                raise NodeInputError("camera_conditions",
                                     f"{node} needs WanCameraEmbedding's rays for {frames} latent frames of "
                                     f"{self.width} x {self.height} ([1, 24, {frames}, {self.height}, {self.width}]), "
                                     f"got {tuple(getattr(rays, 'shape', ()))}")
            positive, negative = both_with(positive, negative, camera_conditions=rays)
        if self.clip_vision_output is not None:
            positive, negative = both_with(positive, negative, clip_vision_output=self.clip_vision_output)
        return positive, negative, {"samples": latent}


ANIMATE_FACE_SIZE = 512  # the Animate motion encoder's input (ComfyUI's WanAnimateToVideo resizes faces to it)


def _from_offset(video, offset: int):
    """A driving video from frame `offset` on (a later chunk of a long animation), None when it has ended."""
    return None if video is None or video.shape[0] <= offset else video[offset:]


class WanAnimateToVideo(Node):
    """Start a Wan 2.2 Animate sampling (the reference character moved by a pose video, its face by a
    face video). The reference image (black without one) is encoded as the first latent frame of
    the model's image channels, fixed by the mask; the pose video (scaled to width x height, its last
    frame held to `length`) is encoded for the model's pose input; the face video (scaled to 512x512,
    in [-1, 1]) goes to the face adapter (the negative gets a blank face, all -1). The rest of the
    image channels: the background video where given (replace mode: character_mask marks what to
    generate, 1, against the background kept, 0), else mid-grey; continue_motion (the last
    continue_motion_max_frames frames of the previous chunk) opens the video and is kept. The driving
    videos are read from video_frame_offset on. Gives an empty latent one reference frame longer than
    the video, the latent frames (trim_latent) and pixel frames (trim_image) to cut from the result,
    and the next chunk's video_frame_offset."""
    category = "conditioning/video_models"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    width: int = Int(832, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(77, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    continue_motion_max_frames: int = Int(5, min=1, max=MAX_SIZE, step=4)
    video_frame_offset: int = Int(0, min=0, max=MAX_SIZE * 16)
    clip_vision_output: CLIP_VISION_OUTPUT = None
    reference_image: IMAGE = None
    face_video: IMAGE = None
    pose_video: IMAGE = None
    background_video: IMAGE = None
    character_mask: MASK = None
    continue_motion: IMAGE = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT, "trim_latent": INT,
               "trim_image": INT, "video_frame_offset": INT}
    comfy = ComfyAlias(("WanAnimateToVideo",), optional=("clip_vision_output", "reference_image", "face_video",
                                                          "pose_video", "background_video", "character_mask",
                                                          "continue_motion"))

    def run(self):
        import torch

        node, width, height, length, offset = "WanAnimateToVideo", self.width, self.height, self.length, \
            self.video_frame_offset
        frames = latent_frames(length)
        reference = self.reference_image if self.reference_image is not None else torch.zeros(1, height, width, 3)
        reference = _encode(self.vae, _fit(reference[:length], width, height, "reference_image", "area"), node)
        trim_latent = reference.shape[2]
        positive, negative = self.positive, self.negative

        video = torch.full((length, height, width, 3), 0.5)
        motion_latents = 0  # the latent frames continue_motion fills
        if self.continue_motion is not None:
            motion = self.continue_motion[-self.continue_motion_max_frames:]
            offset = max(0, offset - motion.shape[0])  # the kept frames are this chunk's first
            motion = _fit(motion[-length:], width, height, "continue_motion", "area")
            video[:motion.shape[0]] = motion
            motion_latents = latent_frames(motion.shape[0])
        kept_images = max(0, motion_latents * FRAMES_PER_LATENT - 3)

        if self.clip_vision_output is not None:
            positive, negative = both_with(positive, negative, clip_vision_output=self.clip_vision_output)
        pose = _from_offset(self.pose_video, offset)
        if pose is not None:
            pose = _fit(pose[:length], width, height, "pose_video", "area")
            pose = torch.cat([pose, pose[-1:].expand(length - pose.shape[0], -1, -1, -1)])  # the last pose held
            pose = _encode(self.vae, pose, node)
            positive, negative = both_with(positive, negative, pose_video_latent=pose)
        face = _from_offset(self.face_video, offset)
        if face is not None:
            face = _fit(face[:length], ANIMATE_FACE_SIZE, ANIMATE_FACE_SIZE, "face_video", "area") * 2.0 - 1.0
            face = face.movedim(-1, 0)[None]  # [1, 3, frames, 512, 512]
            positive = with_options(positive, face_video_pixels=face)
            negative = with_options(negative, face_video_pixels=torch.full_like(face, -1.0))
        background = _from_offset(self.background_video, offset)
        if background is not None:
            background = _fit(background[:length], width, height, "background_video", "area")
            if background.shape[0] > kept_images:
                video[kept_images:background.shape[0]] = background[kept_images:]

        h, w = reference.shape[-2:]
        generate = torch.ones(1, 1, frames * FRAMES_PER_LATENT, h, w)  # per pixel frame: 1 to generate
        generate[:, :, :motion_latents * FRAMES_PER_LATENT] = 0.0
        character = self._character_mask(length, offset, w, h)
        if character is not None and character.shape[2] > kept_images:
            generate[:, :, kept_images:character.shape[2]] = character[:, :, kept_images:]
        concat = torch.cat([reference, _encode(self.vae, video, node)], dim=2)
        generate = generate.view(1, frames, FRAMES_PER_LATENT, h, w).transpose(1, 2)  # 4 pixel frames a latent's
        mask = torch.cat([torch.zeros(1, FRAMES_PER_LATENT, trim_latent, h, w), generate], dim=2)
        positive, negative = both_with(positive, negative, concat_latent_image=concat, concat_mask=mask)
        latent = torch.zeros(self.batch_size, LATENT_CHANNELS, frames + trim_latent, height // PIXELS_PER_LATENT,
                             width // PIXELS_PER_LATENT)
        return positive, negative, {"samples": latent}, trim_latent, kept_images, offset + length

    def _character_mask(self, length: int, offset: int, w: int, h: int):
        """character_mask [frames, H, W] from the offset (one mask: every frame) at latent size (nearest),
        [1, 1, frames, h, w]; None without one, or when it has ended."""
        mask = self.character_mask
        if mask is None:
            return None
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3:
            raise NodeInputError("character_mask", f"expected a MASK [frames, H, W], got {tuple(mask.shape)}")
        if mask.shape[0] == 1:
            mask = mask.expand(length, -1, -1)
        elif mask.shape[0] > offset:
            mask = mask[offset:]
        else:
            return None
        return _fit(mask[:length, ..., None], w, h, "character_mask", "nearest-exact").movedim(-1, 0)[None]
