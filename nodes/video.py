"""Video nodes, as ComfyUI's (comfy_extras/nodes_video.py): load a video file from the inputs,
make one from frames (and sound), take one apart, and save one (MP4 with H.264 and AAC, or WebM
with VP9/AV1) in the outputs folder with the workflow in the container's metadata. Files are
read and written with PyAV (graphflow.video)."""

from __future__ import annotations

import dataclasses
import hashlib
import math

from graphflow.api import (AUDIO, FLOAT, IMAGE, VIDEO, Choice, ComfyAlias, Float, Node, NodeInputError, Text, folders,
                           show, subfolder_name, workflow_texts)
from nodes.image import _next_counter, _write_new

SAVE_FORMATS = ("auto", "mp4")  # ComfyUI's choices; auto is MP4
SAVE_CODECS = ("auto", "h264")  # auto is H.264
WEBM_CODECS = {"vp9": "libvpx-vp9", "av1": "libsvtav1"}  # SaveWEBM's codec names -> FFmpeg's encoders


def _save(name: str, suffix: str, write, source: str) -> None:
    """Save a file as `<prefix>_NNNNN_<suffix>` in the outputs with `write(path, metadata)` and show it
    as ComfyUI does (an animated entry of "images"); `source` is the input blamed when it can't be written."""
    from graphflow.video import VideoFileError

    try:
        folder, stem = folders.output_location(name)
    except ValueError as e:
        raise NodeInputError("filename_prefix", str(e)) from None

    def write_new(path):
        try:
            write(path, workflow_texts())
        except VideoFileError as e:
            raise NodeInputError(source, str(e)) from None

    saved, _ = _write_new(write_new, folder, stem, _next_counter(folder, stem), suffix)
    subfolder = subfolder_name(folders.outputs, folder)
    show(images=[{"filename": saved, "subfolder": subfolder, "type": "output"}],
         animated=[True])


def _encode(video, container_format: str, codec: str, **options):
    """A writer for _save that encodes the video's frames (and sound)."""
    from graphflow.video import write_video

    return lambda path, metadata: write_video(path, video, container_format, codec, metadata=metadata, **options)


