"""ComfyUI-VideoHelperSuite's nodes (Kosinkadink's pack, "VHS"), under the pack's class names,
inputs, defaults and outputs, so the many community video workflows that load a video with
VHS_LoadVideo and end in VHS_VideoCombine run unchanged: Video Combine (GIF and WebP through
Pillow, the pack's FFmpeg formats that PyAV can write through graphflow.video), Load Video and
Load Video FFmpeg (upload and path), Load Images and Load Audio, the Video Info nodes, the
image / latent / mask batch helpers, batched VAE, Select Filename, Prune Outputs and Unbatch.
Not built in: the Meta Batch Manager (meta_batch inputs are refused), Select Latest (an editor
node) and the legacy VHS_AUDIO converters. Path inputs are kept inside graphflow's folders.

The pack's editor saves every VHS node's widgets as a dict by name (Video Combine's format
widgets and its "videopreview" entry included): graphflow.comfy_format reads that shape, and the
entries that are no inputs of ours (the preview, the upload button) are left out."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import math
from pathlib import Path

from graphflow.api import (ANY, AUDIO, FLOAT, IMAGE, INT, LATENT, MASK, STRING, VAE, Bool, Choice, ComfyAlias, Float,
                           Int, Node, NodeInputError, Text, folders, repeated, safe_join, show, socket_type, warn,
                           subfolder_name, workflow_texts)
from graphflow.comfy_pack_nodes import VHS_LIST_WIDGETS, vhs_widgets
from graphflow.folders import _stays_inside
from nodes.image import _next_counter, _png_metadata, _resize_image, _write_new, check_folder_pictures, folder_files
from nodes.latent import _upscale
from nodes.video import file_sha256
from nodes.vae import _require_vae

COMFY_PACK = "ComfyUI-VideoHelperSuite"  # the custom node pack this module's ComfyUI classes come from

CATEGORY = "Video Helper Suite 🎥🅥🅗🅢"
BIGMAX = 2 ** 53 - 1  # the pack's bounds for counts and indexes
DIMMAX = 8192  # and for sizes

VHS_FILENAMES = socket_type("VHS_FILENAMES", "#8d6e63", "VideoHelperSuite's saved files: (save_output, [paths])")
VHS_VIDEOINFO = socket_type("VHS_VIDEOINFO", "#8d6e63",
                            "VideoHelperSuite's facts of a loaded video (source_*, loaded_*)")
VHS_BATCH_MANAGER = socket_type("VHS_BatchManager", "#8d6e63", "VideoHelperSuite's Meta Batch Manager (not built in)")

# -- Video Combine ---------------------------------------------------------------------------

# The pack's FFmpeg formats (its video_formats/*.json) that PyAV writes, by the pack's name:
# container, extension, video and sound encoders, the format's widgets (in the pack's order) and
# its fixed settings. webm's sound: the pack names Vorbis, which our FFmpeg lacks: Opus (the
# pack's own fallback codec) instead.
VIDEO_FORMATS = {
    "h264-mp4": {"container": "mp4", "ext": "mp4", "codec": "libx264", "audio": "aac", "bt709": True,
                 "pix_fmts": ("yuv420p", "yuv420p10le"),
                 "widgets": ("pix_fmt", "crf", "save_metadata", "trim_to_audio")},
    "h265-mp4": {"container": "mp4", "ext": "mp4", "codec": "libx265", "audio": "aac", "bt709": True, "tag": "hvc1",
                 "options": {"preset": "medium", "x265-params": "log-level=quiet"},
                 "pix_fmts": ("yuv420p10le", "yuv420p"), "widgets": ("pix_fmt", "crf", "save_metadata")},
    "webm": {"container": "webm", "ext": "webm", "codec": "libvpx-vp9", "audio": "libopus", "options": {"b": "0"},
             "pix_fmts": ("yuv420p",), "widgets": ("crf", "save_metadata")},
    "av1-webm": {"container": "webm", "ext": "webm", "codec": "libsvtav1", "audio": "libopus",
                 "pix_fmts": ("yuv420p10le", "yuv420p"),
                 "widgets": ("pix_fmt", "crf", "input_color_depth", "save_metadata")},
    "ffv1-mkv": {"container": "matroska", "ext": "mkv", "codec": "ffv1", "audio": "flac", "depth": 16,
                 "pix_fmts": ("rgba64le", "bgra", "yuv420p", "yuv422p", "yuv444p", "yuva420p", "yuva422p", "yuva444p",
                              "yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv422p12le",
                              "yuv444p12le", "yuv420p14le", "yuv422p14le", "yuv444p14le", "yuv420p16le",
                              "yuv422p16le", "yuv444p16le", "gray", "gray10le", "gray12le", "gray16le"),
                 "widgets": ("level", "coder", "context", "gop_size", "slices", "slicecrc", "pix_fmt", "save_metadata",
                             "trim_to_audio")},
    "ProRes": {"container": "mov", "ext": "mov", "codec": "prores_ks", "audio": "pcm_s16le", "bt709": True,
               "pix_fmts": (), "widgets": ("profile",)},
}
PIX_FMTS = tuple(dict.fromkeys(p for f in VIDEO_FORMATS.values() for p in f["pix_fmts"]))
PRORES_PROFILES = ("lt", "standard", "hq", "4444", "4444xq")


def _saved_widgets(class_type: str):
    """The ComfyAlias.widgets of a pack class whose older saves are lists (VHS_LIST_WIDGETS)."""
    return functools.partial(vhs_widgets, names=VHS_LIST_WIDGETS[class_type])


def _encoder_exists(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "w")
        return True
    except (av.FFmpegError, ValueError):
        return False


def combine_formats() -> list[str]:
    """VHS_VideoCombine's formats: the Pillow ones, then the pack's FFmpeg ones whose encoder our
    FFmpeg has (H.265 and AV1 may be missing)."""
    return ["image/gif", "image/webp"] + [f"video/{name}" for name, f in VIDEO_FORMATS.items()
                                          if _encoder_exists(f["codec"])]


def _pingpong(frames: list) -> list:
    """The frames, then back again without repeating either end (the pack's pingpong)."""
    return frames + frames[-2:0:-1]


def _saved(folder: Path, stem: str, counter: int, suffix: str, write) -> tuple[Path, int]:
    """Write a file named as the pack names it (`stem_NNNNN<suffix>`, the first free NNNNN from
    counter on) with `write(path)`; (its path, NNNNN)."""
    name, number = _write_new(write, folder, stem, counter, suffix)
    return folder / name, number


def _refuse_meta_batch(node, what: str) -> None:
    if node.meta_batch is not None:
        raise NodeInputError("meta_batch", f"the pack's Meta Batch Manager is not supported by graphflow; "
                                           f"disconnect it to {what} at once")


class VHSVideoCombine(Node):
    """Save images (or a LATENT decoded with the optional vae) as an animation or a video, frame_rate
    frames a second, as VideoHelperSuite's Video Combine: image/gif and image/webp through Pillow
    (loop_count 0 loops forever), or one of the pack's FFmpeg formats that graphflow writes (H.264 /
    H.265 MP4, VP9 / AV1 WebM, FFV1 MKV, ProRes MOV; its NVENC, gifski and PNG-sequence formats are
    refused). A video is played loop_count extra times; pingpong plays the frames forward then back.
    Odd sizes are padded by repeating the edge pixels (the pack's dim_alignment 2). Beside it the first
    frame is saved as a PNG holding the workflow (the pack's VHS_MetadataImage setting, kept in the
    workflow, turns that off); with save_metadata the video's comment tag holds the prompt and workflow.
    With audio a second file `..-audio.<ext>` holds the sound too, padded with silence or cut to the
    pictures' length (trim_to_audio: the pictures are cut to a shorter sound). save_output False
    writes to the temp folder. The format's own widgets (pix_fmt, crf, save_metadata, trim_to_audio,
    input_color_depth, lossless, FFV1's and ProRes' options) are read by name and only the chosen
    format's count; webm's sound is Opus (the pack asks for Vorbis, which graphflow's FFmpeg lacks).
    H.265 is refused for frames under 64 pixels (graphflow's x265 build was seen to crash on them).
    Frames with alpha keep it where the pixel format has one (FFV1's rgba64le, bgra, yuva...).
    meta_batch (the pack's Meta Batch Manager) is not supported. Output: (save_output, [paths])."""
    display_name = "Video Combine 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    output_node = True
    images: ANY  # IMAGE, or a LATENT with the vae connected (the pack's image-or-latent input)
    frame_rate: float = Float(8.0, min=1.0, max=1000.0, step=1.0)
    loop_count: int = Int(0, min=0, max=100)
    filename_prefix: str = Text("AnimateDiff", file_name=True)
    format: str = Choice(combine_formats, "image/gif")
    pingpong: bool = Bool(False)
    save_output: bool = Bool(True)
    audio: AUDIO = None
    meta_batch: VHS_BATCH_MANAGER = None
    vae: VAE = None
    # the formats' own widgets, which the pack's editor adds for the chosen format
    pix_fmt: str = Choice(PIX_FMTS, "yuv420p")
    crf: int = Int(19, min=0, max=100)
    save_metadata: bool = Choice((True, False, "comment", "False"), True)  # webm's own choice: comment / False
    trim_to_audio: bool = Bool(False)
    input_color_depth: str = Choice(("8bit", "16bit"), "8bit")
    lossless: bool = Bool(True)
    level: str = Choice(("0", "1", "3"), "3")
    coder: str = Choice(("0", "1", "2"), "1")
    context: str = Choice(("0", "1"), "1")
    gop_size: int = Int(1, min=1, max=300)
    slices: str = Choice(("4", "6", "9", "12", "16", "20", "24", "30"), "16")
    slicecrc: str = Choice(("0", "1"), "1")
    profile: str = Choice(PRORES_PROFILES, "hq")
    outputs = {"Filenames": VHS_FILENAMES}
    comfy = ComfyAlias(("VHS_VideoCombine",), widgets=_saved_widgets("VHS_VideoCombine"),
                       optional=("audio", "meta_batch", "vae", "pix_fmt", "crf", "save_metadata", "trim_to_audio",
                                 "input_color_depth", "lossless", "level", "coder", "context", "gop_size", "slices",
                                 "slicecrc", "profile"))

    def run(self):
        _refuse_meta_batch(self, "save all frames")
        frames = self._frames()
        if frames is None:
            return (self.save_output, [])
        if self.format not in combine_formats():  # validation refuses it; a node run directly gets here
            raise NodeInputError("format", f"{self.format!r} is not one of graphflow's formats: "
                                           f"{', '.join(combine_formats())}")
        kind, name = self.format.split("/", 1)
        base = folders.outputs if self.save_output else folders.temp
        try:
            target = safe_join(base, self.filename_prefix)
        except ValueError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        folder, stem = target.parent, target.name
        folder.mkdir(parents=True, exist_ok=True)
        counter = _next_counter(folder, stem)
        texts = workflow_texts()
        parsed = {"workflow": json.loads(texts["workflow"])} if "workflow" in texts else {}  # read once
        extra = parsed["workflow"].get("extra", {}) if parsed else {}
        files = []
        if extra.get("VHS_MetadataImage", True) is not False:
            picture, info = _first_frame_png(frames[0])
            first, counter = _saved(folder, stem, counter, ".png",
                                    lambda p: picture.save(p, format="PNG", pnginfo=info, compress_level=4))
            files.append(first)
        if kind == "image":
            files.append(self._save_picture(frames, name, folder, stem, counter))
        else:
            files += self._save_video(frames, name, folder, stem, counter, texts, parsed)
        if extra.get("VHS_KeepIntermediate", True) is False:
            for path in files[1:-1]:
                path.unlink(missing_ok=True)
        shown = files[-1]
        subfolder = subfolder_name(base, folder)
        kind_of = "output" if self.save_output else "temp"
        show(images=[{"filename": shown.name, "subfolder": subfolder, "type": kind_of}], animated=[True],
             gifs=[{"filename": shown.name, "subfolder": subfolder, "type": kind_of, "format": self.format,
                    "frame_rate": self.frame_rate, "workflow": f"{stem}_{counter:05}.png",
                    "fullpath": str(shown)}])
        return (self.save_output, [str(p) for p in files])

    def _frames(self):
        """The frames to save: the images, or the latent decoded; None for an empty batch."""
        images = self.images
        if isinstance(images, dict):
            if self.vae is None:
                raise NodeInputError("images", "got a LATENT: connect the vae input to decode it, as the pack does")
            if not hasattr(images.get("samples"), "shape"):
                raise NodeInputError("images", "expected IMAGE, or a LATENT (a dict with 'samples')")
            images = self.vae.decode(images["samples"])
        if not hasattr(images, "dim") or images.dim() != 4:
            raise NodeInputError("images", f"expected an IMAGE batch [frames, height, width, channels], "
                                           f"got {type(images).__name__}")
        return None if len(images) == 0 else images

    def _save_picture(self, frames, ext: str, folder: Path, stem: str, counter: int) -> Path:
        from PIL import Image

        from graphflow.images import image_to_pil

        pictures = [image_to_pil(f) for f in frames]
        pictures = _pingpong(pictures) if self.pingpong else pictures
        options = {"disposal": 2} if ext == "gif" else {}
        if ext == "webp":  # the pack's WebP: lossless by default, its time of saving in the EXIF
            exif = Image.Exif()
            exif[0x8769] = {36867: datetime.datetime.now().isoformat(" ")[:19]}
            options.update(exif=exif, lossless=self.lossless)
        # the pack's frame time: 1000 / frame_rate milliseconds, rounded
        return _saved(folder, stem, counter, f".{ext}", lambda p: pictures[0].save(
            p, format=ext.upper(), save_all=True, append_images=pictures[1:], duration=round(1000 / self.frame_rate),
            loop=self.loop_count, **options))[0]

    def _save_video(self, frames, name: str, folder: Path, stem: str, counter: int, texts: dict,
                    parsed: dict) -> list[Path]:
        import torch

        from graphflow.video import Video, VideoFileError, add_sound, frame_rate, write_video

        spec = VIDEO_FORMATS[name]
        widgets = spec["widgets"]
        # the widget's choice, else the format's own (webm's yuv420p); ProRes's follows its profile
        pix_fmt = self.pix_fmt if "pix_fmt" in widgets else spec["pix_fmts"][0] if spec["pix_fmts"] else None
        if pix_fmt is not None and pix_fmt not in spec["pix_fmts"]:
            raise NodeInputError("pix_fmt", f"video/{name} takes {', '.join(spec['pix_fmts'])}, not {pix_fmt!r}")
        if name == "ProRes":  # the profile's sampling: 4:4:4 for 4444 (with alpha where the frames have it), else 4:2:2
            alpha = frames.shape[-1] == 4
            pix_fmt = ("yuva444p10le" if alpha else "yuv444p10le") if self.profile.startswith("4444") else "yuv422p10le"
        options = dict(spec.get("options", {}))
        if "crf" in widgets:
            options["crf"] = str(self.crf)
        if name == "ffv1-mkv":
            options.update(level=self.level, coder=self.coder, context=self.context, g=str(self.gop_size),
                           slices=self.slices, slicecrc=self.slicecrc)
        if name == "ProRes":
            options["profile"] = self.profile
        wide = spec.get("depth") == 16 or ("input_color_depth" in widgets and self.input_color_depth == "16bit")
        depth = 16 if wide else 8
        height, width = frames.shape[1:3]
        if spec["codec"] == "libx265" and min(width, height) < 64:  # seen to corrupt memory and kill the process
            raise NodeInputError("format", f"video/{name}: the x265 encoder of graphflow's FFmpeg crashes on frames "
                                           f"under 64 pixels; these are {width}x{height} (use video/h264-mp4)")
        if height % 2 or width % 2:  # the pack pads to even sizes, repeating the edges
            warn("the frames' width or height is odd: padded to even sizes by repeating the edge pixels, "
                 "as the pack does")
            pad_w, pad_h = width % 2, height % 2
            frames = torch.nn.functional.pad(frames.movedim(-1, 1).float(), (pad_w // 2, pad_w - pad_w // 2,
                                                                              pad_h // 2, pad_h - pad_h // 2),
                                             mode="replicate").movedim(1, -1)
        count = len(frames)
        order = list(range(count))
        order = _pingpong(order) if self.pingpong else order
        # FFmpeg's loop filter, as the pack sets it: the first `count` frames played loop_count more times
        order = order[:count] * (self.loop_count + 1) + order[count:]
        rate = frame_rate(self.frame_rate)
        save = "save_metadata" in widgets and self.save_metadata not in (False, "False")  # the pack's test
        metadata = {"comment": _comment(texts, parsed), "creation_time": datetime.datetime.now(datetime.timezone.utc)
                    .strftime("%Y-%m-%dT%H:%M:%S.%fZ")} if save else None

        def encode(video, path, order):
            try:
                write_video(path, video, spec["container"], spec["codec"], pix_fmt=pix_fmt,
                            options=options, metadata=metadata, audio_codec=spec["audio"],
                            bt709=spec.get("bt709", False), depth=depth, codec_tag=spec.get("tag"), order=order)
            except (VideoFileError, ValueError) as e:
                raise NodeInputError("format", f"video/{name} could not be written: {e}") from None

        suffix = f".{spec['ext']}"
        video, counter = _saved(folder, stem, counter, suffix, lambda p: encode(Video(frames, rate), p, order))
        files = [video]
        audio = self.audio
        if isinstance(audio, dict) and hasattr(audio.get("waveform"), "shape"):
            trim = "trim_to_audio" in widgets and self.trim_to_audio
            sound, played = _fit_sound(audio, order, rate, trim)

            def with_sound(path):  # the pictures' packets copied (encoded once), unless the sound cut them
                if played != order:
                    return encode(Video(frames, rate, sound), path, played)
                try:
                    add_sound(path, files[0], spec["container"], sound, spec["audio"], metadata)
                except VideoFileError as e:
                    raise NodeInputError("format", f"video/{name} could not be written: {e}") from None

            files.append(_saved(folder, stem, counter, f"-audio{suffix}", with_sound)[0])  # the video's number
        return files


def _first_frame_png(frame):
    """The pack's first frame PNG: the picture and its text chunks (the workflow, the time of saving)."""
    from graphflow.images import image_to_pil

    info = _png_metadata()
    info.add_text("CreationTime", datetime.datetime.now().isoformat(" ")[:19])
    return image_to_pil(frame), info


def _comment(texts: dict, parsed: dict) -> str:
    """The video's comment tag as the pack writes it: a JSON object of the prompt (as JSON text) and
    the workflow's other entries (as objects; `parsed`: those already read)."""
    comment = {}
    for key, text in texts.items():
        comment[key] = text if key == "prompt" else parsed[key] if key in parsed else json.loads(text)
    return json.dumps(comment)


def _fit_sound(audio: dict, frames: list, rate, trim: bool):
    """The sound padded with silence (or cut) to the pictures' length, as the pack's FFmpeg call
    (apad, then -shortest) ends it; with trim, a shorter sound cuts the pictures (`frames`: the
    order they play in) instead."""
    import torch

    waveform, sample_rate = audio["waveform"], int(audio["sample_rate"])
    waveform = waveform.movedim(0, 1).reshape(1, waveform.shape[1], -1)  # a batch plays one after another
    seconds = len(frames) / rate
    if trim and waveform.shape[-1] < seconds * sample_rate:
        frames = frames[:max(1, math.ceil(waveform.shape[-1] / sample_rate * rate))]
        seconds = len(frames) / rate
    keep = math.ceil(seconds * sample_rate)
    if waveform.shape[-1] < keep:
        waveform = torch.nn.functional.pad(waveform, (0, keep - waveform.shape[-1]))
    return {"waveform": waveform[..., :keep], "sample_rate": sample_rate}, frames


# -- Load Video ------------------------------------------------------------------------------

# The pack's load formats: what a model family wants of the frames. dim: (size step, ..., width,
# height the editor suggests); frames: (div, mod): the count is cut to div * n + mod.
LOAD_FORMATS = {
    "None": {},
    "AnimateDiff": {"target_rate": 8, "dim": (8, 0, 512, 512)},
    "Mochi": {"target_rate": 24, "dim": (16, 0, 848, 480), "frames": (6, 1)},
    "LTXV": {"target_rate": 24, "dim": (32, 0, 768, 512), "frames": (8, 1)},
    "Hunyuan": {"target_rate": 24, "dim": (16, 0, 848, 480), "frames": (4, 1)},
    "Cosmos": {"target_rate": 24, "dim": (16, 0, 1280, 704), "frames": (8, 1)},
    "Wan": {"target_rate": 16, "dim": (8, 0, 832, 480), "frames": (4, 1)},
}
VIDEO_EXTENSIONS = ("webm", "mp4", "mkv", "gif", "mov")  # the pack's video_extensions


def vhs_pick(frames, fps: float, force_rate: float, skip_first: int, every_nth: int, cap: int):
    """The frames (an iterable, read no further than needed) the pack's Load Video keeps: resampled to
    force_rate (0: the video's own rate) by its frame clock (for each target time k / force_rate, the
    first frame at or after it; a frame may come twice when forced faster), then the first skip_first
    dropped, every every_nth kept, at most cap (0: all)."""
    base = 1 / fps
    target = 1 / force_rate if force_rate else base
    frames = iter(frames)
    current = next(frames, None)
    if current is None:
        return
    clock, taken, seen, kept = target, 0, -1, 0
    while True:
        if clock < target:
            current = next(frames, None)
            if current is None:
                return
            clock += base
        if clock < target:
            continue
        clock -= target
        taken += 1
        if taken <= skip_first:
            continue
        seen += 1
        if seen % every_nth:
            continue
        yield current
        kept += 1
        if cap and kept >= cap:
            return


def vhs_target_size(width: int, height: int, custom_width: int, custom_height: int, step: int) -> tuple[int, int]:
    """The pack's loaded size: custom_width / custom_height (0 keeps the aspect from the other; both 0
    keep the size), then each rounded to the nearest multiple of step."""
    if custom_width and custom_height:
        width, height = custom_width, custom_height
    elif custom_width:
        width, height = custom_width, height * custom_width / width
    elif custom_height:
        width, height = width * custom_height / height, custom_height
    return int(width / step + 0.5) * step, int(height / step + 0.5) * step


def _size_step(node) -> int:
    """The multiple sizes are rounded to: the VAE's downscale with a vae, else the format's (None: 1)."""
    return node.vae.downscale if node.vae is not None else LOAD_FORMATS[node.format].get("dim", (1,))[0]


def _ignore_force_size(node) -> None:
    if node.force_size:  # an older API prompt's: dropped by the pack's backend too (its editor migrates saves)
        warn(f"force_size {node.force_size!r} is ignored, as the pack ignores it: custom_width and custom_height "
             "set the size")


def _cut_to_format(node, images):
    """The frames cut to the format's count rule (Wan: 4n + 1 ...), as the pack cuts them."""
    fmt = LOAD_FORMATS[node.format]
    if "frames" in fmt and len(images) % fmt["frames"][0] != fmt["frames"][1]:
        div, mod = fmt["frames"]
        images = images[:(len(images) - mod) // div * div + mod]
        if len(images) == 0:
            raise NodeInputError("format", f"{node.format} wants {div}n+{mod} frames; fewer were loaded")
    return images


def load_vhs_video(node, path: Path):
    """Load Video's work on a file: frames picked, resized, optionally encoded; (IMAGE or LATENT,
    frame_count, audio, video_info)."""
    import numpy as np
    import torch

    from graphflow.video import VideoFileError, video_frames

    _ignore_force_size(node)
    try:  # decoded as far as the frames kept need, as the pack reads a long video with a small cap
        with video_frames(path) as (facts, frames, read_sound):
            fps = float(facts.fps)
            picked = [frame.to_ndarray(format="rgb24") for frame in vhs_pick(
                frames, fps, node.force_rate, node.skip_first_frames, node.select_every_nth, node.frame_load_cap)]
            sound = read_sound()
    except VideoFileError as e:
        raise NodeInputError("video", f"can't read {path.name!r}: {e}") from None
    total, width, height = facts.frames, facts.width, facts.height
    if not picked:
        raise NodeInputError("skip_first_frames", f"no frames left: the video has {total or 'no'} frames "
                                                  f"at {fps:g} fps")
    images = torch.from_numpy(np.stack(picked)).float() / 255.0
    new_w, new_h = vhs_target_size(width, height, node.custom_width, node.custom_height, _size_step(node))
    if (new_w, new_h) != (width, height):
        if new_w <= 0 or new_h <= 0:
            raise NodeInputError("custom_width", f"the size comes to {new_w}x{new_h}")
        images = _resize_image(images, new_w, new_h, "lanczos", crop=True)
    images = _cut_to_format(node, images)
    frame_time = 1 / node.force_rate if node.force_rate else 1 / fps
    start = node.skip_first_frames * frame_time
    frame_time *= node.select_every_nth
    audio = _sound_part(sound, start, node.frame_load_cap * frame_time)
    info = {"source_fps": fps, "source_frame_count": total, "source_duration": total / fps,
            "source_width": width, "source_height": height, "loaded_fps": 1 / frame_time,
            "loaded_frame_count": len(images), "loaded_duration": len(images) * frame_time,
            "loaded_width": new_w, "loaded_height": new_h}
    if node.vae is not None:
        return {"samples": node.vae.encode(images)}, len(images), audio, info
    return images, len(images), audio, info


def vhs_ffmpeg_filters(width: int, height: int, force_rate: float, custom_width: int, custom_height: int,
                       step: int, start_time: float) -> tuple[list[tuple[str, str]], tuple[int, int]]:
    """The FFmpeg filters the pack's FFmpeg loaders run (as its -vf and -ss set them) and the size
    they give: fps for force_rate; for custom sizes a centre crop (under the pack's own test of the
    aspect) and a scale to vhs_target_size; the frames before start_time dropped."""
    filters, size = [], (width, height)
    if force_rate:
        filters.append(("fps", f"fps={force_rate}"))
    if custom_width or custom_height:
        size = vhs_target_size(width, height, custom_width, custom_height, step)
        aspect = size[0] / size[1]
        if abs(width * aspect - height) >= 1:  # the pack's test, as written (width x new aspect against height)
            wider = f"gt({aspect}\\,a)"  # the new aspect wider than the picture's: keep the width
            filters.append(("crop", f"if({wider}\\,iw\\,ih*{aspect}):if({wider}\\,iw/{aspect}\\,ih)"))
        filters.append(("scale", f"{size[0]}:{size[1]}"))
    if start_time > 0:
        filters.append(("trim", f"start={start_time}"))
    return filters, size


def load_vhs_video_ffmpeg(node, path: Path):
    """Load Video FFmpeg's work on a file: (IMAGE or LATENT, mask, audio, video_info)."""
    import itertools
    import re

    import numpy as np
    import torch

    from graphflow.video import VideoFileError, video_frames

    _ignore_force_size(node)
    size = None

    def filters(facts):  # set from the video's own size, as the pack's probe sets them
        nonlocal size
        chain, size = vhs_ffmpeg_filters(facts.width, facts.height, node.force_rate, node.custom_width,
                                         node.custom_height, _size_step(node), node.start_time)
        return tuple(chain)

    try:
        with video_frames(path, filters, "rgba64le") as (facts, frames, read_sound):
            fps, duration = float(facts.fps), facts.duration
            picked = [frame.to_ndarray() for frame in itertools.islice(frames, node.frame_load_cap or None)]
            sound = read_sound()
    except VideoFileError as e:
        raise NodeInputError("video", f"can't read {path.name!r}: {e}") from None
    if not picked:
        raise NodeInputError("start_time", f"no frames left: the video lasts {duration:g} s")
    alpha = re.search("yuva|rgba|bgra", facts.pix_fmt) is not None
    images = _cut_to_format(node, torch.from_numpy(np.stack(picked).astype(np.float32) / 65535.0))
    frame_time = 1 / (node.force_rate or fps)
    audio = _sound_part(sound, node.start_time, node.frame_load_cap * frame_time)
    info = {"source_fps": fps, "source_frame_count": fps * duration, "source_duration": duration,
            "source_width": facts.width, "source_height": facts.height, "loaded_fps": 1 / frame_time,
            "loaded_frame_count": len(images), "loaded_duration": len(images) * frame_time,
            "loaded_width": size[0], "loaded_height": size[1]}
    if node.vae is not None:
        return {"samples": node.vae.encode(images[..., :3])}, None, audio, info
    mask = 1.0 - images[..., 3] if alpha else torch.zeros(len(images), 64, 64)
    return images[..., :3].contiguous(), mask, audio, info


def _sound_part(audio, start: float, duration: float):
    """The sound from start seconds on, duration seconds of it (0: to the end); None without sound."""
    if audio is None:
        return None
    rate = int(audio["sample_rate"])
    first = round(start * rate)
    last = first + round(duration * rate) if duration else None
    return {"waveform": audio["waveform"][..., first:last], "sample_rate": rate}


def _load_inputs_doc(source: str) -> str:
    return (f"Load a video ({source}) as VideoHelperSuite's Load Video: force_rate resamples it to that many "
            "frames a second (0: its own), skip_first_frames drops frames at the start, select_every_nth keeps "
            "every nth, frame_load_cap stops after that many (0: all). custom_width / custom_height resize it "
            "(0 keeps the aspect from the other; centre-cropped, Lanczos), each rounded to the format's size step "
            "(AnimateDiff: 8, Wan: 8, LTXV: 32 ...; None: 1; with a vae, the VAE's), and the format's frame count "
            "rule cuts the frames (Wan: 4n+1 ...). With a vae the frames come out encoded as a LATENT. Outputs the "
            "frames, their count, the sound of the loaded part (none if the file has none) and the video_info. "
            "An older save's force_size is turned into custom_width / custom_height on reading, as the pack's editor "
            "does; in an API prompt it is ignored, as by the pack. meta_batch is not supported.")


class _LoadVideoBase(Node):
    video: str  # first, as in the pack: each loader declares its own widget for it
    force_rate: float = Float(0.0, min=0.0, max=60.0, step=1.0)
    custom_width: int = Int(0, min=0, max=DIMMAX)
    custom_height: int = Int(0, min=0, max=DIMMAX)
    frame_load_cap: int = Int(0, min=0, max=BIGMAX)
    skip_first_frames: int = Int(0, min=0, max=BIGMAX)
    select_every_nth: int = Int(1, min=1, max=BIGMAX)
    meta_batch: VHS_BATCH_MANAGER = None
    vae: VAE = None
    format: str = Choice(tuple(LOAD_FORMATS), "AnimateDiff")
    force_size: str = Text("")  # the pack's hidden input, which older prompts send: ignored with a warning
    outputs = {"IMAGE": ANY, "frame_count": INT, "audio": AUDIO, "video_info": VHS_VIDEOINFO}

    def _load(self, path: Path):
        _refuse_meta_batch(self, "load the frames")
        return load_vhs_video(self, path)


_LOAD_OPTIONAL = ("meta_batch", "vae", "format", "force_size")


class VHSLoadVideo(_LoadVideoBase):
    __doc__ = _load_inputs_doc("a file in the inputs folder")
    display_name = "Load Video (Upload) 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    video: str = Choice(folders.list_input_videos, upload="video", description="a video in the inputs folder")
    comfy = ComfyAlias(("VHS_LoadVideo",), folders={"video": "input"}, optional=_LOAD_OPTIONAL,
                       widgets=_saved_widgets("VHS_LoadVideo"))

    @classmethod
    def fingerprint(cls, video="", **widgets):
        return file_sha256(folders.input_path, video)

    def run(self):
        try:
            path = folders.input_path(self.video)
        except ValueError as e:
            raise NodeInputError("video", str(e)) from None
        if not path.is_file():
            raise NodeInputError("video", f"no video {self.video!r} in the inputs folder")
        return self._load(path)


def allowed_path(text: str) -> Path:
    """The file (or folder) a VHS Path node names, kept inside graphflow's inputs, outputs or temp folder (an
    absolute path must lead into one; "input/...", "output/..." and "temp/..." name them as ComfyUI's
    working folder does; any other relative path is in the inputs). Anything else is refused:
    a workflow must not read the server's other files. URLs are refused (nothing is downloaded)."""
    name = text.strip().strip('"')
    if not name:
        raise ValueError("no path given")
    if "://" in name:
        raise ValueError(f"{name!r} is a URL; graphflow downloads nothing: put the file in the inputs folder")
    path = Path(name)
    if path.is_absolute():
        resolved = path.resolve()
        for base in (*folders.input_dirs(), folders.outputs, folders.temp):
            base = Path(base).resolve()
            if resolved == base or base in resolved.parents:
                return safe_join(base, resolved.relative_to(base).as_posix())
        raise ValueError(f"{name!r} is outside graphflow's inputs, outputs and temp folders, which are the only "
                         "places a workflow may read from")
    bases = {"input": folders.inputs, "output": folders.outputs, "temp": folders.temp}
    if path.parts and path.parts[0] in bases and len(path.parts) > 1:
        return safe_join(bases[path.parts[0]], Path(*path.parts[1:]).as_posix())
    return folders.input_path(name)


class VHSLoadVideoPath(_LoadVideoBase):
    __doc__ = _load_inputs_doc("by its path: inside graphflow's inputs, outputs or temp folder only; "
                               "'input/x.mp4' and 'output/x.mp4' name those folders as in ComfyUI")
    display_name = "Load Video (Path) 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    video: str = Text("", description="the video's path (inside the inputs, outputs or temp folder)")
    comfy = ComfyAlias(("VHS_LoadVideoPath",), widgets=_saved_widgets("VHS_LoadVideoPath"), optional=_LOAD_OPTIONAL)

    @classmethod
    def fingerprint(cls, video="", **widgets):
        return file_sha256(allowed_path, video)

    def run(self):
        try:
            path = allowed_path(self.video)
        except ValueError as e:
            raise NodeInputError("video", str(e)) from None
        if not path.is_file():
            raise NodeInputError("video", f"no video file at {self.video!r}")
        return self._load(path)


_FFMPEG_DOC = ("Load a video ({}) as VideoHelperSuite's Load Video FFmpeg: through FFmpeg's own filters, as the "
               "pack runs them: force_rate resamples with the fps filter (0: the video's rate), custom_width / "
               "custom_height crop to the new aspect and scale (bicubic; 0 keeps the aspect from the other; "
               "rounded to the format's size step, or the VAE's), the frames before start_time (seconds) are "
               "dropped, frame_load_cap stops after that many (0: all); then the format's frame count rule. Frames "
               "are read at 16 bits; mask is 1 - alpha for a video with alpha (zeros [n, 64, 64] without; none with "
               "a vae, whose LATENT takes the frames' place). VP9 alpha, which the pack reads with libvpx, is not "
               "read. Outputs the frames, mask, the sound of the loaded part and the video_info. meta_batch is not "
               "supported; an API prompt's force_size is ignored, as by the pack.")


class _LoadVideoFFmpegBase(Node):
    video: str  # first, as in the pack: each loader declares its own widget for it
    force_rate: float = Float(0.0, min=0.0, max=60.0, step=1.0)
    custom_width: int = Int(0, min=0, max=DIMMAX)
    custom_height: int = Int(0, min=0, max=DIMMAX)
    frame_load_cap: int = Int(0, min=0, max=BIGMAX)
    start_time: float = Float(0.0, min=0.0, max=float(BIGMAX), step=0.001)
    meta_batch: VHS_BATCH_MANAGER = None
    vae: VAE = None
    format: str = Choice(tuple(LOAD_FORMATS), "AnimateDiff")
    force_size: str = Text("")  # the pack's hidden input, which older prompts send: ignored with a warning
    outputs = {"IMAGE": ANY, "mask": MASK, "audio": AUDIO, "video_info": VHS_VIDEOINFO}

    def _load(self, path: Path):
        _refuse_meta_batch(self, "load the frames")
        return load_vhs_video_ffmpeg(self, path)


class VHSLoadVideoFFmpeg(_LoadVideoFFmpegBase):
    __doc__ = _FFMPEG_DOC.format("a file in the inputs folder")
    display_name = "Load Video FFmpeg (Upload) 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    video: str = Choice(folders.list_input_videos, upload="video", description="a video in the inputs folder")
    comfy = ComfyAlias(("VHS_LoadVideoFFmpeg",), folders={"video": "input"}, optional=_LOAD_OPTIONAL,
                       widgets=vhs_widgets)
    fingerprint = VHSLoadVideo.fingerprint
    run = VHSLoadVideo.run


class VHSLoadVideoFFmpegPath(_LoadVideoFFmpegBase):
    __doc__ = _FFMPEG_DOC.format("by its path: inside graphflow's inputs, outputs or temp folder only")
    display_name = "Load Video FFmpeg (Path) 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    video: str = Text("", description="the video's path (inside the inputs, outputs or temp folder)")
    comfy = ComfyAlias(("VHS_LoadVideoFFmpegPath",), widgets=vhs_widgets, optional=_LOAD_OPTIONAL)
    fingerprint = VHSLoadVideoPath.fingerprint
    run = VHSLoadVideoPath.run


# -- Load Images (a folder of pictures as frames) --------------------------------------------

# the pictures the pack reads from a folder (k-diffusion's FolderOfImages extensions)
FOLDER_PICTURES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _folder_pictures(folder: Path, skip_first: int, every_nth: int, cap: int) -> list[Path]:
    """The pack's pick of a folder's pictures: by name, skip_first dropped, every every_nth kept, at most cap.
    Links that lead out of the folder are left out, as the inputs' lists leave them out."""
    files = folder_files(folder, FOLDER_PICTURES)[skip_first::every_nth]
    return files[:cap] if cap else files


def load_vhs_images(node, folder: Path):
    """Load Images' work: the pictures as frames at the most common size (others Lanczos-resized with a
    centre crop), their alpha as MASK (1 - alpha; [n, 64, 64] zeros without), and the count."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    _refuse_meta_batch(node, "load the pictures")
    if not folder.is_dir():
        raise NodeInputError("directory", f"no folder {node.directory!r}")
    files = _folder_pictures(folder, node.skip_first_images, node.select_every_nth, node.image_load_cap)
    if not files:
        raise NodeInputError("directory", f"no pictures ({', '.join(FOLDER_PICTURES)}) to load in {node.directory!r}")
    check_folder_pictures(files, "image_load_cap", "directory")
    pictures = [ImageOps.exif_transpose(Image.open(f)) for f in files]
    sizes = [p.size for p in pictures]
    width, height = max(dict.fromkeys(sizes), key=sizes.count)  # the most common; the first of a tie
    alpha = any("A" in p.getbands() for p in pictures)
    frames = []
    for picture in pictures:
        frame = torch.from_numpy(np.asarray(picture.convert("RGBA" if alpha else "RGB"), dtype=np.float32) / 255.0)
        if picture.size != (width, height):
            frame = _resize_image(frame[None], width, height, "lanczos", crop=True)[0]
        frames.append(frame.half())  # the pack loads pictures as float16: its values, here as float32
    images = torch.stack(frames).float()
    masks = 1.0 - images[..., 3] if alpha else torch.zeros(len(images), 64, 64)
    return images[..., :3].contiguous(), masks, len(images)


def _pictures_state(folder: Path, node_inputs: dict) -> str | None:
    try:
        files = _folder_pictures(folder, node_inputs.get("skip_first_images", 0),
                                 node_inputs.get("select_every_nth", 1), node_inputs.get("image_load_cap", 0))
        stats = [(f, f.stat()) for f in files]
        return hashlib.sha256("".join(f"{f}:{st.st_mtime_ns}:{st.st_size};" for f, st in stats).encode()).hexdigest()
    except (OSError, ValueError):
        return None


def _input_folders() -> list[str]:
    """The inputs folder's subfolders (the pack's choices; ComfyUI's clipspace left out)."""
    if not folders.inputs.is_dir():
        return []
    return sorted(p.name for p in folders.inputs.iterdir() if p.is_dir() and p.name != "clipspace")


_LOAD_IMAGES_DOC = ("Load the pictures of a folder ({}) as frames, as VideoHelperSuite's Load Images: by file name, "
                    "skip_first_images dropped, every select_every_nth kept, at most image_load_cap (0: all). All come "
                    "out at the most common size (others Lanczos-resized, centre-cropped); MASK is 1 - alpha (zeros "
                    "[n, 64, 64] when none has alpha); INT their count. Values are the pack's float16 ones. "
                    "meta_batch is not supported. A server's max_batch bounds the count and its max_pixels each "
                    "picture, read from the headers before any is decoded.")


class VHSLoadImages(Node):
    __doc__ = _LOAD_IMAGES_DOC.format("a subfolder of the inputs")
    display_name = "Load Images (Upload) 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    directory: str = Choice(_input_folders, description="a subfolder of the inputs folder")
    image_load_cap: int = Int(0, min=0, max=BIGMAX)
    skip_first_images: int = Int(0, min=0, max=BIGMAX)
    select_every_nth: int = Int(1, min=1, max=BIGMAX)
    meta_batch: VHS_BATCH_MANAGER = None
    outputs = {"IMAGE": IMAGE, "MASK": MASK, "INT": INT}
    comfy = ComfyAlias(("VHS_LoadImages",), optional=("image_load_cap", "skip_first_images", "select_every_nth",
                                                      "meta_batch"),
                       widgets=_saved_widgets("VHS_LoadImages"))

    @classmethod
    def fingerprint(cls, directory="", **widgets):
        try:
            return _pictures_state(safe_join(folders.inputs, directory), widgets)
        except ValueError:
            return None

    def run(self):
        try:
            folder = safe_join(folders.inputs, self.directory.strip())
        except ValueError as e:
            raise NodeInputError("directory", str(e)) from None
        return load_vhs_images(self, folder)


class VHSLoadImagesPath(Node):
    __doc__ = _LOAD_IMAGES_DOC.format("by its path: inside graphflow's inputs, outputs or temp folder only; "
                                      "'input/frames' names the inputs' frames folder as in ComfyUI")
    display_name = "Load Images (Path) 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    directory: str = Text("", description="the folder's path (inside the inputs, outputs or temp folder)")
    image_load_cap: int = Int(0, min=0, max=BIGMAX)
    skip_first_images: int = Int(0, min=0, max=BIGMAX)
    select_every_nth: int = Int(1, min=1, max=BIGMAX)
    meta_batch: VHS_BATCH_MANAGER = None
    outputs = {"IMAGE": IMAGE, "MASK": MASK, "INT": INT}
    comfy = ComfyAlias(("VHS_LoadImagesPath",), optional=("image_load_cap", "skip_first_images", "select_every_nth",
                                                          "meta_batch"),
                       widgets=_saved_widgets("VHS_LoadImagesPath"))

    @classmethod
    def fingerprint(cls, directory="", **widgets):
        try:
            return _pictures_state(allowed_path(directory), widgets)
        except ValueError:
            return None

    def run(self):
        try:
            folder = allowed_path(self.directory)
        except ValueError as e:
            raise NodeInputError("directory", str(e)) from None
        return load_vhs_images(self, folder)


# -- Load Audio ------------------------------------------------------------------------------

AUDIO_EXTENSIONS = (".mp3", ".mp4", ".wav", ".ogg")  # the pack's audio_extensions (its upload node's choices)


def load_vhs_audio(path: Path, start: float, duration: float, input_name: str):
    """The sound of a file from start seconds on, duration seconds of it (0: to the end), as the pack's
    get_audio cuts it; the last audio stream where there are several."""
    from graphflow.video import VideoFileError, read_sound

    if not path.is_file():
        raise NodeInputError(input_name, f"no file at {path.name!r}")
    try:
        sound = read_sound(path)
    except VideoFileError as e:
        raise NodeInputError(input_name, f"can't read {path.name!r}: {e}") from None
    if sound is None:
        raise NodeInputError(input_name, f"{path.name!r} has no sound")
    return _sound_part(sound, start, duration)


class VHSLoadAudioUpload(Node):
    """Load the sound of a file in the inputs folder (mp3, mp4, wav, ogg) as AUDIO, as VideoHelperSuite's
    Load Audio (Upload): from start_time seconds on, duration seconds of it (0: to the end)."""
    display_name = "Load Audio (Upload)🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/audio"
    audio: str = Choice(lambda: folders.list_inputs(AUDIO_EXTENSIONS), upload="audio",
                        description="a sound file in the inputs folder")
    start_time: float = Float(0.0, min=0.0, max=10000000.0, step=0.01)
    duration: float = Float(0.0, min=0.0, max=10000000.0, step=0.01)
    outputs = {"audio": AUDIO}
    comfy = ComfyAlias(("VHS_LoadAudioUpload",), folders={"audio": "input"})

    @classmethod
    def fingerprint(cls, audio="", **widgets):
        return file_sha256(folders.input_path, audio)

    def run(self):
        try:
            path = folders.input_path(self.audio)
        except ValueError as e:
            raise NodeInputError("audio", str(e)) from None
        return load_vhs_audio(path, self.start_time, self.duration, "audio")


class VHSLoadAudio(Node):
    """Load the sound of a file by its path (inside graphflow's inputs, outputs or temp folder only;
    'input/x.wav' names the inputs' as in ComfyUI) as AUDIO, as VideoHelperSuite's Load Audio (Path):
    from seek_seconds on, duration seconds of it (0: to the end)."""
    display_name = "Load Audio (Path)🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/audio"
    audio_file: str = Text("input/", description="the sound file's path (inside the inputs, outputs or temp folder)")
    seek_seconds: float = Float(0.0, min=0.0, max=10000000.0, step=0.01)
    duration: float = Float(0.0, min=0.0, max=10000000.0, step=0.01)
    outputs = {"audio": AUDIO}
    comfy = ComfyAlias(("VHS_LoadAudio",), optional=("seek_seconds", "duration"))

    @classmethod
    def fingerprint(cls, audio_file="", **widgets):
        return file_sha256(allowed_path, audio_file)

    def run(self):
        try:
            path = allowed_path(self.audio_file)
        except ValueError as e:
            raise NodeInputError("audio_file", str(e)) from None
        return load_vhs_audio(path, self.seek_seconds, self.duration, "audio_file")


# -- Video Info ------------------------------------------------------------------------------

INFO_KEYS = ("fps", "frame_count", "duration", "width", "height")


def _info(video_info, prefix: str) -> tuple:
    if not isinstance(video_info, dict) or any(f"{prefix}_{k}" not in video_info for k in INFO_KEYS):
        raise NodeInputError("video_info", "expected a VHS_VIDEOINFO from a Load Video node")
    return tuple(video_info[f"{prefix}_{k}"] for k in INFO_KEYS)


class VHSVideoInfo(Node):
    """The source video's fps, frame count, duration, width and height (yellow), then the same of
    what was loaded (blue), from a Load Video's video_info."""
    display_name = "Video Info 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    video_info: VHS_VIDEOINFO
    outputs = {"source_fps🟨": FLOAT, "source_frame_count🟨": INT, "source_duration🟨": FLOAT,
               "source_width🟨": INT, "source_height🟨": INT, "loaded_fps🟦": FLOAT,
               "loaded_frame_count🟦": INT, "loaded_duration🟦": FLOAT, "loaded_width🟦": INT,
               "loaded_height🟦": INT}
    comfy = ComfyAlias(("VHS_VideoInfo",))

    def run(self):
        return _info(self.video_info, "source") + _info(self.video_info, "loaded")


class VHSVideoInfoSource(Node):
    """The source video's fps, frame count, duration, width and height, from a Load Video's video_info."""
    display_name = "Video Info (Source) 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    video_info: VHS_VIDEOINFO
    outputs = {"fps🟨": FLOAT, "frame_count🟨": INT, "duration🟨": FLOAT, "width🟨": INT, "height🟨": INT}
    comfy = ComfyAlias(("VHS_VideoInfoSource",))

    def run(self):
        return _info(self.video_info, "source")


class VHSVideoInfoLoaded(Node):
    """The loaded frames' fps, count, duration, width and height, from a Load Video's video_info."""
    display_name = "Video Info (Loaded) 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    video_info: VHS_VIDEOINFO
    outputs = {"fps🟦": FLOAT, "frame_count🟦": INT, "duration🟦": FLOAT, "width🟦": INT, "height🟦": INT}
    comfy = ComfyAlias(("VHS_VideoInfoLoaded",))

    def run(self):
        return _info(self.video_info, "loaded")


# -- batch helpers: split, merge, select every nth, count, repeat ------------------------------

MERGE_STRATEGIES = ("match A", "match B", "match smaller", "match larger")
SCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")
CROP_METHODS = ("disabled", "center")


def _merged(a, b, strategy: str, method: str, crop: str):
    """Two NCHW batches put one after the other, one resized to the other's size first when they
    differ, as the pack decides: A's size for "match A", B's for "match B"; for "match smaller" and
    "match larger", when A's area is at most B's, A's and B's size respectively, and when A is the
    larger, A's size for both (the pack's rule, kept so its workflows give the same frames)."""
    import torch

    if a.shape[-2:] != b.shape[-2:]:
        use_a = True
        if strategy == "match B":
            use_a = False
        elif strategy in ("match smaller", "match larger") and a.shape[-1] * a.shape[-2] <= b.shape[-1] * b.shape[-2]:
            use_a = strategy == "match smaller"
        if use_a:
            b = _upscale(b, a.shape[-1], a.shape[-2], method, crop)
        else:
            a = _upscale(a, b.shape[-1], b.shape[-2], method, crop)
    return torch.cat([a, b])


class VHSSplitImages(Node):
    """Split images at split_index: the first ones (A) and the rest (B), with their counts (Python
    slicing: a negative index counts from the end)."""
    display_name = "Split Images 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/image"
    images: IMAGE
    split_index: int = Int(0, min=-BIGMAX, max=BIGMAX)
    outputs = {"IMAGE_A": IMAGE, "A_count": INT, "IMAGE_B": IMAGE, "B_count": INT}
    comfy = ComfyAlias(("VHS_SplitImages",))

    def run(self):
        a, b = self.images[:self.split_index], self.images[self.split_index:]
        return a, len(a), b, len(b)


class VHSSplitLatents(Node):
    """Split latents at split_index: the first ones (A) and the rest (B), with their counts."""
    display_name = "Split Latents 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/latent"
    latents: LATENT
    split_index: int = Int(0, min=-BIGMAX, max=BIGMAX)
    outputs = {"LATENT_A": LATENT, "A_count": INT, "LATENT_B": LATENT, "B_count": INT}
    comfy = ComfyAlias(("VHS_SplitLatents",))

    def run(self):
        samples = self.latents["samples"]
        a, b = samples[:self.split_index], samples[self.split_index:]
        return {"samples": a}, len(a), {"samples": b}, len(b)


class VHSSplitMasks(Node):
    """Split masks at split_index: the first ones (A) and the rest (B), with their counts."""
    display_name = "Split Masks 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/mask"
    mask: MASK
    split_index: int = Int(0, min=-BIGMAX, max=BIGMAX)
    outputs = {"MASK_A": MASK, "A_count": INT, "MASK_B": MASK, "B_count": INT}
    comfy = ComfyAlias(("VHS_SplitMasks",))

    def run(self):
        a, b = self.mask[:self.split_index], self.mask[self.split_index:]
        return a, len(a), b, len(b)


class VHSMergeImages(Node):
    """Put two image batches one after the other; when their sizes differ one is resized (and with
    crop center, centre-cropped) to the other's, as merge_strategy says: match A / match B, or
    match smaller / match larger, which pick by area only when A is not the larger (a larger A's
    size is kept either way, as the pack does)."""
    display_name = "Merge Images 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/image"
    images_A: IMAGE
    images_B: IMAGE
    merge_strategy: str = Choice(MERGE_STRATEGIES)
    scale_method: str = Choice(SCALE_METHODS)
    crop: str = Choice(CROP_METHODS)
    outputs = {"IMAGE": IMAGE, "count": INT}
    comfy = ComfyAlias(("VHS_MergeImages",))

    def run(self):
        if self.images_A.shape[-1] != self.images_B.shape[-1]:
            raise NodeInputError("images_B", f"has {self.images_B.shape[-1]} channels, images_A "
                                             f"{self.images_A.shape[-1]}")
        merged = _merged(self.images_A.movedim(-1, 1), self.images_B.movedim(-1, 1), self.merge_strategy,
                         self.scale_method, self.crop).movedim(1, -1)
        return merged, len(merged)


class VHSMergeLatents(Node):
    """Put two latent batches one after the other, resizing one to the other's size when they differ,
    as merge_strategy says."""
    display_name = "Merge Latents 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/latent"
    latents_A: LATENT
    latents_B: LATENT
    merge_strategy: str = Choice(MERGE_STRATEGIES)
    scale_method: str = Choice(SCALE_METHODS)
    crop: str = Choice(CROP_METHODS)
    outputs = {"LATENT": LATENT, "count": INT}
    comfy = ComfyAlias(("VHS_MergeLatents",))

    def run(self):
        merged = _merged(self.latents_A["samples"], self.latents_B["samples"], self.merge_strategy,
                         self.scale_method, self.crop)
        return {"samples": merged}, len(merged)


class VHSMergeMasks(Node):
    """Put two mask batches one after the other, resizing one to the other's size when they differ,
    as merge_strategy says."""
    display_name = "Merge Masks 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/mask"
    mask_A: MASK
    mask_B: MASK
    merge_strategy: str = Choice(MERGE_STRATEGIES)
    scale_method: str = Choice(SCALE_METHODS)
    crop: str = Choice(CROP_METHODS)
    outputs = {"MASK": MASK, "count": INT}
    comfy = ComfyAlias(("VHS_MergeMasks",))

    def run(self):
        merged = _merged(self.mask_A[:, None], self.mask_B[:, None], self.merge_strategy, self.scale_method,
                         self.crop)[:, 0]
        return merged, len(merged)


class VHSSelectEveryNthImage(Node):
    """Keep every nth image, after skipping the first skip_first_images; and their count."""
    display_name = "Select Every Nth Image 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/image"
    images: IMAGE
    select_every_nth: int = Int(1, min=1, max=BIGMAX)
    skip_first_images: int = Int(0, min=0, max=BIGMAX)
    outputs = {"IMAGE": IMAGE, "count": INT}
    comfy = ComfyAlias(("VHS_SelectEveryNthImage",))

    def run(self):
        kept = self.images[self.skip_first_images::self.select_every_nth]
        return kept, len(kept)


class VHSSelectEveryNthLatent(Node):
    """Keep every nth latent, after skipping the first skip_first_latents; and their count."""
    display_name = "Select Every Nth Latent 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/latent"
    latents: LATENT
    select_every_nth: int = Int(1, min=1, max=BIGMAX)
    skip_first_latents: int = Int(0, min=0, max=BIGMAX)
    outputs = {"LATENT": LATENT, "count": INT}
    comfy = ComfyAlias(("VHS_SelectEveryNthLatent",))

    def run(self):
        kept = self.latents["samples"][self.skip_first_latents::self.select_every_nth]
        return {"samples": kept}, len(kept)


class VHSSelectEveryNthMask(Node):
    """Keep every nth mask, after skipping the first skip_first_masks; and their count."""
    display_name = "Select Every Nth Mask 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/mask"
    mask: MASK
    select_every_nth: int = Int(1, min=1, max=BIGMAX)
    skip_first_masks: int = Int(0, min=0, max=BIGMAX)
    outputs = {"MASK": MASK, "count": INT}
    comfy = ComfyAlias(("VHS_SelectEveryNthMask",))

    def run(self):
        kept = self.mask[self.skip_first_masks::self.select_every_nth]
        return kept, len(kept)


class VHSGetImageCount(Node):
    """How many images the batch holds."""
    display_name = "Get Image Count 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/image"
    images: IMAGE
    outputs = {"count": INT}
    comfy = ComfyAlias(("VHS_GetImageCount",))

    def run(self):
        return len(self.images)


class VHSGetLatentCount(Node):
    """How many latents the batch holds."""
    display_name = "Get Latent Count 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/latent"
    latents: LATENT
    outputs = {"count": INT}
    comfy = ComfyAlias(("VHS_GetLatentCount",))

    def run(self):
        return len(self.latents["samples"])


class VHSGetMaskCount(Node):
    """How many masks the batch holds."""
    display_name = "Get Mask Count 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/mask"
    mask: MASK
    outputs = {"count": INT}
    comfy = ComfyAlias(("VHS_GetMaskCount",))

    def run(self):
        return len(self.mask)


class VHSDuplicateImages(Node):
    """The image batch repeated multiply_by times, one copy after another; and the new count."""
    display_name = "Repeat Images 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/image"
    images: IMAGE
    multiply_by: int = Int(1, min=1, max=BIGMAX)
    outputs = {"IMAGE": IMAGE, "count": INT}
    comfy = ComfyAlias(("VHS_DuplicateImages",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return repeated(inputs.get("images"), widgets.get("multiply_by"))

    def run(self):
        import torch

        out = torch.cat([self.images] * self.multiply_by)
        return out, len(out)


class VHSDuplicateLatents(Node):
    """The latent batch repeated multiply_by times, one copy after another (its other entries kept);
    and the new count."""
    display_name = "Repeat Latents 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/latent"
    latents: LATENT
    multiply_by: int = Int(1, min=1, max=BIGMAX)
    outputs = {"LATENT": LATENT, "count": INT}
    comfy = ComfyAlias(("VHS_DuplicateLatents",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return repeated(inputs.get("latents"), widgets.get("multiply_by"))

    def run(self):
        import torch

        out = {**self.latents, "samples": torch.cat([self.latents["samples"]] * self.multiply_by)}
        return out, len(out["samples"])


class VHSDuplicateMasks(Node):
    """The mask batch repeated multiply_by times, one copy after another; and the new count."""
    display_name = "Repeat Masks 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/mask"
    mask: MASK
    multiply_by: int = Int(1, min=1, max=BIGMAX)
    outputs = {"MASK": MASK, "count": INT}
    comfy = ComfyAlias(("VHS_DuplicateMasks",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return repeated(inputs.get("mask"), widgets.get("multiply_by"))

    def run(self):
        import torch

        out = torch.cat([self.mask] * self.multiply_by)
        return out, len(out)


# -- select by indexes -----------------------------------------------------------------------

SELECT_HELP = ("indexes: comma-separated, in the order given: an index (negative counts from the end), or a "
               "Python range start:end or start:end:step (end left out), e.g. with 16 items: 0 -> [0]; -1 -> [15]; "
               "0:5, 13 -> [0, 1, 2, 3, 4, 13]; 0:-1 -> [0 ... 14]; 0:5:-1 -> [4, 3, 2, 1, 0]; ::-1 -> all reversed. "
               "err_if_missing: an index beyond the batch is an error (else it is skipped); err_if_empty: "
               "selecting nothing is an error.")


def vhs_indexes(text: str, length: int, err_if_missing: bool = True) -> list[int]:
    """The items the pack's Select nodes take: the indexes string read by its grammar (SELECT_HELP)."""
    chosen = []
    for group in (g.strip() for g in text.split(",")) if text else ():
        try:
            if ":" in group:
                parts = [p.strip() for p in group.split(":", 2)]
                start, end = (int(parts[0]) if parts[0] else 0), (int(parts[1]) if parts[1] else length)
                step = int(parts[2]) if len(parts) > 2 and parts[2] else 1
                if step == 0:
                    raise ValueError(f"a range's step can't be 0 (in {group!r})")
                chosen += list(range(length))[start:end][::step]
                continue
            index = int(group)
        except ValueError as e:
            raise ValueError(str(e) if "step" in str(e) else f"index {group!r} must be an integer or a range") from None
        real = index + length if index < 0 else index
        if not 0 <= real < length:
            if err_if_missing:
                raise ValueError(f"index {index} is out of range for {length} item(s)")
            continue  # skipped (where the pack's own indexing fails)
        chosen.append(real)
    return chosen


def _select(length: int, indexes: str, err_if_missing: bool, err_if_empty: bool) -> list[int]:
    try:
        chosen = vhs_indexes(indexes, length, err_if_missing)
    except ValueError as e:
        raise NodeInputError("indexes", str(e)) from None
    if err_if_empty and not chosen:
        raise NodeInputError("indexes", f"nothing was selected by {indexes!r} (of {length} item(s))")
    return chosen


class VHSSelectImages(Node):
    __doc__ = "Pick images by index, in the order given. " + SELECT_HELP
    display_name = "Select Images 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/image"
    image: IMAGE
    indexes: str = Text("0")
    err_if_missing: bool = Bool(True)
    err_if_empty: bool = Bool(True)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("VHS_SelectImages",))

    def run(self):
        return self.image[_select(len(self.image), self.indexes, self.err_if_missing, self.err_if_empty)]


class VHSSelectMasks(Node):
    __doc__ = "Pick masks by index, in the order given. " + SELECT_HELP
    display_name = "Select Masks 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/mask"
    mask: MASK
    indexes: str = Text("0")
    err_if_missing: bool = Bool(True)
    err_if_empty: bool = Bool(True)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("VHS_SelectMasks",))

    def run(self):
        return self.mask[_select(len(self.mask), self.indexes, self.err_if_missing, self.err_if_empty)]


class VHSSelectLatents(Node):
    __doc__ = ("Pick latents by index, in the order given; the latent's other per-item tensors (a noise mask "
               "of the batch's length) are picked alike. " + SELECT_HELP)
    display_name = "Select Latents 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/latent"
    latent: LATENT
    indexes: str = Text("0")
    err_if_missing: bool = Bool(True)
    err_if_empty: bool = Bool(True)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("VHS_SelectLatents",))

    def run(self):
        import torch

        length = len(self.latent["samples"])
        chosen = _select(length, self.indexes, self.err_if_missing, self.err_if_empty)
        return {k: v[chosen] if isinstance(v, torch.Tensor) and len(v) == length else v for k, v in self.latent.items()}


# -- batched VAE, file names -----------------------------------------------------------------


class VHSVAEDecodeBatched(Node):
    """Decode latents per_batch at a time (less memory at once), as VideoHelperSuite's VAE Decode
    Batched: the images VAEDecode gives, put one after another."""
    display_name = "VAE Decode Batched 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/batched nodes"
    keeps_frames = True  # a video latent decodes to its frames
    samples: LATENT
    vae: VAE
    per_batch: int = Int(16, min=1, max=BIGMAX)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("VHS_VAEDecodeBatched",))

    def run(self):
        import torch

        vae, latent = _require_vae(self.vae), self.samples["samples"]
        return torch.cat([vae.decode(latent[i:i + self.per_batch]) for i in range(0, len(latent), self.per_batch)])


class VHSVAEEncodeBatched(Node):
    """Encode images per_batch at a time (less memory at once), as VideoHelperSuite's VAE Encode
    Batched: the latents VAEEncode gives (sizes cropped to the VAE's multiple, alpha dropped)."""
    display_name = "VAE Encode Batched 🎥🅥🅗🅢"  # the pack's name for it
    category = f"{CATEGORY}/batched nodes"
    pixels: IMAGE
    vae: VAE
    per_batch: int = Int(16, min=1, max=BIGMAX)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("VHS_VAEEncodeBatched",))

    def run(self):
        import torch

        vae, pixels = _require_vae(self.vae), self.pixels[..., :3]
        return {"samples": torch.cat([vae.encode(pixels[i:i + self.per_batch])
                                      for i in range(0, len(pixels), self.per_batch)])}


class VHSSelectFilename(Node):
    """One path from a Video Combine's Filenames: index -1 (the default) is the last, the file the
    editor shows (the video with sound, if there is one)."""
    display_name = "Select Filename 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    filenames: VHS_FILENAMES
    index: int = Int(-1, min=-1, max=BIGMAX)
    outputs = {"Filename": STRING}
    comfy = ComfyAlias(("VHS_SelectFilename",))

    def run(self):
        paths = self.filenames[1]
        if not -len(paths) <= self.index < len(paths):
            raise NodeInputError("index", f"the Filenames hold {len(paths)} path(s); no index {self.index}")
        return paths[self.index]


class VHSPruneOutputs(Node):
    """Delete a Video Combine's in-between files, as VideoHelperSuite's Prune Outputs: Intermediate
    removes the video without sound (where a video with sound was made); Intermediate and Utility
    also the first frame's PNG. Only files inside the outputs or temp folder are ever deleted."""
    display_name = "Prune Outputs 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    output_node = True
    filenames: VHS_FILENAMES
    options: str = Choice(("Intermediate", "Intermediate and Utility"))
    comfy = ComfyAlias(("VHS_PruneOutputs",))

    def run(self):
        paths = [Path(p) for p in self.filenames[1]]
        if not paths:
            return
        if not 2 <= len(paths) <= 3:
            raise NodeInputError("filenames", f"expected a Video Combine's 2 or 3 files, got {len(paths)}")
        doomed = paths[1:-1] + (paths[:1] if self.options == "Intermediate and Utility" else [])
        for path in doomed:
            if not any(_stays_inside(base, path) for base in (folders.outputs, folders.temp)):
                raise NodeInputError("filenames", f"{path} is outside the outputs and temp folders: not deleted")
            path.resolve().unlink(missing_ok=True)


class VHSUnbatch(Node):
    """Join a list of values (what a node giving a list, such as RebatchImages, sends on one item at a
    time) back into one, as VideoHelperSuite's Unbatch: image or mask batches one after another; latents
    and sounds by their samples / waveforms (the first's other entries kept, its batch_index dropped);
    lists and texts added together."""
    display_name = "Unbatch 🎥🅥🅗🅢"  # the pack's name for it
    category = CATEGORY
    input_is_list = True
    batched: ANY
    outputs = {"unbatched": ANY}
    comfy = ComfyAlias(("VHS_Unbatch",))

    def run(self):
        import functools

        import torch

        items = list(self.batched)
        if not items:
            raise NodeInputError("batched", "nothing to join")
        first = items[0]
        try:
            if isinstance(first, torch.Tensor):
                return torch.cat(items)
            if isinstance(first, dict):
                out = dict(first)
                for key in ("samples", "waveform"):
                    if key in out:
                        out[key] = torch.cat([item[key] for item in items])
                out.pop("batch_index", None)
                return out
            return functools.reduce(lambda a, b: a + b, items)
        except (TypeError, RuntimeError, KeyError) as e:
            raise NodeInputError("batched", f"the items can't be joined: {e}") from None