def file_sha256(find, name: str) -> str | None:
    """A loader's fingerprint: the SHA-256 of the file `find(name)` gives, read in pieces (a video
    is not held in memory for it); None where there is none (run() reports it)."""
    try:
        with open(find(name), "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except (OSError, ValueError):
        return None


class LoadVideo(Node):
    """Load a video file from the inputs folder (MP4, WebM, MOV, MKV, GIF...): its frames, frame
    rate and sound (if it has some; the last sound track of several, as ComfyUI takes) as a VIDEO."""
    category = "image/video"
    file: str = Choice(folders.list_input_videos, upload="video", description="a video in the inputs folder")
    outputs = {"video": VIDEO}
    comfy = ComfyAlias(("LoadVideo",), folders={"file": "input"})

    @classmethod
    def fingerprint(cls, file):
        return file_sha256(folders.input_path, file)

    def run(self):
        from graphflow.video import VideoFileError, read_video

        try:
            path = folders.input_path(self.file)
        except ValueError as e:
            raise NodeInputError("file", str(e)) from None
        if not path.is_file():
            raise NodeInputError("file", f"no video {self.file!r} in the inputs folder")
        try:
            return read_video(path)
        except VideoFileError as e:
            raise NodeInputError("file", f"can't read {self.file!r}: {e}") from None


class CreateVideo(Node):
    """Make a video from images, fps frames a second, with optional sound. The frame rate is kept as
    given (GetVideoComponents gives it back unchanged); files round it to the thousandth."""
    category = "image/video"
    images: IMAGE
    fps: float = Float(30.0, min=1.0, max=120.0, step=1.0)
    audio: AUDIO = None
    outputs = {"video": VIDEO}
    comfy = ComfyAlias(("CreateVideo",), optional=("audio",))

    def run(self):
        from fractions import Fraction

        from graphflow.video import Video

        if self.images is None or self.images.dim() != 4 or len(self.images) == 0:
            raise NodeInputError("images", "expected a batch of at least one image")
        if self.audio is not None and not (isinstance(self.audio, dict) and "waveform" in self.audio
                                           and "sample_rate" in self.audio):
            raise NodeInputError("audio", "expected AUDIO: a dict with 'waveform' and 'sample_rate'")
        return Video(self.images, Fraction(self.fps), self.audio)


class GetVideoComponents(Node):
    """Take a video apart: its frames, its sound (none if it has none) and its frame rate."""
    category = "image/video"
    video: VIDEO
    outputs = {"images": IMAGE, "audio": AUDIO, "fps": FLOAT}
    comfy = ComfyAlias(("GetVideoComponents",))

    def run(self):
        return self.video.images, self.video.audio, float(self.video.fps)


class SaveVideo(Node):
    """Save a video in the outputs folder as MP4 (H.264 pictures, AAC sound) with the workflow in
    its metadata. The frames need an even width and height. The prefix may contain a subfolder.
    Sound longer than the pictures is cut at their end, as ComfyUI cuts it (a batch of sounds, each
    cut so, plays one after another). A video from LoadVideo
    is written as it came, its streams copied without encoding them again (as ComfyUI does unless
    format or codec asks for another than the file's); where MP4 can't hold them, it is encoded."""
    category = "image/video"
    output_node = True
    video: VIDEO
    filename_prefix: str = Text("video/graphflow", file_name=True)
    format: str = Choice(SAVE_FORMATS, default="auto")
    codec: str = Choice(SAVE_CODECS, default="auto")
    comfy = ComfyAlias(("SaveVideo",))

    def run(self):
        from graphflow.video import VideoFileError, copy_streams, source_streams

        video, encode = self.video, _encode(_sound_cut_to_pictures(self.video), "mp4", "libx264", pix_fmt="yuv420p")
        found = source_streams(video.source) if video.source is not None else None
        if found is None or self.format not in ("auto", *found[0]) or self.codec not in ("auto", found[1]):
            _save(self.filename_prefix, "_.mp4", encode, "video")
            return

        def copy(path, metadata):  # a loaded video kept as it came, as ComfyUI saves one: no second encoding
            try:
                copy_streams(path, video.source, "mp4", metadata)
            except VideoFileError:  # streams MP4 can't hold (where ComfyUI fails): encoded instead
                encode(path, metadata)

        _save(self.filename_prefix, "_.mp4", copy, "video")


def _sound_cut_to_pictures(video):
    """The video with its sound cut to the pictures' length: frames / rate seconds (the rate the
    file gets), rounded up to a whole sample."""
    from graphflow.video import frame_rate

    audio = video.audio
    if (video.images is None or not isinstance(audio, dict) or not hasattr(audio.get("waveform"), "shape")
            or not audio.get("sample_rate")):
        return video  # the writer reports malformed sound
    keep = math.ceil(int(audio["sample_rate"]) * len(video.images) / frame_rate(video.fps))
    return dataclasses.replace(video, audio={**audio, "waveform": audio["waveform"][..., :keep]})


class SaveWEBM(Node):
    """Save the images as a WebM video in the outputs folder, fps frames a second, with the workflow
    in its metadata. crf: higher is smaller and worse (0-63)."""
    category = "image/video"
    output_node = True
    images: IMAGE
    filename_prefix: str = Text("graphflow", file_name=True)
    codec: str = Choice(tuple(WEBM_CODECS), default="vp9")
    fps: float = Float(24.0, min=0.01, max=1000.0, step=0.01)
    crf: float = Float(32.0, min=0, max=63.0, step=1)
    comfy = ComfyAlias(("SaveWEBM",))

    def run(self):
        from graphflow.video import Video, frame_rate

        if self.images is None or self.images.dim() != 4 or len(self.images) == 0:
            raise NodeInputError("images", "no frames to save (an empty batch)")
        # crf as ComfyUI hands it over (FFmpeg rounds 33.5 to 34); bit rate 0: crf alone sets the quality
        options = {"crf": str(self.crf), "b": "0"}
        if self.codec == "av1":
            options["preset"] = "6"  # ComfyUI's speed for SVT-AV1
        pix_fmt = "yuv420p10le" if self.codec == "av1" else "yuv420p"  # AV1 in 10 bits, as ComfyUI writes it
        video = Video(self.images, frame_rate(self.fps))
        _save(self.filename_prefix, "_.webm", _encode(video, "webm", WEBM_CODECS[self.codec], pix_fmt=pix_fmt,
                                                      options=options), "images")
